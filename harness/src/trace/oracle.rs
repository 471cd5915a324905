//! libCacheSim's oracleGeneral binary trace: 24-byte little-endian records
//! `u32 time, u64 obj_id, u32 size, i64 next_access_vtime`, plain or inside
//! a zstd stream.
//!
//! libCacheSim's own converter (`convert_to_oracleGeneral`, checked on
//! libcachesim 0.3.5) writes `next_access_vtime` as the 1-based index of the
//! next request for the same object among the records of the file (request
//! `i`, counted from 0, has vtime `i + 1`), and `-1` when there is none.
//! [`OracleWriter`] writes the same. The reader does not trust the field:
//! [`super::DecodedTrace`] recomputes next accesses with a reverse pass.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use cachescope_core::policy::Access;

use super::io::{AtomicFile, READ_BUFFER_BYTES, read_up_to};
use super::{EventBatch, EventSource, RequestRecord, TraceEvent};
use crate::error::{Error, Location, Result};

/// Bytes of one oracleGeneral record.
pub const RECORD_BYTES: u64 = 24;

/// Records read per `read` call by [`OracleReader`]'s batch decoding: large
/// enough that a plain file is read straight into the buffer (bypassing the
/// `BufReader`) in few system calls, small enough to stay in L2.
const BATCH_RECORDS: usize = 16 * 1024;

/// Buffer of a plain file's reader: batch reads (a streamed simulation's
/// 8K records are 192 KiB) are larger, so they go straight from the file
/// into the batch's buffer instead of being copied twice; record-at-a-time
/// reading still gets few system calls.
const PLAIN_BUFFER_BYTES: usize = 64 * 1024;

/// One oracleGeneral record as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OracleRecord {
    /// Timestamp.
    pub time: u32,
    /// Object id.
    pub id: u64,
    /// Size in bytes.
    pub size: u32,
    /// 1-based index of the next request for the object, `-1` for never.
    pub next_access_vtime: i64,
}

impl OracleRecord {
    fn decode(b: &[u8; 24]) -> OracleRecord {
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u64_at = |i: usize| {
            let mut x = [0u8; 8];
            x.copy_from_slice(&b[i..i + 8]);
            u64::from_le_bytes(x)
        };
        OracleRecord { time: u32_at(0), id: u64_at(4), size: u32_at(12), next_access_vtime: u64_at(16) as i64 }
    }

    fn encode(&self) -> [u8; 24] {
        let mut b = [0u8; 24];
        b[0..4].copy_from_slice(&self.time.to_le_bytes());
        b[4..12].copy_from_slice(&self.id.to_le_bytes());
        b[12..16].copy_from_slice(&self.size.to_le_bytes());
        b[16..24].copy_from_slice(&self.next_access_vtime.to_le_bytes());
        b
    }
}

/// Streaming reader of an oracleGeneral trace (plain or zstd).
pub struct OracleReader {
    path: PathBuf,
    reader: Box<dyn Read + Send>,
    index: u64,
    skipped_zero_size: u64,
    done: bool,
    /// Records in a plain file (from its length).
    plain_records: Option<u64>,
    /// Raw records of the current batch ([`EventSource::next_batch`]).
    buf: Vec<u8>,
}

impl std::fmt::Debug for OracleReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OracleReader").field("path", &self.path).field("index", &self.index).finish_non_exhaustive()
    }
}

impl OracleReader {
    /// Opens the file; `zstd` says whether the records are zstd-compressed.
    ///
    /// # Errors
    /// The file cannot be opened, or the zstd stream cannot start.
    pub fn open(path: &Path, zstd: bool) -> Result<OracleReader> {
        let file = File::open(path).map_err(|e| Error::io("open", path, e))?;
        let len = file.metadata().map_err(|e| Error::io("stat", path, e))?.len();
        let plain_records = (!zstd).then_some(len / RECORD_BYTES);
        let reader: Box<dyn Read + Send> = if zstd {
            let decoder = zstd::Decoder::with_buffer(BufReader::with_capacity(READ_BUFFER_BYTES, file))
                .map_err(|e| Error::trace(path, Location::Header, None, format!("not a zstd stream: {e}")))?;
            Box::new(BufReader::with_capacity(READ_BUFFER_BYTES, decoder))
        } else {
            Box::new(BufReader::with_capacity(PLAIN_BUFFER_BYTES, file))
        };
        Ok(OracleReader {
            path: path.to_owned(),
            reader,
            index: 0,
            skipped_zero_size: 0,
            done: false,
            plain_records,
            buf: Vec::new(),
        })
    }

    /// The next record as stored (size-0 records included).
    ///
    /// # Errors
    /// A read fails, or the input ends inside a record.
    pub fn next_record(&mut self) -> Option<Result<OracleRecord>> {
        if self.done {
            return None;
        }
        let mut buf = [0u8; 24];
        let result = match read_up_to(&mut self.reader, &mut buf) {
            Ok(0) => {
                self.done = true;
                return None;
            }
            Ok(24) => Ok(OracleRecord::decode(&buf)),
            Ok(n) => Err(Error::trace(
                &self.path,
                Location::Record(self.index),
                None,
                format!("truncated: the input ends {n} bytes into this 24-byte record"),
            )),
            Err(e) => Err(Error::trace(&self.path, Location::Record(self.index), None, format!("read failed: {e}"))),
        };
        self.index += 1;
        if result.is_err() {
            self.done = true;
        }
        Some(result)
    }
}

impl Iterator for OracleReader {
    type Item = Result<TraceEvent>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match self.next_record()? {
                Ok(r) if r.size == 0 => self.skipped_zero_size += 1,
                Ok(r) => {
                    return Some(Ok(TraceEvent::Request(RequestRecord {
                        time: u64::from(r.time),
                        key: r.id,
                        size: u64::from(r.size),
                        access: Access::Read,
                    })));
                }
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

impl EventSource for OracleReader {
    fn skipped_zero_size(&self) -> u64 {
        self.skipped_zero_size
    }

    fn len_hint(&self) -> Option<u64> {
        self.plain_records
    }

    /// Reads many records with one `read` and decodes them with slice
    /// operations: the per-record `Result`, enum and small copies of the
    /// iterator cost about as much as the rest of loading together.
    fn next_batch(&mut self, batch: &mut EventBatch, max: usize) -> Result<()> {
        batch.clear();
        let record = RECORD_BYTES as usize;
        // Size-0 records are skipped, so one read may not fill the batch.
        while batch.len() < max && !self.done {
            let want = (max - batch.len()).min(BATCH_RECORDS) * record;
            if self.buf.len() < want {
                self.buf.resize(want, 0);
            }
            let n = read_up_to(&mut self.reader, &mut self.buf[..want]).map_err(|e| {
                self.done = true;
                Error::trace(&self.path, Location::Record(self.index), None, format!("read failed: {e}"))
            })?;
            let whole = n / record;
            for r in self.buf[..whole * record].chunks_exact(record) {
                let size = u32::from_le_bytes(r[12..16].try_into().expect("4 bytes"));
                if size == 0 {
                    self.skipped_zero_size += 1;
                    continue;
                }
                batch.keys.push(u64::from_le_bytes(r[4..12].try_into().expect("8 bytes")));
                batch.sizes.push(u64::from(size));
                batch.access.push(Access::Read);
            }
            self.index += whole as u64;
            if n < want {
                self.done = true;
                if n > whole * record {
                    return Err(Error::trace(
                        &self.path,
                        Location::Record(self.index),
                        None,
                        format!("truncated: the input ends {} bytes into this 24-byte record", n - whole * record),
                    ));
                }
            }
        }
        Ok(())
    }
}

enum Sink {
    Plain(BufWriter<File>),
    Zstd(zstd::Encoder<'static, BufWriter<File>>),
}

/// Streaming writer of an oracleGeneral trace; the file appears only when
/// [`finish`](Self::finish) succeeds.
pub struct OracleWriter {
    file: AtomicFile,
    sink: Option<Sink>,
    records: u64,
}

impl std::fmt::Debug for OracleWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OracleWriter").field("path", &self.file.path()).field("records", &self.records).finish()
    }
}

impl OracleWriter {
    /// Creates the file; `zstd` compresses the records (level 3).
    ///
    /// # Errors
    /// The file cannot be created.
    pub fn create(path: &Path, zstd: bool) -> Result<OracleWriter> {
        let mut file = AtomicFile::create(path)?;
        let inner = file.take();
        let sink = if zstd {
            Sink::Zstd(zstd::Encoder::new(inner, 3).map_err(|e| file.write_error(e))?)
        } else {
            Sink::Plain(inner)
        };
        Ok(OracleWriter { file, sink: Some(sink), records: 0 })
    }

    /// Writes one record.
    ///
    /// # Errors
    /// A write fails.
    pub fn write(&mut self, r: &OracleRecord) -> Result<()> {
        let bytes = r.encode();
        let result = match self.sink.as_mut() {
            Some(Sink::Plain(w)) => w.write_all(&bytes),
            Some(Sink::Zstd(w)) => w.write_all(&bytes),
            None => Ok(()),
        };
        self.records += 1;
        result.map_err(|e| self.file.write_error(e))
    }

    /// Finishes the stream and moves the file into place; returns the
    /// records written.
    ///
    /// # Errors
    /// A write, fsync or rename fails.
    pub fn finish(mut self) -> Result<u64> {
        let inner = match self.sink.take() {
            Some(Sink::Plain(w)) => w,
            Some(Sink::Zstd(w)) => w.finish().map_err(|e| self.file.write_error(e))?,
            None => return Err(Error::config("oracle writer finished twice")),
        };
        self.file.put(inner);
        self.file.commit()?;
        Ok(self.records)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_layout_matches_libcachesim() {
        // Bytes written by libcachesim 0.3.5's convert_to_oracleGeneral for
        // the request (time 100, key u64::MAX, size 5, next vtime 3).
        let r = OracleRecord { time: 100, id: u64::MAX, size: 5, next_access_vtime: 3 };
        let b = r.encode();
        assert_eq!(&b[0..4], &[100, 0, 0, 0]);
        assert_eq!(&b[4..12], &[0xff; 8]);
        assert_eq!(&b[12..16], &[5, 0, 0, 0]);
        assert_eq!(&b[16..24], &[3, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(OracleRecord::decode(&b), r);
        let never = OracleRecord { next_access_vtime: -1, ..r };
        assert_eq!(OracleRecord::decode(&never.encode()).next_access_vtime, -1);
    }
}
