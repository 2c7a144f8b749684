//! Rules relating several elements. Each reads the model only; values whose attribute could
//! not be parsed are skipped (see `Taint`) so one typo does not cascade into more errors.

mod board;
mod channels;
mod domains;
mod ids;
mod image;
mod maps;
mod names;
mod regions;
mod resilience;

use axolotl_kernel_config::Board;

use crate::parse::Taint;
use crate::{Diagnostic, Span, SystemDescription};
pub use image::check_image_overlaps;

pub(crate) struct Cx<'a> {
    pub sd: &'a SystemDescription,
    pub taint: &'a Taint,
    pub board: &'a Board,
    pub out: Vec<Diagnostic>,
}

impl Cx<'_> {
    pub(crate) fn error(&mut self, at: Span, rule: &'static str, msg: impl Into<String>) {
        self.out
            .push(Diagnostic::error(&self.sd.file, at, rule, msg));
    }

    pub(crate) fn warning(&mut self, at: Span, rule: &'static str, msg: impl Into<String>) {
        self.out
            .push(Diagnostic::warning(&self.sd.file, at, rule, msg));
    }
}

pub(crate) fn validate(sd: &SystemDescription, taint: &Taint, board: &Board) -> Vec<Diagnostic> {
    let mut cx = Cx {
        sd,
        taint,
        board,
        out: Vec::new(),
    };
    names::check(&mut cx);
    ids::check(&mut cx);
    channels::check(&mut cx);
    regions::check(&mut cx);
    maps::check(&mut cx);
    resilience::check(&mut cx);
    domains::check(&mut cx);
    board::check(&mut cx);
    cx.out
}

/// Half-open `[start, start + len)`, `None` if it wraps past 2^64.
pub(crate) fn range(start: u64, len: u64) -> Option<(u64, u64)> {
    Some((start, start.checked_add(len)?))
}

/// Each range that overlaps an earlier-starting one, paired with the earlier range that reaches
/// furthest: one report per offending range from a sort-and-sweep, so large inputs stay cheap.
pub(crate) fn overlaps<T: Copy>(mut items: Vec<((u64, u64), T)>) -> Vec<(T, T)> {
    items.sort_by_key(|&((s, e), _)| (s, e));
    let mut found = Vec::new();
    let mut furthest: Option<((u64, u64), T)> = None;
    for &(r, item) in &items {
        if r.0 == r.1 {
            continue;
        }
        if let Some((f, other)) = furthest
            && r.0 < f.1
        {
            found.push((item, other));
        }
        if furthest.is_none_or(|(f, _)| r.1 > f.1) {
            furthest = Some((r, item));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::overlaps;

    #[test]
    fn overlap_sweep_finds_each_overlap_once() {
        let got = overlaps(vec![
            ((0, 10), 'a'),
            ((10, 20), 'b'),
            ((5, 6), 'c'),
            ((19, 30), 'd'),
        ]);
        assert_eq!(got, vec![('c', 'a'), ('d', 'b')]);
        assert!(overlaps(vec![((0, 0x1000), 1), ((0x1000, 0x2000), 2)]).is_empty());
        // Empty ranges overlap nothing.
        assert!(overlaps(vec![((5, 5), 1), ((0, 10), 2)]).is_empty());
    }
}
