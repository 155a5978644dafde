//! `doorstep-server`: the county relay.
//!
//! Map of the crate:
//! - [`config`]: the one configuration struct.
//! - [`http`]: routes (`/v1/sync`, `/v1/ws`, `/v1/enrol`, `/healthz`, `/metrics`) and shared state.
//! - [`scope`]: roles and what each member may see and write.
//! - [`storage`]: the storage trait and the embedded SQLite backend.
//! - [`auth`]: device tokens and enrolment codes (random, stored hashed).
//! - [`demo`]: a demo county for newcomers.
//! - [`dashboard`]: the county web dashboard (server-rendered pages, exports, imports).
//! - [`import`]: household register import from CSV and XLSX.
//! - [`handover`]: handing some households (with their requests) to another worker's grid.
//! - [`error`]: `ApiError`, mapped to status codes and plain messages.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

pub mod auth;
pub mod check;
pub mod config;
pub mod dashboard;
pub mod demo;
pub mod error;
pub mod handover;
pub mod http;
pub mod import;
pub mod scope;
pub mod storage;
pub mod thumbnail;

use crate::config::Config;
use crate::http::AppState;
use crate::storage::{Storage, SyncLimits};

/// Serves the relay on `listener` until `shutdown` resolves: plain HTTP, or HTTPS when the
/// config names a certificate and key.
pub async fn serve(
    config: &Config,
    storage: Arc<dyn Storage>,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let limits = SyncLimits { max_document_bytes: config.max_document_bytes, page_bytes: config.page_bytes };
    // The key file links are signed with, shared by every node through the database.
    let fresh = auth::new_secret().map_err(|e| anyhow::anyhow!("no randomness for the link key: {e}"))?;
    let link_key = match storage.server_secret(http::served::LINK_KEY_NAME, fresh.as_bytes()) {
        Ok(key) => key,
        // A database that cannot be written yet has no key: this node's own serves until it can.
        Err(e) => {
            tracing::warn!(error = %e, "no shared link key could be stored; file links work on this node only");
            fresh.as_bytes().to_vec()
        }
    };
    let state = Arc::new(
        AppState::new(storage, limits, config.max_frame_bytes, config.metrics_token.clone())
            .with_link_key(link_key)
            .with_secure_cookies(config.tls()?.is_some())
            .with_max_attachment_bytes(config.max_attachment_bytes)
            .with_abuse(config.abuse_limits(), Duration::from_secs(config.body_timeout_secs.max(1)))
            .with_config(config),
    );
    tokio::spawn(watch_revocations(state.clone()));
    let changes = state.changes.clone();
    state.storage.watch_changes(Box::new(move |seq| {
        let _ = changes.send(http::ChangeNotice::to_everyone(seq));
    }))?;
    tokio::spawn(dashboard::warm_up(state.clone()));
    // When asked to stop, first close live connections, then let the connections drain.
    let stopping = state.stopping.clone();
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        let _ = stopping.send(true);
        stopper.graceful_shutdown(Some(Duration::from_secs(10)));
    });
    let router = http::router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    // A client that sends its headers (or its first request) slowly is cut off: without a
    // timer hyper waits for ever, and a few hundred such sockets starve the node (slowloris).
    let header_timeout = Duration::from_secs(config.header_timeout_secs.max(1));
    match config.tls()? {
        None => {
            let mut server = axum_server::from_tcp(listener.into_std()?)?;
            server.http_builder().http1().header_read_timeout(header_timeout);
            server.first_request_timeout(header_timeout).handle(handle).serve(router).await?;
        }
        Some((cert, key)) => {
            // Several servers in one process (tests) may race to install it; any one will do.
            let _ = rustls::crypto::ring::default_provider().install_default();
            let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
                .await
                .map_err(|e| anyhow::anyhow!("cannot load TLS certificate or key: {e}"))?;
            let mut server = axum_server::from_tcp_rustls(listener.into_std()?, tls)?;
            server.http_builder().http1().header_read_timeout(header_timeout);
            server.first_request_timeout(header_timeout).handle(handle).serve(router).await?;
        }
    }
    Ok(())
}

/// Revocations may come from the admin CLI, another process: look for them once a second and
/// close the revoked devices' WebSockets. Each look overlaps the last by a few seconds so a
/// revocation committed during a look is not missed.
async fn watch_revocations(state: Arc<AppState>) {
    let mut announced = std::collections::HashSet::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let storage = state.storage.clone();
        let from = doorstep_core::time::Timestamp(http::now().millis() - 5_000);
        match http::blocking(move || storage.revoked_since(from)).await {
            Ok(Ok(devices)) => {
                for device in devices {
                    if announced.insert(device) {
                        let _ = state.revoked.send(device);
                    }
                }
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "revocation check failed"),
            Err(e) => tracing::warn!(error = %e, "revocation check failed"),
        }
    }
}
