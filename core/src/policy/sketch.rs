//! A counting Bloom filter: the frequency sketch of W-TinyLFU.
//!
//! Einziger, Friedman and Manes, "TinyLFU: A Highly Efficient Cache
//! Admission Policy", ACM TOS 2017, estimate popularity with a small sketch
//! instead of per-key counters. This one follows libCacheSim's
//! `minimalIncrementCBF` (which, despite its name, increments every
//! counter of a key): `k = ceil(ln 2 x bpe)` hash positions by double
//! hashing over `ceil(bpe x entries)` counters, `bpe = -ln(error) / ln(2)^2`;
//! an estimate is the minimum of a key's counters; an add increments every
//! one of them; [`halve`](CountMinSketch::halve) ages all counters. The
//! hashes are libCacheSim's too (XXH64 of the key, seeds 0x12345678 and
//! 0x12344321, truncated to 32 bits). The counter count is capped at
//! [`MAX_COUNTERS`] so a byte capacity in gigabytes does not allocate
//! gigabytes (libCacheSim caps it through a C `int` instead).

/// Most counters one sketch allocates (16 MiB of `u32`).
pub const MAX_COUNTERS: usize = 1 << 22;

/// Frequency sketch: a counting Bloom filter read as a count-min sketch.
#[derive(Debug, Clone, Default)]
pub struct CountMinSketch {
    counters: Vec<u32>,
    hashes: u32,
}

const P1: u64 = 0x9E37_79B1_85EB_CA87;
const P2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const P3: u64 = 0x1656_67B1_9E37_79F9;
const P4: u64 = 0x85EB_CA77_C2B2_AE63;
const P5: u64 = 0x27D4_EB2F_1656_67C5;

/// XXH64 of the 8 little-endian bytes of `key` (libCacheSim hashes object
/// ids this way), so the sketch picks the same counters as libCacheSim's.
#[inline]
fn xxh64_u64(key: u64, seed: u64) -> u64 {
    let mut h = seed.wrapping_add(P5).wrapping_add(8);
    let k1 = key.wrapping_mul(P2).rotate_left(31).wrapping_mul(P1);
    h ^= k1;
    h = h.rotate_left(27).wrapping_mul(P1).wrapping_add(P4);
    h ^= h >> 33;
    h = h.wrapping_mul(P2);
    h ^= h >> 29;
    h = h.wrapping_mul(P3);
    h ^ (h >> 32)
}

const SEED0: u64 = 0x1234_5678;
const SEED1: u64 = 0x1234_4321;

impl CountMinSketch {
    /// A sketch sized for `entries` distinct keys at false-positive rate `error`.
    pub fn new(entries: u64, error: f64) -> Self {
        let error = if error > 0.0 && error < 1.0 { error } else { 0.001 };
        // libCacheSim's constants, so the sizes agree to the last counter.
        let bpe = -error.ln() / 0.480_453_013_918_201;
        let hashes = (std::f64::consts::LN_2 * bpe).ceil().max(1.0) as u32;
        let wanted = (bpe * entries as f64).ceil().min(MAX_COUNTERS as f64) as usize;
        let n = wanted.max(2 * hashes as usize);
        CountMinSketch { counters: vec![0; n], hashes }
    }

    #[inline]
    fn positions(&self, key: u64) -> impl Iterator<Item = usize> + '_ {
        let a = xxh64_u64(key, SEED0) as u32;
        let b = xxh64_u64(key, SEED1) as u32;
        let n = self.counters.len() as u32;
        (0..self.hashes).map(move |i| (a.wrapping_add(i.wrapping_mul(b)) % n) as usize)
    }

    /// The estimated count of `key` (minimum of its counters).
    pub fn estimate(&self, key: u64) -> u32 {
        if self.counters.is_empty() {
            return 0;
        }
        self.positions(key).map(|i| self.counters[i]).min().unwrap_or(0)
    }

    /// Counts one more occurrence of `key`.
    pub fn add(&mut self, key: u64) {
        if self.counters.is_empty() {
            return;
        }
        let n = self.counters.len() as u32;
        let a = xxh64_u64(key, SEED0) as u32;
        let b = xxh64_u64(key, SEED1) as u32;
        for i in 0..self.hashes {
            let x = (a.wrapping_add(i.wrapping_mul(b)) % n) as usize;
            self.counters[x] = self.counters[x].saturating_add(1);
        }
    }

    /// Halves every counter (aging), O(counters).
    pub fn halve(&mut self) {
        for c in &mut self.counters {
            *c >>= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_ages() {
        let mut s = CountMinSketch::new(1000, 0.001);
        for _ in 0..6 {
            s.add(42);
        }
        s.add(7);
        assert_eq!(s.estimate(42), 6);
        assert_eq!(s.estimate(7), 1);
        assert_eq!(s.estimate(99), 0);
        s.halve();
        assert_eq!(s.estimate(42), 3);
        assert_eq!(s.estimate(7), 0);
    }
}
