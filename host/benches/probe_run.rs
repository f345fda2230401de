//! Instantiate + run of a trivial Rust probe, pooling allocator vs on-demand,
//! side by side in one run. Prints median, p99 and mean per allocator.
//!
//! `cargo bench -p sonde --bench probe_run` (SONDE_BENCH_ITERS to change the count).

use std::sync::Arc;
use std::time::{Duration, Instant};

use sonde::caps::HostServices;
use sonde::grants::GrantSet;
use sonde::runtime::{Allocator, ProbeRuntime, RunRequest, RuntimeConfig};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn measure(allocator: Allocator, iters: usize, rt: &tokio::runtime::Runtime) -> Vec<Duration> {
    let runtime = ProbeRuntime::new(RuntimeConfig {
        allocator,
        ..Default::default()
    })
    .unwrap();
    let probe = runtime
        .load_file(sonde_probes::TEST_TRIVIAL_PATH.as_ref())
        .unwrap();
    let info = rt
        .block_on(runtime.describe(&probe, &Default::default()))
        .unwrap();
    let services = Arc::new(HostServices::default());
    let request = || RunRequest {
        run_id: "bench".into(),
        config: "{}".into(),
        grants: GrantSet::default(),
        limits: Default::default(),
        services: services.clone(),
    };
    rt.block_on(async {
        for _ in 0..iters / 10 {
            assert!(runtime.run(&probe, &info, request()).await.succeeded());
        }
        let mut samples = Vec::with_capacity(iters);
        for _ in 0..iters {
            let req = request();
            let start = Instant::now();
            let out = runtime.run(&probe, &info, req).await;
            samples.push(start.elapsed());
            assert!(out.succeeded());
        }
        samples.sort();
        samples
    })
}

fn main() {
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return; // `cargo test --benches` runs bench binaries with --test: nothing to check here.
    }
    let iters: usize = std::env::var("SONDE_BENCH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    println!("instantiate + run of the trivial probe, {iters} runs each");
    println!(
        "{:<10} {:>10} {:>10} {:>10}",
        "allocator", "median", "p99", "mean"
    );
    for (name, allocator) in [
        ("pooling", Allocator::Pooling),
        ("on-demand", Allocator::OnDemand),
    ] {
        let s = measure(allocator, iters, &rt);
        let mean = s.iter().sum::<Duration>() / s.len() as u32;
        println!(
            "{name:<10} {:>8.1}us {:>8.1}us {:>8.1}us",
            percentile(&s, 0.5).as_secs_f64() * 1e6,
            percentile(&s, 0.99).as_secs_f64() * 1e6,
            mean.as_secs_f64() * 1e6
        );
    }
}
