# Sourced by the scripts: where cargo builds go (outside the clone, reused
# across clones; cargo's own fingerprints decide what is rebuilt).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sonde-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
