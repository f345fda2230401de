//! CPU cost of the HTTP collector (socket filter on loopback, ring buffer,
//! request/response pairing, per-minute RED) at about 10,000 requests/s:
//! wrk (Debian's package) against a small axum server on loopback that
//! answers each request after 1 ms, with the collector off and on,
//! alternating, in the same run. CPU is the whole machine's busy time from
//! /proc/stat (the filter runs in softirq, not in the agent's threads), per
//! request. Needs root and wrk.
//!
//! `cargo bench -p sonde --bench http_collector` (SONDE_BENCH_SECONDS per run, default 10)

use std::process::Command;
use std::time::Duration;

use sonde::agent::{Agent, AgentConfig};
use sonde::store::{OpenOptions, Store};

/// Busy and total jiffies of all CPUs.
fn cpu() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/stat").unwrap();
    let v: Vec<u64> = text
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v[3] + v[4];
    (total - idle, total)
}

/// Runs wrk; returns (requests, seconds, busy jiffies).
fn load(port: u16, conns: u32, secs: u64) -> (f64, f64, u64) {
    let (b0, _) = cpu();
    let out = Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{conns}"),
            &format!("-d{secs}s"),
            &format!("http://127.0.0.1:{port}/items/42"),
        ])
        .output()
        .expect("wrk (apt install wrk)");
    let (b1, _) = cpu();
    let text = String::from_utf8_lossy(&out.stdout);
    let requests: f64 = text
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("wrk output: {text}"));
    (requests, secs as f64, b1 - b0)
}

fn main() {
    if !std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
    {
        eprintln!("skipped: the HTTP collector benchmark loads eBPF programs and needs root");
        return;
    }
    if Command::new("wrk").arg("--version").output().is_err() {
        eprintln!("skipped: wrk is not installed (apt install wrk; scripts/setup.sh --for-bench)");
        return;
    }
    let secs: u64 = std::env::var("SONDE_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    rt.spawn(async move {
        let app = axum::Router::new().route(
            "/items/{id}",
            axum::routing::get(|| async {
                tokio::time::sleep(Duration::from_millis(1)).await;
                "ok"
            }),
        );
        axum::serve(listener, app).await.unwrap();
    });
    // Connections for about 10,000 requests/s.
    let (r, s, _) = load(port, 8, 2);
    let per_conn = r / s / 8.0;
    let conns = ((10_000.0 / per_conn).round() as u32).max(1);
    println!("calibration: {per_conn:.0} requests/s per connection -> {conns} connections");

    let dir = tempfile::tempdir().unwrap();
    let store = rt
        .block_on(Store::open_with(
            dir.path().join("bench.db"),
            OpenOptions {
                owner: false,
                ..Default::default()
            },
        ))
        .unwrap();
    let mut off = Vec::new();
    let mut on = Vec::new();
    for round in 0..3 {
        let (r, s, busy) = load(port, conns, secs);
        off.push((r / s, busy as f64 / r));
        let agent = rt
            .block_on(Agent::start(
                AgentConfig {
                    node: Some("bench".into()),
                    collectors: vec!["http".into()],
                    http: sonde::agent::config::HttpConfig {
                        interface: Some("lo".into()),
                        ports: vec![port],
                    },
                    ..Default::default()
                },
                store.clone(),
                None,
            ))
            .unwrap();
        assert!(
            agent
                .status()
                .iter()
                .any(|s| s.collector == "http" && s.available)
        );
        let (r, s, busy) = load(port, conns, secs);
        on.push((r / s, busy as f64 / r));
        std::thread::sleep(Duration::from_millis(1500));
        // Each round's agent counts from zero.
        let st = agent.status();
        let http = st.iter().find(|s| s.collector == "http").unwrap();
        println!(
            "round {round}: off {:.0} req/s {:.3} ms CPU/req | on {:.0} req/s {:.3} ms CPU/req | records {} dropped {}",
            off[round].0,
            off[round].1 * 10.0,
            on[round].0,
            on[round].1 * 10.0,
            http.events,
            http.dropped
        );
        rt.block_on(agent.shutdown());
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let off_cpu = median(&mut off.iter().map(|x| x.1).collect());
    let on_cpu = median(&mut on.iter().map(|x| x.1).collect());
    let off_rate = median(&mut off.iter().map(|x| x.0).collect());
    let on_rate = median(&mut on.iter().map(|x| x.0).collect());
    println!(
        "median: off {off_rate:.0} req/s, on {on_rate:.0} req/s; CPU per request off {:.4} ms, on {:.4} ms (jiffies of 10 ms); overhead {:+.1}%",
        off_cpu * 10.0,
        on_cpu * 10.0,
        (on_cpu - off_cpu) / off_cpu * 100.0
    );
}
