//! The baseline's sync server: every document and every peer's per-document sync state in
//! memory (nothing is written to disk, a kindness to the baseline), answering automerge-repo
//! envelopes over HTTP.
//!
//! Routes (all bodies CBOR):
//! - `POST /join`: a `join` message; answers `peer`.
//! - `POST /sync-batch`: an array of envelopes; answers the array of replies.
//! - `POST /sync-one`: one envelope; answers the reply, or `204 No Content`.
//! - `GET /heads`: a map from document id to its heads (for convergence checks, not measured).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use automerge::sync::SyncDoc;
use automerge::{AutoCommit, Change, ChangeHash};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::net::TcpListener;

use crate::Error;
use crate::cbor::{Cbor, from_cbor, to_cbor};
use crate::envelope::{SERVER_PEER, envelope, peer_message};

/// A peer's sync states: persisted (encoded, as automerge-repo stores them under
/// `[docId, "sync-state", storageId]`) and live for the current connection.
#[derive(Default)]
struct PeerStates {
    persisted: HashMap<String, Vec<u8>>,
    live: HashMap<String, automerge::sync::State>,
}

/// The server's documents (by automerge-repo document id) and its peers' sync states.
#[derive(Default)]
pub struct BaselineServer {
    docs: HashMap<String, AutoCommit>,
    peers: HashMap<String, PeerStates>,
}

/// The server as its routes share it: one lock around everything.
pub type Shared = Arc<Mutex<BaselineServer>>;

/// Locks `shared`, even after a panic elsewhere.
pub fn lock(shared: &Shared) -> MutexGuard<'_, BaselineServer> {
    shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl BaselineServer {
    /// Adds (or replaces) a document from its `save()` bytes.
    pub fn load(&mut self, id: String, saved: &[u8]) -> Result<(), Error> {
        self.docs.insert(id, AutoCommit::load(saved)?);
        Ok(())
    }

    /// Documents held.
    pub fn len(&self) -> usize {
        self.docs.len()
    }

    /// No documents held.
    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }

    /// Applies changes (raw bytes) made elsewhere to document `id`.
    pub fn apply_changes(&mut self, id: &str, changes: &[Vec<u8>]) -> Result<(), Error> {
        let doc = self.docs.get_mut(id).ok_or_else(|| Error::Protocol(format!("unknown document {id}")))?;
        let changes = changes
            .iter()
            .map(|c| Change::from_bytes(c.clone()).map_err(|e| Error::Decode(e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        doc.apply_changes(changes)?;
        Ok(())
    }

    /// Every document's heads, sorted.
    pub fn heads(&mut self) -> HashMap<String, Vec<ChangeHash>> {
        self.docs
            .iter_mut()
            .map(|(id, doc)| {
                let mut heads = doc.get_heads();
                heads.sort();
                (id.clone(), heads)
            })
            .collect()
    }

    /// Answers a `join`: a new connection, so the peer's live states start again from the
    /// persisted ones.
    pub fn join(&mut self, body: &[u8]) -> Result<Vec<u8>, Error> {
        let message = from_cbor(body)?;
        let peer = message.text_field("senderId")?;
        let metadata = message.field("peerMetadata")?.clone();
        self.peers.entry(peer.clone()).or_default().live.clear();
        Ok(to_cbor(&peer_message(&peer, metadata)))
    }

    /// Receives one envelope; returns the reply envelope if the server has something to say.
    pub fn receive(&mut self, message: &Cbor) -> Result<Option<Cbor>, Error> {
        let kind = message.text_field("type")?;
        if kind != "sync" && kind != "request" {
            return Err(Error::Protocol(format!("unexpected message type {kind}")));
        }
        let peer = message.text_field("senderId")?;
        let document = message.text_field("documentId")?;
        let data = automerge::sync::Message::decode(&message.bytes_field("data")?)
            .map_err(|e| Error::Decode(e.to_string()))?;
        let Some(doc) = self.docs.get_mut(&document) else {
            return Err(Error::Protocol(format!("unknown document {document}")));
        };
        let states = self.peers.entry(peer.clone()).or_default();
        let mut state = match states.live.remove(&document) {
            Some(state) => state,
            None => match states.persisted.get(&document) {
                Some(bytes) => {
                    automerge::sync::State::decode(bytes).map_err(|e| Error::Decode(e.to_string()))?
                }
                None => automerge::sync::State::new(),
            },
        };
        doc.sync().receive_sync_message(&mut state, data)?;
        let reply = doc.sync().generate_sync_message(&mut state);
        states.persisted.insert(document.clone(), state.encode());
        states.live.insert(document.clone(), state);
        Ok(reply.map(|m| envelope("sync", SERVER_PEER, &peer, &document, m.encode())))
    }

    fn batch(&mut self, body: &[u8]) -> Result<Vec<u8>, Error> {
        let Cbor::Array(messages) = from_cbor(body)? else {
            return Err(Error::Protocol("a batch is an array".into()));
        };
        let mut replies = Vec::new();
        for m in &messages {
            replies.extend(self.receive(m)?);
        }
        Ok(to_cbor(&Cbor::Array(replies)))
    }

    fn heads_message(&mut self) -> Vec<u8> {
        let entries = self
            .heads()
            .into_iter()
            .map(|(id, heads)| (id, Cbor::Array(heads.iter().map(|h| Cbor::Bytes(h.0.to_vec())).collect())))
            .collect();
        to_cbor(&Cbor::Map(entries))
    }
}

fn cbor_response(result: Result<Option<Vec<u8>>, Error>) -> Response {
    match result {
        Ok(Some(body)) => (StatusCode::OK, [("content-type", "application/cbor")], body).into_response(),
        Ok(None) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

/// The server's routes.
pub fn router(shared: Shared) -> axum::Router {
    axum::Router::new()
        .route(
            "/join",
            post(|State(s): State<Shared>, body: Bytes| async move {
                cbor_response(lock(&s).join(&body).map(Some))
            }),
        )
        .route(
            "/sync-batch",
            post(|State(s): State<Shared>, body: Bytes| async move {
                cbor_response(lock(&s).batch(&body).map(Some))
            }),
        )
        .route(
            "/sync-one",
            post(|State(s): State<Shared>, body: Bytes| async move {
                cbor_response(
                    from_cbor(&body).and_then(|m| lock(&s).receive(&m)).map(|r| r.map(|r| to_cbor(&r))),
                )
            }),
        )
        .route(
            "/heads",
            get(|State(s): State<Shared>| async move { cbor_response(Ok(Some(lock(&s).heads_message()))) }),
        )
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(shared)
}

/// Serves `shared` on a new port of 127.0.0.1, in a task of the current runtime; returns the
/// address.
pub async fn start(shared: Shared) -> Result<SocketAddr, Error> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = router(shared);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(addr)
}

/// Decodes a `/heads` answer.
pub fn decode_heads(body: &[u8]) -> Result<HashMap<String, Vec<ChangeHash>>, Error> {
    let Cbor::Map(entries) = from_cbor(body)? else { return Err(Error::Protocol("heads are a map".into())) };
    let mut out = HashMap::with_capacity(entries.len());
    for (id, heads) in entries {
        let Cbor::Array(items) = heads else { return Err(Error::Protocol("heads are an array".into())) };
        let mut hashes = Vec::with_capacity(items.len());
        for item in items {
            let Cbor::Bytes(b) = item else { return Err(Error::Protocol("a head is bytes".into())) };
            let hash: [u8; 32] = b.try_into().map_err(|_| Error::Protocol("a head is 32 bytes".into()))?;
            hashes.push(ChangeHash(hash));
        }
        out.insert(id, hashes);
    }
    Ok(out)
}
