//! Counters and snapshots shared by every cache in core.
//!
//! Two flavours of the same figures: [`CacheStats`] is a plain struct updated
//! by single-owner caches (no atomics on the simulator's hot path), and
//! [`AtomicCacheStats`] is its lock-free twin for caches shared between
//! threads (the sharded pipeline store, the hints table). Both produce the
//! same serde snapshot, so results, the dashboard and `compare` see one shape.
//! Follows the Prometheus advice for caches: requests and hits are separate
//! counters, ratios are derived, never stored.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// Why an entry left a cache (or a tier).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvictionReason {
    /// The policy chose it to make room (entry or byte budget).
    Capacity,
    /// The caller removed it explicitly.
    Removed,
    /// An invalidation (for example a pipeline-cache impact mask) dropped it.
    Invalidated,
    /// It was found corrupt (disk store) and removed instead of returned.
    Corrupt,
}

impl EvictionReason {
    /// Stable lower-case name, used as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            EvictionReason::Capacity => "capacity",
            EvictionReason::Removed => "removed",
            EvictionReason::Invalidated => "invalidated",
            EvictionReason::Corrupt => "corrupt",
        }
    }
}

/// A snapshot of one cache's counters. Plain integers; derive ratios with the
/// methods. `resident_*` are gauges at snapshot time; everything else only
/// grows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheStats {
    /// Requests (lookups) seen.
    pub requests: u64,
    /// Requests that found their key resident.
    pub hits: u64,
    /// Requests that did not.
    pub misses: u64,
    /// Bytes asked for by all requests.
    pub requested_bytes: u64,
    /// Bytes of the requests that missed.
    pub missed_bytes: u64,
    /// New entries stored.
    pub insertions: u64,
    /// Misses that were not stored (admission refused, or too large).
    pub rejections: u64,
    /// Entries that left the cache, any reason.
    pub evictions: u64,
    /// Bytes of the entries that left.
    pub evicted_bytes: u64,
    /// Bytes resident at snapshot time.
    pub resident_bytes: u64,
    /// Entries resident at snapshot time.
    pub resident_entries: u64,
}

impl CacheStats {
    /// misses / requests (0 when there were no requests).
    pub fn miss_ratio(&self) -> f64 {
        ratio(self.misses, self.requests)
    }

    /// hits / requests (0 when there were no requests).
    pub fn hit_ratio(&self) -> f64 {
        ratio(self.hits, self.requests)
    }

    /// missed bytes / requested bytes (0 when nothing was requested).
    pub fn byte_miss_ratio(&self) -> f64 {
        ratio(self.missed_bytes, self.requested_bytes)
    }

    /// Counter increments since `earlier` (gauges keep their current value):
    /// what a dashboard sampling every few seconds wants.
    pub fn since(&self, earlier: &CacheStats) -> CacheStats {
        CacheStats {
            requests: self.requests - earlier.requests,
            hits: self.hits - earlier.hits,
            misses: self.misses - earlier.misses,
            requested_bytes: self.requested_bytes - earlier.requested_bytes,
            missed_bytes: self.missed_bytes - earlier.missed_bytes,
            insertions: self.insertions - earlier.insertions,
            rejections: self.rejections - earlier.rejections,
            evictions: self.evictions - earlier.evictions,
            evicted_bytes: self.evicted_bytes - earlier.evicted_bytes,
            resident_bytes: self.resident_bytes,
            resident_entries: self.resident_entries,
        }
    }

    /// Records one request and whether it hit.
    #[inline]
    pub fn record_request(&mut self, size_bytes: u64, hit: bool) {
        self.requests += 1;
        self.requested_bytes += size_bytes;
        if hit {
            self.hits += 1;
        } else {
            self.misses += 1;
            self.missed_bytes += size_bytes;
        }
    }

    /// Records one eviction of `size_bytes`.
    #[inline]
    pub fn record_eviction(&mut self, size_bytes: u64) {
        self.evictions += 1;
        self.evicted_bytes += size_bytes;
    }
}

fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 { 0.0 } else { num as f64 / den as f64 }
}

/// The thread-safe twin of [`CacheStats`]: relaxed atomic counters, because
/// each counter is read on its own and only totals matter.
#[derive(Debug, Default)]
pub struct AtomicCacheStats {
    requests: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    requested_bytes: AtomicU64,
    missed_bytes: AtomicU64,
    insertions: AtomicU64,
    rejections: AtomicU64,
    evictions: AtomicU64,
    evicted_bytes: AtomicU64,
}

impl AtomicCacheStats {
    /// Records one request and whether it hit.
    #[inline]
    pub fn record_request(&self, size_bytes: u64, hit: bool) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.requested_bytes.fetch_add(size_bytes, Ordering::Relaxed);
        if hit {
            self.hits.fetch_add(1, Ordering::Relaxed);
        } else {
            self.misses.fetch_add(1, Ordering::Relaxed);
            self.missed_bytes.fetch_add(size_bytes, Ordering::Relaxed);
        }
    }

    /// Records one stored entry.
    #[inline]
    pub fn record_insertion(&self) {
        self.insertions.fetch_add(1, Ordering::Relaxed);
    }

    /// Records one refused entry.
    #[inline]
    pub fn record_rejection(&self) {
        self.rejections.fetch_add(1, Ordering::Relaxed);
    }

    /// Records one eviction of `size_bytes`.
    #[inline]
    pub fn record_eviction(&self, size_bytes: u64) {
        self.evictions.fetch_add(1, Ordering::Relaxed);
        self.evicted_bytes.fetch_add(size_bytes, Ordering::Relaxed);
    }

    /// A snapshot; the caller supplies the residency gauges it tracks itself.
    pub fn snapshot(&self, resident_bytes: u64, resident_entries: u64) -> CacheStats {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CacheStats {
            requests: load(&self.requests),
            hits: load(&self.hits),
            misses: load(&self.misses),
            requested_bytes: load(&self.requested_bytes),
            missed_bytes: load(&self.missed_bytes),
            insertions: load(&self.insertions),
            rejections: load(&self.rejections),
            evictions: load(&self.evictions),
            evicted_bytes: load(&self.evicted_bytes),
            resident_bytes,
            resident_entries,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_and_deltas() {
        let mut s = CacheStats::default();
        assert_eq!(s.miss_ratio(), 0.0, "no requests: ratio is 0, not NaN");
        s.record_request(10, false);
        s.record_request(30, true);
        assert_eq!((s.requests, s.hits, s.misses), (2, 1, 1));
        assert_eq!(s.miss_ratio(), 0.5);
        assert_eq!(s.byte_miss_ratio(), 0.25);
        let earlier = s;
        s.record_request(5, false);
        s.record_eviction(10);
        let d = s.since(&earlier);
        assert_eq!((d.requests, d.misses, d.missed_bytes, d.evicted_bytes), (1, 1, 5, 10));
    }

    #[test]
    fn atomic_matches_plain() {
        let a = AtomicCacheStats::default();
        let mut p = CacheStats::default();
        for (i, hit) in [true, false, false, true, false].into_iter().enumerate() {
            a.record_request(i as u64, hit);
            p.record_request(i as u64, hit);
        }
        a.record_eviction(7);
        p.record_eviction(7);
        assert_eq!(a.snapshot(0, 0), p);
    }
}
