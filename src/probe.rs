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
        let seconds = |key: &'static str,
                       default: f64,
                       allow_zero: bool|
         -> Result<Duration, SettingError> {
            let Some(v) = get(key) else {
                return Ok(Duration::from_secs_f64(default));
            };
            match v.parse::<f64>() {
                Ok(s) if s.is_finite() && s <= 3600.0 && (s > 0.0 || (allow_zero && s == 0.0)) => {
                    Ok(Duration::from_secs_f64(s))
                }
                _ if allow_zero => Err(bad(key, v, "expected a number of seconds from 0 to 3600")),
                _ => Err(bad(
                    key,
                    v,
                    "expected a number of seconds above 0 and at most 3600",
                )),
            }
        };
        let interval = seconds(KEY_INTERVAL, 5.0, false)?;
        let timeout = seconds(KEY_TIMEOUT, 2.0, false)?;
        let start_grace = seconds(KEY_START_GRACE, 300.0, true)?;
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
    let host = host.trim_start_matches('[').trim_end_matches(']');
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

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Tcp { host, port } => write!(f, "tcp://{host}:{port}"),
            Target::Http { host, port, path } => write!(f, "http://{host}:{port}{path}"),
        }
    }
}

/// Run one probe; `Err` says why it failed, in a few words.
pub fn check(target: &Target, timeout: Duration) -> Result<(), String> {
    match target {
        Target::Tcp { host, port } => connect(host, *port, timeout).map(drop),
        Target::Http { host, port, path } => {
            let mut stream = connect(host, *port, timeout)?;
            let io = |e: std::io::Error| e.to_string();
            stream.set_read_timeout(Some(timeout)).map_err(io)?;
            stream.set_write_timeout(Some(timeout)).map_err(io)?;
            let request = format!(
                "GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: imageserving-supervisor\r\nConnection: close\r\n\r\n"
            );
            stream.write_all(request.as_bytes()).map_err(io)?;
            let mut buf = [0u8; 64];
            let mut len = 0;
            while len < 12 {
                match stream.read(&mut buf[len..]) {
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
            let status = parse_status_line(&buf[..len])?;
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

/// The status code of an HTTP/1.x status line.
pub fn parse_status_line(bytes: &[u8]) -> Result<u16, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not an HTTP answer".to_owned())?;
    let mut parts = text.split(' ');
    match (parts.next(), parts.next()) {
        (Some(v), Some(code)) if v.starts_with("HTTP/") => code
            .get(..3)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| "not an HTTP answer".to_owned()),
        _ => Err("not an HTTP answer".to_owned()),
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
            "tcp://::1:1"
        );
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
    }

    // Property tests: fuzzed with a large case count by scripts/fuzz.sh.
    proptest::proptest! {
        #[test]
        fn fuzz_settings_never_panic(kvs in proptest::collection::vec("(IMAGESERVING_PROBE[A-Z_]*=)?.{0,40}", 0..6)) {
            let _ = ProbeSettings::from_environment("u", &kvs);
        }

        #[test]
        fn fuzz_valid_targets_round_trip(
            host in "[a-z][a-z0-9.-]{0,20}",
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
