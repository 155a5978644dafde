//! The access matrix (issue 8): every role against every way in — the sync protocol's message
//! types over HTTP and WebSocket, the JSON and plain HTTP endpoints, every dashboard page and
//! action, and the export links — against a real server process on the suite's backend.
//!
//! What each role may see is written down here from DESIGN.md §2, independently of
//! `scope.rs`, and every way of reading is checked to hand out exactly that set: no more (a
//! leak), no less (a broken scope). Ways of writing are checked to refuse what is out of scope.

mod support;

use std::collections::BTreeSet;

use doorstep_client::{NoTransferObserver, TransferOptions};
use doorstep_core::doc::{self, DocumentKind};
use doorstep_core::ids::{DocumentId, GridId, MemberId, VisitId};
use doorstep_core::model::attachment::NewAttachment;
use doorstep_core::model::{NewVisit, VisitKind};
use doorstep_core::store::Replica;
use doorstep_core::sync::client::manifest_request;
use doorstep_core::sync::frame::encode_client;
use doorstep_core::sync::message::{
    ClientMessage, DocSyncMessage, ErrorCode, ServerMessage, SyncRequest, Upload, doc_id, wire_id,
};
use doorstep_core::sync::validate::{DocFacts, facts};
use doorstep_server::demo;
use doorstep_server::scope::Role;
use doorstep_server::storage::Storage;
use reqwest::StatusCode;
use serde_bytes::ByteBuf;
use support::*;

/// Who knocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Who {
    /// No credentials at all.
    Anonymous,
    /// A made-up token or cookie.
    Forged,
    /// A device that was enrolled, then revoked.
    Revoked,
    /// A member with a role.
    Member(Role),
}

const EVERYONE: [Who; 8] = [
    Who::Anonymous,
    Who::Forged,
    Who::Revoked,
    Who::Member(Role::GridWorker),
    Who::Member(Role::Volunteer),
    Who::Member(Role::DepartmentStaff),
    Who::Member(Role::Supervisor),
    Who::Member(Role::Admin),
];

/// One member of the test county: its id, grids, device and dashboard session.
struct Subject {
    who: Who,
    member: Option<MemberId>,
    grids: Vec<GridId>,
    replica: Option<Replica>,
    token: String,
    cookie: String,
    csrf: String,
}

/// DESIGN.md §2, written out independently of the server's `scope.rs`.
fn may_read(
    role: Role,
    member: MemberId,
    grids: &[GridId],
    all: &[(DocumentId, DocFacts)],
    f: &DocFacts,
) -> bool {
    match role {
        Role::Admin => true,
        Role::GridWorker | Role::Supervisor => grids.contains(&f.grid),
        Role::Volunteer => match f.kind {
            DocumentKind::Household => f.helpers.contains(&member),
            DocumentKind::Request => {
                f.assignee == Some(member)
                    || f.household.is_some_and(|h| {
                        all.iter().any(|(id, hf)| *id == DocumentId::from(h) && hf.helpers.contains(&member))
                    })
            }
        },
        Role::DepartmentStaff => {
            f.kind == DocumentKind::Request
                && f.department.as_ref().map(|d| d.as_str()) == Some("civil_affairs")
        }
    }
}

/// A plain HTTP client that does not follow redirects, so a refusal by redirect is seen.
fn http() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("http client")
}

fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            v.strip_prefix(&format!("{name}=")).map(|rest| rest.split(';').next().unwrap_or("").to_owned())
        })
        .filter(|v| !v.is_empty())
}

fn hidden_csrf(body: &str) -> String {
    let start = body.find("name=\"csrf\" value=\"").expect("a csrf field") + "name=\"csrf\" value=\"".len();
    body[start..].split('"').next().expect("value").to_owned()
}

/// Signs in through the real form (pre-session cookie, CSRF, password) and returns the session
/// cookie and its CSRF token.
async fn sign_in(base: &str, login: &str, password: &str) -> (String, String) {
    let form = http().get(format!("{base}/dashboard/sign-in")).send().await.expect("form");
    let pre = set_cookie(&form, "dsk_pre").expect("pre-session cookie");
    let csrf = hidden_csrf(&form.text().await.expect("page"));
    let done = http()
        .post(format!("{base}/dashboard/sign-in"))
        .header("cookie", format!("dsk_pre={pre}"))
        .form(&[("login", login), ("password", password), ("csrf", &csrf)])
        .send()
        .await
        .expect("sign in");
    assert_eq!(done.status(), StatusCode::SEE_OTHER, "{login} signs in");
    let session = set_cookie(&done, "dsk_session").expect("session cookie");
    let page = http()
        .get(format!("{base}/dashboard/overview"))
        .header("cookie", format!("dsk_session={session}"))
        .send()
        .await
        .expect("overview");
    (session, hidden_csrf(&page.text().await.expect("page")))
}

async fn get(base: &str, path: &str, s: &Subject) -> (StatusCode, String) {
    let mut request = http().get(format!("{base}{path}"));
    if !s.cookie.is_empty() {
        request = request.header("cookie", format!("dsk_session={}", s.cookie));
    }
    if !s.token.is_empty() {
        request = request.bearer_auth(&s.token);
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    (status, response.text().await.unwrap_or_default())
}

async fn post_form(base: &str, path: &str, s: &Subject, fields: &[(&str, &str)]) -> StatusCode {
    let mut all = vec![("csrf", s.csrf.as_str())];
    all.extend_from_slice(fields);
    let mut request = http().post(format!("{base}{path}")).form(&all);
    if !s.cookie.is_empty() {
        request = request.header("cookie", format!("dsk_session={}", s.cookie));
    }
    request.send().await.expect("request").status()
}

/// The reply to a frame, decoded; a refusal comes back as its error code.
async fn frame(server: &TestServer, token: &str, frame: Vec<u8>) -> Result<ServerMessage, ErrorCode> {
    let reply = server.client().post_frame(token, frame).await.expect("a frame comes back");
    match doorstep_client::decode_reply(&reply).expect("decodable") {
        ServerMessage::Error(e) => Err(e.code),
        other => Ok(other),
    }
}

fn ids_in_csv(bytes: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(bytes).trim_start_matches('\u{feff}').to_owned();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    reader.records().map(|r| r.expect("csv row").get(0).unwrap_or("").to_owned()).collect()
}

/// A visit written into `id` by `actor`, as one change (for upload probes).
fn visit_change(storage: &dyn Storage, id: DocumentId, actor: &automerge::ActorId, by: MemberId) -> Vec<u8> {
    let mut doc = storage.document(id).expect("read").expect("stored").with_actor(actor.clone());
    let visit = NewVisit { at: t(5), kind: VisitKind::Routine, notes: "probe".into(), needs: vec![] };
    doc::household::record_visit(&mut doc, id.as_household(), VisitId::new_random(), &visit, by)
        .expect("visit");
    doc.commit();
    doc.get_last_local_change().expect("change").raw_bytes().to_vec()
}

#[tokio::test]
async fn every_role_reaches_exactly_its_scope_through_every_way_in() {
    let server = TestServer::start();
    let storage = server.storage();
    let base = server.url.clone();
    let now = doorstep_server::http::now();
    let summary = demo::seed_sized(&*storage, now, 2).expect("seed").expect("empty");
    let members = storage.members().expect("members");
    let by_role = |role: Role| {
        let name = &summary.logins.iter().find(|l| l.role == role).expect("demo login").name;
        members.iter().find(|m| &m.name == name).expect("demo member").clone()
    };
    let worker = by_role(Role::GridWorker);
    let supervisor = by_role(Role::Supervisor);
    let department = by_role(Role::DepartmentStaff);
    let volunteer = member(&*storage, "志愿者", Role::Volunteer, &[]);
    let admin = member(&*storage, "管理员", Role::Admin, &[]);

    let dir = devices_dir();
    let mut subjects = Vec::new();
    for who in EVERYONE {
        let (member_id, grids) = match who {
            Who::Member(Role::GridWorker) => (Some(worker.id), worker.grids.clone()),
            Who::Member(Role::Supervisor) => (Some(supervisor.id), supervisor.grids.clone()),
            Who::Member(Role::DepartmentStaff) => (Some(department.id), vec![]),
            Who::Member(Role::Volunteer) => (Some(volunteer), vec![]),
            Who::Member(Role::Admin) => (Some(admin), vec![]),
            Who::Revoked => (Some(worker.id), worker.grids.clone()),
            Who::Anonymous | Who::Forged => (None, vec![]),
        };
        let mut subject = Subject {
            who,
            member: member_id,
            grids,
            replica: None,
            token: String::new(),
            cookie: String::new(),
            csrf: String::new(),
        };
        if let Some(m) = member_id {
            let replica = device(&server, dir.path(), &format!("{who:?}").replace(['(', ')'], ""), m).await;
            subject.token = replica.enrolment().expect("e").expect("enrolled").token;
            subject.replica = Some(replica);
        }
        if let Who::Member(role) = who {
            let password = format!("pw-{}", role.as_str());
            let hash = doorstep_server::auth::hash_password(&password).expect("hash");
            let login = format!("access-{}", role.as_str());
            let created = storage.create_staff_account(m_or(member_id), &login, &hash, now).expect("account");
            assert!(
                matches!(created, doorstep_server::storage::dashboard::AccountCreated::Created(_)),
                "{who:?}: account"
            );
            let (cookie, csrf) = sign_in(&base, &login, &password).await;
            subject.cookie = cookie;
            subject.csrf = csrf;
        }
        if who == Who::Forged {
            subject.token = "not-a-token".into();
            subject.cookie = "not-a-session".into();
            subject.csrf = "not-a-csrf".into();
        }
        subjects.push(subject);
    }
    // The revoked device stops here; its token stays in hand.
    let revoked = subjects.iter().find(|s| s.who == Who::Revoked).expect("revoked");
    let revoked_device = revoked.replica.as_ref().expect("r").enrolment().expect("e").expect("e").device;
    assert!(storage.revoke_device(revoked_device, now).expect("revoke"));

    // The worker makes the volunteer a helper of one household of her grid, so the volunteer's
    // scope is not empty: that household and its requests.
    {
        let s = subjects.iter_mut().find(|s| s.who == Who::Member(Role::GridWorker)).expect("worker");
        let replica = s.replica.as_mut().expect("device");
        server.client().sync(replica).await.expect("sync");
        let (home, _) = replica
            .documents()
            .expect("docs")
            .into_iter()
            .find(|(_, k)| *k == DocumentKind::Household)
            .expect("a household in the grid");
        replica.set_helper(home.as_household(), volunteer, true).expect("helper");
        server.client().sync(replica).await.expect("sync");
    }
    // A photo of a visit to a household of the worker's grid, uploaded: every subject below
    // fetches it exactly where that household is in its scope.
    let (photo_home, photo) = {
        let s = subjects.iter_mut().find(|s| s.who == Who::Member(Role::GridWorker)).expect("worker");
        let replica = s.replica.as_mut().expect("device");
        let home = replica.households_in_grid(s.grids[0]).expect("list")[0].id;
        let visit =
            NewVisit { at: t(1), kind: VisitKind::Routine, notes: "拍了照片".into(), needs: vec![] };
        let vid = replica.record_visit(home, &visit).expect("visit");
        let bytes: Vec<u8> = (0..20_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let file =
            NewAttachment {
                media_type: "image/jpeg".into(), name: "现场.jpg".into(), bytes: bytes.clone()
            };
        let reference = replica.attach_to_visit(home, vid, &file, t(2)).expect("attach");
        server.client().sync(replica).await.expect("sync");
        let mut access = &mut *replica;
        let report = server
            .client()
            .transfer_attachments(&mut access, &TransferOptions::default(), &mut NoTransferObserver)
            .await
            .expect("upload");
        assert_eq!(report.uploaded.len(), 1, "the photo is on the server");
        (DocumentId::from(home), (reference.hash, bytes))
    };

    let all: Vec<(DocumentId, DocFacts)> = storage
        .documents_since(0)
        .expect("documents")
        .into_iter()
        .map(|d| (d.id, facts(&d.doc, d.id).expect("facts")))
        .collect();
    let visits_of = |id: DocumentId| {
        doc::household::read(&storage.document(id).expect("r").expect("s"), id.as_household())
            .expect("household")
            .visits
            .len()
    };

    for s in &mut subjects {
        let who = s.who;
        let expected: BTreeSet<DocumentId> = match who {
            Who::Member(role) => all
                .iter()
                .filter(|(_, f)| may_read(role, m_or(s.member), &s.grids, &all, f))
                .map(|(id, _)| *id)
                .collect(),
            _ => BTreeSet::new(),
        };
        let outside = all.iter().map(|(id, _)| *id).find(|id| !expected.contains(id));
        let outside_household = all
            .iter()
            .find(|(id, f)| f.kind == DocumentKind::Household && !expected.contains(id))
            .map(|(id, _)| *id);
        let inside_household = all
            .iter()
            .find(|(id, f)| f.kind == DocumentKind::Household && expected.contains(id))
            .map(|(id, _)| *id);
        let inside_request = all
            .iter()
            .find(|(id, f)| f.kind == DocumentKind::Request && expected.contains(id))
            .map(|(id, _)| *id);
        let outside_request = all
            .iter()
            .find(|(id, f)| f.kind == DocumentKind::Request && !expected.contains(id))
            .map(|(id, _)| *id);
        let refusal = match who {
            Who::Revoked => ErrorCode::DeviceRevoked,
            _ => ErrorCode::Unauthorized,
        };
        let ctx = format!("{who:?}");

        // ---- the sync protocol over HTTP: every message type ----
        let sync_frame = encode_client(&ClientMessage::Sync(SyncRequest::default()));
        match who {
            Who::Member(_) => {
                let replica = s.replica.as_mut().expect("device");
                server.client().sync(replica).await.unwrap_or_else(|e| panic!("{ctx}: sync: {e}"));
                let held: BTreeSet<DocumentId> =
                    replica.documents().expect("docs").into_iter().map(|(id, _)| id).collect();
                assert_eq!(held, expected, "{ctx}: sync hands out exactly the scope");
                let Ok(ServerMessage::Manifest(entries)) = frame(&server, &s.token, manifest_request()).await
                else {
                    panic!("{ctx}: manifest refused")
                };
                let listed: BTreeSet<DocumentId> = entries.iter().map(|e| doc_id(&e.doc)).collect();
                assert_eq!(listed, expected, "{ctx}: the manifest lists exactly the scope");
            }
            _ => {
                assert_eq!(
                    frame(&server, &s.token, sync_frame.clone()).await.err(),
                    Some(refusal),
                    "{ctx}: sync"
                );
                assert_eq!(
                    frame(&server, &s.token, manifest_request()).await.err(),
                    Some(refusal),
                    "{ctx}: manifest"
                );
            }
        }
        // Repair: asking for a document outside the scope is refused (every role but admin has one).
        if let Some(target) = outside.or(inside_household) {
            let mut probe = automerge::AutoCommit::new();
            let ask = automerge::sync::SyncDoc::generate_sync_message(
                &probe.sync(),
                &mut automerge::sync::State::new(),
            )
            .expect("a first message");
            let kind = all.iter().find(|(id, _)| *id == target).map(|(_, f)| f.kind).expect("kind");
            let repair = ClientMessage::Repair(vec![DocSyncMessage {
                doc: wire_id(target),
                kind,
                message: ByteBuf::from(ask.encode()),
            }]);
            let answer = frame(&server, &s.token, encode_client(&repair)).await;
            match (who, expected.contains(&target)) {
                (Who::Member(_), true) => assert!(answer.is_ok(), "{ctx}: repair in scope: {answer:?}"),
                (Who::Member(_), false) => {
                    assert_eq!(answer.err(), Some(ErrorCode::OutOfScope), "{ctx}: repair")
                }
                _ => assert_eq!(answer.err(), Some(refusal), "{ctx}: repair"),
            }
        }
        // Upload: a visit written into a household outside the scope is refused, nothing stored.
        if let (Some(target), Some(replica)) = (outside_household, s.replica.as_ref()) {
            let before = storage.document(target).expect("r").expect("s").get_heads();
            let change = visit_change(&*storage, target, replica.actor_id(), m_or(s.member));
            let upload = ClientMessage::Sync(SyncRequest {
                uploads: vec![Upload { doc: wire_id(target), changes: vec![ByteBuf::from(change)] }],
                ..SyncRequest::default()
            });
            let answer = frame(&server, &s.token, encode_client(&upload)).await;
            let want = if who == Who::Revoked { refusal } else { ErrorCode::OutOfScope };
            assert_eq!(answer.err(), Some(want), "{ctx}: upload out of scope");
            assert_eq!(
                storage.document(target).expect("r").expect("s").get_heads(),
                before,
                "{ctx}: nothing stored"
            );
        }
        // Upload: a change whose author is another device is refused, even in scope.
        if let (Some(target), Who::Member(_)) = (inside_household, who) {
            let stranger = automerge::ActorId::random();
            let change = visit_change(&*storage, target, &stranger, m_or(s.member));
            let upload = ClientMessage::Sync(SyncRequest {
                uploads: vec![Upload { doc: wire_id(target), changes: vec![ByteBuf::from(change)] }],
                ..SyncRequest::default()
            });
            let answer = frame(&server, &s.token, encode_client(&upload)).await;
            assert_eq!(answer.err(), Some(ErrorCode::ForgedActor), "{ctx}: forged actor");
        }

        // ---- the same over the WebSocket ----
        match (who, server.client().connect_live(&s.token).await) {
            (Who::Member(_), Ok(mut live)) => {
                let reply = live.send_frame(manifest_request()).await.expect("ws manifest");
                let Ok(ServerMessage::Manifest(entries)) = doorstep_client::decode_reply(&reply) else {
                    panic!("{ctx}: ws manifest refused")
                };
                let listed: BTreeSet<DocumentId> = entries.iter().map(|e| doc_id(&e.doc)).collect();
                assert_eq!(listed, expected, "{ctx}: the ws manifest lists exactly the scope");
            }
            (Who::Member(_), Err(e)) => panic!("{ctx}: ws refused: {e}"),
            (_, Ok(_)) => panic!("{ctx}: a websocket was opened without a valid device"),
            (_, Err(doorstep_client::ClientError::Refused { code, .. })) => {
                assert_eq!(code, refusal, "{ctx}: ws")
            }
            (_, Err(e)) => panic!("{ctx}: ws refused without its code: {e}"),
        }

        // ---- plain HTTP endpoints ----
        assert_eq!(get(&base, "/healthz", s).await.0, StatusCode::OK, "{ctx}: healthz");
        assert_ne!(get(&base, "/metrics", s).await.0, StatusCode::OK, "{ctx}: metrics need their own token");
        let guessed = http()
            .post(format!("{base}/v1/enrol"))
            .json(&serde_json::json!({"code": "ABCD-EFGH-JKLM", "actor": automerge::ActorId::random().to_hex_string(), "device_name": "x"}))
            .send()
            .await
            .expect("enrol");
        assert_eq!(guessed.status(), StatusCode::UNAUTHORIZED, "{ctx}: a guessed enrolment code");

        // ---- the dashboard: pages, actions, exports ----
        let signed_in = matches!(who, Who::Member(_));
        let pages = ["/dashboard/overview", "/dashboard/ledger", "/dashboard/conflicts", "/dashboard/grids"];
        for page in pages {
            let (status, _) = get(&base, page, s).await;
            let want = if signed_in { StatusCode::OK } else { StatusCode::SEE_OTHER };
            assert_eq!(status, want, "{ctx}: {page}");
        }
        for (path, want_admin) in [("/dashboard/admin", true), ("/dashboard/import", true)] {
            let (status, _) = get(&base, path, s).await;
            let want = match who {
                Who::Member(Role::Admin) if want_admin => StatusCode::OK,
                Who::Member(_) => StatusCode::FORBIDDEN,
                _ => StatusCode::SEE_OTHER,
            };
            assert_eq!(status, want, "{ctx}: {path}");
        }
        // Household and request pages: in scope shown, out of scope "not found".
        for (id, inside) in [
            (inside_household, true),
            (outside_household, false),
            (inside_request, true),
            (outside_request, false),
        ] {
            let Some(id) = id else { continue };
            let kind = all.iter().find(|(d, _)| *d == id).map(|(_, f)| f.kind).expect("kind");
            let path = match kind {
                DocumentKind::Household => format!("/dashboard/households/{id}"),
                DocumentKind::Request => format!("/dashboard/requests/{id}"),
            };
            let (status, body) = get(&base, &path, s).await;
            let want = match (signed_in, inside) {
                (false, _) => StatusCode::SEE_OTHER,
                (true, true) => StatusCode::OK,
                (true, false) => StatusCode::NOT_FOUND,
            };
            assert_eq!(status, want, "{ctx}: {path}");
            if !inside {
                assert!(!body.contains(&id.to_string()) || status != StatusCode::OK, "{ctx}: {path} leaks");
            }
        }
        // ---- attachments: over the device API and the dashboard, where the household is ----
        let photo_inside = expected.contains(&photo_home);
        let (hash, bytes) = &photo;
        let fetched = http()
            .get(format!("{base}/v1/attachments/{hash}?doc={photo_home}"))
            .bearer_auth(&s.token)
            .send()
            .await
            .expect("answer");
        let status = fetched.status();
        let body = fetched.bytes().await.expect("body");
        if photo_inside {
            assert_eq!(status, StatusCode::OK, "{ctx}: the photo of a household in scope");
            assert_eq!(body.as_ref(), bytes.as_slice(), "{ctx}: its bytes");
        } else {
            assert!(status.is_client_error(), "{ctx}: the photo of a household out of scope: {status}");
            assert_ne!(body.as_ref(), bytes.as_slice(), "{ctx}: no bytes leak");
        }
        // In scope: a redirect to a signed link outside the cookie's path, which serves the bytes.
        let mut request = http().get(format!("{base}/dashboard/attachments/{photo_home}/{hash}"));
        if !s.cookie.is_empty() {
            request = request.header("cookie", format!("dsk_session={}", s.cookie));
        }
        if !s.token.is_empty() {
            request = request.bearer_auth(&s.token);
        }
        let answer = request.send().await.expect("request");
        let location =
            answer.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        match (signed_in, photo_inside) {
            (false, _) => assert!(location.starts_with("/dashboard/sign-in"), "{ctx}: {location}"),
            (true, true) => {
                assert_eq!(answer.status(), StatusCode::SEE_OTHER, "{ctx}: the photo on the dashboard");
                assert!(location.starts_with("/files/"), "{ctx}: {location}");
                let file = http().get(format!("{base}{location}")).send().await.expect("file");
                assert_eq!(file.status(), StatusCode::OK, "{ctx}: the signed link");
                assert_eq!(file.bytes().await.expect("body").as_ref(), bytes.as_slice(), "{ctx}: its bytes");
            }
            (true, false) => {
                assert_eq!(answer.status(), StatusCode::NOT_FOUND, "{ctx}: the photo on the dashboard")
            }
        }

        // A grid page of a grid outside the scope shows none of its households.
        if let Some(target) = outside_household {
            let grid = all.iter().find(|(d, _)| *d == target).map(|(_, f)| f.grid).expect("grid");
            let (status, body) = get(&base, &format!("/dashboard/grids/{grid}"), s).await;
            assert!(!body.contains(&target.to_string()), "{ctx}: grid page leaks a household ({status})");
            if matches!(who, Who::Member(Role::GridWorker | Role::Supervisor)) {
                assert_eq!(status, StatusCode::NOT_FOUND, "{ctx}: another grid's page");
            }
        }
        // Export links: the ledger holds exactly the requests in scope, the visit log exactly
        // the visits of households in scope (department staff: none, ever).
        let (status, ledger) = {
            let mut request = http().get(format!("{base}/dashboard/export/ledger.csv"));
            if !s.cookie.is_empty() {
                request = request.header("cookie", format!("dsk_session={}", s.cookie));
            }
            if !s.token.is_empty() {
                request = request.bearer_auth(&s.token);
            }
            let response = request.send().await.expect("export");
            (response.status(), response.bytes().await.expect("bytes").to_vec())
        };
        if signed_in {
            assert_eq!(status, StatusCode::OK, "{ctx}: ledger export");
            let rows: BTreeSet<String> = ids_in_csv(&ledger).into_iter().collect();
            let want: BTreeSet<String> = all
                .iter()
                .filter(|(id, f)| f.kind == DocumentKind::Request && expected.contains(id))
                .map(|(id, _)| id.to_string())
                .collect();
            assert_eq!(rows, want, "{ctx}: the ledger export holds exactly the scope's requests");
            let (status, visits) = get(&base, "/dashboard/export/visits.csv", s).await;
            assert_eq!(status, StatusCode::OK, "{ctx}: visits export");
            let want_visits: usize = all
                .iter()
                .filter(|(id, f)| f.kind == DocumentKind::Household && expected.contains(id))
                .map(|(id, _)| visits_of(*id))
                .sum();
            assert_eq!(ids_in_csv(visits.as_bytes()).len(), want_visits, "{ctx}: the visit export");
            if who == Who::Member(Role::DepartmentStaff) {
                assert_eq!(want_visits, 0, "department staff never read the visit log");
            }
        } else {
            assert_eq!(status, StatusCode::SEE_OTHER, "{ctx}: an export link without a session");
            assert!(ledger.is_empty(), "{ctx}: nothing exported");
        }
        // Actions: supervisors and administrators act on requests in scope; nobody acts on one
        // outside it; other roles act on none. Administration is the administrator's.
        if let Some(target) = inside_request {
            let status = post_form(
                &base,
                &format!("/dashboard/requests/{target}/action"),
                s,
                &[("action", "supervise")],
            )
            .await;
            match who {
                Who::Member(Role::Supervisor | Role::Admin) => assert!(
                    status == StatusCode::SEE_OTHER || status == StatusCode::CONFLICT,
                    "{ctx}: supervise in scope: {status}"
                ),
                Who::Member(_) => assert_eq!(status, StatusCode::FORBIDDEN, "{ctx}: supervise"),
                _ => assert!(
                    matches!(status, StatusCode::SEE_OTHER | StatusCode::FORBIDDEN),
                    "{ctx}: {status}"
                ),
            }
        }
        if let Some(target) = outside_request {
            let status = post_form(
                &base,
                &format!("/dashboard/requests/{target}/action"),
                s,
                &[("action", "supervise")],
            )
            .await;
            match who {
                Who::Member(Role::Supervisor) => {
                    assert_eq!(status, StatusCode::NOT_FOUND, "{ctx}: out of scope")
                }
                Who::Member(_) => assert_eq!(status, StatusCode::FORBIDDEN, "{ctx}: supervise"),
                _ => assert!(
                    matches!(status, StatusCode::SEE_OTHER | StatusCode::FORBIDDEN),
                    "{ctx}: {status}"
                ),
            }
        }
        let grids_before = storage.grids().expect("grids").len();
        let status = post_form(
            &base,
            "/dashboard/admin/add-grid",
            s,
            &[("name", "越权网格"), ("community", "幸福社区"), ("street", "")],
        )
        .await;
        let added = storage.grids().expect("grids").len() - grids_before;
        match who {
            Who::Member(Role::Admin) => assert_eq!((status, added), (StatusCode::OK, 1), "{ctx}: add grid"),
            _ => {
                assert!(
                    matches!(status, StatusCode::FORBIDDEN | StatusCode::SEE_OTHER),
                    "{ctx}: add grid {status}"
                );
                assert_eq!(added, 0, "{ctx}: no grid added");
            }
        }
        // A valid session with a wrong CSRF token acts on nothing.
        if who == Who::Member(Role::Admin) {
            let forged = Subject { csrf: "wrong".into(), cookie: s.cookie.clone(), ..blank(who) };
            let status =
                post_form(&base, "/dashboard/admin/add-grid", &forged, &[("name", "x"), ("community", "y")])
                    .await;
            assert_eq!(status, StatusCode::FORBIDDEN, "a forged form is refused");
        }
        // A device token is not a dashboard session, and a session is not a device token.
        if signed_in {
            let device_only = Subject { token: s.token.clone(), ..blank(who) };
            assert_eq!(
                get(&base, "/dashboard/overview", &device_only).await.0,
                StatusCode::SEE_OTHER,
                "{ctx}"
            );
            let reply = http()
                .post(format!("{base}/v1/sync"))
                .header("cookie", format!("dsk_session={}", s.cookie))
                .body(sync_frame)
                .send()
                .await
                .expect("sync");
            assert_eq!(reply.status(), StatusCode::UNAUTHORIZED, "{ctx}: a cookie does not sync");
        }
    }
}

fn m_or(member: Option<MemberId>) -> MemberId {
    member.expect("a member")
}

fn blank(who: Who) -> Subject {
    Subject {
        who,
        member: None,
        grids: vec![],
        replica: None,
        token: String::new(),
        cookie: String::new(),
        csrf: String::new(),
    }
}

/// A stolen copy of the server's database (a backup) holds no secret that lets anyone act as
/// a device or a staff member: device tokens, unused enrolment codes and session cookies are
/// stored as SHA-256 hashes, passwords as argon2 hashes.
#[tokio::test]
async fn a_copy_of_the_server_database_holds_no_usable_secret() {
    let server = TestServer::start_in(tempfile::tempdir().expect("tempdir"));
    let storage = server.storage();
    let grid = storage.create_grid("一网格", "幸福社区", "城关街道").expect("grid");
    let worker = member(&*storage, "网格员", Role::GridWorker, &[grid]);
    let dir = devices_dir();
    let replica = device(&server, dir.path(), "phone", worker).await;
    let token = replica.enrolment().expect("e").expect("enrolled").token;
    let unused_code = code_for(&*storage, worker);
    let password = "correct horse battery";
    let hash = doorstep_server::auth::hash_password(password).expect("hash");
    let now = doorstep_server::http::now();
    storage.create_staff_account(worker, "backup-test", &hash, now).expect("account");
    let (cookie, _) = sign_in(&server.url, "backup-test", password).await;
    drop(storage);
    let mut copy = Vec::new();
    for file in ["doorstep.db", "doorstep.db-wal"] {
        if let Ok(bytes) = std::fs::read(server.dir.path().join(file)) {
            copy.extend_from_slice(&bytes);
        }
    }
    assert!(copy.len() > 4096, "the database was read");
    let normalized_code = doorstep_server::auth::normalize_code(&unused_code);
    for (what, secret) in [
        ("device token", token.as_str()),
        ("enrolment code", unused_code.as_str()),
        ("enrolment code (normalized)", normalized_code.as_str()),
        ("password", password),
        ("session cookie", cookie.as_str()),
    ] {
        assert!(
            !copy.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "the {what} is stored in the clear"
        );
    }
}
