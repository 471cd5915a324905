//! Several intrusive doubly linked lists over one set of slot links.
//!
//! A policy whose every slot sits in exactly one of a few lists (ARC's T1,
//! T2, B1 and B2) could keep one [`SlotList`](super::SlotList) per list,
//! but then each list has its own link vector as long as the slot count, and
//! moving a slot from one list to another (T1 to B1 on an eviction, T1 to
//! T2 on a hit) touches a cache line in each. Here the lists share one link
//! vector, and a slot's links carry the number of the list it is in, so a
//! move, and "which list is this slot in", touch one line per slot.
//! "Front" is the newest end, "back" the oldest, as in `SlotList`.

use super::Slot;

const NIL: Slot = Slot::MAX;
/// `list` of a slot that is in no list.
const DETACHED: u8 = u8::MAX;

#[derive(Debug, Clone, Copy)]
struct Node {
    prev: Slot,
    next: Slot,
    list: u8,
}

const UNLINKED: Node = Node { prev: NIL, next: NIL, list: DETACHED };

#[derive(Debug, Clone, Copy)]
struct Ends {
    head: Slot,
    tail: Slot,
    len: usize,
}

const EMPTY: Ends = Ends { head: NIL, tail: NIL, len: 0 };

/// `N` doubly linked lists of slots sharing their links; a slot is in at
/// most one of them. Lists are numbered `0..N`.
#[derive(Debug, Clone)]
pub struct SlotLists<const N: usize> {
    nodes: Vec<Node>,
    ends: [Ends; N],
}

impl<const N: usize> Default for SlotLists<N> {
    fn default() -> Self {
        const { assert!(N < DETACHED as usize, "too many lists") };
        SlotLists { nodes: Vec::new(), ends: [EMPTY; N] }
    }
}

impl<const N: usize> SlotLists<N> {
    /// Number of slots in list `list`.
    #[inline]
    pub fn len(&self, list: usize) -> usize {
        self.ends[list].len
    }

    /// Whether list `list` is empty.
    #[inline]
    pub fn is_empty(&self, list: usize) -> bool {
        self.ends[list].len == 0
    }

    /// The list `slot` is in, if any.
    #[inline]
    pub fn list_of(&self, slot: Slot) -> Option<usize> {
        self.nodes.get(slot as usize).and_then(|n| (n.list != DETACHED).then_some(usize::from(n.list)))
    }

    /// The newest (front) slot of `list`.
    #[inline]
    pub fn front(&self, list: usize) -> Option<Slot> {
        let h = self.ends[list].head;
        (h != NIL).then_some(h)
    }

    /// The oldest (back) slot of `list`.
    #[inline]
    pub fn back(&self, list: usize) -> Option<Slot> {
        let t = self.ends[list].tail;
        (t != NIL).then_some(t)
    }

    /// The slot one step older than `slot` in its list.
    #[inline]
    pub fn older(&self, slot: Slot) -> Option<Slot> {
        let n = self.nodes[slot as usize].next;
        (n != NIL).then_some(n)
    }

    /// Links `slot` at the front of `list`. The caller guarantees it is in
    /// no list.
    #[inline]
    pub fn push_front(&mut self, list: usize, slot: Slot) {
        debug_assert!(slot != NIL, "slot {slot} out of range");
        let i = slot as usize;
        if self.nodes.len() <= i {
            // Geometric growth: slots are dense, so this is amortized O(1).
            let new_len = (i + 1).max(self.nodes.len() * 2).max(16);
            self.nodes.resize(new_len, UNLINKED);
        }
        debug_assert!(self.list_of(slot).is_none(), "slot {slot} linked twice");
        let ends = &mut self.ends[list];
        self.nodes[i] = Node { prev: NIL, next: ends.head, list: list as u8 };
        if ends.head != NIL {
            self.nodes[ends.head as usize].prev = slot;
        } else {
            ends.tail = slot;
        }
        ends.head = slot;
        ends.len += 1;
    }

    /// Unlinks `slot` from its list, which it returns. The caller guarantees
    /// it is linked.
    #[inline]
    pub fn remove(&mut self, slot: Slot) -> usize {
        let Node { prev, next, list } = std::mem::replace(&mut self.nodes[slot as usize], UNLINKED);
        debug_assert!(list != DETACHED, "slot {slot} not linked");
        let list = usize::from(list);
        let ends = &mut self.ends[list];
        if prev != NIL {
            self.nodes[prev as usize].next = next;
        } else {
            ends.head = next;
        }
        if next != NIL {
            self.nodes[next as usize].prev = prev;
        } else {
            ends.tail = prev;
        }
        ends.len -= 1;
        list
    }

    /// Unlinks and returns the oldest slot of `list`.
    #[inline]
    pub fn pop_back(&mut self, list: usize) -> Option<Slot> {
        let t = self.back(list)?;
        self.remove(t);
        Some(t)
    }

    /// Moves a linked `slot` to the front of `list` (its own or another).
    #[inline]
    pub fn move_to_front(&mut self, list: usize, slot: Slot) {
        if self.ends[list].head != slot {
            self.remove(slot);
            self.push_front(list, slot);
        }
    }

    /// Slots of `list` from newest to oldest (O(n); for tests and reports).
    pub fn iter_newest_first(&self, list: usize) -> impl Iterator<Item = Slot> + '_ {
        std::iter::successors(self.front(list), move |&s| self.older(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::SlotList;

    /// Against one `SlotList` per list, under a seeded mix of pushes,
    /// removals, moves between lists and pops.
    #[test]
    fn behaves_like_separate_slot_lists() {
        let mut shared = SlotLists::<3>::default();
        let mut separate: [SlotList; 3] = Default::default();
        let mut x = 7u64;
        for _ in 0..50_000 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let slot = ((x >> 33) % 200) as Slot;
            let list = ((x >> 20) % 3) as usize;
            let owner = (0..3).find(|&l| separate[l].contains(slot));
            assert_eq!(shared.list_of(slot), owner);
            match ((x >> 60) % 4, owner) {
                (0, None) | (1, None) => {
                    shared.push_front(list, slot);
                    separate[list].push_front(slot);
                }
                (0, Some(l)) => {
                    assert_eq!(shared.remove(slot), l);
                    separate[l].remove(slot);
                }
                (1, Some(l)) => {
                    shared.move_to_front(list, slot);
                    separate[l].remove(slot);
                    separate[list].push_front(slot);
                }
                _ => assert_eq!(shared.pop_back(list), separate[list].pop_back()),
            }
            for (l, list) in separate.iter().enumerate() {
                assert_eq!(shared.len(l), list.len());
                assert_eq!(shared.back(l), list.back());
            }
        }
        for (l, list) in separate.iter().enumerate() {
            let want: Vec<_> = list.iter_newest_first().collect();
            assert_eq!(shared.iter_newest_first(l).collect::<Vec<_>>(), want);
            assert_eq!(shared.is_empty(l), want.is_empty());
        }
    }
}
