//! `doorstep-loadgen`: a county of simulated phones against a real `doorstep-server` process
//! on 127.0.0.1 that it starts itself, on SQLite or on a throwaway PostgreSQL database.
//!
//! ```text
//! cargo build --release -p doorstep-server -p doorstep-loadgen
//! target/release/doorstep-loadgen --scenario storm  --backend sqlite --devices 1000
//! target/release/doorstep-loadgen --scenario writes --backend postgres --pg-admin-url postgres://…/postgres
//! target/release/doorstep-loadgen --scenario slow --devices 200        # the reconnect over 2G
//! target/release/doorstep-loadgen --scenario baseline --devices 1000   # beside automerge-repo's way
//! target/release/doorstep-loadgen --smoke --backend sqlite --server target/debug/doorstep-server
//! ```
//!
//! Every run: seeds grids through the server's storage (the demo's households and requests,
//! `doorstep_server::demo::seed_grid`), one grid worker and enrolment code per device; starts
//! the server; enrols every device over HTTP and downloads its grid; lets the working devices
//! record a day of visits offline; runs the scenario; then syncs every device until nothing
//! moves and checks convergence (`converge.rs`). Exits 1 if sync did not converge, 2 on error.
//!
//! Map: `server.rs` (the process, the backend, `/proc` figures), `county.rs` (seeding),
//! `device.rs` (a simulated phone), `phase.rs` (running many devices at once, with progress),
//! `measure.rs` (a phase with its costs; settling), `shape.rs` (a phone's shaped link: 2G
//! bandwidth, latency, cuts), `converge.rs` (the final check), `report.rs` (the summary),
//! `baseline/` (the same county synced the automerge-repo way, side by side), `growth.rs`
//! and `hold.rs` (their scenarios).

mod baseline;
mod converge;
mod county;
mod device;
mod growth;
mod hold;
mod ingest;
mod measure;
mod phase;
mod report;
mod server;
mod shape;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};
use doorstep_server::demo::Seeded;

use crate::device::{Device, Outcome, Retry};
use crate::measure::{measure, settle, sync_jobs};
use crate::report::Summary;
use crate::server::{Backend, ServerProcess, ThrowawayDatabase};

/// The scenario to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// Morning storm: every device reconnects within `--window-secs`; a share of them idle,
    /// the rest with a day of visits.
    Storm,
    /// Durable writes: every device uploads a day of visits, `--concurrency` at a time.
    Writes,
    /// The server's write throughput alone: as `writes`, but every device's upload round is
    /// built before the phase and its reply applied after it (`ingest.rs`).
    Ingest,
    /// Held connections: every device keeps one idle WebSocket open for `--hold-secs`; the
    /// server's memory is measured and every connection must still answer a ping.
    Hold,
    /// Growth: idle reconnects as one phone's scope grows (`--growth-sizes`), then storage per
    /// visit over `--year-days` working days (SQLite).
    Growth,
    /// Slow network: the storm's devices (idle and working) reconnect over a 2G-shaped link of
    /// their own (`--up-kbps`, `--down-kbps`, `--latency-ms`, cuts), `--at-once` at a time,
    /// retrying cut connections.
    Slow,
    /// Baseline: the storm's reconnect, then a catch-up, each done through Doorstep and then
    /// the automerge-repo way (one document at a time, `doorstep-baseline`), same county, same
    /// run; side by side with ratios.
    Baseline,
}

/// Storage backend of the server under load.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum BackendKind {
    /// One SQLite file in a temporary data directory.
    Sqlite,
    /// A throwaway database on the PostgreSQL server of `--pg-admin-url`.
    Postgres,
}

/// Command-line flags; unset sizes take the full run's defaults, or the smoke run's with
/// `--smoke`.
#[derive(Parser, Debug)]
#[command(name = "doorstep-loadgen", about = "Simulates a county of phones against a real doorstep-server")]
struct Args {
    /// What to measure.
    #[arg(long, value_enum, default_value = "storm")]
    scenario: Scenario,
    /// Where the server stores.
    #[arg(long, value_enum, default_value = "sqlite")]
    backend: BackendKind,
    /// PostgreSQL URL of a role with CREATEDB (what `scripts/postgres` prints).
    #[arg(long, env = "DOORSTEP_TEST_PG")]
    pg_admin_url: Option<String>,
    /// The server binary to start.
    #[arg(long, default_value = "target/release/doorstep-server")]
    server: PathBuf,
    /// A small, quick run (20 devices, a few visits, seconds): sizes not given take its values.
    #[arg(long)]
    smoke: bool,
    /// Devices (default 1,000; smoke 20).
    #[arg(long)]
    devices: Option<usize>,
    /// Devices per grid (default 4).
    #[arg(long)]
    devices_per_grid: Option<usize>,
    /// Households seeded per grid (default 40; smoke 10).
    #[arg(long)]
    households_per_grid: Option<u64>,
    /// Requests seeded per grid (default 10; smoke 4).
    #[arg(long)]
    requests_per_grid: Option<u64>,
    /// Visits a working device records offline (default 12; smoke 3).
    #[arg(long)]
    visits_per_device: Option<usize>,
    /// Storm: share of devices that reconnect idle, 0–1.
    #[arg(long, default_value_t = 0.5)]
    idle_share: f64,
    /// Storm: every device reconnects at a random moment within this many seconds (smoke: 2).
    #[arg(long)]
    window_secs: Option<f64>,
    /// Syncs in flight at once in the writes scenario and in set-up and settling.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Longest one device's sync may take before it counts as failed.
    #[arg(long, default_value_t = 60)]
    sync_timeout_secs: u64,
    /// Longest one phase (enrolment, the scenario, settling) may take.
    #[arg(long, default_value_t = 900)]
    phase_timeout_secs: u64,
    /// Worker threads of the load generator's runtime.
    #[arg(long, default_value_t = 4)]
    threads: usize,
    /// Seed of every random choice (households, visits, who is idle, when each reconnects).
    #[arg(long, default_value_t = 0x10ad_9e17)]
    seed: u64,
    /// Growth: the scope sizes (documents) to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "100,500,1000,2500,5000")]
    growth_sizes: Vec<usize>,
    /// Growth: working days of the simulated year (20 visits each).
    #[arg(long, default_value_t = 250)]
    year_days: usize,
    /// Hold: seconds every connection stays open and idle before it is pinged.
    #[arg(long, default_value_t = 10.0)]
    hold_secs: f64,
    /// Slow: phone → server rate of each phone's link, kbit/s.
    #[arg(long, default_value_t = 50.0)]
    up_kbps: f64,
    /// Slow: server → phone rate, kbit/s.
    #[arg(long, default_value_t = 200.0)]
    down_kbps: f64,
    /// Slow: one-way latency, ms.
    #[arg(long, default_value_t = 300)]
    latency_ms: u64,
    /// Slow: share of connections the link cuts, 0–1.
    #[arg(long, default_value_t = 0.1)]
    cut_share: f64,
    /// Slow: a cut connection is cut after a random 1 to this many bytes (both ways together).
    #[arg(long, default_value_t = 2000)]
    cut_within_bytes: u64,
    /// Slow: attempts a phone makes at most when its connection is cut (the first included).
    #[arg(long, default_value_t = 5)]
    attempts: usize,
    /// Slow: a phone waits this long before retrying, ms.
    #[arg(long, default_value_t = 1000)]
    retry_delay_ms: u64,
    /// Slow: phones reconnecting at once (default 100; smoke 20).
    #[arg(long)]
    at_once: Option<usize>,
    /// Baseline: all of a round's messages in one HTTP request (`batch`, the kinder) or one
    /// message per request (`strict`).
    #[arg(long, value_enum, default_value = "batch")]
    baseline_mode: baseline::ModeFlag,
    /// Storm: build each device's first round before the phase and apply its reply
    /// after it (`ingest.rs`), so the phase measures the server alone, as if the phones ran on
    /// other machines (ingest always does). Only the first round of each sync is measured.
    #[arg(long)]
    prebuilt: bool,
    /// Print the summary as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Internal: serve the baseline's documents read from stdin (the baseline scenario starts
    /// the load generator again with this, so the baseline server is a process of its own).
    #[arg(long, hide = true)]
    serve_baseline: bool,
}

/// Sizes after `--smoke` and the defaults are applied.
#[derive(Clone, Copy, Debug)]
struct Sizes {
    shape: county::Shape,
    visits_per_device: usize,
    window: Duration,
    at_once: usize,
}

impl Args {
    fn sizes(&self) -> Sizes {
        let smoke = self.smoke;
        let pick =
            |given: Option<u64>, full: u64, small: u64| given.unwrap_or(if smoke { small } else { full });
        let shape = county::Shape {
            devices: pick(self.devices.map(|d| d as u64), 1000, 20) as usize,
            devices_per_grid: self.devices_per_grid.unwrap_or(4).max(1),
            households_per_grid: pick(self.households_per_grid, 40, 10).max(1),
            requests_per_grid: pick(self.requests_per_grid, 10, 4),
        };
        let visits_per_device = pick(self.visits_per_device.map(|v| v as u64), 12, 3) as usize;
        let window = self.window_secs.unwrap_or(if smoke { 2.0 } else { 10.0 });
        let at_once = self.at_once.unwrap_or(if smoke { 20 } else { 100 }).max(1);
        Sizes { shape, visits_per_device, window: Duration::from_secs_f64(window.max(0.0)), at_once }
    }

    /// Each phone's link in the slow scenario.
    fn shaping(&self) -> shape::Shaping {
        shape::Shaping {
            up_bps: Some(self.up_kbps.max(0.1) * 1000.0),
            down_bps: Some(self.down_kbps.max(0.1) * 1000.0),
            latency: Duration::from_millis(self.latency_ms),
            cut_share: self.cut_share.clamp(0.0, 1.0),
            cut_within_bytes: self.cut_within_bytes.max(1),
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.serve_baseline {
        return match baseline::process::serve_from_stdin() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("doorstep-loadgen (baseline server): {e:#}");
                ExitCode::from(2)
            }
        };
    }
    match run(args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("doorstep-loadgen: sync did NOT converge (see the summary)");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("doorstep-loadgen: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs the whole simulation; `Ok(converged)`.
fn run(args: Args) -> Result<bool> {
    let sizes = args.sizes();
    if sizes.shape.devices == 0 {
        anyhow::bail!("--devices must be at least 1");
    }
    let sync_timeout = Duration::from_secs(args.sync_timeout_secs);
    let phase_timeout = Duration::from_secs(args.phase_timeout_secs);
    let work = tempfile::Builder::new().prefix("doorstep-loadgen-").tempdir()?;
    if args.scenario == Scenario::Growth {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        let report =
            runtime.block_on(growth::run(&args.server, work.path(), &args.growth_sizes, args.year_days))?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print!("{}", report.table());
        }
        return Ok(true);
    }
    let (data_dir, phones_dir) = (work.path().join("server"), work.path().join("phones"));
    std::fs::create_dir_all(&data_dir)?;
    std::fs::create_dir_all(&phones_dir)?;
    let backend = match args.backend {
        BackendKind::Sqlite => Backend::Sqlite,
        BackendKind::Postgres => {
            let url = args
                .pg_admin_url
                .as_deref()
                .context("--backend postgres needs --pg-admin-url (or DOORSTEP_TEST_PG)")?;
            Backend::Postgres(ThrowawayDatabase::create(url)?)
        }
    };

    let started = Instant::now();
    let storage = backend.storage(&data_dir)?;
    let now = doorstep_server::http::now();
    let mut county = county::seed(storage.as_ref(), &sizes.shape, args.seed, now)?;
    drop(storage);
    let seed_seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "seeded {} grids, {} documents, {} devices in {seed_seconds:.1} s ({})",
        county.grids.len(),
        county.documents,
        county.seats.len(),
        backend.name()
    );

    if args.scenario == Scenario::Hold {
        return run_hold(&args, &backend, &data_dir, &county.seats);
    }

    let server = ServerProcess::start(&args.server, &data_dir, &backend)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()?;
    let url = Arc::new(server.url.clone());

    // Enrolment and each phone's first download of its grid.
    let started = Instant::now();
    let seats = Arc::new(std::mem::take(&mut county.seats));
    let phones = Arc::new(phones_dir);
    let jobs: Vec<phase::Job<Result<Device>>> = (0..seats.len())
        .map(|i| {
            let (url, seats, phones) = (url.clone(), seats.clone(), phones.clone());
            Box::pin(async move { Device::enrol(&url, &phones, i, &seats[i], sync_timeout).await })
                as phase::Job<_>
        })
        .collect();
    let enrolled =
        runtime.block_on(phase::run("enrol + download", jobs, args.concurrency, phase_timeout, |r| {
            r.is_err()
        }))?;
    let devices = enrolled.into_iter().collect::<Result<Vec<Device>>>()?;
    let enrol_seconds = started.elapsed().as_secs_f64();

    // A day of work offline on the working devices (all of them in the writes scenario).
    let mut choose = Seeded(args.seed ^ 0x1d1e);
    let idle_per_mille = (args.idle_share.clamp(0.0, 1.0) * 1000.0).round() as u64;
    let working: Vec<bool> = (0..devices.len())
        .map(|_| {
            matches!(args.scenario, Scenario::Writes | Scenario::Ingest)
                || choose.below(1000) >= idle_per_mille
        })
        .collect();
    let day = doorstep_core::time::Timestamp(now.millis() - 10 * 3_600_000);
    let started = Instant::now();
    let shared = Arc::new(devices);
    let grids = Arc::new(county.grids.clone());
    let jobs = (0..shared.len())
        .filter(|i| working[*i])
        .map(|i| {
            let (devices, grids) = (shared.clone(), grids.clone());
            let (visits, seed) = (sizes.visits_per_device, args.seed ^ (i as u64).wrapping_mul(0x9e37_79b9));
            Box::pin(async move {
                let job = tokio::task::spawn_blocking(move || {
                    devices[i].work_day(grids[devices[i].grid], visits, seed, day)
                });
                (i, job.await.map_err(anyhow::Error::from).and_then(|r| r))
            }) as phase::Job<(usize, Result<Vec<_>>)>
        })
        .collect();
    let days =
        runtime.block_on(phase::run("day of visits", jobs, args.threads, phase_timeout, |r| r.1.is_err()))?;
    let mut devices = Arc::try_unwrap(shared).map_err(|_| anyhow::anyhow!("a device is still in use"))?;
    for (i, visits) in days {
        devices[i].visits = visits?;
    }
    let day_seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "enrolled in {enrol_seconds:.1} s; {} devices recorded their day in {day_seconds:.1} s",
        working.iter().filter(|w| **w).count()
    );

    let setup = report::Setup { seed_seconds, enrol_seconds, day_seconds };
    let devices = Arc::new(devices);
    if args.scenario == Scenario::Baseline {
        let run = baseline::Run {
            args: &args,
            sizes: &sizes,
            runtime: &runtime,
            server: &server,
            url: &url,
            backend: &backend,
            data_dir: &data_dir,
            devices: &devices,
            working: &working,
            county: &county,
            setup,
            offsets: storm_offsets(&mut choose, devices.len(), sizes.window),
        };
        return baseline::run(run);
    }

    // The scenario, measured.
    let measured = match args.scenario {
        Scenario::Storm if args.prebuilt => {
            let offsets = storm_offsets(&mut choose, devices.len(), sizes.window);
            let prepared = ingest::prepare(&devices)?;
            let jobs = ingest::post_jobs(&url, &prepared, &offsets, sync_timeout);
            let posted =
                measure(&runtime, &server, "storm", jobs, devices.len(), phase_timeout, ingest::failed)?;
            posted.map(|replies| ingest::apply_replies(&devices, prepared, replies))
        }
        Scenario::Storm => {
            let offsets = storm_offsets(&mut choose, devices.len(), sizes.window);
            let jobs = (0..devices.len())
                .map(|i| {
                    let (url, devices, offset) = (url.clone(), devices.clone(), offsets[i]);
                    Box::pin(async move {
                        tokio::time::sleep(offset).await;
                        devices[i].sync(&url, sync_timeout).await
                    }) as phase::Job<Outcome>
                })
                .collect();
            measure(&runtime, &server, "storm", jobs, devices.len(), phase_timeout, failed)?
        }
        Scenario::Slow => {
            let shaping = args.shaping();
            let retry = Retry { attempts: args.attempts, delay: Duration::from_millis(args.retry_delay_ms) };
            let jobs = (0..devices.len())
                .map(|i| {
                    let (url, devices) = (url.clone(), devices.clone());
                    let seed = args.seed ^ 0x5_1e57 ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                    Box::pin(async move {
                        devices[i].sync_through(&url, shaping, seed, retry, sync_timeout).await
                    }) as phase::Job<Outcome>
                })
                .collect();
            measure(&runtime, &server, "slow reconnect", jobs, sizes.at_once, phase_timeout, failed)?
        }
        Scenario::Ingest => {
            // Built before the measured phase; applied on the phones after it.
            let prepared = ingest::prepare(&devices)?;
            let jobs = ingest::post_jobs(&url, &prepared, &[], sync_timeout);
            let posted =
                measure(&runtime, &server, "ingest", jobs, args.concurrency, phase_timeout, ingest::failed)?;
            posted.map(|replies| ingest::apply_replies(&devices, prepared, replies))
        }
        // (Hold, Growth and Baseline ran their own course above.)
        Scenario::Writes | Scenario::Hold | Scenario::Growth | Scenario::Baseline => {
            let jobs = sync_jobs(&devices, &url, sync_timeout);
            measure(&runtime, &server, "writes", jobs, args.concurrency, phase_timeout, failed)?
        }
    };

    let (settle_passes, settled) =
        settle(&runtime, &devices, &url, sync_timeout, args.concurrency, phase_timeout)?;
    let storage = backend.storage(&data_dir)?;
    let convergence = converge::check(storage.as_ref(), &devices)?;
    drop(storage);
    drop(server);
    drop(runtime);

    let link = (args.scenario == Scenario::Slow).then_some(report::LinkSettings {
        up_kbps: args.up_kbps,
        down_kbps: args.down_kbps,
        latency_ms: args.latency_ms,
        cut_share: args.cut_share,
        cut_within_bytes: args.cut_within_bytes,
        attempts: args.attempts,
        retry_delay_ms: args.retry_delay_ms,
        at_once: sizes.at_once,
    });
    let summary = Summary::new(report::Run {
        scenario: format!("{:?}", args.scenario).to_lowercase(),
        backend: backend.name(),
        sizes: report_sizes(&args, &sizes, devices.len(), &county, &working),
        setup,
        link,
        outcomes: measured.outcomes,
        phase_seconds: measured.phase_seconds,
        server_cpu_seconds: measured.server_cpu_seconds,
        loadgen_cpu_seconds: measured.loadgen_cpu_seconds,
        server_peak_rss_bytes: measured.server_peak_rss_bytes,
        peak_rss_reset: measured.peak_rss_reset,
        load_before: measured.load_before,
        load_after: measured.load_after,
        settle_passes,
        settled,
        convergence,
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print!("{}", summary.table());
    }
    Ok(summary.converged)
}

/// A device's sync counts as failed in the progress line when it has an error.
fn failed(outcome: &Outcome) -> bool {
    outcome.error.is_some()
}

/// When each device reconnects in a storm: a seeded moment within `window`.
fn storm_offsets(choose: &mut Seeded, devices: usize, window: Duration) -> Vec<Duration> {
    let window_ms = window.as_millis() as u64;
    (0..devices).map(|_| Duration::from_millis(choose.below(window_ms.max(1)))).collect()
}

/// The county's sizes as the report gives them.
fn report_sizes(
    args: &Args,
    sizes: &Sizes,
    devices: usize,
    county: &county::County,
    working: &[bool],
) -> report::Sizes {
    let storm_like = matches!(args.scenario, Scenario::Storm | Scenario::Slow | Scenario::Baseline);
    report::Sizes {
        devices,
        grids: county.grids.len(),
        devices_per_grid: sizes.shape.devices_per_grid,
        households_per_grid: sizes.shape.households_per_grid,
        requests_per_grid: sizes.shape.requests_per_grid,
        documents: county.documents,
        visits_per_device: sizes.visits_per_device,
        working_devices: working.iter().filter(|w| **w).count(),
        idle_share: if storm_like { args.idle_share } else { 0.0 },
        window_secs: sizes.window.as_secs_f64(),
        concurrency: args.concurrency,
    }
}

/// The held-connections scenario (`hold.rs`): enrol through storage, start the server, hold.
fn run_hold(
    args: &Args,
    backend: &Backend,
    data_dir: &std::path::Path,
    seats: &[county::Seat],
) -> Result<bool> {
    let started = Instant::now();
    let storage = backend.storage(data_dir)?;
    let tokens = hold::enrol_all(storage.as_ref(), seats)?;
    drop(storage);
    eprintln!(
        "enrolled {} devices through storage in {:.1} s",
        tokens.len(),
        started.elapsed().as_secs_f64()
    );
    let server = ServerProcess::start(&args.server, data_dir, backend)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()?;
    let hold = Duration::from_secs_f64(args.hold_secs.max(0.0));
    let report = runtime.block_on(hold::run(&server, tokens, hold))?;
    let all_held = report.connected == report.devices && report.alive_after_hold == report.devices;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.table());
    }
    if !all_held {
        eprintln!("doorstep-loadgen: not every connection was accepted and still answering after the hold");
    }
    Ok(all_held)
}
