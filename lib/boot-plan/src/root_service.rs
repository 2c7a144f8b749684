//! The root service: the monitor's requests to the root task (a Call on
//! `cspace::ROOT_SERVICE_CAP`) and the root task's replies, one typed protocol with one
//! encoding that both sides use (as Hubris's Idol stubs give client and server one definition).
//!
//! The root task holds every original capability and the pristine images; the monitor holds
//! only the right to ask. A request is hostile to the root task (a monitor gone wrong sends
//! what it likes): [`Request::decode`] checks the label, the length and every index and
//! answers a [`Malformed`], never a panic. Whether a well-formed request names a PD the
//! monitor may act on is the root task's policy (it knows the plan), not the encoding's.
//!
//! # Wire format
//! Words are message registers (MR0 first; the kernel carries the first
//! `MSG_REGISTERS_IN_CPU` in registers, the rest in the IPC buffer). A record travels as its
//! byte count in [`RECORD_LEN_MR`] and its bytes, packed little-endian, in the words after it.
//!
//! | request | label | words |
//! | --- | --- | --- |
//! | [`Request::Restart`] | 1 | pd, generation, record |
//! | [`Request::SetTimer`] | 2 | counter value |
//! | [`Request::Record`] | 3 | pd, 0, record |
//! | [`Request::Recall`] | 4 | pd |
//! | [`Request::Stop`] | 5 | pd |
//!
//! | reply | label | words |
//! | --- | --- | --- |
//! | [`Reply::Done`] | 0 | 0 |
//! | [`Reply::Restarted`] | 0 | generation, how (1: standby, 0: in place) |
//! | [`Reply::Recalled`] | 0 | generation, 0, record |
//! | [`Reply::Refused`] | 1 | reason |

use core::fmt;

use axolotl_abi::{MSG_MAX_LENGTH, MessageInfo};

use crate::MAX_PDS;

/// The word that holds a record's byte count; its bytes follow.
pub const RECORD_LEN_MR: usize = 2;
/// The most bytes a record carries (the message registers after its length).
pub const RECORD_BYTES: usize = 8 * (MSG_MAX_LENGTH - RECORD_LEN_MR - 1);

/// A journal record: the monitor's bookkeeping of one PD, opaque to the root task.
pub type Record = heapless::Vec<u8, RECORD_BYTES>;

/// The request labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum Op {
    Restart = 1,
    SetTimer = 2,
    Record = 3,
    Recall = 4,
    Stop = 5,
}

impl Op {
    pub fn from_label(label: u64) -> Option<Op> {
        Some(match label {
            1 => Op::Restart,
            2 => Op::SetTimer,
            3 => Op::Record,
            4 => Op::Recall,
            5 => Op::Stop,
            _ => return None,
        })
    }
}

/// What the monitor asks of the root task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Restart `pd` from its pristine image with a generation of at least `generation`, and
    /// once it runs again journal `record` (as [`Request::Record`]; none if empty). Replied
    /// [`Reply::Restarted`]: the PD runs again.
    Restart {
        pd: u8,
        generation: u64,
        record: Record,
    },
    /// Signal the monitor's timer channel (`MONITOR_TIMER_ID`) once the physical counter
    /// reaches `at` (at once if it has); 0: never. Replaces any earlier request.
    SetTimer { at: u64 },
    /// Journal `pd`'s restart bookkeeping, which the root task keeps, opaque, for a
    /// restarted monitor.
    Record { pd: u8, record: Record },
    /// What a restarted monitor re-learns about `pd`: [`Reply::Recalled`].
    Recall { pd: u8 },
    /// Stop (suspend) `pd`: one the monitor holds although no fault stopped it (hung, or a
    /// reporter found lying).
    Stop { pd: u8 },
}

/// How the root task restarted a PD.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum How {
    /// Switched to its standby incarnation, restored ahead of time.
    Standby,
    /// Its memory and CSpace restored while it waited.
    InPlace,
}

impl fmt::Display for How {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            How::Standby => "standby",
            How::InPlace => "in place",
        })
    }
}

/// Why the root task refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum Reason {
    /// The request names a PD the monitor may not act on (none, a child, the monitor).
    BadPd = 1,
    /// The request was malformed, or doing it failed.
    Failed = 2,
    /// No such request.
    Unknown = 3,
}

impl Reason {
    fn from_word(w: u64) -> Option<Reason> {
        Some(match w {
            1 => Reason::BadPd,
            2 => Reason::Failed,
            3 => Reason::Unknown,
            _ => return None,
        })
    }
}

/// The root task's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
#[expect(
    clippy::large_enum_variant,
    reason = "no allocator to box into; a reply is as large as the message it fills anyway"
)]
pub enum Reply {
    /// [`Request::SetTimer`], [`Request::Record`] or [`Request::Stop`] done.
    Done,
    /// [`Request::Restart`] done: the PD runs with `generation` (the root task's count is the
    /// authority).
    Restarted {
        generation: u64,
        how: How,
    },
    /// [`Request::Recall`]: the root task's generation of the PD and the journaled record
    /// (empty: nothing journaled).
    Recalled {
        generation: u64,
        record: Record,
    },
    Refused(Reason),
}

/// A message that is not one of the protocol's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Malformed {
    UnknownLabel(u64),
    /// Fewer words than the label needs.
    Short {
        label: u64,
        len: usize,
    },
    /// A PD index no plan has.
    BadPd(u64),
    /// A record length over [`RECORD_BYTES`], or more than the message carries.
    BadRecord {
        len: u64,
    },
    /// A refusal with a reason the protocol does not have.
    BadReason(u64),
}

impl Malformed {
    /// What the root task answers a malformed request.
    pub fn reason(self) -> Reason {
        match self {
            Malformed::UnknownLabel(_) => Reason::Unknown,
            Malformed::BadPd(_) => Reason::BadPd,
            Malformed::Short { .. } | Malformed::BadRecord { .. } | Malformed::BadReason(_) => {
                Reason::Failed
            }
        }
    }
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Malformed::UnknownLabel(l) => write!(f, "unknown label {l}"),
            Malformed::Short { label, len } => {
                write!(f, "label {label} with too few words ({len})")
            }
            Malformed::BadPd(pd) => write!(f, "PD index {pd} out of range"),
            Malformed::BadRecord { len } => write!(f, "impossible record length {len}"),
            Malformed::BadReason(r) => write!(f, "unknown reason {r}"),
        }
    }
}

/// An encoded message: its label and words, ready for a Call or Reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub label: u64,
    len: usize,
    words: [u64; MSG_MAX_LENGTH],
}

impl Message {
    /// A message of `words` (`None` if more than a message holds). Built by hand only to
    /// test the root task's refusals; [`Request::encode`] and [`Reply::encode`] otherwise.
    pub fn new(label: u64, words: &[u64]) -> Option<Message> {
        let mut m = Message {
            label,
            len: 0,
            words: [0; MSG_MAX_LENGTH],
        };
        m.words.get_mut(..words.len())?.copy_from_slice(words);
        m.len = words.len();
        Some(m)
    }

    /// A message of the `N` words `head`.
    fn of<const N: usize>(label: u64, head: [u64; N]) -> Message {
        const { assert!(N <= MSG_MAX_LENGTH) };
        let mut words = [0; MSG_MAX_LENGTH];
        words[..N].copy_from_slice(&head);
        Message {
            label,
            len: N,
            words,
        }
    }

    pub fn words(&self) -> &[u64] {
        &self.words[..self.len]
    }

    /// Its message info (no caps).
    pub fn info(&self) -> MessageInfo {
        MessageInfo::new(self.label, 0, 0, self.len as u64)
    }

    /// `head`, then `record`'s length and bytes.
    fn with_record(label: u64, head: [u64; RECORD_LEN_MR], record: &[u8]) -> Message {
        let mut m = Message {
            label,
            len: words_for(record.len()),
            words: [0; MSG_MAX_LENGTH],
        };
        m.words[..RECORD_LEN_MR].copy_from_slice(&head);
        m.words[RECORD_LEN_MR] = record.len() as u64;
        for (w, chunk) in m.words[RECORD_LEN_MR + 1..]
            .iter_mut()
            .zip(record.chunks(8))
        {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            *w = u64::from_le_bytes(b);
        }
        m
    }
}

/// Message words a message with a record of `len` bytes has.
const fn words_for(len: usize) -> usize {
    RECORD_LEN_MR + 1 + len.div_ceil(8)
}

/// The words of a message of `label`, at least `n` of them.
fn need(label: u64, words: &[u64], n: usize) -> Result<&[u64], Malformed> {
    if words.len() < n {
        return Err(Malformed::Short {
            label,
            len: words.len(),
        });
    }
    Ok(words)
}

/// A PD index any plan may have.
fn pd_of(w: u64) -> Result<u8, Malformed> {
    match u8::try_from(w) {
        Ok(pd) if (pd as usize) < MAX_PDS => Ok(pd),
        _ => Err(Malformed::BadPd(w)),
    }
}

/// The record of a message whose head is [`RECORD_LEN_MR`] words.
fn record_of(label: u64, words: &[u64]) -> Result<Record, Malformed> {
    let words = need(label, words, RECORD_LEN_MR + 1)?;
    let len = words[RECORD_LEN_MR];
    let n = usize::try_from(len)
        .ok()
        .filter(|&n| n <= RECORD_BYTES && words.len() >= words_for(n))
        .ok_or(Malformed::BadRecord { len })?;
    let mut record = Record::new();
    for w in &words[RECORD_LEN_MR + 1..words_for(n)] {
        let room = n - record.len();
        // Cannot fail: `n <= RECORD_BYTES`.
        let _ = record.extend_from_slice(&w.to_le_bytes()[..room.min(8)]);
    }
    Ok(record)
}

impl Request {
    pub fn op(&self) -> Op {
        match self {
            Request::Restart { .. } => Op::Restart,
            Request::SetTimer { .. } => Op::SetTimer,
            Request::Record { .. } => Op::Record,
            Request::Recall { .. } => Op::Recall,
            Request::Stop { .. } => Op::Stop,
        }
    }

    pub fn encode(&self) -> Message {
        let label = self.op() as u64;
        match self {
            Request::Restart {
                pd,
                generation,
                record,
            } => Message::with_record(label, [*pd as u64, *generation], record),
            Request::SetTimer { at } => Message::of(label, [*at]),
            Request::Record { pd, record } => Message::with_record(label, [*pd as u64, 0], record),
            Request::Recall { pd } | Request::Stop { pd } => Message::of(label, [*pd as u64]),
        }
    }

    /// The request of a message with `label` and `words` (every word it carries), checked.
    pub fn decode(label: u64, words: &[u64]) -> Result<Request, Malformed> {
        let op = Op::from_label(label).ok_or(Malformed::UnknownLabel(label))?;
        let words = need(label, words, 1)?;
        Ok(match op {
            Op::Restart => Request::Restart {
                pd: pd_of(words[0])?,
                generation: need(label, words, 2)?[1],
                record: record_of(label, words)?,
            },
            Op::SetTimer => Request::SetTimer { at: words[0] },
            Op::Record => Request::Record {
                pd: pd_of(words[0])?,
                record: record_of(label, words)?,
            },
            Op::Recall => Request::Recall {
                pd: pd_of(words[0])?,
            },
            Op::Stop => Request::Stop {
                pd: pd_of(words[0])?,
            },
        })
    }
}

impl Reply {
    pub fn encode(&self) -> Message {
        match self {
            Reply::Done => Message::of(0, [0]),
            Reply::Restarted { generation, how } => {
                Message::of(0, [*generation, (*how == How::Standby) as u64])
            }
            Reply::Recalled { generation, record } => {
                Message::with_record(0, [*generation, 0], record)
            }
            Reply::Refused(why) => Message::of(1, [*why as u64]),
        }
    }

    /// The reply to a request of `op`, from its `label` and `words`, checked.
    pub fn decode(op: Op, label: u64, words: &[u64]) -> Result<Reply, Malformed> {
        match label {
            0 => {}
            1 => {
                let w = need(label, words, 1)?[0];
                return Reason::from_word(w)
                    .map(Reply::Refused)
                    .ok_or(Malformed::BadReason(w));
            }
            _ => return Err(Malformed::UnknownLabel(label)),
        }
        Ok(match op {
            Op::Restart => {
                let words = need(label, words, 2)?;
                Reply::Restarted {
                    generation: words[0],
                    how: if words[1] == 1 {
                        How::Standby
                    } else {
                        How::InPlace
                    },
                }
            }
            Op::Recall => Reply::Recalled {
                generation: need(label, words, 1)?[0],
                record: record_of(label, words)?,
            },
            Op::SetTimer | Op::Record | Op::Stop => Reply::Done,
        })
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use proptest::prelude::*;

    use super::*;

    fn record() -> impl Strategy<Value = Record> {
        proptest::collection::vec(any::<u8>(), 0..=RECORD_BYTES)
            .prop_map(|v| Record::from_slice(&v).unwrap())
    }

    fn pd() -> impl Strategy<Value = u8> {
        0..MAX_PDS as u8
    }

    fn request() -> impl Strategy<Value = Request> {
        prop_oneof![
            (pd(), any::<u64>(), record()).prop_map(|(pd, generation, record)| {
                Request::Restart {
                    pd,
                    generation,
                    record,
                }
            }),
            any::<u64>().prop_map(|at| Request::SetTimer { at }),
            (pd(), record()).prop_map(|(pd, record)| Request::Record { pd, record }),
            pd().prop_map(|pd| Request::Recall { pd }),
            pd().prop_map(|pd| Request::Stop { pd }),
        ]
    }

    fn reply() -> impl Strategy<Value = (Op, Reply)> {
        let reason = prop_oneof![
            Just(Reason::BadPd),
            Just(Reason::Failed),
            Just(Reason::Unknown)
        ];
        let op = prop_oneof![
            Just(Op::Restart),
            Just(Op::SetTimer),
            Just(Op::Record),
            Just(Op::Recall),
            Just(Op::Stop)
        ];
        prop_oneof![
            prop_oneof![Just(Op::SetTimer), Just(Op::Record), Just(Op::Stop)]
                .prop_map(|op| (op, Reply::Done)),
            (any::<u64>(), any::<bool>()).prop_map(|(generation, standby)| {
                let how = if standby { How::Standby } else { How::InPlace };
                (Op::Restart, Reply::Restarted { generation, how })
            }),
            (any::<u64>(), record()).prop_map(|(generation, record)| {
                (Op::Recall, Reply::Recalled { generation, record })
            }),
            (op, reason).prop_map(|(op, r)| (op, Reply::Refused(r))),
        ]
    }

    proptest! {
        #[test]
        fn requests_survive_encoding(req in request()) {
            let m = req.encode();
            prop_assert!(m.words().len() <= MSG_MAX_LENGTH);
            prop_assert_eq!(m.info().length() as usize, m.words().len());
            prop_assert_eq!(Request::decode(m.label, m.words()), Ok(req));
        }

        #[test]
        fn replies_survive_encoding((op, reply) in reply()) {
            let m = reply.encode();
            prop_assert!(m.words().len() <= MSG_MAX_LENGTH);
            prop_assert_eq!(Reply::decode(op, m.label, m.words()), Ok(reply));
        }

        /// Whatever a PD sends, decoding answers: a request that encodes back to what was
        /// sent (up to the words it ignores), or an error.
        #[test]
        fn any_message_decodes_or_is_refused(
            label in 0u64..8,
            words in proptest::collection::vec(
                prop_oneof![0u64..200, any::<u64>()], 0..=MSG_MAX_LENGTH),
        ) {
            if let Ok(req) = Request::decode(label, &words) {
                let m = req.encode();
                prop_assert_eq!(m.label, label);
                prop_assert!(m.words().len() <= words.len());
                prop_assert_eq!(Request::decode(label, m.words()), Ok(req));
            }
            for op in [Op::Restart, Op::SetTimer, Op::Record, Op::Recall, Op::Stop] {
                let _ = Reply::decode(op, label, &words);
            }
        }

        /// Every cut of a request with a record is short or a bad record, never a request.
        #[test]
        fn truncated_requests_are_refused(req in request(), cut in 0usize..MSG_MAX_LENGTH) {
            let m = req.encode();
            let cut = cut.min(m.words().len());
            if cut < m.words().len() {
                let r = Request::decode(m.label, &m.words()[..cut]);
                let bad = matches!(r, Err(Malformed::Short { .. } | Malformed::BadRecord { .. }));
                // Requests of one word need it; records need every word of their bytes.
                let needs_all = matches!(req, Request::Restart { .. } | Request::Record { .. })
                    || cut == 0;
                prop_assert!(!needs_all || bad, "{:?} cut to {} words: {:?}", req, cut, r);
            }
        }
    }

    #[test]
    fn malformed_requests_are_refused_with_their_reason() {
        let decode = |label, words: &[u64]| Request::decode(label, words).map_err(|e| e.reason());
        assert_eq!(decode(0, &[0]), Err(Reason::Unknown));
        assert_eq!(decode(6, &[0]), Err(Reason::Unknown));
        assert_eq!(decode(u64::MAX, &[]), Err(Reason::Unknown));
        for op in [Op::Restart, Op::SetTimer, Op::Record, Op::Recall, Op::Stop] {
            assert_eq!(
                Request::decode(op as u64, &[]),
                Err(Malformed::Short {
                    label: op as u64,
                    len: 0
                })
            );
        }
        for pd in [MAX_PDS as u64, 255, 256, u64::MAX] {
            for op in [Op::Restart, Op::Record, Op::Recall, Op::Stop] {
                let words = [pd, 0, 0];
                assert_eq!(
                    Request::decode(op as u64, &words),
                    Err(Malformed::BadPd(pd))
                );
            }
        }
        // The record length the monitor's fault injection sends (`refuse_once`): FAILED.
        assert_eq!(
            Request::decode(Op::Restart as u64, &[1, 0, u64::MAX]),
            Err(Malformed::BadRecord { len: u64::MAX })
        );
        assert_eq!(
            decode(Op::Restart as u64, &[1, 0, u64::MAX]),
            Err(Reason::Failed)
        );
        let over = RECORD_BYTES as u64 + 1;
        let words: Vec<u64> = [1, 0, over].into_iter().chain([0; 117]).collect();
        assert_eq!(words.len(), MSG_MAX_LENGTH);
        assert_eq!(
            Request::decode(Op::Record as u64, &words),
            Err(Malformed::BadRecord { len: over })
        );
        // A record longer than the words that carry it.
        assert_eq!(
            Request::decode(Op::Record as u64, &[1, 0, 9, 0]),
            Err(Malformed::BadRecord { len: 9 })
        );
    }

    #[test]
    fn malformed_replies_are_errors() {
        assert_eq!(
            Reply::decode(Op::Restart, 0, &[3]),
            Err(Malformed::Short { label: 0, len: 1 })
        );
        assert_eq!(
            Reply::decode(Op::Stop, 1, &[9]),
            Err(Malformed::BadReason(9))
        );
        assert_eq!(
            Reply::decode(Op::Stop, 2, &[0]),
            Err(Malformed::UnknownLabel(2))
        );
        assert_eq!(
            Reply::decode(Op::Recall, 0, &[4, 0, 8]),
            Err(Malformed::BadRecord { len: 8 })
        );
    }

    #[test]
    fn the_wire_format_is_the_documented_one() {
        let record = Record::from_slice(&[1, 2, 3, 4, 5, 6, 7, 8, 9]).unwrap();
        let m = Request::Restart {
            pd: 3,
            generation: 7,
            record: record.clone(),
        }
        .encode();
        assert_eq!(m.label, 1);
        assert_eq!(m.words(), [3, 7, 9, 0x0807_0605_0403_0201, 9]);
        let m = Request::Record { pd: 2, record }.encode();
        assert_eq!((m.label, m.words()[..3].to_vec()), (3, [2, 0, 9].to_vec()));
        let m = Request::SetTimer { at: 5 }.encode();
        assert_eq!((m.label, m.words()), (2, &[5][..]));
        let m = Request::Recall { pd: 4 }.encode();
        assert_eq!((m.label, m.words()), (4, &[4][..]));
        let m = Request::Stop { pd: 4 }.encode();
        assert_eq!((m.label, m.words()), (5, &[4][..]));
        let m = Reply::Restarted {
            generation: 2,
            how: How::Standby,
        }
        .encode();
        assert_eq!((m.label, m.words()), (0, &[2, 1][..]));
        let m = Reply::Refused(Reason::Failed).encode();
        assert_eq!((m.label, m.words()), (1, &[2][..]));
        assert_eq!(words_for(RECORD_BYTES), MSG_MAX_LENGTH);
    }
}
