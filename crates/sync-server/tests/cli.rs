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
