//! Health probes: what "serving" means for a component, read from its unit's environment.
//!
//! An operator changes a probe with the ordinary tools: `systemctl edit imageserving-image`
//! and an `Environment=IMAGESERVING_PROBE=...` line. Settings are read strictly: a bad value is
//! an error naming the unit and the key, never a silent default.

//!
//! `settings` reads them; `check` runs them.

mod check;
mod settings;

pub use check::{check, check_all, check_all_timed, parse_status_line};
pub use settings::{
    check_behind_socket, memory_limit, parse_target, start_timeout, Cadence, ProbeSettings,
    SettingError, Target, DEFAULT_START_TIMEOUT, KEY_FAILURES, KEY_INTERVAL, KEY_MEMORY_RESTART,
    KEY_PROBE, KEY_START_GRACE, KEY_START_TIMEOUT, KEY_TIMEOUT, MAX_TIMEOUT, MIN_SECONDS,
};

#[cfg(test)]
use check::http_request;
#[cfg(test)]
use std::time::Duration;

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
            // The interval's floor is 0.05 s, the timeout's 0.1 s.
            "IMAGESERVING_PROBE_INTERVAL_SEC=0.04",
            "IMAGESERVING_PROBE_TIMEOUT_SEC=0.05",
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
    fn the_shortest_interval_is_accepted() {
        let s = ProbeSettings::from_environment(
            "u",
            &env(&[
                "IMAGESERVING_PROBE=tcp://a:1",
                "IMAGESERVING_PROBE_INTERVAL_SEC=0.05",
                "IMAGESERVING_PROBE_TIMEOUT_SEC=0.1",
            ]),
        )
        .expect("accepted")
        .expect("a probe");
        assert_eq!(s.interval, std::time::Duration::from_millis(50));
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

    #[test]
    fn memory_limits_take_systemds_sizes() {
        let limit =
            |v: &str| memory_limit("u", &env(&[&format!("IMAGESERVING_MEMORY_RESTART={v}")]));
        assert_eq!(limit("512M"), Ok(Some(512 << 20)));
        assert_eq!(limit("1.5G"), Ok(Some(3 << 29)));
        assert_eq!(limit("2048k"), Ok(Some(2 << 20)));
        assert_eq!(limit(""), Ok(None));
        assert_eq!(memory_limit("u", &[]), Ok(None));
        for bad in ["12", "lots", "1.5X", "-1G", "G", "1e9", "0.0001M"] {
            let e = limit(bad).unwrap_err();
            assert_eq!(e.key, KEY_MEMORY_RESTART, "{bad}");
        }
    }

    // Property tests: fuzzed with a large case count by scripts/fuzz.sh.
    proptest::proptest! {
        #[test]
        fn fuzz_settings_never_panic(kvs in proptest::collection::vec("(IMAGESERVING_(PROBE|START|MEMORY)[A-Z_]*=)?.{0,40}", 0..6)) {
            let _ = ProbeSettings::from_environment("u", &kvs);
            let _ = start_timeout("u", &kvs);
            let _ = memory_limit("u", &kvs);
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
