//! Memory, process counts and uptimes of the stack's processes, from procfs (`proc(5)`) and
//! the cgroup file system.
//!
//! I/O is here; parsing is in [`parse`]. Every reader takes its roots (`/proc`,
//! `/sys/fs/cgroup`) as paths so that tests can point it at captured files. Races are states:
//! a process that exits between listing and reading is [`Sample::Gone`], one we may not read
//! is [`Sample::Unreadable`]; neither is an error.

pub mod parse;

use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};

/// One reading of one process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sample<T> {
    /// The value.
    Value(T),
    /// The process no longer exists (or the file did not parse: it exited mid-read).
    Gone,
    /// We may not read it (another user's process, without privilege).
    Unreadable,
}

/// Memory and processes of one unit's cgroup.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Processes found alive.
    pub processes: u32,
    /// Of those, processes with a figure we may not read (left out of the sums).
    pub unreadable: u32,
    /// Sum of resident set sizes.
    pub rss_bytes: u64,
    /// Sum of proportional set sizes, when asked for.
    pub pss_bytes: Option<u64>,
}

/// Reads procfs files of processes into a reused buffer.
pub struct ProcReader {
    root: PathBuf,
    page_size: u64,
    ticks_per_second: u64,
    buf: Vec<u8>,
}

impl ProcReader {
    /// A reader of the procfs mounted at `root` (normally `/proc`).
    pub fn new(root: impl Into<PathBuf>) -> ProcReader {
        ProcReader {
            root: root.into(),
            page_size: procfs::page_size(),
            ticks_per_second: procfs::ticks_per_second().max(1),
            buf: Vec::with_capacity(4096),
        }
    }

    fn read(&mut self, pid: u32, file: &str) -> Sample<()> {
        self.buf.clear();
        let path = self.root.join(pid.to_string()).join(file);
        let result = std::fs::File::open(&path).and_then(|mut f| f.read_to_end(&mut self.buf));
        match result {
            Ok(_) => Sample::Value(()),
            Err(e) if e.kind() == ErrorKind::PermissionDenied => Sample::Unreadable,
            // ENOENT, ESRCH: the process went away between listing and reading.
            Err(_) => Sample::Gone,
        }
    }

    fn parsed<T, E>(
        &mut self,
        pid: u32,
        file: &str,
        parse: impl FnOnce(&[u8]) -> Result<T, E>,
    ) -> Sample<T> {
        match self.read(pid, file) {
            Sample::Value(()) => match parse(&self.buf) {
                Ok(v) => Sample::Value(v),
                Err(_) => Sample::Gone,
            },
            Sample::Gone => Sample::Gone,
            Sample::Unreadable => Sample::Unreadable,
        }
    }

    /// Resident set size in bytes.
    pub fn rss_bytes(&mut self, pid: u32) -> Sample<u64> {
        let page = self.page_size;
        match self.parsed(pid, "statm", parse::statm_resident_pages) {
            Sample::Value(pages) => Sample::Value(pages * page),
            other => other,
        }
    }

    /// Proportional set size in bytes (needs the right to read the process's memory map).
    pub fn pss_bytes(&mut self, pid: u32) -> Sample<u64> {
        self.parsed(pid, "smaps_rollup", parse::smaps_rollup_pss)
    }

    /// Seconds since the process started, on the boot clock.
    pub fn process_uptime(&mut self, pid: u32) -> Sample<f64> {
        let stat = match self.parsed(pid, "stat", parse::stat) {
            Sample::Value(s) => s,
            Sample::Gone => return Sample::Gone,
            Sample::Unreadable => return Sample::Unreadable,
        };
        let Ok(now) = std::fs::read(self.root.join("uptime"))
            .map_err(drop)
            .and_then(|b| parse::uptime_seconds(&b).map_err(drop))
        else {
            return Sample::Unreadable;
        };
        #[allow(clippy::cast_precision_loss)] // ticks since boot fit an f64 exactly for aeons
        let started = stat.start_ticks as f64 / self.ticks_per_second as f64;
        Sample::Value((now - started).max(0.0))
    }

    /// The run state of `pid` (`T` when stopped by a signal); see `proc(5)`.
    pub fn run_state(&mut self, pid: u32) -> Sample<char> {
        match self.parsed(pid, "stat", parse::stat) {
            Sample::Value(s) => Sample::Value(s.state),
            Sample::Gone => Sample::Gone,
            Sample::Unreadable => Sample::Unreadable,
        }
    }

    /// The cgroup `pid` is in (as systemd's `ControlGroup` names it).
    pub fn cgroup_path(&mut self, pid: u32) -> Sample<String> {
        self.parsed(pid, "cgroup", |b| parse::proc_cgroup_path(b).ok_or(()))
    }

    /// Sum memory over `pids`; `pss` also reads `smaps_rollup` (slower, and needs privilege).
    pub fn usage(&mut self, pids: &[u32], pss: bool) -> Usage {
        let mut u = Usage {
            pss_bytes: pss.then_some(0),
            ..Usage::default()
        };
        for &pid in pids {
            match self.rss_bytes(pid) {
                Sample::Value(rss) => {
                    u.processes += 1;
                    u.rss_bytes += rss;
                }
                Sample::Gone => continue,
                Sample::Unreadable => {
                    u.processes += 1;
                    u.unreadable += 1;
                    continue;
                }
            }
            if pss {
                match self.pss_bytes(pid) {
                    Sample::Value(v) => u.pss_bytes = u.pss_bytes.map(|t| t + v),
                    Sample::Unreadable => u.unreadable += 1,
                    Sample::Gone => {}
                }
            }
        }
        u
    }
}

/// Finds a unit's processes from its `ControlGroup` path.
pub struct CgroupReader {
    roots: Vec<PathBuf>,
}

impl CgroupReader {
    /// The usual mounts, in the order systemd uses them: the unified (v2) hierarchy of a hybrid
    /// setup, a pure v2 mount, then the legacy `name=systemd` hierarchy.
    pub fn system() -> CgroupReader {
        CgroupReader::with_roots(vec![
            PathBuf::from("/sys/fs/cgroup/unified"),
            PathBuf::from("/sys/fs/cgroup"),
            PathBuf::from("/sys/fs/cgroup/systemd"),
        ])
    }

    /// A reader over these candidate mount points.
    pub fn with_roots(roots: Vec<PathBuf>) -> CgroupReader {
        CgroupReader { roots }
    }

    /// Every PID in the cgroup `control_group` and its children; `None` when no candidate mount
    /// has that cgroup (then ask systemd instead).
    pub fn pids(&self, control_group: &str) -> Option<Vec<u32>> {
        let rel = control_group.trim_start_matches('/');
        if rel.is_empty() || rel.split('/').any(|c| c == "..") {
            return None;
        }
        let dir = self
            .roots
            .iter()
            .map(|r| r.join(rel))
            .find(|d| d.join("cgroup.procs").is_file())?;
        let mut pids = Vec::new();
        collect(&dir, &mut pids);
        Some(pids)
    }
}

fn collect(dir: &Path, out: &mut Vec<u32>) {
    if let Ok(bytes) = std::fs::read(dir.join("cgroup.procs")) {
        out.extend(parse::cgroup_procs(&bytes));
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                collect(&e.path(), out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake /proc with one captured process (pid 100) and nothing else.
    fn fake_proc() -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("imageserving-fakeproc-{}", std::process::id()));
        let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/proc");
        std::fs::create_dir_all(dir.join("100")).unwrap();
        for f in ["stat", "statm", "smaps_rollup"] {
            std::fs::copy(data.join(format!("python64m.{f}")), dir.join("100").join(f)).unwrap();
        }
        std::fs::copy(data.join("uptime"), dir.join("uptime")).unwrap();
        dir
    }

    #[test]
    fn a_vanished_process_is_skipped_not_an_error() {
        let root = fake_proc();
        let mut r = ProcReader::new(&root);
        assert_eq!(r.rss_bytes(999_999), Sample::Gone);
        let u = r.usage(&[100, 999_999], true);
        assert_eq!(u.processes, 1);
        assert_eq!(u.unreadable, 0);
        assert_eq!(u.rss_bytes, 19_793 * procfs::page_size());
        assert!(u.pss_bytes.unwrap() > 64 << 20);
        assert!(matches!(r.process_uptime(100), Sample::Value(s) if s >= 0.0));
        let _ = std::fs::remove_dir_all(root);
    }

    #[test]
    fn cgroup_paths_cannot_escape_the_mount() {
        let c = CgroupReader::with_roots(vec![PathBuf::from("/sys/fs/cgroup")]);
        assert_eq!(c.pids("/../../etc"), None);
        assert_eq!(c.pids(""), None);
    }
}
