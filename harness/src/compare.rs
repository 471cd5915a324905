//! `cachescope compare`: judges a results file (`sim` or `bench`) against a
//! baseline, for CI.
//!
//! Two kinds of figure get two kinds of judgement:
//!
//! * **Deterministic figures** (requests, hits, misses, requested and missed
//!   bytes, evictions, uploads, readbacks and their bytes, and any other
//!   integer a run carries, such as the replayer's compiles) are compared
//!   exactly. The simulator is exact and seeded, so a changed figure means
//!   behaviour changed: the comparison fails and says which trace, policy and
//!   size. With `allow_improvements`, a run whose costs (misses, missed
//!   bytes, uploads, readbacks, compiles) only went down passes, noted as an
//!   improvement; requests and requested bytes must still be equal.
//! * **Timings** are compared statistically. A run carries repeated samples
//!   (`seconds_samples`, wall time, written by `cachescope bench`, which
//!   also records each run's on-CPU time in `extra.cpu_seconds_samples`;
//!   on-CPU time is judged when both files have it, see [`TimeBasis`],
//!   because on a shared machine it is several times steadier); the estimate is the
//!   ratio of medians current / baseline, with a seeded percentile bootstrap
//!   interval ([`DEFAULT_RESAMPLES`] resamples of each side). The suite's
//!   figure, the geometric mean of the runs' ratios with its own bootstrap
//!   interval, is *slower* only when the whole interval lies above
//!   `1 + threshold` (default 5%), so noise alone does not fail a build;
//!   *faster* when it lies below `1 - threshold`. A single run is judged the
//!   same way against `run_threshold` (default 10%): it has fewer samples
//!   and there are many runs, so it needs the wider margin. Runs with fewer
//!   than [`MIN_SAMPLES`] samples on either side are shown and never judged.
//! * **Paired timings.** The two files of one A/B session ([`crate::ab`]:
//!   same `extra.ab.session`) are judged round by round instead: per round,
//!   the ratio of medians; the estimate is their geometric mean and the
//!   interval Student's t over rounds ([`crate::paired`]), for each run and
//!   for the suite (per round, the mean of the runs' log ratios). Drift of
//!   the machine between rounds then cancels instead of being mistaken for a
//!   change, which is what lets a 10% slowdown be caught on a noisy machine.
//!
//! Runs are matched by (policy, capacity, objects) within a trace; traces
//! are matched by name (a `bench` file) or are the one trace of a `sim`
//! file, and must be the same file (blake3) read the same way (options,
//! warm-up, GPU model). Runs present on one side only are listed, not
//! judged.
//!
//! Exit codes ([`Report::exit_code`] and [`run_cli`]): 0 nothing regressed;
//! 1 a regression (a deterministic change, or a confident slowdown unless
//! timings are report-only); 2 the inputs cannot be compared, with a message
//! that says why ([`Error::Incomparable`]), or an output could not be
//! written.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ab::AbInfo;
use crate::error::{Error, Result};
use crate::paired;
use crate::results::{ResultsFile, SCHEMA_VERSION};
use crate::sim::RunResult;

/// Bootstrap resamples per comparison unless told otherwise.
pub const DEFAULT_RESAMPLES: usize = 10_000;
/// Seed of every bootstrap (mixed with the run's name, so each run's
/// interval does not depend on which other runs the files hold).
pub const BOOTSTRAP_SEED: u64 = 0xcac4_e5c0_3e5a_11e5;
/// Fewest timing samples on each side for a timing to be judged.
pub const MIN_SAMPLES: usize = 5;
/// Largest results file read (bytes).
const MAX_FILE_BYTES: u64 = 256 << 20;

/// Run fields that identify a run rather than measure it.
const IDENTITY_FIELDS: &[&str] = &["policy", "capacity", "size", "objects"];
/// Run fields derived from compared integers (shown, not compared twice).
const DERIVED_FIELDS: &[&str] = &["miss_ratio", "byte_miss_ratio"];
/// Figures where less is better: an improvement may only lower these.
const COST_FIELDS: &[&str] =
    &["misses", "missed_bytes", "uploads", "upload_bytes", "readbacks", "readback_bytes", "compiles"];
/// Figures that follow from the costs (fewer misses, fewer evictions) and
/// may move either way in an improvement.
const CONSEQUENCE_FIELDS: &[&str] = &["hits", "evictions", "evicted_bytes"];

/// Whether a run field is a timing (not deterministic): `seconds`, and any
/// field ending in `_seconds`, `_ns` or `_samples`.
fn is_timing_field(name: &str) -> bool {
    name == "seconds" || name.ends_with("_seconds") || name.ends_with("_ns") || name.ends_with("_samples")
}

/// How timings count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimingMode {
    /// A confident slowdown is a regression (exit 1).
    Fail,
    /// Slowdowns are reported, never fail (CI machines differ from the
    /// baseline's machine).
    Report,
}

/// Which time samples are judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeBasis {
    /// The steadiest basis both files allow: `normalized`, else `cpu`, else
    /// `wall` (the false-alarm measurement in
    /// `results/2026-11-22-dev-2core/false-alarms/` chose this order).
    Auto,
    /// Wall time (`seconds_samples`, or `seconds`).
    Wall,
    /// On-CPU time of the thread that ran the run: time spent waiting for a
    /// core while other processes ran is not in it, which is what makes it
    /// steadier than wall time on a shared machine.
    Cpu,
    /// On-CPU time divided, sample by sample, by the on-CPU time of
    /// `bench`'s fixed reference kernel measured just before the run
    /// (`extra.reference_seconds_samples`): a machine that is slower for a
    /// while (a neighbour thrashing the shared caches) slows both, and the
    /// ratio cancels it; a slower change to the code slows only the run.
    Normalized,
}

impl std::str::FromStr for TimeBasis {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim() {
            "auto" => Ok(TimeBasis::Auto),
            "wall" => Ok(TimeBasis::Wall),
            "cpu" => Ok(TimeBasis::Cpu),
            "normalized" => Ok(TimeBasis::Normalized),
            _ => Err(format!("unknown time basis `{s}` (auto, wall, cpu, normalized)")),
        }
    }
}

/// How to judge.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CompareOptions {
    /// Smallest slowdown of the suite (geometric mean of the runs' ratios)
    /// worth reporting, as a fraction (0.05 = 5%).
    pub threshold: f64,
    /// Smallest slowdown of a single run worth reporting. A run has fewer
    /// samples than the suite and there are many runs to test, so it needs
    /// a larger margin to stay quiet on noise: twice `threshold` by default.
    pub run_threshold: f64,
    /// Confidence of the bootstrap intervals, in (0.5, 1).
    pub confidence: f64,
    /// Bootstrap resamples.
    pub resamples: usize,
    /// Let runs whose costs only went down pass.
    pub allow_improvements: bool,
    /// Whether slowdowns fail.
    pub timings: TimingMode,
    /// Which time is judged.
    pub basis: TimeBasis,
}

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions {
            threshold: 0.05,
            run_threshold: 0.10,
            confidence: 0.99,
            resamples: DEFAULT_RESAMPLES,
            allow_improvements: false,
            timings: TimingMode::Fail,
            basis: TimeBasis::Auto,
        }
    }
}

/// Parses a threshold: `5%` or `0.05`; must be in [0, 10).
///
/// # Errors
/// Not a number, or out of range.
pub fn parse_threshold(s: &str) -> std::result::Result<f64, String> {
    let t = s.trim();
    let value = match t.strip_suffix('%') {
        Some(num) => num.trim().parse::<f64>().map(|v| v / 100.0),
        None => t.parse::<f64>(),
    }
    .map_err(|_| format!("threshold `{s}`: expected a percentage (`5%`) or a fraction (`0.05`)"))?;
    if !(0.0..10.0).contains(&value) {
        return Err(format!("threshold `{s}`: must be at least 0% and below 1000%"));
    }
    Ok(value)
}

/// Who produced one side.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Side {
    /// The file.
    pub path: PathBuf,
    /// `sim`, `bench`, ...
    pub kind: String,
    /// cachescope version.
    pub version: String,
    /// Git revision of the binary.
    pub git_rev: String,
    /// Host name.
    pub hostname: String,
    /// Logical CPUs.
    pub cpus: usize,
    /// Set when the file was made with the test-only slowdown knob.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_slowdown: Option<f64>,
}

/// One deterministic figure that changed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FigureChange {
    /// The run field (`misses`, `upload_bytes`, ...).
    pub field: String,
    /// Baseline value.
    pub baseline: Value,
    /// Current value.
    pub current: Value,
    /// current - baseline, for integers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delta: Option<i128>,
}

/// What happened to a run's deterministic figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Behaviour {
    /// Every figure equal.
    Unchanged,
    /// Only costs went down (and their consequences moved).
    Improved,
    /// Anything else changed.
    Changed,
}

/// What happened to a run's time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimingVerdict {
    /// The whole interval is above 1 + threshold.
    Slower,
    /// The whole interval is below 1 - threshold.
    Faster,
    /// Neither: within the threshold, or not confidently outside it.
    Unchanged,
    /// Too few samples to judge (shown only).
    NotJudged,
}

/// The timing comparison of one run (or of the whole suite).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Timing {
    /// Median of the baseline's samples, seconds (geometric mean of medians
    /// for the suite).
    pub baseline_seconds: f64,
    /// Median of the current samples, seconds.
    pub current_seconds: f64,
    /// Samples on each side.
    pub baseline_samples: usize,
    /// Samples on the current side.
    pub current_samples: usize,
    /// current / baseline.
    pub ratio: f64,
    /// Lower end of the bootstrap interval of the ratio.
    pub lower: f64,
    /// Upper end.
    pub upper: f64,
    /// The verdict.
    pub verdict: TimingVerdict,
}

/// One matched run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunComparison {
    /// Trace name.
    pub trace: String,
    /// Policy.
    pub policy: String,
    /// Size as asked for (`1%`).
    pub size: String,
    /// Capacity in units.
    pub capacity: u64,
    /// Object cache.
    pub objects: bool,
    /// Baseline miss ratio.
    pub baseline_miss_ratio: f64,
    /// Current miss ratio.
    pub current_miss_ratio: f64,
    /// Deterministic figures that changed.
    pub changes: Vec<FigureChange>,
    /// Their verdict.
    pub behaviour: Behaviour,
    /// The timing comparison.
    pub timing: Timing,
}

impl RunComparison {
    /// `trace policy size`, the way reports name a run.
    pub fn name(&self) -> String {
        format!("{} {} {}", self.trace, self.policy, self.size)
    }
}

/// A run present in one file only.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Unmatched {
    /// `baseline` or `current`: where it is.
    pub only_in: String,
    /// Trace name.
    pub trace: String,
    /// Policy.
    pub policy: String,
    /// Size.
    pub size: String,
    /// Capacity.
    pub capacity: u64,
}

/// The whole comparison.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// The baseline file.
    pub baseline: Side,
    /// The current file.
    pub current: Side,
    /// How it was judged.
    pub options: CompareOptions,
    /// The time judged: `wall` or `cpu` (never `auto`).
    pub basis: TimeBasis,
    /// Matched runs, in the baseline's order.
    pub runs: Vec<RunComparison>,
    /// Geometric mean of the judged runs' time ratios, with its interval.
    pub suite_timing: Option<Timing>,
    /// Runs in one file only.
    pub unmatched: Vec<Unmatched>,
    /// Remarks for the reader (different machines, the test knob).
    pub notes: Vec<String>,
    /// Set when the files are the two sides of one A/B session and the
    /// timings were judged paired, round by round.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paired: Option<Pairing>,
}

/// The shape of an A/B session whose files were judged paired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pairing {
    /// Rounds of the session.
    pub rounds: usize,
    /// Samples of every run per round and side.
    pub repeats_per_round: usize,
}

impl Report {
    /// Runs whose deterministic figures changed in a way that fails.
    pub fn behaviour_regressions(&self) -> Vec<&RunComparison> {
        self.runs
            .iter()
            .filter(|r| match r.behaviour {
                Behaviour::Unchanged => false,
                Behaviour::Improved => !self.options.allow_improvements,
                Behaviour::Changed => true,
            })
            .collect()
    }

    /// Runs confidently slower than the threshold.
    pub fn slower_runs(&self) -> Vec<&RunComparison> {
        self.runs.iter().filter(|r| r.timing.verdict == TimingVerdict::Slower).collect()
    }

    /// Whether the suite as a whole is confidently slower.
    pub fn suite_slower(&self) -> bool {
        self.suite_timing.as_ref().is_some_and(|t| t.verdict == TimingVerdict::Slower)
    }

    /// Whether any timing is confidently slower (run or suite).
    pub fn any_slowdown(&self) -> bool {
        self.suite_slower() || !self.slower_runs().is_empty()
    }

    /// Whether the comparison fails.
    pub fn regressed(&self) -> bool {
        !self.behaviour_regressions().is_empty() || (self.options.timings == TimingMode::Fail && self.any_slowdown())
    }

    /// 0 nothing regressed, 1 a regression.
    pub fn exit_code(&self) -> i32 {
        i32::from(self.regressed())
    }
}

// ---------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------

/// One trace of a file and its runs.
struct Group {
    name: String,
    identity: Value,
    settings: Value,
    runs: Vec<GroupRun>,
}

/// One run of a file.
struct GroupRun {
    /// Typed (for samples).
    run: RunResult,
    /// Raw (for every field, including ones this version does not know).
    raw: Map<String, Value>,
    /// On-CPU samples, where the file has them.
    cpu: Option<Vec<f64>>,
    /// Reference-kernel samples, where the file has them.
    reference: Option<Vec<f64>>,
}

impl GroupRun {
    /// The samples judged on `basis` (which the file is known to have;
    /// wall time otherwise): `seconds_samples`, or `seconds` alone.
    fn samples(&self, basis: TimeBasis) -> Vec<f64> {
        match (basis, &self.cpu, &self.reference) {
            (TimeBasis::Cpu, Some(c), _) => c.clone(),
            (TimeBasis::Normalized, Some(c), Some(r)) => c.iter().zip(r).map(|(c, r)| c / r).collect(),
            _ if self.run.seconds_samples.is_empty() => vec![self.run.seconds],
            _ => self.run.seconds_samples.clone(),
        }
    }
}

struct Loaded {
    file: ResultsFile,
    groups: Vec<Group>,
}

/// The entries of a `bench` file's `trace` array.
#[derive(Deserialize)]
struct TraceEntry {
    name: String,
    identity: Value,
    #[serde(default)]
    settings: Value,
}

fn read_value(path: &Path) -> std::result::Result<Value, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(format!("`{}` is {} bytes; results files are at most 256 MiB", path.display(), meta.len()));
    }
    let text = std::fs::read(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    serde_json::from_slice(&text).map_err(|e| format!("`{}` is not JSON: {e}", path.display()))
}

fn schema_version(path: &Path, value: &Value) -> std::result::Result<u64, String> {
    let obj =
        value.as_object().ok_or_else(|| format!("`{}` is not a results file: not a JSON object", path.display()))?;
    match obj.get("schema_version") {
        Some(v) => v.as_u64().ok_or_else(|| {
            format!("`{}` is not a results file: `schema_version` is {v}, not a whole number", path.display())
        }),
        None => Err(format!("`{}` is not a results file: missing field `schema_version`", path.display())),
    }
}

fn load(path: &Path, value: Value) -> std::result::Result<Loaded, String> {
    let not_results = |e: String| format!("`{}` is not a results file: {e}", path.display());
    let file: ResultsFile = serde_json::from_value(value.clone()).map_err(|e| not_results(e.to_string()))?;
    let raw_runs: Vec<Map<String, Value>> = value
        .get("runs")
        .and_then(Value::as_array)
        .map(|runs| runs.iter().filter_map(|r| r.as_object().cloned()).collect())
        .unwrap_or_default();
    let per_run = |field: &str| -> std::result::Result<Vec<Option<Vec<f64>>>, String> {
        let Some(v) = file.extra.get(field) else { return Ok(vec![None; file.runs.len()]) };
        let lists: Vec<Vec<f64>> = serde_json::from_value(v.clone())
            .map_err(|e| not_results(format!("`extra.{field}` must be a list of lists of seconds: {e}")))?;
        if lists.len() != file.runs.len() {
            return Err(not_results(format!(
                "`extra.{field}` has {} entries for {} runs",
                lists.len(),
                file.runs.len()
            )));
        }
        Ok(lists.into_iter().map(Some).collect())
    };
    let (cpu, reference) = (per_run("cpu_seconds_samples")?, per_run("reference_seconds_samples")?);
    let mut runs: Vec<GroupRun> = file
        .runs
        .iter()
        .cloned()
        .zip(raw_runs)
        .zip(cpu.into_iter().zip(reference))
        .map(|((run, raw), (cpu, reference))| GroupRun { run, raw, cpu, reference })
        .collect();
    for (i, r) in runs.iter().enumerate() {
        let wall = r.samples(TimeBasis::Wall);
        let all = wall.iter().chain(r.cpu.iter().flatten()).chain(r.reference.iter().flatten());
        if let Some(bad) = all.clone().find(|s| !(s.is_finite() && **s >= 0.0)) {
            return Err(not_results(format!(
                "run {i} ({} {}): timing sample {bad} is not a time",
                r.run.policy, r.run.size
            )));
        }
        if let (Some(c), Some(rf)) = (&r.cpu, &r.reference)
            && (c.len() != rf.len() || rf.iter().any(|&x| x <= 0.0))
        {
            return Err(not_results(format!(
                "run {i} ({} {}): on-CPU and reference samples do not pair up",
                r.run.policy, r.run.size
            )));
        }
    }
    let groups = if file.kind == "bench" {
        let entries: Vec<TraceEntry> = serde_json::from_value(file.trace.clone())
            .map_err(|e| not_results(format!("a `bench` file's `trace` must be a list of {{name, identity}}: {e}")))?;
        let names: Vec<String> = match file.extra.get("run_traces") {
            Some(v) => serde_json::from_value(v.clone())
                .map_err(|e| not_results(format!("`extra.run_traces` must be a list of trace names: {e}")))?,
            None => return Err(not_results("missing field `extra.run_traces` (which trace each run replayed)".into())),
        };
        if names.len() != runs.len() {
            return Err(not_results(format!(
                "`extra.run_traces` names {} traces for {} runs",
                names.len(),
                runs.len()
            )));
        }
        let mut groups: Vec<Group> = entries
            .into_iter()
            .map(|e| Group { name: e.name, identity: e.identity, settings: e.settings, runs: Vec::new() })
            .collect();
        for (name, run) in names.into_iter().zip(runs.drain(..)) {
            let group = groups
                .iter_mut()
                .find(|g| g.name == name)
                .ok_or_else(|| not_results(format!("a run names trace `{name}`, which `trace` does not list")))?;
            group.runs.push(run);
        }
        groups
    } else {
        let name = file
            .trace
            .get("path")
            .and_then(Value::as_str)
            .map(|p| Path::new(p).file_name().map_or(p.to_string(), |n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "trace".into());
        let settings = serde_json::json!({
            "gpu": file.config.get("gpu").cloned().unwrap_or(Value::Null),
            "warmup": file.config.get("warmup").cloned().unwrap_or(Value::Null),
        });
        vec![Group { name, identity: file.trace.clone(), settings, runs }]
    };
    Ok(Loaded { file, groups })
}

fn side(path: &Path, file: &ResultsFile) -> Side {
    Side {
        path: path.to_owned(),
        kind: file.kind.clone(),
        version: file.tool.version.clone(),
        git_rev: file.tool.git_rev.clone(),
        hostname: file.tool.machine.hostname.clone(),
        cpus: file.tool.machine.cpus,
        test_slowdown: file.extra.get("test_slowdown").and_then(Value::as_f64),
    }
}

fn has_cpu(l: &Loaded) -> bool {
    l.groups.iter().all(|g| g.runs.iter().all(|r| r.cpu.is_some()))
}

fn has_reference(l: &Loaded) -> bool {
    l.groups.iter().all(|g| g.runs.iter().all(|r| r.reference.is_some()))
}

/// Why two trace identities are not the same trace read the same way, if
/// they are not.
fn identity_mismatch(name: &str, base: &Group, cur: &Group) -> Option<String> {
    let path_of = |g: &Group| g.identity.get("path").and_then(Value::as_str).unwrap_or("?").to_string();
    let hash_of = |g: &Group| g.identity.get("blake3").and_then(Value::as_str).map(str::to_string);
    let (Some(bh), Some(ch)) = (hash_of(base), hash_of(cur)) else {
        let which = if hash_of(base).is_none() { "baseline" } else { "current" };
        return Some(format!("trace `{name}`: the {which} file's trace identity has no `blake3`"));
    };
    if bh != ch {
        return Some(format!(
            "different traces for `{name}`: baseline `{}` (blake3 {}) vs current `{}` (blake3 {})",
            path_of(base),
            short_hash(&bh),
            path_of(cur),
            short_hash(&ch)
        ));
    }
    // Same file; it must also have been read the same way.
    let (Some(b), Some(c)) = (base.identity.as_object(), cur.identity.as_object()) else {
        return Some(format!("trace `{name}`: a trace identity is not a JSON object"));
    };
    let keys: BTreeSet<&String> = b.keys().chain(c.keys()).collect();
    for key in keys {
        if key == "path" {
            continue; // the same file may sit elsewhere
        }
        if b.get(key) != c.get(key) {
            return Some(format!(
                "trace `{name}` (same file) was read differently: `{key}` is {} in the baseline and {} in the current",
                show(b.get(key)),
                show(c.get(key))
            ));
        }
    }
    if base.settings != cur.settings {
        return Some(format!(
            "trace `{name}` was simulated differently: settings {} in the baseline, {} in the current",
            base.settings, cur.settings
        ));
    }
    None
}

fn show(v: Option<&Value>) -> String {
    v.map_or_else(|| "absent".to_string(), Value::to_string)
}

fn short_hash(h: &str) -> &str {
    h.get(..16).unwrap_or(h)
}

// ---------------------------------------------------------------------------
// Comparing
// ---------------------------------------------------------------------------

/// Compares two results files.
///
/// # Errors
/// [`Error::Incomparable`] when a file cannot be read or is not a results
/// file, the schema versions or kinds differ, a trace differs, or a run of
/// one file lacks a figure the matching run of the other has.
pub fn compare_files(baseline: &Path, current: &Path, options: &CompareOptions) -> Result<Report> {
    let incomparable =
        |why: String| Error::Incomparable { baseline: baseline.to_owned(), current: current.to_owned(), why };
    if !(options.confidence > 0.5 && options.confidence < 1.0) {
        return Err(Error::config(format!("confidence {} must be in (0.5, 1)", options.confidence)));
    }
    if options.resamples < 100 {
        return Err(Error::config(format!("{} resamples are too few (at least 100)", options.resamples)));
    }
    let base_value = read_value(baseline).map_err(incomparable)?;
    let cur_value = read_value(current).map_err(incomparable)?;
    let (bv, cv) = (
        schema_version(baseline, &base_value).map_err(incomparable)?,
        schema_version(current, &cur_value).map_err(incomparable)?,
    );
    if bv != cv {
        return Err(incomparable(format!("schema versions differ: the baseline is version {bv}, the current {cv}")));
    }
    if bv != u64::from(SCHEMA_VERSION) {
        return Err(incomparable(format!(
            "both files are schema version {bv}; this cachescope reads version {SCHEMA_VERSION}"
        )));
    }
    let base = load(baseline, base_value).map_err(incomparable)?;
    let cur = load(current, cur_value).map_err(incomparable)?;
    let both_cpu = has_cpu(&base) && has_cpu(&cur);
    let both_reference = both_cpu && has_reference(&base) && has_reference(&cur);
    let basis = match options.basis {
        TimeBasis::Auto if both_reference => TimeBasis::Normalized,
        TimeBasis::Auto if both_cpu => TimeBasis::Cpu,
        TimeBasis::Auto => TimeBasis::Wall,
        TimeBasis::Cpu if !both_cpu => {
            let which = if has_cpu(&base) { "current" } else { "baseline" };
            return Err(incomparable(format!(
                "on-CPU times asked for, but the {which} file has no `extra.cpu_seconds_samples` (use --time wall)"
            )));
        }
        TimeBasis::Normalized if !both_reference => {
            let which = if has_cpu(&base) && has_reference(&base) { "current" } else { "baseline" };
            return Err(incomparable(format!(
                "normalized times asked for, but the {which} file lacks `extra.cpu_seconds_samples` or \
                 `extra.reference_seconds_samples` (use --time cpu or wall)"
            )));
        }
        b => b,
    };
    if base.file.kind != cur.file.kind {
        return Err(incomparable(format!(
            "the baseline is a `{}` file, the current a `{}` file",
            base.file.kind, cur.file.kind
        )));
    }
    let mut runs = Vec::new();
    let mut unmatched = Vec::new();
    let mut notes = Vec::new();
    let paired = match (AbInfo::of(&base.file), AbInfo::of(&cur.file)) {
        (Some(b), Some(c))
            if b.session == c.session && b.rounds == c.rounds && b.repeats_per_round == c.repeats_per_round =>
        {
            Some(Pairing { rounds: b.rounds, repeats_per_round: b.repeats_per_round })
        }
        (Some(_), Some(_)) => {
            notes.push("the files come from different A/B sessions: timings judged unpaired".into());
            None
        }
        _ => None,
    };
    let single = base.file.kind != "bench";
    let mut matched_groups = 0;
    for bg in &base.groups {
        let cg = if single { cur.groups.first() } else { cur.groups.iter().find(|g| g.name == bg.name) };
        let Some(cg) = cg else {
            notes.push(format!(
                "trace `{}` is only in the baseline; its {} runs are not compared",
                bg.name,
                bg.runs.len()
            ));
            continue;
        };
        if let Some(why) = identity_mismatch(&bg.name, bg, cg) {
            return Err(incomparable(why));
        }
        matched_groups += 1;
        compare_group(bg, cg, options, basis, paired, &mut runs, &mut unmatched).map_err(incomparable)?;
    }
    if !single {
        for cg in cur.groups.iter().filter(|cg| !base.groups.iter().any(|bg| bg.name == cg.name)) {
            notes.push(format!(
                "trace `{}` is only in the current file; its {} runs are not compared",
                cg.name,
                cg.runs.len()
            ));
        }
    }
    if matched_groups == 0 {
        return Err(incomparable("the files have no trace in common".into()));
    }
    let (bs, cs) = (side(baseline, &base.file), side(current, &cur.file));
    if (bs.hostname.as_str(), bs.cpus) != (cs.hostname.as_str(), cs.cpus) {
        notes.push(format!(
            "timings come from different machines (baseline `{}`, {} cpus; current `{}`, {} cpus): read time ratios with care",
            bs.hostname, bs.cpus, cs.hostname, cs.cpus
        ));
    }
    for (s, which) in [(&bs, "baseline"), (&cs, "current")] {
        if let Some(x) = s.test_slowdown {
            notes.push(format!(
                "the {which} file was made with the test-only knob CACHESCOPE_TEST_SLOWDOWN={x}: its times include injected work"
            ));
        }
    }
    let suite_timing = suite_timing(&base, &cur, &runs, options, basis, paired);
    Ok(Report {
        baseline: bs,
        current: cs,
        options: options.clone(),
        basis,
        runs,
        suite_timing,
        unmatched,
        notes,
        paired,
    })
}

type RunKey = (String, u64, bool);

fn key_of(run: &RunResult) -> RunKey {
    (run.policy.clone(), run.capacity, run.objects)
}

fn compare_group(
    base: &Group,
    cur: &Group,
    options: &CompareOptions,
    basis: TimeBasis,
    paired: Option<Pairing>,
    out: &mut Vec<RunComparison>,
    unmatched: &mut Vec<Unmatched>,
) -> std::result::Result<(), String> {
    let index = |g: &Group, which: &str| -> std::result::Result<BTreeMap<RunKey, usize>, String> {
        let mut map = BTreeMap::new();
        for (i, GroupRun { run, .. }) in g.runs.iter().enumerate() {
            if map.insert(key_of(run), i).is_some() {
                return Err(format!(
                    "the {which} file has two runs of policy `{}` at capacity {} on trace `{}`",
                    run.policy, run.capacity, g.name
                ));
            }
        }
        Ok(map)
    };
    let base_index = index(base, "baseline")?;
    let cur_index = index(cur, "current")?;
    let unmatched_of = |g: &Group, i: usize, only_in: &str| {
        let r = &g.runs[i].run;
        Unmatched {
            only_in: only_in.into(),
            trace: g.name.clone(),
            policy: r.policy.clone(),
            size: r.size.clone(),
            capacity: r.capacity,
        }
    };
    for b in &base.runs {
        let (b_run, b_raw) = (&b.run, &b.raw);
        let Some(&ci) = cur_index.get(&key_of(b_run)) else {
            unmatched.push(unmatched_of(base, base_index[&key_of(b_run)], "baseline"));
            continue;
        };
        let c = &cur.runs[ci];
        let (c_run, c_raw) = (&c.run, &c.raw);
        let where_ = format!("trace `{}` policy `{}` size `{}`", base.name, b_run.policy, b_run.size);
        let changes = figure_changes(b_raw, c_raw).map_err(|field| {
            let (has, lacks) = if b_raw.get(&field).is_some_and(|v| !v.is_null()) {
                ("baseline", "current")
            } else {
                ("current", "baseline")
            };
            format!("{where_}: field `{field}` is in the {has} run but missing from the {lacks} run")
        })?;
        let behaviour = classify(&changes);
        let name = format!("{}/{}/{}/{}", base.name, b_run.policy, b_run.capacity, b_run.objects);
        let mut timing = match paired {
            Some(p) => time_run_paired(&b.samples(basis), &c.samples(basis), options, p),
            None => time_run(&b.samples(basis), &c.samples(basis), options, seed_for(&name)),
        };
        if basis == TimeBasis::Normalized {
            // Judged on normalized samples; shown in on-CPU seconds.
            timing.baseline_seconds = median(&b.samples(TimeBasis::Cpu));
            timing.current_seconds = median(&c.samples(TimeBasis::Cpu));
        }
        out.push(RunComparison {
            trace: base.name.clone(),
            policy: b_run.policy.clone(),
            size: b_run.size.clone(),
            capacity: b_run.capacity,
            objects: b_run.objects,
            baseline_miss_ratio: b_run.miss_ratio,
            current_miss_ratio: c_run.miss_ratio,
            changes,
            behaviour,
            timing,
        });
    }
    for (key, &i) in &cur_index {
        if !base_index.contains_key(key) {
            unmatched.push(unmatched_of(cur, i, "current"));
        }
    }
    Ok(())
}

/// The deterministic figures that differ; `Err(field)` when a figure is on
/// one side only.
fn figure_changes(
    base: &Map<String, Value>,
    cur: &Map<String, Value>,
) -> std::result::Result<Vec<FigureChange>, String> {
    let fields: BTreeSet<&String> = base.keys().chain(cur.keys()).collect();
    let mut changes = Vec::new();
    // Report in a stable, readable order: known figures first.
    let order = |f: &str| COST_FIELDS.iter().chain(CONSEQUENCE_FIELDS).position(|k| *k == f).unwrap_or(usize::MAX);
    let mut fields: Vec<&String> = fields
        .into_iter()
        .filter(|f| {
            !IDENTITY_FIELDS.contains(&f.as_str()) && !DERIVED_FIELDS.contains(&f.as_str()) && !is_timing_field(f)
        })
        .collect();
    fields.sort_by_key(|f| (order(f), (*f).clone()));
    for field in fields {
        let b = base.get(field).filter(|v| !v.is_null());
        let c = cur.get(field).filter(|v| !v.is_null());
        match (b, c) {
            (Some(b), Some(c)) if b != c => {
                let delta = match (b.as_u64(), c.as_u64()) {
                    (Some(x), Some(y)) => Some(i128::from(y) - i128::from(x)),
                    _ => None,
                };
                changes.push(FigureChange { field: field.clone(), baseline: b.clone(), current: c.clone(), delta });
            }
            (Some(_), None) | (None, Some(_)) => return Err(field.clone()),
            _ => {}
        }
    }
    Ok(changes)
}

fn classify(changes: &[FigureChange]) -> Behaviour {
    if changes.is_empty() {
        return Behaviour::Unchanged;
    }
    let mut cost_down = false;
    for c in changes {
        if COST_FIELDS.contains(&c.field.as_str()) {
            match c.delta {
                Some(d) if d < 0 => cost_down = true,
                _ => return Behaviour::Changed,
            }
        } else if !CONSEQUENCE_FIELDS.contains(&c.field.as_str()) {
            return Behaviour::Changed;
        }
    }
    if cost_down { Behaviour::Improved } else { Behaviour::Changed }
}

// ---------------------------------------------------------------------------
// Statistics
// ---------------------------------------------------------------------------

/// FNV-1a of a run's name, mixed into [`BOOTSTRAP_SEED`].
fn seed_for(name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    BOOTSTRAP_SEED ^ h
}

/// Median of a non-empty slice (sorts a copy).
pub fn median(samples: &[f64]) -> f64 {
    let mut v = samples.to_vec();
    median_in_place(&mut v)
}

fn median_in_place(v: &mut [f64]) -> f64 {
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    let mid = n / 2;
    let (_, &mut hi, _) = v.select_nth_unstable_by(mid, f64::total_cmp);
    if n % 2 == 1 {
        hi
    } else {
        let lo = v[..mid].iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (lo + hi) / 2.0
    }
}

/// `resamples` bootstrap replicates of median(current) / median(baseline),
/// each side resampled with replacement; seeded, so deterministic.
pub fn bootstrap_ratios(baseline: &[f64], current: &[f64], resamples: usize, seed: u64) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut b, mut c) = (vec![0.0; baseline.len()], vec![0.0; current.len()]);
    (0..resamples)
        .map(|_| {
            for x in b.iter_mut() {
                *x = baseline[rng.random_range(0..baseline.len())];
            }
            for x in c.iter_mut() {
                *x = current[rng.random_range(0..current.len())];
            }
            median_in_place(&mut c) / median_in_place(&mut b)
        })
        .collect()
}

/// The percentile interval of `replicates` at `confidence` (two-sided).
pub fn percentile_interval(replicates: &[f64], confidence: f64) -> (f64, f64) {
    let mut v = replicates.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    let alpha = (1.0 - confidence) / 2.0;
    let lo = ((alpha * n as f64).floor() as usize).min(n - 1);
    let hi = (((1.0 - alpha) * n as f64).ceil() as usize).clamp(1, n) - 1;
    (v[lo], v[hi])
}

fn verdict(lower: f64, upper: f64, threshold: f64) -> TimingVerdict {
    if lower > 1.0 + threshold {
        TimingVerdict::Slower
    } else if upper < 1.0 - threshold {
        TimingVerdict::Faster
    } else {
        TimingVerdict::Unchanged
    }
}

fn time_run(base: &[f64], cur: &[f64], options: &CompareOptions, seed: u64) -> Timing {
    let (bm, cm) = (median(base), median(cur));
    let ratio = if bm > 0.0 { cm / bm } else { f64::NAN };
    let mut t = Timing {
        baseline_seconds: bm,
        current_seconds: cm,
        baseline_samples: base.len(),
        current_samples: cur.len(),
        ratio,
        lower: f64::NAN,
        upper: f64::NAN,
        verdict: TimingVerdict::NotJudged,
    };
    if base.len() >= MIN_SAMPLES && cur.len() >= MIN_SAMPLES && base.iter().all(|&s| s > 0.0) {
        let (lo, hi) = percentile_interval(&bootstrap_ratios(base, cur, options.resamples, seed), options.confidence);
        t.lower = lo;
        t.upper = hi;
        t.verdict = verdict(lo, hi, options.run_threshold);
    }
    t
}

/// A run's timing judged paired, round by round ([`crate::paired`]).
fn time_run_paired(base: &[f64], cur: &[f64], options: &CompareOptions, p: Pairing) -> Timing {
    let mut t = Timing {
        baseline_seconds: median(base),
        current_seconds: median(cur),
        baseline_samples: base.len(),
        current_samples: cur.len(),
        ratio: f64::NAN,
        lower: f64::NAN,
        upper: f64::NAN,
        verdict: TimingVerdict::NotJudged,
    };
    if let Some(logs) = paired::round_log_ratios(base, cur, p.rounds, p.repeats_per_round)
        && let Some(i) = paired::mean_interval(&logs, options.confidence)
    {
        t.ratio = i.ratio;
        if p.rounds >= crate::ab::MIN_ROUNDS {
            (t.lower, t.upper) = (i.lower, i.upper);
            t.verdict = verdict(i.lower, i.upper, options.run_threshold);
        }
    }
    t
}

/// The geometric mean of the judged runs' ratios, bootstrapped jointly
/// (replicate `i` is the geometric mean of every run's replicate `i`); for
/// paired files, Student's t over rounds of the per-round mean log ratio.
fn suite_timing(
    base: &Loaded,
    cur: &Loaded,
    runs: &[RunComparison],
    options: &CompareOptions,
    basis: TimeBasis,
    paired: Option<Pairing>,
) -> Option<Timing> {
    let judged: Vec<&RunComparison> = runs.iter().filter(|r| r.timing.verdict != TimingVerdict::NotJudged).collect();
    if judged.len() < 2 {
        return None;
    }
    let find = |l: &Loaded, r: &RunComparison| -> Option<Vec<f64>> {
        let g = if l.file.kind == "bench" { l.groups.iter().find(|g| g.name == r.trace)? } else { l.groups.first()? };
        g.runs.iter().find(|x| key_of(&x.run) == (r.policy.clone(), r.capacity, r.objects)).map(|x| x.samples(basis))
    };
    let mut log_sum = vec![0.0; options.resamples];
    let mut round_log_sum = vec![0.0; paired.map_or(0, |p| p.rounds)];
    let (mut log_b, mut log_c, mut log_r) = (0.0, 0.0, 0.0);
    for r in &judged {
        let (b, c) = (find(base, r)?, find(cur, r)?);
        if let Some(p) = paired {
            let logs = paired::round_log_ratios(&b, &c, p.rounds, p.repeats_per_round)?;
            for (acc, l) in round_log_sum.iter_mut().zip(logs) {
                *acc += l;
            }
            log_b += r.timing.baseline_seconds.ln();
            log_c += r.timing.current_seconds.ln();
            continue;
        }
        let name = format!("suite/{}/{}/{}/{}", r.trace, r.policy, r.capacity, r.objects);
        for (acc, x) in log_sum.iter_mut().zip(bootstrap_ratios(&b, &c, options.resamples, seed_for(&name))) {
            *acc += x.ln();
        }
        log_b += r.timing.baseline_seconds.ln();
        log_c += r.timing.current_seconds.ln();
        log_r += r.timing.ratio.ln();
    }
    let n = judged.len() as f64;
    if paired.is_some() {
        let per_round: Vec<f64> = round_log_sum.iter().map(|s| s / n).collect();
        let i = paired::mean_interval(&per_round, options.confidence)?;
        return Some(Timing {
            baseline_seconds: (log_b / n).exp(),
            current_seconds: (log_c / n).exp(),
            baseline_samples: judged.len(),
            current_samples: judged.len(),
            ratio: i.ratio,
            lower: i.lower,
            upper: i.upper,
            verdict: verdict(i.lower, i.upper, options.threshold),
        });
    }
    let replicates: Vec<f64> = log_sum.iter().map(|s| (s / n).exp()).collect();
    let (lower, upper) = percentile_interval(&replicates, options.confidence);
    Some(Timing {
        baseline_seconds: (log_b / n).exp(),
        current_seconds: (log_c / n).exp(),
        baseline_samples: judged.len(),
        current_samples: judged.len(),
        ratio: (log_r / n).exp(),
        lower,
        upper,
        verdict: verdict(lower, upper, options.threshold),
    })
}

// ---------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------

/// Output formats of `compare`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Plain text for a terminal or a CI log.
    Text,
    /// Markdown for a pull-request comment.
    Markdown,
    /// The [`Report`] as JSON.
    Json,
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(Format::Text),
            "markdown" | "md" => Ok(Format::Markdown),
            "json" => Ok(Format::Json),
            _ => Err(format!("unknown format `{s}` (text, markdown, json)")),
        }
    }
}

fn fmt_seconds(s: f64) -> String {
    if !s.is_finite() {
        "-".into()
    } else if s >= 1.0 {
        format!("{s:.3} s")
    } else if s >= 1e-3 {
        format!("{:.2} ms", s * 1e3)
    } else {
        format!("{:.1} µs", s * 1e6)
    }
}

fn fmt_interval(t: &Timing) -> String {
    if t.lower.is_finite() { format!("[{:.3}, {:.3}]", t.lower, t.upper) } else { "-".into() }
}

fn fmt_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn fmt_change(c: &FigureChange) -> String {
    match (c.delta, c.baseline.as_f64()) {
        (Some(d), Some(b)) if b != 0.0 => format!("{d:+} ({:+.3}%)", d as f64 / b * 100.0),
        (Some(d), _) => format!("{d:+}"),
        _ => "changed".into(),
    }
}

fn verdict_word(v: TimingVerdict) -> &'static str {
    match v {
        TimingVerdict::Slower => "SLOWER",
        TimingVerdict::Faster => "faster",
        TimingVerdict::Unchanged => "unchanged",
        TimingVerdict::NotJudged => "not judged",
    }
}

fn headline(r: &Report) -> String {
    let changed = r.behaviour_regressions().len();
    let improved = r.runs.iter().filter(|x| x.behaviour == Behaviour::Improved).count();
    let slower = r.slower_runs().len();
    let mut parts = Vec::new();
    if changed > 0 {
        parts.push(format!("{changed} of {} runs changed behaviour", r.runs.len()));
    }
    if improved > 0 && r.options.allow_improvements {
        parts.push(format!("{improved} improved (allowed)"));
    }
    if slower > 0 || r.suite_slower() {
        let how = if r.options.timings == TimingMode::Report { " (timings report-only)" } else { "" };
        let suite = if r.suite_slower() { ", suite slower" } else { "" };
        parts.push(format!("{slower} runs slower than {:.0}%{suite}{how}", r.options.run_threshold * 100.0));
    }
    if parts.is_empty() {
        parts.push(format!(
            "{} runs, no change in behaviour, no slowdown beyond {:.0}% (suite) or {:.0}% (a run)",
            r.runs.len(),
            r.options.threshold * 100.0,
            r.options.run_threshold * 100.0
        ));
    }
    let word = if r.regressed() { "REGRESSION" } else { "ok" };
    format!("{word}: {}", parts.join("; "))
}

fn side_line(s: &Side) -> String {
    format!(
        "`{}` ({}, cachescope {} @ {}, {}, {} cpus)",
        s.path.display(),
        s.kind,
        s.version,
        s.git_rev,
        s.hostname,
        s.cpus
    )
}

const BEHAVIOUR_NOTE: &str = "Deterministic figures are exact: any change means the simulated behaviour changed. \
If the change is intended, regenerate the baseline (`cachescope bench <suite> --out <baseline>`) in the same change.";

impl Report {
    /// Renders the report.
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Text => self.render_text(),
            Format::Markdown => self.render_markdown(),
            Format::Json => serde_json::to_string_pretty(self).unwrap_or_default() + "\n",
        }
    }

    fn basis_words(&self) -> &'static str {
        match self.basis {
            TimeBasis::Normalized => "on-CPU time / reference kernel",
            TimeBasis::Cpu => "on-CPU time",
            _ => "wall time",
        }
    }

    fn method_line(&self) -> String {
        if let Some(p) = self.paired {
            return format!(
                "timings ({}): paired A/B session, {} rounds of {} sample(s) per run and side, taken back to back; \
                 per round the ratio current/baseline; estimate their geometric mean, {:.0}% Student t interval \
                 over rounds; slower/faster only when the whole interval is beyond ±{:.1}% (suite) or ±{:.1}% (a run){}",
                self.basis_words(),
                p.rounds,
                p.repeats_per_round,
                self.options.confidence * 100.0,
                self.options.threshold * 100.0,
                self.options.run_threshold * 100.0,
                if self.options.timings == TimingMode::Report { "; report-only" } else { "" }
            );
        }
        format!(
            "timings ({}): ratio of medians current/baseline, {:.0}% bootstrap interval ({} resamples, seeded); \
             slower/faster only when the whole interval is beyond ±{:.1}% (suite geometric mean) or ±{:.1}% (a run); \
             fewer than {MIN_SAMPLES} samples: not judged{}",
            self.basis_words(),
            self.options.confidence * 100.0,
            self.options.resamples,
            self.options.threshold * 100.0,
            self.options.run_threshold * 100.0,
            if self.options.timings == TimingMode::Report { "; report-only" } else { "" }
        )
    }

    fn render_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "cachescope compare: {}", headline(self));
        let _ = writeln!(out, "baseline: {}", side_line(&self.baseline));
        let _ = writeln!(out, "current:  {}", side_line(&self.current));
        let _ = writeln!(out, "{}", self.method_line());
        let changed: Vec<&RunComparison> = self.runs.iter().filter(|r| r.behaviour != Behaviour::Unchanged).collect();
        if !changed.is_empty() {
            let _ = writeln!(out, "\nbehaviour changes ({BEHAVIOUR_NOTE})");
            for r in changed {
                let what = match r.behaviour {
                    Behaviour::Improved if self.options.allow_improvements => "improved (allowed)",
                    Behaviour::Improved => "improved, but changed",
                    _ => "CHANGED",
                };
                let _ = writeln!(
                    out,
                    "  trace {} policy {} size {} (capacity {}{}): {what}",
                    r.trace,
                    r.policy,
                    r.size,
                    r.capacity,
                    if r.objects { " objects" } else { " bytes" }
                );
                for c in &r.changes {
                    let _ = writeln!(
                        out,
                        "    {:<16} {} -> {}  {}",
                        c.field,
                        fmt_value(&c.baseline),
                        fmt_value(&c.current),
                        fmt_change(c)
                    );
                }
            }
        }
        let _ = writeln!(
            out,
            "\n{:<16} {:<12} {:>9} {:>11} {:>11} {:>7} {:>17}  time",
            "trace", "policy", "size", "baseline", "current", "ratio", "interval"
        );
        for r in &self.runs {
            let t = &r.timing;
            let _ = writeln!(
                out,
                "{:<16} {:<12} {:>9} {:>11} {:>11} {:>7.3} {:>17}  {}{}",
                r.trace,
                r.policy,
                r.size,
                fmt_seconds(t.baseline_seconds),
                fmt_seconds(t.current_seconds),
                t.ratio,
                fmt_interval(t),
                verdict_word(t.verdict),
                if r.behaviour == Behaviour::Unchanged { "" } else { "  (behaviour changed)" }
            );
        }
        if let Some(t) = &self.suite_timing {
            let _ = writeln!(
                out,
                "\nsuite: geometric mean of {} judged runs' ratios {:.3} {}: {}",
                t.baseline_samples,
                t.ratio,
                fmt_interval(t),
                verdict_word(t.verdict)
            );
        }
        for u in &self.unmatched {
            let _ = writeln!(
                out,
                "only in the {}: trace {} policy {} size {} (not compared)",
                u.only_in, u.trace, u.policy, u.size
            );
        }
        for n in &self.notes {
            let _ = writeln!(out, "note: {n}");
        }
        out
    }

    fn render_markdown(&self) -> String {
        let mut out = String::new();
        let icon = if self.regressed() { "❌" } else { "✅" };
        let _ = writeln!(out, "### {icon} cachescope compare: {}\n", headline(self));
        let _ = writeln!(out, "Baseline {}  \nCurrent {}\n", side_line(&self.baseline), side_line(&self.current));
        let changed: Vec<&RunComparison> = self.runs.iter().filter(|r| r.behaviour != Behaviour::Unchanged).collect();
        let slower: Vec<&RunComparison> = self
            .runs
            .iter()
            .filter(|r| matches!(r.timing.verdict, TimingVerdict::Slower | TimingVerdict::Faster))
            .collect();
        if changed.is_empty()
            && slower.is_empty()
            && self.suite_timing.as_ref().is_none_or(|t| t.verdict == TimingVerdict::Unchanged)
        {
            let _ = writeln!(out, "No changes.\n");
        } else {
            let _ = writeln!(out, "| trace | policy | size | figure | baseline | current | change |");
            let _ = writeln!(out, "|---|---|---|---|---:|---:|---|");
            for r in &changed {
                for c in &r.changes {
                    let _ = writeln!(
                        out,
                        "| {} | {} | {} | {} | {} | {} | {} |",
                        r.trace,
                        r.policy,
                        r.size,
                        c.field,
                        fmt_value(&c.baseline),
                        fmt_value(&c.current),
                        fmt_change(c)
                    );
                }
            }
            for r in &slower {
                let t = &r.timing;
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | time (median) | {} | {} | ×{:.3} {} {} |",
                    r.trace,
                    r.policy,
                    r.size,
                    fmt_seconds(t.baseline_seconds),
                    fmt_seconds(t.current_seconds),
                    t.ratio,
                    fmt_interval(t),
                    verdict_word(t.verdict)
                );
            }
            if let Some(t) = self.suite_timing.as_ref().filter(|t| t.verdict != TimingVerdict::Unchanged) {
                let _ = writeln!(
                    out,
                    "| *suite* | | | time (geometric mean) | | | ×{:.3} {} {} |",
                    t.ratio,
                    fmt_interval(t),
                    verdict_word(t.verdict)
                );
            }
            out.push('\n');
            if !changed.is_empty() {
                let _ = writeln!(out, "{BEHAVIOUR_NOTE}\n");
            }
        }
        if let Some(t) = &self.suite_timing {
            let _ = writeln!(
                out,
                "Suite time: ×{:.3} {} over {} runs ({}).\n",
                t.ratio,
                fmt_interval(t),
                t.baseline_samples,
                verdict_word(t.verdict)
            );
        }
        for n in &self.notes {
            let _ = writeln!(out, "> {n}\n");
        }
        let _ = writeln!(out, "<details><summary>All {} runs</summary>\n", self.runs.len());
        let _ = writeln!(out, "{}\n", self.method_line());
        let _ = writeln!(
            out,
            "| trace | policy | size | miss ratio | behaviour | baseline time | current time | ratio | interval | time |"
        );
        let _ = writeln!(out, "|---|---|---|---:|---|---:|---:|---:|---|---|");
        for r in &self.runs {
            let t = &r.timing;
            let _ = writeln!(
                out,
                "| {} | {} | {} | {:.4} | {} | {} | {} | {:.3} | {} | {} |",
                r.trace,
                r.policy,
                r.size,
                r.current_miss_ratio,
                match r.behaviour {
                    Behaviour::Unchanged => "same",
                    Behaviour::Improved => "improved",
                    Behaviour::Changed => "**changed**",
                },
                fmt_seconds(t.baseline_seconds),
                fmt_seconds(t.current_seconds),
                t.ratio,
                fmt_interval(t),
                verdict_word(t.verdict)
            );
        }
        for u in &self.unmatched {
            let _ = writeln!(out, "\nOnly in the {}: {} {} {} (not compared).", u.only_in, u.trace, u.policy, u.size);
        }
        let _ = writeln!(out, "\n</details>");
        out
    }
}

// ---------------------------------------------------------------------------
// Bencher Metric Format
// ---------------------------------------------------------------------------

/// The Bencher Metric Format of one results file:
/// `{"<trace>/<policy>/<size>": {measure: {value, lower_value, upper_value}}}`
/// with measures `miss_ratio`, `byte_miss_ratio`, `latency` (nanoseconds per
/// run: median, bounds = fastest and slowest sample) and `throughput`
/// (requests per second: from the median, bounds from the slowest and
/// fastest sample).
///
/// # Errors
/// The file cannot be read or is not a results file.
pub fn bmf(path: &Path) -> Result<Value> {
    let value = read_value(path).map_err(Error::config)?;
    let loaded = load(path, value).map_err(Error::config)?;
    let mut out = Map::new();
    for g in &loaded.groups {
        for GroupRun { run, .. } in &g.runs {
            let samples = if run.seconds_samples.is_empty() { vec![run.seconds] } else { run.seconds_samples.clone() };
            let med = median(&samples);
            let (lo, hi) = samples.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), &s| (lo.min(s), hi.max(s)));
            let mut measures = Map::new();
            measures.insert("miss_ratio".into(), serde_json::json!({"value": run.miss_ratio}));
            measures.insert("byte_miss_ratio".into(), serde_json::json!({"value": run.byte_miss_ratio}));
            measures.insert(
                "latency".into(),
                serde_json::json!({"value": med * 1e9, "lower_value": lo * 1e9, "upper_value": hi * 1e9}),
            );
            if med > 0.0 && lo > 0.0 {
                let req = run.requests as f64;
                measures.insert(
                    "throughput".into(),
                    serde_json::json!({"value": req / med, "lower_value": req / hi, "upper_value": req / lo}),
                );
            }
            out.insert(format!("{}/{}/{}", g.name, run.policy, run.size), Value::Object(measures));
        }
    }
    Ok(Value::Object(out))
}

// ---------------------------------------------------------------------------
// The command
// ---------------------------------------------------------------------------

/// What `cachescope compare` was asked.
#[derive(Debug, Clone)]
pub struct CompareRequest {
    /// Baseline results file.
    pub baseline: PathBuf,
    /// Current results file.
    pub current: PathBuf,
    /// How to judge.
    pub options: CompareOptions,
    /// Output format on stdout.
    pub format: Format,
    /// Also write the current file's Bencher Metric Format here.
    pub bmf: Option<PathBuf>,
}

/// Runs `cachescope compare`: prints the report on stdout (errors on
/// stderr) and returns the exit code: 0 nothing regressed, 1 a regression,
/// 2 the inputs cannot be compared or an output cannot be written.
pub fn run_cli(request: &CompareRequest) -> i32 {
    let report = match compare_files(&request.baseline, &request.current, &request.options) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    print!("{}", report.render(request.format));
    if let Some(path) = &request.bmf {
        let written = bmf(&request.current)
            .map_err(|e| e.to_string())
            .and_then(|v| crate::results::write_json_atomic(path, &v).map_err(|e| format!("{e:#}")));
        if let Err(e) = written {
            eprintln!("error: Bencher Metric Format export: {e}");
            return 2;
        }
    }
    report.exit_code()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
    }

    #[test]
    fn bootstrap_is_seeded() {
        let b = [1.0, 1.1, 0.9, 1.05, 0.95];
        let c = [1.3, 1.4, 1.2, 1.35, 1.25];
        assert_eq!(bootstrap_ratios(&b, &c, 1000, 7), bootstrap_ratios(&b, &c, 1000, 7));
        let (lo, hi) = percentile_interval(&bootstrap_ratios(&b, &c, 1000, 7), 0.99);
        assert!(lo > 1.05 && hi < 1.7, "{lo} {hi}");
    }

    #[test]
    fn thresholds_parse() {
        assert_eq!(parse_threshold("5%").unwrap(), 0.05);
        assert_eq!(parse_threshold("0.1").unwrap(), 0.1);
        assert!(parse_threshold("-1%").is_err());
        assert!(parse_threshold("x").is_err());
    }

    #[test]
    fn improvements_are_costs_down_only() {
        let ch = |field: &str, b: u64, c: u64| FigureChange {
            field: field.into(),
            baseline: b.into(),
            current: c.into(),
            delta: Some(i128::from(c) - i128::from(b)),
        };
        assert_eq!(classify(&[ch("misses", 10, 9), ch("hits", 90, 91)]), Behaviour::Improved);
        assert_eq!(classify(&[ch("misses", 10, 11), ch("hits", 90, 89)]), Behaviour::Changed);
        assert_eq!(classify(&[ch("misses", 10, 9), ch("requests", 100, 99)]), Behaviour::Changed);
        assert_eq!(classify(&[ch("hits", 90, 91)]), Behaviour::Changed);
    }
}
