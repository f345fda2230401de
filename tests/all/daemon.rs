//! The daemon's life: config problems refused at start with what and where,
//! reload (API and SIGHUP) that keeps the old config when the new one is
//! bad, a missed schedule run once after a restart, and kill -9 during
//! runs leaving a database that opens cleanly with no half-written run.

use std::time::{Duration, Instant};

use crate::cli::{sonde, text};
use crate::serve::Served;

fn serve_fails(config: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let text_ = config
        .replace("{dir}", &dir.path().display().to_string())
        .replace("{cluster}", &crate::serve::sample_cluster());
    std::fs::write(dir.path().join("sonde.yaml"), text_).unwrap();
    let out = sonde()
        .args(["serve", "-c"])
        .arg(dir.path().join("sonde.yaml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    text(&out).1
}

#[test]
fn bad_configs_are_refused_at_start_naming_what_and_where() {
    let err = serve_fails(
        "listen: 0.0.0.0:0\ncluster: {snapshot: \"{cluster}\"}\nstore: {path: \"{dir}/s.db\"}\nprobes: []\n",
    );
    assert!(
        err.contains("0.0.0.0:0 is not a loopback address and no auth tokens are configured"),
        "{err}"
    );
    let err = serve_fails(
        "listen: 127.0.0.1:0\ncluster: {snapshot: \"{cluster}\"}\nstore: {path: \"{dir}/s.db\"}\nprobes:\n  - {name: rbac-audit, schedule: \"0 */5 25 * * *\"}\n",
    );
    assert!(
        err.contains("probes[0] (rbac-audit): schedule")
            && err.contains("hours field \"25\" at column 7"),
        "{err}"
    );
    let err = serve_fails(
        "listen: 127.0.0.1:0\ncluster: {snapshot: \"{cluster}\"}\nprobes:\n  - {name: mine, component: /nonexistent/mine.wasm}\n",
    );
    assert!(
        err.contains("probes[0] (mine)") && err.contains("/nonexistent/mine.wasm"),
        "{err}"
    );
    let err = serve_fails("listen: 127.0.0.1:0\nprobes:\n  - name: rbac-audit\n    every: 5m\n");
    assert!(
        err.contains("sonde.yaml") && err.contains("every") && err.contains("line 4"),
        "{err}"
    );
}

const BASE: &str = r#"
listen: 127.0.0.1:0
cluster: {snapshot: "{cluster}"}
store: {path: "{dir}/sonde.db"}
probes:
  - {name: rbac-audit, schedule: "0 0 0 * * *"}
"#;

#[test]
fn reload_applies_a_good_config_and_refuses_a_bad_one() {
    let mut s = Served::start(BASE);
    s.wait_first_runs(&["rbac-audit"]);
    let names = |s: &Served| -> Vec<String> {
        s.json("/api/v1/probes")
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&s), ["rbac-audit"]);

    // A bad config: refused with its problem, the old one stays.
    std::fs::write(
        s.dir.join("sonde.yaml"),
        BASE.replace("{cluster}", &crate::serve::sample_cluster())
            .replace("{dir}", &s.dir.display().to_string())
            + "  - {name: node-audit, schedule: \"61 * * * * *\"}\n",
    )
    .unwrap();
    let r = s.request("POST", "/api/v1/reload", None, None);
    let msg = r.error(400);
    assert!(
        msg.contains("old config stays") && msg.contains("probes[1] (node-audit)"),
        "{msg}"
    );
    assert_eq!(names(&s), ["rbac-audit"]);

    // A good one through the API: the new probe is there.
    let good = BASE
        .replace("{cluster}", &crate::serve::sample_cluster())
        .replace("{dir}", &s.dir.display().to_string())
        + "  - {name: node-audit, schedule: \"0 0 0 * * *\"}\n";
    std::fs::write(s.dir.join("sonde.yaml"), &good).unwrap();
    let r = s.request("POST", "/api/v1/reload", None, None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(names(&s), ["node-audit", "rbac-audit"]);

    // SIGHUP: the same, from the file.
    std::fs::write(s.dir.join("sonde.yaml"), good + "  - {name: pod-audit}\n").unwrap();
    s.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(30);
    while names(&s).len() != 3 {
        assert!(Instant::now() < deadline, "{}", s.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(s.log().contains("config reloaded"), "{}", s.log());
    // SIGTERM: a clean stop.
    s.signal("TERM");
    assert!(s.wait_exit(Duration::from_secs(30)).success());
}

#[test]
fn a_missed_schedule_runs_once_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = r#"
listen: 127.0.0.1:0
cluster: {snapshot: "{cluster}"}
store: {path: "{dir}/sonde.db"}
probes:
  - {name: rbac-audit, schedule: "0 * * * * *"}
  - {name: node-audit, schedule: "0 0 0 1 1 *"}
"#;
    let mut s = Served::start_in(dir.path(), config).unwrap();
    s.wait_first_runs(&["rbac-audit", "node-audit"]);
    s.kill();
    // Pretend both last ran two hours ago: rbac-audit missed 120 minute
    // ticks, node-audit (yearly, on January 1st) missed none.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = sonde::store::Store::open(dir.path().join("sonde.db"))
            .await
            .unwrap();
        let then = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(2);
        store.set_last_tick("rbac-audit", then).await.unwrap();
        store.set_last_tick("node-audit", then).await.unwrap();
        store.close().await;
    });
    let s = Served::start_in(dir.path(), config).unwrap();
    s.wait_runs("the catch-up run", |runs| {
        runs.iter()
            .any(|r| r["trigger"] == "catch-up" && r["status"] == "succeeded")
    });
    std::thread::sleep(Duration::from_millis(500));
    let runs = s.json("/api/v1/runs?limit=1000")["items"]
        .as_array()
        .unwrap()
        .clone();
    let catch_ups: Vec<_> = runs.iter().filter(|r| r["trigger"] == "catch-up").collect();
    assert_eq!(catch_ups.len(), 1, "{runs:#?}");
    assert_eq!(catch_ups[0]["probe"], "rbac-audit");
    let startups = runs.iter().filter(|r| r["trigger"] == "startup").count();
    assert_eq!(startups, 2, "only the first start ran both at start-up");
}

#[test]
fn kill_9_during_runs_loses_no_committed_run_and_leaves_no_half_written_one() {
    let dir = tempfile::tempdir().unwrap();
    // Every second: workload-audit (63 findings) and a probe stuck in a loop.
    let config = r#"
listen: 127.0.0.1:0
cluster: {snapshot: "{cluster}"}
store: {path: "{dir}/sonde.db"}
scheduler: {concurrency: 4}
probes:
  - {name: workload-audit, schedule: "* * * * * *"}
  - {name: rbac-audit, schedule: "* * * * * *"}
  - name: stuck
    component: "{hostile}"
    config: {mode: loop}
    schedule: "* * * * * *"
    limits: {timeout_seconds: 30}
"#;
    let mut committed = 0;
    for round in 0..3 {
        let mut s = Served::start_in(dir.path(), config).unwrap();
        // Let runs happen, then kill at a moment that varies per round.
        s.wait_runs("some finished runs", |runs| {
            runs.iter().filter(|r| r["status"] == "succeeded").count() > committed
        });
        std::thread::sleep(Duration::from_millis(300 + 370 * round));
        let before = s.json("/api/v1/runs?limit=1000")["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["status"] == "succeeded")
            .count();
        assert!(
            s.json("/api/v1/runs?limit=1000")["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["status"] == "running"),
            "the loop keeps a run in flight"
        );
        s.kill();
        committed = before;

        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let store = sonde::store::Store::open(dir.path().join("sonde.db"))
                .await
                .unwrap();
            assert_eq!(store.integrity_check().await.unwrap(), "ok");
            let page = store.runs(None, 1000, None).await.unwrap();
            use sonde::store::RunPhase;
            let succeeded: Vec<_> = page
                .items
                .iter()
                .filter(|r| r.state == RunPhase::Succeeded)
                .collect();
            assert!(succeeded.len() >= before, "a committed run was lost");
            // Opening marked what was in flight as interrupted: nothing is left
            // queued or running, and the stuck probe's run says why.
            assert!(
                page.items
                    .iter()
                    .all(|r| !matches!(r.state, RunPhase::Queued | RunPhase::Running))
            );
            let interrupted: Vec<_> = page
                .items
                .iter()
                .filter(|r| r.state == RunPhase::Interrupted)
                .collect();
            assert!(
                interrupted.iter().any(|r| r.probe == "stuck"),
                "{interrupted:?}"
            );
            assert!(
                interrupted
                    .iter()
                    .all(|r| r.reason.as_deref().unwrap().contains("interrupted"))
            );
            // Every finished run's findings are all there: each succeeded run of
            // workload-audit counts the findings it reported, and the open
            // findings are exactly those of its last successful run.
            for r in &succeeded {
                assert!(r.finished_at.is_some() && r.duration_ms.is_some());
            }
            let last_wa = succeeded
                .iter()
                .find(|r| r.probe == "workload-audit")
                .unwrap();
            let open = store
                .count_findings(&sonde::store::FindingFilter {
                    probe: Some("workload-audit".into()),
                    ..Default::default()
                })
                .await
                .unwrap();
            assert_eq!(open as i64, last_wa.findings_count);
            let all = store
                .findings(
                    &sonde::store::FindingFilter {
                        status: sonde::store::FindingStatus::All,
                        ..Default::default()
                    },
                    1000,
                    None,
                )
                .await
                .unwrap();
            for f in &all.items {
                let run = store.run(&f.last_run).await.unwrap();
                if let Some(run) = run {
                    assert_eq!(
                        run.state,
                        RunPhase::Succeeded,
                        "finding {} from an unfinished run",
                        f.id
                    );
                }
            }
            store.close().await;
        });
    }
}
