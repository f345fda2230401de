//! The query engine behind `sonde:probe/collectors.query`: a time window,
//! filters, optional grouping with aggregates, over the store's collector
//! data. Every name a probe sends is checked against the collector's fields
//! first, and a bad one is an `invalid-input` error naming it.
//!
//! Rows are read from the store for the window (at most [`SCAN_CAP`]), then
//! filtered and aggregated here, so every collector and filter behaves the
//! same whatever the backend's SQL dialect. Percentiles of event fields are
//! exact (nearest rank); for the http collector, whose rows are minutes,
//! `count` is the number of requests and `duration_ms` aggregates come from
//! the minutes' sums, maxima and histograms (percentiles within one bucket:
//! 10%).
//!
//! A query of event counts only (`count`, grouped and filtered by node,
//! kind, namespace, pod or pod_uid) is answered from the store's per-minute
//! counts for the window's whole minutes and from the events themselves for
//! the partial minutes at its ends: the same answer, exact, without reading
//! every event of a long window. A window of fewer than
//! [`COUNTS_FROM_MINUTES`] whole minutes is read from its events: under
//! that the counts' three reads cost more than the one.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use super::{CollectorSpec, duration_buckets_us};
use crate::bindings::ProbeError;
use crate::bindings::sonde::probe::collectors::{
    Aggregate, AggregateOp, CollectorQuery, FieldType, Filter, FilterOp, Table, Value,
};
use crate::store::{CollectorCountRow, CollectorEventRow, HttpRedRow, Store};

/// The fields the per-minute counts keep.
const COUNTED_FIELDS: [&str; 5] = ["node", "kind", "namespace", "pod", "pod_uid"];
const MINUTE_MS: i64 = 60_000;

// Both take any `ms` a probe sends: no overflow at either end of the range.

/// The start of the minute `ms` is in.
fn minute_of(ms: i64) -> i64 {
    ms.saturating_sub(ms.rem_euclid(MINUTE_MS))
}

/// The start of the first minute that begins at or after `ms`.
fn minute_at_or_after(ms: i64) -> i64 {
    match ms.rem_euclid(MINUTE_MS) {
        0 => ms,
        r => ms.saturating_add(MINUTE_MS - r),
    }
}

/// Whether the per-minute counts answer `q`: only `count` aggregates, and
/// only counted fields grouped and filtered on.
fn counts_answer(q: &CollectorQuery) -> bool {
    let counted = |f: &str| COUNTED_FIELDS.contains(&f);
    !q.aggregates.is_empty()
        && q.aggregates
            .iter()
            .all(|a| a.op == AggregateOp::Count && a.field.is_none())
        && q.group_by.iter().all(|g| counted(g))
        && q.filters.iter().all(|f| counted(&f.field))
}

/// Whether the http collector's hours answer `q` as its minutes would:
/// no `ts` asked for or filtered on, and only aggregates of the requests'
/// totals (`count`, a `sum` of requests or errors, any of `duration_ms`),
/// which an hour's row holds as its minutes' sum. (An `avg` or `max` of
/// `requests` is per row: per minute, so not from hours.)
fn hours_answer(q: &CollectorQuery) -> bool {
    !q.aggregates.is_empty()
        && q.group_by.iter().all(|g| g != "ts")
        && q.filters.iter().all(|f| f.field != "ts")
        && q.aggregates
            .iter()
            .all(|a| match (a.op, a.field.as_deref()) {
                (AggregateOp::Count, None) | (_, Some("duration_ms")) => true,
                (AggregateOp::Sum, Some(f)) => {
                    matches!(f, "requests" | "errors" | "client_errors")
                }
                _ => false,
            })
}

/// Rows read from the store for one query at most; past it the answer says
/// `truncated`.
pub const SCAN_CAP: u32 = 200_000;
/// Rows returned when the query gives no limit, and the most it may ask for.
pub const DEFAULT_ROWS: u32 = 1_000;
pub const MAX_ROWS: u32 = 10_000;

/// Whole minutes a count query's window must hold to be answered from the
/// per-minute counts. Measured (BENCHMARKS.md, `collector_query`): the counts
/// pay from about 20 minutes where events are dense and 30 where they are
/// sparse, and cost 5-16 ms more under that.
pub const COUNTS_FROM_MINUTES: i64 = 25;

/// Runs a query. `now_ms` closes a window without `until`.
pub async fn run(store: &Store, q: &CollectorQuery, now_ms: i64) -> Result<Table, ProbeError> {
    run_planned(store, q, now_ms, COUNTS_FROM_MINUTES).await
}

/// [`run`], reading the per-minute counts for windows of at least
/// `counts_from_minutes` whole minutes (and at least one).
pub async fn run_planned(
    store: &Store,
    q: &CollectorQuery,
    now_ms: i64,
    counts_from_minutes: i64,
) -> Result<Table, ProbeError> {
    let spec = super::spec(&q.collector).ok_or_else(|| {
        let known: Vec<&str> = super::COLLECTORS.iter().map(|c| c.name).collect();
        ProbeError::InvalidInput(format!(
            "unknown collector {:?}; known: {}",
            q.collector,
            known.join(", ")
        ))
    })?;
    validate(spec, q)?;
    let until = q.until.unwrap_or(now_ms.saturating_add(1));
    if until < q.since {
        return Err(ProbeError::InvalidInput(format!(
            "until ({until}) is before since ({})",
            q.since
        )));
    }
    let store_err = |e: crate::store::StoreError| {
        let mut msg = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            msg.push_str(": ");
            msg.push_str(&s.to_string());
            src = s.source();
        }
        ProbeError::Unavailable(msg)
    };
    if spec.aggregated {
        // Whole hours from the hours the store added up where the answer
        // is the same (a day is 24 rows per route, not 1,440); newest
        // first then, so a read the cap cuts keeps the recent part.
        let (rows, scanned_all) = if hours_answer(q) {
            let read = store
                .http_red_by_hours(q.since, until, SCAN_CAP)
                .await
                .map_err(store_err)?;
            (read.rows, read.complete_since.is_none())
        } else {
            let rows = store
                .http_red(q.since, until, SCAN_CAP)
                .await
                .map_err(store_err)?;
            let scanned_all = rows.len() < SCAN_CAP as usize;
            (rows, scanned_all)
        };
        let rows: Vec<Row> = rows.iter().map(Row::Http).collect();
        Ok(answer(spec, q, &rows, scanned_all))
    } else if counts_answer(q)
        && let first = minute_at_or_after(q.since)
        && let last = minute_of(until)
        && last.saturating_sub(first) >= counts_from_minutes.max(1).saturating_mul(MINUTE_MS)
    {
        // Whole minutes [first, last) from the counts; the ends from events.
        let counts = store
            .collector_counts(spec.name, first, last, SCAN_CAP)
            .await
            .map_err(store_err)?;
        let head = store
            .collector_events(spec.name, q.since, first, SCAN_CAP)
            .await
            .map_err(store_err)?;
        let tail = store
            .collector_events(spec.name, last, until, SCAN_CAP)
            .await
            .map_err(store_err)?;
        let scanned_all = [counts.len(), head.len(), tail.len()]
            .iter()
            .all(|&n| n < SCAN_CAP as usize);
        let rows: Vec<Row> = head
            .iter()
            .chain(&tail)
            .map(Row::Event)
            .chain(counts.iter().map(Row::Count))
            .collect();
        Ok(answer(spec, q, &rows, scanned_all))
    } else {
        let rows = store
            .collector_events(spec.name, q.since, until, SCAN_CAP)
            .await
            .map_err(store_err)?;
        let scanned_all = rows.len() < SCAN_CAP as usize;
        let rows: Vec<Row> = rows.iter().map(Row::Event).collect();
        Ok(answer(spec, q, &rows, scanned_all))
    }
}

fn validate(spec: &CollectorSpec, q: &CollectorQuery) -> Result<(), ProbeError> {
    let field = |name: &str, what: &str| {
        spec.field(name).ok_or_else(|| {
            let known: Vec<&str> = spec.fields.iter().map(|f| f.name).collect();
            ProbeError::InvalidInput(format!(
                "{what}: collector {} has no field {name:?}; fields: {}",
                spec.name,
                known.join(", ")
            ))
        })
    };
    for filter in &q.filters {
        let fs = field(&filter.field, "filter")?;
        let text_only = matches!(filter.op, FilterOp::Contains | FilterOp::Prefix);
        if text_only && (fs.ty != FieldType::Text || !matches!(filter.value, Value::Text(_))) {
            return Err(ProbeError::InvalidInput(format!(
                "filter on {}: contains and prefix take a text field and a text value",
                filter.field
            )));
        }
        let compatible = matches!(
            (&filter.value, fs.ty),
            (Value::Null, _)
                | (Value::Text(_), FieldType::Text)
                | (
                    Value::Integer(_) | Value::Float(_),
                    FieldType::Integer | FieldType::Float | FieldType::Timestamp
                )
                | (Value::Boolean(_), FieldType::Boolean)
        );
        if !compatible {
            return Err(ProbeError::InvalidInput(format!(
                "filter on {}: the value's type does not match the field's ({:?})",
                filter.field, fs.ty
            )));
        }
    }
    for g in &q.group_by {
        field(g, "group-by")?;
    }
    if !q.group_by.is_empty() && q.aggregates.is_empty() {
        return Err(ProbeError::InvalidInput(
            "group-by needs at least one aggregate (count, for instance)".into(),
        ));
    }
    for a in &q.aggregates {
        match (&a.op, &a.field) {
            (AggregateOp::Count, None) => {}
            (AggregateOp::Count, Some(name)) => {
                field(name, "count")?;
            }
            (op, None) => {
                return Err(ProbeError::InvalidInput(format!(
                    "aggregate {}: needs a field",
                    op_name(*op)
                )));
            }
            (op, Some(name)) => {
                let fs = field(name, op_name(*op))?;
                if !matches!(
                    fs.ty,
                    FieldType::Integer | FieldType::Float | FieldType::Timestamp
                ) {
                    return Err(ProbeError::InvalidInput(format!(
                        "aggregate {}({name}): the field is not a number",
                        op_name(*op)
                    )));
                }
            }
        }
    }
    if q.limit.is_some_and(|l| l > MAX_ROWS) {
        return Err(ProbeError::InvalidInput(format!(
            "limit {} is above the most a query returns ({MAX_ROWS})",
            q.limit.unwrap_or_default()
        )));
    }
    Ok(())
}

fn op_name(op: AggregateOp) -> &'static str {
    match op {
        AggregateOp::Count => "count",
        AggregateOp::Sum => "sum",
        AggregateOp::Avg => "avg",
        AggregateOp::Min => "min",
        AggregateOp::Max => "max",
        AggregateOp::P50 => "p50",
        AggregateOp::P90 => "p90",
        AggregateOp::P99 => "p99",
    }
}

/// One stored row, read field by field.
#[derive(Clone, Copy)]
enum Row<'a> {
    Event(&'a CollectorEventRow),
    Http(&'a HttpRedRow),
    /// A minute's count of events: counts as that many events.
    Count(&'a CollectorCountRow),
}

fn text(s: &Option<String>) -> Value {
    s.as_ref().map_or(Value::Null, |s| Value::Text(s.clone()))
}

impl Row<'_> {
    fn get(&self, field: &str) -> Value {
        match self {
            Row::Event(e) => match field {
                "ts" => Value::Integer(e.ts_ms),
                "node" => Value::Text(e.node.clone()),
                "kind" => Value::Text(e.kind.clone()),
                "namespace" => text(&e.namespace),
                "pod" => text(&e.pod),
                "container" => text(&e.container),
                "pod_uid" => text(&e.pod_uid),
                "container_id" => text(&e.container_id),
                "cgroup" => text(&e.cgroup),
                "comm" => text(&e.comm),
                "pid" => e.pid.map_or(Value::Null, Value::Integer),
                other => match e.fields.get(other) {
                    Some(serde_json::Value::String(s)) => Value::Text(s.clone()),
                    Some(serde_json::Value::Bool(b)) => Value::Boolean(*b),
                    Some(serde_json::Value::Number(n)) => match n.as_i64() {
                        Some(i) => Value::Integer(i),
                        None => n.as_f64().map_or(Value::Null, Value::Float),
                    },
                    _ => Value::Null,
                },
            },
            // Only the counted fields are asked of a count (`counts_answer`).
            Row::Count(c) => match field {
                "node" => Value::Text(c.node.clone()),
                "kind" => Value::Text(c.kind.clone()),
                "namespace" => text(&c.namespace),
                "pod" => text(&c.pod),
                "pod_uid" => text(&c.pod_uid),
                _ => Value::Null,
            },
            Row::Http(h) => match field {
                "ts" => Value::Integer(h.minute_ms),
                "node" => Value::Text(h.node.clone()),
                "namespace" => Value::Text(h.namespace.clone()),
                "pod" => Value::Text(h.pod.clone()),
                "server" => Value::Text(h.server.clone()),
                "method" => Value::Text(h.method.clone()),
                "route" => Value::Text(h.route.clone()),
                "requests" => Value::Integer(h.requests),
                "errors" => Value::Integer(h.errors),
                "client_errors" => Value::Integer(h.client_errors),
                "duration_ms" if h.requests > 0 => {
                    Value::Float(h.duration_sum_us as f64 / h.requests as f64 / 1000.0)
                }
                _ => Value::Null,
            },
        }
    }
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Integer(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        _ => None,
    }
}

fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Text(x), Value::Text(y)) => Some(x.cmp(y)),
        (Value::Boolean(x), Value::Boolean(y)) => Some(x.cmp(y)),
        (Value::Integer(x), Value::Integer(y)) => Some(x.cmp(y)),
        _ => number(a)?.partial_cmp(&number(b)?),
    }
}

fn matches(row: &Row, f: &Filter) -> bool {
    let v = row.get(&f.field);
    match f.op {
        FilterOp::Contains => {
            matches!((&v, &f.value), (Value::Text(s), Value::Text(n)) if s.contains(n.as_str()))
        }
        FilterOp::Prefix => {
            matches!((&v, &f.value), (Value::Text(s), Value::Text(n)) if s.starts_with(n.as_str()))
        }
        op => {
            if matches!(f.value, Value::Null) || matches!(v, Value::Null) {
                let both_null = matches!(f.value, Value::Null) && matches!(v, Value::Null);
                return match op {
                    FilterOp::Eq => both_null,
                    FilterOp::Ne => !both_null,
                    _ => false,
                };
            }
            let Some(ord) = compare(&v, &f.value) else {
                return false;
            };
            match op {
                FilterOp::Eq => ord == Ordering::Equal,
                FilterOp::Ne => ord != Ordering::Equal,
                FilterOp::Lt => ord == Ordering::Less,
                FilterOp::Le => ord != Ordering::Greater,
                FilterOp::Gt => ord == Ordering::Greater,
                FilterOp::Ge => ord != Ordering::Less,
                FilterOp::Contains | FilterOp::Prefix => unreachable!("handled above"),
            }
        }
    }
}

/// A group key part with a total order (text, then numbers, then booleans, null last).
#[derive(Debug, Clone, PartialEq)]
struct Key(Value);

impl Eq for Key {}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Key {
    fn cmp(&self, other: &Self) -> Ordering {
        fn rank(v: &Value) -> u8 {
            match v {
                Value::Text(_) => 0,
                Value::Integer(_) | Value::Float(_) => 1,
                Value::Boolean(_) => 2,
                Value::Null => 3,
            }
        }
        match (&self.0, &other.0) {
            (Value::Integer(a), Value::Integer(b)) => a.cmp(b),
            (a, b) if rank(a) == 1 && rank(b) == 1 => number(a)
                .unwrap_or(0.0)
                .total_cmp(&number(b).unwrap_or(0.0)),
            (a, b) => compare(a, b).unwrap_or_else(|| rank(a).cmp(&rank(b))),
        }
    }
}

fn answer(spec: &CollectorSpec, q: &CollectorQuery, rows: &[Row], scanned_all: bool) -> Table {
    let limit = q.limit.unwrap_or(DEFAULT_ROWS).min(MAX_ROWS) as usize;
    let kept: Vec<&Row> = rows
        .iter()
        .filter(|r| q.filters.iter().all(|f| matches(r, f)))
        .collect();
    if q.aggregates.is_empty() {
        let columns: Vec<String> = spec.fields.iter().map(|f| f.name.to_string()).collect();
        let out: Vec<Vec<Value>> = kept
            .iter()
            .take(limit)
            .map(|r| spec.fields.iter().map(|f| r.get(f.name)).collect())
            .collect();
        return Table {
            truncated: kept.len() > limit || !scanned_all,
            columns,
            rows: out,
        };
    }
    let mut groups: BTreeMap<Vec<Key>, Vec<&Row>> = BTreeMap::new();
    for r in kept {
        let key = q.group_by.iter().map(|g| Key(r.get(g))).collect();
        groups.entry(key).or_default().push(r);
    }
    // No group-by: one row even when nothing matched (count 0).
    if q.group_by.is_empty() && groups.is_empty() {
        groups.insert(Vec::new(), Vec::new());
    }
    let mut columns: Vec<String> = q.group_by.clone();
    for a in &q.aggregates {
        columns.push(match &a.field {
            None => "count".to_string(),
            Some(f) => format!("{}({f})", op_name(a.op)),
        });
    }
    let truncated = groups.len() > limit || !scanned_all;
    let out = groups
        .into_iter()
        .take(limit)
        .map(|(key, members)| {
            let mut row: Vec<Value> = key.into_iter().map(|k| k.0).collect();
            for a in &q.aggregates {
                row.push(aggregate(spec, a, &members));
            }
            row
        })
        .collect();
    Table {
        columns,
        rows: out,
        truncated,
    }
}

fn aggregate(spec: &CollectorSpec, a: &Aggregate, rows: &[&Row]) -> Value {
    if spec.aggregated
        && let Some(v) = http_aggregate(a, rows)
    {
        return v;
    }
    let values = || {
        let field = a.field.as_deref().unwrap_or_default();
        rows.iter().filter_map(move |r| number(&r.get(field)))
    };
    let integer = a
        .field
        .as_deref()
        .and_then(|f| spec.field(f))
        .is_some_and(|f| matches!(f.ty, FieldType::Integer | FieldType::Timestamp));
    let num = |x: f64| {
        if integer {
            Value::Integer(x as i64)
        } else {
            Value::Float(x)
        }
    };
    match a.op {
        AggregateOp::Count => match &a.field {
            None => Value::Integer(
                rows.iter()
                    .map(|r| match r {
                        Row::Count(c) => c.count,
                        _ => 1,
                    })
                    .sum(),
            ),
            Some(f) => Value::Integer(
                rows.iter()
                    .filter(|r| !matches!(r.get(f), Value::Null))
                    .count() as i64,
            ),
        },
        AggregateOp::Sum => num(values().sum()),
        AggregateOp::Avg => {
            let (n, s) = values().fold((0usize, 0.0), |(n, s), v| (n + 1, s + v));
            if n == 0 {
                Value::Null
            } else {
                Value::Float(s / n as f64)
            }
        }
        AggregateOp::Min => values().min_by(f64::total_cmp).map_or(Value::Null, num),
        AggregateOp::Max => values().max_by(f64::total_cmp).map_or(Value::Null, num),
        AggregateOp::P50 | AggregateOp::P90 | AggregateOp::P99 => {
            let mut v: Vec<f64> = values().collect();
            if v.is_empty() {
                return Value::Null;
            }
            v.sort_by(f64::total_cmp);
            let q = quantile(a.op);
            // Nearest rank: the smallest value with at least q of the values at or below it.
            let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
            Value::Float(v[rank - 1])
        }
    }
}

fn quantile(op: AggregateOp) -> f64 {
    match op {
        AggregateOp::P50 => 0.5,
        AggregateOp::P90 => 0.9,
        _ => 0.99,
    }
}

/// Aggregates the http collector answers from its minutes' totals: `count`
/// (requests) and every aggregate of `duration_ms`.
fn http_aggregate(a: &Aggregate, rows: &[&Row]) -> Option<Value> {
    let minutes = || {
        rows.iter().filter_map(|r| match r {
            Row::Http(h) => Some(*h),
            Row::Event(_) | Row::Count(_) => None,
        })
    };
    let requests: i64 = minutes().map(|h| h.requests).sum();
    match (a.op, a.field.as_deref()) {
        (AggregateOp::Count, None) => Some(Value::Integer(requests)),
        (op, Some("duration_ms")) => {
            if requests == 0 {
                return Some(match op {
                    AggregateOp::Count => Value::Integer(0),
                    _ => Value::Null,
                });
            }
            let sum_us: i64 = minutes().map(|h| h.duration_sum_us).sum();
            let max_us = minutes().map(|h| h.duration_max_us).max().unwrap_or(0);
            Some(match op {
                AggregateOp::Count => Value::Integer(requests),
                AggregateOp::Sum => Value::Float(sum_us as f64 / 1000.0),
                AggregateOp::Avg => Value::Float(sum_us as f64 / requests as f64 / 1000.0),
                AggregateOp::Max => Value::Float(max_us as f64 / 1000.0),
                AggregateOp::Min => {
                    let merged = merged_buckets(minutes());
                    Value::Float(histogram_quantile(&merged, 0.0, max_us) / 1000.0)
                }
                AggregateOp::P50 | AggregateOp::P90 | AggregateOp::P99 => {
                    let merged = merged_buckets(minutes());
                    Value::Float(histogram_quantile(&merged, quantile(op), max_us) / 1000.0)
                }
            })
        }
        _ => None,
    }
}

/// The duration histogram of several minutes: their buckets added.
pub fn merged_buckets<'a>(minutes: impl Iterator<Item = &'a HttpRedRow>) -> Vec<u64> {
    let mut out = vec![0u64; duration_buckets_us().len() + 1];
    for h in minutes {
        for (o, c) in out.iter_mut().zip(&h.buckets) {
            *o += c;
        }
    }
    out
}

/// The `q` quantile (microseconds) of a histogram over
/// [`duration_buckets_us`], interpolated within its bucket and never above
/// the observed maximum.
pub fn histogram_quantile(buckets: &[u64], q: f64, max_us: i64) -> f64 {
    let bounds = duration_buckets_us();
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return 0.0;
    }
    let target = (q * total as f64).max(1.0);
    let mut seen = 0u64;
    for (i, &c) in buckets.iter().enumerate() {
        if c == 0 {
            continue;
        }
        if (seen + c) as f64 >= target {
            let lo = if i == 0 { 0.0 } else { bounds[i - 1] as f64 };
            let hi = bounds.get(i).map_or(max_us as f64, |&b| b as f64);
            let within = ((target - seen as f64) / c as f64).clamp(0.0, 1.0);
            let v = lo + (hi - lo) * within;
            return v.min(max_us as f64);
        }
        seen += c;
    }
    max_us as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::bucket_of;

    fn ev(ts: i64, pod: &str, rss: i64) -> CollectorEventRow {
        let mut fields = serde_json::Map::new();
        fields.insert("anon_rss_kb".into(), rss.into());
        CollectorEventRow {
            ts_ms: ts,
            node: "n1".into(),
            collector: "oom".into(),
            kind: "oom_kill".into(),
            namespace: Some("shop".into()),
            pod: Some(pod.into()),
            container: Some("app".into()),
            pod_uid: None,
            container_id: None,
            cgroup: None,
            pid: Some(7),
            comm: Some("x".into()),
            fields,
        }
    }

    fn query(
        filters: Vec<Filter>,
        group_by: &[&str],
        aggregates: Vec<Aggregate>,
    ) -> CollectorQuery {
        CollectorQuery {
            collector: "oom".into(),
            since: 0,
            until: None,
            filters,
            group_by: group_by.iter().map(|s| s.to_string()).collect(),
            aggregates,
            limit: None,
        }
    }

    fn count() -> Aggregate {
        Aggregate {
            op: AggregateOp::Count,
            field: None,
        }
    }

    #[test]
    fn groups_count_and_exact_percentiles() {
        let rows: Vec<CollectorEventRow> = (1..=10)
            .map(|i| ev(i, if i <= 7 { "a" } else { "b" }, i * 100))
            .collect();
        let rows: Vec<Row> = rows.iter().map(Row::Event).collect();
        let spec = crate::collectors::spec("oom").unwrap();
        let q = query(
            vec![],
            &["pod"],
            vec![
                count(),
                Aggregate {
                    op: AggregateOp::P50,
                    field: Some("anon_rss_kb".into()),
                },
                Aggregate {
                    op: AggregateOp::Max,
                    field: Some("anon_rss_kb".into()),
                },
            ],
        );
        let t = answer(spec, &q, &rows, true);
        assert_eq!(
            t.columns,
            ["pod", "count", "p50(anon_rss_kb)", "max(anon_rss_kb)"]
        );
        assert_eq!(
            t.rows,
            vec![
                vec![
                    Value::Text("a".into()),
                    Value::Integer(7),
                    Value::Float(400.0),
                    Value::Integer(700)
                ],
                vec![
                    Value::Text("b".into()),
                    Value::Integer(3),
                    Value::Float(900.0),
                    Value::Integer(1000)
                ],
            ]
        );
        assert!(!t.truncated);
    }

    #[test]
    fn filters_compare_by_type_and_nulls() {
        let mut rows = [ev(1, "a", 100), ev(2, "b", 300)];
        rows[1].namespace = None;
        let rows: Vec<Row> = rows.iter().map(Row::Event).collect();
        let spec = crate::collectors::spec("oom").unwrap();
        let filter = |field: &str, op, value| Filter {
            field: field.into(),
            op,
            value,
        };
        let n = |filters| {
            answer(spec, &query(filters, &[], vec![count()]), &rows, true).rows[0][0].clone()
        };
        assert_eq!(
            n(vec![filter(
                "anon_rss_kb",
                FilterOp::Gt,
                Value::Integer(150)
            )]),
            Value::Integer(1)
        );
        assert_eq!(
            n(vec![filter(
                "anon_rss_kb",
                FilterOp::Le,
                Value::Float(300.0)
            )]),
            Value::Integer(2)
        );
        assert_eq!(
            n(vec![filter("namespace", FilterOp::Eq, Value::Null)]),
            Value::Integer(1)
        );
        assert_eq!(
            n(vec![filter(
                "namespace",
                FilterOp::Eq,
                Value::Text("shop".into())
            )]),
            Value::Integer(1)
        );
        assert_eq!(
            n(vec![filter(
                "pod",
                FilterOp::Prefix,
                Value::Text("b".into())
            )]),
            Value::Integer(1)
        );
        assert_eq!(
            n(vec![filter("pod", FilterOp::Eq, Value::Text("zzz".into()))]),
            Value::Integer(0)
        );
        // Raw rows: every field, in the catalogue's order.
        let t = answer(spec, &query(vec![], &[], vec![]), &rows, true);
        assert_eq!(t.columns[0], "ts");
        assert_eq!(t.rows.len(), 2);
    }

    #[test]
    fn bad_queries_name_what_is_wrong() {
        let spec = crate::collectors::spec("oom").unwrap();
        let mut q = query(vec![], &["nope"], vec![count()]);
        let err = validate(spec, &q).unwrap_err();
        assert!(
            matches!(&err, ProbeError::InvalidInput(m) if m.contains("no field \"nope\"")),
            "{err:?}"
        );
        q.group_by.clear();
        q.aggregates = vec![Aggregate {
            op: AggregateOp::Sum,
            field: Some("comm".into()),
        }];
        assert!(
            matches!(validate(spec, &q), Err(ProbeError::InvalidInput(m)) if m.contains("not a number"))
        );
        q.aggregates.clear();
        q.filters = vec![Filter {
            field: "pid".into(),
            op: FilterOp::Contains,
            value: Value::Text("1".into()),
        }];
        assert!(validate(spec, &q).is_err());
        q.filters.clear();
        q.limit = Some(MAX_ROWS + 1);
        assert!(validate(spec, &q).is_err());
    }

    #[test]
    fn http_minutes_aggregate_over_requests() {
        let mut buckets = vec![0u64; duration_buckets_us().len() + 1];
        for d in [1_000u64; 90].iter().chain([50_000u64; 10].iter()) {
            buckets[bucket_of(*d)] += 1;
        }
        let minute = HttpRedRow {
            minute_ms: 60_000,
            node: "n1".into(),
            namespace: String::new(),
            pod: String::new(),
            server: "127.0.0.1:80".into(),
            method: "GET".into(),
            route: "/".into(),
            requests: 100,
            errors: 3,
            client_errors: 5,
            duration_sum_us: 90 * 1_000 + 10 * 50_000,
            duration_max_us: 50_000,
            buckets,
        };
        let rows = [Row::Http(&minute)];
        let spec = crate::collectors::spec("http").unwrap();
        let agg = |op, field: Option<&str>| Aggregate {
            op,
            field: field.map(String::from),
        };
        let mut q = query(
            vec![],
            &["route"],
            vec![
                agg(AggregateOp::Count, None),
                agg(AggregateOp::Sum, Some("errors")),
                agg(AggregateOp::Avg, Some("duration_ms")),
                agg(AggregateOp::P50, Some("duration_ms")),
                agg(AggregateOp::P99, Some("duration_ms")),
                agg(AggregateOp::Max, Some("duration_ms")),
            ],
        );
        q.collector = "http".into();
        let t = answer(spec, &q, &rows, true);
        let row = &t.rows[0];
        assert_eq!(row[1], Value::Integer(100));
        assert_eq!(row[2], Value::Integer(3));
        assert_eq!(row[3], Value::Float(5.9));
        let within = |v: &Value, want: f64| match v {
            Value::Float(f) => (f - want).abs() <= want * 0.1,
            _ => false,
        };
        assert!(within(&row[4], 1.0), "{:?}", row[4]);
        assert!(within(&row[5], 50.0), "{:?}", row[5]);
        assert_eq!(row[6], Value::Float(50.0));
    }
}
