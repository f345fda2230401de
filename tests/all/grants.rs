//! The operator's grant decides: a probe that needs more than it is granted
//! does not run, and a namespace-restricted grant restricts what it sees.

use serde_json::json;
use sonde::grants::GrantSet;
use sonde::runtime::{FailureReason, RunStatus};
use sonde_probes::TEST_HOSTILE_PATH as PROBE;

use crate::{run, snapshot_services};

const PODS: &str = "
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: shop}
spec: {containers: [{name: c, image: x:1}]}
---
apiVersion: v1
kind: Pod
metadata: {name: b, namespace: kube-system}
spec: {containers: [{name: c, image: x:1}]}
---
apiVersion: v1
kind: Pod
metadata: {name: c, namespace: shop}
spec: {containers: [{name: c, image: x:1}]}
";

#[tokio::test]
async fn a_probe_needing_more_than_its_grant_is_refused_before_it_runs() {
    let grants = GrantSet::parse_spec("kube:get:Pod").unwrap();
    let out = run(
        PROBE,
        json!({"mode": "ok"}),
        Some(grants),
        Default::default(),
        Default::default(),
    )
    .await;
    assert_eq!(out.status, RunStatus::Failed);
    assert_eq!(
        out.reason,
        Some(FailureReason::Refused {
            missing: vec!["kube: list on Pod".into()]
        })
    );
    assert_eq!(
        out.reason.unwrap().to_string(),
        "refused: the probe needs capabilities it was not granted: kube: list on Pod"
    );
    assert!(
        out.findings.is_empty() && out.logs.is_empty(),
        "it did not run"
    );
}

#[tokio::test]
async fn a_namespace_restricted_grant_sees_only_its_namespaces() {
    let services = snapshot_services(PODS);
    let all = run(
        PROBE,
        json!({"mode": "list-pods"}),
        None,
        Default::default(),
        services.clone(),
    )
    .await;
    let seen: Vec<_> = all.findings.iter().map(|f| f.message.as_str()).collect();
    assert_eq!(seen, vec!["kube-system/b", "shop/a", "shop/c"]);

    let grants = GrantSet::parse_spec("kube:list:Pod:shop").unwrap();
    let shop = run(
        PROBE,
        json!({"mode": "list-pods"}),
        Some(grants),
        Default::default(),
        services,
    )
    .await;
    assert!(shop.succeeded(), "{:?}", shop.reason);
    let seen: Vec<_> = shop.findings.iter().map(|f| f.message.as_str()).collect();
    assert_eq!(seen, vec!["shop/a", "shop/c"]);
    assert!(
        shop.logs
            .iter()
            .any(|l| l.source == "host" && l.message.contains("1 objects outside them hidden"))
    );
}
