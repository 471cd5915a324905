//! The CPU simulator: replays one decoded trace through policies x
//! capacities, in parallel, exactly.
//!
//! Every (policy, capacity) pair is one *run*: a fresh [`Cache`] fed the
//! whole trace. Runs share one [`DecodedTrace`] (decoded once, keys mapped to
//! dense ids once) and are spread over worker threads that pull the next run
//! from a shared counter, longest expected runs first, so a sweep of many
//! runs keeps every core busy to the end without copying the trace.
//!
//! A single run whose capacity is known without the trace
//! ([`simulate_streamed`]) skips the decoded copy: the file is decoded in
//! batches straight into the cache (a hash index on the raw keys, which
//! holds only the resident keys and stays in cache), while a second thread
//! hashes the file and counts its unique keys and bytes for the report
//! from the misses the simulating thread hands it (the file is decoded once).
//!
//! Two models:
//! * the **request model** (default): every request is a lookup; results are
//!   comparable with libCacheSim (`semantics.md`);
//! * the **GPU model** (`gpu`): a dispatch trace as a GPU runtime sees it. A
//!   `free` removes the buffer (no cost). A miss on a write-only access
//!   allocates without an upload; any other miss uploads the buffer's bytes.
//!   Evicting a buffer written since it was loaded costs a readback of its
//!   bytes; evicting a clean one costs nothing. The GPU replayer implements
//!   the same model with real copies.

pub mod mrc;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, mpsc};
use std::time::Instant;

use std::path::Path;

use cachescope_core::cache::{Cache, CacheConfig, DenseIndex, KeyIndex, Outcome};
use cachescope_core::policy::{Access, EvictionPolicy, PolicyKind, PolicyVisitor, Request};
use cachescope_core::stats::CacheStats;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result as TraceResult};
use crate::trace::{
    Columns, DecodedTrace, EventBatch, EventSource, FileHasher, LoadOptions, SharedHasher, StreamIds, TraceFormat,
    TraceIdentity, TraceReader,
};

/// How a capacity is given on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum SizeSpec {
    /// A fraction of the trace's unique bytes (unique keys for object caches).
    FractionOfUnique(f64),
    /// A fraction of the dispatch trace's peak live bytes (`10%peak`).
    FractionOfPeak(f64),
    /// Bytes (or objects for an object cache).
    Absolute(u64),
}

impl std::str::FromStr for SizeSpec {
    type Err = String;

    /// `0.1%`, `10%peak`, `4096`, `512KiB`, `64MiB`, `2GiB`, `1GB`.
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let pct = |num: &str| -> Result<f64, String> {
            let v: f64 = num.trim().parse().map_err(|_| format!("size `{s}`: `{num}` is not a number"))?;
            if !(v > 0.0 && v <= 100.0) {
                return Err(format!("size `{s}`: a percentage must be in (0, 100]"));
            }
            Ok(v / 100.0)
        };
        if let Some(num) = t.strip_suffix("%peak") {
            return pct(num).map(SizeSpec::FractionOfPeak);
        }
        if let Some(num) = t.strip_suffix('%') {
            return pct(num).map(SizeSpec::FractionOfUnique);
        }
        parse_bytes(t).map(SizeSpec::Absolute).map_err(|e| format!("size `{s}`: {e}"))
    }
}

impl std::fmt::Display for SizeSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SizeSpec::FractionOfUnique(x) => write!(f, "{}%", x * 100.0),
            SizeSpec::FractionOfPeak(x) => write!(f, "{}%peak", x * 100.0),
            SizeSpec::Absolute(n) => write!(f, "{n}"),
        }
    }
}

/// Parses `4096`, `512KiB`, `64MiB`, `2GiB`, `1KB`, `1MB`, `1GB` into a count.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("`{t}` is not a whole number with an optional unit"))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        other => return Err(format!("unknown unit `{other}` (use B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)")),
    };
    n.checked_mul(mult).ok_or_else(|| format!("`{t}` overflows 64 bits"))
}

/// Leaves the first requests out of the counts (they still warm the cache).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum Warmup {
    /// Count everything.
    #[default]
    None,
    /// Skip this many requests.
    Requests(u64),
    /// Skip this fraction of the requests.
    Fraction(f64),
}

impl std::str::FromStr for Warmup {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if let Some(num) = t.strip_suffix('%') {
            let v: f64 = num.parse().map_err(|_| format!("warmup `{s}`: `{num}` is not a number"))?;
            if !(0.0..100.0).contains(&v) {
                return Err(format!("warmup `{s}`: a percentage must be in [0, 100)"));
            }
            return Ok(Warmup::Fraction(v / 100.0));
        }
        t.parse().map(Warmup::Requests).map_err(|_| format!("warmup `{s}`: expected N or P%"))
    }
}

/// What to simulate.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SimConfig {
    /// Policies, in output order.
    pub policies: Vec<PolicyKind>,
    /// Capacities, in output order.
    pub sizes: Vec<SizeSpec>,
    /// Object cache: every object has size 1 (the trace must be loaded so).
    pub objects: bool,
    /// The GPU model (uploads, readbacks, frees).
    pub gpu: bool,
    /// Requests left out of the counts.
    pub warmup: Warmup,
    /// Worker threads (0: all cores).
    pub threads: usize,
}

/// The counters of one run, in the `runs` array of the results file. Field
/// names are a contract (scripts depend on them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// Policy name.
    pub policy: String,
    /// Capacity in units (bytes, or objects when `objects`).
    pub capacity: u64,
    /// How the capacity was asked for (`1%`, `64MiB`, ...).
    pub size: String,
    /// Object cache (every object has size 1).
    pub objects: bool,
    /// Requests counted (after warm-up).
    pub requests: u64,
    /// Requests that hit.
    pub hits: u64,
    /// Requests that missed.
    pub misses: u64,
    /// Bytes requested.
    pub requested_bytes: u64,
    /// Bytes of the requests that missed.
    pub missed_bytes: u64,
    /// misses / requests.
    pub miss_ratio: f64,
    /// missed bytes / requested bytes.
    pub byte_miss_ratio: f64,
    /// Entries evicted (capacity evictions).
    pub evictions: u64,
    /// Bytes evicted.
    pub evicted_bytes: u64,
    /// GPU model: misses that uploaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uploads: Option<u64>,
    /// GPU model: bytes uploaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_bytes: Option<u64>,
    /// GPU model: dirty evictions read back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readbacks: Option<u64>,
    /// GPU model: bytes read back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readback_bytes: Option<u64>,
    /// Wall time of this run alone, in seconds.
    pub seconds: f64,
    /// Repeated wall-time samples of this run, in seconds (`cachescope
    /// bench`: one per repetition; `seconds` is then their median). Empty
    /// for a single run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seconds_samples: Vec<f64>,
}

impl RunResult {
    /// Bytes moved between host and device (GPU model), else 0.
    pub fn moved_bytes(&self) -> u64 {
        self.upload_bytes.unwrap_or(0) + self.readback_bytes.unwrap_or(0)
    }
}

/// One (policy, capacity) pair to run.
#[derive(Debug, Clone, Copy)]
struct Job {
    policy: PolicyKind,
    size: SizeSpec,
    capacity: u64,
}

/// Resolves sizes against the trace; fails before any run starts if one is
/// unusable, naming it.
pub fn resolve_capacity(size: SizeSpec, trace: &DecodedTrace, objects: bool) -> Result<u64, String> {
    let (name, base, frac) = match size {
        SizeSpec::Absolute(0) => return Err(format!("size `{size}`: a capacity must be at least 1")),
        SizeSpec::Absolute(n) => return Ok(n),
        SizeSpec::FractionOfUnique(f) if objects => ("unique keys", trace.unique_keys, f),
        SizeSpec::FractionOfUnique(f) => ("unique bytes", trace.unique_bytes, f),
        SizeSpec::FractionOfPeak(f) => match trace.peak_live_bytes {
            Some(p) if !objects => ("peak live bytes", p, f),
            _ => return Err(format!("size `{size}`: `%peak` needs a dispatch trace and a byte cache")),
        },
    };
    let cap = (frac * base as f64).floor() as u64;
    if cap == 0 {
        return Err(format!("size `{size}` of {base} {name} rounds down to a capacity of 0"));
    }
    Ok(cap)
}

/// Whether a policy reads [`Request::next_access`] (the clairvoyant ones):
/// only then does the trace layer need its reverse pass.
fn reads_next_access(policy: PolicyKind) -> bool {
    matches!(policy, PolicyKind::Belady | PolicyKind::BeladyCost)
}

/// The columns of the decoded trace that [`simulate`] reads for `config`:
/// no raw keys (runs use dense ids), next accesses only for a clairvoyant
/// policy.
pub fn columns_for(config: &SimConfig) -> Columns {
    Columns { events: true, keys: false, next_access: config.policies.iter().any(|&p| reads_next_access(p)) }
}

/// Rough cost of a run of `policy` relative to LRU's, measured on a Zipf
/// trace; [`simulate`] starts the longest runs first so that no core is
/// left with a long run alone at the end.
fn expected_cost(policy: PolicyKind) -> u32 {
    match policy {
        PolicyKind::Lru | PolicyKind::Fifo | PolicyKind::Clock | PolicyKind::Sieve | PolicyKind::GpuCost => 1,
        PolicyKind::Lfu => 2,
        PolicyKind::Arc | PolicyKind::TwoQ => 3,
        PolicyKind::S3Fifo | PolicyKind::Gdsf | PolicyKind::WTinyLfu => 4,
        PolicyKind::Lirs | PolicyKind::Belady | PolicyKind::BeladyCost => 5,
    }
}

/// Runs every (policy, size) of `config` over `trace`, in parallel.
/// `on_done` sees each run as it finishes (for incremental saving and
/// progress); the returned runs are in config order (policies outer).
///
/// # Errors
/// An unusable size or configuration, before anything runs.
pub fn simulate(
    trace: &DecodedTrace,
    config: &SimConfig,
    on_done: &(dyn Fn(&RunResult) + Sync),
) -> Result<Vec<RunResult>, String> {
    simulate_observed(trace, config, on_done, None)
}

/// Watches runs in progress (the live dashboard): called every
/// [`OBSERVE_EVERY`] requests of each run with the counters so far (after
/// warm-up), and once at the end. Never called per request, so watching
/// costs the request loop one branch per chunk.
pub trait SimObserver: Sync {
    /// A run's counters at request `position` (of `total`).
    fn progress(&self, run: &RunLabel, position: u64, total: u64, stats: &CacheStats, gpu: Option<GpuTotals>);
}

/// Requests between two [`SimObserver::progress`] calls.
pub const OBSERVE_EVERY: usize = 1 << 16;

/// Which run an observation is of.
#[derive(Debug, Clone)]
pub struct RunLabel {
    /// Policy name.
    pub policy: &'static str,
    /// The size as asked for (`1%`, `64MiB`).
    pub size: String,
    /// Capacity in units.
    pub capacity: u64,
}

/// GPU-model counters so far.
#[derive(Debug, Clone, Copy, Default)]
pub struct GpuTotals {
    /// Misses that uploaded.
    pub uploads: u64,
    /// Bytes uploaded.
    pub upload_bytes: u64,
    /// Dirty evictions read back.
    pub readbacks: u64,
    /// Bytes read back.
    pub readback_bytes: u64,
}

/// [`simulate`], with an observer of runs in progress.
///
/// # Errors
/// As [`simulate`].
pub fn simulate_observed(
    trace: &DecodedTrace,
    config: &SimConfig,
    on_done: &(dyn Fn(&RunResult) + Sync),
    observer: Option<&dyn SimObserver>,
) -> Result<Vec<RunResult>, String> {
    if config.gpu && trace.is_free.is_none() {
        return Err("the GPU model needs a dispatch trace loaded in GPU mode (frees and access kinds)".into());
    }
    let mut jobs = Vec::new();
    for &policy in &config.policies {
        for &size in &config.sizes {
            let capacity = resolve_capacity(size, trace, config.objects)?;
            jobs.push(Job { policy, size, capacity });
        }
    }
    let warmup = match config.warmup {
        Warmup::None => 0,
        Warmup::Requests(n) => n as usize,
        Warmup::Fraction(f) => (f * trace.len() as f64) as usize,
    };
    let threads = match config.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
    .min(jobs.len().max(1));
    if !trace.is_empty()
        && (trace.sizes.len() != trace.len()
            || (config.policies.iter().any(|&p| reads_next_access(p)) && trace.next_access.len() != trace.len()))
    {
        return Err("the trace was loaded without the columns this simulation reads (see sim::columns_for)".into());
    }
    // Longest runs first (stable: config order among equals).
    let mut order: Vec<usize> = (0..jobs.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(expected_cost(jobs[i].policy)));
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<RunResult>>> = Mutex::new(vec![None; jobs.len()]);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                while let Some(&i) = order.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let job = &jobs[i];
                    let run = run_job(trace, job, config, warmup, observer);
                    on_done(&run);
                    results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(run);
                }
            });
        }
    });
    Ok(results.into_inner().unwrap_or_else(|e| e.into_inner()).into_iter().flatten().collect())
}

fn run_job(
    trace: &DecodedTrace,
    job: &Job,
    config: &SimConfig,
    warmup: usize,
    observer: Option<&dyn SimObserver>,
) -> RunResult {
    let started = Instant::now();
    let label = RunLabel { policy: job.policy.name(), size: job.size.to_string(), capacity: job.capacity };
    let watch = observer.map(|o| Watch { observer: o, label });
    let replay = Replay { trace, capacity: job.capacity, gpu: config.gpu, warmup, watch: watch.as_ref() };
    let (stats, gpu) = job.policy.visit(replay);
    run_result(job, config, &stats, gpu, started.elapsed().as_secs_f64())
}

fn run_result(job: &Job, config: &SimConfig, stats: &CacheStats, gpu: Option<GpuCounters>, seconds: f64) -> RunResult {
    let gpu = gpu.map(|g| GpuTotals {
        uploads: g.uploads,
        upload_bytes: g.upload_bytes,
        readbacks: g.readbacks,
        readback_bytes: g.readback_bytes,
    });
    RunResult::from_counters(job.policy.name(), job.capacity, job.size.to_string(), config.objects, stats, gpu, seconds)
}

impl RunResult {
    /// A run's entry in the results file, from its counters (the simulator
    /// and the GPU replayer both build theirs here, so the shapes agree).
    pub fn from_counters(
        policy: &str,
        capacity: u64,
        size: String,
        objects: bool,
        stats: &CacheStats,
        gpu: Option<GpuTotals>,
        seconds: f64,
    ) -> RunResult {
        RunResult {
            policy: policy.into(),
            capacity,
            size,
            objects,
            requests: stats.requests,
            hits: stats.hits,
            misses: stats.misses,
            requested_bytes: stats.requested_bytes,
            missed_bytes: stats.missed_bytes,
            miss_ratio: stats.miss_ratio(),
            byte_miss_ratio: stats.byte_miss_ratio(),
            evictions: stats.evictions,
            evicted_bytes: stats.evicted_bytes,
            uploads: gpu.map(|g| g.uploads),
            upload_bytes: gpu.map(|g| g.upload_bytes),
            readbacks: gpu.map(|g| g.readbacks),
            readback_bytes: gpu.map(|g| g.readback_bytes),
            seconds,
            seconds_samples: Vec::new(),
        }
    }
}

/// One run, monomorphised for the concrete policy type: no virtual call
/// per request.
struct Replay<'a> {
    trace: &'a DecodedTrace,
    capacity: u64,
    gpu: bool,
    warmup: usize,
    watch: Option<&'a Watch<'a>>,
}

/// An observer and the run it watches.
struct Watch<'a> {
    observer: &'a dyn SimObserver,
    label: RunLabel,
}

impl Watch<'_> {
    fn report(&self, position: usize, total: usize, stats: &CacheStats, gpu: Option<GpuCounters>) {
        let gpu = gpu.map(|g| GpuTotals {
            uploads: g.uploads,
            upload_bytes: g.upload_bytes,
            readbacks: g.readbacks,
            readback_bytes: g.readback_bytes,
        });
        self.observer.progress(&self.label, position as u64, total as u64, stats, gpu);
    }
}

impl PolicyVisitor for Replay<'_> {
    type Output = (CacheStats, Option<GpuCounters>);

    fn visit<P: EvictionPolicy + 'static>(self, policy: P) -> Self::Output {
        // Capacity >= 1 was checked when resolving. Keys are the trace's
        // dense ids, so a vector index replaces the hash map.
        let index = DenseIndex::with_keys(self.trace.unique_keys as usize);
        let mut cache =
            Cache::with_index(CacheConfig::with_capacity(self.capacity), policy, index).expect("capacity checked");
        if self.gpu {
            replay_gpu(&mut cache, self.trace, self.warmup, self.watch)
        } else {
            (replay(&mut cache, self.trace, self.warmup, self.watch), None)
        }
    }
}

/// Requests warmed ahead at a time (see [`Cache::warm`]): enough misses to
/// overlap, few enough lines that they are still in L1 when used.
const WARM_GROUP: usize = 32;

/// Serves `keys` (with `sizes`) through `serve` in groups, each warmed
/// while the one before is served: the key index and ghost tables of dense
/// ids span the whole key space, so the lookups of the colder keys (the hot
/// ones have the low ids) miss the CPU caches; warming a group in one loop
/// of independent loads ([`Cache::warm`]) overlaps those misses.
#[inline]
fn serve_warmed<P: EvictionPolicy, I: KeyIndex, K: Copy + Into<u64>>(
    cache: &mut Cache<P, I>,
    keys: &[K],
    sizes: &[u64],
    mut serve: impl FnMut(&mut Cache<P, I>, u64, u64),
) {
    let (mut key_groups, mut size_groups) = (keys.chunks(WARM_GROUP), sizes.chunks(WARM_GROUP));
    let mut next = key_groups.next();
    while let (Some(group), Some(group_sizes)) = (next, size_groups.next()) {
        next = key_groups.next();
        if let Some(coming) = next {
            std::hint::black_box(coming.iter().fold(0, |acc, &key| acc ^ cache.warm(key.into())));
        }
        for (&key, &size) in group.iter().zip(group_sizes) {
            serve(cache, key.into(), size);
        }
    }
}

/// The request model: every request is a lookup.
fn replay<P: EvictionPolicy, I: KeyIndex>(
    cache: &mut Cache<P, I>,
    trace: &DecodedTrace,
    warmup: usize,
    watch: Option<&Watch<'_>>,
) -> CacheStats {
    let n = trace.len();
    let warmup = warmup.min(n);
    // Two loops instead of a warm-up test per request; next accesses only
    // where they were computed (clairvoyant policies).
    let feed = |cache: &mut Cache<P, I>, range: std::ops::Range<usize>| {
        let (ids, sizes) = (&trace.dense_ids[range.clone()], &trace.sizes[range.clone()]);
        if trace.next_access.is_empty() {
            serve_warmed(cache, ids, sizes, |cache, key, size| {
                cache.access(&Request { key, size, next_access: Request::NEVER, access: Access::Read });
            });
        } else {
            for ((&id, &size), &next_access) in ids.iter().zip(sizes).zip(&trace.next_access[range]) {
                cache.access(&Request { key: u64::from(id), size, next_access, access: Access::Read });
            }
        }
    };
    feed(cache, 0..warmup);
    let before = if warmup > 0 { cache.stats() } else { CacheStats::default() };
    match watch {
        None => feed(cache, warmup..n),
        Some(w) => {
            // In chunks, reporting after each: no per-request cost.
            for start in (warmup..n).step_by(OBSERVE_EVERY) {
                let end = (start + OBSERVE_EVERY).min(n);
                feed(cache, start..end);
                w.report(end, n, &cache.stats().since(&before), None);
            }
        }
    }
    cache.stats().since(&before)
}

#[derive(Debug, Default, Clone, Copy)]
struct GpuCounters {
    uploads: u64,
    upload_bytes: u64,
    readbacks: u64,
    readback_bytes: u64,
}

impl GpuCounters {
    fn since(&self, before: &GpuCounters) -> GpuCounters {
        GpuCounters {
            uploads: self.uploads - before.uploads,
            upload_bytes: self.upload_bytes - before.upload_bytes,
            readbacks: self.readbacks - before.readbacks,
            readback_bytes: self.readback_bytes - before.readback_bytes,
        }
    }
}

/// The GPU model (see the module docs). A buffer larger than device memory
/// cannot be resident: it is uploaded (and, if written, read back) on every
/// use, which is what a runtime that streams it would pay.
fn replay_gpu<P: EvictionPolicy, I: KeyIndex>(
    cache: &mut Cache<P, I>,
    trace: &DecodedTrace,
    warmup: usize,
    watch: Option<&Watch<'_>>,
) -> (CacheStats, Option<GpuCounters>) {
    let is_free = trace.is_free.as_deref().unwrap_or(&[]);
    let (mut g, mut g_before, mut before) = (GpuCounters::default(), GpuCounters::default(), CacheStats::default());
    // (entries, bytes) removed by frees, total and at the warm-up boundary.
    let (mut freed, mut freed_before) = ((0u64, 0u64), (0u64, 0u64));
    for i in 0..trace.len() {
        if i == warmup && warmup > 0 {
            before = cache.stats();
            g_before = g;
            freed_before = freed;
        }
        if let Some(w) = watch
            && i >= warmup
            && (i - warmup).is_multiple_of(OBSERVE_EVERY)
            && i > warmup
        {
            w.report(i, trace.len(), &cache.stats().since(&before), Some(g.since(&g_before)));
        }
        let key = u64::from(trace.dense_ids[i]);
        if is_free.get(i).copied().unwrap_or(false) {
            // A freed buffer is dead: its bytes are never needed again.
            if let Some(e) = cache.remove(key) {
                freed.0 += 1;
                freed.1 += e.size;
            }
            continue;
        }
        let next_access = trace.next_access.get(i).copied().unwrap_or(Request::NEVER);
        let req = Request { key, size: trace.sizes[i], next_access, access: trace.access[i] };
        let outcome = cache.access_with(&req, |e| {
            if e.dirty {
                g.readbacks += 1;
                g.readback_bytes += e.size;
            }
        });
        if !outcome.is_hit() {
            if req.access != Access::Write {
                g.uploads += 1;
                g.upload_bytes += req.size;
            }
            if outcome == Outcome::Rejected && req.access.writes() {
                // Streamed through: the written bytes go straight back.
                g.readbacks += 1;
                g.readback_bytes += req.size;
            }
        }
    }
    let mut stats = cache.stats().since(&before);
    // Frees went through `remove`, which the container counts as evictions;
    // the results count capacity evictions only.
    stats.evictions -= freed.0 - freed_before.0;
    stats.evicted_bytes -= freed.1 - freed_before.1;
    (stats, Some(g.since(&g_before)))
}

/// Whether a policy's results are the same whatever the key values (keys
/// are only identities to it), so that streaming raw keys gives what the
/// decoded path gives on dense ids. W-TinyLFU hashes keys into its sketch
/// (other keys, other collisions); the clairvoyant policies need next
/// accesses; GPU-cost is not vetted for it.
fn key_invariant(policy: PolicyKind) -> bool {
    match policy {
        PolicyKind::Lru
        | PolicyKind::Fifo
        | PolicyKind::Clock
        | PolicyKind::Sieve
        | PolicyKind::Lfu
        | PolicyKind::Arc
        | PolicyKind::TwoQ
        | PolicyKind::S3Fifo
        | PolicyKind::Lirs
        | PolicyKind::Gdsf => true,
        PolicyKind::WTinyLfu | PolicyKind::GpuCost | PolicyKind::Belady | PolicyKind::BeladyCost => false,
    }
}

/// Whether [`simulate_streamed`] can run `config`: one run, request model,
/// a capacity given in units (a percentage needs the whole trace first), a
/// warm-up given in requests, and a policy whose results do not depend on
/// key values and that does not look ahead.
pub fn can_stream(config: &SimConfig) -> bool {
    let [policy] = config.policies[..] else { return false };
    let [SizeSpec::Absolute(capacity)] = config.sizes[..] else { return false };
    capacity > 0 && !config.gpu && key_invariant(policy) && !matches!(config.warmup, Warmup::Fraction(_))
}

/// Runs the single run of `config` (see [`can_stream`]) straight from the
/// file: no decoded copy; the requests go to the cache batch by batch as
/// they are decoded. Returns a summary of the trace (a [`DecodedTrace`]
/// whose columns are empty, as from [`Columns::SUMMARY`]) and the run; both
/// agree exactly with what loading the trace and [`simulate`] give.
///
/// Two threads. The decoding thread reads batches, numbers their keys
/// (dense ids in order of first request, [`StreamIds`], which also counts
/// the summary's unique keys and bytes) and hands them over; the
/// simulating thread only simulates, over a [`DenseIndex`] warmed a group
/// ahead as in `replay`. The file's blake3 (the trace identity) is hashed
/// a chunk at a time by whichever thread would otherwise wait
/// ([`SharedHasher`]).
///
/// Measured on ARC at 1% of a 10M-request Zipf trace (paired runs, AMD
/// EPYC 2 vCPU): numbering in the decoding thread and a dense index in the
/// simulating one took 0.79x the time of raw keys in a hash index (LRU
/// 0.85x, SIEVE 0.93x): the simulating thread's two hash probes per miss
/// were most of its time, and a dense index is one load the warming
/// overlaps. (On the Intel VM of an earlier session, before ghosts moved
/// into the container, dense ids had measured slower.)
///
/// # Errors
/// `config` cannot stream, or the trace cannot be read (the reader's error,
/// naming the record, else the hashing's).
pub fn simulate_streamed(
    path: &Path,
    format: Option<TraceFormat>,
    options: LoadOptions,
    config: &SimConfig,
    on_done: &(dyn Fn(&RunResult) + Sync),
) -> TraceResult<(DecodedTrace, RunResult)> {
    if !can_stream(config) {
        return Err(Error::config("this simulation cannot stream (see sim::can_stream)"));
    }
    let (policy, size) = (config.policies[0], config.sizes[0]);
    let SizeSpec::Absolute(capacity) = size else { unreachable!("checked by can_stream") };
    let job = Job { policy, size, capacity };
    let warmup = match config.warmup {
        Warmup::Requests(n) => n,
        _ => 0,
    };
    let bytes = std::fs::metadata(path).map_err(|e| Error::io("stat", path, e))?.len();
    let mut reader = TraceReader::open(path, format, options.flatten(), false)?;
    let hasher = SharedHasher::new(FileHasher::open(path)?);
    // Batches go round: decoding thread -> simulating thread -> decoding
    // thread.
    let (to_simulation, batches) = mpsc::sync_channel(BATCHES_IN_FLIGHT);
    let (return_batch, returned_batches) = mpsc::channel();
    let (objects, limit) = (options.objects, options.limit.unwrap_or(u64::MAX));
    let (run, decoded) = std::thread::scope(|s| {
        let reader = &mut reader;
        let hasher = &hasher;
        let decoder = s.spawn(move || decode_batches(reader, limit, objects, to_simulation, &returned_batches, hasher));
        let started = Instant::now();
        let stream = Stream { batches, return_batch, hasher, capacity, warmup };
        let run = policy.visit(stream).map(|(stats, requests)| {
            (run_result(&job, config, &stats, None, started.elapsed().as_secs_f64()), requests)
        });
        let decoded = decoder.join().unwrap_or_else(|_| Err(Error::config("the decoding thread panicked")));
        (run, decoded)
    });
    let (run, requests) = run?;
    let (unique_keys, unique_bytes) = decoded?;
    let blake3 = hasher.finish()?;
    let identity = TraceIdentity {
        path: path.to_owned(),
        format: reader.format(),
        bytes,
        blake3,
        records: requests,
        frees: 0,
        skipped_zero_size: reader.skipped_zero_size(),
        options,
    };
    let summary = DecodedTrace {
        identity,
        keys: Vec::new(),
        dense_ids: Vec::new(),
        sizes: Vec::new(),
        access: Vec::new(),
        next_access: Vec::new(),
        is_free: None,
        unique_keys,
        unique_bytes,
        peak_live_bytes: reader.peak_live_bytes(),
    };
    on_done(&run);
    Ok((summary, run))
}

/// The decoding thread of [`simulate_streamed`]: reads up to `limit`
/// requests into batches (the request model: frees dropped, sizes 1 for an
/// object cache), numbers their keys ([`StreamIds`]) and sends them,
/// reusing the batches sent back; whenever the simulating thread has all
/// the batches it may hold, it helps hash the file. Stops at the end of
/// the trace, at the reader's first error (sent on, after the batches
/// before it), or when the simulation stops taking batches. Returns the
/// unique keys and bytes.
fn decode_batches(
    reader: &mut TraceReader,
    limit: u64,
    objects: bool,
    to_simulation: mpsc::SyncSender<TraceResult<EventBatch>>,
    returned: &mpsc::Receiver<EventBatch>,
    hasher: &SharedHasher,
) -> TraceResult<(u64, u64)> {
    let mut ids = StreamIds::default();
    let mut requests = 0u64;
    while requests < limit {
        let mut batch = returned.try_recv().unwrap_or_default();
        let max = usize::try_from(limit - requests).unwrap_or(usize::MAX).min(STREAM_BATCH);
        let decoded = reader.next_batch(&mut batch, max).and_then(|()| {
            // The request model: frees are not events (the reader was
            // opened without them) and every access is a read, as in
            // `replay`.
            batch.retain_requests();
            if objects {
                batch.sizes.fill(1);
            }
            ids.number(&mut batch)
        });
        let message = match decoded {
            Ok(()) if batch.is_empty() => break,
            Ok(()) => {
                requests += batch.len() as u64;
                Ok(batch)
            }
            Err(e) => Err(e),
        };
        let failed = message.is_err();
        hand_over(&to_simulation, message, hasher)?;
        if failed {
            break;
        }
    }
    Ok(ids.totals())
}

/// Sends `message` to the simulating thread, helping hash the file while
/// its channel is full.
///
/// # Errors
/// The simulating thread stopped taking batches.
fn hand_over<T>(to: &mpsc::SyncSender<T>, mut message: T, hasher: &SharedHasher) -> TraceResult<()> {
    let stopped = || Error::config("the simulation stopped before the end");
    loop {
        match to.try_send(message) {
            Ok(()) => return Ok(()),
            Err(mpsc::TrySendError::Full(m)) if hasher.help() => message = m,
            Err(mpsc::TrySendError::Full(m)) => return to.send(m).map_err(|_| stopped()),
            Err(mpsc::TrySendError::Disconnected(_)) => return Err(stopped()),
        }
    }
}

/// One streamed run (see [`simulate_streamed`]), monomorphised like [`Replay`].
struct Stream<'a> {
    /// Decoded batches with dense ids, in trace order; closed at the end of
    /// the trace.
    batches: mpsc::Receiver<TraceResult<EventBatch>>,
    return_batch: mpsc::Sender<EventBatch>,
    /// Helped whenever no batch waits.
    hasher: &'a SharedHasher,
    capacity: u64,
    warmup: u64,
}

/// Events decoded per batch while streaming: large enough to amortise the
/// reads and the hand-over, small enough that a batch stays in L2 next to
/// the cache's state.
const STREAM_BATCH: usize = 8 * 1024;

/// Batches that may wait for the simulating thread (bounds the memory the
/// decoding thread runs ahead with).
const BATCHES_IN_FLIGHT: usize = 8;

impl PolicyVisitor for Stream<'_> {
    /// The counters, and the requests read (warm-up included).
    type Output = TraceResult<(CacheStats, u64)>;

    fn visit<P: EvictionPolicy + 'static>(self, policy: P) -> Self::Output {
        // Dense ids, numbered by the decoding thread in order of first
        // request (so the hot keys of a skewed trace have low ids); the
        // index grows with them, and is warmed a group ahead as in `replay`.
        let mut cache = Cache::with_index(CacheConfig::with_capacity(self.capacity), policy, DenseIndex::default())
            .map_err(|e| Error::config(e.to_string()))?;
        let (mut requests, mut before) = (0u64, CacheStats::default());
        loop {
            let batch = match self.batches.try_recv() {
                Ok(batch) => batch?,
                Err(mpsc::TryRecvError::Empty) if self.hasher.help() => continue,
                Err(mpsc::TryRecvError::Empty) => match self.batches.recv() {
                    Ok(batch) => batch?,
                    Err(mpsc::RecvError) => break,
                },
                Err(mpsc::TryRecvError::Disconnected) => break,
            };
            serve_warmed(&mut cache, &batch.keys, &batch.sizes, |cache, key, size| {
                if requests == self.warmup && self.warmup > 0 {
                    before = cache.stats();
                }
                cache.access(&Request { key, size, next_access: Request::NEVER, access: Access::Read });
                requests += 1;
            });
            // The decoding thread may have stopped taking them back.
            let _ = self.return_batch.send(batch);
        }
        Ok((cache.stats().since(&before), requests))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::oracle::{OracleRecord, OracleWriter};

    /// A Zipf-like oracleGeneral file with large raw keys, per-key sizes
    /// and some size-0 records (skipped by both paths).
    fn write_trace(path: &Path, zstd: bool) {
        let mut w = OracleWriter::create(path, zstd).unwrap();
        let mut x = 7u64;
        for t in 0..20_000u32 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            // Skewed ranks: the square of a uniform draw favours small ones.
            let u = (x >> 40) % 1000;
            let rank = u * u / 1000;
            let id = rank.wrapping_mul(0x9E37_79B9_7F4A_7C15) | (1 << 63);
            let size = if x.is_multiple_of(97) { 0 } else { 1 + (rank * 7919) % 5000 } as u32;
            w.write(&OracleRecord { time: t, id, size, next_access_vtime: -1 }).unwrap();
        }
        w.finish().unwrap();
    }

    /// Streaming gives exactly the counters of the decoded path, for every
    /// policy that can stream, with limits, warm-up and object caches.
    #[test]
    fn streamed_equals_decoded() {
        let dir = tempfile::tempdir().unwrap();
        for zstd in [false, true] {
            let path = dir.path().join(if zstd { "t.zst" } else { "t.bin" });
            write_trace(&path, zstd);
            let cases = [
                (false, None, Warmup::None, 200_000u64),
                (false, Some(15_000), Warmup::Requests(3_000), 50_000),
                (true, None, Warmup::None, 40),
            ];
            for (objects, limit, warmup, capacity) in cases {
                let options = LoadOptions { objects, limit, ..LoadOptions::default() };
                let decoded = DecodedTrace::load(&path, None, options).unwrap();
                for &policy in PolicyKind::ALL {
                    let config = SimConfig {
                        policies: vec![policy],
                        sizes: vec![SizeSpec::Absolute(capacity)],
                        objects,
                        gpu: false,
                        warmup,
                        threads: 1,
                    };
                    if !can_stream(&config) {
                        continue;
                    }
                    let want = simulate(&decoded, &config, &|_| {}).unwrap().remove(0);
                    let (summary, got) = simulate_streamed(&path, None, options, &config, &|_| {}).unwrap();
                    let what = format!("{policy} objects={objects} limit={limit:?} zstd={zstd}");
                    assert!(want.requests > 0 && want.misses > 0, "{what}");
                    assert_eq!(
                        (got.requests, got.hits, got.misses, got.requested_bytes, got.missed_bytes),
                        (want.requests, want.hits, want.misses, want.requested_bytes, want.missed_bytes),
                        "{what}"
                    );
                    assert_eq!((got.evictions, got.evicted_bytes), (want.evictions, want.evicted_bytes), "{what}");
                    assert_eq!(summary.identity, decoded.identity, "{what}");
                    assert_eq!(
                        (summary.unique_keys, summary.unique_bytes),
                        (decoded.unique_keys, decoded.unique_bytes)
                    );
                    assert!(summary.is_empty());
                }
            }
        }
    }

    /// A streamed run of a damaged file fails with the reader's error,
    /// naming the file and the record, whatever the hashing does.
    #[test]
    fn streamed_truncated_file_names_the_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.bin");
        write_trace(&path, false);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();
        let config = SimConfig {
            policies: vec![PolicyKind::Lru],
            sizes: vec![SizeSpec::Absolute(50_000)],
            objects: false,
            gpu: false,
            warmup: Warmup::None,
            threads: 1,
        };
        let err = simulate_streamed(&path, Some(TraceFormat::Oracle), LoadOptions::default(), &config, &|_| {})
            .unwrap_err()
            .to_string();
        assert!(err.contains("t.bin") && err.contains("record 19999") && err.contains("truncated"), "{err}");
    }

    /// A decoded trace without the optional columns simulates the same.
    #[test]
    fn lean_columns_simulate_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.bin");
        write_trace(&path, false);
        let config = SimConfig {
            policies: PolicyKind::ALL.to_vec(),
            sizes: vec![SizeSpec::FractionOfUnique(0.01), SizeSpec::Absolute(300_000)],
            objects: false,
            gpu: false,
            warmup: Warmup::Fraction(0.1),
            threads: 2,
        };
        let full = DecodedTrace::load(&path, None, LoadOptions::default()).unwrap();
        let lean = DecodedTrace::load_columns(&path, None, LoadOptions::default(), columns_for(&config)).unwrap();
        assert!(lean.keys.is_empty() && !lean.next_access.is_empty());
        let strip =
            |runs: Vec<RunResult>| runs.into_iter().map(|r| RunResult { seconds: 0.0, ..r }).collect::<Vec<_>>();
        assert_eq!(
            strip(simulate(&lean, &config, &|_| {}).unwrap()),
            strip(simulate(&full, &config, &|_| {}).unwrap())
        );
        let no_lookahead = SimConfig { policies: vec![PolicyKind::Lru, PolicyKind::S3Fifo], ..config };
        let leaner =
            DecodedTrace::load_columns(&path, None, LoadOptions::default(), columns_for(&no_lookahead)).unwrap();
        assert!(leaner.next_access.is_empty());
        assert_eq!(
            strip(simulate(&leaner, &no_lookahead, &|_| {}).unwrap()),
            strip(simulate(&full, &no_lookahead, &|_| {}).unwrap())
        );
    }
}
