//! The state region: round trips under random guest activity, a crash at every store of a
//! commit, corruption, and the restart protocol's promises (an edge delivered once, the
//! timer's state and the exit records kept).
extern crate std;

use proptest::prelude::*;
use std::vec;
use std::vec::Vec;

use super::region::{REGION_WORDS, Words};
use super::*;
use crate::pl011::{ICR, IMSC, INT_ALL, LCR_H, LCR_H_FEN};
use crate::vgic::VTIMER_INTID;
use axolotl_abi::syndrome::ec;
use axolotl_fdt::{Gic, Pl011 as Pl011Node, Region};

const UART: u64 = 0x0900_0000;
const GICD: u64 = 0x0800_0000;
const GICR: u64 = 0x080A_0000;
const RAM: u64 = 0x4000_0000;
/// The plain resume a maintenance or VPPI exit gets.
const RESUME: Reply = Reply::Resume {
    advance: false,
    write: None,
    wait: false,
};

/// Memory that stops storing after `left` stores, as a VMM dying there would.
#[derive(Clone)]
pub(super) struct Mem {
    pub words: Vec<u64>,
    pub left: usize,
    pub stores: usize,
}

impl Mem {
    pub fn new() -> Self {
        Mem {
            words: vec![0; REGION_WORDS],
            left: usize::MAX,
            stores: 0,
        }
    }
}

impl Words for Mem {
    fn word_count(&self) -> usize {
        self.words.len()
    }
    fn load(&self, i: usize) -> u64 {
        self.words[i]
    }
    fn store(&mut self, i: usize, v: u64) {
        if self.left == 0 {
            return;
        }
        self.left -= 1;
        self.stores += 1;
        self.words[i] = v;
    }
}

pub(super) fn layout(v3: bool) -> Layout {
    let gic = if v3 {
        Gic::V3 {
            distributor: Region::new(GICD, 0x1_0000),
            redistributor: Region::new(GICR, 0x2_0000 * 8),
        }
    } else {
        Gic::qemu_virt_v2()
    };
    Layout {
        gic,
        uart: Pl011Node::qemu_virt(),
        ram_base: RAM,
        ram_size: 0x1000_0000,
    }
}

pub(super) type TestVm = Vm<Vec<u8>>;

pub(super) fn new_vm(v3: bool, nr_vcpus: usize) -> TestVm {
    Vm::new(layout(v3), nr_vcpus, 4, Vec::new()).unwrap()
}

fn recover(mem: &mut Mem, v3: bool, nr_vcpus: usize) -> Result<TestVm, StateError> {
    let mut r = StateRegion::new(mem)?;
    Vm::recover(&mut r, layout(v3), nr_vcpus, 4, Vec::new())
}

/// Every chunk's encoding: two VMs with equal snapshots are the same machine.
pub(super) fn snapshot(vm: &TestVm) -> Vec<u64> {
    let used = vm.used_chunks();
    let mut out = Vec::new();
    for id in (0..chunk::COUNT).filter(|id| used & (1 << id) != 0) {
        let mut buf = [0u64; chunk::MAX_LEN];
        vm.encode_chunk(id, &mut buf[..chunk::len(id)]);
        out.extend_from_slice(&buf[..chunk::len(id)]);
    }
    out
}

/// Data-abort syndrome: ISV, `size` bytes, register `srt`, Xn, stage-2 fault L3.
fn dabt(size: u8, srt: u64, write: bool) -> u64 {
    let sas = size.trailing_zeros() as u64;
    0x9300_0007 | (sas << 22) | (srt << 16) | (1 << 15) | if write { 1 << 6 } else { 0 }
}

fn hvc() -> u64 {
    ((ec::HVC64 as u64) << 26) | (1 << 25)
}

fn sgi1r_esr(rt: u64) -> u64 {
    ((ec::SYSREG as u64) << 26)
        | (1 << 25)
        | (3 << 20)
        | (5 << 17)
        | (12 << 10)
        | (rt << 5)
        | (11 << 1)
}

/// One thing the guest or the outside world does, as the VMM sees it.
#[derive(Debug, Clone)]
pub(super) enum Op {
    Mmio {
        vcpu: usize,
        ipa: u64,
        size: u8,
        srt: u64,
        write: bool,
        value: u64,
    },
    Hvc {
        vcpu: usize,
        x: [u64; 4],
    },
    Sgi {
        vcpu: usize,
        value: u64,
    },
    Vppi {
        vcpu: usize,
    },
    /// Lists what is deliverable; `refuse` of them (by position) come back refused.
    Inject {
        vcpu: usize,
        refuse: u8,
    },
    Maintenance {
        vcpu: usize,
        lr: usize,
    },
    Input {
        byte: u8,
    },
    /// `len` bytes of console input at once, as a serial buffer brings them: past the
    /// FIFO onto the line.
    Burst {
        first: u8,
        len: u16,
    },
}

fn gic_offset() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        (0x80u64..0x100).prop_map(|o| o & !3),
        (0x100u64..0x480).prop_map(|o| o & !3),
        (0xC00u64..0xC10).prop_map(|o| o & !3),
        (0x6100u64..0x6140).prop_map(|o| o & !7),
        (0xF00u64..0xF30).prop_map(|o| o & !3),
    ]
}

fn redist_offset() -> impl Strategy<Value = u64> {
    (
        0usize..2,
        prop_oneof![
            Just(0x14u64),
            (0x1_0080u64..0x1_0480).prop_map(|o| o & !3),
            (0x1_0C00u64..0x1_0C08).prop_map(|o| o & !3),
        ],
    )
        .prop_map(|(v, o)| v as u64 * 0x2_0000 + o)
}

fn uart_offset() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(LCR_H),
        Just(IMSC),
        Just(ICR),
        Just(0x18u64),
        Just(0x3Cu64),
        (0u64..0x50).prop_map(|o| o & !3),
    ]
}

/// Values that switch things on more often than uniform ones would.
fn value() -> impl Strategy<Value = u64> {
    prop_oneof![
        any::<u64>(),
        Just(0xFFFF_FFFFu64),
        Just(3u64),
        Just(u64::from(LCR_H_FEN)),
        Just(u64::from(INT_ALL)),
        (0u64..8).prop_map(|i| 1 << i),
        (0u64..4).prop_map(|i| 0xA0 | (i << 24)),
    ]
}

pub(super) fn op(nr_vcpus: usize) -> impl Strategy<Value = Op> {
    let vcpu = 0..nr_vcpus;
    let mmio = (
        vcpu.clone(),
        prop_oneof![
            gic_offset().prop_map(|o| GICD + o),
            redist_offset().prop_map(|o| GICR + o),
            uart_offset().prop_map(|o| UART + o),
        ],
        prop_oneof![Just(4u8), Just(4u8), Just(1), Just(8)],
        0u64..32,
        any::<bool>(),
        value(),
    )
        .prop_map(|(vcpu, ipa, size, srt, write, value)| Op::Mmio {
            vcpu,
            ipa,
            size,
            srt,
            write,
            value,
        });
    let fid = prop_oneof![
        Just(0x8400_0000u64),
        Just(0xC400_0003),
        Just(0x8400_0002),
        Just(0xC400_0004),
        Just(0xC400_0001),
    ];
    let hvc = (
        vcpu.clone(),
        fid,
        0u64..3,
        prop_oneof![Just(RAM), Just(RAM + 2), Just(0)],
        any::<u64>(),
    )
        .prop_map(|(vcpu, f, a1, a2, a3)| Op::Hvc {
            vcpu,
            x: [f, a1, a2, a3],
        });
    prop_oneof![
        4 => mmio,
        1 => hvc,
        1 => (vcpu.clone(), 0u64..16, 0u64..4).prop_map(|(vcpu, sgi, t)| Op::Sgi {
            vcpu,
            value: (sgi << 24) | t
        }),
        1 => vcpu.clone().prop_map(|vcpu| Op::Vppi { vcpu }),
        2 => (vcpu.clone(), 0u8..4).prop_map(|(vcpu, refuse)| Op::Inject { vcpu, refuse }),
        2 => (vcpu.clone(), 0usize..5).prop_map(|(vcpu, lr)| Op::Maintenance { vcpu, lr }),
        1 => any::<u8>().prop_map(|byte| Op::Input { byte }),
        1 => (any::<u8>(), 0u16..300).prop_map(|(first, len)| Op::Burst { first, len }),
    ]
}

/// Runs `op`; returns everything the VMM would tell the kernel or log, to compare machines.
pub(super) fn run(vm: &mut TestVm, op: &Op) -> Vec<u64> {
    let mut out = Vec::new();
    let reply = |r: Reply, e: Option<Event>, out: &mut Vec<u64>| {
        out.extend_from_slice(&super::codec::encode_reply(&r));
        out.extend_from_slice(&super::codec::encode_event(&e));
    };
    match *op {
        Op::Mmio {
            vcpu,
            ipa,
            size,
            srt,
            write,
            value,
        } => {
            let (r, e) = vm.vm_fault(vcpu, ipa, false, dabt(size, srt, write), value);
            reply(r, e, &mut out);
        }
        Op::Hvc { vcpu, x } => {
            let (r, e) = vm.vcpu_fault(vcpu, hvc(), 0, x, 0);
            reply(r, e, &mut out);
        }
        Op::Sgi { vcpu, value } => {
            let (r, e) = vm.vcpu_fault(vcpu, sgi1r_esr(1), 0, [0; 4], value);
            reply(r, e, &mut out);
        }
        Op::Vppi { vcpu } => vm.vppi(vcpu, VTIMER_INTID),
        Op::Inject { vcpu, refuse } => {
            let got: Vec<_> = vm.injections(vcpu).collect();
            for (i, (lr, inj)) in got.iter().enumerate() {
                out.extend_from_slice(&[*lr as u64, u64::from(inj.intid), u64::from(inj.source)]);
                if i < refuse as usize {
                    vm.injection_failed(vcpu, *lr);
                }
            }
        }
        Op::Maintenance { vcpu, lr } => {
            out.push(vm.maintenance(vcpu, lr).map_or(0, u64::from));
        }
        Op::Input { byte } => out.push(u64::from(vm.console_input(byte))),
        Op::Burst { first, len } => {
            let taken = (0..len)
                .take_while(|&i| vm.console_input(first.wrapping_add(i as u8)))
                .count();
            out.push(taken as u64);
        }
    }
    out
}

/// After a commit the image is exactly the live state: dirty tracking missed nothing.
fn assert_image_is_live(vm: &TestVm, mem: &mut Mem) {
    let r = StateRegion::new(mem).unwrap();
    let used = vm.used_chunks();
    for id in (0..chunk::COUNT).filter(|id| used & (1 << id) != 0) {
        let len = chunk::len(id);
        let mut live = [0u64; chunk::MAX_LEN];
        vm.encode_chunk(id, &mut live[..len]);
        let mut img = [0u64; chunk::MAX_LEN];
        r.read(id, &mut img[..len]).unwrap();
        assert_eq!(live[..len], img[..len], "chunk {id} not committed");
    }
}

fn formatted(vm: &mut TestVm) -> Mem {
    let mut mem = Mem::new();
    let mut r = StateRegion::new(&mut mem).unwrap();
    vm.persist_format(&mut r);
    mem
}

fn commit(vm: &mut TestVm, mem: &mut Mem) -> usize {
    let mut r = StateRegion::new(mem).unwrap();
    vm.commit(&mut r)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// Random activity with a commit after each step; the VMM restarted at the end is the
    /// same machine: same state, and the same answers to the same further activity.
    #[test]
    fn recovered_vm_behaves_as_the_original(
        v3 in any::<bool>(),
        nr_vcpus in 1usize..3,
        ops in prop::collection::vec(op(2), 1..60),
        more in prop::collection::vec(op(2), 1..30),
    ) {
        let mut vm = new_vm(v3, nr_vcpus);
        let mut mem = formatted(&mut vm);
        let clamp = |o: &Op| clamp_vcpu(o, nr_vcpus);
        for o in ops.iter().map(clamp) {
            run(&mut vm, &o);
            commit(&mut vm, &mut mem);
            assert_image_is_live(&vm, &mut mem);
        }
        let mut back = recover(&mut mem, v3, nr_vcpus).unwrap();
        prop_assert_eq!(snapshot(&back), snapshot(&vm));
        let before = vm.uart.sink().len();
        for o in more.iter().map(clamp) {
            prop_assert_eq!(run(&mut back, &o), run(&mut vm, &o), "{:?}", o);
        }
        prop_assert_eq!(back.uart.sink().as_slice(), &vm.uart.sink()[before..]);
        prop_assert_eq!(snapshot(&back), snapshot(&vm));
    }

    /// A VMM dying after any number of a commit's stores (and again while recovering)
    /// leaves the state as before the step or as after it, never a mix.
    #[test]
    fn a_crash_at_any_store_recovers_before_or_after(
        v3 in any::<bool>(),
        ops in prop::collection::vec(op(2), 1..30),
        last in prop::collection::vec(op(2), 1..4),
    ) {
        let nr_vcpus = 2;
        let mut vm = new_vm(v3, nr_vcpus);
        let mut mem = formatted(&mut vm);
        for o in &ops {
            run(&mut vm, o);
            commit(&mut vm, &mut mem);
        }
        let before = snapshot(&vm);
        for o in &last {
            run(&mut vm, o);
        }
        let after = snapshot(&vm);
        let mut probe = mem.clone();
        probe.stores = 0;
        let mut v = recover(&mut mem.clone(), v3, nr_vcpus).unwrap();
        for o in &last {
            run(&mut v, o);
        }
        let n = commit(&mut v, &mut probe);
        let total = probe.stores;
        prop_assert!(n == 0 || total > 0);
        for k in 0..=total {
            let mut m = mem.clone();
            m.left = k;
            let mut v = recover(&mut mem.clone(), v3, nr_vcpus).unwrap();
            for o in &last {
                run(&mut v, o);
            }
            commit(&mut v, &mut m);
            m.left = usize::MAX;
            // The restarted VMM may die too, in the middle of replaying the journal.
            let mut twice = m.clone();
            twice.left = k / 2;
            let _ = recover(&mut twice, v3, nr_vcpus);
            twice.left = usize::MAX;
            for mm in [&mut m, &mut twice] {
                let got = snapshot(&recover(mm, v3, nr_vcpus).unwrap());
                prop_assert!(got == before || got == after, "k = {} of {}", k, total);
                if k == 0 {
                    prop_assert!(got == before);
                }
                if k == total {
                    prop_assert!(got == after);
                }
            }
        }
    }

    /// Any single bit flipped anywhere in the region: refused, or harmless (scratch words
    /// such as an idle journal) and then the state is exactly the committed one.
    #[test]
    fn a_flipped_bit_is_refused_or_harmless(
        v3 in any::<bool>(),
        ops in prop::collection::vec(op(1), 1..40),
        word in 0usize..REGION_WORDS,
        bit in 0u32..64,
    ) {
        let mut vm = new_vm(v3, 1);
        let mut mem = formatted(&mut vm);
        for o in &ops {
            run(&mut vm, o);
            commit(&mut vm, &mut mem);
        }
        mem.words[word] ^= 1 << bit;
        if let Ok(back) = recover(&mut mem, v3, 1) {
            prop_assert_eq!(snapshot(&back), snapshot(&vm));
        }
    }

    /// Random damage to a chunk's payload that keeps its checksum valid (a VMM bug writing
    /// garbage and committing it) is still refused unless the models could hold it.
    #[test]
    fn well_summed_garbage_never_panics_and_is_refused_unless_canonical(
        v3 in any::<bool>(),
        id_pick in 0usize..64,
        at in 0usize..64,
        garbage in any::<u64>(),
    ) {
        let mut vm = new_vm(v3, 2);
        let mut mem = formatted(&mut vm);
        let used = vm.used_chunks();
        let id = id_pick % chunk::COUNT;
        prop_assume!(used & (1 << id) != 0);
        let len = chunk::len(id);
        let mut payload = [0u64; chunk::MAX_LEN];
        vm.encode_chunk(id, &mut payload[..len]);
        payload[at % len] = garbage;
        {
            let mut r = StateRegion::new(&mut mem).unwrap();
            let mut t = r.begin();
            for (i, w) in payload[..len].iter().enumerate() {
                t.put(id, i, *w);
            }
            t.finish();
        }
        if let Ok(back) = recover(&mut mem, v3, 2) {
            // Accepted: then it is exactly what was written.
            let mut again = [0u64; chunk::MAX_LEN];
            back.encode_chunk(id, &mut again[..len]);
            prop_assert_eq!(&again[..len], &payload[..len]);
        }
    }
}

fn clamp_vcpu(o: &Op, n: usize) -> Op {
    let mut o = o.clone();
    match &mut o {
        Op::Mmio { vcpu, .. }
        | Op::Hvc { vcpu, .. }
        | Op::Sgi { vcpu, .. }
        | Op::Vppi { vcpu }
        | Op::Inject { vcpu, .. }
        | Op::Maintenance { vcpu, .. } => *vcpu %= n,
        Op::Input { .. } | Op::Burst { .. } => {}
    }
    o
}

#[test]
fn region_refusals() {
    let mut vm = new_vm(true, 1);
    // Too small.
    let mut short = vec![0u64; REGION_WORDS - 1];
    assert!(matches!(
        StateRegion::new(short.as_mut_slice()),
        Err(StateError::TooSmall)
    ));
    // Never formatted.
    let mut blank = Mem::new();
    assert_eq!(
        recover(&mut blank, true, 1).err(),
        Some(StateError::Unformatted)
    );
    let mem = formatted(&mut vm);
    // Another guest: vCPU count, GIC version.
    assert_eq!(
        recover(&mut mem.clone(), true, 2).err(),
        Some(StateError::ConfigMismatch)
    );
    assert_eq!(
        recover(&mut mem.clone(), false, 1).err(),
        Some(StateError::ConfigMismatch)
    );
    // Another layout version, with a header checksum that holds.
    let mut other = mem.clone();
    other.words[1] = region::VERSION + 1;
    let sum = (1..15)
        .map(|i| other.words[i])
        .fold(region::Sum::new(region::MAGIC), region::Sum::add)
        .get();
    other.words[15] = sum;
    assert_eq!(
        recover(&mut other, true, 1).err(),
        Some(StateError::Version(region::VERSION + 1))
    );
    // The same with the checksum left as it was.
    let mut other = mem.clone();
    other.words[1] = region::VERSION + 1;
    assert_eq!(
        recover(&mut other, true, 1).err(),
        Some(StateError::HeaderChecksum)
    );
    // Truncated: the image's end zeroed (a region mapped shorter than it was written).
    let mut cut = mem.clone();
    for w in &mut cut.words[REGION_WORDS / 2..] {
        *w = 0;
    }
    assert!(recover(&mut cut, true, 1).is_err());
    // Intact: accepted.
    assert!(recover(&mut mem.clone(), true, 1).is_ok());
}

#[test]
fn a_crashed_format_is_unformatted() {
    let mut vm = new_vm(false, 1);
    let mut probe = Mem::new();
    {
        let mut r = StateRegion::new(&mut probe).unwrap();
        vm.persist_format(&mut r);
    }
    for k in [0, 1, probe.stores / 2, probe.stores - 1] {
        let mut m = Mem::new();
        m.left = k;
        let mut r = StateRegion::new(&mut m).unwrap();
        vm.persist_format(&mut r);
        m.left = usize::MAX;
        assert_eq!(
            recover(&mut m, false, 1).err(),
            Some(StateError::Unformatted)
        );
    }
}

const REGION_BYTES_DOCUMENTED: usize = 0x1_1000;

/// docs/vmm.md and the SDF give this size: a layout change must change them too.
#[test]
fn region_size_is_the_documented_one() {
    assert_eq!(super::REGION_BYTES, REGION_BYTES_DOCUMENTED);
    const { assert!(REGION_WORDS * 8 <= super::REGION_BYTES) };
}

/// An exit as the kernel delivers it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Exit {
    Store { ipa: u64, value: u64 },
    Sgi1r(u64),
    Vppi,
    Maintenance(usize),
}

/// Where the VMM dies while handling an exit.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Death {
    Never,
    /// After this many stores of the commit.
    InCommit(usize),
    /// Committed, no kernel call made.
    AfterCommit,
    /// Injected and acknowledged, not replied.
    BeforeReply,
}

/// The kernel's side: list registers as `VcpuInjectIrq` and the guest leave them.
#[derive(Default)]
struct Kernel {
    lrs: [[Option<u32>; 4]; 2],
    acks: usize,
}

impl Kernel {
    /// `VcpuInjectIrq`: DeleteFirst when the list register is taken, IllegalOperation
    /// when another holds the same virq (docs/abi.md).
    fn inject(&mut self, vcpu: usize, lr: usize, intid: u32) -> Result<(), &'static str> {
        if self.lrs[vcpu][lr].is_some() {
            return Err("DeleteFirst");
        }
        if self.lrs[vcpu].contains(&Some(intid)) {
            return Err("IllegalOperation");
        }
        self.lrs[vcpu][lr] = Some(intid);
        Ok(())
    }
}

/// The exit loop of docs/vmm.md ("Restart"), dying where `death` says. True if it replied.
fn handle(
    vm: &mut TestVm,
    mem: &mut Mem,
    k: &mut Kernel,
    vcpu: usize,
    seq: u64,
    exit: Exit,
    death: Death,
) -> bool {
    if let Some(rec) = vm.committed_exit(vcpu, seq) {
        if rec.ack_vppi.is_some() {
            k.acks += 1;
        }
        return true;
    }
    let (reply, event, ack_vppi) = match exit {
        Exit::Store { ipa, value } => {
            let (r, e) = vm.vm_fault(vcpu, ipa, false, dabt(4, 1, true), value);
            (r, e, None)
        }
        Exit::Sgi1r(value) => {
            let (r, e) = vm.vcpu_fault(vcpu, sgi1r_esr(1), 0, [0; 4], value);
            (r, e, None)
        }
        Exit::Vppi => {
            vm.vppi(vcpu, VTIMER_INTID);
            (RESUME, None, None)
        }
        Exit::Maintenance(lr) => (RESUME, None, vm.maintenance(vcpu, lr)),
    };
    let record = ExitRecord {
        seq,
        reply,
        event,
        ack_vppi,
    };
    let injections: Vec<_> = vm.injections(vcpu).collect();
    if let Death::InCommit(n) = death {
        mem.left = n;
    }
    vm.commit_exit(&mut StateRegion::new(mem).unwrap(), vcpu, &record);
    mem.left = usize::MAX;
    if matches!(death, Death::InCommit(_) | Death::AfterCommit) {
        return false;
    }
    for (lr, inj) in injections {
        if k.inject(vcpu, lr, inj.intid).is_err() {
            vm.injection_failed(vcpu, lr);
        }
    }
    if ack_vppi.is_some() {
        k.acks += 1;
    }
    death == Death::Never
}

/// A restarted VMM: recover, then write again what the committed list registers hold
/// ([`Vm::to_relist`]), given the exit each vCPU is blocked in (`pending`: vCPU, seq, exit).
fn restart(
    mem: &mut Mem,
    k: &mut Kernel,
    v3: bool,
    nr_vcpus: usize,
    pending: &[(usize, u64, Exit)],
) -> TestVm {
    let vm = recover(mem, v3, nr_vcpus).unwrap();
    for v in 0..nr_vcpus {
        let maintenance = pending.iter().find_map(|&(pv, seq, e)| match e {
            Exit::Maintenance(lr) if pv == v => Some((seq, lr)),
            _ => None,
        });
        for (lr, inj) in vm.to_relist(v, maintenance) {
            match k.inject(v, lr, inj.intid) {
                Ok(()) | Err("DeleteFirst") => {}
                Err(e) => panic!("relisting LR {lr} of vCPU {v}: {e}"),
            }
        }
    }
    vm
}

/// The guest takes and completes everything in vCPU `v`'s list registers, each completion
/// a maintenance exit; returns how often it took each INTID.
fn guest_drains(
    vm: &mut TestVm,
    mem: &mut Mem,
    k: &mut Kernel,
    v: usize,
    seq: &mut u64,
) -> std::collections::BTreeMap<u32, usize> {
    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..16 {
        let Some(lr) = k.lrs[v].iter().position(Option::is_some) else {
            break;
        };
        let intid = k.lrs[v][lr].take().unwrap();
        *seen.entry(intid).or_default() += 1;
        *seq += 1;
        assert!(handle(
            vm,
            mem,
            k,
            v,
            *seq,
            Exit::Maintenance(lr),
            Death::Never
        ));
    }
    seen
}

fn enable_all(v3: bool) -> Vec<Exit> {
    let mut e = vec![
        Exit::Store {
            ipa: GICD,
            value: 3,
        },
        // SPI 40 edge-triggered, enabled.
        Exit::Store {
            ipa: GICD + 0xC08,
            value: 2 << 16,
        },
        Exit::Store {
            ipa: GICD + 0x104,
            value: 1 << 8,
        },
    ];
    if v3 {
        e.push(Exit::Store {
            ipa: GICR + 0x1_0100,
            value: 0xFFFF_FFFF,
        });
        e.push(Exit::Store {
            ipa: GICR + 0x1_0080,
            value: 0xFFFF_FFFF,
        });
    } else {
        e.push(Exit::Store {
            ipa: GICD + 0x100,
            value: 0xFFFF_FFFF,
        });
        e.push(Exit::Store {
            ipa: GICD + 0x80,
            value: 0,
        });
    }
    e
}

/// An edge-triggered interrupt raised by the exit the VMM dies in, or pending when it
/// dies, is delivered after the restart exactly once, wherever the VMM died.
#[test]
fn an_edge_pending_at_the_failure_is_delivered_exactly_once() {
    for v3 in [false, true] {
        // An SGI to itself (GICv3 ICC_SGI1R, GICv2 GICD_SGIR "this CPU only"), and an
        // ISPENDR write on edge SPI 40.
        let sgi = if v3 {
            Exit::Sgi1r(5 << 24 | 1)
        } else {
            Exit::Store {
                ipa: GICD + 0xF00,
                value: 2 << 24 | 5,
            }
        };
        let spi = Exit::Store {
            ipa: GICD + 0x204,
            value: 1 << 8,
        };
        for (exit, intid) in [(sgi, 5u32), (spi, 40)] {
            let mut deaths = vec![Death::AfterCommit, Death::BeforeReply];
            deaths.extend((0..160).map(Death::InCommit));
            for death in deaths {
                let mut vm = new_vm(v3, 1);
                let mut mem = formatted(&mut vm);
                let mut k = Kernel::default();
                let mut seq = 0;
                for e in enable_all(v3) {
                    seq += 1;
                    assert!(handle(&mut vm, &mut mem, &mut k, 0, seq, e, Death::Never));
                }
                seq += 1;
                let replied = handle(&mut vm, &mut mem, &mut k, 0, seq, exit, death);
                assert!(!replied);
                drop(vm);
                let mut vm = restart(&mut mem, &mut k, v3, 1, &[(0, seq, exit)]);
                // The kernel re-delivers the exit the vCPU is blocked in.
                assert!(handle(
                    &mut vm,
                    &mut mem,
                    &mut k,
                    0,
                    seq,
                    exit,
                    Death::Never
                ));
                let seen = guest_drains(&mut vm, &mut mem, &mut k, 0, &mut seq);
                assert_eq!(
                    seen.get(&intid),
                    Some(&1),
                    "v3 {v3} {exit:?} {death:?}: {seen:?}"
                );
                assert_eq!(seen.len(), 1, "{seen:?}");
            }
        }
    }
}

/// The guest's timer across a restart: its interrupt delivered once, its physical PPI
/// acknowledged (unmasked) once the guest completed it, even when the VMM dies between
/// that completion's commit and its `VcpuAckVppi`; its vGIC state otherwise untouched.
#[test]
fn the_virtual_timer_goes_on() {
    for v3 in [false, true] {
        let mut deaths = vec![Death::AfterCommit, Death::BeforeReply];
        deaths.extend((0..120).map(Death::InCommit));
        for death in deaths {
            for die_in_completion in [false, true] {
                let mut vm = new_vm(v3, 1);
                let mut mem = formatted(&mut vm);
                let mut k = Kernel::default();
                let mut seq = 0;
                for e in enable_all(v3) {
                    seq += 1;
                    assert!(handle(&mut vm, &mut mem, &mut k, 0, seq, e, Death::Never));
                }
                let timer_before = *vm.vgic.irq(0, VTIMER_INTID).unwrap();
                seq += 1;
                let mut pending = Exit::Vppi;
                if die_in_completion {
                    assert!(handle(
                        &mut vm,
                        &mut mem,
                        &mut k,
                        0,
                        seq,
                        Exit::Vppi,
                        Death::Never
                    ));
                    let lr = k.lrs[0]
                        .iter()
                        .position(|l| *l == Some(VTIMER_INTID))
                        .unwrap();
                    k.lrs[0][lr] = None;
                    seq += 1;
                    pending = Exit::Maintenance(lr);
                }
                assert!(!handle(&mut vm, &mut mem, &mut k, 0, seq, pending, death));
                let mut vm = restart(&mut mem, &mut k, v3, 1, &[(0, seq, pending)]);
                assert!(handle(
                    &mut vm,
                    &mut mem,
                    &mut k,
                    0,
                    seq,
                    pending,
                    Death::Never
                ));
                let seen = guest_drains(&mut vm, &mut mem, &mut k, 0, &mut seq);
                let taken =
                    seen.get(&VTIMER_INTID).copied().unwrap_or(0) + usize::from(die_in_completion);
                assert_eq!(
                    taken, 1,
                    "v3 {v3} {death:?} in completion {die_in_completion}"
                );
                assert!(k.acks >= 1, "the PPI stays masked: v3 {v3} {death:?}");
                let timer = *vm.vgic.irq(0, VTIMER_INTID).unwrap();
                assert_eq!(timer, timer_before, "v3 {v3} {death:?}");
            }
        }
    }
}

/// A committed exit is answered from its record, with the same reply; an exit that was
/// not committed is handled as new.
#[test]
fn committed_exits_are_answered_not_handled_again() {
    let mut vm = new_vm(true, 2);
    let mut mem = formatted(&mut vm);
    let on = ExitRecord {
        seq: 9,
        reply: Reply::Resume {
            advance: true,
            write: Some((0, 0)),
            wait: false,
        },
        event: Some(Event::PowerOn {
            vcpu: 1,
            entry: RAM,
            context_id: 7,
        }),
        ack_vppi: None,
    };
    let (r, e) = vm.vcpu_fault(0, hvc(), 0, [0xC400_0003, 1, RAM, 7], 0);
    assert_eq!((r, e), (on.reply, on.event));
    vm.record_exit(0, on);
    commit(&mut vm, &mut mem);
    let mut back = recover(&mut mem, true, 2).unwrap();
    assert_eq!(back.committed_exit(0, 9), Some(on));
    assert_eq!(back.committed_exit(0, 10), None);
    assert_eq!(back.committed_exit(1, 9), None);
    // Handled again instead, CPU_ON would now fail: ALREADY_ON.
    let (r, _) = back.vcpu_fault(0, hvc(), 0, [0xC400_0003, 1, RAM, 7], 0);
    assert_eq!(
        r,
        Reply::Resume {
            advance: true,
            write: Some((0, -4i64 as u64)),
            wait: false
        }
    );
}

/// A WFI changes no state, so its exit is not recorded (`Vm::commit`): the restarted VMM
/// handles the re-sent exit again, and the vCPU waits again rather than spinning.
#[test]
fn a_wfi_handled_again_after_a_recovery_waits_again() {
    let mut vm = new_vm(true, 2);
    let mut mem = formatted(&mut vm);
    let wfi = 0x0200_0000 | (1 << 26);
    let (r, e) = vm.vcpu_fault(0, wfi, 0, [0; 4], 0);
    assert_eq!((r, e), (Reply::WAIT, Some(Event::Idle)));
    vm.record_exit(
        0,
        ExitRecord {
            seq: 4,
            reply: r,
            event: e,
            ack_vppi: None,
        },
    );
    commit(&mut vm, &mut mem);
    let mut back = recover(&mut mem, true, 2).unwrap();
    assert_eq!(back.committed_exit(0, 4), None);
    assert_eq!(back.vcpu_fault(0, wfi, 0, [0; 4], 0), (r, e));
}

/// What a commit adds to the VMM's side of an exit, on the host (release build):
/// `cargo test --release -p axolotl-vmm-core commit_cost -- --ignored --nocapture` prints
/// times; for instruction counts run the test binary under `valgrind --tool=callgrind` with
/// `COMMIT_COST=case,commit,n` (case 0..3, commit 0/1) for two values of n and divide the
/// difference (docs/vmm.md, "Cost").
#[test]
#[ignore]
fn commit_cost() {
    use std::time::Instant;
    let console = Exit::Store {
        ipa: UART,
        value: u64::from(b'x'),
    };
    let gicd = Exit::Store {
        ipa: GICD + 0x104,
        value: 1 << 8,
    };
    let cases: [(&str, &[Exit]); 3] = [
        ("console byte (PL011 DR store)", &[console]),
        (
            "timer tick (VPPI, then its completion)",
            &[Exit::Vppi, Exit::Maintenance(0)],
        ),
        ("GICD ISENABLER store", &[gicd]),
    ];
    let only: Option<Vec<usize>> = std::env::var("COMMIT_COST")
        .ok()
        .map(|v| v.split(',').map(|x| x.parse().unwrap()).collect());
    for (i, (name, exits)) in cases.into_iter().enumerate() {
        for with_commit in [false, true] {
            let mut n = 200_000u64;
            if let Some(o) = &only {
                if o[0] != i || (o[1] == 1) != with_commit {
                    continue;
                }
                n = o[2] as u64;
            }
            let mut vm = new_vm(true, 1);
            let mut mem = formatted(&mut vm);
            let mut k = Kernel::default();
            let mut seq = 0;
            for e in enable_all(true) {
                seq += 1;
                handle(&mut vm, &mut mem, &mut k, 0, seq, e, Death::Never);
            }
            let mut words = vec![0u64; REGION_WORDS];
            let mut region = StateRegion::new(words.as_mut_slice()).unwrap();
            vm.persist_format(&mut region);
            let mut stores = 0;
            let t = Instant::now();
            for _ in 0..n {
                for &e in exits {
                    seq += 1;
                    let (reply, event, ack_vppi) = match e {
                        Exit::Store { ipa, value } => {
                            let (r, ev) = vm.vm_fault(0, ipa, false, dabt(4, 1, true), value);
                            (r, ev, None)
                        }
                        Exit::Vppi => {
                            vm.vppi(0, VTIMER_INTID);
                            (RESUME, None, None)
                        }
                        Exit::Maintenance(lr) => (RESUME, None, vm.maintenance(0, lr)),
                        Exit::Sgi1r(_) => unreachable!(),
                    };
                    let mut injected = 0;
                    for (_lr, inj) in vm.injections(0) {
                        injected += inj.intid;
                    }
                    std::hint::black_box(injected);
                    if with_commit {
                        let record = ExitRecord {
                            seq,
                            reply,
                            event,
                            ack_vppi,
                        };
                        stores += vm.commit_exit(&mut region, 0, &record);
                    }
                    vm.uart.sink_mut().clear();
                }
            }
            let per = (n as f64) * exits.len() as f64;
            std::println!(
                "{name}: {:.0} ns per exit {} (chunks written per exit {:.2})",
                t.elapsed().as_nanos() as f64 / per,
                if with_commit {
                    "with commit"
                } else {
                    "without"
                },
                stores as f64 / per
            );
        }
    }
}

/// (chunk id, word) of snapshot word `i` of a two-vCPU VM.
fn where_is(v3: bool, mut i: usize) -> usize {
    let vm = new_vm(v3, 2);
    let used = vm.used_chunks();
    for id in (0..chunk::COUNT).filter(|id| used & (1 << id) != 0) {
        if i < chunk::len(id) {
            return id * 1000 + i;
        }
        i -= chunk::len(id);
    }
    usize::MAX
}

/// One step of the machine for [`a_restart_anywhere_is_invisible`].
#[derive(Debug, Clone, Copy)]
enum Step {
    Exit(usize, Exit),
    /// The guest on this vCPU completes the interrupt in its first occupied list register.
    Complete(usize),
    Input(u8),
}

fn step() -> impl Strategy<Value = Step> {
    let store = prop_oneof![
        // Enables, pending bits, edge configuration, SGIR, priorities, the UART.
        (0u64..3).prop_map(|r| (GICD + 0x100 + 4 * r, u64::MAX)),
        (0u64..3).prop_map(|r| (GICD + 0x200 + 4 * r, 0x0100_0000u64)),
        Just((GICD + 0x208, 1u64 << 8)),
        Just((GICD + 0xC08, 0xAAAA_AAAAu64)),
        (0u64..16).prop_map(|s| (GICD + 0xF00, (1u64 << 24) | s)),
        (0u64..16).prop_map(|s| (GICD + 0xF00, (2u64 << 24) | s)),
        Just((UART + IMSC, u64::from(INT_ALL))),
        Just((UART + LCR_H, u64::from(LCR_H_FEN))),
        Just((UART, u64::from(b'x'))),
    ];
    prop_oneof![
        3 => (0usize..2, store).prop_map(|(v, (ipa, value))| Step::Exit(v, Exit::Store { ipa, value })),
        1 => (0usize..2, 0u64..16, 1u64..4).prop_map(|(v, s, t)| Step::Exit(v, Exit::Sgi1r(s << 24 | t))),
        1 => (0usize..2).prop_map(|v| Step::Exit(v, Exit::Vppi)),
        3 => (0usize..2).prop_map(Step::Complete),
        1 => any::<u8>().prop_map(Step::Input),
    ]
}

/// Runs `steps`; if `death` is `(i, d)`, the VMM dies as `d` says in step `i` (an exit),
/// is restarted and the exit re-delivered. Returns the state and the kernel's LRs.
fn run_steps(
    v3: bool,
    steps: &[Step],
    death: Option<(usize, Death)>,
) -> (Vec<u64>, [[Option<u32>; 4]; 2]) {
    let mut vm = new_vm(v3, 2);
    let mut mem = formatted(&mut vm);
    let mut k = Kernel::default();
    let mut seq = [0u64; 2];
    for e in enable_all(v3) {
        seq[0] += 1;
        assert!(handle(
            &mut vm,
            &mut mem,
            &mut k,
            0,
            seq[0],
            e,
            Death::Never
        ));
    }
    for (i, s) in steps.iter().enumerate() {
        let (v, exit) = match *s {
            Step::Exit(v, e) => (v, e),
            Step::Complete(v) => {
                let Some(lr) = k.lrs[v].iter().position(Option::is_some) else {
                    continue;
                };
                k.lrs[v][lr] = None;
                (v, Exit::Maintenance(lr))
            }
            Step::Input(b) => {
                vm.console_input(b);
                let inj: Vec<_> = vm.injections(0).collect();
                commit(&mut vm, &mut mem);
                for (lr, x) in inj {
                    if k.inject(0, lr, x.intid).is_err() {
                        vm.injection_failed(0, lr);
                    }
                }
                continue;
            }
        };
        seq[v] += 1;
        match death {
            Some((at, d)) if at == i => {
                assert!(!handle(&mut vm, &mut mem, &mut k, v, seq[v], exit, d));
                vm = restart(&mut mem, &mut k, v3, 2, &[(v, seq[v], exit)]);
                assert!(handle(
                    &mut vm,
                    &mut mem,
                    &mut k,
                    v,
                    seq[v],
                    exit,
                    Death::Never
                ));
            }
            _ => assert!(handle(
                &mut vm,
                &mut mem,
                &mut k,
                v,
                seq[v],
                exit,
                Death::Never
            )),
        }
    }
    (snapshot(&vm), k.lrs)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Random guest activity on two vCPUs; the VMM dies once, at a random store of a
    /// random exit's commit, after it, or before the reply, and is restarted: the machine
    /// ends exactly as without the failure (state, exit records, the kernel's list
    /// registers).
    #[test]
    fn a_restart_anywhere_is_invisible(
        v3 in any::<bool>(),
        steps in prop::collection::vec(step(), 1..40),
        at in any::<prop::sample::Index>(),
        kind in 0usize..3,
        k in 0usize..120,
    ) {
        let reference = run_steps(v3, &steps, None);
        let at = at.index(steps.len());
        let death = [Death::InCommit(k), Death::AfterCommit, Death::BeforeReply][kind];
        let crashed = run_steps(v3, &steps, Some((at, death)));
        prop_assert_eq!(crashed.1, reference.1, "kernel LRs differ at step {} {:?} ({:?})", at, steps[at], death);
        let diff: Vec<(usize, u64, u64)> = crashed.0.iter().zip(&reference.0).enumerate()
            .filter(|(_, (a, b))| a != b).map(|(i, (a, b))| (where_is(v3, i), *a, *b)).collect();
        prop_assert!(diff.is_empty(), "state differs at step {} {:?} ({:?}): {:x?}", at, steps[at], death, diff);
    }
}
