//! # cachescope-core
//!
//! The caches a GPU runtime keeps, with pluggable eviction policies, and the
//! workgroup-size tuner. Pure data structures: no GPU, no HTTP, no CLI, no
//! threads of its own. The harness drives these on traces and on real
//! devices; the dashboard exports their [`stats`].
//!
//! | module | what it is |
//! |---|---|
//! | [`policy`] | the [`EvictionPolicy`](policy::EvictionPolicy) trait and one file per policy |
//! | [`cache`] | [`Cache`](cache::Cache): container + policy, the request path of libCacheSim |
//! | [`tiered`] | [`TieredCache`](tiered::TieredCache): buffer residency over slow-to-fast tiers with demotion |
//! | [`pipeline`] | compiled-pipeline caches: versioned key, sharded in-memory store, checksummed disk store |
//! | [`hints`] | [`HotPathHints`](hints::HotPathHints): bounded per-region dispatch records |
//! | [`tuner`] | workgroup-size autotuner with persisted per-adapter decisions |
//! | [`stats`] | counters and snapshots shared by all of the above |
//!
//! ## Design decisions
//!
//! * **Container plus policy.** Capacity accounting, "evict until it fits",
//!   counters and callbacks live once, in [`cache::Cache`]; a policy only
//!   keeps metadata in vectors indexed by dense slot ids and picks victims.
//!   Adding a policy is one file and never touches accounting.
//! * **O(1) per request.** No policy or store scans its resident set to find
//!   a victim (the seed crates did; their cost grew with the entry count).
//! * **Exactness over cleverness.** The standard policies follow libCacheSim
//!   0.3.5 rule for rule (`semantics.md`), so a cachescope number can be
//!   checked against the community's reference simulator.
//! * **Nothing silently lost.** Tiers demote instead of dropping; every move
//!   and eviction is reported through a callback; a corrupt blob on disk is a
//!   miss, never data; bad input is an [`Error`], never a panic.

// No unsafe code in this crate, and no opt-out (the workspace only denies it).
#![forbid(unsafe_code)]

pub mod cache;
mod error;
pub mod hints;
pub mod pipeline;
pub mod policy;
pub mod stats;
pub mod tiered;
pub mod tuner;

pub use error::{Error, Result};

/// A debug assertion that the `strict-assertions` feature turns into a real
/// one, so CI can check invariants in optimised (benchmark-speed) builds.
#[macro_export]
#[doc(hidden)]
macro_rules! strict_assert {
    ($($arg:tt)*) => {
        if cfg!(any(debug_assertions, feature = "strict-assertions")) {
            assert!($($arg)*);
        }
    };
}
