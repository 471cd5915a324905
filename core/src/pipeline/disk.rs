//! The persistent, checksummed disk pipeline store: see [`DiskPipelineStore`].

use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::key::{PipelineCacheKey, PipelineFeatureFlags, PipelineKeyDigest};
use super::stats::{PipelineCacheStats, PipelineCounters};
use super::store::{EvictionListener, PipelineCacheStore, PipelineEviction, PutOutcome, RejectReason};
use crate::stats::EvictionReason;
use crate::{Error, Result};

/// First bytes of every blob. The high first byte and the trailing newline
/// catch files mangled by text-mode transfers, as in PNG.
pub const BLOB_MAGIC: [u8; 8] = *b"\x89CSPIPE\n";

/// Version of the blob layout. Files of another version read as corrupt (and
/// are replaced on the next put), so a layout change never misreads old files.
pub const BLOB_FORMAT_VERSION: u32 = 1;

/// Size of the blob header in bytes.
pub const BLOB_HEADER_LEN: usize = 88;
const CHECKED_PREFIX_LEN: usize = 56;

const BLOB_EXTENSION: &str = "bin";
const TEMP_SUFFIX: &str = ".tmp";

/// Distinguishes temp files of concurrent writers within one process (the
/// process id distinguishes processes).
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Settings of a [`DiskPipelineStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskStoreConfig {
    /// Largest payload stored or read, in bytes; larger puts are rejected
    /// and larger files are refused unread. 0 disables the store.
    pub max_blob_bytes: u64,
    /// fsync each file and its directory before `put` returns, instead of
    /// batching them for [`flush`](PipelineCacheStore::flush).
    pub sync_every_put: bool,
    /// Temp files at least this old are taken for leftovers of crashed
    /// writers and removed when a store is opened.
    pub stale_temp_secs: u64,
}

impl DiskStoreConfig {
    /// `max_blob_bytes` of [`Default`] (the seeds': 64 MiB).
    pub const DEFAULT_MAX_BLOB_BYTES: u64 = 64 << 20;
    /// `stale_temp_secs` of [`Default`]: far longer than any single write.
    pub const DEFAULT_STALE_TEMP_SECS: u64 = 600;

    /// Whether a zero `max_blob_bytes` switches the store off.
    pub fn is_disabled(&self) -> bool {
        self.max_blob_bytes == 0
    }

    /// Largest file the store reads: payload limit plus header.
    fn max_file_bytes(&self) -> u64 {
        self.max_blob_bytes + BLOB_HEADER_LEN as u64
    }

    fn validate(&self) -> Result<()> {
        let fits = self
            .max_blob_bytes
            .checked_add(BLOB_HEADER_LEN as u64 + 1)
            .is_some_and(|n| usize::try_from(n).is_ok() && n <= isize::MAX as u64);
        if fits {
            Ok(())
        } else {
            Err(Error::config(format!(
                "pipeline disk store: max_blob_bytes {} does not fit in memory on this platform",
                self.max_blob_bytes
            )))
        }
    }
}

impl Default for DiskStoreConfig {
    fn default() -> Self {
        DiskStoreConfig {
            max_blob_bytes: Self::DEFAULT_MAX_BLOB_BYTES,
            sync_every_put: false,
            stale_temp_secs: Self::DEFAULT_STALE_TEMP_SECS,
        }
    }
}

/// The default root: `$XDG_CACHE_HOME/cachescope/pipelines`, else
/// `$HOME/.cache/cachescope/pipelines`.
///
/// Following the XDG base-directory spec, an empty or relative
/// `XDG_CACHE_HOME` is ignored.
///
/// # Errors
/// [`Error::InvalidConfig`] when neither variable gives a usable directory.
pub fn default_root() -> Result<PathBuf> {
    default_root_from(std::env::var_os("XDG_CACHE_HOME"), std::env::var_os("HOME"))
}

/// [`default_root`] over given variable values, so it can be tested without
/// touching the process environment.
fn default_root_from(xdg_cache_home: Option<OsString>, home: Option<OsString>) -> Result<PathBuf> {
    let xdg = xdg_cache_home.map(PathBuf::from).filter(|p| p.is_absolute());
    let base = match xdg {
        Some(x) => x,
        None => match home.filter(|h| !h.is_empty()) {
            Some(h) => PathBuf::from(h).join(".cache"),
            None => {
                return Err(Error::config(
                    "pipeline disk store: no cache directory: neither XDG_CACHE_HOME (absolute) nor HOME is set; \
                     open the store with an explicit root",
                ));
            }
        },
    };
    Ok(base.join("cachescope").join("pipelines"))
}

/// A parsed blob header.
#[derive(Debug, Clone, Copy)]
struct BlobHeader {
    flags: PipelineFeatureFlags,
    digest: PipelineKeyDigest,
    payload_len: u64,
    checksum: [u8; 32],
}

impl BlobHeader {
    fn encode(digest: &PipelineKeyDigest, flags: PipelineFeatureFlags, payload: &[u8]) -> [u8; BLOB_HEADER_LEN] {
        let mut h = [0u8; BLOB_HEADER_LEN];
        h[0..8].copy_from_slice(&BLOB_MAGIC);
        h[8..12].copy_from_slice(&BLOB_FORMAT_VERSION.to_le_bytes());
        h[12..16].copy_from_slice(&flags.bits().to_le_bytes());
        h[16..48].copy_from_slice(digest.as_bytes());
        h[48..56].copy_from_slice(&(payload.len() as u64).to_le_bytes());
        let checksum = checksum(&h[..CHECKED_PREFIX_LEN], payload);
        h[56..88].copy_from_slice(&checksum);
        h
    }

    /// Parses the fixed fields; the reason is for `Error::Corrupt`-style
    /// reports.
    fn parse(bytes: &[u8]) -> std::result::Result<Self, String> {
        let Some(h) = bytes.get(..BLOB_HEADER_LEN) else {
            return Err(format!("truncated header ({} of {BLOB_HEADER_LEN} bytes)", bytes.len()));
        };
        if h[0..8] != BLOB_MAGIC {
            return Err("bad magic".into());
        }
        let version = u32::from_le_bytes(le(&h[8..12]));
        if version != BLOB_FORMAT_VERSION {
            return Err(format!("format version {version}, expected {BLOB_FORMAT_VERSION}"));
        }
        let mut digest = [0u8; 32];
        digest.copy_from_slice(&h[16..48]);
        let mut checksum = [0u8; 32];
        checksum.copy_from_slice(&h[56..88]);
        Ok(BlobHeader {
            flags: PipelineFeatureFlags::from_bits(u32::from_le_bytes(le(&h[12..16]))),
            digest: PipelineKeyDigest(digest),
            payload_len: u64::from_le_bytes(le(&h[48..56])),
            checksum,
        })
    }
}

fn le<const N: usize>(b: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(b);
    out
}

fn checksum(prefix: &[u8], payload: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(prefix);
    h.update(payload);
    *h.finalize().as_bytes()
}

/// Checks a whole file's bytes against the key digest it should hold and
/// returns the payload.
fn verify<'a>(bytes: &'a [u8], expected: &PipelineKeyDigest) -> std::result::Result<&'a [u8], String> {
    let header = BlobHeader::parse(bytes)?;
    if header.digest != *expected {
        return Err(format!("holds key {}, expected {expected}", header.digest));
    }
    let payload = &bytes[BLOB_HEADER_LEN..];
    if header.payload_len != payload.len() as u64 {
        return Err(format!("header says {} payload bytes, file has {}", header.payload_len, payload.len()));
    }
    if checksum(&bytes[..CHECKED_PREFIX_LEN], payload) != header.checksum {
        return Err("checksum mismatch".into());
    }
    Ok(payload)
}

/// Files and directories whose durability `flush` still owes.
#[derive(Debug, Default)]
struct PendingSync {
    files: Vec<PathBuf>,
    /// Directories whose entries changed other than by a pending file
    /// (a new shard directory in the root, a removal).
    dirs: Vec<PathBuf>,
}

/// The persistent pipeline store: compiled pipelines kept across runs, one
/// checksummed file per key.
///
/// Follows `vyre-driver`'s `DiskPipelineCache` and `vyre-runtime`'s
/// `DiskCache`: files named by the key digest in hex, sharded into
/// subdirectories by its first two hex digits; install by writing a uniquely
/// named temp file in the same directory and renaming it over the final name
/// (readers see the old file or the new one, never half of one); durability
/// batched in [`flush`](PipelineCacheStore::flush), which fsyncs each pending
/// file and each parent directory once, because an fsync per put makes
/// populating a cache as slow as the disk; a strict
/// [`sync_every_put`](DiskStoreConfig::sync_every_put) mode for callers who
/// want each put durable on return.
///
/// Beyond the seeds, every blob carries a header that makes a bad file a
/// miss rather than data (the driver seed returned raw file bytes):
///
/// ```text
/// offset size
///      0    8  magic  89 'C' 'S' 'P' 'I' 'P' 'E' 0a
///      8    4  format version (u32 LE)        BLOB_FORMAT_VERSION
///     12    4  feature flags of the key (u32 LE): the impact bits
///     16   32  key digest
///     48    8  payload length (u64 LE)
///     56   32  blake3 of bytes 0..56 followed by the payload
///     88    -  payload
/// ```
///
/// The checksum covers the header fields too, so a flipped bit in the flags
/// or the length is caught like one in the payload. A file that is torn,
/// truncated, altered, of another format version, or holds another key's
/// digest reads as a miss, is removed, and is counted in
/// [`PipelineCacheStats::corrupt`]; it is never returned.
///
/// Reads are bounded: a file larger than `max_blob_bytes` plus the header is
/// refused from its metadata before it is opened, and the read itself stops
/// one byte past the limit, so neither a huge file nor a lying length field
/// can make the store allocate more than the limit.
///
/// ## Sharing and cost
///
/// Several stores, threads and processes may share one root: temp names
/// carry the process id and a process-wide counter, and installs are atomic
/// renames. Temp files left by crashed writers are removed when a store is
/// opened, once they are older than
/// [`stale_temp_secs`](DiskStoreConfig::stale_temp_secs) (a younger one may
/// belong to a live writer in another process). Get and put touch one file.
/// [`invalidate`](PipelineCacheStore::invalidate),
/// [`entries`](DiskPipelineStore::entries) and
/// [`total_bytes`](DiskPipelineStore::total_bytes) scan the whole directory
/// tree (invalidate reads each file's 88-byte header): they are rare
/// administrative operations, not request-path ones. For that reason the
/// residency fields of [`stats`](PipelineCacheStore::stats) are `None` here.
pub struct DiskPipelineStore {
    root: PathBuf,
    config: DiskStoreConfig,
    pending: Mutex<PendingSync>,
    counters: PipelineCounters,
    listener: Option<EvictionListener>,
    stale_temps_removed: u64,
}

impl fmt::Debug for DiskPipelineStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiskPipelineStore")
            .field("root", &self.root)
            .field("config", &self.config)
            .field("pending_flushes", &self.pending_flushes())
            .field("listener", &self.listener.is_some())
            .finish()
    }
}

impl DiskPipelineStore {
    /// Opens (creating it if needed) the store rooted at `root`, and removes
    /// stale temp files of crashed writers.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for an unusable `max_blob_bytes`;
    /// [`Error::Io`] when the root cannot be created or scanned.
    pub fn open(root: impl Into<PathBuf>, config: DiskStoreConfig) -> Result<Self> {
        config.validate()?;
        let root = root.into();
        fs::create_dir_all(&root).map_err(|e| Error::io("create directory", &root, e))?;
        let mut store = DiskPipelineStore {
            root,
            config,
            pending: Mutex::default(),
            counters: PipelineCounters::default(),
            listener: None,
            stale_temps_removed: 0,
        };
        store.stale_temps_removed = store.remove_stale_temps()?;
        Ok(store)
    }

    /// Opens the store at [`default_root`].
    ///
    /// # Errors
    /// As [`default_root`] and [`open`](Self::open).
    pub fn open_default(config: DiskStoreConfig) -> Result<Self> {
        Self::open(default_root()?, config)
    }

    /// Calls `listener` with every eviction report (removals, invalidations,
    /// corrupt files).
    #[must_use]
    pub fn with_listener(mut self, listener: impl Fn(&PipelineEviction) + Send + Sync + 'static) -> Self {
        self.listener = Some(Arc::new(listener));
        self
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The settings this store was opened with.
    pub fn config(&self) -> &DiskStoreConfig {
        &self.config
    }

    /// Temp files of crashed writers removed when this store was opened.
    pub fn stale_temps_removed(&self) -> u64 {
        self.stale_temps_removed
    }

    /// The file that holds (or would hold) `key`:
    /// `<root>/<first 2 hex>/<64 hex>.bin`.
    pub fn path_for(&self, key: &PipelineCacheKey) -> PathBuf {
        self.path_for_digest(&key.digest())
    }

    fn path_for_digest(&self, digest: &PipelineKeyDigest) -> PathBuf {
        let hex = digest.to_hex();
        self.root.join(&hex[..2]).join(format!("{hex}.{BLOB_EXTENSION}"))
    }

    /// Installed files not yet made durable by [`flush`](PipelineCacheStore::flush).
    pub fn pending_flushes(&self) -> usize {
        self.lock_pending().files.len()
    }

    fn lock_pending(&self) -> MutexGuard<'_, PendingSync> {
        // Unlike a shard, the pending list cannot be left inconsistent: it is
        // only pushed to and swapped out whole. After a panic the worst case
        // is a path synced twice, so recovering is safe and loses nothing.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn report(&self, ev: &PipelineEviction) {
        self.counters.evicted(ev);
        if let Some(listener) = &self.listener {
            listener(ev);
        }
    }

    /// Number of blob files (scans the directory tree).
    ///
    /// # Errors
    /// [`Error::Io`] when a directory cannot be read.
    pub fn entries(&self) -> Result<u64> {
        let mut n = 0;
        self.for_each_blob(|_, _| {
            n += 1;
            Ok(())
        })?;
        Ok(n)
    }

    /// Bytes of all blob files, headers included (scans the directory tree).
    ///
    /// # Errors
    /// [`Error::Io`] when a directory cannot be read.
    pub fn total_bytes(&self) -> Result<u64> {
        let mut n = 0;
        self.for_each_blob(|_, meta| {
            n += meta.len();
            Ok(())
        })?;
        Ok(n)
    }

    /// Calls `f` with every shard directory of the root.
    fn for_each_shard_dir(&self, mut f: impl FnMut(&Path) -> Result<()>) -> Result<()> {
        for entry in read_dir(&self.root)? {
            let entry = entry.map_err(|e| Error::io("read directory", &self.root, e))?;
            let name = entry.file_name();
            let is_shard = name.to_str().is_some_and(|n| n.len() == 2 && n.bytes().all(|c| c.is_ascii_hexdigit()));
            if is_shard && entry.file_type().is_ok_and(|t| t.is_dir()) {
                f(&entry.path())?;
            }
        }
        Ok(())
    }

    /// Calls `f` with every regular file named like a blob.
    fn for_each_blob(&self, mut f: impl FnMut(&Path, &Metadata) -> Result<()>) -> Result<()> {
        self.for_each_shard_dir(|dir| {
            for entry in read_dir(dir)? {
                let entry = entry.map_err(|e| Error::io("read directory", dir, e))?;
                let path = entry.path();
                let is_blob = path.extension().is_some_and(|e| e == BLOB_EXTENSION)
                    && path.file_stem().and_then(|s| s.to_str()).and_then(PipelineKeyDigest::from_hex).is_some();
                if !is_blob {
                    continue;
                }
                match fs::symlink_metadata(&path) {
                    Ok(meta) if meta.is_file() => f(&path, &meta)?,
                    Ok(_) => {}
                    // Removed by another writer since the listing.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io("stat", &path, e)),
                }
            }
            Ok(())
        })
    }

    fn remove_stale_temps(&self) -> Result<u64> {
        let stale_after = Duration::from_secs(self.config.stale_temp_secs);
        let now = SystemTime::now();
        let mut removed = 0;
        self.for_each_shard_dir(|dir| {
            for entry in read_dir(dir)? {
                let entry = entry.map_err(|e| Error::io("read directory", dir, e))?;
                let name = entry.file_name();
                let is_temp = name.to_str().is_some_and(|n| n.starts_with('.') && n.ends_with(TEMP_SUFFIX));
                if !is_temp {
                    continue;
                }
                let path = entry.path();
                let Ok(meta) = fs::symlink_metadata(&path) else { continue };
                // A modification time in the future (clock skew) is "fresh":
                // never remove what might be a live writer's file.
                let old =
                    meta.modified().ok().and_then(|m| now.duration_since(m).ok()).is_some_and(|a| a >= stale_after);
                if old && meta.is_file() && remove_if_present(&path, "remove stale temp file")? {
                    removed += 1;
                }
            }
            Ok(())
        })?;
        Ok(removed)
    }

    /// Removes a file that failed verification and reports it.
    fn discard_corrupt(&self, path: &Path, meta: &Metadata) -> Result<()> {
        remove_if_present(path, "remove corrupt blob")?;
        if let Some(dir) = path.parent() {
            self.lock_pending().dirs.push(dir.to_path_buf());
        }
        let mut ev = PipelineEviction::none(EvictionReason::Corrupt);
        ev.add(meta.len(), file_age(meta));
        self.report(&ev);
        Ok(())
    }

    /// Removes the blob at `path` if present, reporting it with `reason`.
    fn remove_blob(&self, path: &Path, reason: EvictionReason) -> Result<Option<PipelineEviction>> {
        let meta = match fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("stat", path, e)),
        };
        if !remove_if_present(path, "remove blob")? {
            return Ok(None);
        }
        if let Some(dir) = path.parent() {
            self.lock_pending().dirs.push(dir.to_path_buf());
        }
        let mut ev = PipelineEviction::none(reason);
        ev.add(meta.len(), file_age(&meta));
        self.report(&ev);
        Ok(Some(ev))
    }

    /// Reads and verifies the blob at `path`; `Ok(None)` on any kind of miss.
    fn read_verified(&self, path: &Path, digest: &PipelineKeyDigest) -> Result<Option<Arc<[u8]>>> {
        let meta = match fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("stat", path, e)),
        };
        if !meta.is_file() {
            // A symlink or directory where a blob should be: nothing this
            // store wrote. Following a symlink could read any file.
            self.discard_corrupt(path, &meta)?;
            return Ok(None);
        }
        let limit = self.config.max_file_bytes();
        if meta.len() > limit {
            self.counters.oversized_read();
            return Ok(None);
        }
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("open", path, e)),
        };
        // `meta.len() <= limit`, which `validate` keeps addressable; the
        // `take` stops a file that grew since the stat at one byte past it.
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        file.take(limit + 1).read_to_end(&mut bytes).map_err(|e| Error::io("read", path, e))?;
        if bytes.len() as u64 > limit {
            self.counters.oversized_read();
            return Ok(None);
        }
        match verify(&bytes, digest) {
            Ok(payload) => Ok(Some(Arc::from(payload))),
            Err(_reason) => {
                self.discard_corrupt(path, &meta)?;
                Ok(None)
            }
        }
    }

    /// Writes `bytes` to a fresh temp file next to `path` and renames it into
    /// place; the temp file never outlives a failure.
    fn install(
        &self,
        path: &Path,
        digest: &PipelineKeyDigest,
        flags: PipelineFeatureFlags,
        bytes: &[u8],
    ) -> Result<()> {
        let dir = path.parent().unwrap_or(&self.root);
        let new_dir = match fs::create_dir(dir) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // The root itself vanished (someone cleared the cache).
                fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, e))?;
                true
            }
            Err(e) => return Err(Error::io("create directory", dir, e)),
        };
        let temp = dir.join(format!(
            ".{}.{}.{}{TEMP_SUFFIX}",
            digest.to_hex(),
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let header = BlobHeader::encode(digest, flags, bytes);
        let written = (|| {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&temp)
                .map_err(|e| Error::io("create temp file", &temp, e))?;
            f.write_all(&header).and_then(|()| f.write_all(bytes)).map_err(|e| Error::io("write", &temp, e))?;
            if self.config.sync_every_put {
                f.sync_all().map_err(|e| Error::io("fsync", &temp, e))?;
            }
            drop(f);
            fs::rename(&temp, path).map_err(|e| Error::io("rename", &temp, e))
        })();
        if let Err(err) = written {
            // Best effort: the error that matters is the one above.
            let _ = fs::remove_file(&temp);
            return Err(err);
        }
        if self.config.sync_every_put {
            sync_dir(dir)?;
            if new_dir {
                sync_dir(&self.root)?;
            }
        } else {
            let mut pending = self.lock_pending();
            pending.files.push(path.to_path_buf());
            if new_dir {
                pending.dirs.push(self.root.clone());
            }
        }
        Ok(())
    }

    fn reject(&self, path: &Path, reason: RejectReason) -> Result<PutOutcome> {
        self.counters.rejected_put();
        let removed = self.remove_blob(path, EvictionReason::Removed)?;
        Ok(PutOutcome::Rejected { reason, removed })
    }
}

impl PipelineCacheStore for DiskPipelineStore {
    fn get(&self, key: &PipelineCacheKey) -> Result<Option<Arc<[u8]>>> {
        if self.config.is_disabled() {
            self.counters.lookup(false);
            return Ok(None);
        }
        let digest = key.digest();
        let found = self.read_verified(&self.path_for_digest(&digest), &digest)?;
        self.counters.lookup(found.is_some());
        Ok(found)
    }

    fn put(&self, key: &PipelineCacheKey, bytes: Arc<[u8]>) -> Result<PutOutcome> {
        let digest = key.digest();
        let path = self.path_for_digest(&digest);
        if self.config.is_disabled() {
            return self.reject(&path, RejectReason::Disabled);
        }
        let size = bytes.len() as u64;
        if size > self.config.max_blob_bytes {
            let limit_bytes = self.config.max_blob_bytes;
            return self.reject(&path, RejectReason::TooLarge { size_bytes: size, limit_bytes });
        }
        if let Err(err) = self.install(&path, &digest, key.feature_flags, &bytes) {
            // A put that could not be written (a full disk, an I/O error)
            // drops the older entry too, as a rejected put does: the caller
            // has moved on from it. Best effort: the write error is the one
            // to report.
            let _ = self.remove_blob(&path, EvictionReason::Removed);
            return Err(err);
        }
        self.counters.put();
        Ok(PutOutcome::Stored { evicted: None })
    }

    fn remove(&self, key: &PipelineCacheKey) -> Result<Option<PipelineEviction>> {
        self.remove_blob(&self.path_for(key), EvictionReason::Removed)
    }

    /// Scans every blob's header (see the module docs). A file whose header
    /// does not parse is removed as corrupt on the way.
    fn invalidate(&self, mask: PipelineFeatureFlags) -> Result<PipelineEviction> {
        let mut total = PipelineEviction::none(EvictionReason::Invalidated);
        if mask.is_empty() {
            return Ok(total);
        }
        let mut changed_dirs = Vec::new();
        let mut corrupt = Vec::new();
        self.for_each_blob(|path, meta| {
            let mut header = [0u8; BLOB_HEADER_LEN];
            let read = File::open(path).and_then(|mut f| f.read_exact(&mut header));
            match read {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    corrupt.push((path.to_path_buf(), meta.clone()));
                    return Ok(());
                }
                Err(e) => return Err(Error::io("read", path, e)),
            }
            match BlobHeader::parse(&header) {
                Ok(h) if h.flags.intersects(mask) => {
                    if remove_if_present(path, "remove invalidated blob")? {
                        total.add(meta.len(), file_age(meta));
                        changed_dirs.extend(path.parent().map(Path::to_path_buf));
                    }
                }
                Ok(_) => {}
                Err(_) => corrupt.push((path.to_path_buf(), meta.clone())),
            }
            Ok(())
        })?;
        self.lock_pending().dirs.extend(changed_dirs);
        if total.entries > 0 {
            self.report(&total);
        }
        for (path, meta) in corrupt {
            self.discard_corrupt(&path, &meta)?;
        }
        Ok(total)
    }

    /// fsyncs every file installed since the last flush and every directory
    /// whose entries changed, each once. On failure what was not synced stays
    /// pending, so a retry does the rest.
    fn flush(&self) -> Result<()> {
        let PendingSync { mut files, dirs } = std::mem::take(&mut *self.lock_pending());
        files.sort();
        files.dedup();
        let mut dir_list: Vec<PathBuf> = files.iter().filter_map(|p| p.parent().map(Path::to_path_buf)).collect();
        dir_list.extend(dirs);
        dir_list.sort();
        dir_list.dedup();

        let result = (|| {
            for (i, file) in files.iter().enumerate() {
                if let Err(e) = sync_file(file) {
                    return Err((i, e));
                }
            }
            for dir in &dir_list {
                sync_dir(dir).map_err(|e| (files.len(), e))?;
            }
            Ok(())
        })();
        match result {
            Ok(()) => {
                self.counters.flushed();
                Ok(())
            }
            Err((synced, err)) => {
                let mut pending = self.lock_pending();
                pending.files.extend(files.into_iter().skip(synced));
                pending.dirs.extend(dir_list);
                Err(err)
            }
        }
    }

    fn stats(&self) -> PipelineCacheStats {
        self.counters.snapshot(None, None)
    }
}

fn read_dir(dir: &Path) -> Result<fs::ReadDir> {
    fs::read_dir(dir).map_err(|e| Error::io("read directory", dir, e))
}

/// Removes `path`; `Ok(false)` when it was already gone (another writer or
/// reader got there first, which is fine for a cache).
fn remove_if_present(path: &Path, op: &'static str) -> Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io(op, path, e)),
    }
}

fn file_age(meta: &Metadata) -> Duration {
    meta.modified().ok().and_then(|m| SystemTime::now().duration_since(m).ok()).unwrap_or_default()
}

fn sync_file(path: &Path) -> Result<()> {
    match File::open(path) {
        Ok(f) => f.sync_all().map_err(|e| Error::io("fsync", path, e)),
        // Removed since it was installed (invalidated, replaced by a rename
        // of another writer's file, which that writer syncs): nothing owed.
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("open for fsync", path, e)),
    }
}

/// fsyncs a directory so the names in it (a rename, a removal) survive a
/// crash. Only Unix can open a directory for that; elsewhere it is a no-op.
fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        match File::open(dir) {
            Ok(f) => f.sync_all().map_err(|e| Error::io("fsync directory", dir, e)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("open directory for fsync", dir, e)),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> PipelineCacheKey {
        PipelineCacheKey::new([n; 32], [0; 32], 0, [64, 1, 1], PipelineFeatureFlags::F16, "test")
    }

    #[test]
    fn default_root_follows_xdg_then_home() {
        let os = |s: &str| Some(OsString::from(s));
        assert_eq!(default_root_from(os("/xdg"), os("/home/u")).unwrap(), Path::new("/xdg/cachescope/pipelines"));
        assert_eq!(default_root_from(None, os("/home/u")).unwrap(), Path::new("/home/u/.cache/cachescope/pipelines"));
        // Empty or relative XDG_CACHE_HOME is ignored, per the spec.
        for xdg in ["", "relative/dir"] {
            assert_eq!(
                default_root_from(os(xdg), os("/home/u")).unwrap(),
                Path::new("/home/u/.cache/cachescope/pipelines")
            );
        }
        let err = default_root_from(None, os("")).unwrap_err();
        assert!(matches!(err, Error::InvalidConfig { .. }));
        assert!(err.to_string().contains("XDG_CACHE_HOME"), "{err}");
        assert!(default_root_from(None, None).is_err());
    }

    #[test]
    fn header_roundtrip_and_each_field_is_checked() {
        let d = key(1).digest();
        let payload = b"compiled";
        let mut file = BlobHeader::encode(&d, PipelineFeatureFlags::F16, payload).to_vec();
        file.extend_from_slice(payload);
        assert_eq!(verify(&file, &d).unwrap(), payload);
        let h = BlobHeader::parse(&file).unwrap();
        assert_eq!((h.flags, h.payload_len), (PipelineFeatureFlags::F16, 8));
        // Any single flipped byte, header or payload, is caught.
        for i in 0..file.len() {
            let mut bad = file.clone();
            bad[i] ^= 0x40;
            assert!(verify(&bad, &d).is_err(), "flip at byte {i} went unnoticed");
        }
        assert!(verify(&file, &key(2).digest()).unwrap_err().contains("holds key"));
        assert!(verify(&file[..50], &d).unwrap_err().contains("truncated header"));
        assert!(verify(&file[..file.len() - 1], &d).unwrap_err().contains("payload bytes"));
    }

    #[test]
    fn config_is_validated() {
        let c = DiskStoreConfig { max_blob_bytes: u64::MAX, ..DiskStoreConfig::default() };
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(DiskPipelineStore::open(dir.path(), c), Err(Error::InvalidConfig { .. })));
    }

    #[test]
    fn disabled_store_misses_and_rejects() {
        let dir = tempfile::tempdir().unwrap();
        let c = DiskStoreConfig { max_blob_bytes: 0, ..DiskStoreConfig::default() };
        let s = DiskPipelineStore::open(dir.path(), c).unwrap();
        let out = s.put(&key(1), Arc::from(&b"x"[..])).unwrap();
        assert_eq!(out.rejection(), Some(RejectReason::Disabled));
        assert_eq!(s.get(&key(1)).unwrap(), None);
        assert_eq!(s.entries().unwrap(), 0);
        let st = s.stats();
        assert_eq!((st.lookups, st.misses, st.rejected_puts), (1, 1, 1));
    }

    #[test]
    fn flush_drains_pending_and_tolerates_removed_files() {
        let dir = tempfile::tempdir().unwrap();
        let s = DiskPipelineStore::open(dir.path(), DiskStoreConfig::default()).unwrap();
        s.put(&key(1), Arc::from(&b"a"[..])).unwrap();
        s.put(&key(2), Arc::from(&b"b"[..])).unwrap();
        s.put(&key(1), Arc::from(&b"c"[..])).unwrap();
        assert_eq!(s.pending_flushes(), 3);
        s.remove(&key(2)).unwrap().unwrap();
        s.flush().unwrap();
        assert_eq!(s.pending_flushes(), 0);
        assert_eq!(s.stats().flushes, 1);
        assert_eq!(s.get(&key(1)).unwrap().as_deref(), Some(&b"c"[..]));
    }

    #[test]
    fn strict_mode_leaves_nothing_pending() {
        let dir = tempfile::tempdir().unwrap();
        let c = DiskStoreConfig { sync_every_put: true, ..DiskStoreConfig::default() };
        let s = DiskPipelineStore::open(dir.path(), c).unwrap();
        assert!(s.put(&key(1), Arc::from(&b"a"[..])).unwrap().is_stored());
        assert_eq!(s.pending_flushes(), 0);
        assert_eq!(s.get(&key(1)).unwrap().as_deref(), Some(&b"a"[..]));
    }

    #[test]
    fn symlink_or_directory_at_blob_path_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let s = DiskPipelineStore::open(dir.path(), DiskStoreConfig::default()).unwrap();
        let path = s.path_for(&key(1));
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        #[cfg(unix)]
        {
            let target = dir.path().join("elsewhere");
            fs::write(&target, b"secret").unwrap();
            std::os::unix::fs::symlink(&target, &path).unwrap();
            assert_eq!(s.get(&key(1)).unwrap(), None);
            assert!(fs::symlink_metadata(&path).is_err(), "symlink removed");
            assert_eq!(fs::read(&target).unwrap(), b"secret", "target untouched");
            assert_eq!(s.stats().corrupt, 1);
        }
        fs::create_dir(&path).unwrap();
        let err = s.get(&key(1)).unwrap_err();
        assert!(err.to_string().contains(&path.display().to_string()), "error names the path: {err}");
    }
}
