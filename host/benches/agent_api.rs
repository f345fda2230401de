//! Collector events per second from node agents into the daemon's store
//! through its API (`POST /api/v1/collectors/batches`, the agent's
//! `DaemonSink`: numbered requests of at most 4 MiB, JSON both ways, each
//! stored in one transaction with its number), against the baseline in the
//! same run: the same batches written straight into a store (`Sink::Store`,
//! what the in-process agent does). Exec events shaped as the agent makes
//! them (pod, container, cgroup, a filename), written as the agent writes
//! them: a batch per flush, `SONDE_BENCH_BATCH` events each, from
//! `SONDE_BENCH_AGENTS` agents (nodes) at once, each a task of its own.
//! The daemon (router, auth with an agent token, a real SQLite file) runs in
//! this process on loopback.
//!
//! `cargo bench -p sonde --bench agent_api` (SONDE_BENCH_EVENTS in all,
//! default 400,000; SONDE_BENCH_BATCH, default 10,000; SONDE_BENCH_AGENTS,
//! default 4; SONDE_BENCH_REPEATS, default 3).

mod common;

use std::time::Instant;

use common::{env_or, median};
use sonde::agent::{DaemonSink, Sink};
use sonde::store::{CollectorBatch, CollectorEventRow, Store};

const TOKEN: &str = "bench-agent-token-0123456789";

/// Event `i` of node `node`: an exec in one of 500 pods.
fn event(node: usize, i: usize) -> CollectorEventRow {
    let pod = i % 500;
    let mut fields = serde_json::Map::new();
    fields.insert(
        "filename".into(),
        format!("/usr/bin/tool-{}", i % 37).into(),
    );
    fields.insert("ppid".into(), (1000 + i % 97).into());
    CollectorEventRow {
        ts_ms: 1_700_000_000_000 + i as i64,
        node: format!("node-{node}"),
        collector: "exec".into(),
        kind: "exec".into(),
        namespace: Some(format!("team-{}", pod % 20)),
        pod: Some(format!("web-{pod}")),
        container: Some("app".into()),
        pod_uid: Some(format!("0f3c6a52-{pod:04}-4bd1-9e8e-1c2d3e4f5a6b")),
        container_id: Some(format!("{:064x}", pod)),
        cgroup: Some(format!("/kubepods/burstable/pod{pod}/{:064x}", pod)),
        pid: Some(10_000 + i as i64),
        comm: Some(format!("tool-{}", i % 37)),
        fields,
    }
}

/// Sends `per_agent` events from each of `agents` sinks made by `sink`,
/// `batch` at a time, all agents at once; events per second.
async fn run(sinks: Vec<Sink>, per_agent: usize, batch: usize) -> f64 {
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (node, sink) in sinks.into_iter().enumerate() {
        tasks.spawn(async move {
            let mut sent = 0;
            while sent < per_agent {
                let n = batch.min(per_agent - sent);
                let mut b = CollectorBatch {
                    events: (sent..sent + n).map(|i| event(node, i)).collect(),
                    ..Default::default()
                };
                sink.write(&mut b).await.expect("write");
                assert!(b.is_empty());
                sent += n;
            }
        });
    }
    let agents = tasks.len();
    while let Some(r) = tasks.join_next().await {
        r.expect("agent task");
    }
    (agents * per_agent) as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let events = env_or("SONDE_BENCH_EVENTS", 400_000);
    let batch = env_or("SONDE_BENCH_BATCH", 10_000).max(1);
    let agents = env_or("SONDE_BENCH_AGENTS", 4).max(1);
    let repeats = env_or("SONDE_BENCH_REPEATS", 3).max(1);
    let per_agent = events / agents;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "agent batches: {} events from {agents} agents, {batch} per batch, {repeats} fresh stores per path",
        per_agent * agents
    );
    let (mut api, mut direct) = (Vec::new(), Vec::new());
    for _ in 0..repeats {
        // Through the daemon's API.
        let dir = tempfile::tempdir().expect("tempdir");
        api.push(rt.block_on(async {
            let (daemon, url, server) = common::daemon_on_loopback(
                dir.path(),
                &format!("{{tokens: [{{name: nodes, role: agent, token: {TOKEN}}}]}}"),
            )
            .await;
            let sinks = (0..agents)
                .map(|_| Sink::Daemon(DaemonSink::new(&url, Some(TOKEN.into())).expect("sink")))
                .collect();
            let rate = run(sinks, per_agent, batch).await;
            let stored = daemon
                .store()
                .collector_events("exec", 0, i64::MAX, u32::MAX)
                .await
                .expect("events")
                .len();
            assert_eq!(stored, per_agent * agents, "every event stored once");
            server.abort();
            rate
        }));
        // Straight into a store.
        let dir = tempfile::tempdir().expect("tempdir");
        direct.push(rt.block_on(async {
            let store = Store::open(dir.path().join("sonde.db"))
                .await
                .expect("store");
            let sinks = (0..agents).map(|_| Sink::Store(store.clone())).collect();
            let rate = run(sinks, per_agent, batch).await;
            store.close().await;
            rate
        }));
    }
    println!("{:<44} {:>14} {:>14}", "path", "median ev/s", "best ev/s");
    for (name, v) in [
        ("daemon API (agents' DaemonSink)", api),
        ("baseline: straight into the store", direct),
    ] {
        let best = v.iter().copied().fold(0.0, f64::max);
        println!("{name:<44} {:>14.0} {:>14.0}", median(v), best);
    }
}
