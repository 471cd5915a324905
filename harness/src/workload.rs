//! Seeded synthetic request streams.
//!
//! Everything here is reproducible from a seed: the same seed gives the same
//! stream on every machine (ChaCha8, no platform-dependent floats in the
//! sampling path beyond IEEE-754 arithmetic).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Samples ranks `0..n` with probability proportional to `1 / (rank+1)^alpha`
/// by inverse CDF over a precomputed table (O(log n) per sample).
#[derive(Debug, Clone)]
pub struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    /// A Zipf distribution over `n` ranks.
    ///
    /// # Errors
    /// When `n` is 0 or `alpha` is negative or not finite.
    pub fn new(n: usize, alpha: f64) -> Result<Self, String> {
        if n == 0 {
            return Err("zipf: the number of keys must be at least 1".into());
        }
        if !(alpha.is_finite() && alpha >= 0.0) {
            return Err(format!("zipf: alpha must be a finite number >= 0, got {alpha}"));
        }
        let mut cdf = Vec::with_capacity(n);
        let mut total = 0.0;
        for rank in 0..n {
            total += 1.0 / ((rank + 1) as f64).powf(alpha);
            cdf.push(total);
        }
        for c in &mut cdf {
            *c /= total;
        }
        Ok(Zipf { cdf })
    }

    /// One rank.
    pub fn sample(&self, rng: &mut impl Rng) -> usize {
        let u: f64 = rng.random();
        self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1)
    }
}

/// One synthetic request: a key and its size in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyntheticRequest {
    /// Object key.
    pub key: u64,
    /// Object size in bytes (fixed per key).
    pub size_bytes: u64,
}

/// A seeded Zipf stream over `keys` objects whose sizes are drawn once per
/// key, log-uniformly in `[min_size_bytes, max_size_bytes]`.
pub fn zipf_requests(
    seed: u64,
    requests: usize,
    keys: usize,
    alpha: f64,
    min_size_bytes: u64,
    max_size_bytes: u64,
) -> Result<Vec<SyntheticRequest>, String> {
    if min_size_bytes == 0 || min_size_bytes > max_size_bytes {
        return Err(format!("sizes: need 1 <= min ({min_size_bytes}) <= max ({max_size_bytes})"));
    }
    let zipf = Zipf::new(keys, alpha)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (lo, hi) = ((min_size_bytes as f64).ln(), (max_size_bytes as f64).ln());
    let sizes: Vec<u64> = (0..keys)
        .map(|_| {
            (lo + (hi - lo) * rng.random::<f64>()).exp().round().clamp(min_size_bytes as f64, max_size_bytes as f64)
                as u64
        })
        .collect();
    // Scatter ranks over the key space so that hot keys are not small integers.
    let key_of = |rank: usize| (rank as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5bd1_e995;
    Ok((0..requests)
        .map(|_| {
            let rank = zipf.sample(&mut rng);
            SyntheticRequest { key: key_of(rank), size_bytes: sizes[rank] }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipf_is_seeded_and_skewed() {
        let a = zipf_requests(7, 10_000, 1000, 1.0, 1, 100).unwrap();
        let b = zipf_requests(7, 10_000, 1000, 1.0, 1, 100).unwrap();
        assert_eq!(a, b, "same seed, same stream");
        let top = a.iter().filter(|r| r.key == (0u64.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5bd1_e995)).count();
        // Rank 0 of Zipf(1.0) over 1000 keys has probability 1/H(1000) ~ 13%.
        assert!((1000..1700).contains(&top), "rank 0 drawn {top} times");
        assert!(a.iter().all(|r| (1..=100).contains(&r.size_bytes)));
    }

    #[test]
    fn bad_parameters_are_errors() {
        assert!(Zipf::new(0, 1.0).is_err());
        assert!(Zipf::new(10, f64::NAN).is_err());
        assert!(zipf_requests(1, 10, 10, 1.0, 0, 10).is_err());
    }
}
