//! The run in progress: snapshots the simulator or replayer publishes, kept
//! for `/metrics`, `/api/live`, the live plots and the web page.
//!
//! The simulator's hot path stays untouched: it keeps counting in its own
//! plain [`CacheStats`] and *publishes a snapshot* now and then (every 64Ki
//! requests of a run, say, and once at the end). Publishing takes one short
//! mutex hold; a scrape copies the table under the same mutex and encodes
//! without it. Counters are exported from the latest snapshot (they are
//! monotonic because the snapshots are), never incremented per request.
//!
//! Cardinality is bounded. At most [`LiveConfig::max_label_sets`] distinct
//! [`Labels`] get series of their own; later label sets are *folded* into one
//! series whose labels are all [`OTHER`]. Folded snapshots still count: the
//! increments since the same label set's previous snapshot are added to the
//! `other` series, which needs a small per-label-set memory (a hash and the
//! last counters), itself bounded by [`LiveConfig::max_folded_tracked`];
//! snapshots beyond that are dropped and counted. A trace with a million
//! distinct pipeline names therefore makes at most `max_label_sets + 1`
//! series and bounded memory.
//!
//! Events that are not snapshots (a tuner decision, one latency
//! observation) are counted as they come: they are rare, or (latency) go
//! through a [`LatencyRecorder`] that resolves its series once.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use cachescope_core::stats::{CacheStats, EvictionReason};
use cachescope_core::tiered::TieredStats;
use prometheus_client::encoding::{EncodeLabelSet, LabelSetEncoder};
use prometheus_client::metrics::exemplar::HistogramWithExemplars;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::{Registry, Unit};
use serde::{Deserialize, Serialize};

use crate::exposition::SnapshotCollector;

/// The label value every folded label set is reported under.
pub const OTHER: &str = "other";

/// Label values longer than this (in characters) are cut and suffixed with a
/// hash of the whole value, so two long names stay two series.
pub const MAX_LABEL_VALUE_CHARS: usize = 100;

/// Upper bounds (seconds) of the latency histogram buckets: 5 us to 10 s,
/// about three per decade, which covers a kernel dispatch, a PCIe copy and a
/// pipeline compile.
pub const LATENCY_BUCKETS_SECONDS: [f64; 20] = [
    5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    10.0,
];

/// Which labels a series has. Values are free text (escaped on output);
/// empty values are allowed and Prometheus treats them as absent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Labels {
    /// Which cache: `sim`, `buffers`, `pipelines`, `hints`, ...
    pub cache: String,
    /// Eviction policy name (`lru`, `s3fifo`, ...).
    pub policy: String,
    /// Tier name for tiered caches (`device`, `host`, `disk`), else empty.
    pub tier: String,
    /// Workload or trace name.
    pub workload: String,
    /// The run: one (policy, capacity) pair of a sweep, e.g. `lru@1%`.
    pub run: String,
}

impl Labels {
    /// Labels with `cache` and `policy` set and the others empty.
    pub fn new(cache: impl Into<String>, policy: impl Into<String>) -> Self {
        Labels { cache: cache.into(), policy: policy.into(), ..Labels::default() }
    }

    /// The same labels with `tier` set.
    #[must_use]
    pub fn with_tier(mut self, tier: impl Into<String>) -> Self {
        self.tier = tier.into();
        self
    }

    /// The same labels with `workload` set.
    #[must_use]
    pub fn with_workload(mut self, workload: impl Into<String>) -> Self {
        self.workload = workload.into();
        self
    }

    /// The same labels with `run` set.
    #[must_use]
    pub fn with_run(mut self, run: impl Into<String>) -> Self {
        self.run = run.into();
        self
    }

    /// The labels of the folded series: every value [`OTHER`].
    pub fn other() -> Self {
        let o = || OTHER.to_string();
        Labels { cache: o(), policy: o(), tier: o(), workload: o(), run: o() }
    }

    /// `(name, value)` pairs in a fixed order.
    pub fn pairs(&self) -> [(&'static str, &str); 5] {
        [
            ("cache", self.cache.as_str()),
            ("policy", self.policy.as_str()),
            ("tier", self.tier.as_str()),
            ("workload", self.workload.as_str()),
            ("run", self.run.as_str()),
        ]
    }

    /// A short human name: the non-empty values joined by `/`.
    pub fn display_name(&self) -> String {
        let parts: Vec<&str> = self.pairs().iter().map(|p| p.1).filter(|v| !v.is_empty()).collect();
        if parts.is_empty() { "(no labels)".to_string() } else { parts.join(" / ") }
    }

    /// Cuts over-long values (see [`MAX_LABEL_VALUE_CHARS`]).
    fn bounded(&self) -> Labels {
        Labels {
            cache: bound_value(&self.cache),
            policy: bound_value(&self.policy),
            tier: bound_value(&self.tier),
            workload: bound_value(&self.workload),
            run: bound_value(&self.run),
        }
    }
}

impl EncodeLabelSet for Labels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        self.pairs().encode(encoder)
    }
}

fn bound_value(v: &str) -> String {
    if v.chars().count() <= MAX_LABEL_VALUE_CHARS {
        return v.to_string();
    }
    let head: String = v.chars().take(MAX_LABEL_VALUE_CHARS - 17).collect();
    format!("{head}~{:016x}", fx_hash(v))
}

/// A stable 64-bit hash (FNV-1a) used to tell folded label sets apart.
fn fx_hash<T: Hash + ?Sized>(v: &T) -> u64 {
    struct Fnv(u64);
    impl Hasher for Fnv {
        fn finish(&self) -> u64 {
            self.0
        }
        fn write(&mut self, bytes: &[u8]) {
            for b in bytes {
                self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
            }
        }
    }
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    v.hash(&mut h);
    h.finish()
}

/// Host <-> device traffic of a GPU run so far (cumulative).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct GpuTransfers {
    /// Uploads (host to device copies).
    pub uploads: u64,
    /// Bytes uploaded.
    pub upload_bytes: u64,
    /// Seconds spent uploading.
    pub upload_seconds: f64,
    /// Readbacks (device to host copies).
    pub readbacks: u64,
    /// Bytes read back.
    pub readback_bytes: u64,
    /// Seconds spent reading back.
    pub readback_seconds: f64,
}

/// Pipeline compiles so far (cumulative).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PipelineCompiles {
    /// Pipelines compiled (pipeline-cache misses that compiled).
    pub compiles: u64,
    /// Seconds spent compiling.
    pub compile_seconds: f64,
}

/// What a latency observation measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LatencyKind {
    /// One kernel dispatch, submit to completion.
    Dispatch,
    /// One host-to-device copy.
    Upload,
    /// One device-to-host copy.
    Readback,
    /// One pipeline compile.
    Compile,
}

impl LatencyKind {
    /// All kinds, in a fixed order.
    pub const ALL: [LatencyKind; 4] =
        [LatencyKind::Dispatch, LatencyKind::Upload, LatencyKind::Readback, LatencyKind::Compile];

    /// The `kind` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            LatencyKind::Dispatch => "dispatch",
            LatencyKind::Upload => "upload",
            LatencyKind::Readback => "readback",
            LatencyKind::Compile => "compile",
        }
    }
}

/// What the workgroup-size tuner decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TunerDecision {
    /// A sweep measured the candidates and chose one.
    Measured,
    /// A persisted decision was reused without measuring.
    Reused,
    /// The resize policy grew the workgroup.
    Grow,
    /// The resize policy shrank the workgroup.
    Shrink,
}

impl TunerDecision {
    /// All decisions, in a fixed order.
    pub const ALL: [TunerDecision; 4] =
        [TunerDecision::Measured, TunerDecision::Reused, TunerDecision::Grow, TunerDecision::Shrink];

    /// The `decision` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            TunerDecision::Measured => "measured",
            TunerDecision::Reused => "reused",
            TunerDecision::Grow => "grow",
            TunerDecision::Shrink => "shrink",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

const REASONS: [EvictionReason; 4] =
    [EvictionReason::Capacity, EvictionReason::Removed, EvictionReason::Invalidated, EvictionReason::Corrupt];

fn reason_index(r: EvictionReason) -> usize {
    match r {
        EvictionReason::Capacity => 0,
        EvictionReason::Removed => 1,
        EvictionReason::Invalidated => 2,
        EvictionReason::Corrupt => 3,
    }
}

/// Limits of a [`LiveMetrics`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveConfig {
    /// Distinct label sets with series of their own; the rest fold into
    /// [`OTHER`].
    pub max_label_sets: usize,
    /// Folded label sets whose last snapshot is remembered (to add only
    /// increments to `other`); snapshots of further ones are dropped.
    pub max_folded_tracked: usize,
    /// Points of hit-rate history kept per series (older points are thinned
    /// out, so the history always spans the whole run).
    pub history_points: usize,
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig { max_label_sets: 1000, max_folded_tracked: 50_000, history_points: 256 }
    }
}

/// One point of a series' hit-rate history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryPoint {
    /// Trace position (requests replayed) of the snapshot.
    pub position: u64,
    /// Cumulative hits at that point.
    pub hits: u64,
    /// Cumulative requests at that point.
    pub requests: u64,
}

/// A bounded history that thins itself out: when full it keeps every other
/// point and doubles its stride, so it covers the whole run at a coarser
/// grain instead of forgetting the start.
#[derive(Debug, Clone, Default)]
struct History {
    points: Vec<HistoryPoint>,
    latest: Option<HistoryPoint>,
    stride: u64,
    seen: u64,
}

impl History {
    fn push(&mut self, p: HistoryPoint, cap: usize) {
        if self.stride == 0 {
            self.stride = 1;
        }
        if cap == 0 {
            return;
        }
        if self.seen.is_multiple_of(self.stride) {
            self.points.push(p);
            if self.points.len() > cap.max(2) {
                let kept: Vec<HistoryPoint> = self.points.iter().copied().step_by(2).collect();
                self.points = kept;
                self.stride = self.stride.saturating_mul(2);
            }
        }
        self.seen += 1;
        self.latest = Some(p);
    }

    fn to_vec(&self) -> Vec<HistoryPoint> {
        let mut v = self.points.clone();
        if let Some(l) = self.latest
            && v.last() != Some(&l)
        {
            v.push(l);
        }
        v
    }
}

/// Bucket counts mirrored next to the Prometheus histogram, for the JSON
/// snapshot and the live plots (the client library does not expose its
/// buckets for reading).
#[derive(Debug)]
pub(crate) struct LatencyCells {
    buckets: [AtomicU64; LATENCY_BUCKETS_SECONDS.len() + 1],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl LatencyCells {
    fn new() -> Self {
        LatencyCells {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            sum_nanos: AtomicU64::new(0),
        }
    }

    fn observe(&self, seconds: f64) {
        let i = LATENCY_BUCKETS_SECONDS.partition_point(|&le| le < seconds);
        if let Some(b) = self.buckets.get(i) {
            b.fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let nanos = if seconds.is_finite() && seconds > 0.0 { (seconds * 1e9).min(u64::MAX as f64) as u64 } else { 0 };
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    fn snapshot(&self, kind: LatencyKind) -> LatencySnapshot {
        let mut cumulative = 0;
        let mut buckets = Vec::with_capacity(LATENCY_BUCKETS_SECONDS.len());
        for (i, le) in LATENCY_BUCKETS_SECONDS.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            buckets.push(LatencyBucket { le_seconds: *le, cumulative_count: cumulative });
        }
        LatencySnapshot {
            kind,
            count: self.count.load(Ordering::Relaxed),
            sum_seconds: self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
            buckets,
        }
    }
}

/// One cumulative histogram bucket.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LatencyBucket {
    /// Upper bound in seconds.
    pub le_seconds: f64,
    /// Observations at or below it.
    pub cumulative_count: u64,
}

/// A latency histogram as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencySnapshot {
    /// What was measured.
    pub kind: LatencyKind,
    /// Observations.
    pub count: u64,
    /// Their sum in seconds.
    pub sum_seconds: f64,
    /// Cumulative buckets (the `+Inf` bucket is `count`).
    pub buckets: Vec<LatencyBucket>,
}

impl LatencySnapshot {
    /// The `q` quantile (0..=1) by linear interpolation inside the bucket,
    /// as PromQL's `histogram_quantile` does; `None` without observations.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * self.count as f64;
        let mut prev_le = 0.0;
        let mut prev_count = 0u64;
        for b in &self.buckets {
            if b.cumulative_count as f64 >= rank {
                let in_bucket = (b.cumulative_count - prev_count) as f64;
                let frac = if in_bucket > 0.0 { (rank - prev_count as f64) / in_bucket } else { 1.0 };
                return Some(prev_le + (b.le_seconds - prev_le) * frac);
            }
            prev_le = b.le_seconds;
            prev_count = b.cumulative_count;
        }
        Some(prev_le)
    }
}

/// Evictions for one reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvictionCount {
    /// Why the entries left.
    pub reason: EvictionReason,
    /// Entries.
    pub count: u64,
    /// Bytes.
    pub bytes: u64,
}

/// Everything known about one label set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesSnapshot {
    /// Its labels (all [`OTHER`] for the folded series).
    pub labels: Labels,
    /// Whether this is the folded `other` series.
    pub folded: bool,
    /// Latest cache counters.
    pub cache: Option<CacheStats>,
    /// Latest GPU traffic.
    pub gpu: Option<GpuTransfers>,
    /// Evictions by reason (only reasons published).
    pub evictions: Vec<EvictionCount>,
    /// Latest compile counters.
    pub compiles: Option<PipelineCompiles>,
    /// Tuner decisions by kind (only kinds seen).
    pub tuner: Vec<(TunerDecision, u64)>,
    /// Tuner measurements (timer calls).
    pub tuner_measurements: u64,
    /// Latency histograms (only kinds observed).
    pub latency: Vec<LatencySnapshot>,
    /// Hit-rate history (empty unless asked for).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<HistoryPoint>,
}

/// Overall progress of the harness.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Requests replayed so far, all runs together.
    pub done_requests: u64,
    /// Requests planned, all runs together (0: unknown).
    pub total_requests: u64,
}

impl Progress {
    /// done / total in 0..=1 (0 when the total is unknown).
    pub fn fraction(&self) -> f64 {
        if self.total_requests == 0 {
            0.0
        } else {
            (self.done_requests as f64 / self.total_requests as f64).clamp(0.0, 1.0)
        }
    }
}

/// The whole live state, as `/api/live` serves it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveSnapshot {
    /// When the snapshot was taken, milliseconds since the Unix epoch.
    pub unix_ms: u64,
    /// When anything was last published (0: never).
    pub last_publish_unix_ms: u64,
    /// Harness progress.
    pub progress: Progress,
    /// Series, in the order their label sets first appeared; the folded
    /// series last.
    pub series: Vec<SeriesSnapshot>,
    /// Label sets with series of their own.
    pub label_sets: usize,
    /// The limit on those.
    pub label_set_limit: usize,
    /// Distinct label sets folded into `other` so far.
    pub folded_label_sets: u64,
    /// Snapshots dropped because the folded-label-set memory was full.
    pub dropped_snapshots: u64,
}

/// Per-series state.
#[derive(Debug, Clone)]
struct Series {
    labels: Arc<Labels>,
    folded: bool,
    cache: Option<CacheStats>,
    gpu: Option<GpuTransfers>,
    evictions: [Option<(u64, u64)>; 4],
    compiles: Option<PipelineCompiles>,
    tuner: [u64; 4],
    tuner_measurements: u64,
    history: History,
    latency: Vec<(LatencyKind, Arc<LatencyCells>, HistogramWithExemplars<ExemplarLabels>)>,
}

impl Series {
    fn new(labels: Labels, folded: bool) -> Self {
        Series {
            labels: Arc::new(labels),
            folded,
            cache: None,
            gpu: None,
            evictions: [None; 4],
            compiles: None,
            tuner: [0; 4],
            tuner_measurements: 0,
            history: History::default(),
            latency: Vec::new(),
        }
    }
}

/// What a scrape needs of one series: cheap to copy out under the lock.
#[derive(Debug, Clone)]
pub(crate) struct SeriesView {
    pub(crate) labels: Arc<Labels>,
    pub(crate) cache: Option<CacheStats>,
    pub(crate) gpu: Option<GpuTransfers>,
    pub(crate) evictions: [Option<(u64, u64)>; 4],
    pub(crate) compiles: Option<PipelineCompiles>,
    pub(crate) tuner: [u64; 4],
    pub(crate) tuner_measurements: u64,
}

/// What a scrape needs of the whole state.
#[derive(Debug, Clone, Default)]
pub(crate) struct ExportView {
    pub(crate) series: Vec<SeriesView>,
    pub(crate) progress: Progress,
    pub(crate) last_publish_unix_ms: u64,
    pub(crate) label_sets: usize,
    pub(crate) label_set_limit: usize,
    pub(crate) folded_label_sets: u64,
    pub(crate) dropped_snapshots: u64,
}

impl ExportView {
    pub(crate) fn reasons() -> [EvictionReason; 4] {
        REASONS
    }
}

/// The last counters of a folded label set, to add only increments.
#[derive(Debug, Clone, Default)]
struct FoldedPrev {
    cache: Option<CacheStats>,
    gpu: Option<GpuTransfers>,
    evictions: [(u64, u64); 4],
    compiles: Option<PipelineCompiles>,
}

#[derive(Debug, Default)]
struct State {
    index: HashMap<Labels, usize>,
    series: Vec<Series>,
    other: Option<Series>,
    folded_prev: HashMap<u64, FoldedPrev>,
    folded_label_sets: u64,
    dropped_snapshots: u64,
    progress: Progress,
    last_publish_unix_ms: u64,
}

enum Slot {
    Own(usize),
    Folded(u64),
}

/// Shared between [`LiveMetrics`] handles and the scrape collector.
#[derive(Debug)]
pub(crate) struct Shared {
    config: LiveConfig,
    state: Mutex<State>,
    latency_family: Family<LatencyKey, HistogramWithExemplars<ExemplarLabels>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; a poisoned lock still holds
        // consistent counters, so keep serving them.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn export_view(&self) -> ExportView {
        let st = self.lock();
        let view = |s: &Series| SeriesView {
            labels: Arc::clone(&s.labels),
            cache: s.cache,
            gpu: s.gpu,
            evictions: s.evictions,
            compiles: s.compiles,
            tuner: s.tuner,
            tuner_measurements: s.tuner_measurements,
        };
        ExportView {
            series: st.series.iter().chain(st.other.iter()).map(view).collect(),
            progress: st.progress,
            last_publish_unix_ms: st.last_publish_unix_ms,
            label_sets: st.series.len(),
            label_set_limit: self.config.max_label_sets,
            folded_label_sets: st.folded_label_sets,
            dropped_snapshots: st.dropped_snapshots,
        }
    }
}

/// Labels of one latency histogram: the series labels plus `kind`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct LatencyKey {
    labels: Arc<Labels>,
    kind: LatencyKind,
}

impl EncodeLabelSet for LatencyKey {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        (self.labels.pairs(), [("kind", self.kind.as_str())]).encode(encoder)
    }
}

/// Exemplar labels: the run and the trace position of the observation.
/// Kept under OpenMetrics' 128-character limit for exemplar labels.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ExemplarLabels {
    run: Arc<str>,
    trace_position: u64,
}

impl EncodeLabelSet for ExemplarLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        let pos = self.trace_position.to_string();
        [("run", &*self.run), ("trace_position", pos.as_str())].encode(encoder)
    }
}

/// Longest run name carried in an exemplar ("run" + "trace_position" + 20
/// digits + this stays under 128 characters).
const EXEMPLAR_RUN_CHARS: usize = 80;

fn now_unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn counter_delta(new: u64, old: u64) -> u64 {
    // A counter that went backwards was reset (a new run under old labels):
    // everything it holds now is new.
    if new >= old { new - old } else { new }
}

fn f_delta(new: f64, old: f64) -> f64 {
    if new >= old { new - old } else { new }
}

fn gauge_move(total: u64, old: u64, new: u64) -> u64 {
    total.saturating_sub(old).saturating_add(new)
}

fn add_cache_delta(total: &mut CacheStats, old: &CacheStats, new: &CacheStats) {
    total.requests += counter_delta(new.requests, old.requests);
    total.hits += counter_delta(new.hits, old.hits);
    total.misses += counter_delta(new.misses, old.misses);
    total.requested_bytes += counter_delta(new.requested_bytes, old.requested_bytes);
    total.missed_bytes += counter_delta(new.missed_bytes, old.missed_bytes);
    total.insertions += counter_delta(new.insertions, old.insertions);
    total.rejections += counter_delta(new.rejections, old.rejections);
    total.evictions += counter_delta(new.evictions, old.evictions);
    total.evicted_bytes += counter_delta(new.evicted_bytes, old.evicted_bytes);
    total.resident_bytes = gauge_move(total.resident_bytes, old.resident_bytes, new.resident_bytes);
    total.resident_entries = gauge_move(total.resident_entries, old.resident_entries, new.resident_entries);
}

fn add_gpu_delta(total: &mut GpuTransfers, old: &GpuTransfers, new: &GpuTransfers) {
    total.uploads += counter_delta(new.uploads, old.uploads);
    total.upload_bytes += counter_delta(new.upload_bytes, old.upload_bytes);
    total.upload_seconds += f_delta(new.upload_seconds, old.upload_seconds);
    total.readbacks += counter_delta(new.readbacks, old.readbacks);
    total.readback_bytes += counter_delta(new.readback_bytes, old.readback_bytes);
    total.readback_seconds += f_delta(new.readback_seconds, old.readback_seconds);
}

/// The live metrics of a run in progress; see the [module docs](self).
///
/// Cheap to clone (an `Arc`), `Send + Sync`: hand a clone to every worker
/// thread and one to [`serve`](crate::serve).
///
/// ```
/// use cachescope_core::stats::CacheStats;
/// use cachescope_dashboard::{Labels, LiveMetrics};
///
/// let live = LiveMetrics::new();
/// let labels = Labels::new("sim", "lru").with_workload("zipf").with_run("lru@1%");
/// let mut stats = CacheStats::default();
/// stats.record_request(4096, false);
/// live.publish_cache(&labels, &stats); // every 64Ki requests, and at the end
/// assert!(live.encode_prometheus_text().unwrap().contains("cachescope_requests_total"));
/// ```
#[derive(Clone)]
pub struct LiveMetrics {
    shared: Arc<Shared>,
    registry: Arc<Registry>,
}

impl std::fmt::Debug for LiveMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveMetrics").field("config", &self.shared.config).finish_non_exhaustive()
    }
}

impl Default for LiveMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl LiveMetrics {
    /// Live metrics with the default [`LiveConfig`].
    pub fn new() -> Self {
        Self::with_config(LiveConfig::default())
    }

    /// Live metrics with the given limits.
    pub fn with_config(config: LiveConfig) -> Self {
        let latency_family = Family::<LatencyKey, HistogramWithExemplars<ExemplarLabels>>::new_with_constructor(
            (|| HistogramWithExemplars::new(LATENCY_BUCKETS_SECONDS.into_iter())) as fn() -> _,
        );
        let shared = Arc::new(Shared { config, state: Mutex::new(State::default()), latency_family });
        let mut registry = Registry::default();
        registry.register_collector(Box::new(SnapshotCollector::new(Arc::clone(&shared))));
        registry.register_with_unit(
            "cachescope_latency",
            "Latency of GPU operations by kind (dispatch, upload, readback, compile)",
            Unit::Seconds,
            shared.latency_family.clone(),
        );
        LiveMetrics { shared, registry: Arc::new(registry) }
    }

    /// The limits this was built with.
    pub fn config(&self) -> LiveConfig {
        self.shared.config
    }

    fn admit(&self, st: &mut State, labels: &Labels) -> Slot {
        if let Some(&i) = st.index.get(labels) {
            return Slot::Own(i);
        }
        let bounded = labels.bounded();
        if let Some(&i) = st.index.get(&bounded) {
            return Slot::Own(i);
        }
        if st.series.len() < self.shared.config.max_label_sets {
            let i = st.series.len();
            st.series.push(Series::new(bounded.clone(), false));
            st.index.insert(bounded, i);
            return Slot::Own(i);
        }
        Slot::Folded(fx_hash(labels))
    }

    /// Runs `f` on the series of `labels`: its own, or (folded) on the
    /// `other` series together with the label set's previous counters.
    /// Does nothing (and counts a dropped snapshot) when the folded-set
    /// memory is full.
    fn with_series(&self, labels: &Labels, f: impl FnOnce(&mut Series, Option<&mut FoldedPrev>)) {
        let mut st = self.shared.lock();
        st.last_publish_unix_ms = now_unix_ms();
        match self.admit(&mut st, labels) {
            Slot::Own(i) => f(&mut st.series[i], None),
            Slot::Folded(hash) => {
                let st = &mut *st;
                if !st.folded_prev.contains_key(&hash) {
                    if st.folded_prev.len() >= self.shared.config.max_folded_tracked {
                        st.dropped_snapshots += 1;
                        return;
                    }
                    st.folded_prev.insert(hash, FoldedPrev::default());
                    st.folded_label_sets += 1;
                }
                let other = st.other.get_or_insert_with(|| Series::new(Labels::other(), true));
                f(other, st.folded_prev.get_mut(&hash));
            }
        }
    }

    /// Publishes the latest counters of one cache (a run of the simulator, a
    /// cache of the replayer). Call it every so often (every 64Ki requests)
    /// and once at the end; the trace position is taken to be
    /// `stats.requests`. Evictions are exported by
    /// [`publish_evictions`](Self::publish_evictions), which knows reasons.
    pub fn publish_cache(&self, labels: &Labels, stats: &CacheStats) {
        self.publish_cache_at(labels, stats.requests, stats);
    }

    /// As [`publish_cache`](Self::publish_cache), at an explicit trace
    /// position (for the hit-rate-over-time history).
    pub fn publish_cache_at(&self, labels: &Labels, trace_position: u64, stats: &CacheStats) {
        let cap = self.shared.config.history_points;
        self.with_series(labels, |s, prev| match prev {
            None => {
                s.cache = Some(*stats);
                s.history
                    .push(HistoryPoint { position: trace_position, hits: stats.hits, requests: stats.requests }, cap);
            }
            Some(prev) => {
                let old = prev.cache.unwrap_or_default();
                prev.cache = Some(*stats);
                add_cache_delta(s.cache.get_or_insert_with(CacheStats::default), &old, stats);
            }
        });
    }

    /// Publishes every tier of a tiered cache: one series per tier, labelled
    /// with the tier's name (`labels.tier` is replaced).
    pub fn publish_tiered(&self, labels: &Labels, stats: &TieredStats) {
        for tier in &stats.tiers {
            self.publish_cache(&labels.clone().with_tier(tier.name.clone()), &tier.cache);
        }
    }

    /// Publishes the latest GPU traffic counters of a run.
    pub fn publish_gpu(&self, labels: &Labels, transfers: &GpuTransfers) {
        self.with_series(labels, |s, prev| match prev {
            None => s.gpu = Some(*transfers),
            Some(prev) => {
                let old = prev.gpu.unwrap_or_default();
                prev.gpu = Some(*transfers);
                add_gpu_delta(s.gpu.get_or_insert_with(GpuTransfers::default), &old, transfers);
            }
        });
    }

    /// Publishes the latest eviction counters for one reason (cumulative).
    pub fn publish_evictions(&self, labels: &Labels, reason: EvictionReason, count: u64, bytes: u64) {
        let r = reason_index(reason);
        self.with_series(labels, |s, prev| match prev {
            None => s.evictions[r] = Some((count, bytes)),
            Some(prev) => {
                let (oc, ob) = prev.evictions[r];
                prev.evictions[r] = (count, bytes);
                let t = s.evictions[r].get_or_insert((0, 0));
                t.0 += counter_delta(count, oc);
                t.1 += counter_delta(bytes, ob);
            }
        });
    }

    /// Publishes the latest pipeline-compile counters (cumulative).
    pub fn publish_compiles(&self, labels: &Labels, compiles: &PipelineCompiles) {
        self.with_series(labels, |s, prev| match prev {
            None => s.compiles = Some(*compiles),
            Some(prev) => {
                let old = prev.compiles.unwrap_or_default();
                prev.compiles = Some(*compiles);
                let t = s.compiles.get_or_insert_with(PipelineCompiles::default);
                t.compiles += counter_delta(compiles.compiles, old.compiles);
                t.compile_seconds += f_delta(compiles.compile_seconds, old.compile_seconds);
            }
        });
    }

    /// Counts one tuner decision and the timer calls it took (an event, not
    /// a snapshot: decisions are rare).
    pub fn tuner_decision(&self, labels: &Labels, decision: TunerDecision, measurements: u64) {
        self.with_series(labels, |s, _| {
            s.tuner[decision.index()] += 1;
            s.tuner_measurements += measurements;
        });
    }

    /// Sets the harness's progress: requests replayed and planned, all runs
    /// together.
    pub fn progress(&self, done_requests: u64, total_requests: u64) {
        let mut st = self.shared.lock();
        st.progress = Progress { done_requests, total_requests };
        st.last_publish_unix_ms = now_unix_ms();
    }

    /// A recorder for one latency series, resolved (and folded) once: the
    /// cheap way to observe many latencies of the same kind.
    pub fn latency_recorder(&self, labels: &Labels, kind: LatencyKind) -> LatencyRecorder {
        let mut st = self.shared.lock();
        let st = &mut *st;
        let series = match self.admit(st, labels) {
            Slot::Own(i) => &mut st.series[i],
            Slot::Folded(_) => st.other.get_or_insert_with(|| Series::new(Labels::other(), true)),
        };
        let (cells, hist) = match series.latency.iter().find(|(k, ..)| *k == kind) {
            Some((_, c, h)) => (Arc::clone(c), h.clone()),
            None => {
                let key = LatencyKey { labels: Arc::clone(&series.labels), kind };
                let hist = self.shared.latency_family.get_or_create_owned(&key);
                let cells = Arc::new(LatencyCells::new());
                series.latency.push((kind, Arc::clone(&cells), hist.clone()));
                series.latency.sort_by_key(|(k, ..)| *k);
                (cells, hist)
            }
        };
        let run: String = labels.run.chars().take(EXEMPLAR_RUN_CHARS).collect();
        LatencyRecorder { cells, hist, run: Arc::from(run) }
    }

    /// Observes one latency in seconds; `trace_position` (the request or
    /// dispatch index) becomes the bucket's exemplar, linking it to the run
    /// and the place in the trace. For many observations of one series use
    /// a [`LatencyRecorder`].
    pub fn observe_latency_seconds(
        &self,
        labels: &Labels,
        kind: LatencyKind,
        seconds: f64,
        trace_position: Option<u64>,
    ) {
        self.latency_recorder(labels, kind).observe(seconds, trace_position);
    }

    /// The whole state as JSON-ready data; `with_history` adds each series'
    /// hit-rate history.
    pub fn snapshot(&self, with_history: bool) -> LiveSnapshot {
        let st = self.shared.lock();
        let series = st
            .series
            .iter()
            .chain(st.other.iter())
            .map(|s| SeriesSnapshot {
                labels: (*s.labels).clone(),
                folded: s.folded,
                cache: s.cache,
                gpu: s.gpu,
                evictions: REASONS
                    .iter()
                    .zip(s.evictions.iter())
                    .filter_map(|(r, e)| e.map(|(count, bytes)| EvictionCount { reason: *r, count, bytes }))
                    .collect(),
                compiles: s.compiles,
                tuner: TunerDecision::ALL
                    .iter()
                    .filter(|d| s.tuner[d.index()] > 0)
                    .map(|d| (*d, s.tuner[d.index()]))
                    .collect(),
                tuner_measurements: s.tuner_measurements,
                latency: s.latency.iter().map(|(k, c, _)| c.snapshot(*k)).collect(),
                history: if with_history { s.history.to_vec() } else { Vec::new() },
            })
            .collect();
        LiveSnapshot {
            unix_ms: now_unix_ms(),
            last_publish_unix_ms: st.last_publish_unix_ms,
            progress: st.progress,
            series,
            label_sets: st.series.len(),
            label_set_limit: self.shared.config.max_label_sets,
            folded_label_sets: st.folded_label_sets,
            dropped_snapshots: st.dropped_snapshots,
        }
    }

    /// The exposition in the OpenMetrics 1.0 text format (with exemplars).
    ///
    /// # Errors
    /// [`Error::Encode`](crate::Error::Encode) if formatting fails (it does
    /// not with a `String` sink; the type leaves room for other sinks).
    pub fn encode_openmetrics(&self) -> crate::Result<String> {
        let mut out = String::with_capacity(16 * 1024);
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .map_err(|e| crate::Error::Encode(e.to_string()))?;
        Ok(out)
    }

    /// The exposition in the Prometheus text format 0.0.4 (no exemplars).
    ///
    /// # Errors
    /// As [`encode_openmetrics`](Self::encode_openmetrics).
    pub fn encode_prometheus_text(&self) -> crate::Result<String> {
        Ok(crate::exposition::openmetrics_to_prometheus_text(&self.encode_openmetrics()?))
    }
}

/// Observes latencies of one series; see [`LiveMetrics::latency_recorder`].
/// Cheap to clone; observing takes the histogram's own short lock, never the
/// live table's.
#[derive(Debug, Clone)]
pub struct LatencyRecorder {
    cells: Arc<LatencyCells>,
    hist: HistogramWithExemplars<ExemplarLabels>,
    run: Arc<str>,
}

impl LatencyRecorder {
    /// Observes one latency in seconds (negative or NaN values count in the
    /// lowest bucket), with an optional trace position as exemplar.
    pub fn observe(&self, seconds: f64, trace_position: Option<u64>) {
        let seconds = if seconds.is_finite() && seconds > 0.0 { seconds } else { 0.0 };
        self.cells.observe(seconds);
        let exemplar = trace_position.map(|p| ExemplarLabels { run: Arc::clone(&self.run), trace_position: p });
        let ts = exemplar.as_ref().map(|_| SystemTime::now());
        self.hist.observe(seconds, exemplar, ts);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(requests: u64, hits: u64) -> CacheStats {
        CacheStats {
            requests,
            hits,
            misses: requests - hits,
            requested_bytes: requests * 10,
            missed_bytes: (requests - hits) * 10,
            resident_bytes: 100,
            resident_entries: 10,
            ..CacheStats::default()
        }
    }

    #[test]
    fn a_million_distinct_names_make_bounded_series() {
        let live =
            LiveMetrics::with_config(LiveConfig { max_label_sets: 50, max_folded_tracked: 1000, history_points: 8 });
        for i in 0..1_000_000u64 {
            let labels = Labels::new("pipelines", "lru").with_run(format!("pipeline-{i}"));
            live.publish_cache(&labels, &stats(2, 1));
        }
        let snap = live.snapshot(false);
        assert_eq!(snap.label_sets, 50);
        assert_eq!(snap.series.len(), 51, "50 own series + other");
        assert_eq!(snap.folded_label_sets, 1000);
        assert_eq!(snap.dropped_snapshots, 1_000_000 - 50 - 1000);
        let other = snap.series.last().unwrap();
        assert!(other.folded);
        assert_eq!(other.labels, Labels::other());
        let c = other.cache.unwrap();
        assert_eq!((c.requests, c.hits), (2000, 1000), "tracked folded sets add up");
        assert_eq!(c.resident_bytes, 100 * 1000, "gauges of folded sets add up");
        let text = live.encode_prometheus_text().unwrap();
        let requests_lines = text.lines().filter(|l| l.starts_with("cachescope_requests_total{")).count();
        assert_eq!(requests_lines, 51);
        assert!(text.contains("cachescope_exporter_folded_label_sets_total 1000"));
    }

    #[test]
    fn folded_snapshots_add_increments_not_totals() {
        let live = LiveMetrics::with_config(LiveConfig { max_label_sets: 1, ..LiveConfig::default() });
        live.publish_cache(&Labels::new("a", "lru"), &stats(10, 5));
        let b = Labels::new("b", "lru");
        let c = Labels::new("c", "lru");
        live.publish_cache(&b, &stats(10, 5));
        live.publish_cache(&b, &stats(30, 20));
        live.publish_cache(&c, &stats(4, 4));
        live.publish_cache(&b, &stats(1, 1)); // reset: a new run under the same labels
        let other = live.snapshot(false).series.pop().unwrap();
        let s = other.cache.unwrap();
        assert_eq!(s.requests, 30 + 4 + 1);
        assert_eq!(s.hits, 20 + 4 + 1);
        assert_eq!(s.resident_bytes, 200, "b and c each hold 100 now");
    }

    #[test]
    fn long_label_values_are_cut_but_stay_distinct() {
        let live = LiveMetrics::new();
        let long_a = format!("{}a", "x".repeat(300));
        let long_b = format!("{}b", "x".repeat(300));
        live.publish_cache(&Labels::new(long_a.clone(), "lru"), &stats(1, 0));
        live.publish_cache(&Labels::new(long_b, "lru"), &stats(1, 0));
        live.publish_cache(&Labels::new(long_a, "lru"), &stats(2, 0));
        let snap = live.snapshot(false);
        assert_eq!(snap.series.len(), 2);
        assert!(snap.series.iter().all(|s| s.labels.cache.chars().count() <= MAX_LABEL_VALUE_CHARS));
        assert_eq!(snap.series[0].cache.unwrap().requests, 2);
    }

    #[test]
    fn history_thins_out_but_spans_the_run() {
        let mut h = History::default();
        for i in 1..=1000u64 {
            h.push(HistoryPoint { position: i, hits: i / 2, requests: i }, 16);
        }
        let v = h.to_vec();
        assert!(v.len() <= 18, "{}", v.len());
        assert_eq!(v.first().unwrap().position, 1);
        assert_eq!(v.last().unwrap().position, 1000);
        assert!(v.windows(2).all(|w| w[0].position < w[1].position));
    }

    #[test]
    fn latency_quantiles_and_exemplars() {
        let live = LiveMetrics::new();
        let labels = Labels::new("buffers", "lru").with_run("lru@64MiB");
        let rec = live.latency_recorder(&labels, LatencyKind::Dispatch);
        for i in 0..100u64 {
            rec.observe(0.001 * (i as f64 + 1.0) / 100.0, Some(i));
        }
        rec.observe(f64::NAN, None);
        let snap = live.snapshot(false);
        let lat = &snap.series[0].latency[0];
        assert_eq!(lat.count, 101);
        let p50 = lat.quantile(0.5).unwrap();
        assert!(p50 > 1e-4 && p50 < 1e-3, "{p50}");
        let om = live.encode_openmetrics().unwrap();
        assert!(om.contains("cachescope_latency_seconds_bucket{"), "{om}");
        assert!(om.contains("trace_position=\""), "exemplar present: {om}");
        assert!(om.ends_with("# EOF\n"));
        let text = live.encode_prometheus_text().unwrap();
        assert!(!text.contains("trace_position"), "0.0.4 carries no exemplars");
        assert!(!text.contains("# EOF"));
    }
}
