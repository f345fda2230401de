//! `sonde serve --demo`: every built-in probe of the default audit scheduled each minute against
//! the bundled sample cluster (a real kube-apiserver 1.28 dump, embedded in
//! the binary), the UI on http://127.0.0.1:8080, data in a local SQLite file.
//! Every probe runs at start, so there is something to look at at once.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::config::{
    AuthConfig, ClusterConfig, DaemonConfig, LimitsConfig, ProbeConfig, RetentionConfig,
    SchedulerConfig, StoreConfig, UploadConfig,
};

/// The sample cluster.
pub const SAMPLE_CLUSTER: &str = include_str!("../../../deploy/demo/sample-cluster.yaml");

/// Where the demo keeps its data: `$XDG_DATA_HOME/sonde/demo`, else
/// `~/.local/share/sonde/demo`, else `./sonde-demo`.
pub fn default_data_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("sonde/demo");
    }
    if let Some(h) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(h).join(".local/share/sonde/demo");
    }
    PathBuf::from("sonde-demo")
}

/// Writes the sample cluster into `data_dir` and returns the demo config.
pub fn config(data_dir: &Path, listen: SocketAddr) -> Result<DaemonConfig> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create the demo's folder {}", data_dir.display()))?;
    let snapshot = data_dir.join("sample-cluster.yaml");
    if std::fs::read_to_string(&snapshot).ok().as_deref() != Some(SAMPLE_CLUSTER) {
        std::fs::write(&snapshot, SAMPLE_CLUSTER)
            .with_context(|| format!("cannot write {}", snapshot.display()))?;
    }
    let probes = crate::builtin::audit()
        .map(|p| ProbeConfig {
            name: p.name.to_string(),
            component: None,
            schedule: Some("0 * * * * *".into()),
            timezone: None,
            jitter_seconds: None,
            enabled: true,
            config: None,
            grants: None,
            limits: LimitsConfig::default(),
            rego: Vec::new(),
            checks: Vec::new(),
        })
        .collect();
    Ok(DaemonConfig {
        listen,
        tls: None,
        cluster_name: Some("demo".into()),
        cluster: ClusterConfig {
            snapshot: Some(snapshot),
            ..Default::default()
        },
        store: StoreConfig {
            path: data_dir.join("sonde-demo.db"),
        },
        scheduler: SchedulerConfig::default(),
        retention: RetentionConfig {
            max_age_days: Some(7),
            ..Default::default()
        },
        events: Default::default(),
        auth: AuthConfig::default(),
        uploads: UploadConfig::default(),
        exemptions: None,
        // The node collectors when the demo runs as root (the HTTP one on
        // every socket of the machine: the demo's own UI and API traffic
        // shows up in it).
        collectors: Some(crate::agent::AgentConfig::default()),
        alerts: Vec::new(),
        external_url: None,
        probes,
    })
}
