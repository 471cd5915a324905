//! Small I/O helpers shared by the readers and writers: bounded line
//! reading, magic numbers, and files that appear only when complete.

use std::fs::File;
use std::io::{self, BufRead, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, Result};

/// First bytes of a zstd frame.
pub(crate) const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
/// First bytes of a gzip member.
pub(crate) const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Buffer size of the readers: large enough that decompressors and line
/// splitting run in long strides.
pub(crate) const READ_BUFFER_BYTES: usize = 256 * 1024;

/// What [`read_line_capped`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum LineRead {
    /// End of input, nothing read.
    Eof,
    /// A line (without its `\n` and a trailing `\r`) is in the buffer.
    Line,
    /// The line is longer than the cap; the buffer holds its first bytes.
    TooLong,
}

/// Reads one line into `buf` (cleared first), never holding more than `max`
/// bytes: a file with no newline cannot make the reader allocate its size.
pub(crate) fn read_line_capped(reader: &mut impl BufRead, buf: &mut Vec<u8>, max: usize) -> io::Result<LineRead> {
    buf.clear();
    let mut any = false;
    loop {
        let chunk = match reader.fill_buf() {
            Ok(c) => c,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            return Ok(if any { LineRead::Line } else { LineRead::Eof });
        }
        any = true;
        let (take, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i, true),
            None => (chunk.len(), false),
        };
        if buf.len() + take > max {
            let room = max - buf.len();
            buf.extend_from_slice(&chunk[..room]);
            return Ok(LineRead::TooLong);
        }
        buf.extend_from_slice(&chunk[..take]);
        reader.consume(if done { take + 1 } else { take });
        if done {
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
            return Ok(LineRead::Line);
        }
    }
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
pub(crate) fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// A file written under a temporary name and renamed into place by
/// [`AtomicFile::commit`]: a reader never sees half a trace, and a failed
/// write leaves no file behind.
pub(crate) struct AtomicFile {
    path: PathBuf,
    tmp: PathBuf,
    file: Option<BufWriter<File>>,
}

impl AtomicFile {
    /// Creates `<path>.partial`.
    pub(crate) fn create(path: &Path) -> Result<AtomicFile> {
        let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
        name.push(".partial");
        let tmp = path.with_file_name(name);
        let file = File::create(&tmp).map_err(|e| Error::io("create", &tmp, e))?;
        Ok(AtomicFile { path: path.to_owned(), tmp, file: Some(BufWriter::with_capacity(READ_BUFFER_BYTES, file)) })
    }

    /// The final path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The writer.
    pub(crate) fn writer(&mut self) -> &mut BufWriter<File> {
        self.file.as_mut().expect("an AtomicFile is only used before commit")
    }

    /// Takes the buffered file out (for writers that wrap it, e.g. zstd).
    pub(crate) fn take(&mut self) -> BufWriter<File> {
        self.file.take().expect("an AtomicFile is only used before commit")
    }

    /// Puts the file back after [`take`](Self::take).
    pub(crate) fn put(&mut self, file: BufWriter<File>) {
        self.file = Some(file);
    }

    /// Flushes, syncs and renames the file into place.
    pub(crate) fn commit(mut self) -> Result<()> {
        let file = self.file.take().expect("an AtomicFile is only used before commit");
        let file = file.into_inner().map_err(|e| Error::io("write", &self.tmp, e.into_error()))?;
        file.sync_all().map_err(|e| Error::io("fsync", &self.tmp, e))?;
        drop(file);
        std::fs::rename(&self.tmp, &self.path).map_err(|e| Error::io("rename", &self.tmp, e))?;
        self.tmp = PathBuf::new();
        Ok(())
    }

    /// A write error on this file.
    pub(crate) fn write_error(&self, e: io::Error) -> Error {
        Error::io("write", &self.tmp, e)
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            self.file = None;
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Writes all of `bytes`, mapping the error to the file.
pub(crate) fn write_all(file: &mut AtomicFile, bytes: &[u8]) -> Result<()> {
    match file.writer().write_all(bytes) {
        Ok(()) => Ok(()),
        Err(e) => Err(file.write_error(e)),
    }
}

/// The blake3 hash of a whole file, hex-encoded.
pub(crate) fn blake3_file(path: &Path) -> Result<String> {
    let mut hasher = FileHasher::open(path)?;
    while !hasher.step()? {}
    Ok(hasher.finish())
}

/// Bytes [`FileHasher::step`] reads and hashes at a time: enough for
/// blake3's widest SIMD path and few system calls, little enough to stay in
/// L2 between the read and the hash.
const HASH_CHUNK_BYTES: usize = 512 * 1024;

/// The blake3 hash of a file, computed a chunk at a time, so that a thread
/// can interleave it with other work.
pub(crate) struct FileHasher {
    path: PathBuf,
    file: File,
    hasher: blake3::Hasher,
    buf: Vec<u8>,
    done: bool,
}

impl std::fmt::Debug for FileHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileHasher").field("path", &self.path).field("done", &self.done).finish_non_exhaustive()
    }
}

impl FileHasher {
    /// Opens the file.
    ///
    /// # Errors
    /// It cannot be opened.
    pub(crate) fn open(path: &Path) -> Result<FileHasher> {
        let file = File::open(path).map_err(|e| Error::io("open", path, e))?;
        Ok(FileHasher {
            path: path.to_owned(),
            file,
            hasher: blake3::Hasher::new(),
            buf: vec![0; HASH_CHUNK_BYTES],
            done: false,
        })
    }

    /// Hashes the next chunk; returns whether the whole file is hashed.
    ///
    /// # Errors
    /// A read fails.
    pub(crate) fn step(&mut self) -> Result<bool> {
        if !self.done {
            let n = read_up_to(&mut self.file, &mut self.buf).map_err(|e| Error::io("read", &self.path, e))?;
            self.hasher.update(&self.buf[..n]);
            self.done = n < self.buf.len();
        }
        Ok(self.done)
    }

    /// The hash of the whole file, hex (call once [`step`](Self::step) has
    /// returned `true`).
    pub(crate) fn finish(&self) -> String {
        self.hasher.finalize().to_hex().to_string()
    }
}

/// A [`FileHasher`] that several threads advance a chunk at a time whenever
/// they would otherwise wait (the streamed simulation's decoding thread
/// when the simulating one has all the batches it may hold, the simulating
/// thread when it has none), so the hashing fills idle time on whichever
/// side has it.
#[derive(Debug)]
pub(crate) struct SharedHasher {
    /// The hasher and its last step's result (`Ok(true)`: hashed).
    hasher: Mutex<(FileHasher, Result<bool>)>,
    /// Set once that result is no longer `Ok(false)`, so that idle threads
    /// stop asking without taking the lock.
    done: AtomicBool,
}

impl SharedHasher {
    pub(crate) fn new(hasher: FileHasher) -> SharedHasher {
        SharedHasher { hasher: Mutex::new((hasher, Ok(false))), done: AtomicBool::new(false) }
    }

    /// Hashes one chunk, unless the file is hashed (or failed) or another
    /// thread is hashing; returns whether it did.
    pub(crate) fn help(&self) -> bool {
        if self.done.load(Ordering::Relaxed) {
            return false;
        }
        let Ok(mut guard) = self.hasher.try_lock() else { return false };
        let (hasher, state) = &mut *guard;
        if matches!(state, Ok(false)) {
            *state = hasher.step();
        }
        if !matches!(state, Ok(false)) {
            self.done.store(true, Ordering::Relaxed);
        }
        true
    }

    /// Hashes the rest; the file's hash, hex, or the first read error.
    pub(crate) fn finish(self) -> Result<String> {
        let (mut hasher, mut state) = self.hasher.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
        while matches!(state, Ok(false)) {
            state = hasher.step();
        }
        state.map(|_| hasher.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// However the chunks are shared out (all by helpers, some, none), the
    /// hash is the whole file's, and a missing file fails at open.
    #[test]
    fn shared_hasher_hashes_the_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.bin");
        let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        let whole = blake3::hash(&bytes).to_hex().to_string();
        for helps in [0, 2, usize::MAX] {
            let shared = SharedHasher::new(FileHasher::open(&path).unwrap());
            std::thread::scope(|s| {
                let shared = &shared;
                let helpers: Vec<_> =
                    (0..2).map(|_| s.spawn(move || (0..helps).take_while(|_| shared.help()).count())).collect();
                for h in helpers {
                    h.join().unwrap();
                }
            });
            assert_eq!(shared.finish().unwrap(), whole, "{helps} helps per thread");
        }
        assert_eq!(blake3_file(&path).unwrap(), whole);
        assert!(FileHasher::open(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn capped_lines() {
        let mut r = io::BufReader::with_capacity(4, &b"ab\r\ncdefgh\n\nx"[..]);
        let mut buf = Vec::new();
        assert_eq!(read_line_capped(&mut r, &mut buf, 100).unwrap(), LineRead::Line);
        assert_eq!(buf, b"ab");
        assert_eq!(read_line_capped(&mut r, &mut buf, 100).unwrap(), LineRead::Line);
        assert_eq!(buf, b"cdefgh");
        assert_eq!(read_line_capped(&mut r, &mut buf, 100).unwrap(), LineRead::Line);
        assert_eq!(buf, b"");
        assert_eq!(read_line_capped(&mut r, &mut buf, 100).unwrap(), LineRead::Line);
        assert_eq!(buf, b"x");
        assert_eq!(read_line_capped(&mut r, &mut buf, 100).unwrap(), LineRead::Eof);
        let mut r = io::BufReader::with_capacity(4, &b"abcdefgh\n"[..]);
        assert_eq!(read_line_capped(&mut r, &mut buf, 5).unwrap(), LineRead::TooLong);
        assert_eq!(buf.len(), 5);
    }
}
