//! The protocol and the document schema from the outside (issue 18, item 3): a device written in
//! JavaScript from `docs/PROTOCOL.md` and `docs/SCHEMA.md` only (`conformance/js/client.mjs`,
//! `@automerge/automerge` and `cborg` from npm) runs against a real server process. What it
//! writes the idiomatic JS way (Text strings, `Date` times, `crypto.randomUUID()` ids) must read
//! exactly the same on the server, on the dashboard and on a Rust phone; what a Rust phone writes
//! must read right in JS; and the server must refuse a visit the JS device credits to someone
//! else, which the JS device then keeps. (The Python phone reads the same in
//! `crates/ffi/tests/python/test_conformance_js.py`.)
//!
//! Needs Node.js and `npm ci --prefix conformance/js` (done by `scripts/test`).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use doorstep_core::doc;
use doorstep_core::ids::{DocumentId, EventId, HouseholdId, MemberId, RequestId, VisitId};
use doorstep_core::lifecycle::RequestStatus;
use doorstep_core::model::{EventAction, Household, NewVisit, Request, Urgency, VisitKind};
use doorstep_core::time::Timestamp;
use doorstep_server::dashboard::html::date_time;
use doorstep_server::scope::Role;
use serde_json::Value;
use support::*;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace root")
}

/// Runs `node conformance/js/client.mjs STATE ARGS…` and returns its JSON report.
fn js(state: &Path, args: &[&str]) -> Value {
    let root = workspace();
    let client = root.join("conformance/js/client.mjs");
    assert!(
        root.join("conformance/js/node_modules/@automerge/automerge").exists(),
        "run `npm ci --prefix conformance/js` first (scripts/test does)"
    );
    let out = Command::new("node")
        .arg(&client)
        .arg(state)
        .args(args)
        .output()
        .expect("run node (Node.js must be installed; scripts/test installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the JS client failed ({}):\n{}\n{stdout}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim().lines().last().expect("a report")).expect("a JSON report")
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("a string: {v}"))
}

fn ms(v: &Value) -> Timestamp {
    Timestamp(v.as_i64().unwrap_or_else(|| panic!("a time in ms: {v}")))
}

fn parse<T: std::str::FromStr>(v: &Value) -> T
where
    T::Err: std::fmt::Debug,
{
    text(v).parse().expect("an id")
}

/// The visit the JS client wrote, as every reader must show it.
fn assert_js_visit(household: &Household, js: &Value, member: MemberId) {
    let v = &js["visit"];
    let id: VisitId = parse(&v["id"]);
    let visit = household.visits.iter().find(|x| x.id == id).expect("the JS visit is there");
    assert_eq!(visit.by, member);
    assert_eq!(visit.at, ms(&v["at"]));
    assert_eq!(visit.kind, VisitKind::Care);
    assert_eq!(visit.notes, text(&v["notes"]));
    assert_eq!(visit.needs, vec!["送餐".to_owned(), "陪同就医".to_owned()]);
    let forged: VisitId = parse(&js["refused"]["forged_visit"]);
    assert!(household.visits.iter().all(|x| x.id != forged), "the forged visit is nowhere");
}

/// The request the JS client raised and acted on, as every reader must show it.
fn assert_js_request(request: &Request, js: &Value, member: MemberId, household: HouseholdId) {
    let r = &js["request"];
    assert_eq!(request.id, parse::<RequestId>(&r["id"]));
    assert_eq!(request.household, Some(household));
    assert_eq!(request.category.as_str(), text(&js["category"]));
    assert_eq!(request.description, text(&r["description"]));
    assert_eq!(request.urgency, Urgency::Normal);
    assert_eq!(request.raised_by, member);
    assert_eq!(request.raised_at, ms(&r["raised_at"]));
    // The due time the JS client computed from the taxonomy it was sent.
    let due_hours = js["due_hours"].as_i64().expect("due hours");
    assert_eq!(request.due_at, Timestamp(request.raised_at.0 + due_hours * 3_600_000));
    assert_eq!(request.due_at, ms(&r["due_at"]));
    let written = r["events"].as_array().expect("events");
    assert_eq!(request.events.len(), 3);
    for e in written {
        let id: EventId = parse(&e["id"]);
        let event = request.events.iter().find(|x| x.id == id).expect("every JS event is read");
        assert_eq!(event.by, member);
        assert_eq!(event.at, ms(&e["at"]));
        assert_eq!(event.note, text(&e["note"]));
        let after: Vec<EventId> = e["after"].as_array().expect("after").iter().map(parse).collect();
        assert_eq!(event.after, after);
    }
    let kinds: Vec<&EventAction> = request.events.iter().map(|e| &e.action).collect();
    assert_eq!(kinds, [&EventAction::Raised, &EventAction::Accepted, &EventAction::Progress]);
    assert_eq!(request.derived.status, RequestStatus::InProgress);
    assert!(request.derived.conflicts.is_empty() && request.derived.not_applied.is_empty());
}

#[tokio::test]
async fn a_javascript_device_written_from_the_docs_reads_the_same_everywhere() {
    let server = TestServer::start();
    let storage = server.storage();
    let grid = storage.create_grid("幸福社区第一网格", "幸福社区", "城关街道").expect("grid");
    let rust_worker = member(&*storage, "王芳", Role::GridWorker, &[grid]);
    let js_worker = member(&*storage, "赵敏", Role::GridWorker, &[grid]);
    let supervisor = member(&*storage, "李主任", Role::Supervisor, &[grid]);

    // A Rust phone registers the household the JS device will visit.
    let dir = devices_dir();
    let mut phone = device(&server, dir.path(), "rust", rust_worker).await;
    let home = phone.create_household(&household(grid, "501", "陈奶奶"), t(0)).expect("household");
    let report = server.client().sync(&mut phone).await.expect("sync");
    assert_eq!(report.uploaded_changes, 1);

    // A household in another community's grid, outside the JS device's scope.
    let other_grid = storage.create_grid("和平社区第二网格", "和平社区", "城关街道").expect("grid");
    let other_worker = member(&*storage, "孙丽", Role::GridWorker, &[other_grid]);
    let mut other_phone = device(&server, dir.path(), "other", other_worker).await;
    let foreign =
        other_phone.create_household(&household(other_grid, "707", "外社区居民"), t(0)).expect("household");
    server.client().sync(&mut other_phone).await.expect("sync");

    // The JS device: enrolled with a code from the admin CLI; first sync, visit, request,
    // actions, upload, then three uploads the server must refuse (its own checks are in
    // client.mjs).
    let code = server.admin(&["enrol-code", "--member", &js_worker.to_string()]);
    let code = code.lines().last().expect("a code").trim();
    let state = dir.path().join("js-state.json");
    let foreign_arg = foreign.to_string();
    let args = ["write", "--server", &server.url, "--code", code, "--foreign-household", &foreign_arg];
    let written = js(&state, &args);
    assert_eq!(parse::<MemberId>(&written["member"]), js_worker);
    assert_eq!(parse::<HouseholdId>(&written["household"]), home);
    assert_eq!(written["taxonomy_version"], 1, "the shipped taxonomy, sent for taxonomy_version 0");

    // The refusals, each naming its document, and every refused change still pending in JS:
    // a visit credited to the household's registrar, an event's note rewritten in place (a
    // Text edit), a request for a household outside the grid.
    let refused = &written["refused"];
    assert_eq!(parse::<MemberId>(&refused["forged_by"]), rust_worker);
    assert_eq!(refused["pending"], 3, "the JS device keeps what was refused: {refused}");
    let request_id: RequestId = parse(&written["request"]["id"]);
    let foreign_request: RequestId = parse(&refused["foreign_request"]);
    let held: Vec<(String, u64, DocumentId)> = refused["held_back"]
        .as_array()
        .expect("held back")
        .iter()
        .map(|h| (text(&h["code"]).to_owned(), h["status"].as_u64().expect("status"), parse(&h["doc"])))
        .collect();
    let mut expected = vec![
        ("forged_actor".to_owned(), 403, DocumentId::from(home)),
        ("invalid_document".to_owned(), 422, DocumentId::from(request_id)),
        ("out_of_scope".to_owned(), 403, DocumentId::from(foreign_request)),
    ];
    let mut held_sorted = held.clone();
    held_sorted.sort_by_key(|h| h.2);
    expected.sort_by_key(|h| h.2);
    assert_eq!(held_sorted, expected, "{refused}");
    assert_eq!(storage.document(DocumentId::from(foreign_request)).expect("read").map(|_| ()), None);

    // 1. The server's stored documents, read by the Rust core.
    let stored = storage.document(DocumentId::from(home)).expect("read").expect("stored");
    let on_server = doc::household::read(&stored, home).expect("a household");
    assert_js_visit(&on_server, &written, js_worker);
    let stored = storage.document(DocumentId::from(request_id)).expect("read").expect("stored");
    let request_on_server = doc::request::read(&stored, request_id).expect("a request");
    assert_js_request(&request_on_server, &written, js_worker, home);

    // 2. A Rust phone synced with the reference client reads exactly what the server reads.
    server.client().sync(&mut phone).await.expect("sync");
    let on_phone = phone.household(home).expect("household");
    assert_js_visit(&on_phone, &written, js_worker);
    assert_eq!(on_phone.visits, on_server.visits);
    let request_on_phone = phone.request(request_id).expect("request");
    assert_eq!(request_on_phone, request_on_server);

    // 3. The dashboard, signed in over HTTP as the grid's supervisor.
    let password = "conformance-test-password";
    let hash = doorstep_server::auth::hash_password(password).expect("hash");
    storage.create_staff_account(supervisor, "li", &hash, doorstep_server::http::now()).expect("account");
    let cookie = sign_in(&server.url, "li", password).await;
    let page = get(&cookie, &format!("{}/dashboard/households/{home}", server.url)).await;
    let visit_at = date_time(ms(&written["visit"]["at"]));
    for shown in [text(&written["visit"]["notes"]), "赵敏", "关爱走访", &visit_at] {
        assert!(page.contains(&html_escape(shown)), "the household page shows {shown:?}");
    }
    assert!(!page.contains("冒名的走访"), "the forged visit is not shown");
    let page = get(&cookie, &format!("{}/dashboard/requests/{request_id}", server.url)).await;
    let due = date_time(ms(&written["request"]["due_at"]));
    let shown =
        [text(&written["request"]["description"]), "已受理", "已联系社区食堂", "办理中", "赵敏", &due];
    for shown in shown {
        assert!(page.contains(&html_escape(shown)), "the request page shows {shown:?}");
    }

    // 4. What a Rust phone writes reads right in JS.
    let visit =
        NewVisit {
            at: t(30), kind: VisitKind::Routine, notes: "Rust 回访：已送餐".into(), needs: vec![]
        };
    let rust_visit = phone.record_visit(home, &visit).expect("visit");
    server.client().sync(&mut phone).await.expect("sync");
    let read = js(&state, &["read"]);
    let visits = read["households"][home.to_string()].as_array().expect("the household in JS");
    let seen = visits.iter().find(|v| v["id"] == rust_visit.to_string()).expect("JS finds the Rust visit");
    assert_eq!(parse::<MemberId>(&seen["by"]), rust_worker);
    assert_eq!(ms(&seen["at"]), t(30));
    assert_eq!(seen["notes"], "Rust 回访：已送餐");
    assert_eq!(seen["kind"], "routine");
    // What was refused is still pending in JS, and refused again on this sync.
    assert_eq!(read["pending"], 3);
    assert_eq!(read["sync"]["held_back"].as_array().map(Vec::len), Some(3), "{read}");
    let stored = storage.document(DocumentId::from(home)).expect("read").expect("stored");
    assert_js_visit(&doc::household::read(&stored, home).expect("a household"), &written, js_worker);
}

/// The dashboard's HTML escaping of what it shows (texts here have no markup characters).
fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}
