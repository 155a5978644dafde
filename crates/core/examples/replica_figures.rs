//! Replica figures that criterion cannot give, for `docs/BENCHMARKS.md`:
//!
//! 1. Peak RSS (`VmHWM`) and time of opening a replica of 1,000 documents (800 households with
//!    12 visits each, 200 requests) and running the first list query, each in a fresh process:
//!    the fixture is built by one child process (`--build`) and opened by others (`--open`),
//!    so building does not count towards the open's memory.
//! 2. Where `record_visit`'s time goes: loading the household, reading it whole, the commit.
//! 3. Bytes on disk per visit: one household, 365 visits; the Automerge change bytes, the
//!    replica's stored document bytes and the SQLite file size (checkpointed), before and
//!    after `compact_all()`, and where the file's bytes go.
//!
//! Run: `cargo run --release -p doorstep-core --example replica_figures`

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use doorstep_core::ids::GridId;
use doorstep_core::store::{Durability, Replica, ReplicaOptions};
use doorstep_core::time::Timestamp;

#[path = "../benches/support/mod.rs"]
mod support;

use support::{Rng, Spec, T0, build_replica, new_visit};

/// Fresh processes that each open the fixture once.
const OPEN_RUNS: usize = 7;
/// Samples of each step of the record_visit breakdown.
const BREAKDOWN_RUNS: usize = 200;
/// Visits recorded on the household of the bytes-per-visit figure: one a day for a year.
const VISITS: usize = 365;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [mode, path] if mode == "--build" => build(Path::new(path)),
        [mode, path, grid] if mode == "--open" => open(Path::new(path), grid),
        [] => {
            let dir = tempfile::tempdir().expect("temporary directory");
            let device = dir.path().join("device.sqlite3");
            let grid = open_figures(&device);
            visit_breakdown(&device, grid);
            bytes_per_visit(dir.path());
        }
        _ => {
            eprintln!("usage: replica_figures [--build <path> | --open <path> <grid>]");
            std::process::exit(2);
        }
    }
}

/// Child process: builds the 1,000-document fixture and prints the listed grid's id.
fn build(path: &Path) {
    let spec = Spec { grids: vec![500, 300], visits_each: 12, requests: 200 };
    let fixture = build_replica(path, &spec, 1_000);
    println!("{}", fixture.grids[0]);
}

/// Child process: opens the replica, lists the grid, prints `open_us list_us rows hwm_kb start_hwm_kb`.
fn open(path: &Path, grid: &str) {
    let start_hwm = status_kb("VmHWM");
    let grid: GridId = grid.parse().expect("grid id from the parent");
    let started = Instant::now();
    let replica = Replica::open(path).expect("replica opens");
    let opened = started.elapsed();
    let rows = replica.households_in_grid(grid).expect("grid is listed").len();
    let listed = started.elapsed() - opened;
    println!("{} {} {rows} {} {start_hwm}", opened.as_micros(), listed.as_micros(), status_kb("VmHWM"));
}

/// A `kB` field of `/proc/self/status`.
fn status_kb(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status (Linux)");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("field in /proc/self/status")
}

fn run_self(args: &[&str]) -> String {
    let exe = std::env::current_exe().expect("path of this program");
    let out = Command::new(exe).args(args).output().expect("child process runs");
    assert!(out.status.success(), "child failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("child prints text")
}

/// Builds the 1,000-document fixture in a child, opens it in fresh children, prints the
/// figures and returns the listed grid.
fn open_figures(path: &Path) -> GridId {
    let path_arg = path.to_str().expect("temporary path is UTF-8");
    let started = Instant::now();
    let grid = run_self(&["--build", path_arg]).trim().to_owned();
    println!("== open a replica of 1,000 documents (800 households x 12 visits, 200 requests)");
    println!("fixture built in {:.1} s; file {} KB", started.elapsed().as_secs_f64(), file_len(path) / 1024);
    let mut runs = Vec::new();
    for _ in 0..OPEN_RUNS {
        let line = run_self(&["--open", path_arg, &grid]);
        let fields: Vec<u64> =
            line.split_whitespace().map(|f| f.parse().expect("numbers from the child")).collect();
        let [open_us, list_us, rows, hwm_kb, start_hwm_kb] = fields[..] else {
            panic!("unexpected child output {line:?}");
        };
        assert_eq!(rows, 500, "the listed grid has 500 households");
        runs.push((open_us + list_us, open_us, list_us, hwm_kb, start_hwm_kb));
    }
    let first = runs[0];
    runs.sort_unstable();
    let median = runs[runs.len() / 2];
    let max_hwm = runs.iter().map(|r| r.3).max().unwrap_or_default();
    println!(
        "first run: open {:.2} ms + first list {:.2} ms = {:.2} ms, peak RSS {:.1} MB",
        ms(first.1),
        ms(first.2),
        ms(first.0),
        mb(first.3)
    );
    println!(
        "median of {OPEN_RUNS} fresh processes: open {:.2} ms + first list {:.2} ms = {:.2} ms",
        ms(median.1),
        ms(median.2),
        ms(median.0)
    );
    println!(
        "peak RSS (VmHWM), worst of {OPEN_RUNS}: {:.1} MB (process before opening: {:.1} MB)",
        mb(max_hwm),
        mb(median.4)
    );
    grid.parse().expect("grid id from the child")
}

/// Where a visit's time goes on the 1,000-document fixture, with a one-document cache so that
/// hits and misses are certain: loading a household from SQLite, reading it whole (what the
/// index update does after every write), and recording a visit on a loaded or unloaded one.
fn visit_breakdown(path: &Path, grid: GridId) {
    println!("\n== where record_visit's time goes (households of 12 visits, medians of {BREAKDOWN_RUNS})");
    let households: Vec<_> = Replica::open(path)
        .expect("replica opens")
        .households_in_grid(grid)
        .expect("grid is listed")
        .into_iter()
        .map(|h| h.id)
        .collect();
    let mut rng = Rng::seeded(12);
    let mut at = Timestamp(T0.0 + 300 * 86_400_000);
    for (name, durability) in [("FULL", Durability::Full), ("NORMAL", Durability::Normal)] {
        let options = ReplicaOptions { durability, cache_capacity: 1, ..ReplicaOptions::default() };
        let mut replica = Replica::open_with(path, options).expect("replica opens");
        let [mut load, mut read, mut hit, mut miss] = [(); 4].map(|()| Vec::with_capacity(BREAKDOWN_RUNS));
        for _ in 0..BREAKDOWN_RUNS {
            let (one, other) = (rng.below(households.len()), rng.below(households.len() - 1));
            let home = households[one];
            let next = households[if other >= one { other + 1 } else { other }];
            at = Timestamp(at.0 + 60_000);
            let visit = new_visit(&mut rng, at);
            load.push(timed(|| replica.household(home).expect("household reads")));
            read.push(timed(|| replica.household(home).expect("household reads")));
            hit.push(timed(|| replica.record_visit(home, &visit).expect("visit is recorded")));
            miss.push(timed(|| replica.record_visit(next, &visit).expect("visit is recorded")));
        }
        println!(
            "{name:<6}: load+read (cache miss) {:.2} ms, read only {:.2} ms; record_visit cache hit {:.2} ms, cache miss {:.2} ms",
            median_ms(&load),
            median_ms(&read),
            median_ms(&hit),
            median_ms(&miss)
        );
    }
}

/// How long `f` takes; what it returns is dropped after the clock stops.
fn timed<T>(f: impl FnOnce() -> T) -> Duration {
    let started = Instant::now();
    let out = std::hint::black_box(f());
    let elapsed = started.elapsed();
    drop(out);
    elapsed
}

/// Common characters for notes that never repeat a phrase: real notes compress less than the
/// fixture's, whose phrases recur, and more than these.
const COMMON_CHARS: &str = "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也\
能下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业\
本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第\
向道命此变条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长求\
老头基资边流路级少图山统接知较将组见计别她手角期根论运农指几九区强放决西被干做必战先回则任取据处队南给色光门即保\
治北造百规热领七海口东导器压志世金增争济阶油思术极交受联什认六共权收证改清己美再采转更单风切打白教速花带安场身车";

/// How visit notes are written for the bytes-per-visit figure.
#[derive(Clone, Copy)]
enum Notes {
    /// The fixture's notes: recurring phrases with a varying detail.
    Fixture,
    /// 60 characters drawn at random from [`COMMON_CHARS`]: nothing for compression to find
    /// but the character set.
    NonRepeating,
}

/// Bytes per visit, once with the fixture's notes and once with notes that never repeat.
fn bytes_per_visit(dir: &Path) {
    println!("\n== bytes on disk per visit (one household, {VISITS} visits, default options)");
    for (notes, name) in [(Notes::Fixture, "fixture notes"), (Notes::NonRepeating, "non-repeating notes")] {
        let path = dir.join(format!("visits_{}.sqlite3", name.replace(' ', "_")));
        bytes_per_visit_with(&path, notes, name);
    }
}

fn bytes_per_visit_with(path: &Path, notes: Notes, name: &str) {
    println!("-- {name}");
    let fixture = build_replica(path, &Spec { grids: vec![1], visits_each: 0, requests: 0 }, 365);
    let home = fixture.households[0];
    let mut replica = Replica::open(path).expect("replica opens");
    let before = Sizes::measure(&mut replica, path);

    let chars: Vec<char> = COMMON_CHARS.chars().collect();
    let mut rng = Rng::seeded(365);
    let mut times = Vec::with_capacity(VISITS);
    let mut note_chars = 0;
    for day in 0..VISITS {
        let at = Timestamp(T0.0 + day as i64 * 86_400_000);
        let mut visit = new_visit(&mut rng, at);
        if let Notes::NonRepeating = notes {
            visit.notes = (0..60).map(|_| chars[rng.below(chars.len())]).collect();
        }
        note_chars += visit.notes.chars().count();
        let started = Instant::now();
        replica.record_visit(home, &visit).expect("visit is recorded");
        times.push(started.elapsed());
    }
    let recorded = Sizes::measure(&mut replica, path);
    replica.compact_all().expect("documents compact");
    let compacted = Sizes::measure(&mut replica, path);
    drop(replica);
    vacuum(path);
    let vacuumed = file_len(path);

    let per_visit = |after: u64, before: u64| after.saturating_sub(before) as f64 / VISITS as f64;
    println!("notes: {:.0} characters per visit on average", note_chars as f64 / VISITS as f64);
    println!(
        "Automerge change bytes (what an upload carries): {:.0} B/visit",
        per_visit(recorded.changes, before.changes)
    );
    println!(
        "stored document bytes, as the write path leaves them (snapshot every 32 changes): {:.0} B/visit",
        per_visit(recorded.stored, before.stored)
    );
    println!(
        "stored document bytes after compact_all (one snapshot): {:.0} B/visit",
        per_visit(compacted.stored, before.stored)
    );
    println!(
        "SQLite file, checkpointed, before compact_all: {:.0} B/visit ({} KB -> {} KB)",
        per_visit(recorded.file, before.file),
        before.file / 1024,
        recorded.file / 1024
    );
    println!(
        "SQLite file, checkpointed, after compact_all: {:.0} B/visit ({} KB; freed pages stay in the file)",
        per_visit(compacted.file, before.file),
        compacted.file / 1024
    );
    println!(
        "SQLite file after VACUUM: {:.0} B/visit ({} KB), of which:",
        per_visit(vacuumed, before.file),
        vacuumed / 1024
    );
    for (table, bytes) in table_sizes(path) {
        println!("  {table:<28} {:>6.0} B/visit", bytes as f64 / VISITS as f64);
    }
    println!(
        "record_visit time on this household: visits 1-30 median {:.2} ms, visits {}-{VISITS} median {:.2} ms",
        median_ms(&times[..30]),
        VISITS - 29,
        median_ms(&times[VISITS - 30..])
    );
}

/// Bytes of each table and index of the file (SQLite's `dbstat`), largest first, those over
/// 8 KB only.
fn table_sizes(path: &Path) -> Vec<(String, i64)> {
    let conn = rusqlite::Connection::open(path).expect("connection opens");
    let mut stmt = conn
        .prepare("SELECT name, sum(pgsize) AS bytes FROM dbstat GROUP BY name HAVING bytes > 8192 ORDER BY bytes DESC")
        .expect("dbstat is compiled in");
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).expect("dbstat query runs");
    rows.collect::<rusqlite::Result<_>>().expect("dbstat rows")
}

/// Sizes of one replica at a moment.
struct Sizes {
    /// Sum of the raw Automerge changes not yet acknowledged (every change here).
    changes: u64,
    /// [`Replica::stored_document_bytes`].
    stored: u64,
    /// The SQLite file after a WAL checkpoint.
    file: u64,
}

impl Sizes {
    fn measure(replica: &mut Replica, path: &Path) -> Self {
        let mut changes = 0;
        for id in replica.documents_with_unsynced_changes().expect("pending documents") {
            let bytes = replica.unsynced_changes(id).expect("pending changes");
            changes += bytes.iter().map(|c| c.len() as u64).sum::<u64>();
        }
        checkpoint(path);
        Self { changes, stored: replica.stored_document_bytes().expect("stored bytes"), file: file_len(path) }
    }
}

/// Moves the WAL into the main file and truncates it, so the file size is the whole store.
fn checkpoint(path: &Path) {
    let conn = rusqlite::Connection::open(path).expect("second connection opens");
    let (busy, _, _): (i64, i64, i64) = conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("checkpoint runs");
    assert_eq!(busy, 0, "checkpoint was not blocked");
}

fn vacuum(path: &Path) {
    let conn = rusqlite::Connection::open(path).expect("connection opens");
    conn.execute_batch("VACUUM; PRAGMA wal_checkpoint(TRUNCATE);").expect("vacuum runs");
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).expect("file exists")
}

fn median_ms(times: &[Duration]) -> f64 {
    let mut sorted: Vec<Duration> = times.to_vec();
    sorted.sort_unstable();
    sorted[sorted.len() / 2].as_secs_f64() * 1_000.0
}

fn ms(micros: u64) -> f64 {
    micros as f64 / 1_000.0
}

fn mb(kb: u64) -> f64 {
    kb as f64 / 1_024.0
}
