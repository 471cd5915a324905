//! The dashboard's own view of a results file, and safe access to a
//! directory of them.
//!
//! The harness owns the results format (`{ "schema_version", "kind",
//! "tool", "trace", "config", "runs": [...], "extra" }`); the dashboard
//! mirrors only the fields it shows, tolerates every field it does not know,
//! and does not depend on the harness (dependencies point `harness ->
//! dashboard`).
//!
//! [`ResultsDir`] is the only way the server reads files: a run name is a
//! relative path of plain components (`[A-Za-z0-9._-]`, no `..`, no leading
//! dot) without the `.json` suffix; it is joined to the directory,
//! canonicalized (resolving links) and must still lie inside the
//! canonicalized directory, be a regular file, and be no larger than a limit.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// One (policy, capacity) run: the fields of the harness's `RunResult` that
/// the dashboard uses. Missing numbers read as 0.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunRecord {
    /// Policy name.
    pub policy: String,
    /// Capacity in units (bytes, or objects when `objects`).
    pub capacity: u64,
    /// How the capacity was asked for (`1%`, `64MiB`).
    pub size: String,
    /// Object cache (every object has size 1).
    pub objects: bool,
    /// Requests counted.
    pub requests: u64,
    /// Requests that hit.
    pub hits: u64,
    /// Requests that missed.
    pub misses: u64,
    /// Bytes requested.
    pub requested_bytes: u64,
    /// Bytes of the requests that missed.
    pub missed_bytes: u64,
    /// misses / requests (derived from the counters when absent).
    pub miss_ratio: Option<f64>,
    /// missed bytes / requested bytes (derived when absent).
    pub byte_miss_ratio: Option<f64>,
    /// Entries evicted.
    pub evictions: u64,
    /// Bytes evicted.
    pub evicted_bytes: u64,
    /// GPU model: bytes uploaded.
    pub upload_bytes: Option<u64>,
    /// GPU model: bytes read back.
    pub readback_bytes: Option<u64>,
    /// Wall time of the run in seconds.
    pub seconds: f64,
    /// Latency histograms by kind (`dispatch`, `upload`, ...), when the
    /// producer measured them (the GPU replayer).
    pub latency: BTreeMap<String, LatencyRecord>,
}

impl RunRecord {
    /// The miss ratio, from the file or the counters.
    pub fn miss_ratio(&self) -> f64 {
        self.miss_ratio.unwrap_or_else(|| ratio(self.misses, self.requests))
    }

    /// The byte miss ratio, from the file or the counters.
    pub fn byte_miss_ratio(&self) -> f64 {
        self.byte_miss_ratio.unwrap_or_else(|| ratio(self.missed_bytes, self.requested_bytes))
    }

    /// `policy@size`, the run's short name.
    pub fn name(&self) -> String {
        if self.size.is_empty() {
            format!("{}@{}", self.policy, self.capacity)
        } else {
            format!("{}@{}", self.policy, self.size)
        }
    }
}

fn ratio(n: u64, d: u64) -> f64 {
    if d == 0 { 0.0 } else { n as f64 / d as f64 }
}

/// A latency histogram in a results file: cumulative buckets, as
/// `/api/live` and Prometheus have them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LatencyRecord {
    /// Observations.
    pub count: u64,
    /// Their sum in seconds.
    pub sum_seconds: f64,
    /// `(upper bound in seconds, cumulative count)`, ascending.
    pub buckets: Vec<(f64, u64)>,
}

/// A results file, as far as the dashboard reads it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ResultsFile {
    /// Schema version of the writer.
    pub schema_version: u64,
    /// `sim`, `replay`, `bench`.
    pub kind: String,
    /// What produced it (kept as JSON).
    pub tool: serde_json::Value,
    /// The trace's identity (kept as JSON).
    pub trace: serde_json::Value,
    /// The job's configuration (kept as JSON).
    pub config: serde_json::Value,
    /// One entry per (policy, capacity).
    pub runs: Vec<RunRecord>,
    /// Extra sections by name; a section with a `points` array of
    /// `{capacity, miss_ratio, byte_miss_ratio}` is drawn as a curve.
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// One point of an extra miss-ratio curve (e.g. the one-pass LRU curve).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CurvePoint {
    /// Capacity in units.
    pub capacity: u64,
    /// Miss ratio.
    pub miss_ratio: f64,
    /// Byte miss ratio.
    pub byte_miss_ratio: f64,
}

impl ResultsFile {
    /// Parses a results file from JSON text; `path` names it in errors.
    ///
    /// # Errors
    /// [`Error::Results`] with line and column when the JSON is not a
    /// results file.
    pub fn from_json(text: &str, path: &Path) -> Result<Self> {
        serde_json::from_str(text).map_err(|e| Error::Results { path: path.to_path_buf(), message: e.to_string() })
    }

    /// Reads and parses one file (at most `max_bytes`).
    ///
    /// # Errors
    /// I/O errors and parse errors, naming the file.
    pub fn read(path: &Path, max_bytes: u64) -> Result<Self> {
        let text = read_bounded(path, max_bytes)?;
        Self::from_json(&text, path)
    }

    /// From an already parsed JSON value.
    ///
    /// # Errors
    /// [`Error::Results`] when the value is not a results file.
    pub fn from_value(value: &serde_json::Value) -> Result<Self> {
        Self::deserialize(value).map_err(|e| Error::Results { path: PathBuf::from("<memory>"), message: e.to_string() })
    }

    /// Policies in the order they first appear.
    pub fn policies(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for r in &self.runs {
            if !out.contains(&r.policy) {
                out.push(r.policy.clone());
            }
        }
        out
    }

    /// Extra curves: `(section name, points)` for every extra section that
    /// has a `points` array of capacity / miss-ratio objects.
    pub fn extra_curves(&self) -> Vec<(String, Vec<CurvePoint>)> {
        self.extra
            .iter()
            .filter_map(|(name, v)| {
                let pts = v.get("points")?.as_array()?;
                let parsed: Vec<CurvePoint> =
                    pts.iter().filter_map(|p| CurvePoint::deserialize(p).ok()).filter(|p| p.capacity > 0).collect();
                (!parsed.is_empty()).then(|| (name.clone(), parsed))
            })
            .collect()
    }

    /// The trace's display name: `trace.name`, `trace.path` or empty.
    pub fn trace_name(&self) -> String {
        for key in ["name", "path", "file"] {
            if let Some(s) = self.trace.get(key).and_then(|v| v.as_str()) {
                return s.to_string();
            }
        }
        self.trace.as_str().unwrap_or_default().to_string()
    }
}

fn read_bounded(path: &Path, max_bytes: u64) -> Result<String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut text = String::new();
    file.take(max_bytes.saturating_add(1)).read_to_string(&mut text).map_err(|e| Error::io(path, e))?;
    if text.len() as u64 > max_bytes {
        return Err(Error::Results { path: path.to_path_buf(), message: format!("larger than {max_bytes} bytes") });
    }
    Ok(text)
}

/// A results file found in a [`ResultsDir`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunEntry {
    /// The run name: the relative path without `.json`, `/`-separated.
    pub name: String,
    /// File size in bytes.
    pub bytes: u64,
    /// Last modification, milliseconds since the Unix epoch.
    pub modified_unix_ms: u64,
}

/// A directory of results files, read safely; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct ResultsDir {
    root: PathBuf,
    max_file_bytes: u64,
}

/// How deep [`ResultsDir::list`] looks (`<date>-<machine>/<experiment>/x.json`
/// is depth 3).
const MAX_DEPTH: usize = 4;
/// How many files [`ResultsDir::list`] returns at most.
const MAX_LISTED: usize = 10_000;
/// Longest run name accepted.
const MAX_NAME_BYTES: usize = 512;

impl ResultsDir {
    /// Opens `root` (which must exist); files larger than `max_file_bytes`
    /// are refused.
    ///
    /// # Errors
    /// [`Error::Io`] when the directory cannot be resolved.
    pub fn open(root: &Path, max_file_bytes: u64) -> Result<Self> {
        let root = root.canonicalize().map_err(|e| Error::io(root, e))?;
        if !root.is_dir() {
            return Err(Error::io(&root, std::io::Error::other("not a directory")));
        }
        Ok(ResultsDir { root, max_file_bytes })
    }

    /// The canonical directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Results files (`*.json`, not hidden, not temporary), sorted by name,
    /// at most 4 levels deep and 10,000 entries. Links are followed only
    /// when they stay inside the directory.
    ///
    /// # Errors
    /// [`Error::Io`] when the directory itself cannot be read.
    pub fn list(&self) -> Result<Vec<RunEntry>> {
        let mut out = Vec::new();
        self.walk(&self.root, 0, &mut out)?;
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn walk(&self, dir: &Path, depth: usize, out: &mut Vec<RunEntry>) -> Result<()> {
        let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
        for entry in entries.flatten() {
            if out.len() >= MAX_LISTED {
                return Ok(());
            }
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with('.') || !valid_component(name) {
                continue;
            }
            let path = entry.path();
            // Resolve links and keep only what stays inside the root.
            let Ok(real) = path.canonicalize() else { continue };
            if !real.starts_with(&self.root) {
                continue;
            }
            let Ok(meta) = std::fs::metadata(&real) else { continue };
            if meta.is_dir() {
                if depth + 1 < MAX_DEPTH {
                    // Errors below the root are skipped, not fatal.
                    let _ = self.walk(&path, depth + 1, out);
                }
            } else if meta.is_file()
                && let Some(stem) = name.strip_suffix(".json")
                && !stem.is_empty()
            {
                let rel = path.strip_prefix(&self.root).unwrap_or(&path);
                let mut parts: Vec<String> = rel
                    .parent()
                    .into_iter()
                    .flat_map(|p| p.components())
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                parts.push(stem.to_string());
                out.push(RunEntry {
                    name: parts.join("/"),
                    bytes: meta.len(),
                    modified_unix_ms: meta
                        .modified()
                        .ok()
                        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                        .map_or(0, |d| d.as_millis() as u64),
                });
            }
        }
        Ok(())
    }

    /// The file of run `name`, checked as the [module docs](self) say.
    ///
    /// # Errors
    /// [`Error::BadRunName`] for a name that is not a safe relative name or
    /// resolves outside the directory; [`Error::UnknownRun`] when there is
    /// no such file.
    pub fn resolve(&self, name: &str) -> Result<PathBuf> {
        check_name(name)?;
        let candidate = self.root.join(format!("{name}.json"));
        let real = match candidate.canonicalize() {
            Ok(r) => r,
            Err(_) => return Err(Error::UnknownRun(name.to_string())),
        };
        if !real.starts_with(&self.root) {
            return Err(Error::bad_name(name, "it leads outside the results directory"));
        }
        match std::fs::metadata(&real) {
            Ok(m) if m.is_file() => Ok(real),
            _ => Err(Error::UnknownRun(name.to_string())),
        }
    }

    /// The raw JSON text of run `name`.
    ///
    /// # Errors
    /// As [`resolve`](Self::resolve), plus I/O errors and the size limit.
    pub fn read_text(&self, name: &str) -> Result<String> {
        let path = self.resolve(name)?;
        read_bounded(&path, self.max_file_bytes)
    }

    /// Run `name`, parsed.
    ///
    /// # Errors
    /// As [`read_text`](Self::read_text), plus parse errors.
    pub fn read(&self, name: &str) -> Result<ResultsFile> {
        let path = self.resolve(name)?;
        ResultsFile::read(&path, self.max_file_bytes)
    }
}

fn valid_component(c: &str) -> bool {
    !c.is_empty()
        && c != "."
        && c != ".."
        && !c.starts_with('.')
        && c.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'+' | b'@' | b'%'))
}

/// Checks that `name` is a relative run name of plain components.
///
/// # Errors
/// [`Error::BadRunName`] saying why.
pub fn check_name(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::bad_name(name, "it is empty"));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(Error::bad_name(name, "it is too long"));
    }
    if name.starts_with('/') || name.contains('\\') || name.contains('\0') {
        return Err(Error::bad_name(name, "it must be a relative path with `/` separators"));
    }
    for part in name.split('/') {
        if part == ".." {
            return Err(Error::bad_name(name, "it contains `..`"));
        }
        if !valid_component(part) {
            return Err(Error::bad_name(name, "each part must be letters, digits or `._-+@%`, not starting with `.`"));
        }
    }
    // Belt and braces: the platform's own parse must agree.
    if Path::new(name).components().any(|c| !matches!(c, Component::Normal(_))) {
        return Err(Error::bad_name(name, "it is not a plain relative path"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for ok in ["run", "2026-05-01-h100/sweep/results", "lru@1%", "a.b-c_d"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "..", "../x", "a/../b", "/etc/passwd", "a//b", ".hidden", "a\\b", "a/./b", "x\0y", "a b"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn tolerant_of_extra_and_missing_fields() {
        let text = r#"{"schema_version":1,"kind":"sim","future":{"x":1},
            "runs":[{"policy":"lru","capacity":10,"requests":4,"misses":1,"new_field":[1,2]}],
            "extra":{"lru_curve":{"points":[{"capacity":5,"miss_ratio":0.5,"byte_miss_ratio":0.6}]}}}"#;
        let r = ResultsFile::from_json(text, Path::new("x.json")).unwrap();
        assert_eq!(r.runs[0].miss_ratio(), 0.25);
        assert_eq!(r.extra_curves()[0].1[0].capacity, 5);
        let err = ResultsFile::from_json("{\"runs\": 3}", Path::new("bad.json")).unwrap_err().to_string();
        assert!(err.contains("bad.json") && err.contains("line 1"), "{err}");
    }

    #[test]
    fn listing_and_links_stay_inside() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.json"), "{}").unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("day/exp")).unwrap();
        std::fs::write(dir.path().join("a.json"), "{}").unwrap();
        std::fs::write(dir.path().join("day/exp/b.json"), "{}").unwrap();
        std::fs::write(dir.path().join(".tmp.json"), "{}").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret.json"), dir.path().join("escape.json")).unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("escdir")).unwrap();
        let rd = ResultsDir::open(dir.path(), 1 << 20).unwrap();
        let names: Vec<String> = rd.list().unwrap().into_iter().map(|e| e.name).collect();
        assert_eq!(names, ["a", "day/exp/b"]);
        assert!(matches!(rd.resolve("escape"), Err(Error::BadRunName { .. })));
        assert!(matches!(rd.resolve("escdir/secret"), Err(Error::BadRunName { .. })));
        assert!(matches!(rd.resolve("nope"), Err(Error::UnknownRun(_))));
        assert!(rd.read_text("day/exp/b").is_ok());
    }
}
