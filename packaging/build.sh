#!/bin/sh
# Build the release binaries as they ship, into target/release/:
#   packaging/build.sh
#
# `ImageServing` is linked statically (glibc static-pie). Monitoring runs `ImageServing
# status` every few seconds and it lasts about two milliseconds, of which loading and
# relocating libc and libgcc_s takes 0.3 (bench/RESULTS.md). It loads nothing at run time:
# the one libc service it uses that can (name lookup, for a probe address given as a host
# name) is served by glibc's built-in files and dns modules. The supervisor, a daemon,
# stays dynamically linked.
set -eu
cd "$(dirname "$0")/.."
cargo build --release --locked
# Flags on the command line of `cargo rustc` apply to this binary only, not to the
# dependencies, proc-macros and build scripts (which +crt-static would break).
cargo rustc --release --locked --bin ImageServing -- -C target-feature=+crt-static
