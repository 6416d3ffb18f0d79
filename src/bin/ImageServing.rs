//! `ImageServing`: the operator's command. The command line is parsed by
//! [`imageserving::cli`] and run by [`imageserving::commands`].

fn main() {
    std::process::exit(imageserving::cli::main());
}
