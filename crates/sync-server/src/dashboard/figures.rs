//! The figures the dashboard shows, computed from the read model for one scope at one time:
//! the overview, the filtered ledger and a grid's household list. Pure functions, so unit
//! tests check them without a server.

use std::collections::{BTreeMap, HashMap};

use doorstep_core::ids::{GridId, HouseholdId};
use doorstep_core::lifecycle::RequestStatus;
use doorstep_core::model::{EventAction, Request, ResidentTag, Satisfaction};
use doorstep_core::time::Timestamp;
use serde::Deserialize;

use crate::dashboard::read_model::{HouseholdEntry, ReadModel, RequestEntry};
use crate::scope::Scope;
use crate::storage::GridRow;

const DAY_MS: i64 = 86_400_000;
/// Weeks in the overview's trend chart.
pub const TREND_WEEKS: usize = 12;

/// Resolved, followed up or closed: the resident's problem was dealt with.
pub fn is_resolved(status: RequestStatus) -> bool {
    matches!(status, RequestStatus::Resolved | RequestStatus::FollowedUp | RequestStatus::Closed)
}

/// Open and past its due time.
pub fn is_overdue(request: &Request, now: Timestamp) -> bool {
    request.status().is_open() && request.due_at < now
}

/// When the request was (last) resolved, by the recording device's clock.
fn resolved_at(request: &Request) -> Option<Timestamp> {
    if !is_resolved(request.status()) {
        return None;
    }
    request
        .events
        .iter()
        .rev()
        .find(|e| {
            matches!(e.action, EventAction::Resolved | EventAction::ResolvedOnSpot)
                && !request.derived.not_applied.contains(&e.id)
        })
        .map(|e| e.at)
}

/// Visit coverage of one grid.
#[derive(Clone, Debug, PartialEq)]
pub struct GridCoverage {
    /// The grid.
    pub grid: GridId,
    /// Its name.
    pub name: String,
    /// Households in it.
    pub households: usize,
    /// Households visited in the last 30 days.
    pub visited: usize,
}

impl GridCoverage {
    /// Share of households visited (0–1).
    pub fn share(&self) -> f64 {
        if self.households == 0 { 0.0 } else { self.visited as f64 / self.households as f64 }
    }
}

/// One week of the trend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Week {
    /// Start of the week.
    pub start: Timestamp,
    /// Requests raised.
    pub raised: usize,
    /// Requests resolved.
    pub resolved: usize,
    /// Visits made.
    pub visits: usize,
}

/// The overview page's figures.
#[derive(Clone, Debug, PartialEq)]
pub struct Overview {
    /// Households in scope.
    pub households: usize,
    /// Visits in the last 30 days.
    pub visits_30d: usize,
    /// Coverage per grid (grids with households in scope).
    pub grids: Vec<GridCoverage>,
    /// Requests in scope.
    pub requests: usize,
    /// Open requests.
    pub open: usize,
    /// Open and past due.
    pub overdue: usize,
    /// Resolved, followed up or closed.
    pub resolved: usize,
    /// Cancelled.
    pub cancelled: usize,
    /// Resolved share of the requests not cancelled.
    pub resolution_rate: Option<f64>,
    /// Follow-ups answered.
    pub followed_up: usize,
    /// Share of follow-ups satisfied or basically satisfied.
    pub satisfaction_rate: Option<f64>,
    /// The last [`TREND_WEEKS`] weeks, oldest first.
    pub weeks: Vec<Week>,
}

/// Computes the overview for `scope` at `now`.
pub fn overview(model: &ReadModel, scope: &Scope, grids: &[GridRow], now: Timestamp) -> Overview {
    let since = Timestamp(now.millis() - 30 * DAY_MS);
    let trend_start = now.millis() - TREND_WEEKS as i64 * 7 * DAY_MS;
    let week_of = |at: Timestamp| -> Option<usize> {
        let offset = at.millis() - trend_start;
        (offset >= 0 && at <= now).then_some((offset / (7 * DAY_MS)) as usize).filter(|w| *w < TREND_WEEKS)
    };
    let mut weeks: Vec<Week> = (0..TREND_WEEKS)
        .map(|w| Week {
            start: Timestamp(trend_start + w as i64 * 7 * DAY_MS),
            raised: 0,
            resolved: 0,
            visits: 0,
        })
        .collect();
    let mut coverage: BTreeMap<GridId, (usize, usize)> = BTreeMap::new();
    let (mut households, mut visits_30d) = (0, 0);
    for entry in model.households(scope) {
        households += 1;
        let h = &entry.household;
        let recent = h.visits.iter().filter(|v| v.at >= since && v.at <= now).count();
        visits_30d += recent;
        let c = coverage.entry(h.address.grid).or_default();
        c.0 += 1;
        c.1 += usize::from(recent > 0);
        for v in &h.visits {
            if let Some(w) = week_of(v.at) {
                weeks[w].visits += 1;
            }
        }
    }
    let mut o = Overview {
        households,
        visits_30d,
        grids: Vec::new(),
        requests: 0,
        open: 0,
        overdue: 0,
        resolved: 0,
        cancelled: 0,
        resolution_rate: None,
        followed_up: 0,
        satisfaction_rate: None,
        weeks: Vec::new(),
    };
    let mut satisfied = 0;
    for entry in model.requests(scope) {
        let r = &entry.request;
        o.requests += 1;
        let status = r.status();
        o.open += usize::from(status.is_open());
        o.overdue += usize::from(is_overdue(r, now));
        o.resolved += usize::from(is_resolved(status));
        o.cancelled += usize::from(status == RequestStatus::Cancelled);
        if let Some(s) = r.derived.satisfaction {
            o.followed_up += 1;
            satisfied += usize::from(s != Satisfaction::Unsatisfied);
        }
        if let Some(w) = week_of(r.raised_at) {
            weeks[w].raised += 1;
        }
        if let Some(w) = resolved_at(r).and_then(week_of) {
            weeks[w].resolved += 1;
        }
    }
    let decided = o.requests - o.cancelled;
    o.resolution_rate = (decided > 0).then(|| o.resolved as f64 / decided as f64);
    o.satisfaction_rate = (o.followed_up > 0).then(|| satisfied as f64 / o.followed_up as f64);
    o.weeks = weeks;
    let names: HashMap<GridId, &str> = grids.iter().map(|g| (g.id, g.name.as_str())).collect();
    o.grids = coverage
        .into_iter()
        .map(|(grid, (households, visited))| GridCoverage {
            grid,
            name: names.get(&grid).map_or_else(|| grid.to_string(), |n| (*n).to_owned()),
            households,
            visited,
        })
        .collect();
    o.grids.sort_by(|a, b| a.name.cmp(&b.name));
    o
}

/// The ledger's filters, as given in the query string (empty means any).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct LedgerFilter {
    /// A status (`raised`, …), or `open`.
    #[serde(default)]
    pub status: String,
    /// A category code.
    #[serde(default)]
    pub category: String,
    /// A grid id.
    #[serde(default)]
    pub grid: String,
    /// A department code.
    #[serde(default)]
    pub department: String,
    /// `1` for overdue requests only.
    #[serde(default)]
    pub overdue: String,
}

impl LedgerFilter {
    /// Does the request pass every filter?
    pub fn matches(&self, r: &Request, now: Timestamp) -> bool {
        let status_ok = match self.status.as_str() {
            "" => true,
            "open" => r.status().is_open(),
            s => r.status().as_str() == s,
        };
        status_ok
            && (self.category.is_empty() || r.category.as_str() == self.category)
            && (self.grid.is_empty() || r.grid.to_string() == self.grid)
            && (self.department.is_empty()
                || r.derived.department.as_ref().is_some_and(|d| d.as_str() == self.department))
            && (self.overdue.is_empty() || is_overdue(r, now))
    }

    /// The filters as a query string (for export links).
    pub fn query(&self) -> String {
        use crate::dashboard::html::url_value;
        format!(
            "status={}&category={}&grid={}&department={}&overdue={}",
            url_value(&self.status),
            url_value(&self.category),
            url_value(&self.grid),
            url_value(&self.department),
            url_value(&self.overdue)
        )
    }
}

/// The requests in `scope` that pass `filter`, newest first.
pub fn ledger<'a>(
    model: &'a ReadModel,
    scope: &'a Scope,
    filter: &LedgerFilter,
    now: Timestamp,
) -> Vec<&'a RequestEntry> {
    let mut rows: Vec<&RequestEntry> =
        model.requests(scope).filter(|r| filter.matches(&r.request, now)).collect();
    rows.sort_by(|a, b| b.request.raised_at.cmp(&a.request.raised_at).then(a.request.id.cmp(&b.request.id)));
    rows
}

/// One household row of a grid page.
pub struct HouseholdRow<'a> {
    /// The household.
    pub entry: &'a HouseholdEntry,
    /// Its open requests.
    pub open_requests: usize,
    /// Not visited within the chosen number of days.
    pub due_for_visit: bool,
}

/// The households of `grid` in `scope` (with `tag`, if given): those not visited for `days`
/// days first (never visited first of all), then by last visit, oldest first.
pub fn grid_households<'a>(
    model: &'a ReadModel,
    scope: &'a Scope,
    grid: GridId,
    tag: Option<ResidentTag>,
    days: u32,
    now: Timestamp,
) -> Vec<HouseholdRow<'a>> {
    let mut open: HashMap<HouseholdId, usize> = HashMap::new();
    for r in model.requests(scope) {
        if let Some(h) = r.request.household.filter(|_| r.request.status().is_open()) {
            *open.entry(h).or_default() += 1;
        }
    }
    let cutoff = Timestamp(now.millis() - i64::from(days) * DAY_MS);
    let mut rows: Vec<HouseholdRow<'a>> = model
        .households(scope)
        .filter(|h| h.household.address.grid == grid)
        .filter(|h| tag.is_none_or(|t| h.household.tags().contains(&t)))
        .map(|entry| HouseholdRow {
            entry,
            open_requests: entry.members().map(|m| open.get(&m).copied().unwrap_or(0)).sum(),
            due_for_visit: entry.household.last_visit().is_none_or(|v| v.at < cutoff),
        })
        .collect();
    rows.sort_by(|a, b| {
        let last = |r: &HouseholdRow<'_>| r.entry.household.last_visit().map(|v| v.at);
        b.due_for_visit
            .cmp(&a.due_for_visit)
            .then(last(a).cmp(&last(b)))
            .then(a.entry.household.address.short_line().cmp(&b.entry.household.address.short_line()))
    });
    rows
}

#[cfg(test)]
mod tests {
    use automerge::AutoCommit;
    use doorstep_core::doc;
    use doorstep_core::ids::{Code, EventId, MemberId, RequestId, ResidentId, VisitId};
    use doorstep_core::model::{
        Address, NewEvent, NewHousehold, NewRequest, NewResident, NewVisit, Sex, Taxonomy, Urgency, VisitKind,
    };

    use super::*;
    use crate::scope::Role;
    use crate::storage::dashboard::ChangedDocument;

    const NOW: Timestamp = Timestamp(1_790_000_000_000);

    fn ago(days: i64) -> Timestamp {
        Timestamp(NOW.millis() - days * DAY_MS)
    }

    fn home(grid: GridId, room: &str, tags: Vec<ResidentTag>, visits: &[i64]) -> ChangedDocument {
        let id = HouseholdId::new_random();
        let new = NewHousehold {
            address: Address {
                community: "幸福社区".into(),
                grid,
                building: "1栋".into(),
                unit: String::new(),
                room: room.into(),
            },
            residents: vec![NewResident {
                name: "陈".into(),
                sex: Sex::Female,
                birth_year: None,
                phone: String::new(),
                tags,
            }],
            notes: String::new(),
        };
        let mut doc = AutoCommit::new();
        doc::household::create(
            &mut doc,
            id,
            &new,
            &[ResidentId::new_random()],
            MemberId::new_random(),
            ago(300),
        )
        .expect("household");
        for d in visits {
            let visit =
                NewVisit { at: ago(*d), kind: VisitKind::Routine, notes: String::new(), needs: vec![] };
            doc::household::record_visit(&mut doc, id, VisitId::new_random(), &visit, MemberId::new_random())
                .expect("visit");
        }
        ChangedDocument { id: id.into(), doc, last_seq: 1 }
    }

    fn request(grid: GridId, raised_days_ago: i64, actions: Vec<EventAction>) -> ChangedDocument {
        let taxonomy = Taxonomy::default_county();
        let category = taxonomy.category("facility_repair").expect("category");
        let id = RequestId::new_random();
        let new = NewRequest {
            household: None,
            grid: Some(grid),
            category: "facility_repair".into(),
            description: "灯坏了".into(),
            urgency: Urgency::Normal,
            at: ago(raised_days_ago),
        };
        let mut doc = AutoCommit::new();
        doc::request::create(
            &mut doc,
            id,
            EventId::new_random(),
            &new,
            grid,
            category,
            MemberId::new_random(),
        )
        .expect("request");
        for action in actions {
            let event = NewEvent { action, note: String::new(), at: ago(raised_days_ago - 1) };
            doc::request::add_event(&mut doc, id, EventId::new_random(), &event, MemberId::new_random())
                .expect("event");
        }
        ChangedDocument { id: id.into(), doc, last_seq: 2 }
    }

    fn county() -> (ReadModel, Scope, Scope, GridId, GridId) {
        let (a, b) = (GridId::new_random(), GridId::new_random());
        let dispatch = EventAction::Dispatched { department: Code::new("housing").expect("code") };
        let mut model = ReadModel::default();
        model.apply(vec![
            home(a, "101", vec![ResidentTag::ElderlyAlone], &[3, 40]),
            home(a, "102", vec![], &[50]),
            home(a, "103", vec![], &[]),
            home(b, "201", vec![], &[1, 2]),
            request(a, 20, vec![]),
            request(a, 2, vec![EventAction::Accepted, dispatch]),
            request(
                a,
                10,
                vec![
                    EventAction::ResolvedOnSpot,
                    EventAction::FollowedUp { satisfaction: Satisfaction::Satisfied },
                ],
            ),
            request(a, 10, vec![EventAction::Cancelled]),
            request(
                b,
                5,
                vec![
                    EventAction::ResolvedOnSpot,
                    EventAction::FollowedUp { satisfaction: Satisfaction::Unsatisfied },
                ],
            ),
        ]);
        let supervisor = Scope {
            member: MemberId::new_random(),
            role: Role::Supervisor,
            grids: vec![a],
            department: None,
        };
        let admin =
            Scope { member: MemberId::new_random(), role: Role::Admin, grids: vec![], department: None };
        (model, supervisor, admin, a, b)
    }

    #[test]
    fn the_overview_counts_what_the_scope_holds() {
        let (model, supervisor, admin, a, _) = county();
        let grids = vec![GridRow {
            id: a,
            name: "第一网格".into(),
            community: "幸福社区".into(),
            street: String::new(),
        }];
        let o = overview(&model, &supervisor, &grids, NOW);
        assert_eq!((o.households, o.visits_30d), (3, 1));
        assert_eq!(
            o.grids,
            vec![GridCoverage { grid: a, name: "第一网格".into(), households: 3, visited: 1 }]
        );
        assert_eq!((o.requests, o.open, o.resolved, o.cancelled), (4, 2, 1, 1));
        // facility_repair is due 72 h after raising: the one raised 20 days ago is overdue.
        assert_eq!(o.overdue, 1);
        assert_eq!(o.resolution_rate, Some(1.0 / 3.0));
        assert_eq!((o.followed_up, o.satisfaction_rate), (1, Some(1.0)));
        assert_eq!(o.weeks.len(), TREND_WEEKS);
        assert_eq!(o.weeks.iter().map(|w| w.raised).sum::<usize>(), 4);
        assert_eq!(o.weeks[TREND_WEEKS - 1].raised, 1, "raised 2 days ago: this week");

        let all = overview(&model, &admin, &grids, NOW);
        assert_eq!((all.households, all.requests, all.followed_up), (4, 5, 2));
        assert_eq!(all.satisfaction_rate, Some(0.5));
    }

    #[test]
    fn the_ledger_filters_by_status_department_grid_and_overdue() {
        let (model, supervisor, admin, _, b) = county();
        let by = |filter: LedgerFilter, scope: &Scope| ledger(&model, scope, &filter, NOW).len();
        assert_eq!(by(LedgerFilter::default(), &supervisor), 4);
        assert_eq!(by(LedgerFilter { status: "open".into(), ..Default::default() }, &supervisor), 2);
        assert_eq!(by(LedgerFilter { status: "dispatched".into(), ..Default::default() }, &supervisor), 1);
        assert_eq!(by(LedgerFilter { department: "housing".into(), ..Default::default() }, &supervisor), 1);
        assert_eq!(by(LedgerFilter { overdue: "1".into(), ..Default::default() }, &supervisor), 1);
        assert_eq!(
            by(LedgerFilter { grid: b.to_string(), ..Default::default() }, &supervisor),
            0,
            "out of scope"
        );
        assert_eq!(by(LedgerFilter { grid: b.to_string(), ..Default::default() }, &admin), 1);
    }

    #[test]
    fn a_grid_lists_households_not_visited_for_n_days_first() {
        let (model, supervisor, _, a, _) = county();
        let rows = grid_households(&model, &supervisor, a, None, 30, NOW);
        let rooms: Vec<&str> = rows.iter().map(|r| r.entry.household.address.room.as_str()).collect();
        assert_eq!(rooms, ["103", "102", "101"], "never visited, then 50 days ago, then visited 3 days ago");
        assert_eq!(rows.iter().filter(|r| r.due_for_visit).count(), 2);
        let alone = grid_households(&model, &supervisor, a, Some(ResidentTag::ElderlyAlone), 30, NOW);
        assert_eq!(alone.len(), 1);
    }
}
