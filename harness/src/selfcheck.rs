//! `cachescope selfcheck`: drives every cache of the core on a small seeded
//! workload, checks each one's invariants, and reports its counters.
//!
//! It is the smoke test a user runs after installing, and the default job of
//! `cargo run --release`: fast (well under a second), deterministic (the
//! same seed prints the same counters), and a failed invariant is an error.

use anyhow::{Context, Result, ensure};
use cachescope_core::cache::Cache;
use cachescope_core::policy::{Access, PolicyKind, Request};
use cachescope_core::stats::CacheStats;
use cachescope_core::tiered::{MoveKind, PromotionRule, TierConfig, TieredCache, TieredConfig};
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
    for &kind in PolicyKind::ALL {
        rows.push(check_cache(kind, unique_bytes / 10, &reqs)?);
    }
    rows.push(check_tiered(unique_bytes, &reqs)?);
    Ok(SelfcheckReport { config, unique_bytes, rows })
}

fn unique_bytes(reqs: &[SyntheticRequest]) -> u64 {
    let mut seen = std::collections::HashMap::new();
    for r in reqs {
        seen.insert(r.key, r.size_bytes);
    }
    seen.values().sum()
}

fn check_cache(kind: PolicyKind, capacity: u64, reqs: &[SyntheticRequest]) -> Result<SelfcheckRow> {
    let mut cache = Cache::new(capacity, kind.build())?;
    let mut reported = 0u64;
    for r in reqs {
        cache.access_with(&Request::new(r.key, r.size_bytes), |_| reported += 1);
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
        "{:<20} {:<7} {:>12} {:>10} {:>10} {:>10} {:>10}  extra",
        "cache", "policy", "capacity", "requests", "miss_ratio", "byte_miss", "evictions"
    );
    for r in &report.rows {
        let extra: Vec<String> = r.extra.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(
            out,
            "{:<20} {:<7} {:>12} {:>10} {:>10.4} {:>10.4} {:>10}  {}",
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
