//! A minimal VMM for the VM plumbing test (tests/systems/vm-exits.system): it copies a tiny
//! EL1 guest into guest memory, starts its vCPU through the `VmTcb` cap the root task gave it,
//! and answers the guest's exits — a PSCI call over HVC, an MMIO store and an MMIO load to an
//! unmapped guest-physical address — each with one reply, until the guest asks to power off.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod pd {
    use axolotl_abi::vcpu::resume::{ADVANCE, WRITE_REG};
    use axolotl_abi::{FaultLabel, USER_CONTEXT_WORDS};
    use axolotl_boot_plan::cspace::vm_tcb_slot;
    use axolotl_pd::{Channel, Child, Handler, MessageInfo, SetVar, get_mr, println, set_mr};
    use axolotl_sys::{Tcb, UserContext};

    // The guest: position-independent EL1 code, copied to guest-physical 0x4000_0000.
    core::arch::global_asm!(
        ".section .rodata.guest, \"a\"",
        ".balign 4",
        ".global tiny_guest_start",
        ".global tiny_guest_end",
        "tiny_guest_start:",
        "    movz x0, #0x0000",
        "    movk x0, #0x8400, lsl #16", // PSCI_VERSION
        "    hvc #0",
        "    movz x1, #0x0900, lsl #16", // unmapped IPA 0x0900_0000
        "    str w0, [x1]",              // MMIO store of the PSCI version
        "    ldr w2, [x1, #4]",          // MMIO load, answered by the VMM
        "    movz x0, #0x0008",
        "    movk x0, #0x8400, lsl #16", // PSCI SYSTEM_OFF
        "    mov x1, x2",
        "    hvc #0",
        "1:  b 1b",
        "tiny_guest_end:",
    );

    unsafe extern "C" {
        static tiny_guest_start: u8;
        static tiny_guest_end: u8;
    }

    #[unsafe(no_mangle)]
    #[allow(non_upper_case_globals)]
    static guest_code: SetVar = SetVar::new();

    const GUEST_ENTRY: u64 = 0x4000_0000;
    const PSCI_VERSION: u64 = 0x8400_0000;
    const PSCI_SYSTEM_OFF: u64 = 0x8400_0008;
    const ESR_EC_HVC64: u64 = 0x16;

    struct TinyVmm;

    fn resume(flags: u64, reg: u64, value: u64) -> Option<MessageInfo> {
        set_mr(0, flags);
        set_mr(1, reg);
        set_mr(2, value);
        Some(MessageInfo::new(0, 0, 0, 3))
    }

    impl Handler for TinyVmm {
        fn init(&mut self) {
            // Two symbols of the same section: the guest's bytes.
            let (start, end) = (&raw const tiny_guest_start, &raw const tiny_guest_end);
            let len = end as usize - start as usize;
            // SAFETY: the guest code region is mapped read-write here for us; the guest is
            // not running yet.
            unsafe {
                core::ptr::copy_nonoverlapping(start, guest_code.get() as *mut u8, len);
            }
            let ctx = UserContext {
                pc: GUEST_ENTRY,
                spsr: 0x3c5, // EL1h, DAIF masked
                ..Default::default()
            };
            let vcpu0 = Tcb(vm_tcb_slot(0));
            match vcpu0.write_registers(true, 0, USER_CONTEXT_WORDS, &ctx) {
                Ok(()) => println!("tiny_vmm: guest of {len} bytes started at {GUEST_ENTRY:#x}"),
                Err(e) => println!("tiny_vmm: cannot start the guest: {e}"),
            }
        }

        fn notified(&mut self, _: Channel) {}

        fn fault(&mut self, vcpu: Child, msg: MessageInfo) -> Option<MessageInfo> {
            match FaultLabel::from_label(msg.label()) {
                Some(FaultLabel::VcpuFault) => {
                    let (esr, ip, x0, x1) = (get_mr(0), get_mr(1), get_mr(3), get_mr(4));
                    if esr >> 26 != ESR_EC_HVC64 {
                        println!(
                            "tiny_vmm: vCPU {} unexpected exit esr {esr:#x} at {ip:#x}",
                            vcpu.id()
                        );
                        return None;
                    }
                    match x0 {
                        PSCI_VERSION => {
                            println!("tiny_vmm: guest called PSCI_VERSION at {ip:#x}");
                            resume(ADVANCE | WRITE_REG, 0, 0x1_0001)
                        }
                        PSCI_SYSTEM_OFF => {
                            println!("tiny_vmm: guest SYSTEM_OFF (x1 = {x1:#x}): guest stopped");
                            None
                        }
                        f => {
                            println!("tiny_vmm: unknown PSCI function {f:#x}");
                            resume(ADVANCE | WRITE_REG, 0, u64::MAX) // NOT_SUPPORTED
                        }
                    }
                }
                Some(FaultLabel::VmFault) => {
                    let (ip, ipa, esr, value) = (get_mr(0), get_mr(1), get_mr(3), get_mr(4));
                    let write = esr & (1 << 6) != 0;
                    if write {
                        println!("tiny_vmm: guest wrote {value:#x} to {ipa:#x} at {ip:#x}");
                        resume(ADVANCE, 0, 0)
                    } else {
                        let srt = (esr >> 16) & 0x1f;
                        println!("tiny_vmm: guest read {ipa:#x} into x{srt}");
                        resume(ADVANCE | WRITE_REG, srt, 0x1234)
                    }
                }
                _ => {
                    println!("tiny_vmm: unexpected fault label {}", msg.label());
                    None
                }
            }
        }
    }

    axolotl_pd::protection_domain!(TinyVmm);
}

#[cfg(not(target_os = "none"))]
fn main() {}
