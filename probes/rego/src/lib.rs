//! Sonde's built-in probe `rego`: KubeEye's OPA rules, unchanged, from the
//! operator's Rego files (`sonde audit --rego DIR`, as `kubeeye audit -p DIR`).
//!
//! As KubeEye does, each file is evaluated alone, once per object, with the
//! object as `input.Object`; the package says which objects:
//! `kubeeye_workloads_rego` every workload (each once, at its top-level
//! listed controller: a Deployment, not its ReplicaSets and Pods; a CronJob,
//! not its Jobs), `kubeeye_RBAC_rego` every Role and ClusterRole,
//! `kubeeye_nodes_rego` every Node, `kubeeye_events_rego` every Event. Each
//! result message of the package's rules (`deny[msg]`) is a finding whose rule
//! id is its `Message` (see `results`). A file that does not parse is logged
//! as an error with file, line and column; the others still run.
//!
//! Probes have no files: the host reads them and passes their text in the
//! config, `{"modules": [{"path": "opa/x.rego", "text": "..."}]}`.

pub mod policy;
pub mod results;

use std::collections::{BTreeSet, HashSet};

use serde::Deserialize;
use sonde_sdk::workloads::{self, Object};
use sonde_sdk::{Finding, KubeVerb, Probe, ProbeError, ProbeInfo, Rule, Severity, kube, log};

use policy::{Module, ModuleError, ModuleText, Target};
use results::ResultMessage;

/// The one rule this probe declares: its rule ids come from the operator's files.
pub const RULES: Rule = Rule::new(
    "*",
    "Rules from the operator's Rego files",
    "custom",
    Severity::Medium,
    "A rule of the operator's KubeEye OPA (Rego) files reported this object; the rule id is the result message's `Message`.",
    "See the Rego file named in the finding's `file` label for what the rule expects, and change the object (or the rule).",
);

/// Probe config: the Rego files, read by the host.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub modules: Vec<ModuleText>,
}

/// The objects each target is evaluated against.
#[derive(Debug, Default)]
pub struct Objects {
    pub workloads: Vec<Object>,
    pub rbac: Vec<Object>,
    pub nodes: Vec<Object>,
    pub events: Vec<Object>,
}

impl Objects {
    fn of(&self, target: Target) -> &[Object] {
        match target {
            Target::Workloads => &self.workloads,
            Target::Rbac => &self.rbac,
            Target::Nodes => &self.nodes,
            Target::Events => &self.events,
        }
    }

    /// Lists what the targets need, and only that.
    fn list(targets: &BTreeSet<Target>) -> Result<Self, ProbeError> {
        let params = kube::ListParams::default();
        let mut objects = Objects::default();
        let kind = |api_version, kind| {
            workloads::list_kind(api_version, kind, &params).map(Option::unwrap_or_default)
        };
        for target in targets {
            match target {
                Target::Workloads => {
                    objects.workloads = workloads::list_top_level(&params)?
                        .into_iter()
                        .map(|w| w.object)
                        .collect();
                }
                Target::Rbac => {
                    objects.rbac = kind("rbac.authorization.k8s.io/v1", "Role")?;
                    objects
                        .rbac
                        .extend(kind("rbac.authorization.k8s.io/v1", "ClusterRole")?);
                }
                Target::Nodes => objects.nodes = kind("v1", "Node")?,
                Target::Events => objects.events = kind("v1", "Event")?,
            }
        }
        Ok(objects)
    }
}

/// What evaluating the modules produced.
#[derive(Debug, Default)]
pub struct Evaluation {
    pub findings: Vec<Finding>,
    /// Rules that could not run (files that do not parse, failed evaluations): error-level.
    pub errors: Vec<String>,
    /// Rules whose results could not be read, packages KubeEye does not evaluate.
    pub warnings: Vec<String>,
    /// (file, object) evaluations done.
    pub evaluations: usize,
}

/// Compiles every module; the ones that do not compile are errors.
pub fn compile_all(texts: &[ModuleText]) -> (Vec<Module>, Vec<ModuleError>) {
    let mut modules = Vec::new();
    let mut errors = Vec::new();
    for text in texts {
        match policy::compile(text) {
            Ok(m) => modules.push(m),
            Err(e) => errors.push(e),
        }
    }
    (modules, errors)
}

/// Evaluates each module against the objects of its target.
pub fn evaluate(modules: &mut [Module], objects: &Objects) -> Evaluation {
    let mut out = Evaluation::default();
    let mut seen = HashSet::new();
    let mut warned = HashSet::new();
    for module in modules.iter_mut() {
        let Some(target) = module.target else {
            out.warnings.push(format!(
                "{}: package {} is not one KubeEye evaluates ({}): skipped",
                module.path,
                module.package.trim_start_matches("data."),
                Target::ALL.map(|(_, p)| p).join(", ")
            ));
            continue;
        };
        let mut failures = 0usize;
        for object in objects.of(target) {
            let resource = object.resource();
            let input = serde_json::json!({ "Object": object.value });
            out.evaluations += 1;
            let rules = match module.evaluate(regorus::Value::from(input), &describe(object)) {
                Ok(rules) => rules,
                Err(e) => {
                    if failures == 0 {
                        out.errors.push(e.to_string());
                    }
                    failures += 1;
                    continue;
                }
            };
            for (rule, value) in rules {
                let (messages, problems) = ResultMessage::all(&rule, &value);
                for p in problems {
                    if warned.insert((module.path.clone(), p.to_string())) {
                        out.warnings.push(format!("{}: {p}: skipped", module.path));
                    }
                }
                for m in messages {
                    if m.severity().is_none()
                        && warned.insert((module.path.clone(), format!("level {}", m.level)))
                    {
                        out.warnings.push(format!(
                            "{}: Level {:?} is not danger, warning or ignore: reported as medium",
                            module.path, m.level
                        ));
                    }
                    let f = m.finding(&resource, &module.path);
                    // The same result from two files (a copied rule) is one finding.
                    if seen.insert(key(&f, &m.reason)) {
                        out.findings.push(f);
                    }
                }
            }
        }
        if failures > 1 {
            out.errors.push(format!(
                "{}: evaluation failed for {} more objects",
                module.path,
                failures - 1
            ));
        }
    }
    out
}

fn describe(object: &Object) -> String {
    let r = object.resource();
    match r.namespace {
        Some(ns) => format!("{} {ns}/{}", r.kind, r.name),
        None => format!("{} {}", r.kind, r.name),
    }
}

fn key(f: &Finding, reason: &str) -> (String, String, Option<String>, String, String) {
    let r = f.resource.as_ref();
    (
        f.rule.clone(),
        r.map(|r| r.kind.clone()).unwrap_or_default(),
        r.and_then(|r| r.namespace.clone()),
        r.map(|r| r.name.clone()).unwrap_or_default(),
        reason.to_string(),
    )
}

/// The probe.
pub struct RegoRules;

impl Probe for RegoRules {
    type Config = Option<Config>;

    fn describe() -> ProbeInfo {
        let mut b = sonde_sdk::describe(
            "rego",
            env!("CARGO_PKG_VERSION"),
            "KubeEye OPA (Rego) rules from the operator's files (sonde audit --rego DIR)",
        )
        .rules(&[RULES]);
        for k in workloads::KINDS {
            b = b.kube(k.group, k.kind, &[KubeVerb::List]);
        }
        b.kube("rbac.authorization.k8s.io", "Role", &[KubeVerb::List])
            .kube(
                "rbac.authorization.k8s.io",
                "ClusterRole",
                &[KubeVerb::List],
            )
            .kube("", "Node", &[KubeVerb::List])
            .kube("", "Event", &[KubeVerb::List])
            .build()
    }

    fn run(config: Option<Config>) -> Result<Vec<Finding>, ProbeError> {
        let texts = config.map(|c| c.modules).unwrap_or_default();
        if texts.is_empty() {
            log::info("no Rego rules configured (sonde audit --rego DIR): nothing to evaluate");
            return Ok(Vec::new());
        }
        let (mut modules, errors) = compile_all(&texts);
        for e in &errors {
            log::error(&e.to_string());
        }
        let targets: BTreeSet<Target> = modules.iter().filter_map(|m| m.target).collect();
        let objects = Objects::list(&targets)?;
        let result = evaluate(&mut modules, &objects);
        for w in &result.warnings {
            log::warn(w);
        }
        for e in &result.errors {
            log::error(e);
        }
        log::info(&format!(
            "{} of {} Rego files compiled; {} evaluations, {} findings",
            modules.len(),
            texts.len(),
            result.evaluations,
            result.findings.len()
        ));
        Ok(result.findings)
    }
}

sonde_sdk::export_probe!(RegoRules);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn module(path: &str, text: &str) -> ModuleText {
        ModuleText {
            path: path.into(),
            text: text.into(),
        }
    }

    fn deployment(name: &str, image: &str) -> Object {
        Object::new(
            "apps/v1",
            "Deployment",
            json!({"metadata": {"name": name, "namespace": "shop", "uid": format!("uid-{name}")},
                   "spec": {"template": {"spec": {"containers": [{"name": "c", "image": image}]}}}}),
        )
    }

    const REGISTRY: &str = r#"package kubeeye_workloads_rego

deny[msg] {
    resource := input
    type := resource.Object.kind
    resourcename := resource.Object.metadata.name
    resourcenamespace := resource.Object.metadata.namespace
    workloadsType := {"Deployment","ReplicaSet","DaemonSet","StatefulSet","Job"}
    workloadsType[type]

    not workloadsImageRegistryRule(resource)

    msg := {
        "Name": sprintf("%v", [resourcename]),
        "Namespace": sprintf("%v", [resourcenamespace]),
        "Type": sprintf("%v", [type]),
        "Message": "ImageRegistryNotmyregistry"
    }
}

workloadsImageRegistryRule(resource) {
    regex.match("^myregistry.public.kubesphere/basic/.+", resource.Object.spec.template.spec.containers[_].image)
}
"#;

    #[test]
    fn workloads_are_evaluated_with_the_object_as_input_object() {
        let (mut modules, errors) = compile_all(&[module("opa/registry.rego", REGISTRY)]);
        assert!(errors.is_empty(), "{errors:?}");
        let objects = Objects {
            workloads: vec![
                deployment("nginx", "nginx:1.25"),
                deployment("ok", "myregistry.public.kubesphere/basic/app:1"),
            ],
            ..Default::default()
        };
        let result = evaluate(&mut modules, &objects);
        assert!(
            result.errors.is_empty() && result.warnings.is_empty(),
            "{result:?}"
        );
        let found: Vec<_> = result
            .findings
            .iter()
            .map(|f| (f.rule.as_str(), f.resource.as_ref().unwrap().name.as_str()))
            .collect();
        assert_eq!(found, [("ImageRegistryNotmyregistry", "nginx")]);
        let r = result.findings[0].resource.as_ref().unwrap();
        assert_eq!(r.uid.as_deref(), Some("uid-nginx"));
        assert_eq!(r.api_version, "apps/v1");
    }

    #[test]
    fn a_broken_file_is_an_error_and_the_others_still_run() {
        let (mut modules, errors) = compile_all(&[
            module(
                "opa/broken.rego",
                "package kubeeye_workloads_rego\n\ndeny[msg {\n}\n",
            ),
            module("opa/registry.rego", REGISTRY),
        ]);
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].to_string().starts_with("opa/broken.rego:3:"),
            "{}",
            errors[0]
        );
        let objects = Objects {
            workloads: vec![deployment("nginx", "nginx")],
            ..Default::default()
        };
        assert_eq!(evaluate(&mut modules, &objects).findings.len(), 1);
    }

    #[test]
    fn other_packages_and_helper_rules_are_warnings() {
        let (mut modules, _) = compile_all(&[
            module("lib.rego", "package mylib\n\nx := 1\n"),
            module(
                "n.rego",
                "package kubeeye_nodes_rego\n\nallowed := {\"a\"}\n\ndeny[msg] {\n  msg := {\"Name\": input.Object.metadata.name, \"Type\": \"Node\", \"Message\": \"Seen\", \"Level\": \"urgent\"}\n}\n",
            ),
        ]);
        let objects = Objects {
            nodes: vec![
                Object::new("v1", "Node", json!({"metadata": {"name": "n1"}})),
                Object::new("v1", "Node", json!({"metadata": {"name": "n2"}})),
            ],
            ..Default::default()
        };
        let result = evaluate(&mut modules, &objects);
        assert_eq!(result.findings.len(), 2);
        assert!(result.errors.is_empty());
        // Once each, not once per object.
        assert_eq!(result.warnings.len(), 3, "{:?}", result.warnings);
        assert!(result.warnings[0].contains("package mylib is not one KubeEye evaluates"));
        assert!(result.warnings.iter().any(|w| w.contains("rule `allowed`")));
        assert!(result.warnings.iter().any(|w| w.contains("\"urgent\"")));
    }

    #[test]
    fn the_same_result_from_two_files_is_one_finding() {
        let text = "package kubeeye_nodes_rego\n\ndeny[msg] {\n  msg := {\"Name\": input.Object.metadata.name, \"Type\": \"Node\", \"Message\": \"Seen\"}\n}\n";
        let (mut modules, _) = compile_all(&[module("a.rego", text), module("a-copy.rego", text)]);
        let objects = Objects {
            nodes: vec![Object::new(
                "v1",
                "Node",
                json!({"metadata": {"name": "n1"}}),
            )],
            ..Default::default()
        };
        assert_eq!(evaluate(&mut modules, &objects).findings.len(), 1);
    }

    #[test]
    fn evaluation_errors_are_reported_once_per_file() {
        // Two values for one complete rule: an evaluation error in OPA and regorus.
        let text = "package kubeeye_nodes_rego\n\nx = input.Object.metadata.name\nx = \"other\"\n\ndeny[msg] {\n  msg := {\"Message\": x}\n}\n";
        let (mut modules, errors) = compile_all(&[module("conflict.rego", text)]);
        assert!(errors.is_empty(), "{errors:?}");
        let objects = Objects {
            nodes: vec![
                Object::new("v1", "Node", json!({"metadata": {"name": "n1"}})),
                Object::new("v1", "Node", json!({"metadata": {"name": "n2"}})),
                Object::new("v1", "Node", json!({"metadata": {"name": "n3"}})),
            ],
            ..Default::default()
        };
        let result = evaluate(&mut modules, &objects);
        assert_eq!(result.errors.len(), 2, "{:?}", result.errors);
        assert!(
            result.errors[0].starts_with("conflict.rego"),
            "{}",
            result.errors[0]
        );
        assert!(result.errors[0].contains("Node n1"), "{}", result.errors[0]);
        assert!(result.errors[1].contains("2 more objects"));
    }
}
