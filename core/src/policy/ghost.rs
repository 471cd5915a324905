//! A key-indexed FIFO of ghost entries (key, size) with byte accounting.
//!
//! ARC's B1/B2, 2Q's Aout and S3-FIFO's ghost queue remember recently
//! evicted keys without their data: each is a FIFO of `(key, size)` that is
//! searched by key on a miss and trimmed from the oldest end. Ghosts are
//! only ever added at the newest end, so a FIFO with removal by key is all
//! these policies need. Nodes live in a slab (a vector with a free list)
//! linked by index, found through a [`NodeIndex`]: push, pop and remove by
//! key are O(1) with no allocation per entry once the slab has grown.

use rustc_hash::FxHashMap;

const NIL: u32 = u32::MAX;

#[derive(Debug, Clone, Copy)]
struct Node {
    key: u64,
    size: u64,
    /// Toward the newest end.
    newer: u32,
    /// Toward the oldest end.
    older: u32,
}

/// Keys below this are indexed directly (16 MiB of index at most).
const DENSE_KEYS: u64 = 1 << 22;

/// Key -> node. Ghost lookups are a large share of the time of the
/// policies with ghosts, and the simulator's keys are dense ids: while
/// every key is below [`DENSE_KEYS`] a vector indexed by the key answers
/// with one load and no hashing; the first larger key moves every entry to
/// a hash map for good.
#[derive(Debug, Clone)]
enum NodeIndex {
    Dense { node_of: Vec<u32>, len: usize },
    Hash(FxHashMap<u64, u32>),
}

impl NodeIndex {
    #[inline]
    fn len(&self) -> usize {
        match self {
            NodeIndex::Dense { len, .. } => *len,
            NodeIndex::Hash(map) => map.len(),
        }
    }

    #[inline]
    fn get(&self, key: u64) -> Option<u32> {
        match self {
            NodeIndex::Dense { node_of, .. } => node_of.get(usize::try_from(key).ok()?).copied().filter(|&i| i != NIL),
            NodeIndex::Hash(map) => map.get(&key).copied(),
        }
    }

    /// Maps `key` to `node`, returning the node it mapped to before.
    #[inline]
    fn insert(&mut self, key: u64, node: u32) -> Option<u32> {
        if let NodeIndex::Dense { node_of, len } = self {
            if key < DENSE_KEYS {
                let k = key as usize;
                if k >= node_of.len() {
                    // Geometric growth: amortized O(1) per key.
                    node_of.resize((k + 1).max(node_of.len() * 2).min(DENSE_KEYS as usize), NIL);
                }
                let old = std::mem::replace(&mut node_of[k], node);
                if old == NIL {
                    *len += 1;
                    return None;
                }
                return Some(old);
            }
            let map: FxHashMap<u64, u32> =
                node_of.iter().enumerate().filter(|&(_, &i)| i != NIL).map(|(k, &i)| (k as u64, i)).collect();
            *self = NodeIndex::Hash(map);
        }
        match self {
            NodeIndex::Hash(map) => map.insert(key, node),
            NodeIndex::Dense { .. } => unreachable!("moved to a hash map above"),
        }
    }

    #[inline]
    fn remove(&mut self, key: u64) -> Option<u32> {
        match self {
            NodeIndex::Dense { node_of, len } => {
                let slot = node_of.get_mut(usize::try_from(key).ok()?)?;
                let old = std::mem::replace(slot, NIL);
                (old != NIL).then(|| {
                    *len -= 1;
                    old
                })
            }
            NodeIndex::Hash(map) => map.remove(&key),
        }
    }
}

/// A FIFO of ghost entries, searchable by key, measured in bytes (or in
/// objects, when every size is 1).
#[derive(Debug, Clone)]
pub struct GhostFifo {
    index: NodeIndex,
    nodes: Vec<Node>,
    free: Vec<u32>,
    newest: u32,
    oldest: u32,
    bytes: u64,
}

impl Default for GhostFifo {
    fn default() -> Self {
        GhostFifo {
            index: NodeIndex::Dense { node_of: Vec::new(), len: 0 },
            nodes: Vec::new(),
            free: Vec::new(),
            newest: NIL,
            oldest: NIL,
            bytes: 0,
        }
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
        self.index.len()
    }

    /// Whether there are no ghost entries.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.index.len() == 0
    }

    /// Whether `key` has a ghost entry.
    #[inline]
    pub fn contains(&self, key: u64) -> bool {
        self.index.get(key).is_some()
    }

    /// Adds `key` at the newest end. A key already present is first removed,
    /// so a key has at most one entry.
    pub fn push(&mut self, key: u64, size: u64) {
        let node = Node { key, size, newer: NIL, older: self.newest };
        let i = match self.free.pop() {
            Some(i) => {
                self.nodes[i as usize] = node;
                i
            }
            None => {
                // More than 2^32 - 1 ghosts cannot be indexed; such a ghost
                // list could never be trimmed in O(1) anyway, so refuse it.
                let Ok(i) = u32::try_from(self.nodes.len()) else { return };
                if i == NIL {
                    return;
                }
                self.nodes.push(node);
                i
            }
        };
        if self.newest != NIL {
            self.nodes[self.newest as usize].newer = i;
        } else {
            self.oldest = i;
        }
        self.newest = i;
        self.bytes += size;
        // One hash operation: the insert hands back an older entry of the
        // key, which is then unlinked (the same list as removing it first).
        if let Some(old) = self.index.insert(key, i) {
            self.unlink(old);
        }
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
    pub fn remove(&mut self, key: u64) -> Option<u64> {
        let i = self.index.remove(key)?;
        Some(self.unlink(i))
    }

    /// Unlinks node `i` (already gone from the index) and frees it; returns
    /// its size.
    fn unlink(&mut self, i: u32) -> u64 {
        let n = self.nodes[i as usize];
        if n.newer != NIL {
            self.nodes[n.newer as usize].older = n.older;
        } else {
            self.newest = n.older;
        }
        if n.older != NIL {
            self.nodes[n.older as usize].newer = n.newer;
        } else {
            self.oldest = n.newer;
        }
        self.free.push(i);
        self.bytes -= n.size;
        n.size
    }

    /// Removes and returns the oldest entry `(key, size)`.
    pub fn pop_oldest(&mut self) -> Option<(u64, u64)> {
        if self.oldest == NIL {
            return None;
        }
        let n = self.nodes[self.oldest as usize];
        self.remove(n.key);
        Some((n.key, n.size))
    }

    /// Entries from newest to oldest (O(n); for tests and reports).
    pub fn iter_newest_first(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        let first = (self.newest != NIL).then_some(self.newest);
        std::iter::successors(first, move |&i| {
            let o = self.nodes[i as usize].older;
            (o != NIL).then_some(o)
        })
        .map(move |i| (self.nodes[i as usize].key, self.nodes[i as usize].size))
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
        assert!(matches!(dense.index, NodeIndex::Dense { .. }) && matches!(moved.index, NodeIndex::Hash(_)));
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
}
