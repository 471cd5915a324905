//! W-TinyLFU: an LRU window in front of an SLRU main cache, with a frequency
//! sketch deciding who may enter main.
//!
//! Einziger, Friedman and Manes, "TinyLFU: A Highly Efficient Cache
//! Admission Policy", ACM TOS 2017 (the policy of Caffeine). New objects
//! enter a small LRU window; when the cache is full, the window's victim
//! competes with main's victim and enters main only if the sketch says it is
//! strictly more frequent. Strong on skewed, stable popularity and against
//! one-hit wonders; weak when popularity shifts fast (the sketch ages only
//! every 32 x main-capacity main hits) and on loops and scans of equally
//! rare keys, where the strict comparison keeps main frozen. Objects above
//! the window (1% of the cache) are never cached, which makes it a poor byte
//! cache for large objects.
//!
//! Follows libCacheSim's `WTinyLFU(main_cache="SLRU", window_size=0.01)`
//! rule for rule, but agrees only approximately (`semantics.md` section 4),
//! because:
//! * its sketch hashes with XXH64 and sizes itself from the main capacity in
//!   bytes through a C `int` (20 counters for byte capacities in
//!   [2^31, 2^32)); this one uses another hash and caps its counters;
//! * its SLRU evicts *during a hit* when a promotion overflows probation;
//!   here such a victim is only marked and leaves at the next eviction
//!   (a hit on it in between is a hit here, a miss there).
//!
//! The rules: the window is libCacheSim's LRU of trunc(0.01 C), but inserts
//! are unbounded there (the window holds whatever main does not); main is an
//! SLRU of C - trunc(0.01 C) with probation trunc(0.2 Cm) and protected
//! trunc(0.8 Cm). The sketch counts insertions, main hits and every window
//! victim examined, and halves after 32 x Cm main hits. Eviction: while the
//! window is non-empty, its LRU moves to main if main has room (and the loop
//! goes on); otherwise it replaces main's victim if its estimate is strictly
//! greater, else it is evicted. An empty window evicts from main.

use std::collections::VecDeque;

use super::sketch::CountMinSketch;
use super::{Admission, Entries, EvictionPolicy, Request, Slot, SlotList};

const WINDOW: u8 = 0;
const PROBATION: u8 = 1;
const PROTECTED: u8 = 2;
const DOOMED: u8 = 3;

/// W-TinyLFU with an SLRU main cache (20% probation, 80% protected).
#[derive(Debug, Default, Clone)]
pub struct WTinyLfu {
    capacity: u64,
    window_capacity: u64,
    main_capacity: u64,
    /// Byte limits of probation and protected.
    segment_capacity: [u64; 2],
    window: SlotList,
    window_bytes: u64,
    /// Probation (index 0) and protected (index 1), MRU at the front.
    segments: [SlotList; 2],
    segment_bytes: [u64; 2],
    /// Where each slot lives (`WINDOW`, `PROBATION`, `PROTECTED`, `DOOMED`).
    place: Vec<u8>,
    /// Main victims chosen during a hit, evicted at the next eviction.
    doomed: VecDeque<Slot>,
    sketch: CountMinSketch,
    main_hits: u64,
    halve_every: u64,
}

impl WTinyLfu {
    /// Window share of the capacity.
    pub const WINDOW_RATIO: f64 = 0.01;
    /// Probation share of main (the rest is protected).
    pub const PROBATION_RATIO: f64 = 0.2;

    fn main_bytes(&self) -> u64 {
        self.segment_bytes[0] + self.segment_bytes[1]
    }

    /// SLRU's victim: the LRU of the lowest non-empty segment.
    fn main_victim(&self) -> Option<Slot> {
        self.segments[0].back().or_else(|| self.segments[1].back())
    }

    fn unlink_main(&mut self, slot: Slot, size: u64) {
        let seg = (self.place[slot as usize] - PROBATION) as usize;
        self.segments[seg].remove(slot);
        self.segment_bytes[seg] -= size;
    }

    fn link(&mut self, slot: Slot, seg: usize, size: u64) {
        self.segments[seg].push_front(slot);
        self.segment_bytes[seg] += size;
        self.place[slot as usize] = PROBATION + seg as u8;
    }

    /// Marks main's victim to leave at the next eviction (SLRU's eviction
    /// inside a hit or an insertion).
    fn doom_main_victim(&mut self, entries: &Entries) -> bool {
        let Some(v) = self.main_victim() else { return false };
        self.unlink_main(v, entries.size(v));
        self.place[v as usize] = DOOMED;
        self.doomed.push_back(v);
        true
    }

    /// Moves `slot` down from protected to probation while protected is over
    /// its limit, then trims probation the same way (SLRU's "cool").
    fn cool(&mut self, entries: &Entries) {
        while self.segment_bytes[1] > self.segment_capacity[1] {
            let Some(t) = self.segments[1].pop_back() else { break };
            let size = entries.size(t);
            self.segment_bytes[1] -= size;
            self.link(t, 0, size);
        }
        while self.segment_bytes[0] > self.segment_capacity[0] {
            if !self.doom_main_victim(entries) {
                break;
            }
        }
    }

    /// SLRU insertion: the lowest segment with room, else make room in main
    /// and use probation.
    fn insert_main(&mut self, slot: Slot, size: u64, entries: &Entries) {
        for seg in 0..2 {
            if self.segment_bytes[seg] + size <= self.segment_capacity[seg] {
                self.link(slot, seg, size);
                return;
            }
        }
        while self.main_bytes() + size > self.main_capacity {
            if !self.doom_main_victim(entries) {
                break;
            }
        }
        self.link(slot, 0, size);
    }

    fn count_main_hit(&mut self, key: u64) {
        self.sketch.add(key);
        self.main_hits += 1;
        if self.main_hits >= self.halve_every {
            self.main_hits = 0;
            self.sketch.halve();
        }
    }
}

impl EvictionPolicy for WTinyLfu {
    fn name(&self) -> &'static str {
        "wtinylfu"
    }

    fn init(&mut self, capacity: u64) {
        self.capacity = capacity;
        self.window_capacity = (capacity as f64 * Self::WINDOW_RATIO) as u64;
        self.main_capacity = capacity - self.window_capacity;
        let probation = (self.main_capacity as f64 * Self::PROBATION_RATIO) as u64;
        let protected = (self.main_capacity as f64 * (1.0 - Self::PROBATION_RATIO)) as u64;
        self.segment_capacity = [probation, protected];
        self.sketch = CountMinSketch::new(self.main_capacity, 0.001);
        self.halve_every = 32u64.saturating_mul(self.main_capacity).max(1);
    }

    fn on_hit(&mut self, slot: Slot, req: &Request, entries: &Entries) {
        let size = entries.size(slot);
        match self.place[slot as usize] {
            WINDOW => self.window.move_to_front(slot),
            PROTECTED => {
                self.segments[1].move_to_front(slot);
                self.count_main_hit(req.key);
            }
            PROBATION => {
                self.unlink_main(slot, size);
                self.link(slot, 1, size);
                self.cool(entries);
                self.count_main_hit(req.key);
            }
            _ => {
                // Doomed but hit before it left: keep it, in probation.
                self.doomed.retain(|&d| d != slot);
                self.link(slot, 0, size);
            }
        }
    }

    fn wants_eviction(&self, _req: &Request) -> bool {
        !self.doomed.is_empty()
    }

    fn admission(&self, req: &Request, capacity: u64) -> Admission {
        if req.size <= capacity && req.size <= self.window_capacity && req.size <= self.segment_capacity[0] {
            Admission::Insert
        } else {
            Admission::Reject
        }
    }

    fn evict(&mut self, _req: &Request, entries: &Entries) -> Option<Slot> {
        if let Some(d) = self.doomed.pop_front() {
            return Some(d);
        }
        while let Some(wv) = self.window.back() {
            let size = entries.size(wv);
            let key = entries.key(wv);
            if self.main_bytes() + size <= self.main_capacity {
                self.window.remove(wv);
                self.window_bytes -= size;
                self.insert_main(wv, size, entries);
                self.sketch.add(key);
                if let Some(d) = self.doomed.pop_front() {
                    return Some(d);
                }
                continue;
            }
            let victim = match self.main_victim() {
                Some(mv) if self.sketch.estimate(key) > self.sketch.estimate(entries.key(mv)) => {
                    self.unlink_main(mv, entries.size(mv));
                    self.window.remove(wv);
                    self.window_bytes -= size;
                    self.insert_main(wv, size, entries);
                    mv
                }
                _ => {
                    self.window.remove(wv);
                    self.window_bytes -= size;
                    wv
                }
            };
            self.sketch.add(key);
            return Some(victim);
        }
        let v = self.main_victim()?;
        self.unlink_main(v, entries.size(v));
        Some(v)
    }

    fn on_insert(&mut self, slot: Slot, req: &Request, entries: &Entries) {
        let s = slot as usize;
        if self.place.len() <= s {
            self.place.resize((s + 1).max(self.place.len() * 2), WINDOW);
        }
        self.place[s] = WINDOW;
        self.window.push_front(slot);
        self.window_bytes += entries.size(slot);
        self.sketch.add(req.key);
    }

    fn on_remove(&mut self, slot: Slot, entries: &Entries) {
        let size = entries.size(slot);
        match self.place[slot as usize] {
            WINDOW => {
                self.window.remove(slot);
                self.window_bytes -= size;
            }
            PROBATION | PROTECTED => self.unlink_main(slot, size),
            _ => self.doomed.retain(|&d| d != slot),
        }
    }
}
