//! Sonde's built-in RBAC audit: what Roles and ClusterRoles allow, read with
//! RBAC's own semantics (`*` in verbs, resources and apiGroups; subresources
//! like `pods/exec`), and which bindings hand out cluster-admin. Roles that
//! Kubernetes itself installs (`kubernetes.io/bootstrapping: rbac-defaults`)
//! are not reported: they are the platform's, not the operator's.

use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use sonde_sdk::{Finding, Probe, ProbeError, ProbeInfo, ResourceRef, Rule, Severity, kube};

pub const CAN_IMPERSONATE_USER: Rule = Rule::new(
    "CanImpersonateUser",
    "Can impersonate users",
    "rbac",
    Severity::High,
    "The role allows `impersonate` on users, groups or service accounts: whoever holds it can act as any of them, cluster-admins included.",
    "Grant impersonation only to break-glass identities, and only on the names needed (resourceNames).",
);
pub const CAN_DELETE_RESOURCES: Rule = Rule::new(
    "CanDeleteResources",
    "Can delete resources",
    "rbac",
    Severity::Medium,
    "The role allows `delete` or `deletecollection`.",
    "Remove delete verbs unless the holder's job is to delete these resources; prefer narrow resources and resourceNames.",
);
pub const CAN_MODIFY_WORKLOADS: Rule = Rule::new(
    "CanModifyWorkloads",
    "Can modify workloads",
    "rbac",
    Severity::Medium,
    "The role allows create, update or patch on workloads (pods, deployments, statefulsets, daemonsets, replicasets, jobs, cronjobs): whoever holds it can run any image with the workload's service account.",
    "Limit workload writes to deployment pipelines, and enforce Pod Security admission on their namespaces.",
);
pub const POD_EXEC_ALLOWED: Rule = Rule::new(
    "PodExecAllowed",
    "Can exec or attach into pods",
    "rbac",
    Severity::High,
    "The role allows `pods/exec` or `pods/attach`: whoever holds it can run commands in containers and read their secrets.",
    "Grant pods/exec and pods/attach only for debugging, for a limited time.",
);
pub const CLUSTER_ADMIN_BINDING: Rule = Rule::new(
    "ClusterAdminBinding",
    "Bound to cluster-admin",
    "rbac",
    Severity::Critical,
    "A binding grants the cluster-admin ClusterRole: full control of every resource in every namespace.",
    "Bind a narrower role; keep cluster-admin for break-glass accounts.",
);

/// Every rule, in report order.
pub const RULES: &[Rule] = &[
    CLUSTER_ADMIN_BINDING,
    CAN_IMPERSONATE_USER,
    POD_EXEC_ALLOWED,
    CAN_DELETE_RESOURCES,
    CAN_MODIFY_WORKLOADS,
];

const WORKLOADS: &[(&str, &str)] = &[
    ("", "pods"),
    ("apps", "deployments"),
    ("apps", "statefulsets"),
    ("apps", "daemonsets"),
    ("apps", "replicasets"),
    ("batch", "jobs"),
    ("batch", "cronjobs"),
];

fn has(list: &Option<Vec<String>>, wanted: &str) -> bool {
    list.iter().flatten().any(|v| v == "*" || v == wanted)
}

/// Whether a rule allows `verb` on `group`/`resource` (a resource `*` covers subresources too).
fn allows(rule: &PolicyRule, verb: &str, group: &str, resource: &str) -> bool {
    let resource_ok = rule.resources.iter().flatten().any(|r| {
        r == "*"
            || r == resource
            || (resource.contains('/')
                && r.strip_suffix("/*")
                    .is_some_and(|base| resource.starts_with(&format!("{base}/"))))
            || r.strip_prefix("*/")
                .is_some_and(|sub| resource.split_once('/').is_some_and(|(_, s)| s == sub))
    });
    rule.verbs.iter().any(|v| v == "*" || v == verb) && has(&rule.api_groups, group) && resource_ok
}

/// `"create, patch on deployments.apps, pods"` for what `rules` allow of `verbs` on `targets`, or `None`.
fn any(rules: &[PolicyRule], verbs: &[&str], targets: &[(&str, &str)]) -> Option<String> {
    let (mut found_verbs, mut found) = (Vec::new(), Vec::new());
    for verb in verbs {
        for (group, resource) in targets {
            if rules.iter().any(|r| allows(r, verb, group, resource)) {
                let what = if group.is_empty() {
                    resource.to_string()
                } else {
                    format!("{resource}.{group}")
                };
                if !found_verbs.contains(verb) {
                    found_verbs.push(*verb);
                }
                if !found.contains(&what) {
                    found.push(what);
                }
            }
        }
    }
    (!found.is_empty()).then(|| format!("{} on {}", found_verbs.join(", "), found.join(", ")))
}

fn builtin(meta: &ObjectMeta) -> bool {
    meta.labels
        .as_ref()
        .and_then(|l| l.get("kubernetes.io/bootstrapping"))
        .is_some_and(|v| v == "rbac-defaults")
}

/// Findings for one role's rules.
pub fn audit_rules(resource: &ResourceRef, rules: &[PolicyRule], out: &mut Vec<Finding>) {
    let impersonate_targets = [
        ("", "users"),
        ("", "groups"),
        ("", "serviceaccounts"),
        ("authentication.k8s.io", "uids"),
    ];
    if let Some(what) = any(rules, &["impersonate"], &impersonate_targets) {
        out.push(
            CAN_IMPERSONATE_USER
                .finding(resource.clone(), format!("can impersonate user ({what})"))
                .into(),
        );
    }
    // `create` is what the API server authorizes for exec and attach over SPDY; `get` alone
    // suffices only for WebSocket exec on some versions, so it is not claimed here.
    if let Some(what) = any(
        rules,
        &["create"],
        &[("", "pods/exec"), ("", "pods/attach")],
    ) {
        out.push(
            POD_EXEC_ALLOWED
                .finding(resource.clone(), format!("can exec into pods ({what})"))
                .into(),
        );
    }
    let deletes: Vec<&PolicyRule> = rules
        .iter()
        .filter(|r| {
            has(&Some(r.verbs.clone()), "delete") || has(&Some(r.verbs.clone()), "deletecollection")
        })
        .collect();
    if !deletes.is_empty() {
        let what: Vec<String> = deletes
            .iter()
            .flat_map(|r| r.resources.iter().flatten().cloned())
            .collect();
        let what = if what.is_empty() {
            "non-resource URLs".to_string()
        } else {
            what.join(", ")
        };
        out.push(
            CAN_DELETE_RESOURCES
                .finding(resource.clone(), format!("can delete resources ({what})"))
                .into(),
        );
    }
    if let Some(what) = any(rules, &["create", "update", "patch"], WORKLOADS) {
        out.push(
            CAN_MODIFY_WORKLOADS
                .finding(resource.clone(), format!("can modify workloads ({what})"))
                .into(),
        );
    }
}

fn subjects(subjects: &Option<Vec<k8s_openapi::api::rbac::v1::Subject>>) -> String {
    let names: Vec<String> = subjects
        .iter()
        .flatten()
        .map(|s| match &s.namespace {
            Some(ns) => format!("{} {ns}/{}", s.kind, s.name),
            None => format!("{} {}", s.kind, s.name),
        })
        .collect();
    if names.is_empty() {
        "no subjects".into()
    } else {
        names.join(", ")
    }
}

/// The probe.
pub struct RbacAudit;

impl Probe for RbacAudit {
    type Config = ();

    fn describe() -> ProbeInfo {
        sonde_sdk::describe(
            "rbac-audit",
            env!("CARGO_PKG_VERSION"),
            "What Roles and ClusterRoles allow, and who is bound to cluster-admin",
        )
        .rules(RULES)
        .kube_read::<Role>()
        .kube_read::<ClusterRole>()
        .kube_read::<RoleBinding>()
        .kube_read::<ClusterRoleBinding>()
        .schedule("0 */10 * * * *")
        .build()
    }

    fn run(_: ()) -> Result<Vec<Finding>, ProbeError> {
        let all = kube::ListParams::default();
        let mut out = Vec::new();
        for role in kube::list::<ClusterRole>(&all)? {
            if !builtin(&role.metadata) {
                audit_rules(
                    &(&role).into(),
                    role.rules.as_deref().unwrap_or_default(),
                    &mut out,
                );
            }
        }
        for role in kube::list::<Role>(&all)? {
            if !builtin(&role.metadata) {
                audit_rules(
                    &(&role).into(),
                    role.rules.as_deref().unwrap_or_default(),
                    &mut out,
                );
            }
        }
        for b in kube::list::<ClusterRoleBinding>(&all)? {
            if !builtin(&b.metadata)
                && b.role_ref.kind == "ClusterRole"
                && b.role_ref.name == "cluster-admin"
            {
                let msg = format!(
                    "binds cluster-admin cluster-wide to {}",
                    subjects(&b.subjects)
                );
                out.push(CLUSTER_ADMIN_BINDING.finding(&b, msg).into());
            }
        }
        for b in kube::list::<RoleBinding>(&all)? {
            if !builtin(&b.metadata)
                && b.role_ref.kind == "ClusterRole"
                && b.role_ref.name == "cluster-admin"
            {
                let ns = b.metadata.namespace.clone().unwrap_or_default();
                let msg = format!(
                    "binds cluster-admin in namespace {ns} to {}",
                    subjects(&b.subjects)
                );
                out.push(CLUSTER_ADMIN_BINDING.finding(&b, msg).into());
            }
        }
        Ok(out)
    }
}

sonde_sdk::export_probe!(RbacAudit);

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
        PolicyRule {
            api_groups: Some(groups.iter().map(|s| s.to_string()).collect()),
            resources: Some(resources.iter().map(|s| s.to_string()).collect()),
            verbs: verbs.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn rbac_wildcards() {
        assert!(allows(
            &rule(&["*"], &["*"], &["*"]),
            "delete",
            "apps",
            "deployments"
        ));
        assert!(
            allows(&rule(&["*"], &["*"], &["*"]), "create", "", "pods/exec"),
            "* covers subresources"
        );
        assert!(allows(
            &rule(&[""], &["pods/*"], &["create"]),
            "create",
            "",
            "pods/exec"
        ));
        assert!(allows(
            &rule(&[""], &["*/exec"], &["create"]),
            "create",
            "",
            "pods/exec"
        ));
        assert!(
            !allows(
                &rule(&[""], &["pods"], &["create"]),
                "create",
                "",
                "pods/exec"
            ),
            "pods does not cover pods/exec"
        );
        assert!(!allows(
            &rule(&["apps"], &["deployments"], &["get"]),
            "delete",
            "apps",
            "deployments"
        ));
        assert!(!allows(
            &rule(&["extensions"], &["deployments"], &["create"]),
            "create",
            "apps",
            "deployments"
        ));
    }
}
