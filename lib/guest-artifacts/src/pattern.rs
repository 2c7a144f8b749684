//! The seeded pseudo-random byte stream of the disk check and the data disk's files.
//!
//! Word `i` of the stream (bytes `8i..8i+8`, little-endian) is `splitmix64(seed, i)`: any
//! offset is computable on its own, so the host checks any region of a disk image without
//! replaying what came before, and every 512-byte sector of a stream differs from every other
//! (a write that lands on the wrong sector, or a stale sector read back, cannot pass). This
//! file is also compiled into `tools/pattern`, the guest's generator (`#[path]`), so the guest
//! and the host share the one definition; it must stay `no_std` and allocation-free.

/// Word `index` of stream `seed`: SplitMix64's output function on a counter that starts at
/// `seed` (Steele, Lea, Flood 2014), a full-period bijection of the counter.
pub fn word(seed: u64, index: u64) -> u64 {
    let mut z = seed.wrapping_add(index.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Fills `buf` with the bytes of stream `seed` starting at byte `offset`.
pub fn fill(seed: u64, offset: u64, buf: &mut [u8]) {
    let mut pos = offset;
    let mut i = 0;
    while i < buf.len() {
        let w = word(seed, pos / 8).to_le_bytes();
        let k = (pos % 8) as usize;
        let n = (8 - k).min(buf.len() - i);
        buf[i..i + n].copy_from_slice(&w[k..k + n]);
        i += n;
        pos += n as u64;
    }
}
