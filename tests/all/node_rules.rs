//! The built-in node audit over the fixture's nodes, from a snapshot and from
//! the (fake) live API server, where kubelet version skew can be judged.

use std::sync::Arc;

use sonde::kube::{LiveBackend, LiveOptions, SnapshotBackend};
use sonde_fake_apiserver::{ADMIN_TOKEN, FakeApiServer};

use crate::{audit_builtin, resource_key, shared_fixture};

fn found(report: &sonde::audit::AuditReport) -> Vec<(String, String, String)> {
    let mut f: Vec<_> = report
        .findings()
        .map(|(_, f)| {
            (
                resource_key(f),
                f.rule.clone(),
                f.severity.as_str().to_string(),
            )
        })
        .collect();
    f.sort();
    f
}

fn expected(extra: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    let mut e: Vec<(String, String, String)> = [
        ("/Node/node-2", "NodeDiskPressure", "high"),
        ("/Node/node-2", "NodeMemoryPressure", "high"),
        ("/Node/node-3", "NodeStatusUnknown", "critical"),
        ("/Node/node-3", "NodeUnschedulable", "low"),
    ]
    .iter()
    .chain(extra)
    .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
    .collect();
    e.sort();
    e
}

#[tokio::test]
async fn fixture_nodes_from_a_snapshot() {
    let report = audit_builtin(
        "node-audit",
        Arc::new(SnapshotBackend::load(&shared_fixture("snapshot-dump.yaml")).unwrap()),
    )
    .await;
    assert_eq!(found(&report), expected(&[]));
    let node3 = report
        .findings()
        .find(|(_, f)| f.rule == "NodeStatusUnknown")
        .unwrap()
        .1;
    assert_eq!(
        node3.message,
        "NodeStatusUnknown: Kubelet stopped posting node status. (last heartbeat 2026-11-22T17:57:46Z)"
    );
    assert!(
        report.runs[0]
            .logs
            .iter()
            .any(|l| l.message.starts_with("KubeletVersionSkew skipped")),
        "says what it skipped"
    );
}

#[tokio::test]
async fn kubelet_skew_is_judged_against_the_live_api_server() {
    let server = FakeApiServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let options = LiveOptions {
        kubeconfig: Some(server.kubeconfig(dir.path(), ADMIN_TOKEN)),
        ..Default::default()
    };
    let backend = LiveBackend::connect(options).await.unwrap();
    let report = audit_builtin("node-audit", Arc::new(backend)).await;
    assert_eq!(
        found(&report),
        expected(&[("/Node/node-2", "KubeletVersionSkew", "low")])
    );
    let skew = report
        .findings()
        .find(|(_, f)| f.rule == "KubeletVersionSkew")
        .unwrap()
        .1;
    assert_eq!(
        skew.message,
        "kubelet v1.26.15 is 2 minor versions behind the API server v1.28.7"
    );
}
