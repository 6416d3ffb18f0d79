//! Running probes: a TCP connect, or an HTTP GET that must answer 2xx, each within its
//! timeout, and a round of them at once with a hard deadline.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use super::settings::{Target, UrlHost};

/// At most this many probe threads may still be waiting (on a name lookup that does not
/// return, say) before new probes fail at once instead of starting more.
const MAX_PENDING: usize = 16;
static PENDING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Run several probes at once, each on a thread of its own, and return every result within
/// the longest of their timeouts, name lookup included (`getaddrinfo` has no timeout of its
/// own: a probe still looking up when its time is up fails, and its thread is left to end by
/// itself). One round of probes therefore never takes longer than [`MAX_TIMEOUT`].
pub fn check_all(probes: &[(Target, Duration)]) -> Vec<Result<(), String>> {
    check_all_timed(probes)
        .into_iter()
        .map(|(r, _)| r)
        .collect()
}

/// [`check_all`], with how long each probe took (its timeout, when it did not end in time).
pub fn check_all_timed(probes: &[(Target, Duration)]) -> Vec<(Result<(), String>, Duration)> {
    use std::sync::atomic::Ordering;
    let (tx, rx) = std::sync::mpsc::channel();
    let start = std::time::Instant::now();
    let mut results: Vec<Option<(Result<(), String>, Duration)>> = vec![None; probes.len()];
    for (i, (target, timeout)) in probes.iter().enumerate() {
        if PENDING.fetch_add(1, Ordering::SeqCst) >= MAX_PENDING {
            PENDING.fetch_sub(1, Ordering::SeqCst);
            if let Some(slot) = results.get_mut(i) {
                *slot = Some((
                    Err("earlier probes are still waiting for an answer".into()),
                    Duration::ZERO,
                ));
            }
            continue;
        }
        let (tx, target, timeout) = (tx.clone(), target.clone(), *timeout);
        let spawned = std::thread::Builder::new()
            .name("probe".into())
            .stack_size(128 * 1024)
            .spawn(move || {
                let began = std::time::Instant::now();
                let r = check(&target, timeout);
                PENDING.fetch_sub(1, Ordering::SeqCst);
                let _ = tx.send((i, (r, began.elapsed())));
            });
        if let Err(e) = spawned {
            PENDING.fetch_sub(1, Ordering::SeqCst);
            if let Some(slot) = results.get_mut(i) {
                *slot = Some((
                    Err(format!("cannot start a probe thread: {e}")),
                    Duration::ZERO,
                ));
            }
        }
    }
    drop(tx);
    let limit = probes.iter().map(|(_, t)| *t).max().unwrap_or_default();
    while results.iter().any(Option::is_none) {
        let left = limit.saturating_sub(start.elapsed());
        match rx.recv_timeout(left) {
            Ok((i, r)) => {
                if let Some(slot) = results.get_mut(i) {
                    *slot = Some(r);
                }
            }
            Err(_) => break,
        }
    }
    results
        .into_iter()
        .zip(probes)
        .map(|(r, (_, timeout))| {
            r.unwrap_or_else(|| {
                (
                    Err(format!(
                        "no answer within {:.1}s (name lookup or connection still pending)",
                        timeout.as_secs_f64()
                    )),
                    *timeout,
                )
            })
        })
        .collect()
}

/// The probe's request: HTTP/1.0, with the `Host:` header HTTP requires (RFC 9110: an IPv6
/// address in brackets).
pub(super) fn http_request(host: &str, port: u16, path: &str) -> String {
    format!(
        "GET {path} HTTP/1.0\r\nHost: {}:{port}\r\nUser-Agent: imageserving-supervisor\r\nConnection: close\r\n\r\n",
        UrlHost(host)
    )
}

/// Run one probe; `Err` says why it failed, in a few words. Each step (connect, write, read)
/// waits at most `timeout`; name lookup is not bounded here: [`check_all`] bounds the whole.
pub fn check(target: &Target, timeout: Duration) -> Result<(), String> {
    match target {
        Target::Tcp { host, port } => connect(host, *port, timeout).map(drop),
        Target::Http { host, port, path } => {
            let mut stream = connect(host, *port, timeout)?;
            let io = |e: std::io::Error| e.to_string();
            stream.set_read_timeout(Some(timeout)).map_err(io)?;
            stream.set_write_timeout(Some(timeout)).map_err(io)?;
            stream
                .write_all(http_request(host, *port, path).as_bytes())
                .map_err(io)?;
            let mut buf = [0u8; 64];
            let mut len = 0;
            while len < 12 {
                let Some(free) = buf.get_mut(len..) else {
                    break;
                };
                match stream.read(free) {
                    Ok(0) => break,
                    Ok(n) => len += n,
                    Err(e)
                        if e.kind() == std::io::ErrorKind::WouldBlock
                            || e.kind() == std::io::ErrorKind::TimedOut =>
                    {
                        return Err(format!("no answer within {:.1}s", timeout.as_secs_f64()))
                    }
                    Err(e) => return Err(e.to_string()),
                }
            }
            let status = parse_status_line(buf.get(..len).unwrap_or_default())?;
            if (200..300).contains(&status) {
                Ok(())
            } else {
                Err(format!("HTTP status {status}"))
            }
        }
    }
}

fn connect(host: &str, port: u16, timeout: Duration) -> Result<TcpStream, String> {
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    let mut last = format!("no address for {host}");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => return Ok(s),
            Err(e) => last = format!("connect to {addr}: {e}"),
        }
    }
    Err(last)
}

/// The status code of an HTTP/1.x status line. Only the bytes up to the code are read: the
/// reason phrase may be anything, including a multibyte character cut by the read.
pub fn parse_status_line(bytes: &[u8]) -> Result<u16, String> {
    let not_http = || "not an HTTP answer".to_owned();
    let space = bytes.iter().position(|b| *b == b' ').ok_or_else(not_http)?;
    if !bytes.starts_with(b"HTTP/") {
        return Err(not_http());
    }
    match bytes.get(space + 1..space + 4) {
        Some(code) if code.iter().all(u8::is_ascii_digit) => {
            Ok(code.iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0')))
        }
        _ => Err(not_http()),
    }
}
