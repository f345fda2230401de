//! The built-in kernel audit: node-problem-detector's OOMKilling event in the
//! fixture (reported once, by kernel-audit, not by event-audit), the same
//! from the fake live API server, and NPD's conditions and events on Nodes.

use std::sync::Arc;

use sonde::kube::{LiveBackend, LiveOptions, SnapshotBackend};
use sonde_fake_apiserver::{ADMIN_TOKEN, FakeApiServer};

use crate::{audit_builtin, resource_key, shared_fixture};

/// (resource, rule, time label, count label) of every finding.
fn found(report: &sonde::audit::AuditReport) -> Vec<(String, String, String, String)> {
    let mut f: Vec<_> = report
        .findings()
        .map(|(_, f)| {
            let label = |key: &str| {
                f.labels
                    .iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            (
                resource_key(f),
                f.rule.clone(),
                label("time"),
                label("count"),
            )
        })
        .collect();
    f.sort();
    f
}

fn row(r: &str, rule: &str, time: &str, count: &str) -> (String, String, String, String) {
    (r.into(), rule.into(), time.into(), count.into())
}

const OOM: &str = "OOMKilling x1 (last 2026-11-22T18:11:43Z): Out of memory: Killed process 41785 (redis-server) \
     total-vm:306204kB, anon-rss:130968kB, file-rss:4096kB, shmem-rss:0kB, UID:999 pgtables:452kB oom_score_adj:984";

#[track_caller]
fn assert_fixture_findings(report: &sonde::audit::AuditReport) {
    assert_eq!(
        found(report),
        [row("/Node/node-2", "NodeOOM", "2026-11-22T18:11:43Z", "1")]
    );
    let oom = report.findings().next().unwrap().1;
    assert_eq!(oom.message, OOM);
    assert_eq!(oom.severity.as_str(), "high");
    // The Node is in the cluster: its real uid, not node-problem-detector's (the node name).
    let uid = oom.resource.as_ref().unwrap().uid.as_deref();
    assert!(uid.is_some_and(|u| u != "node-2"), "{uid:?}");
    assert!(
        report.runs[0].logs.iter().any(|l| l
            .message
            .starts_with("kernel logs not read: the \"kernel-log\" collector is unavailable (")),
        "{:?}",
        report.runs[0].logs
    );
}

#[tokio::test]
async fn fixture_oom_kill_is_one_node_oom_finding() {
    let snapshot =
        || Arc::new(SnapshotBackend::load(&shared_fixture("snapshot-dump.yaml")).unwrap());
    let report = audit_builtin("kernel-audit", snapshot()).await;
    assert_fixture_findings(&report);
    // event-audit leaves node-problem-detector's report to kernel-audit.
    let events = audit_builtin("event-audit", snapshot()).await;
    assert!(
        !events
            .findings()
            .any(|(_, f)| resource_key(f) == "/Node/node-2"),
        "the OOM kill is reported once"
    );
}

#[tokio::test]
async fn fixture_oom_kill_from_the_live_api_server() {
    let server = FakeApiServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let options = LiveOptions {
        kubeconfig: Some(server.kubeconfig(dir.path(), ADMIN_TOKEN)),
        ..Default::default()
    };
    let backend = LiveBackend::connect(options).await.unwrap();
    let report = audit_builtin("kernel-audit", Arc::new(backend)).await;
    assert_fixture_findings(&report);
}

const NPD_NODES: &str = r#"
apiVersion: v1
kind: Node
metadata: {name: worker-1, uid: 0b4e5b4e-1111-4c3e-9d7e-000000000001}
status:
  conditions:
  - {type: KernelDeadlock, status: "True", reason: DockerHung, message: "task docker:7 blocked for more than 120 seconds.", lastHeartbeatTime: "2026-11-22T18:10:00Z", lastTransitionTime: "2026-11-22T17:30:00Z"}
  - {type: ReadonlyFilesystem, status: "False", reason: FilesystemIsNotReadOnly, message: "Filesystem is not read-only", lastHeartbeatTime: "2026-11-22T18:10:00Z", lastTransitionTime: "2026-11-22T12:00:00Z"}
  - {type: CorruptDockerOverlay2, status: "True", reason: CorruptDockerOverlay2, message: "returned error: readlink /var/lib/docker/overlay2/l/x: invalid argument", lastHeartbeatTime: "2026-11-22T18:10:00Z", lastTransitionTime: "2026-11-22T16:00:00Z"}
  - {type: Ready, status: "True", reason: KubeletReady, lastHeartbeatTime: "2026-11-22T18:10:00Z", lastTransitionTime: "2026-11-22T12:00:00Z"}
---
apiVersion: v1
kind: Event
metadata: {name: worker-1.1, namespace: default}
involvedObject: {kind: Node, name: worker-1, uid: worker-1}
type: Warning
reason: TaskHung
message: "task jbd2/sda1-8:312 blocked for more than 120 seconds."
count: 2
lastTimestamp: "2026-11-22T18:01:00Z"
source: {component: kernel-monitor, host: worker-1}
---
apiVersion: v1
kind: Event
metadata: {name: worker-1.2, namespace: default}
involvedObject: {kind: Node, name: worker-1, uid: worker-1}
type: Warning
reason: KernelOops
message: "BUG: unable to handle kernel NULL pointer dereference at 0000000000000008"
count: 1
lastTimestamp: "2026-11-22T18:02:00Z"
source: {component: kernel-monitor, host: worker-1}
---
apiVersion: v1
kind: Event
metadata: {name: worker-1.3, namespace: default}
involvedObject: {kind: Node, name: worker-1, uid: worker-1}
type: Normal
reason: FilesystemIsNotReadOnly
message: "Node condition ReadonlyFilesystem is now: False, reason: FilesystemIsNotReadOnly"
count: 1
lastTimestamp: "2026-11-22T18:03:00Z"
source: {component: kernel-monitor, host: worker-1}
"#;

#[tokio::test]
async fn npd_conditions_and_events_on_nodes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("npd.yaml"), NPD_NODES).unwrap();
    let snapshot = SnapshotBackend::load(dir.path()).unwrap();
    assert!(snapshot.issues().is_empty(), "{:?}", snapshot.issues());
    let report = audit_builtin("kernel-audit", Arc::new(snapshot)).await;
    assert_eq!(
        found(&report),
        [
            row(
                "/Node/worker-1",
                "NodeCorruptOverlay2",
                "2026-11-22T16:00:00Z",
                ""
            ),
            row(
                "/Node/worker-1",
                "NodeDockerHung",
                "2026-11-22T17:30:00Z",
                ""
            ),
            row(
                "/Node/worker-1",
                "NodeKernelNULLPointer",
                "2026-11-22T18:02:00Z",
                "1"
            ),
            row(
                "/Node/worker-1",
                "NodeTaskHung",
                "2026-11-22T18:01:00Z",
                "2"
            ),
        ]
    );
    let hung = report
        .findings()
        .find(|(_, f)| f.rule == "NodeDockerHung")
        .unwrap()
        .1;
    assert_eq!(
        hung.message,
        "KernelDeadlock is True since 2026-11-22T17:30:00Z (DockerHung): task docker:7 blocked for more than 120 seconds."
    );
    assert_eq!(hung.severity.as_str(), "critical");
}
