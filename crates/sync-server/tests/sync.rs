//! End-to-end sync through a real `doorstep-server` process on 127.0.0.1 with real SQLite files.

mod support;

use doorstep_client::ClientError;
use doorstep_core::conflict::{Conflict, HouseholdField};
use doorstep_core::ids::{Code, DocumentId, GridId};
use doorstep_core::model::{EventAction, NewEvent, NewRequest, NewVisit, ResidentPatch, Urgency, VisitKind};
use doorstep_core::store::Replica;
use doorstep_core::sync::client::{self, ClientLimits};
use doorstep_core::sync::frame::{PROTOCOL_VERSION, encode_client};
use doorstep_core::sync::message::{ClientMessage, ErrorCode, ServerMessage, SyncRequest, Upload, wire_id};
use doorstep_server::scope::Role;
use doorstep_server::storage::Storage;
use serde_bytes::ByteBuf;
use support::*;

fn visit(n: i64, notes: &str) -> NewVisit {
    NewVisit { at: t(n), kind: VisitKind::Routine, notes: notes.into(), needs: vec![] }
}

fn event(action: EventAction, n: i64) -> NewEvent {
    NewEvent { action, note: String::new(), at: t(n) }
}

fn grid(storage: &dyn Storage, name: &str) -> GridId {
    storage.create_grid(name, "幸福社区", "城关街道").expect("grid")
}

async fn sync(server: &TestServer, replica: &mut Replica) -> doorstep_client::SyncReport {
    server.client().sync(replica).await.expect("sync")
}

#[tokio::test]
async fn offline_edits_on_two_devices_converge_in_either_order_with_the_conflict_on_both() {
    for a_first in [true, false] {
        let server = TestServer::start();
        let storage = server.storage();
        let g = grid(&*storage, "第一网格");
        let worker = member(&*storage, "王芳", Role::GridWorker, &[g]);
        let boss = member(&*storage, "李主任", Role::Supervisor, &[g]);
        let dir = devices_dir();
        let mut a = device(&server, dir.path(), "worker", worker).await;
        let mut b = device(&server, dir.path(), "supervisor", boss).await;

        let home = a.create_household(&household(g, "501", "陈奶奶"), t(0)).expect("household");
        let req = a
            .raise_request(&NewRequest {
                household: Some(home),
                grid: None,
                category: "elderly_care".into(),
                description: "需要每周送餐".into(),
                urgency: Urgency::Normal,
                at: t(1),
            })
            .expect("request");
        sync(&server, &mut a).await;
        assert_eq!(sync(&server, &mut b).await.received_docs, 2);
        let resident = b.household(home).expect("b has it").residents[0].id;

        // Both offline: visits, a phone number each, and concurrent transitions.
        a.record_visit(home, &visit(10, "送药")).expect("visit");
        b.record_visit(home, &visit(11, "回访")).expect("visit");
        a.update_resident(
            home,
            resident,
            &ResidentPatch { phone: Some("13800000001".into()), ..Default::default() },
        )
        .expect("edit");
        b.update_resident(
            home,
            resident,
            &ResidentPatch { phone: Some("13900000002".into()), ..Default::default() },
        )
        .expect("edit");
        a.add_request_event(req, &event(EventAction::ResolvedOnSpot, 12)).expect("on the spot");
        let dispatch = EventAction::Dispatched { department: Code::new("civil_affairs").expect("code") };
        b.add_request_event(req, &event(dispatch, 12)).expect("dispatch");

        let (first, second) = if a_first { (&mut a, &mut b) } else { (&mut b, &mut a) };
        sync(&server, first).await;
        sync(&server, second).await;
        sync(&server, first).await;

        for replica in [&mut a, &mut b] {
            assert_eq!(replica.unsynced_change_count().expect("count"), 0);
            let h = replica.household(home).expect("household");
            assert_eq!(h.visits.len(), 2, "both visits kept");
            let conflicts = replica.conflicts().expect("conflicts");
            assert!(conflicts.iter().any(
                |c| matches!(c, Conflict::Field(f) if f.field == HouseholdField::ResidentPhone(resident))
            ));
            assert!(
                conflicts
                    .iter()
                    .any(|c| matches!(c, Conflict::Request(r) if r.request == req && r.events.len() == 2))
            );
        }
        assert_eq!(a.heads(home.into()).expect("a"), b.heads(home.into()).expect("b"));
        assert_eq!(a.heads(req.into()).expect("a"), b.heads(req.into()).expect("b"));
        assert_eq!(a.request(req).expect("a").status(), b.request(req).expect("b").status());
        // The server holds the same.
        let on_server = storage.document(req.into()).expect("read").expect("stored");
        let mut on_server = on_server;
        let mut heads = on_server.get_heads();
        heads.sort();
        assert_eq!(heads, a.heads(req.into()).expect("a"));
    }
}

#[tokio::test]
async fn an_idle_reconnect_is_one_round_trip_of_a_few_hundred_bytes_and_verifies_the_scope() {
    let server = TestServer::start();
    let storage = server.storage();
    let g = grid(&*storage, "第一网格");
    let worker = member(&*storage, "王芳", Role::GridWorker, &[g]);
    let dir = devices_dir();
    let mut a = device(&server, dir.path(), "a", worker).await;
    for n in 0..60 {
        let home = a.create_household(&household(g, &format!("{n}"), "住户"), t(n)).expect("household");
        a.record_visit(home, &visit(n, "走访")).expect("visit");
    }
    let first = sync(&server, &mut a).await;
    assert_eq!(first.uploaded_changes, 120);
    assert!(first.verified);
    let idle = sync(&server, &mut a).await;
    assert_eq!(idle.round_trips, 1);
    assert!(
        idle.bytes_up + idle.bytes_down < 300,
        "idle reconnect moved {} bytes",
        idle.bytes_up + idle.bytes_down
    );
    assert!(idle.verified, "the scope digest matched");

    // A second device of the same worker downloads the grid whole, then is idle too.
    let mut b = device(&server, dir.path(), "b", worker).await;
    let fresh = sync(&server, &mut b).await;
    assert_eq!(fresh.received_docs, 60);
    assert!(fresh.verified);
    assert_eq!(b.households_in_grid(g).expect("list").len(), 60);
    assert_eq!(sync(&server, &mut b).await.received_docs, 0);
}

#[tokio::test]
async fn a_worker_can_neither_read_nor_write_another_grid() {
    let server = TestServer::start();
    let storage = server.storage();
    let (ga, gb) = (grid(&*storage, "A"), grid(&*storage, "B"));
    let wa = member(&*storage, "A网格员", Role::GridWorker, &[ga]);
    let wb = member(&*storage, "B网格员", Role::GridWorker, &[gb]);
    let dir = devices_dir();
    let mut a = device(&server, dir.path(), "a", wa).await;
    let mut b = device(&server, dir.path(), "b", wb).await;
    let home_b = b.create_household(&household(gb, "1", "B户"), t(0)).expect("household");
    sync(&server, &mut b).await;

    // Reading: catch-up, manifest and repair never hand out grid B's household.
    let report = sync(&server, &mut a).await;
    assert_eq!(report.received_docs, 0);
    assert!(a.documents().expect("docs").is_empty());
    let token = a.enrolment().expect("e").expect("enrolled").token;
    let manifest = server.client().post_frame(&token, client::manifest_request()).await.expect("manifest");
    assert!(
        matches!(doorstep_client::decode_reply(&manifest).expect("frame"), ServerMessage::Manifest(m) if m.is_empty())
    );
    let mut probe = automerge::AutoCommit::new();
    let ask =
        automerge::sync::SyncDoc::generate_sync_message(&probe.sync(), &mut automerge::sync::State::new())
            .expect("a first message");
    let repair = ClientMessage::Repair(vec![doorstep_core::sync::message::DocSyncMessage {
        doc: wire_id(home_b.into()),
        kind: doorstep_core::doc::DocumentKind::Household,
        message: ByteBuf::from(ask.encode()),
    }]);
    let reply = server.client().post_frame(&token, encode_client(&repair)).await.expect("reply");
    assert!(matches!(doorstep_client::decode_reply(&reply).expect("frame"),
        ServerMessage::Error(e) if e.code == ErrorCode::OutOfScope));

    // Writing: a household registered in grid B by A's device is refused, nothing stored,
    // and A keeps it pending.
    // The refused document is held back (reported, kept) and the rest of the sync goes on.
    let smuggled = a.create_household(&household(gb, "2", "偷偷加的"), t(1)).expect("local edit");
    let mine = a.create_household(&household(ga, "3", "自己网格的"), t(1)).expect("local edit");
    let report = server.client().sync(&mut a).await.expect("the rest syncs");
    assert_eq!(report.held_back, vec![(DocumentId::from(smuggled), ErrorCode::OutOfScope)]);
    assert_eq!(report.uploaded_changes, 1);
    assert!(storage.document(smuggled.into()).expect("read").is_none());
    assert!(storage.document(mine.into()).expect("read").is_some());
    assert_eq!(a.unsynced_change_count().expect("count"), 1, "nothing lost on the device");

    // Also refused: an edit of grid B's household uploaded under its id.
    let mut forged = Replica::open_in_memory().expect("replica");
    forged.set_member(wa).expect("member");
    let saved = b.save_document(home_b.into()).expect("save");
    forged.apply_remote(home_b.into(), &saved).expect("copy");
    let fake = a.actor_id().clone();
    let mut doc = automerge::AutoCommit::load(&saved).expect("load").with_actor(fake);
    doorstep_core::doc::household::record_visit(
        &mut doc,
        home_b,
        doorstep_core::ids::VisitId::new_random(),
        &visit(2, "x"),
        wa,
    )
    .expect("edit");
    doc.commit();
    let change = doc.get_last_local_change().expect("change").raw_bytes().to_vec();
    let upload = ClientMessage::Sync(SyncRequest {
        uploads: vec![Upload { doc: wire_id(home_b.into()), changes: vec![ByteBuf::from(change)] }],
        ..SyncRequest::default()
    });
    let reply = server.client().post_frame(&token, encode_client(&upload)).await.expect("reply");
    assert!(matches!(doorstep_client::decode_reply(&reply).expect("frame"),
        ServerMessage::Error(e) if e.code == ErrorCode::OutOfScope));
    assert_eq!(storage.document(home_b.into()).expect("read").expect("stored").get_heads().len(), 1);
}

#[tokio::test]
async fn a_change_written_by_another_actor_is_rejected_and_nothing_of_the_upload_is_stored() {
    let server = TestServer::start();
    let storage = server.storage();
    let g = grid(&*storage, "G");
    let w = member(&*storage, "网格员", Role::GridWorker, &[g]);
    let dir = devices_dir();
    let mut a = device(&server, dir.path(), "a", w).await;
    let honest = a.create_household(&household(g, "1", "甲"), t(0)).expect("household");
    // A change of a household made with somebody else's actor id.
    let mut other = Replica::open_in_memory().expect("replica");
    other.set_member(w).expect("member");
    let forged = other.create_household(&household(g, "2", "乙"), t(0)).expect("household");
    let forged_changes = other.unsynced_changes(forged.into()).expect("changes");
    let (frame, _) = client::begin_round(&mut a, &ClientLimits::default(), false, &[]).expect("round");
    let ClientMessage::Sync(mut request) =
        doorstep_core::sync::frame::decode_client(&frame, usize::MAX).expect("decode")
    else {
        panic!("a sync frame")
    };
    request.uploads.push(Upload {
        doc: wire_id(forged.into()),
        changes: forged_changes.into_iter().map(ByteBuf::from).collect(),
    });
    let token = a.enrolment().expect("e").expect("enrolled").token;
    let reply = server
        .client()
        .post_frame(&token, encode_client(&ClientMessage::Sync(request)))
        .await
        .expect("reply");
    assert!(matches!(doorstep_client::decode_reply(&reply).expect("frame"),
        ServerMessage::Error(e) if e.code == ErrorCode::ForgedActor));
    assert!(
        storage.document(honest.into()).expect("read").is_none(),
        "the honest part was not stored either"
    );
    assert!(storage.document(forged.into()).expect("read").is_none());
    assert_eq!(storage.latest_seq().expect("seq"), 0);
    // The honest upload alone goes through.
    assert_eq!(sync(&server, &mut a).await.uploaded_changes, 1);
}

#[tokio::test]
async fn a_revoked_device_is_refused_and_purges_everything_even_on_an_open_websocket() {
    let server = TestServer::start();
    let storage = server.storage();
    let g = grid(&*storage, "G");
    let w = member(&*storage, "网格员", Role::GridWorker, &[g]);
    let dir = devices_dir();
    let mut phone = device(&server, dir.path(), "phone", w).await;
    let mut other = device(&server, dir.path(), "other", w).await;
    phone.create_household(&household(g, "1", "甲"), t(0)).expect("household");
    sync(&server, &mut phone).await;
    let device_id = phone.enrolment().expect("e").expect("enrolled").device;
    let token = doorstep_client::Client::device_token(&phone).expect("token");

    // Revoked on the command line while the phone's WebSocket is open.
    let mut live = server
        .client()
        .connect_live(&doorstep_client::Client::device_token(&phone).expect("token"))
        .await
        .expect("ws");
    live.sync(&mut phone).await.expect("live sync");
    let out = server.admin(&["device", "revoke", "--device", &device_id.to_string()]);
    assert!(out.contains("revoked"), "{out}");
    let err = live.next_push(&mut phone).await.unwrap_err();
    assert!(matches!(err, ClientError::Refused { code: ErrorCode::DeviceRevoked, .. }), "{err:?}");
    assert!(phone.documents().expect("docs").is_empty(), "the phone purged its data");

    // The phone forgot its enrolment with its data: it is no longer enrolled.
    assert!(phone.enrolment().expect("read").is_none() && phone.member().is_none());
    let err = server.client().sync(&mut phone).await.unwrap_err();
    assert!(matches!(err, ClientError::NotEnrolled), "{err:?}");
    // Over HTTP the revoked token is refused too.
    let round = encode_client(&ClientMessage::Sync(SyncRequest::default()));
    let reply = server.client().post_frame(&token, round).await.expect("reply");
    match doorstep_client::decode_reply(&reply).expect("frame") {
        ServerMessage::Error(e) => assert_eq!(e.code, ErrorCode::DeviceRevoked),
        other => panic!("a revoked token was answered: {other:?}"),
    }
    // Other devices are unaffected.
    assert_eq!(sync(&server, &mut other).await.received_docs, 1);
}

#[tokio::test]
async fn a_reassigned_worker_uploads_first_then_purges_and_the_new_worker_receives() {
    let server = TestServer::start();
    let storage = server.storage();
    let g = grid(&*storage, "G");
    let old = member(&*storage, "老网格员", Role::GridWorker, &[g]);
    let new = member(&*storage, "新网格员", Role::GridWorker, &[]);
    let dir = devices_dir();
    let mut a = device(&server, dir.path(), "old", old).await;
    let home = a.create_household(&household(g, "1", "甲"), t(0)).expect("household");
    sync(&server, &mut a).await;
    // Offline visit, then the grid is handed over before the phone reconnects.
    a.record_visit(home, &visit(5, "交接前的走访")).expect("visit");
    storage.set_member_grid(old, g, false).expect("unassign");
    storage.set_member_grid(new, g, true).expect("assign");
    let report = sync(&server, &mut a).await;
    assert_eq!(report.uploaded_changes, 1, "the offline visit reached the server");
    assert!(a.documents().expect("docs").is_empty(), "then the household left the old phone");
    let mut b = device(&server, dir.path(), "new", new).await;
    sync(&server, &mut b).await;
    assert_eq!(b.household(home).expect("new worker has it").visits.len(), 1);
}

/// A server whose metrics answer the token `m` (with the directory holding its config).
fn server_with_metrics() -> (TestServer, tempfile::TempDir) {
    let config_dir = tempfile::tempdir().expect("tempdir");
    let config = config_dir.path().join("metrics.toml");
    std::fs::write(&config, "metrics_token = \"m\"\n").expect("config");
    let server = TestServer::start_with(
        tempfile::tempdir().expect("tempdir"),
        &["--config", config.to_str().expect("path")],
    );
    (server, config_dir)
}

/// `doorstep_push_rounds_total` from the server's metrics.
async fn push_rounds(server: &TestServer, token: &str) -> u64 {
    let text = reqwest::Client::new()
        .get(format!("{}/metrics", server.url))
        .bearer_auth(token)
        .send()
        .await
        .expect("metrics answer")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .find_map(|l| l.strip_prefix("doorstep_push_rounds_total "))
        .and_then(|v| v.trim().parse().ok())
        .expect("push rounds counted")
}

#[tokio::test]
async fn a_change_outside_a_live_connections_scope_costs_it_no_push_round() {
    let (server, _config) = server_with_metrics();
    let storage = server.storage();
    let (ga, gb) = (grid(&*storage, "A"), grid(&*storage, "B"));
    let worker_a = member(&*storage, "甲网格员", Role::GridWorker, &[ga]);
    let watcher_b = member(&*storage, "乙网格员", Role::GridWorker, &[gb]);
    let worker_b = member(&*storage, "乙网格员二", Role::GridWorker, &[gb]);
    let dir = devices_dir();
    let mut a = device(&server, dir.path(), "a", worker_a).await;
    let mut b = device(&server, dir.path(), "b", worker_b).await;
    let mut watcher = device(&server, dir.path(), "watcher", watcher_b).await;
    let mut live = server
        .client()
        .connect_live(&doorstep_client::Client::device_token(&watcher).expect("token"))
        .await
        .expect("ws");
    live.sync(&mut watcher).await.expect("first round");
    // A change in grid A, then one in grid B. Notices reach the connection in order, so once
    // grid B's change is pushed, grid A's notice has been handled too.
    a.create_household(&household(ga, "1", "甲"), t(0)).expect("household");
    sync(&server, &mut a).await;
    let home_b = b.create_household(&household(gb, "2", "乙"), t(0)).expect("household");
    sync(&server, &mut b).await;
    let pushed = live.next_push(&mut watcher).await.expect("push");
    assert_eq!(pushed.received_docs, 1);
    assert!(watcher.household(home_b).is_ok());
    assert_eq!(
        push_rounds(&server, "m").await,
        1,
        "grid A's change woke no storage round for grid B's phone"
    );
}

#[tokio::test]
async fn an_upload_over_a_live_connection_costs_that_connection_no_push_round() {
    let (server, _config) = server_with_metrics();
    let storage = server.storage();
    let g = grid(&*storage, "G");
    let (worker, mate) = (
        member(&*storage, "网格员", Role::GridWorker, &[g]),
        member(&*storage, "同事", Role::GridWorker, &[g]),
    );
    let dir = devices_dir();
    let mut phone = device(&server, dir.path(), "phone", worker).await;
    let mut other = device(&server, dir.path(), "other", mate).await;
    let mut live = server
        .client()
        .connect_live(&doorstep_client::Client::device_token(&phone).expect("token"))
        .await
        .expect("ws");
    live.sync(&mut phone).await.expect("first round");
    // The phone uploads over its live connection: the reply already brought it up to date.
    phone.create_household(&household(g, "1", "甲"), t(0)).expect("household");
    assert_eq!(live.sync(&mut phone).await.expect("upload").uploaded_changes, 1);
    // Then a grid-mate's change, which must be pushed. Notices reach the connection in order,
    // so once it is pushed, the phone's own notice has been handled.
    let home = other.create_household(&household(g, "2", "乙"), t(0)).expect("household");
    sync(&server, &mut other).await;
    let pushed = live.next_push(&mut phone).await.expect("push");
    assert_eq!(pushed.received_docs, 1);
    assert!(phone.household(home).is_ok());
    assert_eq!(push_rounds(&server, "m").await, 1, "the phone's own upload woke a push round");
}

#[tokio::test]
async fn a_grid_handed_over_while_the_old_phone_is_offline_loses_nothing_and_travels_with_its_requests() {
    let server = TestServer::start();
    let storage = server.storage();
    let g = grid(&*storage, "G");
    let old = member(&*storage, "老网格员", Role::GridWorker, &[g]);
    let new = member(&*storage, "新网格员", Role::GridWorker, &[]);
    let dir = devices_dir();
    let mut a = device(&server, dir.path(), "old", old).await;
    let mut b = device(&server, dir.path(), "new", new).await;
    let home = a.create_household(&household(g, "1", "甲"), t(0)).expect("household");
    let req = a
        .raise_request(&NewRequest {
            household: Some(home),
            grid: None,
            category: "elderly_care".into(),
            description: "每周送餐".into(),
            urgency: Urgency::Normal,
            at: t(1),
        })
        .expect("request");
    sync(&server, &mut a).await;
    assert_eq!(sync(&server, &mut b).await.received_docs, 0, "B holds nothing of the grid yet");

    // A works offline: two visits and the request accepted, a follow-up still pending.
    a.record_visit(home, &visit(5, "交接前的走访")).expect("visit");
    a.record_visit(home, &visit(6, "再次走访")).expect("visit");
    a.add_request_event(req, &event(EventAction::Accepted, 7)).expect("accepted");
    // Meanwhile the administrator hands the grid over with one command.
    let out = server.admin(&[
        "grid",
        "hand-over",
        "--grid",
        &g.to_string(),
        "--from",
        &old.to_string(),
        "--to",
        &new.to_string(),
    ]);
    assert!(out.contains("grid handed over"), "{out}");

    let report = sync(&server, &mut a).await;
    assert_eq!(report.uploaded_changes, 3, "every offline change reached the server");
    assert_eq!(a.unsynced_change_count().expect("count"), 0);
    assert!(a.documents().expect("docs").is_empty(), "then the grid left the old phone");
    assert!(a.grids().expect("grids").is_empty());

    let report = sync(&server, &mut b).await;
    assert!(report.verified, "{report:?}");
    let received = b.household(home).expect("the new worker has the household");
    assert_eq!(received.visits.len(), 2, "with A's offline visits");
    let request = b.request(req).expect("and its open request");
    assert_eq!(request.status(), doorstep_core::lifecycle::RequestStatus::Accepted);
    // B carries on where A stopped.
    b.add_request_event(req, &event(EventAction::Resolved, 8)).expect("B resolves it");
    assert_eq!(sync(&server, &mut b).await.uploaded_changes, 1);
    // Handing over a grid the member no longer holds changes nothing.
    assert!(!storage.hand_over_grid(g, old, new, doorstep_server::http::now()).expect("storage"));
}

#[tokio::test]
async fn households_handed_over_to_another_worker_take_their_requests_and_the_offline_visit_along() {
    let server = TestServer::start();
    let storage = server.storage();
    let g1 = grid(&*storage, "G1");
    let g2 = grid(&*storage, "G2");
    let old = member(&*storage, "老网格员", Role::GridWorker, &[g1]);
    let new = member(&*storage, "新网格员", Role::GridWorker, &[g2]);
    let dir = devices_dir();
    let mut a = device(&server, dir.path(), "old", old).await;
    let mut b = device(&server, dir.path(), "new", new).await;
    let moving = a.create_household(&household(g1, "1", "甲"), t(0)).expect("household");
    let staying = a.create_household(&household(g1, "2", "乙"), t(0)).expect("household");
    let req = a
        .raise_request(&NewRequest {
            household: Some(moving),
            grid: None,
            category: "elderly_care".into(),
            description: "每周送餐".into(),
            urgency: Urgency::Normal,
            at: t(1),
        })
        .expect("request");
    sync(&server, &mut a).await;
    a.record_visit(moving, &visit(5, "交接前的走访")).expect("offline visit");
    let out = server.admin(&[
        "grid",
        "hand-over-households",
        "--to-grid",
        &g2.to_string(),
        "--household",
        &moving.to_string(),
    ]);
    assert!(out.contains("households handed over: 1, requests: 1"), "{out}");

    let report = sync(&server, &mut a).await;
    assert_eq!(report.uploaded_changes, 1, "the offline visit was accepted");
    let kept: Vec<DocumentId> = a.documents().expect("docs").into_iter().map(|(id, _)| id).collect();
    assert_eq!(kept, vec![DocumentId::from(staying)], "only the household that stayed");
    let report = sync(&server, &mut b).await;
    assert!(report.verified, "{report:?}");
    let received = b.household(moving).expect("moved");
    assert_eq!(received.address.grid, g2);
    assert_eq!(received.visits.len(), 1);
    assert_eq!(b.request(req).expect("its request").grid, g2);
}

#[tokio::test]
async fn each_round_records_the_last_sync_and_the_unsynced_count_and_an_old_client_without_it_still_syncs() {
    let server = TestServer::start();
    let storage = server.storage();
    let g = grid(&*storage, "G");
    let w = member(&*storage, "王芳", Role::GridWorker, &[g]);
    let dir = devices_dir();
    let mut a = device(&server, dir.path(), "a", w).await;
    let home = a.create_household(&household(g, "1", "甲"), t(0)).expect("household");
    sync(&server, &mut a).await;
    let row =
        |storage: &dyn Storage| storage.devices().expect("devices").into_iter().next().expect("the device");
    assert!(row(&*storage).last_seen_at.is_some());
    assert_eq!(row(&*storage).last_unsynced, Some(0));
    // Two visits; a round that uploads neither reports both as unsynced.
    a.record_visit(home, &visit(1, "一")).expect("visit");
    a.record_visit(home, &visit(2, "二")).expect("visit");
    let token = a.enrolment().expect("e").expect("enrolled").token;
    let limits = ClientLimits::default();
    let (frame, round) = client::begin_round(&mut a, &limits, false, &[home.into()]).expect("round");
    let reply = server.client().post_frame(&token, frame).await.expect("reply");
    client::finish_round(&mut a, round, &reply, &limits).expect("applied");
    assert_eq!(row(&*storage).last_unsynced, Some(2));
    // An app that predates the field sends `{"sync": {"cursor": 0}}`: it is answered, and
    // counted as a contact with nothing reported unsynced.
    let mut old_frame = vec![PROTOCOL_VERSION, 0xA1, 0x64];
    old_frame.extend_from_slice(b"sync");
    old_frame.extend_from_slice(&[0xA1, 0x66]);
    old_frame.extend_from_slice(b"cursor");
    old_frame.push(0x00);
    let reply = server.client().post_frame(&token, old_frame).await.expect("reply");
    let decoded = doorstep_core::sync::frame::decode_server(&reply, 1 << 24).expect("decodes");
    assert!(matches!(decoded, ServerMessage::Sync(_)), "{decoded:?}");
    assert_eq!(row(&*storage).last_unsynced, Some(0));
}

#[tokio::test]
async fn a_household_registered_twice_offline_is_marked_as_one_everywhere_and_the_mark_can_be_undone() {
    let server = TestServer::start();
    let storage = server.storage();
    let g = grid(&*storage, "G");
    let wa = member(&*storage, "王芳", Role::GridWorker, &[g]);
    let wb = member(&*storage, "楼栋长", Role::GridWorker, &[g]);
    let dir = devices_dir();
    let mut a = device(&server, dir.path(), "a", wa).await;
    let mut b = device(&server, dir.path(), "b", wb).await;
    // Both register 501 offline, visit it and raise a request about it.
    let mut requests = Vec::new();
    let mut homes = Vec::new();
    for (phone, n) in [(&mut a, 0), (&mut b, 10)] {
        let home = phone.create_household(&household(g, "501", "陈奶奶"), t(n)).expect("household");
        phone.record_visit(home, &visit(n + 1, "走访")).expect("visit");
        requests.push(
            phone
                .raise_request(&NewRequest {
                    household: Some(home),
                    grid: None,
                    category: "elderly_care".into(),
                    description: "需要送餐".into(),
                    urgency: Urgency::Normal,
                    at: t(n + 2),
                })
                .expect("request"),
        );
        homes.push(home);
    }
    for _ in 0..2 {
        sync(&server, &mut a).await;
        sync(&server, &mut b).await;
    }
    assert_eq!(b.households_in_grid(g).expect("list").len(), 2, "two households before the mark");

    // A marks them as the same household; the mark syncs like any edit.
    a.mark_same_household(homes[0], homes[1], t(30)).expect("mark");
    sync(&server, &mut a).await;
    sync(&server, &mut b).await;
    for phone in [&mut a, &mut b] {
        let rows = phone.households_in_grid(g).expect("list");
        assert_eq!(rows.len(), 1, "one household on every replica");
        assert_eq!(rows[0].open_requests, 2);
        for home in &homes {
            let merged = phone.merged_household(*home).expect("merged");
            assert_eq!(merged.household.visits.len(), 2, "both visit histories");
            let mut got: Vec<_> = merged.requests.iter().map(|r| r.id).collect();
            got.sort();
            let mut want = requests.clone();
            want.sort();
            assert_eq!(got, want, "all requests");
        }
        assert_eq!(phone.documents().expect("docs").len(), 4, "nothing deleted");
    }
    for home in &homes {
        assert!(
            storage.document((*home).into()).expect("read").is_some(),
            "both documents stay on the server"
        );
    }

    // B undoes the wrong merge; every replica shows two households again.
    b.unmark_same_household(homes[1], homes[0], t(40)).expect("undo");
    sync(&server, &mut b).await;
    let report = sync(&server, &mut a).await;
    assert!(report.verified, "{report:?}");
    for phone in [&mut a, &mut b] {
        assert_eq!(phone.households_in_grid(g).expect("list").len(), 2);
        assert_eq!(phone.merged_household(homes[0]).expect("one").household.visits.len(), 1);
    }
    assert!(a.unmark_same_household(homes[0], homes[1], t(50)).is_err(), "nothing left to undo");
}

#[tokio::test]
async fn changes_reach_a_live_websocket_without_asking() {
    let server = TestServer::start();
    let storage = server.storage();
    let g = grid(&*storage, "G");
    let w = member(&*storage, "网格员", Role::GridWorker, &[g]);
    let s = member(&*storage, "主任", Role::Supervisor, &[g]);
    let dir = devices_dir();
    let mut worker = device(&server, dir.path(), "worker", w).await;
    let mut boss = device(&server, dir.path(), "boss", s).await;
    let mut live = server
        .client()
        .connect_live(&doorstep_client::Client::device_token(&boss).expect("token"))
        .await
        .expect("ws");
    live.sync(&mut boss).await.expect("first round");
    let home = worker.create_household(&household(g, "1", "甲"), t(0)).expect("household");
    sync(&server, &mut worker).await;
    let pushed = live.next_push(&mut boss).await.expect("push");
    assert_eq!(pushed.received_docs, 1);
    assert_eq!(boss.household(home).expect("pushed").residents[0].name, "甲");
    // The push moved the cursor: the next round is idle.
    assert_eq!(live.sync(&mut boss).await.expect("round").received_docs, 0);
    // A push is not the device's own contact: the worker's reported backlog is kept.
    worker.record_visit(home, &visit(3, "离线")).expect("visit");
    let (frame, _) =
        client::begin_round(&mut worker, &ClientLimits::default(), false, &[home.into()]).expect("round");
    let token = worker.enrolment().expect("e").expect("enrolled").token;
    server.client().post_frame(&token, frame).await.expect("contact with one change pending");
    let devices = storage.devices().expect("devices");
    let worker_device = worker.enrolment().expect("e").expect("enrolled").device;
    let row = devices.iter().find(|d| d.id == worker_device).expect("row");
    assert_eq!(row.last_unsynced, Some(1));
}

#[tokio::test]
async fn a_digest_mismatch_is_repaired_with_automerge_sync() {
    let server = TestServer::start();
    let storage = server.storage();
    let g = grid(&*storage, "G");
    let w = member(&*storage, "网格员", Role::GridWorker, &[g]);
    let dir = devices_dir();
    let mut a = device(&server, dir.path(), "a", w).await;
    let mut b = device(&server, dir.path(), "b", w).await;
    let home = a.create_household(&household(g, "1", "甲"), t(0)).expect("household");
    a.record_visit(home, &visit(1, "走访")).expect("visit");
    sync(&server, &mut a).await;
    sync(&server, &mut b).await;
    // B's replica loses the document behind the cursor's back (a restored backup, a bug…).
    b.purge(DocumentId::from(home)).expect("local loss");
    let report = sync(&server, &mut b).await;
    assert_eq!(report.repaired_docs, 1);
    assert!(report.verified);
    assert_eq!(b.household(home).expect("repaired").visits.len(), 1);
    assert!(sync(&server, &mut b).await.verified);
}

#[tokio::test]
async fn a_killed_server_loses_nothing_it_acknowledged_and_duplicates_nothing() {
    let server = TestServer::start();
    let storage = server.storage();
    let g = grid(&*storage, "G");
    let w = member(&*storage, "网格员", Role::GridWorker, &[g]);
    drop(storage);
    let dir = devices_dir();
    let mut a = device(&server, dir.path(), "a", w).await;
    let home = a.create_household(&household(g, "1", "甲"), t(0)).expect("household");
    sync(&server, &mut a).await;
    let limits = ClientLimits { max_upload_bytes: 1, ..ClientLimits::default() };
    let client = server.client().with_limits(limits.clone());
    let token = a.enrolment().expect("e").expect("enrolled").token;
    // Many small uploads; the server dies with one in flight.
    for n in 0..30 {
        a.record_visit(home, &visit(n, "走访")).expect("visit");
    }
    let mut acknowledged = 0;
    let mut in_flight = None;
    for round in 0..30 {
        let (frame, r) = client::begin_round(&mut a, &limits, false, &[]).expect("round");
        if round == 10 {
            in_flight = Some(frame);
            break;
        }
        let reply = client.post_frame(&token, frame).await.expect("reply");
        acknowledged += client::finish_round(&mut a, r, &reply, &limits).expect("apply").acknowledged_changes;
    }
    let data = server.kill();
    let killed_request = client.post_frame(&token, in_flight.expect("frame")).await;
    assert!(killed_request.is_err(), "the server is gone");
    assert!(acknowledged > 0);

    let server = TestServer::restart(data);
    let report = server.client().sync(&mut a).await.expect("retry after restart");
    assert_eq!(acknowledged + report.uploaded_changes, 30);
    assert_eq!(a.unsynced_change_count().expect("count"), 0);
    let mut doc = server.storage().document(home.into()).expect("read").expect("stored");
    let visits = doorstep_core::doc::household::read(&doc, home).expect("household").visits.len();
    assert_eq!(visits, 30, "every visit once");
    assert_eq!(doc.get_changes(&[]).len(), 31, "no change twice");
    assert!(report.verified);
}

#[tokio::test]
async fn bad_frames_get_their_documented_errors_over_http_and_websocket() {
    let server = TestServer::start();
    let storage = server.storage();
    let g = grid(&*storage, "G");
    let w = member(&*storage, "网格员", Role::GridWorker, &[g]);
    let dir = devices_dir();
    let mut a = device(&server, dir.path(), "a", w).await;
    let token = a.enrolment().expect("e").expect("enrolled").token;
    let good = encode_client(&ClientMessage::Sync(SyncRequest::default()));
    let mut wrong_version = good.clone();
    wrong_version[0] = PROTOCOL_VERSION + 1;
    let cases: Vec<(&str, Vec<u8>, ErrorCode)> = vec![
        ("garbage", b"\x01not cbor at all".to_vec(), ErrorCode::MalformedFrame),
        ("empty", Vec::new(), ErrorCode::MalformedFrame),
        ("truncated", good[..good.len() - 3].to_vec(), ErrorCode::MalformedFrame),
        ("wrong version", wrong_version, ErrorCode::UnsupportedVersion),
        ("oversized", vec![PROTOCOL_VERSION; 9 * 1024 * 1024], ErrorCode::FrameTooLarge),
    ];
    let http = reqwest::Client::new();
    for (name, body, code) in &cases {
        let sent =
            http.post(format!("{}/v1/sync", server.url)).bearer_auth(&token).body(body.clone()).send().await;
        let response = match sent {
            Ok(response) => response,
            // A body declared over the limit is refused before it is read, and the connection
            // closed: the client may still be writing when the answer comes. The early answer
            // itself is checked byte by byte on a raw socket in `abuse.rs`
            // (`a_huge_declared_body_is_refused_before_it_is_read`).
            Err(e) if *name == "oversized" && e.is_request() => continue,
            Err(e) => panic!("{name}: not answered: {e}"),
        };
        let status = response.status().as_u16();
        let frame = response.bytes().await.expect("body");
        match doorstep_client::decode_reply(&frame).expect("an error frame") {
            ServerMessage::Error(e) => assert_eq!(e.code, *code, "{name}"),
            other => panic!("{name}: {other:?}"),
        }
        assert!(matches!(status, 400 | 413), "{name}: HTTP {status}");
    }
    // No token, a wrong token.
    let response =
        http.post(format!("{}/v1/sync", server.url)).body(good.clone()).send().await.expect("answered");
    assert_eq!(response.status().as_u16(), 401);
    let response = http
        .post(format!("{}/v1/sync", server.url))
        .bearer_auth("dst_nope")
        .body(good.clone())
        .send()
        .await
        .expect("a");
    assert_eq!(response.status().as_u16(), 401);
    // Over the WebSocket the same codes come back and the connection stays usable.
    let mut live = server
        .client()
        .connect_live(&doorstep_client::Client::device_token(&a).expect("token"))
        .await
        .expect("ws");
    for (name, body, code) in cases.into_iter().filter(|(n, ..)| *n != "empty") {
        let reply = live.send_frame(body).await.expect("answered");
        match doorstep_client::decode_reply(&reply).expect("frame") {
            ServerMessage::Error(e) => assert_eq!(e.code, code, "{name}"),
            other => panic!("{name}: {other:?}"),
        }
    }
    assert_eq!(live.sync(&mut a).await.expect("still usable").round_trips, 1);
    // Health needs no token; the enrolment code is single use.
    assert_eq!(http.get(format!("{}/healthz", server.url)).send().await.expect("ok").status().as_u16(), 200);
    let code = code_for(&*storage, w);
    let mut c = Replica::open_in_memory().expect("replica");
    server.client().enrol(&mut c, &code, "c").await.expect("first use");
    let mut d = Replica::open_in_memory().expect("replica");
    let err = server.client().enrol(&mut d, &code, "d").await.unwrap_err();
    assert!(matches!(err, ClientError::Refused { code: ErrorCode::Unauthorized, .. }), "{err:?}");
}

#[tokio::test]
async fn a_lost_reply_carrying_a_whole_document_heals_on_the_next_sync() {
    let server = TestServer::start();
    let storage = server.storage();
    let (g, h) = (grid(&*storage, "G"), grid(&*storage, "H"));
    let w = member(&*storage, "网格员", Role::GridWorker, &[g]);
    let other = member(&*storage, "H网格员", Role::GridWorker, &[h]);
    let dir = devices_dir();
    let mut a = device(&server, dir.path(), "a", w).await;
    let mut b = device(&server, dir.path(), "b", other).await;
    let home = b.create_household(&household(h, "1", "乙"), t(0)).expect("household");
    sync(&server, &mut b).await;
    sync(&server, &mut a).await;
    // Grid H is added to A's scope; the reply that carries the household is lost on the way.
    storage.set_member_grid(w, h, true).expect("assign");
    let token = a.enrolment().expect("e").expect("enrolled").token;
    let (frame, _lost) = client::begin_round(&mut a, &ClientLimits::default(), false, &[]).expect("round");
    let reply = server.client().post_frame(&token, frame).await.expect("sent whole");
    assert!(
        matches!(doorstep_client::decode_reply(&reply).expect("frame"), ServerMessage::Sync(r) if r.docs.len() == 1)
    );
    // Meanwhile the household changes, so the server would only send that change next time.
    b.record_visit(home, &visit(1, "新的走访")).expect("visit");
    sync(&server, &mut b).await;
    let report = sync(&server, &mut a).await;
    assert!(report.verified, "{report:?}");
    assert_eq!(a.household(home).expect("healed").visits.len(), 1);
}

#[tokio::test]
async fn a_document_that_leaves_and_reenters_scope_while_changes_are_pending_comes_back_whole() {
    let server = TestServer::start();
    let storage = server.storage();
    let g = grid(&*storage, "G");
    let w = member(&*storage, "甲", Role::GridWorker, &[g]);
    let other = member(&*storage, "乙", Role::GridWorker, &[g]);
    let dir = devices_dir();
    let mut a = device(&server, dir.path(), "a", w).await;
    let mut b = device(&server, dir.path(), "b", other).await;
    let home = a.create_household(&household(g, "1", "丙"), t(0)).expect("household");
    sync(&server, &mut a).await;
    sync(&server, &mut b).await;
    // A visits offline; the grid leaves A's scope; A's next round does not carry the visit (as
    // when a push tells it to purge), so the purge waits for the upload.
    a.record_visit(home, &visit(1, "甲的走访")).expect("visit");
    storage.set_member_grid(w, g, false).expect("unassign");
    let token = a.enrolment().expect("e").expect("enrolled").token;
    let limits = ClientLimits::default();
    let (frame, round) = client::begin_round(&mut a, &limits, false, &[home.into()]).expect("round");
    let reply = server.client().post_frame(&token, frame).await.expect("reply");
    client::finish_round(&mut a, round, &reply, &limits).expect("applied");
    assert_eq!(a.purges_waiting_for_upload().expect("list"), vec![DocumentId::from(home)]);
    // B changes the household while A does not hold it in scope; then the grid comes back.
    b.record_visit(home, &visit(2, "乙的走访")).expect("visit");
    sync(&server, &mut b).await;
    storage.set_member_grid(w, g, true).expect("reassign");
    let report = sync(&server, &mut a).await;
    assert!(report.verified, "{report:?}");
    assert_eq!(a.household(home).expect("whole").visits.len(), 2);
    sync(&server, &mut b).await;
    assert_eq!(b.household(home).expect("b").visits.len(), 2, "A's pending visit was uploaded");
}

#[tokio::test]
async fn a_volunteer_removed_as_helper_loses_the_household_and_its_requests() {
    let server = TestServer::start();
    let storage = server.storage();
    let g = grid(&*storage, "G");
    let worker = member(&*storage, "网格员", Role::GridWorker, &[g]);
    let volunteer = member(&*storage, "志愿者", Role::Volunteer, &[]);
    let dir = devices_dir();
    let mut w = device(&server, dir.path(), "w", worker).await;
    let mut v = device(&server, dir.path(), "v", volunteer).await;
    let home = w.create_household(&household(g, "1", "独居老人"), t(0)).expect("household");
    let req = w
        .raise_request(&NewRequest {
            household: Some(home),
            grid: None,
            category: "elderly_care".into(),
            description: "每周送餐".into(),
            urgency: Urgency::Normal,
            at: t(1),
        })
        .expect("request");
    w.set_helper(home, volunteer, true).expect("helper");
    sync(&server, &mut w).await;
    let report = sync(&server, &mut v).await;
    assert_eq!(report.received_docs, 2, "the household and its request");
    assert!(report.verified);
    w.set_helper(home, volunteer, false).expect("no longer helper");
    sync(&server, &mut w).await;
    let report = sync(&server, &mut v).await;
    assert_eq!(report.purged, 2);
    assert!(v.documents().expect("docs").is_empty());
    assert!(matches!(v.request(req), Err(doorstep_core::CoreError::UnknownRequest(_))));
}

#[tokio::test]
async fn paged_downloads_send_each_change_once() {
    let server = TestServer::start_with_pages(8192);
    let storage = server.storage();
    let g = grid(&*storage, "G");
    let w = member(&*storage, "网格员", Role::GridWorker, &[g]);
    let dir = devices_dir();
    let mut a = device(&server, dir.path(), "a", w).await;
    for n in 0..40 {
        let home = a.create_household(&household(g, &n.to_string(), "住户"), t(n)).expect("household");
        for v in 0..3 {
            a.record_visit(home, &visit(v, "走访记录，一切正常")).expect("visit");
        }
    }
    sync(&server, &mut a).await;
    let mut b = device(&server, dir.path(), "b", w).await;
    let report = sync(&server, &mut b).await;
    assert!(report.round_trips > 3, "small pages: {} rounds", report.round_trips);
    assert!(report.verified);
    let whole: usize = b
        .documents()
        .expect("docs")
        .into_iter()
        .map(|(id, _)| b.save_document(id).expect("save").len())
        .sum();
    assert!(
        report.bytes_down < whole + whole / 5 + 200 * report.round_trips,
        "{} bytes down for {} bytes of documents",
        report.bytes_down,
        whole
    );
}

#[tokio::test]
async fn a_paged_first_download_after_an_empty_start_completes_without_repair() {
    let server = TestServer::start_with_pages(4096);
    let storage = server.storage();
    let g = grid(&*storage, "G");
    let w = member(&*storage, "网格员", Role::GridWorker, &[g]);
    let dir = devices_dir();
    let mut a = device(&server, dir.path(), "a", w).await;
    // The county is empty when the phone first syncs; then the register is imported.
    assert_eq!(sync(&server, &mut a).await.received_docs, 0);
    let mut csv = String::from("community,grid,building,unit,room,name\n");
    for n in 0..40 {
        csv.push_str(&format!("幸福社区,{g},1栋,1单元,{n},住户{n}\n"));
    }
    let report = doorstep_server::import::import_csv(&*storage, &csv, w, doorstep_server::http::now())
        .expect("import");
    assert_eq!(report.households, 40);
    let report = sync(&server, &mut a).await;
    assert!(report.round_trips > 2, "{} rounds", report.round_trips);
    assert_eq!(report.received_docs, 40);
    assert_eq!(report.repaired_docs, 0, "the pages alone brought everything");
    assert!(report.verified);
}

#[tokio::test]
async fn a_stopping_server_closes_live_connections_and_exits_cleanly() {
    let server = TestServer::start();
    let storage = server.storage();
    let g = grid(&*storage, "G");
    let w = member(&*storage, "网格员", Role::GridWorker, &[g]);
    let dir = devices_dir();
    let mut phone = device(&server, dir.path(), "phone", w).await;
    let ready = reqwest::get(format!("{}/readyz", server.url)).await.expect("readyz");
    assert_eq!(ready.status(), 200, "the database answers");
    let mut live = server
        .client()
        .connect_live(&doorstep_client::Client::device_token(&phone).expect("token"))
        .await
        .expect("ws");
    live.sync(&mut phone).await.expect("round");
    // A rolling restart sends SIGTERM: the open WebSocket must not keep the node alive.
    assert!(tokio::task::spawn_blocking(move || server.terminate()).await.expect("join"), "clean exit");
    assert!(live.receive_push().await.is_err(), "the live connection was closed");
}

#[tokio::test]
async fn a_request_dispatched_elsewhere_leaves_the_first_department_on_a_busy_day_and_nothing_else_does() {
    let server = TestServer::start();
    let storage = server.storage();
    let g = grid(&*storage, "G");
    let worker = member(&*storage, "网格员", Role::GridWorker, &[g]);
    let now = doorstep_server::http::now();
    let civil = Code::new("civil_affairs").expect("code");
    let housing = Code::new("housing_construction").expect("code");
    let civil_staff =
        storage.create_member("民政", Role::DepartmentStaff, Some(&civil), now).expect("member");
    let housing_staff =
        storage.create_member("住建", Role::DepartmentStaff, Some(&housing), now).expect("member");
    let dir = devices_dir();
    let mut w = device(&server, dir.path(), "w", worker).await;
    let mut c = device(&server, dir.path(), "c", civil_staff).await;
    let mut h = device(&server, dir.path(), "h", housing_staff).await;
    let raise = |n: i64| NewRequest {
        household: None,
        grid: Some(g),
        category: "elderly_care".into(),
        description: format!("诉求 {n}"),
        urgency: Urgency::Normal,
        at: t(n),
    };
    let moving = w.raise_request(&raise(1)).expect("request");
    let staying = w.raise_request(&raise(2)).expect("request");
    for req in [moving, staying] {
        w.add_request_event(req, &event(EventAction::Dispatched { department: civil.clone() }, 3))
            .expect("dispatch");
    }
    sync(&server, &mut w).await;
    assert_eq!(sync(&server, &mut c).await.received_docs, 2);
    assert_eq!(sync(&server, &mut h).await.received_docs, 0);

    // A busy day: many documents change (households, and the request that stays), and one
    // request is dispatched to another department.
    for n in 0..30 {
        let home = w.create_household(&household(g, &n.to_string(), "住户"), t(10 + n)).expect("household");
        w.record_visit(home, &visit(20 + n, "走访")).expect("visit");
    }
    w.add_request_event(staying, &event(EventAction::Progress, 60)).expect("progress");
    w.add_request_event(moving, &event(EventAction::Dispatched { department: housing.clone() }, 61))
        .expect("re-dispatch");
    sync(&server, &mut w).await;

    let report = sync(&server, &mut c).await;
    assert_eq!(report.purged, 1, "only the re-dispatched request leaves: {report:?}");
    assert!(report.verified, "{report:?}");
    // Told by the round itself, not found later by the scope digest and a repair.
    assert_eq!((report.round_trips, report.repaired_docs), (1, 0), "{report:?}");
    assert!(matches!(c.request(moving), Err(doorstep_core::CoreError::UnknownRequest(_))));
    assert_eq!(c.request(staying).expect("kept").events.len(), 3, "the other request's change arrived");
    let report = sync(&server, &mut h).await;
    assert_eq!(report.received_docs, 1);
    assert!(report.verified, "{report:?}");
    // Nothing moves on the next round, for either.
    assert_eq!(sync(&server, &mut c).await.purged, 0);
    assert_eq!(sync(&server, &mut h).await.purged, 0);
}

#[tokio::test]
async fn a_device_of_any_language_learns_the_taxonomy_on_its_first_download_edited_or_not() {
    let server = TestServer::start();
    let storage = server.storage();
    let grid = storage.create_grid("一网格", "幸福社区", "城关街道").expect("grid");
    let worker = member(&*storage, "王芳", Role::GridWorker, &[grid]);
    let dir = devices_dir();
    let replica = device(&server, dir.path(), "w", worker).await;
    let token = replica.enrolment().expect("read").expect("enrolled").token;
    let shipped = doorstep_core::model::Taxonomy::default_county();
    let round = |cursor: u64, known: Option<u32>| {
        let request = SyncRequest { cursor, taxonomy_version: known, ..SyncRequest::default() };
        encode_client(&ClientMessage::Sync(request))
    };
    let taxonomy_of = |reply: Vec<u8>| match doorstep_client::decode_reply(&reply).expect("decodes") {
        ServerMessage::Sync(reply) => reply.taxonomy,
        other => panic!("{other:?}"),
    };
    let client = server.client();
    // A client that holds none (version 0), or does not say, on its first round: the whole
    // taxonomy in force, though the county never edited it.
    for known in [Some(0), None] {
        let sent = taxonomy_of(client.post_frame(&token, round(0, known)).await.expect("round"));
        assert_eq!(sent.as_ref(), Some(&shipped), "{known:?}");
    }
    // Up to date, or an older client past its first round: nothing (no bytes every round).
    assert_eq!(
        taxonomy_of(client.post_frame(&token, round(0, Some(shipped.version))).await.expect("r")),
        None
    );
    assert_eq!(taxonomy_of(client.post_frame(&token, round(5, None)).await.expect("r")), None);
}
