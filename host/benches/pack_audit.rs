//! The whole built-in pack (every built-in probe, then exemptions and score)
//! over a generated snapshot of 10,000 workloads, 1,000 nodes, 5,000 RBAC
//! objects and 20,000 events, as `sonde audit --snapshot` runs it. Each mode
//! runs in a child process of its own, so its peak memory (VmHWM) is its own:
//! `data` only builds the snapshot (the memory baseline), `sequential` runs
//! the probes one after another, `concurrent` runs them side by side (what
//! `sonde audit` does).
//!
//! `cargo bench -p sonde --bench pack_audit` (SONDE_BENCH_WORKLOADS, SONDE_BENCH_NODES,
//! SONDE_BENCH_RBAC, SONDE_BENCH_EVENTS to change the counts).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::generate::{event, node, rbac, workload};
use common::{env_or, peak_rss_kib};
use sonde::audit::{self, ProbeSource};
use sonde::caps::HostServices;
use sonde::kube::SnapshotBackend;
use sonde::runtime::{ProbeRuntime, RunLimits, RuntimeConfig};

struct Counts {
    workloads: usize,
    nodes: usize,
    rbac: usize,
    events: usize,
}

fn snapshot(c: &Counts) -> SnapshotBackend {
    let objects = (0..c.workloads)
        .map(workload)
        .chain((0..c.nodes).map(node))
        .chain((0..c.rbac).map(rbac))
        .chain((0..c.events).map(|i| event(i, c.workloads, c.nodes)))
        .collect();
    SnapshotBackend::from_values("generated", objects)
}

/// Runs one mode in this process; prints `mode wall_ms findings peak_kib per-probe...`.
fn child(mode: &str, counts: &Counts) {
    let snap = snapshot(counts);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (elapsed, findings, per_probe) = rt.block_on(async {
        if mode == "data" {
            return (Duration::ZERO, 0, String::new());
        }
        let runtime = ProbeRuntime::new(RuntimeConfig::default()).unwrap();
        let mut prepared = Vec::new();
        for p in sonde::builtin::all() {
            let limits = RunLimits {
                timeout_ms: 600_000,
                ..Default::default()
            };
            prepared.push(
                audit::prepare(
                    &runtime,
                    &ProbeSource::Builtin(p.name),
                    None,
                    "{}".into(),
                    limits,
                )
                .await
                .unwrap(),
            );
        }
        let backend: Arc<dyn sonde::kube::KubeBackend> = Arc::new(snap);
        let services = Arc::new(HostServices {
            kube: Some(backend.clone()),
            ..Default::default()
        });
        let concurrency = match mode {
            "sequential" => 1,
            "concurrent" => audit::default_concurrency(),
            other => panic!("unknown mode {other}"),
        };
        let start = Instant::now();
        let mut report = audit::run_audit_with(
            &runtime,
            services,
            &prepared,
            "generated".into(),
            Vec::new(),
            concurrency,
        )
        .await;
        sonde::posture::assess(
            &mut report,
            &sonde::posture::Exemptions::default(),
            Some(backend.as_ref()),
        )
        .await;
        let elapsed = start.elapsed();
        assert!(
            report.complete(),
            "{:?}",
            report.runs.iter().map(|r| &r.reason).collect::<Vec<_>>()
        );
        let per_probe: Vec<String> = report
            .runs
            .iter()
            .map(|r| {
                format!(
                    "{}={:.0}ms/{}",
                    r.probe,
                    r.duration.as_secs_f64() * 1000.0,
                    r.findings.len()
                )
            })
            .collect();
        (elapsed, report.findings().count(), per_probe.join(" "))
    });
    println!(
        "{mode} {:.1} {findings} {} {per_probe}",
        elapsed.as_secs_f64() * 1000.0,
        peak_rss_kib()
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--test" || a == "--list") {
        return;
    }
    let counts = Counts {
        workloads: env_or("SONDE_BENCH_WORKLOADS", 10_000),
        nodes: env_or("SONDE_BENCH_NODES", 1_000),
        rbac: env_or("SONDE_BENCH_RBAC", 5_000),
        events: env_or("SONDE_BENCH_EVENTS", 20_000),
    };
    if let Some(pos) = args.iter().position(|a| a == "--child") {
        return child(&args[pos + 1], &counts);
    }
    println!(
        "built-in pack over {} workloads, {} nodes, {} RBAC objects, {} events (best of 3, each run in its own process)",
        counts.workloads, counts.nodes, counts.rbac, counts.events
    );
    println!(
        "{:<11} {:>10} {:>10} {:>12}",
        "mode", "wall", "findings", "peak RSS"
    );
    for mode in ["data", "sequential", "concurrent"] {
        let f = common::best_child_run(mode, 3);
        let (ms, findings) = (f[1].parse::<f64>().unwrap(), &f[2]);
        let kib: u64 = f[3].parse().unwrap();
        println!(
            "{mode:<11} {ms:>8.1}ms {findings:>10} {:>8.1} MiB  {}",
            kib as f64 / 1024.0,
            f[4..].join(" ")
        );
    }
}
