//! Integration tests: the real binaries against a real, private systemd user manager.

// A test that cannot go on fails with its message: the panic lints guard the product's code.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod alerts;
mod bench;
mod booted;
mod collection;
mod concurrent;
mod control;
mod faults;
mod fleet;
mod hardening;
mod harness;
mod matrix;
mod metrics;
mod output;
mod sequences;
mod sockets;
mod status;
mod supervisor;
mod terminal;
mod uptime;
