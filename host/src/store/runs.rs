//! The `runs` table: a run's life (queued, running, then succeeded, failed
//! or interrupted), written so that a finished run and its findings commit
//! together, and the queries the API lists runs with.

use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use sqlx::FromRow;

use super::{
    QueryContext, Store, StoreError, dialect, findings, from_json, probes, timestamp, to_json,
};
use crate::runtime::{Denial, FailureReason, LogLine, RunOutcome, RunStatus};

/// Where a run is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunPhase {
    Queued,
    Running,
    Succeeded,
    Failed,
    /// The process died (or was stopped) while the run was queued or running.
    Interrupted,
}

impl RunPhase {
    /// The name stored in `runs.status`.
    pub fn as_str(self) -> &'static str {
        match self {
            RunPhase::Queued => "queued",
            RunPhase::Running => "running",
            RunPhase::Succeeded => "succeeded",
            RunPhase::Failed => "failed",
            RunPhase::Interrupted => "interrupted",
        }
    }
}

impl fmt::Display for RunPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RunPhase {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "queued" => RunPhase::Queued,
            "running" => RunPhase::Running,
            "succeeded" => RunPhase::Succeeded,
            "failed" => RunPhase::Failed,
            "interrupted" => RunPhase::Interrupted,
            other => {
                return Err(StoreError::Corrupt {
                    what: "runs.status",
                    detail: format!("unknown status {other:?}"),
                });
            }
        })
    }
}

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Trigger {
    /// A schedule tick.
    Schedule,
    /// An operator (API or UI: run now).
    Manual,
    /// The daemon started and the probe had never run.
    Startup,
    /// The daemon started after missing one or more of the probe's ticks.
    CatchUp,
}

impl Trigger {
    /// The name stored in `runs.trigger`.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::Manual => "manual",
            Trigger::Startup => "startup",
            Trigger::CatchUp => "catch-up",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "schedule" => Trigger::Schedule,
            "manual" => Trigger::Manual,
            "startup" => Trigger::Startup,
            "catch-up" => Trigger::CatchUp,
            other => {
                return Err(StoreError::Corrupt {
                    what: "runs.trigger",
                    detail: format!("unknown trigger {other:?}"),
                });
            }
        })
    }
}

/// What [`Store::record_run_finished`] did with the run's findings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunIngest {
    /// Distinct findings the run reported.
    pub findings: u64,
    /// Of those, seen for the first time.
    pub new: u64,
    /// Open findings of the probe this run no longer reported.
    pub resolved: u64,
}

/// One run as stored. `logs`, `denials` and `reason_detail` are filled by
/// [`Store::run`] and left empty in lists.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    pub id: String,
    pub probe: String,
    pub state: RunPhase,
    pub trigger: Trigger,
    /// Why it failed or was interrupted, as a sentence.
    pub reason: Option<String>,
    pub reason_detail: Option<FailureReason>,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub duration_ms: Option<i64>,
    pub findings_count: i64,
    pub logs: Vec<LogLine>,
    pub denials: Vec<Denial>,
}

/// A page of runs, newest first, and the cursor of the next one.
#[derive(Debug, Clone, PartialEq)]
pub struct RunPage {
    pub items: Vec<RunRecord>,
    pub next: Option<String>,
}

/// The reason stored for runs found unfinished at open.
const INTERRUPTED: &str = "interrupted: the daemon stopped while the run was queued or running";

#[derive(FromRow)]
struct RunRow {
    id: String,
    probe: String,
    status: String,
    trigger: String,
    reason: Option<String>,
    reason_detail: Option<String>,
    created_at: i64,
    started_at: Option<i64>,
    finished_at: Option<i64>,
    duration_ms: Option<i64>,
    findings_count: i64,
    logs: String,
    denials: String,
}

impl Store {
    /// Records that a run of `probe` was queued.
    pub async fn record_run_queued(&self, probe: &str, run_id: &str) -> Result<(), StoreError> {
        self.insert_run(probe, run_id, RunPhase::Queued, Trigger::Schedule)
            .await
    }

    /// Records that a run of `probe` was queued, and what started it.
    pub async fn record_run_queued_by(
        &self,
        probe: &str,
        run_id: &str,
        trigger: Trigger,
    ) -> Result<(), StoreError> {
        self.insert_run(probe, run_id, RunPhase::Queued, trigger)
            .await
    }

    /// Records that a run of `probe` started (queued before or not).
    pub async fn record_run_started(&self, probe: &str, run_id: &str) -> Result<(), StoreError> {
        self.insert_run(probe, run_id, RunPhase::Running, Trigger::Schedule)
            .await
    }

    async fn insert_run(
        &self,
        probe: &str,
        run_id: &str,
        state: RunPhase,
        trigger: Trigger,
    ) -> Result<(), StoreError> {
        let now = self.now_ms();
        let started = (state == RunPhase::Running).then_some(now);
        let mut tx = self
            .writer
            .begin_with(dialect::BEGIN_WRITE)
            .await
            .ctx("begin")?;
        probes::ensure(&mut tx, probe, now).await?;
        sqlx::query(
            "INSERT INTO runs (id, probe, status, created_at, started_at, trigger) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (id) DO UPDATE SET status = excluded.status, \
             started_at = COALESCE(runs.started_at, excluded.started_at)",
        )
        .bind(run_id)
        .bind(probe)
        .bind(state.as_str())
        .bind(now)
        .bind(started)
        .bind(trigger.as_str())
        .execute(&mut *tx)
        .await
        .ctx("record run")?;
        tx.commit().await.ctx("commit run")?;
        Ok(())
    }

    /// Records how a run ended and, in the same transaction, its findings:
    /// new ones inserted, persisting ones touched, and the probe's open
    /// findings it no longer reports resolved. A failed run changes no finding.
    pub async fn record_run_finished(&self, outcome: &RunOutcome) -> Result<RunIngest, StoreError> {
        self.finish_run(outcome, false).await
    }

    /// [`Store::record_run_finished`] with one statement per finding: the
    /// baseline of the ingest benchmark, not for the daemon.
    #[doc(hidden)]
    pub async fn record_run_finished_one_by_one(
        &self,
        outcome: &RunOutcome,
    ) -> Result<RunIngest, StoreError> {
        self.finish_run(outcome, true).await
    }

    async fn finish_run(
        &self,
        outcome: &RunOutcome,
        one_by_one: bool,
    ) -> Result<RunIngest, StoreError> {
        let _changing = self.changing();
        let now = self.now_ms();
        let succeeded = outcome.status == RunStatus::Succeeded;
        let state = if succeeded {
            RunPhase::Succeeded
        } else {
            RunPhase::Failed
        };
        let batch = if succeeded {
            findings::prepare(&outcome.probe, &outcome.findings)?
        } else {
            findings::Batch::empty()
        };
        let count = batch.len() as u64;
        let duration_ms = i64::try_from(outcome.duration.as_millis()).unwrap_or(i64::MAX);
        let reason = outcome.reason.as_ref().map(|r| r.to_string());
        let reason_detail = outcome
            .reason
            .as_ref()
            .map(|r| to_json(r, "the failure reason"))
            .transpose()?;
        let logs = to_json(&outcome.logs, "the run's logs")?;
        let denials = to_json(&outcome.denials, "the run's denials")?;

        let mut tx = self
            .writer
            .begin_with(dialect::BEGIN_WRITE)
            .await
            .ctx("begin")?;
        sqlx::query(dialect::INGEST_CACHE)
            .execute(&mut *tx)
            .await
            .ctx("size the page cache")?;
        probes::ensure(&mut tx, &outcome.probe, now).await?;
        sqlx::query(
            "INSERT INTO runs (id, probe, status, reason, reason_detail, created_at, started_at, \
             finished_at, duration_ms, findings_count, logs, denials) \
             VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT (id) DO UPDATE SET status = excluded.status, reason = excluded.reason, \
             reason_detail = excluded.reason_detail, \
             started_at = COALESCE(runs.started_at, excluded.started_at), \
             finished_at = excluded.finished_at, duration_ms = excluded.duration_ms, \
             findings_count = excluded.findings_count, logs = excluded.logs, \
             denials = excluded.denials",
        )
        .bind(&outcome.run_id)
        .bind(&outcome.probe)
        .bind(state.as_str())
        .bind(reason)
        .bind(reason_detail)
        .bind(now.saturating_sub(duration_ms))
        .bind(now)
        .bind(duration_ms)
        .bind(i64::try_from(count).unwrap_or(i64::MAX))
        .bind(logs)
        .bind(denials)
        .execute(&mut *tx)
        .await
        .ctx("record run")?;
        let mut ingest = RunIngest::default();
        if succeeded {
            let seen = probes::last_seen(&mut tx, &outcome.probe).await?;
            let open = findings::open_findings(&mut tx, &outcome.probe).await?;
            let changes = batch.changes(open);
            let watermark = findings::id_watermark(&mut tx).await?;
            if one_by_one {
                findings::upsert_one_by_one(&mut tx, &outcome.probe, &outcome.run_id, now, &batch)
                    .await?;
            } else {
                findings::upsert(
                    &mut tx,
                    &outcome.probe,
                    &outcome.run_id,
                    now,
                    &batch,
                    &changes.write,
                )
                .await?;
            }
            findings::index_new_text(&mut tx, watermark).await?;
            ingest = RunIngest {
                findings: count,
                new: findings::count_new(&mut tx, watermark).await?,
                resolved: findings::resolve(
                    &mut tx,
                    &changes.resolve,
                    now,
                    (seen.0, seen.1.as_deref()),
                )
                .await?,
            };
            probes::mark_seen(&mut tx, &outcome.probe, now, &outcome.run_id).await?;
        }
        tx.commit().await.ctx("commit run")?;
        Ok(ingest)
    }

    /// Marks every run still queued or running as interrupted; how many.
    /// [`Store::open`] calls it: such runs belong to a process that died.
    pub async fn mark_interrupted(&self) -> Result<u64, StoreError> {
        let now = self.now_ms();
        let done = sqlx::query(
            "UPDATE runs SET status = 'interrupted', reason = $1, finished_at = $2, \
             duration_ms = CASE WHEN started_at IS NULL THEN NULL ELSE $2 - started_at END \
             WHERE status IN ('queued', 'running')",
        )
        .bind(INTERRUPTED)
        .bind(now)
        .execute(&self.writer)
        .await
        .ctx("mark interrupted runs")?;
        Ok(done.rows_affected())
    }

    /// Runs, newest first, of one probe or of all; `after` is the previous
    /// page's cursor. Logs and denials are not loaded (see [`Store::run`]).
    pub async fn runs(
        &self,
        probe: Option<&str>,
        limit: u32,
        after: Option<&str>,
    ) -> Result<RunPage, StoreError> {
        let limit = limit.clamp(1, 1000);
        let mut qb = sqlx::QueryBuilder::<dialect::Db>::new(
            "SELECT id, probe, status, trigger, reason, NULL AS reason_detail, created_at, started_at, \
             finished_at, duration_ms, findings_count, '[]' AS logs, '[]' AS denials FROM runs \
             WHERE 1 = 1",
        );
        if let Some(p) = probe {
            qb.push(" AND probe = ").push_bind(p.to_string());
        }
        if let Some(cursor) = after {
            let (at, id) = parse_cursor(cursor)?;
            qb.push(" AND (created_at < ")
                .push_bind(at)
                .push(" OR (created_at = ")
                .push_bind(at)
                .push(" AND id < ")
                .push_bind(id)
                .push("))");
        }
        qb.push(" ORDER BY created_at DESC, id DESC LIMIT ")
            .push_bind(i64::from(limit) + 1);
        let mut rows = qb
            .build_query_as::<RunRow>()
            .fetch_all(&self.reader)
            .await
            .ctx("list runs")?;
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next = match (more, rows.last()) {
            (true, Some(last)) => Some(format!("{}.{}", last.created_at, last.id)),
            _ => None,
        };
        let items = rows
            .into_iter()
            .map(RunRecord::try_from)
            .collect::<Result<_, _>>()?;
        Ok(RunPage { items, next })
    }

    /// Each probe's newest finished run (with logs), by probe name.
    pub async fn latest_finished_runs(&self) -> Result<Vec<RunRecord>, StoreError> {
        let rows = sqlx::query_as::<_, RunRow>(
            "SELECT id, probe, status, trigger, reason, reason_detail, created_at, started_at, \
             finished_at, duration_ms, findings_count, logs, denials FROM runs r \
             WHERE status IN ('succeeded', 'failed') AND id = (SELECT id FROM runs x \
             WHERE x.probe = r.probe AND x.status IN ('succeeded', 'failed') \
             ORDER BY x.created_at DESC, x.id DESC LIMIT 1) ORDER BY probe",
        )
        .fetch_all(&self.reader)
        .await
        .ctx("latest runs")?;
        rows.into_iter().map(RunRecord::try_from).collect()
    }

    /// When each probe last succeeded (finish time), by probe name.
    pub async fn last_successes(&self) -> Result<Vec<(String, Timestamp)>, StoreError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT probe, MAX(finished_at) FROM runs WHERE status = 'succeeded' \
             AND finished_at IS NOT NULL GROUP BY probe ORDER BY probe",
        )
        .fetch_all(&self.reader)
        .await
        .ctx("last successes")?;
        rows.into_iter()
            .map(|(p, t)| Ok((p, timestamp(t, "runs.finished_at")?)))
            .collect()
    }

    /// Runs queued or running, oldest first.
    pub async fn unfinished_runs(&self) -> Result<Vec<RunRecord>, StoreError> {
        let rows = sqlx::query_as::<_, RunRow>(
            "SELECT id, probe, status, trigger, reason, NULL AS reason_detail, created_at, \
             started_at, finished_at, duration_ms, findings_count, '[]' AS logs, '[]' AS denials \
             FROM runs WHERE status IN ('queued', 'running') ORDER BY created_at, id",
        )
        .fetch_all(&self.reader)
        .await
        .ctx("unfinished runs")?;
        rows.into_iter().map(RunRecord::try_from).collect()
    }

    /// One run with its logs, denials and failure reason.
    pub async fn run(&self, id: &str) -> Result<Option<RunRecord>, StoreError> {
        let row = sqlx::query_as::<_, RunRow>(
            "SELECT id, probe, status, trigger, reason, reason_detail, created_at, started_at, \
             finished_at, duration_ms, findings_count, logs, denials FROM runs WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.reader)
        .await
        .ctx("get run")?;
        row.map(RunRecord::try_from).transpose()
    }
}

/// `created_at.id`; run ids may contain dots, so split at the first one.
fn parse_cursor(cursor: &str) -> Result<(i64, String), StoreError> {
    let bad = || StoreError::InvalidInput {
        what: "cursor",
        detail: format!("{cursor:?} is not a cursor this store returned"),
    };
    let (at, id) = cursor.split_once('.').ok_or_else(bad)?;
    Ok((at.parse().map_err(|_| bad())?, id.to_string()))
}

impl TryFrom<RunRow> for RunRecord {
    type Error = StoreError;
    fn try_from(r: RunRow) -> Result<Self, StoreError> {
        let opt_ts = |v: Option<i64>, what| v.map(|t| timestamp(t, what)).transpose();
        Ok(RunRecord {
            state: r.status.parse()?,
            trigger: Trigger::parse(&r.trigger)?,
            reason_detail: r
                .reason_detail
                .as_deref()
                .map(|t| from_json(t, "runs.reason_detail"))
                .transpose()?,
            created_at: timestamp(r.created_at, "runs.created_at")?,
            started_at: opt_ts(r.started_at, "runs.started_at")?,
            finished_at: opt_ts(r.finished_at, "runs.finished_at")?,
            logs: from_json(&r.logs, "runs.logs")?,
            denials: from_json(&r.denials, "runs.denials")?,
            id: r.id,
            probe: r.probe,
            reason: r.reason,
            duration_ms: r.duration_ms,
            findings_count: r.findings_count,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::test_support::{failed, finding, open, succeeded};
    use super::RunPhase;
    use crate::bindings::Severity;
    use crate::runtime::{Denial, FailureReason, LogLevel, LogLine};

    #[tokio::test]
    async fn a_run_is_recorded_with_its_logs_denials_and_reason() {
        let dir = tempfile::tempdir().unwrap();
        let (store, clock) = open(dir.path()).await;
        store.record_run_started("wa", "r1").await.unwrap();
        let started = clock.now();
        assert_eq!(
            store.run("r1").await.unwrap().unwrap().state,
            RunPhase::Running
        );
        clock.advance(Duration::from_secs(2));
        let mut outcome = succeeded(
            "wa",
            "r1",
            vec![finding("R", Severity::Low, "ns", "p", None)],
        );
        outcome.logs.push(LogLine {
            at_ms: 3,
            level: LogLevel::Info,
            source: "probe".into(),
            message: "<script>alert(1)</script>".into(),
            fields: vec![("k".into(), "v".into())],
        });
        outcome.denials.push(Denial {
            capability: "kube".into(),
            detail: "get v1/Secret a/b".into(),
        });
        store.record_run_finished(&outcome).await.unwrap();
        let run = store.run("r1").await.unwrap().unwrap();
        assert_eq!(run.state, RunPhase::Succeeded);
        assert_eq!(run.started_at, Some(started), "the start time is kept");
        assert_eq!(run.finished_at, Some(clock.now()));
        assert_eq!(run.duration_ms, Some(25));
        assert_eq!((run.logs, run.denials), (outcome.logs, outcome.denials));

        store
            .record_run_finished(&failed("wa", "r2"))
            .await
            .unwrap();
        let run = store.run("r2").await.unwrap().unwrap();
        assert_eq!(run.state, RunPhase::Failed);
        assert_eq!(
            run.reason.as_deref(),
            Some("the host failed while running the probe: boom")
        );
        assert_eq!(
            run.reason_detail,
            Some(FailureReason::Host {
                message: "boom".into()
            })
        );
        assert_eq!(run.findings_count, 0);
        assert!(store.run("nope").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn the_writer_ingests_with_a_large_cache_and_journals_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = open(dir.path()).await;
        store
            .record_run_finished(&succeeded("wa", "r1", vec![]))
            .await
            .unwrap();
        let pragma = |pool: &super::super::dialect::Pool, sql: &'static str| {
            let pool = pool.clone();
            async move {
                sqlx::query_scalar::<_, i64>(sql)
                    .fetch_one(&pool)
                    .await
                    .unwrap()
            }
        };
        assert_eq!(pragma(&store.writer, "PRAGMA cache_size").await, -65536);
        assert_eq!(
            pragma(&store.writer, "PRAGMA temp_store").await,
            2,
            "MEMORY"
        );
        assert_eq!(
            pragma(&store.reader, "PRAGMA temp_store").await,
            2,
            "MEMORY"
        );
    }

    #[tokio::test]
    async fn runs_left_running_are_interrupted_at_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = open(dir.path()).await;
        store.record_run_queued("wa", "q").await.unwrap();
        store.record_run_started("wa", "r").await.unwrap();
        store.record_run_started("wa", "done").await.unwrap();
        store
            .record_run_finished(&succeeded("wa", "done", vec![]))
            .await
            .unwrap();
        store.close().await;
        drop(store);

        let (store, _) = open(dir.path()).await;
        for id in ["q", "r"] {
            let run = store.run(id).await.unwrap().unwrap();
            assert_eq!(run.state, RunPhase::Interrupted, "{id}");
            assert!(run.reason.unwrap().starts_with("interrupted"));
            assert!(run.finished_at.is_some());
        }
        assert_eq!(
            store.run("done").await.unwrap().unwrap().state,
            RunPhase::Succeeded
        );
        assert_eq!(
            store.mark_interrupted().await.unwrap(),
            0,
            "nothing left to mark"
        );
    }

    #[tokio::test]
    async fn runs_are_listed_per_probe_newest_first_in_pages() {
        let dir = tempfile::tempdir().unwrap();
        let (store, clock) = open(dir.path()).await;
        for i in 0..5 {
            store
                .record_run_finished(&succeeded("a", &format!("a.{i}"), vec![]))
                .await
                .unwrap();
            store
                .record_run_finished(&failed("b", &format!("b.{i}")))
                .await
                .unwrap();
            clock.advance(Duration::from_secs(1));
        }
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = store.runs(Some("a"), 2, after.as_deref()).await.unwrap();
            seen.extend(page.items.iter().map(|r| r.id.clone()));
            assert!(
                page.items
                    .iter()
                    .all(|r| r.logs.is_empty() && r.probe == "a")
            );
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        assert_eq!(seen, ["a.4", "a.3", "a.2", "a.1", "a.0"]);
        assert_eq!(store.runs(None, 100, None).await.unwrap().items.len(), 10);
        assert!(store.runs(None, 10, Some("garbage")).await.is_err());
    }
}
