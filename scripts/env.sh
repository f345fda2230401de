# Sourced by the scripts: where cargo builds go. Outside the clone, so that
# a fresh clone (CI) reuses the compiled registry dependencies; the clone's
# own crates and probes are rebuilt because a fresh checkout's files are
# newer than anything in the cache. Two long-lived checkouts should not share
# one folder: set CARGO_TARGET_DIR per checkout.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sonde-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# Incremental compilation caches grow by gigabytes per build of the
# workspace; scripts build from clean checkouts, so they do without.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
