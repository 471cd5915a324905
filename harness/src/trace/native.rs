//! cachescope's own binary trace format: a self-describing header, then
//! fixed-width little-endian records in one zstd stream.
//!
//! ```text
//! offset  bytes  field
//! 0       8      magic "CSCOPE\0T"
//! 8       2      format version (u16) = 1
//! 10      2      flags (u16): 1 FREES (records may be frees), 2 PIPELINE_KEYS
//!                (keys are pipeline ids), 4 DISPATCH (converted from a dispatch
//!                trace), 8 OBJECTS (sizes were replaced by 1); other bits must be 0
//! 12      4      header_bytes (u32): length of the whole header; the body starts here
//! 16      8      record_count (u64)
//! 24      8      peak_live_bytes (u64) of the source; u64::MAX = unknown
//! 32      8      skipped_zero_size (u64): size-0 requests the source had
//! 40      1      field_count (u8), 1..=32
//! 41      3      reserved, 0
//! 44      2*n    record layout: n x (field id u8, width u8), in record order
//! ..      4      dictionary entries (u32)
//! ..             entries: id (u64), name length (u16, <= 4096), UTF-8 name
//! header_bytes   zstd stream of record_count x record width bytes
//! ```
//!
//! Field ids and widths: 1 `time` (4 or 8), 2 `key` (8), 3 `size` (4 or 8),
//! 4 `op` (1: 0 read, 1 write, 2 read-write, 3 free), 5 `next_access` (8:
//! distance from this record to the next request for the same key, in
//! records; 0 = never; stored as a distance because small numbers compress
//! far better than absolute indices). `key` and `size` are required; without `time` the time is the
//! record index; without `op` every record is a read. A reader skips fields
//! with ids it does not know (width 1..=16), so later versions can add
//! fields. The dictionary maps ids to names; a file converted from a
//! dispatch trace maps each pipeline id to its operator name.
//!
//! Nothing in the header can make a reader allocate much: the header is at
//! most 16 MiB and no longer than the file, every count is checked against
//! the bytes that hold it, and the record count against the most that the
//! compressed body could expand to.

use std::fs::File;
use std::io::{BufReader, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use cachescope_core::policy::{Access, Request};

use super::io::{AtomicFile, READ_BUFFER_BYTES, read_up_to};
use super::{EventSource, FreeRecord, RequestRecord, TraceEvent};
use crate::error::{Error, Location, Result};

/// The first 8 bytes of a native trace.
pub const MAGIC: [u8; 8] = *b"CSCOPE\0T";
/// The format version this code writes and reads.
pub const VERSION: u16 = 1;
/// Flag: records may be frees (`op` = 3).
pub const FLAG_FREES: u16 = 1;
/// Flag: keys are pipeline ids (a dispatch trace flattened by pipeline).
pub const FLAG_PIPELINE_KEYS: u16 = 2;
/// Flag: converted from a dispatch trace (`peak_live_bytes` is known).
pub const FLAG_DISPATCH: u16 = 4;
/// Flag: sizes were replaced by 1 (an object-cache view).
pub const FLAG_OBJECTS: u16 = 8;
const KNOWN_FLAGS: u16 = FLAG_FREES | FLAG_PIPELINE_KEYS | FLAG_DISPATCH | FLAG_OBJECTS;

/// Field id of `time`.
pub const FIELD_TIME: u8 = 1;
/// Field id of `key`.
pub const FIELD_KEY: u8 = 2;
/// Field id of `size`.
pub const FIELD_SIZE: u8 = 3;
/// Field id of `op`.
pub const FIELD_OP: u8 = 4;
/// Field id of `next_access`.
pub const FIELD_NEXT_ACCESS: u8 = 5;

const FIXED_HEADER_BYTES: usize = 44;
const MAX_HEADER_BYTES: u64 = 16 << 20;
const MAX_FIELDS: usize = 32;
const MAX_NAME_BYTES: usize = 4096;
/// The most a zstd stream can expand: one 128 KiB block of repeated bytes
/// stored in 4 bytes. A header announcing more records than this allows is
/// refused before anything is read.
const MAX_ZSTD_EXPANSION: u64 = 32 * 1024;

const OP_FREE: u8 = 3;

/// The record layout a writer uses. Widths are in bytes; 0 leaves a field
/// out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NativeLayout {
    /// 0 (time = record index), 4 or 8.
    pub time_bytes: u8,
    /// 4 or 8.
    pub size_bytes: u8,
    /// Whether records carry `op` (access kind or free).
    pub op: bool,
    /// Whether records carry `next_access`.
    pub next_access: bool,
}

impl Default for NativeLayout {
    /// Everything, full width.
    fn default() -> Self {
        NativeLayout { time_bytes: 8, size_bytes: 8, op: true, next_access: true }
    }
}

impl NativeLayout {
    fn fields(&self) -> Vec<(u8, u8)> {
        let mut f = Vec::with_capacity(5);
        if self.time_bytes != 0 {
            f.push((FIELD_TIME, self.time_bytes));
        }
        f.push((FIELD_KEY, 8));
        f.push((FIELD_SIZE, self.size_bytes));
        if self.op {
            f.push((FIELD_OP, 1));
        }
        if self.next_access {
            f.push((FIELD_NEXT_ACCESS, 8));
        }
        f
    }
}

/// The decoded header of a native trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativeHeader {
    /// Format version.
    pub version: u16,
    /// `FLAG_*` bits.
    pub flags: u16,
    /// Length of the header; the body starts at this offset.
    pub header_bytes: u32,
    /// Records in the body.
    pub record_count: u64,
    /// Peak live bytes of the source, when known.
    pub peak_live_bytes: Option<u64>,
    /// Size-0 requests the source had (skipped before writing).
    pub skipped_zero_size: u64,
    /// Record layout: (field id, width) in record order.
    pub fields: Vec<(u8, u8)>,
    /// Names of ids (pipeline id -> operator name for dispatch-derived files).
    pub dictionary: Vec<(u64, String)>,
}

impl NativeHeader {
    /// Bytes per record.
    pub fn record_bytes(&self) -> usize {
        self.fields.iter().map(|&(_, w)| usize::from(w)).sum()
    }

    /// Whether records carry `next_access`.
    pub fn has_next_access(&self) -> bool {
        self.fields.iter().any(|&(id, _)| id == FIELD_NEXT_ACCESS)
    }

    fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(FIXED_HEADER_BYTES + 64);
        b.extend_from_slice(&MAGIC);
        b.extend_from_slice(&self.version.to_le_bytes());
        b.extend_from_slice(&self.flags.to_le_bytes());
        b.extend_from_slice(&self.header_bytes.to_le_bytes());
        b.extend_from_slice(&self.record_count.to_le_bytes());
        b.extend_from_slice(&self.peak_live_bytes.unwrap_or(u64::MAX).to_le_bytes());
        b.extend_from_slice(&self.skipped_zero_size.to_le_bytes());
        b.push(self.fields.len() as u8);
        b.extend_from_slice(&[0; 3]);
        for &(id, w) in &self.fields {
            b.extend_from_slice(&[id, w]);
        }
        b.extend_from_slice(&(self.dictionary.len() as u32).to_le_bytes());
        for (id, name) in &self.dictionary {
            b.extend_from_slice(&id.to_le_bytes());
            b.extend_from_slice(&(name.len() as u16).to_le_bytes());
            b.extend_from_slice(name.as_bytes());
        }
        b
    }

    /// Reads and checks a header; `file_len` bounds every count in it.
    fn decode(path: &Path, file: &mut File, file_len: u64) -> Result<NativeHeader> {
        let bad = |field: &str, msg: String| Error::trace(path, Location::Header, Some(field), msg);
        let mut fixed = [0u8; FIXED_HEADER_BYTES];
        let n = read_up_to(file, &mut fixed).map_err(|e| Error::io("read", path, e))?;
        if n < FIXED_HEADER_BYTES {
            return Err(Error::trace(
                path,
                Location::Header,
                None,
                format!("truncated: {n} bytes, a native header has at least {FIXED_HEADER_BYTES}"),
            ));
        }
        if fixed[0..8] != MAGIC {
            return Err(bad("magic", "not a cachescope native trace".into()));
        }
        let u16_at = |i: usize| u16::from_le_bytes([fixed[i], fixed[i + 1]]);
        let u32_at = |i: usize| u32::from_le_bytes([fixed[i], fixed[i + 1], fixed[i + 2], fixed[i + 3]]);
        let u64_at = |i: usize| {
            let mut x = [0u8; 8];
            x.copy_from_slice(&fixed[i..i + 8]);
            u64::from_le_bytes(x)
        };
        let version = u16_at(8);
        if version != VERSION {
            return Err(bad("version", format!("version {version} is not supported (this reader knows {VERSION})")));
        }
        let flags = u16_at(10);
        if flags & !KNOWN_FLAGS != 0 {
            return Err(bad("flags", format!("unknown flag bits {:#x}", flags & !KNOWN_FLAGS)));
        }
        let header_bytes = u32_at(12);
        let record_count = u64_at(16);
        let peak = u64_at(24);
        let skipped_zero_size = u64_at(32);
        let field_count = usize::from(fixed[40]);
        if u64::from(header_bytes) > MAX_HEADER_BYTES || u64::from(header_bytes) > file_len {
            return Err(bad(
                "header_bytes",
                format!("{header_bytes} is larger than the file ({file_len} bytes) or than 16 MiB"),
            ));
        }
        if !(1..=MAX_FIELDS).contains(&field_count) {
            return Err(bad("field_count", format!("{field_count} is not in 1..={MAX_FIELDS}")));
        }
        let rest_len = (header_bytes as usize).checked_sub(FIXED_HEADER_BYTES).ok_or_else(|| {
            bad("header_bytes", format!("{header_bytes} is smaller than the fixed header ({FIXED_HEADER_BYTES})"))
        })?;
        // Bounded above by MAX_HEADER_BYTES and by the file's length.
        let mut rest = vec![0u8; rest_len];
        let n = read_up_to(file, &mut rest).map_err(|e| Error::io("read", path, e))?;
        if n < rest_len {
            return Err(bad("header_bytes", format!("the file ends inside the header ({header_bytes} bytes)")));
        }
        let mut cur = Cursor { bytes: &rest, pos: 0 };
        let short = |what: &str| bad(what, format!("does not fit in header_bytes ({header_bytes})"));
        let mut fields = Vec::with_capacity(field_count);
        for i in 0..field_count {
            let id = cur.u8().ok_or_else(|| short("fields"))?;
            let width = cur.u8().ok_or_else(|| short("fields"))?;
            let ok = match id {
                FIELD_TIME | FIELD_SIZE => width == 4 || width == 8,
                FIELD_KEY | FIELD_NEXT_ACCESS => width == 8,
                FIELD_OP => width == 1,
                _ => (1..=16).contains(&width),
            };
            if !ok {
                return Err(bad(&format!("fields[{i}]"), format!("field id {id} cannot have width {width}")));
            }
            if fields.iter().any(|&(seen, _)| seen == id) {
                return Err(bad(&format!("fields[{i}]"), format!("field id {id} appears twice")));
            }
            fields.push((id, width));
        }
        for (id, name) in [(FIELD_KEY, "key"), (FIELD_SIZE, "size")] {
            if !fields.iter().any(|&(f, _)| f == id) {
                return Err(bad("fields", format!("the layout has no `{name}` field")));
            }
        }
        if flags & FLAG_FREES != 0 && !fields.iter().any(|&(f, _)| f == FIELD_OP) {
            return Err(bad("fields", "the FREES flag needs an `op` field".into()));
        }
        let dict_count = cur.u32().ok_or_else(|| short("dictionary"))? as usize;
        // Every entry takes at least 10 bytes, so the remaining header bounds the count.
        if dict_count > cur.remaining() / 10 {
            return Err(bad(
                "dictionary",
                format!("{dict_count} entries cannot fit in the {} bytes left in the header", cur.remaining()),
            ));
        }
        let mut dictionary = Vec::with_capacity(dict_count);
        for i in 0..dict_count {
            let field = format!("dictionary[{i}]");
            let id = cur.u64().ok_or_else(|| short(&field))?;
            let len = usize::from(cur.u16().ok_or_else(|| short(&field))?);
            if len > MAX_NAME_BYTES {
                return Err(bad(&field, format!("a name of {len} bytes (at most {MAX_NAME_BYTES})")));
            }
            let name = cur.take(len).ok_or_else(|| short(&field))?;
            let name = std::str::from_utf8(name).map_err(|_| bad(&field, "the name is not UTF-8".into()))?;
            dictionary.push((id, name.to_owned()));
        }
        let header = NativeHeader {
            version,
            flags,
            header_bytes,
            record_count,
            peak_live_bytes: (peak != u64::MAX).then_some(peak),
            skipped_zero_size,
            fields,
            dictionary,
        };
        let body_len = file_len - u64::from(header_bytes);
        let max_body = body_len.saturating_mul(MAX_ZSTD_EXPANSION).saturating_add(1 << 16);
        let need = record_count.checked_mul(header.record_bytes() as u64);
        if need.is_none_or(|need| need > max_body) {
            return Err(bad(
                "record_count",
                format!(
                    "{record_count} records of {} bytes cannot come out of a {body_len}-byte compressed body",
                    header.record_bytes()
                ),
            ));
        }
        Ok(header)
    }
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.bytes.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }
    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

/// One record of a native trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NativeRecord {
    /// The request or free.
    pub event: TraceEvent,
    /// The stored next access (index of the next request for the key,
    /// [`Request::NEVER`] for none); `None` when the file has no such field.
    pub next_access: Option<u64>,
}

/// Streaming reader of a native trace: yields exactly `record_count`
/// records or an error naming the record where the body ends or is wrong.
pub struct NativeReader {
    path: PathBuf,
    header: NativeHeader,
    body: BufReader<zstd::Decoder<'static, BufReader<File>>>,
    record: Vec<u8>,
    index: u64,
    done: bool,
}

impl std::fmt::Debug for NativeReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativeReader").field("path", &self.path).field("header", &self.header).finish_non_exhaustive()
    }
}

impl NativeReader {
    /// Opens a native trace and checks its header.
    ///
    /// # Errors
    /// The file cannot be opened, or the header is malformed or implausible.
    pub fn open(path: &Path) -> Result<NativeReader> {
        let mut file = File::open(path).map_err(|e| Error::io("open", path, e))?;
        let file_len = file.metadata().map_err(|e| Error::io("stat", path, e))?.len();
        let header = NativeHeader::decode(path, &mut file, file_len)?;
        file.seek(SeekFrom::Start(u64::from(header.header_bytes))).map_err(|e| Error::io("seek", path, e))?;
        let decoder = zstd::Decoder::with_buffer(BufReader::with_capacity(READ_BUFFER_BYTES, file)).map_err(|e| {
            Error::trace(path, Location::Record(0), None, format!("the body is not a zstd stream: {e}"))
        })?;
        let record = vec![0u8; header.record_bytes()];
        Ok(NativeReader {
            path: path.to_owned(),
            header,
            body: BufReader::with_capacity(READ_BUFFER_BYTES, decoder),
            record,
            index: 0,
            done: false,
        })
    }

    /// The header.
    pub fn header(&self) -> &NativeHeader {
        &self.header
    }

    fn error(&self, field: Option<&str>, message: impl Into<String>) -> Error {
        Error::trace(&self.path, Location::Record(self.index), field, message)
    }

    fn read_record(&mut self) -> Result<Option<NativeRecord>> {
        if self.index == self.header.record_count {
            let mut probe = [0u8; 1];
            return match read_up_to(&mut self.body, &mut probe) {
                Ok(0) => Ok(None),
                Ok(_) => Err(self.error(
                    None,
                    format!("the body holds more than the {} records the header announces", self.header.record_count),
                )),
                Err(e) => Err(self.error(None, format!("read failed: {e}"))),
            };
        }
        let width = self.record.len();
        match read_up_to(&mut self.body, &mut self.record) {
            Ok(n) if n == width => {}
            Ok(0) => {
                return Err(self.error(
                    None,
                    format!("truncated: the body ends here, the header announces {} records", self.header.record_count),
                ));
            }
            Ok(n) => {
                return Err(
                    self.error(None, format!("truncated: the body ends {n} bytes into this {width}-byte record"))
                );
            }
            Err(e) => return Err(self.error(None, format!("read failed: {e}"))),
        }
        let (mut time, mut key, mut size, mut op, mut next) = (self.index, 0, 0, 0u8, None);
        let mut pos = 0;
        for &(id, w) in &self.header.fields {
            let bytes = &self.record[pos..pos + usize::from(w)];
            pos += usize::from(w);
            let value = || {
                let mut x = [0u8; 8];
                x[..bytes.len().min(8)].copy_from_slice(&bytes[..bytes.len().min(8)]);
                u64::from_le_bytes(x)
            };
            match id {
                FIELD_TIME => time = value(),
                FIELD_KEY => key = value(),
                FIELD_SIZE => size = value(),
                FIELD_OP => op = bytes[0],
                FIELD_NEXT_ACCESS => {
                    let distance = value();
                    next = Some(if distance == 0 { NEVER } else { self.index.saturating_add(distance) });
                }
                _ => {}
            }
        }
        let access = match op {
            0 => Access::Read,
            1 => Access::Write,
            2 => Access::ReadWrite,
            OP_FREE if self.header.flags & FLAG_FREES != 0 => {
                let event = TraceEvent::Free(FreeRecord { time, key, size });
                self.index += 1;
                return Ok(Some(NativeRecord { event, next_access: next }));
            }
            other => {
                let why = if other == OP_FREE { "a free, but the header has no FREES flag" } else { "not 0..=3" };
                return Err(self.error(Some("op"), format!("{other} is {why}")));
            }
        };
        self.index += 1;
        Ok(Some(NativeRecord {
            event: TraceEvent::Request(RequestRecord { time, key, size, access }),
            next_access: next,
        }))
    }
}

impl Iterator for NativeReader {
    type Item = Result<NativeRecord>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.read_record() {
            Ok(Some(r)) => Some(Ok(r)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// A native trace as [`TraceEvent`]s: size-0 requests skipped and counted
/// (on top of those the source had), frees kept or dropped.
#[derive(Debug)]
pub(crate) struct NativeEvents {
    reader: NativeReader,
    keep_frees: bool,
    skipped: u64,
}

impl NativeEvents {
    pub(crate) fn new(reader: NativeReader, keep_frees: bool) -> NativeEvents {
        NativeEvents { reader, keep_frees, skipped: 0 }
    }
}

impl Iterator for NativeEvents {
    type Item = Result<TraceEvent>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match self.reader.next()? {
                Ok(NativeRecord { event: TraceEvent::Request(r), .. }) if r.size == 0 => self.skipped += 1,
                Ok(NativeRecord { event: TraceEvent::Free(_), .. }) if !self.keep_frees => {}
                Ok(r) => return Some(Ok(r.event)),
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

impl EventSource for NativeEvents {
    fn skipped_zero_size(&self) -> u64 {
        // The header's count comes from the file: a hostile one must not
        // overflow (found by fuzzing).
        self.reader.header.skipped_zero_size.saturating_add(self.skipped)
    }

    fn peak_live_bytes(&self) -> Option<u64> {
        self.reader.header.peak_live_bytes
    }

    fn len_hint(&self) -> Option<u64> {
        Some(self.reader.header.record_count)
    }
}

/// What a [`NativeWriter`] records in the header besides the layout.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NativeMeta {
    /// `FLAG_*` bits (FREES is set for you when the layout has `op` and a
    /// free is written).
    pub flags: u16,
    /// Peak live bytes of the source, when known.
    pub peak_live_bytes: Option<u64>,
    /// Size-0 requests the source had.
    pub skipped_zero_size: u64,
    /// Names of ids (pipeline id -> operator name).
    pub dictionary: Vec<(u64, String)>,
}

/// Streaming writer of a native trace. The record count is patched into the
/// header by [`finish`](Self::finish); the file appears only then.
pub struct NativeWriter {
    file: AtomicFile,
    header: NativeHeader,
    layout: NativeLayout,
    body: Option<zstd::Encoder<'static, BufWriter<File>>>,
    record: Vec<u8>,
    frees: bool,
}

impl std::fmt::Debug for NativeWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativeWriter").field("path", &self.file.path()).field("header", &self.header).finish()
    }
}

impl NativeWriter {
    /// Creates the file and writes the header (record count 0 until
    /// [`finish`](Self::finish)).
    ///
    /// # Errors
    /// A bad layout or dictionary (a width other than 4 or 8, a name over
    /// 4096 bytes, a header over 16 MiB), or the file cannot be created.
    pub fn create(path: &Path, layout: NativeLayout, meta: NativeMeta) -> Result<NativeWriter> {
        if !matches!(layout.time_bytes, 0 | 4 | 8) || !matches!(layout.size_bytes, 4 | 8) {
            return Err(Error::config(format!("native layout: bad widths {layout:?}")));
        }
        if meta.flags & !KNOWN_FLAGS != 0 {
            return Err(Error::config(format!("native flags: unknown bits {:#x}", meta.flags & !KNOWN_FLAGS)));
        }
        if let Some((id, _)) = meta.dictionary.iter().find(|(_, n)| n.len() > MAX_NAME_BYTES) {
            return Err(Error::config(format!(
                "native dictionary: the name of {id:#x} is over {MAX_NAME_BYTES} bytes"
            )));
        }
        let mut header = NativeHeader {
            version: VERSION,
            flags: meta.flags & !FLAG_FREES,
            header_bytes: 0,
            record_count: 0,
            peak_live_bytes: meta.peak_live_bytes,
            skipped_zero_size: meta.skipped_zero_size,
            fields: layout.fields(),
            dictionary: meta.dictionary,
        };
        if layout.op {
            // Decided before any record is written, so that readers know frees may come.
            header.flags |= meta.flags & FLAG_FREES;
        }
        let len = header.encode().len() as u64;
        if len > MAX_HEADER_BYTES {
            return Err(Error::config(format!("native header of {len} bytes is over 16 MiB (dictionary too large)")));
        }
        header.header_bytes = len as u32;
        let mut file = AtomicFile::create(path)?;
        super::io::write_all(&mut file, &header.encode())?;
        let inner = file.take();
        let body = zstd::Encoder::new(inner, 3).map_err(|e| file.write_error(e))?;
        let record = Vec::with_capacity(header.record_bytes());
        let frees = header.flags & FLAG_FREES != 0;
        Ok(NativeWriter { file, header, layout, body: Some(body), record, frees })
    }

    /// Writes one record. `next_access` is ignored when the layout has no
    /// such field ([`Request::NEVER`] for none).
    ///
    /// # Errors
    /// A value does not fit its field (a time or size over u32 in a 4-byte
    /// field, a free without the FREES flag), or a write fails.
    pub fn write(&mut self, event: &TraceEvent, next_access: u64) -> Result<()> {
        let (time, key, size, op) = match *event {
            TraceEvent::Request(r) => (r.time, r.key, r.size, access_code(r.access)),
            TraceEvent::Free(f) => (f.time, f.key, f.size, OP_FREE),
        };
        let index = self.header.record_count;
        let doesnt_fit = |field: &str, v: u64| {
            Error::config(format!("native record {index}: {field} {v} does not fit the layout's 4-byte field"))
        };
        if op == OP_FREE && !self.frees {
            return Err(Error::config(format!(
                "native record {index}: a free, but the file was created without FREES"
            )));
        }
        if op != 0 && !self.layout.op {
            return Err(Error::config(format!("native record {index}: a write access, but the layout has no `op`")));
        }
        self.record.clear();
        match self.layout.time_bytes {
            4 => {
                self.record.extend_from_slice(&u32::try_from(time).map_err(|_| doesnt_fit("time", time))?.to_le_bytes())
            }
            8 => self.record.extend_from_slice(&time.to_le_bytes()),
            _ => {}
        }
        self.record.extend_from_slice(&key.to_le_bytes());
        match self.layout.size_bytes {
            4 => {
                self.record.extend_from_slice(&u32::try_from(size).map_err(|_| doesnt_fit("size", size))?.to_le_bytes())
            }
            _ => self.record.extend_from_slice(&size.to_le_bytes()),
        }
        if self.layout.op {
            self.record.push(op);
        }
        if self.layout.next_access {
            let distance = match next_access {
                NEVER => 0,
                n if n > index => n - index,
                n => {
                    return Err(Error::config(format!(
                        "native record {index}: next access {n} is not after the record itself"
                    )));
                }
            };
            self.record.extend_from_slice(&distance.to_le_bytes());
        }
        let Some(body) = self.body.as_mut() else {
            return Err(Error::config("native writer used after an error"));
        };
        if let Err(e) = body.write_all(&self.record) {
            self.body = None;
            return Err(self.file.write_error(e));
        }
        self.header.record_count += 1;
        Ok(())
    }

    /// Ends the zstd stream, writes the record count into the header, and
    /// moves the file into place. Returns the header as written.
    ///
    /// # Errors
    /// A write, seek, fsync or rename fails.
    pub fn finish(mut self) -> Result<NativeHeader> {
        let body = self.body.take().ok_or_else(|| Error::config("native writer used after an error"))?;
        let inner = body.finish().map_err(|e| self.file.write_error(e))?;
        let mut file = inner.into_inner().map_err(|e| self.file.write_error(e.into_error()))?;
        let patch = (|| {
            file.seek(SeekFrom::Start(16))?;
            file.write_all(&self.header.record_count.to_le_bytes())
        })();
        patch.map_err(|e| self.file.write_error(e))?;
        self.file.put(BufWriter::new(file));
        self.file.commit()?;
        Ok(self.header)
    }
}

fn access_code(a: Access) -> u8 {
    match a {
        Access::Read => 0,
        Access::Write => 1,
        Access::ReadWrite => 2,
    }
}

/// `next_access` value of a key with no later request.
pub const NEVER: u64 = Request::NEVER;
