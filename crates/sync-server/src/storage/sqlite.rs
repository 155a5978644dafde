//! The embedded default: one SQLite file in the data directory (WAL, `synchronous = FULL`, so
//! an acknowledged upload survives a crash or power loss).

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Mutex;

use automerge::sync::SyncDoc;
use automerge::{ActorId, AutoCommit, Change, ChangeHash};
use doorstep_core::doc::DocumentKind;
use doorstep_core::ids::{Code, DeviceId, DocumentId, GridId, MemberId};
use doorstep_core::store::heads::{decode_heads, encode_heads};
use doorstep_core::sync::digest::scope_digest;
use doorstep_core::sync::message::{
    Ack, DocData, DocSyncMessage, ErrorCode, ManifestEntry, SyncReply, SyncRequest, doc_id, wire_heads,
    wire_id,
};
use doorstep_core::sync::validate::{self, CheckedUpload, DocFacts};
use doorstep_core::time::Timestamp;
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params, params_from_iter};
use serde_bytes::ByteBuf;

use crate::scope::{Role, Scope};
use crate::storage::{
    Authenticated, Device, DeviceRow, EnrolError, Enrolled, GridRow, MemberRow, Storage, StorageError,
    SyncFailure, SyncLimits,
};

const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/sqlite/0001_init.sql"),
    include_str!("../../migrations/sqlite/0002_digest_cache.sql"),
    include_str!("../../migrations/sqlite/0003_dashboard.sql"),
];

/// The database file's name inside the data directory.
pub const DATABASE_FILE: &str = "doorstep.db";

/// Storage on one SQLite file. One connection behind a mutex: SQLite has one writer at a time
/// anyway, and every call is short.
pub struct SqliteStorage {
    conn: Mutex<Connection>,
}

fn damaged(what: impl Into<String>) -> StorageError {
    StorageError::Damaged(what.into())
}

fn refused(code: ErrorCode, message: impl Into<String>, doc: Option<DocumentId>) -> SyncFailure {
    SyncFailure::Refused { code, message: message.into(), doc }
}

impl SqliteStorage {
    /// Opens (or creates) the database in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Self, StorageError> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| damaged(format!("cannot create {}: {e}", data_dir.display())))?;
        Self::open_file(&data_dir.join(DATABASE_FILE))
    }

    /// Opens (or creates) the database file at `path`.
    pub fn open_file(path: &Path) -> Result<Self, StorageError> {
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let current = usize::try_from(current).unwrap_or(usize::MAX);
        if current > MIGRATIONS.len() {
            return Err(damaged(format!("database schema {current} is newer than this server knows")));
        }
        for (index, sql) in MIGRATIONS.iter().enumerate().skip(current) {
            let tx = conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", index as i64 + 1)?;
            tx.commit()?;
        }
        Ok(Self { conn: Mutex::new(conn) })
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a transaction half-applied (SQLite rolls
        // it back), so the connection is safe to keep using.
        self.conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

// ---- helpers ------------------------------------------------------------------------------------

fn parse<T: std::str::FromStr>(text: &str, what: &str) -> Result<T, StorageError> {
    text.parse().map_err(|_| damaged(format!("bad {what} {text:?}")))
}

/// A device joined with its member: id, member, actor, revoked at, scope version seen, role,
/// department, scope version.
type DeviceAuthRow = (String, String, String, Option<i64>, i64, String, Option<String>, i64);

/// The SQL condition (on `documents d`) matching the documents a scope may hold.
fn scope_sql(scope: &Scope) -> (String, Vec<Value>) {
    let member = Value::Text(scope.member.to_string());
    match scope.role {
        Role::Admin => ("1 = 1".into(), vec![]),
        Role::GridWorker | Role::Supervisor => {
            ("d.grid_id IN (SELECT grid_id FROM member_grids WHERE member_id = ?)".into(), vec![member])
        }
        Role::Volunteer => (
            "((d.kind = 'household' AND d.doc_id IN (SELECT doc_id FROM doc_helpers WHERE member_id = ?))
              OR (d.kind = 'request' AND (d.assignee = ?
                  OR d.household_id IN (SELECT doc_id FROM doc_helpers WHERE member_id = ?))))"
                .into(),
            vec![member.clone(), member.clone(), member],
        ),
        Role::DepartmentStaff => (
            "(d.kind = 'request' AND d.department = ?)".into(),
            vec![Value::Text(scope.department.as_ref().map(|d| d.as_str().to_owned()).unwrap_or_default())],
        ),
    }
}

fn helps(
    conn: &Connection,
    member: MemberId,
    household: Option<doorstep_core::ids::HouseholdId>,
) -> rusqlite::Result<bool> {
    let Some(household) = household else { return Ok(false) };
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM doc_helpers WHERE doc_id = ?1 AND member_id = ?2)",
        params![household.to_string(), member.to_string()],
        |r| r.get(0),
    )
}

fn holds(conn: &Connection, device: DeviceId, doc: DocumentId) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM device_docs WHERE device_id = ?1 AND doc_id = ?2)",
        params![device.to_string(), doc.to_string()],
        |r| r.get(0),
    )
}

/// The stored document and its stored size.
fn load_document(conn: &Connection, id: DocumentId) -> Result<Option<(AutoCommit, usize)>, StorageError> {
    let row: Option<(Vec<u8>, i64)> = conn
        .query_row("SELECT snapshot, stored_bytes FROM documents WHERE doc_id = ?1", [id.to_string()], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    match row {
        None => Ok(None),
        Some((snapshot, bytes)) => {
            let doc = AutoCommit::load(&snapshot).map_err(|e| damaged(format!("document {id}: {e}")))?;
            Ok(Some((doc, usize::try_from(bytes).unwrap_or(usize::MAX))))
        }
    }
}

/// Stores new changes of a document and its new state, facts and snapshot; returns the last seq.
fn store_document(
    tx: &Transaction<'_>,
    id: DocumentId,
    doc: &mut AutoCommit,
    facts: &DocFacts,
    new_changes: &[(ChangeHash, Vec<u8>)],
    origin: Option<DeviceId>,
    now: Timestamp,
) -> Result<(), StorageError> {
    let doc_id = id.to_string();
    let mut last_seq: Option<i64> = None;
    let mut added = 0i64;
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO changes (doc_id, hash, bytes, origin_device, received_at) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (hash) DO NOTHING",
        )?;
        for (hash, bytes) in new_changes {
            if insert.execute(params![
                doc_id,
                hash.0.as_slice(),
                bytes,
                origin.map(|d| d.to_string()),
                now.millis()
            ])? == 1
            {
                last_seq = Some(tx.last_insert_rowid());
                added += bytes.len() as i64;
            }
        }
    }
    let Some(last_seq) = last_seq else { return Ok(()) };
    let snapshot = doc.save();
    tx.execute(
        "INSERT INTO documents (doc_id, kind, grid_id, household_id, department, assignee, heads, snapshot,
                                stored_bytes, last_seq, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT (doc_id) DO UPDATE SET grid_id = excluded.grid_id, household_id = excluded.household_id,
             department = excluded.department, assignee = excluded.assignee, heads = excluded.heads,
             snapshot = excluded.snapshot, stored_bytes = documents.stored_bytes + ?12,
             last_seq = excluded.last_seq, updated_at = excluded.updated_at",
        params![
            doc_id,
            facts.kind.as_str(),
            facts.grid.to_string(),
            facts.household.map(|h| h.to_string()),
            facts.department.as_ref().map(|d| d.as_str().to_owned()),
            facts.assignee.map(|a| a.to_string()),
            encode_heads(&doc.get_heads()),
            snapshot,
            snapshot.len() as i64,
            last_seq,
            now.millis(),
            added,
        ],
    )?;
    let before: HashSet<String> = {
        let mut stmt = tx.prepare_cached("SELECT member_id FROM doc_helpers WHERE doc_id = ?1")?;
        stmt.query_map([&doc_id], |r| r.get::<_, String>(0))?.collect::<rusqlite::Result<_>>()?
    };
    let after: HashSet<String> = facts.helpers.iter().map(ToString::to_string).collect();
    if before != after {
        tx.execute("DELETE FROM doc_helpers WHERE doc_id = ?1", [&doc_id])?;
        for helper in &after {
            tx.execute(
                "INSERT INTO doc_helpers (doc_id, member_id) VALUES (?1, ?2)",
                params![doc_id, helper],
            )?;
        }
        // A helper added or removed gains or loses the household's requests too, which did not
        // change themselves: their scope changed, so their devices do a full comparison.
        for member in before.symmetric_difference(&after) {
            tx.execute(
                "UPDATE members SET scope_version = scope_version + 1 WHERE member_id = ?1",
                [member],
            )?;
        }
    }
    Ok(())
}

/// Applies checked uploads' scope rules, then stores them.
fn commit_checked(
    tx: &Transaction<'_>,
    device: &Device,
    id: DocumentId,
    mut checked: CheckedUpload,
    now: Timestamp,
) -> Result<(), SyncFailure> {
    let scope = &device.scope;
    let held = holds(tx, device.id, id).map_err(StorageError::from)?;
    let before_ok = match &checked.before {
        None => true,
        Some(before) => {
            held || scope
                .may_write(before, helps(tx, scope.member, before.household).map_err(StorageError::from)?)
        }
    };
    let after = &checked.after;
    let after_ok = scope
        .may_write(after, helps(tx, scope.member, after.household).map_err(StorageError::from)?)
        || (held && checked.before.as_ref().is_some_and(|b| b.grid == after.grid && b.kind == after.kind));
    if !before_ok || !after_ok {
        return Err(refused(
            ErrorCode::OutOfScope,
            format!("document {id} is outside this device's scope"),
            Some(id),
        ));
    }
    store_document(tx, id, &mut checked.doc, after, &checked.new_changes, Some(device.id), now)?;
    tx.execute(
        "INSERT OR IGNORE INTO device_docs (device_id, doc_id) VALUES (?1, ?2)",
        params![device.id.to_string(), id.to_string()],
    )
    .map_err(StorageError::from)?;
    Ok(())
}

fn check(
    tx: &Transaction<'_>,
    device: &Device,
    id: DocumentId,
    changes: &[Vec<u8>],
    limits: &SyncLimits,
) -> Result<CheckedUpload, SyncFailure> {
    let existing = load_document(tx, id)?;
    validate::check_upload(
        id,
        existing.as_ref().map(|(doc, _)| doc),
        existing.as_ref().map_or(0, |(_, bytes)| *bytes),
        changes,
        &device.actor,
        limits.max_document_bytes,
    )
    .map_err(|r| refused(r.code, r.message, Some(id)))
}

struct CatchUp {
    docs: Vec<DocData>,
    purge: Vec<DocumentId>,
    cursor: u64,
    more: bool,
    scope_complete: bool,
}

/// What the device lacks in its scope since `cursor` (see `docs/PROTOCOL.md`, "Catch-up").
fn catch_up(
    tx: &Transaction<'_>,
    device: &Device,
    cursor: u64,
    resend: &[DocumentId],
    limits: &SyncLimits,
) -> Result<CatchUp, StorageError> {
    let (scope_cond, scope_args) = scope_sql(&device.scope);
    let dev = device.id.to_string();
    // Documents the device could not apply are no longer "held": the steps below send them whole.
    for id in resend {
        tx.execute(
            "DELETE FROM device_docs WHERE device_id = ?1 AND doc_id = ?2",
            params![dev, id.to_string()],
        )?;
    }
    let max_seq: i64 = tx.query_row("SELECT COALESCE(max(seq), 0) FROM changes", [], |r| r.get(0))?;
    let cursor = i64::try_from(cursor).unwrap_or(i64::MAX).min(max_seq);
    let mut out = CatchUp {
        docs: Vec::new(),
        purge: Vec::new(),
        cursor: max_seq as u64,
        more: false,
        scope_complete: true,
    };
    let mut budget = 0usize;
    let mut sent_whole: HashSet<DocumentId> = HashSet::new();

    let full_diff = cursor == 0 || device.scope_version_seen != device.scope_version;
    if !full_diff && !resend.is_empty() {
        let sql = format!("SELECT d.kind, d.snapshot FROM documents d WHERE {scope_cond} AND d.doc_id = ?");
        for id in resend {
            let mut args = scope_args.clone();
            args.push(Value::Text(id.to_string()));
            let row: Option<(String, Vec<u8>)> =
                tx.query_row(&sql, params_from_iter(args), |r| Ok((r.get(0)?, r.get(1)?))).optional()?;
            match row {
                Some((kind, snapshot)) => {
                    let kind = DocumentKind::from_stored(&kind).ok_or_else(|| damaged("document kind"))?;
                    budget += snapshot.len();
                    sent_whole.insert(*id);
                    out.docs.push(DocData {
                        doc: wire_id(*id),
                        kind,
                        full: true,
                        data: ByteBuf::from(snapshot),
                    });
                }
                // No longer the device's to hold: tell it to purge what it has.
                None => out.purge.push(*id),
            }
        }
    }
    if full_diff {
        // Documents in scope the device does not hold: send them whole.
        let sql = format!(
            "SELECT d.doc_id, d.kind, d.snapshot FROM documents d
             WHERE {scope_cond} AND d.doc_id NOT IN (SELECT doc_id FROM device_docs WHERE device_id = ?)
             ORDER BY d.doc_id"
        );
        let mut args = scope_args.clone();
        args.push(Value::Text(dev.clone()));
        let mut stmt = tx.prepare(&sql)?;
        let mut rows = stmt.query(params_from_iter(args))?;
        while let Some(row) = rows.next()? {
            if budget >= limits.page_bytes && !out.docs.is_empty() {
                out.more = true;
                out.scope_complete = false;
                break;
            }
            let id: DocumentId = parse(&row.get::<_, String>(0)?, "document id")?;
            let kind = DocumentKind::from_stored(&row.get::<_, String>(1)?)
                .ok_or_else(|| damaged("document kind"))?;
            let snapshot: Vec<u8> = row.get(2)?;
            budget += snapshot.len();
            sent_whole.insert(id);
            out.docs.push(DocData { doc: wire_id(id), kind, full: true, data: ByteBuf::from(snapshot) });
        }
        // Documents the device holds that are no longer in scope: purge.
        let sql = format!(
            "SELECT dd.doc_id FROM device_docs dd JOIN documents d ON d.doc_id = dd.doc_id
             WHERE dd.device_id = ? AND NOT ({scope_cond})"
        );
        let mut args = vec![Value::Text(dev.clone())];
        args.extend(scope_args.clone());
        let mut stmt = tx.prepare(&sql)?;
        let ids = stmt.query_map(params_from_iter(args), |r| r.get::<_, String>(0))?;
        for id in ids {
            out.purge.push(parse(&id?, "document id")?);
        }
    } else {
        let sql = format!(
            // Driven from the documents changed since the cursor (an index range, empty when
            // idle), not from everything the device holds.
            "SELECT d.doc_id FROM documents d CROSS JOIN device_docs dd
                 ON dd.doc_id = d.doc_id AND dd.device_id = ?
             WHERE d.last_seq > ? AND NOT ({scope_cond})"
        );
        let mut args = vec![Value::Text(dev.clone()), Value::Integer(cursor)];
        args.extend(scope_args.clone());
        let mut stmt = tx.prepare(&sql)?;
        let ids = stmt.query_map(params_from_iter(args), |r| r.get::<_, String>(0))?;
        for id in ids {
            out.purge.push(parse(&id?, "document id")?);
        }
    }

    // Changes after the cursor in documents in scope.
    let sql = format!(
        "SELECT c.seq, c.doc_id, d.kind, c.bytes, c.origin_device,
                EXISTS (SELECT 1 FROM device_docs dd WHERE dd.device_id = ? AND dd.doc_id = c.doc_id)
         FROM changes c CROSS JOIN documents d ON d.doc_id = c.doc_id
         WHERE c.seq > ? AND c.seq <= ? AND {scope_cond}
         ORDER BY c.seq"
    );
    let mut args = vec![Value::Text(dev.clone()), Value::Integer(cursor), Value::Integer(max_seq)];
    args.extend(scope_args);
    let mut stmt = tx.prepare(&sql)?;
    let mut rows = stmt.query(params_from_iter(args))?;
    let mut incremental: BTreeMap<DocumentId, (DocumentKind, Vec<u8>)> = BTreeMap::new();
    let mut order: Vec<DocumentId> = Vec::new();
    while let Some(row) = rows.next()? {
        let seq: i64 = row.get(0)?;
        let id: DocumentId = parse(&row.get::<_, String>(1)?, "document id")?;
        let held: bool = row.get(5)?;
        let origin: Option<String> = row.get(4)?;
        // Rows this reply has nothing to send for: the document went whole, is still being sent
        // whole page by page by the full comparison above, or the change is the device's own.
        if sent_whole.contains(&id)
            || (!held && !out.scope_complete)
            || (held && origin.as_deref() == Some(dev.as_str()))
        {
            continue;
        }
        if budget >= limits.page_bytes && (!out.docs.is_empty() || !incremental.is_empty()) {
            out.more = true;
            out.cursor = (seq - 1).max(cursor) as u64;
            break;
        }
        if !held {
            // New to this device (created by someone else, or moved into scope): send it whole.
            let kind = DocumentKind::from_stored(&row.get::<_, String>(2)?)
                .ok_or_else(|| damaged("document kind"))?;
            let snapshot: Vec<u8> =
                tx.query_row("SELECT snapshot FROM documents WHERE doc_id = ?1", [id.to_string()], |r| {
                    r.get(0)
                })?;
            budget += snapshot.len();
            sent_whole.insert(id);
            out.docs.push(DocData { doc: wire_id(id), kind, full: true, data: ByteBuf::from(snapshot) });
            continue;
        }
        let bytes: Vec<u8> = row.get(3)?;
        budget += bytes.len();
        let kind =
            DocumentKind::from_stored(&row.get::<_, String>(2)?).ok_or_else(|| damaged("document kind"))?;
        let entry = incremental.entry(id).or_insert_with(|| {
            order.push(id);
            (kind, Vec::new())
        });
        entry.1.extend_from_slice(&bytes);
    }
    for id in order {
        if let Some((kind, data)) = incremental.remove(&id) {
            out.docs.push(DocData { doc: wire_id(id), kind, full: false, data: ByteBuf::from(data) });
        }
    }
    let mut mark =
        tx.prepare_cached("INSERT OR IGNORE INTO device_docs (device_id, doc_id) VALUES (?1, ?2)")?;
    for id in &sent_whole {
        mark.execute(params![dev, id.to_string()])?;
    }
    Ok(out)
}

fn digest(tx: &Transaction<'_>, scope: &Scope) -> Result<[u8; 32], StorageError> {
    let (cond, args) = scope_sql(scope);
    let mut stmt = tx.prepare(&format!("SELECT d.doc_id, d.heads FROM documents d WHERE {cond}"))?;
    let rows =
        stmt.query_map(params_from_iter(args), |r| Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?)))?;
    let mut docs = Vec::new();
    for row in rows {
        let (id, heads) = row?;
        docs.push((parse(&id, "document id")?, decode_heads(&heads).ok_or_else(|| damaged("heads"))?));
    }
    Ok(scope_digest(docs))
}

/// A device's last digest, the log position and the scope version it was computed at.
type CachedDigest = (Option<Vec<u8>>, Option<i64>, Option<i64>);

/// The device's scope digest at log position `seq`: reused when neither the log nor the
/// member's scope changed since it was last computed (every change in any scope raises the log
/// position; every change of a member's grids raises their scope version).
fn cached_digest(tx: &Transaction<'_>, device: &Device, seq: u64) -> Result<[u8; 32], StorageError> {
    let seq = i64::try_from(seq).unwrap_or(i64::MAX);
    let cached: Option<CachedDigest> = tx
        .query_row(
            "SELECT digest, digest_seq, digest_scope_version FROM devices WHERE device_id = ?1",
            [device.id.to_string()],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    if let Some((Some(bytes), Some(at), Some(version))) = cached
        && at == seq
        && version == device.scope_version
        && let Ok(digest) = <[u8; 32]>::try_from(bytes.as_slice())
    {
        return Ok(digest);
    }
    let fresh = digest(tx, &device.scope)?;
    tx.execute(
        "UPDATE devices SET digest = ?2, digest_seq = ?3, digest_scope_version = ?4 WHERE device_id = ?1",
        params![device.id.to_string(), fresh.as_slice(), seq, device.scope_version],
    )?;
    Ok(fresh)
}

/// The change chunks inside an Automerge sync message (document chunks are unpacked).
fn changes_in(message: &automerge::sync::Message) -> Result<Vec<Vec<u8>>, SyncFailure> {
    let mut out = Vec::new();
    for chunk in message.changes.iter() {
        let bytes = chunk.to_vec();
        match Change::from_bytes(bytes.clone()) {
            Ok(change) => out.push(change.raw_bytes().to_vec()),
            Err(_) => {
                let mut scratch = AutoCommit::load(&bytes).map_err(|_| {
                    refused(ErrorCode::MalformedChange, "a repair message carries undecodable data", None)
                })?;
                out.extend(scratch.get_changes(&[]).iter().map(|c| c.raw_bytes().to_vec()));
            }
        }
    }
    Ok(out)
}

/// One round inside a transaction: purge reports, uploads (all or nothing), catch-up, digest.
fn round(
    tx: &Transaction<'_>,
    device: &Device,
    request: &SyncRequest,
    limits: &SyncLimits,
    now: Timestamp,
) -> Result<SyncReply, SyncFailure> {
    for purged in &request.purged {
        tx.execute(
            "DELETE FROM device_docs WHERE device_id = ?1 AND doc_id = ?2",
            params![device.id.to_string(), doc_id(purged).to_string()],
        )
        .map_err(StorageError::from)?;
    }
    let mut acks = Vec::with_capacity(request.uploads.len());
    for upload in request.uploads.iter().filter(|u| !u.changes.is_empty()) {
        let id = doc_id(&upload.doc);
        let changes: Vec<Vec<u8>> = upload.changes.iter().map(|c| c.to_vec()).collect();
        let checked = check(tx, device, id, &changes, limits)?;
        let heads = wire_heads(&checked.upload_heads);
        commit_checked(tx, device, id, checked, now)?;
        acks.push(Ack { doc: upload.doc, heads });
    }
    let resend: Vec<DocumentId> = request.missing.iter().map(doc_id).collect();
    let caught = catch_up(tx, device, request.cursor, &resend, limits)?;
    // A full comparison spread over several pages must go on next round whatever the cursor:
    // until it completes, the device is marked as having seen no scope version at all.
    let seen = if caught.scope_complete { device.scope_version } else { -1 };
    tx.execute(
        "UPDATE devices SET scope_version_seen = ?2 WHERE device_id = ?1",
        params![device.id.to_string(), seen],
    )
    .map_err(StorageError::from)?;
    let digest = if request.want_digest && !caught.more {
        Some(cached_digest(tx, device, caught.cursor)?)
    } else {
        None
    };
    Ok(SyncReply {
        acks,
        docs: caught.docs,
        purge: caught.purge.into_iter().map(wire_id).collect(),
        cursor: caught.cursor,
        more: caught.more,
        digest: digest.map(serde_bytes::ByteArray::new),
    })
}

impl Storage for SqliteStorage {
    fn authenticate(&self, token_hash: &[u8; 32]) -> Result<Authenticated, StorageError> {
        let conn = self.lock();
        let row: Option<DeviceAuthRow> = conn
            .query_row(
                "SELECT d.device_id, d.member_id, d.actor_id, d.revoked_at, d.scope_version_seen,
                        m.role, m.department, m.scope_version
                 FROM devices d JOIN members m ON m.member_id = d.member_id WHERE d.token_hash = ?1",
                [token_hash.as_slice()],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                        r.get(7)?,
                    ))
                },
            )
            .optional()?;
        let Some((device, member, actor, revoked, seen, role, department, version)) = row else {
            return Ok(Authenticated::Unknown);
        };
        let device: DeviceId = parse(&device, "device id")?;
        if revoked.is_some() {
            return Ok(Authenticated::Revoked(device));
        }
        let member: MemberId = parse(&member, "member id")?;
        let mut stmt = conn.prepare_cached("SELECT grid_id FROM member_grids WHERE member_id = ?1")?;
        let grids = stmt
            .query_map([member.to_string()], |r| r.get::<_, String>(0))?
            .map(|g| parse::<GridId>(&g?, "grid id"))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Authenticated::Device(Device {
            id: device,
            actor: ActorId::try_from(actor.as_str()).map_err(|_| damaged("actor id"))?,
            scope: Scope {
                member,
                role: parse(&role, "role")?,
                grids,
                department: department.and_then(|d| Code::new(d).ok()),
            },
            scope_version: version,
            scope_version_seen: seen,
        }))
    }

    fn enrol(
        &self,
        code_hash: &[u8; 32],
        actor: &str,
        device_name: &str,
        token: &str,
        now: Timestamp,
    ) -> Result<Enrolled, EnrolError> {
        let actor_id = ActorId::try_from(actor).map_err(|_| EnrolError::BadActor)?;
        if actor_id.to_bytes().len() < 16 {
            return Err(EnrolError::BadActor);
        }
        let mut conn = self.lock();
        let tx =
            conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(StorageError::from)?;
        let member: Option<String> = tx
            .query_row(
                "SELECT member_id FROM enrolment_codes WHERE code_hash = ?1 AND used_at IS NULL AND expires_at > ?2",
                params![code_hash.as_slice(), now.millis()],
                |r| r.get(0),
            )
            .optional()
            .map_err(StorageError::from)?;
        let member = member.ok_or(EnrolError::InvalidCode)?;
        let taken: bool = tx
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM devices WHERE actor_id = ?1)",
                [actor_id.to_hex_string()],
                |r| r.get(0),
            )
            .map_err(StorageError::from)?;
        if taken {
            return Err(EnrolError::BadActor);
        }
        let (name, role): (String, String) = tx
            .query_row("SELECT name, role FROM members WHERE member_id = ?1", [&member], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .map_err(StorageError::from)?;
        let device = DeviceId::new_random();
        let token_hash = crate::auth::hash_secret(token);
        let device_name: String = device_name.trim().chars().take(64).collect();
        tx.execute(
            "INSERT INTO devices (device_id, member_id, name, actor_id, token_hash, enrolled_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![device.to_string(), member, device_name, actor_id.to_hex_string(), token_hash.as_slice(), now.millis()],
        )
        .map_err(StorageError::from)?;
        tx.execute(
            "UPDATE enrolment_codes SET used_at = ?2 WHERE code_hash = ?1",
            params![code_hash.as_slice(), now.millis()],
        )
        .map_err(StorageError::from)?;
        tx.execute(
            "INSERT INTO audit_log (at, actor, action, detail) VALUES (?1, ?2, 'device_enrolled', ?3)",
            params![now.millis(), member, device.to_string()],
        )
        .map_err(StorageError::from)?;
        tx.commit().map_err(StorageError::from)?;
        Ok(Enrolled {
            device_id: device,
            token: token.to_owned(),
            member_id: parse(&member, "member id")?,
            member_name: name,
            role: parse(&role, "role")?,
        })
    }

    fn sync(
        &self,
        device: &Device,
        request: &SyncRequest,
        limits: &SyncLimits,
        now: Timestamp,
    ) -> Result<SyncReply, SyncFailure> {
        let mut conn = self.lock();
        let tx =
            conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(StorageError::from)?;
        let reply = round(&tx, device, request, limits, now)?;
        let uploaded: usize = request.uploads.iter().map(|u| u.changes.len()).sum();
        let unsynced_after = request.unsynced.saturating_sub(uploaded as u64);
        tx.execute(
            "UPDATE devices SET last_seen_at = ?2, last_unsynced = ?3 WHERE device_id = ?1",
            params![device.id.to_string(), now.millis(), i64::try_from(unsynced_after).unwrap_or(i64::MAX)],
        )
        .map_err(StorageError::from)?;
        tx.commit().map_err(StorageError::from)?;
        Ok(reply)
    }

    fn push(
        &self,
        device: &Device,
        cursor: u64,
        limits: &SyncLimits,
        now: Timestamp,
    ) -> Result<SyncReply, SyncFailure> {
        let mut conn = self.lock();
        let tx =
            conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(StorageError::from)?;
        let request = SyncRequest { cursor, ..SyncRequest::default() };
        let reply = round(&tx, device, &request, limits, now)?;
        tx.commit().map_err(StorageError::from)?;
        Ok(reply)
    }

    fn manifest(&self, device: &Device) -> Result<Vec<ManifestEntry>, StorageError> {
        let conn = self.lock();
        let (cond, args) = scope_sql(&device.scope);
        let mut stmt = conn.prepare(&format!(
            "SELECT d.doc_id, d.kind, d.heads FROM documents d WHERE {cond} ORDER BY d.doc_id"
        ))?;
        let rows = stmt.query_map(params_from_iter(args), |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, Vec<u8>>(2)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, kind, heads) = row?;
            out.push(ManifestEntry {
                doc: wire_id(parse(&id, "document id")?),
                kind: DocumentKind::from_stored(&kind).ok_or_else(|| damaged("document kind"))?,
                heads: wire_heads(&decode_heads(&heads).ok_or_else(|| damaged("heads"))?),
            });
        }
        Ok(out)
    }

    fn repair(
        &self,
        device: &Device,
        messages: &[DocSyncMessage],
        limits: &SyncLimits,
        now: Timestamp,
    ) -> Result<Vec<DocSyncMessage>, SyncFailure> {
        let mut conn = self.lock();
        let tx =
            conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(StorageError::from)?;
        let mut replies = Vec::new();
        for m in messages {
            let id = doc_id(&m.doc);
            let message = automerge::sync::Message::decode(&m.message).map_err(|_| {
                refused(ErrorCode::MalformedFrame, "undecodable Automerge sync message", Some(id))
            })?;
            let carried = changes_in(&message)?;
            let mut doc = if carried.is_empty() {
                match load_document(&tx, id)? {
                    Some((doc, _)) => doc,
                    None => {
                        return Err(refused(
                            ErrorCode::OutOfScope,
                            format!("document {id} is not available"),
                            Some(id),
                        ));
                    }
                }
            } else {
                let checked = check(&tx, device, id, &carried, limits)?;
                let doc = checked.doc.clone();
                commit_checked(&tx, device, id, checked, now)?;
                doc
            };
            let facts = validate::facts(&doc, id).map_err(|r| refused(r.code, r.message, Some(id)))?;
            let helps_household =
                helps(&tx, device.scope.member, facts.household).map_err(StorageError::from)?;
            if !device.scope.may_hold(&facts, helps_household)
                && !holds(&tx, device.id, id).map_err(StorageError::from)?
            {
                return Err(refused(
                    ErrorCode::OutOfScope,
                    format!("document {id} is outside this device's scope"),
                    Some(id),
                ));
            }
            let mut state = automerge::sync::State::new();
            doc.sync().receive_sync_message(&mut state, message).map_err(|_| {
                refused(ErrorCode::MalformedChange, "the sync message could not be applied", Some(id))
            })?;
            if let Some(reply) = doc.sync().generate_sync_message(&mut state) {
                replies.push(DocSyncMessage {
                    doc: m.doc,
                    kind: facts.kind,
                    message: ByteBuf::from(reply.encode()),
                });
            }
            tx.execute(
                "INSERT OR IGNORE INTO device_docs (device_id, doc_id) VALUES (?1, ?2)",
                params![device.id.to_string(), id.to_string()],
            )
            .map_err(StorageError::from)?;
        }
        tx.commit().map_err(StorageError::from)?;
        Ok(replies)
    }

    fn write_server_documents(
        &self,
        docs: &mut [(DocumentId, AutoCommit)],
        now: Timestamp,
    ) -> Result<(), StorageError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        for (id, doc) in docs.iter_mut() {
            let known: HashSet<ChangeHash> = match load_document(&tx, *id)? {
                Some((mut existing, _)) => {
                    // Devices may have uploaded since the caller loaded the document (a dashboard
                    // action): merge their changes so the stored snapshot keeps them.
                    doc.merge(&mut existing).map_err(|e| damaged(format!("document {id}: {e}")))?;
                    existing.get_changes(&[]).iter().map(Change::hash).collect()
                }
                None => HashSet::new(),
            };
            let facts = validate::facts(doc, *id).map_err(|r| damaged(r.message))?;
            let new: Vec<(ChangeHash, Vec<u8>)> = doc
                .get_changes(&[])
                .iter()
                .filter(|c| !known.contains(&c.hash()))
                .map(|c| (c.hash(), c.raw_bytes().to_vec()))
                .collect();
            store_document(&tx, *id, doc, &facts, &new, None, now)?;
        }
        tx.commit()?;
        Ok(())
    }

    fn document(&self, id: DocumentId) -> Result<Option<AutoCommit>, StorageError> {
        Ok(load_document(&self.lock(), id)?.map(|(doc, _)| doc))
    }

    fn revoked_since(&self, since: Timestamp) -> Result<Vec<DeviceId>, StorageError> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached("SELECT device_id FROM devices WHERE revoked_at >= ?1")?;
        let rows = stmt.query_map([since.millis()], |r| r.get::<_, String>(0))?;
        rows.map(|r| parse(&r?, "device id")).collect()
    }

    fn create_grid(&self, name: &str, community: &str, street: &str) -> Result<GridId, StorageError> {
        let id = GridId::new_random();
        self.lock().execute(
            "INSERT INTO grids (grid_id, name, community, street) VALUES (?1, ?2, ?3, ?4)",
            params![id.to_string(), name, community, street],
        )?;
        Ok(id)
    }

    fn create_member(
        &self,
        name: &str,
        role: Role,
        department: Option<&Code>,
        now: Timestamp,
    ) -> Result<MemberId, StorageError> {
        let id = MemberId::new_random();
        self.lock().execute(
            "INSERT INTO members (member_id, name, role, department, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                id.to_string(),
                name,
                role.as_str(),
                department.map(|d| d.as_str().to_owned()),
                now.millis()
            ],
        )?;
        Ok(id)
    }

    fn set_member_grid(&self, member: MemberId, grid: GridId, assigned: bool) -> Result<bool, StorageError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let changed = if assigned {
            tx.execute(
                "INSERT OR IGNORE INTO member_grids (member_id, grid_id) VALUES (?1, ?2)",
                params![member.to_string(), grid.to_string()],
            )?
        } else {
            tx.execute(
                "DELETE FROM member_grids WHERE member_id = ?1 AND grid_id = ?2",
                params![member.to_string(), grid.to_string()],
            )?
        };
        if changed > 0 {
            tx.execute(
                "UPDATE members SET scope_version = scope_version + 1 WHERE member_id = ?1",
                [member.to_string()],
            )?;
        }
        tx.commit()?;
        Ok(changed > 0)
    }

    fn create_enrolment_code(
        &self,
        member: MemberId,
        code_hash: &[u8; 32],
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<bool, StorageError> {
        let conn = self.lock();
        let exists: bool = conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM members WHERE member_id = ?1)",
            [member.to_string()],
            |r| r.get(0),
        )?;
        if !exists {
            return Ok(false);
        }
        conn.execute(
            "INSERT INTO enrolment_codes (code_hash, member_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
            params![code_hash.as_slice(), member.to_string(), now.millis(), expires_at.millis()],
        )?;
        Ok(true)
    }

    fn revoke_device(&self, device: DeviceId, now: Timestamp) -> Result<bool, StorageError> {
        let conn = self.lock();
        let changed = conn.execute(
            "UPDATE devices SET revoked_at = ?2 WHERE device_id = ?1 AND revoked_at IS NULL",
            params![device.to_string(), now.millis()],
        )?;
        if changed > 0 {
            conn.execute(
                "INSERT INTO audit_log (at, actor, action, detail) VALUES (?1, 'admin', 'device_revoked', ?2)",
                params![now.millis(), device.to_string()],
            )?;
        }
        Ok(changed > 0)
    }

    fn grids(&self) -> Result<Vec<GridRow>, StorageError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare("SELECT grid_id, name, community, street FROM grids ORDER BY street, community, name")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
        rows.map(|r| {
            let (id, name, community, street) = r?;
            Ok(GridRow { id: parse(&id, "grid id")?, name, community, street })
        })
        .collect()
    }

    fn members(&self) -> Result<Vec<MemberRow>, StorageError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT m.member_id, m.name, m.role, m.department,
                    (SELECT group_concat(grid_id) FROM member_grids g WHERE g.member_id = m.member_id)
             FROM members m ORDER BY m.name",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get(1)?,
                r.get::<_, String>(2)?,
                r.get(3)?,
                r.get::<_, Option<String>>(4)?,
            ))
        })?;
        rows.map(|r| {
            let (id, name, role, department, grids) = r?;
            Ok(MemberRow {
                id: parse(&id, "member id")?,
                name,
                role: parse(&role, "role")?,
                department,
                grids: grids
                    .unwrap_or_default()
                    .split(',')
                    .filter(|g| !g.is_empty())
                    .filter_map(|g| g.parse().ok())
                    .collect(),
            })
        })
        .collect()
    }

    fn devices(&self) -> Result<Vec<DeviceRow>, StorageError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT device_id, member_id, name, enrolled_at, revoked_at, last_seen_at, last_unsynced
             FROM devices ORDER BY enrolled_at",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, Option<i64>>(4)?,
                r.get::<_, Option<i64>>(5)?,
                r.get(6)?,
            ))
        })?;
        rows.map(|r| {
            let (id, member, name, enrolled, revoked, seen, unsynced) = r?;
            Ok(DeviceRow {
                id: parse(&id, "device id")?,
                member_id: parse(&member, "member id")?,
                name,
                enrolled_at: Timestamp(enrolled),
                revoked_at: revoked.map(Timestamp),
                last_seen_at: seen.map(Timestamp),
                last_unsynced: unsynced,
            })
        })
        .collect()
    }

    fn latest_seq(&self) -> Result<u64, StorageError> {
        let seq: i64 =
            self.lock().query_row("SELECT COALESCE(max(seq), 0) FROM changes", [], |r| r.get(0))?;
        Ok(seq.unsigned_abs())
    }
}
