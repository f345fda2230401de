//! Alerts from the daemon to receivers on loopback: a successful run's new
//! findings at or above each destination's severity, in Sonde's JSON,
//! Alertmanager's and Slack's bodies, with the bearer token; nothing again
//! for findings that persist; exempted findings left out; a destination
//! that fails at first is tried again.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::serve::Served;

/// One request a receiver took.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    authorization: Option<String>,
    body: Value,
}

/// An HTTP receiver on loopback: answers 503 to the first request on
/// `/flaky`, 200 to everything else, and keeps what it was sent.
fn receiver() -> (u16, Arc<Mutex<Vec<Received>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = Arc::new(Mutex::new(Vec::<Received>::new()));
    let shared = got.clone();
    let flaky_seen = Arc::new(Mutex::new(false));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 8192];
            let (head, body) = loop {
                let n = stream.read(&mut chunk).unwrap_or(0);
                if n == 0 {
                    break (String::new(), Vec::new());
                }
                buf.extend_from_slice(&chunk[..n]);
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&buf[..i]).into_owned();
                    let length: usize = crate::http::header_value(&head, "content-length")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    while buf.len() < i + 4 + length {
                        let n = stream.read(&mut chunk).unwrap_or(0);
                        if n == 0 {
                            break;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    break (head, buf[i + 4..].to_vec());
                }
            };
            let path = head
                .lines()
                .next()
                .and_then(|l| l.split(' ').nth(1))
                .unwrap_or_default()
                .to_string();
            let authorization = crate::http::header_value(&head, "authorization").map(String::from);
            let fail =
                path == "/flaky" && !std::mem::replace(&mut *flaky_seen.lock().unwrap(), true);
            if !fail {
                shared.lock().unwrap().push(Received {
                    path,
                    authorization,
                    body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                });
            }
            let status = if fail {
                "503 Service Unavailable"
            } else {
                "200 OK"
            };
            let _ = stream.write_all(
                format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            );
        }
    });
    (port, got)
}

fn wait_for(got: &Arc<Mutex<Vec<Received>>>, path: &str, n: usize) -> Vec<Received> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now: Vec<Received> = got
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect();
        if now.len() >= n {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "{path}: {} requests, expected {n}",
            now.len()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

const ADMIN: &str = "admin-token-0123456789";

#[test]
fn new_findings_are_sent_once_in_each_format() {
    let (port, got) = receiver();
    let dir = tempfile::tempdir().unwrap();
    let exemptions = dir.path().join("exemptions.yaml");
    std::fs::write(
        &exemptions,
        "exemptions:\n  - {rules: [HighRiskCapabilities], reason: the node agent needs them}\n",
    )
    .unwrap();
    let config = format!(
        r#"
listen: 127.0.0.1:0
cluster: {{snapshot: "{{cluster}}"}}
store: {{path: "{{dir}}/sonde.db"}}
external_url: http://sonde.example.com
cluster_name: "prod <eu>"
exemptions: "{}"
auth:
  tokens:
    - {{name: ops, role: admin, token: "{ADMIN}"}}
alerts:
  - {{name: hook, url: "http://127.0.0.1:{port}/hook", min_severity: high, probes: [workload-audit]}}
  - {{name: am, url: "http://127.0.0.1:{port}/api/v2/alerts", format: alertmanager, min_severity: critical, probes: [workload-audit]}}
  - {{name: chat, url: "http://127.0.0.1:{port}/flaky", format: slack, probes: [hostile], min_severity: info}}
probes:
  - {{name: workload-audit, schedule: "0 0 0 1 1 *"}}
  - name: hostile
    component: "{{hostile}}"
    config: {{mode: xss}}
    schedule: "0 0 0 1 1 *"
"#,
        exemptions.display()
    );
    let s = Served::start(&config);

    // The start-up runs open every finding: the JSON destination gets
    // workload-audit's high and critical ones, but the exempted rule.
    let hook = wait_for(&got, "/hook", 1);
    let body = &hook[0].body;
    assert_eq!(body["source"], "sonde");
    assert_eq!(body["cluster"], "prod <eu>");
    assert_eq!(body["probe"], "workload-audit");
    let opened = body["opened"].as_array().unwrap();
    assert!(!opened.is_empty());
    assert_eq!(body["opened_total"].as_u64(), Some(opened.len() as u64));
    assert!(
        opened
            .iter()
            .all(|f| matches!(f["severity"].as_str(), Some("high" | "critical"))),
        "{body}"
    );
    assert!(
        opened.iter().all(|f| f["rule"] != "HighRiskCapabilities"),
        "exempted"
    );
    assert!(
        opened[0]["url"]
            .as_str()
            .unwrap()
            .starts_with("http://sonde.example.com/#/findings/")
    );
    // They are the findings the API lists as open, high and critical.
    let api = s
        .request(
            "GET",
            "/api/v1/findings?probe=workload-audit&severity=high,critical&limit=1000",
            Some(ADMIN),
            None,
        )
        .json();
    assert!(
        api["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["rule"] == "HighRiskCapabilities"),
        "the exempted rule has findings here: {api}"
    );
    let listed: std::collections::BTreeSet<i64> = api["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule"] != "HighRiskCapabilities")
        .map(|f| f["id"].as_i64().unwrap())
        .collect();
    let sent: std::collections::BTreeSet<i64> =
        opened.iter().map(|f| f["id"].as_i64().unwrap()).collect();
    assert_eq!(sent, listed);

    // Alertmanager: one alert per critical finding.
    let am = wait_for(&got, "/api/v2/alerts", 1);
    let alerts = am[0].body.as_array().unwrap();
    assert!(!alerts.is_empty());
    assert!(alerts.iter().all(|a| a["labels"]["severity"] == "critical"
        && a["labels"]["cluster"] == "prod <eu>"
        && a["labels"]["probe"] == "workload-audit"
        && a["startsAt"].is_string()
        && a.get("endsAt").is_none()));

    // Slack: the hostile probe's markup stays text; sent on the second
    // try (the first got a 503).
    let chat = wait_for(&got, "/flaky", 1);
    let text = chat[0].body["text"].as_str().unwrap();
    assert!(
        text.starts_with("*Sonde* (prod &lt;eu&gt;): hostile ran: 2 opened, 0 fixed"),
        "{text}"
    );
    assert!(
        !text.contains("<script>") && text.contains("&lt;script&gt;"),
        "{text}"
    );

    // A second run reports the same findings: nothing is sent again.
    let r = s.request(
        "POST",
        "/api/v1/probes/workload-audit/run",
        Some(ADMIN),
        None,
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.json()["run"]["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let run = s
            .request("GET", &format!("/api/v1/runs/{id}"), Some(ADMIN), None)
            .json();
        if run["status"] == "succeeded" {
            break;
        }
        assert!(Instant::now() < deadline, "{run}");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        got.lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == "/hook")
            .count(),
        1
    );
    assert!(
        got.lock()
            .unwrap()
            .iter()
            .all(|r| r.authorization.is_none())
    );
    // Counted per destination.
    let metrics = s.request("GET", "/metrics", Some(ADMIN), None).body;
    assert!(
        metrics.contains("sonde_alerts_total{alert=\"hook\",outcome=\"sent\"} 1"),
        "{metrics}"
    );
}

#[test]
fn a_bad_destination_is_named_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sonde.yaml");
    std::fs::write(
        &config,
        "alerts:\n  - {name: a, url: \"ftp://x\", min_severity: urgent}\n  - {name: b, url: \"http://127.0.0.1:1/\", token_env: SONDE_NO_SUCH_VAR}\n  - {name: c, url: \"http://127.0.0.1:1/\", findings: false}\n  - {name: d, url: \"http://127.0.0.1:1/\", events: {reasons: [BackOff]}}\nevents: {record: false}\nprobes: []\n",
    )
    .unwrap();
    let out = crate::cli::sonde()
        .args(["serve", "-c"])
        .arg(&config)
        .arg("--check")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    for want in [
        "alerts[0] (a): url \"ftp://x\" is not an http(s) URL",
        "alerts[0] (a): min_severity: unknown severity \"urgent\"",
        "alerts[1] (b): the environment variable SONDE_NO_SUCH_VAR is not set",
        "alerts[2] (c): sends nothing: findings is false and no events are chosen",
        "alerts[3] (d): events: the daemon does not keep the cluster's events (events.record is false)",
    ] {
        assert!(stderr.contains(want), "{want}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clusters_new_events_are_sent_once_to_the_destinations_that_choose_them() {
    use sonde::daemon::{ConfigSource, Daemon};
    use sonde_fake_apiserver::{ADMIN_TOKEN, FakeApiServer};

    let (port, got) = receiver();
    let server = FakeApiServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = server.kubeconfig(dir.path(), ADMIN_TOKEN);
    let config = dir.path().join("sonde.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:0\ncluster: {{kubeconfig: \"{}\"}}\nstore: {{path: \"{}\"}}\n\
             events: {{interval_seconds: 1}}\nretention: {{max_age_days: null}}\n\
             external_url: \"https://sonde.example\"\n\
             alerts:\n\
             \x20 - {{name: crashes, url: \"http://127.0.0.1:{port}/crashes\", findings: false, events: {{reasons: [BackOff], namespaces: [shop]}}}}\n\
             \x20 - {{name: chat, url: \"http://127.0.0.1:{port}/chat\", format: slack, findings: false, events: {{}}}}\n\
             \x20 - {{name: scheduling, url: \"http://127.0.0.1:{port}/scheduling\", findings: false, events: {{reasons: [FailedScheduling]}}}}\n\
             probes: []\n",
            kubeconfig.display(),
            dir.path().join("sonde.db").display()
        ),
    )
    .unwrap();
    let daemon = Daemon::start(ConfigSource::File(config)).await.unwrap();
    let kept = || async {
        daemon
            .store()
            .collector_events("kube-events", 0, i64::MAX, 1000)
            .await
            .unwrap()
            .len()
    };
    // The 18 recorded events are weeks old: kept, not sent.
    let deadline = Instant::now() + Duration::from_secs(30);
    while kept().await < 18 {
        assert!(Instant::now() < deadline, "the events were not kept");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert!(got.lock().unwrap().is_empty(), "{:?}", got.lock().unwrap());

    // The kubelet counts the back-off again, now: one occurrence, sent to
    // the two destinations that choose it, once each.
    let now = jiff::Timestamp::now().to_string();
    server.apply("", "events", crate::event_history::backoff_again(63, &now));
    let crashes = tokio::task::spawn_blocking({
        let got = got.clone();
        move || wait_for(&got, "/crashes", 1)
    })
    .await
    .unwrap();
    let chat = tokio::task::spawn_blocking({
        let got = got.clone();
        move || wait_for(&got, "/chat", 1)
    })
    .await
    .unwrap();
    let body = &crashes[0].body;
    assert_eq!(body["kind"], "events");
    assert_eq!(body["total"], 1);
    let event = &body["events"][0];
    assert_eq!(event["type"], "Warning");
    assert_eq!(event["reason"], "BackOff");
    assert_eq!(event["namespace"], "shop");
    assert_eq!(event["object"]["kind"], "Pod");
    assert_eq!(event["object"]["name"], "web-7d9c6b5f4-9hzrm");
    assert_eq!(event["count"], 63);
    assert_eq!(event["node"], "node-2");
    assert!(
        event["url"]
            .as_str()
            .unwrap()
            .starts_with("https://sonde.example/#/history?collector=kube-events"),
        "{event}"
    );
    let text = chat[0].body["text"].as_str().unwrap();
    assert!(
        text.contains("Warning BackOff on Pod shop/web-7d9c6b5f4-9hzrm (x63): "),
        "{text}"
    );
    // Passes after it send nothing again; the third destination chose
    // another reason and got nothing.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let all = got.lock().unwrap().clone();
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(all.iter().all(|r| r.path != "/scheduling"));
}
