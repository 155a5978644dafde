//! Several server nodes on one PostgreSQL database: devices sync through either node, live
//! pushes cross nodes, and the change log's cursor stays correct when writers on different
//! nodes race. Needs the PostgreSQL that `scripts/test` starts; fails (never skips) without it.

mod support;

use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use doorstep_core::ids::GridId;
use doorstep_core::model::{NewVisit, VisitKind};
use doorstep_core::store::Replica;
use doorstep_core::sync::client::{self, ClientLimits};
use doorstep_core::sync::frame::{DEFAULT_MAX_FRAME_BYTES, decode_client, encode_server};
use doorstep_core::sync::message::{ClientMessage, ServerMessage, SyncRequest};
use doorstep_server::auth;
use doorstep_server::scope::Role;
use doorstep_server::storage::postgresql::PostgresStorage;
use doorstep_server::storage::{Authenticated, Device, Storage, SyncLimits};
use support::*;

fn visit(n: i64, notes: &str) -> NewVisit {
    NewVisit { at: t(n), kind: VisitKind::Routine, notes: notes.into(), needs: vec![] }
}

fn grid(storage: &dyn Storage, name: &str) -> GridId {
    storage.create_grid(name, "幸福社区", "城关街道").expect("grid")
}

/// The device row a server node would authenticate for this replica.
fn device_of(storage: &dyn Storage, replica: &Replica) -> Device {
    let token = replica.enrolment().expect("enrolment").expect("enrolled").token;
    match storage.authenticate(&auth::hash_secret(&token)).expect("authenticate") {
        Authenticated::Device(device) => device,
        other => panic!("not an active device: {other:?}"),
    }
}

/// The sync request the replica's next round would send.
fn next_request(replica: &mut Replica) -> (SyncRequest, client::Round) {
    let (frame, round) = client::begin_round(replica, &ClientLimits::default(), false, &[]).expect("round");
    match decode_client(&frame, DEFAULT_MAX_FRAME_BYTES).expect("frame") {
        ClientMessage::Sync(request) => (request, round),
        other => panic!("not a sync request: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_database_serve_the_same_devices_and_push_across_nodes() {
    let database = Arc::new(TestDatabase::create());
    let node_a = TestServer::start_on(database.clone());
    let node_b = TestServer::start_on(database.clone());
    let storage = node_a.storage();
    let g = grid(&*storage, "一网格");
    let w = member(&*storage, "网格员", Role::GridWorker, &[g]);
    let s = member(&*storage, "主任", Role::Supervisor, &[g]);
    let dir = devices_dir();
    let mut worker = device(&node_a, dir.path(), "worker", w).await;
    let mut boss = device(&node_b, dir.path(), "boss", s).await;

    // The supervisor's phone keeps a live connection to node B.
    let mut live = node_b
        .client()
        .connect_live(&doorstep_client::Client::device_token(&boss).expect("token"))
        .await
        .expect("websocket to node B");
    live.sync(&mut boss).await.expect("first round");

    // The worker uploads through node A; node B learns of it from PostgreSQL and pushes.
    let home = worker.create_household(&household(g, "1", "甲"), t(0)).expect("household");
    worker.record_visit(home, &visit(1, "首次走访")).expect("visit");
    let uploaded = Instant::now();
    node_a.client().sync(&mut worker).await.expect("sync through node A");
    let pushed = tokio::time::timeout(Duration::from_secs(30), live.next_push(&mut boss))
        .await
        .expect("node B pushed the change (LISTEN/NOTIFY)")
        .expect("push");
    eprintln!("cross-node push arrived {} ms after the upload returned", uploaded.elapsed().as_millis());
    assert_eq!(pushed.received_docs, 1);
    assert_eq!(boss.household(home).expect("pushed").visits.len(), 1);

    // Either node serves either device: the worker now syncs through node B and sees the
    // supervisor's edit made through node A.
    boss.record_visit(home, &visit(2, "主任回访")).expect("visit");
    node_a.client().sync(&mut boss).await.expect("boss through node A");
    node_b.client().sync(&mut worker).await.expect("worker through node B");
    assert_eq!(worker.household(home).expect("household").visits.len(), 2);
    assert_eq!(worker.heads(home.into()).expect("heads"), boss.heads(home.into()).expect("heads"));
}

/// The interleaving a plain sequence allows, shown on PostgreSQL itself: the first writer to take
/// a number commits last, and a reader that moved its cursor in between never sees it. This is
/// why Doorstep numbers changes under the `log_head` lock instead; the same interleaving against
/// `log_head` cannot happen: the second writer cannot even take a number.
#[test]
fn a_plain_sequence_lets_a_cursor_pass_a_change_but_the_log_lock_does_not() {
    let database = TestDatabase::create();
    database.with(|setup| {
        setup
            .batch_execute(
                "CREATE SEQUENCE naive_seq;
                 CREATE TABLE naive_log (seq BIGINT PRIMARY KEY, what TEXT NOT NULL);",
            )
            .expect("naive schema")
    });
    database.with(|first| {
        database.with(|second| {
            database.with(|reader| {
                let mut t1 = first.transaction().expect("t1");
                let n1: i64 = t1.query_one("SELECT nextval('naive_seq')", &[]).expect("n1").get(0);
                let mut t2 = second.transaction().expect("t2");
                let n2: i64 = t2.query_one("SELECT nextval('naive_seq')", &[]).expect("n2").get(0);
                assert!(n1 < n2);
                t2.execute("INSERT INTO naive_log VALUES ($1, 'second')", &[&n2]).expect("insert");
                t2.commit().expect("second commits first");
                let cursor: i64 =
                    reader.query_one("SELECT COALESCE(max(seq), 0) FROM naive_log", &[]).expect("max").get(0);
                assert_eq!(cursor, n2, "the reader's cursor moves past the first writer's number");
                t1.execute("INSERT INTO naive_log VALUES ($1, 'first')", &[&n1]).expect("insert");
                t1.commit().expect("first commits last");
                let after: i64 = reader
                    .query_one("SELECT count(*) FROM naive_log WHERE seq > $1", &[&cursor])
                    .expect("after")
                    .get(0);
                assert_eq!(after, 0, "with a plain sequence the first writer's change is never seen");
            })
        })
    });

    // Doorstep's log: a second writer cannot take a number while the first holds one.
    let storage = PostgresStorage::connect(&database.url, 2).expect("schema");
    drop(storage);
    database.with(|first| {
        database.with(|second| {
            let mut t1 = first.transaction().expect("t1");
            t1.query_one("UPDATE log_head SET seq = seq + 1 WHERE id = 1 RETURNING seq", &[]).expect("n1");
            let mut t2 = second.transaction().expect("t2");
            t2.batch_execute("SET LOCAL lock_timeout = '200ms'").expect("timeout");
            let n2 = t2.query_one("UPDATE log_head SET seq = seq + 1 WHERE id = 1 RETURNING seq", &[]);
            let error = n2.expect_err("the second writer must wait for the first to commit");
            assert_eq!(error.code(), Some(&postgres::error::SqlState::LOCK_NOT_AVAILABLE), "{error}");
            t1.rollback().expect("rollback");
        })
    });
}

/// Two nodes upload at once; the first to take a sequence number is held open just before it
/// commits. A device reading through a third connection meanwhile must not get a cursor past
/// that change, and afterwards receives both changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_never_passes_a_change_that_a_slower_node_commits_later() {
    let database = Arc::new(TestDatabase::create());
    let server = TestServer::start_on(database.clone());
    let storage = server.storage();
    let g = grid(&*storage, "一网格");
    let w = member(&*storage, "网格员", Role::GridWorker, &[g]);
    let dir = devices_dir();
    let mut a = device(&server, dir.path(), "a", w).await;
    let mut b = device(&server, dir.path(), "b", w).await;
    let mut reader = device(&server, dir.path(), "reader", w).await;
    let home = a.create_household(&household(g, "1", "甲"), t(0)).expect("household");
    server.client().sync(&mut a).await.expect("a");
    server.client().sync(&mut b).await.expect("b");
    server.client().sync(&mut reader).await.expect("reader");
    let start_seq = storage.latest_seq().expect("seq");

    // Two nodes: separate pools on the same database.
    let node_1 = Arc::new(PostgresStorage::connect(&database.url, 2).expect("node 1"));
    let node_2 = Arc::new(PostgresStorage::connect(&database.url, 2).expect("node 2"));
    let (reached_tx, reached) = mpsc::channel::<()>();
    let (go, go_rx) = mpsc::channel::<()>();
    let go_rx = Mutex::new(go_rx);
    node_1.set_before_commit(Some(Arc::new(move || {
        reached_tx.send(()).expect("test listens");
        go_rx.lock().expect("lock").recv().expect("test releases");
    })));

    a.record_visit(home, &visit(1, "A 的走访")).expect("visit");
    b.record_visit(home, &visit(2, "B 的走访")).expect("visit");
    let device_a = device_of(&*storage, &a);
    let device_b = device_of(&*storage, &b);
    let (request_a, round_a) = next_request(&mut a);
    let (request_b, round_b) = next_request(&mut b);
    let limits = SyncLimits::default();

    // Node 1 takes its number for A's visit and stops just before committing.
    let writer_1 = {
        let (node, limits) = (node_1.clone(), limits.clone());
        std::thread::spawn(move || node.sync(&device_a, &request_a, &limits, doorstep_server::http::now()))
    };
    reached.recv().expect("node 1 holds a number, uncommitted");

    // Node 2 tries to write B's visit meanwhile: it has to wait for node 1.
    let writer_2 = {
        let (node, limits) = (node_2.clone(), limits.clone());
        std::thread::spawn(move || node.sync(&device_b, &request_b, &limits, doorstep_server::http::now()))
    };
    wait_until_a_writer_waits_for_the_log_lock(&database);

    // The reader syncs while both are in flight: nothing of theirs, and its cursor stays put.
    let report = server.client().sync(&mut reader).await.expect("reader during the race");
    assert_eq!(report.received_changes + report.received_docs, 0);
    assert_eq!(
        reader.sync_cursor().expect("cursor"),
        start_seq,
        "the cursor did not pass the uncommitted change"
    );

    go.send(()).expect("release node 1");
    let reply_a = writer_1.join().expect("thread").expect("node 1 committed");
    let reply_b = writer_2.join().expect("thread").expect("node 2 committed");
    node_1.set_before_commit(None);
    let frame_a = encode_server(&ServerMessage::Sync(reply_a.reply));
    let frame_b = encode_server(&ServerMessage::Sync(reply_b.reply));
    client::finish_round(&mut a, round_a, &frame_a, &ClientLimits::default()).expect("a acknowledged");
    client::finish_round(&mut b, round_b, &frame_b, &ClientLimits::default()).expect("b acknowledged");

    // Numbers committed in order: A's change first, then B's.
    let order: Vec<String> = database.with(|c| {
        c.query("SELECT origin_device FROM changes WHERE seq > $1 ORDER BY seq", &[&(start_seq as i64)])
            .expect("log")
            .iter()
            .map(|r| r.get(0))
            .collect()
    });
    let ids = [device_of(&*storage, &a).id.to_string(), device_of(&*storage, &b).id.to_string()];
    assert_eq!(order, ids);

    // And the reader misses nothing.
    server.client().sync(&mut reader).await.expect("reader after the race");
    let notes: Vec<String> =
        reader.household(home).expect("household").visits.iter().map(|v| v.notes.clone()).collect();
    assert!(notes.contains(&"A 的走访".to_owned()) && notes.contains(&"B 的走访".to_owned()), "{notes:?}");
    let mut stored = storage.document(home.into()).expect("read").expect("stored");
    assert_eq!(reader.heads(home.into()).expect("heads"), stored.get_heads());
}

/// Waits until PostgreSQL reports a session of this database blocked on a lock (the second
/// writer queued behind the first). A condition checked against the server, bounded.
fn wait_until_a_writer_waits_for_the_log_lock(database: &TestDatabase) {
    database.with(|c| {
        for _ in 0..10_000 {
            let waiting: i64 = c
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity
                     WHERE datname = current_database() AND wait_event_type = 'Lock'",
                    &[],
                )
                .expect("activity")
                .get(0);
            if waiting > 0 {
                return;
            }
            std::thread::yield_now();
        }
        panic!("the second writer never queued behind the first");
    });
}

/// Runs the server binary's admin command; returns (succeeded, stdout + stderr).
fn run_admin(args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(SERVER).args(args).output().expect("run doorstep-server");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

fn heads_of(storage: &dyn Storage) -> Vec<(doorstep_core::ids::DocumentId, Vec<u8>)> {
    storage.document_heads().expect("heads")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_sqlite_county_migrates_to_postgres_and_backups_restore_on_both_backends() {
    // A county on SQLite with a demo register, and a phone that has synced and made changes.
    let sqlite_dir = tempfile::tempdir().expect("tempdir");
    let sqlite_path = sqlite_dir.path().to_path_buf();
    let server = TestServer::start_in(sqlite_dir);
    let storage = server.storage();
    doorstep_server::demo::seed_sized(&*storage, doorstep_server::http::now(), 3)
        .expect("seed")
        .expect("empty");
    let g = grid(&*storage, "迁移网格");
    let w = member(&*storage, "网格员", Role::GridWorker, &[g]);
    let dir = devices_dir();
    let mut phone = device(&server, dir.path(), "phone", w).await;
    let home = phone.create_household(&household(g, "1", "甲"), t(0)).expect("household");
    phone.record_visit(home, &visit(1, "迁移前")).expect("visit");
    server.client().sync(&mut phone).await.expect("sync on SQLite");
    // The county has edited its taxonomy: the edit travels with every copy.
    let mut edited = doorstep_core::model::Taxonomy::default_county();
    edited.version += 1;
    edited.departments[0].name_zh = "改名后的部门".into();
    assert!(storage.save_county_taxonomy(&edited, None, "test", t(0)).expect("save"));

    // Copied while the SQLite server keeps running, then verified.
    let database = Arc::new(TestDatabase::create());
    let dir_arg = sqlite_path.to_str().expect("path");
    let (ok, out) = run_admin(&["migrate", "--from", dir_arg, "--to", &database.url]);
    assert!(ok, "{out}");
    assert!(out.contains("copied and verified"), "{out}");
    assert_eq!(heads_of(&*storage), heads_of(&PostgresStorage::connect(&database.url, 2).expect("pg")));
    let copied: Box<dyn Storage> = Box::new(PostgresStorage::connect(&database.url, 2).expect("pg"));
    assert_eq!(copied.county_taxonomy().expect("read"), Some(edited.clone()));

    // A second run refuses to overwrite, and changes nothing.
    let (ok, out) = run_admin(&["migrate", "--from", dir_arg, "--to", &database.url]);
    assert!(!ok && out.contains("already holds data"), "{out}");

    // The phone carries on against PostgreSQL with the cursor it had: nothing to fetch, scope
    // verified, and its next visit goes through.
    let node = TestServer::start_on(database.clone());
    let idle = node.client().sync(&mut phone).await.expect("sync on PostgreSQL");
    assert_eq!((idle.received_docs, idle.received_changes, idle.repaired_docs), (0, 0, 0));
    assert!(idle.verified, "the digest matches: same documents, same heads");
    phone.record_visit(home, &visit(2, "迁移后")).expect("visit");
    assert_eq!(node.client().sync(&mut phone).await.expect("upload").uploaded_changes, 1);

    // Backup of PostgreSQL into a file, restored into an empty PostgreSQL database.
    let files = tempfile::tempdir().expect("tempdir");
    let backup = files.path().join("county.backup.db");
    let backup_arg = backup.to_str().expect("path");
    let (ok, out) = run_admin(&["--database", &database.url, "backup", "--to", backup_arg]);
    assert!(ok && out.contains("copied and verified"), "{out}");
    let (ok, out) = run_admin(&["--database", &database.url, "backup", "--to", backup_arg]);
    assert!(!ok && out.contains("already exists"), "a backup never overwrites: {out}");
    let restored = TestDatabase::create();
    let (ok, out) = run_admin(&["--database", &restored.url, "restore", "--from", backup_arg]);
    assert!(ok && out.contains("copied and verified"), "{out}");
    let live = PostgresStorage::connect(&database.url, 2).expect("pg");
    let again = PostgresStorage::connect(&restored.url, 2).expect("restored");
    assert_eq!(heads_of(&live), heads_of(&again));
    assert_eq!(live.latest_seq().expect("seq"), again.latest_seq().expect("seq"));

    // The same file restores a SQLite server, which the phone syncs with as before.
    let fresh = tempfile::tempdir().expect("tempdir");
    let fresh_arg = fresh.path().to_str().expect("path").to_owned();
    let fresh_arg = fresh_arg.as_str();
    let (ok, out) = run_admin(&["--data-dir", fresh_arg, "restore", "--from", backup_arg]);
    assert!(ok && out.contains("copied and verified"), "{out}");
    let sqlite_again = TestServer::start_in(fresh);
    assert_eq!(sqlite_again.storage().county_taxonomy().expect("read"), Some(edited));
    let report = sqlite_again.client().sync(&mut phone).await.expect("sync on the restored SQLite");
    assert!(report.verified && report.received_changes == 0, "{report:?}");

    // A missing backup file is a clear error.
    let (ok, out) = run_admin(&["--data-dir", fresh_arg, "restore", "--from", "/nonexistent/backup.db"]);
    assert!(!ok && out.contains("no database file"), "{out}");
}

#[test]
fn verification_names_every_difference_between_source_and_copy() {
    use doorstep_server::storage::transfer::{self, Difference};
    let dir = tempfile::tempdir().expect("tempdir");
    let source = doorstep_server::storage::sqlite::SqliteStorage::open(dir.path()).expect("sqlite");
    doorstep_server::demo::seed_sized(&source, doorstep_server::http::now(), 2)
        .expect("seed")
        .expect("empty");
    let database = TestDatabase::create();
    let target = PostgresStorage::connect(&database.url, 2).expect("pg");
    transfer::copy(&source, &target, false).expect("copy");
    assert!(transfer::verify(&source, &target).expect("verify").is_empty());

    let docs = heads_of(&source);
    let (gone, altered) = (docs[0].0.to_string(), docs[1].0.to_string());
    database.with(|c| {
        c.execute("DELETE FROM documents WHERE doc_id = $1", &[&gone]).expect("delete");
        c.execute("UPDATE documents SET heads = '\\x'::bytea WHERE doc_id = $1", &[&altered])
            .expect("tamper");
    });
    let differences = transfer::verify(&source, &target).expect("verify");
    assert!(differences.contains(&Difference::RowCount {
        table: "documents",
        source: docs.len() as u64,
        target: docs.len() as u64 - 1
    }));
    assert!(differences.contains(&Difference::Missing(docs[0].0)), "{differences:?}");
    assert!(differences.contains(&Difference::Heads(docs[1].0)), "{differences:?}");
    assert!(differences.contains(&Difference::Damaged(docs[1].0)), "{differences:?}");

    // --replace copies over it again, in one transaction, and then nothing differs.
    transfer::copy(&source, &target, true).expect("replace");
    assert!(transfer::verify(&source, &target).expect("verify").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_database_is_gone_reports_not_ready_and_stays_up() {
    let database = Arc::new(TestDatabase::create());
    let node = TestServer::start_on(database.clone());
    let ready = reqwest::get(format!("{}/readyz", node.url)).await.expect("readyz");
    assert_eq!(ready.status(), 200);
    // The database disappears under the running node (its sessions are ended by FORCE).
    let name = database.url.rsplit('/').next().expect("name").to_owned();
    let admin = support::pg::admin_url();
    tokio::task::spawn_blocking(move || {
        let mut c = postgres::Client::connect(&admin, postgres::NoTls).expect("admin");
        c.batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)")).expect("drop");
    })
    .await
    .expect("join");
    let not_ready = reqwest::get(format!("{}/readyz", node.url)).await.expect("readyz");
    assert_eq!(not_ready.status(), 503, "a balancer takes this node out of rotation");
    let alive = reqwest::get(format!("{}/healthz", node.url)).await.expect("healthz");
    assert_eq!(alive.status(), 200, "the process itself stays up");
}
