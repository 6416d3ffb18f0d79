#!/bin/sh
# Build the release binaries as they ship, into target/release/:
#   packaging/build.sh
#
# `ImageServing` is linked statically (glibc static-pie). Monitoring runs `ImageServing
# status` every few seconds and it lasts about two milliseconds, of which loading and
# relocating libc and libgcc_s took 0.3 ms (bench/RESULTS.md). The one libc service it uses
# that loads modules, name lookup (for a probe address given as a host name), is served by
# glibc's built-in files and dns modules (another module named in nsswitch.conf is skipped
# where it cannot be loaded). The supervisor, a daemon, stays dynamically linked. Needs the
# static C library: Debian's libc6-dev, Fedora's glibc-static.
set -eu
cd "$(dirname "$0")/.."
cargo build --release --locked
# Flags on the command line of `cargo rustc` apply to this binary only, not to the
# dependencies, proc-macros and build scripts (which +crt-static would break).
cargo rustc --release --locked --bin ImageServing -- -C target-feature=+crt-static
