//! A simulated phone: a replica file of its own, enrolled over HTTP, recording visits offline
//! and syncing with `doorstep_client::Client` as the app does.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use doorstep_client::{Client, SyncReport};
use doorstep_core::ids::{DocumentId, GridId, HouseholdId, VisitId};
use doorstep_core::model::{NewVisit, VisitKind};
use doorstep_core::store::{Durability, Replica, ReplicaOptions};
use doorstep_core::time::Timestamp;
use doorstep_server::demo::Seeded;

use crate::county::Seat;
use crate::shape::{Link, Shaping, Traffic};

/// Notes a worker types after a visit (the day's visits cycle through them).
const NOTES: &[&str] = &[
    "家中一切正常，老人精神状态良好。",
    "反映楼道灯不亮，已记录并报物业。",
    "独居老人，叮嘱按时服药，留下社区联系电话。",
    "燃气管道检查无异常，提醒注意用电安全。",
    "宣传反诈知识，帮助下载国家反诈中心App。",
];

/// A simulated phone. Its replica is opened for each step and closed after, so a thousand
/// devices do not hold a thousand SQLite connections.
pub struct Device {
    /// Its name at enrolment.
    pub name: String,
    /// Its replica file.
    pub path: PathBuf,
    /// Index of its grid in the county.
    pub grid: usize,
    /// The visits it recorded, with their households.
    pub visits: Vec<(HouseholdId, VisitId)>,
}

/// What one device's sync did, as the scenario saw it.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// The whole `Client::sync`, all its round trips, in seconds (also when it failed).
    pub seconds: f64,
    /// Changes the server acknowledged.
    pub uploaded: usize,
    /// Why it failed (error or timeout); `None`: served.
    pub error: Option<String>,
    /// The scope digest matched at the end.
    pub verified: bool,
    /// Round trips of the (last) sync.
    pub round_trips: usize,
    /// Frame bodies sent, as `SyncReport` counts them.
    pub frame_up: u64,
    /// Frame bodies received.
    pub frame_down: u64,
    /// Documents that received data from the server.
    pub received_docs: usize,
    /// What went through the phone's link, every attempt together (zero without a link).
    pub wire: Traffic,
    /// Attempts made (1 unless a cut connection made the phone retry).
    pub attempts: usize,
}

/// How a phone on a bad link retries a sync that failed.
#[derive(Clone, Copy, Debug)]
pub struct Retry {
    /// Attempts at most, the first included.
    pub attempts: usize,
    /// Wait before each retry.
    pub delay: Duration,
}

/// Replica options of a simulated phone: `synchronous = NORMAL`, so the phones' fsyncs do not
/// compete with the server's on the one disk the run measures.
fn options() -> ReplicaOptions {
    ReplicaOptions { durability: Durability::Normal, ..ReplicaOptions::default() }
}

impl Device {
    /// Creates the replica, enrols it with its seat's code and downloads its grid.
    pub async fn enrol(url: &str, dir: &Path, index: usize, seat: &Seat, timeout: Duration) -> Result<Self> {
        let name = format!("phone-{index:05}");
        let path = dir.join(format!("{name}.db"));
        let mut replica = Replica::open_with(&path, options())?;
        let client = Client::new(url);
        tokio::time::timeout(timeout, client.enrol(&mut replica, &seat.code, &name))
            .await
            .map_err(|_| anyhow!("{name}: enrolment timed out"))?
            .with_context(|| format!("{name}: enrolment"))?;
        let report = tokio::time::timeout(timeout, client.sync(&mut replica))
            .await
            .map_err(|_| anyhow!("{name}: first download timed out"))?
            .with_context(|| format!("{name}: first download"))?;
        if !report.verified {
            bail!("{name}: the first download did not verify: {report:?}");
        }
        Ok(Self { name, path, grid: seat.grid, visits: Vec::new() })
    }

    /// A day of work offline: `visits` visits to households of its grid, seeded by `seed`;
    /// returns them (the caller keeps them in [`Device::visits`] for the final check).
    pub fn work_day(
        &self,
        grid: GridId,
        visits: usize,
        seed: u64,
        day: Timestamp,
    ) -> Result<Vec<(HouseholdId, VisitId)>> {
        let mut replica = self.open()?;
        let households = replica.households_in_grid(grid)?;
        if households.is_empty() {
            bail!("{}: grid {grid} has no households on the device", self.name);
        }
        let mut rng = Seeded(seed | 1);
        let mut recorded = Vec::with_capacity(visits);
        for n in 0..visits {
            let household = households[rng.below(households.len() as u64) as usize].id;
            let visit = NewVisit {
                at: Timestamp(day.millis() + n as i64 * 20 * 60_000),
                kind: *rng.pick(&VisitKind::ALL),
                notes: (*rng.pick(NOTES)).to_owned(),
                needs: Vec::new(),
            };
            let id = replica.record_visit(household, &visit)?;
            recorded.push((household, id));
        }
        Ok(recorded)
    }

    /// The changes on the phone the server has not acknowledged yet, per document (the day's
    /// visits, as recorded: the baseline replays exactly these).
    pub fn unsynced(&self) -> Result<Vec<(DocumentId, Vec<Vec<u8>>)>> {
        let mut replica = Replica::open_with(&self.path, options())?;
        let mut out = Vec::new();
        for id in replica.documents_with_unsynced_changes()? {
            out.push((id, replica.unsynced_changes(id)?));
        }
        Ok(out)
    }

    /// The documents on the phone.
    pub fn documents(&self) -> Result<Vec<DocumentId>> {
        let replica = Replica::open_with(&self.path, options())?;
        Ok(replica.all_heads()?.into_iter().map(|(id, _, _)| id).collect())
    }

    /// A sync through a [`Link`] of its own to the server at `upstream`, shaped as `shaping`
    /// says (cuts chosen by `seed`), retried as `retry` says while `timeout` lasts. The time is
    /// the whole of it, retries and waits included; the wire bytes every attempt's.
    pub async fn sync_through(
        &self,
        upstream: &str,
        shaping: Shaping,
        seed: u64,
        retry: Retry,
        timeout: Duration,
    ) -> Outcome {
        let link = match Link::open(upstream, shaping, seed).await {
            Ok(link) => link,
            Err(e) => return Outcome { error: Some(format!("open link: {e}")), ..Outcome::default() },
        };
        let started = Instant::now();
        let deadline = started + timeout;
        let mut attempts = 0;
        let mut outcome = loop {
            attempts += 1;
            let outcome = self.sync(&link.url, deadline.saturating_duration_since(Instant::now())).await;
            if outcome.error.is_none()
                || attempts >= retry.attempts.max(1)
                || Instant::now() + retry.delay >= deadline
            {
                break outcome;
            }
            tokio::time::sleep(retry.delay).await;
        };
        outcome.seconds = started.elapsed().as_secs_f64();
        outcome.attempts = attempts;
        outcome.wire = link.traffic();
        outcome
    }

    /// One `Client::sync` over a new HTTP client (a reconnecting phone opens a new connection),
    /// timed as a whole and bounded by `timeout`.
    /// Opens the device's replica file.
    pub fn open(&self) -> Result<Replica> {
        Replica::open_with(&self.path, options())
            .with_context(|| format!("{}: opening the replica", self.name))
    }

    pub async fn sync(&self, url: &str, timeout: Duration) -> Outcome {
        let mut replica = match self.open() {
            Ok(r) => r,
            Err(e) => return Outcome { error: Some(format!("open replica: {e}")), ..Outcome::default() },
        };
        let client = Client::new(url);
        let started = Instant::now();
        let result = tokio::time::timeout(timeout, client.sync(&mut replica)).await;
        let seconds = started.elapsed().as_secs_f64();
        match result {
            Ok(Ok(report)) => from_report(&report, seconds),
            Ok(Err(e)) => Outcome { seconds, error: Some(e.to_string()), ..Outcome::default() },
            Err(_) => {
                Outcome { seconds, error: Some(format!("timed out after {timeout:?}")), ..Outcome::default() }
            }
        }
    }
}

fn from_report(report: &SyncReport, seconds: f64) -> Outcome {
    let error = (!report.held_back.is_empty()).then(|| format!("held back: {:?}", report.held_back));
    Outcome {
        seconds,
        uploaded: report.uploaded_changes,
        error,
        verified: report.verified,
        round_trips: report.round_trips,
        frame_up: report.bytes_up as u64,
        frame_down: report.bytes_down as u64,
        received_docs: report.received_docs,
        wire: Traffic::default(),
        attempts: 1,
    }
}
