//! What the API server itself says of the control plane: ComponentStatuses
//! (`v1`, deprecated but served: the API server probes the scheduler's,
//! controller-manager's and etcd's health endpoints) and the kubeadm static
//! pods in kube-system (`tier=control-plane`, `component=...`).

use k8s_openapi::api::core::v1::{ComponentStatus, ContainerStatus, Pod};
use k8s_openapi::jiff::Timestamp;
use sonde_sdk::{Finding, Rule};

use crate::{API_SERVER, CONTROLLER_MANAGER, ETCD, SCHEDULER};

/// The rule of a ComponentStatus by its name (`etcd-0`, `controller-manager`, `scheduler`).
pub fn rule_for_component_status(name: &str) -> Option<&'static Rule> {
    match name {
        "controller-manager" => Some(&CONTROLLER_MANAGER),
        "scheduler" => Some(&SCHEDULER),
        n if n.starts_with("etcd-") => Some(&ETCD),
        _ => None,
    }
}

/// The rule of a control-plane static pod by its kubeadm `component` label.
pub fn rule_for_component(component: &str) -> Option<&'static Rule> {
    match component {
        "etcd" => Some(&ETCD),
        "kube-controller-manager" => Some(&CONTROLLER_MANAGER),
        "kube-scheduler" => Some(&SCHEDULER),
        "kube-apiserver" => Some(&API_SERVER),
        _ => None,
    }
}

/// One finding per ComponentStatus whose `Healthy` condition is not `True`
/// (a component without that condition is not judged). The message is the
/// condition's message, or its error: the API server's probe result.
pub fn component_statuses(statuses: &[ComponentStatus]) -> Vec<Finding> {
    let mut out = Vec::new();
    for cs in statuses {
        let name = cs.metadata.name.as_deref().unwrap_or_default();
        let Some(rule) = rule_for_component_status(name) else {
            continue;
        };
        for c in cs.conditions.iter().flatten() {
            if c.type_ != "Healthy" || c.status == "True" {
                continue;
            }
            let detail = [c.message.as_deref(), c.error.as_deref()]
                .into_iter()
                .flatten()
                .find(|m| !m.is_empty())
                .unwrap_or("no message");
            let message = format!("{name} is not healthy (Healthy={}): {detail}", c.status);
            out.push(
                rule.finding(cs, message)
                    .label("component", name.to_string())
                    .into(),
            );
        }
    }
    out
}

/// Why a control-plane pod is not well, with the time it started being so.
fn pod_problems(pod: &Pod, now: i64, restart_window_seconds: i64) -> (Vec<String>, Option<String>) {
    let status = pod.status.as_ref();
    let mut problems = Vec::new();
    let mut time = None;
    let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("Unknown");
    if phase != "Running" {
        problems.push(format!("phase {phase}"));
    }
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .find(|c| c.type_ == "Ready");
    match ready {
        Some(c) if c.status == "True" => {}
        Some(c) => {
            let since = c.last_transition_time.as_ref().map(|t| t.0.to_string());
            let mut text = format!("not Ready (Ready={})", c.status);
            if let Some(reason) = c.reason.as_deref().filter(|r| !r.is_empty()) {
                text.push_str(&format!(": {reason}"));
            }
            if let Some(message) = c.message.as_deref().filter(|m| !m.is_empty()) {
                text.push_str(&format!(": {message}"));
            }
            if let Some(since) = &since {
                text.push_str(&format!(" since {since}"));
            }
            problems.push(text);
            time = since;
        }
        None => problems.push("no Ready condition".into()),
    }
    for cs in status
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
    {
        if let Some((text, finished)) = restart(cs, now, restart_window_seconds) {
            problems.push(text);
            time = time.or(finished);
        }
    }
    (problems, time)
}

/// A container that is waiting to restart, or that terminated within the window.
fn restart(cs: &ContainerStatus, now: i64, window: i64) -> Option<(String, Option<String>)> {
    if let Some(w) = cs.state.as_ref().and_then(|s| s.waiting.as_ref()) {
        let reason = w.reason.as_deref().unwrap_or("waiting");
        let message = w
            .message
            .as_deref()
            .map(|m| format!(": {m}"))
            .unwrap_or_default();
        return Some((
            format!(
                "container {} {reason}{message} ({} restarts)",
                cs.name, cs.restart_count
            ),
            None,
        ));
    }
    let last = cs.last_state.as_ref().and_then(|s| s.terminated.as_ref())?;
    let finished = last.finished_at.as_ref()?.0;
    if cs.restart_count == 0 || now - finished.as_second() > window {
        return None;
    }
    let reason = last.reason.as_deref().unwrap_or("terminated");
    Some((
        format!(
            "container {} restarted ({} restarts), last exit {} ({reason}) at {finished}",
            cs.name, cs.restart_count, last.exit_code
        ),
        Some(finished.to_string()),
    ))
}

/// One finding per control-plane static pod (by its `component` label) that is
/// not Running, not Ready, or restarting (a container waiting, or one that
/// terminated within `restart_window_seconds` of `now`, seconds since the epoch).
pub fn static_pods(pods: &[Pod], now: i64, restart_window_seconds: i64) -> Vec<Finding> {
    let mut out = Vec::new();
    for pod in pods {
        let labels = pod.metadata.labels.as_ref();
        let label = |k: &str| labels.and_then(|l| l.get(k)).map(String::as_str);
        if label("tier") != Some("control-plane") {
            continue;
        }
        let Some(component) = label("component") else {
            continue;
        };
        let Some(rule) = rule_for_component(component) else {
            continue;
        };
        let (problems, time) = pod_problems(pod, now, restart_window_seconds);
        if problems.is_empty() {
            continue;
        }
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let mut f = rule
            .finding(pod, format!("{name}: {}", problems.join("; ")))
            .label("component", component.to_string());
        if let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) {
            f = f.label("node", node);
        }
        if let Some(time) = time {
            f = f.label("time", time);
        }
        out.push(f.into());
    }
    out
}

/// Seconds since the epoch as RFC 3339 (`2026-11-22T18:11:43Z`).
pub fn rfc3339(seconds: i64) -> String {
    Timestamp::from_second(seconds)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| format!("@{seconds}"))
}
