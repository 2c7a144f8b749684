//! The layout of every user-level program: code at 2 MiB, each segment on its own pages, the
//! stack below 4 GiB (`link.ld`, docs/abi.md). A program's build script calls [`link`]:
//!
//! ```ignore
//! fn main() { axolotl_user_layout::link(); }
//! ```

/// Links the package's binaries with `link.ld` when building for the bare-metal target (the
/// host build of the same crate, for tests and clippy, links normally).
pub fn link() {
    let ld = concat!(env!("CARGO_MANIFEST_DIR"), "/link.ld");
    println!("cargo:rerun-if-changed={ld}");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        println!("cargo:rustc-link-arg-bins=-T{ld}");
    }
}
