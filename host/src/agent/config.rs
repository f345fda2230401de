//! The agent's settings: `sonde agent --config FILE`, or the `collectors:`
//! section of the daemon's config when the agent runs inside `sonde serve`.

use std::path::PathBuf;

use serde::Deserialize;

use super::COLLECTOR_NAMES;

/// Whether `sonde serve` runs the collectors in its own process.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// When the process has the privilege to load eBPF programs.
    #[default]
    Auto,
    /// Always; a collector that cannot run is reported with its reason.
    On,
    Off,
}

/// The agent's settings.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Only for `sonde serve`: whether to run the agent in-process.
    #[serde(default)]
    pub mode: Mode,
    /// The node's name (default: $NODE_NAME, else the host name).
    pub node: Option<String>,
    /// Which collectors to run (default: all of oom, exec, tcp, listen, http, kernel-log).
    #[serde(default = "all_collectors")]
    pub collectors: Vec<String>,
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub tcp: TcpConfig,
    /// How often listen queues and the netstat counters are sampled.
    #[serde(default = "default_listen_interval")]
    pub listen_interval_seconds: u64,
    /// How often events are written to the store.
    #[serde(default = "default_flush")]
    pub flush_interval_ms: u64,
    /// Collector data older than this is deleted.
    #[serde(default = "default_retention_days")]
    pub retention_days: u64,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            mode: Mode::Auto,
            node: None,
            collectors: all_collectors(),
            http: HttpConfig::default(),
            tcp: TcpConfig::default(),
            listen_interval_seconds: default_listen_interval(),
            flush_interval_ms: default_flush(),
            retention_days: default_retention_days(),
        }
    }
}

/// The HTTP collector: by default a pair of programs on the kubelet's pods
/// cgroup (every pod's sockets, each in its own network namespace, and
/// host-network pods'; the cgroup v2 root on a machine without a kubelet);
/// or a socket filter on one interface.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Watch only the sockets of this cgroup v2 folder and those below it
    /// (say `/sys/fs/cgroup` for every socket of the node). Default: the
    /// kubelet's pods folder below the cgroup v2 root (`kubepods.slice`,
    /// `kubepods`, or kind's `kubelet.slice/kubelet-kubepods.slice` and
    /// `kubelet/kubepods`), else the root.
    #[serde(default)]
    pub cgroup: Option<PathBuf>,
    /// Instead of the cgroup programs, a socket filter on this interface
    /// (a bridge such as `cni0` sees every local pod's traffic; `lo` for
    /// loopback): servers are then named by address only.
    #[serde(default)]
    pub interface: Option<String>,
    /// Keep only these server ports (at most 8; empty: all).
    #[serde(default)]
    pub ports: Vec<u16>,
    /// How often the kernel's per-minute sums are read and the minutes
    /// they changed are written to the store. The kernel keeps summing in
    /// between, so nothing is lost: a minute's figures reach the store at
    /// most this long after they change (and after the minute ends). Each
    /// report is a store write, whatever the request rate.
    #[serde(default = "default_http_report")]
    pub report_interval_ms: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            cgroup: None,
            interface: None,
            ports: Vec::new(),
            report_interval_ms: default_http_report(),
        }
    }
}

/// The TCP collector.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TcpConfig {
    /// Also store every connection state change (many rows on a busy
    /// node); retransmits and resets are always stored.
    #[serde(default)]
    pub states: bool,
}

fn all_collectors() -> Vec<String> {
    COLLECTOR_NAMES.iter().map(|s| s.to_string()).collect()
}
fn default_listen_interval() -> u64 {
    10
}
fn default_flush() -> u64 {
    1000
}
fn default_retention_days() -> u64 {
    7
}
fn default_http_report() -> u64 {
    10_000
}

impl AgentConfig {
    /// Every problem, each naming its field (`at` prefixes them).
    pub fn problems(&self, at: &str) -> Vec<String> {
        let mut out = Vec::new();
        for c in &self.collectors {
            if !COLLECTOR_NAMES.contains(&c.as_str()) {
                out.push(format!(
                    "{at}collectors: unknown collector {c:?} (known: {})",
                    COLLECTOR_NAMES.join(", ")
                ));
            }
        }
        if self.http.ports.len() > 8 {
            out.push(format!(
                "{at}http.ports: at most 8 ports, {} given",
                self.http.ports.len()
            ));
        }
        if self.http.ports.contains(&0) {
            out.push(format!("{at}http.ports: 0 is not a port"));
        }
        if let Some(i) = &self.http.interface
            && (i.is_empty() || i.len() > 15 || i.contains(['/', '\0', ' ']))
        {
            out.push(format!(
                "{at}http.interface: {i:?} is not an interface name"
            ));
        }
        if let Some(c) = &self.http.cgroup {
            if self.http.interface.is_some() {
                out.push(format!(
                    "{at}http: set cgroup or interface, not both (the collector watches one)"
                ));
            }
            if !c.is_absolute() {
                out.push(format!(
                    "{at}http.cgroup: {} is not an absolute path",
                    c.display()
                ));
            }
        }
        for (field, v) in [
            ("listen_interval_seconds", self.listen_interval_seconds),
            ("flush_interval_ms", self.flush_interval_ms),
            ("http.report_interval_ms", self.http.report_interval_ms),
            ("retention_days", self.retention_days),
        ] {
            if v == 0 {
                out.push(format!("{at}{field} must be at least 1"));
            }
        }
        out
    }

    /// The node name to record.
    pub fn node_name(&self) -> String {
        self.node
            .clone()
            .or_else(|| std::env::var("NODE_NAME").ok().filter(|s| !s.is_empty()))
            .or_else(|| {
                std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .ok()
                    .map(|s| s.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_problems() {
        let c: AgentConfig = serde_yaml::from_str("{}").unwrap();
        assert_eq!(c, AgentConfig::default());
        assert!(c.problems("").is_empty());
        let c: AgentConfig = serde_yaml::from_str(
            "collectors: [oom, disk]\nhttp: {interface: 'a b', ports: [0]}\nretention_days: 0\n",
        )
        .unwrap();
        let p = c.problems("collectors.");
        assert_eq!(p.len(), 4, "{p:?}");
        assert!(p[0].contains("unknown collector \"disk\""));
        assert!(serde_yaml::from_str::<AgentConfig>("nope: 1").is_err());
        // One place to watch, given as an absolute cgroup folder.
        let c: AgentConfig =
            serde_yaml::from_str("http: {cgroup: kubepods, interface: cni0}\n").unwrap();
        let p = c.problems("");
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(
            p[0].contains("http: set cgroup or interface, not both"),
            "{p:?}"
        );
        assert!(
            p[1].contains("http.cgroup: kubepods is not an absolute path"),
            "{p:?}"
        );
        let c: AgentConfig =
            serde_yaml::from_str("http: {cgroup: /sys/fs/cgroup/kubepods.slice}\n").unwrap();
        assert!(c.problems("").is_empty());
        // The HTTP sums' report interval: 10 s unless set, and never 0.
        assert_eq!(c.http.report_interval_ms, 10_000);
        let c: AgentConfig = serde_yaml::from_str("http: {report_interval_ms: 0}\n").unwrap();
        assert_eq!(
            c.problems("agent."),
            ["agent.http.report_interval_ms must be at least 1"]
        );
    }
}
