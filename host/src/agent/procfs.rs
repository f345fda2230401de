//! Finding a socket's process in `/proc` when the kernel did not record its
//! owner (a listener opened before the agent started): the process whose
//! `fd/` links to `socket:[INODE]`, its cgroups and its command name; and
//! the network namespaces processes are in (each pod has its own), with a
//! process in each.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use sonde_ebpf_common::CgroupIdentity;

use super::cgroups::Mounts;

/// The process holding each of `inodes` (the first one found).
pub fn socket_owners(proc_root: &Path, inodes: &HashSet<u64>) -> HashMap<u64, u32> {
    let mut out = HashMap::new();
    if inodes.is_empty() {
        return out;
    }
    let Ok(procs) = std::fs::read_dir(proc_root) else {
        return out;
    };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let Some(ino) = target
                .to_str()
                .and_then(|t| t.strip_prefix("socket:["))
                .and_then(|t| t.strip_suffix(']'))
                .and_then(|t| t.parse::<u64>().ok())
            else {
                continue;
            };
            if inodes.contains(&ino) {
                out.entry(ino).or_insert(pid);
            }
        }
        if out.len() == inodes.len() {
            break;
        }
    }
    out
}

/// A process's cgroup identity, as the kernel programs would have read it:
/// the inodes of its v2 and v1 memory cgroup directories.
pub fn cgroup_identity(proc_root: &Path, pid: u32, mounts: &Mounts) -> CgroupIdentity {
    let text =
        std::fs::read_to_string(proc_root.join(pid.to_string()).join("cgroup")).unwrap_or_default();
    let mut id = CgroupIdentity::default();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (
            parts.next(),
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
        );
        let ino = |root: &Option<std::path::PathBuf>| {
            root.as_ref()
                .and_then(|r| std::fs::metadata(r.join(path.trim_start_matches('/'))).ok())
                .map(|m| m.ino())
                .unwrap_or(0)
        };
        if controllers.is_empty() {
            id.v2_id = ino(&mounts.v2);
        } else if controllers.split(',').any(|c| c == "memory") {
            id.memcg_v1_ino = ino(&mounts.memory_v1);
        }
    }
    id
}

/// The inode of a process's network namespace (`/proc/<pid>/ns/net`).
pub fn netns_of(proc_root: &Path, pid: u32) -> Option<u64> {
    std::fs::metadata(proc_root.join(pid.to_string()).join("ns/net"))
        .ok()
        .map(|m| m.ino())
}

/// Every network namespace some process is in, by inode, with the lowest
/// pid in it (a pod's first process: its sandbox's).
pub fn net_namespaces(proc_root: &Path) -> BTreeMap<u64, u32> {
    let mut out = BTreeMap::new();
    let Ok(procs) = std::fs::read_dir(proc_root) else {
        return out;
    };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if let Some(ino) = netns_of(proc_root, pid) {
            out.entry(ino)
                .and_modify(|first: &mut u32| *first = (*first).min(pid))
                .or_insert(pid);
        }
    }
    out
}

/// `/proc/<pid>/comm`.
pub fn comm(proc_root: &Path, pid: u32) -> Option<String> {
    std::fs::read_to_string(proc_root.join(pid.to_string()).join("comm"))
        .ok()
        .map(|s| s.trim_end().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_this_process_by_its_listening_socket() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        use std::os::fd::AsRawFd;
        let link = std::fs::read_link(format!("/proc/self/fd/{}", l.as_raw_fd())).unwrap();
        let ino: u64 = link
            .to_str()
            .unwrap()
            .trim_start_matches("socket:[")
            .trim_end_matches(']')
            .parse()
            .unwrap();
        let owners = socket_owners(Path::new("/proc"), &HashSet::from([ino]));
        assert_eq!(owners.get(&ino), Some(&std::process::id()));
        assert!(comm(Path::new("/proc"), std::process::id()).is_some());
        let id = cgroup_identity(Path::new("/proc"), std::process::id(), &Mounts::discover());
        // Whatever the hierarchy, the cgroup directories exist and have inodes.
        let m = Mounts::discover();
        assert_eq!(id.v2_id != 0, m.v2.is_some());
    }

    #[test]
    fn lists_this_process_network_namespace() {
        let proc_root = Path::new("/proc");
        let me = std::process::id();
        let ino = netns_of(proc_root, me).expect("this process's network namespace");
        let spaces = net_namespaces(proc_root);
        let first = spaces[&ino];
        assert!(
            first <= me,
            "the lowest pid in the namespace: {first} vs {me}"
        );
        assert_eq!(netns_of(proc_root, first), Some(ino));
        assert_eq!(netns_of(proc_root, u32::MAX), None);
    }
}
