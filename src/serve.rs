//! One HTTP request on stdin, its answer on stdout: the metrics endpoint as
//! `imageserving-metrics@.service` runs it, once per connection accepted by
//! `imageserving-metrics.socket` (`Accept=yes`, `systemd.socket(5)`). No daemon: systemd
//! listens, and each scrape is a fresh, sandboxed process.
//!
//! Only `GET /metrics` (and `HEAD`) is served. What a client sends is bounded: the request
//! head may be at most [`MAX_HEAD`] bytes and must arrive within [`READ_DEADLINE`]; garbage
//! gets a 400, anything else a 404 or 405, and a slow client is cut off.

use std::io::{Read, Write};
use std::sync::mpsc;
use std::time::Duration;

/// The longest request head accepted.
pub const MAX_HEAD: usize = 8 * 1024;
/// How long a client may take to send its request.
pub const READ_DEADLINE: Duration = Duration::from_secs(5);

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asked {
    /// `GET /metrics` (the body is sent).
    Metrics,
    /// `HEAD /metrics` (only the head).
    MetricsHead,
}

/// Why a request is refused, as an HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 400: not an HTTP/1.x request line.
    BadRequest,
    /// 404: another path.
    NotFound,
    /// 405: another method.
    MethodNotAllowed,
    /// 431: the head is larger than [`MAX_HEAD`].
    TooLarge,
    /// 408: the head did not arrive in time.
    Timeout,
}

impl Refusal {
    fn status(self) -> &'static str {
        match self {
            Refusal::BadRequest => "400 Bad Request",
            Refusal::NotFound => "404 Not Found",
            Refusal::MethodNotAllowed => "405 Method Not Allowed",
            Refusal::TooLarge => "431 Request Header Fields Too Large",
            Refusal::Timeout => "408 Request Timeout",
        }
    }
}

/// Judge a complete request head (up to the blank line, or what arrived).
pub fn parse_head(head: &[u8]) -> Result<Asked, Refusal> {
    let line_end = head
        .windows(2)
        .position(|w| w == b"\r\n")
        .or_else(|| head.iter().position(|b| *b == b'\n'))
        .ok_or(Refusal::BadRequest)?;
    let line = std::str::from_utf8(head.get(..line_end).unwrap_or_default())
        .map_err(|_| Refusal::BadRequest)?;
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Refusal::BadRequest);
    };
    if !version.starts_with("HTTP/1.") || !target.starts_with('/') {
        return Err(Refusal::BadRequest);
    }
    let path = target.split('?').next().unwrap_or(target);
    if path != "/metrics" {
        return Err(Refusal::NotFound);
    }
    match method {
        "GET" => Ok(Asked::Metrics),
        "HEAD" => Ok(Asked::MetricsHead),
        m if !m.is_empty() && m.bytes().all(|b| b.is_ascii_uppercase()) => {
            Err(Refusal::MethodNotAllowed)
        }
        _ => Err(Refusal::BadRequest),
    }
}

/// Read a request head from `input` until the blank line, [`MAX_HEAD`] bytes, or the end.
fn read_head(input: &mut impl Read) -> Result<Vec<u8>, Refusal> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    loop {
        let n = input.read(&mut buf).map_err(|_| Refusal::BadRequest)?;
        if n == 0 {
            return Ok(head);
        }
        head.extend_from_slice(buf.get(..n).unwrap_or_default());
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            return Ok(head);
        }
        if head.len() > MAX_HEAD {
            return Err(Refusal::TooLarge);
        }
    }
}

/// A complete HTTP/1.0 response (the connection closes after it).
pub fn response(status: &str, content_type: &str, body: &str, with_body: bool) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.0 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if with_body {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

/// Serve one request from stdin on stdout; `metrics` renders the body when asked.
pub fn one_request(metrics: impl FnOnce() -> Result<String, String>) -> i32 {
    // The read runs on a thread of its own so that a client that sends nothing is cut off at
    // the deadline (stdin is the connection's socket; std has no read timeout for it).
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::Builder::new()
        .name("request".into())
        .spawn(move || {
            let _ = tx.send(read_head(&mut std::io::stdin().lock()));
        });
    let head = match reader {
        Ok(_) => rx
            .recv_timeout(READ_DEADLINE)
            .unwrap_or(Err(Refusal::Timeout)),
        Err(_) => Err(Refusal::BadRequest),
    };
    let answer = match head.and_then(|h| parse_head(&h)) {
        Ok(asked) => match metrics() {
            Ok(body) => response(
                "200 OK",
                "text/plain; version=0.0.4; charset=utf-8",
                &body,
                asked == Asked::Metrics,
            ),
            Err(e) => response(
                "503 Service Unavailable",
                "text/plain; charset=utf-8",
                &format!("{e}\n"),
                asked == Asked::Metrics,
            ),
        },
        Err(refusal) => response(
            refusal.status(),
            "text/plain; charset=utf-8",
            &format!("{}\n", refusal.status()),
            true,
        ),
    };
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(&answer).and_then(|()| out.flush());
    // Do not wait for a reader thread still blocked on a slow client.
    std::process::exit(0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_judged_by_their_first_line() {
        assert_eq!(
            parse_head(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Ok(Asked::Metrics)
        );
        assert_eq!(
            parse_head(b"GET /metrics?x=1 HTTP/1.0\n\n"),
            Ok(Asked::Metrics)
        );
        assert_eq!(
            parse_head(b"HEAD /metrics HTTP/1.1\r\n\r\n"),
            Ok(Asked::MetricsHead)
        );
        assert_eq!(
            parse_head(b"GET / HTTP/1.1\r\n\r\n"),
            Err(Refusal::NotFound)
        );
        assert_eq!(
            parse_head(b"POST /metrics HTTP/1.1\r\n\r\n"),
            Err(Refusal::MethodNotAllowed)
        );
        for garbage in [
            &b""[..],
            b"\x00\x01\x02",
            b"GET /metrics\r\n\r\n",
            b"GET metrics HTTP/1.1\r\n\r\n",
            b"GET /metrics SPDY/3\r\n\r\n",
            b"get /metrics HTTP/1.1 x\r\n\r\n",
            b"\xff\xfe /metrics HTTP/1.1\r\n\r\n",
        ] {
            assert_eq!(parse_head(garbage), Err(Refusal::BadRequest), "{garbage:?}");
        }
    }

    #[test]
    fn an_oversized_head_is_refused() {
        let mut big = b"GET /metrics HTTP/1.1\r\n".to_vec();
        big.extend(std::iter::repeat_n(b'a', MAX_HEAD * 2));
        assert_eq!(read_head(&mut &big[..]), Err(Refusal::TooLarge));
        let ok = b"GET /metrics HTTP/1.1\r\n\r\n";
        assert_eq!(read_head(&mut &ok[..]).as_deref(), Ok(&ok[..]));
    }

    proptest::proptest! {
        #[test]
        fn fuzz_heads_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let _ = parse_head(&bytes);
        }
    }
}
