//! Links at the user layout and embeds the system pack `cargo xtask build --system` names in
//! `AXOLOTL_SYSTEM_PACK` (an empty pack without it: the root task then only greets).

fn main() {
    axolotl_user_layout::link();
    println!("cargo:rerun-if-env-changed=AXOLOTL_SYSTEM_PACK");
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("system.pack");
    match std::env::var("AXOLOTL_SYSTEM_PACK") {
        Ok(path) if !path.is_empty() => {
            println!("cargo:rerun-if-changed={path}");
            std::fs::copy(&path, &out).unwrap_or_else(|e| panic!("copying {path}: {e}"));
        }
        _ => std::fs::write(&out, b"").unwrap(),
    }
    println!("cargo:rustc-env=AXOLOTL_SYSTEM_PACK_FILE={}", out.display());
}
