//! The root task's initial capabilities: its CNode with the caps to its own objects, IRQ
//! control, and all remaining memory as Untyped (seL4's `create_initial_thread` and
//! `create_untypeds`). After this the kernel allocates nothing.

use axolotl_abi::Rights;
use axolotl_abi::bootinfo::{
    BOOTINFO_VADDR, BootInfo, IPC_BUFFER_VADDR, MAX_UNTYPED, UntypedDesc, init_cap,
};
use axolotl_kernel_core::cap::{FrameSize, Mapping};
use axolotl_kernel_core::{Cap, SlotRef, mdb};

use crate::boot_alloc::{BootAlloc, blocks};
use crate::root_task::{Loaded, VMID};
use crate::thread::{Tcb, slot};

pub struct Summary {
    pub untyped: usize,
    pub untyped_bytes: u64,
    pub device_untyped: usize,
}

fn slot_at(addr: u64) -> SlotRef {
    // SAFETY: boot code passes addresses of slots in objects it just created.
    unsafe { SlotRef::from_addr(addr).expect("slot address") }
}

pub fn create(
    loaded: &Loaded,
    mem: &mut BootAlloc,
    asids: &mut axolotl_kernel_core::asid::AsidTable,
    cnode_bits: u8,
    ram: &[(u64, u64)],
    devices: &[(u64, u64)],
) -> Summary {
    let cnode = mem
        .alloc(cnode_bits as u32 + 5)
        .expect("memory for the root CNode");
    // SAFETY: fresh boot memory; zero is the empty slot.
    unsafe { core::ptr::write_bytes(cnode as *mut u8, 0, 32 << cnode_bits) };
    let at = |i: u64| slot_at(cnode + i * 32);
    let cnode_cap = Cap::CNode {
        ptr: cnode,
        radix_bits: cnode_bits,
        guard_bits: 64 - cnode_bits,
        guard: 0,
    };
    let frame = |ptr, vaddr, rights| Cap::Frame {
        ptr,
        size: FrameSize::Small,
        rights,
        is_device: false,
        mapped: Some(Mapping {
            asid: VMID as u16,
            vaddr,
        }),
    };
    // SAFETY: every cap names an object created for the root task above; roots of the MDB.
    unsafe {
        mdb::insert_root(
            at(init_cap::TCB),
            Cap::Tcb {
                ptr: loaded.tcb_obj,
            },
        );
        mdb::insert_root(at(init_cap::CNODE), cnode_cap);
        mdb::insert_root(
            at(init_cap::VSPACE),
            Cap::VSpace {
                ptr: loaded.vspace,
                asid: None,
            },
        );
        mdb::insert_root(at(init_cap::IRQ_CONTROL), Cap::IrqControl);
        mdb::insert_root(at(init_cap::ASID_CONTROL), Cap::AsidControl);
        mdb::insert_root(at(init_cap::DOMAIN), Cap::DomainSet);
        // Pool 0 for the root task, whose VSpace takes its first ASID (VMID 1).
        asids
            .make_pool(at(init_cap::ASID_CONTROL), at(init_cap::ASID_POOL))
            .expect("ASID pool 0");
        let asid = asids
            .assign(at(init_cap::ASID_POOL), at(init_cap::VSPACE))
            .expect("root ASID");
        assert_eq!(
            asid, VMID as u16,
            "the root task was built with VMID {VMID}"
        );
        mdb::insert_root(
            at(init_cap::BOOTINFO_FRAME),
            frame(loaded.bootinfo, BOOTINFO_VADDR, Rights::READ),
        );
        mdb::insert_root(
            at(init_cap::IPC_BUFFER),
            frame(loaded.ipc_buffer, IPC_BUFFER_VADDR, Rights::RW),
        );
        // The thread's own slots hold copies, as TcbConfigure would leave them.
        let t = loaded.tcb;
        for (i, src) in [
            (slot::CSPACE, init_cap::CNODE),
            (slot::VSPACE, init_cap::VSPACE),
            (slot::IPC_BUFFER, init_cap::IPC_BUFFER),
        ] {
            mdb::insert_copy(at(src), slot_at(Tcb::slot_addr(t, i)), at(src).cap());
        }
    }

    // SAFETY: the boot info frame is a fresh page the root task maps read-only.
    let bi = unsafe { &mut *(loaded.bootinfo as *mut BootInfo) };
    bi.cnode_size_bits = cnode_bits as u64;
    bi.tick_hz = 1_000_000 / axolotl_kernel_config::BuildConfig::DEFAULT.tick_us;
    bi.gic_version = crate::BOARD.gic.version().number() as u64;
    bi.gicv_paddr = match crate::BOARD.gic {
        axolotl_kernel_config::GicLayout::V2 { gicv, .. } => gicv,
        axolotl_kernel_config::GicLayout::V3 { .. } => 0,
    };
    let mut n = 0usize;
    let mut s = Summary {
        untyped: 0,
        untyped_bytes: 0,
        device_untyped: 0,
    };
    let mut add = |paddr: u64, bits: u32, device: bool| {
        if n == MAX_UNTYPED || init_cap::FIRST_UNTYPED + n as u64 >= 1 << cnode_bits {
            return;
        }
        bi.untyped[n] = UntypedDesc {
            paddr,
            size_bits: bits as u8,
            is_device: device as u8,
            _pad: [0; 6],
        };
        // SAFETY: the block is boot memory no object uses, or device memory outside RAM.
        unsafe {
            mdb::insert_root(
                at(init_cap::FIRST_UNTYPED + n as u64),
                Cap::Untyped {
                    ptr: paddr,
                    size_bits: bits as u8,
                    free_index: 0,
                    is_device: device,
                },
            );
        }
        n += 1;
        if device {
            s.device_untyped += 1;
        } else {
            s.untyped += 1;
            s.untyped_bytes += 1 << bits;
        }
    };
    // What the boot allocator left of its range, then the board's other RAM ranges whole:
    // the kernel allocates nothing there, now or later.
    let (lo, hi) = mem.remaining();
    blocks((lo + 4095) & !4095, hi, |p, b| add(p, b, false));
    for &(rlo, rhi) in ram {
        if (rlo, rhi) != crate::BOARD.kernel_ram() {
            blocks(rlo, rhi, |p, b| add(p, b, false));
        }
    }
    for &(dlo, dhi) in devices {
        blocks(dlo, dhi, |p, b| add(p, b, true));
    }
    bi.num_untyped = n as u64;
    bi.first_free_slot = init_cap::FIRST_UNTYPED + n as u64;
    s
}
