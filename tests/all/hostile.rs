//! Hostile probes are contained: each misbehaviour ends as a failed run with
//! a clear reason, and the next run in the same runtime goes on normally.

use serde_json::json;
use sonde::caps::HostServices;
use sonde::runtime::{FailureReason, RunLimits, RunStatus};
use sonde_probes::TEST_HOSTILE_PATH as HOSTILE;

use crate::run;

fn limits() -> RunLimits {
    RunLimits {
        timeout_ms: 1500,
        memory_bytes: 256 << 20,
        ..Default::default()
    }
}

async fn hostile(mode: &str) -> sonde::runtime::RunOutcome {
    run(
        HOSTILE,
        json!({ "mode": mode }),
        None,
        limits(),
        Default::default(),
    )
    .await
}

/// After every hostile run, a normal run of the same component succeeds.
async fn next_run_is_fine() {
    let ok = hostile("ok").await;
    assert_eq!(ok.status, RunStatus::Succeeded, "{:?}", ok.reason);
    assert_eq!(ok.findings.len(), 1);
}

#[tokio::test]
async fn endless_loop_times_out() {
    let out = hostile("loop").await;
    assert_eq!(out.reason, Some(FailureReason::Timeout { limit_ms: 1500 }));
    assert!(
        out.duration.as_millis() < 4000,
        "stopped promptly: {:?}",
        out.duration
    );
    next_run_is_fine().await;
}

#[tokio::test]
async fn four_gib_allocation_hits_the_memory_cap() {
    let out = hostile("alloc").await;
    match out.reason {
        Some(FailureReason::MemoryLimit { requested, limit }) => {
            assert_eq!(limit, 256 << 20);
            assert!(requested > limit);
        }
        other => panic!("expected a memory limit failure, got {other:?}"),
    }
    next_run_is_fine().await;
}

#[tokio::test]
async fn deep_recursion_overflows_the_stack() {
    let out = hostile("recurse").await;
    assert_eq!(out.reason, Some(FailureReason::StackOverflow));
    next_run_is_fine().await;
}

#[tokio::test]
async fn hundred_megabytes_of_findings_hit_the_output_cap() {
    let limits = RunLimits {
        memory_bytes: 1 << 30,
        max_output_bytes: 16 << 20,
        timeout_ms: 20_000,
        ..limits()
    };
    let out = run(
        HOSTILE,
        json!({"mode": "findings"}),
        None,
        limits,
        Default::default(),
    )
    .await;
    match &out.reason {
        Some(FailureReason::OutputLimit { what }) => {
            assert!(what.contains("bytes of findings"), "{what}")
        }
        other => panic!("expected an output limit failure, got {other:?}"),
    }
    assert!(
        out.findings.is_empty(),
        "nothing of a failed run is kept as findings"
    );
    next_run_is_fine().await;
}

#[tokio::test]
async fn flood_of_log_lines_is_stopped() {
    let out = hostile("logs").await;
    assert_eq!(
        out.reason,
        Some(FailureReason::OutputLimit {
            what: "more than 10000 log lines".into()
        })
    );
    assert_eq!(
        out.logs.iter().filter(|l| l.source == "probe").count(),
        10_000
    );
    next_run_is_fine().await;
}

#[tokio::test]
async fn flood_of_stdout_is_stopped() {
    // The output cap, not the clock, must stop it: a deadline far beyond what
    // the flood needs, so a loaded machine cannot turn it into a timeout.
    let limits = RunLimits {
        timeout_ms: 30_000,
        ..limits()
    };
    let out = run(
        HOSTILE,
        json!({ "mode": "stdout" }),
        None,
        limits,
        Default::default(),
    )
    .await;
    match &out.reason {
        Some(FailureReason::OutputLimit { what }) => assert!(what.contains("stdout"), "{what}"),
        other => panic!("expected an output limit failure, got {other:?}"),
    }
    next_run_is_fine().await;
}

#[tokio::test]
async fn panic_is_reported_with_its_message() {
    let out = hostile("panic").await;
    match &out.reason {
        Some(FailureReason::Panic { message }) => {
            assert!(
                message.starts_with("hostile probe gave up: 42"),
                "{message}"
            )
        }
        other => panic!("expected a panic failure, got {other:?}"),
    }
    next_run_is_fine().await;
}

#[tokio::test]
async fn calls_outside_the_grant_are_denied_and_recorded() {
    let services = crate::snapshot_services(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: db-credentials, namespace: shop}\n",
    );
    let out = run(
        HOSTILE,
        json!({"mode": "forbidden"}),
        None,
        limits(),
        services,
    )
    .await;
    assert_eq!(out.status, RunStatus::Succeeded, "{:?}", out.reason);
    let seen: Vec<&str> = out.findings.iter().map(|f| f.message.as_str()).collect();
    for (call, what) in [
        (
            "kube get secret",
            "get Secret db-credentials in namespace shop",
        ),
        ("kube delete pod", "delete Pod web in namespace shop"),
        ("dns", "resolve example.com"),
        ("http", "GET 169.254.169.254:80"),
        ("etcd", "get /registry/secrets/shop/db-credentials"),
    ] {
        assert!(
            seen.iter()
                .any(|m| m.starts_with(call) && m.contains("Denied") && m.contains(what)),
            "{call}: {seen:?}"
        );
    }
    let denied: Vec<&str> = out.denials.iter().map(|d| d.capability.as_str()).collect();
    assert_eq!(denied, vec!["kube", "kube", "dns", "http", "etcd"]);
}

#[tokio::test]
async fn probe_errors_become_failed_runs() {
    let out = hostile("no-such-mode").await;
    match out.reason {
        Some(FailureReason::ProbeError { error }) => assert!(error.text().contains("unknown mode")),
        other => panic!("{other:?}"),
    }
    let bad_config = run(
        HOSTILE,
        json!({"nomode": 1}),
        None,
        limits(),
        HostServices::default().into(),
    )
    .await;
    match bad_config.reason {
        Some(FailureReason::ProbeError { error }) => {
            assert!(
                error
                    .text()
                    .starts_with("invalid input: config: missing field `mode`"),
                "{}",
                error.text()
            )
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn many_runs_in_parallel_do_not_interfere() {
    let modes = ["ok", "loop", "ok", "panic", "ok", "alloc", "ok", "logs"];
    let runs = modes.iter().map(|m| hostile(m));
    let outcomes = futures_join(runs).await;
    for (mode, out) in modes.iter().zip(outcomes) {
        assert_eq!(out.succeeded(), *mode == "ok", "{mode}: {:?}", out.reason);
    }
}

async fn futures_join<F>(futs: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futs.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("task completes"));
    }
    out
}
