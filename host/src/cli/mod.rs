//! The `sonde` command line: argument parsing, logging set-up, exit codes.
//! Each subcommand lives in its own module.

mod agent;
mod audit;
mod probe;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::report::Format;

/// Exit codes, documented in `sonde --help` and the README.
pub mod exit {
    /// The command succeeded and no finding reached `--fail-on`.
    pub const OK: u8 = 0;
    /// Sonde itself failed: unreadable input, a probe that cannot be loaded, a bad flag value.
    pub const ERROR: u8 = 1;
    /// The command line could not be parsed (clap's own code).
    pub const USAGE: u8 = 2;
    /// Some finding is at or above `--fail-on`.
    pub const FINDINGS: u8 = 3;
    /// The audit is incomplete: a probe run failed or logged an error (a rule file that
    /// does not parse), or an input file could not be read.
    pub const INCOMPLETE: u8 = 4;
}

const AFTER_HELP: &str = "Exit codes: 0 success; 1 error (bad input, probe cannot be loaded); \
2 usage; 3 a finding at or above --fail-on; 4 incomplete (a probe run failed or logged an \
error, e.g. a rule file that does not parse, or an input file could not be read; findings are \
still reported).\n\
Logging: -v/-vv or SONDE_LOG (e.g. SONDE_LOG=sonde=debug).";

/// Sonde inspects Kubernetes clusters with sandboxed WebAssembly probes.
#[derive(Debug, Parser)]
#[command(name = "sonde", version, about, after_help = AFTER_HELP)]
pub struct Cli {
    /// More log output on stderr (-v info, -vv debug).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Audit a cluster snapshot with the built-in probes (or the ones named).
    Audit(AuditArgs),
    /// Run one probe component: the dev loop for probe authors.
    Run(RunArgs),
    /// Inspect and list probes.
    #[command(subcommand)]
    Probe(ProbeCommand),
    /// Run the daemon: probes on their schedules, the store, the JSON API and the web UI.
    Serve(serve::ServeArgs),
    /// Run the node's eBPF collectors (OOM kills, execs, TCP, listen queues, HTTP RED) into a store.
    Agent(agent::AgentArgs),
    /// List every rule of the built-in probes (id, category, severity, description).
    Rules {
        /// Print JSON instead of a table (the same as `-o json`).
        #[arg(long, conflicts_with = "output")]
        json: bool,
        /// Output format.
        #[arg(short, long, value_enum, default_value = "table")]
        output: probe::RulesFormat,
    },
}

/// Where the cluster comes from, and how to report.
#[derive(Debug, Args)]
struct ReportArgs {
    /// A folder of manifests (YAML/JSON, recursively) or a `kubectl get -o yaml` dump.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["kubeconfig", "context"])]
    snapshot: Option<PathBuf>,
    /// A kubeconfig file (default: KUBECONFIG, then ~/.kube/config, then in-cluster).
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (default: its current context).
    #[arg(long, value_name = "NAME")]
    context: Option<String>,
    /// Client-side limit on API requests per second (sustained).
    #[arg(long, value_name = "N", default_value_t = 50.0)]
    qps: f64,
    /// Requests allowed at once above --qps.
    #[arg(long, value_name = "N", default_value_t = 100)]
    burst: u32,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "table")]
    output: Format,
    /// Exit with code 3 when a finding is at or above this severity (info, low, medium, high, critical).
    #[arg(long, value_name = "SEVERITY")]
    fail_on: Option<crate::bindings::Severity>,
    /// Nameserver (`ip[:port]`) for probes' DNS lookups; default: the system's.
    #[arg(long, value_name = "ADDR")]
    dns_server: Vec<String>,
    /// A PEM file of CAs trusted, besides the system's, by probes' https requests that
    /// verify the server (e.g. the cluster's CA); repeatable.
    #[arg(long, value_name = "FILE")]
    http_ca: Vec<PathBuf>,
    /// An etcd client URL (e.g. https://10.0.0.1:2379) for probes granted etcd keys; repeatable.
    #[arg(long, value_name = "URL")]
    etcd_endpoint: Vec<String>,
    /// The CA of etcd's serving certificate (kubeadm: /etc/kubernetes/pki/etcd/ca.crt).
    #[arg(long, value_name = "FILE")]
    etcd_ca: Option<PathBuf>,
    /// A client certificate for etcd (kubeadm: apiserver-etcd-client.crt), with --etcd-key.
    #[arg(long, value_name = "FILE", requires = "etcd_key")]
    etcd_cert: Option<PathBuf>,
    /// The client certificate's key.
    #[arg(long, value_name = "FILE", requires = "etcd_cert")]
    etcd_key: Option<PathBuf>,
    /// A user of etcd's own authentication, with --etcd-password-file (https only).
    #[arg(long, value_name = "NAME", requires = "etcd_password_file")]
    etcd_user: Option<String>,
    /// The file holding that user's password.
    #[arg(long, value_name = "FILE", requires = "etcd_user")]
    etcd_password_file: Option<PathBuf>,
    /// Exemptions (YAML): findings to leave out by rule, namespace, kind, name and probe.
    #[arg(long, value_name = "FILE")]
    exemptions: Option<PathBuf>,
    /// Ignore the `sonde.dev/exempt` and `sonde.dev/exempt-<rule>` annotations on objects.
    #[arg(long)]
    no_annotation_exemptions: bool,
}

#[derive(Debug, Args)]
struct AuditArgs {
    #[command(flatten)]
    report: ReportArgs,
    /// A built-in probe name or a .wasm component; repeatable. Default: every built-in probe
    /// that only reads (all but active-checks).
    #[arg(long = "probe", value_name = "NAME|FILE")]
    probes: Vec<String>,
    /// KubeEye OPA rules: every *.rego file below DIR (as `kubeeye audit -p DIR`), for the
    /// `rego` probe; repeatable.
    #[arg(long = "rego", value_name = "DIR")]
    rego: Vec<PathBuf>,
    /// KubeEye/Polaris JSON-schema checks: a rule.yaml (as `ke diag -f FILE`), for the
    /// `schema-checks` probe; repeatable.
    #[arg(long = "checks", value_name = "FILE")]
    checks: Vec<PathBuf>,
    /// A built-in probe's config, JSON or YAML (e.g.
    /// `control-plane-audit=cp.yaml` with `apiserver: https://10.0.0.1:6443`); repeatable.
    #[arg(long = "probe-config", value_name = "NAME=FILE")]
    probe_configs: Vec<String>,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// The probe component (.wasm) or a built-in probe name.
    probe: String,
    #[command(flatten)]
    report: ReportArgs,
    /// The probe's config: a JSON or YAML file.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// A capability grant; repeatable: kube:VERBS:RESOURCES[:NAMESPACES], dns[:NAMESERVERS],
    /// http:HOST:PORT, etcd:PREFIX, collectors:NAMES.
    #[arg(long = "grant", value_name = "SPEC")]
    grants: Vec<String>,
    /// Grant exactly what the probe's describe() asks for.
    #[arg(long)]
    grant_requested: bool,
    /// Wall-clock limit for the run, in milliseconds.
    #[arg(long, value_name = "MS")]
    timeout_ms: Option<u64>,
    /// Memory limit for the run, in MiB.
    #[arg(long, value_name = "MIB")]
    memory_mib: Option<u64>,
    /// A store whose collector data (written by `sonde agent`) the probe may query.
    #[arg(long, value_name = "FILE")]
    store: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum ProbeCommand {
    /// Print what a probe's describe() says and the WIT world it targets.
    Inspect {
        /// A .wasm component or a built-in probe name.
        probe: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List the built-in probes.
    List,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

fn init_logging(verbose: u8, format: LogFormat, default_level: &str) {
    let default = match verbose {
        0 => default_level,
        1 => "sonde=info",
        _ => "sonde=debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("SONDE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().with_current_span(true).try_init(),
    };
}

/// Parses the command line, runs the command, and returns its exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Command::Serve(args) => init_logging(cli.verbose, args.log_format, "sonde=info"),
        Command::Agent(args) => init_logging(cli.verbose, args.log_format, "sonde=info"),
        _ => init_logging(cli.verbose, LogFormat::Text, "sonde=warn"),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::ERROR);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Audit(args) => audit::audit(args).await,
            Command::Run(args) => audit::run(args).await,
            Command::Probe(ProbeCommand::Inspect { probe, json }) => {
                probe::inspect(&probe, json).await
            }
            Command::Probe(ProbeCommand::List) => probe::list().await,
            Command::Serve(args) => serve::serve(args).await,
            Command::Agent(args) => agent::agent(args).await,
            Command::Rules { json, output } => {
                probe::rules(json || output == probe::RulesFormat::Json).await
            }
        }
    });
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(exit::ERROR)
        }
    }
}
