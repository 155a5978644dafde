//! Server configuration: one struct, filled from a TOML file, then environment variables and
//! flags (which win). Every field has a default that works out of the box.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Everything `doorstep-server serve` can be told.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Directory holding the SQLite database.
    pub data_dir: PathBuf,
    /// Largest protocol frame accepted, in bytes.
    pub max_frame_bytes: usize,
    /// Largest stored document, in bytes.
    pub max_document_bytes: usize,
    /// Target size of one sync reply, in bytes.
    pub page_bytes: usize,
    /// Token that `/metrics` requires; unset disables `/metrics`.
    pub metrics_token: Option<String>,
    /// Log filter (`info`, `doorstep_server=debug`, …).
    pub log: String,
    /// PEM certificate chain for HTTPS; with `tls_key`, the server speaks TLS (rustls).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for HTTPS.
    pub tls_key: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("doorstep-data"),
            max_frame_bytes: doorstep_core::sync::frame::DEFAULT_MAX_FRAME_BYTES,
            max_document_bytes: 4 * 1024 * 1024,
            page_bytes: 2 * 1024 * 1024,
            metrics_token: None,
            log: "info".into(),
            tls_cert: None,
            tls_key: None,
        }
    }
}

impl Config {
    /// The certificate and key paths, when TLS is configured. Exactly one of them is an error.
    pub fn tls(&self) -> anyhow::Result<Option<(&Path, &Path)>> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Ok(Some((cert, key))),
            (None, None) => Ok(None),
            _ => anyhow::bail!("TLS needs both a certificate and a key (--tls-cert and --tls-key)"),
        }
    }

    /// Reads a TOML config file.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read config file {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))
    }
}
