//! The administration CLI and configuration, as an administrator uses them: the real binary,
//! its printed output, and a server started from a config file.

mod support;

use std::io::Write;

use doorstep_core::store::Replica;
use support::*;

fn id_after(output: &str, marker: &str) -> String {
    output
        .lines()
        .find_map(|l| l.split(marker).nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no {marker:?} in {output:?}"))
        .to_owned()
}

#[tokio::test]
async fn an_administrator_sets_up_a_grid_imports_households_and_enrols_a_phone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    let grid = id_after(
        &admin(data, &["grid", "add", "--name", "和平社区第二网格", "--community", "和平社区"]),
        "grid created: ",
    );
    let out = admin(data, &["member", "add", "--name", "周敏", "--role", "grid_worker", "--grid", &grid]);
    assert!(out.contains("网格员"), "{out}");
    let member = id_after(&out, "member added: ");
    let out = admin(data, &["enrol-code", "--member", &member, "--hours", "2"]);
    let code = out.lines().last().expect("code line").trim().to_owned();
    assert_eq!(code.len(), 11, "{out}");

    let csv = format!(
        "community,grid,building,unit,room,name,sex,birth_year,phone,tags,notes\n\
         和平社区,{grid},5栋,1单元,301,吴秀英,女,1945,13900000001,elderly_alone;disabled,\n\
         和平社区,{grid},5栋,1单元,301,吴强,男,1970,,,\n\
         和平社区,没有这个网格,5栋,1单元,302,郑某,男,1980,,,\n\
         和平社区,{grid},5栋,1单元,,林某,女,1990,,,\n\
         和平社区,{grid},5栋,1单元,303,,女,1990,,,\n\
         和平社区,{grid},5栋,1单元,304,徐某,外星,1990,,,\n\
         和平社区,{grid},5栋,1单元,305,何某,男,1700,,,\n\
         和平社区,{grid},5栋,1单元,306,马某,男,1988,,会飞,\n\
         和平社区,{grid},5栋,2单元,401,高兰,女,1962,,低保,需要关注\n"
    );
    let file = data.join("register.csv");
    std::fs::File::create(&file).expect("file").write_all(csv.as_bytes()).expect("write");
    let out = admin(data, &["import-households", "--file", file.to_str().expect("path")]);
    assert!(out.contains("imported 2 households, 3 residents; rejected 6 rows"), "{out}");
    for (line, reason) in [
        (4, "unknown grid"),
        (5, "room is empty"),
        (6, "name must not be empty"),
        (7, "invalid sex"),
        (8, "birth_year"),
        (9, "unknown tag"),
    ] {
        assert!(
            out.lines().any(|l| l.contains(&format!("line {line}:")) && l.contains(reason)),
            "line {line} should say {reason}: {out}"
        );
    }

    let server = TestServer::start_in(dir);
    let mut phone = Replica::open_in_memory().expect("replica");
    server.client().enrol(&mut phone, &code.to_lowercase(), "周敏的手机").await.expect("typed code works");
    let report = server.client().sync(&mut phone).await.expect("sync");
    assert_eq!(report.received_docs, 2);
    let grid = grid.parse().expect("grid id");
    let homes = phone.households_in_grid(grid).expect("list");
    assert_eq!(homes.iter().map(|h| h.resident_count).sum::<u32>(), 3);
    assert!(homes.iter().any(|h| h.tags.len() == 2));
    let out = server.admin(&["device", "list"]);
    assert!(out.contains("周敏的手机") && out.contains("active"), "{out}");
}

#[tokio::test]
async fn a_config_file_sets_the_metrics_token() {
    let config_dir = tempfile::tempdir().expect("tempdir");
    let config = config_dir.path().join("doorstep.toml");
    std::fs::write(&config, "metrics_token = \"s3cret-metrics\"\nlog = \"warn\"\n").expect("write");
    let server = TestServer::start();
    // Without the file, /metrics is disabled.
    let http = reqwest::Client::new();
    assert_eq!(
        http.get(format!("{}/metrics", server.url)).send().await.expect("answer").status().as_u16(),
        404
    );
    drop(server);

    let data = tempfile::tempdir().expect("tempdir");
    let mut child = std::process::Command::new(SERVER)
        .arg("--data-dir")
        .arg(data.path())
        .arg("--config")
        .arg(&config)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start");
    let stdout = child.stdout.take().expect("stdout");
    let line = std::io::BufRead::lines(std::io::BufReader::new(stdout))
        .map(|l| l.expect("line"))
        .find(|l| l.contains("listening on"))
        .expect("started");
    let url =
        line.split("listening on ").nth(1).and_then(|r| r.split_whitespace().next()).expect("url").to_owned();
    let unauthorised = http.get(format!("{url}/metrics")).send().await.expect("answer");
    assert_eq!(unauthorised.status().as_u16(), 401);
    let metrics =
        http.get(format!("{url}/metrics")).bearer_auth("s3cret-metrics").send().await.expect("answer");
    assert_eq!(metrics.status().as_u16(), 200);
    let text = metrics.text().await.expect("text");
    assert!(text.contains("doorstep_sync_rounds_total 0"), "{text}");
    child.kill().expect("kill");
    child.wait().expect("wait");
}

/// Runs an admin command on the server's data with extra environment; returns (success,
/// stdout, stderr).
fn admin_with_env(server: &TestServer, args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let mut command = std::process::Command::new(SERVER);
    command.arg("--data-dir").arg(server.dir.path());
    if let Some(db) = &server.database {
        command.args(["--database", &db.url]);
    }
    for (key, value) in env {
        command.env(key, value);
    }
    let out = command.args(args).output().expect("run admin command");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client")
}

/// Signs in over HTTP; returns the session cookie on success.
async fn session_cookie(base: &str, login: &str, password: &str) -> Option<String> {
    let response = no_redirects()
        .post(format!("{base}/dashboard/sign-in"))
        .header("cookie", "dsk_pre=cli-test")
        .form(&[("login", login), ("password", password), ("csrf", "cli-test")])
        .send()
        .await
        .expect("sign in");
    response.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).find_map(|v| {
        v.strip_prefix("dsk_session=").map(|rest| rest.split(';').next().unwrap_or("").to_owned())
    })
}

/// Whether a session cookie still opens a dashboard page.
async fn session_works(base: &str, cookie: &str) -> bool {
    let response = no_redirects()
        .get(format!("{base}/dashboard/overview"))
        .header("cookie", format!("dsk_session={cookie}"))
        .send()
        .await
        .expect("page");
    response.status().as_u16() == 200
}

#[tokio::test]
async fn an_administrator_disables_resets_and_unlocks_accounts_and_disables_a_member_at_once() {
    use doorstep_client::ClientError;
    use doorstep_core::sync::message::ErrorCode;
    use doorstep_server::scope::Role;

    let server = TestServer::start();
    let storage = server.storage();
    let base = server.url.clone();
    let grid = storage.create_grid("第一网格", "幸福社区", "城关街道").expect("grid");
    let boss = member(&*storage, "李主任", Role::Supervisor, &[grid]);
    let member_id = boss.to_string();

    // One password policy: too short is refused.
    let (ok, _, err) = admin_with_env(
        &server,
        &["account", "add", "--member", &member_id, "--login", "li"],
        &[("DOORSTEP_PASSWORD", "short")],
    );
    assert!(!ok && err.contains("8"), "{err}");
    let (ok, _, err) = admin_with_env(
        &server,
        &["account", "add", "--member", &member_id, "--login", "li"],
        &[("DOORSTEP_PASSWORD", "first-password-1")],
    );
    assert!(ok, "{err}");

    // Disabling ends the open session at once and refuses the right password.
    let cookie = session_cookie(&base, "li", "first-password-1").await.expect("signed in");
    assert!(session_works(&base, &cookie).await);
    let out = server.admin(&["account", "disable", "--login", "li"]);
    assert!(out.contains("disabled"), "{out}");
    assert!(!session_works(&base, &cookie).await, "the session stopped working at once");
    assert!(session_cookie(&base, "li", "first-password-1").await.is_none(), "cannot sign in");
    assert!(server.admin(&["account", "list"]).contains("disabled"));
    server.admin(&["account", "enable", "--login", "li"]);
    let cookie = session_cookie(&base, "li", "first-password-1").await.expect("enabled again");

    // A reset password: the old one and the old session stop working.
    let (ok, out, err) = admin_with_env(
        &server,
        &["account", "reset-password", "--login", "li"],
        &[("DOORSTEP_PASSWORD", "second-password-2")],
    );
    assert!(ok && out.contains("reset"), "{out} {err}");
    assert!(!session_works(&base, &cookie).await, "sessions end with a reset");
    assert!(session_cookie(&base, "li", "first-password-1").await.is_none());
    assert!(session_cookie(&base, "li", "second-password-2").await.is_some());

    // Locked by wrong guesses, unlocked by the administrator.
    for _ in 0..doorstep_server::dashboard::session::MAX_FAILURES {
        assert!(session_cookie(&base, "li", "wrong-password").await.is_none());
    }
    assert!(session_cookie(&base, "li", "second-password-2").await.is_none(), "locked");
    server.admin(&["account", "unlock", "--login", "li"]);
    let cookie = session_cookie(&base, "li", "second-password-2").await.expect("unlocked");

    // A role changed on the command line applies to the open session at once.
    let out = server.admin(&["member", "set-role", "--member", &member_id, "--role", "grid_worker"]);
    assert!(out.contains("grid_worker"), "{out}");
    assert!(server.admin(&["member", "list"]).contains("grid_worker"));
    let out = server.admin(&["member", "set-role", "--member", &member_id, "--role", "supervisor"]);
    assert!(out.contains("supervisor"), "{out}");

    // Disabling the member: its device is refused (its open WebSocket closes), its session ends.
    let dir = devices_dir();
    let mut phone = device(&server, dir.path(), "phone", boss).await;
    let token = doorstep_client::Client::device_token(&phone).expect("token");
    let mut live = server.client().connect_live(&token).await.expect("ws");
    live.sync(&mut phone).await.expect("live sync");
    let out = server.admin(&["member", "disable", "--member", &member_id]);
    assert!(out.contains("disabled") && out.contains("1"), "{out}");
    assert!(!session_works(&base, &cookie).await, "the member's session ended");
    let err = live.next_push(&mut phone).await.unwrap_err();
    assert!(matches!(err, ClientError::Refused { code: ErrorCode::DeviceRevoked, .. }), "{err:?}");
    // The phone forgot its enrolment with its data; its old token is refused over HTTP too.
    let err = server.client().sync(&mut phone).await.unwrap_err();
    assert!(matches!(err, ClientError::NotEnrolled), "{err:?}");
    let frame =
        doorstep_core::sync::frame::encode_client(&doorstep_core::sync::message::ClientMessage::Sync(
            doorstep_core::sync::message::SyncRequest::default(),
        ));
    let reply = server.client().post_frame(&token, frame).await.expect("answered");
    let refused = doorstep_client::decode_reply(&reply).expect("a frame");
    assert!(
        matches!(&refused, doorstep_core::sync::message::ServerMessage::Error(e) if e.code == ErrorCode::DeviceRevoked),
        "{refused:?}"
    );
    assert!(session_cookie(&base, "li", "second-password-2").await.is_none(), "cannot sign in");
    assert!(server.admin(&["member", "list"]).contains("disabled"));
}

#[tokio::test]
async fn check_reads_every_stored_document_and_names_one_that_cannot_be_read_in_full() {
    use doorstep_server::storage::Storage;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    {
        let storage = doorstep_server::storage::sqlite::SqliteStorage::open(data).expect("storage");
        doorstep_server::demo::seed_sized(&storage, doorstep_server::http::now(), 3)
            .expect("seed")
            .expect("empty");
    }
    let out = admin(data, &["check"]);
    assert!(out.contains("checked 636 documents, all read in full"), "{out}");

    // A household whose resident's phone holds markup, written past the upload check (as a
    // database from before the check, or an old backup, may hold).
    let storage = doorstep_server::storage::sqlite::SqliteStorage::open(data).expect("storage");
    let (id, _) = storage
        .document_heads()
        .expect("heads")
        .into_iter()
        .find(|(id, _)| {
            doorstep_core::doc::household::read(
                &storage.document(*id).expect("r").expect("s"),
                id.as_household(),
            )
            .is_ok()
        })
        .expect("a household");
    let mut doc = storage.document(id).expect("read").expect("stored");
    {
        use automerge::ReadDoc;
        use automerge::transaction::Transactable;
        let residents = doc.get(automerge::ROOT, "residents").expect("get").expect("residents").1;
        let first = doc.keys(&residents).next().expect("a resident");
        let resident = doc.get(&residents, first.as_str()).expect("get").expect("resident").1;
        doc.put(&resident, "phone", "<script>").expect("put");
    }
    doc.commit();
    storage.write_server_documents(&mut [(id, doc)], doorstep_server::http::now()).expect("write");
    drop(storage);

    let out =
        std::process::Command::new(SERVER).arg("--data-dir").arg(data).arg("check").output().expect("run");
    assert!(!out.status.success(), "exit code 1 when a document cannot be read");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains(&id.to_string()) && stdout.contains(".phone"), "{stdout}");
    assert!(stderr.contains("checked 636 documents, 1 cannot be read in full"), "{stderr}");
}
