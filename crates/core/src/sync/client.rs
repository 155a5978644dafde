//! The device side of the protocol, sans-IO: it turns the replica's state into request frames
//! and applies reply frames to the replica. The caller moves the bytes (HTTP, WebSocket, a
//! test harness) and decides when to retry.
//!
//! A sync is a loop of rounds: `begin` → send → `finish` with the reply, until the report says
//! there is nothing more to upload and nothing more to download. A cut connection loses
//! nothing: unacknowledged changes stay pending and the cursor only moves after a reply has
//! been applied.

use std::collections::HashMap;

use automerge::sync::{self, SyncDoc};
use automerge::{AutoCommit, ChangeHash};
use serde_bytes::ByteBuf;

use crate::doc::DocumentKind;
use crate::error::{CoreError, Result};
use crate::ids::DocumentId;
use crate::store::Replica;
use crate::sync::digest::scope_digest;
use crate::sync::frame::{self, DEFAULT_MAX_FRAME_BYTES};
use crate::sync::message::{
    ClientMessage, DocSyncMessage, ErrorCode, ManifestEntry, ServerMessage, SyncRequest, Upload, doc_id,
    heads_of, wire_id,
};

/// Limits the device keeps to.
#[derive(Clone, Debug)]
pub struct ClientLimits {
    /// Stop adding documents to one upload past this many change bytes (one document always
    /// goes, whatever its size).
    pub max_upload_bytes: usize,
    /// Refuse reply frames larger than this.
    pub max_frame_bytes: usize,
}

impl Default for ClientLimits {
    fn default() -> Self {
        Self { max_upload_bytes: 256 * 1024, max_frame_bytes: DEFAULT_MAX_FRAME_BYTES }
    }
}

/// What a round sent, kept until its reply arrives.
#[derive(Clone, Debug, Default)]
pub struct Round {
    uploaded: HashMap<DocumentId, Vec<ChangeHash>>,
    reported_purges: Vec<DocumentId>,
    reported_missing: Vec<DocumentId>,
    upload_left_out: bool,
    damaged: Vec<(DocumentId, String)>,
}

/// What a round achieved.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoundReport {
    /// Documents uploaded and acknowledged.
    pub acknowledged_docs: usize,
    /// Local changes acknowledged.
    pub acknowledged_changes: usize,
    /// Documents that received data.
    pub received_docs: usize,
    /// New changes stored from the server.
    pub received_changes: usize,
    /// Documents purged.
    pub purged: usize,
    /// Another round is needed (more to upload or more to download).
    pub more: bool,
    /// The scope digest comparison, when the server sent one and nothing is pending here.
    pub digest_matches: Option<bool>,
    /// The version of a newer county taxonomy received and stored this round.
    pub taxonomy_version: Option<u32>,
    /// Documents found damaged this round and set aside ([`Replica::quarantine`]), with the
    /// reason: the rest synced, and the server is asked for their copy.
    pub damaged: Vec<(DocumentId, String)>,
    /// Damaged documents rebuilt from the server's copy this round
    /// ([`Replica::recover_document`]).
    pub recovered: Vec<DocumentId>,
}

/// Builds a sync round's request frame from the replica. Documents in `held_back` are not
/// uploaded this time (the server refused them for good; their changes stay pending).
pub fn begin_round(
    replica: &mut Replica,
    limits: &ClientLimits,
    want_digest: bool,
    held_back: &[DocumentId],
) -> Result<(Vec<u8>, Round)> {
    let mut round = Round::default();
    let mut uploads = Vec::new();
    let mut bytes = 0;
    let quarantined: Vec<DocumentId> = replica.quarantined()?.into_iter().map(|q| q.id).collect();
    for id in replica.documents_with_unsynced_changes()? {
        if held_back.contains(&id) || quarantined.contains(&id) {
            continue;
        }
        if !uploads.is_empty() && bytes >= limits.max_upload_bytes {
            round.upload_left_out = true;
            break;
        }
        let changes = match replica.unsynced_changes(id) {
            Ok(changes) => changes,
            // One damaged document must not stop the others: set it aside, ask for the
            // server's copy, go on.
            Err(CoreError::CorruptDocument { id, reason }) => {
                replica.quarantine(id, &reason)?;
                round.damaged.push((id, reason));
                continue;
            }
            Err(e) => return Err(e),
        };
        if changes.is_empty() {
            continue;
        }
        bytes += changes.iter().map(Vec::len).sum::<usize>();
        round.uploaded.insert(id, replica.heads(id)?);
        uploads.push(Upload { doc: wire_id(id), changes: changes.into_iter().map(ByteBuf::from).collect() });
    }
    round.reported_purges = replica.purged_unreported()?;
    round.reported_missing = replica.documents_needing_resend()?;
    let request = SyncRequest {
        cursor: replica.sync_cursor()?,
        uploads,
        purged: round.reported_purges.iter().map(|d| wire_id(*d)).collect(),
        unsynced: replica.unsynced_change_count()?,
        want_digest,
        missing: round.reported_missing.iter().map(|d| wire_id(*d)).collect(),
        taxonomy_version: Some(replica.taxonomy().version),
    };
    Ok((frame::encode_client(&ClientMessage::Sync(request)), round))
}

fn server_message(reply: &[u8], limits: &ClientLimits) -> Result<ServerMessage> {
    Ok(frame::decode_server(reply, limits.max_frame_bytes)?)
}

fn refused(replica: &mut Replica, error: crate::sync::message::ErrorBody) -> CoreError {
    if error.code == ErrorCode::DeviceRevoked
        && let Err(e) = replica.purge_everything()
    {
        return e;
    }
    CoreError::Rejected { code: error.code, message: error.message, doc: error.doc.as_ref().map(doc_id) }
}

/// Applies a round's reply: acknowledgements, new data, purges, then the new cursor.
pub fn finish_round(
    replica: &mut Replica,
    round: Round,
    reply: &[u8],
    limits: &ClientLimits,
) -> Result<RoundReport> {
    let reply = match server_message(reply, limits)? {
        ServerMessage::Sync(reply) => reply,
        ServerMessage::Error(e) => return Err(refused(replica, e)),
        _ => {
            return Err(CoreError::Protocol(frame::FrameError {
                code: ErrorCode::MalformedFrame,
                message: "expected a sync reply".into(),
            }));
        }
    };
    let mut report = RoundReport { damaged: round.damaged, ..RoundReport::default() };
    for ack in &reply.acks {
        let id = doc_id(&ack.doc);
        if round.uploaded.contains_key(&id) {
            report.acknowledged_docs += 1;
            report.acknowledged_changes += replica.acknowledge(id, &heads_of(&ack.heads))?;
        }
    }
    replica.mark_resent(&round.reported_missing)?;
    apply_sync_reply(replica, &reply, &mut report)?;
    replica.mark_purges_reported(&round.reported_purges)?;
    // A document rebuilt this round may still hold local changes to upload.
    report.more = reply.more
        || round.upload_left_out
        || !replica.documents_needing_resend()?.is_empty()
        || !report.recovered.is_empty();
    if let Some(server) = reply.digest
        && !reply.more
        && replica.unsynced_change_count()? == 0
    {
        let local =
            scope_digest(replica.all_heads()?.into_iter().map(|(id, _, heads)| (id, heads)).collect());
        report.digest_matches = Some(local == *server);
    }
    Ok(report)
}

/// Applies server data to the replica (a round's reply, or a live push on a WebSocket), then
/// stores the new cursor.
fn apply_sync_reply(
    replica: &mut Replica,
    reply: &crate::sync::message::SyncReply,
    report: &mut RoundReport,
) -> Result<()> {
    let items: Vec<(DocumentId, &[u8])> =
        reply.docs.iter().map(|d| (doc_id(&d.doc), d.data.as_slice())).collect();
    let quarantined: Vec<DocumentId> = replica.quarantined()?.into_iter().map(|q| q.id).collect();
    // A whole copy of a document set aside as damaged rebuilds it; anything else about such a
    // document waits for that copy.
    let (recovering, items): (Vec<_>, Vec<_>) =
        reply.docs.iter().zip(items).partition(|(_, (id, _))| quarantined.contains(id));
    for (data, (id, bytes)) in recovering {
        if !data.full {
            replica.need_resend(id)?;
            continue;
        }
        match replica.recover_document(id, bytes) {
            Ok(_) => {
                report.received_docs += 1;
                report.recovered.push(id);
            }
            Err(CoreError::CorruptDocument { .. }) => replica.need_resend(id)?,
            Err(e) => return Err(e),
        }
    }
    let (docs, items): (Vec<_>, Vec<_>) = items.into_iter().unzip();
    let docs: Vec<&crate::sync::message::DocData> = docs;
    let results = replica.apply_remote_many(&items)?;
    for (data, result) in docs.into_iter().zip(results) {
        let id = doc_id(&data.doc);
        match result {
            Ok(stored) => {
                report.received_docs += 1;
                report.received_changes += stored;
            }
            // Changes that build on changes this replica lacks (a reply lost on the way, a
            // document that left and re-entered scope): ask for the whole document next round.
            Err(CoreError::CorruptDocument { .. }) if !data.full => replica.need_resend(id)?,
            // The stored copy is what is damaged: set it aside and rebuild it from this one.
            Err(CoreError::CorruptDocument { .. }) if replica.loads(id).is_err() => {
                let reason = replica.loads(id).err().map(|e| e.to_string()).unwrap_or_default();
                report.damaged.push((id, reason.clone()));
                replica.quarantine(id, &reason)?;
                match replica.recover_document(id, &data.data) {
                    Ok(_) => report.recovered.push(id),
                    Err(CoreError::CorruptDocument { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        }
    }
    if let Some(taxonomy) = &reply.taxonomy
        && taxonomy.version > replica.taxonomy().version
    {
        // A county taxonomy that does not check out is refused whole; the device keeps the
        // one it has rather than offering categories that name unknown departments.
        taxonomy.validate()?;
        replica.set_taxonomy(taxonomy.clone())?;
        report.taxonomy_version = Some(taxonomy.version);
    }
    let mut purge: Vec<DocumentId> = reply.purge.iter().map(doc_id).collect();
    purge.extend(replica.purges_waiting_for_upload()?);
    for id in purge {
        if replica.purge_when_synced(id)? {
            report.purged += 1;
        }
    }
    replica.set_sync_cursor(reply.cursor)
}

/// Applies a frame the server pushed on a live connection (new changes in scope).
pub fn apply_push(replica: &mut Replica, frame_bytes: &[u8], limits: &ClientLimits) -> Result<RoundReport> {
    match server_message(frame_bytes, limits)? {
        ServerMessage::Push(reply) => {
            let mut report = RoundReport::default();
            apply_sync_reply(replica, &reply, &mut report)?;
            Ok(report)
        }
        ServerMessage::Error(e) => Err(refused(replica, e)),
        _ => Err(CoreError::Protocol(frame::FrameError {
            code: ErrorCode::MalformedFrame,
            message: "unexpected pushed message".into(),
        })),
    }
}

/// Whether a frame from the server is a live push rather than the answer to a request.
pub fn is_push(frame_bytes: &[u8], limits: &ClientLimits) -> bool {
    matches!(frame::decode_server(frame_bytes, limits.max_frame_bytes), Ok(ServerMessage::Push(_)))
}

/// The request frame asking for the server's manifest of the scope.
pub fn manifest_request() -> Vec<u8> {
    frame::encode_client(&ClientMessage::Manifest)
}

/// A repair in progress: the documents whose heads differ, with their Automerge sync states.
pub struct Repair {
    sessions: HashMap<DocumentId, (DocumentKind, AutoCommit, sync::State, Vec<ChangeHash>)>,
    /// Documents purged because the server no longer lists them.
    pub purged: usize,
}

impl Repair {
    /// Compares the server's manifest with the replica and prepares a sync session for every
    /// document whose heads differ. Documents the server no longer lists are purged (unless
    /// they have unacknowledged changes).
    pub fn from_manifest(replica: &mut Replica, manifest: &[u8], limits: &ClientLimits) -> Result<Self> {
        let entries: Vec<ManifestEntry> = match server_message(manifest, limits)? {
            ServerMessage::Manifest(entries) => entries,
            ServerMessage::Error(e) => return Err(refused(replica, e)),
            _ => {
                return Err(CoreError::Protocol(frame::FrameError {
                    code: ErrorCode::MalformedFrame,
                    message: "expected a manifest".into(),
                }));
            }
        };
        let local: HashMap<DocumentId, Vec<ChangeHash>> =
            replica.all_heads()?.into_iter().map(|(id, _, heads)| (id, heads)).collect();
        let mut repair = Repair { sessions: HashMap::new(), purged: 0 };
        let listed: std::collections::HashSet<DocumentId> = entries.iter().map(|e| doc_id(&e.doc)).collect();
        for entry in &entries {
            let id = doc_id(&entry.doc);
            let mut server_heads = heads_of(&entry.heads);
            server_heads.sort();
            if local.get(&id) == Some(&server_heads) {
                continue;
            }
            let doc = match replica.fork_document(id) {
                Ok(doc) => doc.unwrap_or_default(),
                // Set aside; the next round asks for the server's copy.
                Err(CoreError::CorruptDocument { id, reason }) => {
                    replica.quarantine(id, &reason)?;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let heads = local.get(&id).cloned().unwrap_or_default();
            repair.sessions.insert(id, (entry.kind, doc, sync::State::new(), heads));
        }
        for id in local.keys().filter(|id| !listed.contains(id)) {
            if replica.purge_when_synced(*id)? {
                repair.purged += 1;
            }
        }
        Ok(repair)
    }

    /// Documents still being repaired.
    pub fn pending(&self) -> usize {
        self.sessions.len()
    }

    /// The next repair frame, or `None` when no document has anything left to say.
    pub fn next_frame(&mut self) -> Option<Vec<u8>> {
        let mut messages = Vec::new();
        for (id, (kind, doc, state, _)) in &mut self.sessions {
            if let Some(message) = doc.sync().generate_sync_message(state) {
                messages.push(DocSyncMessage {
                    doc: wire_id(*id),
                    kind: *kind,
                    message: ByteBuf::from(message.encode()),
                });
            }
        }
        (!messages.is_empty()).then(|| frame::encode_client(&ClientMessage::Repair(messages)))
    }

    /// Applies the server's repair answer and stores what it brought.
    pub fn receive(&mut self, replica: &mut Replica, reply: &[u8], limits: &ClientLimits) -> Result<usize> {
        let messages = match server_message(reply, limits)? {
            ServerMessage::Repair(messages) => messages,
            ServerMessage::Error(e) => return Err(refused(replica, e)),
            _ => {
                return Err(CoreError::Protocol(frame::FrameError {
                    code: ErrorCode::MalformedFrame,
                    message: "expected a repair answer".into(),
                }));
            }
        };
        let mut stored = 0;
        for m in messages {
            let id = doc_id(&m.doc);
            let Some((_, doc, state, heads)) = self.sessions.get_mut(&id) else {
                continue;
            };
            let message = sync::Message::decode(&m.message)
                .map_err(|e| CoreError::CorruptDocument { id, reason: format!("repair message: {e}") })?;
            doc.sync()
                .receive_sync_message(state, message)
                .map_err(|e| CoreError::CorruptDocument { id, reason: format!("repair message: {e}") })?;
            let new = doc.save_after(heads);
            if !new.is_empty() {
                stored += replica.apply_remote(id, &new)?;
                *heads = doc.get_heads();
            }
        }
        Ok(stored)
    }
}
