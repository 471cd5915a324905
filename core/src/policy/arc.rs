//! ARC: Adaptive Replacement Cache.
//!
//! Megiddo and Modha, "ARC: A Self-Tuning, Low Overhead Replacement Cache",
//! FAST 2003. Two LRU lists, T1 (seen once recently) and T2 (seen at least
//! twice), and their ghost lists B1 and B2 of recently evicted keys. A ghost
//! hit in B1 says T1 was too small and grows the target `p` of T1; a ghost
//! hit in B2 shrinks it. Scan-resistant (a scan only churns T1) and
//! parameter-free. Weak spots: every hit moves a list node (like LRU); the
//! ghosts cost memory; and with variable sizes the adaptation is per
//! *request*, not per byte (below).
//!
//! Deviations from the paper that libCacheSim's `ARC` has, reproduced here
//! for exact agreement (`semantics.md` section 3):
//! * All four lists are measured in bytes and `p` is an `f64` that moves by
//!   `max(|B2|/|B1|, 1)` per ghost hit, so on a byte cache with large objects
//!   `p` barely moves and ARC behaves as if `p` were 0.
//! * A ghost hit removes the ghost in `find` (before admission) and inserts
//!   at T2's head after plain REPLACE steps.
//! * REPLACE evicts from T1 when T2 is empty, whatever `p` says.
//! * The "hit in B2" flag that REPLACE's tie rule reads is cleared only by a
//!   hit, a ghost hit or an insertion after a ghost hit: a plain miss leaves
//!   it as it was.
//! * A plain miss with `T1 + B1 + size > C` and B1 empty evicts T1's LRU
//!   without a ghost entry; otherwise B2's oldest ghost is dropped once the
//!   four lists reach `2C`.
//!
//! The ghosts live in the container ([`EvictionPolicy::keeps_ghosts`]): B1
//! and B2 are lists of ghost slots like T1 and T2 are of resident ones (all
//! four share one link vector, [`SlotLists`]), so REPLACE moves a slot from
//! T1 to B1 with no key lookup and within one cache line, and a request
//! finds a resident entry or a ghost with the container's one lookup. A
//! miss costs one index lookup, one insert and (in steady state) one removal
//! of the dropped ghost, where separate ghost indexes cost seven.

use super::lists::SlotLists;
use super::{Entries, EvictionPolicy, Request, Slot};

/// The four lists, numbered in one [`SlotLists`] (a slot is in one of them).
const T1: usize = 0;
const T2: usize = 1;
const B1: usize = 2;
const B2: usize = 3;

/// ARC with byte-measured lists, as libCacheSim implements it.
#[derive(Debug, Default, Clone)]
pub struct Arc {
    capacity: u64,
    /// T1 and T2 (resident slots, MRU at the front), B1 and B2 (ghost
    /// slots, newest at the front), sharing their links.
    lists: SlotLists<4>,
    t1_bytes: u64,
    t2_bytes: u64,
    b1_bytes: u64,
    b2_bytes: u64,
    /// Ghosts dropped from B1 or B2, for the container to free.
    dropped: Vec<Slot>,
    /// Target size of T1, in bytes.
    p: f64,
    /// The current miss hit a ghost (its key), so evictions are plain
    /// REPLACE steps and the object goes to T2.
    ghost_hit_key: Option<u64>,
    /// The last ghost hit was in B2 (REPLACE's tie rule); sticky, see above.
    last_hit_in_b2: bool,
}

impl Arc {
    /// The adaptive target size of T1, in capacity units.
    pub fn p(&self) -> f64 {
        self.p
    }

    /// Bytes in (T1, T2, B1, B2).
    pub fn list_bytes(&self) -> (u64, u64, u64, u64) {
        (self.t1_bytes, self.t2_bytes, self.b1_bytes, self.b2_bytes)
    }

    /// Whether a resident slot is in T2 (seen at least twice).
    pub fn in_t2(&self, slot: Slot) -> bool {
        self.lists.list_of(slot) == Some(T2)
    }

    /// The paper's REPLACE: demote T1's or T2's LRU object to its ghost list.
    fn replace(&mut self, entries: &Entries) -> Option<Slot> {
        let t1 = self.t1_bytes as f64;
        let from_t1 =
            (self.t1_bytes > 0 && (t1 > self.p || (t1 == self.p && self.last_hit_in_b2))) || self.t2_bytes == 0;
        if (from_t1 || self.lists.is_empty(T2))
            && let Some(victim) = self.lists.back(T1)
        {
            let size = entries.size(victim);
            self.t1_bytes -= size;
            self.lists.move_to_front(B1, victim);
            self.b1_bytes += size;
            return Some(victim);
        }
        let victim = self.lists.back(T2)?;
        let size = entries.size(victim);
        self.t2_bytes -= size;
        self.lists.move_to_front(B2, victim);
        self.b2_bytes += size;
        Some(victim)
    }

    /// Drops B1's oldest ghost (the caller checked B1 is not empty).
    fn drop_oldest_b1(&mut self, entries: &Entries) {
        if let Some(ghost) = self.lists.pop_back(B1) {
            self.b1_bytes -= entries.size(ghost);
            self.dropped.push(ghost);
        }
    }

    /// Drops B2's oldest ghost, if any.
    fn drop_oldest_b2(&mut self, entries: &Entries) {
        if let Some(ghost) = self.lists.pop_back(B2) {
            self.b2_bytes -= entries.size(ghost);
            self.dropped.push(ghost);
        }
    }
}

impl EvictionPolicy for Arc {
    fn name(&self) -> &'static str {
        "arc"
    }

    fn init(&mut self, capacity: u64) {
        self.capacity = capacity;
    }

    fn on_hit(&mut self, slot: Slot, _req: &Request, entries: &Entries) {
        self.ghost_hit_key = None;
        self.last_hit_in_b2 = false;
        if self.lists.list_of(slot) == Some(T1) {
            let size = entries.size(slot);
            self.t1_bytes -= size;
            self.t2_bytes += size;
        }
        self.lists.move_to_front(T2, slot);
    }

    fn on_miss(&mut self, _req: &Request, _entries: &Entries) {
        self.ghost_hit_key = None;
    }

    fn keeps_ghosts(&self) -> bool {
        true
    }

    fn on_ghost_miss(&mut self, ghost: Slot, req: &Request, entries: &Entries) {
        // The deltas use the list sizes from before the ghost leaves.
        let (b1, b2) = (self.b1_bytes as f64, self.b2_bytes as f64);
        let size = entries.size(ghost);
        if self.lists.remove(ghost) == B1 {
            self.b1_bytes -= size;
            let delta = (b2 / b1).max(1.0);
            self.p = (self.p + delta).min(self.capacity as f64);
            self.last_hit_in_b2 = false;
        } else {
            self.b2_bytes -= size;
            let delta = (b1 / b2).max(1.0);
            self.p = (self.p - delta).max(0.0);
            self.last_hit_in_b2 = true;
        }
        self.ghost_hit_key = Some(req.key);
    }

    #[inline]
    fn retains_as_ghost(&self, victim: Slot) -> bool {
        self.lists.list_of(victim).is_some()
    }

    #[inline]
    fn pop_dropped_ghost(&mut self) -> Option<Slot> {
        self.dropped.pop()
    }

    fn evict(&mut self, req: &Request, entries: &Entries) -> Option<Slot> {
        if self.ghost_hit_key == Some(req.key) {
            return self.replace(entries);
        }
        if self.t1_bytes + self.b1_bytes + req.size > self.capacity {
            if !self.lists.is_empty(B1) {
                self.drop_oldest_b1(entries);
                self.replace(entries)
            } else {
                // T1 alone fills the cache: evict its LRU without a ghost.
                match self.lists.pop_back(T1) {
                    Some(victim) => {
                        self.t1_bytes -= entries.size(victim);
                        Some(victim)
                    }
                    None => self.replace(entries),
                }
            }
        } else {
            let total = self.t1_bytes + self.t2_bytes + self.b1_bytes + self.b2_bytes;
            if total >= 2 * self.capacity {
                self.drop_oldest_b2(entries);
            }
            self.replace(entries)
        }
    }

    fn on_insert(&mut self, slot: Slot, req: &Request, entries: &Entries) {
        let size = entries.size(slot);
        if self.ghost_hit_key == Some(req.key) {
            self.lists.push_front(T2, slot);
            self.t2_bytes += size;
            self.ghost_hit_key = None;
            self.last_hit_in_b2 = false;
        } else {
            self.lists.push_front(T1, slot);
            self.t1_bytes += size;
        }
    }

    fn on_remove(&mut self, slot: Slot, entries: &Entries) {
        let size = entries.size(slot);
        match self.lists.remove(slot) {
            T1 => self.t1_bytes -= size,
            T2 => self.t2_bytes -= size,
            B1 => self.b1_bytes -= size,
            _ => self.b2_bytes -= size,
        }
    }
}
