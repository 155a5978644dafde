//! The dashboard's read pages: overview, ledger, one request, conflicts, grids, one grid, one
//! household. Each computes its figures from the read model within the signed-in scope and
//! renders escaped HTML.

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use doorstep_core::conflict::HouseholdField;
use doorstep_core::ids::{GridId, HouseholdId, RequestId};
use doorstep_core::lifecycle::RequestStatus;
use doorstep_core::model::{EventAction, Request, ResidentTag, Sex, Taxonomy};
use serde::Deserialize;

use crate::dashboard::actions::may_supervise;
use crate::dashboard::error::DashboardError;
use crate::dashboard::figures::{self, LedgerFilter};
use crate::dashboard::freshness;
use crate::dashboard::html::{Lang, date, date_time, esc, page};
use crate::dashboard::session::{Staff, lang_cookie};
use crate::dashboard::{Directory, attachments, chart, view};
use crate::http::{AppState, blocking, now};
use crate::scope::Role;

fn percent(share: Option<f64>) -> String {
    share.map_or_else(|| "–".to_owned(), |s| format!("{:.1}%", s * 100.0))
}

fn card(out: &mut String, id: &str, value: &str, label: &str) {
    let _ = write!(
        out,
        "<div class=\"card\"><div class=\"v\" id=\"{id}\">{}</div><div class=\"k\">{}</div></div>",
        esc(value),
        esc(label)
    );
}

pub(crate) fn respond(staff: &Staff, title: &str, body: &str) -> Response {
    let mut response = page(staff.lang, title, Some(&staff.header()), body).into_response();
    let (name, value) = lang_cookie(staff.lang);
    response.headers_mut().append(name, value);
    response
}

/// `GET /dashboard/overview`.
pub async fn overview(State(state): State<Arc<AppState>>, staff: Staff) -> Result<Response, DashboardError> {
    let scope = staff.scope.clone();
    let lang = staff.lang;
    let body = view(&state, move |model, dir, _| {
        let o = figures::overview(model, &scope, &dir.grids, now());
        let mut b = format!("<h1>{}</h1><div class=\"cards\">", lang.t("总览", "Overview"));
        card(&mut b, "households", &o.households.to_string(), lang.t("住户", "Households"));
        card(&mut b, "visits-30d", &o.visits_30d.to_string(), lang.t("近30天走访", "Visits, last 30 days"));
        card(&mut b, "open", &o.open.to_string(), lang.t("未办结诉求", "Open requests"));
        card(&mut b, "overdue", &o.overdue.to_string(), lang.t("已逾期", "Overdue"));
        card(&mut b, "resolved", &o.resolved.to_string(), lang.t("已办结", "Resolved"));
        card(&mut b, "resolution-rate", &percent(o.resolution_rate), lang.t("办结率", "Resolution rate"));
        card(&mut b, "satisfaction", &percent(o.satisfaction_rate), lang.t("回访满意率", "Follow-up satisfaction"));
        let _ = write!(b, "</div><h2>{}</h2>{}", lang.t("近12周趋势", "Last 12 weeks"), chart::trend(lang, &o.weeks));
        let _ = write!(
            b,
            "<h2>{}</h2><div class=\"table\"><table id=\"coverage\"><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
            lang.t("各网格走访覆盖率（近30天）", "Visit coverage per grid (last 30 days)"),
            lang.t("网格", "Grid"),
            lang.t("住户", "Households"),
            lang.t("已走访", "Visited"),
            lang.t("覆盖率", "Coverage")
        );
        for g in &o.grids {
            let _ = write!(
                b,
                "<tr><td><a href=\"/dashboard/grids/{}\">{}</a></td><td>{}</td><td>{}</td><td>{:.1}%</td></tr>",
                g.grid,
                esc(&g.name),
                g.households,
                g.visited,
                g.share() * 100.0
            );
        }
        b.push_str("</table></div>");
        b
    })
    .await?;
    Ok(respond(&staff, staff.lang.t("总览", "Overview"), &body))
}

fn options(out: &mut String, selected: &str, items: impl IntoIterator<Item = (String, String)>) {
    for (value, label) in items {
        let sel = if value == selected { " selected" } else { "" };
        let _ = write!(out, "<option value=\"{}\"{sel}>{}</option>", esc(&value), esc(&label));
    }
}

fn status_cell(lang: Lang, r: &Request, now: doorstep_core::time::Timestamp) -> String {
    let mut s = format!("<span class=\"st\">{}</span>", lang.status(r.status()));
    if figures::is_overdue(r, now) {
        let _ = write!(s, " <span class=\"overdue\">{}</span>", lang.t("逾期", "overdue"));
    }
    if r.derived.supervised {
        let _ = write!(s, " <span class=\"tag\">{}</span>", lang.t("督办", "supervised"));
    }
    if !r.derived.conflicts.is_empty() {
        let _ = write!(s, " <span class=\"tag\">{}</span>", lang.t("待复核", "conflict"));
    }
    s
}

/// `GET /dashboard/ledger`: the problem ledger with filters.
pub async fn ledger(
    State(state): State<Arc<AppState>>,
    staff: Staff,
    Query(filter): Query<LedgerFilter>,
) -> Result<Response, DashboardError> {
    let scope = staff.scope.clone();
    let lang = staff.lang;
    let body = view(&state, move |model, dir, taxonomy| {
        let at = now();
        let rows = figures::ledger(model, &scope, &filter, at);
        let mut b = format!("<h1>{}</h1><form class=\"filters\" id=\"filters\" method=\"get\">", lang.t("问题台账", "Problem ledger"));
        let _ = write!(b, "<label>{}<select name=\"status\" id=\"f-status\"><option value=\"\">{}</option>", lang.t("状态", "Status"), lang.t("全部", "any"));
        options(&mut b, &filter.status, std::iter::once(("open".to_owned(), lang.t("未办结", "open").to_owned())).chain(RequestStatus::ALL.iter().map(|s| (s.as_str().to_owned(), lang.status(*s).to_owned()))));
        let _ = write!(b, "</select></label><label>{}<select name=\"category\" id=\"f-category\"><option value=\"\">{}</option>", lang.t("类别", "Category"), lang.t("全部", "any"));
        options(&mut b, &filter.category, taxonomy.categories.iter().map(|c| (c.code.to_string(), lang.category(taxonomy, c.code.as_str()))));
        let _ = write!(b, "</select></label><label>{}<select name=\"grid\" id=\"f-grid\"><option value=\"\">{}</option>", lang.t("网格", "Grid"), lang.t("全部", "any"));
        options(&mut b, &filter.grid, dir.grids.iter().filter(|g| scope.role == crate::scope::Role::Admin || scope.grids.contains(&g.id)).map(|g| (g.id.to_string(), g.name.clone())));
        let _ = write!(b, "</select></label><label>{}<select name=\"department\" id=\"f-department\"><option value=\"\">{}</option>", lang.t("部门", "Department"), lang.t("全部", "any"));
        options(&mut b, &filter.department, taxonomy.departments.iter().map(|d| (d.code.to_string(), lang.department(taxonomy, d.code.as_str()))));
        let _ = write!(
            b,
            "</select></label><label>{}<select name=\"overdue\" id=\"f-overdue\"><option value=\"\">{}</option><option value=\"1\"{}>{}</option></select></label>\
             <button class=\"primary\" id=\"apply\">{}</button></form>\
             <p><span id=\"count\">{}</span> {} · <a id=\"export-xlsx\" href=\"/dashboard/export/ledger.xlsx?{q}\">{}</a> · <a id=\"export-csv\" href=\"/dashboard/export/ledger.csv?{q}\">CSV</a></p>",
            lang.t("逾期", "Overdue"),
            lang.t("全部", "any"),
            if filter.overdue.is_empty() { "" } else { " selected" },
            lang.t("仅逾期", "overdue only"),
            lang.t("筛选", "Filter"),
            rows.len(),
            lang.t("条诉求", "requests"),
            lang.t("导出 Excel", "Export XLSX"),
            q = esc(&filter.query()),
        );
        let _ = write!(b, "<div class=\"table\"><table id=\"ledger\"><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
            lang.t("提出时间", "Raised"), lang.t("网格", "Grid"), lang.t("类别", "Category"), lang.t("诉求", "Request"), lang.t("状态", "Status"), lang.t("部门", "Department"), lang.t("期限", "Due"));
        for entry in rows.iter().take(500) {
            let r = &entry.request;
            let _ = write!(
                b,
                "<tr data-id=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td><a href=\"/dashboard/requests/{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                r.id,
                date(r.raised_at),
                esc(&dir.grid_name(r.grid)),
                esc(&lang.category(taxonomy, r.category.as_str())),
                r.id,
                esc(&r.description.chars().take(40).collect::<String>()),
                status_cell(lang, r, at),
                esc(&r.derived.department.as_ref().map(|d| lang.department(taxonomy, d.as_str())).unwrap_or_default()),
                date(r.due_at),
            );
        }
        b.push_str("</table></div>");
        if rows.len() > 500 {
            let _ = write!(b, "<p class=\"muted\">{}</p>", lang.t("仅显示前 500 条，请筛选或导出。", "Showing the first 500; filter or export for the rest."));
        }
        b
    })
    .await?;
    Ok(respond(&staff, staff.lang.t("问题台账", "Problem ledger"), &body))
}

fn event_label(lang: Lang, taxonomy: &Taxonomy, dir: &Directory, action: &EventAction) -> String {
    match action {
        EventAction::Raised => lang.t("提出", "raised").into(),
        EventAction::ResolvedOnSpot => lang.t("即时办理", "resolved on the spot").into(),
        EventAction::Accepted => lang.t("受理", "accepted").into(),
        EventAction::Discussed => lang.t("议事", "discussed").into(),
        EventAction::Dispatched { department } => {
            format!("{} → {}", lang.t("转办", "dispatched"), lang.department(taxonomy, department.as_str()))
        }
        EventAction::Assigned { assignee } => {
            format!("{} → {}", lang.t("指派", "assigned"), dir.member_name(*assignee))
        }
        EventAction::Claimed => lang.t("认领", "claimed").into(),
        EventAction::Progress => lang.t("进展", "progress").into(),
        EventAction::Supervised => lang.t("督办", "supervised").into(),
        EventAction::Resolved => lang.t("办结", "resolved").into(),
        EventAction::FollowedUp { satisfaction } => {
            format!("{}：{}", lang.t("回访", "followed up"), lang.satisfaction(*satisfaction))
        }
        EventAction::Reopened => lang.t("重新打开", "reopened").into(),
        EventAction::Closed => lang.t("销号", "closed").into(),
        EventAction::Cancelled => lang.t("撤销", "cancelled").into(),
        EventAction::Reviewed { outcome } => match outcome {
            Some(s) => format!("{} → {}", lang.t("复核", "reviewed"), lang.status(*s)),
            None => lang.t("复核", "reviewed").into(),
        },
        EventAction::Unknown { stored_kind } => stored_kind.clone(),
    }
}

fn timeline(b: &mut String, lang: Lang, taxonomy: &Taxonomy, dir: &Directory, r: &Request) {
    b.push_str("<ul class=\"timeline\" id=\"timeline\">");
    for e in &r.events {
        let skipped = if r.derived.not_applied.contains(&e.id) {
            lang.t("（未生效）", " (not applied)")
        } else {
            ""
        };
        let _ = write!(
            b,
            "<li data-kind=\"{}\"><b>{}</b>{skipped} · {} · {}{}",
            esc(e.action.kind_str()),
            esc(&event_label(lang, taxonomy, dir, &e.action)),
            date_time(e.at),
            esc(&dir.member_name(e.by)),
            if e.note.is_empty() { String::new() } else { format!("<br>{}", esc(&e.note)) }
        );
        if !e.attachments.is_empty() {
            b.push_str("<br>");
            attachments::gallery(b, lang, r.id.into(), &e.attachments);
        }
        b.push_str("</li>");
    }
    b.push_str("</ul>");
}

fn action_forms(b: &mut String, lang: Lang, taxonomy: &Taxonomy, staff_csrf: &str, r: &Request) {
    let head = |b: &mut String, action: &str| {
        let _ = write!(
            b,
            "<form method=\"post\" action=\"/dashboard/requests/{}/action\" id=\"form-{action}\"><input type=\"hidden\" name=\"csrf\" value=\"{}\"><input type=\"hidden\" name=\"action\" value=\"{action}\">",
            r.id,
            esc(staff_csrf)
        );
    };
    let _ = write!(b, "<h2>{}</h2><div class=\"actions\">", lang.t("办理", "Actions"));
    head(b, "dispatch");
    b.push_str("<select name=\"department\" id=\"department\">");
    let current = r.derived.department.as_ref().map(|d| d.as_str().to_owned()).unwrap_or_default();
    options(
        b,
        &current,
        taxonomy
            .active_departments()
            .map(|d| (d.code.to_string(), lang.department(taxonomy, d.code.as_str()))),
    );
    let _ = write!(
        b,
        "</select><input name=\"note\" placeholder=\"{}\"><button class=\"primary\" id=\"do-dispatch\">{}</button></form>",
        lang.t("备注", "note"),
        lang.t("转办", "Dispatch")
    );
    head(b, "supervise");
    let _ = write!(
        b,
        "<input name=\"note\" placeholder=\"{}\"><button id=\"do-supervise\">{}</button></form>",
        lang.t("备注", "note"),
        lang.t("督办", "Supervise")
    );
    head(b, "close");
    let _ = write!(
        b,
        "<input name=\"note\" placeholder=\"{}\"><button id=\"do-close\">{}</button></form></div>",
        lang.t("备注", "note"),
        lang.t("销号", "Close")
    );
    if !r.derived.conflicts.is_empty() {
        let _ = write!(b, "<h2>{}</h2><div class=\"actions\">", lang.t("冲突复核", "Review the conflict"));
        head(b, "review");
        let _ = write!(
            b,
            "<select name=\"outcome\" id=\"outcome\"><option value=\"\">{}</option>",
            lang.t("保持当前状态", "keep the derived status")
        );
        options(
            b,
            "",
            RequestStatus::ALL.iter().map(|s| (s.as_str().to_owned(), lang.status(*s).to_owned())),
        );
        let _ = write!(
            b,
            "</select><input name=\"note\" placeholder=\"{}\"><button class=\"primary\" id=\"do-review\">{}</button></form></div>",
            lang.t("备注", "note"),
            lang.t("确认复核", "Resolve")
        );
    }
}

/// `?done=1` after an action.
#[derive(Deserialize)]
pub struct Done {
    #[serde(default)]
    done: String,
}

/// `GET /dashboard/requests/{id}`: one request, its timeline and the supervisor's actions.
pub async fn request(
    State(state): State<Arc<AppState>>,
    staff: Staff,
    Path(id): Path<String>,
    Query(done): Query<Done>,
) -> Result<Response, DashboardError> {
    let id: RequestId = id.parse().map_err(|_| DashboardError::NotFound)?;
    let scope = staff.scope.clone();
    let lang = staff.lang;
    let csrf = staff.csrf.clone();
    let body = view(&state, move |model, dir, taxonomy| {
        let entry = model.request(&scope, id)?;
        let r = &entry.request;
        let mut b = format!("<h1>{}</h1>", esc(&lang.category(taxonomy, r.category.as_str())));
        if !done.done.is_empty() {
            let _ = write!(
                b,
                "<p class=\"notice\" id=\"done\">{}</p>",
                lang.t("已记录，设备下次同步时收到。", "Recorded; devices receive it on their next sync.")
            );
        }
        let _ = write!(
            b,
            "<p id=\"description\">{}</p><p><span id=\"status\" data-status=\"{}\">{}</span> · {} {} · {} {} · {} {}</p>",
            esc(&r.description),
            esc(r.status().as_str()),
            status_cell(lang, r, now()),
            lang.t("网格", "grid"),
            esc(&dir.grid_name(r.grid)),
            lang.t("紧急程度", "urgency"),
            lang.urgency(r.urgency),
            lang.t("期限", "due"),
            date_time(r.due_at),
        );
        if let Some(h) = r.household.and_then(|h| model.household(&scope, h)) {
            let _ = write!(
                b,
                "<p><a href=\"/dashboard/households/{}\">{} · {}</a></p>",
                h.household.id,
                esc(&h.household.display_name()),
                esc(&h.household.address.short_line())
            );
            if let Some(fix) = attachments::latest_location(&h.household) {
                let _ = write!(
                    b,
                    "<p id=\"household-location\">{} · {}</p>",
                    lang.t("最近一次走访", "Latest visit"),
                    attachments::location(lang, &fix)
                );
            }
        }
        timeline(&mut b, lang, taxonomy, dir, r);
        if may_supervise(scope.role) {
            action_forms(&mut b, lang, taxonomy, &csrf, r);
        }
        Some(b)
    })
    .await?
    .ok_or(DashboardError::NotFound)?;
    Ok(respond(&staff, staff.lang.t("诉求", "Request"), &body))
}

fn field_label(lang: Lang, h: &doorstep_core::model::Household, field: &HouseholdField) -> String {
    let resident = |id: &doorstep_core::ids::ResidentId| {
        h.residents.iter().find(|r| r.id == *id).map_or_else(String::new, |r| r.name.clone())
    };
    match field {
        HouseholdField::Community => lang.t("社区", "community").into(),
        HouseholdField::Grid => lang.t("网格", "grid").into(),
        HouseholdField::Building => lang.t("楼栋", "building").into(),
        HouseholdField::Unit => lang.t("单元", "unit").into(),
        HouseholdField::Room => lang.t("室", "room").into(),
        HouseholdField::Notes => lang.t("备注", "notes").into(),
        HouseholdField::ResidentName(r) => format!("{} · {}", resident(r), lang.t("姓名", "name")),
        HouseholdField::ResidentSex(r) => format!("{} · {}", resident(r), lang.t("性别", "sex")),
        HouseholdField::ResidentBirthYear(r) => {
            format!("{} · {}", resident(r), lang.t("出生年份", "birth year"))
        }
        HouseholdField::ResidentPhone(r) => format!("{} · {}", resident(r), lang.t("电话", "phone")),
    }
}

/// `GET /dashboard/conflicts`: request conflicts with both sides, and household fields holding
/// concurrent values.
pub async fn conflicts(State(state): State<Arc<AppState>>, staff: Staff) -> Result<Response, DashboardError> {
    let scope = staff.scope.clone();
    let lang = staff.lang;
    let csrf = staff.csrf.clone();
    let body = view(&state, move |model, dir, taxonomy| {
        let mut b = format!("<h1>{}</h1><h2>{}</h2><div class=\"table\"><table id=\"request-conflicts\"><tr><th>{}</th><th>{}</th><th>{}</th></tr>",
            lang.t("冲突复核", "Conflicts to review"), lang.t("诉求办理冲突", "Request conflicts"), lang.t("诉求", "Request"), lang.t("各方操作", "Both sides"), lang.t("当前状态", "Status"));
        let mut requests: Vec<_> = model.requests(&scope).filter(|r| !r.request.derived.conflicts.is_empty()).collect();
        requests.sort_by_key(|r| r.request.raised_at);
        for entry in requests {
            let r = &entry.request;
            for c in doorstep_core::doc::request::conflicts(r) {
                let sides: Vec<String> = c.events.iter().map(|e| format!("{} · {} · {}", esc(&event_label(lang, taxonomy, dir, &e.action)), esc(&dir.member_name(e.by)), date_time(e.at))).collect();
                let _ = write!(b, "<tr><td><a href=\"/dashboard/requests/{}\">{}</a></td><td>{}</td><td>{}</td></tr>", r.id, esc(&r.description.chars().take(30).collect::<String>()), sides.join("<br>"), lang.status(r.status()));
            }
        }
        let _ = write!(b, "</table></div><h2>{}</h2><div class=\"table\"><table id=\"field-conflicts\"><tr><th>{}</th><th>{}</th><th>{}</th></tr>",
            lang.t("住户信息冲突", "Household fields"), lang.t("住户", "Household"), lang.t("字段", "Field"), lang.t("并存的值", "Values kept"));
        let mut n = 0;
        for h in model.households(&scope).filter(|h| !h.conflicts.is_empty()) {
            for c in &h.conflicts {
                let field_json = serde_json::to_string(&c.field).unwrap_or_default();
                let values: Vec<String> = c
                    .values
                    .iter()
                    .map(|v| {
                        n += 1;
                        let shown = if v.is_empty() { lang.t("（清空）", "(cleared)").to_owned() } else { esc(v) };
                        if may_supervise(scope.role) {
                            format!(
                                "<form method=\"post\" action=\"/dashboard/households/{}/resolve\" class=\"inline\"><input type=\"hidden\" name=\"csrf\" value=\"{}\"><input type=\"hidden\" name=\"field\" value=\"{}\"><input type=\"hidden\" name=\"value\" value=\"{}\">{shown} <button id=\"resolve-{n}\">{}</button></form>",
                                h.household.id,
                                esc(&csrf),
                                esc(&field_json),
                                esc(v),
                                lang.t("选用", "Choose")
                            )
                        } else {
                            shown
                        }
                    })
                    .collect();
                let _ = write!(b, "<tr><td><a href=\"/dashboard/households/{}\">{}</a></td><td>{}</td><td>{}</td></tr>", h.household.id, esc(&h.household.display_name()), esc(&field_label(lang, &h.household, &c.field)), values.join(""));
            }
        }
        b.push_str("</table></div>");
        b
    })
    .await?;
    Ok(respond(&staff, staff.lang.t("冲突复核", "Conflicts"), &body))
}

/// `GET /dashboard/grids`: the grids in scope with their coverage, and whether households
/// shown as not visited may have been visited on a phone that has not synced yet.
pub async fn grids(State(state): State<Arc<AppState>>, staff: Staff) -> Result<Response, DashboardError> {
    let scope = staff.scope.clone();
    let lang = staff.lang;
    let storage = state.storage.clone();
    let devices = blocking(move || storage.devices()).await??;
    let body = view(&state, move |model, dir, _| {
        let at = now();
        let o = figures::overview(model, &scope, &dir.grids, at);
        let mut b = format!("<h1>{}</h1><div class=\"table\"><table id=\"grids\"><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
            lang.t("网格", "Grids"), lang.t("街道", "Street"), lang.t("社区", "Community"), lang.t("网格", "Grid"), lang.t("住户", "Households"), lang.t("近30天覆盖率", "Coverage, 30 days"),
            lang.t("未走访", "Not visited"), lang.t("其中可能已走访未同步", "Of which may be visited but not synced"), lang.t("设备同步", "Devices"));
        for g in &dir.grids {
            let Some(c) = o.grids.iter().find(|c| c.grid == g.id) else { continue };
            let f = freshness::grid_freshness(g.id, &dir.members, &devices);
            let not_visited = c.households - c.visited;
            let stale = if f.may_be_stale() { not_visited } else { 0 };
            let class = if stale > 0 { " class=\"overdue\"" } else { "" };
            let _ = write!(b, "<tr id=\"grid-{}\"><td>{}</td><td>{}</td><td><a href=\"/dashboard/grids/{}\">{}</a></td><td>{}</td><td>{:.1}%</td><td class=\"not-visited\">{not_visited}</td><td class=\"stale\"><span{class}>{stale}</span></td><td class=\"sync\">{}</td></tr>",
                g.id, esc(&g.street), esc(&g.community), g.id, esc(&g.name), c.households, c.share() * 100.0, esc(&freshness::grid_note(lang, &f, at)));
        }
        let _ = write!(b, "</table></div><p><a href=\"/dashboard/freshness\">{}</a> · <a href=\"/dashboard/duplicates\">{}</a></p>",
            lang.t("各设备同步情况", "Each device's last sync"), lang.t("疑似重复住户", "Likely duplicate households"));
        b
    })
    .await?;
    Ok(respond(&staff, staff.lang.t("网格", "Grids"), &body))
}

/// A grid page's filters.
#[derive(Deserialize)]
pub struct GridQuery {
    #[serde(default)]
    tag: String,
    days: Option<u32>,
}

/// `GET /dashboard/grids/{id}`: households with last visit and open requests.
pub async fn grid(
    State(state): State<Arc<AppState>>,
    staff: Staff,
    Path(id): Path<String>,
    Query(q): Query<GridQuery>,
) -> Result<Response, DashboardError> {
    let id: GridId = id.parse().map_err(|_| DashboardError::NotFound)?;
    let tag = match q.tag.as_str() {
        "" => None,
        t => Some(
            ResidentTag::from_stored(t)
                .ok_or_else(|| DashboardError::BadRequest(format!("unknown tag {t:?}")))?,
        ),
    };
    let days = q.days.unwrap_or(30).min(3650);
    // A grid worker or supervisor asking for another grid learns nothing of it, not even its
    // name (the access matrix in tests/access.rs).
    if matches!(staff.scope.role, Role::GridWorker | Role::Supervisor) && !staff.scope.grids.contains(&id) {
        return Err(DashboardError::NotFound);
    }
    let scope = staff.scope.clone();
    let lang = staff.lang;
    let storage = state.storage.clone();
    let devices = blocking(move || storage.devices()).await??;
    let body = view(&state, move |model, dir, _| {
        let rows = figures::grid_households(model, &scope, id, tag, days, now());
        let fresh = freshness::grid_freshness(id, &dir.members, &devices);
        let mut b = format!("<h1>{}</h1><form class=\"filters\" method=\"get\"><label>{}<select name=\"tag\" id=\"f-tag\"><option value=\"\">{}</option>", esc(&dir.grid_name(id)), lang.t("标签", "Tag"), lang.t("全部", "any"));
        options(&mut b, &q.tag, ResidentTag::ALL.iter().map(|t| (t.as_str().to_owned(), lang.tag(*t).to_owned())));
        let _ = write!(b, "</select></label><label>{}<input type=\"number\" name=\"days\" id=\"f-days\" min=\"1\" value=\"{days}\"></label><button class=\"primary\">{}</button></form>\
            <p><span id=\"count\">{}</span> {} · <span id=\"due\">{}</span> {} · <a href=\"/dashboard/export/visits.xlsx?grid={id}\">{}</a></p>",
            lang.t("未走访天数", "Not visited for (days)"), lang.t("筛选", "Filter"), rows.len(), lang.t("户", "households"),
            rows.iter().filter(|r| r.due_for_visit).count(), lang.t("户超期未走访", "not visited in that time"), lang.t("导出走访记录", "Export the visit log"));
        if fresh.may_be_stale() {
            let _ = write!(b, "<p class=\"notice\" id=\"freshness-note\">{} <a href=\"/dashboard/freshness\">{}</a></p>",
                lang.t("本网格有设备尚未同步完，标为“未走访”的住户可能已走访但尚未同步。", "A device of this grid has not finished syncing: households shown as not visited may have been visited but not yet synced."),
                esc(&freshness::grid_note(lang, &fresh, now())));
        }
        let _ = write!(b, "<div class=\"table\"><table id=\"households\"><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
            lang.t("住户", "Household"), lang.t("地址", "Address"), lang.t("标签", "Tags"), lang.t("最近走访", "Last visit"), lang.t("未办结诉求", "Open requests"));
        for row in &rows {
            let h = &row.entry.household;
            let tags: String = h.tags().iter().map(|t| format!("<span class=\"tag\">{}</span>", lang.tag(*t))).collect();
            let never = if fresh.may_be_stale() { lang.t("从未走访（可能未同步）", "never (may not be synced yet)") } else { lang.t("从未走访", "never") };
            let last = h.last_visit().map_or_else(|| never.to_owned(), |v| date(v.at));
            let class = if row.due_for_visit { " class=\"overdue\"" } else { "" };
            let _ = write!(b, "<tr><td><a href=\"/dashboard/households/{}\">{}</a></td><td>{}</td><td>{tags}</td><td{class}>{}</td><td>{}</td></tr>", h.id, esc(&h.display_name()), esc(&h.address.short_line()), esc(&last), row.open_requests);
        }
        b.push_str("</table></div>");
        b
    })
    .await?;
    Ok(respond(&staff, staff.lang.t("网格", "Grid"), &body))
}

/// `GET /dashboard/households/{id}`: residents and the timeline of visits and requests.
pub async fn household(
    State(state): State<Arc<AppState>>,
    staff: Staff,
    Path(id): Path<String>,
) -> Result<Response, DashboardError> {
    let id: HouseholdId = id.parse().map_err(|_| DashboardError::NotFound)?;
    let scope = staff.scope.clone();
    let lang = staff.lang;
    let csrf = staff.csrf.clone();
    let body = view(&state, move |model, dir, taxonomy| {
        let entry = model.household(&scope, id)?;
        let h = &entry.household;
        let mut b = format!("<h1>{} · {}</h1><p>{} · {}</p>", esc(&h.display_name()), esc(&h.address.short_line()), esc(&h.address.community), esc(&dir.grid_name(h.address.grid)));
        let _ = write!(b, "<h2>{}</h2><div class=\"table\"><table id=\"residents\"><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
            lang.t("居民", "Residents"), lang.t("姓名", "Name"), lang.t("性别", "Sex"), lang.t("出生年份", "Born"), lang.t("电话", "Phone"), lang.t("标签", "Tags"));
        for r in h.residents.iter().filter(|r| !r.removed) {
            let sex = match r.sex { Sex::Male => lang.t("男", "male"), Sex::Female => lang.t("女", "female"), Sex::Unknown => "–" };
            let tags: String = r.tags.iter().map(|t| format!("<span class=\"tag\">{}</span>", lang.tag(*t))).collect();
            let _ = write!(b, "<tr><td>{}</td><td>{sex}</td><td>{}</td><td>{}</td><td>{tags}</td></tr>", esc(&r.name), r.birth_year.map(|y| y.to_string()).unwrap_or_default(), esc(&r.phone));
        }
        b.push_str("</table></div>");
        // Visits and requests on one timeline, newest first.
        let mut items: Vec<(doorstep_core::time::Timestamp, String)> = h.visits.iter().map(|v| {
            let mut extra = String::new();
            if let Some(fix) = &v.location {
                extra.push_str("<br>");
                extra.push_str(&attachments::location(lang, fix));
            }
            if !v.attachments.is_empty() {
                extra.push_str("<br>");
                attachments::gallery(&mut extra, lang, id.into(), &v.attachments);
            }
            (v.at, format!("<li><b>{}</b> · {} · {}{}{extra}</li>", lang.visit_kind(v.kind), date_time(v.at), esc(&dir.member_name(v.by)), if v.notes.is_empty() { String::new() } else { format!("<br>{}", esc(&v.notes)) }))
        }).collect();
        let members: Vec<HouseholdId> = entry.members().collect();
        for r in model.requests(&scope).filter(|r| r.request.household.is_some_and(|h| members.contains(&h))) {
            let r = &r.request;
            items.push((r.raised_at, format!("<li><b>{}</b> · {} · <a href=\"/dashboard/requests/{}\">{}</a> · {}</li>", lang.t("诉求", "request"), date_time(r.raised_at), r.id, esc(&lang.category(taxonomy, r.category.as_str())), lang.status(r.status()))));
        }
        items.sort_by_key(|i| std::cmp::Reverse(i.0));
        let _ = write!(b, "<h2>{}</h2><ul class=\"timeline\" id=\"timeline\">", lang.t("走访与诉求", "Visits and requests"));
        for (_, item) in items {
            b.push_str(&item);
        }
        b.push_str("</ul>");
        if scope.role == crate::scope::Role::Admin {
            crate::dashboard::hand_over::form(&mut b, lang, &csrf, id, h.address.grid, &dir.grids);
        }
        Some(b)
    })
    .await?
    .ok_or(DashboardError::NotFound)?;
    Ok(respond(&staff, staff.lang.t("住户", "Household"), &body))
}
