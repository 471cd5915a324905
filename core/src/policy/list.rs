//! An intrusive doubly linked list over dense slot ids.
//!
//! The links live in two vectors indexed by [`Slot`], so push, remove and
//! move-to-front are O(1) with no allocation per entry and no pointer
//! chasing through boxes. "Front" is the most recent end (MRU / newest),
//! "back" the oldest, matching libCacheSim's head and tail.

use super::Slot;

const NIL: Slot = Slot::MAX;

/// A doubly linked list of slots. A slot is in at most one `SlotList`.
#[derive(Debug, Clone)]
pub struct SlotList {
    prev: Vec<Slot>,
    next: Vec<Slot>,
    /// Whether each slot is linked in this list (so `contains` is O(1)).
    linked: Vec<bool>,
    head: Slot,
    tail: Slot,
    len: usize,
}

impl Default for SlotList {
    fn default() -> Self {
        SlotList { prev: Vec::new(), next: Vec::new(), linked: Vec::new(), head: NIL, tail: NIL, len: 0 }
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
        self.linked.get(slot as usize).copied().unwrap_or(false)
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
        let p = self.prev[slot as usize];
        (p != NIL).then_some(p)
    }

    /// The slot one step older than `slot` (toward the back).
    #[inline]
    pub fn older(&self, slot: Slot) -> Option<Slot> {
        let n = self.next[slot as usize];
        (n != NIL).then_some(n)
    }

    #[inline]
    fn ensure(&mut self, slot: Slot) {
        let need = slot as usize + 1;
        if self.prev.len() < need {
            // Grow geometrically: slots are dense, so this is amortized O(1).
            let new_len = need.max(self.prev.len() * 2).max(16);
            self.prev.resize(new_len, NIL);
            self.next.resize(new_len, NIL);
            self.linked.resize(new_len, false);
        }
    }

    /// Links `slot` at the front. The caller guarantees it is not linked.
    #[inline]
    pub fn push_front(&mut self, slot: Slot) {
        self.ensure(slot);
        debug_assert!(!self.linked[slot as usize], "slot {slot} linked twice");
        let s = slot as usize;
        self.prev[s] = NIL;
        self.next[s] = self.head;
        if self.head != NIL {
            self.prev[self.head as usize] = slot;
        } else {
            self.tail = slot;
        }
        self.head = slot;
        self.linked[s] = true;
        self.len += 1;
    }

    /// Unlinks `slot`. The caller guarantees it is linked.
    #[inline]
    pub fn remove(&mut self, slot: Slot) {
        let s = slot as usize;
        debug_assert!(self.linked[s], "slot {slot} not linked");
        let (p, n) = (self.prev[s], self.next[s]);
        if p != NIL {
            self.next[p as usize] = n;
        } else {
            self.head = n;
        }
        if n != NIL {
            self.prev[n as usize] = p;
        } else {
            self.tail = p;
        }
        self.prev[s] = NIL;
        self.next[s] = NIL;
        self.linked[s] = false;
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
