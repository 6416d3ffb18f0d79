//! A one-line progress indicator on a terminal, and silence everywhere else.
//!
//! The line names the action asked for, what it waits for and for how long (`Restarting
//! svg: waiting for svg to answer (4 s)`). It is cut to the terminal's width, read anew at
//! each redraw (a resized window takes effect at the next one): a line that wrapped could
//! not be erased, and would leave its first part on the screen.

use std::io::{IsTerminal, Write};
use std::time::Instant;

use crate::terminal;

/// Rewrites one status line on stderr while a command waits.
pub struct Progress {
    enabled: bool,
    title: String,
    since: Instant,
    shown: bool,
    last: String,
}

impl Progress {
    /// Progress of `title` (`Restarting svg`) on stderr if, and only if, stderr is a
    /// terminal.
    pub fn for_stderr(title: &str) -> Progress {
        Progress::new(title, std::io::stderr().is_terminal())
    }

    /// Progress that prints (`true`) or stays silent (`false`).
    pub fn new(title: &str, enabled: bool) -> Progress {
        Progress {
            enabled,
            title: title.to_owned(),
            since: Instant::now(),
            shown: false,
            last: String::new(),
        }
    }

    /// Replace the line with the title, `detail` and the time so far (nothing happens if
    /// that is unchanged).
    pub fn show(&mut self, detail: &str) {
        if !self.enabled {
            return;
        }
        let line = format!(
            "{}: {detail} ({} s)",
            self.title,
            self.since.elapsed().as_secs()
        );
        let msg = match terminal::stderr_width() {
            // The last column stays free: some terminals wrap on writing into it.
            Some(w) => terminal::cut(&line, w.saturating_sub(1).max(1)),
            None => line,
        };
        if msg == self.last {
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
