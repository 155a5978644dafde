//! The baseline scenario's summary: each measured phase, Doorstep beside the baseline, with
//! ratios baseline ÷ Doorstep, and both protocols' convergence.

use std::fmt::Write;

use serde::Serialize;

use super::phone::BaselineOutcome;
use crate::converge::Convergence;
use crate::device::Outcome;
use crate::measure::Measured;
use crate::report::{Latency, Setup, Sizes, Spread};

/// The baseline's end-of-run check.
#[derive(Debug, Default, Serialize)]
pub struct BaselineCheck {
    /// Settling passes run.
    pub settle_passes: usize,
    /// The last pass changed no document on any phone and failed nowhere.
    pub settled: bool,
    /// Documents checked on phones.
    pub device_documents: usize,
    /// Phone documents whose heads differ from the baseline server's.
    pub heads_differ: usize,
    /// Documents the baseline server holds.
    pub server_documents: usize,
    /// Of those, documents with exactly the Doorstep server's heads at the end (the same
    /// changes went through both).
    pub same_as_doorstep_server: usize,
}

/// One protocol in one phase, per device.
#[derive(Debug, Serialize)]
pub struct Side {
    /// Devices served.
    pub served: usize,
    /// Devices whose sync failed.
    pub failed: usize,
    /// The first few failures.
    pub failures: Vec<String>,
    /// A device's whole sync, served devices.
    pub latency: Latency,
    /// Wire bytes up per device (HTTP included, through its counting link).
    pub wire_up: Spread,
    /// Wire bytes down per device.
    pub wire_down: Spread,
    /// Wire bytes both ways per device.
    pub wire_total: Spread,
    /// The same, for devices that reconnected idle.
    pub idle_wire_total: Spread,
    /// The same, for devices with a day of visits.
    pub working_wire_total: Spread,
    /// Protocol bodies both ways per device (Doorstep: frames; baseline: CBOR envelopes).
    pub body_total: Spread,
    /// Documents that received data per device (the same work on both sides).
    pub docs_received: Spread,
    /// Protocol round trips per device (the baseline's handshake included).
    pub round_trips: Spread,
    /// HTTP requests per device.
    pub http_requests: Spread,
    /// Protocol messages both ways per device.
    pub messages: Spread,
    /// TCP connections per device.
    pub connections: Spread,
    /// Wall time of the phase.
    pub phase_seconds: f64,
    /// The protocol's server process's CPU in the phase.
    pub server_cpu_seconds: f64,
    /// The load generator's CPU in the phase (the phones, and the counting links).
    pub loadgen_cpu_seconds: f64,
    /// The server process's peak RSS in the phase, MiB.
    pub server_peak_rss_mib: f64,
    /// Load average before and after the phase.
    pub load_average: [String; 2],
}

/// Per-device numbers of one sync, whichever the protocol.
struct Sample {
    served: bool,
    seconds: f64,
    wire_up: u64,
    wire_down: u64,
    connections: u64,
    body: u64,
    docs_received: usize,
    round_trips: usize,
    http_requests: usize,
    messages: usize,
}

impl Side {
    /// Doorstep's side: a round trip is one HTTP request carrying one frame each way.
    pub fn doorstep(m: Measured<Outcome>, working: &[bool]) -> Self {
        let samples = m
            .outcomes
            .iter()
            .map(|o| Sample {
                served: o.error.is_none(),
                seconds: o.seconds,
                wire_up: o.wire.up,
                wire_down: o.wire.down,
                connections: o.wire.connections,
                body: o.frame_up + o.frame_down,
                docs_received: o.received_docs,
                round_trips: o.round_trips,
                http_requests: o.round_trips,
                messages: 2 * o.round_trips,
            })
            .collect();
        let failures = m.outcomes.iter().filter_map(|o| o.error.clone()).take(3).collect();
        Self::of(samples, failures, &m, working)
    }

    /// The baseline's side, as its sessions counted.
    pub fn baseline(m: Measured<BaselineOutcome>, working: &[bool]) -> Self {
        let samples = m
            .outcomes
            .iter()
            .map(|o| Sample {
                served: o.error.is_none(),
                seconds: o.seconds,
                wire_up: o.wire.up,
                wire_down: o.wire.down,
                connections: o.wire.connections,
                body: o.session.body_up + o.session.body_down,
                docs_received: o.session.docs_changed,
                round_trips: o.session.rounds,
                http_requests: o.session.http_requests,
                messages: o.session.messages,
            })
            .collect();
        let failures = m.outcomes.iter().filter_map(|o| o.error.clone()).take(3).collect();
        Self::of(samples, failures, &m, working)
    }

    fn of<R>(samples: Vec<Sample>, failures: Vec<String>, m: &Measured<R>, working: &[bool]) -> Self {
        let served: Vec<(usize, &Sample)> = samples.iter().enumerate().filter(|(_, s)| s.served).collect();
        let spread = |f: &dyn Fn(&Sample) -> f64| Spread::of(served.iter().map(|(_, s)| f(s)).collect());
        let total = |s: &Sample| (s.wire_up + s.wire_down) as f64;
        let of_kind = |w: bool| {
            Spread::of(
                served.iter().filter(|(i, _)| working.get(*i) == Some(&w)).map(|(_, s)| total(s)).collect(),
            )
        };
        Self {
            served: served.len(),
            failed: samples.len() - served.len(),
            failures,
            latency: Latency::of(served.iter().map(|(_, s)| s.seconds).collect()),
            wire_up: spread(&|s| s.wire_up as f64),
            wire_down: spread(&|s| s.wire_down as f64),
            wire_total: spread(&total),
            idle_wire_total: of_kind(false),
            working_wire_total: of_kind(true),
            body_total: spread(&|s| s.body as f64),
            docs_received: spread(&|s| s.docs_received as f64),
            round_trips: spread(&|s| s.round_trips as f64),
            http_requests: spread(&|s| s.http_requests as f64),
            messages: spread(&|s| s.messages as f64),
            connections: spread(&|s| s.connections as f64),
            phase_seconds: m.phase_seconds,
            server_cpu_seconds: m.server_cpu_seconds,
            loadgen_cpu_seconds: m.loadgen_cpu_seconds,
            server_peak_rss_mib: m.server_peak_rss_bytes as f64 / (1024.0 * 1024.0),
            load_average: [m.load_before.clone(), m.load_after.clone()],
        }
    }
}

/// What a baseline run measured, as `run` hands it over.
#[derive(Debug, Serialize)]
pub struct Run {
    /// `batch` or `strict`.
    pub baseline_mode: String,
    /// Doorstep's backend.
    pub backend: &'static str,
    /// The county.
    pub sizes: Sizes,
    /// The common set-up.
    pub setup: Setup,
    /// The baseline's set-up (server process, phones' stores and download, the day replayed).
    pub baseline_setup_seconds: f64,
    /// `[Doorstep, baseline]` reconnecting.
    pub reconnect: [Side; 2],
    /// `[Doorstep, baseline]` catching up.
    pub catch_up: [Side; 2],
    /// Doorstep's settling passes.
    pub doorstep_settle_passes: usize,
    /// Doorstep's last pass moved nothing.
    pub doorstep_settled: bool,
    /// Doorstep's check.
    pub convergence: Convergence,
    /// The baseline's check.
    pub baseline: BaselineCheck,
}

/// The summary printed at the end: the run and its verdict.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// Always `baseline`.
    pub scenario: &'static str,
    /// What was measured.
    #[serde(flatten)]
    pub run: Run,
    /// Both protocols served every device in every phase, settled and converged.
    pub converged: bool,
}

/// Picks one per-device spread of a side, for a table row.
type SpreadOf = fn(&Side) -> &Spread;
/// Picks one figure of a side, for a table row.
type FigureOf = fn(&Side) -> f64;

fn ratio(baseline: f64, doorstep: f64) -> String {
    if doorstep > 0.0 { format!("{:.1}×", baseline / doorstep) } else { "—".into() }
}

impl Summary {
    /// The run with its verdict.
    pub fn new(run: Run) -> Self {
        let served_all = run.reconnect.iter().chain(&run.catch_up).all(|s| s.failed == 0);
        let b = &run.baseline;
        let converged = served_all
            && run.doorstep_settled
            && run.convergence.converged()
            && b.settled
            && b.heads_differ == 0
            && b.device_documents > 0;
        Self { scenario: "baseline", run, converged }
    }

    /// A markdown table: figure, Doorstep, baseline, baseline ÷ Doorstep.
    pub fn table(&self) -> String {
        let s = &self.run.sizes;
        let mut out = format!(
            "baseline scenario ({} mode), Doorstep on {}: {} devices in {} grids, {} documents; {} devices with {} visits each, window {:.1} s, catch-up {} at a time\n\
             set-up (not measured): seed {:.1} s, enrol + download {:.1} s, day {:.1} s, baseline server + stores + download + day replayed {:.1} s\n\n",
            self.run.baseline_mode,
            self.run.backend,
            s.devices,
            s.grids,
            s.documents,
            s.working_devices,
            s.visits_per_device,
            s.window_secs,
            s.concurrency,
            self.run.setup.seed_seconds,
            self.run.setup.enrol_seconds,
            self.run.setup.day_seconds,
            self.run.baseline_setup_seconds,
        );
        out.push_str("| figure | Doorstep | baseline | baseline ÷ Doorstep |\n|---|---:|---:|---:|\n");
        for (phase, [d, b]) in [("reconnect", &self.run.reconnect), ("catch-up", &self.run.catch_up)] {
            let mut row = |name: &str, dv: String, bv: String, r: String| {
                let _ = writeln!(out, "| {phase}: {name} | {dv} | {bv} | {r} |");
            };
            row(
                "served / failed",
                format!("{} / {}", d.served, d.failed),
                format!("{} / {}", b.served, b.failed),
                String::new(),
            );
            for (name, dv, bv) in
                [("p50", d.latency.p50_ms, b.latency.p50_ms), ("p99", d.latency.p99_ms, b.latency.p99_ms)]
            {
                row(
                    &format!("whole sync {name}"),
                    format!("{dv:.1} ms"),
                    format!("{bv:.1} ms"),
                    ratio(bv, dv),
                );
            }
            let bytes: [(&str, SpreadOf); 6] = [
                ("wire bytes up per device, mean", |x| &x.wire_up),
                ("wire bytes down per device, mean", |x| &x.wire_down),
                ("wire bytes both ways per device, mean", |x| &x.wire_total),
                ("… idle devices, mean", |x| &x.idle_wire_total),
                ("… devices with a day of visits, mean", |x| &x.working_wire_total),
                ("protocol bodies both ways per device, mean", |x| &x.body_total),
            ];
            for (name, f) in bytes {
                let (dv, bv) = (f(d).mean, f(b).mean);
                row(name, format!("{dv:.0} B"), format!("{bv:.0} B"), ratio(bv, dv));
            }
            let (dv, bv) = (d.docs_received.mean, b.docs_received.mean);
            row(
                "documents that received data per device, mean",
                format!("{dv:.1}"),
                format!("{bv:.1}"),
                String::new(),
            );
            let counts: [(&str, SpreadOf); 4] = [
                ("round trips per device, p50 (max)", |x| &x.round_trips),
                ("HTTP requests per device, p50 (max)", |x| &x.http_requests),
                ("messages per device, p50 (max)", |x| &x.messages),
                ("TCP connections per device, p50 (max)", |x| &x.connections),
            ];
            for (name, f) in counts {
                let (dv, bv) = (f(d), f(b));
                row(
                    name,
                    format!("{:.0} ({:.0})", dv.p50, dv.max),
                    format!("{:.0} ({:.0})", bv.p50, bv.max),
                    ratio(bv.p50, dv.p50),
                );
            }
            let costs: [(&str, FigureOf, &str); 4] = [
                ("phase wall time", |x| x.phase_seconds, "s"),
                ("server CPU in the phase", |x| x.server_cpu_seconds, "s"),
                ("load generator CPU in the phase", |x| x.loadgen_cpu_seconds, "s"),
                ("server peak RSS", |x| x.server_peak_rss_mib, "MiB"),
            ];
            for (name, f, unit) in costs {
                let (dv, bv) = (f(d), f(b));
                row(name, format!("{dv:.2} {unit}"), format!("{bv:.2} {unit}"), ratio(bv, dv));
            }
            row(
                "load average before → after",
                format!("{} → {}", d.load_average[0], d.load_average[1]),
                format!("{} → {}", b.load_average[0], b.load_average[1]),
                String::new(),
            );
        }
        let c = &self.run.convergence;
        let b = &self.run.baseline;
        let _ = writeln!(
            out,
            "\nDoorstep: {} settling passes (settled: {}); {} device documents, {} heads differ, {} scopes differ, {} devices unsynced, {} of {} visits missing",
            self.run.doorstep_settle_passes,
            self.run.doorstep_settled,
            c.device_documents,
            c.heads_differ,
            c.scope_differs,
            c.unsynced_devices,
            c.visits_missing,
            c.visits
        );
        let _ = writeln!(
            out,
            "baseline: {} settling passes (settled: {}); {} device documents, {} heads differ from its server; {} of its {} documents have the Doorstep server's heads",
            b.settle_passes,
            b.settled,
            b.device_documents,
            b.heads_differ,
            b.same_as_doorstep_server,
            b.server_documents
        );
        let _ = writeln!(
            out,
            "{}",
            if self.converged { "both converged" } else { "NOT CONVERGED (or not every device served)" }
        );
        for side in self.run.reconnect.iter().chain(&self.run.catch_up) {
            for f in &side.failures {
                let _ = writeln!(out, "failure: {f}");
            }
        }
        out
    }
}
