//! One line per event on stderr, with the `<N>` syslog priority prefix that journald reads
//! (`sd-daemon(3)`).

use std::io::Write;

/// Syslog priorities used by the supervisor.
#[derive(Debug, Clone, Copy)]
pub enum Priority {
    /// 2
    Crit = 2,
    /// 3
    Err = 3,
    /// 4
    Warning = 4,
    /// 5
    Notice = 5,
    /// 6
    Info = 6,
}

/// Write one log line.
pub fn log(priority: Priority, msg: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "<{}>{msg}", priority as u8);
}
