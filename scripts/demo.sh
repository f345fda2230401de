#!/usr/bin/env bash
# Command one: set up, build, and run Sonde's main job: the daemon with its
# web UI on http://127.0.0.1:8080, every built-in probe scheduled each
# minute against the bundled sample cluster (a real kube-apiserver 1.28
# dump), data in a local SQLite file. Extra arguments go to `sonde serve`
# (e.g. --listen 127.0.0.1:9090, --data-dir DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
scripts/setup.sh
cargo build --release --locked -p sonde
exec "$CARGO_TARGET_DIR/release/sonde" serve --demo "$@"
