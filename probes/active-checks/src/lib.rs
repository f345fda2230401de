//! Sonde's built-in active checks (KubeProber's, run as a probe): the cluster
//! is made to do things and each failure is a finding. Names are resolved
//! through every CoreDNS pod and the cluster DNS Service on their own
//! (`dns`), HTTP endpoints such as ingresses are called with an expected
//! status, text and latency (`endpoints`), user flows of several requests
//! carrying values from one answer to the next request run in order
//! (`flows`: log in, then use the session), a key is written, read back
//! and deleted in etcd (`etcd`), and a pod is created, must start, and is
//! deleted (`pod`). Nothing runs that the config or a live
//! cluster does not name, so a snapshot audit sends no traffic. A check the
//! grant or the host cannot serve is logged as skipped, not reported as the
//! cluster's fault.

pub mod dns;
pub mod endpoints;
pub mod etcd;
pub mod flows;
pub mod pod;

use serde::Deserialize;
use sonde_sdk::{Finding, KubeVerb, Probe, ProbeError, ProbeInfo, Rule, Severity, kube, log};

/// The category of every rule here.
const CATEGORY: &str = "active-check";

pub const DNS_FAILURE: Rule = Rule::new(
    "ClusterDNSFailure",
    "Cluster DNS does not answer",
    CATEGORY,
    Severity::High,
    "A name that must resolve (by default kubernetes.default.svc.cluster.local) did not, asked of one CoreDNS pod or the cluster DNS Service: pods relying on it cannot find services.",
    "Check the CoreDNS pod named (logs, readiness, its upstream), the kube-dns Service's endpoints, and network policies on port 53.",
);
pub const DNS_SLOW: Rule = Rule::new(
    "ClusterDNSSlow",
    "Cluster DNS answers slowly",
    CATEGORY,
    Severity::Medium,
    "A CoreDNS pod or the cluster DNS Service answered above the latency threshold.",
    "Look at the CoreDNS pod's CPU throttling, its cache and upstream latency, and conntrack pressure on its node.",
);
pub const ENDPOINT_FAILURE: Rule = Rule::new(
    "EndpointCheckFailed",
    "Endpoint check failed",
    CATEGORY,
    Severity::High,
    "A configured HTTP endpoint (an ingress host, a service URL) did not answer, answered with an unexpected status, or without the expected text.",
    "Follow the path of the request named: DNS, the ingress controller, the Service's endpoints, the serving pods.",
);
pub const ENDPOINT_SLOW: Rule = Rule::new(
    "EndpointCheckSlow",
    "Endpoint answers slowly",
    CATEGORY,
    Severity::Medium,
    "A configured HTTP endpoint answered above its latency threshold.",
    "Look at the ingress controller's and the serving pods' load and latency.",
);
pub const ENDPOINT_CERTIFICATE: Rule = Rule::new(
    "EndpointCertificateExpiring",
    "Endpoint certificate expiring",
    CATEGORY,
    Severity::High,
    "An https endpoint served a certificate that expires within the check's days (default 30), has expired, or is not valid yet (critical then): clients will refuse it.",
    "Renew the certificate named (its subject and issuer are in the message) and check that whatever renews it (cert-manager, the ingress controller) runs.",
);
pub const FLOW_FAILURE: Rule = Rule::new(
    "UserFlowFailed",
    "User flow failed",
    CATEGORY,
    Severity::High,
    "A configured user flow (HTTP requests in order, such as logging in and then using the session) stopped at a step that did not answer, answered with an unexpected status or text, or without a value a later step needs.",
    "Follow the step named: its service, what it depends on (a database, an identity provider), and the values the steps before it returned.",
);
pub const FLOW_SLOW: Rule = Rule::new(
    "UserFlowSlow",
    "User flow step slow",
    CATEGORY,
    Severity::Medium,
    "A step of a configured user flow answered above its latency threshold.",
    "Look at the load and latency of the service behind the step named and of what it calls.",
);
pub const ETCD_ROUND_TRIP: Rule = Rule::new(
    "EtcdRoundTripFailed",
    "etcd write, read or delete failed",
    CATEGORY,
    Severity::Critical,
    "A key written to etcd could not be written, read back with its value, or deleted: the cluster's state store is not serving.",
    "Check the etcd members' health (etcdctl endpoint health), quorum, disk latency and free space (alarms).",
);

pub const POD_LIFECYCLE: Rule = Rule::new(
    "PodLifecycleFailed",
    "A new pod does not start",
    CATEGORY,
    Severity::High,
    "A pod the check created was not running and ready within the time given, will not run (its image cannot be pulled, it ended), or could not be created or deleted: new workloads cannot start.",
    "Read the state in the message: scheduling (capacity, taints), image pulls (registry, credentials), the kubelet and container runtime on the node, admission webhooks.",
);

pub const RULES: &[Rule] = &[
    DNS_FAILURE,
    DNS_SLOW,
    ENDPOINT_FAILURE,
    ENDPOINT_SLOW,
    ENDPOINT_CERTIFICATE,
    FLOW_FAILURE,
    FLOW_SLOW,
    ETCD_ROUND_TRIP,
    POD_LIFECYCLE,
];

/// The probe's config; every part optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub dns: dns::Config,
    /// HTTP endpoints to call (ingress hosts, service URLs).
    pub endpoints: Vec<endpoints::Check>,
    /// User flows: steps of requests, values carried from step to step.
    pub flows: Vec<flows::Flow>,
    /// The etcd round trip; absent: not run.
    pub etcd: Option<etcd::Config>,
    /// The pod check (live clusters); absent: not run.
    pub pod: Option<pod::Config>,
}

/// Why a call's failure is or is not the cluster's: `denied` and
/// `invalid-input` are the operator's (grant, config) and only logged.
pub fn cluster_fault(e: &ProbeError) -> bool {
    matches!(
        e,
        ProbeError::NotFound(_)
            | ProbeError::Timeout(_)
            | ProbeError::Unavailable(_)
            | ProbeError::Internal(_)
    )
}

/// An error as a message: its text without the variant's wrapping.
pub fn error_text(e: &ProbeError) -> String {
    match e {
        ProbeError::Denied(m) => format!("denied: {m}"),
        ProbeError::NotFound(m) => format!("not found: {m}"),
        ProbeError::Unavailable(m) => format!("unavailable: {m}"),
        ProbeError::Timeout(m) => format!("timeout: {m}"),
        ProbeError::InvalidInput(m) => format!("invalid input: {m}"),
        ProbeError::Internal(m) => format!("internal: {m}"),
    }
}

/// The probe.
pub struct ActiveChecks;

impl Probe for ActiveChecks {
    type Config = Option<Config>;

    fn describe() -> ProbeInfo {
        sonde_sdk::describe(
            "active-checks",
            env!("CARGO_PKG_VERSION"),
            "active checks: cluster DNS through each CoreDNS pod, HTTP endpoints (ingresses), user flows, an etcd round trip, a pod's lifecycle",
        )
        .rules(RULES)
        .kube(
            "",
            "Pod",
            &[KubeVerb::List, KubeVerb::Get, KubeVerb::Create, KubeVerb::Delete],
        )
        .kube("", "Service", &[KubeVerb::Get])
        .dns()
        .http("*")
        .etcd(etcd::DEFAULT_PREFIX)
        .schedule("0 */5 * * * *")
        .build()
    }

    fn run(config: Option<Config>) -> Result<Vec<Finding>, ProbeError> {
        let config = config.unwrap_or_default();
        let mut out = Vec::new();
        // CoreDNS is found through the API server only on a live cluster: a
        // snapshot's pod IPs are no machine's to call.
        let live = match kube::server_version() {
            Ok(_) => true,
            Err(e) => {
                log::info(&format!(
                    "CoreDNS pods and the cluster DNS Service not checked: no live API server ({e:?})"
                ));
                false
            }
        };
        dns::run(&config.dns, live, &mut out);
        for check in &config.endpoints {
            endpoints::run(check, &mut out);
        }
        for flow in &config.flows {
            flows::run(flow, &mut out);
        }
        if let Some(etcd) = &config.etcd {
            etcd::run(etcd, &mut out);
        }
        match &config.pod {
            Some(pod) if live => pod::run(pod, &mut out),
            Some(_) => log::info("pod check not run: no live API server"),
            None => {}
        }
        Ok(out)
    }
}

sonde_sdk::export_probe!(ActiveChecks);
