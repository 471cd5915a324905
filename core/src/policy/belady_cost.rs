//! A clairvoyant, cost-aware reference for GPU buffer residency.
//!
//! Belady's MIN counts misses; a GPU counts bytes moved. Evicting a clean
//! buffer costs one upload at its next use; evicting a dirty one costs a
//! readback now *and* an upload at its next use. This reference therefore
//! evicts by the farthest *cost-weighted* next use: a dirty buffer's
//! distance to its next use is halved (it costs twice as many bytes per
//! byte freed), buffers never used again go first (clean before dirty, since
//! a clean one costs nothing to drop). It reads [`Request::next_access`]
//! (request indices, filled in by a reverse pass), so it is a yardstick for
//! online policies such as [`GpuCost`](super::GpuCost), not a policy to
//! deploy. It is a heuristic, not an optimum: weighted caching with sizes is
//! NP-hard, and the halving ignores that a dirty buffer's readback is due
//! whenever it leaves, now or later. O(log n) per request (ordered set).

use std::collections::BTreeSet;

use super::{Entries, EvictionPolicy, Request, Slot};

/// Farthest cost-weighted next use first (clairvoyant).
#[derive(Debug, Default, Clone)]
pub struct BeladyCost {
    /// Requests seen (the clock `next_access` is measured on).
    now: u64,
    score: Vec<u64>,
    order: BTreeSet<(u64, Slot)>,
}

impl BeladyCost {
    fn score(&self, next_access: u64, dirty: bool) -> u64 {
        match (next_access, dirty) {
            (Request::NEVER, false) => u64::MAX,
            (Request::NEVER, true) => u64::MAX - 1,
            (next, dirty) => {
                let distance = next.saturating_sub(self.now);
                let weighted = if dirty { distance / 2 } else { distance };
                self.now.saturating_add(weighted).min(u64::MAX - 2)
            }
        }
    }

    fn place(&mut self, slot: Slot, req: &Request, entries: &Entries) {
        let s = slot as usize;
        if self.score.len() <= s {
            self.score.resize((s + 1).max(self.score.len() * 2), 0);
        }
        let score = self.score(req.next_access, entries.is_dirty(slot));
        self.score[s] = score;
        self.order.insert((score, slot));
    }
}

impl EvictionPolicy for BeladyCost {
    fn name(&self) -> &'static str {
        "belady_cost"
    }

    fn on_hit(&mut self, slot: Slot, req: &Request, entries: &Entries) {
        self.now += 1;
        self.order.remove(&(self.score[slot as usize], slot));
        self.place(slot, req, entries);
    }

    fn on_miss(&mut self, _req: &Request, _entries: &Entries) {
        self.now += 1;
    }

    fn evict(&mut self, _req: &Request, _entries: &Entries) -> Option<Slot> {
        self.order.pop_last().map(|(_, s)| s)
    }

    fn on_insert(&mut self, slot: Slot, req: &Request, entries: &Entries) {
        self.place(slot, req, entries);
    }

    fn on_remove(&mut self, slot: Slot, _entries: &Entries) {
        self.order.remove(&(self.score[slot as usize], slot));
    }
}
