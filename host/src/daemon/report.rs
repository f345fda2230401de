//! The latest report, rebuilt from the store: each probe's newest finished
//! run with the findings open now (those its last success reported), then
//! exemptions and score as `sonde audit` applies them. Exports render it
//! with the CLI's report writers; the dashboard shows its score, cached
//! until some probe finishes another run.

use std::sync::Mutex;

use super::Daemon;
use crate::audit::{AuditReport, ProbeSummary};
use crate::posture::Score;
use crate::runtime::{RunOutcome, RunStatus};
use crate::store::{FindingFilter, FindingStatus, MAX_PAGE, RunPhase, StoreError};

/// The score of the latest runs, keyed by their ids.
#[derive(Default)]
pub struct ScoreCache(Mutex<Option<(String, Option<Score>)>>);

/// Builds the latest report.
pub async fn latest(daemon: &Daemon) -> Result<AuditReport, StoreError> {
    let loaded = daemon.loaded();
    let store = daemon.store();
    let latest = store.latest_finished_runs().await?;
    let mut runs = Vec::new();
    let mut probes = Vec::new();
    let mut started: Option<jiff::Timestamp> = None;
    for probe in daemon.probes() {
        probes.push(ProbeSummary {
            name: probe.name.clone(),
            version: probe.prepared.info.version.clone(),
            origin: probe.origin.describe(),
            rules: probe.prepared.info.rules.clone(),
        });
        let Some(run) = latest.iter().find(|r| r.probe == probe.name) else {
            continue;
        };
        started = Some(started.map_or(run.created_at, |s| s.min(run.created_at)));
        let succeeded = run.state == RunPhase::Succeeded;
        let mut findings = Vec::new();
        if succeeded {
            let filter = FindingFilter {
                probe: Some(probe.name.clone()),
                status: FindingStatus::Open,
                ..Default::default()
            };
            let mut cursor = None;
            loop {
                let page = store.findings(&filter, MAX_PAGE, cursor.as_deref()).await?;
                findings.extend(page.items.into_iter().map(|f| f.finding));
                match page.next {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
        }
        runs.push(RunOutcome {
            probe: run.probe.clone(),
            run_id: run.id.clone(),
            status: if succeeded {
                RunStatus::Succeeded
            } else {
                RunStatus::Failed
            },
            reason: run.reason_detail.clone(),
            findings,
            logs: run.logs.clone(),
            denials: run.denials.clone(),
            duration: std::time::Duration::from_millis(run.duration_ms.unwrap_or(0).max(0) as u64),
        });
    }
    let mut report = AuditReport {
        source: loaded.source.clone(),
        started_at: started.unwrap_or_else(jiff::Timestamp::now).to_string(),
        input_issues: loaded.issues.clone(),
        probes,
        runs,
        exempted: Vec::new(),
        score: None,
    };
    let services = daemon.services();
    crate::posture::assess(&mut report, &loaded.exemptions, services.kube.as_deref()).await;
    Ok(report)
}

impl ScoreCache {
    /// The score of the latest runs; recomputed only when they changed.
    pub async fn get(&self, daemon: &Daemon) -> Result<Option<Score>, StoreError> {
        let key: String = daemon
            .store()
            .latest_finished_runs()
            .await?
            .iter()
            .map(|r| r.id.as_str())
            .collect::<Vec<_>>()
            .join(",");
        if let Some((k, score)) = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            && *k == key
        {
            return Ok(score.clone());
        }
        let score = if key.is_empty() {
            None
        } else {
            latest(daemon).await?.score
        };
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((key, score.clone()));
        Ok(score)
    }
}
