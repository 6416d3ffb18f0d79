//! imageserving: systemd-native control of an Image Serving stack.
//!
//! A library with thin binaries on top (`src/bin/`):
//! - [`agent`] runs polkit's text agent while a command may need a password;
//! - [`alert`] gathers and sends the alert of a unit that failed for good;
//! - [`journal`] is the only place that runs `journalctl`;
//! - [`cli`] turns the command line into a [`Request`](cli::Request) and runs it;
//! - [`control`] starts, stops and restarts the stack through systemd jobs;
//! - [`status`] gathers and renders `status` (one D-Bus round trip, then procfs);
//! - [`supervisor`] is the Server Supervisor daemon (`Type=notify`);
//! - [`probe`] says what "serving" means for a component, for both of the above;
//! - [`serve`] answers one HTTP request for the socket-activated metrics endpoint;
//! - [`systemd`] is the only module that speaks D-Bus;
//! - [`procinfo`] is the only module that reads procfs and the cgroup file system;
//! - [`component`] is the only place that maps components to units;
//! - [`fleet`] runs a command on many hosts over OpenSSH, and the rolling restart;
//! - [`table`] lays out every table (status, the fleet), fitted to a terminal's width;
//! - [`terminal`] knows the terminal's width and fits text to it;
//! - [`progress`] draws the one progress line of `start`, `stop` and `restart`;
//! - [`error`] holds the crate-level error and its exit codes;
//! - [`output`] writes to stdout and stderr, quietly when the reader went away.

pub mod agent;
pub mod alert;
pub mod cli;
pub mod commands;
pub mod component;
pub mod control;
pub mod error;
pub mod fleet;
pub mod journal;
pub mod output;
pub mod probe;
pub mod procinfo;
pub mod progress;
pub mod request;
pub mod serve;
pub mod status;
pub mod supervisor;
pub mod systemd;
pub mod table;
pub mod terminal;
