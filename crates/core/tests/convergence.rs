//! Convergence of household and request documents across devices that work offline.
//!
//! The property: whatever each device records offline, and however devices sync in between,
//! once every device holds every change they all read the same household, the same request
//! with the same derived status, and the same conflicts; nothing anyone recorded is lost; and
//! the result does not depend on the order of the final merges (DESIGN.md §3). The stories at
//! the end walk through the cases the design names, one device at a time.

mod support;

use std::collections::BTreeSet;

use automerge::{AutoCommit, ChangeHash};
use doorstep_core::CoreError;
use doorstep_core::conflict::{FieldConflict, HouseholdField};
use doorstep_core::doc::{household, request};
use doorstep_core::ids::{EventId, HouseholdId, MemberId, RequestId, ResidentId, VisitId};
use doorstep_core::lifecycle::{RequestStatus, next_status};
use doorstep_core::model::{
    EventAction, Household, HouseholdPatch, NewEvent, NewResident, NewVisit, Request, ResidentPatch,
    Satisfaction, Sex, VisitKind,
};
use doorstep_core::time::Timestamp;
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::test_runner::TestCaseError;
use support::{Device, Ids, T2019, T2026, T2035, department, event, pair_mut, sync, sync_both};
use uuid::Uuid;

// ---- the operations a device may perform ----------------------------------------------------

/// One thing a worker does on their phone, or one partial sync.
#[derive(Clone, Debug)]
enum Op {
    Visit {
        kind: VisitKind,
        notes: String,
        at: Timestamp,
    },
    AddResident {
        name: String,
        phone: String,
        at: Timestamp,
    },
    EditNotes(String),
    EditRoom(String),
    EditPhone {
        resident: Index,
        phone: String,
    },
    /// Records an event chosen among the actions valid at the device's derived status.
    Act {
        choice: Index,
        note: String,
        at: Timestamp,
    },
    /// Tries an arbitrary action: it must be refused exactly when the rules forbid it.
    Attempt {
        choice: Index,
        at: Timestamp,
    },
    /// Settles one of the household conflicts the device sees, with one of its values.
    Resolve {
        conflict: Index,
        value: Index,
    },
    /// Receives every change of another device.
    Sync {
        from: Index,
    },
}

/// A device clock: mostly right, sometimes years off, sometimes nonsense.
fn clock() -> impl Strategy<Value = Timestamp> {
    const DAY: i64 = 86_400_000;
    prop_oneof![
        4 => (0..30 * DAY).prop_map(|d| Timestamp(T2026.0 + d)),
        2 => (0..365 * DAY).prop_map(|d| Timestamp(T2019.0 + d)),
        2 => (0..365 * DAY).prop_map(|d| Timestamp(T2035.0 + d)),
        1 => prop_oneof![Just(Timestamp(0)), Just(Timestamp(-1)), Just(Timestamp(i64::MAX))],
    ]
}

/// Free text, often one of a few phrases so that two devices type the same thing.
fn notes() -> impl Strategy<Value = String> {
    prop_oneof![
        select(vec!["", "独居，需常去看看", "煤气灶已更换", "door fixed", "  spaces around  "])
            .prop_map(str::to_owned),
        "\\PC{0,16}",
    ]
}

fn phone() -> impl Strategy<Value = String> {
    prop_oneof![
        select(vec!["", "13800000000", "139-1234-5678", "+86 (138) 0000 0000"]).prop_map(str::to_owned),
        "1[3-9][0-9]{9}",
    ]
}

fn room() -> impl Strategy<Value = String> {
    prop_oneof![select(vec!["501", "502", "1201"]).prop_map(str::to_owned), "[1-9][0-9]{2,3}"]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (select(VisitKind::ALL.to_vec()), notes(), clock())
            .prop_map(|(kind, notes, at)| Op::Visit { kind, notes, at }),
        1 => (select(vec!["李强", "张伟", "Chen Jing", "赵小红"]), phone(), clock())
            .prop_map(|(name, phone, at)| Op::AddResident { name: name.to_owned(), phone, at }),
        1 => notes().prop_map(Op::EditNotes),
        1 => room().prop_map(Op::EditRoom),
        2 => (any::<Index>(), phone()).prop_map(|(resident, phone)| Op::EditPhone { resident, phone }),
        6 => (any::<Index>(), notes(), clock()).prop_map(|(choice, note, at)| Op::Act { choice, note, at }),
        1 => (any::<Index>(), clock()).prop_map(|(choice, at)| Op::Attempt { choice, at }),
        2 => (any::<Index>(), any::<Index>()).prop_map(|(conflict, value)| Op::Resolve { conflict, value }),
        3 => any::<Index>().prop_map(|from| Op::Sync { from }),
    ]
}

/// One run: how many devices, what each does in turn (device picked by the index), the order
/// of the final merges, and the seed of every id.
#[derive(Clone, Debug)]
struct Scenario {
    devices: usize,
    steps: Vec<(Index, Op)>,
    final_order: Vec<usize>,
    seed: u64,
}

/// Three or four devices and at most 12 steps per device, interleaved across devices.
fn scenario() -> impl Strategy<Value = Scenario> {
    (3usize..=4).prop_flat_map(|devices| {
        (
            prop::collection::vec((any::<Index>(), op()), 0..=12 * devices),
            Just((0..devices).collect::<Vec<_>>()).prop_shuffle(),
            any::<u64>(),
        )
            .prop_map(move |(steps, final_order, seed)| Scenario {
                devices,
                steps,
                final_order,
                seed,
            })
    })
}

// ---- running a scenario ---------------------------------------------------------------------

/// Everything any device recorded, to check that nothing is lost.
#[derive(Default)]
struct Ledger {
    visits: BTreeSet<VisitId>,
    events: BTreeSet<EventId>,
    residents: BTreeSet<ResidentId>,
}

struct World {
    ids: Ids,
    household_id: HouseholdId,
    request_id: RequestId,
    members: Vec<MemberId>,
    devices: Vec<Device>,
    /// Each device's request as it last read it; `None` once a sync may have changed it.
    requests: Vec<Option<Request>>,
    ledger: Ledger,
}

fn ok<T>(result: doorstep_core::Result<T>, what: &str) -> Result<T, TestCaseError> {
    result.map_err(|e| TestCaseError::fail(format!("{what} failed: {e}")))
}

/// Every action a worker could pick, for the given members.
fn all_actions(members: &[MemberId]) -> Vec<EventAction> {
    let mut actions = vec![
        EventAction::Accepted,
        EventAction::Discussed,
        EventAction::Dispatched { department: department("community_office") },
        EventAction::Dispatched { department: department("civil_affairs") },
        EventAction::Claimed,
        EventAction::Progress,
        EventAction::Supervised,
        EventAction::Resolved,
        EventAction::ResolvedOnSpot,
        EventAction::FollowedUp { satisfaction: Satisfaction::Satisfied },
        EventAction::FollowedUp { satisfaction: Satisfaction::Unsatisfied },
        EventAction::Reopened,
        EventAction::Closed,
        EventAction::Cancelled,
        EventAction::Reviewed { outcome: None },
        EventAction::Reviewed { outcome: Some(RequestStatus::Dispatched) },
        EventAction::Reviewed { outcome: Some(RequestStatus::Resolved) },
    ];
    actions.extend(members.iter().map(|&assignee| EventAction::Assigned { assignee }));
    actions
}

/// Whether `add_event` must accept `action` on a request read as `current`.
fn allowed(current: &Request, action: &EventAction) -> bool {
    match action {
        EventAction::Reviewed { .. } => !current.derived.conflicts.is_empty(),
        EventAction::Raised | EventAction::Unknown { .. } => false,
        _ => next_status(current.status(), action).is_some(),
    }
}

impl World {
    fn new(scenario: &Scenario) -> Self {
        let mut ids = Ids::seeded(scenario.seed);
        let members: Vec<MemberId> = (0..scenario.devices).map(|_| ids.member()).collect();
        let mut origin = Device::origin(&mut ids, members[0], T2026);
        let mut devices = Vec::with_capacity(scenario.devices);
        for &member in &members[1..] {
            let fork = origin.device.fork(&mut ids, member);
            devices.push(fork);
        }
        devices.insert(0, origin.device);
        let ledger = Ledger {
            events: BTreeSet::from([origin.raised]),
            residents: BTreeSet::from([origin.resident]),
            ..Ledger::default()
        };
        World {
            ids,
            household_id: origin.household_id,
            request_id: origin.request_id,
            members,
            requests: vec![None; scenario.devices],
            devices,
            ledger,
        }
    }

    fn household(&self, device: usize) -> Result<Household, TestCaseError> {
        ok(household::read(&self.devices[device].household, self.household_id), "reading the household")
    }

    /// The device's request, read again only when it may have changed.
    fn request(&mut self, device: usize) -> Result<Request, TestCaseError> {
        if let Some(request) = &self.requests[device] {
            return Ok(request.clone());
        }
        let request =
            ok(request::read(&self.devices[device].request, self.request_id), "reading the request")?;
        self.requests[device] = Some(request.clone());
        Ok(request)
    }

    fn apply(&mut self, device: usize, op: &Op) -> Result<(), TestCaseError> {
        let (hid, rid) = (self.household_id, self.request_id);
        match op {
            Op::Visit { kind, notes, at } => {
                let vid = self.ids.visit();
                let visit = NewVisit { at: *at, kind: *kind, notes: notes.clone(), needs: Vec::new() };
                let d = &mut self.devices[device];
                ok(household::record_visit(&mut d.household, hid, vid, &visit, d.member), "record_visit")?;
                d.household.commit();
                self.ledger.visits.insert(vid);
            }
            Op::AddResident { name, phone, at } => {
                let resident = self.ids.resident();
                let new = NewResident {
                    name: name.clone(),
                    sex: Sex::Unknown,
                    birth_year: None,
                    phone: phone.clone(),
                    tags: Vec::new(),
                };
                let d = &mut self.devices[device];
                ok(household::add_resident(&mut d.household, hid, resident, &new, *at), "add_resident")?;
                d.household.commit();
                self.ledger.residents.insert(resident);
            }
            Op::EditNotes(notes) => {
                let patch = HouseholdPatch { notes: Some(notes.clone()), ..HouseholdPatch::default() };
                let d = &mut self.devices[device];
                ok(household::patch(&mut d.household, hid, &patch), "patching notes")?;
                d.household.commit();
            }
            Op::EditRoom(room) => {
                let patch = HouseholdPatch { room: Some(room.clone()), ..HouseholdPatch::default() };
                let d = &mut self.devices[device];
                ok(household::patch(&mut d.household, hid, &patch), "patching the room")?;
                d.household.commit();
            }
            Op::EditPhone { resident, phone } => {
                let residents = self.household(device)?.residents;
                let target = resident.get(&residents).id;
                let patch = ResidentPatch { phone: Some(phone.clone()), ..ResidentPatch::default() };
                let d = &mut self.devices[device];
                ok(household::update_resident(&mut d.household, hid, target, &patch), "update_resident")?;
                d.household.commit();
            }
            Op::Act { choice, note, at } => {
                let current = self.request(device)?;
                let valid: Vec<EventAction> =
                    all_actions(&self.members).into_iter().filter(|a| allowed(&current, a)).collect();
                if valid.is_empty() {
                    return Ok(());
                }
                let action = choice.get(&valid).clone();
                let new = NewEvent { action, note: note.clone(), at: *at };
                self.record_event(device, &current, &new)?;
            }
            Op::Attempt { choice, at } => {
                let current = self.request(device)?;
                let mut actions = all_actions(&self.members);
                actions.push(EventAction::Raised);
                let action = choice.get(&actions).clone();
                if allowed(&current, &action) {
                    self.record_event(device, &current, &event(action, *at))?;
                } else {
                    let eid = self.ids.event();
                    let d = &mut self.devices[device];
                    let heads = d.request.get_heads();
                    let refused =
                        request::add_event(&mut d.request, rid, eid, &event(action.clone(), *at), d.member);
                    prop_assert!(
                        matches!(
                            refused,
                            Err(CoreError::InvalidTransition { .. }
                                | CoreError::NoSuchConflict(_)
                                | CoreError::InvalidValue { field: "action", .. })
                        ),
                        "{action:?} at {:?} should be refused, got {refused:?}",
                        current.status()
                    );
                    prop_assert_eq!(d.request.commit(), None, "a refused event wrote to the document");
                    prop_assert_eq!(d.request.get_heads(), heads);
                }
            }
            Op::Resolve { conflict, value } => {
                let conflicts = household::conflicts(&self.devices[device].household, hid);
                if conflicts.is_empty() {
                    return Ok(());
                }
                let FieldConflict { field, values, .. } = conflict.get(&conflicts).clone();
                let chosen = value.get(&values).clone();
                let d = &mut self.devices[device];
                ok(household::resolve_field(&mut d.household, hid, &field, &chosen), "resolve_field")?;
                d.household.commit();
                let after = household::conflicts(&d.household, hid);
                prop_assert!(
                    after.iter().all(|c| c.field != field),
                    "{field} still in conflict after resolving it: {after:?}"
                );
            }
            Op::Sync { from } => {
                let from = from.index(self.devices.len() - 1);
                let from = if from >= device { from + 1 } else { from };
                sync(&mut self.devices, from, device);
                self.requests[device] = None;
            }
        }
        Ok(())
    }

    /// Records an allowed event and checks what the recording device then reads.
    fn record_event(
        &mut self,
        device: usize,
        current: &Request,
        new: &NewEvent,
    ) -> Result<(), TestCaseError> {
        let eid = self.ids.event();
        let rid = self.request_id;
        let d = &mut self.devices[device];
        let status = ok(request::add_event(&mut d.request, rid, eid, new, d.member), "add_event")?;
        d.request.commit();
        self.ledger.events.insert(eid);
        self.requests[device] = None;
        let after = self.request(device)?;
        prop_assert_eq!(after.status(), status, "status read back differs from the one add_event returned");
        prop_assert_eq!(
            &after.derived.heads,
            &vec![eid],
            "a new event must follow everything its device saw"
        );
        prop_assert_eq!(&after.events.last().map(|e| e.id), &Some(eid));
        prop_assert_eq!(&after.events.last().map(|e| e.after.clone()), &Some(current.derived.heads.clone()));
        if let EventAction::Reviewed { .. } = new.action {
            prop_assert!(
                after.derived.conflicts.is_empty(),
                "a review that saw every event left conflicts: {:?}",
                after.derived.conflicts
            );
        }
        Ok(())
    }
}

/// What a device reads once synced: compared across devices.
#[derive(Debug, PartialEq)]
struct View {
    household_heads: Vec<ChangeHash>,
    request_heads: Vec<ChangeHash>,
    household: Household,
    request: Request,
    field_conflicts: Vec<FieldConflict>,
}

fn view(device: &mut Device, hid: HouseholdId, rid: RequestId) -> Result<View, TestCaseError> {
    let mut household_heads = device.household.get_heads();
    household_heads.sort();
    let mut request_heads = device.request.get_heads();
    request_heads.sort();
    Ok(View {
        household_heads,
        request_heads,
        household: ok(household::read(&device.household, hid), "reading the household")?,
        request: ok(request::read(&device.request, rid), "reading the request")?,
        field_conflicts: household::conflicts(&device.household, hid),
    })
}

fn reloaded(doc: &mut AutoCommit) -> Result<AutoCommit, TestCaseError> {
    AutoCommit::load(&doc.save()).map_err(|e| TestCaseError::fail(format!("reloading a save: {e}")))
}

fn run(scenario: &Scenario) -> Result<(), TestCaseError> {
    let mut world = World::new(scenario);
    for (device, op) in &scenario.steps {
        let device = device.index(scenario.devices);
        world.apply(device, op)?;
    }
    let (hid, rid) = (world.household_id, world.request_id);

    // A second, independent copy of the devices, merged later in the reverse order.
    let mut untouched = world.devices.clone();

    let order = &scenario.final_order;
    let hub = order[0];
    for &other in &order[1..] {
        sync(&mut world.devices, other, hub);
    }
    for &other in &order[1..] {
        sync(&mut world.devices, hub, other);
    }

    let reference = view(&mut world.devices[hub], hid, rid)?;
    for (n, device) in world.devices.iter_mut().enumerate().filter(|(n, _)| *n != hub) {
        let seen = view(device, hid, rid)?;
        prop_assert_eq!(&seen, &reference, "device {} differs from device {}", n, hub);
    }

    // Nothing recorded anywhere is lost, and each record appears once.
    let visits: Vec<VisitId> = reference.household.visits.iter().map(|v| v.id).collect();
    prop_assert_eq!(visits.len(), world.ledger.visits.len());
    prop_assert_eq!(&visits.into_iter().collect::<BTreeSet<_>>(), &world.ledger.visits);
    let residents: Vec<ResidentId> = reference.household.residents.iter().map(|r| r.id).collect();
    prop_assert_eq!(residents.len(), world.ledger.residents.len());
    prop_assert_eq!(&residents.into_iter().collect::<BTreeSet<_>>(), &world.ledger.residents);
    let events: Vec<EventId> = reference.request.events.iter().map(|e| e.id).collect();
    prop_assert_eq!(events.len(), world.ledger.events.len());
    prop_assert_eq!(&events.iter().copied().collect::<BTreeSet<_>>(), &world.ledger.events);

    // The log is in causal order: every event comes after the events its device had seen.
    for (position, event) in reference.request.events.iter().enumerate() {
        for parent in &event.after {
            let parent_position = events.iter().position(|e| e == parent);
            prop_assert!(
                parent_position.is_some_and(|p| p < position),
                "event {} placed before its predecessor {}",
                event.id,
                parent
            );
        }
    }

    // The merge does not depend on the order: merge the untouched copies the other way round.
    let reverse: Vec<usize> = order.iter().rev().copied().collect();
    let (first, rest) = (reverse[0], &reverse[1..]);
    for &other in rest {
        let (into, from) = pair_mut(&mut untouched, first, other);
        into.sync_from(from);
    }
    let reversed = view(&mut untouched[first], hid, rid)?;
    prop_assert_eq!(&reversed, &reference, "merging in reverse order gave a different result");

    // What was saved reads back the same.
    let hub_device = &mut world.devices[hub];
    let household_back = reloaded(&mut hub_device.household)?;
    let request_back = reloaded(&mut hub_device.request)?;
    prop_assert_eq!(
        &ok(household::read(&household_back, hid), "reading a reloaded household")?,
        &reference.household
    );
    prop_assert_eq!(
        &ok(request::read(&request_back, rid), "reading a reloaded request")?,
        &reference.request
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: ProptestConfig::default().cases.max(256),
        ..ProptestConfig::default()
    })]

    #[test]
    fn devices_converge_whatever_they_did_offline(scenario in scenario()) {
        run(&scenario)?;
    }
}

// ---- stories --------------------------------------------------------------------------------

/// An event id whose order among the others the story decides.
fn ordered_event(n: u128) -> EventId {
    EventId::from_uuid(Uuid::from_u128(n))
}

#[test]
fn a_resolve_on_the_spot_and_an_offline_dispatch_are_both_kept_until_a_supervisor_reviews() {
    let mut ids = Ids::seeded(1);
    let (worker, supervisor) = (ids.member(), ids.member());
    let mut origin = Device::origin(&mut ids, worker, T2026);
    let rid = origin.request_id;
    let supervisor_phone = origin.device.fork(&mut ids, supervisor);
    let mut devices = vec![origin.device, supervisor_phone];
    let (on_spot, dispatch) = (ordered_event(1), ordered_event(2));

    // Offline: the worker fixes the light on the spot; the supervisor dispatches it.
    let d = &mut devices[0];
    request::add_event(&mut d.request, rid, on_spot, &event(EventAction::ResolvedOnSpot, T2026), d.member)
        .expect("a raised request can be resolved on the spot");
    d.request.commit();
    let d = &mut devices[1];
    let dispatched = EventAction::Dispatched { department: department("housing_construction") };
    request::add_event(&mut d.request, rid, dispatch, &event(dispatched, T2026), d.member)
        .expect("a raised request can be dispatched");
    d.request.commit();

    sync_both(&mut devices, 0, 1);
    let worker_view = request::read(&devices[0].request, rid).expect("read");
    let supervisor_view = request::read(&devices[1].request, rid).expect("read");
    assert_eq!(worker_view, supervisor_view);
    assert_eq!(worker_view.status(), RequestStatus::Resolved, "concurrent events apply in id order");
    assert_eq!(worker_view.derived.not_applied, vec![dispatch], "the dispatch came too late to apply");
    assert_eq!(worker_view.derived.conflicts, vec![vec![on_spot, dispatch]]);
    let conflicts = request::conflicts(&worker_view);
    assert_eq!(conflicts.len(), 1);
    assert_eq!(conflicts[0].events.iter().map(|e| e.id).collect::<Vec<_>>(), vec![on_spot, dispatch]);

    // The supervisor, who has seen both, decides it goes to the department after all.
    let review = ordered_event(3);
    let d = &mut devices[1];
    let reviewed = EventAction::Reviewed { outcome: Some(RequestStatus::Dispatched) };
    request::add_event(&mut d.request, rid, review, &event(reviewed, T2026), d.member).expect("review");
    d.request.commit();
    assert!(request::read(&devices[1].request, rid).expect("read").derived.conflicts.is_empty());
    assert_eq!(request::read(&devices[0].request, rid).expect("read").derived.conflicts.len(), 1);

    sync_both(&mut devices, 1, 0);
    for device in &devices {
        let request = request::read(&device.request, rid).expect("read");
        assert!(request.derived.conflicts.is_empty());
        assert_eq!(request.status(), RequestStatus::Dispatched);
    }
}

#[test]
fn two_phone_numbers_typed_offline_are_both_kept_until_someone_chooses() {
    let mut ids = Ids::seeded(2);
    let (first, second) = (ids.member(), ids.member());
    let mut origin = Device::origin(&mut ids, first, T2026);
    let (hid, resident) = (origin.household_id, origin.resident);
    let second_phone = origin.device.fork(&mut ids, second);
    let mut devices = vec![origin.device, second_phone];

    for (device, number) in [(0, "13911112222"), (1, "13733334444")] {
        let patch = ResidentPatch { phone: Some(number.into()), ..ResidentPatch::default() };
        let d = &mut devices[device];
        household::update_resident(&mut d.household, hid, resident, &patch).expect("valid phone");
        d.household.commit();
    }

    sync_both(&mut devices, 0, 1);
    let expected = vec![FieldConflict {
        household: hid,
        field: HouseholdField::ResidentPhone(resident),
        values: vec!["13733334444".into(), "13911112222".into()],
    }];
    for device in &devices {
        assert_eq!(household::conflicts(&device.household, hid), expected);
    }
    let shown = household::read(&devices[0].household, hid).expect("read");
    assert_eq!(shown, household::read(&devices[1].household, hid).expect("read"));

    // The second worker phones the resident and keeps the first number.
    let field = HouseholdField::ResidentPhone(resident);
    let d = &mut devices[1];
    household::resolve_field(&mut d.household, hid, &field, "13911112222").expect("resolve");
    d.household.commit();
    assert!(household::conflicts(&devices[1].household, hid).is_empty());
    assert_eq!(household::conflicts(&devices[0].household, hid), expected, "not synced yet");

    sync_both(&mut devices, 1, 0);
    for device in &devices {
        assert!(household::conflicts(&device.household, hid).is_empty());
        let household = household::read(&device.household, hid).expect("read");
        assert_eq!(household.residents[0].phone, "13911112222");
    }
}

#[test]
fn a_phone_set_to_2019_records_after_a_2026_event_and_stays_after_it() {
    let mut ids = Ids::seeded(3);
    let (worker, volunteer) = (ids.member(), ids.member());
    let mut origin = Device::origin(&mut ids, worker, T2026);
    let (hid, rid) = (origin.household_id, origin.request_id);
    let volunteer_phone = origin.device.fork(&mut ids, volunteer);
    let mut devices = vec![origin.device, volunteer_phone];
    // The 2019 event gets the smaller id: if time or id decided the order, it would go first.
    let (accepted, resolved) = (ordered_event(20), ordered_event(10));

    let d = &mut devices[0];
    request::add_event(&mut d.request, rid, accepted, &event(EventAction::Accepted, T2026), d.member)
        .expect("accept");
    d.request.commit();
    sync(&mut devices, 0, 1);

    // The volunteer's phone thinks it is 2019; it has seen the acceptance and resolves.
    let d = &mut devices[1];
    request::add_event(&mut d.request, rid, resolved, &event(EventAction::Resolved, T2019), d.member)
        .expect("an accepted request can be resolved");
    d.request.commit();
    let visit =
        NewVisit { at: T2019, kind: VisitKind::FollowUp, notes: "灯已修好".into(), needs: Vec::new() };
    let visit_id = ids.visit();
    household::record_visit(&mut d.household, hid, visit_id, &visit, d.member).expect("visit");
    d.household.commit();

    sync_both(&mut devices, 1, 0);
    for device in &devices {
        let request = request::read(&device.request, rid).expect("read");
        let order: Vec<EventId> = request.events.iter().map(|e| e.id).collect();
        assert_eq!(order, vec![origin.raised, accepted, resolved]);
        assert_eq!(request.events[2].at, T2019, "the wrong device time is kept for people to see");
        assert_eq!(request.status(), RequestStatus::Resolved);
        assert!(request.derived.not_applied.is_empty() && request.derived.conflicts.is_empty());
        let household = household::read(&device.household, hid).expect("read");
        assert_eq!(household.visits.iter().map(|v| v.id).collect::<Vec<_>>(), vec![visit_id]);
    }
}
