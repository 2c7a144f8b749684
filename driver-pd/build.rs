fn main() {
    // PDs use the user layout the root task has (docs/abi.md).
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    let ld = format!("{dir}/../root-task/link.ld");
    println!("cargo:rerun-if-changed={ld}");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        println!("cargo:rustc-link-arg-bins=-T{ld}");
    }
}
