//! The node collectors' data: events attributed to pods, per-minute counts
//! of them per pod (derived here from the events written), per-minute HTTP
//! RED aggregates and each collector's state per node. Agents write batches
//! ([`CollectorBatch`], serde-encodable so that a remote agent can send the
//! same thing over the API later); probes read through
//! `crate::collectors::query`.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::{QueryContext, Store, StoreError, dialect, from_json, to_json};

/// Columns bound per collector event, and events per INSERT statement
/// (within the bound-parameter limit of both SQLite and PostgreSQL).
const EVENT_PARAMS: usize = 13;
const EVENTS_PER_STATEMENT: usize = 500;
const _: () = assert!(EVENT_PARAMS * EVENTS_PER_STATEMENT <= dialect::MAX_BIND_PARAMS);

/// One event of an event collector (oom, exec, tcp, listen).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectorEventRow {
    pub ts_ms: i64,
    pub node: String,
    pub collector: String,
    /// What happened (`oom_kill`, `exec`, `reset_received`, ...).
    pub kind: String,
    pub namespace: Option<String>,
    pub pod: Option<String>,
    pub container: Option<String>,
    pub pod_uid: Option<String>,
    pub container_id: Option<String>,
    pub cgroup: Option<String>,
    pub pid: Option<i64>,
    pub comm: Option<String>,
    /// The collector's own fields.
    pub fields: serde_json::Map<String, serde_json::Value>,
}

/// One minute of HTTP requests to one server and route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpRedRow {
    /// Start of the minute, ms since the epoch.
    pub minute_ms: i64,
    pub node: String,
    pub namespace: String,
    pub pod: String,
    pub server: String,
    pub method: String,
    pub route: String,
    pub requests: i64,
    pub errors: i64,
    pub client_errors: i64,
    pub duration_sum_us: i64,
    pub duration_max_us: i64,
    /// Counts per duration bucket (`crate::collectors::DURATION_BUCKETS_US`).
    pub buckets: Vec<u64>,
}

/// A collector's state on one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectorStatusRow {
    pub node: String,
    pub collector: String,
    pub available: bool,
    pub reason: Option<String>,
    /// Records delivered and lost (ring buffer full) since the agent started;
    /// for `http`, requests counted and lost (ring buffer or map full, or
    /// more than 8 open requests on a connection).
    pub events: i64,
    pub dropped: i64,
    pub started_at_ms: i64,
    pub updated_at_ms: i64,
}

/// How many events of one kind a pod (or no pod: `None`) had in one minute
/// on one node.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CollectorCountRow {
    pub collector: String,
    /// Start of the minute, ms since the epoch.
    pub minute_ms: i64,
    pub node: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub pod: Option<String>,
    pub pod_uid: Option<String>,
    pub count: i64,
}

/// The per-minute counts of `events`, one row per collector, minute, node,
/// kind and pod.
pub fn count_events(events: &[CollectorEventRow]) -> Vec<CollectorCountRow> {
    let mut counts: std::collections::BTreeMap<_, i64> = std::collections::BTreeMap::new();
    for e in events {
        let key = (
            e.collector.as_str(),
            e.ts_ms.div_euclid(60_000) * 60_000,
            e.node.as_str(),
            e.kind.as_str(),
            e.namespace.as_deref(),
            e.pod.as_deref(),
            e.pod_uid.as_deref(),
        );
        *counts.entry(key).or_default() += 1;
    }
    counts
        .into_iter()
        .map(
            |((collector, minute_ms, node, kind, namespace, pod, pod_uid), count)| {
                CollectorCountRow {
                    collector: collector.into(),
                    minute_ms,
                    node: node.into(),
                    kind: kind.into(),
                    namespace: namespace.map(Into::into),
                    pod: pod.map(Into::into),
                    pod_uid: pod_uid.map(Into::into),
                    count,
                }
            },
        )
        .collect()
}

/// What an agent writes at once, in one transaction.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CollectorBatch {
    pub events: Vec<CollectorEventRow>,
    /// Replaces the rows of the same minute, node, server and route: an
    /// agent sends a minute's running totals until the minute is over.
    pub http: Vec<HttpRedRow>,
    pub status: Vec<CollectorStatusRow>,
}

impl CollectorBatch {
    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && self.http.is_empty() && self.status.is_empty()
    }

    /// The first row that no agent writes, named by where it is
    /// (`events[3].collector: ...`): a batch from outside the process (an
    /// agent on another node, through the API) is checked before it is
    /// stored.
    pub fn problem(&self) -> Option<String> {
        fn node(n: &str) -> Result<(), String> {
            if n.is_empty() || n.len() > 253 {
                return Err(format!("node: {n:?} is not a node name (1 to 253 bytes)"));
            }
            Ok(())
        }
        fn collector(c: &str) -> Result<(), String> {
            if crate::collectors::spec(c).is_none() {
                let known: Vec<&str> = crate::collectors::COLLECTORS
                    .iter()
                    .map(|c| c.name)
                    .collect();
                return Err(format!(
                    "collector: {c:?} is not a collector (known: {})",
                    known.join(", ")
                ));
            }
            Ok(())
        }
        fn not_negative(what: &str, v: i64) -> Result<(), String> {
            if v < 0 {
                return Err(format!("{what}: {v} is negative"));
            }
            Ok(())
        }
        let event = |e: &CollectorEventRow| -> Result<(), String> {
            node(&e.node)?;
            collector(&e.collector)?;
            not_negative("ts_ms", e.ts_ms)?;
            if e.kind.is_empty() || e.kind.len() > 64 {
                return Err(format!(
                    "kind: {:?} is not an event kind (1 to 64 bytes)",
                    e.kind
                ));
            }
            Ok(())
        };
        let buckets = crate::collectors::duration_buckets_us().len() + 1;
        let http = |r: &HttpRedRow| -> Result<(), String> {
            node(&r.node)?;
            if r.minute_ms < 0 || r.minute_ms % 60_000 != 0 {
                return Err(format!(
                    "minute_ms: {} is not the start of a minute",
                    r.minute_ms
                ));
            }
            for (what, v) in [
                ("requests", r.requests),
                ("errors", r.errors),
                ("client_errors", r.client_errors),
                ("duration_sum_us", r.duration_sum_us),
                ("duration_max_us", r.duration_max_us),
            ] {
                not_negative(what, v)?;
            }
            if r.errors.saturating_add(r.client_errors) > r.requests {
                return Err(format!(
                    "errors: {} errors and {} client errors in {} requests",
                    r.errors, r.client_errors, r.requests
                ));
            }
            if r.buckets.len() != buckets {
                return Err(format!(
                    "buckets: {} counts, not {buckets} (one per duration bucket)",
                    r.buckets.len()
                ));
            }
            Ok(())
        };
        let status = |s: &CollectorStatusRow| -> Result<(), String> {
            node(&s.node)?;
            collector(&s.collector)?;
            not_negative("events", s.events)?;
            not_negative("dropped", s.dropped)
        };
        let rows = (self.events.iter().map(event).enumerate())
            .map(|(i, r)| r.map_err(|e| format!("events[{i}].{e}")))
            .chain(
                (self.http.iter().map(http).enumerate())
                    .map(|(i, r)| r.map_err(|e| format!("http[{i}].{e}"))),
            )
            .chain(
                (self.status.iter().map(status).enumerate())
                    .map(|(i, r)| r.map_err(|e| format!("status[{i}].{e}"))),
            );
        rows.filter_map(Result::err).next()
    }
}

/// `INSERT ... VALUES (...), ...` for `rows` events, built once per size:
/// the text is fixed (placeholders only), never made from data.
fn insert_events_sql(rows: usize) -> &'static str {
    static SQL: [std::sync::OnceLock<String>; EVENTS_PER_STATEMENT + 1] =
        [const { std::sync::OnceLock::new() }; EVENTS_PER_STATEMENT + 1];
    assert!((1..=EVENTS_PER_STATEMENT).contains(&rows));
    SQL[rows].get_or_init(|| {
        values_sql(
            "INSERT INTO collector_events (ts, node, collector, kind, namespace, pod, \
             container, pod_uid, container_id, cgroup, pid, comm, fields) VALUES ",
            rows,
            EVENT_PARAMS,
            "",
        )
    })
}

/// Columns bound per count row.
const COUNT_PARAMS: usize = 8;
const _: () = assert!(COUNT_PARAMS * EVENTS_PER_STATEMENT <= dialect::MAX_BIND_PARAMS);

/// The upsert of `rows` per-minute counts (adding to a stored count), built
/// once per size like [`insert_events_sql`].
fn upsert_counts_sql(rows: usize) -> &'static str {
    static SQL: [std::sync::OnceLock<String>; EVENTS_PER_STATEMENT + 1] =
        [const { std::sync::OnceLock::new() }; EVENTS_PER_STATEMENT + 1];
    assert!((1..=EVENTS_PER_STATEMENT).contains(&rows));
    SQL[rows].get_or_init(|| {
        values_sql(
            "INSERT INTO collector_counts (collector, minute, node, kind, namespace, pod, \
             pod_uid, count) VALUES ",
            rows,
            COUNT_PARAMS,
            " ON CONFLICT (collector, minute, node, kind, namespace, pod, pod_uid) \
             DO UPDATE SET count = collector_counts.count + excluded.count",
        )
    })
}

/// `head`, then `rows` groups of `params` placeholders, then `tail`.
pub(super) fn values_sql(head: &str, rows: usize, params: usize, tail: &str) -> String {
    let mut sql = String::from(head);
    let mut n = 0;
    for i in 0..rows {
        sql.push_str(if i == 0 { "(" } else { ", (" });
        for c in 0..params {
            if c > 0 {
                sql.push_str(", ");
            }
            n += 1;
            dialect::push_placeholder(&mut sql, n);
        }
        sql.push(')');
    }
    sql.push_str(tail);
    sql
}

type EventInsert<'q> =
    sqlx::query::Query<'q, dialect::Db, <dialect::Db as sqlx::Database>::Arguments>;

/// Binds one event's columns in `insert_events_sql`'s order (`fields`: its
/// fields as JSON).
fn bind_event<'q>(
    q: EventInsert<'q>,
    e: &'q CollectorEventRow,
    fields: &'q str,
) -> EventInsert<'q> {
    q.bind(e.ts_ms)
        .bind(&e.node)
        .bind(&e.collector)
        .bind(&e.kind)
        .bind(&e.namespace)
        .bind(&e.pod)
        .bind(&e.container)
        .bind(&e.pod_uid)
        .bind(&e.container_id)
        .bind(&e.cgroup)
        .bind(e.pid)
        .bind(&e.comm)
        .bind(fields)
}

/// Which request of which agent process a batch is (see migration 0007):
/// `instance` is the process's random name, `sequence` the request's
/// number, from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentRequest<'a> {
    pub instance: &'a str,
    pub sequence: i64,
}

impl Store {
    /// Writes a batch in one transaction.
    pub async fn write_collector_batch(&self, batch: &CollectorBatch) -> Result<(), StoreError> {
        self.write_agent_batch(batch, None).await.map(drop)
    }

    /// Writes a batch in one transaction, unless it is `request` again (a
    /// number its agent process already had stored): whether it was
    /// written.
    pub async fn write_agent_batch(
        &self,
        batch: &CollectorBatch,
        request: Option<AgentRequest<'_>>,
    ) -> Result<bool, StoreError> {
        if batch.is_empty() {
            return Ok(true);
        }
        let mut tx = self
            .writer
            .begin_with(dialect::BEGIN_WRITE)
            .await
            .ctx("begin collector batch")?;
        if let Some(r) = request {
            let stored: Option<i64> =
                sqlx::query_scalar("SELECT sequence FROM collector_agents WHERE instance = $1")
                    .bind(r.instance)
                    .fetch_optional(&mut *tx)
                    .await
                    .ctx("read the agent's last request")?;
            if stored.is_some_and(|s| s >= r.sequence) {
                return Ok(false);
            }
            let node = (batch.events.first().map(|e| e.node.as_str()))
                .or_else(|| batch.status.first().map(|s| s.node.as_str()))
                .or_else(|| batch.http.first().map(|h| h.node.as_str()))
                .unwrap_or_default();
            sqlx::query(
                "INSERT INTO collector_agents (instance, node, sequence, at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (instance) DO UPDATE SET node = excluded.node, \
                 sequence = excluded.sequence, at = excluded.at",
            )
            .bind(r.instance)
            .bind(node)
            .bind(r.sequence)
            .bind(self.now_ms())
            .execute(&mut *tx)
            .await
            .ctx("record the agent's request")?;
        }
        insert_batch(&mut tx, batch).await?;
        tx.commit().await.ctx("commit collector batch")?;
        Ok(true)
    }

    /// Stores rows of `collector` that their source may send again (the
    /// API server's audit records, the cluster's events), in one
    /// transaction, each once: `key` names a row within its collector (see
    /// migration 8), and a key stored before is skipped. The collector's
    /// state on `node` (rows taken, at now) is written with them. Returns
    /// the positions in `rows` of those that were new, in order.
    pub async fn write_keyed_events(
        &self,
        collector: &str,
        node: &str,
        rows: &[(String, CollectorEventRow)],
    ) -> Result<Vec<usize>, StoreError> {
        let mut tx = self
            .writer
            .begin_with(dialect::BEGIN_WRITE)
            .await
            .ctx("begin keyed rows")?;
        // The keys not stored before, one statement per chunk: the rows
        // whose key comes back are new (the first of a key twice in a batch).
        let mut new_keys: std::collections::HashSet<String> = std::collections::HashSet::new();
        for chunk in rows.chunks(KEYS_PER_STATEMENT) {
            let pairs: Vec<(&str, i64)> =
                chunk.iter().map(|(k, r)| (k.as_str(), r.ts_ms)).collect();
            let inserted: Vec<String> = sqlx::query_scalar(keyed_insert_sql())
                .bind(collector)
                .bind(to_json(&pairs, "row keys")?)
                .fetch_all(&mut *tx)
                .await
                .ctx("record the rows' keys")?;
            new_keys.extend(inserted);
        }
        let mut batch = CollectorBatch::default();
        let mut stored = Vec::new();
        for (i, (key, row)) in rows.iter().enumerate() {
            if new_keys.remove(key) {
                stored.push(i);
                batch.events.push(CollectorEventRow {
                    collector: collector.into(),
                    ..row.clone()
                });
            }
        }
        let now = self.now_ms();
        // What was taken so far, and since when (the first write's time).
        let before: Option<(i64, i64)> = sqlx::query_as(
            "SELECT events, started_at FROM collector_status WHERE node = $1 AND collector = $2",
        )
        .bind(node)
        .bind(collector)
        .fetch_optional(&mut *tx)
        .await
        .ctx("read the rows taken")?;
        let (taken, started) = before.unwrap_or((0, now));
        batch.status.push(CollectorStatusRow {
            node: node.into(),
            collector: collector.into(),
            available: true,
            reason: None,
            events: taken + batch.events.len() as i64,
            dropped: 0,
            started_at_ms: started,
            updated_at_ms: now,
        });
        insert_batch(&mut tx, &batch).await?;
        tx.commit().await.ctx("commit keyed rows")?;
        Ok(stored)
    }

    /// Marks `collector` unavailable on `node`, saying why (its source
    /// cannot be read); its rows so far stay.
    pub async fn set_collector_unavailable(
        &self,
        collector: &str,
        node: &str,
        reason: &str,
    ) -> Result<(), StoreError> {
        let now = self.now_ms();
        sqlx::query(
            "INSERT INTO collector_status (node, collector, available, reason, events, \
             dropped, started_at, updated_at) VALUES ($1, $2, 0, $3, 0, 0, $4, $4) \
             ON CONFLICT (node, collector) DO UPDATE SET available = 0, \
             reason = excluded.reason, updated_at = excluded.updated_at",
        )
        .bind(node)
        .bind(collector)
        .bind(reason)
        .bind(now)
        .execute(&self.writer)
        .await
        .ctx("mark a collector unavailable")?;
        Ok(())
    }
}

/// Keys per statement of [`Store::write_keyed_events`] (one JSON parameter).
const KEYS_PER_STATEMENT: usize = 1000;

/// Inserts the keys of a JSON array of `[key, ts]` (`$2`) for collector
/// `$1`, returning those that were not there.
fn keyed_insert_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        format!(
            "INSERT INTO collector_seen (collector, key, ts) SELECT $1, a, b FROM ({}) \
             WHERE true ON CONFLICT (collector, key) DO NOTHING RETURNING key",
            dialect::pairs_in_json("$2")
        )
    })
}

/// The columns of `http_red` after `minute` (and of `http_red_hours` after
/// `hour`), in [`HttpRedRow`]'s order.
pub(super) const RED_COLUMNS: [&str; 12] = [
    "node",
    "namespace",
    "pod",
    "server",
    "method",
    "route",
    "requests",
    "errors",
    "client_errors",
    "duration_sum_us",
    "duration_max_us",
    "buckets",
];

/// `inner` (a query of `start` then [`RED_COLUMNS`]) with its rows
/// returned as one JSON array (see [`dialect::json_rows_head`]): a read of
/// many minutes crosses from the driver's thread once, not once per row.
pub(super) fn red_rows_sql(start: &str, inner: &str) -> String {
    let mut columns = vec![start];
    columns.extend(RED_COLUMNS);
    format!(
        "{}{inner}{}",
        dialect::json_rows_head(&columns, &["buckets"]),
        dialect::JSON_ROWS_TAIL
    )
}

/// Runs a [`red_rows_sql`] query bound to `[since, until)` (and `cap`,
/// when given): its rows, ordered by their period's start, newest first
/// or oldest first.
pub(super) async fn fetch_red_rows(
    conn: &mut dialect::Conn,
    sql: &'static str,
    since_ms: i64,
    until_ms: i64,
    cap: Option<u32>,
    newest_first: bool,
    what: &'static str,
) -> Result<Vec<HttpRedRow>, StoreError> {
    let mut q = sqlx::query_scalar(sql).bind(since_ms).bind(until_ms);
    if let Some(cap) = cap {
        q = q.bind(i64::from(cap));
    }
    let text: Option<String> = q.fetch_one(&mut *conn).await.ctx(what)?;
    let mut rows: Vec<HttpRedRow> = match text {
        Some(text) => from_json(&text, what)?,
        None => Vec::new(),
    };
    // The JSON array keeps the inner query's order in SQLite; sorted again
    // so as not to depend on it (a pass over sorted rows).
    if newest_first {
        rows.sort_by_key(|r| std::cmp::Reverse(r.minute_ms));
    } else {
        rows.sort_by_key(|r| r.minute_ms);
    }
    Ok(rows)
}

/// HTTP RED rows of the minutes in `[since, until)`, oldest or newest first,
/// at most `cap`, through `conn` (a read transaction's, for one snapshot).
pub(super) async fn read_minutes(
    conn: &mut dialect::Conn,
    since_ms: i64,
    until_ms: i64,
    cap: u32,
    newest_first: bool,
) -> Result<Vec<HttpRedRow>, StoreError> {
    static NEWEST: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    static OLDEST: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    // The primary key's order: read from its index, not sorted.
    let inner = |order: &str| {
        red_rows_sql(
            "minute",
            &format!(
                "SELECT minute, {} FROM http_red WHERE minute >= $1 AND minute < $2 \
                 ORDER BY minute {order} LIMIT $3",
                RED_COLUMNS.join(", ")
            ),
        )
    };
    let sql = if newest_first {
        NEWEST.get_or_init(|| inner("DESC"))
    } else {
        OLDEST.get_or_init(|| inner("ASC"))
    };
    fetch_red_rows(
        conn,
        sql,
        since_ms,
        until_ms,
        Some(cap),
        newest_first,
        "read http red",
    )
    .await
}

/// Writes a batch's rows (inside the caller's transaction).
async fn insert_batch(conn: &mut dialect::Conn, batch: &CollectorBatch) -> Result<(), StoreError> {
    // Many rows per statement: one statement per event would cap the
    // agent at the statement rate (see BENCHMARKS.md, collector_ring).
    for chunk in batch.events.chunks(EVENTS_PER_STATEMENT) {
        let sql = insert_events_sql(chunk.len());
        let fields: Vec<String> = chunk
            .iter()
            .map(|e| to_json(&e.fields, "collector event fields"))
            .collect::<Result<_, _>>()?;
        let mut q = sqlx::query(sql);
        for (e, f) in chunk.iter().zip(&fields) {
            q = bind_event(q, e, f);
        }
        q.execute(&mut *conn).await.ctx("insert collector events")?;
    }
    // The events' per-minute counts, added to those of earlier batches,
    // many rows per statement (a batch of events spread over many pods
    // has about as many counts as events). Each key once per batch.
    let counts = count_events(&batch.events);
    for chunk in counts.chunks(EVENTS_PER_STATEMENT) {
        let mut q = sqlx::query(upsert_counts_sql(chunk.len()));
        for c in chunk {
            q = q
                .bind(&c.collector)
                .bind(c.minute_ms)
                .bind(&c.node)
                .bind(&c.kind)
                .bind(c.namespace.as_deref().unwrap_or_default())
                .bind(c.pod.as_deref().unwrap_or_default())
                .bind(c.pod_uid.as_deref().unwrap_or_default())
                .bind(c.count);
        }
        q.execute(&mut *conn).await.ctx("upsert collector counts")?;
    }
    super::http_hours::write_minutes(conn, &batch.http).await?;
    for s in &batch.status {
        sqlx::query(
            "INSERT INTO collector_status (node, collector, available, reason, events, \
             dropped, started_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (node, collector) DO UPDATE SET available = excluded.available, \
             reason = excluded.reason, events = excluded.events, dropped = excluded.dropped, \
             started_at = excluded.started_at, updated_at = excluded.updated_at",
        )
        .bind(&s.node)
        .bind(&s.collector)
        .bind(s.available)
        .bind(&s.reason)
        .bind(s.events)
        .bind(s.dropped)
        .bind(s.started_at_ms)
        .bind(s.updated_at_ms)
        .execute(&mut *conn)
        .await
        .ctx("upsert collector status")?;
    }
    Ok(())
}

impl Store {
    /// Events of one collector in `[since, until)`, oldest first, at most `cap`.
    pub async fn collector_events(
        &self,
        collector: &str,
        since_ms: i64,
        until_ms: i64,
        cap: u32,
    ) -> Result<Vec<CollectorEventRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT ts, node, collector, kind, namespace, pod, container, pod_uid, \
             container_id, cgroup, pid, comm, fields FROM collector_events \
             WHERE collector = $1 AND ts >= $2 AND ts < $3 ORDER BY ts, id LIMIT $4",
        )
        .bind(collector)
        .bind(since_ms)
        .bind(until_ms)
        .bind(i64::from(cap))
        .fetch_all(&self.reader)
        .await
        .ctx("read collector events")?;
        rows.iter()
            .map(|r| {
                Ok(CollectorEventRow {
                    ts_ms: r.get(0),
                    node: r.get(1),
                    collector: r.get(2),
                    kind: r.get(3),
                    namespace: r.get(4),
                    pod: r.get(5),
                    container: r.get(6),
                    pod_uid: r.get(7),
                    container_id: r.get(8),
                    cgroup: r.get(9),
                    pid: r.get(10),
                    comm: r.get(11),
                    fields: from_json(r.get::<&str, _>(12), "collector event fields")?,
                })
            })
            .collect()
    }

    /// HTTP RED rows of the minutes in `[since, until)`, oldest first, at most `cap`.
    pub async fn http_red(
        &self,
        since_ms: i64,
        until_ms: i64,
        cap: u32,
    ) -> Result<Vec<HttpRedRow>, StoreError> {
        self.http_red_ordered(since_ms, until_ms, cap, false).await
    }

    /// The same, newest first: a window with more than `cap` rows keeps
    /// its most recent minutes.
    pub async fn http_red_newest(
        &self,
        since_ms: i64,
        until_ms: i64,
        cap: u32,
    ) -> Result<Vec<HttpRedRow>, StoreError> {
        self.http_red_ordered(since_ms, until_ms, cap, true).await
    }

    async fn http_red_ordered(
        &self,
        since_ms: i64,
        until_ms: i64,
        cap: u32,
        newest_first: bool,
    ) -> Result<Vec<HttpRedRow>, StoreError> {
        let mut conn = self.reader.acquire().await.ctx("read http red")?;
        read_minutes(&mut conn, since_ms, until_ms, cap, newest_first).await
    }

    /// Every collector's state on every node.
    pub async fn collector_statuses(&self) -> Result<Vec<CollectorStatusRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT node, collector, available, reason, events, dropped, started_at, updated_at \
             FROM collector_status ORDER BY collector, node",
        )
        .fetch_all(&self.reader)
        .await
        .ctx("read collector status")?;
        Ok(rows
            .iter()
            .map(|r| CollectorStatusRow {
                node: r.get(0),
                collector: r.get(1),
                available: r.get(2),
                reason: r.get(3),
                events: r.get(4),
                dropped: r.get(5),
                started_at_ms: r.get(6),
                updated_at_ms: r.get(7),
            })
            .collect())
    }

    /// The per-minute counts of one collector's events for the minutes
    /// starting in `[since, until)`, oldest first, at most `cap`.
    pub async fn collector_counts(
        &self,
        collector: &str,
        since_ms: i64,
        until_ms: i64,
        cap: u32,
    ) -> Result<Vec<CollectorCountRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT collector, minute, node, kind, namespace, pod, pod_uid, count \
             FROM collector_counts WHERE collector = $1 AND minute >= $2 AND minute < $3 \
             ORDER BY minute LIMIT $4",
        )
        .bind(collector)
        .bind(since_ms)
        .bind(until_ms)
        .bind(i64::from(cap))
        .fetch_all(&self.reader)
        .await
        .ctx("read collector counts")?;
        let some = |s: String| (!s.is_empty()).then_some(s);
        Ok(rows
            .into_iter()
            .map(|r| CollectorCountRow {
                collector: r.get(0),
                minute_ms: r.get(1),
                node: r.get(2),
                kind: r.get(3),
                namespace: some(r.get(4)),
                pod: some(r.get(5)),
                pod_uid: some(r.get(6)),
                count: r.get(7),
            })
            .collect())
    }

    /// Deletes collector events and HTTP minutes older than `cutoff_ms`, the
    /// counts of minutes and the HTTP hours that ended by then, and the agent processes last
    /// heard of before it (an agent's retention on its own store, and the
    /// daemon's on what agents send); returns how many rows went.
    pub async fn delete_collector_data_before(&self, cutoff_ms: i64) -> Result<u64, StoreError> {
        let steps: [(&'static str, i64, &'static str); 7] = [
            (
                "DELETE FROM collector_seen WHERE ts < $1",
                cutoff_ms,
                "delete old row keys",
            ),
            (
                "DELETE FROM collector_events WHERE ts < $1",
                cutoff_ms,
                "delete old collector events",
            ),
            (
                "DELETE FROM http_red WHERE minute < $1",
                cutoff_ms,
                "delete old http minutes",
            ),
            // An hour goes once the whole hour is past the cutoff, and its
            // stale mark with it (no minute of it is left to add up).
            (
                "DELETE FROM http_red_hours WHERE hour <= $1",
                cutoff_ms.saturating_sub(super::http_hours::HOUR_MS),
                "delete old http hours",
            ),
            (
                "DELETE FROM http_red_stale_hours WHERE hour <= $1",
                cutoff_ms.saturating_sub(super::http_hours::HOUR_MS),
                "delete old stale http hours",
            ),
            // A minute's count goes once the whole minute is past the cutoff.
            (
                "DELETE FROM collector_counts WHERE minute <= $1",
                cutoff_ms.saturating_sub(60_000),
                "delete old collector counts",
            ),
            (
                "DELETE FROM collector_agents WHERE at < $1",
                cutoff_ms,
                "delete old agent processes",
            ),
        ];
        let mut n = 0;
        for (sql, cutoff, what) in steps {
            n += sqlx::query(sql)
                .bind(cutoff)
                .execute(&self.writer)
                .await
                .ctx(what)?
                .rows_affected();
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::open;
    use super::*;

    fn event(ts_ms: i64, kind: &str) -> CollectorEventRow {
        let mut fields = serde_json::Map::new();
        fields.insert("anon_rss_kb".into(), 20480.into());
        CollectorEventRow {
            ts_ms,
            node: "node-a".into(),
            collector: "oom".into(),
            kind: kind.into(),
            namespace: Some("shop".into()),
            pod: Some("cart-0".into()),
            container: Some("app".into()),
            pod_uid: Some("0f3c8a1e-2b4d-4c6e-8f9a-1b2c3d4e5f60".into()),
            container_id: Some("abc".into()),
            cgroup: Some("/kubepods/burstable/pod0f3c/abc".into()),
            pid: Some(42),
            comm: Some("eater".into()),
            fields,
        }
    }

    #[tokio::test]
    async fn keyed_rows_are_stored_once_and_the_state_says_what_was_taken() {
        let dir = tempfile::tempdir().unwrap();
        let (store, clock) = open(dir.path()).await;
        let row = |ts| CollectorEventRow {
            collector: "kube-events".into(),
            node: "cluster".into(),
            ..event(ts, "BackOff")
        };
        let first = vec![
            ("e/1".to_string(), row(1_000)),
            ("e/2".to_string(), row(2_000)),
        ];
        assert_eq!(
            store
                .write_keyed_events("kube-events", "cluster", &first)
                .await
                .unwrap(),
            [0, 1]
        );
        let first_written = |all: Vec<CollectorStatusRow>| {
            all.into_iter()
                .find(|s| s.collector == "kube-events")
                .map(|s| (s.started_at_ms, s.updated_at_ms))
                .unwrap()
        };
        let (started, _) = first_written(store.collector_statuses().await.unwrap());
        clock.advance(std::time::Duration::from_secs(30));
        // Read again: the same two, and one new occurrence.
        let again = vec![
            ("e/1".to_string(), row(1_000)),
            ("e/2".to_string(), row(2_000)),
            ("e/3".to_string(), row(3_000)),
        ];
        assert_eq!(
            store
                .write_keyed_events("kube-events", "cluster", &again)
                .await
                .unwrap(),
            [2]
        );
        // The same key under another collector is another row (of that
        // collector, whatever the row said).
        let audit = vec![("e/1".to_string(), row(1_000))];
        assert_eq!(
            store
                .write_keyed_events("kube-audit", "kube-apiserver", &audit)
                .await
                .unwrap(),
            [0]
        );
        let rows = store
            .collector_events("kube-events", 0, i64::MAX, 100)
            .await
            .unwrap();
        assert_eq!(
            rows.iter().map(|r| r.ts_ms).collect::<Vec<_>>(),
            [1_000, 2_000, 3_000]
        );
        let state = |all: Vec<CollectorStatusRow>| {
            all.into_iter()
                .find(|s| s.collector == "kube-events")
                .map(|s| (s.available, s.reason, s.events))
                .unwrap()
        };
        assert_eq!(
            state(store.collector_statuses().await.unwrap()),
            (true, None, 3)
        );
        // Kept since the first write; written now.
        let (since, updated) = first_written(store.collector_statuses().await.unwrap());
        assert_eq!(since, started);
        assert_eq!(updated, started + 30_000);
        // Unreadable: unavailable with the reason, what was taken stays.
        store
            .set_collector_unavailable("kube-events", "cluster", "list events: forbidden")
            .await
            .unwrap();
        assert_eq!(
            state(store.collector_statuses().await.unwrap()),
            (false, Some("list events: forbidden".into()), 3)
        );
        store
            .write_keyed_events("kube-events", "cluster", &again)
            .await
            .unwrap();
        assert_eq!(
            state(store.collector_statuses().await.unwrap()),
            (true, None, 3)
        );
        // A key twice in one batch: the first row, once.
        let twice = vec![
            ("d/1".to_string(), row(4_000)),
            ("d/1".to_string(), row(5_000)),
        ];
        assert_eq!(
            store
                .write_keyed_events("kube-events", "cluster", &twice)
                .await
                .unwrap(),
            [0]
        );
        let rows = store
            .collector_events("kube-events", 3_500, i64::MAX, 100)
            .await
            .unwrap();
        assert_eq!(rows.iter().map(|r| r.ts_ms).collect::<Vec<_>>(), [4_000]);
        // Retention drops the keys with the rows: a row read again after its
        // time is past would be stored again, as new data would.
        store.delete_collector_data_before(2_500).await.unwrap();
        assert_eq!(
            store
                .write_keyed_events("kube-events", "cluster", &again)
                .await
                .unwrap(),
            [0, 1]
        );
    }

    fn red(minute_ms: i64, requests: i64) -> HttpRedRow {
        HttpRedRow {
            minute_ms,
            node: "node-a".into(),
            namespace: String::new(),
            pod: String::new(),
            server: "127.0.0.1:8080".into(),
            method: "GET".into(),
            route: "/items/:id".into(),
            requests,
            errors: 1,
            client_errors: 2,
            duration_sum_us: 1000,
            duration_max_us: 300,
            buckets: vec![1, 2, 3],
        }
    }

    #[test]
    fn a_batch_from_outside_is_checked_row_by_row_and_the_bad_one_named() {
        let buckets = crate::collectors::duration_buckets_us().len() + 1;
        let good_red = || {
            let mut r = red(600_000, 10);
            r.buckets = vec![0; buckets];
            r
        };
        let good = CollectorBatch {
            events: vec![event(1, "oom_kill"), event(2, "oom_kill")],
            http: vec![good_red()],
            status: vec![CollectorStatusRow {
                node: "node-a".into(),
                collector: "http".into(),
                available: true,
                reason: None,
                events: 10,
                dropped: 0,
                started_at_ms: 1,
                updated_at_ms: 2,
            }],
        };
        assert_eq!(good.problem(), None);
        let bad = |f: &dyn Fn(&mut CollectorBatch)| {
            let mut b = good.clone();
            f(&mut b);
            b.problem().expect("refused")
        };
        let p = bad(&|b| b.events[1].collector = "keylogger".into());
        assert!(
            p.starts_with(
                "events[1].collector: \"keylogger\" is not a collector (known: oom, exec"
            ),
            "{p}"
        );
        assert!(bad(&|b| b.events[0].node.clear()).starts_with("events[0].node: "));
        assert!(bad(&|b| b.events[0].kind = "x".repeat(65)).starts_with("events[0].kind: "));
        assert!(bad(&|b| b.http[0].minute_ms += 1).starts_with("http[0].minute_ms: 600001 "));
        assert!(
            bad(&|b| b.http[0].errors = 9)
                .starts_with("http[0].errors: 9 errors and 2 client errors in 10 requests")
        );
        assert!(
            bad(&|b| b.http[0].duration_sum_us = -1)
                .starts_with("http[0].duration_sum_us: -1 is negative")
        );
        let p = bad(&|b| b.http[0].buckets.pop().map(drop).unwrap_or_default());
        assert_eq!(
            p,
            format!(
                "http[0].buckets: {} counts, not {buckets} (one per duration bucket)",
                buckets - 1
            )
        );
        assert!(
            bad(&|b| b.status[0].dropped = -3).starts_with("status[0].dropped: -3 is negative")
        );
    }

    #[tokio::test]
    async fn an_agents_request_is_stored_once_and_the_daemons_retention_takes_what_agents_sent() {
        use super::super::test_support::open as open_with_clock;
        let dir = tempfile::tempdir().unwrap();
        let (store, clock) = open_with_clock(dir.path()).await;
        let now = clock.now().as_millisecond();
        let minute = now - now.rem_euclid(60_000);
        let mut http = red(minute, 10);
        http.buckets = vec![0; crate::collectors::duration_buckets_us().len() + 1];
        let batch = CollectorBatch {
            events: vec![event(now, "oom_kill")],
            http: vec![http],
            status: Vec::new(),
        };
        let req = |sequence| {
            Some(AgentRequest {
                instance: "a1",
                sequence,
            })
        };
        assert!(store.write_agent_batch(&batch, req(1)).await.unwrap());
        assert!(
            !store.write_agent_batch(&batch, req(1)).await.unwrap(),
            "again"
        );
        assert!(store.write_agent_batch(&batch, req(2)).await.unwrap());
        // Another process of the same node numbers from 1 again.
        let other = Some(AgentRequest {
            instance: "b2",
            sequence: 1,
        });
        assert!(store.write_agent_batch(&batch, other).await.unwrap());
        let events = store
            .collector_events("oom", 0, i64::MAX, 100)
            .await
            .unwrap();
        assert_eq!(events.len(), 3);
        let agents: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM collector_agents")
            .fetch_one(&store.reader)
            .await
            .unwrap();
        assert_eq!(agents, 2);

        // Eight days on, a seven-day retention takes events, HTTP minutes,
        // counts and agent processes alike.
        clock.advance(std::time::Duration::from_secs(8 * 86_400));
        let report = store
            .apply_retention(&super::super::Retention {
                max_age: Some(std::time::Duration::from_secs(7 * 86_400)),
                ..Default::default()
            })
            .await
            .unwrap();
        // 3 events, 1 HTTP minute and its hour's stale mark, 1 count row,
        // 2 agents.
        assert_eq!(report.collector_rows, 8);
        for sql in [
            "SELECT COUNT(*) FROM collector_events",
            "SELECT COUNT(*) FROM http_red",
            "SELECT COUNT(*) FROM http_red_stale_hours",
            "SELECT COUNT(*) FROM collector_counts",
            "SELECT COUNT(*) FROM collector_agents",
        ] {
            let n: i64 = sqlx::query_scalar(sql)
                .fetch_one(&store.reader)
                .await
                .unwrap();
            assert_eq!(n, 0, "{sql}");
        }
    }

    /// Events of pods `a` and `b` and of no pod, two kinds, spread over
    /// minutes 10 to 15 (ms offsets within the minutes vary).
    fn spread() -> Vec<CollectorEventRow> {
        let mut out = Vec::new();
        for i in 0..360i64 {
            let mut e = event(
                600_000 + i * 997,
                if i % 3 == 0 { "exec" } else { "oom_kill" },
            );
            match i % 4 {
                0 => {}
                1 => {
                    e.pod = Some("b".into());
                    e.pod_uid = Some("uid-b".into());
                }
                2 => {
                    e.namespace = None;
                    e.pod = None;
                    e.pod_uid = None;
                }
                _ => e.node = "node-b".into(),
            }
            out.push(e);
        }
        out
    }

    async fn write_events(store: &Store, events: &[CollectorEventRow]) {
        store
            .write_collector_batch(&CollectorBatch {
                events: events.to_vec(),
                ..Default::default()
            })
            .await
            .unwrap();
    }

    /// Every stored count of the oom collector.
    async fn all_counts(store: &Store) -> Vec<CollectorCountRow> {
        store
            .collector_counts("oom", 0, i64::MAX, 10_000)
            .await
            .unwrap()
    }

    fn count_query(
        since: i64,
        until: i64,
        group_by: &[&str],
        filters: Vec<crate::bindings::sonde::probe::collectors::Filter>,
    ) -> crate::bindings::sonde::probe::collectors::CollectorQuery {
        use crate::bindings::sonde::probe::collectors::{Aggregate, AggregateOp, CollectorQuery};
        CollectorQuery {
            collector: "oom".into(),
            since,
            until: Some(until),
            filters,
            group_by: group_by.iter().map(|g| g.to_string()).collect(),
            aggregates: vec![Aggregate {
                op: AggregateOp::Count,
                field: None,
            }],
            limit: None,
        }
    }

    #[tokio::test]
    async fn per_minute_counts_answer_count_queries_exactly_with_the_ends_from_events() {
        use crate::bindings::sonde::probe::collectors::{Filter, FilterOp, Value};
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = open(dir.path()).await;
        let events = spread();
        // In several batches: a minute's count grows batch by batch.
        for chunk in events.chunks(50) {
            write_events(&store, chunk).await;
        }
        let counts = all_counts(&store).await;
        assert_eq!(counts.iter().map(|c| c.count).sum::<i64>(), 360);
        assert_eq!(
            count_events(&events),
            counts,
            "one row per minute, node, kind and pod"
        );

        // The answer for a window, counted from the events themselves.
        let expect =
            |since: i64, until: i64, key: &dyn Fn(&CollectorEventRow) -> Option<String>| {
                let mut m = std::collections::BTreeMap::new();
                for e in events
                    .iter()
                    .filter(|e| e.ts_ms >= since && e.ts_ms < until)
                {
                    if let Some(k) = key(e) {
                        *m.entry(k).or_insert(0i64) += 1;
                    }
                }
                m
            };
        let got = |t: crate::bindings::sonde::probe::collectors::Table| {
            t.rows
                .into_iter()
                .map(|r| {
                    let k = match &r[0] {
                        Value::Text(s) => s.clone(),
                        Value::Null => "-".into(),
                        v => panic!("{v:?}"),
                    };
                    let Value::Integer(n) = r[1] else {
                        panic!("{r:?}")
                    };
                    (k, n)
                })
                .collect::<std::collections::BTreeMap<_, _>>()
        };
        // Partial minutes at both ends, exact minute edges, a window inside
        // one minute, and one past the data.
        for (since, until) in [
            (0, i64::MAX),
            (612_345, 905_432),
            (660_000, 840_000),
            (661_000, 719_999),
            (700_000, 780_001),
            (950_000, 2_000_000),
            // A probe's window is its own: the widest one must not overflow.
            (i64::MIN, i64::MAX),
            (i64::MIN, i64::MIN),
        ] {
            let q = count_query(since, until, &["pod"], vec![]);
            let t = crate::collectors::query::run_planned(&store, &q, 10_000_000, 1)
                .await
                .unwrap();
            let want = expect(since, until, &|e| Some(e.pod.clone().unwrap_or("-".into())));
            assert_eq!(got(t), want, "[{since}, {until})");
            // Filtered on a counted field, grouped by another.
            let q = count_query(
                since,
                until,
                &["kind"],
                vec![Filter {
                    field: "node".into(),
                    op: FilterOp::Eq,
                    value: Value::Text("node-a".into()),
                }],
            );
            let t = crate::collectors::query::run_planned(&store, &q, 10_000_000, 1)
                .await
                .unwrap();
            let want = expect(since, until, &|e| {
                (e.node == "node-a").then(|| e.kind.clone())
            });
            assert_eq!(got(t), want, "[{since}, {until}) on node-a");
        }

        // The whole minutes really come from the counts: with minute 12's
        // events gone from the events table, a count query still counts
        // them, and a query the counts cannot answer (count of a field) no
        // longer does.
        sqlx::query("DELETE FROM collector_events WHERE ts >= 720000 AND ts < 780000")
            .execute(&store.writer)
            .await
            .unwrap();
        let whole = expect(600_000, 960_000, &|_| Some("all".into()))["all"];
        let in_12 = expect(720_000, 780_000, &|_| Some("all".into()))["all"];
        let mut q = count_query(600_000, 960_000, &[], vec![]);
        let t = crate::collectors::query::run_planned(&store, &q, 10_000_000, 1)
            .await
            .unwrap();
        assert_eq!(t.rows, vec![vec![Value::Integer(whole)]]);
        q.aggregates[0].field = Some("kind".into());
        let t = crate::collectors::query::run_planned(&store, &q, 10_000_000, 1)
            .await
            .unwrap();
        assert_eq!(t.rows, vec![vec![Value::Integer(whole - in_12)]]);
        // The planner reads a window this short (6 minutes) from its events.
        q.aggregates[0].field = None;
        let t = crate::collectors::query::run(&store, &q, 10_000_000)
            .await
            .unwrap();
        assert_eq!(t.rows, vec![vec![Value::Integer(whole - in_12)]]);

        // Retention removes counts with their minutes.
        store.delete_collector_data_before(780_000).await.unwrap();
        let left = all_counts(&store).await;
        assert!(left.iter().all(|c| c.minute_ms >= 780_000), "{left:?}");
        assert!(!left.is_empty());
    }

    #[tokio::test]
    async fn counts_past_one_statements_worth_of_rows_all_land() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = open(dir.path()).await;
        // 1,201 pods, one event each, twice: 1,201 count rows per batch.
        let events: Vec<_> = (0..1201)
            .map(|i| {
                let mut e = event(60_000 + i, "oom_kill");
                e.pod = Some(format!("p{i}"));
                e
            })
            .collect();
        for _ in 0..2 {
            write_events(&store, &events).await;
        }
        let counts = all_counts(&store).await;
        assert_eq!(counts.len(), 1201);
        assert!(counts.iter().all(|c| c.count == 2 && c.minute_ms == 60_000));
    }

    #[tokio::test]
    async fn migration_6_counts_the_events_stored_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sonde.db");
        let pool = super::super::dialect::connect(&path, 1).await.unwrap();
        let mut before = sqlx::migrate!();
        before.migrations = before
            .migrations
            .iter()
            .filter(|m| m.version < 6)
            .cloned()
            .collect::<Vec<_>>()
            .into();
        before.run(&pool).await.unwrap();
        let events = spread();
        // Written as the store wrote events before the migration.
        for e in &events {
            bind_event(sqlx::query(insert_events_sql(1)), e, "{}")
                .execute(&pool)
                .await
                .unwrap();
        }
        pool.close().await;
        let (store, _) = open(dir.path()).await;
        assert_eq!(all_counts(&store).await, count_events(&events));
    }

    #[tokio::test]
    async fn batches_round_trip_and_minutes_are_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = open(dir.path()).await;
        let status = CollectorStatusRow {
            node: "node-a".into(),
            collector: "oom".into(),
            available: false,
            reason: Some("no privilege".into()),
            events: 0,
            dropped: 0,
            started_at_ms: 1,
            updated_at_ms: 2,
        };
        let batch = CollectorBatch {
            events: vec![event(1_000, "oom_kill"), event(2_000, "oom_kill")],
            http: vec![red(60_000, 5)],
            status: vec![status.clone()],
        };
        store.write_collector_batch(&batch).await.unwrap();
        // The same minute again with running totals: replaced, not added.
        store
            .write_collector_batch(&CollectorBatch {
                http: vec![red(60_000, 9)],
                ..Default::default()
            })
            .await
            .unwrap();
        let events = store.collector_events("oom", 0, 10_000, 100).await.unwrap();
        assert_eq!(events, batch.events);
        assert_eq!(
            store
                .collector_events("oom", 1_500, 10_000, 100)
                .await
                .unwrap()
                .len(),
            1
        );
        assert!(
            store
                .collector_events("exec", 0, 10_000, 100)
                .await
                .unwrap()
                .is_empty()
        );
        let http = store.http_red(0, 120_000, 100).await.unwrap();
        assert_eq!(http, vec![red(60_000, 9)]);
        // Newest first, cut at the cap: the most recent minutes.
        store
            .write_collector_batch(&CollectorBatch {
                http: vec![red(120_000, 1), red(180_000, 2)],
                ..Default::default()
            })
            .await
            .unwrap();
        let minutes = |rows: Vec<HttpRedRow>| rows.iter().map(|r| r.minute_ms).collect::<Vec<_>>();
        assert_eq!(
            minutes(store.http_red_newest(0, 240_000, 2).await.unwrap()),
            [180_000, 120_000]
        );
        assert_eq!(
            minutes(store.http_red(0, 240_000, 2).await.unwrap()),
            [60_000, 120_000]
        );
        assert_eq!(store.collector_statuses().await.unwrap(), vec![status]);
        // Past one statement's worth of rows: every event lands, in order.
        let many: Vec<_> = (0..1201).map(|i| event(100_000 + i, "oom_kill")).collect();
        store
            .write_collector_batch(&CollectorBatch {
                events: many.clone(),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(
            store
                .collector_events("oom", 100_000, 200_000, 5_000)
                .await
                .unwrap(),
            many
        );
        // Two events, one http minute and minute 0's count (minute 1 is not
        // over at the cutoff: its count stays).
        assert_eq!(store.delete_collector_data_before(61_000).await.unwrap(), 4);
        assert!(store.http_red(0, 120_000, 100).await.unwrap().is_empty());
    }
}
