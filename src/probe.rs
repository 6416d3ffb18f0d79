//! Health probes: what "serving" means for a component, read from its unit's environment.
//!
//! An operator changes a probe with the ordinary tools: `systemctl edit imageserving-image`
//! and an `Environment=IMAGESERVING_PROBE=...` line. Settings are read strictly: a bad value is
//! an error naming the unit and the key, never a silent default.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// The environment key holding the probe target.
pub const KEY_PROBE: &str = "IMAGESERVING_PROBE";
/// Seconds between probes once the stack is up.
pub const KEY_INTERVAL: &str = "IMAGESERVING_PROBE_INTERVAL_SEC";
/// Seconds a probe may take.
pub const KEY_TIMEOUT: &str = "IMAGESERVING_PROBE_TIMEOUT_SEC";
/// Consecutive failures after which the supervisor restarts the component.
pub const KEY_FAILURES: &str = "IMAGESERVING_PROBE_FAILURES";
/// Seconds a freshly started component may take to answer before failures count.
pub const KEY_START_GRACE: &str = "IMAGESERVING_PROBE_START_GRACE_SEC";

/// The shortest probe interval and timeout accepted, in seconds.
pub const MIN_SECONDS: f64 = 0.1;
/// The longest probe timeout accepted. A probe round (all components at once, name lookup
/// included) never takes longer, and the supervisor's watchdog period (`WatchdogSec=30s`) must
/// hold a round and a call to the manager with room to spare; the supervisor also checks it
/// against the watchdog period it actually runs with.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(10);

/// How to tell that a component serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A TCP connection to this address succeeds.
    Tcp { host: String, port: u16 },
    /// `GET path` on this address answers 2xx.
    Http {
        host: String,
        port: u16,
        path: String,
    },
}

/// A component's probe and its timing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSettings {
    /// What to probe.
    pub target: Target,
    /// Time between probes when running.
    pub interval: Duration,
    /// Time one probe may take.
    pub timeout: Duration,
    /// Consecutive failures before a restart.
    pub failures: u32,
    /// How long after a (re)start failures do not count until the first success: a Tomcat
    /// deploying its applications must not be restarted for being slow.
    pub start_grace: Duration,
}

impl ProbeSettings {
    /// One line for the journal: target and timing.
    pub fn describe(&self) -> String {
        format!(
            "{} every {}s, timeout {}s, {} failures, start grace {}s",
            self.target,
            self.interval.as_secs_f64(),
            self.timeout.as_secs_f64(),
            self.failures,
            self.start_grace.as_secs_f64()
        )
    }

    /// How long after a (re)start a component may go without answering before the
    /// supervisor restarts it: the start grace, then the failures it tolerates. `start` and
    /// `restart` wait as long, so the tool and the supervisor judge a slow start alike.
    pub fn serve_deadline(&self) -> Duration {
        self.start_grace + (self.interval + self.timeout) * self.failures
    }
}

/// The supervisor's ceiling for a start of the stack, in whole seconds: after it the
/// supervisor reports ready with what does not serve, and `start` fails naming it.
pub const KEY_START_TIMEOUT: &str = "IMAGESERVING_START_TIMEOUT_SEC";
/// [`KEY_START_TIMEOUT`] when unset.
pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(600);

/// [`KEY_START_TIMEOUT`] from the supervisor unit's `Environment=` entries (`KEY=VALUE`).
pub fn start_timeout(unit: &str, env: &[String]) -> Result<Duration, SettingError> {
    let prefix = format!("{KEY_START_TIMEOUT}=");
    let Some(v) = env.iter().rev().find_map(|kv| kv.strip_prefix(&prefix)) else {
        return Ok(DEFAULT_START_TIMEOUT);
    };
    v.parse::<u64>()
        .ok()
        .filter(|s| *s > 0)
        .map(Duration::from_secs)
        .ok_or_else(|| SettingError {
            unit: unit.to_owned(),
            key: KEY_START_TIMEOUT,
            value: v.to_owned(),
            why: "expected whole seconds above 0".to_owned(),
        })
}

/// A setting that cannot be used, with the unit and the key to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{unit}: bad setting {key}={value:?}: {why} (fix it with 'systemctl edit {unit}')")]
pub struct SettingError {
    /// The unit whose environment holds the setting.
    pub unit: String,
    /// The key.
    pub key: &'static str,
    /// The value found.
    pub value: String,
    /// What is wrong with it.
    pub why: String,
}

impl ProbeSettings {
    /// Read the settings from a unit's `Environment=` entries (`KEY=VALUE` strings).
    /// Returns `Ok(None)` when the unit has no probe: the component then counts as serving
    /// once its unit is active.
    pub fn from_environment(
        unit: &str,
        env: &[String],
    ) -> Result<Option<ProbeSettings>, SettingError> {
        let get = |key: &str| {
            env.iter()
                .rev() // a later assignment (a drop-in) wins, as in systemd
                .find_map(|kv| kv.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
        };
        let bad = |key: &'static str, value: &str, why: &str| SettingError {
            unit: unit.to_owned(),
            key,
            value: value.to_owned(),
            why: why.to_owned(),
        };
        let Some(raw) = get(KEY_PROBE) else {
            return Ok(None);
        };
        if raw.is_empty() {
            return Ok(None);
        }
        let target = parse_target(raw).map_err(|why| bad(KEY_PROBE, raw, &why))?;
        // Each duration lies in [min, max]; below a floor a probe cannot complete (a
        // timeout of 1e-10 s fails every probe) or the probes would spin.
        let seconds = |key: &'static str,
                       default: f64,
                       (min, max): (f64, f64)|
         -> Result<Duration, SettingError> {
            let Some(v) = get(key) else {
                return Ok(Duration::from_secs_f64(default));
            };
            match v.parse::<f64>() {
                Ok(s) if s.is_finite() && (min..=max).contains(&s) => {
                    Ok(Duration::from_secs_f64(s))
                }
                _ => Err(bad(
                    key,
                    v,
                    &format!("expected a number of seconds from {min} to {max}"),
                )),
            }
        };
        let interval = seconds(KEY_INTERVAL, 5.0, (MIN_SECONDS, 3600.0))?;
        let timeout = seconds(KEY_TIMEOUT, 2.0, (MIN_SECONDS, MAX_TIMEOUT.as_secs_f64()))?;
        let start_grace = seconds(KEY_START_GRACE, 300.0, (0.0, 3600.0))?;
        let failures = match get(KEY_FAILURES) {
            None => 3,
            Some(v) => match v.parse::<u32>() {
                Ok(n) if (1..=1000).contains(&n) => n,
                _ => {
                    return Err(bad(
                        KEY_FAILURES,
                        v,
                        "expected a whole number from 1 to 1000",
                    ))
                }
            },
        };
        Ok(Some(ProbeSettings {
            target,
            interval,
            timeout,
            failures,
            start_grace,
        }))
    }
}

/// Parse `tcp://HOST:PORT` or `http://HOST:PORT/PATH`.
pub fn parse_target(s: &str) -> Result<Target, String> {
    let (scheme, rest) = s
        .split_once("://")
        .ok_or_else(|| "expected tcp://HOST:PORT or http://HOST:PORT/PATH".to_owned())?;
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let (host, port) = hostport
        .rsplit_once(':')
        .ok_or_else(|| format!("missing :PORT in '{hostport}'"))?;
    // An IPv6 address is written in brackets, as in a URL (RFC 3986): [::1]:8080.
    let host = match host.strip_prefix('[') {
        Some(inner) => inner
            .strip_suffix(']')
            .filter(|h| h.contains(':') && !h.contains(['[', ']']))
            .ok_or_else(|| format!("'{host}' is not a bracketed IPv6 address like [::1]"))?,
        None if host.contains([':', '[', ']']) => {
            return Err(format!(
                "write an IPv6 address in brackets, as [{host}]:{port}"
            ))
        }
        None => host,
    };
    if host.is_empty() {
        return Err("missing host".to_owned());
    }
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("port '{port}' is not a number from 1 to 65535"))?;
    match scheme {
        "tcp" if path.is_empty() || path == "/" => Ok(Target::Tcp {
            host: host.to_owned(),
            port,
        }),
        "tcp" => Err("a tcp probe takes no path".to_owned()),
        "http" => Ok(Target::Http {
            host: host.to_owned(),
            port,
            path: if path.is_empty() {
                "/".to_owned()
            } else {
                path.to_owned()
            },
        }),
        other => Err(format!("unknown scheme '{other}': expected tcp or http")),
    }
}

/// A host as it is written in a URL or a `Host:` header: an IPv6 address in brackets.
struct UrlHost<'a>(&'a str);

impl std::fmt::Display for UrlHost<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.contains(':') {
            write!(f, "[{}]", self.0)
        } else {
            f.write_str(self.0)
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Tcp { host, port } => write!(f, "tcp://{}:{port}", UrlHost(host)),
            Target::Http { host, port, path } => {
                write!(f, "http://{}:{port}{path}", UrlHost(host))
            }
        }
    }
}

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
fn http_request(host: &str, port: u16, path: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn env(kvs: &[&str]) -> Vec<String> {
        kvs.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn defaults_of_the_original_install_parse() {
        let s = ProbeSettings::from_environment(
            "u",
            &env(&["IMAGESERVING_PROBE=http://127.0.0.1:8080/is/image"]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            s.target,
            Target::Http {
                host: "127.0.0.1".into(),
                port: 8080,
                path: "/is/image".into()
            }
        );
        assert_eq!(
            (s.interval, s.timeout, s.failures),
            (Duration::from_secs(5), Duration::from_secs(2), 3)
        );
        assert_eq!(
            parse_target("tcp://localhost:27345"),
            Ok(Target::Tcp {
                host: "localhost".into(),
                port: 27345
            })
        );
        assert_eq!(
            parse_target("tcp://[::1]:1").unwrap().to_string(),
            "tcp://[::1]:1"
        );
        assert_eq!(
            parse_target("http://[::1]:8080/x"),
            Ok(Target::Http {
                host: "::1".into(),
                port: 8080,
                path: "/x".into()
            })
        );
        for bad in [
            "tcp://::1:1",
            "tcp://[::1:1",
            "tcp://::1]:1",
            "tcp://[]:1",
            "tcp://[a]:1",
        ] {
            assert!(parse_target(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn later_assignment_wins_like_a_drop_in() {
        let s = ProbeSettings::from_environment(
            "u",
            &env(&[
                "IMAGESERVING_PROBE=tcp://a:1",
                "X=1",
                "IMAGESERVING_PROBE=tcp://b:2",
            ]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            s.target,
            Target::Tcp {
                host: "b".into(),
                port: 2
            }
        );
    }

    #[test]
    fn bad_settings_name_unit_and_key() {
        for (kv, key) in [
            ("IMAGESERVING_PROBE=udp://a:1", KEY_PROBE),
            ("IMAGESERVING_PROBE=tcp://a", KEY_PROBE),
            ("IMAGESERVING_PROBE=tcp://a:0", KEY_PROBE),
            ("IMAGESERVING_PROBE=tcp://a:99999", KEY_PROBE),
            ("IMAGESERVING_PROBE=tcp://a:1/x", KEY_PROBE),
            ("IMAGESERVING_PROBE=http://:80/", KEY_PROBE),
        ] {
            let err = ProbeSettings::from_environment("imageserving-image.service", &env(&[kv]))
                .unwrap_err();
            assert_eq!(err.key, key);
            assert!(
                err.to_string()
                    .starts_with("imageserving-image.service: bad setting"),
                "{err}"
            );
        }
        for kv in [
            "IMAGESERVING_PROBE_INTERVAL_SEC=0",
            "IMAGESERVING_PROBE_INTERVAL_SEC=fast",
            "IMAGESERVING_PROBE_TIMEOUT_SEC=NaN",
            "IMAGESERVING_PROBE_FAILURES=0",
            "IMAGESERVING_PROBE_FAILURES=-1",
            "IMAGESERVING_PROBE_START_GRACE_SEC=-1",
            "IMAGESERVING_PROBE_START_GRACE_SEC=inf",
            // Regression: 1e-10 became a zero timeout, every probe failed, and the component
            // was restarted in a loop.
            "IMAGESERVING_PROBE_TIMEOUT_SEC=1e-10",
            "IMAGESERVING_PROBE_TIMEOUT_SEC=0.01",
            "IMAGESERVING_PROBE_INTERVAL_SEC=0.001",
            // A probe may not outlast what the watchdog period can hold.
            "IMAGESERVING_PROBE_TIMEOUT_SEC=3600",
            "IMAGESERVING_PROBE_TIMEOUT_SEC=11",
        ] {
            let r =
                ProbeSettings::from_environment("u", &env(&["IMAGESERVING_PROBE=tcp://a:1", kv]));
            assert!(r.is_err(), "{kv}");
        }
    }

    #[test]
    fn no_probe_means_none() {
        assert_eq!(
            ProbeSettings::from_environment("u", &env(&["A=B"])),
            Ok(None)
        );
        assert_eq!(
            ProbeSettings::from_environment("u", &env(&["IMAGESERVING_PROBE="])),
            Ok(None)
        );
    }

    #[test]
    fn status_lines() {
        assert_eq!(parse_status_line(b"HTTP/1.1 200 OK\r\n"), Ok(200));
        assert_eq!(parse_status_line(b"HTTP/1.0 404 Not Found"), Ok(404));
        assert!(parse_status_line(b"SSH-2.0-OpenSSH").is_err());
        assert!(parse_status_line(&[0xff, 0xfe]).is_err());
        assert!(parse_status_line(b"HTTP/1.1 2x0 OK").is_err());
        assert!(parse_status_line(b"HTTP/1.1 20").is_err());
    }

    /// Regression: `Host: ::1` (not allowed by HTTP) made a strict server answer 400, and
    /// the component was restarted.
    #[test]
    fn the_host_header_brackets_an_ipv6_address() {
        assert!(http_request("::1", 8080, "/is/image")
            .starts_with("GET /is/image HTTP/1.0\r\nHost: [::1]:8080\r\n"));
        assert!(http_request("localhost", 80, "/").contains("\r\nHost: localhost:80\r\n"));
    }

    /// Regression: a reason phrase cut inside a multibyte character at byte 64 (the read
    /// buffer) made a 200 "not an HTTP answer".
    #[test]
    fn a_reason_phrase_cut_inside_a_character_is_still_a_200() {
        let mut line = b"HTTP/1.1 200 ".to_vec();
        while line.len() < 63 {
            line.push(b'a');
        }
        line.extend_from_slice("é".as_bytes());
        assert_eq!(parse_status_line(&line[..64]), Ok(200));
    }

    #[test]
    fn a_round_of_probes_ends_by_its_deadline_whatever_hangs() {
        // A listener that accepts and never answers: the HTTP probe waits for its read
        // timeout; the round still ends then, with every result.
        let hung = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = hung.local_addr().unwrap().port();
        let open = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let open_port = open.local_addr().unwrap().port();
        let t = Duration::from_millis(300);
        let started = std::time::Instant::now();
        let r = check_all(&[
            (
                parse_target(&format!("http://127.0.0.1:{port}/")).unwrap(),
                t,
            ),
            (
                parse_target(&format!("tcp://127.0.0.1:{open_port}")).unwrap(),
                t,
            ),
        ]);
        let took = started.elapsed();
        assert!(r[0].is_err(), "{r:?}");
        assert_eq!(r[1], Ok(()));
        assert!(
            took < Duration::from_millis(1500),
            "the round took {took:?}"
        );
        drop(hung);
    }

    #[test]
    fn a_start_is_judged_by_the_same_settings_as_the_supervisor() {
        let s = ProbeSettings::from_environment(
            "u",
            &env(&[
                "IMAGESERVING_PROBE=tcp://a:1",
                "IMAGESERVING_PROBE_START_GRACE_SEC=300",
            ]),
        )
        .unwrap()
        .unwrap();
        // 300 s of grace, then 3 failures 5 + 2 s apart.
        assert_eq!(s.serve_deadline(), Duration::from_secs(321));
    }

    // Property tests: fuzzed with a large case count by scripts/fuzz.sh.
    proptest::proptest! {
        #[test]
        fn fuzz_settings_never_panic(kvs in proptest::collection::vec("(IMAGESERVING_(PROBE|START)[A-Z_]*=)?.{0,40}", 0..6)) {
            let _ = ProbeSettings::from_environment("u", &kvs);
            let _ = start_timeout("u", &kvs);
        }

        /// Whatever a component answers a probe with, reading its status line never panics.
        #[test]
        fn fuzz_status_lines_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let _ = parse_status_line(&bytes);
        }

        #[test]
        fn fuzz_valid_targets_round_trip(
            host in "[a-z][a-z0-9.-]{0,20}|\\[(::1|::|fe80::[0-9a-f]{1,4}|2001:db8(:[0-9a-f]{1,4}){1,6})\\]|[0-9]{1,3}(\\.[0-9]{1,3}){3}",
            port in 1u16..,
            path in "(/[a-zA-Z0-9._~-]{0,10}){1,3}",
            http in proptest::prelude::any::<bool>(),
        ) {
            let text = if http { format!("http://{host}:{port}{path}") } else { format!("tcp://{host}:{port}") };
            let target = parse_target(&text).unwrap();
            proptest::prop_assert_eq!(target.to_string(), text);
        }
    }
}
