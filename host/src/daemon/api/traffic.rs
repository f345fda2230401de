//! HTTP traffic per service for people: the http collector's per-minute
//! sums (what the node agents' eBPF programs count in the kernel) added
//! up over a window per serving pod, or per pod and route: requests and
//! their rate, server and client errors, the duration's percentiles from
//! the merged histograms (as the probes' queries compute them), and a
//! series of requests and errors across the window for a sparkline. This
//! is the R.E.D. view kubebpfbox drew in Grafana, from Sonde's own store.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{RawQuery, State};
use serde::Serialize;
use utoipa::ToSchema;

use super::rows::Window;
use super::{ApiError, AppState};
use crate::collectors::query::{SCAN_CAP, histogram_quantile, merged_buckets};
use crate::store::HttpRedRow;

/// Services a page holds by default, and at most.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;
/// The most points a service's series has: a longer window adds minutes
/// per point.
const MAX_POINTS: i64 = 60;
const MINUTE_MS: i64 = 60_000;
/// The fields a query may ask to equal a value.
const FILTERS: [&str; 6] = ["node", "namespace", "pod", "server", "method", "route"];

/// How the minutes are added up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum By {
    /// One row per serving pod and address (node, namespace, pod, server).
    Pod,
    /// One row per serving pod, address, method and route.
    Route,
}

/// HTTP traffic over a window, one row per service, busiest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TrafficView {
    /// The window, ms since the epoch: the minutes that start in [since, until).
    pub since: i64,
    pub until: i64,
    /// `pod` or `route`.
    pub by: String,
    /// The width of one point of each series, ms (a whole number of
    /// minutes); the series start at `complete_since` when it is set.
    pub step_ms: i64,
    pub services: Vec<TrafficRow>,
    /// More services than the page holds, or more minutes in the window
    /// than one read takes (see `complete_since`): narrow it.
    pub truncated: bool,
    /// When the window held more rows than one read takes, the newest
    /// were read: the figures cover the minutes from this time (ms) on.
    pub complete_since: Option<i64>,
}

/// One service's requests, errors and durations over the window.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TrafficRow {
    pub node: String,
    /// The serving pod's namespace and name ('' when the server is not a
    /// known pod: `server` then names it).
    pub namespace: String,
    pub pod: String,
    /// The server's address, ip:port.
    pub server: String,
    /// With `by=route` only.
    pub method: Option<String>,
    pub route: Option<String>,
    /// Requests answered in the window.
    pub requests: i64,
    /// Requests per second, averaged over the window.
    pub per_second: f64,
    /// Answers 500-599, and their share of the requests.
    pub errors: i64,
    pub error_ratio: f64,
    /// Answers 400-499.
    pub client_errors: i64,
    /// Request duration (first request byte to status line), ms; null
    /// without requests. Percentiles within one histogram bucket (10%).
    pub avg_ms: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p90_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
    /// Requests and errors per point of the window, oldest first.
    pub series_requests: Vec<i64>,
    pub series_errors: Vec<i64>,
}

/// The service `row` belongs to.
fn key_of(row: &HttpRedRow, by: By) -> (String, String, String, String, String, String) {
    let (method, route) = match by {
        By::Pod => (String::new(), String::new()),
        By::Route => (row.method.clone(), row.route.clone()),
    };
    (
        row.node.clone(),
        row.namespace.clone(),
        row.pod.clone(),
        row.server.clone(),
        method,
        route,
    )
}

fn field<'a>(row: &'a HttpRedRow, name: &str) -> &'a str {
    match name {
        "node" => &row.node,
        "namespace" => &row.namespace,
        "pod" => &row.pod,
        "server" => &row.server,
        "method" => &row.method,
        _ => &row.route,
    }
}

/// The width of a series' point for a window: whole minutes, at most
/// [`MAX_POINTS`] points.
fn step_ms(since: i64, until: i64) -> i64 {
    let minutes = (until.saturating_sub(since) + MINUTE_MS - 1) / MINUTE_MS;
    ((minutes + MAX_POINTS - 1) / MAX_POINTS).max(1) * MINUTE_MS
}

/// Where the figures start when the read stopped at its cap (`rows`
/// newest first): the minute after the oldest one read, which may be
/// there only in part; `None` when every row was read.
fn complete_since(rows: &[HttpRedRow], read_all: bool) -> Option<i64> {
    if read_all {
        return None;
    }
    rows.last().map(|r| r.minute_ms + MINUTE_MS)
}

/// Adds up `rows` (the window's minutes) per service, busiest first.
pub(crate) fn summarize(rows: &[HttpRedRow], by: By, since: i64, until: i64) -> Vec<TrafficRow> {
    let step = step_ms(since, until);
    let points = usize::try_from((until.saturating_sub(since) + step - 1) / step)
        .unwrap_or(0)
        .max(1);
    let seconds = (until.saturating_sub(since) as f64 / 1000.0).max(1.0);
    let mut groups: BTreeMap<_, Vec<&HttpRedRow>> = BTreeMap::new();
    for r in rows {
        groups.entry(key_of(r, by)).or_default().push(r);
    }
    let mut out: Vec<TrafficRow> = groups
        .into_iter()
        .map(|((node, namespace, pod, server, method, route), minutes)| {
            let requests: i64 = minutes.iter().map(|m| m.requests).sum();
            let errors: i64 = minutes.iter().map(|m| m.errors).sum();
            let client_errors: i64 = minutes.iter().map(|m| m.client_errors).sum();
            let sum_us: i64 = minutes.iter().map(|m| m.duration_sum_us).sum();
            let max_us = minutes.iter().map(|m| m.duration_max_us).max().unwrap_or(0);
            let merged = merged_buckets(minutes.iter().copied());
            let ms = |us: f64| (requests > 0).then_some(us / 1000.0);
            let mut series_requests = vec![0i64; points];
            let mut series_errors = vec![0i64; points];
            for m in &minutes {
                let i = usize::try_from((m.minute_ms - since).max(0) / step)
                    .unwrap_or(0)
                    .min(points - 1);
                series_requests[i] += m.requests;
                series_errors[i] += m.errors;
            }
            TrafficRow {
                node,
                namespace,
                pod,
                server,
                method: (by == By::Route).then_some(method),
                route: (by == By::Route).then_some(route),
                requests,
                per_second: requests as f64 / seconds,
                errors,
                error_ratio: if requests > 0 {
                    errors as f64 / requests as f64
                } else {
                    0.0
                },
                client_errors,
                avg_ms: ms(sum_us as f64 / requests.max(1) as f64),
                p50_ms: ms(histogram_quantile(&merged, 0.5, max_us)),
                p90_ms: ms(histogram_quantile(&merged, 0.9, max_us)),
                p99_ms: ms(histogram_quantile(&merged, 0.99, max_us)),
                max_ms: ms(max_us as f64),
                series_requests,
                series_errors,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        b.requests
            .cmp(&a.requests)
            .then_with(|| b.errors.cmp(&a.errors))
    });
    out
}

/// HTTP traffic per serving pod (`by=pod`, the default) or per pod and
/// route (`by=route`) over a window (`since`/`until`, RFC 3339 or ms; or
/// `minutes` back from now, 60 by default), optionally only where `node`,
/// `namespace`, `pod`, `server`, `method` or `route` equals a value;
/// busiest first, at most `limit` (100, at most 1000).
#[utoipa::path(get, path = "/api/v1/traffic", tag = "collectors",
    params(("by" = Option<String>, Query, description = "pod (default) or route"),
        ("since" = Option<String>, Query, description = "start of the window: RFC 3339, or ms since the epoch"),
        ("until" = Option<String>, Query, description = "end of the window (default now)"),
        ("minutes" = Option<i64>, Query, description = "the window as minutes back from `until`, when `since` is not given (default 60)"),
        ("limit" = Option<usize>, Query, description = "services per page (default 100, at most 1000)"),
        ("namespace" = Option<String>, Query, description = "only this namespace (also node, pod, server, method, route)")),
    responses((status = 200, body = TrafficView), (status = 400, body = super::views::ErrorBody)))]
pub async fn traffic(
    State(app): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<TrafficView>, ApiError> {
    let window = Window::parse(raw.as_deref(), MAX_LIMIT)?;
    let mut by = By::Pod;
    let mut filters: Vec<(&'static str, String)> = Vec::new();
    for (key, value) in window.rest {
        if key == "by" {
            by = match value.as_str() {
                "pod" => By::Pod,
                "route" => By::Route,
                other => {
                    return Err(ApiError::bad_request(format!(
                        "by: {other:?} is neither pod nor route"
                    )));
                }
            };
        } else if let Some(name) = FILTERS.iter().find(|f| **f == key) {
            filters.push((name, value));
        } else {
            return Err(ApiError::bad_request(format!(
                "{key}: neither by, since, until, minutes, limit nor one of {}",
                FILTERS.join(", ")
            )));
        }
    }
    let rows = app
        .daemon
        .store()
        .http_red_newest(window.since, window.until, SCAN_CAP)
        .await?;
    let scanned_all = rows.len() < SCAN_CAP as usize;
    let complete_since = complete_since(&rows, scanned_all);
    let since = complete_since.unwrap_or(window.since);
    let rows: Vec<HttpRedRow> = rows
        .into_iter()
        .filter(|r| r.minute_ms >= since && filters.iter().all(|(f, v)| field(r, f) == v))
        .collect();
    // Rates and series over what was read.
    let mut services = summarize(&rows, by, since, window.until);
    let limit = window.limit.unwrap_or(DEFAULT_LIMIT);
    let truncated = services.len() > limit || !scanned_all;
    services.truncate(limit);
    Ok(Json(TrafficView {
        since: window.since,
        until: window.until,
        by: match by {
            By::Pod => "pod",
            By::Route => "route",
        }
        .to_string(),
        step_ms: step_ms(since, window.until),
        services,
        truncated,
        complete_since,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::{bucket_of, duration_buckets_us};

    fn minute(
        minute_ms: i64,
        pod: &str,
        route: &str,
        durations_us: &[u64],
        errors: i64,
    ) -> HttpRedRow {
        let mut buckets = vec![0u64; duration_buckets_us().len() + 1];
        for d in durations_us {
            buckets[bucket_of(*d)] += 1;
        }
        HttpRedRow {
            minute_ms,
            node: "n1".into(),
            namespace: "shop".into(),
            pod: pod.into(),
            server: "10.0.0.7:8080".into(),
            method: "GET".into(),
            route: route.into(),
            requests: durations_us.len() as i64,
            errors,
            client_errors: 0,
            duration_sum_us: durations_us.iter().sum::<u64>() as i64,
            duration_max_us: durations_us.iter().copied().max().unwrap_or(0) as i64,
            buckets,
        }
    }

    #[test]
    fn minutes_add_up_per_pod_or_route_with_series_across_the_window() {
        let since = 1_700_000_040_000;
        let until = since + 10 * MINUTE_MS;
        let rows = vec![
            minute(since, "web-0", "/items/:id", &[1_000; 90], 9),
            minute(since + 3 * MINUTE_MS, "web-0", "/cart", &[50_000; 10], 0),
            minute(since + 9 * MINUTE_MS, "api-0", "/", &[2_000; 5], 0),
        ];
        let pods = summarize(&rows, By::Pod, since, until);
        assert_eq!(pods.len(), 2);
        let web = &pods[0];
        assert_eq!(
            (web.pod.as_str(), web.requests, web.errors),
            ("web-0", 100, 9)
        );
        assert_eq!(web.method, None);
        assert!((web.error_ratio - 0.09).abs() < 1e-9);
        assert!((web.per_second - 100.0 / 600.0).abs() < 1e-9);
        assert_eq!(web.series_requests.len(), 10);
        assert_eq!(web.series_requests[0], 90);
        assert_eq!(web.series_requests[3], 10);
        assert_eq!(web.series_errors[0], 9);
        // 90% of the requests took 1 ms, 10% took 50 ms: the median is
        // near 1 ms, the 99th percentile near 50 ms (within a bucket).
        let p50 = web.p50_ms.unwrap();
        let p99 = web.p99_ms.unwrap();
        assert!((0.9..=1.1).contains(&p50), "p50 {p50}");
        assert!((45.0..=50.0).contains(&p99), "p99 {p99}");
        assert_eq!(web.max_ms, Some(50.0));
        assert!((web.avg_ms.unwrap() - (90.0 * 1.0 + 10.0 * 50.0) / 100.0).abs() < 1e-9);
        assert_eq!(pods[1].pod, "api-0");
        assert_eq!(pods[1].series_requests[9], 5);

        let routes = summarize(&rows, By::Route, since, until);
        assert_eq!(routes.len(), 3);
        assert_eq!(routes[0].route.as_deref(), Some("/items/:id"));
        assert_eq!(routes[1].route.as_deref(), Some("/cart"));
        let cart = routes[1].p50_ms.unwrap();
        assert!((45.0..=50.0).contains(&cart), "p50 {cart}");
    }

    #[test]
    fn a_read_cut_at_its_cap_covers_the_newest_whole_minutes() {
        let newest_first = vec![
            minute(180_000, "web-0", "/", &[1_000], 0),
            minute(120_000, "web-0", "/", &[1_000], 0),
            minute(60_000, "web-0", "/", &[1_000], 0),
        ];
        assert_eq!(complete_since(&newest_first, true), None);
        assert_eq!(complete_since(&newest_first, false), Some(120_000));
        assert_eq!(complete_since(&[], false), None);
    }

    #[test]
    fn a_long_window_has_at_most_sixty_points_of_whole_minutes() {
        assert_eq!(step_ms(0, 60 * MINUTE_MS), MINUTE_MS);
        assert_eq!(step_ms(0, 61 * MINUTE_MS), 2 * MINUTE_MS);
        assert_eq!(step_ms(0, 1440 * MINUTE_MS), 24 * MINUTE_MS);
        assert_eq!(step_ms(0, 1), MINUTE_MS);
        let since = 0;
        let until = 1440 * MINUTE_MS;
        let rows = vec![minute(until - MINUTE_MS, "web-0", "/", &[1_000], 0)];
        let one = summarize(&rows, By::Pod, since, until);
        assert_eq!(one[0].series_requests.len(), 60);
        assert_eq!(one[0].series_requests[59], 1);
    }
}
