//! Traces: one event model, streaming readers and writers for every format,
//! flattening of dispatch traces, the decoded copy the simulator shares, and
//! synthetic workloads.
//!
//! Two kinds of trace share one model:
//!
//! * a **request trace** is a sequence of [`RequestRecord`]s (time, key,
//!   size, access), libCacheSim style: CSV `time,key,size`
//!   ([`csv`]), libCacheSim's oracleGeneral ([`oracle`]), the project's own
//!   binary format ([`native`]), or a synthetic workload ([`synth`]);
//! * a **dispatch trace** is a sequence of [`DispatchEvent`]s (alloc, free,
//!   dispatch with its bindings), recorded from a GPU program
//!   (`workloads/traces/FORMAT.md`, [`dispatch`]).
//!
//! A dispatch trace becomes a request trace by [`Flatten`]ing it: one
//! request per binding (buffers), or one per dispatch (pipelines). The GPU
//! view of a trace keeps the frees as [`TraceEvent::Free`] events.
//!
//! Every reader is an iterator of `Result<record>` that reads the file as it
//! goes: a 100M-request trace never sits in memory as text, and no reader
//! allocates more than a bounded amount because a header says so. Every
//! error names the file, the line (text) or record (binary), and the field.
//!
//! [`DecodedTrace`] is the decoded, column-oriented copy of a whole trace
//! that the simulator shares across all its runs.

pub mod convert;
pub mod csv;
pub mod decoded;
pub mod dispatch;
pub mod native;
pub mod oracle;
pub mod synth;

mod io;

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use cachescope_core::policy::Access;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Location, Result};

pub use convert::{ConvertSummary, convert, convert_with, write_csv, write_oracle};
pub(crate) use decoded::StreamIds;
pub use decoded::{Columns, DecodedTrace, LoadOptions, TraceIdentity};
pub use dispatch::{DispatchHeader, DispatchReader, Flatten, FlattenDispatch};
pub(crate) use io::{FileHasher, SharedHasher};
pub use native::{NativeHeader, NativeReader, NativeRecord, NativeWriter};
pub use synth::{WorkloadSpec, gen_trace};

/// One request of a request trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestRecord {
    /// Timestamp as the trace gives it (a dispatch trace: the dispatch's
    /// `seq`; a synthetic trace: the request index). No policy reads it.
    pub time: u64,
    /// Object identifier (any u64, including values of 2^63 and above).
    pub key: u64,
    /// Size in bytes (never 0: size-0 requests are skipped by every reader).
    pub size: u64,
    /// How the request touches the object (`Read` where the format has no
    /// access kinds).
    pub access: Access,
}

/// One binding of a dispatch: a buffer the kernel reads or writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Binding {
    /// Buffer id.
    pub buf: u64,
    /// Size of the whole buffer in bytes.
    pub bytes: u64,
    /// How the kernel touches it.
    pub access: Access,
}

/// One event of a recorded dispatch trace (`workloads/traces/FORMAT.md`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DispatchEvent {
    /// A buffer starts to exist.
    Alloc {
        /// Buffer id.
        buf: u64,
        /// Its size in bytes.
        bytes: u64,
    },
    /// A buffer's memory was reused; it is never bound again.
    Free {
        /// Buffer id.
        buf: u64,
    },
    /// One kernel launch.
    Dispatch {
        /// 0-based, increasing sequence number.
        seq: u64,
        /// Operator name (a label, e.g. `addmm.default`).
        op: String,
        /// Compiled-kernel identity (the 16 hex digits of the file, parsed).
        pipeline: u64,
        /// The buffers it binds, in the order listed.
        bindings: Vec<Binding>,
    },
}

/// A buffer leaves the GPU runtime (the GPU view of a dispatch trace).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FreeRecord {
    /// `seq` of the last dispatch before the free (0 before any).
    pub time: u64,
    /// The buffer id.
    pub key: u64,
    /// Its size in bytes.
    pub size: u64,
}

/// One event of a request-level trace: a request, or (GPU view only) a free.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TraceEvent {
    /// A request for an object.
    Request(RequestRecord),
    /// The object is removed for good (a freed GPU buffer).
    Free(FreeRecord),
}

impl TraceEvent {
    /// The object the event is about.
    pub fn key(&self) -> u64 {
        match self {
            TraceEvent::Request(r) => r.key,
            TraceEvent::Free(f) => f.key,
        }
    }
}

/// The trace formats cachescope reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TraceFormat {
    /// CSV with a `time,key,size` header (an optional fourth column `access`
    /// holds `r`, `w` or `rw`).
    Csv,
    /// libCacheSim oracleGeneral: 24-byte little-endian records.
    Oracle,
    /// oracleGeneral inside a zstd stream.
    OracleZstd,
    /// A recorded GPU dispatch trace: JSON Lines, gzip-compressed or plain.
    Dispatch,
    /// cachescope's own binary format ([`native`]).
    Native,
    /// A TOML workload spec ([`synth`]), generated on the fly.
    Spec,
}

impl TraceFormat {
    /// Every format, in a stable order.
    pub const ALL: &'static [TraceFormat] = &[
        TraceFormat::Csv,
        TraceFormat::Oracle,
        TraceFormat::OracleZstd,
        TraceFormat::Dispatch,
        TraceFormat::Native,
        TraceFormat::Spec,
    ];

    /// The format's name, as `--format` takes it.
    pub fn name(self) -> &'static str {
        match self {
            TraceFormat::Csv => "csv",
            TraceFormat::Oracle => "oracle",
            TraceFormat::OracleZstd => "oracle-zstd",
            TraceFormat::Dispatch => "dispatch",
            TraceFormat::Native => "native",
            TraceFormat::Spec => "spec",
        }
    }

    /// Detects the format of a file from its first bytes: gzip or `{` with a
    /// `gpu-dispatch-trace` header line, zstd magic, the native magic, a
    /// `time,key,size` CSV header, a TOML file (by extension), and otherwise
    /// oracleGeneral when the size is a non-zero multiple of 24.
    ///
    /// # Errors
    /// The file cannot be read, or looks like none of the formats.
    pub fn detect(path: &Path) -> Result<TraceFormat> {
        let mut file = File::open(path).map_err(|e| Error::io("open", path, e))?;
        let len = file.metadata().map_err(|e| Error::io("stat", path, e))?.len();
        let mut head = Vec::with_capacity(512);
        (&mut file).take(512).read_to_end(&mut head).map_err(|e| Error::io("read", path, e))?;
        if head.is_empty() {
            return Err(Error::trace(path, Location::File, None, "the file is empty"));
        }
        if head.starts_with(&native::MAGIC) {
            return Ok(TraceFormat::Native);
        }
        if head.starts_with(&io::ZSTD_MAGIC) {
            return Ok(TraceFormat::OracleZstd);
        }
        if head.starts_with(&io::GZIP_MAGIC) {
            if dispatch::gzip_starts_with_header(path)? {
                return Ok(TraceFormat::Dispatch);
            }
            return Err(Error::trace(
                path,
                Location::Line(1),
                None,
                "a gzip file whose first line is not a `gpu-dispatch-trace` header (only dispatch traces may be gzip-compressed)",
            ));
        }
        let text = String::from_utf8_lossy(&head);
        let first_line = text.trim_start_matches('\u{feff}').lines().next().unwrap_or("").trim();
        if first_line.starts_with('{') && first_line.contains("gpu-dispatch-trace") {
            return Ok(TraceFormat::Dispatch);
        }
        if csv::is_header(first_line) {
            return Ok(TraceFormat::Csv);
        }
        if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("toml")) {
            return Ok(TraceFormat::Spec);
        }
        if len % oracle::RECORD_BYTES == 0 {
            return Ok(TraceFormat::Oracle);
        }
        Err(Error::trace(
            path,
            Location::File,
            None,
            format!(
                "cannot tell the format: not a dispatch trace, native or zstd file, no `time,key,size` CSV header, \
                 and {len} bytes is not a multiple of oracleGeneral's 24-byte records; pass the format explicitly"
            ),
        ))
    }

    /// Refines a format the user named to what the file holds:
    /// `oracle` on a zstd file is [`TraceFormat::OracleZstd`].
    ///
    /// # Errors
    /// The file cannot be read.
    pub fn refine(self, path: &Path) -> Result<TraceFormat> {
        if self != TraceFormat::Oracle {
            return Ok(self);
        }
        let mut file = File::open(path).map_err(|e| Error::io("open", path, e))?;
        let mut head = [0u8; 4];
        let n = io::read_up_to(&mut file, &mut head).map_err(|e| Error::io("read", path, e))?;
        Ok(if n == 4 && head == io::ZSTD_MAGIC { TraceFormat::OracleZstd } else { TraceFormat::Oracle })
    }
}

impl fmt::Display for TraceFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for TraceFormat {
    type Err = Error;

    /// `csv`, `oracle` (plain or zstd: the file decides), `oracle-zstd`,
    /// `dispatch`, `native`, `spec`; case-insensitive.
    fn from_str(s: &str) -> Result<Self> {
        TraceFormat::ALL.iter().copied().find(|f| f.name().eq_ignore_ascii_case(s.trim())).ok_or_else(|| {
            let known: Vec<_> = TraceFormat::ALL.iter().map(|f| f.name()).collect();
            Error::config(format!("unknown trace format `{s}` (known: {})", known.join(", ")))
        })
    }
}

/// A streaming source of [`TraceEvent`]s with the counters a loader needs
/// once it is drained.
pub trait EventSource: Iterator<Item = Result<TraceEvent>> + Send {
    /// Requests of size 0 skipped so far (`semantics.md` section 1).
    fn skipped_zero_size(&self) -> u64;
    /// Peak of allocated-and-not-freed bytes so far, for sources that know
    /// allocations (dispatch traces, native files converted from them).
    fn peak_live_bytes(&self) -> Option<u64> {
        None
    }
    /// About how many events the source holds, where the file tells (a
    /// hint for reserving memory: never trusted beyond a cap).
    fn len_hint(&self) -> Option<u64> {
        None
    }

    /// Replaces the contents of `batch` with up to `max` next events; an
    /// empty batch means the source is drained. Loaders call this instead
    /// of [`Iterator::next`]: a binary format overrides it to decode a whole
    /// buffer of records in one loop (no `Result` and no enum per record).
    ///
    /// # Errors
    /// The first error the source yields (the batch is then incomplete).
    fn next_batch(&mut self, batch: &mut EventBatch, max: usize) -> Result<()> {
        batch.clear();
        for _ in 0..max {
            match self.next() {
                Some(event) => batch.push(event?),
                None => break,
            }
        }
        Ok(())
    }
}

/// Events in columns, as [`EventSource::next_batch`] fills them.
#[derive(Debug, Clone, Default)]
pub struct EventBatch {
    /// Key of each event.
    pub keys: Vec<u64>,
    /// Size of each event in bytes (a free: the buffer's bytes).
    pub sizes: Vec<u64>,
    /// Access kind of each event (`Read` for frees and formats without one).
    pub access: Vec<Access>,
    /// Whether each event is a free; empty when the batch has no free (so a
    /// source without frees never fills it).
    pub is_free: Vec<bool>,
}

impl EventBatch {
    /// Empties every column.
    pub fn clear(&mut self) {
        self.keys.clear();
        self.sizes.clear();
        self.access.clear();
        self.is_free.clear();
    }

    /// Number of events.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there are no events.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether event `i` is a free.
    #[inline]
    pub fn free_at(&self, i: usize) -> bool {
        self.is_free.get(i).copied().unwrap_or(false)
    }

    /// Drops the frees, keeping the requests in order.
    pub fn retain_requests(&mut self) {
        if self.is_free.is_empty() {
            return;
        }
        let mut kept = 0;
        for i in 0..self.keys.len() {
            if !self.is_free[i] {
                self.keys[kept] = self.keys[i];
                self.sizes[kept] = self.sizes[i];
                self.access[kept] = self.access[i];
                kept += 1;
            }
        }
        self.keys.truncate(kept);
        self.sizes.truncate(kept);
        self.access.truncate(kept);
        self.is_free.clear();
    }

    /// Appends one event.
    pub fn push(&mut self, event: TraceEvent) {
        let (key, size, access, free) = match event {
            TraceEvent::Request(r) => (r.key, r.size, r.access, false),
            TraceEvent::Free(f) => (f.key, f.size, Access::Read, true),
        };
        // `is_free` stays empty until the first free; from then on it has
        // one flag per event (backfilled with `false`, also when the very
        // first event of the batch is the free).
        if free || !self.is_free.is_empty() {
            self.is_free.resize(self.keys.len(), false);
            self.is_free.push(free);
        }
        self.keys.push(key);
        self.sizes.push(size);
        self.access.push(access);
    }
}

/// Any trace file (or workload spec) read as a stream of [`TraceEvent`]s.
pub struct TraceReader {
    format: TraceFormat,
    inner: Box<dyn EventSource>,
}

impl fmt::Debug for TraceReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TraceReader").field("format", &self.format).finish_non_exhaustive()
    }
}

impl TraceReader {
    /// Opens `path` as a stream of events. `format` is detected when `None`.
    /// `flatten` says how a dispatch trace becomes requests; `keep_frees`
    /// keeps [`TraceEvent::Free`] events (the GPU view). Other formats
    /// ignore `flatten` except that [`Flatten::Pipelines`] is refused where
    /// there are no pipelines.
    ///
    /// # Errors
    /// The file cannot be opened, its header is bad, or the options do not
    /// apply to the format.
    pub fn open(path: &Path, format: Option<TraceFormat>, flatten: Flatten, keep_frees: bool) -> Result<TraceReader> {
        let format = match format {
            Some(f) => f.refine(path)?,
            None => TraceFormat::detect(path)?,
        };
        let no_pipelines = |what: &str| {
            Error::config(format!(
                "`{}` is a {what}: it has no pipelines to flatten to (pipelines need a dispatch trace, \
                 or a native file converted from one with pipelines)",
                path.display()
            ))
        };
        let inner: Box<dyn EventSource> = match format {
            TraceFormat::Csv | TraceFormat::Oracle | TraceFormat::OracleZstd | TraceFormat::Spec
                if flatten == Flatten::Pipelines =>
            {
                return Err(no_pipelines(&format!("{format} trace")));
            }
            TraceFormat::Csv => Box::new(csv::CsvReader::open(path)?),
            TraceFormat::Oracle => Box::new(oracle::OracleReader::open(path, false)?),
            TraceFormat::OracleZstd => Box::new(oracle::OracleReader::open(path, true)?),
            TraceFormat::Dispatch => Box::new(FlattenDispatch::new(DispatchReader::open(path)?, flatten, keep_frees)),
            TraceFormat::Native => {
                let reader = NativeReader::open(path)?;
                let pipeline_keys = reader.header().flags & native::FLAG_PIPELINE_KEYS != 0;
                if flatten == Flatten::Pipelines && !pipeline_keys {
                    return Err(no_pipelines("native trace of buffer requests"));
                }
                Box::new(native::NativeEvents::new(reader, keep_frees))
            }
            TraceFormat::Spec => Box::new(synth::SpecEvents::new(WorkloadSpec::load(path)?)?),
        };
        Ok(TraceReader { format, inner })
    }

    /// The format being read.
    pub fn format(&self) -> TraceFormat {
        self.format
    }

    /// Size-0 requests skipped so far.
    pub fn skipped_zero_size(&self) -> u64 {
        self.inner.skipped_zero_size()
    }

    /// Peak live bytes so far, where the format knows allocations.
    pub fn peak_live_bytes(&self) -> Option<u64> {
        self.inner.peak_live_bytes()
    }

    /// The format's own source (for its batch decoding).
    pub(crate) fn inner_mut(&mut self) -> &mut dyn EventSource {
        &mut *self.inner
    }

    /// About how many events the source holds, where the file tells.
    pub fn len_hint(&self) -> Option<u64> {
        self.inner.len_hint()
    }

    /// Only the requests (frees dropped).
    pub fn requests(self) -> impl Iterator<Item = Result<RequestRecord>> {
        self.filter_map(|e| match e {
            Ok(TraceEvent::Request(r)) => Some(Ok(r)),
            Ok(TraceEvent::Free(_)) => None,
            Err(e) => Some(Err(e)),
        })
    }
}

impl Iterator for TraceReader {
    type Item = Result<TraceEvent>;

    fn next(&mut self) -> Option<Self::Item> {
        self.inner.next()
    }
}

/// Parses an access kind as the traces spell it: `r`, `w`, `rw`.
pub fn parse_access(s: &str) -> Option<Access> {
    match s {
        "r" => Some(Access::Read),
        "w" => Some(Access::Write),
        "rw" => Some(Access::ReadWrite),
        _ => None,
    }
}

/// The trace spelling of an access kind: `r`, `w`, `rw`.
pub fn access_name(access: Access) -> &'static str {
    match access {
        Access::Read => "r",
        Access::Write => "w",
        Access::ReadWrite => "rw",
    }
}
