//! The scheduler: 256 priorities, FIFO within a priority, round robin by timeslice, and
//! seL4's domains. Ready queues are intrusive lists through the TCBs, one set per domain,
//! and a two-level bitmap per domain finds the highest non-empty priority in two CLZs, as
//! seL4's does. Only the current domain's queues are looked at: a thread of another domain
//! waits, ready, until the domain schedule (`axolotl_kernel_core::domain`) reaches its
//! domain, whatever its priority.

use core::ptr::null_mut;

use axolotl_kernel_core::domain::DomainSchedule;

use crate::thread::{Tcb, ThreadState};

const PRIOS: usize = axolotl_abi::NUM_PRIORITIES;
const DOMAINS: usize = axolotl_abi::NUM_DOMAINS;

/// `repr(C)`, hot fields first and the 64 KiB of queue heads and tails last: every field the
/// fast paths read then sits within a load's immediate offset of the `Kernel`'s base (which
/// keeps the scheduler last for the same reason). Left to Rust's layout, the per-domain
/// arrays pushed them beyond it and cost every syscall an address computation.
#[repr(C)]
pub struct Scheduler {
    pub current: *mut Tcb,
    pub timeslice_ticks: u32,
    /// Bit w set when `bitmap[d][w]` is non-zero.
    top: [u64; DOMAINS],
    pub domains: DomainSchedule,
    /// Bit p of word w set when priority 64 * w + p of the domain has ready threads.
    bitmap: [[u64; PRIOS / 64]; DOMAINS],
    heads: [[*mut Tcb; PRIOS]; DOMAINS],
    tails: [[*mut Tcb; PRIOS]; DOMAINS],
}

impl Scheduler {
    pub const fn new(timeslice_ticks: u32) -> Self {
        Scheduler {
            current: null_mut(),
            timeslice_ticks,
            top: [0; DOMAINS],
            domains: DomainSchedule::new(),
            bitmap: [[0; PRIOS / 64]; DOMAINS],
            heads: [[null_mut(); PRIOS]; DOMAINS],
            tails: [[null_mut(); PRIOS]; DOMAINS],
        }
    }

    /// The domain whose threads may run now.
    pub fn domain(&self) -> u8 {
        self.domains.current()
    }

    /// Moves a thread to domain `d` (below `NUM_DOMAINS`): a ready one changes queues; the
    /// running one keeps the CPU only until the next scheduling decision if `d` is not
    /// the current domain.
    ///
    /// # Safety
    /// `t` is a live TCB.
    pub unsafe fn set_domain(&mut self, t: *mut Tcb, d: u8) {
        // SAFETY: forwarded to the caller.
        unsafe {
            if (*t).state == ThreadState::Ready {
                self.dequeue(t);
                (*t).domain = d;
                self.enqueue(t);
            } else {
                (*t).domain = d;
            }
        }
        self.leave_if_foreign();
    }

    /// Installs a domain schedule (`DomainSchedule::install`); its first entry's domain
    /// runs from now on.
    pub fn install_schedule(&mut self, words: impl Iterator<Item = u64>, tick_us: u64) {
        self.domains.install(words, tick_us);
        self.leave_if_foreign();
    }

    /// The running thread waits, ready, for its domain's turn if the current domain is no
    /// longer its own. Called where the domain or the thread's domain changes (a tick, a
    /// schedule, `set_domain`), so that `choose` — on every kernel exit — never has to ask.
    fn leave_if_foreign(&mut self) {
        let cur = self.current;
        if cur.is_null() {
            return;
        }
        // SAFETY: the current thread is live.
        let (state, domain) = unsafe { ((*cur).state, (*cur).domain) };
        if state == ThreadState::Running && domain != self.domain() {
            // SAFETY: as above; a running thread is in no queue.
            unsafe { self.enqueue(cur) };
            self.current = null_mut();
        }
    }

    /// Appends a thread to its priority's queue and marks it ready.
    ///
    /// # Safety
    /// `t` is a live TCB not already queued.
    pub unsafe fn enqueue(&mut self, t: *mut Tcb) {
        // SAFETY: forwarded to the caller.
        let tcb = unsafe { &mut *t };
        let p = tcb.priority as usize;
        let d = tcb.domain as usize % DOMAINS;
        tcb.state = ThreadState::Ready;
        tcb.next = null_mut();
        tcb.prev = self.tails[d][p];
        if self.tails[d][p].is_null() {
            self.heads[d][p] = t;
        } else {
            // SAFETY: queue members are live TCBs.
            unsafe { (*self.tails[d][p]).next = t };
        }
        self.tails[d][p] = t;
        self.bitmap[d][p / 64] |= 1 << (p % 64);
        self.top[d] |= 1 << (p / 64);
    }

    /// Removes a queued thread.
    ///
    /// # Safety
    /// `t` is a live TCB in its priority's queue.
    pub unsafe fn dequeue(&mut self, t: *mut Tcb) {
        // SAFETY: forwarded to the caller; neighbours are live queue members.
        unsafe {
            let tcb = &mut *t;
            let p = tcb.priority as usize;
            let d = tcb.domain as usize % DOMAINS;
            if tcb.prev.is_null() {
                self.heads[d][p] = tcb.next;
            } else {
                (*tcb.prev).next = tcb.next;
            }
            if tcb.next.is_null() {
                self.tails[d][p] = tcb.prev;
            } else {
                (*tcb.next).prev = tcb.prev;
            }
            tcb.next = null_mut();
            tcb.prev = null_mut();
            if self.heads[d][p].is_null() {
                self.bitmap[d][p / 64] &= !(1 << (p % 64));
                if self.bitmap[d][p / 64] == 0 {
                    self.top[d] &= !(1 << (p / 64));
                }
            }
        }
    }

    /// Highest ready priority of the current domain, if any of its threads is ready.
    pub fn highest_ready(&self) -> Option<u8> {
        let d = self.domain() as usize;
        if self.top[d] == 0 {
            return None;
        }
        let w = 63 - self.top[d].leading_zeros() as usize;
        let b = 63 - self.bitmap[d][w].leading_zeros() as usize;
        Some((w * 64 + b) as u8)
    }

    /// Picks the thread to run next: the current one keeps the CPU unless a thread of
    /// higher priority is ready, or `yielding` and one of equal priority is. A current
    /// thread is always of the current domain (`leave_if_foreign`).
    ///
    /// # Safety
    /// All queued and current TCBs are live.
    pub unsafe fn choose(&mut self, yielding: bool) -> *mut Tcb {
        let cur = self.current;
        // SAFETY: forwarded to the caller.
        let cur_runnable = !cur.is_null() && unsafe { (*cur).state } == ThreadState::Running;
        let best = self.highest_ready();
        if cur_runnable {
            // SAFETY: as above.
            let cp = unsafe { (*cur).priority };
            match best {
                Some(b) if b > cp || (yielding && b == cp) => {
                    // SAFETY: as above; the current thread goes to the back of its queue.
                    unsafe { self.enqueue(cur) };
                }
                _ => return cur,
            }
        }
        let Some(p) = self.highest_ready() else {
            self.current = null_mut();
            return null_mut();
        };
        let next = self.heads[self.domain() as usize][p as usize];
        // SAFETY: heads of non-empty queues are live TCBs.
        unsafe {
            self.dequeue(next);
            (*next).state = ThreadState::Running;
            if (*next).timeslice == 0 {
                (*next).timeslice = self.timeslice_ticks;
            }
        }
        self.current = next;
        next
    }

    /// Takes a thread out of scheduling (suspend, fault, exit).
    ///
    /// # Safety
    /// `t` is a live TCB.
    pub unsafe fn make_inactive(&mut self, t: *mut Tcb) {
        // SAFETY: forwarded to the caller.
        unsafe {
            if (*t).state == ThreadState::Ready {
                self.dequeue(t);
            }
            (*t).state = ThreadState::Inactive;
        }
        if self.current == t {
            self.current = null_mut();
        }
    }

    /// Accounts one timer tick to the domain schedule and the running thread; true when
    /// its timeslice or its domain's time ran out.
    pub fn tick(&mut self) -> bool {
        if self.domains.tick() {
            self.leave_if_foreign();
            return true;
        }
        if self.current.is_null() {
            return false;
        }
        // SAFETY: the current thread is live.
        let t = unsafe { &mut *self.current };
        t.timeslice = t.timeslice.saturating_sub(1);
        if t.timeslice == 0 {
            t.timeslice = self.timeslice_ticks;
            return true;
        }
        false
    }
}

#[cfg(all(test, not(target_os = "none")))]
mod tests {
    // The scheduler is exercised in QEMU by the kernel test suite; these host tests pin the
    // queue and bitmap logic, which the arch code does not touch.
    use super::*;
    use std::boxed::Box;

    fn tcb(prio: u8, id: u32) -> *mut Tcb {
        #[repr(C, align(2048))]
        struct Mem([u8; 2048]);
        let m = Box::leak(Box::new(Mem([0; 2048])));
        // SAFETY: a zeroed, 2 KiB-aligned block leaked for the test's lifetime.
        let t = unsafe { Tcb::init_object(m as *mut Mem as u64, id) };
        // SAFETY: t was just initialised in that block.
        unsafe { (*t).priority = prio };
        t
    }

    #[test]
    fn highest_priority_first_and_round_robin_on_yield() {
        let mut s = Scheduler::new(5);
        let (a, b, c) = (tcb(10, 1), tcb(10, 2), tcb(200, 3));
        // SAFETY: the threads are leaked, so live; each is queued at most once.
        unsafe {
            s.enqueue(a);
            s.enqueue(b);
            assert_eq!(s.choose(false), a);
            s.enqueue(c);
            assert_eq!(s.choose(false), c, "higher priority preempts");
            s.make_inactive(c);
            assert_eq!(s.choose(false), b, "a went to the back when preempted");
            assert_eq!(s.choose(true), a, "yield rotates within the priority");
            assert_eq!(s.choose(false), a, "no yield, no switch");
            s.make_inactive(a);
            assert_eq!(s.choose(false), b);
            s.make_inactive(b);
            assert!(s.choose(false).is_null());
            assert_eq!(s.highest_ready(), None);
        }
    }

    #[test]
    fn bitmap_covers_all_priorities() {
        let mut s = Scheduler::new(1);
        for p in [0u8, 63, 64, 127, 128, 255] {
            let t = tcb(p, p as u32);
            // SAFETY: a live thread in no queue.
            unsafe { s.enqueue(t) };
            assert_eq!(s.highest_ready(), Some(p));
            // SAFETY: the same thread, now queued.
            unsafe { s.dequeue(t) };
            assert_eq!(s.highest_ready(), None);
        }
    }

    #[test]
    fn only_the_current_domain_runs() {
        use axolotl_abi::domain_entry;
        let mut s = Scheduler::new(100);
        let (low0, high1) = (tcb(1, 1), tcb(200, 2));
        // SAFETY: the threads are leaked, so live; each is queued at most once.
        unsafe {
            s.set_domain(high1, 1);
            s.enqueue(low0);
            s.enqueue(high1);
            assert_eq!(
                s.choose(false),
                low0,
                "domain 0 runs first, whatever the priority"
            );
            // Two ticks of domain 0, one of domain 1.
            s.install_schedule([domain_entry(0, 2), domain_entry(1, 1)].into_iter(), 1);
            assert_eq!(s.choose(false), low0);
            assert!(!s.tick());
            assert!(s.tick(), "domain 0's time is up");
            assert_eq!(s.choose(false), high1);
            assert!(s.tick());
            assert_eq!(s.choose(false), low0, "high1 waits for domain 1's turn");
            assert_eq!(s.highest_ready(), None, "domain 0 has nothing else ready");
            // Moving a ready thread moves it between domains' queues.
            s.set_domain(high1, 0);
            assert_eq!(s.choose(false), high1);
            s.set_domain(high1, 3);
            assert_eq!(s.choose(false), low0, "the running thread left the domain");
        }
    }

    #[test]
    fn timeslice_expires() {
        let mut s = Scheduler::new(2);
        let a = tcb(1, 1);
        // SAFETY: a live thread in no queue.
        unsafe {
            s.enqueue(a);
            s.choose(false);
        }
        assert!(!s.tick());
        assert!(s.tick());
    }
}
