//! Handing a household over to another grid's worker from its page (administrators): the
//! household and its requests move with [`crate::handover::hand_over_households`].

use std::fmt::Write;
use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use doorstep_core::ids::{GridId, HouseholdId};
use serde::Deserialize;

use crate::dashboard::error::DashboardError;
use crate::dashboard::html::{Lang, esc};
use crate::dashboard::session::Staff;
use crate::handover::{HandOverError, hand_over_households};
use crate::http::{AppState, blocking, now};
use crate::scope::Role;
use crate::storage::GridRow;

/// The hand-over form of household `id`'s page: the grids it may move to.
pub fn form(b: &mut String, lang: Lang, csrf: &str, id: HouseholdId, current: GridId, grids: &[GridRow]) {
    let _ = write!(
        b,
        "<h2>{}</h2><form method=\"post\" action=\"/dashboard/households/{id}/hand-over\" class=\"actions\" id=\"hand-over\"><input type=\"hidden\" name=\"csrf\" value=\"{}\"><select name=\"grid\" id=\"hand-over-grid\">",
        lang.t("移交给其他网格", "Hand over to another grid"),
        esc(csrf)
    );
    for g in grids.iter().filter(|g| g.id != current) {
        let _ = write!(b, "<option value=\"{}\">{}</option>", g.id, esc(&g.name));
    }
    let _ = write!(
        b,
        "</select><button id=\"do-hand-over\">{}</button></form>",
        lang.t("连同诉求一起移交", "Hand over with its requests")
    );
}

/// The hand-over form's fields.
#[derive(Deserialize)]
pub struct HandOverForm {
    csrf: String,
    grid: String,
}

/// `POST /dashboard/households/{id}/hand-over`.
pub async fn act(
    State(state): State<Arc<AppState>>,
    staff: Staff,
    Path(id): Path<String>,
    Form(form): Form<HandOverForm>,
) -> Result<Response, DashboardError> {
    staff.check_csrf(&form.csrf)?;
    if staff.scope.role != Role::Admin {
        return Err(DashboardError::Forbidden("仅限县级管理员 / administrators only".into()));
    }
    let id: HouseholdId = id.parse().map_err(|_| DashboardError::NotFound)?;
    let grid: GridId =
        form.grid.parse().map_err(|_| DashboardError::BadRequest("无效网格 / invalid grid".into()))?;
    let storage = state.storage.clone();
    let moved = blocking(move || -> Result<_, DashboardError> {
        match hand_over_households(storage.as_ref(), &[id], grid, now()) {
            Ok(_) => Ok(storage.latest_seq()?),
            Err(HandOverError::UnknownHousehold(_)) => Err(DashboardError::NotFound),
            Err(HandOverError::UnknownGrid(_)) => {
                Err(DashboardError::BadRequest("没有这个网格 / no such grid".into()))
            }
            Err(HandOverError::Storage(e)) => Err(e.into()),
            Err(e @ HandOverError::Document(_)) => Err(DashboardError::Internal(e.to_string())),
        }
    })
    .await??;
    let _ = state.changes.send(crate::http::ChangeNotice::to_everyone(moved));
    Ok(Redirect::to(&format!("/dashboard/households/{id}?done=1")).into_response())
}
