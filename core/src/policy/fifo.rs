//! FIFO: evict the entry inserted longest ago; hits change nothing.
//!
//! The cheapest policy (no work on a hit, so no lock contention in a
//! concurrent cache) and the base of CLOCK, SIEVE and S3-FIFO. Alone it
//! ignores popularity: a hot object is evicted as soon as it is the oldest.
//! Semantics: `semantics.md` section 3, identical to libCacheSim's `FIFO`.

use super::{Entries, EvictionPolicy, Request, Slot, SlotList};

/// First in, first out. One intrusive list, newest at the front.
#[derive(Debug, Default, Clone)]
pub struct Fifo {
    queue: SlotList,
}

impl EvictionPolicy for Fifo {
    fn name(&self) -> &'static str {
        "fifo"
    }

    #[inline]
    fn on_hit(&mut self, _slot: Slot, _req: &Request, _entries: &Entries) {}

    #[inline]
    fn evict(&mut self, _req: &Request, _entries: &Entries) -> Option<Slot> {
        self.queue.pop_back()
    }

    #[inline]
    fn on_insert(&mut self, slot: Slot, _req: &Request, _entries: &Entries) {
        self.queue.push_front(slot);
    }

    #[inline]
    fn on_remove(&mut self, slot: Slot, _entries: &Entries) {
        self.queue.remove(slot);
    }
}
