//! The sharded in-memory pipeline store: see [`MemoryPipelineStore`].

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use super::key::{PipelineCacheKey, PipelineFeatureFlags, PipelineKeyDigest};
use super::stats::{PipelineCacheStats, PipelineCounters};
use super::store::{BudgetLimit, EvictionListener, PipelineCacheStore, PipelineEviction, PutOutcome, RejectReason};
use crate::policy::{Slot, SlotList};
use crate::stats::EvictionReason;
use crate::{Error, Result, strict_assert};

/// Limits of a [`MemoryPipelineStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryStoreConfig {
    /// Number of shards: a power of two from 1 to 65536.
    pub shards: usize,
    /// Entries each shard may hold. 0 disables the store. At most
    /// `u32::MAX - 1` (slots are 32-bit).
    pub max_entries_per_shard: u64,
    /// Payload bytes each shard may hold; also the largest blob admitted.
    /// 0 disables the store.
    pub max_bytes_per_shard: u64,
}

impl MemoryStoreConfig {
    /// Shards of [`Default`].
    pub const DEFAULT_SHARDS: usize = 16;
    /// Entries per shard of [`Default`] (the seed's).
    pub const DEFAULT_MAX_ENTRIES_PER_SHARD: u64 = 256;
    /// Bytes per shard of [`Default`] (the seed's: 16 MiB).
    pub const DEFAULT_MAX_BYTES_PER_SHARD: u64 = 16 << 20;

    /// Whether a zero budget switches the store off.
    pub fn is_disabled(&self) -> bool {
        self.max_entries_per_shard == 0 || self.max_bytes_per_shard == 0
    }

    fn validate(&self) -> Result<()> {
        if !self.shards.is_power_of_two() || self.shards > 1 << 16 {
            return Err(Error::config(format!(
                "pipeline memory store: shards must be a power of two from 1 to 65536, got {}",
                self.shards
            )));
        }
        if self.max_entries_per_shard >= u64::from(Slot::MAX) {
            return Err(Error::config(format!(
                "pipeline memory store: max_entries_per_shard must be below {}, got {}",
                Slot::MAX,
                self.max_entries_per_shard
            )));
        }
        Ok(())
    }
}

impl Default for MemoryStoreConfig {
    fn default() -> Self {
        MemoryStoreConfig {
            shards: Self::DEFAULT_SHARDS,
            max_entries_per_shard: Self::DEFAULT_MAX_ENTRIES_PER_SHARD,
            max_bytes_per_shard: Self::DEFAULT_MAX_BYTES_PER_SHARD,
        }
    }
}

/// One resident blob.
#[derive(Debug)]
struct Entry {
    digest: PipelineKeyDigest,
    flags: PipelineFeatureFlags,
    bytes: Arc<[u8]>,
    inserted: Instant,
}

impl Entry {
    fn size(&self) -> u64 {
        self.bytes.len() as u64
    }
}

/// The state behind one shard lock. Invariants (checked by
/// [`MemoryPipelineStore::check_invariants`]): `index` maps exactly the
/// occupied slots, `lru` links exactly those slots, `bytes` is the sum of
/// their sizes.
#[derive(Debug, Default)]
struct Shard {
    index: FxHashMap<PipelineKeyDigest, Slot>,
    /// Dense slots; `None` for a free one, so a freed blob is dropped at once
    /// rather than when the slot is reused.
    slots: Vec<Option<Entry>>,
    free: Vec<Slot>,
    /// Front = most recently used.
    lru: SlotList,
    bytes: u64,
}

impl Shard {
    fn len(&self) -> u64 {
        self.index.len() as u64
    }

    fn get(&mut self, digest: &PipelineKeyDigest) -> Option<Arc<[u8]>> {
        let slot = *self.index.get(digest)?;
        self.lru.move_to_front(slot);
        self.slots[slot as usize].as_ref().map(|e| Arc::clone(&e.bytes))
    }

    /// Forgets an occupied `slot` everywhere but in `lru` (the caller has
    /// unlinked it, by `pop_back` or `remove`).
    fn release(&mut self, slot: Slot) -> Option<Entry> {
        let entry = self.slots.get_mut(slot as usize)?.take()?;
        self.index.remove(&entry.digest);
        self.bytes -= entry.size();
        self.free.push(slot);
        Some(entry)
    }

    fn remove(&mut self, digest: &PipelineKeyDigest) -> Option<Entry> {
        let slot = *self.index.get(digest)?;
        self.lru.remove(slot);
        self.release(slot)
    }

    fn pop_lru(&mut self) -> Option<Entry> {
        let slot = self.lru.pop_back()?;
        self.release(slot)
    }

    fn insert(&mut self, entry: Entry) {
        // Slots are bounded by the entry budget, which `validate` keeps below
        // `Slot::MAX`, so the cast cannot truncate.
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(None);
                (self.slots.len() - 1) as Slot
            }
        };
        self.bytes += entry.size();
        self.index.insert(entry.digest, slot);
        self.slots[slot as usize] = Some(entry);
        self.lru.push_front(slot);
    }
}

/// A shard lock plus its residency gauges, which live outside the lock so
/// `stats()` never blocks and still works when the lock is poisoned.
#[derive(Debug, Default)]
struct ShardCell {
    lock: Mutex<Shard>,
    entries: AtomicU64,
    bytes: AtomicU64,
}

impl ShardCell {
    /// Publishes the shard's residency; called under the lock after every
    /// change, so the gauges always show a consistent state.
    fn publish(&self, shard: &Shard) {
        self.entries.store(shard.len(), Ordering::Relaxed);
        self.bytes.store(shard.bytes, Ordering::Relaxed);
    }
}

/// The sharded in-memory pipeline store: the hot path for reusing compiled
/// pipelines within a process.
///
/// Follows `vyre-runtime`'s `InMemoryPipelineCache` (shards behind mutexes,
/// per-shard entry and byte budgets, a zero budget disables the store,
/// eviction reports with reason, size and age), with two changes:
///
/// * **O(1) eviction.** The seed found its LRU victim by scanning every entry
///   of the shard for the smallest timestamp, so a put into a full shard cost
///   O(entries). Here recency is an intrusive [`SlotList`] over dense slots:
///   a hit, an insert and an eviction are each O(1).
/// * **Poisoning is an error, not a panic.** The seed panicked on a poisoned
///   shard lock. Here the shard fails closed with
///   [`Error::PoisonedShard`]: it never serves the state a panic may have left
///   half-updated, the other shards keep working, and
///   [`MemoryPipelineStore::recover_poisoned_shards`] empties it so it can be
///   used again.
///
/// ## Thread safety and cost
///
/// `Send + Sync`; every method takes `&self`. The shard is chosen from the
/// key digest, so operations on different shards never contend. Counters and
/// residency gauges are relaxed atomics outside the locks, so
/// [`stats`](PipelineCacheStore::stats) takes no lock and works on a store
/// with poisoned shards. The eviction listener runs after the shard lock is
/// released: a slow or re-entrant listener blocks no other thread, and a
/// panicking one cannot poison a shard.
///
/// Memory per entry: the blob (shared `Arc<[u8]>`, handed out without
/// copying), a 32-byte digest in the map and in the slot, 4 bytes of flags,
/// an `Instant`, and 9 bytes of list links.
pub struct MemoryPipelineStore {
    shards: Box<[ShardCell]>,
    config: MemoryStoreConfig,
    counters: PipelineCounters,
    listener: Option<EvictionListener>,
}

impl fmt::Debug for MemoryPipelineStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryPipelineStore")
            .field("config", &self.config)
            .field("stats", &self.stats())
            .field("listener", &self.listener.is_some())
            .finish()
    }
}

impl MemoryPipelineStore {
    /// An empty store. Zero budgets are allowed: they build a disabled store.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a shard count that is not a power of two
    /// in 1..=65536, or an entry budget of `u32::MAX` or more.
    pub fn new(config: MemoryStoreConfig) -> Result<Self> {
        config.validate()?;
        Ok(MemoryPipelineStore {
            shards: (0..config.shards).map(|_| ShardCell::default()).collect(),
            config,
            counters: PipelineCounters::default(),
            listener: None,
        })
    }

    /// Calls `listener` with every eviction report, after the shard lock is
    /// released.
    #[must_use]
    pub fn with_listener(mut self, listener: impl Fn(&PipelineEviction) + Send + Sync + 'static) -> Self {
        self.listener = Some(Arc::new(listener));
        self
    }

    /// The limits this store was built with.
    pub fn config(&self) -> &MemoryStoreConfig {
        &self.config
    }

    /// Number of shards.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// The shard `key` lives in.
    pub fn shard_of(&self, key: &PipelineCacheKey) -> usize {
        self.shard_of_digest(&key.digest())
    }

    /// The shard `digest` lives in.
    pub fn shard_of_digest(&self, digest: &PipelineKeyDigest) -> usize {
        // Power-of-two shard count: masking keeps every bit pattern uniform.
        (digest.shard_bits() & (self.shards.len() as u64 - 1)) as usize
    }

    fn lock(&self, shard: usize) -> Result<MutexGuard<'_, Shard>> {
        // Fail closed: `PoisonError::into_inner` would hand back state a
        // panicking writer may have left half-updated (an index entry whose
        // slot holds another key's blob would serve the wrong pipeline).
        self.shards[shard].lock.lock().map_err(|_| Error::PoisonedShard { shard })
    }

    /// [`get`](PipelineCacheStore::get) by a digest the caller already holds
    /// (saves hashing the key on a hot path).
    ///
    /// # Errors
    /// [`Error::PoisonedShard`] when the digest's shard is poisoned.
    pub fn get_digest(&self, digest: &PipelineKeyDigest) -> Result<Option<Arc<[u8]>>> {
        let shard = self.shard_of_digest(digest);
        let found = self.lock(shard)?.get(digest);
        self.counters.lookup(found.is_some());
        Ok(found)
    }

    /// [`put`](PipelineCacheStore::put) by digest and impact flags.
    ///
    /// # Errors
    /// [`Error::PoisonedShard`] when the digest's shard is poisoned.
    pub fn put_digest(
        &self,
        digest: PipelineKeyDigest,
        flags: PipelineFeatureFlags,
        bytes: Arc<[u8]>,
    ) -> Result<PutOutcome> {
        let shard_ix = self.shard_of_digest(&digest);
        let cell = &self.shards[shard_ix];
        let size = bytes.len() as u64;
        let max_entries = self.config.max_entries_per_shard;
        let max_bytes = self.config.max_bytes_per_shard;
        let reject = if self.config.is_disabled() {
            Some(RejectReason::Disabled)
        } else if size > max_bytes {
            Some(RejectReason::TooLarge { size_bytes: size, limit_bytes: max_bytes })
        } else {
            None
        };

        let mut shard = self.lock(shard_ix)?;
        let now = Instant::now();
        let outcome = if let Some(reason) = reject {
            let mut removed = PipelineEviction::none(EvictionReason::Removed);
            if let Some(old) = shard.remove(&digest) {
                removed.add(old.size(), age(now, old.inserted));
            }
            PutOutcome::Rejected { reason, removed: removed.nonempty() }
        } else {
            // A replacement is not an eviction: the key stays resident.
            let _replaced = shard.remove(&digest);
            let mut evicted = PipelineEviction::none(EvictionReason::Capacity);
            loop {
                let entries_over = shard.len() + 1 > max_entries;
                let bytes_over = shard.bytes + size > max_bytes;
                if !(entries_over || bytes_over) {
                    break;
                }
                if evicted.entries == 0 {
                    evicted.limit = BudgetLimit::from_pressure(entries_over, bytes_over);
                }
                // Budgets >= 1 entry and >= `size` bytes: emptying the shard
                // always makes room, so `None` cannot happen; stop anyway.
                let Some(victim) = shard.pop_lru() else { break };
                evicted.add(victim.size(), age(now, victim.inserted));
            }
            shard.insert(Entry { digest, flags, bytes, inserted: now });
            strict_assert!(shard.len() <= max_entries && shard.bytes <= max_bytes, "shard over budget");
            PutOutcome::Stored { evicted: evicted.nonempty() }
        };
        cell.publish(&shard);
        drop(shard);

        if outcome.is_stored() {
            self.counters.put();
        } else {
            self.counters.rejected_put();
        }
        if let Some(ev) = outcome.eviction() {
            self.report(&ev);
        }
        Ok(outcome)
    }

    fn report(&self, ev: &PipelineEviction) {
        self.counters.evicted(ev);
        if let Some(listener) = &self.listener {
            listener(ev);
        }
    }

    /// Whether `key` is resident, without touching recency.
    ///
    /// # Errors
    /// [`Error::PoisonedShard`] when its shard is poisoned.
    pub fn contains(&self, key: &PipelineCacheKey) -> Result<bool> {
        let digest = key.digest();
        Ok(self.lock(self.shard_of_digest(&digest))?.index.contains_key(&digest))
    }

    /// Resident entries (sum of the shard gauges; no lock).
    pub fn len(&self) -> u64 {
        self.shards.iter().map(|c| c.entries.load(Ordering::Relaxed)).sum()
    }

    /// Whether nothing is resident.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Resident payload bytes (sum of the shard gauges; no lock).
    pub fn resident_bytes(&self) -> u64 {
        self.shards.iter().map(|c| c.bytes.load(Ordering::Relaxed)).sum()
    }

    /// Digests of one shard from most to least recently used (O(n); for
    /// tests and reports).
    ///
    /// # Errors
    /// [`Error::PoisonedShard`]; [`Error::InvalidConfig`] for a shard index
    /// out of range.
    pub fn lru_order(&self, shard: usize) -> Result<Vec<PipelineKeyDigest>> {
        if shard >= self.shards.len() {
            return Err(Error::config(format!("shard {shard} out of range (store has {})", self.shards.len())));
        }
        let guard = self.lock(shard)?;
        Ok(guard
            .lru
            .iter_newest_first()
            .filter_map(|s| guard.slots.get(s as usize)?.as_ref().map(|e| e.digest))
            .collect())
    }

    /// Empties every poisoned shard and clears its poison, so it serves again
    /// (starting cold). The dropped entries are reported with reason
    /// [`EvictionReason::Removed`] (their figures are what the shard held when
    /// it was poisoned). Returns how many shards were recovered.
    pub fn recover_poisoned_shards(&self) -> usize {
        let mut recovered = 0;
        for cell in self.shards.iter() {
            if !cell.lock.is_poisoned() {
                continue;
            }
            let mut guard = cell.lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let now = Instant::now();
            let mut dropped = PipelineEviction::none(EvictionReason::Removed);
            for entry in guard.slots.iter().flatten() {
                dropped.add(entry.size(), age(now, entry.inserted));
            }
            *guard = Shard::default();
            cell.publish(&guard);
            cell.lock.clear_poison();
            drop(guard);
            recovered += 1;
            if let Some(ev) = dropped.nonempty() {
                self.report(&ev);
            }
        }
        recovered
    }

    /// Checks every healthy shard's invariants (O(n); for tests). Poisoned
    /// shards are skipped.
    ///
    /// # Errors
    /// A description of the first broken invariant.
    pub fn check_invariants(&self) -> std::result::Result<(), String> {
        for (i, cell) in self.shards.iter().enumerate() {
            let Ok(shard) = cell.lock.lock() else { continue };
            let occupied: Vec<Slot> =
                (0..shard.slots.len()).filter(|&s| shard.slots[s].is_some()).map(|s| s as Slot).collect();
            if occupied.len() != shard.index.len() || occupied.len() != shard.lru.len() {
                return Err(format!(
                    "shard {i}: {} occupied slots, {} indexed, {} in lru",
                    occupied.len(),
                    shard.index.len(),
                    shard.lru.len()
                ));
            }
            let mut sum = 0;
            for &s in &occupied {
                let e = shard.slots[s as usize].as_ref().ok_or("vanished")?;
                if shard.index.get(&e.digest) != Some(&s) || !shard.lru.contains(s) {
                    return Err(format!("shard {i}: slot {s} not indexed or not linked"));
                }
                if self.shard_of_digest(&e.digest) != i {
                    return Err(format!("shard {i}: holds {} of another shard", e.digest));
                }
                sum += e.size();
            }
            if sum != shard.bytes {
                return Err(format!("shard {i}: bytes {} != sum of sizes {sum}", shard.bytes));
            }
            if shard.len() > self.config.max_entries_per_shard || shard.bytes > self.config.max_bytes_per_shard {
                return Err(format!("shard {i}: over budget ({} entries, {} bytes)", shard.len(), shard.bytes));
            }
            if cell.entries.load(Ordering::Relaxed) != shard.len() || cell.bytes.load(Ordering::Relaxed) != sum {
                return Err(format!("shard {i}: gauges disagree with contents"));
            }
        }
        Ok(())
    }

    /// Test hook: poisons `shard` by panicking a thread that holds its lock,
    /// exactly what a bug in a caller-supplied path would do. Not part of the
    /// API.
    #[doc(hidden)]
    pub fn poison_shard_for_tests(&self, shard: usize) {
        let Some(cell) = self.shards.get(shard) else { return };
        std::thread::scope(|s| {
            let handle = s.spawn(|| {
                let _guard = cell.lock.lock();
                panic!("cachescope test hook: poisoning pipeline shard {shard}");
            });
            let _ = handle.join();
        });
    }
}

fn age(now: Instant, inserted: Instant) -> Duration {
    now.saturating_duration_since(inserted)
}

impl PipelineCacheStore for MemoryPipelineStore {
    fn get(&self, key: &PipelineCacheKey) -> Result<Option<Arc<[u8]>>> {
        self.get_digest(&key.digest())
    }

    fn put(&self, key: &PipelineCacheKey, bytes: Arc<[u8]>) -> Result<PutOutcome> {
        self.put_digest(key.digest(), key.feature_flags, bytes)
    }

    fn remove(&self, key: &PipelineCacheKey) -> Result<Option<PipelineEviction>> {
        let digest = key.digest();
        let shard_ix = self.shard_of_digest(&digest);
        let mut shard = self.lock(shard_ix)?;
        let old = shard.remove(&digest);
        self.shards[shard_ix].publish(&shard);
        drop(shard);
        let Some(old) = old else { return Ok(None) };
        let mut ev = PipelineEviction::none(EvictionReason::Removed);
        ev.add(old.size(), age(Instant::now(), old.inserted));
        self.report(&ev);
        Ok(Some(ev))
    }

    /// Visits every entry of every shard (O(n), one shard locked at a time).
    /// Poisoned shards are skipped (they serve nothing anyway); when there
    /// was one, the healthy shards are still invalidated and then the first
    /// poisoned shard is returned as the error.
    fn invalidate(&self, mask: PipelineFeatureFlags) -> Result<PipelineEviction> {
        let mut total = PipelineEviction::none(EvictionReason::Invalidated);
        let mut poisoned = None;
        for shard_ix in 0..self.shards.len() {
            let mut shard = match self.lock(shard_ix) {
                Ok(s) => s,
                Err(e) => {
                    poisoned.get_or_insert(e);
                    continue;
                }
            };
            let now = Instant::now();
            let victims: Vec<PipelineKeyDigest> =
                shard.slots.iter().flatten().filter(|e| e.flags.intersects(mask)).map(|e| e.digest).collect();
            for digest in victims {
                if let Some(e) = shard.remove(&digest) {
                    total.add(e.size(), age(now, e.inserted));
                }
            }
            self.shards[shard_ix].publish(&shard);
        }
        if total.entries > 0 {
            self.report(&total);
        }
        match poisoned {
            Some(e) => Err(e),
            None => Ok(total),
        }
    }

    fn stats(&self) -> PipelineCacheStats {
        self.counters.snapshot(Some(self.len()), Some(self.resident_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex as StdMutex;

    use super::*;

    fn key(n: u8) -> PipelineCacheKey {
        PipelineCacheKey::new([n; 32], [0; 32], 0, [64, 1, 1], PipelineFeatureFlags::empty(), "test")
    }

    fn blob(n: u8, len: usize) -> Arc<[u8]> {
        vec![n; len].into()
    }

    fn one_shard(entries: u64, bytes: u64) -> MemoryPipelineStore {
        MemoryPipelineStore::new(MemoryStoreConfig {
            shards: 1,
            max_entries_per_shard: entries,
            max_bytes_per_shard: bytes,
        })
        .unwrap()
    }

    #[test]
    fn config_is_validated() {
        for shards in [0, 3, 1 << 17] {
            let c = MemoryStoreConfig { shards, ..MemoryStoreConfig::default() };
            assert!(matches!(MemoryPipelineStore::new(c), Err(Error::InvalidConfig { .. })), "{shards}");
        }
        let c = MemoryStoreConfig { max_entries_per_shard: u64::from(u32::MAX), ..MemoryStoreConfig::default() };
        assert!(MemoryPipelineStore::new(c).is_err());
    }

    #[test]
    fn replacement_is_not_an_eviction() {
        let s = one_shard(2, 100);
        assert!(s.put(&key(1), blob(1, 10)).unwrap().is_stored());
        let out = s.put(&key(1), blob(2, 30)).unwrap();
        assert_eq!(out, PutOutcome::Stored { evicted: None });
        assert_eq!(s.get(&key(1)).unwrap().as_deref(), Some(&[2u8; 30][..]));
        assert_eq!((s.len(), s.resident_bytes()), (1, 30));
        let st = s.stats();
        assert_eq!((st.puts, st.evictions), (2, 0));
        s.check_invariants().unwrap();
    }

    #[test]
    fn rejected_put_drops_the_older_entry() {
        let s = one_shard(8, 8);
        assert!(s.put(&key(1), blob(1, 4)).unwrap().is_stored());
        let out = s.put(&key(1), blob(2, 9)).unwrap();
        assert_eq!(out.rejection(), Some(RejectReason::TooLarge { size_bytes: 9, limit_bytes: 8 }));
        let removed = out.eviction().unwrap();
        assert_eq!((removed.reason, removed.entries, removed.bytes), (EvictionReason::Removed, 1, 4));
        assert_eq!(s.get(&key(1)).unwrap(), None, "never the bytes of an earlier put");
        let st = s.stats();
        assert_eq!((st.rejected_puts, st.removals, st.evictions, st.evicted_bytes), (1, 1, 1, 4));
        s.check_invariants().unwrap();
    }

    #[test]
    fn listener_sees_every_report() {
        let seen = Arc::new(StdMutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        let s = one_shard(1, 100).with_listener(move |ev| sink.lock().unwrap().push((ev.reason, ev.limit)));
        s.put(&key(1), blob(1, 1)).unwrap();
        s.put(&key(2), blob(2, 1)).unwrap();
        s.remove(&key(2)).unwrap();
        assert_eq!(s.remove(&key(2)).unwrap(), None);
        assert_eq!(
            *seen.lock().unwrap(),
            vec![(EvictionReason::Capacity, Some(BudgetLimit::Entries)), (EvictionReason::Removed, None)]
        );
    }

    #[test]
    fn listener_reentry_into_same_shard_does_not_deadlock() {
        let store: Arc<StdMutex<Option<Arc<MemoryPipelineStore>>>> = Arc::new(StdMutex::new(None));
        let back = Arc::clone(&store);
        let s = Arc::new(one_shard(1, 100).with_listener(move |_| {
            let inner = back.lock().unwrap().clone();
            if let Some(inner) = inner {
                // Same (only) shard: would deadlock if called under the lock.
                let _ = inner.get(&key(9)).unwrap();
            }
        }));
        *store.lock().unwrap() = Some(Arc::clone(&s));
        s.put(&key(1), blob(1, 1)).unwrap();
        let out = s.put(&key(2), blob(2, 1)).unwrap();
        assert_eq!(out.eviction().map(|e| e.entries), Some(1));
        assert_eq!(s.stats().lookups, 1);
        *store.lock().unwrap() = None; // break the cycle
    }

    #[test]
    fn poisoned_shard_recovers_cold() {
        let s = one_shard(4, 100);
        s.put(&key(1), blob(1, 10)).unwrap();
        s.poison_shard_for_tests(0);
        assert!(matches!(s.get(&key(1)), Err(Error::PoisonedShard { shard: 0 })));
        assert_eq!(s.stats().resident_bytes, Some(10), "stats work on a poisoned store");
        assert_eq!(s.recover_poisoned_shards(), 1);
        assert_eq!(s.get(&key(1)).unwrap(), None, "recovered shard starts cold");
        assert_eq!((s.len(), s.stats().removals), (0, 1));
        assert_eq!(s.recover_poisoned_shards(), 0);
        s.check_invariants().unwrap();
    }
}
