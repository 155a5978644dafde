//! The encrypted device store (SQLCipher): a resident's name never reaches the disk in the
//! clear, a wrong key changes nothing, keys rotate, and a purge leaves no copy behind.

use std::path::Path;

use doorstep_core::CoreError;
use doorstep_core::ids::{GridId, MemberId};
use doorstep_core::model::{Address, NewHousehold, NewResident, Sex};
use doorstep_core::store::{Replica, ReplicaOptions};
use doorstep_core::time::Timestamp;

const NAME: &str = "Zhang Guilan 张桂兰 7f3a";

fn household(grid: GridId) -> NewHousehold {
    NewHousehold {
        address: Address {
            community: "幸福社区".into(),
            grid,
            building: "3栋".into(),
            unit: String::new(),
            room: "101".into(),
        },
        residents: vec![NewResident {
            name: NAME.into(),
            sex: Sex::Female,
            birth_year: Some(1941),
            phone: "13800000001".into(),
            tags: vec![],
        }],
        notes: String::new(),
    }
}

/// Every byte of the replica's files (database, write-ahead log, shared memory).
fn file_bytes(dir: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).expect("dir") {
        all.extend(std::fs::read(entry.expect("entry").path()).expect("read"));
    }
    all
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn a_residents_name_is_not_on_disk_in_the_clear() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("phone.db");
    let key = b"a 32-byte key from the keystore!";
    {
        let mut replica = Replica::open_encrypted(&path, key, ReplicaOptions::default()).expect("open");
        replica.set_member(MemberId::new_random()).expect("member");
        replica.create_household(&household(GridId::new_random()), Timestamp(0)).expect("household");
        // While open (write-ahead log in use) and after closing, nothing readable.
        assert!(!contains(&file_bytes(dir.path()), NAME.as_bytes()));
    }
    let bytes = file_bytes(dir.path());
    assert!(!contains(&bytes, NAME.as_bytes()), "the name is encrypted");
    assert!(!contains(&bytes, b"SQLite format 3"), "not even the SQLite header is readable");

    // The same write without encryption does put the name on disk: the check above can fail.
    let plain_dir = tempfile::tempdir().expect("tempdir");
    {
        let mut plain = Replica::open(plain_dir.path().join("plain.db")).expect("open");
        plain.set_member(MemberId::new_random()).expect("member");
        plain.create_household(&household(GridId::new_random()), Timestamp(0)).expect("household");
    }
    assert!(contains(&file_bytes(plain_dir.path()), NAME.as_bytes()));
}

#[test]
fn a_wrong_key_is_a_clear_error_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("phone.db");
    let home = {
        let mut replica =
            Replica::open_encrypted(&path, b"right key ......................", ReplicaOptions::default())
                .expect("open");
        replica.set_member(MemberId::new_random()).expect("member");
        replica.create_household(&household(GridId::new_random()), Timestamp(0)).expect("household")
    };
    let before = std::fs::read(&path).expect("read");
    assert!(matches!(
        Replica::open_encrypted(&path, b"wrong key ......................", ReplicaOptions::default()),
        Err(CoreError::WrongKey)
    ));
    assert!(
        matches!(Replica::open(&path), Err(CoreError::NotAReplica { .. })),
        "no key, no access: without its key the file reads as no database at all"
    );
    assert_eq!(std::fs::read(&path).expect("read"), before, "the file is untouched");
    let mut replica =
        Replica::open_encrypted(&path, b"right key ......................", ReplicaOptions::default())
            .expect("reopen");
    assert_eq!(replica.household(home).expect("read").residents[0].name, NAME);
}

#[test]
fn keys_rotate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("phone.db");
    let home = {
        let mut replica =
            Replica::open_encrypted(&path, b"old key ........................", ReplicaOptions::default())
                .expect("open");
        replica.set_member(MemberId::new_random()).expect("member");
        let home =
            replica.create_household(&household(GridId::new_random()), Timestamp(0)).expect("household");
        replica.rekey(b"new key ........................").expect("rotate");
        home
    };
    assert!(matches!(
        Replica::open_encrypted(&path, b"old key ........................", ReplicaOptions::default()),
        Err(CoreError::WrongKey)
    ));
    let mut replica =
        Replica::open_encrypted(&path, b"new key ........................", ReplicaOptions::default())
            .expect("new key opens");
    assert_eq!(replica.household(home).expect("read").residents[0].name, NAME);
    assert!(!contains(&file_bytes(dir.path()), NAME.as_bytes()));
}

#[test]
fn a_purge_removes_the_data_from_the_file() {
    // Unencrypted, so that the bytes can be looked for at all.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("phone.db");
    let mut replica = Replica::open(&path).expect("open");
    replica.set_member(MemberId::new_random()).expect("member");
    let home = replica.create_household(&household(GridId::new_random()), Timestamp(0)).expect("household");
    let pending = replica.unsynced_changes(home.into()).expect("changes");
    assert!(contains(&file_bytes(dir.path()), NAME.as_bytes()));
    let heads = replica.heads(home.into()).expect("heads");
    assert_eq!(replica.acknowledge(home.into(), &heads).expect("ack"), pending.len());
    replica.purge(home.into()).expect("purge");
    assert!(!contains(&file_bytes(dir.path()), NAME.as_bytes()), "no copy left in the database or its log");
    drop(replica);
    assert!(!contains(&file_bytes(dir.path()), NAME.as_bytes()));
}
