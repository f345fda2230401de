//! `sonde serve`: the daemon. It loads its config (probes, cluster, store,
//! auth), keeps runs and findings in the store, runs probes on their cron
//! schedules through the dispatcher, and serves the JSON API and the web UI.
//!
//! - `config`: the config file, typed and checked.
//! - `schedule`: cron expressions with seconds and a time zone.
//! - `scheduler`: what is due when (pure; the driver here feeds it the time).
//! - `dispatch`: starting runs (no overlap, concurrency limit, deadline, store, events).
//! - `probes`: the loaded probes and the sandbox executor.
//! - `metrics`: the Prometheus registry.
//! - `report`: the latest report, rebuilt from the store for exports and the score.
//! - `api`, `web`, `svg`: the HTTP side.
//! - `demo`: `sonde serve --demo`.
//! - `history`: the cluster's events, kept past the API server's hour.
//! - `alerts`: new and fixed findings sent where the config says.

mod alerts;
pub mod api;
pub mod config;
pub mod demo;
pub mod dispatch;
mod event_alerts;
mod history;
pub mod metrics;
pub mod probes;
pub mod report;
pub mod schedule;
pub mod scheduler;
pub mod svg;
pub mod tls;
pub mod web;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{Context, Result};
use jiff::Timestamp;
use tokio::sync::{broadcast, mpsc};

use self::config::{Checked, Token};
use self::dispatch::{DEADLINE_GRACE, DispatchError, Dispatcher};
use self::probes::{ActiveProbe, ProbeSet, SandboxExecutor};
use self::scheduler::{Plan, Scheduler};
use crate::caps::HostServices;
use crate::cluster::ClusterSpec;
use crate::posture::Exemptions;
use crate::runtime::{ProbeRuntime, RuntimeConfig};
use crate::store::{Retention, RunRecord, Store, Trigger};

/// Where the daemon's config comes from.
#[derive(Debug, Clone)]
pub enum ConfigSource {
    /// A file, read again on reload.
    File(PathBuf),
    /// Built in code (the demo); reload re-checks the same.
    Fixed(Box<config::DaemonConfig>, PathBuf),
}

impl ConfigSource {
    fn load(&self) -> Result<Checked, config::ConfigError> {
        match self {
            ConfigSource::File(path) => Checked::load(path),
            ConfigSource::Fixed(c, base) => {
                c.as_ref()
                    .clone()
                    .validate("the demo config", base, &|v| std::env::var(v).ok())
            }
        }
    }
}

/// What one config produced: everything a reload swaps at once.
pub struct Loaded {
    pub checked: Checked,
    pub probes: ProbeSet,
    pub source: String,
    pub exemptions: Exemptions,
    /// Input problems of the snapshot, each with file and line.
    pub issues: Vec<String>,
}

impl Loaded {
    pub fn tokens(&self) -> &[Token] {
        &self.checked.tokens
    }
}

/// A command for the scheduler task.
enum Command {
    Replace(Vec<Plan>),
    Suspend(String, bool),
}

/// The running daemon. Cheap to clone.
#[derive(Clone)]
pub struct Daemon {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    runtime: ProbeRuntime,
    source: ConfigSource,
    loaded: RwLock<Arc<Loaded>>,
    /// Uploaded probes, by name (kept across reloads).
    uploaded: RwLock<ProbeSet>,
    services: Arc<RwLock<Arc<HostServices>>>,
    dispatcher: Dispatcher<ActiveProbe>,
    events: broadcast::Sender<RunRecord>,
    metrics: Arc<metrics::Metrics>,
    commands: mpsc::UnboundedSender<Command>,
    next_runs: RwLock<HashMap<String, Option<Timestamp>>>,
    /// Serialises reloads.
    reloading: tokio::sync::Mutex<()>,
    ready: std::sync::atomic::AtomicBool,
    /// The node collectors, when they run in this process.
    agent: tokio::sync::Mutex<Option<crate::agent::Agent>>,
}

/// Why a reload was refused (the old config stays in force).
#[derive(Debug, thiserror::Error)]
#[error("{0:#}")]
pub struct ReloadError(anyhow::Error);

async fn connect(checked: &Checked) -> Result<crate::cluster::Connected> {
    let c = &checked.config.cluster;
    let spec = ClusterSpec {
        snapshot: c.snapshot.clone(),
        kubeconfig: c.kubeconfig.clone(),
        context: c.context.clone(),
        qps: c.qps.unwrap_or(50.0),
        burst: c.burst.unwrap_or(100),
        dns_servers: c.dns_servers.clone(),
        watch_cache: true,
        http: c.http.clone(),
        etcd: c.etcd.clone(),
    };
    crate::cluster::connect(&spec, false).await
}

async fn load_all(
    runtime: &ProbeRuntime,
    source: &ConfigSource,
) -> Result<(Loaded, Arc<HostServices>)> {
    let checked = source.load()?;
    let connected = connect(&checked).await.context("cluster")?;
    let probes = probes::load(runtime, &checked.probes)
        .await
        .map_err(|problems| anyhow::anyhow!("{}", problems.join("; ")))?;
    let exemptions = match &checked.config.exemptions {
        Some(path) => Exemptions::load(path)?,
        None => Exemptions::default(),
    };
    Ok((
        Loaded {
            checked,
            probes,
            source: connected.source,
            exemptions,
            issues: connected.issues,
        },
        connected.services,
    ))
}

/// The services with the store as the collectors' data source.
fn with_collectors(services: Arc<HostServices>, store: &Store) -> Arc<HostServices> {
    let mut s = (*services).clone();
    s.collectors = Some(store.clone());
    Arc::new(s)
}

/// Starts the node collectors in this process when the config has a
/// `collectors` section: always with `mode: on`, with `auto` (the default)
/// when the process may load eBPF programs.
async fn start_agent(
    loaded: &Loaded,
    store: &Store,
    services: &HostServices,
) -> Result<Option<crate::agent::Agent>> {
    use crate::agent::{AgentConfig, Mode};
    // A config without a `collectors` section runs none.
    let Some(config) = loaded.checked.config.collectors.clone() else {
        return Ok(None);
    };
    let config: AgentConfig = config;
    let run = match config.mode {
        Mode::Off => false,
        Mode::On => true,
        Mode::Auto => match crate::agent::loader::privilege() {
            Ok(()) => true,
            Err(why) => {
                tracing::info!("node collectors not started: {why}");
                false
            }
        },
    };
    if !run {
        return Ok(None);
    }
    let agent = crate::agent::Agent::start(
        config,
        crate::agent::Sink::Store(store.clone()),
        services.kube.clone(),
    )
    .await?;
    Ok(Some(agent))
}

impl Daemon {
    /// Loads the config, opens the store, loads every probe, and starts
    /// the scheduler. Nothing is served yet (see [`Daemon::serve`]).
    pub async fn start(source: ConfigSource) -> Result<Daemon> {
        Daemon::start_with(source, RuntimeConfig::default()).await
    }

    /// [`Daemon::start`] with engine settings.
    pub async fn start_with(source: ConfigSource, runtime: RuntimeConfig) -> Result<Daemon> {
        let runtime = ProbeRuntime::new(runtime)?;
        let (loaded, services) = load_all(&runtime, &source).await?;
        let store = Store::open(&loaded.checked.config.store.path).await?;
        let services = with_collectors(services, &store);
        let agent = start_agent(&loaded, &store, &services).await?;
        let metrics = Arc::new(metrics::Metrics::new());
        let (events, _) = broadcast::channel(1024);
        let services = Arc::new(RwLock::new(services));
        let executor = Arc::new(SandboxExecutor {
            runtime: runtime.clone(),
            services: services.clone(),
        });
        let concurrency = loaded
            .checked
            .config
            .scheduler
            .concurrency
            .unwrap_or_else(crate::audit::default_concurrency);
        let hook_metrics = metrics.clone();
        let dispatcher = Dispatcher::new(
            store.clone(),
            executor,
            concurrency,
            events.clone(),
            Some(Arc::new(move |o| {
                hook_metrics.record_run(o);
            })),
            DEADLINE_GRACE,
        );
        for p in loaded.probes.values() {
            store.upsert_probe(&record_of(p)).await?;
        }
        let (commands, rx) = mpsc::unbounded_channel();
        let daemon = Daemon {
            inner: Arc::new(Inner {
                store,
                runtime,
                source,
                loaded: RwLock::new(Arc::new(loaded)),
                uploaded: RwLock::new(ProbeSet::new()),
                services,
                dispatcher,
                events,
                metrics,
                commands,
                next_runs: RwLock::new(HashMap::new()),
                reloading: tokio::sync::Mutex::new(()),
                ready: std::sync::atomic::AtomicBool::new(false),
                agent: tokio::sync::Mutex::new(agent),
            }),
        };
        daemon.load_uploads().await;
        daemon
            .inner
            .metrics
            .refresh_findings(&daemon.inner.store)
            .await;
        let plans = daemon.plans();
        let states: HashMap<_, _> = daemon
            .inner
            .store
            .schedule_states()
            .await?
            .into_iter()
            .map(|s| (s.name.clone(), s))
            .collect();
        let (sched, due) =
            Scheduler::start(plans, &states, Timestamp::now(), scheduler::random_jitter());
        *daemon
            .inner
            .next_runs
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = sched.next_runs();
        for d in due {
            daemon.fire(d).await;
        }
        tokio::spawn(daemon.clone().drive(sched, rx));
        tokio::spawn(daemon.clone().retention_loop());
        tokio::spawn(daemon.clone().http_hours_loop());
        tokio::spawn(daemon.clone().event_history_loop());
        tokio::spawn(daemon.clone().alert_loop(daemon.inner.events.subscribe()));
        daemon
            .inner
            .ready
            .store(true, std::sync::atomic::Ordering::Release);
        Ok(daemon)
    }

    /// Loads the components uploaded before this start.
    async fn load_uploads(&self) {
        let dir = self.loaded().checked.upload_dir();
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "wasm") {
                continue;
            }
            match probes::load_uploaded(&self.inner.runtime, &path).await {
                Ok(p) if self.loaded().probes.contains_key(&p.name) => tracing::warn!(
                    "{}: an uploaded probe named {} is shadowed by the config's",
                    path.display(),
                    p.name
                ),
                Ok(p) => {
                    let _ = self.inner.store.upsert_probe(&record_of(&p)).await;
                    self.inner
                        .uploaded
                        .write()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .insert(p.name.clone(), p);
                }
                Err(e) => {
                    tracing::error!("{}: cannot load the uploaded probe: {e}", path.display())
                }
            }
        }
    }

    fn plans(&self) -> Vec<Plan> {
        self.loaded()
            .probes
            .values()
            .filter_map(|p| p.plan())
            .collect()
    }

    /// The current config and probes.
    pub fn loaded(&self) -> Arc<Loaded> {
        self.inner
            .loaded
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn metrics(&self) -> &metrics::Metrics {
        &self.inner.metrics
    }

    /// The current cluster.
    pub fn services(&self) -> Arc<HostServices> {
        self.inner
            .services
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The store's generation: it changes when a run finishes or retention
    /// runs (so the store's findings may have changed).
    pub fn generation(&self) -> u64 {
        self.inner.store.generation()
    }

    /// Whether start-up finished.
    pub fn ready(&self) -> bool {
        self.inner.ready.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Every probe: the config's, then uploaded ones.
    pub fn probes(&self) -> Vec<Arc<ActiveProbe>> {
        let mut all: Vec<_> = self.loaded().probes.values().cloned().collect();
        let uploaded = self
            .inner
            .uploaded
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        all.extend(uploaded.values().cloned());
        all
    }

    pub fn probe(&self, name: &str) -> Option<Arc<ActiveProbe>> {
        self.loaded().probes.get(name).cloned().or_else(|| {
            self.inner
                .uploaded
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get(name)
                .cloned()
        })
    }

    /// A probe's next scheduled run.
    pub fn next_run(&self, name: &str) -> Option<Timestamp> {
        self.inner
            .next_runs
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(name)
            .copied()
            .flatten()
    }

    /// Probes with a run queued or running, to that run's id.
    pub fn running(&self) -> HashMap<String, String> {
        self.inner.dispatcher.running()
    }

    /// The stream of run records as they are queued, start and end.
    pub fn subscribe(&self) -> broadcast::Receiver<RunRecord> {
        self.inner.events.subscribe()
    }

    /// Starts a run of `name` now.
    pub async fn run_now(&self, name: &str) -> Result<Option<RunRecord>, DispatchError> {
        let Some(p) = self.probe(name) else {
            return Ok(None);
        };
        self.inner
            .dispatcher
            .dispatch(p, Trigger::Manual)
            .await
            .map(Some)
    }

    /// Suspends or resumes a probe's schedule (kept in the store). False
    /// when there is no such probe.
    pub async fn set_suspended(&self, name: &str, suspended: bool) -> Result<bool> {
        if self.probe(name).is_none() {
            return Ok(false);
        }
        self.inner
            .store
            .set_probe_suspended(name, suspended)
            .await?;
        let _ = self
            .inner
            .commands
            .send(Command::Suspend(name.to_string(), suspended));
        Ok(true)
    }

    /// Whether a probe is suspended.
    pub async fn suspended(&self) -> Result<HashMap<String, bool>> {
        Ok(self
            .inner
            .store
            .schedule_states()
            .await?
            .into_iter()
            .map(|s| (s.name, s.suspended))
            .collect())
    }

    /// Reads the config again; on any problem the old one stays in force.
    /// Runs in flight finish with the probe they started with.
    pub async fn reload(&self) -> Result<(), ReloadError> {
        let _guard = self.inner.reloading.lock().await;
        let (loaded, services) = load_all(&self.inner.runtime, &self.inner.source)
            .await
            .map_err(ReloadError)?;
        let services = with_collectors(services, &self.inner.store);
        let old = self.loaded();
        if loaded.checked.config.collectors != old.checked.config.collectors {
            tracing::warn!("collectors settings take effect at the next start");
        }
        if loaded.checked.config.listen != old.checked.config.listen {
            tracing::warn!(
                "listen changed to {}: that takes effect at the next start",
                loaded.checked.config.listen
            );
        }
        if loaded.checked.config.store.path != old.checked.config.store.path
            || loaded.checked.config.scheduler.concurrency
                != old.checked.config.scheduler.concurrency
        {
            tracing::warn!("store path and scheduler.concurrency take effect at the next start");
        }
        for p in loaded.probes.values() {
            self.inner
                .store
                .upsert_probe(&record_of(p))
                .await
                .map_err(|e| ReloadError(e.into()))?;
        }
        let plans: Vec<Plan> = loaded.probes.values().filter_map(|p| p.plan()).collect();
        *self
            .inner
            .services
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = services;
        *self
            .inner
            .loaded
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(loaded);
        let _ = self.inner.commands.send(Command::Replace(plans));
        tracing::info!("config reloaded");
        Ok(())
    }

    /// Validates and keeps an uploaded component; it becomes an on-demand probe.
    pub async fn upload(&self, bytes: &[u8]) -> Result<Arc<ActiveProbe>, UploadError> {
        let limit = self.loaded().checked.config.uploads.max_bytes;
        if bytes.len() > limit {
            return Err(UploadError::TooLarge { limit });
        }
        // Validate from memory before anything touches the disk.
        let loaded = self
            .inner
            .runtime
            .load_bytes("upload", bytes)
            .map_err(|e| UploadError::Invalid(e.to_string()))?;
        let info = self
            .inner
            .runtime
            .describe(&loaded, &crate::runtime::RunLimits::default())
            .await
            .map_err(|e| UploadError::Invalid(format!("describe() failed: {e}")))?;
        if !config::valid_name(&info.name) {
            return Err(UploadError::Invalid(format!(
                "the component describes itself as {:?}, not a valid probe name",
                info.name
            )));
        }
        if self.loaded().probes.contains_key(&info.name) {
            return Err(UploadError::Conflict(info.name));
        }
        let dir = self.loaded().checked.upload_dir();
        let path = dir.join(format!("{}.wasm", info.name));
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(&dir)?;
            let tmp = dir.join(format!(".{}.wasm.tmp", info.name));
            std::fs::write(&tmp, bytes)?;
            std::fs::rename(&tmp, &path)
        };
        write().map_err(|e| UploadError::Io(format!("{}: {e}", path.display())))?;
        let probe = probes::load_uploaded(&self.inner.runtime, &path)
            .await
            .map_err(UploadError::Invalid)?;
        self.inner
            .store
            .upsert_probe(&record_of(&probe))
            .await
            .map_err(|e| UploadError::Io(e.to_string()))?;
        self.inner
            .uploaded
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(probe.name.clone(), probe.clone());
        Ok(probe)
    }

    /// Stops scheduling, waits up to `wait` for runs in flight, closes the store.
    pub async fn shutdown(&self, wait: Duration) {
        let drained = self.inner.dispatcher.shutdown(wait).await;
        if !drained {
            tracing::warn!(
                "runs still going at shutdown will be marked interrupted at the next start"
            );
        }
        if let Some(agent) = self.inner.agent.lock().await.take() {
            agent.shutdown().await;
        }
        self.inner.store.close().await;
    }

    /// Waits until no run is queued or running.
    pub async fn idle(&self) {
        self.inner.dispatcher.idle().await;
    }

    async fn fire(&self, due: scheduler::Due) {
        let Some(p) = self.loaded().probes.get(&due.name).cloned() else {
            return;
        };
        if let Err(e) = self.inner.store.set_last_tick(&due.name, due.tick).await {
            tracing::error!(probe = %due.name, "cannot record the schedule tick: {e}");
        }
        match self.inner.dispatcher.dispatch(p, due.trigger).await {
            Ok(_) => {}
            Err(DispatchError::AlreadyRunning { probe, run_id }) => tracing::warn!(
                %probe,
                "tick at {} skipped: run {run_id} is still going",
                due.tick
            ),
            Err(e) => tracing::error!(probe = %due.name, "cannot start the run: {e}"),
        }
    }

    /// The scheduler's driver: sleeps until the next run is due (at most a
    /// minute, so a wall-clock jump is noticed), fires what is due, and
    /// applies reloads and suspensions as they come.
    async fn drive(self, mut sched: Scheduler, mut rx: mpsc::UnboundedReceiver<Command>) {
        loop {
            let now = Timestamp::now();
            for due in sched.due(now) {
                self.fire(due).await;
            }
            *self
                .inner
                .next_runs
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = sched.next_runs();
            let sleep = sched
                .next_wake()
                .map(|t| t.duration_since(Timestamp::now()))
                .and_then(|d| Duration::try_from(d).ok())
                .unwrap_or(Duration::from_secs(60))
                .min(Duration::from_secs(60));
            tokio::select! {
                _ = tokio::time::sleep(sleep) => {}
                cmd = rx.recv() => match cmd {
                    None => return,
                    Some(Command::Replace(plans)) => sched.replace(plans, Timestamp::now()),
                    Some(Command::Suspend(name, s)) => {
                        sched.set_suspended(&name, s, Timestamp::now());
                    }
                },
            }
        }
    }

    /// Adds up the http collector's minutes per hour once each hour is over
    /// (and again when a late minute comes), a day of hours at a time, so
    /// that the Traffic page reads days and weeks in hours.
    async fn http_hours_loop(self) {
        const HOURS_A_TIME: u32 = 24;
        loop {
            match self.inner.store.roll_up_http_hours(HOURS_A_TIME).await {
                // More may wait (a store from before the hours, an agent's
                // backlog): go on after letting others write.
                Ok(n) if n == HOURS_A_TIME as usize => {
                    tokio::task::yield_now().await;
                    continue;
                }
                Ok(_) => {}
                Err(e) => tracing::error!("adding up http minutes per hour failed: {e}"),
            }
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
    }

    async fn retention_loop(self) {
        loop {
            let r = self.loaded().checked.config.retention.clone();
            let retention = Retention {
                max_age: r.max_age_days.map(|d| Duration::from_secs(d * 86_400)),
                max_runs_per_probe: r.max_runs_per_probe,
                http_minutes_max_age: r
                    .http_minutes_max_age_days
                    .map(|d| Duration::from_secs(d * 86_400)),
                vacuum: Default::default(),
            };
            match self.inner.store.apply_retention(&retention).await {
                Ok(rep) if rep.runs + rep.findings + rep.collector_rows > 0 => tracing::info!(
                    runs = rep.runs,
                    findings = rep.findings,
                    collector_rows = rep.collector_rows,
                    "retention deleted old data"
                ),
                Ok(_) => {}
                Err(e) => tracing::error!("retention failed: {e}"),
            }
            tokio::time::sleep(Duration::from_secs(r.every_minutes * 60)).await;
        }
    }
}

/// Why an upload was refused.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("the component is larger than the {limit} bytes allowed (uploads.max_bytes)")]
    TooLarge { limit: usize },
    #[error("not a valid probe component: {0}")]
    Invalid(String),
    #[error("a probe named {0} is in the config file; uploads cannot replace it")]
    Conflict(String),
    #[error("cannot keep the component: {0}")]
    Io(String),
}

fn record_of(p: &ActiveProbe) -> crate::store::ProbeRecord {
    crate::store::ProbeRecord {
        name: p.name.clone(),
        origin: p.origin.describe(),
        version: p.prepared.info.version.clone(),
        enabled: p.enabled,
        schedule: p.schedule.as_ref().map(|s| s.source().to_string()),
        config: Some(p.prepared.config.clone()),
    }
}

/// Waits for SIGHUP and reloads, forever.
pub async fn reload_on_sighup(daemon: Daemon) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP; reload through the API");
        return;
    };
    while hup.recv().await.is_some() {
        tracing::info!("SIGHUP: reloading the config");
        if let Err(e) = daemon.reload().await {
            tracing::error!("reload refused, the old config stays in force: {e}");
        }
    }
}
