//! The relay's sync logic, written once over [`LogTx`]: the few reads and writes a backend's
//! open transaction must offer. SQLite and PostgreSQL implement `LogTx`; everything that decides
//! what a device may upload, what it is sent, what it must purge and which cursor it gets lives
//! here, so the two backends cannot drift apart.

use std::collections::{BTreeMap, HashSet};

use automerge::sync::SyncDoc;
use automerge::{AutoCommit, Change, ChangeHash};
use doorstep_core::doc::DocumentKind;
use doorstep_core::ids::{DeviceId, DocumentId, HouseholdId, MemberId};
use doorstep_core::store::heads::{decode_heads, encode_heads};
use doorstep_core::sync::digest::scope_digest;
use doorstep_core::sync::entries::Uploader;
use doorstep_core::sync::message::{
    Ack, DocData, DocSyncMessage, ErrorCode, ManifestEntry, SyncReply, SyncRequest, Upload, doc_id,
    wire_heads, wire_id,
};
use doorstep_core::sync::validate::{self, CheckedUpload, DocFacts};
use doorstep_core::time::Timestamp;
use serde_bytes::ByteBuf;

use crate::scope::{Reach, Role, Scope};
use crate::storage::{Device, StorageError, SyncFailure, SyncLimits, Synced};

/// How many log rows or documents a backend is asked for at once.
const BATCH: usize = 512;

/// One row of the change log, joined with its document, as catch-up reads it.
#[derive(Debug)]
pub(crate) struct LogRow {
    /// Position in the log.
    pub seq: i64,
    /// The document changed.
    pub doc: DocumentId,
    /// Its kind.
    pub kind: DocumentKind,
    /// The change's bytes.
    pub bytes: Vec<u8>,
    /// The device that uploaded it (`None`: written by the server).
    pub origin: Option<DeviceId>,
    /// Whether the device asking holds the document.
    pub held: bool,
    /// Size of the document's stored snapshot (what sending it whole costs).
    pub snapshot_bytes: usize,
}

/// A document in a scope that the device does not hold yet.
#[derive(Debug)]
pub(crate) struct Unheld {
    /// The document.
    pub doc: DocumentId,
    /// Size of its stored snapshot.
    pub snapshot_bytes: usize,
}

/// A whole stored document, as sent to a device.
#[derive(Debug)]
pub(crate) struct Snapshot {
    /// The document.
    pub doc: DocumentId,
    /// Its kind.
    pub kind: DocumentKind,
    /// `save()` of the document.
    pub bytes: Vec<u8>,
}

/// Which documents a scope covers, in terms a backend turns into its own SQL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ScopeRule {
    /// Every document.
    All,
    /// Documents in the grids assigned to this member.
    Grids(MemberId),
    /// Households this member helps, and requests they hold or of those households.
    Helper(MemberId),
    /// Requests dispatched to this department.
    Department(String),
}

impl ScopeRule {
    /// The rule for a scope.
    pub fn of(scope: &Scope) -> Self {
        match scope.role {
            Role::Admin => ScopeRule::All,
            Role::GridWorker | Role::Supervisor => ScopeRule::Grids(scope.member),
            Role::Volunteer => ScopeRule::Helper(scope.member),
            Role::DepartmentStaff => ScopeRule::Department(
                scope.department.as_ref().map(|d| d.as_str().to_owned()).unwrap_or_default(),
            ),
        }
    }
}

/// The reads and writes the sync logic needs from one open transaction of a backend. Every
/// method works inside that transaction; the caller commits.
pub(crate) trait LogTx {
    /// Whether the device holds the document (was sent it whole, or wrote it).
    fn holds(&mut self, device: DeviceId, doc: DocumentId) -> Result<bool, StorageError>;
    /// Records that the device holds (or no longer holds) the document.
    fn set_held(&mut self, device: DeviceId, doc: DocumentId, held: bool) -> Result<(), StorageError>;
    /// Whether the member is a helper of the household.
    fn helps(&mut self, member: MemberId, household: HouseholdId) -> Result<bool, StorageError>;
    /// The stored document: its snapshot, the size counted against its limit, and its facts.
    fn load(&mut self, doc: DocumentId) -> Result<Option<StoredRow>, StorageError>;
    /// The stored document's encoded heads (`None` if the server does not have it).
    fn stored_heads(&mut self, doc: DocumentId) -> Result<Option<Vec<u8>>, StorageError>;
    /// Appends changes not yet in the log (by hash); returns the last new sequence number and
    /// the bytes added, or `None` when every change was already stored.
    fn append_changes(
        &mut self,
        doc: DocumentId,
        changes: &[(ChangeHash, Vec<u8>)],
        origin: Option<DeviceId>,
        now: Timestamp,
    ) -> Result<Option<(i64, usize)>, StorageError>;
    /// Inserts or updates the document row: its facts, heads and snapshot as of `last_seq`;
    /// `added` bytes go onto its stored size.
    fn put_document(&mut self, row: &DocumentRow<'_>) -> Result<(), StorageError>;
    /// The members helping with a household document.
    fn helpers(&mut self, doc: DocumentId) -> Result<HashSet<MemberId>, StorageError>;
    /// Replaces the members helping with a household document.
    fn set_helpers(&mut self, doc: DocumentId, helpers: &HashSet<MemberId>) -> Result<(), StorageError>;
    /// Raises a member's scope version: their devices do a full comparison next round.
    fn bump_scope_version(&mut self, member: MemberId) -> Result<(), StorageError>;
    /// The highest sequence number in the log that is committed (0 when empty).
    fn max_seq(&mut self) -> Result<i64, StorageError>;
    /// Whole documents by id, only those inside `rule`, in the order asked.
    fn snapshots(&mut self, rule: &ScopeRule, docs: &[DocumentId]) -> Result<Vec<Snapshot>, StorageError>;
    /// Documents inside `rule` that the device does not hold, ordered by id, after `after`.
    fn unheld(
        &mut self,
        rule: &ScopeRule,
        device: DeviceId,
        after: Option<DocumentId>,
        limit: usize,
    ) -> Result<Vec<Unheld>, StorageError>;
    /// Documents the device holds that are outside `rule`; with `moved_after`, only those whose
    /// scope facts moved (see [`LogTx::note_facts_moved`]) past that sequence number.
    fn held_outside(
        &mut self,
        rule: &ScopeRule,
        device: DeviceId,
        moved_after: Option<i64>,
    ) -> Result<Vec<DocumentId>, StorageError>;
    /// Records that the document's scope facts (kind, grid, household, department, assignee)
    /// changed at log position `seq`: a device holding it may have to purge it.
    fn note_facts_moved(&mut self, doc: DocumentId, seq: i64) -> Result<(), StorageError>;
    /// Log rows in `(after, upto]` of documents inside `rule`, in order, at most `limit`.
    fn log_rows(
        &mut self,
        rule: &ScopeRule,
        device: DeviceId,
        after: i64,
        upto: i64,
        limit: usize,
    ) -> Result<Vec<LogRow>, StorageError>;
    /// Every document inside `rule` with its kind and encoded heads, ordered by id.
    fn heads_in(
        &mut self,
        rule: &ScopeRule,
    ) -> Result<Vec<(DocumentId, DocumentKind, Vec<u8>)>, StorageError>;
    /// Records the scope version the device was last fully caught up with.
    fn set_scope_version_seen(&mut self, device: DeviceId, seen: i64) -> Result<(), StorageError>;
    /// The digest cached for the device: bytes, log position, scope version.
    fn cached_digest(&mut self, device: DeviceId) -> Result<Option<(Vec<u8>, i64, i64)>, StorageError>;
    /// Caches the device's digest at a log position and scope version.
    fn save_digest(
        &mut self,
        device: DeviceId,
        digest: &[u8],
        seq: i64,
        version: i64,
    ) -> Result<(), StorageError>;
    /// Records the device's contact: when, and how many changes it still had unsynced.
    fn record_contact(&mut self, device: DeviceId, now: Timestamp, unsynced: i64)
    -> Result<(), StorageError>;
}

/// A document row to store.
pub(crate) struct DocumentRow<'a> {
    /// The document.
    pub doc: DocumentId,
    /// What scope rules need to know of it.
    pub facts: &'a DocFacts,
    /// Encoded heads.
    pub heads: &'a [u8],
    /// `save()` of the whole document.
    pub snapshot: &'a [u8],
    /// Bytes of changes just appended.
    pub added: usize,
    /// The last sequence number of its changes.
    pub last_seq: i64,
    /// When stored.
    pub now: Timestamp,
}

pub(crate) fn damaged(what: impl Into<String>) -> StorageError {
    StorageError::Damaged(what.into())
}

fn refused(code: ErrorCode, message: impl Into<String>, doc: Option<DocumentId>) -> SyncFailure {
    SyncFailure::Refused { code, message: message.into(), doc }
}

/// Parses a stored identifier or code.
pub(crate) fn parse<T: std::str::FromStr>(text: &str, what: &str) -> Result<T, StorageError> {
    text.parse().map_err(|_| damaged(format!("bad {what} {text:?}")))
}

/// Parses a stored document kind.
pub(crate) fn kind(text: &str) -> Result<DocumentKind, StorageError> {
    DocumentKind::from_stored(text).ok_or_else(|| damaged(format!("bad document kind {text:?}")))
}

/// A document's row as an upload needs it.
pub(crate) struct StoredRow {
    /// `save()` of the whole document.
    pub snapshot: Vec<u8>,
    /// Bytes counted against the document size limit.
    pub bytes: usize,
    /// The facts stored beside it, helpers left empty (they are in their own table).
    pub facts: DocFacts,
}

impl StoredRow {
    /// Builds the row from its stored columns.
    pub(crate) fn from_columns(
        snapshot: Vec<u8>,
        bytes: i64,
        kind_text: &str,
        grid: &str,
        household: Option<&str>,
        department: Option<&str>,
        assignee: Option<&str>,
    ) -> Result<Self, StorageError> {
        Ok(StoredRow {
            snapshot,
            bytes: usize::try_from(bytes).unwrap_or(usize::MAX),
            facts: DocFacts {
                kind: kind(kind_text)?,
                grid: parse(grid, "grid id")?,
                household: household.map(|h| parse(h, "household id")).transpose()?,
                department: department.map(|d| parse(d, "department")).transpose()?,
                assignee: assignee.map(|a| parse(a, "member id")).transpose()?,
                helpers: Vec::new(),
            },
        })
    }
}

/// The stored document.
pub(crate) fn load_document(tx: &mut dyn LogTx, id: DocumentId) -> Result<Option<AutoCommit>, StorageError> {
    match tx.load(id)? {
        None => Ok(None),
        Some(row) => Ok(Some(open_snapshot(id, &row.snapshot)?)),
    }
}

fn open_snapshot(id: DocumentId, snapshot: &[u8]) -> Result<AutoCommit, StorageError> {
    AutoCommit::load(snapshot).map_err(|e| damaged(format!("document {id}: {e}")))
}

fn helps(tx: &mut dyn LogTx, member: MemberId, household: Option<HouseholdId>) -> Result<bool, StorageError> {
    match household {
        Some(household) => tx.helps(member, household),
        None => Ok(false),
    }
}

/// Whether a document stored with facts `before` may have left someone's scope by now having
/// `after`: its row facts differ (helpers are handled through scope versions).
fn facts_moved(before: &DocFacts, after: &DocFacts) -> bool {
    before.kind != after.kind
        || before.grid != after.grid
        || before.household != after.household
        || before.department != after.department
        || before.assignee != after.assignee
}

/// Stores new changes of a document with its new state, facts and snapshot. `before` is the
/// document's facts as stored until now (`None` for a new document); `saved` is `doc.save()`
/// when the caller already made it.
#[allow(clippy::too_many_arguments)]
pub(crate) fn store_document(
    tx: &mut dyn LogTx,
    id: DocumentId,
    doc: &mut AutoCommit,
    before: Option<&DocFacts>,
    facts: &DocFacts,
    new_changes: &[(ChangeHash, Vec<u8>)],
    origin: Option<DeviceId>,
    saved: Option<Vec<u8>>,
    now: Timestamp,
) -> Result<(), StorageError> {
    let Some((last_seq, added)) = tx.append_changes(id, new_changes, origin, now)? else { return Ok(()) };
    // A new document is held by nobody yet; an existing one whose facts moved may have to leave
    // the devices holding it.
    if before.is_some_and(|before| facts_moved(before, facts)) {
        tx.note_facts_moved(id, last_seq)?;
    }
    let snapshot = saved.unwrap_or_else(|| doc.save());
    let heads = encode_heads(&doc.get_heads());
    tx.put_document(&DocumentRow {
        doc: id,
        facts,
        heads: &heads,
        snapshot: &snapshot,
        added,
        last_seq,
        now,
    })?;
    let before = tx.helpers(id)?;
    let after: HashSet<MemberId> = facts.helpers.iter().copied().collect();
    if before != after {
        tx.set_helpers(id, &after)?;
        // A helper added or removed gains or loses the household's requests too, which did not
        // change themselves: their scope changed, so their devices do a full comparison.
        for member in before.symmetric_difference(&after) {
            tx.bump_scope_version(*member)?;
        }
    }
    Ok(())
}

/// Stores documents the server wrote (import, demo data, dashboard actions): only changes the
/// log lacks are appended.
pub(crate) fn write_server_documents(
    tx: &mut dyn LogTx,
    docs: &mut [(DocumentId, AutoCommit)],
    now: Timestamp,
) -> Result<(), StorageError> {
    for (id, doc) in docs.iter_mut() {
        let stored = tx.load(*id)?;
        let known: HashSet<ChangeHash> = match &stored {
            Some(row) => {
                // Devices may have uploaded since the caller loaded the document (a dashboard
                // action): merge their changes so the stored snapshot keeps them.
                let mut existing = open_snapshot(*id, &row.snapshot)?;
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
        store_document(tx, *id, doc, stored.as_ref().map(|row| &row.facts), &facts, &new, None, None, now)?;
    }
    Ok(())
}

/// Applies checked uploads' scope rules, then stores them. Scope is the member's scope now;
/// the one grace is a document the device holds that has left its scope and that the server
/// has not yet told it to purge (the round that tells it first takes the work the device did
/// before it knew: DESIGN's "a reassignment never drops unsynced work"). Once the purge is
/// sent the device no longer holds it, for reads and writes alike (see [`catch_up`]).
fn commit_checked(
    tx: &mut dyn LogTx,
    device: &Device,
    id: DocumentId,
    ready: Ready,
    now: Timestamp,
) -> Result<(), SyncFailure> {
    let Ready { mut checked, saved, .. } = ready;
    let scope = &device.scope;
    let held = checked.before.is_some() && tx.holds(device.id, id)?;
    let before_ok = match &checked.before {
        None => true,
        Some(before) => held || scope.may_write(before, helps(tx, scope.member, before.household)?),
    };
    let after = &checked.after;
    let after_ok = scope.may_write(after, helps(tx, scope.member, after.household)?)
        || (held && checked.before.as_ref().is_some_and(|b| b.grid == after.grid && b.kind == after.kind));
    if !before_ok || !after_ok {
        return Err(refused(
            ErrorCode::OutOfScope,
            format!("document {id} is outside this device's scope"),
            Some(id),
        ));
    }
    let (before, changes) = (checked.before.as_ref(), &checked.new_changes);
    store_document(tx, id, &mut checked.doc, before, after, changes, Some(device.id), saved, now)?;
    tx.set_held(device.id, id, true)?;
    Ok(())
}

/// Checks that the households an upload newly links to (a "same household" mark's other
/// household, a new request's household) are in the uploader's scope: a mark or a request
/// never reaches into someone else's grid. A household the server does not have yet must be
/// among the same round's uploads (`uploaded`), which are checked in their own right.
fn check_links(
    tx: &mut dyn LogTx,
    device: &Device,
    id: DocumentId,
    links: &[HouseholdId],
    uploaded: &HashSet<DocumentId>,
) -> Result<(), SyncFailure> {
    for household in links {
        let target: DocumentId = (*household).into();
        let in_scope = match stored_row(tx, target)? {
            Some(row) => {
                row.facts.kind == DocumentKind::Household && device.scope.may_write(&row.facts, false)
            }
            None => uploaded.contains(&target),
        };
        if !in_scope {
            return Err(refused(
                ErrorCode::OutOfScope,
                format!("document {id} links to household {household}, which is outside this device's scope"),
                Some(id),
            ));
        }
    }
    Ok(())
}

/// An upload checked and applied, ready to store: with the stored heads it was checked against
/// and, when it was checked ahead of its round (see [`check_ahead`]), its new snapshot.
pub(crate) struct Ready {
    id: DocumentId,
    /// Encoded heads of the stored document it was applied to (`None`: the server had none).
    base: Option<Vec<u8>>,
    checked: CheckedUpload,
    /// `save()` of the document after the upload, when made ahead and it adds anything.
    saved: Option<Vec<u8>>,
}

/// The stored rows a round's uploads apply to (with households' helpers) and their encoded heads:
/// read inside the backend's lock, checked outside it.
pub(crate) type UploadRows = Vec<(DocumentId, Option<Vec<u8>>, Option<StoredRow>)>;

/// Reads the stored documents a round uploads to (a few short reads).
pub(crate) fn rows_for_uploads(
    tx: &mut dyn LogTx,
    request: &SyncRequest,
) -> Result<UploadRows, StorageError> {
    request
        .uploads
        .iter()
        .filter(|u| !u.changes.is_empty())
        .map(|upload| {
            let id = doc_id(&upload.doc);
            Ok((id, tx.stored_heads(id)?, stored_row(tx, id)?))
        })
        .collect()
}

/// The stored document with, for a household, its helpers in its facts.
fn stored_row(tx: &mut dyn LogTx, id: DocumentId) -> Result<Option<StoredRow>, StorageError> {
    let Some(mut row) = tx.load(id)? else { return Ok(None) };
    if row.facts.kind == DocumentKind::Household {
        row.facts.helpers = tx.helpers(id)?.into_iter().collect();
        row.facts.helpers.sort();
    }
    Ok(Some(row))
}

/// Checks one upload against its stored row without touching storage: the Automerge work of a
/// round (load, apply, validate and, with `save`, save), which a backend can do outside its
/// writer lock. `base` is the row's encoded heads when the check is made ahead of the round.
fn check_against(
    device: &Device,
    id: DocumentId,
    base: Option<Vec<u8>>,
    row: Option<StoredRow>,
    changes: &[Vec<u8>],
    limits: &SyncLimits,
    save: bool,
) -> Result<Ready, SyncFailure> {
    // The facts before the upload come from the row, not from reading the whole document.
    let existing = match row {
        None => None,
        Some(row) => {
            let doc = open_snapshot(id, &row.snapshot)?;
            Some(validate::Stored { doc, facts: row.facts, bytes: row.bytes })
        }
    };
    let uploader = Uploader { member: device.scope.member, role: device.scope.role };
    // The device's own actor, and those of the devices it replaced on the same replica.
    let actors: Vec<automerge::ActorId> =
        std::iter::once(device.actor.clone()).chain(device.earlier_actors.iter().cloned()).collect();
    let mut checked =
        validate::check_upload_by(id, existing, changes, &actors, &uploader, limits.max_document_bytes)
            .map_err(|r| refused(r.code, r.message, Some(id)))?;
    let saved = (save && !checked.new_changes.is_empty()).then(|| checked.doc.save());
    Ok(Ready { id, base, checked, saved })
}

/// Checks a round's uploads against rows read before its transaction ([`rows_for_uploads`]),
/// touching no storage. A refusal is final (the round would have been refused at that moment);
/// an upload whose document changed before the round stores it is checked again inside it.
pub(crate) fn check_ahead(
    device: &Device,
    rows: UploadRows,
    request: &SyncRequest,
    limits: &SyncLimits,
) -> Result<Vec<Ready>, SyncFailure> {
    let uploads = request.uploads.iter().filter(|u| !u.changes.is_empty());
    rows.into_iter()
        .zip(uploads)
        .map(|((id, base, row), upload)| {
            check_against(device, id, base, row, &upload_changes(upload), limits, true)
        })
        .collect()
}

/// The upload to `id` as checked ahead, if the stored document is still the one it was checked
/// against; otherwise checked now.
fn ready_upload(
    tx: &mut dyn LogTx,
    device: &Device,
    ahead: &mut Vec<Ready>,
    upload: &Upload,
    limits: &SyncLimits,
) -> Result<Ready, SyncFailure> {
    let id = doc_id(&upload.doc);
    if let Some(at) = ahead.iter().position(|r| r.id == id) {
        let ready = ahead.swap_remove(at);
        if tx.stored_heads(id)? == ready.base {
            return Ok(ready);
        }
    }
    let row = stored_row(tx, id)?;
    check_against(device, id, None, row, &upload_changes(upload), limits, false)
}

/// An upload's changes as owned bytes.
fn upload_changes(upload: &Upload) -> Vec<Vec<u8>> {
    upload.changes.iter().map(|c| c.to_vec()).collect()
}

struct CatchUp {
    docs: Vec<DocData>,
    purge: Vec<DocumentId>,
    cursor: u64,
    more: bool,
    scope_complete: bool,
}

fn whole(snapshot: Snapshot) -> DocData {
    DocData {
        doc: wire_id(snapshot.doc),
        kind: snapshot.kind,
        full: true,
        data: ByteBuf::from(snapshot.bytes),
    }
}

/// What the device lacks in its scope since `cursor` (see `docs/PROTOCOL.md`, "Catch-up").
fn catch_up(
    tx: &mut dyn LogTx,
    device: &Device,
    cursor: u64,
    resend: &[DocumentId],
    limits: &SyncLimits,
) -> Result<CatchUp, StorageError> {
    let rule = ScopeRule::of(&device.scope);
    // Documents the device could not apply are no longer "held": the steps below send them whole.
    for id in resend {
        tx.set_held(device.id, *id, false)?;
    }
    let max_seq = tx.max_seq()?;
    let cursor = i64::try_from(cursor).unwrap_or(i64::MAX).min(max_seq);
    let mut out = CatchUp {
        docs: Vec::new(),
        purge: Vec::new(),
        cursor: max_seq.unsigned_abs(),
        more: false,
        scope_complete: true,
    };
    let mut budget = 0usize;
    let mut sent_whole: HashSet<DocumentId> = HashSet::new();

    let full_diff = cursor == 0 || device.scope_version_seen != device.scope_version;
    if !full_diff && !resend.is_empty() {
        let found = tx.snapshots(&rule, resend)?;
        let in_scope: HashSet<DocumentId> = found.iter().map(|s| s.doc).collect();
        for snapshot in found {
            budget += snapshot.bytes.len();
            sent_whole.insert(snapshot.doc);
            out.docs.push(whole(snapshot));
        }
        // No longer the device's to hold: tell it to purge what it has.
        out.purge.extend(resend.iter().filter(|id| !in_scope.contains(id)));
    }
    if full_diff {
        // Documents in scope the device does not hold: send them whole, a page at a time.
        let mut after = None;
        'pages: loop {
            let batch = tx.unheld(&rule, device.id, after, BATCH)?;
            let Some(last) = batch.last() else { break };
            after = Some(last.doc);
            let full_batch = batch.len() == BATCH;
            let mut chosen = Vec::new();
            for candidate in batch {
                if budget >= limits.page_bytes && !(out.docs.is_empty() && chosen.is_empty()) {
                    out.more = true;
                    out.scope_complete = false;
                    fetch_whole(tx, &rule, &chosen, &mut out, &mut sent_whole)?;
                    break 'pages;
                }
                budget += candidate.snapshot_bytes;
                chosen.push(candidate.doc);
            }
            fetch_whole(tx, &rule, &chosen, &mut out, &mut sent_whole)?;
            if !full_batch {
                break;
            }
        }
        // Documents the device holds that are no longer in scope: purge. So are documents it
        // asked for (`missing`) that are not in its scope: step 0 made them "not held", so the
        // comparison above would not find them.
        out.purge.extend(tx.held_outside(&rule, device.id, None)?);
        if !resend.is_empty() {
            let in_scope: HashSet<DocumentId> =
                tx.snapshots(&rule, resend)?.into_iter().map(|s| s.doc).collect();
            out.purge.extend(resend.iter().filter(|id| !in_scope.contains(id)));
        }
    } else {
        // The scope itself is as the device last saw it whole: only documents whose facts moved
        // since the cursor can have left it.
        out.purge.extend(tx.held_outside(&rule, device.id, Some(cursor))?);
    }

    // Changes after the cursor in documents in scope.
    let mut incremental: BTreeMap<DocumentId, (DocumentKind, Vec<u8>)> = BTreeMap::new();
    let mut order: Vec<DocumentId> = Vec::new();
    let mut newly_held: Vec<DocumentId> = Vec::new();
    let mut newly_held_set: HashSet<DocumentId> = HashSet::new();
    let mut after = cursor;
    'log: loop {
        let rows = tx.log_rows(&rule, device.id, after, max_seq, BATCH)?;
        let full_batch = rows.len() == BATCH;
        for row in rows {
            after = row.seq;
            // Rows this reply has nothing to send for: the document goes whole, is still being
            // sent whole page by page by the full comparison above, or the change is the
            // device's own.
            if sent_whole.contains(&row.doc)
                || newly_held_set.contains(&row.doc)
                || (!row.held && !out.scope_complete)
                || (row.held && row.origin == Some(device.id))
            {
                continue;
            }
            if budget >= limits.page_bytes
                && (!out.docs.is_empty() || !incremental.is_empty() || !newly_held.is_empty())
            {
                out.more = true;
                out.cursor = (row.seq - 1).max(cursor).unsigned_abs();
                break 'log;
            }
            if !row.held {
                // New to this device (created by someone else, or moved into scope): send it
                // whole. Its size is counted when it is fetched below.
                newly_held.push(row.doc);
                newly_held_set.insert(row.doc);
                budget += row.snapshot_bytes;
                continue;
            }
            budget += row.bytes.len();
            let entry = incremental.entry(row.doc).or_insert_with(|| {
                order.push(row.doc);
                (row.kind, Vec::new())
            });
            entry.1.extend_from_slice(&row.bytes);
        }
        if !full_batch {
            break;
        }
    }
    // They are in scope (their log rows matched it); fetched under the same rule anyway.
    fetch_whole(tx, &rule, &newly_held, &mut out, &mut sent_whole)?;
    for id in order {
        if let Some((kind, data)) = incremental.remove(&id) {
            out.docs.push(DocData { doc: wire_id(id), kind, full: false, data: ByteBuf::from(data) });
        }
    }
    for id in &sent_whole {
        tx.set_held(device.id, *id, true)?;
    }
    // Told to purge: from now on the device does not hold these, for reads and writes alike.
    for id in &out.purge {
        tx.set_held(device.id, *id, false)?;
    }
    Ok(out)
}

/// Adds the chosen documents, whole, to the reply.
fn fetch_whole(
    tx: &mut dyn LogTx,
    rule: &ScopeRule,
    chosen: &[DocumentId],
    out: &mut CatchUp,
    sent_whole: &mut HashSet<DocumentId>,
) -> Result<(), StorageError> {
    for group in chosen.chunks(64) {
        for snapshot in tx.snapshots(rule, group)? {
            sent_whole.insert(snapshot.doc);
            out.docs.push(whole(snapshot));
        }
    }
    Ok(())
}

fn digest(tx: &mut dyn LogTx, scope: &Scope) -> Result<[u8; 32], StorageError> {
    let mut docs = Vec::new();
    for (id, _, heads) in tx.heads_in(&ScopeRule::of(scope))? {
        docs.push((id, decode_heads(&heads).ok_or_else(|| damaged("heads"))?));
    }
    Ok(scope_digest(docs))
}

/// The device's scope digest at log position `seq`: reused when neither the log nor the
/// member's scope changed since it was last computed (every change in any scope raises the log
/// position; every change of a member's grids raises their scope version).
fn cached_digest(tx: &mut dyn LogTx, device: &Device, seq: u64) -> Result<[u8; 32], StorageError> {
    let seq = i64::try_from(seq).unwrap_or(i64::MAX);
    if let Some((bytes, at, version)) = tx.cached_digest(device.id)?
        && at == seq
        && version == device.scope_version
        && let Ok(digest) = <[u8; 32]>::try_from(bytes.as_slice())
    {
        return Ok(digest);
    }
    let fresh = digest(tx, &device.scope)?;
    tx.save_digest(device.id, &fresh, seq, device.scope_version)?;
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

/// Whether a request uploads anything (a writing round takes the backend's writer lock).
pub(crate) fn uploads_anything(request: &SyncRequest) -> bool {
    request.uploads.iter().any(|u| !u.changes.is_empty())
}

/// Whether repair messages carry changes to store.
pub(crate) fn repair_writes(messages: &[DocSyncMessage]) -> bool {
    messages.iter().any(|m| {
        automerge::sync::Message::decode(&m.message).map(|msg| !msg.changes.is_empty()).unwrap_or(false)
    })
}

/// One round inside a transaction: purge reports, uploads (all or nothing), catch-up, digest.
/// `contact` also records the device's last contact (a sync round; a live push does not).
/// `ahead` holds uploads already checked outside the transaction ([`check_ahead`]); any other
/// upload, or one whose document changed since, is checked here.
pub(crate) fn round(
    tx: &mut dyn LogTx,
    device: &Device,
    request: &SyncRequest,
    limits: &SyncLimits,
    now: Timestamp,
    contact: bool,
    mut ahead: Vec<Ready>,
) -> Result<Synced, SyncFailure> {
    for purged in &request.purged {
        tx.set_held(device.id, doc_id(purged), false)?;
    }
    let mut acks = Vec::with_capacity(request.uploads.len());
    let mut reach = Reach::default();
    let uploaded: HashSet<DocumentId> =
        request.uploads.iter().filter(|u| !u.changes.is_empty()).map(|u| doc_id(&u.doc)).collect();
    let mut links = Vec::new();
    for upload in request.uploads.iter().filter(|u| !u.changes.is_empty()) {
        let id = doc_id(&upload.doc);
        let ready = ready_upload(tx, device, &mut ahead, upload, limits)?;
        let checked = &ready.checked;
        if !checked.links.is_empty() {
            links.push((id, checked.links.clone()));
        }
        let heads = wire_heads(&checked.upload_heads);
        for facts in checked.before.iter().chain([&checked.after]) {
            reach.add(facts);
            if let Some(household) = facts.household {
                reach.members.extend(tx.helpers(household.into())?);
            }
        }
        commit_checked(tx, device, id, ready, now)?;
        acks.push(Ack { doc: upload.doc, heads });
    }
    // Checked once every upload of the round is stored, so a household made in the same round
    // is found; a refusal here rolls the whole round back.
    for (id, linked) in &links {
        check_links(tx, device, *id, linked, &uploaded)?;
    }
    let resend: Vec<DocumentId> = request.missing.iter().map(doc_id).collect();
    let caught = catch_up(tx, device, request.cursor, &resend, limits)?;
    // A full comparison spread over several pages must go on next round whatever the cursor:
    // until it completes, the device is marked as having seen no scope version at all.
    let seen = if caught.scope_complete { device.scope_version } else { -1 };
    tx.set_scope_version_seen(device.id, seen)?;
    let digest = if request.want_digest && !caught.more {
        Some(cached_digest(tx, device, caught.cursor)?)
    } else {
        None
    };
    if contact {
        let uploaded: usize = request.uploads.iter().map(|u| u.changes.len()).sum();
        let unsynced_after = request.unsynced.saturating_sub(uploaded as u64);
        tx.record_contact(device.id, now, i64::try_from(unsynced_after).unwrap_or(i64::MAX))?;
    }
    let reply = SyncReply {
        acks,
        docs: caught.docs,
        purge: caught.purge.into_iter().map(wire_id).collect(),
        cursor: caught.cursor,
        more: caught.more,
        digest: digest.map(serde_bytes::ByteArray::new),
        // Added by the HTTP layer, which knows the county's taxonomy (`http::sync`).
        taxonomy: None,
    };
    Ok(Synced { reply, reach })
}

/// Every document in the device's scope with its heads.
pub(crate) fn manifest(tx: &mut dyn LogTx, device: &Device) -> Result<Vec<ManifestEntry>, StorageError> {
    let mut out = Vec::new();
    for (id, kind, heads) in tx.heads_in(&ScopeRule::of(&device.scope))? {
        out.push(ManifestEntry {
            doc: wire_id(id),
            kind,
            heads: wire_heads(&decode_heads(&heads).ok_or_else(|| damaged("heads"))?),
        });
    }
    Ok(out)
}

/// Answers Automerge sync messages for documents whose heads differ.
/// The refusal of a repair for a document the device may not have: the same words whether the
/// document does not exist or lies outside the scope, so ids cannot be probed.
fn not_available(id: DocumentId) -> SyncFailure {
    refused(ErrorCode::OutOfScope, format!("document {id} is not available to this device"), Some(id))
}

pub(crate) fn repair(
    tx: &mut dyn LogTx,
    device: &Device,
    messages: &[DocSyncMessage],
    limits: &SyncLimits,
    now: Timestamp,
) -> Result<Vec<DocSyncMessage>, SyncFailure> {
    let mut replies = Vec::new();
    for m in messages {
        let id = doc_id(&m.doc);
        let message = automerge::sync::Message::decode(&m.message).map_err(|_| {
            refused(ErrorCode::MalformedFrame, "undecodable Automerge sync message", Some(id))
        })?;
        let carried = changes_in(&message)?;
        let mut doc = if carried.is_empty() {
            match load_document(tx, id)? {
                Some(doc) => doc,
                None => {
                    return Err(not_available(id));
                }
            }
        } else {
            let row = stored_row(tx, id)?;
            let ready = check_against(device, id, None, row, &carried, limits, false)?;
            let doc = ready.checked.doc.clone();
            let linked = ready.checked.links.clone();
            commit_checked(tx, device, id, ready, now)?;
            check_links(tx, device, id, &linked, &HashSet::new())?;
            doc
        };
        // Scope now, whatever the device holds: a document that left its scope is not repaired.
        let facts = validate::facts(&doc, id).map_err(|r| refused(r.code, r.message, Some(id)))?;
        let helps_household = helps(tx, device.scope.member, facts.household)?;
        if !device.scope.may_hold(&facts, helps_household) {
            return Err(not_available(id));
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
        tx.set_held(device.id, id, true)?;
    }
    Ok(replies)
}
