//! CLOCK (second chance) with one reference bit.
//!
//! Corbató's approximation of LRU, used by operating systems for page
//! replacement: a hit only sets a bit (cheap, no list move); eviction walks
//! from the oldest end, giving each referenced entry a second chance. Like
//! LRU it is not scan-resistant. Eviction is amortized O(1): every bit it
//! clears was set by one earlier hit.
//! Semantics: `semantics.md` section 3, identical to libCacheSim's
//! `Clock(init_freq=0, n_bit_counter=1)`.

use super::{Entries, EvictionPolicy, Request, Slot, SlotList};

/// CLOCK with one reference bit per slot.
#[derive(Debug, Default, Clone)]
pub struct Clock {
    ring: SlotList,
    referenced: Vec<bool>,
}

impl EvictionPolicy for Clock {
    fn name(&self) -> &'static str {
        "clock"
    }

    #[inline]
    fn on_hit(&mut self, slot: Slot, _req: &Request, _entries: &Entries) {
        self.referenced[slot as usize] = true;
    }

    fn evict(&mut self, _req: &Request, _entries: &Entries) -> Option<Slot> {
        loop {
            let oldest = self.ring.back()?;
            let bit = &mut self.referenced[oldest as usize];
            if *bit {
                // Second chance: clear and move to the newest end.
                *bit = false;
                self.ring.move_to_front(oldest);
            } else {
                self.ring.remove(oldest);
                return Some(oldest);
            }
        }
    }

    #[inline]
    fn on_insert(&mut self, slot: Slot, _req: &Request, _entries: &Entries) {
        let s = slot as usize;
        if self.referenced.len() <= s {
            self.referenced.resize((s + 1).max(self.referenced.len() * 2), false);
        }
        self.referenced[s] = false;
        self.ring.push_front(slot);
    }

    #[inline]
    fn on_remove(&mut self, slot: Slot, _entries: &Entries) {
        self.ring.remove(slot);
    }
}
