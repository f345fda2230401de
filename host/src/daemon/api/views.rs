//! The JSON shapes of the API (documented in the OpenAPI document through
//! their `ToSchema` derives), and the conversions from the store's types.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::Serialize;
use utoipa::ToSchema;

use crate::bindings::RuleInfo;
use crate::store::{RunRecord, StoredFinding};

fn ts(t: Timestamp) -> String {
    t.to_string()
}

/// A run.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RunView {
    pub id: String,
    pub probe: String,
    /// queued, running, succeeded, failed or interrupted.
    pub status: String,
    /// schedule, manual, startup or catch-up.
    pub trigger: String,
    /// Why it failed or was interrupted.
    pub reason: Option<String>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub duration_ms: Option<i64>,
    pub findings_count: i64,
}

impl From<&RunRecord> for RunView {
    fn from(r: &RunRecord) -> Self {
        RunView {
            id: r.id.clone(),
            probe: r.probe.clone(),
            status: r.state.as_str().into(),
            trigger: r.trigger.as_str().into(),
            reason: r.reason.clone(),
            created_at: ts(r.created_at),
            started_at: r.started_at.map(ts),
            finished_at: r.finished_at.map(ts),
            duration_ms: r.duration_ms,
            findings_count: r.findings_count,
        }
    }
}

/// One line of a run's log.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LogView {
    /// Milliseconds since the run started.
    pub at_ms: u64,
    pub level: String,
    /// probe, stdout, stderr or host.
    pub source: String,
    pub message: String,
}

/// A host call refused because it was outside the grant.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DenialView {
    pub capability: String,
    pub detail: String,
}

/// A run with its logs and denials.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RunDetail {
    #[serde(flatten)]
    pub run: RunView,
    pub logs: Vec<LogView>,
    pub denials: Vec<DenialView>,
    /// The failure reason as data (`kind` and its fields).
    #[schema(value_type = Option<Object>)]
    pub failure: Option<serde_json::Value>,
}

impl From<&RunRecord> for RunDetail {
    fn from(r: &RunRecord) -> Self {
        RunDetail {
            run: r.into(),
            logs: r
                .logs
                .iter()
                .map(|l| LogView {
                    at_ms: l.at_ms,
                    level: format!("{:?}", l.level).to_lowercase(),
                    source: l.source.clone(),
                    message: l.message.clone(),
                })
                .collect(),
            denials: r
                .denials
                .iter()
                .map(|d| DenialView {
                    capability: d.capability.clone(),
                    detail: d.detail.clone(),
                })
                .collect(),
            failure: r
                .reason_detail
                .as_ref()
                .and_then(|d| serde_json::to_value(d).ok()),
        }
    }
}

/// The object a finding is about; empty strings where it has no such part.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ResourceView {
    pub api_version: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub uid: Option<String>,
}

/// A finding with its history.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FindingView {
    pub id: i64,
    pub probe: String,
    pub rule: String,
    pub severity: String,
    pub resource: ResourceView,
    pub message: String,
    pub remedy: Option<String>,
    /// `[key, value]` pairs.
    #[schema(value_type = Vec<Vec<String>>)]
    pub labels: Vec<(String, String)>,
    /// open or fixed.
    pub status: String,
    pub first_seen: String,
    pub opened_at: String,
    pub last_seen: String,
    pub resolved_at: Option<String>,
    pub first_run: String,
    pub last_run: String,
}

impl From<StoredFinding> for FindingView {
    fn from(f: StoredFinding) -> Self {
        let r = f.finding.resource.as_ref();
        FindingView {
            id: f.id,
            probe: f.probe,
            rule: f.finding.rule.clone(),
            severity: f.finding.severity.as_str().into(),
            resource: ResourceView {
                api_version: r.map(|r| r.api_version.clone()).unwrap_or_default(),
                kind: r.map(|r| r.kind.clone()).unwrap_or_default(),
                namespace: r.and_then(|r| r.namespace.clone()).unwrap_or_default(),
                name: r.map(|r| r.name.clone()).unwrap_or_default(),
                uid: r.and_then(|r| r.uid.clone()),
            },
            message: f.finding.message.clone(),
            remedy: f.finding.remedy.clone(),
            labels: f.finding.labels.clone(),
            status: if f.resolved_at.is_some() {
                "fixed"
            } else {
                "open"
            }
            .into(),
            first_seen: ts(f.first_seen),
            opened_at: ts(f.opened_at),
            last_seen: ts(f.last_seen),
            resolved_at: f.resolved_at.map(ts),
            first_run: f.first_run,
            last_run: f.last_run,
        }
    }
}

/// A page of findings.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FindingPageView {
    pub items: Vec<FindingView>,
    /// The cursor of the next page.
    pub next: Option<String>,
    /// How many findings the filter selects in all.
    pub total: u64,
}

/// A page of runs, newest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RunPageView {
    pub items: Vec<RunView>,
    pub next: Option<String>,
}

/// A rule of a probe.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RuleView {
    pub probe: String,
    pub id: String,
    pub title: String,
    pub category: String,
    pub severity: String,
    pub description: String,
    pub remedy: String,
}

impl RuleView {
    pub fn new(probe: &str, r: &RuleInfo) -> Self {
        RuleView {
            probe: probe.into(),
            id: r.id.clone(),
            title: r.title.clone(),
            category: r.category.clone(),
            severity: r.default_severity.as_str().into(),
            description: r.description.clone(),
            remedy: r.remedy.clone(),
        }
    }
}

/// A rule and how many open findings it has.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RuleDetail {
    #[serde(flatten)]
    pub rule: RuleView,
    pub open_findings: u64,
}

/// A probe, its schedule and its last runs.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProbeView {
    pub name: String,
    pub version: String,
    pub origin: String,
    pub description: String,
    /// False: switched off in the config (runs on demand only).
    pub enabled: bool,
    /// Suspended by an operator (API or UI).
    pub suspended: bool,
    pub schedule: Option<String>,
    pub timezone: Option<String>,
    pub next_run: Option<String>,
    pub running: bool,
    pub last_run: Option<RunView>,
    pub last_success: Option<String>,
    /// The last success is older than two schedule periods (or there is none
    /// although the probe has run).
    pub stale: bool,
    /// How many rules it declares.
    pub rules: usize,
}

/// A probe with its rules, grant, limits and config.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProbeDetail {
    #[serde(flatten)]
    pub probe: ProbeView,
    #[serde(rename = "rules")]
    pub rule_list: Vec<RuleView>,
    #[schema(value_type = Object)]
    pub grants: serde_json::Value,
    #[schema(value_type = Object)]
    pub limits: serde_json::Value,
    #[schema(value_type = Object)]
    pub config: serde_json::Value,
}

/// A namespace's score.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NamespaceScoreView {
    pub namespace: String,
    pub score: u8,
    pub objects: usize,
    pub affected: usize,
    pub findings: usize,
}

/// The cluster's score (0-100) and each namespace's.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ScoreView {
    pub cluster: u8,
    pub namespaces: Vec<NamespaceScoreView>,
}

impl From<&crate::posture::Score> for ScoreView {
    fn from(s: &crate::posture::Score) -> Self {
        ScoreView {
            cluster: s.cluster.score,
            namespaces: s
                .namespaces
                .iter()
                .map(|(ns, n)| NamespaceScoreView {
                    namespace: ns.clone(),
                    score: n.score,
                    objects: n.objects,
                    affected: n.affected,
                    findings: n.findings,
                })
                .collect(),
        }
    }
}

/// Which probes need attention.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProbeHealth {
    pub total: usize,
    /// Their last run failed.
    pub failing: Vec<String>,
    pub stale: Vec<String>,
}

/// The dashboard.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SummaryView {
    pub score: Option<ScoreView>,
    /// Open findings per severity.
    #[schema(value_type = Object)]
    pub counts: BTreeMap<String, u64>,
    pub probes: ProbeHealth,
    /// The ten newest open findings.
    pub newest: Vec<FindingView>,
    /// Runs queued or running.
    pub running: Vec<RunView>,
}

/// One day and severity.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TrendPointView {
    pub day: String,
    pub severity: String,
    pub open: i64,
    pub new: i64,
    pub fixed: i64,
}

/// Counts per day and severity.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TrendView {
    pub points: Vec<TrendPointView>,
}

/// Who the caller is.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WhoAmI {
    /// viewer or admin.
    pub role: String,
    /// False when the daemon has no tokens (loopback only: everyone is admin).
    pub auth: bool,
    /// The config's `cluster_name`, when it has one.
    pub cluster: Option<String>,
}

/// A run just queued.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Queued {
    pub run: RunView,
}

/// The reload went through.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Reloaded {
    pub reloaded: bool,
}

/// An error.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorDetail {
    pub status: u16,
    pub message: String,
}

/// A node collector and its state on each node that reported it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CollectorView {
    pub name: String,
    pub description: String,
    /// Its fields, as probes query them.
    pub fields: Vec<String>,
    /// Whether at least one node runs it.
    pub available: bool,
    pub nodes: Vec<CollectorNodeView>,
}

/// One collector on one node.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CollectorNodeView {
    pub node: String,
    pub available: bool,
    /// Why it does not run there.
    pub reason: Option<String>,
    /// Records delivered, and lost to a full ring buffer, since its agent
    /// started; for `http`, requests counted, and lost (a full ring buffer or
    /// map, or more than 8 open requests on a connection).
    pub events: i64,
    pub dropped: i64,
    pub started_at: String,
    pub updated_at: String,
}

impl CollectorNodeView {
    pub fn new(s: &crate::store::CollectorStatusRow) -> Self {
        let at = |ms: i64| Timestamp::from_millisecond(ms).map(ts).unwrap_or_default();
        CollectorNodeView {
            node: s.node.clone(),
            available: s.available,
            reason: s.reason.clone(),
            events: s.events,
            dropped: s.dropped,
            started_at: at(s.started_at_ms),
            updated_at: at(s.updated_at_ms),
        }
    }
}

/// What the daemon took of an audit batch.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditAccepted {
    /// Records in the batch.
    pub received: usize,
    /// Records stored now.
    pub stored: usize,
    /// Records stored before (the batch, or part of it, was sent again).
    pub duplicates: usize,
}

/// What the daemon took of an agent's batch: its rows of each kind.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BatchAccepted {
    pub events: usize,
    pub http: usize,
    pub status: usize,
    /// The request was stored before (its answer was lost): not again.
    pub duplicate: bool,
}
