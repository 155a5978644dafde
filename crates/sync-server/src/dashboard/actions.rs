//! Supervisor actions: dispatch to a department, mark as supervised, close, review a conflict,
//! choose between concurrent values of a household field. Request actions are request events written into the request's Automerge document by doorstep-core
//! (which checks them against the lifecycle table), stored like any other change, and announced
//! on [`AppState::changes`] so connected devices get it at once and the rest at next sync.

use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use doorstep_core::conflict::HouseholdField;
use doorstep_core::doc;
use doorstep_core::error::CoreError;
use doorstep_core::ids::{Code, EventId, HouseholdId, RequestId};
use doorstep_core::lifecycle::RequestStatus;
use doorstep_core::model::{EventAction, NewEvent, Taxonomy};
use doorstep_core::sync::validate;
use doorstep_core::time::Timestamp;
use serde::Deserialize;

use crate::dashboard::error::DashboardError;
use crate::dashboard::session::Staff;
use crate::http::{AppState, blocking, now};
use crate::scope::{Role, Scope};
use crate::storage::Storage;

/// What a supervisor can do to a request from the dashboard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SupervisorAction {
    /// 转办: dispatch to a department.
    Dispatch(Code),
    /// 督办: put under supervision.
    Supervise,
    /// 销号: close.
    Close,
    /// 复核: review the request's conflict, optionally choosing the status from here on.
    Review(Option<RequestStatus>),
}

impl SupervisorAction {
    fn event(&self) -> EventAction {
        match self {
            SupervisorAction::Dispatch(department) => {
                EventAction::Dispatched { department: department.clone() }
            }
            SupervisorAction::Supervise => EventAction::Supervised,
            SupervisorAction::Close => EventAction::Closed,
            SupervisorAction::Review(outcome) => EventAction::Reviewed { outcome: *outcome },
        }
    }
}

/// May this role take supervisor actions? Supervisors and administrators (DESIGN §2).
pub fn may_supervise(role: Role) -> bool {
    matches!(role, Role::Supervisor | Role::Admin)
}

/// Records `action` on request `id` as member `scope.member`, after checking the role, the
/// scope and the lifecycle; returns the newest log position.
pub fn apply(
    storage: &dyn Storage,
    taxonomy: &Taxonomy,
    scope: &Scope,
    id: RequestId,
    action: &SupervisorAction,
    note: &str,
    at: Timestamp,
) -> Result<u64, DashboardError> {
    if !may_supervise(scope.role) {
        return Err(DashboardError::Forbidden(
            "只有负责人和管理员可以办理 / only supervisors and administrators act on requests".into(),
        ));
    }
    if let SupervisorAction::Dispatch(department) = action
        && taxonomy.department(department.as_str()).is_none_or(|d| d.retired)
    {
        return Err(DashboardError::BadRequest(format!("未知部门 / unknown department {department}")));
    }
    let mut document = storage.document(id.into())?.ok_or(DashboardError::NotFound)?;
    let facts = validate::facts(&document, id.into()).map_err(|e| DashboardError::Internal(e.message))?;
    if !scope.may_write(&facts, false) {
        return Err(DashboardError::NotFound);
    }
    let event = NewEvent { action: action.event(), note: note.trim().to_owned(), at };
    match doc::request::add_event(&mut document, id, EventId::new_random(), &event, scope.member) {
        Ok(_) => {}
        Err(e @ (CoreError::InvalidTransition { .. } | CoreError::NoSuchConflict(_))) => {
            return Err(DashboardError::NotAllowedNow(format!(
                "当前状态不允许此操作 / not allowed now: {e}"
            )));
        }
        Err(e @ CoreError::InvalidValue { .. }) => return Err(DashboardError::BadRequest(e.to_string())),
        Err(e) => return Err(DashboardError::Internal(e.to_string())),
    }
    document.commit();
    storage.write_server_documents(&mut [(id.into(), document)], at)?;
    tracing::info!(request = %id, member = %scope.member, action = ?action, "dashboard action recorded");
    Ok(storage.latest_seq()?)
}

/// The action form's fields.
#[derive(Deserialize)]
pub struct ActionForm {
    csrf: String,
    action: String,
    #[serde(default)]
    department: String,
    #[serde(default)]
    outcome: String,
    #[serde(default)]
    note: String,
}

/// `POST /dashboard/requests/{id}/action`.
pub async fn act(
    State(state): State<Arc<AppState>>,
    staff: Staff,
    Path(id): Path<String>,
    Form(form): Form<ActionForm>,
) -> Result<Response, DashboardError> {
    staff.check_csrf(&form.csrf)?;
    let id: RequestId = id.parse().map_err(|_| DashboardError::NotFound)?;
    let action = match form.action.as_str() {
        "dispatch" => SupervisorAction::Dispatch(
            Code::new(form.department.trim()).map_err(|e| DashboardError::BadRequest(e.to_string()))?,
        ),
        "supervise" => SupervisorAction::Supervise,
        "close" => SupervisorAction::Close,
        "review" => SupervisorAction::Review(match form.outcome.as_str() {
            "" => None,
            s => Some(
                RequestStatus::from_stored(s)
                    .ok_or_else(|| DashboardError::BadRequest(format!("unknown status {s:?}")))?,
            ),
        }),
        other => return Err(DashboardError::BadRequest(format!("unknown action {other:?}"))),
    };
    let storage = state.storage.clone();
    let scope = staff.scope.clone();
    let dashboard_state = state.clone();
    let seq = blocking(move || {
        let taxonomy =
            crate::dashboard::taxonomy::in_force(storage.as_ref(), &dashboard_state.dashboard.taxonomy)?;
        apply(storage.as_ref(), &taxonomy, &scope, id, &action, &form.note, now())
    })
    .await??;
    let _ = state.changes.send(crate::http::ChangeNotice::to_everyone(seq));
    Ok(Redirect::to(&format!("/dashboard/requests/{id}?done=1")).into_response())
}

/// Chooses one of the concurrent values kept in a household field (two phone numbers typed
/// offline), as member `scope.member`; returns the newest log position.
pub fn resolve_field(
    storage: &dyn Storage,
    scope: &Scope,
    id: HouseholdId,
    field: &HouseholdField,
    value: &str,
    at: Timestamp,
) -> Result<u64, DashboardError> {
    if !may_supervise(scope.role) {
        return Err(DashboardError::Forbidden(
            "只有负责人和管理员可以复核 / only supervisors and administrators review conflicts".into(),
        ));
    }
    let mut document = storage.document(id.into())?.ok_or(DashboardError::NotFound)?;
    let facts = validate::facts(&document, id.into()).map_err(|e| DashboardError::Internal(e.message))?;
    if !scope.may_write(&facts, false) {
        return Err(DashboardError::NotFound);
    }
    match doc::household::resolve_field(&mut document, id, field, value) {
        Ok(()) => {}
        Err(e @ CoreError::NoSuchConflict(_)) => {
            return Err(DashboardError::NotAllowedNow(format!("该字段已无冲突 / no conflict left: {e}")));
        }
        Err(e @ CoreError::InvalidValue { .. }) => return Err(DashboardError::BadRequest(e.to_string())),
        Err(e) => return Err(DashboardError::Internal(e.to_string())),
    }
    document.commit();
    storage.write_server_documents(&mut [(id.into(), document)], at)?;
    tracing::info!(household = %id, member = %scope.member, %field, "dashboard resolved a field conflict");
    Ok(storage.latest_seq()?)
}

/// The field-conflict form: the field (as JSON) and the chosen value.
#[derive(Deserialize)]
pub struct ResolveForm {
    csrf: String,
    field: String,
    value: String,
}

/// `POST /dashboard/households/{id}/resolve`.
pub async fn resolve(
    State(state): State<Arc<AppState>>,
    staff: Staff,
    Path(id): Path<String>,
    Form(form): Form<ResolveForm>,
) -> Result<Response, DashboardError> {
    staff.check_csrf(&form.csrf)?;
    let id: HouseholdId = id.parse().map_err(|_| DashboardError::NotFound)?;
    let field: HouseholdField =
        serde_json::from_str(&form.field).map_err(|_| DashboardError::BadRequest("unknown field".into()))?;
    let storage = state.storage.clone();
    let scope = staff.scope.clone();
    let seq =
        blocking(move || resolve_field(storage.as_ref(), &scope, id, &field, &form.value, now())).await??;
    let _ = state.changes.send(crate::http::ChangeNotice::to_everyone(seq));
    Ok(Redirect::to("/dashboard/conflicts?done=1").into_response())
}
