//! Per-run limits: time, memory and output. Each is configurable per probe;
//! the defaults suit the built-in probes on a large cluster.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The limits one run is held to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunLimits {
    /// Wall-clock deadline for `run` (and, separately, for `describe`), in milliseconds.
    pub timeout_ms: u64,
    /// Linear memory cap of the guest, in bytes.
    pub memory_bytes: u64,
    /// Most findings one run may return.
    pub max_findings: usize,
    /// Most bytes of findings (messages, remedies, labels, resources) one run may return.
    pub max_output_bytes: usize,
    /// Most log lines (the `log` interface) one run may write.
    pub max_log_lines: usize,
    /// Most bytes of log text one run may write (lines and guest stdout/stderr).
    pub max_log_bytes: usize,
    /// Largest single HTTP body or pod log handed to the guest, in bytes.
    pub max_response_bytes: usize,
}

impl Default for RunLimits {
    fn default() -> Self {
        RunLimits {
            timeout_ms: 60_000,
            memory_bytes: 512 << 20,
            max_findings: 1_000_000,
            max_output_bytes: 256 << 20,
            max_log_lines: 10_000,
            max_log_bytes: 1 << 20,
            max_response_bytes: 4 << 20,
        }
    }
}

impl RunLimits {
    /// The deadline as a duration.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// Checks the values make sense; `max_memory` is the engine's ceiling.
    pub fn validate(&self, max_memory: u64) -> Result<(), String> {
        if self.timeout_ms == 0 {
            return Err("limits.timeout_ms must be greater than 0".into());
        }
        if self.memory_bytes < (1 << 20) || self.memory_bytes > max_memory {
            return Err(format!(
                "limits.memory_bytes must be between 1 MiB and {} MiB, got {}",
                max_memory >> 20,
                self.memory_bytes
            ));
        }
        Ok(())
    }
}

/// Largest size a single finding field may have; longer text is cut with a marker.
pub const MAX_FIELD_BYTES: usize = 8 * 1024;
/// Most labels a finding may carry.
pub const MAX_LABELS: usize = 32;
