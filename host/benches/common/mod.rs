//! What the bench binaries share: peak memory of this process, env knobs,
//! generated cluster objects and findings. Each bench uses some of it.
#![allow(dead_code)]

pub mod generate;

/// Peak resident set size of this process (VmHWM), in KiB.
pub fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Whether this process runs as root (the collector benches load eBPF
/// programs).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
}

/// A store in `dir` opened as an agent opens one: not the owner, so it
/// never marks runs interrupted.
pub async fn agent_store(dir: &std::path::Path) -> sonde::store::Store {
    sonde::store::Store::open_with(
        dir.join("bench.db"),
        sonde::store::OpenOptions {
            owner: false,
            ..Default::default()
        },
    )
    .await
    .expect("store")
}

/// The median of `v` (the upper one of an even count; NaN when empty).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    v[v.len() / 2]
}

/// A numeric environment variable, or `default`.
pub fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs this bench binary as `--child MODE` `runs` times and returns the
/// whitespace-separated fields its stdout line printed, for the run whose
/// second field (wall time in ms) was lowest.
pub fn best_child_run(mode: &str, runs: usize) -> Vec<String> {
    let exe = std::env::args().next().expect("argv[0]");
    let mut best: Option<(f64, Vec<String>)> = None;
    for _ in 0..runs {
        let out = std::process::Command::new(&exe)
            .args(["--child", mode])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let fields: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(str::to_string)
            .collect();
        let ms: f64 = fields[1].parse().unwrap();
        if best.as_ref().is_none_or(|(b, _)| ms < *b) {
            best = Some((ms, fields));
        }
    }
    best.expect("at least one run").1
}

/// A daemon over a one-namespace snapshot in `dir` (its store there too),
/// `auth` (YAML, e.g. `{tokens: [...]}`) and no probes, its router served
/// on a loopback port: the daemon, its base URL and the server's task.
pub async fn daemon_on_loopback(
    dir: &std::path::Path,
    auth: &str,
) -> (
    sonde::daemon::Daemon,
    String,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    std::fs::write(
        dir.join("cluster.yaml"),
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: team-0}\n",
    )
    .unwrap();
    let config: sonde::daemon::config::DaemonConfig = serde_yaml::from_str(&format!(
        "listen: 127.0.0.1:0\ncluster: {{snapshot: {}}}\nstore: {{path: {}}}\n\
         events: {{record: false}}\nauth: {auth}\nprobes: []\n",
        dir.join("cluster.yaml").display(),
        dir.join("sonde.db").display()
    ))
    .unwrap();
    let daemon = sonde::daemon::Daemon::start(sonde::daemon::ConfigSource::Fixed(
        Box::new(config),
        dir.into(),
    ))
    .await
    .expect("daemon");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = sonde::daemon::api::router(daemon.clone());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    (daemon, url, server)
}
