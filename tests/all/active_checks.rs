//! The built-in active checks against real servers on loopback: DNS through
//! dnsmasq, HTTP endpoints through a test server, and an etcd round trip
//! through a real etcd; then the same checks when the servers fail.

use std::sync::Arc;

use serde_json::json;
use sonde::caps::HostServices;
use sonde::caps::etcd::{EtcdClient, EtcdSettings};
use sonde::grants::GrantSet;
use sonde::runtime::{RunLimits, RunOutcome};
use sonde_probes::ACTIVE_CHECKS_PATH as PROBE;

use crate::run;

/// Exactly what the probe asks for in `describe()`.
async fn requested() -> GrantSet {
    let info = crate::runtime()
        .describe(&crate::load(PROBE), &Default::default())
        .await
        .unwrap();
    GrantSet::from_requested(&info.capabilities)
}

async fn grants() -> GrantSet {
    let mut g = requested().await;
    // Naming a nameserver needs it granted: the requested `dns` is the host's resolver only.
    g.extend(GrantSet::parse_spec("dns:127.0.0.1:*").unwrap());
    g
}

async fn check(config: serde_json::Value, services: Arc<HostServices>) -> RunOutcome {
    let limits = RunLimits {
        timeout_ms: 20_000,
        ..Default::default()
    };
    run(PROBE, config, Some(grants().await), limits, services).await
}

/// `rule: message` of each finding, sorted.
fn found(out: &RunOutcome) -> Vec<String> {
    assert!(out.succeeded(), "{:?}", out.reason);
    let mut f: Vec<String> = out
        .findings
        .iter()
        .map(|f| format!("{}: {}", f.rule, f.message))
        .collect();
    f.sort();
    f
}

#[tokio::test]
async fn dns_endpoints_and_etcd_pass_and_fail_as_the_servers_do() {
    let dns = crate::dns::start_dnsmasq();
    crate::dns::ready(&dns).await;
    let port = crate::http::serve(None).await;
    let etcd = crate::etcd::start_etcd(None);
    let services = crate::etcd::services(EtcdSettings {
        endpoints: vec![etcd.url.clone()],
        ..Default::default()
    });
    crate::etcd::ready(&services).await;
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
    let config = json!({
        "dns": {"names": ["web.sonde.test", "nope.sonde.test"], "nameservers": [dns.addr]},
        "endpoints": [
            {"name": "hello", "url": url("/hello"), "body_contains": "hello"},
            {"name": "wrong text", "url": url("/hello"), "body_contains": "welcome"},
            {"name": "missing", "url": url("/missing")},
            {"name": "slow", "url": url("/slow"), "timeout_ms": 300},
        ],
        "etcd": {},
    });
    let out = check(config.clone(), services.clone()).await;
    assert_eq!(
        found(&out),
        [
            format!(
                "ClusterDNSFailure: nope.sonde.test did not resolve through nameserver {0}: not found: nope.sonde.test: no such domain (NXDOMAIN)",
                dns.addr
            ),
            format!(
                "EndpointCheckFailed: missing: GET {} answered 404 (expected 2xx or 3xx)",
                url("/missing")
            ),
            format!(
                "EndpointCheckFailed: slow: GET {0} failed: timeout: GET {0}: no answer within 300 ms",
                url("/slow")
            ),
            format!(
                "EndpointCheckFailed: wrong text: GET {} answered 200 without \"welcome\" in its body",
                url("/hello")
            ),
        ]
    );
    // Not a live cluster: CoreDNS was not looked for, and the log says so.
    assert!(
        out.logs.iter().any(|l| l
            .message
            .starts_with("CoreDNS pods and the cluster DNS Service not checked")),
        "{:?}",
        out.logs
    );

    // The etcd round trip left nothing behind.
    let leftover = crate::run(
        sonde_probes::TEST_HOSTILE_PATH,
        json!({"mode": "etcd", "ops": [{"op": "get", "key": "/sonde-probe/round-trip"}]}),
        Some({
            let mut g = GrantSet::parse_spec("etcd:/sonde-probe/").unwrap();
            g.extend(GrantSet::parse_spec("kube:list:Pod").unwrap());
            g
        }),
        Default::default(),
        services,
    )
    .await;
    assert_eq!(
        leftover.findings[0].message,
        "get /sonde-probe/round-trip: none"
    );

    // etcd gone, DNS server gone: findings, and the run still ends well.
    drop(etcd);
    drop(dns);
    let gone = Arc::new(HostServices {
        etcd: EtcdClient::new(EtcdSettings {
            endpoints: vec![format!("http://127.0.0.1:{}", crate::etcd::free_port())],
            timeout_ms: Some(1_000),
            ..Default::default()
        })
        .unwrap(),
        ..Default::default()
    });
    let config = json!({
        "dns": {"names": ["web.sonde.test"], "nameservers": [config["dns"]["nameservers"][0]]},
        "etcd": {},
    });
    let out = check(config, gone).await;
    let f = found(&out);
    assert_eq!(f.len(), 2, "{f:?}");
    assert!(
        f[0].starts_with(
            "ClusterDNSFailure: web.sonde.test did not resolve through nameserver 127.0.0.1:"
        ),
        "{f:?}"
    );
    assert!(
        f[1].starts_with("EtcdRoundTripFailed: etcd put of /sonde-probe/round-trip failed: unavailable: etcd put /sonde-probe/round-trip"),
        "{f:?}"
    );
}

#[tokio::test]
async fn a_grant_that_does_not_cover_a_check_is_logged_not_blamed_on_the_cluster() {
    let port = crate::http::serve(None).await;
    let config = json!({
        "dns": {"nameservers": ["127.0.0.1:1"]},
        "endpoints": [{"name": "hello", "url": format!("http://127.0.0.1:{port}/hello")}],
    });
    // Only what the probe asks for: no nameserver may be named, every http target may be called.
    let grants = requested().await;
    let out = run(
        PROBE,
        config,
        Some(grants),
        Default::default(),
        Default::default(),
    )
    .await;
    assert_eq!(found(&out), Vec::<String>::new());
    assert!(
        out.logs.iter().any(|l| l.message
            == "DNS check of kubernetes.default.svc.cluster.local through nameserver 127.0.0.1:1 skipped: denied: dns access not granted: resolve kubernetes.default.svc.cluster.local at 127.0.0.1:1"),
        "{:?}",
        out.logs
    );
}

#[tokio::test]
async fn a_pod_that_does_not_start_is_reported_and_deleted() {
    use sonde::kube::{LiveBackend, LiveOptions};
    use sonde_fake_apiserver::{ADMIN_TOKEN, FakeApiServer};
    let server = FakeApiServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let backend = LiveBackend::connect(LiveOptions {
        kubeconfig: Some(server.kubeconfig(dir.path(), ADMIN_TOKEN)),
        ..Default::default()
    })
    .await
    .unwrap();
    let services = Arc::new(HostServices {
        kube: Some(Arc::new(backend)),
        ..Default::default()
    });
    // No kubelet runs behind the recorded server: the pod stays Pending. The
    // recorded CoreDNS pods' addresses are not this machine's: not asked.
    let config = json!({
        "dns": {"coredns": false, "names": []},
        "pod": {"namespace": "shop", "timeout_seconds": 1, "poll_ms": 200},
    });
    let out = check(config, services).await;
    let f = found(&out);
    assert_eq!(f.len(), 1, "{f:?}");
    assert!(
        f[0].starts_with("PodLifecycleFailed: pod shop/sonde-check-")
            && f[0].ends_with("was not running and ready after 1 s: Pending"),
        "{f:?}"
    );
    let requests = server.requests();
    let created: Vec<_> = requests
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/api/v1/namespaces/shop/pods")
        .collect();
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].status, 201);
    let deleted: Vec<_> = requests
        .iter()
        .filter(|r| {
            r.method == "DELETE"
                && r.path
                    .starts_with("/api/v1/namespaces/shop/pods/sonde-check-")
        })
        .collect();
    assert_eq!(deleted.len(), 1, "{requests:?}");
    assert_eq!(deleted[0].status, 200);
    let polls = requests
        .iter()
        .filter(|r| {
            r.method == "GET"
                && r.path
                    .starts_with("/api/v1/namespaces/shop/pods/sonde-check-")
        })
        .count();
    assert!(
        (3..=12).contains(&polls),
        "{polls} reads in a second at 200 ms"
    );
}

#[tokio::test]
async fn an_https_endpoints_certificate_must_stay_valid_long_enough() {
    use sonde::caps::dns::DnsSettings;
    use sonde::caps::http::{HttpClient, HttpSettings};
    // The test server's certificate is valid until 2036-01-02: a threshold
    // of 5,000 days (to 2039 or later) finds it too short, 0 checks nothing.
    let pki = crate::pki::pki();
    let port = crate::http::serve(Some(pki.acceptor())).await;
    let services = Arc::new(HostServices {
        http: HttpClient::new(
            HttpSettings {
                ca_files: vec![pki.ca_file.clone()],
                ..Default::default()
            },
            DnsSettings::default(),
        )
        .unwrap(),
        ..Default::default()
    });
    let url = format!("https://127.0.0.1:{port}/hello");
    let config = json!({"endpoints": [
        {"name": "api", "url": url, "cert_expiry_days": 5000},
        {"name": "unchecked", "url": url, "cert_expiry_days": 0},
        {"name": "default", "url": url},
    ]});
    let f = found(&check(config, services).await);
    assert_eq!(f.len(), 1, "{f:?}");
    assert!(
        f[0].starts_with(&format!(
            "EndpointCertificateExpiring: api: the certificate of {url} (CN=kube-apiserver, issued by CN=sonde-test-ca) expires on 2036-01-02 (in "
        )) && f[0].ends_with("days, under the 5000-day threshold)"),
        "{f:?}"
    );
}

#[tokio::test]
async fn a_user_flow_logs_in_and_uses_its_session_and_a_refused_log_in_is_named() {
    let port = crate::http::serve(None).await;
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
    let flow = |password: &str| {
        json!({
            "name": format!("orders as ops ({password})"),
            "steps": [
                {"name": "log in", "method": "POST", "url": url("/login"),
                 "headers": {"Content-Type": "application/json"},
                 "body": format!("{{\"user\": \"ops\", \"password\": \"{password}\"}}"),
                 "expect_status": [200],
                 "capture": {"token": "/token", "user": "/user/id", "session": "header:X-Session"}},
                {"name": "orders", "url": url("/users/${user}/orders"),
                 "headers": {"Authorization": "Bearer ${token}", "X-Session": "${session}"},
                 "body_contains": "orders: 3"},
            ]
        })
    };
    let config = json!({
        "dns": {"coredns": false, "names": []},
        // An endpoint's body goes out as given.
        "endpoints": [{"name": "echo", "method": "POST", "url": url("/echo"),
                       "body": "ping", "body_contains": "POST  ping"}],
        "flows": [flow("s3cret"), flow("wrong")],
    });
    let out = check(config, Arc::default()).await;
    assert_eq!(
        found(&out),
        [format!(
            "UserFlowFailed: flow orders as ops (wrong): step 1 (log in): POST {} answered 401 (expected [200])",
            url("/login")
        )]
    );
    let f = out
        .findings
        .iter()
        .find(|f| f.rule == "UserFlowFailed")
        .unwrap();
    assert!(
        f.labels
            .contains(&("flow".into(), "orders as ops (wrong)".into())),
        "{:?}",
        f.labels
    );
}
