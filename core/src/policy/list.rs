//! An intrusive doubly linked list over dense slot ids.
//!
//! The links live in two vectors indexed by [`Slot`], so push, remove and
//! move-to-front are O(1) with no allocation per entry and no pointer
//! chasing through boxes. "Front" is the most recent end (MRU / newest),
//! "back" the oldest, matching libCacheSim's head and tail.

use super::Slot;

const NIL: Slot = Slot::MAX;
/// `prev` of a slot that is not linked (distinct from NIL, which marks the
/// ends of the list).
const DETACHED: Slot = Slot::MAX - 1;

/// Links of one slot, side by side so a list operation touches one cache
/// line per slot.
#[derive(Debug, Clone, Copy)]
struct Node {
    prev: Slot,
    next: Slot,
}

const UNLINKED: Node = Node { prev: DETACHED, next: DETACHED };

/// A doubly linked list of slots. A slot is in at most one `SlotList`.
#[derive(Debug, Clone)]
pub struct SlotList {
    nodes: Vec<Node>,
    head: Slot,
    tail: Slot,
    len: usize,
}

impl Default for SlotList {
    fn default() -> Self {
        SlotList { nodes: Vec::new(), head: NIL, tail: NIL, len: 0 }
    }
}

impl SlotList {
    /// Number of linked slots.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no slot is linked.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether `slot` is linked in this list.
    #[inline]
    pub fn contains(&self, slot: Slot) -> bool {
        self.nodes.get(slot as usize).is_some_and(|n| n.prev != DETACHED)
    }

    /// The newest (front) slot.
    #[inline]
    pub fn front(&self) -> Option<Slot> {
        (self.head != NIL).then_some(self.head)
    }

    /// The oldest (back) slot.
    #[inline]
    pub fn back(&self) -> Option<Slot> {
        (self.tail != NIL).then_some(self.tail)
    }

    /// The slot one step newer than `slot` (toward the front).
    #[inline]
    pub fn newer(&self, slot: Slot) -> Option<Slot> {
        let p = self.nodes[slot as usize].prev;
        (p != NIL && p != DETACHED).then_some(p)
    }

    /// The slot one step older than `slot` (toward the back).
    #[inline]
    pub fn older(&self, slot: Slot) -> Option<Slot> {
        let n = self.nodes[slot as usize].next;
        (n != NIL && n != DETACHED).then_some(n)
    }

    #[inline]
    fn ensure(&mut self, slot: Slot) {
        let need = slot as usize + 1;
        if self.nodes.len() < need {
            // Grow geometrically: slots are dense, so this is amortized O(1).
            let new_len = need.max(self.nodes.len() * 2).max(16);
            self.nodes.resize(new_len, UNLINKED);
        }
    }

    /// Links `slot` at the front. The caller guarantees it is not linked.
    #[inline]
    pub fn push_front(&mut self, slot: Slot) {
        debug_assert!(slot < DETACHED, "slot {slot} out of range");
        self.ensure(slot);
        debug_assert!(!self.contains(slot), "slot {slot} linked twice");
        self.nodes[slot as usize] = Node { prev: NIL, next: self.head };
        if self.head != NIL {
            self.nodes[self.head as usize].prev = slot;
        } else {
            self.tail = slot;
        }
        self.head = slot;
        self.len += 1;
    }

    /// Unlinks `slot`. The caller guarantees it is linked.
    #[inline]
    pub fn remove(&mut self, slot: Slot) {
        debug_assert!(self.contains(slot), "slot {slot} not linked");
        let Node { prev, next } = std::mem::replace(&mut self.nodes[slot as usize], UNLINKED);
        if prev != NIL {
            self.nodes[prev as usize].next = next;
        } else {
            self.head = next;
        }
        if next != NIL {
            self.nodes[next as usize].prev = prev;
        } else {
            self.tail = prev;
        }
        self.len -= 1;
    }

    /// Unlinks and returns the oldest slot.
    #[inline]
    pub fn pop_back(&mut self) -> Option<Slot> {
        let t = self.back()?;
        self.remove(t);
        Some(t)
    }

    /// Moves a linked `slot` to the front.
    #[inline]
    pub fn move_to_front(&mut self, slot: Slot) {
        if self.head != slot {
            self.remove(slot);
            self.push_front(slot);
        }
    }

    /// Slots from newest to oldest (O(n); for tests and reports only).
    pub fn iter_newest_first(&self) -> impl Iterator<Item = Slot> + '_ {
        std::iter::successors(self.front(), move |&s| self.older(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_remove_move() {
        let mut l = SlotList::default();
        for s in 0..5 {
            l.push_front(s);
        }
        assert_eq!(l.iter_newest_first().collect::<Vec<_>>(), vec![4, 3, 2, 1, 0]);
        l.remove(2);
        l.move_to_front(0);
        assert_eq!(l.iter_newest_first().collect::<Vec<_>>(), vec![0, 4, 3, 1]);
        assert_eq!(l.pop_back(), Some(1));
        assert_eq!(l.len(), 3);
        assert!(!l.contains(1) && l.contains(4));
        while l.pop_back().is_some() {}
        assert!(l.is_empty() && l.front().is_none() && l.back().is_none());
    }
}
