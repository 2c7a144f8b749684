//! Why a plan cannot be built.

use std::string::String;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// A map over the program image, or the image reaching into the stack.
    #[error("{0}")]
    Sdf(axolotl_sdf::Diagnostic),
    #[error("{path}: {msg}")]
    Elf { path: String, msg: String },
    #[error("PD `{pd}`: no program image `{path}` was given to the builder")]
    MissingImage { pd: String, path: String },
    #[error("PD `{pd}`: setvar symbol `{symbol}` is not in its program image")]
    MissingSymbol { pd: String, symbol: String },
    #[error("PD `{pd}`: setvar symbol `{symbol}` is {size} bytes, not 8")]
    SymbolSize {
        pd: String,
        symbol: String,
        size: u64,
    },
    #[error("PD `{pd}`: slot {slot} assigned twice ({what})")]
    SlotCollision { pd: String, slot: u64, what: String },
    #[error("PD `{pd}`: badge {badge:#x} used twice ({what})")]
    BadgeCollision {
        pd: String,
        badge: u64,
        what: String,
    },
    #[error("PD `{pd}`: IPC buffer at {vaddr:#x} overlaps a map or its program image")]
    IpcBufferOverlap { pd: String, vaddr: u64 },
    #[error(
        "PD `{pd}`: the generation table at {vaddr:#x} (mapped into every PD) overlaps a map, its program image or its stack"
    )]
    GenerationTableOverlap { pd: String, vaddr: u64 },
    #[error("`{name}` names no {what}")]
    Unknown { what: &'static str, name: String },
    #[error("too many {what}: the plan holds at most {limit}")]
    Capacity { what: &'static str, limit: usize },
}
