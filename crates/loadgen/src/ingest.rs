//! The server on its own (the `ingest` scenario, and `storm --prebuilt`): every device's round is
//! built before the measured phase (`client::begin_round`, read-only on the replica), so in the phase
//! the load generator only posts ready frames and keeps the replies. The server does all of its
//! work for each round (checks, stores and commits the uploads durably, then catches the device
//! up on its grid-mates' changes) while the simulated phones spend no CPU on their replicas.
//! After the phase each phone applies its reply (`client::finish_round`), which also counts the
//! changes the server acknowledged.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use doorstep_client::Client;
use doorstep_core::store::Replica;
use doorstep_core::sync::client::{self, ClientLimits, Round};

use crate::device::{Device, Outcome};
use crate::phase;

/// One device's upload round, ready to post.
pub struct Prepared {
    token: String,
    frame: Vec<u8>,
    round: Round,
}

/// Builds every device's upload round (not measured).
pub fn prepare(devices: &[Device]) -> Result<Vec<Prepared>> {
    let limits = ClientLimits::default();
    devices
        .iter()
        .map(|device| {
            let mut replica = device.open()?;
            let token = Client::device_token(&replica).with_context(|| format!("{}: token", device.name))?;
            let (frame, round) = client::begin_round(&mut replica, &limits, true, &[])
                .with_context(|| format!("{}: building the upload", device.name))?;
            Ok(Prepared { token, frame, round })
        })
        .collect()
}

/// What a posted round brought back: the reply frame (or the failure) and how long it took.
pub type Posted = (Result<Vec<u8>, String>, f64);

/// Whether a posted round failed (for the progress line).
pub fn failed(posted: &Posted) -> bool {
    posted.0.is_err()
}

/// The measured phase's jobs: each posts one prepared frame and keeps the reply; with
/// `offsets`, device `i` waits `offsets[i]` first (a storm's reconnect moments).
pub fn post_jobs(
    url: &str,
    prepared: &[Prepared],
    offsets: &[Duration],
    timeout: Duration,
) -> Vec<phase::Job<Posted>> {
    let client = Client::new(url);
    prepared
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let (client, token, frame) = (client.clone(), p.token.clone(), p.frame.clone());
            let offset = offsets.get(i).copied().unwrap_or_default();
            Box::pin(async move {
                tokio::time::sleep(offset).await;
                let started = Instant::now();
                let reply = match tokio::time::timeout(timeout, client.post_frame(&token, frame)).await {
                    Ok(Ok(reply)) => Ok(reply),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err(format!("timed out after {timeout:?}")),
                };
                (reply, started.elapsed().as_secs_f64())
            }) as phase::Job<Posted>
        })
        .collect()
}

/// After the phase: each phone applies its reply; the outcome counts the acknowledged changes.
pub fn apply_replies(
    devices: &Arc<Vec<Device>>,
    prepared: Vec<Prepared>,
    posted: Vec<Posted>,
) -> Vec<Outcome> {
    let limits = ClientLimits::default();
    let apply = |device: &Device, round: Round, reply: &[u8]| -> Result<usize> {
        let mut replica: Replica = device.open()?;
        Ok(client::finish_round(&mut replica, round, reply, &limits)?.acknowledged_changes)
    };
    devices
        .iter()
        .zip(prepared)
        .zip(posted)
        .map(|((device, prepared), (reply, seconds))| match reply {
            Ok(reply) => match apply(device, prepared.round, &reply) {
                Ok(uploaded) => Outcome { seconds, uploaded, ..Outcome::default() },
                Err(e) => Outcome {
                    seconds,
                    error: Some(format!("applying the reply: {e:#}")),
                    ..Outcome::default()
                },
            },
            Err(e) => Outcome { seconds, error: Some(e), ..Outcome::default() },
        })
        .collect()
}
