//! The web UI in a real browser: Debian's chromium driven by playwright-core
//! (tests/e2e/ui.mjs) against `sonde serve` on loopback with the built-in
//! probes and a probe whose findings are XSS attempts. The script opens the
//! dashboard (and screenshots it), filters findings, runs a probe now and
//! watches the run appear live, downloads the CSV export, and checks the
//! XSS messages render as literal text with no dialog.

use std::path::PathBuf;
use std::process::Command;

use crate::serve::Served;

#[test]
fn the_dashboard_findings_run_now_export_and_xss_in_chromium() {
    let e2e = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/e2e"));
    assert!(
        e2e.join("node_modules/playwright-core").exists(),
        "tests/e2e/node_modules is missing: run scripts/setup.sh --for-tests (npm ci --prefix tests/e2e)"
    );
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        PathBuf::from(&chromium).exists(),
        "{chromium} is missing: run scripts/setup.sh --for-tests (Debian's chromium)"
    );
    let mut config = String::from(
        "listen: 127.0.0.1:0\ncluster: {snapshot: \"{cluster}\"}\ncluster_name: \"<b>e2e</b>\"\nstore: {path: \"{dir}/sonde.db\"}\nprobes:\n",
    );
    for name in sonde::builtin::names() {
        config.push_str(&format!(
            "  - {{name: {name}, schedule: \"0 0 * * * *\"}}\n"
        ));
    }
    config.push_str(
        "  - name: hostile\n    component: \"{hostile}\"\n    config: {mode: xss}\n    schedule: \"0 0 * * * *\"\n",
    );
    let s = Served::start(&config);
    let mut names: Vec<&str> = sonde::builtin::names();
    names.push("hostile");
    s.wait_first_runs(&names);

    let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("web-ui");
    std::fs::create_dir_all(&out_dir).unwrap();
    let screenshot = out_dir.join("dashboard.png");
    let _ = std::fs::remove_file(&screenshot);
    let out = Command::new("node")
        .arg(e2e.join("ui.mjs"))
        .env("SONDE_URL", &s.url)
        .env("SONDE_SCREENSHOT", &screenshot)
        .env("SONDE_DOWNLOADS", &out_dir)
        .env("CHROMIUM", &chromium)
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "the browser test failed ({}):\n{stdout}\n{stderr}\ndaemon log:\n{}",
        out.status,
        s.log()
    );
    let png = std::fs::read(&screenshot).expect("the dashboard screenshot");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    println!("dashboard screenshot: {}", screenshot.display());
}
