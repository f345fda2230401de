//! Sonde's built-in kernel audit: the node kernel and container-runtime
//! problems node-problem-detector reports (KubeEye's NodeOOM, NodeTaskHung,
//! NodeDeadlock, NodeDockerHung, ...), from the Node conditions it sets and
//! the Warning Events it posts on Nodes (`sonde_sdk::npd` names them: this
//! probe owns those events, event-audit skips them). One finding per node and
//! rule, with the event count, the last time and the last message. Kernel
//! logs read on the nodes (a `kernel-log` collector) are skipped, and said so
//! in the run log, until the host has such a collector.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Event, Node};
use sonde_sdk::bindings::sonde::probe::collectors;
use sonde_sdk::{
    Finding, KubeVerb, Probe, ProbeError, ProbeInfo, ResourceRef, Rule, Severity, kube, log, npd,
};

const fn rule(
    id: &'static str,
    title: &'static str,
    severity: Severity,
    description: &'static str,
    remedy: &'static str,
) -> Rule {
    Rule::new(id, title, "kernel", severity, description, remedy)
}

pub const NODE_OOM: Rule = rule(
    "NodeOOM",
    "Kernel OOM kill",
    Severity::High,
    "The kernel killed a process for lack of memory (node-problem-detector's OOMKilling).",
    "Set memory limits on the node's workloads and find the process that grew; the message names it.",
);
pub const NODE_TASK_HUNG: Rule = rule(
    "NodeTaskHung",
    "Task blocked in the kernel",
    Severity::Medium,
    "A task stayed in uninterruptible sleep (D state) longer than the kernel's hung-task timeout, usually 120 s (TaskHung).",
    "Look at the node's disk and network storage latency and at the blocked task's stack in the kernel log.",
);
pub const NODE_UNREGISTER_NET_DEVICE: Rule = rule(
    "NodeUnregisterNetDevice",
    "Network device stuck unregistering",
    Severity::Medium,
    "The kernel waits for a network device to become free (unregister_netdevice): pod network teardown hangs.",
    "Upgrade the node's kernel (a known kernel bug with veth devices) or drain and reboot the node.",
);
pub const NODE_KERNEL_NULL_POINTER: Rule = rule(
    "NodeKernelNULLPointer",
    "Kernel NULL pointer dereference",
    Severity::High,
    "The kernel oopsed on a NULL pointer dereference (KernelOops): the node's kernel state is suspect.",
    "Drain and reboot the node; report the oops to the kernel or driver vendor.",
);
pub const NODE_KERNEL_OOPS: Rule = rule(
    "NodeKernelOops",
    "Kernel oops",
    Severity::High,
    "The kernel oopsed (KernelOops other than a NULL pointer dereference, e.g. a divide error).",
    "Drain and reboot the node; report the oops to the kernel or driver vendor.",
);
pub const NODE_EXT4_ERROR: Rule = rule(
    "NodeExt4Error",
    "ext4 filesystem error",
    Severity::High,
    "The kernel reports an ext4 filesystem error (Ext4Error): data may be corrupt and the filesystem may turn read-only.",
    "Check the disk's health and run fsck on the filesystem after draining the node.",
);
pub const NODE_EXT4_WARNING: Rule = rule(
    "NodeExt4Warning",
    "ext4 filesystem warning",
    Severity::Low,
    "The kernel reports an ext4 filesystem warning (Ext4Warning).",
    "Check the disk's health and the filesystem's state.",
);
pub const NODE_IO_ERROR: Rule = rule(
    "NodeIOError",
    "Block device I/O error",
    Severity::High,
    "The kernel reports a buffer I/O error (IOError): a disk fails reads or writes.",
    "Check the disk (SMART, cloud volume status) and replace it.",
);
pub const NODE_MEMORY_READ_ERROR: Rule = rule(
    "NodeMemoryReadError",
    "Memory read error",
    Severity::High,
    "The kernel reports a corrected memory read error (MemoryReadError): the node's RAM is failing.",
    "Plan to replace the node's memory; drain it if the errors grow.",
);
pub const NODE_XFS_SHUTDOWN: Rule = rule(
    "NodeXfsShutdown",
    "XFS filesystem shut down",
    Severity::Critical,
    "XFS shut a filesystem down (XfsHasShutdown, condition XfsShutdown): writes to it fail.",
    "Drain the node, repair the filesystem (xfs_repair) and check the disk.",
);
pub const NODE_DEADLOCK: Rule = rule(
    "NodeDeadlock",
    "Kernel deadlock",
    Severity::Critical,
    "node-problem-detector's KernelDeadlock condition is True: tasks are deadlocked in the kernel.",
    "Drain and reboot the node; read the kernel log for the blocked tasks.",
);
pub const NODE_DOCKER_HUNG: Rule = rule(
    "NodeDockerHung",
    "Docker hung in the kernel",
    Severity::Critical,
    "The docker daemon is blocked in the kernel (DockerHung, condition KernelDeadlock): containers cannot start or stop.",
    "Read docker's logs and the kernel log; restart docker or reboot the node.",
);
pub const NODE_AUFS_UMOUNT_HUNG: Rule = rule(
    "NodeAUFSUmountHung",
    "AUFS unmount hung",
    Severity::High,
    "umount.aufs is blocked in the kernel (AUFSUmountHung, condition KernelDeadlock): container teardown hangs.",
    "Reboot the node; move the runtime off AUFS (overlay2).",
);
pub const NODE_READONLY_FILESYSTEM: Rule = rule(
    "NodeReadonlyFilesystem",
    "Filesystem remounted read-only",
    Severity::High,
    "The kernel remounted a filesystem read-only (FilesystemIsReadOnly, condition ReadonlyFilesystem).",
    "Find the filesystem in the kernel log, check the disk, repair and remount it.",
);
pub const NODE_CORRUPT_DOCKER_IMAGE: Rule = rule(
    "NodeCorruptDockerImage",
    "Corrupt docker image store",
    Severity::Medium,
    "docker cannot register an image layer (CorruptDockerImage): the image store under /var/lib/docker/image is corrupt.",
    "Remove the broken image (or docker's image folder) on the node and pull again.",
);
pub const NODE_CORRUPT_OVERLAY2: Rule = rule(
    "NodeCorruptOverlay2",
    "Corrupt docker overlay2 store",
    Severity::High,
    "docker's overlay2 storage is corrupt (CorruptDockerOverlay2): containers using the broken layers fail.",
    "Drain the node and clean docker's overlay2 folder, or rebuild the node.",
);
pub const NODE_FREQUENT_RESTART: Rule = rule(
    "NodeFrequentRestart",
    "Node service restarting often",
    Severity::Medium,
    "The kubelet, docker or containerd restarted many times in a short window (node-problem-detector's systemd monitor).",
    "Read the service's journal on the node (journalctl -u SERVICE) for why it exits.",
);

pub const RULES: &[Rule] = &[
    NODE_OOM,
    NODE_TASK_HUNG,
    NODE_UNREGISTER_NET_DEVICE,
    NODE_KERNEL_NULL_POINTER,
    NODE_KERNEL_OOPS,
    NODE_EXT4_ERROR,
    NODE_EXT4_WARNING,
    NODE_IO_ERROR,
    NODE_MEMORY_READ_ERROR,
    NODE_XFS_SHUTDOWN,
    NODE_DEADLOCK,
    NODE_DOCKER_HUNG,
    NODE_AUFS_UMOUNT_HUNG,
    NODE_READONLY_FILESYSTEM,
    NODE_CORRUPT_DOCKER_IMAGE,
    NODE_CORRUPT_OVERLAY2,
    NODE_FREQUENT_RESTART,
];

/// The collector that would hold the nodes' kernel logs.
pub const KERNEL_LOG_COLLECTOR: &str = "kernel-log";

/// The rule of a node-problem-detector problem reported as an Event.
pub fn rule_for_event(problem: &npd::Problem, message: &str) -> Option<&'static Rule> {
    Some(match problem.reason {
        "OOMKilling" => &NODE_OOM,
        "TaskHung" => &NODE_TASK_HUNG,
        "UnregisterNetDevice" => &NODE_UNREGISTER_NET_DEVICE,
        "KernelOops" if message.contains("NULL pointer dereference") => &NODE_KERNEL_NULL_POINTER,
        "KernelOops" => &NODE_KERNEL_OOPS,
        "Ext4Error" => &NODE_EXT4_ERROR,
        "Ext4Warning" => &NODE_EXT4_WARNING,
        "IOError" => &NODE_IO_ERROR,
        "MemoryReadError" => &NODE_MEMORY_READ_ERROR,
        "XfsHasShutdown" => &NODE_XFS_SHUTDOWN,
        "DockerHung" => &NODE_DOCKER_HUNG,
        "AUFSUmountHung" => &NODE_AUFS_UMOUNT_HUNG,
        "FilesystemIsReadOnly" => &NODE_READONLY_FILESYSTEM,
        "CorruptDockerImage" => &NODE_CORRUPT_DOCKER_IMAGE,
        "CorruptDockerOverlay2" => &NODE_CORRUPT_OVERLAY2,
        "FrequentKubeletRestart" | "FrequentDockerRestart" | "FrequentContainerdRestart" => {
            &NODE_FREQUENT_RESTART
        }
        _ => return None,
    })
}

/// The rule of a node-problem-detector condition that is True.
pub fn rule_for_condition(type_: &str, reason: &str) -> Option<&'static Rule> {
    Some(match (type_, reason) {
        ("KernelDeadlock", "DockerHung") => &NODE_DOCKER_HUNG,
        ("KernelDeadlock", "AUFSUmountHung") => &NODE_AUFS_UMOUNT_HUNG,
        ("KernelDeadlock", _) => &NODE_DEADLOCK,
        ("ReadonlyFilesystem", _) => &NODE_READONLY_FILESYSTEM,
        ("XfsShutdown", _) => &NODE_XFS_SHUTDOWN,
        ("CorruptDockerOverlay2", _) => &NODE_CORRUPT_OVERLAY2,
        ("FrequentUnregisterNetDevice", _) => &NODE_UNREGISTER_NET_DEVICE,
        ("FrequentKubeletRestart" | "FrequentDockerRestart" | "FrequentContainerdRestart", _) => {
            &NODE_FREQUENT_RESTART
        }
        _ => return None,
    })
}

/// A condition that is True, as the finding shows it.
struct TrueCondition {
    type_: String,
    reason: String,
    message: String,
    since: String,
}

/// What one node shows under one rule.
struct Group {
    node: ResourceRef,
    condition: Option<TrueCondition>,
    count: i64,
    last: String,
    reason: String,
    message: String,
}

impl Group {
    fn new(node: ResourceRef) -> Self {
        Group {
            node,
            condition: None,
            count: 0,
            last: String::new(),
            reason: String::new(),
            message: String::new(),
        }
    }

    fn finding(self, rule: &Rule) -> Finding {
        let events = format!(
            "{} x{} (last {}): {}",
            self.reason, self.count, self.last, self.message
        );
        let (message, time, reason) = match &self.condition {
            Some(c) => {
                let mut m = format!(
                    "{} is True since {} ({}): {}",
                    c.type_, c.since, c.reason, c.message
                );
                if self.count > 0 {
                    m = format!("{m}; events: {events}");
                }
                let time = if self.last > c.since {
                    self.last.clone()
                } else {
                    c.since.clone()
                };
                (m, time, c.reason.clone())
            }
            None => (events, self.last.clone(), self.reason.clone()),
        };
        let mut f = rule
            .finding(self.node, message)
            .label("reason", reason)
            .label("time", time);
        if let Some(c) = &self.condition {
            f = f.label("condition", c.type_.clone());
        }
        if self.count > 0 {
            f = f.label("count", self.count.to_string());
        }
        f.into()
    }
}

/// The node an event is about, as its involvedObject names it (node-problem-detector
/// puts the node's name in `uid`: not a uid, so it is dropped).
fn event_node(event: &Event) -> ResourceRef {
    let o = &event.involved_object;
    ResourceRef {
        api_version: o.api_version.clone().unwrap_or_else(|| "v1".into()),
        kind: "Node".into(),
        namespace: None,
        name: o.name.clone().unwrap_or_default(),
        uid: o.uid.clone().filter(|u| Some(u) != o.name.as_ref()),
    }
}

/// One finding per (node, rule): node-problem-detector's conditions that are
/// True on `nodes`, and its Warning Events on Nodes among `events`.
pub fn audit(nodes: &[Node], events: &[Event]) -> Vec<Finding> {
    let mut groups: BTreeMap<(String, &'static str), Group> = BTreeMap::new();
    let mut refs: BTreeMap<&str, ResourceRef> = BTreeMap::new();
    for node in nodes {
        let name = node.metadata.name.as_deref().unwrap_or_default();
        refs.insert(name, node.into());
        let conditions = node.status.as_ref().and_then(|s| s.conditions.as_ref());
        for c in conditions.into_iter().flatten() {
            if c.status != "True" || !npd::CONDITION_TYPES.contains(&c.type_.as_str()) {
                continue;
            }
            let reason = c.reason.clone().unwrap_or_default();
            let Some(rule) = rule_for_condition(&c.type_, &reason) else {
                continue;
            };
            let group = groups
                .entry((name.to_string(), rule.id))
                .or_insert_with(|| Group::new(node.into()));
            group.condition = Some(TrueCondition {
                type_: c.type_.clone(),
                reason,
                message: c.message.clone().unwrap_or_default(),
                since: c
                    .last_transition_time
                    .as_ref()
                    .map(|t| t.0.to_string())
                    .unwrap_or_default(),
            });
        }
    }
    for e in events {
        let Some(problem) = npd::kernel_event(e) else {
            continue;
        };
        let message = e.message.clone().unwrap_or_default();
        let Some(rule) = rule_for_event(problem, &message) else {
            continue;
        };
        let node = event_node(e);
        let group = groups
            .entry((node.name.clone(), rule.id))
            .or_insert_with(|| Group::new(refs.get(node.name.as_str()).cloned().unwrap_or(node)));
        let last = e
            .last_timestamp
            .as_ref()
            .map(|t| t.0.to_string())
            .or_else(|| e.event_time.as_ref().map(|t| t.0.to_string()))
            .unwrap_or_default();
        group.count += i64::from(e.count.unwrap_or(1).max(1));
        if last >= group.last {
            group.last = last;
            group.reason = problem.reason.to_string();
            group.message = message;
        }
    }
    groups
        .into_iter()
        .filter_map(|((_, id), g)| RULES.iter().find(|r| r.id == id).map(|r| g.finding(r)))
        .collect()
}

/// Milliseconds since the Unix epoch, from the host's wall clock.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Asks the kernel-log collector for the last `lookback_minutes`; says in the run log why the check was skipped.
fn kernel_log_check(lookback_minutes: u32) {
    let query = collectors::CollectorQuery {
        collector: KERNEL_LOG_COLLECTOR.into(),
        since: now_ms() - i64::from(lookback_minutes) * 60_000,
        until: None,
        filters: Vec::new(),
        group_by: Vec::new(),
        aggregates: Vec::new(),
        limit: Some(1),
    };
    match collectors::query(&query) {
        Err(e) => log::info(&format!(
            "kernel-log check skipped: the {KERNEL_LOG_COLLECTOR:?} collector cannot be queried ({e:?}); \
             only node-problem-detector's Node conditions and Events were read"
        )),
        Ok(_) => log::warn(&format!(
            "kernel-log check skipped: the {KERNEL_LOG_COLLECTOR:?} collector answered, but this version \
             of kernel-audit does not read its rows; only node-problem-detector's Node conditions and Events were read"
        )),
    }
}

/// Probe config.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// How far back the kernel-log check looks (node-problem-detector's default lookback is 5 minutes).
    pub kernel_log_lookback_minutes: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            kernel_log_lookback_minutes: 5,
        }
    }
}

/// The probe.
pub struct KernelAudit;

impl Probe for KernelAudit {
    type Config = Option<Config>;

    fn describe() -> ProbeInfo {
        sonde_sdk::describe(
            "kernel-audit",
            env!("CARGO_PKG_VERSION"),
            "node kernel and container-runtime problems reported by node-problem-detector",
        )
        .rules(RULES)
        .kube("", "Node", &[KubeVerb::List])
        .kube("", "Event", &[KubeVerb::List])
        .collector(KERNEL_LOG_COLLECTOR)
        .schedule("0 */5 * * * *")
        .build()
    }

    fn run(config: Option<Config>) -> Result<Vec<Finding>, ProbeError> {
        let config = config.unwrap_or_default();
        let nodes = kube::list::<Node>(&Default::default())?;
        let events = kube::list::<Event>(&kube::ListParams {
            field_selector: Some("involvedObject.kind=Node,type=Warning".into()),
            ..Default::default()
        })?;
        kernel_log_check(config.kernel_log_lookback_minutes);
        Ok(audit(&nodes, &events))
    }
}

sonde_sdk::export_probe!(KernelAudit);

#[cfg(test)]
mod tests;
