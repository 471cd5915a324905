//! Frequency buckets for O(1) LFU.
//!
//! The classic constant-time LFU layout (Shah, Mitra and Matani, "An O(1)
//! algorithm for implementing the LFU cache eviction scheme", 2010): a list
//! of buckets sorted by frequency, each holding the slots of that frequency
//! in the order they entered it. A hit moves a slot to the next bucket
//! (created next to the current one when missing, so no search); the victim
//! is the oldest slot of the lowest bucket. Buckets live in a slab indexed by
//! `u32`, slots' links in vectors indexed by [`Slot`].

use super::Slot;

const NIL: u32 = u32::MAX;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    freq: u64,
    /// Slot that entered this frequency last.
    newest: Slot,
    /// Slot that entered this frequency first.
    oldest: Slot,
    /// Next bucket with a higher frequency.
    higher: u32,
    /// Next bucket with a lower frequency.
    lower: u32,
}

/// A slot's place: its bucket and its neighbours there, side by side so a
/// move touches one cache line per slot (three vectors took three).
#[derive(Debug, Clone, Copy)]
struct Node {
    /// Toward the newest slot of the same bucket.
    newer: Slot,
    /// Toward the oldest slot of the same bucket.
    older: Slot,
    /// NIL when the slot is not held.
    bucket: u32,
}

const UNHELD: Node = Node { newer: NIL, older: NIL, bucket: NIL };

/// Slots grouped by access frequency, lowest frequency first.
#[derive(Debug, Clone)]
pub struct FreqBuckets {
    nodes: Vec<Node>,
    buckets: Vec<Bucket>,
    free_buckets: Vec<u32>,
    lowest: u32,
    len: usize,
}

impl Default for FreqBuckets {
    fn default() -> Self {
        FreqBuckets { nodes: Vec::new(), buckets: Vec::new(), free_buckets: Vec::new(), lowest: NIL, len: 0 }
    }
}

impl FreqBuckets {
    /// Number of slots held.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no slot is held.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether `slot` is held.
    #[inline]
    pub fn contains(&self, slot: Slot) -> bool {
        self.nodes.get(slot as usize).is_some_and(|n| n.bucket != NIL)
    }

    /// Frequency of a held `slot`.
    #[inline]
    pub fn freq(&self, slot: Slot) -> u64 {
        self.buckets[self.nodes[slot as usize].bucket as usize].freq
    }

    /// The lowest frequency held, if any.
    pub fn lowest_freq(&self) -> Option<u64> {
        (self.lowest != NIL).then(|| self.buckets[self.lowest as usize].freq)
    }

    fn ensure(&mut self, slot: Slot) {
        let need = slot as usize + 1;
        if self.nodes.len() < need {
            let n = need.max(self.nodes.len() * 2).max(16);
            self.nodes.resize(n, UNHELD);
        }
    }

    /// A new bucket of `freq` linked between `lower` and `higher` (NIL for none).
    fn new_bucket(&mut self, freq: u64, lower: u32, higher: u32) -> u32 {
        let b = Bucket { freq, newest: NIL, oldest: NIL, higher, lower };
        let i = match self.free_buckets.pop() {
            Some(i) => {
                self.buckets[i as usize] = b;
                i
            }
            None => {
                self.buckets.push(b);
                (self.buckets.len() - 1) as u32
            }
        };
        if lower != NIL {
            self.buckets[lower as usize].higher = i;
        } else {
            self.lowest = i;
        }
        if higher != NIL {
            self.buckets[higher as usize].lower = i;
        }
        i
    }

    fn drop_bucket_if_empty(&mut self, b: u32) {
        let bucket = self.buckets[b as usize];
        if bucket.newest != NIL {
            return;
        }
        if bucket.lower != NIL {
            self.buckets[bucket.lower as usize].higher = bucket.higher;
        } else {
            self.lowest = bucket.higher;
        }
        if bucket.higher != NIL {
            self.buckets[bucket.higher as usize].lower = bucket.lower;
        }
        self.free_buckets.push(b);
    }

    fn link_newest(&mut self, slot: Slot, b: u32) {
        let old_newest = self.buckets[b as usize].newest;
        self.nodes[slot as usize] = Node { newer: NIL, older: old_newest, bucket: b };
        if old_newest != NIL {
            self.nodes[old_newest as usize].newer = slot;
        } else {
            self.buckets[b as usize].oldest = slot;
        }
        self.buckets[b as usize].newest = slot;
    }

    fn unlink(&mut self, slot: Slot) -> u32 {
        let Node { newer: n, older: o, bucket: b } = std::mem::replace(&mut self.nodes[slot as usize], UNHELD);
        if n != NIL {
            self.nodes[n as usize].older = o;
        } else {
            self.buckets[b as usize].newest = o;
        }
        if o != NIL {
            self.nodes[o as usize].newer = n;
        } else {
            self.buckets[b as usize].oldest = n;
        }
        b
    }

    /// Adds `slot` with frequency 1. The caller guarantees it is not held.
    pub fn insert(&mut self, slot: Slot) {
        self.ensure(slot);
        debug_assert!(!self.contains(slot), "slot {slot} inserted twice");
        let b = if self.lowest != NIL && self.buckets[self.lowest as usize].freq == 1 {
            self.lowest
        } else {
            self.new_bucket(1, NIL, self.lowest)
        };
        self.link_newest(slot, b);
        self.len += 1;
    }

    /// Adds one to a held `slot`'s frequency; it becomes the newest of its
    /// new frequency. Returns the new frequency.
    pub fn increment(&mut self, slot: Slot) -> u64 {
        let b = self.nodes[slot as usize].bucket;
        let bucket = self.buckets[b as usize];
        let freq = bucket.freq.saturating_add(1);
        if bucket.newest == slot
            && bucket.oldest == slot
            && (bucket.higher == NIL || self.buckets[bucket.higher as usize].freq != freq)
        {
            // Alone in its bucket, and no bucket of the next frequency to
            // join: the bucket itself moves up (popular objects in skewed
            // workloads sit alone in theirs, and this is most of their hits).
            self.buckets[b as usize].freq = freq;
            return freq;
        }
        let target = if bucket.higher != NIL && self.buckets[bucket.higher as usize].freq == freq {
            bucket.higher
        } else {
            self.new_bucket(freq, b, bucket.higher)
        };
        self.unlink(slot);
        self.drop_bucket_if_empty(b);
        self.link_newest(slot, target);
        freq
    }

    /// Removes and returns the slot that entered the lowest frequency first.
    pub fn pop_lowest(&mut self) -> Option<Slot> {
        if self.lowest == NIL {
            return None;
        }
        let slot = self.buckets[self.lowest as usize].oldest;
        self.remove(slot);
        Some(slot)
    }

    /// Removes a held `slot`.
    pub fn remove(&mut self, slot: Slot) {
        let b = self.unlink(slot);
        self.drop_bucket_if_empty(b);
        self.len -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowest_frequency_oldest_first() {
        let mut f = FreqBuckets::default();
        for s in 0..4 {
            f.insert(s);
        }
        assert_eq!(f.increment(1), 2);
        assert_eq!(f.increment(0), 2);
        assert_eq!(f.increment(1), 3);
        // freq 1: 2, 3 (in that order); freq 2: 0; freq 3: 1.
        assert_eq!(f.pop_lowest(), Some(2));
        assert_eq!(f.pop_lowest(), Some(3));
        assert_eq!(f.lowest_freq(), Some(2));
        f.insert(7);
        assert_eq!(f.lowest_freq(), Some(1));
        assert_eq!(f.pop_lowest(), Some(7));
        assert_eq!(f.pop_lowest(), Some(0));
        f.remove(1);
        assert!(f.is_empty() && f.pop_lowest().is_none());
    }
}
