//! 2Q: a FIFO for first-time objects, an LRU for proven ones, and a ghost
//! FIFO that decides who is proven.
//!
//! Johnson and Shasha, "2Q: A Low Overhead High Performance Buffer
//! Management Replacement Algorithm", VLDB 1994 (the "full" version with
//! A1in, A1out and Am). New objects enter Ain (FIFO); evicted from Ain they
//! leave a ghost in Aout; a miss that finds its ghost goes to Am (LRU).
//! Scan-resistant: a scan passes through Ain and never touches Am. Weak
//! spots: two fixed parameters (Ain 25%, Aout 50%) that suit some workloads
//! and not others; an object re-referenced while still in Ain gains nothing
//! (it must be evicted and come back to be promoted), which hurts short
//! loops; objects larger than Ain's quota are never cached.
//!
//! libCacheSim's `TwoQ(0.25, 0.5)` semantics, reproduced exactly
//! (`semantics.md` section 3): Ain's quota is trunc(0.25 C) bytes but Ain
//! may exceed it; Am holds C - trunc(0.25 C); Aout is a ghost FIFO of
//! trunc(0.5 C) bytes. A ghost hit goes into Am through Am's own LRU logic,
//! which may evict *more* Am objects after the whole cache already has room
//! (reported through [`EvictionPolicy::wants_eviction`]). Only objects no
//! larger than Ain's quota are cached.

use super::ghost::GhostFifo;
use super::{Admission, Entries, EvictionPolicy, Request, Slot, SlotList};

/// 2Q with libCacheSim's default ratios (Ain 0.25, Aout 0.5).
#[derive(Debug, Default, Clone)]
pub struct TwoQ {
    capacity: u64,
    ain_quota: u64,
    am_capacity: u64,
    aout_capacity: u64,
    ain: SlotList,
    am: SlotList,
    ain_bytes: u64,
    am_bytes: u64,
    aout: GhostFifo,
    /// The current miss found its ghost in Aout (its key): it goes to Am.
    ghost_hit_key: Option<u64>,
}

impl TwoQ {
    /// Ain's share of the capacity.
    pub const AIN_RATIO: f64 = 0.25;
    /// Aout's (ghost) size as a share of the capacity.
    pub const AOUT_RATIO: f64 = 0.5;

    /// Whether a resident slot is in Am (promoted through a ghost hit).
    pub fn in_am(&self, slot: Slot) -> bool {
        self.am.contains(slot)
    }

    /// Whether `key` has a ghost entry in Aout.
    pub fn in_aout(&self, key: u64) -> bool {
        self.aout.contains(key)
    }

    fn evict_am(&mut self, entries: &Entries) -> Option<Slot> {
        let victim = self.am.pop_back()?;
        self.am_bytes -= entries.size(victim);
        Some(victim)
    }

    fn evict_ain(&mut self, entries: &Entries) -> Option<Slot> {
        let victim = self.ain.pop_back()?;
        let size = entries.size(victim);
        self.ain_bytes -= size;
        self.aout.push_bounded(entries.key(victim), size, self.aout_capacity);
        Some(victim)
    }
}

impl EvictionPolicy for TwoQ {
    fn name(&self) -> &'static str {
        "twoq"
    }

    fn init(&mut self, capacity: u64) {
        self.capacity = capacity;
        self.ain_quota = (capacity as f64 * Self::AIN_RATIO) as u64;
        self.aout_capacity = (capacity as f64 * Self::AOUT_RATIO) as u64;
        self.am_capacity = capacity - self.ain_quota;
    }

    fn on_hit(&mut self, slot: Slot, req: &Request, _entries: &Entries) {
        self.ghost_hit_key = None;
        if !self.ain.contains(slot) {
            // libCacheSim looks in Aout before Am. A resident key has no
            // ghost (a ghost is made only for a key leaving Ain, and the
            // miss that brings it back removes it), so the lookup is skipped.
            debug_assert!(!self.aout.contains(req.key), "resident key with a ghost");
            self.am.move_to_front(slot);
        }
    }

    fn on_miss(&mut self, req: &Request, _entries: &Entries) {
        self.ghost_hit_key = self.aout.remove(req.key).map(|_| req.key);
    }

    fn admission(&self, req: &Request, capacity: u64) -> Admission {
        if req.size <= self.ain_quota && req.size <= capacity { Admission::Insert } else { Admission::Reject }
    }

    fn wants_eviction(&self, req: &Request) -> bool {
        self.ghost_hit_key == Some(req.key) && self.am_bytes + req.size > self.am_capacity && !self.am.is_empty()
    }

    fn evict(&mut self, req: &Request, entries: &Entries) -> Option<Slot> {
        if self.ain_bytes + self.am_bytes + req.size <= self.capacity {
            // The cache has room; Am's own LRU makes room for a promoted object.
            return self.evict_am(entries).or_else(|| self.evict_ain(entries));
        }
        if !self.am.is_empty() && self.ain_bytes <= self.ain_quota {
            self.evict_am(entries)
        } else {
            self.evict_ain(entries).or_else(|| self.evict_am(entries))
        }
    }

    fn on_insert(&mut self, slot: Slot, req: &Request, entries: &Entries) {
        let size = entries.size(slot);
        if self.ghost_hit_key == Some(req.key) {
            self.ghost_hit_key = None;
            self.am.push_front(slot);
            self.am_bytes += size;
        } else {
            self.ain.push_front(slot);
            self.ain_bytes += size;
        }
    }

    #[inline]
    fn warm(&self, key: u64) -> u64 {
        self.aout.warm(key)
    }

    fn on_remove(&mut self, slot: Slot, entries: &Entries) {
        let size = entries.size(slot);
        if self.ain.contains(slot) {
            self.ain.remove(slot);
            self.ain_bytes -= size;
        } else {
            self.am.remove(slot);
            self.am_bytes -= size;
        }
    }
}
