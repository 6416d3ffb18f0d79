//! [`CgroupReader`]: a unit's processes and memory charge, from the cgroup file system, in
//! whichever hierarchy the host mounts (pure v2, or hybrid).

use std::cell::Cell;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::{parse, read_into, Records};

/// Finds a unit's processes and memory charge from its `ControlGroup` path.
pub struct CgroupReader {
    roots: Vec<PathBuf>,
    memory: Vec<(PathBuf, &'static str)>,
    /// Which candidate answered last, tried first next time: every unit of a machine lives
    /// in the same hierarchy.
    last_root: Cell<usize>,
    last_memory: Cell<usize>,
}

/// The first of `candidates` for which `read` succeeds, starting at the one in `last` (and
/// remembering it there).
fn first_that<'a, T>(
    candidates: &'a [T],
    last: &Cell<usize>,
    mut read: impl FnMut(&T) -> bool,
) -> Option<&'a T> {
    let start = last.get().min(candidates.len().saturating_sub(1));
    let order = (start..candidates.len()).chain(0..start);
    for i in order {
        let candidate = candidates.get(i)?;
        if read(candidate) {
            last.set(i);
            return Some(candidate);
        }
    }
    None
}

impl CgroupReader {
    /// The usual mounts, in the order systemd uses them: the unified (v2) hierarchy of a hybrid
    /// setup, a pure v2 mount, then the legacy `name=systemd` hierarchy. Memory is charged in
    /// the v2 hierarchy when it has the memory controller (`memory.current`), else in the v1
    /// memory hierarchy (`memory.usage_in_bytes`): the files systemd reads for
    /// `MemoryCurrent`.
    pub fn system() -> CgroupReader {
        CgroupReader::with_roots(vec![
            PathBuf::from("/sys/fs/cgroup/unified"),
            PathBuf::from("/sys/fs/cgroup"),
            PathBuf::from("/sys/fs/cgroup/systemd"),
        ])
        .with_memory(vec![
            (PathBuf::from("/sys/fs/cgroup"), "memory.current"),
            (
                PathBuf::from("/sys/fs/cgroup/memory"),
                "memory.usage_in_bytes",
            ),
        ])
    }

    /// A reader over these candidate mount points (and no memory figures).
    pub fn with_roots(roots: Vec<PathBuf>) -> CgroupReader {
        CgroupReader {
            roots,
            memory: Vec::new(),
            last_root: Cell::new(0),
            last_memory: Cell::new(0),
        }
    }

    /// Where to read a cgroup's memory charge: (mount point, file), first found wins.
    pub fn with_memory(mut self, memory: Vec<(PathBuf, &'static str)>) -> CgroupReader {
        self.memory = memory;
        self
    }

    /// The memory charged to the cgroup `control_group`, page cache included: the figure
    /// systemd reports as `MemoryCurrent`. `None` when no candidate has it (no memory
    /// controller for that cgroup: systemd would say "unknown" too).
    pub fn memory_bytes(&self, control_group: &str) -> Option<u64> {
        let rel = relative(control_group)?;
        let mut buf = Vec::with_capacity(32);
        first_that(&self.memory, &self.last_memory, |(root, file)| {
            read_into(&root.join(rel).join(file), &mut buf, Records::One).is_ok()
        })?;
        parse::single_u64(&buf).ok()
    }

    /// Every PID in the cgroup `control_group` and its children; `None` when no candidate mount
    /// has that cgroup (then ask systemd instead).
    pub fn pids(&self, control_group: &str) -> Option<Vec<u32>> {
        let rel = relative(control_group)?;
        let mut buf = Vec::new();
        let root = first_that(&self.roots, &self.last_root, |r| {
            read_into(&r.join(rel).join("cgroup.procs"), &mut buf, Records::Many).is_ok()
        })?;
        let dir = root.join(rel);
        let mut pids = parse::cgroup_procs(&buf);
        collect_children(&dir, &mut pids, &mut buf);
        Some(pids)
    }
}

/// A cgroup path relative to a mount point; `None` for the root or a path that climbs out.
fn relative(control_group: &str) -> Option<&str> {
    let rel = control_group.trim_start_matches('/');
    (!rel.is_empty() && !rel.split('/').any(|c| c == "..")).then_some(rel)
}

/// Add the PIDs of every cgroup below `dir`.
fn collect_children(dir: &Path, out: &mut Vec<u32>, buf: &mut Vec<u8>) {
    // A directory's link count is 2 plus its subdirectories on cgroupfs (kernfs), as on
    // classic Unix file systems: 2 means no child cgroup, and saves listing the directory
    // (the common case: a unit without delegation has none). Any other count is checked.
    if std::fs::metadata(dir).is_ok_and(|m| m.nlink() == 2) {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            let child = e.path();
            if read_into(&child.join("cgroup.procs"), buf, Records::Many).is_ok() {
                out.extend(parse::cgroup_procs(buf));
            }
            collect_children(&child, out, buf);
        }
    }
}
