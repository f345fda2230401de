//! The daemon's JSON API over HTTP, every endpoint: auth (no token, viewer,
//! admin), filters and pagination, bad parameters (400 with what was
//! wrong), run now and its conflicts, suspend and resume, uploads, reports
//! in every format, trends, the event stream, metrics, the OpenAPI document.

use std::io::BufRead;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::serve::Served;

const VIEWER: &str = "viewer-token-0123456789";
const ADMIN: &str = "admin-token-0123456789";
const AGENT: &str = "agent-token-0123456789";

fn config(upload_max: usize) -> String {
    format!(
        r#"
listen: 127.0.0.1:0
cluster: {{snapshot: "{{cluster}}"}}
cluster_name: shop-prod
store: {{path: "{{dir}}/sonde.db"}}
auth:
  tokens:
    - {{name: dash, role: viewer, token: "{VIEWER}"}}
    - {{name: ops, role: admin, token: "{ADMIN}"}}
    - {{name: node-agents, role: agent, token: "{AGENT}"}}
uploads: {{max_bytes: {upload_max}}}
probes:
  - {{name: workload-audit, schedule: "0 0 * * * *"}}
  - {{name: rbac-audit, schedule: "0 0 * * * *"}}
  - name: hostile
    component: "{{hostile}}"
    config: {{mode: xss}}
  - name: slow
    component: "{{hostile}}"
    config: {{mode: loop}}
    limits: {{timeout_seconds: 3}}
"#
    )
}

fn get(s: &Served, path: &str, token: &str) -> crate::serve::Reply {
    s.request("GET", path, Some(token), None)
}

fn post(s: &Served, path: &str, token: &str) -> crate::serve::Reply {
    s.request("POST", path, Some(token), None)
}

fn ok_json(s: &Served, path: &str) -> Value {
    let r = get(s, path, VIEWER);
    assert_eq!(r.status, 200, "GET {path}: {}", r.body);
    r.json()
}

fn wait_run(s: &Served, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let run = ok_json(s, &format!("/api/v1/runs/{id}"));
        if matches!(run["status"].as_str(), Some("succeeded" | "failed")) {
            return run;
        }
        assert!(Instant::now() < deadline, "run {id} did not end: {run}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn started() -> Served {
    let size = std::fs::metadata(sonde_probes::TEST_TRIVIAL_PATH)
        .unwrap()
        .len() as usize;
    let s = Served::start(&config(size + 16));
    // The scheduled probes run at start; wait for them with a viewer token.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let runs = ok_json(&s, "/api/v1/runs")["items"]
            .as_array()
            .unwrap()
            .clone();
        let done = ["workload-audit", "rbac-audit"].iter().all(|p| {
            runs.iter().any(|r| {
                r["probe"] == *p && r["status"] == "succeeded" && r["trigger"] == "startup"
            })
        });
        if done {
            break;
        }
        assert!(Instant::now() < deadline, "{runs:#?}\n{}", s.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    s
}

#[test]
fn auth_roles_and_public_endpoints() {
    let s = started();
    // Public: health, readiness, the OpenAPI document, the UI.
    assert_eq!(s.get("/healthz").body, "ok");
    assert_eq!(s.get("/readyz").body, "ok");
    let index = s.get("/");
    assert_eq!(index.status, 200);
    let csp = index.header("content-security-policy").unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(index.header("x-content-type-options"), Some("nosniff"));
    assert!(
        s.get("/app.js")
            .header("content-type")
            .unwrap()
            .starts_with("text/javascript")
    );

    // No token: 401 with a JSON body and a challenge, on the API and /metrics.
    for path in [
        "/api/v1/findings",
        "/api/v1/probes",
        "/metrics",
        "/api/v1/events",
    ] {
        let r = s.get(path);
        assert!(r.error(401).contains("bearer token"), "{path}");
        assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"sonde\""));
    }
    assert!(
        get(&s, "/api/v1/findings", "wrong-token-0123456789")
            .error(401)
            .contains("not valid")
    );
    // Viewer reads, but may not write.
    assert_eq!(get(&s, "/api/v1/whoami", VIEWER).json()["role"], "viewer");
    for path in [
        "/api/v1/probes/workload-audit/run",
        "/api/v1/probes/workload-audit/suspend",
        "/api/v1/probes/workload-audit/resume",
        "/api/v1/reload",
    ] {
        assert!(
            post(&s, path, VIEWER).error(403).contains("admin"),
            "{path}"
        );
    }
    let who = get(&s, "/api/v1/whoami", ADMIN).json();
    assert_eq!(
        (who["role"].as_str(), who["auth"].as_bool()),
        (Some("admin"), Some(true))
    );
    assert_eq!(who["cluster"], "shop-prod");
    // Unknown API paths are JSON 404s.
    assert!(
        get(&s, "/api/v1/nope", VIEWER)
            .error(404)
            .contains("no such API endpoint")
    );
}

#[test]
fn findings_filter_page_and_refuse_bad_parameters() {
    let s = started();
    let all = ok_json(&s, "/api/v1/findings?limit=1000");
    let total = all["total"].as_u64().unwrap();
    let items = all["items"].as_array().unwrap();
    assert_eq!(items.len() as u64, total);
    assert!(total > 20, "{total}");

    // Severity filter, several at once.
    let high = ok_json(&s, "/api/v1/findings?severity=high,critical&limit=1000");
    let high_items = high["items"].as_array().unwrap();
    assert!(!high_items.is_empty());
    assert!(
        high_items
            .iter()
            .all(|f| f["severity"] == "high" || f["severity"] == "critical")
    );
    let expected = items
        .iter()
        .filter(|f| f["severity"] == "high" || f["severity"] == "critical")
        .count();
    assert_eq!(high_items.len(), expected);

    // Resource, rule and probe filters are exact; q searches the message.
    let one = &items[0];
    let ns = one["resource"]["namespace"].as_str().unwrap();
    let kind = one["resource"]["kind"].as_str().unwrap();
    let name = one["resource"]["name"].as_str().unwrap();
    let by_res = ok_json(
        &s,
        &format!("/api/v1/findings?namespace={ns}&kind={kind}&name={name}&limit=1000"),
    );
    assert!(by_res["items"].as_array().unwrap().iter().all(|f| {
        f["resource"]["namespace"] == ns
            && f["resource"]["kind"] == kind
            && f["resource"]["name"] == name
    }));
    let rule = one["rule"].as_str().unwrap();
    let by_rule = ok_json(
        &s,
        &format!("/api/v1/findings?rule={rule}&probe=workload-audit"),
    );
    assert!(
        by_rule["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["rule"] == rule)
    );
    let cluster = ok_json(&s, "/api/v1/findings?namespace=-&limit=1000");
    assert!(
        cluster["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["resource"]["namespace"] == ""),
        "{cluster}"
    );
    let q = ok_json(&s, "/api/v1/findings?q=ROOT%20FILE%20SYSTEM&limit=1000");
    let q_items = q["items"].as_array().unwrap();
    assert!(!q_items.is_empty());
    assert!(q_items.iter().all(|f| {
        f["message"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("root file system")
    }));

    // Status: everything is new in the last day, nothing fixed, nothing persisting.
    assert_eq!(ok_json(&s, "/api/v1/findings?status=new")["total"], total);
    assert_eq!(ok_json(&s, "/api/v1/findings?status=fixed")["total"], 0);
    assert_eq!(
        ok_json(&s, "/api/v1/findings?status=persisting")["total"],
        0
    );
    assert_eq!(
        ok_json(
            &s,
            "/api/v1/findings?status=persisting&since=2000-01-01T00:00:00Z"
        )["total"],
        0,
        "opened after 2000: none persisting since before"
    );

    // Keyset pages of 7 cover everything once, in order.
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = ok_json(&s, &format!("/api/v1/findings?limit=7&cursor={cursor}"));
        assert_eq!(page["total"], total);
        for f in page["items"].as_array().unwrap() {
            seen.push(f["id"].as_i64().unwrap());
        }
        match page["next"].as_str() {
            Some(n) => cursor = n.to_string(),
            None => break,
        }
    }
    let ids: Vec<i64> = items.iter().map(|f| f["id"].as_i64().unwrap()).collect();
    assert_eq!(seen, ids);

    // One finding; 404; 400.
    let id = ids[0];
    assert_eq!(ok_json(&s, &format!("/api/v1/findings/{id}"))["id"], id);
    assert!(
        get(&s, "/api/v1/findings/999999", VIEWER)
            .error(404)
            .contains("999999")
    );
    assert!(
        get(&s, "/api/v1/findings/abc", VIEWER)
            .error(400)
            .contains("bad path")
    );

    for (path, needle) in [
        (
            "/api/v1/findings?severity=urgent",
            "\"urgent\" is not one of",
        ),
        ("/api/v1/findings?status=maybe", "\"maybe\" is not one of"),
        ("/api/v1/findings?limit=0", "limit: 0"),
        ("/api/v1/findings?limit=5000", "limit: 5000"),
        ("/api/v1/findings?limit=ten", "bad query"),
        ("/api/v1/findings?cursor=garbage", "cursor"),
        ("/api/v1/findings?status=new&since=yesterday", "since"),
        ("/api/v1/findings?colour=red", "colour"),
        ("/api/v1/runs?limit=0", "limit"),
        ("/api/v1/runs?cursor=nope", "cursor"),
        ("/api/v1/trends?days=0", "days"),
        ("/api/v1/trends?days=1000", "days"),
        ("/api/v1/report?format=pdf", "\"pdf\""),
    ] {
        let msg = get(&s, path, VIEWER).error(400);
        assert!(msg.contains(needle), "{path}: {msg}");
    }
}

#[test]
fn probes_runs_run_now_suspend_resume() {
    let s = started();
    let probes = ok_json(&s, "/api/v1/probes");
    let names: Vec<&str> = probes
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["hostile", "rbac-audit", "slow", "workload-audit"]);
    let wa = probes
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "workload-audit")
        .unwrap();
    assert_eq!(wa["schedule"], "0 0 * * * *");
    assert_eq!(wa["timezone"], "UTC");
    assert!(
        wa["next_run"].as_str().unwrap().ends_with(":00:00Z"),
        "{wa}"
    );
    assert_eq!(wa["last_run"]["status"], "succeeded");
    assert_eq!(wa["stale"], false);
    let detail = ok_json(&s, "/api/v1/probes/workload-audit");
    assert!(detail["rules"].as_array().unwrap().len() > 10);
    assert!(detail["limits"]["timeout_ms"].as_u64().is_some());
    assert!(
        get(&s, "/api/v1/probes/nope", VIEWER)
            .error(404)
            .contains("nope")
    );
    assert!(
        post(&s, "/api/v1/probes/nope/run", ADMIN)
            .error(404)
            .contains("nope")
    );

    // The hostile probe has not run: no findings. The page is kept until
    // the next run ends, and read again after it.
    let page = "/api/v1/findings?probe=hostile&limit=50";
    let before = ok_json(&s, page);
    assert_eq!(before["total"], 0, "{before}");
    assert_eq!(ok_json(&s, page), before, "the same page twice");

    // Run now: 202 with the queued run, then it succeeds with its findings.
    let r = post(&s, "/api/v1/probes/hostile/run", ADMIN);
    assert_eq!(r.status, 202, "{}", r.body);
    let run = r.json()["run"].clone();
    assert_eq!(
        (run["status"].as_str(), run["trigger"].as_str()),
        (Some("queued"), Some("manual"))
    );
    let done = wait_run(&s, run["id"].as_str().unwrap());
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["findings_count"], 2);
    let after = ok_json(&s, page);
    assert_eq!(after["total"], 2, "the page after the run: {after}");
    assert_eq!(after["items"].as_array().map(Vec::len), Some(2));

    // A run that loops is stopped at its 3 s limit; while it runs, a second
    // run of the same probe is refused with 409.
    let r = post(&s, "/api/v1/probes/slow/run", ADMIN);
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.json()["run"]["id"].as_str().unwrap().to_string();
    let again = post(&s, "/api/v1/probes/slow/run", ADMIN).error(409);
    assert!(
        again.contains("already running") && again.contains(&id),
        "{again}"
    );
    let failed = wait_run(&s, &id);
    assert_eq!(failed["status"], "failed");
    assert!(
        failed["reason"]
            .as_str()
            .unwrap()
            .contains("timed out after 3000 ms"),
        "{failed}"
    );
    assert_eq!(failed["failure"]["kind"], "timeout");
    assert!(failed["logs"].is_array());

    // Runs list: newest first, per probe, paged.
    let page = ok_json(&s, "/api/v1/runs?probe=slow");
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let first = ok_json(&s, "/api/v1/runs?limit=2");
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    let next = first["next"].as_str().unwrap();
    let second = ok_json(&s, &format!("/api/v1/runs?limit=2&cursor={next}"));
    assert_ne!(first["items"][0]["id"], second["items"][0]["id"]);
    assert!(
        get(&s, "/api/v1/runs/none", VIEWER)
            .error(404)
            .contains("none")
    );

    // Suspend: no next run, kept; resume: next run again.
    let p = post(&s, "/api/v1/probes/workload-audit/suspend", ADMIN);
    assert_eq!(p.status, 200, "{}", p.body);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let p = ok_json(&s, "/api/v1/probes/workload-audit");
        if p["suspended"] == true && p["next_run"].is_null() {
            break;
        }
        assert!(Instant::now() < deadline, "{p}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        post(&s, "/api/v1/probes/workload-audit/resume", ADMIN).status,
        200
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let p = ok_json(&s, "/api/v1/probes/workload-audit");
        if p["suspended"] == false && p["next_run"].is_string() {
            break;
        }
        assert!(Instant::now() < deadline, "{p}");
        std::thread::sleep(Duration::from_millis(50));
    }

    // Rules: all of them, and one with its open findings counted.
    let rules = ok_json(&s, "/api/v1/rules");
    assert!(
        rules
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["probe"] == "rbac-audit")
    );
    let rule = ok_json(&s, "/api/v1/rules/hostile/Saw");
    assert_eq!(
        (rule["open_findings"].as_u64(), rule["severity"].as_str()),
        (Some(2), Some("info"))
    );
    assert!(
        get(&s, "/api/v1/rules/hostile/Nope", VIEWER)
            .error(404)
            .contains("Nope")
    );
}

#[test]
fn summary_trends_reports_and_metrics() {
    let s = started();
    let sum = ok_json(&s, "/api/v1/summary");
    let score = sum["score"]["cluster"].as_u64().unwrap();
    assert!(score <= 100);
    assert!(
        sum["score"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["namespace"] == "shop")
    );
    let counts = &sum["counts"];
    let total: u64 = ["critical", "high", "medium", "low", "info"]
        .iter()
        .map(|k| counts[k].as_u64().unwrap())
        .sum();
    assert_eq!(
        total,
        ok_json(&s, "/api/v1/findings")["total"].as_u64().unwrap()
    );
    assert_eq!(sum["newest"].as_array().unwrap().len(), 10);
    assert_eq!(sum["probes"]["total"], 4);

    let trends = ok_json(&s, "/api/v1/trends?days=7");
    let points = trends["points"].as_array().unwrap();
    let today: u64 = points.iter().map(|p| p["open"].as_u64().unwrap()).sum();
    assert_eq!(today, total, "{trends}");
    let svg = get(&s, "/api/v1/trends.svg?days=7", VIEWER);
    assert_eq!(svg.header("content-type"), Some("image/svg+xml"));
    roxmltree::Document::parse(&svg.body).expect("the plot is XML");

    // Every report format, as a download, parsed by a real parser.
    let csv = get(&s, "/api/v1/report?format=csv", VIEWER);
    assert_eq!(
        csv.header("content-disposition"),
        Some("attachment; filename=\"sonde-report.csv\"")
    );
    let mut reader = csv::Reader::from_reader(csv.body.as_bytes());
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        [
            "probe",
            "rule",
            "severity",
            "namespace",
            "kind",
            "name",
            "apiVersion",
            "message",
            "remedy",
            "labels"
        ]
    );
    assert_eq!(reader.records().count() as u64, total);
    let json = get(&s, "/api/v1/report?format=json", VIEWER).json();
    assert!(json.is_object());
    let sarif = get(&s, "/api/v1/report?format=sarif", VIEWER).json();
    assert_eq!(sarif["version"], "2.1.0");
    let junit = get(&s, "/api/v1/report?format=junit", VIEWER);
    roxmltree::Document::parse(&junit.body).expect("JUnit XML");
    let html = get(&s, "/api/v1/report?format=html", VIEWER);
    let opts = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    roxmltree::Document::parse_with_options(&html.body, opts)
        .expect("the HTML report is well-formed");
    assert!(
        html.header("content-security-policy")
            .unwrap()
            .starts_with("default-src 'none'")
    );
    assert!(
        get(&s, "/api/v1/report?format=yaml", VIEWER)
            .body
            .contains("runs")
    );

    // Metrics: runs, durations, open findings, seconds since last success.
    let m = get(&s, "/metrics", VIEWER);
    assert_eq!(m.status, 200);
    for needle in [
        "sonde_runs_total{probe=\"workload-audit\",outcome=\"succeeded\"} 1",
        "sonde_run_duration_seconds_bucket{",
        "sonde_run_duration_seconds_count{probe=\"rbac-audit\"} 1",
        "sonde_findings_open{severity=\"high\"}",
        "sonde_probe_seconds_since_last_success{probe=\"workload-audit\"}",
    ] {
        assert!(m.body.contains(needle), "{needle} not in\n{}", m.body);
    }
}

#[test]
fn uploads_are_checked_before_they_are_kept() {
    let s = started();
    let trivial = std::fs::read(sonde_probes::TEST_TRIVIAL_PATH).unwrap();
    let up = |token: &str, ct: &str, body: &[u8]| {
        s.request("POST", "/api/v1/probes", Some(token), Some((ct, body)))
    };
    assert!(
        up(VIEWER, "application/wasm", &trivial)
            .error(403)
            .contains("admin")
    );
    assert!(
        up(ADMIN, "text/plain", &trivial)
            .error(415)
            .contains("application/wasm")
    );
    let msg = up(ADMIN, "application/wasm", b"not a component at all").error(400);
    assert!(msg.contains("not a valid probe component"), "{msg}");
    let mut big = trivial.clone();
    big.extend(std::iter::repeat_n(0u8, 64));
    assert!(
        up(ADMIN, "application/wasm", &big)
            .error(413)
            .contains("uploads.max_bytes")
    );
    assert!(!s.dir.join("probes").join("trivial.wasm").exists());

    let r = up(ADMIN, "application/wasm", &trivial);
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["name"], "trivial");
    assert!(s.dir.join("probes").join("trivial.wasm").exists());
    let run = post(&s, "/api/v1/probes/trivial/run", ADMIN).json()["run"].clone();
    let done = wait_run(&s, run["id"].as_str().unwrap());
    assert_eq!(
        (done["status"].as_str(), done["findings_count"].as_i64()),
        (Some("succeeded"), Some(1))
    );
}

#[test]
fn the_event_stream_follows_a_run_and_the_openapi_document_covers_every_route() {
    let s = started();
    let mut events = s.events(Some(VIEWER));
    let mut status_line = String::new();
    events.read_line(&mut status_line).unwrap();
    assert!(status_line.starts_with("HTTP/1.1 200"), "{status_line}");
    let r = post(&s, "/api/v1/probes/hostile/run", ADMIN);
    let id = r.json()["run"]["id"].as_str().unwrap().to_string();
    let mut states = Vec::new();
    let mut line = String::new();
    while !states.contains(&"succeeded".to_string()) {
        line.clear();
        assert!(
            events.read_line(&mut line).unwrap() > 0,
            "stream ended: {states:?}"
        );
        if let Some(data) = line.trim_end().strip_prefix("data: ") {
            let run: Value = serde_json::from_str(data).unwrap();
            if run["id"] == id.as_str() {
                states.push(run["status"].as_str().unwrap().to_string());
            }
        }
    }
    assert_eq!(states, ["queued", "running", "succeeded"]);

    // No agent in this daemon: every collector listed, none running.
    let collectors = ok_json(&s, "/api/v1/collectors");
    let names: Vec<&str> = collectors
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "oom",
            "exec",
            "tcp",
            "listen",
            "http",
            "kernel-log",
            "kube-events",
            "kube-audit"
        ]
    );
    assert!(
        collectors
            .as_array()
            .unwrap()
            .iter()
            // The cluster's events are kept from the snapshot; nothing else
            // sends data here.
            .filter(|c| c["name"] != "kube-events")
            .all(|c| c["available"] == false && c["nodes"].as_array().unwrap().is_empty())
    );

    let doc = s.get("/api/v1/openapi.json").json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/api/v1/whoami",
        "/api/v1/summary",
        "/api/v1/findings",
        "/api/v1/findings/{id}",
        "/api/v1/rules",
        "/api/v1/rules/{probe}/{rule}",
        "/api/v1/trends",
        "/api/v1/trends.svg",
        "/api/v1/report",
        "/api/v1/collectors",
        "/api/v1/collectors/batches",
        "/api/v1/audit",
        "/api/v1/collectors/{name}/rows",
        "/api/v1/traffic",
        "/api/v1/probes",
        "/api/v1/probes/{name}",
        "/api/v1/probes/{name}/run",
        "/api/v1/probes/{name}/suspend",
        "/api/v1/probes/{name}/resume",
        "/api/v1/runs",
        "/api/v1/runs/{id}",
        "/api/v1/events",
        "/api/v1/reload",
    ] {
        assert!(
            paths.contains_key(p),
            "{p} missing from the OpenAPI document"
        );
    }
    assert!(paths["/api/v1/probes"].get("post").is_some(), "upload");
    assert!(doc["components"]["schemas"]["FindingView"].is_object());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

/// A batch as `sonde agent --daemon` sends it: one exec event, one minute
/// of HTTP sums, the exec collector's state, all from `node`.
fn agent_batch(node: &str) -> Value {
    let buckets = vec![0u64; sonde::collectors::duration_buckets_us().len() + 1];
    serde_json::json!({
        "events": [{
            "ts_ms": 1_700_000_000_123i64, "node": node, "collector": "exec", "kind": "exec",
            "namespace": "shop", "pod": "web-0", "container": "app", "pod_uid": "uid-1",
            "container_id": "c0ffee", "cgroup": "/kubepods/pod-uid-1/c0ffee", "pid": 42,
            "comm": "sh", "fields": {"filename": "/bin/sh", "ppid": 1}
        }],
        "http": [{
            "minute_ms": 1_700_000_040_000i64, "node": node, "namespace": "shop", "pod": "web-0",
            "server": "10.0.0.7:8080", "method": "GET", "route": "/items/:id", "requests": 5,
            "errors": 1, "client_errors": 1, "duration_sum_us": 5000, "duration_max_us": 2000,
            "buckets": buckets
        }],
        "status": [{
            "node": node, "collector": "exec", "available": true, "reason": null,
            "events": 1, "dropped": 0, "started_at_ms": 1_700_000_000_000i64,
            "updated_at_ms": 1_700_000_000_500i64
        }]
    })
}

/// A minute of HTTP sums as an agent sends them: `durations_us` are the
/// minute's requests, `errors` of them answered 5xx.
fn http_minute(minute_ms: i64, pod: &str, route: &str, durations_us: &[u64], errors: i64) -> Value {
    let mut buckets = vec![0u64; sonde::collectors::duration_buckets_us().len() + 1];
    for d in durations_us {
        buckets[sonde::collectors::bucket_of(*d)] += 1;
    }
    serde_json::json!({
        "minute_ms": minute_ms, "node": "node-1", "namespace": "shop", "pod": pod,
        "server": format!("10.0.0.{}:8080", pod.len()), "method": "GET", "route": route,
        "requests": durations_us.len(), "errors": errors, "client_errors": 1,
        "duration_sum_us": durations_us.iter().sum::<u64>(),
        "duration_max_us": durations_us.iter().max().copied().unwrap_or(0),
        "buckets": buckets
    })
}

/// The start of the minute `back` minutes before this one, ms.
fn minute_ago(back: i64) -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    (now / 60_000 - back) * 60_000
}

/// Sends `http` minutes as a node agent does; the daemon must take them.
fn send_minutes(s: &Served, http: Vec<Value>) {
    let batch = serde_json::json!({"events": [], "status": [], "http": http});
    let r = send(
        s,
        AGENT,
        "application/json",
        &serde_json::to_vec(&batch).unwrap(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn traffic_adds_up_the_agents_http_minutes_per_pod_and_route() {
    let s = Served::start(&config(1 << 20));
    send_minutes(
        &s,
        vec![
            http_minute(minute_ago(10), "web-0", "/items/:id", &[1_000; 90], 9),
            http_minute(minute_ago(5), "web-0", "/cart", &[50_000; 10], 0),
            http_minute(minute_ago(2), "api-0", "/", &[2_000; 5], 0),
            // Two hours ago: outside the default hour.
            http_minute(minute_ago(120), "old-0", "/", &[2_000; 7], 6),
        ],
    );

    let view = ok_json(&s, "/api/v1/traffic");
    assert_eq!(view["by"], "pod");
    assert_eq!(view["step_ms"], 60_000);
    assert_eq!(view["truncated"], false);
    let services = view["services"].as_array().unwrap();
    let pods: Vec<&str> = services
        .iter()
        .map(|v| v["pod"].as_str().unwrap())
        .collect();
    assert_eq!(
        pods,
        ["web-0", "api-0"],
        "busiest first, the old minute left out"
    );
    let web = &services[0];
    assert_eq!(web["requests"], 100);
    assert_eq!(web["errors"], 9);
    assert_eq!(web["client_errors"], 2);
    assert!((web["error_ratio"].as_f64().unwrap() - 0.09).abs() < 1e-9);
    assert!((web["per_second"].as_f64().unwrap() - 100.0 / 3600.0).abs() < 1e-6);
    assert!(web["method"].is_null() && web["route"].is_null());
    let p50 = web["p50_ms"].as_f64().unwrap();
    let p99 = web["p99_ms"].as_f64().unwrap();
    assert!((0.9..=1.1).contains(&p50), "p50 {p50}");
    assert!((45.0..=50.0).contains(&p99), "p99 {p99}");
    assert_eq!(web["max_ms"], 50.0);
    let series: Vec<i64> = web["series_requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert_eq!(series.len(), 60);
    assert_eq!(series.iter().sum::<i64>(), 100);
    assert_eq!(series.iter().filter(|c| **c > 0).count(), 2, "{series:?}");

    let routes = ok_json(&s, "/api/v1/traffic?by=route");
    let names: Vec<(&str, &str)> = routes["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["pod"].as_str().unwrap(), v["route"].as_str().unwrap()))
        .collect();
    assert_eq!(
        names,
        [("web-0", "/items/:id"), ("web-0", "/cart"), ("api-0", "/")]
    );
    let only = ok_json(&s, "/api/v1/traffic?by=route&pod=web-0&route=%2Fcart");
    assert_eq!(only["services"].as_array().unwrap().len(), 1);
    assert_eq!(only["services"][0]["requests"], 10);
    let day = ok_json(&s, "/api/v1/traffic?minutes=1440&limit=1");
    assert_eq!(day["step_ms"], 3_600_000, "a day in points of an hour");
    assert_eq!(
        day["services"][0]["series_requests"]
            .as_array()
            .unwrap()
            .len(),
        25
    );
    assert_eq!(day["services"].as_array().unwrap().len(), 1);
    assert_eq!(day["truncated"], true, "three services, one shown");
    let all_day = ok_json(&s, "/api/v1/traffic?minutes=1440");
    let pods: Vec<&str> = all_day["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["pod"].as_str().unwrap())
        .collect();
    assert_eq!(pods, ["web-0", "old-0", "api-0"]);
    assert_eq!(all_day["services"][1]["errors"], 6);
    assert!(
        ok_json(&s, "/api/v1/traffic?namespace=elsewhere")["services"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    for (query, said) in [
        ("by=host", "by: \"host\" is neither pod nor route"),
        (
            "user=alice",
            "user: neither by, since, until, minutes, limit nor one of node",
        ),
        ("limit=0", "limit: \"0\" is not 1 to 1000"),
        (
            "since=yesterday",
            "since: \"yesterday\" is neither an RFC 3339 time",
        ),
    ] {
        let r = get(&s, &format!("/api/v1/traffic?{query}"), VIEWER);
        assert_eq!(r.status, 400, "{query}: {}", r.body);
        let message = r.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(message.starts_with(said), "{query}: {message}");
    }
    // An agent sends and reads nothing.
    assert_eq!(get(&s, "/api/v1/traffic", AGENT).status, 403);
}

/// The figures of a traffic view that must not depend on how it was read.
fn traffic_figures(view: &Value) -> Vec<(String, i64, i64, i64, Value, Value)> {
    view["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["pod"].as_str().unwrap().to_string(),
                v["requests"].as_i64().unwrap(),
                v["errors"].as_i64().unwrap(),
                v["client_errors"].as_i64().unwrap(),
                v["p99_ms"].clone(),
                v["series_requests"].clone(),
            )
        })
        .collect()
}

#[test]
fn a_long_window_reads_the_hours_the_daemon_adds_up_with_the_same_figures() {
    let dir = tempfile::tempdir().unwrap();
    let s = Served::start_in(dir.path(), &config(1 << 20)).unwrap();
    // Eight hours of minutes, one in ten, and one in the current minute.
    let mut minutes: Vec<Value> = (0..48)
        .map(|i| {
            let pod = if i % 3 == 0 { "api-0" } else { "web-0" };
            http_minute(minute_ago(10 * i + 1), pod, "/", &[2_000; 4], i % 2)
        })
        .collect();
    minutes.push(http_minute(minute_ago(0), "web-0", "/", &[90_000; 2], 1));
    send_minutes(&s, minutes);
    // A fixed window: both reads below ask for the same one.
    let query = format!(
        "/api/v1/traffic?since={}&until={}",
        minute_ago(720),
        minute_ago(-1)
    );
    let before = ok_json(&s, &query);
    assert_eq!(before["step_ms"], 3_600_000);
    assert_eq!(before["series_since"].as_i64().unwrap() % 3_600_000, 0);
    assert_eq!(before["complete_since"], Value::Null);
    let figures = traffic_figures(&before);
    let requests: i64 = figures.iter().map(|f| f.1).sum();
    assert_eq!(requests, 48 * 4 + 2);
    let series_sum: i64 = figures
        .iter()
        .flat_map(|f| f.5.as_array().unwrap().iter().map(|v| v.as_i64().unwrap()))
        .sum();
    assert_eq!(series_sum, requests, "every request in one point");

    // Restarted, the daemon adds up the hours that are over (at once,
    // then every minute); the view reads them and says the same.
    drop(s);
    let s = Served::start_in(dir.path(), &config(1 << 20)).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let hours = rt.block_on(async {
        let store = s.open_store().await;
        let this_hour = minute_ago(0) / 3_600_000 * 3_600_000;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !store
            .http_stale_hours(0, this_hour)
            .await
            .unwrap()
            .is_empty()
        {
            assert!(std::time::Instant::now() < deadline, "hours not added up");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let hours = store
            .http_red_hours_newest(0, i64::MAX, 1000)
            .await
            .unwrap();
        store.close().await;
        hours
    });
    assert!(hours.len() >= 8, "{} hour rows", hours.len());
    let after = ok_json(&s, &query);
    assert_eq!(traffic_figures(&after), figures);
}

/// The value of the first `name{...}` sample in `text` whose labels hold every one of `labels`.
fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .find(|l| labels.iter().all(|want| l.contains(want)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn the_metrics_carry_each_servers_http_rate_errors_and_duration() {
    let s = Served::start(&config(1 << 20));
    send_minutes(
        &s,
        vec![
            // Inside the last five whole minutes, whenever the scrape falls
            // in this minute or the next.
            http_minute(minute_ago(1), "pay-0", "/pay", &[20_000; 4], 2),
            http_minute(minute_ago(2), "pay-0", "/pay", &[20_000; 2], 0),
            // Long before: no series.
            http_minute(minute_ago(30), "old-0", "/", &[1_000; 3], 0),
        ],
    );
    let text = get(&s, "/metrics", VIEWER).body;
    let pay = [
        "pod=\"pay-0\"",
        "namespace=\"shop\"",
        "node=\"node-1\"",
        "server=\"10.0.0.5:8080\"",
    ];
    let rate = sample(&text, "sonde_http_requests_per_second", &pay).expect(&text);
    assert!((rate - 6.0 / 300.0).abs() < 1e-9, "{rate}");
    let errors = sample(&text, "sonde_http_server_errors_per_second", &pay).unwrap();
    assert!((errors - 2.0 / 300.0).abs() < 1e-9, "{errors}");
    let mut p99 = pay.to_vec();
    p99.push("quantile=\"0.99\"");
    let p99 = sample(&text, "sonde_http_request_duration_seconds", &p99).unwrap();
    assert!((0.018..=0.020).contains(&p99), "{p99}");
    assert!(!text.contains("pod=\"old-0\""), "{text}");
    assert!(
        text.contains("# TYPE sonde_http_requests_per_second gauge"),
        "{text}"
    );
}

fn send(s: &Served, token: &str, content_type: &str, body: &[u8]) -> crate::serve::Reply {
    s.request(
        "POST",
        "/api/v1/collectors/batches",
        Some(token),
        Some((content_type, body)),
    )
}

#[test]
fn agents_send_collector_batches_and_read_nothing() {
    let s = started();
    let batch = serde_json::to_vec(&agent_batch("node-7")).unwrap();
    // An agent token sends; the daemon says what it stored.
    let r = send(&s, AGENT, "application/json", &batch);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json(),
        serde_json::json!({"events": 1, "http": 1, "status": 1, "duplicate": false})
    );
    // A numbered request: stored once, however often it comes.
    let numbered = |sequence: &str| {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut resp = agent
            .post(&format!("{}/api/v1/collectors/batches", s.url))
            .header("Authorization", &format!("Bearer {AGENT}"))
            .header("Content-Type", "application/json")
            .header("Sonde-Agent-Instance", "0123abcd")
            .header("Sonde-Agent-Sequence", sequence)
            .send(&batch[..])
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.body_mut().read_to_string().unwrap())
    };
    let duplicate = |reply: (u16, String)| {
        assert_eq!(reply.0, 200, "{}", reply.1);
        serde_json::from_str::<Value>(&reply.1).unwrap()["duplicate"]
            .as_bool()
            .unwrap()
    };
    assert!(!duplicate(numbered("1")));
    assert!(duplicate(numbered("1")));
    assert!(!duplicate(numbered("2")));
    assert!(
        duplicate(numbered("1")),
        "an older number was stored before too"
    );
    let (status, body) = numbered("0");
    assert_eq!(status, 400);
    assert!(
        body.contains("sonde-agent-sequence: \\\"0\\\" is not a request number"),
        "{body}"
    );
    // The node's state is what the API shows of the collectors.
    let collectors = ok_json(&s, "/api/v1/collectors");
    let exec = collectors
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "exec")
        .unwrap();
    assert_eq!(exec["available"], true);
    assert_eq!(exec["nodes"][0]["node"], "node-7");
    assert_eq!(exec["nodes"][0]["events"], 1);
    // And what /metrics says of it: a node whose agent stops reporting shows
    // as a growing number of seconds (this batch's state is from 2023).
    let metrics = get(&s, "/metrics", ADMIN).body;
    let labels = r#"{node="node-7",collector="exec"}"#;
    assert!(
        metrics.contains(&format!("sonde_collector_available{labels} 1")),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!("sonde_collector_dropped{labels} 0")),
        "{metrics}"
    );
    let since: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix(&format!("sonde_collector_seconds_since_report{labels} ")))
        .expect("seconds since the report")
        .parse()
        .unwrap();
    assert!(since > 86_400.0 * 365.0, "{since}");
    // `sonde agent --check --daemon` says whether the daemon takes its data.
    let check = |token: &str| {
        let out = crate::cli::sonde()
            .args([
                "agent",
                "--check",
                "--collectors",
                "exec",
                "--node",
                "node-8",
            ])
            .args([
                "--daemon",
                s.url.as_str(),
                "--token-env",
                "SONDE_TEST_AGENT_TOKEN",
            ])
            .env("SONDE_TEST_AGENT_TOKEN", token)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (_, stdout) = check(AGENT);
    assert!(
        stdout.contains("/api/v1/collectors/batches takes this agent's data"),
        "{stdout}"
    );
    let (code, stdout) = check("not-a-token-0123456789");
    assert_eq!(code, Some(4), "{stdout}");
    assert!(
        stdout.contains("answered 401: the bearer token is not valid"),
        "{stdout}"
    );
    // The agent token reads nothing, not even who it is.
    for path in [
        "/api/v1/findings",
        "/api/v1/collectors",
        "/api/v1/whoami",
        "/metrics",
    ] {
        assert!(
            get(&s, path, AGENT)
                .error(403)
                .contains("agent token may only send collector data"),
            "{path}"
        );
    }
    assert!(
        post(&s, "/api/v1/reload", AGENT)
            .error(403)
            .contains("agent token")
    );
    // A viewer may not send; no token is a 401.
    assert!(
        send(&s, VIEWER, "application/json", &batch)
            .error(403)
            .contains("agent or admin token")
    );
    assert_eq!(
        s.request(
            "POST",
            "/api/v1/collectors/batches",
            None,
            Some(("application/json", &batch))
        )
        .status,
        401
    );
    // Not JSON, not a batch, a bad row, too big: refused, naming what.
    assert!(
        send(&s, AGENT, "text/plain", &batch)
            .error(415)
            .contains("application/json")
    );
    let e = send(&s, AGENT, "application/json", b"{\"events\": [}").error(400);
    assert!(
        e.contains("not a collector batch") && e.contains("line 1 column"),
        "{e}"
    );
    // A batch with one field changed, refused: the daemon's message.
    let refused_with = |field: &str, value: Value| {
        let mut bad = agent_batch("node-7");
        *bad.pointer_mut(field).unwrap() = value;
        send(
            &s,
            AGENT,
            "application/json",
            &serde_json::to_vec(&bad).unwrap(),
        )
        .error(400)
    };
    let e = refused_with("/events/0/collector", "keylogger".into());
    assert!(
        e.contains("events[0].collector: \"keylogger\" is not a collector"),
        "{e}"
    );
    let e = refused_with("/http/0/buckets", serde_json::json!([1, 2]));
    assert!(e.contains("http[0].buckets: 2 counts"), "{e}");
    let huge = vec![b' '; (16 << 20) + 1];
    assert!(
        send(&s, AGENT, "application/json", &huge)
            .error(413)
            .contains("the batch is larger than the 16777216 bytes allowed")
    );
    // In the daemon's store: the first batch's rows as sent, and nothing
    // of the refused ones.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = s.open_store().await;
        let events = store
            .collector_events("exec", 0, i64::MAX, 100)
            .await
            .unwrap();
        // The first batch, then numbers 1 and 2 once each.
        assert_eq!(events.len(), 3, "{events:?}");
        let e = &events[0];
        assert_eq!(
            (
                e.node.as_str(),
                e.pod.as_deref(),
                e.pid,
                e.fields["filename"].as_str()
            ),
            ("node-7", Some("web-0"), Some(42), Some("/bin/sh"))
        );
        let red = store.http_red(0, i64::MAX, 100).await.unwrap();
        assert_eq!(red.len(), 1, "{red:?}");
        assert_eq!(
            (red[0].route.as_str(), red[0].requests, red[0].errors),
            ("/items/:id", 5, 1)
        );
        store.close().await;
    });
}

/// One HTTP/1.1 message (head, then a body of its Content-Length) from `r`.
fn read_message(r: &mut impl std::io::Read) -> Vec<u8> {
    let mut msg = Vec::new();
    let mut byte = [0u8; 1];
    while !msg.ends_with(b"\r\n\r\n") {
        if r.read(&mut byte).unwrap() == 0 {
            return msg;
        }
        msg.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&msg).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).unwrap();
    msg.extend(body);
    msg
}

/// A loopback proxy to `daemon` that hands each request on and loses the
/// first `lose` answers (the connection closes without one), as a network
/// that fails after the daemon stored a request does.
fn lossy_proxy(daemon: &str, lose: usize) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let upstream = daemon.strip_prefix("http://").unwrap().to_string();
    std::thread::spawn(move || {
        for (n, conn) in listener.incoming().enumerate() {
            let Ok(mut client) = conn else { return };
            let request = read_message(&mut client);
            let mut up = std::net::TcpStream::connect(&upstream).unwrap();
            std::io::Write::write_all(&mut up, &request).unwrap();
            let answer = read_message(&mut up);
            if n < lose {
                continue;
            }
            // One request per connection: the client must not keep it.
            let text =
                String::from_utf8_lossy(&answer).replacen("\r\n", "\r\nconnection: close\r\n", 1);
            let _ = std::io::Write::write_all(&mut client, text.as_bytes());
        }
    });
    format!("http://{addr}")
}

/// The daemon's refusal: its status, message and the rows dropped.
fn refused(r: Result<(), sonde::agent::SinkError>) -> (u16, String, usize) {
    match r {
        Err(sonde::agent::SinkError::Refused {
            status,
            message,
            dropped,
            ..
        }) => (status, message, dropped),
        other => panic!("not refused: {other:?}"),
    }
}

#[test]
fn the_agent_sink_sends_each_event_once_and_keeps_what_the_daemon_did_not_take() {
    use sonde::agent::{DaemonSink, Sink, SinkError};
    use sonde::store::CollectorBatch;
    let s = started();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = s.open_store().await;
        let stored = |node: &'static str| {
            let store = store.clone();
            async move {
                let events = store
                    .collector_events("exec", 0, i64::MAX, 100_000)
                    .await
                    .unwrap();
                events
                    .into_iter()
                    .filter(|e| e.node == node)
                    .map(|e| e.ts_ms)
                    .collect::<Vec<_>>()
            }
        };
        let batch: CollectorBatch = serde_json::from_value(agent_batch("node-9")).unwrap();

        // A wrong token: refused; the event is held for sending again, the
        // state stays in the batch.
        let wrong = DaemonSink::new(&s.url, Some("not-a-token".into())).unwrap();
        let mut pending = batch.clone();
        let (status, message, dropped) =
            refused(Sink::Daemon(wrong.clone()).write(&mut pending).await);
        assert_eq!((status, dropped), (401, 0));
        assert!(message.contains("not valid"), "{message}");
        assert_eq!(wrong.unanswered_events(), 1);
        assert!(pending.events.is_empty());
        assert_eq!((pending.http.len(), pending.status.len()), (1, 1));
        // A daemon that is not there: the same.
        let gone = DaemonSink::new("http://127.0.0.1:9", Some(AGENT.into())).unwrap();
        let mut pending = batch.clone();
        assert!(matches!(
            Sink::Daemon(gone.clone()).write(&mut pending).await,
            Err(SinkError::Send { .. })
        ));
        assert_eq!(gone.unanswered_events(), 1);
        assert!(stored("node-9").await.is_empty());

        // The daemon stores a request but its answer is lost: sent again
        // with its number, the daemon knows it; the event is stored once.
        let lossy = DaemonSink::new(&lossy_proxy(&s.url, 1), Some(AGENT.into())).unwrap();
        let sink = Sink::Daemon(lossy.clone());
        let mut pending = batch.clone();
        assert!(matches!(
            sink.write(&mut pending).await,
            Err(SinkError::Send { .. })
        ));
        assert_eq!(
            stored("node-9").await.len(),
            1,
            "stored before the answer was lost"
        );
        assert_eq!(lossy.unanswered_events(), 1);
        sink.write(&mut pending).await.unwrap();
        assert!(pending.is_empty() && lossy.unanswered_events() == 0);
        assert_eq!(stored("node-9").await, vec![1_700_000_000_123]);

        // 3,000 events of 2 KiB: more than one request (4 MiB each), in
        // order, each event once.
        let sink = Sink::Daemon(DaemonSink::new(&s.url, Some(AGENT.into())).unwrap());
        let one = batch.events[0].clone();
        let mut big = CollectorBatch {
            events: (1..=3000)
                .map(|i| {
                    let mut e = one.clone();
                    e.node = "node-10".into();
                    e.ts_ms += i;
                    e.fields.insert(
                        "filename".into(),
                        format!("/bin/{i:04}{}", "x".repeat(2048)).into(),
                    );
                    e
                })
                .collect(),
            ..Default::default()
        };
        let sent = big.events.iter().map(|e| e.ts_ms).collect::<Vec<_>>();
        sink.write(&mut big).await.unwrap();
        assert!(big.is_empty());
        let mut got = stored("node-10").await;
        got.sort();
        assert_eq!(got, sent);

        // A row the daemon will never take is dropped, and counted.
        let mut bad = batch.clone();
        bad.events[0].kind = String::new();
        let (status, message, dropped) = refused(sink.write(&mut bad).await);
        assert_eq!((status, dropped), (400, 1));
        assert!(message.contains("events[0].kind"), "{message}");
        // ... and the rest of the batch still goes.
        sink.write(&mut bad).await.unwrap();
        assert!(bad.is_empty());
        store.close().await;
    });
}
