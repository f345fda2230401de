//! Generated cluster objects for the benchmarks, in the variety of real
//! clusters: workloads (good and bad settings), nodes (some unhealthy), RBAC
//! objects (some too broad) and Warning/Normal events.

#![allow(dead_code)]

use serde_json::{Value, json};
use sonde::bindings::{Finding, ResourceRef, Severity};

/// A pod spec with the variety of real clusters: two containers, some good, some bad settings.
pub fn pod_spec(i: usize) -> Value {
    let good = i.is_multiple_of(3);
    let mut app = json!({
        "name": "app",
        "image": if i.is_multiple_of(7) { format!("registry.local:5000/team/app-{i}") } else { format!("registry.local:5000/team/app-{i}:1.{}", i % 50) },
        "ports": [{"containerPort": 8080, "protocol": "TCP"}],
        "env": [{"name": "MODE", "value": "prod"}, {"name": "ID", "value": i.to_string()}],
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
    });
    if good {
        app["imagePullPolicy"] = json!("Always");
        app["resources"] = json!({"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}});
        app["livenessProbe"] =
            json!({"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 10});
        app["readinessProbe"] =
            json!({"httpGet": {"path": "/ready", "port": 8080}, "periodSeconds": 5});
        app["securityContext"] = json!({"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "runAsNonRoot": true, "capabilities": {"drop": ["ALL"]}});
    } else if i % 3 == 1 {
        app["securityContext"] = json!({"privileged": i.is_multiple_of(2), "capabilities": {"add": ["NET_ADMIN", "CHOWN"]}});
    }
    let sidecar = json!({
        "name": "proxy", "image": "envoyproxy/envoy:v1.30.1",
        "resources": {"limits": {"cpu": "200m", "memory": "64Mi"}},
        "ports": [{"containerPort": 15001, "hostPort": if i.is_multiple_of(11) { 15001 } else { 0 }}],
    });
    json!({
        "containers": [app, sidecar],
        "restartPolicy": "Always",
        "dnsPolicy": "ClusterFirst",
        "serviceAccountName": "default",
        "hostNetwork": i.is_multiple_of(13),
        "priorityClassName": if good { "high" } else { "" },
    })
}

pub fn workload(i: usize) -> Value {
    let (api, kind) = match i % 10 {
        0..=3 => ("apps/v1", "Deployment"),
        4 | 5 => ("apps/v1", "StatefulSet"),
        6 => ("apps/v1", "DaemonSet"),
        7 => ("batch/v1", "Job"),
        8 => ("batch/v1", "CronJob"),
        _ => ("v1", "Pod"),
    };
    let name = format!("w-{i:05}");
    let meta = json!({"name": name, "namespace": format!("team-{}", i % 40), "uid": format!("00000000-0000-0000-0000-{i:012}"),
        "labels": {"app": name, "team": format!("team-{}", i % 40)}});
    let template = json!({"metadata": {"labels": {"app": name}}, "spec": pod_spec(i)});
    let spec = match kind {
        "Pod" => pod_spec(i),
        "CronJob" => {
            json!({"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": template}}})
        }
        "Job" => json!({"template": template, "backoffLimit": 3}),
        _ => {
            json!({"replicas": 2, "selector": {"matchLabels": {"app": name}}, "template": template})
        }
    };
    json!({"apiVersion": api, "kind": kind, "metadata": meta, "spec": spec})
}

/// A node: most Ready, some NotReady, with pressure, cordoned, or skewed.
pub fn node(i: usize) -> Value {
    let name = format!("node-{i:04}");
    let ready = if i.is_multiple_of(50) {
        "Unknown"
    } else if i.is_multiple_of(23) {
        "False"
    } else {
        "True"
    };
    let pressure = |t: &str, on: bool| {
        json!({"type": t, "status": if on { "True" } else { "False" }, "reason": format!("Kubelet{t}"),
            "lastHeartbeatTime": "2026-11-30T10:00:00Z", "lastTransitionTime": "2026-11-29T10:00:00Z"})
    };
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "uid": format!("10000000-0000-0000-0000-{i:012}"),
            "labels": {"kubernetes.io/hostname": name, "node-role.kubernetes.io/worker": ""}},
        "spec": {"unschedulable": i.is_multiple_of(97), "podCIDR": format!("10.{}.{}.0/24", i / 256, i % 256)},
        "status": {
            "capacity": {"cpu": "16", "memory": "64Gi", "pods": "110", "ephemeral-storage": "200Gi"},
            "allocatable": {"cpu": "15500m", "memory": "62Gi", "pods": "110", "ephemeral-storage": "180Gi"},
            "conditions": [
                pressure("MemoryPressure", i.is_multiple_of(31)),
                pressure("DiskPressure", i.is_multiple_of(37)),
                pressure("PIDPressure", false),
                {"type": "Ready", "status": ready, "reason": if ready == "True" { "KubeletReady" } else { "NodeStatusUnknown" },
                 "message": if ready == "True" { "kubelet is posting ready status" } else { "Kubelet stopped posting node status." },
                 "lastHeartbeatTime": "2026-11-30T10:00:00Z", "lastTransitionTime": "2026-11-29T10:00:00Z"}
            ],
            "nodeInfo": {"kubeletVersion": if i.is_multiple_of(41) { "v1.26.15" } else { "v1.28.7" }, "kubeProxyVersion": "v1.28.7",
                "containerRuntimeVersion": "containerd://1.7.13", "kernelVersion": "6.1.0-18-amd64", "osImage": "Debian GNU/Linux 12",
                "operatingSystem": "linux", "architecture": "amd64"}
        }
    })
}

/// An RBAC object: Roles, ClusterRoles, RoleBindings, ClusterRoleBindings in turn; some too broad.
pub fn rbac(i: usize) -> Value {
    let ns = format!("team-{}", i % 40);
    let rules = match i % 7 {
        0 => json!([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]),
        1 => {
            json!([{"apiGroups": [""], "resources": ["pods", "pods/exec"], "verbs": ["get", "create"]}])
        }
        2 => {
            json!([{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list", "update", "delete"]}])
        }
        3 => json!([{"apiGroups": [""], "resources": ["users"], "verbs": ["impersonate"]}]),
        _ => {
            json!([{"apiGroups": [""], "resources": ["pods", "services", "configmaps"], "verbs": ["get", "list", "watch"]}])
        }
    };
    let name = format!("rbac-{i:05}");
    match i % 4 {
        0 => json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": name, "namespace": ns, "uid": format!("20000000-0000-0000-0000-{i:012}")}, "rules": rules}),
        1 => json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": name, "uid": format!("20000000-0000-0000-0000-{i:012}")}, "rules": rules}),
        2 => json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": name, "namespace": ns, "uid": format!("20000000-0000-0000-0000-{i:012}")},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": if i.is_multiple_of(9) { "cluster-admin".to_string() } else { format!("rbac-{:05}", i - 1) }},
            "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": ns}]}),
        _ => json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": name, "uid": format!("20000000-0000-0000-0000-{i:012}")},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": if i % 11 == 3 { "cluster-admin".to_string() } else { format!("rbac-{:05}", i - 2) }},
            "subjects": [{"kind": "Group", "name": format!("group-{}", i % 13), "apiGroup": "rbac.authorization.k8s.io"}]}),
    }
}

/// An event about workload `i % workloads`' pods or a node: mostly Normal, a quarter Warning.
pub fn event(i: usize, workloads: usize, nodes: usize) -> Value {
    let w = i % workloads.max(1);
    let ns = format!("team-{}", w % 40);
    let (kind, name, ns_field) = if i % 10 == 9 {
        (
            "Node",
            format!("node-{:04}", i % nodes.max(1)),
            String::new(),
        )
    } else {
        ("Pod", format!("w-{w:05}-abc12"), ns.clone())
    };
    let (type_, reason, message) = match i % 8 {
        0 => (
            "Warning",
            "BackOff",
            "Back-off restarting failed container app in pod",
        ),
        1 => ("Warning", "Failed", "Error: ImagePullBackOff"),
        2 => (
            "Warning",
            "Unhealthy",
            "Readiness probe failed: HTTP probe failed with statuscode: 503",
        ),
        3 => (
            "Normal",
            "Pulled",
            "Container image already present on machine",
        ),
        4 => ("Normal", "Created", "Created container app"),
        5 => ("Normal", "Started", "Started container app"),
        6 => (
            "Warning",
            "FailedMount",
            "MountVolume.SetUp failed for volume \"config\" : configmap \"app-config\" not found",
        ),
        _ => ("Normal", "Scheduled", "Successfully assigned pod to node"),
    };
    let event_ns = if kind == "Node" {
        "default".to_string()
    } else {
        ns
    };
    json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": format!("{name}.{i:016x}"), "namespace": event_ns, "uid": format!("30000000-0000-0000-0000-{i:012}")},
        "involvedObject": {"apiVersion": "v1", "kind": kind, "name": name, "namespace": ns_field,
            "uid": format!("40000000-0000-0000-0000-{w:012}")},
        "type": type_, "reason": reason, "message": message, "count": 1 + (i % 5),
        "firstTimestamp": "2026-11-30T09:00:00Z", "lastTimestamp": format!("2026-11-30T09:{:02}:00Z", i % 60),
        "source": {"component": "kubelet", "host": format!("node-{:04}", i % nodes.max(1))}
    })
}

const FINDING_KINDS: [&str; 4] = ["Deployment", "StatefulSet", "DaemonSet", "Pod"];
const FINDING_RULES: [&str; 8] = [
    "NoCPULimits",
    "NoMemoryLimits",
    "RunAsRoot",
    "PrivilegeEscalation",
    "LatestTag",
    "NoLivenessProbe",
    "NoReadinessProbe",
    "HostPath",
];

/// Finding `i`: unique per i, realistic sizes (a resource, a sentence, a label).
pub fn finding(i: usize) -> Finding {
    let rule = FINDING_RULES[i % FINDING_RULES.len()];
    let workload = i / FINDING_RULES.len();
    Finding {
        rule: rule.to_string(),
        severity: Severity::ALL[i % 5],
        resource: Some(ResourceRef {
            api_version: "apps/v1".into(),
            kind: FINDING_KINDS[workload % FINDING_KINDS.len()].into(),
            namespace: Some(format!("team-{}", workload % 50)),
            name: format!("service-{workload}"),
            uid: None,
        }),
        message: format!("container app of service-{workload} breaks {rule}: see the remedy"),
        remedy: None,
        labels: vec![("container".into(), "app".into())],
    }
}
