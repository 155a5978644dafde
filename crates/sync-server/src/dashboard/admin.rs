//! Administration (county administrators only): members and roles, grids, devices (enrol with
//! a single-use code, revoke), staff accounts, and the taxonomy's categories and departments.
//! Every change goes through the same [`crate::storage::Storage`] methods as the CLI.

use std::fmt::Write;
use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use doorstep_core::ids::{Code, DeviceId, GridId, MemberId};
use doorstep_core::model::Taxonomy;
use serde::Deserialize;

use crate::auth;
use crate::dashboard::error::DashboardError;
use crate::dashboard::html::{Lang, date, date_time, esc, page};
use crate::dashboard::session::Staff;
use crate::dashboard::taxonomy::{self, TaxonomyEdit, TaxonomyEditError};
use crate::http::{AppState, blocking, now};
use crate::scope::Role;
use crate::storage::accounts;
use crate::storage::{GridRow, MemberRow};

fn require_admin(staff: &Staff) -> Result<(), DashboardError> {
    if staff.scope.role == Role::Admin {
        Ok(())
    } else {
        Err(DashboardError::Forbidden("仅限县级管理员 / administrators only".into()))
    }
}

/// `GET /dashboard/admin`.
async fn page_view(
    state: &Arc<AppState>,
    staff: &Staff,
    notice: Option<String>,
) -> Result<Response, DashboardError> {
    require_admin(staff)?;
    let storage = state.storage.clone();
    let shipped = state.dashboard.taxonomy.clone();
    let (grids, members, devices, accounts, taxonomy, disabled_logins, disabled_members) =
        blocking(move || {
            Ok::<_, crate::storage::StorageError>((
                storage.grids()?,
                storage.members()?,
                storage.devices()?,
                storage.staff_accounts()?,
                taxonomy::in_force(storage.as_ref(), &shipped)?,
                accounts::disabled_logins(storage.as_ref())?,
                accounts::disabled_members(storage.as_ref())?,
            ))
        })
        .await??;
    let lang = staff.lang;
    let taxonomy = &taxonomy;
    let csrf = esc(&staff.csrf);
    let name_of =
        |id: MemberId| members.iter().find(|m| m.id == id).map_or_else(|| id.to_string(), |m| m.name.clone());
    let grid_of =
        |id: GridId| grids.iter().find(|g| g.id == id).map_or_else(|| id.to_string(), |g| g.name.clone());
    let mut b = format!("<h1>{}</h1>", lang.t("系统管理", "Administration"));
    if let Some(notice) = notice {
        let _ = write!(b, "<p class=\"notice\" id=\"notice\">{notice}</p>");
    }
    // Members.
    let _ = write!(
        b,
        "<h2>{}</h2><div class=\"table\"><table id=\"members\"><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th></th></tr>",
        lang.t("人员与角色", "Members and roles"),
        lang.t("姓名", "Name"),
        lang.t("角色", "Role"),
        lang.t("部门", "Department"),
        lang.t("网格", "Grids")
    );
    for m in &members {
        let grid_names: Vec<String> = m.grids.iter().map(|g| esc(&grid_of(*g))).collect();
        let actions = if disabled_members.contains(&m.id) {
            lang.t("已停用", "disabled").to_owned()
        } else {
            let mut roles = String::new();
            for role in Role::ALL {
                let selected = if role == m.role { " selected" } else { "" };
                let _ = write!(
                    roles,
                    "<option value=\"{}\"{selected}>{}</option>",
                    role.as_str(),
                    lang.role(role)
                );
            }
            let mut departments =
                format!("<option value=\"\">{}</option>", lang.t("（部门）", "(department)"));
            department_options(&mut departments, taxonomy, lang);
            format!(
                "<form method=\"post\" action=\"/dashboard/admin/enrol-code\" class=\"inline\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><input type=\"hidden\" name=\"member\" value=\"{id}\">{password}<button id=\"enrol-{id}\">{}</button></form>\
                 <form method=\"post\" action=\"/dashboard/admin/set-role\" class=\"inline\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><input type=\"hidden\" name=\"member\" value=\"{id}\"><select name=\"role\" id=\"role-{id}\">{roles}</select><select name=\"department\">{departments}</select><button id=\"set-role-{id}\">{}</button></form>\
                 <form method=\"post\" action=\"/dashboard/admin/disable-member\" class=\"inline\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><input type=\"hidden\" name=\"member\" value=\"{id}\"><button id=\"disable-member-{id}\">{}</button></form>",
                lang.t("生成设备注册码", "Enrolment code"),
                lang.t("修改角色", "Change role"),
                lang.t("停用人员（吊销设备）", "Disable (revoke devices)"),
                id = m.id,
                // A code for a staff role acts with that role's reach: the administrator confirms
                // it with their own password.
                password = if staff_role(m.role) {
                    format!(
                        "<input type=\"password\" name=\"password\" id=\"password-{}\" autocomplete=\"current-password\" placeholder=\"{}\" required>",
                        m.id,
                        lang.t("您的密码", "your password")
                    )
                } else {
                    String::new()
                },
            )
        };
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{actions}</td></tr>",
            esc(&m.name),
            lang.role(m.role),
            esc(&m.department.as_deref().map(|d| lang.department(taxonomy, d)).unwrap_or_default()),
            grid_names.join("、"),
        );
    }
    let _ = write!(
        b,
        "</table></div><div class=\"actions\"><form method=\"post\" action=\"/dashboard/admin/add-member\" id=\"add-member\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><input name=\"name\" placeholder=\"{}\" required><select name=\"role\">",
        lang.t("姓名", "name")
    );
    for role in Role::ALL {
        let _ = write!(b, "<option value=\"{}\">{}</option>", role.as_str(), lang.role(role));
    }
    let _ = write!(
        b,
        "</select><select name=\"department\"><option value=\"\">{}</option>",
        lang.t("（部门）", "(department)")
    );
    department_options(&mut b, taxonomy, lang);
    let _ = write!(
        b,
        "</select><select name=\"grid\"><option value=\"\">{}</option>",
        lang.t("（网格）", "(grid)")
    );
    for g in &grids {
        let _ = write!(b, "<option value=\"{}\">{}</option>", g.id, esc(&g.name));
    }
    let _ =
        write!(b, "</select><button class=\"primary\">{}</button></form>", lang.t("添加人员", "Add member"));
    let _ = write!(
        b,
        "<form method=\"post\" action=\"/dashboard/admin/add-grid\" id=\"add-grid\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><input name=\"name\" placeholder=\"{}\" required><input name=\"community\" placeholder=\"{}\" required><input name=\"street\" placeholder=\"{}\"><button class=\"primary\">{}</button></form></div>",
        lang.t("网格名称", "grid name"),
        lang.t("社区", "community"),
        lang.t("街道", "street"),
        lang.t("添加网格", "Add grid")
    );
    // Assign or take a grid (a handover: the old worker's phones upload, then purge).
    let _ = write!(
        b,
        "<div class=\"actions\"><form method=\"post\" action=\"/dashboard/admin/assign\" id=\"assign\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><select name=\"member\" id=\"assign-member\">"
    );
    for m in &members {
        let _ = write!(b, "<option value=\"{}\">{} · {}</option>", m.id, esc(&m.name), lang.role(m.role));
    }
    b.push_str("</select><select name=\"grid\" id=\"assign-grid\">");
    for g in &grids {
        let _ = write!(b, "<option value=\"{}\">{}</option>", g.id, esc(&g.name));
    }
    let _ = write!(
        b,
        "</select><button name=\"assigned\" value=\"1\" id=\"do-assign\">{}</button><button name=\"assigned\" value=\"0\" id=\"do-unassign\">{}</button></form></div>",
        lang.t("分配网格", "Assign grid"),
        lang.t("移除网格", "Take grid away")
    );
    hand_over_form(&mut b, lang, &csrf, &members, &grids);
    // Grids.
    let _ = write!(
        b,
        "<h2>{}</h2><div class=\"table\"><table id=\"grid-list\"><tr><th>{}</th><th>{}</th><th>{}</th></tr>",
        lang.t("网格", "Grids"),
        lang.t("街道", "Street"),
        lang.t("社区", "Community"),
        lang.t("网格", "Grid")
    );
    for g in &grids {
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&g.street),
            esc(&g.community),
            esc(&g.name)
        );
    }
    // Devices.
    let _ = write!(
        b,
        "</table></div><h2>{}</h2><div class=\"table\"><table id=\"devices\"><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th></th></tr>",
        lang.t("设备", "Devices"),
        lang.t("设备", "Device"),
        lang.t("人员", "Member"),
        lang.t("注册时间", "Enrolled"),
        lang.t("最近同步", "Last sync")
    );
    for d in &devices {
        let action = if d.revoked_at.is_some() {
            lang.t("已吊销", "revoked").to_owned()
        } else {
            format!(
                "<form method=\"post\" action=\"/dashboard/admin/revoke\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><input type=\"hidden\" name=\"device\" value=\"{id}\"><button id=\"revoke-{id}\">{}</button></form>",
                lang.t("吊销", "Revoke"),
                id = d.id,
            )
        };
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{action}</td></tr>",
            esc(&d.name),
            esc(&name_of(d.member_id)),
            date(d.enrolled_at),
            d.last_seen_at.map(date_time).unwrap_or_default()
        );
    }
    // Staff accounts.
    let _ = write!(
        b,
        "</table></div><h2>{}</h2><p class=\"muted\">{}</p><div class=\"table\"><table id=\"accounts\"><tr><th>{}</th><th>{}</th><th>{}</th><th></th></tr>",
        lang.t("工作台账号", "Dashboard accounts"),
        lang.t(
            "用命令创建：doorstep-server account add --member <id> --login <账号>",
            "Create with: doorstep-server account add --member <id> --login <login>"
        ),
        lang.t("账号", "Login"),
        lang.t("人员", "Member"),
        lang.t("锁定至", "Locked until")
    );
    for a in &accounts {
        let login = esc(&a.login);
        let form = |op: &str, label: &str, extra: &str| {
            format!(
                "<form method=\"post\" action=\"/dashboard/admin/{op}\" class=\"inline\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><input type=\"hidden\" name=\"login\" value=\"{login}\">{extra}<button id=\"{op}-{login}\">{label}</button></form>"
            )
        };
        let locked = a.locked_until.filter(|t| *t > now());
        let actions = if disabled_logins.contains(&a.login) {
            format!(
                "{} {}",
                lang.t("已停用", "disabled"),
                form("enable-account", lang.t("启用", "Enable"), "")
            )
        } else {
            let unlock = if locked.is_some() {
                form("unlock-account", lang.t("解除锁定", "Unlock"), "")
            } else {
                String::new()
            };
            let password = format!(
                "<input name=\"password\" type=\"password\" autocomplete=\"new-password\" minlength=\"8\" placeholder=\"{}\" required>",
                lang.t("新密码", "new password")
            );
            format!(
                "{unlock}{}{}",
                form("reset-password", lang.t("重置密码", "Reset password"), &password),
                form("disable-account", lang.t("停用", "Disable"), ""),
            )
        };
        let _ = write!(
            b,
            "<tr><td>{login}</td><td>{}</td><td>{}</td><td>{actions}</td></tr>",
            esc(&name_of(a.member)),
            locked.map(date_time).unwrap_or_default()
        );
    }
    b.push_str("</table></div>");
    taxonomy_section(&mut b, lang, taxonomy, &csrf);
    Ok(page(lang, lang.t("系统管理", "Administration"), Some(&staff.header()), &b).into_response())
}

/// The hand-over form: a grid from the worker who holds it to another, in one operation.
fn hand_over_form(b: &mut String, lang: Lang, csrf: &str, members: &[MemberRow], grids: &[GridRow]) {
    let _ = write!(
        b,
        "<h3>{}</h3><div class=\"actions\"><form method=\"post\" action=\"/dashboard/admin/hand-over\" id=\"hand-over\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><select name=\"grid\" id=\"hand-over-grid\">",
        lang.t("网格交接", "Hand a grid over")
    );
    for g in grids {
        let _ = write!(b, "<option value=\"{}\">{}</option>", g.id, esc(&g.name));
    }
    let _ =
        write!(b, "</select><label>{}<select name=\"member\" id=\"hand-over-from\">", lang.t("从", "from"));
    for m in members {
        let _ = write!(b, "<option value=\"{}\">{} · {}</option>", m.id, esc(&m.name), lang.role(m.role));
    }
    let _ =
        write!(b, "</select></label><label>{}<select name=\"to\" id=\"hand-over-to\">", lang.t("交给", "to"));
    for m in members {
        let _ = write!(b, "<option value=\"{}\">{} · {}</option>", m.id, esc(&m.name), lang.role(m.role));
    }
    let _ = write!(
        b,
        "</select></label><button class=\"primary\" id=\"do-hand-over\">{}</button></form></div>",
        lang.t("交接", "Hand over")
    );
}

/// One `<option>` per department still in use, named in the page's language.
fn department_options(b: &mut String, taxonomy: &Taxonomy, lang: Lang) {
    for d in taxonomy.active_departments() {
        let _ = write!(
            b,
            "<option value=\"{}\">{}</option>",
            esc(d.code.as_str()),
            esc(&lang.department(taxonomy, d.code.as_str()))
        );
    }
}

/// The rename form of one category or department: its code and both names, editable.
fn rename_form(b: &mut String, lang: Lang, csrf: &str, op: &str, code: &str, name_zh: &str, name_en: &str) {
    let _ = write!(
        b,
        "<form method=\"post\" action=\"/dashboard/admin/taxonomy\" class=\"inline\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><input type=\"hidden\" name=\"op\" value=\"{op}\"><input type=\"hidden\" name=\"code\" value=\"{code}\"><input name=\"name_zh\" value=\"{zh}\" aria-label=\"{lzh}\" required><input name=\"name_en\" value=\"{en}\" aria-label=\"{len}\" required><button id=\"{op}-{code}\">{save}</button></form>",
        code = esc(code),
        zh = esc(name_zh),
        en = esc(name_en),
        lzh = lang.t("中文名称", "Chinese name"),
        len = lang.t("英文名称", "English name"),
        save = lang.t("改名", "Rename"),
    );
}

/// The retire (or reinstate) button of one category or department.
fn retire_form(b: &mut String, lang: Lang, csrf: &str, op: &str, code: &str, retired: bool) {
    let (value, label) =
        if retired { ("0", lang.t("恢复", "Reinstate")) } else { ("1", lang.t("停用", "Retire")) };
    let _ = write!(
        b,
        "<form method=\"post\" action=\"/dashboard/admin/taxonomy\" class=\"inline\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><input type=\"hidden\" name=\"op\" value=\"{op}\"><input type=\"hidden\" name=\"code\" value=\"{code}\"><button name=\"retired\" value=\"{value}\" id=\"{op}-{code}\">{label}</button></form>",
        code = esc(code),
    );
}

/// Categories and departments, each renamable and retirable, and the forms that add them.
fn taxonomy_section(b: &mut String, lang: Lang, taxonomy: &Taxonomy, csrf: &str) {
    let retired_mark = |retired: bool| if retired { lang.t("已停用", "retired") } else { "" };
    let _ = write!(
        b,
        "<h2>{}</h2><p class=\"muted\" id=\"taxonomy-version\">{} {}</p><div class=\"table\"><table id=\"categories\"><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th></th></tr>",
        lang.t("诉求类别与承办部门", "Categories and departments"),
        lang.t("版本", "Version"),
        taxonomy.version,
        lang.t("代码", "Code"),
        lang.t("类别（中文 / 英文）", "Category (Chinese / English)"),
        lang.t("默认部门", "Default department"),
        lang.t("办理时限（小时）", "Due (hours)"),
        lang.t("状态", "Status"),
    );
    for c in &taxonomy.categories {
        let _ =
            write!(b, "<tr id=\"category-{}\"><td>{}</td><td>", esc(c.code.as_str()), esc(c.code.as_str()));
        rename_form(b, lang, csrf, "rename-category", c.code.as_str(), &c.name_zh, &c.name_en);
        let _ = write!(
            b,
            "</td><td>{}</td><td>{}</td><td>{}</td><td>",
            esc(&lang.department(taxonomy, c.department.as_str())),
            c.due_hours,
            retired_mark(c.retired),
        );
        retire_form(b, lang, csrf, "retire-category", c.code.as_str(), c.retired);
        b.push_str("</td></tr>");
    }
    let _ = write!(
        b,
        "</table></div><div class=\"actions\"><form method=\"post\" action=\"/dashboard/admin/taxonomy\" id=\"add-category\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><input type=\"hidden\" name=\"op\" value=\"add-category\"><input name=\"code\" placeholder=\"{}\" pattern=\"[a-z0-9_]{{1,48}}\" required><input name=\"name_zh\" placeholder=\"{}\" required><input name=\"name_en\" placeholder=\"{}\" required><select name=\"department\">",
        lang.t("代码（小写字母、数字、下划线）", "code (a-z, 0-9, _)"),
        lang.t("中文名称", "Chinese name"),
        lang.t("英文名称", "English name"),
    );
    department_options(b, taxonomy, lang);
    let _ = write!(
        b,
        "</select><input name=\"due_hours\" type=\"number\" min=\"1\" max=\"8760\" value=\"72\" aria-label=\"{}\"><button class=\"primary\">{}</button></form></div>",
        lang.t("办理时限（小时）", "Due (hours)"),
        lang.t("添加类别", "Add category"),
    );
    let _ = write!(
        b,
        "<div class=\"table\"><table id=\"departments\"><tr><th>{}</th><th>{}</th><th>{}</th><th></th></tr>",
        lang.t("代码", "Code"),
        lang.t("部门（中文 / 英文）", "Department (Chinese / English)"),
        lang.t("状态", "Status"),
    );
    for d in &taxonomy.departments {
        let _ =
            write!(b, "<tr id=\"department-{}\"><td>{}</td><td>", esc(d.code.as_str()), esc(d.code.as_str()));
        rename_form(b, lang, csrf, "rename-department", d.code.as_str(), &d.name_zh, &d.name_en);
        let _ = write!(b, "</td><td>{}</td><td>", retired_mark(d.retired));
        retire_form(b, lang, csrf, "retire-department", d.code.as_str(), d.retired);
        b.push_str("</td></tr>");
    }
    let _ = write!(
        b,
        "</table></div><div class=\"actions\"><form method=\"post\" action=\"/dashboard/admin/taxonomy\" id=\"add-department\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><input type=\"hidden\" name=\"op\" value=\"add-department\"><input name=\"code\" placeholder=\"{}\" pattern=\"[a-z0-9_]{{1,48}}\" required><input name=\"name_zh\" placeholder=\"{}\" required><input name=\"name_en\" placeholder=\"{}\" required><button class=\"primary\">{}</button></form></div>",
        lang.t("代码（小写字母、数字、下划线）", "code (a-z, 0-9, _)"),
        lang.t("中文名称", "Chinese name"),
        lang.t("英文名称", "English name"),
        lang.t("添加部门", "Add department"),
    );
}

/// The administrator's edit the taxonomy form describes.
fn taxonomy_edit(form: &AdminForm) -> Result<TaxonomyEdit, DashboardError> {
    let code = form.code.clone();
    let (name_zh, name_en) = (form.name_zh.clone(), form.name_en.clone());
    let retired = match form.retired.as_str() {
        "1" => true,
        "0" => false,
        _ if form.op.starts_with("retire-") => return Err(bad("retired")),
        _ => false,
    };
    Ok(match form.op.as_str() {
        "add-category" => TaxonomyEdit::AddCategory {
            code,
            name_zh,
            name_en,
            department: form.department.clone(),
            due_hours: form.due_hours.trim().parse().map_err(|_| bad("due hours"))?,
        },
        "add-department" => TaxonomyEdit::AddDepartment { code, name_zh, name_en },
        "rename-category" => TaxonomyEdit::RenameCategory { code, name_zh, name_en },
        "rename-department" => TaxonomyEdit::RenameDepartment { code, name_zh, name_en },
        "retire-category" => TaxonomyEdit::RetireCategory { code, retired },
        "retire-department" => TaxonomyEdit::RetireDepartment { code, retired },
        _ => return Err(bad("taxonomy edit")),
    })
}

/// Why an edit was refused, for the administrator (both languages).
fn refused(e: &TaxonomyEditError) -> DashboardError {
    let zh = match e {
        TaxonomyEditError::InvalidCode(_) => "代码只能由小写字母、数字和下划线组成",
        TaxonomyEditError::InvalidName => "名称不能为空且不超过 64 个字",
        TaxonomyEditError::InvalidDueHours => "办理时限须为 1 至 8760 小时",
        TaxonomyEditError::Exists(_) => "代码已存在（已停用的可恢复）",
        TaxonomyEditError::Unknown(_) => "没有这个代码",
        TaxonomyEditError::RetiredDepartment(_) => "该部门已停用",
        TaxonomyEditError::DepartmentInUse(_) => "仍有类别默认由该部门承办，请先停用或调整这些类别",
        TaxonomyEditError::VersionExhausted => "版本号已用尽",
    };
    DashboardError::BadRequest(format!("{zh} / {e}"))
}

/// `GET /dashboard/admin`.
pub async fn show(State(state): State<Arc<AppState>>, staff: Staff) -> Result<Response, DashboardError> {
    page_view(&state, &staff, None).await
}

/// The fields of the administration forms (each form sends some of them).
#[derive(Deserialize)]
pub struct AdminForm {
    csrf: String,
    #[serde(default)]
    member: String,
    #[serde(default)]
    device: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    department: String,
    #[serde(default)]
    grid: String,
    #[serde(default)]
    community: String,
    #[serde(default)]
    street: String,
    #[serde(default)]
    assigned: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    op: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    name_zh: String,
    #[serde(default)]
    name_en: String,
    #[serde(default)]
    due_hours: String,
    #[serde(default)]
    retired: String,
    #[serde(default)]
    login: String,
    /// The administrator's own password (to create a code for a staff role), or an account's
    /// new password (reset), as the form says.
    #[serde(default)]
    password: String,
}

/// Roles whose enrolment codes need the administrator's password: supervisors and
/// administrators, whose devices reach a whole county or many grids.
fn staff_role(role: Role) -> bool {
    matches!(role, Role::Supervisor | Role::Admin)
}

/// Checks the signed-in administrator's own password again (for codes of staff roles), with the
/// same argon2 work as a sign-in; a wrong or missing one is refused with 403.
async fn confirm_password(
    state: &Arc<AppState>,
    staff: &Staff,
    password: &str,
) -> Result<(), DashboardError> {
    let refused = || {
        DashboardError::Forbidden(
            "为主管或管理员生成注册码须再次输入您的密码 / a code for a supervisor or administrator needs your password again"
                .to_owned(),
        )
    };
    if password.is_empty() {
        return Err(refused());
    }
    let storage = state.storage.clone();
    let login = staff.login.clone();
    let account = blocking(move || storage.staff_account(&login)).await??.ok_or_else(refused)?;
    let password = password.to_owned();
    if blocking(move || auth::verify_password(&password, &account.password_hash)).await? {
        Ok(())
    } else {
        Err(refused())
    }
}

fn bad(what: &str) -> DashboardError {
    DashboardError::BadRequest(format!("无效输入 / invalid {what}"))
}

/// `POST /dashboard/admin/{enrol-code|revoke|add-member|add-grid|assign|hand-over|taxonomy|
/// disable-account|enable-account|unlock-account|reset-password|set-role|disable-member}`.
pub async fn act(
    State(state): State<Arc<AppState>>,
    staff: Staff,
    Path(action): Path<String>,
    Form(form): Form<AdminForm>,
) -> Result<Response, DashboardError> {
    require_admin(&staff)?;
    staff.check_csrf(&form.csrf)?;
    let storage = state.storage.clone();
    let at = now();
    let lang = staff.lang;
    let notice = match action.as_str() {
        "enrol-code" => {
            let member: MemberId = form.member.parse().map_err(|_| bad("member"))?;
            let role = {
                let storage = storage.clone();
                blocking(move || storage.members()).await??
            }
            .into_iter()
            .find(|m| m.id == member)
            .map(|m| m.role)
            .ok_or(DashboardError::NotFound)?;
            if staff_role(role) {
                confirm_password(&state, &staff, &form.password).await?;
            }
            let code = auth::new_enrolment_code().map_err(|e| DashboardError::Internal(e.to_string()))?;
            let hash = auth::hash_secret(&auth::normalize_code(&code));
            let created =
                blocking(move || storage.create_enrolment_code(member, &hash, at, at.plus_hours(24)))
                    .await??;
            if !created {
                return Err(DashboardError::NotFound);
            }
            format!(
                "{} <b id=\"code\">{}</b>",
                lang.t(
                    "设备注册码（仅显示一次，24 小时内有效）：",
                    "Enrolment code (shown once, valid 24 h):"
                ),
                esc(&code)
            )
        }
        "revoke" => {
            let device: DeviceId = form.device.parse().map_err(|_| bad("device"))?;
            blocking(move || storage.revoke_device(device, at)).await??;
            let _ = state.revoked.send(device);
            lang.t("设备已吊销，立即生效。", "Device revoked, effective at once.").to_owned()
        }
        "disable-account" | "enable-account" => {
            let disable = action == "disable-account";
            if disable && form.login == staff.login {
                return Err(DashboardError::BadRequest(
                    "不能停用自己的账号 / you cannot disable your own account".into(),
                ));
            }
            let login = form.login.clone();
            let changed =
                blocking(move || accounts::set_account_disabled(storage.as_ref(), &login, disable, at))
                    .await??;
            tracing::info!(login = %form.login, disable, changed, "dashboard account state changed on the dashboard");
            match (changed, disable) {
                (false, _) => lang.t("没有变化。", "Nothing changed.").to_owned(),
                (true, true) => lang
                    .t("账号已停用，其登录已立即失效。", "Account disabled; its sessions ended at once.")
                    .to_owned(),
                (true, false) => lang.t("账号已启用。", "Account enabled.").to_owned(),
            }
        }
        "unlock-account" => {
            let login = form.login.clone();
            blocking(move || accounts::unlock_account(storage.as_ref(), &login, at)).await??;
            lang.t("已解除锁定。", "Account unlocked.").to_owned()
        }
        "reset-password" => {
            if let Err(why) = accounts::check_password_policy(&form.login, &form.password) {
                return Err(DashboardError::BadRequest(why));
            }
            let hash = state
                .abuse
                .passwords
                .hash(form.password.clone())
                .await
                .map_err(|e| DashboardError::NotAllowedNow(format!("请稍后再试 / {e}")))?
                .map_err(|e| DashboardError::Internal(e.to_string()))?;
            let login = form.login.clone();
            if !blocking(move || accounts::set_password(storage.as_ref(), &login, &hash, None, at)).await?? {
                return Err(DashboardError::NotFound);
            }
            tracing::info!(login = %form.login, "dashboard password reset by an administrator");
            lang.t(
                "密码已重置，该账号的登录已全部退出。",
                "Password reset; every session of the account ended.",
            )
            .to_owned()
        }
        "set-role" => {
            let member: MemberId = form.member.parse().map_err(|_| bad("member"))?;
            let role: Role = form.role.parse().map_err(|_| bad("role"))?;
            let department = match (role, form.department.as_str()) {
                (Role::DepartmentStaff, "") => return Err(bad("department")),
                (Role::DepartmentStaff, d) => Some(Code::new(d).map_err(|_| bad("department"))?),
                _ => None,
            };
            let changed = blocking(move || {
                accounts::set_member_role(storage.as_ref(), member, role, department.as_ref(), at)
            })
            .await??;
            if !changed {
                return Err(DashboardError::NotFound);
            }
            tracing::info!(%member, role = role.as_str(), "member role changed on the dashboard");
            lang.t(
                "角色已修改，设备和工作台立即按新角色。",
                "Role changed; devices and the dashboard follow at once.",
            )
            .to_owned()
        }
        "disable-member" => {
            let member: MemberId = form.member.parse().map_err(|_| bad("member"))?;
            if member == staff.scope.member {
                return Err(DashboardError::BadRequest("不能停用自己 / you cannot disable yourself".into()));
            }
            let revoked = blocking(move || accounts::disable_member(storage.as_ref(), member, at))
                .await??
                .ok_or(DashboardError::NotFound)?;
            for device in &revoked {
                let _ = state.revoked.send(*device);
            }
            tracing::info!(%member, devices = revoked.len(), "member disabled on the dashboard");
            match lang {
                Lang::Zh => format!("人员已停用：吊销 {} 台设备，工作台账号已停用。", revoked.len()),
                Lang::En => format!(
                    "Member disabled: {} device(s) revoked, dashboard accounts disabled.",
                    revoked.len()
                ),
            }
        }
        "add-member" => {
            let name = form.name.trim().to_owned();
            let role: Role = form.role.parse().map_err(|_| bad("role"))?;
            let department = match form.department.as_str() {
                "" => None,
                d => Some(Code::new(d).map_err(|_| bad("department"))?),
            };
            if name.is_empty() || (role == Role::DepartmentStaff && department.is_none()) {
                return Err(bad("member"));
            }
            let grid: Option<GridId> = match form.grid.as_str() {
                "" => None,
                g => Some(g.parse().map_err(|_| bad("grid"))?),
            };
            blocking(move || -> Result<(), crate::storage::StorageError> {
                let id = storage.create_member(&name, role, department.as_ref(), at)?;
                if let Some(grid) = grid {
                    storage.set_member_grid(id, grid, true)?;
                }
                Ok(())
            })
            .await??;
            lang.t("已添加人员。", "Member added.").to_owned()
        }
        "assign" => {
            let member: MemberId = form.member.parse().map_err(|_| bad("member"))?;
            let grid: GridId = form.grid.parse().map_err(|_| bad("grid"))?;
            let assigned = form.assigned == "1";
            let changed = blocking(move || storage.set_member_grid(member, grid, assigned)).await??;
            match (changed, assigned) {
                (false, _) => lang.t("没有变化。", "Nothing changed.").to_owned(),
                (true, true) => lang
                    .t(
                        "已分配网格，设备下次同步时收到。",
                        "Grid assigned; devices receive it on their next sync.",
                    )
                    .to_owned(),
                (true, false) => lang
                    .t(
                        "已移除网格，设备下次同步时先上传再清除。",
                        "Grid taken away; devices upload, then purge it on their next sync.",
                    )
                    .to_owned(),
            }
        }
        "hand-over" => {
            let from: MemberId = form.member.parse().map_err(|_| bad("member"))?;
            let to: MemberId = form.to.parse().map_err(|_| bad("member"))?;
            let grid: GridId = form.grid.parse().map_err(|_| bad("grid"))?;
            if blocking(move || storage.hand_over_grid(grid, from, to, at)).await?? {
                tracing::info!(%grid, %from, %to, "grid handed over on the dashboard");
                lang.t(
                    "已交接网格：原网格员的设备下次同步时先上传再清除，新网格员的设备下次同步时收到。",
                    "Grid handed over: the old worker's devices upload, then purge it on their next sync; the new worker's devices receive it.",
                )
                .to_owned()
            } else {
                lang.t(
                    "没有变化：原网格员未持有此网格。",
                    "Nothing changed: the first member does not hold that grid.",
                )
                .to_owned()
            }
        }
        "add-grid" => {
            let (name, community, street) = (
                form.name.trim().to_owned(),
                form.community.trim().to_owned(),
                form.street.trim().to_owned(),
            );
            if name.is_empty() || community.is_empty() {
                return Err(bad("grid"));
            }
            blocking(move || storage.create_grid(&name, &community, &street)).await??;
            lang.t("已添加网格。", "Grid added.").to_owned()
        }
        "taxonomy" => {
            let edit = taxonomy_edit(&form)?;
            let shipped = state.dashboard.taxonomy.clone();
            let detail = format!("{} {}", form.op, form.code.chars().take(64).collect::<String>());
            let saved = blocking(move || -> Result<Result<u32, DashboardError>, crate::storage::StorageError> {
                let stored = storage.county_taxonomy()?;
                let expected = stored.as_ref().map(|t| t.version);
                let current = stored.unwrap_or(shipped);
                let next = match taxonomy::edit(&current, &edit) {
                    Ok(next) => next,
                    Err(e) => return Ok(Err(refused(&e))),
                };
                if storage.save_county_taxonomy(&next, expected, &detail, at)? {
                    Ok(Ok(next.version))
                } else {
                    Ok(Err(DashboardError::NotAllowedNow(
                        "另一位管理员刚刚修改过，请刷新后重试 / edited by someone else just now; reload and retry"
                            .into(),
                    )))
                }
            })
            .await???;
            tracing::info!(version = saved, op = %form.op, "county taxonomy edited");
            format!(
                "{} {saved}{}",
                lang.t("已保存，诉求分类版本", "Saved: taxonomy version"),
                lang.t("，设备下次同步时收到。", "; devices receive it on their next sync."),
            )
        }
        _ => return Ok(Redirect::to("/dashboard/admin").into_response()),
    };
    page_view(&state, &staff, Some(notice)).await
}
