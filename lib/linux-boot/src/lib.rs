//! Booting an arm64 Linux `Image` (Documentation/arch/arm64/booting.rst): header
//! parsing and validation, guest RAM placement of kernel, DTB and initrd, and the
//! register state at entry.
#![no_std]

/// `"ARM\x64"` little-endian, at offset 0x38 of the header.
pub const ARM64_IMAGE_MAGIC: u32 = 0x644d_5241;
/// Size of the fixed header.
pub const HEADER_SIZE: usize = 64;
/// The kernel's base (Image address minus text_offset) must be 2 MiB aligned.
pub const KERNEL_BASE_ALIGN: u64 = 2 << 20;
/// Maximum DTB size, and the block size the kernel maps it with.
pub const DTB_MAX_SIZE: u64 = 2 << 20;
/// Required DTB alignment.
pub const DTB_ALIGN: u64 = 8;
/// PSTATE at entry: EL1h (M = 0b0101) with D, A, I and F masked.
pub const PSTATE_EL1H_DAIF_MASKED: u64 = axolotl_abi::syndrome::pstate::EL1H_DAIF_MASKED;

/// Kernel page size advertised in the header flags (bits 1-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageSize {
    Unspecified,
    K4,
    K16,
    K64,
}

/// Validated header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageHeader {
    /// Offset of the Image from a 2 MiB aligned base.
    pub text_offset: u64,
    /// Memory the kernel occupies from its load address, BSS included.
    pub image_size: u64,
    /// Raw flags word.
    pub flags: u64,
    pub page_size: PageSize,
    /// Flags bit 3: the 2 MiB aligned base may be anywhere in RAM rather than
    /// as close as possible to its start.
    pub place_anywhere: bool,
    /// Bytes of the file that get copied to the load address.
    pub file_len: u64,
}

/// Why an Image was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderError {
    /// Shorter than the 64-byte header.
    Truncated { len: usize },
    /// Magic at 0x38 is not `ARM\x64` (e.g. a gzip or EFI zboot wrapper).
    BadMagic { found: u32 },
    /// Flags bit 0 set: big-endian kernel, which our little-endian guests can't run.
    BigEndian,
    /// `image_size` is 0: a pre-3.17 kernel without a usable header.
    LegacyHeader,
    /// `text_offset` is not 4 KiB aligned, so no valid load address exists.
    MisalignedTextOffset { text_offset: u64 },
    /// The file is longer than `image_size`, so the header can't describe it.
    FileLargerThanImage { file_len: u64, image_size: u64 },
}

fn le64(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(a)
}

/// Parses and validates the header at the start of `image` (the whole file).
pub fn parse_image_header(image: &[u8]) -> Result<ImageHeader, HeaderError> {
    if image.len() < HEADER_SIZE {
        return Err(HeaderError::Truncated { len: image.len() });
    }
    let magic = u32::from_le_bytes([image[0x38], image[0x39], image[0x3a], image[0x3b]]);
    if magic != ARM64_IMAGE_MAGIC {
        return Err(HeaderError::BadMagic { found: magic });
    }
    let text_offset = le64(image, 0x08);
    let image_size = le64(image, 0x10);
    let flags = le64(image, 0x18);
    if image_size == 0 {
        return Err(HeaderError::LegacyHeader);
    }
    if flags & 1 != 0 {
        return Err(HeaderError::BigEndian);
    }
    if !text_offset.is_multiple_of(4096) {
        return Err(HeaderError::MisalignedTextOffset { text_offset });
    }
    let file_len = image.len() as u64;
    if file_len > image_size {
        return Err(HeaderError::FileLargerThanImage {
            file_len,
            image_size,
        });
    }
    let page_size = match (flags >> 1) & 3 {
        0 => PageSize::Unspecified,
        1 => PageSize::K4,
        2 => PageSize::K16,
        _ => PageSize::K64,
    };
    Ok(ImageHeader {
        text_offset,
        image_size,
        flags,
        page_size,
        place_anywhere: flags & (1 << 3) != 0,
        file_len,
    })
}

/// A guest-physical range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub addr: u64,
    pub size: u64,
}

impl Range {
    /// Exclusive end.
    pub const fn end(&self) -> u64 {
        self.addr + self.size
    }

    pub const fn overlaps(&self, other: &Range) -> bool {
        self.addr < other.end() && other.addr < self.end()
    }
}

/// Where everything goes in guest RAM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootLayout {
    /// Load address and `image_size` (copy `file_len` bytes, the rest is BSS).
    pub kernel: Range,
    /// The first instruction is at the load address.
    pub kernel_entry: u64,
    /// The DTB gets a 2 MiB block of its own right after the kernel, so it
    /// never crosses a 2 MiB boundary or shares a block with anything else.
    pub dtb: Range,
    /// `linux,initrd-start` / `linux,initrd-end` in `/chosen`.
    pub initrd: Option<Range>,
}

/// Why no layout fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayoutError {
    /// RAM has no 2 MiB aligned base at all.
    NoAlignedBase,
    /// DTB larger than the 2 MiB the protocol allows.
    DtbTooLarge {
        size: u64,
    },
    /// Kernel, DTB or initrd run past the end of RAM (needed end vs RAM end).
    KernelDoesNotFit {
        end: u64,
        ram_end: u64,
    },
    DtbDoesNotFit {
        end: u64,
        ram_end: u64,
    },
    InitrdDoesNotFit {
        end: u64,
        ram_end: u64,
    },
    /// Address arithmetic overflowed 64 bits.
    Overflow,
}

fn align_up(v: u64, a: u64) -> Option<u64> {
    Some(v.checked_add(a - 1)? & !(a - 1))
}

/// Places kernel, DTB and initrd in the RAM region `ram`: kernel at the lowest
/// 2 MiB aligned base + `text_offset` (which also satisfies "as close as possible
/// to the start of RAM" for kernels without the place-anywhere flag), then the
/// DTB at the next 2 MiB boundary, then the initrd at the 2 MiB boundary after.
pub fn plan_layout(
    ram: Range,
    header: &ImageHeader,
    dtb_size: u64,
    initrd_size: Option<u64>,
) -> Result<BootLayout, LayoutError> {
    use LayoutError::*;
    if dtb_size > DTB_MAX_SIZE {
        return Err(DtbTooLarge { size: dtb_size });
    }
    let ram_end = ram.addr.checked_add(ram.size).ok_or(Overflow)?;
    let base = align_up(ram.addr, KERNEL_BASE_ALIGN).ok_or(NoAlignedBase)?;
    if base >= ram_end {
        return Err(NoAlignedBase);
    }
    let load = base.checked_add(header.text_offset).ok_or(Overflow)?;
    let kernel = Range {
        addr: load,
        size: header.image_size,
    };
    let kend = load.checked_add(header.image_size).ok_or(Overflow)?;
    if kend > ram_end {
        return Err(KernelDoesNotFit { end: kend, ram_end });
    }
    let dtb_addr = align_up(kend, DTB_MAX_SIZE).ok_or(Overflow)?;
    let dtb = Range {
        addr: dtb_addr,
        size: dtb_size,
    };
    let dend = dtb_addr.checked_add(dtb_size).ok_or(Overflow)?;
    if dend > ram_end {
        return Err(DtbDoesNotFit { end: dend, ram_end });
    }
    let initrd = match initrd_size {
        None => None,
        Some(size) => {
            let addr = dtb_addr.checked_add(DTB_MAX_SIZE).ok_or(Overflow)?;
            let end = addr.checked_add(size).ok_or(Overflow)?;
            if end > ram_end {
                return Err(InitrdDoesNotFit { end, ram_end });
            }
            Some(Range { addr, size })
        }
    };
    debug_assert!(dtb.addr.is_multiple_of(DTB_ALIGN) && !dtb.overlaps(&kernel));
    Ok(BootLayout {
        kernel,
        kernel_entry: load,
        dtb,
        initrd,
    })
}

/// Boot CPU registers at kernel entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryState {
    /// x0 = DTB address, x1..x3 = 0 (reserved, must be zero).
    pub x: [u64; 4],
    pub pc: u64,
    /// SPSR value to enter with: EL1h, DAIF masked. The MMU and D-cache must be
    /// off and I-cache may be on; that is SCTLR_EL1's job, not PSTATE's.
    pub pstate: u64,
}

/// Register state for entering the kernel placed by `layout`.
pub const fn entry_state(layout: &BootLayout) -> EntryState {
    EntryState {
        x: [layout.dtb.addr, 0, 0, 0],
        pc: layout.kernel_entry,
        pstate: PSTATE_EL1H_DAIF_MASKED,
    }
}

#[cfg(test)]
mod tests;
