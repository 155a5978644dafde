//! A grid worker's day, end to end: the county sets up a grid and imports its households, the
//! worker enrols her phone and downloads the grid, records visits and raises requests in a
//! stairwell with no signal, reconnects and syncs; the community supervisor's device sees the
//! work, dispatches a request, and the worker's phone receives the dispatch.
//!
//! Run: `cargo run --example field_day` (a real server on 127.0.0.1, real SQLite files in a
//! temporary directory; it checks every step and exits non-zero if one fails).

use std::sync::Arc;

use anyhow::{Context, ensure};
use doorstep_client::Client;
use doorstep_core::ids::Code;
use doorstep_core::lifecycle::RequestStatus;
use doorstep_core::model::{EventAction, NewEvent, NewRequest, NewVisit, Urgency, VisitKind};
use doorstep_core::store::{Replica, RequestFilter};
use doorstep_core::time::Timestamp;
use doorstep_server::config::Config;
use doorstep_server::scope::Role;
use doorstep_server::storage::Storage;
use doorstep_server::storage::sqlite::SqliteStorage;
use doorstep_server::{auth, http, import};

const REGISTER: &str = "社区,网格,楼栋,单元,室,姓名,性别,出生年份,电话,标签
幸福社区,幸福社区第一网格,3栋,1单元,101,赵桂兰,女,1941,13800000001,独居老人
幸福社区,幸福社区第一网格,3栋,1单元,102,钱建国,男,1958,13800000002,党员
幸福社区,幸福社区第一网格,3栋,1单元,102,钱小雨,女,2014,,留守儿童
幸福社区,幸福社区第一网格,3栋,2单元,201,孙丽,女,1976,13800000003,低保
幸福社区,幸福社区第一网格,3栋,2单元,202,李伟,男,1969,电话待补,
";

fn code_for(storage: &dyn Storage, member: doorstep_core::ids::MemberId) -> anyhow::Result<String> {
    let code = auth::new_enrolment_code()?;
    let now = http::now();
    storage.create_enrolment_code(
        member,
        &auth::hash_secret(&auth::normalize_code(&code)),
        now,
        now.plus_hours(1),
    )?;
    Ok(code)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let storage = Arc::new(SqliteStorage::open(&dir.path().join("server"))?);

    println!("1. 县里建网格、导入住户 / the county creates a grid and imports its register");
    let grid = storage.create_grid("幸福社区第一网格", "幸福社区", "城关街道")?;
    let worker = storage.create_member("王芳", Role::GridWorker, None, http::now())?;
    let boss = storage.create_member("李主任", Role::Supervisor, None, http::now())?;
    storage.set_member_grid(worker, grid, true)?;
    storage.set_member_grid(boss, grid, true)?;
    let report = import::import_csv(storage.as_ref(), REGISTER, boss, http::now())?;
    println!("   imported {} households, rejected {} row(s):", report.households, report.rejected.len());
    for row in &report.rejected {
        println!("   line {}: {}", row.line, row.reason);
    }
    ensure!(report.households == 3 && report.rejected.len() == 1, "import report: {report:?}");

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let served: Arc<dyn Storage> = storage.clone();
    let server = tokio::spawn(async move {
        doorstep_server::serve(&Config::default(), served, listener, std::future::pending()).await
    });
    let client = Client::new(&url);

    println!("2. 王芳注册手机并下载网格 / Wang Fang enrols her phone and downloads her grid");
    let mut phone = Replica::open(dir.path().join("wang-fang.db"))?;
    client.enrol(&mut phone, &code_for(storage.as_ref(), worker)?, "王芳的手机").await?;
    let first = client.sync(&mut phone).await?;
    println!(
        "   {} documents, {} bytes down, scope verified: {}",
        first.received_docs, first.bytes_down, first.verified
    );
    let homes = phone.households_in_grid(grid)?;
    ensure!(homes.len() == 3 && first.verified, "the grid arrived whole");

    println!("3. 楼道里没有信号：走访、提诉求 / no signal in the stairwell: visits and requests");
    let elderly = homes.iter().find(|h| h.display_name == "赵桂兰").context("赵桂兰's household")?;
    let now = http::now().millis();
    for (i, home) in homes.iter().enumerate() {
        phone.record_visit(
            home.id,
            &NewVisit {
                at: Timestamp(now + i as i64 * 600_000),
                kind: VisitKind::Routine,
                notes: "入户走访，了解近况".into(),
                needs: vec![],
            },
        )?;
    }
    let request = phone.raise_request(&NewRequest {
        household: Some(elderly.id),
        grid: None,
        category: "facility_repair".into(),
        description: "楼道灯坏了，老人晚上下楼不安全".into(),
        urgency: Urgency::Urgent,
        at: Timestamp(now + 3_600_000),
    })?;
    println!("   {} changes waiting for signal", phone.unsynced_change_count()?);

    println!("4. 回到有信号的地方同步 / back in signal: sync");
    let up = client.sync(&mut phone).await?;
    println!("   uploaded {} changes in {} round trip(s)", up.uploaded_changes, up.round_trips);
    ensure!(phone.unsynced_change_count()? == 0, "everything acknowledged");

    println!("5. 李主任在社区看到并转办 / the supervisor sees it and dispatches it");
    let mut office = Replica::open(dir.path().join("supervisor.db"))?;
    client.enrol(&mut office, &code_for(storage.as_ref(), boss)?, "社区办公室").await?;
    client.sync(&mut office).await?;
    let ledger = office.list_requests(&RequestFilter { open_only: true, ..RequestFilter::default() })?;
    ensure!(ledger.len() == 1 && ledger[0].id == request, "the request is in the supervisor's ledger");
    ensure!(office.household(elderly.id)?.visits.len() == 1, "the visit reached the supervisor");
    office.add_request_event(
        request,
        &NewEvent {
            action: EventAction::Dispatched { department: Code::new("housing_construction")? },
            note: "请物业三日内修复".into(),
            at: Timestamp(now + 7_200_000),
        },
    )?;
    client.sync(&mut office).await?;

    println!("6. 王芳的手机收到转办 / the worker's phone receives the dispatch");
    client.sync(&mut phone).await?;
    let status = phone.request(request)?.status();
    println!("   request status on the phone: {status} ({})", status.label_zh());
    ensure!(status == RequestStatus::Dispatched, "the dispatch arrived");

    server.abort();
    println!("一天的工作全部同步完成 / the whole day's work is synced");
    Ok(())
}
