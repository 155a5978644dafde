//! The Rust side of the binding-overhead figures in `docs/BENCHMARKS.md`: the same operations
//! the Python benchmark (`crates/ffi/bench/bench_bindings.py`) times through the bindings, done
//! directly on `doorstep-core`'s `Replica`, on the same files and the same visits.
//!
//! The Python benchmark writes the fixture (a phone replica of 1,000 documents that synced from
//! a real server, its key, the listed grid and a plan of visits) into a directory and calls
//! this example's subcommands between its own measurements, so both sides run under the same
//! load. Run alone, it reads that directory and prints every Rust-side median, including the
//! comparisons that isolate SQLCipher (a plaintext export of the same file) and the commit's
//! fsync (`synchronous=NORMAL`):
//!
//! `cargo run --release -p doorstep-ffi --example binding_overhead [-- <dir>]`
//! (`<dir>` defaults to `target/bench-bindings`).
//!
//! Subcommands (each prints `name=value` lines):
//! - `record <dir> <db> enc|plain full|normal`: records the plan's visits on `<db>` (a copy:
//!   it is modified), one `record_visit` timed at a time. `<db>` is relative to `<dir>` or
//!   absolute (the benchmark also uses a copy on tmpfs).
//! - `open <dir> <db> enc|plain <n>`: opens the replica and lists the grid, `<n>` times.
//! - `open-only <dir> <db> enc|plain <n>`: opens the replica `<n>` times, without listing.
//! - `open-once <dir> <db> enc|plain`: the same once, with the process's peak RSS (`VmHWM`).
//! - `export-plain <dir> <db> <out>`: writes an unencrypted copy of an encrypted replica.
//! - `doc-bytes <dir> <db>`: the compressed size of every document (`save_document`).

use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use doorstep_core::ids::{GridId, HouseholdId};
use doorstep_core::model::{NewVisit, VisitKind};
use doorstep_core::store::{Durability, Replica, ReplicaOptions};
use doorstep_core::time::Timestamp;

type Result<T> = std::result::Result<T, Box<dyn Error>>;

const DEFAULT_DIR: &str = "target/bench-bindings";
/// In-process repetitions of open + first list.
const OPEN_RUNS: usize = 30;
/// Fresh processes that each open the replica once.
const FRESH_RUNS: usize = 7;
/// Turns each variant of the full report takes.
const REPEATS: usize = 3;

/// Whether a replica file is encrypted with the fixture's key.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cipher {
    Encrypted,
    Plain,
}

/// What the Python benchmark wrote: `fixture.txt` (`key=`, `grid=`, `replica=`, `plan=`) and the
/// plan of visits (`household \t at_ms \t kind \t needs \t notes` per line).
struct Fixture {
    dir: PathBuf,
    key: Vec<u8>,
    grid: GridId,
    replica: PathBuf,
    plan: Vec<(HouseholdId, NewVisit)>,
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        [] => report(&Fixture::load(Path::new(DEFAULT_DIR))?),
        [dir] => report(&Fixture::load(Path::new(dir))?),
        ["record", dir, db, cipher, durability] => {
            let fixture = Fixture::load(Path::new(dir))?;
            let samples =
                record(&fixture, &fixture.dir.join(db), cipher.parse()?, parse_durability(durability)?)?;
            print_stats("record_visit", &samples);
            Ok(())
        }
        ["open", dir, db, cipher, runs] => {
            let fixture = Fixture::load(Path::new(dir))?;
            let (open, list) =
                open_repeatedly(&fixture, &fixture.dir.join(db), cipher.parse()?, runs.parse()?)?;
            print_stats("open", &open);
            print_stats("list", &list);
            Ok(())
        }
        ["open-only", dir, db, cipher, runs] => {
            let fixture = Fixture::load(Path::new(dir))?;
            let (path, cipher) = (fixture.dir.join(db), cipher.parse()?);
            let mut samples = Vec::new();
            for _ in 0..runs.parse::<usize>()? {
                let start = Instant::now();
                let replica = open_replica(&fixture, &path, cipher, Durability::Full)?;
                samples.push(start.elapsed());
                drop(replica);
            }
            print_stats("open", &samples);
            Ok(())
        }
        ["open-once", dir, db, cipher] => {
            let fixture = Fixture::load(Path::new(dir))?;
            let before = peak_rss_kb()?;
            let (open, list, rows) = open_once(&fixture, &fixture.dir.join(db), cipher.parse()?)?;
            println!("open_ms={:.3}", ms(open));
            println!("list_ms={:.3}", ms(list));
            println!("rows={rows}");
            println!("rss_before_kb={before}");
            println!("rss_kb={}", peak_rss_kb()?);
            Ok(())
        }
        ["export-plain", dir, db, out] => {
            let fixture = Fixture::load(Path::new(dir))?;
            export_plain(&fixture, &fixture.dir.join(db), &fixture.dir.join(out))
        }
        ["doc-bytes", dir, db] => {
            let fixture = Fixture::load(Path::new(dir))?;
            let mut replica =
                open_replica(&fixture, &fixture.dir.join(db), Cipher::Encrypted, Durability::Full)?;
            let mut total = 0;
            let documents = replica.documents()?;
            for (id, _) in &documents {
                total += replica.save_document(*id)?.len();
            }
            println!("documents={}", documents.len());
            println!("saved_document_bytes={total}");
            println!("stored_document_bytes={}", replica.stored_document_bytes()?);
            Ok(())
        }
        _ => Err("usage: binding_overhead [<dir>] | record <dir> <db> enc|plain full|normal | \
                  open <dir> <db> enc|plain <n> | open-only <dir> <db> enc|plain <n> | \
                  open-once <dir> <db> enc|plain | \
                  export-plain <dir> <db> <out> | doc-bytes <dir> <db>"
            .into()),
    }
}

impl std::str::FromStr for Cipher {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "enc" => Ok(Cipher::Encrypted),
            "plain" => Ok(Cipher::Plain),
            _ => Err(format!("expected enc or plain, got {s:?}")),
        }
    }
}

fn parse_durability(s: &str) -> std::result::Result<Durability, String> {
    match s {
        "full" => Ok(Durability::Full),
        "normal" => Ok(Durability::Normal),
        _ => Err(format!("expected full or normal, got {s:?}")),
    }
}

impl Fixture {
    fn load(dir: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(dir.join("fixture.txt")).map_err(|e| {
            format!("{}/fixture.txt: {e} (run crates/ffi/bench/bench_bindings.py first)", dir.display())
        })?;
        let field = |name: &str| -> Result<&str> {
            text.lines()
                .find_map(|line| line.strip_prefix(name).and_then(|rest| rest.strip_prefix('=')))
                .ok_or_else(|| format!("fixture.txt has no {name}=").into())
        };
        let key = unhex(field("key")?)?;
        let grid: GridId = field("grid")?.parse().map_err(|_| "fixture.txt: bad grid id")?;
        let replica = dir.join(field("replica")?);
        let plan_text = std::fs::read_to_string(dir.join(field("plan")?))?;
        let mut plan = Vec::new();
        for line in plan_text.lines() {
            let parts: Vec<&str> = line.splitn(5, '\t').collect();
            let [household, at_ms, kind, needs, notes] = parts.as_slice() else {
                return Err(format!("bad plan line {line:?}").into());
            };
            let household: HouseholdId = household.parse().map_err(|_| "plan: bad household id")?;
            let visit = NewVisit {
                at: Timestamp(at_ms.parse()?),
                kind: VisitKind::from_stored(kind),
                notes: (*notes).to_owned(),
                needs: needs.split(',').filter(|n| !n.is_empty()).map(str::to_owned).collect(),
            };
            plan.push((household, visit));
        }
        Ok(Self { dir: dir.to_path_buf(), key, grid, replica, plan })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Result<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return Err("key: odd number of hex digits".into());
    }
    (0..s.len()).step_by(2).map(|i| Ok(u8::from_str_radix(&s[i..i + 2], 16)?)).collect()
}

fn open_replica(fixture: &Fixture, path: &Path, cipher: Cipher, durability: Durability) -> Result<Replica> {
    let options = ReplicaOptions { durability, ..ReplicaOptions::default() };
    Ok(match cipher {
        Cipher::Encrypted => Replica::open_encrypted(path, &fixture.key, options)?,
        Cipher::Plain => Replica::open_with(path, options)?,
    })
}

/// Records every visit of the plan, timing each `record_visit` alone.
fn record(fixture: &Fixture, path: &Path, cipher: Cipher, durability: Durability) -> Result<Vec<Duration>> {
    let mut replica = open_replica(fixture, path, cipher, durability)?;
    let mut samples = Vec::with_capacity(fixture.plan.len());
    for (household, visit) in &fixture.plan {
        let start = Instant::now();
        replica.record_visit(*household, visit)?;
        samples.push(start.elapsed());
    }
    Ok(samples)
}

/// Opens the replica and runs the first list query; returns both times and the rows listed.
fn open_once(fixture: &Fixture, path: &Path, cipher: Cipher) -> Result<(Duration, Duration, usize)> {
    let start = Instant::now();
    let replica = open_replica(fixture, path, cipher, Durability::Full)?;
    let opened = start.elapsed();
    let rows = replica.households_in_grid(fixture.grid)?.len();
    let listed = start.elapsed() - opened;
    Ok((opened, listed, rows))
}

fn open_repeatedly(
    fixture: &Fixture,
    path: &Path,
    cipher: Cipher,
    runs: usize,
) -> Result<(Vec<Duration>, Vec<Duration>)> {
    let (mut open, mut list) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
    for _ in 0..runs {
        let (o, l, _) = open_once(fixture, path, cipher)?;
        open.push(o);
        list.push(l);
    }
    Ok((open, list))
}

/// `sqlcipher_export` into a file without a key: the same pages' content, unencrypted.
fn export_plain(fixture: &Fixture, encrypted: &Path, out: &Path) -> Result<()> {
    let _ = std::fs::remove_file(out);
    let conn = rusqlite::Connection::open(encrypted)?;
    conn.execute_batch(&format!("PRAGMA key = \"x'{}'\";", hex(&fixture.key)))?;
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let out_text = out.to_str().ok_or("output path is not UTF-8")?;
    conn.execute("ATTACH DATABASE ?1 AS plaintext KEY ''", [out_text])?;
    conn.query_row("SELECT sqlcipher_export('plaintext')", [], |_| Ok(()))?;
    conn.execute_batch(&format!("PRAGMA plaintext.user_version = {version}; DETACH DATABASE plaintext;"))?;
    Ok(())
}

/// Copies a replica file (and its WAL, if one was left) to a fresh name in the fixture folder.
fn fresh_copy(fixture: &Fixture, from: &Path, name: &str) -> Result<PathBuf> {
    let to = fixture.dir.join(name);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", to.display()));
    }
    std::fs::copy(from, &to)?;
    let wal = PathBuf::from(format!("{}-wal", from.display()));
    if wal.exists() {
        std::fs::copy(&wal, format!("{}-wal", to.display()))?;
    }
    Ok(to)
}

/// This process's peak resident set (`VmHWM`), in KiB.
fn peak_rss_kb() -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).ok_or("no VmHWM in /proc/self/status")?;
    Ok(line.split_whitespace().nth(1).ok_or("bad VmHWM line")?.parse()?)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn median_ms(samples: &[Duration]) -> f64 {
    quantile_ms(samples, 0.5)
}

fn quantile_ms(samples: &[Duration], q: f64) -> f64 {
    let mut sorted: Vec<Duration> = samples.to_vec();
    sorted.sort();
    if sorted.is_empty() {
        return f64::NAN;
    }
    // Nearest rank, like Python's statistics.median for odd counts; the mean of the two middle
    // samples for even counts.
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    (ms(sorted[lo]) + ms(sorted[hi])) / 2.0
}

fn print_stats(name: &str, samples: &[Duration]) {
    println!("{name}_n={}", samples.len());
    println!("{name}_median_ms={:.3}", median_ms(samples));
    println!("{name}_p90_ms={:.3}", quantile_ms(samples, 0.9));
    let mean = samples.iter().map(|d| ms(*d)).sum::<f64>() / samples.len().max(1) as f64;
    println!("{name}_mean_ms={mean:.3}");
}

/// Runs `open-once` in a fresh process of this example `FRESH_RUNS` times.
fn fresh_opens(fixture: &Fixture, db: &str, cipher: &str) -> Result<Vec<(f64, f64, u64, u64)>> {
    let exe = std::env::current_exe()?;
    let dir = fixture.dir.to_str().ok_or("fixture path is not UTF-8")?;
    let mut runs = Vec::new();
    for _ in 0..FRESH_RUNS {
        let out = Command::new(&exe).args(["open-once", dir, db, cipher]).output()?;
        if !out.status.success() {
            return Err(format!("open-once failed: {}", String::from_utf8_lossy(&out.stderr)).into());
        }
        let text = String::from_utf8(out.stdout)?;
        let value = |name: &str| -> Result<f64> {
            Ok(text
                .lines()
                .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix('=')))
                .ok_or_else(|| format!("open-once printed no {name}"))?
                .parse()?)
        };
        runs.push((
            value("open_ms")?,
            value("list_ms")?,
            value("rss_kb")? as u64,
            value("rss_before_kb")? as u64,
        ));
    }
    Ok(runs)
}

fn median_f64(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 { f64::NAN } else { (values[(n - 1) / 2] + values[n / 2]) / 2.0 }
}

/// Every Rust-side figure, each on a fresh copy of the fixture's replica. The variants take
/// turns, `REPEATS` times, so a change in the machine's load or disk affects them alike; each
/// cell is the median of the repeats' medians, with their range.
fn report(fixture: &Fixture) -> Result<()> {
    let plain = fixture.dir.join("rust-plain.db");
    let replica_name = fixture.replica.file_name().and_then(|n| n.to_str()).ok_or("bad replica name")?;
    export_plain(fixture, &fixture.replica, &plain)?;
    let records = [
        (
            Cipher::Encrypted,
            Durability::Full,
            "record a visit, encrypted, synchronous=FULL (as the bindings)",
        ),
        (Cipher::Encrypted, Durability::Normal, "record a visit, encrypted, synchronous=NORMAL"),
        (Cipher::Plain, Durability::Full, "record a visit, unencrypted, synchronous=FULL"),
        (Cipher::Plain, Durability::Normal, "record a visit, unencrypted, synchronous=NORMAL"),
    ];
    let stores =
        [(Cipher::Encrypted, replica_name, "encrypted"), (Cipher::Plain, "rust-plain.db", "unencrypted")];
    let mut record_medians = vec![Vec::new(); records.len()];
    let (mut open_medians, mut list_medians) =
        (vec![Vec::new(); stores.len()], vec![Vec::new(); stores.len()]);
    for _ in 0..REPEATS {
        for (i, (cipher, durability, _)) in records.iter().enumerate() {
            let source = if *cipher == Cipher::Encrypted { &fixture.replica } else { &plain };
            let copy = fresh_copy(fixture, source, "rust-record.db")?;
            record_medians[i].push(median_ms(&record(fixture, &copy, *cipher, *durability)?));
        }
        for (i, (cipher, db, _)) in stores.iter().enumerate() {
            let (open, list) = open_repeatedly(fixture, &fixture.dir.join(db), *cipher, OPEN_RUNS)?;
            open_medians[i].push(median_ms(&open));
            list_medians[i].push(median_ms(&list));
        }
    }
    println!("# binding_overhead: Rust side, fixture {}", fixture.dir.display());
    println!("| figure | median of {REPEATS} medians | range |");
    println!("|---|---|---|");
    let row = |label: &str, medians: &mut Vec<f64>| {
        let (lo, hi) = (
            medians.iter().copied().fold(f64::INFINITY, f64::min),
            medians.iter().copied().fold(0.0, f64::max),
        );
        println!("| {label} | {:.3} ms | {lo:.3}–{hi:.3} ms |", median_f64(medians));
    };
    for ((_, _, label), medians) in records.iter().zip(&mut record_medians) {
        row(&format!("{label} ({} visits)", fixture.plan.len()), medians);
    }
    for (i, (cipher, db, label)) in stores.iter().enumerate() {
        row(&format!("open, {label}, in process (median of {OPEN_RUNS})"), &mut open_medians[i]);
        row(&format!("first households_in_grid, {label}, in process"), &mut list_medians[i]);
        let runs = fresh_opens(fixture, db, if *cipher == Cipher::Encrypted { "enc" } else { "plain" })?;
        let mut total: Vec<f64> = runs.iter().map(|r| r.0 + r.1).collect();
        let mut rss: Vec<f64> = runs.iter().map(|r| r.2 as f64 / 1024.0).collect();
        let mut before: Vec<f64> = runs.iter().map(|r| r.3 as f64 / 1024.0).collect();
        let first = runs.first().map(|r| r.0 + r.1).unwrap_or(f64::NAN);
        println!(
            "| open + first list, {label}, fresh process ({FRESH_RUNS} processes; first {first:.2} ms) | {:.3} ms | |",
            median_f64(&mut total)
        );
        println!(
            "| peak RSS of that process (VmHWM; {:.1} MB before opening) | {:.1} MB | |",
            median_f64(&mut before),
            median_f64(&mut rss)
        );
    }
    for suffix in ["", "-wal", "-shm"] {
        for name in ["rust-record.db", "rust-plain.db"] {
            let _ = std::fs::remove_file(fixture.dir.join(format!("{name}{suffix}")));
        }
    }
    Ok(())
}
