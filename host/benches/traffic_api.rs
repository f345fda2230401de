//! The Traffic page's API (`GET /api/v1/traffic`: the http collector's
//! minutes added up per serving pod or route, with percentiles from the
//! merged histograms and a series per service) over a day of HTTP minutes
//! as node agents write them, against the baseline in the same run: the
//! first page of the same window's raw rows (`GET
//! /api/v1/collectors/http/rows?limit=1000`), which reads and sends rows
//! without adding them up. `SONDE_BENCH_SERVERS` servers (default 200,
//! on 10 nodes), 3 routes each, a row per server, route and minute for
//! the last 24 hours (864,000 rows at the default), each with 5 filled
//! histogram buckets; the daemon (router, a real SQLite file) runs in this
//! process on loopback. Each query `SONDE_BENCH_REPEATS` times (default
//! 10): median and worst latency, after the hours are added up
//! (`Store::roll_up_http_hours`, timed; the daemon's own loop adds up
//! those that are over while the minutes are written). Then the read under
//! the 24-hour answer against its baseline, both on the store: the window
//! as hours where added up and minutes for the rest
//! (`Store::http_red_by_hours`), and as minutes only (`http_red_newest`,
//! what the API read before the hours, cut at 200,000 rows).
//!
//! `cargo bench -p sonde --bench traffic_api`

mod common;

use std::time::Instant;

use common::{env_or, median};
use sonde::store::{CollectorBatch, HttpRedRow};

const ROUTES: [(&str, &str); 3] = [("GET", "/items/:id"), ("POST", "/cart"), ("GET", "/")];

fn minute(minute_ms: i64, server: usize, route: usize) -> HttpRedRow {
    let buckets_len = sonde::collectors::duration_buckets_us().len() + 1;
    let mut buckets = vec![0u64; buckets_len];
    let requests = 20 + (server * 7 + route * 3) % 50;
    for (i, b) in [40usize, 45, 50, 60, 80].iter().enumerate() {
        buckets[*b] = (requests / 5 + i % 2) as u64;
    }
    let requests: u64 = buckets.iter().sum();
    let (method, path) = ROUTES[route];
    HttpRedRow {
        minute_ms,
        node: format!("node-{}", server % 10),
        namespace: format!("team-{}", server % 20),
        pod: format!("web-{server}"),
        server: format!("10.0.{}.{}:8080", server / 250, server % 250),
        method: method.into(),
        route: path.into(),
        requests: requests as i64,
        errors: server.is_multiple_of(13) as i64,
        client_errors: 0,
        duration_sum_us: requests as i64 * 4_000,
        duration_max_us: 90_000,
        buckets,
    }
}

/// Latency (ms), rows or services sent, whether truncated, and the hours
/// the figures cover when the read was cut (`complete_since`).
fn get(url: &str, now_ms: i64) -> (f64, usize, bool, Option<f64>) {
    let started = Instant::now();
    let mut answer = ureq::get(url).call().expect("answer");
    let body = answer.body_mut().read_to_string().expect("body");
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    let n = v["services"]
        .as_array()
        .or_else(|| v["rows"].as_array())
        .map_or(0, Vec::len);
    let covered = v["complete_since"]
        .as_i64()
        .map(|since| (now_ms - since) as f64 / 3_600_000.0);
    (ms, n, v["truncated"] == true, covered)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let servers = env_or("SONDE_BENCH_SERVERS", 200);
    let repeats = env_or("SONDE_BENCH_REPEATS", 10);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (daemon, url, _server) = rt.block_on(common::daemon_on_loopback(dir.path(), "{}"));
    let now = jiff::Timestamp::now().as_millisecond();
    let last = now - now.rem_euclid(60_000);
    let started = Instant::now();
    let mut rows = 0usize;
    rt.block_on(async {
        for m in 0..1440i64 {
            let minute_ms = last - m * 60_000;
            let mut batch = CollectorBatch::default();
            for s in 0..servers {
                for r in 0..ROUTES.len() {
                    batch.http.push(minute(minute_ms, s, r));
                }
            }
            rows += batch.http.len();
            daemon
                .store()
                .write_agent_batch(&batch, None)
                .await
                .expect("write");
        }
    });
    println!(
        "traffic_api: {rows} HTTP minutes ({servers} servers x {} routes x 1440 minutes) written in {:.1} s",
        ROUTES.len(),
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    let hours = rt.block_on(async {
        let mut hours = 0;
        loop {
            let n = daemon
                .store()
                .roll_up_http_hours(24)
                .await
                .expect("roll up");
            hours += n;
            if n < 24 {
                break hours;
            }
        }
    });
    println!(
        "traffic_api: {hours} hours added up in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    measure(&url, now, repeats);
    let since = now - 24 * 3_600_000;
    let cap = sonde::collectors::query::SCAN_CAP;
    for (what, hourly) in [
        ("store read, 24 h, hours + minutes", true),
        ("baseline: store read, 24 h, minutes", false),
    ] {
        let mut times = Vec::new();
        let mut last = (0, None);
        for _ in 0..=repeats {
            let started = Instant::now();
            let (rows, complete_since) = rt.block_on(async {
                let store = daemon.store();
                if hourly {
                    let read = store
                        .http_red_by_hours(since, now, cap)
                        .await
                        .expect("read");
                    (read.rows.len(), read.complete_since)
                } else {
                    let rows = store.http_red_newest(since, now, cap).await.expect("read");
                    let cut = (rows.len() >= cap as usize)
                        .then(|| rows.last().map(|r| r.minute_ms + 60_000))
                        .flatten();
                    (rows.len(), cut)
                }
            });
            times.push(started.elapsed().as_secs_f64() * 1000.0);
            last = (rows, complete_since);
        }
        times.remove(0); // the first warms the page cache
        println!(
            "traffic_api: {what:<38} median {:>8.1} ms ({} rows, {})",
            median(times),
            last.0,
            last.1.map_or("the whole window".to_string(), |c| format!(
                "the last {:.1} h",
                (now - c) as f64 / 3_600_000.0
            ))
        );
    }
    println!(
        "traffic_api: peak RSS {} MiB",
        common::peak_rss_kib() / 1024
    );
}

/// Each query `repeats` times.
fn measure(url: &str, now: i64, repeats: usize) {
    for (what, path) in [
        ("traffic, 1 h, per pod", "/api/v1/traffic?minutes=60"),
        (
            "traffic, 1 h, per route",
            "/api/v1/traffic?minutes=60&by=route",
        ),
        ("traffic, 24 h, per pod", "/api/v1/traffic?minutes=1440"),
        (
            "traffic, 24 h, per route",
            "/api/v1/traffic?minutes=1440&by=route",
        ),
        (
            "baseline: raw rows, 1 h, first 1000",
            "/api/v1/collectors/http/rows?minutes=60&limit=1000",
        ),
        (
            "baseline: raw rows, 24 h, first 1000",
            "/api/v1/collectors/http/rows?minutes=1440&limit=1000",
        ),
    ] {
        let full = format!("{url}{path}");
        let _ = get(&full, now); // warm the page cache
        let mut times = Vec::new();
        let mut last = (0, false, None);
        for _ in 0..repeats {
            let (ms, n, truncated, covered) = get(&full, now);
            times.push(ms);
            last = (n, truncated, covered);
        }
        let worst = times.iter().copied().fold(0.0, f64::max);
        println!(
            "traffic_api: {what:<38} median {:>8.1} ms, worst {:>8.1} ms ({} rows or services{}{})",
            median(times),
            worst,
            last.0,
            if last.1 { ", truncated" } else { "" },
            last.2
                .map(|h| format!(", figures cover the last {h:.1} h"))
                .unwrap_or_default()
        );
    }
}
