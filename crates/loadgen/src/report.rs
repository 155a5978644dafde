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

/// The slow scenario's link, as the flags set it.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct LinkSettings {
    /// Phone → server, kbit/s.
    pub up_kbps: f64,
    /// Server → phone, kbit/s.
    pub down_kbps: f64,
    /// One-way latency, ms.
    pub latency_ms: u64,
    /// Share of connections cut.
    pub cut_share: f64,
    /// Cut after 1 to this many bytes.
    pub cut_within_bytes: u64,
    /// Attempts per phone at most.
    pub attempts: usize,
    /// Wait before a retry, ms.
    pub retry_delay_ms: u64,
    /// Phones reconnecting at once.
    pub at_once: usize,
}

/// What went over the phones' links in the slow scenario, per device (served or not).
#[derive(Debug, Serialize)]
pub struct LinkFigures {
    /// The link.
    pub settings: LinkSettings,
    /// Wire bytes phone → server per device (every attempt).
    pub wire_up: Spread,
    /// Wire bytes server → phone per device.
    pub wire_down: Spread,
    /// Frame bodies up per served device (the last attempt's, as `SyncReport` counts).
    pub frame_up: Spread,
    /// Frame bodies down per served device.
    pub frame_down: Spread,
    /// Round trips of the successful attempt.
    pub round_trips: Spread,
    /// Connections opened in all.
    pub connections: u64,
    /// Connections the links cut.
    pub cuts: u64,
    /// Retries (attempts after the first) in all.
    pub retries: usize,
    /// Devices that needed at least one retry.
    pub devices_retried: usize,
    /// Time of the idle devices' syncs (served).
    pub idle_latency: Latency,
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
    /// The slow scenario's link; `None` in the others.
    pub link: Option<LinkSettings>,
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
    /// Percentiles of `seconds`.
    pub fn of(mut seconds: Vec<f64>) -> Self {
        seconds.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            let i = ((p * seconds.len() as f64).ceil() as usize).clamp(1, seconds.len().max(1)) - 1;
            seconds.get(i).copied().unwrap_or(0.0) * 1000.0
        };
        Self { count: seconds.len(), p50_ms: rank(0.50), p99_ms: rank(0.99), max_ms: rank(1.0) }
    }
}

/// Percentiles and mean of a per-device count (bytes, round trips).
#[derive(Debug, Default, Serialize)]
pub struct Spread {
    /// Samples.
    pub count: usize,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 99th percentile (nearest rank).
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

impl Spread {
    /// The spread of `values`.
    pub fn of(mut values: Vec<f64>) -> Self {
        values.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            let i = ((p * values.len() as f64).ceil() as usize).clamp(1, values.len().max(1)) - 1;
            values.get(i).copied().unwrap_or(0.0)
        };
        let mean = values.iter().sum::<f64>() / (values.len().max(1) as f64);
        Self { count: values.len(), mean, p50: rank(0.50), p99: rank(0.99), max: rank(1.0) }
    }

    /// `mean / p50 / p99 / max` with `unit`.
    pub fn show(&self, unit: &str) -> String {
        format!("{:.0} / {:.0} / {:.0} / {:.0}{unit}", self.mean, self.p50, self.p99, self.max)
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
    /// The slow scenario's links.
    pub link: Option<LinkFigures>,
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
        let link = run.link.map(|settings| {
            let all = &run.outcomes;
            let spread =
                |f: &dyn Fn(&Outcome) -> f64, of: &[&Outcome]| Spread::of(of.iter().map(|o| f(o)).collect());
            let every: Vec<&Outcome> = all.iter().collect();
            LinkFigures {
                settings,
                wire_up: spread(&|o| o.wire.up as f64, &every),
                wire_down: spread(&|o| o.wire.down as f64, &every),
                frame_up: spread(&|o| o.frame_up as f64, &served),
                frame_down: spread(&|o| o.frame_down as f64, &served),
                round_trips: spread(&|o| o.round_trips as f64, &served),
                connections: all.iter().map(|o| o.wire.connections).sum(),
                cuts: all.iter().map(|o| o.wire.cuts).sum(),
                retries: all.iter().map(|o| o.attempts.saturating_sub(1)).sum(),
                devices_retried: all.iter().filter(|o| o.attempts > 1).count(),
                idle_latency: Latency::of(
                    served.iter().filter(|o| o.uploaded == 0).map(|o| o.seconds).collect(),
                ),
            }
        });
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
            link,
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
        let mut rows = rows;
        if let Some(l) = &self.link {
            let t = &l.settings;
            rows.splice(
                5..5,
                [
                    (
                        "link (each phone its own)",
                        format!(
                            "{} kbit/s up, {} kbit/s down, {} ms one way; {:.0} % of connections cut within {} B; {} attempts, {} ms apart; {} at once",
                            t.up_kbps,
                            t.down_kbps,
                            t.latency_ms,
                            t.cut_share * 100.0,
                            t.cut_within_bytes,
                            t.attempts,
                            t.retry_delay_ms,
                            t.at_once
                        ),
                    ),
                    ("syncs that uploaded nothing p50 / p99 / max", lat(&l.idle_latency)),
                    ("wire bytes up per device, mean / p50 / p99 / max", l.wire_up.show(" B")),
                    ("wire bytes down per device, mean / p50 / p99 / max", l.wire_down.show(" B")),
                    ("frame bytes up per served device (last attempt)", l.frame_up.show(" B")),
                    ("frame bytes down per served device (last attempt)", l.frame_down.show(" B")),
                    ("round trips per served device (last attempt)", l.round_trips.show("")),
                    (
                        "connections / cut / retries / devices retried",
                        format!("{} / {} / {} / {}", l.connections, l.cuts, l.retries, l.devices_retried),
                    ),
                ],
            );
        }
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
