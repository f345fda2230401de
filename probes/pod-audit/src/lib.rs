//! Sonde's built-in pod audit: pods in trouble (CrashLoopBackOff, image pulls,
//! OOM kills, unschedulable, running but not ready, many restarts) and
//! KubeEye's error patterns (no space left, I/O errors, too many open files,
//! ...) in containers' termination messages and, where the cluster serves
//! them, their last log lines.

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use serde::Deserialize;
use sonde_sdk::{Finding, KubeVerb, Probe, ProbeError, ProbeInfo, Rule, Severity, kube, log};

macro_rules! rules {
    ($($name:ident = ($id:literal, $title:literal, $sev:ident, $desc:literal, $remedy:literal);)*) => {
        $(pub const $name: Rule = Rule::new($id, $title, "pods", Severity::$sev, $desc, $remedy);)*
        /// Every rule.
        pub const RULES: &[Rule] = &[$($name),*];
    };
}

rules! {
    CRASH_LOOP = ("PodCrashLoopBackOff", "Container crash-looping", High, "A container keeps exiting and the kubelet backs off restarting it.", "Read its previous logs (kubectl logs --previous) and last termination state; fix the cause of the exit.");
    IMAGE_PULL = ("PodImagePullBackOff", "Image cannot be pulled", Medium, "A container waits for an image the kubelet cannot pull.", "Check the image reference, the registry and the pull secret.");
    OOM_KILLED = ("PodOOMKilled", "Container OOM-killed", High, "A container was killed for exceeding its memory limit (or the node running out).", "Raise the memory limit to the container's real peak, or fix the leak.");
    UNSCHEDULABLE = ("PodUnschedulable", "Pod cannot be scheduled", Medium, "The scheduler found no node for the pod.", "Read the PodScheduled condition's message; lower requests, add tolerations or capacity.");
    NOT_READY = ("PodNotReady", "Pod running but not ready", Low, "Every container runs but the pod is not Ready (a readiness probe fails, or its node is unreachable).", "Check the readiness probe and the node.");
    HIGH_RESTARTS = ("PodHighRestartCount", "Container restarts often", Medium, "A container restarted more times than the threshold.", "Look at why it exits (last termination state, previous logs).");
    NO_SUCH_FILE = ("PodNoSuchFileOrDirectory", "No such file or directory", Medium, "A container reported `no such file or directory`.", "Check the paths, volumes and config maps the container expects exist.");
    IO_ERROR = ("PodIOError", "I/O error", High, "A container reported an input/output error, usually a failing disk or volume.", "Check the node's disks and the volume's storage backend.");
    NO_SUCH_DEVICE = ("PodNoSuchDeviceOrAddress", "No such device or address", Medium, "A container reported `no such device or address`.", "Check the devices and network addresses the container uses.");
    INVALID_ARGUMENT = ("PodInvalidArgument", "Invalid argument", Medium, "A container reported `invalid argument`.", "Check the container's arguments and mount options.");
    DEVICE_BUSY = ("PodDeviceOrResourceBusy", "Device or resource busy", Medium, "A container reported `device or resource busy`.", "Check which process holds the device or mount.");
    FILE_EXISTS = ("PodFileExists", "File exists", Low, "A container reported `file exists`.", "Check the container does not recreate files it expects to be absent.");
    TOO_MANY_OPEN_FILES = ("PodTooManyOpenFiles", "Too many open files", High, "A container ran out of file descriptors.", "Raise the file descriptor limit or fix the descriptor leak.");
    NO_SPACE = ("PodNoSpaceLeftOnDevice", "No space left on device", High, "A container ran out of disk space or inodes.", "Free or grow the volume or the node's disk; check inode use.");
}

/// KubeEye's patterns (case-insensitive) and their rules.
const PATTERNS: &[(&str, &Rule)] = &[
    ("no such file or directory", &NO_SUCH_FILE),
    ("input/output error", &IO_ERROR),
    ("no such device or address", &NO_SUCH_DEVICE),
    ("invalid argument", &INVALID_ARGUMENT),
    ("device or resource busy", &DEVICE_BUSY),
    ("file exists", &FILE_EXISTS),
    ("too many open files", &TOO_MANY_OPEN_FILES),
    ("no space left on device", &NO_SPACE),
];

/// Probe config.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Restarts from which PodHighRestartCount fires.
    pub restart_threshold: i32,
    /// Read the last lines of each waiting or restarted container's log (needs `logs` on pods).
    pub read_logs: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            restart_threshold: 5,
            read_logs: true,
        }
    }
}

fn patterns(pod: &Pod, container: &str, text: &str, source: &str, out: &mut Vec<Finding>) {
    let lower = text.to_lowercase();
    for (pattern, rule) in PATTERNS {
        if let Some(at) = lower.find(pattern) {
            let line = text[..]
                .lines()
                .find(|l| l.to_lowercase().contains(pattern))
                .unwrap_or(&text[at..]);
            let msg = format!("container {container:?} {source}: {}", line.trim());
            out.push(rule.finding(pod, msg).label("container", container).into());
        }
    }
}

fn audit_container(
    pod: &Pod,
    cs: &ContainerStatus,
    config: &Config,
    out: &mut Vec<Finding>,
) -> bool {
    let name = cs.name.as_str();
    let waiting = cs.state.as_ref().and_then(|s| s.waiting.as_ref());
    let waiting_reason = waiting.and_then(|w| w.reason.as_deref()).unwrap_or("");
    let last = cs.last_state.as_ref().and_then(|s| s.terminated.as_ref());
    let now = cs.state.as_ref().and_then(|s| s.terminated.as_ref());
    let mut crash_looping = false;
    if waiting_reason == "CrashLoopBackOff" {
        crash_looping = true;
        let exit = last
            .map(|t| {
                format!(
                    ", last exit code {} ({})",
                    t.exit_code,
                    t.reason.as_deref().unwrap_or("Error")
                )
            })
            .unwrap_or_default();
        let msg = format!(
            "container {name:?} is in CrashLoopBackOff after {} restarts{exit}",
            cs.restart_count
        );
        out.push(CRASH_LOOP.finding(pod, msg).label("container", name).into());
    } else if matches!(
        waiting_reason,
        "ImagePullBackOff" | "ErrImagePull" | "InvalidImageName"
    ) {
        let msg = format!(
            "container {name:?}: {waiting_reason}: {}",
            waiting.and_then(|w| w.message.as_deref()).unwrap_or("")
        );
        out.push(IMAGE_PULL.finding(pod, msg).label("container", name).into());
    } else if cs.restart_count >= config.restart_threshold {
        let msg = format!("container {name:?} restarted {} times", cs.restart_count);
        out.push(
            HIGH_RESTARTS
                .finding(pod, msg)
                .label("container", name)
                .into(),
        );
    }
    for t in [last, now].into_iter().flatten() {
        if t.reason.as_deref() == Some("OOMKilled") {
            let at = t
                .finished_at
                .as_ref()
                .map(|f| f.0.to_string())
                .unwrap_or_default();
            let msg = format!(
                "container {name:?} was OOM-killed (exit code {}) at {at}",
                t.exit_code
            );
            out.push(OOM_KILLED.finding(pod, msg).label("container", name).into());
        }
        if let Some(m) = &t.message {
            patterns(pod, name, m, "termination message", out);
        }
    }
    crash_looping
}

/// Findings for the given pods (logs are read by the caller).
pub fn audit(pods: &[Pod], config: &Config) -> Vec<Finding> {
    let mut out = Vec::new();
    for pod in pods {
        let Some(status) = &pod.status else { continue };
        let conditions = status.conditions.as_deref().unwrap_or_default();
        if let Some(c) = conditions.iter().find(|c| {
            c.type_ == "PodScheduled"
                && c.status == "False"
                && c.reason.as_deref() == Some("Unschedulable")
        }) {
            out.push(
                UNSCHEDULABLE
                    .finding(pod, c.message.clone().unwrap_or_default())
                    .into(),
            );
        }
        let statuses: Vec<&ContainerStatus> = status
            .init_container_statuses
            .iter()
            .flatten()
            .chain(status.container_statuses.iter().flatten())
            .collect();
        for cs in &statuses {
            audit_container(pod, cs, config, &mut out);
        }
        let all_running = !statuses.is_empty()
            && status
                .container_statuses
                .iter()
                .flatten()
                .all(|cs| cs.state.as_ref().is_some_and(|s| s.running.is_some()));
        let not_ready = conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "False");
        if status.phase.as_deref() == Some("Running") && all_running && not_ready {
            out.push(
                NOT_READY
                    .finding(pod, "every container runs, but the pod is not Ready")
                    .into(),
            );
        }
    }
    out
}

/// The probe.
pub struct PodAudit;

impl Probe for PodAudit {
    type Config = Option<Config>;

    fn describe() -> ProbeInfo {
        sonde_sdk::describe(
            "pod-audit",
            env!("CARGO_PKG_VERSION"),
            "Pods in trouble, and error patterns in their termination messages and logs",
        )
        .rules(RULES)
        .kube("", "Pod", &[KubeVerb::List, KubeVerb::Logs])
        .schedule("0 */2 * * * *")
        .build()
    }

    fn run(config: Option<Config>) -> Result<Vec<Finding>, ProbeError> {
        let config = config.unwrap_or_default();
        let pods = kube::list::<Pod>(&Default::default())?;
        let mut out = audit(&pods, &config);
        if config.read_logs {
            read_logs(&pods, &mut out);
        }
        Ok(out)
    }
}

/// Error patterns in the last log lines of containers that restarted or wait, where logs can be read.
fn read_logs(pods: &[Pod], out: &mut Vec<Finding>) {
    for pod in pods {
        let (Some(ns), Some(name)) = (
            pod.metadata.namespace.as_deref(),
            pod.metadata.name.as_deref(),
        ) else {
            continue;
        };
        for cs in pod
            .status
            .iter()
            .flat_map(|s| s.container_statuses.iter().flatten())
        {
            if cs.restart_count == 0 && cs.state.as_ref().is_some_and(|s| s.waiting.is_none()) {
                continue;
            }
            let options = kube::LogOptions {
                container: Some(cs.name.clone()),
                tail_lines: Some(200),
                since_seconds: None,
                previous: cs.restart_count > 0,
            };
            match kube::pod_logs(ns, name, &options) {
                Ok(text) => patterns(pod, &cs.name, &text, "log", out),
                Err(e) => {
                    log::info(&format!(
                        "log patterns skipped for {ns}/{name} container {}: {e:?}",
                        cs.name
                    ));
                }
            }
        }
    }
}

sonde_sdk::export_probe!(PodAudit);
