//! One-pass LRU miss-ratio curves from stack distances, exact or sampled.
//!
//! LRU is a stack algorithm (Mattson et al., 1970): a request hits in an LRU
//! cache of capacity C exactly when its *stack distance* — the units of the
//! distinct objects requested since its previous request, itself included —
//! is at most C. One pass computing every request's distance therefore gives
//! the hit count at every capacity at once. Distances come from a Fenwick
//! tree over request positions holding each object's size at the position of
//! its latest request: O(log n) per request.
//!
//! Exactness: with unit sizes (object caches) the curve equals running LRU at
//! each capacity. With byte sizes it is exact when every object keeps one
//! size and every object fits in the capacity asked for; otherwise an LRU
//! cache refuses or re-sizes objects differently at different capacities and
//! the stack property breaks. [`LruCurve::exact_for`] says which case holds.
//!
//! SHARDS (Waldspurger et al., FAST 2015) samples objects by a hash of their
//! key (all requests of a sampled object, none of the others) at rate R and
//! scales distances by 1/R, so a curve of a 100M-request trace costs the
//! memory and time of R x 100M requests. Its error is stated, not hidden:
//! the curve records the rate and the number of sampled objects, and the
//! tests measure the error against the exact curve.

use rustc_hash::FxHashMap;
use serde::Serialize;

/// A Fenwick (binary indexed) tree of u64 sums over positions `0..n`.
struct Fenwick {
    tree: Vec<u64>,
}

impl Fenwick {
    fn new(n: usize) -> Self {
        Fenwick { tree: vec![0; n + 1] }
    }

    fn add(&mut self, pos: usize, delta: i64) {
        let mut i = pos + 1;
        while i < self.tree.len() {
            self.tree[i] = self.tree[i].wrapping_add_signed(delta);
            i += i & i.wrapping_neg();
        }
    }

    /// Sum over positions `0..=pos`.
    fn prefix(&self, pos: usize) -> u64 {
        let mut i = pos + 1;
        let mut s = 0u64;
        while i > 0 {
            s = s.wrapping_add(self.tree[i]);
            i -= i & i.wrapping_neg();
        }
        s
    }
}

/// Stack distances of a request stream, ready to answer "how many hits at
/// capacity C" for any C.
#[derive(Debug, Clone, Serialize)]
pub struct LruCurve {
    /// Requests seen (sampled requests, for SHARDS).
    pub requests: u64,
    /// Bytes requested.
    pub requested_bytes: u64,
    /// Sampling rate (1.0: exact).
    pub sample_rate: f64,
    /// Objects in the (sampled) stream.
    pub objects: u64,
    /// Largest object size seen.
    pub max_size: u64,
    /// Whether some object was requested with more than one size.
    pub sizes_vary: bool,
    /// Sorted finite distances (scaled by 1/rate), each with its request's size.
    #[serde(skip)]
    distances: Vec<(u64, u64)>,
    /// Prefix sums of sizes over `distances`, for byte hit counts.
    #[serde(skip)]
    size_prefix: Vec<u64>,
    /// SHARDS-adj: requests added to the hits at every capacity (expected
    /// sampled requests minus the sampled requests; 0 when exact).
    pub hit_adjustment: i64,
    /// The request count ratios are taken over (= `requests` when exact).
    pub expected_requests: u64,
}

/// Hits and bytes hit at one capacity, read off a curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CurvePoint {
    /// Capacity in units.
    pub capacity: u64,
    /// Requests that hit (scaled to the whole trace for SHARDS).
    pub hits: f64,
    /// Miss ratio.
    pub miss_ratio: f64,
    /// Byte miss ratio.
    pub byte_miss_ratio: f64,
}

impl LruCurve {
    /// Exact stack distances of `(key, size)` requests.
    pub fn exact(requests: impl IntoIterator<Item = (u64, u64)>) -> Self {
        Self::build(requests, 1.0)
    }

    /// SHARDS: keeps the objects whose key hashes below `rate` (0 < rate <= 1).
    ///
    /// With the SHARDS-adj correction: a fixed-rate sample of a skewed trace
    /// keeps more or fewer requests than `rate` x total (one hot key in or
    /// out of the sample moves it a lot); the difference is credited to (or
    /// taken from) the smallest distances, where hot keys' reuses fall.
    pub fn sampled(requests: impl IntoIterator<Item = (u64, u64)>, rate: f64) -> Self {
        let rate = rate.clamp(f64::MIN_POSITIVE, 1.0);
        let threshold = (rate * (1u64 << 24) as f64) as u64;
        let mut total = 0u64;
        let kept = requests.into_iter().filter(|&(key, _)| {
            total += 1;
            shards_hash(key) % (1 << 24) < threshold
        });
        let mut curve = Self::build(kept, rate);
        curve.adjust_to(total);
        curve
    }

    fn adjust_to(&mut self, total_requests: u64) {
        let expected = (total_requests as f64 * self.sample_rate).round() as i64;
        self.hit_adjustment = expected - self.requests as i64;
        self.expected_requests = expected.max(1) as u64;
    }

    fn build(requests: impl IntoIterator<Item = (u64, u64)>, rate: f64) -> Self {
        let reqs: Vec<(u64, u64)> = requests.into_iter().collect();
        let mut fenwick = Fenwick::new(reqs.len());
        // key -> (position of latest request, its size in the stack)
        let mut last: FxHashMap<u64, (usize, u64)> = FxHashMap::default();
        let mut distances = Vec::with_capacity(reqs.len());
        let (mut requested_bytes, mut max_size, mut sizes_vary) = (0u64, 0u64, false);
        for (t, &(key, size)) in reqs.iter().enumerate() {
            requested_bytes += size;
            max_size = max_size.max(size);
            if let Some((p, old_size)) = last.insert(key, (t, size)) {
                sizes_vary |= old_size != size;
                // Units of the distinct objects requested after p, plus itself.
                let above = fenwick.prefix(t.saturating_sub(1)) - fenwick.prefix(p);
                let d = above + old_size;
                distances.push(((d as f64 / rate).round() as u64, size));
                fenwick.add(p, -(old_size as i64));
            }
            fenwick.add(t, size as i64);
        }
        distances.sort_unstable();
        let mut size_prefix = Vec::with_capacity(distances.len() + 1);
        size_prefix.push(0);
        let mut acc = 0u64;
        for &(_, s) in &distances {
            acc += s;
            size_prefix.push(acc);
        }
        LruCurve {
            requests: reqs.len() as u64,
            requested_bytes,
            sample_rate: rate,
            objects: last.len() as u64,
            max_size,
            sizes_vary,
            distances,
            size_prefix,
            hit_adjustment: 0,
            expected_requests: reqs.len() as u64,
        }
    }

    /// Whether the curve equals running LRU at `capacity` exactly (see the
    /// module docs).
    pub fn exact_for(&self, capacity: u64) -> bool {
        self.sample_rate >= 1.0 && !self.sizes_vary && self.max_size <= capacity
    }

    /// Hits and miss ratios at `capacity` (units).
    pub fn at(&self, capacity: u64) -> CurvePoint {
        let n = self.distances.partition_point(|&(d, _)| d <= capacity);
        let hits = (n as f64 + self.hit_adjustment as f64).max(0.0);
        let hit_bytes = self.size_prefix[n] as f64;
        let miss_ratio =
            if self.requests == 0 { 0.0 } else { (1.0 - hits / self.expected_requests as f64).clamp(0.0, 1.0) };
        let byte_miss_ratio =
            if self.requested_bytes == 0 { 0.0 } else { 1.0 - hit_bytes / self.requested_bytes as f64 };
        CurvePoint { capacity, hits: hits / self.sample_rate, miss_ratio, byte_miss_ratio }
    }
}

/// A 64-bit mixer (splitmix64's finaliser): sampling must not follow key order.
fn shards_hash(key: u64) -> u64 {
    let mut z = key.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cachescope_core::cache::Cache;
    use cachescope_core::policy::{Lru, Request};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn trace(seed: u64, n: usize, keys: u64, sized: bool) -> Vec<(u64, u64)> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n)
            .map(|_| {
                let u: f64 = rng.random();
                let k = ((u * u * u) * keys as f64) as u64;
                (k, if sized { 1 + (k * 7919) % 300 } else { 1 })
            })
            .collect()
    }

    fn lru_hits(reqs: &[(u64, u64)], cap: u64) -> (u64, u64) {
        let mut c = Cache::new(cap, Lru::default()).unwrap();
        for &(k, s) in reqs {
            c.access(&Request::new(k, s));
        }
        let s = c.stats();
        (s.hits, s.requested_bytes - s.missed_bytes)
    }

    #[test]
    fn exact_curve_equals_lru_at_every_size_objects() {
        let reqs = trace(1, 20_000, 2_000, false);
        let curve = LruCurve::exact(reqs.iter().copied());
        for cap in [1, 2, 5, 10, 50, 100, 500, 1_000, 1_999, 5_000] {
            assert!(curve.exact_for(cap));
            assert_eq!(curve.at(cap).hits as u64, lru_hits(&reqs, cap).0, "capacity {cap}");
        }
    }

    #[test]
    fn exact_curve_equals_lru_at_every_size_bytes() {
        let reqs = trace(2, 20_000, 2_000, true);
        let curve = LruCurve::exact(reqs.iter().copied());
        for cap in [300, 1_000, 10_000, 50_000, 100_000, 400_000] {
            assert!(curve.exact_for(cap), "capacity {cap}");
            let (hits, hit_bytes) = lru_hits(&reqs, cap);
            let p = curve.at(cap);
            assert_eq!(p.hits as u64, hits, "capacity {cap}");
            let bytes: u64 = reqs.iter().map(|r| r.1).sum();
            assert!((p.byte_miss_ratio - (1.0 - hit_bytes as f64 / bytes as f64)).abs() < 1e-12);
        }
        assert!(!curve.exact_for(100), "objects up to 300 bytes do not fit in 100");
    }

    #[test]
    fn shards_error_is_small_on_a_skewed_trace() {
        let reqs = trace(3, 200_000, 50_000, false);
        let exact = LruCurve::exact(reqs.iter().copied());
        let sampled = LruCurve::sampled(reqs.iter().copied(), 0.1);
        assert!(sampled.objects < exact.objects / 5);
        let mut worst = 0.0f64;
        for cap in [100, 1_000, 5_000, 20_000] {
            worst = worst.max((exact.at(cap).miss_ratio - sampled.at(cap).miss_ratio).abs());
        }
        assert!(worst < 0.02, "SHARDS at 10% missed by {worst}");
    }
}
