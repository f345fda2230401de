//! Links the programs with BTF (bpf-linker `--btf`, from the debug info):
//! BTF-defined maps (the HTTP pair's socket storage) need their key and
//! value types described to the kernel.

fn main() {
    println!("cargo:rustc-link-arg=--btf");
    println!("cargo:rerun-if-changed=build.rs");
}
