//! The baseline scenario: the same county reconnecting and catching up through Doorstep and,
//! in the same run, the automerge-repo way (`doorstep-baseline`: Automerge's sync protocol one
//! document at a time, CBOR envelopes, persisted sync states), side by side with ratios.
//!
//! After the common set-up (seeding, enrolment and download, the day's visits on the working
//! devices), it starts the baseline server as a process of its own holding the same documents
//! (`process.rs`), gives every device a baseline store with the same documents and replays the
//! device's not-yet-uploaded changes into it byte for byte (`phone.rs`; set-up, not measured),
//! then measures four phases, alternating protocols so both see the machine alike:
//! 1. Doorstep reconnect: every device at its storm moment (the same seeded moments for both);
//! 2. baseline reconnect, the same;
//! 3. Doorstep catch-up: every device once more, `--concurrency` at a time, receiving what its
//!    grid-mates uploaded after its reconnect;
//! 4. baseline catch-up, the same.
//!
//! Every sync goes through a counting link of its own (`shape.rs`, unshaped), so wire bytes
//! are counted alike for both. Then both settle and are checked (`report.rs` shows it all).

pub mod phone;
pub mod process;
mod report;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use clap::ValueEnum;
use doorstep_baseline::Mode;
use doorstep_core::store::heads::encode_heads;
use tokio::runtime::Runtime;

use self::phone::{BaselineOutcome, Phone};
use self::report::{BaselineCheck, Side, Summary};
use crate::county::County;
use crate::device::{Device, Outcome, Retry};
use crate::measure::{MAX_SETTLE_PASSES, measure, settle};
use crate::server::{Backend, ServerProcess};
use crate::shape::Shaping;
use crate::{Args, Sizes, converge, phase};

/// `--baseline-mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ModeFlag {
    /// All of a round's messages in one HTTP request.
    Batch,
    /// One message per HTTP request, 16 in flight.
    Strict,
}

impl From<ModeFlag> for Mode {
    fn from(flag: ModeFlag) -> Self {
        match flag {
            ModeFlag::Batch => Mode::Batch,
            ModeFlag::Strict => Mode::Strict,
        }
    }
}

/// What the common set-up hands over.
pub struct Run<'a> {
    /// The flags.
    pub args: &'a Args,
    /// Sizes after `--smoke`.
    pub sizes: &'a Sizes,
    /// The load generator's runtime.
    pub runtime: &'a Runtime,
    /// The Doorstep server.
    pub server: &'a ServerProcess,
    /// Its URL.
    pub url: &'a Arc<String>,
    /// Its storage.
    pub backend: &'a Backend,
    /// Its data directory.
    pub data_dir: &'a Path,
    /// The devices, enrolled, their day recorded.
    pub devices: &'a Arc<Vec<Device>>,
    /// Which devices recorded a day of visits.
    pub working: &'a [bool],
    /// The county.
    pub county: &'a County,
    /// Set-up times so far.
    pub setup: crate::report::Setup,
    /// When each device reconnects (the storm's seeded moments).
    pub offsets: Vec<Duration>,
}

/// Runs the scenario and prints the side-by-side summary; `Ok(converged)` (both protocols).
pub fn run(run: Run<'_>) -> Result<bool> {
    let Run {
        args,
        sizes,
        runtime,
        server,
        url,
        backend,
        data_dir,
        devices,
        working,
        county,
        setup,
        offsets,
    } = run;
    let mode: Mode = args.baseline_mode.into();
    let sync_timeout = Duration::from_secs(args.sync_timeout_secs);
    let phase_timeout = Duration::from_secs(args.phase_timeout_secs);

    // The baseline server, holding what the Doorstep server holds now (nothing uploaded yet).
    let started = std::time::Instant::now();
    let storage = backend.storage(data_dir)?;
    let (baseline, documents) = process::start(storage.as_ref())?;
    drop(storage);
    let burl = Arc::new(baseline.url.clone());
    let jobs = (0..devices.len())
        .map(|i| {
            let (devices, burl) = (devices.clone(), burl.clone());
            let seed = args.seed ^ 0xba5e ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            Box::pin(async move { Phone::set_up(&devices[i], &burl, mode, seed, sync_timeout).await })
                as phase::Job<Result<Phone>>
        })
        .collect();
    let phones =
        runtime.block_on(phase::run("baseline download", jobs, args.concurrency, phase_timeout, |r| {
            r.is_err()
        }))?;
    let phones = Arc::new(phones.into_iter().collect::<Result<Vec<Phone>>>()?);
    let baseline_setup_seconds = started.elapsed().as_secs_f64();
    eprintln!("baseline server holds {documents} documents; phones set up in {baseline_setup_seconds:.1} s");

    let once = Retry { attempts: 1, delay: Duration::ZERO };
    let doorstep_jobs = |offsets: Option<&[Duration]>| -> Vec<phase::Job<Outcome>> {
        (0..devices.len())
            .map(|i| {
                let (devices, url) = (devices.clone(), url.clone());
                let offset = offsets.map_or(Duration::ZERO, |o| o[i]);
                Box::pin(async move {
                    tokio::time::sleep(offset).await;
                    devices[i].sync_through(&url, Shaping::counting(), 1, once, sync_timeout).await
                }) as phase::Job<Outcome>
            })
            .collect()
    };
    let baseline_jobs = |offsets: Option<&[Duration]>| -> Vec<phase::Job<BaselineOutcome>> {
        (0..phones.len())
            .map(|i| {
                let (phones, burl) = (phones.clone(), burl.clone());
                let offset = offsets.map_or(Duration::ZERO, |o| o[i]);
                Box::pin(async move {
                    tokio::time::sleep(offset).await;
                    phones[i].sync(&burl, mode, sync_timeout).await
                }) as phase::Job<BaselineOutcome>
            })
            .collect()
    };
    let all = devices.len();
    let d_failed = |o: &Outcome| o.error.is_some();
    let b_failed = |o: &BaselineOutcome| o.error.is_some();
    let d_reconnect = measure(
        runtime,
        server,
        "doorstep reconnect",
        doorstep_jobs(Some(&offsets)),
        all,
        phase_timeout,
        d_failed,
    )?;
    let b_reconnect = measure(
        runtime,
        &baseline,
        "baseline reconnect",
        baseline_jobs(Some(&offsets)),
        all,
        phase_timeout,
        b_failed,
    )?;
    let d_catch_up = measure(
        runtime,
        server,
        "doorstep catch-up",
        doorstep_jobs(None),
        args.concurrency,
        phase_timeout,
        d_failed,
    )?;
    let b_catch_up = measure(
        runtime,
        &baseline,
        "baseline catch-up",
        baseline_jobs(None),
        args.concurrency,
        phase_timeout,
        b_failed,
    )?;

    // Doorstep: settle and the usual check.
    let (settle_passes, settled) =
        settle(runtime, devices, url, sync_timeout, args.concurrency, phase_timeout)?;
    let storage = backend.storage(data_dir)?;
    let convergence = converge::check(storage.as_ref(), devices)?;
    let doorstep_heads: HashMap<String, Vec<u8>> =
        storage.document_heads()?.into_iter().map(|(id, heads)| (process::repo_id(id), heads)).collect();
    drop(storage);

    // Baseline: passes until nothing changes on any phone, then every phone against the server.
    let mut check = BaselineCheck::default();
    while check.settle_passes < MAX_SETTLE_PASSES && !check.settled {
        check.settle_passes += 1;
        let pass = runtime.block_on(phase::run(
            &format!("baseline settle {}", check.settle_passes),
            baseline_jobs(None),
            args.concurrency,
            phase_timeout,
            b_failed,
        ))?;
        check.settled = pass.iter().all(|o| o.error.is_none() && o.session.docs_changed == 0);
    }
    let heads = runtime.block_on(doorstep_baseline::client::server_heads(&burl))?;
    for phone in phones.iter() {
        let (held, differ) = phone.differing(mode, &heads)?;
        check.device_documents += held;
        check.heads_differ += differ;
    }
    check.server_documents = heads.len();
    check.same_as_doorstep_server =
        heads.iter().filter(|(id, h)| doorstep_heads.get(*id) == Some(&encode_heads(h))).count();
    drop(baseline);

    let summary = Summary::new(report::Run {
        baseline_mode: format!("{:?}", args.baseline_mode).to_lowercase(),
        backend: backend.name(),
        sizes: crate::report_sizes(args, sizes, devices.len(), county, working),
        setup,
        baseline_setup_seconds,
        reconnect: [Side::doorstep(d_reconnect, working), Side::baseline(b_reconnect, working)],
        catch_up: [Side::doorstep(d_catch_up, working), Side::baseline(b_catch_up, working)],
        doorstep_settle_passes: settle_passes,
        doorstep_settled: settled,
        convergence,
        baseline: check,
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print!("{}", summary.table());
    }
    Ok(summary.converged)
}
