//! docs/sdf.md lists every rule id, and the tests exercise every listed rule.

use std::collections::BTreeSet;
use std::path::Path;

use axolotl_kernel_config::BOARDS;

fn read(rel: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)).unwrap()
}

/// Rule ids: the first cell of each table row in the "Validation rules" section.
fn documented() -> BTreeSet<String> {
    let doc = read("../docs/sdf.md");
    let section = doc
        .split("## Validation rules")
        .nth(1)
        .expect("rules section");
    let section = section.split("\n## ").next().unwrap();
    section
        .lines()
        .filter_map(|l| l.strip_prefix("| `")?.split('`').next().map(str::to_owned))
        .collect()
}

#[test]
fn every_reported_rule_is_documented() {
    let documented = documented();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad");
    let mut seen = BTreeSet::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let diags = axolotl_sdf::check_file(&path, &BOARDS[0]).unwrap_err();
        seen.extend(diags.iter().map(|d| d.rule.to_owned()));
    }
    let undocumented: Vec<_> = seen.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "rules missing from docs/sdf.md: {undocumented:?}"
    );
    assert!(seen.len() >= 40, "only {} rules seen", seen.len());
}

#[test]
fn every_documented_rule_is_asserted_by_a_test() {
    // xtask's rules on the program images (`image-elf`) are asserted by its own unit tests.
    let tests = read("tests/bad.rs") + &read("tests/good.rs") + &read("../xtask/src/system.rs");
    let untested: Vec<_> = documented()
        .into_iter()
        .filter(|rule| !tests.contains(&format!("\"{rule}\"")))
        .collect();
    assert!(
        untested.is_empty(),
        "documented rules no test asserts: {untested:?}"
    );
}
