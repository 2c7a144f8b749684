//! Microkit's own SDF test expectations, file for file: the fixtures in `tests/microkit/` are
//! Microkit's (`tool/microkit/tests/sdf/`), and each is accepted or rejected as Microkit's
//! `tests/test.rs` says, here with the rule axolotl reports.

use std::path::Path;

use axolotl_kernel_config::BOARDS;

/// `(file, None)`: Microkit accepts it; `(file, Some(rule))`: it rejects it, and axolotl
/// reports `rule` (among others).
const EXPECTED: &[(&str, Option<&str>)] = &[
    ("mr_prefill_no_size_valid.system", None),
    ("mr_prefill_sized_valid.system", None),
    ("mr_prefill_page_sized_valid.system", None),
    ("mr_prefill_size_without_prefill.system", Some("prefill")),
    ("mr_prefill_empty_file.system", Some("prefill")),
    ("mr_prefill_does_not_exists.system", Some("prefill")),
    ("pd_duplicate_setvar.system", Some("setvar-unique")),
    ("pd_invalid_cpu.system", Some("cpu-range")),
    // Microkit refuses the duplicate slot; axolotl refuses cap sharing as such.
    ("pd_cap_mappings_overlapping.system", Some("cspace")),
    // The domain schedule, in both of Microkit's spellings (`domain_schedule` of `domain
    // name length`, and `domains` with `schedule_entry`).
    ("domain_no_pd_domain.system", Some("domains")),
    ("domain_no_schedule.system", Some("domains")),
    ("domain_assign_pd_to_invalid_domain.system", Some("domains")),
    ("domain_invalid_timeslice.system", Some("domains")),
    ("domain_exceed_max_domains.system", Some("domains")),
    ("domain_out_of_bounds_start_index.system", Some("domains")),
    ("domain_out_of_bounds_shift.system", Some("domains")),
    ("domain_duplicate_start_index.system", Some("domains")),
    ("domain_duplicate_index_shift.system", Some("domains")),
    ("domain_invalid_start_index.system", Some("bad-number")),
    ("domain_invalid_shift.system", Some("bad-number")),
    // Microkit refuses domains on a multicore kernel configuration, which this fixture is
    // tested with there; axolotl's kernel runs on one core, so the schedule is honoured.
    ("domain_smp.system", None),
    ("ch_ppcall_priority.system", Some("pp-priority")),
    ("pd_duplicate_child_id_vcpu.system", Some("child-id")),
    ("ch_bidirectional_ppc.xml", Some("pp-both")),
    ("mr_overlapping_phys_addr.xml", Some("phys-overlap")),
    ("pd_budget_gt_period.system", Some("budget-period")),
    ("irq_invalid_trigger.system", Some("bad-value")),
    (
        "mr_size_not_multiple_of_page_size.system",
        Some("region-size"),
    ),
    ("pd_child_missing_id.system", Some("missing-attribute")),
    ("pd_overlapping_maps.system", Some("map-overlap")),
    ("pd_write_only_mr.system", Some("map-perms")),
    ("ch_id_greater_than_62.xml", Some("id-range")),
    ("pd_duplicate_child_id.xml", Some("child-id")),
    ("mr_unsupported_page_size.xml", Some("page-size")),
    ("ch_not_enough_ends.xml", Some("channel-ends")),
];

#[test]
fn microkit_fixtures_are_accepted_and_rejected_as_microkit_does() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/microkit");
    for &(file, want) in EXPECTED {
        let got = axolotl_sdf::check_file(&dir.join(file), &BOARDS[0]);
        match (want, got) {
            (None, Ok(c)) => assert!(c.warnings.is_empty(), "{file}:\n{}", c.warnings),
            (None, Err(d)) => panic!("{file}: Microkit accepts it, axolotl refused:\n{d}"),
            (Some(rule), Ok(_)) => panic!("{file}: Microkit rejects it ({rule}), axolotl accepted"),
            (Some(rule), Err(d)) => {
                assert!(
                    d.errors().any(|e| e.rule == rule),
                    "{file}: want {rule}:\n{d}"
                )
            }
        }
    }
}

#[test]
fn every_microkit_fixture_has_an_expectation() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/microkit");
    let mut on_disk: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".system") || n.ends_with(".xml"))
        .collect();
    on_disk.sort();
    let mut listed: Vec<&str> = EXPECTED.iter().map(|(f, _)| *f).collect();
    listed.sort();
    assert_eq!(on_disk, listed);
}
