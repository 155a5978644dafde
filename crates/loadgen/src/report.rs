//! The summary of a run: the scenario's figures computed from every device's outcome, printed
//! as a markdown table or as JSON.

use std::fmt::Write;

use serde::Serialize;

use crate::converge::Convergence;
use crate::device::Outcome;

/// Sizes of the simulated county.
#[derive(Debug, Serialize)]
pub struct Sizes {
    /// Devices.
    pub devices: usize,
    /// Grids.
    pub grids: usize,
    /// Devices per grid.
    pub devices_per_grid: usize,
    /// Households seeded per grid.
    pub households_per_grid: u64,
    /// Requests seeded per grid.
    pub requests_per_grid: u64,
    /// Documents seeded in all.
    pub documents: usize,
    /// Visits each working device recorded offline.
    pub visits_per_device: usize,
    /// Devices that recorded visits.
    pub working_devices: usize,
    /// Storm: share of devices reconnecting idle.
    pub idle_share: f64,
    /// Storm: reconnect window.
    pub window_secs: f64,
    /// Syncs in flight at once (writes, set-up, settling).
    pub concurrency: usize,
}

/// Time spent before the measured phase.
#[derive(Debug, Serialize)]
pub struct Setup {
    /// Seeding through storage.
    pub seed_seconds: f64,
    /// Enrolment and first downloads over HTTP.
    pub enrol_seconds: f64,
    /// Recording the day's visits on the devices.
    pub day_seconds: f64,
}

/// Everything a run measured, as `main` hands it over.
pub struct Run {
    /// `storm` or `writes`.
    pub scenario: String,
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
    /// The county.
    pub sizes: Sizes,
    /// Set-up times.
    pub setup: Setup,
    /// Each device's sync in the measured phase.
    pub outcomes: Vec<Outcome>,
    /// Wall time of the measured phase.
    pub phase_seconds: f64,
    /// Server CPU (user + system) during the phase.
    pub server_cpu_seconds: f64,
    /// The load generator's own CPU during the phase (the phones share the machine).
    pub loadgen_cpu_seconds: f64,
    /// Server `VmHWM` at the end of the phase.
    pub server_peak_rss_bytes: u64,
    /// Whether the peak was reset before the phase (else it covers set-up too).
    pub peak_rss_reset: bool,
    /// Load average before the phase.
    pub load_before: String,
    /// Load average after it.
    pub load_after: String,
    /// Settling passes run.
    pub settle_passes: usize,
    /// The last pass uploaded nothing and failed nowhere.
    pub settled: bool,
    /// The final check.
    pub convergence: Convergence,
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Default, Serialize)]
pub struct Latency {
    /// Samples.
    pub count: usize,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile (nearest rank).
    pub p99_ms: f64,
    /// Slowest.
    pub max_ms: f64,
}

impl Latency {
    fn of(mut seconds: Vec<f64>) -> Self {
        seconds.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            let i = ((p * seconds.len() as f64).ceil() as usize).clamp(1, seconds.len().max(1)) - 1;
            seconds.get(i).copied().unwrap_or(0.0) * 1000.0
        };
        Self { count: seconds.len(), p50_ms: rank(0.50), p99_ms: rank(0.99), max_ms: rank(1.0) }
    }
}

/// The summary printed at the end.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// `storm` or `writes`.
    pub scenario: String,
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
    /// The county.
    pub sizes: Sizes,
    /// Set-up times.
    pub setup: Setup,
    /// Devices whose sync succeeded in the phase.
    pub served: usize,
    /// Devices whose sync failed or timed out.
    pub failed: usize,
    /// The first few failures.
    pub failures: Vec<String>,
    /// A device's whole sync (all round trips), served devices only.
    pub sync_latency: Latency,
    /// The same, for devices that uploaded visits.
    pub upload_latency: Latency,
    /// Visit changes the server acknowledged in the phase.
    pub changes_acknowledged: usize,
    /// … per second of the phase's wall time.
    pub changes_per_second: f64,
    /// Wall time of the phase.
    pub phase_seconds: f64,
    /// Server CPU seconds (user + system) in the phase.
    pub server_cpu_seconds: f64,
    /// Load generator CPU seconds in the phase.
    pub loadgen_cpu_seconds: f64,
    /// Server peak RSS (`VmHWM`), MiB.
    pub server_peak_rss_mib: f64,
    /// Whether that peak was reset before the phase.
    pub peak_rss_reset: bool,
    /// Load average before and after the phase.
    pub load_average: [String; 2],
    /// Settling passes after the phase.
    pub settle_passes: usize,
    /// The last pass moved nothing.
    pub settled: bool,
    /// The final check.
    pub convergence: Convergence,
    /// Settled and no problem found.
    pub converged: bool,
}

impl Summary {
    /// Computes the figures.
    pub fn new(run: Run) -> Self {
        let served: Vec<&Outcome> = run.outcomes.iter().filter(|o| o.error.is_none()).collect();
        let failures: Vec<String> = run.outcomes.iter().filter_map(|o| o.error.clone()).take(5).collect();
        let changes: usize = served.iter().map(|o| o.uploaded).sum();
        let converged = run.settled && run.convergence.converged();
        Self {
            scenario: run.scenario,
            backend: run.backend,
            sizes: run.sizes,
            setup: run.setup,
            served: served.len(),
            failed: run.outcomes.len() - served.len(),
            failures,
            sync_latency: Latency::of(served.iter().map(|o| o.seconds).collect()),
            upload_latency: Latency::of(
                served.iter().filter(|o| o.uploaded > 0).map(|o| o.seconds).collect(),
            ),
            changes_acknowledged: changes,
            changes_per_second: changes as f64 / run.phase_seconds.max(f64::EPSILON),
            phase_seconds: run.phase_seconds,
            server_cpu_seconds: run.server_cpu_seconds,
            loadgen_cpu_seconds: run.loadgen_cpu_seconds,
            server_peak_rss_mib: run.server_peak_rss_bytes as f64 / (1024.0 * 1024.0),
            peak_rss_reset: run.peak_rss_reset,
            load_average: [run.load_before, run.load_after],
            settle_passes: run.settle_passes,
            settled: run.settled,
            convergence: run.convergence,
            converged,
        }
    }

    /// A markdown table of the figures.
    pub fn table(&self) -> String {
        let s = &self.sizes;
        let c = &self.convergence;
        let lat =
            |l: &Latency| format!("{:.1} / {:.1} / {:.1} ms (n = {})", l.p50_ms, l.p99_ms, l.max_ms, l.count);
        let rows: Vec<(&str, String)> = vec![
            ("scenario, backend", format!("{}, {}", self.scenario, self.backend)),
            (
                "county",
                format!(
                    "{} devices in {} grids ({} per grid), {} documents ({} households + {} requests per grid)",
                    s.devices,
                    s.grids,
                    s.devices_per_grid,
                    s.documents,
                    s.households_per_grid,
                    s.requests_per_grid
                ),
            ),
            (
                "work",
                format!(
                    "{} devices with {} visits each; idle share {}; window {:.1} s; concurrency {}",
                    s.working_devices, s.visits_per_device, s.idle_share, s.window_secs, s.concurrency
                ),
            ),
            (
                "set-up (not measured)",
                format!(
                    "seed {:.1} s, enrol + download {:.1} s, day of visits {:.1} s",
                    self.setup.seed_seconds, self.setup.enrol_seconds, self.setup.day_seconds
                ),
            ),
            ("served / failed", format!("{} / {}", self.served, self.failed)),
            ("whole sync p50 / p99 / max", lat(&self.sync_latency)),
            ("syncs that uploaded p50 / p99 / max", lat(&self.upload_latency)),
            ("visit changes acknowledged", self.changes_acknowledged.to_string()),
            ("… per second of the phase", format!("{:.0}", self.changes_per_second)),
            ("phase wall time", format!("{:.2} s", self.phase_seconds)),
            ("server CPU in the phase", format!("{:.2} s", self.server_cpu_seconds)),
            ("load generator CPU in the phase", format!("{:.2} s", self.loadgen_cpu_seconds)),
            (
                "server peak RSS (VmHWM)",
                format!(
                    "{:.1} MiB{}",
                    self.server_peak_rss_mib,
                    if self.peak_rss_reset { " (reset before the phase)" } else { " (since start)" }
                ),
            ),
            ("load average before → after", format!("{} → {}", self.load_average[0], self.load_average[1])),
            ("settling passes", format!("{} (settled: {})", self.settle_passes, self.settled)),
            (
                "convergence",
                format!(
                    "{}: {} device documents, {} heads differ, {} scopes differ, {} devices unsynced, {} of {} visits missing",
                    if self.converged { "converged" } else { "NOT CONVERGED" },
                    c.device_documents,
                    c.heads_differ,
                    c.scope_differs,
                    c.unsynced_devices,
                    c.visits_missing,
                    c.visits
                ),
            ),
        ];
        let mut out = String::from("| figure | value |\n|---|---|\n");
        for (k, v) in rows {
            let _ = writeln!(out, "| {k} | {v} |");
        }
        for f in &self.failures {
            let _ = writeln!(out, "failure: {f}");
        }
        out
    }
}
