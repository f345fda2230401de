//! The built-in pod audit over the fixture's pods: states and the error
//! patterns of termination messages.

use std::sync::Arc;

use sonde::kube::SnapshotBackend;

use crate::{audit_builtin, resource_key, shared_fixture};

#[tokio::test]
async fn pods_in_trouble() {
    let report = audit_builtin(
        "pod-audit",
        Arc::new(SnapshotBackend::load(&shared_fixture("snapshot-dump.yaml")).unwrap()),
    )
    .await;
    let mut found: Vec<(String, String)> = report
        .findings()
        .map(|(_, f)| (resource_key(f), f.rule.clone()))
        .collect();
    found.sort();
    let expected: Vec<(String, String)> = [
        ("default/Pod/pending-big", "PodUnschedulable"),
        ("kube-system/Pod/node-agent-w9d4n", "PodNotReady"),
        ("shop/Pod/cart-db-0", "PodOOMKilled"),
        ("shop/Pod/checkout-5f8d7c9b6-kq4tn", "PodImagePullBackOff"),
        ("shop/Pod/checkout-5f8d7c9b6-vb7wd", "PodNotReady"),
        ("shop/Pod/migrate-x7k2p", "PodNoSpaceLeftOnDevice"),
        ("shop/Pod/web-7d9c6b5f4-9hzrm", "PodCrashLoopBackOff"),
        ("shop/Pod/web-7d9c6b5f4-9hzrm", "PodNoSuchFileOrDirectory"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(found, expected);
    // A snapshot has no logs: the probe says so and goes on.
    assert!(
        report.runs[0]
            .logs
            .iter()
            .any(|l| l.message.starts_with("log patterns skipped"))
    );
}
