//! A store the app cannot damage: one handle per file (in this process and from another), a
//! key of the right length, broken files reported as what they are, a damaged document set
//! aside and rebuilt from the server's copy, and a sign-out that deletes the files.

use std::path::Path;
use std::process::Command;

use doorstep_core::CoreError;
use doorstep_core::ids::{DocumentId, GridId, MemberId};
use doorstep_core::model::{Address, NewHousehold, NewResident, NewVisit, Sex, VisitKind};
use doorstep_core::store::{Replica, ReplicaOptions};
use doorstep_core::sync::client::{self, ClientLimits};
use doorstep_core::sync::frame::{self, DEFAULT_MAX_FRAME_BYTES};
use doorstep_core::sync::message::{ClientMessage, doc_id};
use doorstep_core::time::Timestamp;

const KEY: &[u8; 32] = b"a 32-byte key from the keystore!";
const CHILD: &str = "DOORSTEP_TEST_CHILD_OPENS";

fn household(grid: GridId, name: &str) -> NewHousehold {
    NewHousehold {
        address: Address {
            community: "幸福社区".into(),
            grid,
            building: "3栋".into(),
            unit: String::new(),
            room: "101".into(),
        },
        residents: vec![NewResident {
            name: name.into(),
            sex: Sex::Female,
            birth_year: Some(1941),
            phone: String::new(),
            tags: vec![],
        }],
        notes: String::new(),
    }
}

fn visit(notes: &str) -> NewVisit {
    NewVisit {
        at: Timestamp(1_700_000_100_000),
        kind: VisitKind::Routine,
        notes: notes.into(),
        needs: vec![],
    }
}

fn open(path: &Path) -> doorstep_core::Result<Replica> {
    Replica::open_encrypted(path, KEY, ReplicaOptions::default())
}

#[test]
fn a_second_open_of_the_same_file_is_refused_until_the_first_is_dropped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("phone.db");
    let mut first = open(&path).expect("open");
    first.set_member(MemberId::new_random()).expect("member");
    assert!(matches!(open(&path), Err(CoreError::AlreadyOpen { .. })));
    assert!(matches!(Replica::open(&path), Err(CoreError::AlreadyOpen { .. })));
    let link = dir.path().join("link.db");
    std::os::unix::fs::symlink(&path, &link).expect("link");
    assert!(matches!(open(&link), Err(CoreError::AlreadyOpen { .. })));
    // A refused open leaves the first handle's claim alone.
    assert!(matches!(open(&path), Err(CoreError::AlreadyOpen { .. })));
    drop(first);
    let again = open(&path).expect("free once the first is dropped");
    assert!(again.member().is_some());
}

/// Run as a child process by the next test: tries to open the file it is given.
#[test]
fn child_process_opens_the_file_it_is_given() {
    let Ok(path) = std::env::var(CHILD) else { return };
    match open(Path::new(&path)) {
        Ok(_) => println!("CHILD:OPENED"),
        Err(CoreError::AlreadyOpen { .. }) => println!("CHILD:ALREADY_OPEN"),
        Err(e) => println!("CHILD:{e}"),
    }
}

fn child_opens(path: &Path) -> String {
    let out = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "child_process_opens_the_file_it_is_given", "--nocapture", "--test-threads=1"])
        .env(CHILD, path)
        .output()
        .expect("child runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    stdout
        .lines()
        .find_map(|l| l.split_once("CHILD:").map(|(_, said)| said.trim()))
        .unwrap_or("nothing")
        .to_owned()
}

#[test]
fn another_process_cannot_open_an_open_replica() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("phone.db");
    let first = open(&path).expect("open");
    assert_eq!(child_opens(&path), "ALREADY_OPEN");
    drop(first);
    assert_eq!(child_opens(&path), "OPENED");
}

#[test]
fn a_new_file_takes_a_key_of_exactly_32_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("phone.db");
    for key in [&b""[..], b"short", b"thirty-three bytes are one too many"] {
        let refused = Replica::open_encrypted(&path, key, ReplicaOptions::default());
        assert!(matches!(refused, Err(CoreError::InvalidValue { field: "key", .. })), "{key:?}");
        assert!(!path.exists(), "nothing was created");
    }
    let mut replica = open(&path).expect("32 bytes");
    assert!(matches!(replica.rekey(b"short"), Err(CoreError::InvalidValue { field: "key", .. })));
}

/// A replica file of several pages, closed.
fn replica_file(path: &Path) -> Vec<u8> {
    let mut replica = open(path).expect("open");
    replica.set_member(MemberId::new_random()).expect("member");
    let grid = GridId::new_random();
    for n in 0..40 {
        let id =
            replica.create_household(&household(grid, &format!("住户{n}")), Timestamp(0)).expect("household");
        replica.record_visit(id, &visit(&"走访".repeat(400))).expect("visit");
    }
    drop(replica);
    std::fs::read(path).expect("read")
}

fn rewrite(path: &Path, pristine: &[u8], at: usize, bytes: &[u8]) {
    let mut copy = pristine.to_vec();
    copy[at..at + bytes.len()].copy_from_slice(bytes);
    std::fs::write(path, copy).expect("write");
}

#[test]
fn broken_files_are_reported_as_what_they_are() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("phone.db");
    let pristine = replica_file(&path);
    assert!(pristine.len() >= 8 * 4096);

    let wrong =
        Replica::open_encrypted(&path, b"another key of thirty-two bytes!", ReplicaOptions::default());
    assert!(matches!(wrong, Err(CoreError::WrongKey)), "{:?}", wrong.err());

    rewrite(&path, &pristine, 100, &[0x5a; 200]);
    assert!(matches!(open(&path), Err(CoreError::DamagedFile { .. })), "first page");
    rewrite(&path, &pristine, 0, &[0; 100]);
    assert!(matches!(open(&path), Err(CoreError::DamagedFile { .. })), "zeroed header");
    std::fs::write(&path, &pristine[..pristine.len() / 2 + 1000]).expect("truncate");
    assert!(matches!(open(&path), Err(CoreError::DamagedFile { .. })), "truncated");
    std::fs::write(&path, (0..3 * 4096 + 123).map(|i| (i * 7919 % 251) as u8).collect::<Vec<_>>())
        .expect("random");
    assert!(matches!(open(&path), Err(CoreError::NotAReplica { .. })), "random bytes");
    std::fs::remove_file(&path).expect("remove");
    {
        let plain = rusqlite::Connection::open(&path).expect("plain");
        plain.execute_batch("CREATE TABLE notes (text TEXT);").expect("table");
    }
    assert!(matches!(open(&path), Err(CoreError::NotAReplica { .. })), "plain SQLite");
    assert!(
        matches!(Replica::open(&path), Err(CoreError::NotAReplica { .. })),
        "plain SQLite, unencrypted open"
    );

    // A page in the middle: the file opens, the check finds it, reads that need it say so.
    let middle = (pristine.len() / 4096 / 2) * 4096 + 500;
    rewrite(&path, &pristine, middle, &[0xa5; 64]);
    let mut replica = open(&path).expect("opens: the first pages are fine");
    let report = replica.check_integrity().expect("check");
    assert!(!report.ok && !report.problems.is_empty(), "{report:?}");
    for (id, _) in replica.documents().unwrap_or_default() {
        if let Err(e) = replica.household(id.as_household()) {
            assert!(matches!(e, CoreError::DamagedFile { .. } | CoreError::CorruptDocument { .. }), "{e}");
        }
    }
    drop(replica);
    std::fs::write(&path, &pristine).expect("restore");
    assert!(open(&path).expect("open").check_integrity().expect("check").ok);
}

#[test]
fn a_damaged_document_is_set_aside_and_rebuilt_from_the_servers_copy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("phone.db");
    let mut replica = Replica::open(&path).expect("open");
    replica.set_member(MemberId::new_random()).expect("member");
    let grid = GridId::new_random();
    let damaged = replica.create_household(&household(grid, "钱奶奶"), Timestamp(0)).expect("household");
    let healthy = replica.create_household(&household(grid, "孙爷爷"), Timestamp(0)).expect("household");
    let server_copy = replica.save_document(damaged.into()).expect("save");
    for id in [damaged, healthy] {
        let heads = replica.heads(id.into()).expect("heads");
        replica.acknowledge(id.into(), &heads).expect("ack");
    }
    replica.record_visit(damaged, &visit("血压偏高")).expect("visit");
    replica.record_visit(healthy, &visit("一切正常")).expect("visit");
    drop(replica);
    {
        let conn = rusqlite::Connection::open(&path).expect("sqlite");
        let first = conn
            .execute(
                "UPDATE changes SET bytes = zeroblob(length(bytes)) WHERE seq =
                   (SELECT min(seq) FROM changes WHERE doc_id = ?1)",
                [damaged.to_string()],
            )
            .expect("damage");
        assert_eq!(first, 1);
    }
    let mut replica = Replica::open(&path).expect("open");
    assert!(matches!(replica.household(damaged), Err(CoreError::CorruptDocument { .. })));

    // The next round leaves it out, uploads the rest and asks for the server's copy.
    let (request, _round) =
        client::begin_round(&mut replica, &ClientLimits::default(), true, &[]).expect("a round despite it");
    let ClientMessage::Sync(request) =
        frame::decode_client(&request, DEFAULT_MAX_FRAME_BYTES).expect("frame")
    else {
        panic!("not a sync request")
    };
    let uploaded: Vec<DocumentId> = request.uploads.iter().map(|u| doc_id(&u.doc)).collect();
    assert_eq!(uploaded, vec![DocumentId::from(healthy)]);
    assert_eq!(request.missing.iter().map(doc_id).collect::<Vec<_>>(), vec![DocumentId::from(damaged)]);
    assert_eq!(replica.quarantined().expect("list")[0].id, DocumentId::from(damaged));

    // The server's copy rebuilds it, with the local visit that could still be read.
    let recovered = replica.recover_document(damaged.into(), &server_copy).expect("recover");
    assert_eq!((recovered.kept_local_changes, recovered.lost_local_changes), (1, 0));
    let read = replica.household(damaged).expect("reads again");
    assert_eq!(read.visits.len(), 1);
    assert!(replica.quarantined().expect("list").is_empty());
    assert_eq!(replica.unsynced_change_count().expect("count"), 2);
}

#[test]
fn wipe_refuses_unsynced_work_unless_forced_and_deletes_the_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("phone.db");
    let mut replica = open(&path).expect("open");
    replica.set_member(MemberId::new_random()).expect("member");
    replica.create_household(&household(GridId::new_random(), "周大爷"), Timestamp(0)).expect("household");
    assert!(matches!(replica.wipe(false), Err(CoreError::UnsyncedWork { changes: 1 })));
    assert_eq!(replica.documents().expect("docs").len(), 1);
    replica.wipe(true).expect("forced");
    assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0, "no file left beside it");
    assert!(replica.member().is_none() && replica.documents().expect("docs").is_empty());
    let fresh = open(&path).expect("the path is free");
    assert!(fresh.member().is_none());
}
