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
//! - `posture`: exemptions and the 0-100 score, over an inventory of the cluster.
//! - `report`: rendering an audit (table, JSON, YAML).
//! - `custom_rules`: the operator's Rego and rule.yaml files, as probe config.
//! - `cli`: the `sonde` command line.
//! - `store`: the daemon's SQLite store of probes, runs and findings across runs.
//! - `cluster`: connecting to a snapshot or a live cluster (CLI and daemon).
//! - `daemon`: `sonde serve`: config, scheduler, dispatcher, JSON API, web UI.
//! - `collectors`: the node collectors probes query (catalogue, query engine).
//! - `agent`: `sonde agent`: the eBPF collectors on a node, attributed to pods.
//! - `kube_audit`: the API server's audit records (webhook batches, log lines).
//! - `kube_events`: the cluster's events as rows kept past their hour.

pub mod agent;
pub mod audit;
pub mod bindings;
pub mod builtin;
pub mod caps;
pub mod cli;
pub mod cluster;
pub mod collectors;
pub mod custom_rules;
pub mod daemon;
pub mod errors;
pub mod grants;
pub mod kube;
pub mod kube_audit;
pub mod kube_events;
pub mod posture;
pub mod report;
pub mod runtime;
pub mod store;
