//! The GPU replayer: `cachescope replay` replays a recorded dispatch trace on
//! a real Vulkan device through wgpu, and measures in time what each
//! eviction policy costs.
//!
//! The replayer implements the simulator's GPU model (`sim --gpu`, see
//! [`crate::sim`]) with real work: it drives one core
//! [`Cache`](cachescope_core::cache::Cache) per policy exactly like the
//! simulator does, and performs the real operation for each of the cache's
//! decisions:
//!
//! * a miss that is not write-only is a real upload (`queue.write_buffer` of
//!   the host bytes); a write-only miss only allocates;
//! * an eviction of a buffer written since its upload is a real readback
//!   (copy to a `MAP_READ` staging buffer, map, copy into host memory); a
//!   clean eviction and a `free` just drop the device buffer;
//! * a buffer the cache will not hold (too large, or refused by the policy)
//!   is streamed through device memory chunk by chunk;
//! * every binding of every dispatch runs a real compute kernel on the bound
//!   buffer, specialised per pipeline key through WGSL `override` constants.
//!
//! So hits, misses, uploads and readbacks equal `sim --gpu` for the same
//! policy and capacity, by construction and checked by the tests; what the
//! replayer adds is time: wall time, GPU time from timestamp queries, and
//! latency histograms of dispatches, uploads, readbacks and compiles.
//!
//! | file | concept |
//! |---|---|
//! | `device.rs` | headless instance, adapter choice, device, error capture |
//! | `kernels.rs` | the WGSL kernel, its CPU mirror, pipeline keys |
//! | `plan.rs` | the dispatch structure of a decoded trace |
//! | `pipelines.rs` | compiled pipelines behind core's memory and disk stores |
//! | `residency.rs` | device buffers, host bytes, batches, uploads, readbacks |
//! | `host_tier.rs` | `--host-memory` / `--disk-tier`: host and disk below the device, driven by core's `TieredCache` (`[disk, host]`, LRU) while the device stays the loop's plain `Cache` (the equality with `sim --gpu`); real file writes and reads, checked against the CPU model |
//! | `replay.rs` | the per-policy loop, [`replay()`], results |
//! | `bench.rs` | the overhead benchmark against a minimal raw wgpu loop |
//! | `cli.rs` | `cachescope replay` arguments and output |
//! | `tune.rs` | `cachescope tune`: core's workgroup-size tuner on WGSL kernels (`workloads/tune/`), timed with timestamp queries |

pub mod bench;
pub mod cli;
pub mod device;
pub mod host_tier;
pub mod kernels;
pub mod pipelines;
pub mod plan;
pub mod replay;
pub mod residency;
pub mod tune;

pub use device::{AdapterReport, GpuDevice};
pub use replay::{ReplayConfig, ReplayOutput, ReplayRun, replay, replay_with};

/// What can go wrong on the GPU path. Every variant names what failed and
/// where.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    /// No Vulkan adapter (or none matching `--adapter`).
    #[error("{0}")]
    NoAdapter(String),
    /// The device could not be created.
    #[error("requesting a device from adapter `{adapter}`: {message}")]
    Device {
        /// The adapter's name.
        adapter: String,
        /// What wgpu said.
        message: String,
    },
    /// The device reported an error (validation, out of memory, lost) while
    /// doing `during`.
    #[error("GPU error during {during}: {message}")]
    Runtime {
        /// The operation that was running.
        during: String,
        /// What wgpu or the driver said.
        message: String,
    },
    /// A readback did not hold the bytes the model expects.
    #[error("data integrity: {0}")]
    Integrity(String),
    /// The trace cannot be replayed (wrong view, file changed, ...).
    #[error("trace: {0}")]
    Trace(String),
    /// A configuration value is unusable.
    #[error("configuration: {0}")]
    Config(String),
    /// The disk tier (`--disk-tier`) could not do `action` on `path`.
    #[error("disk tier: {action} `{}`: {message}", path.display())]
    DiskTier {
        /// What was being done (`creating directory`, `writing`, ...).
        action: String,
        /// The file or directory.
        path: std::path::PathBuf,
        /// What the OS (or the header check) said.
        message: String,
    },
    /// A pipeline store failed.
    #[error("pipeline store: {0}")]
    Store(String),
}

/// Result of the GPU path.
pub type GpuResult<T> = std::result::Result<T, GpuError>;
