//! imageserving: systemd-native control of an Image Serving stack.
//!
//! A library with thin binaries on top (`src/bin/`). A request flows down these floors, never
//! back up:
//!
//! 1. [`cli`] turns the command line into a [`Request`](request::Request) (clap stays there);
//! 2. [`commands`] runs it: one small module per command, printing the outcome and returning
//!    the exit code;
//! 3. the work, each in one place:
//!    - [`control`] starts, stops and restarts the stack through systemd jobs;
//!    - [`status`] gathers `status` and `metrics` (one D-Bus round trip, then procfs);
//!    - [`fleet`] runs a command on many hosts over OpenSSH, and the rolling restart;
//!    - [`alert`] gathers and sends the alert of a unit that failed for good;
//!    - [`serve`] answers one HTTP request for the socket-activated metrics endpoint;
//!    - [`agent`] runs polkit's text agent while a command may need a password;
//!    - [`supervisor`] is the Server Supervisor daemon (`Type=notify`);
//! 4. below them, the shared ground:
//!    - [`systemd`] is the only module that speaks D-Bus;
//!    - [`procinfo`] is the only module that reads procfs and the cgroup file system;
//!    - [`journal`] is the only module that runs `journalctl`;
//!    - [`probe`] says what "serving" means for a component, and asks it;
//!    - [`component`] is the only place that maps components to units and names;
//!    - [`table`], [`terminal`], [`progress`] and [`output`] lay out and write what the user
//!      sees (tables fitted to the terminal, the progress line, quiet on a closed pipe);
//!    - [`request`] is what was asked, [`host`] a fleet's host as given, [`error`] every
//!      failure a user can see, with its exit code (it names nothing above this floor).

pub mod agent;
pub mod alert;
pub mod cli;
pub mod commands;
pub mod component;
pub mod control;
pub mod error;
pub mod fleet;
pub mod host;
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
