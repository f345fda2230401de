//! Builds `ebpf/programs` for `bpfel-unknown-none` with a nested
//! `rustup run nightly cargo build -Z build-std=core`, linked by bpf-linker,
//! into a target folder beside the outer build's, and embeds the object.
//!
//! `SONDE_EBPF=off` skips the build: the object is then empty and the agent
//! reports every collector unavailable, saying why. Any other failure stops
//! the build with what to install (scripts/setup.sh installs all of it).

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "bpfel-unknown-none";

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let ebpf = manifest.parent().unwrap().to_path_buf();
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());
    for watched in [
        "programs/src",
        "programs/Cargo.toml",
        "programs/Cargo.lock",
        "programs/build.rs",
        "common",
    ] {
        println!("cargo:rerun-if-changed={}", ebpf.join(watched).display());
    }
    println!("cargo:rerun-if-env-changed=SONDE_EBPF");
    println!("cargo:rerun-if-env-changed=SONDE_EBPF_TARGET_DIR");

    let generated = out_dir.join("object.rs");
    if env::var("SONDE_EBPF").is_ok_and(|v| v == "off") {
        std::fs::write(
            &generated,
            "/// Empty: built with SONDE_EBPF=off.\npub static OBJECT: &[u8] = &[];\n\
             /// Why there is no object.\npub const MISSING: Option<&str> = \
             Some(\"this sonde was built without its eBPF programs (SONDE_EBPF=off)\");\n",
        )
        .unwrap();
        return;
    }

    let target_dir = env::var_os("SONDE_EBPF_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| sibling_target_dir(&out_dir));
    let mut cmd = Command::new("rustup");
    cmd.current_dir(ebpf.join("programs"))
        .args(["run", "nightly", "cargo", "build", "--release", "--locked"])
        .args(["-Z", "build-std=core", "--target", TARGET, "--target-dir"])
        .arg(&target_dir);
    // The outer build's toolchain, flags and wrappers are for the host.
    for var in [
        "CARGO",
        "RUSTC",
        "RUSTDOC",
        "RUSTUP_TOOLCHAIN",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_MAKEFLAGS",
        "CLIPPY_ARGS",
        "CLIPPY_CONF_DIR",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().unwrap_or_else(|e| {
        panic!("cannot run `rustup run nightly cargo` for the eBPF programs: {e}; {HELP}")
    });
    if !status.success() {
        panic!("building the eBPF programs (ebpf/programs) failed, see above; {HELP}");
    }
    let object = target_dir
        .join(TARGET)
        .join("release")
        .join("sonde-collectors");
    assert!(object.exists(), "{} was not produced", object.display());
    let path = object.display().to_string();
    std::fs::write(
        &generated,
        format!(
            "#[repr(C, align(8))]\nstruct Aligned<B: ?Sized>(B);\n\
             static ALIGNED: &Aligned<[u8]> = &Aligned(*include_bytes!({path:?}));\n\
             /// The collectors' ELF object (8-byte aligned, as aya needs).\n\
             pub static OBJECT: &[u8] = &ALIGNED.0;\n\
             /// Why there is no object.\npub const MISSING: Option<&str> = None;\n"
        ),
    )
    .unwrap();
}

const HELP: &str = "it needs the nightly toolchain with rust-src and bpf-linker built against \
    LLVM 22 (scripts/setup.sh installs them; DEVELOPERS.md), or set SONDE_EBPF=off to build \
    without collectors";

/// `<target>/ebpf`, where `<target>` is the outer build's target folder.
fn sibling_target_dir(out_dir: &Path) -> PathBuf {
    let build = out_dir
        .ancestors()
        .find(|p| p.file_name().is_some_and(|n| n == "build"))
        .expect("OUT_DIR is inside a cargo target folder");
    build.parent().and_then(Path::parent).unwrap().join("ebpf")
}
