//! The device side's rule for changes whose dependencies it lacks (PROTOCOL §5.2.4): the
//! replica refuses them and stores nothing, so the sync client asks for the document whole.
//! Automerge's own `load_incremental` would quietly queue such changes and leave the document
//! as it was, which a client in another language must not take for success.

use doorstep_core::CoreError;
use doorstep_core::ids::{GridId, MemberId};
use doorstep_core::model::{Address, NewHousehold, NewResident, NewVisit, Sex, VisitKind};
use doorstep_core::store::Replica;
use doorstep_core::time::Timestamp;

fn household(grid: GridId) -> NewHousehold {
    NewHousehold {
        address: Address {
            community: "幸福社区".into(),
            grid,
            building: "1".into(),
            unit: "1".into(),
            room: "101".into(),
        },
        residents: vec![NewResident {
            name: "陈奶奶".into(),
            sex: Sex::Female,
            birth_year: None,
            phone: String::new(),
            tags: vec![],
        }],
        notes: String::new(),
    }
}

fn visit(at: i64) -> NewVisit {
    NewVisit { at: Timestamp(at), kind: VisitKind::Routine, notes: format!("走访 {at}"), needs: vec![] }
}

#[test]
fn changes_that_depend_on_changes_the_replica_lacks_are_refused_and_store_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The phone that writes: a household and two visits, each a change building on the last.
    let mut writer = Replica::open(dir.path().join("writer.db")).expect("open");
    writer.set_member(MemberId::new_random()).expect("member");
    let home = writer.create_household(&household(GridId::new_random()), Timestamp(1)).expect("household");
    let whole = writer.save_document(home.into()).expect("save");
    let after_create = writer.heads(home.into()).expect("heads");
    writer.record_visit(home, &visit(2)).expect("visit");
    writer.record_visit(home, &visit(3)).expect("visit");
    let mut doc =
        automerge::AutoCommit::load(&writer.save_document(home.into()).expect("save")).expect("load");
    let changes = doc.get_changes(&after_create);
    assert_eq!(changes.len(), 2);
    let last_only = changes[1].raw_bytes().to_vec();

    // The reader holds the household as created, then is sent only the last visit's change.
    let mut reader = Replica::open(dir.path().join("reader.db")).expect("open");
    reader.apply_remote(home.into(), &whole).expect("the whole document applies");
    let before = reader.heads(home.into()).expect("heads");
    let refused = reader.apply_remote(home.into(), &last_only);
    assert!(matches!(refused, Err(CoreError::CorruptDocument { .. })), "{refused:?}");
    assert_eq!(reader.heads(home.into()).expect("heads"), before, "nothing stored");
    assert!(reader.household(home).expect("reads").visits.is_empty());

    // With the change it depends on, both apply.
    let both: Vec<u8> = changes.iter().flat_map(|c| c.raw_bytes().to_vec()).collect();
    assert_eq!(reader.apply_remote(home.into(), &both).expect("applies"), 2);
    assert_eq!(reader.household(home).expect("reads").visits.len(), 2);
}
