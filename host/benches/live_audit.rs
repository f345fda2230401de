//! The workload audit through the live backend against the fake API server
//! (recorded shapes, 10,000 pods and 2,000 workloads): cold (one-shot lists,
//! as the CLI does) and warm (the daemon's watch cache, second run), with wall
//! time, requests made and peak memory. Each mode runs in its own process;
//! the fake server runs in that process too, so peak RSS includes its objects.
//!
//! `cargo bench -p sonde --bench live_audit` (SONDE_BENCH_PODS, SONDE_BENCH_WORKLOADS).

mod common;

use std::sync::Arc;

use common::peak_rss_kib;
use std::time::Instant;

use sonde::caps::HostServices;
use sonde::kube::{KubeBackend, LiveBackend, LiveOptions};
use sonde::runtime::{ProbeRuntime, RunRequest, RuntimeConfig};
use sonde_fake_apiserver::{ADMIN_TOKEN, FakeApiServer};

async fn child(mode: &str) {
    let server = FakeApiServer::start().await;
    server.generate(
        common::env_or("SONDE_BENCH_WORKLOADS", 2_000),
        common::env_or("SONDE_BENCH_PODS", 10_000),
    );
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = server.kubeconfig(dir.path(), ADMIN_TOKEN);
    let options = LiveOptions {
        kubeconfig: Some(kubeconfig),
        watch_cache: mode == "warm",
        ..Default::default()
    };
    let backend: Arc<dyn KubeBackend> = Arc::new(LiveBackend::connect(options).await.unwrap());
    let services = Arc::new(HostServices {
        kube: Some(backend),
        ..Default::default()
    });
    let runtime = ProbeRuntime::new(RuntimeConfig::default()).unwrap();
    let probe = sonde::builtin::find("workload-audit").unwrap();
    let loaded = runtime
        .load_bytes("builtin:workload-audit", probe.wasm)
        .unwrap();
    let info = runtime
        .describe(&loaded, &Default::default())
        .await
        .unwrap();
    let run = || {
        let req = RunRequest {
            run_id: "bench".into(),
            config: "{}".into(),
            grants: sonde::grants::GrantSet::from_requested(&info.capabilities),
            limits: Default::default(),
            services: services.clone(),
        };
        runtime.run(&loaded, &info, req)
    };
    if mode == "warm" {
        assert!(run().await.succeeded());
        // Let every watch start before counting.
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    let before = server.requests().len();
    let start = Instant::now();
    let out = run().await;
    let elapsed = start.elapsed();
    assert!(out.succeeded(), "{:?}", out.reason);
    let requests = server.requests().len() - before;
    println!(
        "{mode} {:.1} {} {requests} {}",
        elapsed.as_secs_f64() * 1000.0,
        out.findings.len(),
        peak_rss_kib()
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--test" || a == "--list") {
        return;
    }
    if let Some(pos) = args.iter().position(|a| a == "--child") {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        return rt.block_on(child(&args[pos + 1]));
    }
    println!(
        "workload audit through the live backend: {} pods, {} workloads (best of 3, each in its own process)",
        common::env_or("SONDE_BENCH_PODS", 10_000),
        common::env_or("SONDE_BENCH_WORKLOADS", 2_000)
    );
    println!(
        "{:<6} {:>10} {:>9} {:>9} {:>12}",
        "mode", "wall", "findings", "requests", "peak RSS"
    );
    for mode in ["cold", "warm"] {
        let f = common::best_child_run(mode, 3);
        let (ms, findings, requests) = (f[1].parse::<f64>().unwrap(), &f[2], &f[3]);
        let kib: u64 = f[4].parse().unwrap();
        println!(
            "{mode:<6} {ms:>8.1}ms {findings:>9} {requests:>9} {:>8.1} MiB",
            kib as f64 / 1024.0
        );
    }
}
