//! Which main processes have served, kept across restarts of the supervisor in its runtime
//! directory (`RuntimeDirectory=`, preserved on restart, removed on stop: see
//! `systemd.exec(5)`).
//!
//! A supervisor that restarts (a package upgrade, a crash) finds the components running. One
//! that does not answer may be starting (a Tomcat deploying, within its start grace) or hung:
//! the record says which. A process an earlier supervisor saw serve is not starting, so the
//! new one neither waits for it nor gives it a grace; its failures count at once.
//!
//! The file holds one `NAME PID` line per component whose current process has served.

use std::path::PathBuf;

use crate::component::Component;

/// The record's file, when the supervisor has a runtime directory.
pub struct Served(Option<PathBuf>);

impl Served {
    /// The record in `$RUNTIME_DIRECTORY` (set by systemd for `RuntimeDirectory=`); none
    /// outside systemd.
    pub fn from_environment() -> Served {
        Served(
            std::env::var_os("RUNTIME_DIRECTORY")
                .filter(|d| !d.is_empty())
                .map(|d| PathBuf::from(d).join("served")),
        )
    }

    /// The main PID recorded for `component`, if any.
    pub fn pid(&self, component: Component) -> Option<u32> {
        let text = std::fs::read_to_string(self.0.as_ref()?).ok()?;
        parse(&text, component)
    }

    /// Record the components whose current processes have served, with their main PIDs. A
    /// failed write only costs a restarted supervisor its memory; it is not an error.
    pub fn write(&self, serving: impl Iterator<Item = (Component, u32)>) {
        let Some(path) = &self.0 else {
            return;
        };
        let text: String = serving
            .map(|(c, pid)| format!("{} {pid}\n", c.short_name()))
            .collect();
        let tmp = path.with_extension("new");
        if std::fs::write(&tmp, text).is_ok() {
            let _ = std::fs::rename(&tmp, path);
        }
    }
}

fn parse(text: &str, component: Component) -> Option<u32> {
    text.lines().find_map(|l| {
        let (name, pid) = l.split_once(' ')?;
        (name == component.short_name())
            .then(|| pid.trim().parse().ok())
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_names_each_component_once() {
        let text = "ps 10\nsvg 12\ngarbage\nis x\n";
        assert_eq!(parse(text, Component::Platform), Some(10));
        assert_eq!(parse(text, Component::Svg), Some(12));
        assert_eq!(parse(text, Component::Image), None);
        assert_eq!(parse("", Component::Svg), None);
    }
}
