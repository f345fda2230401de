//! The cluster's events kept past the API server's hour: the daemon, on a
//! live cluster (the fake API server over the recorded responses), keeps
//! each event occurrence once as a `kube-events` row, from its watch of the
//! events; an event counted again is a new occurrence; the rows are the
//! store's, whatever the cluster still holds, and probes query them.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sonde::daemon::{ConfigSource, Daemon};
use sonde::store::CollectorEventRow;
use sonde_fake_apiserver::{ADMIN_TOKEN, FakeApiServer, RESTRICTED_TOKEN};

/// The recorded Warning BackOff event, counted again to `count` at `at`.
pub fn backoff_again(count: i64, at: &str) -> Value {
    let list: Value = serde_json::from_str(
        &std::fs::read_to_string(
            sonde_fake_apiserver::default_fixtures().join("responses/list-events.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let mut event = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["reason"] == "BackOff" && e["type"] == "Warning")
        .unwrap()
        .clone();
    event["count"] = json!(count);
    event["lastTimestamp"] = json!(at);
    event
}

async fn rows(daemon: &Daemon) -> Vec<CollectorEventRow> {
    daemon
        .store()
        .collector_events("kube-events", 0, i64::MAX, 100_000)
        .await
        .unwrap()
}

/// Waits until the store holds `n` event rows.
async fn wait_rows(daemon: &Daemon, n: usize) -> Vec<CollectorEventRow> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = rows(daemon).await;
        if got.len() == n {
            return got;
        }
        assert!(
            Instant::now() < deadline && got.len() < n,
            "{} rows, expected {n}",
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_kept_once_per_occurrence_from_the_watch() {
    let server = FakeApiServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = server.kubeconfig(dir.path(), ADMIN_TOKEN);
    let config = dir.path().join("sonde.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:0\ncluster: {{kubeconfig: \"{}\"}}\nstore: {{path: \"{}\"}}\n\
             events: {{interval_seconds: 1}}\nretention: {{max_age_days: null}}\n\
             probes:\n  - {{name: event-audit}}\n",
            kubeconfig.display(),
            dir.path().join("sonde.db").display()
        ),
    )
    .unwrap();
    let daemon = Daemon::start(ConfigSource::File(config)).await.unwrap();

    // The 18 recorded events, each once, however many passes ran.
    let first = wait_rows(&daemon, 18).await;
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(
        rows(&daemon).await.len(),
        18,
        "passes after the first add nothing"
    );
    let backoff = first
        .iter()
        .find(|r| r.kind == "BackOff" && r.fields["type"] == "Warning")
        .expect("the recorded CrashLoopBackOff event");
    assert_eq!(backoff.collector, "kube-events");
    assert_eq!(backoff.namespace.as_deref(), Some("shop"));
    assert_eq!(backoff.pod.as_deref(), Some("web-7d9c6b5f4-9hzrm"));
    assert_eq!(backoff.fields["count"], 62);
    assert_eq!(backoff.fields["source"], "kubelet");
    let oom = first.iter().find(|r| r.kind == "OOMKilling").unwrap();
    assert_eq!(oom.node, "node-2");
    // Events list and watch once: the daemon's watch cache serves each pass.
    assert_eq!(
        server.count("GET", "/api/v1/events"),
        2,
        "{:?}",
        server.requests()
    );

    // The kubelet counts the back-off again: one more occurrence, at its time.
    server.apply("", "events", backoff_again(63, "2026-11-22T18:25:00Z"));
    let after = wait_rows(&daemon, 19).await;
    let again: Vec<&CollectorEventRow> = after
        .iter()
        .filter(|r| r.kind == "BackOff" && r.pod.as_deref() == Some("web-7d9c6b5f4-9hzrm"))
        .collect();
    assert_eq!(again.len(), 2);
    assert_eq!(again[1].fields["count"], 63);
    let at = "2026-11-22T18:25:00Z".parse::<jiff::Timestamp>().unwrap();
    assert_eq!(again[1].ts_ms, at.as_millisecond());

    // The collector's state: available, with what it took.
    let status = daemon.store().collector_statuses().await.unwrap();
    let s = status
        .iter()
        .find(|s| s.collector == "kube-events")
        .unwrap();
    assert!(s.available);
    assert_eq!((s.node.as_str(), s.events), ("cluster", 19));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_readable_cluster_the_collector_says_why() {
    // A user whose role reads pods in one namespace, not events.
    let server = FakeApiServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = server.kubeconfig(dir.path(), RESTRICTED_TOKEN);
    let config = dir.path().join("sonde.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:0\ncluster: {{kubeconfig: \"{}\"}}\nstore: {{path: \"{}\"}}\n\
             events: {{interval_seconds: 1}}\nprobes:\n  - {{name: event-audit}}\n",
            kubeconfig.display(),
            dir.path().join("sonde.db").display()
        ),
    )
    .unwrap();
    let daemon = Daemon::start(ConfigSource::File(config)).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        let status = daemon.store().collector_statuses().await.unwrap();
        if let Some(s) = status.into_iter().find(|s| s.collector == "kube-events") {
            break s;
        }
        assert!(Instant::now() < deadline, "no kube-events state");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(!status.available);
    let reason = status.reason.unwrap();
    assert!(
        reason.starts_with("list events: ") && reason.contains("forbidden"),
        "{reason}"
    );
}
