//! The `kernel-log` collector: the kernel's own log (`/dev/kmsg`) read on
//! the node and matched against node-problem-detector's default kernel
//! monitor rules (`config/kernel-monitor.json`: OOM kills, hung tasks,
//! oopses, ext4 and I/O errors, XFS shutdowns, read-only remounts, ...).
//! Each match is one event: its kind is the rule's reason (`TaskHung`,
//! `KernelOops`, ...), with the message, the Node condition a permanent
//! problem sets, and the record's level and sequence number. A node then
//! needs no node-problem-detector for `kernel-audit` to see its kernel's
//! problems.
//!
//! Only the kernel's records count (facility 0): a process that writes
//! into `/dev/kmsg` gets the user facility from the kernel, so it cannot
//! pass a line off as the kernel's. As node-problem-detector does, the
//! records already in the kernel's buffer when the agent starts are read
//! back `LOOKBACK` (5 minutes), and a pattern matches the end of a message
//! (its rule's pattern followed by `\z`).

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::OnceLock;
use std::time::Duration;

use regex::Regex;
use serde_json::{Map, Value, json};
use tokio::sync::{mpsc, watch};

use super::Item;
use super::records::RawEvent;
use crate::runtime::cut;

/// The collector's name.
pub const COLLECTOR: &str = "kernel-log";
/// Where the kernel's log is read.
pub const PATH: &str = "/dev/kmsg";
/// How far back the records already in the kernel's buffer are read at
/// start (node-problem-detector's default `lookback`).
pub const LOOKBACK: Duration = Duration::from_secs(300);
/// How often the log is read: kernel problems are rare, and a read of an
/// idle log costs one system call.
const DRAIN_INTERVAL: Duration = Duration::from_secs(1);
/// The longest message kept.
const MAX_MESSAGE: usize = 2048;

/// One of node-problem-detector's kernel monitor rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// The problem's reason (an Event's reason on a Node).
    pub reason: &'static str,
    /// The Node condition a permanent problem sets to True.
    pub condition: Option<&'static str>,
    /// The regular expression, as node-problem-detector has it.
    pub pattern: &'static str,
}

const fn temporary(reason: &'static str, pattern: &'static str) -> Rule {
    Rule {
        reason,
        condition: None,
        pattern,
    }
}

const fn permanent(reason: &'static str, condition: &'static str, pattern: &'static str) -> Rule {
    Rule {
        reason,
        condition: Some(condition),
        pattern,
    }
}

/// node-problem-detector's `config/kernel-monitor.json` rules, in its order
/// (the first that matches names the problem).
pub const RULES: &[Rule] = &[
    temporary(
        "OOMKilling",
        r"Killed process \d+ (.+) total-vm:\d+kB, anon-rss:\d+kB, file-rss:\d+kB.*",
    ),
    temporary(
        "TaskHung",
        r"task [\S ]+:\w+ blocked for more than \w+ seconds\.",
    ),
    temporary(
        "UnregisterNetDevice",
        r"unregister_netdevice: waiting for \w+ to become free. Usage count = \d+",
    ),
    temporary(
        "KernelOops",
        r"BUG: unable to handle kernel NULL pointer dereference at .*",
    ),
    temporary("KernelOops", r"divide error: 0000 \[#\d+\] SMP"),
    temporary("Ext4Error", r"EXT4-fs error .*"),
    temporary("Ext4Warning", r"EXT4-fs warning .*"),
    temporary("IOError", r"Buffer I/O error .*"),
    permanent(
        "XfsHasShutdown",
        "XfsShutdown",
        r"XFS .* Shutting down filesystem.?",
    ),
    temporary("MemoryReadError", r"CE memory read error .*"),
    permanent(
        "DockerHung",
        "KernelDeadlock",
        r"task docker:\w+ blocked for more than \w+ seconds\.",
    ),
    permanent(
        "FilesystemIsReadOnly",
        "ReadonlyFilesystem",
        r"Remounting filesystem read-only",
    ),
];

fn compiled() -> &'static [Regex] {
    static COMPILED: OnceLock<Vec<Regex>> = OnceLock::new();
    COMPILED.get_or_init(|| {
        RULES
            .iter()
            .map(|r| {
                // The patterns are constants, checked by a unit test.
                Regex::new(&format!("(?:{})\\z", r.pattern))
                    .unwrap_or_else(|e| panic!("kernel-monitor pattern {:?}: {e}", r.pattern))
            })
            .collect()
    })
}

/// The rules a kernel message matches: each is a problem of its own, as
/// node-problem-detector reports it (a hung `docker` task is TaskHung and
/// DockerHung).
pub fn rules_of(message: &str) -> Vec<&'static Rule> {
    compiled()
        .iter()
        .zip(RULES)
        .filter(|(re, _)| re.is_match(message))
        .map(|(_, rule)| rule)
        .collect()
}

/// One `/dev/kmsg` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub facility: u8,
    pub level: u8,
    pub seq: u64,
    /// Microseconds since boot, on the kernel's log clock.
    pub usec: u64,
    pub message: String,
}

/// A record as `/dev/kmsg` gives it: `priority,sequence,usec,flags[,...];message`,
/// then continuation lines (` KEY=value`, not kept). Non-printable bytes
/// of the message come escaped (`\x0a`) and stay so.
pub fn parse(raw: &[u8]) -> Option<Record> {
    let text = String::from_utf8_lossy(raw);
    let (prefix, rest) = text.split_once(';')?;
    let mut fields = prefix.split(',');
    let priority: u32 = fields.next()?.parse().ok()?;
    let seq = fields.next()?.parse().ok()?;
    let usec = fields.next()?.parse().ok()?;
    let message = rest.split('\n').next().unwrap_or("");
    Some(Record {
        facility: u8::try_from(priority >> 3).unwrap_or(u8::MAX),
        level: (priority & 7) as u8,
        seq,
        usec,
        message: message.to_string(),
    })
}

/// The pid and command an OOM kill's message names (`Killed process 4242 (python3) ...`).
fn killed_process(message: &str) -> Option<(u32, String)> {
    let rest = &message[message.find("Killed process ")? + "Killed process ".len()..];
    let (pid, rest) = rest.split_once(' ')?;
    let comm = rest.strip_prefix('(')?.split_once(") ")?.0;
    Some((pid.parse().ok()?, comm.to_string()))
}

/// The events a kernel record is: one per problem it reports.
pub fn events_of(r: &Record) -> Vec<RawEvent> {
    if r.facility != 0 {
        return Vec::new();
    }
    rules_of(&r.message)
        .into_iter()
        .map(|rule| event(r, rule))
        .collect()
}

fn event(r: &Record, rule: &Rule) -> RawEvent {
    let mut fields = Map::new();
    fields.insert(
        "message".into(),
        Value::String(cut(&r.message, MAX_MESSAGE)),
    );
    if let Some(c) = rule.condition {
        fields.insert("condition".into(), json!(c));
    }
    fields.insert("level".into(), json!(r.level));
    fields.insert("seq".into(), json!(r.seq));
    let killed = (rule.reason == "OOMKilling")
        .then(|| killed_process(&r.message))
        .flatten();
    RawEvent {
        boot_ns: r.usec.saturating_mul(1000),
        collector: COLLECTOR,
        kind: rule.reason.to_string(),
        pid: killed.as_ref().map(|k| k.0),
        comm: killed.map(|k| k.1),
        identities: Vec::new(),
        fields,
    }
}

/// Opens the kernel's log for reading without blocking, or says why not.
pub fn open() -> Result<File, String> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(PATH)
        .map_err(|e| format!("cannot read {PATH}: {e}"))
}

/// Reads the log until shutdown: what is in the kernel's buffer from
/// `since_usec` on, then every new record, handing the problems found to
/// the processor.
pub(super) async fn read_kmsg(
    mut file: File,
    since_usec: u64,
    tx: mpsc::Sender<Vec<Item>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(DRAIN_INTERVAL);
    // A record is at most about 8 KiB (the kernel's line limit with its prefix).
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        // The log's clock is the monotonic one; events carry boot time.
        let to_boot = u64::try_from(
            super::clock_ns(libc::CLOCK_BOOTTIME) - super::clock_ns(libc::CLOCK_MONOTONIC),
        )
        .unwrap_or(0);
        let mut items = Vec::new();
        loop {
            match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => match parse(&buf[..n]) {
                    Some(r) if r.usec >= since_usec => {
                        items.extend(events_of(&r).into_iter().map(|mut e| {
                            e.boot_ns = e.boot_ns.saturating_add(to_boot);
                            Item::Event(e)
                        }));
                    }
                    Some(_) => {}
                    None => items.push(Item::Undecodable(
                        COLLECTOR,
                        format!(
                            "not a kmsg record: {:?}",
                            cut(&String::from_utf8_lossy(&buf[..n]), 120)
                        ),
                    )),
                },
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                // Records were overwritten before they were read: the read
                // goes on from the oldest one left.
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "{PATH} cannot be read any more");
                    return;
                }
            }
        }
        if !items.is_empty() && tx.send(items).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pattern_compiles() {
        assert_eq!(compiled().len(), RULES.len());
    }

    #[test]
    fn kernel_messages_are_named_as_node_problem_detector_names_them() {
        // Lines as kernels print them (node-problem-detector's test logs and
        // kernel sources).
        for (message, reasons) in [
            (
                "Memory cgroup out of memory: Killed process 4242 (python3) total-vm:1226804kB, anon-rss:1046828kB, file-rss:4kB, shmem-rss:0kB, UID:0 pgtables:2112kB oom_score_adj:0",
                vec!["OOMKilling"],
            ),
            (
                "INFO: task kworker/u4:2:123 blocked for more than 120 seconds.",
                vec!["TaskHung"],
            ),
            (
                "INFO: task docker:20744 blocked for more than 120 seconds.",
                // Both, as node-problem-detector reports it.
                vec!["TaskHung", "DockerHung"],
            ),
            (
                "unregister_netdevice: waiting for eth0 to become free. Usage count = 1",
                vec!["UnregisterNetDevice"],
            ),
            (
                "BUG: unable to handle kernel NULL pointer dereference at 0000000000000008",
                vec!["KernelOops"],
            ),
            ("divide error: 0000 [#1] SMP", vec!["KernelOops"]),
            (
                "EXT4-fs error (device sda1): ext4_find_entry:1455: inode #2: comm ls: reading directory lblock 0",
                vec!["Ext4Error"],
            ),
            (
                "EXT4-fs warning (device sda1): ext4_dx_add_entry:2006: Directory index full!",
                vec!["Ext4Warning"],
            ),
            (
                "Buffer I/O error on dev sdb1, logical block 0, async page read",
                vec!["IOError"],
            ),
            (
                "XFS (dm-3): Corruption of in-memory data detected.  Shutting down filesystem",
                vec!["XfsHasShutdown"],
            ),
            (
                "EXT4-fs (sda1): Remounting filesystem read-only",
                vec!["FilesystemIsReadOnly"],
            ),
            (
                "CE memory read error on CPU_SrcID#0_Ha#0_Chan#1_DIMM#0",
                vec!["MemoryReadError"],
            ),
            ("eth0: link up", vec![]),
            // The pattern must reach the message's end.
            (
                "INFO: task a:1 blocked for more than 120 seconds. and more",
                vec![],
            ),
        ] {
            let got: Vec<&str> = rules_of(message).iter().map(|r| r.reason).collect();
            assert_eq!(got, reasons, "{message}");
        }
        assert_eq!(
            rules_of("EXT4-fs (sda1): Remounting filesystem read-only")[0].condition,
            Some("ReadonlyFilesystem")
        );
    }

    #[test]
    fn records_are_parsed_and_only_the_kernels_count() {
        let r = parse(b"6,1423,52894411,-;Killed process 4242 (python3) total-vm:1226804kB, anon-rss:1046828kB, file-rss:4kB, shmem-rss:0kB\n SUBSYSTEM=memory\n").unwrap();
        assert_eq!(
            (r.facility, r.level, r.seq, r.usec),
            (0, 6, 1423, 52_894_411)
        );
        assert!(r.message.ends_with("shmem-rss:0kB"), "{}", r.message);
        let e = events_of(&r).pop().unwrap();
        assert_eq!(e.kind, "OOMKilling");
        assert_eq!(e.collector, COLLECTOR);
        assert_eq!((e.pid, e.comm.as_deref()), (Some(4242), Some("python3")));
        assert_eq!(e.boot_ns, 52_894_411_000);
        assert_eq!(e.fields["level"], 6);
        assert!(e.fields.get("condition").is_none());
        // A process writing the same words into /dev/kmsg: user facility (1).
        let forged =
            parse(b"11,1424,52894500,-;INFO: task docker:1 blocked for more than 120 seconds.")
                .unwrap();
        assert_eq!(forged.facility, 1);
        assert!(events_of(&forged).is_empty());
        let permanent = parse(b"3,9,10,-;EXT4-fs (vda1): Remounting filesystem read-only").unwrap();
        assert_eq!(
            events_of(&permanent)[0].fields["condition"],
            "ReadonlyFilesystem"
        );
        assert!(parse(b"no prefix").is_none());
        assert!(parse(b"x,1,2,-;m").is_none());
    }
}
