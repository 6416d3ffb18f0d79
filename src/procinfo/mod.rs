//! Memory, process counts and uptimes of the stack's processes, from procfs (`proc(5)`) and
//! the cgroup file system.
//!
//! I/O is here; parsing is in [`parse`]. Every reader takes its roots (`/proc`,
//! `/sys/fs/cgroup`) as paths so that tests can point it at captured files. Races are states:
//! a process that exits between listing and reading is [`Sample::Gone`], one we may not read
//! is [`Sample::Unreadable`]; neither is an error.

mod cgroup;
pub mod parse;

pub use cgroup::CgroupReader;

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
    /// When the main process started, in clock ticks after boot (when it was read).
    pub main_start_ticks: Option<u64>,
}

/// From this many processes on, a unit's processes are read by several threads.
const PARALLEL_FROM: usize = 128;
/// At most this many threads read one unit's processes.
const MAX_THREADS: usize = 4;

impl Usage {
    fn add(&mut self, other: &Usage) {
        self.processes += other.processes;
        self.unreadable += other.unreadable;
        self.rss_bytes += other.rss_bytes;
        self.pss_bytes = match (self.pss_bytes, other.pss_bytes) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
        self.main_start_ticks = self.main_start_ticks.or(other.main_start_ticks);
    }
}

/// This process's effective user ID: the owner of `/proc/self` (no libc binding needed);
/// 0 when procfs cannot be read.
pub fn effective_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map_or(0, |m| m.uid())
}

/// This host's name (`/proc/sys/kernel/hostname`); empty when it cannot be read.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

/// The summed RSS of every process of the unit whose main process is `main_pid` (its cgroup,
/// as `status` sums it); the main process's alone when the cgroup cannot be listed; `None`
/// when neither can be read.
pub fn unit_rss(procs: &mut ProcReader, cgroups: &CgroupReader, main_pid: u32) -> Option<u64> {
    let in_cgroup = match procs.cgroup_path(main_pid) {
        Sample::Value(cgroup) => cgroups.pids(&cgroup),
        _ => None,
    };
    match in_cgroup {
        Some(pids) => Some(procs.usage(&pids, false, Some(main_pid)).rss_bytes),
        // The cgroup cannot be listed from here: the main process's own figure.
        None => match procs.rss_bytes(main_pid) {
            Sample::Value(rss) => Some(rss),
            _ => None,
        },
    }
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
        let path = self.root.join(pid.to_string()).join(file);
        match read_into(&path, &mut self.buf, Records::One) {
            Ok(()) => Sample::Value(()),
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

    /// The boot clock (`/proc/uptime`): seconds since boot, the clock process start times are
    /// on.
    pub fn boot_clock(&mut self) -> Option<f64> {
        let path = self.root.join("uptime");
        read_into(&path, &mut self.buf, Records::One).ok()?;
        parse::uptime_seconds(&self.buf).ok()
    }

    /// When the system booted, in seconds since the Unix epoch (`/proc/stat`'s `btime`).
    pub fn boot_time_unix(&mut self) -> Option<u64> {
        let path = self.root.join("stat");
        read_into(&path, &mut self.buf, Records::One).ok()?;
        parse::btime(&self.buf).ok()
    }

    /// Seconds from a process start (`start_ticks` after boot) to `now` on the boot clock.
    pub fn seconds_since(&self, start_ticks: u64, now: f64) -> f64 {
        #[allow(clippy::cast_precision_loss)] // ticks since boot fit an f64 exactly for aeons
        let started = start_ticks as f64 / self.ticks_per_second as f64;
        (now - started).max(0.0)
    }

    /// Seconds since the process started, on the boot clock.
    pub fn process_uptime(&mut self, pid: u32) -> Sample<f64> {
        let stat = match self.parsed(pid, "stat", parse::stat) {
            Sample::Value(s) => s,
            Sample::Gone => return Sample::Gone,
            Sample::Unreadable => return Sample::Unreadable,
        };
        match self.boot_clock() {
            Some(now) => Sample::Value(self.seconds_since(stat.start_ticks, now)),
            None => Sample::Unreadable,
        }
    }

    /// The run state of `pid` (`T` when stopped by a signal); see `proc(5)`.
    pub fn run_state(&mut self, pid: u32) -> Sample<char> {
        match self.parsed(pid, "stat", parse::stat) {
            Sample::Value(s) => Sample::Value(s.state),
            Sample::Gone => Sample::Gone,
            Sample::Unreadable => Sample::Unreadable,
        }
    }

    /// Every process below `pid` (children, their children, ...), from the parent PIDs in
    /// each process's `stat`, parents before their children. (Each process has one parent,
    /// so none is found twice.)
    pub fn descendants(&mut self, pid: u32) -> Vec<u32> {
        let Ok(dir) = std::fs::read_dir(&self.root) else {
            return Vec::new();
        };
        let mut parent_of: Vec<(u32, u32)> = Vec::new();
        for p in dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()) {
            if let Sample::Value(s) = self.parsed(p, "stat", parse::stat) {
                parent_of.push((s.ppid, p));
            }
        }
        let mut found = vec![pid];
        // Parent PIDs read one process at a time can form a cycle when PIDs are reused
        // meanwhile: each process is taken once.
        let mut seen = std::collections::HashSet::from([pid]);
        let mut i = 0;
        while let Some(&parent) = found.get(i) {
            i += 1;
            for &(pp, p) in &parent_of {
                if pp == parent && seen.insert(p) {
                    found.push(p);
                }
            }
        }
        found.remove(0);
        found
    }

    /// The cgroup `pid` is in (as systemd's `ControlGroup` names it).
    pub fn cgroup_path(&mut self, pid: u32) -> Sample<String> {
        self.parsed(pid, "cgroup", |b| parse::proc_cgroup_path(b).ok_or(()))
    }

    /// Sum memory over `pids`; `pss` also reads `smaps_rollup` (slower, and needs privilege).
    /// Of `main` (one of `pids`, the unit's main process) `stat` is read instead of `statm`:
    /// it carries the same RSS and the start time too ([`Usage::main_start_ticks`]).
    ///
    /// A unit with many processes (an Image Server with its workers) is read by several
    /// threads, one per CPU up to four: each process costs a few system calls, and those run
    /// in parallel.
    pub fn usage(&mut self, pids: &[u32], pss: bool, main: Option<u32>) -> Usage {
        if pids.len() < PARALLEL_FROM {
            return self.usage_here(pids, pss, main);
        }
        let threads = std::thread::available_parallelism()
            .map_or(1, usize::from)
            .min(MAX_THREADS);
        if threads < 2 {
            return self.usage_here(pids, pss, main);
        }
        let chunk = pids.len().div_ceil(threads);
        // Every part goes to a thread of its own while this one waits: a thread that shares
        // its CPU with the one that spawned it gains nothing, and the scheduler places a new
        // thread best on a CPU nobody is using.
        std::thread::scope(|scope| {
            let parts: Vec<_> = pids
                .chunks(chunk)
                .map(|part| {
                    let mut reader = self.sibling();
                    let work = move || reader.usage_here(part, pss, main);
                    std::thread::Builder::new()
                        .spawn_scoped(scope, work)
                        .map_err(|_| part)
                })
                .collect();
            let mut total = Usage::default();
            for part in parts {
                let u = match part {
                    Ok(handle) => handle
                        .join()
                        .unwrap_or_else(|e| std::panic::resume_unwind(e)),
                    // No thread to be had: read that part here.
                    Err(part) => self.usage_here(part, pss, main),
                };
                total.add(&u);
            }
            total
        })
    }

    /// A reader of the same procfs with a buffer of its own, for another thread.
    fn sibling(&self) -> ProcReader {
        ProcReader {
            root: self.root.clone(),
            page_size: self.page_size,
            ticks_per_second: self.ticks_per_second,
            buf: Vec::new(),
        }
    }

    fn usage_here(&mut self, pids: &[u32], pss: bool, main: Option<u32>) -> Usage {
        // PSS is absent, not 0, until one process's could be read.
        let mut u = Usage::default();
        for &pid in pids {
            let rss = if Some(pid) == main {
                match self.parsed(pid, "stat", parse::stat) {
                    Sample::Value(s) => {
                        u.main_start_ticks = Some(s.start_ticks);
                        Sample::Value(s.rss_pages * self.page_size)
                    }
                    Sample::Gone => Sample::Gone,
                    Sample::Unreadable => Sample::Unreadable,
                }
            } else {
                self.rss_bytes(pid)
            };
            match rss {
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
                    Sample::Value(v) => u.pss_bytes = Some(u.pss_bytes.unwrap_or(0) + v),
                    Sample::Unreadable => u.unreadable += 1,
                    Sample::Gone => {}
                }
            }
        }
        u
    }
}

/// How a file's content comes out of the kernel, which says when a read has seen it all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Records {
    /// One record made whole on each read (procfs and cgroup files made with `single_open`:
    /// `/proc/PID/{stat,statm,cgroup,smaps_rollup}`, `/proc/uptime`, `memory.current`): a
    /// read that does not fill the buffer has returned all of it.
    One,
    /// Many records (`cgroup.procs`): a read may stop short before a record that does not
    /// fit, so only a read of nothing means the end.
    Many,
}

/// Read the whole of a (proc or cgroup) file into `buf`: open, read until the end, close. Not
/// `std::fs::read`, which also stats the file for a size that procfs does not report; and for
/// one-record files, no last read to learn what the short read already said (this is run
/// once per process: with a thousand processes in a unit, system calls are the cost).
pub(crate) fn read_into(path: &Path, buf: &mut Vec<u8>, records: Records) -> std::io::Result<()> {
    buf.clear();
    let mut f = std::fs::File::open(path)?;
    let mut chunk = [0u8; 4096];
    loop {
        match f.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => {
                buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
                if records == Records::One && n < chunk.len() {
                    return Ok(());
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
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
    fn descendants_are_found_through_the_parent_pids() {
        let root =
            std::env::temp_dir().join(format!("imageserving-fakeproc-tree-{}", std::process::id()));
        // 10 has 11 and 12; 11 has 13, which has 14; 20 is another tree.
        for (pid, ppid) in [(10, 1), (11, 10), (12, 10), (13, 11), (14, 13), (20, 1)] {
            std::fs::create_dir_all(root.join(pid.to_string())).unwrap();
            std::fs::write(
                root.join(format!("{pid}/stat")),
                format!("{pid} (sh) S {ppid} 1 1 0 -1 0 0 0 0 0 1 2 0 0 20 0 1 0 4242 1000 25 0"),
            )
            .unwrap();
        }
        std::fs::write(root.join("uptime"), "1.0 1.0").unwrap();
        let mut r = ProcReader::new(&root);
        let mut below = r.descendants(10);
        assert_eq!(&below[..2], &[11, 12], "children come first");
        below.sort_unstable();
        assert_eq!(below, [11, 12, 13, 14]);
        assert_eq!(r.descendants(14), Vec::<u32>::new());
        assert_eq!(r.descendants(20), Vec::<u32>::new());
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn a_vanished_process_is_skipped_not_an_error() {
        let root = fake_proc();
        let mut r = ProcReader::new(&root);
        assert_eq!(r.rss_bytes(999_999), Sample::Gone);
        let u = r.usage(&[100, 999_999], true, None);
        assert_eq!(u.processes, 1);
        assert_eq!(u.unreadable, 0);
        assert_eq!(u.rss_bytes, 19_793 * procfs::page_size());
        assert!(u.pss_bytes.unwrap() > 64 << 20);
        assert!(matches!(r.process_uptime(100), Sample::Value(s) if s >= 0.0));
        // The main process is read from `stat`: the same RSS, and its start time.
        let stat = parse::stat(&std::fs::read(root.join("100/stat")).unwrap()).unwrap();
        let m = r.usage(&[100], false, Some(100));
        assert_eq!(m.main_start_ticks, Some(stat.start_ticks));
        assert_eq!(m.rss_bytes, stat.rss_pages * procfs::page_size());
        assert_eq!(r.usage(&[100], false, None).main_start_ticks, None);
        let _ = std::fs::remove_dir_all(root);
    }

    #[test]
    fn many_processes_are_read_in_parallel_and_summed_alike() {
        let root =
            std::env::temp_dir().join(format!("imageserving-fakeproc-many-{}", std::process::id()));
        let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/proc");
        let pids: Vec<u32> = (1000..1000 + 3 * PARALLEL_FROM as u32).collect();
        for pid in &pids {
            let dir = root.join(pid.to_string());
            std::fs::create_dir_all(&dir).unwrap();
            for f in ["stat", "statm"] {
                std::fs::copy(data.join(format!("python64m.{f}")), dir.join(f)).unwrap();
            }
        }
        // One of them went away mid-read.
        let mut listed = pids.clone();
        listed.push(999_999);
        let mut r = ProcReader::new(&root);
        let main = Some(pids[pids.len() - 1]);
        let parallel = r.usage(&listed, false, main);
        let serial = r.usage_here(&listed, false, main);
        assert_eq!(parallel, serial);
        assert_eq!(parallel.processes, 3 * PARALLEL_FROM as u32);
        assert!(parallel.main_start_ticks.is_some());
        let _ = std::fs::remove_dir_all(root);
    }

    #[test]
    fn processes_of_child_cgroups_are_counted() {
        let root = std::env::temp_dir().join(format!("imageserving-fakecg-{}", std::process::id()));
        let unit = root.join("app.slice/a.service");
        std::fs::create_dir_all(unit.join("workers/w1")).unwrap();
        std::fs::create_dir_all(root.join("app.slice/b.service")).unwrap();
        std::fs::write(unit.join("cgroup.procs"), "10\n11\n").unwrap();
        std::fs::write(unit.join("workers/cgroup.procs"), "").unwrap();
        std::fs::write(unit.join("workers/w1/cgroup.procs"), "12\n").unwrap();
        std::fs::write(root.join("app.slice/b.service/cgroup.procs"), "20\n").unwrap();
        let c = CgroupReader::with_roots(vec![root.join("missing"), root.clone()]);
        let mut pids = c.pids("/app.slice/a.service").unwrap();
        pids.sort_unstable();
        assert_eq!(pids, [10, 11, 12]);
        assert_eq!(c.pids("/app.slice/b.service").unwrap(), [20]);
        assert_eq!(c.pids("/app.slice/c.service"), None);
        // Memory: v2's file where the v2 hierarchy has it, else v1's.
        std::fs::create_dir_all(root.join("memory/app.slice/b.service")).unwrap();
        std::fs::write(unit.join("memory.current"), "4096\n").unwrap();
        std::fs::write(
            root.join("memory/app.slice/b.service/memory.usage_in_bytes"),
            "8192\n",
        )
        .unwrap();
        let c = c.with_memory(vec![
            (root.clone(), "memory.current"),
            (root.join("memory"), "memory.usage_in_bytes"),
        ]);
        assert_eq!(c.memory_bytes("/app.slice/a.service"), Some(4096));
        assert_eq!(c.memory_bytes("/app.slice/b.service"), Some(8192));
        assert_eq!(c.memory_bytes("/app.slice/c.service"), None);
        assert_eq!(c.memory_bytes("/"), None);
        // The candidate that answered last is tried first; the others still are.
        assert_eq!(c.memory_bytes("/app.slice/a.service"), Some(4096));
        assert_eq!(c.pids("/app.slice/b.service").unwrap(), [20]);
        let _ = std::fs::remove_dir_all(root);
    }

    #[test]
    fn cgroup_paths_cannot_escape_the_mount() {
        let c = CgroupReader::with_roots(vec![PathBuf::from("/sys/fs/cgroup")]);
        assert_eq!(c.pids("/../../etc"), None);
        assert_eq!(c.pids(""), None);
        assert_eq!(c.memory_bytes("/../../etc"), None);
    }
}
