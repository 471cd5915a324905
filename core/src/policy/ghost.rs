//! A key-indexed FIFO of ghost entries (key, size) with byte accounting.
//!
//! A policy that remembers recently evicted keys without their data keeps a
//! FIFO of `(key, size)` that is searched by key on a miss and trimmed from
//! the oldest end. Ghosts are only ever added at the newest end, so a FIFO
//! with removal by key is all such a policy needs. ARC, 2Q and S3-FIFO keep
//! their ghosts in the container instead
//! ([`EvictionPolicy::keeps_ghosts`](super::EvictionPolicy::keeps_ghosts):
//! one key lookup for resident and ghost keys alike); LIRS and GPU-cost
//! still keep theirs here (not converted: neither is in the benchmark
//! against libCacheSim, and LIRS's non-resident keys also sit in its stack).
//!
//! Layout, chosen for the simulator, where ghost lookups are a large share
//! of the time of the policies with ghosts:
//! * the entries sit in a ring buffer in FIFO order, each numbered by a
//!   *sequence number* (one more per push). Pushing and trimming the oldest
//!   entries walk the ring in order, so they touch memory sequentially;
//! * a [`SeqIndex`] maps a key to the sequence number of its entry. While
//!   every key is a dense id (below [`DENSE_KEYS`]) it is a vector indexed
//!   by the key: one load, no hashing; and a trimmed entry needs no index
//!   update at all, because its sequence number is then older than the
//!   ring's oldest, which is what "absent" means. The first larger key moves
//!   the index to a hash map for good;
//! * removing a key from the middle marks its entry dead in place (no
//!   relinking); dead entries are skipped when they reach the oldest end,
//!   and the ring is compacted when they outnumber the live ones, so memory
//!   stays proportional to the live entries and every operation is O(1)
//!   amortized.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

/// `size` of an entry removed from the middle of the ring (no real ghost
/// weighs `u64::MAX` units: the byte total would overflow).
const DEAD: u64 = u64::MAX;

/// Initial value of the dense index: a number like any other (see `find`).
const NONE: u32 = u32::MAX;

/// Keys below this are indexed directly (16 MiB of index at most).
const DENSE_KEYS: u64 = 1 << 22;

/// Dead entries tolerated before a compaction, beyond the live count.
const COMPACT_SLACK: usize = 64;

#[derive(Debug, Clone, Copy)]
struct Ghost {
    key: u64,
    /// [`DEAD`] once removed by key.
    size: u64,
}

/// Key -> sequence number of its live entry.
#[derive(Debug, Clone)]
enum SeqIndex {
    /// Indexed by the key. An entry is live only if its number is at least
    /// the ring's oldest: trimmed entries are left behind, stale, and never
    /// cleared.
    Dense(Vec<u32>),
    /// Live entries only (trimming removes them).
    Hash(FxHashMap<u64, u32>),
}

/// A FIFO of ghost entries, searchable by key, measured in bytes (or in
/// objects, when every size is 1).
#[derive(Debug, Clone)]
pub struct GhostFifo {
    index: SeqIndex,
    /// Oldest at the front.
    ring: VecDeque<Ghost>,
    /// Sequence number of `ring[0]`.
    first_seq: u32,
    live: usize,
    bytes: u64,
}

impl Default for GhostFifo {
    fn default() -> Self {
        GhostFifo { index: SeqIndex::Dense(Vec::new()), ring: VecDeque::new(), first_seq: 0, live: 0, bytes: 0 }
    }
}

impl GhostFifo {
    /// Sum of the sizes of the ghost entries.
    #[inline]
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Number of ghost entries.
    #[inline]
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether there are no ghost entries.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Whether `key` has a ghost entry.
    #[inline]
    pub fn contains(&self, key: u64) -> bool {
        self.find(key).is_some()
    }

    /// Loads `key`'s index entry (see [`EvictionPolicy::warm`]) and returns it.
    ///
    /// [`EvictionPolicy::warm`]: super::EvictionPolicy::warm
    #[inline]
    pub fn warm(&self, key: u64) -> u64 {
        match &self.index {
            SeqIndex::Dense(seq_of) => seq_of.get(key as usize).map_or(0, |&s| u64::from(s)),
            // A hash lookup is no cheaper ahead of time.
            SeqIndex::Hash(_) => 0,
        }
    }

    /// Position in the ring of `key`'s live entry.
    #[inline]
    fn find(&self, key: u64) -> Option<usize> {
        let seq = match &self.index {
            SeqIndex::Dense(seq_of) => *seq_of.get(usize::try_from(key).ok()?)?,
            SeqIndex::Hash(map) => *map.get(&key)?,
        };
        // Numbers wrap around u32; the ring holds fewer than 2^32 entries,
        // so a live entry's number is unique and this is its position.
        let pos = seq.wrapping_sub(self.first_seq) as usize;
        let g = self.ring.get(pos)?;
        // A dense index is not cleared on trimming or removal, so a stale
        // number may point past the ring, at a dead entry, or at an entry
        // of another key; a key's live entry is always where its number
        // says (every push writes it).
        (g.key == key && g.size != DEAD).then_some(pos)
    }

    /// Adds `key` at the newest end. A key already present is first removed,
    /// so a key has at most one entry.
    pub fn push(&mut self, key: u64, size: u64) {
        debug_assert!(size != DEAD, "a ghost of u64::MAX units");
        if matches!(self.index, SeqIndex::Dense(_)) && key >= DENSE_KEYS {
            self.switch_to_hash();
        }
        let old = match &mut self.index {
            SeqIndex::Dense(_) => self.find(key),
            // One hash operation: the insert below hands back the old number.
            SeqIndex::Hash(_) => None,
        };
        if let Some(pos) = old {
            self.kill(pos);
        }
        let Ok(len) = u32::try_from(self.ring.len()) else {
            // 2^32 entries cannot be numbered apart; such a ghost list could
            // never be trimmed in O(1) anyway, so refuse it.
            return;
        };
        let seq = self.first_seq.wrapping_add(len);
        self.ring.push_back(Ghost { key, size });
        self.live += 1;
        self.bytes += size;
        match &mut self.index {
            SeqIndex::Dense(seq_of) => {
                let k = key as usize;
                if k >= seq_of.len() {
                    // Geometric growth: amortized O(1) per key.
                    seq_of.resize((k + 1).max(seq_of.len() * 2).min(DENSE_KEYS as usize), NONE);
                }
                seq_of[k] = seq;
            }
            SeqIndex::Hash(map) => {
                if let Some(old) = map.insert(key, seq) {
                    let pos = old.wrapping_sub(self.first_seq) as usize;
                    self.kill(pos);
                }
            }
        }
    }

    /// Moves the index to a hash map for good (the first key too large to
    /// index directly).
    #[cold]
    fn switch_to_hash(&mut self) {
        let map: FxHashMap<u64, u32> = (0..self.ring.len())
            .filter(|&pos| self.ring[pos].size != DEAD)
            .map(|pos| (self.ring[pos].key, self.first_seq.wrapping_add(pos as u32)))
            .collect();
        self.index = SeqIndex::Hash(map);
    }

    /// Adds `key` at the newest end of a FIFO limited to `capacity` bytes,
    /// dropping the oldest entries until it fits; an entry larger than the
    /// whole capacity is not added. This is libCacheSim's ghost insertion (a
    /// `FIFO` cache's `get` on the ghost queue).
    pub fn push_bounded(&mut self, key: u64, size: u64, capacity: u64) {
        if size > capacity {
            return;
        }
        while self.bytes + size > capacity {
            if self.pop_oldest().is_none() {
                break;
            }
        }
        self.push(key, size);
    }

    /// Removes `key`'s ghost entry; returns its size if there was one.
    #[inline]
    pub fn remove(&mut self, key: u64) -> Option<u64> {
        let pos = match &mut self.index {
            SeqIndex::Dense(_) => self.find(key)?,
            SeqIndex::Hash(map) => map.remove(&key)?.wrapping_sub(self.first_seq) as usize,
        };
        Some(self.kill(pos))
    }

    /// Marks the live entry at `pos` dead (the caller has unmapped it or
    /// mapped its key to a newer entry); returns its size.
    fn kill(&mut self, pos: usize) -> u64 {
        let size = std::mem::replace(&mut self.ring[pos].size, DEAD);
        self.live -= 1;
        self.bytes -= size;
        self.tidy();
        size
    }

    /// Keeps the oldest entry live (dead ones there are dropped) and the
    /// dead entries no more than the live ones (plus a slack).
    #[inline]
    fn tidy(&mut self) {
        while self.ring.front().is_some_and(|g| g.size == DEAD) {
            self.ring.pop_front();
            self.first_seq = self.first_seq.wrapping_add(1);
        }
        if self.ring.len() - self.live > self.live + COMPACT_SLACK {
            self.compact();
        }
    }

    /// Removes every dead entry and renumbers the live ones from 0. O(ring),
    /// paid for by the dead entries it drops (more than the live ones).
    #[cold]
    fn compact(&mut self) {
        self.ring.retain(|g| g.size != DEAD);
        self.first_seq = 0;
        for pos in 0..self.ring.len() {
            let key = self.ring[pos].key;
            let seq = pos as u32;
            match &mut self.index {
                SeqIndex::Dense(seq_of) => seq_of[key as usize] = seq,
                SeqIndex::Hash(map) => {
                    map.insert(key, seq);
                }
            }
        }
    }

    /// Removes and returns the oldest entry `(key, size)`.
    #[inline]
    pub fn pop_oldest(&mut self) -> Option<(u64, u64)> {
        let g = self.ring.pop_front()?;
        // `push` and `kill` leave the oldest entry live.
        debug_assert!(g.size != DEAD, "dead entry at the oldest end");
        self.first_seq = self.first_seq.wrapping_add(1);
        if let SeqIndex::Hash(map) = &mut self.index {
            map.remove(&g.key);
        }
        self.live -= 1;
        self.bytes -= g.size;
        self.tidy();
        Some((g.key, g.size))
    }

    /// Entries from newest to oldest (O(n); for tests and reports).
    pub fn iter_newest_first(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.ring.iter().rev().filter(|g| g.size != DEAD).map(|g| (g.key, g.size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The dense index (small keys), the hash index (large keys) and a move
    /// from one to the other in the middle all keep the same FIFO.
    #[test]
    fn dense_and_hash_indexes_agree() {
        const BIG: u64 = 1 << 40;
        let (mut dense, mut hash, mut moved) = (GhostFifo::default(), GhostFifo::default(), GhostFifo::default());
        let mut x = 12345u64;
        for step in 0..20_000u64 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let key = (x >> 33) % 500;
            let size = 1 + (x >> 20) % 7;
            if step == 10_000 {
                moved.push_bounded(DENSE_KEYS + 1, 0, 1000);
                moved.remove(DENSE_KEYS + 1);
            }
            match (x >> 60) % 3 {
                0 => {
                    assert_eq!(dense.remove(key), hash.remove(key + BIG));
                    assert_eq!(dense.remove(key), None);
                    moved.remove(key);
                }
                _ => {
                    dense.push_bounded(key, size, 1000);
                    hash.push_bounded(key + BIG, size, 1000);
                    moved.push_bounded(key, size, 1000);
                }
            }
            assert_eq!(dense.len(), hash.len());
            assert_eq!(dense.bytes(), hash.bytes());
        }
        assert!(matches!(dense.index, SeqIndex::Dense(_)) && matches!(moved.index, SeqIndex::Hash(_)));
        let d: Vec<_> = dense.iter_newest_first().collect();
        let h: Vec<_> = hash.iter_newest_first().map(|(k, s)| (k - BIG, s)).collect();
        assert_eq!(d, h);
        assert_eq!(d, moved.iter_newest_first().collect::<Vec<_>>());
        assert!(d.iter().all(|&(k, _)| dense.contains(k) && moved.contains(k)));
    }

    #[test]
    fn fifo_order_bytes_and_removal() {
        let mut g = GhostFifo::default();
        for k in 0..5 {
            g.push(k, k + 1);
        }
        assert_eq!(g.bytes(), 15);
        assert_eq!(g.remove(2), Some(3));
        assert_eq!(g.remove(2), None);
        assert_eq!(g.pop_oldest(), Some((0, 1)));
        assert_eq!(g.iter_newest_first().map(|e| e.0).collect::<Vec<_>>(), vec![4, 3, 1]);
        g.push_bounded(9, 6, 12);
        // 3 + 4 + 5 + 6 > 12: drops 1 (2 bytes) then 3 (4 bytes).
        assert_eq!(g.iter_newest_first().map(|e| e.0).collect::<Vec<_>>(), vec![9, 4]);
        assert_eq!(g.bytes(), 11);
        g.push_bounded(10, 13, 12);
        assert!(!g.contains(10), "larger than the whole ghost: not added");
        while g.pop_oldest().is_some() {}
        assert!(g.is_empty() && g.bytes() == 0);
    }

    /// A textbook model (a `Vec` of (key, size), oldest first) under many
    /// removals from the middle, re-pushes of present keys and trims: the
    /// dead entries, compactions and the stale dense index never show.
    #[test]
    fn matches_a_vec_model_under_churn() {
        for offset in [0, 1 << 40] {
            churn(offset);
        }
    }

    /// [`matches_a_vec_model_under_churn`] on keys from `offset` (0: the
    /// dense index; 2^40: the hash index).
    fn churn(offset: u64) {
        let (mut g, mut model) = (GhostFifo::default(), Vec::<(u64, u64)>::new());
        let mut x = 99u64;
        for _ in 0..200_000 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let key = offset + (x >> 35) % 300;
            let size = 1 + (x >> 22) % 5;
            match (x >> 61) % 4 {
                0 | 1 => {
                    assert_eq!(g.remove(key), model.iter().position(|e| e.0 == key).map(|i| model.remove(i).1));
                }
                2 => {
                    g.push_bounded(key, size, 200);
                    if size <= 200 {
                        // Trims first, counting an older entry of the key.
                        while model.iter().map(|e| e.1).sum::<u64>() + size > 200 {
                            model.remove(0);
                        }
                        model.retain(|e| e.0 != key);
                        model.push((key, size));
                    }
                }
                _ => {
                    g.push(key, size);
                    model.retain(|e| e.0 != key);
                    model.push((key, size));
                }
            }
            assert_eq!(g.len(), model.len());
            assert_eq!(g.bytes(), model.iter().map(|e| e.1).sum::<u64>());
            assert_eq!(g.contains(key), model.iter().any(|e| e.0 == key));
            assert!(g.ring.len() <= 2 * g.len() + COMPACT_SLACK + 1);
        }
        let want: Vec<_> = model.iter().rev().copied().collect();
        assert_eq!(g.iter_newest_first().collect::<Vec<_>>(), want);
    }

    /// Sequence numbers wrap around u32 without confusing entries.
    #[test]
    fn numbers_wrap() {
        let mut g = GhostFifo { first_seq: NONE - 10, ..GhostFifo::default() };
        for k in 0..20 {
            g.push(k, 1);
        }
        g.remove(15);
        assert_eq!(g.len(), 19);
        assert!((0..20).all(|k| g.contains(k) == (k != 15)));
        assert_eq!(g.pop_oldest(), Some((0, 1)));
        assert_eq!(g.iter_newest_first().last(), Some((1, 1)));
    }
}
