//! A probe's settings, read strictly from a unit's `Environment=` entries: what to probe
//! ([`Target`]), how often, how long, how many failures, the start grace; and the
//! supervisor's ceiling for a start ([`start_timeout`]).

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

/// The shortest probe timeout accepted, in seconds.
pub const MIN_SECONDS: f64 = 0.1;
/// The shortest probe interval accepted, in seconds: short enough for a soak to make a
/// week's probes (120,960 at the default 5 s) in under two hours.
pub const MIN_INTERVAL: f64 = 0.05;
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

/// A component's memory limit: above it (its unit's summed RSS, the figure `status` shows)
/// for [`KEY_FAILURES`] probes in a row, the supervisor restarts it gracefully. A size in
/// systemd's syntax (`512M`, `1.5G`: base 1024); unset, no limit.
pub const KEY_MEMORY_RESTART: &str = "IMAGESERVING_MEMORY_RESTART";

/// [`KEY_MEMORY_RESTART`] from a unit's `Environment=` entries, in bytes.
pub fn memory_limit(unit: &str, env: &[String]) -> Result<Option<u64>, SettingError> {
    let prefix = format!("{KEY_MEMORY_RESTART}=");
    match env.iter().rev().find_map(|kv| kv.strip_prefix(&prefix)) {
        None | Some("") => Ok(None),
        Some(v) => parse_size(v).map(Some).ok_or_else(|| SettingError {
            unit: unit.to_owned(),
            key: KEY_MEMORY_RESTART,
            value: v.to_owned(),
            why: "expected a size such as 512M or 1.5G (K, M, G, T: base 1024), at least 1M"
                .to_owned(),
        }),
    }
}

/// A size as systemd writes one (`MemoryMax=`): a number, maybe with a fraction, and an
/// optional K, M, G or T (base 1024). At least 1 MiB: less is no server's limit, and a typo.
fn parse_size(v: &str) -> Option<u64> {
    let (number, unit) = match v.trim().char_indices().last()? {
        (i, c) if c.is_ascii_alphabetic() => (v.trim().get(..i)?, Some(c.to_ascii_uppercase())),
        _ => (v.trim(), None),
    };
    let factor: u64 = match unit {
        None => 1,
        Some('K') => 1 << 10,
        Some('M') => 1 << 20,
        Some('G') => 1 << 30,
        Some('T') => 1 << 40,
        Some(_) => return None,
    };
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    let n: f64 = number.parse().ok()?;
    #[allow(clippy::cast_precision_loss)]
    let bytes = n * factor as f64;
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    (bytes.is_finite() && bytes >= f64::from(1u32 << 20) && bytes < 1e18).then_some(bytes as u64)
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

/// A probe must see through a socket systemd holds for the component (`socket`, when the
/// component is switched to it): a TCP connect to a held port succeeds even while the server
/// is down or hung, so only a probe the server itself answers (http://) can tell. No probe
/// at all claims nothing, and passes.
pub fn check_behind_socket(
    unit: &str,
    probe: Option<&ProbeSettings>,
    socket: &str,
) -> Result<(), SettingError> {
    match probe {
        Some(p) if matches!(p.target, Target::Tcp { .. }) => Err(SettingError {
            unit: unit.to_owned(),
            key: KEY_PROBE,
            value: p.target.to_string(),
            why: format!(
                "{socket} holds this port, so a TCP connect succeeds even while the server is down or hung: use an http:// probe the server answers"
            ),
        }),
        _ => Ok(()),
    }
}

impl ProbeSettings {
    /// Read the settings from a unit's `Environment=` entries (`KEY=VALUE` strings).
    /// Returns `Ok(None)` when the unit has no probe: the component then counts as serving
    /// once its unit is active.
    pub fn from_environment(
        unit: &str,
        env: &[String],
    ) -> Result<Option<ProbeSettings>, SettingError> {
        let Some(raw) = lookup(env, KEY_PROBE) else {
            return Ok(None);
        };
        if raw.is_empty() {
            return Ok(None);
        }
        let target = parse_target(raw).map_err(|why| SettingError {
            unit: unit.to_owned(),
            key: KEY_PROBE,
            value: raw.to_owned(),
            why,
        })?;
        let c = Cadence::from_environment(unit, env)?;
        Ok(Some(ProbeSettings {
            target,
            interval: c.interval,
            timeout: c.timeout,
            failures: c.failures,
            start_grace: c.start_grace,
        }))
    }
}

/// The timing keys of a component, read with or without a probe: the probe's, and the
/// memory guard's pace (it reads memory every interval, counts the same number of readings
/// in a row, and reads nothing during the start grace).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cadence {
    /// [`KEY_INTERVAL`] (5 s).
    pub interval: Duration,
    /// [`KEY_TIMEOUT`] (2 s).
    pub timeout: Duration,
    /// [`KEY_FAILURES`] (3).
    pub failures: u32,
    /// [`KEY_START_GRACE`] (300 s).
    pub start_grace: Duration,
}

/// The last assignment of `key` (a later one, from a drop-in, wins, as in systemd).
fn lookup<'a>(env: &'a [String], key: &str) -> Option<&'a str> {
    env.iter()
        .rev()
        .find_map(|kv| kv.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

impl Cadence {
    /// Read strictly from a unit's `Environment=` entries; defaults where unset.
    pub fn from_environment(unit: &str, env: &[String]) -> Result<Cadence, SettingError> {
        let bad = |key: &'static str, value: &str, why: &str| SettingError {
            unit: unit.to_owned(),
            key,
            value: value.to_owned(),
            why: why.to_owned(),
        };
        // Each duration lies in [min, max]; below a floor a probe cannot complete (a
        // timeout of 1e-10 s fails every probe) or the probes would spin.
        let seconds = |key: &'static str,
                       default: f64,
                       (min, max): (f64, f64)|
         -> Result<Duration, SettingError> {
            let Some(v) = lookup(env, key) else {
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
        let interval = seconds(KEY_INTERVAL, 5.0, (MIN_INTERVAL, 3600.0))?;
        let timeout = seconds(KEY_TIMEOUT, 2.0, (MIN_SECONDS, MAX_TIMEOUT.as_secs_f64()))?;
        let start_grace = seconds(KEY_START_GRACE, 300.0, (0.0, 3600.0))?;
        let failures = match lookup(env, KEY_FAILURES) {
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
        Ok(Cadence {
            interval,
            timeout,
            failures,
            start_grace,
        })
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
pub(super) struct UrlHost<'a>(pub(super) &'a str);

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
