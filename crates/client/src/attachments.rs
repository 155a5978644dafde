//! Moving attachment bytes after the records: uploads of photos taken here, downloads of
//! photos referenced by received documents, both in chunks that resume where a cut connection
//! left them (docs/PROTOCOL.md §10). Document sync never waits for this: an app calls
//! [`Client::sync`] first (records arrive, the app shows "photo pending"), then
//! [`Client::transfer_attachments`].

use doorstep_core::ids::DocumentId;
use doorstep_core::model::attachment::ContentHash;
use doorstep_core::store::Transfer;
use serde::{Deserialize, Serialize};

use crate::{Client, ClientError, ReplicaAccess};

/// Default chunk: about 5 s at 2G's 50 kbit/s, so a cut loses little.
pub const DEFAULT_CHUNK_BYTES: usize = 32 * 1024;

/// What full-size downloads a transfer pass makes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub enum Downloads {
    /// Download every pending attachment whole.
    #[default]
    Full,
    /// Download none (the app fetches thumbnails with [`Client::fetch_thumbnail`] and full
    /// files on demand with [`Client::download_attachment`]).
    OnDemand,
}

/// How a transfer pass runs.
#[derive(Clone, Debug)]
pub struct TransferOptions {
    /// Bytes per chunk (at most the server's 256 KiB).
    pub chunk_bytes: usize,
    /// Whether the phone is on Wi-Fi now (the app knows; the replica's Wi-Fi-only setting
    /// holds uploads back when this is false).
    pub on_wifi: bool,
    /// Which downloads to make.
    pub downloads: Downloads,
}

impl Default for TransferOptions {
    fn default() -> Self {
        Self { chunk_bytes: DEFAULT_CHUNK_BYTES, on_wifi: true, downloads: Downloads::Full }
    }
}

/// Which way bytes move.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Direction {
    /// To the server.
    Upload,
    /// From the server.
    Download,
}

/// Watches a transfer pass: told after every chunk, asked before each whether to stop.
pub trait TransferObserver: Send {
    /// After every chunk: which attachment, which way, bytes done of the total.
    fn progress(&mut self, _hash: &ContentHash, _direction: Direction, _done: u64, _total: u64) {}
    /// Return true to stop before the next chunk (what moved stays moved).
    fn cancelled(&self) -> bool {
        false
    }
}

/// An observer that watches nothing.
pub struct NoTransferObserver;

impl TransferObserver for NoTransferObserver {}

/// What one transfer pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TransferReport {
    /// Attachments the server now holds whole.
    pub uploaded: Vec<ContentHash>,
    /// Attachments now held here whole.
    pub downloaded: Vec<ContentHash>,
    /// Attachment bytes sent (chunk bodies).
    pub bytes_up: u64,
    /// Attachment bytes received.
    pub bytes_down: u64,
    /// Uploads held back by the Wi-Fi-only setting.
    pub waiting_for_wifi: usize,
    /// Transfers refused or not possible yet (not uploaded by its author, out of scope…), with
    /// the server's code; they are tried again next pass.
    pub failed: Vec<(ContentHash, String)>,
}

/// The server's account of an upload.
#[derive(Clone, Copy, Debug, Deserialize)]
struct Status {
    received: u64,
    complete: bool,
}

impl Client {
    fn attachment_url(&self, hash: &ContentHash, doc: DocumentId, suffix: &str) -> String {
        format!("{}/v1/attachments/{hash}{suffix}?doc={doc}", self.base)
    }

    /// Turns a non-success answer into [`ClientError::AttachmentRefused`].
    async fn refused(response: reqwest::Response) -> ClientError {
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        let detail: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        ClientError::AttachmentRefused {
            status,
            code: detail["error"].as_str().unwrap_or("unexpected").to_owned(),
            message: detail["message"].as_str().unwrap_or(&text).to_owned(),
        }
    }

    async fn upload_status(&self, token: &str, t: &Transfer) -> Result<Status, ClientError> {
        let response =
            self.http.get(self.attachment_url(&t.hash, t.doc, "/upload")).bearer_auth(token).send().await?;
        if !response.status().is_success() {
            return Err(Self::refused(response).await);
        }
        response.json().await.map_err(|e| ClientError::Unexpected(e.to_string()))
    }

    /// Uploads one attachment from where the server's copy ends. Returns the bytes sent.
    pub async fn upload_attachment(
        &self,
        replica: &mut impl ReplicaAccess,
        transfer: &Transfer,
        chunk_bytes: usize,
        observer: &mut (dyn TransferObserver + Send),
    ) -> Result<u64, ClientError> {
        let token = replica.with(|r| Self::token(r)).await?;
        let hash = transfer.hash;
        let bytes = replica.with(move |r| r.attachment_bytes(&hash)).await?;
        let chunk_bytes = chunk_bytes.clamp(1024, 256 * 1024);
        let mut status = self.upload_status(&token, transfer).await?;
        let mut sent = 0u64;
        let mut restarts = 0;
        while !status.complete {
            replica.with(move |r| r.record_uploaded(&hash, status.received)).await?;
            observer.progress(&hash, Direction::Upload, status.received, transfer.size);
            if observer.cancelled() {
                return Err(ClientError::Cancelled);
            }
            let from = usize::try_from(status.received).unwrap_or(usize::MAX).min(bytes.len());
            let chunk = &bytes[from..(from + chunk_bytes).min(bytes.len())];
            let url = format!("{}&offset={from}", self.attachment_url(&hash, transfer.doc, "/upload"));
            let response = self
                .http
                .put(url)
                .bearer_auth(&token)
                .header("x-chunk-sha256", ContentHash::of(chunk).to_string())
                .body(chunk.to_vec())
                .send()
                .await?;
            sent += chunk.len() as u64;
            if response.status().is_success() {
                status = response.json().await.map_err(|e| ClientError::Unexpected(e.to_string()))?;
                continue;
            }
            let refused = Self::refused(response).await;
            match &refused {
                // Someone else (or a lost answer) moved the server's copy on: ask where it is.
                ClientError::AttachmentRefused { code, .. }
                    if (code == "wrong_offset"
                        || code == "chunk_mismatch"
                        || code == "attachment_mismatch")
                        && restarts < 3 =>
                {
                    restarts += 1;
                    status = self.upload_status(&token, transfer).await?;
                }
                _ => return Err(refused),
            }
        }
        replica.with(move |r| r.record_uploaded(&hash, u64::MAX)).await?;
        observer.progress(&hash, Direction::Upload, transfer.size, transfer.size);
        Ok(sent)
    }

    /// Downloads one attachment from where the bytes held here end (full size, on demand).
    /// Returns the bytes received.
    pub async fn download_attachment(
        &self,
        replica: &mut impl ReplicaAccess,
        transfer: &Transfer,
        chunk_bytes: usize,
        observer: &mut (dyn TransferObserver + Send),
    ) -> Result<u64, ClientError> {
        let token = replica.with(|r| Self::token(r)).await?;
        let hash = transfer.hash;
        let chunk_bytes = chunk_bytes.max(1024) as u64;
        let mut held = transfer.done;
        let mut received = 0u64;
        while held < transfer.size {
            observer.progress(&hash, Direction::Download, held, transfer.size);
            if observer.cancelled() {
                return Err(ClientError::Cancelled);
            }
            let last = (held + chunk_bytes).min(transfer.size) - 1;
            let response = self
                .http
                .get(self.attachment_url(&hash, transfer.doc, ""))
                .bearer_auth(&token)
                .header("range", format!("bytes={held}-{last}"))
                .send()
                .await?;
            if !response.status().is_success() {
                return Err(Self::refused(response).await);
            }
            let part = response.bytes().await?.to_vec();
            if part.is_empty() {
                return Err(ClientError::Unexpected("the server sent an empty range".into()));
            }
            received += part.len() as u64;
            let offset = held;
            held = replica.with(move |r| r.store_attachment_part(&hash, offset, &part)).await?;
        }
        observer.progress(&hash, Direction::Download, transfer.size, transfer.size);
        Ok(received)
    }

    /// The server-made thumbnail of an image attachment (a few KB), for a list on a slow
    /// link; the full file comes with [`Client::download_attachment`] when the user opens it.
    pub async fn fetch_thumbnail(
        &self,
        replica: &mut impl ReplicaAccess,
        doc: DocumentId,
        hash: &ContentHash,
    ) -> Result<Vec<u8>, ClientError> {
        let token = replica.with(|r| Self::token(r)).await?;
        let url = format!("{}&thumbnail=true", self.attachment_url(hash, doc, ""));
        let response = self.http.get(url).bearer_auth(&token).send().await?;
        if !response.status().is_success() {
            return Err(Self::refused(response).await);
        }
        Ok(response.bytes().await?.to_vec())
    }

    /// One pass over every pending attachment: uploads first (unless the Wi-Fi-only setting
    /// holds them back), then downloads as `options` say. A refused transfer is reported and
    /// the pass goes on; a network error ends the pass (what moved stays moved; the next pass
    /// continues from there).
    pub async fn transfer_attachments(
        &self,
        replica: &mut impl ReplicaAccess,
        options: &TransferOptions,
        observer: &mut (dyn TransferObserver + Send),
    ) -> Result<TransferReport, ClientError> {
        let mut report = TransferReport::default();
        let (uploads, wifi_only) = replica
            .with(|r| Ok::<_, ClientError>((r.attachment_uploads()?, r.attachments_wifi_only()?)))
            .await?;
        if wifi_only && !options.on_wifi {
            report.waiting_for_wifi = uploads.len();
        } else {
            for transfer in &uploads {
                match self.upload_attachment(replica, transfer, options.chunk_bytes, observer).await {
                    Ok(sent) => {
                        report.bytes_up += sent;
                        report.uploaded.push(transfer.hash);
                    }
                    Err(ClientError::AttachmentRefused { code, .. }) => {
                        report.failed.push((transfer.hash, code))
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        if options.downloads == Downloads::Full {
            let downloads = replica.with(|r| r.attachment_downloads()).await?;
            for transfer in &downloads {
                match self.download_attachment(replica, transfer, options.chunk_bytes, observer).await {
                    Ok(received) => {
                        report.bytes_down += received;
                        report.downloaded.push(transfer.hash);
                    }
                    Err(ClientError::AttachmentRefused { code, .. }) => {
                        report.failed.push((transfer.hash, code))
                    }
                    Err(ClientError::Core(doorstep_core::CoreError::AttachmentMismatch(hash))) => {
                        report.failed.push((hash, "attachment_mismatch".into()))
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(report)
    }
}
