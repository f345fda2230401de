//! Sonde's built-in kernel audit: the node kernel and container-runtime
//! problems node-problem-detector reports (KubeEye's NodeOOM, NodeTaskHung,
//! NodeDeadlock, NodeDockerHung, ...), from the Node conditions it sets and
//! the Warning Events it posts on Nodes (`sonde_sdk::npd` names them: this
//! probe owns those events, event-audit skips them), and from the nodes'
//! kernel logs as Sonde's agents read them (the `kernel-log` collector,
//! matched against the same kernel monitor rules), so a cluster without
//! node-problem-detector is covered too. One finding per node and rule, with
//! the count, the last time and the last message; where both sources saw a
//! node's problem, the larger count (they read the same kernel lines).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Event, Node};
use sonde_sdk::{
    Finding, KubeVerb, Probe, ProbeError, ProbeInfo, ResourceRef, Rule, Severity, collectors, kube,
    log, npd,
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
    /// node-problem-detector's events' count, and the kernel-log lines'.
    events: i64,
    lines: i64,
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
            events: 0,
            lines: 0,
            count: 0,
            last: String::new(),
            reason: String::new(),
            message: String::new(),
        }
    }

    /// One more sighting at `last` (RFC 3339), of `reason`, saying `message`.
    fn saw(&mut self, last: String, reason: &str, message: String) {
        self.count = self.events.max(self.lines);
        if last >= self.last {
            self.last = last;
            self.reason = reason.to_string();
            self.message = message;
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

/// A kernel problem an agent found in a node's kernel log (a `kernel-log` row).
#[derive(Debug, Clone)]
pub struct KernelLine {
    pub node: String,
    /// node-problem-detector's reason (the row's kind).
    pub reason: String,
    pub ts_ms: i64,
    pub message: String,
}

/// One finding per (node, rule): node-problem-detector's conditions that are
/// True on `nodes`, its Warning Events on Nodes among `events`, and the
/// problems agents found in the nodes' kernel logs.
pub fn audit(nodes: &[Node], events: &[Event], kernel_log: &[KernelLine]) -> Vec<Finding> {
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
        group.events += i64::from(e.count.unwrap_or(1).max(1));
        group.saw(last, problem.reason, message);
    }
    for line in kernel_log {
        let Some(problem) = npd::problem(&line.reason) else {
            continue;
        };
        let Some(rule) = rule_for_event(problem, &line.message) else {
            continue;
        };
        let group =
            groups
                .entry((line.node.clone(), rule.id))
                .or_insert_with(|| {
                    Group::new(refs.get(line.node.as_str()).cloned().unwrap_or_else(|| {
                        ResourceRef {
                            api_version: "v1".into(),
                            kind: "Node".into(),
                            namespace: None,
                            name: line.node.clone(),
                            uid: None,
                        }
                    }))
                });
        group.lines += 1;
        group.saw(
            sonde_sdk::time::utc(line.ts_ms),
            problem.reason,
            line.message.clone(),
        );
    }
    groups
        .into_iter()
        .filter_map(|((_, id), g)| RULES.iter().find(|r| r.id == id).map(|r| g.finding(r)))
        .collect()
}

/// Rows the kernel-log query reads at most.
const KERNEL_LOG_ROWS: u32 = 10_000;

/// The kernel problems agents found in the last `lookback_minutes`; none,
/// said in the run log, when the host has no such data.
fn kernel_log(lookback_minutes: u32) -> Vec<KernelLine> {
    if let Err(why) = collectors::available(KERNEL_LOG_COLLECTOR) {
        log::info(&format!(
            "kernel logs not read: the {KERNEL_LOG_COLLECTOR:?} collector is unavailable ({why}); \
             only node-problem-detector's Node conditions and Events were read"
        ));
        return Vec::new();
    }
    let table = match collectors::query(KERNEL_LOG_COLLECTOR, lookback_minutes)
        .limit(KERNEL_LOG_ROWS)
        .run()
    {
        Ok(t) => t,
        Err(e) => {
            log::warn(&format!(
                "kernel logs not read: the {KERNEL_LOG_COLLECTOR:?} query failed ({e:?})"
            ));
            return Vec::new();
        }
    };
    if table.truncated() {
        log::warn(&format!(
            "kernel logs: more than {KERNEL_LOG_ROWS} problems in {lookback_minutes} minutes; the oldest were read"
        ));
    }
    let lines: Vec<KernelLine> = table
        .rows()
        .filter_map(|r| {
            Some(KernelLine {
                node: r.text("node")?.to_string(),
                reason: r.text("kind")?.to_string(),
                ts_ms: r.integer("ts")?,
                message: r.text("message").unwrap_or_default().to_string(),
            })
        })
        .collect();
    log::info(&format!(
        "kernel logs: {} problem lines in the last {lookback_minutes} minutes",
        lines.len()
    ));
    lines
}

/// Probe config.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// How far back the nodes' kernel logs are read (default 60: as long
    /// as the API server keeps node-problem-detector's events).
    pub kernel_log_lookback_minutes: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            kernel_log_lookback_minutes: 60,
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
            "node kernel and container-runtime problems: node-problem-detector's reports and the nodes' kernel logs",
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
        let lines = kernel_log(config.kernel_log_lookback_minutes);
        Ok(audit(&nodes, &events, &lines))
    }
}

sonde_sdk::export_probe!(KernelAudit);

#[cfg(test)]
mod tests;
