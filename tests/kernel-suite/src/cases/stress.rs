//! Randomized invocation stress (issue #13): a thread with a CSpace of its own issues random
//! system calls — every invocation label and then some, on random capability addresses, with
//! random message words (boundary values among them) and random extra caps — seeded and so
//! reproducible. Invariants, checked as it goes and afterwards: every frame cap it holds names
//! memory inside the untyped its objects came from; memory it holds no cap to (a sentinel
//! frame, the boot info) is unchanged; and afterwards the kernel still does what it should
//! (the stress region is whole again once revoked, IPC and mapping work). The kernel's own
//! text and read-only data are mapped read-only at EL2, so a kernel write there is a kernel
//! fault, i.e. `KERNEL PANIC` on the console, which the integration test refuses.
//!
//! The stress thread blocks whenever a call blocks (a Call on an endpoint without receiver, a
//! Recv, a fault sent to its fault endpoint): a lower-priority thread, which therefore runs
//! exactly then, suspends it, moves its PC past the `svc` and resumes it.
//!
//! Short form: `STRESS_ITERATIONS` invocations in every `cargo xtask test`; the long form is
//! `cargo xtask test --stress-long` (README.md). The seed is printed; `AXOLOTL_STRESS_SEED`
//! (build time) replays one.

use crate::harness::{Ctx, D, Env, Fail, ROOT_CNODE, ROOT_VSPACE, set_shared, shared};
use axolotl_abi::bootinfo::init_cap;
use axolotl_abi::{
    MSG_MAX_EXTRA_CAPS, MSG_MAX_LENGTH, MessageInfo, ObjectType as T, Rights, Syscall,
    USER_CONTEXT_WORDS,
};
use axolotl_sys::{
    AsidControl, AsidPool, CNode, Endpoint, Frame, Notification, Tcb, Untyped, VSpace, println,
    syscall,
};

/// Parses a decimal or `0x` hexadecimal build-time setting.
const fn parse(s: Option<&str>, default: u64) -> u64 {
    let Some(s) = s else { return default };
    let b = s.as_bytes();
    let (mut i, radix) = if b.len() > 2 && b[0] == b'0' && (b[1] == b'x' || b[1] == b'X') {
        (2, 16)
    } else {
        (0, 10)
    };
    let mut v: u64 = 0;
    while i < b.len() {
        let d = match b[i] {
            c @ b'0'..=b'9' => (c - b'0') as u64,
            c @ b'a'..=b'f' if radix == 16 => (c - b'a' + 10) as u64,
            c @ b'A'..=b'F' if radix == 16 => (c - b'A' + 10) as u64,
            b'_' => {
                i += 1;
                continue;
            }
            _ => panic!("AXOLOTL_STRESS_*: not a number"),
        };
        v = v.wrapping_mul(radix).wrapping_add(d);
        i += 1;
    }
    v
}

/// Invocations of the run (`cargo xtask test --stress-long` sets many more).
pub const STRESS_ITERATIONS: u64 = parse(option_env!("AXOLOTL_STRESS_ITERATIONS"), 20_000);
pub const STRESS_SEED: u64 = parse(option_env!("AXOLOTL_STRESS_SEED"), 0x0a01_0713_5eed);
/// Invariant walks of the stress thread's CSpace, every this many invocations.
const CHECK_EVERY: u64 = 2_000;

/// The stress CSpace: 256 slots with a 56-bit guard, so an address is a slot number.
const SC_RADIX: u64 = 8;
const SC_SLOTS: u64 = 1 << SC_RADIX;
const SC_GUARD: u64 = 64 - SC_RADIX;
/// Slots the setup fills (the rest start empty); random addresses favour them.
const POPULATED: u64 = 32;
const SLOT_SELF: u64 = 1;
/// More caps to the stress CNode: once the thread has deleted all of them it can neither
/// retype nor do CNode operations, and the rest of the run would find nothing to do.
const SELF_COPIES: [u64; 4] = [SLOT_SELF, 25, 26, 27];
/// Where the stress thread maps into its own VSpace.
const VA_WINDOW: u64 = 0x40_0000_0000;
/// The stress region: one untyped whose first half made the setup's objects and whose second
/// half the stress thread retypes from.
const REGION_BITS: u64 = 23;

/// What the unblocker puts in the skipped call's message info.
const UNBLOCKED: u64 = 0xb10c;
const SVC0: u32 = 0xd400_0001;

/// Shared words.
const S_SEED: usize = 0;
const S_REGION: usize = 1;
const S_DONE: usize = 2;
const S_FAIL: usize = 3;
const S_FAIL_SLOT: usize = 4;
const S_FAIL_VALUE: usize = 5;
const S_UNBLOCKS: usize = 6;
const S_TCB: usize = 7;
const S_DONE_EP: usize = 8;
const S_OK: usize = 9;
const S_ERRORS: usize = 10;
const FAIL_FRAME_OUTSIDE: u64 = 1;
const FAIL_NOT_AT_SVC: u64 = 2;
const FAIL_UNBLOCKER: u64 = 3;

/// The storm's generator: SplitMix64 (small, fast, every seed a full-period sequence) and
/// what the stress thread believes each of its slots holds, learnt from the calls that
/// succeeded, so that shaped calls find caps of the right kind wherever they went.
pub struct Rng {
    state: u64,
    kinds: [u8; SC_SLOTS as usize],
}

/// Slot kinds: an object type's number, or one of these.
const K_EMPTY: u8 = 0xff;
const K_SELF: u8 = 0x40;
const K_CONTROL: u8 = 0x41;
const K_POOL: u8 = 0x42;

impl Rng {
    pub fn new(seed: u64) -> Rng {
        let mut kinds = [K_EMPTY; SC_SLOTS as usize];
        for (slot, kind) in SETUP_KINDS.iter().chain(&MORE_SETUP_KINDS) {
            kinds[*slot as usize] = *kind;
        }
        Rng { state: seed, kinds }
    }
    pub fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// A capability address: mostly the populated slots, then any slot, then garbage.
    fn cptr(&mut self) -> u64 {
        match self.below(100) {
            0..65 => self.below(POPULATED),
            65..90 => self.below(SC_SLOTS),
            _ => self.boundary(),
        }
    }

    fn boundary(&mut self) -> u64 {
        const B: [u64; 14] = [
            0,
            1,
            2,
            63,
            64,
            65,
            255,
            256,
            4095,
            4096,
            1 << 32,
            1 << 63,
            u64::MAX - 1,
            u64::MAX,
        ];
        B[self.below(B.len() as u64) as usize]
    }

    /// A message word: slot numbers, depths, types, sizes, addresses, rights, boundaries.
    fn word(&mut self) -> u64 {
        match self.below(12) {
            0 => self.boundary(),
            1 => self.below(POPULATED),
            2 => self.below(SC_SLOTS),
            3 => [0, 1, 4, 7, 8, 9, 56, 63, 64, 65][self.below(10) as usize],
            4 => self.below(12),
            5 => self.below(40),
            6 => VA_WINDOW + (self.below(64) << 12),
            7 => VA_WINDOW + (self.below(8) << 21),
            8 => self.below(16),
            9 => self.below(1024),
            10 => self.next() & 0xffff_ffff,
            _ => self.next(),
        }
    }
}

/// What the setup puts where (`random_invocations`).
const SETUP_KINDS: [(u64, u8); 24] = [
    (SLOT_SELF, K_SELF),
    (25, K_SELF),
    (26, K_SELF),
    (27, K_SELF),
    (2, T::Untyped as u8),
    (3, K_CONTROL),
    (4, K_POOL),
    (5, T::VSpace as u8),
    (6, T::Tcb as u8),
    (7, T::Tcb as u8),
    (8, T::Endpoint as u8),
    (9, T::Endpoint as u8),
    (10, T::Endpoint as u8),
    (11, T::Endpoint as u8),
    (12, T::Notification as u8),
    (13, T::Notification as u8),
    (14, T::Notification as u8),
    (15, T::Notification as u8),
    (16, T::CNode as u8),
    (17, T::SmallFrame as u8),
    (18, T::SmallFrame as u8),
    (19, T::PageTable as u8),
    (20, T::PageTable as u8),
    (21, T::VSpace as u8),
];
const MORE_SETUP_KINDS: [(u64, u8); 3] = [
    (22, T::Vcpu as u8),
    (23, T::Untyped as u8),
    (24, T::LargeFrame as u8),
];

const UNTYPEDS: [u8; 1] = [T::Untyped as u8];
const TCBS: [u8; 1] = [T::Tcb as u8];
const ENDPOINTS: [u8; 1] = [T::Endpoint as u8];
const NOTIFICATIONS: [u8; 1] = [T::Notification as u8];
const CNODES: [u8; 2] = [K_SELF, T::CNode as u8];
const SELF: [u8; 1] = [K_SELF];
const FRAMES: [u8; 2] = [T::SmallFrame as u8, T::LargeFrame as u8];
const PAGE_TABLES: [u8; 1] = [T::PageTable as u8];
const VSPACES: [u8; 1] = [T::VSpace as u8];
const VCPUS: [u8; 1] = [T::Vcpu as u8];
const ASID_CONTROLS: [u8; 1] = [K_CONTROL];
const ASID_POOLS: [u8; 1] = [K_POOL];

impl Rng {
    /// A slot believed to hold one of `kinds`, now and then any address.
    fn pick(&mut self, kinds: &[u8]) -> u64 {
        if self.chance(85) {
            let start = self.below(SC_SLOTS) as usize;
            for i in 0..SC_SLOTS as usize {
                let s = (start + i) % SC_SLOTS as usize;
                if kinds.contains(&self.kinds[s]) {
                    return s as u64;
                }
            }
        }
        self.cptr()
    }

    fn kind(&self, slot: u64) -> u8 {
        self.kinds.get(slot as usize).copied().unwrap_or(K_EMPTY)
    }

    fn set_kind(&mut self, slot: u64, kind: u8) {
        if let Some(k) = self.kinds.get_mut(slot as usize) {
            *k = kind;
        }
    }

    /// Learns from a successful invocation where caps went (only what is certain from the
    /// arguments; revokes and the rest leave the map as it is).
    fn learn(&mut self, label: u64, cap: u64, w: &[u64; 8], c: &[u64; 3]) {
        use axolotl_abi::Invocation as I;
        let own = |r: &Rng, slot: u64| r.kind(slot) == K_SELF;
        match I::from_label(label) {
            Some(I::UntypedRetype) if own(self, c[0]) && w[3] == 0 => {
                for s in w[4]..w[4].saturating_add(w[5]).min(SC_SLOTS) {
                    self.set_kind(s, w[0] as u8);
                }
            }
            Some(l @ (I::CNodeCopy | I::CNodeMint | I::CNodeMove | I::CNodeMutate))
                if own(self, cap) && own(self, c[0]) && w[1] == 64 && w[3] == 64 =>
            {
                let k = match self.kind(w[2]) {
                    // New data is a new guard: no longer the CSpace's root as it was.
                    K_SELF if l != I::CNodeCopy => T::CNode as u8,
                    k => k,
                };
                self.set_kind(w[0], k);
                if matches!(l, I::CNodeMove | I::CNodeMutate) {
                    self.set_kind(w[2], K_EMPTY);
                }
            }
            Some(I::CNodeRotate)
                if own(self, cap) && own(self, c[0]) && own(self, c[1]) && w[1] == 64 =>
            {
                let data = |k: u8| if k == K_SELF { T::CNode as u8 } else { k };
                let (pivot, src) = (data(self.kind(w[2])), data(self.kind(w[5])));
                self.set_kind(w[5], K_EMPTY);
                self.set_kind(w[0], pivot);
                self.set_kind(w[2], src);
            }
            Some(I::CNodeDelete) if own(self, cap) && w[1] == 64 => self.set_kind(w[0], K_EMPTY),
            Some(I::AsidControlMakePool) if own(self, c[0]) && w[1] == 64 => {
                self.set_kind(w[0], K_POOL)
            }
            _ => {}
        }
    }

    /// A destination slot: mostly an empty one above the setup's.
    fn dest(&mut self) -> u64 {
        if self.chance(80) {
            POPULATED + self.below(SC_SLOTS - POPULATED)
        } else {
            self.cptr()
        }
    }
}

/// A well-formed invocation of `label` on a cap of the right kind (as the setup placed
/// them): (cap, words, extra caps). The caller then breaks one argument now and then.
fn shaped(rng: &mut Rng, label: u64) -> (u64, [u64; 8], [u64; 3], u64, u64) {
    use axolotl_abi::Invocation as I;
    let mut w = [0u64; 8];
    let mut c = [rng.pick(&SELF), 0, 0];
    let va = VA_WINDOW + (rng.below(512) << 12);
    let (cap, len, extra) = match I::from_label(label) {
        Some(I::UntypedRetype) => {
            let ty = rng.below(10);
            w[0] = ty;
            w[1] = match ty {
                0 => 12 + rng.below(6),
                4 => 1 + rng.below(6),
                _ => 0,
            };
            w[4] = rng.dest();
            w[5] = 1 + rng.below(3);
            (rng.pick(&UNTYPEDS), 6, 1)
        }
        Some(I::TcbReadRegisters) => {
            w[0] = rng.below(2);
            w[2] = 1 + rng.below(USER_CONTEXT_WORDS as u64);
            (rng.pick(&TCBS), 3, 0)
        }
        Some(I::TcbWriteRegisters) => {
            w[0] = rng.below(2);
            w[2] = rng.below(6);
            for x in &mut w[3..] {
                *x = rng.word();
            }
            (rng.pick(&TCBS), 3 + w[2], 0)
        }
        Some(I::TcbConfigure | I::TcbSetSpace) => {
            w[0] = if rng.chance(50) {
                0
            } else {
                rng.pick(&ENDPOINTS)
            };
            w[1] = if rng.chance(50) { 0 } else { SC_GUARD };
            w[3] = rng.below(8) << 9;
            c = [rng.pick(&CNODES), rng.pick(&VSPACES), rng.pick(&FRAMES)];
            let configure = label == I::TcbConfigure as u64;
            (
                rng.pick(&TCBS),
                if configure { 4 } else { 3 },
                if configure { 3 } else { 2 },
            )
        }
        Some(I::TcbSetPriority | I::TcbSetMcPriority) => {
            w[0] = rng.below(4);
            c[0] = rng.pick(&TCBS);
            (rng.pick(&TCBS), 1, 1)
        }
        Some(I::TcbSetIpcBuffer) => {
            w[0] = rng.below(8) << 9;
            c[0] = rng.pick(&FRAMES);
            (rng.pick(&TCBS), 1, 1)
        }
        Some(I::TcbBindNotification) => {
            c[0] = rng.pick(&NOTIFICATIONS);
            (rng.pick(&TCBS), 0, 1)
        }
        Some(I::TcbSetTimerAccess) => {
            w[0] = rng.below(2);
            c[0] = rng.cptr();
            (rng.pick(&TCBS), 1, 1)
        }
        Some(I::TcbSuspend | I::TcbResume | I::TcbUnbindNotification | I::TcbGetCpuTime) => {
            (rng.pick(&TCBS), 0, 0)
        }
        Some(I::CNodeDelete | I::CNodeRevoke | I::CNodeCancelBadgedSends) => {
            // Deleting the setup's caps at full rate would leave nothing to invoke.
            w[0] = if rng.chance(20) {
                rng.below(POPULATED)
            } else {
                rng.dest()
            };
            w[1] = 64;
            (rng.pick(&CNODES), 2, 0)
        }
        Some(I::CNodeCopy | I::CNodeMint | I::CNodeMove | I::CNodeMutate) => {
            w[0] = rng.dest();
            w[1] = 64;
            w[2] = rng.below(POPULATED + 16);
            w[3] = 64;
            w[4] = rng.below(16);
            w[5] = rng.below(4);
            (rng.pick(&CNODES), 6, 1)
        }
        Some(I::CNodeRotate) => {
            w[0] = rng.dest();
            w[1] = 64;
            w[2] = rng.below(POPULATED + 16);
            w[3] = 64;
            w[4] = 0;
            w[5] = rng.below(POPULATED + 16);
            w[6] = 64;
            w[7] = 0;
            c[1] = rng.pick(&SELF);
            (rng.pick(&CNODES), 8, 2)
        }
        Some(I::PageTableMap) => {
            w[0] = va & !((1 << 21) - 1);
            c[0] = rng.pick(&VSPACES);
            (rng.pick(&PAGE_TABLES), 2, 1)
        }
        Some(I::PageTableUnmap) => (rng.pick(&PAGE_TABLES), 0, 0),
        Some(I::PageMap) => {
            w[0] = va;
            w[1] = rng.below(8);
            w[2] = rng.below(4);
            c[0] = rng.pick(&VSPACES);
            (rng.pick(&FRAMES), 3, 1)
        }
        Some(I::PageUnmap | I::PageGetAddress) => (rng.pick(&FRAMES), 0, 0),
        Some(I::AsidControlMakePool) => {
            w[0] = rng.dest();
            w[1] = 64;
            (rng.pick(&ASID_CONTROLS), 2, 1)
        }
        Some(I::AsidPoolAssign) => {
            c[0] = rng.pick(&VSPACES);
            (rng.pick(&ASID_POOLS), 0, 1)
        }
        Some(I::VSpaceCleanData | I::VSpaceUnifyInstruction) => {
            w[0] = va;
            w[1] = va + 1 + rng.below(3 << 12);
            (rng.pick(&VSPACES), 2, 0)
        }
        Some(I::IrqControlGet | I::IrqHandlerAck | I::IrqHandlerClear) => {
            w[0] = rng.below(300);
            (rng.cptr(), 4, 1)
        }
        Some(I::IrqHandlerSetNotification) => {
            c[0] = rng.pick(&NOTIFICATIONS);
            (rng.cptr(), 0, 1)
        }
        Some(I::IrqHandlerSetDeadline) => {
            // 0 (cancel), long past (fires at once), or any word.
            w[0] = [0, 1, rng.word()][rng.below(3) as usize];
            (rng.cptr(), 1, 0)
        }
        // The stress CSpace holds no domain cap (it would reshape the suite's schedule):
        // these reach other caps' decoders only, which refuse them.
        Some(I::DomainSetSet | I::DomainSetSchedule) => {
            w[0] = rng.below(20);
            c[0] = rng.pick(&TCBS);
            (rng.cptr(), 1, 1)
        }
        Some(I::VcpuSetTcb) => {
            c[0] = rng.pick(&TCBS);
            (rng.pick(&VCPUS), 0, 1)
        }
        Some(I::VcpuInjectIrq) => {
            w[0] = rng.below(1024);
            w[1] = rng.below(256);
            w[2] = rng.below(2);
            w[3] = rng.below(16);
            (rng.pick(&VCPUS), 4, 0)
        }
        Some(I::VcpuReadReg | I::VcpuWriteReg | I::VcpuAckVppi) => {
            w[0] = rng.below(40);
            w[1] = rng.word();
            (rng.pick(&VCPUS), 2, 0)
        }
        None => (rng.cptr(), rng.below(8), 0),
    };
    (cap, w, c, len, extra)
}

/// One random system call; returns whether an invocation succeeded.
fn random_call(rng: &mut Rng) -> bool {
    let label = match rng.below(20) {
        0 => rng.word(),
        1 => 0,
        _ => 1 + rng.below(39),
    };
    let (mut cap, mut w, mut c, mut len, mut extra) = shaped(rng, label);
    if rng.chance(35) {
        // Noise: any cap, any words, any extra caps and lengths.
        cap = rng.cptr();
        for x in &mut w {
            *x = rng.word();
        }
        for x in &mut c {
            *x = rng.cptr();
        }
        if rng.chance(30) {
            len = rng.below(MSG_MAX_LENGTH as u64 + 8);
            extra = rng.below(MSG_MAX_EXTRA_CAPS as u64 + 1);
        }
    } else if rng.chance(40) {
        // One broken argument: the rejection path of a single check.
        match rng.below(4) {
            0 => w[rng.below(8) as usize] = rng.boundary(),
            1 => c[rng.below(3) as usize] = rng.cptr(),
            2 => len = rng.below(len.max(1)),
            _ => cap = rng.cptr(),
        }
    }
    for (i, x) in w.iter().enumerate().skip(4) {
        axolotl_sys::ipc::set_mr(i, *x);
    }
    for (i, x) in c.iter().enumerate() {
        axolotl_sys::ipc::set_cap(i, *x);
    }
    // Unwrapped-caps bits are the kernel's to set: random ones too.
    let info = MessageInfo::new(label, rng.below(2), extra, len).word();
    let nr = match rng.below(100) {
        0..80 => Syscall::Call,
        80..85 => Syscall::Send,
        85..88 => Syscall::NBSend,
        88..90 => Syscall::Recv,
        90..93 => Syscall::NBRecv,
        93..95 => Syscall::Poll,
        95..97 => Syscall::Signal,
        97 => Syscall::Wait,
        98 => Syscall::ReplyRecv,
        _ => Syscall::Reply,
    };
    let m = syscall::raw_syscall(nr as u64, cap, info, [w[0], w[1], w[2], w[3]]);
    let ok = nr == Syscall::Call && m.info.label() == 0;
    if ok {
        rng.learn(label, cap, &w, &c);
    }
    ok
}

/// Calls PageGetAddress on every slot: a frame must lie inside the region. Endpoints block
/// the call; the unblocker skips it.
fn check_frames() -> Result<(), (u64, u64)> {
    let (base, bits) = (shared(S_REGION), REGION_BITS);
    for slot in 0..SC_SLOTS {
        let m = syscall::call(
            slot,
            MessageInfo::new(axolotl_abi::Invocation::PageGetAddress as u64, 0, 0, 0),
            [0; 4],
        );
        if m.info.label() == 0 && m.info.length() == 1 {
            let pa = m.mrs[0];
            if pa < base || pa >= base + (1 << bits) || !pa.is_multiple_of(4096) {
                return Err((slot, pa));
            }
        }
    }
    Ok(())
}

/// The stress thread: the storm, with a frame walk every `CHECK_EVERY` calls and at the end.
fn stress_thread(_: u64) {
    let mut rng = Rng::new(shared(S_SEED));
    let (mut ok, mut errors) = (0u64, 0u64);
    let mut failed = None;
    for i in 0..STRESS_ITERATIONS {
        if random_call(&mut rng) {
            ok += 1;
        } else {
            errors += 1;
        }
        if (i + 1) % CHECK_EVERY == 0
            && let Err(e) = check_frames()
        {
            failed = Some(e);
            break;
        }
    }
    if failed.is_none()
        && let Err(e) = check_frames()
    {
        failed = Some(e);
    }
    if let Some((slot, pa)) = failed {
        set_shared(S_FAIL_SLOT, slot);
        set_shared(S_FAIL_VALUE, pa);
        set_shared(S_FAIL, FAIL_FRAME_OUTSIDE);
    }
    set_shared(S_OK, ok);
    set_shared(S_ERRORS, errors);
    set_shared(S_DONE, 1);
    syscall::thread_exit()
}

fn fail_unblock(what: u64, value: u64) {
    set_shared(S_FAIL_VALUE, value);
    set_shared(S_FAIL, what);
    syscall::send(shared(S_DONE_EP), MessageInfo::new(0, 0, 0, 0), [0; 4]);
}

/// Runs only while the stress thread cannot (it has the higher priority): moves it past the
/// call it is blocked in, or reports that it finished.
fn unblocker(_: u64) {
    let s = Tcb(shared(S_TCB));
    loop {
        if shared(S_DONE) != 0 {
            syscall::send(shared(S_DONE_EP), MessageInfo::new(0, 0, 0, 0), [0; 4]);
            return;
        }
        if s.suspend().is_err() {
            return fail_unblock(FAIL_UNBLOCKER, 1);
        }
        let Ok(mut regs) = s.read_registers(false, 0, USER_CONTEXT_WORDS) else {
            return fail_unblock(FAIL_UNBLOCKER, 2);
        };
        // SAFETY: the stress thread runs the suite's code, mapped readable in this VSpace.
        let insn = unsafe { core::ptr::read_volatile(regs.pc as *const u32) };
        if insn != SVC0 {
            // Blocked anywhere but a system call: a fault of the stress code itself.
            return fail_unblock(FAIL_NOT_AT_SVC, regs.pc);
        }
        regs.pc += 4;
        regs.x[0] = 0;
        regs.x[1] = MessageInfo::new(UNBLOCKED, 0, 0, 0).word();
        if s.write_registers(true, 0, USER_CONTEXT_WORDS, &regs)
            .is_err()
        {
            return fail_unblock(FAIL_UNBLOCKER, 3);
        }
        set_shared(S_UNBLOCKS, shared(S_UNBLOCKS) + 1);
    }
}

fn checksum(words: *const u64, n: usize) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for i in 0..n {
        // SAFETY: the caller names mapped, readable memory.
        let w = unsafe { core::ptr::read_volatile(words.add(i)) };
        h = (h ^ w).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Sets the stress world up, runs the storm, checks what it left.
pub fn random_invocations(env: &mut Env) -> Result<(), Fail> {
    let seed = STRESS_SEED;
    println!("kernel-suite: stress seed {seed:#x}, {STRESS_ITERATIONS} invocations");
    set_shared(S_SEED, seed);

    // The region: its first object is a frame at its base, which gives the range.
    let region = Untyped(env.alloc(T::Untyped, REGION_BITS)?);
    let objs = Untyped(env.slot()?);
    region
        .retype(T::Untyped, REGION_BITS - 1, ROOT_CNODE, 0, 0, objs.0, 1)
        .ctx("retype the objects' half")?;
    let su = Untyped(env.slot()?);
    region
        .retype(T::Untyped, REGION_BITS - 1, ROOT_CNODE, 0, 0, su.0, 1)
        .ctx("retype the stress half")?;
    let probe = Frame(env.slot()?);
    objs.retype(T::SmallFrame, 0, ROOT_CNODE, 0, 0, probe.0, 1)
        .ctx("probe frame")?;
    let base = probe.get_address().ctx("probe address")?;
    set_shared(S_REGION, base);

    // The stress CSpace, outside the region so no revoke inside it takes the CSpace away;
    // given a guard, the slot number is the whole address.
    let sc_raw = env.alloc(T::CNode, SC_RADIX)?;
    let sc = CNode(env.slot()?);
    ROOT_CNODE
        .mutate(sc.0, D, ROOT_CNODE, sc_raw, D, SC_GUARD)
        .ctx("guard the stress CNode")?;
    let put = |slot: u64, src: u64| -> Result<(), Fail> {
        sc.move_(slot, D, ROOT_CNODE, src, D)
            .map_err(|e| fail!("move into stress slot {slot}: {e:?}"))
    };
    let copy = |slot: u64, src: u64| -> Result<(), Fail> {
        sc.copy(slot, D, ROOT_CNODE, src, D, Rights::ALL)
            .map_err(|e| fail!("copy into stress slot {slot}: {e:?}"))
    };
    for slot in SELF_COPIES {
        copy(slot, sc.0)?;
    }
    copy(2, su.0)?;
    copy(3, init_cap::ASID_CONTROL)?;
    let pool = AsidPool(env.slot()?);
    AsidControl(init_cap::ASID_CONTROL)
        .make_pool(ROOT_CNODE, pool.0, D)
        .ctx("MakePool")?;
    let mk = |env: &mut Env, ty: T, bits: u64| -> Result<u64, Fail> {
        let s = env.slot()?;
        objs.retype(ty, bits, ROOT_CNODE, 0, 0, s, 1)
            .map_err(|e| fail!("retype {ty:?}: {e:?}"))?;
        Ok(s)
    };
    let vs = VSpace(mk(env, T::VSpace, 0)?);
    pool.assign(vs).ctx("assign the stress VSpace")?;
    put(4, pool.0)?;
    put(5, vs.0)?;
    let mut slot = 6;
    for (ty, bits) in [
        (T::Tcb, 0),
        (T::Tcb, 0),
        (T::Endpoint, 0),
        (T::Endpoint, 0),
        (T::Notification, 0),
        (T::Notification, 0),
        (T::CNode, 4),
        (T::SmallFrame, 0),
        (T::SmallFrame, 0),
        (T::PageTable, 0),
        (T::PageTable, 0),
        (T::VSpace, 0),
        (T::Vcpu, 0),
        (T::Untyped, 16),
        // Last: 2 MiB aligned, it takes the half's second 2 MiB.
        (T::LargeFrame, 0),
    ] {
        let s = mk(env, ty, bits)?;
        if matches!(ty, T::Endpoint | T::Notification) {
            sc.mint(slot + 1, D, ROOT_CNODE, s, D, Rights::ALL, slot)
                .ctx("badged copy")?;
            put(slot, s)?;
            slot += 2;
        } else {
            put(slot, s)?;
            slot += 1;
        }
    }
    debug_assert!(slot <= POPULATED);

    // Memory no cap of the stress thread reaches: must read the same afterwards.
    let (sentinel, sv) = env.mapped_frame()?;
    for i in 0..512u64 {
        // SAFETY: the frame was just mapped read-write here.
        unsafe { core::ptr::write_volatile((sv as *mut u64).add(i as usize), i ^ seed) };
    }
    let bi = env.bi as *const _ as *const u64;
    let bi_words = core::mem::size_of::<axolotl_abi::BootInfo>() / 8;
    let bi_sum = checksum(bi, bi_words);
    let sentinel_sum = checksum(sv as *const u64, 512);

    let ep = env.endpoint()?;
    let fault_ep = env.endpoint()?;
    set_shared(S_DONE_EP, ep.0);
    let st = env.thread(stress_thread, 0, 100, 0)?;
    st.tcb
        .set_space(fault_ep.0, sc, 0, ROOT_VSPACE, 0)
        .ctx("the stress thread's CSpace")?;
    set_shared(S_TCB, st.tcb.0);
    let ub = env.thread(unblocker, 0, 90, 0)?;
    st.tcb.resume().ctx("resume the stress thread")?;
    ub.tcb.resume().ctx("resume the unblocker")?;
    let _ = ep.recv();
    let _ = st.tcb.suspend();
    let _ = ub.tcb.suspend();
    println!(
        "kernel-suite: stress: {} invocations succeeded, {} refused or not invocations, {} blocked calls skipped",
        shared(S_OK),
        shared(S_ERRORS),
        shared(S_UNBLOCKS)
    );
    match shared(S_FAIL) {
        0 => {}
        FAIL_FRAME_OUTSIDE => {
            return Err(fail!(
                "seed {seed:#x}: slot {} holds a frame at {:#x}, outside the region {base:#x} + 2^{REGION_BITS}",
                shared(S_FAIL_SLOT),
                shared(S_FAIL_VALUE)
            ));
        }
        FAIL_NOT_AT_SVC => {
            return Err(fail!(
                "seed {seed:#x}: the stress thread stopped outside a system call, pc {:#x}",
                shared(S_FAIL_VALUE)
            ));
        }
        f => {
            return Err(fail!(
                "seed {seed:#x}: unblocker failed ({f}, step {})",
                shared(S_FAIL_VALUE)
            ));
        }
    }
    ensure!(
        shared(S_DONE) == 1,
        "seed {seed:#x}: stress thread did not finish"
    );
    ensure_eq!(
        checksum(bi, bi_words),
        bi_sum,
        "boot info checksum after the storm"
    );
    ensure_eq!(
        checksum(sv as *const u64, 512),
        sentinel_sum,
        "sentinel frame checksum after the storm"
    );
    ensure_eq!(
        sentinel.get_address().is_ok(),
        true,
        "the sentinel frame cap after the storm"
    );

    // The kernel still answers correctly: the region, revoked, is whole again (nothing the
    // storm made survives, or its first frame would not be at the base again).
    ROOT_CNODE.revoke(region.0, D).ctx("revoke the region")?;
    let again = Frame(env.slot()?);
    region
        .retype(T::SmallFrame, 0, ROOT_CNODE, 0, 0, again.0, 1)
        .ctx("retype from the revoked region")?;
    ensure_eq!(
        again.get_address().ctx("address")?,
        base,
        "first frame of the revoked region"
    );
    let (f, v) = env.mapped_frame()?;
    // SAFETY: mapped read-write just now.
    unsafe { core::ptr::write_volatile(v as *mut u64, 0x600d) };
    ensure_eq!(
        // SAFETY: as above.
        unsafe { core::ptr::read_volatile(v as *const u64) },
        0x600d,
        "a fresh mapping after the storm"
    );
    f.unmap().ctx("unmap")?;
    let n = env.notification()?;
    let nb = Notification(env.mint(n.0, Rights::ALL, 0x42)?);
    nb.signal();
    ensure_eq!(n.poll(), 0x42, "a signal after the storm");
    let e2 = env.endpoint()?;
    set_shared(S_DONE_EP, e2.0);
    env.spawn(echo, e2.0, 100, 0)?;
    let m = Endpoint(e2.0).call(MessageInfo::new(7, 0, 0, 2), [0x11, 0x22, 0, 0]);
    ensure_eq!(
        (m.label(), m.mrs[0], m.mrs[1]),
        (8, 0x22, 0x11),
        "a call and its reply after the storm"
    );
    Ok(())
}

/// Answers one call: label + 1, the two words swapped.
fn echo(ep: u64) {
    let m = syscall::recv(ep);
    syscall::reply(
        MessageInfo::new(m.label() + 1, 0, 0, 2),
        [m.mrs[1], m.mrs[0], 0, 0],
    );
}
