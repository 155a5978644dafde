//! Photos and files on visits and request events, and where a visit took place: attach
//! (offline), list with state, fetch, and move the bytes after the records with progress.
//! Converts and delegates to `doorstep-core` and `doorstep-client`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use doorstep_client::{Client, Direction, Downloads, TransferOptions};
use doorstep_core::ids::{DocumentId, EventId, HouseholdId, RequestId, VisitId};
use doorstep_core::model::attachment as core;
use doorstep_core::time::Timestamp;

use crate::error::DoorstepError;
use crate::replica::{Replica, now};
use crate::sync::Locked;
use crate::types::{NewVisit, parse};

/// Where a visit took place, as the phone's location service gave it.
#[derive(Clone, Copy, Debug, uniffi::Record)]
pub struct LocationFix {
    /// Latitude in degrees, −90…90.
    pub latitude: f64,
    /// Longitude in degrees, −180…180.
    pub longitude: f64,
    /// Accuracy radius in metres.
    pub accuracy_m: f64,
    /// When the fix was taken, ms since the epoch.
    pub at_ms: i64,
}

impl PartialEq for LocationFix {
    fn eq(&self, other: &Self) -> bool {
        self.to_core() == other.to_core()
    }
}

impl Eq for LocationFix {}

impl LocationFix {
    pub(crate) fn to_core(self) -> core::LocationFix {
        core::LocationFix {
            latitude: self.latitude,
            longitude: self.longitude,
            accuracy_m: self.accuracy_m,
            at: Timestamp(self.at_ms),
        }
    }

    pub(crate) fn from_core(fix: core::LocationFix) -> Self {
        Self {
            latitude: fix.latitude,
            longitude: fix.longitude,
            accuracy_m: fix.accuracy_m,
            at_ms: fix.at.millis(),
        }
    }
}

/// Where an attachment's bytes are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum AttachmentState {
    /// Taken on this device; nothing on the server yet.
    LocalOnly,
    /// Taken on this device; partly uploaded.
    Uploading,
    /// Here and on the server.
    Synced,
    /// Known from a record; the bytes are not here yet ("photo pending").
    RemoteOnly,
}

/// An attachment of a record.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct Attachment {
    /// SHA-256 of the bytes (hex): its id.
    pub hash: String,
    /// Size in bytes.
    pub size: u64,
    /// Media type (`image/jpeg`…).
    pub media_type: String,
    /// File name.
    pub name: String,
    /// Where its bytes are.
    pub state: AttachmentState,
    /// Bytes held on this device.
    pub stored_bytes: u64,
    /// Bytes the server confirmed (for attachments taken here).
    pub uploaded_bytes: u64,
}

/// Progress of one attachment's transfer.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct TransferProgress {
    /// The attachment.
    pub hash: String,
    /// `true` for an upload, `false` for a download.
    pub upload: bool,
    /// Bytes moved so far (resumed transfers start past 0).
    pub done: u64,
    /// Its size.
    pub total: u64,
}

/// What a transfer pass did.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct TransferReport {
    /// Attachments the server now holds whole.
    pub uploaded: u32,
    /// Attachments now held here whole.
    pub downloaded: u32,
    /// Bytes sent.
    pub bytes_up: u64,
    /// Bytes received.
    pub bytes_down: u64,
    /// Uploads held back by the Wi-Fi-only setting.
    pub waiting_for_wifi: u32,
    /// Attachments refused or not available yet, as `hash: code`; tried again next pass.
    pub failed: Vec<String>,
}

/// Told about attachment transfers; implemented by the app.
#[uniffi::export(with_foreign)]
pub trait TransferObserver: Send + Sync {
    /// After every chunk.
    fn on_transfer(&self, progress: TransferProgress);
}

struct Watch<'a> {
    observer: Option<Arc<dyn TransferObserver>>,
    replica: &'a Replica,
}

impl doorstep_client::TransferObserver for Watch<'_> {
    fn progress(&mut self, hash: &core::ContentHash, direction: Direction, done: u64, total: u64) {
        if let Some(observer) = &self.observer {
            observer.on_transfer(TransferProgress {
                hash: hash.to_string(),
                upload: direction == Direction::Upload,
                done,
                total,
            });
        }
    }

    fn cancelled(&self) -> bool {
        self.replica.cancel.load(Ordering::SeqCst)
    }
}

fn attachment(info: doorstep_core::store::AttachmentInfo) -> Attachment {
    Attachment {
        hash: info.reference.hash.to_string(),
        size: info.reference.size,
        media_type: info.reference.media_type,
        name: info.reference.name,
        state: match info.state {
            core::AttachmentState::LocalOnly => AttachmentState::LocalOnly,
            core::AttachmentState::Uploading => AttachmentState::Uploading,
            core::AttachmentState::Synced => AttachmentState::Synced,
            core::AttachmentState::RemoteOnly => AttachmentState::RemoteOnly,
        },
        stored_bytes: info.stored,
        uploaded_bytes: info.uploaded,
    }
}

fn new_attachment(media_type: String, name: String, bytes: Vec<u8>) -> core::NewAttachment {
    core::NewAttachment { media_type, name, bytes }
}

#[uniffi::export]
impl Replica {
    /// Records a visit with the location fix the app took for it; returns the visit's id.
    pub fn record_visit_located(
        &self,
        household: String,
        visit: NewVisit,
        location: LocationFix,
    ) -> Result<String, DoorstepError> {
        let id: HouseholdId = parse(&household)?;
        let visit = visit.into_core(now());
        let fix = location.to_core();
        self.with(|r| Ok(r.record_visit_located(id, &visit, Some(&fix))?.to_string()))
    }

    /// Attaches a photo or file to a visit, offline; returns its hash. The bytes stay in the
    /// encrypted replica and upload after the records. More than 10 MiB fails with
    /// `InvalidInput`.
    pub fn attach_to_visit(
        &self,
        household: String,
        visit: String,
        media_type: String,
        name: String,
        bytes: Vec<u8>,
    ) -> Result<String, DoorstepError> {
        let (id, vid): (HouseholdId, VisitId) = (parse(&household)?, parse(&visit)?);
        let file = new_attachment(media_type, name, bytes);
        self.with(|r| Ok(r.attach_to_visit(id, vid, &file, now())?.hash.to_string()))
    }

    /// Attaches a photo or file to an event of a request (the id `act_on_request` returned).
    pub fn attach_to_request_event(
        &self,
        request: String,
        event: String,
        media_type: String,
        name: String,
        bytes: Vec<u8>,
    ) -> Result<String, DoorstepError> {
        let (id, eid): (RequestId, EventId) = (parse(&request)?, parse(&event)?);
        let file = new_attachment(media_type, name, bytes);
        self.with(|r| Ok(r.attach_to_event(id, eid, &file, now())?.hash.to_string()))
    }

    /// The attachments of a household or request, with where their bytes are.
    pub fn attachments(&self, document: String) -> Result<Vec<Attachment>, DoorstepError> {
        let id: DocumentId = parse(&document)?;
        self.with(|r| Ok(r.attachments_of(id)?.into_iter().map(attachment).collect()))
    }

    /// The bytes of an attachment held here; kind `NotFound` while it is pending.
    pub fn attachment_bytes(&self, hash: String) -> Result<Vec<u8>, DoorstepError> {
        let hash: core::ContentHash = parse(&hash)?;
        self.with(|r| r.attachment_bytes(&hash))
    }

    /// Sets whether photos upload only on Wi-Fi (this device's setting; records always sync).
    pub fn set_photos_on_wifi_only(&self, wifi_only: bool) -> Result<(), DoorstepError> {
        self.with(|r| r.set_attachments_wifi_only(wifi_only))
    }

    /// Whether photos upload only on Wi-Fi.
    pub fn photos_on_wifi_only(&self) -> Result<bool, DoorstepError> {
        self.with(|r| r.attachments_wifi_only())
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl Replica {
    /// Moves attachment bytes after `sync()`: uploads photos taken here (unless the Wi-Fi-only
    /// setting holds them and `on_wifi` is false), then, with `download_all`, downloads every
    /// pending one (otherwise the app fetches thumbnails and full photos on demand). Progress
    /// after every chunk; `cancel_sync()` stops it; a cut connection resumes next time.
    pub async fn transfer_attachments(
        &self,
        on_wifi: bool,
        download_all: bool,
        observer: Option<Arc<dyn TransferObserver>>,
    ) -> Result<TransferReport, DoorstepError> {
        self.cancel.store(false, Ordering::SeqCst);
        let client = Client::for_replica(&*self.inner.lock().await)?;
        let options = TransferOptions {
            on_wifi,
            downloads: if download_all { Downloads::Full } else { Downloads::OnDemand },
            ..TransferOptions::default()
        };
        let mut watch = Watch { observer, replica: self };
        let report = client.transfer_attachments(&mut Locked(&self.inner), &options, &mut watch).await?;
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        Ok(TransferReport {
            uploaded: count(report.uploaded.len()),
            downloaded: count(report.downloaded.len()),
            bytes_up: report.bytes_up,
            bytes_down: report.bytes_down,
            waiting_for_wifi: count(report.waiting_for_wifi),
            failed: report.failed.iter().map(|(h, code)| format!("{h}: {code}")).collect(),
        })
    }

    /// The full attachment, downloaded now if it is not here (resuming a cut download), with
    /// progress; kind `NotFound` while its author has not uploaded it.
    pub async fn fetch_attachment(
        &self,
        document: String,
        hash: String,
        observer: Option<Arc<dyn TransferObserver>>,
    ) -> Result<Vec<u8>, DoorstepError> {
        let hash: core::ContentHash = parse(&hash)?;
        let doc: DocumentId = parse(&document)?;
        let (client, pending) = {
            let replica = self.inner.lock().await;
            let pending = replica.attachment_downloads()?.into_iter().find(|t| t.hash == hash);
            (Client::for_replica(&replica)?, pending)
        };
        if let Some(mut transfer) = pending {
            transfer.doc = doc;
            self.cancel.store(false, Ordering::SeqCst);
            let mut watch = Watch { observer, replica: self };
            client
                .download_attachment(
                    &mut Locked(&self.inner),
                    &transfer,
                    doorstep_client::DEFAULT_CHUNK_BYTES,
                    &mut watch,
                )
                .await?;
        }
        Ok(self.inner.lock().await.attachment_bytes(&hash)?)
    }

    /// The server-made thumbnail of a photo (a few KB; not stored here), for lists on a slow
    /// link.
    pub async fn fetch_thumbnail(&self, document: String, hash: String) -> Result<Vec<u8>, DoorstepError> {
        let hash: core::ContentHash = parse(&hash)?;
        let doc: DocumentId = parse(&document)?;
        let client = Client::for_replica(&*self.inner.lock().await)?;
        Ok(client.fetch_thumbnail(&mut Locked(&self.inner), doc, &hash).await?)
    }
}
