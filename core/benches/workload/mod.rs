//! Key streams shared by `hot_paths.rs` and the standalone
//! `peers/vyre-wgpu-bench` (which includes this file by path), so both sides
//! of a comparison replay exactly the same requests. Everything is generated
//! before timing from a fixed seed; [`checksum`] lets a run show that two
//! binaries saw the same stream.
//!
//! Not a bench target: cargo only discovers `benches/*.rs` and
//! `benches/*/main.rs`.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Seed of every stream.
pub const SEED: u64 = 0x00ca_c4e5_c09e;

/// Exponent of the Zipf-like popularity of the hit and tiered streams: rank
/// `r` (0-based) is requested with probability proportional to `1/(r+1)^s`.
pub const ZIPF_EXPONENT: f64 = 0.9;

/// Length of the pre-generated popularity streams (cycled when a benchmark
/// runs longer).
pub const POPULAR_STREAM_LEN: usize = 1 << 20;

/// The key of logical object `i`: splitmix64's finaliser, a bijection on
/// `u64`, so keys are distinct, well spread and not sequential.
#[inline]
pub fn key_of(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The `n` keys a structure of `n` entries is prefilled with, in insertion
/// order.
pub fn resident_keys(n: usize) -> Vec<u64> {
    (0..n as u64).map(key_of).collect()
}

/// `len` requests over the `n` resident keys, Zipf-like by rank
/// ([`ZIPF_EXPONENT`]); rank `r` is key `key_of(r)`.
pub fn zipf_keys(n: usize, len: usize, stream: u64) -> Vec<u64> {
    zipf_ranks(n, len, stream).into_iter().map(|r| key_of(r as u64)).collect()
}

/// `len` ranks in `0..n`, Zipf-like, by inverse-CDF sampling.
pub fn zipf_ranks(n: usize, len: usize, stream: u64) -> Vec<usize> {
    let mut cdf = Vec::with_capacity(n);
    let mut total = 0.0f64;
    for r in 0..n {
        total += 1.0 / ((r + 1) as f64).powf(ZIPF_EXPONENT);
        cdf.push(total);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(SEED ^ stream);
    (0..len)
        .map(|_| {
            let u = rng.random::<f64>() * total;
            cdf.partition_point(|&c| c <= u).min(n - 1)
        })
        .collect()
}

/// `len` distinct keys none of which is among the `n` resident ones
/// (objects `n..n+len`). Cycled, each key comes back only after `len - 1`
/// others, so with `len` several times the capacity every request misses.
pub fn fresh_keys(n: usize, len: usize) -> Vec<u64> {
    (n as u64..(n + len) as u64).map(key_of).collect()
}

/// Order-sensitive checksum of a stream (FNV-1a over the keys).
pub fn checksum(keys: &[u64]) -> u64 {
    keys.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &k| (h ^ k).wrapping_mul(0x0000_0100_0000_01b3))
}

/// A stream with a cursor that survives across criterion samples (the
/// structure under test keeps its state too), wrapping at the end.
pub struct Cursor<T> {
    items: Vec<T>,
    pos: usize,
}

impl<T> Cursor<T> {
    /// A cursor at the start of `items` (which must not be empty).
    pub fn new(items: Vec<T>) -> Self {
        assert!(!items.is_empty(), "empty stream");
        Cursor { items, pos: 0 }
    }

    /// The next item, wrapping around.
    #[inline]
    pub fn next_item(&mut self) -> &T {
        let i = self.pos;
        self.pos = if i + 1 == self.items.len() { 0 } else { i + 1 };
        &self.items[i]
    }

    /// All items.
    pub fn items(&self) -> &[T] {
        &self.items
    }
}
