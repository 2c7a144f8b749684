//! The System Description File (SDF): seL4 Microkit's XML format plus axolotl's resilience
//! extensions, parsed into a [`SystemDescription`] and validated against a [`Board`].
//!
//! Every problem is reported, each as a [`Diagnostic`] with a position and a stable rule id
//! (the rules are listed in `docs/sdf.md`). Warnings never make parsing fail.

pub mod console;
pub mod defaults;
mod diagnostic;
mod layout;
mod model;
mod parse;
mod validate;

use std::path::Path;

use axolotl_kernel_config::Board;

pub use diagnostic::{Diagnostic, Diagnostics, Severity, Span};
pub use layout::{
    MAX_DOMAIN_SCHEDULE, MAX_DOMAINS, MAX_ID, MAX_PDS, MAX_PRIORITY, MAX_STACK_SIZE,
    MIN_STACK_SIZE, PAGE_SIZE_LARGE, PAGE_SIZE_SMALL, PD_STACK_TOP, USER_ADDR_LIMIT,
};
pub use model::*;
pub use validate::check_image_overlaps;

/// A system that validated, with the warnings found on the way.
#[derive(Clone, Debug)]
pub struct Checked {
    pub system: SystemDescription,
    pub warnings: Diagnostics,
    /// The board the system was checked against, its kernel console where the system leaves
    /// it ([`console::console_board`]): what the kernel is built for and QEMU is wired to.
    pub board: Board,
}

/// Parses and validates `text`; `file_name` names the source in diagnostics and the model.
pub fn parse(file_name: &str, text: &str, board: &Board) -> Result<SystemDescription, Diagnostics> {
    check(file_name, text, board).map(|c| c.system)
}

/// Like [`parse`], but keeps the warnings of a valid system. On failure the diagnostics hold
/// the warnings too.
pub fn check(file_name: &str, text: &str, board: &Board) -> Result<Checked, Diagnostics> {
    let out = parse::parse(file_name, text, board.timer_hz);
    let mut diags = out.diags;
    let mut board = *board;
    if let Some(sd) = &out.system {
        board = console::console_board(sd, &board);
        diags.extend(validate::validate(sd, &out.taint, &board));
    }
    let diags = Diagnostics::from(diags);
    match out.system {
        Some(system) if !diags.has_errors() => Ok(Checked {
            system,
            warnings: diags,
            board,
        }),
        _ => Err(diags),
    }
}

/// Reads and checks an SDF file; diagnostics name the file as `path` displays.
pub fn check_file(path: &Path, board: &Board) -> Result<Checked, Diagnostics> {
    let name = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => check(&name, &text, board),
        Err(e) => {
            let d = Diagnostic::error(
                &name,
                Span::new(0, 0),
                "read-file",
                format!("cannot read: {e}"),
            );
            Err(Diagnostics::from(vec![d]))
        }
    }
}
