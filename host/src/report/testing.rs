//! Reports built by hand for the formats' unit tests: findings of named
//! probes, each probe's rules with the category its name implies.

use std::time::Duration;

use crate::audit::{AuditReport, ProbeSummary};
use crate::bindings::{Finding, ResourceRef, RuleInfo, Severity};
use crate::runtime::{FailureReason, RunOutcome, RunStatus};

/// A medium finding of `probe`'s `rule` on `kind/name` (no resource when both are empty).
pub fn finding(
    probe: &str,
    rule: &str,
    namespace: Option<&str>,
    kind: &str,
    name: &str,
    labels: &[(&str, &str)],
) -> (String, Finding) {
    let resource = (!kind.is_empty() || !name.is_empty()).then(|| ResourceRef {
        api_version: if kind == "Deployment" {
            "apps/v1"
        } else {
            "v1"
        }
        .into(),
        kind: kind.into(),
        namespace: namespace.map(Into::into),
        name: name.into(),
        uid: None,
    });
    (
        probe.into(),
        Finding {
            rule: rule.into(),
            severity: Severity::Medium,
            resource,
            message: format!("{rule} on {name}"),
            remedy: Some(format!("fix {name}")),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        },
    )
}

/// The category a built-in probe's rules have.
fn category(probe: &str) -> &'static str {
    match probe {
        "event-audit" => "events",
        "node-audit" => "nodes",
        "kernel-audit" => "kernel",
        "control-plane-audit" => "control-plane",
        "active-checks" => "active-check",
        "rbac-audit" => "rbac",
        _ => "workloads",
    }
}

/// A rule as `describe()` declares it.
pub fn rule(id: &str, category: &str, severity: Severity) -> RuleInfo {
    RuleInfo {
        id: id.into(),
        title: format!("{id} title"),
        category: category.into(),
        default_severity: severity,
        description: format!("{id} description"),
        remedy: format!("{id} remedy"),
    }
}

/// One successful run per probe (in order of first appearance), each declaring the rules its findings use.
pub fn report(findings: Vec<(String, Finding)>) -> AuditReport {
    let mut report = AuditReport {
        source: "snapshot test".into(),
        started_at: "2026-12-01T00:00:00Z".into(),
        input_issues: Vec::new(),
        probes: Vec::new(),
        runs: Vec::new(),
        exempted: Vec::new(),
        score: None,
    };
    for (probe, f) in findings {
        if !report.runs.iter().any(|r| r.probe == probe) {
            report.probes.push(ProbeSummary {
                name: probe.clone(),
                version: "1.0.0".into(),
                origin: format!("builtin:{probe}"),
                rules: Vec::new(),
            });
            report.runs.push(RunOutcome {
                probe: probe.clone(),
                run_id: format!("run-{probe}"),
                status: RunStatus::Succeeded,
                reason: None,
                findings: Vec::new(),
                logs: Vec::new(),
                denials: Vec::new(),
                duration: Duration::from_millis(12),
            });
        }
        let summary = report.probes.iter_mut().find(|p| p.name == probe);
        if let Some(summary) = summary
            && !summary.rules.iter().any(|r| r.id == f.rule)
        {
            summary
                .rules
                .push(rule(&f.rule, category(&probe), f.severity));
        }
        if let Some(run) = report.runs.iter_mut().find(|r| r.probe == probe) {
            run.findings.push(f);
        }
    }
    report
}

/// Adds a failed run of `probe` (with no findings) and its summary.
pub fn add_failed_run(report: &mut AuditReport, probe: &str, message: &str) {
    report.probes.push(ProbeSummary {
        name: probe.into(),
        version: "0.1.0".into(),
        origin: format!("{probe}.wasm"),
        rules: vec![rule("Unused", "workloads", Severity::Low)],
    });
    report.runs.push(RunOutcome {
        probe: probe.into(),
        run_id: format!("run-{probe}"),
        status: RunStatus::Failed,
        reason: Some(FailureReason::Panic {
            message: message.into(),
        }),
        findings: Vec::new(),
        logs: Vec::new(),
        denials: Vec::new(),
        duration: Duration::from_millis(3),
    });
}
