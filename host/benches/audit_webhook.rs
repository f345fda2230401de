//! The API server's audit records per second into the daemon's store
//! through its webhook route (`POST /api/v1/audit`: an `audit.k8s.io/v1`
//! `EventList` of 400 records per request, the API server's default
//! `--audit-webhook-batch-max-size`, JSON checked record by record, each
//! request's stage stored once), against two baselines in the same run: the
//! same lists parsed and written straight into a store (no HTTP), and the
//! same rows written as a node agent's events are (no once-only key).
//! Records shaped as the recorded kube-apiserver 1.28 batches are
//! (`Metadata` level, a user with groups, an object, the authorizer's
//! annotations). The daemon (router, auth with an audit token, a real
//! SQLite file) runs in this process on loopback; one sender, as the API
//! server's batch backend sends.
//!
//! `cargo bench -p sonde --bench audit_webhook` (SONDE_BENCH_RECORDS,
//! default 200,000; SONDE_BENCH_REPEATS, default 3).

mod common;

use std::time::Instant;

use common::{env_or, median};
use sonde::store::{CollectorBatch, Store};

const TOKEN: &str = "bench-audit-token-0123456789";
/// Records per request.
const BATCH: usize = 400;

/// Record `i`: one of a few users reading or writing one of 500 pods.
fn record(i: usize) -> serde_json::Value {
    let pod = i % 500;
    let verbs = ["get", "list", "watch", "patch", "create", "delete"];
    let verb = verbs[i % verbs.len()];
    let user = [
        "alice@example.com",
        "system:serviceaccount:ci:deployer",
        "system:kube-scheduler",
    ][i % 3];
    serde_json::json!({
        "level": "Metadata",
        "auditID": format!("{:08x}-1f2e-4d3c-8b7a-{:012x}", i / 4096, i),
        "stage": "ResponseComplete",
        "requestURI": format!("/api/v1/namespaces/team-{}/pods/web-{pod}", pod % 20),
        "verb": verb,
        "user": {"username": user, "uid": "uid-1", "groups": ["system:authenticated", "dev"]},
        "sourceIPs": ["10.0.3.17"],
        "userAgent": "kubectl/v1.28.15 (linux/amd64) kubernetes/8418565",
        "objectRef": {"resource": "pods", "namespace": format!("team-{}", pod % 20),
            "name": format!("web-{pod}"), "apiVersion": "v1"},
        "responseStatus": {"metadata": {}, "code": 200},
        "requestReceivedTimestamp": "2026-11-22T18:20:46.244211Z",
        "stageTimestamp": "2026-11-22T18:20:46.246569Z",
        "annotations": {"authorization.k8s.io/decision": "allow",
            "authorization.k8s.io/reason": "RBAC: allowed by ClusterRoleBinding \"dev\""}
    })
}

/// The request bodies: `records` records, [`BATCH`] a list.
fn bodies(records: usize) -> Vec<Vec<u8>> {
    (0..records)
        .collect::<Vec<_>>()
        .chunks(BATCH)
        .map(|c| {
            serde_json::to_vec(&serde_json::json!({
                "kind": "EventList", "apiVersion": "audit.k8s.io/v1", "metadata": {},
                "items": c.iter().map(|&i| record(i)).collect::<Vec<_>>(),
            }))
            .unwrap()
        })
        .collect()
}

fn rows(body: &[u8]) -> Vec<(String, sonde::store::CollectorEventRow)> {
    sonde::kube_audit::parse_event_list(body)
        .expect("a valid list")
        .into_iter()
        .map(|r| (format!("{}/{}", r.audit_id, r.stage), r.row))
        .collect()
}

fn main() {
    let records = env_or("SONDE_BENCH_RECORDS", 200_000);
    let repeats = env_or("SONDE_BENCH_REPEATS", 3).max(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let bodies = bodies(records);
    let bytes: usize = bodies.iter().map(Vec::len).sum();
    println!(
        "audit webhook: {records} records in {} lists of {BATCH} ({:.1} MiB of JSON), {repeats} fresh stores per path",
        bodies.len(),
        bytes as f64 / (1 << 20) as f64
    );
    let (mut api, mut direct, mut unkeyed) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..repeats {
        // Through the daemon's webhook route.
        let dir = tempfile::tempdir().expect("tempdir");
        api.push(rt.block_on(async {
            let (daemon, base, server) = common::daemon_on_loopback(
                dir.path(),
                &format!("{{tokens: [{{name: kube-apiserver, role: audit, token: {TOKEN}}}]}}"),
            )
            .await;
            let url = format!("{base}/api/v1/audit?timeout=30s");
            let client = reqwest::Client::new();
            let started = Instant::now();
            for body in &bodies {
                let r = client
                    .post(&url)
                    .bearer_auth(TOKEN)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                    .expect("send");
                assert!(r.status().is_success(), "{}", r.status());
            }
            let rate = records as f64 / started.elapsed().as_secs_f64();
            let stored = daemon
                .store()
                .collector_events("kube-audit", 0, i64::MAX, u32::MAX)
                .await
                .expect("rows")
                .len();
            assert_eq!(stored, records, "every record stored once");
            server.abort();
            rate
        }));
        // Parsed and written straight into a store, once-only keys included.
        let dir = tempfile::tempdir().expect("tempdir");
        direct.push(rt.block_on(async {
            let store = Store::open(dir.path().join("sonde.db"))
                .await
                .expect("store");
            let started = Instant::now();
            for body in &bodies {
                store
                    .write_keyed_events("kube-audit", "kube-apiserver", &rows(body))
                    .await
                    .expect("write");
            }
            let rate = records as f64 / started.elapsed().as_secs_f64();
            store.close().await;
            rate
        }));
        // The same rows as an agent's events: no key, nothing checked.
        let dir = tempfile::tempdir().expect("tempdir");
        unkeyed.push(rt.block_on(async {
            let store = Store::open(dir.path().join("sonde.db"))
                .await
                .expect("store");
            let batches: Vec<CollectorBatch> = bodies
                .iter()
                .map(|b| CollectorBatch {
                    events: rows(b).into_iter().map(|(_, r)| r).collect(),
                    ..Default::default()
                })
                .collect();
            let started = Instant::now();
            for b in &batches {
                store.write_collector_batch(b).await.expect("write");
            }
            let rate = records as f64 / started.elapsed().as_secs_f64();
            store.close().await;
            rate
        }));
    }
    println!("{:<52} {:>12} {:>12}", "path", "median rec/s", "best rec/s");
    for (name, v) in [
        ("daemon webhook (HTTP, JSON checked, stored once)", api),
        ("baseline: parsed, stored once, no HTTP", direct),
        (
            "baseline: rows as agent events (no key, pre-parsed)",
            unkeyed,
        ),
    ] {
        let best = v.iter().copied().fold(0.0, f64::max);
        println!("{name:<52} {:>12.0} {:>12.0}", median(v), best);
    }
}
