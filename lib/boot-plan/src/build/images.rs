//! Pass: the program images and their loadable segments, in the order given to the builder.

use crate::model as m;

use super::{Cx, push, span, string};

pub(super) fn images(cx: &mut Cx) {
    for elf in cx.images {
        let start = cx.plan.segments.len() as u16;
        for s in &elf.segments {
            let seg = m::Segment {
                vaddr: s.vaddr,
                memsz: s.memsz,
                filesz: s.filesz,
                offset: s.offset,
                perms: s.perms,
            };
            push(&mut cx.plan.segments, seg, "segments", &mut cx.errs);
        }
        let image = m::Image {
            name: string(&elf.path, "path bytes", &mut cx.errs),
            entry: elf.entry,
            segments: span(start, cx.plan.segments.len() as u16),
        };
        push(&mut cx.plan.images, image, "program images", &mut cx.errs);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::BuildError;

    #[test]
    fn each_image_spans_its_segments() {
        let sd = sd(&one_pd());
        let elfs = [image("a.elf"), image("b.elf")];
        let mut cx = cx(&sd, &elfs);
        images(&mut cx);
        assert_eq!(cx.errs, []);
        assert_eq!(cx.plan.images.len(), 2);
        assert_eq!(cx.plan.images[1].name, "b.elf");
        assert_eq!(cx.plan.images[1].segments, m::Span { start: 2, len: 2 });
        assert_eq!(cx.plan.segments[3].vaddr, 0x30_0000);
    }

    #[test]
    fn too_many_segments_and_a_long_path_are_refused() {
        let sd = sd(&one_pd());
        let mut big = image(&"p".repeat(m::MAX_PATH + 1));
        big.segments = std::vec![big.segments[0]; m::MAX_SEGMENTS + 1];
        let elfs = [big];
        let mut cx = cx(&sd, &elfs);
        images(&mut cx);
        assert_eq!(
            cx.errs,
            [
                BuildError::Capacity {
                    what: "segments",
                    limit: m::MAX_SEGMENTS
                },
                BuildError::Capacity {
                    what: "path bytes",
                    limit: m::MAX_PATH
                }
            ]
        );
    }
}
