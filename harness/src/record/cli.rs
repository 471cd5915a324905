//! `cachescope record`: arguments, where traces go, the summary lines.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

use super::{DEFAULT_SEED, RecordConfig, RecordSummary, Workload, record};
use crate::gpu::GpuDevice;

/// Arguments of `cachescope record`.
#[derive(Debug, clap::Args)]
pub struct RecordArgs {
    /// mlp, pyramid, spmv, or all.
    #[arg(long)]
    pub workload: String,
    /// Size multiplier (1: seconds on lavapipe; e.g. 16 on a data-centre GPU).
    #[arg(long, default_value_t = 1)]
    pub scale: u32,
    /// Seed of the workloads' data.
    #[arg(long, default_value_t = DEFAULT_SEED)]
    pub seed: u64,
    /// Use the first Vulkan adapter whose name contains this (case-insensitive).
    #[arg(long)]
    pub adapter: Option<String>,
    /// The trace (`.jsonl.gz`), or a directory (required for `all`) that
    /// gets `<workload>.jsonl.gz`.
    #[arg(long)]
    pub out: PathBuf,
}

/// Where each workload's trace goes: `out` itself for one workload named
/// as a file, `out/<workload>.jsonl.gz` for a directory (existing, or a
/// path not ending in `.gz`).
fn targets(workloads: &[Workload], out: &Path) -> Result<Vec<(Workload, PathBuf)>> {
    let is_file = out.extension().is_some_and(|e| e == "gz") && !out.is_dir();
    if is_file {
        if workloads.len() > 1 {
            anyhow::bail!("--out `{}`: `--workload all` writes several traces; give a directory", out.display());
        }
        return Ok(workloads.iter().map(|&w| (w, out.to_owned())).collect());
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating directory `{}`", out.display()))?;
    Ok(workloads.iter().map(|&w| (w, out.join(w.file_name()))).collect())
}

/// Runs `cachescope record`, printing a line per workload.
///
/// # Errors
/// An unknown workload, no adapter (naming what to install), a device or
/// integrity error, or a trace that cannot be written.
pub fn run_record(a: RecordArgs) -> Result<Vec<RecordSummary>> {
    let workloads: Vec<Workload> = if a.workload.trim() == "all" {
        Workload::ALL.to_vec()
    } else {
        a.workload.split(',').map(str::parse).collect::<Result<_, _>>().context("--workload")?
    };
    let targets = targets(&workloads, &a.out)?;
    let gpu = GpuDevice::open(a.adapter.as_deref())?;
    println!("recording on {} ({}, {})", gpu.report.name, gpu.report.driver, gpu.report.device_type);
    let config = RecordConfig { scale: a.scale, seed: a.seed };
    let mut summaries = Vec::new();
    for (workload, path) in targets {
        let summary = record(&gpu, workload, &config, &path)
            .with_context(|| format!("recording `{}` (scale {}, seed {})", workload.name(), a.scale, a.seed))?;
        println!("{}", summary.line());
        summaries.push(summary);
    }
    Ok(summaries)
}
