//! The Server Supervisor daemon. All the work is in [`imageserving::supervisor`].

fn main() {
    std::process::exit(imageserving::supervisor::run());
}
