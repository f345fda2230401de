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
use crate::store::{HOUR_MS, HttpRedRow, hour_of};

/// Services a page holds by default, and at most.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;
/// The most points a service's series has: a longer window adds minutes
/// per point.
const MAX_POINTS: i64 = 60;
const MINUTE_MS: i64 = 60_000;
/// Windows longer than this are read in hours where the store has added
/// them up (a day is 24 rows per service instead of 1,440), and their
/// series have points of whole hours.
const HOURLY_AFTER_MS: i64 = 6 * HOUR_MS;
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
    /// The width of one point of each series, ms: whole minutes, or whole
    /// hours for a window longer than 6 hours.
    pub step_ms: i64,
    /// Where the series' first point starts, ms: the window's start (or
    /// `complete_since`), or the start of its hour when the points are hours.
    pub series_since: i64,
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

/// The points of a window's series: where the first starts, and how wide
/// each is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Points {
    pub origin: i64,
    pub step: i64,
}

impl Points {
    /// At most [`MAX_POINTS`] points over `[since, until)`: of whole
    /// minutes from `since`, or with `hourly` of whole hours from the
    /// start of `since`'s hour.
    pub(crate) fn over(since: i64, until: i64, hourly: bool) -> Points {
        let (origin, unit) = if hourly {
            (hour_of(since), HOUR_MS)
        } else {
            (since, MINUTE_MS)
        };
        let units = (until.saturating_sub(origin) + unit - 1) / unit;
        Points {
            origin,
            step: ((units + MAX_POINTS - 1) / MAX_POINTS).max(1) * unit,
        }
    }

    fn count(&self, until: i64) -> usize {
        usize::try_from((until.saturating_sub(self.origin) + self.step - 1) / self.step)
            .unwrap_or(0)
            .max(1)
    }
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

/// Adds up `rows` (the minutes, or hours, of `[since, until)`) per
/// service, busiest first, with series of `points`.
pub(crate) fn summarize(
    rows: &[HttpRedRow],
    by: By,
    since: i64,
    until: i64,
    points: Points,
) -> Vec<TrafficRow> {
    let step = points.step;
    let origin = points.origin;
    let points = points.count(until);
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
                let i = usize::try_from((m.minute_ms - origin).max(0) / step)
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
    // A long window in hours where the store has them, else in minutes.
    let hourly = window.until.saturating_sub(window.since) > HOURLY_AFTER_MS;
    let store = app.daemon.store();
    let (rows, complete_since) = if hourly {
        let read = store
            .http_red_by_hours(window.since, window.until, SCAN_CAP)
            .await?;
        (read.rows, read.complete_since)
    } else {
        let rows = store
            .http_red_newest(window.since, window.until, SCAN_CAP)
            .await?;
        let complete_since = complete_since(&rows, rows.len() < SCAN_CAP as usize);
        (rows, complete_since)
    };
    let scanned_all = complete_since.is_none();
    let since = complete_since.unwrap_or(window.since);
    let rows: Vec<HttpRedRow> = rows
        .into_iter()
        .filter(|r| r.minute_ms >= since && filters.iter().all(|(f, v)| field(r, f) == v))
        .collect();
    // Rates and series over what was read.
    let points = Points::over(since, window.until, hourly);
    let mut services = summarize(&rows, by, since, window.until, points);
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
        step_ms: points.step,
        series_since: points.origin,
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
        let minutes = Points::over(since, until, false);
        let pods = summarize(&rows, By::Pod, since, until, minutes);
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

        let routes = summarize(&rows, By::Route, since, until, minutes);
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
    fn a_long_window_has_at_most_sixty_points_of_whole_minutes_or_hours() {
        let step = |since, until, hourly| Points::over(since, until, hourly).step;
        assert_eq!(step(0, 60 * MINUTE_MS, false), MINUTE_MS);
        assert_eq!(step(0, 61 * MINUTE_MS, false), 2 * MINUTE_MS);
        assert_eq!(step(0, 1440 * MINUTE_MS, false), 24 * MINUTE_MS);
        assert_eq!(step(0, 1, false), MINUTE_MS);
        let since = 0;
        let until = 1440 * MINUTE_MS;
        let rows = vec![minute(until - MINUTE_MS, "web-0", "/", &[1_000], 0)];
        let one = summarize(
            &rows,
            By::Pod,
            since,
            until,
            Points::over(since, until, false),
        );
        assert_eq!(one[0].series_requests.len(), 60);
        assert_eq!(one[0].series_requests[59], 1);

        // Hours: a day from half past an hour has 25 points of an hour,
        // from that hour's start; a week 56 of three hours; 30 days 60 of 12.
        let since = 10 * HOUR_MS + 30 * MINUTE_MS;
        let until = since + 24 * HOUR_MS;
        let day = Points::over(since, until, true);
        assert_eq!(
            day,
            Points {
                origin: 10 * HOUR_MS,
                step: HOUR_MS
            }
        );
        assert_eq!(day.count(until), 25);
        assert_eq!(step(0, 7 * 24 * HOUR_MS, true), 3 * HOUR_MS);
        assert_eq!(
            Points::over(0, 7 * 24 * HOUR_MS, true).count(7 * 24 * HOUR_MS),
            56
        );
        assert_eq!(step(0, 30 * 24 * HOUR_MS, true), 12 * HOUR_MS);
        // An hour row and the minutes of the window's ragged ends each fall
        // in the point of the hour they start in.
        let rows = vec![
            minute(since, "web-0", "/", &[1_000; 2], 0),
            minute(11 * HOUR_MS, "web-0", "/", &[1_000; 60], 0),
            minute(until - MINUTE_MS, "web-0", "/", &[1_000; 3], 0),
        ];
        let one = summarize(&rows, By::Pod, since, until, day);
        let series = &one[0].series_requests;
        assert_eq!(series.len(), 25);
        assert_eq!((series[0], series[1], series[24]), (2, 60, 3));
        assert_eq!(one[0].requests, 65);
        assert!((one[0].per_second - 65.0 / 86_400.0).abs() < 1e-12);
    }
}
