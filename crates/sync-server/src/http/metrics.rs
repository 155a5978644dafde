//! Counters exposed at `/metrics` in the Prometheus text format.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::http::{AppState, bearer};

/// Process-wide counters.
#[derive(Default)]
pub struct Metrics {
    sync_rounds: AtomicU64,
    uploaded_changes: AtomicU64,
    errors: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    websockets: AtomicU64,
    push_rounds: AtomicU64,
}

impl Metrics {
    /// Counts a served sync round.
    pub fn sync_round(&self, uploaded_changes: usize) {
        self.sync_rounds.fetch_add(1, Ordering::Relaxed);
        self.uploaded_changes.fetch_add(uploaded_changes as u64, Ordering::Relaxed);
    }

    /// Counts a live push round (a storage round done for a WebSocket after a change notice).
    pub fn push_round(&self) {
        self.push_rounds.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a refused or failed request.
    pub fn error(&self, _error: &ApiError) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts protocol bytes received.
    pub fn add_bytes_in(&self, n: usize) {
        self.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Counts protocol bytes sent.
    pub fn add_bytes_out(&self, n: usize) {
        self.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// A WebSocket opened (`+1`) or closed (`-1`).
    pub fn websocket(&self, opened: bool) {
        if opened {
            self.websockets.fetch_add(1, Ordering::Relaxed);
        } else {
            self.websockets.fetch_sub(1, Ordering::Relaxed);
        }
    }

    fn render(&self, passwords: &super::passwords::PasswordChecks) -> String {
        let line = |name: &str, kind: &str, help: &str, value: u64| {
            format!("# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n")
        };
        [
            line(
                "doorstep_sync_rounds_total",
                "counter",
                "Sync rounds served.",
                self.sync_rounds.load(Ordering::Relaxed),
            ),
            line(
                "doorstep_uploaded_changes_total",
                "counter",
                "Changes received in uploads.",
                self.uploaded_changes.load(Ordering::Relaxed),
            ),
            line(
                "doorstep_errors_total",
                "counter",
                "Requests refused or failed.",
                self.errors.load(Ordering::Relaxed),
            ),
            line(
                "doorstep_frame_bytes_in_total",
                "counter",
                "Protocol bytes received.",
                self.bytes_in.load(Ordering::Relaxed),
            ),
            line(
                "doorstep_frame_bytes_out_total",
                "counter",
                "Protocol bytes sent.",
                self.bytes_out.load(Ordering::Relaxed),
            ),
            line(
                "doorstep_push_rounds_total",
                "counter",
                "Storage rounds done to push changes to live connections.",
                self.push_rounds.load(Ordering::Relaxed),
            ),
            line(
                "doorstep_websockets_open",
                "gauge",
                "Open WebSocket connections.",
                self.websockets.load(Ordering::Relaxed),
            ),
            line(
                "doorstep_storage_calls_in_use",
                "gauge",
                "Storage slots (of 16) in use.",
                super::storage_calls_in_use() as u64,
            ),
            line(
                "doorstep_password_checks_running",
                "gauge",
                "Passwords being hashed now (outside the storage slots).",
                passwords.running() as u64,
            ),
            line(
                "doorstep_password_checks_waiting",
                "gauge",
                "Sign-ins waiting for a password check.",
                passwords.waiting() as u64,
            ),
            line("doorstep_password_checks_total", "counter", "Passwords checked.", passwords.checked()),
        ]
        .concat()
    }
}

/// `GET /metrics`, with `Authorization: Bearer <metrics token>`.
pub async fn serve(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    match (&state.metrics_token, bearer(&headers)) {
        (None, _) => (StatusCode::NOT_FOUND, "metrics are disabled (set metrics_token)").into_response(),
        (Some(expected), Some(given))
            if crate::auth::hash_secret(expected) == crate::auth::hash_secret(&given) =>
        {
            ([("content-type", "text/plain; version=0.0.4")], state.metrics.render(&state.abuse.passwords))
                .into_response()
        }
        _ => (StatusCode::UNAUTHORIZED, "metrics token required").into_response(),
    }
}
