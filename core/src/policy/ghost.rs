//! A key-indexed FIFO of ghost entries (key, size) with byte accounting.
//!
//! ARC's B1/B2, 2Q's Aout and S3-FIFO's ghost queue remember recently
//! evicted keys without their data: each is a FIFO of `(key, size)` that is
//! searched by key on a miss and trimmed from the oldest end. Ghosts are
//! only ever added at the newest end, so a FIFO with removal by key is all
//! these policies need. Nodes live in a slab (a vector with a free list)
//! linked by index, found through a hash map: push, pop and remove by key
//! are O(1) with no allocation per entry once the slab has grown.

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

/// A FIFO of ghost entries, searchable by key, measured in bytes (or in
/// objects, when every size is 1).
#[derive(Debug, Clone)]
pub struct GhostFifo {
    index: FxHashMap<u64, u32>,
    nodes: Vec<Node>,
    free: Vec<u32>,
    newest: u32,
    oldest: u32,
    bytes: u64,
}

impl Default for GhostFifo {
    fn default() -> Self {
        GhostFifo {
            index: FxHashMap::default(),
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
        self.index.is_empty()
    }

    /// Whether `key` has a ghost entry.
    #[inline]
    pub fn contains(&self, key: u64) -> bool {
        self.index.contains_key(&key)
    }

    /// Adds `key` at the newest end. A key already present is first removed,
    /// so a key has at most one entry.
    pub fn push(&mut self, key: u64, size: u64) {
        self.remove(key);
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
        self.index.insert(key, i);
        self.bytes += size;
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
        let i = self.index.remove(&key)?;
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
        Some(n.size)
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
