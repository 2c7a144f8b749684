//! Builds the root task from the ELF image packed into the kernel: its VSpace, stack and
//! thread, all from boot memory (the last memory the kernel allocates itself).

use elf::ElfBytes;
use elf::abi::{EM_AARCH64, ET_EXEC, PF_R, PF_W, PF_X, PT_LOAD};
use elf::endian::LittleEndian;

use crate::arch::context::UserContext;
use crate::boot_alloc::BootAlloc;
use crate::stage2::{self, MapAttrs, MemKind, Table};
use crate::thread::Tcb;

pub use axolotl_abi::bootinfo::{BOOTINFO_VADDR, IPC_BUFFER_VADDR, STACK_TOP};
pub const STACK_PAGES: u64 = 4;
pub const VMID: u8 = 1;

pub enum LoadError {
    Parse,
    NotAarch64Exec,
    SegmentOutOfRange { vaddr: u64 },
    Misaligned { vaddr: u64 },
    OutOfMemory,
    Overlap { vaddr: u64 },
}

impl core::fmt::Display for LoadError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            LoadError::Parse => f.write_str("not a valid ELF64 file"),
            LoadError::NotAarch64Exec => f.write_str("not an AArch64 executable"),
            LoadError::SegmentOutOfRange { vaddr } => {
                write!(f, "segment at {vaddr:#x} outside the user range")
            }
            LoadError::Misaligned { vaddr } => {
                write!(f, "segment at {vaddr:#x} not congruent to its file offset")
            }
            LoadError::OutOfMemory => f.write_str("out of boot memory"),
            LoadError::Overlap { vaddr } => write!(f, "segments overlap at page {vaddr:#x}"),
        }
    }
}

pub struct Loaded {
    pub tcb: *mut Tcb,
    pub tcb_obj: u64,
    pub entry: u64,
    pub pages: u64,
    pub vspace: u64,
    pub bootinfo: u64,
    pub ipc_buffer: u64,
}

fn zeroed_page(mem: &mut BootAlloc) -> Option<u64> {
    let p = mem.alloc(12)?;
    // SAFETY: freshly allocated page of boot memory, identity mapped.
    unsafe { core::ptr::write_bytes(p as *mut u8, 0, 4096) };
    Some(p)
}

pub fn load(image: &[u8], mem: &mut BootAlloc, priority: u8) -> Result<Loaded, LoadError> {
    let elf = ElfBytes::<LittleEndian>::minimal_parse(image).map_err(|_| LoadError::Parse)?;
    if elf.ehdr.e_machine != EM_AARCH64 || elf.ehdr.e_type != ET_EXEC {
        return Err(LoadError::NotAarch64Exec);
    }
    let root_pa = zeroed_page(mem).ok_or(LoadError::OutOfMemory)?;
    // SAFETY: a zeroed page owned by this VSpace.
    let root = unsafe { Table::at(root_pa) };
    let mut pages = 0;
    let segments = elf.segments().ok_or(LoadError::Parse)?;
    for ph in segments
        .iter()
        .filter(|p| p.p_type == PT_LOAD && p.p_memsz > 0)
    {
        let (va, memsz, filesz) = (ph.p_vaddr, ph.p_memsz, ph.p_filesz);
        let end = va
            .checked_add(memsz)
            .ok_or(LoadError::SegmentOutOfRange { vaddr: va })?;
        if end > BOOTINFO_VADDR || filesz > memsz {
            return Err(LoadError::SegmentOutOfRange { vaddr: va });
        }
        if va % 4096 != ph.p_offset % 4096 {
            return Err(LoadError::Misaligned { vaddr: va });
        }
        let data = elf.segment_data(&ph).map_err(|_| LoadError::Parse)?;
        let attrs = MapAttrs {
            read: ph.p_flags & PF_R != 0,
            write: ph.p_flags & PF_W != 0,
            execute: ph.p_flags & PF_X != 0,
            kind: MemKind::Cached,
        };
        let mut page = va & !0xfff;
        while page < end {
            // The part of the file that lands in this page.
            let lo = page.max(va);
            let hi = (page + 4096).min(va + filesz);
            let in_place = data.as_ptr() as u64 + (page - va);
            let whole = lo == page && hi == page + 4096 && in_place.is_multiple_of(4096);
            let frame = if whole && !attrs.write {
                // A whole read-only page of the file: map it where the kernel image holds
                // it (the PD images the root task carries are most of it). That memory is
                // outside every untyped and nothing else uses it after boot. Writable pages
                // are copied, so no two mappings can share a page one of them may change.
                in_place
            } else {
                zeroed_page(mem).ok_or(LoadError::OutOfMemory)?
            };
            if frame != in_place && lo < hi {
                let src = &data[(lo - va) as usize..(hi - va) as usize];
                // SAFETY: the frame is a fresh page; [lo - page, hi - page) lies inside it.
                unsafe {
                    core::ptr::copy_nonoverlapping(
                        src.as_ptr(),
                        (frame + (lo - page)) as *mut u8,
                        src.len(),
                    );
                }
            }
            if attrs.execute {
                crate::arch::cpu::sync_icache(frame, 4096);
            }
            root.map_page(page, frame, attrs, &mut || zeroed_page(mem))
                .map_err(|e| match e {
                    stage2::MapError::AlreadyMapped => LoadError::Overlap { vaddr: page },
                    stage2::MapError::NeedTable { .. } => LoadError::OutOfMemory,
                    stage2::MapError::BadAddress => LoadError::SegmentOutOfRange { vaddr: page },
                })?;
            pages += 1;
            page += 4096;
        }
    }
    let stack_attrs = MapAttrs {
        read: true,
        write: true,
        execute: false,
        kind: MemKind::Cached,
    };
    for i in 1..=STACK_PAGES {
        let frame = zeroed_page(mem).ok_or(LoadError::OutOfMemory)?;
        root.map_page(STACK_TOP - i * 4096, frame, stack_attrs, &mut || {
            zeroed_page(mem)
        })
        .map_err(|_| LoadError::OutOfMemory)?;
        pages += 1;
    }
    let bootinfo = zeroed_page(mem).ok_or(LoadError::OutOfMemory)?;
    let ipc_buffer = zeroed_page(mem).ok_or(LoadError::OutOfMemory)?;
    let ro = MapAttrs {
        read: true,
        write: false,
        execute: false,
        kind: MemKind::Cached,
    };
    for (va, pa, attrs) in [
        (BOOTINFO_VADDR, bootinfo, ro),
        (IPC_BUFFER_VADDR, ipc_buffer, stack_attrs),
    ] {
        root.map_page(va, pa, attrs, &mut || zeroed_page(mem))
            .map_err(|_| LoadError::OutOfMemory)?;
    }
    let tcb_obj = mem.alloc(11).ok_or(LoadError::OutOfMemory)?;
    // SAFETY: fresh 2 KiB of boot memory, zeroed before use.
    unsafe { core::ptr::write_bytes(tcb_obj as *mut u8, 0, 2048) };
    // SAFETY: a zeroed TCB object.
    let tcb = unsafe { Tcb::init_object(tcb_obj, 1) };
    // SAFETY: just initialised.
    unsafe {
        let t = &mut *tcb;
        t.ctx = UserContext::new_el0(elf.ehdr.e_entry, STACK_TOP, BOOTINFO_VADDR);
        t.priority = priority;
        t.mcp = priority;
        t.ipc_buffer = IPC_BUFFER_VADDR;
        t.ipc_buffer_pa = ipc_buffer;
        t.set_name("root-task");
    }
    Ok(Loaded {
        tcb,
        tcb_obj,
        entry: elf.ehdr.e_entry,
        pages,
        vspace: root_pa,
        bootinfo,
        ipc_buffer,
    })
}
