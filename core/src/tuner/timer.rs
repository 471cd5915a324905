//! How the tuner measures a candidate: the [`BackendTimer`] trait, and a
//! deterministic [`SyntheticTimer`] for tests and benchmarks.

use super::ProgramKey;
use crate::Result;

/// Measures one dispatch of a program with a given workgroup size.
///
/// A GPU backend implements this with timestamp queries around one
/// dispatch (after a warm-up, so a pipeline compile is not timed). The
/// tuner calls it many times per candidate and interleaves candidates, so
/// an implementation should time exactly one dispatch per call and keep no
/// state that favours the previous candidate.
pub trait BackendTimer {
    /// Kernel time of one dispatch of `key`'s program with `workgroup`, in
    /// nanoseconds.
    ///
    /// # Errors
    /// Whatever the backend hit (a failed dispatch, a lost device); the
    /// tuner stops and returns it.
    fn time_ns(&mut self, key: &ProgramKey, workgroup: [u32; 3]) -> Result<u64>;
}

impl<T: BackendTimer + ?Sized> BackendTimer for &mut T {
    fn time_ns(&mut self, key: &ProgramKey, workgroup: [u32; 3]) -> Result<u64> {
        (**self).time_ns(key, workgroup)
    }
}

/// A deterministic timer: `cost(workgroup)` plus seeded noise.
///
/// The noise is one-sided (`cost * (1 + noise * u)`, `u` uniform in
/// `[0, 1)`), because that is how real kernel timings behave: interference
/// (other work, clocks ramping, cache state) only ever adds time. The same
/// seed gives the same sequence of timings.
pub struct SyntheticTimer {
    cost: Box<dyn FnMut([u32; 3]) -> u64 + Send>,
    noise: f64,
    rng: SplitMix64,
    measurements: u64,
}

impl std::fmt::Debug for SyntheticTimer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyntheticTimer")
            .field("noise", &self.noise)
            .field("measurements", &self.measurements)
            .finish_non_exhaustive()
    }
}

impl SyntheticTimer {
    /// A timer whose true cost is `cost(workgroup)` nanoseconds, with up to
    /// `noise` (a fraction: 0.2 is up to +20%) added per measurement, drawn
    /// from a generator seeded with `seed`. A negative or non-finite `noise`
    /// counts as 0.
    pub fn new(seed: u64, noise: f64, cost: impl FnMut([u32; 3]) -> u64 + Send + 'static) -> Self {
        let noise = if noise.is_finite() && noise > 0.0 { noise } else { 0.0 };
        SyntheticTimer { cost: Box::new(cost), noise, rng: SplitMix64(seed), measurements: 0 }
    }

    /// Calls of [`BackendTimer::time_ns`] so far.
    pub fn measurements(&self) -> u64 {
        self.measurements
    }
}

impl BackendTimer for SyntheticTimer {
    fn time_ns(&mut self, _key: &ProgramKey, workgroup: [u32; 3]) -> Result<u64> {
        self.measurements += 1;
        let base = (self.cost)(workgroup);
        let extra = base as f64 * self.noise * self.rng.next_unit();
        // `as` saturates on overflow, which is what a timer should do.
        Ok(base.saturating_add(extra as u64))
    }
}

/// SplitMix64: tiny, seedable, and good enough for test noise; core has no
/// `rand` dependency outside its tests.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)` from the top 53 bits.
    fn next_unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_noise_is_deterministic_and_one_sided() {
        let key = ProgramKey::new(b"k", &[]);
        let run = |seed| {
            let mut t = SyntheticTimer::new(seed, 0.25, |wg| u64::from(wg[0]) * 100);
            (0..50).map(|_| t.time_ns(&key, [64, 1, 1]).unwrap()).collect::<Vec<_>>()
        };
        let a = run(7);
        assert_eq!(a, run(7));
        assert_ne!(a, run(8));
        assert!(a.iter().all(|&t| (6_400..8_000).contains(&t)), "{a:?}");
        let mut exact = SyntheticTimer::new(1, f64::NAN, |_| 5);
        assert_eq!(exact.time_ns(&key, [1, 1, 1]).unwrap(), 5);
        assert_eq!(exact.measurements(), 1);
    }
}
