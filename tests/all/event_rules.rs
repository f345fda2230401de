//! The built-in event audit over the fixture's Warning events: grouped per
//! involved object with their summed counts; node-problem-detector's OOM
//! kill on node-2 is kernel-audit's (`kernel_rules`), not reported here.

use std::sync::Arc;

use sonde::kube::SnapshotBackend;

use crate::{audit_builtin, resource_key, shared_fixture};

#[tokio::test]
async fn warning_events_grouped_per_object() {
    let report = audit_builtin(
        "event-audit",
        Arc::new(SnapshotBackend::load(&shared_fixture("snapshot-dump.yaml")).unwrap()),
    )
    .await;
    let mut found: Vec<(String, String, String)> = report
        .findings()
        .map(|(_, f)| {
            let count = f
                .labels
                .iter()
                .find(|(k, _)| k == "count")
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            (resource_key(f), f.rule.clone(), count)
        })
        .collect();
    found.sort();
    let expected: Vec<(String, String, String)> = [
        ("default/Pod/pending-big", "EventFailedScheduling", "7"),
        ("kube-system/Pod/node-agent-w9d4n", "EventWarning", "1"),
        ("shop/HorizontalPodAutoscaler/web", "EventWarning", "147"),
        ("shop/Job/migrate", "EventWarning", "1"),
        (
            "shop/Pod/checkout-5f8d7c9b6-kq4tn",
            "EventImagePullFailed",
            "157",
        ),
        ("shop/Pod/checkout-5f8d7c9b6-vb7wd", "EventUnhealthy", "411"),
        ("shop/Pod/web-7d9c6b5f4-9hzrm", "EventBackOff", "63"),
    ]
    .iter()
    .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
    .collect();
    assert_eq!(found, expected);
    assert!(
        report.probes[0]
            .rules
            .iter()
            .all(|r| r.id != "EventOOMKilling"),
        "kernel-audit's NodeOOM owns node-problem-detector's OOM kills"
    );
}
