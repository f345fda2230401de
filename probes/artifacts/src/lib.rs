//! Sonde's WebAssembly probes, built by this crate's build script for
//! `wasm32-wasip2`: the built-in probes are embedded here (so the host finds
//! them without any file to copy), and every guest's path is exported for
//! tests and benchmarks.

include!(concat!(env!("OUT_DIR"), "/guests.rs"));

/// A probe shipped inside the `sonde` binary.
#[derive(Debug, Clone, Copy)]
pub struct BuiltinProbe {
    /// The name `--probe` selects it by (the same as its `describe()` name).
    pub name: &'static str,
    /// The component.
    pub wasm: &'static [u8],
    /// Part of the default audit (`sonde audit` without `--probe`, the demo):
    /// reads only. Probes that act on the cluster (send traffic, write) run
    /// only when named.
    pub audit: bool,
}

/// Every built-in probe.
pub const BUILTIN: &[BuiltinProbe] = &[
    BuiltinProbe {
        name: "workload-audit",
        wasm: WORKLOAD_AUDIT,
        audit: true,
    },
    BuiltinProbe {
        name: "rbac-audit",
        wasm: RBAC_AUDIT,
        audit: true,
    },
    BuiltinProbe {
        name: "node-audit",
        wasm: NODE_AUDIT,
        audit: true,
    },
    BuiltinProbe {
        name: "event-audit",
        wasm: EVENT_AUDIT,
        audit: true,
    },
    BuiltinProbe {
        name: "pod-audit",
        wasm: POD_AUDIT,
        audit: true,
    },
    BuiltinProbe {
        name: "control-plane-audit",
        wasm: CONTROL_PLANE_AUDIT,
        audit: true,
    },
    BuiltinProbe {
        name: "active-checks",
        wasm: ACTIVE_CHECKS,
        audit: false,
    },
    BuiltinProbe {
        name: "kernel-audit",
        wasm: KERNEL_AUDIT,
        audit: true,
    },
    BuiltinProbe {
        name: "node-signals",
        wasm: NODE_SIGNALS,
        audit: true,
    },
    BuiltinProbe {
        name: "audit-activity",
        wasm: AUDIT_ACTIVITY,
        audit: true,
    },
    BuiltinProbe {
        name: "rego",
        wasm: REGO,
        audit: true,
    },
    BuiltinProbe {
        name: "schema-checks",
        wasm: SCHEMA_CHECKS,
        audit: true,
    },
];
