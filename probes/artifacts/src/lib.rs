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
}

/// Every built-in probe.
pub const BUILTIN: &[BuiltinProbe] = &[
    BuiltinProbe {
        name: "workload-audit",
        wasm: WORKLOAD_AUDIT,
    },
    BuiltinProbe {
        name: "rbac-audit",
        wasm: RBAC_AUDIT,
    },
    BuiltinProbe {
        name: "node-audit",
        wasm: NODE_AUDIT,
    },
    BuiltinProbe {
        name: "event-audit",
        wasm: EVENT_AUDIT,
    },
    BuiltinProbe {
        name: "pod-audit",
        wasm: POD_AUDIT,
    },
    BuiltinProbe {
        name: "control-plane-audit",
        wasm: CONTROL_PLANE_AUDIT,
    },
    BuiltinProbe {
        name: "kernel-audit",
        wasm: KERNEL_AUDIT,
    },
    BuiltinProbe {
        name: "node-signals",
        wasm: NODE_SIGNALS,
    },
    BuiltinProbe {
        name: "rego",
        wasm: REGO,
    },
    BuiltinProbe {
        name: "schema-checks",
        wasm: SCHEMA_CHECKS,
    },
];
