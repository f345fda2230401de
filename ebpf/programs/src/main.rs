//! Sonde's eBPF collectors, kernel side. Every program reads the identity of
//! the task (and its cgroups) at event time, in the kernel, so that an event
//! can be attributed to its pod even when the process is gone by the time
//! userspace reads it (an OOM victim).
//!
//! Kernel structure offsets come from the read-only global `OFFSETS`, which
//! the agent fills from the running kernel's BTF; every kernel read goes
//! through `bpf_probe_read_kernel`, so a wrong offset yields a wrong value,
//! never a crash, and the agent refuses to load when an offset is missing.
//! Records that find their ring buffer full are counted in `DROPS`.

#![no_std]
#![no_main]

use core::ffi::c_void;

use aya_ebpf::EbpfContext;

use aya_ebpf::bindings::{
    BPF_F_NO_PREALLOC, BPF_NOEXIST, BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP,
    BPF_SK_STORAGE_GET_F_CREATE,
};
use aya_ebpf::btf_maps::SkStorage;
use aya_ebpf::helpers::generated::{
    bpf_seq_write, bpf_sk_storage_get, bpf_skb_cgroup_id, bpf_skb_load_bytes,
};
use aya_ebpf::helpers::{
    bpf_get_current_task, bpf_ktime_get_boot_ns, bpf_ktime_get_ns, bpf_probe_read_kernel,
    bpf_probe_read_kernel_buf, bpf_probe_read_kernel_str_bytes,
};
use aya_ebpf::macros::{btf_map, cgroup_skb, map, raw_tracepoint, socket_filter, tracepoint};
use aya_ebpf::maps::{Array, LruHashMap, PerCpuArray, PerCpuHashMap, RingBuf};
use aya_ebpf::programs::{RawTracePointContext, SkBuffContext, TracePointContext};
use sonde_ebpf_common::{
    COMM_LEN, CgroupIdentity, ExecRecord, HTTP_BOUNDS_LEN, HTTP_PAYLOAD_LEN, HTTP_PIPELINE,
    HttpConnKey, HttpFilterConfig, HttpOpen, HttpPending, HttpRecord, HttpRedKey, HttpRedValue,
    IpBytes, KernelOffsets, ListenSample, OomRecord, RecordKind, SEQ_REQUEST, SEQ_RESPONSE,
    TP_RECORD_LEN, TaskIdentity, TcpRecord, drop_slot, http_shared, ipv4_mapped, seq_is_new,
};

#[unsafe(no_mangle)]
static OFFSETS: KernelOffsets = KernelOffsets {
    task_pid: 0,
    task_tgid: 0,
    task_comm: 0,
    task_cgroups: 0,
    task_mm: 0,
    task_signal: 0,
    task_real_parent: 0,
    css_set_dfl_cgrp: 0,
    css_set_memory_subsys: 0,
    css_cgroup: 0,
    cgroup_kn: 0,
    kernfs_node_id: 0,
    mm_total_vm: 0,
    mm_rss_file: 0,
    mm_rss_anon: 0,
    mm_rss_shmem: 0,
    mm_pgtables_bytes: 0,
    signal_oom_score_adj: 0,
    binprm_filename: 0,
    sock_cgroup: 0,
    sock_ack_backlog: 0,
    sock_max_ack_backlog: 0,
    sock_state: 0,
    sock_family: 0,
    sock_num: 0,
    sock_rcv_saddr: 0,
    sock_v6_rcv_saddr: 0,
    sock_net: 0,
    net_ns_inum: 0,
    tp_skaddr: [0; 4],
    sock_socket: 0,
    socket_file: 0,
    file_inode: 0,
    inode_ino: 0,
    memcg_v1: 0,
    tcp_records: 0,
};

#[unsafe(no_mangle)]
static HTTP_CONFIG: HttpFilterConfig = HttpFilterConfig {
    ports: [0; 8],
    drop_outgoing: 0,
    port_count: 0,
};

const PROCESS_RING_BYTES: u32 = 1 << 20;
const TCP_RING_BYTES: u32 = 4 << 20;
const HTTP_RING_BYTES: u32 = 8 << 20;

/// OOM kills and execs (small, rare records).
#[map]
static PROCESS_EVENTS: RingBuf = RingBuf::with_byte_size(PROCESS_RING_BYTES, 0);

/// TCP lifecycle, retransmits and resets.
#[map]
static TCP_EVENTS: RingBuf = RingBuf::with_byte_size(TCP_RING_BYTES, 0);

/// HTTP request and status lines.
#[map]
static HTTP_EVENTS: RingBuf = RingBuf::with_byte_size(HTTP_RING_BYTES, 0);

/// Submit flags for a record on a busy ring: no wake-up of the reader
/// (which drains every 50 ms) unless the ring is a quarter full, so a
/// record costs no context switch. OOM records always wake it.
#[inline(always)]
fn wake_flags(ring: &RingBuf, bytes: u32) -> u64 {
    if ring.query(BPF_RB_AVAIL_DATA as u64) >= (bytes / 4) as u64 {
        BPF_RB_FORCE_WAKEUP as u64
    } else {
        BPF_RB_NO_WAKEUP as u64
    }
}

/// Records lost because a ring buffer was full, per writer (`drop_slot`).
#[map]
static DROPS: PerCpuArray<u64> = PerCpuArray::with_max_entries(drop_slot::COUNT, 0);

/// Who opened a socket (connect or listen in process context), by the
/// socket's kernel address; removed when the socket closes.
#[map]
static SOCK_OWNERS: LruHashMap<u64, TaskIdentity> = LruHashMap::with_max_entries(65536, 0);

#[inline(always)]
fn offsets() -> KernelOffsets {
    // Volatile: the value is set at load time; the compiler must not fold the zeros.
    unsafe { core::ptr::read_volatile(&OFFSETS) }
}

#[inline(always)]
fn count_drop(slot: u32) {
    if let Some(p) = DROPS.get_ptr_mut(slot) {
        unsafe { *p += 1 };
    }
}

#[inline(always)]
unsafe fn read_at<T>(base: u64, offset: u32) -> T
where
    T: Default,
{
    if base == 0 {
        return T::default();
    }
    unsafe { bpf_probe_read_kernel((base + offset as u64) as *const T) }.unwrap_or_default()
}

/// `cgroup->kn->id`.
#[inline(always)]
unsafe fn cgroup_id(o: &KernelOffsets, cgroup: u64) -> u64 {
    let kn: u64 = unsafe { read_at(cgroup, o.cgroup_kn) };
    unsafe { read_at(kn, o.kernfs_node_id) }
}

#[inline(always)]
unsafe fn task_cgroups(o: &KernelOffsets, task: u64) -> CgroupIdentity {
    let cset: u64 = unsafe { read_at(task, o.task_cgroups) };
    let dfl: u64 = unsafe { read_at(cset, o.css_set_dfl_cgrp) };
    let mut id = CgroupIdentity {
        v2_id: unsafe { cgroup_id(o, dfl) },
        memcg_v1_ino: 0,
    };
    if o.memcg_v1 != 0 {
        let css: u64 = unsafe { read_at(cset, o.css_set_memory_subsys) };
        let cg: u64 = unsafe { read_at(css, o.css_cgroup) };
        id.memcg_v1_ino = unsafe { cgroup_id(o, cg) };
    }
    id
}

#[inline(always)]
unsafe fn task_identity(o: &KernelOffsets, task: u64) -> TaskIdentity {
    let mut comm = [0u8; COMM_LEN];
    if task != 0 {
        let _ = unsafe {
            bpf_probe_read_kernel_buf((task + o.task_comm as u64) as *const u8, &mut comm)
        };
    }
    TaskIdentity {
        pid: unsafe { read_at::<i32>(task, o.task_pid) } as u32,
        tgid: unsafe { read_at::<i32>(task, o.task_tgid) } as u32,
        comm,
        cgroups: unsafe { task_cgroups(o, task) },
    }
}

/// `oom:mark_victim(struct task_struct *task, uid_t uid)` (Linux 6.8 and later).
#[raw_tracepoint(tracepoint = "mark_victim")]
pub fn oom_mark_victim(ctx: RawTracePointContext) -> i32 {
    let o = offsets();
    let task: u64 = ctx.arg(0);
    let uid: u64 = ctx.arg(1);
    let Some(mut entry) = PROCESS_EVENTS.reserve::<OomRecord>(0) else {
        count_drop(drop_slot::OOM);
        return 0;
    };
    unsafe {
        let mm: u64 = read_at(task, o.task_mm);
        let signal: u64 = read_at(task, o.task_signal);
        let current = bpf_get_current_task();
        entry.write(OomRecord {
            kind: RecordKind::Oom as u32,
            _pad: 0,
            boot_ns: bpf_ktime_get_boot_ns(),
            victim: task_identity(&o, task),
            trigger_pid: read_at::<i32>(current, o.task_pid) as u32,
            uid: uid as u32,
            total_vm: read_at(mm, o.mm_total_vm),
            anon_rss: read_at::<i64>(mm, o.mm_rss_anon).max(0) as u64,
            file_rss: read_at::<i64>(mm, o.mm_rss_file).max(0) as u64,
            shmem_rss: read_at::<i64>(mm, o.mm_rss_shmem).max(0) as u64,
            pgtables: read_at(mm, o.mm_pgtables_bytes),
            oom_score_adj: read_at::<i16>(signal, o.signal_oom_score_adj) as i64,
        });
    }
    entry.submit(BPF_RB_FORCE_WAKEUP as u64);
    0
}

/// `sched:sched_process_exec(struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)`.
#[raw_tracepoint(tracepoint = "sched_process_exec")]
pub fn sched_process_exec(ctx: RawTracePointContext) -> i32 {
    let o = offsets();
    let task: u64 = ctx.arg(0);
    let bprm: u64 = ctx.arg(2);
    let Some(mut entry) = PROCESS_EVENTS.reserve::<ExecRecord>(0) else {
        count_drop(drop_slot::EXEC);
        return 0;
    };
    let rec = entry.as_mut_ptr();
    unsafe {
        (*rec).kind = RecordKind::Exec as u32;
        (*rec)._pad = 0;
        (*rec).boot_ns = bpf_ktime_get_boot_ns();
        (*rec).task = task_identity(&o, task);
        let parent: u64 = read_at(task, o.task_real_parent);
        (*rec).ppid = read_at::<i32>(parent, o.task_tgid) as u32;
        let filename: u64 = read_at(bprm, o.binprm_filename);
        let buf = &mut (*rec).filename;
        (*rec).filename_len = match bpf_probe_read_kernel_str_bytes(filename as *const u8, buf) {
            Ok(s) => s.len() as u32,
            Err(_) => 0,
        };
    }
    entry.submit(wake_flags(&PROCESS_EVENTS, PROCESS_RING_BYTES));
    0
}

#[inline(always)]
fn tcp_record(ctx: &TracePointContext, tracepoint: u32) -> i32 {
    let o = offsets();
    if o.tcp_records == 0 {
        return 0;
    }
    let Some(mut entry) = TCP_EVENTS.reserve::<TcpRecord>(0) else {
        count_drop(drop_slot::TCP);
        return 0;
    };
    let rec = entry.as_mut_ptr();
    unsafe {
        (*rec).kind = RecordKind::Tcp as u32;
        (*rec).tracepoint = tracepoint;
        (*rec).boot_ns = bpf_ktime_get_boot_ns();
        let current = bpf_get_current_task();
        (*rec).current = task_identity(&o, current);
        let _ = bpf_probe_read_kernel_buf(ctx.as_ptr() as *const u8, &mut (*rec).record);
        let skaddr_off = o.tp_skaddr[(tracepoint & 3) as usize] as usize;
        let sk: u64 = if skaddr_off + 8 <= TP_RECORD_LEN {
            ctx.read_at::<u64>(skaddr_off).unwrap_or(0)
        } else {
            0
        };
        let cgroup: u64 = read_at(sk, o.sock_cgroup);
        (*rec).sock_cgroup_v2 = cgroup_id(&o, cgroup);
        (*rec).owner = match SOCK_OWNERS.get(sk) {
            Some(owner) if sk != 0 => *owner,
            _ => TaskIdentity::default(),
        };
    }
    entry.submit(wake_flags(&TCP_EVENTS, TCP_RING_BYTES));
    0
}

const TCP_SYN_SENT: i32 = 2;
const TCP_CLOSE: i32 = 7;
const TCP_LISTEN: i32 = 10;

#[tracepoint(category = "sock", name = "inet_sock_set_state")]
pub fn inet_sock_set_state(ctx: TracePointContext) -> i32 {
    let o = offsets();
    // Fields of this record are fixed by the kernel's format (checked by the
    // agent): skaddr at 8, oldstate at 16, newstate at 20, protocol at 30.
    let protocol: u16 = unsafe { ctx.read_at(30) }.unwrap_or(0);
    if protocol != 6 {
        return 0;
    }
    let sk: u64 = unsafe { ctx.read_at(o.tp_skaddr[0] as usize) }.unwrap_or(0);
    let old: i32 = unsafe { ctx.read_at(16) }.unwrap_or(0);
    let new: i32 = unsafe { ctx.read_at(20) }.unwrap_or(0);
    if sk != 0 && old == TCP_CLOSE && (new == TCP_SYN_SENT || new == TCP_LISTEN) {
        // connect() and listen() run in the caller's context: that task owns the socket.
        let owner = unsafe { task_identity(&o, bpf_get_current_task()) };
        let _ = SOCK_OWNERS.insert(sk, owner, 0);
    }
    let ret = tcp_record(&ctx, 0);
    if sk != 0 && new == TCP_CLOSE {
        let _ = SOCK_OWNERS.remove(sk);
    }
    ret
}

#[tracepoint(category = "tcp", name = "tcp_retransmit_skb")]
pub fn tcp_retransmit_skb(ctx: TracePointContext) -> i32 {
    tcp_record(&ctx, 1)
}

#[tracepoint(category = "tcp", name = "tcp_send_reset")]
pub fn tcp_send_reset(ctx: TracePointContext) -> i32 {
    tcp_record(&ctx, 2)
}

#[tracepoint(category = "tcp", name = "tcp_receive_reset")]
pub fn tcp_receive_reset(ctx: TracePointContext) -> i32 {
    tcp_record(&ctx, 3)
}

/// `bpf_iter__tcp`: { meta, sk_common, uid }.
#[repr(C)]
struct IterTcpCtx {
    meta: *mut IterMeta,
    sk_common: u64,
    uid: u32,
}

#[repr(C)]
struct IterMeta {
    seq: *mut c_void,
    session_id: u64,
    seq_num: u64,
}

/// Samples every listening TCP socket: accept queue length and limit.
/// Userspace reads the records from the iterator's file.
#[unsafe(no_mangle)]
#[unsafe(link_section = "iter/tcp")]
pub extern "C" fn listen_sockets(ctx: *mut c_void) -> i32 {
    let o = offsets();
    let ctx = ctx as *const IterTcpCtx;
    unsafe {
        let sk = (*ctx).sk_common;
        if sk == 0 {
            return 0;
        }
        let meta = (*ctx).meta;
        let state: u8 = read_at(sk, o.sock_state);
        if state as i32 != TCP_LISTEN {
            return 0;
        }
        let net: u64 = read_at(sk, o.sock_net);
        let mut sample = ListenSample {
            ack_backlog: read_at(sk, o.sock_ack_backlog),
            max_ack_backlog: read_at(sk, o.sock_max_ack_backlog),
            port: read_at(sk, o.sock_num),
            family: read_at(sk, o.sock_family),
            netns_ino: read_at(net, o.net_ns_inum),
            addr_v4: read_at(sk, o.sock_rcv_saddr),
            _pad: 0,
            addr_v6: [0; 16],
            sock: sk,
            owner: TaskIdentity::default(),
            sock_cgroup_v2: 0,
            ino: 0,
        };
        let socket: u64 = read_at(sk, o.sock_socket);
        let file: u64 = read_at(socket, o.socket_file);
        let inode: u64 = read_at(file, o.file_inode);
        sample.ino = read_at(inode, o.inode_ino);
        let _ = bpf_probe_read_kernel_buf(
            (sk + o.sock_v6_rcv_saddr as u64) as *const u8,
            &mut sample.addr_v6,
        );
        let cgroup: u64 = read_at(sk, o.sock_cgroup);
        sample.sock_cgroup_v2 = cgroup_id(&o, cgroup);
        if let Some(owner) = SOCK_OWNERS.get(sk) {
            sample.owner = *owner;
        }
        bpf_seq_write(
            (*meta).seq as *mut _,
            &sample as *const ListenSample as *const c_void,
            core::mem::size_of::<ListenSample>() as u32,
        );
    }
    0
}

/// Bytes of a status line read: enough for the version and the code.
const HTTP_STATUS_COPY: usize = 16;
/// Bytes of a packet copied first: headers (66 on loopback, with TCP
/// timestamps) and the start of the payload.
const HTTP_HEAD_COPY: usize = 96;

/// The packet's first bytes (`HTTP_HEAD_COPY`).
#[map]
static HTTP_HEAD: PerCpuArray<[u8; HTTP_HEAD_COPY]> = PerCpuArray::with_max_entries(1, 0);
/// Open requests older than this are forgotten (their connection is gone
/// or never answered).
const HTTP_OPEN_TTL_NS: u64 = 300 * 1_000_000_000;

/// Duration histogram boundaries (us), set by the agent.
#[unsafe(no_mangle)]
static HTTP_BOUNDS: [u64; HTTP_BOUNDS_LEN] = [0; HTTP_BOUNDS_LEN];

/// The agent's clock and route generation (`http_shared`).
#[map]
static HTTP_SHARED: Array<u64> = Array::with_max_entries(http_shared::COUNT, 0);

/// Each connection's open requests (the interface filter, which sees
/// packets, not sockets).
#[map]
static HTTP_OPEN: LruHashMap<HttpConnKey, HttpPending> = LruHashMap::with_max_entries(65536, 0);

/// Each server socket's open requests (the cgroup programs): kept in the
/// socket itself, found without a hash look-up, freed with the socket.
#[btf_map]
static HTTP_CONN: SkStorage<HttpPending> = SkStorage::new();

/// Routes already reported to userspace (`HTTP_EVENTS`), by hash.
#[map]
static HTTP_ROUTES: LruHashMap<u64, u8> = LruHashMap::with_max_entries(16384, 0);

/// Per minute, route and server, per CPU: the sums userspace reads and
/// removes once the minute is over. Allocated as keys appear.
#[map]
static HTTP_RED: PerCpuHashMap<HttpRedKey, HttpRedValue> =
    PerCpuHashMap::with_max_entries(4096, BPF_F_NO_PREALLOC);

// HTTP_ZERO's value also serves as a zeroed `HttpPending`.
const _: () = assert!(core::mem::size_of::<HttpRedValue>() >= core::mem::size_of::<HttpPending>());

/// Zeroed values to create map entries from (the RED value is larger than
/// the stack), and the request line being read.
#[map]
static HTTP_ZERO: PerCpuArray<HttpRedValue> = PerCpuArray::with_max_entries(1, 0);
#[map]
static HTTP_LINE: PerCpuArray<[u8; HTTP_PAYLOAD_LEN]> = PerCpuArray::with_max_entries(1, 0);

/// Pairs HTTP/1.x requests with their status lines per connection and sums
/// them per minute, route and server in `HTTP_RED` (IPv4 and IPv6,
/// Ethernet framing as on a packet socket); a route seen for the first time is reported to
/// `HTTP_EVENTS` with its request line. Always returns 0: the packet
/// socket itself receives nothing.
#[socket_filter]
pub fn http_lines(ctx: SkBuffContext) -> i64 {
    let _ = try_http(&ctx);
    0
}

/// The cgroup pair's receiving side: a request line arriving at a socket
/// of the cgroup's tree is queued on that socket (the server's). Lets every
/// packet through.
#[cgroup_skb]
pub fn http_ingress(ctx: SkBuffContext) -> i32 {
    cgroup_http(&ctx, false);
    1
}

/// The cgroup pair's sending side: a status line leaving a socket answers
/// that socket's oldest open request. Lets every packet through.
#[cgroup_skb]
pub fn http_egress(ctx: SkBuffContext) -> i32 {
    cgroup_http(&ctx, true);
    1
}

/// One packet at a socket of the cgroup's tree (from the network header
/// on, as cgroup programs see it; IPv4 or IPv6 by the packet's own version,
/// not the socket's family: a dual-stack IPv6 socket, a server listening
/// on `::`, sends and receives IPv4 packets for IPv4 peers). Requests count
/// where they are received and answers where they are sent, so only the
/// server's socket pairs them: the client's side of the same exchange (a
/// request sent, an answer received) is passed over after its first bytes,
/// and a connection between two watched pods counts once.
#[inline(always)]
fn cgroup_http(ctx: &SkBuffContext, egress: bool) {
    let skb = ctx.skb.skb;
    // The IP and TCP headers are in the packet's linear part: read in place.
    let (data, end) = unsafe { ((*skb).data as usize, (*skb).data_end as usize) };
    if data + 40 > end {
        return;
    }
    let ip = data as *const u8;
    let ver_ihl = unsafe { *ip };
    let v6 = ver_ihl >> 4 == 6;
    // The IP header's length (IPv6: no extension header before TCP).
    let ihl = if v6 {
        if unsafe { *ip.add(6) } != 6 {
            return;
        }
        40
    } else {
        if ver_ihl >> 4 != 4 || unsafe { *ip.add(9) } != 6 {
            return;
        }
        ((ver_ihl & 0x0f) as usize) * 4
    };
    if ihl < 20 {
        return;
    }
    let tcp = data + ihl;
    if tcp + 20 > end {
        return;
    }
    let th = tcp as *const u8;
    let payload = ihl + ((unsafe { *th.add(12) } >> 4) as usize) * 4;
    let len = ctx.len() as usize;
    // ACKs and other short segments: nothing to read.
    if len < payload + 12 {
        return;
    }
    let sport = u16::from_be_bytes(unsafe { [*th, *th.add(1)] });
    let dport = u16::from_be_bytes(unsafe { [*th.add(2), *th.add(3)] });
    let local_port = if egress { sport } else { dport };
    if !port_wanted(local_port, local_port) {
        return;
    }
    let avail = len - payload;
    if egress {
        let n = if avail > HTTP_STATUS_COPY {
            HTTP_STATUS_COPY
        } else {
            avail
        };
        let mut first = core::mem::MaybeUninit::uninit();
        let first = StatusCopy::zero(&mut first);
        if !load_bytes(ctx, payload, first.as_mut_ptr(), n, HTTP_STATUS_COPY) {
            return;
        }
        let first = first.bytes();
        if &[first[0], first[1], first[2], first[3]] != b"HTTP" {
            return;
        }
        let Some(code) = status_code(first, n) else {
            return;
        };
        let Some(pending) = socket_pending(ctx, false) else {
            return;
        };
        // TCP's departure time of the segment (CLOCK_MONOTONIC, set before
        // the packet reached this hook): TCP read the clock already.
        let stamp = unsafe { (*skb).tstamp };
        answer(pending, ip, v6, sport, code, stamp, tcp_seq(th));
    } else {
        // The request line is read once, where a request is looked for.
        let Some((line, n)) = read_line(ctx, payload, avail) else {
            return;
        };
        if !is_method(&[line[0], line[1], line[2], line[3]]) {
            return;
        }
        let packet = Request {
            ip,
            v6,
            client_port: sport,
            server_port: dport,
            payload,
            seq: tcp_seq(th),
        };
        request_line(ctx, &packet, line, n, || {
            let p = socket_pending(ctx, true)?;
            // The server socket's cgroup, once: it is fixed at its creation.
            unsafe {
                if (*p).cgroup == 0 {
                    (*p).cgroup = bpf_skb_cgroup_id(skb as *mut _);
                }
            }
            Some(p)
        });
    }
}

/// Writes the source (`src`) or destination address of the IP header at
/// `ip` (IPv6 when `v6`, else IPv4, mapped by `ipv4_mapped`; 40 bytes
/// readable) into `dst`: in the packet for the cgroup pair, in the filter's
/// copy of its first bytes for the socket filter. Byte by byte from the
/// header into its place (a key, a record): no copy of the address waits on
/// the stack across the helper calls, and the stores are volatile so that
/// they are not merged into a `memset`/`memcpy` call (the BPF target calls
/// its byte loops for unaligned ones).
#[inline(always)]
fn put_addr(dst: *mut IpBytes, ip: *const u8, v6: bool, src: bool) {
    let d = dst as *mut u8;
    let put = |i: usize, b: u8| unsafe { core::ptr::write_volatile(d.add(i), b) };
    if v6 {
        let o = if src { 8 } else { 24 };
        for i in 0..16 {
            put(i, unsafe { *ip.add(o + i) });
        }
    } else {
        // The mapped form's first 12 bytes, from its one definition
        // (constants: each store writes an immediate).
        const MAPPED: IpBytes = ipv4_mapped([0; 4]);
        let o = if src { 12 } else { 16 };
        for (i, b) in MAPPED.iter().take(12).enumerate() {
            put(i, *b);
        }
        for i in 0..4 {
            put(12 + i, unsafe { *ip.add(o + i) });
        }
    }
}

/// A request segment, as `request_line` needs it: its IP header (`ip`,
/// IPv6 when `v6`: the addresses are read from it only for a route's
/// first record), ports, where its payload starts and its TCP sequence
/// number.
struct Request {
    ip: *const u8,
    v6: bool,
    client_port: u16,
    server_port: u16,
    payload: usize,
    seq: u32,
}

/// A status line's first bytes, zeroed by two (volatile) 8-byte stores:
/// the BPF target zeroes a stack array, even an aligned one, by a call to
/// its byte-by-byte `memset` loop.
#[repr(C)]
struct StatusCopy([u64; HTTP_STATUS_COPY / 8]);

impl StatusCopy {
    /// Zeroes `place` where it is (returned by value, the copy would be
    /// zeroed by a `memset` call again).
    #[inline(always)]
    fn zero(place: &mut core::mem::MaybeUninit<StatusCopy>) -> &mut StatusCopy {
        let w = place.as_mut_ptr() as *mut u64;
        for i in 0..HTTP_STATUS_COPY / 8 {
            unsafe { core::ptr::write_volatile(w.add(i), 0) };
        }
        unsafe { place.assume_init_mut() }
    }
    #[inline(always)]
    fn as_mut_ptr(&mut self) -> *mut u8 {
        self.0.as_mut_ptr() as *mut u8
    }
    #[inline(always)]
    fn bytes(&self) -> &[u8; HTTP_STATUS_COPY] {
        // SAFETY: same size, and u8 has no alignment to keep.
        unsafe { &*(self.0.as_ptr() as *const [u8; HTTP_STATUS_COPY]) }
    }
}

/// The sequence number of the TCP header at `th` (20 bytes readable).
#[inline(always)]
fn tcp_seq(th: *const u8) -> u32 {
    u32::from_be_bytes(unsafe { [*th.add(4), *th.add(5), *th.add(6), *th.add(7)] })
}

/// The open requests kept in the packet's socket, created when `create`.
#[inline(always)]
fn socket_pending(ctx: &SkBuffContext, create: bool) -> Option<*mut HttpPending> {
    let sk = unsafe { (*ctx.skb.skb).__bindgen_anon_2.sk };
    if sk.is_null() {
        return None;
    }
    // No `bpf_sk_fullsock` first: the storage helper takes the packet's
    // socket as it is and answers NULL for one that is not a full socket
    // (a request socket, a time-wait one), one helper call fewer.
    let flags = if create {
        BPF_SK_STORAGE_GET_F_CREATE as u64
    } else {
        0
    };
    let p = unsafe {
        bpf_sk_storage_get(
            &HTTP_CONN as *const SkStorage<HttpPending> as *mut c_void,
            sk as *mut c_void,
            core::ptr::null_mut(),
            flags,
        )
    } as *mut HttpPending;
    if p.is_null() {
        if create {
            count_drop(drop_slot::HTTP);
        }
        return None;
    }
    Some(p)
}

/// Whether the configured ports (`HTTP_CONFIG`; none: every port) list
/// `a` or `b`. Reads the count alone first, not the whole configuration:
/// with no port list, that is all a packet costs.
#[inline(always)]
fn port_wanted(a: u16, b: u16) -> bool {
    let count = unsafe { core::ptr::read_volatile(&raw const HTTP_CONFIG.port_count) };
    if count == 0 {
        return true;
    }
    for i in 0..HTTP_CONFIG.ports.len() {
        if i as u32 >= count {
            break;
        }
        let p = unsafe { core::ptr::read_volatile(&raw const HTTP_CONFIG.ports[i]) };
        if p == a || p == b {
            return true;
        }
    }
    false
}

/// A request line's first four bytes: the methods the agent names.
#[inline(always)]
fn is_method(head: &[u8; 4]) -> bool {
    matches!(
        head,
        b"GET " | b"POST" | b"PUT " | b"HEAD" | b"DELE" | b"PATC" | b"OPTI"
    )
}

/// FNV-1a, one byte.
#[inline(always)]
fn fnv(h: u64, b: u8) -> u64 {
    (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
}
const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

/// A path segment's part of the route hash: ids (all digits, or 16+ hex
/// digits and dashes with a digit among them) count as one, as the agent's
/// `route_of` folds them into `:id`; other segments by their bytes' hash.
#[inline(always)]
fn end_segment(h: u64, seg: u64, st: u64) -> u64 {
    let len = st >> ST_LEN_SHIFT;
    let digits = st & ST_DIGITS != 0;
    let hexish = st & ST_HEXISH != 0;
    let has_digit = st & ST_HAS_DIGIT != 0;
    if len == 0 {
        h
    } else if digits || (len >= 16 && hexish && has_digit) {
        fnv(fnv(h, 0xff), 0x01)
    } else {
        (h ^ seg).wrapping_mul(0x100_0000_01b3)
    }
}

/// The route hash's state between bytes, packed: in the target yet, the
/// segment so far all digits / all hex or dashes / with a digit, and its
/// length (counted to 16, all `end_segment` asks).
const ST_IN_TARGET: u64 = 1;
const ST_DIGITS: u64 = 2;
const ST_HEXISH: u64 = 4;
const ST_HAS_DIGIT: u64 = 8;
const ST_LEN_SHIFT: u64 = 8;
const ST_SEGMENT_START: u64 = ST_DIGITS | ST_HEXISH;

/// A target byte's class, for the route hash: the bits a byte keeps of
/// `ST_DIGITS | ST_HEXISH` and adds of `ST_HAS_DIGIT` (a digit keeps both
/// and adds the last; a hex letter or `-` keeps `ST_HEXISH`), or that it
/// ends a segment (`/`) or the path (space, `?`, `#`, CR, LF, NUL). One
/// table read per byte instead of a chain of comparisons.
const CLASS_SLASH: u8 = 16;
const CLASS_END: u8 = 32;
static ROUTE_CLASS: [u8; 256] = route_classes();

const fn route_classes() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = if c.is_ascii_digit() {
            (ST_DIGITS | ST_HEXISH | ST_HAS_DIGIT) as u8
        } else if c.is_ascii_hexdigit() || c == b'-' {
            ST_HEXISH as u8
        } else if c == b'/' {
            CLASS_SLASH
        } else if matches!(c, b' ' | b'?' | b'#' | b'\r' | b'\n' | 0) {
            CLASS_END
        } else {
            0
        };
        b += 1;
    }
    t
}

/// Where the route hash keeps its state between bytes. In memory, not a
/// register, on purpose: the verifier does not track map memory, so each
/// byte's step starts from an unknown state and is checked once per byte
/// position; with the state in registers it follows every combination of
/// known values apart, past its budget.
#[map]
static HTTP_HASH_STATE: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// The route hash of a request line (the bytes up to a NUL): the method,
/// then the target's path (up to `?`, `#` or the end of the target)
/// segment by segment.
#[inline(always)]
fn route_hash(line: &[u8; HTTP_PAYLOAD_LEN]) -> Option<u64> {
    let stp = HTTP_HASH_STATE.get_ptr_mut(0)?;
    let mut h = FNV_START;
    // The method, up to its space (`is_method` checked the first four
    // bytes: at most 8 before the space, OPTIONS being the longest).
    let mut at = HTTP_PAYLOAD_LEN;
    for (i, &b) in line.iter().enumerate().take(8) {
        h = fnv(h, b);
        if b == b' ' {
            at = i + 1;
            break;
        }
    }
    if at == HTTP_PAYLOAD_LEN {
        return None;
    }
    unsafe { core::ptr::write_volatile(stp, ST_IN_TARGET | ST_SEGMENT_START) };
    let mut seg = FNV_START;
    // The loop does not look at the line's length (the verifier would then
    // follow every length apart): the bytes past it are zeros, which end it.
    for &b in line.iter().skip(at) {
        let st = unsafe { core::ptr::read_volatile(stp) };
        let class = unsafe { core::ptr::read_volatile(&ROUTE_CLASS[b as usize]) };
        if class & CLASS_END != 0 {
            break;
        }
        if class & CLASS_SLASH != 0 {
            h = fnv(end_segment(h, seg, st), b'/');
            seg = FNV_START;
            unsafe { core::ptr::write_volatile(stp, ST_IN_TARGET | ST_SEGMENT_START) };
            continue;
        }
        seg = fnv(seg, b);
        let class = class as u64;
        let mut next = (st & (class | !(ST_DIGITS | ST_HEXISH))) | (class & ST_HAS_DIGIT);
        if (st >> ST_LEN_SHIFT) < 16 {
            next += 1 << ST_LEN_SHIFT;
        }
        unsafe { core::ptr::write_volatile(stp, next) };
    }
    let st = unsafe { core::ptr::read_volatile(stp) };
    Some(end_segment(h, seg, st))
}

/// The code of a status line's first `n` bytes (`HTTP/1.x NNN`), 100 to 599.
#[inline(always)]
fn status_code(l: &[u8; HTTP_STATUS_COPY], n: usize) -> Option<u64> {
    if n < 12 {
        return None;
    }
    let [
        b'H',
        b'T',
        b'T',
        b'P',
        b'/',
        b'1',
        b'.',
        _,
        b' ',
        c0,
        c1,
        c2,
        ..,
    ] = *l
    else {
        return None;
    };
    let d = |b: u8| b.is_ascii_digit().then(|| (b - b'0') as u64);
    let code = d(c0)? * 100 + d(c1)? * 10 + d(c2)?;
    if n > 12 && !matches!(l[12], b' ' | b'\r' | b'\n') {
        return None;
    }
    (100..=599).contains(&code).then_some(code)
}

/// Reads `n` bytes (1..=`max`) of the packet at `offset` into `buf`.
#[inline(always)]
fn load_bytes(ctx: &SkBuffContext, offset: usize, buf: *mut u8, n: usize, max: usize) -> bool {
    // For the verifier: the length is checked on the value passed.
    let n = core::hint::black_box(n as u32);
    if n == 0 || n > max as u32 {
        return false;
    }
    let ret = unsafe {
        bpf_skb_load_bytes(
            ctx.skb.skb as *const c_void,
            offset as u32,
            buf as *mut c_void,
            n,
        )
    };
    ret == 0
}

// Keys are looked up by reference on purpose: by value they are copied on
// the stack first.
#[allow(clippy::needless_borrows_for_generic_args)]
#[inline(always)]
fn try_http(ctx: &SkBuffContext) -> Result<(), i64> {
    const ETH_HLEN: usize = 14;
    const PACKET_OUTGOING: u32 = 4;
    let drop_outgoing = unsafe { core::ptr::read_volatile(&raw const HTTP_CONFIG.drop_outgoing) };
    if drop_outgoing != 0 && unsafe { (*ctx.skb.skb).pkt_type } == PACKET_OUTGOING {
        return Ok(());
    }
    // One copy of the packet's first bytes: the Ethernet, IP and TCP
    // headers and, usually, the start of the payload (a status line's code
    // is then read without a second helper call). This runs for every packet.
    // (The smallest: IPv4's.)
    const HDRS: usize = ETH_HLEN + 20 + 20;
    let len = ctx.len() as usize;
    if len < HDRS + 4 {
        return Ok(());
    }
    let Some(h) = HTTP_HEAD.get_ptr_mut(0) else {
        return Ok(());
    };
    let h = unsafe { &mut *h };
    let copied = if len > HTTP_HEAD_COPY {
        HTTP_HEAD_COPY
    } else {
        len
    };
    if !load_bytes(ctx, 0, h.as_mut_ptr(), copied, HTTP_HEAD_COPY) {
        return Ok(());
    }
    // IPv4 or IPv6 (no extension header before TCP).
    let v6 = match (h[12], h[13]) {
        (0x08, 0x00) => false,
        (0x86, 0xdd) => true,
        _ => return Ok(()),
    };
    let (ihl, ip_payload_end) = if v6 {
        // The IPv6 and TCP headers and a little payload, all in `h`.
        if len < ETH_HLEN + 40 + 20 + 4 || h[ETH_HLEN + 6] != 6 {
            return Ok(());
        }
        let plen = u16::from_be_bytes([h[ETH_HLEN + 4], h[ETH_HLEN + 5]]) as usize;
        (40, ETH_HLEN + 40 + plen)
    } else {
        let ihl = ((h[ETH_HLEN] & 0x0f) as usize) * 4;
        if ihl < 20 || h[ETH_HLEN + 9] != 6 {
            return Ok(());
        }
        let tot_len = u16::from_be_bytes([h[ETH_HLEN + 2], h[ETH_HLEN + 3]]) as usize;
        (ihl, ETH_HLEN + tot_len)
    };
    let tcp = ETH_HLEN + ihl;
    // With IPv4 options the TCP header is further on: read it there.
    let th: [u8; 14] = if v6 {
        let mut t = [0u8; 14];
        t.copy_from_slice(&h[ETH_HLEN + 40..ETH_HLEN + 54]);
        t
    } else if ihl == 20 {
        let mut t = [0u8; 14];
        t.copy_from_slice(&h[ETH_HLEN + 20..ETH_HLEN + 34]);
        t
    } else {
        ctx.load(tcp)?
    };
    let sport = u16::from_be_bytes([th[0], th[1]]);
    let dport = u16::from_be_bytes([th[2], th[3]]);
    if !port_wanted(sport, dport) {
        return Ok(());
    }
    let thl = ((th[12] >> 4) as usize) * 4;
    let payload = tcp + thl;
    if ip_payload_end <= payload + 4 {
        return Ok(());
    }
    let avail = ip_payload_end - payload;
    let n = if avail > HTTP_STATUS_COPY {
        HTTP_STATUS_COPY
    } else {
        avail
    };
    let mut status = core::mem::MaybeUninit::uninit();
    let status = StatusCopy::zero(&mut status);
    // Past `copied`, the buffer holds an earlier packet's bytes.
    match h.get(payload..payload + HTTP_STATUS_COPY) {
        Some(first) if payload + HTTP_STATUS_COPY <= copied => {
            let s = status.as_mut_ptr();
            for (i, b) in first.iter().enumerate() {
                unsafe { core::ptr::write_volatile(s.add(i), *b) };
            }
        }
        _ => {
            if !load_bytes(ctx, payload, status.as_mut_ptr(), n, HTTP_STATUS_COPY) {
                return Ok(());
            }
        }
    }
    let status = status.bytes();
    let head = [status[0], status[1], status[2], status[3]];
    // The IP header, in the copy: its addresses are read only for a status
    // line or a request, not for every packet.
    let ip = unsafe { h.as_ptr().add(ETH_HLEN) };
    if &head == b"HTTP" {
        if let Some(code) = status_code(status, n) {
            // The answer's connection: the server is the sender.
            let conn = conn_key(ip, v6, dport, sport, false);
            if let Some(pending) = HTTP_OPEN.get_ptr_mut(&conn) {
                answer(pending, ip, v6, sport, code, 0, tcp_seq(th.as_ptr()));
            }
        }
    } else if is_method(&head) {
        let conn = conn_key(ip, v6, sport, dport, true);
        let packet = Request {
            ip,
            v6,
            client_port: sport,
            server_port: dport,
            payload,
            seq: tcp_seq(th.as_ptr()),
        };
        request(ctx, &packet, avail, || connection_pending(&conn));
    }
    Ok(())
}

/// The connection of the segment whose IP header is at `ip`: its client
/// is the sender when `client_sends` (a request), else the receiver.
#[inline(always)]
fn conn_key(
    ip: *const u8,
    v6: bool,
    client_port: u16,
    server_port: u16,
    client_sends: bool,
) -> HttpConnKey {
    // Every byte written below (the key has no padding): no zeroing first.
    let mut conn = core::mem::MaybeUninit::<HttpConnKey>::uninit();
    let c = conn.as_mut_ptr();
    unsafe {
        put_addr(&raw mut (*c).client_addr, ip, v6, client_sends);
        put_addr(&raw mut (*c).server_addr, ip, v6, !client_sends);
        (*c).client_port = client_port;
        (*c).server_port = server_port;
        conn.assume_init()
    }
}

/// The interface filter's open requests of `conn`, created if new.
#[inline(always)]
fn connection_pending(conn: &HttpConnKey) -> Option<*mut HttpPending> {
    if let Some(p) = HTTP_OPEN.get_ptr_mut(conn) {
        return Some(p);
    }
    // A zeroed value from the (larger) zero map, not the stack.
    let zero = HTTP_ZERO.get_ptr(0)?;
    let empty = unsafe { &*(zero as *const HttpPending) };
    let _ = HTTP_OPEN.insert(conn, empty, BPF_NOEXIST as u64);
    match HTTP_OPEN.get_ptr_mut(conn) {
        Some(p) => Some(p),
        None => {
            count_drop(drop_slot::HTTP);
            None
        }
    }
}

/// A request line: its route (reported if new), queued on its connection's
/// open requests (`pending_of`: kept by socket or by 4-tuple).
#[inline(always)]
fn request(
    ctx: &SkBuffContext,
    packet: &Request,
    avail: usize,
    pending_of: impl FnOnce() -> Option<*mut HttpPending>,
) {
    let Some((line, n)) = read_line(ctx, packet.payload, avail) else {
        return;
    };
    request_line(ctx, packet, line, n, pending_of);
}

/// The payload's first `HTTP_PAYLOAD_LEN` bytes (of `avail`) in the line
/// buffer, zeros after them, and how many were read.
#[inline(always)]
fn read_line(
    ctx: &SkBuffContext,
    payload: usize,
    avail: usize,
) -> Option<(&'static mut [u8; HTTP_PAYLOAD_LEN], usize)> {
    let line = HTTP_LINE.get_ptr_mut(0)?;
    let n = if avail > HTTP_PAYLOAD_LEN {
        HTTP_PAYLOAD_LEN
    } else {
        avail
    };
    let line = unsafe { &mut *line };
    // Zeros past the line (volatile: not turned into a memset loop).
    let words = line.as_mut_ptr() as *mut u64;
    for w in 0..HTTP_PAYLOAD_LEN / 8 {
        unsafe { core::ptr::write_volatile(words.add(w), 0) };
    }
    if !load_bytes(ctx, payload, line.as_mut_ptr(), n, HTTP_PAYLOAD_LEN) {
        return None;
    }
    Some((line, n))
}

/// A request line read into `line` (the first `n` bytes of `packet`'s
/// payload).
#[inline(always)]
fn request_line(
    ctx: &SkBuffContext,
    packet: &Request,
    line: &[u8; HTTP_PAYLOAD_LEN],
    n: usize,
    pending_of: impl FnOnce() -> Option<*mut HttpPending>,
) {
    let seq = packet.seq;
    let now = unsafe { bpf_ktime_get_ns() };
    let Some(route) = route_hash(line) else {
        return;
    };
    let Some(pending) = pending_of() else {
        return;
    };
    unsafe {
        let seqs = (*pending).seqs;
        if !seq_is_new(seq, (*pending).request_seq, seqs & SEQ_REQUEST != 0) {
            // A retransmission of a request already queued.
            return;
        }
        (*pending).request_seq = seq;
        (*pending).seqs = seqs | SEQ_REQUEST;
    }
    let generation = match HTTP_SHARED.get(http_shared::ROUTES_GENERATION) {
        Some(g) => *g,
        None => return,
    };
    let known =
        unsafe { (*pending).last_route == route && (*pending).last_generation == generation };
    if !known && unsafe { HTTP_ROUTES.get(route) }.is_none() {
        // Reported once; remembered only when the record went out, so a
        // route whose record was lost is reported again.
        let Some(mut entry) = HTTP_EVENTS.reserve::<HttpRecord>(0) else {
            count_drop(drop_slot::HTTP);
            return;
        };
        let rec = entry.as_mut_ptr();
        unsafe {
            (*rec).mono_ns = now;
            (*rec).route = route;
            // The request's sender is the client.
            put_addr(&raw mut (*rec).saddr, packet.ip, packet.v6, true);
            put_addr(&raw mut (*rec).daddr, packet.ip, packet.v6, false);
            (*rec).sport = packet.client_port;
            (*rec).dport = packet.server_port;
            (*rec).payload_len = n as u32;
        }
        // Read from the packet again (this happens once per route).
        if !load_bytes(
            ctx,
            packet.payload,
            unsafe { (*rec).payload.as_mut_ptr() },
            n,
            HTTP_PAYLOAD_LEN,
        ) {
            entry.discard(0);
            return;
        }
        entry.submit(wake_flags(&HTTP_EVENTS, HTTP_RING_BYTES));
        let _ = HTTP_ROUTES.insert(route, 1, 0);
    }
    if !known {
        unsafe {
            (*pending).last_route = route;
            (*pending).last_generation = generation;
        }
    }
    unsafe {
        let head = core::ptr::read_volatile(&(*pending).head);
        let tail = (*pending).tail;
        if tail.wrapping_sub(head) >= HTTP_PIPELINE as u32 {
            // More open requests than a connection keeps: this one is lost.
            count_drop(drop_slot::HTTP);
            return;
        }
        let slot = (tail as usize) & (HTTP_PIPELINE - 1);
        (*pending).open[slot] = HttpOpen {
            start_ns: now,
            route,
        };
        core::ptr::write_volatile(&mut (*pending).tail, tail.wrapping_add(1));
    }
}

/// A status line sent by the server (the sender of the segment whose IP
/// header is at `ip`, IPv6 when `v6`, from `server_port`): it answers the
/// connection's oldest open request, whose duration and code are summed
/// into the minute (with the server socket's cgroup, 0 if not known). The
/// answer's time is `stamp` (ns, CLOCK_MONOTONIC: TCP's departure time of
/// the segment) when it is one, else the clock's.
// The key and the zero value are passed by reference on purpose: by value
// they would be copied on the stack first (the zero value does not fit).
#[allow(clippy::needless_borrows_for_generic_args)]
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn answer(
    pending: *mut HttpPending,
    ip: *const u8,
    v6: bool,
    server_port: u16,
    code: u64,
    stamp: u64,
    seq: u32,
) {
    let open = unsafe {
        let seqs = (*pending).seqs;
        if !seq_is_new(seq, (*pending).response_seq, seqs & SEQ_RESPONSE != 0) {
            // A retransmission of a status line already counted.
            return;
        }
        (*pending).response_seq = seq;
        (*pending).seqs = seqs | SEQ_RESPONSE;
        let head = (*pending).head;
        let tail = core::ptr::read_volatile(&(*pending).tail);
        if head == tail {
            // No open request: it was sent before the filter started.
            return;
        }
        let open = (*pending).open[(head as usize) & (HTTP_PIPELINE - 1)];
        let mut now = stamp;
        if now < open.start_ns || now - open.start_ns > HTTP_OPEN_TTL_NS {
            // No usable stamp of the packet's: the clock.
            now = bpf_ktime_get_ns();
        }
        if now.wrapping_sub(open.start_ns) > HTTP_OPEN_TTL_NS {
            // Stale: forget the connection's queue.
            core::ptr::write_volatile(&mut (*pending).head, tail);
            return;
        }
        core::ptr::write_volatile(&mut (*pending).head, head.wrapping_add(1));
        (open, now, (*pending).cgroup)
    };
    let (open, now, cgroup) = open;
    let Some(clock) = HTTP_SHARED.get(http_shared::CLOCK) else {
        return;
    };
    // Written field by field in place (the address straight from the
    // header, the padding by two stores), not built and copied.
    let mut key = core::mem::MaybeUninit::<HttpRedKey>::uninit();
    let key = unsafe {
        let k = key.as_mut_ptr();
        (*k).minute = now.wrapping_add(*clock) / 60_000_000_000;
        (*k).route = open.route;
        put_addr(&raw mut (*k).server_addr, ip, v6, true);
        (*k).server_port = server_port;
        // `_pad`: 6 bytes at offset 34 of the 8-aligned key.
        let pad = (&raw mut (*k)._pad) as *mut u8;
        (pad as *mut u16).write(0);
        (pad.add(2) as *mut u32).write(0);
        (*k).cgroup = cgroup;
        key.assume_init_ref()
    };
    let value = match HTTP_RED.get_ptr_mut(key) {
        Some(v) => v,
        None => {
            let Some(zero) = HTTP_ZERO.get_ptr(0) else {
                return;
            };
            if HTTP_RED
                .insert(key, unsafe { &*zero }, BPF_NOEXIST as u64)
                .is_err()
                && HTTP_RED.get_ptr_mut(key).is_none()
            {
                // The map is full: the request is lost, and counted.
                count_drop(drop_slot::HTTP);
                return;
            }
            match HTTP_RED.get_ptr_mut(key) {
                Some(v) => v,
                None => return,
            }
        }
    };
    let us = now.wrapping_sub(open.start_ns) / 1_000;
    // The bucket: how many boundaries lie below the duration.
    let (mut lo, mut hi) = (0usize, HTTP_BOUNDS_LEN);
    for _ in 0..8 {
        if lo >= hi {
            break;
        }
        let mid = (lo + hi) / 2;
        if mid >= HTTP_BOUNDS_LEN {
            break;
        }
        let bound = unsafe { core::ptr::read_volatile(&HTTP_BOUNDS[mid]) };
        if bound < us {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    let bucket = if lo > HTTP_BOUNDS_LEN {
        HTTP_BOUNDS_LEN
    } else {
        lo
    };
    // This CPU's sums: no other CPU writes them.
    unsafe {
        let v = &mut *value;
        v.requests += 1;
        if code >= 500 {
            v.errors += 1;
        } else if code >= 400 {
            v.client_errors += 1;
        }
        v.sum_us += us;
        v.buckets[bucket] += 1;
        if us > v.max_us {
            v.max_us = us;
        }
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
