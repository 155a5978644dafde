//! The county server's disk fills up, or its database becomes read-only (issue 8): uploads are
//! refused with a plain error, the phone keeps its changes, the database stays sound, and once
//! space is back (or the file writable) everything syncs with nothing lost or doubled. SQLite's
//! `max_page_count` (the `sqlite_max_bytes` quota) gives a genuine SQLITE_FULL inside the real
//! server process; a write-protected file, with the server running as `nobody`, a genuine
//! SQLITE_READONLY.

mod support;

use std::collections::BTreeSet;

use doorstep_client::ClientError;
use doorstep_core::ids::DocumentId;
use doorstep_core::model::{NewVisit, VisitKind};
use doorstep_core::sync::message::ErrorCode;
use doorstep_server::scope::Role;
use rusqlite::{Connection, OpenFlags};
use support::*;

fn database(server: &TestServer) -> std::path::PathBuf {
    server.dir.path().join("doorstep.db")
}

fn integrity(path: &std::path::Path) -> String {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).expect("open");
    conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).expect("integrity_check")
}

fn database_bytes(path: &std::path::Path) -> u64 {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).expect("open");
    let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0)).expect("pages");
    let size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0)).expect("size");
    u64::try_from(pages * size).expect("positive")
}

/// A server with one grid worker's phone, enrolled and synced, holding one household.
async fn a_phone_with_one_household()
-> (TestServer, tempfile::TempDir, doorstep_core::store::Replica, doorstep_core::ids::HouseholdId) {
    let server = TestServer::start_in(tempfile::tempdir().expect("tempdir"));
    let storage = server.storage();
    let grid = storage.create_grid("一网格", "幸福社区", "城关街道").expect("grid");
    let worker = member(&*storage, "网格员", Role::GridWorker, &[grid]);
    drop(storage);
    let dir = devices_dir();
    let mut phone = device(&server, dir.path(), "phone", worker).await;
    let home = phone.create_household(&household(grid, "101", "王芳"), t(0)).expect("household");
    server.client().sync(&mut phone).await.expect("sync");
    (server, dir, phone, home)
}

/// The server still answers a read (the phone's manifest).
async fn assert_reads_still_work(server: &TestServer, phone: &doorstep_core::store::Replica) {
    let token = phone.enrolment().expect("e").expect("enrolled").token;
    let manifest = server
        .client()
        .post_frame(&token, doorstep_core::sync::client::manifest_request())
        .await
        .expect("manifest");
    assert!(matches!(
        doorstep_client::decode_reply(&manifest).expect("frame"),
        doorstep_core::sync::message::ServerMessage::Manifest(_)
    ));
}

#[tokio::test]
async fn a_full_server_disk_refuses_uploads_plainly_and_recovers_when_space_is_back() {
    let (server, _dir, mut phone, home) = a_phone_with_one_household().await;

    // The disk has 64 KiB left.
    let quota = database_bytes(&database(&server)) + 64 * 1024;
    let config_dir = tempfile::tempdir().expect("tempdir");
    let config = config_dir.path().join("quota.toml");
    std::fs::write(&config, format!("sqlite_max_bytes = {quota}\n")).expect("config");
    let server = TestServer::restart_with(server.kill(), &["--config", config.to_str().expect("path")]);

    let mut seed = 0x9e37_79b9_u64;
    let mut recorded = Vec::new();
    let refusal = loop {
        let notes: String = (0..1500)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                char::from_u32(0x4e00 + (seed % 2000) as u32).unwrap_or('字')
            })
            .collect();
        let visit = NewVisit { at: t(recorded.len() as i64), kind: VisitKind::Routine, notes, needs: vec![] };
        recorded.push(phone.record_visit(home, &visit).expect("the phone has room"));
        if recorded.len() % 4 == 0 {
            match server.client().sync(&mut phone).await {
                Ok(_) => {}
                Err(e) => break e,
            }
        }
        assert!(recorded.len() < 400, "the quota never filled");
    };
    let ClientError::Refused { code, message, .. } = refusal else {
        panic!("a plain refusal, not {refusal}")
    };
    assert_eq!(code, ErrorCode::Internal);
    assert!(message.contains("storage is full") && message.contains("存储空间已满"), "{message}");
    assert!(phone.unsynced_change_count().expect("count") > 0, "the phone keeps what was refused");
    assert_eq!(integrity(&database(&server)), "ok", "no corruption");
    // Reading still works while full.
    assert_reads_still_work(&server, &phone).await;

    // Space is back (the operator raised the quota): everything arrives, once.
    let server = TestServer::restart(server.kill());
    let report = server.client().sync(&mut phone).await.expect("sync after recovery");
    assert!(report.verified);
    assert_eq!(phone.unsynced_change_count().expect("count"), 0);
    let stored = server.storage().document(DocumentId::from(home)).expect("read").expect("stored");
    let visits = doorstep_core::doc::household::read(&stored, home).expect("household").visits;
    let ids: BTreeSet<_> = visits.iter().map(|v| v.id).collect();
    assert_eq!(ids.len(), visits.len(), "nothing doubled");
    assert_eq!(ids, recorded.into_iter().collect(), "every visit the phone recorded is on the server");
    assert_eq!(integrity(&database(&server)), "ok");
}

/// Gives the data directory and its files to `nobody`, the database file write-protected (or
/// writable again), as an operator's wrong chmod or a read-only volume leaves it.
fn hand_to_nobody(dir: &std::path::Path, writable: bool) {
    use std::os::unix::fs::PermissionsExt;
    const NOBODY: u32 = 65_534;
    std::os::unix::fs::chown(dir, Some(NOBODY), Some(NOBODY)).expect("chown the data directory");
    for entry in std::fs::read_dir(dir).expect("data directory") {
        let path = entry.expect("entry").path();
        std::os::unix::fs::chown(&path, Some(NOBODY), Some(NOBODY)).expect("chown");
        let mode = if writable { 0o644 } else { 0o444 };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }
}

/// The server's database file is write-protected by the operating system. SQLite then opens it
/// read-only and answers SQLITE_READONLY to every write: the server keeps serving reads,
/// refuses uploads with a plain bilingual error, the phone keeps its work, and once the file is
/// writable again everything arrives, once. The server runs as `nobody` (root ignores file
/// modes).
#[tokio::test]
async fn a_read_only_server_database_serves_reads_refuses_uploads_plainly_and_recovers() {
    let (server, _dir, mut phone, home) = a_phone_with_one_household().await;

    // Stopped, and restarted on a write-protected database file.
    let stopped = server.kill();
    hand_to_nobody(stopped.dir.path(), false);
    let server = TestServer::restart_as_nobody(stopped);
    let visit =
        NewVisit { at: t(5), kind: VisitKind::Routine, notes: "只读期间的走访".into(), needs: vec![] };
    let recorded = phone.record_visit(home, &visit).expect("the phone records offline");
    let refusal = server.client().sync(&mut phone).await.expect_err("a read-only database takes no upload");
    let ClientError::Refused { code, message, .. } = refusal else {
        panic!("a plain refusal, not {refusal}")
    };
    assert_eq!(code, ErrorCode::Internal);
    assert!(message.contains("read-only") && message.contains("只读"), "{message}");
    assert_eq!(phone.unsynced_change_count().expect("count"), 1, "the phone keeps the visit");
    // Reading still works.
    assert_reads_still_work(&server, &phone).await;

    // The file is writable again: the visit arrives, once, and the database is sound.
    let stopped = server.kill();
    hand_to_nobody(stopped.dir.path(), true);
    let server = TestServer::restart_as_nobody(stopped);
    let report = server.client().sync(&mut phone).await.expect("sync after recovery");
    assert!(report.verified);
    assert_eq!(phone.unsynced_change_count().expect("count"), 0);
    let stored = server.storage().document(DocumentId::from(home)).expect("read").expect("stored");
    let visits = doorstep_core::doc::household::read(&stored, home).expect("household").visits;
    assert_eq!(visits.iter().filter(|v| v.id == recorded).count(), 1, "the visit is there once");
    assert_eq!(integrity(&database(&server)), "ok", "no corruption");
}
