//! Sonde: a Kubernetes inspection runtime. Probes are WebAssembly components
//! (the `sonde:probe` WIT world in `wit/`) run in a sandbox with only the
//! capabilities the operator granted; their findings become reports.
//!
//! - `bindings`: the host side of the WIT world.
//! - `runtime`: the engine, component loading and caching, limits, one run.
//! - `caps`: one module per WIT interface, each checking `grants`.
//! - `kube`: where Kubernetes reads come from (the snapshot backend).
//! - `builtin`: the probes shipped inside the binary.
//! - `audit`: running probes over a cluster and collecting their outcomes.
//! - `report`: rendering an audit (table, JSON, YAML).
//! - `cli`: the `sonde` command line.

pub mod audit;
pub mod bindings;
pub mod builtin;
pub mod caps;
pub mod cli;
pub mod grants;
pub mod kube;
pub mod report;
pub mod runtime;
