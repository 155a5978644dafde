//! Storage behind one trait, so the sync service, the HTTP layer and the CLI never know which
//! database holds the data. [`sqlite::SqliteStorage`] is the embedded default;
//! [`postgresql::PostgresStorage`] serves several nodes sharing one PostgreSQL database. The sync
//! logic itself is written once, in `engine`, over the few queries each backend answers.
//!
//! Methods are blocking: the HTTP layer calls them on tokio's blocking pool. Each method is
//! one transaction; a method that returns `Ok` has committed durably.

use doorstep_core::ids::{Code, DeviceId, DocumentId, GridId, HouseholdId, MemberId, RequestId};
use doorstep_core::model::attachment::{AttachmentRef, ContentHash};
use doorstep_core::sync::message::{DocSyncMessage, ErrorCode, ManifestEntry, SyncReply, SyncRequest};
use doorstep_core::time::Timestamp;
use serde::Serialize;

use crate::scope::{Role, Scope};

pub mod accounts;
pub mod attachment;
pub mod dashboard;
mod engine;
pub mod postgresql;
mod postgresql_dashboard;
pub mod sqlite;
mod sqlite_dashboard;
pub mod transfer;

pub use dashboard::DashboardStorage;

/// A storage failure that is not the client's fault (disk full, database gone…).
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] rusqlite::Error),
    /// PostgreSQL failed, or no connection could be had.
    #[error("PostgreSQL error: {0}")]
    Postgres(String),
    /// Stored data could not be read.
    #[error("stored data is damaged: {0}")]
    Damaged(String),
    /// The blocking task running the storage call failed.
    #[error("storage task failed: {0}")]
    Task(String),
}

/// Why a sync or repair request was refused: the device's fault, with a protocol code, or the
/// server's.
#[derive(Debug, thiserror::Error)]
pub enum SyncFailure {
    /// Refused with a protocol error; nothing was stored.
    #[error("{code}: {message}")]
    Refused {
        /// The protocol code.
        code: ErrorCode,
        /// Detail for the device.
        message: String,
        /// The document concerned.
        doc: Option<DocumentId>,
    },
    /// The server failed; nothing was stored.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// An authenticated device and its member's scope.
#[derive(Clone, Debug)]
pub struct Device {
    /// The device.
    pub id: DeviceId,
    /// The Automerge actor it writes with (hex).
    pub actor: automerge::ActorId,
    /// The actors of the devices it replaced on the same replica (re-enrolment, PROTOCOL
    /// §2.4): changes the replica wrote with them are accepted from this device too.
    pub earlier_actors: Vec<automerge::ActorId>,
    /// Its member's scope.
    pub scope: Scope,
    /// The member's scope version now.
    pub scope_version: i64,
    /// The scope version this device was last fully caught up with.
    pub scope_version_seen: i64,
}

/// The outcome of looking up a device token.
#[derive(Clone, Debug)]
pub enum Authenticated {
    /// A valid, active device.
    Device(Device),
    /// A device that was revoked.
    Revoked(DeviceId),
    /// No device has this token.
    Unknown,
}

/// A device just enrolled.
#[derive(Clone, Debug, Serialize)]
pub struct Enrolled {
    /// The new device's id.
    pub device_id: DeviceId,
    /// The device token (shown once; only its hash is stored).
    pub token: String,
    /// The member it belongs to.
    pub member_id: MemberId,
    /// The member's name.
    pub member_name: String,
    /// The member's role.
    pub role: Role,
}

/// Why an enrolment failed.
#[derive(Debug, thiserror::Error)]
pub enum EnrolError {
    /// The code is unknown, expired or used (the three are not told apart, to not help guessing).
    #[error("the enrolment code is not valid")]
    InvalidCode,
    /// The actor id is malformed or already belongs to another device.
    #[error("the device's actor id is not acceptable")]
    BadActor,
    /// The device the enrolment says it replaces (by its token) has been revoked.
    #[error("the device this replica was has been revoked")]
    PreviousRevoked,
    /// The device the enrolment says it replaces belongs to another member.
    #[error("the device this replica was belongs to another member")]
    PreviousOtherMember,
    /// The server failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// A sync round's outcome: the reply for the device, and whom the changes it stored concern.
#[derive(Debug)]
pub struct Synced {
    /// What the device is sent.
    pub reply: SyncReply,
    /// Whom the stored uploads concern (empty when nothing was uploaded), for live pushes.
    pub reach: crate::scope::Reach,
}

/// Limits applied to sync requests.
#[derive(Clone, Debug)]
pub struct SyncLimits {
    /// Largest stored size of one document.
    pub max_document_bytes: usize,
    /// Stop adding data to one reply past this many bytes (one document always goes).
    pub page_bytes: usize,
}

impl Default for SyncLimits {
    fn default() -> Self {
        Self { max_document_bytes: 4 * 1024 * 1024, page_bytes: 2 * 1024 * 1024 }
    }
}

/// A grid as administered.
#[derive(Clone, Debug, Serialize)]
pub struct GridRow {
    /// Id.
    pub id: GridId,
    /// Name.
    pub name: String,
    /// Community.
    pub community: String,
    /// Street or town.
    pub street: String,
}

/// A member as administered.
#[derive(Clone, Debug, Serialize)]
pub struct MemberRow {
    /// Id.
    pub id: MemberId,
    /// Name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Department (staff only).
    pub department: Option<String>,
    /// Grids assigned.
    pub grids: Vec<GridId>,
}

/// A device as administered.
#[derive(Clone, Debug, Serialize)]
pub struct DeviceRow {
    /// Id.
    pub id: DeviceId,
    /// Member.
    pub member_id: MemberId,
    /// Name given at enrolment.
    pub name: String,
    /// When enrolled.
    pub enrolled_at: Timestamp,
    /// When revoked, if revoked.
    pub revoked_at: Option<Timestamp>,
    /// Last successful sync.
    pub last_seen_at: Option<Timestamp>,
    /// Unsynced changes it reported then.
    pub last_unsynced: Option<i64>,
}

/// Everything the relay stores, the dashboard's part included. Implemented by
/// [`sqlite::SqliteStorage`] and [`postgresql::PostgresStorage`].
pub trait Storage: DashboardStorage + Send + Sync + 'static {
    /// Looks up a device by the SHA-256 of its token.
    fn authenticate(&self, token_hash: &[u8; 32]) -> Result<Authenticated, StorageError>;
    /// Exchanges an enrolment code (by hash) for a new device with this actor and token hash.
    fn enrol(
        &self,
        code_hash: &[u8; 32],
        actor: &str,
        device_name: &str,
        token: &str,
        now: Timestamp,
    ) -> Result<Enrolled, EnrolError> {
        self.enrol_replacing(code_hash, actor, device_name, token, None, now)
    }
    /// [`Storage::enrol`] for a replica that was enrolled before and proves it with that
    /// device's token (by hash, `previous_token_hash`): when that device is the same member's
    /// and not revoked, it is revoked now and its actors become the new device's earlier
    /// actors (PROTOCOL §2.4), in the same transaction. An unknown previous token links nothing.
    fn enrol_replacing(
        &self,
        code_hash: &[u8; 32],
        actor: &str,
        device_name: &str,
        token: &str,
        previous_token_hash: Option<&[u8; 32]>,
        now: Timestamp,
    ) -> Result<Enrolled, EnrolError>;
    /// One sync round: store the uploads (all or nothing), then answer with what the device
    /// lacks in its scope since its cursor.
    fn sync(
        &self,
        device: &Device,
        request: &SyncRequest,
        limits: &SyncLimits,
        now: Timestamp,
    ) -> Result<Synced, SyncFailure>;
    /// What the device lacks since `cursor`, for a live push: like a round with nothing
    /// uploaded, but it does not count as the device's contact (last seen, unsynced count).
    fn push(
        &self,
        device: &Device,
        cursor: u64,
        limits: &SyncLimits,
        now: Timestamp,
    ) -> Result<SyncReply, SyncFailure>;
    /// Every document in the device's scope with its heads.
    fn manifest(&self, device: &Device) -> Result<Vec<ManifestEntry>, StorageError>;
    /// Answers Automerge sync messages for documents whose heads differ; changes they carry
    /// pass the same checks as uploads.
    fn repair(
        &self,
        device: &Device,
        messages: &[DocSyncMessage],
        limits: &SyncLimits,
        now: Timestamp,
    ) -> Result<Vec<DocSyncMessage>, SyncFailure>;
    /// Stores documents the server itself wrote (import, demo data, dashboard actions), all in
    /// one transaction.
    fn write_server_documents(
        &self,
        docs: &mut [(DocumentId, automerge::AutoCommit)],
        now: Timestamp,
    ) -> Result<(), StorageError>;
    /// The saved document, if stored.
    fn document(&self, id: DocumentId) -> Result<Option<automerge::AutoCommit>, StorageError>;
    /// Devices revoked at or after `since`.
    fn revoked_since(&self, since: Timestamp) -> Result<Vec<DeviceId>, StorageError>;

    /// Creates a grid.
    fn create_grid(&self, name: &str, community: &str, street: &str) -> Result<GridId, StorageError>;
    /// Creates a member.
    fn create_member(
        &self,
        name: &str,
        role: Role,
        department: Option<&Code>,
        now: Timestamp,
    ) -> Result<MemberId, StorageError>;
    /// Assigns (or with `assigned == false` unassigns) a grid to a member; raises their scope
    /// version so their devices catch up or purge.
    fn set_member_grid(&self, member: MemberId, grid: GridId, assigned: bool) -> Result<bool, StorageError>;
    /// Hands `grid` from member `from` to member `to` in one transaction (DESIGN §2): `from`
    /// loses it and `to` gains it, both scope versions rise, and the audit log records it. The
    /// old worker's devices upload what they changed while they held the grid, then purge it;
    /// the new worker's devices receive its households and requests on their next round.
    /// Returns `false`, changing nothing, when `from` does not hold the grid or `to` is unknown.
    fn hand_over_grid(
        &self,
        grid: GridId,
        from: MemberId,
        to: MemberId,
        now: Timestamp,
    ) -> Result<bool, StorageError>;
    /// The requests about `household`, by id.
    fn requests_of_household(&self, household: HouseholdId) -> Result<Vec<RequestId>, StorageError>;
    /// Creates a single-use enrolment code (stored as its hash) valid until `expires_at`.
    fn create_enrolment_code(
        &self,
        member: MemberId,
        code_hash: &[u8; 32],
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<bool, StorageError>;
    /// Revokes a device at once.
    fn revoke_device(&self, device: DeviceId, now: Timestamp) -> Result<bool, StorageError>;
    /// Every grid.
    fn grids(&self) -> Result<Vec<GridRow>, StorageError>;
    /// Every member.
    fn members(&self) -> Result<Vec<MemberRow>, StorageError>;
    /// Every device.
    fn devices(&self) -> Result<Vec<DeviceRow>, StorageError>;
    /// The highest change sequence number stored.
    fn latest_seq(&self) -> Result<u64, StorageError>;
    /// The server's secret named `name`, shared by every node: the stored one, or `fresh`
    /// (random bytes the caller made) stored now if there is none yet.
    fn server_secret(&self, name: &str, fresh: &[u8]) -> Result<Vec<u8>, StorageError>;
    /// Whether the storage holds no county yet (no grids, members or documents).
    fn is_empty(&self) -> Result<bool, StorageError>;
    /// Reads every table of [`transfer::TABLES`] from one consistent snapshot, in batches.
    fn export(&self, sink: &mut transfer::RowSink<'_>) -> Result<(), StorageError>;
    /// In one transaction: with `replace` deletes everything, then writes the rows `fill`
    /// supplies, then commits. Nothing is written if anything fails.
    fn import(&self, replace: bool, fill: &mut transfer::RowSource<'_>) -> Result<(), StorageError>;
    /// Rows per table of [`transfer::TABLES`].
    fn row_counts(&self) -> Result<std::collections::BTreeMap<&'static str, u64>, StorageError>;
    /// Every document's id and stored (encoded) heads.
    fn document_heads(&self) -> Result<Vec<(DocumentId, Vec<u8>)>, StorageError>;
    /// The reference to attachment `hash` in document `doc`, if the device's scope covers the
    /// document and the document references it: the one check before any transfer.
    fn attachment_in_scope(
        &self,
        device: &Device,
        doc: DocumentId,
        hash: &ContentHash,
    ) -> Result<Option<AttachmentRef>, StorageError>;
    /// How much of an attachment is stored: complete, or the staged upload that got furthest.
    fn attachment_status(&self, hash: &ContentHash) -> Result<Option<attachment::BlobStatus>, StorageError>;
    /// The status of `device`'s upload of `reference` through `doc`: complete once the
    /// attachment is served through `doc`, else how much of this upload the server holds.
    fn attachment_upload_status(
        &self,
        reference: &AttachmentRef,
        doc: DocumentId,
        device: DeviceId,
    ) -> Result<attachment::BlobStatus, StorageError>;
    /// Stores one chunk of `device`'s upload through `doc` (its own hash already checked), the
    /// device holding at most `quota` attachment bytes; see [`attachment::ChunkOutcome`].
    #[allow(clippy::too_many_arguments)]
    fn put_attachment_chunk(
        &self,
        reference: &AttachmentRef,
        doc: DocumentId,
        device: DeviceId,
        offset: u64,
        chunk: &[u8],
        quota: u64,
        now: Timestamp,
    ) -> Result<attachment::ChunkOutcome, StorageError>;
    /// Whether the complete attachment may be served through document `doc`: its bytes were
    /// uploaded through that document (the caller has checked the document is in scope and
    /// references it).
    fn attachment_servable(&self, hash: &ContentHash, doc: DocumentId) -> Result<bool, StorageError>;
    /// Bytes `[offset, offset + len)` of a complete attachment; `None` if not complete.
    fn attachment_range(
        &self,
        hash: &ContentHash,
        offset: u64,
        len: u64,
    ) -> Result<Option<Vec<u8>>, StorageError>;
    /// The stored thumbnail of an attachment: media type and bytes.
    fn attachment_thumbnail(&self, hash: &ContentHash) -> Result<Option<(String, Vec<u8>)>, StorageError>;
    /// Stores the thumbnail of a complete attachment.
    fn put_attachment_thumbnail(
        &self,
        hash: &ContentHash,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<(), StorageError>;
    /// Calls `on_change` whenever another server node (or an admin command) commits changes, so
    /// this node can wake its live connections. One node alone on SQLite has nothing to watch.
    fn watch_changes(&self, on_change: Box<dyn Fn(u64) + Send>) -> Result<(), StorageError> {
        let _ = on_change;
        Ok(())
    }
}
