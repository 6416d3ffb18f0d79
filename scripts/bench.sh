#!/bin/sh
# Every performance figure against its reference, measured in one run against a private
# systemd manager and stand-ins, and in booted boxes (needs root where PID 1 is not systemd).
#   BENCH_RUNS=200 BENCH_LOAD_SECONDS=10 BENCH_FOOTPRINT_SECONDS=60 scripts/bench.sh
set -eu
cd "$(dirname "$0")/.."
scripts/deps.sh bench
# What is measured is what ships: the binaries as packaging/build.sh links them, and the
# floor program linked as the CLI is. Copied aside: the test build below relinks
# target/release/ImageServing its own way.
packaging/build.sh
cargo rustc --release --locked --example dbus_floor -- -C target-feature=+crt-static
mkdir -p target/bench
cp target/release/ImageServing target/release/examples/dbus_floor target/bench/
export IMAGESERVING_BENCH_CLI="$PWD/target/bench/ImageServing"
export IMAGESERVING_BENCH_FLOOR="$PWD/target/bench/dbus_floor"
cargo test --release --locked --test integration -- --ignored --nocapture --test-threads=1 bench::bench
# Months of uptime, compressed: probes every 0.1 s and 10,000 scrapes; the supervisor's RSS,
# descriptors, threads and log lines must stay flat (IMAGESERVING_SOAK_SECONDS, 600 by default;
# a week's probes: IMAGESERVING_SOAK_INTERVAL=0.05 IMAGESERVING_SOAK_SECONDS=6200).
cargo test --release --locked --test integration -- --ignored --nocapture --test-threads=1 uptime::
# The booted rows need the packages (packaging/build-packages.sh).
packaging/build-packages.sh >/dev/null
# The metrics endpoint scraped 10,000 times through its socket (IMAGESERVING_SOAK_SCRAPES):
# every answer 200, no instance left, systemd's descriptors constant and RSS within 1 MiB,
# no journal line about the instances (against 2 a scrape at systemd's own level).
cargo test --release --locked --test integration -- --ignored --nocapture --test-threads=1 booted::metrics::endpoint_soak
# restart ps on real Tomcat under a client asking every 20 ms, without and with its socket:
# failed requests and the worst wait, side by side in one run.
cargo test --release --locked --test integration -- --ignored --nocapture --test-threads=1 booted::sockets::socket_benchmark
# The fleet rows: status over 1, 10 and 50 ssh hosts, with and without connection reuse.
exec cargo test --release --locked --test integration -- --ignored --nocapture --test-threads=1 booted::fleet::fleet_benchmark
