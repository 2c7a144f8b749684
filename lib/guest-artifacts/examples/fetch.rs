//! `cargo run -p axolotl-guest-artifacts --example fetch [CACHE_DIR]`: fetch and
//! build the guest artifacts, print where they are.

fn main() {
    let dir = std::env::args_os()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(axolotl_guest_artifacts::default_cache_dir);
    match axolotl_guest_artifacts::ensure(&dir, &mut |m| eprintln!("guest-artifacts: {m}")) {
        Ok(a) => println!("{a:#?}"),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
