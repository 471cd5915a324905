//! SIEVE: a FIFO queue with a visited bit and a moving hand.
//!
//! Zhang et al., "SIEVE is Simpler than LRU: an Efficient Turn-Key Eviction
//! Algorithm for Web Caches", NSDI 2024. A hit only sets a bit (no list
//! move, so no lock in a concurrent cache); the hand sweeps from old to new,
//! clearing bits, and evicts the first unvisited object, *without* moving
//! survivors to the head (unlike CLOCK). New objects thus meet the hand
//! quickly (quick demotion) while visited old ones stay in place. Weak on
//! workloads with little reuse soon after insertion (some block and loop
//! workloads), where it behaves like FIFO, and it is not scan-aware beyond
//! that quick demotion.
//!
//! Semantics: `semantics.md` section 3, identical to libCacheSim's `Sieve`:
//! the hand starts at the tail, walks toward the head and wraps to the
//! tail; after an eviction it points at the victim's newer neighbour (or
//! restarts at the tail when the victim was the head). Eviction is
//! amortized O(1): every bit cleared was set by one earlier hit.

use super::{Entries, EvictionPolicy, Request, Slot, SlotList};

/// SIEVE with one visited bit per slot.
#[derive(Debug, Default, Clone)]
pub struct Sieve {
    queue: SlotList,
    visited: Vec<bool>,
    /// Where the next eviction starts; `None`: at the tail (oldest).
    hand: Option<Slot>,
}

impl Sieve {
    /// The slot the hand points at (`None`: the tail), for tests.
    pub fn hand(&self) -> Option<Slot> {
        self.hand
    }
}

impl EvictionPolicy for Sieve {
    fn name(&self) -> &'static str {
        "sieve"
    }

    #[inline]
    fn on_hit(&mut self, slot: Slot, _req: &Request, _entries: &Entries) {
        self.visited[slot as usize] = true;
    }

    fn evict(&mut self, _req: &Request, _entries: &Entries) -> Option<Slot> {
        let mut cur = self.hand.or_else(|| self.queue.back())?;
        // Bounded: each pass clears bits, so within two sweeps an unvisited
        // object is found.
        loop {
            let bit = &mut self.visited[cur as usize];
            if *bit {
                *bit = false;
                cur = self.queue.newer(cur).or_else(|| self.queue.back())?;
            } else {
                self.hand = self.queue.newer(cur);
                self.queue.remove(cur);
                return Some(cur);
            }
        }
    }

    #[inline]
    fn on_insert(&mut self, slot: Slot, _req: &Request, _entries: &Entries) {
        let s = slot as usize;
        if self.visited.len() <= s {
            self.visited.resize((s + 1).max(self.visited.len() * 2), false);
        }
        self.visited[s] = false;
        self.queue.push_front(slot);
    }

    fn on_remove(&mut self, slot: Slot, _entries: &Entries) {
        if self.hand == Some(slot) {
            self.hand = self.queue.newer(slot);
        }
        self.queue.remove(slot);
    }
}
