//! The replayer's own overhead: the same dispatch sequence issued by a
//! minimal loop and by the replayer, with every access hitting.
//!
//! Setup (not timed): the trace's dispatches without its frees, a device
//! memory larger than everything, one warm pass through the replayer (every
//! buffer becomes resident, every pipeline compiled). Then, alternately,
//! `repetitions` times:
//! * **replayer**: the full replay loop over the same steps (cache lookup
//!   per binding, pipeline-store lookup per dispatch, latency histograms,
//!   residency bookkeeping); every access hits (checked);
//! * **raw**: a precomputed list of (pipeline, bind group, parameters)
//!   issued with the same batching (one compute pass per submission,
//!   parameters in a uniform ring): what any runtime must do at minimum.
//!
//! Both end with a wait for the device, so the times include the GPU work;
//! the overhead is `median(replayer) / median(raw) - 1`.

use std::time::Instant;

use cachescope_core::cache::{Cache, CacheConfig, DenseIndex};
use cachescope_core::policy::{EvictionPolicy, PolicyKind, PolicyVisitor};
use serde::{Deserialize, Serialize};

use super::device::AdapterReport;
use super::kernels::Mode;
use super::plan::{DispatchPlan, Step};
use super::replay::{Context, ReplayConfig};
use super::{GpuDevice, GpuError, GpuResult};
use crate::trace::DecodedTrace;

/// What the overhead benchmark measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    /// The adapter.
    pub adapter: AdapterReport,
    /// Policy of the replayer's cache.
    pub policy: String,
    /// Trace dispatches per pass.
    pub dispatches: u64,
    /// Compute dispatches per pass.
    pub kernels: u64,
    /// Seconds per replayer pass, in order.
    pub replayer_seconds: Vec<f64>,
    /// Seconds per raw pass, in order.
    pub raw_seconds: Vec<f64>,
    /// Median replayer pass.
    pub replayer_median: f64,
    /// Median raw pass.
    pub raw_median: f64,
    /// `replayer_median / raw_median - 1`.
    pub overhead: f64,
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => 0.0,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// Runs the overhead benchmark (first policy of `config`, LRU if none).
///
/// # Errors
/// As [`super::replay()`]; [`GpuError::Integrity`] when an access of a timed
/// replayer pass misses.
pub fn bench_overhead(trace: &DecodedTrace, config: &ReplayConfig, repetitions: usize) -> GpuResult<BenchReport> {
    let mut plan = DispatchPlan::build(trace)?;
    plan.steps.retain(|s| matches!(s, Step::Dispatch { .. }));
    let mut config = config.clone();
    config.verify = false;
    config.verify_resident_at_end = false;
    config.pipeline_memory_entries = 0;
    let gpu = GpuDevice::open(config.adapter.as_deref())?;
    let ctx = Context::new(trace, &plan, &gpu, &config)?;
    let policy = config.policies.first().copied().unwrap_or(PolicyKind::Lru);
    policy.visit(Bench { ctx: &ctx, repetitions: repetitions.max(1) })
}

struct Bench<'c, 'a> {
    ctx: &'c Context<'a>,
    repetitions: usize,
}

impl PolicyVisitor for Bench<'_, '_> {
    type Output = GpuResult<BenchReport>;

    fn visit<P: EvictionPolicy + 'static>(self, policy: P) -> Self::Output {
        let ctx = self.ctx;
        let name = policy.name().to_string();
        // Larger than any trace: nothing is evicted or refused.
        let capacity = u64::MAX / 4;
        let index = DenseIndex::with_keys(ctx.trace.unique_keys as usize);
        let mut cache = Cache::with_index(CacheConfig::with_capacity(capacity), policy, index)
            .map_err(|e| GpuError::Config(e.to_string()))?;
        let mut engine = ctx.engine()?;
        let mut pipes = ctx.pipelines()?;
        let steps = &ctx.plan.steps;
        ctx.run_steps(steps, &mut cache, &mut engine, &mut pipes)?;
        engine.finish()?;
        // The raw loop's work list, built before any timing.
        let mut work = Vec::new();
        for step in steps {
            if let Step::Dispatch { seq, pipeline, events } = step {
                let (pl, _) = pipes.get(&ctx.kernels, ctx.gpu, *pipeline)?;
                for i in events.clone() {
                    work.push((pl.clone(), ctx.trace.dense_ids[i], *seq as u32, Mode::of(ctx.trace.access[i])));
                }
            }
        }
        let (mut rep, mut raw) = (Vec::new(), Vec::new());
        let mut kernels = 0;
        for r in 0..self.repetitions {
            let mut time_replayer = |engine: &mut super::residency::Engine<'_>| -> GpuResult<f64> {
                let misses = cache.stats().misses;
                let k = engine.counters.kernels;
                let started = Instant::now();
                ctx.run_steps(steps, &mut cache, engine, &mut pipes)?;
                engine.finish()?;
                let t = started.elapsed().as_secs_f64();
                if cache.stats().misses != misses {
                    return Err(GpuError::Integrity("an access missed in a timed all-hit pass".into()));
                }
                kernels = engine.counters.kernels - k;
                Ok(t)
            };
            let time_raw = |engine: &mut super::residency::Engine<'_>| -> GpuResult<f64> {
                let started = Instant::now();
                engine.raw_kernels(&work)?;
                engine.finish()?;
                Ok(started.elapsed().as_secs_f64())
            };
            // Alternate which goes first, so drift hits both alike.
            if r % 2 == 0 {
                rep.push(time_replayer(&mut engine)?);
                raw.push(time_raw(&mut engine)?);
            } else {
                raw.push(time_raw(&mut engine)?);
                rep.push(time_replayer(&mut engine)?);
            }
        }
        let (replayer_median, raw_median) = (median(&rep), median(&raw));
        Ok(BenchReport {
            adapter: ctx.gpu.report.clone(),
            policy: name,
            dispatches: ctx.plan.dispatches,
            kernels,
            replayer_seconds: rep,
            raw_seconds: raw,
            replayer_median,
            raw_median,
            overhead: if raw_median > 0.0 { replayer_median / raw_median - 1.0 } else { 0.0 },
        })
    }
}
