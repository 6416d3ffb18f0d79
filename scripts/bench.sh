#!/bin/sh
# Every performance figure against its reference, measured in one run against a private
# systemd manager and stand-ins (needs root where PID 1 is not systemd). Takes ~4 minutes.
#   BENCH_RUNS=200 BENCH_LOAD_SECONDS=10 BENCH_FOOTPRINT_SECONDS=60 scripts/bench.sh
set -eu
cd "$(dirname "$0")/.."
cargo build --release --locked --example dbus_floor
exec cargo test --release --locked --test integration -- --ignored --nocapture --test-threads=1 bench::bench
