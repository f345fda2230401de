//! Kernel structure offsets for the collector programs, read from the
//! running kernel's BTF (`/sys/kernel/btf/vmlinux`): the userspace half of
//! CO-RE. The programs read kernel memory only at these offsets, so one
//! object works on every kernel whose BTF describes the fields; a field this
//! kernel lacks makes the collectors that need it unavailable, naming it.

use std::path::Path;

use btfparse::{Offset, Readable, TypeInformation, TypeVariant};
use sonde_ebpf_common::KernelOffsets;

/// Where the kernel publishes its own BTF.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// Why offsets could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    #[error("the kernel has no BTF at {path} (it needs CONFIG_DEBUG_INFO_BTF): {source}")]
    Missing {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot parse the kernel's BTF at {path}: {message}")]
    Parse { path: String, message: String },
    #[error("the kernel's BTF has no {what}")]
    NoField { what: String },
}

struct Bytes(Vec<u8>);

impl Readable for Bytes {
    fn read(&self, offset: u64, buffer: &mut [u8]) -> btfparse::Result<()> {
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        match start
            .checked_add(buffer.len())
            .and_then(|end| self.0.get(start..end))
        {
            Some(src) => {
                buffer.copy_from_slice(src);
                Ok(())
            }
            None => Err(btfparse::Error::new(
                btfparse::ErrorKind::IOError,
                "read past the end of the BTF data",
            )),
        }
    }
}

/// The kernel's types, parsed once.
pub struct KernelTypes {
    types: TypeInformation,
}

impl KernelTypes {
    /// Parses the running kernel's BTF.
    pub fn load() -> Result<Self, BtfError> {
        Self::load_from(Path::new(VMLINUX_BTF))
    }

    pub fn load_from(path: &Path) -> Result<Self, BtfError> {
        let data = std::fs::read(path).map_err(|source| BtfError::Missing {
            path: path.display().to_string(),
            source,
        })?;
        let types = TypeInformation::new(&Bytes(data)).map_err(|e| BtfError::Parse {
            path: path.display().to_string(),
            message: format!("{e:?}"),
        })?;
        Ok(Self { types })
    }

    /// Byte offset of `path` (`a.b[2].c`, anonymous members looked through)
    /// inside `struct ty`.
    pub fn offset(&self, ty: &str, path: &str) -> Result<u32, BtfError> {
        let missing = || BtfError::NoField {
            what: format!("field {ty}.{path}"),
        };
        let id = self.struct_id(ty).ok_or_else(missing)?;
        match self.types.offset_of(id, path) {
            Ok((_, Offset::ByteOffset(off))) => Ok(off),
            _ => Err(missing()),
        }
    }

    /// Whether `struct ty` has the member `path`.
    pub fn has(&self, ty: &str, path: &str) -> bool {
        self.offset(ty, path).is_ok()
    }

    /// The value of enumerator `name` in `enum ty`.
    pub fn enum_value(&self, ty: &str, name: &str) -> Result<u32, BtfError> {
        self.find_enumerator(Some(ty), name)
            .ok_or_else(|| BtfError::NoField {
                what: format!("enumerator {ty}::{name}"),
            })
    }

    /// The value of enumerator `name` in any enum (`None`) or in `enum ty`.
    fn find_enumerator(&self, ty: Option<&str>, name: &str) -> Option<u32> {
        self.types.get().values().find_map(|variant| match variant {
            TypeVariant::Enum(e) if ty.is_none() || e.name().as_deref() == ty => e
                .named_value_list()
                .iter()
                .find(|v| v.name == name)
                .map(|v| match v.value {
                    btfparse::Integer32Value::Signed(s) => s as u32,
                    btfparse::Integer32Value::Unsigned(u) => u,
                }),
            _ => None,
        })
    }

    /// Size of `struct ty` in bytes.
    pub fn size_of(&self, ty: &str) -> Result<u32, BtfError> {
        let id = self.struct_id(ty).ok_or_else(|| BtfError::NoField {
            what: format!("struct {ty}"),
        })?;
        self.types
            .size_of(id)
            .map(|s| s as u32)
            .map_err(|_| BtfError::NoField {
                what: format!("size of struct {ty}"),
            })
    }

    /// Whether the kernel declares the function (or tracepoint type) `name`.
    pub fn has_type(&self, name: &str) -> bool {
        self.types.id_of(name).is_some()
    }

    fn struct_id(&self, name: &str) -> Option<u32> {
        // Names are shared by kinds (a struct and a typedef, a forward
        // declaration): take the one that is a struct or union.
        let id = self.types.id_of(name)?;
        match self.types.from_id(id) {
            Some(TypeVariant::Struct(_) | TypeVariant::Union(_)) => Some(id),
            _ => self.types.get().iter().find_map(|(id, v)| match v {
                TypeVariant::Struct(s) if s.name().as_deref() == Some(name) => Some(*id),
                TypeVariant::Union(u) if u.name().as_deref() == Some(name) => Some(*id),
                _ => None,
            }),
        }
    }
}

/// Every offset the programs use. `memcg_v1` says whether the memory
/// controller is on a v1 hierarchy (then the memcg offsets are filled).
pub fn kernel_offsets(k: &KernelTypes, memcg_v1: bool) -> Result<KernelOffsets, BtfError> {
    let memory_id = k.enum_value("cgroup_subsys_id", "memory_cgrp_id")?;
    let ptr = 8u32;
    // mm_struct.rss_stat is `struct percpu_counter rss_stat[NR_MM_COUNTERS]`
    // (Linux 6.2+); get_mm_counter reads each counter's `count`.
    let file = k.enum_value_any("MM_FILEPAGES")?;
    let anon = k.enum_value_any("MM_ANONPAGES")?;
    let shmem = k.enum_value_any("MM_SHMEMPAGES")?;
    let rss = |i: u32| -> Result<u32, BtfError> {
        let base = k.offset("mm_struct", &format!("rss_stat[{i}]"))?;
        Ok(base + k.offset("percpu_counter", "count")?)
    };
    Ok(KernelOffsets {
        task_pid: k.offset("task_struct", "pid")?,
        task_tgid: k.offset("task_struct", "tgid")?,
        task_comm: k.offset("task_struct", "comm")?,
        task_cgroups: k.offset("task_struct", "cgroups")?,
        task_mm: k.offset("task_struct", "mm")?,
        task_signal: k.offset("task_struct", "signal")?,
        task_real_parent: k.offset("task_struct", "real_parent")?,
        css_set_dfl_cgrp: k.offset("css_set", "dfl_cgrp")?,
        css_set_memory_subsys: k.offset("css_set", "subsys")? + memory_id * ptr,
        css_cgroup: k.offset("cgroup_subsys_state", "cgroup")?,
        cgroup_kn: k.offset("cgroup", "kn")?,
        kernfs_node_id: k.offset("kernfs_node", "id")?,
        mm_total_vm: k.offset("mm_struct", "total_vm")?,
        mm_rss_file: rss(file)?,
        mm_rss_anon: rss(anon)?,
        mm_rss_shmem: rss(shmem)?,
        mm_pgtables_bytes: k.offset("mm_struct", "pgtables_bytes")?,
        signal_oom_score_adj: k.offset("signal_struct", "oom_score_adj")?,
        binprm_filename: k.offset("linux_binprm", "filename")?,
        sock_cgroup: k.offset("sock", "sk_cgrp_data.cgroup")?,
        sock_ack_backlog: k.offset("sock", "sk_ack_backlog")?,
        sock_max_ack_backlog: k.offset("sock", "sk_max_ack_backlog")?,
        sock_state: k.offset("sock_common", "skc_state")?,
        sock_family: k.offset("sock_common", "skc_family")?,
        sock_num: k.offset("sock_common", "skc_num")?,
        sock_rcv_saddr: k.offset("sock_common", "skc_rcv_saddr")?,
        sock_v6_rcv_saddr: k.offset("sock_common", "skc_v6_rcv_saddr")?,
        sock_net: k.offset("sock_common", "skc_net")?,
        net_ns_inum: k.offset("net", "ns.inum")?,
        tp_skaddr: [0; 4],
        sock_socket: k.offset("sock", "sk_socket")?,
        socket_file: k.offset("socket", "file")?,
        file_inode: k.offset("file", "f_inode")?,
        inode_ino: k.offset("inode", "i_ino")?,
        memcg_v1: u32::from(memcg_v1),
        tcp_records: 0,
    })
}

impl KernelTypes {
    /// The value of an enumerator of any enum, by name.
    fn enum_value_any(&self, name: &str) -> Result<u32, BtfError> {
        self.find_enumerator(None, name)
            .ok_or_else(|| BtfError::NoField {
                what: format!("enumerator {name}"),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_every_offset_on_this_kernel() {
        let Ok(k) = KernelTypes::load() else {
            eprintln!("skipped: this kernel has no BTF at {VMLINUX_BTF}");
            return;
        };
        let o = kernel_offsets(&k, true).expect("offsets");
        // Sanity: fields of one struct are distinct and within the struct.
        let task = k.size_of("task_struct").unwrap();
        for off in [
            o.task_pid,
            o.task_tgid,
            o.task_comm,
            o.task_cgroups,
            o.task_mm,
        ] {
            assert!(
                off < task,
                "offset {off} outside task_struct ({task} bytes)"
            );
        }
        assert_eq!(
            o.task_tgid,
            o.task_pid + 4,
            "pid and tgid are adjacent pid_t"
        );
        assert_ne!(o.mm_rss_file, o.mm_rss_anon);
        // The memory subsystem pointer lies inside css_set.subsys[].
        let subsys = k.offset("css_set", "subsys").unwrap();
        assert!(o.css_set_memory_subsys >= subsys);
    }

    #[test]
    fn a_missing_field_is_named() {
        let Ok(k) = KernelTypes::load() else {
            eprintln!("skipped: this kernel has no BTF at {VMLINUX_BTF}");
            return;
        };
        let err = k.offset("task_struct", "no_such_field").unwrap_err();
        assert_eq!(
            err.to_string(),
            "the kernel's BTF has no field task_struct.no_such_field"
        );
    }
}
