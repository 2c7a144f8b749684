extern crate std;
use std::vec::Vec;

use super::*;

/// Records accesses; reads return `offset | region << 16`; offset 0xBAD aborts.
#[derive(Default)]
struct Probe {
    writes: Vec<(Access, u64)>,
    reads: Vec<Access>,
}

impl MmioDevice for Probe {
    fn read(&mut self, a: Access) -> Result<u64, DeviceError> {
        self.reads.push(a);
        if a.offset == 0xBAD {
            return Err(DeviceError::Abort);
        }
        Ok(0xFFFF_FFFF_0000_0000 | a.offset | (a.region as u64) << 16)
    }
    fn write(&mut self, a: Access, value: u64) -> Result<(), DeviceError> {
        if a.offset == 0xBAD {
            return Err(DeviceError::Abort);
        }
        self.writes.push((a, value));
        Ok(())
    }
}

fn acc(ipa: u64, size: u8, write: bool, reg: u8) -> MmioAccess {
    MmioAccess {
        ipa,
        size,
        write,
        reg,
        sign_extend: false,
        sixty_four: false,
        acquire_release: false,
    }
}

#[test]
fn routes_to_window_with_offset_and_region() {
    let mut p = Probe::default();
    {
        let mut bus: Bus<'_, 4> = Bus::new();
        let id = bus.add_device(&mut p).unwrap();
        bus.map(id, 0, 0x1000, 0x1000).unwrap();
        bus.map(id, 3, 0x8000, 0x100).unwrap();
        assert_eq!(
            bus.dispatch(1, &acc(0x1010, 4, false, 2), 0),
            MmioOutcome::Load {
                reg: 2,
                value: 0x10
            }
        );
        assert_eq!(
            bus.dispatch(0, &acc(0x8004, 4, false, 0), 0),
            MmioOutcome::Load {
                reg: 0,
                value: 0x3_0004
            }
        );
        assert_eq!(
            bus.dispatch(2, &acc(0x1ffc, 2, true, 1), 0xABCD_1234),
            MmioOutcome::Done
        );
    }
    assert_eq!(
        p.reads[0],
        Access {
            vcpu: 1,
            region: 0,
            offset: 0x10,
            size: 4
        }
    );
    assert_eq!(
        p.writes,
        [(
            Access {
                vcpu: 2,
                region: 0,
                offset: 0xffc,
                size: 2
            },
            0x1234
        )]
    );
}

#[test]
fn unmapped_and_straddling_accesses_abort() {
    let mut p = Probe::default();
    {
        let mut bus: Bus<'_, 2> = Bus::new();
        let id = bus.add_device(&mut p).unwrap();
        bus.map(id, 0, 0x1000, 0x1000).unwrap();
        assert_eq!(
            bus.dispatch(0, &acc(0xfff, 1, false, 0), 0),
            MmioOutcome::ExternalAbort
        );
        assert_eq!(
            bus.dispatch(0, &acc(0x2000, 4, true, 0), 0),
            MmioOutcome::ExternalAbort
        );
        assert_eq!(
            bus.dispatch(0, &acc(0x1ffc, 8, false, 0), 0),
            MmioOutcome::ExternalAbort
        );
        assert_eq!(
            bus.dispatch(0, &acc(u64::MAX, 8, false, 0), 0),
            MmioOutcome::ExternalAbort
        );
    }
    assert!(p.reads.is_empty() && p.writes.is_empty());
}

#[test]
fn device_abort_and_xzr_load() {
    let mut p = Probe::default();
    let mut bus: Bus<'_, 1> = Bus::new();
    let id = bus.add_device(&mut p).unwrap();
    bus.map(id, 0, 0, 0x1000).unwrap();
    assert_eq!(
        bus.dispatch(0, &acc(0xBAD, 1, false, 0), 0),
        MmioOutcome::ExternalAbort
    );
    assert_eq!(
        bus.dispatch(0, &acc(0xBAD, 1, true, 0), 0),
        MmioOutcome::ExternalAbort
    );
    assert_eq!(
        bus.dispatch(0, &acc(0x10, 4, false, XZR), 0),
        MmioOutcome::Done
    );
    assert!(bus.device_mut(id).is_some());
}

#[test]
fn map_rejects_bad_windows() {
    let mut p = Probe::default();
    let mut q = Probe::default();
    let mut r = Probe::default();
    let mut bus: Bus<'_, 2> = Bus::new();
    assert_eq!(bus.map(DeviceId(0), 0, 0, 1), Err(MapError::NoSuchDevice));
    let id = bus.add_device(&mut p).unwrap();
    bus.add_device(&mut q).unwrap();
    assert_eq!(bus.add_device(&mut r).err(), Some(MapError::Full));
    assert_eq!(bus.map(DeviceId(7), 0, 0, 1), Err(MapError::NoSuchDevice));
    assert_eq!(bus.map(id, 0, 0x1000, 0), Err(MapError::BadRange));
    assert_eq!(bus.map(id, 0, u64::MAX, 2), Err(MapError::BadRange));
    bus.map(id, 0, 0x1000, 0x1000).unwrap();
    assert_eq!(bus.map(id, 0, 0x1fff, 1), Err(MapError::Overlap));
    assert_eq!(bus.map(id, 0, 0x0, 0x1001), Err(MapError::Overlap));
    bus.map(id, 0, 0x2000, 0x10).unwrap();
    assert_eq!(bus.map(id, 0, 0x3000, 0x10), Err(MapError::Full));
}
