//! `sonde agent`: the node collectors, writing into a store or sending to a
//! daemon's API. `--check` loads them, prints which run and why the others
//! cannot, and exits.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use comfy_table::{Table, presets};

use super::{LogFormat, exit};
use crate::agent::{Agent, AgentConfig, DaemonSink, Sink, loader};
use crate::cluster::{self, ClusterSpec};
use crate::report::table::terminal_safe;
use crate::store::{OpenOptions, Store};

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The store to write into (the daemon's SQLite file, or one of its own) ...
    #[arg(long, value_name = "FILE", required_unless_present = "daemon")]
    store: Option<PathBuf>,
    /// ... or the daemon to send to (`http://HOST:PORT`, or `https://` when it serves `tls:`; its listen address
    /// or service): one agent per node, one daemon.
    #[arg(long, value_name = "URL", conflicts_with = "store")]
    daemon: Option<String>,
    /// The environment variable holding the agent token for `--daemon`
    /// (a token of role `agent` in the daemon's config; default
    /// SONDE_AGENT_TOKEN, none when it is unset).
    #[arg(long, value_name = "NAME", requires = "daemon")]
    token_env: Option<String>,
    /// The CA (PEM) an `https://` daemon's certificate is checked against
    /// (default: the public web roots).
    #[arg(long, value_name = "FILE", requires = "daemon")]
    daemon_ca: Option<PathBuf>,
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
    /// Load the collectors, print their state (and, with --daemon, whether
    /// the daemon takes this agent's data), and exit (4 when one cannot run
    /// or the daemon does not).
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
        http: Default::default(),
        etcd: Default::default(),
    };
    let connected = cluster::connect(&spec, false).await?;
    let sink = match (&args.store, &args.daemon) {
        (Some(path), _) => Sink::Store(
            Store::open_with(
                path,
                OpenOptions {
                    owner: false,
                    ..OpenOptions::default()
                },
            )
            .await?,
        ),
        (None, Some(url)) => Sink::Daemon(DaemonSink::with_ca(
            url,
            agent_token(&args)?,
            args.daemon_ca.as_deref(),
        )?),
        (None, None) => anyhow::bail!("--store or --daemon says where the agent writes"),
    };
    // A check loads the collectors to say which run, and writes nothing:
    // what they see meanwhile goes to a scratch store, dropped after.
    let scratch = if args.check {
        let dir = tempfile::tempdir()?;
        let store = Store::open_with(
            dir.path().join("check.db"),
            OpenOptions {
                owner: false,
                ..OpenOptions::default()
            },
        )
        .await?;
        Some((dir, Sink::Store(store)))
    } else {
        None
    };
    let writes_to = scratch.as_ref().map_or(&sink, |(_, s)| s).clone();
    let agent = Agent::start(config, writes_to, connected.services.kube.clone()).await?;
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
        if let Sink::Daemon(daemon) = &sink {
            match daemon.check().await {
                Ok(()) => println!("daemon: {} takes this agent's data", daemon.endpoint()),
                Err(e) => {
                    all = false;
                    println!("daemon: {}", terminal_safe(&loader::chain(&e)));
                }
            }
        }
        agent.shutdown().await;
        if let Some((_dir, scratch)) = &scratch {
            close(scratch).await;
        }
        close(&sink).await;
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
        sink.describe()
    );
    super::serve::shutdown_signal().await;
    tracing::info!("agent shutting down");
    agent.shutdown().await;
    close(&sink).await;
    Ok(exit::OK)
}

/// The agent token for `--daemon`: from `--token-env`'s variable, which
/// must then be set; else from SONDE_AGENT_TOKEN when it is set.
fn agent_token(args: &AgentArgs) -> Result<Option<String>> {
    match &args.token_env {
        Some(name) => match std::env::var(name) {
            Ok(t) if !t.trim().is_empty() => Ok(Some(t.trim().to_string())),
            _ => anyhow::bail!("--token-env {name}: the variable is not set"),
        },
        None => Ok(std::env::var(DEFAULT_TOKEN_ENV)
            .ok()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())),
    }
}

/// Where `--daemon` reads the agent token by default.
const DEFAULT_TOKEN_ENV: &str = "SONDE_AGENT_TOKEN";

async fn close(sink: &Sink) {
    if let Some(store) = sink.store() {
        store.close().await;
    }
}
