//! One audit: a set of prepared probes run over one cluster source, and the
//! report that collects their outcomes. Shared by `sonde audit`, `sonde run`
//! and (later) the daemon's scheduler.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

use crate::bindings::{Finding, ProbeInfo, Severity};
use crate::builtin;
use crate::caps::HostServices;
use crate::grants::GrantSet;
use crate::runtime::{
    FailureReason, LoadError, LoadedProbe, ProbeRuntime, RunLimits, RunOutcome, RunRequest,
};

/// Where a probe comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeSource {
    /// Shipped inside the binary.
    Builtin(&'static str),
    /// A component file.
    File(PathBuf),
}

impl ProbeSource {
    /// A built-in probe's name, or else a path to a component.
    pub fn parse(spec: &str) -> Result<Self, String> {
        if let Some(p) = builtin::find(spec) {
            return Ok(ProbeSource::Builtin(p.name));
        }
        let path = PathBuf::from(spec);
        if path.extension().is_some_and(|e| e == "wasm") || path.exists() {
            return Ok(ProbeSource::File(path));
        }
        Err(format!(
            "unknown probe {spec:?}: not a built-in probe ({}) and not a .wasm file",
            builtin::names().join(", ")
        ))
    }
}

/// A probe loaded, described, and given its grant, config and limits.
pub struct PreparedProbe {
    pub loaded: LoadedProbe,
    pub info: ProbeInfo,
    pub grants: GrantSet,
    pub config: String,
    pub limits: RunLimits,
}

/// Why a probe could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("{origin}: {reason}")]
    Describe {
        origin: String,
        reason: FailureReason,
    },
}

/// Loads a probe and calls its `describe()`. `grants` of `None` grants exactly what it asks for.
pub async fn prepare(
    runtime: &ProbeRuntime,
    source: &ProbeSource,
    grants: Option<GrantSet>,
    config: String,
    limits: RunLimits,
) -> Result<PreparedProbe, PrepareError> {
    let loaded = match source {
        ProbeSource::Builtin(name) => {
            let probe = builtin::find(name).expect("ProbeSource::Builtin holds a known name");
            runtime.load_bytes(&format!("builtin:{name}"), probe.wasm)?
        }
        ProbeSource::File(path) => runtime.load_file(path)?,
    };
    let info =
        runtime
            .describe(&loaded, &limits)
            .await
            .map_err(|reason| PrepareError::Describe {
                origin: loaded.origin.clone(),
                reason,
            })?;
    let grants = grants.unwrap_or_else(|| GrantSet::from_requested(&info.capabilities));
    Ok(PreparedProbe {
        loaded,
        info,
        grants,
        config,
        limits,
    })
}

/// What an audit produced.
#[derive(Debug, Clone, Serialize)]
pub struct AuditReport {
    /// The cluster source (`snapshot PATH`).
    pub source: String,
    /// RFC 3339 start time.
    pub started_at: String,
    /// Problems with the input (files that did not parse), each naming file and line.
    pub input_issues: Vec<String>,
    pub probes: Vec<ProbeSummary>,
    pub runs: Vec<RunOutcome>,
}

/// What a report says of each probe.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeSummary {
    pub name: String,
    pub version: String,
    pub origin: String,
    pub rules: Vec<crate::bindings::RuleInfo>,
}

impl AuditReport {
    /// Every finding of every run, with the probe that made it.
    pub fn findings(&self) -> impl Iterator<Item = (&str, &Finding)> {
        self.runs
            .iter()
            .flat_map(|r| r.findings.iter().map(move |f| (r.probe.as_str(), f)))
    }

    /// Whether every run succeeded and the input had no problem.
    pub fn complete(&self) -> bool {
        self.input_issues.is_empty() && self.runs.iter().all(RunOutcome::succeeded)
    }

    /// Whether some finding is at or above `threshold`.
    pub fn has_finding_at_least(&self, threshold: Severity) -> bool {
        self.findings()
            .any(|(_, f)| f.severity.rank() >= threshold.rank())
    }

    /// Finding counts per severity, lowest first.
    pub fn counts(&self) -> [(Severity, usize); 5] {
        Severity::ALL.map(|s| (s, self.findings().filter(|(_, f)| f.severity == s).count()))
    }
}

/// Runs each probe once against `services` and collects the outcomes.
pub async fn run_audit(
    runtime: &ProbeRuntime,
    services: Arc<HostServices>,
    probes: &[PreparedProbe],
    source: String,
    input_issues: Vec<String>,
) -> AuditReport {
    let started_at = jiff::Timestamp::now().to_string();
    let mut runs = Vec::with_capacity(probes.len());
    for p in probes {
        let req = RunRequest {
            run_id: uuid::Uuid::new_v4().to_string(),
            config: p.config.clone(),
            grants: p.grants.clone(),
            limits: p.limits.clone(),
            services: services.clone(),
        };
        runs.push(runtime.run(&p.loaded, &p.info, req).await);
    }
    let probes = probes
        .iter()
        .map(|p| ProbeSummary {
            name: p.info.name.clone(),
            version: p.info.version.clone(),
            origin: p.loaded.origin.clone(),
            rules: p.info.rules.clone(),
        })
        .collect();
    AuditReport {
        source,
        started_at,
        input_issues,
        probes,
        runs,
    }
}
