//! LFU: evict the least frequently used entry, oldest first among equals.
//!
//! The textbook frequency policy (see e.g. Shah, Mitra and Matani's O(1)
//! LFU, 2010, for the bucket layout used here). It keeps objects that are
//! popular over the whole trace, so it resists scans and loops that flush
//! LRU; it is weak when popularity changes: frequencies never age, so
//! yesterday's hot objects squat in the cache (cache pollution), and a new
//! object must win its place against counts built up over a long time.
//!
//! Semantics: `semantics.md` section 3, identical to libCacheSim's `LFU`:
//! in-cache frequency only (forgotten on eviction), insert with frequency 1,
//! a hit adds 1, the victim is the object that *entered* the lowest
//! frequency earliest. O(1) per request through [`FreqBuckets`].

use super::freq_list::FreqBuckets;
use super::{Entries, EvictionPolicy, Request, Slot};

/// Least frequently used, with LRU order (by entry into the frequency) among
/// equal frequencies.
#[derive(Debug, Default, Clone)]
pub struct Lfu {
    buckets: FreqBuckets,
}

impl Lfu {
    /// In-cache frequency of a resident slot (for tests and reports).
    pub fn freq(&self, slot: Slot) -> Option<u64> {
        self.buckets.contains(slot).then(|| self.buckets.freq(slot))
    }
}

impl EvictionPolicy for Lfu {
    fn name(&self) -> &'static str {
        "lfu"
    }

    #[inline]
    fn on_hit(&mut self, slot: Slot, _req: &Request, _entries: &Entries) {
        self.buckets.increment(slot);
    }

    #[inline]
    fn evict(&mut self, _req: &Request, _entries: &Entries) -> Option<Slot> {
        self.buckets.pop_lowest()
    }

    #[inline]
    fn on_insert(&mut self, slot: Slot, _req: &Request, _entries: &Entries) {
        self.buckets.insert(slot);
    }

    #[inline]
    fn on_remove(&mut self, slot: Slot, _entries: &Entries) {
        self.buckets.remove(slot);
    }
}
