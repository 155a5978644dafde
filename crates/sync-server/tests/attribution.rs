//! What an upload claims, checked on the server (issue 16, findings 2, 3, 4, 11 and 13): who an
//! entry says wrote it, whether that member's role may take the action, whether a log lost or
//! rewrote an entry, whether every field keeps its rules, and whether the document is in the
//! member's scope *now*. Each probe is what a hostile phone can send: a change written with the
//! phone's own Automerge actor (so the actor check passes) but with forged content, posted as a
//! raw frame with the phone's real token. A refused upload stores nothing.

mod support;

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjType, ROOT, ReadDoc, ScalarValue};
use doorstep_core::doc;
use doorstep_core::ids::{DocumentId, EventId, GridId, HouseholdId, LinkId, MemberId, RequestId, VisitId};
use doorstep_core::model::{EventAction, NewEvent, NewRequest, NewVisit, SameAsMark, Urgency, VisitKind};
use doorstep_core::store::Replica;
use doorstep_core::sync::frame::encode_client;
use doorstep_core::sync::message::{
    ClientMessage, DocSyncMessage, ErrorCode, ServerMessage, SyncRequest, Upload, wire_id,
};
use doorstep_server::scope::Role;
use doorstep_server::storage::Storage;
use serde_bytes::ByteBuf;
use support::*;

/// The server's answer to one frame: the message, or the refusal's code and message.
async fn frame(
    server: &TestServer,
    token: &str,
    message: &ClientMessage,
) -> Result<ServerMessage, (ErrorCode, String)> {
    let reply = server.client().post_frame(token, encode_client(message)).await.expect("a frame comes back");
    match doorstep_client::decode_reply(&reply).expect("decodable") {
        ServerMessage::Error(e) => Err((e.code, e.message)),
        other => Ok(other),
    }
}

fn token(replica: &Replica) -> String {
    replica.enrolment().expect("read").expect("enrolled").token
}

/// The stored document, to be edited as `replica`'s device (its Automerge actor).
fn as_device(storage: &dyn Storage, id: DocumentId, replica: &Replica) -> AutoCommit {
    storage.document(id).expect("read").expect("stored").with_actor(replica.actor_id().clone())
}

/// Uploads the last change of `doc` (made by `commit`) to document `id`.
async fn upload(
    server: &TestServer,
    replica: &Replica,
    id: DocumentId,
    doc: &mut AutoCommit,
) -> Result<ServerMessage, (ErrorCode, String)> {
    doc.commit();
    let change = doc.get_last_local_change().expect("a change").raw_bytes().to_vec();
    let request = SyncRequest {
        uploads: vec![Upload { doc: wire_id(id), changes: vec![ByteBuf::from(change)] }],
        ..SyncRequest::default()
    };
    frame(server, &token(replica), &ClientMessage::Sync(request)).await
}

/// Uploads `doc` (made by `replica`'s device) as a new document.
async fn upload_new(
    server: &TestServer,
    replica: &Replica,
    id: DocumentId,
    doc: &mut AutoCommit,
) -> Result<ServerMessage, (ErrorCode, String)> {
    doc.commit();
    let changes = doc.get_changes(&[]).iter().map(|c| ByteBuf::from(c.raw_bytes().to_vec())).collect();
    let request =
        SyncRequest { uploads: vec![Upload { doc: wire_id(id), changes }], ..SyncRequest::default() };
    frame(server, &token(replica), &ClientMessage::Sync(request)).await
}

fn heads(storage: &dyn Storage, id: DocumentId) -> Vec<automerge::ChangeHash> {
    storage.document(id).expect("read").map(|d| d.clone().get_heads()).unwrap_or_default()
}

fn refused(answer: Result<ServerMessage, (ErrorCode, String)>, code: ErrorCode, id: DocumentId) -> String {
    match answer {
        Err((got, message)) => {
            assert_eq!(got, code, "{message}");
            assert!(message.contains(&id.to_string()), "the refusal names the document: {message}");
            message
        }
        Ok(other) => panic!("accepted: {other:?}"),
    }
}

/// A county with one grid, its worker's phone (synced, holding a household and a request)
/// and the grid's supervisor.
struct Grid {
    server: TestServer,
    _dir: tempfile::TempDir,
    grid: GridId,
    supervisor: MemberId,
    phone: Replica,
    home: HouseholdId,
    request: RequestId,
}

async fn grid_with_a_phone() -> Grid {
    let server = TestServer::start();
    let storage = server.storage();
    let grid = storage.create_grid("一网格", "幸福社区", "城关街道").expect("grid");
    let worker = member(&*storage, "王芳", Role::GridWorker, &[grid]);
    let supervisor = member(&*storage, "李主任", Role::Supervisor, &[grid]);
    let dir = devices_dir();
    let mut phone = device(&server, dir.path(), "worker", worker).await;
    let home = phone.create_household(&household(grid, "101", "陈奶奶"), t(1)).expect("household");
    let request = phone
        .raise_request(&NewRequest {
            household: Some(home),
            grid: None,
            category: "facility_repair".into(),
            description: "楼道灯坏了".into(),
            urgency: Urgency::Normal,
            at: t(2),
        })
        .expect("request");
    server.client().sync(&mut phone).await.expect("sync");
    Grid { server, _dir: dir, grid, supervisor, phone, home, request }
}

fn first_key(doc: &AutoCommit, map: &str) -> (automerge::ObjId, String) {
    let obj = doc.get(ROOT, map).expect("get").expect("map").1;
    let key = doc.keys(&obj).next().expect("an entry");
    (obj, key)
}

#[tokio::test]
async fn entries_credited_to_someone_else_are_refused_and_nothing_is_stored() {
    let g = grid_with_a_phone().await;
    let storage = g.server.storage();
    let (home, request) = (DocumentId::from(g.home), DocumentId::from(g.request));

    // A request event credited to the supervisor (an action the worker could take herself).
    let before = heads(&*storage, request);
    let mut doc = as_device(&*storage, request, &g.phone);
    let event = NewEvent { action: EventAction::Cancelled, note: "主任撤销".into(), at: t(3) };
    doc::request::add_event(&mut doc, g.request, EventId::new_random(), &event, g.supervisor).expect("event");
    refused(upload(&g.server, &g.phone, request, &mut doc).await, ErrorCode::ForgedActor, request);
    assert_eq!(heads(&*storage, request), before, "nothing of the upload is stored");

    // A visit credited to the supervisor.
    let before = heads(&*storage, home);
    let mut doc = as_device(&*storage, home, &g.phone);
    let visit =
        NewVisit { at: t(3), kind: VisitKind::Routine, notes: "李主任走访".into(), needs: vec![] };
    doc::household::record_visit(&mut doc, g.home, VisitId::new_random(), &visit, g.supervisor)
        .expect("visit");
    refused(upload(&g.server, &g.phone, home, &mut doc).await, ErrorCode::ForgedActor, home);
    assert_eq!(heads(&*storage, home), before);

    // The same visit in the worker's own name is accepted: the probe itself is sound.
    let worker = g.phone.member().expect("enrolled");
    let mut doc = as_device(&*storage, home, &g.phone);
    doc::household::record_visit(&mut doc, g.home, VisitId::new_random(), &visit, worker).expect("visit");
    assert!(upload(&g.server, &g.phone, home, &mut doc).await.is_ok());
}

#[tokio::test]
async fn a_role_takes_only_its_own_actions_and_logs_never_lose_an_entry() {
    let g = grid_with_a_phone().await;
    let storage = g.server.storage();
    let request = DocumentId::from(g.request);
    let worker = g.phone.member().expect("enrolled");

    // A grid worker putting a request under supervision (督办) in her own name: that, like
    // closing and reviewing, is the supervisor's.
    let mut doc = as_device(&*storage, request, &g.phone);
    let supervise = NewEvent { action: EventAction::Supervised, note: String::new(), at: t(3) };
    doc::request::add_event(&mut doc, g.request, EventId::new_random(), &supervise, worker).expect("event");
    let message =
        refused(upload(&g.server, &g.phone, request, &mut doc).await, ErrorCode::OutOfScope, request);
    assert!(message.contains("supervised"), "{message}");

    // Deleting the request's `raised` event.
    let before = heads(&*storage, request);
    let mut doc = as_device(&*storage, request, &g.phone);
    let (events, raised) = first_key(&doc, "events");
    doc.delete(&events, raised.as_str()).expect("delete");
    refused(upload(&g.server, &g.phone, request, &mut doc).await, ErrorCode::InvalidDocument, request);

    // Replacing the events with a new empty map (the usual Automerge initialisation mistake).
    let mut doc = as_device(&*storage, request, &g.phone);
    doc.put_object(ROOT, "events", ObjType::Map).expect("replace");
    refused(upload(&g.server, &g.phone, request, &mut doc).await, ErrorCode::InvalidDocument, request);

    // Rewriting an event's note.
    let mut doc = as_device(&*storage, request, &g.phone);
    let (events, raised) = first_key(&doc, "events");
    let event = doc.get(&events, raised.as_str()).expect("get").expect("event").1;
    doc.put(&event, "note", "改写").expect("rewrite");
    refused(upload(&g.server, &g.phone, request, &mut doc).await, ErrorCode::InvalidDocument, request);
    assert_eq!(heads(&*storage, request), before);

    // The same for a household's visit log and residents.
    let home = DocumentId::from(g.home);
    let mut doc = as_device(&*storage, home, &g.phone);
    doc.put_object(ROOT, "visits", ObjType::Map).expect("replace");
    refused(upload(&g.server, &g.phone, home, &mut doc).await, ErrorCode::InvalidDocument, home);
    let mut doc = as_device(&*storage, home, &g.phone);
    let (residents, someone) = first_key(&doc, "residents");
    doc.delete(&residents, someone.as_str()).expect("delete");
    refused(upload(&g.server, &g.phone, home, &mut doc).await, ErrorCode::InvalidDocument, home);
}

#[tokio::test]
async fn fields_keep_the_same_rules_on_the_server_as_on_the_phone() {
    let g = grid_with_a_phone().await;
    let storage = g.server.storage();
    let home = DocumentId::from(g.home);
    let before = heads(&*storage, home);

    // A phone number carrying markup.
    let mut doc = as_device(&*storage, home, &g.phone);
    let (residents, someone) = first_key(&doc, "residents");
    let resident = doc.get(&residents, someone.as_str()).expect("get").expect("resident").1;
    doc.put(&resident, "phone", "<img src=x onerror=alert(1)>").expect("put");
    let message =
        refused(upload(&g.server, &g.phone, home, &mut doc).await, ErrorCode::InvalidDocument, home);
    assert!(message.contains(&format!("residents.{someone}.phone")), "the field is named: {message}");

    // Notes longer than the phone lets anyone type.
    let mut doc = as_device(&*storage, home, &g.phone);
    doc.put(ROOT, "notes", "长".repeat(4_001)).expect("put");
    let message =
        refused(upload(&g.server, &g.phone, home, &mut doc).await, ErrorCode::InvalidDocument, home);
    assert!(message.contains("notes"), "{message}");

    // A birth year as an Automerge timestamp, a visit time as a float: refused, where a reader
    // would have read "unknown" and 1970.
    let mut doc = as_device(&*storage, home, &g.phone);
    let (residents, someone) = first_key(&doc, "residents");
    let resident = doc.get(&residents, someone.as_str()).expect("get").expect("resident").1;
    doc.put(&resident, "birth_year", ScalarValue::Timestamp(1941)).expect("put");
    refused(upload(&g.server, &g.phone, home, &mut doc).await, ErrorCode::InvalidDocument, home);
    let worker = g.phone.member().expect("enrolled");
    let mut doc = as_device(&*storage, home, &g.phone);
    let vid = VisitId::new_random();
    let visit = NewVisit { at: t(4), kind: VisitKind::Routine, notes: String::new(), needs: vec![] };
    doc::household::record_visit(&mut doc, g.home, vid, &visit, worker).expect("visit");
    let visits = doc.get(ROOT, "visits").expect("get").expect("visits").1;
    let entry = doc.get(&visits, vid.to_string()).expect("get").expect("visit").1;
    doc.put(&entry, "at", ScalarValue::F64(t(4).millis() as f64)).expect("put");
    refused(upload(&g.server, &g.phone, home, &mut doc).await, ErrorCode::InvalidDocument, home);
    assert_eq!(heads(&*storage, home), before, "nothing stored");

    // What another Automerge client writes by default — a Text object for a string, a
    // timestamp for a time — is accepted and read back faithfully, not as "" and 1970.
    let mut doc = as_device(&*storage, home, &g.phone);
    let (residents, someone) = first_key(&doc, "residents");
    let resident = doc.get(&residents, someone.as_str()).expect("get").expect("resident").1;
    let name = doc.put_object(&resident, "name", ObjType::Text).expect("text");
    doc.splice_text(&name, 0, 0, "陈秀英").expect("splice");
    let vid = VisitId::new_random();
    doc::household::record_visit(&mut doc, g.home, vid, &visit, worker).expect("visit");
    let visits = doc.get(ROOT, "visits").expect("get").expect("visits").1;
    let entry = doc.get(&visits, vid.to_string()).expect("get").expect("visit").1;
    doc.put(&entry, "at", ScalarValue::Timestamp(t(4).millis())).expect("put");
    let notes = doc.put_object(&entry, "notes", ObjType::Text).expect("text");
    doc.splice_text(&notes, 0, 0, "用 JS 写的").expect("splice");
    assert!(upload(&g.server, &g.phone, home, &mut doc).await.is_ok());
    let stored =
        doc::household::read(&storage.document(home).expect("r").expect("s"), g.home).expect("reads");
    assert!(stored.residents.iter().any(|r| r.name == "陈秀英"), "{:?}", stored.residents);
    let read = stored.visits.iter().find(|v| v.id == vid).expect("the visit reads");
    assert_eq!((read.at, read.notes.as_str()), (t(4), "用 JS 写的"));
}

#[tokio::test]
async fn a_volunteer_cannot_register_a_household_in_a_grid_by_naming_herself_helper() {
    let g = grid_with_a_phone().await;
    let storage = g.server.storage();
    let volunteer = member(&*storage, "志愿者小张", Role::Volunteer, &[]);
    let dir = devices_dir();
    let phone = device(&g.server, dir.path(), "volunteer", volunteer).await;
    let id = HouseholdId::new_random();
    let mut doc = AutoCommit::new().with_actor(phone.actor_id().clone());
    doc::household::create(
        &mut doc,
        id,
        &household(g.grid, "909", "外人"),
        &[doorstep_core::ids::ResidentId::new_random()],
        volunteer,
        t(5),
    )
    .expect("create");
    doc::household::set_helper(&mut doc, id, volunteer, true).expect("helper");
    refused(upload_new(&g.server, &phone, id.into(), &mut doc).await, ErrorCode::OutOfScope, id.into());
    assert!(storage.document(id.into()).expect("read").is_none(), "nothing stored");

    // Made a helper of a household by its grid worker, she may visit it, but not add helpers
    // (which would widen another member's scope).
    let mut worker_phone = g.phone;
    worker_phone.set_helper(g.home, volunteer, true).expect("helper");
    g.server.client().sync(&mut worker_phone).await.expect("sync");
    let home = DocumentId::from(g.home);
    let before = heads(&*storage, home);
    let mut doc = as_device(&*storage, home, &phone);
    doc::household::set_helper(&mut doc, g.home, MemberId::new_random(), true).expect("helper");
    let message = refused(upload(&g.server, &phone, home, &mut doc).await, ErrorCode::OutOfScope, home);
    assert!(message.contains("helpers"), "{message}");
    assert_eq!(heads(&*storage, home), before, "nothing stored");
}

#[tokio::test]
async fn a_refused_upload_stays_on_the_phone_and_the_rest_of_its_work_syncs() {
    let mut g = grid_with_a_phone().await;
    // A phone enrolled before the replica knew its role: it records a 督办 the server refuses
    // (supervision is the supervisor's), and a visit the server takes.
    let mut enrolment = g.phone.enrolment().expect("read").expect("enrolled");
    enrolment.role = None;
    g.phone.set_enrolment(&enrolment).expect("enrolment");
    g.phone
        .add_request_event(
            g.request,
            &NewEvent { action: EventAction::Supervised, note: String::new(), at: t(6) },
        )
        .expect("recorded offline");
    let visit = NewVisit { at: t(6), kind: VisitKind::Routine, notes: "送药".into(), needs: vec![] };
    g.phone.record_visit(g.home, &visit).expect("visit");
    let report = g.server.client().sync(&mut g.phone).await.expect("sync");
    assert_eq!(report.held_back.len(), 1, "{report:?}");
    assert_eq!(report.held_back[0].0, DocumentId::from(g.request));
    let storage = g.server.storage();
    let stored = storage.document(g.home.into()).expect("read").expect("stored");
    let stored = doc::household::read(&stored, g.home).expect("reads");
    assert!(stored.visits.iter().any(|v| v.notes == "送药"), "the visit reached the server");
    assert_eq!(g.phone.unsynced_change_count().expect("count"), 1, "the refused change is kept");

    // A phone that knows its role refuses the action itself, before anything is written.
    let mut enrolment = g.phone.enrolment().expect("read").expect("enrolled");
    enrolment.role = Some(Role::GridWorker);
    g.phone.set_enrolment(&enrolment).expect("enrolment");
    let supervise = NewEvent { action: EventAction::Supervised, note: String::new(), at: t(7) };
    assert!(matches!(
        g.phone.add_request_event(g.request, &supervise),
        Err(doorstep_core::error::CoreError::NotPermitted { role: Role::GridWorker, .. })
    ));
}

#[tokio::test]
async fn a_handed_over_grid_is_out_of_reach_of_the_old_phone_whatever_it_reports() {
    let mut g = grid_with_a_phone().await;
    let storage = g.server.storage();
    let old = g.phone.member().expect("enrolled");
    let new = member(&*storage, "赵磊", Role::GridWorker, &[]);
    let dir = devices_dir();
    let mut new_phone = device(&g.server, dir.path(), "new", new).await;
    let cursor = g.phone.sync_cursor().expect("cursor");

    // Offline work the old phone did before it learned of the hand-over.
    let visit =
        NewVisit { at: t(8), kind: VisitKind::Routine, notes: "交接前走访".into(), needs: vec![] };
    g.phone.record_visit(g.home, &visit).expect("visit");
    assert!(storage.hand_over_grid(g.grid, old, new, doorstep_server::http::now()).expect("hand over"));

    // The first round after the hand-over takes that work and tells the phone to purge.
    let home = DocumentId::from(g.home);
    let mut uploads = Vec::new();
    for doc in g.phone.documents_with_unsynced_changes().expect("pending") {
        let changes = g.phone.unsynced_changes(doc).expect("changes");
        uploads.push(Upload { doc: wire_id(doc), changes: changes.into_iter().map(ByteBuf::from).collect() });
    }
    let first = SyncRequest { cursor, uploads, ..SyncRequest::default() };
    let Ok(ServerMessage::Sync(reply)) =
        frame(&g.server, &token(&g.phone), &ClientMessage::Sync(first)).await
    else {
        panic!("the first round is answered");
    };
    assert!(reply.purge.contains(&wire_id(home)), "told to purge: {reply:?}");
    let stored =
        doc::household::read(&storage.document(home).expect("r").expect("s"), g.home).expect("reads");
    assert!(stored.visits.iter().any(|v| v.notes == "交接前走访"), "the work before the hand-over is kept");

    // The new worker visits; the old phone never reports the purge and keeps asking.
    new_phone.sync_with(&g.server.client()).await;
    let visit =
        NewVisit { at: t(9), kind: VisitKind::Routine, notes: "新网格员走访".into(), needs: vec![] };
    new_phone.record_visit(g.home, &visit).expect("visit");
    new_phone.sync_with(&g.server.client()).await;

    let old_token = token(&g.phone);
    // Sync from the start, asking for the household back: no document of the grid comes.
    let ask = SyncRequest { cursor: 0, missing: vec![wire_id(home)], ..SyncRequest::default() };
    let Ok(ServerMessage::Sync(reply)) = frame(&g.server, &old_token, &ClientMessage::Sync(ask)).await else {
        panic!("answered");
    };
    assert!(reply.docs.is_empty(), "nothing of the grid is sent: {:?}", reply.docs.len());
    assert!(reply.purge.contains(&wire_id(home)), "told again to purge what it asked for");
    // Repair: refused.
    let mut state = automerge::sync::State::new();
    let mut empty = AutoCommit::new();
    let message =
        automerge::sync::SyncDoc::generate_sync_message(&empty.sync(), &mut state).expect("message");
    let repair = ClientMessage::Repair(vec![DocSyncMessage {
        doc: wire_id(home),
        kind: doc::DocumentKind::Household,
        message: ByteBuf::from(message.encode()),
    }]);
    assert_eq!(frame(&g.server, &old_token, &repair).await.err().map(|e| e.0), Some(ErrorCode::OutOfScope));
    // Manifest: not listed.
    let Ok(ServerMessage::Manifest(entries)) = frame(&g.server, &old_token, &ClientMessage::Manifest).await
    else {
        panic!("answered");
    };
    assert!(entries.iter().all(|e| e.doc != wire_id(home)));
    // Upload: refused, nothing stored.
    let before = heads(&*storage, home);
    let mut doc = as_device(&*storage, home, &g.phone);
    let late = NewVisit { at: t(10), kind: VisitKind::Routine, notes: "交接后".into(), needs: vec![] };
    doc::household::record_visit(&mut doc, g.home, VisitId::new_random(), &late, old).expect("visit");
    refused(upload(&g.server, &g.phone, home, &mut doc).await, ErrorCode::OutOfScope, home);
    assert_eq!(heads(&*storage, home), before);
}

#[tokio::test]
async fn a_one_sided_same_household_mark_joins_nothing_and_hides_nothing() {
    let g = grid_with_a_phone().await;
    let storage = g.server.storage();
    let worker = g.phone.member().expect("enrolled");
    // A household in another community's grid.
    let other_grid = storage.create_grid("二网格", "和平社区", "城关街道").expect("grid");
    let other_worker = member(&*storage, "孙丽", Role::GridWorker, &[other_grid]);
    let dir = devices_dir();
    let mut other_phone = device(&g.server, dir.path(), "other", other_worker).await;
    let foreign =
        other_phone.create_household(&household(other_grid, "707", "外社区居民"), t(1)).expect("household");
    other_phone.sync_with(&g.server.client()).await;

    // The worker marks her household as the same as the foreign one: refused.
    let home = DocumentId::from(g.home);
    let mut doc = as_device(&*storage, home, &g.phone);
    let mark = SameAsMark::new(LinkId::new_random(), g.home, foreign, true, worker, t(2), vec![]);
    doc::same_household::write_mark(&mut doc, g.home, &mark).expect("mark");
    let message = refused(upload(&g.server, &g.phone, home, &mut doc).await, ErrorCode::OutOfScope, home);
    assert!(message.contains(&foreign.to_string()), "{message}");

    // Such a mark written before the check (planted here as the server's own write) joins
    // nothing: the worker's supervisor does not see the foreign residents, and the foreign
    // household stays in its own grid's list.
    let mut planted = storage.document(home).expect("read").expect("stored");
    doc::same_household::write_mark(&mut planted, g.home, &mark).expect("mark");
    planted.commit();
    storage.write_server_documents(&mut [(home, planted)], doorstep_server::http::now()).expect("write");

    let password = "attribution-test-password";
    let hash = doorstep_server::auth::hash_password(password).expect("hash");
    storage.create_staff_account(g.supervisor, "li", &hash, doorstep_server::http::now()).expect("account");
    let boss2 = member(&*storage, "周主任", Role::Supervisor, &[other_grid]);
    storage.create_staff_account(boss2, "zhou", &hash, doorstep_server::http::now()).expect("account");
    let base = g.server.url.clone();
    let li = sign_in(&base, "li", password).await;
    let page = get(&li, &format!("{base}/dashboard/households/{}", g.home)).await;
    assert!(page.contains("陈奶奶") && !page.contains("外社区居民"), "no foreign resident shown");
    let zhou = sign_in(&base, "zhou", password).await;
    let page = get(&zhou, &format!("{base}/dashboard/grids/{other_grid}")).await;
    assert!(page.contains("707"), "the foreign household stays in its grid");
    let page = get(&zhou, &format!("{base}/dashboard/households/{foreign}")).await;
    assert!(page.contains("外社区居民") && !page.contains("陈奶奶"));
}

trait SyncWith {
    async fn sync_with(&mut self, client: &doorstep_client::Client);
}

impl SyncWith for Replica {
    async fn sync_with(&mut self, client: &doorstep_client::Client) {
        let report = client.sync(self).await.expect("sync");
        assert!(report.held_back.is_empty(), "{report:?}");
    }
}
