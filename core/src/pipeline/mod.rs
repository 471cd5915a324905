//! Compiled-pipeline caches: the versioned [`PipelineCacheKey`], the sharded
//! in-memory [`MemoryPipelineStore`] and the checksummed, persistent
//! [`DiskPipelineStore`], behind one [`PipelineCacheStore`] trait.
//!
//! A GPU runtime compiles a pipeline (shader + layout + specialisation) once
//! and wants to reuse it: within the process from memory, across runs from
//! disk. cachescope measures those caches, so it carries its own faithful
//! versions of the ones in `vyre-runtime` and `vyre-driver`, fixed where the
//! seeds were slow or unsafe.
//!
//! | file | concept |
//! |---|---|
//! | `key.rs` | [`PipelineCacheKey`], [`PipelineFeatureFlags`], [`PipelineKeyDigest`] |
//! | `store.rs` | the [`PipelineCacheStore`] trait, [`PutOutcome`], [`PipelineEviction`] |
//! | `stats.rs` | [`PipelineCacheStats`], the serde snapshot of a store's counters |
//! | `memory.rs` | [`MemoryPipelineStore`]: shards, per-shard budgets, O(1) LRU |
//! | `disk.rs` | [`DiskPipelineStore`]: atomic install, bounded checksummed reads |
//!
//! ## Invariants
//!
//! * **Every key field is identity.** The digest covers version, shader hash,
//!   layout hash, push-constant size, workgroup size, feature flags and
//!   backend, in a fixed little-endian encoding with its own format version.
//!   A pipeline is never served for a key that differs in any of them.
//! * **Never wrong bytes.** A store returns only bytes an accepted put gave
//!   for the same digest. A poisoned shard is an error; a torn, truncated,
//!   flipped or misplaced file is a miss (removed and counted), never data.
//! * **No scans on the request path.** Get, put and eviction are O(1) in the
//!   memory store; only `invalidate` (a rare administrative operation) and
//!   the disk store's `entries`/`total_bytes` visit every entry.
//! * **Bounded.** Memory: per-shard entry and byte budgets, with a zero
//!   budget meaning "off". Disk: a maximum blob size enforced on write and
//!   on read, before any allocation sized by the file.
//! * **Everything that leaves is reported**: counted in
//!   [`PipelineCacheStats`] by reason and passed to the eviction listener as
//!   a [`PipelineEviction`].

mod disk;
mod key;
mod memory;
mod stats;
mod store;

pub use disk::{BLOB_FORMAT_VERSION, BLOB_HEADER_LEN, BLOB_MAGIC, DiskPipelineStore, DiskStoreConfig, default_root};
pub use key::{KEY_ENCODING_VERSION, PipelineCacheKey, PipelineFeatureFlags, PipelineKeyDigest};
pub use memory::{MemoryPipelineStore, MemoryStoreConfig};
pub use stats::PipelineCacheStats;
pub use store::{BudgetLimit, EvictionListener, PipelineCacheStore, PipelineEviction, PutOutcome, RejectReason};
