//! CSV request traces: a `time,key,size` header, then one request per line.
//!
//! All three fields are unsigned integers (`key` is a full u64: values of
//! 2^63 and above occur). An optional fourth column `access` holds `r`, `w`
//! or `rw` (absent: read); libCacheSim's CSV reader ignores it. A request of
//! size 0 is skipped and counted (`semantics.md` section 1). Blank lines are
//! ignored. Any other deviation is an error naming the line and field.

use std::fs::File;
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};

use cachescope_core::policy::Access;

use super::io::{AtomicFile, LineRead, READ_BUFFER_BYTES, read_line_capped};
use super::{EventSource, RequestRecord, TraceEvent, access_name, parse_access};
use crate::error::{Error, Location, Result};

/// Longest line accepted: far more than four integers need, small enough
/// that a file without newlines cannot exhaust memory.
const MAX_LINE_BYTES: usize = 4096;

const FIELDS: [&str; 4] = ["time", "key", "size", "access"];

/// Whether `line` is a CSV header this reader accepts (`time,key,size`
/// with an optional `,access`, any case, spaces allowed).
pub fn is_header(line: &str) -> bool {
    header_columns(line).is_some()
}

fn header_columns(line: &str) -> Option<usize> {
    let cols: Vec<String> = line.split(',').map(|c| c.trim().to_ascii_lowercase()).collect();
    match cols.len() {
        3 | 4 if cols.iter().zip(FIELDS).all(|(c, f)| c == f) => Some(cols.len()),
        _ => None,
    }
}

/// Streaming reader of a CSV request trace.
#[derive(Debug)]
pub struct CsvReader {
    path: PathBuf,
    reader: BufReader<File>,
    line: Vec<u8>,
    line_no: u64,
    columns: usize,
    skipped_zero_size: u64,
    done: bool,
}

impl CsvReader {
    /// Opens the file and checks its header.
    ///
    /// # Errors
    /// The file cannot be opened, or its first line is not a header.
    pub fn open(path: &Path) -> Result<CsvReader> {
        let file = File::open(path).map_err(|e| Error::io("open", path, e))?;
        let mut reader = BufReader::with_capacity(READ_BUFFER_BYTES, file);
        let mut line = Vec::with_capacity(256);
        let read = read_line_capped(&mut reader, &mut line, MAX_LINE_BYTES)
            .map_err(|e| Error::trace(path, Location::Line(1), None, format!("read failed: {e}")))?;
        let text = String::from_utf8_lossy(&line);
        let columns = match read {
            LineRead::Line => header_columns(text.trim_start_matches('\u{feff}')),
            LineRead::Eof | LineRead::TooLong => None,
        }
        .ok_or_else(|| {
            Error::trace(
                path,
                Location::Line(1),
                None,
                format!("expected the header `time,key,size` (optionally `,access`), found `{}`", shorten(&text)),
            )
        })?;
        Ok(CsvReader { path: path.to_owned(), reader, line, line_no: 1, columns, skipped_zero_size: 0, done: false })
    }

    fn error(&self, field: Option<&str>, message: impl Into<String>) -> Error {
        Error::trace(&self.path, Location::Line(self.line_no), field, message)
    }

    fn parse_line(&self) -> Result<Option<RequestRecord>> {
        let mut values = [0u64; 3];
        let mut access = Access::Read;
        let mut count = 0;
        for (i, raw) in self.line.split(|&b| b == b',').enumerate() {
            count = i + 1;
            if i >= self.columns {
                continue;
            }
            let text = trim(raw);
            if i == 3 {
                let s = std::str::from_utf8(text).unwrap_or("");
                access = parse_access(s).ok_or_else(|| {
                    self.error(Some("access"), format!("`{}` is not one of r, w, rw", String::from_utf8_lossy(text)))
                })?;
            } else {
                values[i] = parse_u64(text).map_err(|why| {
                    self.error(Some(FIELDS[i]), format!("`{}` {why}", shorten(&String::from_utf8_lossy(text))))
                })?;
            }
        }
        if count < self.columns {
            return Err(
                self.error(Some(FIELDS[count]), format!("missing (the line has {count} of {} fields)", self.columns))
            );
        }
        if count > self.columns {
            return Err(self.error(None, format!("{count} fields, the header names {}", self.columns)));
        }
        let [time, key, size] = values;
        Ok((size != 0).then_some(RequestRecord { time, key, size, access }))
    }
}

impl Iterator for CsvReader {
    type Item = Result<TraceEvent>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            self.line_no += 1;
            let read = read_line_capped(&mut self.reader, &mut self.line, MAX_LINE_BYTES);
            let result = match read {
                Ok(LineRead::Eof) => {
                    self.done = true;
                    return None;
                }
                Ok(LineRead::TooLong) => Err(self.error(None, format!("line longer than {MAX_LINE_BYTES} bytes"))),
                Err(e) => Err(self.error(None, format!("read failed: {e}"))),
                Ok(LineRead::Line) if trim(&self.line).is_empty() => continue,
                Ok(LineRead::Line) => self.parse_line(),
            };
            match result {
                Ok(Some(r)) => return Some(Ok(TraceEvent::Request(r))),
                Ok(None) => self.skipped_zero_size += 1,
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        None
    }
}

impl EventSource for CsvReader {
    fn skipped_zero_size(&self) -> u64 {
        self.skipped_zero_size
    }
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t' | b'\r', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t' | b'\r'] = s {
        s = rest;
    }
    s
}

/// Parses a decimal u64; the error completes "`text` ...".
pub(crate) fn parse_u64(s: &[u8]) -> Result<u64, &'static str> {
    if s.is_empty() {
        return Err("is empty, expected an unsigned integer");
    }
    let mut v: u64 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return Err("is not an unsigned integer");
        }
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(b - b'0')))
            .ok_or("does not fit in an unsigned 64-bit integer")?;
    }
    Ok(v)
}

fn shorten(s: &str) -> String {
    const MAX: usize = 60;
    if s.chars().count() <= MAX { s.to_owned() } else { format!("{}...", s.chars().take(MAX).collect::<String>()) }
}

/// Streaming writer of a CSV request trace; the file appears only when
/// [`finish`](Self::finish) succeeds.
pub struct CsvWriter {
    file: AtomicFile,
    with_access: bool,
    records: u64,
    line: String,
}

impl std::fmt::Debug for CsvWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CsvWriter").field("path", &self.file.path()).field("records", &self.records).finish()
    }
}

impl CsvWriter {
    /// Creates the file and writes the header; `with_access` adds the
    /// `access` column.
    ///
    /// # Errors
    /// The file cannot be created.
    pub fn create(path: &Path, with_access: bool) -> Result<CsvWriter> {
        let mut file = AtomicFile::create(path)?;
        let header: &[u8] = if with_access { b"time,key,size,access\n" } else { b"time,key,size\n" };
        super::io::write_all(&mut file, header)?;
        Ok(CsvWriter { file, with_access, records: 0, line: String::with_capacity(64) })
    }

    /// Writes one request.
    ///
    /// # Errors
    /// A write fails.
    pub fn write(&mut self, r: &RequestRecord) -> Result<()> {
        use std::fmt::Write as _;
        self.line.clear();
        let _ = write!(self.line, "{},{},{}", r.time, r.key, r.size);
        if self.with_access {
            let _ = write!(self.line, ",{}", access_name(r.access));
        }
        self.line.push('\n');
        let line = std::mem::take(&mut self.line);
        let result = self.file.writer().write_all(line.as_bytes()).map_err(|e| self.file.write_error(e));
        self.line = line;
        self.records += 1;
        result
    }

    /// Flushes and moves the file into place; returns the records written.
    ///
    /// # Errors
    /// A write, fsync or rename fails.
    pub fn finish(self) -> Result<u64> {
        self.file.commit()?;
        Ok(self.records)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(parse_u64(b"18446744073709551615"), Ok(u64::MAX));
        assert!(parse_u64(b"18446744073709551616").is_err());
        assert!(parse_u64(b"-3").is_err());
        assert!(parse_u64(b"").is_err());
        assert!(parse_u64(b"1.5").is_err());
        assert_eq!(trim(b" 12\r"), b"12");
    }

    #[test]
    fn headers() {
        assert!(is_header("time,key,size"));
        assert!(is_header(" Time , KEY,size ,access"));
        assert!(!is_header("key,time,size"));
        assert!(!is_header("1,2,3"));
    }
}
