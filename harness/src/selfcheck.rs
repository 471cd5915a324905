//! `cachescope selfcheck`: drives every cache of the core on a small seeded
//! workload, checks each one's invariants, and reports its counters.
//!
//! It is the smoke test a user runs after installing, and the default job of
//! `cargo run --release`: fast (well under a second), deterministic (the
//! same seed prints the same counters), and a failed invariant is an error.

use std::sync::Arc;

use anyhow::{Context, Result, ensure};
use cachescope_core::cache::Cache;
use cachescope_core::hints::HotPathHints;
use cachescope_core::pipeline::{
    DiskPipelineStore, DiskStoreConfig, MemoryPipelineStore, MemoryStoreConfig, PipelineCacheKey, PipelineCacheStore,
    PipelineFeatureFlags,
};
use cachescope_core::policy::{Access, PolicyKind, Request};
use cachescope_core::stats::CacheStats;
use cachescope_core::tiered::{MoveKind, PromotionRule, TierConfig, TieredCache, TieredConfig};
use cachescope_core::tuner::{
    AdapterLimits, CandidateOptions, ProgramKey, SyntheticTimer, Tuner, TunerConfig, TunerStore, candidates,
};
use serde::Serialize;

use crate::workload::{SyntheticRequest, zipf_requests};

/// Parameters of the self-check workload.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct SelfcheckConfig {
    /// Seed of the request stream.
    pub seed: u64,
    /// Requests to replay.
    pub requests: usize,
    /// Distinct objects.
    pub keys: usize,
    /// Zipf skew.
    pub alpha: f64,
}

impl Default for SelfcheckConfig {
    fn default() -> Self {
        SelfcheckConfig { seed: 42, requests: 200_000, keys: 20_000, alpha: 0.9 }
    }
}

/// One line of the report: which cache, configured how, and its counters.
#[derive(Debug, Clone, Serialize)]
pub struct SelfcheckRow {
    /// Which cache (`cache`, `tiered`, ...).
    pub cache: String,
    /// Policy or variant.
    pub policy: String,
    /// Capacity in its units (bytes unless said otherwise).
    pub capacity: u64,
    /// The counters.
    pub stats: CacheStats,
    /// Extra figures specific to this cache, as (name, value).
    pub extra: Vec<(String, u64)>,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct SelfcheckReport {
    /// The workload it ran.
    pub config: SelfcheckConfig,
    /// Distinct bytes in the workload.
    pub unique_bytes: u64,
    /// One row per cache and policy.
    pub rows: Vec<SelfcheckRow>,
}

/// Runs the self-check.
///
/// # Errors
/// A bad configuration, or a broken invariant in any cache (a bug).
pub fn run(config: SelfcheckConfig) -> Result<SelfcheckReport> {
    let reqs = zipf_requests(config.seed, config.requests, config.keys, config.alpha, 64, 64 * 1024)
        .map_err(anyhow::Error::msg)
        .context("selfcheck workload")?;
    let unique_bytes = unique_bytes(&reqs);
    let mut rows = Vec::new();
    let next = next_accesses(&reqs);
    for &kind in PolicyKind::ALL {
        rows.push(check_cache(kind, unique_bytes / 10, &reqs, &next)?);
    }
    rows.push(check_tiered(unique_bytes, &reqs)?);
    let scratch = tempfile::tempdir().context("creating a scratch directory for the disk stores")?;
    rows.extend(check_pipeline_stores(&reqs, scratch.path())?);
    rows.push(check_hints(&reqs)?);
    rows.push(check_tuner(scratch.path())?);
    Ok(SelfcheckReport { config, unique_bytes, rows })
}

fn unique_bytes(reqs: &[SyntheticRequest]) -> u64 {
    let mut seen = std::collections::HashMap::new();
    for r in reqs {
        seen.insert(r.key, r.size_bytes);
    }
    seen.values().sum()
}

/// Index of each request's next request for the same key (clairvoyant
/// policies read it), by one reverse pass.
fn next_accesses(reqs: &[SyntheticRequest]) -> Vec<u64> {
    let mut seen = std::collections::HashMap::new();
    let mut next = vec![Request::NEVER; reqs.len()];
    for (i, r) in reqs.iter().enumerate().rev() {
        if let Some(j) = seen.insert(r.key, i as u64) {
            next[i] = j;
        }
    }
    next
}

fn check_cache(kind: PolicyKind, capacity: u64, reqs: &[SyntheticRequest], next: &[u64]) -> Result<SelfcheckRow> {
    let mut cache = Cache::new(capacity, kind.build())?;
    let mut reported = 0u64;
    for (r, &next_access) in reqs.iter().zip(next) {
        let req = Request { next_access, ..Request::new(r.key, r.size_bytes) };
        cache.access_with(&req, |_| reported += 1);
    }
    cache.check_invariants().map_err(anyhow::Error::msg).with_context(|| format!("{kind} cache invariant"))?;
    let stats = cache.stats();
    ensure!(stats.evictions == reported, "{kind}: {} evictions counted, {reported} reported", stats.evictions);
    ensure!(stats.insertions == stats.resident_entries + stats.evictions, "{kind}: insertions do not balance");
    Ok(SelfcheckRow { cache: "cache".into(), policy: kind.name().into(), capacity, stats, extra: vec![] })
}

/// Host + device tiers; every request is a kernel access that needs its
/// buffer in device memory, and every fourth one writes it.
fn check_tiered(unique_bytes: u64, reqs: &[SyntheticRequest]) -> Result<SelfcheckRow> {
    let device_bytes = unique_bytes / 20;
    let mut tiered = TieredCache::new(TieredConfig {
        tiers: vec![
            TierConfig { name: "host".into(), capacity_bytes: unique_bytes, policy: PolicyKind::Lru },
            TierConfig { name: "device".into(), capacity_bytes: device_bytes, policy: PolicyKind::Lru },
        ],
        promotion: PromotionRule::OnAccess,
    })?;
    let (mut uploads, mut upload_bytes, mut readbacks, mut readback_bytes, mut lost) = (0, 0, 0, 0, 0);
    let mut on_move = |m: cachescope_core::tiered::TierMove| match m.kind {
        MoveKind::Promote => {
            uploads += 1;
            upload_bytes += m.size_bytes;
        }
        MoveKind::Demote if m.dirty => {
            readbacks += 1;
            readback_bytes += m.size_bytes;
        }
        MoveKind::Drop => lost += 1,
        _ => {}
    };
    let mut stats = CacheStats::default();
    for (i, r) in reqs.iter().enumerate() {
        if tiered.tier_of(r.key).is_none() {
            tiered.insert(r.key, r.size_bytes, &mut on_move)?;
        }
        let access = if i % 4 == 0 { Access::ReadWrite } else { Access::Read };
        let a = tiered.access(r.key, access, &mut on_move)?;
        stats.record_request(r.size_bytes, a.found_in == 1);
    }
    tiered.check_invariants().map_err(anyhow::Error::msg).context("tiered cache invariant")?;
    ensure!(lost == 0, "the host tier holds every byte, yet {lost} entries were dropped");
    let device = &tiered.stats().tiers[1];
    stats.resident_bytes = device.cache.resident_bytes;
    stats.resident_entries = device.cache.resident_entries;
    stats.evictions = device.cache.evictions;
    stats.evicted_bytes = device.cache.evicted_bytes;
    let extra = vec![
        ("uploads".into(), uploads),
        ("upload_bytes".into(), upload_bytes),
        ("readbacks".into(), readbacks),
        ("readback_bytes".into(), readback_bytes),
    ];
    Ok(SelfcheckRow { cache: "tiered host+device".into(), policy: "lru".into(), capacity: device_bytes, stats, extra })
}

/// A pipeline key per distinct "kernel": the workload's keys folded onto
/// 2,000 pipelines, each with a blob the size of a small compiled binary.
fn pipeline_key(key: u64) -> (PipelineCacheKey, usize) {
    let id = key % 2_000;
    let shader = *blake3::hash(&id.to_le_bytes()).as_bytes();
    let k = PipelineCacheKey::new(shader, [0; 32], 0, [64, 1, 1], PipelineFeatureFlags::empty(), "selfcheck");
    (k, 256 + (id as usize * 37) % 4096)
}

fn blob(key: &PipelineCacheKey, len: usize) -> Arc<[u8]> {
    let seed = key.digest().0;
    (0..len).map(|i| seed[i % 32] ^ (i as u8)).collect()
}

/// The sharded in-memory store under the workload (get, put on miss), then
/// the disk store: a batch of puts, a reopen, and every blob read back equal.
fn check_pipeline_stores(reqs: &[SyntheticRequest], scratch: &std::path::Path) -> Result<Vec<SelfcheckRow>> {
    let config = MemoryStoreConfig { shards: 4, max_entries_per_shard: 64, max_bytes_per_shard: 512 << 10 };
    let memory = MemoryPipelineStore::new(config)?;
    for r in reqs {
        let (key, len) = pipeline_key(r.key);
        if memory.get(&key)?.is_none() {
            memory.put(&key, blob(&key, len))?;
        }
    }
    memory.check_invariants().map_err(anyhow::Error::msg).context("pipeline memory store invariant")?;
    let m = memory.stats();
    let capacity = config.max_bytes_per_shard * config.shards as u64;
    let mut rows = vec![SelfcheckRow {
        cache: "pipeline memory".into(),
        policy: "lru".into(),
        capacity,
        stats: m.as_cache_stats(),
        extra: vec![("rejected_puts".into(), m.rejected_puts)],
    }];

    let root = scratch.join("pipelines");
    let distinct: Vec<(PipelineCacheKey, usize)> = (0..500u64).map(pipeline_key).collect();
    {
        let disk = DiskPipelineStore::open(&root, DiskStoreConfig::default())?;
        for (key, len) in &distinct {
            disk.put(key, blob(key, *len))?;
        }
        disk.flush()?;
    }
    let disk = DiskPipelineStore::open(&root, DiskStoreConfig::default())?;
    for (key, len) in &distinct {
        let got = disk.get(key)?.with_context(|| format!("disk store lost {} after a reopen", key.digest()))?;
        ensure!(*got == *blob(key, *len), "disk store returned different bytes for {}", key.digest());
    }
    let d = disk.stats();
    ensure!(d.corrupt == 0, "{} corrupt blobs in a fresh store", d.corrupt);
    rows.push(SelfcheckRow {
        cache: "pipeline disk".into(),
        policy: "-".into(),
        capacity: disk.total_bytes()?,
        stats: d.as_cache_stats(),
        extra: vec![("entries".into(), disk.entries()?)],
    });
    Ok(rows)
}

/// Every request is a dispatch of one of 500 regions, timed by its size.
fn check_hints(reqs: &[SyntheticRequest]) -> Result<SelfcheckRow> {
    let hints = HotPathHints::with_capacity(128);
    for r in reqs {
        hints.record(&format!("region-{}", r.key % 500), r.size_bytes * 10, r.size_bytes);
    }
    let hot = hints.hottest(usize::MAX).iter().filter(|(name, _)| hints.is_hot(name)).count() as u64;
    ensure!(hints.len() <= 128, "hints table holds {} regions, capacity 128", hints.len());
    Ok(SelfcheckRow {
        cache: "hot-path hints".into(),
        policy: "lru".into(),
        capacity: 128,
        stats: hints.stats(),
        extra: vec![("hot_regions".into(), hot)],
    })
}

/// Three kernels tuned on a synthetic timer whose best size is known, the
/// decisions saved, reloaded, and reused with zero measurements.
fn check_tuner(scratch: &std::path::Path) -> Result<SelfcheckRow> {
    let path = scratch.join("tuner.toml");
    let sizes = candidates(&AdapterLimits::WEBGPU_DEFAULT, &CandidateOptions::default())?;
    let tuner = Tuner::new(TunerConfig::default())?;
    // Cost is lowest at 128 invocations; 5% noise.
    let cost = |wg: [u32; 3]| {
        let n = f64::from(wg[0] * wg[1] * wg[2]);
        (10_000.0 * (1.0 + (n / 128.0).log2().abs())) as u64
    };
    let (mut decisions, mut wrong) = (0, 0);
    let mut store = TunerStore::open(&path)?;
    let mut timer = SyntheticTimer::new(7, 0.05, cost);
    for kernel in 0..3u64 {
        let key = ProgramKey::new(b"selfcheck-kernel", &[kernel, 1024]);
        let tuned = tuner.tune_cached(&mut store, "selfcheck-adapter", &key, &sizes, &mut timer)?;
        decisions += 1;
        wrong += u64::from(tuned.decision.workgroup != [128, 1, 1]);
    }
    store.save()?;
    let first = timer.measurements();
    let mut store = TunerStore::open(&path)?;
    let mut timer = SyntheticTimer::new(8, 0.05, cost);
    for kernel in 0..3u64 {
        let key = ProgramKey::new(b"selfcheck-kernel", &[kernel, 1024]);
        ensure!(
            tuner.tune_cached(&mut store, "selfcheck-adapter", &key, &sizes, &mut timer)?.reused(),
            "decision not reused"
        );
    }
    ensure!(timer.measurements() == 0, "a reloaded decision was measured again");
    let stats = CacheStats { requests: 2 * decisions, hits: decisions, misses: decisions, ..CacheStats::default() };
    Ok(SelfcheckRow {
        cache: "tuner".into(),
        policy: "mann-whitney".into(),
        capacity: sizes.len() as u64,
        stats,
        extra: vec![("measurements".into(), first), ("not_best".into(), wrong)],
    })
}

/// The report as a fixed-width table.
pub fn render(report: &SelfcheckReport) -> String {
    use std::fmt::Write;
    let c = &report.config;
    let mut out = format!(
        "cachescope selfcheck: {} requests, {} keys, zipf alpha {}, seed {}, {} unique bytes\n\n",
        c.requests, c.keys, c.alpha, c.seed, report.unique_bytes
    );
    let _ = writeln!(
        out,
        "{:<20} {:<12} {:>12} {:>10} {:>10} {:>10} {:>10}  extra",
        "cache", "policy", "capacity", "requests", "miss_ratio", "byte_miss", "evictions"
    );
    for r in &report.rows {
        let extra: Vec<String> = r.extra.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(
            out,
            "{:<20} {:<12} {:>12} {:>10} {:>10.4} {:>10.4} {:>10}  {}",
            r.cache,
            r.policy,
            r.capacity,
            r.stats.requests,
            r.stats.miss_ratio(),
            r.stats.byte_miss_ratio(),
            r.stats.evictions,
            extra.join(" ")
        );
    }
    out.push_str("\nall invariants held\n");
    out
}
