//! Enrolment and sync for the app: `enrol`, `sync` (progress, cancellation) and `listen`
//! (a live connection while the app is in the foreground). A cut connection loses nothing:
//! the next call resumes.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use doorstep_client::{Client, Observer, Phase, ReplicaAccess, Trust};
use doorstep_core::sync::message::ErrorCode;

use crate::error::DoorstepError;
use crate::replica::Replica;

/// The stage a sync is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum SyncPhase {
    /// Uploading and downloading.
    Syncing,
    /// Repairing documents that differed.
    Repairing,
    /// Finished.
    Done,
}

/// Progress of a sync, reported after every round trip.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct SyncProgress {
    /// Stage.
    pub phase: SyncPhase,
    /// Round trips so far.
    pub round_trips: u32,
    /// Local changes acknowledged so far.
    pub uploaded_changes: u64,
    /// Local changes waiting when the sync began: the upload is done when
    /// `uploaded_changes` reaches it.
    pub upload_total: u64,
    /// Documents received so far (the server does not announce a total in advance).
    pub documents_received: u64,
    /// Bytes sent so far.
    pub bytes_up: u64,
    /// Bytes received so far.
    pub bytes_down: u64,
}

/// What a sync did.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct SyncReport {
    /// Round trips.
    pub round_trips: u32,
    /// Local changes the server stored.
    pub uploaded_changes: u64,
    /// Documents that received data.
    pub documents_received: u64,
    /// Documents removed because they left this device's scope.
    pub documents_purged: u64,
    /// Bytes sent.
    pub bytes_up: u64,
    /// Bytes received.
    pub bytes_down: u64,
    /// The device and the server proved they hold the same scope.
    pub verified: bool,
    /// Documents the server refused (kept on the device, reported to the user).
    pub held_back: Vec<String>,
    /// Local changes still waiting (recorded during the sync, or held back).
    pub unsynced_left: u64,
    /// Documents found damaged on this device, with the reason: set aside while everything
    /// else synced, and asked of the server again.
    pub damaged: Vec<crate::replica::DamagedDocument>,
    /// Damaged documents rebuilt from the server's copy (with the local changes that could
    /// still be read).
    pub recovered: Vec<String>,
}

/// The device's enrolment.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct Enrolment {
    /// The device's id on the server.
    pub device_id: String,
    /// The member signed in.
    pub member_id: String,
}

/// Told about a sync's progress; implemented by the app (Kotlin, Swift, Python).
#[uniffi::export(with_foreign)]
pub trait SyncObserver: Send + Sync {
    /// Called after every round trip, and once at the end.
    fn on_progress(&self, progress: SyncProgress);
}

/// Told about changes that arrive on a live connection.
#[uniffi::export(with_foreign)]
pub trait LiveObserver: Send + Sync {
    /// The connection is up and the first sync round is done: changes now arrive as pushes.
    fn on_connected(&self);
    /// New data arrived and is stored: `documents` documents changed.
    fn on_changes(&self, documents: u64);
}

struct Watch<'a> {
    observer: Option<Arc<dyn SyncObserver>>,
    replica: &'a Replica,
    upload_total: u64,
}

impl Observer for Watch<'_> {
    fn progress(&mut self, phase: Phase, so_far: &doorstep_client::SyncReport) {
        if let Some(observer) = &self.observer {
            observer.on_progress(SyncProgress {
                phase: match phase {
                    Phase::Syncing => SyncPhase::Syncing,
                    Phase::Repairing => SyncPhase::Repairing,
                    Phase::Done => SyncPhase::Done,
                },
                round_trips: u32::try_from(so_far.round_trips).unwrap_or(u32::MAX),
                uploaded_changes: so_far.uploaded_changes as u64,
                upload_total: self.upload_total,
                documents_received: so_far.received_docs as u64,
                bytes_up: so_far.bytes_up as u64,
                bytes_down: so_far.bytes_down as u64,
            });
        }
    }

    fn cancelled(&self) -> bool {
        self.replica.cancel.load(Ordering::SeqCst)
    }
}

/// The shared replica, locked for one step of a sync at a time.
pub(crate) struct Locked<'a>(pub(crate) &'a tokio::sync::Mutex<doorstep_core::store::Replica>);

impl ReplicaAccess for Locked<'_> {
    fn with<R: Send>(
        &mut self,
        f: impl FnOnce(&mut doorstep_core::store::Replica) -> R + Send,
    ) -> impl std::future::Future<Output = R> + Send {
        let shared = self.0;
        async move { f(&mut *shared.lock().await) }
    }
}

fn client_for(replica: &doorstep_core::store::Replica) -> Result<Client, DoorstepError> {
    Ok(Client::for_replica(replica)?)
}

#[uniffi::export(async_runtime = "tokio")]
impl Replica {
    /// Enrols this device with the county server using the code the administrator gave
    /// (case, spaces and dashes do not matter). `server_ca_pem`: the county's CA certificate
    /// (PEM text) when its server's certificate is not from a public CA (a private CA or a
    /// self-signed certificate); it is remembered with the enrolment, so `sync()` and
    /// `listen()` trust it too. A text that holds no valid certificate fails with kind
    /// `InvalidInput`; a server whose certificate is not trusted, with `UntrustedCertificate`.
    #[uniffi::method(default(server_ca_pem = None))]
    pub async fn enrol(
        &self,
        server_url: String,
        code: String,
        device_name: String,
        server_ca_pem: Option<String>,
    ) -> Result<Enrolment, DoorstepError> {
        let client = Client::with_trust(&server_url, Trust::from_optional_pem(server_ca_pem.as_deref())?)?;
        let mut replica = self.inner.lock().await;
        let enrolment = client.enrol(&mut replica, &code, &device_name).await?;
        Ok(Enrolment { device_id: enrolment.device.to_string(), member_id: enrolment.member.to_string() })
    }

    /// Syncs with the server: uploads every local change, downloads what is new in scope,
    /// verifies, and repairs. Progress goes to `observer`; `cancel_sync()` stops it between
    /// round trips. Safe to call again after any failure: nothing is lost.
    pub async fn sync(&self, observer: Option<Arc<dyn SyncObserver>>) -> Result<SyncReport, DoorstepError> {
        self.cancel.store(false, Ordering::SeqCst);
        let (client, upload_total) = {
            let replica = self.inner.lock().await;
            (client_for(&replica)?, replica.unsynced_change_count()?)
        };
        let mut watch = Watch { observer, replica: self, upload_total };
        // The replica is locked for each step only: the app can read and record while the
        // network is slow, and observers may call back into the replica.
        let report = client.sync_observed(&mut Locked(&self.inner), &mut watch).await?;
        let replica = self.inner.lock().await;
        Ok(SyncReport {
            round_trips: u32::try_from(report.round_trips).unwrap_or(u32::MAX),
            uploaded_changes: report.uploaded_changes as u64,
            documents_received: report.received_docs as u64,
            documents_purged: report.purged as u64,
            bytes_up: report.bytes_up as u64,
            bytes_down: report.bytes_down as u64,
            verified: report.verified,
            held_back: report.held_back.iter().map(|(d, _)| d.to_string()).collect(),
            unsynced_left: replica.unsynced_change_count()?,
            damaged: report
                .damaged
                .iter()
                .map(|(id, reason)| crate::replica::DamagedDocument {
                    document: id.to_string(),
                    reason: reason.clone(),
                })
                .collect(),
            recovered: report.recovered.iter().map(ToString::to_string).collect(),
        })
    }

    /// Stops a running `sync()` or `listen()` at the next round trip.
    pub fn cancel_sync(&self) {
        self.cancel.store(true, Ordering::SeqCst);
        self.cancellations.send_modify(|n| *n += 1);
    }

    /// Keeps a live connection while the app is in the foreground: syncs once, then stores
    /// changes as the server pushes them and tells `observer`, until `cancel_sync()` or the
    /// connection drops (then call `sync()` or `listen()` again). The replica stays usable
    /// for edits while it waits.
    pub async fn listen(&self, observer: Arc<dyn LiveObserver>) -> Result<(), DoorstepError> {
        let mut cancelled = self.cancellations.subscribe();
        cancelled.borrow_and_update();
        let mut live = {
            let mut replica = self.inner.lock().await;
            let client = client_for(&replica)?;
            let token = Client::device_token(&replica)?;
            let mut live = match client.connect_live(&token).await {
                Ok(live) => live,
                Err(doorstep_client::ClientError::Refused {
                    code: ErrorCode::DeviceRevoked,
                    message,
                    doc,
                }) => {
                    // As a sync round would: a revoked device deletes what it holds.
                    replica.purge_everything()?;
                    return Err(doorstep_client::ClientError::Refused {
                        code: ErrorCode::DeviceRevoked,
                        message,
                        doc,
                    }
                    .into());
                }
                Err(e) => return Err(e.into()),
            };
            live.sync(&mut replica).await?;
            live
        };
        observer.on_connected();
        loop {
            let frame = tokio::select! {
                frame = live.receive_push() => frame?,
                _ = cancelled.changed() => break,
            };
            let report = {
                let mut replica = self.inner.lock().await;
                live.apply(&mut replica, &frame)?
            };
            observer.on_changes(report.received_docs as u64);
        }
        Ok(())
    }
}
