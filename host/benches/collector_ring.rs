//! Events per second through the collectors' ring buffer and agent with no
//! loss, and where loss starts: TCP events made by connecting to a closed
//! loopback port (each attempt: two state changes, a reset sent and a reset
//! received) at stepped rates; per step, the rate the generator reached, the
//! records the agent delivered, and the records the kernel dropped because
//! the ring buffer was full. The baseline is the same generator with no
//! agent loaded, in the same run. Needs root.
//!
//! `cargo bench -p sonde --bench collector_ring` (SONDE_BENCH_SECONDS per step, default 3)

use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

mod common;

use sonde::agent::{Agent, AgentConfig};

fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Connect attempts at `rate` per second (0: as fast as possible) for `secs`; returns attempts made.
fn generate(port: u16, rate: u64, secs: f64, threads: u64) -> u64 {
    let stop = Arc::new(AtomicBool::new(false));
    let total = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let stop = stop.clone();
            let total = total.clone();
            std::thread::spawn(move || {
                let addr = format!("127.0.0.1:{port}").parse().unwrap();
                let per_thread = rate as f64 / threads as f64;
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    if rate > 0 {
                        let due = start + Duration::from_secs_f64(n as f64 / per_thread);
                        let now = Instant::now();
                        if due > now {
                            std::thread::sleep(due - now);
                        }
                    }
                    let _ = TcpStream::connect_timeout(&addr, Duration::from_millis(100));
                    n += 1;
                }
                total.fetch_add(n, Ordering::Relaxed);
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().unwrap();
    }
    total.load(Ordering::Relaxed)
}

fn counters(agent: &Agent) -> (i64, i64) {
    agent
        .status()
        .into_iter()
        .find(|s| s.collector == "tcp")
        .map(|s| (s.events, s.dropped))
        .unwrap_or_default()
}

fn main() {
    if !common::is_root() {
        eprintln!("skipped: the collector benchmark loads eBPF programs and needs root");
        return;
    }
    let secs: f64 = std::env::var("SONDE_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let port = closed_port();
    let threads = 2;
    // Baseline: the generator alone.
    let baseline = generate(port, 0, secs, threads) as f64 / secs;
    println!("baseline (no agent): {baseline:.0} connect attempts/s, unlimited");

    let dir = tempfile::tempdir().unwrap();
    let (agent, _store) = rt.block_on(async {
        let store = common::agent_store(dir.path()).await;
        let config = AgentConfig {
            node: Some("bench".into()),
            collectors: vec!["tcp".into()],
            flush_interval_ms: 200,
            ..Default::default()
        };
        let agent = Agent::start(config, sonde::agent::Sink::Store(store.clone()), None)
            .await
            .unwrap();
        (agent, store)
    });
    assert!(
        agent
            .status()
            .iter()
            .any(|s| s.collector == "tcp" && s.available),
        "the tcp collector must run: {:?}",
        agent.status()
    );
    println!(
        "{:>10} {:>12} {:>14} {:>12} {:>10} {:>8}",
        "target/s", "attempts/s", "records/s", "records", "dropped", "loss"
    );
    for rate in [2_500u64, 5_000, 10_000, 20_000, 40_000, 0] {
        let (e0, d0) = counters(&agent);
        let attempts = generate(port, rate, secs, threads);
        // Let the agent drain and flush its counters.
        std::thread::sleep(Duration::from_millis(1500));
        let (e1, d1) = counters(&agent);
        let (records, dropped) = (e1 - e0, d1 - d0);
        let loss = if records + dropped > 0 {
            dropped as f64 / (records + dropped) as f64 * 100.0
        } else {
            0.0
        };
        println!(
            "{:>10} {:>12.0} {:>14.0} {:>12} {:>10} {:>7.2}%",
            if rate == 0 {
                "max".to_string()
            } else {
                rate.to_string()
            },
            attempts as f64 / secs,
            records as f64 / secs,
            records,
            dropped,
            loss
        );
    }
    rt.block_on(agent.shutdown());
}
