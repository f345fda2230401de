//! The built-in RBAC audit: the fixture's roles and bindings, and RBAC's
//! wildcard semantics, through the real component.

use std::sync::Arc;

use serde_json::json;
use sonde::kube::SnapshotBackend;

use crate::shared_fixture;

async fn rbac(snapshot: SnapshotBackend) -> Vec<(String, String)> {
    let report = crate::audit_builtin("rbac-audit", Arc::new(snapshot)).await;
    let mut found: Vec<(String, String)> = report
        .findings()
        .map(|(_, f)| (crate::resource_key(f), f.rule.clone()))
        .collect();
    found.sort();
    found
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[tokio::test]
async fn fixture_roles_and_bindings() {
    let found = rbac(SnapshotBackend::load(&shared_fixture("snapshot-dump.yaml")).unwrap()).await;
    assert_eq!(
        found,
        pairs(&[
            ("/ClusterRole/everything-deleter", "CanDeleteResources"),
            ("/ClusterRole/impersonator", "CanImpersonateUser"),
            ("/ClusterRoleBinding/ci-admin", "ClusterAdminBinding"),
            ("shop/Role/deployer", "CanDeleteResources"),
            ("shop/Role/deployer", "CanModifyWorkloads"),
            ("shop/Role/deployer", "PodExecAllowed"),
        ])
    );
}

#[tokio::test]
async fn wildcards_trigger_and_narrow_grants_do_not() {
    let role = |name: &str, rules: serde_json::Value| json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": name}, "rules": rules});
    let objects = vec![
        role(
            "star",
            json!([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]),
        ),
        role(
            "exec-by-subresource-wildcard",
            json!([{"apiGroups": [""], "resources": ["pods/*"], "verbs": ["create"]}]),
        ),
        role(
            "reader",
            json!([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["get", "list", "watch"]}]),
        ),
        role(
            "pods-not-exec",
            json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "create"]}]),
        ),
        role(
            "wrong-group",
            json!([{"apiGroups": ["extensions"], "resources": ["deployments"], "verbs": ["patch"]}]),
        ),
        role(
            "urls-only",
            json!([{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]),
        ),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "admin", "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}},
            "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "ns-admin", "namespace": "team"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"kind": "Group", "name": "team-leads"}]}),
    ];
    let found = rbac(SnapshotBackend::from_values("t", objects)).await;
    assert_eq!(
        found,
        pairs(&[
            (
                "/ClusterRole/exec-by-subresource-wildcard",
                "PodExecAllowed"
            ),
            ("/ClusterRole/pods-not-exec", "CanModifyWorkloads"),
            ("/ClusterRole/star", "CanDeleteResources"),
            ("/ClusterRole/star", "CanImpersonateUser"),
            ("/ClusterRole/star", "CanModifyWorkloads"),
            ("/ClusterRole/star", "PodExecAllowed"),
            ("team/RoleBinding/ns-admin", "ClusterAdminBinding"),
        ])
    );
}
