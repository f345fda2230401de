//! Sonde's built-in node audit: readiness (with the last heartbeat, as
//! KubeEye's node table shows it), memory/disk/PID pressure, cordoned nodes,
//! taints set by hand, CPU, memory and ephemeral storage requested against
//! allocatable, and kubelet version skew
//! against the API server (skipped, and said so in the run log, when the
//! cluster source has no API server, as a snapshot).

pub mod quantity;

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{Node, Pod};
use serde::Deserialize;
use sonde_sdk::{Finding, KubeVerb, Probe, ProbeError, ProbeInfo, Rule, Severity, kube, log};

pub const NODE_NOT_READY: Rule = Rule::new(
    "NodeNotReady",
    "Node not ready",
    "nodes",
    Severity::Critical,
    "The node's Ready condition is False: the kubelet reports it cannot run pods.",
    "Look at the condition's reason on the node and at the kubelet and container runtime logs there.",
);
pub const NODE_STATUS_UNKNOWN: Rule = Rule::new(
    "NodeStatusUnknown",
    "Node status unknown",
    "nodes",
    Severity::Critical,
    "The node's Ready condition is Unknown: the kubelet stopped posting status (node down, network partition, kubelet stopped).",
    "Check the node is up and reachable and that the kubelet runs; its pods are evicted after the toleration period.",
);
pub const NODE_MEMORY_PRESSURE: Rule = Rule::new(
    "NodeMemoryPressure",
    "Node under memory pressure",
    "nodes",
    Severity::High,
    "The kubelet reports MemoryPressure: it evicts pods and admits no new BestEffort pods.",
    "Find the pods using most memory on the node; set memory limits; add capacity.",
);
pub const NODE_DISK_PRESSURE: Rule = Rule::new(
    "NodeDiskPressure",
    "Node under disk pressure",
    "nodes",
    Severity::High,
    "The kubelet reports DiskPressure: it garbage-collects images and evicts pods.",
    "Free disk space on the node (images, logs, emptyDir volumes) or grow the disk.",
);
pub const NODE_PID_PRESSURE: Rule = Rule::new(
    "NodePIDPressure",
    "Node under PID pressure",
    "nodes",
    Severity::High,
    "The kubelet reports PIDPressure: processes are close to the node's limit.",
    "Find the pods forking most processes; set pod PID limits.",
);
pub const NODE_UNSCHEDULABLE: Rule = Rule::new(
    "NodeUnschedulable",
    "Node cordoned",
    "nodes",
    Severity::Low,
    "The node is cordoned (spec.unschedulable): no new pods are scheduled on it.",
    "Uncordon it (kubectl uncordon) once maintenance is over, or remove it.",
);
pub const NODE_CPU: Rule = Rule::new(
    "NodeCPU",
    "Node CPU requests above threshold",
    "nodes",
    Severity::Medium,
    "The CPU requested by the node's pods is above the threshold of its allocatable CPU.",
    "Spread the workloads, lower overstated requests, or add nodes.",
);
pub const NODE_MEMORY: Rule = Rule::new(
    "NodeMemory",
    "Node memory requests above threshold",
    "nodes",
    Severity::Medium,
    "The memory requested by the node's pods is above the threshold of its allocatable memory.",
    "Spread the workloads, lower overstated requests, or add nodes.",
);
pub const NODE_DISK: Rule = Rule::new(
    "NodeDisk",
    "Node ephemeral-storage requests above threshold",
    "nodes",
    Severity::Medium,
    "The ephemeral storage requested by the node's pods is above the threshold of its allocatable ephemeral storage.",
    "Spread the workloads, lower overstated ephemeral-storage requests, or give the node more disk.",
);
pub const NODE_TAINTED: Rule = Rule::new(
    "NodeTainted",
    "Node refuses pods by a taint",
    "nodes",
    Severity::Low,
    "A NoSchedule or NoExecute taint set by hand (not by Kubernetes for a node condition, a cordon or the control-plane role) keeps pods without a toleration off the node.",
    "Remove the taint (kubectl taint nodes NODE KEY-) when what it marks is over, or add tolerations to the pods meant to run there.",
);
pub const KUBELET_VERSION_SKEW: Rule = Rule::new(
    "KubeletVersionSkew",
    "Kubelet version differs from the API server",
    "nodes",
    Severity::Low,
    "The kubelet's minor version differs from the API server's; more than three minors behind, or any newer, is unsupported.",
    "Upgrade the node's kubelet to the control plane's version.",
);

pub const RULES: &[Rule] = &[
    NODE_NOT_READY,
    NODE_STATUS_UNKNOWN,
    NODE_MEMORY_PRESSURE,
    NODE_DISK_PRESSURE,
    NODE_PID_PRESSURE,
    NODE_UNSCHEDULABLE,
    NODE_CPU,
    NODE_MEMORY,
    NODE_DISK,
    NODE_TAINTED,
    KUBELET_VERSION_SKEW,
];

/// Taints Kubernetes itself sets: for node conditions and cordons (the node
/// lifecycle controller), for cloud initialisation, and on control-plane nodes.
const SYSTEM_TAINTS: &[&str] = &[
    "node.kubernetes.io/not-ready",
    "node.kubernetes.io/unreachable",
    "node.kubernetes.io/unschedulable",
    "node.kubernetes.io/memory-pressure",
    "node.kubernetes.io/disk-pressure",
    "node.kubernetes.io/pid-pressure",
    "node.kubernetes.io/network-unavailable",
    "node.kubernetes.io/out-of-service",
    "node.cloudprovider.kubernetes.io/uninitialized",
    "node.cloudprovider.kubernetes.io/shutdown",
    "node-role.kubernetes.io/control-plane",
    "node-role.kubernetes.io/master",
];

/// Probe config.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Percent of allocatable CPU/memory/ephemeral storage requested above
    /// which NodeCPU/NodeMemory/NodeDisk fire.
    pub request_threshold_percent: f64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            request_threshold_percent: 90.0,
        }
    }
}

fn minor(version: &str) -> Option<(u64, u64)> {
    let mut parts = version.trim_start_matches('v').split('.');
    Some((
        parts.next()?.parse().ok()?,
        parts
            .next()?
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()?,
    ))
}

/// The skew finding's severity and text, if the versions differ in minor.
pub fn skew(kubelet: &str, server: &str) -> Option<(Severity, String)> {
    let (k, s) = (minor(kubelet)?, minor(server)?);
    if k.0 != s.0 {
        return Some((
            Severity::High,
            format!("kubelet {kubelet} and API server {server} differ in major version"),
        ));
    }
    match s.1 as i64 - k.1 as i64 {
        0 => None,
        d if d < 0 => Some((
            Severity::High,
            format!("kubelet {kubelet} is newer than the API server {server} (unsupported)"),
        )),
        d if d > 3 => Some((
            Severity::High,
            format!(
                "kubelet {kubelet} is {d} minor versions behind the API server {server} (unsupported: at most 3)"
            ),
        )),
        d => Some((
            Severity::Low,
            format!(
                "kubelet {kubelet} is {d} minor version{} behind the API server {server}",
                if d == 1 { "" } else { "s" }
            ),
        )),
    }
}

/// The resources the node audit sums, in the order of `pod_requests`' result.
const RESOURCES: [&str; 3] = ["cpu", "memory", "ephemeral-storage"];

/// CPU, memory and ephemeral storage (in thousandths of their unit) a pod requests, as
/// the scheduler counts them: a request defaults to the limit, regular and sidecar
/// containers are summed, init containers count as their maximum, plus overhead.
fn pod_requests(pod: &Pod) -> [f64; 3] {
    let Some(spec) = &pod.spec else {
        return [0.0; 3];
    };
    let get = |c: &k8s_openapi::api::core::v1::Container, name: &str| {
        let r = c.resources.as_ref();
        let q = r
            .and_then(|r| r.requests.as_ref())
            .and_then(|m| m.get(name))
            .or_else(|| r.and_then(|r| r.limits.as_ref()).and_then(|m| m.get(name)));
        q.and_then(|q| quantity::milli(&q.0)).unwrap_or(0.0)
    };
    let mut totals = [0.0; 3];
    for (i, name) in RESOURCES.iter().enumerate() {
        let regular: f64 = spec.containers.iter().map(|c| get(c, name)).sum::<f64>()
            + spec
                .init_containers
                .iter()
                .flatten()
                .filter(|c| c.restart_policy.as_deref() == Some("Always"))
                .map(|c| get(c, name))
                .sum::<f64>();
        let init = spec
            .init_containers
            .iter()
            .flatten()
            .map(|c| get(c, name))
            .fold(0.0, f64::max);
        let overhead = spec
            .overhead
            .as_ref()
            .and_then(|o| o.get(*name))
            .and_then(|q| quantity::milli(&q.0))
            .unwrap_or(0.0);
        totals[i] = regular.max(init) + overhead;
    }
    totals
}

/// Findings for `nodes`, with the requests of `pods` and the API server version when known.
pub fn audit(nodes: &[Node], pods: &[Pod], server: Option<&str>, config: &Config) -> Vec<Finding> {
    let mut requested: HashMap<&str, [f64; 3]> = HashMap::new();
    for pod in pods {
        let phase = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .unwrap_or("");
        if matches!(phase, "Succeeded" | "Failed") {
            continue;
        }
        if let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) {
            let e = requested.entry(node).or_default();
            for (total, r) in e.iter_mut().zip(pod_requests(pod)) {
                *total += r;
            }
        }
    }
    let mut out = Vec::new();
    for node in nodes {
        let name = node.metadata.name.as_deref().unwrap_or_default();
        let status = node.status.as_ref();
        for c in status
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
        {
            let heartbeat = c
                .last_heartbeat_time
                .as_ref()
                .map(|t| t.0.to_string())
                .unwrap_or_else(|| "never".into());
            let detail = format!(
                "{}: {} (last heartbeat {heartbeat})",
                c.reason.as_deref().unwrap_or(""),
                c.message.as_deref().unwrap_or("")
            );
            let rule = match (c.type_.as_str(), c.status.as_str()) {
                ("Ready", "False") => Some(&NODE_NOT_READY),
                ("Ready", "Unknown") => Some(&NODE_STATUS_UNKNOWN),
                ("MemoryPressure", "True") => Some(&NODE_MEMORY_PRESSURE),
                ("DiskPressure", "True") => Some(&NODE_DISK_PRESSURE),
                ("PIDPressure", "True") => Some(&NODE_PID_PRESSURE),
                _ => None,
            };
            if let Some(rule) = rule {
                out.push(
                    rule.finding(node, detail)
                        .label("heartbeat", heartbeat)
                        .label("reason", c.reason.clone().unwrap_or_default())
                        .into(),
                );
            }
        }
        if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
            out.push(
                NODE_UNSCHEDULABLE
                    .finding(node, "cordoned: no new pods are scheduled on it")
                    .into(),
            );
        }
        for taint in node
            .spec
            .as_ref()
            .and_then(|s| s.taints.as_ref())
            .into_iter()
            .flatten()
            .filter(|t| matches!(t.effect.as_str(), "NoSchedule" | "NoExecute"))
            .filter(|t| !SYSTEM_TAINTS.contains(&t.key.as_str()))
        {
            let shown = match taint.value.as_deref().filter(|v| !v.is_empty()) {
                Some(v) => format!("{}={v}:{}", taint.key, taint.effect),
                None => format!("{}:{}", taint.key, taint.effect),
            };
            out.push(
                NODE_TAINTED
                    .finding(
                        node,
                        format!("tainted {shown}: pods without a matching toleration are kept off"),
                    )
                    .label("taint", shown)
                    .into(),
            );
        }
        let allocatable = status.and_then(|s| s.allocatable.as_ref());
        let [cpu_req, mem_req, disk_req] = requested.get(name).copied().unwrap_or_default();
        for (rule, value, key, unit) in [
            (&NODE_CPU, cpu_req, "cpu", "CPU"),
            (&NODE_MEMORY, mem_req, "memory", "memory"),
            (
                &NODE_DISK,
                disk_req,
                "ephemeral-storage",
                "ephemeral storage",
            ),
        ] {
            let Some(total) = allocatable
                .and_then(|a| a.get(key))
                .and_then(|q| quantity::milli(&q.0))
                .filter(|t| *t > 0.0)
            else {
                continue;
            };
            let percent = value / total * 100.0;
            if percent > config.request_threshold_percent {
                let msg = format!(
                    "{percent:.0}% of allocatable {unit} is requested (threshold {}%)",
                    config.request_threshold_percent
                );
                out.push(rule.finding(node, msg).into());
            }
        }
        if let (Some(server), Some(kubelet)) = (
            server,
            status
                .and_then(|s| s.node_info.as_ref())
                .map(|i| i.kubelet_version.as_str()),
        ) && let Some((severity, msg)) = skew(kubelet, server)
        {
            out.push(
                KUBELET_VERSION_SKEW
                    .finding(node, msg)
                    .severity(severity)
                    .into(),
            );
        }
    }
    out
}

/// The probe.
pub struct NodeAudit;

impl Probe for NodeAudit {
    type Config = Option<Config>;

    fn describe() -> ProbeInfo {
        sonde_sdk::describe(
            "node-audit",
            env!("CARGO_PKG_VERSION"),
            "Node readiness, pressure, cordons, taints, requested capacity and kubelet version skew",
        )
        .rules(RULES)
        .kube("", "Node", &[KubeVerb::List])
        .kube("", "Pod", &[KubeVerb::List])
        .schedule("0 */5 * * * *")
        .build()
    }

    fn run(config: Option<Config>) -> Result<Vec<Finding>, ProbeError> {
        let config = config.unwrap_or_default();
        let nodes = kube::list::<Node>(&Default::default())?;
        let pods = kube::list::<Pod>(&Default::default())?;
        let server = match kube::server_version() {
            Ok(v) => Some(v),
            Err(e) => {
                log::info(&format!(
                    "KubeletVersionSkew skipped: no API server version ({e:?})"
                ));
                None
            }
        };
        Ok(audit(&nodes, &pods, server.as_deref(), &config))
    }
}

sonde_sdk::export_probe!(NodeAudit);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_skew_policy() {
        assert_eq!(skew("v1.28.7", "v1.28.7"), None);
        assert_eq!(
            skew("v1.26.15", "v1.28.7").unwrap(),
            (
                Severity::Low,
                "kubelet v1.26.15 is 2 minor versions behind the API server v1.28.7".into()
            )
        );
        assert_eq!(skew("v1.24.0", "v1.28.7").unwrap().0, Severity::High);
        assert_eq!(skew("v1.29.0", "v1.28.7").unwrap().0, Severity::High);
        assert_eq!(skew("v1.28.2-eks-123", "v1.28.7"), None);
    }

    fn node(taints: serde_json::Value) -> Node {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n1"},
            "spec": {"taints": taints},
            "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "ephemeral-storage": "100Gi"}}
        }))
        .unwrap()
    }

    fn pod(resources: serde_json::Value, phase: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "a"},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "resources": resources}]},
            "status": {"phase": phase}
        }))
        .unwrap()
    }

    fn rules(findings: &[Finding]) -> Vec<&str> {
        findings.iter().map(|f| f.rule.as_str()).collect()
    }

    #[test]
    fn ephemeral_storage_requests_default_to_limits() {
        let n = node(serde_json::json!([]));
        let config = Config::default();
        // 95Gi limit, no request: the request is the limit, 95% > 90%.
        let heavy = pod(
            serde_json::json!({"limits": {"ephemeral-storage": "95Gi"}}),
            "Running",
        );
        let f = audit(std::slice::from_ref(&n), &[heavy], None, &config);
        assert_eq!(rules(&f), ["NodeDisk"]);
        assert_eq!(
            f[0].message,
            "95% of allocatable ephemeral storage is requested (threshold 90%)"
        );
        // Under the threshold, or a finished pod: nothing.
        let light = pod(
            serde_json::json!({"requests": {"ephemeral-storage": "10Gi"}}),
            "Running",
        );
        let done = pod(
            serde_json::json!({"requests": {"ephemeral-storage": "99Gi"}}),
            "Succeeded",
        );
        assert!(audit(&[n], &[light, done], None, &config).is_empty());
    }

    #[test]
    fn only_hand_set_scheduling_taints_are_reported() {
        let system = node(serde_json::json!([
            {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"},
            {"key": "node.kubernetes.io/memory-pressure", "effect": "NoSchedule"},
            {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"},
            {"key": "dedicated", "value": "gpu", "effect": "PreferNoSchedule"}
        ]));
        assert!(audit(&[system], &[], None, &Config::default()).is_empty());
        let manual = node(serde_json::json!([
            {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"},
            {"key": "maintenance", "effect": "NoExecute"}
        ]));
        let f = audit(&[manual], &[], None, &Config::default());
        assert_eq!(rules(&f), ["NodeTainted", "NodeTainted"]);
        assert_eq!(
            f[0].labels,
            [("taint".to_string(), "dedicated=gpu:NoSchedule".to_string())]
        );
        assert_eq!(
            f[1].labels,
            [("taint".to_string(), "maintenance:NoExecute".to_string())]
        );
    }
}
