//! `sonde audit` and `sonde run`: load the cluster source and the probes,
//! run them, print the report, and choose the exit code.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};

use super::{AuditArgs, ReportArgs, RunArgs, exit};
use crate::audit::{self, PreparedProbe, ProbeSource};
use crate::builtin;
use crate::caps::HostServices;
use crate::cluster::ClusterSpec;
use crate::grants::GrantSet;
use crate::posture::Exemptions;
use crate::report;
use crate::runtime::{ProbeRuntime, RunLimits, RuntimeConfig};

/// The services and their description, from `--snapshot`, `--kubeconfig`/`--context` and `--dns-server`.
async fn services(
    args: &ReportArgs,
    require_cluster: bool,
) -> Result<(Arc<HostServices>, String, Vec<String>)> {
    let spec = ClusterSpec {
        snapshot: args.snapshot.clone(),
        kubeconfig: args.kubeconfig.clone(),
        context: args.context.clone(),
        qps: args.qps,
        burst: args.burst,
        dns_servers: args.dns_server.clone(),
        watch_cache: false,
        http: crate::caps::http::HttpSettings {
            ca_files: args.http_ca.clone(),
            ..Default::default()
        },
        etcd: crate::caps::etcd::EtcdSettings {
            endpoints: args.etcd_endpoint.clone(),
            ca_file: args.etcd_ca.clone(),
            cert_file: args.etcd_cert.clone(),
            key_file: args.etcd_key.clone(),
            username: args.etcd_user.clone(),
            password_file: args.etcd_password_file.clone(),
            ..Default::default()
        },
    };
    let c = crate::cluster::connect(&spec, require_cluster)
        .await
        .map_err(|e| {
            if e.to_string().starts_with("qps and burst") {
                anyhow::anyhow!("--qps and --burst must be greater than 0")
            } else {
                e
            }
        })?;
    Ok((c.services, c.source, c.issues))
}

fn exit_code(report: &audit::AuditReport, fail_on: Option<crate::bindings::Severity>) -> u8 {
    if !report.complete() {
        exit::INCOMPLETE
    } else if fail_on.is_some_and(|s| report.has_finding_at_least(s)) {
        exit::FINDINGS
    } else {
        exit::OK
    }
}

/// The exemptions of `--exemptions` and `--no-annotation-exemptions`, read before any probe runs.
fn exemptions(args: &ReportArgs) -> Result<Exemptions> {
    let mut exemptions = match &args.exemptions {
        Some(path) => Exemptions::load(path)?,
        None => Exemptions::default(),
    };
    exemptions.ignore_annotations = args.no_annotation_exemptions;
    Ok(exemptions)
}

/// Exemptions and score, then the report.
async fn finish(
    mut report: audit::AuditReport,
    services: &HostServices,
    exemptions: &Exemptions,
    args: &ReportArgs,
) -> Result<u8> {
    crate::posture::assess(&mut report, exemptions, services.kube.as_deref()).await;
    print(&report, args)
}

fn print(report: &audit::AuditReport, args: &ReportArgs) -> Result<u8> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match report::render(report, args.output, &mut out) {
        Err(report::ReportError::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        other => other?,
    }
    Ok(exit_code(report, args.fail_on))
}

pub async fn audit(args: AuditArgs) -> Result<u8> {
    let exemptions = exemptions(&args.report)?;
    let custom = crate::custom_rules::ProbeConfigs::read(&args.rego, &args.checks)?;
    let (services, source, issues) = services(&args.report, true).await?;
    let runtime = ProbeRuntime::new(RuntimeConfig::default())?;
    let mut sources: Vec<ProbeSource> = if args.probes.is_empty() {
        builtin::audit()
            .map(|p| ProbeSource::Builtin(p.name))
            .collect()
    } else {
        args.probes
            .iter()
            .map(|p| ProbeSource::parse(p))
            .collect::<Result<_, _>>()
            .map_err(anyhow::Error::msg)?
    };
    custom.add_probes(&mut sources);
    let mut given = probe_configs(&args.probe_configs)?;
    let mut prepared = Vec::new();
    for source in &sources {
        let config = match source {
            ProbeSource::Builtin(name) => match given.remove(*name) {
                Some(_) if custom.config_for(source) != "{}" => {
                    anyhow::bail!("--probe-config {name}: its config comes from --rego or --checks")
                }
                Some(config) => config,
                None => custom.config_for(source),
            },
            ProbeSource::File(_) => custom.config_for(source),
        };
        prepared.push(audit::prepare(&runtime, source, None, config, RunLimits::default()).await?);
    }
    if let Some(name) = given.keys().next() {
        anyhow::bail!("--probe-config {name}: no such probe in this audit");
    }
    sweep(&services, &prepared).await;
    let report = audit::run_audit(&runtime, services.clone(), &prepared, source, issues).await;
    finish(report, &services, &exemptions, &args.report).await
}

/// `--probe-config NAME=FILE`: each built-in probe's config as JSON text.
fn probe_configs(specs: &[String]) -> Result<std::collections::BTreeMap<String, String>> {
    let mut out = std::collections::BTreeMap::new();
    for spec in specs {
        let Some((name, file)) = spec.split_once('=') else {
            anyhow::bail!("--probe-config {spec:?}: expected NAME=FILE");
        };
        let Some(probe) = builtin::find(name) else {
            anyhow::bail!("--probe-config {spec:?}: {name:?} is not a built-in probe");
        };
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("--probe-config {name}: cannot read {file}"))?;
        let value: serde_json::Value = serde_yaml::from_str(&text)
            .with_context(|| format!("--probe-config {name}: {file} is not JSON or YAML"))?;
        if out
            .insert(probe.name.to_string(), value.to_string())
            .is_some()
        {
            anyhow::bail!("--probe-config {name}: given twice");
        }
    }
    Ok(out)
}

/// Deletes objects that crashed runs of these probes left in the cluster.
async fn sweep(services: &HostServices, probes: &[PreparedProbe]) {
    let Some(backend) = &services.kube else {
        return;
    };
    for p in probes {
        let kinds = crate::kube::sweep::creatable_kinds(&p.grants);
        if kinds.is_empty() {
            continue;
        }
        let older_than = p.limits.timeout() + std::time::Duration::from_secs(60);
        match crate::kube::sweep::sweep_leftovers(
            backend.as_ref(),
            &kinds,
            older_than,
            jiff::Timestamp::now(),
        )
        .await
        {
            Ok(swept) => {
                for s in swept {
                    tracing::warn!(probe = %p.info.name, "deleted {s}, left behind by an earlier run");
                }
            }
            Err(e) => tracing::warn!(probe = %p.info.name, "could not sweep leftovers: {e}"),
        }
    }
}

/// Reads a probe config file (JSON or YAML) as JSON text.
fn read_config(path: &Path) -> Result<String> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let value: serde_json::Value = serde_yaml::from_str(&text)
        .with_context(|| format!("{}: not valid JSON or YAML", path.display()))?;
    Ok(value.to_string())
}

pub async fn run(args: RunArgs) -> Result<u8> {
    let exemptions = exemptions(&args.report)?;
    let (mut services, source, issues) = services(&args.report, false).await?;
    if let Some(path) = &args.store {
        if !path.exists() {
            anyhow::bail!("--store {}: no such file", path.display());
        }
        let store = crate::store::Store::open_with(
            path,
            crate::store::OpenOptions {
                owner: false,
                ..Default::default()
            },
        )
        .await?;
        let mut with = (*services).clone();
        with.collectors = Some(store);
        services = std::sync::Arc::new(with);
    }
    let runtime = ProbeRuntime::new(RuntimeConfig::default())?;
    let probe = ProbeSource::parse(&args.probe).map_err(anyhow::Error::msg)?;
    let config = match &args.config {
        Some(p) => read_config(p)?,
        None => "{}".into(),
    };
    let mut limits = RunLimits::default();
    if let Some(ms) = args.timeout_ms {
        limits.timeout_ms = ms;
    }
    if let Some(mib) = args.memory_mib {
        limits.memory_bytes = mib << 20;
    }
    limits
        .validate(runtime.max_memory_bytes())
        .map_err(anyhow::Error::msg)?;
    let mut grants = GrantSet::default();
    for spec in &args.grants {
        grants.extend(GrantSet::parse_spec(spec).map_err(anyhow::Error::msg)?);
    }
    let mut prepared: PreparedProbe =
        audit::prepare(&runtime, &probe, Some(grants), config, limits).await?;
    if args.grant_requested {
        prepared
            .grants
            .extend(GrantSet::from_requested(&prepared.info.capabilities));
    }
    let report = audit::run_audit(
        &runtime,
        services.clone(),
        std::slice::from_ref(&prepared),
        source,
        issues,
    )
    .await;
    for run in &report.runs {
        for line in &run.logs {
            tracing::info!(source = %line.source, level = ?line.level, "{}", line.message);
        }
    }
    finish(report, &services, &exemptions, &args.report).await
}
