//! Integration tests: the real binaries against a real, private systemd user manager.

mod bench;
mod booted;
mod control;
mod faults;
mod fleet;
mod hardening;
mod harness;
mod metrics;
mod output;
mod status;
mod supervisor;
