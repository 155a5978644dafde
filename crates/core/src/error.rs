//! The one error type of `doorstep-core`. Each variant is something a caller can act on:
//! fix the input, refresh a list, or report a damaged document.

use crate::ids::{DocumentId, HouseholdId, RequestId, ResidentId};
use crate::lifecycle::RequestStatus;

/// Everything that can go wrong in the core.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoreError {
    /// An identifier or code in the input is not well formed.
    #[error("invalid {what}: {value:?}")]
    InvalidId {
        /// What kind of identifier was expected.
        what: &'static str,
        /// The first characters of the rejected text.
        value: String,
    },
    /// A required text field is empty (or only white space).
    #[error("{field} must not be empty")]
    EmptyText {
        /// The field's name.
        field: &'static str,
    },
    /// A text field is longer than allowed.
    #[error("{field} is longer than {max} characters")]
    TextTooLong {
        /// The field's name.
        field: &'static str,
        /// The limit, in characters.
        max: usize,
    },
    /// A value is out of its allowed range or form (a birth year of 1700, a phone of letters).
    #[error("invalid {field}: {reason}")]
    InvalidValue {
        /// The field's name.
        field: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// No household with this id in the replica.
    #[error("unknown household {0}")]
    UnknownHousehold(HouseholdId),
    /// No request with this id in the replica.
    #[error("unknown request {0}")]
    UnknownRequest(RequestId),
    /// No resident with this id in the household.
    #[error("unknown resident {0}")]
    UnknownResident(ResidentId),
    /// No document with this id in the replica.
    #[error("unknown document {0}")]
    UnknownDocument(DocumentId),
    /// The category is not in the county's taxonomy.
    #[error("unknown request category {0:?}")]
    UnknownCategory(String),
    /// The request's current status does not allow this action.
    #[error("cannot {action} a request that is {from}")]
    InvalidTransition {
        /// The status derived from the event log before the action.
        from: RequestStatus,
        /// The refused action.
        action: &'static str,
    },
    /// The member's role may not take this action (DESIGN §2; [`crate::model::Role::may_take`]).
    #[error("a {role} may not {action} a request")]
    NotPermitted {
        /// The member's role.
        role: crate::model::Role,
        /// The refused action.
        action: &'static str,
    },
    /// There is no open conflict at the place named.
    #[error("no conflict to resolve: {0}")]
    NoSuchConflict(String),
    /// A stored or received document cannot be read. Other documents stay usable.
    #[error("document {id} is damaged: {reason}")]
    CorruptDocument {
        /// The damaged document.
        id: DocumentId,
        /// What was wrong.
        reason: String,
    },
    /// The document still has local changes the server has not acknowledged.
    #[error("document {0} has changes not yet stored by the server")]
    UnsyncedChanges(DocumentId),
    /// The encryption key does not open this replica file. Nothing was changed.
    #[error("the key does not open this replica file")]
    WrongKey,
    /// The replica file is damaged: the key is right (or the damage hides whether it is), but
    /// pages of the file cannot be read. [`crate::store::Replica::check_integrity`] says what;
    /// the way back is a new enrolment with the server's copy (unsynced work exported first).
    #[error("the replica file is damaged: {reason}")]
    DamagedFile {
        /// What was found.
        reason: String,
    },
    /// The file is not a Doorstep replica (a plain SQLite database, or no database at all):
    /// most likely the app opened the wrong path. Nothing was changed.
    #[error("not a Doorstep replica file: {reason}")]
    NotAReplica {
        /// What was found.
        reason: String,
    },
    /// The replica file is already open, in this process or another one. A second handle
    /// would write changes the first does not know of and damage the file for good.
    #[error("the replica file {path} is already open (in this process or another)")]
    AlreadyOpen {
        /// The file.
        path: String,
    },
    /// The replica holds local changes the server has not stored yet, so the operation (a
    /// sign-out, an enrolment with another server) would lose them. Sync first, or force it.
    #[error("{changes} local changes have not reached the server yet")]
    UnsyncedWork {
        /// How many.
        changes: u64,
    },
    /// A file operation outside SQLite failed (the lock file beside the replica, deleting it).
    #[error("file error: {0}")]
    File(std::io::Error),
    /// This build's SQLite has no encryption (SQLCipher); an encrypted replica cannot be used.
    #[error("this build has no database encryption (SQLCipher)")]
    EncryptionUnavailable,
    /// The replica has no member identity yet (the device is not enrolled).
    #[error("no member is signed in on this replica")]
    NoMember,
    /// An attachment is larger than the limit.
    #[error("the attachment is {size} bytes; at most {max} are allowed")]
    AttachmentTooLarge {
        /// Its size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// No attachment with this hash is known to the replica, or its bytes are not here.
    #[error("attachment {0} is not on this device")]
    UnknownAttachment(crate::model::attachment::ContentHash),
    /// Bytes received for an attachment do not match its content hash; they were dropped.
    #[error("the bytes received for attachment {0} do not match its hash")]
    AttachmentMismatch(crate::model::attachment::ContentHash),
    /// A taxonomy file could not be read.
    #[error("invalid taxonomy: {0}")]
    InvalidTaxonomy(String),
    /// The server refused a sync request; nothing of it was stored.
    #[error("the server refused the request ({code}): {message}")]
    Rejected {
        /// The protocol error code.
        code: crate::sync::message::ErrorCode,
        /// The server's explanation.
        message: String,
        /// The document the refusal is about, if one.
        doc: Option<DocumentId>,
    },
    /// A frame from the other side could not be decoded.
    #[error("protocol error: {0}")]
    Protocol(#[from] crate::sync::frame::FrameError),
    /// The device's storage is full. The failed write was rolled back whole; everything saved
    /// before it is intact. Free space and retry.
    #[error("the device's storage is full; nothing of this change was saved")]
    StorageFull,
    /// The replica file cannot be written (a read-only file system or file). Nothing of the
    /// failed write was saved; what is stored can still be read.
    #[error("the device's storage is read-only; nothing of this change was saved")]
    StorageReadOnly,
    /// The SQLite store failed otherwise (file locked, not a database…).
    #[error("storage error: {0}")]
    Storage(rusqlite::Error),
    /// Automerge refused an operation.
    #[error("document error: {0}")]
    Automerge(#[from] automerge::AutomergeError),
}

impl From<rusqlite::Error> for CoreError {
    /// A full or read-only store gets its own variant, so the app can say so plainly.
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DiskFull) => CoreError::StorageFull,
            Some(rusqlite::ErrorCode::ReadOnly) => CoreError::StorageReadOnly,
            // Once a file is open (its key proven), a page that does not decrypt or a b-tree
            // that does not add up is damage, never a wrong key.
            Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase) => {
                CoreError::DamagedFile { reason: e.to_string() }
            }
            _ => CoreError::Storage(e),
        }
    }
}

/// Shorthand for results of the core.
pub type Result<T, E = CoreError> = std::result::Result<T, E>;
