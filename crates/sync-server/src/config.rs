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
    /// Failed enrolment attempts let through per minute, county-wide, once
    /// `enrol_failures_total` is used up in a window: attempts then wait their turn (at most
    /// 30 seconds, else `rate_limited` with a retry-after) instead of being refused, so a
    /// guessing flood is slowed down but a real code still enrols.
    pub enrol_attempts_per_minute_over_limit: u32,
    /// Failed dashboard sign-ins one client address may make per `sign_in_window_secs` before
    /// its sign-ins are refused (429).
    pub sign_in_failures_per_address: u32,
    /// The window over which failed sign-ins per address are counted, in seconds.
    pub sign_in_window_secs: u64,
    /// Passwords hashed at once (argon2 is deliberately slow); hashing runs outside the
    /// storage slots devices sync in.
    pub password_checks_at_once: usize,
    /// Sign-ins that may wait for a password check; past this, sign-ins get 429 (a county-wide
    /// bound on anonymous work).
    pub password_checks_waiting: usize,
    /// Addresses of reverse proxies whose forwarding headers are believed: `X-Forwarded-For`
    /// (the client's address, for rate limits) and `X-Forwarded-Proto` (`Secure` cookies) — the
    /// nginx of DEPLOY.md: `["127.0.0.1"]`. Empty (the default): no such header is believed and
    /// the peer address is the client's.
    pub trusted_proxies: Vec<IpAddr>,
    /// Sync rounds (and manifest or repair requests) one device may make per minute, on
    /// average.
    pub sync_rounds_per_minute: u32,
    /// Sync rounds one device may make in a burst, above the average.
    pub sync_round_burst: u32,
    /// Reply bytes one device may be sent per minute, on average.
    pub sync_bytes_per_minute: u64,
    /// Reply bytes one device may be sent in a burst (a first sync of a large scope).
    pub sync_byte_burst: u64,
    /// SQLite only: the most bytes the database may grow to; past it writes fail cleanly as on
    /// a full disk (a quota below the disk's size). Unset: no cap.
    pub sqlite_max_bytes: Option<u64>,
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
            enrol_attempts_per_minute_over_limit: 60,
            sign_in_failures_per_address: 50,
            sign_in_window_secs: 600,
            password_checks_at_once: 2,
            password_checks_waiting: 32,
            trusted_proxies: Vec::new(),
            sync_rounds_per_minute: 60,
            sync_round_burst: 300,
            sync_bytes_per_minute: 64 * 1024 * 1024,
            sync_byte_burst: 512 * 1024 * 1024,
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
            enrol_attempts_per_minute_over_limit: self.enrol_attempts_per_minute_over_limit.max(1),
            sign_in_failures_per_address: self.sign_in_failures_per_address,
            sign_in_window: std::time::Duration::from_secs(self.sign_in_window_secs),
            password_checks_at_once: self.password_checks_at_once.max(1),
            password_checks_waiting: self.password_checks_waiting,
            trusted_proxies: self.trusted_proxies.clone(),
            sync_rounds_per_minute: self.sync_rounds_per_minute.max(1),
            sync_round_burst: self.sync_round_burst.max(1),
            sync_bytes_per_minute: self.sync_bytes_per_minute.max(1),
            sync_byte_burst: self.sync_byte_burst.max(1),
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

/// Whether `peer` (the address a connection came from) is one of the configured trusted
/// proxies, whose forwarding headers are believed.
pub fn from_trusted_proxy(peer: IpAddr, trusted: &[IpAddr]) -> bool {
    trusted.contains(&normalize(peer))
}

/// An IPv4 address written as IPv6 (`::ffff:a.b.c.d`, as a dual-stack socket reports it) is
/// the IPv4 address.
fn normalize(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    }
}

/// The client's address: the peer, or — when the peer is a trusted proxy — the right-most
/// address of `X-Forwarded-For` that is not itself a trusted proxy (every proxy appends the
/// address it got the request from, so anything left of that may be forged by the client).
/// `forwarded_for` holds the header's values in order.
pub fn client_address<'a>(
    peer: IpAddr,
    forwarded_for: impl DoubleEndedIterator<Item = &'a str>,
    trusted: &[IpAddr],
) -> IpAddr {
    let peer = normalize(peer);
    if !from_trusted_proxy(peer, trusted) {
        return peer;
    }
    let mut client = peer;
    for value in forwarded_for.rev() {
        for hop in value.rsplit(',') {
            let hop = hop.trim().trim_start_matches('[');
            let parsed = hop
                .parse::<IpAddr>()
                .ok()
                .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
                .or_else(|| hop.split(']').next().and_then(|h| h.parse::<IpAddr>().ok()));
            // A hop that is not an address: stop at the last one a trusted proxy vouched for.
            let Some(address) = parsed.map(normalize) else { return client };
            client = address;
            if !trusted.contains(&address) {
                return client;
            }
        }
    }
    client
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
    fn the_client_is_the_right_most_untrusted_forwarded_address_from_a_trusted_proxy() {
        let proxy: IpAddr = "127.0.0.1".parse().expect("ip");
        let trusted = [proxy, "10.1.1.1".parse().expect("ip")];
        let phone: IpAddr = "10.0.0.7".parse().expect("ip");
        assert_eq!(client_address(proxy, ["1.2.3.4, 10.0.0.7"].into_iter(), &trusted), phone);
        assert_eq!(client_address(proxy, ["1.2.3.4", "10.0.0.7, 10.1.1.1"].into_iter(), &trusted), phone);
        assert_eq!(client_address(proxy, std::iter::empty(), &trusted), proxy, "no header");
        assert_eq!(client_address(proxy, ["garbage"].into_iter(), &trusted), proxy);
        let stranger: IpAddr = "192.0.2.1".parse().expect("ip");
        assert_eq!(client_address(stranger, ["10.0.0.7"].into_iter(), &trusted), stranger, "not believed");
        assert_eq!(client_address(proxy, ["10.0.0.7"].into_iter(), &[]), proxy, "nothing trusted");
        assert!(from_trusted_proxy("::ffff:127.0.0.1".parse().expect("ip"), &trusted));
    }

    #[test]
    fn only_configured_proxies_are_trusted() {
        let config: Config = toml::from_str("trusted_proxies = [\"127.0.0.1\", \"::1\"]").expect("toml");
        let trusted = &config.trusted_proxies;
        assert!(from_trusted_proxy(IpAddr::from([127, 0, 0, 1]), trusted));
        assert!(from_trusted_proxy("::ffff:127.0.0.1".parse().expect("ip"), trusted));
        assert!(from_trusted_proxy("::1".parse().expect("ip"), trusted));
        assert!(!from_trusted_proxy(IpAddr::from([10, 0, 0, 1]), trusted));
        assert!(
            !from_trusted_proxy(IpAddr::from([127, 0, 0, 1]), &Config::default().trusted_proxies),
            "none by default"
        );
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
