//! An etcd round trip, as KubeProber's: a key under the probe's prefix is
//! written, read back with its value, and deleted. Each step that fails is
//! named; the key is deleted even when the read failed.

use serde::Deserialize;
use sonde_sdk::bindings::sonde::probe::etcd as host;
use sonde_sdk::{Finding, ProbeError, log};

use crate::{ETCD_ROUND_TRIP, cluster_fault, error_text};

/// The prefix the probe asks a grant for.
pub const DEFAULT_PREFIX: &str = "/sonde-probe/";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the probe's key goes; must be inside the grant.
    pub prefix: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            prefix: DEFAULT_PREFIX.into(),
        }
    }
}

/// What went wrong at one step: a finding (the cluster's fault) or a log line.
fn step(key: &str, what: &str, e: &ProbeError, out: &mut Vec<Finding>) {
    if cluster_fault(e) {
        out.push(
            ETCD_ROUND_TRIP
                .cluster_finding(format!("etcd {what} of {key} failed: {}", error_text(e)))
                .label("step", what)
                .into(),
        );
    } else {
        log::error(&format!(
            "etcd round trip skipped at {what} of {key}: {}",
            error_text(e)
        ));
    }
}

/// Write, read back, delete.
pub fn run(config: &Config, out: &mut Vec<Finding>) {
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let key = format!("{}round-trip", config.prefix);
    let value = format!("sonde {nonce}");
    if let Err(e) = host::put(key.as_bytes(), value.as_bytes()) {
        return step(&key, "put", &e, out);
    }
    match host::get(key.as_bytes()) {
        Ok(Some(kv)) if kv.value == value.as_bytes() => {}
        Ok(Some(kv)) => out.push(
            ETCD_ROUND_TRIP
                .cluster_finding(format!(
                    "etcd get of {key} read {:?}, not the {value:?} just written",
                    String::from_utf8_lossy(&kv.value)
                ))
                .label("step", "get")
                .into(),
        ),
        Ok(None) => out.push(
            ETCD_ROUND_TRIP
                .cluster_finding(format!(
                    "etcd get of {key} found nothing just after the put"
                ))
                .label("step", "get")
                .into(),
        ),
        Err(e) => step(&key, "get", &e, out),
    }
    match host::delete(key.as_bytes()) {
        Ok(1) => {}
        Ok(n) => out.push(
            ETCD_ROUND_TRIP
                .cluster_finding(format!("etcd delete of {key} deleted {n} keys, not 1"))
                .label("step", "delete")
                .into(),
        ),
        Err(e) => step(&key, "delete", &e, out),
    }
}
