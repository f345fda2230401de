//! The `probes` table: what the daemon's config says about each probe, kept
//! so that runs and findings can name it and the UI can list it.

use jiff::Timestamp;
use sqlx::FromRow;

use super::{QueryContext, Store, StoreError, dialect, timestamp};

/// What the scheduler keeps of a probe across restarts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleState {
    pub name: String,
    /// Suspended by an operator.
    pub suspended: bool,
    /// The last schedule tick a run was started for.
    pub last_tick: Option<Timestamp>,
}

/// One probe as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct ProbeRecord {
    pub name: String,
    /// `builtin`, the component's path, or `unknown` when a run created it.
    pub origin: String,
    pub version: String,
    pub enabled: bool,
    /// Cron expression; `None` for on-demand probes.
    pub schedule: Option<String>,
    /// The probe's config, as JSON text.
    pub config: Option<String>,
}

impl Store {
    /// Creates or updates a probe (from the daemon's config).
    pub async fn upsert_probe(&self, probe: &ProbeRecord) -> Result<(), StoreError> {
        let now = self.now_ms();
        sqlx::query(
            "INSERT INTO probes (name, origin, version, enabled, schedule, config, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7) \
             ON CONFLICT (name) DO UPDATE SET origin = excluded.origin, version = excluded.version, \
             enabled = excluded.enabled, schedule = excluded.schedule, config = excluded.config, \
             updated_at = excluded.updated_at",
        )
        .bind(&probe.name)
        .bind(&probe.origin)
        .bind(&probe.version)
        .bind(probe.enabled)
        .bind(&probe.schedule)
        .bind(&probe.config)
        .bind(now)
        .execute(&self.writer)
        .await
        .ctx("upsert probe")?;
        Ok(())
    }

    /// Enables or disables a probe; false when there is no such probe.
    pub async fn set_probe_enabled(&self, name: &str, enabled: bool) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE probes SET enabled = $1, updated_at = $2 WHERE name = $3")
            .bind(enabled)
            .bind(self.now_ms())
            .bind(name)
            .execute(&self.writer)
            .await
            .ctx("enable probe")?;
        Ok(done.rows_affected() > 0)
    }

    /// Deletes a probe with its runs and findings; false when there was none.
    pub async fn delete_probe(&self, name: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM probes WHERE name = $1")
            .bind(name)
            .execute(&self.writer)
            .await
            .ctx("delete probe")?;
        Ok(done.rows_affected() > 0)
    }

    /// Suspends or resumes a probe's schedule (an operator's choice, kept
    /// across restarts and config reloads); false when there is no such probe.
    pub async fn set_probe_suspended(
        &self,
        name: &str,
        suspended: bool,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE probes SET suspended = $1, updated_at = $2 WHERE name = $3")
            .bind(suspended)
            .bind(self.now_ms())
            .bind(name)
            .execute(&self.writer)
            .await
            .ctx("suspend probe")?;
        Ok(done.rows_affected() > 0)
    }

    /// Records the schedule tick a run was started for.
    pub async fn set_last_tick(&self, name: &str, tick: Timestamp) -> Result<(), StoreError> {
        sqlx::query("UPDATE probes SET last_tick = $1 WHERE name = $2")
            .bind(tick.as_millisecond())
            .bind(name)
            .execute(&self.writer)
            .await
            .ctx("record the last tick")?;
        Ok(())
    }

    /// Each probe's scheduling state: suspended, and the last tick run.
    pub async fn schedule_states(&self) -> Result<Vec<ScheduleState>, StoreError> {
        let rows: Vec<(String, bool, Option<i64>)> =
            sqlx::query_as("SELECT name, suspended, last_tick FROM probes ORDER BY name")
                .fetch_all(&self.reader)
                .await
                .ctx("read schedule states")?;
        rows.into_iter()
            .map(|(name, suspended, tick)| {
                Ok(ScheduleState {
                    name,
                    suspended,
                    last_tick: tick.map(|t| timestamp(t, "probes.last_tick")).transpose()?,
                })
            })
            .collect()
    }

    /// Every probe, by name.
    pub async fn probes(&self) -> Result<Vec<ProbeRecord>, StoreError> {
        sqlx::query_as::<_, ProbeRecord>(
            "SELECT name, origin, version, enabled, schedule, config FROM probes ORDER BY name",
        )
        .fetch_all(&self.reader)
        .await
        .ctx("list probes")
    }
}

/// Makes sure `name` has a row, so a run of a probe the config never
/// declared (a one-off run) still satisfies the foreign key.
pub(super) async fn ensure(
    conn: &mut dialect::Conn,
    name: &str,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO probes (name, origin, created_at, updated_at) VALUES ($1, 'unknown', $2, $2) \
         ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .bind(now)
    .execute(&mut *conn)
    .await
    .ctx("ensure probe")?;
    Ok(())
}

/// The probe's last successful run: when it finished and its id (`None`s
/// before its first run since migration 5). Every open finding of the probe
/// was last seen by it.
pub(super) async fn last_seen(
    conn: &mut dialect::Conn,
    name: &str,
) -> Result<(Option<i64>, Option<String>), StoreError> {
    let seen = sqlx::query_as("SELECT seen_at, seen_run FROM probes WHERE name = $1")
        .bind(name)
        .fetch_optional(&mut *conn)
        .await
        .ctx("read the probe's last successful run")?;
    Ok(seen.unwrap_or((None, None)))
}

/// Records run `run_id`, finished at `now`, as the probe's last successful
/// one: the last-seen time and run of every finding it left open.
pub(super) async fn mark_seen(
    conn: &mut dialect::Conn,
    name: &str,
    now: i64,
    run_id: &str,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE probes SET seen_at = $1, seen_run = $2 WHERE name = $3")
        .bind(now)
        .bind(run_id)
        .bind(name)
        .execute(&mut *conn)
        .await
        .ctx("record the probe's last successful run")?;
    Ok(())
}
