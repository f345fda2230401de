//! KubeEye's `ke audit` example (seed 000): for the nginx Deployment, the
//! testcronjob CronJob, the testrole Role and the testclusterrole ClusterRole
//! (written as manifests in `tests/fixtures/seed-000/`), every message
//! KubeEye prints is reported by Sonde, under Sonde's rule id, and nothing else.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use sonde::kube::SnapshotBackend;

use crate::{audit_builtin, resource_key};

/// KubeEye's message (without the object's name) and Sonde's rule for it.
const MESSAGES: &[(&str, &str)] = &[
    ("CPU limits should be set.", "NoCPULimits"),
    ("CPU requests should be set.", "NoCPURequests"),
    (
        "allowPrivilegeEscalation should be set false.",
        "PrivilegeEscalationAllowed",
    ),
    ("have HighRisk capabilities.", "HighRiskCapabilities"),
    ("hostIPC should not be set.", "HostIPCAllowed"),
    ("hostNetwork should not be set.", "HostNetworkAllowed"),
    ("hostPID should not be set.", "HostPIDAllowed"),
    ("hostPort should not be set.", "HostPortAllowed"),
    (
        "imagePullPolicy should be set 'Always'.",
        "ImagePullPolicyNotAlways",
    ),
    ("have insecure capabilities.", "InsecureCapabilities"),
    ("livenessProbe should be set.", "NoLivenessProbe"),
    ("memory limits should be set.", "NoMemoryLimits"),
    ("memory requests should be set.", "NoMemoryRequests"),
    ("priorityClassName can be set.", "NoPriorityClassName"),
    ("privileged should be set false.", "PrivilegedAllowed"),
    (
        "root file system should be set read only.",
        "NotReadOnlyRootFilesystem",
    ),
    ("readinessProbe should be set.", "NoReadinessProbe"),
    ("runAsNonRoot can be set.", "NotRunAsNonRoot"),
    ("can impersonate user.", "CanImpersonateUser"),
    ("can delete resources.", "CanDeleteResources"),
    ("can delete resource.", "CanDeleteResources"),
    ("can modify workloads.", "CanModifyWorkloads"),
];

/// The rows of seed 000's `ke audit` table, verbatim: (namespace, name, kind, messages).
const KE_AUDIT: &[(&str, &str, &str, &str)] = &[
    (
        "default",
        "nginx",
        "Deployment",
        "nginx CPU limits should be set. nginx CPU requests should be set. nginx image tag not specified, do not use 'latest'. nginx livenessProbe should be set. nginx memory limits should be set. nginx memory requests should be set. nginx priorityClassName can be set. nginx root file system should be set read only. nginx readinessProbe should be set. nginx runAsNonRoot can be set.",
    ),
    (
        "default",
        "testcronjob",
        "CronJob",
        "testcronjob CPU limits should be set. testcronjob CPU requests should be set. testcronjob allowPrivilegeEscalation should be set false. testcronjob have HighRisk capabilities. testcronjob hostIPC should not be set. testcronjob hostNetwork should not be set. testcronjob hostPID should not be set. testcronjob hostPort should not be set. testcronjob imagePullPolicy should be set 'Always'. testcronjob image tag not specified, do not use 'latest'. testcronjob have insecure capabilities. testcronjob livenessProbe should be set. testcronjob memory limits should be set. testcronjob memory requests should be set. testcronjob priorityClassName can be set. testcronjob privileged should be set false. testcronjob root file system should be set read only. testcronjob readinessProbe should be set.",
    ),
    (
        "kube-system",
        "testrole",
        "Role",
        "testrole can impersonate user. testrole can delete resources. testrole can modify workloads.",
    ),
    (
        "",
        "testclusterrole",
        "ClusterRole",
        "testclusterrole can impersonate user. testclusterrole can delete resource. testclusterrole can modify workloads.",
    ),
];

/// KubeEye prints one message for a missing tag and for `latest`; Sonde has a rule for each.
fn expected_rules(name: &str, messages: &str, image_rule: &'static str) -> BTreeSet<&'static str> {
    let mut rules = BTreeSet::new();
    for sentence in messages
        .split(&format!("{name} "))
        .filter(|s| !s.is_empty())
    {
        let sentence = sentence.trim();
        if sentence == "image tag not specified, do not use 'latest'." {
            rules.insert(image_rule);
            continue;
        }
        let rule = MESSAGES
            .iter()
            .find(|(m, _)| *m == sentence)
            .unwrap_or_else(|| panic!("no Sonde rule for KubeEye's {sentence:?}"))
            .1;
        rules.insert(rule);
    }
    rules
}

#[tokio::test]
async fn every_ke_audit_message_is_reported_under_sondes_rule() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/seed-000");
    let backend = Arc::new(SnapshotBackend::load(&dir).unwrap());
    assert!(backend.issues().is_empty(), "{:?}", backend.issues());
    let mut found: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for probe in ["workload-audit", "rbac-audit"] {
        let report = audit_builtin(probe, backend.clone()).await;
        for (_, f) in report.findings() {
            found
                .entry(resource_key(f))
                .or_default()
                .insert(f.rule.clone());
        }
    }
    // nginx has no tag (ImageTagMiss); testcronjob says `latest` (ImageTagIsLatest).
    let image_rule = |name: &str| {
        if name == "nginx" {
            "ImageTagMiss"
        } else {
            "ImageTagIsLatest"
        }
    };
    for (ns, name, kind, messages) in KE_AUDIT {
        let key = format!("{ns}/{kind}/{name}");
        let expected: BTreeSet<String> = expected_rules(name, messages, image_rule(name))
            .into_iter()
            .map(String::from)
            .collect();
        let got = found.remove(&key).unwrap_or_default();
        assert_eq!(got, expected, "{key}");
    }
    assert!(found.is_empty(), "findings about other objects: {found:?}");
}
