use super::*;
use crate::cspace::*;
use crate::error::SyscallError;
use axolotl_abi::{Error, Rights};

/// root: radix 8, no guard; root[5] → L2 (radix 4, guard 0xA/4 bits); L2[3] = endpoint;
/// root[6] → L3 (radix 4, no guard); root[7] = endpoint.
struct Tree {
    _m: Vec<Mem>,
    root: Cap,
    l2: Cap,
    l3: Cap,
}

fn ep(ptr: u64) -> Cap {
    Cap::Endpoint {
        ptr,
        badge: 0,
        rights: Rights::ALL,
    }
}

fn tree() -> Tree {
    let (m1, root) = host_cnode(8, 0, 0);
    let (m2, l2) = host_cnode(4, 4, 0xA);
    let (m3, l3) = host_cnode(4, 0, 0);
    // SAFETY: test caps name the host buffers above (the endpoints are never dereferenced).
    unsafe {
        mdb::insert_root(slot(root, 5), l2);
        mdb::insert_root(slot(root, 6), l3);
        mdb::insert_root(slot(root, 7), ep(0x1000));
        mdb::insert_root(slot(l2, 3), ep(0x2000));
    }
    Tree {
        _m: vec![m1, m2, m3],
        root,
        l2,
        l3,
    }
}

#[test]
fn resolves_through_levels_and_guards() {
    let t = tree();
    assert_eq!(
        resolve_address_bits(t.root, 0x5A3, 16),
        Ok((slot(t.l2, 3), 0))
    );
    assert_eq!(
        resolve_address_bits(t.root, 0x5, 8),
        Ok((slot(t.root, 5), 0))
    );
    assert_eq!(
        resolve_address_bits(t.root, 0x63, 12),
        Ok((slot(t.l3, 3), 0))
    );
    // Bits above `depth` are ignored.
    assert_eq!(
        resolve_address_bits(t.root, 0xFF_05A3, 16),
        Ok((slot(t.l2, 3), 0))
    );
    // A non-CNode cap stops the walk with bits left.
    assert_eq!(
        resolve_address_bits(t.root, 0x07f, 12),
        Ok((slot(t.root, 7), 4))
    );
    // Empty slot: also stops (lookup_cap then sees Null).
    assert_eq!(
        resolve_address_bits(t.root, 0x08f, 12),
        Ok((slot(t.root, 8), 4))
    );
    assert_eq!(lookup_cap(t.l3, 0).map(|c| c.0), Ok(Cap::Null));
}

#[test]
fn lookup_faults() {
    let t = tree();
    assert_eq!(
        resolve_address_bits(Cap::Null, 0, 8),
        Err(LookupFault::InvalidRoot)
    );
    assert_eq!(
        resolve_address_bits(ep(0x40), 0, 8),
        Err(LookupFault::InvalidRoot)
    );
    assert_eq!(
        resolve_address_bits(t.root, 0x5B3, 16),
        Err(LookupFault::GuardMismatch {
            bits_left: 8,
            guard_found: 0xA,
            guard_size: 4
        })
    );
    // Guard longer than what is left is a guard mismatch (checked before depth).
    assert_eq!(
        resolve_address_bits(t.root, 0x2D, 11),
        Err(LookupFault::GuardMismatch {
            bits_left: 3,
            guard_found: 0xA,
            guard_size: 4
        })
    );
    assert_eq!(
        resolve_address_bits(t.root, 0x19, 10),
        Err(LookupFault::DepthMismatch {
            bits_found: 4,
            bits_left: 2
        })
    );
    assert_eq!(
        resolve_address_bits(t.root, 0x1, 4),
        Err(LookupFault::DepthMismatch {
            bits_found: 8,
            bits_left: 4
        })
    );
}

#[test]
fn full_word_lookup_with_root_guard() {
    let (m, root) = host_cnode(8, 56, 0);
    let (m2, l2) = host_cnode(8, 0, 0);
    // SAFETY: names the host buffer.
    unsafe { mdb::insert_root(slot(root, 1), l2) };
    assert_eq!(lookup_slot(root, 9), Ok(slot(root, 9)));
    assert_eq!(lookup_slot(root, 1), Ok(slot(root, 1)));
    assert_eq!(lookup_cap(root, 1).unwrap().0, l2);
    assert!(matches!(
        lookup_slot(root, 1 << 63 | 9),
        Err(LookupFault::GuardMismatch { bits_left: 64, .. })
    ));
    // A 64-bit guard-free walk needs 8 levels of radix 8; one CNode is not enough.
    let deep = Cap::CNode {
        ptr: m2.addr(),
        radix_bits: 8,
        guard_bits: 0,
        guard: 0,
    };
    assert_eq!(lookup_slot(deep, 0), Ok(slot(deep, 0)));
    drop((m, m2));
}

#[test]
fn cnode_op_lookups_map_errors_as_sel4() {
    let t = tree();
    assert_eq!(lookup_target_slot(t.root, 0x5A3, 16), Ok(slot(t.l2, 3)));
    assert_eq!(
        lookup_source_slot(t.root, 0x7f, 12),
        Err(SyscallError::FailedLookup {
            source: true,
            fault: LookupFault::DepthMismatch {
                bits_found: 0,
                bits_left: 4
            }
        })
    );
    for d in [0, 65] {
        assert_eq!(
            lookup_target_slot(t.root, 0, d),
            Err(SyscallError::RangeError { min: 1, max: 64 })
        );
    }
    let e = lookup_target_slot(ep(0), 0, 8).unwrap_err();
    assert_eq!(
        e,
        SyscallError::FailedLookup {
            source: false,
            fault: LookupFault::InvalidRoot
        }
    );
    assert_eq!(e.error(), Error::FailedLookup);
    assert_eq!(Error::from(LookupFault::InvalidRoot), Error::FailedLookup);
    let mut w = [0; 5];
    let n = lookup_target_slot(t.root, 0x5B3, 16)
        .unwrap_err()
        .detail_words(&mut w);
    assert_eq!(&w[..n], &[0, 4, 8, 0xA, 4]);
}
