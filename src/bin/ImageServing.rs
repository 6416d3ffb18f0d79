//! `ImageServing`: the operator's command. All the work is in [`imageserving::cli`].

fn main() {
    std::process::exit(imageserving::cli::run());
}
