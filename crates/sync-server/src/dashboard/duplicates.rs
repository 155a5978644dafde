//! Duplicate households: the dashboard suggests households that are likely the same (same
//! normalised address, [`address_key`]), a supervisor marks two as the same household, and a
//! wrong mark can be undone. A mark is written into both household documents as the server's
//! change and reaches the phones like any other edit; nothing is deleted.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use doorstep_core::doc;
use doorstep_core::ids::{HouseholdId, LinkId};
use doorstep_core::model::same_household::{HouseholdGroups, SameAsMark, address_key};
use doorstep_core::sync::validate;
use doorstep_core::time::Timestamp;
use serde::Deserialize;

use crate::dashboard::actions::may_supervise;
use crate::dashboard::error::DashboardError;
use crate::dashboard::html::{Lang, date, esc};
use crate::dashboard::pages::respond;
use crate::dashboard::read_model::{HouseholdEntry, ReadModel};
use crate::dashboard::session::Staff;
use crate::dashboard::{Directory, view};
use crate::http::{AppState, blocking, now};
use crate::scope::Scope;
use crate::storage::Storage;

/// Groups of households in `scope` with the same normalised address that are not all marked
/// as one household yet, by address key; each group sorted by id.
pub fn suggestions<'a>(model: &'a ReadModel, scope: &'a Scope) -> Vec<Vec<&'a HouseholdEntry>> {
    let mut by_key: BTreeMap<(String, String), Vec<&HouseholdEntry>> = BTreeMap::new();
    for h in model.households_as_stored(scope) {
        let a = &h.household.address;
        by_key.entry((a.grid.to_string(), address_key(a))).or_default().push(h);
    }
    by_key
        .into_values()
        .filter_map(|mut group| {
            group.sort_by_key(|h| h.household.id);
            let groups = model.groups();
            let first = groups.canonical(group[0].household.id);
            let all_one = group.iter().all(|h| groups.canonical(h.household.id) == first);
            (group.len() > 1 && !all_one).then_some(group)
        })
        .collect()
}

/// Marks households `a` and `b` as the same (`same == true`) or undoes that mark, as member
/// `scope.member`: one mark written into both documents in one transaction. Returns the
/// newest log position.
pub fn mark(
    storage: &dyn Storage,
    scope: &Scope,
    a: HouseholdId,
    b: HouseholdId,
    same: bool,
    at: Timestamp,
) -> Result<u64, DashboardError> {
    if !may_supervise(scope.role) {
        return Err(DashboardError::Forbidden(
            "只有负责人和管理员可以合并住户 / only supervisors and administrators merge households".into(),
        ));
    }
    if a == b {
        return Err(DashboardError::BadRequest("同一户 / the same household twice".into()));
    }
    let mut docs = Vec::with_capacity(2);
    for id in [a, b] {
        let document = storage.document(id.into())?.ok_or(DashboardError::NotFound)?;
        let facts = validate::facts(&document, id.into()).map_err(|e| DashboardError::Internal(e.message))?;
        if !scope.may_write(&facts, false) {
            return Err(DashboardError::NotFound);
        }
        docs.push((id, document));
    }
    let marks: Vec<SameAsMark> = docs.iter().flat_map(|(_, d)| doc::same_household::marks(d)).collect();
    let current = HouseholdGroups::resolve(marks.iter().cloned()).current(a, b).is_some_and(|m| m.same);
    if current == same {
        return Err(DashboardError::NotAllowedNow(if same {
            "这两户已标记为同一户 / already marked as the same household".into()
        } else {
            "这两户未标记为同一户 / not marked as the same household".into()
        }));
    }
    let mark = SameAsMark::new(
        LinkId::new_random(),
        a,
        b,
        same,
        scope.member,
        at,
        HouseholdGroups::seen_for(&marks, a, b),
    );
    let mut writes = Vec::with_capacity(2);
    for (id, mut document) in docs {
        doc::same_household::write_mark(&mut document, id, &mark)
            .map_err(|e| DashboardError::Internal(e.to_string()))?;
        document.commit();
        writes.push((id.into(), document));
    }
    storage.write_server_documents(&mut writes, at)?;
    tracing::info!(%a, %b, same, member = %scope.member, "dashboard marked households");
    Ok(storage.latest_seq()?)
}

fn row(b: &mut String, lang: Lang, dir: &Directory, h: &HouseholdEntry) {
    let hh = &h.household;
    let _ = write!(
        b,
        "<td><a href=\"/dashboard/households/{}\">{}</a></td><td>{} · {}</td><td>{}</td><td>{} {}</td>",
        hh.id,
        esc(&hh.display_name()),
        esc(&hh.address.community),
        esc(&hh.address.short_line()),
        esc(&dir.grid_name(hh.address.grid)),
        hh.visits.len(),
        lang.t("次走访", "visits"),
    );
}

fn button(b: &mut String, csrf: &str, action: &str, a: HouseholdId, bb: HouseholdId, label: &str) {
    let _ = write!(
        b,
        "<form method=\"post\" action=\"/dashboard/duplicates/{action}\" class=\"inline\"><input type=\"hidden\" name=\"csrf\" value=\"{}\"><input type=\"hidden\" name=\"a\" value=\"{a}\"><input type=\"hidden\" name=\"b\" value=\"{bb}\"><button id=\"{action}-{a}-{bb}\">{label}</button></form>",
        esc(csrf)
    );
}

/// `GET /dashboard/duplicates`: likely duplicates, and households marked as the same.
pub async fn page(State(state): State<Arc<AppState>>, staff: Staff) -> Result<Response, DashboardError> {
    let scope = staff.scope.clone();
    let lang = staff.lang;
    let csrf = staff.csrf.clone();
    let body = view(&state, move |model, dir, _| {
        let act = may_supervise(scope.role);
        let mut b = format!(
            "<h1>{}</h1><p class=\"muted\">{}</p><h2>{}</h2><div class=\"table\"><table id=\"suggestions\">",
            lang.t("重复住户", "Duplicate households"),
            lang.t(
                "标记为同一户后，所有设备显示为一户，保留双方的走访记录和诉求，不删除任何数据，可以撤销。",
                "Once marked as the same, every device shows one household with both visit logs and all requests; nothing is deleted, and the mark can be undone."
            ),
            lang.t("疑似重复（地址相同）", "Likely duplicates (same address)"),
        );
        for group in suggestions(model, &scope) {
            let first = group[0].household.id;
            for (i, h) in group.iter().enumerate() {
                b.push_str("<tr>");
                row(&mut b, lang, dir, h);
                b.push_str("<td>");
                if i > 0 && act && model.groups().canonical(h.household.id) != model.groups().canonical(first) {
                    button(&mut b, &csrf, "merge", first, h.household.id, lang.t("标记为同一户", "Mark as the same"));
                }
                b.push_str("</td></tr>");
            }
        }
        let _ = write!(
            b,
            "</table></div><h2>{}</h2><div class=\"table\"><table id=\"merged\">",
            lang.t("已标记为同一户", "Marked as the same household")
        );
        for members in model.groups().groups().values() {
            for (i, a) in members.iter().enumerate() {
                for bb in &members[i + 1..] {
                    let Some(m) = model.groups().current(*a, *bb).filter(|m| m.same) else { continue };
                    let (Some(ha), Some(hb)) =
                        (model.household_as_stored(&scope, *a), model.household_as_stored(&scope, *bb))
                    else {
                        continue;
                    };
                    b.push_str("<tr>");
                    row(&mut b, lang, dir, ha);
                    row(&mut b, lang, dir, hb);
                    let _ = write!(b, "<td>{} · {}</td><td>", esc(&dir.member_name(m.by)), date(m.at));
                    if act {
                        button(&mut b, &csrf, "undo", *a, *bb, lang.t("撤销", "Undo"));
                    }
                    b.push_str("</td></tr>");
                }
            }
        }
        b.push_str("</table></div>");
        b
    })
    .await?;
    Ok(respond(&staff, staff.lang.t("重复住户", "Duplicates"), &body))
}

/// The merge and undo forms' fields.
#[derive(Deserialize)]
pub struct MarkForm {
    csrf: String,
    a: String,
    b: String,
}

/// `POST /dashboard/duplicates/{merge|undo}`.
pub async fn act(
    State(state): State<Arc<AppState>>,
    staff: Staff,
    Path(action): Path<String>,
    Form(form): Form<MarkForm>,
) -> Result<Response, DashboardError> {
    staff.check_csrf(&form.csrf)?;
    let same = match action.as_str() {
        "merge" => true,
        "undo" => false,
        _ => return Err(DashboardError::NotFound),
    };
    let bad = || DashboardError::BadRequest("无效住户 / invalid household".into());
    let a: HouseholdId = form.a.parse().map_err(|_| bad())?;
    let b: HouseholdId = form.b.parse().map_err(|_| bad())?;
    let storage = state.storage.clone();
    let scope = staff.scope.clone();
    let seq = blocking(move || mark(storage.as_ref(), &scope, a, b, same, now())).await??;
    let _ = state.changes.send(crate::http::ChangeNotice::to_everyone(seq));
    Ok(Redirect::to("/dashboard/duplicates?done=1").into_response())
}
