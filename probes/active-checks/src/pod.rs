//! KubeProber's pod check: a pod is created (the whole chain from the API
//! server through the scheduler and the kubelet to the container runtime),
//! must be running and ready within the time given, and is deleted. The pod
//! meets the `restricted` Pod Security Standard, so an enforcing namespace
//! admits it; the host deletes it after the run should this probe not.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use serde::Deserialize;
use sonde_sdk::bindings::sonde::probe::kube as host;
use sonde_sdk::{Finding, ProbeError, kube, log};

use crate::{POD_LIFECYCLE, cluster_fault, error_text};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the pod is created (it must exist).
    pub namespace: String,
    pub image: String,
    /// How long the pod has to be running and ready.
    pub timeout_seconds: u64,
    /// How often its state is read meanwhile.
    pub poll_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            namespace: "default".into(),
            image: "registry.k8s.io/pause:3.10".into(),
            timeout_seconds: 60,
            poll_ms: 1000,
        }
    }
}

/// The pod, as small and locked down as a pod can be.
pub fn manifest(name: &str, config: &Config) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": config.namespace,
            "labels": {"app.kubernetes.io/name": "sonde-check", "app.kubernetes.io/managed-by": "sonde"},
        },
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": false,
            "terminationGracePeriodSeconds": 0,
            "securityContext": {
                "runAsNonRoot": true,
                "runAsUser": 65534,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [{
                "name": "check",
                "image": config.image,
                "resources": {
                    "requests": {"cpu": "10m", "memory": "16Mi"},
                    "limits": {"cpu": "10m", "memory": "16Mi"},
                },
                "securityContext": {
                    "allowPrivilegeEscalation": false,
                    "readOnlyRootFilesystem": true,
                    "capabilities": {"drop": ["ALL"]},
                },
            }],
        },
    })
}

/// Where a pod stands.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    Ready,
    /// Not yet; what it waits for.
    Waiting(String),
    /// It will not get there (it ended, or its image cannot be pulled).
    Failed(String),
}

/// Reasons a container waits that no amount of waiting mends.
const STUCK: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "CrashLoopBackOff",
    "RunContainerError",
];

pub fn progress(pod: &Pod) -> Progress {
    let Some(status) = &pod.status else {
        return Progress::Waiting("no status yet".into());
    };
    let phase = status.phase.as_deref().unwrap_or("no phase yet");
    if matches!(phase, "Failed" | "Succeeded") {
        let why = status.reason.as_deref().or(status.message.as_deref());
        return Progress::Failed(match why {
            Some(w) => format!("{phase}: {w}"),
            None => phase.to_string(),
        });
    }
    let conditions = status.conditions.as_deref().unwrap_or_default();
    let ready = conditions
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    if phase == "Running" && ready {
        return Progress::Ready;
    }
    let mut detail = vec![phase.to_string()];
    if let Some(c) = conditions
        .iter()
        .find(|c| c.type_ == "PodScheduled" && c.status == "False")
    {
        detail.push(format!(
            "not scheduled ({}): {}",
            c.reason.as_deref().unwrap_or("no reason"),
            c.message.as_deref().unwrap_or("")
        ));
    }
    for cs in status.container_statuses.iter().flatten() {
        if let Some(w) = cs.state.as_ref().and_then(|s| s.waiting.as_ref()) {
            let reason = w.reason.as_deref().unwrap_or("waiting");
            let line = format!(
                "container {} {reason}{}",
                cs.name,
                w.message
                    .as_deref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            );
            if STUCK.contains(&reason) {
                return Progress::Failed(format!("{phase}: {line}"));
            }
            detail.push(line);
        }
    }
    Progress::Waiting(detail.join("; "))
}

fn finding(config: &Config, message: String, step: &str) -> Finding {
    POD_LIFECYCLE
        .cluster_finding(message)
        .label("namespace", config.namespace.clone())
        .label("step", step)
        .into()
}

/// A failed call: the cluster's fault is a finding, the operator's a log line.
fn failed(config: &Config, what: &str, step: &str, e: &ProbeError, out: &mut Vec<Finding>) {
    if cluster_fault(e) {
        out.push(finding(
            config,
            format!("{what} failed: {}", error_text(e)),
            step,
        ));
    } else {
        log::error(&format!("pod check skipped at {what}: {}", error_text(e)));
    }
}

/// Create, wait until running and ready, delete.
pub fn run(config: &Config, out: &mut Vec<Finding>) {
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let name = format!("sonde-check-{nonce:x}");
    let shown = format!("pod {}/{name}", config.namespace);
    let started = Instant::now();
    if let Err(e) = host::create(&manifest(&name, config).to_string()) {
        return failed(config, &format!("creating {shown}"), "create", &e, out);
    }
    let deadline = Duration::from_secs(config.timeout_seconds);
    loop {
        let now = match kube::get::<Pod>(Some(&config.namespace), &name) {
            Ok(pod) => progress(&pod),
            Err(e) => {
                failed(config, &format!("reading {shown}"), "get", &e, out);
                break;
            }
        };
        match &now {
            Progress::Ready => {
                log::info(&format!(
                    "{shown} running and ready after {} ms",
                    started.elapsed().as_millis()
                ));
                break;
            }
            Progress::Failed(why) => {
                out.push(finding(
                    config,
                    format!("{shown} will not run: {why}"),
                    "start",
                ));
                break;
            }
            Progress::Waiting(why) if started.elapsed() >= deadline => {
                out.push(finding(
                    config,
                    format!(
                        "{shown} was not running and ready after {} s: {why}",
                        config.timeout_seconds
                    ),
                    "start",
                ));
                break;
            }
            Progress::Waiting(_) => std::thread::sleep(Duration::from_millis(config.poll_ms)),
        }
    }
    if let Err(e) = host::delete("v1", "Pod", Some(&config.namespace), &name) {
        failed(config, &format!("deleting {shown}"), "delete", &e, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({"metadata": {"name": "p"}, "status": status}))
            .unwrap()
    }

    #[test]
    fn where_a_pod_stands() {
        assert_eq!(
            progress(&pod(
                serde_json::json!({"phase": "Pending", "qosClass": "Guaranteed"})
            )),
            Progress::Waiting("Pending".into())
        );
        let unschedulable = pod(serde_json::json!({"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
             "message": "0/3 nodes are available: 3 Insufficient cpu."}]}));
        assert_eq!(
            progress(&unschedulable),
            Progress::Waiting(
                "Pending; not scheduled (Unschedulable): 0/3 nodes are available: 3 Insufficient cpu."
                    .into()
            )
        );
        let pulling = pod(
            serde_json::json!({"phase": "Pending", "containerStatuses": [
            {"name": "check", "ready": false, "restartCount": 0, "image": "x", "imageID": "",
             "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image \"x\""}}}]}),
        );
        assert_eq!(
            progress(&pulling),
            Progress::Failed(
                "Pending: container check ImagePullBackOff: Back-off pulling image \"x\"".into()
            )
        );
        let running = pod(serde_json::json!({"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True"}]}));
        assert_eq!(progress(&running), Progress::Ready);
        let not_ready = pod(serde_json::json!({"phase": "Running", "conditions": [
            {"type": "Ready", "status": "False"}]}));
        assert_eq!(progress(&not_ready), Progress::Waiting("Running".into()));
        let evicted = pod(serde_json::json!({"phase": "Failed", "reason": "Evicted"}));
        assert_eq!(
            progress(&evicted),
            Progress::Failed("Failed: Evicted".into())
        );
    }

    #[test]
    fn the_pod_is_locked_down() {
        let m = manifest("sonde-check-1", &Config::default());
        let c = &m["spec"]["containers"][0];
        assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
        assert_eq!(c["securityContext"]["capabilities"]["drop"][0], "ALL");
        assert_eq!(m["spec"]["securityContext"]["runAsNonRoot"], true);
        assert_eq!(
            c["resources"]["requests"], c["resources"]["limits"],
            "Guaranteed QoS"
        );
    }
}
