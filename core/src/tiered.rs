//! Buffer residency over a hierarchy of tiers (disk, host, device memory).
//!
//! The buffer cache of a GPU runtime, after the seed `vyre-wgpu`'s
//! `TieredCache`, with a real memory hierarchy instead of a single recency
//! list: tiers are ordered slow to fast, each a [`Cache`] with its own byte
//! capacity and eviction policy.
//!
//! * A new entry goes into the slowest tier that can hold it (data starts on
//!   the host, is uploaded when used).
//! * An access records a hit in the entry's tier policy; the
//!   [`PromotionRule`] decides whether it then moves to the fastest tier
//!   that can hold it.
//! * Eviction from a tier *demotes* the victim to the next slower tier that
//!   can hold it, cascading down; only the slowest tier drops data. Nothing is
//!   silently lost while a slower tier can take it.
//! * Every move is reported through a callback, in an order a backend can
//!   execute: room is made below before an entry moves down, and victims
//!   leave a tier before the entry that displaced them arrives. The GPU
//!   replayer turns these moves into real uploads and readbacks.
//! * An entry lives in exactly one tier (an exclusive hierarchy). Writes mark
//!   it dirty; a dirty entry leaving the device must be read back, which the
//!   move's `dirty` flag says. After a demotion the slower copy is current,
//!   so the entry is clean there.
//!
//! Architecture invariant: the tiers' resident bytes never exceed their
//! capacities, and every key is in at most one tier.

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::cache::{Cache, Evicted};
use crate::policy::{Access, EvictionPolicy, PolicyKind, Request};
use crate::stats::{CacheStats, EvictionReason};
use crate::{Error, Result};

/// Index of a tier: 0 is the slowest.
pub type TierId = usize;

/// One tier of a [`TieredCache`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierConfig {
    /// Name used in reports and metric labels (`disk`, `host`, `device`).
    pub name: String,
    /// Bytes this tier may hold. At least 1.
    pub capacity_bytes: u64,
    /// Which entry this tier gives up when full.
    pub policy: PolicyKind,
}

/// When an access moves an entry to a faster tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "rule", content = "accesses")]
pub enum PromotionRule {
    /// Every access promotes (a GPU kernel needs its buffers in device memory).
    OnAccess,
    /// Promote on the n-th access since the entry arrived in its tier
    /// (filters one-off accesses out of the fast tier).
    AfterAccesses(u32),
    /// Never promote: entries stay where they were inserted or demoted to.
    Never,
}

/// Configuration of a [`TieredCache`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TieredConfig {
    /// Tiers ordered slow to fast. At least one.
    pub tiers: Vec<TierConfig>,
    /// When accesses promote.
    pub promotion: PromotionRule,
}

/// Why an entry moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MoveKind {
    /// A new entry arrived (`from` is `None`).
    Insert,
    /// An access moved it to a faster tier.
    Promote,
    /// It was evicted from a faster tier into a slower one.
    Demote,
    /// It was evicted with no slower tier able to take it (`to` is `None`).
    Drop,
    /// The caller removed it (`to` is `None`).
    Remove,
}

/// One movement of an entry between tiers, as reported to the callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierMove {
    /// The entry's key.
    pub key: u64,
    /// Its size in bytes.
    pub size_bytes: u64,
    /// Tier it left (`None` for an insert).
    pub from: Option<TierId>,
    /// Tier it arrived in (`None` for a drop or removal).
    pub to: Option<TierId>,
    /// Why it moved.
    pub kind: MoveKind,
    /// It was written while in `from`: the backend must copy it back (a GPU
    /// readback) before the `from` copy goes away.
    pub dirty: bool,
}

/// What one [`TieredCache::access`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TierAccess {
    /// Tier the entry was in when accessed.
    pub found_in: TierId,
    /// Tier it is in afterwards.
    pub now_in: TierId,
}

/// Counters of one tier.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierStats {
    /// The tier's name.
    pub name: String,
    /// Its capacity in bytes.
    pub capacity_bytes: u64,
    /// Accesses that found their entry here.
    pub hits: u64,
    /// Entries that arrived by promotion, and their bytes.
    pub promotions_in: u64,
    /// Bytes promoted into this tier.
    pub promoted_in_bytes: u64,
    /// Entries that arrived by demotion.
    pub demotions_in: u64,
    /// Bytes demoted into this tier.
    pub demoted_in_bytes: u64,
    /// Dirty entries that left this tier downward (GPU: readbacks).
    pub dirty_evictions: u64,
    /// Bytes of those dirty entries.
    pub dirty_evicted_bytes: u64,
    /// The tier container's own counters (insertions, evictions, residency).
    pub cache: CacheStats,
}

/// Counters of a whole [`TieredCache`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TieredStats {
    /// Accesses of known keys.
    pub accesses: u64,
    /// Entries inserted.
    pub inserts: u64,
    /// Entries dropped from the slowest tier (data gone).
    pub drops: u64,
    /// Bytes dropped.
    pub dropped_bytes: u64,
    /// Entries removed by the caller.
    pub removals: u64,
    /// Per tier, slow to fast.
    pub tiers: Vec<TierStats>,
}

struct Tier {
    name: String,
    cache: Cache<Box<dyn EvictionPolicy>>,
    stats: TierStats,
    /// Victims of the insert in progress into this tier. One buffer per
    /// tier, reused: `place` recurses at most once per tier, downward.
    victims: Vec<Evicted>,
}

#[derive(Debug, Clone, Copy)]
struct Location {
    tier: TierId,
    /// Accesses since the entry arrived in `tier` (for [`PromotionRule::AfterAccesses`]).
    accesses: u32,
}

/// A cache over tiers ordered slow to fast; see the [module docs](self).
pub struct TieredCache {
    tiers: Vec<Tier>,
    promotion: PromotionRule,
    location: FxHashMap<u64, Location>,
    stats: TieredStats,
}

impl std::fmt::Debug for TieredCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TieredCache")
            .field("tiers", &self.tiers.iter().map(|t| (&t.name, t.cache.occupied())).collect::<Vec<_>>())
            .field("promotion", &self.promotion)
            .field("entries", &self.location.len())
            .finish()
    }
}

impl TieredCache {
    /// Builds the tiers.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for no tiers, a zero capacity, or
    /// `AfterAccesses(0)`.
    pub fn new(config: TieredConfig) -> Result<Self> {
        let policies = config.tiers.iter().map(|t| t.policy.build()).collect();
        Self::with_policies(config, policies)
    }

    /// Builds the tiers with caller-supplied policy instances (one per tier,
    /// slow to fast), for policies outside the built-in menu. The `policy`
    /// field of each [`TierConfig`] is then only a label.
    ///
    /// # Errors
    /// As [`TieredCache::new`], and when the counts differ.
    pub fn with_policies(config: TieredConfig, policies: Vec<Box<dyn EvictionPolicy>>) -> Result<Self> {
        if config.tiers.is_empty() {
            return Err(Error::config("a tiered cache needs at least one tier"));
        }
        if policies.len() != config.tiers.len() {
            return Err(Error::config(format!("{} tiers but {} policies", config.tiers.len(), policies.len())));
        }
        if config.promotion == PromotionRule::AfterAccesses(0) {
            return Err(Error::config("promotion after 0 accesses: use `on_access`"));
        }
        let mut tiers = Vec::with_capacity(config.tiers.len());
        for (tc, policy) in config.tiers.into_iter().zip(policies) {
            if tc.capacity_bytes == 0 {
                return Err(Error::config(format!("tier `{}`: capacity_bytes must be at least 1", tc.name)));
            }
            let cache = Cache::new(tc.capacity_bytes, policy)?;
            let stats = TierStats { name: tc.name.clone(), capacity_bytes: tc.capacity_bytes, ..TierStats::default() };
            tiers.push(Tier { name: tc.name, cache, stats, victims: Vec::new() });
        }
        Ok(TieredCache {
            tiers,
            promotion: config.promotion,
            location: FxHashMap::default(),
            stats: TieredStats::default(),
        })
    }

    /// Adds a new entry to the slowest tier that can hold it, demoting (and,
    /// from the slowest tier, dropping) others to make room. Returns the tier.
    ///
    /// # Errors
    /// [`Error::DuplicateKey`] if present; [`Error::EntryTooLarge`] if no tier
    /// can ever hold `size_bytes` (nothing is changed then).
    pub fn insert(&mut self, key: u64, size_bytes: u64, on_move: &mut impl FnMut(TierMove)) -> Result<TierId> {
        if self.location.contains_key(&key) {
            return Err(Error::DuplicateKey { key });
        }
        let Some(tier) = (0..self.tiers.len()).find(|&t| self.fits(t, size_bytes)) else {
            return Err(Error::EntryTooLarge { key, size_bytes, largest_tier_bytes: self.largest_tier_bytes() });
        };
        self.stats.inserts += 1;
        let arrival = TierMove { key, size_bytes, from: None, to: Some(tier), kind: MoveKind::Insert, dirty: false };
        self.place(tier, arrival, on_move);
        Ok(tier)
    }

    /// Adds a new entry to `tier`, or, when `tier` cannot hold it, to the
    /// fastest slower tier that can, demoting others to make room. Returns
    /// the tier. Unlike [`insert`](Self::insert) (data starts in the slowest
    /// tier), this is for data created in a faster tier: a buffer read back
    /// from the device into host memory. `dirty` says that no slower tier
    /// has a copy, so the entry's eventual demotion reports `dirty` and the
    /// backend writes it down instead of assuming a current slower copy.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a tier that does not exist;
    /// [`Error::DuplicateKey`] if present; [`Error::EntryTooLarge`] if no
    /// tier up to `tier` can hold `size_bytes` (nothing is changed then).
    pub fn insert_into(
        &mut self,
        tier: TierId,
        key: u64,
        size_bytes: u64,
        dirty: bool,
        on_move: &mut impl FnMut(TierMove),
    ) -> Result<TierId> {
        if tier >= self.tiers.len() {
            return Err(Error::config(format!("tier {tier} does not exist ({} tiers)", self.tiers.len())));
        }
        if self.location.contains_key(&key) {
            return Err(Error::DuplicateKey { key });
        }
        let Some(target) = (0..=tier).rev().find(|&t| self.fits(t, size_bytes)) else {
            let largest_tier_bytes = self.tiers[..=tier].iter().map(|t| t.cache.config().capacity).max().unwrap_or(0);
            return Err(Error::EntryTooLarge { key, size_bytes, largest_tier_bytes });
        };
        self.stats.inserts += 1;
        let arrival = TierMove { key, size_bytes, from: None, to: Some(target), kind: MoveKind::Insert, dirty: false };
        self.place(target, arrival, on_move);
        if dirty {
            self.tiers[target].cache.set_dirty(key, true);
        }
        Ok(target)
    }

    /// Records an access; promotes the entry if the [`PromotionRule`] says so.
    /// A writing access marks the entry dirty in its (new) tier.
    ///
    /// # Errors
    /// [`Error::UnknownKey`] for a key that was never inserted or was dropped.
    pub fn access(&mut self, key: u64, access: Access, on_move: &mut impl FnMut(TierMove)) -> Result<TierAccess> {
        let loc = self.location.get_mut(&key).ok_or(Error::UnknownKey { key })?;
        let found_in = loc.tier;
        loc.accesses = loc.accesses.saturating_add(1);
        let accesses = loc.accesses;
        self.stats.accesses += 1;
        let tier = &mut self.tiers[found_in];
        tier.stats.hits += 1;
        let (size_bytes, _) = tier.cache.peek(key).ok_or(Error::UnknownKey { key })?;

        let wants_promotion = match self.promotion {
            PromotionRule::OnAccess => true,
            PromotionRule::AfterAccesses(n) => accesses >= n,
            PromotionRule::Never => false,
        };
        let target = if wants_promotion {
            (found_in + 1..self.tiers.len()).rev().find(|&t| self.fits(t, size_bytes))
        } else {
            None
        };
        let Some(target) = target else {
            // Stays: the access is a hit for this tier's policy.
            self.tiers[found_in].cache.touch(&Request { access, ..Request::new(key, size_bytes) });
            return Ok(TierAccess { found_in, now_in: found_in });
        };
        // Leave the slower tier first: the freed room may receive demotions.
        let left = self.tiers[found_in].cache.remove_for(key, EvictionReason::Removed);
        let dirty = left.is_some_and(|e| e.dirty);
        let arrival =
            TierMove { key, size_bytes, from: Some(found_in), to: Some(target), kind: MoveKind::Promote, dirty };
        let stats = &mut self.tiers[target].stats;
        stats.promotions_in += 1;
        stats.promoted_in_bytes += size_bytes;
        self.place(target, arrival, on_move);
        if access.writes() {
            // The write happens after the move, in the new tier.
            self.tiers[target].cache.set_dirty(key, true);
        }
        Ok(TierAccess { found_in, now_in: target })
    }

    /// Removes an entry (a freed buffer). Reports a [`MoveKind::Remove`].
    ///
    /// # Errors
    /// [`Error::UnknownKey`] for a key that is not present.
    pub fn remove(&mut self, key: u64, on_move: &mut impl FnMut(TierMove)) -> Result<TierId> {
        let loc = self.location.remove(&key).ok_or(Error::UnknownKey { key })?;
        let evicted = self.tiers[loc.tier].cache.remove(key).ok_or(Error::UnknownKey { key })?;
        self.stats.removals += 1;
        on_move(TierMove {
            key,
            size_bytes: evicted.size,
            from: Some(loc.tier),
            to: None,
            kind: MoveKind::Remove,
            dirty: evicted.dirty,
        });
        Ok(loc.tier)
    }

    /// Stores `arrival` (already reported by nobody) in `tier`, moving the
    /// victims it displaces down first, then reports `arrival`.
    fn place(&mut self, tier: TierId, arrival: TierMove, on_move: &mut impl FnMut(TierMove)) {
        let req = Request::new(arrival.key, arrival.size_bytes);
        let mut victims = std::mem::take(&mut self.tiers[tier].victims);
        let stored = self.tiers[tier].cache.insert_with(&req, |e| victims.push(e));
        // `fits(tier)` was checked by every caller and the key is in no tier.
        debug_assert!(matches!(stored, Ok(true)), "tier {tier} refused an entry that fits: {stored:?}");
        self.location.insert(arrival.key, Location { tier, accesses: 0 });
        for victim in victims.drain(..) {
            self.demote(tier, victim, on_move);
        }
        self.tiers[tier].victims = victims;
        on_move(arrival);
    }

    /// Moves an entry evicted from `from` to the next slower tier that can
    /// hold it, or drops it when there is none.
    fn demote(&mut self, from: TierId, victim: Evicted, on_move: &mut impl FnMut(TierMove)) {
        if victim.dirty {
            let s = &mut self.tiers[from].stats;
            s.dirty_evictions += 1;
            s.dirty_evicted_bytes += victim.size;
        }
        let below = (0..from).rev().find(|&t| self.fits(t, victim.size));
        let mv = TierMove {
            key: victim.key,
            size_bytes: victim.size,
            from: Some(from),
            to: below,
            kind: if below.is_some() { MoveKind::Demote } else { MoveKind::Drop },
            dirty: victim.dirty,
        };
        match below {
            Some(t) => {
                let s = &mut self.tiers[t].stats;
                s.demotions_in += 1;
                s.demoted_in_bytes += victim.size;
                self.place(t, mv, on_move);
            }
            None => {
                self.location.remove(&victim.key);
                self.stats.drops += 1;
                self.stats.dropped_bytes += victim.size;
                on_move(mv);
            }
        }
    }

    fn fits(&self, tier: TierId, size_bytes: u64) -> bool {
        size_bytes <= self.tiers[tier].cache.config().capacity
    }

    fn largest_tier_bytes(&self) -> u64 {
        self.tiers.iter().map(|t| t.cache.config().capacity).max().unwrap_or(0)
    }

    /// The tier holding `key`, if any.
    pub fn tier_of(&self, key: u64) -> Option<TierId> {
        self.location.get(&key).map(|l| l.tier)
    }

    /// Whether `key` is in the fastest tier.
    pub fn is_in_fastest(&self, key: u64) -> bool {
        self.tier_of(key) == Some(self.tiers.len() - 1)
    }

    /// Size and dirty bit of `key`, if present.
    pub fn peek(&self, key: u64) -> Option<(u64, bool)> {
        let loc = self.location.get(&key)?;
        self.tiers[loc.tier].cache.peek(key)
    }

    /// Number of tiers.
    pub fn tier_count(&self) -> usize {
        self.tiers.len()
    }

    /// Name of `tier`.
    pub fn tier_name(&self, tier: TierId) -> &str {
        &self.tiers[tier].name
    }

    /// Bytes resident in `tier`.
    pub fn resident_bytes(&self, tier: TierId) -> u64 {
        self.tiers[tier].cache.occupied()
    }

    /// Entries in all tiers.
    pub fn len(&self) -> usize {
        self.location.len()
    }

    /// Whether no tier holds anything.
    pub fn is_empty(&self) -> bool {
        self.location.is_empty()
    }

    /// A snapshot of all counters.
    pub fn stats(&self) -> TieredStats {
        let mut s = self.stats.clone();
        s.tiers = self.tiers.iter().map(|t| TierStats { cache: t.cache.stats(), ..t.stats.clone() }).collect();
        s
    }

    /// Checks the cross-tier invariants (O(n)); used by tests.
    ///
    /// # Errors
    /// A description of the first broken invariant.
    pub fn check_invariants(&self) -> std::result::Result<(), String> {
        let mut total = 0usize;
        for (t, tier) in self.tiers.iter().enumerate() {
            tier.cache.check_invariants().map_err(|e| format!("tier {t} ({}): {e}", tier.name))?;
            for key in tier.cache.keys() {
                total += 1;
                match self.location.get(&key) {
                    Some(l) if l.tier == t => {}
                    other => return Err(format!("key {key:#x} in tier {t} but located at {other:?}")),
                }
            }
        }
        if total != self.location.len() {
            return Err(format!("{} located keys but {total} resident", self.location.len()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk_host(host_bytes: u64) -> TieredCache {
        let tier =
            |name: &str, capacity_bytes| TierConfig { name: name.into(), capacity_bytes, policy: PolicyKind::Lru };
        TieredCache::new(TieredConfig {
            tiers: vec![tier("disk", u64::MAX), tier("host", host_bytes)],
            promotion: PromotionRule::OnAccess,
        })
        .expect("tiers")
    }

    #[test]
    fn insert_into_places_in_the_named_tier_and_reports_dirty_demotions() {
        let mut c = disk_host(100);
        let mut moves = Vec::new();
        assert_eq!(c.insert_into(1, 1, 60, true, &mut |m| moves.push(m)).expect("first"), 1);
        assert_eq!(c.insert_into(1, 2, 30, false, &mut |m| moves.push(m)).expect("second"), 1);
        moves.clear();
        // The third needs room: the LRU entry (1, dirty) goes to disk first.
        assert_eq!(c.insert_into(1, 3, 50, true, &mut |m| moves.push(m)).expect("third"), 1);
        assert_eq!(moves.len(), 2);
        assert_eq!((moves[0].key, moves[0].kind, moves[0].to, moves[0].dirty), (1, MoveKind::Demote, Some(0), true));
        assert_eq!((moves[1].key, moves[1].kind, moves[1].to), (3, MoveKind::Insert, Some(1)));
        // Too large for the host: it lands on disk.
        assert_eq!(c.insert_into(1, 4, 500, true, &mut |_| {}).expect("large"), 0);
        assert!(matches!(c.insert_into(1, 4, 5, true, &mut |_| {}), Err(Error::DuplicateKey { key: 4 })));
        assert!(matches!(c.insert_into(2, 5, 5, true, &mut |_| {}), Err(Error::InvalidConfig { .. })));
        c.check_invariants().expect("invariants");
    }

    #[test]
    fn insert_into_without_a_slower_tier_refuses_what_does_not_fit() {
        let mut c = disk_host(100);
        let e = c.insert_into(0, 9, 1 << 40, false, &mut |_| {});
        assert!(matches!(e, Ok(0)), "the unbounded disk tier holds what the host cannot: {e:?}");
        let mut host_only = TieredCache::new(TieredConfig {
            tiers: vec![TierConfig { name: "host".into(), capacity_bytes: 10, policy: PolicyKind::Lru }],
            promotion: PromotionRule::OnAccess,
        })
        .expect("tiers");
        let e = host_only.insert_into(0, 1, 11, true, &mut |_| {});
        assert!(matches!(e, Err(Error::EntryTooLarge { largest_tier_bytes: 10, .. })), "{e:?}");
        assert!(host_only.is_empty());
    }
}
