//! Server configuration: one struct, filled from a TOML file, then environment variables and
//! flags (which win). Every field has a default that works out of the box.

use std::net::{IpAddr, SocketAddr};
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
    /// A PostgreSQL URL (`postgres://user:password@host:5432/db`); unset means the embedded
    /// SQLite database in `data_dir`.
    pub database: Option<String>,
    /// Most PostgreSQL connections this node opens.
    pub database_connections: u32,
    /// Largest protocol frame accepted, in bytes.
    pub max_frame_bytes: usize,
    /// Largest stored document, in bytes.
    pub max_document_bytes: usize,
    /// Target size of one sync reply, in bytes.
    pub page_bytes: usize,
    /// Largest attachment (photo, scanned form) accepted, in bytes.
    pub max_attachment_bytes: u64,
    /// Token that `/metrics` requires; unset disables `/metrics`.
    pub metrics_token: Option<String>,
    /// Log filter (`info`, `doorstep_server=debug`, …).
    pub log: String,
    /// PEM certificate chain for HTTPS; with `tls_key`, the server speaks TLS (rustls).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for HTTPS.
    pub tls_key: Option<PathBuf>,
    /// Failed enrolment attempts one client address may make per window before it is
    /// refused with `rate_limited` (code guessing).
    pub enrol_failures_per_address: u32,
    /// Failed enrolment attempts from all addresses together per window.
    pub enrol_failures_total: u32,
    /// The window over which failed enrolment attempts are counted, in seconds.
    pub enrol_window_secs: u64,
    /// Live WebSocket connections one device may hold at once.
    pub connections_per_device: usize,
    /// Seconds a client has to send a request's headers (and a new connection its first
    /// request) before the connection is closed (slow clients, slowloris).
    pub header_timeout_secs: u64,
    /// Seconds a client has to send a sync request's body.
    pub body_timeout_secs: u64,
    /// SQLite only: the most bytes the database may grow to; past it writes fail cleanly as on
    /// a full disk (a quota below the disk's size). Unset: no cap.
    pub sqlite_max_bytes: Option<u64>,
    /// Addresses of reverse proxies whose forwarding headers (`X-Forwarded-Proto`, and for rate
    /// limits `X-Forwarded-For`) are believed. Empty (the default): no such header is believed.
    pub trusted_proxies: Vec<IpAddr>,
    /// The address staff reach the dashboard at (`https://doorstep.county.example`), used for the
    /// absolute links in exports. Unset: exports carry links relative to the server. Links never
    /// follow the request's `Host` header.
    pub public_url: Option<String>,
    /// Requests on routes open to anyone (`POST /v1/enrol`, `POST /dashboard/sign-in`) served at
    /// once; more are refused with 503 at once, so slow clients cannot hold every socket.
    pub unauthenticated_requests_at_once: usize,
    /// Attachment bytes one device may store on the server, in all (`quota_exceeded`, 413, past
    /// it). Bytes the server already had, sent again to prove possession, do not count.
    pub attachment_quota_bytes_per_device: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("doorstep-data"),
            database: None,
            database_connections: 16,
            max_frame_bytes: doorstep_core::sync::frame::DEFAULT_MAX_FRAME_BYTES,
            max_document_bytes: 4 * 1024 * 1024,
            page_bytes: 2 * 1024 * 1024,
            max_attachment_bytes: doorstep_core::model::attachment::MAX_ATTACHMENT_BYTES,
            metrics_token: None,
            log: "info".into(),
            tls_cert: None,
            tls_key: None,
            enrol_failures_per_address: 10,
            enrol_failures_total: 1000,
            enrol_window_secs: 600,
            connections_per_device: 4,
            header_timeout_secs: 30,
            body_timeout_secs: 60,
            sqlite_max_bytes: None,
            trusted_proxies: Vec::new(),
            public_url: None,
            unauthenticated_requests_at_once: 64,
            attachment_quota_bytes_per_device: 4 * 1024 * 1024 * 1024,
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

    /// The abuse limits this config sets.
    pub fn abuse_limits(&self) -> crate::http::abuse::AbuseLimits {
        crate::http::abuse::AbuseLimits {
            enrol_failures_per_address: self.enrol_failures_per_address,
            enrol_failures_total: self.enrol_failures_total,
            enrol_window: std::time::Duration::from_secs(self.enrol_window_secs),
            connections_per_device: self.connections_per_device.max(1),
        }
    }

    /// Opens the configured storage: PostgreSQL when `database` is set, else SQLite in
    /// `data_dir`. Either way the schema is brought up to date.
    pub fn open_storage(&self) -> anyhow::Result<std::sync::Arc<dyn crate::storage::Storage>> {
        use anyhow::Context;
        match &self.database {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                let storage =
                    crate::storage::postgresql::PostgresStorage::connect(url, self.database_connections)
                        .with_context(|| {
                            format!("无法连接数据库 / cannot open the PostgreSQL database {}", redact(url))
                        })?;
                Ok(std::sync::Arc::new(storage))
            }
            Some(other) => anyhow::bail!(
                "不支持的数据库地址 / unsupported database URL {:?}: use postgres://… or leave it unset for SQLite",
                redact(other)
            ),
            None => {
                let storage =
                    crate::storage::sqlite::SqliteStorage::open(&self.data_dir).with_context(|| {
                        format!("打开数据库失败 / cannot open the database in {}", self.data_dir.display())
                    })?;
                if let Some(max) = self.sqlite_max_bytes {
                    storage.limit_size(max)?;
                }
                Ok(std::sync::Arc::new(storage))
            }
        }
    }

    /// Where the data lives, for messages (passwords hidden).
    pub fn describe_storage(&self) -> String {
        match &self.database {
            Some(url) => redact(url),
            None => self.data_dir.display().to_string(),
        }
    }

    /// Reads a TOML config file.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read config file {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))
    }
}

/// Whether a request whose TCP peer is `peer_ip` comes from one of the configured
/// [`Config::trusted_proxies`], so that its forwarding headers may be believed. An IPv4 peer
/// seen as an IPv4-mapped IPv6 address matches its IPv4 entry.
pub fn from_trusted_proxy(config: &Config, peer_ip: IpAddr) -> bool {
    let peer = peer_ip.to_canonical();
    config.trusted_proxies.iter().any(|trusted| trusted.to_canonical() == peer)
}

/// A database URL with its password replaced by `***`, for logs and messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_configured_proxies_are_trusted() {
        let config: Config = toml::from_str("trusted_proxies = [\"127.0.0.1\", \"::1\"]").expect("toml");
        assert!(from_trusted_proxy(&config, IpAddr::from([127, 0, 0, 1])));
        assert!(from_trusted_proxy(&config, "::ffff:127.0.0.1".parse().expect("ip")));
        assert!(from_trusted_proxy(&config, "::1".parse().expect("ip")));
        assert!(!from_trusted_proxy(&config, IpAddr::from([10, 0, 0, 1])));
        assert!(!from_trusted_proxy(&Config::default(), IpAddr::from([127, 0, 0, 1])), "none by default");
    }

    #[test]
    fn passwords_are_hidden_in_messages() {
        assert_eq!(
            redact("postgres://doorstep:s3cret@db:5432/county"),
            "postgres://doorstep:***@db:5432/county"
        );
        assert_eq!(redact("postgres://db/county"), "postgres://db/county");
    }
}
