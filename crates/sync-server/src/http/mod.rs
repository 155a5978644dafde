//! The HTTP surface: routes, shared state, and device authentication.
//!
//! | route | what |
//! |---|---|
//! | `GET /healthz` | liveness, no token |
//! | `GET /readyz` | readiness: 200 when the database answers, 503 when not (load balancers) |
//! | `GET /metrics` | Prometheus text, with the configured metrics token |
//! | `POST /v1/enrol` | exchange an enrolment code for a device token (JSON) |
//! | `POST /v1/sync` | one protocol frame in, one frame out |
//! | `GET /v1/ws` | WebSocket: frames both ways, live pushes |
//! | `GET /v1/attachments/{hash}?doc=…` | an attachment's bytes (`Range` honoured; `&thumbnail=true`) |
//! | `GET`/`PUT /v1/attachments/{hash}/upload?doc=…` | resumable chunked upload: status, one chunk |
//! | `/dashboard/…` | the county web dashboard ([`crate::dashboard`]) |
//! | `GET /files/{doc}/{hash}?expires=…&sig=…` | a photo for the dashboard, through a signed short-lived link ([`served`]) |

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use doorstep_core::ids::DeviceId;
use doorstep_core::sync::message::ErrorCode;
use doorstep_core::time::Timestamp;
use tokio::sync::broadcast;

use crate::error::ApiError;
use crate::storage::{Authenticated, Device, Storage, SyncLimits};

pub mod abuse;
mod attachments;
mod enrol;
pub mod limits;
pub mod metrics;
pub mod passwords;
pub mod served;
mod sync;
mod ws;

pub use doorstep_core::sync::frame::FRAME_CONTENT_TYPE;

/// What every handler shares.
pub struct AppState {
    /// The storage backend.
    pub storage: Arc<dyn Storage>,
    /// Limits on sync requests.
    pub limits: SyncLimits,
    /// Largest frame accepted.
    pub max_frame_bytes: usize,
    /// Token for `/metrics`; `None` disables the endpoint.
    pub metrics_token: Option<String>,
    /// Sent after every commit of new changes, with whom they concern.
    pub changes: broadcast::Sender<ChangeNotice>,
    /// Devices revoked while the server runs (their WebSockets close at once).
    pub revoked: broadcast::Sender<DeviceId>,
    /// Counters for `/metrics`.
    pub metrics: metrics::Metrics,
    /// Set to `true` when the server stops: live connections close so the node can exit (their
    /// devices reconnect, to another node behind a load balancer).
    pub stopping: tokio::sync::watch::Sender<bool>,
    /// The web dashboard's state (read model, pending imports).
    pub dashboard: crate::dashboard::Dashboard,
    /// Largest attachment accepted, in bytes.
    pub max_attachment_bytes: u64,
    /// Enrolment attempts and live connections, limited.
    pub abuse: Arc<abuse::Abuse>,
    /// How long a request's body may take to arrive (every route).
    pub body_timeout: std::time::Duration,
    /// The configuration the server runs with (trusted proxies, public URL, quotas).
    pub config: crate::config::Config,
    /// The key the nodes share for signing the dashboard's file links ([`served::signed_link`]).
    pub link_key: Vec<u8>,
    /// Slots for requests on routes open to anyone ([`crate::config::Config::unauthenticated_requests_at_once`]).
    pub unauthenticated: Arc<tokio::sync::Semaphore>,
}

impl AppState {
    /// New state over a storage backend.
    pub fn new(
        storage: Arc<dyn Storage>,
        limits: SyncLimits,
        max_frame_bytes: usize,
        metrics_token: Option<String>,
    ) -> Self {
        Self {
            storage,
            limits,
            max_frame_bytes,
            metrics_token,
            changes: broadcast::channel(1024).0,
            revoked: broadcast::channel(256).0,
            metrics: metrics::Metrics::default(),
            stopping: tokio::sync::watch::channel(false).0,
            dashboard: crate::dashboard::Dashboard::new(false),
            max_attachment_bytes: doorstep_core::model::attachment::MAX_ATTACHMENT_BYTES,
            abuse: Arc::new(abuse::Abuse::new(abuse::AbuseLimits::default())),
            body_timeout: std::time::Duration::from_secs(60),
            config: crate::config::Config::default(),
            link_key: crate::auth::new_secret().unwrap_or_default().into_bytes(),
            unauthenticated: Arc::new(tokio::sync::Semaphore::new(
                crate::config::Config::default().unauthenticated_requests_at_once,
            )),
        }
    }

    /// Sets the key file links are signed with (the one stored in the database, so every node
    /// accepts every node's links).
    pub fn with_link_key(mut self, key: Vec<u8>) -> Self {
        self.link_key = key;
        self
    }

    /// Keeps the configuration (trusted proxies, public URL, quotas, unauthenticated slots).
    pub fn with_config(mut self, config: &crate::config::Config) -> Self {
        self.unauthenticated =
            Arc::new(tokio::sync::Semaphore::new(config.unauthenticated_requests_at_once.max(1)));
        self.config = config.clone();
        self
    }

    /// Sets the largest attachment accepted.
    pub fn with_max_attachment_bytes(mut self, max: u64) -> Self {
        self.max_attachment_bytes = max;
        self
    }

    /// Sets the abuse limits and the body timeout.
    pub fn with_abuse(mut self, limits: abuse::AbuseLimits, body_timeout: std::time::Duration) -> Self {
        self.abuse = Arc::new(abuse::Abuse::new(limits));
        self.body_timeout = body_timeout;
        self
    }

    /// Marks dashboard cookies `Secure` (the server speaks TLS).
    pub fn with_secure_cookies(mut self, secure: bool) -> Self {
        self.dashboard.secure_cookies = secure;
        self
    }
}

/// The router over shared state. Every route but `/v1/sync` (which answers a slow body with
/// an error frame of its own) and the WebSocket gets the body deadline; routes with a body
/// limit refuse a larger declared length before reading; routes open to anyone are capped.
pub fn router(state: Arc<AppState>) -> Router {
    use axum::middleware::{from_fn, from_fn_with_state};
    let open_to_anyone = from_fn_with_state(state.clone(), limits::unauthenticated_slot);
    let enrol_limit =
        from_fn(|request, next| limits::refuse_declared_over(enrol::MAX_BODY_BYTES, request, next));
    let deadline = from_fn_with_state(state.clone(), limits::body_deadline);
    let timed = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics::serve))
        .route(
            "/v1/enrol",
            post(enrol::enrol)
                .layer(DefaultBodyLimit::max(enrol::MAX_BODY_BYTES))
                .layer(open_to_anyone.clone())
                .layer(enrol_limit),
        )
        .route("/v1/attachments/{hash}", get(attachments::download))
        .route("/files/{doc}/{hash}", get(crate::dashboard::attachments::serve_file))
        .route(
            "/v1/attachments/{hash}/upload",
            get(attachments::upload_status).put(attachments::upload_chunk),
        )
        .layer(DefaultBodyLimit::disable())
        .merge(crate::dashboard::routes(&state))
        .layer(deadline);
    Router::new()
        .route("/v1/sync", post(sync::sync))
        .route("/v1/ws", get(ws::upgrade))
        .layer(DefaultBodyLimit::disable())
        .merge(timed)
        .with_state(state)
}

/// `GET /readyz`: whether this node can serve, i.e. its database answers. A load balancer takes a
/// node whose database connection is lost out of rotation.
async fn ready(axum::extract::State(state): axum::extract::State<Arc<AppState>>) -> axum::response::Response {
    use axum::response::IntoResponse;
    let storage = state.storage.clone();
    match blocking(move || storage.latest_seq()).await {
        Ok(Ok(_)) => "ready".into_response(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "not ready: the database does not answer");
            (axum::http::StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response()
        }
        Err(_) => (axum::http::StatusCode::SERVICE_UNAVAILABLE, "busy").into_response(),
    }
}

/// The server's clock (the core never reads one).
pub fn now() -> Timestamp {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    Timestamp(millis)
}

/// Storage calls running at once, at most. Each holds a blocking thread; past a few per core
/// more threads only wait on SQLite's one writer (or PostgreSQL's log lock) while each keeps its
/// own stack and allocator arena: a 1,000-device storm grew the blocking pool to hundreds of
/// threads and the server to 600 MiB. Requests beyond this wait their turn in async code, which
/// costs a few hundred bytes each.
pub const STORAGE_CALLS_AT_ONCE: usize = 16;

static STORAGE_CALLS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(STORAGE_CALLS_AT_ONCE);

/// Storage slots in use now (for `/metrics`).
pub fn storage_calls_in_use() -> usize {
    STORAGE_CALLS_AT_ONCE.saturating_sub(STORAGE_CALLS.available_permits())
}

/// The address a request came from: the peer, or behind a trusted proxy the address it
/// forwarded for (see [`crate::config::client_address`]).
pub fn client_ip(
    state: &AppState,
    extensions: &axum::http::Extensions,
    headers: &HeaderMap,
) -> Option<std::net::IpAddr> {
    let peer = extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()?.0.ip();
    let forwarded =
        headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).collect::<Vec<_>>();
    Some(crate::config::client_address(peer, forwarded.into_iter(), &state.abuse.limits().trusted_proxies))
}

/// Runs a blocking storage call on tokio's blocking pool, at most [`STORAGE_CALLS_AT_ONCE`] at
/// a time.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
    let _turn =
        STORAGE_CALLS.acquire().await.map_err(|e| ApiError::Internal(format!("storage slots: {e}")))?;
    tokio::task::spawn_blocking(f).await.map_err(|e| ApiError::Internal(format!("storage task: {e}")))
}

/// The bearer token of a request, if any.
pub fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    value.strip_prefix("Bearer ").map(|t| t.trim().to_owned())
}

/// Authenticates a device token: unknown and revoked tokens are refused with their codes.
pub async fn authenticate(state: &AppState, token: Option<String>) -> Result<Device, ApiError> {
    let Some(token) = token else {
        return Err(ApiError::protocol(ErrorCode::Unauthorized, "a device token is required"));
    };
    let hash = crate::auth::hash_secret(&token);
    let storage = state.storage.clone();
    match blocking(move || storage.authenticate(&hash)).await?? {
        Authenticated::Device(device) => Ok(device),
        Authenticated::Revoked(_) => Err(ApiError::protocol(
            ErrorCode::DeviceRevoked,
            "this device was revoked; delete its local data",
        )),
        Authenticated::Unknown => Err(ApiError::protocol(ErrorCode::Unauthorized, "unknown device token")),
    }
}

/// New changes were committed: live connections whose scope they may concern push what their
/// device now lacks.
#[derive(Clone, Debug)]
pub struct ChangeNotice {
    /// The newest change sequence after the commit (0 when unknown): a connection whose
    /// cursor is already there has nothing to push.
    pub seq: u64,
    /// Whom the changes concern; `None` when that is not known (changes from another node,
    /// the dashboard, an import): every connection checks.
    pub reach: Option<Arc<crate::scope::Reach>>,
}

impl ChangeNotice {
    /// A notice every live connection acts on.
    pub fn to_everyone(seq: u64) -> Self {
        Self { seq, reach: None }
    }
}
