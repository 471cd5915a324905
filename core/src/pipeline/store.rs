//! The [`PipelineCacheStore`] contract shared by the memory and disk stores,
//! and what their operations report: [`PutOutcome`], [`PipelineEviction`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::key::{PipelineCacheKey, PipelineFeatureFlags};
use super::stats::PipelineCacheStats;
use crate::Result;
use crate::stats::EvictionReason;

/// A compiled-pipeline store: bytes by [`PipelineCacheKey`].
///
/// Who guarantees what:
/// * A store never returns bytes that were not given to an accepted
///   [`put`](Self::put) of the same key (same digest). Corrupt, poisoned or
///   stale state is a miss or an error, never data.
/// * After `put(k, v)` returns, `get(k)` never returns bytes of an earlier
///   put, even when `v` was rejected: a rejected put drops the old entry too
///   (the seeds' rule), because the caller has moved on from it. So does a
///   put that fails with an I/O error (a full disk), as far as the store can
///   still remove it.
/// * Every entry that leaves (capacity, removal, invalidation, corruption) is
///   counted in [`stats`](Self::stats) and reported to the store's eviction
///   listener, if any, after the store's locks are released (a listener may
///   call back into the store).
/// * Errors are for the store's own failures (I/O, a poisoned shard); a miss
///   is `Ok(None)`. A caller that only wants speed may treat `Err` as a miss.
pub trait PipelineCacheStore: Send + Sync {
    /// The bytes stored for `key`, or `None` on a miss.
    ///
    /// # Errors
    /// Store failures: [`crate::Error::PoisonedShard`], [`crate::Error::Io`].
    fn get(&self, key: &PipelineCacheKey) -> Result<Option<Arc<[u8]>>>;

    /// Stores `bytes` for `key`, replacing any earlier bytes.
    ///
    /// # Errors
    /// Store failures; a refusal by budget is `Ok(PutOutcome::Rejected)`.
    fn put(&self, key: &PipelineCacheKey, bytes: Arc<[u8]>) -> Result<PutOutcome>;

    /// Removes `key`; reports what left, `None` when it was not stored.
    ///
    /// # Errors
    /// Store failures.
    fn remove(&self, key: &PipelineCacheKey) -> Result<Option<PipelineEviction>>;

    /// Removes every entry whose key's feature flags intersect `mask` (an
    /// empty mask removes nothing). A rare administrative operation: it may
    /// visit every entry. Reports the total with reason
    /// [`EvictionReason::Invalidated`] (`entries == 0` when nothing matched).
    ///
    /// # Errors
    /// Store failures; entries removed before the failure stay removed.
    fn invalidate(&self, mask: PipelineFeatureFlags) -> Result<PipelineEviction>;

    /// Makes accepted puts durable. A no-op for volatile stores.
    ///
    /// # Errors
    /// Store failures; what could not be flushed stays pending.
    fn flush(&self) -> Result<()> {
        Ok(())
    }

    /// A snapshot of the counters.
    fn stats(&self) -> PipelineCacheStats;
}

/// Which budget forced a capacity eviction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetLimit {
    /// The entry budget alone.
    Entries,
    /// The byte budget alone.
    Bytes,
    /// Both budgets at once.
    EntriesAndBytes,
}

impl BudgetLimit {
    pub(crate) fn from_pressure(entries_over: bool, bytes_over: bool) -> Option<Self> {
        match (entries_over, bytes_over) {
            (true, true) => Some(BudgetLimit::EntriesAndBytes),
            (true, false) => Some(BudgetLimit::Entries),
            (false, true) => Some(BudgetLimit::Bytes),
            (false, false) => None,
        }
    }
}

/// One report of entries leaving a store in a single operation (one put's
/// capacity evictions, one removal, one invalidation, one corrupt file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineEviction {
    /// Why they left.
    pub reason: EvictionReason,
    /// For [`EvictionReason::Capacity`]: the budget that was exceeded when
    /// the first victim was chosen. `None` for every other reason.
    pub limit: Option<BudgetLimit>,
    /// How many entries left.
    pub entries: u64,
    /// Their payload bytes in total (on disk: file bytes, header included).
    pub bytes: u64,
    /// Time since insertion of the oldest of them (on disk: since the file's
    /// modification time). Zero when `entries == 0`.
    pub age: Duration,
}

impl PipelineEviction {
    /// An empty report for `reason`, to accumulate into.
    pub(crate) fn none(reason: EvictionReason) -> Self {
        PipelineEviction { reason, limit: None, entries: 0, bytes: 0, age: Duration::ZERO }
    }

    /// Adds one departed entry.
    pub(crate) fn add(&mut self, bytes: u64, age: Duration) {
        self.entries += 1;
        self.bytes += bytes;
        self.age = self.age.max(age);
    }

    /// `Some(self)` when anything left.
    pub(crate) fn nonempty(self) -> Option<Self> {
        (self.entries > 0).then_some(self)
    }
}

/// Why a put was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum RejectReason {
    /// The store has a zero entry or byte budget: it is switched off.
    Disabled,
    /// The blob is larger than the store admits (the per-shard byte budget,
    /// or the disk store's maximum blob size).
    TooLarge {
        /// Size of the refused blob.
        size_bytes: u64,
        /// The limit it exceeded.
        limit_bytes: u64,
    },
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RejectReason::Disabled => f.write_str("store is disabled (zero budget)"),
            RejectReason::TooLarge { size_bytes, limit_bytes } => {
                write!(f, "blob of {size_bytes} bytes exceeds the {limit_bytes}-byte limit")
            }
        }
    }
}

/// What one [`PipelineCacheStore::put`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// The bytes are stored.
    Stored {
        /// Entries evicted to make room ([`EvictionReason::Capacity`]).
        evicted: Option<PipelineEviction>,
    },
    /// The bytes are not stored.
    Rejected {
        /// Why.
        reason: RejectReason,
        /// An earlier entry for the same key that was dropped with it
        /// ([`EvictionReason::Removed`]).
        removed: Option<PipelineEviction>,
    },
}

impl PutOutcome {
    /// Whether the bytes were stored.
    pub fn is_stored(&self) -> bool {
        matches!(self, PutOutcome::Stored { .. })
    }

    /// Why the put was rejected, if it was.
    pub fn rejection(&self) -> Option<RejectReason> {
        match self {
            PutOutcome::Stored { .. } => None,
            PutOutcome::Rejected { reason, .. } => Some(*reason),
        }
    }

    /// Whatever left the store because of this put.
    pub fn eviction(&self) -> Option<PipelineEviction> {
        match self {
            PutOutcome::Stored { evicted } => *evicted,
            PutOutcome::Rejected { removed, .. } => *removed,
        }
    }
}

/// Called with every [`PipelineEviction`] a store makes, after its locks are
/// released. Must not panic (a panic propagates to the caller of the store
/// operation, though the store itself stays consistent).
pub type EvictionListener = Arc<dyn Fn(&PipelineEviction) + Send + Sync>;
