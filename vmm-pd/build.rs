//! Links at the user layout and embeds the guest (libvmm's way: the VMM's image carries the
//! kernel and initramfs it loads). `cargo xtask` passes the cached Debian artifacts in
//! `AXOLOTL_GUEST_KERNEL` / `AXOLOTL_GUEST_INITRD` and the board's GIC in `AXOLOTL_BOARD_GIC`;
//! without them the VMM is built empty and says so when started.

use std::path::PathBuf;

fn main() {
    axolotl_user_layout::link();
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    for (var, file) in [
        ("AXOLOTL_GUEST_KERNEL", "kernel.bin"),
        ("AXOLOTL_GUEST_INITRD", "initrd.bin"),
    ] {
        println!("cargo:rerun-if-env-changed={var}");
        let path = match std::env::var(var) {
            Ok(p) if !p.is_empty() => {
                println!("cargo:rerun-if-changed={p}");
                PathBuf::from(p)
            }
            _ => {
                let empty = out.join(file);
                std::fs::write(&empty, b"").unwrap();
                empty
            }
        };
        println!("cargo:rustc-env={var}_FILE={}", path.display());
    }
    println!("cargo:rerun-if-env-changed=AXOLOTL_BOARD_GIC");
    println!("cargo::rustc-check-cfg=cfg(guest_gic_v2)");
    if std::env::var("AXOLOTL_BOARD_GIC").is_ok_and(|v| v == "2") {
        println!("cargo:rustc-cfg=guest_gic_v2");
    }
}
