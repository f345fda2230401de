//! CPU cost of the HTTP collector (kernel programs that pair requests with
//! responses and sum them per minute; the agent names routes and reads the
//! sums) at about 10,000 requests/s: wrk (Debian's package) against a small
//! axum server on loopback that answers each request after 1 ms, with the
//! collector off and on, alternating, in the same run. The server is a
//! process of its own in a kubelet-shaped cgroup v2 folder
//! (`<bench>/kubepods/burstable/pod<uid>/<container-id>`), as a pod's
//! server is; wrk is outside it, as a client on another node or outside
//! the cluster is. The collector runs in each of its modes in every round:
//! `pods`, the cgroup programs on the bench's `kubepods` folder (what the
//! agent attaches to by default on a node: the kubelet's pods folder), so
//! only the server's sockets run them; `root`, the same programs on the
//! cgroup v2 root, where wrk's sockets run them too (as a client pod on
//! the same node would); `interface`, the socket filter on `lo`. CPU is
//! the whole machine's busy time from /proc/stat (the programs run in
//! softirq and in the sockets' system calls, not in the agent's threads),
//! per request. Needs root, wrk and a cgroup v2 mount.
//!
//! `cargo bench -p sonde --bench http_collector` (SONDE_BENCH_SECONDS per run,
//! default 5; SONDE_BENCH_ROUNDS rounds, default 12; SONDE_BENCH_HTTP_MODES,
//! default `pods,root,interface`; SONDE_BENCH_HTTP_REPORT_MS, the agent's
//! HTTP report interval, default the agent's own). Rounds where the hypervisor stole more
//! than 1% of the CPUs are reported apart.
//!
//! The kernel side's time comes from the kernel's BPF statistics, which
//! time each program run with two clock reads of their own (counted in the
//! figure, absent in production) and leave out the hook's own work around
//! the programs. `SONDE_BENCH_PERF=1` measures it by sampling instead,
//! with the statistics off: `perf record -a -g` (Debian's `linux-perf`)
//! during each run with the collector on, and the CPU time of the samples
//! below the hook (everything below the cgroup hook,
//! `__cgroup_bpf_run_filter_skb`, or below the tap's `packet_rcv`: the
//! programs, their helpers and the hook's own work) per request.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

mod common;

use common::median;

use sonde::agent::{Agent, AgentConfig};

/// Busy jiffies of all CPUs (user, nice, system, irq, softirq) and the
/// time stolen by the hypervisor, which is not this machine's work.
fn cpu() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/stat").unwrap();
    let v: Vec<u64> = text
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    (v[0] + v[1] + v[2] + v[5] + v[6], v[7])
}

/// One wrk run.
#[derive(Clone, Copy)]
struct Sample {
    rate: f64,
    /// Busy CPU per request, in jiffies.
    cpu_per_request: f64,
    /// Jiffies the hypervisor stole, per second of the run.
    steal_per_second: f64,
    requests: f64,
}

/// Runs wrk for `secs` seconds.
fn load(port: u16, conns: u32, secs: u64) -> Sample {
    let (b0, s0) = cpu();
    let out = Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{conns}"),
            &format!("-d{secs}s"),
            &format!("http://127.0.0.1:{port}/items/42"),
        ])
        .output()
        .expect("wrk (apt install wrk)");
    let (b1, s1) = cpu();
    let text = String::from_utf8_lossy(&out.stdout);
    let requests: f64 = text
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("wrk output: {text}"));
    Sample {
        rate: requests / secs as f64,
        cpu_per_request: (b1 - b0) as f64 / requests,
        steal_per_second: (s1 - s0) as f64 / secs as f64,
        requests,
    }
}

/// CPU time (ns on a CPU, from each thread's `schedstat`: jiffies would
/// count the agent's few milliseconds a run in steps of 10) of this
/// process's threads whose name starts with one of `prefixes`.
fn threads_cpu(prefixes: &[&str]) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let Ok(name) = std::fs::read_to_string(entry.path().join("comm")) else {
            continue;
        };
        if !prefixes.iter().any(|p| name.trim_end().starts_with(p)) {
            continue;
        }
        let Ok(sched) = std::fs::read_to_string(entry.path().join("schedstat")) else {
            continue;
        };
        // The first field: time spent on a CPU, ns.
        total += sched
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    total
}

/// The collector's kernel programs in each mode.
fn programs(mode: &str) -> &'static [&'static str] {
    match mode {
        "interface" => &["http_lines"],
        _ => &["http_ingress", "http_egress"],
    }
}

/// Run time and runs of each loaded HTTP program of `mode`, in the order
/// of `programs(mode)` (kernel statistics, on while `enable_stats`'
/// descriptor is open).
fn filter_stats(mode: &str) -> Vec<(Duration, u64)> {
    let names = programs(mode);
    let mut out = vec![(Duration::ZERO, 0); names.len()];
    for p in aya::programs::loaded_programs().flatten() {
        if let Some(i) = p
            .name_as_str()
            .and_then(|n| names.iter().position(|m| *m == n))
        {
            out[i].0 += p.run_time();
            out[i].1 += p.run_count();
        }
    }
    out
}

/// The programs' time and runs between two [`filter_stats`]: in all, and
/// each program's ns per run.
fn stats_between(before: &[(Duration, u64)], after: &[(Duration, u64)]) -> (Duration, u64, String) {
    let mut total = (Duration::ZERO, 0);
    let mut each = Vec::new();
    for ((t0, n0), (t1, n1)) in before.iter().zip(after) {
        let (t, n) = (*t1 - *t0, n1 - n0);
        total = (total.0 + t, total.1 + n);
        each.push(format!("{:.0}", t.as_nanos() as f64 / n.max(1) as f64));
    }
    (total.0, total.1, each.join("/"))
}

/// The kernel function every program run of `mode` happens below (the
/// programs, their helpers and the hook's own work around them).
fn hook_symbol(mode: &str) -> &'static str {
    match mode {
        "interface" => "packet_rcv",
        _ => "__cgroup_bpf_run_filter_skb",
    }
}

/// Samples the whole machine with perf for `secs - 1` seconds from half a
/// second on (within wrk's run) and returns the CPU time spent below
/// `symbol` (children included) per second of the window: its share of the
/// samples times the CPU time they stand for (cpu-clock counts
/// nanoseconds: the report's event count).
fn perf_cpu_below(
    symbol: &'static str,
    secs: u64,
    dir: &Path,
) -> std::thread::JoinHandle<Result<f64, String>> {
    let data = dir.join("perf.data");
    let window = secs.saturating_sub(1).max(1);
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        let rec = Command::new("perf")
            .args([
                "record",
                "-a",
                "-g",
                "-e",
                "cpu-clock",
                "-F",
                "1999",
                "-q",
                "-o",
            ])
            .arg(&data)
            .args(["--", "sleep", &window.to_string()])
            .output()
            .map_err(|e| format!("perf record: {e} (apt install linux-perf)"))?;
        if !rec.status.success() {
            return Err(format!(
                "perf record: {}",
                String::from_utf8_lossy(&rec.stderr)
            ));
        }
        let rep = Command::new("perf")
            .args([
                "report",
                "--stdio",
                "--children",
                "--sort",
                "sym",
                "-g",
                "none",
                "-i",
            ])
            .arg(&data)
            .output()
            .map_err(|e| format!("perf report: {e}"))?;
        let text = String::from_utf8_lossy(&rep.stdout);
        // `# Event count (approx.): N`, then lines `children% self% [k] symbol`.
        let mut ns = None;
        let mut below = None;
        for line in text.lines() {
            if let Some(n) = line.strip_prefix("# Event count (approx.): ") {
                ns = n.trim().parse::<f64>().ok();
            }
            let f: Vec<&str> = line.split_whitespace().collect();
            if let [children, _, _, sym, ..] = f[..]
                && sym == symbol
            {
                below = children.trim_end_matches('%').parse::<f64>().ok();
            }
        }
        let ns = ns.ok_or("perf report: no event count")?;
        let below = below.ok_or_else(|| format!("perf: no sample below {symbol}"))?;
        Ok(below / 100.0 * ns / 1e9 / window as f64)
    })
}

fn quartiles(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    (v[v.len() / 4], v[(v.len() * 3) / 4])
}

/// The cgroup v2 mount (`/sys/fs/cgroup/unified` where v1 holds the
/// controllers, `/sys/fs/cgroup` on a v2-only machine).
fn cgroup_v2_mount() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts.lines().find_map(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        (f.get(2) == Some(&"cgroup2")).then(|| PathBuf::from(f[1]))
    })
}

/// The bench's kubelet-shaped folder below the cgroup v2 root, removed on
/// drop (after the server has exited).
struct BenchPod {
    /// `<v2>/sonde-bench-http-<pid>`.
    root: PathBuf,
    /// `<root>/kubepods`: where the `pods` mode attaches.
    kubepods: PathBuf,
    /// The container's folder, the server's cgroup.
    container: PathBuf,
}

impl BenchPod {
    fn new(v2: &Path) -> BenchPod {
        let root = v2.join(format!("sonde-bench-http-{}", std::process::id()));
        let kubepods = root.join("kubepods");
        let container = kubepods
            .join("burstable/pod5b0c1c7e-2a51-4f6e-9d4c-8c2f4b1e7a30")
            .join(format!("{:064x}", std::process::id()));
        std::fs::create_dir_all(&container)
            .unwrap_or_else(|e| panic!("creating {}: {e}", container.display()));
        BenchPod {
            root,
            kubepods,
            container,
        }
    }
}

impl Drop for BenchPod {
    fn drop(&mut self) {
        for dir in self.container.ancestors() {
            for _ in 0..50 {
                if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            if dir == self.root {
                break;
            }
        }
    }
}

/// The HTTP server: this bench binary again (`SERVER_ENV` set), moved into
/// the pod's folder before it opens its listening socket (a socket belongs
/// to the cgroup of the process that creates it, and accepted ones to
/// their listener's). Killed on drop.
struct Server {
    child: Child,
    port: u16,
    /// Its stdin: the server exits when it closes (this process gone).
    _stdin: std::process::ChildStdin,
}

const SERVER_ENV: &str = "SONDE_BENCH_HTTP_SERVER";

impl Server {
    fn start(pod: &BenchPod) -> Server {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env(SERVER_ENV, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting the bench's server");
        std::fs::write(pod.container.join("cgroup.procs"), child.id().to_string())
            .unwrap_or_else(|e| panic!("moving the server into {}: {e}", pod.container.display()));
        let mut stdin = child.stdin.take().unwrap();
        writeln!(stdin, "go").unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("the server's port: {line:?}"));
        Server {
            child,
            port,
            _stdin: stdin,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The server process: waits for its move into the pod's folder (a line
/// on stdin), then listens on loopback, prints its port and answers every
/// `/items/{id}` after 1 ms, on two worker threads, until its stdin ends.
fn serve() {
    let mut go = String::new();
    std::io::stdin().read_line(&mut go).unwrap();
    std::thread::spawn(|| {
        // Until the bench's end of stdin, however the bench ended.
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        std::process::exit(0);
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("{}", listener.local_addr().unwrap().port());
        let app = axum::Router::new().route(
            "/items/{id}",
            axum::routing::get(|| async {
                tokio::time::sleep(Duration::from_millis(1)).await;
                "ok"
            }),
        );
        axum::serve(listener, app).await.unwrap();
    });
}

fn main() {
    if std::env::var_os(SERVER_ENV).is_some() {
        return serve();
    }
    if !common::is_root() {
        eprintln!("skipped: the HTTP collector benchmark loads eBPF programs and needs root");
        return;
    }
    if Command::new("wrk").arg("--version").output().is_err() {
        eprintln!("skipped: wrk is not installed (apt install wrk; scripts/setup.sh --for-bench)");
        return;
    }
    let secs = common::env_or("SONDE_BENCH_SECONDS", 5) as u64;
    let Some(v2) = cgroup_v2_mount() else {
        eprintln!(
            "skipped: no cgroup v2 hierarchy is mounted (the server runs in a folder of one)"
        );
        return;
    };
    let pod = BenchPod::new(&v2);
    let server = Server::start(&pod);
    let port = server.port;
    // Connections for about 10,000 requests/s.
    let per_conn = load(port, 8, 2).rate / 8.0;
    let conns = ((10_000.0 / per_conn).round() as u32).max(1);
    println!("calibration: {per_conn:.0} requests/s per connection -> {conns} connections");

    let rounds = common::env_or("SONDE_BENCH_ROUNDS", 12);
    // The agent's HTTP report interval: its default unless set.
    let report_ms = common::env_or(
        "SONDE_BENCH_HTTP_REPORT_MS",
        sonde::agent::config::HttpConfig::default().report_interval_ms as usize,
    ) as u64;
    println!("the agent reports the HTTP sums every {report_ms} ms");
    // The agent on a runtime of its own, so that its threads' CPU time is
    // its cost (with the store's SQLite thread); the filter's own time from
    // the kernel's BPF statistics.
    let agent_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("sonde-agent")
        // Blocking threads that exit mid-run would take their CPU time out
        // of the sum (the figure would shrink, or go negative): keep them.
        .thread_keep_alive(Duration::from_secs(3600))
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = agent_rt.block_on(common::agent_store(dir.path()));
    let perf = std::env::var("SONDE_BENCH_PERF").is_ok_and(|v| v == "1");
    let _stats = (!perf)
        .then(|| {
            aya::sys::enable_stats(aya::sys::Stats::RunTime)
                .map_err(|e| eprintln!("no BPF run-time statistics: {e}"))
                .ok()
        })
        .flatten();
    if perf {
        println!("kernel side measured by perf sampling, BPF statistics off");
    }
    let modes: Vec<String> = std::env::var("SONDE_BENCH_HTTP_MODES")
        .unwrap_or_else(|_| "pods,root,interface".into())
        .split(',')
        .map(|m| m.trim().to_string())
        .filter(|m| !m.is_empty())
        .collect();
    for m in &modes {
        assert!(
            ["pods", "root", "interface"].contains(&m.as_str()),
            "SONDE_BENCH_HTTP_MODES: unknown mode {m:?} (pods, root, interface)"
        );
    }
    let agent_threads = ["sonde-agent", "sqlx-sqlite"];
    let mut off: Vec<Sample> = Vec::new();
    // Per mode, per round: wrk's sample, the agent's thread CPU (ns),
    // the programs' time and runs.
    let mut on: Vec<Vec<(Sample, u64, Duration, u64)>> = vec![Vec::new(); modes.len()];
    let mut printed_size = vec![false; modes.len()];
    // Per mode, per round: each program's ns per run (`programs(mode)` order).
    let mut split: Vec<Vec<String>> = vec![Vec::new(); modes.len()];
    for round in 0..rounds {
        // Rotate the order (off first, then each mode), so that a drift of
        // the machine during a round does not always favour the same side.
        let sides = modes.len() + 1;
        for k in 0..sides {
            let side = (k + round) % sides;
            if side == 0 {
                off.push(load(port, conns, secs));
                continue;
            }
            let mi = side - 1;
            let mode = modes[mi].as_str();
            let agent = agent_rt
                .block_on(Agent::start(
                    AgentConfig {
                        node: Some("bench".into()),
                        collectors: vec!["http".into()],
                        http: sonde::agent::config::HttpConfig {
                            interface: (mode == "interface").then(|| "lo".to_string()),
                            cgroup: match mode {
                                "pods" => Some(pod.kubepods.clone()),
                                "root" => Some(v2.clone()),
                                _ => None,
                            },
                            ports: vec![port],
                            report_interval_ms: report_ms,
                        },
                        ..Default::default()
                    },
                    sonde::agent::Sink::Store(store.clone()),
                    None,
                ))
                .unwrap();
            let st = agent.status();
            let http = st.iter().find(|s| s.collector == "http").unwrap();
            assert!(http.available, "{mode}: {:?}", http.reason);
            if !printed_size[mi] {
                printed_size[mi] = true;
                for p in aya::programs::loaded_programs()
                    .flatten()
                    .filter(|p| p.name_as_str().is_some_and(|n| programs(mode).contains(&n)))
                {
                    println!(
                        "{mode}: {}: {:?} instructions verified, {:?} bytes translated",
                        p.name_as_str().unwrap_or("?"),
                        p.verified_instruction_count(),
                        p.size_translated()
                    );
                }
            }
            // Loading is not the per-request cost: count from here.
            let cpu1 = threads_cpu(&agent_threads);
            let before = filter_stats(mode);
            let sampler = perf.then(|| perf_cpu_below(hook_symbol(mode), secs, dir.path()));
            let sample = load(port, conns, secs);
            let (mut filter_t, mut runs, mut each) = stats_between(&before, &filter_stats(mode));
            each = format!("{each} ns per run of {}", programs(mode).join("/"));
            if let Some(sampler) = sampler {
                let per_s = sampler.join().unwrap().unwrap_or_else(|e| panic!("{e}"));
                // The kernel side's CPU over the whole run, at the sampled rate.
                filter_t = Duration::from_secs_f64(per_s * secs as f64);
                runs = 0;
                each = format!("perf: {:.1} ms of CPU per second", per_s * 1000.0);
            }
            // The agent's CPU from before the run until it has reported the
            // run's last requests (its report interval, 10 s by default, may
            // end after wrk's run: the report is counted, and so are the
            // idle seconds waited for it).
            let requests = sample.requests;
            let deadline = std::time::Instant::now()
                + Duration::from_millis(report_ms)
                + Duration::from_secs(5);
            let http = loop {
                let st = agent.status();
                let http = st.into_iter().find(|s| s.collector == "http").unwrap();
                if http.events as f64 >= requests || std::time::Instant::now() > deadline {
                    break http;
                }
                std::thread::sleep(Duration::from_millis(20));
            };
            let cpu2 = threads_cpu(&agent_threads);
            let agent_cpu = cpu2.checked_sub(cpu1).unwrap_or_else(|| {
                panic!("the agent's threads lost CPU time ({cpu1} -> {cpu2} ns): one exited")
            });
            // Each round's agent counts from zero.
            assert_eq!(http.dropped, 0, "{mode}: the HTTP collector lost requests");
            // Every request wrk completed was counted, and at most the ones
            // still open on each connection when wrk stopped besides.
            assert!(
                http.events as f64 >= requests && http.events as f64 <= requests + conns as f64,
                "{mode}: {} requests counted for {requests} completed on {conns} connections",
                http.events
            );
            agent_rt.block_on(agent.shutdown());
            on[mi].push((sample, agent_cpu, filter_t, runs));
            split[mi].push(each);
        }
        let o = off[round];
        for (mi, mode) in modes.iter().enumerate() {
            let (n, agent_ns, filter_t, runs) = on[mi][round];
            // The collector's own CPU per request, against the machine's CPU
            // per request with it off in the same round.
            let own_ms = (agent_ns as f64 / 1e6 + filter_t.as_secs_f64() * 1000.0) / n.requests;
            println!(
                "round {round:>2} {mode:>9}: off {:>6.0} req/s {:.4} ms CPU/req | on {:>6.0} req/s {:.4} ms CPU/req | {:+6.1}% | \
                 collector: agent {:.5} + programs {:.5} ms/req ({:.0} ns x {:.1} runs/req; {}) = {:+.2}% | stolen {:.0}/{:.0} jiffies/s",
                o.rate,
                o.cpu_per_request * 10.0,
                n.rate,
                n.cpu_per_request * 10.0,
                (n.cpu_per_request / o.cpu_per_request - 1.0) * 100.0,
                agent_ns as f64 / 1e6 / n.requests,
                filter_t.as_secs_f64() * 1000.0 / n.requests,
                filter_t.as_nanos() as f64 / runs.max(1) as f64,
                runs as f64 / n.requests,
                split[mi][round],
                own_ms / (o.cpu_per_request * 10.0) * 100.0,
                o.steal_per_second,
                n.steal_per_second,
            );
        }
    }
    for (mi, mode) in modes.iter().enumerate() {
        let rows = &on[mi];
        let own: Vec<f64> = (0..rounds)
            .map(|i| {
                let (n, agent_ns, filter_t, _) = rows[i];
                let own_ms = (agent_ns as f64 / 1e6 + filter_t.as_secs_f64() * 1000.0) / n.requests;
                own_ms / (off[i].cpu_per_request * 10.0) * 100.0
            })
            .collect();
        let per_request_us: Vec<f64> = (0..rounds)
            .map(|i| {
                let (n, agent_ns, filter_t, _) = rows[i];
                (agent_ns as f64 / 1e6 + filter_t.as_secs_f64() * 1000.0) / n.requests * 1000.0
            })
            .collect();
        let kernel = match perf {
            true => "CPU sampled below the hook".to_string(),
            false => {
                let per_run_ns: Vec<f64> = rows
                    .iter()
                    .map(|(_, _, t, runs)| t.as_nanos() as f64 / (*runs).max(1) as f64)
                    .collect();
                format!("programs' run time, {:.0} ns per run", median(per_run_ns))
            }
        };
        let (q1, q3) = quartiles(own.clone());
        println!(
            "{mode}: collector's own CPU (agent threads + {kernel}) per request, against the machine's CPU per request with it off: median {:+.2}% (quartiles {:+.2}% .. {:+.2}%); {:.2} us per request",
            median(own),
            q1,
            q3,
            median(per_request_us),
        );
        // A round where the hypervisor took more than 1% of the two CPUs
        // measured its neighbours as much as this machine: left out.
        let clean: Vec<usize> = (0..rounds)
            .filter(|&i| off[i].steal_per_second <= 2.0 && rows[i].0.steal_per_second <= 2.0)
            .collect();
        let ratios = |idx: &[usize]| -> Vec<f64> {
            idx.iter()
                .map(|&i| (rows[i].0.cpu_per_request / off[i].cpu_per_request - 1.0) * 100.0)
                .collect()
        };
        let all: Vec<usize> = (0..rounds).collect();
        for (label, idx) in [("all rounds", &all), ("rounds with < 1% stolen", &clean)] {
            if idx.is_empty() {
                println!("{mode}, {label}: none");
                continue;
            }
            let (q1, q3) = quartiles(ratios(idx));
            println!(
                "{mode}, {label} ({}): off {:.0} req/s {:.4} ms CPU/req, on {:.0} req/s {:.4} ms CPU/req; overhead per round median {:+.1}% (quartiles {:+.1}% .. {:+.1}%)",
                idx.len(),
                median(idx.iter().map(|&i| off[i].rate).collect()),
                median(idx.iter().map(|&i| off[i].cpu_per_request).collect()) * 10.0,
                median(idx.iter().map(|&i| rows[i].0.rate).collect()),
                median(idx.iter().map(|&i| rows[i].0.cpu_per_request).collect()) * 10.0,
                median(ratios(idx)),
                q1,
                q3,
            );
        }
    }
}
