//! `cachescope replay`: arguments, the results file, the table.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use cachescope_core::policy::PolicyKind;
use serde::Serialize;

use super::replay::{ReplayConfig, ReplayRun, replay_with};
use super::{bench, device};
use crate::results::{SCHEMA_VERSION, ToolInfo, write_json_atomic};
use crate::sim::{SizeSpec, parse_bytes};
use crate::trace::{DecodedTrace, LoadOptions, TraceFormat};

/// Arguments of `cachescope replay`.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// Dispatch trace (JSONL, gzip or plain; workloads/traces/FORMAT.md).
    #[arg(long, required_unless_present = "list_adapters")]
    pub trace: Option<PathBuf>,
    /// Policies, comma-separated, or `all`.
    #[arg(long, default_value = "lru,s3fifo,arc")]
    pub policy: String,
    /// Device-memory capacities, comma-separated: `512MiB`, `10%peak` of the
    /// trace's peak live bytes, `1%` of its unique bytes.
    #[arg(long, default_value = "512MiB")]
    pub device_memory: String,
    /// Bound host memory for buffers' bytes (`4GiB`, `50%peak`): buffers
    /// not on the device live there up to this capacity (LRU), the rest in
    /// the disk tier. Without it, host memory holds every buffer.
    #[arg(long)]
    pub host_memory: Option<String>,
    /// Directory of the disk tier below `--host-memory` (one scratch
    /// subdirectory per run, removed when it ends). Without it, a full host
    /// memory may only let go of buffers the trace never uses again.
    #[arg(long, requires = "host_memory")]
    pub disk_tier: Option<PathBuf>,
    /// Use the first Vulkan adapter whose name contains this (case-insensitive).
    #[arg(long)]
    pub adapter: Option<String>,
    /// Directory of the persistent pipeline store.
    #[arg(long)]
    pub pipeline_cache: Option<PathBuf>,
    /// Compiled pipelines kept in memory (0: no limit).
    #[arg(long, default_value_t = 0)]
    pub pipeline_memory_entries: u64,
    /// Stop after this many requests (bindings) of the trace.
    #[arg(long)]
    pub limit: Option<u64>,
    /// Workgroup size of the kernel.
    #[arg(long, default_value_t = 64)]
    pub workgroup_size: u32,
    /// Words each kernel touches per chunk (0: every word; the default
    /// keeps lavapipe fast, use 0 on a real GPU for work proportional to
    /// bytes).
    #[arg(long, default_value_t = 1 << 16)]
    pub touch_cap: u32,
    /// Largest device buffer per chunk (default: the adapter's storage
    /// binding limit), e.g. `1MiB`.
    #[arg(long)]
    pub max_chunk: Option<String>,
    /// Kernels per submission.
    #[arg(long, default_value_t = 512)]
    pub batch: usize,
    /// Do not check readbacks against the CPU model (for timing).
    #[arg(long)]
    pub no_verify: bool,
    /// After each run, read back and check every resident buffer.
    #[arg(long)]
    pub verify_resident: bool,
    /// Write results (JSON) here; rewritten after every finished run.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// No table.
    #[arg(long)]
    pub quiet: bool,
    /// Measure the replayer's overhead against a minimal wgpu loop (all
    /// accesses hitting) instead of replaying.
    #[arg(long)]
    pub bench_overhead: bool,
    /// Repetitions of the overhead benchmark.
    #[arg(long, default_value_t = 5)]
    pub bench_reps: usize,
    /// List the Vulkan adapters and exit.
    #[arg(long)]
    pub list_adapters: bool,
}

/// A replay results file: the shape of `sim`'s (`runs`, one per policy and
/// size) with the adapter in `extra.adapter`.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayResultsFile {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// `replay` or `replay-bench`.
    pub kind: String,
    /// What produced it.
    pub tool: ToolInfo,
    /// The trace's identity.
    pub trace: serde_json::Value,
    /// The configuration.
    pub config: serde_json::Value,
    /// Finished runs.
    pub runs: Vec<ReplayRun>,
    /// `adapter`, `peak_live_bytes`, `bench`, ...
    pub extra: serde_json::Map<String, serde_json::Value>,
}

fn parse_policies(s: &str) -> Result<Vec<PolicyKind>> {
    if s.trim() == "all" {
        return Ok(PolicyKind::ALL.to_vec());
    }
    s.split(',').map(|p| p.trim().parse::<PolicyKind>().map_err(anyhow::Error::from)).collect()
}

/// Runs `cachescope replay`.
///
/// # Errors
/// Bad arguments, an unreadable trace, no adapter (naming what to install),
/// device errors; finished runs are in `--out` even then.
pub fn run_replay(a: ReplayArgs) -> Result<()> {
    if a.list_adapters {
        let names = device::list_adapters();
        if names.is_empty() {
            anyhow::bail!("no Vulkan adapter found; {}", device::INSTALL_HINT);
        }
        for n in names {
            println!("{n}");
        }
        return Ok(());
    }
    let Some(path) = a.trace.clone() else { anyhow::bail!("--trace is required") };
    let policies = parse_policies(&a.policy).context("--policy")?;
    let sizes: Vec<SizeSpec> = a
        .device_memory
        .split(',')
        .map(|s| s.parse())
        .collect::<Result<_, String>>()
        .map_err(anyhow::Error::msg)
        .context("--device-memory")?;
    let max_chunk =
        a.max_chunk.as_deref().map(parse_bytes).transpose().map_err(anyhow::Error::msg).context("--max-chunk")?;
    let host_memory = a
        .host_memory
        .as_deref()
        .map(str::parse::<SizeSpec>)
        .transpose()
        .map_err(anyhow::Error::msg)
        .context("--host-memory")?;
    let config = ReplayConfig {
        policies,
        sizes,
        adapter: a.adapter.clone(),
        pipeline_cache: a.pipeline_cache.clone(),
        pipeline_memory_entries: a.pipeline_memory_entries,
        workgroup_size: a.workgroup_size,
        touch_cap: a.touch_cap,
        max_chunk,
        batch: a.batch,
        verify: !a.no_verify,
        verify_resident_at_end: a.verify_resident,
        host_memory,
        disk_tier: a.disk_tier.clone(),
    };
    let options = LoadOptions { objects: false, pipelines: false, gpu: true, limit: a.limit };
    let trace = DecodedTrace::load(&path, Some(TraceFormat::Dispatch), options)
        .with_context(|| format!("loading trace `{}`", path.display()))?;
    let mut file = ReplayResultsFile {
        schema_version: SCHEMA_VERSION,
        kind: if a.bench_overhead { "replay-bench" } else { "replay" }.into(),
        tool: ToolInfo::current(),
        trace: serde_json::to_value(&trace.identity)?,
        config: serde_json::to_value(&config)?,
        runs: Vec::new(),
        extra: serde_json::Map::new(),
    };
    if let Some(p) = trace.peak_live_bytes {
        file.extra.insert("peak_live_bytes".into(), p.into());
    }
    file.extra.insert("unique_bytes".into(), trace.unique_bytes.into());

    if a.bench_overhead {
        let report = bench::bench_overhead(&trace, &config, a.bench_reps)
            .with_context(|| format!("overhead benchmark on `{}`", path.display()))?;
        file.extra.insert("adapter".into(), serde_json::to_value(&report.adapter)?);
        file.extra.insert("bench".into(), serde_json::to_value(&report)?);
        if let Some(out) = &a.out {
            write_json_atomic(out, &file)?;
        }
        println!(
            "overhead on {} ({} dispatches, {} kernels per pass, {} reps): replayer {:.6} s, raw {:.6} s (medians): {:+.1}%",
            report.adapter.name,
            report.dispatches,
            report.kernels,
            report.replayer_seconds.len(),
            report.replayer_median,
            report.raw_median,
            report.overhead * 100.0
        );
        return Ok(());
    }

    let mut write_error = None;
    let result = replay_with(&trace, &config, &mut |run, adapter| {
        if !file.extra.contains_key("adapter") {
            file.extra.insert("adapter".into(), serde_json::to_value(adapter).unwrap_or_default());
        }
        file.runs.push(run.clone());
        if let Some(out) = &a.out
            && write_error.is_none()
            && let Err(e) = write_json_atomic(out, &file)
        {
            write_error = Some(e);
        }
        if !a.quiet {
            eprintln!("done: {} {} ({:.2} s)", run.sim.policy, run.sim.size, run.wall_seconds);
        }
    });
    if let Some(e) = write_error {
        return Err(e);
    }
    let output = match result {
        Ok(o) => o,
        Err(e) => {
            let kept = match &a.out {
                Some(out) if !file.runs.is_empty() => {
                    format!(" ({} finished runs kept in `{}`)", file.runs.len(), out.display())
                }
                _ => String::new(),
            };
            return Err(anyhow::Error::new(e).context(format!("replaying `{}`{kept}", path.display())));
        }
    };
    file.extra.insert("adapter".into(), serde_json::to_value(&output.adapter)?);
    file.extra.insert("dispatches".into(), output.dispatches.into());
    file.extra.insert("pipelines".into(), output.pipelines.into());
    if let Some(out) = &a.out {
        write_json_atomic(out, &file)?;
    }
    if !a.quiet {
        print!("{}", render_table(&output.adapter.name, &file.runs));
        if let Some(out) = &a.out {
            println!("results: {}", out.display());
        }
    }
    Ok(())
}

/// The summary table, one line per run.
pub fn render_table(adapter: &str, runs: &[ReplayRun]) -> String {
    use std::fmt::Write;
    let mut out = format!("adapter: {adapter}\n\n");
    let _ = writeln!(
        out,
        "{:<12} {:>10} {:>12} {:>8} {:>8} {:>9} {:>10} {:>11} {:>8} {:>9} {:>9} {:>10} {:>10}",
        "policy",
        "size",
        "capacity",
        "hits",
        "misses",
        "uploads",
        "upload_GB",
        "readback_GB",
        "compiles",
        "wall_s",
        "gpu_s",
        "p50_disp",
        "p99_disp"
    );
    // Host- and disk-tier columns only where a run has a host tier, so the
    // table without `--host-memory` is the one it always was.
    let tiers = runs.iter().any(|r| r.host_tier.is_some());
    if tiers {
        out.pop();
        let _ = writeln!(
            out,
            " {:>11} {:>10} {:>10} {:>9} {:>9}",
            "host_peak_GB", "disk_w", "disk_w_GB", "disk_r", "disk_r_GB"
        );
    }
    for r in runs {
        let gb = |b: Option<u64>| b.unwrap_or(0) as f64 / 1e9;
        let d = r.latency.get("dispatch");
        let _ = write!(
            out,
            "{:<12} {:>10} {:>12} {:>8} {:>8} {:>9} {:>10.3} {:>11.3} {:>8} {:>9.3} {:>9.4} {:>10.2e} {:>10.2e}",
            r.sim.policy,
            r.sim.size,
            r.sim.capacity,
            r.sim.hits,
            r.sim.misses,
            r.sim.uploads.unwrap_or(0),
            gb(r.sim.upload_bytes),
            gb(r.sim.readback_bytes),
            r.compiles,
            r.wall_seconds,
            r.gpu_seconds.unwrap_or(f64::NAN),
            d.map_or(0.0, |l| l.p50),
            d.map_or(0.0, |l| l.p99),
        );
        if tiers {
            let t = r.host_tier.unwrap_or_default();
            let _ = write!(
                out,
                " {:>11.3} {:>10} {:>10.3} {:>9} {:>9.3}",
                gb(Some(t.host_peak_bytes)),
                t.disk_writes,
                gb(Some(t.disk_write_bytes)),
                t.disk_reads,
                gb(Some(t.disk_read_bytes)),
            );
        }
        out.push('\n');
    }
    out
}
