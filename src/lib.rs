//! imageserving: systemd-native control of an Image Serving stack.
//!
//! The crate is a library with thin binaries on top:
//! - [`cli`] turns the command line into a [`Request`](cli::Request) and runs it;
//! - [`control`] starts, stops and restarts the stack through systemd jobs;
//! - [`systemd`] is the only module that speaks D-Bus;
//! - [`component`] is the only place that maps components to units.

pub mod cli;
pub mod component;
pub mod control;
pub mod error;
pub mod probe;
pub mod procinfo;
pub mod progress;
pub mod status;
pub mod supervisor;
pub mod systemd;
