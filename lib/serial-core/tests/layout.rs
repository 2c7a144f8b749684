//! The SDF sizes in `layout` agree with lib/ring's layout.

#[test]
fn layout_constants_match_lib_ring() {
    use axolotl_serial_core::layout::*;
    assert_eq!(
        axolotl_ring::ring_region_bytes(CAPACITY).unwrap(),
        RING_BYTES_USED
    );
    assert_eq!(RING_BYTES_USED, 896);
    assert_eq!(RX_BUFFER_BYTES, 256);
}
