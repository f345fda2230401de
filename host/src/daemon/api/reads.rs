//! Read endpoints: who am I, the dashboard summary, findings (filters,
//! search, keyset pages), rules, trends (JSON and an SVG plot), and the
//! latest report in every format the CLI writes.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use jiff::{Timestamp, ToSpan};
use serde::Deserialize;
use utoipa::IntoParams;

use super::views::*;
use super::{ApiError, AppState, Caller, Path, Query};
use crate::bindings::Severity;
use crate::report::Format;
use crate::store::{FindingFilter, FindingStatus, TrendQuery};

/// Who the caller is.
#[utoipa::path(get, path = "/api/v1/whoami", tag = "findings",
    responses((status = 200, body = WhoAmI), (status = 401, body = ErrorBody)))]
pub async fn whoami(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Json<WhoAmI> {
    Json(WhoAmI {
        role: match caller.0 {
            super::Role::Admin => "admin",
            super::Role::Viewer => "viewer",
            super::Role::Agent => "agent",
            super::Role::Audit => "audit",
        }
        .into(),
        auth: !app.daemon.loaded().tokens().is_empty(),
        cluster: app.daemon.loaded().checked.config.cluster_name.clone(),
    })
}

/// The dashboard: score, counts by severity, probes needing attention,
/// newest findings, runs in progress.
#[utoipa::path(get, path = "/api/v1/summary", tag = "findings",
    responses((status = 200, body = SummaryView), (status = 401, body = ErrorBody)))]
pub async fn summary(State(app): State<AppState>) -> Result<Json<SummaryView>, ApiError> {
    let store = app.daemon.store();
    let score = app.score.get(&app.daemon).await?;
    let counts: BTreeMap<String, u64> = store
        .open_counts()
        .await?
        .into_iter()
        .map(|(s, n)| (s.as_str().to_string(), n))
        .collect();
    let probes = super::control::probe_views(&app.daemon).await?;
    let health = ProbeHealth {
        total: probes.len(),
        failing: probes
            .iter()
            .filter(|p| p.last_run.as_ref().is_some_and(|r| r.status == "failed"))
            .map(|p| p.name.clone())
            .collect(),
        stale: probes
            .iter()
            .filter(|p| p.stale)
            .map(|p| p.name.clone())
            .collect(),
    };
    let newest = store
        .newest_findings(10)
        .await?
        .into_iter()
        .map(FindingView::from)
        .collect();
    let running = store
        .unfinished_runs()
        .await?
        .iter()
        .map(RunView::from)
        .collect();
    Ok(Json(SummaryView {
        score: score.as_ref().map(ScoreView::from),
        counts,
        probes: health,
        newest,
        running,
    }))
}

/// Finding filters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FindingQuery {
    /// Namespace; `-` selects cluster-scoped objects and cluster-wide findings.
    namespace: Option<String>,
    kind: Option<String>,
    name: Option<String>,
    rule: Option<String>,
    probe: Option<String>,
    /// Comma-separated severities (info, low, medium, high, critical).
    severity: Option<String>,
    /// open (default), all, new, persisting or fixed.
    status: Option<String>,
    /// For new, persisting and fixed: since when (RFC 3339; default 24 hours ago).
    since: Option<String>,
    /// Text the message contains.
    q: Option<String>,
    /// Page size, 1-1000 (default 50).
    limit: Option<u32>,
    /// The `next` of the previous page.
    cursor: Option<String>,
}

fn parse_severities(s: Option<&str>) -> Result<Vec<Severity>, ApiError> {
    let Some(s) = s.filter(|s| !s.is_empty()) else {
        return Ok(Vec::new());
    };
    s.split(',')
        .map(|p| {
            p.trim().parse::<Severity>().map_err(|_| {
                ApiError::bad_request(format!(
                    "severity: {p:?} is not one of info, low, medium, high, critical"
                ))
            })
        })
        .collect()
}

fn parse_since(s: Option<&str>) -> Result<Timestamp, ApiError> {
    match s.filter(|s| !s.is_empty()) {
        None => Ok(Timestamp::now() - 24.hours()),
        Some(t) => t.parse().map_err(|e| {
            ApiError::bad_request(format!("since: {t:?} is not an RFC 3339 time: {e}"))
        }),
    }
}

impl FindingQuery {
    fn filter(&self) -> Result<FindingFilter, ApiError> {
        let nonempty = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
        let status = match self.status.as_deref().unwrap_or("open") {
            "open" | "" => FindingStatus::Open,
            "all" => FindingStatus::All,
            "new" => FindingStatus::New {
                since: parse_since(self.since.as_deref())?,
            },
            "persisting" => FindingStatus::Persisting {
                since: parse_since(self.since.as_deref())?,
            },
            "fixed" => FindingStatus::Fixed {
                since: parse_since(self.since.as_deref())?,
            },
            other => {
                return Err(ApiError::bad_request(format!(
                    "status: {other:?} is not one of open, all, new, persisting, fixed"
                )));
            }
        };
        Ok(FindingFilter {
            probe: nonempty(&self.probe),
            rule: nonempty(&self.rule),
            namespace: match self.namespace.as_deref() {
                Some("-") => Some(String::new()),
                _ => nonempty(&self.namespace),
            },
            kind: nonempty(&self.kind),
            name: nonempty(&self.name),
            severities: parse_severities(self.severity.as_deref())?,
            status,
            text: nonempty(&self.q),
        })
    }
}

/// Findings, most severe and newest first, a page at a time.
#[utoipa::path(get, path = "/api/v1/findings", tag = "findings", params(FindingQuery),
    responses((status = 200, body = FindingPageView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
pub async fn findings(
    State(app): State<AppState>,
    Query(q): Query<FindingQuery>,
) -> Result<Response, ApiError> {
    let filter = q.filter()?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=crate::store::MAX_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit: {limit} is not between 1 and {}",
            crate::store::MAX_PAGE
        )));
    }
    let cursor = q.cursor.as_deref().filter(|c| !c.is_empty());
    // Taken before the page is read: a run that ends meanwhile moves the
    // generation on (before and after its commit), so what is read here is
    // not served for the generation current after it.
    let generation = app.daemon.generation();
    let build = || async {
        let page = app.daemon.store().findings(&filter, limit, cursor).await?;
        let total = total(&app, &filter, generation).await?;
        let view = FindingPageView {
            items: page.items.into_iter().map(FindingView::from).collect(),
            next: page.next,
            total,
        };
        serde_json::to_vec(&view)
            .map(bytes::Bytes::from)
            .map_err(|e| {
                ApiError::new(
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                    format!("writing the page: {e}"),
                )
            })
    };
    let body = if limit <= PAGE_CACHE_MAX_LIMIT {
        let key = (format!("{filter:?} {limit} {cursor:?}"), generation);
        let cell = {
            let mut pages = app
                .pages
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if pages.len() >= PAGE_CACHE_ENTRIES {
                pages.retain(|(_, g), _| *g == generation);
                if pages.len() >= PAGE_CACHE_ENTRIES {
                    pages.clear();
                }
            }
            pages.entry(key).or_default().clone()
        };
        cell.get_or_try_init(build).await?.clone()
    } else {
        build().await?
    };
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response())
}

/// Pages of at most this many findings are kept (about 30 KiB per 50).
const PAGE_CACHE_MAX_LIMIT: u32 = 200;
/// At most this many pages are kept.
const PAGE_CACHE_ENTRIES: usize = 256;

/// How many findings a filter selects: counted once per filter until the
/// next run finishes (a count walks every matching row; pages do not).
async fn total(app: &AppState, filter: &FindingFilter, generation: u64) -> Result<u64, ApiError> {
    let key = (format!("{filter:?}"), generation);
    let cell = {
        let mut totals = app
            .totals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if totals.len() > 1024 {
            totals.retain(|(_, g), _| *g == key.1);
            if totals.len() > 1024 {
                totals.clear();
            }
        }
        totals.entry(key).or_default().clone()
    };
    let n = cell
        .get_or_try_init(|| app.daemon.store().count_findings(filter))
        .await?;
    Ok(*n)
}

/// One finding.
#[utoipa::path(get, path = "/api/v1/findings/{id}", tag = "findings",
    params(("id" = i64, Path, description = "The finding's id")),
    responses((status = 200, body = FindingView), (status = 404, body = ErrorBody)))]
pub async fn finding(
    State(app): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<FindingView>, ApiError> {
    app.daemon
        .store()
        .finding(id)
        .await?
        .map(|f| Json(f.into()))
        .ok_or_else(|| ApiError::not_found(format!("no finding {id}")))
}

/// Every rule of every probe.
#[utoipa::path(get, path = "/api/v1/rules", tag = "findings",
    responses((status = 200, body = Vec<RuleView>)))]
pub async fn rules(State(app): State<AppState>) -> Json<Vec<RuleView>> {
    Json(
        app.daemon
            .probes()
            .iter()
            .flat_map(|p| {
                p.prepared
                    .info
                    .rules
                    .iter()
                    .map(|r| RuleView::new(&p.name, r))
                    .collect::<Vec<_>>()
            })
            .collect(),
    )
}

/// One rule, with its open findings counted.
#[utoipa::path(get, path = "/api/v1/rules/{probe}/{rule}", tag = "findings",
    params(("probe" = String, Path), ("rule" = String, Path)),
    responses((status = 200, body = RuleDetail), (status = 404, body = ErrorBody)))]
pub async fn rule(
    State(app): State<AppState>,
    Path((probe, rule)): Path<(String, String)>,
) -> Result<Json<RuleDetail>, ApiError> {
    let p = app
        .daemon
        .probe(&probe)
        .ok_or_else(|| ApiError::not_found(format!("no probe {probe}")))?;
    let info = p
        .prepared
        .info
        .rules
        .iter()
        .find(|r| r.id == rule)
        .or_else(|| p.prepared.info.rules.iter().find(|r| r.id == "*"))
        .ok_or_else(|| ApiError::not_found(format!("{probe} has no rule {rule}")))?;
    let mut view = RuleView::new(&probe, info);
    view.id = rule.clone();
    let open_findings = app
        .daemon
        .store()
        .count_findings(&FindingFilter {
            probe: Some(probe),
            rule: Some(rule),
            ..Default::default()
        })
        .await?;
    Ok(Json(RuleDetail {
        rule: view,
        open_findings,
    }))
}

/// Trend parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TrendParams {
    /// Days back from today (UTC), 1-400 (default 30).
    days: Option<i64>,
    probe: Option<String>,
    namespace: Option<String>,
}

impl TrendParams {
    fn query(&self) -> Result<TrendQuery, ApiError> {
        let days = self.days.unwrap_or(30);
        if !(1..=crate::store::MAX_TREND_DAYS).contains(&days) {
            return Err(ApiError::bad_request(format!(
                "days: {days} is not between 1 and {}",
                crate::store::MAX_TREND_DAYS
            )));
        }
        let to = Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date();
        let from = to
            .checked_sub((days - 1).days())
            .map_err(|e| ApiError::bad_request(format!("days: {e}")))?;
        Ok(TrendQuery {
            from,
            to,
            probe: self.probe.clone().filter(|s| !s.is_empty()),
            namespace: match self.namespace.as_deref() {
                Some("-") => Some(String::new()),
                Some("") | None => None,
                Some(ns) => Some(ns.to_string()),
            },
        })
    }
}

/// Findings per day and severity: open at the end of the day, new, fixed.
#[utoipa::path(get, path = "/api/v1/trends", tag = "findings", params(TrendParams),
    responses((status = 200, body = TrendView), (status = 400, body = ErrorBody)))]
pub async fn trends(
    State(app): State<AppState>,
    Query(p): Query<TrendParams>,
) -> Result<Json<TrendView>, ApiError> {
    let q = p.query()?;
    let points = app.daemon.store().trends(&q).await?;
    Ok(Json(TrendView {
        points: points
            .into_iter()
            .map(|p| TrendPointView {
                day: p.day.to_string(),
                severity: p.severity.as_str().into(),
                open: p.open,
                new: p.new,
                fixed: p.fixed,
            })
            .collect(),
    }))
}

/// The trend of open findings as an SVG plot.
#[utoipa::path(get, path = "/api/v1/trends.svg", tag = "findings", params(TrendParams),
    responses((status = 200, content_type = "image/svg+xml", body = String)))]
pub async fn trends_svg(
    State(app): State<AppState>,
    Query(p): Query<TrendParams>,
) -> Result<Response, ApiError> {
    let q = p.query()?;
    let points = app.daemon.store().trends(&q).await?;
    let svg = crate::daemon::svg::trend_plot(&points, q.from, q.to);
    Ok(([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response())
}

/// Report format.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReportParams {
    /// json (default), yaml, csv, html, sarif, junit or table.
    format: Option<String>,
}

/// The latest report (each probe's last run and the findings open now),
/// as a download.
#[utoipa::path(get, path = "/api/v1/report", tag = "findings", params(ReportParams),
    responses((status = 200, description = "The report file"), (status = 400, body = ErrorBody)))]
pub async fn report(
    State(app): State<AppState>,
    Query(p): Query<ReportParams>,
) -> Result<Response, ApiError> {
    let name = p.format.as_deref().unwrap_or("json");
    let (format, ext, content_type) = match name {
        "json" => (Format::Json, "json", "application/json"),
        "yaml" => (Format::Yaml, "yaml", "application/yaml"),
        "csv" => (Format::Csv, "csv", "text/csv; charset=utf-8"),
        "html" => (Format::Html, "html", "text/html; charset=utf-8"),
        "sarif" => (Format::Sarif, "sarif", "application/sarif+json"),
        "junit" => (Format::Junit, "xml", "application/xml"),
        "table" => (Format::Table, "txt", "text/plain; charset=utf-8"),
        other => {
            return Err(ApiError::bad_request(format!(
                "format: {other:?} is not one of json, yaml, csv, html, sarif, junit, table"
            )));
        }
    };
    let report = crate::daemon::report::latest(&app.daemon).await?;
    let mut out = Vec::new();
    crate::report::render(&report, format, &mut out).map_err(|e| {
        ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot render the report: {e}"),
        )
    })?;
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"sonde-report.{ext}\""),
            ),
            // The HTML report styles itself inline and has no script.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'".to_string(),
            ),
        ],
        out,
    )
        .into_response())
}

/// The node collectors: each one's fields and its state on every node
/// whose agent reported it.
#[utoipa::path(get, path = "/api/v1/collectors", tag = "collectors",
    responses((status = 200, body = Vec<CollectorView>)))]
pub async fn collectors(State(app): State<AppState>) -> Result<Json<Vec<CollectorView>>, ApiError> {
    let statuses = app.daemon.store().collector_statuses().await?;
    Ok(Json(
        crate::collectors::COLLECTORS
            .iter()
            .map(|c| {
                let nodes: Vec<CollectorNodeView> = statuses
                    .iter()
                    .filter(|s| s.collector == c.name)
                    .map(CollectorNodeView::new)
                    .collect();
                CollectorView {
                    name: c.name.to_string(),
                    description: c.description.to_string(),
                    fields: c.fields.iter().map(|f| f.name.to_string()).collect(),
                    available: nodes.iter().any(|n| n.available),
                    nodes,
                }
            })
            .collect(),
    ))
}
