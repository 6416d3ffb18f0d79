#!/bin/sh
# Fuzz the pure parsers (procfs files, probe settings) with many generated cases; not part of
# CI, which runs the same properties with proptest's default 256 cases.
#   CASES=1000000 scripts/fuzz.sh
# A failure prints a minimal input; keep it as a regression test next to the property.
set -eu
cd "$(dirname "$0")/.."
PROPTEST_CASES=${CASES:-300000} exec cargo test --release --locked --lib fuzz_
