//! S3-FIFO: a small FIFO, a main FIFO with lazy promotion, and a ghost FIFO.
//!
//! Yang et al., "FIFO Queues are All You Need for Cache Eviction", SOSP
//! 2023. New objects go to a small FIFO (10%); most leave it quickly (quick
//! demotion: one-hit wonders never reach main), those hit at least twice
//! move to main; keys evicted from small leave a ghost, and a miss that finds
//! its ghost goes straight to main. Main is a FIFO with a 2-bit reinsertion
//! counter (CLOCK-like). Only FIFO queues, so hits are cheap. Weak spots:
//! objects larger than the small queue (10% of the cache) are never cached,
//! which hurts byte caches with large objects; a fixed small-queue ratio
//! that suits web workloads more than loops larger than the cache.
//!
//! libCacheSim's `S3FIFO(0.1, 0.9, move_to_main_threshold=2)` semantics,
//! reproduced exactly (`semantics.md` section 3), which differ from the
//! paper's pseudo-code:
//! * S = trunc(0.1 C), M = C - S, ghost G = trunc(0.9 C) bytes.
//! * Hits in small and in main add 1 to `freq` (uncapped); a hit in main
//!   also drops a ghost entry of the same key (none can exist: see `on_hit`).
//! * A ghost hit goes to main with freq 0. Any other miss is dropped when its
//!   size is >= S (an object of exactly S first evicts, then is dropped:
//!   [`Admission::EvictOnly`]); before the very first eviction it goes to
//!   main once small is full, afterwards to small.
//! * Eviction: from main when main exceeds M or small is empty; from small
//!   otherwise, moving freq >= 2 objects to main (freq 0) until one with
//!   freq < 2 is evicted into the ghost. Main reinserts freq >= 1 objects
//!   with `freq = min(freq, 3) - 1`.
//!
//! The ghost queue lives in the container ([`EvictionPolicy::keeps_ghosts`]),
//! as ARC's ghosts do: it is a FIFO of ghost slots like small is of resident
//! ones, so small's victim becomes a ghost with no key lookup, and a request
//! finds a resident entry or its ghost with the container's one lookup. The
//! trimming is libCacheSim's (a `FIFO` cache of G bytes): an object larger
//! than G leaves no ghost, any other drops the oldest ghosts until it fits
//! and enters at the newest end; with G = 0 there are no ghosts at all.
//!
//! Every slot the policy holds is in exactly one of small, main and the
//! ghost queue, so the three share one link vector ([`SlotLists`]): small's
//! victim moves to main or the ghost queue, and "which queue is this slot
//! in" is read, within one cache line. The access counters stay in a vector
//! of their own, indexed by slot.

use super::lists::SlotLists;
use super::{Admission, Entries, EvictionPolicy, Request, Slot};

/// The three queues, numbered in one [`SlotLists`] (a slot is in one of them).
const SMALL: usize = 0;
const MAIN: usize = 1;
const GHOST: usize = 2;

/// S3-FIFO with libCacheSim's default parameters.
#[derive(Debug, Default, Clone)]
pub struct S3Fifo {
    small_capacity: u64,
    main_capacity: u64,
    ghost_capacity: u64,
    /// Small and main (resident slots) and the ghost queue (ghost slots),
    /// each newest at the front, sharing their links.
    lists: SlotLists<3>,
    small_bytes: u64,
    main_bytes: u64,
    freq: Vec<u32>,
    ghost_bytes: u64,
    /// Ghosts dropped from the ghost queue, for the container to free.
    dropped: Vec<Slot>,
    /// Whether anything was evicted yet (until then a full small queue
    /// sends new objects to main).
    has_evicted: bool,
    /// The current miss found its ghost (its key): it goes to main.
    ghost_hit_key: Option<u64>,
}

impl S3Fifo {
    /// Small queue's share of the capacity.
    pub const SMALL_RATIO: f64 = 0.1;
    /// Ghost queue's size as a share of the capacity.
    pub const GHOST_RATIO: f64 = 0.9;
    /// Hits in small needed to move to main at eviction.
    pub const MOVE_TO_MAIN_THRESHOLD: u32 = 2;

    /// Whether a resident slot is in the main queue.
    pub fn in_main(&self, slot: Slot) -> bool {
        self.lists.list_of(slot) == Some(MAIN)
    }

    /// Whether `slot` is a ghost in the ghost queue. A ghost's key is not
    /// resident ([`crate::cache::Cache::contains`] says no); its slot comes
    /// from [`ghosts_newest_first`](Self::ghosts_newest_first).
    pub fn in_ghost(&self, slot: Slot) -> bool {
        self.lists.list_of(slot) == Some(GHOST)
    }

    /// Number of ghosts.
    pub fn ghost_len(&self) -> usize {
        self.lists.len(GHOST)
    }

    /// Bytes (capacity units) of the ghosts.
    pub fn ghost_bytes(&self) -> u64 {
        self.ghost_bytes
    }

    /// The ghost slots from newest to oldest (O(n); for tests and reports:
    /// [`crate::cache::Cache::key_of`] names their keys).
    pub fn ghosts_newest_first(&self) -> impl Iterator<Item = Slot> + '_ {
        self.lists.iter_newest_first(GHOST)
    }

    /// The access counter of a resident slot.
    pub fn freq(&self, slot: Slot) -> u32 {
        self.freq[slot as usize]
    }

    fn evict_main(&mut self, entries: &Entries) -> Option<Slot> {
        loop {
            let oldest = self.lists.back(MAIN)?;
            let f = &mut self.freq[oldest as usize];
            if *f >= 1 {
                *f = (*f).min(3) - 1;
                self.lists.move_to_front(MAIN, oldest);
            } else {
                self.lists.remove(oldest);
                self.main_bytes -= entries.size(oldest);
                return Some(oldest);
            }
        }
    }

    /// Evicts from small, promoting hit objects to main; `None` when small
    /// drained without evicting anything.
    fn evict_small(&mut self, entries: &Entries) -> Option<Slot> {
        while let Some(oldest) = self.lists.pop_back(SMALL) {
            let size = entries.size(oldest);
            self.small_bytes -= size;
            if self.freq[oldest as usize] >= Self::MOVE_TO_MAIN_THRESHOLD {
                self.freq[oldest as usize] = 0;
                self.lists.push_front(MAIN, oldest);
                self.main_bytes += size;
            } else {
                self.push_ghost(oldest, size, entries);
                return Some(oldest);
            }
        }
        None
    }

    /// Makes small's victim a ghost at the newest end, dropping the oldest
    /// ghosts until it fits; a victim larger than the ghost queue (any
    /// victim when G = 0, which libCacheSim skips outright) gets no ghost:
    /// then [`retains_as_ghost`](EvictionPolicy::retains_as_ghost) says no
    /// and the container frees its slot.
    fn push_ghost(&mut self, victim: Slot, size: u64, entries: &Entries) {
        if self.ghost_capacity == 0 || size > self.ghost_capacity {
            return;
        }
        while self.ghost_bytes + size > self.ghost_capacity {
            let Some(oldest) = self.lists.pop_back(GHOST) else { break };
            self.ghost_bytes -= entries.size(oldest);
            self.dropped.push(oldest);
        }
        self.lists.push_front(GHOST, victim);
        self.ghost_bytes += size;
    }
}

impl EvictionPolicy for S3Fifo {
    fn name(&self) -> &'static str {
        "s3fifo"
    }

    fn init(&mut self, capacity: u64) {
        self.small_capacity = (capacity as f64 * Self::SMALL_RATIO) as u64;
        self.main_capacity = capacity - self.small_capacity;
        self.ghost_capacity = (capacity as f64 * Self::GHOST_RATIO) as u64;
    }

    fn on_hit(&mut self, slot: Slot, _req: &Request, _entries: &Entries) {
        self.ghost_hit_key = None;
        // libCacheSim drops a ghost of the key on a hit in main. There is
        // none: the container maps a key to one slot, resident or ghost, so
        // a resident key never has a ghost and there is nothing to look up.
        debug_assert!(self.lists.list_of(slot) != Some(GHOST), "resident slot linked in the ghost queue");
        let f = &mut self.freq[slot as usize];
        *f = f.saturating_add(1);
    }

    fn on_miss(&mut self, _req: &Request, _entries: &Entries) {
        self.ghost_hit_key = None;
    }

    fn keeps_ghosts(&self) -> bool {
        true
    }

    fn on_ghost_miss(&mut self, ghost: Slot, req: &Request, entries: &Entries) {
        let list = self.lists.remove(ghost);
        debug_assert_eq!(list, GHOST, "ghost slot not in the ghost queue");
        self.ghost_bytes -= entries.size(ghost);
        self.ghost_hit_key = Some(req.key);
    }

    #[inline]
    fn retains_as_ghost(&self, victim: Slot) -> bool {
        self.lists.list_of(victim) == Some(GHOST)
    }

    #[inline]
    fn pop_dropped_ghost(&mut self) -> Option<Slot> {
        self.dropped.pop()
    }

    fn admission(&self, req: &Request, capacity: u64) -> Admission {
        if req.size > self.small_capacity || req.size > capacity {
            Admission::Reject
        } else if req.size == self.small_capacity && self.ghost_hit_key != Some(req.key) {
            Admission::EvictOnly
        } else {
            Admission::Insert
        }
    }

    fn evict(&mut self, _req: &Request, entries: &Entries) -> Option<Slot> {
        self.has_evicted = true;
        loop {
            if self.main_bytes > self.main_capacity || self.lists.is_empty(SMALL) {
                return self.evict_main(entries);
            }
            if let Some(victim) = self.evict_small(entries) {
                return Some(victim);
            }
        }
    }

    fn on_insert(&mut self, slot: Slot, req: &Request, entries: &Entries) {
        let s = slot as usize;
        if self.freq.len() <= s {
            self.freq.resize((s + 1).max(self.freq.len() * 2), 0);
        }
        self.freq[s] = 0;
        let size = entries.size(slot);
        let to_main = if self.ghost_hit_key == Some(req.key) {
            self.ghost_hit_key = None;
            true
        } else {
            !self.has_evicted && self.small_bytes >= self.small_capacity
        };
        if to_main {
            self.lists.push_front(MAIN, slot);
            self.main_bytes += size;
        } else {
            self.lists.push_front(SMALL, slot);
            self.small_bytes += size;
        }
    }

    fn on_remove(&mut self, slot: Slot, entries: &Entries) {
        let size = entries.size(slot);
        match self.lists.remove(slot) {
            SMALL => self.small_bytes -= size,
            MAIN => self.main_bytes -= size,
            // A ghost whose key is stored without a request.
            _ => self.ghost_bytes -= size,
        }
    }
}
