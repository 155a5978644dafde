//! The baseline's device: what automerge-repo does on a phone. Per document an Automerge
//! document and a sync state, persisted (encoded) in a key-value store — here one SQLite table,
//! keys as automerge-repo names them (`<doc>/snapshot/<heads>`, `<doc>/incremental/<heads>`,
//! `<doc>/sync-state/<storageId>`). A sync is a `join` → `peer` handshake, then rounds: every
//! document with something to say sends a message, the server's replies are applied and
//! persisted, until the device has nothing more to say.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Instant;

use automerge::sync::SyncDoc;
use automerge::{AutoCommit, Change, ChangeHash};
use rusqlite::{Connection, OptionalExtension, params};

use crate::Error;
use crate::cbor::{Cbor, from_cbor, to_cbor};
use crate::envelope::{SERVER_PEER, envelope, join_message};

/// Most protocol rounds one sync may take.
pub const MAX_ROUNDS: usize = 32;
/// HTTP requests in flight at once in [`Mode::Strict`].
pub const STRICT_IN_FLIGHT: usize = 16;

/// How a round's messages travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// All of a round's messages in one HTTP request (one CBOR array): the kindest to the
    /// baseline.
    Batch,
    /// One message per HTTP request, [`STRICT_IN_FLIGHT`] in flight, as automerge-repo sends
    /// per-document messages.
    Strict,
}

/// What one sync did.
#[derive(Clone, Debug, Default)]
pub struct Session {
    /// Protocol rounds (dependent request → reply steps), the handshake included.
    pub rounds: usize,
    /// HTTP request/response exchanges.
    pub http_requests: usize,
    /// Envelopes both ways, the handshake's two included.
    pub messages: usize,
    /// CBOR bodies sent.
    pub body_up: u64,
    /// CBOR bodies received.
    pub body_down: u64,
    /// Documents whose heads changed on the device.
    pub docs_changed: usize,
    /// Wall time of the whole sync.
    pub seconds: f64,
}

/// `synchronous` of the device's store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// `synchronous = FULL`, as durable as Doorstep's default replica.
    Full,
    /// `synchronous = NORMAL`, as the load generator's Doorstep phones.
    Normal,
}

/// A device's baseline store and, while open, its documents in memory.
pub struct BaselineClient {
    peer: String,
    storage_id: String,
    mode: Mode,
    /// Every document id (automerge-repo needs the URLs up front; given for free here).
    ids: Vec<String>,
    docs: BTreeMap<String, AutoCommit>,
    store: Connection,
}

fn open_store(path: &Path, durability: Durability) -> Result<Connection, Error> {
    let store = Connection::open(path)?;
    store.pragma_update(None, "journal_mode", "WAL")?;
    let sync = match durability {
        Durability::Full => "FULL",
        Durability::Normal => "NORMAL",
    };
    store.pragma_update(None, "synchronous", sync)?;
    store.execute_batch("CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL)")?;
    Ok(store)
}

fn put(store: &Connection, key: &str, value: &[u8]) -> Result<(), Error> {
    store
        .prepare_cached("INSERT OR REPLACE INTO kv (key, value) VALUES (?1, ?2)")?
        .execute(params![key, value])?;
    Ok(())
}

/// A short, stable key for a set of heads.
fn heads_key(heads: &[ChangeHash]) -> String {
    heads.iter().map(|h| h.to_string()[..16].to_owned()).collect::<Vec<_>>().join("-")
}

impl BaselineClient {
    /// A new device with empty documents `ids`, its store at `path`. `peer` and `storage_id`
    /// are its automerge-repo peer id and storage id (see [`crate::envelope::peer_id`]).
    pub fn create(
        path: &Path,
        durability: Durability,
        mode: Mode,
        ids: Vec<String>,
        peer: String,
        storage_id: String,
    ) -> Result<Self, Error> {
        let store = open_store(path, durability)?;
        put(&store, "meta/peer", peer.as_bytes())?;
        put(&store, "meta/storage-id", storage_id.as_bytes())?;
        put(&store, "meta/ids", ids.join("\n").as_bytes())?;
        let docs = ids.iter().map(|id| (id.clone(), AutoCommit::new())).collect();
        Ok(Self { peer, storage_id, mode, ids, docs, store })
    }

    /// Opens a device made by [`BaselineClient::create`], loading its documents from its store.
    pub fn open(path: &Path, durability: Durability, mode: Mode) -> Result<Self, Error> {
        let store = open_store(path, durability)?;
        let meta = |key: &str| -> Result<String, Error> {
            let value: Option<Vec<u8>> =
                store.query_row("SELECT value FROM kv WHERE key = ?1", [key], |r| r.get(0)).optional()?;
            let value = value.ok_or_else(|| Error::Protocol(format!("store has no {key}")))?;
            String::from_utf8(value).map_err(|_| Error::Protocol(format!("{key} is not UTF-8")))
        };
        let (peer, storage_id) = (meta("meta/peer")?, meta("meta/storage-id")?);
        let ids: Vec<String> =
            meta("meta/ids")?.split('\n').filter(|s| !s.is_empty()).map(str::to_owned).collect();
        let mut snapshots: HashMap<String, Vec<u8>> = HashMap::new();
        let mut incrementals: HashMap<String, Vec<Vec<u8>>> = HashMap::new();
        {
            let mut stmt = store.prepare(
                "SELECT key, value FROM kv WHERE key LIKE '%/snapshot/%' OR key LIKE '%/incremental/%'",
            )?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?)))?;
            for row in rows {
                let (key, value) = row?;
                let mut parts = key.splitn(3, '/');
                match (parts.next(), parts.next()) {
                    (Some(id), Some("snapshot")) => {
                        snapshots.insert(id.to_owned(), value);
                    }
                    (Some(id), Some("incremental")) => {
                        incrementals.entry(id.to_owned()).or_default().push(value)
                    }
                    _ => {}
                }
            }
        }
        let mut docs = BTreeMap::new();
        for id in &ids {
            let mut doc = match snapshots.get(id) {
                Some(saved) => AutoCommit::load(saved)?,
                None => AutoCommit::new(),
            };
            for chunk in incrementals.get(id).into_iter().flatten() {
                doc.load_incremental(chunk)?;
            }
            docs.insert(id.clone(), doc);
        }
        Ok(Self { peer, storage_id, mode, ids, docs, store })
    }

    /// Applies changes (raw bytes) made on this device — by the app, offline — to document
    /// `id` and persists them, as automerge-repo saves an incremental after a local change.
    pub fn apply_local(&mut self, id: &str, changes: &[Vec<u8>]) -> Result<(), Error> {
        let doc = self.docs.get_mut(id).ok_or_else(|| Error::Protocol(format!("unknown document {id}")))?;
        let before = doc.get_heads();
        let changes = changes
            .iter()
            .map(|c| Change::from_bytes(c.clone()).map_err(|e| Error::Decode(e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        doc.apply_changes(changes)?;
        let after = doc.get_heads();
        put(&self.store, &format!("{id}/incremental/{}", heads_key(&after)), &doc.save_after(&before))?;
        Ok(())
    }

    fn persisted_states(&self) -> Result<HashMap<String, Vec<u8>>, Error> {
        let mut stmt = self.store.prepare("SELECT key, value FROM kv WHERE key LIKE '%/sync-state/%'")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?)))?;
        let mut out = HashMap::new();
        for row in rows {
            let (key, value) = row?;
            if let Some(doc) = key.split('/').next() {
                out.insert(doc.to_owned(), value);
            }
        }
        Ok(out)
    }

    /// One connection's sync of every document with the server at `base` (`http://…`), until
    /// no side has anything to say, at most [`MAX_ROUNDS`] rounds.
    pub async fn sync(&mut self, base: &str) -> Result<Session, Error> {
        let http = reqwest::Client::new();
        let started = Instant::now();
        let mut run = Session::default();

        // Handshake: join → peer.
        let join = to_cbor(&join_message(&self.peer, &self.storage_id));
        run.body_up += join.len() as u64;
        let peer = post(&http, &format!("{base}/join"), join)
            .await?
            .ok_or_else(|| Error::Protocol("no peer message".into()))?;
        run.body_down += peer.len() as u64;
        run.http_requests += 1;
        run.rounds += 1;
        run.messages += 2;

        // Sync states as persisted.
        let persisted = self.persisted_states()?;
        let mut states: HashMap<String, automerge::sync::State> = HashMap::new();
        for id in &self.ids {
            let state = match persisted.get(id) {
                Some(bytes) => {
                    automerge::sync::State::decode(bytes).map_err(|e| Error::Decode(e.to_string()))?
                }
                None => automerge::sync::State::new(),
            };
            states.insert(id.clone(), state);
        }

        let mut changed: std::collections::HashSet<String> = std::collections::HashSet::new();
        let mut finished = false;
        for _ in 0..MAX_ROUNDS {
            let mut outgoing: Vec<Cbor> = Vec::new();
            for id in &self.ids {
                let (Some(doc), Some(state)) = (self.docs.get_mut(id), states.get_mut(id)) else { continue };
                let kind = if doc.get_heads().is_empty() { "request" } else { "sync" };
                if let Some(message) = doc.sync().generate_sync_message(state) {
                    outgoing.push(envelope(kind, &self.peer, SERVER_PEER, id, message.encode()));
                }
            }
            if outgoing.is_empty() {
                finished = true;
                break;
            }
            run.rounds += 1;
            run.messages += outgoing.len();
            let replies = exchange(self.mode, &http, base, outgoing, &mut run).await?;
            run.messages += replies.len();
            // Apply, then persist what changed (new document data, new sync states) in one
            // transaction per round — kinder than automerge-repo's per-key writes.
            let tx = self.store.transaction()?;
            for reply in &replies {
                let id = reply.text_field("documentId")?;
                let data = automerge::sync::Message::decode(&reply.bytes_field("data")?)
                    .map_err(|e| Error::Decode(e.to_string()))?;
                let (Some(doc), Some(state)) = (self.docs.get_mut(&id), states.get_mut(&id)) else {
                    return Err(Error::Protocol("reply for an unknown document".into()));
                };
                let before = doc.get_heads();
                doc.sync().receive_sync_message(state, data)?;
                let after = doc.get_heads();
                if after != before {
                    let (key, bytes) = if before.is_empty() {
                        (format!("{id}/snapshot/{}", heads_key(&after)), doc.save())
                    } else {
                        (format!("{id}/incremental/{}", heads_key(&after)), doc.save_after(&before))
                    };
                    put(&tx, &key, &bytes)?;
                    changed.insert(id);
                }
            }
            for (id, state) in &states {
                put(&tx, &format!("{id}/sync-state/{}", self.storage_id), &state.encode())?;
            }
            tx.commit()?;
        }
        if !finished {
            return Err(Error::Protocol(format!("the sync did not settle in {MAX_ROUNDS} rounds")));
        }
        run.seconds = started.elapsed().as_secs_f64();
        run.docs_changed = changed.len();
        Ok(run)
    }

    /// Documents whose heads differ from `server`'s (sorted heads by document id), or that the
    /// server lacks.
    pub fn differing(&mut self, server: &HashMap<String, Vec<ChangeHash>>) -> usize {
        let mut differ = 0;
        for (id, doc) in &mut self.docs {
            let mut mine = doc.get_heads();
            mine.sort();
            if server.get(id) != Some(&mine) {
                differ += 1;
            }
        }
        differ
    }

    /// Documents held.
    pub fn len(&self) -> usize {
        self.docs.len()
    }

    /// No documents held.
    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }
}

/// Sends one round's envelopes as the mode says; returns the server's replies.
async fn exchange(
    mode: Mode,
    http: &reqwest::Client,
    base: &str,
    outgoing: Vec<Cbor>,
    run: &mut Session,
) -> Result<Vec<Cbor>, Error> {
    match mode {
        Mode::Batch => {
            let body = to_cbor(&Cbor::Array(outgoing));
            run.body_up += body.len() as u64;
            run.http_requests += 1;
            let reply = post(http, &format!("{base}/sync-batch"), body)
                .await?
                .ok_or_else(|| Error::Protocol("no reply".into()))?;
            run.body_down += reply.len() as u64;
            match from_cbor(&reply)? {
                Cbor::Array(items) => Ok(items),
                _ => Err(Error::Protocol("a batch reply is an array".into())),
            }
        }
        Mode::Strict => {
            use futures_util::StreamExt;
            let bodies: Vec<Vec<u8>> = outgoing.iter().map(to_cbor).collect();
            run.body_up += bodies.iter().map(|b| b.len() as u64).sum::<u64>();
            run.http_requests += bodies.len();
            let url = format!("{base}/sync-one");
            let results: Vec<Result<Option<Vec<u8>>, Error>> = futures_util::stream::iter(bodies)
                .map(|body| post(http, &url, body))
                .buffer_unordered(STRICT_IN_FLIGHT)
                .collect()
                .await;
            let mut items = Vec::new();
            for result in results {
                if let Some(reply) = result? {
                    run.body_down += reply.len() as u64;
                    items.push(from_cbor(&reply)?);
                }
            }
            Ok(items)
        }
    }
}

/// Fetches every document's heads from the server's `/heads` (not part of the protocol: for
/// checks outside the measurement).
pub async fn server_heads(base: &str) -> Result<HashMap<String, Vec<ChangeHash>>, Error> {
    let body = post_or_get(&reqwest::Client::new(), &format!("{base}/heads"), None)
        .await?
        .ok_or_else(|| Error::Protocol("no heads".into()))?;
    crate::server::decode_heads(&body)
}

async fn post(http: &reqwest::Client, url: &str, body: Vec<u8>) -> Result<Option<Vec<u8>>, Error> {
    post_or_get(http, url, Some(body)).await
}

async fn post_or_get(
    http: &reqwest::Client,
    url: &str,
    body: Option<Vec<u8>>,
) -> Result<Option<Vec<u8>>, Error> {
    let request = match body {
        Some(body) => http.post(url).header("content-type", "application/cbor").body(body),
        None => http.get(url),
    };
    let response = request.send().await?;
    let status = response.status();
    let bytes = response.bytes().await?.to_vec();
    match status.as_u16() {
        200 => Ok(Some(bytes)),
        204 => Ok(None),
        _ => Err(Error::Protocol(format!("HTTP {status}: {}", String::from_utf8_lossy(&bytes)))),
    }
}
