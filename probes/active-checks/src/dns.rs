//! Cluster DNS, asked of each CoreDNS pod and of the cluster DNS Service on
//! their own (one bad replica hides behind the Service's load balancing), and
//! of any nameserver the config adds: each name must resolve, within the
//! latency threshold.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Pod, Service};
use serde::Deserialize;
use sonde_sdk::bindings::sonde::probe::dns::{self as host, RecordType};
use sonde_sdk::{Finding, ProbeError, ResourceRef, kube, log, resource_ref};

use crate::{DNS_FAILURE, DNS_SLOW, cluster_fault, error_text};

/// What to resolve and through which nameservers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Names that must resolve (A records).
    pub names: Vec<String>,
    /// Ask each running CoreDNS pod and the cluster DNS Service (live clusters).
    pub coredns: bool,
    /// Where CoreDNS runs and how its pods and Service are found.
    pub namespace: String,
    pub label_selector: String,
    pub service: String,
    /// More nameservers to ask, `ip` or `ip:port`.
    pub nameservers: Vec<String>,
    /// An answer slower than this is a finding.
    pub max_latency_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            names: vec!["kubernetes.default.svc.cluster.local".into()],
            coredns: true,
            namespace: "kube-system".into(),
            label_selector: "k8s-app=kube-dns".into(),
            service: "kube-dns".into(),
            nameservers: Vec::new(),
            max_latency_ms: 1000,
        }
    }
}

/// One nameserver to ask, and what it is.
#[derive(Debug, Clone)]
pub struct Target {
    /// `ip:port`.
    pub nameserver: String,
    /// e.g. `CoreDNS pod kube-system/coredns-1 (10.244.0.3:53)`.
    pub what: String,
    pub resource: Option<ResourceRef>,
}

/// The running CoreDNS pods (their pod IP, port 53), then the Service's cluster IP and DNS port.
pub fn coredns_targets(pods: &[Pod], service: Option<&Service>) -> Vec<Target> {
    let mut out = Vec::new();
    for pod in pods {
        let Some(status) = &pod.status else { continue };
        let (Some("Running"), Some(ip)) = (status.phase.as_deref(), status.pod_ip.as_deref())
        else {
            continue;
        };
        let nameserver = sonde_sdk::host_port(ip, 53);
        let meta = &pod.metadata;
        out.push(Target {
            what: format!(
                "CoreDNS pod {}/{} ({nameserver})",
                meta.namespace.as_deref().unwrap_or_default(),
                meta.name.as_deref().unwrap_or_default()
            ),
            nameserver,
            resource: Some(resource_ref(pod)),
        });
    }
    if let Some(svc) = service
        && let Some(spec) = &svc.spec
        && let Some(ip) = spec
            .cluster_ip
            .as_deref()
            .filter(|ip| !ip.is_empty() && *ip != "None")
    {
        let port = spec
            .ports
            .iter()
            .flatten()
            .find(|p| p.protocol.as_deref().unwrap_or("TCP") == "UDP")
            .map_or(53, |p| p.port);
        let nameserver = sonde_sdk::host_port(ip, port);
        out.push(Target {
            what: format!(
                "the cluster DNS Service {}/{} ({nameserver})",
                svc.metadata.namespace.as_deref().unwrap_or_default(),
                svc.metadata.name.as_deref().unwrap_or_default()
            ),
            nameserver,
            resource: Some(resource_ref(svc)),
        });
    }
    out
}

/// The finding one answer calls for, if any; `Err` is a line for the log
/// (the operator's problem, not the cluster's).
pub fn judge(
    name: &str,
    target: &Target,
    answer: Result<Duration, &ProbeError>,
    max_latency_ms: u64,
) -> Result<Option<Finding>, String> {
    let finding = |rule: &sonde_sdk::Rule, message: String| {
        let b = match &target.resource {
            Some(r) => rule.finding(r.clone(), message),
            None => rule.cluster_finding(message),
        };
        b.label("name", name)
            .label("nameserver", target.nameserver.clone())
            .into()
    };
    match answer {
        Ok(took) if took.as_millis() > u128::from(max_latency_ms) => Ok(Some(finding(
            &DNS_SLOW,
            format!(
                "{name} took {} ms to resolve through {} (threshold {max_latency_ms} ms)",
                took.as_millis(),
                target.what
            ),
        ))),
        Ok(_) => Ok(None),
        Err(e) if cluster_fault(e) => Ok(Some(finding(
            &DNS_FAILURE,
            format!(
                "{name} did not resolve through {}: {}",
                target.what,
                error_text(e)
            ),
        ))),
        Err(e) => Err(format!(
            "DNS check of {name} through {} skipped: {}",
            target.what,
            error_text(e)
        )),
    }
}

/// Resolves every name through every target.
pub fn run(config: &Config, live: bool, out: &mut Vec<Finding>) {
    let mut targets: Vec<Target> = config
        .nameservers
        .iter()
        .map(|ns| Target {
            nameserver: ns.clone(),
            what: format!("nameserver {ns}"),
            resource: None,
        })
        .collect();
    if config.coredns && live {
        let params = kube::ListParams {
            namespace: Some(config.namespace.clone()),
            label_selector: Some(config.label_selector.clone()),
            ..Default::default()
        };
        let pods = kube::list::<Pod>(&params).unwrap_or_else(|e| {
            log::warn(&format!("cannot list the CoreDNS pods: {e:?}"));
            Vec::new()
        });
        let service = match kube::get::<Service>(Some(&config.namespace), &config.service) {
            Ok(s) => Some(s),
            Err(e) => {
                log::info(&format!(
                    "no cluster DNS Service {}/{}: {e:?}",
                    config.namespace, config.service
                ));
                None
            }
        };
        let found = coredns_targets(&pods, service.as_ref());
        if found.is_empty() {
            log::warn(&format!(
                "no running CoreDNS pod ({} in {}) and no cluster DNS Service to ask",
                config.label_selector, config.namespace
            ));
        }
        targets.extend(found);
    }
    for target in &targets {
        for name in &config.names {
            let started = Instant::now();
            let answer = host::resolve(name, RecordType::A, Some(&target.nameserver));
            let answer = answer.as_ref().map(|_| started.elapsed());
            match judge(name, target, answer, config.max_latency_ms) {
                Ok(Some(f)) => out.push(f),
                Ok(None) => log::debug(&format!("{name} resolved through {}", target.what)),
                Err(line) => log::error(&line),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, phase: &str, ip: Option<&str>) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "kube-system", "uid": format!("uid-{name}")},
            "status": {"phase": phase, "podIP": ip},
        }))
        .unwrap()
    }

    #[test]
    fn running_coredns_pods_then_the_service() {
        let pods = [
            pod("coredns-a", "Running", Some("10.244.0.3")),
            pod("coredns-b", "Pending", None),
            pod("coredns-c", "Running", Some("fd00::5")),
        ];
        let svc: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "kube-dns", "namespace": "kube-system"},
            "spec": {"clusterIP": "10.96.0.10", "ports": [
                {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
                {"name": "dns", "port": 5353, "protocol": "UDP"},
                {"name": "metrics", "port": 9153, "protocol": "TCP"}]},
        }))
        .unwrap();
        let t = coredns_targets(&pods, Some(&svc));
        let shown: Vec<(&str, &str)> = t
            .iter()
            .map(|t| (t.nameserver.as_str(), t.what.as_str()))
            .collect();
        assert_eq!(
            shown,
            [
                (
                    "10.244.0.3:53",
                    "CoreDNS pod kube-system/coredns-a (10.244.0.3:53)"
                ),
                (
                    "[fd00::5]:53",
                    "CoreDNS pod kube-system/coredns-c ([fd00::5]:53)"
                ),
                (
                    "10.96.0.10:5353",
                    "the cluster DNS Service kube-system/kube-dns (10.96.0.10:5353)"
                ),
            ]
        );
        assert_eq!(t[0].resource.as_ref().unwrap().kind, "Pod");
        assert_eq!(t[2].resource.as_ref().unwrap().kind, "Service");
        // A headless Service has no address to ask.
        let headless: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "kube-dns"}, "spec": {"clusterIP": "None"}}))
        .unwrap();
        assert!(coredns_targets(&[], Some(&headless)).is_empty());
    }

    #[test]
    fn failures_slowness_and_the_operators_problems() {
        let target = Target {
            nameserver: "10.0.0.10:53".into(),
            what: "nameserver 10.0.0.10:53".into(),
            resource: None,
        };
        let name = "kubernetes.default.svc.cluster.local";
        let fast = judge(name, &target, Ok(Duration::from_millis(3)), 1000).unwrap();
        assert!(fast.is_none());
        let slow = judge(name, &target, Ok(Duration::from_millis(1500)), 1000)
            .unwrap()
            .unwrap();
        assert_eq!(slow.rule, "ClusterDNSSlow");
        assert_eq!(
            slow.message,
            "kubernetes.default.svc.cluster.local took 1500 ms to resolve through nameserver 10.0.0.10:53 (threshold 1000 ms)"
        );
        let nx = ProbeError::NotFound("no such domain (NXDOMAIN)".into());
        let failed = judge(name, &target, Err(&nx), 1000).unwrap().unwrap();
        assert_eq!(failed.rule, "ClusterDNSFailure");
        assert!(
            failed
                .message
                .ends_with("not found: no such domain (NXDOMAIN)")
        );
        assert!(
            failed
                .labels
                .contains(&("nameserver".into(), "10.0.0.10:53".into()))
        );
        let denied = ProbeError::Denied("dns access not granted".into());
        assert!(judge(name, &target, Err(&denied), 1000).is_err());
    }
}
