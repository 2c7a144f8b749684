// Boot entry and EL2 exception vectors.
//
// While a user thread runs, SP_EL2 points just past that thread's saved-register area
// (UserContext, 288 bytes), so an exception from EL0 saves straight into the TCB before the
// kernel switches to its own stack: no copy on the syscall path (as seL4 does).

.equ CTX_SIZE, 288
.equ CTX_SP, 248
.equ CTX_ELR, 256
.equ CTX_SPSR, 264
.equ CTX_TPIDR, 272

.section .text.boot, "ax"
.global _start
_start:
    msr daifset, #0xf
    // The kernel runs on the boot core alone. A boot chain that starts every core here (not
    // the Pi firmware's armstub or QEMU's, which hold the others on the spin table) gets the
    // others parked for good.
    mrs x9, mpidr_el1
    and x9, x9, #0xffffff
    cbnz x9, .Lpark
    // x20 (kept across the eret below): the level the boot chain entered at, for the banner.
    mov x20, #2
    mrs x9, CurrentEL
    lsr x9, x9, #2
    cmp x9, #3
    b.eq .Lfrom_el3
    cmp x9, #2
    b.ne .Lnot_el2
.Lat_el2:
    adrp x9, __kernel_stack_top
    add x9, x9, :lo12:__kernel_stack_top
    mov sp, x9
    adrp x9, __bss_start
    add x9, x9, :lo12:__bss_start
    adrp x10, __bss_end
    add x10, x10, :lo12:__bss_end
1:  cmp x9, x10
    b.hs 2f
    str xzr, [x9], #8
    b 1b
2:  adrp x9, exception_vectors
    add x9, x9, :lo12:exception_vectors
    msr vbar_el2, x9
    isb
    mov x0, x9
    mov x1, x20
    bl kernel_main
.Lnot_el2:
    // Entered at the wrong exception level: nothing safe to do without EL2.
.Lpark:
    wfe
    b .Lpark

// Entered at EL3 (a boot chain without the Pi firmware's armstub, or QEMU booting an ELF):
// do what that armstub does before it drops to the kernel, then enter EL2 non-secure. The
// counter's frequency is writable at EL3 only; the GIC's interrupts reset to Group 0
// (secure) and would never reach EL2.
.Lfrom_el3:
    mov x20, #3
    ldr x9, =BOARD_TIMER_HZ
    msr cntfrq_el0, x9
    // No traps of FP/SIMD, the timer or the PMU to EL3.
    msr cptr_el3, xzr
    // A GICv3's secure set-up (ICC_SRE_EL3, the redistributors' groups) is not done here:
    // no GICv3 board enters at EL3, so such an entry stays parked.
    ldr x9, =BOARD_GIC_VERSION
    cmp x9, #2
    b.ne .Lpark
    // GICv2: every interrupt Group 1 (non-secure); the banked IGROUPR0 (SGIs, PPIs) is this
    // core's, the rest the SPIs'. GICD_TYPER.ITLinesNumber says how many registers there are.
    ldr x10, =BOARD_GICD
    ldr w11, [x10, #0x4]
    and w11, w11, #0x1f
    add w11, w11, #1
    add x12, x10, #0x80
    mov w13, #0xffffffff
1:  str w13, [x12], #4
    subs w11, w11, #1
    b.ne 1b
    // Both groups enabled at the distributor; the non-secure side sets up the rest.
    mov w13, #3
    str w13, [x10]
    // SCR_EL3: NS, RES1 bits 4-5, SMC disabled, HVC enabled, lower levels AArch64.
    mov x9, #((1 << 0) | (3 << 4) | (1 << 7) | (1 << 8) | (1 << 10))
    msr scr_el3, x9
    // Into EL2h with every exception masked, at .Lat_el2.
    mov x9, #0x3c9
    msr spsr_el3, x9
    adr x9, .Lat_el2
    msr elr_el3, x9
    eret

.section .text
.macro SAVE_USER handler
    sub sp, sp, #CTX_SIZE
    stp x0, x1, [sp, #16 * 0]
    stp x2, x3, [sp, #16 * 1]
    stp x4, x5, [sp, #16 * 2]
    stp x6, x7, [sp, #16 * 3]
    stp x8, x9, [sp, #16 * 4]
    stp x10, x11, [sp, #16 * 5]
    stp x12, x13, [sp, #16 * 6]
    stp x14, x15, [sp, #16 * 7]
    stp x16, x17, [sp, #16 * 8]
    stp x18, x19, [sp, #16 * 9]
    stp x20, x21, [sp, #16 * 10]
    stp x22, x23, [sp, #16 * 11]
    stp x24, x25, [sp, #16 * 12]
    stp x26, x27, [sp, #16 * 13]
    stp x28, x29, [sp, #16 * 14]
    mrs x9, sp_el0
    stp x30, x9, [sp, #240]
    mrs x10, elr_el2
    mrs x11, spsr_el2
    stp x10, x11, [sp, #CTX_ELR]
    mrs x12, tpidr_el0
    str x12, [sp, #CTX_TPIDR]
    mov x0, sp
    mrs x1, esr_el2
    adrp x9, __kernel_stack_top
    add x9, x9, :lo12:__kernel_stack_top
    mov sp, x9
    bl \handler
    // handlers never return: they leave through restore_user_context
    b .
.endm

// Exceptions taken while the kernel itself runs: always a kernel bug (or the idle loop's
// IRQ, which is taken with interrupts masked and so never arrives here).
.macro SAVE_KERNEL kind
    sub sp, sp, #(34 * 8)
    stp x0, x1, [sp, #16 * 0]
    stp x2, x3, [sp, #16 * 1]
    stp x4, x5, [sp, #16 * 2]
    stp x6, x7, [sp, #16 * 3]
    stp x8, x9, [sp, #16 * 4]
    stp x10, x11, [sp, #16 * 5]
    stp x12, x13, [sp, #16 * 6]
    stp x14, x15, [sp, #16 * 7]
    stp x16, x17, [sp, #16 * 8]
    stp x18, x19, [sp, #16 * 9]
    stp x20, x21, [sp, #16 * 10]
    stp x22, x23, [sp, #16 * 11]
    stp x24, x25, [sp, #16 * 12]
    stp x26, x27, [sp, #16 * 13]
    stp x28, x29, [sp, #16 * 14]
    add x9, sp, #(34 * 8)
    stp x30, x9, [sp, #240]
    mrs x10, elr_el2
    mrs x11, spsr_el2
    stp x10, x11, [sp, #256]
    mov x0, sp
    mov x1, #\kind
    b handle_kernel_exception
.endm

.balign 2048
.global exception_vectors
exception_vectors:
// Current EL with SP_EL0 (never used: the kernel runs on SP_EL2)
.balign 128
    SAVE_KERNEL 0
.balign 128
    SAVE_KERNEL 1
.balign 128
    SAVE_KERNEL 2
.balign 128
    SAVE_KERNEL 3
// Current EL with SP_ELx
.balign 128
    SAVE_KERNEL 0
.balign 128
    SAVE_KERNEL 1
.balign 128
    SAVE_KERNEL 2
.balign 128
    SAVE_KERNEL 3
// Lower EL, AArch64
.balign 128
    SAVE_USER handle_user_sync
.balign 128
    SAVE_USER handle_user_irq
.balign 128
    SAVE_USER handle_user_irq
.balign 128
    SAVE_USER handle_user_serror
// Lower EL, AArch32: not supported, treated as a user fault by the sync handler
.balign 128
    SAVE_USER handle_user_sync
.balign 128
    SAVE_USER handle_user_irq
.balign 128
    SAVE_USER handle_user_irq
.balign 128
    SAVE_USER handle_user_serror

// restore_user_context(ctx: *const UserContext) -> !
.global restore_user_context
restore_user_context:
    ldp x1, x2, [x0, #CTX_SP]
    msr sp_el0, x1
    msr elr_el2, x2
    ldp x3, x4, [x0, #CTX_SPSR]
    msr spsr_el2, x3
    msr tpidr_el0, x4
    add x1, x0, #CTX_SIZE
    mov sp, x1
    ldp x2, x3, [x0, #16 * 1]
    ldp x4, x5, [x0, #16 * 2]
    ldp x6, x7, [x0, #16 * 3]
    ldp x8, x9, [x0, #16 * 4]
    ldp x10, x11, [x0, #16 * 5]
    ldp x12, x13, [x0, #16 * 6]
    ldp x14, x15, [x0, #16 * 7]
    ldp x16, x17, [x0, #16 * 8]
    ldp x18, x19, [x0, #16 * 9]
    ldp x20, x21, [x0, #16 * 10]
    ldp x22, x23, [x0, #16 * 11]
    ldp x24, x25, [x0, #16 * 12]
    ldp x26, x27, [x0, #16 * 13]
    ldp x28, x29, [x0, #16 * 14]
    ldr x30, [x0, #240]
    ldp x0, x1, [x0, #16 * 0]
    eret

// The kernel target is soft-float; these two routines alone touch FP/SIMD registers.
.arch_extension fp
.arch_extension simd

// FP/SIMD state save/restore: fp_save(area: *mut FpState), fp_restore(area: *const FpState).
// The kernel is built soft-float, so these registers only ever hold user state.
.global fp_save
fp_save:
    stp q0, q1, [x0, #32 * 0]
    stp q2, q3, [x0, #32 * 1]
    stp q4, q5, [x0, #32 * 2]
    stp q6, q7, [x0, #32 * 3]
    stp q8, q9, [x0, #32 * 4]
    stp q10, q11, [x0, #32 * 5]
    stp q12, q13, [x0, #32 * 6]
    stp q14, q15, [x0, #32 * 7]
    stp q16, q17, [x0, #32 * 8]
    stp q18, q19, [x0, #32 * 9]
    stp q20, q21, [x0, #32 * 10]
    stp q22, q23, [x0, #32 * 11]
    stp q24, q25, [x0, #32 * 12]
    stp q26, q27, [x0, #32 * 13]
    stp q28, q29, [x0, #32 * 14]
    stp q30, q31, [x0, #32 * 15]
    mrs x1, fpsr
    mrs x2, fpcr
    add x0, x0, #512
    stp x1, x2, [x0]
    ret

.global fp_restore
fp_restore:
    ldp q0, q1, [x0, #32 * 0]
    ldp q2, q3, [x0, #32 * 1]
    ldp q4, q5, [x0, #32 * 2]
    ldp q6, q7, [x0, #32 * 3]
    ldp q8, q9, [x0, #32 * 4]
    ldp q10, q11, [x0, #32 * 5]
    ldp q12, q13, [x0, #32 * 6]
    ldp q14, q15, [x0, #32 * 7]
    ldp q16, q17, [x0, #32 * 8]
    ldp q18, q19, [x0, #32 * 9]
    ldp q20, q21, [x0, #32 * 10]
    ldp q22, q23, [x0, #32 * 11]
    ldp q24, q25, [x0, #32 * 12]
    ldp q26, q27, [x0, #32 * 13]
    ldp q28, q29, [x0, #32 * 14]
    ldp q30, q31, [x0, #32 * 15]
    add x0, x0, #512
    ldp x1, x2, [x0]
    msr fpsr, x1
    msr fpcr, x2
    ret
