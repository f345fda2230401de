//! Sonde's built-in event audit: Warning events, grouped per involved object
//! and kind of trouble as KubeEye's event table shows them, with their total
//! count, the last time seen and the last message. node-problem-detector's
//! kernel and runtime reports on Nodes (`sonde_sdk::npd::kernel_event`) are
//! `kernel-audit`'s and skipped here.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Event;
use sonde_sdk::{
    Finding, KubeVerb, Probe, ProbeError, ProbeInfo, ResourceRef, Rule, Severity, kube, npd,
};

pub const BACK_OFF: Rule = Rule::new(
    "EventBackOff",
    "Container restarting (BackOff)",
    "events",
    Severity::Medium,
    "The kubelet backs off restarting a container that keeps failing (CrashLoopBackOff).",
    "Read the container's previous logs (kubectl logs --previous) and its last termination state.",
);
pub const IMAGE_PULL_FAILED: Rule = Rule::new(
    "EventImagePullFailed",
    "Image pull failing",
    "events",
    Severity::Medium,
    "The kubelet cannot pull an image (ErrImagePull, ImagePullBackOff).",
    "Check the image name and tag, that it exists in the registry, and the pull secret; pull it by hand on the node to see the error.",
);
pub const FAILED_SCHEDULING: Rule = Rule::new(
    "EventFailedScheduling",
    "Pod cannot be scheduled",
    "events",
    Severity::Medium,
    "The scheduler finds no node for the pod (resources, taints, affinity, volumes).",
    "Read the scheduler's message: lower the requests, add tolerations or capacity, or fix the affinity.",
);
pub const UNHEALTHY: Rule = Rule::new(
    "EventUnhealthy",
    "Probe failing",
    "events",
    Severity::Low,
    "A liveness, readiness or startup probe fails.",
    "Check the probe's endpoint and timing against how the container starts and serves.",
);
pub const FAILED_MOUNT: Rule = Rule::new(
    "EventFailedMount",
    "Volume cannot be mounted",
    "events",
    Severity::Medium,
    "The kubelet cannot attach or mount a volume of the pod.",
    "Check the volume's claim, secret or config map exists, and the storage driver's logs.",
);
pub const WARNING: Rule = Rule::new(
    "EventWarning",
    "Warning event",
    "events",
    Severity::Low,
    "A Warning event without a more specific rule.",
    "Read the event's reason and message on the involved object.",
);

pub const RULES: &[Rule] = &[
    BACK_OFF,
    IMAGE_PULL_FAILED,
    FAILED_SCHEDULING,
    FAILED_MOUNT,
    UNHEALTHY,
    WARNING,
];

fn rule_for(event: &Event) -> &'static Rule {
    let message = event.message.as_deref().unwrap_or("");
    match event.reason.as_deref().unwrap_or("") {
        "BackOff" if message.contains("restarting failed container") => &BACK_OFF,
        "Failed" | "ErrImagePull" | "ImagePullBackOff" | "BackOff"
            if message.contains("ImagePull")
                || message.contains("ErrImagePull")
                || message.contains("pull image") =>
        {
            &IMAGE_PULL_FAILED
        }
        "FailedScheduling" => &FAILED_SCHEDULING,
        "Unhealthy" => &UNHEALTHY,
        "FailedMount" | "FailedAttachVolume" => &FAILED_MOUNT,
        _ => &WARNING,
    }
}

#[derive(Default)]
struct Group {
    resource: Option<ResourceRef>,
    count: i64,
    last: String,
    message: String,
    reason: String,
}

/// One finding per (involved object, rule, and reason for generic warnings),
/// leaving out node-problem-detector's kernel reports (kernel-audit's).
pub fn audit(events: &[Event]) -> Vec<Finding> {
    let mut groups: BTreeMap<(String, String, String, &'static str, String), Group> =
        BTreeMap::new();
    for e in events
        .iter()
        .filter(|e| e.type_.as_deref() == Some("Warning") && npd::kernel_event(e).is_none())
    {
        let o = &e.involved_object;
        let rule = rule_for(e);
        let reason = e.reason.clone().unwrap_or_default();
        let key_reason = if rule.id == WARNING.id {
            reason.clone()
        } else {
            String::new()
        };
        let key = (
            o.kind.clone().unwrap_or_default(),
            o.namespace.clone().unwrap_or_default(),
            o.name.clone().unwrap_or_default(),
            rule.id,
            key_reason,
        );
        let last = e
            .last_timestamp
            .as_ref()
            .map(|t| t.0.to_string())
            .or_else(|| e.event_time.as_ref().map(|t| t.0.to_string()))
            .unwrap_or_default();
        let group = groups.entry(key).or_default();
        if group.resource.is_none() {
            // node-problem-detector sets a Node's name as involvedObject.uid: not a uid.
            let uid = o.uid.clone().filter(|u| Some(u) != o.name.as_ref());
            group.resource = Some(ResourceRef {
                api_version: o.api_version.clone().unwrap_or_else(|| "v1".into()),
                kind: o.kind.clone().unwrap_or_default(),
                namespace: o.namespace.clone().filter(|n| !n.is_empty()),
                name: o.name.clone().unwrap_or_default(),
                uid,
            });
        }
        group.count += i64::from(e.count.unwrap_or(1).max(1));
        if last >= group.last {
            group.last = last;
            group.message = e.message.clone().unwrap_or_default();
            group.reason = reason;
        }
    }
    groups
        .into_iter()
        .map(|((_, _, _, rule_id, _), g)| {
            let rule = RULES.iter().find(|r| r.id == rule_id).unwrap_or(&WARNING);
            let message = format!("{} x{} (last {}): {}", g.reason, g.count, g.last, g.message);
            let resource = g.resource.unwrap_or_else(|| ResourceRef {
                api_version: String::new(),
                kind: String::new(),
                namespace: None,
                name: String::new(),
                uid: None,
            });
            rule.finding(resource, message)
                .label("reason", g.reason)
                .label("count", g.count.to_string())
                .label("time", g.last)
                .into()
        })
        .collect()
}

/// The probe.
pub struct EventAudit;

impl Probe for EventAudit {
    type Config = ();

    fn describe() -> ProbeInfo {
        sonde_sdk::describe(
            "event-audit",
            env!("CARGO_PKG_VERSION"),
            "Warning events grouped per involved object",
        )
        .rules(RULES)
        .kube("", "Event", &[KubeVerb::List])
        .schedule("0 * * * * *")
        .build()
    }

    fn run(_: ()) -> Result<Vec<Finding>, ProbeError> {
        let events = kube::list::<Event>(&kube::ListParams {
            field_selector: Some("type=Warning".into()),
            ..Default::default()
        })?;
        Ok(audit(&events))
    }
}

sonde_sdk::export_probe!(EventAudit);

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ObjectReference;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn event(
        kind: &str,
        name: &str,
        type_: &str,
        reason: &str,
        message: &str,
        count: i32,
    ) -> Event {
        Event {
            type_: Some(type_.into()),
            reason: Some(reason.into()),
            message: Some(message.into()),
            count: Some(count),
            last_timestamp: Some(Time("2026-11-22T18:11:43Z".parse().unwrap())),
            involved_object: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some(kind.into()),
                namespace: (kind == "Pod").then(|| "shop".into()),
                name: Some(name.into()),
                uid: Some(name.into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn rules(findings: &[Finding]) -> Vec<(String, String)> {
        findings
            .iter()
            .map(|f| (f.rule.clone(), f.resource.as_ref().unwrap().name.clone()))
            .collect()
    }

    #[test]
    fn node_problem_detector_kernel_reports_are_left_to_kernel_audit() {
        let oom = "Out of memory: Killed process 41785 (redis-server)";
        let found = audit(&[
            event("Node", "node-2", "Warning", "OOMKilling", oom, 1),
            event(
                "Node",
                "node-2",
                "Warning",
                "TaskHung",
                "task x:1 blocked",
                1,
            ),
        ]);
        assert!(found.is_empty(), "{found:?}");
        // The same reason about another kind is not node-problem-detector's: a generic warning.
        let found = audit(&[event("Pod", "web", "Warning", "OOMKilling", oom, 2)]);
        assert_eq!(rules(&found), [("EventWarning".into(), "web".into())]);
    }

    #[test]
    fn warnings_are_grouped_and_normal_events_ignored() {
        let backoff = "Back-off restarting failed container web";
        let found = audit(&[
            event("Pod", "web", "Warning", "BackOff", backoff, 60),
            event("Pod", "web", "Warning", "BackOff", backoff, 3),
            event("Pod", "web", "Normal", "Pulled", "pulled", 1),
            event("Node", "node-3", "Normal", "NodeNotReady", "not ready", 1),
        ]);
        assert_eq!(rules(&found), [("EventBackOff".into(), "web".into())]);
        assert!(found[0].labels.contains(&("count".into(), "63".into())));
    }
}
