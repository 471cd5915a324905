//! `cachescope record`: built-in GPU workloads that run on the device
//! through wgpu and write dispatch traces (`workloads/traces/FORMAT.md`).
//!
//! Each workload is a real program: WGSL kernels from `workloads/gpu/`
//! composed in Rust, real buffers holding seeded data, real dispatches, and
//! a final check of the device's results against a CPU computation of the
//! same program. A workload that does not verify writes no trace. The
//! trace is recorded as the program issues its dispatches (see
//! [`session`]); it holds no timings, so the same seed on the same device
//! writes the same bytes.
//!
//! | file | concept |
//! |---|---|
//! | `writer.rs` | the trace format, written and checked |
//! | `kernels.rs` | the WGSL kernels, their bindings' access, pipeline ids |
//! | `session.rs` | buffers, pipelines, dispatches, readbacks of one program |
//! | `mlp.rs` | MLP inference: weights reused every pass |
//! | `pyramid.rs` | image pyramid per frame, with a history kept across frames |
//! | `spmv.rs` | personalised PageRank: CSR SpMV until convergence |
//! | `cli.rs` | `cachescope record` arguments and output |
//!
//! `workloads/gpu/README.md` describes the programs and why each is
//! interesting for a cache.

pub mod cli;
pub mod kernels;
pub mod mlp;
pub mod pyramid;
pub mod session;
pub mod spmv;
pub mod writer;

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

pub use session::{Buf, Session, SessionStats};
pub use writer::{TraceFile, TraceHeader, TraceStats, TraceWriter};

use crate::gpu::{GpuDevice, GpuError, GpuResult};

/// Seed of the workloads' data unless told otherwise.
pub const DEFAULT_SEED: u64 = 0x00c0_ffee;

/// Largest `--scale`: every size stays far inside `u32` indices.
pub const MAX_SCALE: u32 = 64;

/// A built-in workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Workload {
    /// MLP inference, weights reused by every pass ([`mlp`]).
    Mlp,
    /// Image pyramid down and up per frame ([`pyramid`]).
    Pyramid,
    /// Personalised PageRank by CSR SpMV ([`spmv`]).
    Spmv,
}

impl Workload {
    /// Every workload, in the order `all` records them.
    pub const ALL: &'static [Workload] = &[Workload::Mlp, Workload::Pyramid, Workload::Spmv];

    /// The name on the command line and in the trace's `model`.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Mlp => "mlp",
            Workload::Pyramid => "pyramid",
            Workload::Spmv => "spmv",
        }
    }

    /// The file name `all` writes into its directory.
    pub fn file_name(self) -> String {
        format!("{}.jsonl.gz", self.name())
    }
}

impl std::str::FromStr for Workload {
    type Err = GpuError;

    fn from_str(s: &str) -> GpuResult<Workload> {
        Workload::ALL
            .iter()
            .copied()
            .find(|w| w.name() == s.trim())
            .ok_or_else(|| GpuError::Config(format!("unknown workload `{s}`: expected mlp, pyramid, spmv or all")))
    }
}

/// How to run a workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RecordConfig {
    /// Size multiplier (1: seconds on lavapipe; larger for real GPUs).
    pub scale: u32,
    /// Seed of the data (and of the graph's structure for `spmv`).
    pub seed: u64,
}

impl Default for RecordConfig {
    fn default() -> RecordConfig {
        RecordConfig { scale: 1, seed: DEFAULT_SEED }
    }
}

/// The CPU check of a workload's device results.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Verified {
    /// Values compared.
    pub values: u64,
    /// Largest absolute difference seen (within tolerance, or the workload
    /// would have failed).
    pub max_abs_error: f64,
}

impl Verified {
    /// Compares `gpu` with `cpu`: each value within `abs + rel * |cpu|`.
    ///
    /// # Errors
    /// [`GpuError::Integrity`] naming `what` and the first value out of
    /// tolerance.
    pub fn check(&mut self, what: &str, gpu: &[f32], cpu: &[f32], abs: f64, rel: f64) -> GpuResult<()> {
        if gpu.len() != cpu.len() {
            return Err(GpuError::Integrity(format!(
                "{what}: the device returned {} values, the CPU computed {}",
                gpu.len(),
                cpu.len()
            )));
        }
        for (i, (&g, &c)) in gpu.iter().zip(cpu).enumerate() {
            let error = (f64::from(g) - f64::from(c)).abs();
            // NaN on either side fails too.
            if error.is_nan() || error > abs + rel * f64::from(c).abs() {
                return Err(GpuError::Integrity(format!(
                    "{what}[{i}]: the device computed {g}, the CPU {c} (difference {error:.3e})"
                )));
            }
            self.max_abs_error = self.max_abs_error.max(error);
        }
        self.values += gpu.len() as u64;
        Ok(())
    }
}

/// What recording one workload did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordSummary {
    /// The workload.
    pub workload: Workload,
    /// The trace written.
    pub path: PathBuf,
    /// The adapter it ran on.
    pub device: String,
    /// The trace's counters.
    pub trace: TraceStats,
    /// Pipelines compiled and buffer bytes created.
    pub session: SessionStats,
    /// The CPU check.
    pub verified: Verified,
    /// Wall time of the program, compiles, readbacks and checks included.
    pub wall_seconds: f64,
}

impl RecordSummary {
    /// One line: dispatches, buffers, pipelines, peak live bytes, time,
    /// verification, file.
    pub fn line(&self) -> String {
        let t = &self.trace;
        format!(
            "{:<8} {} dispatches, {} buffers ({} freed), {} pipelines, peak live {} bytes ({:.2} MiB), {:.2} s, \
             verified OK ({} values, max error {:.1e}) -> {}",
            self.workload.name(),
            t.dispatches,
            t.buffers,
            t.frees,
            t.pipelines,
            t.peak_live_bytes,
            t.peak_live_bytes as f64 / f64::from(1u32 << 20),
            self.wall_seconds,
            self.verified.values,
            self.verified.max_abs_error,
            self.path.display()
        )
    }
}

/// Runs `workload` on `gpu` and writes its trace to `out` (gzip JSON
/// Lines). The file appears only when the program ran and verified.
///
/// # Errors
/// [`GpuError::Config`] for a scale out of range or too large for the
/// adapter; [`GpuError::Integrity`] when the device's results differ from
/// the CPU's; [`GpuError::Runtime`] for device errors; [`GpuError::Trace`]
/// when the file cannot be written.
pub fn record(gpu: &GpuDevice, workload: Workload, config: &RecordConfig, out: &Path) -> GpuResult<RecordSummary> {
    if config.scale == 0 || config.scale > MAX_SCALE {
        return Err(GpuError::Config(format!("--scale must be in 1..={MAX_SCALE}, got {}", config.scale)));
    }
    let started = Instant::now();
    let scale = config.scale;
    let (params, largest_buffer_bytes) = match workload {
        Workload::Mlp => {
            let p = mlp::MlpParams::at_scale(scale);
            (to_value(&p)?, p.largest_buffer_bytes())
        }
        Workload::Pyramid => {
            let p = pyramid::PyramidParams::at_scale(scale);
            (to_value(&p)?, p.largest_buffer_bytes())
        }
        Workload::Spmv => {
            let p = spmv::SpmvParams::at_scale(scale);
            (to_value(&p)?, p.largest_buffer_bytes())
        }
    };
    // Before any data is generated: a scale the adapter cannot bind fails
    // at once, not after minutes of host work.
    let limits = &gpu.limits;
    let cap = limits.max_storage_buffer_binding_size.min(limits.max_buffer_size);
    if largest_buffer_bytes > cap {
        return Err(GpuError::Config(format!(
            "{} at scale {scale} needs a {largest_buffer_bytes}-byte buffer, more than adapter `{}` binds \
             ({cap} bytes): use a smaller --scale",
            workload.name(),
            gpu.report.name
        )));
    }
    let header = TraceHeader::new(workload.name(), &gpu.report.name, config.seed, config.scale, params);
    let mut session = Session::new(gpu, TraceFile::create(out, &header)?);
    let verified = match workload {
        Workload::Mlp => mlp::run(&mut session, &mlp::MlpParams::at_scale(config.scale), config.seed),
        Workload::Pyramid => pyramid::run(&mut session, &pyramid::PyramidParams::at_scale(config.scale), config.seed),
        Workload::Spmv => spmv::run(&mut session, &spmv::SpmvParams::at_scale(config.scale), config.seed),
    }?;
    let (trace, session) = session.finish()?;
    Ok(RecordSummary {
        workload,
        path: out.to_owned(),
        device: gpu.report.name.clone(),
        trace,
        session,
        verified,
        wall_seconds: started.elapsed().as_secs_f64(),
    })
}

fn to_value(params: &impl Serialize) -> GpuResult<serde_json::Value> {
    serde_json::to_value(params).map_err(|e| GpuError::Config(format!("encoding the workload's parameters: {e}")))
}

/// Deterministic pseudo-random numbers for the workloads' data (ChaCha8:
/// the same stream on every platform).
pub(crate) fn rng(seed: u64, stream: u64) -> rand_chacha::ChaCha8Rng {
    use rand::SeedableRng;
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(stream);
    r
}
