//! Decoding what the kernel programs write: ring-buffer records (OOM kills,
//! execs, TCP tracepoints) and the listen iterator's samples, into events
//! with their fields, still carrying the raw cgroup identity that
//! `attribution` turns into a pod. TCP records are decoded with the field
//! layout of each tracepoint's tracefs format file.

use std::net::{Ipv4Addr, Ipv6Addr};

use serde_json::{Map, Value, json};
use sonde_ebpf_common::{
    COMM_LEN, CgroupIdentity, ExecRecord, ListenSample, OomRecord, RecordKind, TaskIdentity,
    TcpRecord, TcpTracepoint,
};

use super::tracefs::Format;

/// An event as decoded, before attribution.
#[derive(Debug, Clone, PartialEq)]
pub struct RawEvent {
    pub boot_ns: u64,
    pub collector: &'static str,
    pub kind: String,
    pub pid: Option<u32>,
    pub comm: Option<String>,
    /// Where to look for the pod, best first.
    pub identities: Vec<(Source, CgroupIdentity)>,
    pub fields: Map<String, Value>,
}

/// How an event's cgroup identity was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The task the event is about (OOM victim, exec'ing process).
    Task,
    /// The socket's owner, recorded when it connected or listened.
    SocketOwner,
    /// The socket's own cgroup v2 (set when the socket was created).
    SockCgroup,
    /// The task on the CPU when a TCP tracepoint fired.
    Current,
    /// The process holding the socket, found in /proc.
    Process,
    /// A process in the event's network namespace (a pod's namespace is
    /// its own): the pod, not a container.
    Netns,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Task => "task",
            Source::SocketOwner => "socket",
            Source::SockCgroup => "sock_cgroup",
            Source::Current => "current",
            Source::Process => "process",
            Source::Netns => "netns",
        }
    }
}

/// Why a record could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("record of {len} bytes is shorter than a {what} ({need} bytes)")]
    Short {
        what: &'static str,
        len: usize,
        need: usize,
    },
    #[error("record kind {0} is unknown")]
    UnknownKind(u32),
    #[error("TCP record names tracepoint {0}, which is unknown")]
    UnknownTracepoint(u32),
}

fn read<T: Copy>(bytes: &[u8], what: &'static str) -> Result<T, DecodeError> {
    let need = std::mem::size_of::<T>();
    if bytes.len() < need {
        return Err(DecodeError::Short {
            what,
            len: bytes.len(),
            need,
        });
    }
    // SAFETY: T is one of the #[repr(C)] plain-integer records of
    // sonde-ebpf-common, valid for any bit pattern; read_unaligned copes
    // with the ring buffer's 8-byte alignment being less than T's.
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

/// A NUL-terminated byte string, lossily as UTF-8.
pub fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

fn comm(task: &TaskIdentity) -> String {
    c_string(&task.comm[..COMM_LEN])
}

/// The TCP tracepoints' formats, in [`TcpTracepoint`] order.
pub type TcpFormats = [Format; 4];

/// Decodes one ring-buffer record.
pub fn decode(bytes: &[u8], tcp: Option<&TcpFormats>) -> Result<RawEvent, DecodeError> {
    let kind: u32 = read(bytes, "record header")?;
    match RecordKind::from_u32(kind) {
        Some(RecordKind::Oom) => decode_oom(&read::<OomRecord>(bytes, "OOM record")?),
        Some(RecordKind::Exec) => Ok(decode_exec(&read::<ExecRecord>(bytes, "exec record")?)),
        Some(RecordKind::Tcp) => {
            let rec = read::<TcpRecord>(bytes, "TCP record")?;
            decode_tcp(&rec, tcp)
        }
        None => Err(DecodeError::UnknownKind(kind)),
    }
}

const PAGE_KB: u64 = 4;

fn decode_oom(r: &OomRecord) -> Result<RawEvent, DecodeError> {
    let page_kb = page_size_kb();
    let mut fields = Map::new();
    fields.insert("trigger_pid".into(), json!(r.trigger_pid));
    fields.insert("uid".into(), json!(r.uid));
    fields.insert("total_vm_kb".into(), json!(r.total_vm * page_kb));
    fields.insert("anon_rss_kb".into(), json!(r.anon_rss * page_kb));
    fields.insert("file_rss_kb".into(), json!(r.file_rss * page_kb));
    fields.insert("shmem_rss_kb".into(), json!(r.shmem_rss * page_kb));
    fields.insert("pgtables_kb".into(), json!(r.pgtables / 1024));
    fields.insert("oom_score_adj".into(), json!(r.oom_score_adj));
    Ok(RawEvent {
        boot_ns: r.boot_ns,
        collector: "oom",
        kind: "oom_kill".into(),
        pid: Some(r.victim.tgid),
        comm: Some(comm(&r.victim)),
        identities: vec![(Source::Task, r.victim.cgroups)],
        fields,
    })
}

fn page_size_kb() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if size > 0 {
        size as u64 / 1024
    } else {
        PAGE_KB
    }
}

fn decode_exec(r: &ExecRecord) -> RawEvent {
    let len = (r.filename_len as usize).min(r.filename.len());
    let mut fields = Map::new();
    fields.insert("ppid".into(), json!(r.ppid));
    fields.insert("filename".into(), json!(c_string(&r.filename[..len])));
    RawEvent {
        boot_ns: r.boot_ns,
        collector: "exec",
        kind: "exec".into(),
        pid: Some(r.task.tgid),
        comm: Some(comm(&r.task)),
        identities: vec![(Source::Task, r.task.cgroups)],
        fields,
    }
}

/// TCP states, as `include/net/tcp_states.h` numbers them.
pub fn tcp_state_name(state: u64) -> &'static str {
    match state {
        1 => "ESTABLISHED",
        2 => "SYN_SENT",
        3 => "SYN_RECV",
        4 => "FIN_WAIT1",
        5 => "FIN_WAIT2",
        6 => "TIME_WAIT",
        7 => "CLOSE",
        8 => "CLOSE_WAIT",
        9 => "LAST_ACK",
        10 => "LISTEN",
        11 => "CLOSING",
        12 => "NEW_SYN_RECV",
        _ => "UNKNOWN",
    }
}

const AF_INET: u64 = 2;
const AF_INET6: u64 = 10;

fn decode_tcp(r: &TcpRecord, formats: Option<&TcpFormats>) -> Result<RawEvent, DecodeError> {
    let tp = TcpTracepoint::from_u32(r.tracepoint)
        .ok_or(DecodeError::UnknownTracepoint(r.tracepoint))?;
    let mut fields = Map::new();
    let kind = match tp {
        TcpTracepoint::SetState => "state",
        TcpTracepoint::Retransmit => "retransmit",
        TcpTracepoint::SendReset => "reset_sent",
        TcpTracepoint::ReceiveReset => "reset_received",
    };
    if let Some(formats) = formats {
        let f = &formats[tp as usize];
        let rec = &r.record[..];
        if let Some((family, saddr, sport, daddr, dport)) = endpoints(f, rec) {
            fields.insert("family".into(), json!(family));
            fields.insert("saddr".into(), json!(saddr));
            fields.insert("sport".into(), json!(sport));
            fields.insert("daddr".into(), json!(daddr));
            fields.insert("dport".into(), json!(dport));
        }
        let state = f.uint(rec, "newstate").or_else(|| f.uint(rec, "state"));
        // 0: no socket (a reset sent for a segment to a closed port).
        if let Some(s) = state.filter(|s| *s != 0) {
            fields.insert("state".into(), json!(tcp_state_name(s)));
        }
        if let Some(s) = f.uint(rec, "oldstate") {
            fields.insert("oldstate".into(), json!(tcp_state_name(s)));
        }
    }
    let mut identities = Vec::new();
    if r.owner.cgroups != CgroupIdentity::default() {
        identities.push((Source::SocketOwner, r.owner.cgroups));
    }
    if r.sock_cgroup_v2 != 0 {
        identities.push((
            Source::SockCgroup,
            CgroupIdentity {
                v2_id: r.sock_cgroup_v2,
                memcg_v1_ino: 0,
            },
        ));
    }
    // The task on the CPU is the socket's user only for changes a system
    // call makes; keep it last, as a hint.
    if matches!(tp, TcpTracepoint::SetState) {
        identities.push((Source::Current, r.current.cgroups));
    }
    let (pid, comm_) = if r.owner.tgid != 0 {
        (Some(r.owner.tgid), Some(comm(&r.owner)))
    } else {
        (None, None)
    };
    Ok(RawEvent {
        boot_ns: r.boot_ns,
        collector: "tcp",
        kind: kind.into(),
        pid,
        comm: comm_,
        identities,
        fields,
    })
}

/// (family, saddr, sport, daddr, dport) from a TCP tracepoint record:
/// sport/dport/saddr/daddr(_v6) fields, or the sockaddr arrays of
/// `tcp_send_reset` (Linux 6.10+).
fn endpoints(f: &Format, rec: &[u8]) -> Option<(&'static str, String, u64, String, u64)> {
    if let (Some(sa), Some(da)) = (f.bytes(rec, "saddr"), f.bytes(rec, "daddr"))
        && sa.len() >= 16
        && !f.fields.contains_key("sport")
    {
        let (fam, s, sp) = sockaddr(sa)?;
        let (_, d, dp) = sockaddr(da)?;
        return Some((fam, s, sp, d, dp));
    }
    let family = f.uint(rec, "family")?;
    let sport = f.uint(rec, "sport")?;
    let dport = f.uint(rec, "dport")?;
    let (fam, s, d) = if family == AF_INET6 {
        let s = v6(f.bytes(rec, "saddr_v6")?)?;
        let d = v6(f.bytes(rec, "daddr_v6")?)?;
        ("inet6", s, d)
    } else {
        let s = v4(f.bytes(rec, "saddr")?)?;
        let d = v4(f.bytes(rec, "daddr")?)?;
        ("inet", s, d)
    };
    Some((fam, s, sport, d, dport))
}

fn v4(b: &[u8]) -> Option<String> {
    let a: [u8; 4] = b.get(..4)?.try_into().ok()?;
    Some(Ipv4Addr::from(a).to_string())
}

fn v6(b: &[u8]) -> Option<String> {
    let a: [u8; 16] = b.get(..16)?.try_into().ok()?;
    let ip = Ipv6Addr::from(a);
    Some(match ip.to_ipv4_mapped() {
        Some(v4) => v4.to_string(),
        None => ip.to_string(),
    })
}

/// A `struct sockaddr_in` / `sockaddr_in6` as the kernel copies it.
fn sockaddr(b: &[u8]) -> Option<(&'static str, String, u64)> {
    let family = u16::from_le_bytes(b.get(..2)?.try_into().ok()?) as u64;
    let port = u16::from_be_bytes(b.get(2..4)?.try_into().ok()?) as u64;
    match family {
        AF_INET => Some(("inet", v4(b.get(4..8)?)?, port)),
        AF_INET6 => Some(("inet6", v6(b.get(8..24)?)?, port)),
        _ => None,
    }
}

/// Splits the listen iterator's output into samples.
pub fn listen_samples(bytes: &[u8]) -> Vec<ListenSample> {
    let size = std::mem::size_of::<ListenSample>();
    bytes
        .chunks_exact(size)
        .filter_map(|c| read::<ListenSample>(c, "listen sample").ok())
        .collect()
}

/// A listening socket's address as text.
pub fn listen_addr(s: &ListenSample) -> String {
    if u64::from(s.family) == AF_INET6 {
        v6(&s.addr_v6).unwrap_or_default()
    } else {
        Ipv4Addr::from(u32::from_be(s.addr_v4).to_be_bytes()).to_string()
    }
}

/// `ListenOverflows` and `ListenDrops` from `/proc/net/netstat`'s TcpExt lines.
pub fn netstat_listen_counters(text: &str) -> Option<(u64, u64)> {
    let mut lines = text.lines();
    while let Some(header) = lines.next() {
        let values = lines.next()?;
        if !header.starts_with("TcpExt:") {
            continue;
        }
        let names: Vec<&str> = header.split_whitespace().collect();
        let nums: Vec<&str> = values.split_whitespace().collect();
        let get = |n: &str| {
            names
                .iter()
                .position(|x| *x == n)
                .and_then(|i| nums.get(i))
                .and_then(|v| v.parse().ok())
        };
        return Some((get("ListenOverflows")?, get("ListenDrops")?));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use sonde_ebpf_common::{FILENAME_LEN, TP_RECORD_LEN};

    fn bytes_of<T>(v: &T) -> Vec<u8> {
        // SAFETY: reading the bytes of a plain #[repr(C)] value.
        unsafe {
            std::slice::from_raw_parts((v as *const T).cast::<u8>(), std::mem::size_of::<T>())
        }
        .to_vec()
    }

    fn task(pid: u32, name: &str, memcg: u64) -> TaskIdentity {
        let mut comm = [0u8; COMM_LEN];
        comm[..name.len()].copy_from_slice(name.as_bytes());
        TaskIdentity {
            pid,
            tgid: pid,
            comm,
            cgroups: CgroupIdentity {
                v2_id: 1,
                memcg_v1_ino: memcg,
            },
        }
    }

    #[test]
    fn oom_and_exec_records() {
        let oom = OomRecord {
            kind: RecordKind::Oom as u32,
            _pad: 0,
            boot_ns: 5,
            victim: task(42, "eater", 777),
            trigger_pid: 43,
            uid: 0,
            total_vm: 10,
            anon_rss: 5120,
            file_rss: 1,
            shmem_rss: 0,
            pgtables: 8192,
            oom_score_adj: -998,
        };
        let e = decode(&bytes_of(&oom), None).unwrap();
        assert_eq!(
            (e.collector, e.kind.as_str(), e.pid),
            ("oom", "oom_kill", Some(42))
        );
        assert_eq!(e.comm.as_deref(), Some("eater"));
        assert_eq!(e.identities[0].1.memcg_v1_ino, 777);
        assert_eq!(e.fields["anon_rss_kb"], json!(5120 * page_size_kb()));
        assert_eq!(e.fields["pgtables_kb"], json!(8));
        assert_eq!(e.fields["oom_score_adj"], json!(-998));

        let mut filename = [0u8; FILENAME_LEN];
        filename[..8].copy_from_slice(b"/bin/tru");
        let exec = ExecRecord {
            kind: RecordKind::Exec as u32,
            _pad: 0,
            boot_ns: 1,
            task: task(7, "true", 9),
            ppid: 1,
            filename_len: 8,
            filename,
        };
        let e = decode(&bytes_of(&exec), None).unwrap();
        assert_eq!(e.fields["filename"], json!("/bin/tru"));
        assert_eq!(e.fields["ppid"], json!(1));
    }

    #[test]
    fn short_and_unknown_records_are_errors() {
        assert!(matches!(
            decode(&[1, 0], None),
            Err(DecodeError::Short { .. })
        ));
        assert_eq!(
            decode(&[9, 0, 0, 0], None),
            Err(DecodeError::UnknownKind(9))
        );
        let short = bytes_of(&1u32);
        assert!(decode(&short, None).is_err());
    }

    #[test]
    fn tcp_receive_reset_with_this_kernels_layout() {
        let format = "\tfield:const void * skaddr;\toffset:8;\tsize:8;\tsigned:0;\n\
\tfield:__u16 sport;\toffset:16;\tsize:2;\tsigned:0;\n\
\tfield:__u16 dport;\toffset:18;\tsize:2;\tsigned:0;\n\
\tfield:__u16 family;\toffset:20;\tsize:2;\tsigned:0;\n\
\tfield:__u8 saddr[4];\toffset:22;\tsize:4;\tsigned:0;\n\
\tfield:__u8 daddr[4];\toffset:26;\tsize:4;\tsigned:0;\n\
\tfield:__u8 saddr_v6[16];\toffset:30;\tsize:16;\tsigned:0;\n\
\tfield:__u8 daddr_v6[16];\toffset:46;\tsize:16;\tsigned:0;\n";
        let rr = Format::parse("tcp/tcp_receive_reset", format);
        let formats: TcpFormats = [Format::default(), Format::default(), Format::default(), rr];
        let mut record = [0u8; TP_RECORD_LEN];
        record[16..18].copy_from_slice(&40000u16.to_le_bytes());
        record[18..20].copy_from_slice(&9u16.to_le_bytes());
        record[20..22].copy_from_slice(&2u16.to_le_bytes());
        record[22..26].copy_from_slice(&[127, 0, 0, 1]);
        record[26..30].copy_from_slice(&[127, 0, 0, 2]);
        let rec = TcpRecord {
            kind: RecordKind::Tcp as u32,
            tracepoint: TcpTracepoint::ReceiveReset as u32,
            boot_ns: 1,
            current: task(1, "swapper", 0),
            owner: task(99, "curl", 555),
            sock_cgroup_v2: 0,
            record,
        };
        let e = decode(&bytes_of(&rec), Some(&formats)).unwrap();
        assert_eq!(e.kind, "reset_received");
        assert_eq!(e.fields["saddr"], json!("127.0.0.1"));
        assert_eq!(e.fields["daddr"], json!("127.0.0.2"));
        assert_eq!(e.fields["sport"], json!(40000));
        assert_eq!(e.fields["dport"], json!(9));
        assert_eq!(e.pid, Some(99));
        // Not a set_state: the task on the CPU is not taken as the owner.
        assert_eq!(e.identities.len(), 1);
        assert_eq!(e.identities[0].0, Source::SocketOwner);
    }

    #[test]
    fn send_reset_sockaddr_arrays() {
        let format = "\tfield:__u8 saddr[28];\toffset:32;\tsize:28;\tsigned:0;\n\
\tfield:__u8 daddr[28];\toffset:60;\tsize:28;\tsigned:0;\n";
        let f = Format::parse("tcp/tcp_send_reset", format);
        let mut rec = [0u8; TP_RECORD_LEN];
        rec[32..34].copy_from_slice(&2u16.to_le_bytes());
        rec[34..36].copy_from_slice(&9u16.to_be_bytes());
        rec[36..40].copy_from_slice(&[127, 0, 0, 1]);
        rec[60..62].copy_from_slice(&2u16.to_le_bytes());
        rec[62..64].copy_from_slice(&40000u16.to_be_bytes());
        rec[64..68].copy_from_slice(&[127, 0, 0, 1]);
        let (fam, s, sp, d, dp) = endpoints(&f, &rec).unwrap();
        assert_eq!(
            (fam, s.as_str(), sp, d.as_str(), dp),
            ("inet", "127.0.0.1", 9, "127.0.0.1", 40000)
        );
    }

    #[test]
    fn netstat_counters() {
        let text = "TcpExt: SyncookiesSent ListenOverflows ListenDrops\nTcpExt: 0 12 14\n\
IpExt: InNoRoutes\nIpExt: 0\n";
        assert_eq!(netstat_listen_counters(text), Some((12, 14)));
        assert_eq!(netstat_listen_counters("IpExt: A\nIpExt: 1\n"), None);
    }
}
