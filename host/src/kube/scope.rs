//! Which built-in kinds are cluster-scoped, and their plural names: what a
//! snapshot cannot learn from the files themselves.

/// Built-in cluster-scoped kinds, as `(group, kind)`.
const CLUSTER_SCOPED: &[(&str, &str)] = &[
    ("", "Namespace"),
    ("", "Node"),
    ("", "PersistentVolume"),
    ("", "ComponentStatus"),
    ("rbac.authorization.k8s.io", "ClusterRole"),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    ("storage.k8s.io", "StorageClass"),
    ("storage.k8s.io", "CSIDriver"),
    ("storage.k8s.io", "CSINode"),
    ("storage.k8s.io", "VolumeAttachment"),
    ("scheduling.k8s.io", "PriorityClass"),
    ("node.k8s.io", "RuntimeClass"),
    ("networking.k8s.io", "IngressClass"),
    ("apiextensions.k8s.io", "CustomResourceDefinition"),
    ("apiregistration.k8s.io", "APIService"),
    (
        "admissionregistration.k8s.io",
        "MutatingWebhookConfiguration",
    ),
    (
        "admissionregistration.k8s.io",
        "ValidatingWebhookConfiguration",
    ),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"),
    (
        "admissionregistration.k8s.io",
        "ValidatingAdmissionPolicyBinding",
    ),
    ("certificates.k8s.io", "CertificateSigningRequest"),
    ("flowcontrol.apiserver.k8s.io", "FlowSchema"),
    ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration"),
];

/// Whether objects of this built-in kind live in a namespace (unknown kinds are assumed namespaced).
pub fn is_namespaced(group: &str, kind: &str) -> bool {
    !CLUSTER_SCOPED.contains(&(group, kind))
}

/// The plural resource name the API server uses for a kind.
pub fn plural(kind: &str) -> String {
    let lower = kind.to_ascii_lowercase();
    match lower.as_str() {
        "endpoints" => lower,
        _ if lower.ends_with("policy") => format!("{}ies", &lower[..lower.len() - 1]),
        _ if lower.ends_with('s') || lower.ends_with("ch") || lower.ends_with("sh") => {
            format!("{lower}es")
        }
        _ => format!("{lower}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plurals_follow_the_api_server() {
        for (kind, want) in [
            ("Pod", "pods"),
            ("Endpoints", "endpoints"),
            ("NetworkPolicy", "networkpolicies"),
            ("Ingress", "ingresses"),
            ("ClusterRoleBinding", "clusterrolebindings"),
            ("StorageClass", "storageclasses"),
        ] {
            assert_eq!(plural(kind), want);
        }
    }

    #[test]
    fn scope() {
        assert!(!is_namespaced("", "Node"));
        assert!(!is_namespaced("rbac.authorization.k8s.io", "ClusterRole"));
        assert!(is_namespaced("rbac.authorization.k8s.io", "Role"));
        assert!(is_namespaced("example.com", "Widget"));
    }
}
