//! Unit tests of the control-plane audit's ComponentStatus and static-pod
//! rules (the endpoint judgements are tested in `endpoints`).

use super::*;
use serde_json::{Value, json};

/// 2026-11-22T18:20:00Z
const NOW: i64 = 1_795_371_600;

fn statuses(items: Value) -> Vec<ComponentStatus> {
    serde_json::from_value(items).unwrap()
}

fn found(findings: &[Finding]) -> Vec<(String, String)> {
    findings
        .iter()
        .map(|f| (f.rule.clone(), f.resource.as_ref().unwrap().name.clone()))
        .collect()
}

fn label<'a>(f: &'a Finding, key: &str) -> Option<&'a str> {
    f.labels
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

#[test]
fn unhealthy_component_statuses_are_findings() {
    // The items of the real API server's answer (list-componentstatuses.json).
    let cs = statuses(json!([
        {"metadata": {"name": "controller-manager", "creationTimestamp": null},
         "conditions": [{"type": "Healthy", "status": "False", "message": "Get \"https://127.0.0.1:10257/healthz\": dial tcp 127.0.0.1:10257: connect: connection refused"}]},
        {"metadata": {"name": "scheduler", "creationTimestamp": null},
         "conditions": [{"type": "Healthy", "status": "False", "message": "Get \"https://127.0.0.1:10259/healthz\": dial tcp 127.0.0.1:10259: connect: connection refused"}]},
        {"metadata": {"name": "etcd-0", "creationTimestamp": null},
         "conditions": [{"type": "Healthy", "status": "True", "message": "ok"}]},
    ]));
    let f = components::component_statuses(&cs);
    assert_eq!(
        found(&f),
        [
            (
                "ControllerManagerHealthStatus".into(),
                "controller-manager".into()
            ),
            ("SchedulerHealthStatus".into(), "scheduler".into()),
        ]
    );
    assert_eq!(
        f[1].message,
        "scheduler is not healthy (Healthy=False): Get \"https://127.0.0.1:10259/healthz\": dial tcp 127.0.0.1:10259: connect: connection refused"
    );
    let r = f[0].resource.as_ref().unwrap();
    assert_eq!(
        (
            r.api_version.as_str(),
            r.kind.as_str(),
            r.namespace.as_deref()
        ),
        ("v1", "ComponentStatus", None)
    );
}

#[test]
fn etcd_members_and_the_error_field() {
    let cs = statuses(json!([
        {"metadata": {"name": "etcd-1"},
         "conditions": [{"type": "Healthy", "status": "Unknown", "error": "Get https://192.168.13.8:2379/health: dial tcp 192.168.13.8:2379: connect: connection refused"}]},
        {"metadata": {"name": "etcd-0"}, "conditions": [{"type": "Healthy", "status": "True", "message": "{\"health\":\"true\"}"}]},
        {"metadata": {"name": "something-else"}, "conditions": [{"type": "Healthy", "status": "False"}]},
        {"metadata": {"name": "scheduler"}, "conditions": []},
    ]));
    let f = components::component_statuses(&cs);
    assert_eq!(found(&f), [("ETCDHealthStatus".into(), "etcd-1".into())]);
    assert!(f[0].message.ends_with("connect: connection refused"));
    assert_eq!(label(&f[0], "component"), Some("etcd-1"));
}

fn pod(name: &str, component: &str, status: Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "kube-system", "uid": format!("uid-{name}"),
                     "labels": {"component": component, "tier": "control-plane"}},
        "spec": {"nodeName": "cp-1", "containers": [{"name": component, "image": "registry.k8s.io/x:v1.28.7"}]},
        "status": status,
    }))
    .unwrap()
}

fn ready(status: &str) -> Value {
    json!([{"type": "Ready", "status": status, "reason": if status == "True" { "" } else { "ContainersNotReady" },
            "message": if status == "True" { "" } else { "containers with unready status: [x]" },
            "lastTransitionTime": "2026-11-22T18:00:00Z"}])
}

fn running(restarts: i32, last_finished: Option<&str>) -> Value {
    let mut cs = json!({"name": "c", "ready": true, "restartCount": restarts, "image": "x", "imageID": "",
                        "state": {"running": {"startedAt": "2026-11-22T17:00:00Z"}}});
    if let Some(t) = last_finished {
        cs["lastState"] =
            json!({"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": t}});
    }
    json!({"phase": "Running", "conditions": ready("True"), "containerStatuses": [cs]})
}

fn pods(list: &[Pod]) -> Vec<Finding> {
    audit(&[], list, NOW, &Config::default())
}

#[test]
fn running_and_ready_static_pods_are_fine() {
    let f = pods(&[
        pod("etcd-cp-1", "etcd", running(0, None)),
        pod(
            "kube-apiserver-cp-1",
            "kube-apiserver",
            running(2, Some("2026-10-01T00:00:00Z")),
        ),
        pod("kube-scheduler-cp-1", "kube-scheduler", running(0, None)),
    ]);
    assert!(f.is_empty(), "{f:?}");
}

#[test]
fn a_static_pod_not_ready_is_a_finding_with_its_transition_time() {
    let status = json!({"phase": "Running", "conditions": ready("False")});
    let f = pods(&[pod("kube-scheduler-cp-1", "kube-scheduler", status)]);
    assert_eq!(
        found(&f),
        [("SchedulerHealthStatus".into(), "kube-scheduler-cp-1".into())]
    );
    assert_eq!(
        f[0].message,
        "kube-scheduler-cp-1: not Ready (Ready=False): ContainersNotReady: containers with unready status: [x] since 2026-11-22T18:00:00Z"
    );
    assert_eq!(label(&f[0], "time"), Some("2026-11-22T18:00:00Z"));
    assert_eq!(label(&f[0], "node"), Some("cp-1"));
}

#[test]
fn a_static_pod_not_running_is_a_finding() {
    let status = json!({"phase": "Pending", "conditions": ready("False")});
    let f = pods(&[pod("etcd-cp-1", "etcd", status)]);
    assert_eq!(found(&f), [("ETCDHealthStatus".into(), "etcd-cp-1".into())]);
    assert!(
        f[0].message
            .starts_with("etcd-cp-1: phase Pending; not Ready")
    );
}

#[test]
fn a_restarting_static_pod_is_a_finding() {
    // Terminated ten minutes ago, within the window.
    let f = pods(&[pod(
        "kube-apiserver-cp-1",
        "kube-apiserver",
        running(4, Some("2026-11-22T18:10:00Z")),
    )]);
    assert_eq!(
        found(&f),
        [("ApiServerHealthStatus".into(), "kube-apiserver-cp-1".into())]
    );
    assert_eq!(
        f[0].message,
        "kube-apiserver-cp-1: container c restarted (4 restarts), last exit 1 (Error) at 2026-11-22T18:10:00Z"
    );
    assert_eq!(label(&f[0], "time"), Some("2026-11-22T18:10:00Z"));
    // Waiting to restart (CrashLoopBackOff): also not Ready.
    let status = json!({"phase": "Running", "conditions": ready("False"), "containerStatuses": [
        {"name": "kube-controller-manager", "ready": false, "restartCount": 9, "image": "x", "imageID": "",
         "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m0s restarting failed container"}}}]});
    let f = pods(&[pod(
        "kube-controller-manager-cp-1",
        "kube-controller-manager",
        status,
    )]);
    assert_eq!(
        found(&f),
        [(
            "ControllerManagerHealthStatus".into(),
            "kube-controller-manager-cp-1".into()
        )]
    );
    assert!(f[0].message.ends_with(
        "; container kube-controller-manager CrashLoopBackOff: back-off 5m0s restarting failed container (9 restarts)"
    ));
    assert_eq!(label(&f[0], "time"), Some("2026-11-22T18:00:00Z"));
}

#[test]
fn only_kubeadm_control_plane_pods_are_judged() {
    let mut other = pod("node-agent-x", "node-agent", json!({"phase": "Pending"}));
    assert!(
        pods(std::slice::from_ref(&other)).is_empty(),
        "unknown component"
    );
    other = pod("etcd-cp-1", "etcd", json!({"phase": "Pending"}));
    other.metadata.labels.as_mut().unwrap().remove("tier");
    assert!(pods(&[other]).is_empty(), "no tier=control-plane label");
}

#[test]
fn config_defaults_and_overrides() {
    let c: Config =
        serde_json::from_value(json!({"cert_expiry_days": 7, "scheduler_health": null})).unwrap();
    assert_eq!(c.cert_expiry_days, 7);
    assert_eq!(c.scheduler_health, None);
    assert_eq!(
        c.controller_manager_health.as_deref(),
        Some("https://127.0.0.1:10257/healthz")
    );
    assert!(serde_json::from_value::<Config>(json!({"cert_days": 7})).is_err());
}
