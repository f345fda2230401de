//! Count queries over the event collectors: the per-minute counts (migration
//! 0006) against reading every event, side by side in the same run.
//!
//! A store with `SONDE_BENCH_EVENTS` tcp events (default 300,000) spread
//! evenly over the last 24 hours, written as the agent writes them (batches
//! of 500), in two shapes: `sparse`, 200 pods on 4 nodes and 4 kinds evenly
//! (about one event per pod, kind and minute: the counts' worst case), and
//! `storm`, 80% of the events retransmits of 4 pods and the rest as in
//! sparse (what a node in trouble records). node-signals' TCP query (count grouped
//! by node, namespace, pod, pod_uid and kind, state changes filtered out) is
//! timed over windows of 10, 20 and 30 minutes, 1 hour and 24 hours, answered:
//! - `counts`: from the counts for every whole minute, the window's ends
//!   from events (`run_planned` with 1: the engine itself does so from
//!   `COUNTS_FROM_MINUTES`, which these figures set);
//! - `events` (baseline): the same groups counted from every event (the
//!   query with `count(kind)`, which the counts cannot answer; `kind` is
//!   never null, so the numbers are the same unless the scan was capped).
//!
//! `cargo bench -p sonde --bench collector_query`

use std::time::{Duration, Instant};

use sonde::bindings::sonde::probe::collectors::{
    Aggregate, AggregateOp, CollectorQuery, Filter, FilterOp, Table, Value,
};
use sonde::store::{CollectorBatch, CollectorEventRow, Store};

const KINDS: [&str; 4] = ["retransmit", "reset_sent", "reset_received", "state"];

fn event(i: u64, ts_ms: i64, storm: bool) -> CollectorEventRow {
    let stormy = storm && !i.is_multiple_of(5);
    let pod = if stormy { i % 4 } else { i % 200 };
    let mut fields = serde_json::Map::new();
    fields.insert("sport".into(), (40_000 + i % 20_000).into());
    fields.insert("dport".into(), 8080.into());
    CollectorEventRow {
        ts_ms,
        node: format!("node-{}", pod % 4),
        collector: "tcp".into(),
        kind: KINDS[if stormy { 0 } else { (i / 200 % 4) as usize }].into(),
        namespace: Some(format!("team-{}", pod % 10)),
        pod: Some(format!("web-{pod}")),
        container: Some("app".into()),
        pod_uid: Some(format!("00000000-0000-4000-8000-{pod:012}")),
        container_id: Some(format!("{pod:064x}")),
        cgroup: None,
        pid: Some(1000 + pod as i64),
        comm: Some("web".into()),
        fields,
    }
}

fn query(since: i64, until: i64, field: Option<&str>) -> CollectorQuery {
    CollectorQuery {
        collector: "tcp".into(),
        since,
        until: Some(until),
        filters: vec![Filter {
            field: "kind".into(),
            op: FilterOp::Ne,
            value: Value::Text("state".into()),
        }],
        group_by: ["node", "namespace", "pod", "pod_uid", "kind"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        aggregates: vec![Aggregate {
            op: AggregateOp::Count,
            field: field.map(String::from),
        }],
        limit: Some(10_000),
    }
}

fn total(t: &Table) -> i64 {
    t.rows
        .iter()
        .map(|r| match r.last() {
            Some(Value::Integer(n)) => *n,
            _ => 0,
        })
        .sum()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let events: u64 = std::env::var("SONDE_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300_000);
    let repeats: usize = std::env::var("SONDE_BENCH_REPEATS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(9);
    for storm in [false, true] {
        shape(events, repeats, storm).await;
    }
}

async fn shape(events: u64, repeats: usize, storm: bool) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("sonde.db")).await.unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let day = 24 * 3_600_000;
    let start = now - day;
    let fill = Instant::now();
    let mut batch = Vec::with_capacity(500);
    for i in 0..events {
        batch.push(event(i, start + (i as i64 * day) / events as i64, storm));
        if batch.len() == 500 || i + 1 == events {
            store
                .write_collector_batch(&CollectorBatch {
                    events: std::mem::take(&mut batch),
                    ..Default::default()
                })
                .await
                .unwrap();
        }
    }
    println!(
        "{}: {events} tcp events over 24 h written in {:.1} s (batches of 500, counts included)",
        if storm { "storm" } else { "sparse" },
        fill.elapsed().as_secs_f64()
    );
    println!(
        "| window | answered from | median | min | max | groups | events counted | truncated |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (label, minutes) in [
        ("10 min", 10),
        ("20 min", 20),
        ("30 min", 30),
        ("1 h", 60),
        ("24 h", 24 * 60),
    ] {
        let since = now - minutes * 60_000;
        for (how, field) in [("counts", None), ("events (baseline)", Some("kind"))] {
            let q = query(since, now, field);
            let mut times = Vec::new();
            let mut last = None;
            for _ in 0..repeats {
                let t0 = Instant::now();
                let t = sonde::collectors::query::run_planned(&store, &q, now, 1)
                    .await
                    .unwrap();
                times.push(t0.elapsed());
                last = Some(t);
            }
            times.sort();
            let t = last.unwrap();
            let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
            println!(
                "| {label} | {how} | {} | {} | {} | {} | {} | {} |",
                ms(times[times.len() / 2]),
                ms(times[0]),
                ms(times[times.len() - 1]),
                t.rows.len(),
                total(&t),
                t.truncated
            );
        }
    }
}
