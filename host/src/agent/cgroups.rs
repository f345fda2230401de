//! From the cgroup identity an event carries to a pod: cgroup id (the inode
//! of the cgroup's directory) -> cgroup path -> kubelet's layout -> pod uid
//! and container id.
//!
//! kubelet names cgroups in one of two ways, on cgroup v1 and v2 alike:
//! - cgroupfs driver: `/kubepods[/burstable|/besteffort]/pod<uid>/<container-id>`
//! - systemd driver: `/kubepods.slice/kubepods-burstable.slice/
//!   kubepods-burstable-pod<uid with _ for ->.slice/<runtime>-<container-id>.scope`
//!   (`cri-containerd-`, `crio-`, `docker-`).
//!
//! The kubepods root may sit below another cgroup (a nested node, kind).

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A pod (and container, when the cgroup is a container's) named by a
/// cgroup path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodCgroup {
    pub pod_uid: String,
    /// The runtime's container id (64 hex digits usually), without the runtime prefix.
    pub container_id: Option<String>,
    /// `guaranteed`, `burstable` or `besteffort`.
    pub qos: &'static str,
}

/// Reads kubelet's layout out of a cgroup path; `None` for a cgroup that is
/// not a pod's.
pub fn parse_kubelet_path(path: &str) -> Option<PodCgroup> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let root = parts
        .iter()
        .position(|p| *p == "kubepods" || *p == "kubepods.slice")?;
    let mut qos = "guaranteed";
    let mut i = root + 1;
    let mut pod_uid = None;
    while i < parts.len() {
        let p = parts[i];
        if let Some(q) = qos_of(p) {
            qos = q;
            i += 1;
            continue;
        }
        if let Some(uid) = pod_uid_of(p) {
            pod_uid = Some(uid);
            i += 1;
            break;
        }
        return None;
    }
    let pod_uid = pod_uid?;
    let container_id = parts.get(i).and_then(|c| container_id_of(c));
    Some(PodCgroup {
        pod_uid,
        container_id,
        qos,
    })
}

fn qos_of(part: &str) -> Option<&'static str> {
    match part {
        "burstable" | "kubepods-burstable.slice" => Some("burstable"),
        "besteffort" | "kubepods-besteffort.slice" => Some("besteffort"),
        _ => None,
    }
}

fn pod_uid_of(part: &str) -> Option<String> {
    // cgroupfs: pod<uid>; systemd: kubepods[-qos]-pod<uid_with_underscores>.slice
    let raw = if let Some(rest) = part.strip_suffix(".slice") {
        let i = rest.rfind("-pod")?;
        rest[i + 4..].replace('_', "-")
    } else {
        part.strip_prefix("pod")?.to_string()
    };
    is_uid(&raw).then_some(raw)
}

/// A Kubernetes uid: 36 characters, hex digits and dashes in the 8-4-4-4-12 shape.
fn is_uid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn container_id_of(part: &str) -> Option<String> {
    let id = match part.strip_suffix(".scope") {
        Some(scope) => {
            if scope.starts_with("crio-conmon-") {
                return None;
            }
            let (_, id) = scope.rsplit_once('-')?;
            id
        }
        None => part,
    };
    (id.len() >= 12 && id.bytes().all(|b| b.is_ascii_hexdigit())).then(|| id.to_string())
}

/// One cgroup hierarchy to search: cgroup v2, or v1's memory controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hierarchy {
    V2,
    MemoryV1,
}

/// Where the hierarchies are mounted, from `/proc/self/mountinfo`.
#[derive(Debug, Clone, Default)]
pub struct Mounts {
    pub v2: Option<PathBuf>,
    pub memory_v1: Option<PathBuf>,
}

impl Mounts {
    pub fn discover() -> Self {
        std::fs::read_to_string("/proc/self/mountinfo")
            .map(|t| Self::parse(&t))
            .unwrap_or_default()
    }

    /// Parses mountinfo lines: `... MOUNTPOINT OPTS ... - FSTYPE SOURCE SUPEROPTS`.
    pub fn parse(mountinfo: &str) -> Self {
        let mut m = Mounts::default();
        for line in mountinfo.lines() {
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            let mount_point = left.split(' ').nth(4).unwrap_or_default();
            let mut r = right.split(' ');
            let fstype = r.next().unwrap_or_default();
            let _source = r.next();
            let super_opts = r.next().unwrap_or_default();
            match fstype {
                "cgroup2" if m.v2.is_none() => m.v2 = Some(PathBuf::from(mount_point)),
                "cgroup" if super_opts.split(',').any(|o| o == "memory") => {
                    m.memory_v1 = Some(PathBuf::from(mount_point))
                }
                _ => {}
            }
        }
        m
    }
}

/// Maps cgroup inodes to paths by walking the hierarchies, keeping every
/// mapping it has seen: a container's cgroup may be gone by the time its
/// OOM event is attributed, but it was seen by an earlier scan.
pub struct CgroupIndex {
    mounts: Mounts,
    v2: HashMap<u64, String>,
    memory: HashMap<u64, String>,
    last_scan: Option<Instant>,
    min_rescan: Duration,
}

impl CgroupIndex {
    pub fn new(mounts: Mounts) -> Self {
        let mut idx = Self {
            mounts,
            v2: HashMap::new(),
            memory: HashMap::new(),
            last_scan: None,
            min_rescan: Duration::from_millis(200),
        };
        idx.scan();
        idx
    }

    pub fn mounts(&self) -> &Mounts {
        &self.mounts
    }

    /// Walks both hierarchies again (new cgroups since the last scan).
    pub fn scan(&mut self) {
        self.last_scan = Some(Instant::now());
        if let Some(root) = self.mounts.v2.clone() {
            walk(&root, &mut self.v2);
        }
        if let Some(root) = self.mounts.memory_v1.clone() {
            walk(&root, &mut self.memory);
        }
    }

    /// The cgroup path (relative to its hierarchy's root, starting with `/`)
    /// of an inode, rescanning once if it is not known yet.
    pub fn path(&mut self, h: Hierarchy, ino: u64) -> Option<String> {
        if ino == 0 {
            return None;
        }
        if let Some(p) = self.map(h).get(&ino) {
            return Some(p.clone());
        }
        let due = self
            .last_scan
            .is_none_or(|t| t.elapsed() >= self.min_rescan);
        if due {
            self.scan();
        }
        self.map(h).get(&ino).cloned()
    }

    fn map(&self, h: Hierarchy) -> &HashMap<u64, String> {
        match h {
            Hierarchy::V2 => &self.v2,
            Hierarchy::MemoryV1 => &self.memory,
        }
    }

    /// The pod a cgroup identity belongs to: the v2 cgroup first, then the
    /// v1 memory cgroup.
    pub fn pod_of(&mut self, v2_id: u64, memcg_v1_ino: u64) -> (Option<String>, Option<PodCgroup>) {
        let mut first_path = None;
        for (h, ino) in [(Hierarchy::V2, v2_id), (Hierarchy::MemoryV1, memcg_v1_ino)] {
            if let Some(path) = self.path(h, ino) {
                if let Some(pod) = parse_kubelet_path(&path) {
                    return (Some(path), Some(pod));
                }
                if first_path.is_none() || first_path.as_deref() == Some("/") {
                    first_path = Some(path);
                }
            }
        }
        (first_path, None)
    }
}

fn walk(root: &Path, into: &mut HashMap<u64, String>) {
    for entry in walkdir::WalkDir::new(root)
        .follow_links(false)
        .into_iter()
        .filter_map(Result::ok)
    {
        if !entry.file_type().is_dir() {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        let rel = entry.path().strip_prefix(root).unwrap_or(entry.path());
        into.insert(meta.ino(), format!("/{}", rel.display()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "0f3c8a1e-2b4d-4c6e-8f9a-1b2c3d4e5f60";
    const CID: &str = "4b825dc642cb6eb9a060e54bf8d69288fbee4904c4b825dc642cb6eb9a060e5";

    #[test]
    fn cgroupfs_layout_all_qos_classes() {
        let p = parse_kubelet_path(&format!("/kubepods/burstable/pod{UID}/{CID}")).unwrap();
        assert_eq!(p.pod_uid, UID);
        assert_eq!(p.container_id.as_deref(), Some(CID));
        assert_eq!(p.qos, "burstable");
        let p = parse_kubelet_path(&format!("/kubepods/pod{UID}/{CID}")).unwrap();
        assert_eq!(p.qos, "guaranteed");
        let p = parse_kubelet_path(&format!("/kubepods/besteffort/pod{UID}")).unwrap();
        assert_eq!((p.qos, p.container_id), ("besteffort", None));
    }

    #[test]
    fn systemd_layout_and_runtimes() {
        let u = UID.replace('-', "_");
        for runtime in ["cri-containerd", "crio", "docker"] {
            let path = format!(
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{u}.slice/{runtime}-{CID}.scope"
            );
            let p = parse_kubelet_path(&path).unwrap();
            assert_eq!(p.pod_uid, UID, "{path}");
            assert_eq!(p.container_id.as_deref(), Some(CID), "{path}");
        }
        let guaranteed =
            format!("/kubepods.slice/kubepods-pod{u}.slice/cri-containerd-{CID}.scope");
        assert_eq!(parse_kubelet_path(&guaranteed).unwrap().qos, "guaranteed");
        // conmon is CRI-O's monitor process, not the container.
        let conmon = format!("/kubepods.slice/kubepods-pod{u}.slice/crio-conmon-{CID}.scope");
        assert_eq!(parse_kubelet_path(&conmon).unwrap().container_id, None);
    }

    #[test]
    fn nested_roots_and_non_pods() {
        let nested = format!("/system.slice/docker-abc.scope/kubepods/besteffort/pod{UID}/{CID}");
        assert_eq!(parse_kubelet_path(&nested).unwrap().pod_uid, UID);
        assert_eq!(parse_kubelet_path("/system.slice/sshd.service"), None);
        assert_eq!(parse_kubelet_path("/kubepods/burstable"), None);
        assert_eq!(parse_kubelet_path("/kubepods/podnot-a-uid/x"), None);
        assert_eq!(parse_kubelet_path("/"), None);
    }

    #[test]
    fn mountinfo_finds_v2_and_v1_memory() {
        let text = "\
30 25 0:26 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n\
31 25 0:27 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n\
32 25 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n";
        let m = Mounts::parse(text);
        assert_eq!(m.v2.as_deref(), Some(Path::new("/sys/fs/cgroup/unified")));
        assert_eq!(
            m.memory_v1.as_deref(),
            Some(Path::new("/sys/fs/cgroup/memory"))
        );
    }

    #[test]
    fn index_maps_directory_inodes_to_paths() {
        let dir = tempfile::tempdir().unwrap();
        let leaf = dir
            .path()
            .join(format!("kubepods/burstable/pod{UID}/{CID}"));
        std::fs::create_dir_all(&leaf).unwrap();
        let ino = std::fs::metadata(&leaf).unwrap().ino();
        let mut idx = CgroupIndex::new(Mounts {
            v2: None,
            memory_v1: Some(dir.path().to_path_buf()),
        });
        let (path, pod) = idx.pod_of(0, ino);
        assert_eq!(path.unwrap(), format!("/kubepods/burstable/pod{UID}/{CID}"));
        assert_eq!(pod.unwrap().container_id.as_deref(), Some(CID));
        // Removed afterwards: still known from the earlier scan.
        std::fs::remove_dir(&leaf).unwrap();
        assert!(idx.pod_of(0, ino).1.is_some());
    }
}
