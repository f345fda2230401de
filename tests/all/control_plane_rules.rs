//! The built-in control-plane audit: nothing to say of the fixture's dump (no
//! ComponentStatuses, no static pods, no API server to reach), the real API
//! server's ComponentStatuses through the fake server, and static pods.

use std::sync::Arc;

use sonde::audit::{self, ProbeSource};
use sonde::caps::HostServices;
use sonde::grants::GrantSet;
use sonde::kube::{KindRef, KubeBackend, ListQuery, LiveBackend, LiveOptions, SnapshotBackend};
use sonde_fake_apiserver::{ADMIN_TOKEN, FakeApiServer};

use crate::{audit_builtin, resource_key, runtime, shared_fixture};

fn found(report: &sonde::audit::AuditReport) -> Vec<(String, String)> {
    let mut f: Vec<_> = report
        .findings()
        .map(|(_, f)| (resource_key(f), f.rule.clone()))
        .collect();
    f.sort();
    f
}

#[track_caller]
fn logged(report: &sonde::audit::AuditReport, text: &str) {
    let logs = &report.runs[0].logs;
    assert!(
        logs.iter().any(|l| l.message.contains(text)),
        "no log line with {text:?}: {:#?}",
        logs.iter().map(|l| &l.message).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn fixture_dump_has_no_control_plane_findings() {
    let report = audit_builtin(
        "control-plane-audit",
        Arc::new(SnapshotBackend::load(&shared_fixture("snapshot-dump.yaml")).unwrap()),
    )
    .await;
    // The dump holds no ComponentStatus and no kubeadm static pod (only the API server and etcd ran).
    assert_eq!(found(&report), Vec::<(String, String)>::new());
    logged(
        &report,
        "skipped API server readiness (ApiServerHealthStatus, ETCDHealthStatus via /readyz), \
         API server certificate expiry (NodeApiServerExpiredPeriod), controller-manager and scheduler /healthz: \
         no live API server to reach",
    );
}

#[tokio::test]
async fn component_statuses_of_the_real_api_server() {
    let server = FakeApiServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let options = LiveOptions {
        kubeconfig: Some(server.kubeconfig(dir.path(), ADMIN_TOKEN)),
        ..Default::default()
    };
    let backend = Arc::new(LiveBackend::connect(options).await.unwrap());
    // The recorded answer itself, in its order (the API server's, not namespace/name order).
    let page = backend
        .list(
            &KindRef::new("v1", "ComponentStatus"),
            &ListQuery::default(),
        )
        .await
        .unwrap();
    let recorded: serde_json::Value = serde_json::from_slice(
        &std::fs::read(shared_fixture("responses/list-componentstatuses.json")).unwrap(),
    )
    .unwrap();
    let recorded = recorded["items"].as_array().unwrap();
    assert_eq!(page.items.len(), recorded.len());
    for (got, want) in page.items.iter().zip(recorded) {
        assert_eq!(got.value["metadata"], want["metadata"]);
        assert_eq!(got.value["conditions"], want["conditions"]);
    }

    // The probe reaches the API server where the host does (the fake, on loopback):
    // the recorded Service's cluster IP is not this machine's to call.
    let services = Arc::new(HostServices {
        kube: Some(backend),
        ..Default::default()
    });
    let mut probe = audit::prepare(
        runtime(),
        &ProbeSource::Builtin("control-plane-audit"),
        None,
        serde_json::json!({"apiserver": server.url()}).to_string(),
        Default::default(),
    )
    .await
    .unwrap();
    probe
        .grants
        .extend(GrantSet::parse_spec("http:127.0.0.1:*").unwrap());
    let report = audit::run_audit(runtime(), services, &[probe], "test".into(), vec![]).await;
    assert!(report.complete(), "{:?}", report.runs[0].reason);
    assert_eq!(
        found(&report),
        [
            (
                "/ComponentStatus/controller-manager".to_string(),
                "ControllerManagerHealthStatus".to_string()
            ),
            (
                "/ComponentStatus/scheduler".to_string(),
                "SchedulerHealthStatus".to_string()
            ),
        ]
    );
    let scheduler = report
        .findings()
        .find(|(_, f)| f.rule == "SchedulerHealthStatus")
        .unwrap()
        .1;
    assert_eq!(
        scheduler.message,
        "scheduler is not healthy (Healthy=False): Get \"https://127.0.0.1:10259/healthz\": dial tcp 127.0.0.1:10259: connect: connection refused"
    );
    assert_eq!(scheduler.severity.as_str(), "high");
    // A live API server: its recorded /readyz passed (no finding), asked without
    // credentials as the recorded RBAC allows; plain http carries no certificate.
    let readyz: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.path == "/readyz")
        .collect();
    assert_eq!(readyz.len(), 1, "{readyz:?}");
    assert_eq!(
        (
            readyz[0].query.as_str(),
            readyz[0].user.as_str(),
            readyz[0].status
        ),
        ("verbose", "system:anonymous", 200)
    );
    logged(
        &report,
        &format!(
            "certificate expiry check of {} skipped: the answer carries no peer certificate",
            server.url()
        ),
    );
    // Nothing listens on the scheduler's port here: not judged, the ComponentStatus is the verdict.
    logged(
        &report,
        "scheduler health check skipped: GET https://127.0.0.1:10259/healthz: ProbeError::Unavailable(",
    );
    assert_eq!(server.count("GET", "/api/v1/componentstatuses"), 2);
}

const STATIC_PODS: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: kube-scheduler-cp-1
  namespace: kube-system
  labels: {component: kube-scheduler, tier: control-plane}
spec:
  nodeName: cp-1
  containers: [{name: kube-scheduler, image: registry.k8s.io/kube-scheduler:v1.28.7}]
status:
  phase: Running
  conditions:
  - {type: Ready, status: "False", reason: ContainersNotReady, message: "containers with unready status: [kube-scheduler]", lastTransitionTime: "2026-11-22T18:00:00Z"}
  containerStatuses:
  - name: kube-scheduler
    ready: false
    restartCount: 7
    image: registry.k8s.io/kube-scheduler:v1.28.7
    imageID: ""
    state: {waiting: {reason: CrashLoopBackOff, message: "back-off 5m0s restarting failed container"}}
---
apiVersion: v1
kind: Pod
metadata:
  name: etcd-cp-1
  namespace: kube-system
  labels: {component: etcd, tier: control-plane}
spec:
  nodeName: cp-1
  containers: [{name: etcd, image: registry.k8s.io/etcd:3.5.9-0}]
status:
  phase: Running
  conditions:
  - {type: Ready, status: "True", lastTransitionTime: "2026-11-22T17:00:00Z"}
  containerStatuses:
  - {name: etcd, ready: true, restartCount: 0, image: registry.k8s.io/etcd:3.5.9-0, imageID: "", state: {running: {startedAt: "2026-11-22T17:00:00Z"}}}
---
apiVersion: v1
kind: Pod
metadata:
  name: kube-apiserver-cp-1
  namespace: kube-system
  labels: {component: kube-apiserver, tier: control-plane}
spec:
  nodeName: cp-1
  containers: [{name: kube-apiserver, image: registry.k8s.io/kube-apiserver:v1.28.7}]
status:
  phase: Pending
  conditions:
  - {type: Ready, status: "False", reason: ContainersNotReady, lastTransitionTime: "2026-11-22T18:05:00Z"}
"#;

#[tokio::test]
async fn static_pods_not_running_or_not_ready() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pods.yaml"), STATIC_PODS).unwrap();
    let snapshot = SnapshotBackend::load(dir.path()).unwrap();
    assert!(snapshot.issues().is_empty(), "{:?}", snapshot.issues());
    let report = audit_builtin("control-plane-audit", Arc::new(snapshot)).await;
    assert_eq!(
        found(&report),
        [
            (
                "kube-system/Pod/kube-apiserver-cp-1".to_string(),
                "ApiServerHealthStatus".to_string()
            ),
            (
                "kube-system/Pod/kube-scheduler-cp-1".to_string(),
                "SchedulerHealthStatus".to_string()
            ),
        ]
    );
    let time = |rule: &str| {
        let f = report.findings().find(|(_, f)| f.rule == rule).unwrap().1;
        f.labels
            .iter()
            .find(|(k, _)| k == "time")
            .map(|(_, v)| v.clone())
    };
    assert_eq!(
        time("SchedulerHealthStatus").as_deref(),
        Some("2026-11-22T18:00:00Z")
    );
    assert_eq!(
        time("ApiServerHealthStatus").as_deref(),
        Some("2026-11-22T18:05:00Z")
    );
    let scheduler = report
        .findings()
        .find(|(_, f)| f.rule == "SchedulerHealthStatus")
        .unwrap()
        .1;
    assert_eq!(
        scheduler.message,
        "kube-scheduler-cp-1: not Ready (Ready=False): ContainersNotReady: containers with unready status: [kube-scheduler] since 2026-11-22T18:00:00Z; \
         container kube-scheduler CrashLoopBackOff: back-off 5m0s restarting failed container (7 restarts)"
    );
}
