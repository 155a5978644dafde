//! Attachment bytes on the server, written once over [`BlobTx`] like the sync logic over
//! `LogTx`: chunked resumable upload (a chunk must start where the stored bytes end, and carries
//! its own SHA-256), a whole-file check against the content hash before the attachment becomes
//! visible, and ranged reads of complete attachments. Who may touch which attachment is decided
//! by [`in_scope`]: only through a document in the device's scope that references it.
//!
//! Knowing a file's hash is not having it (issue 16). Every upload is staged apart, per
//! attachment, document and device, with the size that upload's reference declares; only when
//! the whole matches the hash does it count:
//! - the first complete upload becomes the attachment's bytes (so a wrong size declared by
//!   another reference, or someone's half-finished upload, never blocks the real one);
//! - the document it came through is recorded as a *holder*, and the device as a *possessor*:
//!   the attachment is served through a document only if bytes were uploaded through it, or a
//!   possessor uploaded changes to it (a phone that put one photo into two records sends it
//!   once) ([`servable`]). A device that has the bytes
//!   proves it by uploading them again even when the server has them (those bytes are checked,
//!   then dropped, and do not count against its quota);
//! - attachments completed before holders were recorded (migration 0010) stay served through
//!   any referencing document in scope, as they were.
//!
//! Each device may store at most its quota of attachment bytes (`quota_exceeded`).

use doorstep_core::doc::attachment::find_ref;
use doorstep_core::ids::{DeviceId, DocumentId};
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
    /// Storing this upload would take the device past its attachment quota (in bytes): nothing
    /// was stored.
    QuotaExceeded(u64),
}

/// The few reads and writes attachment storage needs from one open transaction. `hash`,
/// `doc` and `device` are the text forms of their ids.
pub(crate) trait BlobTx {
    /// Size, bytes received and completeness of a stored attachment, locked for this
    /// transaction where the backend can.
    fn blob(&mut self, hash: &str) -> Result<Option<(i64, i64, bool)>, StorageError>;
    /// Whether the attachment is complete and may be served through document `doc`: bytes were
    /// uploaded through it, or a device that uploaded them whole uploaded changes to `doc`, or
    /// the attachment predates holders.
    fn servable(&mut self, hash: &str, doc: &str) -> Result<bool, StorageError>;
    /// The chunks overlapping bytes `[from, to)` of a complete attachment, in order, with their
    /// start.
    fn chunks(&mut self, hash: &str, from: i64, to: i64) -> Result<Vec<(i64, Vec<u8>)>, StorageError>;
    /// Size and bytes received of one staged upload, locked for this transaction where the
    /// backend can.
    fn upload(&mut self, hash: &str, doc: &str, device: &str) -> Result<Option<(i64, i64)>, StorageError>;
    /// The staged upload of `hash` that got furthest: size and bytes received.
    fn furthest_upload(&mut self, hash: &str) -> Result<Option<(i64, i64)>, StorageError>;
    /// Starts (or starts again, dropping what it had) a staged upload of `size` bytes.
    fn reset_upload(
        &mut self,
        hash: &str,
        doc: &str,
        device: &str,
        size: i64,
        media_type: &str,
        now: Timestamp,
    ) -> Result<(), StorageError>;
    /// Stores one chunk of a staged upload at `start` and records the bytes received.
    fn add_upload_chunk(
        &mut self,
        hash: &str,
        doc: &str,
        device: &str,
        start: i64,
        bytes: &[u8],
    ) -> Result<(), StorageError>;
    /// The chunks of a staged upload, in order.
    fn upload_chunks(&mut self, hash: &str, doc: &str, device: &str) -> Result<Vec<Vec<u8>>, StorageError>;
    /// Makes a staged upload (checked whole) the attachment's bytes, replacing any incomplete
    /// bytes from before staging, and drops the staged upload.
    fn promote_upload(
        &mut self,
        hash: &str,
        doc: &str,
        device: &str,
        size: i64,
        media_type: &str,
        now: Timestamp,
    ) -> Result<(), StorageError>;
    /// Drops a staged upload and its chunks.
    fn drop_upload(&mut self, hash: &str, doc: &str, device: &str) -> Result<(), StorageError>;
    /// Records that the attachment's bytes were uploaded through `doc` by `device` (and that
    /// `device` has them).
    fn add_holder(&mut self, hash: &str, doc: &str, device: &str, now: Timestamp)
    -> Result<(), StorageError>;
    /// Attachment bytes `device` has stored.
    fn usage(&mut self, device: &str) -> Result<i64, StorageError>;
    /// Adds `delta` (may be negative) to the bytes `device` has stored.
    fn add_usage(&mut self, device: &str, delta: i64) -> Result<(), StorageError>;
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

/// The stored status of an attachment: complete, or else the staged upload that got furthest
/// (for operators and tests; devices see their own upload's, [`upload_status`]).
pub(crate) fn blob_status(
    tx: &mut dyn BlobTx,
    hash: &ContentHash,
) -> Result<Option<BlobStatus>, StorageError> {
    let key = hash.to_string();
    let blob = tx.blob(&key)?;
    if let Some(row) = blob.filter(|(_, _, complete)| *complete) {
        return Ok(Some(status(row)));
    }
    if let Some((size, received)) = tx.furthest_upload(&key)? {
        return Ok(Some(status((size, received, false))));
    }
    Ok(blob.map(status))
}

/// The status of an attachment as the device uploading it through `doc` sees it: complete if
/// it is served through `doc`, else how much of the device's own upload the server holds.
pub(crate) fn upload_status(
    tx: &mut dyn BlobTx,
    reference: &AttachmentRef,
    doc: DocumentId,
    device: DeviceId,
) -> Result<BlobStatus, StorageError> {
    let hash = reference.hash.to_string();
    if tx.servable(&hash, &doc.to_string())?
        && let Some(row) = tx.blob(&hash)?
    {
        return Ok(status(row));
    }
    let received = match tx.upload(&hash, &doc.to_string(), &device.to_string())? {
        Some((size, received)) if u64::try_from(size).ok() == Some(reference.size) => received,
        _ => 0,
    };
    Ok(BlobStatus { size: reference.size, received: u64::try_from(received).unwrap_or(0), complete: false })
}

/// Whether the complete attachment may be served through document `doc` (see the module
/// documentation).
pub(crate) fn servable(
    tx: &mut dyn BlobTx,
    hash: &ContentHash,
    doc: DocumentId,
) -> Result<bool, StorageError> {
    tx.servable(&hash.to_string(), &doc.to_string())
}

/// Stores one chunk of `device`'s upload of `reference` through `doc` at `offset`, after the
/// caller checked the chunk's own hash; `quota` is the most attachment bytes the device may
/// store.
#[allow(clippy::too_many_arguments)]
pub(crate) fn put_chunk(
    tx: &mut dyn BlobTx,
    reference: &AttachmentRef,
    doc: DocumentId,
    device: DeviceId,
    offset: u64,
    chunk: &[u8],
    quota: u64,
    now: Timestamp,
) -> Result<ChunkOutcome, StorageError> {
    let hash = reference.hash.to_string();
    let (doc_key, device_key) = (doc.to_string(), device.to_string());
    if tx.servable(&hash, &doc_key)?
        && let Some(row) = tx.blob(&hash)?
    {
        return Ok(ChunkOutcome::Stored(status(row)));
    }
    let size = reference.size;
    let view = |received: u64| BlobStatus { size, received, complete: false };
    let received = match tx.upload(&hash, &doc_key, &device_key)? {
        Some((stored_size, received)) if u64::try_from(stored_size).ok() == Some(size) => {
            u64::try_from(received).unwrap_or(0)
        }
        // A new upload, or one begun under another size (its bytes dropped), starts at 0.
        earlier if offset == 0 => {
            tx.reset_upload(&hash, &doc_key, &device_key, int(size)?, &reference.media_type, now)?;
            if let Some((_, dropped)) = earlier {
                tx.add_usage(&device_key, -dropped)?;
            }
            0
        }
        _ => return Ok(ChunkOutcome::WrongOffset(view(0))),
    };
    let end = offset + chunk.len() as u64;
    if offset != received || chunk.is_empty() || end > size {
        return Ok(ChunkOutcome::WrongOffset(view(received)));
    }
    // The whole upload must fit: what the device stored before it, plus its size.
    let used = u64::try_from(tx.usage(&device_key)?).unwrap_or(0);
    if used.saturating_sub(received).saturating_add(size) > quota {
        return Ok(ChunkOutcome::QuotaExceeded(quota));
    }
    tx.add_upload_chunk(&hash, &doc_key, &device_key, int(offset)?, chunk)?;
    tx.add_usage(&device_key, int(chunk.len() as u64)?)?;
    if end < size {
        return Ok(ChunkOutcome::Stored(view(end)));
    }
    let mut whole = sha2::Sha256::default();
    for bytes in tx.upload_chunks(&hash, &doc_key, &device_key)? {
        sha2::Digest::update(&mut whole, &bytes);
    }
    let whole: [u8; 32] = sha2::Digest::finalize(whole).into();
    if whole != reference.hash.0 {
        // Dropped: the bytes no longer take room, so they no longer count.
        tx.reset_upload(&hash, &doc_key, &device_key, int(size)?, &reference.media_type, now)?;
        tx.add_usage(&device_key, -int(size)?)?;
        return Ok(ChunkOutcome::Mismatch);
    }
    let already = tx.blob(&hash)?.is_some_and(|(_, _, complete)| complete);
    if already {
        // The server had the bytes: this upload proved possession; it stores nothing new.
        tx.drop_upload(&hash, &doc_key, &device_key)?;
        tx.add_usage(&device_key, -int(size)?)?;
    } else {
        tx.promote_upload(&hash, &doc_key, &device_key, int(size)?, &reference.media_type, now)?;
    }
    tx.add_holder(&hash, &doc_key, &device_key, now)?;
    Ok(ChunkOutcome::Completed(BlobStatus { size, received: size, complete: true }))
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
