//! Boot self-check of the capability kernel: objects from untyped, a second thread, call and
//! reply through an endpoint, and a VM fault delivered to a fault endpoint, fixed by mapping
//! the page, and resumed by the reply.

use axolotl_abi::bootinfo::init_cap;
use axolotl_abi::{BootInfo, FaultLabel, MessageInfo, ObjectType, Rights};
use axolotl_sys::alloc::ObjectAlloc;
use axolotl_sys::{Endpoint, Frame, VSpace, println, vm_attr};

use crate::spawn::{Stack, spawn, stack_top};

const SERVER_IPC_BUFFER: u64 = 0xe000_2000;
const FAULTER_IPC_BUFFER: u64 = 0xe000_3000;
/// Unmapped until the fault handler maps it.
const LAZY_PAGE: u64 = 0x4000_0000;
const ROUND_TRIPS: u64 = 1000;

static mut SERVER_STACK: Stack = Stack::new();
static mut FAULTER_STACK: Stack = Stack::new();
static mut SERVER_EP: u64 = 0;

extern "C" fn server() -> ! {
    // SAFETY: written once by the root task before this thread was resumed.
    let ep = Endpoint(unsafe { SERVER_EP });
    let mut msg = ep.recv();
    loop {
        let v = msg.mrs[0];
        msg = ep.reply_recv(MessageInfo::new(0, 0, 0, 1), [v + 1, 0, 0, 0]);
    }
}

extern "C" fn faulter() -> ! {
    // SAFETY: the first access faults; the handler maps the page and resumes us here.
    unsafe { core::ptr::write_volatile(LAZY_PAGE as *mut u64, 0x600d) };
    // SAFETY: now mapped.
    let v = unsafe { core::ptr::read_volatile(LAZY_PAGE as *const u64) };
    println!("root-task: selftest: faulter resumed after its fault, reads back {v:#x}");
    axolotl_sys::thread_exit()
}

pub fn run(bi: &BootInfo) -> Result<(), &'static str> {
    let mut a = ObjectAlloc::from_bootinfo(bi);
    let ep = a
        .alloc(ObjectType::Endpoint, 0)
        .map_err(|_| "retype endpoint")?;
    // SAFETY: read by the server only after it is resumed below.
    unsafe { SERVER_EP = ep };
    spawn(
        &mut a,
        server,
        stack_top(&raw mut SERVER_STACK),
        SERVER_IPC_BUFFER,
        200,
        0,
    )?;
    for i in 0..ROUND_TRIPS {
        let r = Endpoint(ep).call(MessageInfo::new(7, 0, 0, 1), [i, 0, 0, 0]);
        if r.mrs[0] != i + 1 || r.info.length() != 1 {
            println!(
                "root-task: selftest FAILED: round trip {i} answered {:?}",
                r
            );
            return Err("bad reply");
        }
    }
    println!("root-task: selftest: {ROUND_TRIPS} call/reply round trips through an endpoint ok");

    let fault_ep = a
        .alloc(ObjectType::Endpoint, 0)
        .map_err(|_| "retype fault endpoint")?;
    spawn(
        &mut a,
        faulter,
        stack_top(&raw mut FAULTER_STACK),
        FAULTER_IPC_BUFFER,
        200,
        fault_ep,
    )?;
    let f = Endpoint(fault_ep).recv();
    if f.label() != FaultLabel::VmFault as u64 || f.mrs[1] != LAZY_PAGE {
        println!(
            "root-task: selftest FAILED: expected a VM fault at {LAZY_PAGE:#x}, got {:?}",
            f
        );
        return Err("bad fault message");
    }
    println!(
        "root-task: selftest: VM fault delivered: pc {:#x}, address {:#x}, fsr {:#x}",
        f.mrs[0], f.mrs[1], f.mrs[3]
    );
    let pt_l2 = axolotl_sys::PageTable(a.alloc(ObjectType::PageTable, 0).map_err(|_| "retype PT")?);
    pt_l2
        .map(VSpace(init_cap::VSPACE), LAZY_PAGE, 0)
        .map_err(|_| "map level-2 table")?;
    let pt_l3 = axolotl_sys::PageTable(a.alloc(ObjectType::PageTable, 0).map_err(|_| "retype PT")?);
    pt_l3
        .map(VSpace(init_cap::VSPACE), LAZY_PAGE, 0)
        .map_err(|_| "map level-3 table")?;
    let page = Frame(
        a.alloc(ObjectType::SmallFrame, 0)
            .map_err(|_| "retype page")?,
    );
    page.map(
        VSpace(init_cap::VSPACE),
        LAZY_PAGE,
        Rights::RW,
        vm_attr::CACHEABLE,
    )
    .map_err(|_| "map page")?;
    axolotl_sys::reply(MessageInfo::new(0, 0, 0, 0), [0; 4]);
    // The faulter (lower priority) runs and reports once the root task is done.
    Ok(())
}
