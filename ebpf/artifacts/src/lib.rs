//! Sonde's eBPF collector programs (`ebpf/programs`), built by this crate's
//! build script and embedded, so the agent needs no file beside the binary.

include!(concat!(env!("OUT_DIR"), "/object.rs"));
