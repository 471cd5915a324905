//! Belady's MIN: evict the object whose next access is farthest away.
//!
//! Belady, "A study of replacement algorithms for a virtual-storage
//! computer", IBM Systems Journal 1966. Clairvoyant: it reads each request's
//! [`Request::next_access`], which the trace layer fills in with a reverse
//! pass, so it is a reference to measure online policies against, not a
//! policy to deploy. With unit sizes it is the exact optimum. With variable
//! sizes "evict farthest until it fits" is *not* optimal (a policy that
//! bypasses large objects can beat it; see FOO/PFOO for real bounds), and it
//! ignores what a miss costs.
//!
//! libCacheSim's `Belady` semantics, reproduced exactly: every miss is
//! inserted (no bypass), a hit updates the next access, and ties (objects
//! never requested again) are broken by libCacheSim's own binary heap, whose
//! moves [`SlotHeap`] copies. O(log n) per request, through that heap.

use super::heap::SlotHeap;
use super::{Entries, EvictionPolicy, Request, Slot};

/// Belady's MIN (farthest next access first).
#[derive(Debug, Default, Clone)]
pub struct Belady {
    heap: SlotHeap,
}

impl EvictionPolicy for Belady {
    fn name(&self) -> &'static str {
        "belady"
    }

    #[inline]
    fn on_hit(&mut self, slot: Slot, req: &Request, _entries: &Entries) {
        self.heap.change_priority(slot, req.next_access);
    }

    #[inline]
    fn evict(&mut self, _req: &Request, _entries: &Entries) -> Option<Slot> {
        self.heap.pop()
    }

    #[inline]
    fn on_insert(&mut self, slot: Slot, req: &Request, _entries: &Entries) {
        self.heap.push(slot, req.next_access);
    }

    #[inline]
    fn on_remove(&mut self, slot: Slot, _entries: &Entries) {
        self.heap.remove(slot);
    }
}
