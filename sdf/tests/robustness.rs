//! `parse` must never panic, whatever it is fed, and every diagnostic must point into the text.

use axolotl_kernel_config::{BOARDS, Board};
use axolotl_sdf::*;
use proptest::prelude::*;

const BOARD: Board = BOARDS[0];

const SEEDS: &[&str] = &[
    include_str!("good/microkit.system"),
    include_str!("good/resilience.system"),
    include_str!("bad/several.system"),
    include_str!("../../systems/hello.system"),
];

/// Fragments that tend to reach deeper code paths than random bytes do.
const TOKENS: &[&str] = &[
    "<",
    ">",
    "/>",
    "\"",
    "'",
    "=",
    " ",
    "\n",
    "</system>",
    "<system>",
    "<protection_domain name=\"z\">",
    "</protection_domain>",
    "<program_image path=\"p\"/>",
    "<map mr=\"r\" vaddr=\"0x1000\"/>",
    "<memory_region name=\"r\" size=\"0x1000\" phys_addr=\"0x9000000\"/>",
    "<channel>",
    "</channel>",
    "<end pd=\"z\" id=\"0\" pp=\"true\"/>",
    "<irq irq=\"33\" id=\"1\"/>",
    "<virtual_machine name=\"v\">",
    "<vcpu id=\"0\"/>",
    "</virtual_machine>",
    " id=\"61\"",
    " priority=\"254\"",
    " depends_on=\"z,z\"",
    " restart=\"always\"",
    " restart_limit=\"0\"",
    " heartbeat_ms=\"1\"",
    " passive=\"true\"",
    "0x",
    "_",
    "18446744073709551615",
    "18446744073709551616",
    "0xffff_ffff_ffff_f000",
    "-1",
    "&amp;",
    "&#x0;",
    "<!--",
    "-->",
    "<![CDATA[",
    "]]>",
    "<?xml version=\"1.0\"?>",
    "é",
    "\u{feff}",
];

#[derive(Clone, Debug)]
enum Edit {
    Delete(usize, usize),
    Insert(usize, usize),
    Replace(usize, char),
    Duplicate(usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 1..40usize).prop_map(|(at, n)| Edit::Delete(at, n)),
        (any::<usize>(), 0..TOKENS.len()).prop_map(|(at, t)| Edit::Insert(at, t)),
        (any::<usize>(), any::<char>()).prop_map(|(at, c)| Edit::Replace(at, c)),
        (any::<usize>(), 1..200usize).prop_map(|(at, n)| Edit::Duplicate(at, n)),
    ]
}

fn apply(seed: &str, edits: &[Edit]) -> String {
    let mut chars: Vec<char> = seed.chars().collect();
    for e in edits {
        let len = chars.len();
        let at = |i: usize| if len == 0 { 0 } else { i % (len + 1) };
        match *e {
            Edit::Delete(i, n) => {
                let s = at(i);
                chars.drain(s..(s + n).min(len));
            }
            Edit::Insert(i, t) => {
                let s = at(i);
                chars.splice(s..s, TOKENS[t].chars());
            }
            Edit::Replace(i, c) if len > 0 => chars[i % len] = c,
            Edit::Replace(..) => {}
            Edit::Duplicate(i, n) => {
                let s = at(i);
                let piece: Vec<char> = chars[s..(s + n).min(len)].to_vec();
                chars.splice(s..s, piece);
            }
        }
    }
    chars.into_iter().collect()
}

/// Runs the checker and asserts the properties every outcome must have.
fn check_invariants(text: &str) {
    let lines = text.split('\n').count() as u32;
    match check("fuzz.system", text, &BOARD) {
        Ok(c) => {
            assert!(c.warnings.iter().all(|d| d.severity == Severity::Warning));
            assert!(c.system.all_pds().len() <= MAX_PDS);
            for d in &c.warnings {
                assert!(d.line >= 1 && d.line <= lines && d.col >= 1, "{d}");
            }
        }
        Err(diags) => {
            assert!(diags.has_errors(), "failure without an error: {diags}");
            for d in &diags {
                assert!(d.line >= 1 && d.line <= lines && d.col >= 1, "{d}");
                let shown = d.to_string();
                assert!(shown.starts_with(&format!("fuzz.system:{}:{}: ", d.line, d.col)));
                assert!(shown.ends_with(&format!(" [{}]", d.rule)));
            }
        }
    }
}

/// 512 cases by default; `PROPTEST_CASES` raises it for a longer local run.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_strings_never_panic(text in any::<String>()) {
        check_invariants(&text);
    }

    #[test]
    fn xml_like_strings_never_panic(text in "[<>/=\"' a-z_0-9x\n!?-]{0,300}") {
        check_invariants(&text);
    }

    #[test]
    fn mutated_valid_files_never_panic(seed in 0..SEEDS.len(), edits in prop::collection::vec(edit(), 1..8)) {
        check_invariants(&apply(SEEDS[seed], &edits));
    }
}

#[test]
fn seeds_are_what_the_mutations_start_from() {
    // The mutation test is only as good as its seeds: the valid ones must be valid.
    for seed in [SEEDS[0], SEEDS[1], SEEDS[3]] {
        check("seed", seed, &BOARD).unwrap();
    }
    assert!(check("seed", SEEDS[2], &BOARD).is_err());
}

#[test]
fn deep_nesting_does_not_overflow_the_stack() {
    let n = 20_000;
    let pd = "<protection_domain name=\"p\" id=\"1\"><program_image path=\"p\"/>";
    let text = format!(
        "<system>{}{}</system>",
        pd.repeat(n),
        "</protection_domain>".repeat(n)
    );
    let diags = check("deep.system", &text, &BOARD).unwrap_err();
    assert!(diags.iter().any(|d| d.rule == "pd-count"), "{diags}");

    let text = format!("<system>{}{}</system>", "<x>".repeat(n), "</x>".repeat(n));
    let diags = check("deep.system", &text, &BOARD).unwrap_err();
    let rules: Vec<_> = diags.iter().map(|d| d.rule).collect();
    assert_eq!(rules, ["no-pds", "unknown-element"], "{diags}");
}
