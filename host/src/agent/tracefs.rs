//! tracefs: making sure it is mounted (aya finds tracepoint ids there) and
//! reading a tracepoint's record layout from its `format` file, which is how
//! userspace decodes the raw records the TCP programs copy.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Where tracefs is (or gets) mounted.
pub const TRACEFS: &str = "/sys/kernel/tracing";

/// A tracefs problem, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum TracefsError {
    #[error(
        "tracefs is not mounted at {TRACEFS} and mounting it failed: {0} (mount it, or run as root)"
    )]
    NotMounted(String),
    #[error("tracepoint {category}/{name} does not exist on this kernel ({path})")]
    NoTracepoint {
        category: String,
        name: String,
        path: String,
    },
    #[error("cannot read {path}: {message}")]
    Read { path: String, message: String },
    #[error("tracepoint {tracepoint}: field {field} is {found}, the collector expects {expected}")]
    Layout {
        tracepoint: String,
        field: String,
        found: String,
        expected: String,
    },
}

/// Mounts tracefs at [`TRACEFS`] unless it is there already.
pub fn ensure_mounted() -> Result<PathBuf, TracefsError> {
    let root = PathBuf::from(TRACEFS);
    if root.join("events").is_dir() {
        return Ok(root);
    }
    let target = std::ffi::CString::new(TRACEFS).expect("no NUL");
    let fstype = std::ffi::CString::new("tracefs").expect("no NUL");
    let source = std::ffi::CString::new("nodev").expect("no NUL");
    // SAFETY: valid NUL-terminated strings; no data argument.
    let rc = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(TracefsError::NotMounted(
            std::io::Error::last_os_error().to_string(),
        ));
    }
    Ok(root)
}

/// One field of a tracepoint record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub offset: usize,
    pub size: usize,
}

/// A tracepoint's record layout: its fields by name.
#[derive(Debug, Clone, Default)]
pub struct Format {
    pub tracepoint: String,
    pub fields: HashMap<String, Field>,
}

impl Format {
    /// Reads `events/<category>/<name>/format` under `root`.
    pub fn read(root: &Path, category: &str, name: &str) -> Result<Self, TracefsError> {
        let path = root.join("events").join(category).join(name).join("format");
        let text = std::fs::read_to_string(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                TracefsError::NoTracepoint {
                    category: category.into(),
                    name: name.into(),
                    path: path.display().to_string(),
                }
            } else {
                TracefsError::Read {
                    path: path.display().to_string(),
                    message: e.to_string(),
                }
            }
        })?;
        Ok(Self::parse(&format!("{category}/{name}"), &text))
    }

    /// Parses the text of a format file (`field:TYPE NAME; offset:N; size:N; ...`).
    pub fn parse(tracepoint: &str, text: &str) -> Self {
        let mut fields = HashMap::new();
        for line in text.lines() {
            let line = line.trim();
            let Some(rest) = line.strip_prefix("field:") else {
                continue;
            };
            let mut parts = rest.split(';').map(str::trim);
            let decl = parts.next().unwrap_or_default();
            let mut offset = None;
            let mut size = None;
            for p in parts {
                if let Some(v) = p.strip_prefix("offset:") {
                    offset = v.parse().ok();
                } else if let Some(v) = p.strip_prefix("size:") {
                    size = v.parse().ok();
                }
            }
            // The name is the declaration's last word, without an array suffix.
            let name = decl
                .rsplit(|c: char| c.is_whitespace() || c == '*')
                .next()
                .unwrap_or_default();
            let name = name.split('[').next().unwrap_or_default();
            if let (Some(offset), Some(size)) = (offset, size)
                && !name.is_empty()
            {
                fields.insert(name.to_string(), Field { offset, size });
            }
        }
        Self {
            tracepoint: tracepoint.into(),
            fields,
        }
    }

    /// The field, or a layout error naming it.
    pub fn field(&self, name: &str) -> Result<Field, TracefsError> {
        self.fields
            .get(name)
            .copied()
            .ok_or_else(|| TracefsError::Layout {
                tracepoint: self.tracepoint.clone(),
                field: name.into(),
                found: "missing".into(),
                expected: "present".into(),
            })
    }

    /// Checks that a field the kernel program reads at a fixed place is there.
    pub fn expect(&self, name: &str, offset: usize, size: usize) -> Result<(), TracefsError> {
        let f = self.field(name)?;
        if f.offset != offset || f.size != size {
            return Err(TracefsError::Layout {
                tracepoint: self.tracepoint.clone(),
                field: name.into(),
                found: format!("at offset {} size {}", f.offset, f.size),
                expected: format!("offset {offset} size {size}"),
            });
        }
        Ok(())
    }

    /// Reads an unsigned little-endian integer field from a record.
    pub fn uint(&self, record: &[u8], name: &str) -> Option<u64> {
        let f = self.fields.get(name)?;
        let bytes = record.get(f.offset..f.offset + f.size)?;
        let mut v = [0u8; 8];
        let n = f.size.min(8);
        v[..n].copy_from_slice(&bytes[..n]);
        Some(u64::from_le_bytes(v))
    }

    /// Reads a byte-array field from a record.
    pub fn bytes<'r>(&self, record: &'r [u8], name: &str) -> Option<&'r [u8]> {
        let f = self.fields.get(name)?;
        record.get(f.offset..f.offset + f.size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SET_STATE: &str = "name: inet_sock_set_state\nID: 1466\nformat:\n\
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
\tfield:const void * skaddr;\toffset:8;\tsize:8;\tsigned:0;\n\
\tfield:int oldstate;\toffset:16;\tsize:4;\tsigned:1;\n\
\tfield:__u16 sport;\toffset:24;\tsize:2;\tsigned:0;\n\
\tfield:__u8 saddr[4];\toffset:32;\tsize:4;\tsigned:0;\n\
\tfield:__data_loc char[] comm;\toffset:12;\tsize:4;\tsigned:0;\n\n\
print fmt: \"family=%s\"\n";

    #[test]
    fn parses_fields_pointers_arrays_and_data_loc() {
        let f = Format::parse("sock/inet_sock_set_state", SET_STATE);
        assert_eq!(f.field("skaddr").unwrap(), Field { offset: 8, size: 8 });
        assert_eq!(
            f.field("saddr").unwrap(),
            Field {
                offset: 32,
                size: 4
            }
        );
        assert_eq!(
            f.field("comm").unwrap(),
            Field {
                offset: 12,
                size: 4
            }
        );
        assert_eq!(f.field("common_type").unwrap().offset, 0);
        let mut record = vec![0u8; 40];
        record[16..20].copy_from_slice(&7i32.to_le_bytes());
        record[24..26].copy_from_slice(&8080u16.to_le_bytes());
        assert_eq!(f.uint(&record, "oldstate"), Some(7));
        assert_eq!(f.uint(&record, "sport"), Some(8080));
    }

    #[test]
    fn layout_mismatches_are_named() {
        let f = Format::parse("sock/inet_sock_set_state", SET_STATE);
        assert_eq!(
            f.expect("oldstate", 20, 4).unwrap_err().to_string(),
            "tracepoint sock/inet_sock_set_state: field oldstate is at offset 16 size 4, \
             the collector expects offset 20 size 4"
        );
        assert!(f.expect("skaddr", 8, 8).is_ok());
        assert!(f.field("nope").is_err());
    }
}
