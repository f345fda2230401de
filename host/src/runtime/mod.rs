//! The sandboxed probe runtime: one wasmtime `Engine` (pooling allocator,
//! epoch interruption), components compiled once and cached, and a fresh
//! `Store` per run held to the run's limits. Whatever a guest does (trap,
//! loop, allocate, flood) ends as a `RunOutcome`; it never takes the host down.

pub mod cache;
pub mod component;
pub mod limits;
pub mod outcome;
pub mod state;
mod verdict;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::Instrument;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, UpdateDeadline,
};

use crate::bindings::{Probe, ProbeInfo, ProbePre};
use crate::caps::HostServices;
use crate::grants::GrantSet;

pub use cache::ComponentCache;
pub use component::{LoadError, WorldSummary};
pub use limits::RunLimits;
pub use outcome::{Denial, FailureReason, LogLevel, LogLine, RunOutcome, RunStatus};
pub use state::{CreatedObject, LimitTrap, RunContext, RunState};
/// Text cut to a byte budget on a character boundary, marked `…[truncated]`.
pub use verdict::cut;

/// How instance memory is allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allocator {
    /// Pre-reserved slots: instantiation in microseconds.
    Pooling,
    /// mmap per instance: slower to instantiate, no reservation.
    OnDemand,
}

/// Engine-wide settings.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    pub allocator: Allocator,
    /// Highest per-run memory cap a probe may be given.
    pub max_memory_bytes: u64,
    /// How many probe instances may exist at once (pooling slots).
    pub max_instances: u32,
    /// Where precompiled components are kept; `None` disables the disk cache.
    pub cache_dir: Option<PathBuf>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            allocator: Allocator::Pooling,
            max_memory_bytes: 4 << 30,
            max_instances: 64,
            cache_dir: ComponentCache::default_dir(),
        }
    }
}

/// The runtime could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot start the WebAssembly runtime: {0}")]
pub struct RuntimeError(String);

/// A compiled, linked probe, ready to instantiate (cloning shares the compiled code).
#[derive(Clone)]
pub struct LoadedProbe {
    /// Where it came from (a path, or `builtin:NAME`).
    pub origin: String,
    pub world: WorldSummary,
    /// Whether the compiled artifact came from the disk cache.
    pub from_cache: bool,
    pre: ProbePre<RunState>,
}

/// What one run is given.
pub struct RunRequest {
    pub run_id: String,
    /// The probe's config as JSON text.
    pub config: String,
    pub grants: GrantSet,
    pub limits: RunLimits,
    pub services: Arc<HostServices>,
}

/// The engine, linker and cache shared by every run. Cloning is cheap and
/// shares them (so runs can be spawned on other threads).
#[derive(Clone)]
pub struct ProbeRuntime {
    engine: Engine,
    linker: Linker<RunState>,
    cache: Option<ComponentCache>,
    config: RuntimeConfig,
    _ticker: Arc<EpochTicker>,
}

const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Advances the engine's epoch so running guests yield and check their deadline.
struct EpochTicker {
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl EpochTicker {
    fn start(engine: &Engine) -> Self {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (flag, weak) = (stop.clone(), engine.weak());
        std::thread::Builder::new()
            .name("sonde-epoch".into())
            .spawn(move || {
                while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    match weak.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })
            .expect("spawning the epoch thread");
        EpochTicker { stop }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

impl ProbeRuntime {
    /// Builds the engine and the linker with every `sonde:probe` interface and WASI.
    pub fn new(config: RuntimeConfig) -> Result<Self, RuntimeError> {
        let mut wasm = Config::new();
        wasm.epoch_interruption(true)
            .wasm_component_model(true)
            .max_wasm_stack(1 << 20)
            .async_stack_size(4 << 20);
        if config.allocator == Allocator::Pooling {
            let mut pool = PoolingAllocationConfig::default();
            let n = config.max_instances;
            pool.total_component_instances(n)
                .total_core_instances(n * 8)
                .total_memories(n * 2)
                .total_tables(n * 8)
                .total_stacks(n)
                .max_memories_per_component(4)
                .max_tables_per_component(16)
                .max_core_instances_per_component(64)
                .max_memory_size(config.max_memory_bytes as usize)
                .max_component_instance_size(4 << 20)
                .max_core_instance_size(4 << 20);
            wasm.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        }
        let engine = Engine::new(&wasm).map_err(|e| RuntimeError(format!("{e:#}")))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| RuntimeError(format!("{e:#}")))?;
        Probe::add_to_linker::<RunState, HasSelf<RunState>>(&mut linker, |s| s)
            .map_err(|e| RuntimeError(format!("{e:#}")))?;
        let cache = config.cache_dir.clone().map(ComponentCache::new);
        let ticker = EpochTicker::start(&engine);
        Ok(ProbeRuntime {
            engine,
            linker,
            cache,
            config,
            _ticker: Arc::new(ticker),
        })
    }

    /// The engine (for tools that inspect components).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The largest memory cap a run may have.
    pub fn max_memory_bytes(&self) -> u64 {
        self.config.max_memory_bytes
    }

    /// Reads and loads a component file.
    pub fn load_file(&self, path: &Path) -> Result<LoadedProbe, LoadError> {
        let origin = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
            origin: origin.clone(),
            source,
        })?;
        self.load_bytes(&origin, &bytes)
    }

    /// Validates, compiles (or loads from the cache) and links a component.
    pub fn load_bytes(&self, origin: &str, bytes: &[u8]) -> Result<LoadedProbe, LoadError> {
        component::check_kind(origin, bytes)?;
        let invalid = |e: wasmtime::Error| LoadError::Invalid {
            origin: origin.into(),
            message: format!("{e:#}"),
        };
        let (component, from_cache) = match &self.cache {
            Some(cache) => cache
                .load_or_compile(&self.engine, bytes)
                .map_err(invalid)?,
            None => (Component::new(&self.engine, bytes).map_err(invalid)?, false),
        };
        let world = component::world_of(&self.engine, &component);
        component::check_world(origin, &world)?;
        let pre = self.linker.instantiate_pre(&component).map_err(invalid)?;
        let pre = ProbePre::new(pre).map_err(invalid)?;
        Ok(LoadedProbe {
            origin: origin.to_string(),
            world,
            from_cache,
            pre,
        })
    }

    fn store(&self, ctx: RunContext) -> Store<RunState> {
        let deadline = ctx.started + ctx.limits.timeout();
        let mut store = Store::new(&self.engine, RunState::new(ctx));
        store.limiter(|s| &mut s.limiter);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline {
                Err(wasmtime::Error::new(LimitTrap::Deadline))
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        store
    }

    /// Calls `describe()` in a fresh instance with no grant, under `limits`.
    pub async fn describe(
        &self,
        probe: &LoadedProbe,
        limits: &RunLimits,
    ) -> Result<ProbeInfo, FailureReason> {
        let ctx = RunContext::new(
            probe.origin.clone(),
            "describe".into(),
            GrantSet::default(),
            limits.clone(),
            Arc::new(HostServices::default()),
        );
        let mut store = self.store(ctx);
        let call = async {
            let instance = probe.pre.instantiate_async(&mut store).await?;
            instance.call_describe(&mut store).await
        };
        let result = tokio::time::timeout(limits.timeout() + Duration::from_secs(1), call).await;
        match result {
            Ok(Ok(info)) => verdict::check_info(info),
            Ok(Err(e)) => Err(verdict::classify(&e, store.data())),
            Err(_) => Err(FailureReason::Timeout {
                limit_ms: limits.timeout_ms,
            }),
        }
    }

    /// One run: the grant check, instantiation, `run(config)` under the limits,
    /// and the findings checked and capped. Always returns an outcome.
    pub async fn run(&self, probe: &LoadedProbe, info: &ProbeInfo, req: RunRequest) -> RunOutcome {
        let span = tracing::info_span!("probe_run", probe = %info.name, run = %req.run_id);
        self.run_in_span(probe, info, req).instrument(span).await
    }

    async fn run_in_span(
        &self,
        probe: &LoadedProbe,
        info: &ProbeInfo,
        req: RunRequest,
    ) -> RunOutcome {
        let started = Instant::now();
        let mut outcome = RunOutcome {
            probe: info.name.clone(),
            run_id: req.run_id.clone(),
            status: RunStatus::Failed,
            reason: None,
            findings: Vec::new(),
            logs: Vec::new(),
            denials: Vec::new(),
            duration: Duration::ZERO,
        };
        let missing = req.grants.missing(&info.capabilities);
        if !missing.is_empty() {
            outcome.reason = Some(FailureReason::Refused {
                missing: missing.into_iter().map(|m| m.0).collect(),
            });
            tracing::warn!(reason = %outcome.reason.as_ref().map(|r| r.to_string()).unwrap_or_default(), "run refused");
            return outcome;
        }
        if let Err(e) = req.limits.validate(self.config.max_memory_bytes) {
            outcome.reason = Some(FailureReason::Load { message: e });
            return outcome;
        }
        let mut ctx = RunContext::new(
            info.name.clone(),
            req.run_id,
            req.grants,
            req.limits.clone(),
            req.services,
        );
        ctx.started = started;
        let mut store = self.store(ctx);
        let call = async {
            let instance = probe.pre.instantiate_async(&mut store).await?;
            instance.call_run(&mut store, &req.config).await
        };
        let result =
            tokio::time::timeout(req.limits.timeout() + Duration::from_secs(1), call).await;
        let result = match result {
            Ok(Ok(Ok(findings))) => {
                verdict::check_findings(findings, info, &mut store.data_mut().ctx)
            }
            Ok(Ok(Err(error))) => Err(FailureReason::ProbeError { error }),
            Ok(Err(e)) => Err(verdict::classify(&e, store.data())),
            Err(_) => Err(FailureReason::Timeout {
                limit_ms: req.limits.timeout_ms,
            }),
        };
        let mut state = store.into_data();
        state.ctx.clean_up().await;
        outcome.logs = verdict::collect_logs(&state);
        outcome.denials = state.ctx.denials;
        match result {
            Ok(findings) => {
                outcome.status = RunStatus::Succeeded;
                outcome.findings = findings;
            }
            Err(reason) => outcome.reason = Some(reason),
        }
        outcome.duration = started.elapsed();
        tracing::info!(
            status = ?outcome.status,
            findings = outcome.findings.len(),
            denials = outcome.denials.len(),
            ms = outcome.duration.as_millis() as u64,
            reason = %outcome.reason.as_ref().map(|r| r.to_string()).unwrap_or_default(),
            "run finished"
        );
        outcome
    }
}
