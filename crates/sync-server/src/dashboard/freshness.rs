//! Data freshness: how current the server's picture of the field is. Each sync round records a
//! device's last successful sync and the number of changes it still held unsynced
//! (`SyncRequest::unsynced`, PROTOCOL §3); from these the dashboard shows, per worker and device,
//! when each last synced and whether it had work not yet uploaded, and tells of a grid whether
//! its households "not visited" may in fact be "visited but not yet synced".

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use doorstep_core::ids::{DeviceId, GridId, MemberId};
use doorstep_core::time::Timestamp;

use crate::dashboard::error::DashboardError;
use crate::dashboard::html::{Lang, date_time, esc};
use crate::dashboard::pages::respond;
use crate::dashboard::session::Staff;
use crate::http::{AppState, blocking, now};
use crate::scope::{Role, Scope};
use crate::storage::{DeviceRow, MemberRow};

/// One active device as the freshness table shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceFreshness {
    /// The device.
    pub device: DeviceId,
    /// Its name.
    pub device_name: String,
    /// Its member.
    pub member: MemberId,
    /// The member's name.
    pub member_name: String,
    /// The member's role.
    pub role: Role,
    /// The last successful sync round, if any.
    pub last_sync: Option<Timestamp>,
    /// Changes the device still held unsynced after that round (as it reported them).
    pub unsynced: Option<i64>,
}

impl DeviceFreshness {
    /// The device may hold work the server has not seen: it never synced, or it reported
    /// unsynced changes at its last contact.
    pub fn is_behind(&self) -> bool {
        self.last_sync.is_none() || self.unsynced.unwrap_or(0) > 0
    }
}

/// The devices (not revoked) of the members whose work `scope` may see: every member for an
/// administrator, members sharing a grid with a supervisor; stalest first.
pub fn devices_in_scope(scope: &Scope, members: &[MemberRow], devices: &[DeviceRow]) -> Vec<DeviceFreshness> {
    let mut out: Vec<DeviceFreshness> = devices
        .iter()
        .filter(|d| d.revoked_at.is_none())
        .filter_map(|d| {
            let m = members.iter().find(|m| m.id == d.member_id)?;
            let visible = scope.role == Role::Admin
                || m.id == scope.member
                || m.grids.iter().any(|g| scope.grids.contains(g));
            visible.then(|| DeviceFreshness {
                device: d.id,
                device_name: d.name.clone(),
                member: m.id,
                member_name: m.name.clone(),
                role: m.role,
                last_sync: d.last_seen_at,
                unsynced: d.last_unsynced,
            })
        })
        .collect();
    out.sort_by(|a, b| (a.last_sync, &a.member_name, a.device).cmp(&(b.last_sync, &b.member_name, b.device)));
    out
}

/// How current one grid's data is: the devices of the members assigned to it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GridFreshness {
    /// Active devices of members holding the grid.
    pub devices: usize,
    /// Of those, devices that never synced or reported unsynced changes at their last contact.
    pub behind: usize,
    /// Unsynced changes those devices reported, in total.
    pub unsynced: i64,
    /// The oldest last successful sync among the devices that did sync.
    pub oldest_sync: Option<Timestamp>,
}

impl GridFreshness {
    /// Households shown as not visited may have been visited on a phone that has not synced.
    pub fn may_be_stale(&self) -> bool {
        self.behind > 0
    }
}

/// The freshness of `grid` from the devices of the members holding it.
pub fn grid_freshness(grid: GridId, members: &[MemberRow], devices: &[DeviceRow]) -> GridFreshness {
    let mut out = GridFreshness::default();
    for d in devices.iter().filter(|d| d.revoked_at.is_none()) {
        if !members.iter().any(|m| m.id == d.member_id && m.grids.contains(&grid)) {
            continue;
        }
        out.devices += 1;
        let unsynced = d.last_unsynced.unwrap_or(0);
        if d.last_seen_at.is_none() || unsynced > 0 {
            out.behind += 1;
        }
        out.unsynced += unsynced.max(0);
        if let Some(at) = d.last_seen_at {
            out.oldest_sync = Some(out.oldest_sync.map_or(at, |o| o.min(at)));
        }
    }
    out
}

/// "3 小时前" / "3 h ago": how long before `now` `at` was.
pub fn ago(lang: Lang, now: Timestamp, at: Timestamp) -> String {
    let minutes = (now.millis() - at.millis()).max(0) / 60_000;
    match minutes {
        0 => lang.t("刚刚", "just now").to_owned(),
        m if m < 60 => format!("{m} {}", lang.t("分钟前", "min ago")),
        m if m < 48 * 60 => format!("{} {}", m / 60, lang.t("小时前", "h ago")),
        m => format!("{} {}", m / 1440, lang.t("天前", "days ago")),
    }
}

/// The words for a grid's freshness in the grid list.
pub fn grid_note(lang: Lang, f: &GridFreshness, now: Timestamp) -> String {
    if f.devices == 0 {
        return lang.t("无设备", "no devices").to_owned();
    }
    let oldest =
        f.oldest_sync.map_or_else(|| lang.t("从未同步", "never synced").to_owned(), |at| ago(lang, now, at));
    if f.may_be_stale() {
        match lang {
            Lang::Zh => {
                format!("{} 台设备未同步完（共 {} 条修改待上传）· 最早同步 {oldest}", f.behind, f.unsynced)
            }
            Lang::En => format!(
                "{} device(s) not fully synced ({} changes waiting) · oldest sync {oldest}",
                f.behind, f.unsynced
            ),
        }
    } else {
        format!("{} · {} {oldest}", lang.t("全部已同步", "all synced"), lang.t("最早同步", "oldest sync"))
    }
}

/// `GET /dashboard/freshness`: per worker and device, the last successful sync, how long ago,
/// and the unsynced changes it reported then.
pub async fn page(State(state): State<Arc<AppState>>, staff: Staff) -> Result<Response, DashboardError> {
    let storage = state.storage.clone();
    let (members, devices) =
        blocking(move || Ok::<_, crate::storage::StorageError>((storage.members()?, storage.devices()?)))
            .await??;
    let lang = staff.lang;
    let at = now();
    let rows = devices_in_scope(&staff.scope, &members, &devices);
    let mut b = format!(
        "<h1>{}</h1><p class=\"muted\">{}</p><div class=\"table\"><table id=\"freshness\"><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
        lang.t("同步情况", "Data freshness"),
        lang.t(
            "设备每次同步时报告尚未上传的修改数。有未同步修改的设备所在网格，“未走访”的住户可能已走访但尚未同步。",
            "Each device reports its changes not yet uploaded whenever it syncs. In a grid with such a device, households shown as not visited may have been visited but not yet synced."
        ),
        lang.t("人员", "Member"),
        lang.t("设备", "Device"),
        lang.t("最近成功同步", "Last successful sync"),
        lang.t("距今", "How long ago"),
        lang.t("上次同步时未上传的修改", "Unsynced changes at last contact"),
        lang.t("状态", "Status"),
    );
    for d in &rows {
        let (status, class) = match (d.last_sync, d.unsynced.unwrap_or(0)) {
            (None, _) => (lang.t("从未同步", "never synced"), "overdue"),
            (Some(_), n) if n > 0 => (lang.t("有未同步修改", "has unsynced changes"), "overdue"),
            _ => (lang.t("已同步", "synced"), ""),
        };
        let _ = write!(
            b,
            "<tr id=\"device-{}\"><td>{} · {}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"unsynced\">{}</td><td class=\"{class}\">{status}</td></tr>",
            d.device,
            esc(&d.member_name),
            lang.role(d.role),
            esc(&d.device_name),
            d.last_sync.map(date_time).unwrap_or_else(|| "–".into()),
            d.last_sync.map(|s| ago(lang, at, s)).unwrap_or_else(|| "–".into()),
            d.unsynced.map(|n| n.to_string()).unwrap_or_else(|| "–".into()),
        );
    }
    b.push_str("</table></div>");
    Ok(respond(&staff, lang.t("同步情况", "Data freshness"), &b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(member: MemberId, seen: Option<i64>, unsynced: Option<i64>) -> DeviceRow {
        DeviceRow {
            id: DeviceId::new_random(),
            member_id: member,
            name: "phone".into(),
            enrolled_at: Timestamp(0),
            revoked_at: None,
            last_seen_at: seen.map(Timestamp),
            last_unsynced: unsynced,
        }
    }

    #[test]
    fn a_grid_may_be_stale_while_one_of_its_devices_reported_unsynced_changes() {
        let g = GridId::new_random();
        let w = MemberId::new_random();
        let members = vec![MemberRow {
            id: w,
            name: "王芳".into(),
            role: Role::GridWorker,
            department: None,
            grids: vec![g],
        }];
        let synced = grid_freshness(g, &members, &[device(w, Some(5), Some(0))]);
        assert!(!synced.may_be_stale());
        assert_eq!(synced.oldest_sync, Some(Timestamp(5)));
        let behind = grid_freshness(g, &members, &[device(w, Some(5), Some(0)), device(w, Some(9), Some(3))]);
        assert!(behind.may_be_stale());
        assert_eq!((behind.devices, behind.behind, behind.unsynced), (2, 1, 3));
        assert!(grid_freshness(g, &members, &[device(w, None, None)]).may_be_stale(), "never synced");
        assert_eq!(grid_freshness(GridId::new_random(), &members, &[device(w, None, None)]).devices, 0);
    }

    #[test]
    fn how_long_ago_reads_in_minutes_hours_and_days() {
        let now = Timestamp(10 * 86_400_000);
        assert_eq!(ago(Lang::En, now, Timestamp(now.millis() - 5 * 60_000)), "5 min ago");
        assert_eq!(ago(Lang::Zh, now, Timestamp(now.millis() - 3 * 3_600_000)), "3 小时前");
        assert_eq!(ago(Lang::En, now, Timestamp(now.millis() - 3 * 86_400_000)), "3 days ago");
    }
}
