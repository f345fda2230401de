//! The smallest probe: one rule, no host call, one finding. Used to measure
//! the runtime's own cost per run.

#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use sonde_sdk::{Finding, Probe, ProbeError, ProbeInfo, Rule, Severity};

const ALIVE: Rule = Rule::new(
    "Alive",
    "Probe ran",
    "test",
    Severity::Info,
    "The probe ran.",
    "Nothing to do.",
);

struct Trivial;

impl Probe for Trivial {
    type Config = ();

    fn describe() -> ProbeInfo {
        sonde_sdk::describe("trivial", "0.1.0", "Returns one finding")
            .rules(&[ALIVE])
            .build()
    }

    fn run(_: ()) -> Result<Vec<Finding>, ProbeError> {
        Ok(vec![ALIVE.cluster_finding("alive").into()])
    }
}

sonde_sdk::export_probe!(Trivial);
