//! When a waiting guest's virtual timer is due (the kernel's side of `resume::WAIT`): the
//! timer asserts its interrupt only while its vCPU is in the CPU, so a vCPU that waits for an
//! interrupt is woken by the kernel's own timer at the moment the guest's would fire.

/// CNTV_CTL_EL0.ENABLE.
pub const CTL_ENABLE: u64 = 1 << 0;
/// CNTV_CTL_EL0.IMASK.
pub const CTL_IMASK: u64 = 1 << 1;

/// What a waiting vCPU's virtual timer asks of the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VtimerWake {
    /// The timer condition holds already: the vCPU must not wait.
    Now,
    /// Wake it when the physical counter (CNTPCT) reaches this value.
    At(u64),
    /// The timer cannot assert its interrupt (off, masked, or its last one not yet
    /// acknowledged by the VMM, whose `VcpuAckVppi` wakes the vCPU): no deadline.
    Never,
}

/// The wake-up of a vCPU whose saved timer is `ctl`, `cval`, `cntvoff`, at physical count
/// `now`. The timer condition is CNTVCT ≥ CVAL with CNTVCT = CNTPCT − CNTVOFF (modulo 2^64,
/// Arm ARM D11.2.4), so the deadline is taken relative to `now`, never as CVAL + CNTVOFF,
/// which a guest's values could overflow. `acked`: its VPPI is not awaiting `VcpuAckVppi`.
pub fn vtimer_wake(ctl: u64, cval: u64, cntvoff: u64, acked: bool, now: u64) -> VtimerWake {
    if ctl & CTL_ENABLE == 0 || ctl & CTL_IMASK != 0 || !acked {
        return VtimerWake::Never;
    }
    let vct = now.wrapping_sub(cntvoff);
    if vct >= cval {
        return VtimerWake::Now;
    }
    // A deadline past the counter's range is never reached (the counter is at least 56 bits
    // wide and does not wrap in the system's lifetime).
    now.checked_add(cval - vct)
        .map_or(VtimerWake::Never, VtimerWake::At)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ON: u64 = CTL_ENABLE;

    #[test]
    fn off_masked_or_unacknowledged_timers_never_wake() {
        assert_eq!(vtimer_wake(0, 0, 0, true, 100), VtimerWake::Never);
        assert_eq!(
            vtimer_wake(ON | CTL_IMASK, 0, 0, true, 100),
            VtimerWake::Never
        );
        assert_eq!(vtimer_wake(ON, 0, 0, false, 100), VtimerWake::Never);
        // ISTATUS (bit 2) is the hardware's, read back in a saved value: ignored.
        assert_eq!(vtimer_wake(ON | 4, 200, 0, true, 100), VtimerWake::At(200));
    }

    #[test]
    fn due_at_and_after_the_compare_value() {
        assert_eq!(vtimer_wake(ON, 100, 0, true, 100), VtimerWake::Now);
        assert_eq!(vtimer_wake(ON, 99, 0, true, 100), VtimerWake::Now);
        assert_eq!(vtimer_wake(ON, 101, 0, true, 100), VtimerWake::At(101));
    }

    #[test]
    fn the_offset_moves_the_deadline() {
        // CNTVCT = 1000 - 400 = 600; CVAL 650 is 50 ticks away.
        assert_eq!(vtimer_wake(ON, 650, 400, true, 1000), VtimerWake::At(1050));
        assert_eq!(vtimer_wake(ON, 600, 400, true, 1000), VtimerWake::Now);
        // An offset above the count: CNTVCT wraps to near 2^64, past any CVAL below it.
        assert_eq!(vtimer_wake(ON, 5, 2000, true, 1000), VtimerWake::Now);
    }

    #[test]
    fn hostile_values_do_not_overflow() {
        assert_eq!(
            vtimer_wake(ON, u64::MAX, 0, true, 10),
            VtimerWake::At(u64::MAX)
        );
        assert_eq!(
            vtimer_wake(ON, u64::MAX, 0, true, 0),
            VtimerWake::At(u64::MAX)
        );
        // CVAL - CNTVCT larger than what is left of the counter: never.
        assert_eq!(
            vtimer_wake(ON, u64::MAX, 1, true, u64::MAX - 5),
            VtimerWake::Never
        );
    }
}
