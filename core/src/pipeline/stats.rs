//! Counters of the pipeline stores: the serde snapshot
//! [`PipelineCacheStats`] and the lock-free counters behind it.
//!
//! The shared figures (lookups, hits, puts, rejections, evictions) live in a
//! [`AtomicCacheStats`], so a pipeline store exports the same
//! [`CacheStats`] shape as every other cache; the few figures only a pipeline
//! store has (why entries left, corrupt files, flushes) are extra atomics.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::stats::{AtomicCacheStats, CacheStats, EvictionReason};

use super::store::PipelineEviction;

/// A snapshot of one pipeline store's counters. Everything but the
/// `resident_*` gauges only grows. Calls that fail with an error (a poisoned
/// shard, an I/O failure) are not counted: they are neither hits nor misses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineCacheStats {
    /// `get` calls.
    pub lookups: u64,
    /// `get` calls that returned bytes.
    pub hits: u64,
    /// `get` calls that did not (absent, corrupt, oversized, disabled).
    pub misses: u64,
    /// Accepted puts.
    pub puts: u64,
    /// Rejected puts (disabled store, blob too large).
    pub rejected_puts: u64,
    /// Entries that left, for any reason (the sum of the capacity evictions
    /// and the three counters below).
    pub evictions: u64,
    /// Bytes of the entries that left, for any reason.
    pub evicted_bytes: u64,
    /// Of `evictions`: explicit removals, including the old entry dropped by
    /// a rejected put.
    pub removals: u64,
    /// Of `evictions`: entries dropped by `invalidate`.
    pub invalidations: u64,
    /// Of `evictions`: files found corrupt (torn, truncated, altered, wrong
    /// key, wrong format) and removed instead of returned.
    pub corrupt: u64,
    /// Reads refused because the file exceeded the maximum blob size (left in
    /// place: a store with a larger limit may own it).
    pub oversized_reads: u64,
    /// `flush` calls that completed.
    pub flushes: u64,
    /// Entries resident now, where the store can tell cheaply (`None` for
    /// the disk store, which other processes share; see its `entries()`).
    pub resident_entries: Option<u64>,
    /// Payload bytes resident now, where the store can tell cheaply.
    pub resident_bytes: Option<u64>,
}

impl PipelineCacheStats {
    /// hits / lookups (0 when there were no lookups).
    pub fn hit_ratio(&self) -> f64 {
        if self.lookups == 0 { 0.0 } else { self.hits as f64 / self.lookups as f64 }
    }

    /// Entries evicted by a capacity budget.
    pub fn capacity_evictions(&self) -> u64 {
        self.evictions - self.removals - self.invalidations - self.corrupt
    }

    /// The figures in the shape every cache in core reports. Residency that
    /// the store cannot tell reads as 0, and so do `requested_bytes` and
    /// `missed_bytes`: a lookup that misses does not know the blob's size.
    pub fn as_cache_stats(&self) -> CacheStats {
        CacheStats {
            requests: self.lookups,
            hits: self.hits,
            misses: self.misses,
            requested_bytes: 0,
            missed_bytes: 0,
            insertions: self.puts,
            rejections: self.rejected_puts,
            evictions: self.evictions,
            evicted_bytes: self.evicted_bytes,
            resident_bytes: self.resident_bytes.unwrap_or(0),
            resident_entries: self.resident_entries.unwrap_or(0),
        }
    }
}

/// The live counters of one store.
#[derive(Debug, Default)]
pub(crate) struct PipelineCounters {
    base: AtomicCacheStats,
    // AtomicCacheStats counts one eviction per call; an invalidation reports
    // many entries at once, so evictions get their own counters.
    evictions: AtomicU64,
    evicted_bytes: AtomicU64,
    removals: AtomicU64,
    invalidations: AtomicU64,
    corrupt: AtomicU64,
    oversized_reads: AtomicU64,
    flushes: AtomicU64,
}

impl PipelineCounters {
    #[inline]
    pub(crate) fn lookup(&self, hit: bool) {
        // Size 0: a miss cannot know the size it would have had, and byte
        // ratios over hits alone would mislead.
        self.base.record_request(0, hit);
    }

    #[inline]
    pub(crate) fn put(&self) {
        self.base.record_insertion();
    }

    #[inline]
    pub(crate) fn rejected_put(&self) {
        self.base.record_rejection();
    }

    pub(crate) fn oversized_read(&self) {
        self.oversized_reads.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn flushed(&self) {
        self.flushes.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts every entry of `ev` under its reason.
    pub(crate) fn evicted(&self, ev: &PipelineEviction) {
        if ev.entries == 0 {
            return;
        }
        self.evictions.fetch_add(ev.entries, Ordering::Relaxed);
        self.evicted_bytes.fetch_add(ev.bytes, Ordering::Relaxed);
        let by_reason = match ev.reason {
            EvictionReason::Capacity => None,
            EvictionReason::Removed => Some(&self.removals),
            EvictionReason::Invalidated => Some(&self.invalidations),
            EvictionReason::Corrupt => Some(&self.corrupt),
        };
        if let Some(c) = by_reason {
            c.fetch_add(ev.entries, Ordering::Relaxed);
        }
    }

    pub(crate) fn snapshot(&self, resident_entries: Option<u64>, resident_bytes: Option<u64>) -> PipelineCacheStats {
        let b = self.base.snapshot(0, 0);
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        PipelineCacheStats {
            lookups: b.requests,
            hits: b.hits,
            misses: b.misses,
            puts: b.insertions,
            rejected_puts: b.rejections,
            evictions: load(&self.evictions),
            evicted_bytes: load(&self.evicted_bytes),
            removals: load(&self.removals),
            invalidations: load(&self.invalidations),
            corrupt: load(&self.corrupt),
            oversized_reads: load(&self.oversized_reads),
            flushes: load(&self.flushes),
            resident_entries,
            resident_bytes,
        }
    }
}
