//! Writing to stdout and stderr the way command-line tools do: a reader that went away
//! (`ImageServing status | head -1`, `| grep -q`) ends the output quietly, with no message
//! and no panic (`print!` panics on `EPIPE`, since Rust ignores `SIGPIPE`).

use std::io::Write;

/// Write `text` to stdout. A closed pipe is not an error: the rest is dropped. Any other
/// write error is reported once on stderr.
pub fn out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            err(&format!("ImageServing: cannot write the output: {e}\n"));
        }
    }
}

/// Write `text` to stdout; `false` when it could not be written (the reader went away), which
/// ends a command that keeps printing.
pub fn out_more(text: &str) -> bool {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .is_ok()
}

/// Write `text` to stderr, ignoring every error (there is nowhere left to report it).
pub fn err(text: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = stderr
        .write_all(text.as_bytes())
        .and_then(|()| stderr.flush());
}
