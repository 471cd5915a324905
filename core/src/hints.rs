//! Bounded hot-path hints: per-region dispatch records that tell an optimizer
//! which regions (kernels, pipeline generators) deserve its effort first.
//!
//! A backend calls [`HotPathHints::record`] after each dispatch with the
//! region's name, the kernel time and the bytes it touched; an optimizer asks
//! [`HotPathHints::is_hot`] or reads [`HotPathHints::hottest`]. The hint is a
//! *prioritisation* signal, never a correctness one: a pass gated on
//! `is_hot` must stay correct when the region is cold, unknown, or evicted.
//!
//! Follows `vyre-foundation`'s `HotPathHints` (running mean and max per
//! region, a mean-kernel-time threshold, LRU bound, capacity 0 disables it),
//! with one change: the seed found the least recently recorded region by
//! cloning and scanning every key on each eviction, so its cost grew with the
//! table. Here recency lives in an intrusive [`SlotList`] over dense slots,
//! so a record (hit, insert or evict) is O(1) and a hit allocates nothing.
//!
//! ## Thread safety
//!
//! [`HotPathHints`] is `Send + Sync`; every method takes `&self`. One
//! [`std::sync::Mutex`] guards the table (a record is a few field updates,
//! shorter than any lock-free scheme's retry loop) and the counters are
//! atomics outside it. If a thread panics while holding the lock, the table
//! **fails closed**: later records are dropped (counted as rejections in
//! [`HotPathHints::stats`]) and every query answers as for an unknown region
//! (`None`, `false`, empty), because a half-updated record could make a cold
//! region look hot.
//!
//! ## Memory
//!
//! At most `capacity` regions, each costing its name (one shared allocation),
//! one [`RegionRecord`] (40 bytes), a map entry and 9 bytes of list links.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::policy::{Slot, SlotList};
use crate::stats::{AtomicCacheStats, CacheStats};

/// Capacity of [`HotPathHints::default`] (the seed's default).
pub const DEFAULT_CAPACITY: usize = 256;

/// Everything recorded for one region.
///
/// Totals are exact sums (saturating at `u64::MAX`, which for nanoseconds is
/// 584 years of kernel time), so the mean is exact, not a decayed estimate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionRecord {
    /// Dispatches recorded for the region.
    pub dispatch_count: u64,
    /// Sum of the kernel times of those dispatches, in nanoseconds.
    pub kernel_ns_total: u64,
    /// Longest single kernel time seen, in nanoseconds.
    pub kernel_ns_max: u64,
    /// Sum of the bytes those dispatches touched.
    pub bytes_total: u64,
    /// Table-wide record sequence number of the region's latest dispatch:
    /// a logical clock, not wall time, so results stay deterministic. A
    /// larger value means more recently recorded.
    pub last_seen: u64,
}

impl RegionRecord {
    /// Mean kernel time per dispatch in nanoseconds, rounded down (0 before
    /// any dispatch).
    pub fn mean_kernel_ns(&self) -> u64 {
        self.kernel_ns_total.checked_div(self.dispatch_count).unwrap_or(0)
    }

    /// Mean bytes touched per dispatch, rounded down (0 before any dispatch).
    pub fn mean_bytes(&self) -> u64 {
        self.bytes_total.checked_div(self.dispatch_count).unwrap_or(0)
    }

    fn add(&mut self, kernel_ns: u64, bytes: u64, tick: u64) {
        self.dispatch_count = self.dispatch_count.saturating_add(1);
        self.kernel_ns_total = self.kernel_ns_total.saturating_add(kernel_ns);
        self.kernel_ns_max = self.kernel_ns_max.max(kernel_ns);
        self.bytes_total = self.bytes_total.saturating_add(bytes);
        self.last_seen = tick;
    }
}

/// When a region counts as hot: **both** conditions must hold. Set a field
/// to 0 to switch that condition off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HotThreshold {
    /// At least this many recorded dispatches. Guards against one slow
    /// first dispatch (which often includes a pipeline compile or an upload)
    /// marking a region hot.
    pub min_dispatches: u64,
    /// Mean kernel time of at least this many nanoseconds (the seed's rule).
    pub min_mean_kernel_ns: u64,
}

impl Default for HotThreshold {
    /// The seed's rule: any recorded region whose mean kernel time is at
    /// least 100 µs.
    fn default() -> Self {
        HotThreshold { min_dispatches: 1, min_mean_kernel_ns: 100_000 }
    }
}

impl HotThreshold {
    /// Whether `record` passes both conditions. An empty record is never hot.
    pub fn is_hot(&self, record: &RegionRecord) -> bool {
        record.dispatch_count > 0
            && record.dispatch_count >= self.min_dispatches
            && record.mean_kernel_ns() >= self.min_mean_kernel_ns
    }
}

/// The table behind the lock. Slots are dense in `0..capacity` and never
/// freed: once full, an insert reuses the evicted region's slot.
#[derive(Debug, Default)]
struct Table {
    index: FxHashMap<Arc<str>, Slot>,
    /// Name of the region in each slot, to unindex it on eviction without a
    /// scan. Shares its allocation with the index key.
    names: Vec<Arc<str>>,
    records: Vec<RegionRecord>,
    /// Recency: front = most recently recorded, back = next victim.
    order: SlotList,
    /// Next record's sequence number.
    tick: u64,
}

/// Bounded, thread-safe table of per-region dispatch records with LRU
/// eviction of the least recently *recorded* region (queries do not count
/// as use: only dispatches make a region worth keeping).
///
/// Capacity 0 disables the table: records are dropped and nothing is hot.
#[derive(Debug)]
pub struct HotPathHints {
    table: Mutex<Table>,
    capacity: usize,
    threshold: HotThreshold,
    /// Counted outside the lock so drops are visible even when it is
    /// poisoned. The table is an object cache: each region is one unit, a
    /// record of a known region is a hit, a new one a miss + insertion.
    stats: AtomicCacheStats,
    /// Regions currently held, mirrored outside the lock for `stats()`.
    resident: AtomicU64,
}

impl Default for HotPathHints {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }
}

impl HotPathHints {
    /// A table holding at most `capacity` regions, with the default
    /// [`HotThreshold`]. `capacity == 0` disables recording.
    pub fn with_capacity(capacity: usize) -> Self {
        // Capacity is a user knob; slots are u32, so clamp rather than fail.
        let capacity = capacity.min(Slot::MAX as usize);
        HotPathHints {
            table: Mutex::new(Table::default()),
            capacity,
            threshold: HotThreshold::default(),
            stats: AtomicCacheStats::default(),
            resident: AtomicU64::new(0),
        }
    }

    /// The same table with another hot threshold.
    pub fn with_threshold(mut self, threshold: HotThreshold) -> Self {
        self.threshold = threshold;
        self
    }

    /// The hot threshold in force.
    pub fn threshold(&self) -> HotThreshold {
        self.threshold
    }

    /// The most regions the table holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// `Some(guard)` unless the lock is poisoned (then the table fails closed).
    fn lock(&self) -> Option<MutexGuard<'_, Table>> {
        self.table.lock().ok()
    }

    /// Records one dispatch of `region`: `kernel_ns` of kernel time touching
    /// `bytes`. Accumulates into the region's record and makes it the most
    /// recently recorded; a new region evicts the least recently recorded
    /// one when the table is full. O(1); allocates only for a new region.
    ///
    /// Dropped (and counted as a rejection) when the capacity is 0 or the
    /// lock is poisoned.
    pub fn record(&self, region: &str, kernel_ns: u64, bytes: u64) {
        let guard = if self.capacity == 0 { None } else { self.lock() };
        let Some(mut t) = guard else {
            self.stats.record_request(1, false);
            self.stats.record_rejection();
            return;
        };
        let t = &mut *t;
        let tick = t.tick;
        t.tick += 1;
        if let Some(&slot) = t.index.get(region) {
            self.stats.record_request(1, true);
            t.records[slot as usize].add(kernel_ns, bytes, tick);
            t.order.move_to_front(slot);
            return;
        }
        self.stats.record_request(1, false);
        let name: Arc<str> = Arc::from(region);
        let mut record = RegionRecord::default();
        record.add(kernel_ns, bytes, tick);
        let slot = if t.names.len() < self.capacity {
            // Still filling: slots are handed out densely.
            let slot = t.names.len() as Slot;
            t.names.push(Arc::clone(&name));
            t.records.push(record);
            self.resident.fetch_add(1, Ordering::Relaxed);
            slot
        } else {
            let Some(victim) = t.order.pop_back() else {
                // Unreachable while names.len() == capacity > 0 (every slot
                // is linked); refuse rather than corrupt the table.
                self.stats.record_rejection();
                return;
            };
            let old = std::mem::replace(&mut t.names[victim as usize], Arc::clone(&name));
            t.index.remove(&*old);
            t.records[victim as usize] = record;
            self.stats.record_eviction(1);
            victim
        };
        t.index.insert(name, slot);
        t.order.push_front(slot);
        self.stats.record_insertion();
        crate::strict_assert!(t.index.len() <= self.capacity, "hints table holds more regions than its capacity");
    }

    /// A copy of `region`'s record, or `None` when it is unknown (never
    /// recorded, evicted, or the table is poisoned). Does not refresh the
    /// region's recency.
    pub fn get(&self, region: &str) -> Option<RegionRecord> {
        let t = self.lock()?;
        t.index.get(region).map(|&slot| t.records[slot as usize])
    }

    /// Whether `region` passes the [`HotThreshold`]. Unknown regions are cold.
    pub fn is_hot(&self, region: &str) -> bool {
        self.get(region).is_some_and(|r| self.threshold.is_hot(&r))
    }

    /// The `n` regions with the most total kernel time (what a region costs
    /// overall, which is what an optimizer should spend effort on), largest
    /// first; ties go to more dispatches, then to the name, so the order is
    /// deterministic. O(k log k) in the regions held: a report, not a hot path.
    pub fn hottest(&self, n: usize) -> Vec<(String, RegionRecord)> {
        let Some(t) = self.lock() else { return Vec::new() };
        let mut all: Vec<(&str, RegionRecord)> =
            t.index.iter().map(|(name, &slot)| (&**name, t.records[slot as usize])).collect();
        all.sort_unstable_by(|(an, a), (bn, b)| {
            b.kernel_ns_total.cmp(&a.kernel_ns_total).then(b.dispatch_count.cmp(&a.dispatch_count)).then(an.cmp(bn))
        });
        all.into_iter().take(n).map(|(name, r)| (name.to_owned(), r)).collect()
    }

    /// Regions currently held (0 when poisoned).
    pub fn len(&self) -> usize {
        self.lock().map_or(0, |t| t.index.len())
    }

    /// Whether no region is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Counters: `requests` = records, `hits` = records of a known region,
    /// `insertions` = new regions, `evictions` = regions pushed out,
    /// `rejections` = records dropped (capacity 0 or poisoned lock);
    /// `resident_entries` (and `resident_bytes`, one unit per region) = regions
    /// held.
    pub fn stats(&self) -> CacheStats {
        let resident = self.resident.load(Ordering::Relaxed);
        self.stats.snapshot(resident, resident)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_table_answers_as_cold() {
        let h = HotPathHints::default();
        assert!(h.is_empty());
        assert_eq!(h.capacity(), DEFAULT_CAPACITY);
        assert!(!h.is_hot("any"));
        assert!(h.get("any").is_none());
        assert!(h.hottest(3).is_empty());
    }

    #[test]
    fn record_accumulates_into_running_mean_and_max() {
        let h = HotPathHints::default();
        h.record("matmul", 1_000, 100);
        h.record("matmul", 3_000, 300);
        h.record("matmul", 2_000, 200);
        let r = h.get("matmul").expect("recorded");
        assert_eq!((r.dispatch_count, r.kernel_ns_total, r.kernel_ns_max, r.bytes_total), (3, 6_000, 3_000, 600));
        assert_eq!((r.mean_kernel_ns(), r.mean_bytes()), (2_000, 200));
        assert_eq!(r.last_seen, 2, "third record of the table");
    }

    #[test]
    fn is_hot_uses_mean_and_dispatch_count() {
        let h = HotPathHints::default().with_threshold(HotThreshold { min_dispatches: 1, min_mean_kernel_ns: 1_000 });
        h.record("r", 500, 0);
        assert!(!h.is_hot("r"), "mean 500 is below 1000");
        h.record("r", 2_000, 0);
        assert!(h.is_hot("r"), "mean 1250 reaches 1000");

        let h = HotPathHints::default().with_threshold(HotThreshold { min_dispatches: 3, min_mean_kernel_ns: 0 });
        h.record("r", 1, 0);
        h.record("r", 1, 0);
        assert!(!h.is_hot("r"));
        h.record("r", 1, 0);
        assert!(h.is_hot("r"));
    }

    #[test]
    fn lru_evicts_least_recently_recorded() {
        let h = HotPathHints::with_capacity(2);
        h.record("a", 100, 10);
        h.record("b", 200, 20);
        h.record("c", 300, 30);
        assert_eq!(h.len(), 2);
        assert!(h.get("a").is_none(), "oldest evicted");
        assert!(h.get("b").is_some() && h.get("c").is_some());

        let h = HotPathHints::with_capacity(2);
        h.record("a", 100, 10);
        h.record("b", 200, 20);
        h.record("a", 100, 10);
        let _ = h.get("b"); // a query is not a use
        h.record("c", 300, 30);
        assert!(h.get("a").is_some(), "a was recorded again, must survive");
        assert!(h.get("b").is_none());
        let s = h.stats();
        assert_eq!((s.requests, s.hits, s.insertions, s.evictions, s.resident_entries), (4, 1, 3, 1, 2));
    }

    #[test]
    fn evicted_region_starts_over() {
        let h = HotPathHints::with_capacity(1);
        h.record("a", 100, 1);
        h.record("b", 5, 1);
        h.record("a", 7, 1);
        let r = h.get("a").unwrap();
        assert_eq!((r.dispatch_count, r.kernel_ns_max), (1, 7), "no stale totals from before the eviction");
    }

    #[test]
    fn capacity_zero_disables_recording() {
        let h =
            HotPathHints::with_capacity(0).with_threshold(HotThreshold { min_dispatches: 0, min_mean_kernel_ns: 0 });
        h.record("a", 100, 10);
        assert!(h.is_empty());
        assert!(!h.is_hot("a"));
        assert_eq!(h.stats().rejections, 1);
    }

    #[test]
    fn hottest_orders_by_total_time_then_count_then_name() {
        let h = HotPathHints::default();
        h.record("small", 10, 0);
        h.record("big", 1_000, 0);
        h.record("twice", 300, 0);
        h.record("twice", 300, 0);
        h.record("tie", 600, 0);
        let names: Vec<_> = h.hottest(10).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["big", "twice", "tie", "small"]);
        assert_eq!(h.hottest(1).len(), 1);
    }

    #[test]
    fn poisoned_lock_fails_closed() {
        let h =
            Arc::new(HotPathHints::default().with_threshold(HotThreshold { min_dispatches: 0, min_mean_kernel_ns: 0 }));
        h.record("a", 1, 1);
        let h2 = Arc::clone(&h);
        let joined = std::thread::spawn(move || {
            let _guard = h2.table.lock().unwrap();
            panic!("poison the hints lock on purpose");
        })
        .join();
        assert!(joined.is_err());
        h.record("a", 1, 1);
        assert!(h.get("a").is_none() && !h.is_hot("a") && h.is_empty() && h.hottest(5).is_empty());
        let s = h.stats();
        assert_eq!((s.requests, s.rejections), (2, 1));
    }

    #[test]
    fn hints_are_send_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<HotPathHints>();
    }
}
