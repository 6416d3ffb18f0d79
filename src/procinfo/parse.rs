//! Pure parsers of procfs files (`proc(5)`): text in, numbers out, no I/O. Tested on files
//! captured from real processes in `tests/data/proc/`.

use procfs::FromBufRead;

/// A procfs file that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot parse {file}: {why}")]
pub struct ParseError {
    /// Which file (`stat`, `statm`, ...).
    pub file: &'static str,
    /// What was wrong.
    pub why: String,
}

fn err(file: &'static str, why: impl std::fmt::Display) -> ParseError {
    ParseError {
        file,
        why: why.to_string(),
    }
}

/// What `status` needs from `/proc/<pid>/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatFields {
    /// Start time after boot, in clock ticks.
    pub start_ticks: u64,
    /// Resident set size, in pages.
    pub rss_pages: u64,
    /// Run state: `R`, `S`, `D`, `T` (stopped), `Z` (zombie), ...
    pub state: char,
    /// The parent's PID (0 for the first process of a PID namespace).
    pub ppid: u32,
}

/// Parse `/proc/<pid>/stat`. The command name may hold spaces and parentheses; the parser
/// splits at the *last* `)`. (Our own parser: procfs-core's panics on some malformed input,
/// which the fuzzer found; see `stat_that_once_panicked`.)
pub fn stat(bytes: &[u8]) -> Result<StatFields, ParseError> {
    let open = bytes
        .iter()
        .position(|&b| b == b'(')
        .ok_or_else(|| err("stat", "no '('"))?;
    let close = bytes
        .iter()
        .rposition(|&b| b == b')')
        .ok_or_else(|| err("stat", "no ')'"))?;
    if close < open {
        return Err(err("stat", "')' before '('"));
    }
    let rest = std::str::from_utf8(bytes.get(close + 1..).unwrap_or_default())
        .map_err(|e| err("stat", e))?;
    let mut fields = rest.split_ascii_whitespace();
    let state = fields
        .next()
        .and_then(|f| f.chars().next())
        .ok_or_else(|| err("stat", "no state"))?;
    // After the state come ppid (field 4 of proc(5)) onwards: starttime is field 22 and rss
    // field 24, so the 19th and 21st of these.
    let rest: Vec<&str> = fields.collect();
    let field = |n: usize, name: &str| -> Result<&str, ParseError> {
        rest.get(n - 4)
            .copied()
            .ok_or_else(|| err("stat", format!("no field {n} ({name})")))
    };
    let ppid = field(4, "ppid")?.parse().map_err(|e| err("stat", e))?;
    let start_ticks = field(22, "starttime")?
        .parse()
        .map_err(|e| err("stat", e))?;
    // rss is signed in the kernel's format; a negative value is nonsense, read as 0.
    let rss: i64 = field(24, "rss")?.parse().map_err(|e| err("stat", e))?;
    Ok(StatFields {
        start_ticks,
        rss_pages: u64::try_from(rss).unwrap_or(0),
        state,
        ppid,
    })
}

/// Resident set size in pages from `/proc/<pid>/statm` (its second field). `statm` is the
/// cheapest file that carries RSS, which matters when a unit has a thousand processes.
pub fn statm_resident_pages(bytes: &[u8]) -> Result<u64, ParseError> {
    let text = std::str::from_utf8(bytes).map_err(|e| err("statm", e))?;
    let mut fields = text.split_ascii_whitespace();
    fields
        .nth(1)
        .ok_or_else(|| err("statm", "fewer than 2 fields"))?
        .parse()
        .map_err(|e| err("statm", e))
}

/// `VmRSS` of `/proc/<pid>/status`, in bytes (`None` for a kernel thread, which has none).
pub fn status_vm_rss(bytes: &[u8]) -> Result<Option<u64>, ParseError> {
    let s = procfs::process::Status::from_buf_read(bytes).map_err(|e| err("status", e))?;
    Ok(s.vmrss.map(|kib| kib * 1024))
}

/// Proportional set size from `/proc/<pid>/smaps_rollup`, in bytes.
pub fn smaps_rollup_pss(bytes: &[u8]) -> Result<u64, ParseError> {
    let r =
        procfs::process::SmapsRollup::from_buf_read(bytes).map_err(|e| err("smaps_rollup", e))?;
    r.memory_map_rollup
        .0
        .first()
        .and_then(|m| m.extension.map.get("Pss").copied())
        .ok_or_else(|| err("smaps_rollup", "no Pss line"))
}

/// Seconds since boot from `/proc/uptime` (the boot clock, which also counts suspend).
pub fn uptime_seconds(bytes: &[u8]) -> Result<f64, ParseError> {
    let text = std::str::from_utf8(bytes).map_err(|e| err("uptime", e))?;
    text.split_ascii_whitespace()
        .next()
        .ok_or_else(|| err("uptime", "empty"))?
        .parse()
        .map_err(|e| err("uptime", e))
}

/// The boot time in seconds since the Unix epoch, from `/proc/stat`'s `btime` line: fixed for
/// the life of the system, unlike "now minus uptime".
pub fn btime(bytes: &[u8]) -> Result<u64, ParseError> {
    let text = std::str::from_utf8(bytes).map_err(|e| err("stat", e))?;
    text.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .ok_or_else(|| err("stat", "no btime line"))?
        .trim()
        .parse()
        .map_err(|e| err("stat", e))
}

/// A cgroup file that holds one number (`memory.current`, `memory.usage_in_bytes`).
pub fn single_u64(bytes: &[u8]) -> Result<u64, ParseError> {
    let text = std::str::from_utf8(bytes).map_err(|e| err("cgroup file", e))?;
    text.trim()
        .parse()
        .map_err(|e| err("cgroup file", format!("{e}: {:?}", text.trim())))
}

/// The process's cgroup in the hierarchy systemd manages, from `/proc/<pid>/cgroup`: the
/// unified (`0::`) line, or on a legacy-only system the `name=systemd` line.
pub fn proc_cgroup_path(bytes: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(bytes).ok()?;
    let find = |prefix: &str| {
        text.lines()
            .find_map(|l| {
                l.split_once(':')
                    .and_then(|(_, rest)| rest.strip_prefix(prefix))
            })
            .filter(|p| p.starts_with('/'))
            .map(str::to_owned)
    };
    find(":")
        .filter(|p| p != "/")
        .or_else(|| find("name=systemd:"))
}

/// PIDs listed in a `cgroup.procs` file.
pub fn cgroup_procs(bytes: &[u8]) -> Vec<u32> {
    std::str::from_utf8(bytes)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(name: &str) -> Vec<u8> {
        let path = format!("{}/tests/data/proc/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn stat_of_a_process_holding_64_mib() {
        let s = stat(&data("python64m.stat")).unwrap();
        // stat and statm were captured a moment apart from a process still touching pages:
        // they agree within 1 %, and both are above the 64 MiB it touched.
        let statm = statm_resident_pages(&data("python64m.statm")).unwrap();
        assert!(
            s.rss_pages.abs_diff(statm) * 100 < statm,
            "{} vs {statm}",
            s.rss_pages
        );
        assert!(s.rss_pages * 4096 > 64 * 1024 * 1024);
        assert!(s.start_ticks > 0);
    }

    #[test]
    fn stat_with_parentheses_and_spaces_in_the_name() {
        let s = stat(&data("paren-name.stat")).unwrap();
        assert_eq!(
            s,
            StatFields {
                start_ticks: 424_242,
                rss_pages: 250,
                state: 'S',
                ppid: 1,
            }
        );
        assert_eq!(stat(&data("sleep.stat")).unwrap().state, 'S');
    }

    /// Regression: procfs-core's stat parser panicked on these (found by the fuzzer).
    #[test]
    fn stat_that_once_panicked() {
        for bad in [
            &b"(a) S"[..],
            b")(",
            b"1 (\xc3\xa9)\xc3\xa9 S",
            b"1 ()",
            b"(",
            b"1 (a)",
        ] {
            assert!(stat(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn status_rss_matches_statm() {
        let rss = status_vm_rss(&data("python64m.status")).unwrap().unwrap();
        let pages = statm_resident_pages(&data("python64m.statm")).unwrap();
        assert!(
            rss.abs_diff(pages * 4096) * 100 < rss,
            "{rss} vs {}",
            pages * 4096
        );
    }

    #[test]
    fn pss_is_at_most_rss() {
        let pss = smaps_rollup_pss(&data("python64m.smaps_rollup")).unwrap();
        let rss = statm_resident_pages(&data("python64m.statm")).unwrap() * 4096;
        assert!(pss <= rss && pss > 64 * 1024 * 1024, "pss {pss} rss {rss}");
        assert!(smaps_rollup_pss(&data("sleep.smaps_rollup")).unwrap() < 4 * 1024 * 1024);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [&b""[..], b"x", b"1 (a", b"\xff\xfe", b"1 (a) S"] {
            assert!(stat(bad).is_err(), "{bad:?}");
            assert!(statm_resident_pages(bad).is_err(), "{bad:?}");
            assert!(smaps_rollup_pss(bad).is_err(), "{bad:?}");
        }
        for bad in [&b""[..], b"x", b"\xff\xfe", b"-"] {
            assert!(uptime_seconds(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn cgroup_of_a_process_in_a_hybrid_and_a_legacy_setup() {
        let hybrid = b"9:name=systemd:/m/app.slice/x.service\n4:memory:/m/app.slice/x.service\n1:cpu:/\n0::/m/app.slice/x.service\n";
        assert_eq!(
            proc_cgroup_path(hybrid).as_deref(),
            Some("/m/app.slice/x.service")
        );
        let legacy = b"2:cpu:/\n1:name=systemd:/system.slice/y.service\n";
        assert_eq!(
            proc_cgroup_path(legacy).as_deref(),
            Some("/system.slice/y.service")
        );
        // Unified mounted but the process sits at its root: use the legacy line.
        let root = b"1:name=systemd:/system.slice/z.service\n0::/\n";
        assert_eq!(
            proc_cgroup_path(root).as_deref(),
            Some("/system.slice/z.service")
        );
        assert_eq!(proc_cgroup_path(b"garbage"), None);
    }

    #[test]
    fn uptime_and_cgroup_procs() {
        assert!(uptime_seconds(&data("uptime")).unwrap() > 0.0);
        assert_eq!(
            uptime_seconds(b"350735.47 234388.90\n").unwrap(),
            350_735.47
        );
        assert_eq!(cgroup_procs(b"1\n22\n\n333\n"), vec![1, 22, 333]);
        assert_eq!(single_u64(b"17338368\n").unwrap(), 17_338_368);
        assert!(single_u64(b"max\n").is_err());
        assert!(single_u64(b"").is_err());
    }

    /// Feed `bytes` to every parser; none may panic, whatever the result.
    fn every_parser(bytes: &[u8]) {
        let _ = stat(bytes);
        let _ = statm_resident_pages(bytes);
        let _ = status_vm_rss(bytes);
        let _ = smaps_rollup_pss(bytes);
        let _ = uptime_seconds(bytes);
        let _ = cgroup_procs(bytes);
        let _ = proc_cgroup_path(bytes);
        let _ = single_u64(bytes);
        let _ = btime(bytes);
    }

    #[test]
    fn btime_is_read_from_proc_stat() {
        let text = b"cpu  1 2 3\nintr 5\nctxt 9\nbtime 1764630000\nprocesses 7\n";
        assert_eq!(btime(text).unwrap(), 1_764_630_000);
        assert!(btime(b"cpu 1\n").is_err());
    }

    // Property tests: fuzzed with a large case count by scripts/fuzz.sh.
    proptest::proptest! {
        #[test]
        fn fuzz_parsers_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..1024)) {
            every_parser(&bytes);
        }

        /// Captured files, cut short and with bytes changed: closer to real input than noise.
        #[test]
        fn fuzz_mutated_captures_never_panic(
            file in proptest::sample::select(vec!["python64m.stat", "python64m.statm", "python64m.status", "python64m.smaps_rollup", "sleep.status", "uptime"]),
            cut in proptest::prelude::any::<proptest::sample::Index>(),
            edits in proptest::collection::vec((proptest::prelude::any::<proptest::sample::Index>(), proptest::prelude::any::<u8>()), 0..8),
        ) {
            let mut bytes = data(file);
            bytes.truncate(cut.index(bytes.len() + 1));
            for (at, b) in edits {
                if !bytes.is_empty() {
                    let i = at.index(bytes.len());
                    bytes[i] = b;
                }
            }
            every_parser(&bytes);
        }

        #[test]
        fn fuzz_stat_takes_any_command_name(
            name in "[^\\x00-\\x1f]{0,15}",
            start in proptest::prelude::any::<u64>(),
            rss in proptest::prelude::any::<u32>(),
        ) {
            let line = format!(
                "42 ({name}) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 {start} 1000000 {rss} 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
            );
            let s = stat(line.as_bytes()).unwrap();
            proptest::prop_assert_eq!(s.start_ticks, start);
            proptest::prop_assert_eq!(s.rss_pages, u64::from(rss));
            proptest::prop_assert_eq!(s.state, 'S');
        }
    }
}
