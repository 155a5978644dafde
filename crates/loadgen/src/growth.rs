//! The growth scenario: does an idle reconnect stay flat as a scope grows, and how much does
//! storage grow per visit over a year of work?
//!
//! - **Scope size.** For each size, a fresh server (its own data directory) with one grid of
//!   that many documents (five households to one request, the demo's content), one phone
//!   enrolled and up to date; then idle reconnects, each a whole `Client::sync` on a new
//!   connection. Measured: time, bytes both ways, round trips, and the server's CPU per
//!   reconnect.
//! - **A year.** One grid worker with a grid of 500 households records visits offline and syncs
//!   at the end of every working day; the server's database and the phone's replica are
//!   measured as the visits accumulate.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Result, anyhow, bail};
use doorstep_client::Client;
use doorstep_core::ids::{GridId, MemberId};
use doorstep_core::model::{NewVisit, Taxonomy, VisitKind};
use doorstep_core::store::{Durability, Replica, ReplicaOptions};
use doorstep_core::time::Timestamp;
use doorstep_server::demo::{self, GridCrew, Seeded};
use doorstep_server::scope::Role;
use doorstep_server::storage::Storage;
use serde::Serialize;

use crate::server::{Backend, ServerProcess};

/// Idle reconnects measured per scope size.
const IDLE_ROUNDS: usize = 20;

/// One scope size's figures.
#[derive(Debug, Serialize)]
pub struct SizeFigures {
    /// Documents in the phone's scope.
    pub documents: usize,
    /// Median time of an idle reconnect (whole `Client::sync`, new connection), ms.
    pub idle_median_ms: f64,
    /// Round trips of an idle reconnect.
    pub idle_round_trips: usize,
    /// Frame bytes up + down of an idle reconnect.
    pub idle_bytes: usize,
    /// Server CPU per idle reconnect, ms.
    pub server_cpu_ms_per_reconnect: f64,
    /// Time of the phone's first download of the whole scope, ms.
    pub first_download_ms: f64,
}

/// One point of the simulated year.
#[derive(Debug, Serialize)]
pub struct YearPoint {
    /// Working days so far.
    pub days: usize,
    /// Visits recorded so far.
    pub visits: usize,
    /// Server database file bytes (without its write-ahead log).
    pub server_bytes: u64,
    /// The phone's replica file bytes (without its write-ahead log).
    pub phone_bytes: u64,
}

/// The whole scenario's figures.
#[derive(Debug, Serialize)]
pub struct GrowthReport {
    /// Per scope size.
    pub sizes: Vec<SizeFigures>,
    /// The year, sampled.
    pub year: Vec<YearPoint>,
    /// Server bytes added per visit over the year.
    pub server_bytes_per_visit: f64,
    /// Phone bytes added per visit over the year.
    pub phone_bytes_per_visit: f64,
}

/// A seeded one-grid county: the grid, and an enrolment code for its worker.
struct OneGrid {
    grid: GridId,
    code: String,
}

fn seed_one_grid(storage: &dyn Storage, households: u64, requests: u64, now: Timestamp) -> Result<OneGrid> {
    let grid = storage.create_grid("幸福社区第1网格", "幸福社区", "城关街道")?;
    let worker: MemberId = storage.create_member("网格员", Role::GridWorker, None, now)?;
    let supervisor = storage.create_member("社区负责人", Role::Supervisor, None, now)?;
    storage.set_member_grid(worker, grid, true)?;
    storage.set_member_grid(supervisor, grid, true)?;
    let crew = GridCrew { grid, community: "幸福社区", worker, supervisor };
    demo::seed_grid(storage, &mut Seeded(7), &Taxonomy::default_county(), &crew, households, requests, now)?;
    let code = doorstep_server::auth::new_enrolment_code().map_err(|e| anyhow!("randomness: {e}"))?;
    let hash = doorstep_server::auth::hash_secret(&doorstep_server::auth::normalize_code(&code));
    // The code is valid from today, whenever the seeded history begins.
    let today = doorstep_server::http::now();
    if !storage.create_enrolment_code(worker, &hash, today, today.plus_hours(24))? {
        bail!("the worker vanished while seeding");
    }
    Ok(OneGrid { grid, code })
}

fn phone_options() -> ReplicaOptions {
    ReplicaOptions { durability: Durability::Normal, ..ReplicaOptions::default() }
}

fn file_bytes(paths: &[PathBuf]) -> u64 {
    paths.iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.len()).sum()
}

/// Runs the scenario; `work` is an empty directory it may fill.
pub async fn run(
    server_binary: &Path,
    work: &Path,
    sizes: &[usize],
    year_days: usize,
) -> Result<GrowthReport> {
    let mut figures = Vec::new();
    for &documents in sizes {
        figures.push(one_size(server_binary, &work.join(format!("size-{documents}")), documents).await?);
        eprintln!("growth: {documents} documents measured");
    }
    let (year, server_per_visit, phone_per_visit) =
        year(server_binary, &work.join("year"), year_days).await?;
    Ok(GrowthReport {
        sizes: figures,
        year,
        server_bytes_per_visit: server_per_visit,
        phone_bytes_per_visit: phone_per_visit,
    })
}

async fn one_size(server_binary: &Path, dir: &Path, documents: usize) -> Result<SizeFigures> {
    let data_dir = dir.join("server");
    std::fs::create_dir_all(&data_dir)?;
    let requests = (documents / 6).max(1);
    let households = documents.saturating_sub(requests).max(1);
    let backend = Backend::Sqlite;
    let storage = backend.storage(&data_dir)?;
    let seeded =
        seed_one_grid(storage.as_ref(), households as u64, requests as u64, doorstep_server::http::now())?;
    drop(storage);
    let server = ServerProcess::start(server_binary, &data_dir, &backend)?;
    let mut phone = Replica::open_with(dir.join("phone.db"), phone_options())?;
    let client = Client::new(&server.url);
    client.enrol(&mut phone, &seeded.code, "phone").await?;
    let started = Instant::now();
    let first = client.sync(&mut phone).await?;
    let first_download_ms = started.elapsed().as_secs_f64() * 1000.0;
    if !first.verified || first.received_docs != households + requests {
        bail!("first download of {documents} documents: {first:?}");
    }
    let cpu_before = server.cpu_seconds()?;
    let mut times = Vec::with_capacity(IDLE_ROUNDS);
    let mut last = None;
    for _ in 0..IDLE_ROUNDS {
        // A new client each time: a reconnecting phone opens a new connection.
        let client = Client::new(&server.url);
        let started = Instant::now();
        let report = client.sync(&mut phone).await?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        if report.received_docs != 0 || report.uploaded_changes != 0 || !report.verified {
            bail!("an idle reconnect moved something: {report:?}");
        }
        last = Some(report);
    }
    let server_cpu = server.cpu_seconds()? - cpu_before;
    let last = last.ok_or_else(|| anyhow!("no idle reconnect"))?;
    times.sort_by(f64::total_cmp);
    Ok(SizeFigures {
        documents: households + requests,
        idle_median_ms: times[times.len() / 2],
        idle_round_trips: last.round_trips,
        idle_bytes: last.bytes_up + last.bytes_down,
        server_cpu_ms_per_reconnect: server_cpu * 1000.0 / IDLE_ROUNDS as f64,
        first_download_ms,
    })
}

/// Visits a grid worker records on a working day.
const VISITS_PER_DAY: usize = 20;

async fn year(server_binary: &Path, dir: &Path, days: usize) -> Result<(Vec<YearPoint>, f64, f64)> {
    let data_dir = dir.join("server");
    std::fs::create_dir_all(&data_dir)?;
    let backend = Backend::Sqlite;
    let storage = backend.storage(&data_dir)?;
    let start = Timestamp(doorstep_server::http::now().millis() - days as i64 * 86_400_000);
    let seeded = seed_one_grid(storage.as_ref(), 500, 0, start)?;
    drop(storage);
    let server = ServerProcess::start(server_binary, &data_dir, &backend)?;
    let phone_path = dir.join("phone.db");
    let mut phone = Replica::open_with(&phone_path, phone_options())?;
    let client = Client::new(&server.url);
    client.enrol(&mut phone, &seeded.code, "phone").await?;
    client.sync(&mut phone).await?;
    let households = phone.households_in_grid(seeded.grid)?;
    // Database files only: a write-ahead log is bounded (checkpointed every ~4 MB) and its size
    // says when the last checkpoint was, not how much is stored.
    let server_files = vec![data_dir.join("doorstep.db")];
    let phone_files = vec![phone_path.clone()];
    let measure = |days: usize, visits: usize| YearPoint {
        days,
        visits,
        server_bytes: file_bytes(&server_files),
        phone_bytes: file_bytes(&phone_files),
    };
    let mut points = vec![measure(0, 0)];
    let mut rng = Seeded(0x9ea7);
    let mut visits = 0;
    for day in 1..=days {
        let morning = start.millis() + day as i64 * 86_400_000 + 8 * 3_600_000;
        for n in 0..VISITS_PER_DAY {
            let household = households[rng.below(households.len() as u64) as usize].id;
            let visit = NewVisit {
                at: Timestamp(morning + n as i64 * 20 * 60_000),
                kind: *rng.pick(&VisitKind::ALL),
                notes: "入户走访，家中情况正常，已提醒注意用电和燃气安全。".to_owned(),
                needs: Vec::new(),
            };
            phone.record_visit(household, &visit)?;
            visits += 1;
        }
        let report = Client::new(&server.url).sync(&mut phone).await?;
        if report.uploaded_changes != VISITS_PER_DAY {
            bail!("day {day}: uploaded {} of {VISITS_PER_DAY} visits", report.uploaded_changes);
        }
        if day % 50 == 0 || day == days {
            points.push(measure(day, visits));
            eprintln!("growth: year day {day}/{days}");
        }
    }
    let (first, last) = (&points[0], &points[points.len() - 1]);
    let per_visit = |a: u64, b: u64| if visits == 0 { 0.0 } else { (b as f64 - a as f64) / visits as f64 };
    let server_per_visit = per_visit(first.server_bytes, last.server_bytes);
    let phone_per_visit = per_visit(first.phone_bytes, last.phone_bytes);
    Ok((points, server_per_visit, phone_per_visit))
}

impl GrowthReport {
    /// The summary as tables.
    pub fn table(&self) -> String {
        let mut out = String::from(
            "idle reconnect by scope size\n\
             documents  median ms  round trips  bytes  server CPU ms  first download ms\n",
        );
        for s in &self.sizes {
            out.push_str(&format!(
                "{:>9}  {:>9.1}  {:>11}  {:>5}  {:>13.2}  {:>17.0}\n",
                s.documents,
                s.idle_median_ms,
                s.idle_round_trips,
                s.idle_bytes,
                s.server_cpu_ms_per_reconnect,
                s.first_download_ms
            ));
        }
        out.push_str("\na year of visits (500 households, 20 visits a working day)\n days  visits  server bytes  phone bytes\n");
        for p in &self.year {
            out.push_str(&format!(
                "{:>5}  {:>6}  {:>12}  {:>11}\n",
                p.days, p.visits, p.server_bytes, p.phone_bytes
            ));
        }
        out.push_str(&format!(
            "per visit: server {:.0} B, phone {:.0} B\n",
            self.server_bytes_per_visit, self.phone_bytes_per_visit
        ));
        out
    }
}
