//! `doorstep-client`: runs `doorstep-core`'s sans-IO sync engine over HTTP and WebSocket,
//! plain or over TLS (`https://`, `wss://`; see [`Trust`] for which certificates it accepts).
//! Used by the phone bindings, the examples and the end-to-end tests.
//!
//! ```no_run
//! # async fn day(county_ca_pem: &str) -> Result<(), doorstep_client::ClientError> {
//! use doorstep_client::{Client, Trust};
//! use doorstep_core::store::Replica;
//! let mut replica = Replica::open("phone.db")?;
//! // A county with its own CA; `Client::new(url)` trusts the standard web roots only.
//! let client = Client::with_trust("https://doorstep.county.example", Trust::with_ca_pem(county_ca_pem)?)?;
//! client.enrol(&mut replica, "ABCDE-FGHJK", "王芳的手机").await?;
//! // … record visits offline; later, the enrolment remembers the server and its CA …
//! let client = Client::for_replica(&replica)?;
//! let report = client.sync(&mut replica).await?;
//! println!("uploaded {} changes, received {}", report.uploaded_changes, report.received_changes);
//! # Ok(()) }
//! ```

use std::sync::Arc;

use doorstep_core::CoreError;
use doorstep_core::ids::{DeviceId, DocumentId, MemberId};
use doorstep_core::store::{Enrolment, Replica};
use doorstep_core::sync::client::{self, ClientLimits, Repair};
use doorstep_core::sync::frame::{self, FRAME_CONTENT_TYPE};
use doorstep_core::sync::message::{ErrorCode, ServerMessage};
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio_tungstenite::tungstenite;

mod attachments;
mod tls;

pub use attachments::{
    DEFAULT_CHUNK_BYTES, Direction, Downloads, NoTransferObserver, TransferObserver, TransferOptions,
    TransferReport,
};

pub use tls::Trust;

/// Most rounds one `sync` runs before giving up (a county's worth of pages).
const MAX_ROUNDS: usize = 10_000;
/// Most repair rounds per document set.
const MAX_REPAIR_ROUNDS: usize = 16;

/// What can go wrong talking to the server.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server could not be reached, or the connection broke. Nothing was lost; retry.
    #[error("network error: {0}")]
    Network(String),
    /// The server's TLS certificate is not trusted (no trusted CA issued it, it names another
    /// server, it has expired…), so nothing was sent. Retrying will not help: the device needs
    /// the county's CA certificate ([`Trust::with_ca_pem`]), or the server a valid certificate.
    #[error("the server's certificate is not trusted: {0}")]
    UntrustedCertificate(String),
    /// The CA certificate given to trust is not usable: not PEM, no certificate in it, or not
    /// a certificate that can be a trust anchor.
    #[error("the CA certificate to trust is not valid: {0}")]
    InvalidCaCertificate(String),
    /// TLS could not be set up on this device (the crypto provider refused the configuration).
    #[error("TLS could not be set up: {0}")]
    TlsSetup(String),
    /// The server refused the request with a protocol error; nothing of it was stored.
    #[error("the server refused the request ({code}): {message}")]
    Refused {
        /// The protocol code.
        code: ErrorCode,
        /// The server's explanation.
        message: String,
        /// The document the refusal is about, if one.
        doc: Option<DocumentId>,
    },
    /// The server answered something that is not the protocol (wrong URL, a proxy page…).
    #[error("unexpected answer from the server: {0}")]
    Unexpected(String),
    /// The replica has no enrolment yet.
    #[error("this device is not enrolled")]
    NotEnrolled,
    /// The caller cancelled the sync. What was acknowledged stays acknowledged; the rest is
    /// still pending and goes next time.
    #[error("the sync was cancelled")]
    Cancelled,
    /// The server refused an attachment transfer (out of scope, too large, not uploaded yet,
    /// a damaged chunk…); `code` is the server's stable code, `message` in Chinese and English.
    #[error("the server refused the attachment transfer (HTTP {status}, {code}): {message}")]
    AttachmentRefused {
        /// HTTP status.
        status: u16,
        /// The server's code (`out_of_scope`, `too_large`, `not_uploaded`, …).
        code: String,
        /// The server's message.
        message: String,
    },
    /// The local replica failed.
    #[error(transparent)]
    Core(CoreError),
}

impl From<CoreError> for ClientError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::Rejected { code, message, doc } => ClientError::Refused { code, message, doc },
            other => ClientError::Core(other),
        }
    }
}

impl From<reqwest::Error> for ClientError {
    fn from(e: reqwest::Error) -> Self {
        match tls::untrusted_certificate(&e) {
            Some(why) => ClientError::UntrustedCertificate(why),
            None => ClientError::Network(e.to_string()),
        }
    }
}

impl From<tungstenite::Error> for ClientError {
    fn from(e: tungstenite::Error) -> Self {
        match tls::untrusted_certificate(&e) {
            Some(why) => ClientError::UntrustedCertificate(why),
            None => ClientError::Network(e.to_string()),
        }
    }
}

/// What one `sync` did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    /// Round trips made.
    pub round_trips: usize,
    /// Local changes the server acknowledged.
    pub uploaded_changes: usize,
    /// Documents that received data.
    pub received_docs: usize,
    /// New changes stored from the server.
    pub received_changes: usize,
    /// Documents purged because they left this device's scope.
    pub purged: usize,
    /// Bytes sent (frame bodies).
    pub bytes_up: usize,
    /// Bytes received (frame bodies).
    pub bytes_down: usize,
    /// The scope digest matched after catch-up (or a repair made it match).
    pub verified: bool,
    /// Documents repaired with Automerge's sync protocol after a digest mismatch.
    pub repaired_docs: usize,
    /// Documents whose upload the server refused for good (out of scope, too large…), with the
    /// reason. Their changes stay on the device; everything else synced.
    pub held_back: Vec<(DocumentId, ErrorCode)>,
    /// The version of a newer county taxonomy received and stored during this sync (an app
    /// refreshes its category lists when this is set).
    pub taxonomy_version: Option<u32>,
    /// Documents found damaged on this device during this sync, with the reason: set aside
    /// (`Replica::quarantined`) while everything else synced, and asked of the server again.
    pub damaged: Vec<(DocumentId, String)>,
    /// Damaged documents rebuilt from the server's copy during this sync, keeping the local
    /// changes that could still be read.
    pub recovered: Vec<DocumentId>,
}

/// How a sync reaches the replica: step by step, never across a network wait, so an app's
/// edits are not held up by a slow connection. `&mut Replica` is the simple case; the phone
/// bindings lock their shared replica for each step.
pub trait ReplicaAccess: Send {
    /// Runs `f` on the replica.
    fn with<R: Send>(&mut self, f: impl FnOnce(&mut Replica) -> R + Send) -> impl Future<Output = R> + Send;
}

impl ReplicaAccess for &mut Replica {
    fn with<R: Send>(&mut self, f: impl FnOnce(&mut Replica) -> R + Send) -> impl Future<Output = R> + Send {
        std::future::ready(f(self))
    }
}

/// The stage a sync is in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub enum Phase {
    /// Uploading pending changes and downloading what is new.
    #[default]
    Syncing,
    /// Repairing documents after a digest mismatch.
    Repairing,
    /// Finished.
    Done,
}

/// Watches a sync: told after every round trip, asked before each whether to stop.
pub trait Observer: Send {
    /// Called after every round trip with the totals so far.
    fn progress(&mut self, _phase: Phase, _so_far: &SyncReport) {}
    /// Return true to stop before the next round trip.
    fn cancelled(&self) -> bool {
        false
    }
}

/// An observer that watches nothing.
pub struct Unobserved;

impl Observer for Unobserved {}

#[derive(Deserialize)]
struct EnrolReply {
    device_id: DeviceId,
    token: String,
    member_id: MemberId,
    /// Absent from servers older than this client.
    #[serde(default)]
    role: Option<doorstep_core::model::Role>,
}

/// A client for one server.
#[derive(Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
    trust: Trust,
    tls: Arc<rustls::ClientConfig>,
    limits: ClientLimits,
}

impl Client {
    /// A client for the server at `base_url` (`http://host:port` or `https://host:port`),
    /// trusting the standard web roots only. For a county's own CA use [`Client::with_trust`].
    ///
    /// # Panics
    ///
    /// If TLS cannot be set up at all, like `reqwest::Client::new`; [`Client::with_trust`]
    /// reports that as an error instead.
    pub fn new(base_url: &str) -> Self {
        Self::with_trust(base_url, Trust::web_roots()).expect("TLS with the ring provider and the web roots")
    }

    /// A client for the server at `base_url` that accepts the server certificates `trust`
    /// accepts, for HTTP requests and the live WebSocket alike.
    pub fn with_trust(base_url: &str, trust: Trust) -> Result<Self, ClientError> {
        let tls = trust.client_config()?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(rustls::ClientConfig::clone(&tls))
            .build()
            .map_err(|e| ClientError::TlsSetup(e.to_string()))?;
        Ok(Self {
            base: base_url.trim_end_matches('/').to_owned(),
            http,
            trust,
            tls,
            limits: ClientLimits::default(),
        })
    }

    /// A client for the server the replica is enrolled with, trusting the CA certificate
    /// remembered at enrolment (if one was given).
    pub fn for_replica(replica: &Replica) -> Result<Self, ClientError> {
        let enrolment = replica.enrolment()?.ok_or(ClientError::NotEnrolled)?;
        Self::with_trust(&enrolment.server, Trust::from_optional_pem(enrolment.server_ca_pem.as_deref())?)
    }

    /// Uses these limits.
    pub fn with_limits(mut self, limits: ClientLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Exchanges an enrolment code for a device token and records the enrolment in the replica,
    /// with this client's CA certificate (if any) so that [`Client::for_replica`] trusts the
    /// server later without being told again.
    ///
    /// Every enrolment gives the replica a new Automerge actor id. An enrolled replica may
    /// enrol again (a new CA certificate, a new code): with the same server it proves with its
    /// current token that it was that device, and the server lets the new device upload the
    /// changes written before and not yet synced (PROTOCOL §2.4). With another server the old
    /// token is never sent, and unsynced changes are refused here with
    /// [`CoreError::UnsyncedWork`]: sync them first.
    pub async fn enrol(
        &self,
        replica: &mut Replica,
        code: &str,
        device_name: &str,
    ) -> Result<Enrolment, ClientError> {
        let previous = replica.enrolment()?;
        let previous_token = previous.as_ref().filter(|e| e.server == self.base).map(|e| e.token.clone());
        if previous.is_some() && previous_token.is_none() {
            let changes = replica.unsynced_change_count()?;
            if changes > 0 {
                return Err(ClientError::Core(CoreError::UnsyncedWork { changes }));
            }
        }
        let actor = Replica::new_actor_id();
        let mut body = serde_json::json!({
            "code": code,
            "actor": actor.to_hex_string(),
            "device_name": device_name,
        });
        if let Some(token) = &previous_token {
            body["previous_token"] = serde_json::Value::from(token.as_str());
        }
        let response = self.http.post(format!("{}/v1/enrol", self.base)).json(&body).send().await?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            let detail: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            let code = match detail["error"].as_str() {
                Some("unauthorized") => ErrorCode::Unauthorized,
                Some("rate_limited") => ErrorCode::RateLimited,
                Some("internal") => ErrorCode::Internal,
                Some("device_revoked") => ErrorCode::DeviceRevoked,
                _ => ErrorCode::MalformedFrame,
            };
            if code == ErrorCode::DeviceRevoked {
                // The device this replica was has been revoked: as a sync would, delete its data
                // and forget the enrolment. The code was not used; enrolling again works.
                replica.purge_everything()?;
            }
            return Err(ClientError::Refused {
                code,
                message: detail["message"].as_str().unwrap_or(&text).to_owned(),
                doc: None,
            });
        }
        let reply: EnrolReply = response.json().await.map_err(|e| ClientError::Unexpected(e.to_string()))?;
        let enrolment = Enrolment {
            server: self.base.clone(),
            device: reply.device_id,
            token: reply.token,
            member: reply.member_id,
            server_ca_pem: self.trust.ca_pem().map(str::to_owned),
            role: reply.role,
        };
        replica.set_enrolment_with_actor(&enrolment, &actor)?;
        Ok(enrolment)
    }

    fn token(replica: &Replica) -> Result<String, ClientError> {
        Ok(replica.enrolment()?.ok_or(ClientError::NotEnrolled)?.token)
    }

    /// Posts one frame and returns the reply frame. Error frames come back as frames (the
    /// engine decodes them); only a non-protocol answer is an error here.
    pub async fn post_frame(&self, token: &str, frame: Vec<u8>) -> Result<Vec<u8>, ClientError> {
        let response = self
            .http
            .post(format!("{}/v1/sync", self.base))
            .bearer_auth(token)
            .header("content-type", FRAME_CONTENT_TYPE)
            .body(frame)
            .send()
            .await?;
        let is_frame = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v == FRAME_CONTENT_TYPE);
        let status = response.status();
        let bytes = response.bytes().await?.to_vec();
        if !is_frame {
            return Err(ClientError::Unexpected(format!(
                "HTTP {status}: {}",
                String::from_utf8_lossy(&bytes)
            )));
        }
        Ok(bytes)
    }

    /// Syncs the replica over HTTP: uploads every pending change, downloads everything new in
    /// scope, checks the scope digest and repairs any document that differs. Safe to call
    /// again after any failure: nothing acknowledged is resent in vain, nothing pending is lost.
    /// A document the server refuses for good is held back (reported, kept pending) so that it
    /// cannot block the rest.
    pub async fn sync(&self, replica: &mut Replica) -> Result<SyncReport, ClientError> {
        let mut access = replica;
        self.sync_observed(&mut access, &mut Unobserved).await
    }

    /// [`Client::sync`], reporting progress after every round trip and stopping between round
    /// trips when the observer says so.
    pub async fn sync_observed(
        &self,
        replica: &mut impl ReplicaAccess,
        observer: &mut (dyn Observer + Send),
    ) -> Result<SyncReport, ClientError> {
        let token = replica.with(|r| Self::token(r)).await?;
        let mut report = SyncReport::default();
        let digest_ok = self.rounds(replica, &token, &mut report, observer).await?;
        report.verified = digest_ok == Some(true);
        if digest_ok == Some(false) {
            report.repaired_docs = self.repair(replica, &token, &mut report, observer).await?;
            report.verified = self.rounds(replica, &token, &mut report, observer).await? == Some(true);
        }
        observer.progress(Phase::Done, &report);
        Ok(report)
    }

    /// Runs rounds until nothing is left to exchange; returns the last digest comparison.
    async fn rounds(
        &self,
        replica: &mut impl ReplicaAccess,
        token: &str,
        report: &mut SyncReport,
        observer: &mut (dyn Observer + Send),
    ) -> Result<Option<bool>, ClientError> {
        let limits = &self.limits;
        let mut digest_ok = None;
        let mut rate_limit_waits = 0;
        for _ in 0..MAX_ROUNDS {
            if observer.cancelled() {
                return Err(ClientError::Cancelled);
            }
            let held: Vec<DocumentId> = report.held_back.iter().map(|(d, _)| *d).collect();
            let (frame, round) = replica.with(|r| client::begin_round(r, limits, true, &held)).await?;
            report.bytes_up += frame.len();
            let reply = self.post_frame(token, frame).await?;
            report.bytes_down += reply.len();
            report.round_trips += 1;
            // Past this device's sync budget the server says when to retry: wait that long (a
            // few times, briefly) and send the round again; a longer wait is reported plainly
            // as `Refused { code: RateLimited }` with the server's message.
            if let Some(wait) = rate_limit_wait(&reply)
                && rate_limit_waits < MAX_RATE_LIMIT_WAITS
                && wait <= MAX_RATE_LIMIT_WAIT
            {
                rate_limit_waits += 1;
                tokio::time::sleep(wait).await;
                continue;
            }
            let outcome = match replica.with(|r| client::finish_round(r, round, &reply, limits)).await {
                Ok(outcome) => outcome,
                Err(CoreError::Rejected { code, doc: Some(doc), .. })
                    if is_permanent(code) && !held.contains(&doc) =>
                {
                    report.held_back.push((doc, code));
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            report.uploaded_changes += outcome.acknowledged_changes;
            report.received_docs += outcome.received_docs;
            report.received_changes += outcome.received_changes;
            report.purged += outcome.purged;
            report.taxonomy_version = outcome.taxonomy_version.or(report.taxonomy_version);
            report.damaged.extend(outcome.damaged);
            report.recovered.extend(outcome.recovered);
            digest_ok = outcome.digest_matches;
            observer.progress(Phase::Syncing, report);
            if !outcome.more {
                break;
            }
        }
        Ok(digest_ok)
    }

    async fn repair(
        &self,
        replica: &mut impl ReplicaAccess,
        token: &str,
        report: &mut SyncReport,
        observer: &mut (dyn Observer + Send),
    ) -> Result<usize, ClientError> {
        let limits = &self.limits;
        let request = client::manifest_request();
        report.bytes_up += request.len();
        let manifest = self.post_frame(token, request).await?;
        report.bytes_down += manifest.len();
        report.round_trips += 1;
        let mut repair = replica.with(|r| Repair::from_manifest(r, &manifest, limits)).await?;
        report.purged += repair.purged;
        let docs = repair.pending();
        for _ in 0..MAX_REPAIR_ROUNDS {
            if observer.cancelled() {
                return Err(ClientError::Cancelled);
            }
            let Some(frame) = repair.next_frame() else { break };
            report.bytes_up += frame.len();
            let reply = self.post_frame(token, frame).await?;
            report.bytes_down += reply.len();
            report.round_trips += 1;
            let repairing = &mut repair;
            report.received_changes += replica.with(|r| repairing.receive(r, &reply, limits)).await?;
            observer.progress(Phase::Repairing, report);
        }
        Ok(docs)
    }

    /// The device token the replica holds (after enrolment).
    pub fn device_token(replica: &Replica) -> Result<String, ClientError> {
        Self::token(replica)
    }

    /// Opens a live WebSocket connection with a device token (see [`Client::device_token`]).
    pub async fn connect_live(&self, token: &str) -> Result<LiveConnection, ClientError> {
        let url = format!("{}/v1/ws", self.base.replacen("http", "ws", 1));
        let mut request = tungstenite::client::IntoClientRequest::into_client_request(url.as_str())
            .map_err(|e| ClientError::Network(e.to_string()))?;
        let value = format!("Bearer {token}")
            .parse()
            .map_err(|_| ClientError::Unexpected("token is not a valid header value".into()))?;
        request.headers_mut().insert("authorization", value);
        let connector = tokio_tungstenite::Connector::Rustls(Arc::clone(&self.tls));
        let connecting =
            tokio_tungstenite::connect_async_tls_with_config(request, None, false, Some(connector));
        let (socket, _) = connecting.await.map_err(|e| match e {
            // A refused upgrade carries the server's error frame (revoked, unknown token…).
            tungstenite::Error::Http(response) => match response.body().as_deref().map(decode_reply) {
                Some(Ok(ServerMessage::Error(error))) => {
                    ClientError::Refused { code: error.code, message: error.message, doc: None }
                }
                _ => ClientError::Network(format!(
                    "the server refused the connection: HTTP {}",
                    response.status()
                )),
            },
            other => other.into(),
        })?;
        Ok(LiveConnection { socket, limits: self.limits.clone() })
    }
}

/// A live WebSocket connection: sync rounds over it, and pushes of new changes while it is open.
pub struct LiveConnection {
    socket: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    limits: ClientLimits,
}

impl LiveConnection {
    async fn next_frame(&mut self) -> Result<Vec<u8>, ClientError> {
        loop {
            match self.socket.next().await {
                Some(Ok(tungstenite::Message::Binary(bytes))) => return Ok(bytes.to_vec()),
                Some(Ok(tungstenite::Message::Close(_))) | None => {
                    return Err(ClientError::Network("the server closed the connection".into()));
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e.into()),
            }
        }
    }

    /// Sends one frame and returns the answer to it; pushes arriving meanwhile are superseded
    /// by the answer and skipped.
    pub async fn send_frame(&mut self, frame: Vec<u8>) -> Result<Vec<u8>, ClientError> {
        self.socket.send(tungstenite::Message::Binary(frame.into())).await.map_err(ClientError::from)?;
        loop {
            let frame = self.next_frame().await?;
            // A push sent before the answer covers changes the answer covers too (the server
            // answers from the request's cursor, which is older): skip it.
            if !client::is_push(&frame, &self.limits) {
                return Ok(frame);
            }
        }
    }

    /// Runs sync rounds over the socket until there is nothing more to exchange. After this the
    /// server pushes new changes in scope as they arrive.
    pub async fn sync(&mut self, replica: &mut Replica) -> Result<SyncReport, ClientError> {
        let mut report = SyncReport::default();
        for _ in 0..MAX_ROUNDS {
            let (frame, round) = client::begin_round(replica, &self.limits, false, &[])?;
            report.bytes_up += frame.len();
            let reply = self.send_frame(frame).await?;
            report.bytes_down += reply.len();
            report.round_trips += 1;
            let outcome = client::finish_round(replica, round, &reply, &self.limits)?;
            report.uploaded_changes += outcome.acknowledged_changes;
            report.received_docs += outcome.received_docs;
            report.received_changes += outcome.received_changes;
            report.purged += outcome.purged;
            report.taxonomy_version = outcome.taxonomy_version.or(report.taxonomy_version);
            if !outcome.more {
                break;
            }
        }
        Ok(report)
    }

    /// Waits for the next push from the server without applying it (so the replica need not
    /// be held while waiting); apply it with [`LiveConnection::apply`].
    pub async fn receive_push(&mut self) -> Result<Vec<u8>, ClientError> {
        self.next_frame().await
    }

    /// Applies a frame from [`LiveConnection::receive_push`].
    pub fn apply(&self, replica: &mut Replica, frame: &[u8]) -> Result<SyncReport, ClientError> {
        let outcome = client::apply_push(replica, frame, &self.limits)?;
        Ok(SyncReport {
            received_docs: outcome.received_docs,
            received_changes: outcome.received_changes,
            purged: outcome.purged,
            bytes_down: frame.len(),
            ..SyncReport::default()
        })
    }

    /// Waits for the next push from the server and applies it.
    pub async fn next_push(&mut self, replica: &mut Replica) -> Result<SyncReport, ClientError> {
        let frame = self.receive_push().await?;
        self.apply(replica, &frame)
    }
}

/// The most times one sync waits out a `rate_limited` refusal before reporting it.
const MAX_RATE_LIMIT_WAITS: u32 = 3;
/// The longest one such wait; a server asking for longer is reported at once.
const MAX_RATE_LIMIT_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// How long the server asked to wait, when `reply` is a `rate_limited` error frame with a
/// retry-after.
fn rate_limit_wait(reply: &[u8]) -> Option<std::time::Duration> {
    match decode_reply(reply) {
        Ok(ServerMessage::Error(error)) if error.code == ErrorCode::RateLimited => {
            error.retry_after_secs.map(|secs| std::time::Duration::from_secs(u64::from(secs)))
        }
        _ => None,
    }
}

/// Refusals about one document that retrying will not change.
fn is_permanent(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::OutOfScope
            | ErrorCode::ForgedActor
            | ErrorCode::DocumentTooLarge
            | ErrorCode::InvalidDocument
            | ErrorCode::MalformedChange
            | ErrorCode::MissingDependencies
    )
}

/// Decodes a reply frame for inspection (tests).
pub fn decode_reply(frame: &[u8]) -> Result<ServerMessage, ClientError> {
    frame::decode_server(frame, frame::DEFAULT_MAX_FRAME_BYTES)
        .map_err(|e| ClientError::Unexpected(e.to_string()))
}
