//! The workload audit over a generated snapshot of 10,000 workloads: the
//! built-in probe in the sandbox (WebAssembly) against the very same rule
//! code compiled natively (the baseline), in the same run. Each mode runs in
//! a child process of its own so its peak memory (VmHWM) is its own.
//!
//! `cargo bench -p sonde --bench workload_audit` (SONDE_BENCH_WORKLOADS to change the count).

mod common;

use std::sync::Arc;

use common::generate::workload;
use common::peak_rss_kib;
use std::time::{Duration, Instant};

use sonde::caps::HostServices;
use sonde::kube::{KindRef, KubeBackend, ListQuery, SnapshotBackend};
use sonde::runtime::{ProbeRuntime, RunRequest, RuntimeConfig};

/// Runs one mode in this process; prints `mode wall_ms findings peak_kib`.
fn child(mode: &str, count: usize) {
    let snap = SnapshotBackend::from_values("generated", (0..count).map(workload).collect());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (elapsed, findings) = match mode {
        "native" => rt.block_on(async {
            let start = Instant::now();
            let mut lists = Vec::new();
            for kind in workload_audit::KINDS {
                let page = snap
                    .list(
                        &KindRef::new(kind.api_version, kind.kind),
                        &ListQuery::default(),
                    )
                    .await
                    .unwrap();
                lists.push((
                    kind,
                    page.items
                        .iter()
                        .map(|o| o.json.clone())
                        .collect::<Vec<_>>(),
                ));
            }
            let audit = workload_audit::audit(&lists);
            (start.elapsed(), audit.findings.len())
        }),
        "wasm" => rt.block_on(async {
            let runtime = ProbeRuntime::new(RuntimeConfig::default()).unwrap();
            let probe = sonde::builtin::find("workload-audit").unwrap();
            let loaded = runtime
                .load_bytes("builtin:workload-audit", probe.wasm)
                .unwrap();
            let info = runtime
                .describe(&loaded, &Default::default())
                .await
                .unwrap();
            let services = Arc::new(HostServices {
                kube: Some(Arc::new(snap)),
                ..Default::default()
            });
            let req = RunRequest {
                run_id: "bench".into(),
                config: "{}".into(),
                grants: sonde::grants::GrantSet::from_requested(&info.capabilities),
                limits: Default::default(),
                services,
            };
            let start = Instant::now();
            let out = runtime.run(&loaded, &info, req).await;
            assert!(out.succeeded(), "{:?}", out.reason);
            (start.elapsed(), out.findings.len())
        }),
        "data" => (Duration::ZERO, 0),
        other => panic!("unknown mode {other}"),
    };
    println!(
        "{mode} {:.1} {findings} {}",
        elapsed.as_secs_f64() * 1000.0,
        peak_rss_kib()
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--test" || a == "--list") {
        return;
    }
    let count: usize = common::env_or("SONDE_BENCH_WORKLOADS", 10_000);
    if let Some(pos) = args.iter().position(|a| a == "--child") {
        return child(&args[pos + 1], count);
    }
    println!(
        "workload audit over {count} generated workloads (best of 3 runs, each in its own process)"
    );
    println!(
        "{:<8} {:>10} {:>10} {:>14}",
        "mode", "wall", "findings", "peak RSS"
    );
    let mut best = std::collections::HashMap::new();
    for mode in ["data", "native", "wasm"] {
        let f = common::best_child_run(mode, 3);
        let (ms, findings) = (f[1].parse::<f64>().unwrap(), &f[2]);
        let kib: u64 = f[3].parse().unwrap();
        println!(
            "{mode:<8} {ms:>8.1}ms {findings:>10} {:>10.1} MiB",
            kib as f64 / 1024.0
        );
        best.insert(mode, ms);
    }
    println!(
        "wasm/native wall-time ratio: {:.2}",
        best["wasm"] / best["native"]
    );
}
