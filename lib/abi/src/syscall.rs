/// System call numbers, passed in `x7`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum Syscall {
    Call = 1,
    ReplyRecv = 2,
    Send = 3,
    NBSend = 4,
    Recv = 5,
    Reply = 6,
    Yield = 7,
    NBRecv = 8,
    /// Notification operations are sends/receives on notification caps in seL4; we keep the
    /// names apart for readability but they share the paths of Send/Recv/NBRecv.
    Signal = 9,
    Wait = 10,
    Poll = 11,
    /// Debug: write bytes (`x0` = pointer, `x1` = length, at most 256) to the kernel console.
    DebugPuts = 64,
    /// Debug: the calling thread stops for good; the kernel reports it.
    ThreadExit = 65,
    /// Debug: ask the kernel how many timer ticks have passed since boot (returned in `x0`).
    DebugTicks = 66,
}

impl Syscall {
    pub fn from_number(n: u64) -> Option<Syscall> {
        use Syscall::*;
        Some(match n {
            1 => Call,
            2 => ReplyRecv,
            3 => Send,
            4 => NBSend,
            5 => Recv,
            6 => Reply,
            7 => Yield,
            8 => NBRecv,
            9 => Signal,
            10 => Wait,
            11 => Poll,
            64 => DebugPuts,
            65 => ThreadExit,
            66 => DebugTicks,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip() {
        for n in 0..128 {
            if let Some(s) = Syscall::from_number(n) {
                assert_eq!(s as u64, n);
            }
        }
        assert_eq!(Syscall::from_number(0), None);
        assert_eq!(Syscall::from_number(u64::MAX), None);
    }
}
