//! Writes the man pages (`ImageServing.1` and one per subcommand, `ImageServing-start.1`, ...)
//! and bash, zsh and fish completions, generated from the CLI definition, into the directory
//! given (used by the packages).
//!
//!     cargo run --release --example gen_assets -- target/assets

use std::path::PathBuf;

use clap_complete::Shell;

fn main() -> std::io::Result<()> {
    let out = PathBuf::from(
        std::env::args_os()
            .nth(1)
            .unwrap_or_else(|| "target/assets".into()),
    );
    std::fs::create_dir_all(&out)?;
    let mut cmd = imageserving::cli::command();
    clap_mangen::generate_to(cmd.clone(), &out)?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut cmd, "ImageServing", &out)?;
    }
    Ok(())
}
