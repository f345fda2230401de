//! node-problem-detector's vocabulary, in one place for every probe: the
//! problems its default kernel, docker and systemd monitors report (event
//! reasons and the Node condition each permanent one sets), and which Events
//! are its kernel-problem reports. `kernel-audit` reports exactly those
//! events; `event-audit` skips exactly those, so each is reported once.

use k8s_openapi::api::core::v1::Event;

/// Which of node-problem-detector's default monitors reports a problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Monitor {
    /// `config/kernel-monitor.json` (kmsg) and `kernel-monitor-counter.json`.
    Kernel,
    /// `config/docker-monitor.json` (journald) and `docker-monitor-counter.json`.
    Docker,
    /// `config/systemd-monitor-counter.json` (the log-counter plugin).
    Systemd,
}

/// One problem node-problem-detector reports under a reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Problem {
    /// The Event's reason (and, for a permanent problem, the condition's reason).
    pub reason: &'static str,
    /// The Node condition a permanent problem sets to True; `None` for a temporary one (Event only).
    pub condition: Option<&'static str>,
    pub monitor: Monitor,
}

const fn temporary(reason: &'static str, monitor: Monitor) -> Problem {
    Problem {
        reason,
        condition: None,
        monitor,
    }
}

const fn permanent(reason: &'static str, condition: &'static str, monitor: Monitor) -> Problem {
    Problem {
        reason,
        condition: Some(condition),
        monitor,
    }
}

/// Every problem of node-problem-detector's default kernel, docker and systemd monitors.
/// A permanent problem also emits a Warning Event with its reason when its condition turns True.
pub const PROBLEMS: &[Problem] = &[
    temporary("OOMKilling", Monitor::Kernel),
    temporary("TaskHung", Monitor::Kernel),
    temporary("UnregisterNetDevice", Monitor::Kernel),
    temporary("KernelOops", Monitor::Kernel),
    temporary("Ext4Error", Monitor::Kernel),
    temporary("Ext4Warning", Monitor::Kernel),
    temporary("IOError", Monitor::Kernel),
    temporary("MemoryReadError", Monitor::Kernel),
    permanent("XfsHasShutdown", "XfsShutdown", Monitor::Kernel),
    permanent("DockerHung", "KernelDeadlock", Monitor::Kernel),
    permanent("AUFSUmountHung", "KernelDeadlock", Monitor::Kernel),
    permanent(
        "FilesystemIsReadOnly",
        "ReadonlyFilesystem",
        Monitor::Kernel,
    ),
    temporary("CorruptDockerImage", Monitor::Docker),
    permanent(
        "CorruptDockerOverlay2",
        "CorruptDockerOverlay2",
        Monitor::Docker,
    ),
    permanent(
        "FrequentKubeletRestart",
        "FrequentKubeletRestart",
        Monitor::Systemd,
    ),
    permanent(
        "FrequentDockerRestart",
        "FrequentDockerRestart",
        Monitor::Systemd,
    ),
    permanent(
        "FrequentContainerdRestart",
        "FrequentContainerdRestart",
        Monitor::Systemd,
    ),
];

/// The Node condition types node-problem-detector's default monitors set
/// (`FrequentUnregisterNetDevice` comes from `kernel-monitor-counter.json`,
/// with reason `UnregisterNetDevice`). True means the problem is present.
pub const CONDITION_TYPES: &[&str] = &[
    "KernelDeadlock",
    "ReadonlyFilesystem",
    "XfsShutdown",
    "CorruptDockerOverlay2",
    "FrequentUnregisterNetDevice",
    "FrequentKubeletRestart",
    "FrequentDockerRestart",
    "FrequentContainerdRestart",
];

/// The problem reported under `reason`, if it is one of node-problem-detector's.
pub fn problem(reason: &str) -> Option<&'static Problem> {
    PROBLEMS.iter().find(|p| p.reason == reason)
}

/// The problem a Warning Event on a Node reports, if its reason is one of
/// node-problem-detector's: the events `kernel-audit` owns.
pub fn kernel_event(event: &Event) -> Option<&'static Problem> {
    if event.type_.as_deref() != Some("Warning")
        || event.involved_object.kind.as_deref() != Some("Node")
    {
        return None;
    }
    problem(event.reason.as_deref()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ObjectReference;

    fn event(kind: &str, type_: &str, reason: &str) -> Event {
        Event {
            type_: Some(type_.into()),
            reason: Some(reason.into()),
            involved_object: ObjectReference {
                kind: Some(kind.into()),
                name: Some("node-2".into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn kernel_events_are_warnings_on_nodes_with_an_npd_reason() {
        assert_eq!(
            kernel_event(&event("Node", "Warning", "OOMKilling")).map(|p| p.reason),
            Some("OOMKilling")
        );
        assert_eq!(
            kernel_event(&event("Node", "Warning", "DockerHung")).and_then(|p| p.condition),
            Some("KernelDeadlock")
        );
        assert_eq!(kernel_event(&event("Node", "Normal", "OOMKilling")), None);
        assert_eq!(kernel_event(&event("Pod", "Warning", "OOMKilling")), None);
        assert_eq!(
            kernel_event(&event("Node", "Warning", "NodeNotReady")),
            None
        );
    }

    #[test]
    fn reasons_are_unique_and_conditions_known() {
        for (i, p) in PROBLEMS.iter().enumerate() {
            assert!(
                PROBLEMS[..i].iter().all(|q| q.reason != p.reason),
                "{}",
                p.reason
            );
            if let Some(c) = p.condition {
                assert!(CONDITION_TYPES.contains(&c), "{c}");
            }
        }
    }
}
