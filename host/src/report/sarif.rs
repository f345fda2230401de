//! The report as SARIF 2.1.0, for code-scanning tools: one run whose
//! `tool.driver` lists every probe's rules, one result per finding with the
//! Kubernetes resource as a logical location. Rule ids are qualified with
//! their probe (`workload-audit/NoCPULimits`), since two probes may declare
//! the same id; the bare id is the rule's `name`. Failed runs and input
//! problems are the invocation's notifications.

use std::collections::HashMap;
use std::io::Write;

use serde_json::{Map, Value, json};

use super::data::{FindingRecord, ReportDocument};
use crate::audit::AuditReport;
use crate::bindings::{RuleInfo, Severity};

/// Where the SARIF 2.1.0 schema is published (OASIS, errata 01).
pub const SCHEMA: &str =
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json";

/// The catch-all rule id of probes whose rules come from their config.
const ANY_RULE: &str = "*";

/// SARIF's level for a Sonde severity.
pub fn level(severity: &str) -> &'static str {
    match severity.parse::<Severity>() {
        Ok(Severity::Critical | Severity::High) => "error",
        Ok(Severity::Medium) => "warning",
        _ => "note",
    }
}

/// The rule id as the SARIF log names it.
pub fn qualified_id(probe: &str, rule: &str) -> String {
    format!("{probe}/{rule}")
}

fn descriptor(probe: &str, rule: &RuleInfo, id: &str) -> Value {
    json!({
        "id": qualified_id(probe, id),
        "name": id,
        "shortDescription": { "text": rule.title },
        "fullDescription": { "text": rule.description },
        "help": { "text": rule.remedy },
        "defaultConfiguration": { "level": level(rule.default_severity.as_str()) },
        "properties": {
            "probe": probe,
            "category": rule.category,
            "severity": rule.default_severity.as_str(),
        },
    })
}

/// The driver's rules, and the index of each qualified id among them.
struct Rules {
    list: Vec<Value>,
    index: HashMap<String, usize>,
}

impl Rules {
    fn declared(report: &AuditReport) -> Rules {
        let mut rules = Rules {
            list: Vec::new(),
            index: HashMap::new(),
        };
        for probe in &report.probes {
            for rule in probe.rules.iter().filter(|r| r.id != ANY_RULE) {
                rules.add(&probe.name, rule, &rule.id);
            }
        }
        rules
    }

    fn add(&mut self, probe: &str, rule: &RuleInfo, id: &str) -> usize {
        let qualified = qualified_id(probe, id);
        if let Some(i) = self.index.get(&qualified) {
            return *i;
        }
        self.list.push(descriptor(probe, rule, id));
        self.index.insert(qualified, self.list.len() - 1);
        self.list.len() - 1
    }

    /// The index of a finding's rule; a rule the probe did not declare (its
    /// rules come from its config, or it broke its contract) is added, with
    /// the catch-all rule's texts when there is one.
    fn of(&mut self, report: &AuditReport, f: &FindingRecord) -> usize {
        if let Some(i) = self.index.get(&qualified_id(&f.probe, &f.rule)) {
            return *i;
        }
        let catch_all = report
            .probes
            .iter()
            .find(|p| p.name == f.probe)
            .and_then(|p| p.rules.iter().find(|r| r.id == ANY_RULE));
        let severity = f.severity.parse().unwrap_or(Severity::Info);
        let rule = match catch_all {
            Some(r) => RuleInfo {
                default_severity: severity,
                ..r.clone()
            },
            None => RuleInfo {
                id: f.rule.clone(),
                title: f.rule.clone(),
                category: f.category.clone().unwrap_or_default(),
                default_severity: severity,
                description: format!("A rule {} does not declare.", f.probe),
                remedy: f.remedy.clone().unwrap_or_default(),
            },
        };
        self.add(&f.probe, &rule, &f.rule)
    }
}

fn result(f: &FindingRecord, rule_index: usize) -> Value {
    let mut properties = Map::new();
    properties.insert("probe".into(), json!(f.probe));
    properties.insert("severity".into(), json!(f.severity));
    if let Some(c) = &f.category {
        properties.insert("category".into(), json!(c));
    }
    if f.has_resource() {
        if let Some(ns) = &f.namespace {
            properties.insert("namespace".into(), json!(ns));
        }
        properties.insert("kind".into(), json!(f.kind));
        properties.insert("name".into(), json!(f.name));
        properties.insert("apiVersion".into(), json!(f.api_version));
        if let Some(uid) = &f.uid {
            properties.insert("uid".into(), json!(uid));
        }
    }
    properties.insert("labels".into(), json!(f.labels));
    if let Some(remedy) = &f.remedy {
        properties.insert("remedy".into(), json!(remedy));
    }
    let mut result = json!({
        "ruleId": qualified_id(&f.probe, &f.rule),
        "ruleIndex": rule_index,
        "level": level(&f.severity),
        "message": { "text": f.message },
        "properties": properties,
    });
    if f.has_resource() {
        result["locations"] = json!([{
            "logicalLocations": [{
                "name": f.name,
                "fullyQualifiedName": f.resource_path(),
                "kind": "resource",
            }],
        }]);
    }
    result
}

/// The SARIF log of `report`.
pub fn log(report: &AuditReport) -> Value {
    let doc = ReportDocument::from(report);
    let mut rules = Rules::declared(report);
    let results: Vec<Value> = doc
        .findings
        .iter()
        .map(|f| {
            let i = rules.of(report, f);
            result(f, i)
        })
        .collect();
    let mut notifications: Vec<Value> = doc
        .runs
        .iter()
        .filter(|r| r.status != "succeeded")
        .map(|r| {
            json!({
                "level": "error",
                "message": { "text": format!(
                    "probe {} failed: {}",
                    r.probe,
                    r.reason.as_deref().unwrap_or("no reason given")
                ) },
                "properties": { "probe": r.probe, "runId": r.run_id },
            })
        })
        .collect();
    notifications.extend(doc.input_issues.iter().map(|issue| {
        json!({
            "level": "error",
            "message": { "text": format!("input problem: {issue}") },
        })
    }));
    let mut invocation = json!({
        "executionSuccessful": doc.complete,
        "properties": { "source": doc.source },
    });
    if doc.started_at.parse::<jiff::Timestamp>().is_ok() {
        invocation["startTimeUtc"] = json!(doc.started_at);
    }
    if !notifications.is_empty() {
        invocation["toolExecutionNotifications"] = json!(notifications);
    }
    json!({
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "sonde",
                "version": env!("CARGO_PKG_VERSION"),
                "semanticVersion": env!("CARGO_PKG_VERSION"),
                "rules": rules.list,
            } },
            "invocations": [invocation],
            "results": results,
            "properties": {
                "probes": doc.runs.iter().map(|r| json!({
                    "name": r.probe, "version": r.version, "status": r.status,
                })).collect::<Vec<_>>(),
            },
        }],
    })
}

pub fn render(report: &AuditReport, out: &mut dyn Write) -> Result<(), serde_json::Error> {
    serde_json::to_writer_pretty(&mut *out, &log(report))?;
    writeln!(out).map_err(serde_json::Error::io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::testing::{add_failed_run, finding, report, rule};

    #[test]
    fn levels_follow_severity() {
        let levels: Vec<&str> = ["critical", "high", "medium", "low", "info", "bogus"]
            .into_iter()
            .map(level)
            .collect();
        assert_eq!(
            levels,
            ["error", "error", "warning", "note", "note", "note"]
        );
    }

    #[test]
    fn colliding_rule_ids_of_two_probes_stay_apart() {
        let r = report(vec![
            finding("probe-a", "Same", Some("shop"), "Deployment", "web", &[]),
            finding("probe-b", "Same", None, "Node", "node-1", &[("k", "v")]),
        ]);
        let log = log(&r);
        let run = &log["runs"][0];
        let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
        let ids: Vec<&str> = rules.iter().map(|r| r["id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["probe-a/Same", "probe-b/Same"]);
        assert_eq!(rules[1]["name"], "Same");
        let results = run["results"].as_array().unwrap();
        assert_eq!(results[1]["ruleId"], "probe-b/Same");
        assert_eq!(results[1]["ruleIndex"], 1);
        assert_eq!(results[0]["ruleIndex"], 0);
        let loc = &results[0]["locations"][0]["logicalLocations"][0];
        assert_eq!(loc["fullyQualifiedName"], "shop/Deployment/web");
        assert_eq!(loc["kind"], "resource");
        assert_eq!(results[0]["properties"]["apiVersion"], "apps/v1");
        assert_eq!(
            results[1]["locations"][0]["logicalLocations"][0]["fullyQualifiedName"],
            "Node/node-1"
        );
        assert_eq!(results[1]["properties"]["labels"]["k"], "v");
        assert!(results[1]["properties"].get("namespace").is_none());
    }

    #[test]
    fn undeclared_rules_and_failures_are_reported() {
        let mut r = report(vec![finding(
            "rego",
            "MyPolicy",
            Some("shop"),
            "Pod",
            "p",
            &[],
        )]);
        r.probes[0].rules = vec![rule(ANY_RULE, "policy", Severity::Info)];
        add_failed_run(&mut r, "broken", "boom");
        r.input_issues.push("bad.yaml:4: invalid YAML".into());
        let log = log(&r);
        let run = &log["runs"][0];
        let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
        assert_eq!(
            rules.len(),
            2,
            "broken/Unused, then rego/MyPolicy: {rules:?}"
        );
        assert_eq!(run["results"][0]["ruleId"], "rego/MyPolicy");
        assert_eq!(run["results"][0]["ruleIndex"], 1);
        assert_eq!(rules[1]["defaultConfiguration"]["level"], "warning");
        let inv = &run["invocations"][0];
        assert_eq!(inv["executionSuccessful"], false);
        let notes = inv["toolExecutionNotifications"].as_array().unwrap();
        assert_eq!(
            notes[0]["message"]["text"],
            "probe broken failed: the probe panicked: boom"
        );
        assert_eq!(
            notes[1]["message"]["text"],
            "input problem: bad.yaml:4: invalid YAML"
        );
        assert_eq!(log["version"], "2.1.0");
        assert_eq!(log["$schema"], SCHEMA);
    }
}
