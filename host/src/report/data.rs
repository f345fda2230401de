//! The report as a document (JSON and YAML): stable field names,
//! severities in lower case, one flat list of findings.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::audit::AuditReport;
use crate::runtime::{Denial, LogLine};

/// The serialised report.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportDocument {
    pub source: String,
    pub started_at: String,
    /// False when a probe failed or logged an error, or an input file could not be read.
    pub complete: bool,
    /// Findings per severity, and `total`.
    pub summary: BTreeMap<String, usize>,
    pub input_issues: Vec<String>,
    pub runs: Vec<RunRecord>,
    pub findings: Vec<FindingRecord>,
    /// The 0-100 score per namespace and for the cluster (see `posture::score`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<crate::posture::Score>,
    /// Findings left out by an exemption, with why.
    pub exempted: Vec<ExemptedRecord>,
}

/// A finding an exemption left out.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExemptedRecord {
    pub probe: String,
    pub rule: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub kind: String,
    pub name: String,
    pub reason: String,
}

/// One run.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunRecord {
    pub probe: String,
    pub version: String,
    pub run_id: String,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub duration_ms: f64,
    pub findings: usize,
    pub denials: Vec<Denial>,
    pub logs: Vec<LogLine>,
}

/// One finding.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FindingRecord {
    pub probe: String,
    pub rule: String,
    /// The rule's category as its probe declares it (`workloads`, `events`, `nodes`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    pub severity: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub kind: String,
    pub name: String,
    pub api_version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remedy: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// The category of `rule` as `probe` declares it (or its catch-all rule `*`).
fn category_of(r: &AuditReport, probe: &str, rule: &str) -> Option<String> {
    let rules = &r.probes.iter().find(|p| p.name == probe)?.rules;
    rules
        .iter()
        .find(|x| x.id == rule)
        .or_else(|| rules.iter().find(|x| x.id == "*"))
        .map(|x| x.category.clone())
}

impl ReportDocument {
    /// Each run with its own findings: the flat list holds them in run order.
    pub fn runs_with_findings(&self) -> impl Iterator<Item = (&RunRecord, &[FindingRecord])> {
        let mut start = 0;
        self.runs.iter().map(move |run| {
            let end = (start + run.findings).min(self.findings.len());
            let own = &self.findings[start..end];
            start = end;
            (run, own)
        })
    }
}

impl FindingRecord {
    /// Whether the finding is about a resource (and not the cluster as a whole).
    pub fn has_resource(&self) -> bool {
        !(self.kind.is_empty() && self.name.is_empty())
    }

    /// `namespace/Kind/name`, `Kind/name` when cluster-scoped, `cluster` without a resource.
    pub fn resource_path(&self) -> String {
        match (&self.namespace, self.has_resource()) {
            (_, false) => "cluster".into(),
            (Some(ns), true) => format!("{ns}/{}/{}", self.kind, self.name),
            (None, true) => format!("{}/{}", self.kind, self.name),
        }
    }

    /// The severity's rank (info = 0 ... critical = 4).
    pub fn severity_rank(&self) -> u8 {
        self.severity
            .parse::<crate::bindings::Severity>()
            .map(|s| s.rank())
            .unwrap_or(0)
    }

    /// A label's value, if present and not empty.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

impl From<&AuditReport> for ReportDocument {
    fn from(r: &AuditReport) -> Self {
        let mut summary: BTreeMap<String, usize> = r
            .counts()
            .iter()
            .map(|(s, n)| (s.as_str().to_string(), *n))
            .collect();
        summary.insert("total".into(), r.findings().count());
        let version_of = |probe: &str| {
            r.probes
                .iter()
                .find(|p| p.name == probe)
                .map(|p| p.version.clone())
                .unwrap_or_default()
        };
        let exempted = r
            .exempted
            .iter()
            .map(|e| {
                let res = e.finding.resource.as_ref();
                ExemptedRecord {
                    probe: e.probe.clone(),
                    rule: e.finding.rule.clone(),
                    namespace: res.and_then(|r| r.namespace.clone()),
                    kind: res.map(|r| r.kind.clone()).unwrap_or_default(),
                    name: res.map(|r| r.name.clone()).unwrap_or_default(),
                    reason: e.reason.clone(),
                }
            })
            .collect();
        ReportDocument {
            score: r.score.clone(),
            exempted,
            source: r.source.clone(),
            started_at: r.started_at.clone(),
            complete: r.complete(),
            summary,
            input_issues: r.input_issues.clone(),
            runs: r
                .runs
                .iter()
                .map(|o| RunRecord {
                    probe: o.probe.clone(),
                    version: version_of(&o.probe),
                    run_id: o.run_id.clone(),
                    status: if o.succeeded() { "succeeded" } else { "failed" }.into(),
                    reason: o.reason.as_ref().map(ToString::to_string),
                    duration_ms: o.duration.as_secs_f64() * 1000.0,
                    findings: o.findings.len(),
                    denials: o.denials.clone(),
                    logs: o.logs.clone(),
                })
                .collect(),
            findings: r
                .findings()
                .map(|(probe, f)| {
                    let res = f.resource.as_ref();
                    FindingRecord {
                        probe: probe.to_string(),
                        rule: f.rule.clone(),
                        category: category_of(r, probe, &f.rule),
                        severity: f.severity.as_str().into(),
                        namespace: res.and_then(|r| r.namespace.clone()),
                        kind: res.map(|r| r.kind.clone()).unwrap_or_default(),
                        name: res.map(|r| r.name.clone()).unwrap_or_default(),
                        api_version: res.map(|r| r.api_version.clone()).unwrap_or_default(),
                        uid: res.and_then(|r| r.uid.clone()),
                        message: f.message.clone(),
                        remedy: f.remedy.clone(),
                        labels: f.labels.iter().cloned().collect(),
                    }
                })
                .collect(),
        }
    }
}
