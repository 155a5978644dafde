//! Every message of the Doorstep sync protocol (`docs/PROTOCOL.md` is the prose version).
//! Messages are CBOR; ids travel as 16 raw bytes, change hashes as 32, Automerge data as
//! byte strings holding standard Automerge chunks.

use serde::{Deserialize, Serialize};
use serde_bytes::{ByteArray, ByteBuf};

use crate::doc::DocumentKind;
use crate::ids::DocumentId;
use crate::model::Taxonomy;

/// A document id on the wire: the UUID's 16 bytes.
pub type WireId = ByteArray<16>;
/// An Automerge change hash on the wire: 32 bytes.
pub type WireHash = ByteArray<32>;

/// Converts a document id to its wire form.
pub fn wire_id(id: DocumentId) -> WireId {
    ByteArray::new(*id.as_uuid().as_bytes())
}

/// Converts a wire id back to a document id.
pub fn doc_id(wire: &WireId) -> DocumentId {
    DocumentId::from_uuid(uuid::Uuid::from_bytes(**wire))
}

/// Converts change hashes to their wire form.
pub fn wire_heads(heads: &[automerge::ChangeHash]) -> Vec<WireHash> {
    heads.iter().map(|h| ByteArray::new(h.0)).collect()
}

/// Converts wire hashes back to change hashes.
pub fn heads_of(wire: &[WireHash]) -> Vec<automerge::ChangeHash> {
    wire.iter().map(|h| automerge::ChangeHash(**h)).collect()
}

/// What a device sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientMessage {
    /// Upload local changes and ask for what changed in scope since `cursor`: one round trip.
    Sync(SyncRequest),
    /// Ask for the id and heads of every document in scope (after a digest mismatch).
    Manifest,
    /// Automerge sync messages for documents whose heads differ (repair).
    Repair(Vec<DocSyncMessage>),
}

/// One sync round from the device. Fields missing from a frame read as their defaults, so a
/// newer field never breaks an older peer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SyncRequest {
    /// The cursor of the last reply the device applied; 0 for a fresh device.
    pub cursor: u64,
    /// Local changes the server has not acknowledged.
    pub uploads: Vec<Upload>,
    /// Documents the device has purged since its last round (as told by the server).
    pub purged: Vec<WireId>,
    /// How many local changes are waiting to be acknowledged, uploads included (shown on the
    /// county dashboard as "visited but not yet synced").
    pub unsynced: u64,
    /// Ask for the scope digest in the reply.
    pub want_digest: bool,
    /// Documents whose data the device could not apply (it lacks changes they build on):
    /// send them whole.
    pub missing: Vec<WireId>,
    /// The version of the county taxonomy the device holds. `None` from devices that predate
    /// county-edited taxonomies: the server then never sends one.
    pub taxonomy_version: Option<u32>,
}

/// The changes of one document that the device uploads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upload {
    /// The document.
    pub doc: WireId,
    /// Automerge change chunks, each one change, in causal order.
    pub changes: Vec<ByteBuf>,
}

/// What the server sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerMessage {
    /// The answer to [`ClientMessage::Sync`].
    Sync(SyncReply),
    /// New changes in scope, pushed on a WebSocket without being asked; applied like a reply
    /// without acknowledgements. Never the answer to a request.
    Push(SyncReply),
    /// The answer to [`ClientMessage::Manifest`].
    Manifest(Vec<ManifestEntry>),
    /// The answer to [`ClientMessage::Repair`].
    Repair(Vec<DocSyncMessage>),
    /// The request was refused; nothing of it was stored.
    Error(ErrorBody),
}

/// The server's half of a sync round.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SyncReply {
    /// Uploaded documents, now durably stored.
    pub acks: Vec<Ack>,
    /// What the device lacks, one entry per document.
    pub docs: Vec<DocData>,
    /// Documents that left the device's scope: delete them once their changes are acknowledged.
    pub purge: Vec<WireId>,
    /// The cursor to send next time.
    pub cursor: u64,
    /// More changes wait: send another round with the new cursor.
    pub more: bool,
    /// The scope digest, if asked for and `more` is false.
    pub digest: Option<WireHash>,
    /// The county's taxonomy, sent when it is newer than the `taxonomy_version` the device
    /// reported; the device stores it and offers its categories from then on. Left out of the
    /// frame when there is none (most rounds), so an idle reply costs nothing for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub taxonomy: Option<Taxonomy>,
}

/// The server has stored an upload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// The document.
    pub doc: WireId,
    /// The heads of the uploaded changes: every uploaded change is covered by them.
    pub heads: Vec<WireHash>,
}

/// Automerge data for one document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocData {
    /// The document.
    pub doc: WireId,
    /// Its kind.
    pub kind: DocumentKind,
    /// True when `data` is the whole document (the device did not hold it yet).
    pub full: bool,
    /// Concatenated Automerge chunks (a saved document and/or changes), loadable with
    /// `load_incremental`.
    pub data: ByteBuf,
}

/// A document and its heads, as the server holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// The document.
    pub doc: WireId,
    /// Its kind.
    pub kind: DocumentKind,
    /// Its heads on the server.
    pub heads: Vec<WireHash>,
}

/// One Automerge sync-protocol message for one document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocSyncMessage {
    /// The document.
    pub doc: WireId,
    /// Its kind (needed when the receiver does not hold the document yet).
    pub kind: DocumentKind,
    /// An encoded `automerge::sync::Message`.
    pub message: ByteBuf,
}

/// Why a request was refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Machine-readable reason.
    pub code: ErrorCode,
    /// Human-readable detail (English), never internal error text.
    pub message: String,
    /// The document concerned, if one.
    pub doc: Option<WireId>,
    /// With `rate_limited`: seconds to wait before retrying. Absent from older servers'
    /// frames (and ignored by older clients).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_secs: Option<u32>,
}

/// Machine-readable protocol error codes (`docs/PROTOCOL.md` lists what each means).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame could not be decoded.
    MalformedFrame,
    /// The frame is larger than the limit.
    FrameTooLarge,
    /// The frame's protocol version is not supported.
    UnsupportedVersion,
    /// No valid device token.
    Unauthorized,
    /// The device was revoked: purge everything.
    DeviceRevoked,
    /// A document outside the device's scope.
    OutOfScope,
    /// A change whose author is not the uploading device.
    ForgedActor,
    /// A change that is not a well-formed Automerge change.
    MalformedChange,
    /// Changes that depend on changes the server does not have.
    MissingDependencies,
    /// The result would not be a valid Doorstep document.
    InvalidDocument,
    /// A document over the size limit.
    DocumentTooLarge,
    /// Too many requests; retry later.
    RateLimited,
    /// The server failed; retry later.
    Internal,
}

impl ErrorCode {
    /// The code's wire text.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::MalformedFrame => "malformed_frame",
            ErrorCode::FrameTooLarge => "frame_too_large",
            ErrorCode::UnsupportedVersion => "unsupported_version",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::DeviceRevoked => "device_revoked",
            ErrorCode::OutOfScope => "out_of_scope",
            ErrorCode::ForgedActor => "forged_actor",
            ErrorCode::MalformedChange => "malformed_change",
            ErrorCode::MissingDependencies => "missing_dependencies",
            ErrorCode::InvalidDocument => "invalid_document",
            ErrorCode::DocumentTooLarge => "document_too_large",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Internal => "internal",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
