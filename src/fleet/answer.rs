//! What a host answered, judged: its exit code and output become a [`HostResult`]; a status
//! answer must be the status document, or it is that host's error.

use super::Action;
use crate::error::exit;

/// What one host answered.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HostResult {
    /// The host as given.
    pub host: String,
    /// Whether the command succeeded there.
    pub ok: bool,
    /// Its exit code (ours for a host that could not be asked: 4 for status, 1 otherwise).
    pub exit_code: i32,
    /// Why it did not succeed, in one line.
    pub error: Option<String>,
    /// `status --json` of that host.
    pub status: Option<serde_json::Value>,
    /// The host's one line of output for start, stop and restart; all it printed for logs.
    #[serde(skip)]
    pub said: String,
}

/// What a host's answer means: its exit `code` (ssh's own 255 and the shell's 127
/// included), what it printed on stdout and stderr. A `status` answer must be the document
/// `status --json` prints; anything else (a line a login script echoed first, an older
/// version's JSON, an answer cut off) is that host's error, exit 4, never a success.
pub fn judge(spec: &str, action: &Action, code: i32, stdout: &str, stderr: &str) -> HostResult {
    let unreachable_code = if action.is_status() {
        exit::PRIVILEGE
    } else {
        exit::FAILURE
    };
    let fail = |code: i32, error: String| HostResult {
        host: spec.to_owned(),
        ok: false,
        exit_code: code,
        error: Some(error),
        status: None,
        said: String::new(),
    };
    let last_err = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default()
        .trim()
        .to_owned();
    match code {
        255 => {
            let why = if last_err.contains("Permission denied") {
                "authentication refused"
            } else {
                "unreachable"
            };
            return fail(unreachable_code, format!("{why} ({last_err})"));
        }
        127 => {
            return fail(
                exit::NOT_INSTALLED,
                "ImageServing is not installed there (command not found)".into(),
            )
        }
        2 if last_err.contains("unexpected argument") || last_err.contains("unrecognized") => {
            return fail(
                exit::USAGE,
                format!("ImageServing there is too old for this command ({last_err})"),
            )
        }
        _ => {}
    }
    let status_doc = if action.is_status() && matches!(code, exit::OK | exit::NOT_RUNNING) {
        match status_document(stdout) {
            Ok(doc) => Some(doc),
            Err(why) => {
                return fail(
                    exit::PRIVILEGE,
                    format!(
                        "unreadable answer (exit {code}): {why}; it began {:?}",
                        first_bytes(stdout)
                    ),
                )
            }
        }
    } else if action.is_status() {
        // A failed status prints an error on stderr, and maybe a document with a message.
        serde_json::from_str::<serde_json::Value>(stdout).ok()
    } else {
        None
    };
    let error = (code != 0).then(|| {
        status_doc
            .as_ref()
            .and_then(|d| {
                d.get("message")
                    .and_then(serde_json::Value::as_str)
                    .or_else(|| d.get("error").and_then(serde_json::Value::as_str))
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| {
                if last_err.is_empty() {
                    format!("exit {code}")
                } else {
                    last_err.trim_start_matches("ImageServing: ").to_owned()
                }
            })
    });
    HostResult {
        host: spec.to_owned(),
        ok: code == 0,
        exit_code: code,
        error,
        status: status_doc.filter(|d| d.get("supervisor").is_some()),
        said: if action.is_text() {
            stdout.to_owned()
        } else {
            stdout.lines().last().unwrap_or_default().to_owned()
        },
    }
}

/// The `status --json` document, checked for what the table and the summary read: an
/// object with `supervisor.running` and a `components` list whose entries name their
/// component and state.
fn status_document(stdout: &str) -> Result<serde_json::Value, String> {
    let doc: serde_json::Value = serde_json::from_str(stdout.trim())
        .map_err(|e| format!("not the JSON document of 'status --json' ({e})"))?;
    let running = doc
        .get("supervisor")
        .and_then(|s| s.get("running"))
        .and_then(serde_json::Value::as_bool);
    let components = doc.get("components").and_then(serde_json::Value::as_array);
    match (running, components) {
        (Some(_), Some(list))
            if list.iter().all(|c| {
                c.get("name").and_then(serde_json::Value::as_str).is_some()
                    && c.get("state").and_then(serde_json::Value::as_str).is_some()
            }) =>
        {
            Ok(doc)
        }
        _ => Err("JSON, but not the document of 'status --json' (supervisor.running, components[].name and .state); is ImageServing there another version?".to_owned()),
    }
}

/// The first bytes of an answer, for an error message: at most 60 characters, cut on a
/// character boundary.
fn first_bytes(text: &str) -> String {
    let mut out: String = text.chars().take(60).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}
