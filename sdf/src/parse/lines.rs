//! Byte offset → line:col, computed once per file (roxmltree's own lookup rescans the text).

use crate::Span;

pub(crate) struct LineIndex<'t> {
    text: &'t str,
    starts: Vec<usize>,
}

impl<'t> LineIndex<'t> {
    pub(crate) fn new(text: &'t str) -> Self {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        LineIndex { text, starts }
    }

    /// Same convention as `roxmltree::Document::text_pos_at`: columns count characters.
    pub(crate) fn span(&self, pos: usize) -> Span {
        let mut pos = pos.min(self.text.len());
        while !self.text.is_char_boundary(pos) {
            pos -= 1;
        }
        let line = self.starts.partition_point(|&s| s <= pos);
        let start = self.starts[line - 1];
        let col = self.text[start..pos].chars().count() + 1;
        Span::new(saturate(line), saturate(col))
    }
}

fn saturate(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_roxmltree_positions() {
        let text = "<a>\n  <bé x='1'/>\n\n<c/></a>";
        let doc = roxmltree::Document::parse(text).unwrap();
        let idx = LineIndex::new(text);
        for pos in 0..=text.len() {
            if text.is_char_boundary(pos) {
                let want = doc.text_pos_at(pos);
                assert_eq!(
                    idx.span(pos),
                    Span::new(want.row, want.col),
                    "at byte {pos}"
                );
            }
        }
    }
}
