//! Test runner and the environment each case gets: a fresh untyped (revoked after the case,
//! which destroys every object the case made, its threads included), slots, fresh virtual
//! addresses, and threads that share the suite's CSpace and VSpace.

use axolotl_abi::bootinfo::init_cap;
use axolotl_abi::{BootInfo, CPtr, Error, ObjectType, Rights};
use axolotl_sys::alloc::{ROOT_DEPTH, SlotAlloc};
use axolotl_sys::vm_attr;
use axolotl_sys::{
    CNode, Endpoint, Frame, InvocationError, Notification, PageTable, Tcb, Untyped, UserContext,
    VSpace, println,
};
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};

pub type TestFn = fn(&mut Env) -> Result<(), Fail>;

/// Why a case failed: a short formatted message.
pub struct Fail {
    buf: [u8; 200],
    len: usize,
}

impl Fail {
    pub fn new(args: fmt::Arguments) -> Self {
        let mut f = Fail {
            buf: [0; 200],
            len: 0,
        };
        let _ = f.write_fmt(args);
        f
    }
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("<bad utf-8>")
    }
}

impl Write for Fail {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

#[macro_export]
macro_rules! fail {
    ($($a:tt)*) => { $crate::harness::Fail::new(format_args!($($a)*)) };
}

/// Fails the case with the message unless the condition holds.
#[macro_export]
macro_rules! ensure {
    ($c:expr, $($a:tt)*) => { if !$c { return Err($crate::fail!($($a)*)); } };
}

/// Fails unless `a == b`, printing both.
#[macro_export]
macro_rules! ensure_eq {
    ($a:expr, $b:expr, $what:expr) => {{
        let (a, b) = (&$a, &$b);
        if a != b {
            return Err($crate::fail!(
                "{}: got {:#x?}, expected {:#x?}",
                $what,
                a,
                b
            ));
        }
    }};
}

/// Attaches what was being done to an invocation error.
pub trait Ctx<T> {
    fn ctx(self, what: &str) -> Result<T, Fail>;
}

impl<T> Ctx<T> for Result<T, InvocationError> {
    fn ctx(self, what: &str) -> Result<T, Fail> {
        self.map_err(|e| fail!("{what}: {e:?}"))
    }
}

/// Expects an invocation to fail with `want`; returns the error for detail checks.
pub fn expect_err<T>(
    r: Result<T, InvocationError>,
    want: Error,
    what: &str,
) -> Result<InvocationError, Fail> {
    match r {
        Ok(_) => Err(fail!("{what}: succeeded, expected {}", want.name())),
        Err(e) if e.error == want && e.unknown_code == 0 => Ok(e),
        Err(e) => Err(fail!("{what}: got {e:?}, expected {}", want.name())),
    }
}

/// Words shared between a case and its threads (same address space); reset per case.
pub static SHARED: [AtomicU64; 16] = [const { AtomicU64::new(0) }; 16];
static LOG: [AtomicU64; 64] = [const { AtomicU64::new(0) }; 64];
static LOG_LEN: AtomicUsize = AtomicUsize::new(0);

pub fn shared(i: usize) -> u64 {
    SHARED[i].load(SeqCst)
}
pub fn set_shared(i: usize, v: u64) {
    SHARED[i].store(v, SeqCst)
}

/// Appends to the ordered event log (threads record the order they ran in).
pub fn log(v: u64) {
    let i = LOG_LEN.fetch_add(1, SeqCst);
    if i < LOG.len() {
        LOG[i].store(v, SeqCst);
    }
}

pub fn log_contents(out: &mut [u64; 64]) -> usize {
    let n = LOG_LEN.load(SeqCst).min(64);
    for (i, o) in out.iter_mut().enumerate().take(n) {
        *o = LOG[i].load(SeqCst);
    }
    n
}

const STACK_SIZE: usize = 16 * 1024;
const MAX_THREADS: usize = 8;

#[repr(C, align(16))]
struct Stacks([[u8; STACK_SIZE]; MAX_THREADS]);
static mut STACKS: Stacks = Stacks([[0; STACK_SIZE]; MAX_THREADS]);

/// Where the cases map frames: far above the suite image and stack, each case its own pages.
const VADDR_BASE: u64 = 0x10_0000_0000;

pub const ROOT_TCB: Tcb = Tcb(init_cap::TCB);
pub const ROOT_CNODE: CNode = CNode(init_cap::CNODE);
pub const ROOT_VSPACE: VSpace = VSpace(init_cap::VSPACE);
pub const D: u64 = ROOT_DEPTH;

pub struct Env {
    pub bi: &'static BootInfo,
    pub slots: SlotAlloc,
    /// The case's memory; revoked after it.
    pub ut: Untyped,
    pub ut_bits: u64,
    vaddr_next: u64,
    threads: usize,
}

/// A thread a case created.
#[derive(Clone, Copy)]
pub struct Thread {
    pub tcb: Tcb,
    pub ipc_buffer: u64,
}

impl Env {
    pub fn slot(&mut self) -> Result<CPtr, Fail> {
        self.slots
            .alloc()
            .ok_or_else(|| fail!("out of CSpace slots"))
    }

    /// `n` consecutive empty slots.
    pub fn slots_n(&mut self, n: u64) -> Result<CPtr, Fail> {
        self.slots
            .alloc_n(n)
            .ok_or_else(|| fail!("out of CSpace slots"))
    }

    /// One object from the case's untyped, in a new slot.
    pub fn alloc(&mut self, ty: ObjectType, user_bits: u64) -> Result<CPtr, Fail> {
        let s = self.slot()?;
        self.ut
            .retype(ty, user_bits, ROOT_CNODE, 0, 0, s, 1)
            .map_err(|e| fail!("retype {ty:?}: {e:?}"))?;
        Ok(s)
    }

    pub fn endpoint(&mut self) -> Result<Endpoint, Fail> {
        self.alloc(ObjectType::Endpoint, 0).map(Endpoint)
    }
    pub fn notification(&mut self) -> Result<Notification, Fail> {
        self.alloc(ObjectType::Notification, 0).map(Notification)
    }
    pub fn frame(&mut self) -> Result<Frame, Fail> {
        self.alloc(ObjectType::SmallFrame, 0).map(Frame)
    }

    /// A copy of `cap` with `badge` and `rights` in a new slot.
    pub fn mint(&mut self, cap: CPtr, rights: Rights, badge: u64) -> Result<CPtr, Fail> {
        let s = self.slot()?;
        ROOT_CNODE
            .mint(s, D, ROOT_CNODE, cap, D, rights, badge)
            .map_err(|e| fail!("mint of slot {cap}: {e:?}"))?;
        Ok(s)
    }

    /// Unused, page-aligned virtual addresses for `pages` pages (`align` bytes aligned).
    pub fn vaddr(&mut self, pages: u64, align: u64) -> u64 {
        let v = self.vaddr_next.next_multiple_of(align);
        self.vaddr_next = v + pages * 4096;
        v
    }

    /// Maps `frame` at `vaddr`, creating page tables as the kernel asks for them.
    pub fn map(
        &mut self,
        frame: Frame,
        vaddr: u64,
        rights: Rights,
        attrs: u64,
    ) -> Result<(), Fail> {
        for _ in 0..4 {
            match frame.map(ROOT_VSPACE, vaddr, rights, attrs) {
                Ok(()) => return Ok(()),
                Err(e) if e.error == Error::FailedLookup => {
                    let pt = PageTable(self.alloc(ObjectType::PageTable, 0)?);
                    pt.map(ROOT_VSPACE, vaddr, 0)
                        .map_err(|e| fail!("page table map at {vaddr:#x}: {e:?}"))?;
                }
                Err(e) => return Err(fail!("frame map at {vaddr:#x}: {e:?}")),
            }
        }
        Err(fail!("frame map at {vaddr:#x}: still no page table"))
    }

    /// A new frame mapped read-write at a fresh address; returns both.
    pub fn mapped_frame(&mut self) -> Result<(Frame, u64), Fail> {
        let f = self.frame()?;
        let v = self.vaddr(1, 4096);
        self.map(f, v, Rights::RW, vm_attr::CACHEABLE)?;
        Ok((f, v))
    }

    /// A thread in the suite's CSpace and VSpace with its own stack and IPC buffer, set up to
    /// run `f(arg)` at `prio` but not resumed.
    pub fn thread(
        &mut self,
        f: fn(u64),
        arg: u64,
        prio: u64,
        fault_ep: CPtr,
    ) -> Result<Thread, Fail> {
        ensure!(self.threads < MAX_THREADS, "out of thread stacks");
        let stack = self.threads;
        self.threads += 1;
        let tcb = Tcb(self.alloc(ObjectType::Tcb, 0)?);
        let (frame, buf) = self.mapped_frame()?;
        tcb.configure(fault_ep, ROOT_CNODE, 0, ROOT_VSPACE, 0, buf, frame)
            .ctx("TcbConfigure")?;
        tcb.set_priority(ROOT_TCB, prio).ctx("TcbSetPriority")?;
        // SAFETY: only the address is taken; each stack belongs to one thread of one case.
        let top = unsafe { (&raw const STACKS.0[stack]) as u64 } + STACK_SIZE as u64;
        let mut regs = UserContext {
            pc: thread_start as extern "C" fn(usize, u64) -> ! as usize as u64,
            sp: top,
            tpidr_el0: buf,
            ..Default::default()
        };
        regs.x[0] = f as usize as u64;
        regs.x[1] = arg;
        tcb.write_registers(false, 0, axolotl_abi::USER_CONTEXT_WORDS, &regs)
            .ctx("TcbWriteRegisters")?;
        Ok(Thread {
            tcb,
            ipc_buffer: buf,
        })
    }

    /// [`Env::thread`], resumed.
    pub fn spawn(
        &mut self,
        f: fn(u64),
        arg: u64,
        prio: u64,
        fault_ep: CPtr,
    ) -> Result<Thread, Fail> {
        let t = self.thread(f, arg, prio, fault_ep)?;
        t.tcb.resume().ctx("TcbResume")?;
        Ok(t)
    }

    /// Whether `slot` is empty, found by copying from it (a lookup of nothing fails).
    pub fn is_empty(&mut self, slot: CPtr) -> Result<bool, Fail> {
        let scratch = self.slot()?;
        let r = ROOT_CNODE.copy(scratch, D, ROOT_CNODE, slot, D, Rights::ALL);
        let empty = match r {
            Ok(()) => {
                ROOT_CNODE.delete(scratch, D).ctx("delete scratch")?;
                false
            }
            Err(e) if e.error == Error::FailedLookup => true,
            Err(_) => false,
        };
        Ok(empty)
    }
}

/// First code of every case thread: `x0` = the function, `x1` = its argument.
extern "C" fn thread_start(f: usize, arg: u64) -> ! {
    // SAFETY: `Env::thread` put a `fn(u64)` in x0.
    let f: fn(u64) = unsafe { core::mem::transmute::<usize, fn(u64)>(f) };
    f(arg);
    axolotl_sys::thread_exit()
}

/// Ticks per second; BootInfo's, or 1000 when the kernel leaves it 0 (it did at first).
pub fn tick_hz(env: &Env) -> u64 {
    match env.bi.tick_hz {
        0 => 1000,
        hz => hz,
    }
}

/// log2 of each case's untyped.
const CASE_UT_BITS: u64 = 24;

pub fn run(bi: &'static BootInfo, tests: &[(&str, TestFn)]) -> ! {
    println!(
        "kernel-suite: {} untyped, cnode {} bits, first free slot {}, {} Hz",
        bi.num_untyped, bi.cnode_size_bits, bi.first_free_slot, bi.tick_hz
    );
    for (i, u) in bi.untyped.iter().enumerate().take(bi.num_untyped as usize) {
        println!(
            "kernel-suite:   untyped {} (slot {}): {:#x} 2^{}{}",
            i,
            init_cap::FIRST_UNTYPED + i as u64,
            u.paddr,
            u.size_bits,
            if u.is_device != 0 { " device" } else { "" }
        );
    }
    let mut slots = SlotAlloc::from_bootinfo(bi);
    let ut_slot = slots.alloc().unwrap();
    let mut made = false;
    for (i, u) in bi.untyped.iter().enumerate().take(bi.num_untyped as usize) {
        if u.is_device == 0 && u.size_bits as u64 >= CASE_UT_BITS {
            let parent = Untyped(init_cap::FIRST_UNTYPED + i as u64);
            if parent
                .retype(
                    ObjectType::Untyped,
                    CASE_UT_BITS,
                    ROOT_CNODE,
                    0,
                    0,
                    ut_slot,
                    1,
                )
                .is_ok()
            {
                made = true;
                break;
            }
        }
    }
    let (mut passed, mut failed) = (0, 0);
    if !made {
        println!("kernel-suite: cannot make the cases' untyped (retype failed)");
        failed = tests.len();
    } else {
        let mut env = Env {
            bi,
            slots,
            ut: Untyped(ut_slot),
            ut_bits: CASE_UT_BITS,
            vaddr_next: VADDR_BASE,
            threads: 0,
        };
        for (name, f) in tests {
            let mark = env.slots.mark();
            for s in &SHARED {
                s.store(0, SeqCst);
            }
            LOG_LEN.store(0, SeqCst);
            env.threads = 0;
            let r = f(&mut env);
            let cleanup = cleanup(&mut env, mark);
            match (r, cleanup) {
                (Ok(()), Ok(())) => {
                    passed += 1;
                    println!("kernel-suite: test {name} ... ok");
                }
                (Err(e), _) | (Ok(()), Err(e)) => {
                    failed += 1;
                    println!("kernel-suite: test {name} ... FAILED: {}", e.as_str());
                }
            }
            // A fresh 1 GiB region per case, so page tables of one never serve the next.
            env.vaddr_next = env.vaddr_next.next_multiple_of(1 << 30);
        }
    }
    println!("kernel-suite: {passed} passed, {failed} failed");
    axolotl_sys::thread_exit()
}

/// Destroys everything the case made: revoking its untyped deletes all objects (threads
/// stop, mappings go), then its remaining slots (copies of boot caps) are emptied.
fn cleanup(env: &mut Env, mark: u64) -> Result<(), Fail> {
    let r = ROOT_CNODE
        .revoke(env.ut.0, D)
        .ctx("cleanup: revoke the case's untyped");
    let end = env.slots.mark();
    for s in mark..end {
        let _ = ROOT_CNODE.delete(s, D);
    }
    env.slots.rewind(mark);
    r
}
