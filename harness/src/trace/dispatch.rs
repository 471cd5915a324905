//! Recorded GPU dispatch traces (`workloads/traces/FORMAT.md`): JSON Lines,
//! gzip-compressed or plain, a `gpu-dispatch-trace` version 1 header line,
//! then `alloc`, `free` and `dispatch` events.
//!
//! [`DispatchReader`] streams the events and checks what the format
//! promises: every bound buffer was allocated and not freed since, a binding
//! names the buffer's allocated size, no buffer is bound twice in one
//! dispatch, `seq` increases, access is `r`, `w` or `rw`. Fields it does not
//! know are ignored, so that a recorder may add some. [`FlattenDispatch`]
//! turns the events into requests.

use std::borrow::Cow;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use cachescope_core::policy::Access;
use rustc_hash::{FxHashMap, FxHashSet};
use serde::Deserialize;
use serde_json::Value;

use super::io::{GZIP_MAGIC, LineRead, READ_BUFFER_BYTES, read_line_capped, read_up_to};
use super::{Binding, DispatchEvent, EventSource, FreeRecord, RequestRecord, TraceEvent};
use crate::error::{Error, Location, Result};

/// Longest event line accepted (a dispatch with ~500k bindings).
const MAX_LINE_BYTES: usize = 16 << 20;

/// The `format` a header must name.
pub const FORMAT_NAME: &str = "gpu-dispatch-trace";
/// The one version this reader knows.
pub const FORMAT_VERSION: u64 = 1;

/// The header line of a dispatch trace.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct DispatchHeader {
    /// The workload (`model`), when given.
    pub model: Option<String>,
    /// The device it was recorded on, when given.
    pub device: Option<String>,
    /// The PyTorch version, when given.
    pub torch: Option<String>,
}

/// Counters of a dispatch trace read so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct DispatchStats {
    /// `dispatch` events.
    pub dispatches: u64,
    /// `alloc` events (distinct buffers, when ids are not reused).
    pub buffers: u64,
    /// `free` events.
    pub frees: u64,
    /// Distinct pipelines dispatched.
    pub pipelines: u64,
    /// Bindings over all dispatches.
    pub bindings: u64,
    /// Peak of allocated-and-not-freed bytes.
    pub peak_live_bytes: u64,
}

#[derive(Debug, Clone, Copy)]
struct BufState {
    bytes: u64,
    live: bool,
    /// Line of the alloc (live) or of the free (not live).
    line: u64,
    /// 1 + index of the last dispatch that bound it (0: none).
    bound_in: u64,
}

/// Streaming, validating reader of a dispatch trace.
pub struct DispatchReader {
    path: PathBuf,
    reader: Box<dyn BufRead + Send>,
    header: DispatchHeader,
    line: Vec<u8>,
    line_no: u64,
    buffers: FxHashMap<u64, BufState>,
    pipelines: FxHashSet<u64>,
    last_seq: Option<(u64, u64)>,
    live_bytes: u64,
    stats: DispatchStats,
    done: bool,
}

impl std::fmt::Debug for DispatchReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DispatchReader")
            .field("path", &self.path)
            .field("line", &self.line_no)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

fn open_lines(path: &Path) -> Result<Box<dyn BufRead + Send>> {
    let mut file = File::open(path).map_err(|e| Error::io("open", path, e))?;
    let mut magic = [0u8; 2];
    let n = read_up_to(&mut file, &mut magic).map_err(|e| Error::io("read", path, e))?;
    let file = File::open(path).map_err(|e| Error::io("open", path, e))?;
    Ok(if n == 2 && magic == GZIP_MAGIC {
        let gz = flate2::read::MultiGzDecoder::new(BufReader::with_capacity(READ_BUFFER_BYTES, file));
        Box::new(BufReader::with_capacity(READ_BUFFER_BYTES, gz))
    } else {
        Box::new(BufReader::with_capacity(READ_BUFFER_BYTES, file))
    })
}

/// Whether a gzip file's first line is a dispatch-trace header.
pub(crate) fn gzip_starts_with_header(path: &Path) -> Result<bool> {
    let mut reader = open_lines(path)?;
    let mut line = Vec::new();
    Ok(match read_line_capped(&mut reader, &mut line, 64 * 1024) {
        Ok(LineRead::Line) => serde_json::from_slice::<Value>(&line)
            .ok()
            .is_some_and(|v| v.get("format").and_then(Value::as_str) == Some(FORMAT_NAME)),
        _ => false,
    })
}

impl DispatchReader {
    /// Opens a dispatch trace (gzip or plain) and checks its header.
    ///
    /// # Errors
    /// The file cannot be opened, or line 1 is not a version-1
    /// `gpu-dispatch-trace` header.
    pub fn open(path: &Path) -> Result<DispatchReader> {
        let mut reader = open_lines(path)?;
        let mut line = Vec::with_capacity(4096);
        let header_error = |field: Option<&str>, msg: String| Error::trace(path, Location::Line(1), field, msg);
        match read_line_capped(&mut reader, &mut line, 64 * 1024) {
            Ok(LineRead::Line) => {}
            Ok(LineRead::Eof) => return Err(header_error(None, "the trace is empty: expected a header line".into())),
            Ok(LineRead::TooLong) => return Err(header_error(None, "the header line is longer than 64 KiB".into())),
            Err(e) => return Err(header_error(None, format!("read failed: {e}"))),
        }
        let value: Value = serde_json::from_slice(&line)
            .map_err(|e| header_error(None, format!("the header is not valid JSON: {e}")))?;
        let obj = value.as_object().ok_or_else(|| header_error(None, "the header is not a JSON object".into()))?;
        match obj.get("format") {
            Some(Value::String(s)) if s == FORMAT_NAME => {}
            Some(v) => return Err(header_error(Some("format"), format!("`{v}` is not \"{FORMAT_NAME}\""))),
            None => return Err(header_error(Some("format"), "missing: this is not a dispatch trace header".into())),
        }
        match obj.get("version") {
            Some(v) if v.as_u64() == Some(FORMAT_VERSION) => {}
            Some(v) => {
                return Err(header_error(
                    Some("version"),
                    format!("version {v} is not supported (this reader knows version {FORMAT_VERSION})"),
                ));
            }
            None => return Err(header_error(Some("version"), "missing".into())),
        }
        let text = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_owned);
        let header = DispatchHeader { model: text("model"), device: text("device"), torch: text("torch") };
        Ok(DispatchReader {
            path: path.to_owned(),
            reader,
            header,
            line,
            line_no: 1,
            buffers: FxHashMap::default(),
            pipelines: FxHashSet::default(),
            last_seq: None,
            live_bytes: 0,
            stats: DispatchStats::default(),
            done: false,
        })
    }

    /// The header line.
    pub fn header(&self) -> &DispatchHeader {
        &self.header
    }

    /// Counters of the events read so far.
    pub fn stats(&self) -> DispatchStats {
        DispatchStats { pipelines: self.pipelines.len() as u64, ..self.stats }
    }

    /// The file being read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self, field: Option<&str>, message: impl Into<String>) -> Error {
        Error::trace(&self.path, Location::Line(self.line_no), field, message)
    }

    fn parse_event(&mut self) -> Result<DispatchEvent> {
        let raw: RawEvent<'_> = match serde_json::from_slice(&self.line) {
            Ok(raw) => raw,
            Err(e) => return Err(self.diagnose(e)),
        };
        let missing = |this: &Self, f: &str| this.error(Some(f), "missing");
        match &*raw.ev {
            "alloc" => {
                let buf = raw.buf.ok_or_else(|| missing(self, "buf"))?;
                let bytes = raw.bytes.ok_or_else(|| missing(self, "bytes"))?;
                if let Some(s) = self.buffers.get(&buf).filter(|s| s.live) {
                    return Err(self.error(Some("buf"), format!("buffer {buf} is already allocated (line {})", s.line)));
                }
                self.buffers.insert(buf, BufState { bytes, live: true, line: self.line_no, bound_in: 0 });
                self.live_bytes = self.live_bytes.saturating_add(bytes);
                self.stats.peak_live_bytes = self.stats.peak_live_bytes.max(self.live_bytes);
                self.stats.buffers += 1;
                Ok(DispatchEvent::Alloc { buf, bytes })
            }
            "free" => {
                let buf = raw.buf.ok_or_else(|| missing(self, "buf"))?;
                let line_no = self.line_no;
                let state = match self.buffers.get_mut(&buf) {
                    None => return Err(self.error(Some("buf"), format!("buffer {buf} was never allocated"))),
                    Some(s) if !s.live => {
                        let at = s.line;
                        return Err(self.error(Some("buf"), format!("buffer {buf} was already freed at line {at}")));
                    }
                    Some(s) => s,
                };
                state.live = false;
                state.line = line_no;
                self.live_bytes -= state.bytes.min(self.live_bytes);
                self.stats.frees += 1;
                Ok(DispatchEvent::Free { buf })
            }
            "dispatch" => {
                let seq = raw.seq.ok_or_else(|| missing(self, "seq"))?;
                let op = raw.op.ok_or_else(|| missing(self, "op"))?.into_owned();
                let pipeline_text = raw.pipeline.ok_or_else(|| missing(self, "pipeline"))?;
                let raw_bindings = raw.bindings.ok_or_else(|| missing(self, "bindings"))?;
                let pipeline = parse_pipeline(&pipeline_text).ok_or_else(|| {
                    self.error(Some("pipeline"), format!("`{pipeline_text}` is not 1 to 16 hex digits"))
                })?;
                if let Some((prev, line)) = self.last_seq
                    && seq <= prev
                {
                    return Err(self.error(
                        Some("seq"),
                        format!("{seq} does not increase (the dispatch on line {line} has seq {prev})"),
                    ));
                }
                let dispatch_mark = self.stats.dispatches + 1;
                let mut bindings = Vec::with_capacity(raw_bindings.len());
                for (j, (buf, bytes, access)) in raw_bindings.into_iter().enumerate() {
                    let field = format!("bindings[{j}]");
                    let state = match self.buffers.get_mut(&buf) {
                        None => {
                            return Err(self.error(Some(&field), format!("buffer {buf} was never allocated")));
                        }
                        Some(s) => s,
                    };
                    let problem = if !state.live {
                        Some(format!("buffer {buf} was freed at line {}", state.line))
                    } else if state.bytes != bytes {
                        Some(format!(
                            "buffer {buf} is bound with {bytes} bytes but was allocated with {} (line {})",
                            state.bytes, state.line
                        ))
                    } else if state.bound_in == dispatch_mark {
                        Some(format!("buffer {buf} is bound twice in one dispatch"))
                    } else {
                        None
                    };
                    if let Some(problem) = problem {
                        return Err(self.error(Some(&field), problem));
                    }
                    state.bound_in = dispatch_mark;
                    bindings.push(Binding { buf, bytes, access: access.into() });
                }
                self.last_seq = Some((seq, self.line_no));
                self.pipelines.insert(pipeline);
                self.stats.dispatches += 1;
                self.stats.bindings += bindings.len() as u64;
                Ok(DispatchEvent::Dispatch { seq, op, pipeline, bindings })
            }
            other => Err(self.error(Some("ev"), format!("`{other}` is not one of alloc, free, dispatch"))),
        }
    }

    /// Names the field behind a typed-parse failure by walking the line as
    /// an untyped JSON value.
    fn diagnose(&self, typed: serde_json::Error) -> Error {
        let value: Value = match serde_json::from_slice(&self.line) {
            Ok(v) => v,
            Err(e) => return self.error(None, format!("not valid JSON: {e}")),
        };
        let Some(obj) = value.as_object() else {
            return self.error(None, "an event must be a JSON object");
        };
        let u64_field = |name: &str| -> Option<Error> {
            match obj.get(name) {
                Some(v) if !v.is_null() && v.as_u64().is_none() => {
                    Some(self.error(Some(name), format!("`{v}` is not an unsigned 64-bit integer")))
                }
                _ => None,
            }
        };
        match obj.get("ev") {
            None => return self.error(Some("ev"), "missing"),
            Some(v) if !v.is_string() => return self.error(Some("ev"), format!("`{v}` is not a string")),
            _ => {}
        }
        for name in ["buf", "bytes", "seq"] {
            if let Some(e) = u64_field(name) {
                return e;
            }
        }
        for name in ["op", "pipeline"] {
            if let Some(v) = obj.get(name).filter(|v| !v.is_null() && !v.is_string()) {
                return self.error(Some(name), format!("`{v}` is not a string"));
            }
        }
        if let Some(b) = obj.get("bindings").filter(|v| !v.is_null()) {
            let Some(list) = b.as_array() else {
                return self.error(Some("bindings"), "not a list of [buf, bytes, access]");
            };
            for (j, item) in list.iter().enumerate() {
                let field = format!("bindings[{j}]");
                let Some(t) = item.as_array().filter(|t| t.len() == 3) else {
                    return self.error(Some(&field), format!("`{item}` is not [buf, bytes, access]"));
                };
                for (k, name) in [(0, "buf"), (1, "bytes")] {
                    if t[k].as_u64().is_none() {
                        return self.error(
                            Some(&format!("{field}.{name}")),
                            format!("`{}` is not an unsigned 64-bit integer", t[k]),
                        );
                    }
                }
                if !matches!(t[2].as_str(), Some("r" | "w" | "rw")) {
                    return self.error(Some(&format!("{field}.access")), format!("`{}` is not one of r, w, rw", t[2]));
                }
            }
        }
        self.error(None, typed.to_string())
    }
}

fn parse_pipeline(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(s, 16).ok()
}

#[derive(Deserialize)]
struct RawEvent<'a> {
    #[serde(borrow)]
    ev: Cow<'a, str>,
    buf: Option<u64>,
    bytes: Option<u64>,
    seq: Option<u64>,
    #[serde(borrow)]
    op: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pipeline: Option<Cow<'a, str>>,
    bindings: Option<Vec<(u64, u64, AccessTag)>>,
}

#[derive(Deserialize)]
enum AccessTag {
    #[serde(rename = "r")]
    Read,
    #[serde(rename = "w")]
    Write,
    #[serde(rename = "rw")]
    ReadWrite,
}

impl From<AccessTag> for Access {
    fn from(a: AccessTag) -> Access {
        match a {
            AccessTag::Read => Access::Read,
            AccessTag::Write => Access::Write,
            AccessTag::ReadWrite => Access::ReadWrite,
        }
    }
}

impl Iterator for DispatchReader {
    type Item = Result<DispatchEvent>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            self.line_no += 1;
            let result = match read_line_capped(&mut self.reader, &mut self.line, MAX_LINE_BYTES) {
                Ok(LineRead::Eof) => {
                    self.done = true;
                    return None;
                }
                Ok(LineRead::TooLong) => {
                    Err(self.error(None, format!("line longer than {} MiB", MAX_LINE_BYTES >> 20)))
                }
                Err(e) => Err(self.error(None, format!("read failed: {e}"))),
                Ok(LineRead::Line) if self.line.iter().all(u8::is_ascii_whitespace) => continue,
                Ok(LineRead::Line) => self.parse_event(),
            };
            if result.is_err() {
                self.done = true;
            }
            return Some(result);
        }
        None
    }
}

/// How a dispatch trace becomes a request trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Flatten {
    /// One request per binding, in the order listed: key = buffer id,
    /// size = the buffer's bytes, access from the binding, time = `seq`.
    #[default]
    Buffers,
    /// One request per dispatch: key = pipeline, size = 1 (a pipeline
    /// cache counts entries, not bytes), access = read, time = `seq`.
    Pipelines,
}

/// A dispatch trace as a stream of [`TraceEvent`]s (see [`Flatten`]).
///
/// With `keep_frees`, a `free` of a buffer that was requested since its
/// alloc becomes a [`TraceEvent::Free`] (time = `seq` of the last dispatch,
/// size = its bytes); frees of buffers never requested are dropped, since
/// no cache can hold them. [`Flatten::Pipelines`] has no frees.
#[derive(Debug)]
pub struct FlattenDispatch {
    reader: DispatchReader,
    flatten: Flatten,
    keep_frees: bool,
    pending: std::vec::IntoIter<Binding>,
    pending_seq: u64,
    last_seq: u64,
    requested: FxHashMap<u64, u64>,
    skipped_zero_size: u64,
}

impl FlattenDispatch {
    /// Wraps a reader.
    pub fn new(reader: DispatchReader, flatten: Flatten, keep_frees: bool) -> FlattenDispatch {
        FlattenDispatch {
            reader,
            flatten,
            keep_frees: keep_frees && flatten == Flatten::Buffers,
            pending: Vec::new().into_iter(),
            pending_seq: 0,
            last_seq: 0,
            requested: FxHashMap::default(),
            skipped_zero_size: 0,
        }
    }

    /// The underlying reader (header, counters).
    pub fn reader(&self) -> &DispatchReader {
        &self.reader
    }
}

impl Iterator for FlattenDispatch {
    type Item = Result<TraceEvent>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            for b in self.pending.by_ref() {
                if b.bytes == 0 {
                    self.skipped_zero_size += 1;
                    continue;
                }
                if self.keep_frees {
                    self.requested.insert(b.buf, b.bytes);
                }
                let r = RequestRecord { time: self.pending_seq, key: b.buf, size: b.bytes, access: b.access };
                return Some(Ok(TraceEvent::Request(r)));
            }
            match self.reader.next()? {
                Err(e) => return Some(Err(e)),
                Ok(DispatchEvent::Alloc { .. }) => {}
                Ok(DispatchEvent::Free { buf }) => {
                    if self.keep_frees
                        && let Some(size) = self.requested.remove(&buf)
                    {
                        return Some(Ok(TraceEvent::Free(FreeRecord { time: self.last_seq, key: buf, size })));
                    }
                }
                Ok(DispatchEvent::Dispatch { seq, pipeline, bindings, .. }) => {
                    self.last_seq = seq;
                    match self.flatten {
                        Flatten::Pipelines => {
                            let r = RequestRecord { time: seq, key: pipeline, size: 1, access: Access::Read };
                            return Some(Ok(TraceEvent::Request(r)));
                        }
                        Flatten::Buffers => {
                            self.pending_seq = seq;
                            self.pending = bindings.into_iter();
                        }
                    }
                }
            }
        }
    }
}

impl EventSource for FlattenDispatch {
    fn skipped_zero_size(&self) -> u64 {
        self.skipped_zero_size
    }

    fn peak_live_bytes(&self) -> Option<u64> {
        Some(self.reader.stats().peak_live_bytes)
    }
}
