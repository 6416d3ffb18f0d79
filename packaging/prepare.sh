# Sourced by build-deb.sh and build-rpm.sh: from the top of the tree, build the release
# binaries and the generated assets (man pages, completions, the Tomcat listener), and set
# $version.
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
sh packaging/build.sh
cargo run --release --locked --quiet --example gen_assets -- target/assets
sh packaging/tomcat/build.sh
