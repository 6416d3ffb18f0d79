//! The terminal the output goes to: its width, and text made to fit it.
//!
//! Only output to a terminal is fitted. Piped or redirected output (and `--json`) is whole:
//! scripts must not depend on the size of a window.

use std::os::fd::AsFd;

/// The width in columns of the terminal `fd` is, or `None` when it is no terminal (or
/// reports no size, as a pty that was never sized). Read anew at each call, so a resized
/// window takes effect at the next line drawn.
pub fn width(fd: impl AsFd) -> Option<usize> {
    if !rustix::termios::isatty(&fd) {
        return None;
    }
    let size = rustix::termios::tcgetwinsize(&fd).ok()?;
    (size.ws_col > 0).then_some(usize::from(size.ws_col))
}

/// The width of the terminal stdout goes to.
pub fn stdout_width() -> Option<usize> {
    width(std::io::stdout())
}

/// The width of the terminal stderr goes to.
pub fn stderr_width() -> Option<usize> {
    width(std::io::stderr())
}

/// Characters a terminal shows for `text` (escape sequences aside, one column each: the
/// output is ASCII but for the ellipsis).
pub fn columns(text: &str) -> usize {
    let mut n = 0;
    let mut escape = false;
    for c in text.chars() {
        match (escape, c) {
            (false, '\x1b') => escape = true,
            (true, 'm') => escape = false,
            (true, _) => {}
            (false, _) => n += 1,
        }
    }
    n
}

/// `text` cut to `width` columns, with `…` where it was cut.
pub fn cut(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// `text` broken at spaces into lines of at most `width` columns (a word longer than that
/// stays whole); continuation lines are indented by two spaces.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        let len = line.chars().count();
        if len > 0 && len + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
            line.push_str("  ");
        } else if len > 0 {
            line.push(' ');
        }
        line.push_str(word);
    }
    lines.push(line);
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_cut_with_an_ellipsis_and_wrapped_at_spaces() {
        assert_eq!(cut("restarting svg", 20), "restarting svg");
        assert_eq!(cut("restarting svg", 8), "restart…");
        assert_eq!(
            wrap("RSS: summed over every process of the unit", 20),
            ["RSS: summed over", "  every process of", "  the unit"]
        );
        assert_eq!(columns("\x1b[32mactive\x1b[0m"), 6);
    }
}
