//! `status` and `metrics`: gathered by [`crate::status`], printed here.

use crate::error::{exit, Error};
use crate::output;
use crate::request::Format;
use crate::status::StatusRequest;
use crate::systemd::Scope;

use super::report;

/// `status`: the table (or `--json`), and the LSB exit code.
pub(super) fn status(scope: Scope, req: StatusRequest, format: Format, full: bool) -> i32 {
    if let Format::JsonLines(every) = format {
        return follow(scope, req, every);
    }
    match crate::status::collect(scope, req) {
        Ok(s) => {
            match format {
                Format::Human => output::out(&crate::status::human(
                    &s,
                    crate::status::Style::detect(full),
                )),
                Format::Json | Format::JsonLines(_) => match serde_json::to_string_pretty(&s) {
                    Ok(text) => output::out(&format!("{text}\n")),
                    Err(e) => return report(&Error::Encode(e.to_string()), exit::FAILURE),
                },
            }
            crate::status::exit_code(&s)
        }
        Err(e) => {
            let code = e.status_exit_code();
            if format == Format::Json {
                // Monitoring scripts parse stdout: give them a document that says why.
                let doc = serde_json::json!({ "error": e.to_string(), "exit_code": code });
                output::out(&format!("{doc}\n"));
            }
            report(&e, code)
        }
    }
}

/// `status --json --follow`: one compact document per line until the reader goes away (exit
/// 0) or the manager cannot be read (a last line `{"error", "exit_code"}`, and that code).
fn follow(scope: Scope, req: StatusRequest, every: std::time::Duration) -> i32 {
    let emitted = crate::status::follow(scope, req, every, |s| match serde_json::to_string(s) {
        Ok(line) => output::out_more(&format!("{line}\n")),
        Err(_) => false,
    });
    match emitted {
        Ok(()) => exit::OK,
        Err(e) => {
            let code = e.status_exit_code();
            let doc = serde_json::json!({ "error": e.to_string(), "exit_code": code });
            output::out(&format!("{doc}\n"));
            report(&e, code)
        }
    }
}

/// `metrics`: the Prometheus text on stdout.
pub(super) fn metrics(scope: Scope) -> i32 {
    match crate::status::metrics_text(scope) {
        Ok(text) => {
            output::out(&text);
            exit::OK
        }
        Err(e) => report(&e, e.status_exit_code()),
    }
}
