//! [`Replica`]: a device's documents in one SQLite file.
//!
//! Storage rules:
//! - A write stores only the new Automerge change(s), never a full re-save; every so often a
//!   document is compacted into one snapshot (in the same transaction as the write).
//! - Every public write is one SQLite transaction (WAL mode): a crash leaves the old state or
//!   the new one, never half.
//! - Local changes stay listed in `pending` until the server acknowledges them, whatever else
//!   happens to the document (compaction included).
//! - A document whose stored bytes cannot be read is reported as
//!   [`CoreError::CorruptDocument`]; the other documents stay usable.

use std::path::Path;

use automerge::{ActorId, AutoCommit, Change, ChangeHash};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::conflict::{Conflict, HouseholdField};
use crate::doc::{self, DocumentKind};
use crate::error::{CoreError, Result};
use crate::ids::{
    DeviceId, DocumentId, EventId, GridId, HouseholdId, MemberId, RequestId, ResidentId, VisitId,
};
use crate::lifecycle::RequestStatus;
use crate::model::attachment::{AttachmentRef, ContentHash, LocationFix, NewAttachment};
use crate::model::household::{Household, HouseholdPatch, HouseholdSummary, NewHousehold};
use crate::model::request::{EventAction, NewEvent, NewRequest, Request, RequestSummary};
use crate::model::resident::{NewResident, ResidentPatch, ResidentTag};
use crate::model::same_household::SameAsMark;
use crate::model::taxonomy::Taxonomy;
use crate::model::visit::NewVisit;
use crate::store::attachments::{self, AttachmentInfo, Transfer};
use crate::store::cache::{DocCache, Loaded};
use crate::store::heads::{decode_heads, encode_heads};
use crate::store::index::{self, RequestFilter, TimelineEntry};
use crate::store::schema;

mod file;
mod same_household;
use crate::time::Timestamp;
use file::FileGuard;
pub use same_household::MergedHousehold;

/// How hard a commit waits for the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Durability {
    /// `synchronous = FULL`: a commit survives power loss. The default: a resident's data
    /// must survive a phone whose battery dies.
    #[default]
    Full,
    /// `synchronous = NORMAL`: a commit survives an app crash but maybe not power loss.
    Normal,
}

/// Options for [`Replica::open_with`].
#[derive(Clone, Debug)]
pub struct ReplicaOptions {
    /// Commit durability.
    pub durability: Durability,
    /// How many loaded documents to keep in memory.
    pub cache_capacity: usize,
    /// Compact a document once it has this many stored changes since its snapshot.
    pub compact_after_changes: u32,
}

impl Default for ReplicaOptions {
    fn default() -> Self {
        Self { durability: Durability::Full, cache_capacity: 64, compact_after_changes: 32 }
    }
}

/// A device's enrolment with a server.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Enrolment {
    /// The server's base URL.
    pub server: String,
    /// The device's id on the server.
    pub device: DeviceId,
    /// The device token (secret).
    pub token: String,
    /// The member using the device.
    pub member: MemberId,
    /// A CA certificate (PEM) the device trusts for this server besides the standard web
    /// roots: a county's private CA or self-signed certificate. `None` for a server with a
    /// publicly trusted certificate (and in replicas enrolled before this field existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_ca_pem: Option<String>,
    /// The member's role when the device enrolled (`None` in replicas enrolled before this
    /// field existed). The replica refuses events this role may not take, as the server does;
    /// the server's rule, on the member's role now, is the one that counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<crate::model::Role>,
}

/// What [`Replica::rebuild_indexes`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IndexReport {
    /// Documents indexed.
    pub indexed: usize,
    /// Documents that could not be read, with the reason.
    pub damaged: Vec<(DocumentId, String)>,
}

/// What [`Replica::check_integrity`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IntegrityReport {
    /// Nothing wrong was found.
    pub ok: bool,
    /// Problems with the file itself (pages that do not decrypt, b-trees that do not add up).
    pub problems: Vec<String>,
    /// Documents that cannot be loaded, with the reason.
    pub damaged_documents: Vec<(DocumentId, String)>,
}

/// A document set aside because its stored bytes cannot be read (see
/// [`Replica::quarantined`]): sync goes on without it until the server's copy repairs it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Quarantined {
    /// The document.
    pub id: DocumentId,
    /// Why it could not be read.
    pub reason: String,
}

/// What [`Replica::recover_document`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Local changes not yet on the server that were read back and kept.
    pub kept_local_changes: usize,
    /// Local changes not yet on the server that could not be read and are lost.
    pub lost_local_changes: usize,
}

/// The key length the replica takes: 32 bytes, passed to SQLCipher as a raw key.
pub const KEY_BYTES: usize = 32;

/// A device's local replica: its documents, indexes and unacknowledged changes, in one file.
///
/// ```
/// use doorstep_core::ids::{GridId, MemberId};
/// use doorstep_core::model::{Address, NewHousehold, NewVisit, VisitKind};
/// use doorstep_core::store::Replica;
/// use doorstep_core::time::Timestamp;
///
/// let mut replica = Replica::open_in_memory()?;
/// replica.set_member(MemberId::new_random())?;
/// let grid = GridId::new_random();
/// let home = replica.create_household(
///     &NewHousehold {
///         address: Address {
///             community: "幸福社区".into(),
///             grid,
///             building: "3栋".into(),
///             unit: "2单元".into(),
///             room: "501".into(),
///         },
///         residents: vec![],
///         notes: String::new(),
///     },
///     Timestamp(1_700_000_000_000),
/// )?;
/// replica.record_visit(home, &NewVisit {
///     at: Timestamp(1_700_000_100_000),
///     kind: VisitKind::Routine,
///     notes: "一切正常".into(),
///     needs: vec![],
/// })?;
/// let list = replica.households_in_grid(grid)?;
/// assert_eq!(list[0].last_visit_at, Some(Timestamp(1_700_000_100_000)));
/// assert_eq!(replica.unsynced_change_count()?, 2);
/// # Ok::<(), doorstep_core::CoreError>(())
/// ```
pub struct Replica {
    conn: Connection,
    /// The file's claim (registry entry and lock); `None` in memory or over a given connection.
    /// Declared after `conn`, so the connection closes before the lock is released.
    file: Option<FileGuard>,
    actor: ActorId,
    member: Option<MemberId>,
    taxonomy: Taxonomy,
    cache: DocCache,
    options: ReplicaOptions,
}

const META_ACTOR: &str = "actor";
const META_MEMBER: &str = "member";
const META_TAXONOMY: &str = "taxonomy";
const META_CURSOR: &str = "sync_cursor";
const META_ENROLMENT: &str = "enrolment";
const META_PURGE_LATER: &str = "purge_later";
const META_PURGED_UNREPORTED: &str = "purged_unreported";
const META_NEED_RESEND: &str = "need_resend";
const META_WIFI_ONLY: &str = "attachments_wifi_only";
const META_QUARANTINE: &str = "quarantined_documents";

impl Replica {
    /// Opens (or creates) the replica file at `path` with default options.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, ReplicaOptions::default())
    }

    /// Opens (or creates) the replica file at `path`.
    /// A second open of the same file, in this process or another, is refused with
    /// [`CoreError::AlreadyOpen`] until this handle is dropped.
    pub fn open_with(path: impl AsRef<Path>, options: ReplicaOptions) -> Result<Self> {
        let path = path.as_ref();
        let guard = FileGuard::claim(path)?;
        let conn = Connection::open(path)?;
        if let Err(e) = conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get::<_, i64>(0)) {
            return Err(match e.sqlite_error_code() {
                Some(rusqlite::ErrorCode::NotADatabase) => CoreError::NotAReplica {
                    reason: "not a SQLite database (an encrypted file needs its key)".into(),
                },
                _ => e.into(),
            });
        }
        Self::from_parts(conn, options, Some(guard))
    }

    /// A replica in memory, for tests and tools.
    pub fn open_in_memory() -> Result<Self> {
        Self::from_connection(Connection::open_in_memory()?, ReplicaOptions::default())
    }

    /// Opens (or creates) a replica file encrypted with SQLCipher under `key` (the app keeps
    /// the key in Android Keystore / iOS Keychain). A wrong key is refused with
    /// [`CoreError::WrongKey`] and the file is left untouched; a build without SQLCipher is
    /// refused with [`CoreError::EncryptionUnavailable`] rather than writing in the clear.
    ///
    /// A new file takes a key of exactly [`KEY_BYTES`] bytes. A file that does not open is
    /// reported as what it is: [`CoreError::WrongKey`], [`CoreError::DamagedFile`] or
    /// [`CoreError::NotAReplica`]. A second open of the same file, in this process or another,
    /// is refused with [`CoreError::AlreadyOpen`] until this handle is dropped.
    pub fn open_encrypted(path: impl AsRef<Path>, key: &[u8], options: ReplicaOptions) -> Result<Self> {
        let path = path.as_ref();
        if key.is_empty() || (key.len() != KEY_BYTES && file::is_new(path)) {
            return Err(bad_key_length(key.len()));
        }
        let guard = FileGuard::claim(path)?;
        let conn = Connection::open(path)?;
        unlock(&conn, key, path)?;
        Self::from_parts(conn, options, Some(guard))
    }

    /// Re-encrypts the file under a new key (key rotation). The old key stops working.
    pub fn rekey(&mut self, new_key: &[u8]) -> Result<()> {
        if new_key.len() != KEY_BYTES {
            return Err(bad_key_length(new_key.len()));
        }
        require_sqlcipher(&self.conn)?;
        self.conn.execute_batch(&format!("PRAGMA rekey = \"x'{}'\";", hex(new_key)))?;
        Ok(())
    }

    /// Opens a replica over an already opened SQLite connection (for example one an encrypted
    /// SQLite build has unlocked with its key).
    pub fn from_connection(conn: Connection, options: ReplicaOptions) -> Result<Self> {
        Self::from_parts(conn, options, None)
    }

    fn from_parts(mut conn: Connection, options: ReplicaOptions, file: Option<FileGuard>) -> Result<Self> {
        // Deleted content (purged documents) is overwritten, not merely unlinked.
        conn.pragma_update(None, "secure_delete", "ON")?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        let synchronous = match options.durability {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        };
        conn.pragma_update(None, "synchronous", synchronous)?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        require_replica_schema(&conn)?;
        let migrated_from = schema::migrate(&mut conn)?;
        let actor = match get_meta(&conn, META_ACTOR)? {
            Some(hex) => ActorId::try_from(hex.as_str()).map_err(|_| CoreError::InvalidValue {
                field: "replica file",
                reason: "stored actor id is damaged".into(),
            })?,
            None => {
                let actor = ActorId::random();
                set_meta(&conn, META_ACTOR, &actor.to_hex_string())?;
                actor
            }
        };
        let member = get_meta(&conn, META_MEMBER)?.and_then(|m| m.parse().ok());
        let taxonomy = match get_meta(&conn, META_TAXONOMY)? {
            Some(json) => Taxonomy::from_json(&json)?,
            None => Taxonomy::default_county(),
        };
        let mut replica = Self {
            conn,
            file,
            actor,
            member,
            taxonomy,
            cache: DocCache::new(options.cache_capacity),
            options,
        };
        if migrated_from > 0 && migrated_from < schema::SCHEMA_VERSION {
            // A file from an older build: index what the new tables cover from the documents.
            replica.rebuild_indexes()?;
        }
        Ok(replica)
    }

    /// The Automerge actor id this device writes every change with. The server binds it to
    /// the device at enrolment and refuses changes from any other actor on this device's behalf.
    pub fn actor_id(&self) -> &ActorId {
        &self.actor
    }

    /// The member signed in on this device, if any.
    pub fn member(&self) -> Option<MemberId> {
        self.member
    }

    /// Records who uses this device; every visit and event is recorded as theirs.
    pub fn set_member(&mut self, member: MemberId) -> Result<()> {
        set_meta(&self.conn, META_MEMBER, &member.to_string())?;
        self.member = Some(member);
        Ok(())
    }

    /// The county taxonomy in use.
    pub fn taxonomy(&self) -> &Taxonomy {
        &self.taxonomy
    }

    /// Replaces the county taxonomy (as sent by the server); kept across restarts.
    pub fn set_taxonomy(&mut self, taxonomy: Taxonomy) -> Result<()> {
        let json = serde_json::to_string(&taxonomy).map_err(|e| CoreError::InvalidTaxonomy(e.to_string()))?;
        set_meta(&self.conn, META_TAXONOMY, &json)?;
        self.taxonomy = taxonomy;
        Ok(())
    }

    fn require_member(&self) -> Result<MemberId> {
        self.member.ok_or(CoreError::NoMember)
    }

    // ---- households ------------------------------------------------------------------------

    /// Registers a new household. `at` is the device time of registration.
    pub fn create_household(&mut self, new: &NewHousehold, at: Timestamp) -> Result<HouseholdId> {
        let by = self.require_member()?;
        let id = HouseholdId::new_random();
        let resident_ids: Vec<ResidentId> = new.residents.iter().map(|_| ResidentId::new_random()).collect();
        self.create_document(id.into(), DocumentKind::Household, |doc| {
            doc::household::create(doc, id, new, &resident_ids, by, at)
        })?;
        Ok(id)
    }

    /// Reads a household.
    pub fn household(&mut self, id: HouseholdId) -> Result<Household> {
        let loaded = self.load(id.into(), DocumentKind::Household)?;
        doc::household::read(&loaded.doc, id)
    }

    /// The household's row as lists show it (from the index, no document load).
    pub fn household_summary(&self, id: HouseholdId) -> Result<HouseholdSummary> {
        index::household_summary_of(&self.conn, id)?.ok_or(CoreError::UnknownHousehold(id))
    }

    /// Changes a household's address fields or notes.
    pub fn update_household(&mut self, id: HouseholdId, patch: &HouseholdPatch) -> Result<()> {
        self.edit(id.into(), DocumentKind::Household, |doc| doc::household::patch(doc, id, patch))
    }

    /// Moves a household to another grid.
    pub fn move_household(&mut self, id: HouseholdId, grid: GridId) -> Result<()> {
        self.edit(id.into(), DocumentKind::Household, |doc| doc::household::set_grid(doc, id, grid))
    }

    /// Assigns (or unassigns) a helper to a household.
    pub fn set_helper(&mut self, id: HouseholdId, helper: MemberId, assigned: bool) -> Result<()> {
        self.edit(id.into(), DocumentKind::Household, |doc| {
            doc::household::set_helper(doc, id, helper, assigned)
        })
    }

    /// Adds a resident to a household.
    pub fn add_resident(&mut self, id: HouseholdId, new: &NewResident, at: Timestamp) -> Result<ResidentId> {
        let rid = ResidentId::new_random();
        self.edit(id.into(), DocumentKind::Household, |doc| {
            doc::household::add_resident(doc, id, rid, new, at)
        })?;
        Ok(rid)
    }

    /// Changes a resident's fields.
    pub fn update_resident(&mut self, id: HouseholdId, rid: ResidentId, patch: &ResidentPatch) -> Result<()> {
        self.edit(id.into(), DocumentKind::Household, |doc| {
            doc::household::update_resident(doc, id, rid, patch)
        })
    }

    /// Marks a resident as moved out (kept in the history).
    pub fn remove_resident(&mut self, id: HouseholdId, rid: ResidentId) -> Result<()> {
        self.edit(id.into(), DocumentKind::Household, |doc| doc::household::remove_resident(doc, id, rid))
    }

    /// Records a visit to a household by the signed-in member.
    pub fn record_visit(&mut self, id: HouseholdId, visit: &NewVisit) -> Result<VisitId> {
        self.record_visit_located(id, visit, None)
    }

    /// Records a visit with the location fix the app took for it, as one change.
    pub fn record_visit_located(
        &mut self,
        id: HouseholdId,
        visit: &NewVisit,
        location: Option<&LocationFix>,
    ) -> Result<VisitId> {
        if let Some(fix) = location {
            fix.check()?;
        }
        let by = self.require_member()?;
        let vid = VisitId::new_random();
        let index = Reindex::NewVisit {
            household: id,
            visit: vid,
            at: visit.at,
            kind: visit.kind,
            notes: &visit.notes,
        };
        self.edit_indexed(id.into(), DocumentKind::Household, index, |doc| {
            doc::household::record_visit(doc, id, vid, visit, by)?;
            match location {
                Some(fix) => doc::household::set_visit_location(doc, id, vid, fix),
                None => Ok(()),
            }
        })?;
        Ok(vid)
    }

    /// Attaches a file to a visit: the bytes go into this (encrypted) file, the reference
    /// into the household document. Works offline; the bytes upload after the records.
    pub fn attach_to_visit(
        &mut self,
        id: HouseholdId,
        visit: VisitId,
        file: &NewAttachment,
        at: Timestamp,
    ) -> Result<AttachmentRef> {
        let reference = file.check(at)?;
        self.attach(id.into(), DocumentKind::Household, &reference, &file.bytes, |doc| {
            doc::household::attach_to_visit(doc, id, visit, &reference)
        })?;
        Ok(reference)
    }

    /// Attaches a file to an event of a request (a photo of the repaired streetlight).
    pub fn attach_to_event(
        &mut self,
        id: RequestId,
        event: EventId,
        file: &NewAttachment,
        at: Timestamp,
    ) -> Result<AttachmentRef> {
        let reference = file.check(at)?;
        self.attach(id.into(), DocumentKind::Request, &reference, &file.bytes, |doc| {
            doc::request::attach_to_event(doc, id, event, &reference)
        })?;
        Ok(reference)
    }

    fn attach(
        &mut self,
        id: DocumentId,
        kind: DocumentKind,
        reference: &AttachmentRef,
        bytes: &[u8],
        edit: impl FnOnce(&mut automerge::AutoCommit) -> Result<()>,
    ) -> Result<()> {
        self.kind_of(id)?;
        // Bytes first: if the edit fails they are removed again; if the app dies in between,
        // unreferenced bytes are harmless and go with the next purge.
        {
            let tx = self.conn.transaction()?;
            attachments::store_local(&tx, reference, bytes)?;
            tx.commit()?;
        }
        let edited = self.edit(id, kind, edit);
        if edited.is_err() {
            self.conn.execute(
                "DELETE FROM attachments WHERE hash = ?1 AND hash NOT IN (SELECT hash FROM attachment_refs)",
                [reference.hash.to_string()],
            )?;
        }
        edited
    }

    /// The attachments a document references, with where their bytes are.
    pub fn attachments_of(&self, id: DocumentId) -> Result<Vec<AttachmentInfo>> {
        attachments::of_document(&self.conn, id)
    }

    /// One attachment, if any document here references it (or it was made here).
    pub fn attachment(&self, hash: &ContentHash) -> Result<Option<AttachmentInfo>> {
        attachments::get(&self.conn, hash)
    }

    /// The bytes of an attachment held here whole; [`CoreError::UnknownAttachment`] otherwise.
    pub fn attachment_bytes(&self, hash: &ContentHash) -> Result<Vec<u8>> {
        attachments::bytes(&self.conn, hash)?.ok_or(CoreError::UnknownAttachment(*hash))
    }

    /// Attachments made here that the server does not hold whole yet.
    pub fn attachment_uploads(&self) -> Result<Vec<Transfer>> {
        attachments::pending_uploads(&self.conn)
    }

    /// Attachments referenced here whose bytes are not here whole yet.
    pub fn attachment_downloads(&self) -> Result<Vec<Transfer>> {
        attachments::pending_downloads(&self.conn)
    }

    /// Records how many bytes of an upload the server has confirmed.
    pub fn record_uploaded(&mut self, hash: &ContentHash, uploaded: u64) -> Result<()> {
        attachments::set_uploaded(&self.conn, hash, uploaded)
    }

    /// Stores downloaded bytes that continue what is held (`offset` = bytes held). Returns the
    /// bytes now held. When whole, the hash is checked; on a mismatch the bytes are dropped
    /// and [`CoreError::AttachmentMismatch`] is returned.
    pub fn store_attachment_part(&mut self, hash: &ContentHash, offset: u64, part: &[u8]) -> Result<u64> {
        let tx = self.conn.transaction()?;
        match attachments::append_part(&tx, hash, offset, part) {
            Ok(stored) => {
                tx.commit()?;
                Ok(stored)
            }
            Err(CoreError::AttachmentMismatch(h)) => {
                tx.commit()?;
                Err(CoreError::AttachmentMismatch(h))
            }
            Err(e) => Err(e),
        }
    }

    /// Whether photos upload only over Wi-Fi on this device (a per-device setting the app
    /// may offer; off by default).
    pub fn attachments_wifi_only(&self) -> Result<bool> {
        Ok(get_meta(&self.conn, META_WIFI_ONLY)?.as_deref() == Some("1"))
    }

    /// Sets whether photos upload only over Wi-Fi.
    pub fn set_attachments_wifi_only(&mut self, wifi_only: bool) -> Result<()> {
        set_meta(&self.conn, META_WIFI_ONLY, if wifi_only { "1" } else { "0" })
    }

    /// A grid's households with last visit and open requests, longest unvisited first.
    /// Households marked as the same one show as one row.
    pub fn households_in_grid(&self, grid: GridId) -> Result<Vec<HouseholdSummary>> {
        self.collapse_same_households(index::households_in_grid(&self.conn, grid)?)
    }

    /// The grids this replica holds households of.
    pub fn grids(&self) -> Result<Vec<GridId>> {
        let mut stmt =
            self.conn.prepare_cached("SELECT DISTINCT grid_id FROM household_ix ORDER BY grid_id")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        rows.map(|r| r?.parse()).collect()
    }

    /// Households with a current resident carrying `tag`.
    pub fn households_with_tag(&self, tag: ResidentTag) -> Result<Vec<HouseholdSummary>> {
        self.collapse_same_households(index::households_with_tag(&self.conn, tag)?)
    }

    /// A household's visits and requests, newest first.
    pub fn household_timeline(&self, id: HouseholdId) -> Result<Vec<TimelineEntry>> {
        if index::household_summary_of(&self.conn, id)?.is_none() {
            return Err(CoreError::UnknownHousehold(id));
        }
        index::timeline(&self.conn, id)
    }

    // ---- requests --------------------------------------------------------------------------

    /// Raises a request. Its grid is the household's when a household is given.
    pub fn raise_request(&mut self, new: &NewRequest) -> Result<RequestId> {
        let by = self.require_member()?;
        let category = self.taxonomy.category(&new.category)?.clone();
        if category.retired {
            // Kept only so older requests show its name: not offered for new ones.
            return Err(CoreError::UnknownCategory(category.code.to_string()));
        }
        let grid = match (new.household, new.grid) {
            (Some(household), _) => self.household_summary(household)?.grid,
            (None, Some(grid)) => grid,
            (None, None) => {
                return Err(CoreError::InvalidValue {
                    field: "grid",
                    reason: "a request without a household needs a grid".into(),
                });
            }
        };
        let id = RequestId::new_random();
        let raised = EventId::new_random();
        self.create_document(id.into(), DocumentKind::Request, |doc| {
            doc::request::create(doc, id, raised, new, grid, &category, by)
        })?;
        Ok(id)
    }

    /// Reads a request with its derived status.
    pub fn request(&mut self, id: RequestId) -> Result<Request> {
        let loaded = self.load(id.into(), DocumentKind::Request)?;
        doc::request::read(&loaded.doc, id)
    }

    /// Records an event on a request after checking it against the lifecycle rules.
    pub fn add_request_event(&mut self, id: RequestId, event: &NewEvent) -> Result<EventId> {
        let by = self.require_member()?;
        if let Some(role) = self.enrolment()?.and_then(|e| e.role)
            && !role.may_take(&event.action)
        {
            return Err(CoreError::NotPermitted { role, action: event.action.verb() });
        }
        if let EventAction::Dispatched { department } = &event.action
            && self.taxonomy.department(department.as_str()).is_none()
        {
            return Err(CoreError::InvalidValue {
                field: "department",
                reason: format!("{department} is not a department of this county"),
            });
        }
        let eid = EventId::new_random();
        self.edit(id.into(), DocumentKind::Request, |doc| {
            doc::request::add_event(doc, id, eid, event, by).map(|_| ())
        })?;
        Ok(eid)
    }

    /// Requests matching a filter, most urgent and earliest due first.
    pub fn list_requests(&self, filter: &RequestFilter) -> Result<Vec<RequestSummary>> {
        index::list_requests(&self.conn, filter)
    }

    // ---- conflicts -------------------------------------------------------------------------

    /// Every conflict waiting for a person: concurrent household values and concurrent
    /// request transitions.
    pub fn conflicts(&mut self) -> Result<Vec<Conflict>> {
        let mut out = Vec::new();
        for id in index::documents_with_conflicts(&self.conn)? {
            out.extend(self.conflicts_of(id)?);
        }
        Ok(out)
    }

    /// The conflicts of one document.
    pub fn conflicts_of(&mut self, id: DocumentId) -> Result<Vec<Conflict>> {
        let kind = self.kind_of(id)?;
        let loaded = self.load(id, kind)?;
        Ok(match kind {
            DocumentKind::Household => doc::household::conflicts(&loaded.doc, id.as_household())
                .into_iter()
                .map(Conflict::Field)
                .collect(),
            DocumentKind::Request => {
                doc::request::conflicts(&doc::request::read(&loaded.doc, id.as_request())?)
                    .into_iter()
                    .map(Conflict::Request)
                    .collect()
            }
        })
    }

    /// Settles a household field conflict with the chosen (or a newly typed) value.
    pub fn resolve_household_field(
        &mut self,
        id: HouseholdId,
        field: &HouseholdField,
        value: &str,
    ) -> Result<()> {
        self.edit(id.into(), DocumentKind::Household, |doc| {
            doc::household::resolve_field(doc, id, field, value)
        })
    }

    /// Records a supervisor's review of a request's conflict. `outcome` is the status the
    /// request should take, or `None` to accept the derived one.
    pub fn review_request_conflict(
        &mut self,
        id: RequestId,
        outcome: Option<RequestStatus>,
        note: &str,
        at: Timestamp,
    ) -> Result<EventId> {
        self.add_request_event(
            id,
            &NewEvent { action: EventAction::Reviewed { outcome }, note: note.to_owned(), at },
        )
    }

    // ---- sync support ----------------------------------------------------------------------

    /// Every document in the replica, with its kind.
    pub fn documents(&self) -> Result<Vec<(DocumentId, DocumentKind)>> {
        let mut stmt = self.conn.prepare_cached("SELECT doc_id, kind FROM documents ORDER BY doc_id")?;
        let rows = stmt.query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, kind) = row?;
            let id: DocumentId = id.parse()?;
            let kind = DocumentKind::from_stored(&kind)
                .ok_or_else(|| CoreError::CorruptDocument { id, reason: format!("unknown kind {kind:?}") })?;
            out.push((id, kind));
        }
        Ok(out)
    }

    /// The document's current heads, from the store (no load).
    pub fn heads(&self, id: DocumentId) -> Result<Vec<ChangeHash>> {
        let blob: Vec<u8> = self
            .conn
            .query_row("SELECT heads FROM documents WHERE doc_id = ?1", [id.to_string()], |r| r.get(0))
            .optional()?
            .ok_or(CoreError::UnknownDocument(id))?;
        decode_heads(&blob)
            .ok_or_else(|| CoreError::CorruptDocument { id, reason: "stored heads are damaged".into() })
    }

    /// How many local changes the server has not acknowledged yet.
    pub fn unsynced_change_count(&self) -> Result<u64> {
        let count: i64 = self.conn.query_row("SELECT count(*) FROM pending", [], |r| r.get(0))?;
        Ok(count.unsigned_abs())
    }

    /// Documents with local changes the server has not acknowledged.
    pub fn documents_with_unsynced_changes(&self) -> Result<Vec<DocumentId>> {
        let mut stmt = self.conn.prepare_cached("SELECT DISTINCT doc_id FROM pending ORDER BY doc_id")?;
        let rows = stmt.query_map([], |row| row.get::<_, String>(0))?;
        rows.map(|r| r?.parse()).collect()
    }

    /// The raw bytes of a document's unacknowledged local changes, in causal order: exactly
    /// what an upload must carry.
    pub fn unsynced_changes(&mut self, id: DocumentId) -> Result<Vec<Vec<u8>>> {
        let pending = pending_hashes(&self.conn, id)?;
        if pending.is_empty() {
            return Ok(Vec::new());
        }
        let kind = self.kind_of(id)?;
        let loaded = self.load(id, kind)?;
        Ok(loaded
            .doc
            .get_changes(&[])
            .into_iter()
            .filter(|c| pending.contains(&c.hash()))
            .map(|c| c.raw_bytes().to_vec())
            .collect())
    }

    /// Records that the server has durably stored every change up to `heads` of a document.
    /// Returns how many pending changes this acknowledged. Hashes the replica does not hold
    /// are ignored: only what is known here can be marked.
    pub fn acknowledge(&mut self, id: DocumentId, heads: &[ChangeHash]) -> Result<usize> {
        let pending = pending_hashes(&self.conn, id)?;
        if pending.is_empty() {
            return Ok(0);
        }
        let kind = self.kind_of(id)?;
        let loaded = self.load(id, kind)?;
        let known: Vec<ChangeHash> =
            heads.iter().copied().filter(|h| loaded.doc.get_change_by_hash(h).is_some()).collect();
        let not_covered: std::collections::HashSet<ChangeHash> =
            loaded.doc.get_changes(&known).iter().map(Change::hash).collect();
        let acked: Vec<&ChangeHash> = pending.iter().filter(|h| !not_covered.contains(h)).collect();
        let tx = self.conn.transaction()?;
        {
            let mut delete = tx.prepare_cached("DELETE FROM pending WHERE doc_id = ?1 AND hash = ?2")?;
            for hash in &acked {
                delete.execute(params![id.to_string(), hash.0.as_slice()])?;
            }
        }
        tx.commit()?;
        Ok(acked.len())
    }

    /// Applies changes (or a whole saved document) received from the server. A document the
    /// replica did not hold is created. Returns how many new changes were stored. The bytes
    /// are checked: damaged bytes or a document of another kind are refused and nothing is
    /// stored.
    pub fn apply_remote(&mut self, id: DocumentId, bytes: &[u8]) -> Result<usize> {
        self.apply_remote_many(&[(id, bytes)])?.pop().unwrap_or(Ok(0))
    }

    /// [`Replica::apply_remote`] for many documents at once, in one transaction (a download of
    /// a whole grid commits once, not once per document). Each document gets its own result:
    /// a damaged one is refused and stores nothing, the others are stored. The outer error is a
    /// storage failure, after which nothing of the batch was stored.
    pub fn apply_remote_many(&mut self, items: &[(DocumentId, &[u8])]) -> Result<Vec<Result<usize>>> {
        let mut results: Vec<Result<usize>> = Vec::with_capacity(items.len());
        let mut prepared = Vec::new();
        for (id, bytes) in items {
            if prepared.iter().any(|p: &PreparedRemote| p.id == *id) {
                results.push(Err(CoreError::CorruptDocument {
                    id: *id,
                    reason: "sent twice in one batch".into(),
                }));
                continue;
            }
            match self.prepare_remote(*id, bytes) {
                Ok(Some(p)) => {
                    results.push(Ok(p.changes.len()));
                    prepared.push(p);
                }
                Ok(None) => results.push(Ok(0)),
                Err(e) => results.push(Err(e)),
            }
        }
        if prepared.is_empty() {
            return Ok(results);
        }
        let compact_after = self.options.compact_after_changes;
        let stored = (|| -> Result<()> {
            let tx = self.conn.transaction()?;
            for p in &mut prepared {
                if p.is_new {
                    insert_document_row(&tx, p.id, p.loaded.kind, &p.heads)?;
                }
                store_changes(&tx, p.id, &p.changes, &p.heads, &[])?;
                p.indexed.write(&tx)?;
                maybe_compact(&tx, p.id, &mut p.loaded, compact_after)?;
            }
            tx.commit()?;
            Ok(())
        })();
        if let Err(e) = stored {
            for p in &prepared {
                self.cache.remove(&p.id);
            }
            return Err(e);
        }
        for p in prepared {
            self.cache.insert(p.id, p.loaded);
        }
        Ok(results)
    }

    /// Checks received bytes against the stored document without writing anything; `None` if
    /// they bring nothing new.
    fn prepare_remote(&mut self, id: DocumentId, bytes: &[u8]) -> Result<Option<PreparedRemote>> {
        let bad = |reason: String| CoreError::CorruptDocument { id, reason };
        let existing = self.kind_of(id).ok();
        let mut doc = match existing {
            Some(kind) => self.load(id, kind)?.doc.fork(),
            None => AutoCommit::new(),
        };
        let before = doc.get_heads();
        doc.load_incremental(bytes).map_err(|e| bad(e.to_string()))?;
        if !doc.get_missing_deps(&[]).is_empty() {
            return Err(bad("changes depend on changes this replica does not have".into()));
        }
        let changes: Vec<Vec<u8>> = doc.get_changes(&before).iter().map(|c| c.raw_bytes().to_vec()).collect();
        if changes.is_empty() {
            return Ok(None);
        }
        let kind = DocumentKind::of(&doc).ok_or_else(|| bad("received document has no known type".into()))?;
        if existing.is_some_and(|k| k != kind) {
            return Err(bad("received changes change the document's type".into()));
        }
        if crate::doc::stored_id(&doc).as_deref() != Some(id.to_string().as_str()) {
            return Err(bad("the document's id field names another document".into()));
        }
        let indexed = Indexed::read(&doc, id, kind)?;
        doc.set_actor(self.actor.clone());
        let heads = doc.get_heads();
        Ok(Some(PreparedRemote {
            id,
            is_new: existing.is_none(),
            changes,
            heads,
            indexed,
            loaded: Loaded { kind, doc },
        }))
    }

    /// Removes a document and everything derived from it from the file (when it leaves the
    /// device's scope). Refused while the document has unacknowledged local changes: those
    /// must reach the server first.
    pub fn purge(&mut self, id: DocumentId) -> Result<()> {
        if !pending_hashes(&self.conn, id)?.is_empty() {
            return Err(CoreError::UnsyncedChanges(id));
        }
        let tx = self.conn.transaction()?;
        let doc_id = id.to_string();
        tx.execute("DELETE FROM changes WHERE doc_id = ?1", [&doc_id])?;
        let removed = tx.execute("DELETE FROM documents WHERE doc_id = ?1", [&doc_id])?;
        index::remove_document(&tx, id)?;
        attachments::purge_document(&tx, id)?;
        tx.commit()?;
        self.cache.remove(&id);
        if removed == 0 {
            return Err(CoreError::UnknownDocument(id));
        }
        // With secure_delete the freed pages are zeroed; the checkpoint carries that into the
        // main file and empties the write-ahead log, so no old copy stays on disk.
        self.conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
        Ok(())
    }

    /// Removes every document from the file, acknowledged or not, and forgets the enrolment
    /// and the member signed in: what a revoked device does. The device is then not enrolled.
    pub fn purge_everything(&mut self) -> Result<usize> {
        let tx = self.conn.transaction()?;
        let removed = tx.execute("DELETE FROM documents", [])?;
        tx.execute_batch("DELETE FROM changes; DELETE FROM pending;")?;
        tx.execute(
            "DELETE FROM meta WHERE key IN (?1, ?2, ?3, ?4)",
            params![META_ENROLMENT, META_MEMBER, META_NEED_RESEND, META_QUARANTINE],
        )?;
        index::clear(&tx)?;
        attachments::purge_all(&tx)?;
        set_meta(&tx, META_CURSOR, "0")?;
        set_meta(&tx, META_PURGE_LATER, "[]")?;
        tx.commit()?;
        self.member = None;
        self.cache = DocCache::new(self.options.cache_capacity);
        // Reclaim the freed pages so the data is gone from the file, not only unlinked.
        self.conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE); VACUUM;")?;
        Ok(removed)
    }

    /// The enrolment this replica holds (server, device id and token), if enrolled.
    pub fn enrolment(&self) -> Result<Option<Enrolment>> {
        Ok(get_meta(&self.conn, META_ENROLMENT)?.and_then(|json| serde_json::from_str(&json).ok()))
    }

    /// Records the device's enrolment and signs its member in. The token is a secret: on
    /// phones the replica file is encrypted.
    pub fn set_enrolment(&mut self, enrolment: &Enrolment) -> Result<()> {
        let json = serde_json::to_string(enrolment)
            .map_err(|e| CoreError::InvalidValue { field: "enrolment", reason: e.to_string() })?;
        set_meta(&self.conn, META_ENROLMENT, &json)?;
        self.set_member(enrolment.member)
    }

    /// Records a new enrolment of an already enrolled (or never enrolled) replica with a new
    /// Automerge actor id: changes written from now on are the new device's, changes already
    /// written keep the actor they were written with (the server links the old actors to the
    /// new device, PROTOCOL §2.4). The sync cursor starts again, so the new device is sent its
    /// whole scope once.
    pub fn set_enrolment_with_actor(&mut self, enrolment: &Enrolment, actor: &ActorId) -> Result<()> {
        let json = serde_json::to_string(enrolment)
            .map_err(|e| CoreError::InvalidValue { field: "enrolment", reason: e.to_string() })?;
        let tx = self.conn.transaction()?;
        set_meta(&tx, META_ENROLMENT, &json)?;
        set_meta(&tx, META_MEMBER, &enrolment.member.to_string())?;
        set_meta(&tx, META_ACTOR, &actor.to_hex_string())?;
        set_meta(&tx, META_CURSOR, "0")?;
        tx.commit()?;
        self.member = Some(enrolment.member);
        self.actor = actor.clone();
        // Loaded documents write with the actor they were loaded with.
        self.cache = DocCache::new(self.options.cache_capacity);
        Ok(())
    }

    /// A new random Automerge actor id, for [`Replica::set_enrolment_with_actor`].
    pub fn new_actor_id() -> ActorId {
        ActorId::random()
    }

    /// The device's id on the server, once enrolled.
    pub fn device(&self) -> Result<Option<DeviceId>> {
        Ok(self.enrolment()?.map(|e| e.device))
    }

    /// The server this replica is enrolled with.
    pub fn server(&self) -> Result<Option<String>> {
        Ok(self.enrolment()?.map(|e| e.server))
    }

    /// Signs out: deletes the replica file and the files beside it (`-wal`, `-shm`, the lock).
    /// Refused with [`CoreError::UnsyncedWork`] while local changes have not reached the
    /// server, unless `force`. Afterwards this handle is an empty replica in memory, not
    /// enrolled; the same path can be opened (and enrolled) again.
    pub fn wipe(&mut self, force: bool) -> Result<()> {
        let changes = self.unsynced_change_count()?;
        if changes > 0 && !force {
            return Err(CoreError::UnsyncedWork { changes });
        }
        let empty = Self::open_in_memory()?;
        let old = std::mem::replace(self, empty);
        let Self { conn, file, .. } = old;
        conn.close().map_err(|(_, e)| CoreError::from(e))?;
        match file {
            Some(file) => file.delete_files(),
            None => Ok(()),
        }
    }

    /// The file this replica is stored in (its canonical path), if any.
    pub fn path(&self) -> Option<&Path> {
        self.file.as_ref().map(FileGuard::path)
    }

    /// Checks the whole file: every page decrypts (SQLCipher's `cipher_integrity_check`), the
    /// b-trees add up (`integrity_check`), and every document loads. Reads everything, so it
    /// takes a while on a big replica: run it on demand (a "check storage" button, or after
    /// [`CoreError::DamagedFile`]), off the main thread.
    pub fn check_integrity(&self) -> Result<IntegrityReport> {
        let mut report = IntegrityReport::default();
        let encrypted =
            self.conn.query_row("PRAGMA cipher_version", [], |r| r.get::<_, String>(0)).optional()?.is_some()
                && self.file.is_some();
        if encrypted && let Ok(mut stmt) = self.conn.prepare("PRAGMA cipher_integrity_check") {
            let rows = stmt.query_map([], |r| r.get::<_, String>(0));
            if let Ok(rows) = rows {
                report.problems.extend(rows.flatten());
            }
        }
        let checked: Result<Vec<String>> = (|| {
            let mut stmt = self.conn.prepare("PRAGMA integrity_check")?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
            Ok(rows.collect::<std::result::Result<Vec<_>, _>>()?)
        })();
        match checked {
            Ok(lines) => report.problems.extend(lines.into_iter().filter(|l| l != "ok")),
            Err(e) => report.problems.push(e.to_string()),
        }
        match self.documents() {
            Ok(docs) => {
                for (id, kind) in docs {
                    match load_from(&self.conn, id, kind, &self.actor) {
                        Ok(_) => {}
                        Err(CoreError::CorruptDocument { reason, .. }) => {
                            report.damaged_documents.push((id, reason))
                        }
                        Err(e) => report.damaged_documents.push((id, e.to_string())),
                    }
                }
            }
            Err(e) => report.problems.push(e.to_string()),
        }
        report.ok = report.problems.is_empty() && report.damaged_documents.is_empty();
        Ok(report)
    }

    /// Loads a stored document (proving it readable).
    pub fn loads(&mut self, id: DocumentId) -> Result<()> {
        let kind = self.kind_of(id)?;
        self.load(id, kind).map(|_| ())
    }

    /// Documents set aside because they cannot be loaded, with the reason. Sync leaves them
    /// out and asks the server for its copy ([`Replica::recover_document`] then rebuilds them).
    pub fn quarantined(&self) -> Result<Vec<Quarantined>> {
        let json = get_meta(&self.conn, META_QUARANTINE)?.unwrap_or_else(|| "[]".into());
        Ok(serde_json::from_str(&json).unwrap_or_default())
    }

    /// Sets a document aside as damaged (see [`Replica::quarantined`]) and asks the server to
    /// send it whole on the next round.
    pub fn quarantine(&mut self, id: DocumentId, reason: &str) -> Result<()> {
        let mut list = self.quarantined()?;
        if !list.iter().any(|q| q.id == id) {
            list.push(Quarantined { id, reason: reason.to_owned() });
            let json = serde_json::to_string(&list).unwrap_or_else(|_| "[]".into());
            set_meta(&self.conn, META_QUARANTINE, &json)?;
        }
        self.cache.remove(&id);
        self.need_resend(id)
    }

    /// Rebuilds a damaged document from the server's whole copy (`saved`, as a sync sends it),
    /// keeping the local changes not yet on the server that can still be read from the stored
    /// rows; the others are lost (and counted). The document leaves the quarantine.
    pub fn recover_document(&mut self, id: DocumentId, saved: &[u8]) -> Result<Recovered> {
        let bad = |reason: String| CoreError::CorruptDocument { id, reason };
        let mut doc = AutoCommit::new();
        doc.load_incremental(saved).map_err(|e| bad(format!("the server's copy: {e}")))?;
        if !doc.get_missing_deps(&[]).is_empty() {
            return Err(bad("the server's copy is not whole".into()));
        }
        let kind = DocumentKind::of(&doc).ok_or_else(|| bad("the server's copy has no known type".into()))?;
        if crate::doc::stored_id(&doc).as_deref() != Some(id.to_string().as_str()) {
            return Err(bad("the server's copy names another document".into()));
        }
        // Whatever of the stored rows still reads, change by change.
        let mut blobs: Vec<Vec<u8>> = Vec::new();
        let snapshot: Option<Option<Vec<u8>>> = self
            .conn
            .query_row("SELECT snapshot FROM documents WHERE doc_id = ?1", [id.to_string()], |r| r.get(0))
            .optional()
            .unwrap_or(None);
        if let Some(Some(bytes)) = snapshot
            && let Ok(old) = AutoCommit::load(&bytes)
        {
            blobs.extend(old.clone().get_changes(&[]).iter().map(|c| c.raw_bytes().to_vec()));
        }
        {
            let mut stmt = self.conn.prepare("SELECT bytes FROM changes WHERE doc_id = ?1 ORDER BY seq")?;
            let rows = stmt.query_map([id.to_string()], |r| r.get::<_, Vec<u8>>(0))?;
            blobs.extend(rows.flatten());
        }
        for blob in &blobs {
            let mut trial = doc.fork();
            if trial.load_incremental(blob).is_ok() && trial.get_missing_deps(&[]).is_empty() {
                doc = trial;
            }
        }
        if DocumentKind::of(&doc) != Some(kind)
            || crate::doc::stored_id(&doc).as_deref() != Some(id.to_string().as_str())
        {
            return Err(bad("local changes change the document's type or id".into()));
        }
        let indexed = Indexed::read(&doc, id, kind)?;
        doc.set_actor(self.actor.clone());
        let pending = pending_hashes(&self.conn, id)?;
        let (kept, lost): (Vec<ChangeHash>, Vec<ChangeHash>) =
            pending.into_iter().partition(|h| doc.get_change_by_hash(h).is_some());
        let heads = doc.get_heads();
        let snapshot = doc.save();
        let mut list = self.quarantined()?;
        list.retain(|q| q.id != id);
        let tx = self.conn.transaction()?;
        let doc_id = id.to_string();
        tx.execute("DELETE FROM changes WHERE doc_id = ?1", [&doc_id])?;
        tx.execute("DELETE FROM documents WHERE doc_id = ?1", [&doc_id])?;
        index::remove_document(&tx, id)?;
        insert_document_row(&tx, id, kind, &heads)?;
        tx.execute(
            "UPDATE documents SET snapshot = ?2, snapshot_bytes = ?3 WHERE doc_id = ?1",
            params![doc_id, snapshot, snapshot.len() as i64],
        )?;
        {
            let mut delete = tx.prepare_cached("DELETE FROM pending WHERE doc_id = ?1 AND hash = ?2")?;
            for hash in &lost {
                delete.execute(params![doc_id, hash.0.as_slice()])?;
            }
        }
        indexed.write(&tx)?;
        set_meta(&tx, META_QUARANTINE, &serde_json::to_string(&list).unwrap_or_else(|_| "[]".into()))?;
        tx.commit()?;
        self.cache.insert(id, Loaded { kind, doc });
        Ok(Recovered { kept_local_changes: kept.len(), lost_local_changes: lost.len() })
    }

    /// The sync cursor: the position in the server's change log this replica has caught up to.
    pub fn sync_cursor(&self) -> Result<u64> {
        Ok(get_meta(&self.conn, META_CURSOR)?.and_then(|c| c.parse().ok()).unwrap_or(0))
    }

    /// Records the sync cursor after a reply has been applied.
    pub fn set_sync_cursor(&mut self, cursor: u64) -> Result<()> {
        set_meta(&self.conn, META_CURSOR, &cursor.to_string())
    }

    fn id_list(&self, key: &str) -> Result<Vec<DocumentId>> {
        let json = get_meta(&self.conn, key)?.unwrap_or_else(|| "[]".into());
        let ids: Vec<DocumentId> = serde_json::from_str(&json).unwrap_or_default();
        Ok(ids)
    }

    fn set_id_list(&self, key: &str, ids: &[DocumentId]) -> Result<()> {
        let json = serde_json::to_string(ids).unwrap_or_else(|_| "[]".into());
        set_meta(&self.conn, key, &json)
    }

    /// Documents the server asked this device to purge that still had unacknowledged changes;
    /// they are purged as soon as those changes are acknowledged.
    pub fn purges_waiting_for_upload(&self) -> Result<Vec<DocumentId>> {
        self.id_list(META_PURGE_LATER)
    }

    /// Purges a document the server no longer lets this device hold, or, if it still has
    /// unacknowledged changes, remembers to purge it once they are acknowledged. Returns true
    /// if it was purged now.
    pub fn purge_when_synced(&mut self, id: DocumentId) -> Result<bool> {
        let mut later = self.id_list(META_PURGE_LATER)?;
        if !pending_hashes(&self.conn, id)?.is_empty() {
            if !later.contains(&id) {
                later.push(id);
                self.set_id_list(META_PURGE_LATER, &later)?;
            }
            return Ok(false);
        }
        match self.purge(id) {
            Ok(()) | Err(CoreError::UnknownDocument(_)) => {}
            Err(e) => return Err(e),
        }
        later.retain(|d| *d != id);
        self.set_id_list(META_PURGE_LATER, &later)?;
        let mut unreported = self.id_list(META_PURGED_UNREPORTED)?;
        if !unreported.contains(&id) {
            unreported.push(id);
            self.set_id_list(META_PURGED_UNREPORTED, &unreported)?;
        }
        Ok(true)
    }

    /// Documents purged since the server was last told.
    pub fn purged_unreported(&self) -> Result<Vec<DocumentId>> {
        self.id_list(META_PURGED_UNREPORTED)
    }

    /// Forgets purges the server has now been told about.
    pub fn mark_purges_reported(&mut self, reported: &[DocumentId]) -> Result<()> {
        let mut unreported = self.id_list(META_PURGED_UNREPORTED)?;
        unreported.retain(|d| !reported.contains(d));
        self.set_id_list(META_PURGED_UNREPORTED, &unreported)
    }

    /// Asks for a document to be sent whole on the next round (its received changes could not
    /// be applied).
    pub fn need_resend(&mut self, id: DocumentId) -> Result<()> {
        let mut ids = self.id_list(META_NEED_RESEND)?;
        if !ids.contains(&id) {
            ids.push(id);
            self.set_id_list(META_NEED_RESEND, &ids)?;
        }
        Ok(())
    }

    /// Documents to ask the server to send whole.
    pub fn documents_needing_resend(&self) -> Result<Vec<DocumentId>> {
        self.id_list(META_NEED_RESEND)
    }

    /// Forgets resend requests the server has answered.
    pub fn mark_resent(&mut self, answered: &[DocumentId]) -> Result<()> {
        let mut ids = self.id_list(META_NEED_RESEND)?;
        ids.retain(|d| !answered.contains(d));
        self.set_id_list(META_NEED_RESEND, &ids)
    }

    /// Every document's id and heads, in one query (for the scope digest).
    pub fn all_heads(&self) -> Result<Vec<(DocumentId, DocumentKind, Vec<ChangeHash>)>> {
        let mut stmt = self.conn.prepare_cached("SELECT doc_id, kind, heads FROM documents")?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, Vec<u8>>(2)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, kind, heads) = row?;
            let id: DocumentId = id.parse()?;
            let kind = DocumentKind::from_stored(&kind).ok_or(CoreError::UnknownDocument(id))?;
            let heads = decode_heads(&heads).ok_or_else(|| CoreError::CorruptDocument {
                id,
                reason: "stored heads are damaged".into(),
            })?;
            out.push((id, kind, heads));
        }
        Ok(out)
    }

    /// A copy of a document for an Automerge sync session, or `None` if the replica lacks it.
    /// Store what the session brings with [`Replica::apply_remote`].
    pub fn fork_document(&mut self, id: DocumentId) -> Result<Option<AutoCommit>> {
        match self.kind_of(id) {
            Ok(kind) => Ok(Some(self.load(id, kind)?.doc.fork())),
            Err(CoreError::UnknownDocument(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The whole document as one saved Automerge blob.
    pub fn save_document(&mut self, id: DocumentId) -> Result<Vec<u8>> {
        let kind = self.kind_of(id)?;
        Ok(self.load(id, kind)?.doc.save())
    }

    /// Compacts every document into a single snapshot (for example before a backup).
    pub fn compact_all(&mut self) -> Result<()> {
        for (id, kind) in self.documents()? {
            let mut loaded = self.load_uncached(id, kind)?;
            let tx = self.conn.transaction()?;
            compact(&tx, id, &mut loaded)?;
            tx.commit()?;
            self.cache.insert(id, loaded);
        }
        Ok(())
    }

    /// Rebuilds every index table from the documents. Damaged documents are listed in the
    /// report and left out; the rest are indexed.
    pub fn rebuild_indexes(&mut self) -> Result<IndexReport> {
        let mut report = IndexReport::default();
        let docs = self.documents()?;
        let tx = self.conn.transaction()?;
        index::clear(&tx)?;
        for (id, kind) in docs {
            let loaded = match self.cache.get_mut(&id) {
                Some(loaded) => Ok(loaded.doc.fork()),
                None => load_from(&tx, id, kind, &self.actor).map(|l| l.doc),
            };
            match loaded.and_then(|doc| reindex(&tx, id, kind, &doc)) {
                Ok(()) => report.indexed += 1,
                Err(e) => report.damaged.push((id, e.to_string())),
            }
        }
        tx.commit()?;
        Ok(report)
    }

    /// Bytes the replica's documents take on disk (snapshots plus incremental changes).
    pub fn stored_document_bytes(&self) -> Result<u64> {
        let bytes: i64 = self.conn.query_row(
            "SELECT COALESCE(sum(snapshot_bytes + change_bytes), 0) FROM documents",
            [],
            |r| r.get(0),
        )?;
        Ok(bytes.unsigned_abs())
    }

    // ---- internals -------------------------------------------------------------------------

    fn kind_of(&self, id: DocumentId) -> Result<DocumentKind> {
        let kind: Option<String> = self
            .conn
            .query_row("SELECT kind FROM documents WHERE doc_id = ?1", [id.to_string()], |r| r.get(0))
            .optional()?;
        kind.and_then(|k| DocumentKind::from_stored(&k)).ok_or(CoreError::UnknownDocument(id))
    }

    fn unknown(id: DocumentId, kind: DocumentKind) -> CoreError {
        match kind {
            DocumentKind::Household => CoreError::UnknownHousehold(id.as_household()),
            DocumentKind::Request => CoreError::UnknownRequest(id.as_request()),
        }
    }

    /// The loaded document, from the cache or from SQLite.
    fn load(&mut self, id: DocumentId, kind: DocumentKind) -> Result<&mut Loaded> {
        if !self.cache.contains(&id) {
            let loaded = self.load_uncached(id, kind)?;
            self.cache.insert(id, loaded);
        }
        let loaded = self.cache.get_mut(&id).ok_or(CoreError::UnknownDocument(id))?;
        if loaded.kind != kind {
            return Err(Self::unknown(id, kind));
        }
        Ok(loaded)
    }

    fn load_uncached(&self, id: DocumentId, kind: DocumentKind) -> Result<Loaded> {
        load_from(&self.conn, id, kind, &self.actor).map_err(|e| match e {
            CoreError::UnknownDocument(id) => Self::unknown(id, kind),
            other => other,
        })
    }

    /// Creates a document, lets `write` fill it, and stores it with its first change.
    fn create_document(
        &mut self,
        id: DocumentId,
        kind: DocumentKind,
        write: impl FnOnce(&mut AutoCommit) -> Result<()>,
    ) -> Result<()> {
        let mut doc = AutoCommit::new().with_actor(self.actor.clone());
        write(&mut doc)?;
        doc.commit();
        let changes: Vec<Vec<u8>> = doc.get_changes(&[]).iter().map(|c| c.raw_bytes().to_vec()).collect();
        let hashes: Vec<ChangeHash> = doc.get_changes(&[]).iter().map(Change::hash).collect();
        let heads = doc.get_heads();
        let tx = self.conn.transaction()?;
        insert_document_row(&tx, id, kind, &heads)?;
        store_changes(&tx, id, &changes, &heads, &hashes)?;
        reindex(&tx, id, kind, &doc)?;
        tx.commit()?;
        self.cache.insert(id, Loaded { kind, doc });
        Ok(())
    }

    /// Applies `edit` to a document as one change and stores that change, its pending mark and
    /// the index rows in one transaction. On any error the document is left as it was.
    fn edit(
        &mut self,
        id: DocumentId,
        kind: DocumentKind,
        edit: impl FnOnce(&mut AutoCommit) -> Result<()>,
    ) -> Result<()> {
        self.edit_indexed(id, kind, Reindex::Document, edit)
    }

    /// [`Replica::edit`], telling how the index tables follow the edit.
    fn edit_indexed(
        &mut self,
        id: DocumentId,
        kind: DocumentKind,
        index_update: Reindex<'_>,
        edit: impl FnOnce(&mut AutoCommit) -> Result<()>,
    ) -> Result<()> {
        let compact_after = self.options.compact_after_changes;
        self.load(id, kind)?;
        let Self { conn, cache, .. } = self;
        let loaded = cache.get_mut(&id).ok_or(CoreError::UnknownDocument(id))?;
        let before = loaded.doc.get_heads();
        if let Err(e) = edit(&mut loaded.doc) {
            loaded.doc.rollback();
            return Err(e);
        }
        if loaded.doc.commit().is_none() {
            return Ok(());
        }
        let result = (|| {
            let new = loaded.doc.get_changes(&before);
            let bytes: Vec<Vec<u8>> = new.iter().map(|c| c.raw_bytes().to_vec()).collect();
            let hashes: Vec<ChangeHash> = new.iter().map(Change::hash).collect();
            let heads = loaded.doc.get_heads();
            let tx = conn.transaction()?;
            store_changes(&tx, id, &bytes, &heads, &hashes)?;
            match index_update {
                Reindex::Document => reindex(&tx, id, kind, &loaded.doc)?,
                Reindex::NewVisit { household, visit, at, kind, notes } => {
                    index::index_new_visit(&tx, household, visit, at, kind, notes)?
                }
            }
            maybe_compact(&tx, id, loaded, compact_after)?;
            tx.commit()?;
            Ok(())
        })();
        if result.is_err() {
            // The in-memory document is ahead of the file: drop it so the next read reloads
            // the stored state.
            cache.remove(&id);
        }
        result
    }
}

/// How the index tables follow an edit.
enum Reindex<'a> {
    /// Re-derive the document's rows from the whole document.
    Document,
    /// A visit was appended: one timeline row and the last-visit time, whatever the history's
    /// length (the hot path of a worker's day).
    NewVisit {
        household: HouseholdId,
        visit: VisitId,
        at: Timestamp,
        kind: crate::model::VisitKind,
        notes: &'a str,
    },
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn require_sqlcipher(conn: &Connection) -> Result<()> {
    let version: Option<String> = conn.query_row("PRAGMA cipher_version", [], |r| r.get(0)).optional()?;
    if version.is_none() {
        return Err(CoreError::EncryptionUnavailable);
    }
    Ok(())
}

/// Gives SQLCipher the key and proves it right with a first read.
fn unlock(conn: &Connection, key: &[u8], path: &Path) -> Result<()> {
    require_sqlcipher(conn)?;
    // A wrong key is reported as an error value; SQLCipher need not also print it to stderr.
    conn.execute_batch("PRAGMA cipher_log_level = NONE;")?;
    conn.execute_batch(&format!("PRAGMA key = \"x'{}'\";", hex(key)))?;
    match conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get::<_, i64>(0)) {
        Ok(_) => Ok(()),
        Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::NotADatabase => {
            Err(file::classify_unreadable(conn, path))
        }
        Err(e) => Err(e.into()),
    }
}

fn bad_key_length(len: usize) -> CoreError {
    CoreError::InvalidValue {
        field: "key",
        reason: format!("an encryption key must be exactly {KEY_BYTES} random bytes, not {len}"),
    }
}

/// A database that opens but holds tables and none of the replica's own (its `meta` table
/// with the actor id) is another application's file.
fn require_replica_schema(conn: &Connection) -> Result<()> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let (tables, has_meta): (i64, bool) = conn.query_row(
        "SELECT count(*), coalesce(sum(name = 'meta'), 0) > 0 FROM sqlite_master WHERE type = 'table'",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    if tables == 0 && version == 0 {
        return Ok(());
    }
    if version == 0 || !has_meta {
        return Err(CoreError::NotAReplica {
            reason: "a database with other tables than a replica's (no replica metadata)".into(),
        });
    }
    Ok(())
}

fn get_meta(conn: &Connection, key: &str) -> Result<Option<String>> {
    Ok(conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0)).optional()?)
}

fn set_meta(conn: &Connection, key: &str, value: &str) -> Result<()> {
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![key, value],
    )?;
    Ok(())
}

fn pending_hashes(conn: &Connection, id: DocumentId) -> Result<Vec<ChangeHash>> {
    let mut stmt = conn.prepare_cached("SELECT hash FROM pending WHERE doc_id = ?1")?;
    let rows = stmt.query_map([id.to_string()], |r| r.get::<_, Vec<u8>>(0))?;
    let mut out = Vec::new();
    for row in rows {
        let bytes = row?;
        let hash = ChangeHash::try_from(bytes.as_slice()).map_err(|_| CoreError::CorruptDocument {
            id,
            reason: "a pending change hash is damaged".into(),
        })?;
        out.push(hash);
    }
    Ok(out)
}

fn insert_document_row(
    tx: &Transaction<'_>,
    id: DocumentId,
    kind: DocumentKind,
    heads: &[ChangeHash],
) -> Result<()> {
    tx.execute(
        "INSERT INTO documents (doc_id, kind, heads) VALUES (?1, ?2, ?3)",
        params![id.to_string(), kind.as_str(), encode_heads(heads)],
    )?;
    Ok(())
}

/// Appends change rows, marks `pending` the local ones, and records the new heads.
fn store_changes(
    tx: &Transaction<'_>,
    id: DocumentId,
    changes: &[Vec<u8>],
    heads: &[ChangeHash],
    pending: &[ChangeHash],
) -> Result<()> {
    let doc_id = id.to_string();
    let mut insert = tx.prepare_cached("INSERT INTO changes (doc_id, bytes) VALUES (?1, ?2)")?;
    let mut added = 0i64;
    for bytes in changes {
        insert.execute(params![doc_id, bytes])?;
        added += bytes.len() as i64;
    }
    let mut mark = tx.prepare_cached("INSERT OR IGNORE INTO pending (doc_id, hash) VALUES (?1, ?2)")?;
    for hash in pending {
        mark.execute(params![doc_id, hash.0.as_slice()])?;
    }
    tx.execute(
        "UPDATE documents SET heads = ?2, change_rows = change_rows + ?3, change_bytes = change_bytes + ?4
         WHERE doc_id = ?1",
        params![doc_id, encode_heads(heads), changes.len() as i64, added],
    )?;
    Ok(())
}

/// Loads a document from its snapshot and changes, and checks the result against the stored
/// heads, so that damaged bytes are caught rather than half-loaded.
fn load_from(conn: &Connection, id: DocumentId, kind: DocumentKind, actor: &ActorId) -> Result<Loaded> {
    let corrupt = |reason: String| CoreError::CorruptDocument { id, reason };
    let row: Option<(String, Option<Vec<u8>>, Vec<u8>)> = conn
        .query_row("SELECT kind, snapshot, heads FROM documents WHERE doc_id = ?1", [id.to_string()], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?;
    let (stored_kind, snapshot, heads) = row.ok_or(CoreError::UnknownDocument(id))?;
    if DocumentKind::from_stored(&stored_kind) != Some(kind) {
        return Err(CoreError::UnknownDocument(id));
    }
    let mut doc = match snapshot {
        Some(bytes) => AutoCommit::load(&bytes).map_err(|e| corrupt(format!("snapshot: {e}")))?,
        None => AutoCommit::new(),
    };
    let mut stmt = conn.prepare_cached("SELECT bytes FROM changes WHERE doc_id = ?1 ORDER BY seq")?;
    let rows = stmt.query_map([id.to_string()], |r| r.get::<_, Vec<u8>>(0))?;
    let mut incremental = Vec::new();
    for row in rows {
        incremental.extend_from_slice(&row?);
    }
    if !incremental.is_empty() {
        doc.load_incremental(&incremental).map_err(|e| corrupt(format!("changes: {e}")))?;
    }
    let expected = decode_heads(&heads).ok_or_else(|| corrupt("stored heads are damaged".into()))?;
    if doc.get_heads() != expected {
        return Err(corrupt("stored changes do not match the recorded heads".into()));
    }
    doc.set_actor(actor.clone());
    Ok(Loaded { kind, doc })
}

/// Received data checked and ready to store.
struct PreparedRemote {
    id: DocumentId,
    is_new: bool,
    changes: Vec<Vec<u8>>,
    heads: Vec<ChangeHash>,
    indexed: Indexed,
    loaded: Loaded,
}

/// A document read once for its index rows.
enum Indexed {
    Household(Box<Household>, bool, Vec<SameAsMark>),
    Request(Box<Request>),
}

impl Indexed {
    /// Reads the document (which also proves it readable).
    fn read(doc: &AutoCommit, id: DocumentId, kind: DocumentKind) -> Result<Self> {
        Ok(match kind {
            DocumentKind::Household => Indexed::Household(
                Box::new(doc::household::read(doc, id.as_household())?),
                !doc::household::conflicts(doc, id.as_household()).is_empty(),
                doc::same_household::marks(doc),
            ),
            DocumentKind::Request => Indexed::Request(Box::new(doc::request::read(doc, id.as_request())?)),
        })
    }

    fn write(&self, conn: &Connection) -> Result<()> {
        match self {
            Indexed::Household(household, has_conflict, marks) => {
                index::index_household(conn, household, *has_conflict, marks)?;
                attachments::index_refs(
                    conn,
                    household.id.into(),
                    household.visits.iter().flat_map(|v| &v.attachments),
                )
            }
            Indexed::Request(request) => {
                index::index_request(conn, request)?;
                attachments::index_refs(
                    conn,
                    request.id.into(),
                    request.events.iter().flat_map(|e| &e.attachments),
                )
            }
        }
    }
}

fn reindex(conn: &Connection, id: DocumentId, kind: DocumentKind, doc: &AutoCommit) -> Result<()> {
    Indexed::read(doc, id, kind)?.write(conn)
}

fn maybe_compact(tx: &Transaction<'_>, id: DocumentId, loaded: &mut Loaded, after: u32) -> Result<()> {
    let (rows, change_bytes, snapshot_bytes): (u32, i64, i64) = tx.query_row(
        "SELECT change_rows, change_bytes, snapshot_bytes FROM documents WHERE doc_id = ?1",
        [id.to_string()],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    if rows >= after || (rows > 1 && change_bytes > snapshot_bytes.max(4096) * 2) {
        compact(tx, id, loaded)?;
    }
    Ok(())
}

/// Replaces a document's snapshot and changes with one fresh snapshot. Pending marks stay.
fn compact(tx: &Transaction<'_>, id: DocumentId, loaded: &mut Loaded) -> Result<()> {
    let snapshot = loaded.doc.save();
    let doc_id = id.to_string();
    tx.execute("DELETE FROM changes WHERE doc_id = ?1", [&doc_id])?;
    tx.execute(
        "UPDATE documents SET snapshot = ?2, snapshot_bytes = ?3, heads = ?4, change_rows = 0, change_bytes = 0
         WHERE doc_id = ?1",
        params![doc_id, snapshot, snapshot.len() as i64, encode_heads(&loaded.doc.get_heads())],
    )?;
    Ok(())
}
