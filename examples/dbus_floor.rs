//! The benchmark's floor: start a process, connect to the user bus as `ImageServing` does
//! ([`Manager::connect`]), make one call to the manager (`LoadUnit`), exit. `ImageServing
//! status` cannot be faster than this. `scripts/bench.sh` links it as `ImageServing` is
//! linked (statically).

use imageserving::systemd::{Manager, Scope};

fn main() {
    let code = match Manager::connect(Scope::User).and_then(|m| m.load_unit("imageserving.target"))
    {
        Ok(_) => 0,
        Err(e) => {
            eprintln!("dbus_floor: {e}");
            1
        }
    };
    std::process::exit(code);
}
