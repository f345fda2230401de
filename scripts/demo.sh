#!/usr/bin/env bash
# Command one: set up, build, and run Sonde's main job on the bundled sample
# cluster (a real kube-apiserver 1.28 dump) with the built-in probes.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
scripts/setup.sh
cargo build --release --locked -p sonde
exec "$CARGO_TARGET_DIR/release/sonde" audit --snapshot deploy/demo/sample-cluster.yaml "$@"
