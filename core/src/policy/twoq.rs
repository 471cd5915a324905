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
//!
//! Aout lives in the container ([`EvictionPolicy::keeps_ghosts`]), as ARC's
//! ghosts do: it is a FIFO of ghost slots like Ain is of resident ones, so
//! Ain's victim becomes a ghost with no key lookup, and a request finds a
//! resident entry or its ghost with the container's one lookup. The trimming
//! is libCacheSim's (a `FIFO` cache of trunc(0.5 C) bytes): an object larger
//! than Aout leaves no ghost, any other drops Aout's oldest ghosts until it
//! fits and enters at the newest end.
//!
//! Every slot the policy holds is in exactly one of Ain, Am and Aout, so the
//! three share one link vector ([`SlotLists`]): Ain's victim moves to Aout,
//! and "which list is this slot in" is read, within one cache line.

use super::lists::SlotLists;
use super::{Admission, Entries, EvictionPolicy, Request, Slot};

/// The three lists, numbered in one [`SlotLists`] (a slot is in one of them).
const AIN: usize = 0;
const AM: usize = 1;
const AOUT: usize = 2;

/// 2Q with libCacheSim's default ratios (Ain 0.25, Aout 0.5).
#[derive(Debug, Default, Clone)]
pub struct TwoQ {
    capacity: u64,
    ain_quota: u64,
    am_capacity: u64,
    aout_capacity: u64,
    /// Ain (resident, FIFO: newest at the front), Am (resident, MRU at the
    /// front) and Aout (ghost slots, newest at the front), sharing links.
    lists: SlotLists<3>,
    ain_bytes: u64,
    am_bytes: u64,
    aout_bytes: u64,
    /// Ghosts dropped from Aout, for the container to free.
    dropped: Vec<Slot>,
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
        self.lists.list_of(slot) == Some(AM)
    }

    /// Whether `slot` is a ghost in Aout. A ghost's key is not resident
    /// ([`crate::cache::Cache::contains`] says no); its slot comes from
    /// [`aout_newest_first`](Self::aout_newest_first).
    pub fn in_aout(&self, slot: Slot) -> bool {
        self.lists.list_of(slot) == Some(AOUT)
    }

    /// Number of ghosts in Aout.
    pub fn aout_len(&self) -> usize {
        self.lists.len(AOUT)
    }

    /// Bytes (capacity units) of the ghosts in Aout.
    pub fn aout_bytes(&self) -> u64 {
        self.aout_bytes
    }

    /// Aout's ghost slots from newest to oldest (O(n); for tests and
    /// reports: [`crate::cache::Cache::key_of`] names their keys).
    pub fn aout_newest_first(&self) -> impl Iterator<Item = Slot> + '_ {
        self.lists.iter_newest_first(AOUT)
    }

    fn evict_am(&mut self, entries: &Entries) -> Option<Slot> {
        let victim = self.lists.pop_back(AM)?;
        self.am_bytes -= entries.size(victim);
        Some(victim)
    }

    fn evict_ain(&mut self, entries: &Entries) -> Option<Slot> {
        let victim = self.lists.pop_back(AIN)?;
        let size = entries.size(victim);
        self.ain_bytes -= size;
        self.push_ghost(victim, size, entries);
        Some(victim)
    }

    /// Makes Ain's victim a ghost at Aout's newest end, dropping the oldest
    /// ghosts until it fits; a victim larger than Aout gets no ghost (then
    /// [`retains_as_ghost`](EvictionPolicy::retains_as_ghost) says no and the
    /// container frees its slot).
    fn push_ghost(&mut self, victim: Slot, size: u64, entries: &Entries) {
        if size > self.aout_capacity {
            return;
        }
        while self.aout_bytes + size > self.aout_capacity {
            let Some(oldest) = self.lists.pop_back(AOUT) else { break };
            self.aout_bytes -= entries.size(oldest);
            self.dropped.push(oldest);
        }
        self.lists.push_front(AOUT, victim);
        self.aout_bytes += size;
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

    fn on_hit(&mut self, slot: Slot, _req: &Request, _entries: &Entries) {
        self.ghost_hit_key = None;
        let list = self.lists.list_of(slot);
        if list != Some(AIN) {
            // libCacheSim looks in Aout before Am. A resident key has no
            // ghost: the container maps a key to one slot, resident or
            // ghost, so there is nothing to look up.
            debug_assert_eq!(list, Some(AM), "resident slot not in Ain or Am");
            self.lists.move_to_front(AM, slot);
        }
    }

    fn on_miss(&mut self, _req: &Request, _entries: &Entries) {
        self.ghost_hit_key = None;
    }

    fn keeps_ghosts(&self) -> bool {
        true
    }

    fn on_ghost_miss(&mut self, ghost: Slot, req: &Request, entries: &Entries) {
        let list = self.lists.remove(ghost);
        debug_assert_eq!(list, AOUT, "ghost slot not in Aout");
        self.aout_bytes -= entries.size(ghost);
        self.ghost_hit_key = Some(req.key);
    }

    #[inline]
    fn retains_as_ghost(&self, victim: Slot) -> bool {
        self.lists.list_of(victim) == Some(AOUT)
    }

    #[inline]
    fn pop_dropped_ghost(&mut self) -> Option<Slot> {
        self.dropped.pop()
    }

    fn admission(&self, req: &Request, capacity: u64) -> Admission {
        if req.size <= self.ain_quota && req.size <= capacity { Admission::Insert } else { Admission::Reject }
    }

    fn wants_eviction(&self, req: &Request) -> bool {
        self.ghost_hit_key == Some(req.key) && self.am_bytes + req.size > self.am_capacity && !self.lists.is_empty(AM)
    }

    fn evict(&mut self, req: &Request, entries: &Entries) -> Option<Slot> {
        if self.ain_bytes + self.am_bytes + req.size <= self.capacity {
            // The cache has room; Am's own LRU makes room for a promoted object.
            return self.evict_am(entries).or_else(|| self.evict_ain(entries));
        }
        if !self.lists.is_empty(AM) && self.ain_bytes <= self.ain_quota {
            self.evict_am(entries)
        } else {
            self.evict_ain(entries).or_else(|| self.evict_am(entries))
        }
    }

    fn on_insert(&mut self, slot: Slot, req: &Request, entries: &Entries) {
        let size = entries.size(slot);
        if self.ghost_hit_key == Some(req.key) {
            self.ghost_hit_key = None;
            self.lists.push_front(AM, slot);
            self.am_bytes += size;
        } else {
            self.lists.push_front(AIN, slot);
            self.ain_bytes += size;
        }
    }

    fn on_remove(&mut self, slot: Slot, entries: &Entries) {
        let size = entries.size(slot);
        match self.lists.remove(slot) {
            AIN => self.ain_bytes -= size,
            AM => self.am_bytes -= size,
            // A ghost whose key is stored without a request.
            _ => self.aout_bytes -= size,
        }
    }
}
