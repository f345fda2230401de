//! Alerts: when a run succeeds, the findings it opened (new, or back after
//! a fix) and those it found fixed are sent to each configured destination
//! (`alerts` in the config) whose severity and probes they match, leaving
//! out what the operator exempted (the same exemptions as reports). One
//! request per run and destination, in Sonde's JSON, Alertmanager's
//! `POST /api/v2/alerts` (one alert per finding, ended when it is fixed) or
//! a Slack-style `{"text": ...}`. A request that fails is sent again (after
//! 2, 10 and 30 s) and then given up, logged and counted
//! (`sonde_alerts{outcome="failed"}`); the daemon goes on either way.
//!
//! Probe output is untrusted: it is carried as JSON strings (escaped by the
//! encoder), and in Slack text `&`, `<` and `>` are escaped as Slack's
//! markup wants, so a message cannot mention a channel or hide a link.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::Daemon;
use super::config::{AlertFormat, CheckedAlert};
use crate::store::{RunPhase, RunRecord, StoredFinding};

/// Findings per request, of each list; the totals say how many there were.
pub(super) const MAX_PER_REQUEST: usize = 100;
/// Findings read per run (most severe first).
const READ_PER_RUN: u32 = 1000;
/// Waits before each retry.
const RETRIES: [Duration; 3] = [
    Duration::from_secs(2),
    Duration::from_secs(10),
    Duration::from_secs(30),
];
/// Per request.
const TIMEOUT: Duration = Duration::from_secs(10);

impl Daemon {
    /// Follows finished runs and sends their alerts, for as long as the daemon runs.
    pub(super) async fn alert_loop(self, mut runs: broadcast::Receiver<RunRecord>) {
        let client = match client() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("alerts off: cannot build an HTTP client: {e}");
                return;
            }
        };
        loop {
            match runs.recv().await {
                Ok(run) if run.state == RunPhase::Succeeded && run.finished_at.is_some() => {
                    self.alert_run(&client, &run).await;
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(
                        "alerts: {n} run events missed (too many at once); their alerts are not sent"
                    );
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    async fn alert_run(&self, client: &reqwest::Client, run: &RunRecord) {
        let loaded = self.loaded();
        let sinks: Vec<&CheckedAlert> = loaded
            .checked
            .alerts
            .iter()
            .filter(|a| {
                a.config.findings
                    && (a.config.probes.is_empty() || a.config.probes.contains(&run.probe))
            })
            .collect();
        let (Some(min), Some(at)) = (
            sinks
                .iter()
                .map(|a| a.min_severity)
                .min_by_key(|s| s.rank()),
            run.finished_at,
        ) else {
            return;
        };
        let changes = match self
            .store()
            .run_changes(&run.probe, at, min, READ_PER_RUN)
            .await
        {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(run = %run.id, "alerts: cannot read the run's findings: {e}");
                return;
            }
        };
        if changes.opened.is_empty() && changes.fixed.is_empty() {
            return;
        }
        let exempt = self
            .exempted(&run.probe, changes.opened.iter().chain(&changes.fixed))
            .await;
        let external = loaded.checked.config.external_url.as_deref();
        for sink in sinks {
            let pick = |list: &[StoredFinding]| -> Vec<StoredFinding> {
                list.iter()
                    .filter(|f| {
                        f.finding.severity.rank() >= sink.min_severity.rank()
                            && !exempt.contains(&f.id)
                    })
                    .cloned()
                    .collect()
            };
            let opened = pick(&changes.opened);
            let fixed = if sink.config.resolved {
                pick(&changes.fixed)
            } else {
                Vec::new()
            };
            if opened.is_empty() && fixed.is_empty() {
                continue;
            }
            let mut body = render(sink.config.format, run, &opened, &fixed, external);
            name_cluster(
                sink.config.format,
                &mut body,
                loaded.checked.config.cluster_name.as_deref(),
            );
            let (client, sink, metrics) = (client.clone(), (*sink).clone(), self.clone());
            tokio::spawn(async move {
                let sent = deliver(&client, &sink, &body).await;
                metrics.metrics().record_alert(&sink.config.name, sent);
            });
        }
    }

    /// The ids of `findings` the operator exempted (annotations on their
    /// objects, or the exemptions file), as reports leave them out.
    async fn exempted<'a>(
        &self,
        probe: &str,
        findings: impl Iterator<Item = &'a StoredFinding>,
    ) -> HashSet<i64> {
        let stored: Vec<&StoredFinding> = findings.collect();
        let mut report = crate::audit::AuditReport {
            source: String::new(),
            started_at: String::new(),
            input_issues: Vec::new(),
            probes: Vec::new(),
            runs: vec![crate::runtime::RunOutcome {
                probe: probe.to_string(),
                run_id: String::new(),
                status: crate::runtime::RunStatus::Succeeded,
                reason: None,
                findings: stored.iter().map(|f| f.finding.clone()).collect(),
                logs: Vec::new(),
                denials: Vec::new(),
                duration: Duration::ZERO,
            }],
            exempted: Vec::new(),
            score: None,
        };
        let services = self.services();
        crate::posture::assess(
            &mut report,
            &self.loaded().exemptions,
            services.kube.as_deref(),
        )
        .await;
        stored
            .iter()
            .filter(|s| report.exempted.iter().any(|e| e.finding == s.finding))
            .map(|s| s.id)
            .collect()
    }
}

/// The client alerts are sent with: a timeout per request, no redirects.
pub(super) fn client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("sonde/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Sends `body`, trying again after each of [`RETRIES`]; whether it got
/// through (a 2xx answer).
pub(super) async fn deliver(client: &reqwest::Client, sink: &CheckedAlert, body: &Value) -> bool {
    let name = &sink.config.name;
    let mut last = String::new();
    for (attempt, wait) in std::iter::once(Duration::ZERO).chain(RETRIES).enumerate() {
        tokio::time::sleep(wait).await;
        let mut request = client
            .post(&sink.config.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
        if let Some(token) = &sink.token {
            request = request.bearer_auth(token);
        }
        match request.send().await {
            Ok(r) if r.status().is_success() => {
                tracing::debug!(alert = %name, attempt, "alert sent");
                return true;
            }
            Ok(r) => {
                let status = r.status();
                let text = r.text().await.unwrap_or_default();
                let text: String = text.chars().take(200).collect();
                last = format!("answered {status}: {text}");
                // A refusal of the request itself will be refused again.
                if status.is_client_error() && status.as_u16() != 429 && status.as_u16() != 408 {
                    break;
                }
            }
            Err(e) => last = crate::errors::chain(&e),
        }
    }
    tracing::warn!(alert = %name, url = %sink.config.url, "alert not sent: {last}");
    false
}

fn finding_json(f: &StoredFinding, external: Option<&str>) -> Value {
    let r = f.finding.resource.as_ref();
    json!({
        "id": f.id,
        "rule": f.finding.rule,
        "severity": f.finding.severity.as_str(),
        "resource": r.map(|r| json!({
            "apiVersion": r.api_version,
            "kind": r.kind,
            "namespace": r.namespace,
            "name": r.name,
        })),
        "message": f.finding.message,
        "remedy": f.finding.remedy,
        "first_seen": f.first_seen.to_string(),
        "opened_at": f.opened_at.to_string(),
        "resolved_at": f.resolved_at.map(|t| t.to_string()),
        "url": external.map(|u| finding_url(u, f.id)),
    })
}

fn finding_url(external: &str, id: i64) -> String {
    format!("{}/#/findings/{id}", external.trim_end_matches('/'))
}

/// The object a finding is on, as `kind namespace/name` (or `the cluster`).
fn subject(f: &StoredFinding) -> String {
    match &f.finding.resource {
        Some(r) if !r.kind.is_empty() => match r.namespace.as_deref() {
            Some(ns) if !ns.is_empty() => format!("{} {ns}/{}", r.kind, r.name),
            _ => format!("{} {}", r.kind, r.name),
        },
        _ => "the cluster".into(),
    }
}

/// The request body for `format`.
pub fn render(
    format: AlertFormat,
    run: &RunRecord,
    opened: &[StoredFinding],
    fixed: &[StoredFinding],
    external: Option<&str>,
) -> Value {
    let head = |list: &[StoredFinding]| -> Vec<StoredFinding> {
        list.iter().take(MAX_PER_REQUEST).cloned().collect()
    };
    let (opened_head, fixed_head) = (head(opened), head(fixed));
    let at = run.finished_at.map(|t| t.to_string());
    match format {
        AlertFormat::Json => json!({
            "source": "sonde",
            "probe": run.probe,
            "run": run.id,
            "finished_at": at,
            "opened_total": opened.len(),
            "fixed_total": fixed.len(),
            "opened": opened_head.iter().map(|f| finding_json(f, external)).collect::<Vec<_>>(),
            "fixed": fixed_head.iter().map(|f| finding_json(f, external)).collect::<Vec<_>>(),
        }),
        AlertFormat::Alertmanager => {
            let alert = |f: &StoredFinding, ends: Option<String>| {
                let r = f.finding.resource.as_ref();
                let mut labels = json!({
                    "alertname": f.finding.rule,
                    "severity": f.finding.severity.as_str(),
                    "probe": run.probe,
                    "finding": f.id.to_string(),
                });
                for (k, v) in [
                    ("namespace", r.and_then(|r| r.namespace.clone())),
                    ("kind", r.map(|r| r.kind.clone())),
                    ("name", r.map(|r| r.name.clone())),
                ] {
                    if let Some(v) = v.filter(|v| !v.is_empty()) {
                        labels[k] = Value::String(v);
                    }
                }
                let mut a = json!({
                    "labels": labels,
                    "annotations": {
                        "summary": f.finding.message,
                        "remedy": f.finding.remedy.clone().unwrap_or_default(),
                    },
                    "startsAt": f.opened_at.to_string(),
                });
                if let Some(ends) = ends {
                    a["endsAt"] = Value::String(ends);
                }
                if let Some(u) = external {
                    a["generatorURL"] = Value::String(finding_url(u, f.id));
                }
                a
            };
            Value::Array(
                opened_head
                    .iter()
                    .map(|f| alert(f, None))
                    .chain(
                        fixed_head
                            .iter()
                            .map(|f| alert(f, f.resolved_at.map(|t| t.to_string()))),
                    )
                    .collect(),
            )
        }
        AlertFormat::Slack => {
            let mut text = format!(
                "*Sonde*: {} ran: {} opened, {} fixed",
                slack_escape(&run.probe),
                opened.len(),
                fixed.len()
            );
            let line = |f: &StoredFinding| {
                let what = format!(
                    "{} {} on {}: {}",
                    f.finding.severity.as_str().to_uppercase(),
                    f.finding.rule,
                    subject(f),
                    f.finding.message
                );
                let what = slack_escape(&what);
                match external {
                    Some(u) => format!("\n• <{}|#{}> {what}", finding_url(u, f.id), f.id),
                    None => format!("\n• {what}"),
                }
            };
            for f in &opened_head {
                text.push_str(&line(f));
            }
            if opened.len() > opened_head.len() {
                text.push_str(&format!(
                    "\n… and {} more",
                    opened.len() - opened_head.len()
                ));
            }
            if !fixed_head.is_empty() {
                text.push_str("\nFixed:");
                for f in &fixed_head {
                    text.push_str(&line(f));
                }
            }
            json!({ "text": text })
        }
    }
}

/// Names the cluster in a rendered body, when it has a name: a `cluster`
/// field (JSON), a `cluster` label on each alert (Alertmanager), after
/// "Sonde" in the text (Slack).
pub fn name_cluster(format: AlertFormat, body: &mut Value, cluster: Option<&str>) {
    let Some(cluster) = cluster else { return };
    match format {
        AlertFormat::Json => body["cluster"] = Value::String(cluster.into()),
        AlertFormat::Alertmanager => {
            for alert in body.as_array_mut().into_iter().flatten() {
                alert["labels"]["cluster"] = Value::String(cluster.into());
            }
        }
        AlertFormat::Slack => {
            if let Some(text) = body["text"].as_str() {
                let named = text.replacen(
                    "*Sonde*",
                    &format!("*Sonde* ({})", slack_escape(cluster)),
                    1,
                );
                body["text"] = Value::String(named);
            }
        }
    }
}

/// Text as Slack's markup reads it literally: `&`, `<`, `>` escaped (so
/// `<!channel>` or `<http://x|y>` in a message stay text).
pub fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::{Finding, ResourceRef, Severity};
    use crate::store::Trigger;

    fn stored(id: i64, message: &str, resolved: bool) -> StoredFinding {
        let t: jiff::Timestamp = "2026-12-07T10:00:00Z".parse().unwrap();
        StoredFinding {
            id,
            probe: "workload-audit".into(),
            finding: Finding {
                rule: "RunAsRoot".into(),
                severity: Severity::High,
                resource: Some(ResourceRef {
                    api_version: "apps/v1".into(),
                    kind: "Deployment".into(),
                    namespace: Some("shop".into()),
                    name: "web".into(),
                    uid: None,
                }),
                message: message.into(),
                remedy: Some("set runAsNonRoot".into()),
                labels: Vec::new(),
            },
            first_seen: t,
            opened_at: t,
            last_seen: t,
            first_run: "r1".into(),
            last_run: "r1".into(),
            resolved_at: resolved.then_some(t),
        }
    }

    fn run() -> RunRecord {
        let t: jiff::Timestamp = "2026-12-07T10:00:00Z".parse().unwrap();
        RunRecord {
            id: "r1".into(),
            probe: "workload-audit".into(),
            state: RunPhase::Succeeded,
            trigger: Trigger::Schedule,
            reason: None,
            reason_detail: None,
            created_at: t,
            started_at: Some(t),
            finished_at: Some(t),
            duration_ms: Some(10),
            findings_count: 2,
            logs: Vec::new(),
            denials: Vec::new(),
        }
    }

    #[test]
    fn alertmanager_gets_one_alert_per_finding_ended_when_fixed() {
        let body = render(
            AlertFormat::Alertmanager,
            &run(),
            &[stored(7, "root", false)],
            &[stored(8, "was root", true)],
            Some("https://sonde.example.com/"),
        );
        let alerts = body.as_array().unwrap();
        assert_eq!(alerts.len(), 2);
        assert_eq!(alerts[0]["labels"]["alertname"], "RunAsRoot");
        assert_eq!(alerts[0]["labels"]["namespace"], "shop");
        assert_eq!(alerts[0]["labels"]["finding"], "7");
        assert_eq!(
            alerts[0]["generatorURL"],
            "https://sonde.example.com/#/findings/7"
        );
        assert!(alerts[0].get("endsAt").is_none());
        assert_eq!(alerts[1]["endsAt"], "2026-12-07T10:00:00Z");
    }

    #[test]
    fn slack_text_keeps_probe_output_literal() {
        let body = render(
            AlertFormat::Slack,
            &run(),
            &[stored(7, "<!channel> <http://evil|click> & more", false)],
            &[],
            None,
        );
        let text = body["text"].as_str().unwrap();
        assert!(
            text.contains("&lt;!channel&gt; &lt;http://evil|click&gt; &amp; more"),
            "{text}"
        );
        assert!(!text.contains("<!channel>"));
    }

    #[test]
    fn a_request_holds_at_most_a_hundred_findings_and_says_how_many() {
        let many: Vec<StoredFinding> = (0..150).map(|i| stored(i, "m", false)).collect();
        let body = render(AlertFormat::Json, &run(), &many, &[], None);
        assert_eq!(body["opened_total"], 150);
        assert_eq!(body["opened"].as_array().unwrap().len(), 100);
        assert_eq!(body["opened"][0]["url"], Value::Null);
    }

    #[test]
    fn the_cluster_is_named_in_every_format() {
        let mut json_body = serde_json::json!({"source": "sonde"});
        name_cluster(AlertFormat::Json, &mut json_body, Some("prod-eu"));
        assert_eq!(json_body["cluster"], "prod-eu");
        let mut am =
            serde_json::json!([{"labels": {"alertname": "X"}}, {"labels": {"alertname": "Y"}}]);
        name_cluster(AlertFormat::Alertmanager, &mut am, Some("prod-eu"));
        assert!(
            am.as_array()
                .unwrap()
                .iter()
                .all(|a| a["labels"]["cluster"] == "prod-eu")
        );
        let mut slack = serde_json::json!({"text": "*Sonde*: p ran"});
        name_cluster(AlertFormat::Slack, &mut slack, Some("<!here>"));
        assert_eq!(slack["text"], "*Sonde* (&lt;!here&gt;): p ran");
        let mut unnamed = serde_json::json!({"source": "sonde"});
        name_cluster(AlertFormat::Json, &mut unnamed, None);
        assert!(unnamed.get("cluster").is_none());
    }
}
