//! Benchmarks of the device replica on real SQLite files (WAL mode, under the target dir):
//!
//! - `record_visit/full` and `record_visit/normal`: record one visit on a random household of a
//!   500-household grid (2–3 residents, 12 visits each, 100 requests), including the document
//!   change, the index update and the SQLite commit, with `synchronous = FULL` (the default)
//!   and `NORMAL`. The cache holds 64 documents, so most visits load their household first.
//! - `open_replica_1000_docs`: open a replica of 800 households and 200 requests and run the
//!   first list query (the 500-household grid), as the app does at start.
//! - `list_grid_500`: list a grid's 500 households with last visit and open requests.
//!
//! Figures and the commands that produced them are in `docs/BENCHMARKS.md`.

use std::path::Path;
use std::time::Duration;

use criterion::{Criterion, criterion_main};
use doorstep_core::store::{Durability, Replica, ReplicaOptions};
use doorstep_core::time::Timestamp;

mod support;

use support::{Rng, Spec, T0, build_replica, new_visit};

fn fixture_dir() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temporary directory under target/")
}

fn grid_benches(c: &mut Criterion) {
    let dir = fixture_dir();
    let original = dir.path().join("grid.sqlite3");
    let spec = Spec { grids: vec![500], visits_each: 12, requests: 100 };
    let fixture = build_replica(&original, &spec, 500);

    let mut group = c.benchmark_group("record_visit");
    group.sample_size(30).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(5));
    for (name, durability) in [("full", Durability::Full), ("normal", Durability::Normal)] {
        // Each variant writes to its own copy, so both start from the same documents.
        let path = dir.path().join(format!("record_{name}.sqlite3"));
        std::fs::copy(&original, &path).expect("fixture file is copied");
        let options = ReplicaOptions { durability, ..ReplicaOptions::default() };
        let mut replica = Replica::open_with(&path, options).expect("replica opens");
        let mut rng = Rng::seeded(7);
        let mut at = Timestamp(T0.0 + 200 * 86_400_000);
        group.bench_function(name, |b| {
            b.iter(|| {
                let home = fixture.households[rng.below(fixture.households.len())];
                at = Timestamp(at.0 + 60_000);
                replica.record_visit(home, &new_visit(&mut rng, at)).expect("visit is recorded")
            });
        });
    }
    group.finish();

    let replica = Replica::open(&original).expect("replica opens");
    let grid = fixture.grids[0];
    let mut group = c.benchmark_group("list");
    group.sample_size(50).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    group.bench_function("list_grid_500", |b| {
        b.iter(|| replica.households_in_grid(grid).expect("grid is listed"));
    });
    group.finish();
}

fn open_benches(c: &mut Criterion) {
    let dir = fixture_dir();
    let path = dir.path().join("device.sqlite3");
    let spec = Spec { grids: vec![500, 300], visits_each: 12, requests: 200 };
    let fixture = build_replica(&path, &spec, 1_000);
    let grid = fixture.grids[0];

    let mut group = c.benchmark_group("open");
    group.sample_size(30).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    group.bench_function("open_replica_1000_docs", |b| {
        // Closing the replica is left out of the timing: the app opens once and keeps it.
        b.iter_with_large_drop(|| open_and_list(&path, grid));
    });
    group.finish();
}

fn open_and_list(path: &Path, grid: doorstep_core::ids::GridId) -> (Replica, usize) {
    let replica = Replica::open(path).expect("replica opens");
    let rows = replica.households_in_grid(grid).expect("grid is listed").len();
    (replica, rows)
}

/// The group lives in a private module: `criterion_group!` generates an undocumented `pub fn`.
mod group {
    use super::{grid_benches, open_benches};

    criterion::criterion_group!(benches, grid_benches, open_benches);
}

criterion_main!(group::benches);
