//! The container half of "a cache is a container plus a policy".
//!
//! [`Cache`] does the bookkeeping every policy needs: the key index, the
//! entry table of dense slots (key, size, dirty bit), capacity accounting in
//! units (bytes for a byte cache, 1 per object for an object cache) and in
//! entries, a per-entry admission limit, the "evict until it fits" loop,
//! counters, and eviction callbacks. The policy ([`EvictionPolicy`]) only
//! keeps its own metadata and picks victims. The request path is the one of
//! `semantics.md` section 2, so results agree with libCacheSim.

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

/// Maps resident keys to slots. [`HashIndex`] takes any `u64` key;
/// [`DenseIndex`] is a plain vector for keys already mapped to `0..n` (the
/// simulator maps a trace's keys once and shares them across runs), which
/// saves a hash lookup per request.
pub trait KeyIndex: Default + std::fmt::Debug {
    /// The slot of `key`, if resident.
    fn get(&self, key: u64) -> Option<Slot>;
    /// Records `key -> slot`. The caller guarantees `key` is not resident.
    fn insert(&mut self, key: u64, slot: Slot);
    /// Forgets `key`, returning its slot.
    fn remove(&mut self, key: u64) -> Option<Slot>;
    /// Resident keys and their slots (O(n) or O(universe); for tests and reports).
    fn pairs(&self) -> Vec<(u64, Slot)>;
    /// Loads `key`'s entry ahead of its lookup (see [`Cache::warm`]) and
    /// returns what it read, for the caller to fold into one
    /// [`std::hint::black_box`]. Default: nothing to load.
    #[inline]
    fn warm(&self, key: u64) -> u64 {
        let _ = key;
        0
    }
}

/// A hash map index for arbitrary keys (the default).
#[derive(Debug, Default)]
pub struct HashIndex(FxHashMap<u64, Slot>);

impl KeyIndex for HashIndex {
    #[inline]
    fn get(&self, key: u64) -> Option<Slot> {
        self.0.get(&key).copied()
    }
    #[inline]
    fn insert(&mut self, key: u64, slot: Slot) {
        self.0.insert(key, slot);
    }
    #[inline]
    fn remove(&mut self, key: u64) -> Option<Slot> {
        self.0.remove(&key)
    }
    fn pairs(&self) -> Vec<(u64, Slot)> {
        self.0.iter().map(|(&k, &s)| (k, s)).collect()
    }
}

/// A vector index for dense keys (`0..n`, n known or growing): one indexed
/// load per lookup. Memory is 4 bytes per possible key.
#[derive(Debug, Default)]
pub struct DenseIndex(Vec<Slot>);

const NO_SLOT: Slot = Slot::MAX;

impl DenseIndex {
    /// An index for keys `0..keys`.
    pub fn with_keys(keys: usize) -> Self {
        DenseIndex(vec![NO_SLOT; keys])
    }
}

impl KeyIndex for DenseIndex {
    #[inline]
    fn get(&self, key: u64) -> Option<Slot> {
        match self.0.get(key as usize) {
            Some(&s) if s != NO_SLOT => Some(s),
            _ => None,
        }
    }
    #[inline]
    fn insert(&mut self, key: u64, slot: Slot) {
        let i = usize::try_from(key).expect("dense keys fit in usize");
        if i >= self.0.len() {
            self.0.resize((i + 1).max(self.0.len() * 2), NO_SLOT);
        }
        self.0[i] = slot;
    }
    #[inline]
    fn remove(&mut self, key: u64) -> Option<Slot> {
        let s = self.0.get_mut(key as usize)?;
        let old = std::mem::replace(s, NO_SLOT);
        (old != NO_SLOT).then_some(old)
    }
    fn pairs(&self) -> Vec<(u64, Slot)> {
        self.0.iter().enumerate().filter(|&(_, &s)| s != NO_SLOT).map(|(k, &s)| (k as u64, s)).collect()
    }
    #[inline]
    fn warm(&self, key: u64) -> u64 {
        self.0.get(key as usize).map_or(0, |&s| u64::from(s))
    }
}

use crate::policy::{Admission, Entries, EvictionPolicy, KeySize, Request, Slot};
use crate::stats::{CacheStats, EvictionReason};
use crate::{Error, Result, strict_assert};

/// Limits of a [`Cache`]. Capacity is in the units the requests' `size` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheConfig {
    /// Total size the resident entries may occupy (bytes, or objects for an
    /// object cache). Must be at least 1.
    pub capacity: u64,
    /// At most this many resident entries (`u64::MAX`: no entry limit).
    pub max_entries: u64,
    /// Objects larger than this are never stored (`u64::MAX`: no limit other
    /// than the capacity). They still count as requests and misses.
    pub max_entry_size: u64,
}

impl CacheConfig {
    /// A cache limited only by `capacity`.
    pub fn with_capacity(capacity: u64) -> Self {
        CacheConfig { capacity, max_entries: u64::MAX, max_entry_size: u64::MAX }
    }
}

/// An entry that left the cache, as reported to eviction callbacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Evicted {
    /// Its key.
    pub key: u64,
    /// Its size in capacity units.
    pub size: u64,
    /// Whether it was written while resident (a GPU backend must read it
    /// back before dropping the device copy).
    pub dirty: bool,
    /// Why it left.
    pub reason: EvictionReason,
}

/// What one [`Cache::access`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The key was resident.
    Hit,
    /// It missed and was stored.
    Inserted,
    /// It missed and was not stored (too large, or refused by the policy).
    Rejected,
}

impl Outcome {
    /// Whether the request hit.
    pub fn is_hit(self) -> bool {
        self == Outcome::Hit
    }
}

/// A cache: a container (this type) plus a policy `P`.
///
/// `P` is usually a concrete policy (monomorphised, for speed) or
/// `Box<dyn EvictionPolicy>` (chosen at run time). `I` maps keys to slots:
/// [`HashIndex`] for any keys, [`DenseIndex`] for pre-mapped dense keys.
#[derive(Debug)]
pub struct Cache<P, I = HashIndex> {
    config: CacheConfig,
    index: I,
    entries: Entries,
    free_slots: Vec<Slot>,
    occupied: u64,
    resident_entries: u64,
    /// `policy.keeps_ghosts()`, read once: the index then maps ghost keys
    /// too, and every lookup checks the slot's ghost bit.
    ghosts: bool,
    policy: P,
    stats: CacheStats,
}

impl<P: EvictionPolicy> Cache<P, HashIndex> {
    /// A cache of `capacity` units with no other limits.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a zero capacity.
    pub fn new(capacity: u64, policy: P) -> Result<Self> {
        Self::with_config(CacheConfig::with_capacity(capacity), policy)
    }

    /// A cache with explicit limits.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a zero capacity or a zero entry limit.
    pub fn with_config(config: CacheConfig, policy: P) -> Result<Self> {
        Self::with_index(config, policy, HashIndex::default())
    }
}

impl<P: EvictionPolicy, I: KeyIndex> Cache<P, I> {
    /// A cache with explicit limits and key index.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a zero capacity or a zero entry limit.
    pub fn with_index(config: CacheConfig, mut policy: P, index: I) -> Result<Self> {
        if config.capacity == 0 {
            return Err(Error::config(format!("{} cache: capacity must be at least 1", policy.name())));
        }
        if config.max_entries == 0 {
            return Err(Error::config(format!("{} cache: max_entries must be at least 1", policy.name())));
        }
        policy.init(config.capacity);
        Ok(Cache {
            config,
            index,
            entries: Entries::default(),
            free_slots: Vec::new(),
            occupied: 0,
            resident_entries: 0,
            ghosts: policy.keeps_ghosts(),
            policy,
            stats: CacheStats::default(),
        })
    }

    /// Serves one request: a hit, or a miss that may store the object after
    /// evicting others. Evicted entries are dropped silently; see
    /// [`access_with`](Self::access_with) to observe them.
    #[inline]
    pub fn access(&mut self, req: &Request) -> Outcome {
        self.access_with(req, |_| {})
    }

    /// Serves one request, calling `on_evict` for every entry evicted to make
    /// room (in eviction order).
    pub fn access_with(&mut self, req: &Request, mut on_evict: impl FnMut(Evicted)) -> Outcome {
        let found = self.index.get(req.key);
        if let Some(slot) = found
            && !self.is_ghost(slot)
        {
            self.stats.record_request(req.size, true);
            if req.access.writes() {
                self.entries.dirty[slot as usize] = true;
            }
            self.policy.on_hit(slot, req, &self.entries);
            // A few policies (libCacheSim's SLRU inside W-TinyLFU, LIRS)
            // evict during a hit; they ask for it here.
            while self.policy.wants_eviction(req) {
                let Some(victim) = self.policy.evict(req, &self.entries) else { break };
                on_evict(self.release(victim, EvictionReason::Capacity));
            }
            return Outcome::Hit;
        }
        self.stats.record_request(req.size, false);
        // `found` is a ghost here: the policy forgets it, and its slot is
        // reused if the object is stored (no index update either way).
        match found {
            Some(ghost) => self.policy.on_ghost_miss(ghost, req, &self.entries),
            None => self.policy.on_miss(req, &self.entries),
        }
        self.free_dropped_ghosts();
        if self.store(req, found, &mut on_evict) { Outcome::Inserted } else { Outcome::Rejected }
    }

    /// Whether `slot` (from the index) is a ghost rather than resident.
    #[inline]
    fn is_ghost(&self, slot: Slot) -> bool {
        self.ghosts && self.entries.is_ghost(slot)
    }

    /// The slot of `key` if it is resident (not a ghost).
    #[inline]
    fn resident_slot(&self, key: u64) -> Option<Slot> {
        self.index.get(key).filter(|&slot| !self.is_ghost(slot))
    }

    /// Frees the ghost slots the policy dropped: unmapped and reusable.
    #[inline]
    fn free_dropped_ghosts(&mut self) {
        if !self.ghosts {
            return;
        }
        while let Some(slot) = self.policy.pop_dropped_ghost() {
            self.forget_ghost(slot);
        }
    }

    /// Unmaps and frees a ghost slot the policy no longer holds.
    fn forget_ghost(&mut self, slot: Slot) {
        debug_assert!(self.entries.is_ghost(slot), "slot {slot} freed as a ghost but is not one");
        let removed = self.index.remove(self.entries.key(slot));
        debug_assert_eq!(removed, Some(slot), "ghost slot not mapped by its key");
        self.entries.ghost[slot as usize] = false;
        self.free_slots.push(slot);
    }

    /// Stores `req`'s object without counting a request (a demotion from a
    /// faster tier, a prefetch). Returns whether it was stored.
    ///
    /// # Errors
    /// The key must not be resident: storing it twice would corrupt the
    /// accounting, so that is refused with [`Error::DuplicateKey`].
    pub fn insert_with(&mut self, req: &Request, mut on_evict: impl FnMut(Evicted)) -> Result<bool> {
        match self.index.get(req.key) {
            Some(slot) if !self.is_ghost(slot) => return Err(Error::DuplicateKey { key: req.key }),
            // No request, so no ghost hit: the policy forgets the ghost
            // (a key is never both resident and a ghost).
            Some(ghost) => {
                self.policy.on_remove(ghost, &self.entries);
                self.forget_ghost(ghost);
            }
            None => {}
        }
        Ok(self.store(req, None, &mut on_evict))
    }

    /// Admission, "evict until it fits", insertion. Returns whether stored.
    /// `ghost` is the slot of the request's key if it was a ghost (the
    /// policy has forgotten it): reused if the object is stored, else freed.
    fn store(&mut self, req: &Request, ghost: Option<Slot>, on_evict: &mut impl FnMut(Evicted)) -> bool {
        let admission = if req.size > self.config.max_entry_size {
            Admission::Reject
        } else {
            self.policy.admission(req, self.config.capacity)
        };
        if admission == Admission::Reject {
            self.stats.rejections += 1;
            if let Some(slot) = ghost {
                self.forget_ghost(slot);
            }
            return false;
        }
        while self.occupied + req.size > self.config.capacity
            || self.resident_entries >= self.config.max_entries
            || self.policy.wants_eviction(req)
        {
            let Some(victim) = self.policy.evict(req, &self.entries) else { break };
            let evicted = self.release(victim, EvictionReason::Capacity);
            on_evict(evicted);
        }
        let fits = self.occupied + req.size <= self.config.capacity && self.resident_entries < self.config.max_entries;
        if admission == Admission::EvictOnly || !fits {
            self.stats.rejections += 1;
            if let Some(slot) = ghost {
                self.forget_ghost(slot);
            }
            return false;
        }
        let slot = match ghost {
            Some(slot) => self.revive(slot, req),
            None => self.allocate(req),
        };
        self.policy.on_insert(slot, req, &self.entries);
        self.stats.insertions += 1;
        strict_assert!(self.occupied <= self.config.capacity, "resident units exceed capacity");
        true
    }

    fn allocate(&mut self, req: &Request) -> Slot {
        let dirty = req.access.writes();
        let slot = match self.free_slots.pop() {
            Some(s) => {
                let i = s as usize;
                self.entries.slots[i] = KeySize { key: req.key, size: req.size };
                self.entries.dirty[i] = dirty;
                self.entries.ghost[i] = false;
                s
            }
            None => {
                let s = Slot::try_from(self.entries.slots.len()).expect("more than 2^32 resident entries");
                self.entries.slots.push(KeySize { key: req.key, size: req.size });
                self.entries.dirty.push(dirty);
                self.entries.ghost.push(false);
                s
            }
        };
        self.index.insert(req.key, slot);
        self.occupied += req.size;
        self.resident_entries += 1;
        slot
    }

    /// Stores `req` in the ghost slot of its key (already mapped to it).
    fn revive(&mut self, slot: Slot, req: &Request) -> Slot {
        let i = slot as usize;
        debug_assert!(
            self.entries.ghost[i] && self.entries.slots[i].key == req.key,
            "revived slot is not the key's ghost"
        );
        self.entries.slots[i].size = req.size;
        self.entries.dirty[i] = req.access.writes();
        self.entries.ghost[i] = false;
        self.occupied += req.size;
        self.resident_entries += 1;
        slot
    }

    /// Forgets `slot` in the container (the policy already has), or keeps
    /// it as a ghost when the policy asks, for an eviction.
    fn release(&mut self, slot: Slot, reason: EvictionReason) -> Evicted {
        let i = slot as usize;
        let KeySize { key, size } = self.entries.slots[i];
        let evicted = Evicted { key, size, dirty: self.entries.dirty[i], reason };
        self.occupied -= evicted.size;
        self.resident_entries -= 1;
        self.stats.record_eviction(evicted.size);
        if self.ghosts && reason == EvictionReason::Capacity && self.policy.retains_as_ghost(slot) {
            // Stays mapped: the key now finds its ghost.
            self.entries.ghost[i] = true;
        } else {
            let removed = self.index.remove(evicted.key);
            debug_assert_eq!(removed, Some(slot), "policy evicted a slot the index does not map");
            self.free_slots.push(slot);
        }
        self.free_dropped_ghosts();
        evicted
    }

    /// Removes `key` if resident (an explicit removal, counted as an eviction
    /// with reason [`EvictionReason::Removed`]).
    pub fn remove(&mut self, key: u64) -> Option<Evicted> {
        self.remove_for(key, EvictionReason::Removed)
    }

    /// Removes `key` if resident, recording `reason`.
    pub fn remove_for(&mut self, key: u64, reason: EvictionReason) -> Option<Evicted> {
        let slot = self.resident_slot(key)?;
        self.policy.on_remove(slot, &self.entries);
        Some(self.release(slot, reason))
    }

    /// Records a hit on a resident `key` in the policy without counting a
    /// request (used by [`crate::tiered::TieredCache`], which counts itself).
    /// Returns false when the key is not resident.
    pub fn touch(&mut self, req: &Request) -> bool {
        let Some(slot) = self.resident_slot(req.key) else { return false };
        if req.access.writes() {
            self.entries.dirty[slot as usize] = true;
        }
        self.policy.on_hit(slot, req, &self.entries);
        true
    }

    /// Loads the memory a request for `key` will read first, in the key
    /// index and in the policy's per-key tables (ghosts), and returns what
    /// it read. Changes nothing. With dense keys those tables are as large
    /// as the key space and a request's lookups miss the CPU caches; a
    /// caller that knows the coming keys (the simulator) warms a group of
    /// them in one tight loop of independent loads, so the CPU overlaps
    /// their misses, and folds the results into one
    /// [`std::hint::black_box`] so the loads are kept.
    #[inline]
    pub fn warm(&self, key: u64) -> u64 {
        self.index.warm(key) ^ self.policy.warm(key)
    }

    /// Whether `key` is resident. Does not touch the policy.
    #[inline]
    pub fn contains(&self, key: u64) -> bool {
        self.resident_slot(key).is_some()
    }

    /// Size and dirty bit of a resident `key`. Does not touch the policy.
    pub fn peek(&self, key: u64) -> Option<(u64, bool)> {
        let slot = self.resident_slot(key)?;
        Some((self.entries.size(slot), self.entries.is_dirty(slot)))
    }

    /// Sets the dirty bit of a resident `key` without touching the policy
    /// (clean: its slower copy is current again). Returns false when the key
    /// is not resident.
    pub fn set_dirty(&mut self, key: u64, dirty: bool) -> bool {
        let Some(slot) = self.resident_slot(key) else { return false };
        self.entries.dirty[slot as usize] = dirty;
        true
    }

    /// Units occupied by resident entries.
    #[inline]
    pub fn occupied(&self) -> u64 {
        self.occupied
    }

    /// Number of resident entries.
    #[inline]
    pub fn len(&self) -> u64 {
        self.resident_entries
    }

    /// Whether nothing is resident.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.resident_entries == 0
    }

    /// The limits this cache was built with.
    pub fn config(&self) -> &CacheConfig {
        &self.config
    }

    /// The policy (for policy-specific inspection in tests and reports).
    pub fn policy(&self) -> &P {
        &self.policy
    }

    /// The policy's name.
    pub fn policy_name(&self) -> &'static str {
        self.policy.name()
    }

    /// A snapshot of the counters, with current residency.
    pub fn stats(&self) -> CacheStats {
        CacheStats { resident_bytes: self.occupied, resident_entries: self.resident_entries, ..self.stats }
    }

    /// Resident keys, in no particular order (O(n); for tests and reports).
    pub fn keys(&self) -> impl Iterator<Item = u64> + '_ {
        self.resident_pairs().into_iter().map(|(k, _)| k)
    }

    /// Resident keys and their slots (ghosts left out).
    fn resident_pairs(&self) -> Vec<(u64, Slot)> {
        let mut pairs = self.index.pairs();
        pairs.retain(|&(_, slot)| !self.is_ghost(slot));
        pairs
    }

    /// Key of the entry in `slot` (for policy-order inspection in tests).
    pub fn key_of(&self, slot: Slot) -> u64 {
        self.entries.key(slot)
    }

    /// Checks the container's invariants (O(n)); used by tests.
    ///
    /// # Errors
    /// A description of the first broken invariant.
    pub fn check_invariants(&self) -> std::result::Result<(), String> {
        for (k, s) in self.index.pairs() {
            if self.entries.key(s) != k {
                return Err(format!("slot {s} holds key {:#x}, index says {k:#x}", self.entries.key(s)));
            }
        }
        let pairs = self.resident_pairs();
        let sum: u64 = pairs.iter().map(|&(_, s)| self.entries.size(s)).sum();
        if sum != self.occupied {
            return Err(format!("occupied {} != sum of resident sizes {sum}", self.occupied));
        }
        if self.occupied > self.config.capacity {
            return Err(format!("occupied {} > capacity {}", self.occupied, self.config.capacity));
        }
        if pairs.len() as u64 != self.resident_entries || self.resident_entries > self.config.max_entries {
            return Err(format!("{} indexed vs {} counted entries", pairs.len(), self.resident_entries));
        }
        let mapped = self.index.pairs().len() + self.free_slots.len();
        if mapped != self.entries.slot_count() {
            return Err(format!(
                "{mapped} slots mapped or free of {} allocated (a ghost leaked)",
                self.entries.slot_count()
            ));
        }
        Ok(())
    }
}
