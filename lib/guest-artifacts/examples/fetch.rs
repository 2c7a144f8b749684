//! `cargo run -p axolotl-guest-artifacts --example fetch [CACHE_DIR]`: fetch and
//! build the guest artifacts, the I/O guest's included, print where they are.

fn main() {
    let dir = std::env::args_os()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(axolotl_guest_artifacts::default_cache_dir);
    let log = &mut |m: &str| eprintln!("guest-artifacts: {m}");
    let tools = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/guest-tools");
    let r = axolotl_guest_artifacts::ensure(&dir, log)
        .and_then(|a| Ok((axolotl_guest_artifacts::ensure_io(&a, &tools, log)?, a)));
    match r {
        Ok((io, a)) => println!("{a:#?}\n{io:#?}"),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
