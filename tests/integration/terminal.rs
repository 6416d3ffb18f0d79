//! The terminal an operator reads the output on: a real pty of 80 and of 60 columns
//! (`script`, sized with `stty`), and what its screen holds afterwards, worked out by a small
//! terminal model ([`Screen`]) that wraps as a terminal does.

use std::process::Command;
use std::time::Duration;

use imageserving::component::Component;

use crate::harness::{run_with_timeout, Options, Sandbox, IMAGESERVING};

/// What a terminal of `cols` columns shows after `raw` was written to it: the rows, with the
/// terminal's own wrapping (a line longer than the width goes on in the next row, and
/// erasing the line, `ESC [2K`, erases only the row the cursor is on).
struct Screen {
    rows: Vec<String>,
}

impl Screen {
    fn of(raw: &str, cols: usize) -> Screen {
        let mut rows: Vec<Vec<char>> = vec![Vec::new()];
        let (mut row, mut col) = (0usize, 0usize);
        let mut chars = raw.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\r' => col = 0,
                '\n' => {
                    row += 1;
                    col = 0;
                    if rows.len() <= row {
                        rows.push(Vec::new());
                    }
                }
                '\x1b' => {
                    // CSI: parameters, then one final byte.
                    if chars.peek() == Some(&'[') {
                        chars.next();
                        let mut params = String::new();
                        for p in chars.by_ref() {
                            if p.is_ascii_alphabetic() {
                                if p == 'K' && params == "2" {
                                    rows[row].clear();
                                }
                                break;
                            }
                            params.push(p);
                        }
                    }
                }
                c => {
                    if col >= cols {
                        row += 1;
                        col = 0;
                        if rows.len() <= row {
                            rows.push(Vec::new());
                        }
                    }
                    let line = &mut rows[row];
                    while line.len() < col {
                        line.push(' ');
                    }
                    if col < line.len() {
                        line[col] = c;
                    } else {
                        line.push(c);
                    }
                    col += 1;
                }
            }
        }
        Screen {
            rows: rows
                .into_iter()
                .map(|r| r.into_iter().collect::<String>().trim_end().to_owned())
                .filter(|r| !r.is_empty())
                .collect(),
        }
    }
}

/// Run `ImageServing --user ARGS` on a pty of `cols` columns; what the terminal received.
fn on_pty(sb: &Sandbox, args: &[&str], cols: usize) -> (i32, String) {
    let line = format!(
        "stty cols {cols} rows 50; exec {IMAGESERVING} --user {}",
        args.join(" ")
    );
    let out = run_with_timeout(
        Command::new("script")
            .args(["-qec", &line, "/dev/null"])
            .env_clear()
            .envs(sb.env()),
        Duration::from_secs(90),
    );
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Every line a terminal of `cols` shows of `raw` is one the program wrote: none wrapped.
#[track_caller]
fn no_line_wraps(raw: &str, cols: usize, what: &str) {
    let written: Vec<&str> = raw.split('\n').collect();
    for line in &written {
        let visible = imageserving::terminal::columns(line.trim_end_matches('\r'));
        assert!(
            visible <= cols,
            "{what} on {cols} columns: a line of {visible} columns wraps:\n{raw}"
        );
    }
}

#[test]
fn status_and_its_rows_fit_80_and_60_columns() {
    let sb = Sandbox::new();
    sb.run(&["start"]).code(0);
    let piped = sb.run(&["status"]).code(0).stdout;
    for cols in [80, 60] {
        for args in [&["status"][..], &["status", "ps"]] {
            let (code, raw) = on_pty(&sb, args, cols);
            assert_eq!(code, 0, "{raw}");
            no_line_wraps(&raw, cols, &args.join(" "));
            let screen = Screen::of(&raw, cols);
            // Never a number cut: every PID of the piped table is on the screen.
            for pid in sb.component_pids() {
                if args.len() == 1 || pid == sb.main_pid(Component::Platform) {
                    assert!(raw.contains(&pid.to_string()), "{cols}: {raw}");
                }
            }
            assert!(screen.rows.iter().any(|r| r.starts_with("NAME")), "{raw}");
        }
    }
    // --full keeps every column on a terminal; piped output is whole as before.
    let (_, full) = on_pty(&sb, &["status", "--full"], 60);
    assert!(full.contains("imageserving-platform.service"), "{full}");
    assert!(piped.contains("imageserving-platform.service"), "{piped}");
    assert!(
        piped.lines().any(|l| l.len() > 80),
        "piped output was fitted:\n{piped}"
    );
}

/// Regression: a progress line longer than the terminal wrapped; erasing it erased only its
/// last row, and the rows above stayed on the screen after the command ended.
#[test]
fn after_start_restart_and_stop_the_screen_holds_only_the_result() {
    // ps takes 2 s to open its port, so every command shows its progress line a while.
    let sb = Sandbox::with(Options::default().arg(Component::Platform, "--start-delay 2"));
    for cols in [80, 60] {
        for (args, result) in [
            (&["start"][..], "Image Serving started"),
            (&["restart"], "Image Serving restarted"),
            (&["restart", "ps"], "Platform Server (ps) restarted"),
            (&["restart", "svg"], "SVG Server (svg) restarted"),
            (&["stop"], "Image Serving stopped"),
        ] {
            let (code, raw) = on_pty(&sb, args, cols);
            assert_eq!(code, 0, "{raw}");
            let screen = Screen::of(&raw, cols);
            assert!(
                screen.rows.first().is_some_and(|r| r.starts_with(result))
                    && !screen.rows.iter().any(|r| r.contains("waiting")),
                "{} on {cols} columns left more than its result on the screen:\n{:#?}",
                args.join(" "),
                screen.rows
            );
            // The progress line named the action asked for, and never ran past the width.
            // Each erase is followed by a progress line, but the last: then comes the result.
            let segments: Vec<&str> = raw.split("\x1b[2K").collect();
            for drawn in &segments[..segments.len() - 1] {
                let drawn = drawn.split('\r').next().unwrap_or_default();
                assert!(
                    imageserving::terminal::columns(drawn) < cols,
                    "a progress line of {} columns on {cols}: {drawn:?}",
                    drawn.chars().count()
                );
                if args == ["restart", "svg"] && !drawn.is_empty() {
                    assert!(drawn.starts_with("Restarting svg"), "{drawn:?}");
                }
            }
        }
    }
}
