//! A minimal VMM for the VM plumbing test (tests/systems/vm-exits.system): it copies a tiny
//! EL1 guest into guest memory, starts its vCPU through the `VmTcb` cap the root task gave it,
//! and answers the guest's exits — a PSCI call over HVC, an MMIO store and an MMIO load to an
//! unmapped guest-physical address — each with one reply, until the guest asks to power off.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod pd {
    use axolotl_abi::USER_CONTEXT_WORDS;
    use axolotl_abi::syndrome::{Esr, ec, pstate};
    use axolotl_boot_plan::cspace::vm_tcb_slot;
    use axolotl_pd::{
        Channel, Child, Fault, Handler, MessageInfo, Resume, SetVar, fault_of, println,
    };
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

    struct TinyVmm;

    fn resume(r: Resume) -> Option<MessageInfo> {
        Some(axolotl_pd::resume(r))
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
                spsr: pstate::EL1H_DAIF_MASKED,
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
            match fault_of(msg) {
                Some(Fault::VcpuFault {
                    esr,
                    ip,
                    x: [x0, x1, ..],
                    ..
                }) => {
                    if Esr(esr).ec() != ec::HVC64 {
                        println!(
                            "tiny_vmm: vCPU {} unexpected exit esr {esr:#x} at {ip:#x}",
                            vcpu.id()
                        );
                        return None;
                    }
                    match x0 {
                        PSCI_VERSION => {
                            println!("tiny_vmm: guest called PSCI_VERSION at {ip:#x}");
                            resume(Resume::advance_and_write(0, 0x1_0001))
                        }
                        PSCI_SYSTEM_OFF => {
                            println!("tiny_vmm: guest SYSTEM_OFF (x1 = {x1:#x}): guest stopped");
                            None
                        }
                        f => {
                            println!("tiny_vmm: unknown PSCI function {f:#x}");
                            resume(Resume::advance_and_write(0, u64::MAX)) // NOT_SUPPORTED
                        }
                    }
                }
                Some(Fault::VmFault {
                    ip,
                    addr: ipa,
                    fsr,
                    stored,
                    ..
                }) => {
                    let access = Esr(fsr).abort().and_then(|a| a.access);
                    match (Esr(fsr).wnr(), access) {
                        (true, _) => {
                            let value = stored.unwrap_or(0);
                            println!("tiny_vmm: guest wrote {value:#x} to {ipa:#x} at {ip:#x}");
                            resume(Resume::Guest {
                                advance: true,
                                write: None,
                                wait: false,
                            })
                        }
                        (false, Some(acc)) => {
                            let srt = acc.register;
                            println!("tiny_vmm: guest read {ipa:#x} into x{srt}");
                            resume(Resume::advance_and_write(srt, 0x1234))
                        }
                        (false, None) => {
                            println!("tiny_vmm: guest read {ipa:#x} without a syndrome");
                            None
                        }
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
