//! The built-in event audit over the fixture's Warning events: grouped per
//! involved object with their summed counts.

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
        ("/Node/node-2", "EventOOMKilling", "1"),
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
    let oom = report
        .findings()
        .find(|(_, f)| f.rule == "EventOOMKilling")
        .unwrap()
        .1;
    assert_eq!(
        oom.resource.as_ref().unwrap().uid,
        None,
        "node-problem-detector's uid is the node name, not a uid"
    );
    assert!(oom.message.starts_with("OOMKilling x1 (last 2026-11-22T18:11:43Z): Out of memory: Killed process 41785 (redis-server)"));
}
