//! Restoring a PD from its pristine image: the memory operations, in order, and the CSpace
//! slots to rebuild. The monitor executes them on the stopped PD's frames; nothing here
//! touches memory.
//!
//! Order: per segment, copy `[offset, offset + filesz)` of the image to `vaddr` and zero
//! `[vaddr + filesz, vaddr + memsz)`; zero the stack `[STACK_TOP - stack_size, STACK_TOP)`;
//! zero the IPC buffer frame unless it lies inside a segment; then write each setvar (after
//! the copies, which would overwrite it). Memory regions (`map`s) are not touched: they are
//! shared with peers or devices and outlive the PD.

use core::fmt;

use axolotl_abi::bootinfo::STACK_TOP;
use axolotl_boot_plan::model::{BootPlan, CapSlot, Image, Pd, Segment, Setvar, SetvarValue};

/// Size of the IPC buffer frame.
const IPC_BUFFER_BYTES: u64 = 4096;

/// One memory operation of a restore, on the PD's virtual addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemOp {
    /// Copy `len` bytes from `image_offset` in the program image to `vaddr`.
    Copy {
        image_offset: u64,
        vaddr: u64,
        len: u64,
    },
    /// Zero `[vaddr, vaddr + len)`.
    Zero { vaddr: u64, len: u64 },
    /// Write the 8-byte little-endian `value` at `vaddr` (a setvar).
    Write64 { vaddr: u64, value: u64 },
}

/// Why a PD cannot be restored from the plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestoreError {
    NoSuchPd {
        pd: u8,
    },
    NoSuchImage {
        image: u8,
    },
    /// Segment `segment` (index into the image's segments) reads past the image's end, has
    /// `filesz > memsz`, or wraps the address space.
    BadSegment {
        segment: usize,
    },
    /// `stack_size` is larger than `STACK_TOP`.
    BadStack {
        stack_size: u64,
    },
    /// The resolver has no physical address for region `region` (a `RegionPaddr` setvar).
    Unresolved {
        region: u16,
    },
}

impl fmt::Display for RestoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            RestoreError::NoSuchPd { pd } => write!(f, "no pd {pd} in the plan"),
            RestoreError::NoSuchImage { image } => write!(f, "no image {image} in the plan"),
            RestoreError::BadSegment { segment } => {
                write!(
                    f,
                    "segment {segment} does not fit the image or the address space"
                )
            }
            RestoreError::BadStack { stack_size } => {
                write!(f, "stack size {stack_size:#x} above the stack top")
            }
            RestoreError::Unresolved { region } => {
                write!(f, "no physical address for region {region}")
            }
        }
    }
}

/// A checked restore of one PD. `R` resolves `SetvarValue::RegionPaddr(region)` to the
/// region's physical address.
pub struct RestorePlan<'a, R> {
    plan: &'a BootPlan,
    pd: &'a Pd,
    image: &'a Image,
    resolve: R,
    ipc_buffer_separate: bool,
}

/// Checks that PD `pd` of `plan` can be restored from an image of `image_len` bytes (every
/// segment inside it, the stack below `STACK_TOP`, every setvar resolvable), before
/// anything is written.
pub fn restore_plan<R: FnMut(u16) -> Option<u64>>(
    plan: &BootPlan,
    pd: u8,
    image_len: u64,
    mut resolve: R,
) -> Result<RestorePlan<'_, R>, RestoreError> {
    let p = plan
        .pds
        .get(pd as usize)
        .ok_or(RestoreError::NoSuchPd { pd })?;
    let image = plan
        .images
        .get(p.image as usize)
        .ok_or(RestoreError::NoSuchImage { image: p.image })?;
    for (i, s) in plan.segments_of(image).iter().enumerate() {
        let fits = s.filesz <= s.memsz
            && s.offset
                .checked_add(s.filesz)
                .is_some_and(|e| e <= image_len)
            && s.vaddr.checked_add(s.memsz).is_some();
        if !fits {
            return Err(RestoreError::BadSegment { segment: i });
        }
    }
    if p.stack_size > STACK_TOP {
        return Err(RestoreError::BadStack {
            stack_size: p.stack_size,
        });
    }
    for sv in plan.setvars_of(p) {
        setvar_value(sv, &mut resolve)?;
    }
    let ipc_buffer_separate = !plan
        .segments_of(image)
        .iter()
        .any(|s| s.vaddr <= p.ipc_buffer && p.ipc_buffer - s.vaddr < s.memsz);
    Ok(RestorePlan {
        plan,
        pd: p,
        image,
        resolve,
        ipc_buffer_separate,
    })
}

fn setvar_value(
    sv: &Setvar,
    resolve: &mut impl FnMut(u16) -> Option<u64>,
) -> Result<u64, RestoreError> {
    match sv.value {
        SetvarValue::Value(v) => Ok(v),
        SetvarValue::RegionPaddr(region) => {
            resolve(region).ok_or(RestoreError::Unresolved { region })
        }
    }
}

impl<'a, R: FnMut(u16) -> Option<u64>> RestorePlan<'a, R> {
    /// The memory operations, in order. Items are `Err` only if the resolver stopped
    /// resolving a region it resolved when the plan was checked.
    pub fn ops(&mut self) -> Ops<'_, 'a, R> {
        Ops {
            rp: self,
            stage: Stage::Segment {
                index: 0,
                zero: false,
            },
        }
    }

    /// The CSpace entries to rebuild (same slots and badges as at boot).
    pub fn caps(&self) -> &'a [CapSlot] {
        self.plan.caps_of(self.pd)
    }

    pub fn pd(&self) -> &'a Pd {
        self.pd
    }

    /// Where the restarted PD starts.
    pub fn entry(&self) -> u64 {
        self.pd.entry
    }

    /// Its initial stack pointer.
    pub fn stack_top(&self) -> u64 {
        STACK_TOP
    }

    fn segments(&self) -> &'a [Segment] {
        self.plan.segments_of(self.image)
    }

    /// Bytes copied from the image.
    pub fn copy_bytes(&self) -> u64 {
        self.segments().iter().map(|s| s.filesz).sum()
    }

    /// Bytes zeroed: segment tails, the stack and the IPC buffer frame if separate.
    pub fn zero_bytes(&self) -> u64 {
        let tails: u64 = self.segments().iter().map(|s| s.memsz - s.filesz).sum();
        let ipc = if self.ipc_buffer_separate {
            IPC_BUFFER_BYTES
        } else {
            0
        };
        tails + self.pd.stack_size + ipc
    }

    /// Number of setvars written.
    pub fn setvar_count(&self) -> usize {
        self.plan.setvars_of(self.pd).len()
    }
}

#[derive(Clone, Copy)]
enum Stage {
    Segment { index: usize, zero: bool },
    Stack,
    IpcBuffer,
    Setvar(usize),
    Done,
}

/// Iterator of [`RestorePlan::ops`].
pub struct Ops<'r, 'a, R> {
    rp: &'r mut RestorePlan<'a, R>,
    stage: Stage,
}

impl<R: FnMut(u16) -> Option<u64>> Iterator for Ops<'_, '_, R> {
    type Item = Result<MemOp, RestoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match self.stage {
                Stage::Segment { index, zero } => {
                    let Some(s) = self.rp.segments().get(index) else {
                        self.stage = Stage::Stack;
                        continue;
                    };
                    if !zero {
                        self.stage = Stage::Segment { index, zero: true };
                        if s.filesz != 0 {
                            return Some(Ok(MemOp::Copy {
                                image_offset: s.offset,
                                vaddr: s.vaddr,
                                len: s.filesz,
                            }));
                        }
                    } else {
                        self.stage = Stage::Segment {
                            index: index + 1,
                            zero: false,
                        };
                        if s.memsz > s.filesz {
                            return Some(Ok(MemOp::Zero {
                                vaddr: s.vaddr + s.filesz,
                                len: s.memsz - s.filesz,
                            }));
                        }
                    }
                }
                Stage::Stack => {
                    self.stage = Stage::IpcBuffer;
                    let size = self.rp.pd.stack_size;
                    if size != 0 {
                        return Some(Ok(MemOp::Zero {
                            vaddr: STACK_TOP - size,
                            len: size,
                        }));
                    }
                }
                Stage::IpcBuffer => {
                    self.stage = Stage::Setvar(0);
                    if self.rp.ipc_buffer_separate {
                        return Some(Ok(MemOp::Zero {
                            vaddr: self.rp.pd.ipc_buffer & !(IPC_BUFFER_BYTES - 1),
                            len: IPC_BUFFER_BYTES,
                        }));
                    }
                }
                Stage::Setvar(i) => {
                    let Some(sv) = self.rp.plan.setvars_of(self.rp.pd).get(i) else {
                        self.stage = Stage::Done;
                        continue;
                    };
                    self.stage = Stage::Setvar(i + 1);
                    return Some(setvar_value(sv, &mut self.rp.resolve).map(|value| {
                        MemOp::Write64 {
                            vaddr: sv.vaddr,
                            value,
                        }
                    }));
                }
                Stage::Done => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use axolotl_abi::bootinfo::IPC_BUFFER_VADDR;
    use axolotl_boot_plan::model::{Cap, Span};

    use super::*;

    fn seg(vaddr: u64, memsz: u64, filesz: u64, offset: u64) -> Segment {
        Segment {
            vaddr,
            memsz,
            filesz,
            offset,
            ..Default::default()
        }
    }

    /// PD 1 runs image 1 (two segments: text, data+bss), with two setvars and two caps.
    fn plan() -> BootPlan {
        let mut plan = BootPlan::default();
        plan.pds.push(Pd::default()).unwrap();
        plan.images.push(Image::default()).unwrap();
        plan.segments.push(seg(0x1000, 0x100, 0x100, 0)).unwrap();
        plan.segments
            .extend_from_slice(&[
                seg(0x20_0000, 0x2000, 0x2000, 0x1000),
                seg(0x20_3000, 0x3000, 0x800, 0x3000),
            ])
            .unwrap();
        plan.images
            .push(Image {
                segments: Span { start: 1, len: 2 },
                ..Default::default()
            })
            .unwrap();
        plan.setvars
            .extend_from_slice(&[
                Setvar {
                    vaddr: 0x20_3008,
                    value: SetvarValue::Value(0x5000_0000),
                },
                Setvar {
                    vaddr: 0x20_3010,
                    value: SetvarValue::RegionPaddr(7),
                },
            ])
            .unwrap();
        plan.caps
            .extend_from_slice(&[
                CapSlot {
                    slot: 1,
                    cap: Cap::InputEndpoint,
                },
                CapSlot {
                    slot: 4,
                    cap: Cap::Reply,
                },
            ])
            .unwrap();
        plan.pds
            .push(Pd {
                image: 1,
                entry: 0x20_0000,
                stack_size: 0x2000,
                ipc_buffer: IPC_BUFFER_VADDR,
                setvars: Span { start: 0, len: 2 },
                caps: Span { start: 0, len: 2 },
                ..Default::default()
            })
            .unwrap();
        plan
    }

    fn resolve(r: u16) -> Option<u64> {
        (r == 7).then_some(0x4800_0000)
    }

    #[test]
    fn ops_in_order() {
        let plan = plan();
        let mut rp = restore_plan(&plan, 1, 0x3800, resolve).unwrap();
        let ops: Vec<MemOp> = rp.ops().map(Result::unwrap).collect();
        assert_eq!(
            ops,
            [
                MemOp::Copy {
                    image_offset: 0x1000,
                    vaddr: 0x20_0000,
                    len: 0x2000
                },
                MemOp::Copy {
                    image_offset: 0x3000,
                    vaddr: 0x20_3000,
                    len: 0x800
                },
                MemOp::Zero {
                    vaddr: 0x20_3800,
                    len: 0x2800
                },
                MemOp::Zero {
                    vaddr: STACK_TOP - 0x2000,
                    len: 0x2000
                },
                MemOp::Zero {
                    vaddr: IPC_BUFFER_VADDR,
                    len: 0x1000
                },
                MemOp::Write64 {
                    vaddr: 0x20_3008,
                    value: 0x5000_0000
                },
                MemOp::Write64 {
                    vaddr: 0x20_3010,
                    value: 0x4800_0000
                },
            ]
        );
        assert_eq!(rp.copy_bytes(), 0x2800);
        assert_eq!(rp.zero_bytes(), 0x2800 + 0x2000 + 0x1000);
        assert_eq!(rp.setvar_count(), 2);
        assert_eq!(rp.caps().len(), 2);
        assert_eq!(rp.caps()[0].slot, 1);
        assert_eq!(rp.entry(), 0x20_0000);
        assert_eq!(rp.stack_top(), STACK_TOP);
        // ops() can run again (a retried restore).
        assert_eq!(rp.ops().count(), 7);
    }

    #[test]
    fn totals_match_the_ops() {
        let plan = plan();
        let mut rp = restore_plan(&plan, 1, 0x3800, resolve).unwrap();
        let (mut copied, mut zeroed) = (0, 0);
        for op in rp.ops() {
            match op.unwrap() {
                MemOp::Copy { len, .. } => copied += len,
                MemOp::Zero { len, .. } => zeroed += len,
                MemOp::Write64 { .. } => {}
            }
        }
        assert_eq!((copied, zeroed), (rp.copy_bytes(), rp.zero_bytes()));
    }

    #[test]
    fn ipc_buffer_inside_the_image_is_not_zeroed_separately() {
        let mut plan = plan();
        plan.pds[1].ipc_buffer = 0x20_4000; // in the bss
        let mut rp = restore_plan(&plan, 1, 0x3800, resolve).unwrap();
        assert!(!rp.ops().any(|op| op
            == Ok(MemOp::Zero {
                vaddr: 0x20_4000,
                len: 0x1000
            })));
        assert_eq!(rp.zero_bytes(), 0x2800 + 0x2000);
    }

    #[test]
    fn empty_segments_and_stack_yield_nothing() {
        let mut plan = plan();
        plan.segments[2].filesz = 0;
        plan.segments[2].memsz = 0;
        plan.pds[1].stack_size = 0;
        plan.pds[1].setvars = Span::default();
        let mut rp = restore_plan(&plan, 1, 0x3800, resolve).unwrap();
        assert_eq!(rp.ops().count(), 2); // text copy, IPC buffer
    }

    #[test]
    fn checked_before_anything_is_written() {
        let plan0 = plan();
        let err = |plan: &BootPlan, pd, len| restore_plan(plan, pd, len, resolve).err();
        assert_eq!(
            err(&plan0, 9, 0x3800),
            Some(RestoreError::NoSuchPd { pd: 9 })
        );
        // The image is too short for the data segment.
        assert_eq!(
            err(&plan0, 1, 0x37ff),
            Some(RestoreError::BadSegment { segment: 1 })
        );
        assert_eq!(
            restore_plan(&plan0, 1, 0x3800, |_| None).err(),
            Some(RestoreError::Unresolved { region: 7 })
        );
        let mut p = plan();
        p.pds[1].image = 5;
        assert_eq!(
            err(&p, 1, 0x3800),
            Some(RestoreError::NoSuchImage { image: 5 })
        );
        let mut p = plan();
        p.segments[1].filesz = 0x2001;
        assert_eq!(
            err(&p, 1, 0x10_000),
            Some(RestoreError::BadSegment { segment: 0 })
        );
        let mut p = plan();
        p.segments[2].vaddr = u64::MAX - 1;
        assert_eq!(
            err(&p, 1, 0x3800),
            Some(RestoreError::BadSegment { segment: 1 })
        );
        let mut p = plan();
        p.pds[1].stack_size = STACK_TOP + 1;
        assert!(matches!(
            err(&p, 1, 0x3800),
            Some(RestoreError::BadStack { .. })
        ));
    }

    #[test]
    fn a_resolver_that_changes_its_mind_is_an_error_not_a_zero() {
        let plan = plan();
        let mut calls = 0;
        let mut rp = restore_plan(&plan, 1, 0x3800, |r| {
            calls += 1;
            (calls == 1 && r == 7).then_some(1)
        })
        .unwrap();
        assert_eq!(
            rp.ops().last(),
            Some(Err(RestoreError::Unresolved { region: 7 }))
        );
    }
}
