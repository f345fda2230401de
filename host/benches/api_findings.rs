//! The findings page of the JSON API under load: 1,000,000 findings in the
//! store (a real SQLite file), the daemon's router on loopback, 50 clients
//! each sending requests back to back over keep-alive connections; p50,
//! p90, p99 and max latency and the request rate per query.
//!
//! Each query is measured twice: the same URL from every client (served
//! from the daemon's page cache after the first request, until the next run
//! finishes) and with a random keyset cursor per request (read from the
//! store every time).
//!
//! The baseline in the same run is `/healthz` at the same concurrency (the
//! HTTP stack and the load generator, no store), so the figures above it
//! are what the store and the JSON cost.
//!
//! `cargo bench -p sonde --bench api_findings` (SONDE_BENCH_FINDINGS,
//! SONDE_BENCH_CLIENTS, SONDE_BENCH_SECONDS per query to change the load).

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::env_or;
use common::generate::finding;
use sonde::daemon::config::DaemonConfig;
use sonde::daemon::{ConfigSource, Daemon};
use sonde::runtime::{RunOutcome, RunStatus};
use sonde::store::Store;

async fn fill(path: &Path, n: usize) {
    let store = Store::open(path).await.expect("store");
    // Ten probes of n/10 findings each, one run apiece.
    let per = n / 10;
    let started = Instant::now();
    for p in 0..10 {
        let outcome = RunOutcome {
            probe: format!("bench-{p}"),
            run_id: format!("fill-{p}"),
            status: RunStatus::Succeeded,
            reason: None,
            findings: (p * per..(p + 1) * per).map(finding).collect(),
            logs: Vec::new(),
            denials: Vec::new(),
            duration: Duration::from_millis(1),
        };
        store.record_run_finished(&outcome).await.expect("ingest");
    }
    eprintln!(
        "filled {} findings in {:.1} s",
        per * 10,
        started.elapsed().as_secs_f64()
    );
    store.close().await;
}

struct Stats {
    latencies: Vec<Duration>,
    elapsed: Duration,
    errors: usize,
}

/// A request path: fixed, or a new one for each request.
type PathFn = Arc<dyn Fn() -> String + Send + Sync>;

fn load(base: &str, path: PathFn, clients: usize, seconds: u64) -> Stats {
    let base = base.to_string();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            let (base, path) = (base.clone(), path.clone());
            std::thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .build()
                    .into();
                let mut lat = Vec::new();
                let mut errors = 0;
                while Instant::now() < deadline {
                    let url = format!("{base}{}", path());
                    let t = Instant::now();
                    match agent.get(&url).call() {
                        Ok(mut r) if r.status() == 200 => {
                            let _ = r.body_mut().read_to_vec();
                            lat.push(t.elapsed());
                        }
                        _ => errors += 1,
                    }
                }
                (lat, errors)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut errors = 0;
    for h in handles {
        let (l, e) = h.join().expect("client");
        latencies.extend(l);
        errors += e;
    }
    latencies.sort();
    Stats {
        latencies,
        elapsed: started.elapsed(),
        errors,
    }
}

fn pct(l: &[Duration], p: f64) -> f64 {
    if l.is_empty() {
        return f64::NAN;
    }
    let i = ((l.len() as f64 - 1.0) * p).round() as usize;
    l[i].as_secs_f64() * 1000.0
}

fn main() {
    let n = env_or("SONDE_BENCH_FINDINGS", 1_000_000);
    let clients = env_or("SONDE_BENCH_CLIENTS", 50);
    let seconds = env_or("SONDE_BENCH_SECONDS", 10) as u64;
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let db = dir.path().join("sonde.db");
    rt.block_on(fill(&db, n));
    std::fs::write(
        dir.path().join("cluster.yaml"),
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: team-0}\n",
    )
    .unwrap();
    let config: DaemonConfig = serde_yaml::from_str(&format!(
        "listen: 127.0.0.1:0\ncluster: {{snapshot: {}}}\nstore: {{path: {}}}\nprobes: []\n",
        dir.path().join("cluster.yaml").display(),
        db.display()
    ))
    .unwrap();
    let base = rt.block_on(async {
        let daemon = Daemon::start(ConfigSource::Fixed(Box::new(config), dir.path().into()))
            .await
            .expect("daemon");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = sonde::daemon::api::router(daemon);
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    });
    let base = Arc::new(base);

    // A cursor 100 pages in, for the deep-page query.
    let mut cursor = String::new();
    let agent: ureq::Agent = ureq::Agent::config_builder().build().into();
    for _ in 0..100 {
        let page: serde_json::Value = agent
            .get(format!("{base}/api/v1/findings?limit=50&cursor={cursor}"))
            .call()
            .unwrap()
            .body_mut()
            .read_json()
            .unwrap();
        cursor = page["next"].as_str().unwrap().to_string();
    }

    println!(
        "{n} findings stored, {clients} clients, {seconds} s per query\n\
         {:<58} {:>9} {:>8} {:>8} {:>8} {:>8} {:>6}",
        "query", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "errors"
    );
    // Each query twice: the same URL from every client (after the first
    // request the page comes from the daemon's page cache, as for users
    // who look at the same view between two runs), and a new position for
    // every request (a random keyset cursor: the store is read each time).
    let fixed = |p: &str| -> PathFn {
        let p = p.to_string();
        Arc::new(move || p.clone())
    };
    let n_ids = n as u64;
    let random_cursor = move |p: &'static str, rank: u8| -> PathFn {
        Arc::new(move || format!("{p}&cursor={rank}.{}", fastrand::u64(1..=n_ids)))
    };
    let queries: Vec<(String, PathFn)> = vec![
        ("baseline: /healthz".into(), fixed("/healthz")),
        ("first page".into(), fixed("/api/v1/findings?limit=50")),
        (
            "severity=high, namespace=team-7".into(),
            fixed("/api/v1/findings?limit=50&severity=high&namespace=team-7"),
        ),
        (
            "probe=bench-3, rule=RunAsRoot".into(),
            fixed("/api/v1/findings?limit=50&probe=bench-3&rule=RunAsRoot"),
        ),
        (
            "page 101 (keyset cursor)".into(),
            fixed(&format!("/api/v1/findings?limit=50&cursor={cursor}")),
        ),
        (
            "text search q=service-4242".into(),
            fixed("/api/v1/findings?limit=50&q=service-4242"),
        ),
        (
            "uncached: any page (random cursor)".into(),
            random_cursor("/api/v1/findings?limit=50", 3),
        ),
        (
            "uncached: severity=high, namespace=team-7 (random cursor)".into(),
            random_cursor(
                "/api/v1/findings?limit=50&severity=high&namespace=team-7",
                3,
            ),
        ),
        (
            "uncached: probe=bench-3, rule=RunAsRoot (random cursor)".into(),
            random_cursor("/api/v1/findings?limit=50&probe=bench-3&rule=RunAsRoot", 3),
        ),
        (
            "uncached: text search q=service-4242 (random cursor)".into(),
            random_cursor("/api/v1/findings?limit=50&q=service-4242", 4),
        ),
    ];
    for (label, path) in queries {
        let s = load(&base, path, clients, seconds);
        println!(
            "{:<58} {:>9.0} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>6}",
            label,
            s.latencies.len() as f64 / s.elapsed.as_secs_f64(),
            pct(&s.latencies, 0.50),
            pct(&s.latencies, 0.90),
            pct(&s.latencies, 0.99),
            pct(&s.latencies, 1.0),
            s.errors
        );
    }
}
