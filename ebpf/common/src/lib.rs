//! The records Sonde's eBPF programs write into their ring buffers and the
//! read-only globals the agent fills in before loading them. Both sides use
//! these `#[repr(C)]` layouts, so a field moved here moves on both sides.
//!
//! Kernel structures are not mirrored here: the offsets the programs need
//! (task_struct, css_set, sock, ...) are resolved by the agent from the
//! running kernel's BTF and handed over in [`KernelOffsets`], so one object
//! file works on every kernel whose BTF describes those fields.

#![no_std]

/// Length of a task's `comm`, as in the kernel (`TASK_COMM_LEN`).
pub const COMM_LEN: usize = 16;
/// Bytes of an exec'd filename kept; longer names are cut.
pub const FILENAME_LEN: usize = 256;
/// Bytes of a tracepoint record copied for userspace to decode.
pub const TP_RECORD_LEN: usize = 96;
/// Bytes of a packet's TCP payload the HTTP filter copies.
pub const HTTP_PAYLOAD_LEN: usize = 160;

/// What a ring-buffer record is; the first field of every record.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKind {
    Oom = 1,
    Exec = 2,
    Tcp = 3,
}

impl RecordKind {
    pub fn from_u32(v: u32) -> Option<Self> {
        match v {
            1 => Some(Self::Oom),
            2 => Some(Self::Exec),
            3 => Some(Self::Tcp),
            _ => None,
        }
    }
}

/// Indexes of the per-CPU drop counters (`DROPS` map), one per ring buffer
/// writer: a record that found its ring buffer full is counted there.
pub mod drop_slot {
    pub const OOM: u32 = 0;
    pub const EXEC: u32 = 1;
    pub const TCP: u32 = 2;
    pub const HTTP: u32 = 3;
    pub const COUNT: u32 = 4;
}

/// Which cgroups a task was in, read in the kernel at event time: after an
/// OOM kill the process is gone and `/proc/<pid>/cgroup` with it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CgroupIdentity {
    /// The cgroup v2 (unified hierarchy) id: the inode of its directory.
    pub v2_id: u64,
    /// The inode of the task's cgroup v1 memory cgroup directory (0 when
    /// the memory controller is not on a v1 hierarchy).
    pub memcg_v1_ino: u64,
}

/// The task an event is about.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TaskIdentity {
    /// Thread id and process id, as the root pid namespace sees them.
    pub pid: u32,
    pub tgid: u32,
    pub comm: [u8; COMM_LEN],
    pub cgroups: CgroupIdentity,
}

/// `oom:mark_victim`: a process chosen by the OOM killer.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct OomRecord {
    pub kind: u32,
    pub _pad: u32,
    /// `bpf_ktime_get_boot_ns()`: nanoseconds since boot, suspend included.
    pub boot_ns: u64,
    /// The victim (not the task that ran into the limit).
    pub victim: TaskIdentity,
    /// The task whose allocation triggered the kill.
    pub trigger_pid: u32,
    pub uid: u32,
    /// Pages, as the kernel's tracepoint reports them.
    pub total_vm: u64,
    pub anon_rss: u64,
    pub file_rss: u64,
    pub shmem_rss: u64,
    /// Bytes of page tables.
    pub pgtables: u64,
    pub oom_score_adj: i64,
}

/// `sched:sched_process_exec`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ExecRecord {
    pub kind: u32,
    pub _pad: u32,
    pub boot_ns: u64,
    pub task: TaskIdentity,
    pub ppid: u32,
    pub filename_len: u32,
    pub filename: [u8; FILENAME_LEN],
}

/// One of the TCP tracepoints (see [`TcpTracepoint`]): the raw record, which
/// userspace decodes with the field offsets of the tracepoint's format file,
/// plus who owns the socket.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TcpRecord {
    pub kind: u32,
    /// A [`TcpTracepoint`].
    pub tracepoint: u32,
    pub boot_ns: u64,
    /// The task on the CPU when the tracepoint fired: the socket's user when
    /// a system call made the change (connect, listen, close), any task when
    /// it ran in a softirq.
    pub current: TaskIdentity,
    /// The socket's owner, recorded when it connected or listened in
    /// process context (0 / empty when unknown).
    pub owner: TaskIdentity,
    /// The socket's own cgroup v2 id (`sk_cgrp_data`), 0 without a socket.
    pub sock_cgroup_v2: u64,
    pub record: [u8; TP_RECORD_LEN],
}

/// The TCP tracepoints, in the order of [`TcpRecord::tracepoint`].
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpTracepoint {
    SetState = 0,
    Retransmit = 1,
    SendReset = 2,
    ReceiveReset = 3,
}

impl TcpTracepoint {
    pub const ALL: [TcpTracepoint; 4] = [
        Self::SetState,
        Self::Retransmit,
        Self::SendReset,
        Self::ReceiveReset,
    ];

    pub fn from_u32(v: u32) -> Option<Self> {
        Self::ALL.get(v as usize).copied()
    }

    /// `category/name` under tracefs `events/`.
    pub fn path(self) -> (&'static str, &'static str) {
        match self {
            Self::SetState => ("sock", "inet_sock_set_state"),
            Self::Retransmit => ("tcp", "tcp_retransmit_skb"),
            Self::SendReset => ("tcp", "tcp_send_reset"),
            Self::ReceiveReset => ("tcp", "tcp_receive_reset"),
        }
    }
}

/// One listening socket, as the `iter/tcp` program writes it to its
/// seq_file.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ListenSample {
    /// Connections waiting in the accept queue, and the queue's limit (the
    /// backlog given to listen(), capped by somaxconn).
    pub ack_backlog: u32,
    pub max_ack_backlog: u32,
    /// Local port (host order) and address family (AF_INET, AF_INET6).
    pub port: u16,
    pub family: u16,
    /// The network namespace's inode number.
    pub netns_ino: u32,
    /// IPv4 local address (network order), or the first 4 bytes of the v6 one.
    pub addr_v4: u32,
    pub _pad: u32,
    pub addr_v6: [u8; 16],
    /// Socket cookie-like key: the kernel address of the socket, used to
    /// find its owner in `SOCK_OWNERS`.
    pub sock: u64,
    pub owner: TaskIdentity,
    pub sock_cgroup_v2: u64,
    /// The socket's inode number (0 when it has no file).
    pub ino: u64,
}

/// An address as the HTTP programs keep it: IPv6, or IPv4 mapped into
/// IPv6 (`::ffff:a.b.c.d`), in network order. One form for both families:
/// an IPv6 socket (a server listening on `::`) also carries IPv4.
pub type IpBytes = [u8; 16];

/// The IPv4 address `a` (network order) as [`IpBytes`].
#[inline(always)]
pub const fn ipv4_mapped(a: [u8; 4]) -> IpBytes {
    [
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a[0], a[1], a[2], a[3],
    ]
}

/// A route the socket filter has not reported before: its hash (the key
/// of its figures in `HTTP_RED`) and the request line it was first seen
/// in, for userspace to name the route. One record per route, not per
/// request: requests are paired and summed in the kernel.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct HttpRecord {
    /// When the request was seen, CLOCK_MONOTONIC ns.
    pub mono_ns: u64,
    /// [`HttpRedKey::route`] of the request line.
    pub route: u64,
    /// Addresses ([`IpBytes`]) and ports (host order) as in the packet.
    pub saddr: IpBytes,
    pub daddr: IpBytes,
    pub sport: u16,
    pub dport: u16,
    pub payload_len: u32,
    pub payload: [u8; HTTP_PAYLOAD_LEN],
}

/// Requests a connection can have open at once (HTTP/1.1 pipelining); a
/// request beyond them is counted lost (`drop_slot::HTTP`).
pub const HTTP_PIPELINE: usize = 8;
/// Boundaries of the duration histogram, in microseconds: the agent sets
/// `HTTP_BOUNDS` to its `duration_buckets_us()` (10 us growing by 10% to
/// 100 s), and checks there are this many.
pub const HTTP_BOUNDS_LEN: usize = 170;

/// A connection, by its client and server ends (the request's direction).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct HttpConnKey {
    /// Addresses ([`IpBytes`]), ports in host order.
    pub client_addr: IpBytes,
    pub server_addr: IpBytes,
    pub client_port: u16,
    pub server_port: u16,
}

/// A request waiting for its status line.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct HttpOpen {
    pub start_ns: u64,
    pub route: u64,
}

/// A connection's open requests, oldest first: a ring written at `tail` by
/// the request side and read at `head` by the response side (each writes
/// only its own index, so the two need no lock).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct HttpPending {
    pub head: u32,
    pub tail: u32,
    /// The route of the connection's last request and the routes'
    /// generation it was reported in (`http_shared::ROUTES_GENERATION`): a
    /// connection asking for the same route again needs no look-up of the
    /// reported routes.
    pub last_route: u64,
    pub last_generation: u64,
    /// The server socket's cgroup v2 id, read once, when its first request
    /// arrives (a socket's cgroup is fixed when it is created); 0 from the
    /// interface filter.
    pub cgroup: u64,
    /// TCP sequence numbers of the last request segment counted and of the
    /// last status line's segment, valid per `seqs` bit (`SEQ_REQUEST`,
    /// `SEQ_RESPONSE`): a retransmitted segment (its sequence number not
    /// after the last one's) is passed over, so it neither opens a second
    /// request nor answers one twice (which would shift every later pair of
    /// the connection).
    pub request_seq: u32,
    pub response_seq: u32,
    pub seqs: u32,
    pub _pad: u32,
    pub open: [HttpOpen; HTTP_PIPELINE],
}

/// [`HttpPending::seqs`] bits.
pub const SEQ_REQUEST: u32 = 1;
pub const SEQ_RESPONSE: u32 = 2;

/// Whether a segment at `seq` is new on its side of a connection whose
/// last counted segment there was at `last` (`known`: there was one), in
/// sequence-number arithmetic (wrapping, as TCP compares them).
#[inline(always)]
pub fn seq_is_new(seq: u32, last: u32, known: bool) -> bool {
    !known || (seq.wrapping_sub(last) as i32) > 0
}

/// Slots of the HTTP filter's `HTTP_SHARED` array, written by the agent.
pub mod http_shared {
    /// Wall-clock minus the monotonic clock, in ns: the minute a response
    /// counts in (the programs' times are CLOCK_MONOTONIC).
    pub const CLOCK: u32 = 0;
    /// Bumped when the agent forgets route names: every route is then
    /// reported again, also on connections that asked for it before.
    pub const ROUTES_GENERATION: u32 = 1;
    pub const COUNT: u32 = 2;
}

/// What the kernel sums requests under: the wall-clock minute their
/// response was seen in, the route (a hash of the method and the request
/// target's path, ids folded: see the filter) and the server.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct HttpRedKey {
    /// Minutes since the Unix epoch.
    pub minute: u64,
    pub route: u64,
    /// Address ([`IpBytes`]), port in host order.
    pub server_addr: IpBytes,
    pub server_port: u16,
    pub _pad: [u8; 6],
    /// The cgroup (v2 id) of the server's socket, read in the kernel by the
    /// cgroup programs; 0 from the interface filter, which sees packets,
    /// not sockets (its servers are named by address).
    pub cgroup: u64,
}

/// A minute's sums for one [`HttpRedKey`] on one CPU (the map is per CPU:
/// no CPU writes another's sums, so the filter needs no atomic operation
/// and no cache line moves between CPUs per request).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct HttpRedValue {
    pub requests: u64,
    /// 5xx responses.
    pub errors: u64,
    /// 4xx responses.
    pub client_errors: u64,
    pub sum_us: u64,
    pub max_us: u64,
    /// Requests per duration bucket: `buckets[i]` counts durations in
    /// `(bounds[i-1], bounds[i]]`, the last one those above every bound.
    /// 32 bits: one CPU's requests of one route in one minute (4 billion
    /// would be 70 million a second), and half the memory per CPU.
    pub buckets: [u32; HTTP_BOUNDS_LEN + 1],
    pub _pad: u32,
}

/// Offsets into kernel structures, in bytes, resolved from the running
/// kernel's BTF by the agent and set as the programs' read-only global
/// `OFFSETS` before they are loaded.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelOffsets {
    pub task_pid: u32,
    pub task_tgid: u32,
    pub task_comm: u32,
    pub task_cgroups: u32,
    pub task_mm: u32,
    pub task_signal: u32,
    pub task_real_parent: u32,
    pub css_set_dfl_cgrp: u32,
    /// `css_set.subsys[memory_cgrp_id]`.
    pub css_set_memory_subsys: u32,
    pub css_cgroup: u32,
    pub cgroup_kn: u32,
    pub kernfs_node_id: u32,
    pub mm_total_vm: u32,
    /// `mm_struct.rss_stat[MM_FILEPAGES / MM_ANONPAGES / MM_SHMEMPAGES]`:
    /// the `count` of each percpu_counter (what get_mm_counter reads).
    pub mm_rss_file: u32,
    pub mm_rss_anon: u32,
    pub mm_rss_shmem: u32,
    pub mm_pgtables_bytes: u32,
    pub signal_oom_score_adj: u32,
    pub binprm_filename: u32,
    /// `sock.sk_cgrp_data.cgroup` (cgroup v2 pointer).
    pub sock_cgroup: u32,
    pub sock_ack_backlog: u32,
    pub sock_max_ack_backlog: u32,
    pub sock_state: u32,
    pub sock_family: u32,
    pub sock_num: u32,
    pub sock_rcv_saddr: u32,
    pub sock_v6_rcv_saddr: u32,
    pub sock_net: u32,
    pub net_ns_inum: u32,
    /// Offset of the `skaddr` field in each TCP tracepoint's record, in
    /// [`TcpTracepoint`] order (from tracefs, not BTF).
    pub tp_skaddr: [u32; 4],
    /// `sock.sk_socket`, `socket.file`, `file.f_inode`, `inode.i_ino`:
    /// the socket's inode, which `/proc/<pid>/fd` links name.
    pub sock_socket: u32,
    pub socket_file: u32,
    pub file_inode: u32,
    pub inode_ino: u32,
    /// 1 when the memory controller is on a v1 hierarchy.
    pub memcg_v1: u32,
    /// 1 when the tcp collector runs: TCP records are written. The
    /// set_state program also runs for the listen collector, to record
    /// socket owners, without writing records.
    pub tcp_records: u32,
}

/// Settings of the HTTP programs (interface filter and cgroup pair), a
/// read-only global.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct HttpFilterConfig {
    /// Only packets to or from these TCP ports (host order; 0 = unused
    /// slot); the cgroup programs match the socket's own (server) port.
    /// All zero: every port.
    pub ports: [u16; 8],
    /// 1 on loopback, where a packet socket sees every packet twice (sent
    /// and received): only the received copy is kept.
    pub drop_outgoing: u32,
    /// How many of `ports` are set (the first ones).
    pub port_count: u32,
}

#[cfg(feature = "user")]
mod user {
    // SAFETY: plain `#[repr(C)]` integers and arrays, no padding holes that
    // matter to the kernel, valid for any bit pattern.
    unsafe impl aya::Pod for super::KernelOffsets {}
    unsafe impl aya::Pod for super::HttpFilterConfig {}
    unsafe impl aya::Pod for super::HttpConnKey {}
    unsafe impl aya::Pod for super::HttpPending {}
    unsafe impl aya::Pod for super::HttpRedKey {}
    unsafe impl aya::Pod for super::HttpRedValue {}
}
