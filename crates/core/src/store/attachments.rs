//! Attachment bytes in the replica file: stored as consecutive parts (so a download cut at
//! 90 % continues from 90 %), with how much of each the server has confirmed (so an upload
//! does too), and the documents that reference each one (so it is purged with the last).

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};
use crate::ids::DocumentId;
use crate::model::attachment::{AttachmentRef, AttachmentState, ContentHash};
use crate::time::Timestamp;

/// An attachment as the device holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentInfo {
    /// Hash, size, media type and name (`added_at` is the document's business, read as 0 here).
    pub reference: AttachmentRef,
    /// Where its bytes are.
    pub state: AttachmentState,
    /// Bytes held on this device.
    pub stored: u64,
    /// Bytes the server has confirmed (uploads of attachments made here).
    pub uploaded: u64,
}

/// An attachment with bytes to move, and one document that references it (the document the
/// server checks the transfer against).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transfer {
    /// The attachment.
    pub hash: ContentHash,
    /// A document referencing it.
    pub doc: DocumentId,
    /// Its size.
    pub size: u64,
    /// Bytes already moved (confirmed uploaded, or held here).
    pub done: u64,
    /// Its media type.
    pub media_type: String,
}

type Row = (String, i64, String, String, String, i64, i64, i64);

fn info(row: Row) -> Option<AttachmentInfo> {
    let (hash, size, media_type, name, origin, stored, uploaded, added_at) = row;
    let size = u64::try_from(size).ok()?;
    let stored = u64::try_from(stored).ok()?;
    let uploaded = u64::try_from(uploaded).ok()?;
    let state = if stored < size {
        AttachmentState::RemoteOnly
    } else if origin == "local" && uploaded == 0 {
        AttachmentState::LocalOnly
    } else if origin == "local" && uploaded < size {
        AttachmentState::Uploading
    } else {
        AttachmentState::Synced
    };
    Some(AttachmentInfo {
        reference: AttachmentRef {
            hash: hash.parse().ok()?,
            size,
            media_type,
            name,
            added_at: Timestamp(added_at),
        },
        state,
        stored,
        uploaded,
    })
}

const COLUMNS: &str = "a.hash, a.size, a.media_type, a.name, a.origin, a.stored, a.uploaded, a.added_at";

fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?))
}

/// Replaces the references a document makes; attachments first seen here are recorded as
/// remote (bytes still to fetch).
pub(crate) fn index_refs<'a>(
    conn: &Connection,
    doc: DocumentId,
    refs: impl IntoIterator<Item = &'a AttachmentRef>,
) -> Result<()> {
    let doc = doc.to_string();
    conn.execute("DELETE FROM attachment_refs WHERE doc_id = ?1", [&doc])?;
    let mut insert_ref = conn.prepare_cached(
        "INSERT INTO attachment_refs (hash, doc_id) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
    )?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO attachments (hash, size, media_type, name, origin, added_at)
         VALUES (?1, ?2, ?3, ?4, 'remote', ?5)
         ON CONFLICT (hash) DO UPDATE SET added_at = excluded.added_at WHERE attachments.added_at = 0",
    )?;
    for r in refs {
        let hash = r.hash.to_string();
        insert_ref.execute(params![hash, doc])?;
        insert.execute(params![hash, size_i64(r.size), r.media_type, r.name, r.added_at.millis()])?;
    }
    Ok(())
}

fn size_i64(size: u64) -> i64 {
    i64::try_from(size).unwrap_or(i64::MAX)
}

/// Stores the bytes of an attachment made on this device (to upload). Bytes already held
/// whole are kept as they are.
pub(crate) fn store_local(conn: &Connection, r: &AttachmentRef, bytes: &[u8]) -> Result<()> {
    let hash = r.hash.to_string();
    let stored: Option<i64> = conn
        .query_row("SELECT stored FROM attachments WHERE hash = ?1", [&hash], |row| row.get(0))
        .optional()?;
    if stored == Some(size_i64(r.size)) {
        return Ok(());
    }
    conn.execute(
        "INSERT INTO attachments (hash, size, media_type, name, origin, stored, uploaded, added_at)
         VALUES (?1, ?2, ?3, ?4, 'local', ?2, 0, ?5)
         ON CONFLICT (hash) DO UPDATE SET origin = 'local', stored = excluded.stored, uploaded = 0",
        params![hash, size_i64(r.size), r.media_type, r.name, r.added_at.millis()],
    )?;
    conn.execute("DELETE FROM attachment_parts WHERE hash = ?1", [&hash])?;
    conn.execute(
        "INSERT INTO attachment_parts (hash, offset, bytes) VALUES (?1, 0, ?2)",
        params![hash, bytes],
    )?;
    Ok(())
}

/// Forgets references of a purged document, then every attachment no document references any
/// more, except those made here that the server does not hold whole yet (never lost).
pub(crate) fn purge_document(conn: &Connection, doc: DocumentId) -> Result<()> {
    conn.execute("DELETE FROM attachment_refs WHERE doc_id = ?1", [doc.to_string()])?;
    conn.execute(
        "DELETE FROM attachments
         WHERE hash NOT IN (SELECT hash FROM attachment_refs)
           AND NOT (origin = 'local' AND uploaded < size)",
        [],
    )?;
    Ok(())
}

/// Removes every attachment (a revoked device).
pub(crate) fn purge_all(conn: &Connection) -> Result<()> {
    conn.execute_batch(
        "DELETE FROM attachment_parts; DELETE FROM attachment_refs; DELETE FROM attachments;",
    )?;
    Ok(())
}

/// The attachments a document references, in hash order.
pub(crate) fn of_document(conn: &Connection, doc: DocumentId) -> Result<Vec<AttachmentInfo>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM attachments a JOIN attachment_refs r ON r.hash = a.hash
         WHERE r.doc_id = ?1 ORDER BY a.hash"
    ))?;
    let rows = stmt.query_map([doc.to_string()], read_row)?;
    let mut out = Vec::new();
    for row in rows {
        out.extend(info(row?));
    }
    Ok(out)
}

/// One attachment, if known.
pub(crate) fn get(conn: &Connection, hash: &ContentHash) -> Result<Option<AttachmentInfo>> {
    let row = conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM attachments a WHERE a.hash = ?1"),
            [hash.to_string()],
            read_row,
        )
        .optional()?;
    Ok(row.and_then(info))
}

/// Attachments made here that the server does not hold whole, oldest first.
pub(crate) fn pending_uploads(conn: &Connection) -> Result<Vec<Transfer>> {
    transfers(conn, "a.origin = 'local' AND a.uploaded < a.size", "a.uploaded")
}

/// Attachments referenced by documents here whose bytes are not here whole.
pub(crate) fn pending_downloads(conn: &Connection) -> Result<Vec<Transfer>> {
    transfers(conn, "a.stored < a.size", "a.stored")
}

fn transfers(conn: &Connection, condition: &str, done: &str) -> Result<Vec<Transfer>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT a.hash, min(r.doc_id), a.size, {done}, a.media_type FROM attachments a
         JOIN attachment_refs r ON r.hash = a.hash WHERE {condition} GROUP BY a.hash ORDER BY a.rowid"
    ))?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, i64>(3)?,
            r.get(4)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (hash, doc, size, done, media_type) = row?;
        let (Ok(hash), Ok(doc), Ok(size), Ok(done)) =
            (hash.parse(), doc.parse(), u64::try_from(size), u64::try_from(done))
        else {
            continue;
        };
        out.push(Transfer { hash, doc, size, done, media_type });
    }
    Ok(out)
}

/// The whole bytes of an attachment, if held here whole.
pub(crate) fn bytes(conn: &Connection, hash: &ContentHash) -> Result<Option<Vec<u8>>> {
    let Some(info) = get(conn, hash)? else { return Ok(None) };
    if info.stored < info.reference.size {
        return Ok(None);
    }
    let mut stmt =
        conn.prepare_cached("SELECT bytes FROM attachment_parts WHERE hash = ?1 ORDER BY offset")?;
    let rows = stmt.query_map([hash.to_string()], |r| r.get::<_, Vec<u8>>(0))?;
    let mut out = Vec::with_capacity(usize::try_from(info.reference.size).unwrap_or(0));
    for row in rows {
        out.extend_from_slice(&row?);
    }
    Ok(Some(out))
}

/// Records how much of an upload the server has confirmed.
pub(crate) fn set_uploaded(conn: &Connection, hash: &ContentHash, uploaded: u64) -> Result<()> {
    conn.execute(
        "UPDATE attachments SET uploaded = min(size, ?2) WHERE hash = ?1",
        params![hash.to_string(), size_i64(uploaded)],
    )?;
    Ok(())
}

/// Appends downloaded bytes at `offset` (which must be what is held). When the attachment is
/// whole, its hash is checked: on a mismatch every part is dropped (to fetch again) and the
/// error says so.
pub(crate) fn append_part(conn: &Connection, hash: &ContentHash, offset: u64, part: &[u8]) -> Result<u64> {
    let info = get(conn, hash)?.ok_or(CoreError::UnknownAttachment(*hash))?;
    if offset != info.stored || offset + part.len() as u64 > info.reference.size {
        return Err(CoreError::InvalidValue {
            field: "attachment part",
            reason: format!("part at {offset} does not follow the {} bytes held", info.stored),
        });
    }
    let key = hash.to_string();
    conn.execute(
        "INSERT INTO attachment_parts (hash, offset, bytes) VALUES (?1, ?2, ?3)",
        params![key, size_i64(offset), part],
    )?;
    let stored = offset + part.len() as u64;
    conn.execute("UPDATE attachments SET stored = ?2 WHERE hash = ?1", params![key, size_i64(stored)])?;
    if stored == info.reference.size {
        let whole = bytes(conn, hash)?.unwrap_or_default();
        if ContentHash::of(&whole) != *hash {
            conn.execute("DELETE FROM attachment_parts WHERE hash = ?1", [&key])?;
            conn.execute("UPDATE attachments SET stored = 0 WHERE hash = ?1", [&key])?;
            return Err(CoreError::AttachmentMismatch(*hash));
        }
    }
    Ok(stored)
}
