//! The daemon's probes: each one of the config (or uploaded), loaded,
//! described and given its grant, config and limits, ready to run; and the
//! executor that runs them in the sandbox against the current cluster.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use super::config::CheckedProbe;
use super::dispatch::{Executor, Job};
use super::schedule::CronSchedule;
use super::scheduler::Plan;
use crate::audit::{self, PreparedProbe, ProbeSource};
use crate::caps::HostServices;
use crate::runtime::{ProbeRuntime, RunLimits, RunOutcome, RunRequest};

/// Where a probe came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Builtin,
    /// A component named in the config.
    Component(PathBuf),
    /// A component uploaded through the API.
    Uploaded(PathBuf),
}

impl Origin {
    pub fn describe(&self) -> String {
        match self {
            Origin::Builtin => "builtin".into(),
            Origin::Component(p) => p.display().to_string(),
            Origin::Uploaded(p) => format!("uploaded {}", p.display()),
        }
    }
}

/// A probe ready to run.
pub struct ActiveProbe {
    /// The name runs and findings are stored under (the config's).
    pub name: String,
    pub origin: Origin,
    pub prepared: PreparedProbe,
    pub schedule: Option<CronSchedule>,
    pub jitter: Duration,
    /// False: in the config but switched off (never scheduled, may run on demand).
    pub enabled: bool,
}

impl Job for ActiveProbe {
    fn name(&self) -> &str {
        &self.name
    }
    fn deadline(&self) -> Duration {
        self.prepared.limits.timeout()
    }
}

impl ActiveProbe {
    /// The scheduler's plan for it, when it is scheduled and enabled.
    pub fn plan(&self) -> Option<Plan> {
        let schedule = self.schedule.clone()?;
        self.enabled.then(|| Plan {
            name: self.name.clone(),
            schedule,
            jitter: self.jitter,
        })
    }
}

/// Every probe by name.
pub type ProbeSet = BTreeMap<String, Arc<ActiveProbe>>;

/// Loads and describes the config's probes. Every probe that fails is
/// named; none of the set is used then.
pub async fn load(
    runtime: &ProbeRuntime,
    probes: &[CheckedProbe],
) -> Result<ProbeSet, Vec<String>> {
    let mut set = ProbeSet::new();
    let mut problems = Vec::new();
    for (i, p) in probes.iter().enumerate() {
        let at = format!("probes[{i}] ({})", p.config.name);
        let (source, origin) = match &p.config.component {
            Some(path) => (
                ProbeSource::File(path.clone()),
                Origin::Component(path.clone()),
            ),
            None => match crate::builtin::find(&p.config.name) {
                Some(b) => (ProbeSource::Builtin(b.name), Origin::Builtin),
                None => {
                    problems.push(format!("{at}: not a built-in probe"));
                    continue;
                }
            },
        };
        if let Err(e) = p.limits.validate(runtime.max_memory_bytes()) {
            problems.push(format!("{at}: limits: {e}"));
            continue;
        }
        let config = if !p.config.rego.is_empty() || !p.config.checks.is_empty() {
            match crate::custom_rules::ProbeConfigs::read(&p.config.rego, &p.config.checks) {
                Ok(rules) => rules.config_for(&source),
                Err(e) => {
                    problems.push(format!("{at}: {e:#}"));
                    continue;
                }
            }
        } else {
            p.config
                .config
                .as_ref()
                .map_or_else(|| "{}".to_string(), |v| v.to_string())
        };
        match audit::prepare(runtime, &source, p.grants.clone(), config, p.limits.clone()).await {
            Ok(prepared) => {
                set.insert(
                    p.config.name.clone(),
                    Arc::new(ActiveProbe {
                        name: p.config.name.clone(),
                        origin,
                        prepared,
                        schedule: p.schedule.clone(),
                        jitter: p.jitter,
                        enabled: p.config.enabled,
                    }),
                );
            }
            Err(e) => problems.push(format!("{at}: {e}")),
        }
    }
    if problems.is_empty() {
        Ok(set)
    } else {
        Err(problems)
    }
}

/// Loads a component uploaded earlier (or now) as an on-demand probe named
/// by its `describe()`.
pub async fn load_uploaded(
    runtime: &ProbeRuntime,
    path: &Path,
) -> Result<Arc<ActiveProbe>, String> {
    let prepared = audit::prepare(
        runtime,
        &ProbeSource::File(path.to_path_buf()),
        None,
        "{}".into(),
        RunLimits::default(),
    )
    .await
    .map_err(|e| e.to_string())?;
    let name = prepared.info.name.clone();
    if !super::config::valid_name(&name) {
        return Err(format!(
            "the component describes itself as {name:?}, which is not a valid probe name \
             (1-63 letters, digits, '-', '_' or '.')"
        ));
    }
    Ok(Arc::new(ActiveProbe {
        name,
        origin: Origin::Uploaded(path.to_path_buf()),
        prepared,
        schedule: None,
        jitter: Duration::ZERO,
        enabled: true,
    }))
}

/// Runs probes in the sandbox against the cluster of the current config.
pub struct SandboxExecutor {
    pub runtime: ProbeRuntime,
    pub services: Arc<RwLock<Arc<HostServices>>>,
}

#[async_trait::async_trait]
impl Executor<ActiveProbe> for SandboxExecutor {
    async fn execute(&self, probe: Arc<ActiveProbe>, run_id: String) -> RunOutcome {
        let services = self
            .services
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let p = &probe.prepared;
        let req = RunRequest {
            run_id: run_id.clone(),
            config: p.config.clone(),
            grants: p.grants.clone(),
            limits: p.limits.clone(),
            services,
        };
        let (runtime, probe2) = (self.runtime.clone(), probe.clone());
        // A task of its own: a run uses a core while others wait on I/O.
        tokio::spawn(async move {
            runtime
                .run(&probe2.prepared.loaded, &probe2.prepared.info, req)
                .await
        })
        .await
        .unwrap_or_else(|e| RunOutcome::host_failure(probe.name.clone(), run_id, e.to_string()))
    }
}
