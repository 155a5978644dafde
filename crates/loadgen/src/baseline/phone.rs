//! A simulated phone the automerge-repo way: the same device's documents (its grid's, the
//! same ids as its Doorstep replica holds) in a [`BaselineClient`] store of its own beside its
//! replica, opened for each step and closed after, like the Doorstep phones.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use doorstep_baseline::client::Durability;
use doorstep_baseline::envelope::peer_id;
use doorstep_baseline::{BaselineClient, Mode, Session};
use doorstep_server::demo::Seeded;

use super::process::repo_id;
use crate::device::Device;
use crate::shape::{Link, Shaping, Traffic};

/// The baseline side of one device.
pub struct Phone {
    /// Its store file.
    pub path: PathBuf,
}

/// What one baseline sync did.
#[derive(Clone, Debug, Default)]
pub struct BaselineOutcome {
    /// The whole sync, from the first request to the last reply applied, in seconds.
    pub seconds: f64,
    /// What the protocol counted.
    pub session: Session,
    /// Through the phone's (counting) link.
    pub wire: Traffic,
    /// Why it failed; `None`: served.
    pub error: Option<String>,
}

/// `synchronous = NORMAL`, as the Doorstep phones of the load generator.
const DURABILITY: Durability = Durability::Normal;

impl Phone {
    /// Creates the device's baseline store with its documents' ids, downloads them from the
    /// baseline server at `url` (set-up, not measured), and replays the changes the device made
    /// offline that its Doorstep replica has not uploaded yet (the day's visits, byte for byte).
    pub async fn set_up(
        device: &Device,
        url: &str,
        mode: Mode,
        seed: u64,
        timeout: Duration,
    ) -> Result<Self> {
        let path = device.path.with_extension("baseline.db");
        let ids = device.documents()?.into_iter().map(repo_id).collect();
        let mut rng = Seeded(seed | 1);
        let peer = peer_id(|n| rng.below(n));
        let storage_id = rng.uuid().to_string();
        let mut client = BaselineClient::create(&path, DURABILITY, mode, ids, peer, storage_id)?;
        tokio::time::timeout(timeout, client.sync(url))
            .await
            .map_err(|_| anyhow!("{}: baseline download timed out", device.name))??;
        for (id, changes) in device.unsynced()? {
            client.apply_local(&repo_id(id), &changes)?;
        }
        Ok(Self { path })
    }

    /// One sync through a counting link of its own to the baseline server at `upstream`,
    /// bounded by `timeout`. Loading the documents from the store is not timed (as opening a
    /// Doorstep replica is not).
    pub async fn sync(&self, upstream: &str, mode: Mode, timeout: Duration) -> BaselineOutcome {
        let failed = |e: String| BaselineOutcome { error: Some(e), ..BaselineOutcome::default() };
        let mut client = match BaselineClient::open(&self.path, DURABILITY, mode) {
            Ok(c) => c,
            Err(e) => return failed(format!("open baseline store: {e}")),
        };
        let link = match Link::open(upstream, Shaping::counting(), 1).await {
            Ok(link) => link,
            Err(e) => return failed(format!("open link: {e}")),
        };
        let started = Instant::now();
        let result = tokio::time::timeout(timeout, client.sync(&link.url)).await;
        let seconds = started.elapsed().as_secs_f64();
        drop(client);
        let wire = link.traffic();
        match result {
            Ok(Ok(session)) => BaselineOutcome { seconds, session, wire, error: None },
            Ok(Err(e)) => {
                BaselineOutcome { seconds, wire, error: Some(e.to_string()), ..BaselineOutcome::default() }
            }
            Err(_) => BaselineOutcome {
                seconds,
                wire,
                error: Some(format!("timed out after {timeout:?}")),
                ..BaselineOutcome::default()
            },
        }
    }

    /// Documents whose heads differ from the baseline server's `heads`.
    pub fn differing(
        &self,
        mode: Mode,
        heads: &std::collections::HashMap<String, Vec<automerge::ChangeHash>>,
    ) -> Result<(usize, usize)> {
        let mut client = BaselineClient::open(&self.path, DURABILITY, mode)?;
        Ok((client.len(), client.differing(heads)))
    }
}
