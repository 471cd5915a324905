//! The replay loop: one run per (policy, device-memory size), each driving a
//! fresh core [`Cache`] over the trace exactly as the simulator's GPU model
//! does, and executing every decision on the device ([`Engine`]).
//!
//! Per binding of a dispatch, in trace order:
//! * **hit**: the kernel runs on the resident buffer; any entries the
//!   policy evicts during the hit are then executed (readback if dirty);
//! * **miss, stored**: the evictions are executed first (readback of dirty
//!   victims), then the buffer is allocated and, unless the access is
//!   write-only, uploaded; then the kernel runs;
//! * **miss, not stored** (too large, or refused by the policy): evictions,
//!   then the buffer is streamed through device memory.
//!
//! A `free` removes the buffer from the cache and drops it everywhere. The
//! counters the results report (uploads, readbacks, bytes) are counted by
//! the engine from the operations it performed, not copied from the cache,
//! so the tests' equality with `sim --gpu` checks the execution.
//!
//! With `--host-memory` each run also gets a bounded host tier (and a disk
//! tier with `--disk-tier`, [`HostTier`]): it changes where a miss's bytes
//! come from and where a readback's bytes go, never what the device cache
//! decides, so the device counts still equal `sim --gpu`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cachescope_core::cache::{Cache, CacheConfig, DenseIndex, Outcome};
use cachescope_core::policy::{Access, EvictionPolicy, PolicyKind, PolicyVisitor, Request};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::device::AdapterReport;
use super::host_tier::{HostTier, HostTierCounters};
use super::kernels::{KernelSet, Mode};
use super::pipelines::{PipelineCounters, Pipelines};
use super::plan::{DispatchPlan, Step};
use super::residency::{Engine, EngineConfig, EngineCounters, record};
use super::{GpuDevice, GpuError, GpuResult};
use crate::sim::{GpuTotals, RunResult, SizeSpec, resolve_capacity};
use crate::trace::DecodedTrace;

/// What to replay, and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayConfig {
    /// Policies, in output order.
    pub policies: Vec<PolicyKind>,
    /// Device-memory capacities, in output order (`512MiB`, `10%peak`).
    pub sizes: Vec<SizeSpec>,
    /// Substring of the adapter name (`None`: prefer a discrete GPU).
    pub adapter: Option<String>,
    /// Directory of the disk pipeline store (`None`: no disk store).
    pub pipeline_cache: Option<PathBuf>,
    /// Compiled pipelines kept in memory (0: no limit).
    pub pipeline_memory_entries: u64,
    /// Workgroup size of the kernel (the `WG` override).
    pub workgroup_size: u32,
    /// Words each kernel touches per chunk (0: every word).
    pub touch_cap: u32,
    /// Largest device buffer per chunk (`None`: the adapter's storage
    /// binding limit).
    pub max_chunk: Option<u64>,
    /// Kernels per submission.
    pub batch: usize,
    /// Check every readback against the CPU model of the kernel writes.
    pub verify: bool,
    /// After each run, read back every resident buffer and check it too.
    pub verify_resident_at_end: bool,
    /// Capacity of host memory for buffers' bytes (`None`: no limit, every
    /// buffer's bytes stay in host memory). Absent from results when unset,
    /// so results without it read as before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_memory: Option<SizeSpec>,
    /// Directory of the disk tier below host memory (needs `host_memory`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_tier: Option<PathBuf>,
}

impl Default for ReplayConfig {
    fn default() -> Self {
        ReplayConfig {
            policies: vec![PolicyKind::Lru],
            sizes: vec![SizeSpec::Absolute(512 << 20)],
            adapter: None,
            pipeline_cache: None,
            pipeline_memory_entries: 0,
            workgroup_size: 64,
            touch_cap: 1 << 16,
            max_chunk: None,
            batch: 512,
            verify: true,
            verify_resident_at_end: false,
            host_memory: None,
            disk_tier: None,
        }
    }
}

/// A latency distribution, in the dashboard's shape plus percentiles.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Samples.
    pub count: u64,
    /// Sum of the samples, seconds (from the histogram: within 0.1%).
    pub sum_seconds: f64,
    /// Median, seconds.
    pub p50: f64,
    /// 90th percentile, seconds.
    pub p90: f64,
    /// 99th percentile, seconds.
    pub p99: f64,
    /// 99.9th percentile, seconds.
    pub p999: f64,
    /// Largest sample, seconds.
    pub max: f64,
    /// `[le_seconds, cumulative_count]`, le = 1 us x 2^k.
    pub buckets: Vec<(f64, u64)>,
}

impl LatencySummary {
    /// Summarises a histogram of nanoseconds.
    pub fn of(h: &Histogram<u64>) -> LatencySummary {
        let s = |ns: u64| ns as f64 * 1e-9;
        let sum: u64 = h.iter_recorded().map(|v| v.value_iterated_to().saturating_mul(v.count_at_value())).sum();
        let empty = h.is_empty();
        let q = |x: f64| if empty { 0.0 } else { s(h.value_at_quantile(x)) };
        let mut buckets = Vec::new();
        let mut le = 1_000u64;
        loop {
            let c = if empty { 0 } else { h.count_between(0, le) };
            buckets.push((s(le), c));
            if c >= h.len() || le >= 1 << 47 {
                break;
            }
            le *= 2;
        }
        LatencySummary {
            count: h.len(),
            sum_seconds: s(sum),
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
            p999: q(0.999),
            max: if empty { 0.0 } else { s(h.max()) },
            buckets,
        }
    }
}

/// One (policy, capacity) run on the device. Serialises with the fields of
/// the simulator's [`RunResult`] at top level (same names, same meaning)
/// plus the replay's own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayRun {
    /// The simulator's counters (`seconds` is the wall time of the run).
    #[serde(flatten)]
    pub sim: RunResult,
    /// Trace dispatches replayed.
    pub dispatches: u64,
    /// Accesses streamed because the cache would not hold the buffer.
    pub streamed: u64,
    /// Real pipeline compiles.
    pub compiles: u64,
    /// The pipeline layer's counters.
    pub pipelines: PipelineCounters,
    /// Compute dispatches issued (one per chunk per binding).
    pub kernels: u64,
    /// Queue submissions.
    pub submits: u64,
    /// Wall time of the run (the loop and the final wait), seconds.
    pub wall_seconds: f64,
    /// GPU time of the compute passes (timestamp queries), seconds; `None`
    /// without timestamp queries.
    pub gpu_seconds: Option<f64>,
    /// Readbacks checked against the CPU model.
    pub verified_readbacks: u64,
    /// Bytes checked.
    pub verified_bytes: u64,
    /// Resident buffers read back and checked after the run.
    pub verified_resident: u64,
    /// The host and disk tiers' counters (`disk_writes`, `disk_reads`, ...),
    /// at top level; absent without `--host-memory`.
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub host_tier: Option<HostTierCounters>,
    /// Latencies by kind: `dispatch`, `upload`, `readback`, `compile`, and
    /// with `--host-memory` `disk_write`, `disk_read`.
    pub latency: BTreeMap<String, LatencySummary>,
}

impl ReplayRun {
    /// Bytes moved between host and device.
    pub fn moved_bytes(&self) -> u64 {
        self.sim.moved_bytes()
    }
}

/// Everything a replay produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReplayOutput {
    /// The adapter.
    pub adapter: AdapterReport,
    /// One run per (policy, size), policies outer.
    pub runs: Vec<ReplayRun>,
    /// Dispatches in the trace (as replayed).
    pub dispatches: u64,
    /// Distinct pipelines.
    pub pipelines: u64,
}

/// Replays `trace` for every (policy, size) of `config`.
///
/// # Errors
/// See [`replay_with`].
pub fn replay(trace: &DecodedTrace, config: &ReplayConfig) -> GpuResult<ReplayOutput> {
    replay_with(trace, config, &mut |_, _| {})
}

/// Replays `trace` for every (policy, size) of `config`, calling `on_done`
/// with each finished run (so a caller can save it before a later run
/// fails).
///
/// # Errors
/// An unusable size or configuration, a trace that is not a dispatch trace
/// in the GPU view, no adapter (naming what to install), device errors
/// (validation, out of memory, device lost), a failed integrity check.
pub fn replay_with(
    trace: &DecodedTrace,
    config: &ReplayConfig,
    on_done: &mut dyn FnMut(&ReplayRun, &AdapterReport),
) -> GpuResult<ReplayOutput> {
    let plan = DispatchPlan::build(trace)?;
    if config.disk_tier.is_some() && config.host_memory.is_none() {
        return Err(GpuError::Config("a disk tier (--disk-tier) needs a host-memory limit (--host-memory)".into()));
    }
    let mut jobs = Vec::new();
    for &policy in &config.policies {
        for &size in &config.sizes {
            let capacity = resolve_capacity(size, trace, false).map_err(GpuError::Config)?;
            jobs.push((policy, size, capacity));
        }
    }
    let gpu = GpuDevice::open(config.adapter.as_deref())?;
    let ctx = Context::new(trace, &plan, &gpu, config)?;
    let host_capacity = config
        .host_memory
        .map(|h| resolve_capacity(h, trace, false).map_err(|e| GpuError::Config(format!("--host-memory: {e}"))))
        .transpose()?;
    let mut runs = Vec::new();
    for (policy, size, capacity) in jobs {
        let run = policy.visit(PolicyRun { ctx: &ctx, capacity, size, host_capacity })?;
        on_done(&run, &gpu.report);
        runs.push(run);
    }
    Ok(ReplayOutput {
        adapter: gpu.report.clone(),
        runs,
        dispatches: plan.dispatches,
        pipelines: plan.pipelines.len() as u64,
    })
}

/// What every run of one replay shares.
pub(crate) struct Context<'a> {
    pub(crate) trace: &'a DecodedTrace,
    pub(crate) plan: &'a DispatchPlan,
    pub(crate) gpu: &'a GpuDevice,
    pub(crate) config: &'a ReplayConfig,
    pub(crate) kernels: KernelSet,
    pub(crate) engine_config: EngineConfig,
    pub(crate) backend_id: String,
    /// Trace id of each dense buffer id.
    pub(crate) seeds: Vec<u64>,
    /// Trace size of each dense buffer id.
    pub(crate) sizes: Vec<u64>,
}

impl<'a> Context<'a> {
    pub(crate) fn new(
        trace: &'a DecodedTrace,
        plan: &'a DispatchPlan,
        gpu: &'a GpuDevice,
        config: &'a ReplayConfig,
    ) -> GpuResult<Context<'a>> {
        let limit = gpu.limits.max_storage_buffer_binding_size.min(gpu.limits.max_buffer_size);
        let max_chunk = config.max_chunk.unwrap_or(limit).min(limit) / 4 * 4;
        if max_chunk == 0 {
            return Err(GpuError::Config(format!("chunk size {:?} rounds down to 0 bytes", config.max_chunk)));
        }
        let wg = config.workgroup_size;
        if wg == 0
            || wg > gpu.limits.max_compute_workgroup_size_x
            || wg > gpu.limits.max_compute_invocations_per_workgroup
        {
            return Err(GpuError::Config(format!(
                "workgroup size {wg} is outside 1..={} on `{}`",
                gpu.limits.max_compute_workgroup_size_x.min(gpu.limits.max_compute_invocations_per_workgroup),
                gpu.report.name
            )));
        }
        let kernels = KernelSet::new(&gpu.device, wg);
        gpu.errors.check(|| "building the replay kernel".into())?;
        let n = trace.unique_keys as usize;
        let (mut seeds, mut sizes) = (vec![0u64; n], vec![0u64; n]);
        for i in 0..trace.len() {
            let k = trace.dense_ids[i] as usize;
            seeds[k] = trace.keys[i];
            if !trace.free_at(i) {
                sizes[k] = trace.sizes[i];
            }
        }
        Ok(Context {
            trace,
            plan,
            gpu,
            config,
            kernels,
            engine_config: EngineConfig {
                max_chunk,
                touch_cap: config.touch_cap,
                batch: config.batch,
                verify: config.verify,
            },
            backend_id: format!("wgpu30-vulkan:{}:{}", gpu.report.name, gpu.report.driver_info),
            seeds,
            sizes,
        })
    }

    pub(crate) fn engine(&self) -> GpuResult<Engine<'_>> {
        Engine::new(self.gpu, &self.kernels, self.engine_config, self.seeds.clone())
    }

    pub(crate) fn pipelines(&self) -> GpuResult<Pipelines> {
        Pipelines::new(
            self.gpu,
            &self.kernels,
            &self.plan.pipelines,
            &self.backend_id,
            self.config.pipeline_memory_entries,
            self.config.pipeline_cache.as_deref(),
        )
    }

    /// Runs `steps` (all of the plan's, or a filtered copy) through `cache`
    /// and `engine`. Returns (entries, bytes) removed by frees.
    pub(crate) fn run_steps<P: EvictionPolicy>(
        &self,
        steps: &[Step],
        cache: &mut Cache<P, DenseIndex>,
        engine: &mut Engine<'_>,
        pipes: &mut Pipelines,
    ) -> GpuResult<(u64, u64)> {
        let trace = self.trace;
        let mut freed = (0u64, 0u64);
        let mut evicted = Vec::new();
        for step in steps {
            match step {
                Step::Free(i) => {
                    let key = trace.dense_ids[*i];
                    if let Some(e) = cache.remove(u64::from(key)) {
                        freed.0 += 1;
                        freed.1 += e.size;
                    }
                    engine.free(key)?;
                }
                Step::Dispatch { seq, pipeline, events } => {
                    let started = Instant::now();
                    let (pl, compiled) = pipes.get(&self.kernels, self.gpu, *pipeline)?;
                    if let Some(took) = compiled {
                        record(&mut engine.hist.compile, took);
                    }
                    let salt = pipes.salt(*pipeline);
                    let seq32 = *seq as u32;
                    for i in events.clone() {
                        let key = trace.dense_ids[i];
                        let req = Request {
                            key: u64::from(key),
                            size: trace.sizes[i],
                            next_access: trace.next_access[i],
                            access: trace.access[i],
                        };
                        evicted.clear();
                        engine.note_access(key, i);
                        let outcome = cache.access_with(&req, |e| evicted.push(e));
                        let mode = Mode::of(req.access);
                        match outcome {
                            Outcome::Hit => {
                                engine.kernel(key, &pl, salt, seq32, mode)?;
                                engine.evict(&evicted)?;
                            }
                            Outcome::Inserted => {
                                engine.evict(&evicted)?;
                                engine.make_resident(key, req.size, req.access != Access::Write)?;
                                engine.kernel(key, &pl, salt, seq32, mode)?;
                            }
                            Outcome::Rejected => {
                                engine.evict(&evicted)?;
                                engine.stream(key, req.size, &pl, salt, seq32, mode)?;
                            }
                        }
                    }
                    record(&mut engine.hist.dispatch, started.elapsed());
                    self.gpu.errors.check(|| format!("dispatch seq {seq}"))?;
                }
            }
        }
        Ok(freed)
    }
}

struct PolicyRun<'c, 'a> {
    ctx: &'c Context<'a>,
    capacity: u64,
    size: SizeSpec,
    /// Host-memory capacity in bytes (`None`: unbounded, no host tier).
    host_capacity: Option<u64>,
}

/// Distinguishes the disk-tier directories of the runs of one process.
static DISK_RUNS: AtomicU64 = AtomicU64::new(0);

impl PolicyVisitor for PolicyRun<'_, '_> {
    type Output = GpuResult<ReplayRun>;

    fn visit<P: EvictionPolicy + 'static>(self, policy: P) -> Self::Output {
        let ctx = self.ctx;
        let name = policy.name();
        let index = DenseIndex::with_keys(ctx.trace.unique_keys as usize);
        let mut cache = Cache::with_index(CacheConfig::with_capacity(self.capacity), policy, index)
            .map_err(|e| GpuError::Config(e.to_string()))?;
        let mut engine = ctx.engine()?;
        // The device stays `cache` above, a plain `Cache` driven exactly as
        // `sim --gpu` drives it; the levels below it are a core
        // `TieredCache` inside `HostTier` (see host_tier.rs for why).
        if let Some(host_bytes) = self.host_capacity {
            // One scratch directory per run (created at its first write).
            let disk_dir = ctx.config.disk_tier.as_ref().map(|d| {
                let n = DISK_RUNS.fetch_add(1, Ordering::Relaxed);
                d.join(format!("cachescope-{}-{n}-{name}", std::process::id()))
            });
            let track_lineage = ctx.config.verify || ctx.config.verify_resident_at_end;
            let keys = ctx.trace.unique_keys as usize;
            engine.set_host_tier(HostTier::new(host_bytes, disk_dir, keys, &ctx.trace.next_access, track_lineage)?);
        }
        let mut pipes = ctx.pipelines()?;
        let started = Instant::now();
        let freed = ctx.run_steps(&ctx.plan.steps, &mut cache, &mut engine, &mut pipes)?;
        engine.finish()?;
        let wall = started.elapsed();
        pipes.flush()?;
        let verified_resident =
            if ctx.config.verify_resident_at_end { engine.verify_resident(&ctx.sizes)? } else { 0 };
        let mut stats = cache.stats();
        stats.evictions -= freed.0;
        stats.evicted_bytes -= freed.1;
        let mut run = build_run(
            name,
            self.capacity,
            self.size,
            &stats,
            &engine.counters,
            &engine.hist,
            &pipes,
            wall,
            ctx,
            verified_resident,
        );
        if let Some(tier) = engine.host_tier() {
            run.host_tier = Some(tier.counters);
            run.latency.insert("disk_write".to_string(), LatencySummary::of(&tier.disk_write_hist));
            run.latency.insert("disk_read".to_string(), LatencySummary::of(&tier.disk_read_hist));
        }
        Ok(run)
    }
}

#[expect(clippy::too_many_arguments, reason = "one call site, all parts of one run")]
fn build_run(
    policy: &str,
    capacity: u64,
    size: SizeSpec,
    stats: &cachescope_core::stats::CacheStats,
    c: &EngineCounters,
    hist: &super::residency::Histograms,
    pipes: &Pipelines,
    wall: Duration,
    ctx: &Context<'_>,
    verified_resident: u64,
) -> ReplayRun {
    let wall_seconds = wall.as_secs_f64();
    let gpu = GpuTotals {
        uploads: c.uploads,
        upload_bytes: c.upload_bytes,
        readbacks: c.readbacks,
        readback_bytes: c.readback_bytes,
    };
    let sim = RunResult::from_counters(policy, capacity, size.to_string(), false, stats, Some(gpu), wall_seconds);
    let mut latency = BTreeMap::new();
    latency.insert("dispatch".to_string(), LatencySummary::of(&hist.dispatch));
    latency.insert("upload".to_string(), LatencySummary::of(&hist.upload));
    latency.insert("readback".to_string(), LatencySummary::of(&hist.readback));
    latency.insert("compile".to_string(), LatencySummary::of(&hist.compile));
    ReplayRun {
        sim,
        dispatches: ctx.plan.dispatches,
        streamed: c.streamed,
        compiles: pipes.counters.compiles,
        pipelines: pipes.counters,
        kernels: c.kernels,
        submits: c.submits,
        wall_seconds,
        gpu_seconds: ctx.gpu.report.timestamp_query.then_some(c.gpu_ns as f64 * 1e-9),
        verified_readbacks: c.verified,
        verified_bytes: c.verified_bytes,
        verified_resident,
        host_tier: None,
        latency,
    }
}
