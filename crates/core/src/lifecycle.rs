//! The request lifecycle: every status transition rule in one table, and the derivation of a
//! request's status from its event log.
//!
//! Status is never stored. Every replica computes it from the same set of events, so every
//! replica agrees once it holds the same events, whatever order they arrived in.
//!
//! **Order.** Each event lists the events its device had seen (`after`). That causal order is
//! the only order used: device clocks are shown to people but never consulted, so a phone set
//! to 2019 cannot reorder or drop anything. Events neither of which saw the other are
//! *concurrent*; they are applied in the order of their ids (arbitrary, but the same everywhere).
//!
//! **Conflicts.** Two concurrent *decisive* events that decide differently (one worker resolves
//! on the spot while the supervisor dispatches) form a conflict. So does every event that ends
//! up not applied, whatever it is, together with the events concurrent with it (an `accepted`
//! that a concurrent `cancelled` made moot): no action is dropped without a person seeing it.
//! The merged log keeps every event, the status is derived as above, and the conflict stays
//! listed until a supervisor records a [`EventAction::Reviewed`] event after seeing all of its
//! events.
//!
//! | from \ action | accept | discuss | dispatch | assign/claim | progress | resolve | resolve on spot | follow up | reopen | close | cancel |
//! |---|---|---|---|---|---|---|---|---|---|---|---|
//! | raised | accepted | discussing | dispatched | assigned | – | – | resolved | – | – | – | cancelled |
//! | accepted | – | discussing | dispatched | assigned | in progress | resolved | resolved | – | – | – | cancelled |
//! | discussing | – | discussing | dispatched | assigned | in progress | resolved | – | – | – | – | cancelled |
//! | dispatched | – | – | dispatched | assigned¹ | in progress | resolved | – | – | – | – | cancelled |
//! | assigned | – | – | dispatched | assigned² | in progress | resolved | – | – | – | – | cancelled |
//! | in progress | – | – | dispatched | assigned² | in progress | resolved | – | – | – | – | cancelled |
//! | resolved | – | – | – | – | – | – | – | followed up | reopened | closed | – |
//! | followed up | – | – | – | – | – | – | – | followed up | reopened | closed | – |
//! | reopened | accepted | discussing | dispatched | assigned | in progress | resolved | – | – | – | – | cancelled |
//! | closed | – | – | – | – | – | – | – | – | reopened | – | – |
//! | cancelled | – | – | – | – | – | – | – | – | – | – | – |
//!
//! ¹ claim too. ² assign only: a request someone holds cannot be claimed by another.
//! *Supervise* is allowed in every status but closed and cancelled and changes no status;
//! *review* is allowed in every status.

use std::collections::{BTreeSet, HashMap};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};
use crate::ids::{DepartmentCode, EventId, MemberId};
use crate::model::request::{EventAction, RequestEvent, Satisfaction};

/// Where a request stands, derived from its event log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestStatus {
    /// 待受理: raised, nobody has acted yet.
    Raised,
    /// 已受理
    Accepted,
    /// 议事中
    Discussing,
    /// 已转办: with a department.
    Dispatched,
    /// 已指派/已认领: a person holds it.
    Assigned,
    /// 办理中
    InProgress,
    /// 已办结: waiting for the follow-up visit.
    Resolved,
    /// 已回访
    FollowedUp,
    /// 已重办
    Reopened,
    /// 已销号
    Closed,
    /// 已撤销
    Cancelled,
}

impl RequestStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [RequestStatus; 11] = [
        RequestStatus::Raised,
        RequestStatus::Accepted,
        RequestStatus::Discussing,
        RequestStatus::Dispatched,
        RequestStatus::Assigned,
        RequestStatus::InProgress,
        RequestStatus::Resolved,
        RequestStatus::FollowedUp,
        RequestStatus::Reopened,
        RequestStatus::Closed,
        RequestStatus::Cancelled,
    ];

    /// The stable text stored in documents and indexes.
    pub const fn as_str(self) -> &'static str {
        match self {
            RequestStatus::Raised => "raised",
            RequestStatus::Accepted => "accepted",
            RequestStatus::Discussing => "discussing",
            RequestStatus::Dispatched => "dispatched",
            RequestStatus::Assigned => "assigned",
            RequestStatus::InProgress => "in_progress",
            RequestStatus::Resolved => "resolved",
            RequestStatus::FollowedUp => "followed_up",
            RequestStatus::Reopened => "reopened",
            RequestStatus::Closed => "closed",
            RequestStatus::Cancelled => "cancelled",
        }
    }

    /// Reads stored text.
    pub fn from_stored(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// The Simplified Chinese label used on screens.
    pub const fn label_zh(self) -> &'static str {
        match self {
            RequestStatus::Raised => "待受理",
            RequestStatus::Accepted => "已受理",
            RequestStatus::Discussing => "议事中",
            RequestStatus::Dispatched => "已转办",
            RequestStatus::Assigned => "已指派",
            RequestStatus::InProgress => "办理中",
            RequestStatus::Resolved => "已办结",
            RequestStatus::FollowedUp => "已回访",
            RequestStatus::Reopened => "已重办",
            RequestStatus::Closed => "已销号",
            RequestStatus::Cancelled => "已撤销",
        }
    }

    /// Still waiting for someone to act (not yet resolved, closed or cancelled).
    pub const fn is_open(self) -> bool {
        !matches!(
            self,
            RequestStatus::Resolved
                | RequestStatus::FollowedUp
                | RequestStatus::Closed
                | RequestStatus::Cancelled
        )
    }

    /// Closed or cancelled: off the ledger.
    pub const fn is_terminal(self) -> bool {
        matches!(self, RequestStatus::Closed | RequestStatus::Cancelled)
    }
}

impl fmt::Display for RequestStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The status an action leads to from `from`, or `None` if the rules forbid it.
/// This function *is* the transition table in the module docs.
pub fn next_status(from: RequestStatus, action: &EventAction) -> Option<RequestStatus> {
    use RequestStatus as S;
    let working = matches!(
        from,
        S::Accepted | S::Discussing | S::Dispatched | S::Assigned | S::InProgress | S::Reopened
    );
    match action {
        EventAction::Raised => None,
        EventAction::Accepted => matches!(from, S::Raised | S::Reopened).then_some(S::Accepted),
        EventAction::Discussed => {
            matches!(from, S::Raised | S::Accepted | S::Discussing | S::Reopened).then_some(S::Discussing)
        }
        EventAction::Dispatched { .. } => (from == S::Raised || working).then_some(S::Dispatched),
        EventAction::Assigned { .. } => (from == S::Raised || working).then_some(S::Assigned),
        EventAction::Claimed => {
            matches!(from, S::Raised | S::Accepted | S::Discussing | S::Dispatched | S::Reopened)
                .then_some(S::Assigned)
        }
        EventAction::Progress => working.then_some(S::InProgress),
        EventAction::Resolved => working.then_some(S::Resolved),
        EventAction::ResolvedOnSpot => matches!(from, S::Raised | S::Accepted).then_some(S::Resolved),
        EventAction::FollowedUp { .. } => {
            matches!(from, S::Resolved | S::FollowedUp).then_some(S::FollowedUp)
        }
        EventAction::Reopened => {
            matches!(from, S::Resolved | S::FollowedUp | S::Closed).then_some(S::Reopened)
        }
        EventAction::Closed => matches!(from, S::Resolved | S::FollowedUp).then_some(S::Closed),
        EventAction::Cancelled => (from == S::Raised || working).then_some(S::Cancelled),
        EventAction::Supervised => (!from.is_terminal()).then_some(from),
        EventAction::Reviewed { outcome } => Some(outcome.unwrap_or(from)),
        EventAction::Unknown { .. } => None,
    }
}

/// Checks that `action` may be recorded on a request whose derived status is `from`.
pub fn check_transition(from: RequestStatus, action: &EventAction) -> Result<RequestStatus> {
    next_status(from, action).ok_or(CoreError::InvalidTransition { from, action: action.verb() })
}

/// Events that decide where a request goes; two concurrent ones that differ are a conflict.
fn is_decisive(action: &EventAction) -> bool {
    matches!(
        action,
        EventAction::ResolvedOnSpot
            | EventAction::Dispatched { .. }
            | EventAction::Assigned { .. }
            | EventAction::Claimed
            | EventAction::Resolved
            | EventAction::FollowedUp { .. }
            | EventAction::Reopened
            | EventAction::Closed
            | EventAction::Cancelled
    )
}

fn same_decision(a: &RequestEvent, b: &RequestEvent) -> bool {
    a.action == b.action && (a.action != EventAction::Claimed || a.by == b.by)
}

/// What a request's event log says, computed the same way on every replica.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Derived {
    /// Current status.
    pub status: RequestStatus,
    /// Under supervision (督办).
    pub supervised: bool,
    /// The department it was last dispatched to.
    pub department: Option<DepartmentCode>,
    /// The person who last took it (assigned or claimed).
    pub assignee: Option<MemberId>,
    /// The latest follow-up answer, cleared by a reopen.
    pub satisfaction: Option<Satisfaction>,
    /// Events in the log that did not apply in causal order (usually the losing side of a
    /// conflict). They stay in the log and are shown.
    pub not_applied: Vec<EventId>,
    /// Unreviewed conflicts: each a set of concurrent decisive events, sorted by id.
    pub conflicts: Vec<Vec<EventId>>,
    /// The events no other event has seen yet; a new event lists these as its `after`.
    pub heads: Vec<EventId>,
}

/// Orders events causally (ties by id) and returns their indexes in that order, together with
/// each event's set of ancestors (as indexes).
fn causal_order(events: &[RequestEvent]) -> (Vec<usize>, Vec<BTreeSet<usize>>) {
    let index: HashMap<EventId, usize> = events.iter().enumerate().map(|(i, e)| (e.id, i)).collect();
    let parents: Vec<Vec<usize>> =
        events.iter().map(|e| e.after.iter().filter_map(|p| index.get(p).copied()).collect()).collect();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); events.len()];
    let mut waiting: Vec<usize> = parents.iter().map(Vec::len).collect();
    for (child, ps) in parents.iter().enumerate() {
        for &p in ps {
            children[p].push(child);
        }
    }
    let mut ready: BTreeSet<(EventId, usize)> =
        (0..events.len()).filter(|&i| waiting[i] == 0).map(|i| (events[i].id, i)).collect();
    let mut order = Vec::with_capacity(events.len());
    let mut ancestors: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); events.len()];
    while let Some((_, i)) = ready.pop_first() {
        order.push(i);
        let mut mine = BTreeSet::new();
        for &p in &parents[i] {
            mine.insert(p);
            mine.extend(ancestors[p].iter().copied());
        }
        ancestors[i] = mine;
        for &c in &children[i] {
            waiting[c] -= 1;
            if waiting[c] == 0 {
                ready.insert((events[c].id, c));
            }
        }
    }
    // A cycle can only come from a forged document; its events go last, in id order.
    if order.len() < events.len() {
        let placed: BTreeSet<usize> = order.iter().copied().collect();
        let mut rest: Vec<usize> = (0..events.len()).filter(|i| !placed.contains(i)).collect();
        rest.sort_by_key(|&i| events[i].id);
        order.extend(rest);
    }
    (order, ancestors)
}

/// Sorts `events` into causal order in place and derives the request's state from them.
pub fn derive(events: &mut Vec<RequestEvent>) -> Derived {
    let (order, ancestors) = causal_order(events);
    let mut slots: Vec<Option<RequestEvent>> = events.drain(..).map(Some).collect();
    let mut sorted_ancestors = Vec::with_capacity(order.len());
    let mut position = vec![0; order.len()];
    for (new, &old) in order.iter().enumerate() {
        position[old] = new;
    }
    for &old in &order {
        if let Some(event) = slots[old].take() {
            events.push(event);
        }
        sorted_ancestors.push(ancestors[old].iter().map(|&a| position[a]).collect::<BTreeSet<_>>());
    }

    let mut derived = Derived {
        status: RequestStatus::Raised,
        supervised: false,
        department: None,
        assignee: None,
        satisfaction: None,
        not_applied: Vec::new(),
        conflicts: Vec::new(),
        heads: Vec::new(),
    };
    for event in events.iter() {
        if event.action == EventAction::Raised {
            continue;
        }
        let Some(next) = next_status(derived.status, &event.action) else {
            derived.not_applied.push(event.id);
            continue;
        };
        derived.status = next;
        match &event.action {
            EventAction::Dispatched { department } => derived.department = Some(department.clone()),
            EventAction::Assigned { assignee } => derived.assignee = Some(*assignee),
            EventAction::Claimed => derived.assignee = Some(event.by),
            EventAction::Supervised => derived.supervised = true,
            EventAction::FollowedUp { satisfaction } => derived.satisfaction = Some(*satisfaction),
            EventAction::Reopened => derived.satisfaction = None,
            _ => {}
        }
    }
    let not_applied: Vec<usize> =
        (0..events.len()).filter(|&i| derived.not_applied.contains(&events[i].id)).collect();
    derived.conflicts = unreviewed_conflicts(events, &sorted_ancestors, &not_applied);
    let mut seen: BTreeSet<usize> = BTreeSet::new();
    for a in &sorted_ancestors {
        seen.extend(a.iter().copied());
    }
    derived.heads = (0..events.len()).filter(|i| !seen.contains(i)).map(|i| events[i].id).collect();
    derived.heads.sort();
    derived
}

/// Groups concurrent, differing decisive events — and every event that ended up not applied,
/// with the events concurrent with it — and keeps the groups no review has covered. So no
/// action is ever dropped without a person seeing it: an `accepted` that lost to a concurrent
/// `cancelled` is listed as surely as two concurrent dispatches.
fn unreviewed_conflicts(
    events: &[RequestEvent],
    ancestors: &[BTreeSet<usize>],
    not_applied: &[usize],
) -> Vec<Vec<EventId>> {
    let decisive: Vec<usize> = (0..events.len()).filter(|&i| is_decisive(&events[i].action)).collect();
    // Union-find over decisive events joined by "concurrent and different".
    let mut group: Vec<usize> = (0..events.len()).collect();
    fn root(group: &mut [usize], mut i: usize) -> usize {
        while group[i] != i {
            group[i] = group[group[i]];
            i = group[i];
        }
        i
    }
    let mut in_conflict = BTreeSet::new();
    for (n, &a) in decisive.iter().enumerate() {
        for &b in &decisive[n + 1..] {
            let concurrent = !ancestors[a].contains(&b) && !ancestors[b].contains(&a);
            if concurrent && !same_decision(&events[a], &events[b]) {
                let (ra, rb) = (root(&mut group, a), root(&mut group, b));
                group[ra.max(rb)] = ra.min(rb);
                in_conflict.insert(a);
                in_conflict.insert(b);
            }
        }
    }
    let applied = |i: usize| !not_applied.contains(&i);
    for &lost in not_applied {
        // Not dropped if a concurrent twin made the same decision and took effect.
        let twin_applied = (0..events.len()).any(|other| {
            other != lost
                && applied(other)
                && !ancestors[lost].contains(&other)
                && !ancestors[other].contains(&lost)
                && same_decision(&events[lost], &events[other])
        });
        if twin_applied {
            continue;
        }
        in_conflict.insert(lost);
        for other in 0..events.len() {
            let concurrent =
                other != lost && !ancestors[lost].contains(&other) && !ancestors[other].contains(&lost);
            if concurrent
                && !matches!(events[other].action, EventAction::Raised | EventAction::Reviewed { .. })
            {
                let (ra, rb) = (root(&mut group, lost), root(&mut group, other));
                group[ra.max(rb)] = ra.min(rb);
                in_conflict.insert(other);
            }
        }
    }
    let mut groups: HashMap<usize, Vec<usize>> = HashMap::new();
    for &i in &in_conflict {
        let r = root(&mut group, i);
        groups.entry(r).or_default().push(i);
    }
    let reviews: Vec<usize> =
        (0..events.len()).filter(|&i| matches!(events[i].action, EventAction::Reviewed { .. })).collect();
    let mut open: Vec<Vec<EventId>> = groups
        .into_values()
        .filter(|members| !reviews.iter().any(|&r| members.iter().all(|m| ancestors[r].contains(m))))
        .map(|members| {
            let mut ids: Vec<EventId> = members.into_iter().map(|i| events[i].id).collect();
            ids.sort();
            ids
        })
        .collect();
    open.sort();
    open
}

#[cfg(test)]
mod tests;
