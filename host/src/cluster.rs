//! Connecting to the cluster a command or the daemon reads: a snapshot
//! (files to objects) or a live API server (checked before any probe runs),
//! plus the DNS settings probes resolve with. Shared by `sonde audit`,
//! `sonde run` and `sonde serve`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};

use crate::caps::HostServices;
use crate::caps::dns::{DnsSettings, parse_nameserver};
use crate::caps::etcd::{EtcdClient, EtcdSettings};
use crate::caps::http::{HttpClient, HttpSettings};
use crate::kube::{KubeBackend, LiveBackend, LiveOptions, SnapshotBackend};

/// Which cluster, however it was asked for (flags or config file).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClusterSpec {
    pub snapshot: Option<PathBuf>,
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    pub qps: f64,
    pub burst: u32,
    pub dns_servers: Vec<String>,
    /// Keep a shared watch cache per kind (the daemon) instead of listing per call.
    pub watch_cache: bool,
    /// How probes' HTTP requests are made.
    pub http: HttpSettings,
    /// The cluster's etcd, for probes granted its keys.
    pub etcd: EtcdSettings,
}

/// The connected cluster.
pub struct Connected {
    pub services: Arc<HostServices>,
    /// `snapshot PATH` or `context NAME (server URL)`.
    pub source: String,
    /// Input problems (snapshot files that did not parse), each with file and line.
    pub issues: Vec<String>,
}

/// Connects. `require_cluster` false allows running with no cluster at all
/// when none was named (a probe that only resolves DNS).
pub async fn connect(spec: &ClusterSpec, require_cluster: bool) -> Result<Connected> {
    for ns in &spec.dns_servers {
        parse_nameserver(ns)
            .map_err(anyhow::Error::msg)
            .context("DNS server")?;
    }
    let dns = DnsSettings {
        nameservers: spec.dns_servers.clone(),
        timeout_ms: None,
    };
    let http = HttpClient::new(spec.http.clone(), dns.clone())?;
    let etcd = EtcdClient::new(spec.etcd.clone())?;
    // What every run gets besides the cluster.
    let services = |kube: Option<Arc<dyn KubeBackend>>| {
        Arc::new(HostServices {
            kube,
            dns: dns.clone(),
            collectors: None,
            http: http.clone(),
            etcd: etcd.clone(),
        })
    };
    if let Some(path) = &spec.snapshot {
        let snap = SnapshotBackend::load(path)?;
        let issues: Vec<String> = snap.issues().iter().map(ToString::to_string).collect();
        for issue in &issues {
            tracing::warn!("{issue}");
        }
        if snap.is_empty() && issues.is_empty() {
            bail!(
                "{}: no Kubernetes objects found (expected YAML or JSON manifests)",
                path.display()
            );
        }
        let source = snap.describe();
        return Ok(Connected {
            services: services(Some(Arc::new(snap))),
            source,
            issues,
        });
    }
    let explicit = spec.kubeconfig.is_some() || spec.context.is_some();
    if !explicit && !require_cluster {
        return Ok(Connected {
            services: services(None),
            source: "no cluster".into(),
            issues: Vec::new(),
        });
    }
    if !spec.qps.is_finite() || spec.qps <= 0.0 || spec.burst == 0 {
        bail!("qps and burst must be greater than 0");
    }
    let options = LiveOptions {
        kubeconfig: spec.kubeconfig.clone(),
        context: spec.context.clone(),
        qps: spec.qps,
        burst: spec.burst,
        watch_cache: spec.watch_cache,
        ..Default::default()
    };
    let live = match LiveBackend::connect(options).await {
        Ok(live) => live,
        Err(e) if !explicit => {
            return Err(anyhow::Error::new(e).context(
                "no cluster to audit: pass --snapshot PATH (manifests or a dump), or --kubeconfig FILE / --context NAME",
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let source = live.describe();
    let version = live
        .check()
        .await
        .map_err(|e| anyhow::anyhow!("{source}: {e}"))?;
    tracing::info!(%source, %version, "connected");
    Ok(Connected {
        services: services(Some(Arc::new(live))),
        source,
        issues: Vec::new(),
    })
}
