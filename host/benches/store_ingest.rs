//! Ingest into the store: findings per second through
//! `Store::record_run_finished` on a real SQLite file (WAL, synchronous=NORMAL),
//! with the whole transaction timed (run row, upserts, resolving, commit).
//!
//! - `new`: a first run of 100,000 findings into an empty database.
//! - `persisting`: four more runs of the same probe, each reporting 95% of
//!   the previous run's findings again and 5% new ones (so 5% get resolved).
//!
//! The baseline in the same run is the naive path: the same transaction
//! with one INSERT ... ON CONFLICT statement per finding.
//!
//! `cargo bench -p sonde --bench store_ingest` (SONDE_BENCH_FINDINGS to change
//! the run size, SONDE_BENCH_REPEATS for the number of fresh databases per path).

mod common;

use std::time::{Duration, Instant};

use common::generate::finding;
use common::{env_or, median};

use sonde::bindings::Finding;
use sonde::runtime::{RunOutcome, RunStatus};
use sonde::store::Store;

fn outcome(run: usize, findings: Vec<Finding>) -> RunOutcome {
    RunOutcome {
        probe: "workload-audit".into(),
        run_id: format!("run-{run}"),
        status: RunStatus::Succeeded,
        reason: None,
        findings,
        logs: Vec::new(),
        denials: Vec::new(),
        duration: Duration::from_millis(500),
    }
}

#[derive(Clone, Copy)]
enum Path {
    Batched,
    OneByOne,
}

impl Path {
    fn name(self) -> &'static str {
        match self {
            Path::Batched => "batched (multi-row upsert)",
            Path::OneByOne => "baseline (one INSERT per finding)",
        }
    }
}

async fn ingest(store: &Store, path: Path, o: &RunOutcome) -> f64 {
    let t = Instant::now();
    let done = match path {
        Path::Batched => store.record_run_finished(o).await,
        Path::OneByOne => store.record_run_finished_one_by_one(o).await,
    }
    .expect("ingest");
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(done.findings as usize, o.findings.len());
    o.findings.len() as f64 / secs
}

/// One fresh database: the first run, then the persisting runs; findings/s of each.
async fn one_database(path: Path, n: usize) -> (f64, Vec<f64>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path().join("bench.db"))
        .await
        .expect("open");
    let first = ingest(&store, path, &outcome(0, (0..n).map(finding).collect())).await;
    let shift = n / 20;
    let mut persisting = Vec::new();
    for run in 1..=4 {
        let start = run * shift;
        let o = outcome(run, (start..start + n).map(finding).collect());
        persisting.push(ingest(&store, path, &o).await);
    }
    store.close().await;
    (first, persisting)
}

fn main() {
    let n = env_or("SONDE_BENCH_FINDINGS", 100_000);
    let repeats = env_or("SONDE_BENCH_REPEATS", 3).max(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!("store ingest: runs of {n} findings, {repeats} fresh databases per path");
    println!(
        "{:<36} {:>16} {:>16} {:>20}",
        "path", "new: median/s", "new: best/s", "persisting: median/s"
    );
    for path in [Path::Batched, Path::OneByOne] {
        let mut firsts = Vec::new();
        let mut persisting = Vec::new();
        for _ in 0..repeats {
            let (f, p) = rt.block_on(one_database(path, n));
            firsts.push(f);
            persisting.extend(p);
        }
        let best = firsts.iter().copied().fold(0.0, f64::max);
        println!(
            "{:<36} {:>16.0} {:>16.0} {:>20.0}",
            path.name(),
            median(firsts),
            best,
            median(persisting)
        );
    }
}
