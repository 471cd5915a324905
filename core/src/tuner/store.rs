//! Tuning decisions persisted per adapter, as one TOML file.
//!
//! A sweep costs hundreds of dispatches; a decision is reused on every later
//! run of the same adapter (name + driver: a driver update can change the
//! best size, so it is part of the identity) and program key. The file is
//! plain TOML so a person can read, diff and edit it:
//!
//! ```toml
//! schema = 1
//!
//! [adapters."NVIDIA H100 / Vulkan 550.54.15"."3f2a…(64 hex digits)"]
//! workgroup = [256, 1, 1]
//! min_ns = 12000
//! median_ns = 12480
//! samples = 36
//! confident = true
//! ```
//!
//! No timestamps: the same decisions always produce the same bytes, so the
//! file can be committed and compared. Anything unexpected in the file (a
//! typo'd field, a zero dimension, another schema) is an [`Error::Parse`]
//! naming the line, never silently skipped as the seed did: a skipped
//! decision would quietly re-tune, a misread one would quietly run slow.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Deserializer, Serialize};

use super::ProgramKey;
use crate::{Error, Result};

/// The file layout this build reads and writes.
const SCHEMA: u32 = 1;

/// A decisions file larger than this is not ours (one decision is ~150 bytes).
const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// TOML integers are i64; larger values would make the whole save fail.
const TOML_INT_MAX: u64 = i64::MAX as u64;

/// One persisted tuning decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// The chosen workgroup size (no dimension is 0).
    #[serde(deserialize_with = "nonzero_workgroup")]
    pub workgroup: [u32; 3],
    /// Its fastest measured time, in nanoseconds.
    pub min_ns: u64,
    /// Its median measured time, in nanoseconds.
    pub median_ns: u64,
    /// Measurements the whole sweep took (all candidates).
    pub samples: u64,
    /// Whether the sweep showed every other candidate clearly slower.
    pub confident: bool,
}

fn nonzero_workgroup<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<[u32; 3], D::Error> {
    let wg = <[u32; 3]>::deserialize(d)?;
    if wg.contains(&0) {
        return Err(serde::de::Error::custom(format!("workgroup {wg:?} has a zero dimension")));
    }
    Ok(wg)
}

fn supported_schema<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<u32, D::Error> {
    let v = u32::deserialize(d)?;
    if v != SCHEMA {
        return Err(serde::de::Error::custom(format!(
            "schema {v} is not supported (this build reads schema {SCHEMA})"
        )));
    }
    Ok(v)
}

/// adapter -> program key -> decision. BTreeMaps so the file is sorted and
/// byte-for-byte reproducible.
type Decisions = BTreeMap<String, BTreeMap<ProgramKey, Decision>>;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(deserialize_with = "supported_schema")]
    schema: u32,
    #[serde(default)]
    adapters: Decisions,
}

/// The decisions of every adapter, backed by one TOML file.
///
/// In memory until [`save`](Self::save); not shared between threads by
/// itself (wrap it in a `Mutex`). Concurrent saves from several processes
/// never leave a torn file (the rename is atomic); the last one wins.
#[derive(Debug)]
pub struct TunerStore {
    path: PathBuf,
    decisions: Decisions,
    dirty: bool,
}

impl TunerStore {
    /// Opens the store at `path`: empty when the file does not exist yet,
    /// otherwise its decisions.
    ///
    /// # Errors
    /// [`Error::Parse`] (path, 1-based line, what is wrong with which field)
    /// for a file that is not valid decisions TOML; [`Error::Corrupt`] for
    /// one over 16 MiB; [`Error::Io`] when it cannot be read.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        let decisions = match fs::File::open(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Decisions::new(),
            Err(e) => return Err(Error::io("open", path, e)),
            Ok(file) => parse(&path, &read_bounded(&path, file)?)?,
        };
        Ok(TunerStore { path, decisions, dirty: false })
    }

    /// The file this store reads and writes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The decision for `key` on `adapter`.
    pub fn get(&self, adapter: &str, key: &ProgramKey) -> Option<&Decision> {
        self.decisions.get(adapter)?.get(key)
    }

    /// Stores `decision` for `key` on `adapter`, returning the one it
    /// replaces. Times and counts beyond `i64::MAX` (what TOML can hold) are
    /// clamped: 292 years is not a real measurement.
    pub fn insert(&mut self, adapter: &str, key: ProgramKey, mut decision: Decision) -> Option<Decision> {
        for v in [&mut decision.min_ns, &mut decision.median_ns, &mut decision.samples] {
            *v = (*v).min(TOML_INT_MAX);
        }
        self.dirty = true;
        self.decisions.entry(adapter.to_owned()).or_default().insert(key, decision)
    }

    /// Forgets the decision for `key` on `adapter`, returning it.
    pub fn remove(&mut self, adapter: &str, key: &ProgramKey) -> Option<Decision> {
        let per_adapter = self.decisions.get_mut(adapter)?;
        let removed = per_adapter.remove(key)?;
        if per_adapter.is_empty() {
            self.decisions.remove(adapter);
        }
        self.dirty = true;
        Some(removed)
    }

    /// Every decision, sorted by adapter then key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &ProgramKey, &Decision)> + '_ {
        self.decisions.iter().flat_map(|(a, m)| m.iter().map(move |(k, d)| (a.as_str(), k, d)))
    }

    /// Number of decisions, all adapters together.
    pub fn len(&self) -> usize {
        self.decisions.values().map(BTreeMap::len).sum()
    }

    /// Whether there is no decision.
    pub fn is_empty(&self) -> bool {
        self.decisions.is_empty()
    }

    /// Whether there are changes since the last open or save.
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// Writes every decision to the file atomically: a temporary file in the
    /// same directory, flushed to disk, then renamed over the old file, and
    /// the directory synced, so a crash leaves the old file or the new one,
    /// never a torn one. Creates the directory if needed.
    ///
    /// # Errors
    /// [`Error::Io`] naming the step and path that failed (the old file is
    /// then untouched and the temporary file removed).
    pub fn save(&mut self) -> Result<()> {
        let text = self.to_toml()?;
        let dir = match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&dir).map_err(|e| Error::io("create directory", &dir, e))?;
        let tmp = dir.join(temp_name(&self.path));
        let written = write_synced(&tmp, text.as_bytes())
            .and_then(|()| fs::rename(&tmp, &self.path).map_err(|e| Error::io("rename into place", &self.path, e)));
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        sync_dir(&dir)?;
        self.dirty = false;
        Ok(())
    }

    /// The file's text as [`save`](Self::save) would write it.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if TOML cannot represent a value (not
    /// expected: values are clamped on insert).
    pub fn to_toml(&self) -> Result<String> {
        let file = File { schema: SCHEMA, adapters: self.decisions.clone() };
        let body = toml::to_string(&file)
            .map_err(|e| Error::config(format!("tuner store `{}`: cannot encode: {e}", self.path.display())))?;
        Ok(format!("# Workgroup-size decisions of the cachescope tuner, per adapter and program key.\n{body}"))
    }
}

fn read_bounded(path: &Path, file: fs::File) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes).map_err(|e| Error::io("read", path, e))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(Error::Corrupt {
            path: path.to_path_buf(),
            reason: format!("larger than {MAX_FILE_BYTES} bytes; not a tuner decisions file"),
        });
    }
    Ok(bytes)
}

fn parse(path: &Path, bytes: &[u8]) -> Result<Decisions> {
    let text = std::str::from_utf8(bytes).map_err(|e| Error::Parse {
        path: path.to_path_buf(),
        line: line_of(bytes, e.valid_up_to()),
        message: "not valid UTF-8".to_owned(),
    })?;
    let file: File = toml::from_str(text).map_err(|e| {
        let (line, message) = match e.span() {
            Some(span) => {
                let line = line_of(bytes, span.start);
                let source = text.lines().nth(line - 1).unwrap_or("").trim();
                let message = e.message().trim_end();
                // A missing top-level field points at the document start,
                // often a comment: quoting it would mislead.
                if source.is_empty() || source.starts_with('#') {
                    (line, message.to_owned())
                } else {
                    (line, format!("{message} (in `{source}`)"))
                }
            }
            None => (0, e.message().trim_end().to_owned()),
        };
        Error::Parse { path: path.to_path_buf(), line, message }
    })?;
    Ok(file.adapters)
}

/// 1-based line of byte `offset`.
fn line_of(bytes: &[u8], offset: usize) -> usize {
    bytes[..offset.min(bytes.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

/// Unique per process and per save, so concurrent saves (threads or
/// processes) never write into one temporary file.
fn temp_name(target: &Path) -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let name = target.file_name().map_or_else(|| "tuner".into(), |n| n.to_string_lossy());
    format!(".{name}.{}.{}.tmp", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed))
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = fs::File::create(path).map_err(|e| Error::io("create", path, e))?;
    f.write_all(bytes).map_err(|e| Error::io("write", path, e))?;
    f.sync_all().map_err(|e| Error::io("fsync", path, e))
}

/// Makes the rename durable. Only Unix can open a directory to sync it.
fn sync_dir(dir: &Path) -> Result<()> {
    if cfg!(unix) {
        fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| Error::io("fsync directory", dir, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(x: u32) -> Decision {
        Decision { workgroup: [x, 1, 1], min_ns: 100, median_ns: 110, samples: 9, confident: true }
    }

    #[test]
    fn line_numbers() {
        assert_eq!(line_of(b"a\nb\nc", 0), 1);
        assert_eq!(line_of(b"a\nb\nc", 2), 2);
        assert_eq!(line_of(b"a\nb\nc", 99), 3);
    }

    #[test]
    fn insert_remove_and_clamp() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = TunerStore::open(dir.path().join("t.toml")).unwrap();
        assert!(s.is_empty() && !s.is_dirty());
        let k = ProgramKey::new(b"k", &[]);
        assert_eq!(s.insert("a", k, Decision { min_ns: u64::MAX, ..decision(64) }), None);
        assert_eq!(s.get("a", &k).unwrap().min_ns, i64::MAX as u64);
        assert!(s.to_toml().is_ok());
        assert!(s.is_dirty() && s.len() == 1);
        assert_eq!(s.remove("a", &k).map(|d| d.workgroup), Some([64, 1, 1]));
        assert!(s.is_empty(), "an adapter with no decisions leaves no empty table");
    }
}
