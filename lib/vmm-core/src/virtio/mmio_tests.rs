//! The transport's registers, one by one, and the driver-status state machine.
extern crate std;

use super::*;
use crate::bus::MmioDevice;
use crate::virtio::net::{F_MAC, NetConfig, VirtioNet};
use crate::virtio::queue::QueueError;
use crate::virtio::testutil::*;
use crate::virtio::{F_EVENT_IDX, F_VERSION_1, isr, status::*};

const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

fn net() -> VirtioNet {
    VirtioNet::new(
        NetConfig {
            mac: MAC,
            link_up: true,
        },
        RAM,
    )
}

fn queues() -> [DriverQueue; 2] {
    [
        DriverQueue::new(0, 16, RAM_BASE + 0x1_0000),
        DriverQueue::new(1, 16, RAM_BASE + 0x2_0000),
    ]
}

#[test]
fn identity_registers() {
    let mut d = net();
    assert_eq!(rd(&mut d, MAGIC_VALUE), 0x7472_6976);
    assert_eq!(rd(&mut d, VERSION), 2);
    assert_eq!(rd(&mut d, DEVICE_ID), 1);
    assert_eq!(rd(&mut d, VENDOR_ID), VENDOR);
}

#[test]
fn device_features_by_selector() {
    let mut d = net();
    let f = offered(&mut d);
    assert_ne!(f & F_VERSION_1, 0);
    assert_ne!(f & F_MAC, 0);
    wr(&mut d, DEVICE_FEATURES_SEL, 2);
    assert_eq!(rd(&mut d, DEVICE_FEATURES), 0);
}

#[test]
fn probe_sequence_reaches_driver_ok() {
    let mut d = net();
    let s = init(&mut d, F_VERSION_1 | F_MAC, &queues());
    assert_eq!(s, ACKNOWLEDGE | DRIVER | FEATURES_OK);
    assert_eq!(
        rd(&mut d, STATUS),
        ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK
    );
    assert!(d.transport.live());
    assert_eq!(d.transport.features(), F_VERSION_1 | F_MAC);
    assert_eq!(d.transport.counters, Counters::default());
    for q in 0..2 {
        wr(&mut d, QUEUE_SEL, q);
        assert_eq!(rd(&mut d, QUEUE_READY), 1);
    }
}

#[test]
fn features_ok_refused_for_features_not_offered() {
    let mut d = net();
    // Bit 8 is VIRTIO_NET_F_GUEST_TSO6, which the device does not offer.
    let s = init(&mut d, F_VERSION_1 | 1 << 8, &[]);
    assert_eq!(s & FEATURES_OK, 0);
    // DRIVER_OK without FEATURES_OK is refused as well.
    assert_eq!(rd(&mut d, STATUS), ACKNOWLEDGE | DRIVER);
    assert_eq!(d.transport.counters.refused_writes, 2);
}

#[test]
fn features_ok_refused_without_version_1() {
    let mut d = net();
    let s = init(&mut d, F_MAC, &[]);
    assert_eq!(s & FEATURES_OK, 0);
}

#[test]
fn features_ok_refused_with_bits_above_63() {
    let mut d = net();
    wr(&mut d, STATUS, ACKNOWLEDGE | DRIVER);
    wr(&mut d, DRIVER_FEATURES_SEL, 1);
    wr(&mut d, DRIVER_FEATURES, 1);
    wr(&mut d, DRIVER_FEATURES_SEL, 2);
    wr(&mut d, DRIVER_FEATURES, 1);
    wr(&mut d, STATUS, ACKNOWLEDGE | DRIVER | FEATURES_OK);
    assert_eq!(rd(&mut d, STATUS) & FEATURES_OK, 0);
}

#[test]
fn features_ok_needs_acknowledge_and_driver() {
    let mut d = net();
    wr(&mut d, DRIVER_FEATURES_SEL, 1);
    wr(&mut d, DRIVER_FEATURES, 1);
    wr(&mut d, STATUS, FEATURES_OK);
    assert_eq!(rd(&mut d, STATUS), 0);
}

#[test]
fn driver_features_frozen_after_features_ok() {
    let mut d = net();
    init(&mut d, F_VERSION_1, &queues());
    wr(&mut d, DRIVER_FEATURES_SEL, 0);
    wr(&mut d, DRIVER_FEATURES, F_MAC as u32);
    assert_eq!(d.transport.features(), F_VERSION_1);
    assert_eq!(d.transport.counters.refused_writes, 1);
}

#[test]
fn clearing_a_status_bit_is_refused() {
    let mut d = net();
    init(&mut d, F_VERSION_1, &queues());
    wr(&mut d, STATUS, ACKNOWLEDGE | DRIVER | DRIVER_OK);
    assert_eq!(
        rd(&mut d, STATUS),
        ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK
    );
    assert_eq!(d.transport.counters.refused_writes, 1);
}

#[test]
fn failed_stops_the_device() {
    let mut d = net();
    init(&mut d, F_VERSION_1, &queues());
    let s = rd(&mut d, STATUS);
    wr(&mut d, STATUS, s | FAILED);
    assert!(!d.transport.live());
    wr(&mut d, QUEUE_NOTIFY, 1);
    assert_eq!(d.transport.take_notified(), 0);
}

#[test]
fn writing_zero_resets() {
    let mut d = net();
    init(&mut d, F_VERSION_1 | F_EVENT_IDX, &queues());
    d.transport.interrupt_used();
    let epoch = d.transport.epoch();
    wr(&mut d, STATUS, 0);
    assert_eq!(rd(&mut d, STATUS), 0);
    assert_eq!(rd(&mut d, INTERRUPT_STATUS), 0);
    assert!(!d.irq_level());
    assert_eq!(d.transport.features(), 0);
    assert_ne!(d.transport.epoch(), epoch);
    for q in 0..2 {
        wr(&mut d, QUEUE_SEL, q);
        assert_eq!(rd(&mut d, QUEUE_READY), 0);
    }
    // And the device can be brought up again.
    init(&mut d, F_VERSION_1, &queues());
    assert!(d.transport.live());
}

#[test]
fn queue_num_max_and_absent_queues() {
    let mut d = net();
    wr(&mut d, QUEUE_SEL, 1);
    assert_eq!(rd(&mut d, QUEUE_NUM_MAX), 256);
    wr(&mut d, QUEUE_SEL, 2);
    assert_eq!(rd(&mut d, QUEUE_NUM_MAX), 0);
    assert_eq!(rd(&mut d, QUEUE_READY), 0);
    // Configuring a queue that does not exist does nothing.
    wr(&mut d, QUEUE_NUM, 16);
    wr(&mut d, QUEUE_READY, 1);
    assert_eq!(rd(&mut d, QUEUE_READY), 0);
    assert_eq!(d.transport.counters.refused_writes, 2);
}

fn bad_queue(f: impl FnOnce(&mut DriverQueue), want: QueueError) {
    let mut d = net();
    let mut qs = queues();
    f(&mut qs[1]);
    init(&mut d, F_VERSION_1, &qs);
    assert_eq!(d.transport.last_error, Some(want));
    assert_ne!(rd(&mut d, STATUS) & DEVICE_NEEDS_RESET, 0);
    assert!(!d.transport.live());
    wr(&mut d, QUEUE_SEL, 1);
    assert_eq!(rd(&mut d, QUEUE_READY), 0);
}

#[test]
fn queue_size_not_a_power_of_two() {
    bad_queue(|q| q.size = 12, QueueError::BadSize(12));
}

#[test]
fn queue_size_above_max() {
    bad_queue(|q| q.size = 512, QueueError::BadSize(512));
}

#[test]
fn queue_size_zero() {
    bad_queue(|q| q.size = 0, QueueError::BadSize(0));
}

#[test]
fn queue_descriptors_misaligned() {
    bad_queue(|q| q.desc += 8, QueueError::Misaligned(RAM_BASE + 0x2_0008));
}

#[test]
fn queue_used_ring_misaligned() {
    bad_queue(|q| q.used += 2, QueueError::Misaligned(RAM_BASE + 0x2_012a));
}

#[test]
fn queue_available_ring_outside_ram() {
    bad_queue(
        |q| q.avail = 0x1000,
        QueueError::OutsideRam {
            addr: 0x1000,
            len: 36,
        },
    );
}

#[test]
fn queue_ring_running_past_ram_end() {
    let end = RAM_BASE + RAM_SIZE as u64;
    bad_queue(
        |q| q.desc = end - 128,
        QueueError::OutsideRam {
            addr: end - 128,
            len: 256,
        },
    );
}

#[test]
fn queue_error_after_driver_ok_raises_config_interrupt() {
    let mut d = net();
    init(&mut d, F_VERSION_1, &queues());
    assert!(!d.irq_level());
    d.transport.device_error(QueueError::ChainTooLong);
    assert_eq!(rd(&mut d, INTERRUPT_STATUS), isr::CONFIG_CHANGE);
    assert!(d.irq_level());
    // The driver can neither clear NEEDS_RESET nor run the device until it resets it.
    wr(
        &mut d,
        STATUS,
        ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK,
    );
    assert_ne!(rd(&mut d, STATUS) & DEVICE_NEEDS_RESET, 0);
    wr(&mut d, QUEUE_NOTIFY, 0);
    assert_eq!(d.transport.take_notified(), 0);
    wr(&mut d, STATUS, 0);
    assert_eq!(rd(&mut d, STATUS), 0);
    assert_eq!(d.transport.last_error, None);
}

#[test]
fn queue_registers_frozen_while_ready() {
    let mut d = net();
    let qs = queues();
    init(&mut d, F_VERSION_1, &qs);
    wr(&mut d, QUEUE_SEL, 0);
    wr(&mut d, QUEUE_DESC_LOW, 0x1234_0000);
    wr(&mut d, QUEUE_NUM, 8);
    assert_eq!(d.transport.queues[0].desc, qs[0].desc);
    assert_eq!(d.transport.queues[0].num, 16);
    assert_eq!(d.transport.counters.refused_writes, 2);
    // Stopping the queue lets the driver change it, and starts a new epoch.
    let epoch = d.transport.epoch();
    wr(&mut d, QUEUE_READY, 0);
    assert_eq!(rd(&mut d, QUEUE_READY), 0);
    assert_ne!(d.transport.epoch(), epoch);
    wr(&mut d, QUEUE_NUM, 8);
    assert_eq!(d.transport.queues[0].num, 8);
}

#[test]
fn queue_ready_before_features_ok_is_refused() {
    let mut d = net();
    let q = &queues()[0];
    wr(&mut d, STATUS, ACKNOWLEDGE | DRIVER);
    wr(&mut d, QUEUE_SEL, 0);
    wr(&mut d, QUEUE_NUM, 16);
    wr(&mut d, QUEUE_DESC_LOW, q.desc as u32);
    wr(&mut d, QUEUE_DRIVER_LOW, q.avail as u32);
    wr(&mut d, QUEUE_DEVICE_LOW, q.used as u32);
    wr(&mut d, QUEUE_READY, 1);
    assert_eq!(rd(&mut d, QUEUE_READY), 0);
    assert_eq!(d.transport.counters.refused_writes, 1);
}

#[test]
fn high_address_halves() {
    let mut d = net();
    wr(&mut d, QUEUE_SEL, 1);
    wr(&mut d, QUEUE_DESC_LOW, 0x1000);
    wr(&mut d, QUEUE_DESC_HIGH, 0x2);
    wr(&mut d, QUEUE_DRIVER_HIGH, 0x3);
    wr(&mut d, QUEUE_DRIVER_LOW, 0x2000);
    wr(&mut d, QUEUE_DEVICE_LOW, 0x3000);
    wr(&mut d, QUEUE_DEVICE_HIGH, 0x4);
    let q = &d.transport.queues[1];
    assert_eq!(
        (q.desc, q.avail, q.used),
        (0x2_0000_1000, 0x3_0000_2000, 0x4_0000_3000)
    );
}

#[test]
fn notifications_only_when_running_and_ready() {
    let mut d = net();
    wr(&mut d, QUEUE_NOTIFY, 0);
    assert_eq!(d.transport.counters.ignored_notifications, 1);
    init(&mut d, F_VERSION_1, &queues()[..1]);
    wr(&mut d, QUEUE_NOTIFY, 1); // not ready
    wr(&mut d, QUEUE_NOTIFY, 7); // no such queue
    wr(&mut d, QUEUE_NOTIFY, u32::MAX);
    assert_eq!(d.transport.counters.ignored_notifications, 4);
    assert_eq!(d.transport.take_notified(), 0);
    wr(&mut d, QUEUE_NOTIFY, 0);
    assert_eq!(d.transport.take_notified(), 1);
    assert_eq!(d.transport.take_notified(), 0);
}

#[test]
fn interrupt_status_and_ack() {
    let mut d = net();
    init(&mut d, F_VERSION_1, &queues());
    d.transport.interrupt_used();
    d.set_link(false);
    assert_eq!(
        rd(&mut d, INTERRUPT_STATUS),
        isr::USED_BUFFER | isr::CONFIG_CHANGE
    );
    wr(&mut d, INTERRUPT_ACK, isr::USED_BUFFER);
    assert_eq!(rd(&mut d, INTERRUPT_STATUS), isr::CONFIG_CHANGE);
    assert!(d.irq_level());
    wr(&mut d, INTERRUPT_ACK, isr::CONFIG_CHANGE);
    assert!(!d.irq_level());
}

#[test]
fn config_generation_changes_with_the_config() {
    let mut d = net();
    let g = rd(&mut d, CONFIG_GENERATION);
    d.set_link(false);
    assert_ne!(rd(&mut d, CONFIG_GENERATION), g);
    // Before DRIVER_OK nobody is told by interrupt.
    assert!(!d.irq_level());
}

#[test]
fn no_shared_memory_regions() {
    let mut d = net();
    wr(&mut d, SHM_SEL, 0);
    for r in [SHM_LEN_LOW, SHM_LEN_HIGH, SHM_BASE_LOW, SHM_BASE_HIGH] {
        assert_eq!(rd(&mut d, r), u32::MAX);
    }
    assert_eq!(rd(&mut d, QUEUE_RESET), 0);
}

#[test]
fn bad_widths_and_offsets_are_raz_wi() {
    let mut d = net();
    for (off, size) in [
        (MAGIC_VALUE, 8),
        (MAGIC_VALUE, 2),
        (MAGIC_VALUE, 1),
        (VERSION + 1, 4),
    ] {
        assert_eq!(d.read(acc(off, size)), Ok(0));
    }
    // Write-only and reserved registers read as zero.
    for off in [QUEUE_NOTIFY, INTERRUPT_ACK, 0x018, 0x0f8] {
        assert_eq!(rd(&mut d, off), 0);
    }
    assert_eq!(d.transport.counters.bad_accesses, 8);
    // A 16-bit store to Status, a store to a read-only register: nothing happens.
    assert_eq!(d.write(acc(STATUS, 2), 1), Ok(()));
    wr(&mut d, MAGIC_VALUE, 0);
    wr(&mut d, INTERRUPT_STATUS, 0);
    assert_eq!(rd(&mut d, STATUS), 0);
    assert_eq!(d.transport.counters.bad_accesses, 11);
}

#[test]
fn config_space_byte_half_and_word() {
    let mut d = net();
    for (i, b) in MAC.iter().enumerate() {
        assert_eq!(d.read(acc(CONFIG + i as u64, 1)), Ok(u64::from(*b)));
    }
    assert_eq!(d.read(acc(CONFIG + 6, 2)), Ok(1)); // link up
    assert_eq!(d.read(acc(CONFIG, 4)), Ok(0x1200_5452));
    assert_eq!(d.read(acc(CONFIG + 4, 4)), Ok(0x0001_5634));
    // Past the structure: zero. Misaligned or 64-bit: zero, counted.
    assert_eq!(d.read(acc(CONFIG + 8, 4)), Ok(0));
    assert_eq!(d.read(acc(0x1fc, 4)), Ok(0));
    assert_eq!(d.transport.counters.bad_accesses, 0);
    assert_eq!(d.read(acc(CONFIG + 1, 2)), Ok(0));
    assert_eq!(d.read(acc(CONFIG, 8)), Ok(0));
    assert_eq!(d.transport.counters.bad_accesses, 2);
    // The configuration is read-only.
    d.write(acc(CONFIG, 1), 0xff).unwrap();
    assert_eq!(d.read(acc(CONFIG, 1)), Ok(0x52));
    assert_eq!(d.transport.counters.bad_accesses, 3);
}

/// The device on the bus, as `Vm` dispatches a guest's load.
#[test]
fn through_the_bus() {
    use crate::bus::{Bus, MmioOutcome};
    use crate::mmio::MmioAccess;
    let mut d = net();
    let mut bus: Bus<'_, 1> = Bus::new();
    let id = bus.add_device(&mut d).unwrap();
    let base = crate::guest::virtio_transport(0).regs.base;
    bus.map(id, 0, base, crate::virtio::MMIO_WINDOW).unwrap();
    let load = |ipa, size| MmioAccess {
        ipa,
        size,
        write: false,
        reg: 3,
        sign_extend: false,
        sixty_four: false,
        acquire_release: false,
    };
    assert_eq!(
        bus.dispatch(0, &load(base, 4), 0),
        MmioOutcome::Load {
            reg: 3,
            value: u64::from(MAGIC)
        }
    );
    // A 64-bit load inside the window is RAZ, not an abort; past the window, an abort.
    assert_eq!(
        bus.dispatch(0, &load(base + VERSION, 8), 0),
        MmioOutcome::Load { reg: 3, value: 0 }
    );
    assert_eq!(
        bus.dispatch(0, &load(base + 0x200, 4), 0),
        MmioOutcome::ExternalAbort
    );
}
