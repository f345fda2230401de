#!/usr/bin/env bash
# Command two: set up, then run every test (unit, integration, end-to-end)
# and the lints.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
scripts/setup.sh --for-tests
cargo fmt --all -- --check
cargo clippy --locked --workspace --all-targets -- -D warnings
# The eBPF programs: their own workspace, nightly, the bpf target.
(cd ebpf/programs &&
    rustup run nightly cargo fmt -- --check &&
    rustup run nightly cargo clippy --locked --release -Z build-std=core \
        --target bpfel-unknown-none --target-dir "$CARGO_TARGET_DIR/ebpf-clippy" -- -D warnings)
# The CLI tests run the `sonde` binary, which `cargo test` does not build by itself.
cargo build --locked --workspace
cargo test --locked --workspace --no-fail-fast
