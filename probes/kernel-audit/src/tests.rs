//! Unit tests of the kernel audit: every rule from a condition or an event
//! that triggers it, and the look-alikes that do not.

use super::*;
use serde_json::json;

fn node(name: &str, conditions: serde_json::Value) -> Node {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "uid": format!("uid-{name}")},
        "status": {"conditions": conditions},
    }))
    .unwrap()
}

fn condition(type_: &str, status: &str, reason: &str) -> serde_json::Value {
    json!({"type": type_, "status": status, "reason": reason, "message": format!("{reason} seen"),
           "lastHeartbeatTime": "2026-11-22T18:10:00Z", "lastTransitionTime": "2026-11-22T17:00:00Z"})
}

fn event(type_: &str, kind: &str, reason: &str, message: &str, count: i32, last: &str) -> Event {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": "node-2.1", "namespace": "default"},
        "involvedObject": {"apiVersion": "v1", "kind": kind, "name": "node-2", "uid": "node-2"},
        "type": type_, "reason": reason, "message": message, "count": count,
        "lastTimestamp": last,
        "source": {"component": "kernel-monitor", "host": "node-2"},
    }))
    .unwrap()
}

fn rules(findings: &[Finding]) -> Vec<(String, String)> {
    findings
        .iter()
        .map(|f| (f.resource.as_ref().unwrap().name.clone(), f.rule.clone()))
        .collect()
}

fn label<'a>(f: &'a Finding, key: &str) -> Option<&'a str> {
    f.labels
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

const T: &str = "2026-11-22T18:11:43Z";

#[test]
fn every_event_reason_has_a_rule() {
    for p in npd::PROBLEMS {
        assert!(rule_for_event(p, "").is_some(), "{}", p.reason);
    }
    for c in npd::CONDITION_TYPES {
        assert!(rule_for_condition(c, "").is_some(), "{c}");
    }
}

#[test]
fn each_event_reason_yields_its_rule() {
    let cases = [
        (
            "OOMKilling",
            "Out of memory: Killed process 41785 (redis-server)",
            "NodeOOM",
        ),
        (
            "TaskHung",
            "task jbd2/sda1-8:312 blocked for more than 120 seconds.",
            "NodeTaskHung",
        ),
        (
            "UnregisterNetDevice",
            "unregister_netdevice: waiting for eth0 to become free. Usage count = 1",
            "NodeUnregisterNetDevice",
        ),
        (
            "KernelOops",
            "BUG: unable to handle kernel NULL pointer dereference at 0000000000000008",
            "NodeKernelNULLPointer",
        ),
        (
            "KernelOops",
            "divide error: 0000 [#1] SMP",
            "NodeKernelOops",
        ),
        ("Ext4Error", "EXT4-fs error (device sda1)", "NodeExt4Error"),
        (
            "Ext4Warning",
            "EXT4-fs warning (device sda1)",
            "NodeExt4Warning",
        ),
        ("IOError", "Buffer I/O error on dev sdb", "NodeIOError"),
        (
            "MemoryReadError",
            "CE memory read error on CPU_SrcID#0",
            "NodeMemoryReadError",
        ),
        (
            "XfsHasShutdown",
            "XFS (sdb): Shutting down filesystem",
            "NodeXfsShutdown",
        ),
        (
            "DockerHung",
            "task docker:7 blocked for more than 120 seconds.",
            "NodeDockerHung",
        ),
        (
            "AUFSUmountHung",
            "task umount.aufs:9 blocked for more than 120 seconds.",
            "NodeAUFSUmountHung",
        ),
        (
            "FilesystemIsReadOnly",
            "Remounting filesystem read-only",
            "NodeReadonlyFilesystem",
        ),
        (
            "CorruptDockerImage",
            "Error trying v2 registry: failed to register layer",
            "NodeCorruptDockerImage",
        ),
        (
            "CorruptDockerOverlay2",
            "returned error: readlink /var/lib/docker/overlay2/x: invalid argument",
            "NodeCorruptOverlay2",
        ),
        (
            "FrequentDockerRestart",
            "Found 5 matching logs",
            "NodeFrequentRestart",
        ),
    ];
    for (reason, message, want) in cases {
        let found = audit(&[], &[event("Warning", "Node", reason, message, 2, T)], &[]);
        assert_eq!(
            rules(&found),
            [("node-2".to_string(), want.to_string())],
            "{reason}"
        );
        let f = &found[0];
        assert_eq!(f.message, format!("{reason} x2 (last {T}): {message}"));
        assert_eq!(label(f, "time"), Some(T));
        assert_eq!(label(f, "count"), Some("2"));
        assert_eq!(
            f.resource.as_ref().unwrap().uid,
            None,
            "the uid is the node name"
        );
    }
}

#[test]
fn normal_events_other_kinds_and_other_reasons_are_not_kernel_problems() {
    let found = audit(
        &[],
        &[
            // node-problem-detector's event when a condition turns back to False.
            event(
                "Normal",
                "Node",
                "DockerHung",
                "Node condition KernelDeadlock is now: False",
                1,
                T,
            ),
            event("Normal", "Node", "OOMKilling", "Killed process 1", 1, T),
            event("Warning", "Pod", "OOMKilling", "Killed process 1", 1, T),
            event(
                "Warning",
                "Node",
                "NodeNotReady",
                "Node node-2 status is now: NodeNotReady",
                1,
                T,
            ),
        ],
        &[],
    );
    assert!(found.is_empty(), "{found:?}");
}

#[test]
fn events_are_grouped_per_node_and_rule_with_the_last_message() {
    let found = audit(
        &[node("node-2", json!([]))],
        &[
            event(
                "Warning",
                "Node",
                "OOMKilling",
                "Killed process 2 (late)",
                1,
                "2026-11-22T18:20:00Z",
            ),
            event(
                "Warning",
                "Node",
                "OOMKilling",
                "Killed process 1 (early)",
                3,
                T,
            ),
            event(
                "Warning",
                "Node",
                "TaskHung",
                "task x:1 blocked for more than 120 seconds.",
                1,
                T,
            ),
        ],
        &[],
    );
    assert_eq!(
        rules(&found),
        [
            ("node-2".to_string(), "NodeOOM".to_string()),
            ("node-2".to_string(), "NodeTaskHung".to_string())
        ]
    );
    let oom = &found[0];
    assert_eq!(
        oom.message,
        "OOMKilling x4 (last 2026-11-22T18:20:00Z): Killed process 2 (late)"
    );
    assert_eq!(label(oom, "time"), Some("2026-11-22T18:20:00Z"));
    // The Node is listed: its real uid is used.
    assert_eq!(
        oom.resource.as_ref().unwrap().uid.as_deref(),
        Some("uid-node-2")
    );
}

#[test]
fn true_conditions_yield_their_rule() {
    let cases = [
        ("KernelDeadlock", "DockerHung", "NodeDockerHung"),
        ("KernelDeadlock", "AUFSUmountHung", "NodeAUFSUmountHung"),
        ("KernelDeadlock", "TaskDeadlock", "NodeDeadlock"),
        (
            "ReadonlyFilesystem",
            "FilesystemIsReadOnly",
            "NodeReadonlyFilesystem",
        ),
        ("XfsShutdown", "XfsHasShutdown", "NodeXfsShutdown"),
        (
            "CorruptDockerOverlay2",
            "CorruptDockerOverlay2",
            "NodeCorruptOverlay2",
        ),
        (
            "FrequentUnregisterNetDevice",
            "UnregisterNetDevice",
            "NodeUnregisterNetDevice",
        ),
        (
            "FrequentKubeletRestart",
            "FrequentKubeletRestart",
            "NodeFrequentRestart",
        ),
        (
            "FrequentContainerdRestart",
            "FrequentContainerdRestart",
            "NodeFrequentRestart",
        ),
    ];
    for (type_, reason, want) in cases {
        let found = audit(
            &[node("node-1", json!([condition(type_, "True", reason)]))],
            &[],
            &[],
        );
        assert_eq!(
            rules(&found),
            [("node-1".to_string(), want.to_string())],
            "{type_}/{reason}"
        );
        let f = &found[0];
        assert_eq!(
            f.message,
            format!("{type_} is True since 2026-11-22T17:00:00Z ({reason}): {reason} seen")
        );
        assert_eq!(label(f, "time"), Some("2026-11-22T17:00:00Z"));
        assert_eq!(label(f, "condition"), Some(type_));
        assert_eq!(label(f, "count"), None);
    }
}

#[test]
fn false_conditions_and_kubelet_conditions_are_fine() {
    let found = audit(
        &[node(
            "node-1",
            json!([
                condition("KernelDeadlock", "False", "KernelHasNoDeadlock"),
                condition("ReadonlyFilesystem", "False", "FilesystemIsNotReadOnly"),
                condition("CorruptDockerOverlay2", "False", "NoCorruptDockerOverlay2"),
                condition("FrequentDockerRestart", "False", "NoFrequentDockerRestart"),
                condition("MemoryPressure", "True", "KubeletHasInsufficientMemory"),
                condition("Ready", "True", "KubeletReady"),
            ]),
        )],
        &[],
        &[],
    );
    assert!(found.is_empty(), "{found:?}");
}

#[test]
fn a_condition_and_its_events_are_one_finding() {
    let found = audit(
        &[node(
            "node-1",
            json!([condition("KernelDeadlock", "True", "DockerHung")]),
        )],
        &[serde_json::from_value(json!({
            "metadata": {"name": "node-1.2", "namespace": "default"},
            "involvedObject": {"kind": "Node", "name": "node-1", "uid": "node-1"},
            "type": "Warning", "reason": "DockerHung", "count": 1, "lastTimestamp": T,
            "message": "Node condition KernelDeadlock is now: True, reason: DockerHung",
        }))
        .unwrap()],
        &[],
    );
    assert_eq!(
        rules(&found),
        [("node-1".to_string(), "NodeDockerHung".to_string())]
    );
    let f = &found[0];
    assert!(
        f.message
            .starts_with("KernelDeadlock is True since 2026-11-22T17:00:00Z (DockerHung)")
    );
    assert!(f.message.ends_with(&format!(
        "; events: DockerHung x1 (last {T}): Node condition KernelDeadlock is now: True, reason: DockerHung"
    )));
    assert_eq!(label(f, "time"), Some(T));
    assert_eq!(label(f, "count"), Some("1"));
}

fn line(node: &str, reason: &str, ts_ms: i64, message: &str) -> KernelLine {
    KernelLine {
        node: node.into(),
        reason: reason.into(),
        ts_ms,
        message: message.into(),
    }
}

/// `T` and 18:20:00 the same day, in ms.
const T_MS: i64 = 1_795_371_103_000;
const LATER_MS: i64 = 1_795_371_600_000;

#[test]
fn kernel_log_lines_are_findings_on_their_node_without_node_problem_detector() {
    let hung = "INFO: task docker:2072 blocked for more than 120 seconds.";
    let found = audit(
        &[node("node-2", json!([]))],
        &[],
        &[
            line(
                "node-2",
                "TaskHung",
                T_MS,
                "INFO: task kworker/0:1:17 blocked for more than 120 seconds.",
            ),
            line("node-2", "TaskHung", LATER_MS, hung),
            // The same line is also DockerHung, a problem of its own.
            line("node-2", "DockerHung", LATER_MS, hung),
            // A node the cluster does not list (yet): named all the same.
            line(
                "node-9",
                "Ext4Error",
                T_MS,
                "EXT4-fs error (device sda1): ext4_lookup:1602: comm ls",
            ),
            line("node-2", "NotAProblem", T_MS, "eth0: link up"),
        ],
    );
    assert_eq!(
        rules(&found),
        [
            ("node-2".to_string(), "NodeDockerHung".to_string()),
            ("node-2".to_string(), "NodeTaskHung".to_string()),
            ("node-9".to_string(), "NodeExt4Error".to_string()),
        ]
    );
    let task = &found[1];
    assert_eq!(label(task, "count"), Some("2"));
    assert_eq!(label(task, "time"), Some("2026-11-22T18:20:00Z"));
    assert_eq!(
        task.message,
        format!("TaskHung x2 (last 2026-11-22T18:20:00Z): {hung}")
    );
    assert_eq!(
        found[0].resource.as_ref().unwrap().uid.as_deref(),
        Some("uid-node-2")
    );
    assert_eq!(found[2].resource.as_ref().unwrap().uid, None);
}

#[test]
fn a_problem_both_sources_saw_is_counted_once() {
    let oom = "Out of memory: Killed process 41785 (redis-server) total-vm:306204kB, anon-rss:130968kB, file-rss:4096kB, shmem-rss:0kB";
    let found = audit(
        &[node("node-2", json!([]))],
        &[event("Warning", "Node", "OOMKilling", oom, 1, T)],
        &[line("node-2", "OOMKilling", T_MS, oom)],
    );
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].rule, "NodeOOM");
    assert_eq!(label(&found[0], "count"), Some("1"));
    assert_eq!(label(&found[0], "time"), Some(T));
}
