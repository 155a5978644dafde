//! A measured phase: the jobs of [`phase::run`] with what the server process and the load
//! generator spent on them (`/proc` CPU, the server's peak RSS, the machine's load), and the
//! settling that follows every scenario.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use tokio::runtime::Runtime;

use crate::device::{Device, Outcome};
use crate::phase;
use crate::server::{self, ServerProcess};

/// Settling passes (every device syncs) after the scenario, at most.
pub const MAX_SETTLE_PASSES: usize = 4;

/// One phase's results and costs.
pub struct Measured<R> {
    /// Each job's result, in order.
    pub outcomes: Vec<R>,
    /// Wall time of the phase.
    pub phase_seconds: f64,
    /// The server's CPU (user + system) during the phase.
    pub server_cpu_seconds: f64,
    /// The load generator's own CPU during the phase (the phones).
    pub loadgen_cpu_seconds: f64,
    /// The server's `VmHWM` at the end of the phase.
    pub server_peak_rss_bytes: u64,
    /// Whether the peak was reset before the phase (else it covers set-up too).
    pub peak_rss_reset: bool,
    /// Load average before the phase.
    pub load_before: String,
    /// Load average after it.
    pub load_after: String,
}

impl<R> Measured<R> {
    /// The same phase with its results turned into others (after the measurement).
    pub fn map<T>(self, f: impl FnOnce(Vec<R>) -> Vec<T>) -> Measured<T> {
        Measured {
            outcomes: f(self.outcomes),
            phase_seconds: self.phase_seconds,
            server_cpu_seconds: self.server_cpu_seconds,
            loadgen_cpu_seconds: self.loadgen_cpu_seconds,
            server_peak_rss_bytes: self.server_peak_rss_bytes,
            peak_rss_reset: self.peak_rss_reset,
            load_before: self.load_before,
            load_after: self.load_after,
        }
    }
}

/// Runs `jobs` (`in_flight` at a time, the whole under `deadline`) against `server`, measuring.
pub fn measure<R: Send + 'static>(
    runtime: &Runtime,
    server: &ServerProcess,
    label: &str,
    jobs: Vec<phase::Job<R>>,
    in_flight: usize,
    deadline: Duration,
    failed: fn(&R) -> bool,
) -> Result<Measured<R>> {
    let load_before = server::load_average();
    let peak_rss_reset = server.reset_peak_rss();
    let (server_cpu, own_cpu) = (server.cpu_seconds()?, server::own_cpu_seconds()?);
    let started = Instant::now();
    let outcomes = runtime.block_on(phase::run(label, jobs, in_flight, deadline, failed))?;
    Ok(Measured {
        outcomes,
        phase_seconds: started.elapsed().as_secs_f64(),
        server_cpu_seconds: server.cpu_seconds()? - server_cpu,
        loadgen_cpu_seconds: server::own_cpu_seconds()? - own_cpu,
        server_peak_rss_bytes: server.peak_rss_bytes()?,
        peak_rss_reset,
        load_before,
        load_after: server::load_average(),
    })
}

/// One job per device: a whole sync, directly to `url`.
pub fn sync_jobs(
    devices: &Arc<Vec<Device>>,
    url: &Arc<String>,
    timeout: Duration,
) -> Vec<phase::Job<Outcome>> {
    (0..devices.len())
        .map(|i| {
            let (url, devices) = (url.clone(), devices.clone());
            Box::pin(async move { devices[i].sync(&url, timeout).await }) as phase::Job<Outcome>
        })
        .collect()
}

/// Every device syncs until a whole pass uploads nothing and fails nowhere (then nothing can
/// still be on its way to any device), at most [`MAX_SETTLE_PASSES`] passes; returns
/// `(passes, settled)`.
pub fn settle(
    runtime: &Runtime,
    devices: &Arc<Vec<Device>>,
    url: &Arc<String>,
    timeout: Duration,
    in_flight: usize,
    deadline: Duration,
) -> Result<(usize, bool)> {
    let mut passes = 0;
    let mut settled = false;
    while passes < MAX_SETTLE_PASSES && !settled {
        passes += 1;
        let jobs = sync_jobs(devices, url, timeout);
        let pass =
            runtime.block_on(phase::run(&format!("settle {passes}"), jobs, in_flight, deadline, |o| {
                o.error.is_some()
            }))?;
        settled = pass.iter().all(|o| o.error.is_none() && o.verified && o.uploaded == 0);
    }
    Ok((passes, settled))
}
