//! LIRS: Low Inter-reference Recency Set.
//!
//! Jiang and Zhang, "LIRS: An Efficient Low Inter-reference Recency Set
//! Replacement Policy to Improve Buffer Cache Performance", SIGMETRICS 2002.
//! Objects are ranked by reuse distance rather than recency: those reused
//! within a short distance are LIR and hold most of the cache; the rest
//! (HIR) share a 1% resident queue Q. A recency stack S, which also keeps
//! non-resident HIR entries, measures reuse distances. Strong on loops and
//! scans that defeat LRU; weak spots: the stack S holds metadata for
//! non-resident keys (bounded here at 2C of their sizes), it adapts slowly
//! when the LIR set goes cold, and a new object may only be cached if it
//! fits the 1% HIR queue.
//!
//! Follows libCacheSim's `LIRS` (HIR set max(1, trunc(0.01 C)); S pruned so
//! its bytes, non-resident entries included, stay <= 2C; a new object is
//! cached only if it fits both the LIR and the HIR limits), but agrees only
//! approximately (`semantics.md` section 4): libCacheSim evicts HIR objects
//! inside a *hit* (when a demoted LIR object overflows Q) and inside its
//! admission test; here those evictions happen at the container's next
//! eviction step (Q may run over its limit in between). Two libCacheSim
//! quirks are kept: a hit on a resident HIR object that S no longer holds
//! demotes S's bottom LIR object when the LIR set is full, and while the LIR
//! set has room new objects become LIR directly.

use rustc_hash::FxHashMap;

use super::ghost::GhostFifo;
use super::{Admission, Entries, EvictionPolicy, Request, Slot, SlotList};

const NIL: u32 = u32::MAX;

#[derive(Debug, Clone, Copy)]
struct StackEntry {
    key: u64,
    size: u64,
    lir: bool,
    resident: bool,
    newer: u32,
    older: u32,
}

/// The recency stack S: key-indexed, newest at the top, with byte accounting.
#[derive(Debug, Clone)]
struct Stack {
    index: FxHashMap<u64, u32>,
    nodes: Vec<StackEntry>,
    free: Vec<u32>,
    top: u32,
    bottom: u32,
    bytes: u64,
}

impl Default for Stack {
    fn default() -> Self {
        Stack { index: FxHashMap::default(), nodes: Vec::new(), free: Vec::new(), top: NIL, bottom: NIL, bytes: 0 }
    }
}

impl Stack {
    fn get(&self, key: u64) -> Option<StackEntry> {
        self.index.get(&key).map(|&i| self.nodes[i as usize])
    }

    fn get_mut(&mut self, key: u64) -> Option<&mut StackEntry> {
        let i = *self.index.get(&key)?;
        Some(&mut self.nodes[i as usize])
    }

    fn bottom(&self) -> Option<StackEntry> {
        (self.bottom != NIL).then(|| self.nodes[self.bottom as usize])
    }

    fn unlink(&mut self, i: u32) {
        let n = self.nodes[i as usize];
        if n.newer != NIL {
            self.nodes[n.newer as usize].older = n.older;
        } else {
            self.top = n.older;
        }
        if n.older != NIL {
            self.nodes[n.older as usize].newer = n.newer;
        } else {
            self.bottom = n.newer;
        }
    }

    fn link_top(&mut self, i: u32) {
        self.nodes[i as usize].newer = NIL;
        self.nodes[i as usize].older = self.top;
        if self.top != NIL {
            self.nodes[self.top as usize].newer = i;
        } else {
            self.bottom = i;
        }
        self.top = i;
    }

    /// Pushes a new entry (or moves an existing one) to the top.
    fn push_top(&mut self, key: u64, size: u64, lir: bool, resident: bool) {
        if let Some(&i) = self.index.get(&key) {
            self.unlink(i);
            self.bytes -= self.nodes[i as usize].size;
            self.nodes[i as usize] = StackEntry { key, size, lir, resident, newer: NIL, older: NIL };
            self.bytes += size;
            self.link_top(i);
            return;
        }
        let e = StackEntry { key, size, lir, resident, newer: NIL, older: NIL };
        let i = match self.free.pop() {
            Some(i) => {
                self.nodes[i as usize] = e;
                i
            }
            None => {
                self.nodes.push(e);
                (self.nodes.len() - 1) as u32
            }
        };
        self.index.insert(key, i);
        self.bytes += size;
        self.link_top(i);
    }

    fn move_top(&mut self, key: u64) {
        if let Some(&i) = self.index.get(&key) {
            self.unlink(i);
            self.link_top(i);
        }
    }

    fn remove(&mut self, key: u64) -> Option<StackEntry> {
        let i = self.index.remove(&key)?;
        self.unlink(i);
        let e = self.nodes[i as usize];
        self.bytes -= e.size;
        self.free.push(i);
        Some(e)
    }
}

/// LIRS with a 1% HIR resident queue, after libCacheSim.
#[derive(Debug, Default, Clone)]
pub struct Lirs {
    capacity: u64,
    lir_limit: u64,
    hir_limit: u64,
    lir_bytes: u64,
    hir_bytes: u64,
    stack: Stack,
    /// Resident HIR objects, newest at the front.
    queue: SlotList,
    /// Slots that are LIR.
    lir: Vec<bool>,
    /// Non-resident HIR entries of S, in the order they left the cache.
    nonresident: GhostFifo,
    /// LIR objects too large for Q, demoted out of the cache: they leave at
    /// the next eviction.
    doomed: Vec<Slot>,
    /// Key -> slot of resident objects (S and Q entries name keys).
    slot_of: FxHashMap<u64, Slot>,
    /// The current miss found a non-resident HIR entry in S.
    miss_in_stack: Option<u64>,
    /// The key of the miss being served (cleared by a hit or an insertion).
    current_miss: Option<u64>,
}

impl Lirs {
    /// HIR resident share of the capacity.
    pub const HIR_RATIO: f64 = 0.01;

    /// Whether a resident slot is LIR.
    pub fn is_lir(&self, slot: Slot) -> bool {
        self.lir.get(slot as usize).copied().unwrap_or(false)
    }

    /// Removes HIR entries from the bottom of S until an LIR one is there.
    fn prune(&mut self) {
        while let Some(b) = self.stack.bottom() {
            if b.lir {
                break;
            }
            if !b.resident {
                self.nonresident.remove(b.key);
            }
            self.stack.remove(b.key);
        }
    }

    /// Demotes S's bottom LIR object to Q (libCacheSim's `evictLIR`).
    fn demote_bottom_lir(&mut self) -> bool {
        let Some(b) = self.stack.bottom() else { return false };
        if !b.lir {
            return false;
        }
        self.stack.remove(b.key);
        self.lir_bytes -= b.size;
        if let Some(&slot) = self.slot_of.get(&b.key) {
            self.lir[slot as usize] = false;
            if b.size <= self.hir_limit {
                self.queue.push_front(slot);
                self.hir_bytes += b.size;
            } else {
                self.doomed.push(slot);
            }
        }
        self.prune();
        true
    }

    /// Keeps S's bytes within 2C by forgetting the oldest non-resident entries.
    fn limit_stack(&mut self) {
        while self.stack.bytes > 2 * self.capacity {
            let Some((key, _)) = self.nonresident.pop_oldest() else { break };
            self.stack.remove(key);
        }
    }
}

impl EvictionPolicy for Lirs {
    fn name(&self) -> &'static str {
        "lirs"
    }

    fn init(&mut self, capacity: u64) {
        self.capacity = capacity;
        self.hir_limit = ((capacity as f64 * Self::HIR_RATIO) as u64).max(1);
        self.lir_limit = capacity.saturating_sub(self.hir_limit);
    }

    fn on_hit(&mut self, slot: Slot, req: &Request, entries: &Entries) {
        self.miss_in_stack = None;
        self.current_miss = None;
        let size = entries.size(slot);
        let in_stack = self.stack.get(req.key).is_some();
        self.stack.move_top(req.key);
        if self.lir[slot as usize] {
            self.prune();
        } else if in_stack {
            // A resident HIR object with a short reuse distance becomes LIR.
            if self.queue.contains(slot) {
                self.queue.remove(slot);
                self.hir_bytes -= size;
            } else {
                self.doomed.retain(|&d| d != slot);
            }
            while self.lir_bytes + size > self.lir_limit && self.demote_bottom_lir() {}
            self.lir[slot as usize] = true;
            self.lir_bytes += size;
            if let Some(e) = self.stack.get_mut(req.key) {
                e.lir = true;
            }
        } else {
            if self.queue.contains(slot) {
                self.queue.move_to_front(slot);
            }
            while self.lir_bytes + size > self.lir_limit && self.demote_bottom_lir() {}
            self.stack.push_top(req.key, size, false, true);
        }
        self.limit_stack();
    }

    fn on_miss(&mut self, req: &Request, _entries: &Entries) {
        self.miss_in_stack = None;
        self.current_miss = Some(req.key);
        if let Some(e) = self.stack.get(req.key)
            && !e.resident
        {
            self.stack.move_top(req.key);
            self.nonresident.remove(req.key);
            self.miss_in_stack = Some(req.key);
            while self.lir_bytes + e.size > self.lir_limit && self.demote_bottom_lir() {}
        }
    }

    fn admission(&self, req: &Request, capacity: u64) -> Admission {
        if req.size > capacity {
            return Admission::Reject;
        }
        if self.miss_in_stack != Some(req.key) && (req.size > self.lir_limit || req.size > self.hir_limit) {
            return Admission::Reject;
        }
        Admission::Insert
    }

    fn wants_eviction(&self, req: &Request) -> bool {
        if !self.doomed.is_empty() || (self.hir_bytes > self.hir_limit && !self.queue.is_empty()) {
            return true;
        }
        // Both sets full when a new object misses: make room in Q first.
        self.current_miss == Some(req.key)
            && self.miss_in_stack != Some(req.key)
            && self.lir_bytes + req.size > self.lir_limit
            && self.hir_bytes + req.size > self.hir_limit
            && !self.queue.is_empty()
    }

    fn evict(&mut self, _req: &Request, entries: &Entries) -> Option<Slot> {
        if let Some(d) = self.doomed.pop() {
            self.slot_of.remove(&entries.key(d));
            return Some(d);
        }
        let victim = match self.queue.pop_back() {
            Some(v) => {
                let size = entries.size(v);
                self.hir_bytes -= size;
                let key = entries.key(v);
                if let Some(e) = self.stack.get_mut(key) {
                    e.resident = false;
                    self.nonresident.push(key, size);
                }
                v
            }
            None => {
                // No resident HIR object: demote and evict the bottom LIR one.
                let b = self.stack.bottom()?;
                let v = *self.slot_of.get(&b.key)?;
                self.stack.remove(b.key);
                self.lir_bytes -= b.size;
                self.lir[v as usize] = false;
                self.prune();
                v
            }
        };
        self.slot_of.remove(&entries.key(victim));
        Some(victim)
    }

    fn on_insert(&mut self, slot: Slot, req: &Request, entries: &Entries) {
        let s = slot as usize;
        if self.lir.len() <= s {
            self.lir.resize((s + 1).max(self.lir.len() * 2), false);
        }
        let size = entries.size(slot);
        self.slot_of.insert(req.key, slot);
        let as_lir = if self.miss_in_stack == Some(req.key) { true } else { self.lir_bytes + size <= self.lir_limit };
        self.miss_in_stack = None;
        self.current_miss = None;
        self.lir[s] = as_lir;
        if as_lir {
            self.lir_bytes += size;
            self.stack.push_top(req.key, size, true, true);
        } else {
            self.hir_bytes += size;
            self.stack.push_top(req.key, size, false, true);
            self.queue.push_front(slot);
        }
        self.limit_stack();
    }

    fn on_remove(&mut self, slot: Slot, entries: &Entries) {
        let key = entries.key(slot);
        let size = entries.size(slot);
        self.slot_of.remove(&key);
        if self.lir[slot as usize] {
            self.lir[slot as usize] = false;
            self.lir_bytes -= size;
            self.stack.remove(key);
            self.prune();
        } else {
            if self.queue.contains(slot) {
                self.queue.remove(slot);
                self.hir_bytes -= size;
            } else {
                self.doomed.retain(|&d| d != slot);
            }
            self.stack.remove(key);
        }
    }
}
