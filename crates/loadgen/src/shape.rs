//! A shaping TCP proxy: one phone's link to the server, on 127.0.0.1. Each connection through
//! it gets a bandwidth limit each way, a one-way latency, and — for a seeded share of
//! connections — a cut after a random number of bytes. It counts the application bytes that
//! enter the link each way (HTTP included; TCP/IP headers and handshakes are not bytes here).
//!
//! The model, kept simple and explicit:
//! - Opening a connection costs one round trip (SYN, SYN-ACK) before the phone's first byte
//!   travels: the proxy waits `2 × latency` before it connects upstream and starts carrying.
//! - Each direction is a serial line: a packet of at most [`PACKET`] bytes leaves when
//!   everything before it has been sent at the line's rate, and arrives `latency` later.
//!   The proxy reads from the sender at once (its queue is unbounded), so the sender never
//!   feels back-pressure; only delivery is shaped.
//! - A cut connection is cut when the bytes that entered the link, both ways together, reach
//!   its cut point: both sockets close at once and whatever is still on the line is lost
//!   (a request half sent, or a reply the server has committed but the phone never hears).
//!
//! Each phone gets its own [`Link`] (its own radio), so bandwidth is not shared between phones.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use doorstep_server::demo::Seeded;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Largest packet the link carries at once (an MTU's worth of payload).
pub const PACKET: usize = 1400;
/// Most connections one link accepts; a phone retrying more than this is stopped.
const MAX_CONNECTIONS: usize = 1000;

/// What a link does to its connections.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Shaping {
    /// Phone → server rate, bits per second; `None`: unlimited.
    pub up_bps: Option<f64>,
    /// Server → phone rate, bits per second; `None`: unlimited.
    pub down_bps: Option<f64>,
    /// One-way latency.
    pub latency: Duration,
    /// Share of connections cut, 0–1.
    pub cut_share: f64,
    /// A cut connection is cut after between 1 and this many bytes (both ways together).
    pub cut_within_bytes: u64,
}

impl Shaping {
    /// No limits, no latency, no cuts: the link only counts.
    pub fn counting() -> Self {
        Self { up_bps: None, down_bps: None, latency: Duration::ZERO, cut_share: 0.0, cut_within_bytes: 1 }
    }
}

/// What went through a link so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Bytes from the phone that entered the link.
    pub up: u64,
    /// Bytes from the server that entered the link.
    pub down: u64,
    /// Connections opened.
    pub connections: u64,
    /// Connections the link cut.
    pub cuts: u64,
}

#[derive(Default)]
struct Counts {
    up: AtomicU64,
    down: AtomicU64,
    connections: AtomicU64,
    cuts: AtomicU64,
}

/// A running link; it stops, with every connection through it, when dropped.
pub struct Link {
    /// `http://127.0.0.1:PORT`, for the phone's client.
    pub url: String,
    counts: Arc<Counts>,
    task: tokio::task::JoinHandle<()>,
}

impl Link {
    /// Opens a link to the server at `upstream` (`http://host:port`); `seed` chooses which
    /// connections are cut and where.
    pub async fn open(upstream: &str, shaping: Shaping, seed: u64) -> std::io::Result<Self> {
        let target: SocketAddr = upstream
            .trim_start_matches("http://")
            .parse()
            .map_err(|_| std::io::Error::other(format!("not an http://host:port address: {upstream}")))?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let counts = Arc::new(Counts::default());
        let task = tokio::spawn(accept(listener, target, shaping, Seeded(seed | 1), counts.clone()));
        Ok(Self { url, counts, task })
    }

    /// The counts so far.
    pub fn traffic(&self) -> Traffic {
        Traffic {
            up: self.counts.up.load(Ordering::SeqCst),
            down: self.counts.down.load(Ordering::SeqCst),
            connections: self.counts.connections.load(Ordering::SeqCst),
            cuts: self.counts.cuts.load(Ordering::SeqCst),
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        // Aborting the accept loop drops its `JoinSet`, which aborts every connection.
        self.task.abort();
    }
}

/// Accepts up to [`MAX_CONNECTIONS`] connections, deciding for each whether and where it is cut.
async fn accept(
    listener: TcpListener,
    target: SocketAddr,
    shaping: Shaping,
    mut rng: Seeded,
    counts: Arc<Counts>,
) {
    let mut connections = JoinSet::new();
    for _ in 0..MAX_CONNECTIONS {
        let Ok((phone, _)) = listener.accept().await else { break };
        counts.connections.fetch_add(1, Ordering::SeqCst);
        let share_per_million = (shaping.cut_share.clamp(0.0, 1.0) * 1_000_000.0).round() as u64;
        let cut_at = (rng.below(1_000_000) < share_per_million)
            .then(|| 1 + rng.below(shaping.cut_within_bytes.max(1)));
        connections.spawn(carry(phone, target, shaping, cut_at, counts.clone()));
        while connections.try_join_next().is_some() {}
    }
    while connections.join_next().await.is_some() {}
}

/// How one direction of a connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ended {
    /// The sender closed, or the receiver went away.
    Closed,
    /// The link cut the connection.
    Cut,
}

/// Carries one connection until both directions close, or until it is cut.
async fn carry(
    phone: TcpStream,
    target: SocketAddr,
    shaping: Shaping,
    cut_at: Option<u64>,
    counts: Arc<Counts>,
) {
    tokio::time::sleep(shaping.latency * 2).await;
    let Ok(server) = TcpStream::connect(target).await else { return };
    let _ = phone.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let entered = AtomicU64::new(0);
    let (phone_read, phone_write) = phone.into_split();
    let (server_read, server_write) = server.into_split();
    let line = |bps, counter| Line { bps, latency: shaping.latency, counter, entered: &entered, cut_at };
    let up = line(shaping.up_bps, &counts.up).carry(phone_read, server_write);
    let down = line(shaping.down_bps, &counts.down).carry(server_read, phone_write);
    tokio::pin!(up, down);
    let (mut up_open, mut down_open) = (true, true);
    while up_open || down_open {
        let ended = tokio::select! {
            ended = &mut up, if up_open => { up_open = false; ended }
            ended = &mut down, if down_open => { down_open = false; ended }
        };
        if ended == Ended::Cut {
            counts.cuts.fetch_add(1, Ordering::SeqCst);
            return; // dropping both directions closes both sockets
        }
    }
}

/// One direction of one connection.
struct Line<'a> {
    bps: Option<f64>,
    latency: Duration,
    /// The link's count for this direction.
    counter: &'a AtomicU64,
    /// Bytes that entered this connection, both directions.
    entered: &'a AtomicU64,
    cut_at: Option<u64>,
}

impl Line<'_> {
    /// Reads packets from `from` as they come and delivers each to `to` when the line says.
    async fn carry(self, mut from: OwnedReadHalf, mut to: OwnedWriteHalf) -> Ended {
        let (tx, mut rx) = mpsc::unbounded_channel::<(Vec<u8>, Instant)>();
        let read = async {
            let mut free_at = Instant::now();
            let mut buf = vec![0u8; PACKET];
            loop {
                let n = match from.read(&mut buf).await {
                    Ok(0) | Err(_) => return Ended::Closed,
                    Ok(n) => n as u64,
                };
                let before = self.entered.fetch_add(n, Ordering::SeqCst);
                if let Some(at) = self.cut_at
                    && before + n >= at
                {
                    self.counter.fetch_add(at.saturating_sub(before), Ordering::SeqCst);
                    return Ended::Cut;
                }
                self.counter.fetch_add(n, Ordering::SeqCst);
                let sent =
                    self.bps.map_or(Duration::ZERO, |bps| Duration::from_secs_f64(n as f64 * 8.0 / bps));
                free_at = free_at.max(Instant::now()) + sent;
                if tx.send((buf[..n as usize].to_vec(), free_at + self.latency)).is_err() {
                    return Ended::Closed;
                }
            }
        };
        let write = async {
            while let Some((packet, at)) = rx.recv().await {
                tokio::time::sleep_until(at).await;
                if to.write_all(&packet).await.is_err() {
                    return;
                }
            }
            let _ = to.shutdown().await;
        };
        tokio::pin!(write);
        let ended = tokio::select! {
            ended = read => ended,
            () = &mut write => return Ended::Closed,
        };
        if ended == Ended::Cut {
            return Ended::Cut;
        }
        drop(tx);
        write.await;
        Ended::Closed
    }
}
