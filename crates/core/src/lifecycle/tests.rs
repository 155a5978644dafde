//! Every transition rule, and the derivation cases: causal order, wrong clocks, conflicts.

use super::*;
use crate::ids::{Code, EventId, MemberId};
use crate::model::request::{EventAction, RequestEvent, Satisfaction};
use crate::time::Timestamp;
use RequestStatus as S;

fn dept() -> EventAction {
    EventAction::Dispatched { department: Code::new("civil_affairs").expect("valid code") }
}

/// One sample action per rule column, named as in the table in the module docs.
fn actions() -> Vec<(&'static str, EventAction)> {
    vec![
        ("accept", EventAction::Accepted),
        ("discuss", EventAction::Discussed),
        ("dispatch", dept()),
        ("assign", EventAction::Assigned { assignee: MemberId::from_uuid(uuid::Uuid::from_u128(7)) }),
        ("claim", EventAction::Claimed),
        ("progress", EventAction::Progress),
        ("resolve", EventAction::Resolved),
        ("resolve_on_spot", EventAction::ResolvedOnSpot),
        ("follow_up", EventAction::FollowedUp { satisfaction: Satisfaction::Satisfied }),
        ("reopen", EventAction::Reopened),
        ("close", EventAction::Closed),
        ("cancel", EventAction::Cancelled),
        ("supervise", EventAction::Supervised),
    ]
}

/// The expected table, written out independently of `next_status`. `-` means refused.
const EXPECTED: &[(S, [&str; 13])] = &[
    //                accept      discuss       dispatch      assign      claim       progress       resolve     on_spot     follow_up      reopen      close      cancel       supervise
    (
        S::Raised,
        [
            "accepted",
            "discussing",
            "dispatched",
            "assigned",
            "assigned",
            "-",
            "-",
            "resolved",
            "-",
            "-",
            "-",
            "cancelled",
            "raised",
        ],
    ),
    (
        S::Accepted,
        [
            "-",
            "discussing",
            "dispatched",
            "assigned",
            "assigned",
            "in_progress",
            "resolved",
            "resolved",
            "-",
            "-",
            "-",
            "cancelled",
            "accepted",
        ],
    ),
    (
        S::Discussing,
        [
            "-",
            "discussing",
            "dispatched",
            "assigned",
            "assigned",
            "in_progress",
            "resolved",
            "-",
            "-",
            "-",
            "-",
            "cancelled",
            "discussing",
        ],
    ),
    (
        S::Dispatched,
        [
            "-",
            "-",
            "dispatched",
            "assigned",
            "assigned",
            "in_progress",
            "resolved",
            "-",
            "-",
            "-",
            "-",
            "cancelled",
            "dispatched",
        ],
    ),
    (
        S::Assigned,
        [
            "-",
            "-",
            "dispatched",
            "assigned",
            "-",
            "in_progress",
            "resolved",
            "-",
            "-",
            "-",
            "-",
            "cancelled",
            "assigned",
        ],
    ),
    (
        S::InProgress,
        [
            "-",
            "-",
            "dispatched",
            "assigned",
            "-",
            "in_progress",
            "resolved",
            "-",
            "-",
            "-",
            "-",
            "cancelled",
            "in_progress",
        ],
    ),
    (
        S::Resolved,
        ["-", "-", "-", "-", "-", "-", "-", "-", "followed_up", "reopened", "closed", "-", "resolved"],
    ),
    (
        S::FollowedUp,
        ["-", "-", "-", "-", "-", "-", "-", "-", "followed_up", "reopened", "closed", "-", "followed_up"],
    ),
    (
        S::Reopened,
        [
            "accepted",
            "discussing",
            "dispatched",
            "assigned",
            "assigned",
            "in_progress",
            "resolved",
            "-",
            "-",
            "-",
            "-",
            "cancelled",
            "reopened",
        ],
    ),
    (S::Closed, ["-", "-", "-", "-", "-", "-", "-", "-", "-", "reopened", "-", "-", "-"]),
    (S::Cancelled, ["-", "-", "-", "-", "-", "-", "-", "-", "-", "-", "-", "-", "-"]),
];

#[test]
fn every_transition_rule_matches_the_table() {
    assert_eq!(EXPECTED.len(), RequestStatus::ALL.len(), "every status has a row");
    for (from, row) in EXPECTED {
        for ((name, action), expected) in actions().iter().zip(row.iter()) {
            let got = next_status(*from, action).map(|s| s.as_str()).unwrap_or("-");
            assert_eq!(got, *expected, "{from} --{name}-->");
            let checked = check_transition(*from, action);
            if *expected == "-" {
                assert!(
                    matches!(checked, Err(CoreError::InvalidTransition { from: f, .. }) if f == *from),
                    "{from} --{name}--> must be refused with a typed error"
                );
            } else {
                assert!(checked.is_ok(), "{from} --{name}--> must be allowed");
            }
        }
    }
}

#[test]
fn raised_and_unknown_events_are_never_a_transition() {
    for from in RequestStatus::ALL {
        assert_eq!(next_status(from, &EventAction::Raised), None);
        assert_eq!(next_status(from, &EventAction::Unknown { stored_kind: "escalated".into() }), None);
    }
}

#[test]
fn review_is_allowed_everywhere_and_sets_the_chosen_outcome() {
    for from in RequestStatus::ALL {
        assert_eq!(next_status(from, &EventAction::Reviewed { outcome: None }), Some(from));
        assert_eq!(
            next_status(from, &EventAction::Reviewed { outcome: Some(S::Dispatched) }),
            Some(S::Dispatched)
        );
    }
}

#[test]
fn open_and_terminal_statuses() {
    let open: Vec<_> = RequestStatus::ALL.into_iter().filter(|s| s.is_open()).collect();
    assert_eq!(
        open,
        [S::Raised, S::Accepted, S::Discussing, S::Dispatched, S::Assigned, S::InProgress, S::Reopened]
    );
    let terminal: Vec<_> = RequestStatus::ALL.into_iter().filter(|s| s.is_terminal()).collect();
    assert_eq!(terminal, [S::Closed, S::Cancelled]);
    for s in RequestStatus::ALL {
        assert_eq!(RequestStatus::from_stored(s.as_str()), Some(s));
        assert!(!s.label_zh().is_empty());
    }
}

// ---- derivation -------------------------------------------------------------------------

fn id(n: u128) -> EventId {
    EventId::from_uuid(uuid::Uuid::from_u128(n))
}

fn member(n: u128) -> MemberId {
    MemberId::from_uuid(uuid::Uuid::from_u128(1000 + n))
}

fn event(n: u128, action: EventAction, after: &[u128], at: i64) -> RequestEvent {
    RequestEvent {
        id: id(n),
        action,
        note: String::new(),
        by: member(n),
        at: Timestamp(at),
        after: after.iter().map(|&a| id(a)).collect(),
        attachments: Vec::new(),
    }
}

const Y2026: i64 = 1_780_000_000_000;
const Y2019: i64 = 1_560_000_000_000;

#[test]
fn a_linear_log_derives_its_last_status() {
    let mut events = vec![
        event(1, EventAction::Raised, &[], Y2026),
        event(2, EventAction::Accepted, &[1], Y2026 + 1),
        event(3, dept(), &[2], Y2026 + 2),
        event(4, EventAction::Supervised, &[3], Y2026 + 3),
        event(5, EventAction::Resolved, &[4], Y2026 + 4),
        event(6, EventAction::FollowedUp { satisfaction: Satisfaction::BasicallySatisfied }, &[5], Y2026 + 5),
        event(7, EventAction::Closed, &[6], Y2026 + 6),
    ];
    let d = derive(&mut events);
    assert_eq!(d.status, S::Closed);
    assert!(d.supervised);
    assert_eq!(d.department.as_ref().map(Code::as_str), Some("civil_affairs"));
    assert_eq!(d.satisfaction, Some(Satisfaction::BasicallySatisfied));
    assert!(d.conflicts.is_empty() && d.not_applied.is_empty());
    assert_eq!(d.heads, vec![id(7)]);
}

#[test]
fn a_wrong_clock_never_reorders_events() {
    // The phone that resolved it was set to 2019; the causal order still puts it after dispatch.
    let mut events = vec![
        event(9, EventAction::Resolved, &[5], Y2019),
        event(5, dept(), &[1], Y2026),
        event(1, EventAction::Raised, &[], Y2026 - 10),
    ];
    let d = derive(&mut events);
    assert_eq!(d.status, S::Resolved);
    let order: Vec<EventId> = events.iter().map(|e| e.id).collect();
    assert_eq!(order, vec![id(1), id(5), id(9)]);
    assert!(d.not_applied.is_empty());
}

#[test]
fn concurrent_resolve_on_spot_and_dispatch_is_one_conflict_in_any_input_order() {
    let base = [event(1, EventAction::Raised, &[], Y2026)];
    let on_spot = event(20, EventAction::ResolvedOnSpot, &[1], Y2026 + 5);
    let dispatch = event(10, dept(), &[1], Y2019);
    let mut a = vec![base[0].clone(), on_spot.clone(), dispatch.clone()];
    let mut b = vec![dispatch, base[0].clone(), on_spot];
    let (da, db) = (derive(&mut a), derive(&mut b));
    assert_eq!(da, db);
    assert_eq!(a, b, "same causal order whatever the input order");
    assert_eq!(da.conflicts, vec![vec![id(10), id(20)]]);
    // Ties go by id: dispatch (10) first, then resolve-on-spot is not allowed from dispatched.
    assert_eq!(da.status, S::Dispatched);
    assert_eq!(da.not_applied, vec![id(20)]);
    assert_eq!(da.heads, vec![id(10), id(20)]);
}

#[test]
fn a_review_that_saw_both_sides_clears_the_conflict_and_sets_the_outcome() {
    let mut events = vec![
        event(1, EventAction::Raised, &[], Y2026),
        event(10, dept(), &[1], Y2026),
        event(20, EventAction::ResolvedOnSpot, &[1], Y2026),
        event(30, EventAction::Reviewed { outcome: Some(S::Resolved) }, &[10, 20], Y2026),
    ];
    let d = derive(&mut events);
    assert!(d.conflicts.is_empty());
    assert_eq!(d.status, S::Resolved);
}

#[test]
fn a_review_that_missed_a_side_does_not_clear_the_conflict() {
    let mut events = vec![
        event(1, EventAction::Raised, &[], Y2026),
        event(10, dept(), &[1], Y2026),
        event(20, EventAction::ResolvedOnSpot, &[1], Y2026),
        event(25, EventAction::Cancelled, &[1], Y2026),
        // The reviewer saw the dispatch and the on-the-spot resolution, not the cancellation.
        event(30, EventAction::Reviewed { outcome: None }, &[10, 20], Y2026),
    ];
    let d = derive(&mut events);
    assert_eq!(d.conflicts, vec![vec![id(10), id(20), id(25)]]);
}

#[test]
fn concurrent_identical_decisions_are_not_a_conflict() {
    let mut events = vec![
        event(1, EventAction::Raised, &[], Y2026),
        event(2, EventAction::Accepted, &[1], Y2026),
        event(3, EventAction::Resolved, &[2], Y2026),
        event(10, EventAction::Closed, &[3], Y2026),
        event(11, EventAction::Closed, &[3], Y2026),
    ];
    let d = derive(&mut events);
    assert!(d.conflicts.is_empty());
    assert_eq!(d.status, S::Closed);
    assert_eq!(d.not_applied, vec![id(11)], "the second close has nothing left to close");
}

#[test]
fn two_volunteers_claiming_concurrently_is_a_conflict() {
    let mut events = vec![
        event(1, EventAction::Raised, &[], Y2026),
        event(10, EventAction::Claimed, &[1], Y2026),
        event(11, EventAction::Claimed, &[1], Y2026),
    ];
    let d = derive(&mut events);
    assert_eq!(d.conflicts, vec![vec![id(10), id(11)]]);
    assert_eq!(d.assignee, Some(member(10)));
}

#[test]
fn concurrent_progress_notes_are_not_a_conflict() {
    let mut events = vec![
        event(1, EventAction::Raised, &[], Y2026),
        event(2, EventAction::Accepted, &[1], Y2026),
        event(10, EventAction::Progress, &[2], Y2026),
        event(11, EventAction::Progress, &[2], Y2026),
        event(12, EventAction::Supervised, &[2], Y2026),
    ];
    let d = derive(&mut events);
    assert!(d.conflicts.is_empty());
    assert_eq!(d.status, S::InProgress);
    assert!(d.supervised);
}

#[test]
fn events_with_unknown_parents_or_cycles_still_derive() {
    // A forged log: 5 and 6 name each other; 7 names an event nobody has.
    let mut events = vec![
        event(1, EventAction::Raised, &[], Y2026),
        event(5, EventAction::Accepted, &[6], Y2026),
        event(6, EventAction::Progress, &[5], Y2026),
        event(7, EventAction::Cancelled, &[99], Y2026),
    ];
    let d = derive(&mut events);
    assert_eq!(events.len(), 4, "nothing dropped");
    assert_eq!(d.status, S::Cancelled);
}

#[test]
fn reopen_clears_the_satisfaction() {
    let mut events = vec![
        event(1, EventAction::Raised, &[], Y2026),
        event(2, EventAction::ResolvedOnSpot, &[1], Y2026),
        event(3, EventAction::FollowedUp { satisfaction: Satisfaction::Unsatisfied }, &[2], Y2026),
        event(4, EventAction::Reopened, &[3], Y2026),
    ];
    let d = derive(&mut events);
    assert_eq!(d.status, S::Reopened);
    assert_eq!(d.satisfaction, None);
}

/// A log that reaches `status` from `raised` (event ids 1..=n), and its last event's id.
fn reaching(status: S) -> (Vec<RequestEvent>, u128) {
    let path: Vec<EventAction> = match status {
        S::Raised => vec![],
        S::Accepted => vec![EventAction::Accepted],
        S::Discussing => vec![EventAction::Discussed],
        S::Dispatched => vec![dept()],
        S::Assigned => vec![EventAction::Claimed],
        S::InProgress => vec![EventAction::Accepted, EventAction::Progress],
        S::Resolved => vec![EventAction::ResolvedOnSpot],
        S::FollowedUp => vec![
            EventAction::ResolvedOnSpot,
            EventAction::FollowedUp { satisfaction: Satisfaction::Satisfied },
        ],
        S::Reopened => vec![EventAction::ResolvedOnSpot, EventAction::Reopened],
        S::Closed => vec![EventAction::ResolvedOnSpot, EventAction::Closed],
        S::Cancelled => vec![EventAction::Cancelled],
    };
    let mut events = vec![event(1, EventAction::Raised, &[], Y2026)];
    for (n, action) in path.into_iter().enumerate() {
        let n = n as u128 + 2;
        events.push(event(n, action, &[n - 1], Y2026 + n as i64));
    }
    let last = events.len() as u128;
    let mut check = events.clone();
    assert_eq!(derive(&mut check).status, status, "the prefix reaches {status}");
    (events, last)
}

/// Derives `events` and checks the rule: every event that did not apply is in a listed
/// conflict, and the result does not depend on the order the events are held in.
fn check_nothing_dropped(events: Vec<RequestEvent>, what: &str) {
    let mut forward = events.clone();
    let derived = derive(&mut forward);
    // Every event an event has seen, following `after` links.
    let seen = |start: EventId| -> BTreeSet<EventId> {
        let mut out = BTreeSet::new();
        let mut todo = vec![start];
        while let Some(e) = todo.pop() {
            for parent in events.iter().filter(|x| x.id == e).flat_map(|x| x.after.iter()) {
                if out.insert(*parent) {
                    todo.push(*parent);
                }
            }
        }
        out
    };
    for lost in &derived.not_applied {
        let lost_event = events.iter().find(|e| e.id == *lost).expect("in the log");
        // Not dropped: a concurrent twin took the same decision and applied.
        let twin = events.iter().any(|other| {
            other.id != *lost
                && !derived.not_applied.contains(&other.id)
                && !seen(*lost).contains(&other.id)
                && !seen(other.id).contains(lost)
                && other.action == lost_event.action
                && (other.action != EventAction::Claimed || other.by == lost_event.by)
        });
        assert!(
            twin || derived.conflicts.iter().any(|group| group.contains(lost)),
            "{what}: event {lost} was not applied and is in no conflict: {derived:?}"
        );
    }
    let mut backward: Vec<RequestEvent> = events.into_iter().rev().collect();
    assert_eq!(derive(&mut backward), derived, "{what}: the order of the log changes nothing");
}

#[test]
fn no_concurrent_pair_or_triple_of_actions_is_ever_dropped_silently() {
    let actions: Vec<EventAction> = actions().into_iter().map(|(_, a)| a).collect();
    for status in S::ALL {
        let (prefix, last) = reaching(status);
        for a in &actions {
            for b in &actions {
                // Two people act concurrently from the same state.
                let mut log = prefix.clone();
                log.push(event(100, a.clone(), &[last], Y2026 + 100));
                log.push(event(101, b.clone(), &[last], Y2019));
                check_nothing_dropped(log.clone(), &format!("{status}: {a:?} ∥ {b:?}"));
                for c in &actions {
                    // Three at once, and a chain of two against a third.
                    let mut three = log.clone();
                    three.push(event(102, c.clone(), &[last], Y2026 + 102));
                    check_nothing_dropped(three, &format!("{status}: {a:?} ∥ {b:?} ∥ {c:?}"));
                    let mut chain = prefix.clone();
                    chain.push(event(100, a.clone(), &[last], Y2026 + 100));
                    chain.push(event(101, b.clone(), &[100], Y2026 + 101));
                    chain.push(event(102, c.clone(), &[last], Y2026 + 102));
                    check_nothing_dropped(chain, &format!("{status}: ({a:?} → {b:?}) ∥ {c:?}"));
                }
            }
        }
    }
}

#[test]
fn an_accept_that_a_concurrent_cancel_made_moot_is_listed_for_review() {
    let mut events = vec![
        event(1, EventAction::Raised, &[], Y2026),
        event(2, EventAction::Cancelled, &[1], Y2026 + 2),
        event(3, EventAction::Accepted, &[1], Y2026 + 1),
    ];
    let derived = derive(&mut events);
    assert_eq!(derived.status, S::Cancelled);
    assert_eq!(derived.not_applied, vec![id(3)]);
    assert_eq!(derived.conflicts, vec![vec![id(2), id(3)]]);
    // A review that saw both settles it.
    events.push(event(4, EventAction::Reviewed { outcome: None }, &[2, 3], Y2026 + 3));
    assert!(derive(&mut events).conflicts.is_empty());
}
