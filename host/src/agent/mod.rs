//! `sonde agent`: the eBPF collectors of one node. It loads the programs
//! (`loader`), reads their ring buffers and the listen iterator, decodes the
//! records (`records`, `http`), reads the kernel's log for the problems
//! node-problem-detector knows (`kmsg`), attributes each event to its pod from the
//! cgroup identity the kernel captured at event time (`cgroups`, `pods`),
//! and writes batches with each collector's state to its `sink`.
//!
//! The boundary with the daemon is the store's [`CollectorBatch`]: in the
//! single-process demo the agent runs inside `sonde serve` and writes to its
//! store; on a cluster, one agent per node (a DaemonSet) sends the same
//! batches to the daemon's API (`sink`).

pub mod btf;
pub mod cgroups;
pub mod config;
pub mod http;
pub mod kmsg;
pub mod loader;
pub mod pods;
pub mod procfs;
pub mod records;
pub mod sink;
pub mod tracefs;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aya::maps::{MapData, RingBuf};
use serde_json::json;
use sonde_ebpf_common::{HttpRecord, HttpRedKey, ListenSample, drop_slot, http_shared};
use tokio::io::unix::AsyncFd;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

pub use config::{AgentConfig, Mode};
pub use sink::{DaemonSink, Sink, SinkError};

use crate::kube::KubeBackend;
use crate::store::{CollectorBatch, CollectorEventRow, CollectorStatusRow, HttpRedRow};
use records::{RawEvent, Source};

/// How often a reader drains its ring buffer when the programs did not
/// wake it (they wake it early once a ring is a quarter full).
const DRAIN_INTERVAL: Duration = Duration::from_millis(50);

/// Batches of items queued between the readers and the processor.
const READER_BATCHES: usize = 1024;

/// What the reader tasks hand to the processor.
enum Item {
    Event(RawEvent),
    /// From the HTTP reader, which pairs and sums the lines itself: how
    /// many records it read, and the minutes that changed.
    HttpMinutes {
        records: u64,
        minutes: Vec<(http::MinuteKey, http::Minute)>,
    },
    /// A record that did not decode (counted, logged once in a while).
    Undecodable(&'static str, String),
}

/// The collectors the agent knows, in the order they are reported: the
/// eBPF ones, then the kernel's log.
pub const COLLECTOR_NAMES: [&str; 6] = [
    loader::COLLECTOR_NAMES[0],
    loader::COLLECTOR_NAMES[1],
    loader::COLLECTOR_NAMES[2],
    loader::COLLECTOR_NAMES[3],
    loader::COLLECTOR_NAMES[4],
    kmsg::COLLECTOR,
];

/// A running agent.
pub struct Agent {
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
    status: Arc<Mutex<Vec<CollectorStatusRow>>>,
}

impl Agent {
    /// Loads the collectors and starts reading them into `sink`. A
    /// collector that cannot run is recorded unavailable. This fails only
    /// when the first status cannot be written to a store; a daemon that
    /// does not answer yet gets it at the first flush.
    pub async fn start(
        config: AgentConfig,
        sink: Sink,
        kube: Option<Arc<dyn KubeBackend>>,
    ) -> Result<Agent, SinkError> {
        let node = config.node_name();
        let opts = loader::LoadOptions {
            enabled: config.collectors.clone(),
            http_interface: config.http.interface.clone(),
            http_cgroup: config.http.cgroup.clone(),
            http_ports: config.http.ports.clone(),
            ring_bytes: BTreeMap::new(),
        };
        let enabled = opts.enabled.clone();
        let loaded = tokio::task::spawn_blocking(move || {
            loader::load(
                sonde_ebpf_artifacts::OBJECT,
                sonde_ebpf_artifacts::MISSING,
                &opts,
            )
        })
        .await
        .unwrap_or_else(|e| {
            // A panic in the loader (aya on a surprising kernel) costs the
            // collectors, not the process.
            loader::Loaded::none(&format!("loading the eBPF programs failed: {e}"), &enabled)
        });
        let started = now_ms();
        let kmsg_file = if enabled.iter().any(|c| c == kmsg::COLLECTOR) {
            kmsg::open()
        } else {
            Err(loader::DISABLED.to_string())
        };
        let kmsg_status = kmsg_file.as_ref().map(|_| ()).map_err(Clone::clone);
        let status: Vec<CollectorStatusRow> = COLLECTOR_NAMES
            .iter()
            .map(|name| {
                let s = if *name == kmsg::COLLECTOR {
                    &kmsg_status
                } else {
                    &loaded.status[name]
                };
                match s {
                    Ok(()) => tracing::info!(collector = name, "collector running"),
                    Err(why) => {
                        tracing::warn!(collector = name, reason = %why, "collector unavailable")
                    }
                }
                CollectorStatusRow {
                    node: node.clone(),
                    collector: name.to_string(),
                    available: s.is_ok(),
                    reason: s.as_ref().err().cloned(),
                    events: 0,
                    dropped: 0,
                    started_at_ms: started,
                    updated_at_ms: started,
                }
            })
            .collect();
        let mut first = CollectorBatch {
            status: status.clone(),
            ..Default::default()
        };
        // (The first flush writes the state again in any case.)
        match (sink.write(&mut first).await, &sink) {
            (Ok(()), _) => {}
            (Err(e), Sink::Daemon(_)) => {
                // The agent runs on: what it reads is kept and sent once the daemon takes it.
                tracing::warn!(error = %loader::chain(&e), "the daemon does not take this agent's data yet");
            }
            (Err(e), Sink::Store(_)) => return Err(e),
        }
        let status = Arc::new(Mutex::new(status));
        let (shutdown, shutdown_rx) = watch::channel(false);
        let (tx, rx) = mpsc::channel::<Vec<Item>>(READER_BATCHES);
        let mut tasks = JoinSet::new();
        let loader::Loaded {
            ebpf,
            process_events,
            tcp_events,
            http_events,
            http_maps,
            drops,
            tcp_formats,
            http_socket,
            status: load_status,
        } = loaded;
        let running = |n: &str| load_status.get(n).is_some_and(Result::is_ok);
        let tcp_formats = Arc::new(tcp_formats);
        if (running("oom") || running("exec"))
            && let Some(ring) = process_events
        {
            tasks.spawn(read_ring(
                ring,
                RingKind::Process,
                tx.clone(),
                shutdown_rx.clone(),
            ));
        }
        if running("tcp")
            && let Some(ring) = tcp_events
        {
            tasks.spawn(read_ring(
                ring,
                RingKind::Tcp(tcp_formats.clone()),
                tx.clone(),
                shutdown_rx.clone(),
            ));
        }
        if running("http")
            && let (Some(ring), Some(maps)) = (http_events, http_maps)
        {
            tasks.spawn(read_http_ring(
                ring,
                maps,
                tx.clone(),
                Duration::from_millis(config.http.report_interval_ms.max(1)),
                shutdown_rx.clone(),
            ));
        }
        if let Ok(file) = kmsg_file {
            let since_usec = u64::try_from(
                (clock_ns(libc::CLOCK_MONOTONIC) - kmsg::LOOKBACK.as_nanos() as i128).max(0) / 1000,
            )
            .unwrap_or(0);
            tasks.spawn(kmsg::read_kmsg(
                file,
                since_usec,
                tx.clone(),
                shutdown_rx.clone(),
            ));
        }
        // The listen sampler owns the programs (it re-attaches the
        // iterator); without it, a holder task keeps them loaded.
        let listen_interval = Duration::from_secs(config.listen_interval_seconds.max(1));
        {
            let tx = tx.clone();
            let mut rx_shutdown = shutdown_rx.clone();
            let listen = running("listen");
            tasks.spawn(async move {
                let mut ebpf = ebpf;
                let _socket = http_socket;
                let mut counters = ListenCounters::default();
                let mounts = cgroups::Mounts::discover();
                let mut tick = tokio::time::interval(listen_interval);
                loop {
                    tokio::select! {
                        _ = tick.tick() => {}
                        _ = rx_shutdown.changed() => break,
                    }
                    if !listen {
                        continue;
                    }
                    let Some(e) = ebpf.as_mut() else { continue };
                    let items = sample_listen(e, &mut counters, &mounts);
                    if !items.is_empty() && tx.send(items).await.is_err() {
                        return;
                    }
                }
                drop(ebpf);
            });
        }
        drop(tx);
        let processor = Processor {
            node: node.clone(),
            sink: sink.clone(),
            cgroups: cgroups::CgroupIndex::new(cgroups::Mounts::discover()),
            pods: pods::PodDirectory::new(kube),
            http: BTreeMap::new(),
            batch: CollectorBatch::default(),
            counts: BTreeMap::new(),
            drops,
            status: status.clone(),
            keep_states: config.tcp.states,
            undecodable: 0,
            write_failures: 0,
            status_written: None,
        };
        let flush = Duration::from_millis(config.flush_interval_ms.max(1));
        tasks.spawn(processor.run(rx, flush, shutdown_rx.clone()));
        let retention = Duration::from_secs(config.retention_days.max(1) * 86_400);
        // A daemon keeps its own retention of what agents send.
        if let Some(store) = sink.store().cloned() {
            let mut rx_shutdown = shutdown_rx;
            tasks.spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(3600));
                loop {
                    tokio::select! {
                        _ = tick.tick() => {}
                        _ = rx_shutdown.changed() => break,
                    }
                    let cutoff = now_ms() - retention.as_millis() as i64;
                    match store.delete_collector_data_before(cutoff).await {
                        Ok(n) if n > 0 => tracing::info!(rows = n, "old collector data deleted"),
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "collector retention failed"),
                    }
                }
            });
        }
        Ok(Agent {
            shutdown,
            tasks,
            status,
        })
    }

    /// Each collector's state as last written.
    pub fn status(&self) -> Vec<CollectorStatusRow> {
        self.status
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Stops reading, writes what was read, detaches the programs.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

pub(crate) fn clock_ns(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec to write into.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec)
}

/// Wall-clock minus boot-clock, in ns: `bpf_ktime_get_boot_ns() + this` is
/// the event's wall-clock time.
fn boot_offset_ns() -> i128 {
    clock_ns(libc::CLOCK_REALTIME) - clock_ns(libc::CLOCK_BOOTTIME)
}

/// Wall-clock minus the monotonic clock, in ns: the HTTP programs' clock
/// (`http_shared::CLOCK`), whose times are `bpf_ktime_get_ns()` and TCP's
/// own departure stamps, both CLOCK_MONOTONIC.
pub(crate) fn mono_offset_ns() -> i128 {
    clock_ns(libc::CLOCK_REALTIME) - clock_ns(libc::CLOCK_MONOTONIC)
}

/// Nanoseconds since boot, now.
pub fn boot_now_ns() -> u64 {
    clock_ns(libc::CLOCK_BOOTTIME) as u64
}

/// How a ring buffer's records become items.
#[derive(Clone)]
enum RingKind {
    /// OOM and exec records.
    Process,
    /// TCP records, decoded with the tracepoints' formats.
    Tcp(Arc<Option<records::TcpFormats>>),
}

fn item_of(kind: &RingKind, rec: &[u8]) -> Item {
    match kind {
        RingKind::Process => match records::decode(rec, None) {
            Ok(e) => Item::Event(e),
            Err(e) => Item::Undecodable("process ring buffer", e.to_string()),
        },
        RingKind::Tcp(formats) => match records::decode(rec, formats.as_ref().as_ref()) {
            Ok(e) => Item::Event(e),
            Err(e) => Item::Undecodable("tcp ring buffer", e.to_string()),
        },
    }
}

/// A ring buffer registered with the runtime, and the timer it is drained
/// on: the programs wake a reader only when a ring is filling up
/// (`wake_flags` in the eBPF programs), so a busy collector costs no
/// context switch per record.
fn poll_ring(ring: RingBuf<MapData>) -> Option<(AsyncFd<RingBuf<MapData>>, tokio::time::Interval)> {
    // SAFETY: the ring buffer owns its map fd, which stays open and the
    // same until the AsyncFd (which owns the ring buffer) is dropped.
    let fd = match unsafe { AsyncFd::register(ring) } {
        Ok(fd) => fd,
        Err(e) => {
            tracing::error!(error = %e, "cannot poll a ring buffer");
            return None;
        }
    };
    let mut drain = tokio::time::interval(DRAIN_INTERVAL);
    drain.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    Some((fd, drain))
}

async fn read_ring(
    ring: RingBuf<MapData>,
    kind: RingKind,
    tx: mpsc::Sender<Vec<Item>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let Some((mut fd, mut drain)) = poll_ring(ring) else {
        return;
    };
    loop {
        tokio::select! {
            g = fd.readable_mut() => match g {
                Ok(mut g) => g.clear_ready(),
                Err(_) => return,
            },
            _ = drain.tick() => {}
            _ = shutdown.changed() => return,
        }
        let ring = fd.get_mut();
        let mut items = Vec::new();
        while let Some(rec) = ring.next() {
            items.push(item_of(&kind, &rec));
        }
        if !items.is_empty() && tx.send(items).await.is_err() {
            return;
        }
    }
}

/// The HTTP collector's reader: names the routes the filter reports
/// (its ring buffer) and, every `report` interval, folds the filter's
/// per-minute sums (`HTTP_RED`) into the changed minutes it hands over;
/// entries of minutes that are over are removed from the kernel's map.
async fn read_http_ring(
    ring: RingBuf<MapData>,
    mut maps: loader::HttpMaps,
    tx: mpsc::Sender<Vec<Item>>,
    report: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    // Records are rare (one per new route): read on the report interval,
    // or when a quarter of the ring is waiting, not on the drain timer.
    let Some((mut fd, _)) = poll_ring(ring) else {
        return;
    };
    let mut red = http::Red::default();
    let mut generation = 0u64;
    let mut report = tokio::time::interval(report);
    report.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut short = 0u64;
    loop {
        let (send, last) = tokio::select! {
            g = fd.readable_mut() => match g {
                Ok(mut g) => {
                    g.clear_ready();
                    (false, false)
                }
                Err(_) => return,
            },
            _ = report.tick() => (true, false),
            _ = shutdown.changed() => (true, true),
        };
        let ring = fd.get_mut();
        while let Some(rec) = ring.next() {
            if rec.len() < std::mem::size_of::<HttpRecord>() {
                short += 1;
                if short.is_power_of_two() {
                    tracing::warn!(bytes = rec.len(), count = short, "undecodable HTTP record");
                }
                continue;
            }
            // SAFETY: HttpRecord is plain #[repr(C)] data, valid for any
            // bytes; the length is checked above.
            let r: HttpRecord = unsafe { std::ptr::read_unaligned(rec.as_ptr().cast()) };
            red.learn(&r);
        }
        if send {
            let offset = mono_offset_ns();
            if let Err(e) = maps.shared.set(http_shared::CLOCK, offset as u64, 0) {
                tracing::warn!(error = %loader::chain(&e), "cannot update the HTTP filter's clock");
            }
            // Each entry's CPUs' sums, added.
            let live: Vec<(HttpRedKey, http::Sums)> = maps
                .red
                .iter()
                .filter_map(Result::ok)
                .map(|(k, per_cpu)| (k, http::Sums::of_cpus(per_cpu.iter())))
                .collect();
            if red.routes() > http::MAX_ROUTES {
                let in_use: Vec<HttpRedKey> = live.iter().map(|(k, _)| *k).collect();
                red.forget_routes(&in_use);
                let reported: Vec<u64> = maps.routes.keys().filter_map(Result::ok).collect();
                for h in reported {
                    let _ = maps.routes.remove(&h);
                }
                // Connections that asked for a route before report it again.
                generation += 1;
                if let Err(e) = maps
                    .shared
                    .set(http_shared::ROUTES_GENERATION, generation, 0)
                {
                    tracing::warn!(error = %loader::chain(&e), "cannot renew the HTTP filter's routes");
                }
            }
            let now = now_ms();
            let folded = red.fold(&live, (now / 60_000) as u64);
            for (k, mk) in folded.done {
                if maps.red.remove(&k).is_ok()
                    && let Some((_, v)) = live.iter().find(|(l, _)| *l == k)
                {
                    red.retire(&k, mk, v);
                }
            }
            red.expire(now - 5 * 60_000);
            if (folded.new_requests > 0 || !folded.changed.is_empty())
                && tx
                    .send(vec![Item::HttpMinutes {
                        records: folded.new_requests,
                        minutes: folded.changed,
                    }])
                    .await
                    .is_err()
            {
                return;
            }
        }
        if last {
            return;
        }
    }
}

/// What the listen sampler keeps between passes: each network namespace's
/// ListenOverflows / ListenDrops counters when last read.
#[derive(Default)]
struct ListenCounters {
    by_netns: std::collections::HashMap<u64, (u64, u64)>,
    /// Whether a pass has run: namespaces seen in the first pass start from
    /// their counters then (their past is not reported); namespaces created
    /// later start from zero, as the kernel's counters did.
    started: bool,
}

impl ListenCounters {
    /// Takes a namespace's counters; what grew since the last pass, if any.
    fn advance(&mut self, netns: u64, now: (u64, u64)) -> Option<(u64, u64)> {
        let prev = match self.by_netns.insert(netns, now) {
            Some(prev) => prev,
            None if self.started => (0, 0),
            None => return None,
        };
        let grew = (now.0.saturating_sub(prev.0), now.1.saturating_sub(prev.1));
        (grew != (0, 0)).then_some(grew)
    }

    /// Ends a pass: namespaces not read in it are gone.
    fn end_pass(&mut self, seen: &std::collections::HashSet<u64>) {
        self.by_netns.retain(|ino, _| seen.contains(ino));
        self.started = true;
    }
}

/// One pass of the listen collector: the iterator's full queues in every
/// network namespace (each pod has its own; the kernel's iterator lists one
/// namespace's sockets), and each namespace's counters since the last pass.
fn sample_listen(
    ebpf: &mut aya::Ebpf,
    counters: &mut ListenCounters,
    mounts: &cgroups::Mounts,
) -> Vec<Item> {
    let mut out = Vec::new();
    let now_boot = boot_now_ns();
    let proc_root = std::path::Path::new("/proc");
    let own = procfs::netns_of(proc_root, std::process::id());
    let mut spaces = procfs::net_namespaces(proc_root);
    if let Some(own) = own {
        spaces.remove(&own);
    }
    // The agent's own namespace (the node's, for a host-network agent),
    // then every other one through a process in it.
    let mut passes = vec![(own.unwrap_or(0), loader::read_listen_iter(ebpf))];
    let files: Vec<(u64, std::fs::File)> = spaces
        .iter()
        .filter_map(|(&ino, &pid)| {
            std::fs::File::open(proc_root.join(pid.to_string()).join("ns/net"))
                .ok()
                .map(|f| (ino, f))
        })
        .collect();
    passes.extend(loader::read_listen_iter_in(ebpf, files));
    let mut samples: Vec<ListenSample> = Vec::new();
    for (ino, pass) in passes {
        match pass {
            Ok(bytes) => samples.extend(
                records::listen_samples(&bytes)
                    .into_iter()
                    .filter(|s| s.ack_backlog > 0),
            ),
            Err(e) => {
                let e = if Some(ino) == own {
                    e
                } else {
                    format!("network namespace {ino}: {e}")
                };
                out.push(Item::Undecodable("listen", e));
            }
        }
    }
    // Listeners opened before the agent have no recorded owner: /proc.
    let unknown: std::collections::HashSet<u64> = samples
        .iter()
        .filter(|s| s.owner.tgid == 0 && s.ino != 0)
        .map(|s| s.ino)
        .collect();
    let owners = procfs::socket_owners(proc_root, &unknown);
    // A namespace's pod, found through a process in it (not the agent's:
    // that one is the node's, shared by every host-network process).
    let mut netns_identity = std::collections::HashMap::new();
    let mut identity_of = |ino: u64| {
        *netns_identity.entry(ino).or_insert_with(|| {
            spaces
                .get(&ino)
                .map(|&pid| procfs::cgroup_identity(proc_root, pid, mounts))
        })
    };
    for s in &samples {
        let mut e = listen_event(s, now_boot);
        if s.owner.tgid == 0
            && let Some(&pid) = owners.get(&s.ino)
        {
            e.pid = Some(pid);
            e.comm = procfs::comm(proc_root, pid);
            e.identities.insert(
                0,
                (
                    Source::Process,
                    procfs::cgroup_identity(proc_root, pid, mounts),
                ),
            );
        }
        if let Some(id) = identity_of(u64::from(s.netns_ino)) {
            e.identities.push((Source::Netns, id));
        }
        out.push(Item::Event(e));
    }
    // The counters, namespace by namespace.
    let mut seen = std::collections::HashSet::new();
    let reads = own
        .map(|ino| (ino, proc_root.join("self/net/netstat")))
        .into_iter()
        .chain(
            spaces
                .iter()
                .map(|(&ino, &pid)| (ino, proc_root.join(pid.to_string()).join("net/netstat"))),
        );
    for (ino, path) in reads {
        let Some(now) = std::fs::read_to_string(&path)
            .ok()
            .as_deref()
            .and_then(records::netstat_listen_counters)
        else {
            continue;
        };
        seen.insert(ino);
        let Some((overflows, drops)) = counters.advance(ino, now) else {
            continue;
        };
        let mut fields = serde_json::Map::new();
        fields.insert("overflows".into(), json!(overflows));
        fields.insert("drops".into(), json!(drops));
        fields.insert("netns".into(), json!(ino));
        fields.insert("host_netns".into(), json!(Some(ino) == own));
        let identities = match identity_of(ino) {
            Some(id) if Some(ino) != own => vec![(Source::Netns, id)],
            _ => Vec::new(),
        };
        out.push(Item::Event(RawEvent {
            boot_ns: now_boot,
            collector: "listen",
            kind: "overflow".into(),
            pid: None,
            comm: None,
            identities,
            fields,
        }));
    }
    counters.end_pass(&seen);
    out
}

fn listen_event(s: &ListenSample, boot_ns: u64) -> RawEvent {
    let mut fields = serde_json::Map::new();
    fields.insert("port".into(), json!(s.port));
    fields.insert("addr".into(), json!(records::listen_addr(s)));
    fields.insert("netns".into(), json!(s.netns_ino));
    fields.insert("backlog".into(), json!(s.ack_backlog));
    fields.insert("max_backlog".into(), json!(s.max_ack_backlog));
    // The kernel's own test (sk_acceptq_is_full): the next connection overflows.
    fields.insert("full".into(), json!(s.ack_backlog > s.max_ack_backlog));
    let mut identities = Vec::new();
    if s.owner.tgid != 0 {
        identities.push((Source::SocketOwner, s.owner.cgroups));
    }
    if s.sock_cgroup_v2 != 0 {
        identities.push((
            Source::SockCgroup,
            sonde_ebpf_common::CgroupIdentity {
                v2_id: s.sock_cgroup_v2,
                memcg_v1_ino: 0,
            },
        ));
    }
    RawEvent {
        boot_ns,
        collector: "listen",
        kind: "queue".into(),
        pid: (s.owner.tgid != 0).then_some(s.owner.tgid),
        comm: (s.owner.tgid != 0).then(|| records::c_string(&s.owner.comm)),
        identities,
        fields,
    }
}

/// Attributes, batches and writes.
struct Processor {
    node: String,
    sink: Sink,
    cgroups: cgroups::CgroupIndex,
    pods: pods::PodDirectory,
    /// HTTP minutes changed since the last flush (the newest totals).
    http: BTreeMap<http::MinuteKey, http::Minute>,
    batch: CollectorBatch,
    /// Events delivered per collector since start.
    counts: BTreeMap<String, i64>,
    drops: Option<aya::maps::PerCpuArray<MapData, u64>>,
    status: Arc<Mutex<Vec<CollectorStatusRow>>>,
    keep_states: bool,
    undecodable: u64,
    /// Flushes in a row whose write failed (logged at the 1st, 2nd, 4th,
    /// ...: a daemon down for an hour is not 3,600 lines).
    write_failures: u64,
    /// When the collectors' status was last written, and the counts
    /// (events, dropped) it said: an unchanged status is written again
    /// only as a heartbeat (`STATUS_HEARTBEAT_MS`), not at every flush.
    status_written: Option<(i64, Vec<(i64, i64)>)>,
}

/// How often an agent with nothing new still writes its collectors'
/// status (their `updated_at`): an idle node's agent writes to the store
/// this often, not at every flush.
const STATUS_HEARTBEAT_MS: i64 = 30_000;

/// Whether the collectors' status, now with `counts` (events, dropped per
/// collector), is to be written at `now` (ms), given when and with what
/// counts it was `written` last: when never written, when the counts
/// changed, or as the heartbeat.
fn status_due(written: Option<&(i64, Vec<(i64, i64)>)>, counts: &[(i64, i64)], now: i64) -> bool {
    match written {
        Some((at, was)) => was.as_slice() != counts || now - at >= STATUS_HEARTBEAT_MS,
        None => true,
    }
}

impl Processor {
    async fn run(
        mut self,
        mut rx: mpsc::Receiver<Vec<Item>>,
        flush: Duration,
        mut shutdown: watch::Receiver<bool>,
    ) {
        self.pods.refresh().await;
        let mut tick = tokio::time::interval(flush);
        let mut offset = boot_offset_ns();
        loop {
            tokio::select! {
                items = rx.recv() => match items {
                    Some(items) => {
                        for item in items {
                            self.take(item, offset).await;
                        }
                    }
                    None => break,
                },
                _ = tick.tick() => {
                    offset = boot_offset_ns();
                    self.flush().await;
                }
                _ = shutdown.changed() => {
                    // Take what the readers hand over as they stop (each
                    // drops its sender), for a short while at most.
                    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
                    while let Ok(Some(items)) = tokio::time::timeout_at(deadline, rx.recv()).await {
                        for item in items {
                            self.take(item, offset).await;
                        }
                    }
                    break;
                }
            }
        }
        self.flush().await;
    }

    async fn take(&mut self, item: Item, offset: i128) {
        match item {
            Item::Event(e) => {
                *self.counts.entry(e.collector.to_string()).or_default() += 1;
                if e.collector == "tcp" && e.kind == "state" && !self.keep_states {
                    return;
                }
                let row = self.attribute(e, offset).await;
                self.batch.events.push(row);
                if self.batch.events.len() >= 5_000 {
                    self.flush().await;
                }
            }
            Item::HttpMinutes { records, minutes } => {
                *self.counts.entry("http".into()).or_default() += records as i64;
                self.http.extend(minutes);
            }
            Item::Undecodable(what, why) => {
                self.undecodable += 1;
                if self.undecodable.is_power_of_two() {
                    tracing::warn!(source = what, error = %why, count = self.undecodable, "undecodable collector record");
                }
            }
        }
    }

    async fn attribute(&mut self, e: RawEvent, offset: i128) -> CollectorEventRow {
        let ts_ms = ((i128::from(e.boot_ns) + offset) / 1_000_000) as i64;
        let mut cgroup = None;
        let mut pod = None;
        let mut how = None;
        for (source, ids) in &e.identities {
            let (path, found) = self.cgroups.pod_of(ids.v2_id, ids.memcg_v1_ino);
            if cgroup.is_none() {
                cgroup = path.clone();
            }
            if let Some(found) = found {
                cgroup = path;
                pod = Some(found);
                how = Some(*source);
                break;
            }
        }
        let mut fields = e.fields;
        if (e.collector == "tcp" || e.collector == "listen")
            && let Some(how) = how
        {
            fields.insert("owner".into(), json!(how.as_str()));
        }
        if how == Some(Source::Netns)
            && let Some(p) = &mut pod
        {
            // Found through whichever process was in the pod's network
            // namespace: the pod's, not that process's container's.
            p.container_id = None;
        }
        let (mut namespace, mut name, mut container) = (None, None, None);
        if let Some(p) = &pod
            && let Some(info) = self.pods.by_uid(&p.pod_uid).await
        {
            namespace = Some(info.namespace.clone());
            name = Some(info.name.clone());
            container = p
                .container_id
                .as_ref()
                .and_then(|id| info.containers.get(id).cloned());
        }
        CollectorEventRow {
            ts_ms,
            node: self.node.clone(),
            collector: e.collector.to_string(),
            kind: e.kind,
            namespace,
            pod: name,
            container,
            pod_uid: pod.as_ref().map(|p| p.pod_uid.clone()),
            container_id: pod.and_then(|p| p.container_id),
            cgroup,
            pid: e.pid.map(i64::from),
            comm: e.comm,
            fields,
        }
    }

    async fn flush(&mut self) {
        let now = now_ms();
        for ((minute, server, cgroup, method, route), m) in std::mem::take(&mut self.http) {
            // The server socket's cgroup names its pod (host-network pods
            // too); else the server's address.
            let by_cgroup = match cgroup {
                0 => None,
                id => match self.cgroups.pod_of(id, 0).1 {
                    Some(p) => self.pods.by_uid(&p.pod_uid).await,
                    None => None,
                },
            };
            let (namespace, pod) = by_cgroup
                .or_else(|| self.pods.by_ip(server.0))
                .map(|p| (p.namespace.clone(), p.name.clone()))
                .unwrap_or_default();
            self.batch.http.push(HttpRedRow {
                minute_ms: minute,
                node: self.node.clone(),
                namespace,
                pod,
                server: std::net::SocketAddr::from(server).to_string(),
                method: method.to_string(),
                route: route.to_string(),
                requests: m.requests,
                errors: m.errors,
                client_errors: m.client_errors,
                duration_sum_us: m.sum_us,
                duration_max_us: m.max_us,
                buckets: m.buckets,
            });
        }
        let drops = self.drops.as_ref().map(loader::read_drops);
        {
            let mut status = self
                .status
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for s in status.iter_mut() {
                s.events = self.counts.get(&s.collector).copied().unwrap_or(0);
                if let Some(d) = &drops {
                    s.dropped = match s.collector.as_str() {
                        "oom" => d[drop_slot::OOM as usize],
                        "exec" => d[drop_slot::EXEC as usize],
                        "tcp" => d[drop_slot::TCP as usize],
                        "http" => d[drop_slot::HTTP as usize],
                        _ => 0,
                    } as i64;
                }
            }
            let counts: Vec<(i64, i64)> = status.iter().map(|s| (s.events, s.dropped)).collect();
            let write_status = status_due(self.status_written.as_ref(), &counts, now);
            if !write_status && self.batch.events.is_empty() && self.batch.http.is_empty() {
                // Nothing new: no store write.
                return;
            }
            for s in status.iter_mut() {
                s.updated_at_ms = now;
            }
            self.status_written = Some((now, counts));
            self.batch.status = status.clone();
        }
        let mut batch = std::mem::take(&mut self.batch);
        let written = self.sink.write(&mut batch).await;
        if written.is_ok() && self.write_failures > 0 {
            tracing::info!(
                failures = self.write_failures,
                "writing collector data works again"
            );
            self.write_failures = 0;
        }
        if let Err(e) = written {
            self.write_failures += 1;
            if self.write_failures.is_power_of_two() {
                tracing::error!(error = %loader::chain(&e), events = batch.events.len(), failures = self.write_failures, "writing collector data failed; what was not written is kept for the next flush");
            }
            // The status too: written again at the next flush.
            self.status_written = None;
            // Keep the events (bounded) for the next attempt.
            if batch.events.len() < 100_000 {
                self.batch = batch;
            } else {
                tracing::error!(
                    events = batch.events.len(),
                    "collector data dropped: too much kept through failed writes"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn the_status_is_written_when_it_changes_or_as_a_heartbeat() {
        let counts = vec![(5, 0), (0, 0)];
        // Never written: now.
        assert!(status_due(None, &counts, 1_000));
        let written = (1_000, counts.clone());
        // The same counts: not before the heartbeat is due.
        assert!(!status_due(Some(&written), &counts, 2_000));
        assert!(!status_due(
            Some(&written),
            &counts,
            1_000 + STATUS_HEARTBEAT_MS - 1
        ));
        assert!(status_due(
            Some(&written),
            &counts,
            1_000 + STATUS_HEARTBEAT_MS
        ));
        // A count that moved (events or drops): at once.
        assert!(status_due(Some(&written), &[(6, 0), (0, 0)], 1_001));
        assert!(status_due(Some(&written), &[(5, 0), (0, 1)], 1_001));
    }

    #[test]
    fn listen_counters_report_growth_per_namespace_from_the_first_pass_on() {
        let mut c = ListenCounters::default();
        // First pass: namespaces that exist now start from their counters.
        assert_eq!(c.advance(1, (10, 12)), None);
        assert_eq!(c.advance(2, (0, 0)), None);
        c.end_pass(&HashSet::from([1, 2]));
        // Growth in one namespace only; a namespace created since starts
        // from zero, as the kernel's counters did.
        assert_eq!(c.advance(1, (13, 16)), Some((3, 4)));
        assert_eq!(c.advance(2, (0, 0)), None);
        assert_eq!(c.advance(3, (2, 2)), Some((2, 2)));
        c.end_pass(&HashSet::from([1, 3]));
        // Namespace 2 is gone; should its inode come back, it is a new one.
        assert!(!c.by_netns.contains_key(&2));
        assert_eq!(c.advance(2, (1, 0)), Some((1, 0)));
        // Counters never run backwards into a huge delta.
        assert_eq!(c.advance(1, (5, 5)), None);
    }
}
