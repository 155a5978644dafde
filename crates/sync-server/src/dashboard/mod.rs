//! The county web dashboard, served by `doorstep-server` under `/dashboard`: server-rendered
//! HTML (Simplified Chinese by default, English with `?lang=en`) for supervisors, department
//! staff and administrators who do not carry the phone app.
//!
//! Map of the module:
//! - [`session`]: staff sign-in (argon2), sessions, CSRF, lockout, sign-out.
//! - [`read_model`]: every document as the core reads it, refreshed from the change log.
//! - [`figures`]: overview figures, ledger filters, a grid's household list (pure).
//! - [`hand_over`]: handing a household (with its requests) to another grid.
//! - [`freshness`]: each device's last sync and unsynced changes; which grids may be stale.
//! - [`actions`]: supervisor actions written as request events into the documents.
//! - [`duplicates`]: likely duplicate households (same address), marking two as the same
//!   household and undoing it.
//! - [`pages`]: the HTML pages; [`chart`]: SVG charts; [`html`]: layout and escaping.
//! - [`export`]: ledger and visit log as CSV and XLSX; [`import`]: household register upload.
//! - [`attachments`]: photos and location fixes on pages, links in exports, and the route that
//!   serves a photo to staff in scope.
//! - [`admin`]: members, grids, devices, accounts, categories and departments; [`taxonomy`]:
//!   the county's edits of its categories and departments.
//! - [`error`]: the dashboard's error type.
//!
//! Every page and action checks the signed-in member's scope with the same rules as devices
//! ([`crate::scope`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::response::Redirect;
use axum::routing::{get, post};
use doorstep_core::ids::{GridId, MemberId};
use doorstep_core::model::Taxonomy;

use crate::http::{AppState, blocking};
use crate::storage::{GridRow, MemberRow};

pub mod actions;
pub mod admin;
pub mod attachments;
pub mod chart;
pub mod duplicates;
pub mod error;
pub mod export;
pub mod figures;
pub mod freshness;
pub mod hand_over;
pub mod html;
pub mod import;
pub mod pages;
pub mod read_model;
pub mod session;
pub mod taxonomy;

use error::DashboardError;
use read_model::ReadModel;

/// Largest upload the dashboard accepts (a household register spreadsheet).
pub const MAX_UPLOAD_BYTES: usize = 16 * 1024 * 1024;

/// The dashboard's shared state, held in [`AppState`].
pub struct Dashboard {
    /// Send cookies with `Secure` (the server speaks TLS).
    pub secure_cookies: bool,
    /// The taxonomy shipped in the binary, in force until the administrator first edits the
    /// county's (see [`taxonomy::in_force`]).
    pub taxonomy: Taxonomy,
    read_model: Mutex<ReadModel>,
    pending_imports: Mutex<HashMap<String, import::PendingImport>>,
}

impl Dashboard {
    /// A dashboard with an empty read model (filled on first use).
    pub fn new(secure_cookies: bool) -> Self {
        Self {
            secure_cookies,
            taxonomy: Taxonomy::default_county(),
            read_model: Mutex::new(ReadModel::default()),
            pending_imports: Mutex::new(HashMap::new()),
        }
    }
}

/// Grids and members, for names on pages.
pub struct Directory {
    /// Every grid.
    pub grids: Vec<GridRow>,
    /// Every member.
    pub members: Vec<MemberRow>,
}

impl Directory {
    /// A grid's name (or its id if unknown).
    pub fn grid_name(&self, id: GridId) -> String {
        self.grids.iter().find(|g| g.id == id).map_or_else(|| id.to_string(), |g| g.name.clone())
    }

    /// A member's name (or a short id if unknown, e.g. a device's imported author).
    pub fn member_name(&self, id: MemberId) -> String {
        self.members
            .iter()
            .find(|m| m.id == id)
            .map_or_else(|| id.to_string().chars().take(8).collect(), |m| m.name.clone())
    }
}

/// Brings the read model up to the newest log position, then runs `f` over it (on the
/// blocking pool, holding the model's lock).
pub async fn view<T: Send + 'static>(
    state: &Arc<AppState>,
    f: impl FnOnce(&ReadModel, &Directory, &Taxonomy) -> T + Send + 'static,
) -> Result<T, DashboardError> {
    let state = state.clone();
    blocking(move || {
        let dashboard = &state.dashboard;
        let mut model = dashboard.read_model.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let latest = state.storage.latest_seq()?;
        if latest > model.seq() {
            let changed = state.storage.documents_since(model.seq())?;
            model.apply(changed);
        }
        let directory = Directory { grids: state.storage.grids()?, members: state.storage.members()? };
        let taxonomy = taxonomy::in_force(state.storage.as_ref(), &dashboard.taxonomy)?;
        Ok(f(&model, &directory, &taxonomy))
    })
    .await?
}

/// Reads every document into the read model at start-up, so the first page a supervisor opens
/// does not wait for it.
pub async fn warm_up(state: Arc<AppState>) {
    if let Err(e) = view(&state, |_, _, _| ()).await {
        tracing::warn!(error = %e, "dashboard read model not loaded at start-up");
    }
}

/// Every `GET` route of the dashboard (path patterns as in [`routes`]), so tests can check each
/// one; keep it in step with [`routes`].
pub const GET_ROUTES: &[&str] = &[
    "/dashboard",
    "/dashboard/sign-in",
    "/dashboard/overview",
    "/dashboard/ledger",
    "/dashboard/requests/{id}",
    "/dashboard/conflicts",
    "/dashboard/grids",
    "/dashboard/grids/{id}",
    "/dashboard/freshness",
    "/dashboard/duplicates",
    "/dashboard/households/{id}",
    "/dashboard/export/{file}",
    "/dashboard/attachments/{doc}/{hash}",
    "/dashboard/import",
    "/dashboard/admin",
];

/// The dashboard's routes, to merge into the server's router.
/// Requests that take a body from anyone (sign-in) are capped
/// ([`crate::http::limits::unauthenticated_slot`]).
/// Every response carries the browser security headers ([`html::security_headers`]); a body
/// declared over [`MAX_UPLOAD_BYTES`] is refused before it is read.
pub fn routes(state: &Arc<AppState>) -> Router<Arc<AppState>> {
    let open_to_anyone =
        axum::middleware::from_fn_with_state(state.clone(), crate::http::limits::unauthenticated_slot);
    let upload_limit = axum::middleware::from_fn(|request, next| {
        crate::http::limits::refuse_declared_over(MAX_UPLOAD_BYTES, request, next)
    });
    Router::new()
        .route("/dashboard", get(|| async { Redirect::to("/dashboard/overview") }))
        .route(
            "/dashboard/sign-in",
            get(session::sign_in_form).merge(post(session::sign_in).layer(open_to_anyone)),
        )
        .route("/dashboard/sign-out", post(session::sign_out))
        .route("/dashboard/account", get(session::account_page))
        .route("/dashboard/account/password", post(session::change_password))
        .route("/dashboard/overview", get(pages::overview))
        .route("/dashboard/ledger", get(pages::ledger))
        .route("/dashboard/requests/{id}", get(pages::request))
        .route("/dashboard/requests/{id}/action", post(actions::act))
        .route("/dashboard/conflicts", get(pages::conflicts))
        .route("/dashboard/grids", get(pages::grids))
        .route("/dashboard/grids/{id}", get(pages::grid))
        .route("/dashboard/freshness", get(freshness::page))
        .route("/dashboard/duplicates", get(duplicates::page))
        .route("/dashboard/duplicates/{action}", post(duplicates::act))
        .route("/dashboard/households/{id}", get(pages::household))
        .route("/dashboard/households/{id}/resolve", post(actions::resolve))
        .route("/dashboard/households/{id}/hand-over", post(hand_over::act))
        .route("/dashboard/export/{file}", get(export::export))
        .route("/dashboard/attachments/{doc}/{hash}", get(attachments::serve))
        .route("/dashboard/import", get(import::form).post(import::preview))
        .route("/dashboard/import/confirm", post(import::confirm))
        .route("/dashboard/admin", get(admin::show))
        .route("/dashboard/admin/{action}", post(admin::act))
        .layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES))
        .layer(upload_limit)
        .layer(axum::middleware::map_response(html::security_headers))
}
