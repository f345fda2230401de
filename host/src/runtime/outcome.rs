//! What a run produced: its status, the reason it failed, its findings, its
//! log lines and the calls that were denied. Serialisable as is for reports.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::bindings::{Finding, ProbeError};

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Succeeded,
    Failed,
}

/// Why a run failed. Each variant reads as a sentence for the operator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum FailureReason {
    /// The probe asked for capabilities its grant does not cover; it did not run.
    #[error("refused: the probe needs capabilities it was not granted: {}", missing.join("; "))]
    Refused { missing: Vec<String> },
    /// The wall-clock deadline passed.
    #[error("timed out after {limit_ms} ms")]
    Timeout { limit_ms: u64 },
    /// The guest tried to grow its memory past the cap.
    #[error(
        "memory limit exceeded: the probe asked for {requested} bytes, the limit is {limit} bytes"
    )]
    MemoryLimit { requested: u64, limit: u64 },
    /// The guest produced more output than allowed.
    #[error("output limit exceeded: {what}")]
    OutputLimit { what: String },
    /// The guest's call stack overflowed (for example, runaway recursion).
    #[error("stack overflow in the probe")]
    StackOverflow,
    /// The guest panicked; the message is its panic text.
    #[error("the probe panicked: {message}")]
    Panic { message: String },
    /// Any other WebAssembly trap.
    #[error("the probe trapped: {message}")]
    Trap { message: String },
    /// The probe returned an error.
    #[error("the probe returned an error: {}", error.text())]
    ProbeError { error: ProbeError },
    /// The component could not be loaded or instantiated.
    #[error("cannot load the probe: {message}")]
    Load { message: String },
    /// The host failed while running the probe (a bug in Sonde, not the probe).
    #[error("the host failed while running the probe: {message}")]
    Host { message: String },
}

/// Severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// One line of a run's log: from the probe's `log` calls, its stderr/stdout, or the host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    /// Milliseconds since the run started.
    pub at_ms: u64,
    pub level: LogLevel,
    /// `probe`, `stderr`, `stdout` or `host`.
    pub source: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<(String, String)>,
}

/// A host call refused because it was outside the grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Denial {
    /// `kube`, `dns`, `http`, `etcd` or `collectors`.
    pub capability: String,
    /// What was asked, e.g. `get v1/Secret shop/db-credentials`.
    pub detail: String,
}

/// Everything one run produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunOutcome {
    pub probe: String,
    pub run_id: String,
    pub status: RunStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<FailureReason>,
    pub findings: Vec<Finding>,
    pub logs: Vec<LogLine>,
    pub denials: Vec<Denial>,
    #[serde(with = "duration_ms")]
    pub duration: Duration,
}

impl RunOutcome {
    /// A run that failed because of the host, with nothing from the probe.
    pub fn host_failure(probe: String, run_id: String, message: String) -> Self {
        RunOutcome {
            probe,
            run_id,
            status: RunStatus::Failed,
            reason: Some(FailureReason::Host { message }),
            findings: Vec::new(),
            logs: Vec::new(),
            denials: Vec::new(),
            duration: Duration::ZERO,
        }
    }

    /// Whether the run succeeded.
    pub fn succeeded(&self) -> bool {
        self.status == RunStatus::Succeeded
    }
}

mod duration_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64() * 1000.0)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_secs_f64(f64::deserialize(d)? / 1000.0))
    }
}
