//! The real API server's dump (`snapshot-dump.yaml`) audited by the built-in
//! workload audit: the expected findings per resource, written out.

use std::collections::BTreeMap;
use std::sync::Arc;

use sonde::kube::SnapshotBackend;

use crate::shared_fixture;

const RESOURCES: &[&str] = &[
    "NoCPULimits",
    "NoCPURequests",
    "NoMemoryLimits",
    "NoMemoryRequests",
];
const NO_PROBES: &[&str] = &["NoLivenessProbe", "NoReadinessProbe"];
const HARDENING: &[&str] = &[
    "NoPriorityClassName",
    "NotReadOnlyRootFilesystem",
    "NotRunAsNonRoot",
];

fn expected() -> BTreeMap<String, Vec<&'static str>> {
    let mut m = BTreeMap::new();
    let mut add = |key: &str, groups: &[&[&'static str]], extra: &[&'static str]| {
        let mut rules: Vec<&str> = groups
            .iter()
            .flat_map(|g| g.iter().copied())
            .chain(extra.iter().copied())
            .collect();
        rules.sort();
        m.insert(key.to_string(), rules);
    };
    // BAD: nginx:latest (pull policy defaults to Always: no pull-policy finding), nothing set.
    add(
        "shop/Deployment/web",
        &[RESOURCES, NO_PROBES, HARDENING],
        &["ImageTagIsLatest"],
    );
    // BAD: `redis` without tag, IfNotPresent, memory only.
    add(
        "shop/StatefulSet/cart-db",
        &[NO_PROBES, HARDENING],
        &[
            "NoCPULimits",
            "NoCPURequests",
            "ImageTagMiss",
            "ImagePullPolicyNotAlways",
        ],
    );
    // BAD: privileged, host namespaces, SYS_ADMIN + NET_ADMIN.
    add(
        "kube-system/DaemonSet/node-agent",
        &[RESOURCES, NO_PROBES, HARDENING],
        &[
            "PrivilegedAllowed",
            "PrivilegeEscalationAllowed",
            "HostNetworkAllowed",
            "HostPIDAllowed",
            "HighRiskCapabilities",
            "ImagePullPolicyNotAlways",
        ],
    );
    // BAD: allowPrivilegeEscalation, runAsUser 0, CPU request only.
    add(
        "shop/Job/migrate",
        &[NO_PROBES, HARDENING],
        &[
            "NoCPULimits",
            "NoMemoryLimits",
            "NoMemoryRequests",
            "PrivilegeEscalationAllowed",
            "ImagePullPolicyNotAlways",
        ],
    );
    // BAD: hostIPC, hostPort, `busybox` without tag (default policy Always), CHOWN + KILL.
    add(
        "default/CronJob/report",
        &[RESOURCES, NO_PROBES, HARDENING],
        &[
            "HostIPCAllowed",
            "HostPortAllowed",
            "ImageTagMiss",
            "InsecureCapabilities",
        ],
    );
    // The bare pending pod (requests and limits set, image tagged, no policy default Always? No: tagged -> IfNotPresent).
    add(
        "default/Pod/pending-big",
        &[NO_PROBES, HARDENING],
        &["ImagePullPolicyNotAlways"],
    );
    m
}

#[tokio::test]
async fn fixture_dump_yields_the_expected_findings_per_resource() {
    let snap = SnapshotBackend::load(&shared_fixture("snapshot-dump.yaml")).unwrap();
    assert!(snap.issues().is_empty(), "{:?}", snap.issues());
    assert_eq!(snap.len(), 187, "every item of the v1/List");
    let report = crate::audit_builtin("workload-audit", Arc::new(snap)).await;
    let mut got: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for (_, f) in report.findings() {
        got.entry(crate::resource_key(f))
            .or_default()
            .push(f.rule.as_str());
    }
    for rules in got.values_mut() {
        rules.sort();
    }
    assert_eq!(got, expected());
    // The compliant Deployment and every controlled object (ReplicaSets, their Pods, DaemonSet pods) add nothing.
    assert!(!got.keys().any(|k| k.contains("checkout")
        || k.contains("/ReplicaSet/")
        || k.contains("web-7d9c6b5f4")));
}
