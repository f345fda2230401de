//! Loading the collector programs into the kernel and attaching them, one
//! collector at a time: a collector whose program cannot load or attach is
//! recorded unavailable with the reason (no privilege, no BTF, a tracepoint
//! this kernel lacks, a verifier refusal), and the others go on.

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use aya::maps::{Array, HashMap, MapData, PerCpuArray, PerCpuHashMap, RingBuf};
use aya::programs::{
    CgroupAttachMode, CgroupSkb, CgroupSkbAttachType, Iter, RawTracePoint, SocketFilter, TracePoint,
};
use aya::{Btf, Ebpf, EbpfLoader};
use sonde_ebpf_common::{
    HTTP_BOUNDS_LEN, HttpFilterConfig, HttpRedKey, HttpRedValue, TcpTracepoint, http_shared,
};

use super::btf::{KernelTypes, kernel_offsets};
use super::cgroups::Mounts;
use super::records::TcpFormats;
use super::tracefs::{self, Format};

/// The reason of a collector the configuration turned off.
pub const DISABLED: &str = "disabled in the agent's configuration";

/// The collectors the agent knows, in the order they are reported.
pub const COLLECTOR_NAMES: [&str; 5] = ["oom", "exec", "tcp", "listen", "http"];

/// What to load.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Collectors to run (others are reported as disabled).
    pub enabled: Vec<String>,
    /// The interface the HTTP socket filter listens on; none: the cgroup
    /// programs instead.
    pub http_interface: Option<String>,
    /// The cgroup v2 folder the HTTP cgroup programs attach to (every
    /// socket in it and below); none: the kubelet's pods folder when the
    /// node has one, else the cgroup v2 root (`http_cgroup_default`).
    pub http_cgroup: Option<PathBuf>,
    /// TCP ports the HTTP programs keep (empty: all).
    pub http_ports: Vec<u16>,
    /// Ring buffer sizes in bytes (powers of two, multiples of the page
    /// size), overriding the programs' own.
    pub ring_bytes: BTreeMap<&'static str, u32>,
}

/// The maps the HTTP filter sums requests in (see `http::Red`).
pub struct HttpMaps {
    /// Per minute, route and server, per CPU.
    pub red: PerCpuHashMap<MapData, HttpRedKey, HttpRedValue>,
    /// The clock (wall-clock minus boot time, ns) and the routes'
    /// generation (`http_shared`), kept by the reader.
    pub shared: Array<MapData, u64>,
    /// The routes the filter has reported (cleared with the reader's names).
    pub routes: HashMap<MapData, u64, u8>,
}

/// The programs in the kernel and what the agent reads them through.
pub struct Loaded {
    /// Owns the programs and their links: dropping it detaches everything.
    pub ebpf: Option<Ebpf>,
    pub process_events: Option<RingBuf<MapData>>,
    pub tcp_events: Option<RingBuf<MapData>>,
    pub http_events: Option<RingBuf<MapData>>,
    /// The HTTP filter's sums, clock and reported routes.
    pub http_maps: Option<HttpMaps>,
    pub drops: Option<PerCpuArray<MapData, u64>>,
    pub tcp_formats: Option<TcpFormats>,
    /// The packet socket the HTTP filter is attached to (interface mode;
    /// the cgroup programs' links are owned by `ebpf`).
    pub http_socket: Option<OwnedFd>,
    /// Per collector: running, or why not.
    pub status: BTreeMap<&'static str, Result<(), String>>,
}

impl Loaded {
    /// Nothing loaded: every enabled collector unavailable for `reason`.
    pub fn none(reason: &str, enabled: &[String]) -> Self {
        let mut status = BTreeMap::new();
        for name in COLLECTOR_NAMES {
            status.insert(name, Err(disabled_or(name, enabled, reason)));
        }
        Loaded {
            ebpf: None,
            process_events: None,
            tcp_events: None,
            http_events: None,
            http_maps: None,
            drops: None,
            tcp_formats: None,
            http_socket: None,
            status,
        }
    }

    pub fn running(&self, name: &str) -> bool {
        self.status.get(name).is_some_and(Result::is_ok)
    }
}

fn disabled_or(name: &str, enabled: &[String], reason: &str) -> String {
    if enabled.iter().any(|e| e == name) {
        reason.to_string()
    } else {
        DISABLED.to_string()
    }
}

/// Whether this process may load BPF programs: root, or CAP_BPF with
/// CAP_PERFMON (or CAP_SYS_ADMIN), from `/proc/self/status`.
pub fn privilege() -> Result<(), String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    const CAP_SYS_ADMIN: u64 = 21;
    const CAP_PERFMON: u64 = 38;
    const CAP_BPF: u64 = 39;
    let has = |c: u64| eff & (1 << c) != 0;
    if has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON)) {
        Ok(())
    } else {
        // SAFETY: no preconditions.
        let uid = unsafe { libc::geteuid() };
        Err(format!(
            "no privilege to load eBPF programs: the agent runs as uid {uid} without CAP_BPF and \
             CAP_PERFMON (or CAP_SYS_ADMIN); run it as root or grant those capabilities"
        ))
    }
}

/// Loads and attaches what `opts` enables. Never fails: every problem
/// becomes a collector's reason.
pub fn load(object: &[u8], missing: Option<&str>, opts: &LoadOptions) -> Loaded {
    if let Some(why) = missing {
        return Loaded::none(why, &opts.enabled);
    }
    if let Err(why) = privilege() {
        return Loaded::none(&why, &opts.enabled);
    }
    let types = match KernelTypes::load() {
        Ok(t) => t,
        Err(e) => return Loaded::none(&e.to_string(), &opts.enabled),
    };
    let mounts = Mounts::discover();
    let mut offsets = match kernel_offsets(&types, mounts.memory_v1.is_some()) {
        Ok(o) => o,
        Err(e) => {
            return Loaded::none(
                &format!("cannot place the programs' kernel reads: {e}"),
                &opts.enabled,
            );
        }
    };
    // TCP records are decoded with tracefs' formats; set_state is read in
    // the kernel at fixed places, checked here.
    let tcp_formats: Result<TcpFormats, String> = tracefs::ensure_mounted()
        .map_err(|e| e.to_string())
        .and_then(|root| {
            let mut formats: Vec<Format> = Vec::new();
            for tp in TcpTracepoint::ALL {
                let (cat, name) = tp.path();
                let f = Format::read(&root, cat, name).map_err(|e| e.to_string())?;
                let sk = f.field("skaddr").map_err(|e| e.to_string())?;
                offsets.tp_skaddr[tp as usize] = sk.offset as u32;
                formats.push(f);
            }
            let ss = &formats[0];
            for (field, off, size) in [
                ("skaddr", 8, 8),
                ("oldstate", 16, 4),
                ("newstate", 20, 4),
                ("protocol", 30, 2),
            ] {
                ss.expect(field, off, size).map_err(|e| e.to_string())?;
            }
            Ok(formats.try_into().expect("four formats"))
        });
    offsets.tcp_records = u32::from(opts.enabled.iter().any(|e| e == "tcp"));
    let mut http_config = HttpFilterConfig::default();
    for (slot, port) in http_config.ports.iter_mut().zip(&opts.http_ports) {
        *slot = *port;
    }
    http_config.port_count = opts.http_ports.len().min(http_config.ports.len()) as u32;
    http_config.drop_outgoing = u32::from(opts.http_interface.as_deref() == Some("lo"));

    let bounds = http_bounds();
    let mut loader = EbpfLoader::new();
    loader
        .override_global("OFFSETS", &offsets, true)
        .override_global("HTTP_CONFIG", &http_config, true)
        .override_global("HTTP_BOUNDS", &bounds, true);
    for (map, bytes) in &opts.ring_bytes {
        loader.map_max_entries(map, *bytes);
    }
    let mut ebpf = match loader.load(object) {
        Ok(e) => e,
        Err(e) => {
            return Loaded::none(
                &format!("loading the eBPF object failed: {}", chain(&e)),
                &opts.enabled,
            );
        }
    };
    let mut status: BTreeMap<&'static str, Result<(), String>> = BTreeMap::new();
    let enabled = |name: &str| opts.enabled.iter().any(|e| e == name);
    for name in COLLECTOR_NAMES {
        if !enabled(name) {
            status.insert(name, Err(DISABLED.into()));
            continue;
        }
        let result = match name {
            "oom" => {
                // Linux 6.8 passes the victim task; older kernels only its pid.
                if !types.has_type("btf_trace_mark_victim") {
                    Err("the kernel has no oom:mark_victim tracepoint".to_string())
                } else {
                    raw_tp(&mut ebpf, "oom_mark_victim", "mark_victim")
                }
            }
            "exec" => raw_tp(&mut ebpf, "sched_process_exec", "sched_process_exec"),
            "tcp" => match &tcp_formats {
                Err(e) => Err(e.clone()),
                Ok(_) => TcpTracepoint::ALL.iter().try_for_each(|tp| {
                    let (cat, tp_name) = tp.path();
                    let prog = match *tp {
                        TcpTracepoint::SetState => "inet_sock_set_state",
                        TcpTracepoint::Retransmit => "tcp_retransmit_skb",
                        TcpTracepoint::SendReset => "tcp_send_reset",
                        TcpTracepoint::ReceiveReset => "tcp_receive_reset",
                    };
                    tracepoint(&mut ebpf, prog, cat, tp_name)
                }),
            },
            "listen" => load_iter(&mut ebpf).map(|()| {
                // Listening sockets' owners are recorded by set_state at
                // listen(); attach it unless the tcp collector did. Without
                // it, owners are looked up in /proc.
                let tcp_on = status.get("tcp").is_some_and(Result::is_ok);
                if !tcp_on {
                    let attached = match &tcp_formats {
                        Ok(_) => tracepoint(&mut ebpf, "inet_sock_set_state", "sock", "inet_sock_set_state"),
                        Err(e) => Err(e.clone()),
                    };
                    if let Err(e) = attached {
                        tracing::warn!(error = %e, "listen: socket owners will come from /proc only");
                    }
                }
            }),
            // Attached below, once the clock is set.
            "http" => Ok(()),
            _ => unreachable!("every collector is matched"),
        };
        status.insert(name, result);
    }
    let mut http_socket = None;
    if let Some(Ok(())) = status.get("http") {
        let attached = set_http_clock(&mut ebpf).and_then(|()| match &opts.http_interface {
            Some(iface) => attach_http(&mut ebpf, iface).map(|fd| http_socket = Some(fd)),
            None => match opts
                .http_cgroup
                .clone()
                .or_else(|| mounts.v2.as_deref().map(http_cgroup_default))
            {
                Some(cgroup) => attach_http_cgroup(&mut ebpf, &cgroup).inspect(|()| {
                    tracing::info!(cgroup = %cgroup.display(), "http: programs on the sockets of this cgroup and below");
                }),
                None => Err(
                    "no cgroup v2 hierarchy is mounted for the HTTP collector's \
                     cgroup programs (mount one, or set http.interface)"
                        .to_string(),
                ),
            },
        });
        if let Err(e) = attached {
            status.insert("http", Err(e));
        }
    }
    let ring = |ebpf: &mut Ebpf, name: &str| -> Option<RingBuf<MapData>> {
        ebpf.take_map(name).and_then(|m| RingBuf::try_from(m).ok())
    };
    let process_events = ring(&mut ebpf, "PROCESS_EVENTS");
    let tcp_events = ring(&mut ebpf, "TCP_EVENTS");
    let http_events = ring(&mut ebpf, "HTTP_EVENTS");
    let http_maps = (|| {
        Some(HttpMaps {
            red: PerCpuHashMap::try_from(ebpf.take_map("HTTP_RED")?).ok()?,
            shared: Array::try_from(ebpf.take_map("HTTP_SHARED")?).ok()?,
            routes: HashMap::try_from(ebpf.take_map("HTTP_ROUTES")?).ok()?,
        })
    })();
    let drops = ebpf
        .take_map("DROPS")
        .and_then(|m| PerCpuArray::try_from(m).ok());
    Loaded {
        ebpf: Some(ebpf),
        process_events,
        tcp_events,
        http_events,
        http_maps,
        drops,
        tcp_formats: tcp_formats.ok(),
        http_socket,
        status,
    }
}

/// An error with its causes, on one line; a verifier log is cut to its
/// last lines (where the verifier says what it refused).
pub fn chain(e: &dyn std::error::Error) -> String {
    shorten_verifier_log(&crate::errors::chain(e))
}

fn shorten_verifier_log(text: &str) -> String {
    const MARK: &str = "Verifier output:";
    let Some(i) = text.find(MARK) else {
        return text.to_string();
    };
    let log: Vec<&str> = text[i + MARK.len()..]
        .lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty()
                && !l.starts_with("verification time")
                && !l.starts_with("stack depth")
                && !l.starts_with("processed ")
        })
        .collect();
    let tail = &log[log.len().saturating_sub(3)..];
    format!(
        "{} verifier (last lines): {}",
        text[..i].trim_end(),
        tail.join(" | ")
    )
}

fn program<'a, T>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut T, String>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    let prog = ebpf
        .program_mut(name)
        .ok_or_else(|| format!("the eBPF object has no program {name}"))?;
    prog.try_into()
        .map_err(|e: aya::programs::ProgramError| format!("program {name}: {}", chain(&e)))
}

fn raw_tp(ebpf: &mut Ebpf, prog: &str, tp: &str) -> Result<(), String> {
    let p: &mut RawTracePoint = program(ebpf, prog)?;
    p.load()
        .map_err(|e| format!("loading {prog} failed: {}", chain(&e)))?;
    p.attach(tp).map_err(|e| {
        format!(
            "attaching {prog} to raw tracepoint {tp} failed: {}",
            chain(&e)
        )
    })?;
    Ok(())
}

fn tracepoint(ebpf: &mut Ebpf, prog: &str, category: &str, name: &str) -> Result<(), String> {
    let p: &mut TracePoint = program(ebpf, prog)?;
    p.load()
        .map_err(|e| format!("loading {prog} failed: {}", chain(&e)))?;
    p.attach(category, name).map_err(|e| {
        format!(
            "attaching {prog} to tracepoint {category}/{name} failed: {}",
            chain(&e)
        )
    })?;
    Ok(())
}

fn load_iter(ebpf: &mut Ebpf) -> Result<(), String> {
    let btf = Btf::from_sys_fs().map_err(|e| format!("reading the kernel's BTF: {}", chain(&e)))?;
    let p: &mut Iter = program(ebpf, "listen_sockets")?;
    p.load("tcp", &btf)
        .map_err(|e| format!("loading the iter/tcp program failed: {}", chain(&e)))
}

/// One pass of the listen iterator in the agent's network namespace: its
/// raw output.
pub fn read_listen_iter(ebpf: &mut Ebpf) -> Result<Vec<u8>, String> {
    read_iter(listen_link(ebpf)?)
}

/// One pass of the listen iterator in each of `namespaces` (network
/// namespace inode and its `/proc/<pid>/ns/net` file), in order.
///
/// The kernel's tcp iterator lists the sockets of one network namespace:
/// the one its reader was created in. So each reader is created by a thread
/// that entered that namespace first (a thread of its own: the agent's
/// other threads stay where they are).
pub fn read_listen_iter_in(
    ebpf: &mut Ebpf,
    namespaces: Vec<(u64, std::fs::File)>,
) -> Vec<(u64, Result<Vec<u8>, String>)> {
    let mut work = Vec::new();
    let mut out = Vec::new();
    for (ino, file) in namespaces {
        match listen_link(ebpf) {
            Ok(link) => work.push((ino, file, link)),
            Err(e) => out.push((ino, Err(e))),
        }
    }
    if work.is_empty() {
        return out;
    }
    let read = std::thread::Builder::new()
        .name("sonde-netns".into())
        .spawn(move || {
            work.into_iter()
                .map(|(ino, file, link)| {
                    // SAFETY: setns on a valid namespace file; it moves this
                    // thread only.
                    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                        let e = std::io::Error::last_os_error();
                        return (ino, Err(format!("entering network namespace {ino}: {e}")));
                    }
                    (ino, read_iter(link))
                })
                .collect::<Vec<_>>()
        })
        .map_err(|e| format!("starting the network-namespace reader: {e}"))
        .and_then(|t| {
            t.join()
                .map_err(|_| "the network-namespace reader panicked".to_string())
        });
    match read {
        Ok(results) => out.extend(results),
        Err(e) => out.push((0, Err(e))),
    }
    out
}

fn listen_link(ebpf: &mut Ebpf) -> Result<aya::programs::iter::IterLink, String> {
    let p: &mut Iter = program(ebpf, "listen_sockets")?;
    let id = p
        .attach()
        .map_err(|e| format!("attaching iter/tcp: {}", chain(&e)))?;
    p.take_link(id)
        .map_err(|e| format!("iter/tcp link: {}", chain(&e)))
}

fn read_iter(link: aya::programs::iter::IterLink) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let mut file = link
        .into_file()
        .map_err(|e| format!("creating the iter/tcp reader: {}", chain(&e)))?;
    let mut out = Vec::new();
    file.read_to_end(&mut out)
        .map_err(|e| format!("reading iter/tcp: {e}"))?;
    Ok(out)
}

/// A packet socket bound to `iface` with the HTTP filter attached.
/// The histogram boundaries the filter sorts durations into: the ones the
/// collectors' queries read buckets with.
fn http_bounds() -> [u64; HTTP_BOUNDS_LEN] {
    let mut bounds = [u64::MAX; HTTP_BOUNDS_LEN];
    for (slot, b) in bounds
        .iter_mut()
        .zip(crate::collectors::duration_buckets_us())
    {
        *slot = *b;
    }
    bounds
}

/// Sets the filter's clock (wall-clock minus boot time) before it sees a
/// packet: the minute a response counts in is read from it.
fn set_http_clock(ebpf: &mut Ebpf) -> Result<(), String> {
    let map = ebpf
        .map_mut("HTTP_SHARED")
        .ok_or("the eBPF object has no HTTP_SHARED map")?;
    let mut shared: Array<&mut MapData, u64> =
        Array::try_from(map).map_err(|e| format!("HTTP_SHARED: {}", chain(&e)))?;
    shared
        .set(http_shared::CLOCK, super::mono_offset_ns() as u64, 0)
        .map_err(|e| format!("setting the HTTP filter's clock: {}", chain(&e)))
}

fn attach_http(ebpf: &mut Ebpf, iface: &str) -> Result<OwnedFd, String> {
    let c_iface = std::ffi::CString::new(iface).map_err(|_| format!("bad interface {iface:?}"))?;
    // SAFETY: a valid NUL-terminated name.
    let index = unsafe { libc::if_nametoindex(c_iface.as_ptr()) };
    if index == 0 {
        return Err(format!(
            "the HTTP filter's interface {iface:?} does not exist"
        ));
    }
    let proto = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: plain socket creation; the fd is owned below.
    let raw = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            i32::from(proto),
        )
    };
    if raw < 0 {
        return Err(format!(
            "opening a packet socket for the HTTP filter failed: {} (needs CAP_NET_RAW)",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: raw is a new, valid fd that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    if iface == "lo" {
        // On loopback every segment is sent and received: seeing it once is
        // enough, and the kernel then does not clone each sent packet for
        // this socket. Before Linux 4.20 the option is missing and the
        // filter drops sent packets itself (`drop_outgoing`).
        const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
        let one: libc::c_int = 1;
        // SAFETY: a valid socket and an int option of the size given.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_PACKET,
                PACKET_IGNORE_OUTGOING,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as u32,
            )
        };
        if rc != 0 {
            tracing::debug!(error = %std::io::Error::last_os_error(), "PACKET_IGNORE_OUTGOING not available; the filter drops sent packets");
        }
    }
    let p: &mut SocketFilter = program(ebpf, "http_lines")?;
    p.load()
        .map_err(|e| format!("loading the HTTP filter failed: {}", chain(&e)))?;
    p.attach(&fd)
        .map_err(|e| format!("attaching the HTTP filter failed: {}", chain(&e)))?;
    // Bind after the filter is on, so no packet reaches the socket unfiltered.
    // SAFETY: sockaddr_ll is plain data; zeroed is a valid start.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = proto;
    addr.sll_ifindex = index as i32;
    // SAFETY: addr is a valid sockaddr_ll of the size given.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    if rc != 0 {
        return Err(format!(
            "binding the HTTP filter to {iface}: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(fd)
}

/// Where the kubelet keeps its pods below the cgroup v2 root, per cgroup
/// driver and `--cgroup-root`: systemd and cgroupfs with the default root,
/// then both with the root `/kubelet` (kind's nodes).
const KUBELET_PODS_CGROUPS: [&str; 4] = [
    "kubepods.slice",
    "kubepods",
    "kubelet.slice/kubelet-kubepods.slice",
    "kubelet/kubepods",
];

/// The HTTP programs' cgroup when none is configured: the kubelet's pods
/// folder below the cgroup v2 root `v2` when there is one (every pod's
/// sockets, host-network pods' too, and none of the node's own daemons,
/// which no pod owns), else the root itself (every socket).
pub fn http_cgroup_default(v2: &Path) -> PathBuf {
    KUBELET_PODS_CGROUPS
        .iter()
        .map(|folder| v2.join(folder))
        .find(|dir| dir.is_dir())
        .unwrap_or_else(|| v2.to_path_buf())
}

/// The HTTP cgroup programs, on `cgroup` and everything below it: requests
/// are read where sockets receive them, status lines where they send them.
/// Attached through BPF links, alongside other programs on the same cgroup
/// (a node's own accounting or firewall programs stay in force).
fn attach_http_cgroup(ebpf: &mut Ebpf, cgroup: &Path) -> Result<(), String> {
    let dir = open_cgroup_v2(cgroup)?;
    let mut attached = Vec::new();
    for (name, side) in [
        ("http_ingress", CgroupSkbAttachType::Ingress),
        ("http_egress", CgroupSkbAttachType::Egress),
    ] {
        let result = program::<CgroupSkb>(ebpf, name).and_then(|p| {
            p.load()
                .map_err(|e| format!("loading the HTTP program {name} failed: {}", chain(&e)))?;
            // Through a BPF link (Linux 5.7 on), always one among others on
            // the cgroup: the kernel refuses the multi flag on a link.
            p.attach(&dir, side, CgroupAttachMode::Single).map_err(|e| {
                format!(
                    "attaching the HTTP program {name} to the cgroup {}: {}",
                    cgroup.display(),
                    chain(&e)
                )
            })
        });
        if let Err(e) = result {
            // Half a pair would queue requests nothing answers.
            for done in attached {
                if let Ok(p) = program::<CgroupSkb>(ebpf, done) {
                    let _ = p.unload();
                }
            }
            return Err(e);
        }
        attached.push(name);
    }
    Ok(())
}

/// `dir`, opened, when it is a folder of a cgroup v2 hierarchy (the only
/// place cgroup programs attach); else why not, naming it.
fn open_cgroup_v2(dir: &Path) -> Result<std::fs::File, String> {
    const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
    let file = std::fs::File::open(dir).map_err(|e| {
        format!(
            "opening the cgroup {} for the HTTP collector: {e}",
            dir.display()
        )
    })?;
    // SAFETY: statfs is plain data, filled by fstatfs on a valid fd.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid fd and a statfs to write into.
    let rc = unsafe { libc::fstatfs(file.as_raw_fd(), &mut st) };
    if rc != 0 {
        return Err(format!(
            "reading the file system of {}: {}",
            dir.display(),
            std::io::Error::last_os_error()
        ));
    }
    if st.f_type as i64 != CGROUP2_SUPER_MAGIC {
        return Err(format!(
            "{} is not a folder of a cgroup v2 hierarchy (http.cgroup: the HTTP collector's \
             programs attach to one)",
            dir.display()
        ));
    }
    Ok(file)
}

/// Records lost per drop slot, summed over CPUs.
pub fn read_drops(
    drops: &PerCpuArray<MapData, u64>,
) -> [u64; sonde_ebpf_common::drop_slot::COUNT as usize] {
    let mut out = [0u64; sonde_ebpf_common::drop_slot::COUNT as usize];
    for (i, slot) in out.iter_mut().enumerate() {
        if let Ok(values) = drops.get(&(i as u32), 0) {
            *slot = values.iter().sum();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With no cgroup configured the HTTP programs go where the kubelet
    /// keeps its pods, per cgroup driver, and to the root on a machine
    /// without a kubelet.
    #[test]
    fn the_http_programs_default_to_the_kubelets_pods_folder() {
        let root = tempfile::tempdir().unwrap();
        let v2 = root.path();
        assert_eq!(http_cgroup_default(v2), v2, "no kubelet: the root");
        // A file of that name is not a cgroup folder.
        std::fs::write(v2.join("kubepods"), "").unwrap();
        assert_eq!(http_cgroup_default(v2), v2);
        std::fs::remove_file(v2.join("kubepods")).unwrap();
        std::fs::create_dir_all(v2.join("kubelet/kubepods/burstable")).unwrap();
        assert_eq!(http_cgroup_default(v2), v2.join("kubelet/kubepods"));
        std::fs::create_dir_all(v2.join("kubepods/besteffort")).unwrap();
        assert_eq!(http_cgroup_default(v2), v2.join("kubepods"));
        std::fs::create_dir(v2.join("kubepods.slice")).unwrap();
        assert_eq!(http_cgroup_default(v2), v2.join("kubepods.slice"));
    }

    /// The HTTP programs' cgroup folder is checked before anything is
    /// attached: a missing folder and one on another file system are named.
    #[test]
    fn only_a_cgroup_v2_folder_is_taken_for_the_http_programs() {
        let missing = Path::new("/nonexistent/sonde-cgroup");
        let e = open_cgroup_v2(missing).unwrap_err();
        assert!(
            e.starts_with("opening the cgroup /nonexistent/sonde-cgroup for the HTTP collector:"),
            "{e}"
        );
        let plain = tempfile::tempdir().unwrap();
        let e = open_cgroup_v2(plain.path()).unwrap_err();
        assert!(
            e.contains("is not a folder of a cgroup v2 hierarchy (http.cgroup"),
            "{e}"
        );
        match Mounts::discover().v2 {
            Some(root) => assert!(open_cgroup_v2(&root).is_ok(), "{}", root.display()),
            None => eprintln!("(no cgroup v2 mount here: only the refusals checked)"),
        }
    }
}
