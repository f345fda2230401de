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
    /// Findings the operator exempted (annotations or exemptions file), with why.
    pub exempted: Vec<crate::posture::Exempted>,
    /// Per namespace and for the cluster, once `posture::assess` has run.
    pub score: Option<crate::posture::Score>,
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

    /// Whether every run succeeded without an error-level log line (a rule
    /// file that does not parse, so its rules did not run) and the input had no problem.
    pub fn complete(&self) -> bool {
        self.input_issues.is_empty()
            && self.runs.iter().all(RunOutcome::succeeded)
            && self.run_errors().next().is_none()
    }

    /// The error-level log lines of the runs, with the probe that logged them:
    /// what kept a run that succeeded from doing all its work.
    pub fn run_errors(&self) -> impl Iterator<Item = (&str, &crate::runtime::LogLine)> {
        self.runs.iter().flat_map(|r| {
            r.logs
                .iter()
                .filter(|l| l.level == crate::runtime::LogLevel::Error)
                .map(move |l| (r.probe.as_str(), l))
        })
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

/// How many probes `run_audit` runs at once: one per core.
pub fn default_concurrency() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Runs each probe once against `services` and collects the outcomes,
/// `default_concurrency()` probes at a time.
pub async fn run_audit(
    runtime: &ProbeRuntime,
    services: Arc<HostServices>,
    probes: &[PreparedProbe],
    source: String,
    input_issues: Vec<String>,
) -> AuditReport {
    run_audit_with(
        runtime,
        services,
        probes,
        source,
        input_issues,
        default_concurrency(),
    )
    .await
}

/// `run_audit` with at most `concurrency` probes running at once, each on a
/// task of its own (so on its own core, on a multi-threaded runtime). The
/// report lists the runs in the order of `probes` whatever order they end in.
pub async fn run_audit_with(
    runtime: &ProbeRuntime,
    services: Arc<HostServices>,
    probes: &[PreparedProbe],
    source: String,
    input_issues: Vec<String>,
    concurrency: usize,
) -> AuditReport {
    use futures::StreamExt;

    let started_at = jiff::Timestamp::now().to_string();
    let tasks = probes.iter().map(|p| {
        let req = RunRequest {
            run_id: uuid::Uuid::new_v4().to_string(),
            config: p.config.clone(),
            grants: p.grants.clone(),
            limits: p.limits.clone(),
            services: services.clone(),
        };
        let (runtime, loaded, info) = (runtime.clone(), p.loaded.clone(), p.info.clone());
        async move {
            let name = info.name.clone();
            let run_id = req.run_id.clone();
            tokio::spawn(async move { runtime.run(&loaded, &info, req).await })
                .await
                .unwrap_or_else(|e| RunOutcome::host_failure(name, run_id, e.to_string()))
        }
    });
    let runs: Vec<RunOutcome> = futures::stream::iter(tasks)
        .buffered(concurrency.max(1))
        .collect()
        .await;
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
        exempted: Vec::new(),
        score: None,
    }
}
