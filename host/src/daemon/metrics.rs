//! The daemon's Prometheus metrics (`/metrics`): runs by probe and outcome,
//! the run duration histogram, open findings by severity, seconds since
//! each probe's last success, and each node collector's state per node
//! (available, records lost, seconds since its agent last reported: an
//! agent that stopped reporting shows as a growing number), and each serving
//! pod's HTTP rate, server errors and duration percentiles over the last
//! `RED_MINUTES` whole minutes (from the http collector; a pod that served
//! nothing in them has no series). Counters move as runs end; the gauges
//! are read from the store when scraped, so they are right after a restart
//! too.

use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use jiff::Timestamp;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::runtime::RunOutcome;
use crate::store::{Store, StoreError};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    probe: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProbeLabel {
    probe: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CollectorLabels {
    node: String,
    collector: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServerLabels {
    node: String,
    namespace: String,
    pod: String,
    server: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QuantileLabels {
    node: String,
    namespace: String,
    pod: String,
    server: String,
    quantile: String,
}

/// The whole minutes the HTTP gauges cover (the newest, still being
/// counted, is left out).
pub const RED_MINUTES: i64 = 5;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AlertLabels {
    alert: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SeverityLabel {
    severity: String,
}

type Buckets = fn() -> Histogram;

fn duration_buckets() -> Histogram {
    // 10 ms to ~164 s.
    Histogram::new(exponential_buckets(0.01, 2.0, 15))
}

/// The registry and its metrics.
pub struct Metrics {
    registry: Mutex<Registry>,
    runs: Family<RunLabels, Counter>,
    durations: Family<ProbeLabel, Histogram, Buckets>,
    findings: Family<SeverityLabel, Gauge>,
    since_success: Family<ProbeLabel, Gauge<f64, AtomicU64>>,
    collector_available: Family<CollectorLabels, Gauge>,
    collector_dropped: Family<CollectorLabels, Gauge>,
    collector_since_report: Family<CollectorLabels, Gauge<f64, AtomicU64>>,
    alerts: Family<AlertLabels, Counter>,
    http_rate: Family<ServerLabels, Gauge<f64, AtomicU64>>,
    http_errors: Family<ServerLabels, Gauge<f64, AtomicU64>>,
    http_duration: Family<QuantileLabels, Gauge<f64, AtomicU64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let runs = Family::<RunLabels, Counter>::default();
        let durations = Family::<ProbeLabel, Histogram, Buckets>::new_with_constructor(
            duration_buckets as Buckets,
        );
        let findings = Family::<SeverityLabel, Gauge>::default();
        let since_success = Family::<ProbeLabel, Gauge<f64, AtomicU64>>::default();
        let alerts = Family::<AlertLabels, Counter>::default();
        registry.register(
            "sonde_alerts",
            "Alert requests by destination and outcome (sent, failed: given up after retries)",
            alerts.clone(),
        );
        registry.register(
            "sonde_runs",
            "Finished probe runs by probe and outcome",
            runs.clone(),
        );
        registry.register(
            "sonde_run_duration_seconds",
            "Duration of finished probe runs",
            durations.clone(),
        );
        registry.register(
            "sonde_findings_open",
            "Open findings by severity",
            findings.clone(),
        );
        registry.register(
            "sonde_probe_seconds_since_last_success",
            "Seconds since each probe's last successful run",
            since_success.clone(),
        );
        let collector_available = Family::<CollectorLabels, Gauge>::default();
        let collector_dropped = Family::<CollectorLabels, Gauge>::default();
        let collector_since_report = Family::<CollectorLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "sonde_collector_available",
            "Whether a node collector runs on a node (1) or not (0), as its agent last reported",
            collector_available.clone(),
        );
        registry.register(
            "sonde_collector_dropped",
            "Records a node collector lost (full ring buffer or map) since its agent started",
            collector_dropped.clone(),
        );
        registry.register(
            "sonde_collector_seconds_since_report",
            "Seconds since a node's agent last reported a collector's state (it does at least every 30 s)",
            collector_since_report.clone(),
        );
        let http_rate = Family::<ServerLabels, Gauge<f64, AtomicU64>>::default();
        let http_errors = Family::<ServerLabels, Gauge<f64, AtomicU64>>::default();
        let http_duration = Family::<QuantileLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "sonde_http_requests_per_second",
            "HTTP requests a server answered per second over the last 5 whole minutes (http collector)",
            http_rate.clone(),
        );
        registry.register(
            "sonde_http_server_errors_per_second",
            "HTTP answers 500-599 per second over the last 5 whole minutes (http collector)",
            http_errors.clone(),
        );
        registry.register(
            "sonde_http_request_duration_seconds",
            "HTTP request duration quantiles (0.5, 0.9, 0.99; within 10%) over the last 5 whole minutes",
            http_duration.clone(),
        );
        Metrics {
            registry: Mutex::new(registry),
            runs,
            durations,
            findings,
            since_success,
            collector_available,
            collector_dropped,
            collector_since_report,
            alerts,
            http_rate,
            http_errors,
            http_duration,
        }
    }

    /// Sets the HTTP gauges from the last whole minutes' sums, the series
    /// of servers that served nothing in them dropped.
    async fn refresh_http(&self, store: &Store, now_ms: i64) -> Result<(), StoreError> {
        let until = now_ms - now_ms.rem_euclid(60_000);
        let since = until - RED_MINUTES * 60_000;
        let rows = store
            .http_red(since, until, crate::collectors::query::SCAN_CAP)
            .await?;
        use super::api::traffic::{By, Points, summarize};
        let services = summarize(
            &rows,
            By::Pod,
            since,
            until,
            Points::over(since, until, false),
        );
        self.http_rate.clear();
        self.http_errors.clear();
        self.http_duration.clear();
        for s in services {
            let labels = ServerLabels {
                node: s.node,
                namespace: s.namespace,
                pod: s.pod,
                server: s.server,
            };
            self.http_rate.get_or_create(&labels).set(s.per_second);
            self.http_errors
                .get_or_create(&labels)
                .set(s.errors as f64 / (RED_MINUTES * 60) as f64);
            for (quantile, ms) in [("0.5", s.p50_ms), ("0.9", s.p90_ms), ("0.99", s.p99_ms)] {
                if let Some(ms) = ms {
                    self.http_duration
                        .get_or_create(&QuantileLabels {
                            node: labels.node.clone(),
                            namespace: labels.namespace.clone(),
                            pod: labels.pod.clone(),
                            server: labels.server.clone(),
                            quantile: quantile.into(),
                        })
                        .set(ms / 1000.0);
                }
            }
        }
        Ok(())
    }

    /// Counts a finished run.
    /// An alert request to `alert` was sent, or given up on.
    pub fn record_alert(&self, alert: &str, sent: bool) {
        self.alerts
            .get_or_create(&AlertLabels {
                alert: alert.into(),
                outcome: if sent { "sent" } else { "failed" }.into(),
            })
            .inc();
    }

    pub fn record_run(&self, outcome: &RunOutcome) {
        let label = if outcome.succeeded() {
            "succeeded"
        } else {
            "failed"
        };
        self.runs
            .get_or_create(&RunLabels {
                probe: outcome.probe.clone(),
                outcome: label.into(),
            })
            .inc();
        self.durations
            .get_or_create(&ProbeLabel {
                probe: outcome.probe.clone(),
            })
            .observe(outcome.duration.as_secs_f64());
    }

    /// Reads the open-finding counts from the store.
    pub async fn refresh_findings(&self, store: &Store) {
        if let Ok(counts) = store.open_counts().await {
            for (sev, n) in counts {
                self.findings
                    .get_or_create(&SeverityLabel {
                        severity: sev.as_str().into(),
                    })
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
        }
    }

    /// The text exposition, gauges read from the store now.
    pub async fn render(&self, store: &Store) -> Result<String, StoreError> {
        self.refresh_findings(store).await;
        let now = Timestamp::now();
        for (probe, at) in store.last_successes().await? {
            let secs = now.duration_since(at).as_secs_f64().max(0.0);
            self.since_success
                .get_or_create(&ProbeLabel { probe })
                .set(secs);
        }
        for s in store.collector_statuses().await? {
            let labels = CollectorLabels {
                node: s.node,
                collector: s.collector,
            };
            self.collector_available
                .get_or_create(&labels)
                .set(i64::from(s.available));
            self.collector_dropped.get_or_create(&labels).set(s.dropped);
            let secs = (now.as_millisecond() - s.updated_at_ms).max(0) as f64 / 1000.0;
            self.collector_since_report.get_or_create(&labels).set(secs);
        }
        self.refresh_http(store, now.as_millisecond()).await?;
        let mut out = String::new();
        let registry = self
            .registry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        prometheus_client::encoding::text::encode(&mut out, &registry)
            .expect("writing to a String cannot fail");
        Ok(out)
    }
}
