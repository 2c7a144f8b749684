fn main() {
    // Same layout as the root task it replaces.
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    let ld = format!("{dir}/../../root-task/link.ld");
    println!("cargo:rerun-if-changed={ld}");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        println!("cargo:rustc-link-arg-bins=-T{ld}");
    }
}
