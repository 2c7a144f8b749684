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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_splitmix64() {
        // SplitMix64's first outputs from state 0 (the reference implementation's).
        assert_eq!(word(0, 0), 0xe220_a839_7b1d_cdaf);
        assert_eq!(word(0, 1), 0x6e78_9e6a_a1b9_65f4);
    }

    #[test]
    fn any_offset_is_the_same_stream() {
        let mut all = [0u8; 4096];
        fill(7, 0, &mut all);
        for (off, len) in [(0, 1), (3, 5), (5, 13), (8, 8), (1000, 1000), (4095, 1)] {
            let mut part = vec![0u8; len];
            fill(7, off as u64, &mut part);
            assert_eq!(part, all[off..off + len], "offset {off} length {len}");
        }
        assert_eq!(all[..8], word(7, 0).to_le_bytes());
    }

    #[test]
    fn sectors_and_seeds_differ() {
        let mut a = vec![0u8; 64 << 10];
        fill(1, 0, &mut a);
        let sectors: std::collections::HashSet<&[u8]> = a.chunks(512).collect();
        assert_eq!(sectors.len(), a.len() / 512);
        let mut b = vec![0u8; 512];
        fill(2, 0, &mut b);
        assert_ne!(a[..512], b[..]);
    }
}
