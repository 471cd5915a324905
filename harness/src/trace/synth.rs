//! Synthetic request traces from TOML workload specs (`workloads/*.toml`),
//! generated on the fly or written out with [`gen_trace`] (`cachescope gen`; `gen` itself is a reserved word in Rust 2024).
//!
//! A spec is a seed, a number of requests, and one or more *phases*, each a
//! weighted mixture of *components*:
//!
//! ```toml
//! description = "zipf 0.9 over 100k keys, with a 10% scan"  # optional
//! seed = 42
//! requests = 1_000_000
//!
//! [size]                     # default size distribution (phases and
//! dist = "lognormal"         # components may override it)
//! median = 4096
//! sigma = 1.0
//! min = 64
//! max = 1_048_576
//!
//! [[component]]              # a single phase: top-level components
//! kind = "zipf"              # zipf | uniform | loop | scan
//! keys = 100_000
//! alpha = 0.9
//! weight = 0.9               # share of the requests (normalised)
//!
//! [[component]]
//! kind = "scan"
//! weight = 0.1
//! run = 1000                 # consecutive requests each time it is picked
//! ```
//!
//! or, for phases, `[[phase]]` tables with `until` (the fraction of the
//! requests where the phase ends; the last phase ends at 1.0) and their own
//! `[[phase.component]]` lists. Components:
//!
//! * `zipf`: `keys` ranks, popularity `1/rank^alpha` (rejection-inversion
//!   sampling: O(1) memory whatever `keys`).
//! * `uniform`: `keys` equally popular keys.
//! * `loop`: keys `0..keys` in order, over and over (a loop larger than the
//!   cache defeats LRU).
//! * `scan`: fresh keys in order, never requested again (one-hit wonders).
//!
//! `rotate = k` shifts ranks (rank r is key `(r + k) % keys`), so a later
//! phase can make cold keys hot within the same `keyspace`. Each component
//! draws keys from its own key space unless components name the same
//! `keyspace`; so by default a new phase means an entirely new hot set.
//! Keys are scattered over the u64 range by a bijective mix, so distinct
//! (keyspace, index) pairs are distinct keys.
//!
//! A component picked by the mixture emits `run` consecutive requests; the
//! mixture picks components with probability proportional to `weight / run`,
//! so `weight` is the component's share of the requests.
//!
//! Sizes (`[size]`): `dist = "fixed"` (`bytes`), `"uniform"` (`min`, `max`,
//! inclusive), `"log_uniform"` (`min`, `max`), `"lognormal"` (`median`,
//! `sigma`, optional `min` (default 1) and `max` clamps). With `per_key =
//! true` (the default) a key's size is a hash of the key and the seed, the
//! same every time it is requested, as cache traces assume; with `false` it
//! is drawn afresh per request.
//!
//! Parsing is strict: unknown fields are errors, and every error names the
//! file, the line and the field. Generation is deterministic: the same spec
//! (same seed) gives the same requests. `time` is the request index.

use std::ops::Range;
use std::path::{Path, PathBuf};

use cachescope_core::policy::Access;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;
use toml::Spanned;

use super::native::{NativeLayout, NativeMeta, NativeWriter};
use super::{DecodedTrace, EventSource, LoadOptions, RequestRecord, TraceEvent, TraceFormat};
use crate::error::{Error, Result};

/// Largest `keys` and `requests` a spec may ask for (2^40): key indices
/// stay below 2^40 so that (keyspace, index) packs into 64 bits.
pub const MAX_COUNT: u64 = 1 << 40;
/// Largest spec file read (specs are a few lines).
const MAX_SPEC_BYTES: u64 = 1 << 20;

/// What a component draws keys from.
#[derive(Debug, Clone, PartialEq)]
pub enum ComponentKind {
    /// Zipf popularity over `keys` ranks.
    Zipf {
        /// Number of keys.
        keys: u64,
        /// Skew (0 = uniform).
        alpha: f64,
        /// Rank offset.
        rotate: u64,
    },
    /// Uniform popularity over `keys` keys.
    Uniform {
        /// Number of keys.
        keys: u64,
        /// Index offset.
        rotate: u64,
    },
    /// Keys `0..keys` in order, repeated.
    Loop {
        /// Loop length.
        keys: u64,
        /// Index offset.
        rotate: u64,
    },
    /// Fresh keys in order, never repeated.
    Scan,
}

/// A size distribution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SizeDist {
    /// Always `bytes`.
    Fixed {
        /// The size.
        bytes: u64,
    },
    /// Uniform integers in `min..=max`.
    Uniform {
        /// Smallest size.
        min: u64,
        /// Largest size.
        max: u64,
    },
    /// `exp(uniform(ln min, ln max))`, rounded.
    LogUniform {
        /// Smallest size.
        min: u64,
        /// Largest size.
        max: u64,
    },
    /// `median * exp(sigma * N(0,1))`, rounded, clamped to `min..=max`.
    LogNormal {
        /// Median size.
        median: f64,
        /// Standard deviation of the log.
        sigma: f64,
        /// Clamp below.
        min: u64,
        /// Clamp above.
        max: u64,
    },
}

/// A size distribution and whether sizes are stable per key.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SizeSpec {
    /// The distribution.
    pub dist: SizeDist,
    /// A key's size is a function of the key (true) or drawn per request.
    pub per_key: bool,
}

/// One component of a mixture.
#[derive(Debug, Clone, PartialEq)]
pub struct Component {
    /// Its key process.
    pub kind: ComponentKind,
    /// Share of the phase's requests (normalised over the phase).
    pub weight: f64,
    /// Consecutive requests per pick.
    pub run: u64,
    /// Key space number (equal for components that share keys).
    pub keyspace: u32,
    /// Its sizes.
    pub size: SizeSpec,
}

/// One phase: requests `previous end..end` come from its mixture.
#[derive(Debug, Clone, PartialEq)]
pub struct Phase {
    /// Request index where the phase ends (exclusive).
    pub end: u64,
    /// The mixture.
    pub components: Vec<Component>,
}

/// A validated workload spec.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadSpec {
    /// The file it came from.
    pub path: PathBuf,
    /// Free text.
    pub description: Option<String>,
    /// Seed of every random choice.
    pub seed: u64,
    /// Requests to generate.
    pub requests: u64,
    /// At least one phase; the last ends at `requests`.
    pub phases: Vec<Phase>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    description: Option<String>,
    seed: u64,
    requests: u64,
    size: Option<Spanned<RawSize>>,
    component: Option<Vec<Spanned<RawComponent>>>,
    phase: Option<Vec<Spanned<RawPhase>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPhase {
    until: Option<f64>,
    size: Option<Spanned<RawSize>>,
    component: Vec<Spanned<RawComponent>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawComponent {
    kind: String,
    weight: Option<f64>,
    keys: Option<u64>,
    alpha: Option<f64>,
    rotate: Option<u64>,
    keyspace: Option<String>,
    run: Option<u64>,
    size: Option<Spanned<RawSize>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSize {
    dist: String,
    bytes: Option<u64>,
    min: Option<u64>,
    max: Option<u64>,
    median: Option<f64>,
    sigma: Option<f64>,
    per_key: Option<bool>,
}

/// Turns byte offsets into the line numbers and field names of errors.
struct Source<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Source<'_> {
    fn line_of(&self, offset: usize) -> usize {
        self.text.as_bytes()[..offset.min(self.text.len())].iter().filter(|&&b| b == b'\n').count() + 1
    }

    /// The line of `field = ...` for the table that starts at `span`: its
    /// first line (an inline table), or the lines after it up to the next
    /// `[table]` header; else the span's first line.
    fn field_line(&self, span: &Range<usize>, field: &str) -> usize {
        let start = span.start.min(self.text.len());
        let line_start = self.text[..start].rfind('\n').map_or(0, |i| i + 1);
        let assigns = |line: &str, anywhere: bool| {
            let mut from = 0;
            while let Some(i) = line[from..].find(field).map(|i| i + from) {
                let before_ok = line[..i].chars().next_back().is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
                let after = line[i + field.len()..].trim_start();
                if before_ok && after.starts_with('=') && (anywhere || line[..i].trim().is_empty()) {
                    return true;
                }
                from = i + field.len();
            }
            false
        };
        let mut offset = line_start;
        for (n, line) in self.text[line_start..].split_inclusive('\n').enumerate() {
            let trimmed = line.trim_start();
            if n == 0 {
                if assigns(line, !trimmed.starts_with('[')) {
                    return self.line_of(offset);
                }
            } else if trimmed.starts_with('[') {
                break;
            } else if assigns(line, false) {
                return self.line_of(offset);
            }
            offset += line.len();
        }
        self.line_of(start)
    }

    fn error(&self, span: &Range<usize>, field: &str, message: impl Into<String>) -> Error {
        Error::spec(self.path, self.field_line(span, field), Some(field), message)
    }

    /// A parse error of the toml crate, with its line and the key on it.
    fn toml_error(&self, e: &toml::de::Error) -> Error {
        let Some(span) = e.span() else {
            return Error::spec(self.path, 0, None, e.message().trim());
        };
        let line_no = self.line_of(span.start);
        let line = self.text.lines().nth(line_no - 1).unwrap_or("");
        let field = line
            .split_once('=')
            .map(|(k, _)| k.trim().trim_matches('"').to_owned())
            .filter(|k| !k.is_empty() && !k.starts_with('['));
        Error::spec(self.path, line_no, field.as_deref(), e.message().trim())
    }
}

impl WorkloadSpec {
    /// Reads and validates a spec file.
    ///
    /// # Errors
    /// The file cannot be read, is over 1 MiB, is not valid TOML, has an
    /// unknown or missing field, or asks for something impossible; the
    /// error names the line and the field.
    pub fn load(path: &Path) -> Result<WorkloadSpec> {
        let len = std::fs::metadata(path).map_err(|e| Error::io("stat", path, e))?.len();
        if len > MAX_SPEC_BYTES {
            return Err(Error::spec(path, 0, None, format!("{len} bytes: a workload spec is at most 1 MiB")));
        }
        let text = std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))?;
        WorkloadSpec::parse(&text, path)
    }

    /// Parses and validates spec text; `path` names it in errors.
    ///
    /// # Errors
    /// As [`load`](Self::load).
    pub fn parse(text: &str, path: &Path) -> Result<WorkloadSpec> {
        let src = Source { path, text };
        let raw: RawSpec = toml::from_str(text).map_err(|e| src.toml_error(&e))?;
        let whole = 0..text.len();
        if raw.requests == 0 || raw.requests > MAX_COUNT {
            return Err(src.error(&whole, "requests", format!("{} is not in 1..=2^40", raw.requests)));
        }
        let top_size = raw.size.as_ref().map(|s| parse_size(&src, s)).transpose()?;
        // (phase, span of its table); top-level components are one phase.
        let raw_phases: Vec<(RawPhase, Range<usize>)> = match (raw.component, raw.phase) {
            (Some(component), None) => {
                vec![(RawPhase { until: None, size: None, component }, whole.clone())]
            }
            (None, Some(p)) if !p.is_empty() => p
                .into_iter()
                .map(|p| {
                    let span = p.span();
                    (p.into_inner(), span)
                })
                .collect(),
            (Some(_), Some(_)) => {
                return Err(src.error(&whole, "phase", "give either top-level [[component]]s or [[phase]]s, not both"));
            }
            _ => return Err(src.error(&whole, "component", "missing: a spec needs [[component]]s or [[phase]]s")),
        };
        let mut keyspaces: Vec<String> = Vec::new();
        let mut anonymous = 0u32;
        let mut phases = Vec::with_capacity(raw_phases.len());
        let mut previous_until = 0.0;
        let count = raw_phases.len();
        for (i, (RawPhase { until, size, component: components }, span)) in raw_phases.into_iter().enumerate() {
            let last = i + 1 == count;
            let until = match until {
                None if last => 1.0,
                None => return Err(src.error(&span, "until", "missing (every phase but the last needs it)")),
                Some(u) if !(u > previous_until && u <= 1.0) => {
                    return Err(src.error(
                        &span,
                        "until",
                        format!("{u} must be greater than the previous phase's ({previous_until}) and at most 1"),
                    ));
                }
                Some(u) if last && u != 1.0 => {
                    return Err(src.error(&span, "until", format!("{u}: the last phase must end at 1.0")));
                }
                Some(u) => u,
            };
            previous_until = until;
            let phase_size = size.as_ref().map(|s| parse_size(&src, s)).transpose()?.or(top_size);
            if components.is_empty() {
                return Err(src.error(&span, "component", "a phase needs at least one component"));
            }
            let mut parsed = Vec::with_capacity(components.len());
            for c in &components {
                let keyspace = match &c.get_ref().keyspace {
                    Some(name) => {
                        let at = keyspaces.iter().position(|k| k == name).unwrap_or_else(|| {
                            keyspaces.push(name.clone());
                            keyspaces.len() - 1
                        });
                        at as u32
                    }
                    None => {
                        anonymous += 1;
                        u32::MAX - anonymous
                    }
                };
                parsed.push(parse_component(&src, c, phase_size, keyspace)?);
            }
            if parsed.iter().map(|c| c.weight).sum::<f64>() <= 0.0 {
                return Err(src.error(&span, "weight", "the weights of a phase add up to 0"));
            }
            let end = if last { raw.requests } else { (until * raw.requests as f64).round() as u64 };
            phases.push(Phase { end, components: parsed });
        }
        // Named key spaces count up from 0, anonymous ones down from the top:
        // both fit in the 24 bits left above a 40-bit key index.
        if keyspaces.len() as u64 + u64::from(anonymous) >= 1 << 24 {
            return Err(src.error(&whole, "keyspace", "more than 2^24 key spaces"));
        }
        for phase in &mut phases {
            for c in &mut phase.components {
                c.keyspace &= (1 << 24) - 1;
            }
        }
        Ok(WorkloadSpec {
            path: path.to_owned(),
            description: raw.description,
            seed: raw.seed,
            requests: raw.requests,
            phases,
        })
    }

    /// The requests, generated on the fly.
    pub fn generate(&self) -> SyntheticRequests {
        SyntheticRequests::new(self.clone())
    }

    /// The largest size any component can produce.
    pub fn max_size(&self) -> u64 {
        let max = |d: &SizeDist| match *d {
            SizeDist::Fixed { bytes } => bytes,
            SizeDist::Uniform { max, .. } | SizeDist::LogUniform { max, .. } | SizeDist::LogNormal { max, .. } => max,
        };
        self.phases.iter().flat_map(|p| &p.components).map(|c| max(&c.size.dist)).max().unwrap_or(1)
    }
}

fn parse_size(src: &Source<'_>, raw: &Spanned<RawSize>) -> Result<SizeSpec> {
    let span = raw.span();
    let r = raw.get_ref();
    let need_u64 = |v: Option<u64>, name: &str| {
        v.ok_or_else(|| src.error(&span, name, format!("missing (dist = \"{}\")", r.dist)))
    };
    let positive = |v: u64, name: &str| {
        if v == 0 { Err(src.error(&span, name, "sizes must be at least 1 byte")) } else { Ok(v) }
    };
    let only = |allowed: &[&str]| -> Result<()> {
        let given = [
            ("bytes", r.bytes.is_some()),
            ("min", r.min.is_some()),
            ("max", r.max.is_some()),
            ("median", r.median.is_some()),
            ("sigma", r.sigma.is_some()),
        ];
        match given.iter().find(|(name, set)| *set && !allowed.contains(name)) {
            Some((name, _)) => Err(src.error(&span, name, format!("does not apply to dist = \"{}\"", r.dist))),
            None => Ok(()),
        }
    };
    let min_max = |lo: u64, hi: u64| {
        if lo > hi { Err(src.error(&span, "max", format!("{hi} is smaller than min {lo}"))) } else { Ok(()) }
    };
    let dist = match r.dist.as_str() {
        "fixed" => {
            only(&["bytes"])?;
            SizeDist::Fixed { bytes: positive(need_u64(r.bytes, "bytes")?, "bytes")? }
        }
        "uniform" | "log_uniform" => {
            only(&["min", "max"])?;
            let min = positive(need_u64(r.min, "min")?, "min")?;
            let max = need_u64(r.max, "max")?;
            min_max(min, max)?;
            if r.dist == "uniform" { SizeDist::Uniform { min, max } } else { SizeDist::LogUniform { min, max } }
        }
        "lognormal" => {
            only(&["median", "sigma", "min", "max"])?;
            let median = r.median.ok_or_else(|| src.error(&span, "median", "missing (dist = \"lognormal\")"))?;
            let sigma = r.sigma.ok_or_else(|| src.error(&span, "sigma", "missing (dist = \"lognormal\")"))?;
            if !(median.is_finite() && median >= 1.0) {
                return Err(src.error(&span, "median", format!("{median} must be a finite number >= 1")));
            }
            if !(sigma.is_finite() && sigma >= 0.0) {
                return Err(src.error(&span, "sigma", format!("{sigma} must be a finite number >= 0")));
            }
            let min = positive(r.min.unwrap_or(1), "min")?;
            let max = r.max.unwrap_or(u64::MAX);
            min_max(min, max)?;
            SizeDist::LogNormal { median, sigma, min, max }
        }
        other => {
            return Err(src.error(
                &span,
                "dist",
                format!("`{other}` is not one of fixed, uniform, log_uniform, lognormal"),
            ));
        }
    };
    Ok(SizeSpec { dist, per_key: r.per_key.unwrap_or(true) })
}

fn parse_component(
    src: &Source<'_>,
    raw: &Spanned<RawComponent>,
    inherited_size: Option<SizeSpec>,
    keyspace: u32,
) -> Result<Component> {
    let span = raw.span();
    let r = raw.get_ref();
    let keys = || -> Result<u64> {
        let k = r.keys.ok_or_else(|| src.error(&span, "keys", format!("missing (kind = \"{}\")", r.kind)))?;
        if k == 0 || k > MAX_COUNT {
            return Err(src.error(&span, "keys", format!("{k} is not in 1..=2^40")));
        }
        Ok(k)
    };
    let not_for = |field: &str, set: bool| {
        if set { Err(src.error(&span, field, format!("does not apply to kind = \"{}\"", r.kind))) } else { Ok(()) }
    };
    let rotate = r.rotate.unwrap_or(0);
    let kind = match r.kind.as_str() {
        "zipf" => {
            let alpha = r.alpha.ok_or_else(|| src.error(&span, "alpha", "missing (kind = \"zipf\")"))?;
            if !(alpha.is_finite() && (0.0..=100.0).contains(&alpha)) {
                return Err(src.error(&span, "alpha", format!("{alpha} must be a finite number in 0..=100")));
            }
            ComponentKind::Zipf { keys: keys()?, alpha, rotate }
        }
        "uniform" => {
            not_for("alpha", r.alpha.is_some())?;
            ComponentKind::Uniform { keys: keys()?, rotate }
        }
        "loop" => {
            not_for("alpha", r.alpha.is_some())?;
            ComponentKind::Loop { keys: keys()?, rotate }
        }
        "scan" => {
            not_for("alpha", r.alpha.is_some())?;
            not_for("keys", r.keys.is_some())?;
            not_for("rotate", r.rotate.is_some())?;
            ComponentKind::Scan
        }
        other => {
            return Err(src.error(&span, "kind", format!("`{other}` is not one of zipf, uniform, loop, scan")));
        }
    };
    let weight = r.weight.unwrap_or(1.0);
    if !(weight.is_finite() && weight >= 0.0) {
        return Err(src.error(&span, "weight", format!("{weight} must be a finite number >= 0")));
    }
    let run = r.run.unwrap_or(1);
    if run == 0 {
        return Err(src.error(&span, "run", "must be at least 1"));
    }
    let size = match &r.size {
        Some(s) => parse_size(src, s)?,
        None => inherited_size.ok_or_else(|| {
            src.error(&span, "size", "missing: give the component a size, or a [size] table for the phase or the spec")
        })?,
    };
    Ok(Component { kind, weight, run, keyspace, size })
}

/// The bijective 64-bit finalizer of splitmix64: distinct inputs give
/// distinct outputs.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A uniform float in [0, 1) from 53 bits of a hash.
fn unit(h: u64) -> f64 {
    (h >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Zipf sampling by rejection-inversion (Hörmann and Derflinger, 1996; the
/// formulation of Apache Commons RNG): O(1) memory and expected O(1) time
/// for any number of ranks. Needs `alpha > 0`.
#[derive(Debug, Clone)]
struct ZipfSampler {
    n: u64,
    alpha: f64,
    h_x1: f64,
    h_n: f64,
    s: f64,
}

impl ZipfSampler {
    fn new(n: u64, alpha: f64) -> ZipfSampler {
        let h_x1 = Self::h_integral(1.5, alpha) - 1.0;
        let h_n = Self::h_integral(n as f64 + 0.5, alpha);
        let s = 2.0 - Self::h_integral_inverse(Self::h_integral(2.5, alpha) - Self::h(2.0, alpha), alpha);
        ZipfSampler { n, alpha, h_x1, h_n, s }
    }

    /// A rank in `0..n` (0 is the most popular).
    fn sample(&self, rng: &mut impl Rng) -> u64 {
        loop {
            let u = self.h_n + rng.random::<f64>() * (self.h_x1 - self.h_n);
            let x = Self::h_integral_inverse(u, self.alpha);
            let k = ((x + 0.5) as u64).clamp(1, self.n);
            let kf = k as f64;
            if kf - x <= self.s || u >= Self::h_integral(kf + 0.5, self.alpha) - Self::h(kf, self.alpha) {
                return k - 1;
            }
        }
    }

    fn h(x: f64, alpha: f64) -> f64 {
        (-alpha * x.ln()).exp()
    }

    fn h_integral(x: f64, alpha: f64) -> f64 {
        let log_x = x.ln();
        helper2((1.0 - alpha) * log_x) * log_x
    }

    fn h_integral_inverse(x: f64, alpha: f64) -> f64 {
        let t = (x * (1.0 - alpha)).max(-1.0);
        (helper1(t) * x).exp()
    }
}

/// `ln(1 + x) / x`, accurate near 0.
fn helper1(x: f64) -> f64 {
    if x.abs() > 1e-8 { x.ln_1p() / x } else { 1.0 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x)) }
}

/// `(exp(x) - 1) / x`, accurate near 0.
fn helper2(x: f64) -> f64 {
    if x.abs() > 1e-8 { x.exp_m1() / x } else { 1.0 + x * 0.5 * (1.0 + x * (1.0 / 3.0) * (1.0 + 0.25 * x)) }
}

#[derive(Debug, Clone)]
enum KeyState {
    Zipf(ZipfSampler, u64, u64),
    Uniform(u64, u64),
    Loop { keys: u64, rotate: u64, next: u64 },
    Scan,
}

/// The requests of a [`WorkloadSpec`], generated on the fly (infallible).
#[derive(Debug, Clone)]
pub struct SyntheticRequests {
    spec: WorkloadSpec,
    rng: ChaCha8Rng,
    salt: u64,
    index: u64,
    phase: usize,
    states: Vec<KeyState>,
    /// Cumulative pick probabilities of the phase's components.
    cumulative: Vec<f64>,
    current: usize,
    run_left: u64,
    /// Next fresh index per key space, for scans (named key spaces first,
    /// anonymous ones by their number).
    scan_next: rustc_hash::FxHashMap<u32, u64>,
}

impl SyntheticRequests {
    fn new(spec: WorkloadSpec) -> SyntheticRequests {
        let rng = ChaCha8Rng::seed_from_u64(spec.seed);
        let salt = mix64(spec.seed ^ 0x6a09_e667_f3bc_c909);
        let mut g = SyntheticRequests {
            spec,
            rng,
            salt,
            index: 0,
            phase: 0,
            states: Vec::new(),
            cumulative: Vec::new(),
            current: 0,
            run_left: 0,
            scan_next: Default::default(),
        };
        g.enter_phase(0);
        g
    }

    fn enter_phase(&mut self, phase: usize) {
        self.phase = phase;
        self.run_left = 0;
        let components = &self.spec.phases[phase].components;
        self.states = components
            .iter()
            .map(|c| match c.kind {
                ComponentKind::Zipf { keys, alpha, rotate } if alpha > 0.0 => {
                    KeyState::Zipf(ZipfSampler::new(keys, alpha), keys, rotate)
                }
                ComponentKind::Zipf { keys, rotate, .. } | ComponentKind::Uniform { keys, rotate } => {
                    KeyState::Uniform(keys, rotate)
                }
                ComponentKind::Loop { keys, rotate } => KeyState::Loop { keys, rotate, next: 0 },
                ComponentKind::Scan => KeyState::Scan,
            })
            .collect();
        let mut total = 0.0;
        self.cumulative = components
            .iter()
            .map(|c| {
                total += c.weight / c.run as f64;
                total
            })
            .collect();
        for c in &mut self.cumulative {
            *c /= total;
        }
    }

    fn size_of(&mut self, key: u64, size: SizeSpec) -> u64 {
        let (u1, u2) = if size.per_key {
            let h = mix64(key ^ self.salt);
            (unit(h), unit(mix64(h ^ 0xbb67_ae85_84ca_a73b)))
        } else {
            (self.rng.random::<f64>(), self.rng.random::<f64>())
        };
        match size.dist {
            SizeDist::Fixed { bytes } => bytes,
            SizeDist::Uniform { min, max } => {
                let span = (max - min) as f64 + 1.0;
                (min + (u1 * span) as u64).min(max)
            }
            SizeDist::LogUniform { min, max } => {
                let (lo, hi) = ((min as f64).ln(), (max as f64).ln());
                ((lo + (hi - lo) * u1).exp().round() as u64).clamp(min, max)
            }
            SizeDist::LogNormal { median, sigma, min, max } => {
                // Box-Muller; 1 - u1 is in (0, 1], so the log is finite.
                let z = (-2.0 * (1.0 - u1).ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                let v = (median * (sigma * z).exp()).round();
                if v >= max as f64 { max } else { (v as u64).max(min) }
            }
        }
    }
}

impl Iterator for SyntheticRequests {
    type Item = RequestRecord;

    fn next(&mut self) -> Option<RequestRecord> {
        if self.index >= self.spec.requests {
            return None;
        }
        while self.index >= self.spec.phases[self.phase].end {
            self.enter_phase(self.phase + 1);
        }
        if self.run_left == 0 {
            let u: f64 = self.rng.random();
            self.current = self.cumulative.partition_point(|&c| c <= u).min(self.cumulative.len() - 1);
            self.run_left = self.spec.phases[self.phase].components[self.current].run;
        }
        self.run_left -= 1;
        let component = &self.spec.phases[self.phase].components[self.current];
        let (keyspace, size_spec) = (component.keyspace, component.size);
        let index = match &mut self.states[self.current] {
            KeyState::Zipf(z, keys, rotate) => (z.sample(&mut self.rng) + *rotate) % *keys,
            KeyState::Uniform(keys, rotate) => (self.rng.random_range(0..*keys) + *rotate) % *keys,
            KeyState::Loop { keys, rotate, next } => {
                let i = (*next + *rotate) % *keys;
                *next = (*next + 1) % *keys;
                i
            }
            KeyState::Scan => {
                let next = self.scan_next.entry(keyspace).or_insert(0);
                let i = *next;
                *next += 1;
                i
            }
        };
        let key = mix64(((u64::from(keyspace) << 40) | (index & (MAX_COUNT - 1))) ^ self.salt);
        let size = self.size_of(key, size_spec);
        let record = RequestRecord { time: self.index, key, size, access: Access::Read };
        self.index += 1;
        Some(record)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = usize::try_from(self.spec.requests - self.index).unwrap_or(usize::MAX);
        (left, Some(left))
    }
}

/// A spec's requests as an [`EventSource`].
#[derive(Debug)]
pub(crate) struct SpecEvents(SyntheticRequests);

impl SpecEvents {
    pub(crate) fn new(spec: WorkloadSpec) -> Result<SpecEvents> {
        Ok(SpecEvents(spec.generate()))
    }
}

impl Iterator for SpecEvents {
    type Item = Result<TraceEvent>;

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|r| Ok(TraceEvent::Request(r)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl EventSource for SpecEvents {
    fn skipped_zero_size(&self) -> u64 {
        0
    }

    fn len_hint(&self) -> Option<u64> {
        Some(self.0.spec.requests)
    }
}

/// Writes a spec's requests to `out` as `format` (csv, native,
/// oracle, oracle-zstd). Native output has no next-access field (readers
/// recompute it); oracleGeneral output has libCacheSim's next-access
/// vtimes, which costs one decoded copy in memory. Returns the records
/// written.
///
/// # Errors
/// An unsupported format, a value the format cannot hold, or a write fails.
pub fn gen_trace(spec: &WorkloadSpec, out: &Path, format: TraceFormat) -> Result<u64> {
    match format {
        TraceFormat::Csv => super::write_csv(out, spec.generate().map(Ok), false),
        TraceFormat::Native => {
            let layout = NativeLayout {
                time_bytes: if spec.requests <= u64::from(u32::MAX) { 4 } else { 8 },
                size_bytes: if spec.max_size() <= u64::from(u32::MAX) { 4 } else { 8 },
                op: false,
                next_access: false,
            };
            let mut writer = NativeWriter::create(out, layout, NativeMeta::default())?;
            for r in spec.generate() {
                writer.write(&TraceEvent::Request(r), super::native::NEVER)?;
            }
            Ok(writer.finish()?.record_count)
        }
        TraceFormat::Oracle | TraceFormat::OracleZstd => {
            let decoded =
                DecodedTrace::from_events(SpecEvents::new(spec.clone())?, TraceFormat::Spec, LoadOptions::default())?;
            let with_next = spec.generate().zip(decoded.next_access.iter().copied()).map(Ok);
            super::write_oracle(out, with_next, format == TraceFormat::OracleZstd)
        }
        other => {
            Err(Error::config(format!("cannot generate {other} traces (write csv, native, oracle or oracle-zstd)")))
        }
    }
}
