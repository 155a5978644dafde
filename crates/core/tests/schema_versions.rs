//! Documents and replica files written by every earlier schema version open in this build with
//! nothing lost, and fields a newer build wrote survive this one's edits and syncs.
//!
//! `tests/fixtures/v<N>/` holds what the build of schema version N wrote: `household.automerge`
//! and `request.automerge` (saved documents) and `replica.sqlite` (a device's replica file with
//! two changes still unacknowledged). The fixtures of a version are written once, by that
//! version's build, with `cargo test -p doorstep-core --test schema_versions -- --ignored
//! write_fixtures`, and never rewritten afterwards.

use std::path::PathBuf;

use automerge::{AutoCommit, ObjType, ROOT, ReadDoc, transaction::Transactable};
use doorstep_core::doc::{self, SCHEMA_VERSION};
use doorstep_core::ids::{DocumentId, GridId, HouseholdId, MemberId, RequestId};
use doorstep_core::model::{
    Address, EventAction, NewEvent, NewHousehold, NewRequest, NewResident, NewVisit, Sex, Urgency, VisitKind,
};
use doorstep_core::store::Replica;
use doorstep_core::time::Timestamp;

const GRID: &str = "6f1c7d2e-0a5b-4c3d-9e8f-112233445566";
const MEMBER: &str = "0b7e4f1a-2c3d-4e5f-8a9b-aabbccddeeff";

fn fixtures(version: u32) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(format!("v{version}"))
}

/// Every schema version that has fixtures: 1 up to this build's.
fn versions() -> std::ops::RangeInclusive<u32> {
    1..=SCHEMA_VERSION
}

fn grid() -> GridId {
    GRID.parse().expect("grid id")
}

/// The replica every version's build writes: a household with a resident and a visit, and a
/// request about it; the visit and the request's progress event are not yet acknowledged.
fn fill(replica: &mut Replica) -> (HouseholdId, RequestId) {
    replica.set_member(MEMBER.parse::<MemberId>().expect("member id")).expect("member");
    let home = replica
        .create_household(
            &NewHousehold {
                address: Address {
                    community: "幸福社区".into(),
                    grid: grid(),
                    building: "3栋".into(),
                    unit: "2单元".into(),
                    room: "501".into(),
                },
                residents: vec![NewResident {
                    name: "陈奶奶".into(),
                    sex: Sex::Female,
                    birth_year: Some(1941),
                    phone: "13800138000".into(),
                    tags: vec![doorstep_core::model::ResidentTag::ElderlyAlone],
                }],
                notes: "独居，女儿在外地".into(),
            },
            Timestamp(1_772_442_000_000),
        )
        .expect("household");
    let request = replica
        .raise_request(&NewRequest {
            household: Some(home),
            grid: None,
            category: "elderly_care".into(),
            description: "需要每周送餐".into(),
            urgency: Urgency::Normal,
            at: Timestamp(1_772_442_060_000),
        })
        .expect("request");
    let heads: Vec<(DocumentId, Vec<automerge::ChangeHash>)> = [DocumentId::from(home), request.into()]
        .into_iter()
        .map(|id| (id, replica.heads(id).expect("heads")))
        .collect();
    for (id, heads) in heads {
        replica.acknowledge(id, &heads).expect("acknowledged");
    }
    replica
        .record_visit(
            home,
            &NewVisit {
                at: Timestamp(1_772_445_600_000),
                kind: VisitKind::Care,
                notes: "血压正常".into(),
                needs: vec!["送餐".into()],
            },
        )
        .expect("visit");
    replica
        .add_request_event(
            request,
            &NewEvent {
                action: EventAction::Accepted,
                note: "已受理".into(),
                at: Timestamp(1_772_445_660_000),
            },
        )
        .expect("event");
    (home, request)
}

/// Writes this build's fixtures that do not exist yet (see the module docs); existing fixture
/// files are never rewritten.
#[test]
#[ignore = "writes fixture files; run by hand once per schema version"]
fn write_fixtures() {
    let dir = fixtures(SCHEMA_VERSION);
    std::fs::create_dir_all(&dir).expect("fixture dir");
    let write = |name: &str, bytes: Vec<u8>| {
        let path = dir.join(name);
        if !path.exists() {
            std::fs::write(path, bytes).expect("write fixture");
        }
    };
    let path = dir.join("replica.sqlite");
    let scratch = tempfile::tempdir().expect("tmp");
    let replica_path = if path.exists() { scratch.path().join("replica.sqlite") } else { path };
    let mut replica = Replica::open(&replica_path).expect("replica");
    let (home, request) = fill(&mut replica);
    replica.compact_all().expect("compact");
    write("household.automerge", replica.save_document(home.into()).expect("save"));
    write("request.automerge", replica.save_document(request.into()).expect("save"));
    if SCHEMA_VERSION >= 2 {
        // Schema 2: the same household registered twice, marked as one.
        let mut twice = NewHousehold {
            address: replica.household(home).expect("household").address.clone(),
            residents: vec![],
            notes: String::new(),
        };
        twice.address.room = "501室".into();
        let other = replica.create_household(&twice, Timestamp(1_772_446_000_000)).expect("household");
        replica.mark_same_household(home, other, Timestamp(1_772_446_100_000)).expect("mark");
        write("household_marked.automerge", replica.save_document(home.into()).expect("save"));
    }
}

fn check_household(h: &doorstep_core::model::Household, version: u32) {
    assert_eq!(h.schema, version, "the version that wrote it is kept");
    assert_eq!(h.address.grid, grid());
    assert_eq!(h.address.short_line(), "3栋 2单元 501");
    assert_eq!(h.notes, "独居，女儿在外地");
    assert_eq!(h.residents.len(), 1);
    assert_eq!(h.residents[0].name, "陈奶奶");
    assert_eq!(h.residents[0].birth_year, Some(1941));
    assert_eq!(h.visits.len(), 1);
    assert_eq!(h.visits[0].notes, "血压正常");
    assert_eq!(h.visits[0].needs, ["送餐"]);
}

fn check_request(r: &doorstep_core::model::Request, version: u32, home: HouseholdId) {
    assert_eq!(r.schema, version);
    assert_eq!(r.household, Some(home));
    assert_eq!(r.description, "需要每周送餐");
    assert_eq!(r.events.len(), 2);
    assert_eq!(r.status(), doorstep_core::lifecycle::RequestStatus::Accepted);
}

#[test]
fn documents_of_every_earlier_version_read_in_full() {
    for version in versions() {
        let dir = fixtures(version);
        let bytes = std::fs::read(dir.join("household.automerge")).expect("household fixture");
        let doc = AutoCommit::load(&bytes).expect("loads");
        let id: HouseholdId = doorstep_core::doc::stored_id(&doc).expect("id").parse().expect("household id");
        let household = doc::household::read(&doc, id).expect("reads");
        check_household(&household, version);
        let bytes = std::fs::read(dir.join("request.automerge")).expect("request fixture");
        let doc = AutoCommit::load(&bytes).expect("loads");
        let rid: RequestId = doorstep_core::doc::stored_id(&doc).expect("id").parse().expect("request id");
        check_request(&doc::request::read(&doc, rid).expect("reads"), version, id);
    }
}

#[test]
fn same_household_marks_of_every_version_since_2_read_back() {
    for version in 2..=SCHEMA_VERSION {
        let bytes = std::fs::read(fixtures(version).join("household_marked.automerge")).expect("fixture");
        let doc = AutoCommit::load(&bytes).expect("loads");
        let id: HouseholdId = doorstep_core::doc::stored_id(&doc).expect("id").parse().expect("id");
        let marks = doc::same_household::marks(&doc);
        assert_eq!(marks.len(), 1, "v{version}");
        assert!(marks[0].same && (marks[0].pair.0 == id || marks[0].pair.1 == id));
        let groups = doorstep_core::model::HouseholdGroups::resolve(marks.clone());
        assert_eq!(groups.group_of(id).len(), 2);
        check_household(&doc::household::read(&doc, id).expect("reads"), version);
    }
}

#[test]
fn a_replica_file_of_every_earlier_version_opens_with_nothing_lost() {
    for version in versions() {
        let tmp = tempfile::tempdir().expect("tmp");
        let path = tmp.path().join("replica.sqlite");
        std::fs::copy(fixtures(version).join("replica.sqlite"), &path).expect("copy fixture");
        let mut replica = Replica::open(&path).expect("an older replica opens");
        let docs = replica.documents().expect("documents");
        assert_eq!(docs.len(), 2, "v{version}");
        assert_eq!(replica.unsynced_change_count().expect("count"), 2, "unacknowledged work is kept");
        let home = replica.grids().expect("grids");
        assert_eq!(home, [grid()]);
        let summary = &replica.households_in_grid(grid()).expect("index")[0];
        let household = replica.household(summary.id).expect("household");
        check_household(&household, version);
        let request_id = docs
            .iter()
            .find(|(_, kind)| *kind == doorstep_core::doc::DocumentKind::Request)
            .map(|(id, _)| id.as_request())
            .expect("request");
        check_request(&replica.request(request_id).expect("request"), version, household.id);
        // The older document takes new edits.
        replica
            .record_visit(
                household.id,
                &NewVisit {
                    at: Timestamp(1_772_500_000_000),
                    kind: VisitKind::Routine,
                    notes: String::new(),
                    needs: vec![],
                },
            )
            .expect("a new visit");
        assert_eq!(replica.household(household.id).expect("household").visits.len(), 2);
    }
}

/// A field a newer build added, at the root and inside a visit, survives this build's edits,
/// its replica store, and a sync to another replica.
#[test]
fn fields_from_a_newer_build_survive_edits_and_sync() {
    let bytes = std::fs::read(fixtures(1).join("household.automerge")).expect("fixture");
    let mut newer = AutoCommit::load(&bytes).expect("loads");
    let id: HouseholdId = doorstep_core::doc::stored_id(&newer).expect("id").parse().expect("id");
    newer.put(ROOT, "schema", i64::from(SCHEMA_VERSION) + 7).expect("put");
    let extra = newer.put_object(ROOT, "energy_subsidy", ObjType::Map).expect("put");
    newer.put(&extra, "kind", "heating").expect("put");
    let (_, visits) = newer.get(ROOT, "visits").expect("get").expect("visits");
    let visit_key = newer.keys(&visits).next().expect("a visit");
    let (_, visit) = newer.get(&visits, visit_key.as_str()).expect("get").expect("visit");
    newer.put(&visit, "photo_ref", "img-123").expect("put");
    newer.commit();

    let mut a = Replica::open_in_memory().expect("replica");
    a.set_member(MEMBER.parse().expect("member")).expect("member");
    a.apply_remote(id.into(), &newer.save()).expect("an older build accepts the newer document");
    let read = a.household(id).expect("and reads it");
    assert_eq!(read.schema, SCHEMA_VERSION + 7);
    a.record_visit(
        id,
        &NewVisit {
            at: Timestamp(1_772_500_000_000),
            kind: VisitKind::Routine,
            notes: "旧版本记录".into(),
            needs: vec![],
        },
    )
    .expect("edits it");
    a.update_household(
        id,
        &doorstep_core::model::HouseholdPatch { notes: Some("改过备注".into()), ..Default::default() },
    )
    .expect("patches it");

    // Through the replica store and into a second replica, as a sync would carry it.
    let saved = a.save_document(id.into()).expect("save");
    let mut b = Replica::open_in_memory().expect("replica");
    b.apply_remote(id.into(), &saved).expect("applies");
    let round = AutoCommit::load(&b.save_document(id.into()).expect("save")).expect("loads");
    let (_, extra) = round.get(ROOT, "energy_subsidy").expect("get").expect("root field kept");
    assert_eq!(
        round.get(&extra, "kind").expect("get").map(|(v, _)| v.to_string()),
        Some("\"heating\"".into())
    );
    let (_, visits) = round.get(ROOT, "visits").expect("get").expect("visits");
    let (_, visit) = round.get(&visits, visit_key.as_str()).expect("get").expect("visit");
    assert!(round.get(&visit, "photo_ref").expect("get").is_some(), "nested field kept");
    let household = b.household(id).expect("reads");
    assert_eq!(household.visits.len(), 2);
    assert_eq!(household.notes, "改过备注");
    // The newer build's version mark is not lowered by an older build's edit.
    assert_eq!(household.schema, SCHEMA_VERSION + 7);
}

#[test]
fn documents_of_every_earlier_version_pass_the_servers_field_rules() {
    use doorstep_core::doc::DocumentKind;
    for version in versions() {
        let mut files = vec![
            ("household.automerge", DocumentKind::Household),
            ("request.automerge", DocumentKind::Request),
        ];
        if version >= 2 {
            files.push(("household_marked.automerge", DocumentKind::Household));
        }
        for (file, kind) in files {
            let bytes = std::fs::read(fixtures(version).join(file)).expect("fixture");
            let doc = AutoCommit::load(&bytes).expect("loads");
            let id: DocumentId = match kind {
                DocumentKind::Household => {
                    doc::stored_id(&doc).expect("id").parse::<HouseholdId>().expect("id").into()
                }
                DocumentKind::Request => {
                    doc::stored_id(&doc).expect("id").parse::<RequestId>().expect("id").into()
                }
            };
            assert_eq!(doc::check::document(&doc, id, kind), Ok(()), "v{version} {file}");
        }
    }
}
