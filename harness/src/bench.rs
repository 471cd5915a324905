//! `cachescope bench`: runs a named suite (traces x policies x sizes, from a
//! TOML file in `workloads/bench/`) with repetitions and writes one results
//! file of kind `bench`, which `compare` judges against a baseline.
//!
//! Every run is simulated alone on one thread (no two runs compete for the
//! machine's cores). Repetitions are interleaved: repetition `k` of every run
//! happens before repetition `k + 1` of any, so a burst of load from other
//! processes lands on many runs a little rather than on one run entirely.
//! Deterministic figures come from the first repetition and every later
//! repetition must reproduce them exactly (else the bench fails: the
//! simulator would be nondeterministic); each run's `seconds_samples` holds
//! one wall time per repetition and `seconds` is their median.
//!
//! The file's `trace` is a list of `{name, identity, settings}` (one per
//! suite trace) and `extra.run_traces` names the trace of each run.
//!
//! # The suite file
//!
//! ```toml
//! description = "what the suite is for"
//! repeats = 10                   # default for --repeats
//!
//! [[trace]]
//! name = "default"               # unique; names the runs in reports
//! path = "../default.toml"       # relative to the suite file
//! format = "spec"                # optional: detected from the file
//! policies = ["lru", "s3fifo"]   # or ["all"]
//! sizes = ["0.1%", "1%"]         # as `sim --size` takes them
//! objects = false                # optional, as `sim`
//! gpu = false                    # optional: the GPU model (dispatch traces)
//! pipelines = false              # optional
//! warmup = "10%"                 # optional
//! limit = 100000                 # optional: stop after this many requests
//! ```
//!
//! Parsing is strict: an unknown field is an error, and every error names
//! the file, the line and the field.
//!
//! # Test-only slowdown knob
//!
//! [`TEST_SLOWDOWN_ENV`] (`CACHESCOPE_TEST_SLOWDOWN=0.3`) makes every timed
//! sample include busy work worth that fraction of the run's own time, so
//! that tests and the false-alarm measurement can make a *real* slowdown of
//! a known size without changing the code. Only this runner reads it; the
//! deterministic figures are unaffected; a file made with it records the
//! factor in `extra.test_slowdown` and `compare` says so. Never set it
//! outside tests.

use std::collections::BTreeSet;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Instant;

use cachescope_core::policy::PolicyKind;
use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::error::{Error, Result};
use crate::results::{ResultsFile, SCHEMA_VERSION, ToolInfo};
use crate::sim::{self, RunResult, SimConfig, SizeSpec, Warmup};
use crate::trace::{DecodedTrace, LoadOptions, TraceFormat};

/// The test-only knob: a fraction of extra busy work per timed sample.
pub const TEST_SLOWDOWN_ENV: &str = "CACHESCOPE_TEST_SLOWDOWN";
/// Most repetitions a suite may ask for.
pub const MAX_REPEATS: usize = 1000;
/// Largest suite file read.
const MAX_SUITE_BYTES: u64 = 1 << 20;

/// One trace of a suite and what to run on it.
#[derive(Debug, Clone, Serialize)]
pub struct SuiteTrace {
    /// Unique name (runs are reported as `name policy size`).
    pub name: String,
    /// The trace file or workload spec, resolved against the suite's
    /// directory.
    pub path: PathBuf,
    /// Its format (detected when `None`).
    pub format: Option<TraceFormat>,
    /// How the file becomes requests.
    pub options: LoadOptions,
    /// Policies, in order.
    pub policies: Vec<PolicyKind>,
    /// Sizes, in order.
    pub sizes: Vec<SizeSpec>,
    /// The GPU model.
    pub gpu: bool,
    /// Requests left out of the counts.
    pub warmup: Warmup,
}

/// A validated suite.
#[derive(Debug, Clone, Serialize)]
pub struct Suite {
    /// The suite file.
    pub path: PathBuf,
    /// Free text.
    pub description: Option<String>,
    /// Repetitions unless `--repeats` says otherwise.
    pub repeats: usize,
    /// Its traces, in order.
    pub traces: Vec<SuiteTrace>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSuite {
    description: Option<String>,
    repeats: Option<Spanned<u64>>,
    trace: Option<Vec<Spanned<RawTrace>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrace {
    name: Spanned<String>,
    path: Spanned<String>,
    format: Option<Spanned<String>>,
    policies: Spanned<Vec<String>>,
    sizes: Spanned<Vec<String>>,
    objects: Option<bool>,
    gpu: Option<bool>,
    pipelines: Option<bool>,
    warmup: Option<Spanned<String>>,
    limit: Option<Spanned<u64>>,
}

/// Line numbers and field names for errors.
struct Source<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Source<'_> {
    fn line_of(&self, offset: usize) -> usize {
        self.text.as_bytes()[..offset.min(self.text.len())].iter().filter(|&&b| b == b'\n').count() + 1
    }

    fn at<T>(&self, spanned: &Spanned<T>, field: &str, message: impl Into<String>) -> Error {
        Error::Suite {
            path: self.path.to_owned(),
            line: self.line_of(spanned.span().start),
            field: Some(field.into()),
            message: message.into(),
        }
    }

    fn toml_error(&self, e: &toml::de::Error) -> Error {
        let Some(span) = e.span() else {
            return Error::Suite {
                path: self.path.to_owned(),
                line: 0,
                field: None,
                message: e.message().trim().into(),
            };
        };
        let line = self.line_of(span.start);
        let field = self
            .text
            .lines()
            .nth(line - 1)
            .and_then(|l| l.split_once('='))
            .map(|(k, _)| k.trim().trim_matches('"').to_owned())
            .filter(|k| !k.is_empty() && !k.starts_with('['));
        Error::Suite { path: self.path.to_owned(), line, field, message: e.message().trim().into() }
    }
}

impl Suite {
    /// Reads and validates a suite file.
    ///
    /// # Errors
    /// [`Error::Suite`] naming the line and field: unreadable or over 1 MiB,
    /// not TOML, an unknown or missing field, an unknown policy, size,
    /// format or warm-up, a duplicate trace name, a trace file that does
    /// not exist.
    pub fn load(path: &Path) -> Result<Suite> {
        let len = std::fs::metadata(path).map_err(|e| Error::io("stat", path, e))?.len();
        if len > MAX_SUITE_BYTES {
            return Err(Error::Suite {
                path: path.to_owned(),
                line: 0,
                field: None,
                message: format!("{len} bytes: a suite is at most 1 MiB"),
            });
        }
        let text = std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))?;
        Suite::parse(&text, path)
    }

    /// Parses suite text; `path` names it in errors and relative trace paths
    /// are resolved against its directory.
    ///
    /// # Errors
    /// As [`load`](Self::load).
    pub fn parse(text: &str, path: &Path) -> Result<Suite> {
        let src = Source { path, text };
        let raw: RawSuite = toml::from_str(text).map_err(|e| src.toml_error(&e))?;
        let repeats = match &raw.repeats {
            None => 10,
            Some(r) if (1..=MAX_REPEATS as u64).contains(r.get_ref()) => *r.get_ref() as usize,
            Some(r) => return Err(src.at(r, "repeats", format!("{} is not in 1..={MAX_REPEATS}", r.get_ref()))),
        };
        let Some(raw_traces) = raw.trace.filter(|t| !t.is_empty()) else {
            return Err(Error::Suite {
                path: path.to_owned(),
                line: 0,
                field: Some("trace".into()),
                message: "missing: a suite needs at least one [[trace]]".into(),
            });
        };
        let dir = path.parent().unwrap_or(Path::new(""));
        let mut names = BTreeSet::new();
        let mut traces = Vec::with_capacity(raw_traces.len());
        for t in raw_traces {
            let t = t.into_inner();
            let name = t.name.get_ref().trim().to_owned();
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
                return Err(src.at(&t.name, "name", format!("`{name}`: use letters, digits, `-`, `_` and `.`")));
            }
            if !names.insert(name.clone()) {
                return Err(src.at(&t.name, "name", format!("`{name}` is used by another [[trace]]")));
            }
            let file = dir.join(t.path.get_ref());
            if !file.is_file() {
                return Err(src.at(
                    &t.path,
                    "path",
                    format!("`{}` (as `{}`) is not a file", t.path.get_ref(), file.display()),
                ));
            }
            let format = t
                .format
                .as_ref()
                .map(|f| f.get_ref().parse::<TraceFormat>().map_err(|e| src.at(f, "format", e.to_string())))
                .transpose()?;
            let policies = if t.policies.get_ref().iter().any(|p| p == "all") {
                PolicyKind::ALL.to_vec()
            } else {
                t.policies
                    .get_ref()
                    .iter()
                    .map(|p| p.parse::<PolicyKind>().map_err(|e| src.at(&t.policies, "policies", e.to_string())))
                    .collect::<Result<Vec<_>>>()?
            };
            if policies.is_empty() {
                return Err(src.at(&t.policies, "policies", "empty: name at least one policy, or \"all\""));
            }
            let sizes = t
                .sizes
                .get_ref()
                .iter()
                .map(|s| s.parse::<SizeSpec>().map_err(|e| src.at(&t.sizes, "sizes", e)))
                .collect::<Result<Vec<_>>>()?;
            if sizes.is_empty() {
                return Err(src.at(&t.sizes, "sizes", "empty: give at least one size"));
            }
            let warmup = match &t.warmup {
                Some(w) => w.get_ref().parse::<Warmup>().map_err(|e| src.at(w, "warmup", e))?,
                None => Warmup::None,
            };
            if let Some(l) = t.limit.as_ref().filter(|l| *l.get_ref() == 0) {
                return Err(src.at(l, "limit", "0 requests: leave `limit` out to read the whole trace"));
            }
            let gpu = t.gpu.unwrap_or(false);
            let options = LoadOptions {
                objects: t.objects.unwrap_or(false),
                pipelines: t.pipelines.unwrap_or(false),
                gpu,
                limit: t.limit.map(|l| *l.get_ref()),
            };
            traces.push(SuiteTrace { name, path: file, format, options, policies, sizes, gpu, warmup });
        }
        Ok(Suite { path: path.to_owned(), description: raw.description, repeats, traces })
    }

    /// Runs in the suite (traces x policies x sizes).
    pub fn runs(&self) -> usize {
        self.traces.iter().map(|t| t.policies.len() * t.sizes.len()).sum()
    }
}

/// How to run a suite.
#[derive(Debug, Clone, Default)]
pub struct BenchOptions {
    /// Repetitions (the suite's `repeats` when `None`).
    pub repeats: Option<usize>,
    /// Test-only: extra busy work per sample, as a fraction of the run's
    /// time ([`TEST_SLOWDOWN_ENV`]); see the module docs.
    pub test_slowdown: Option<f64>,
}

/// Reads [`TEST_SLOWDOWN_ENV`].
///
/// # Errors
/// The variable is set but is not a number in [0, 10].
pub fn test_slowdown_from_env() -> Result<Option<f64>> {
    match std::env::var(TEST_SLOWDOWN_ENV) {
        Err(_) => Ok(None),
        Ok(v) if v.trim().is_empty() => Ok(None),
        Ok(v) => match v.trim().parse::<f64>() {
            Ok(x) if (0.0..=10.0).contains(&x) => Ok(Some(x)),
            _ => Err(Error::config(format!("{TEST_SLOWDOWN_ENV}=`{v}`: expected a fraction in [0, 10], e.g. 0.3"))),
        },
    }
}

/// Busy work for the test-only knob: `iterations` steps of a xorshift that
/// the optimiser cannot remove.
fn busy_work(iterations: u64) -> u64 {
    let mut x = black_box(0x9e37_79b9_7f4a_7c15u64);
    for _ in 0..iterations {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    black_box(x)
}

/// On-CPU seconds (wall where there is no thread clock) per busy-work
/// iteration on this machine now (median of 7).
fn calibrate_busy_work() -> f64 {
    const N: u64 = 1 << 20;
    let mut t: Vec<f64> = (0..7)
        .map(|_| {
            let (wall, cpu) = (Instant::now(), thread_cpu_seconds());
            busy_work(N);
            let spent = match (cpu, thread_cpu_seconds()) {
                (Some(b), Some(n)) => n - b,
                _ => wall.elapsed().as_secs_f64(),
            };
            spent / N as f64
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[3]
}

/// The reference kernel: a fixed piece of work that no change to the
/// project alters (a seeded pointer chase through 4 MiB, the memory-bound
/// shape of a cache simulation), timed next to every run so that `compare`
/// can tell "the machine got slower" from "the code got slower".
pub struct Reference {
    next: Vec<u32>,
}

impl Reference {
    /// Entries of the chase (4 MiB of `u32`).
    const ENTRIES: usize = 1 << 16;
    /// Steps per measurement (about 2 ms on the dev machine).
    const STEPS: usize = 1 << 18;

    /// Builds the chase: one cycle through every entry (Sattolo's shuffle,
    /// seeded).
    pub fn new() -> Reference {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x5eed_cac4_e5c0_9e00);
        let mut order: Vec<u32> = (0..Self::ENTRIES as u32).collect();
        for i in (1..order.len()).rev() {
            let j = rng.random_range(0..i);
            order.swap(i, j);
        }
        let mut next = vec![0u32; Self::ENTRIES];
        for w in 0..order.len() {
            next[order[w] as usize] = order[(w + 1) % order.len()];
        }
        Reference { next }
    }

    /// Runs the kernel once; returns its on-CPU seconds (wall where there is
    /// no thread clock).
    pub fn measure(&self) -> f64 {
        let (wall, cpu) = (Instant::now(), thread_cpu_seconds());
        let mut at = black_box(0u32);
        for _ in 0..Self::STEPS {
            at = self.next[at as usize];
        }
        black_box(at);
        match (cpu, thread_cpu_seconds()) {
            (Some(b), Some(n)) => n - b,
            _ => wall.elapsed().as_secs_f64(),
        }
    }
}

impl Default for Reference {
    fn default() -> Self {
        Reference::new()
    }
}

/// A run's figures with its timings blanked, to check repetitions agree.
fn figures(run: &RunResult) -> RunResult {
    RunResult { seconds: 0.0, seconds_samples: Vec::new(), ..run.clone() }
}

/// Runs a suite and returns its results file (not yet written).
/// `progress` is told about each finished repetition.
///
/// # Errors
/// A trace cannot be loaded, a size does not resolve, or a repetition
/// disagrees with the first (nondeterminism).
pub fn run(suite: &Suite, options: &BenchOptions, progress: &mut dyn FnMut(&str)) -> Result<ResultsFile> {
    let repeats = options.repeats.unwrap_or(suite.repeats);
    if !(1..=MAX_REPEATS).contains(&repeats) {
        return Err(Error::config(format!("--repeats {repeats}: must be in 1..={MAX_REPEATS}")));
    }
    let mut session = Session::prepare(suite, options)?;
    for rep in 0..repeats {
        for slot in 0..session.slots() {
            session.run_slot(slot)?;
        }
        progress(&format!(
            "repetition {} of {repeats} done ({:.1} s)",
            rep + 1,
            session.started.elapsed().as_secs_f64()
        ));
    }
    session.finish()
}

/// A suite loaded and ready to time, one run ("slot", in suite order:
/// trace, policy, size) at a time. [`run`] times every slot once per
/// repetition; an A/B worker ([`crate::ab`]) times the slots in the order
/// its driver asks.
pub struct Session<'s> {
    suite: &'s Suite,
    options: BenchOptions,
    started: Instant,
    seconds_per_iteration: Option<f64>,
    reference: Reference,
    loaded: Vec<(&'s SuiteTrace, DecodedTrace, SimConfig)>,
    /// (trace index, policy, size) of every slot.
    slot_runs: Vec<(usize, PolicyKind, SizeSpec)>,
    runs: Vec<Option<RunResult>>,
    samples: Vec<Vec<f64>>,
    cpu_samples: Vec<Vec<Option<f64>>>,
    reference_samples: Vec<Vec<f64>>,
}

impl<'s> Session<'s> {
    /// Loads every trace of `suite` (a bad one fails before any timing) and
    /// resolves every size.
    ///
    /// # Errors
    /// A trace cannot be loaded or a size does not resolve.
    pub fn prepare(suite: &'s Suite, options: &BenchOptions) -> Result<Session<'s>> {
        let started = Instant::now();
        let seconds_per_iteration = options.test_slowdown.map(|_| calibrate_busy_work());
        let reference = Reference::new();
        reference.measure(); // warm: page in the chase
        let mut loaded = Vec::with_capacity(suite.traces.len());
        let mut slot_runs = Vec::with_capacity(suite.runs());
        for (index, t) in suite.traces.iter().enumerate() {
            let trace = DecodedTrace::load(&t.path, t.format, t.options)?;
            let config = SimConfig {
                policies: t.policies.clone(),
                sizes: t.sizes.clone(),
                objects: t.options.objects,
                gpu: t.gpu,
                warmup: t.warmup,
                threads: 1,
            };
            for &size in &t.sizes {
                sim::resolve_capacity(size, &trace, t.options.objects)
                    .map_err(|e| Error::config(format!("suite `{}` trace `{}`: {e}", suite.path.display(), t.name)))?;
            }
            for &policy in &t.policies {
                for &size in &t.sizes {
                    slot_runs.push((index, policy, size));
                }
            }
            loaded.push((t, trace, config));
        }
        let n = slot_runs.len();
        Ok(Session {
            suite,
            options: options.clone(),
            started,
            seconds_per_iteration,
            reference,
            loaded,
            slot_runs,
            runs: vec![None; n],
            samples: vec![Vec::new(); n],
            cpu_samples: vec![Vec::new(); n],
            reference_samples: vec![Vec::new(); n],
        })
    }

    /// Runs of the suite.
    pub fn slots(&self) -> usize {
        self.slot_runs.len()
    }

    /// Times one more repetition of run `slot`; returns its wall seconds.
    ///
    /// # Errors
    /// `slot` is out of range, the simulation fails, or this repetition
    /// gave other figures than the first (nondeterminism).
    pub fn run_slot(&mut self, slot: usize) -> Result<f64> {
        let &(index, policy, size) = self
            .slot_runs
            .get(slot)
            .ok_or_else(|| Error::config(format!("run {slot}: the suite has {} runs", self.slot_runs.len())))?;
        let (t, trace, config) = &self.loaded[index];
        let one = SimConfig { policies: vec![policy], sizes: vec![size], ..config.clone() };
        let reference_seconds = self.reference.measure();
        let caller = std::thread::current().id();
        let cpu_before = thread_cpu_seconds();
        let cpu = std::sync::Mutex::new(None);
        // The run's on-CPU time: `on_done` runs on the thread that ran it,
        // right after; a fresh worker's whole CPU time is the run's, the
        // caller's is counted from before the call.
        let on_done = |_: &RunResult| {
            let now = thread_cpu_seconds();
            let own = if std::thread::current().id() == caller { now.zip(cpu_before).map(|(n, b)| n - b) } else { now };
            *cpu.lock().unwrap_or_else(|e| e.into_inner()) = own;
        };
        let result = sim::simulate(trace, &one, &on_done)
            .map_err(|e| Error::config(format!("trace `{}` {} {size}: {e}", t.name, policy.name())))?;
        let Some(run) = result.into_iter().next() else {
            return Err(Error::config(format!(
                "trace `{}` {} {size}: the simulator returned no run",
                t.name,
                policy.name()
            )));
        };
        let mut seconds = run.seconds;
        let mut cpu_seconds = cpu.into_inner().unwrap_or_else(|e| e.into_inner());
        if let (Some(factor), Some(per_iteration)) = (self.options.test_slowdown, self.seconds_per_iteration) {
            let s = Instant::now();
            let cpu_s = thread_cpu_seconds();
            busy_work((factor * cpu_seconds.unwrap_or(run.seconds) / per_iteration) as u64);
            seconds += s.elapsed().as_secs_f64();
            cpu_seconds = cpu_seconds.zip(thread_cpu_seconds().zip(cpu_s)).map(|(c, (n, b))| c + n - b);
        }
        let rep = self.samples[slot].len();
        self.samples[slot].push(seconds);
        self.cpu_samples[slot].push(cpu_seconds);
        self.reference_samples[slot].push(reference_seconds);
        match &self.runs[slot] {
            None => self.runs[slot] = Some(run),
            Some(first) if figures(first) != figures(&run) => {
                return Err(Error::config(format!(
                    "nondeterminism: trace `{}` policy {} size {size}: repetition {} gave different figures than \
                     the first ({:?} vs {:?})",
                    t.name,
                    policy.name(),
                    rep + 1,
                    figures(&run),
                    figures(first)
                )));
            }
            Some(_) => {}
        }
        Ok(seconds)
    }

    /// The results file of every repetition timed so far.
    ///
    /// # Errors
    /// A run was never timed.
    pub fn finish(mut self) -> Result<ResultsFile> {
        let suite = self.suite;
        let repeats = self.samples.iter().map(Vec::len).min().unwrap_or(0);
        let mut out_runs = Vec::with_capacity(self.runs.len());
        let mut run_traces = Vec::with_capacity(self.runs.len());
        for (slot, &(index, _, _)) in self.slot_runs.iter().enumerate() {
            let mut run = self.runs[slot].take().ok_or_else(|| Error::config("a run never finished"))?;
            run.seconds = crate::compare::median(&self.samples[slot]);
            run.seconds_samples = std::mem::take(&mut self.samples[slot]);
            out_runs.push(run);
            run_traces.push(serde_json::Value::from(self.loaded[index].0.name.clone()));
        }
        let traces: Vec<serde_json::Value> = self
            .loaded
            .iter()
            .map(|(t, trace, _)| {
                serde_json::json!({
                    "name": t.name,
                    "identity": trace.identity,
                    "settings": {"gpu": t.gpu, "warmup": t.warmup},
                    "unique_keys": trace.unique_keys,
                    "unique_bytes": trace.unique_bytes,
                })
            })
            .collect();
        let config = serde_json::json!({
            "suite": suite.path,
            "description": suite.description,
            "repeats": repeats,
            "threads": 1,
            "traces": suite.traces,
        });
        let mut extra = serde_json::Map::new();
        extra.insert("run_traces".into(), run_traces.into());
        // On-CPU samples, where every one was measured (Linux).
        let cpu: Option<Vec<Vec<f64>>> = self.cpu_samples.into_iter().map(|v| v.into_iter().collect()).collect();
        if let Some(cpu) = cpu {
            extra.insert("cpu_seconds_samples".into(), serde_json::to_value(cpu).unwrap_or_default());
        }
        extra.insert(
            "reference_seconds_samples".into(),
            serde_json::to_value(self.reference_samples).unwrap_or_default(),
        );
        extra.insert("bench_seconds".into(), self.started.elapsed().as_secs_f64().into());
        if let Some(cpu) = cpu_model() {
            extra.insert("cpu_model".into(), cpu.into());
        }
        if let Some(x) = self.options.test_slowdown {
            extra.insert("test_slowdown".into(), x.into());
        }
        Ok(ResultsFile {
            schema_version: SCHEMA_VERSION,
            kind: "bench".into(),
            tool: ToolInfo::current(),
            trace: traces.into(),
            config,
            runs: out_runs,
            extra,
        })
    }
}

/// On-CPU time of the calling thread so far, in seconds
/// (`CLOCK_THREAD_CPUTIME_ID`): time spent waiting for a core while other
/// processes ran is not in it. `None` where the platform has no such clock.
pub fn thread_cpu_seconds() -> Option<f64> {
    #[cfg(unix)]
    {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
        Some(t.tv_sec as f64 + t.tv_nsec as f64 / 1e9)
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// `model name` from /proc/cpuinfo, where there is one.
fn cpu_model() -> Option<String> {
    let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    text.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split_once(':')).map(|(_, v)| v.trim().to_owned())
}

/// A short table of a bench results file: one line per run.
pub fn render(results: &ResultsFile) -> String {
    use std::fmt::Write;
    let names: Vec<String> =
        results.extra.get("run_traces").and_then(|v| serde_json::from_value(v.clone()).ok()).unwrap_or_default();
    let mut out = format!(
        "{:<16} {:<12} {:>9} {:>10} {:>10} {:>11} {:>11} {:>8}\n",
        "trace", "policy", "size", "miss_ratio", "byte_miss", "median_ms", "min_ms", "samples"
    );
    for (i, r) in results.runs.iter().enumerate() {
        let min = r.seconds_samples.iter().copied().fold(f64::INFINITY, f64::min);
        let _ = writeln!(
            out,
            "{:<16} {:<12} {:>9} {:>10.4} {:>10.4} {:>11.3} {:>11.3} {:>8}",
            names.get(i).map_or("?", String::as_str),
            r.policy,
            r.size,
            r.miss_ratio,
            r.byte_miss_ratio,
            r.seconds * 1e3,
            min * 1e3,
            r.seconds_samples.len()
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Suite> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../workloads/bench");
        Suite::parse(text, &dir.join("test.toml"))
    }

    #[test]
    fn a_good_suite_parses() {
        let s = parse(
            "repeats = 3\n[[trace]]\nname = \"d\"\npath = \"../default.toml\"\npolicies = [\"lru\", \"fifo\"]\nsizes = [\"1%\"]\nwarmup = \"10%\"\n",
        )
        .unwrap();
        assert_eq!(s.repeats, 3);
        assert_eq!(s.runs(), 2);
        assert_eq!(s.traces[0].warmup, Warmup::Fraction(0.1));
    }

    #[test]
    fn errors_name_line_and_field() {
        let e = parse(
            "[[trace]]\nname = \"d\"\npath = \"../default.toml\"\npolicies = [\"lru\"]\nsizes = [\"1%\"]\nbogus = 1\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("line 6") && e.contains("bogus"), "{e}");
        let e = parse("[[trace]]\nname = \"d\"\npath = \"../default.toml\"\npolicies = [\"nope\"]\nsizes = [\"1%\"]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 4") && e.contains("field `policies`"), "{e}");
        let e = parse("[[trace]]\nname = \"d\"\npath = \"missing.toml\"\npolicies = [\"lru\"]\nsizes = [\"1%\"]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 3") && e.contains("field `path`"), "{e}");
        let e = parse("repeats = 0\n[[trace]]\nname = \"d\"\npath = \"../default.toml\"\npolicies = [\"lru\"]\nsizes = [\"1%\"]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 1") && e.contains("field `repeats`"), "{e}");
    }
}
