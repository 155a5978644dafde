//! Attachment figures: a grid worker's day with 20 photos of 300 KB, synced over a shaped
//! 2G-like link, records first and photos after.
//!
//! ```text
//! cargo run -p doorstep-server --example attachment_figures                       # 20 photos
//! cargo run -p doorstep-server --example attachment_figures -- --photos 4          # quicker
//! ```
//!
//! What it does:
//! - starts `doorstep_server::serve` in-process on 127.0.0.1:0 over SQLite in a temporary
//!   directory, with one grid, its worker and its supervisor;
//! - the worker's phone registers 20 households the day before (over an unshaped link), then,
//!   offline, records 20 visits with one 300 KB photo each (incompressible bytes, as JPEG is);
//! - puts a shaping TCP proxy between the phone and the server: 50 kbit/s up, 200 kbit/s down,
//!   200 ms one-way latency each way (roughly GPRS/EDGE in a stairwell), counting application
//!   bytes both ways;
//! - times `Client::sync` (records) through it, then checks that the supervisor, on a good
//!   link, sees every visit at once with its photo pending; then times
//!   `Client::transfer_attachments` (32 KiB chunks) through it, noting when each photo becomes
//!   available on the server.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use doorstep_client::{Client, Direction, TransferObserver, TransferOptions};
use doorstep_core::ids::MemberId;
use doorstep_core::model::{
    Address, AttachmentState, ContentHash, NewAttachment, NewHousehold, NewResident, NewVisit, Sex, VisitKind,
};
use doorstep_core::store::Replica;
use doorstep_core::time::Timestamp;
use doorstep_server::config::Config;
use doorstep_server::scope::Role;
use doorstep_server::storage::Storage;
use doorstep_server::storage::sqlite::SqliteStorage;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Uplink rate, bits per second.
const UP_BPS: f64 = 50_000.0;
/// Downlink rate, bits per second.
const DOWN_BPS: f64 = 200_000.0;
/// One-way latency.
const LATENCY: Duration = Duration::from_millis(200);
/// Size of each photo.
const PHOTO_BYTES: usize = 300 * 1024;

/// Application bytes through the proxy.
#[derive(Default)]
struct Counter {
    up: AtomicU64,
    down: AtomicU64,
}

impl Counter {
    fn take(&self) -> (u64, u64) {
        (self.up.swap(0, Ordering::SeqCst), self.down.swap(0, Ordering::SeqCst))
    }
}

/// A proxy to `target` that delivers each direction at its rate, after the latency.
async fn shaping_proxy(target: std::net::SocketAddr, counter: Arc<Counter>) -> Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let Ok(outbound) = TcpStream::connect(target).await else { continue };
            let _ = inbound.set_nodelay(true);
            let _ = outbound.set_nodelay(true);
            let (ir, iw) = inbound.into_split();
            let (or, ow) = outbound.into_split();
            let (c1, c2) = (counter.clone(), counter.clone());
            tokio::spawn(async move {
                shaped(ir, ow, UP_BPS, move |n| c1.up.fetch_add(n, Ordering::SeqCst)).await
            });
            tokio::spawn(async move {
                shaped(or, iw, DOWN_BPS, move |n| c2.down.fetch_add(n, Ordering::SeqCst)).await
            });
        }
    });
    Ok(format!("http://{addr}"))
}

/// Forwards one direction: each packet (≤ 1,400 bytes) leaves when the link has serialised
/// everything before it at `bps`, and arrives `LATENCY` later.
async fn shaped(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    bps: f64,
    count: impl Fn(u64) -> u64 + Send + 'static,
) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Vec<u8>, tokio::time::Instant)>();
    let writer = tokio::spawn(async move {
        while let Some((packet, at)) = rx.recv().await {
            tokio::time::sleep_until(at).await;
            if to.write_all(&packet).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    });
    let mut free_at = tokio::time::Instant::now();
    let mut buf = vec![0u8; 1400];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        count(n as u64);
        let now = tokio::time::Instant::now();
        free_at = free_at.max(now) + Duration::from_secs_f64(n as f64 * 8.0 / bps);
        if tx.send((buf[..n].to_vec(), free_at + LATENCY)).is_err() {
            break;
        }
    }
    drop(tx);
    let _ = writer.await;
}

fn photo(seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..PHOTO_BYTES)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

async fn enrolled(
    storage: &dyn Storage,
    url: &str,
    dir: &std::path::Path,
    name: &str,
    member: MemberId,
) -> Result<Replica> {
    let mut replica = Replica::open(dir.join(format!("{name}.db")))?;
    let code = doorstep_server::auth::new_enrolment_code().map_err(|e| anyhow!("randomness: {e}"))?;
    let hash = doorstep_server::auth::hash_secret(&doorstep_server::auth::normalize_code(&code));
    let now = doorstep_server::http::now();
    if !storage.create_enrolment_code(member, &hash, now, now.plus_hours(1))? {
        bail!("no such member");
    }
    Client::new(url).enrol(&mut replica, &code, name).await?;
    Ok(replica)
}

/// Notes when each upload completes.
struct Completions {
    start: Instant,
    done: Vec<f64>,
}

impl TransferObserver for Completions {
    fn progress(&mut self, _hash: &ContentHash, direction: Direction, done: u64, total: u64) {
        if direction == Direction::Upload && done == total {
            self.done.push(self.start.elapsed().as_secs_f64());
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let photos: usize = match args.iter().position(|a| a == "--photos") {
        Some(i) => args.get(i + 1).ok_or_else(|| anyhow!("--photos N"))?.parse()?,
        None => 20,
    };
    let work = tempfile::tempdir()?;
    let storage = Arc::new(SqliteStorage::open(work.path())?);
    let grid = storage.create_grid("幸福社区第一网格", "幸福社区", "城关街道")?;
    let now = doorstep_server::http::now();
    let worker = storage.create_member("王芳", Role::GridWorker, None, now)?;
    let boss = storage.create_member("李主任", Role::Supervisor, None, now)?;
    storage.set_member_grid(worker, grid, true)?;
    storage.set_member_grid(boss, grid, true)?;

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let server_addr = listener.local_addr()?;
    let config = Config { data_dir: work.path().to_path_buf(), ..Config::default() };
    let server_storage: Arc<dyn Storage> = storage.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        doorstep_server::serve(&config, server_storage, listener, async {
            let _ = stopped.await;
        })
        .await
    });
    let url = format!("http://{server_addr}");
    let counter = Arc::new(Counter::default());
    let shaped_url = shaping_proxy(server_addr, counter.clone()).await?;

    let devices = tempfile::tempdir()?;
    let mut phone = enrolled(storage.as_ref(), &url, devices.path(), "phone", worker).await?;
    let mut office = enrolled(storage.as_ref(), &url, devices.path(), "office", boss).await?;
    let day = Timestamp(1_780_000_000_000);
    let mut homes = Vec::new();
    for i in 0..photos {
        let new = NewHousehold {
            address: Address {
                community: "幸福社区".into(),
                grid,
                building: format!("{}栋", i / 10 + 1),
                unit: "1单元".into(),
                room: format!("{}", 101 + i),
            },
            residents: vec![NewResident {
                name: format!("住户{i}"),
                sex: Sex::Female,
                birth_year: Some(1950),
                phone: String::new(),
                tags: vec![],
            }],
            notes: String::new(),
        };
        homes.push(phone.create_household(&new, day)?);
    }
    Client::new(&url).sync(&mut phone).await?;
    Client::new(&url).sync(&mut office).await?;

    // The day, offline: a visit and a photo at every door.
    let mut photo_bytes = 0u64;
    for (i, home) in homes.iter().enumerate() {
        let at = day.plus_hours(24 + i as u32 / 4);
        let visit =
            NewVisit {
                at, kind: VisitKind::SafetyCheck, notes: "楼道漏水，已拍照".into(), needs: vec![]
            };
        let vid = phone.record_visit(*home, &visit)?;
        let bytes = photo(i as u64 + 1);
        photo_bytes += bytes.len() as u64;
        phone.attach_to_visit(
            *home,
            vid,
            &NewAttachment { media_type: "image/jpeg".into(), name: format!("{i}.jpg"), bytes },
            at,
        )?;
    }

    // Evening, on 2G: records first.
    counter.take();
    let start = Instant::now();
    let records = Client::new(&shaped_url).sync(&mut phone).await?;
    let records_s = start.elapsed().as_secs_f64();
    let (records_up, records_down) = counter.take();
    Client::new(&url).sync(&mut office).await?;
    let pending = homes
        .iter()
        .flat_map(|h| office.attachments_of((*h).into()).unwrap_or_default())
        .filter(|a| a.state == AttachmentState::RemoteOnly)
        .count();
    if pending != photos {
        bail!("the office should see {photos} pending photos, sees {pending}");
    }

    // Then the photos.
    let mut completions = Completions { start, done: Vec::new() };
    let mut access = &mut phone;
    let sent = Client::new(&shaped_url)
        .transfer_attachments(&mut access, &TransferOptions::default(), &mut completions)
        .await?;
    let all_s = start.elapsed().as_secs_f64();
    let (photos_up, photos_down) = counter.take();
    if sent.uploaded.len() != photos {
        bail!("uploaded {} of {photos} photos: {:?}", sent.uploaded.len(), sent.failed);
    }
    let _ = stop.send(());
    let _ = server.await;

    let ideal_s = photo_bytes as f64 * 8.0 / UP_BPS;
    let first = completions.done.first().copied().unwrap_or(all_s);
    println!(
        "| link | {} kbit/s up, {} kbit/s down, {} ms one-way latency |",
        UP_BPS / 1000.0,
        DOWN_BPS / 1000.0,
        LATENCY.as_millis()
    );
    println!("|---|---|");
    println!(
        "| day's work | {photos} visits, {photos} photos of {} KB ({photo_bytes} bytes) |",
        PHOTO_BYTES / 1024
    );
    println!(
        "| records: time until the server holds all visits (then visible to the supervisor, photos pending) | {records_s:.1} s, {} round trips |",
        records.round_trips
    );
    println!("| records: wire bytes up / down | {records_up} / {records_down} |");
    println!("| first photo available on the server | {first:.1} s after the sync began |");
    println!("| all photos available | {all_s:.1} s ({:.1} min) |", all_s / 60.0);
    println!(
        "| photos: wire bytes up / down | {photos_up} / {photos_down} ({:.3} × the photo bytes up) |",
        photos_up as f64 / photo_bytes as f64
    );
    println!(
        "| photos: time vs the link's floor (photo bytes at {} kbit/s = {ideal_s:.0} s) | {:.2} × |",
        UP_BPS / 1000.0,
        (all_s - records_s) / ideal_s
    );
    Ok(())
}
