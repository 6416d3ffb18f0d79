//! Integration tests: the real binaries against a real, private systemd user manager.

mod bench;
mod control;
mod faults;
mod hardening;
mod harness;
mod status;
mod supervisor;
