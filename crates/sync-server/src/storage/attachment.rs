//! Attachment bytes on the server, written once over [`BlobTx`] like the sync logic over
//! `LogTx`: chunked resumable upload (a chunk must start where the stored bytes end, and carries
//! its own SHA-256), a whole-file check against the content hash before the attachment becomes
//! visible, and ranged reads of complete attachments. Who may touch which attachment is decided
//! by [`in_scope`]: only through a document in the device's scope that references it.

use doorstep_core::doc::attachment::find_ref;
use doorstep_core::ids::DocumentId;
use doorstep_core::model::attachment::{AttachmentRef, ContentHash};
use doorstep_core::time::Timestamp;
use serde::Serialize;

use crate::storage::engine::{LogTx, ScopeRule, damaged};
use crate::storage::{Device, StorageError};

/// Largest chunk one upload request may carry.
pub const MAX_CHUNK_BYTES: usize = 256 * 1024;

/// How much of an attachment the server holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct BlobStatus {
    /// Its size.
    pub size: u64,
    /// Bytes stored, from offset 0.
    pub received: u64,
    /// Whether it is whole and checked against its hash (only then can it be fetched).
    pub complete: bool,
}

/// What became of an uploaded chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkOutcome {
    /// Stored (or the attachment was already complete); the status after it.
    Stored(BlobStatus),
    /// This chunk completed the attachment, and the whole matched its hash.
    Completed(BlobStatus),
    /// The chunk does not start where the stored bytes end: nothing was stored. The device
    /// continues from `received`.
    WrongOffset(BlobStatus),
    /// The last chunk completed the file but the whole does not match its hash: every chunk
    /// was dropped, the upload starts again from 0.
    Mismatch,
}

/// The few reads and writes attachment storage needs from one open transaction.
pub(crate) trait BlobTx {
    /// Size, bytes received and completeness of a stored attachment, locked for this
    /// transaction where the backend can.
    fn blob(&mut self, hash: &str) -> Result<Option<(i64, i64, bool)>, StorageError>;
    /// Creates the attachment's row (nothing received) unless it exists.
    fn create_blob(
        &mut self,
        hash: &str,
        size: i64,
        media_type: &str,
        now: Timestamp,
    ) -> Result<(), StorageError>;
    /// Stores one chunk at `start`.
    fn add_chunk(&mut self, hash: &str, start: i64, bytes: &[u8]) -> Result<(), StorageError>;
    /// Records the bytes received and whether the attachment is complete.
    fn set_blob(&mut self, hash: &str, received: i64, complete: bool) -> Result<(), StorageError>;
    /// The chunks overlapping bytes `[from, to)`, in order, with their start.
    fn chunks(&mut self, hash: &str, from: i64, to: i64) -> Result<Vec<(i64, Vec<u8>)>, StorageError>;
    /// Drops every chunk of the attachment.
    fn drop_chunks(&mut self, hash: &str) -> Result<(), StorageError>;
    /// The stored thumbnail: media type and bytes.
    fn thumbnail(&mut self, hash: &str) -> Result<Option<(String, Vec<u8>)>, StorageError>;
    /// Stores a thumbnail.
    fn put_thumbnail(&mut self, hash: &str, media_type: &str, bytes: &[u8]) -> Result<(), StorageError>;
}

fn status(row: (i64, i64, bool)) -> BlobStatus {
    let (size, received, complete) = row;
    BlobStatus {
        size: u64::try_from(size).unwrap_or(0),
        received: u64::try_from(received).unwrap_or(0),
        complete,
    }
}

fn int(n: u64) -> Result<i64, StorageError> {
    i64::try_from(n).map_err(|_| damaged(format!("{n} is out of range")))
}

/// The reference to `hash` in document `doc`, if the device's scope covers the document and the
/// document references it. Fetching and uploading both need this (holding and writing a
/// document are the same scope today, [`crate::scope::Scope::may_write`]).
pub(crate) fn in_scope(
    tx: &mut dyn LogTx,
    device: &Device,
    doc: DocumentId,
    hash: &ContentHash,
) -> Result<Option<AttachmentRef>, StorageError> {
    let rule = ScopeRule::of(&device.scope);
    let Some(snapshot) = tx.snapshots(&rule, &[doc])?.pop() else { return Ok(None) };
    let loaded =
        automerge::AutoCommit::load(&snapshot.bytes).map_err(|e| damaged(format!("document {doc}: {e}")))?;
    Ok(find_ref(&loaded, hash))
}

/// The stored status of an attachment.
pub(crate) fn blob_status(
    tx: &mut dyn BlobTx,
    hash: &ContentHash,
) -> Result<Option<BlobStatus>, StorageError> {
    Ok(tx.blob(&hash.to_string())?.map(status))
}

/// Stores one chunk of `reference` at `offset`, after the caller checked its own hash.
pub(crate) fn put_chunk(
    tx: &mut dyn BlobTx,
    reference: &AttachmentRef,
    offset: u64,
    chunk: &[u8],
    now: Timestamp,
) -> Result<ChunkOutcome, StorageError> {
    let hash = reference.hash.to_string();
    tx.create_blob(&hash, int(reference.size)?, &reference.media_type, now)?;
    let current = status(tx.blob(&hash)?.ok_or_else(|| damaged(format!("attachment {hash} vanished")))?);
    if current.complete {
        return Ok(ChunkOutcome::Stored(current));
    }
    let end = offset + chunk.len() as u64;
    if offset != current.received || chunk.is_empty() || end > current.size {
        return Ok(ChunkOutcome::WrongOffset(current));
    }
    tx.add_chunk(&hash, int(offset)?, chunk)?;
    if end < current.size {
        tx.set_blob(&hash, int(end)?, false)?;
        return Ok(ChunkOutcome::Stored(BlobStatus { received: end, ..current }));
    }
    let mut whole = sha2::Sha256::default();
    for (_, bytes) in tx.chunks(&hash, 0, int(end)?)? {
        sha2::Digest::update(&mut whole, &bytes);
    }
    let whole: [u8; 32] = sha2::Digest::finalize(whole).into();
    if whole != reference.hash.0 {
        tx.drop_chunks(&hash)?;
        tx.set_blob(&hash, 0, false)?;
        return Ok(ChunkOutcome::Mismatch);
    }
    tx.set_blob(&hash, int(end)?, true)?;
    Ok(ChunkOutcome::Completed(BlobStatus { received: end, complete: true, ..current }))
}

/// Bytes `[offset, offset + len)` of a complete attachment (cut at its end); `None` if it is
/// not complete.
pub(crate) fn read_range(
    tx: &mut dyn BlobTx,
    hash: &ContentHash,
    offset: u64,
    len: u64,
) -> Result<Option<Vec<u8>>, StorageError> {
    let key = hash.to_string();
    let Some(current) = tx.blob(&key)?.map(status) else { return Ok(None) };
    if !current.complete {
        return Ok(None);
    }
    let from = offset.min(current.size);
    let to = offset.saturating_add(len).min(current.size);
    let mut out = Vec::with_capacity(usize::try_from(to - from).unwrap_or(0));
    for (start, bytes) in tx.chunks(&key, int(from)?, int(to)?)? {
        let start = u64::try_from(start).unwrap_or(0);
        let lo = usize::try_from(from.saturating_sub(start)).unwrap_or(0).min(bytes.len());
        let hi = usize::try_from(to.saturating_sub(start)).unwrap_or(0).min(bytes.len());
        out.extend_from_slice(&bytes[lo..hi]);
    }
    Ok(Some(out))
}
