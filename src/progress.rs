//! A one-line progress indicator on a terminal, and silence everywhere else.

use std::io::{IsTerminal, Write};

/// Rewrites one status line on stderr while a command waits.
pub struct Progress {
    enabled: bool,
    shown: bool,
    last: String,
}

impl Progress {
    /// Progress on stderr if, and only if, stderr is a terminal.
    pub fn for_stderr() -> Progress {
        Progress::new(std::io::stderr().is_terminal())
    }

    /// Progress that prints (`true`) or stays silent (`false`).
    pub fn new(enabled: bool) -> Progress {
        Progress {
            enabled,
            shown: false,
            last: String::new(),
        }
    }

    /// Replace the line with `msg` (nothing happens if it is unchanged).
    pub fn show(&mut self, msg: &str) {
        if !self.enabled || msg == self.last {
            return;
        }
        let mut err = std::io::stderr().lock();
        // Progress is best effort: a closed stderr must not fail the command.
        let _ = write!(err, "\r\x1b[2K{msg}");
        let _ = err.flush();
        self.shown = true;
        msg.clone_into(&mut self.last);
    }

    /// Erase the line.
    pub fn clear(&mut self) {
        if self.shown {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
            self.shown = false;
            self.last.clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.clear();
    }
}
