//! The http collector's minutes added up per hour (`http_red_hours`), so
//! that a day, a week or the whole retention of traffic is read in one row
//! per server, route and hour rather than sixty. A batch of minutes marks
//! its hours stale ([`mark_stale`], in the batch's transaction); an hour
//! that is over and stale is added up again from all its minutes
//! ([`Store::roll_up_http_hours`], which the daemon calls every minute), so
//! a minute an agent sends late is counted too. Readers take the hours
//! that are not stale from here and the rest from the minutes.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::Row;

use super::collectors::{RED_COLUMNS, fetch_red_rows, red_rows_sql, values_sql};
use super::{HttpRedRow, QueryContext, Store, StoreError, dialect, to_json};
use crate::collectors::query::merged_buckets;

/// One hour, ms.
pub const HOUR_MS: i64 = 3_600_000;
/// Columns bound per hour row, and rows per INSERT statement.
const HOUR_PARAMS: usize = 13;
const HOURS_PER_STATEMENT: usize = 500;
const _: () = assert!(HOUR_PARAMS * HOURS_PER_STATEMENT <= dialect::MAX_BIND_PARAMS);

/// The INSERT of `rows` hour rows.
fn insert_hours_sql(rows: usize) -> &'static str {
    static SQL: [std::sync::OnceLock<String>; HOURS_PER_STATEMENT + 1] =
        [const { std::sync::OnceLock::new() }; HOURS_PER_STATEMENT + 1];
    assert!((1..=HOURS_PER_STATEMENT).contains(&rows));
    SQL[rows].get_or_init(|| {
        values_sql(
            &format!(
                "INSERT INTO http_red_hours (hour, {}) VALUES ",
                RED_COLUMNS.join(", ")
            ),
            rows,
            HOUR_PARAMS,
            "",
        )
    })
}

/// The start of the hour `ms` is in.
pub fn hour_of(ms: i64) -> i64 {
    ms.div_euclid(HOUR_MS) * HOUR_MS
}

/// Writes `rows` (a batch's minutes, inside its transaction): each
/// replaces what was stored for its minute, and marks its hour stale.
/// Minutes from before the minutes kept (see
/// [`Store::delete_http_minutes_before`]) are not taken: their hours are
/// final. Returns how many were left out.
pub(super) async fn write_minutes(
    conn: &mut dialect::Conn,
    rows: &[HttpRedRow],
) -> Result<usize, StoreError> {
    if rows.is_empty() {
        return Ok(0);
    }
    let kept_since: i64 = sqlx::query_scalar("SELECT since FROM http_red_minutes_kept")
        .fetch_one(&mut *conn)
        .await
        .ctx("read since when http minutes are kept")?;
    let mut hours = BTreeSet::new();
    let mut left_out = 0;
    for r in rows {
        if r.minute_ms < kept_since {
            left_out += 1;
            continue;
        }
        hours.insert(hour_of(r.minute_ms));
        let buckets = to_json(&r.buckets, "http duration buckets")?;
        let q = sqlx::query(
            "INSERT INTO http_red (minute, node, namespace, pod, server, method, route, \
             requests, errors, client_errors, duration_sum_us, duration_max_us, buckets) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
             ON CONFLICT (minute, node, server, method, route) DO UPDATE SET \
             namespace = excluded.namespace, pod = excluded.pod, \
             requests = excluded.requests, errors = excluded.errors, \
             client_errors = excluded.client_errors, \
             duration_sum_us = excluded.duration_sum_us, \
             duration_max_us = excluded.duration_max_us, buckets = excluded.buckets",
        );
        bind_red(q, r, &buckets)
            .execute(&mut *conn)
            .await
            .ctx("upsert http red")?;
    }
    for hour in hours {
        sqlx::query(
            "INSERT INTO http_red_stale_hours (hour) VALUES ($1) ON CONFLICT (hour) DO NOTHING",
        )
        .bind(hour)
        .execute(&mut *conn)
        .await
        .ctx("mark an hour of http minutes stale")?;
    }
    if left_out > 0 {
        tracing::warn!(
            minutes = left_out,
            kept_since,
            "http minutes older than the minutes kept were left out (their hours are final)"
        );
    }
    Ok(left_out)
}

type RedQuery<'q> = sqlx::query::Query<'q, dialect::Db, <dialect::Db as sqlx::Database>::Arguments>;

/// Binds `r`'s columns in the tables' order (its period's start, then
/// [`RED_COLUMNS`]), `buckets` being its histogram as JSON.
fn bind_red<'q>(q: RedQuery<'q>, r: &'q HttpRedRow, buckets: &'q str) -> RedQuery<'q> {
    q.bind(r.minute_ms)
        .bind(&r.node)
        .bind(&r.namespace)
        .bind(&r.pod)
        .bind(&r.server)
        .bind(&r.method)
        .bind(&r.route)
        .bind(r.requests)
        .bind(r.errors)
        .bind(r.client_errors)
        .bind(r.duration_sum_us)
        .bind(r.duration_max_us)
        .bind(buckets)
}

/// `minutes` added up per hour, node, serving pod, server, method and
/// route (their `minute_ms` is then the hour's start).
pub fn add_up_hours(minutes: &[HttpRedRow]) -> Vec<HttpRedRow> {
    type Key<'a> = (i64, &'a str, &'a str, &'a str, &'a str, &'a str, &'a str);
    let mut groups: BTreeMap<Key<'_>, Vec<&HttpRedRow>> = BTreeMap::new();
    for m in minutes {
        let key = (
            hour_of(m.minute_ms),
            m.node.as_str(),
            m.namespace.as_str(),
            m.pod.as_str(),
            m.server.as_str(),
            m.method.as_str(),
            m.route.as_str(),
        );
        groups.entry(key).or_default().push(m);
    }
    groups
        .into_iter()
        .map(
            |((hour, node, namespace, pod, server, method, route), rows)| HttpRedRow {
                minute_ms: hour,
                node: node.into(),
                namespace: namespace.into(),
                pod: pod.into(),
                server: server.into(),
                method: method.into(),
                route: route.into(),
                requests: rows.iter().map(|r| r.requests).sum(),
                errors: rows.iter().map(|r| r.errors).sum(),
                client_errors: rows.iter().map(|r| r.client_errors).sum(),
                duration_sum_us: rows.iter().map(|r| r.duration_sum_us).sum(),
                duration_max_us: rows.iter().map(|r| r.duration_max_us).max().unwrap_or(0),
                buckets: merged_buckets(rows.iter().copied()),
            },
        )
        .collect()
}

impl Store {
    /// Adds up again the stale hours that are over (their end at or before
    /// the store's clock), oldest first, at most `max_hours` of them;
    /// returns how many it added up. Each hour in a transaction of its own,
    /// so that batches of minutes wait for one hour at most.
    pub async fn roll_up_http_hours(&self, max_hours: u32) -> Result<usize, StoreError> {
        let over_by = self.now_ms() - HOUR_MS;
        let hours: Vec<i64> = sqlx::query_scalar(
            "SELECT hour FROM http_red_stale_hours WHERE hour <= $1 ORDER BY hour LIMIT $2",
        )
        .bind(over_by)
        .bind(i64::from(max_hours))
        .fetch_all(&self.reader)
        .await
        .ctx("read stale hours of http minutes")?;
        let mut done = 0;
        for hour in hours {
            if self.roll_up_hour(hour).await? {
                done += 1;
            }
        }
        Ok(done)
    }

    /// Adds up one hour from its minutes, if it is still stale.
    async fn roll_up_hour(&self, hour: i64) -> Result<bool, StoreError> {
        // The write lock first: no batch can add a minute between the
        // read of the minutes and the stale mark's removal.
        let mut tx = self
            .writer
            .begin_with(dialect::BEGIN_WRITE)
            .await
            .ctx("begin adding up an hour of http minutes")?;
        let stale: Option<i64> =
            sqlx::query_scalar("SELECT hour FROM http_red_stale_hours WHERE hour = $1")
                .bind(hour)
                .fetch_optional(&mut *tx)
                .await
                .ctx("read a stale hour of http minutes")?;
        if stale.is_none() {
            return Ok(false);
        }
        static MINUTES: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let sql = MINUTES.get_or_init(|| {
            red_rows_sql(
                "minute",
                &format!(
                    "SELECT minute, {} FROM http_red WHERE minute >= $1 AND minute < $2",
                    RED_COLUMNS.join(", ")
                ),
            )
        });
        let minutes = fetch_red_rows(
            &mut tx,
            sql,
            hour,
            hour + HOUR_MS,
            None,
            false,
            "read an hour of http minutes",
        )
        .await?;
        let rows = add_up_hours(&minutes);
        sqlx::query("DELETE FROM http_red_hours WHERE hour = $1")
            .bind(hour)
            .execute(&mut *tx)
            .await
            .ctx("delete an hour of http traffic")?;
        let buckets: Vec<String> = rows
            .iter()
            .map(|r| to_json(&r.buckets, "http duration buckets"))
            .collect::<Result<_, _>>()?;
        for (chunk, buckets) in rows
            .chunks(HOURS_PER_STATEMENT)
            .zip(buckets.chunks(HOURS_PER_STATEMENT))
        {
            let mut q = sqlx::query(insert_hours_sql(chunk.len()));
            for (r, b) in chunk.iter().zip(buckets) {
                q = bind_red(q, r, b);
            }
            q.execute(&mut *tx)
                .await
                .ctx("write an hour of http traffic")?;
        }
        sqlx::query("DELETE FROM http_red_stale_hours WHERE hour = $1")
            .bind(hour)
            .execute(&mut *tx)
            .await
            .ctx("mark an hour of http minutes added up")?;
        tx.commit().await.ctx("commit an hour of http traffic")?;
        Ok(true)
    }

    /// Deletes the http minutes of the whole hours before `cutoff_ms`,
    /// keeping their hours: each stale hour among them is added up first,
    /// and minutes that come for them later are not taken. Returns how
    /// many rows went. (`delete_collector_data_before` deletes minutes and
    /// hours alike; this keeps minutes for less time than hours.)
    pub async fn delete_http_minutes_before(&self, cutoff_ms: i64) -> Result<u64, StoreError> {
        let before = hour_of(cutoff_ms);
        // Kept from here first: a batch after this adds nothing older.
        sqlx::query("UPDATE http_red_minutes_kept SET since = $1 WHERE since < $1")
            .bind(before)
            .execute(&self.writer)
            .await
            .ctx("move since when http minutes are kept")?;
        let stale: Vec<i64> = sqlx::query_scalar(
            "SELECT hour FROM http_red_stale_hours WHERE hour < $1 ORDER BY hour",
        )
        .bind(before)
        .fetch_all(&self.reader)
        .await
        .ctx("read stale hours of http minutes")?;
        for hour in stale {
            self.roll_up_hour(hour).await?;
        }
        Ok(sqlx::query("DELETE FROM http_red WHERE minute < $1")
            .bind(before)
            .execute(&self.writer)
            .await
            .ctx("delete old http minutes")?
            .rows_affected())
    }

    /// The http traffic of `[since, until)` in as few rows as the store has
    /// it: the whole hours inside the window that are added up as hours,
    /// the rest (the window's ragged ends, hours still stale) as minutes,
    /// all from one snapshot. Read newest first, at most `cap` rows in all:
    /// when the cap cuts a read short, `complete_since` says from when the
    /// rows are complete, and only rows from then on are returned.
    pub async fn http_red_by_hours(
        &self,
        since_ms: i64,
        until_ms: i64,
        cap: u32,
    ) -> Result<HttpWindow, StoreError> {
        let mut tx = self
            .reader
            .begin()
            .await
            .ctx("begin reading http traffic")?;
        let first = hour_of(since_ms.saturating_add(HOUR_MS - 1));
        let last = hour_of(until_ms);
        // (start, end, in hours), newest first and not overlapping, so that
        // a read the cap cuts short leaves everything newer complete.
        let mut reads: Vec<(i64, i64, bool)> = Vec::new();
        if last > first {
            reads.push((last, until_ms, false));
            let mut newer = last;
            for hour in read_stale(&mut tx, first, last).await? {
                reads.push((hour + HOUR_MS, newer, true));
                reads.push((hour, hour + HOUR_MS, false));
                newer = hour;
            }
            reads.push((first, newer, true));
            reads.push((since_ms, first, false));
        } else {
            reads.push((since_ms, until_ms, false));
        }
        let mut rows = Vec::new();
        let mut budget = cap;
        let mut complete_since: Option<i64> = None;
        for (start, end, hours) in reads {
            if start >= end {
                continue;
            }
            let got = if hours {
                read_hours(&mut tx, start, end, budget).await?
            } else {
                super::collectors::read_minutes(&mut tx, start, end, budget, true).await?
            };
            let capped = got.len() >= budget as usize;
            if capped {
                let width = if hours { HOUR_MS } else { 60_000 };
                complete_since = Some(got.last().map_or(end, |r| r.minute_ms + width));
            }
            budget -= got.len() as u32;
            rows.extend(got);
            if capped {
                break;
            }
        }
        if let Some(from) = complete_since {
            rows.retain(|r| r.minute_ms >= from);
        }
        Ok(HttpWindow {
            rows,
            complete_since,
        })
    }

    /// The added-up hours that start in `[since, until)` and are not stale
    /// (their `minute_ms` is the hour's start), newest first, at most `cap`.
    pub async fn http_red_hours_newest(
        &self,
        since_ms: i64,
        until_ms: i64,
        cap: u32,
    ) -> Result<Vec<HttpRedRow>, StoreError> {
        let mut conn = self
            .reader
            .acquire()
            .await
            .ctx("read hours of http traffic")?;
        read_hours(&mut conn, since_ms, until_ms, cap).await
    }

    /// The stale hours that start in `[since, until)`, newest first: their
    /// figures are in the minutes only.
    pub async fn http_stale_hours(
        &self,
        since_ms: i64,
        until_ms: i64,
    ) -> Result<Vec<i64>, StoreError> {
        let mut conn = self
            .reader
            .acquire()
            .await
            .ctx("read stale hours of http minutes")?;
        read_stale(&mut conn, since_ms, until_ms).await
    }
}

/// What [`Store::http_red_by_hours`] read.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpWindow {
    /// Hours and minutes (`minute_ms` is the start of either), newest first.
    pub rows: Vec<HttpRedRow>,
    /// Set when the cap cut the read short: the rows cover from here (ms) on.
    pub complete_since: Option<i64>,
}

async fn read_hours(
    conn: &mut dialect::Conn,
    since_ms: i64,
    until_ms: i64,
    cap: u32,
) -> Result<Vec<HttpRedRow>, StoreError> {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let sql = SQL.get_or_init(|| {
        red_rows_sql(
            "hour",
            &format!(
                "SELECT hour, {} FROM http_red_hours WHERE hour >= $1 AND hour < $2 \
                 AND hour NOT IN (SELECT hour FROM http_red_stale_hours) \
                 ORDER BY hour DESC LIMIT $3",
                RED_COLUMNS.join(", ")
            ),
        )
    });
    fetch_red_rows(
        conn,
        sql,
        since_ms,
        until_ms,
        Some(cap),
        true,
        "read hours of http traffic",
    )
    .await
}

async fn read_stale(
    conn: &mut dialect::Conn,
    since_ms: i64,
    until_ms: i64,
) -> Result<Vec<i64>, StoreError> {
    let rows = sqlx::query(
        "SELECT hour FROM http_red_stale_hours WHERE hour >= $1 AND hour < $2 \
         ORDER BY hour DESC",
    )
    .bind(since_ms)
    .bind(until_ms)
    .fetch_all(&mut *conn)
    .await
    .ctx("read stale hours of http minutes")?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::test_support::{T0_MS, open};
    use super::*;
    use crate::store::CollectorBatch;

    fn minute(minute_ms: i64, pod: &str, route: &str, requests: i64, max_us: i64) -> HttpRedRow {
        let mut buckets = vec![0u64; crate::collectors::duration_buckets_us().len() + 1];
        buckets[crate::collectors::bucket_of(max_us as u64)] = requests as u64;
        HttpRedRow {
            minute_ms,
            node: "n1".into(),
            namespace: "shop".into(),
            pod: pod.into(),
            server: "10.0.0.7:8080".into(),
            method: "GET".into(),
            route: route.into(),
            requests,
            errors: requests / 10,
            client_errors: 1,
            duration_sum_us: requests * max_us,
            duration_max_us: max_us,
            buckets,
        }
    }

    #[test]
    fn minutes_add_up_per_hour_and_pod() {
        let h = 10 * HOUR_MS;
        let rows = add_up_hours(&[
            minute(h, "web-0", "/", 10, 1_000),
            minute(h + 59 * 60_000, "web-0", "/", 20, 9_000),
            // The same address serving another pod later in the hour.
            minute(h + 30 * 60_000, "web-1", "/", 5, 2_000),
            minute(h + HOUR_MS, "web-0", "/", 7, 1_000),
        ]);
        assert_eq!(rows.len(), 3);
        let first = &rows[0];
        assert_eq!(
            (first.minute_ms, first.pod.as_str(), first.requests),
            (h, "web-0", 30)
        );
        assert_eq!(
            (first.errors, first.client_errors, first.duration_max_us),
            (3, 2, 9_000)
        );
        assert_eq!(first.duration_sum_us, 10 * 1_000 + 20 * 9_000);
        assert_eq!(first.buckets.iter().sum::<u64>(), 30);
        assert_eq!(
            first.buckets[crate::collectors::bucket_of(9_000)],
            20,
            "each minute's histogram is added, not replaced"
        );
        assert_eq!((rows[1].pod.as_str(), rows[1].requests), ("web-1", 5));
        assert_eq!((rows[2].minute_ms, rows[2].requests), (h + HOUR_MS, 7));
    }

    async fn write(store: &Store, http: Vec<HttpRedRow>) {
        store
            .write_collector_batch(&CollectorBatch {
                http,
                ..Default::default()
            })
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn an_hour_is_added_up_once_over_and_again_when_a_minute_comes_late() {
        let dir = tempfile::tempdir().unwrap();
        let (store, clock) = open(dir.path()).await;
        let h = hour_of(T0_MS);
        clock.advance(Duration::from_secs(30 * 60));
        write(&store, vec![minute(h, "web-0", "/", 10, 1_000)]).await;
        write(&store, vec![minute(h + 60_000, "web-0", "/", 5, 1_000)]).await;
        assert_eq!(store.http_stale_hours(0, i64::MAX).await.unwrap(), [h]);
        // Not over yet: left to the minutes.
        assert_eq!(store.roll_up_http_hours(10).await.unwrap(), 0);
        assert!(
            store
                .http_red_hours_newest(0, i64::MAX, 10)
                .await
                .unwrap()
                .is_empty()
        );

        clock.advance(Duration::from_secs(30 * 60));
        assert_eq!(store.roll_up_http_hours(10).await.unwrap(), 1);
        assert!(
            store
                .http_stale_hours(0, i64::MAX)
                .await
                .unwrap()
                .is_empty()
        );
        let hours = store.http_red_hours_newest(0, i64::MAX, 10).await.unwrap();
        assert_eq!(hours.len(), 1);
        assert_eq!((hours[0].minute_ms, hours[0].requests), (h, 15));
        // Nothing stale: nothing to do.
        assert_eq!(store.roll_up_http_hours(10).await.unwrap(), 0);

        // An agent resends a minute of that hour with more requests (its
        // sums replace the minute's) and sends one it had not sent.
        write(
            &store,
            vec![
                minute(h + 60_000, "web-0", "/", 8, 1_000),
                minute(h + 2 * 60_000, "web-0", "/", 4, 1_000),
            ],
        )
        .await;
        // Stale again: readers take it from the minutes until it is added up.
        assert!(
            store
                .http_red_hours_newest(0, i64::MAX, 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(store.roll_up_http_hours(10).await.unwrap(), 1);
        let hours = store.http_red_hours_newest(0, i64::MAX, 10).await.unwrap();
        assert_eq!(hours[0].requests, 10 + 8 + 4);
    }

    #[tokio::test]
    async fn retention_deletes_hours_wholly_before_the_cutoff() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _clock) = open(dir.path()).await;
        let h = hour_of(T0_MS) - 3 * HOUR_MS;
        write(
            &store,
            vec![
                minute(h, "web-0", "/", 1, 1_000),
                minute(h + HOUR_MS, "web-0", "/", 2, 1_000),
                minute(h + 2 * HOUR_MS + 60_000, "web-0", "/", 3, 1_000),
            ],
        )
        .await;
        assert_eq!(store.roll_up_http_hours(1).await.unwrap(), 1, "at most one");
        assert_eq!(store.roll_up_http_hours(10).await.unwrap(), 2);
        // The cutoff inside the second hour: the first goes, the second
        // stays (some of its minutes are younger than the cutoff).
        store
            .delete_collector_data_before(h + HOUR_MS + 30 * 60_000)
            .await
            .unwrap();
        let hours = store.http_red_hours_newest(0, i64::MAX, 10).await.unwrap();
        let starts: Vec<i64> = hours.iter().map(|r| r.minute_ms).collect();
        assert_eq!(starts, [h + 2 * HOUR_MS, h + HOUR_MS]);
    }

    #[tokio::test]
    async fn a_window_reads_whole_hours_as_hours_and_the_rest_as_minutes() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _clock) = open(dir.path()).await;
        // Four hours before the clock, one request a minute, and the
        // window from half past the first to twenty past the last.
        let h = hour_of(T0_MS) - 4 * HOUR_MS;
        let minutes: Vec<HttpRedRow> = (0..240)
            .map(|i| minute(h + i * 60_000, "web-0", "/", 1, 1_000))
            .collect();
        write(&store, minutes).await;
        assert_eq!(store.roll_up_http_hours(10).await.unwrap(), 4);
        // A late minute makes the third hour stale again.
        write(
            &store,
            vec![minute(h + 2 * HOUR_MS + 5 * 60_000, "web-0", "/", 3, 1_000)],
        )
        .await;
        let since = h + 30 * 60_000;
        let until = h + 3 * HOUR_MS + 20 * 60_000;

        let read = store.http_red_by_hours(since, until, 10_000).await.unwrap();
        assert_eq!(read.complete_since, None);
        let requests: i64 = read.rows.iter().map(|r| r.requests).sum();
        // 30 + 60 + 60 + 20 minutes, one of them now with 3 requests.
        assert_eq!(requests, 170 + 2);
        let hour_rows: Vec<i64> = read
            .rows
            .iter()
            .filter(|r| r.requests == 60)
            .map(|r| r.minute_ms)
            .collect();
        assert_eq!(hour_rows, [h + HOUR_MS], "only the added-up, fresh hour");
        assert_eq!(read.rows.len(), 20 + 1 + 60 + 30);
        let starts: Vec<i64> = read.rows.iter().map(|r| r.minute_ms).collect();
        assert!(starts.iter().all(|s| (since..until).contains(s)));

        // Capped: the newest rows, complete from the cut on (the oldest
        // period read may be there in part, so it is left out).
        let read = store.http_red_by_hours(since, until, 30).await.unwrap();
        // The stale hour's minutes, newest first, cut after ten of them.
        assert_eq!(read.complete_since, Some(h + 2 * HOUR_MS + 51 * 60_000));
        assert_eq!(read.rows.len(), 20 + 9);
        // Cut in the head's minutes, after the stale hour and the hour.
        let read = store.http_red_by_hours(since, until, 82).await.unwrap();
        assert_eq!(read.complete_since, Some(h + HOUR_MS));
        assert_eq!(read.rows.len(), 20 + 60 + 1);
        // A window inside one hour is read from its minutes.
        let read = store
            .http_red_by_hours(h + 10 * 60_000, h + 20 * 60_000, 100)
            .await
            .unwrap();
        assert_eq!(read.rows.len(), 10);
    }

    #[tokio::test]
    async fn a_probes_totals_over_hours_are_those_of_the_minutes() {
        use crate::bindings::sonde::probe::collectors::{
            Aggregate, AggregateOp, CollectorQuery, Filter, FilterOp, Value,
        };
        let dir = tempfile::tempdir().unwrap();
        let (store, _clock) = open(dir.path()).await;
        let h = hour_of(T0_MS) - 3 * HOUR_MS;
        // Three hours and a bit, two routes, durations that vary.
        let minutes: Vec<HttpRedRow> = (0..200)
            .map(|i| {
                let route = if i % 4 == 0 { "/cart" } else { "/" };
                minute(
                    h + i * 60_000,
                    "web-0",
                    route,
                    1 + i % 7,
                    500 * (1 + i % 40),
                )
            })
            .collect();
        write(&store, minutes).await;
        assert_eq!(store.roll_up_http_hours(10).await.unwrap(), 3);
        let agg = |op, field: Option<&str>| Aggregate {
            op,
            field: field.map(String::from),
        };
        let mut q = CollectorQuery {
            collector: "http".into(),
            since: h + 10 * 60_000,
            until: Some(h + 190 * 60_000),
            filters: vec![],
            group_by: vec!["route".into()],
            aggregates: vec![
                agg(AggregateOp::Count, None),
                agg(AggregateOp::Sum, Some("errors")),
                agg(AggregateOp::Avg, Some("duration_ms")),
                agg(AggregateOp::P99, Some("duration_ms")),
                agg(AggregateOp::Max, Some("duration_ms")),
            ],
            limit: None,
        };
        let now = T0_MS;
        let from_hours = crate::collectors::query::run(&store, &q, now)
            .await
            .unwrap();
        // A filter on `ts` that keeps every row: the same question, which
        // only the minutes answer.
        let mut by_minute = q.clone();
        by_minute.filters.push(Filter {
            field: "ts".into(),
            op: FilterOp::Ge,
            value: Value::Integer(0),
        });
        let from_minutes = crate::collectors::query::run(&store, &by_minute, now)
            .await
            .unwrap();
        assert_eq!(from_hours.rows, from_minutes.rows);
        assert_eq!(from_hours.rows.len(), 2);
        assert!(!from_hours.truncated);

        // The hours really answer: with the second hour's minutes gone,
        // the hours still count them and the minutes no longer do.
        sqlx::query("DELETE FROM http_red WHERE minute >= $1 AND minute < $2")
            .bind(h + HOUR_MS)
            .bind(h + 2 * HOUR_MS)
            .execute(&store.writer)
            .await
            .unwrap();
        let again = crate::collectors::query::run(&store, &q, now)
            .await
            .unwrap();
        assert_eq!(again.rows, from_hours.rows);
        let fewer = crate::collectors::query::run(&store, &by_minute, now)
            .await
            .unwrap();
        assert_ne!(fewer.rows, from_hours.rows);
        // A question per row (the busiest minute) is not asked of hours.
        q.aggregates = vec![agg(AggregateOp::Max, Some("requests"))];
        let busiest = crate::collectors::query::run(&store, &q, now)
            .await
            .unwrap();
        assert!(
            busiest
                .rows
                .iter()
                .all(|r| matches!(r[1], Value::Integer(n) if n <= 7)),
            "{:?}",
            busiest.rows
        );
    }

    #[tokio::test]
    async fn minutes_kept_less_long_than_hours_leave_their_hours_whole() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _clock) = open(dir.path()).await;
        let h = hour_of(T0_MS) - 3 * HOUR_MS;
        let minutes: Vec<HttpRedRow> = (0..180)
            .map(|i| minute(h + i * 60_000, "web-0", "/", 2, 1_000))
            .collect();
        write(&store, minutes).await;
        // Nothing added up yet: the retention adds up the hours whose
        // minutes it deletes. Minutes over half an hour old go (the clock
        // is at the end of the third hour), whole hours at a time: the
        // first two hours' (the third keeps all of its own).
        let deleted = store
            .apply_retention(&crate::store::Retention {
                http_minutes_max_age: Some(Duration::from_secs(30 * 60)),
                ..Default::default()
            })
            .await
            .unwrap()
            .collector_rows;
        assert_eq!(deleted, 120);
        let minutes_left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM http_red")
            .fetch_one(&store.reader)
            .await
            .unwrap();
        assert_eq!(minutes_left, 60);
        let totals = |rows: Vec<HttpRedRow>| -> Vec<(i64, i64)> {
            rows.iter().map(|r| (r.minute_ms, r.requests)).collect()
        };
        assert_eq!(
            totals(store.http_red_hours_newest(0, i64::MAX, 10).await.unwrap()),
            [(h + HOUR_MS, 120), (h, 120)]
        );
        // A minute that comes late for a deleted hour is left out: adding
        // that hour up again from it alone would lose the rest.
        write(
            &store,
            vec![
                minute(h + HOUR_MS + 60_000, "web-0", "/", 50, 1_000),
                minute(h + 2 * HOUR_MS, "web-0", "/", 9, 1_000),
            ],
        )
        .await;
        assert_eq!(
            store.http_stale_hours(0, i64::MAX).await.unwrap(),
            [h + 2 * HOUR_MS]
        );
        assert_eq!(store.roll_up_http_hours(10).await.unwrap(), 1);
        assert_eq!(
            totals(store.http_red_hours_newest(0, i64::MAX, 10).await.unwrap()),
            [(h + 2 * HOUR_MS, 59 * 2 + 9), (h + HOUR_MS, 120), (h, 120)]
        );
        // The day's view: the hours, and no minute from before the cut.
        let read = store.http_red_by_hours(h, T0_MS, 1_000).await.unwrap();
        let requests: i64 = read.rows.iter().map(|r| r.requests).sum();
        assert_eq!(requests, 120 + 120 + 59 * 2 + 9);
    }
}
