//! Random sequences of retype/copy/mint/move/delete/revoke against a reference model: an
//! explicit derivation tree (parent pointers). After every step the MDB must be well formed
//! and agree with the model: same caps in the same slots, and every cap's MDB subtree (what
//! revoke would delete) equal to its model descendants. Objects never overlap unless one is
//! an untyped covering the other.

use super::*;
use crate::cnode::{CopyOp, copy_cap};
use crate::delete::delete;
use crate::revoke::revoke;
use axolotl_abi::Rights;
use std::collections::{BTreeMap, BTreeSet};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Clone, Copy, Debug)]
struct MCap {
    cap: Cap,
    parent: Option<u64>,
    revocable: bool,
}

struct Model(BTreeMap<u64, MCap>);

impl Model {
    fn ancestors(&self, mut a: u64) -> Vec<u64> {
        let mut v = vec![];
        while let Some(p) = self.0[&a].parent {
            v.push(p);
            a = p;
        }
        v
    }
    fn descendants(&self, a: u64) -> BTreeSet<u64> {
        self.0
            .keys()
            .copied()
            .filter(|&x| self.ancestors(x).contains(&a))
            .collect()
    }
    fn remove(&mut self, x: u64) {
        let parent = self.0[&x].parent;
        for m in self.0.values_mut() {
            if m.parent == Some(x) {
                m.parent = parent;
            }
        }
        self.0.remove(&x);
    }
    fn rename(&mut self, from: u64, to: u64) {
        let m = self.0.remove(&from).unwrap();
        self.0.insert(to, m);
        for m in self.0.values_mut() {
            if m.parent == Some(from) {
                m.parent = Some(to);
            }
        }
    }
}

fn snapshot(slots: &[SlotRef]) -> Vec<(Cap, MdbNode)> {
    slots.iter().map(|s| (s.cap(), s.mdb())).collect()
}

fn rights_of(c: &Cap) -> Option<Rights> {
    match *c {
        Cap::Endpoint { rights, .. }
        | Cap::Notification { rights, .. }
        | Cap::Frame { rights, .. } => Some(rights),
        _ => None,
    }
}

fn check(w: &World, model: &Model, all: &[SlotRef], step: usize) {
    check_mdb(all);
    for s in all {
        let want = model.0.get(&s.addr()).map_or(Cap::Null, |m| m.cap);
        assert_eq!(s.cap(), want, "step {step}: slot {s:?}");
    }
    for &a in model.0.keys() {
        let s = all.iter().find(|s| s.addr() == a).unwrap();
        assert_eq!(
            mdb_descendants(*s),
            model.descendants(a),
            "step {step}: subtree of {s:?} {:?}",
            s.cap()
        );
    }
    let objs: Vec<(Cap, (u64, u32))> = model
        .0
        .values()
        .filter_map(|m| m.cap.object_range().map(|r| (m.cap, r)))
        .collect();
    for (i, (a, (a0, ab))) in objs.iter().enumerate() {
        let ut = w.ut_base..w.ut_base + (1 << 16);
        assert!(ut.contains(a0), "object outside memory");
        for (b, (b0, bb)) in &objs[i + 1..] {
            let overlap = a0 < &(b0 + (1 << bb)) && b0 < &(a0 + (1 << ab));
            if overlap {
                assert!(
                    (a0, ab) == (b0, bb) && a.tag() == b.tag()
                        || a.same_region_as(b)
                        || b.same_region_as(a),
                    "step {step}: {a:?} overlaps {b:?}"
                );
            }
        }
    }
}

fn run(seed: u64, steps: usize) -> [u32; 7] {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut w = World::new(6, 16);
    let all = slots(w.root);
    let mut model = Model(BTreeMap::new());
    model.0.insert(
        w.ut.addr(),
        MCap {
            cap: w.ut.cap(),
            parent: None,
            revocable: true,
        },
    );
    let mut ok = [0u32; 7];
    for step in 0..steps {
        let live: Vec<u64> = model.0.keys().copied().collect();
        if live.is_empty() {
            break;
        }
        let pick = |rng: &mut Rng| live[rng.below(live.len() as u64) as usize];
        let slot_of = |a: u64| *all.iter().find(|s| s.addr() == a).unwrap();
        let before = snapshot(&all);
        let op = rng.below(12);
        let result: Result<(), crate::SyscallError> = match op {
            0..=2 => {
                let uts: Vec<u64> = live
                    .iter()
                    .copied()
                    .filter(|a| matches!(model.0[a].cap, Cap::Untyped { .. }))
                    .collect();
                if uts.is_empty() {
                    continue;
                }
                let u = uts[rng.below(uts.len() as u64) as usize];
                let (ty, bits) = [
                    (ObjectType::Endpoint, 0),
                    (ObjectType::Notification, 0),
                    (ObjectType::Untyped, 8 + rng.below(5)),
                    (ObjectType::SmallFrame, 0),
                    (ObjectType::CNode, 1 + rng.below(2)),
                    (ObjectType::Tcb, 0),
                ][rng.below(6) as usize];
                let n = 1 + rng.below(3);
                let off = 1 + rng.below(60);
                let r = w.retype(slot_of(u), ty, bits, off, n);
                if let Ok(r) = r {
                    for (i, addr) in r.objects().enumerate() {
                        let s = w.s(off + i as u64);
                        assert_eq!(s.cap().object_range().unwrap().0, addr);
                        let m = MCap {
                            cap: s.cap(),
                            parent: Some(u),
                            revocable: true,
                        };
                        model.0.insert(s.addr(), m);
                    }
                    // The untyped's cap changed (watermark).
                    model.0.get_mut(&u).unwrap().cap = slot_of(u).cap();
                }
                r.map(|_| ())
            }
            3..=5 => {
                let src = pick(&mut rng);
                let dest = all[rng.below(all.len() as u64) as usize];
                let rights = Rights::from_bits_truncate(rng.below(16));
                let mint = op != 3;
                let data = rng.below(3);
                let cop = if mint {
                    CopyOp::Mint { rights, data }
                } else {
                    CopyOp::Copy { rights }
                };
                let src_cap = model.0[&src].cap;
                let r = copy_cap(cop, slot_of(src), 64, dest);
                if r.is_ok() {
                    let new = dest.cap();
                    if let (Some(have), Some(got)) = (rights_of(&src_cap), rights_of(&new)) {
                        assert!(have.contains(got) && rights.contains(got), "rights grew");
                    }
                    match (src_cap.badge(), new.badge()) {
                        (Some(0), Some(b)) => assert_eq!(b, if mint { data } else { 0 }),
                        (Some(a), Some(b)) => assert_eq!(a, b, "badge changed"),
                        _ => {}
                    }
                    let revocable = match new {
                        Cap::Endpoint { .. } | Cap::Notification { .. } => {
                            new.badge() != src_cap.badge()
                        }
                        Cap::Untyped { .. } => true,
                        _ => false,
                    };
                    let sm = model.0[&src];
                    let parent = if sm.revocable { Some(src) } else { sm.parent };
                    model.0.insert(
                        dest.addr(),
                        MCap {
                            cap: new,
                            parent,
                            revocable,
                        },
                    );
                    // Copying an untyped marks the source full (seL4 setUntypedCapAsFull).
                    model.0.get_mut(&src).unwrap().cap = slot_of(src).cap();
                }
                r
            }
            6 => {
                let src = pick(&mut rng);
                let dest = all[rng.below(all.len() as u64) as usize];
                let r = copy_cap(CopyOp::Move, slot_of(src), 64, dest);
                if r.is_ok() {
                    model.rename(src, dest.addr());
                }
                r
            }
            7..=9 => {
                let x = pick(&mut rng);
                if x == w.ut.addr() {
                    continue;
                }
                w.k.preempt_every = rng.below(3) as u32;
                let s = slot_of(x);
                while delete(s, &mut w.k).is_err() {}
                model.remove(x);
                Ok(())
            }
            _ => {
                let x = pick(&mut rng);
                w.k.preempt_every = rng.below(3) as u32;
                let s = slot_of(x);
                while revoke(s, &mut w.k).is_err() {}
                for d in model.descendants(x) {
                    model.remove(d);
                }
                Ok(())
            }
        };
        match result {
            Ok(()) => ok[(op as usize).min(6)] += 1,
            Err(_) => assert_eq!(
                snapshot(&all),
                before,
                "step {step}: failed op changed state"
            ),
        }
        check(&w, &model, &all, step);
    }
    ok
}

#[test]
fn random_operations_match_the_model() {
    let mut totals = [0u32; 7];
    for seed in 0..150 {
        let ok = run(seed, 150);
        for (t, o) in totals.iter_mut().zip(ok) {
            *t += o;
        }
    }
    // The run must actually exercise every kind of operation successfully.
    assert!(totals.iter().all(|&t| t > 100), "{totals:?}");
}
