//! Sonde's built-in control-plane audit: KubeEye's ETCDHealthStatus,
//! ControllerManagerHealthStatus, SchedulerHealthStatus and
//! NodeApiServerExpiredPeriod, plus ApiServerHealthStatus. It reads the API
//! server's ComponentStatuses and the kubeadm static pods in kube-system
//! (`components`), then, on a live cluster, the endpoints themselves over the
//! `http` capability (`endpoints`): every check it cannot make (a snapshot,
//! a capability the host does not offer or the grant refuses) is named in
//! the run log with the reason, and the others go on.

pub mod components;
pub mod endpoints;

use k8s_openapi::api::core::v1::{ComponentStatus, Endpoints, Pod, Service};
use serde::Deserialize;
use sonde_sdk::{Finding, KubeVerb, Probe, ProbeError, ProbeInfo, Rule, Severity, http, kube, log};

pub const ETCD: Rule = Rule::new(
    "ETCDHealthStatus",
    "etcd unhealthy",
    "control-plane",
    Severity::Critical,
    "etcd does not answer its health check, or its static pod is not running and ready: the API server cannot read or write state.",
    "Check the etcd members (etcdctl endpoint health), their disks and their logs; restore quorum.",
);
pub const CONTROLLER_MANAGER: Rule = Rule::new(
    "ControllerManagerHealthStatus",
    "kube-controller-manager unhealthy",
    "control-plane",
    Severity::High,
    "kube-controller-manager does not answer its health check, or its static pod is not running and ready: controllers (ReplicaSets, nodes, endpoints...) stop reconciling.",
    "Read kube-controller-manager's logs on the control-plane node and its static pod manifest.",
);
pub const SCHEDULER: Rule = Rule::new(
    "SchedulerHealthStatus",
    "kube-scheduler unhealthy",
    "control-plane",
    Severity::High,
    "kube-scheduler does not answer its health check, or its static pod is not running and ready: new pods stay Pending.",
    "Read kube-scheduler's logs on the control-plane node and its static pod manifest.",
);
pub const API_SERVER: Rule = Rule::new(
    "ApiServerHealthStatus",
    "kube-apiserver unhealthy",
    "control-plane",
    Severity::Critical,
    "A kube-apiserver fails its readiness checks, or its static pod is not running and ready.",
    "Read the failed /readyz checks and the kube-apiserver logs on that control-plane node.",
);
pub const API_SERVER_CERT: Rule = Rule::new(
    "NodeApiServerExpiredPeriod",
    "API server certificate expires soon",
    "control-plane",
    Severity::High,
    "The API server's serving certificate expires within the threshold (30 days by default), or has expired: clients will refuse it.",
    "Renew the control-plane certificates (kubeadm certs renew all) and restart the API server.",
);

pub const RULES: &[Rule] = &[
    ETCD,
    CONTROLLER_MANAGER,
    SCHEDULER,
    API_SERVER,
    API_SERVER_CERT,
];

/// Probe config.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Days before `not-after` under which NodeApiServerExpiredPeriod fires.
    pub cert_expiry_days: u32,
    /// The API server to check (`host:port` or `https://host:port`); default:
    /// the `default/kubernetes` Endpoints, else that Service.
    pub apiserver: Option<String>,
    /// kube-controller-manager's health URL (`null`: not checked).
    pub controller_manager_health: Option<String>,
    /// kube-scheduler's health URL (`null`: not checked).
    pub scheduler_health: Option<String>,
    /// A static pod's container that terminated this recently counts as restarting.
    pub restart_window_minutes: u32,
    /// Timeout of each HTTP request.
    pub http_timeout_ms: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            cert_expiry_days: 30,
            apiserver: None,
            // Where the API server itself looks for ComponentStatuses (kubeadm binds them to loopback).
            controller_manager_health: Some("https://127.0.0.1:10257/healthz".into()),
            scheduler_health: Some("https://127.0.0.1:10259/healthz".into()),
            restart_window_minutes: 60,
            http_timeout_ms: 5_000,
        }
    }
}

/// The checks that need the `http` capability, as the run log names them.
const HTTP_CHECKS: &str = "API server readiness (ApiServerHealthStatus, ETCDHealthStatus via /readyz), \
     API server certificate expiry (NodeApiServerExpiredPeriod), controller-manager and scheduler /healthz";

/// Findings from what the API server stores: ComponentStatuses and static pods.
pub fn audit(
    statuses: &[ComponentStatus],
    pods: &[Pod],
    now: i64,
    config: &Config,
) -> Vec<Finding> {
    let mut out = components::component_statuses(statuses);
    out.extend(components::static_pods(
        pods,
        now,
        i64::from(config.restart_window_minutes) * 60,
    ));
    out
}

/// A list that may be refused or not served: logged, and the run goes on.
fn list_or_log<K>(what: &str, params: &kube::ListParams) -> Vec<K>
where
    K: k8s_openapi::Resource + serde::de::DeserializeOwned,
{
    kube::list::<K>(params).unwrap_or_else(|e| {
        log::warn(&format!(
            "{what} check skipped: cannot list {}: {e:?}",
            K::KIND
        ));
        Vec::new()
    })
}

fn get_or_log<K>(name: &str) -> Option<K>
where
    K: k8s_openapi::Resource + serde::de::DeserializeOwned,
{
    match kube::get::<K>(Some("default"), name) {
        Ok(o) => Some(o),
        Err(ProbeError::NotFound(_)) => None,
        Err(e) => {
            log::info(&format!("cannot read {} default/{name}: {e:?}", K::KIND));
            None
        }
    }
}

/// The API server's readiness and certificate, at each address.
fn api_server_checks(config: &Config, now: i64, out: &mut Vec<Finding>) {
    let targets = endpoints::api_server_targets(
        config.apiserver.as_deref(),
        get_or_log::<Service>("kubernetes").as_ref(),
        get_or_log::<Endpoints>("kubernetes").as_ref(),
    );
    if targets.is_empty() {
        log::info(
            "API server readiness and certificate expiry checks skipped: no address \
             (no `apiserver` in the config, and default/kubernetes has no Endpoints addresses or cluster IP)",
        );
    }
    for t in targets {
        let url = format!("{}/readyz?verbose", t.url);
        let response = match http::get(&url, Some(config.http_timeout_ms), true) {
            Ok(r) => r,
            Err(e) => {
                log::info(&format!(
                    "API server readiness and certificate expiry checks of {} skipped: GET {url}: {e:?}",
                    t.url
                ));
                continue;
            }
        };
        let finding = |rule: &Rule, message: String| match &t.resource {
            Some(r) => rule.finding(r.clone(), message),
            None => rule.cluster_finding(message),
        };
        let body = String::from_utf8_lossy(&response.body);
        if !endpoints::judged(response.status) {
            log::info(&format!(
                "API server readiness of {} not judged: GET {url} answered {}, not a health verdict",
                t.url, response.status
            ));
        }
        for (rule, message) in endpoints::readyz(&t.url, response.status, &body) {
            let component = if rule.id == ETCD.id {
                "etcd"
            } else {
                "kube-apiserver"
            };
            out.push(
                finding(rule, message)
                    .label("component", component)
                    .label("address", t.url.clone())
                    .into(),
            );
        }
        match &response.peer_certificate {
            None => log::info(&format!(
                "certificate expiry check of {} skipped: the answer carries no peer certificate",
                t.url
            )),
            Some(cert) => {
                if let Some((severity, text)) =
                    endpoints::cert_expiry(cert.not_after, now, config.cert_expiry_days)
                {
                    let message = format!(
                        "the serving certificate of {} (subject {}, issuer {}) {text}",
                        t.url, cert.subject, cert.issuer
                    );
                    out.push(
                        finding(&API_SERVER_CERT, message)
                            .severity(severity)
                            .label("component", "kube-apiserver")
                            .label("address", t.url.clone())
                            .label("time", components::rfc3339(cert.not_after))
                            .into(),
                    );
                }
            }
        }
    }
}

/// The controller-manager's and scheduler's health endpoints.
fn component_health_checks(config: &Config, out: &mut Vec<Finding>) {
    for (rule, url, what) in [
        (
            &CONTROLLER_MANAGER,
            &config.controller_manager_health,
            "controller-manager",
        ),
        (&SCHEDULER, &config.scheduler_health, "scheduler"),
    ] {
        let Some(url) = url else {
            log::debug(&format!(
                "{what} health endpoint not checked: none configured"
            ));
            continue;
        };
        match http::get(url, Some(config.http_timeout_ms), true) {
            Ok(r) => {
                let body = String::from_utf8_lossy(&r.body);
                if let Some(message) = endpoints::healthz(url, r.status, &body) {
                    out.push(
                        rule.cluster_finding(message)
                            .label("component", what)
                            .into(),
                    );
                } else if !endpoints::judged(r.status) {
                    log::info(&format!(
                        "{what} health not judged: GET {url} answered {}, not a health verdict",
                        r.status
                    ));
                }
            }
            // A failed connection is not judged here: the host's error does not tell a
            // component that is down from a capability that cannot reach it; the
            // ComponentStatus above is the API server's own verdict.
            Err(e) => log::info(&format!("{what} health check skipped: GET {url}: {e:?}")),
        }
    }
}

/// Seconds since the Unix epoch, from the host's wall clock.
fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The probe.
pub struct ControlPlaneAudit;

impl Probe for ControlPlaneAudit {
    type Config = Option<Config>;

    fn describe() -> ProbeInfo {
        sonde_sdk::describe(
            "control-plane-audit",
            env!("CARGO_PKG_VERSION"),
            "control-plane component health and API server certificate expiry",
        )
        .rules(RULES)
        .kube("", "ComponentStatus", &[KubeVerb::List])
        .kube("", "Pod", &[KubeVerb::List])
        .kube("", "Service", &[KubeVerb::Get])
        .kube("", "Endpoints", &[KubeVerb::Get])
        .http("*:443")
        .http("*:6443")
        .http("127.0.0.1:10257")
        .http("127.0.0.1:10259")
        .schedule("0 */5 * * * *")
        .build()
    }

    fn run(config: Option<Config>) -> Result<Vec<Finding>, ProbeError> {
        let config = config.unwrap_or_default();
        let now = now();
        let statuses = list_or_log::<ComponentStatus>("ComponentStatus", &Default::default());
        let pods = list_or_log::<Pod>(
            "control-plane static pod",
            &kube::ListParams {
                namespace: Some("kube-system".into()),
                label_selector: Some("tier=control-plane".into()),
                ..Default::default()
            },
        );
        let mut out = audit(&statuses, &pods, now, &config);
        match kube::server_version() {
            Err(e) => log::info(&format!(
                "skipped {HTTP_CHECKS}: no live API server to reach ({e:?})"
            )),
            Ok(_) => {
                api_server_checks(&config, now, &mut out);
                component_health_checks(&config, &mut out);
            }
        }
        Ok(out)
    }
}

sonde_sdk::export_probe!(ControlPlaneAudit);

#[cfg(test)]
mod tests;
