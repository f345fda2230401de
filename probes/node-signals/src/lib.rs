//! Sonde's built-in node-signals probe: what the node collectors saw, per
//! pod, over a look-back window. OOM kills (naming pod and container, not a
//! pid), TCP retransmit and reset rates above thresholds, listen-queue
//! overflows per port, and HTTP error rate and latency SLO per pod and
//! route. An event the agent could not attribute to a pod is reported on its
//! node. A collector that is unavailable is skipped, and the run log says why.

use std::collections::BTreeMap;

use sonde_sdk::collectors::{self, AggregateOp, FilterOp, Row, Value};
use sonde_sdk::{Finding, Probe, ProbeError, ProbeInfo, ResourceRef, Rule, Severity, log};

const fn rule(
    id: &'static str,
    title: &'static str,
    severity: Severity,
    description: &'static str,
    remedy: &'static str,
) -> Rule {
    Rule::new(id, title, "runtime", severity, description, remedy)
}

pub const OOM_KILLED: Rule = rule(
    "PodOOMKilled",
    "Container OOM-killed",
    Severity::High,
    "The kernel's OOM killer chose a process of this pod (its memory cgroup ran out), seen by the oom collector.",
    "Raise the container's memory limit or find what grew; the message names the process and its resident memory.",
);
pub const TCP_RETRANSMITS: Rule = rule(
    "PodTCPRetransmits",
    "TCP retransmits",
    Severity::Medium,
    "The pod's TCP connections retransmitted more segments per minute than the threshold: packet loss or a congested path.",
    "Look for packet loss between the pod and its peers (node NICs, CNI, overloaded peers).",
);
pub const TCP_RESETS: Rule = rule(
    "PodTCPResets",
    "TCP resets",
    Severity::Low,
    "The pod sent or received more TCP resets per minute than the threshold: connections to closed ports, or aborted connections.",
    "Check the peers and ports in the message: a service without ready endpoints, a crashing server, or timeouts that abort connections.",
);
pub const LISTEN_OVERFLOW: Rule = rule(
    "ListenQueueOverflow",
    "Listen queue overflow",
    Severity::High,
    "A listening socket's accept queue was full (connections were dropped), or the ListenOverflows counter of the node's or a pod's network namespace grew.",
    "Accept connections faster (more workers or replicas) or raise the listen backlog (and net.core.somaxconn).",
);
pub const HTTP_ERROR_RATE: Rule = rule(
    "HTTPErrorRate",
    "HTTP 5xx error rate",
    Severity::High,
    "The share of HTTP responses with status 500-599 for a route is above the threshold.",
    "Look at the serving pod's logs for the failing route.",
);
pub const HTTP_LATENCY: Rule = rule(
    "HTTPLatencySLO",
    "HTTP latency over the SLO",
    Severity::Medium,
    "The route's request duration at the configured percentile is above the SLO.",
    "Profile the route, or scale the serving pods; the message gives the percentile and the request count.",
);

pub const RULES: &[Rule] = &[
    OOM_KILLED,
    TCP_RETRANSMITS,
    TCP_RESETS,
    LISTEN_OVERFLOW,
    HTTP_ERROR_RATE,
    HTTP_LATENCY,
];

/// Probe config; every threshold has a default.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// How far back to look.
    pub window_minutes: u32,
    /// Retransmits per minute (per pod) above which a finding is made.
    pub retransmits_per_minute: f64,
    /// Resets sent + received per minute (per pod) above which a finding is made.
    pub resets_per_minute: f64,
    /// 5xx share (0-1) above which a route is reported.
    pub http_error_rate: f64,
    /// The latency SLO, in milliseconds, at `http_latency_percentile`.
    pub http_latency_slo_ms: f64,
    /// 50, 90 or 99.
    pub http_latency_percentile: u8,
    /// Routes with fewer requests in the window are not judged.
    pub http_min_requests: i64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            window_minutes: 60,
            retransmits_per_minute: 10.0,
            resets_per_minute: 10.0,
            http_error_rate: 0.05,
            http_latency_slo_ms: 500.0,
            http_latency_percentile: 99,
            http_min_requests: 20,
        }
    }
}

/// The probe.
pub struct NodeSignals;

impl Probe for NodeSignals {
    type Config = Config;

    fn describe() -> ProbeInfo {
        sonde_sdk::describe(
            "node-signals",
            env!("CARGO_PKG_VERSION"),
            "OOM kills, TCP trouble, listen-queue overflows and HTTP errors and latency per pod, from the node collectors",
        )
        .rules(RULES)
        .collector("oom")
        .collector("tcp")
        .collector("listen")
        .collector("http")
        .build()
    }

    fn run(config: Config) -> Result<Vec<Finding>, ProbeError> {
        if ![50, 90, 99].contains(&config.http_latency_percentile) {
            return Err(ProbeError::InvalidInput(format!(
                "config: http_latency_percentile must be 50, 90 or 99, not {}",
                config.http_latency_percentile
            )));
        }
        if config.window_minutes == 0 {
            return Err(ProbeError::InvalidInput(
                "config: window_minutes must be at least 1".into(),
            ));
        }
        let mut out = Vec::new();
        type Check = fn(&Config) -> Result<Vec<Finding>, ProbeError>;
        let checks: [(&str, Check); 4] = [
            ("oom", oom_kills),
            ("tcp", tcp_trouble),
            ("listen", listen_overflows),
            ("http", http_red),
        ];
        for (collector, check) in checks {
            match collectors::available(collector) {
                Ok(()) => out.extend(check(&config)?),
                Err(why) => log::info(&format!(
                    "{collector} checks skipped: the {collector} collector is unavailable ({why})"
                )),
            }
        }
        Ok(out)
    }
}

sonde_sdk::export_probe!(NodeSignals);

/// The pod a grouped row is about, or its node when the agent found no pod.
fn subject(row: &Row) -> ResourceRef {
    match (row.text("namespace"), row.text("pod")) {
        (Some(ns), Some(pod)) if !ns.is_empty() && !pod.is_empty() => ResourceRef {
            api_version: "v1".into(),
            kind: "Pod".into(),
            namespace: Some(ns.into()),
            name: pod.into(),
            uid: row.text("pod_uid").map(String::from),
        },
        _ => node(row.text("node").unwrap_or("unknown")),
    }
}

fn node(name: &str) -> ResourceRef {
    ResourceRef {
        api_version: "v1".into(),
        kind: "Node".into(),
        namespace: None,
        name: name.into(),
        uid: None,
    }
}

fn plural(n: i64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn oom_kills(c: &Config) -> Result<Vec<Finding>, ProbeError> {
    let table = collectors::query("oom", c.window_minutes)
        .group_by(&[
            "node",
            "namespace",
            "pod",
            "pod_uid",
            "container",
            "container_id",
            "cgroup",
            "comm",
        ])
        .aggregate(AggregateOp::Count, None)
        .aggregate(AggregateOp::Max, Some("anon_rss_kb"))
        .aggregate(AggregateOp::Max, Some("ts"))
        .run()?;
    let mut out = Vec::new();
    for row in table.rows() {
        let count = row.integer("count").unwrap_or(0);
        let comm = row.text("comm").unwrap_or("?");
        let rss_mib = row.number("max(anon_rss_kb)").unwrap_or(0.0) / 1024.0;
        let attributed = row.text("pod").is_some();
        let container = row.text("container").or(row.text("container_id"));
        let message = match (attributed, container) {
            (true, Some(ct)) => format!(
                "container {ct}: {} OOM-killed in the last {} minutes ({comm}, up to {rss_mib:.1} MiB resident)",
                plural(count, "process", "processes"),
                c.window_minutes
            ),
            (true, None) => format!(
                "{} of the pod OOM-killed in the last {} minutes ({comm}, up to {rss_mib:.1} MiB resident)",
                plural(count, "process", "processes"),
                c.window_minutes
            ),
            (false, _) => format!(
                "{} OOM-killed in cgroup {} in the last {} minutes ({comm}, up to {rss_mib:.1} MiB resident); not a known pod's",
                plural(count, "process", "processes"),
                row.text("cgroup").unwrap_or("?"),
                c.window_minutes
            ),
        };
        let mut f = OOM_KILLED
            .finding(subject(&row), message)
            .label("process", comm);
        if let Some(ct) = row.text("container") {
            f = f.label("container", ct);
        } else if let Some(id) = row.text("container_id") {
            f = f.label("container_id", id);
        }
        if !attributed {
            f = f.label("cgroup", row.text("cgroup").unwrap_or(""));
        }
        out.push(f.into());
    }
    Ok(out)
}

fn tcp_trouble(c: &Config) -> Result<Vec<Finding>, ProbeError> {
    let minutes = f64::from(c.window_minutes);
    let table = collectors::query("tcp", c.window_minutes)
        .filter("kind", FilterOp::Ne, Value::Text("state".into()))
        .group_by(&["node", "namespace", "pod", "pod_uid", "kind"])
        .aggregate(AggregateOp::Count, None)
        .run()?;
    // (subject key) -> (resource, retransmits, resets)
    let mut per: BTreeMap<(String, String, String), (ResourceRef, i64, i64)> = BTreeMap::new();
    for row in table.rows() {
        let key = (
            row.text("node").unwrap_or_default().to_string(),
            row.text("namespace").unwrap_or_default().to_string(),
            row.text("pod").unwrap_or_default().to_string(),
        );
        let e = per.entry(key).or_insert_with(|| (subject(&row), 0, 0));
        let n = row.integer("count").unwrap_or(0);
        match row.text("kind") {
            Some("retransmit") => e.1 += n,
            Some("reset_sent" | "reset_received") => e.2 += n,
            _ => {}
        }
    }
    let mut out = Vec::new();
    for (_, (resource, retransmits, resets)) in per {
        let who = if resource.kind == "Pod" {
            "the pod's connections"
        } else {
            "unattributed connections on the node"
        };
        let rate = retransmits as f64 / minutes;
        if rate > c.retransmits_per_minute {
            out.push(
                TCP_RETRANSMITS
                    .finding(
                        resource.clone(),
                        format!(
                            "{} by {who} in the last {} minutes ({rate:.1}/min, threshold {})",
                            plural(retransmits, "retransmit", "retransmits"),
                            c.window_minutes,
                            c.retransmits_per_minute
                        ),
                    )
                    .into(),
            );
        }
        let rate = resets as f64 / minutes;
        if rate > c.resets_per_minute {
            out.push(
                TCP_RESETS
                    .finding(
                        resource,
                        format!(
                            "{} sent or received by {who} in the last {} minutes ({rate:.1}/min, threshold {})",
                            plural(resets, "reset", "resets"),
                            c.window_minutes,
                            c.resets_per_minute
                        ),
                    )
                    .into(),
            );
        }
    }
    Ok(out)
}

fn listen_overflows(c: &Config) -> Result<Vec<Finding>, ProbeError> {
    let full = collectors::query("listen", c.window_minutes)
        .filter("kind", FilterOp::Eq, Value::Text("queue".into()))
        .filter("full", FilterOp::Eq, Value::Boolean(true))
        .group_by(&["node", "namespace", "pod", "pod_uid", "port", "comm"])
        .aggregate(AggregateOp::Count, None)
        .aggregate(AggregateOp::Max, Some("max_backlog"))
        .run()?;
    let mut out = Vec::new();
    for row in full.rows() {
        let port = row.integer("port").unwrap_or(0);
        let samples = row.integer("count").unwrap_or(0);
        let limit = row.integer("max(max_backlog)").unwrap_or(0);
        let owner = row
            .text("comm")
            .map(|c| format!(" ({c})"))
            .unwrap_or_default();
        out.push(
            LISTEN_OVERFLOW
                .finding(
                    subject(&row),
                    format!(
                        "port {port}{owner}: accept queue full (limit {limit}) in {} in the last {} minutes",
                        plural(samples, "sample", "samples"),
                        c.window_minutes
                    ),
                )
                .label("port", port.to_string())
                .into(),
        );
    }
    // The counters are per network namespace: the node's own (host-network
    // pods share it), or a pod's.
    let counters = collectors::query("listen", c.window_minutes)
        .filter("kind", FilterOp::Eq, Value::Text("overflow".into()))
        .group_by(&["node", "namespace", "pod", "pod_uid", "netns", "host_netns"])
        .aggregate(AggregateOp::Sum, Some("overflows"))
        .aggregate(AggregateOp::Sum, Some("drops"))
        .run()?;
    for row in counters.rows() {
        let overflows = row.integer("sum(overflows)").unwrap_or(0);
        let drops = row.integer("sum(drops)").unwrap_or(0);
        if overflows == 0 && drops == 0 {
            continue;
        }
        let attributed = row.text("pod").is_some_and(|p| !p.is_empty());
        // Rows from before namespaces were told apart have no host_netns.
        let host = !matches!(row.get("host_netns"), Some(Value::Boolean(false)));
        let whose = match (attributed, host) {
            (true, _) => "the pod's network namespace".to_string(),
            (false, true) => "the node's network namespace".to_string(),
            (false, false) => format!(
                "network namespace {} (no known pod's)",
                row.integer("netns").unwrap_or(0)
            ),
        };
        out.push(
            LISTEN_OVERFLOW
                .finding(
                    subject(&row),
                    format!(
                        "listen queues in {whose} overflowed {} ({} dropped) in the last {} minutes (ListenOverflows / ListenDrops)",
                        plural(overflows, "time", "times"),
                        drops,
                        c.window_minutes
                    ),
                )
                .label("counter", "ListenOverflows")
                .into(),
        );
    }
    Ok(out)
}

fn http_red(c: &Config) -> Result<Vec<Finding>, ProbeError> {
    let pct = match c.http_latency_percentile {
        50 => AggregateOp::P50,
        90 => AggregateOp::P90,
        _ => AggregateOp::P99,
    };
    let pct_col = format!("p{}(duration_ms)", c.http_latency_percentile);
    let table = collectors::query("http", c.window_minutes)
        .group_by(&["node", "namespace", "pod", "server", "method", "route"])
        .aggregate(AggregateOp::Count, None)
        .aggregate(AggregateOp::Sum, Some("errors"))
        .aggregate(pct, Some("duration_ms"))
        .run()?;
    let mut out = Vec::new();
    for row in table.rows() {
        let requests = row.integer("count").unwrap_or(0);
        if requests < c.http_min_requests {
            continue;
        }
        let errors = row.integer("sum(errors)").unwrap_or(0);
        let method = row.text("method").unwrap_or("?");
        let route = row.text("route").unwrap_or("?");
        let server = row.text("server").unwrap_or("?");
        let rate = errors as f64 / requests as f64;
        if rate > c.http_error_rate {
            out.push(
                HTTP_ERROR_RATE
                    .finding(
                        subject(&row),
                        format!(
                            "{method} {route} on {server}: {errors} of {requests} responses were 5xx ({:.1}%, threshold {:.1}%) in the last {} minutes",
                            rate * 100.0,
                            c.http_error_rate * 100.0,
                            c.window_minutes
                        ),
                    )
                    .label("route", format!("{method} {route}"))
                    .label("server", server)
                    .into(),
            );
        }
        if let Some(p) = row.number(&pct_col)
            && p > c.http_latency_slo_ms
        {
            out.push(
                HTTP_LATENCY
                    .finding(
                        subject(&row),
                        format!(
                            "{method} {route} on {server}: p{} {p:.1} ms over {requests} requests, SLO {} ms, in the last {} minutes",
                            c.http_latency_percentile, c.http_latency_slo_ms, c.window_minutes
                        ),
                    )
                    .label("route", format!("{method} {route}"))
                    .label("server", server)
                    .into(),
            );
        }
    }
    Ok(out)
}
