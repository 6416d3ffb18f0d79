#!/bin/sh
# Random sequences of operator and system events against the real-systemd harness, for as
# long as asked (tests/integration/sequences.rs; CI runs 3 cases of up to 25 steps):
#   scripts/soak.sh [SEED] [STEPS] [CASES]
# SEED replays a run (every run prints its seed first); STEPS is the longest sequence
# (default 25); CASES how many sequences (default 20). A failure is shrunk to the shortest
# failing sequence and printed. As root, as the tests (they boot private systemd managers).
set -eu
cd "$(dirname "$0")/.."
[ -n "${1:-}" ] && export IMAGESERVING_SEQ_SEED="$1"
export IMAGESERVING_SEQ_STEPS="${2:-25}"
export IMAGESERVING_SEQ_CASES="${3:-20}"
exec cargo test --locked --test integration sequences:: -- --nocapture
