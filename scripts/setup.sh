#!/usr/bin/env bash
# Installs what building and testing Sonde needs, idempotently:
# the wasm32-wasip2 Rust target (the probes); nightly Rust with rust-src,
# Debian's LLVM 22 and bpf-linker (the eBPF collectors, DEVELOPERS.md);
# protoc (etcd's protocol, compiled by etcd-client); for the tests, dnsmasq
# (a real DNS server the DNS tests start on loopback), etcd (a real one),
# Chromium, Node.js and the browser test's one npm package (tests/e2e,
# playwright-core), Go with Sprig (the Helm chart's renderer); for the
# benchmarks, wrk and perf.
# Usage: scripts/setup.sh [--for-tests | --for-bench]
set -euo pipefail

need_tests=0
need_bench=0
[[ "${1:-}" == "--for-tests" ]] && need_tests=1
[[ "${1:-}" == "--for-bench" ]] && need_bench=1

if ! command -v cargo >/dev/null 2>&1; then
    echo "setup: cargo is missing; install Rust with rustup (https://rustup.rs)" >&2
    exit 1
fi
if command -v rustup >/dev/null 2>&1; then
    if ! rustup target list --installed | grep -qx wasm32-wasip2; then
        echo "setup: adding the wasm32-wasip2 target"
        rustup target add wasm32-wasip2
    fi
    for component in rustfmt clippy; do
        rustup component list --installed | grep -q "^$component" || rustup component add "$component"
    done
fi

apt_install() {
    local missing=()
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "setup: please install ${missing[*]} (no apt-get here)" >&2
        return 1
    fi
    local sudo=""
    [[ $(id -u) -ne 0 ]] && sudo="sudo"
    echo "setup: installing ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# The etcd capability's client (etcd-client) compiles etcd's protobuf
# definitions at build time with protoc and Google's well-known types.
apt_install protobuf-compiler libprotobuf-dev

# The eBPF collectors (ebpf/) are built on nightly Rust for the bpf target,
# linked by bpf-linker against Debian's LLVM 22 (DEVELOPERS.md). Linux only.
if [[ $(uname -s) == Linux ]]; then
    apt_install llvm-22-dev libpolly-22-dev libzstd-dev zlib1g-dev
    if command -v rustup >/dev/null 2>&1; then
        if ! rustup toolchain list | grep -q '^nightly'; then
            echo "setup: installing the nightly toolchain (eBPF programs)"
            rustup toolchain install nightly --profile minimal
        fi
        for component in rust-src rustfmt clippy; do
            if ! rustup component list --toolchain nightly --installed | grep -q "^$component"; then
                echo "setup: adding $component to nightly (the eBPF programs build core, and are linted)"
                rustup component add "$component" --toolchain nightly
            fi
        done
    fi
    if ! command -v bpf-linker >/dev/null 2>&1; then
        echo "setup: building bpf-linker against LLVM 22 (a few minutes, once)"
        LLVM_PREFIX=/usr/lib/llvm-22 LLVM_SYS_221_PREFIX=/usr/lib/llvm-22 \
            cargo install --locked bpf-linker --no-default-features --features llvm-22
    fi
fi

if [[ $need_tests -eq 1 ]]; then
    # dnsmasq: the DNS tests' server; etcd: the etcd capability's tests' real etcd.
    apt_install dnsmasq-base chromium etcd-server
    # The Helm chart's tests render it as Helm does (tests/helm/render.go):
    # Go's text/template with Sprig, from Debian's Go packages (no Helm there).
    apt_install golang-go golang-github-masterminds-sprig-dev golang-gopkg-yaml.v2-dev golang-gopkg-yaml.v3-dev
    # Node.js may come from elsewhere than Debian (NodeSource's nodejs carries
    # npm and conflicts with Debian's npm package): install only when missing.
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        apt_install nodejs npm
    fi
    # The browser test's packages, when missing or older than the lock file.
    e2e="$(cd "$(dirname "$0")/.." && pwd)/tests/e2e"
    if [[ ! -d $e2e/node_modules || $e2e/package-lock.json -nt $e2e/node_modules ]]; then
        echo "setup: installing the browser test's npm packages (tests/e2e)"
        npm ci --prefix "$e2e" --no-audit --no-fund
        touch "$e2e/node_modules"
    fi
fi

if [[ $need_bench -eq 1 ]]; then
    # The HTTP collector's benchmark drives its load with wrk, and samples
    # the kernel side with perf when asked to (SONDE_BENCH_PERF=1).
    apt_install wrk linux-perf
fi
