//! `status` and `metrics`: gathered by [`crate::status`], printed here.

use crate::error::{exit, Error};
use crate::output;
use crate::request::Format;
use crate::status::StatusRequest;
use crate::systemd::Scope;

use super::report;

/// `status`: the table (or `--json`), and the LSB exit code.
pub(super) fn status(scope: Scope, req: StatusRequest, format: Format, full: bool) -> i32 {
    match crate::status::collect(scope, req) {
        Ok(s) => {
            match format {
                Format::Human => output::out(&crate::status::human(
                    &s,
                    crate::status::Style::detect(full),
                )),
                Format::Json => match serde_json::to_string_pretty(&s) {
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
