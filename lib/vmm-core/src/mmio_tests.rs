use super::*;

// Hand-assembled syndromes (EC=0x24, IL=1, DFSC=0x07 stage-2 translation fault L3).
const LDR_W1: u64 = 0x9381_0007; // ldr w1, [x0]: ISV, SAS=2, SRT=1
const STRB_W2: u64 = 0x9302_0047; // strb w2, [x0]: ISV, SAS=0, SRT=2, WnR
const LDRSH_X3: u64 = 0x9363_8007; // ldrsh x3, [x0]: ISV, SAS=1, SSE, SRT=3, SF

#[test]
fn decodes_word_load() {
    let a = decode(LDR_W1, 0x0900_0018).unwrap();
    assert_eq!(
        a,
        MmioAccess {
            ipa: 0x0900_0018,
            size: 4,
            write: false,
            reg: 1,
            sign_extend: false,
            sixty_four: false,
            acquire_release: false,
        }
    );
}

#[test]
fn decodes_byte_store_and_signed_halfword_load() {
    let s = decode(STRB_W2, 0x0900_0000).unwrap();
    assert_eq!((s.size, s.write, s.reg, s.sixty_four), (1, true, 2, false));
    let l = decode(LDRSH_X3, 0x0800_0000).unwrap();
    assert_eq!(
        (l.size, l.write, l.reg, l.sign_extend, l.sixty_four),
        (2, false, 3, true, true)
    );
}

#[test]
fn decodes_ldar_and_doubleword() {
    // ldar x5, [x0]: SAS=3, SRT=5, SF, AR.
    let esr = 0x9300_0007 | (3 << 22) | (5 << 16) | (1 << 15) | (1 << 14);
    let a = decode(esr, 0).unwrap();
    assert_eq!(
        (a.size, a.reg, a.sixty_four, a.acquire_release),
        (8, 5, true, true)
    );
}

#[test]
fn isv_clear_is_a_precise_error() {
    let esr = LDR_W1 & !(1 << 24);
    assert_eq!(decode(esr, 0), Err(DecodeError::NoSyndrome { esr }));
    assert_eq!(
        DecodeError::NoSyndrome { esr }.action(),
        DecodeAction::ReportAndAbort
    );
}

#[test]
fn other_syndromes_are_rejected() {
    assert_eq!(
        decode(0x5A00_0000, 0),
        Err(DecodeError::NotDataAbort { ec: 0x16 })
    );
    assert_eq!(
        decode(LDR_W1 | (1 << 8), 0),
        Err(DecodeError::CacheMaintenance)
    );
    assert_eq!(DecodeError::CacheMaintenance.action(), DecodeAction::Skip);
    assert_eq!(decode(LDR_W1 | (1 << 7), 0), Err(DecodeError::StageOneWalk));
    assert_eq!(
        decode(LDR_W1 | (1 << 9), 0),
        Err(DecodeError::ExternalAbort)
    );
    // CM wins over ISV=0: DC CIVAC never has a valid syndrome.
    assert_eq!(
        decode((LDR_W1 & !(1 << 24)) | (1 << 8), 0),
        Err(DecodeError::CacheMaintenance)
    );
}

#[test]
fn fault_ipa_combines_hpfar_and_far() {
    // HPFAR.FIPA holds IPA[51:12] at bits [43:4].
    assert_eq!(fault_ipa(0x0009_0000, 0xFFFF_0000_1234_5018), 0x0900_0018);
    assert_eq!(fault_ipa(0x0090_0000, 0x18), 0x9000_0018);
    assert_eq!(fault_ipa(u64::MAX, u64::MAX), 0x000F_FFFF_FFFF_FFFF);
}

#[test]
fn load_extension_and_truncation() {
    let mut a = decode(LDRSH_X3, 0).unwrap();
    assert_eq!(a.load_value(0x8001), 0xFFFF_FFFF_FFFF_8001);
    assert_eq!(a.load_value(0xDEAD_7001), 0x7001);
    a.sixty_four = false; // ldrsh w3
    assert_eq!(a.load_value(0x8001), 0xFFFF_8001);
    a.sign_extend = false; // ldrh w3
    assert_eq!(a.load_value(0xFFFF_8001), 0x8001);
    let b = MmioAccess {
        size: 1,
        sign_extend: true,
        sixty_four: true,
        ..a
    };
    assert_eq!(b.load_value(0x80), 0xFFFF_FFFF_FFFF_FF80);
    let w = MmioAccess {
        size: 4,
        sign_extend: true,
        sixty_four: true,
        ..a
    }; // ldrsw
    assert_eq!(w.load_value(0x8000_0000), 0xFFFF_FFFF_8000_0000);
    let d = MmioAccess {
        size: 8,
        sign_extend: false,
        sixty_four: true,
        ..a
    };
    assert_eq!(d.load_value(u64::MAX), u64::MAX);
    let dw = MmioAccess {
        sixty_four: false,
        ..d
    };
    assert_eq!(dw.load_value(u64::MAX), 0xFFFF_FFFF);
}

#[test]
fn store_value_masks_and_xzr_is_zero() {
    let s = decode(STRB_W2, 0).unwrap();
    assert_eq!(s.store_value(0x1234_5678), 0x78);
    let z = MmioAccess { reg: XZR, ..s };
    assert_eq!(z.store_value(0xFF), 0);
    let h = MmioAccess { size: 2, ..s };
    assert_eq!(h.store_value(u64::MAX), 0xFFFF);
}

#[test]
fn alignment() {
    let a = decode(LDR_W1, 0x1002).unwrap();
    assert!(!a.is_aligned());
    assert!(MmioAccess { ipa: 0x1004, ..a }.is_aligned());
    assert!(
        MmioAccess {
            ipa: 0x1003,
            size: 1,
            ..a
        }
        .is_aligned()
    );
}
