//! A new driver incarnation salvaging the frames the device completed into the dead one's
//! receive buffers: the honest case, and old state that lies (the dead driver may have died
//! of corruption; the device writes the used ring).

use axolotl_net::salvage::{FORWARDED_WORD, RECORD_WORDS, Refusal, RxRecord, Salvaged, salvage_rx};
use proptest::prelude::*;

const PADDR: u64 = 0x4800_0000;
const LEN: usize = 0x4_0000;
const QS: u16 = 16;
const HDR: usize = 12;
const BUF: u32 = 2048;
const DESC: usize = 0x1000;
const USED: usize = 0x2000;
const BUFS: usize = 0x4000;

struct Region {
    mem: Vec<u8>,
    used_idx: u16,
    record: [u32; RECORD_WORDS],
}

fn put16(m: &mut [u8], at: usize, v: u16) {
    m[at..at + 2].copy_from_slice(&v.to_le_bytes());
}
fn put32(m: &mut [u8], at: usize, v: u32) {
    m[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

impl Region {
    /// A driver that posted every buffer `b` through descriptor `b` and forwarded nothing.
    fn new() -> Self {
        let mut mem = vec![0u8; LEN];
        for b in 0..usize::from(QS) {
            let d = DESC + 16 * b;
            mem[d..d + 8]
                .copy_from_slice(&(PADDR + (BUFS + b * BUF as usize) as u64).to_le_bytes());
            put32(&mut mem, d + 8, BUF);
            put16(&mut mem, d + 12, 2); // WRITE
        }
        let record = RxRecord {
            queue_size: QS,
            desc: PADDR + DESC as u64,
            used: PADDR + USED as u64,
            buffers: PADDR + BUFS as u64,
            buf_size: BUF,
            header: HDR as u32,
        }
        .to_words();
        Self {
            mem,
            used_idx: 0,
            record,
        }
    }

    /// The device completing `frame` into the buffer of descriptor `id`.
    fn complete(&mut self, id: u32, frame: &[u8]) {
        let at = BUFS + id as usize * BUF as usize + HDR;
        self.mem[at..at + frame.len()].copy_from_slice(frame);
        self.used(id, (HDR + frame.len()) as u32);
    }

    /// A used element as the device (honest or not) writes it.
    fn used(&mut self, id: u32, len: u32) {
        let slot = USED + 4 + 8 * usize::from(self.used_idx % QS);
        put32(&mut self.mem, slot, id);
        put32(&mut self.mem, slot + 4, len);
        self.used_idx = self.used_idx.wrapping_add(1);
        put16(&mut self.mem, USED + 2, self.used_idx);
    }

    fn forwarded(&mut self, n: u16) {
        self.record[FORWARDED_WORD] = u32::from(n);
    }

    fn salvage(&self) -> (Result<Salvaged, Refusal>, Vec<Vec<u8>>) {
        let mut got = Vec::new();
        let r = salvage_rx(&self.record, &self.mem, PADDR, |f| got.push(f.to_vec()));
        (r, got)
    }
}

fn frame(seq: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| seq.wrapping_add(i as u8)).collect()
}

#[test]
fn the_frames_completed_after_the_last_forwarded_one_come_back_in_order() {
    let mut r = Region::new();
    let frames: Vec<_> = (0..5)
        .map(|i| frame(i, 60 + 363 * usize::from(i)))
        .collect();
    for (i, f) in frames.iter().enumerate() {
        r.complete(i as u32, f);
    }
    r.forwarded(2);
    let (res, got) = r.salvage();
    assert_eq!(
        res,
        Ok(Salvaged {
            frames: 3,
            refused: 0
        })
    );
    assert_eq!(got, frames[2..]);
    r.forwarded(5);
    assert_eq!(
        r.salvage(),
        (Ok(Salvaged::default()), vec![]),
        "all forwarded"
    );
}

#[test]
fn indices_that_wrap_are_followed() {
    let mut r = Region::new();
    r.used_idx = u16::MAX - 1;
    r.forwarded(u16::MAX - 1);
    r.complete(3, &frame(1, 100));
    r.complete(4, &frame(2, 100));
    r.complete(5, &frame(3, 100));
    let (res, got) = r.salvage();
    assert_eq!(res.unwrap().frames, 3);
    assert_eq!(got, vec![frame(1, 100), frame(2, 100), frame(3, 100)]);
}

#[test]
fn no_record_or_a_damaged_one_salvages_nothing() {
    let mut r = Region::new();
    r.complete(0, &frame(1, 60));
    let good = r.record;
    r.record = [0; RECORD_WORDS];
    assert_eq!(r.salvage(), (Err(Refusal::NoRecord), vec![]));
    for (word, v) in [(2, 17), (3, 0x1234), (9, 4096), (10, 4), (11, 1)] {
        r.record = good;
        r.record[word] ^= v;
        assert_eq!(
            r.salvage(),
            (Err(Refusal::BadRecord), vec![]),
            "word {word}"
        );
    }
}

/// A record whose check is right but whose layout cannot be (its writer was corrupt when
/// it wrote it): outside the region, a queue size that is no power of two, a header as
/// long as a buffer.
#[test]
fn a_record_naming_memory_outside_the_region_is_refused() {
    let base = RxRecord {
        queue_size: QS,
        desc: PADDR + DESC as u64,
        used: PADDR + USED as u64,
        buffers: PADDR + BUFS as u64,
        buf_size: BUF,
        header: HDR as u32,
    };
    let bad = [
        RxRecord {
            desc: PADDR - 16,
            ..base
        },
        RxRecord {
            used: PADDR + LEN as u64 - 8,
            ..base
        },
        RxRecord {
            buffers: PADDR + LEN as u64 - 4096,
            ..base
        },
        RxRecord {
            buffers: u64::MAX - 100,
            ..base
        },
        RxRecord {
            queue_size: 12,
            ..base
        },
        RxRecord {
            queue_size: 0,
            ..base
        },
        RxRecord {
            buf_size: 0,
            ..base
        },
        RxRecord {
            header: BUF,
            ..base
        },
    ];
    let mut r = Region::new();
    r.complete(0, &frame(1, 60));
    for b in bad {
        r.record = b.to_words();
        assert_eq!(r.salvage(), (Err(Refusal::BadRecord), vec![]), "{b:?}");
    }
}

#[test]
fn a_used_index_more_than_a_queue_ahead_refuses_everything() {
    let mut r = Region::new();
    r.complete(0, &frame(1, 60));
    put16(&mut r.mem, USED + 2, 17);
    assert_eq!(
        r.salvage(),
        (
            Err(Refusal::IndexJump {
                used: 17,
                forwarded: 0
            }),
            vec![]
        )
    );
    // Behind what was forwarded: as far ahead as the u16 wraps.
    put16(&mut r.mem, USED + 2, 0);
    r.forwarded(1);
    assert!(matches!(r.salvage().0, Err(Refusal::IndexJump { .. })));
}

/// Each lying used element is refused on its own; the honest ones around it still come.
#[test]
fn lying_used_elements_and_descriptors_are_refused_one_by_one() {
    let mut r = Region::new();
    r.complete(0, &frame(1, 60));
    r.used(16, 100); // an id past the queue
    r.used(1, 5000); // longer than the buffer
    r.used(2, 4); // shorter than the header
    r.used(3, (HDR + 1515) as u32); // a frame past the MTU
    r.used(0, 72); // buffer 0 a second time
    // Descriptor 4 points between two buffers, 5 outside the region, 6 is a chain, 7 is
    // device-readable only.
    put32(
        &mut r.mem,
        DESC + 16 * 4,
        (PADDR + BUFS as u64 + 100) as u32,
    );
    r.used(4, 100);
    r.mem[DESC + 16 * 5..DESC + 16 * 5 + 8].copy_from_slice(&(PADDR + LEN as u64).to_le_bytes());
    r.used(5, 100);
    put16(&mut r.mem, DESC + 16 * 6 + 12, 3);
    r.used(6, 100);
    put16(&mut r.mem, DESC + 16 * 7 + 12, 0);
    r.used(7, 100);
    r.complete(8, &frame(9, 1514));
    let (res, got) = r.salvage();
    assert_eq!(
        res,
        Ok(Salvaged {
            frames: 2,
            refused: 9
        })
    );
    assert_eq!(got, vec![frame(1, 60), frame(9, 1514)]);
}

proptest! {
    /// Whatever the dead driver and the device left, salvage never panics, reads nothing
    /// outside the region, hands on only frames of a possible length, and at most one per
    /// buffer.
    #[test]
    fn garbage_never_panics_and_yields_only_possible_frames(
        pokes in prop::collection::vec((0usize..0x5000, any::<u32>()), 0..200),
        forwarded in any::<u16>(),
        used_idx in any::<u16>(),
    ) {
        let mut r = Region::new();
        for k in 0..16u32 {
            r.complete(k, &frame(k as u8, 60 + 90 * k as usize));
        }
        for (at, v) in pokes {
            let at = at & !3;
            put32(&mut r.mem, at, v);
        }
        put16(&mut r.mem, USED + 2, used_idx);
        r.forwarded(forwarded);
        let (res, got) = r.salvage();
        if let Ok(s) = res {
            prop_assert_eq!(s.frames as usize, got.len());
            prop_assert!(got.len() <= usize::from(QS));
            prop_assert!(got.iter().all(|f| (14..=1514).contains(&f.len())));
        } else {
            prop_assert!(got.is_empty());
        }
    }
}
