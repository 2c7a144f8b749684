//! The sizes the demo's SDF gives the serial connections (`docs/serial.md`).

/// Queue capacity of every serial connection.
pub const CAPACITY: u32 = 16;
/// Request ids per connection (must not exceed [`CAPACITY`], so a response
/// queue can never fill up).
pub const IDS: usize = 16;
/// Each region (a connection's rings, its data) is one 4 KiB page.
pub const REGION_BYTES: usize = 0x1000;
/// Ring region bytes actually used: 128 + 2 × (128 + 16 × [`CAPACITY`]).
pub const RING_BYTES_USED: usize = 128 + 2 * (128 + 16 * CAPACITY as usize);
/// Transmit data bytes used by a [`crate::SeqClient`]: [`IDS`] ×
/// [`crate::MSG_SLOT`].
pub const TX_DATA_BYTES_USED: usize = IDS * crate::MSG_SLOT;
/// Bytes per receive buffer of an [`crate::RxClient`] on a one-page region.
pub const RX_BUFFER_BYTES: usize = REGION_BYTES / IDS;

const _: () = {
    assert!(IDS <= CAPACITY as usize);
    assert!(RING_BYTES_USED <= REGION_BYTES);
    assert!(TX_DATA_BYTES_USED <= REGION_BYTES);
};
