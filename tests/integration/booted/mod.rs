//! The booted-system stage: this machine's own OS booted as a container, with a real systemd
//! as PID 1, journald, the system bus and polkitd, where the packages are installed and run as
//! operators run them (system scope, the shipped hardening, no drop-in relaxing it).
//!
//! Each [`Machine`] is a throw-away overlay of the root file system whose writable layer is a
//! size-limited tmpfs inside a private mount namespace, so nothing it does reaches the host:
//! not its files, its `/tmp`, its mounts (gone with the namespace), its network
//! (`--private-network`: its own loopback only) or its cgroups (a subtree of its own, removed
//! on drop). It boots in the hybrid layout these machines have, or in the pure cgroup v2
//! layout operators' hosts boot (`SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1`). The recipe and the facts
//! behind it: `shared/context/booted-system.md`.
//!
//! The packages come from `target/packages/`, built by `packaging/build-packages.sh` (which
//! `scripts/test.sh` runs first).

mod ansible;
mod cockpit;
mod faults;
mod fleet;
mod machine;
mod metrics;
mod package;
mod readme;
mod rootless;
mod sockets;
mod states;
mod tomcat;
mod upgrade;
mod user_manager;

pub use machine::Layout;

/// Run one scenario as one test per box kind given (`test_name => Layout`), in parallel.
macro_rules! in_layouts {
    ($name:ident, $scenario:ident, $($test:ident => $layout:ident),+) => {
        mod $name {
            $(
                #[test]
                fn $test() {
                    super::$scenario($crate::booted::Layout::$layout);
                }
            )+
        }
    };
}
pub(crate) use in_layouts;

/// Run one scenario in both cgroup layouts of this machine's image.
macro_rules! in_both_layouts {
    ($name:ident, $scenario:ident) => {
        $crate::booted::in_layouts!($name, $scenario, hybrid => Hybrid, unified => Unified);
    };
}
pub(crate) use in_both_layouts;

/// Run one scenario of the package path in both layouts of this machine's image and on
/// Debian 13.
macro_rules! on_every_image {
    ($name:ident, $scenario:ident) => {
        $crate::booted::in_layouts!(
            $name,
            $scenario,
            hybrid => Hybrid,
            unified => Unified,
            debian13 => Debian13
        );
    };
}
pub(crate) use on_every_image;
