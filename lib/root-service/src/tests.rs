extern crate std;
use std::vec;
use std::vec::Vec;

use proptest::prelude::*;

use super::*;
use axolotl_abi::USER_CONTEXT_WORDS;
use axolotl_boot_plan::MAX_REGIONS;

/// What the kernel does with a message: the registers as sent, the words from
/// `MSG_REGISTERS_IN_CPU` up to its length copied from the sender's buffer into the
/// receiver's, whose other words hold whatever was there (here: junk).
fn deliver<'a>(s: Sent, sender: &Words, receiver: &'a mut Words) -> Received<'a> {
    let len = (s.info.length() as usize).min(MSG_MAX_LENGTH);
    receiver.fill(0xdead_beef_dead_beef);
    if len > MSG_REGISTERS_IN_CPU {
        receiver[MSG_REGISTERS_IN_CPU..len].copy_from_slice(&sender[MSG_REGISTERS_IN_CPU..len]);
    }
    Received {
        info: s.info,
        regs: s.regs,
        ipc: receiver,
    }
}

/// A message of `label` with `words` (registers, then the buffer), as a hostile sender may
/// make it: `len` in the info word whatever the words are.
fn message<'a>(label: u64, len: u64, words: &[u64], receiver: &'a mut Words) -> Received<'a> {
    receiver.fill(0xdead_beef_dead_beef);
    let mut regs = [0; MSG_REGISTERS_IN_CPU];
    for (i, &w) in words.iter().enumerate().take(MSG_MAX_LENGTH) {
        if i < MSG_REGISTERS_IN_CPU {
            regs[i] = w;
        } else {
            receiver[i] = w;
        }
    }
    Received {
        info: MessageInfo::new(label, 0, 0, len),
        regs,
        ipc: receiver,
    }
}

/// A message of exactly `words`.
fn exact<'a>(label: u64, words: &[u64], receiver: &'a mut Words) -> Received<'a> {
    message(label, words.len() as u64, words, receiver)
}

fn junk() -> Words {
    [0x5a5a_5a5a_5a5a_5a5a; MSG_MAX_LENGTH]
}

fn record() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..=RECORD_BYTES)
}

fn pd() -> impl Strategy<Value = u8> {
    0..MAX_PDS as u8
}

fn request() -> impl Strategy<Value = Request<Vec<u8>>> {
    prop_oneof![
        (pd(), any::<u64>(), any::<bool>(), record()).prop_map(
            |(pd, generation, fresh, record)| Request::Restart {
                pd,
                generation,
                fresh,
                record
            }
        ),
        any::<u64>().prop_map(|at| Request::SetTimer { at }),
        (pd(), record()).prop_map(|(pd, record)| Request::Record { pd, record }),
        pd().prop_map(|pd| Request::Recall { pd }),
        pd().prop_map(|pd| Request::Stop { pd }),
        pd().prop_map(|pd| Request::Crash { pd }),
        (pd(), 0..USER_CONTEXT_WORDS as u8, 0..64u8)
            .prop_map(|(pd, register, bit)| Request::FlipBit { pd, register, bit }),
        pd().prop_map(|pd| Request::StopVm { pd }),
        (pd(), any::<u64>()).prop_map(|(pd, seed)| Request::WildWrite { pd, seed }),
        (pd(), 0..MAX_REGIONS as u16, any::<u32>())
            .prop_map(|(pd, region, offset)| Request::CorruptRing { pd, region, offset }),
        pd().prop_map(|pd| Request::Scrub { pd }),
        (pd(), any::<u64>()).prop_map(|(pd, seed)| Request::FlipCode { pd, seed }),
        pd().prop_map(|pd| Request::CpuTime { pd }),
    ]
}

fn reply() -> impl Strategy<Value = (Op, Reply<Vec<u8>>)> {
    let reason = prop_oneof![
        Just(Reason::BadPd),
        Just(Reason::Failed),
        Just(Reason::Unknown)
    ];
    let op = proptest::sample::select(&Op::ALL[..]);
    prop_oneof![
        prop_oneof![
            Just(Op::SetTimer),
            Just(Op::Record),
            Just(Op::Stop),
            Just(Op::Crash)
        ]
        .prop_map(|op| (op, Reply::Done)),
        (any::<u64>(), any::<bool>()).prop_map(|(generation, standby)| {
            let how = if standby { How::Standby } else { How::InPlace };
            (Op::Restart, Reply::Restarted { generation, how })
        }),
        (any::<u64>(), record())
            .prop_map(|(generation, record)| (Op::Recall, Reply::Recalled { generation, record })),
        (
            prop_oneof![
                Just(Op::WildWrite),
                Just(Op::CorruptRing),
                Just(Op::FlipCode)
            ],
            any::<u64>(),
            any::<u64>(),
            any::<u64>()
        )
            .prop_map(|(op, at, old, new)| (op, Reply::Wrote { at, old, new })),
        any::<u64>().prop_map(|corrupt_at| (Op::Scrub, Reply::Scrubbed { corrupt_at })),
        (any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(pd_cycles, guest_cycles, now)| (
            Op::CpuTime,
            Reply::CpuTime {
                pd_cycles,
                guest_cycles,
                now
            }
        )),
        (op, reason).prop_map(|(op, r)| (op, Reply::Refused(r))),
    ]
}

fn as_slice(r: &Request<Vec<u8>>) -> Request<&[u8]> {
    r.clone().map_record(|_| ()).map_record(|()| match r {
        Request::Restart { record, .. } | Request::Record { record, .. } => record.as_slice(),
        _ => &[],
    })
}

proptest! {
    #[test]
    fn requests_survive_encoding(req in request(), dirty in any::<u8>()) {
        let want = as_slice(&req);
        let mut sender = [u64::from_ne_bytes([dirty; 8]); MSG_MAX_LENGTH];
        let sent = want.encode(&mut sender).unwrap();
        prop_assert!(sent.info.length() as usize <= MSG_MAX_LENGTH);
        prop_assert_eq!(sent.info.label(), req.op() as u64);
        let mut receiver = junk();
        let got = Request::decode(deliver(sent, &sender, &mut receiver));
        prop_assert_eq!(got, Ok(want));
    }

    #[test]
    fn replies_survive_encoding((op, reply) in reply()) {
        let want = reply.clone().map_record(|_| ()).map_record(|()| match &reply {
            Reply::Recalled { record, .. } => record.as_slice(),
            _ => &[],
        });
        let mut sender = junk();
        let sent = want.encode(&mut sender).unwrap();
        prop_assert!(sent.info.length() as usize <= MSG_MAX_LENGTH);
        let mut receiver = junk();
        prop_assert_eq!(Reply::decode(op, deliver(sent, &sender, &mut receiver)), Ok(want));
    }

    /// Whatever a PD sends, decoding answers: a request that encodes back to what was sent
    /// (up to the words it ignores), or an error; never a panic, and never a word read from
    /// beyond the message's length.
    #[test]
    fn any_message_decodes_or_is_refused(
        label in prop_oneof![0u64..8, any::<u64>()],
        len in prop_oneof![0u64..=MSG_MAX_LENGTH as u64, any::<u64>()],
        words in proptest::collection::vec(
            prop_oneof![0u64..200, any::<u64>()], 0..=MSG_MAX_LENGTH),
    ) {
        let mut receiver = junk();
        let m = message(label, len, &words, &mut receiver);
        if let Ok(req) = Request::decode(m) {
            let mut sender = junk();
            let sent = req.encode(&mut sender).unwrap();
            prop_assert_eq!(sent.info.label(), m.info.label());
            prop_assert!(sent.info.length() <= m.info.length());
            let mut again = junk();
            prop_assert_eq!(Request::decode(deliver(sent, &sender, &mut again)), Ok(req));
        }
        for op in Op::ALL {
            if let Ok(reply) = Reply::decode(op, m) {
                let mut sender = junk();
                let sent = reply.encode(&mut sender).unwrap();
                let mut again = junk();
                prop_assert_eq!(Reply::decode(op, deliver(sent, &sender, &mut again)), Ok(reply));
            }
        }
    }

    /// Every cut of a request is short or a bad record, never a request, where the request
    /// needs the words cut off: every request needs its first word, and one with a record
    /// every word of its bytes.
    #[test]
    fn truncated_requests_are_refused(req in request(), cut in 0usize..MSG_MAX_LENGTH) {
        let mut sender = junk();
        let sent = as_slice(&req).encode(&mut sender).unwrap();
        let len = sent.info.length() as usize;
        let cut = cut.min(len);
        if cut < len {
            let mut receiver = junk();
            let mut m = deliver(sent, &sender, &mut receiver);
            m.info = MessageInfo::new(m.info.label(), 0, 0, cut as u64);
            let r = Request::decode(m);
            let bad = matches!(r, Err(Malformed::Short { .. } | Malformed::BadRecord { .. }));
            let needs_all = matches!(
                req,
                Request::Restart { .. }
                    | Request::Record { .. }
                    | Request::FlipBit { .. }
                    | Request::WildWrite { .. }
                    | Request::FlipCode { .. }
                    | Request::CorruptRing { .. }
            ) || cut == 0;
            prop_assert!(!needs_all || bad, "{:?} cut to {} words: {:?}", req, cut, r);
        }
    }
}

#[test]
fn malformed_requests_are_refused_with_their_reason() {
    let mut b = junk();
    let mut decode = |label, words: &[u64]| {
        Request::decode(exact(label, words, &mut b)).map(|r| r.map_record(<[u8]>::to_vec))
    };
    assert_eq!(decode(0, &[0]), Err(Malformed::UnknownLabel(0)));
    assert_eq!(decode(14, &[0]), Err(Malformed::UnknownLabel(14)));
    assert_eq!(
        decode(u64::MAX >> 12, &[]),
        Err(Malformed::UnknownLabel((1 << 52) - 1))
    );
    assert_eq!(Malformed::UnknownLabel(11).reason(), Reason::Unknown);
    for op in Op::ALL {
        assert_eq!(
            decode(op as u64, &[]),
            Err(Malformed::Short {
                label: op as u64,
                len: 0
            })
        );
    }
    for pd in [MAX_PDS as u64, 255, 256, u64::MAX] {
        for op in [
            Op::Restart,
            Op::Record,
            Op::Recall,
            Op::Stop,
            Op::Crash,
            Op::FlipBit,
            Op::StopVm,
            Op::WildWrite,
            Op::CorruptRing,
            Op::Scrub,
            Op::FlipCode,
            Op::CpuTime,
        ] {
            assert_eq!(decode(op as u64, &[pd, 0, 0, 0]), Err(Malformed::BadPd(pd)));
        }
    }
    assert_eq!(Malformed::BadPd(64).reason(), Reason::BadPd);
    // The record length the monitor's fault injection sends (`refuse_once`): FAILED.
    assert_eq!(
        decode(Op::Restart as u64, &[1, 0, u64::MAX]),
        Err(Malformed::BadRecord { len: u64::MAX })
    );
    assert_eq!(Malformed::BadRecord { len: 0 }.reason(), Reason::Failed);
    // A record longer than any, in a message as long as any.
    let over = RECORD_BYTES as u64 + 1;
    let words: Vec<u64> = [1, 0, over].into_iter().chain([0; 117]).collect();
    assert_eq!(words.len(), MSG_MAX_LENGTH);
    assert_eq!(
        decode(Op::Record as u64, &words),
        Err(Malformed::BadRecord { len: over })
    );
    // A record longer than the words that carry it.
    assert_eq!(
        decode(Op::Record as u64, &[1, 0, 9, 0, 0]),
        Err(Malformed::BadRecord { len: 9 })
    );
    // A record-carrying request without its length word.
    assert_eq!(
        decode(Op::Record as u64, &[1, 0]),
        Err(Malformed::Short { label: 3, len: 2 })
    );
}

#[test]
fn a_length_beyond_the_message_registers_reads_no_further() {
    // The info word is the sender's: a length of 127 claims words no message has.
    let mut b = junk();
    let m = message(Op::Record as u64, 127, &[1, 0, RECORD_BYTES as u64], &mut b);
    match Request::decode(m) {
        Ok(Request::Record { pd: 1, record }) => assert_eq!(record.len(), RECORD_BYTES),
        r => panic!("{r:?}"),
    }
}

#[test]
fn malformed_replies_are_errors() {
    let mut b = junk();
    let mut decode = |op, label, words: &[u64]| {
        Reply::decode(op, exact(label, words, &mut b)).map(|r| r.map_record(<[u8]>::to_vec))
    };
    assert_eq!(
        decode(Op::Restart, 0, &[3]),
        Err(Malformed::Short { label: 0, len: 1 })
    );
    assert_eq!(decode(Op::Restart, 0, &[3, 2]), Err(Malformed::BadHow(2)));
    assert_eq!(decode(Op::Stop, 1, &[9]), Err(Malformed::BadReason(9)));
    assert_eq!(
        decode(Op::Stop, 1, &[]),
        Err(Malformed::Short { label: 1, len: 0 })
    );
    assert_eq!(decode(Op::Stop, 2, &[0]), Err(Malformed::UnknownLabel(2)));
    assert_eq!(
        decode(Op::Recall, 0, &[4, 0, 8, 0]),
        Err(Malformed::BadRecord { len: 8 })
    );
}

#[test]
fn the_wire_format_is_the_documented_one() {
    let mut ipc = junk();
    let record: &[u8] = &[1, 2, 3, 4, 5, 6, 7, 8, 9];
    let s = Request::Restart {
        pd: 3,
        generation: 7,
        fresh: true,
        record,
    }
    .encode(&mut ipc)
    .unwrap();
    assert_eq!((s.info.label(), s.info.length()), (1, 6));
    assert_eq!(s.regs, [3, 7, 9, 1]);
    // The bytes from MR4 on, in memory order; the last word's padding zeroed.
    assert_eq!(ipc[4].to_ne_bytes(), [1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(ipc[5].to_ne_bytes(), [9, 0, 0, 0, 0, 0, 0, 0]);
    let s = Request::Record { pd: 2, record }.encode(&mut ipc).unwrap();
    assert_eq!((s.info.label(), s.regs), (3, [2, 0, 9, 0]));
    let s = Request::Record {
        pd: 2,
        record: &[][..],
    }
    .encode(&mut ipc)
    .unwrap();
    assert_eq!((s.info.length(), s.regs), (4, [2, 0, 0, 0]));
    let s = Request::<&[u8]>::SetTimer { at: 5 }
        .encode(&mut ipc)
        .unwrap();
    assert_eq!((s.info.label(), s.info.length(), s.regs[0]), (2, 1, 5));
    let s = Request::<&[u8]>::Recall { pd: 4 }.encode(&mut ipc).unwrap();
    assert_eq!((s.info.label(), s.info.length(), s.regs[0]), (4, 1, 4));
    let s = Request::<&[u8]>::Stop { pd: 4 }.encode(&mut ipc).unwrap();
    assert_eq!((s.info.label(), s.info.length(), s.regs[0]), (5, 1, 4));
    let s = Request::<&[u8]>::Crash { pd: 4 }.encode(&mut ipc).unwrap();
    assert_eq!((s.info.label(), s.info.length(), s.regs[0]), (6, 1, 4));
    let s = Request::<&[u8]>::FlipBit {
        pd: 4,
        register: 34,
        bit: 63,
    }
    .encode(&mut ipc)
    .unwrap();
    assert_eq!(
        (s.info.label(), s.info.length(), s.regs),
        (7, 3, [4, 34, 63, 0])
    );
    let s = Reply::<&[u8]>::Restarted {
        generation: 2,
        how: How::Standby,
    }
    .encode(&mut ipc)
    .unwrap();
    assert_eq!(
        (s.info.label(), s.info.length(), s.regs),
        (0, 2, [2, 1, 0, 0])
    );
    let s = Reply::<&[u8]>::Refused(Reason::Failed)
        .encode(&mut ipc)
        .unwrap();
    assert_eq!((s.info.label(), s.info.length(), s.regs[0]), (1, 1, 2));
    let s = Reply::<&[u8]>::Done.encode(&mut ipc).unwrap();
    assert_eq!((s.info.label(), s.info.length()), (0, 1));
    assert_eq!(words_for(RECORD_BYTES), MSG_MAX_LENGTH);
}

#[test]
fn a_record_too_long_is_not_encoded() {
    let mut ipc = junk();
    let big = [0u8; RECORD_BYTES + 1];
    assert_eq!(
        Request::Record {
            pd: 0,
            record: &big[..]
        }
        .encode(&mut ipc),
        Err(TooLong)
    );
    // A source that claims more than it had room for is refused too.
    struct Liar;
    impl RecordSource for Liar {
        fn write_into(self, _: &mut [u8]) -> Option<usize> {
            Some(RECORD_BYTES + 8)
        }
    }
    assert_eq!(
        Reply::Recalled {
            generation: 0,
            record: Liar
        }
        .encode(&mut ipc),
        Err(TooLong)
    );
}

#[test]
fn a_source_encodes_in_place() {
    struct Counting(usize);
    impl RecordSource for Counting {
        fn write_into(self, out: &mut [u8]) -> Option<usize> {
            for (i, b) in out.iter_mut().take(self.0).enumerate() {
                *b = i as u8;
            }
            Some(self.0)
        }
    }
    let mut sender = junk();
    let s = Request::Restart {
        pd: 1,
        generation: 2,
        fresh: false,
        record: Counting(20),
    }
    .encode(&mut sender)
    .unwrap();
    let mut receiver = junk();
    let want: Vec<u8> = (0..20).collect();
    assert_eq!(
        Request::decode(deliver(s, &sender, &mut receiver)),
        Ok(Request::Restart {
            pd: 1,
            generation: 2,
            fresh: false,
            record: &want[..]
        })
    );
}

#[test]
fn a_ring_corruption_names_a_region_and_offset_that_can_exist() {
    let mut buf = junk();
    let mut decode = |words: &[u64]| {
        let m = exact(Op::CorruptRing as u64, words, &mut buf);
        Request::decode(m).map(|r| r.map_record(|_| ()))
    };
    assert_eq!(
        decode(&[3, 127, 0xffff_fffc]),
        Ok(Request::CorruptRing {
            pd: 3,
            region: 127,
            offset: 0xffff_fffc
        })
    );
    for (region, offset) in [(128, 0), (1 << 16, 0), (0, 1 << 32), (u64::MAX, u64::MAX)] {
        assert_eq!(
            decode(&[3, region, offset]),
            Err(Malformed::BadRing { region, offset })
        );
    }
    assert_eq!(
        Malformed::BadRing {
            region: 0,
            offset: 0
        }
        .reason(),
        Reason::Failed
    );
}

#[test]
fn a_wild_write_lands_on_a_word_of_a_page_uniformly() {
    assert_eq!(wild_write_target([], 7), None);
    assert_eq!(wild_write_target([(0x1000, 0)], 7), None);
    let pages = [
        (0x20_0000, 0x1000),
        (0x40_0000, 0x20_0000),
        (0x1_0000, 0x1000),
    ];
    let words: u64 = pages.iter().map(|p| p.1 / 8).sum();
    let mut hits = [0u64; 3];
    for seed in 0..20_000 {
        let (i, off) = wild_write_target(pages, seed).unwrap();
        assert!(off % 8 == 0 && off + 8 <= pages[i].1, "{i} {off:#x}");
        hits[i] += 1;
    }
    // In proportion to the pages' sizes (the 2 MiB page holds 512 of 514 parts).
    let big = hits[1] as f64 / 20_000.0;
    let want = (pages[1].1 / 8) as f64 / words as f64;
    assert!((big - want).abs() < 0.01, "{hits:?}");
    assert!(hits[0] > 0 && hits[2] > 0, "{hits:?}");
    // Neighbouring seeds land far apart.
    let a = wild_write_target(pages, 1).unwrap();
    let b = wild_write_target(pages, 2).unwrap();
    assert_ne!(a, b);
    assert_ne!(scramble(1), scramble(2));
}

#[test]
fn a_bit_flip_names_a_register_and_bit_that_exist() {
    let mut buf = junk();
    let mut decode = |words: &[u64]| {
        let m = exact(Op::FlipBit as u64, words, &mut buf);
        Request::decode(m).map(|r| r.map_record(|_| ()))
    };
    assert_eq!(
        decode(&[3, 0, 0]),
        Ok(Request::FlipBit {
            pd: 3,
            register: 0,
            bit: 0
        })
    );
    for (register, bit) in [
        (35, 0),
        (0, 64),
        (256, 1),
        (u64::MAX, u64::MAX),
        (2, 1 << 8),
    ] {
        assert_eq!(
            decode(&[3, register, bit]),
            Err(Malformed::BadBit { register, bit })
        );
    }
    assert_eq!(
        Malformed::BadBit {
            register: 0,
            bit: 64
        }
        .reason(),
        Reason::Failed
    );
    assert_eq!(register_name(0), Some("pc"));
    assert_eq!(register_name(3), Some("x0"));
    assert_eq!(register_name(33), Some("x30"));
    assert_eq!(register_name(34), Some("tpidr_el0"));
    assert_eq!(register_name(35), None);
}

#[test]
fn a_restart_is_fresh_or_not_and_nothing_else() {
    let mut buf = junk();
    let mut decode = |fresh: u64| {
        let m = exact(Op::Restart as u64, &[2, 5, 0, fresh], &mut buf);
        Request::decode(m).map(|r| r.map_record(<[u8]>::len))
    };
    for (w, fresh) in [(0, false), (1, true)] {
        assert_eq!(
            decode(w),
            Ok(Request::Restart {
                pd: 2,
                generation: 5,
                fresh,
                record: 0
            })
        );
    }
    for w in [2, 3, 1 << 63, u64::MAX] {
        assert_eq!(decode(w), Err(Malformed::BadFresh(w)));
    }
    assert_eq!(Malformed::BadFresh(2).reason(), Reason::Failed);
    // A record's MR3 is still nothing to it.
    let m = exact(Op::Record as u64, &[2, 0, 0, 7], &mut buf);
    assert_eq!(
        Request::decode(m).map(|r| r.map_record(<[u8]>::len)),
        Ok(Request::Record { pd: 2, record: 0 })
    );
}
