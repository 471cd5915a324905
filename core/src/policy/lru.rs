//! LRU: evict the least recently used entry.
//!
//! The baseline every cache paper compares with. Strong on workloads with
//! temporal locality; weak on scans and loops larger than the cache (a
//! single pass over cold data flushes everything hot), and every hit moves a
//! list node, which is why production caches approximate it (CLOCK, SIEVE).
//! Semantics: `semantics.md` section 3, identical to libCacheSim's `LRU`.

use super::{Entries, EvictionPolicy, Request, Slot, SlotList};

/// Least recently used. One intrusive list, most recent at the front.
#[derive(Debug, Default, Clone)]
pub struct Lru {
    recency: SlotList,
}

impl Lru {
    /// Resident slots from most to least recently used (O(n); for tests).
    pub fn order_mru_first(&self) -> impl Iterator<Item = Slot> + '_ {
        self.recency.iter_newest_first()
    }
}

impl EvictionPolicy for Lru {
    fn name(&self) -> &'static str {
        "lru"
    }

    #[inline]
    fn on_hit(&mut self, slot: Slot, _req: &Request, _entries: &Entries) {
        self.recency.move_to_front(slot);
    }

    #[inline]
    fn evict(&mut self, _req: &Request, _entries: &Entries) -> Option<Slot> {
        self.recency.pop_back()
    }

    #[inline]
    fn on_insert(&mut self, slot: Slot, _req: &Request, _entries: &Entries) {
        self.recency.push_front(slot);
    }

    #[inline]
    fn on_remove(&mut self, slot: Slot, _entries: &Entries) {
        self.recency.remove(slot);
    }
}
