//! The daemon's memory at rest: `sonde serve` (the release binary) with 20
//! probes scheduled (the 9 built-in probes and 11 uploaded-style component
//! probes), after every probe's start-up run has finished and the process
//! has settled; RSS and peak RSS from /proc. Baselines in the same run: the
//! same daemon with no probe, and with one.
//!
//! `cargo bench -p sonde --bench daemon_idle`

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn status_kib(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn measure(label: &str, probes: &str, expect_runs: usize) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("cluster.yaml"),
        sonde::daemon::demo::SAMPLE_CLUSTER,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("sonde.yaml"),
        format!(
            "listen: 127.0.0.1:0\ncluster: {{snapshot: cluster.yaml}}\nstore: {{path: sonde.db}}\nprobes:{probes}\n"
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sonde"))
        .args(["serve", "-c"])
        .arg(dir.path().join("sonde.yaml"))
        .env("SONDE_LOG", "sonde=info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("dispatch: run finished") {
                let _ = tx.send(());
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(600);
    for _ in 0..expect_runs {
        rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("start-up runs finish");
    }
    std::thread::sleep(Duration::from_secs(5));
    let rss = status_kib(pid, "VmRSS:");
    let hwm = status_kib(pid, "VmHWM:");
    let _ = child.kill();
    let _ = child.wait();
    println!(
        "{label:<40} RSS {:>7.1} MiB   peak {:>7.1} MiB",
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
}

fn main() {
    let builtin = |name: &str| format!("\n  - {{name: {name}, schedule: \"0 0 * * * *\"}}");
    let component = |i: usize| {
        format!(
            "\n  - {{name: trivial-{i}, component: \"{}\", schedule: \"0 0 * * * *\"}}",
            sonde_probes::TEST_TRIVIAL_PATH
        )
    };
    measure("baseline: no probe", " []", 0);
    measure(
        "baseline: one probe (workload-audit)",
        &builtin("workload-audit"),
        1,
    );
    let mut twenty: String = sonde::builtin::names().iter().map(|n| builtin(n)).collect();
    let extra = 20 - sonde::builtin::names().len();
    twenty.extend((0..extra).map(component));
    measure("20 probes scheduled", &twenty, 20);
}
