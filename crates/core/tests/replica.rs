//! The local replica store on real SQLite files: persistence, incremental writes, indexes,
//! acknowledgement tracking, conflicts across replicas, bad input, damage and crashes.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use doorstep_core::CoreError;
use doorstep_core::conflict::{Conflict, HouseholdField};
use doorstep_core::ids::{Code, DeviceId, DocumentId, GridId, HouseholdId, MemberId};
use doorstep_core::lifecycle::RequestStatus;
use doorstep_core::model::{
    Address, EventAction, NewEvent, NewHousehold, NewRequest, NewResident, NewVisit, ResidentPatch,
    ResidentTag, Sex, Urgency, VisitKind,
};
use doorstep_core::store::{Enrolment, Replica, ReplicaOptions, RequestFilter, TimelineItem};
use doorstep_core::time::Timestamp;

const T0: i64 = 1_780_000_000_000;
const HOUR: i64 = 3_600_000;

fn address(grid: GridId, room: &str) -> Address {
    Address {
        community: "幸福社区".into(),
        grid,
        building: "3栋".into(),
        unit: "2单元".into(),
        room: room.into(),
    }
}

fn resident(name: &str, tags: &[ResidentTag]) -> NewResident {
    NewResident {
        name: name.into(),
        sex: Sex::Female,
        birth_year: Some(1948),
        phone: String::new(),
        tags: tags.to_vec(),
    }
}

fn household(grid: GridId, room: &str, residents: Vec<NewResident>) -> NewHousehold {
    NewHousehold { address: address(grid, room), residents, notes: String::new() }
}

fn visit(at: i64, notes: &str) -> NewVisit {
    NewVisit { at: Timestamp(at), kind: VisitKind::Routine, notes: notes.into(), needs: vec![] }
}

fn request(household: Option<HouseholdId>, grid: Option<GridId>, category: &str, at: i64) -> NewRequest {
    NewRequest {
        household,
        grid,
        category: category.into(),
        description: "楼道灯坏了\n三楼到五楼都不亮".into(),
        urgency: Urgency::Normal,
        at: Timestamp(at),
    }
}

fn event(action: EventAction, at: i64) -> NewEvent {
    NewEvent { action, note: String::new(), at: Timestamp(at) }
}

fn signed_in(replica: &mut Replica) -> MemberId {
    let member = MemberId::new_random();
    replica.set_member(member).expect("member set");
    member
}

#[test]
fn everything_survives_closing_and_reopening_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("replica.db");
    let grid = GridId::new_random();
    let (home, req, actor) = {
        let mut replica = Replica::open(&path).expect("open");
        signed_in(&mut replica);
        let home = replica
            .create_household(
                &household(grid, "501", vec![resident("王芳", &[ResidentTag::ElderlyAlone])]),
                Timestamp(T0),
            )
            .expect("create");
        replica.record_visit(home, &visit(T0 + HOUR, "身体还好，需要买药")).expect("visit");
        let req =
            replica.raise_request(&request(Some(home), None, "elderly_care", T0 + HOUR)).expect("raise");
        (home, req, replica.actor_id().clone())
    };
    let mut replica = Replica::open(&path).expect("reopen");
    assert_eq!(replica.actor_id(), &actor, "the device keeps its actor id");
    assert!(replica.member().is_some());
    let h = replica.household(home).expect("household");
    assert_eq!(h.residents[0].name, "王芳");
    assert_eq!(h.visits.len(), 1);
    assert_eq!(replica.request(req).expect("request").status(), RequestStatus::Raised);
    assert_eq!(replica.unsynced_change_count().expect("count"), 3, "create, visit, raise");
    let list = replica.households_in_grid(grid).expect("list");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].open_requests, 1);
    assert_eq!(list[0].tags, vec![ResidentTag::ElderlyAlone]);
}

#[test]
fn the_enrolment_keeps_the_servers_ca_and_older_enrolments_still_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("replica.db");
    let enrolment = Enrolment {
        server: "https://doorstep.county.example".into(),
        device: DeviceId::new_random(),
        token: "dst_secret".into(),
        member: MemberId::new_random(),
        server_ca_pem: Some("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into()),
        role: None,
    };
    Replica::open(&path).expect("open").set_enrolment(&enrolment).expect("enrol");
    let stored = Replica::open(&path).expect("reopen").enrolment().expect("read");
    assert_eq!(stored, Some(enrolment.clone()), "the CA certificate is remembered with the enrolment");

    // An enrolment written before the field existed has no CA and still reads.
    let older = serde_json::json!({
        "server": enrolment.server,
        "device": enrolment.device,
        "token": enrolment.token,
        "member": enrolment.member,
    });
    let older: Enrolment = serde_json::from_value(older).expect("an older enrolment reads");
    assert_eq!(older.server_ca_pem, None);
}

#[test]
fn recording_a_visit_stores_only_the_new_change() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = ReplicaOptions { compact_after_changes: 1_000, ..ReplicaOptions::default() };
    let mut replica = Replica::open_with(dir.path().join("r.db"), options).expect("open");
    signed_in(&mut replica);
    let grid = GridId::new_random();
    let residents = vec![resident("李建国", &[]), resident("张秀英", &[]), resident("李小明", &[])];
    let home = replica.create_household(&household(grid, "101", residents), Timestamp(T0)).expect("create");
    for i in 0..20 {
        replica
            .record_visit(home, &visit(T0 + i * HOUR, "日常走访，家中一切正常，老人精神状态良好。"))
            .expect("visit");
    }
    let full_save = replica.save_document(home.into()).expect("save").len() as u64;
    let before = replica.stored_document_bytes().expect("bytes");
    replica
        .record_visit(home, &visit(T0 + 30 * HOUR, "日常走访，家中一切正常，老人精神状态良好。"))
        .expect("visit");
    let grew = replica.stored_document_bytes().expect("bytes") - before;
    assert!(grew < full_save, "one visit added {grew} bytes; a full re-save is {full_save}");
    assert!(grew < 600, "one visit's change is a few hundred bytes, got {grew}");
}

#[test]
fn compaction_keeps_every_visit_and_every_pending_mark() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("r.db");
    let options = ReplicaOptions { compact_after_changes: 8, ..ReplicaOptions::default() };
    let mut replica = Replica::open_with(&path, options.clone()).expect("open");
    signed_in(&mut replica);
    let home = replica
        .create_household(&household(GridId::new_random(), "1", vec![]), Timestamp(T0))
        .expect("create");
    for i in 0..30 {
        replica.record_visit(home, &visit(T0 + i, "走访")).expect("visit");
    }
    drop(replica);
    let mut replica = Replica::open_with(&path, options).expect("reopen");
    assert_eq!(replica.household(home).expect("read").visits.len(), 30);
    assert_eq!(replica.unsynced_change_count().expect("count"), 31);
    assert_eq!(replica.unsynced_changes(home.into()).expect("changes").len(), 31);
}

#[test]
fn index_tables_answer_the_app_screens() {
    let mut replica = Replica::open_in_memory().expect("open");
    let me = signed_in(&mut replica);
    let grid = GridId::new_random();
    let other_grid = GridId::new_random();
    let never = replica
        .create_household(
            &household(grid, "101", vec![resident("赵大爷", &[ResidentTag::ElderlyAlone])]),
            Timestamp(T0),
        )
        .expect("h");
    let old = replica
        .create_household(
            &household(grid, "102", vec![resident("钱阿姨", &[ResidentTag::LowIncome])]),
            Timestamp(T0),
        )
        .expect("h");
    let recent = replica
        .create_household(
            &household(grid, "103", vec![resident("孙小红", &[ResidentTag::LeftBehindChild])]),
            Timestamp(T0),
        )
        .expect("h");
    replica
        .create_household(
            &household(other_grid, "9", vec![resident("周先生", &[ResidentTag::ElderlyAlone])]),
            Timestamp(T0),
        )
        .expect("h");
    replica.record_visit(old, &visit(T0 + HOUR, "旧的走访")).expect("v");
    replica.record_visit(recent, &visit(T0 + 5 * HOUR, "最近走访")).expect("v");
    replica.record_visit(recent, &visit(T0 + 2 * HOUR, "更早的走访")).expect("v");

    // Grid list: never visited first, then the longest unvisited.
    let list = replica.households_in_grid(grid).expect("list");
    let order: Vec<HouseholdId> = list.iter().map(|h| h.id).collect();
    assert_eq!(order, vec![never, old, recent]);
    assert_eq!(list[2].last_visit_at, Some(Timestamp(T0 + 5 * HOUR)));
    assert_eq!(list[0].display_name, "赵大爷");
    assert_eq!(list[0].address_line, "3栋 2单元 101");

    // By tag, across grids.
    assert_eq!(replica.households_with_tag(ResidentTag::ElderlyAlone).expect("tag").len(), 2);
    // A removed resident's tags no longer count.
    let rid = replica.household(never).expect("h").residents[0].id;
    replica.remove_resident(never, rid).expect("remove");
    assert_eq!(replica.households_with_tag(ResidentTag::ElderlyAlone).expect("tag").len(), 1);
    let old_resident = replica.household(old).expect("h").residents[0].id;
    let disabled = ResidentPatch { add_tags: vec![ResidentTag::Disabled], ..ResidentPatch::default() };
    replica.update_resident(old, old_resident, &disabled).expect("tag added");
    assert_eq!(replica.households_with_tag(ResidentTag::Disabled).expect("tag")[0].id, old);

    // Requests: open counts, status, category, assignee, overdue.
    let light = replica.raise_request(&request(Some(recent), None, "facility_repair", T0)).expect("r");
    let care = replica.raise_request(&request(Some(recent), None, "elderly_care", T0)).expect("r");
    let street = replica.raise_request(&request(None, Some(grid), "sanitation", T0)).expect("r");
    replica.add_request_event(care, &event(EventAction::Claimed, T0 + HOUR)).expect("claim");
    replica.add_request_event(street, &event(EventAction::ResolvedOnSpot, T0 + HOUR)).expect("on spot");
    let summary = replica.household_summary(recent).expect("summary");
    assert_eq!(summary.open_requests, 2);

    let by_status = replica
        .list_requests(&RequestFilter { statuses: vec![RequestStatus::Assigned], ..RequestFilter::default() })
        .expect("list");
    assert_eq!(by_status.iter().map(|r| r.id).collect::<Vec<_>>(), vec![care]);
    assert_eq!(by_status[0].assignee, Some(me));
    let mine =
        replica.list_requests(&RequestFilter { assignee: Some(me), ..RequestFilter::default() }).expect("l");
    assert_eq!(mine.len(), 1);
    let repairs = replica
        .list_requests(&RequestFilter {
            category: Some(Code::new("facility_repair").expect("code")),
            ..RequestFilter::default()
        })
        .expect("list");
    assert_eq!(repairs.iter().map(|r| r.id).collect::<Vec<_>>(), vec![light]);
    // Facility repair is due in 72 h, elderly care in 24 h; at T0 + 48 h only care is overdue.
    let overdue = replica
        .list_requests(&RequestFilter {
            overdue_at: Some(Timestamp(T0 + 48 * HOUR)),
            ..RequestFilter::default()
        })
        .expect("list");
    assert_eq!(overdue.iter().map(|r| r.id).collect::<Vec<_>>(), vec![care]);
    let open =
        replica.list_requests(&RequestFilter { open_only: true, ..RequestFilter::default() }).expect("l");
    assert_eq!(open.len(), 2, "the street request was resolved on the spot");

    // Timeline: newest first, visits and requests together.
    let timeline = replica.household_timeline(recent).expect("timeline");
    let kinds: Vec<(i64, bool)> =
        timeline.iter().map(|e| (e.at.millis(), matches!(e.item, TimelineItem::Visit { .. }))).collect();
    assert_eq!(kinds, vec![(T0 + 5 * HOUR, true), (T0 + 2 * HOUR, true), (T0, false), (T0, false)]);
    assert!(timeline.iter().any(
        |e| matches!(e.item, TimelineItem::Request { id, status: RequestStatus::Assigned } if id == care)
    ));
}

#[test]
fn bad_input_gets_a_typed_error_and_stores_nothing() {
    let mut replica = Replica::open_in_memory().expect("open");
    let grid = GridId::new_random();
    assert!(matches!(
        replica.create_household(&household(grid, "1", vec![]), Timestamp(T0)),
        Err(CoreError::NoMember)
    ));
    signed_in(&mut replica);
    let home = replica.create_household(&household(grid, "1", vec![]), Timestamp(T0)).expect("create");
    let count = replica.unsynced_change_count().expect("count");

    let missing = HouseholdId::new_random();
    assert!(matches!(replica.household(missing), Err(CoreError::UnknownHousehold(id)) if id == missing));
    assert!(matches!(replica.record_visit(missing, &visit(T0, "x")), Err(CoreError::UnknownHousehold(_))));
    assert!(matches!(replica.household_timeline(missing), Err(CoreError::UnknownHousehold(_))));
    // A request id is not a household.
    let req = replica.raise_request(&request(Some(home), None, "other", T0)).expect("raise");
    let count = count + 1;
    assert!(matches!(replica.household(req.into_household()), Err(CoreError::UnknownHousehold(_))));

    assert!(matches!(
        replica.add_resident(home, &resident("  ", &[]), Timestamp(T0)),
        Err(CoreError::EmptyText { field: "name" })
    ));
    assert!(matches!(
        replica.record_visit(home, &visit(T0, &"很".repeat(4_001))),
        Err(CoreError::TextTooLong { field: "notes", max: 4_000 })
    ));
    assert!(matches!(
        replica.add_resident(
            home,
            &NewResident { birth_year: Some(1700), ..resident("老人", &[]) },
            Timestamp(T0)
        ),
        Err(CoreError::InvalidValue { field: "birth_year", .. })
    ));
    assert!(matches!(
        replica.raise_request(&request(Some(home), None, "flying_cars", T0)),
        Err(CoreError::UnknownCategory(_))
    ));
    assert!(matches!(
        replica.add_request_event(req, &event(EventAction::Closed, T0)),
        Err(CoreError::InvalidTransition { from: RequestStatus::Raised, action: "close" })
    ));
    assert!(matches!(
        replica.add_request_event(
            req,
            &event(EventAction::Dispatched { department: Code::new("nowhere").expect("code") }, T0)
        ),
        Err(CoreError::InvalidValue { field: "department", .. })
    ));
    assert!(matches!(
        replica.review_request_conflict(req, None, "", Timestamp(T0)),
        Err(CoreError::NoSuchConflict(_))
    ));
    assert_eq!(replica.unsynced_change_count().expect("count"), count, "no refused edit was stored");
    assert!(replica.household(home).expect("read").residents.is_empty());
    assert_eq!(replica.request(req).expect("read").events.len(), 1);
}

trait IntoHousehold {
    fn into_household(self) -> HouseholdId;
}

impl IntoHousehold for doorstep_core::ids::RequestId {
    fn into_household(self) -> HouseholdId {
        DocumentId::from(self).as_household()
    }
}

/// Sends every unacknowledged change of `from` to `to`, as a server relay would, and
/// acknowledges them on `from`.
fn relay(from: &mut Replica, to: &mut Replica) {
    for id in from.documents_with_unsynced_changes().expect("dirty") {
        let changes = from.unsynced_changes(id).expect("changes");
        to.apply_remote(id, &changes.concat()).expect("apply");
        let heads = to.heads(id).expect("heads");
        from.acknowledge(id, &heads).expect("ack");
    }
}

#[test]
fn acknowledgement_tracks_exactly_what_the_server_stored() {
    let mut phone = Replica::open_in_memory().expect("open");
    signed_in(&mut phone);
    let mut server = Replica::open_in_memory().expect("open");
    let home =
        phone.create_household(&household(GridId::new_random(), "1", vec![]), Timestamp(T0)).expect("h");
    phone.record_visit(home, &visit(T0, "a")).expect("v");
    let heads_at_upload = phone.heads(home.into()).expect("heads");
    let upload = phone.unsynced_changes(home.into()).expect("changes");
    assert_eq!(upload.len(), 2);
    // A visit recorded while the upload is in flight must stay pending after the ack.
    phone.record_visit(home, &visit(T0 + 1, "b")).expect("v");
    assert_eq!(server.apply_remote(home.into(), &upload.concat()).expect("apply"), 2);
    assert_eq!(phone.acknowledge(home.into(), &heads_at_upload).expect("ack"), 2);
    assert_eq!(phone.unsynced_change_count().expect("count"), 1);
    assert_eq!(phone.unsynced_changes(home.into()).expect("changes").len(), 1);
    // Re-sending a stored change is harmless.
    assert_eq!(server.apply_remote(home.into(), &upload.concat()).expect("again"), 0);
    // Heads the phone does not know are ignored rather than trusted.
    let stranger = automerge::ChangeHash([9; 32]);
    assert_eq!(phone.acknowledge(home.into(), &[stranger]).expect("ack"), 0);
    assert_eq!(phone.unsynced_change_count().expect("count"), 1);
    relay(&mut phone, &mut server);
    assert_eq!(phone.unsynced_change_count().expect("count"), 0);
    assert_eq!(server.household(home).expect("read").visits.len(), 2);
    // A purge is refused while changes are pending and allowed once acknowledged.
    phone.record_visit(home, &visit(T0 + 2, "c")).expect("v");
    assert!(matches!(phone.purge(home.into()), Err(CoreError::UnsyncedChanges(_))));
    relay(&mut phone, &mut server);
    phone.purge(home.into()).expect("purge");
    assert!(matches!(phone.household(home), Err(CoreError::UnknownHousehold(_))));
    assert!(
        phone.households_in_grid(server.household(home).expect("h").address.grid).expect("list").is_empty()
    );
}

#[test]
fn concurrent_offline_edits_are_kept_as_conflicts_and_resolved_on_every_replica() {
    let mut a = Replica::open_in_memory().expect("open");
    let mut b = Replica::open_in_memory().expect("open");
    signed_in(&mut a);
    signed_in(&mut b);
    let grid = GridId::new_random();
    let home =
        a.create_household(&household(grid, "8", vec![resident("陈奶奶", &[])]), Timestamp(T0)).expect("h");
    let req = a.raise_request(&request(Some(home), None, "elderly_care", T0)).expect("r");
    relay(&mut a, &mut b);
    let rid = b.household(home).expect("b has it").residents[0].id;

    // Offline on both: different phone numbers, resolve-on-spot vs dispatch.
    a.update_resident(
        home,
        rid,
        &ResidentPatch { phone: Some("13800000001".into()), ..ResidentPatch::default() },
    )
    .expect("a");
    b.update_resident(
        home,
        rid,
        &ResidentPatch { phone: Some("13900000002".into()), ..ResidentPatch::default() },
    )
    .expect("b");
    a.add_request_event(req, &event(EventAction::ResolvedOnSpot, T0 + HOUR)).expect("a");
    let dispatch = EventAction::Dispatched { department: Code::new("civil_affairs").expect("code") };
    b.add_request_event(req, &event(dispatch, T0 + HOUR)).expect("b");
    relay(&mut a, &mut b);
    relay(&mut b, &mut a);

    for replica in [&mut a, &mut b] {
        let conflicts = replica.conflicts().expect("conflicts");
        assert_eq!(conflicts.len(), 2, "{conflicts:?}");
        assert!(conflicts.iter().any(|c| matches!(c, Conflict::Field(f)
            if f.field == HouseholdField::ResidentPhone(rid) && f.values == ["13800000001", "13900000002"])));
        assert!(conflicts.iter().any(|c| matches!(c, Conflict::Request(r) if r.events.len() == 2)));
        assert!(replica.household_summary(home).expect("s").has_conflict);
        let listed = replica.list_requests(&RequestFilter::default()).expect("list");
        assert!(listed[0].has_conflict);
    }
    assert_eq!(a.request(req).expect("a").status(), b.request(req).expect("b").status());

    // A supervisor on replica a resolves both; the resolution reaches b like any change.
    a.resolve_household_field(home, &HouseholdField::ResidentPhone(rid), "13900000002").expect("resolve");
    a.review_request_conflict(req, Some(RequestStatus::Resolved), "已现场解决", Timestamp(T0 + 2 * HOUR))
        .expect("review");
    relay(&mut a, &mut b);
    for replica in [&mut a, &mut b] {
        assert!(replica.conflicts().expect("conflicts").is_empty());
        assert_eq!(replica.household(home).expect("h").residents[0].phone, "13900000002");
        assert_eq!(replica.request(req).expect("r").status(), RequestStatus::Resolved);
    }
    assert!(matches!(
        a.resolve_household_field(home, &HouseholdField::ResidentPhone(rid), "1"),
        Err(CoreError::NoSuchConflict(_))
    ));
}

#[test]
fn received_bytes_are_checked_before_anything_is_stored() {
    let mut phone = Replica::open_in_memory().expect("open");
    signed_in(&mut phone);
    let home =
        phone.create_household(&household(GridId::new_random(), "1", vec![]), Timestamp(T0)).expect("h");
    let saved = phone.save_document(home.into()).expect("save");
    let mut other = Replica::open_in_memory().expect("open");
    assert!(matches!(
        other.apply_remote(home.into(), b"not automerge at all"),
        Err(CoreError::CorruptDocument { .. })
    ));
    // The same bytes offered under another id are refused: the document names itself.
    let wrong = DocumentId::new_random();
    assert!(matches!(other.apply_remote(wrong, &saved), Err(CoreError::CorruptDocument { .. })));
    assert!(other.documents().expect("docs").is_empty(), "nothing partial was stored");
    assert_eq!(other.apply_remote(home.into(), &saved).expect("apply"), 1);
    assert_eq!(other.household(home).expect("read").address.room, "1");
}

#[test]
fn a_damaged_document_is_reported_and_the_others_stay_usable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("r.db");
    let grid = GridId::new_random();
    let (good, bad) = {
        let mut replica = Replica::open(&path).expect("open");
        signed_in(&mut replica);
        let good = replica.create_household(&household(grid, "1", vec![]), Timestamp(T0)).expect("h");
        let bad = replica.create_household(&household(grid, "2", vec![]), Timestamp(T0)).expect("h");
        (good, bad)
    };
    {
        let conn = rusqlite::Connection::open(&path).expect("raw open");
        let n = conn
            .execute(
                "UPDATE changes SET bytes = x'00112233445566778899' WHERE doc_id = ?1",
                [bad.to_string()],
            )
            .expect("damage");
        assert_eq!(n, 1);
    }
    let mut replica = Replica::open(&path).expect("reopen");
    assert!(matches!(replica.household(bad), Err(CoreError::CorruptDocument { id, .. }) if id == bad.into()));
    assert!(matches!(replica.record_visit(bad, &visit(T0, "x")), Err(CoreError::CorruptDocument { .. })));
    replica.record_visit(good, &visit(T0, "仍可使用")).expect("the other household works");
    let report = replica.rebuild_indexes().expect("rebuild");
    assert_eq!(report.indexed, 1);
    assert_eq!(report.damaged.iter().map(|(id, _)| *id).collect::<Vec<_>>(), vec![DocumentId::from(bad)]);
    assert_eq!(replica.households_in_grid(grid).expect("list").len(), 1);
}

/// The writer half of the crash test: records visits until killed, printing each committed
/// count. Runs only when the parent test starts this binary with `DOORSTEP_CRASH_WRITER` set.
#[test]
fn crash_writer_child() {
    let Ok(path) = std::env::var("DOORSTEP_CRASH_WRITER") else {
        return;
    };
    let mut replica = Replica::open(&path).expect("open");
    let home = replica.households_in_grid(GridId::from_uuid(uuid::Uuid::nil())).expect("list")[0].id;
    for i in 0..100_000 {
        replica.record_visit(home, &visit(T0 + i, "断电测试")).expect("visit");
        println!("committed {}", i + 1);
    }
}

#[test]
fn a_killed_writer_leaves_every_committed_visit_and_a_readable_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("crash.db");
    let home = {
        let mut replica = Replica::open(&path).expect("open");
        signed_in(&mut replica);
        replica
            .create_household(&household(GridId::from_uuid(uuid::Uuid::nil()), "1", vec![]), Timestamp(T0))
            .expect("h")
    };
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "crash_writer_child", "--nocapture", "--test-threads=1"])
        .env("DOORSTEP_CRASH_WRITER", &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn writer");
    let stdout = child.stdout.take().expect("stdout");
    let mut committed = 0u64;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("line");
        if let Some(n) = line.strip_prefix("committed ") {
            committed = n.parse().expect("count");
            if committed >= 40 {
                break;
            }
        }
    }
    child.kill().expect("SIGKILL the writer mid-stream");
    child.wait().expect("reaped");
    assert!(committed >= 40, "the writer committed {committed} visits before the kill");

    let mut replica = Replica::open(&path).expect("reopen after the kill");
    let visits = replica.household(home).expect("readable").visits.len() as u64;
    assert!(visits >= committed, "{visits} visits on disk, {committed} were reported committed");
    assert_eq!(replica.unsynced_change_count().expect("count"), visits + 1, "every change still pending");
    let report = replica.rebuild_indexes().expect("rebuild");
    assert!(report.damaged.is_empty(), "{:?}", report.damaged);
}

#[test]
fn indexing_a_new_visit_alone_gives_the_same_rows_as_a_full_rebuild() {
    let mut replica = Replica::open_in_memory().expect("open");
    signed_in(&mut replica);
    let grid = GridId::new_random();
    let home = replica
        .create_household(&household(grid, "1", vec![resident("周奶奶", &[])]), Timestamp(T0))
        .expect("h");
    let other = replica.create_household(&household(grid, "2", vec![]), Timestamp(T0)).expect("h");
    replica.raise_request(&request(Some(home), None, "health", T0)).expect("request");
    for (n, at) in [(0, T0 + 5 * HOUR), (1, T0 + HOUR), (2, 1_560_000_000_000), (3, T0 + 9 * HOUR)] {
        replica.record_visit(home, &visit(at, &format!("  第{n}次走访\n第二行  "))).expect("visit");
    }
    replica.record_visit(other, &visit(T0, "")).expect("visit");
    let list = replica.households_in_grid(grid).expect("list");
    let timeline = replica.household_timeline(home).expect("timeline");
    assert_eq!(
        list.iter().find(|h| h.id == home).and_then(|h| h.last_visit_at),
        Some(Timestamp(T0 + 9 * HOUR))
    );
    let report = replica.rebuild_indexes().expect("rebuild");
    assert!(report.damaged.is_empty());
    assert_eq!(replica.households_in_grid(grid).expect("list"), list);
    assert_eq!(replica.household_timeline(home).expect("timeline"), timeline);
}
