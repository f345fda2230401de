//! The API server's audit webhook into the daemon: the recorded batches (the
//! POST bodies a real kube-apiserver 1.28 sent, `shared/fixtures`) sent as
//! it sends them, each record stored once however often a batch comes,
//! refused whole when a record is malformed, refused from tokens not meant
//! for it; the recorded audit log sent as lines; and the audit-activity
//! probe's findings over what was stored.

use serde_json::Value;

use crate::serve::Served;

const VIEWER: &str = "viewer-token-0123456789";
const ADMIN: &str = "admin-token-0123456789";
const AUDIT: &str = "audit-token-0123456789";
const AGENT: &str = "agent-token-0123456789";

fn fixtures() -> std::path::PathBuf {
    sonde_fake_apiserver::default_fixtures()
}

fn batch(n: u32) -> Vec<u8> {
    std::fs::read(fixtures().join(format!("audit-webhook-batch-{n:02}.json"))).unwrap()
}

const BATCHES: [u32; 6] = [2, 5, 6, 7, 8, 10];

fn started() -> Served {
    // The records are from 2026-11-22: a window of ten years covers them.
    Served::start(&format!(
        r#"
listen: 127.0.0.1:0
cluster: {{snapshot: "{{cluster}}"}}
store: {{path: "{{dir}}/sonde.db"}}
# The records are old: retention keeps them for the test.
retention: {{max_age_days: null}}
auth:
  tokens:
    - {{name: dash, role: viewer, token: "{VIEWER}"}}
    - {{name: ops, role: admin, token: "{ADMIN}"}}
    - {{name: kube-apiserver, role: audit, token: "{AUDIT}"}}
    - {{name: node-agents, role: agent, token: "{AGENT}"}}
probes:
  - name: audit-activity
    config: {{window_minutes: 5256000, forbidden_threshold: 5}}
"#
    ))
}

/// POSTs `body` as the API server's webhook does.
fn send(s: &Served, token: &str, content_type: &str, body: &[u8]) -> crate::serve::Reply {
    s.request(
        "POST",
        "/api/v1/audit?timeout=30s",
        Some(token),
        Some((content_type, body)),
    )
}

fn accepted(r: &crate::serve::Reply) -> (u64, u64, u64) {
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    let n = |k: &str| v[k].as_u64().unwrap();
    (n("received"), n("stored"), n("duplicates"))
}

fn audit_collector(s: &Served) -> Value {
    let all = s
        .request("GET", "/api/v1/collectors", Some(VIEWER), None)
        .json();
    all.as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "kube-audit")
        .cloned()
        .expect("a kube-audit collector")
}

#[test]
fn the_webhook_stores_each_record_once_and_refuses_what_it_cannot_read() {
    let s = started();
    // Before any batch: listed, unavailable.
    assert_eq!(audit_collector(&s)["available"], false);

    let mut total = 0;
    for n in BATCHES {
        let (received, stored, duplicates) =
            accepted(&send(&s, AUDIT, "application/json", &batch(n)));
        assert_eq!((stored, duplicates), (received, 0), "batch {n}");
        total += received;
    }
    assert_eq!(total, 409);
    // The API server sends a batch again when its answer was lost.
    assert_eq!(
        accepted(&send(&s, AUDIT, "application/json", &batch(5))),
        (159, 0, 159)
    );
    let c = audit_collector(&s);
    assert_eq!(c["available"], true, "{c}");
    assert_eq!(c["nodes"][0]["node"], "kube-apiserver", "{c}");
    assert_eq!(c["nodes"][0]["events"], 409, "{c}");

    // A record it cannot read: the batch is refused whole, naming it.
    let mut bad: Value = serde_json::from_slice(&batch(6)).unwrap();
    bad["items"][2].as_object_mut().unwrap().remove("stage");
    bad["items"][0]["auditID"] = "new-id".into();
    let r = send(
        &s,
        AUDIT,
        "application/json",
        &serde_json::to_vec(&bad).unwrap(),
    );
    assert!(
        r.error(400)
            .starts_with("invalid audit batch: items[2]: missing field `stage` at line 1 column "),
        "{}",
        r.body
    );
    bad["items"][2]["stage"] = "Finished".into();
    let r = send(
        &s,
        AUDIT,
        "application/json",
        &serde_json::to_vec(&bad).unwrap(),
    );
    assert!(
        r.error(400)
            .starts_with("invalid audit batch: items[2].stage: \"Finished\" is not one of"),
        "{}",
        r.body
    );
    let r = send(
        &s,
        AUDIT,
        "application/json",
        b"{\"kind\": \"EventList\", \"apiVersion\": \"audit.k8s.io/v1beta1\", \"items\": []}",
    );
    assert!(r.error(400).contains("audit.k8s.io/v1beta1"), "{}", r.body);
    assert!(
        send(&s, AUDIT, "application/json", b"{")
            .error(400)
            .starts_with("invalid audit batch: not an audit.k8s.io/v1 EventList")
    );
    assert!(
        send(&s, AUDIT, "text/plain", &batch(10))
            .error(415)
            .contains("application/json")
    );
    assert_eq!(
        audit_collector(&s)["nodes"][0]["events"],
        409,
        "nothing of the refused batches"
    );

    // Who may send: the audit token and an admin's; not a viewer or an
    // agent, and the audit token reads nothing.
    assert_eq!(
        accepted(&send(&s, ADMIN, "application/json", &batch(10))),
        (4, 0, 4)
    );
    assert_eq!(send(&s, VIEWER, "application/json", &batch(10)).status, 403);
    assert_eq!(send(&s, AGENT, "application/json", &batch(10)).status, 403);
    let r = s.request(
        "POST",
        "/api/v1/audit",
        None,
        Some(("application/json", &batch(10)[..])),
    );
    assert_eq!(r.status, 401);
    for path in ["/api/v1/findings", "/api/v1/collectors", "/metrics"] {
        assert_eq!(
            s.request("GET", path, Some(AUDIT), None).status,
            403,
            "{path}"
        );
    }
    assert_eq!(
        s.request(
            "POST",
            "/api/v1/collectors/batches",
            Some(AUDIT),
            Some(("application/json", b"{}".as_slice()))
        )
        .status,
        403
    );

    // People browse the records: by field, newest first, a page at a time.
    let rows = |query: &str| {
        s.request(
            "GET",
            &format!("/api/v1/collectors/kube-audit/rows?{query}"),
            Some(VIEWER),
            None,
        )
    };
    let day = "since=2026-11-22T00:00:00Z&until=2026-11-23T00:00:00Z";
    let page = rows(&format!("{day}&user=realkube-restricted&code=403")).json();
    let columns: Vec<&str> = page["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let col = |name: &str| columns.iter().position(|c| *c == name).unwrap();
    let items = page["rows"].as_array().unwrap();
    assert_eq!(items.len(), 6, "{page}");
    assert_eq!(page["truncated"], false);
    assert!(
        items
            .iter()
            .all(|r| r[col("user")] == "realkube-restricted" && r[col("code")] == 403)
    );
    let times: Vec<i64> = items
        .iter()
        .map(|r| r[col("ts")].as_i64().unwrap())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {times:?}"
    );
    let page = rows(&format!("{day}&user=realkube-restricted&code=403&limit=2")).json();
    assert_eq!(
        (page["rows"].as_array().unwrap().len(), &page["truncated"]),
        (2, &Value::Bool(true))
    );
    assert!(
        rows("colour=red")
            .error(400)
            .starts_with("colour: neither since, until, minutes, limit nor a field of kube-audit")
    );
    assert!(rows("code=many").error(400).contains("is not an integer"));
    assert!(
        rows("since=yesterday")
            .error(400)
            .starts_with("since: \"yesterday\" is neither")
    );
    assert_eq!(
        rows(day).json()["rows"].as_array().unwrap().len(),
        100,
        "a page"
    );
    let r = s.request("GET", "/api/v1/collectors/nope/rows", Some(VIEWER), None);
    assert_eq!(r.status, 404);
    // The cluster's events, kept from the snapshot since the daemon started.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let events = loop {
        let page = s
            .request(
                "GET",
                "/api/v1/collectors/kube-events/rows?since=2026-11-01T00:00:00Z&reason=BackOff&type=Warning",
                Some(VIEWER),
                None,
            )
            .json();
        if !page["rows"].as_array().unwrap().is_empty() {
            break page;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no events kept: {page}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let pod = events["columns"]
        .as_array()
        .unwrap()
        .iter()
        .position(|c| c == "pod")
        .unwrap();
    assert_eq!(events["rows"][0][pod], "web-7d9c6b5f4-9hzrm", "{events}");

    // The audit log of the same server, as lines: what the webhook sent is
    // there too, and stored once.
    let log = std::fs::read(fixtures().join("audit-log.jsonl")).unwrap();
    assert_eq!(
        accepted(&send(&s, AUDIT, "application/x-ndjson", &log)),
        (1307, 1307 - 409, 409)
    );
}

fn wait_run(s: &Served, id: &str) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let run = s
            .request("GET", &format!("/api/v1/runs/{id}"), Some(VIEWER), None)
            .json();
        if matches!(run["status"].as_str(), Some("succeeded" | "failed")) {
            return run;
        }
        assert!(std::time::Instant::now() < deadline, "{run}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// The rule and message of each finding of the probe's last run.
fn run_probe(s: &Served) -> Vec<(String, String, String)> {
    let r = s.request(
        "POST",
        "/api/v1/probes/audit-activity/run",
        Some(ADMIN),
        None,
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let run = wait_run(s, r.json()["run"]["id"].as_str().unwrap());
    assert_eq!(run["status"], "succeeded", "{run}");
    let page = s
        .request(
            "GET",
            "/api/v1/findings?probe=audit-activity&limit=100",
            Some(VIEWER),
            None,
        )
        .json();
    let mut out: Vec<(String, String, String)> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let r = &f["resource"];
            let on = if r.is_null() || r["kind"] == "" {
                "cluster".to_string()
            } else {
                format!(
                    "{}/{}/{}",
                    r["kind"].as_str().unwrap(),
                    r["namespace"].as_str().unwrap_or(""),
                    r["name"].as_str().unwrap()
                )
            };
            (
                f["rule"].as_str().unwrap().to_string(),
                on,
                f["message"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn the_audit_activity_probe_reports_who_did_what() {
    let s = started();
    // No records yet: the probe runs, says why it reports nothing.
    assert!(run_probe(&s).is_empty());

    for n in BATCHES {
        accepted(&send(&s, AUDIT, "application/json", &batch(n)));
    }
    // Beside the recorded traffic, what the recording has none of: an
    // exec into a pod, an anonymous read of a secret, six refusals.
    let extra = std::fs::read_to_string(
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/audit/extra-batch.json"),
    )
    .unwrap();
    accepted(&send(&s, AUDIT, "application/json", extra.as_bytes()));

    let found = run_probe(&s);
    let rules: Vec<&str> = found.iter().map(|f| f.0.as_str()).collect();
    assert_eq!(
        rules,
        [
            "AuditAnonymousAllowed",
            "AuditClusterAdminBound",
            "AuditForbiddenBurst",
            "AuditForbiddenBurst",
            "AuditImpersonation",
            "AuditPodExec",
            "AuditSecretsRead",
            "AuditSecretsRead",
        ],
        "{found:#?}"
    );
    let by = |rule: &str| -> Vec<&(String, String, String)> {
        found.iter().filter(|f| f.0 == rule).collect()
    };
    // The recorded ClusterRoleBinding ci-admin; the API server's own
    // bootstrap binding (to system:masters) is not reported.
    let admin = by("AuditClusterAdminBound")[0];
    assert_eq!(admin.1, "ClusterRoleBinding//ci-admin");
    assert!(
        admin.2.starts_with(
            "realkube-admin created ClusterRoleBinding ci-admin binding cluster-admin cluster-wide to ServiceAccount:shop/deployer (last at 2026-11-22T18:2"
        ),
        "{}",
        admin.2
    );
    // The recorded impersonation: one request allowed, one refused.
    let imp = by("AuditImpersonation")[0];
    assert!(
        imp.2.starts_with("realkube-admin sent 2 requests as realkube-restricted in the last 5256000 minutes (1 allowed, 1 refused; last at 2026-11-22T"),
        "{}",
        imp.2
    );
    // The recorded secret reads by realkube-admin (the API server's own are
    // not a person's): one finding per namespace, and one for all of them.
    let secrets = by("AuditSecretsRead");
    assert_eq!(secrets[0].1, "Namespace//shop", "{secrets:?}");
    assert!(
        secrets[0].2.starts_with("realkube-admin read secrets in namespace shop 2 times in the last 5256000 minutes (get db-credentials, list; last at 2026-11-22T"),
        "{}",
        secrets[0].2
    );
    assert_eq!(secrets[1].1, "cluster");
    assert!(
        secrets[1]
            .2
            .starts_with("realkube-admin read secrets in every namespace once"),
        "{}",
        secrets[1].2
    );
    // The exec of the extra batch, on its pod.
    let exec = by("AuditPodExec")[0];
    assert_eq!(exec.1, "Pod/shop/web-7d9c6b5f4-x2bqk");
    assert!(
        exec.2
            .starts_with("oncall-engineer@example.com opened exec into the pod once"),
        "{}",
        exec.2
    );
    // The anonymous read of a secret; the anonymous /version and /healthz
    // of the extra batch are public, and the recorded 401 was not allowed.
    let anon = by("AuditAnonymousAllowed")[0];
    assert!(
        anon.2.starts_with("the API server allowed 1 request from system:anonymous in the last 5256000 minutes: get /api/v1/namespaces/shop/secrets/db-credentials (last at"),
        "{}",
        anon.2
    );
    // Refused more than 5 times: mallory (the extra batch) and
    // realkube-restricted (the recording).
    let refused = by("AuditForbiddenBurst");
    assert!(
        refused[0].2.starts_with(
            "mallory was refused 6 times in the last 5256000 minutes (threshold 5): list secrets (6) (last at 2026-11-22T18:30:00Z)"
        ),
        "{}",
        refused[0].2
    );
    assert!(
        refused[1]
            .2
            .starts_with("realkube-restricted was refused 6 times"),
        "{}",
        refused[1].2
    );
}
