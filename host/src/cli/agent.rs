//! `sonde agent`: the node collectors, writing into a store. `--check`
//! loads them, prints which run and why the others cannot, and exits.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use comfy_table::{Table, presets};

use super::{LogFormat, exit};
use crate::agent::{Agent, AgentConfig, loader};
use crate::cluster::{self, ClusterSpec};
use crate::report::table::terminal_safe;
use crate::store::{OpenOptions, Store};

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The store to write into (the daemon's SQLite file, or one of its own).
    #[arg(long, value_name = "FILE")]
    store: PathBuf,
    /// The agent's settings (YAML): node, collectors, http, tcp, intervals, retention.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// The node's name (default: $NODE_NAME, else the host name).
    #[arg(long, value_name = "NAME")]
    node: Option<String>,
    /// Collectors to run, comma-separated (default: all).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    collectors: Vec<String>,
    /// The cgroup v2 folder whose sockets the HTTP collector watches
    /// (default: the kubelet's pods folder, kubepods.slice or kubepods;
    /// the cgroup v2 root, every socket, where there is none) ...
    #[arg(long, value_name = "DIR", conflicts_with = "http_interface")]
    http_cgroup: Option<PathBuf>,
    /// ... or a socket filter on this interface instead (lo, cni0, ...).
    #[arg(long, value_name = "IFACE")]
    http_interface: Option<String>,
    /// A server port the HTTP collector keeps; repeatable (default: all).
    #[arg(long = "http-port", value_name = "PORT")]
    http_ports: Vec<u16>,
    /// Pods are named from this snapshot (folder or dump) ...
    #[arg(long, value_name = "PATH", conflicts_with_all = ["kubeconfig", "context"])]
    snapshot: Option<PathBuf>,
    /// ... or from a live cluster.
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    #[arg(long, value_name = "NAME")]
    context: Option<String>,
    /// Load the collectors, print their state, and exit (4 when one cannot run).
    #[arg(long)]
    check: bool,
    /// Log lines as text or JSON.
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

pub async fn agent(args: AgentArgs) -> Result<u8> {
    let mut config = match &args.config {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            serde_yaml::from_str::<AgentConfig>(&text)
                .with_context(|| format!("{}: invalid agent config", p.display()))?
        }
        None => AgentConfig::default(),
    };
    if args.node.is_some() {
        config.node = args.node.clone();
    }
    if !args.collectors.is_empty() {
        config.collectors = args.collectors.clone();
    }
    if args.http_interface.is_some() {
        config.http.interface = args.http_interface.clone();
        config.http.cgroup = None;
    }
    if args.http_cgroup.is_some() {
        config.http.cgroup = args.http_cgroup.clone();
        config.http.interface = None;
    }
    if !args.http_ports.is_empty() {
        config.http.ports = args.http_ports.clone();
    }
    let problems = config.problems("");
    if !problems.is_empty() {
        anyhow::bail!("invalid agent settings: {}", problems.join("; "));
    }
    let spec = ClusterSpec {
        snapshot: args.snapshot.clone(),
        kubeconfig: args.kubeconfig.clone(),
        context: args.context.clone(),
        qps: 20.0,
        burst: 40,
        dns_servers: Vec::new(),
        watch_cache: false,
    };
    let connected = cluster::connect(&spec, false).await?;
    let store = Store::open_with(
        &args.store,
        OpenOptions {
            owner: false,
            ..OpenOptions::default()
        },
    )
    .await?;
    let agent = Agent::start(config, store.clone(), connected.services.kube.clone()).await?;
    let status = agent.status();
    if args.check {
        let mut table = Table::new();
        table.load_style(presets::UTF8_FULL_CONDENSED);
        table.set_header(["collector", "state", "reason"]);
        let mut all = true;
        for s in &status {
            let disabled = s.reason.as_deref() == Some(loader::DISABLED);
            all &= s.available || disabled;
            let state = match (s.available, disabled) {
                (true, _) => "running",
                (false, true) => "disabled",
                (false, false) => "unavailable",
            };
            table.add_row([
                s.collector.clone(),
                state.to_string(),
                terminal_safe(s.reason.as_deref().unwrap_or("")),
            ]);
        }
        println!("{table}");
        agent.shutdown().await;
        store.close().await;
        return Ok(if all { exit::OK } else { exit::INCOMPLETE });
    }
    let running: Vec<&str> = status
        .iter()
        .filter(|s| s.available)
        .map(|s| s.collector.as_str())
        .collect();
    eprintln!(
        "sonde agent: {} running ({}), writing to {}",
        running.len(),
        running.join(", "),
        args.store.display()
    );
    super::serve::shutdown_signal().await;
    tracing::info!("agent shutting down");
    agent.shutdown().await;
    store.close().await;
    Ok(exit::OK)
}
