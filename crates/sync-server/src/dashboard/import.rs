//! Household register upload (administrators): the file (CSV or XLSX) is checked row by row
//! and shown as a preview with every rejected row and its reason; only on confirmation are the
//! accepted households written, in one transaction, followed by the per-row report.

use std::fmt::Write;
use std::sync::Arc;

use axum::Form;
use axum::extract::{Multipart, State};
use axum::response::{IntoResponse, Response};
use doorstep_core::time::Timestamp;
use serde::Deserialize;

use crate::auth;
use crate::dashboard::error::DashboardError;
use crate::dashboard::html::{Lang, esc, page};
use crate::dashboard::session::Staff;
use crate::http::{AppState, blocking, now};
use crate::import::{self, ImportPlan, RejectedRow};
use crate::scope::Role;

/// A checked upload waiting for confirmation.
pub struct PendingImport {
    login: String,
    plan: ImportPlan,
    at: Timestamp,
}

/// Pending uploads expire after this long.
const PENDING_MINUTES: i64 = 30;

fn require_admin(staff: &Staff) -> Result<(), DashboardError> {
    if staff.scope.role == Role::Admin {
        Ok(())
    } else {
        Err(DashboardError::Forbidden("仅限县级管理员 / administrators only".into()))
    }
}

fn respond(staff: &Staff, body: &str) -> Response {
    page(staff.lang, staff.lang.t("导入住户", "Import households"), Some(&staff.header()), body)
        .into_response()
}

/// `GET /dashboard/import`.
pub async fn form(staff: Staff) -> Result<Response, DashboardError> {
    require_admin(&staff)?;
    let lang = staff.lang;
    let body = format!(
        "<h1>{}</h1><p class=\"muted\">{}</p>\
         <form method=\"post\" action=\"/dashboard/import\" enctype=\"multipart/form-data\" class=\"actions\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\"><input type=\"file\" name=\"file\" id=\"file\" accept=\".csv,.xlsx\" required>\
         <button class=\"primary\" id=\"upload\">{}</button></form>",
        lang.t("导入住户花名册", "Import the household register"),
        lang.t(
            "CSV 或 Excel（xlsx）文件，表头：社区,网格,楼栋,单元,室,姓名,性别,出生年份,电话,标签,备注（每位居民一行）。先预览，确认后一次性导入。",
            "A CSV or Excel (xlsx) file with the header community,grid,building,unit,room,name,sex,birth_year,phone,tags,notes (one row per resident). You see a preview first; confirming imports everything at once."
        ),
        esc(&staff.csrf),
        lang.t("上传并预览", "Upload and preview"),
    );
    Ok(respond(&staff, &body))
}

fn rejected_table(b: &mut String, lang: Lang, rejected: &[RejectedRow]) {
    if rejected.is_empty() {
        return;
    }
    let _ = write!(
        b,
        "<h2>{}</h2><div class=\"table\"><table id=\"rejected\"><tr><th>{}</th><th>{}</th></tr>",
        lang.t("被拒绝的行", "Rejected rows"),
        lang.t("行号", "Line"),
        lang.t("原因", "Reason")
    );
    for row in rejected {
        let _ = write!(b, "<tr><td>{}</td><td>{}</td></tr>", row.line, esc(&row.reason));
    }
    b.push_str("</table></div>");
}

/// `POST /dashboard/import` (multipart: `csrf`, `file`): checks the file and shows a preview.
pub async fn preview(
    State(state): State<Arc<AppState>>,
    staff: Staff,
    mut multipart: Multipart,
) -> Result<Response, DashboardError> {
    require_admin(&staff)?;
    let (mut csrf, mut file) = (String::new(), Vec::new());
    while let Some(field) =
        multipart.next_field().await.map_err(|e| DashboardError::BadRequest(e.body_text()))?
    {
        match field.name() {
            Some("csrf") => {
                csrf = field.text().await.map_err(|e| DashboardError::BadRequest(e.body_text()))?
            }
            Some("file") => {
                file = field.bytes().await.map_err(|e| DashboardError::BadRequest(e.body_text()))?.to_vec()
            }
            _ => {}
        }
    }
    staff.check_csrf(&csrf)?;
    let lang = staff.lang;
    let storage = state.storage.clone();
    let grids = blocking(move || storage.grids()).await??;
    let rows = import::read_rows(&file).map_err(DashboardError::BadRequest)?;
    let plan = import::plan(&grids, &rows);
    let mut b = format!(
        "<h1>{}</h1><p id=\"summary\">{}: <b id=\"preview-households\">{}</b> {} / <b id=\"preview-residents\">{}</b> {} · {}: <b id=\"preview-rejected\">{}</b></p>",
        lang.t("导入预览", "Import preview"),
        lang.t("将导入", "Would import"),
        plan.households(),
        lang.t("户", "households"),
        plan.residents(),
        lang.t("人", "residents"),
        lang.t("拒绝行数", "rejected rows"),
        plan.rejected.len(),
    );
    rejected_table(&mut b, lang, &plan.rejected);
    let _ = write!(
        b,
        "<h2>{}</h2><div class=\"table\"><table id=\"preview\"><tr><th>{}</th><th>{}</th><th>{}</th></tr>",
        lang.t("将创建的住户", "Households to create"),
        lang.t("网格", "Grid"),
        lang.t("地址", "Address"),
        lang.t("居民", "Residents")
    );
    for (grid, address, names) in plan.preview().iter().take(200) {
        let grid = grids.iter().find(|g| g.id == *grid).map_or_else(|| grid.to_string(), |g| g.name.clone());
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&grid),
            esc(address),
            esc(&names.join("、"))
        );
    }
    b.push_str("</table></div>");
    if plan.households() > 0 {
        let token = auth::new_secret().map_err(|e| DashboardError::Internal(e.to_string()))?;
        let _ = write!(
            b,
            "<form method=\"post\" action=\"/dashboard/import/confirm\" class=\"actions\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <input type=\"hidden\" name=\"token\" value=\"{}\"><button class=\"primary\" id=\"confirm\">{}</button></form>",
            esc(&staff.csrf),
            esc(&token),
            lang.t("确认导入", "Confirm the import"),
        );
        let at = now();
        let mut pending = state.dashboard.pending_imports.lock().unwrap_or_else(|p| p.into_inner());
        pending.retain(|_, p| at.millis() - p.at.millis() < PENDING_MINUTES * 60_000);
        pending.insert(token, PendingImport { login: staff.login.clone(), plan, at });
    }
    Ok(respond(&staff, &b))
}

/// The confirmation form.
#[derive(Deserialize)]
pub struct ConfirmForm {
    csrf: String,
    token: String,
}

/// `POST /dashboard/import/confirm`: writes the previewed households and shows the report.
pub async fn confirm(
    State(state): State<Arc<AppState>>,
    staff: Staff,
    Form(form): Form<ConfirmForm>,
) -> Result<Response, DashboardError> {
    require_admin(&staff)?;
    staff.check_csrf(&form.csrf)?;
    let pending = {
        let mut pending = state.dashboard.pending_imports.lock().unwrap_or_else(|p| p.into_inner());
        match pending.remove(&form.token) {
            Some(p) if p.login == staff.login => p,
            _ => {
                return Err(DashboardError::BadRequest(
                    "预览已过期，请重新上传 / the preview expired; upload the file again".into(),
                ));
            }
        }
    };
    let storage = state.storage.clone();
    let by = staff.scope.member;
    let at = now();
    let report = blocking(move || import::apply(storage.as_ref(), &pending.plan, by, at)).await??;
    if let Ok(seq) = state.storage.latest_seq() {
        let _ = state.changes.send(crate::http::ChangeNotice::to_everyone(seq));
    }
    let lang = staff.lang;
    let mut b = format!(
        "<h1>{}</h1><p class=\"notice\" id=\"report\">{}: <b id=\"imported-households\">{}</b> {} / <b id=\"imported-residents\">{}</b> {} · {}: {}</p>",
        lang.t("导入完成", "Import done"),
        lang.t("已导入", "Imported"),
        report.households,
        lang.t("户", "households"),
        report.residents,
        lang.t("人", "residents"),
        lang.t("拒绝行数", "rejected rows"),
        report.rejected.len()
    );
    rejected_table(&mut b, lang, &report.rejected);
    Ok(respond(&staff, &b))
}
