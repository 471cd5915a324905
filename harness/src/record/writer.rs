//! The dispatch-trace writer: `workloads/traces/FORMAT.md` exactly (a
//! `gpu-dispatch-trace` version 1 header line, then `alloc`, `free` and
//! `dispatch` events, one JSON object a line), gzip-compressed.
//!
//! The writer enforces what the format promises instead of trusting its
//! caller: a bound buffer is allocated and not freed, with the allocated
//! size; no buffer twice in one dispatch; `seq` is assigned here, so it
//! increases. A program that breaks a promise gets an error at the event,
//! not a trace the reader rejects later.
//!
//! Output is a pure function of the events: no timestamps (the gzip header's
//! mtime is 0 and names no file), so the same program writes the same bytes.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use cachescope_core::policy::Access;
use flate2::Compression;
use flate2::write::GzEncoder;
use rustc_hash::{FxHashMap, FxHashSet};
use serde::Serialize;

use crate::gpu::{GpuError, GpuResult};
use crate::trace::dispatch::{FORMAT_NAME, FORMAT_VERSION};

/// The header line. Field order is the order written (`format` first, as in
/// the recorded PyTorch traces); fields past `device` are this recorder's
/// own, which the reader ignores.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TraceHeader {
    /// Always [`FORMAT_NAME`].
    pub format: &'static str,
    /// Always [`FORMAT_VERSION`].
    pub version: u64,
    /// The workload (`mlp`, `pyramid`, `spmv`).
    pub model: String,
    /// The adapter the workload ran on.
    pub device: String,
    /// What wrote the trace (`cachescope record <version>`).
    pub recorder: String,
    /// Seed of the workload's data (and of its structure, where data shapes it).
    pub seed: u64,
    /// The `--scale` it ran at.
    pub scale: u32,
    /// The workload's parameters (shapes, counts), as the program reports them.
    pub params: serde_json::Value,
}

impl TraceHeader {
    /// A header for `model` recorded on `device`.
    pub fn new(model: &str, device: &str, seed: u64, scale: u32, params: serde_json::Value) -> TraceHeader {
        TraceHeader {
            format: FORMAT_NAME,
            version: FORMAT_VERSION,
            model: model.to_owned(),
            device: device.to_owned(),
            recorder: concat!("cachescope record ", env!("CARGO_PKG_VERSION")).to_owned(),
            seed,
            scale,
            params,
        }
    }
}

/// Counters of a written trace: the reader's own [`DispatchStats`](crate::trace::dispatch::DispatchStats), so a
/// recording and a later read of its file count the same things the same
/// way (a test checks they agree).
pub type TraceStats = crate::trace::dispatch::DispatchStats;

/// Writes events as JSON lines into `W` and checks the format's promises.
#[derive(Debug)]
pub struct TraceWriter<W: Write> {
    out: W,
    /// Live buffers: id -> bytes.
    live: FxHashMap<u64, u64>,
    /// Every id ever allocated (ids are never reused, so a free is final).
    seen: FxHashSet<u64>,
    pipelines: FxHashSet<u64>,
    live_bytes: u64,
    stats: TraceStats,
    line: String,
    /// Bindings of the dispatch being written (duplicate check).
    bound: FxHashSet<u64>,
}

fn invalid(message: String) -> GpuError {
    GpuError::Trace(format!("recorder: {message}"))
}

fn access_tag(access: Access) -> &'static str {
    match access {
        Access::Read => "r",
        Access::Write => "w",
        Access::ReadWrite => "rw",
    }
}

impl<W: Write> TraceWriter<W> {
    /// Writes the header line into `out`.
    ///
    /// # Errors
    /// [`GpuError::Trace`] when the write fails.
    pub fn new(mut out: W, header: &TraceHeader) -> GpuResult<TraceWriter<W>> {
        let text = serde_json::to_string(header).map_err(|e| invalid(format!("encoding the header: {e}")))?;
        writeln!(out, "{text}").map_err(|e| invalid(format!("writing the header: {e}")))?;
        Ok(TraceWriter {
            out,
            live: FxHashMap::default(),
            seen: FxHashSet::default(),
            pipelines: FxHashSet::default(),
            live_bytes: 0,
            stats: TraceStats::default(),
            line: String::with_capacity(256),
            bound: FxHashSet::default(),
        })
    }

    fn emit(&mut self) -> GpuResult<()> {
        self.line.push('\n');
        self.out.write_all(self.line.as_bytes()).map_err(|e| invalid(format!("writing an event: {e}")))?;
        self.line.clear();
        Ok(())
    }

    /// `alloc` of a new buffer id.
    ///
    /// # Errors
    /// [`GpuError::Trace`] when `buf` was allocated before, or the write fails.
    pub fn alloc(&mut self, buf: u64, bytes: u64) -> GpuResult<()> {
        if !self.seen.insert(buf) {
            return Err(invalid(format!("buffer {buf} is allocated twice")));
        }
        self.live.insert(buf, bytes);
        self.live_bytes += bytes;
        self.stats.peak_live_bytes = self.stats.peak_live_bytes.max(self.live_bytes);
        self.stats.buffers += 1;
        self.line = format!(r#"{{"ev":"alloc","buf":{buf},"bytes":{bytes}}}"#);
        self.emit()
    }

    /// `free` of a live buffer.
    ///
    /// # Errors
    /// [`GpuError::Trace`] when `buf` is not live, or the write fails.
    pub fn free(&mut self, buf: u64) -> GpuResult<()> {
        let bytes =
            self.live.remove(&buf).ok_or_else(|| invalid(format!("free of buffer {buf}, which is not live")))?;
        self.live_bytes -= bytes;
        self.stats.frees += 1;
        self.line = format!(r#"{{"ev":"free","buf":{buf}}}"#);
        self.emit()
    }

    /// A `dispatch` of `op` on `pipeline` with `bindings` (buffer, access);
    /// returns its `seq`.
    ///
    /// # Errors
    /// [`GpuError::Trace`] when a buffer is not live or bound twice, or the
    /// write fails.
    pub fn dispatch(&mut self, op: &str, pipeline: u64, bindings: &[(u64, Access)]) -> GpuResult<u64> {
        use std::fmt::Write as _;
        let seq = self.stats.dispatches;
        let op_json = serde_json::to_string(op).map_err(|e| invalid(format!("encoding op `{op}`: {e}")))?;
        self.bound.clear();
        let mut line =
            format!(r#"{{"ev":"dispatch","seq":{seq},"op":{op_json},"pipeline":"{pipeline:016x}","bindings":["#);
        for (j, &(buf, access)) in bindings.iter().enumerate() {
            let bytes = *self
                .live
                .get(&buf)
                .ok_or_else(|| invalid(format!("dispatch {seq} ({op}) binds buffer {buf}, which is not live")))?;
            if !self.bound.insert(buf) {
                return Err(invalid(format!("dispatch {seq} ({op}) binds buffer {buf} twice")));
            }
            let sep = if j == 0 { "" } else { "," };
            let _ = write!(line, r#"{sep}[{buf},{bytes},"{}"]"#, access_tag(access));
        }
        line.push_str("]}");
        self.line = line;
        self.emit()?;
        self.pipelines.insert(pipeline);
        self.stats.dispatches += 1;
        self.stats.bindings += bindings.len() as u64;
        Ok(seq)
    }

    /// Whether `buf` is allocated and not freed.
    pub fn is_live(&self, buf: u64) -> bool {
        self.live.contains_key(&buf)
    }

    /// Counters so far.
    pub fn stats(&self) -> TraceStats {
        TraceStats { pipelines: self.pipelines.len() as u64, ..self.stats }
    }

    /// Flushes and returns the output and the counters.
    ///
    /// # Errors
    /// [`GpuError::Trace`] when the flush fails.
    pub fn finish(mut self) -> GpuResult<(W, TraceStats)> {
        self.out.flush().map_err(|e| invalid(format!("flushing the trace: {e}")))?;
        let stats = self.stats();
        Ok((self.out, stats))
    }
}

/// A trace being written to a gzip file: into a temporary file next to the
/// target, renamed into place by [`TraceFile::persist`], so an interrupted
/// or failed recording never leaves a truncated trace behind.
#[derive(Debug)]
pub struct TraceFile {
    path: PathBuf,
    writer: TraceWriter<GzEncoder<BufWriter<tempfile::NamedTempFile>>>,
}

fn io_error(what: &str, path: &Path, e: impl std::fmt::Display) -> GpuError {
    GpuError::Trace(format!("{what} `{}`: {e}", path.display()))
}

impl TraceFile {
    /// Starts the trace `path` with `header`.
    ///
    /// # Errors
    /// [`GpuError::Trace`] naming the file when it cannot be created.
    pub fn create(path: &Path, header: &TraceHeader) -> GpuResult<TraceFile> {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let mut builder = tempfile::Builder::new();
        builder.prefix(".cachescope-record-");
        // A trace is for sharing: readable by all, like any file written
        // directly (a temporary file is private by default).
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(std::fs::Permissions::from_mode(0o644));
        }
        let tmp = builder.tempfile_in(dir).map_err(|e| io_error("creating a temporary file for", path, e))?;
        let gz = GzEncoder::new(BufWriter::new(tmp), Compression::best());
        Ok(TraceFile { path: path.to_owned(), writer: TraceWriter::new(gz, header)? })
    }

    /// The event writer.
    pub fn events(&mut self) -> &mut TraceWriter<GzEncoder<BufWriter<tempfile::NamedTempFile>>> {
        &mut self.writer
    }

    /// Finishes the gzip stream and renames the file into place.
    ///
    /// # Errors
    /// [`GpuError::Trace`] naming the file when a write or the rename fails.
    pub fn persist(self) -> GpuResult<TraceStats> {
        let path = self.path;
        let (gz, stats) = self.writer.finish()?;
        let buffered = gz.finish().map_err(|e| io_error("writing", &path, e))?;
        let tmp = buffered.into_inner().map_err(|e| io_error("writing", &path, e.error()))?;
        tmp.as_file().sync_all().map_err(|e| io_error("syncing", &path, e))?;
        tmp.persist(&path).map_err(|e| io_error("renaming the temporary file to", &path, e.error))?;
        Ok(stats)
    }
}

/// Writes an uncompressed trace into memory (tests, and checking a writer's
/// output without a file).
///
/// # Errors
/// As [`TraceWriter::new`].
pub fn in_memory(header: &TraceHeader) -> GpuResult<TraceWriter<Vec<u8>>> {
    TraceWriter::new(Vec::new(), header)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> TraceHeader {
        TraceHeader::new("t", "dev", 1, 1, serde_json::json!({}))
    }

    #[test]
    fn writes_the_format_and_counts() {
        let mut w = in_memory(&header()).expect("header");
        w.alloc(0, 16).expect("alloc");
        w.alloc(1, 8).expect("alloc");
        assert_eq!(w.dispatch("k", 0xab, &[(0, Access::Read), (1, Access::Write)]).expect("dispatch"), 0);
        w.free(1).expect("free");
        assert_eq!(w.dispatch("k", 0xab, &[(0, Access::ReadWrite)]).expect("dispatch"), 1);
        let (bytes, stats) = w.finish().expect("finish");
        let text = String::from_utf8(bytes).expect("utf8");
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with(r#"{"format":"gpu-dispatch-trace","version":1,"model":"t","device":"dev""#));
        assert_eq!(
            lines[3],
            r#"{"ev":"dispatch","seq":0,"op":"k","pipeline":"00000000000000ab","bindings":[[0,16,"r"],[1,8,"w"]]}"#
        );
        assert_eq!(lines[4], r#"{"ev":"free","buf":1}"#);
        assert_eq!(
            stats,
            TraceStats { dispatches: 2, buffers: 2, frees: 1, pipelines: 1, bindings: 3, peak_live_bytes: 24 }
        );
    }

    #[test]
    fn refuses_what_the_format_forbids() {
        let mut w = in_memory(&header()).expect("header");
        w.alloc(0, 4).expect("alloc");
        assert!(w.alloc(0, 4).is_err(), "double alloc");
        assert!(w.dispatch("k", 1, &[(0, Access::Read), (0, Access::Write)]).is_err(), "bound twice");
        assert!(w.dispatch("k", 1, &[(7, Access::Read)]).is_err(), "never allocated");
        w.free(0).expect("free");
        assert!(w.free(0).is_err(), "double free");
        assert!(w.dispatch("k", 1, &[(0, Access::Read)]).is_err(), "freed");
        assert!(w.alloc(0, 4).is_err(), "ids are never reused");
    }
}
