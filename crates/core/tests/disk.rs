//! A phone whose storage fills up or turns read-only (issue 8): the write is refused with an
//! error the app can show plainly, nothing already saved is damaged, and once space is back
//! the replica works on. Real SQLite files: `max_page_count` gives a genuine SQLITE_FULL, a
//! read-only connection a genuine SQLITE_READONLY.

use doorstep_core::error::CoreError;
use doorstep_core::ids::{GridId, MemberId};
use doorstep_core::model::{Address, NewHousehold, NewResident, NewVisit, Sex, VisitKind};
use doorstep_core::store::{Replica, ReplicaOptions};
use doorstep_core::time::Timestamp;
use rusqlite::{Connection, OpenFlags};

fn household(grid: GridId, n: u32) -> NewHousehold {
    NewHousehold {
        address: Address {
            community: "幸福社区".into(),
            grid,
            building: "3栋".into(),
            unit: "1单元".into(),
            room: format!("{n}"),
        },
        residents: vec![NewResident {
            name: format!("住户{n}"),
            sex: Sex::Female,
            birth_year: Some(1950),
            phone: String::new(),
            tags: vec![],
        }],
        notes: String::new(),
    }
}

/// Text that does not compress: notes a worker typed.
fn notes(seed: &mut u64) -> String {
    (0..1500)
        .map(|_| {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            char::from_u32(0x4e00 + (*seed % 2000) as u32).unwrap_or('字')
        })
        .collect()
}

fn integrity(path: &std::path::Path) -> String {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).expect("open");
    conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).expect("integrity_check")
}

#[test]
fn a_full_phone_refuses_the_write_plainly_keeps_what_it_had_and_recovers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("phone.db");
    let grid = GridId::new_random();
    let member = MemberId::new_random();
    let first = {
        let mut replica = Replica::open(&path).expect("replica");
        replica.set_member(member).expect("member");
        replica.create_household(&household(grid, 1), Timestamp(0)).expect("household")
    };
    // The same file, now on a "disk" with a few pages left.
    let conn = Connection::open(&path).expect("open");
    let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0)).expect("pages");
    conn.query_row(&format!("PRAGMA max_page_count = {}", pages + 6), [], |_| Ok(())).expect("cap");
    let mut replica = Replica::from_connection(conn, ReplicaOptions::default()).expect("replica");
    let mut seed = 0x2545_f491_u64;
    let mut visits = 0;
    let failure = loop {
        let visit = NewVisit {
            at: Timestamp(visits),
            kind: VisitKind::Routine,
            notes: notes(&mut seed),
            needs: vec![],
        };
        match replica.record_visit(first, &visit) {
            Ok(_) => visits += 1,
            Err(e) => break e,
        }
        assert!(visits < 500, "the capped file never filled");
    };
    assert!(matches!(failure, CoreError::StorageFull), "a plain 'storage full', not {failure:?}");
    assert!(failure.to_string().contains("storage is full"));
    let saved = replica.household(first).expect("read").visits.len();
    assert_eq!(saved as i64, visits, "every visit saved before is there, the failed one is not");
    drop(replica);
    assert_eq!(integrity(&path), "ok");
    // Space is back: the same file, no cap, works on.
    let mut replica = Replica::open(&path).expect("reopen");
    let visit =
        NewVisit {
            at: Timestamp(9), kind: VisitKind::Routine, notes: "空间恢复后".into(), needs: vec![]
        };
    replica.record_visit(first, &visit).expect("a write after space is back");
    assert_eq!(replica.household(first).expect("read").visits.len(), saved + 1);
    assert!(replica.unsynced_change_count().expect("count") > 0, "all of it still waits for sync");
}

#[test]
fn a_read_only_phone_store_still_reads_and_refuses_writes_plainly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("phone.db");
    let grid = GridId::new_random();
    let home = {
        let mut replica = Replica::open(&path).expect("replica");
        replica.set_member(MemberId::new_random()).expect("member");
        replica.create_household(&household(grid, 1), Timestamp(0)).expect("household")
    };
    let conn = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).expect("read-only open");
    let mut replica =
        Replica::from_connection(conn, ReplicaOptions::default()).expect("a read-only replica opens");
    assert_eq!(replica.household(home).expect("reads").residents.len(), 1);
    let failure = replica.create_household(&household(grid, 2), Timestamp(1)).expect_err("no write");
    assert!(matches!(failure, CoreError::StorageReadOnly), "a plain 'read-only', not {failure:?}");
    drop(replica);
    assert_eq!(integrity(&path), "ok");
    let replica = Replica::open(&path).expect("writable again");
    assert_eq!(replica.documents().expect("docs").len(), 1, "nothing half-written");
}
