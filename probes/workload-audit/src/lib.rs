//! Sonde's built-in workload audit: KubeEye's workload rules over
//! Deployments, StatefulSets, DaemonSets, ReplicaSets, Jobs, CronJobs and
//! bare Pods, init and sidecar containers included. An object controlled by
//! another audited object (a Deployment's ReplicaSets, their Pods, a
//! CronJob's Jobs) is reported once, at its controller.
//!
//! The rule logic (`audit`) is plain Rust over JSON text, so the benchmark
//! runs the very same code natively as its baseline.

pub mod checks;
pub mod image;
pub mod rules;

use std::collections::HashSet;

use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;
use sonde_sdk::{Finding, KubeVerb, Probe, ProbeError, ProbeInfo, ResourceRef, kube, log};

/// Where a kind keeps its pod spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodSpecAt {
    /// `spec`
    Spec,
    /// `spec.template.spec`
    Template,
    /// `spec.jobTemplate.spec.template.spec`
    JobTemplate,
}

/// A workload kind the audit reads.
#[derive(Debug, Clone, Copy)]
pub struct WorkloadKind {
    pub api_version: &'static str,
    pub group: &'static str,
    pub kind: &'static str,
    pub pod_spec: PodSpecAt,
}

/// Every kind audited, controllers first.
pub const KINDS: &[WorkloadKind] = &[
    WorkloadKind {
        api_version: "batch/v1",
        group: "batch",
        kind: "CronJob",
        pod_spec: PodSpecAt::JobTemplate,
    },
    WorkloadKind {
        api_version: "apps/v1",
        group: "apps",
        kind: "Deployment",
        pod_spec: PodSpecAt::Template,
    },
    WorkloadKind {
        api_version: "apps/v1",
        group: "apps",
        kind: "StatefulSet",
        pod_spec: PodSpecAt::Template,
    },
    WorkloadKind {
        api_version: "apps/v1",
        group: "apps",
        kind: "DaemonSet",
        pod_spec: PodSpecAt::Template,
    },
    WorkloadKind {
        api_version: "apps/v1",
        group: "apps",
        kind: "ReplicaSet",
        pod_spec: PodSpecAt::Template,
    },
    WorkloadKind {
        api_version: "batch/v1",
        group: "batch",
        kind: "Job",
        pod_spec: PodSpecAt::Template,
    },
    WorkloadKind {
        api_version: "v1",
        group: "",
        kind: "Pod",
        pod_spec: PodSpecAt::Spec,
    },
];

#[derive(Deserialize, Default)]
struct TemplateHolder {
    template: Option<PodTemplate>,
}

#[derive(Deserialize, Default)]
struct PodTemplate {
    spec: Option<PodSpec>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct CronJobSpec {
    job_template: Option<JobTemplate>,
}

#[derive(Deserialize, Default)]
struct JobTemplate {
    spec: Option<TemplateHolder>,
}

#[derive(Deserialize)]
struct Object<S> {
    metadata: ObjectMeta,
    spec: Option<S>,
}

/// One workload's identity and pod spec.
struct Workload {
    resource: ResourceRef,
    controller: Option<String>,
    spec: PodSpec,
}

fn parse(kind: &WorkloadKind, json: &str) -> Result<Option<Workload>, String> {
    let (meta, spec) = match kind.pod_spec {
        PodSpecAt::Spec => {
            let o: Object<PodSpec> = serde_json::from_str(json).map_err(|e| e.to_string())?;
            (o.metadata, o.spec)
        }
        PodSpecAt::Template => {
            let o: Object<TemplateHolder> =
                serde_json::from_str(json).map_err(|e| e.to_string())?;
            (
                o.metadata,
                o.spec.and_then(|s| s.template).and_then(|t| t.spec),
            )
        }
        PodSpecAt::JobTemplate => {
            let o: Object<CronJobSpec> = serde_json::from_str(json).map_err(|e| e.to_string())?;
            let spec = o.spec.and_then(|s| s.job_template).and_then(|j| j.spec);
            (
                o.metadata,
                spec.and_then(|s| s.template).and_then(|t| t.spec),
            )
        }
    };
    let Some(spec) = spec else { return Ok(None) };
    let controller = meta
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
        .map(|o| o.uid.clone());
    let resource = ResourceRef {
        api_version: kind.api_version.into(),
        kind: kind.kind.into(),
        namespace: meta.namespace,
        name: meta.name.unwrap_or_default(),
        uid: meta.uid,
    };
    Ok(Some(Workload {
        resource,
        controller,
        spec,
    }))
}

/// The result of an audit over listed objects.
#[derive(Debug, Default)]
pub struct Audit {
    pub findings: Vec<Finding>,
    /// Objects that could not be read, with the reason.
    pub skipped: Vec<String>,
}

/// Audits the listed objects of each kind (JSON text per object).
pub fn audit(lists: &[(&WorkloadKind, Vec<String>)]) -> Audit {
    let mut result = Audit::default();
    let mut workloads = Vec::new();
    for (kind, items) in lists {
        for json in items {
            match parse(kind, json) {
                Ok(Some(w)) => workloads.push(w),
                Ok(None) => {}
                Err(e) => result
                    .skipped
                    .push(format!("a {} could not be read: {e}", kind.kind)),
            }
        }
    }
    let uids: HashSet<&str> = workloads
        .iter()
        .filter_map(|w| w.resource.uid.as_deref())
        .collect();
    for w in &workloads {
        // Reported at its controller, when the controller is audited too.
        if w.controller.as_deref().is_some_and(|c| uids.contains(c)) {
            continue;
        }
        checks::audit_pod_spec(&w.resource, &w.spec, &mut result.findings);
    }
    result
}

/// Probe config.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Audit only this namespace.
    #[serde(default)]
    pub namespace: Option<String>,
}

/// The probe.
pub struct WorkloadAudit;

impl Probe for WorkloadAudit {
    type Config = Option<Config>;

    fn describe() -> ProbeInfo {
        let mut b = sonde_sdk::describe(
            "workload-audit",
            env!("CARGO_PKG_VERSION"),
            "KubeEye's workload rules: resources, probes, images, privileges and host namespaces of every workload",
        )
        .rules(rules::ALL)
        .schedule("0 */10 * * * *");
        for k in KINDS {
            b = b.kube(k.group, k.kind, &[KubeVerb::List]);
        }
        b.build()
    }

    fn run(config: Option<Config>) -> Result<Vec<Finding>, ProbeError> {
        let params = kube::ListParams {
            namespace: config.and_then(|c| c.namespace),
            ..Default::default()
        };
        let mut lists = Vec::new();
        let mut last_error = None;
        for kind in KINDS {
            match kube::list_raw(kind.api_version, kind.kind, &params) {
                Ok(items) => lists.push((kind, items)),
                Err(e @ (ProbeError::NotFound(_) | ProbeError::Denied(_))) => {
                    log::warn(&format!("{} skipped: {e:?}", kind.kind));
                    last_error = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        if lists.is_empty()
            && let Some(e) = last_error
        {
            return Err(e);
        }
        let result = audit(&lists);
        for s in &result.skipped {
            log::warn(s);
        }
        log::info(&format!(
            "audited {} objects, {} findings",
            lists.iter().map(|(_, i)| i.len()).sum::<usize>(),
            result.findings.len()
        ));
        Ok(result.findings)
    }
}

sonde_sdk::export_probe!(WorkloadAudit);
