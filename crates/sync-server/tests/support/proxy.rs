//! A fault-injecting TCP proxy on 127.0.0.1 in front of a real server: delays, a bandwidth
//! limit, connections cut after a chosen number of bytes (truncating a request or a reply
//! frame anywhere, including after the server has acted but before the device hears of it),
//! and partitions. Faults are chosen by the test (from its seed); the proxy counts the bytes
//! it carries and can tell the test when a request has reached the server (to kill the
//! server at that moment).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};

/// What the proxy does to the connections it carries from now on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// Wait this long before passing each chunk on.
    pub delay: Duration,
    /// Pass at most this many bytes per chunk (with `delay`, a bandwidth limit).
    pub chunk: Option<usize>,
    /// Cut each new connection after this many bytes from the device.
    pub cut_up_after: Option<u64>,
    /// Cut each new connection after this many bytes from the server.
    pub cut_down_after: Option<u64>,
    /// Refuse every connection and cut the live ones (no signal in the lift).
    pub partitioned: bool,
}

struct Shared {
    upstream: Mutex<SocketAddr>,
    faults: Mutex<Faults>,
    up: AtomicU64,
    down: AtomicU64,
    trigger: Mutex<Option<(u64, oneshot::Sender<()>)>>,
    /// Bumped on every partition, so live connections learn they are cut.
    generation: watch::Sender<u64>,
}

/// A running proxy; it stops when dropped.
pub struct FaultProxy {
    /// `http://127.0.0.1:PORT`, for a client.
    pub url: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy in front of the server at `upstream` (`http://host:port`).
    pub async fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy port");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let shared = Arc::new(Shared {
            upstream: Mutex::new(parse(upstream)),
            faults: Mutex::new(Faults::default()),
            up: AtomicU64::new(0),
            down: AtomicU64::new(0),
            trigger: Mutex::new(None),
            generation: watch::channel(0).0,
        });
        let accepting = shared.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let shared = accepting.clone();
                tokio::spawn(async move { carry(shared, client).await });
            }
        });
        Self { url, shared, task }
    }

    /// Points the proxy at a restarted server.
    pub fn retarget(&self, upstream: &str) {
        *lock(&self.shared.upstream) = parse(upstream);
    }

    /// Sets the faults for new connections (a partition also cuts the live ones).
    pub fn set(&self, faults: Faults) {
        let partitioned = faults.partitioned;
        *lock(&self.shared.faults) = faults;
        if partitioned {
            self.shared.generation.send_modify(|g| *g += 1);
        }
    }

    /// Bytes carried from devices to the server, and back.
    pub fn bytes(&self) -> (u64, u64) {
        (self.shared.up.load(Ordering::SeqCst), self.shared.down.load(Ordering::SeqCst))
    }

    /// Fires once `more` further bytes from devices have been passed to the server.
    pub fn when_bytes_up(&self, more: u64) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        let at = self.shared.up.load(Ordering::SeqCst) + more;
        *lock(&self.shared.trigger) = Some((at, tx));
        rx
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
        self.shared.generation.send_modify(|g| *g += 1);
    }
}

fn parse(url: &str) -> SocketAddr {
    url.trim_start_matches("http://").parse().expect("upstream address")
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

async fn carry(shared: Arc<Shared>, client: TcpStream) {
    let faults = lock(&shared.faults).clone();
    if faults.partitioned {
        return; // dropped: the device sees the connection reset or closed
    }
    let upstream = *lock(&shared.upstream);
    let Ok(server) = TcpStream::connect(upstream).await else { return };
    let mut cut = shared.generation.subscribe();
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let severed = Arc::new(tokio::sync::Notify::new());
    let up = pump(shared.clone(), client_read, server_write, faults.clone(), true, severed.clone());
    let down = pump(shared.clone(), server_read, client_write, faults, false, severed.clone());
    // Ends when both directions finish, or at once when one is cut or a partition begins:
    // dropping the halves closes both sockets.
    tokio::select! {
        _ = async { tokio::join!(up, down) } => {}
        _ = severed.notified() => {}
        _ = cut.changed() => {}
    }
}

async fn pump(
    shared: Arc<Shared>,
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    faults: Faults,
    upward: bool,
    severed: Arc<tokio::sync::Notify>,
) {
    let limit = if upward { faults.cut_up_after } else { faults.cut_down_after };
    let mut passed = 0u64;
    let mut buf = vec![0u8; faults.chunk.unwrap_or(16 * 1024).max(1)];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if !faults.delay.is_zero() {
            tokio::time::sleep(faults.delay).await;
        }
        let allowed = limit.map_or(n as u64, |l| (l.saturating_sub(passed)).min(n as u64)) as usize;
        if allowed > 0 && to.write_all(&buf[..allowed]).await.is_err() {
            break;
        }
        passed += allowed as u64;
        let counter = if upward { &shared.up } else { &shared.down };
        let total = counter.fetch_add(allowed as u64, Ordering::SeqCst) + allowed as u64;
        if upward {
            let mut trigger = lock(&shared.trigger);
            if trigger.as_ref().is_some_and(|(at, _)| total >= *at)
                && let Some((_, tx)) = trigger.take()
            {
                let _ = tx.send(());
            }
        }
        if allowed < n || limit.is_some_and(|l| passed >= l) {
            // Cut: the rest of the frame never arrives, and the connection is gone.
            severed.notify_one();
            return;
        }
    }
    let _ = to.shutdown().await;
}
