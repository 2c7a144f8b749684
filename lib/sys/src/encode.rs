//! Invocation encoding: what message each object method sends (label, words, extra caps),
//! as pure functions so that the host tests can check them against docs/abi.md.

use crate::context::UserContext;
use axolotl_abi::{CPtr, Invocation, MessageInfo, Rights, USER_CONTEXT_WORDS};

/// Longest invocation message (TcbWriteRegisters: 3 words + the whole context).
pub const MAX_INVOCATION_WORDS: usize = 3 + USER_CONTEXT_WORDS;

/// One invocation, ready to send: `mrs[..len]` are its message registers, `caps[..ncaps]`
/// the capability addresses of its extra caps. `N` is the most words the method sends, so
/// that building one costs its own words, not the longest message's: invocations sit on the
/// restart path and on every guest exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Encoded<const N: usize> {
    pub label: u64,
    pub mrs: [u64; N],
    pub len: usize,
    pub caps: [CPtr; 3],
    pub ncaps: usize,
}

impl<const N: usize> Encoded<N> {
    #[inline]
    pub fn new(label: Invocation, words: [u64; N], caps: &[CPtr]) -> Self {
        Self::raw(label as u64, words, caps)
    }

    /// Any label, to test how the kernel treats labels it does not know.
    #[inline]
    pub fn raw(label: u64, words: [u64; N], caps: &[CPtr]) -> Self {
        let mut c = [0; 3];
        c[..caps.len()].copy_from_slice(caps);
        Encoded {
            label,
            mrs: words,
            len: N,
            caps: c,
            ncaps: caps.len(),
        }
    }

    #[inline]
    pub fn info(&self) -> MessageInfo {
        MessageInfo::new(self.label, 0, self.ncaps as u64, self.len as u64)
    }

    pub fn words(&self) -> &[u64] {
        &self.mrs[..self.len]
    }

    /// The same message cut to `len` words and `ncaps` caps, to provoke TruncatedMessage.
    pub fn truncated(mut self, len: usize, ncaps: usize) -> Self {
        self.len = self.len.min(len);
        self.ncaps = self.ncaps.min(ncaps);
        self
    }
}

use Invocation as I;

#[allow(clippy::too_many_arguments)]
pub fn untyped_retype(
    object_type: u64,
    size_bits: u64,
    root: CPtr,
    node_index: u64,
    node_depth: u64,
    node_offset: u64,
    num_objects: u64,
) -> Encoded<6> {
    Encoded::new(
        I::UntypedRetype,
        [
            object_type,
            size_bits,
            node_index,
            node_depth,
            node_offset,
            num_objects,
        ],
        &[root],
    )
}

pub fn cnode_copy(
    dest_index: u64,
    dest_depth: u64,
    src_root: CPtr,
    src_index: u64,
    src_depth: u64,
    rights: Rights,
) -> Encoded<5> {
    Encoded::new(
        I::CNodeCopy,
        [
            dest_index,
            dest_depth,
            src_index,
            src_depth,
            rights.bits() as u64,
        ],
        &[src_root],
    )
}

#[allow(clippy::too_many_arguments)]
pub fn cnode_mint(
    dest_index: u64,
    dest_depth: u64,
    src_root: CPtr,
    src_index: u64,
    src_depth: u64,
    rights: Rights,
    badge: u64,
) -> Encoded<6> {
    Encoded::new(
        I::CNodeMint,
        [
            dest_index,
            dest_depth,
            src_index,
            src_depth,
            rights.bits() as u64,
            badge,
        ],
        &[src_root],
    )
}

pub fn cnode_move(
    dest_index: u64,
    dest_depth: u64,
    src_root: CPtr,
    src_index: u64,
    src_depth: u64,
) -> Encoded<4> {
    Encoded::new(
        I::CNodeMove,
        [dest_index, dest_depth, src_index, src_depth],
        &[src_root],
    )
}

pub fn cnode_mutate(
    dest_index: u64,
    dest_depth: u64,
    src_root: CPtr,
    src_index: u64,
    src_depth: u64,
    data: u64,
) -> Encoded<5> {
    Encoded::new(
        I::CNodeMutate,
        [dest_index, dest_depth, src_index, src_depth, data],
        &[src_root],
    )
}

#[allow(clippy::too_many_arguments)]
pub fn cnode_rotate(
    dest_index: u64,
    dest_depth: u64,
    pivot_root: CPtr,
    pivot_index: u64,
    pivot_depth: u64,
    pivot_badge: u64,
    src_root: CPtr,
    src_index: u64,
    src_depth: u64,
    src_badge: u64,
) -> Encoded<8> {
    Encoded::new(
        I::CNodeRotate,
        [
            dest_index,
            dest_depth,
            pivot_index,
            pivot_depth,
            pivot_badge,
            src_index,
            src_depth,
            src_badge,
        ],
        &[pivot_root, src_root],
    )
}

pub fn cnode_delete(index: u64, depth: u64) -> Encoded<2> {
    Encoded::new(I::CNodeDelete, [index, depth], &[])
}

pub fn cnode_revoke(index: u64, depth: u64) -> Encoded<2> {
    Encoded::new(I::CNodeRevoke, [index, depth], &[])
}

pub fn cnode_cancel_badged_sends(index: u64, depth: u64) -> Encoded<2> {
    Encoded::new(I::CNodeCancelBadgedSends, [index, depth], &[])
}

#[allow(clippy::too_many_arguments)]
pub fn tcb_configure(
    fault_ep: CPtr,
    cspace_root: CPtr,
    cspace_root_data: u64,
    vspace_root: CPtr,
    vspace_root_data: u64,
    buffer: u64,
    buffer_frame: CPtr,
) -> Encoded<4> {
    Encoded::new(
        I::TcbConfigure,
        [fault_ep, cspace_root_data, vspace_root_data, buffer],
        &[cspace_root, vspace_root, buffer_frame],
    )
}

pub fn tcb_set_space(
    fault_ep: CPtr,
    cspace_root: CPtr,
    cspace_root_data: u64,
    vspace_root: CPtr,
    vspace_root_data: u64,
) -> Encoded<3> {
    Encoded::new(
        I::TcbSetSpace,
        [fault_ep, cspace_root_data, vspace_root_data],
        &[cspace_root, vspace_root],
    )
}

pub fn tcb_set_ipc_buffer(buffer: u64, frame: CPtr) -> Encoded<1> {
    Encoded::new(I::TcbSetIpcBuffer, [buffer], &[frame])
}

pub fn tcb_set_priority(authority: CPtr, priority: u64) -> Encoded<1> {
    Encoded::new(I::TcbSetPriority, [priority], &[authority])
}

pub fn tcb_set_mc_priority(authority: CPtr, mcp: u64) -> Encoded<1> {
    Encoded::new(I::TcbSetMcPriority, [mcp], &[authority])
}

pub fn tcb_resume() -> Encoded<0> {
    Encoded::new(I::TcbResume, [], &[])
}

pub fn tcb_suspend() -> Encoded<0> {
    Encoded::new(I::TcbSuspend, [], &[])
}

/// `count` words of `regs` in `seL4_UserContext` order.
pub fn tcb_write_registers(
    resume: bool,
    arch_flags: u64,
    count: usize,
    regs: &UserContext,
) -> Encoded<MAX_INVOCATION_WORDS> {
    let count = count.min(USER_CONTEXT_WORDS);
    let mut words = [0u64; MAX_INVOCATION_WORDS];
    words[0] = resume as u64;
    words[1] = arch_flags;
    words[2] = count as u64;
    regs.write_words(&mut words[3..]);
    let mut e = Encoded::new(I::TcbWriteRegisters, words, &[]);
    e.len = 3 + count;
    e
}

pub fn tcb_read_registers(suspend: bool, arch_flags: u64, count: usize) -> Encoded<3> {
    Encoded::new(
        I::TcbReadRegisters,
        [suspend as u64, arch_flags, count as u64],
        &[],
    )
}

pub fn tcb_bind_notification(notification: CPtr) -> Encoded<0> {
    Encoded::new(I::TcbBindNotification, [], &[notification])
}

pub fn tcb_set_timer_access(enable: bool, ptimer_irq_handler: CPtr) -> Encoded<1> {
    Encoded::new(I::TcbSetTimerAccess, [enable as u64], &[ptimer_irq_handler])
}

pub fn tcb_get_cpu_time() -> Encoded<0> {
    Encoded::new(I::TcbGetCpuTime, [], &[])
}

pub fn tcb_unbind_notification() -> Encoded<0> {
    Encoded::new(I::TcbUnbindNotification, [], &[])
}

pub fn page_table_map(vspace: CPtr, vaddr: u64, attributes: u64) -> Encoded<2> {
    Encoded::new(I::PageTableMap, [vaddr, attributes], &[vspace])
}

pub fn page_table_unmap() -> Encoded<0> {
    Encoded::new(I::PageTableUnmap, [], &[])
}

pub fn page_map(vspace: CPtr, vaddr: u64, rights: Rights, attributes: u64) -> Encoded<3> {
    Encoded::new(
        I::PageMap,
        [vaddr, rights.bits() as u64, attributes],
        &[vspace],
    )
}

pub fn page_unmap() -> Encoded<0> {
    Encoded::new(I::PageUnmap, [], &[])
}

pub fn page_get_address() -> Encoded<0> {
    Encoded::new(I::PageGetAddress, [], &[])
}

pub fn vspace_clean_data(start: u64, end: u64) -> Encoded<2> {
    Encoded::new(I::VSpaceCleanData, [start, end], &[])
}

pub fn vspace_unify_instruction(start: u64, end: u64) -> Encoded<2> {
    Encoded::new(I::VSpaceUnifyInstruction, [start, end], &[])
}

pub fn asid_control_make_pool(root: CPtr, index: u64, depth: u64) -> Encoded<2> {
    Encoded::new(I::AsidControlMakePool, [index, depth], &[root])
}

pub fn domain_set_set(domain: u8, tcb: CPtr) -> Encoded<1> {
    Encoded::new(I::DomainSetSet, [domain as u64], &[tcb])
}

/// `DomainSetSchedule` with `entries` ([`axolotl_abi::domain_entry`] words); more than
/// [`axolotl_abi::MAX_DOMAIN_SCHEDULE`] are sent as a count the kernel refuses.
pub fn domain_set_schedule(entries: &[u64]) -> Encoded<{ 1 + axolotl_abi::MAX_DOMAIN_SCHEDULE }> {
    let mut words = [0; 1 + axolotl_abi::MAX_DOMAIN_SCHEDULE];
    words[0] = entries.len() as u64;
    let n = entries.len().min(axolotl_abi::MAX_DOMAIN_SCHEDULE);
    words[1..1 + n].copy_from_slice(&entries[..n]);
    let mut e = Encoded::new(I::DomainSetSchedule, words, &[]);
    e.len = 1 + n;
    e
}

pub fn asid_pool_assign(vspace: CPtr) -> Encoded<0> {
    Encoded::new(I::AsidPoolAssign, [], &[vspace])
}

pub fn irq_control_get(irq: u64, edge: bool, root: CPtr, index: u64, depth: u64) -> Encoded<4> {
    Encoded::new(I::IrqControlGet, [irq, edge as u64, index, depth], &[root])
}

pub fn irq_handler_ack() -> Encoded<0> {
    Encoded::new(I::IrqHandlerAck, [], &[])
}

pub fn irq_handler_clear() -> Encoded<0> {
    Encoded::new(I::IrqHandlerClear, [], &[])
}

/// `IrqHandlerSetDeadline`: the kernel timeout fires when the physical count reaches `at`
/// (0: never).
pub fn irq_handler_set_deadline(at: u64) -> Encoded<1> {
    Encoded::new(I::IrqHandlerSetDeadline, [at], &[])
}

pub fn irq_handler_set_notification(notification: CPtr) -> Encoded<0> {
    Encoded::new(I::IrqHandlerSetNotification, [], &[notification])
}

pub fn vcpu_set_tcb(tcb: CPtr) -> Encoded<0> {
    Encoded::new(I::VcpuSetTcb, [], &[tcb])
}

pub fn vcpu_inject_irq(virq: u64, priority: u64, group: u64, lr: u64) -> Encoded<4> {
    Encoded::new(I::VcpuInjectIrq, [virq, priority, group, lr], &[])
}

pub fn vcpu_read_reg(reg: u64) -> Encoded<1> {
    Encoded::new(I::VcpuReadReg, [reg], &[])
}

pub fn vcpu_write_reg(reg: u64, value: u64) -> Encoded<2> {
    Encoded::new(I::VcpuWriteReg, [reg, value], &[])
}

pub fn vcpu_ack_vppi(irq: u64) -> Encoded<1> {
    Encoded::new(I::VcpuAckVppi, [irq], &[])
}

/// The reply that resumes a guest after a VM fault or VCPU fault: `flags` from
/// `axolotl_abi::vcpu::resume`, and with `WRITE_REG` the register and its value.
pub fn vcpu_resume(flags: u64, reg: u64, value: u64) -> (MessageInfo, [u64; 4]) {
    (
        MessageInfo::new(0, 0, 0, axolotl_abi::vcpu::RESUME_REPLY_LENGTH),
        [flags, reg, value, 0],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernel_timeout_s_deadline_follows_the_table() {
        let e = irq_handler_set_deadline(0x1234);
        assert_eq!((e.label, e.words(), e.ncaps), (42, &[0x1234][..], 0));
    }

    #[test]
    fn domain_invocations_follow_the_table() {
        let e = domain_set_set(3, 7);
        assert_eq!(
            (e.label, e.words(), e.ncaps, e.caps[0]),
            (40, &[3][..], 1, 7)
        );
        let w = [
            axolotl_abi::domain_entry(0, 6000),
            axolotl_abi::domain_entry(2, 1),
        ];
        let e = domain_set_schedule(&w);
        assert_eq!(e.label, 41);
        assert_eq!(e.words(), &[2, 6000, 2 << 56 | 1]);
        // Too many: the count says so (the kernel refuses it), the words stop at the table.
        let e = domain_set_schedule(&[0; axolotl_abi::MAX_DOMAIN_SCHEDULE + 1]);
        assert_eq!(e.words()[0], axolotl_abi::MAX_DOMAIN_SCHEDULE as u64 + 1);
        assert_eq!(e.words().len(), 1 + axolotl_abi::MAX_DOMAIN_SCHEDULE);
    }

    #[test]
    fn retype_follows_the_table() {
        let e = untyped_retype(4, 6, 2, 0, 0, 100, 3);
        assert_eq!(e.label, I::UntypedRetype as u64);
        assert_eq!(e.words(), &[4, 6, 0, 0, 100, 3]);
        assert_eq!(&e.caps[..e.ncaps], &[2]);
        let i = e.info();
        assert_eq!(
            (i.label(), i.extra_caps(), i.length(), i.caps_unwrapped()),
            (1, 1, 6, 0)
        );
    }

    #[test]
    fn cnode_ops_put_the_src_root_in_extra_caps() {
        let e = cnode_mint(10, 64, 2, 11, 64, Rights::READ, 0xbeef);
        assert_eq!(e.words(), &[10, 64, 11, 64, 2, 0xbeef]);
        assert_eq!((e.ncaps, e.caps[0]), (1, 2));
        let e = cnode_copy(1, 2, 3, 4, 5, Rights::ALL);
        assert_eq!((e.label, e.words()), (15, &[1, 2, 4, 5, 0xf][..]));
        let e = cnode_move(1, 2, 3, 4, 5);
        assert_eq!((e.label, e.words(), e.caps[0]), (17, &[1, 2, 4, 5][..], 3));
        let e = cnode_mutate(1, 2, 3, 4, 5, 6);
        assert_eq!((e.label, e.words()), (18, &[1, 2, 4, 5, 6][..]));
        let e = cnode_rotate(1, 2, 30, 3, 4, 5, 31, 6, 7, 8);
        assert_eq!((e.label, e.words()), (19, &[1, 2, 3, 4, 5, 6, 7, 8][..]));
        assert_eq!(&e.caps[..e.ncaps], &[30, 31]);
        assert_eq!(cnode_delete(5, 64).words(), &[5, 64]);
        assert_eq!(cnode_revoke(5, 64).label, 13);
        assert_eq!(cnode_cancel_badged_sends(5, 64).label, 20);
    }

    #[test]
    fn tcb_ops() {
        let e = tcb_configure(7, 2, 0, 3, 0, 0x1000, 10);
        assert_eq!((e.label, e.words()), (4, &[7, 0, 0, 0x1000][..]));
        assert_eq!(&e.caps[..e.ncaps], &[2, 3, 10]);
        let e = tcb_set_space(7, 2, 1, 3, 2);
        assert_eq!((e.label, e.words(), e.ncaps), (8, &[7, 1, 2][..], 2));
        let e = tcb_set_priority(1, 200);
        assert_eq!((e.label, e.words(), e.caps[0]), (5, &[200][..], 1));
        assert_eq!(tcb_set_mc_priority(1, 9).label, 6);
        assert_eq!(tcb_set_ipc_buffer(0x2000, 11).words(), &[0x2000]);
        assert_eq!((tcb_resume().label, tcb_suspend().label), (10, 9));
        assert_eq!(tcb_bind_notification(12).caps[0], 12);
        assert_eq!(tcb_unbind_notification().ncaps, 0);
    }

    #[test]
    fn registers_in_user_context_order() {
        let mut c = UserContext {
            pc: 0x1000,
            sp: 0x2000,
            spsr: 0,
            tpidr_el0: 0x77,
            ..Default::default()
        };
        c.x[0] = 42;
        c.x[30] = 30;
        let e = tcb_write_registers(true, 0, USER_CONTEXT_WORDS, &c);
        assert_eq!(e.len, 3 + USER_CONTEXT_WORDS);
        assert_eq!(&e.words()[..6], &[1, 0, 35, 0x1000, 0x2000, 0]);
        assert_eq!(e.words()[3 + 3], 42);
        assert_eq!(e.words()[3 + 33], 30);
        assert_eq!(e.words()[3 + 34], 0x77);
        let e = tcb_write_registers(false, 0, 2, &c);
        assert_eq!(e.words(), &[0, 0, 2, 0x1000, 0x2000]);
        let e = tcb_write_registers(false, 0, 99, &c);
        assert_eq!(e.words()[2], 35);
        assert_eq!(tcb_read_registers(true, 0, 35).words(), &[1, 0, 35]);
        assert_eq!(UserContext::from_words(&c.to_words()), c);
    }

    #[test]
    fn vm_and_irq_ops() {
        let e = page_map(3, 0x4000, Rights::RW, 1);
        assert_eq!(
            (e.label, e.words(), e.caps[0]),
            (23, &[0x4000, 3, 1][..], 3)
        );
        let e = page_table_map(3, 0x20_0000, 0);
        assert_eq!((e.label, e.words()), (21, &[0x20_0000, 0][..]));
        assert_eq!(page_unmap().label, 24);
        assert_eq!(page_table_unmap().label, 22);
        assert_eq!(page_get_address().label, 25);
        let e = irq_control_get(33, false, 2, 40, 64);
        assert_eq!(
            (e.label, e.words(), e.caps[0]),
            (27, &[33, 0, 40, 64][..], 2)
        );
        assert_eq!(irq_control_get(33, true, 2, 40, 64).words()[1], 1);
        assert_eq!(irq_handler_ack().label, 28);
        assert_eq!(irq_handler_clear().label, 30);
        assert_eq!(irq_handler_set_notification(5).caps[0], 5);
        let e = asid_control_make_pool(2, 50, 64);
        assert_eq!((e.label, e.words(), e.caps[0]), (36, &[50, 64][..], 2));
        assert_eq!(asid_pool_assign(8).caps[0], 8);
    }

    #[test]
    fn vcpu_ops() {
        let e = vcpu_set_tcb(9);
        assert_eq!((e.label, e.len, &e.caps[..e.ncaps]), (31, 0, &[9][..]));
        let e = vcpu_inject_irq(27, 0xa0, 1, 2);
        assert_eq!((e.label, e.words()), (32, &[27, 0xa0, 1, 2][..]));
        assert_eq!(
            (vcpu_read_reg(7).label, vcpu_read_reg(7).words()),
            (33, &[7][..])
        );
        assert_eq!(vcpu_write_reg(7, 5).words(), &[7, 5]);
        assert_eq!(vcpu_write_reg(7, 5).label, 34);
        assert_eq!(
            (vcpu_ack_vppi(27).label, vcpu_ack_vppi(27).words()),
            (35, &[27][..])
        );
        let (i, w) = vcpu_resume(3, 4, 0x55);
        assert_eq!((i.label(), i.length(), w), (0, 3, [3, 4, 0x55, 0]));
    }

    #[test]
    fn truncation_only_shrinks() {
        let e = untyped_retype(1, 0, 2, 0, 0, 5, 1).truncated(3, 0);
        assert_eq!((e.len, e.ncaps, e.info().length()), (3, 0, 3));
        let e = cnode_delete(1, 1).truncated(9, 9);
        assert_eq!((e.len, e.ncaps), (2, 0));
    }
}
