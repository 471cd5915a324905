//! GPU-aware eviction (first cut): LRU that gives a dirty buffer one
//! reprieve before it costs a readback.
//!
//! On a GPU a miss is an upload (unless the access only writes) and evicting
//! a written (dirty) buffer is a readback, so what to minimise is bytes
//! moved, not misses. Evicting a clean buffer costs one upload at its next
//! use; evicting a dirty one costs a readback now *and* an upload at its next
//! use, so a dirty buffer at the LRU end is moved back to the MRU end once
//! (per residency) and a clean one behind it goes instead. The "0 bytes to
//! upload when the next access only writes" case is not modelled: it cannot
//! be observed online, and on the recorded traces no resident buffer is ever
//! re-accessed write-only (a `w` binding is always a buffer's first use).
//!
//! Status: on the recorded traces (`core/tests/gpu_traces.rs`) this moves
//! about as many bytes as LRU/CLOCK on ResNet-50 training and is *not* yet
//! better than every standard policy: it inherits LRU's collapse on loops
//! larger than the cache (GPT-2 decode streams its weights every token,
//! where S3-FIFO and ARC keep a stable subset). A predictive variant
//! (per-key reuse interval, Belady on predicted next use) was tried and was
//! worse on ResNet-50, whose activations are reused at irregular distances.
//! O(1) amortized: every reprieve is used once per residency.

use super::{Entries, EvictionPolicy, Request, Slot, SlotList};

/// LRU with one reprieve for dirty buffers (GPU bytes-moved aware).
#[derive(Debug, Default, Clone)]
pub struct GpuCost {
    lru: SlotList,
    /// Whether the slot already used its reprieve in this residency.
    reprieved: Vec<bool>,
}

impl EvictionPolicy for GpuCost {
    fn name(&self) -> &'static str {
        "gpu_cost"
    }

    fn on_hit(&mut self, slot: Slot, _req: &Request, _entries: &Entries) {
        self.lru.move_to_front(slot);
    }

    fn evict(&mut self, _req: &Request, entries: &Entries) -> Option<Slot> {
        loop {
            let t = self.lru.back()?;
            if entries.is_dirty(t) && !self.reprieved[t as usize] {
                self.reprieved[t as usize] = true;
                self.lru.move_to_front(t);
                continue;
            }
            self.lru.remove(t);
            return Some(t);
        }
    }

    fn on_insert(&mut self, slot: Slot, _req: &Request, _entries: &Entries) {
        let s = slot as usize;
        if self.reprieved.len() <= s {
            self.reprieved.resize((s + 1).max(self.reprieved.len() * 2), false);
        }
        self.reprieved[s] = false;
        self.lru.push_front(slot);
    }

    fn on_remove(&mut self, slot: Slot, _entries: &Entries) {
        self.lru.remove(slot);
    }
}
