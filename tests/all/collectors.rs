//! The eBPF collectors on the real kernel: an OOM kill in a kubelet-shaped
//! v1 memory cgroup attributed to its pod and container and reported by the
//! node-signals probe, and the same kill read from the kernel's log and
//! reported by kernel-audit; an exec in such a cgroup; a TCP reset on loopback; a
//! listen queue overflowing; an HTTP mix whose RED figures match; and the
//! agent without privilege. Tests that need root say so and return when not
//! root (CI runs as root).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sonde::agent::{Agent, AgentConfig, DaemonSink, Sink};
use sonde::caps::HostServices;
use sonde::kube::SnapshotBackend;
use sonde::store::{CollectorEventRow, OpenOptions, Store};

use crate::cli::{sonde, text};

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().nth(1).map(|e| e == "0"))
        .unwrap_or(false)
}

macro_rules! needs_root {
    () => {
        if !is_root() {
            eprintln!("skipped: loading eBPF programs needs root (CI runs as root)");
            return;
        }
    };
}

const MEMCG: &str = "/sys/fs/cgroup/memory";

/// The tests that cause OOM kills take turns: the oom collector and the
/// kernel's log each see every kill on the node, another test's too.
static OOM_KILLS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A kubelet-shaped cgroup in the v1 memory hierarchy
/// (`kubepods/burstable/pod<uid>/<container-id>`), below a root of its own
/// as on a nested node, so that tests running at once never share a
/// folder; removed on drop.
struct PodCgroup {
    uid: String,
    container_id: String,
    root: PathBuf,
    dir: PathBuf,
}

/// The cgroup v2 mount (`/sys/fs/cgroup/unified` here, where v1 holds the
/// controllers; `/sys/fs/cgroup` on a v2-only machine).
fn cgroup_v2_mount() -> PathBuf {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    mounts
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f.get(2) == Some(&"cgroup2")).then(|| PathBuf::from(f[1]))
        })
        .expect("a cgroup v2 mount")
}

impl PodCgroup {
    fn new(limit_bytes: Option<u64>) -> PodCgroup {
        Self::new_in(Path::new(MEMCG), limit_bytes)
    }

    /// The same shape in the hierarchy mounted at `base`.
    fn new_in(base: &Path, limit_bytes: Option<u64>) -> PodCgroup {
        let uid = uuid_like();
        let container_id = format!("{:064x}", fastrand_u128());
        let root = base.join(format!("sonde-test-{}", &uid[..8]));
        let dir = root
            .join("kubepods/burstable")
            .join(format!("pod{uid}"))
            .join(&container_id);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        if let Some(limit) = limit_bytes {
            std::fs::write(dir.join("memory.limit_in_bytes"), limit.to_string()).unwrap();
            // No swap either, so the limit is reached rather than swapped past.
            let _ = std::fs::write(dir.join("memory.memsw.limit_in_bytes"), limit.to_string());
        }
        PodCgroup {
            uid,
            container_id,
            root,
            dir,
        }
    }

    /// `sh -c SCRIPT` with the shell moved into this cgroup before it runs `SCRIPT`.
    fn command(&self, script: &str) -> Command {
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(format!(
            "echo $$ > {}/cgroup.procs && {script}",
            self.dir.display()
        ));
        cmd
    }

    /// A Pod object for this cgroup, for the agent's pod directory.
    fn pod_yaml(&self, namespace: &str, name: &str, container: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {namespace}\n  uid: {uid}\n\
             spec:\n  containers:\n  - name: {container}\n    image: busybox\n\
             status:\n  podIP: 10.244.0.9\n  containerStatuses:\n  - name: {container}\n    containerID: containerd://{cid}\n",
            uid = self.uid,
            cid = self.container_id
        )
    }
}

impl Drop for PodCgroup {
    fn drop(&mut self) {
        // The processes are gone; remove the leaf, then empty parents.
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() || !self.dir.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // The pod, burstable, kubepods and the test's root, innermost first.
        for dir in self.dir.ancestors().skip(1) {
            let _ = std::fs::remove_dir(dir);
            if dir == self.root {
                break;
            }
        }
    }
}

fn fastrand_u128() -> u128 {
    let mut b = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .unwrap();
    u128::from_le_bytes(b)
}

fn uuid_like() -> String {
    let h = format!("{:032x}", fastrand_u128());
    format!(
        "{}-{}-4{}-8{}-{}",
        &h[..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

struct Running {
    _dir: tempfile::TempDir,
    store: Store,
    agent: Option<Agent>,
}

impl Running {
    /// Stops the agent; the store (and its folder) stay.
    async fn stop(mut self) -> (Store, tempfile::TempDir) {
        if let Some(a) = self.agent.take() {
            a.shutdown().await;
        }
        (self.store, self._dir)
    }
}

/// An agent with only `collectors`, naming pods from `pods_yaml`, writing
/// into a fresh store.
async fn start_agent(
    collectors: &[&str],
    pods_yaml: &str,
    tweak: impl FnOnce(&mut AgentConfig),
) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(
        dir.path().join("agent.db"),
        OpenOptions {
            owner: false,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let kube: Option<Arc<dyn sonde::kube::KubeBackend>> = if pods_yaml.is_empty() {
        None
    } else {
        let snap_dir = dir.path().join("cluster");
        std::fs::create_dir_all(&snap_dir).unwrap();
        std::fs::write(snap_dir.join("pods.yaml"), pods_yaml).unwrap();
        Some(Arc::new(SnapshotBackend::load(&snap_dir).unwrap()))
    };
    let mut config = AgentConfig {
        node: Some("test-node".into()),
        collectors: collectors.iter().map(|s| s.to_string()).collect(),
        flush_interval_ms: 100,
        listen_interval_seconds: 1,
        http: sonde::agent::config::HttpConfig {
            report_interval_ms: 100,
            ..Default::default()
        },
        ..Default::default()
    };
    tweak(&mut config);
    let agent = Agent::start(config, Sink::Store(store.clone()), kube)
        .await
        .unwrap();
    for s in agent.status() {
        if collectors.contains(&s.collector.as_str()) {
            assert!(s.available, "{} unavailable: {:?}", s.collector, s.reason);
        }
    }
    Running {
        _dir: dir,
        store,
        agent: Some(agent),
    }
}

/// Waits until `collector` has events matching `pred`.
/// node-signals over what the agent stored (a 10-minute window); it must
/// succeed.
async fn node_signals_over(store: Store) -> sonde::runtime::RunOutcome {
    let services = Arc::new(HostServices {
        collectors: Some(store),
        ..Default::default()
    });
    let out = crate::run(
        sonde_probes::NODE_SIGNALS_PATH,
        serde_json::json!({"window_minutes": 10}),
        None,
        Default::default(),
        services,
    )
    .await;
    assert_eq!(
        out.status,
        sonde::runtime::RunStatus::Succeeded,
        "{:?}",
        out.reason
    );
    out
}

async fn wait_for(
    store: &Store,
    collector: &str,
    pred: impl Fn(&CollectorEventRow) -> bool,
) -> Vec<CollectorEventRow> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let rows: Vec<_> = store
            .collector_events(collector, 0, i64::MAX, 100_000)
            .await
            .unwrap()
            .into_iter()
            .filter(|r| pred(r))
            .collect();
        if !rows.is_empty() || Instant::now() > deadline {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// 100 MiB of touched memory in a cgroup of 20 MiB: the OOM killer takes
/// the process (perl); its pid.
fn oom_kill(cg: &PodCgroup) -> i64 {
    let child = cg
        .command("exec perl -e '$x = \"a\" x (100 * 1024 * 1024); sleep 1'")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = i64::from(child.id());
    let out = child.wait_with_output().unwrap();
    assert!(
        !out.status.success(),
        "the allocation should have been killed"
    );
    pid
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oom_kill_is_attributed_to_its_pod_and_container_and_reported() {
    needs_root!();
    let _turn = OOM_KILLS.lock().await;
    let cg = PodCgroup::new(Some(20 << 20));
    let running = start_agent(&["oom"], &cg.pod_yaml("shop", "cart-7d9f", "app"), |_| {}).await;
    oom_kill(&cg);
    let rows = wait_for(&running.store, "oom", |r| {
        r.pod_uid.as_deref() == Some(cg.uid.as_str())
    })
    .await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let oom = &rows[0];
    assert_eq!(oom.kind, "oom_kill");
    assert_eq!(oom.container_id.as_deref(), Some(cg.container_id.as_str()));
    assert_eq!(oom.namespace.as_deref(), Some("shop"));
    assert_eq!(oom.pod.as_deref(), Some("cart-7d9f"));
    assert_eq!(oom.container.as_deref(), Some("app"));
    assert_eq!(oom.comm.as_deref(), Some("perl"));
    assert_eq!(oom.node, "test-node");
    let rss = oom.fields["anon_rss_kb"].as_i64().unwrap();
    assert!(
        (10_000..=21_000).contains(&rss),
        "anon rss {rss} KiB near the 20 MiB limit"
    );
    let (store, _dir) = running.stop().await;

    // The probe, querying the collector, names the pod and the container.
    let out = node_signals_over(store).await;
    let f: Vec<_> = out
        .findings
        .iter()
        .filter(|f| f.rule == "PodOOMKilled")
        .collect();
    assert_eq!(f.len(), 1, "{:?}", out.findings);
    let r = f[0].resource.as_ref().unwrap();
    assert_eq!(
        (r.kind.as_str(), r.namespace.as_deref(), r.name.as_str()),
        ("Pod", Some("shop"), "cart-7d9f")
    );
    assert_eq!(r.uid.as_deref(), Some(cg.uid.as_str()));
    assert!(
        f[0].message
            .starts_with("container app: 1 process OOM-killed in the last 10 minutes (perl, up to"),
        "{}",
        f[0].message
    );
    // The other collectors have no data in this store: skipped, and said so.
    assert!(
        out.logs
            .iter()
            .any(|l| l.message.starts_with("tcp checks skipped")),
        "{:?}",
        out.logs
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oom_kill_in_the_kernel_log_is_the_nodes_kernel_problem() {
    needs_root!();
    let _turn = OOM_KILLS.lock().await;
    let cg = PodCgroup::new(Some(20 << 20));
    let running = start_agent(&["kernel-log"], "", |_| {}).await;
    // A real OOM kill: the kernel writes "Memory cgroup out of memory:
    // Killed process <pid> (perl) total-vm:..." into its log.
    let pid = oom_kill(&cg);
    let rows = wait_for(&running.store, "kernel-log", |r| r.pid == Some(pid)).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let line = &rows[0];
    assert_eq!(line.kind, "OOMKilling");
    assert_eq!(line.comm.as_deref(), Some("perl"));
    assert_eq!(line.node, "test-node");
    let message = line.fields["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("Killed process {pid} (perl) total-vm:")),
        "{message}"
    );
    assert!(line.fields["seq"].as_i64().unwrap() > 0);
    let age = sonde::agent::now_ms() - line.ts_ms;
    assert!(
        (0..60_000).contains(&age),
        "the line's time is {age} ms ago"
    );
    let (store, dir) = running.stop().await;

    // kernel-audit reads it as the node's problem, with no
    // node-problem-detector in the cluster (no Nodes, no Events at all).
    let cluster = dir.path().join("empty-cluster");
    std::fs::create_dir_all(&cluster).unwrap();
    let services = Arc::new(HostServices {
        collectors: Some(store),
        kube: Some(Arc::new(SnapshotBackend::load(&cluster).unwrap())),
        ..Default::default()
    });
    let out = crate::run(
        sonde_probes::KERNEL_AUDIT_PATH,
        serde_json::Value::Null,
        None,
        Default::default(),
        services,
    )
    .await;
    assert_eq!(
        out.status,
        sonde::runtime::RunStatus::Succeeded,
        "{:?}",
        out.reason
    );
    // One finding for the node (other tests' kills, read back from the
    // kernel's buffer, may be among its count and be its last message).
    let oom: Vec<_> = out
        .findings
        .iter()
        .filter(|f| f.rule == "NodeOOM")
        .collect();
    assert_eq!(oom.len(), 1, "{:?}", out.findings);
    let r = oom[0].resource.as_ref().unwrap();
    assert_eq!((r.kind.as_str(), r.name.as_str()), ("Node", "test-node"));
    assert!(
        oom[0].message.starts_with("OOMKilling x") && oom[0].message.contains(") total-vm:"),
        "{}",
        oom[0].message
    );
    assert!(
        out.logs
            .iter()
            .any(|l| l.message.starts_with("kernel logs: ")),
        "{:?}",
        out.logs
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exec_carries_its_filename_and_pod() {
    needs_root!();
    let cg = PodCgroup::new(None);
    let running = start_agent(&["exec"], &cg.pod_yaml("tools", "debug-0", "shell"), |_| {}).await;
    let status = cg
        .command("exec /bin/true sonde-exec-test")
        .status()
        .unwrap();
    assert!(status.success());
    let rows = wait_for(&running.store, "exec", |r| {
        r.pod_uid.as_deref() == Some(cg.uid.as_str())
    })
    .await;
    let exec: Vec<_> = rows
        .iter()
        .filter(|r| r.fields["filename"] == "/bin/true")
        .collect();
    assert_eq!(exec.len(), 1, "{rows:?}");
    let e = exec[0];
    assert_eq!(e.pod.as_deref(), Some("debug-0"));
    assert_eq!(e.container.as_deref(), Some("shell"));
    assert_eq!(e.comm.as_deref(), Some("true"));
    assert!(e.fields["ppid"].as_i64().unwrap() > 0);
    assert!(e.cgroup.as_deref().unwrap().ends_with(&cg.container_id));
    running.stop().await;
}

/// A node's agent that sends to the daemon's API (no shared file): the
/// exec it saw, attributed to its pod, is in the daemon's store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_sends_what_it_sees_to_the_daemon_api() {
    needs_root!();
    const TOKEN: &str = "node-agent-token-0123456789";
    let daemon = crate::serve::Served::start(&format!(
        r#"
listen: 127.0.0.1:0
cluster: {{snapshot: "{{cluster}}"}}
store: {{path: "{{dir}}/sonde.db"}}
auth:
  tokens:
    - {{name: node-agents, role: agent, token: "{TOKEN}"}}
probes: []
"#
    ));
    let cg = PodCgroup::new(None);
    let snap_dir = tempfile::tempdir().unwrap();
    std::fs::write(
        snap_dir.path().join("pods.yaml"),
        cg.pod_yaml("tools", "remote-0", "shell"),
    )
    .unwrap();
    let kube: Arc<dyn sonde::kube::KubeBackend> =
        Arc::new(SnapshotBackend::load(snap_dir.path()).unwrap());
    let config = AgentConfig {
        node: Some("remote-node".into()),
        collectors: vec!["exec".into()],
        flush_interval_ms: 100,
        ..Default::default()
    };
    let sink = Sink::Daemon(DaemonSink::new(&daemon.url, Some(TOKEN.into())).unwrap());
    let agent = Agent::start(config, sink, Some(kube)).await.unwrap();
    assert!(
        cg.command("exec /bin/true sonde-remote-test")
            .status()
            .unwrap()
            .success()
    );
    let store = daemon.open_store().await;
    let rows = wait_for(&store, "exec", |r| {
        r.pod_uid.as_deref() == Some(cg.uid.as_str()) && r.fields["filename"] == "/bin/true"
    })
    .await;
    assert_eq!(rows.len(), 1, "{rows:?}\n{}", daemon.log());
    assert_eq!(rows[0].node, "remote-node");
    assert_eq!(rows[0].pod.as_deref(), Some("remote-0"));
    assert_eq!(rows[0].container.as_deref(), Some("shell"));
    agent.shutdown().await;
    // The agent's state reached the daemon too.
    let status = store.collector_statuses().await.unwrap();
    assert!(
        status.iter().any(|s| s.node == "remote-node"
            && s.collector == "exec"
            && s.available
            && s.events >= 1),
        "{status:?}"
    );
    store.close().await;
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_from_a_closed_port_is_seen_on_both_sides_and_the_client_pod_named() {
    needs_root!();
    let cg = PodCgroup::new(None);
    let running = start_agent(&["tcp"], &cg.pod_yaml("web", "client-1", "curl"), |_| {}).await;
    let port = closed_port();
    // The connecting process lives in the pod's cgroup.
    let status = cg
        .command(&format!(
            "exec perl -MIO::Socket::INET -e 'IO::Socket::INET->new(PeerAddr => q{{127.0.0.1:{port}}}) and exit 1; exit 0'"
        ))
        .status()
        .unwrap();
    assert!(status.success(), "the connect should have been refused");
    let rows = wait_for(&running.store, "tcp", |r| {
        r.fields.get("dport").and_then(|p| p.as_u64()) == Some(u64::from(port))
            && r.kind == "reset_received"
    })
    .await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let rr = &rows[0];
    assert_eq!(rr.fields["daddr"], "127.0.0.1");
    assert_eq!(rr.pod.as_deref(), Some("client-1"));
    assert_eq!(rr.fields["owner"], "socket");
    // The kernel's reset for the closed port: sent with the closed port as source.
    let sent = wait_for(&running.store, "tcp", |r| {
        r.kind == "reset_sent"
            && r.fields.get("sport").and_then(|p| p.as_u64()) == Some(u64::from(port))
    })
    .await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooded_listener_with_a_tiny_backlog_overflows() {
    needs_root!();
    let cg = PodCgroup::new(None);
    let running = start_agent(&["listen"], &cg.pod_yaml("web", "server-1", "app"), |_| {}).await;
    let port = closed_port();
    // A listener with backlog 1 that never accepts, in the pod's cgroup.
    let mut server = cg
        .command(&format!(
            "exec perl -MIO::Socket::INET -e '$s = IO::Socket::INET->new(LocalAddr => q{{127.0.0.1:{port}}}, Listen => 1, ReuseAddr => 1) or die; print qq{{up\\n}}; $| = 1; sleep 30'"
        ))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut up = [0u8; 3];
    server.stdout.as_mut().unwrap().read_exact(&mut up).unwrap();
    // Flood it: the first connections fill the queue, the rest overflow.
    let clients: Vec<_> = (0..16)
        .map(|_| {
            std::thread::spawn(move || {
                TcpStream::connect_timeout(
                    &format!("127.0.0.1:{port}").parse().unwrap(),
                    Duration::from_millis(1500),
                )
                .ok()
            })
        })
        .collect();
    let queue = wait_for(&running.store, "listen", |r| {
        r.kind == "queue" && r.fields["port"] == port && r.fields["full"] == true
    })
    .await;
    let overflow = wait_for(&running.store, "listen", |r| {
        r.kind == "overflow" && r.fields["overflows"].as_u64().unwrap_or(0) > 0
    })
    .await;
    let _ = server.kill();
    let _ = server.wait();
    let held: Vec<_> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    drop(held);
    assert!(!queue.is_empty(), "the iterator saw the full queue");
    let q = &queue[0];
    assert_eq!(q.fields["max_backlog"], 1);
    assert!(q.fields["backlog"].as_u64().unwrap() >= 2);
    assert_eq!(q.pod.as_deref(), Some("server-1"), "{q:?}");
    assert_eq!(q.comm.as_deref(), Some("perl"));
    assert!(!overflow.is_empty(), "ListenOverflows grew");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pods_own_network_namespace_is_sampled_and_its_overflows_named() {
    needs_root!();
    let cg = PodCgroup::new(None);
    let running = start_agent(&["listen"], &cg.pod_yaml("web", "server-2", "app"), |_| {}).await;
    // As in a pod: a network namespace of its own (loopback up), and in it a
    // listener with backlog 1 that never accepts, flooded from inside by 16
    // non-blocking connects. The agent's namespace does not see any of it.
    let mut server = cg
        .command(
            "exec unshare --net perl -MIO::Socket::INET -e '\
             system(q{ip}, q{link}, q{set}, q{lo}, q{up}) == 0 or die q{lo up};\
             $s = IO::Socket::INET->new(LocalAddr => q{127.0.0.1:18080}, Listen => 1, ReuseAddr => 1) or die qq{listen: $!};\
             for (1..16) { push @c, IO::Socket::INET->new(PeerAddr => q{127.0.0.1:18080}, Blocking => 0) }\
             print qq{up\n}; $| = 1; sleep 30'",
        )
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut up = [0u8; 3];
    server.stdout.as_mut().unwrap().read_exact(&mut up).unwrap();
    use std::os::unix::fs::MetadataExt;
    let netns = std::fs::metadata(format!("/proc/{}/ns/net", server.id()))
        .unwrap()
        .ino();
    let own = std::fs::metadata("/proc/self/ns/net").unwrap().ino();
    assert_ne!(netns, own, "the listener is in a namespace of its own");
    let queue = wait_for(&running.store, "listen", |r| {
        r.kind == "queue" && r.fields["netns"] == netns && r.fields["full"] == true
    })
    .await;
    let overflow = wait_for(&running.store, "listen", |r| {
        r.kind == "overflow" && r.fields["netns"] == netns
    })
    .await;
    let _ = server.kill();
    let _ = server.wait();
    assert!(
        !queue.is_empty(),
        "the iterator saw the full queue in the pod's namespace"
    );
    assert!(
        !overflow.is_empty(),
        "the pod namespace's ListenOverflows grew"
    );
    let q = &queue[0];
    assert_eq!(q.fields["port"], 18080, "{q:?}");
    assert_eq!(q.fields["max_backlog"], 1);
    assert!(q.fields["backlog"].as_u64().unwrap() >= 2, "{q:?}");
    assert_eq!(q.pod.as_deref(), Some("server-2"), "{q:?}");
    assert_eq!(q.comm.as_deref(), Some("perl"));
    // The namespace's counters: the pod's, not a container's.
    let o = &overflow[0];
    assert!(o.fields["overflows"].as_u64().unwrap() >= 1, "{o:?}");
    assert_eq!(o.fields["host_netns"], false, "{o:?}");
    assert_eq!(o.fields["owner"], "netns", "{o:?}");
    assert_eq!(
        (
            o.namespace.as_deref(),
            o.pod.as_deref(),
            o.pod_uid.as_deref()
        ),
        (Some("web"), Some("server-2"), Some(cg.uid.as_str())),
        "{o:?}"
    );
    assert_eq!(
        (o.container.as_deref(), o.container_id.as_deref()),
        (None, None)
    );
    let (store, _dir) = running.stop().await;

    // node-signals names the pod for both: the full queue and the counter.
    let out = node_signals_over(store).await;
    let on_pod: Vec<_> = out
        .findings
        .iter()
        .filter(|f| {
            f.rule == "ListenQueueOverflow"
                && f.resource.as_ref().is_some_and(|r| {
                    (r.kind.as_str(), r.namespace.as_deref(), r.name.as_str())
                        == ("Pod", Some("web"), "server-2")
                })
        })
        .collect();
    assert_eq!(on_pod.len(), 2, "{:?}", out.findings);
    assert!(
        on_pod.iter().any(|f| f
            .message
            .starts_with("port 18080 (perl): accept queue full (limit 1)")),
        "{on_pod:?}"
    );
    assert!(
        on_pod.iter().any(|f| f
            .message
            .starts_with("listen queues in the pod's network namespace overflowed")),
        "{on_pod:?}"
    );
}

/// Answers `GET /ok` (2 ms), `/missing/N` (404, 1 ms) and `/fail` (500, 10 ms), keep-alive,
/// on `connections` connections, on 127.0.0.1.
fn http_server(connections: usize) -> (u16, std::thread::JoinHandle<()>) {
    http_server_on("127.0.0.1:0", connections)
}

/// [`http_server`] listening on `addr`.
fn http_server_on(addr: &str, connections: usize) -> (u16, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind(addr).unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let mut conns = Vec::new();
        for stream in listener.incoming().take(connections) {
            let mut stream = stream.unwrap();
            // Each response its own segment (the filter reads the first
            // line of each), also when requests are pipelined.
            stream.set_nodelay(true).unwrap();
            conns.push(std::thread::spawn(move || {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let n = match stream.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let req = String::from_utf8_lossy(&buf[..end]).into_owned();
                        buf.drain(..end + 4);
                        let path = req.split(' ').nth(1).unwrap_or("/").to_string();
                        let (status, delay) = if path == "/ok" {
                            ("200 OK", 2)
                        } else if path == "/fail" {
                            ("500 Internal Server Error", 10)
                        } else {
                            ("404 Not Found", 1)
                        };
                        std::thread::sleep(Duration::from_millis(delay));
                        let body = "x";
                        let resp = format!(
                            "HTTP/1.1 {status}\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if stream.write_all(resp.as_bytes()).is_err() {
                            return;
                        }
                    }
                }
            }));
        }
        for c in conns {
            let _ = c.join();
        }
    });
    (port, handle)
}

/// Where the HTTP collector watches.
#[derive(Clone, Copy, Debug)]
enum HttpMode {
    /// The cgroup programs where the agent puts them by default: the cgroup
    /// v2 root on this machine, which has no kubelet pods folder.
    Cgroup,
    /// The socket filter on loopback.
    Interface,
}

/// The agent with only the HTTP collector, for `port`.
async fn start_http_agent(port: u16, mode: HttpMode) -> Running {
    start_agent(&["http"], "", |c| {
        if let HttpMode::Interface = mode {
            c.http.interface = Some("lo".into());
        }
        c.http.ports = vec![port];
    })
    .await
}

/// The stored RED minutes once they count `requests` (or after 20 s).
async fn http_rows(store: &Store, requests: i64) -> Vec<sonde::store::HttpRedRow> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let rows = store.http_red(0, i64::MAX, 1000).await.unwrap();
        let total: i64 = rows.iter().map(|r| r.requests).sum();
        if total >= requests || Instant::now() > deadline {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Reads one response: headers, then the 1-byte body.
fn read_response(stream: &mut TcpStream) {
    let mut got = Vec::new();
    let mut b = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut b).unwrap();
        got.push(b[0]);
    }
    stream.read_exact(&mut b).unwrap();
}

fn get(stream: &mut TcpStream, path: &str) {
    // One write, as clients send a request head: the filter reads the
    // request line from the first segment.
    let head = format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    read_response(stream);
}

/// Pipelined requests (each its own segment, sent before any answer) are
/// paired in order in the kernel; ids in paths, and an absolute-form target,
/// count under one route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_pair_in_order_and_ids_fold_into_one_route() {
    needs_root!();
    pipelined_requests(HttpMode::Cgroup).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_pair_in_order_through_the_interface_filter() {
    needs_root!();
    pipelined_requests(HttpMode::Interface).await;
}

async fn pipelined_requests(mode: HttpMode) {
    let (port, server) = http_server(1);
    let running = start_http_agent(port, mode).await;
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_nodelay(true).unwrap();
    let lines = [
        "GET /fail HTTP/1.1",
        "GET /items/1 HTTP/1.1",
        "GET /items/22?full=1 HTTP/1.1",
        "GET http://test/items/0f3c8a1e-2b4d-4c6e-8f9a-1b2c3d4e5f60 HTTP/1.1",
        "POST /ok HTTP/1.1",
    ];
    for _ in 0..10 {
        for l in lines {
            s.write_all(format!("{l}\r\nHost: test\r\n\r\n").as_bytes())
                .unwrap();
            // Its own segment: the filter reads the first line of each.
            std::thread::sleep(Duration::from_millis(2));
        }
        for _ in lines {
            read_response(&mut s);
        }
    }
    drop(s);
    server.join().unwrap();
    let rows = http_rows(&running.store, 50).await;
    let _ = running.stop().await;
    let of = |method: &str, route: &str| -> (i64, i64, i64) {
        rows.iter()
            .filter(|r| r.method == method && r.route == route)
            .fold((0, 0, 0), |a, r| {
                (a.0 + r.requests, a.1 + r.errors, a.2 + r.client_errors)
            })
    };
    // Each answer went to the request it answers: the 500 to /fail, the
    // 404s to the ids, the 200 to POST /ok.
    assert_eq!(of("GET", "/fail"), (10, 10, 0), "{rows:?}");
    assert_eq!(of("GET", "/items/:id"), (30, 0, 30), "{rows:?}");
    assert_eq!(of("POST", "/ok"), (10, 0, 0), "{rows:?}");
    assert_eq!(rows.iter().map(|r| r.requests).sum::<i64>(), 50, "{rows:?}");
}

/// A server on an IPv6 socket is counted for IPv6 clients, and for IPv4
/// clients of the same dual-stack socket (a server listening on `::`, as
/// Go's, Node's and Java's do by default), whose packets are IPv4 on an
/// IPv6 socket; each under its own server address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dual_stack_server_is_counted_for_ipv4_and_ipv6_clients() {
    needs_root!();
    dual_stack(HttpMode::Cgroup).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dual_stack_server_is_counted_through_the_interface_filter() {
    needs_root!();
    dual_stack(HttpMode::Interface).await;
}

async fn dual_stack(mode: HttpMode) {
    let v6only = std::fs::read_to_string("/proc/sys/net/ipv6/bindv6only").unwrap_or_default();
    assert_eq!(
        v6only.trim(),
        "0",
        "net.ipv6.bindv6only is set: a socket on [::] would not take IPv4 clients"
    );
    let (port, server) = http_server_on("[::]:0", 2);
    let running = start_http_agent(port, mode).await;
    let mut v4 = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut v6 = TcpStream::connect(("::1", port)).unwrap();
    for s in [&v4, &v6] {
        s.set_nodelay(true).unwrap();
    }
    for _ in 0..6 {
        get(&mut v4, "/ok");
    }
    for _ in 0..4 {
        get(&mut v6, "/fail");
        get(&mut v6, "/missing/7");
    }
    drop((v4, v6));
    server.join().unwrap();
    let rows = http_rows(&running.store, 14).await;
    let _ = running.stop().await;
    let of = |server: String, route: &str| -> (i64, i64, i64) {
        rows.iter()
            .filter(|r| r.server == server && r.route == route)
            .fold((0, 0, 0), |a, r| {
                (a.0 + r.requests, a.1 + r.errors, a.2 + r.client_errors)
            })
    };
    assert_eq!(
        of(format!("127.0.0.1:{port}"), "/ok"),
        (6, 0, 0),
        "{rows:?}"
    );
    assert_eq!(of(format!("[::1]:{port}"), "/fail"), (4, 4, 0), "{rows:?}");
    assert_eq!(
        of(format!("[::1]:{port}"), "/missing/:id"),
        (4, 0, 4),
        "{rows:?}"
    );
    assert_eq!(rows.iter().map(|r| r.requests).sum::<i64>(), 14, "{rows:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_mix_gives_exact_counts_and_durations_within_tolerance() {
    needs_root!();
    http_mix(HttpMode::Cgroup).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_mix_through_the_interface_filter_gives_the_same_figures() {
    needs_root!();
    http_mix(HttpMode::Interface).await;
}

async fn http_mix(mode: HttpMode) {
    let (port, server) = http_server(4);
    let running = start_http_agent(port, mode).await;
    // 900 x 200, 80 x 404, 20 x 500 over 4 keep-alive connections.
    let mut plan: Vec<&str> = Vec::new();
    plan.extend(std::iter::repeat_n("/ok", 900));
    plan.extend(std::iter::repeat_n("/missing/17", 80));
    plan.extend(std::iter::repeat_n("/fail", 20));
    let chunks: Vec<Vec<&'static str>> = plan.chunks(250).map(|c| c.to_vec()).collect();
    let clients: Vec<_> = chunks
        .into_iter()
        .map(|paths| {
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
                s.set_nodelay(true).unwrap();
                for p in paths {
                    get(&mut s, p);
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    server.join().unwrap();
    // Wait for the agent to flush all 1000.
    let rows = http_rows(&running.store, 1000).await;
    let (store, _dir) = running.stop().await;
    let sum = |route: &str, f: fn(&sonde::store::HttpRedRow) -> i64| -> i64 {
        rows.iter().filter(|r| r.route == route).map(f).sum()
    };
    assert_eq!(sum("/ok", |r| r.requests), 900, "{rows:?}");
    assert_eq!(sum("/missing/:id", |r| r.requests), 80);
    assert_eq!(sum("/missing/:id", |r| r.client_errors), 80);
    assert_eq!(sum("/fail", |r| r.requests), 20);
    assert_eq!(sum("/fail", |r| r.errors), 20);
    assert_eq!(sum("/ok", |r| r.errors + r.client_errors), 0);
    assert!(
        rows.iter()
            .all(|r| r.server == format!("127.0.0.1:{port}") && r.method == "GET")
    );

    // Durations through the collectors query: mean and p50 near the server's delays.
    use sonde::bindings::sonde::probe::collectors::{
        Aggregate, AggregateOp, CollectorQuery, Value,
    };
    let q = CollectorQuery {
        collector: "http".into(),
        since: 0,
        until: None,
        filters: vec![],
        group_by: vec!["route".into()],
        aggregates: vec![
            Aggregate {
                op: AggregateOp::Count,
                field: None,
            },
            Aggregate {
                op: AggregateOp::Avg,
                field: Some("duration_ms".into()),
            },
            Aggregate {
                op: AggregateOp::P50,
                field: Some("duration_ms".into()),
            },
        ],
        limit: None,
    };
    let t = sonde::collectors::query::run(&store, &q, i64::MAX - 1)
        .await
        .unwrap();
    let find = |route: &str| {
        t.rows
            .iter()
            .find(|r| r[0] == Value::Text(route.into()))
            .unwrap_or_else(|| panic!("{route} in {:?}", t.rows))
            .clone()
    };
    let ms = |v: &Value| match v {
        Value::Float(f) => *f,
        other => panic!("{other:?}"),
    };
    for (route, delay, count) in [
        ("/ok", 2.0, 900),
        ("/missing/:id", 1.0, 80),
        ("/fail", 10.0, 20),
    ] {
        let r = find(route);
        assert_eq!(r[1], Value::Integer(count));
        let (avg, p50) = (ms(&r[2]), ms(&r[3]));
        // The server sleeps `delay`; the filter sees the request and the
        // status line on loopback: a little over the delay, never under.
        assert!(
            avg >= delay && avg < delay + 3.0,
            "{route}: avg {avg} ms for a {delay} ms delay"
        );
        assert!(
            p50 >= delay * 0.9 && p50 < delay * 1.1 + 3.0,
            "{route}: p50 {p50} ms for a {delay} ms delay"
        );
    }
}

/// A keep-alive HTTP/1.1 server (perl) that answers `/ok` with 200 and
/// anything else with 404, one connection at a time; prints its port.
const PERL_HTTP_SERVER: &str = r#"
use IO::Socket::INET;
my $l = IO::Socket::INET->new(LocalAddr => "127.0.0.1", LocalPort => 0, Listen => 16, ReuseAddr => 1) or die "listen: $!";
$| = 1;
print $l->sockport, "\n";
while (my $c = $l->accept) {
    my $buf = "";
    while (sysread($c, $buf, 4096, length $buf)) {
        while ($buf =~ s/^(.*?)\r\n\r\n//s) {
            my ($path) = $1 =~ /^\S+ (\S+)/;
            my $status = $path eq "/ok" ? "200 OK" : "404 Not Found";
            syswrite($c, "HTTP/1.1 $status\r\nContent-Length: 1\r\n\r\nx");
        }
    }
    close $c;
}
"#;

/// The cgroup programs see the sockets of the cgroup they are attached to
/// and of those below it, and each server's figures name the pod of its
/// socket's cgroup (a loopback address names no pod): a server in a
/// kubelet-shaped v2 cgroup below the watched folder is counted under its
/// pod; a server outside it, on a port also asked for, is not seen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cgroup_programs_watch_their_subtree_and_name_each_servers_pod() {
    needs_root!();
    let pod = PodCgroup::new_in(&cgroup_v2_mount(), None);
    let mut server = pod
        .command("exec perl -e \"$SONDE_SERVER\"")
        .env("SONDE_SERVER", PERL_HTTP_SERVER)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut port_line = String::new();
    {
        use std::io::BufRead;
        let out = server.stdout.as_mut().unwrap();
        std::io::BufReader::new(out)
            .read_line(&mut port_line)
            .unwrap();
    }
    let pod_port: u16 = port_line.trim().parse().unwrap();
    // A server in this process: outside the watched folder.
    let (outside_port, outside) = http_server(1);
    let running = start_agent(&["http"], &pod.pod_yaml("web", "api-0", "api"), |c| {
        c.http.cgroup = Some(pod.root.clone());
        c.http.ports = vec![pod_port, outside_port];
    })
    .await;
    let mut s = TcpStream::connect(("127.0.0.1", pod_port)).unwrap();
    s.set_nodelay(true).unwrap();
    for i in 0..40 {
        get(&mut s, if i % 4 == 3 { "/nope" } else { "/ok" });
    }
    drop(s);
    let mut o = TcpStream::connect(("127.0.0.1", outside_port)).unwrap();
    o.set_nodelay(true).unwrap();
    for _ in 0..10 {
        get(&mut o, "/ok");
    }
    drop(o);
    outside.join().unwrap();
    let rows = http_rows(&running.store, 40).await;
    // Give a wrongly counted outside request time to show up too.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rows_after = running.store.http_red(0, i64::MAX, 1000).await.unwrap();
    let _ = running.stop().await;
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(rows.iter().map(|r| r.requests).sum::<i64>(), 40, "{rows:?}");
    assert!(
        rows_after
            .iter()
            .all(|r| r.server == format!("127.0.0.1:{pod_port}")),
        "a server outside the watched cgroup was counted: {rows_after:?}"
    );
    for r in &rows_after {
        assert_eq!(
            (r.namespace.as_str(), r.pod.as_str()),
            ("web", "api-0"),
            "{r:?}"
        );
    }
    let of = |route: &str| -> (i64, i64) {
        rows_after
            .iter()
            .filter(|r| r.route == route)
            .fold((0, 0), |a, r| (a.0 + r.requests, a.1 + r.client_errors))
    };
    assert_eq!(of("/ok"), (30, 0), "{rows_after:?}");
    assert_eq!(of("/nope"), (10, 10), "{rows_after:?}");
}

#[test]
fn without_privilege_the_agent_starts_and_says_why_each_collector_is_unavailable() {
    if !is_root() {
        // Already unprivileged: run it as we are.
        eprintln!("(not root: checking the agent as this user)");
    }
    let dir = tempfile::tempdir().unwrap();
    // The unprivileged user must be able to write the store.
    Command::new("chmod")
        .arg("777")
        .arg(dir.path())
        .status()
        .unwrap();
    let store = dir.path().join("agent.db");
    let mut cmd = if is_root() {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
        ]);
        c.arg(sonde().get_program());
        c
    } else {
        Command::new(sonde().get_program())
    };
    let out = cmd
        .args(["agent", "--check", "--store"])
        .arg(&store)
        .env("SONDE_LOG", "warn")
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(4), "{stdout}\n{stderr}");
    for c in ["oom", "exec", "tcp", "listen", "http"] {
        let line = stdout
            .lines()
            .find(|l| l.contains(&format!(" {c} ")))
            .unwrap_or_else(|| panic!("{c} in {stdout}"));
        assert!(line.contains("unavailable"), "{line}");
        assert!(
            line.contains("no privilege to load eBPF programs"),
            "{line}"
        );
    }
    // The kernel's log is no eBPF program: where the kernel keeps it from
    // users (kernel.dmesg_restrict, 1 here), it says so.
    let restricted =
        std::fs::read_to_string("/proc/sys/kernel/dmesg_restrict").is_ok_and(|v| v.trim() == "1");
    let line = stdout
        .lines()
        .find(|l| l.contains(" kernel-log "))
        .unwrap_or_else(|| panic!("kernel-log in {stdout}"));
    if restricted {
        assert!(line.contains("unavailable"), "{line}");
        assert!(line.contains("cannot read /dev/kmsg: "), "{line}");
    }
}

/// `sonde serve` with the collectors in its own process: as root the ones
/// asked for run (and the node-signals probe runs over them); without
/// privilege they are reported unavailable and the daemon serves anyway.
#[test]
fn the_daemon_runs_the_collectors_in_process_or_says_why_not() {
    let s = crate::serve::Served::start(
        "listen: 127.0.0.1:0\ncluster: {snapshot: \"{cluster}\"}\nstore: {path: \"{dir}/s.db\"}\n\
         collectors: {mode: on, node: serve-node, collectors: [exec, oom]}\n\
         probes:\n  - {name: node-signals, schedule: \"0 0 0 1 1 *\"}\n",
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let collectors = loop {
        let c = s.get("/api/v1/collectors").json();
        let reported = c
            .as_array()
            .unwrap()
            .iter()
            .all(|c| !c["nodes"].as_array().unwrap().is_empty());
        if reported || Instant::now() > deadline {
            break c;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let node = |name: &str| -> serde_json::Value {
        let c = collectors
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap();
        assert_eq!(c["nodes"][0]["node"], "serve-node", "{c}");
        c["nodes"][0].clone()
    };
    assert_eq!(
        node("tcp")["reason"],
        "disabled in the agent's configuration"
    );
    if is_root() {
        assert_eq!(node("exec")["available"], true, "{collectors}");
        assert_eq!(node("oom")["available"], true);
    } else {
        let reason = node("exec")["reason"].as_str().unwrap().to_string();
        assert!(
            reason.starts_with("no privilege to load eBPF programs"),
            "{reason}"
        );
    }
    // The probe ran at start over the store's collector data (none yet).
    let run = loop {
        let runs = s.get("/api/v1/runs?probe=node-signals").json();
        let finished = runs["items"]
            .as_array()
            .and_then(|r| r.first())
            .filter(|r| r["status"] != "queued" && r["status"] != "running")
            .cloned();
        if let Some(r) = finished {
            break r;
        }
        assert!(
            Instant::now() < deadline,
            "node-signals did not run: {runs}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(run["status"], "succeeded", "{run}");
}
