//! Retention: deleting finished runs older than an age or beyond a count per
//! probe, resolved findings fixed longer ago than that age, and old
//! collector events; then giving the freed space back when it is worth it.
//!
//! Open findings are never deleted by age: a probe that runs weekly keeps
//! its findings between runs whatever the retention.

use std::time::Duration;

use super::dialect::{self, VacuumAction, VacuumPolicy};
use super::{QueryContext, Store, StoreError};

/// What to keep.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Retention {
    /// Delete finished runs, fixed findings and collector events older than this.
    pub max_age: Option<Duration>,
    /// Keep at most this many finished runs per probe (the newest).
    pub max_runs_per_probe: Option<u32>,
    /// Delete the http collector's minutes older than this, whole hours at
    /// a time, keeping their hourly sums (which `max_age` deletes).
    pub http_minutes_max_age: Option<Duration>,
    /// When to reclaim space afterwards.
    pub vacuum: VacuumPolicy,
}

/// What retention deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionReport {
    pub runs: u64,
    pub findings: u64,
    /// Collector rows: events, HTTP minutes, per-minute counts, agent processes.
    pub collector_rows: u64,
    pub vacuum: VacuumAction,
}

impl Store {
    /// Applies `retention` now. Runs still queued or running are kept.
    pub async fn apply_retention(
        &self,
        retention: &Retention,
    ) -> Result<RetentionReport, StoreError> {
        let _changing = self.changing();
        let mut report = RetentionReport {
            runs: 0,
            findings: 0,
            collector_rows: 0,
            vacuum: VacuumAction::None,
        };
        if let Some(age) = retention.max_age {
            let age_ms = i64::try_from(age.as_millis()).unwrap_or(i64::MAX);
            let cutoff = self.now_ms().saturating_sub(age_ms);
            report.runs += self
                .delete(
                    "DELETE FROM runs WHERE status NOT IN ('queued', 'running') \
                     AND COALESCE(finished_at, created_at) < $1",
                    cutoff,
                    "delete old runs",
                )
                .await?;
            report.findings += self
                .delete(
                    "DELETE FROM findings WHERE resolved_at IS NOT NULL AND resolved_at < $1",
                    cutoff,
                    "delete old findings",
                )
                .await?;
            // Events, HTTP minutes and counts alike (agents on other nodes
            // send them here and keep no retention of their own).
            report.collector_rows += self.delete_collector_data_before(cutoff).await?;
        }
        if let Some(age) = retention.http_minutes_max_age {
            let age_ms = i64::try_from(age.as_millis()).unwrap_or(i64::MAX);
            let cutoff = self.now_ms().saturating_sub(age_ms);
            report.collector_rows += self.delete_http_minutes_before(cutoff).await?;
        }
        if let Some(keep) = retention.max_runs_per_probe {
            report.runs += self
                .delete(
                    "DELETE FROM runs WHERE id IN (SELECT id FROM (\
                     SELECT id, ROW_NUMBER() OVER (PARTITION BY probe \
                     ORDER BY created_at DESC, id DESC) AS n \
                     FROM runs WHERE status NOT IN ('queued', 'running')) AS ranked \
                     WHERE n > $1)",
                    i64::from(keep),
                    "delete runs beyond the count",
                )
                .await?;
        }
        report.vacuum = dialect::reclaim_space(&self.writer, retention.vacuum).await?;
        Ok(report)
    }

    async fn delete(
        &self,
        sql: &'static str,
        arg: i64,
        what: &'static str,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(sql)
            .bind(arg)
            .execute(&self.writer)
            .await
            .ctx(what)?;
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::test_support::{every_finding, failed, finding, open, succeeded};
    use super::super::{VacuumAction, VacuumPolicy};
    use super::Retention;
    use crate::bindings::Severity;

    const DAY: Duration = Duration::from_secs(86_400);

    #[tokio::test]
    async fn retention_by_age_deletes_old_runs_and_long_fixed_findings_only() {
        let dir = tempfile::tempdir().unwrap();
        let (store, clock) = open(dir.path()).await;
        let keep = finding("R", Severity::High, "ns", "keep", None);
        let gone = finding("R", Severity::High, "ns", "gone", None);
        store
            .record_run_finished(&succeeded("wa", "old", vec![keep.clone(), gone]))
            .await
            .unwrap();
        clock.advance(DAY);
        // Fixed 9 days before the retention runs.
        store
            .record_run_finished(&succeeded("wa", "mid", vec![keep.clone()]))
            .await
            .unwrap();
        store.record_run_started("wa", "stuck").await.unwrap();
        clock.advance(DAY * 9);
        store
            .record_run_finished(&failed("wa", "new"))
            .await
            .unwrap();

        let report = store
            .apply_retention(&Retention {
                max_age: Some(DAY * 7),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!((report.runs, report.findings), (2, 1));
        let ids: Vec<String> = store
            .runs(None, 100, None)
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(
            ids,
            ["new", "stuck"],
            "running runs are kept whatever their age"
        );
        let left = every_finding(&store, 10).await;
        assert_eq!(left.items.len(), 1);
        assert_eq!(
            left.items[0].finding.resource.as_ref().unwrap().name,
            "keep"
        );
        assert_eq!(
            left.items[0].first_run, "old",
            "the finding outlives its first run"
        );
    }

    #[tokio::test]
    async fn retention_by_count_keeps_the_newest_runs_of_each_probe() {
        let dir = tempfile::tempdir().unwrap();
        let (store, clock) = open(dir.path()).await;
        for i in 0..6 {
            store
                .record_run_finished(&succeeded("a", &format!("a{i}"), vec![]))
                .await
                .unwrap();
            if i < 2 {
                store
                    .record_run_finished(&failed("b", &format!("b{i}")))
                    .await
                    .unwrap();
            }
            clock.advance(Duration::from_secs(60));
        }
        let report = store
            .apply_retention(&Retention {
                max_runs_per_probe: Some(3),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(report.runs, 3);
        let a: Vec<String> = store
            .runs(Some("a"), 100, None)
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(a, ["a5", "a4", "a3"]);
        assert_eq!(
            store.runs(Some("b"), 100, None).await.unwrap().items.len(),
            2
        );
    }

    #[tokio::test]
    async fn space_is_reclaimed_after_a_large_delete() {
        let dir = tempfile::tempdir().unwrap();
        let (store, clock) = open(dir.path()).await;
        let big: Vec<_> = (0..20_000)
            .map(|i| {
                finding(
                    "R",
                    Severity::Low,
                    "ns",
                    &format!("pod-{i}"),
                    Some("a-long-container-name"),
                )
            })
            .collect();
        store
            .record_run_finished(&succeeded("wa", "r1", big))
            .await
            .unwrap();
        store
            .record_run_finished(&succeeded("wa", "r2", vec![]))
            .await
            .unwrap();
        clock.advance(DAY * 30);
        let policy = VacuumPolicy {
            min_free_fraction: 0.25,
            min_free_pages: 100,
        };
        let report = store
            .apply_retention(&Retention {
                max_age: Some(DAY),
                vacuum: policy,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(report.findings, 20_000);
        assert!(
            matches!(report.vacuum, VacuumAction::Incremental { pages } if pages > 100),
            "{report:?}"
        );
        let free: i64 = sqlx::query_scalar("PRAGMA freelist_count")
            .fetch_one(&store.writer)
            .await
            .unwrap();
        assert_eq!(free, 0);
        // Nothing left to reclaim: the policy does nothing.
        let report = store
            .apply_retention(&Retention {
                vacuum: policy,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(report.vacuum, VacuumAction::None);
        assert_eq!(store.integrity_check().await.unwrap(), "ok");
    }
}
