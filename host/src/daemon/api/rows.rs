//! A collector's rows for people: the cluster's events kept past their
//! hour, the API server's audit records, the node collectors' events and
//! HTTP minutes, browsed by time window and field values, newest first.
//! The same engine answers as for probes (`collectors::query`), so a filter
//! means here what it means there, and every name is checked against the
//! collector's fields.

use axum::Json;
use axum::extract::{RawQuery, State};
use serde::Serialize;
use utoipa::ToSchema;

use super::{ApiError, AppState, Path};
use crate::bindings::sonde::probe::collectors::{
    CollectorQuery, FieldType, Filter, FilterOp, Value,
};

/// Rows a page holds by default, and at most.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;
/// The window when none is given: the last hour.
const DEFAULT_MINUTES: i64 = 60;

/// A page of a collector's rows.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RowsView {
    pub collector: String,
    /// The window, ms since the epoch: [since, until).
    pub since: i64,
    pub until: i64,
    /// The collector's fields, the order of each row's values.
    pub columns: Vec<String>,
    /// Newest first; each value null, text, a number or a boolean.
    #[schema(value_type = Vec<Vec<Object>>)]
    pub rows: Vec<Vec<serde_json::Value>>,
    /// More rows matched than the page holds (or than the engine reads
    /// for one window): narrow the window or the filters.
    pub truncated: bool,
}

fn json_of(v: Value) -> serde_json::Value {
    match v {
        Value::Null => serde_json::Value::Null,
        Value::Text(s) => serde_json::Value::String(s),
        Value::Integer(i) => i.into(),
        Value::Float(f) => {
            serde_json::Number::from_f64(f).map_or(serde_json::Value::Null, Into::into)
        }
        Value::Boolean(b) => b.into(),
    }
}

/// A time given as RFC 3339 or as milliseconds since the epoch.
pub(super) fn time(name: &str, text: &str) -> Result<i64, ApiError> {
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    text.parse::<jiff::Timestamp>()
        .map(|t| t.as_millisecond())
        .map_err(|e| {
            ApiError::bad_request(format!(
                "{name}: {text:?} is neither an RFC 3339 time nor milliseconds: {e}"
            ))
        })
}

/// The window and page size a query string asks for (`since`/`until`, RFC
/// 3339 or ms; or `minutes` back from `until`, 60 by default; `limit`, 1 to
/// `max_limit`), and its other parameters in order.
pub(super) struct Window {
    pub since: i64,
    pub until: i64,
    pub now: i64,
    pub limit: Option<usize>,
    pub rest: Vec<(String, String)>,
}

impl Window {
    pub fn parse(raw: Option<&str>, max_limit: usize) -> Result<Self, ApiError> {
        let params: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or(""))
            .map_err(|e| ApiError::bad_request(format!("bad query: {e}")))?;
        let now = jiff::Timestamp::now().as_millisecond();
        let (mut since, mut until, mut minutes, mut limit) = (None, None, None, None);
        let mut rest = Vec::new();
        for (key, value) in params {
            match key.as_str() {
                "since" => since = Some(time("since", &value)?),
                "until" => until = Some(time("until", &value)?),
                "minutes" => {
                    let m: i64 = value.parse().ok().filter(|m| *m > 0).ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "minutes: {value:?} is not a number of minutes above 0"
                        ))
                    })?;
                    minutes = Some(m);
                }
                "limit" => {
                    limit = Some(
                        value
                            .parse()
                            .ok()
                            .filter(|l| (1..=max_limit).contains(l))
                            .ok_or_else(|| {
                                ApiError::bad_request(format!(
                                    "limit: {value:?} is not 1 to {max_limit}"
                                ))
                            })?,
                    );
                }
                _ => rest.push((key, value)),
            }
        }
        let until = until.unwrap_or(now);
        let since = since.unwrap_or_else(|| {
            until.saturating_sub(minutes.unwrap_or(DEFAULT_MINUTES).saturating_mul(60_000))
        });
        if until < since {
            return Err(ApiError::bad_request(format!(
                "until ({until}) is before since ({since})"
            )));
        }
        Ok(Self {
            since,
            until,
            now,
            limit,
            rest,
        })
    }
}

/// The rows of collector `name` in a window (`since`/`until`, RFC 3339 or
/// ms; or `minutes` back from now, 60 by default), where every other
/// parameter names a field and the value it must have (`reason=BackOff`,
/// `user=alice`, `code=403`), newest first, at most `limit` (100, at most
/// 1000).
#[utoipa::path(get, path = "/api/v1/collectors/{name}/rows", tag = "collectors",
    params(("name" = String, Path, description = "the collector: kube-events, kube-audit, oom, exec, tcp, listen, http"),
        ("since" = Option<String>, Query, description = "start of the window: RFC 3339, or ms since the epoch"),
        ("until" = Option<String>, Query, description = "end of the window (default now)"),
        ("minutes" = Option<i64>, Query, description = "the window as minutes back from `until`, when `since` is not given (default 60)"),
        ("limit" = Option<usize>, Query, description = "rows per page (default 100, at most 1000)")),
    responses((status = 200, body = RowsView), (status = 400, body = super::views::ErrorBody),
        (status = 404, body = super::views::ErrorBody)))]
pub async fn collector_rows(
    State(app): State<AppState>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<RowsView>, ApiError> {
    let Some(spec) = crate::collectors::spec(&name) else {
        return Err(ApiError::not_found(format!("no collector {name:?}")));
    };
    let window = Window::parse(raw.as_deref(), MAX_LIMIT)?;
    let mut filters = Vec::new();
    for (field, value) in window.rest {
        let Some(f) = spec.field(&field) else {
            let known: Vec<&str> = spec.fields.iter().map(|f| f.name).collect();
            return Err(ApiError::bad_request(format!(
                "{field}: neither since, until, minutes, limit nor a field of {name} ({})",
                known.join(", ")
            )));
        };
        let typed = match f.ty {
            FieldType::Text => Value::Text(value),
            FieldType::Integer | FieldType::Timestamp => {
                Value::Integer(value.parse().map_err(|_| {
                    ApiError::bad_request(format!("{field}: {value:?} is not an integer"))
                })?)
            }
            FieldType::Float => Value::Float(value.parse().map_err(|_| {
                ApiError::bad_request(format!("{field}: {value:?} is not a number"))
            })?),
            FieldType::Boolean => Value::Boolean(value.parse().map_err(|_| {
                ApiError::bad_request(format!("{field}: {value:?} is not true or false"))
            })?),
        };
        filters.push(Filter {
            field,
            op: FilterOp::Eq,
            value: typed,
        });
    }
    let (since, until, now) = (window.since, window.until, window.now);
    let limit = window.limit.unwrap_or(DEFAULT_LIMIT);
    let q = CollectorQuery {
        collector: name.clone(),
        since,
        until: Some(until),
        filters,
        group_by: Vec::new(),
        aggregates: Vec::new(),
        limit: None,
    };
    let table = crate::collectors::query::run(app.daemon.store(), &q, now)
        .await
        .map_err(|e| match e {
            crate::bindings::ProbeError::InvalidInput(m) => ApiError::bad_request(m),
            other => ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                format!("cannot read the collector's rows: {other:?}"),
            ),
        })?;
    let matched = table.rows.len();
    let rows: Vec<Vec<serde_json::Value>> = table
        .rows
        .into_iter()
        .rev()
        .take(limit)
        .map(|r| r.into_iter().map(json_of).collect())
        .collect();
    Ok(Json(RowsView {
        collector: name,
        since,
        until,
        columns: table.columns,
        rows,
        truncated: table.truncated || matched > limit,
    }))
}
