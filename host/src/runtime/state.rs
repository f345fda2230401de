//! The data a run's `Store` holds: the WASI context (no files, no network,
//! captured stdio), the memory limiter, and the run context every capability
//! consults (grant, limits, services, log and denial records).

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime::{Error as WasmError, ResourceLimiter};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::limits::RunLimits;
use super::outcome::{Denial, LogLevel, LogLine};
use crate::caps::HostServices;
use crate::grants::GrantSet;

/// A limit broken inside a host call: raised as a trap so the guest stops.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitTrap {
    /// Too many log lines or bytes.
    #[error("output limit exceeded: {0}")]
    Output(String),
    /// The run's deadline passed.
    #[error("deadline exceeded")]
    Deadline,
    /// The guest asked for more memory than its cap.
    #[error("memory limit exceeded")]
    Memory,
}

/// Caps linear-memory growth and remembers the request that broke the cap.
pub struct MemoryLimiter {
    pub limit: u64,
    pub exceeded: Option<u64>,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired as u64 > self.limit {
            self.exceeded = Some(desired as u64);
            return Err(WasmError::new(LimitTrap::Memory));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// What capabilities see of the run.
pub struct RunContext {
    pub probe: String,
    pub run_id: String,
    pub grants: GrantSet,
    pub limits: RunLimits,
    pub services: Arc<HostServices>,
    pub started: Instant,
    pub logs: Vec<LogLine>,
    pub log_bytes: usize,
    pub denials: Vec<Denial>,
    /// Objects the probe created, deleted when the run ends.
    pub created: Vec<CreatedObject>,
}

/// An object a probe created through the `kube` interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedObject {
    pub kind: crate::kube::KindRef,
    pub namespace: Option<String>,
    pub name: String,
}

impl RunContext {
    /// A context for a run starting now.
    pub fn new(
        probe: String,
        run_id: String,
        grants: GrantSet,
        limits: RunLimits,
        services: Arc<HostServices>,
    ) -> Self {
        RunContext {
            probe,
            run_id,
            grants,
            limits,
            services,
            started: Instant::now(),
            logs: Vec::new(),
            log_bytes: 0,
            denials: Vec::new(),
            created: Vec::new(),
        }
    }

    /// What is left of the run's time limit (zero once it has passed).
    pub fn time_left(&self) -> Duration {
        (self.started + self.limits.timeout()).saturating_duration_since(Instant::now())
    }

    /// Deletes every object the probe created (and did not delete itself), newest first.
    pub async fn clean_up(&mut self) {
        let Some(backend) = self.services.kube.clone() else {
            return;
        };
        while let Some(obj) = self.created.pop() {
            let what = format!(
                "{} {}/{}",
                obj.kind,
                obj.namespace.as_deref().unwrap_or(""),
                obj.name
            );
            match backend
                .delete(&obj.kind, obj.namespace.as_deref(), &obj.name)
                .await
            {
                Ok(()) => self.host_note(
                    LogLevel::Info,
                    format!("deleted {what}, created by the run"),
                ),
                Err(crate::kube::KubeError::NotFound(_)) => {}
                Err(e) => self.host_note(
                    LogLevel::Error,
                    format!("could not delete {what}, created by the run: {e}"),
                ),
            }
        }
    }

    /// Records a call refused by the grant and returns the message for the guest.
    pub fn deny(&mut self, capability: &str, detail: String) -> String {
        let message = format!("{capability} access not granted: {detail}");
        tracing::info!(probe = %self.probe, run = %self.run_id, capability, %detail, "denied");
        self.denials.push(Denial {
            capability: capability.to_string(),
            detail,
        });
        message
    }

    /// Appends a log line, enforcing the line and byte caps.
    pub fn push_log(
        &mut self,
        level: LogLevel,
        source: &str,
        message: String,
        fields: Vec<(String, String)>,
    ) -> Result<(), LimitTrap> {
        let size = message.len() + fields.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
        if self.logs.len() >= self.limits.max_log_lines {
            return Err(LimitTrap::Output(format!(
                "more than {} log lines",
                self.limits.max_log_lines
            )));
        }
        if self.log_bytes + size > self.limits.max_log_bytes {
            return Err(LimitTrap::Output(format!(
                "more than {} bytes of log",
                self.limits.max_log_bytes
            )));
        }
        self.log_bytes += size;
        self.logs.push(LogLine {
            at_ms: self.started.elapsed().as_millis() as u64,
            level,
            source: source.to_string(),
            message,
            fields,
        });
        Ok(())
    }

    /// A host-side note in the run's log (not counted against the probe's caps).
    pub fn host_note(&mut self, level: LogLevel, message: String) {
        self.logs.push(LogLine {
            at_ms: self.started.elapsed().as_millis() as u64,
            level,
            source: "host".into(),
            message,
            fields: Vec::new(),
        });
    }
}

/// The `T` of `Store<T>` for one run.
pub struct RunState {
    pub wasi: WasiCtx,
    pub table: ResourceTable,
    pub limiter: MemoryLimiter,
    pub stdout: MemoryOutputPipe,
    pub stderr: MemoryOutputPipe,
    pub ctx: RunContext,
}

impl RunState {
    /// A fresh state: WASI with no preopens, no environment, no sockets, stdio captured.
    pub fn new(ctx: RunContext) -> Self {
        let cap = ctx.limits.max_log_bytes;
        let stdout = MemoryOutputPipe::new(cap);
        let stderr = MemoryOutputPipe::new(cap);
        let wasi = WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        RunState {
            wasi,
            table: ResourceTable::new(),
            limiter: MemoryLimiter {
                limit: ctx.limits.memory_bytes,
                exceeded: None,
            },
            stdout,
            stderr,
            ctx,
        }
    }
}

impl WasiView for RunState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}
