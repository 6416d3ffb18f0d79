//! The benchmark's floor: start a process, connect to the bus, make one call to the manager
//! (`GetUnit`), exit. `ImageServing status` cannot be faster than this.

fn main() {
    let address = std::env::var("DBUS_SESSION_BUS_ADDRESS").unwrap_or_default();
    let code = match zbus::blocking::connection::Builder::address(address.as_str())
        .and_then(|b| b.build())
        .and_then(|conn| {
            conn.call_method(
                Some("org.freedesktop.systemd1"),
                "/org/freedesktop/systemd1",
                Some("org.freedesktop.systemd1.Manager"),
                "GetUnit",
                &("imageserving.target",),
            )
        }) {
        Ok(_) => 0,
        Err(e) => {
            eprintln!("dbus_floor: {e}");
            1
        }
    };
    std::process::exit(code);
}
