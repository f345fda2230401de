//! Exemptions: findings the operator has accepted. On an object, the
//! annotation `sonde.dev/exempt: "true"` exempts it from every rule and
//! `sonde.dev/exempt-<rule-id>: "true"` from one rule; in a config file, an
//! exemption selects findings by rule, namespace, kind, name and probe
//! (glob patterns). Exempted findings leave the findings list and are
//! kept, with the reason, in the report's `exempted` list.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::inventory::{Inventory, ObjectKey};
use crate::audit::AuditReport;
use crate::bindings::Finding;
use crate::kube::KindRef;

/// The annotation that exempts an object from every rule.
pub const EXEMPT_ALL: &str = "sonde.dev/exempt";
/// The prefix of the annotation that exempts an object from one rule.
pub const EXEMPT_RULE_PREFIX: &str = "sonde.dev/exempt-";

/// One exemption of the config file. Every selector that is given must match
/// (a list matches when one of its patterns does); at least one is required.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExemptionRule {
    /// Rule ids or glob patterns (`Host*`).
    #[serde(default)]
    pub rules: Vec<String>,
    /// Namespace patterns; `""` selects cluster-scoped objects.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Kind patterns (`Deployment`, `Cluster*`).
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Object name patterns (`node-agent-*`).
    #[serde(default)]
    pub names: Vec<String>,
    /// Probe name patterns.
    #[serde(default)]
    pub probes: Vec<String>,
    /// Why: shown in reports.
    #[serde(default)]
    pub reason: Option<String>,
}

/// The exemptions file: `exemptions: [...]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExemptionFile {
    #[serde(default)]
    pub exemptions: Vec<ExemptionRule>,
}

/// Why an exemptions file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ExemptionError {
    #[error("cannot read the exemptions file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{path}: exemption {index} ({field}): bad pattern {pattern:?}: {message}")]
    Pattern {
        path: String,
        index: usize,
        field: &'static str,
        pattern: String,
        message: String,
    },
    #[error(
        "{path}: exemption {index} selects every finding; give at least one of rules, namespaces, kinds, names, probes"
    )]
    Unbounded { path: String, index: usize },
}

/// A finding taken out of the report, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Exempted {
    pub probe: String,
    pub finding: Finding,
    pub reason: String,
}

#[derive(Debug, Clone)]
struct Compiled {
    rules: Vec<glob::Pattern>,
    namespaces: Vec<glob::Pattern>,
    kinds: Vec<glob::Pattern>,
    names: Vec<glob::Pattern>,
    probes: Vec<glob::Pattern>,
    reason: String,
}

/// The operator's exemptions, checked and compiled.
#[derive(Debug, Clone, Default)]
pub struct Exemptions {
    rules: Vec<Compiled>,
    /// Whether object annotations are honoured (on unless turned off).
    pub ignore_annotations: bool,
}

impl Exemptions {
    /// Reads a YAML (or JSON) exemptions file.
    pub fn load(path: &Path) -> Result<Self, ExemptionError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ExemptionError::Read {
            path: shown.clone(),
            source,
        })?;
        let file: ExemptionFile =
            serde_yaml::from_str(&text).map_err(|e| ExemptionError::Parse {
                path: shown.clone(),
                message: e.to_string(),
            })?;
        Self::from_file(&shown, file)
    }

    /// Compiles parsed exemptions; `origin` names them in errors.
    pub fn from_file(origin: &str, file: ExemptionFile) -> Result<Self, ExemptionError> {
        let mut rules = Vec::with_capacity(file.exemptions.len());
        for (i, e) in file.exemptions.into_iter().enumerate() {
            let index = i + 1;
            let compile = |field: &'static str, patterns: &[String]| {
                patterns
                    .iter()
                    .map(|p| {
                        glob::Pattern::new(p).map_err(|err| ExemptionError::Pattern {
                            path: origin.to_string(),
                            index,
                            field,
                            pattern: p.clone(),
                            message: err.msg.to_string(),
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()
            };
            let c = Compiled {
                rules: compile("rules", &e.rules)?,
                namespaces: compile("namespaces", &e.namespaces)?,
                kinds: compile("kinds", &e.kinds)?,
                names: compile("names", &e.names)?,
                probes: compile("probes", &e.probes)?,
                reason: e
                    .reason
                    .clone()
                    .unwrap_or_else(|| format!("exemption {index} of {origin}")),
            };
            if [&c.rules, &c.namespaces, &c.kinds, &c.names, &c.probes]
                .iter()
                .all(|v| v.is_empty())
            {
                return Err(ExemptionError::Unbounded {
                    path: origin.to_string(),
                    index,
                });
            }
            rules.push(c);
        }
        Ok(Exemptions {
            rules,
            ignore_annotations: false,
        })
    }

    /// Why `finding` (made by `probe`) is exempt, if it is.
    pub fn reason_for(
        &self,
        probe: &str,
        finding: &Finding,
        inventory: &Inventory,
    ) -> Option<String> {
        let res = finding.resource.as_ref();
        let namespace = res.and_then(|r| r.namespace.as_deref()).unwrap_or("");
        let kind = res.map_or("", |r| r.kind.as_str());
        let name = res.map_or("", |r| r.name.as_str());
        if !self.ignore_annotations
            && let Some(r) = res
        {
            let key = ObjectKey {
                kind: KindRef::new(&r.api_version, &r.kind),
                namespace: namespace.to_string(),
                name: name.to_string(),
            };
            if let Some(annotations) = inventory.annotations_of(&key) {
                let rule_key = format!("{EXEMPT_RULE_PREFIX}{}", finding.rule);
                for k in [EXEMPT_ALL, rule_key.as_str()] {
                    if annotations.get(k).is_some_and(|v| is_true(v)) {
                        return Some(format!("annotation {k}"));
                    }
                }
            }
        }
        let matches = |patterns: &[glob::Pattern], value: &str| {
            patterns.is_empty() || patterns.iter().any(|p| p.matches(value))
        };
        self.rules
            .iter()
            .find(|c| {
                matches(&c.rules, &finding.rule)
                    && matches(&c.namespaces, namespace)
                    && matches(&c.kinds, kind)
                    && matches(&c.names, name)
                    && matches(&c.probes, probe)
            })
            .map(|c| c.reason.clone())
    }

    /// Moves every exempt finding of `report` into `report.exempted`.
    pub fn apply(&self, report: &mut AuditReport, inventory: &Inventory) {
        let mut exempted = Vec::new();
        for run in &mut report.runs {
            let findings = std::mem::take(&mut run.findings);
            for f in findings {
                match self.reason_for(&run.probe, &f, inventory) {
                    Some(reason) => exempted.push(Exempted {
                        probe: run.probe.clone(),
                        finding: f,
                        reason,
                    }),
                    None => run.findings.push(f),
                }
            }
        }
        report.exempted.extend(exempted);
    }
}

/// Annotation values count as true the way Kubernetes' own boolean
/// annotations are written: `"true"`, in any case.
fn is_true(value: &str) -> bool {
    value.trim().eq_ignore_ascii_case("true")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::{ResourceRef, Severity};

    fn finding(rule: &str, ns: Option<&str>, kind: &str, name: &str) -> Finding {
        Finding {
            rule: rule.into(),
            severity: Severity::Medium,
            resource: Some(ResourceRef {
                api_version: "apps/v1".into(),
                kind: kind.into(),
                namespace: ns.map(Into::into),
                name: name.into(),
                uid: None,
            }),
            message: String::new(),
            remedy: None,
            labels: Vec::new(),
        }
    }

    fn parse(yaml: &str) -> Result<Exemptions, ExemptionError> {
        Exemptions::from_file("ex.yaml", serde_yaml::from_str(yaml).unwrap())
    }

    #[test]
    fn config_selectors_must_all_match() {
        let ex = parse(
            "exemptions:\n- rules: [NoCPU*]\n  namespaces: [kube-system]\n  reason: system daemons\n",
        )
        .unwrap();
        let inv = Inventory::default();
        let hit = finding("NoCPULimits", Some("kube-system"), "DaemonSet", "agent");
        assert_eq!(
            ex.reason_for("workload-audit", &hit, &inv).as_deref(),
            Some("system daemons")
        );
        let other_ns = finding("NoCPULimits", Some("shop"), "DaemonSet", "agent");
        assert_eq!(ex.reason_for("workload-audit", &other_ns, &inv), None);
        let other_rule = finding("NoMemoryLimits", Some("kube-system"), "DaemonSet", "a");
        assert_eq!(ex.reason_for("workload-audit", &other_rule, &inv), None);
    }

    #[test]
    fn empty_namespace_pattern_selects_cluster_scoped_objects() {
        let ex = parse("exemptions:\n- namespaces: ['']\n  kinds: [ClusterRole]\n").unwrap();
        let inv = Inventory::default();
        let cluster = finding("CanDeleteResources", None, "ClusterRole", "ops");
        assert_eq!(
            ex.reason_for("rbac-audit", &cluster, &inv).as_deref(),
            Some("exemption 1 of ex.yaml")
        );
        let namespaced = finding("CanDeleteResources", Some("shop"), "ClusterRole", "ops");
        assert_eq!(ex.reason_for("rbac-audit", &namespaced, &inv), None);
    }

    #[test]
    fn annotations_exempt_all_rules_or_one() {
        let mut inv = Inventory::default();
        let key = |name: &str| ObjectKey {
            kind: KindRef::new("apps/v1", "Deployment"),
            namespace: "shop".into(),
            name: name.into(),
        };
        inv.annotations.insert(
            key("all"),
            [(EXEMPT_ALL.to_string(), "True".to_string())].into(),
        );
        inv.annotations.insert(
            key("one"),
            [(
                format!("{EXEMPT_RULE_PREFIX}NoCPULimits"),
                "true".to_string(),
            )]
            .into(),
        );
        inv.annotations.insert(
            key("off"),
            [(EXEMPT_ALL.to_string(), "false".to_string())].into(),
        );
        let ex = Exemptions::default();
        let f = |name: &str, rule: &str| finding(rule, Some("shop"), "Deployment", name);
        assert!(ex.reason_for("p", &f("all", "NoCPULimits"), &inv).is_some());
        assert!(
            ex.reason_for("p", &f("all", "ImageTagMiss"), &inv)
                .is_some()
        );
        assert_eq!(
            ex.reason_for("p", &f("one", "NoCPULimits"), &inv)
                .as_deref(),
            Some("annotation sonde.dev/exempt-NoCPULimits")
        );
        assert_eq!(ex.reason_for("p", &f("one", "NoMemoryLimits"), &inv), None);
        assert_eq!(ex.reason_for("p", &f("off", "NoCPULimits"), &inv), None);
        let ignoring = Exemptions {
            ignore_annotations: true,
            ..Default::default()
        };
        assert_eq!(
            ignoring.reason_for("p", &f("all", "NoCPULimits"), &inv),
            None
        );
    }

    #[test]
    fn bad_files_are_refused_with_where() {
        let e = parse("exemptions:\n- reason: everything\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "ex.yaml: exemption 1 selects every finding; give at least one of rules, namespaces, kinds, names, probes"
        );
        let e = parse("exemptions:\n- rules: [NoCPU]\n- names: ['[bad']\n").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("ex.yaml: exemption 2 (names): bad pattern \"[bad\""),
            "{e}"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.yaml");
        std::fs::write(&path, "exemptions:\n- rulez: [a]\n").unwrap();
        let e = Exemptions::load(&path).unwrap_err().to_string();
        assert!(
            e.contains("x.yaml") && e.contains("rulez") && e.contains("line 2"),
            "{e}"
        );
    }
}
