//! Workgroup-size autotuner: which workgroup size each kernel gets.
//!
//! Follows `vyre-driver`'s tuner (candidate sizes bounded by the adapter,
//! best-of-N through a [`BackendTimer`], decisions persisted per adapter and
//! keyed by program fingerprint + static shape, a resize policy driven by
//! live feedback), and goes beyond it where the seed was fragile:
//!
//! | piece | file | what changed from the seed |
//! |---|---|---|
//! | [`candidates`] | `candidates.rs` | derived from [`AdapterLimits`] (the seed used a fixed list that could exceed a small adapter's limit); subgroup multiples; 2D shapes |
//! | [`BackendTimer`], [`SyntheticTimer`] | `timer.rs` | a deterministic timer with seeded noise, for tests and benchmarks |
//! | [`ProgramKey`] | `key.rs` | 32 raw bytes, hex in text, length-framed hashing |
//! | [`Tuner`] | `sweep.rs` | the seed timed each candidate once; here interleaved rounds, best-of-N by minimum, candidates dropped by a rank test (Mann-Whitney U) and a `confident` flag |
//! | [`TunerStore`] | `store.rs` | TOML with per-adapter tables; bad files are errors with a line number (the seed silently skipped bad entries); atomic temp-file + rename save (the seed truncated in place) |
//! | [`Resizer`] | `resize.rs` | the seed's grow/shrink rule acted on every window; here it needs a streak of agreeing windows outside a dead band, so noise cannot make it flap |
//!
//! The typical flow: build a [`ProgramKey`], ask
//! [`Tuner::tune_cached`] with the adapter's [`TunerStore`] (which measures
//! only on the first run for that adapter and key), dispatch with the chosen
//! size, and feed live windows to a [`Resizer`].

mod candidates;
mod key;
mod resize;
mod store;
mod sweep;
mod timer;

pub use candidates::{AdapterLimits, CandidateOptions, candidates};
pub use key::ProgramKey;
pub use resize::{ResizeFeedback, ResizePolicy, Resizer};
pub use store::{Decision, TunerStore};
pub use sweep::{CandidateReport, DROP_Z, TuneOutcome, Tuned, Tuner, TunerConfig};
pub use timer::{BackendTimer, SyntheticTimer};
