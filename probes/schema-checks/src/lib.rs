//! Sonde's built-in probe `schema-checks`: JSON-schema checks in KubeEye's
//! `rule.yaml` format (Polaris's custom checks), from the operator's files
//! (`sonde audit --checks FILE`, as `ke diag -f rule.yaml`).
//!
//! Each workload is checked once, at its top-level listed controller (a
//! Deployment, not its ReplicaSets and Pods), bare Pods included. A check
//! fails, and yields a finding on the workload, when its target does not
//! validate against the schema: `Container` each container of the pod spec,
//! init containers included, as Polaris does; `Pod` the pod spec;
//! `Controller` the workload object. The rule id is the check id. Polaris's
//! quantity keywords `resourceMinimum`/`resourceMaximum` are understood
//! (`quantity`); `$ref`s to other documents are not fetched.
//!
//! Probes have no files: the host reads them and passes their text in the
//! config, `{"files": [{"path": "rule.yaml", "text": "..."}]}`.

pub mod quantity;
pub mod rules;

use serde::Deserialize;
use serde_json::Value;
use sonde_sdk::workloads::{self, Workload};
use sonde_sdk::{Finding, KubeVerb, Probe, ProbeError, ProbeInfo, Rule, Severity, kube, log};

use rules::{Check, RuleFile, Target};

/// The one rule this probe declares: its rule ids come from the operator's files.
pub const RULES: Rule = Rule::new(
    "*",
    "Checks from the operator's rule.yaml files",
    "custom",
    Severity::Medium,
    "A JSON-schema check of the operator's rule.yaml (KubeEye's and Polaris's custom checks) failed; the rule id is the check id.",
    "See the check in the rule file named in the finding's `file` label for what it expects, and change the workload (or the check).",
);

/// Probe config: the rule files, read by the host.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub files: Vec<RuleFile>,
}

fn finding(check: &Check, w: &Workload, container: Option<&str>) -> Finding {
    let message = match container {
        Some(name) => format!("container {name:?}: {}", check.message),
        None => check.message.clone(),
    };
    let mut b = RULES
        .finding(w.object.resource(), message)
        .severity(check.severity)
        .label("file", check.file.clone());
    if !check.category.is_empty() {
        b = b.label("category", check.category.clone());
    }
    if let Some(name) = container {
        b = b.label("container", name);
    }
    let mut f: Finding = b.into();
    f.rule = check.id.clone();
    f
}

/// The containers of a pod spec with whether each is an init container.
fn containers(pod: &Value) -> impl Iterator<Item = (&Value, bool)> {
    let list = move |field: &'static str, init: bool| {
        pod.get(field)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(move |c| (c, init))
    };
    list("initContainers", true).chain(list("containers", false))
}

/// Runs one check on one workload.
fn check_workload(check: &Check, w: &Workload, out: &mut Vec<Finding>) {
    if !check.controllers.admits(w.kind.kind) {
        return;
    }
    match check.target {
        Target::Controller => {
            if !check.validator.is_valid(&w.object.value) {
                out.push(finding(check, w, None));
            }
        }
        Target::Pod => {
            if let Some(pod) = w.pod_spec()
                && !check.validator.is_valid(pod)
            {
                out.push(finding(check, w, None));
            }
        }
        Target::Container => {
            let Some(pod) = w.pod_spec() else { return };
            for (container, init) in containers(pod) {
                let role = if init { "initContainer" } else { "container" };
                if !check.containers.admits(role) {
                    continue;
                }
                let valid = if check.pod_schema_target {
                    // Polaris: the pod spec with only this container.
                    let mut copy = pod.clone();
                    copy["initContainers"] = Value::Array(Vec::new());
                    copy["containers"] = Value::Array(vec![container.clone()]);
                    check.validator.is_valid(&copy)
                } else {
                    check.validator.is_valid(container)
                };
                if !valid {
                    let name = container.get("name").and_then(Value::as_str).unwrap_or("");
                    out.push(finding(check, w, Some(name)));
                }
            }
        }
    }
}

/// Runs every check on every workload, checks in file order then id order.
pub fn run_checks(checks: &[Check], workloads: &[Workload]) -> Vec<Finding> {
    let mut out = Vec::new();
    for w in workloads {
        for check in checks {
            check_workload(check, w, &mut out);
        }
    }
    out
}

/// The probe.
pub struct SchemaChecks;

impl Probe for SchemaChecks {
    type Config = Option<Config>;

    fn describe() -> ProbeInfo {
        let mut b = sonde_sdk::describe(
            "schema-checks",
            env!("CARGO_PKG_VERSION"),
            "JSON-schema checks in KubeEye's rule.yaml format from the operator's files (sonde audit --checks FILE)",
        )
        .rules(&[RULES]);
        for k in workloads::KINDS {
            b = b.kube(k.group, k.kind, &[KubeVerb::List]);
        }
        b.build()
    }

    fn run(config: Option<Config>) -> Result<Vec<Finding>, ProbeError> {
        let files = config.map(|c| c.files).unwrap_or_default();
        if files.is_empty() {
            log::info(
                "no rule.yaml files configured (sonde audit --checks FILE): nothing to check",
            );
            return Ok(Vec::new());
        }
        let mut checks = Vec::new();
        for file in &files {
            let loaded = rules::load(file);
            for w in &loaded.warnings {
                log::warn(w);
            }
            for e in &loaded.errors {
                log::error(&e.to_string());
            }
            checks.extend(loaded.checks);
        }
        if checks.is_empty() {
            log::info("no check to run");
            return Ok(Vec::new());
        }
        let workloads = workloads::list_top_level(&kube::ListParams::default())?;
        let findings = run_checks(&checks, &workloads);
        log::info(&format!(
            "{} checks on {} workloads: {} findings",
            checks.len(),
            workloads.len(),
            findings.len()
        ));
        Ok(findings)
    }
}

sonde_sdk::export_probe!(SchemaChecks);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use sonde_sdk::workloads::{KINDS, Object};

    fn workload(kind: &'static str, value: Value) -> Workload {
        let k = KINDS.iter().find(|k| k.kind == kind).unwrap();
        Workload {
            kind: k,
            object: Object::new(k.api_version, k.kind, value),
        }
    }

    fn deployment(name: &str, init_image: &str, image: &str) -> Workload {
        workload(
            "Deployment",
            json!({"metadata": {"name": name, "namespace": "shop", "uid": name},
                   "spec": {"replicas": 3, "template": {"spec": {
                       "initContainers": [{"name": "init", "image": init_image}],
                       "containers": [{"name": "app", "image": image}]}}}}),
        )
    }

    fn load(text: &str) -> Vec<Check> {
        let loaded = rules::load(&RuleFile {
            path: "rule.yaml".into(),
            text: text.into(),
        });
        assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
        loaded.checks
    }

    const QUAY: &str = "checks:\n  noQuay: danger\ncustomChecks:\n  noQuay:\n    promptMessage: Image from quay.io\n    category: Images\n    target: Container\n    schema:\n      properties:\n        image:\n          not:\n            pattern: ^quay.io\n";

    #[test]
    fn container_checks_cover_init_containers_and_name_the_container() {
        let checks = load(QUAY);
        let found = run_checks(
            &checks,
            &[
                deployment("a", "quay.io/x/init:1", "nginx:1.25"),
                deployment("b", "busybox:1", "docker.io/library/nginx:1"),
            ],
        );
        assert_eq!(found.len(), 1);
        let f = &found[0];
        assert_eq!((f.rule.as_str(), f.severity), ("noQuay", Severity::High));
        assert_eq!(f.resource.as_ref().unwrap().name, "a");
        assert_eq!(f.message, "container \"init\": Image from quay.io");
        assert!(f.labels.contains(&("container".into(), "init".into())));
        assert!(f.labels.contains(&("category".into(), "Images".into())));
    }

    #[test]
    fn containers_include_limits_to_regular_containers() {
        let text = QUAY.replace(
            "    target: Container\n",
            "    target: Container\n    containers:\n      include: [container]\n",
        );
        let checks = load(&text);
        let found = run_checks(&checks, &[deployment("a", "quay.io/x/init:1", "nginx")]);
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn pod_and_controller_targets() {
        let checks = load(
            "checks:\n  hostNet: warning\n  fewReplicas: warning\ncustomChecks:\n  hostNet:\n    failureMessage: Host network\n    target: Pod\n    schema:\n      properties:\n        hostNetwork:\n          not: {const: true}\n  fewReplicas:\n    failureMessage: Needs 2 replicas\n    target: Controller\n    controllers:\n      include: [Deployment]\n    schema:\n      properties:\n        spec:\n          properties:\n            replicas: {minimum: 2}\n",
        );
        let mut one = deployment("one", "busybox", "nginx");
        one.object.value["spec"]["replicas"] = json!(1);
        one.object.value["spec"]["template"]["spec"]["hostNetwork"] = json!(true);
        let pod = workload(
            "Pod",
            json!({"metadata": {"name": "p", "namespace": "shop"}, "spec": {"hostNetwork": true, "containers": []}}),
        );
        let found: Vec<(String, String)> = run_checks(
            &checks,
            &[one, deployment("three", "busybox", "nginx"), pod],
        )
        .iter()
        .map(|f| (f.resource.as_ref().unwrap().name.clone(), f.rule.clone()))
        .collect();
        assert_eq!(
            found,
            [
                ("one".to_string(), "fewReplicas".to_string()),
                ("one".to_string(), "hostNet".to_string()),
                // The controllers filter keeps fewReplicas off the Pod.
                ("p".to_string(), "hostNet".to_string()),
            ]
        );
    }

    #[test]
    fn schema_target_pod_sees_only_that_container() {
        let checks = load(
            "checks:\n  a: warning\ncustomChecks:\n  a:\n    target: Container\n    schemaTarget: Pod\n    schema:\n      properties:\n        containers:\n          maxItems: 1\n        initContainers:\n          maxItems: 0\n",
        );
        assert!(run_checks(&checks, &[deployment("a", "busybox", "nginx")]).is_empty());
    }
}
