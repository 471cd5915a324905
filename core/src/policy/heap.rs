//! An indexed binary max-heap over slots that breaks ties exactly like
//! libCacheSim's `pqueue` (Volkan Yazıcı's libpqueue).
//!
//! Belady's victim is the object with the farthest next access. Objects
//! never requested again all have the same priority (+infinity), and on a
//! byte cache *which* of them goes first changes later hits; exact agreement
//! with libCacheSim therefore needs its heap's exact moves: a 1-based array,
//! sift-up while the parent is strictly smaller, sift-down to the larger
//! child (the right one only when strictly larger) while the moving node is
//! strictly smaller, and a change of priority that sifts up only when the
//! priority grew. O(log n) per operation.

use super::Slot;

const NONE: u32 = u32::MAX;

/// Max-heap of slots keyed by a `u64` priority.
#[derive(Debug, Clone)]
pub struct SlotHeap {
    /// `heap[0]` is unused, as in libpqueue.
    heap: Vec<Slot>,
    pri: Vec<u64>,
    /// Position of each slot in `heap`; `NONE` when absent.
    pos: Vec<u32>,
}

impl Default for SlotHeap {
    fn default() -> Self {
        SlotHeap { heap: vec![0], pri: Vec::new(), pos: Vec::new() }
    }
}

impl SlotHeap {
    /// Number of slots held.
    #[inline]
    pub fn len(&self) -> usize {
        self.heap.len() - 1
    }

    /// Whether no slot is held.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `slot` is held.
    #[inline]
    pub fn contains(&self, slot: Slot) -> bool {
        self.pos.get(slot as usize).is_some_and(|&p| p != NONE)
    }

    /// Priority of a held `slot`.
    #[inline]
    pub fn priority(&self, slot: Slot) -> u64 {
        self.pri[slot as usize]
    }

    /// The slot with the highest priority.
    #[inline]
    pub fn peek(&self) -> Option<Slot> {
        self.heap.get(1).copied()
    }

    #[inline]
    fn set(&mut self, i: usize, slot: Slot) {
        self.heap[i] = slot;
        self.pos[slot as usize] = i as u32;
    }

    fn bubble_up(&mut self, mut i: usize) {
        let moving = self.heap[i];
        let moving_pri = self.pri[moving as usize];
        while i > 1 && self.pri[self.heap[i >> 1] as usize] < moving_pri {
            let parent = self.heap[i >> 1];
            self.set(i, parent);
            i >>= 1;
        }
        self.set(i, moving);
    }

    fn max_child(&self, i: usize) -> Option<usize> {
        let left = i << 1;
        if left >= self.heap.len() {
            return None;
        }
        let right = left + 1;
        if right < self.heap.len() && self.pri[self.heap[left] as usize] < self.pri[self.heap[right] as usize] {
            Some(right)
        } else {
            Some(left)
        }
    }

    fn percolate_down(&mut self, mut i: usize) {
        let moving = self.heap[i];
        let moving_pri = self.pri[moving as usize];
        while let Some(c) = self.max_child(i) {
            if moving_pri >= self.pri[self.heap[c] as usize] {
                break;
            }
            let child = self.heap[c];
            self.set(i, child);
            i = c;
        }
        self.set(i, moving);
    }

    /// Adds `slot` with `priority`. The caller guarantees it is not held.
    pub fn push(&mut self, slot: Slot, priority: u64) {
        let s = slot as usize;
        if self.pos.len() <= s {
            let n = (s + 1).max(self.pos.len() * 2).max(16);
            self.pos.resize(n, NONE);
            self.pri.resize(n, 0);
        }
        debug_assert!(self.pos[s] == NONE, "slot {slot} pushed twice");
        self.pri[s] = priority;
        self.heap.push(slot);
        let i = self.heap.len() - 1;
        self.pos[s] = i as u32;
        self.bubble_up(i);
    }

    /// Changes a held `slot`'s priority.
    pub fn change_priority(&mut self, slot: Slot, priority: u64) {
        let old = self.pri[slot as usize];
        self.pri[slot as usize] = priority;
        let i = self.pos[slot as usize] as usize;
        if old < priority { self.bubble_up(i) } else { self.percolate_down(i) }
    }

    /// Removes and returns the slot with the highest priority.
    pub fn pop(&mut self) -> Option<Slot> {
        if self.heap.len() <= 1 {
            return None;
        }
        let head = self.heap[1];
        let last = self.heap.pop()?;
        self.pos[head as usize] = NONE;
        if self.heap.len() > 1 {
            self.set(1, last);
            self.percolate_down(1);
        }
        Some(head)
    }

    /// Removes a held `slot`.
    pub fn remove(&mut self, slot: Slot) {
        let i = self.pos[slot as usize] as usize;
        let removed_pri = self.pri[slot as usize];
        let Some(last) = self.heap.pop() else { return };
        self.pos[slot as usize] = NONE;
        if i < self.heap.len() {
            self.set(i, last);
            if removed_pri < self.pri[last as usize] { self.bubble_up(i) } else { self.percolate_down(i) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_priority_order_and_updates() {
        let mut h = SlotHeap::default();
        for (s, p) in [(0, 5), (1, 9), (2, 1), (3, 7), (4, 3)] {
            h.push(s, p);
        }
        h.change_priority(2, 10);
        h.remove(1);
        let mut out = vec![];
        while let Some(s) = h.pop() {
            out.push(s);
        }
        assert_eq!(out, vec![2, 3, 0, 4]);
        assert!(h.is_empty() && !h.contains(2));
    }
}
