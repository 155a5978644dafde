//! Abuse limits (issue 8) against a real server process: enrolment-code guessing, many
//! sockets on one token, slow clients (slowloris), oversized bodies and huge documents. Every
//! refusal is the documented error, and the server keeps serving everyone else.

mod support;

use std::time::Duration;

use doorstep_client::ClientError;
use doorstep_core::ids::{DocumentId, GridId};
use doorstep_core::model::{NewVisit, VisitKind};
use doorstep_core::sync::message::ErrorCode;
use doorstep_server::scope::Role;
use doorstep_server::storage::Storage;
use reqwest::StatusCode;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long a test waits for the server to do what it must (never a pass/fail threshold).
const PATIENCE: Duration = Duration::from_secs(30);

/// A server whose config file holds `toml`.
fn start_with_config(toml: &str) -> TestServer {
    let config_dir = tempfile::tempdir().expect("tempdir");
    let config = config_dir.path().join("limits.toml");
    std::fs::write(&config, toml).expect("config");
    TestServer::start_with(
        tempfile::tempdir().expect("tempdir"),
        &["--config", config.to_str().expect("path")],
    )
}

fn grid(storage: &dyn Storage) -> GridId {
    storage.create_grid("一网格", "幸福社区", "城关街道").expect("grid")
}

async fn enrol_status(server: &TestServer, code: &str) -> (StatusCode, String) {
    let response = reqwest::Client::new()
        .post(format!("{}/v1/enrol", server.url))
        .json(&serde_json::json!({
            "code": code,
            "actor": automerge::ActorId::random().to_hex_string(),
            "device_name": "猜码机",
        }))
        .send()
        .await
        .expect("enrol");
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    (status, body["error"].as_str().unwrap_or("").to_owned())
}

/// Reads from a raw socket until the server closes it (or `PATIENCE` runs out); returns what
/// arrived and whether it was closed.
async fn read_until_closed(stream: &mut tokio::net::TcpStream) -> (Vec<u8>, bool) {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(PATIENCE, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (all, true),
            Ok(Ok(n)) => all.extend_from_slice(&buf[..n]),
            Err(_) => return (all, false),
        }
    }
}

fn host_port(server: &TestServer) -> String {
    server.url.trim_start_matches("http://").to_owned()
}

#[tokio::test]
async fn guessing_enrolment_codes_is_rate_limited_and_then_even_a_good_code_waits() {
    let server = start_with_config("enrol_failures_per_address = 3\n");
    let storage = server.storage();
    let worker = member(&*storage, "网格员", Role::GridWorker, &[grid(&*storage)]);
    for guess in ["AAAA-BBBB-CCCC", "AAAA-BBBB-CCCD", "AAAA-BBBB-CCCE"] {
        assert_eq!(enrol_status(&server, guess).await, (StatusCode::UNAUTHORIZED, "unauthorized".into()));
    }
    assert_eq!(
        enrol_status(&server, "AAAA-BBBB-CCCF").await,
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited".into()),
        "the fourth guess is refused before the code is looked at"
    );
    let good = code_for(&*storage, worker);
    assert_eq!(
        enrol_status(&server, &good).await,
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited".into()),
        "while limited, a right code gives the guesser no signal"
    );
    assert!(storage.devices().expect("devices").is_empty(), "nobody was enrolled");
}

#[tokio::test]
async fn a_device_holds_at_most_the_configured_live_connections() {
    let server = start_with_config("connections_per_device = 2\n");
    let storage = server.storage();
    let g = grid(&*storage);
    let dir = devices_dir();
    let a = device(&server, dir.path(), "a", member(&*storage, "甲", Role::GridWorker, &[g])).await;
    let b = device(&server, dir.path(), "b", member(&*storage, "乙", Role::GridWorker, &[g])).await;
    let token = |r: &doorstep_core::store::Replica| r.enrolment().expect("e").expect("enrolled").token;
    let first = server.client().connect_live(&token(&a)).await.expect("first socket");
    let _second = server.client().connect_live(&token(&a)).await.expect("second socket");
    match server.client().connect_live(&token(&a)).await {
        Err(ClientError::Refused { code, .. }) => assert_eq!(code, ErrorCode::RateLimited),
        Err(e) => panic!("refused without its code: {e}"),
        Ok(_) => panic!("a third socket on one token was accepted"),
    }
    let _other = server.client().connect_live(&token(&b)).await.expect("another device is not limited");
    // Closing one frees its slot once the server has seen the close.
    drop(first);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match server.client().connect_live(&token(&a)).await {
            Ok(_) => break,
            Err(ClientError::Refused { code: ErrorCode::RateLimited, .. })
                if tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("the slot was never given back: {e}"),
        }
    }
}

#[tokio::test]
async fn a_client_that_sends_its_headers_slowly_is_cut_off_and_others_are_served() {
    let server = start_with_config("header_timeout_secs = 1\n");
    let mut slow = tokio::net::TcpStream::connect(host_port(&server)).await.expect("connect");
    slow.write_all(b"POST /v1/sync HTTP/1.1\r\nHost: doorstep\r\nX-Slow: ").await.expect("partial headers");
    // A second socket that never sends anything at all.
    let mut silent = tokio::net::TcpStream::connect(host_port(&server)).await.expect("connect");
    let health = reqwest::get(format!("{}/healthz", server.url)).await.expect("healthz");
    assert_eq!(health.status(), StatusCode::OK, "others are served meanwhile");
    let (_, closed) = read_until_closed(&mut slow).await;
    assert!(closed, "the server closed the slow client's connection");
    let (_, closed) = read_until_closed(&mut silent).await;
    assert!(closed, "the server closed the silent connection");
}

#[tokio::test]
async fn a_sync_body_that_trickles_is_cut_off_with_an_error_frame() {
    let server = start_with_config("body_timeout_secs = 1\n");
    let storage = server.storage();
    let dir = devices_dir();
    let replica =
        device(&server, dir.path(), "a", member(&*storage, "甲", Role::GridWorker, &[grid(&*storage)])).await;
    let token = replica.enrolment().expect("e").expect("enrolled").token;
    let mut stream = tokio::net::TcpStream::connect(host_port(&server)).await.expect("connect");
    let head = format!(
        "POST /v1/sync HTTP/1.1\r\nHost: doorstep\r\nAuthorization: Bearer {token}\r\nContent-Type: application/vnd.doorstep.v1+cbor\r\nContent-Length: 1000\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("headers");
    stream.write_all(&[1, 0xa1]).await.expect("two bytes of the body");
    let (bytes, _) = read_until_closed(&mut stream).await;
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.starts_with("HTTP/1.1 400"), "a clear refusal: {text}");
    assert!(text.contains("did not arrive in time"), "the error frame says why: {text}");
}

#[tokio::test]
async fn oversized_bodies_are_refused_without_being_read_whole() {
    let server = TestServer::start();
    let huge = "码".repeat(400_000);
    let response = reqwest::Client::new()
        .post(format!("{}/v1/enrol", server.url))
        .json(&serde_json::json!({"code": huge, "actor": "00", "device_name": huge}))
        .send()
        .await;
    // Refused with 413 on its declared length, possibly before the client has written it all
    // (the connection then closes under it; the early answer itself is checked on a raw socket
    // in `a_huge_declared_body_is_refused_before_it_is_read`).
    match response {
        Ok(response) => {
            assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE, "an enrolment body of a megabyte")
        }
        Err(e) => assert!(e.is_request(), "only the write may fail: {e}"),
    }
    let response = reqwest::Client::new()
        .post(format!("{}/dashboard/sign-in", server.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(vec![b'a'; 20 * 1024 * 1024])
        .send()
        .await;
    // Refused with 413, or the connection closed while the body was still being sent.
    if let Ok(response) = response {
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE, "a 20 MiB sign-in form");
    }
    let health = reqwest::get(format!("{}/healthz", server.url)).await.expect("healthz");
    assert_eq!(health.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_document_over_the_size_limit_is_refused_not_stored_and_kept_on_the_device() {
    let server = start_with_config("max_document_bytes = 20000\n");
    let storage = server.storage();
    let g = grid(&*storage);
    let dir = devices_dir();
    let mut replica = device(&server, dir.path(), "a", member(&*storage, "甲", Role::GridWorker, &[g])).await;
    let small = replica.create_household(&household(g, "101", "小户"), t(0)).expect("household");
    let big = replica.create_household(&household(g, "102", "大户"), t(0)).expect("household");
    // Visits whose notes are random text (Automerge compresses repeats) until the document is
    // well over the limit.
    let mut seed = 0x9e37_79b9_u64;
    for n in 0..12 {
        let notes: String = (0..3_000)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                char::from_u32(0x4e00 + (seed % 2000) as u32).unwrap_or('字')
            })
            .collect();
        let visit = NewVisit { at: t(n), kind: VisitKind::Routine, notes, needs: vec![] };
        replica.record_visit(big, &visit).expect("visit");
    }
    let report = server.client().sync(&mut replica).await.expect("the rest syncs");
    assert_eq!(report.held_back, vec![(DocumentId::from(big), ErrorCode::DocumentTooLarge)]);
    assert!(storage.document(big.into()).expect("read").is_none(), "nothing of it stored");
    assert!(storage.document(small.into()).expect("read").is_some(), "the small one went through");
    assert!(replica.unsynced_change_count().expect("count") > 0, "the device keeps the big one");
}

/// A metric's value in `/metrics` text, if present.
fn metric(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

async fn metrics_text(server: &TestServer, token: &str) -> String {
    reqwest::Client::new()
        .get(format!("{}/metrics", server.url))
        .bearer_auth(token)
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text")
}

/// Posts a sign-in form (the double-submit token is the caller's own).
async fn sign_in_status(url: &str, login: &str, password: &str) -> StatusCode {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .post(format!("{url}/dashboard/sign-in"))
        .header("cookie", "dsk_pre=flood")
        .form(&[("login", login), ("password", password), ("csrf", "flood")])
        .send()
        .await
        .expect("sign in")
        .status()
}

#[tokio::test]
async fn a_sign_in_flood_hashes_outside_the_storage_slots_and_devices_keep_syncing() {
    let server = start_with_config("metrics_token = \"m\"\n");
    let storage = server.storage();
    let dir = devices_dir();
    let mut phone =
        device(&server, dir.path(), "a", member(&*storage, "甲", Role::GridWorker, &[grid(&*storage)])).await;
    // Anonymous sign-ins with logins that do not exist, all at once.
    let flood: Vec<_> = (0..40)
        .map(|n| {
            let url = server.url.clone();
            tokio::spawn(async move { sign_in_status(&url, &format!("nobody-{n}"), "guess").await })
        })
        .collect();
    // Wait (bounded) until the flood is seen queueing for the password hasher.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let text = metrics_text(&server, "m").await;
        let running = metric(&text, "doorstep_password_checks_running").expect("hashes running are shown");
        let waiting = metric(&text, "doorstep_password_checks_waiting").expect("hashes waiting are shown");
        let in_use = metric(&text, "doorstep_storage_calls_in_use").expect("storage slots in use are shown");
        assert!(running <= 2, "at most two passwords are hashed at once: {running}");
        if waiting > 0 {
            // Sign-ins hold none of the 16 storage slots devices sync in (the revocation
            // watcher's look, once a second, may hold one).
            assert!(in_use <= 1, "sign-ins hold {in_use} storage slots: {text}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the flood never queued: {text}");
    }
    let report = server.client().sync(&mut phone).await.expect("the device syncs during the flood");
    assert!(report.round_trips > 0);
    for status in flood {
        let status = status.await.expect("task");
        assert!(
            status == StatusCode::UNAUTHORIZED || status == StatusCode::TOO_MANY_REQUESTS,
            "a sign-in is refused, or told to wait: {status}"
        );
    }
}

/// Posts an enrolment as if through a proxy that set `X-Forwarded-For`.
async fn enrol_via(server: &TestServer, forwarded_for: &str, code: &str) -> (StatusCode, String) {
    let response = reqwest::Client::new()
        .post(format!("{}/v1/enrol", server.url))
        .header("x-forwarded-for", forwarded_for)
        .json(&serde_json::json!({
            "code": code,
            "actor": automerge::ActorId::random().to_hex_string(),
            "device_name": "手机",
        }))
        .send()
        .await
        .expect("enrol");
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    (status, body["error"].as_str().unwrap_or("").to_owned())
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_phone_is_limited_alone_and_a_real_code_enrols_during_a_flood() {
    let server = start_with_config(
        "trusted_proxies = [\"127.0.0.1\"]\nenrol_failures_per_address = 3\nenrol_failures_total = 5\nenrol_attempts_per_minute_over_limit = 6000\n",
    );
    let storage = server.storage();
    let worker = member(&*storage, "网格员", Role::GridWorker, &[grid(&*storage)]);
    // A guesser at 10.0.0.1 (a spoofed address on the left is ignored: the proxy appended the
    // real one on the right).
    for n in 0..3 {
        let guess = format!("AAAA-BBBB-CCC{n}");
        assert_eq!(
            enrol_via(&server, "203.0.113.9, 10.0.0.1", &guess).await,
            (StatusCode::UNAUTHORIZED, "unauthorized".into())
        );
    }
    assert_eq!(
        enrol_via(&server, "203.0.113.7, 10.0.0.1", "AAAA-BBBB-CCCX").await,
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited".into()),
        "the guesser's own address is limited"
    );
    // Guesses from other addresses take the county past its budget of failures.
    for address in ["10.0.0.2", "10.0.0.3"] {
        for n in 0..3 {
            let (status, _) = enrol_via(&server, address, &format!("AAAA-BBBB-DDD{n}")).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{address} is not blocked by 10.0.0.1's guesses");
        }
    }
    // Another phone behind the same proxy, with a real code, still enrols.
    let good = code_for(&*storage, worker);
    assert_eq!(enrol_via(&server, "10.0.0.50", &good).await.0, StatusCode::OK, "a real code enrols");
    assert_eq!(storage.devices().expect("devices").len(), 1);
}

#[tokio::test]
async fn without_a_trusted_proxy_a_forged_forwarded_for_header_changes_nothing() {
    let server = start_with_config("enrol_failures_per_address = 3\n");
    for n in 0..3 {
        let forged = format!("10.9.9.{n}");
        let (status, _) = enrol_via(&server, &forged, &format!("AAAA-BBBB-EEE{n}")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        enrol_via(&server, "10.9.9.200", "AAAA-BBBB-EEEX").await,
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited".into()),
        "the header is not believed from an untrusted peer"
    );
}

#[tokio::test]
async fn a_device_looping_sync_rounds_is_rate_limited_while_another_device_syncs() {
    use doorstep_core::sync::client::{self, ClientLimits};
    use doorstep_core::sync::message::ServerMessage;
    let server = TestServer::start();
    let storage = server.storage();
    let g = grid(&*storage);
    let dir = devices_dir();
    let mut looping = device(&server, dir.path(), "a", member(&*storage, "甲", Role::GridWorker, &[g])).await;
    let mut other = device(&server, dir.path(), "b", member(&*storage, "乙", Role::GridWorker, &[g])).await;
    looping.create_household(&household(g, "101", "王秀英"), t(0)).expect("household");
    server.client().sync(&mut looping).await.expect("first sync");
    let token = looping.enrolment().expect("e").expect("enrolled").token;
    // The same full round from cursor 0, again and again (a stolen token or a runaway app).
    let (frame, _) = client::begin_round(&mut looping, &ClientLimits::default(), false, &[]).expect("round");
    let mut limited = None;
    for round in 0..5_000 {
        let reply = server.client().post_frame(&token, frame.clone()).await.expect("reply");
        match doorstep_client::decode_reply(&reply).expect("frame") {
            ServerMessage::Sync(_) => continue,
            ServerMessage::Error(error) => {
                assert_eq!(error.code, ErrorCode::RateLimited, "{error:?}");
                limited = Some((round, error));
                break;
            }
            other => panic!("unexpected reply {other:?}"),
        }
    }
    let (round, error) = limited.expect("the loop was never limited");
    assert!(round > 100, "a real device's rounds are not limited: limited after {round}");
    assert!(error.retry_after_secs.is_some_and(|s| s > 0), "the refusal says when to retry: {error:?}");
    let report = server.client().sync(&mut other).await.expect("another device still syncs");
    assert_eq!(report.received_docs, 1);
}

#[tokio::test]
async fn the_client_waits_out_a_short_retry_after_and_its_sync_completes() {
    let server =
        start_with_config("metrics_token = \"m\"\nsync_round_burst = 1\nsync_rounds_per_minute = 600\n");
    let storage = server.storage();
    let g = grid(&*storage);
    let dir = devices_dir();
    let mut phone = device(&server, dir.path(), "a", member(&*storage, "甲", Role::GridWorker, &[g])).await;
    for n in 0..3 {
        phone.create_household(&household(g, &format!("10{n}"), "王秀英"), t(n)).expect("household");
        let report = server.client().sync(&mut phone).await.expect("each sync completes");
        assert_eq!(report.uploaded_changes, 1);
    }
    let text = metrics_text(&server, "m").await;
    assert!(
        metric(&text, "doorstep_errors_total").is_some_and(|n| n > 0),
        "the budget of one round was hit and waited out: {text}"
    );
    assert_eq!(storage.document_heads().expect("heads").len(), 3);
}

#[tokio::test]
async fn parallel_guesses_from_one_address_check_no_more_codes_than_its_limit() {
    let server = start_with_config("enrol_failures_per_address = 3\n");
    let url = server.url.clone();
    let guesses: Vec<_> = (0..20)
        .map(|n| {
            let url = url.clone();
            tokio::spawn(async move {
                reqwest::Client::new()
                    .post(format!("{url}/v1/enrol"))
                    .json(&serde_json::json!({
                        "code": format!("AAAA-BBBB-F{n:03}"),
                        "actor": automerge::ActorId::random().to_hex_string(),
                        "device_name": "猜码机",
                    }))
                    .send()
                    .await
                    .expect("enrol")
                    .status()
            })
        })
        .collect();
    let mut checked = 0;
    for guess in guesses {
        match guess.await.expect("task") {
            StatusCode::UNAUTHORIZED => checked += 1,
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(checked, 3, "one code at a time per address: each failure is counted before the next check");
}

/// Sends a request's headers and the first two bytes of a body that never comes whole.
async fn start_slow_body(server: &TestServer, path: &str, content_type: &str) -> tokio::net::TcpStream {
    let mut stream = tokio::net::TcpStream::connect(host_port(server)).await.expect("connect");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: doorstep\r\nContent-Type: {content_type}\r\nContent-Length: 1000\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("headers");
    stream.write_all(b"{\"").await.expect("two bytes of the body");
    stream
}

#[tokio::test]
async fn slow_bodies_on_unauthenticated_routes_are_cut_off() {
    let server = start_with_config("body_timeout_secs = 1\n");
    for (path, content_type) in
        [("/v1/enrol", "application/json"), ("/dashboard/sign-in", "application/x-www-form-urlencoded")]
    {
        let mut stream = start_slow_body(&server, path, content_type).await;
        let (bytes, closed) = read_until_closed(&mut stream).await;
        assert!(closed, "{path}: the slow body was never cut off");
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.starts_with("HTTP/1.1 408"), "{path}: a clear refusal: {text}");
    }
}

#[tokio::test]
async fn unauthenticated_requests_in_flight_are_capped_and_others_are_served() {
    // The slow bodies stay in flight for the whole probe (how they are cut off is the test
    // above); a short timeout would free their places on a loaded machine before the probe.
    let server = start_with_config(
        "body_timeout_secs = 120\nunauthenticated_requests_at_once = 2\nenrol_failures_per_address = 100000\nenrol_failures_total = 100000\n",
    );
    let mut slow = Vec::new();
    for _ in 0..2 {
        slow.push(start_slow_body(&server, "/v1/enrol", "application/json").await);
    }
    // The two slow requests may still be on their way through the server: a refusal, once
    // seen, stays until they end.
    let mut refused = false;
    for _ in 0..1000 {
        let (status, _) = enrol_status(&server, "AAAA-BBBB-CC").await;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            refused = true;
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(refused, "a third unauthenticated request was let in beside two slow ones");
    let health = reqwest::get(format!("{}/healthz", server.url)).await.expect("healthz");
    assert_eq!(health.status(), StatusCode::OK, "others are served meanwhile");
    // The slow clients hang up: their places are given back and requests are let in again.
    drop(slow);
    let mut let_in = false;
    for _ in 0..1000 {
        if enrol_status(&server, "AAAA-BBBB-CC").await.0 == StatusCode::UNAUTHORIZED {
            let_in = true;
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(let_in, "once they are gone, requests are let in again");
}

#[tokio::test]
async fn a_huge_declared_body_is_refused_before_it_is_read() {
    let server = TestServer::start();
    let storage = server.storage();
    let admin = member(&*storage, "管理员", Role::Admin, &[]);
    let hash = doorstep_server::auth::hash_password("correct horse battery staple").expect("hash");
    storage.create_staff_account(admin, "admin", &hash, doorstep_server::http::now()).expect("account");
    let http =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let form = http.get(format!("{}/dashboard/sign-in", server.url)).send().await.expect("form");
    let pre = form
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("dsk_pre="))
        .and_then(|v| v.split(';').next())
        .expect("pre-session")
        .to_owned();
    let signed_in = http
        .post(format!("{}/dashboard/sign-in", server.url))
        .header("cookie", format!("dsk_pre={pre}"))
        .form(&[("login", "admin"), ("password", "correct horse battery staple"), ("csrf", pre.as_str())])
        .send()
        .await
        .expect("sign in");
    let session = signed_in
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("dsk_session="))
        .and_then(|v| v.split(';').next())
        .expect("session")
        .to_owned();
    let dir = devices_dir();
    let phone =
        device(&server, dir.path(), "a", member(&*storage, "甲", Role::GridWorker, &[grid(&*storage)])).await;
    let token = phone.enrolment().expect("e").expect("enrolled").token;
    let probes = [
        ("POST", "/v1/enrol".to_owned(), "Content-Type: application/json\r\n".to_owned()),
        ("POST", "/dashboard/sign-in".into(), "Content-Type: application/x-www-form-urlencoded\r\n".into()),
        (
            "POST",
            "/dashboard/import".into(),
            format!("Cookie: dsk_session={session}\r\nContent-Type: multipart/form-data; boundary=x\r\n"),
        ),
        (
            "POST",
            "/v1/sync".into(),
            format!("Authorization: Bearer {token}\r\nContent-Type: application/vnd.doorstep.v1+cbor\r\n"),
        ),
    ];
    for (method, path, extra) in probes {
        let mut stream = tokio::net::TcpStream::connect(host_port(&server)).await.expect("connect");
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: doorstep\r\n{extra}Content-Length: 1000000000\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.expect("headers");
        // No byte of the body is sent: the answer must come from the declared length alone.
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
            match tokio::time::timeout(PATIENCE, stream.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => answer.extend_from_slice(&buf[..n]),
                _ => break,
            }
        }
        let text = String::from_utf8_lossy(&answer);
        assert!(text.starts_with("HTTP/1.1 413"), "{path}: no early 413: {text:?}");
    }
}
