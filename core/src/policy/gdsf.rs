//! GDSF: Greedy-Dual-Size-Frequency.
//!
//! Cherkasova, "Improving WWW Proxies Performance with Greedy-Dual-Size-
//! Frequency Caching Policy", HP Labs 1998, after Cao and Irani's
//! GreedyDual-Size (USITS 1997). Each object gets the priority
//! `H = L + freq x cost / size`; the victim has the lowest `H`, and `L`
//! (the "inflation" value) becomes the victim's `H`, so objects not touched
//! for a while age relative to newcomers. With a cost of 1 it maximises
//! the object hit ratio by favouring small objects; with a cost equal to
//! the size ([`Gdsf::byte_cost`]) it becomes frequency-with-aging and aims
//! at the byte hit ratio. Weak spots: with unit cost, large objects are
//! evicted first, so the byte miss ratio suffers; frequencies are in-cache
//! only; and the ordered set makes every request O(log n) (not O(1)).
//!
//! libCacheSim has a `GDSF` too; this one is not checked against it.

use std::collections::BTreeSet;

use super::{Entries, EvictionPolicy, Request, Slot};

/// What a miss costs, for GDSF's `freq x cost / size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GdsfCost {
    /// Every miss costs 1: favours small objects (object hit ratio).
    #[default]
    Uniform,
    /// A miss costs the object's size: frequency with aging (byte hit ratio).
    Size,
}

/// Greedy-Dual-Size-Frequency. O(log n) per request through an ordered set
/// keyed by (priority, slot).
#[derive(Debug, Default, Clone)]
pub struct Gdsf {
    cost: GdsfCost,
    /// The inflation value `L`.
    inflation: f64,
    freq: Vec<u64>,
    priority: Vec<f64>,
    order: BTreeSet<(u64, Slot)>,
}

/// Order-preserving key of a non-negative finite `f64`.
#[inline]
fn key_of(p: f64) -> u64 {
    p.max(0.0).to_bits()
}

impl Gdsf {
    /// GDSF with a cost equal to each object's size.
    pub fn byte_cost() -> Self {
        Gdsf { cost: GdsfCost::Size, ..Gdsf::default() }
    }

    /// The current inflation value `L`.
    pub fn inflation(&self) -> f64 {
        self.inflation
    }

    fn set_priority(&mut self, slot: Slot, size: u64) {
        let s = slot as usize;
        let cost = match self.cost {
            GdsfCost::Uniform => 1.0,
            GdsfCost::Size => size as f64,
        };
        let p = self.inflation + self.freq[s] as f64 * cost / size.max(1) as f64;
        self.priority[s] = p;
        self.order.insert((key_of(p), slot));
    }
}

impl EvictionPolicy for Gdsf {
    fn name(&self) -> &'static str {
        "gdsf"
    }

    fn on_hit(&mut self, slot: Slot, _req: &Request, entries: &Entries) {
        let s = slot as usize;
        self.order.remove(&(key_of(self.priority[s]), slot));
        self.freq[s] += 1;
        self.set_priority(slot, entries.size(slot));
    }

    fn evict(&mut self, _req: &Request, _entries: &Entries) -> Option<Slot> {
        let (_, victim) = self.order.pop_first()?;
        self.inflation = self.priority[victim as usize];
        Some(victim)
    }

    fn on_insert(&mut self, slot: Slot, _req: &Request, entries: &Entries) {
        let s = slot as usize;
        if self.freq.len() <= s {
            let n = (s + 1).max(self.freq.len() * 2);
            self.freq.resize(n, 0);
            self.priority.resize(n, 0.0);
        }
        self.freq[s] = 1;
        self.set_priority(slot, entries.size(slot));
    }

    fn on_remove(&mut self, slot: Slot, _entries: &Entries) {
        self.order.remove(&(key_of(self.priority[slot as usize]), slot));
    }
}
