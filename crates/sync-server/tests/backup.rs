//! Backups as an operator takes them (issue 26, section 1): `doorstep-server backup` while
//! phones keep writing verifies against the snapshot it copied and restores; a failed run
//! leaves no file, so the next run needs no clean-up.

mod support;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use doorstep_core::model::{NewVisit, VisitKind};
use doorstep_server::scope::Role;
use support::*;

/// Runs the server binary with `args` on a data directory (and PostgreSQL database, if any);
/// returns (success, stdout, stderr).
fn run(dir: PathBuf, database: Option<String>, args: Vec<String>) -> (bool, String, String) {
    let mut command = std::process::Command::new(SERVER);
    command.arg("--data-dir").arg(dir);
    if let Some(url) = database {
        command.args(["--database", &url]);
    }
    let out = command.args(args).output().expect("run the server binary");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// [`run`] on a test server's database, off the async runtime.
async fn run_on(server: &TestServer, args: &[&str]) -> (bool, String, String) {
    let dir = server.dir.path().to_path_buf();
    let database = server.database.as_ref().map(|db| db.url.clone());
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || run(dir, database, args)).await.expect("command task")
}

#[tokio::test]
async fn a_backup_taken_while_phones_write_verifies_and_restores() {
    let server = TestServer::start();
    let storage = server.storage();
    // A county large enough that copying it takes a while.
    doorstep_server::demo::seed_sized(&*storage, doorstep_server::http::now(), 60)
        .expect("seed")
        .expect("empty");
    let grid = storage.grids().expect("grids")[0].id;
    let worker = member(&*storage, "王芳", Role::GridWorker, &[grid]);
    let dir = devices_dir();
    let mut phone = device(&server, dir.path(), "phone", worker).await;
    let home = phone.create_household(&household(grid, "909", "陈奶奶"), t(1)).expect("household");
    server.client().sync(&mut phone).await.expect("first sync");

    // The phone writes and syncs without pause while the backup runs; each sync done is counted.
    let stop = Arc::new(AtomicBool::new(false));
    let (synced_tx, synced) = tokio::sync::watch::channel(0u64);
    let client = server.client();
    let writer = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let visit = NewVisit {
                    at: t(10 + n),
                    kind: VisitKind::Routine,
                    notes: format!("走访 {n}"),
                    needs: vec![],
                };
                phone.record_visit(home, &visit).expect("visit");
                client.sync(&mut phone).await.expect("sync while the backup runs");
                synced_tx.send_replace(n as u64);
            }
            phone
        })
    };
    let mut watching = synced.clone();
    watching.wait_for(|n| *n >= 2).await.expect("the writer is under way");
    let file = tempfile::tempdir().expect("tempdir");
    let backup = file.path().join("county-2026-12-03.db");
    let backup_arg = backup.to_str().expect("path").to_owned();
    let (before, seq_before) = (*synced.borrow(), storage.latest_seq().expect("seq"));
    let (ok, stdout, stderr) = run_on(&server, &["backup", "--to", &backup_arg]).await;
    let (after, seq_after) = (*synced.borrow(), storage.latest_seq().expect("seq"));
    stop.store(true, Ordering::SeqCst);
    let phone = writer.await.expect("writer");
    assert!(
        after > before && seq_after > seq_before,
        "the phone wrote during the backup ({before} → {after})"
    );
    assert!(ok, "the backup verifies on a busy day: {stdout}\n{stderr}");
    assert!(stdout.contains("copied and verified"), "{stdout}");
    assert!(backup.is_file());
    assert_eq!(std::fs::read_dir(file.path()).expect("dir").count(), 1, "nothing but the backup is left");

    // It restores into an empty county, and verifies there too.
    let restored = TestServer::start_in(tempfile::tempdir().expect("tempdir"));
    let (ok, stdout, stderr) = run_on(&restored, &["restore", "--from", &backup_arg]).await;
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.contains("copied and verified"), "{stdout}");
    drop(phone);
}

#[tokio::test]
async fn a_failed_backup_leaves_no_file_and_the_next_run_needs_no_clean_up() {
    let data = tempfile::tempdir().expect("tempdir");
    {
        let storage = doorstep_server::storage::sqlite::SqliteStorage::open(data.path()).expect("storage");
        doorstep_server::demo::seed_sized(&storage, doorstep_server::http::now(), 2)
            .expect("seed")
            .expect("empty");
    }
    // One document's stored heads are damaged: the copy cannot read them and fails half-way.
    let db = rusqlite::Connection::open(data.path().join("doorstep.db")).expect("open");
    let (doc, heads): (String, Vec<u8>) = db
        .query_row("SELECT doc_id, heads FROM documents ORDER BY doc_id DESC LIMIT 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .expect("a document");
    db.execute("UPDATE documents SET heads = x'00' WHERE doc_id = ?1", [&doc]).expect("damage");
    let out_dir = tempfile::tempdir().expect("tempdir");
    let backup = out_dir.path().join("county.db");
    let run = |args: &[&str]| {
        std::process::Command::new(SERVER)
            .arg("--data-dir")
            .arg(data.path())
            .args(args)
            .output()
            .expect("run")
    };
    let failed = run(&["backup", "--to", backup.to_str().expect("path")]);
    assert!(!failed.status.success(), "the damaged copy fails");
    assert_eq!(std::fs::read_dir(out_dir.path()).expect("dir").count(), 0, "a failed run leaves no file");

    // Mended, the same command the same day succeeds without anyone deleting anything.
    db.execute("UPDATE documents SET heads = ?1 WHERE doc_id = ?2", rusqlite::params![heads, doc])
        .expect("mend");
    let ok = run(&["backup", "--to", backup.to_str().expect("path")]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(backup.is_file());
}
