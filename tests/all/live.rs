//! The live backend against the fake API server that serves a real
//! kube-apiserver's recorded answers: same findings as the snapshot backend,
//! pagination, RBAC refusals, and a server that goes away and comes back.

use std::sync::Arc;

use serde_json::json;
use sonde::caps::HostServices;
use sonde::kube::{
    KindRef, KubeBackend, KubeError, ListQuery, LiveBackend, LiveOptions, SnapshotBackend,
};
use sonde::runtime::FailureReason;
use sonde_fake_apiserver::{ADMIN_TOKEN, FakeApiServer, RESTRICTED_TOKEN};
use sonde_probes::TEST_HOSTILE_PATH as PROBE;

use crate::{run, shared_fixture};

async fn live(
    server: &FakeApiServer,
    token: &str,
    page_size: u32,
) -> (LiveBackend, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = server.kubeconfig(dir.path(), token);
    let options = LiveOptions {
        kubeconfig: Some(kubeconfig),
        page_size,
        ..Default::default()
    };
    (LiveBackend::connect(options).await.expect("connects"), dir)
}

/// (rule, namespace/kind/name) of every finding of the workload audit over `backend`.
async fn workload_findings(backend: Arc<dyn KubeBackend>) -> Vec<(String, String)> {
    let report = crate::audit_builtin("workload-audit", backend).await;
    let mut found: Vec<(String, String)> = report
        .findings()
        .map(|(_, f)| (f.rule.clone(), crate::resource_key(f)))
        .collect();
    found.sort();
    found
}

#[tokio::test]
async fn live_and_snapshot_backends_give_the_same_findings() {
    // The snapshot: the very list responses the fake server answers with.
    let dir = tempfile::tempdir().unwrap();
    for kind in [
        "cronjobs",
        "deployments",
        "statefulsets",
        "daemonsets",
        "replicasets",
        "jobs",
        "pods",
    ] {
        let file = format!("list-{kind}.json");
        std::fs::copy(
            shared_fixture("responses").join(&file),
            dir.path().join(&file),
        )
        .unwrap();
    }
    let snapshot = Arc::new(SnapshotBackend::load(dir.path()).unwrap());
    let server = FakeApiServer::start().await;
    let (backend, _kc) = live(&server, ADMIN_TOKEN, 500).await;
    let from_snapshot = workload_findings(snapshot).await;
    let from_live = workload_findings(Arc::new(backend)).await;
    assert_eq!(from_live.len(), 63);
    assert_eq!(from_live, from_snapshot);
    // One paginated list per kind, after discovery.
    for path in [
        "/apis/apps/v1/deployments",
        "/apis/batch/v1/cronjobs",
        "/api/v1/pods",
    ] {
        assert_eq!(
            server.count("GET", path),
            1,
            "{path}: {:?}",
            server.requests()
        );
    }
    assert!(
        server.requests().iter().all(|r| r.status == 200),
        "{:?}",
        server.requests()
    );
}

#[tokio::test]
async fn lists_follow_continue_tokens() {
    let server = FakeApiServer::start().await;
    let (backend, _kc) = live(&server, ADMIN_TOKEN, 2).await;
    let page = backend
        .list(&KindRef::new("v1", "Pod"), &ListQuery::default())
        .await
        .unwrap();
    assert_eq!(page.items.len(), 10);
    let queries: Vec<String> = server
        .requests()
        .iter()
        .filter(|r| r.path == "/api/v1/pods")
        .map(|r| r.query.clone())
        .collect();
    assert_eq!(queries.len(), 5, "{queries:?}");
    assert_eq!(queries[0], "limit=2");
    assert!(
        queries[1..]
            .iter()
            .all(|q| q.starts_with("limit=2&continue="))
    );
    // Items carry kind and apiVersion, as kubectl shows them, and no managedFields.
    let first = &page.items[0].value;
    assert_eq!(
        (first["kind"].as_str(), first["apiVersion"].as_str()),
        (Some("Pod"), Some("v1"))
    );
    assert!(first["metadata"].get("managedFields").is_none());
}

#[tokio::test]
async fn rbac_refusals_reach_the_probe_as_denied() {
    let server = FakeApiServer::start().await;
    let (backend, _kc) = live(&server, RESTRICTED_TOKEN, 500).await;
    let err = backend
        .list(&KindRef::new("v1", "Pod"), &ListQuery::default())
        .await
        .unwrap_err();
    assert_eq!(
        err,
        KubeError::Forbidden(
            "pods is forbidden: User \"realkube-restricted\" cannot list resource \"pods\" in API group \"\" at the cluster scope".into()
        )
    );
    let shop = ListQuery {
        namespace: Some("shop".into()),
        ..Default::default()
    };
    assert_eq!(
        backend
            .list(&KindRef::new("v1", "Pod"), &shop)
            .await
            .unwrap()
            .items
            .len(),
        6
    );

    let services = Arc::new(HostServices {
        kube: Some(Arc::new(backend)),
        ..Default::default()
    });
    let out = run(
        PROBE,
        json!({"mode": "list-pods"}),
        None,
        Default::default(),
        services,
    )
    .await;
    match out.reason {
        Some(FailureReason::ProbeError { error }) => assert!(
            error.text().starts_with("denied: pods is forbidden"),
            "{}",
            error.text()
        ),
        other => panic!("expected denied, got {other:?}"),
    }
}

#[tokio::test]
async fn a_kind_the_cluster_does_not_serve_is_not_found() {
    let server = FakeApiServer::start().await;
    let (backend, _kc) = live(&server, ADMIN_TOKEN, 500).await;
    let err = backend
        .list(
            &KindRef::new("example.com/v1", "Widget"),
            &ListQuery::default(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, KubeError::NotFound(m) if m.contains("does not serve example.com/Widget")),
        "{err:?}"
    );
    let err = backend
        .get(&KindRef::new("v1", "Pod"), Some("shop"), "does-not-exist")
        .await
        .unwrap_err();
    assert_eq!(
        err,
        KubeError::NotFound("pods \"does-not-exist\" not found".into())
    );
}

#[tokio::test]
async fn a_server_that_goes_away_fails_the_run_and_the_next_run_recovers() {
    let mut server = FakeApiServer::start().await;
    let (backend, _kc) = live(&server, ADMIN_TOKEN, 500).await;
    let backend: Arc<dyn KubeBackend> = Arc::new(backend);
    let services = Arc::new(HostServices {
        kube: Some(backend),
        ..Default::default()
    });
    let ok = run(
        PROBE,
        json!({"mode": "list-pods"}),
        None,
        Default::default(),
        services.clone(),
    )
    .await;
    assert!(ok.succeeded(), "{:?}", ok.reason);
    server.stop();
    let down = run(
        PROBE,
        json!({"mode": "list-pods"}),
        None,
        Default::default(),
        services.clone(),
    )
    .await;
    match &down.reason {
        Some(FailureReason::ProbeError { error }) => {
            let text = error.text();
            assert!(
                text.starts_with("unavailable: cannot reach the API server http://127.0.0.1:"),
                "{text}"
            );
            assert!(text.contains("(context fake)"), "{text}");
        }
        other => panic!("expected unavailable, got {other:?}"),
    }
    server.resume().await;
    let again = run(
        PROBE,
        json!({"mode": "list-pods"}),
        None,
        Default::default(),
        services,
    )
    .await;
    assert!(again.succeeded(), "{:?}", again.reason);
    assert_eq!(again.findings.len(), 10);
}

#[tokio::test]
async fn refused_credentials_name_the_context_and_server() {
    let server = FakeApiServer::start().await;
    let (backend, _kc) = live(&server, "stolen-token", 500).await;
    let err = backend
        .get(&KindRef::new("v1", "Pod"), Some("shop"), "x")
        .await
        .unwrap_err();
    match err {
        KubeError::Forbidden(m) => {
            assert!(
                m.starts_with(&format!(
                    "the API server {} refused the credentials of context fake",
                    server.url()
                )),
                "{m}"
            )
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn objects_a_probe_creates_are_labelled_and_deleted_after_the_run() {
    let server = FakeApiServer::start().await;
    let (backend, _kc) = live(&server, ADMIN_TOKEN, 500).await;
    let backend: Arc<dyn KubeBackend> = Arc::new(backend);
    let services = Arc::new(HostServices {
        kube: Some(backend.clone()),
        ..Default::default()
    });
    let mut grants = sonde::grants::GrantSet::parse_spec("kube:create:ConfigMap:shop").unwrap();
    grants.extend(sonde::grants::GrantSet::parse_spec("kube:list:Pod").unwrap());
    let configmap = KindRef::new("v1", "ConfigMap");

    for mode in ["create", "create-then-panic"] {
        let out = run(
            PROBE,
            json!({"mode": mode}),
            Some(grants.clone()),
            Default::default(),
            services.clone(),
        )
        .await;
        if mode == "create" {
            assert!(out.succeeded(), "{:?}", out.reason);
            let created: serde_json::Value =
                serde_json::from_str(&out.findings[0].message).unwrap();
            assert_eq!(created["metadata"]["labels"]["sonde.dev/probe"], "hostile");
            assert_eq!(created["metadata"]["labels"]["sonde.dev/run"], "test");
        } else {
            assert!(
                matches!(out.reason, Some(FailureReason::Panic { .. })),
                "{:?}",
                out.reason
            );
        }
        assert!(
            out.logs
                .iter()
                .any(|l| l.source == "host"
                    && l.message.contains("deleted ConfigMap shop/sonde-check")),
            "{:?}",
            out.logs
        );
        let gone = backend
            .get(&configmap, Some("shop"), "sonde-check")
            .await
            .unwrap_err();
        assert!(matches!(gone, KubeError::NotFound(_)), "{mode}: {gone:?}");
    }
    assert_eq!(
        server.count("POST", "/api/v1/namespaces/shop/configmaps"),
        2
    );
    assert_eq!(
        server.count("DELETE", "/api/v1/namespaces/shop/configmaps/sonde-check"),
        2
    );
}

async fn cached(server: &FakeApiServer, token: &str) -> (LiveBackend, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = server.kubeconfig(dir.path(), token);
    let options = LiveOptions {
        kubeconfig: Some(kubeconfig),
        watch_cache: true,
        ..Default::default()
    };
    (LiveBackend::connect(options).await.expect("connects"), dir)
}

fn pod_requests(server: &FakeApiServer) -> (usize, usize) {
    let reqs: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.path == "/api/v1/pods")
        .collect();
    let watches = reqs.iter().filter(|r| r.query.contains("watch=")).count();
    (reqs.len() - watches, watches)
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..200 {
        if check() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_probes_reading_pods_cost_one_list_and_one_watch() {
    let server = FakeApiServer::start().await;
    let (backend, _kc) = cached(&server, ADMIN_TOKEN).await;
    let services = Arc::new(HostServices {
        kube: Some(Arc::new(backend)),
        ..Default::default()
    });
    let runs = (0..10).map(|_| {
        let services = services.clone();
        tokio::spawn(async move {
            run(
                PROBE,
                json!({"mode": "list-pods"}),
                None,
                Default::default(),
                services,
            )
            .await
        })
    });
    for handle in runs.collect::<Vec<_>>() {
        let out = handle.await.unwrap();
        assert!(out.succeeded(), "{:?}", out.reason);
        assert_eq!(out.findings.len(), 10);
    }
    eventually("the watch to start", || pod_requests(&server).1 == 1).await;
    assert_eq!(pod_requests(&server), (1, 1), "{:?}", server.requests());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cache_follows_the_watch_and_survives_410_gone_by_relisting() {
    let server = FakeApiServer::start().await;
    let (backend, _kc) = cached(&server, ADMIN_TOKEN).await;
    let pods = KindRef::new("v1", "Pod");
    let names = |page: sonde::kube::ObjectPage| {
        page.items
            .iter()
            .map(|o| o.name.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        backend
            .list(&pods, &ListQuery::default())
            .await
            .unwrap()
            .items
            .len(),
        10
    );
    eventually("the watch to start", || pod_requests(&server).1 == 1).await;

    let pod = json!({"metadata": {"name": "added-by-watch", "namespace": "shop", "uid": "u-1"}, "spec": {"containers": [{"name": "c", "image": "x:1"}]}});
    server.apply("", "pods", pod);
    for _ in 0..200 {
        if names(backend.list(&pods, &ListQuery::default()).await.unwrap())
            .contains(&"added-by-watch".to_string())
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(
        names(backend.list(&pods, &ListQuery::default()).await.unwrap())
            .contains(&"added-by-watch".to_string())
    );

    // The apiserver restarts: the watch ends, the re-watch gets 410 Expired, the cache relists.
    server.expire_watches();
    eventually("a relist after 410", || pod_requests(&server).0 == 2).await;
    let pod = json!({"metadata": {"name": "after-relist", "namespace": "shop", "uid": "u-2"}, "spec": {"containers": [{"name": "c", "image": "x:1"}]}});
    eventually("a new watch", || pod_requests(&server).1 >= 3).await;
    server.apply("", "pods", pod);
    let mut seen = Vec::new();
    for _ in 0..200 {
        seen = names(backend.list(&pods, &ListQuery::default()).await.unwrap());
        if seen.contains(&"after-relist".to_string()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(
        seen.contains(&"after-relist".to_string()) && seen.contains(&"added-by-watch".to_string()),
        "{seen:?}"
    );
    assert_eq!(seen.len(), 12);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forbidden_cluster_wide_watch_falls_back_to_the_namespace() {
    let server = FakeApiServer::start().await;
    let (backend, _kc) = cached(&server, RESTRICTED_TOKEN).await;
    let pods = KindRef::new("v1", "Pod");
    let err = backend
        .list(&pods, &ListQuery::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, KubeError::Forbidden(m) if m.contains("cannot list resource \"pods\"")),
        "{err:?}"
    );
    let shop = ListQuery {
        namespace: Some("shop".into()),
        ..Default::default()
    };
    assert_eq!(backend.list(&pods, &shop).await.unwrap().items.len(), 6);
}

#[tokio::test]
async fn pod_logs_and_discovery() {
    let server = FakeApiServer::start().await;
    let (backend, _kc) = live(&server, ADMIN_TOKEN, 500).await;
    let query = sonde::kube::LogQuery {
        container: Some("web".into()),
        tail_lines: Some(50),
        limit_bytes: 4096,
        ..Default::default()
    };
    let err = backend
        .pod_logs("shop", "web-7d9c6b5f4-9hzrm", &query)
        .await
        .unwrap_err();
    match err {
        KubeError::Unavailable(m) => assert!(
            m.ends_with("Get \"https://127.0.0.12:10250/containerLogs/shop/web-7d9c6b5f4-9hzrm/web?limitBytes=4096&tailLines=50\": dial tcp 127.0.0.12:10250: connect: connection refused"),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
    let kinds = backend.discover().await.unwrap();
    let find = |group: &str, kind: &str| {
        kinds
            .iter()
            .find(|r| r.group == group && r.kind == kind)
            .cloned()
    };
    let deploy = find("apps", "Deployment").expect("apps/Deployment");
    assert_eq!(
        (
            deploy.version.as_str(),
            deploy.plural.as_str(),
            deploy.namespaced
        ),
        ("v1", "deployments", true)
    );
    assert!(!find("", "Node").unwrap().namespaced);
    assert!(
        find("storage.k8s.io", "StorageClass").is_some(),
        "every group, from aggregated discovery"
    );
    // Aggregated discovery: two requests, not one per group.
    assert_eq!(
        server.count("GET", "/api") + server.count("GET", "/apis"),
        2
    );
}

#[tokio::test]
async fn leftovers_of_a_crashed_run_are_swept_and_recent_ones_kept() {
    let server = FakeApiServer::start().await;
    let (backend, _kc) = live(&server, ADMIN_TOKEN, 500).await;
    let now = jiff::Timestamp::now();
    let old = (now - jiff::SignedDuration::from_hours(2)).to_string();
    let cm = |name: &str, created: &str, labelled: bool| {
        let mut o = json!({"metadata": {"name": name, "namespace": "shop", "creationTimestamp": created}, "data": {}});
        if labelled {
            o["metadata"]["labels"] =
                json!({"sonde.dev/probe": "dns-check", "sonde.dev/run": "r-1"});
        }
        o
    };
    server.apply("", "configmaps", cm("left-behind", &old, true));
    server.apply("", "configmaps", cm("in-progress", &now.to_string(), true));
    server.apply("", "configmaps", cm("not-ours", &old, false));
    let grants =
        sonde::grants::GrantSet::parse_spec("kube:create,delete:ConfigMap,apps/*:shop").unwrap();
    let kinds = sonde::kube::sweep::creatable_kinds(&grants);
    assert_eq!(kinds, vec![KindRef::new("v1", "ConfigMap")]);
    let swept = sonde::kube::sweep::sweep_leftovers(
        &backend,
        &kinds,
        std::time::Duration::from_secs(600),
        now,
    )
    .await
    .unwrap();
    assert_eq!(swept, vec!["ConfigMap shop/left-behind"]);
    let cms = KindRef::new("v1", "ConfigMap");
    assert!(
        backend
            .get(&cms, Some("shop"), "left-behind")
            .await
            .is_err()
    );
    assert!(backend.get(&cms, Some("shop"), "in-progress").await.is_ok());
    assert!(backend.get(&cms, Some("shop"), "not-ours").await.is_ok());
}

#[tokio::test]
async fn throttling_and_server_errors_are_retried_with_backoff() {
    let server = FakeApiServer::start().await;
    let (backend, _kc) = live(&server, ADMIN_TOKEN, 500).await;
    let pods = KindRef::new("v1", "Pod");
    backend.discover().await.unwrap();
    let path = "/api/v1/namespaces/shop/pods/web-7d9c6b5f4-x2bqk";
    server.fail_next(&[429, 503]);
    let pod = backend
        .get(&pods, Some("shop"), "web-7d9c6b5f4-x2bqk")
        .await
        .unwrap();
    assert_eq!(pod.name, "web-7d9c6b5f4-x2bqk");
    let statuses: Vec<u16> = server
        .requests()
        .iter()
        .filter(|r| r.path == path)
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, vec![429, 503, 200]);
    server.fail_next(&[503, 503, 503, 503]);
    let err = backend
        .get(&pods, Some("shop"), "web-7d9c6b5f4-x2bqk")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, KubeError::Unavailable(m) if m.contains("(503)")),
        "{err:?}"
    );
    assert_eq!(
        server.count("GET", path),
        7,
        "four attempts, then the error"
    );
}

#[tokio::test]
async fn a_list_whose_continuation_expires_is_listed_again() {
    let server = FakeApiServer::start().await;
    let (backend, _kc) = live(&server, ADMIN_TOKEN, 2).await;
    backend.discover().await.unwrap();
    // The server restarts after the second page: the third page's token is too old.
    server.expire_after(2);
    let page = backend
        .list(&KindRef::new("v1", "Pod"), &ListQuery::default())
        .await
        .unwrap();
    assert_eq!(page.items.len(), 10, "a complete, consistent list");
    let statuses: Vec<u16> = server
        .requests()
        .iter()
        .filter(|r| r.path == "/api/v1/pods")
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, vec![200, 200, 410, 200, 200, 200, 200, 200]);
}
