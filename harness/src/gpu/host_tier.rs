//! The bounded host tier (`--host-memory`) and the disk tier below it
//! (`--disk-tier`): where a buffer's bytes live when the device does not
//! hold them, and the real file I/O when host memory overflows.
//!
//! **An inclusive backing store.** Host memory plus disk hold the current
//! bytes of every buffer the replay has needed bytes for; device memory is a
//! cache over them. A buffer enters the host tier when an upload first needs
//! its bytes (its initial pattern is materialised: the application's data)
//! or when a readback brings new bytes; it stays there (or on disk) while it
//! is also on the device. That is what lets a clean device eviction drop the
//! device copy for free, exactly as `sim --gpu` counts it: the host tier only
//! changes where a miss's bytes come from, never the device's counts. An
//! exclusive host tier (bytes leave host memory when uploaded) would need a
//! readback for every clean eviction, which is a different GPU model.
//!
//! **Driven by core's [`TieredCache`].** Tiers `[disk, host]` (or `[host]`
//! without `--disk-tier`), promotion on access. The device level stays the
//! replay loop's plain `Cache<P, DenseIndex>`, monomorphised per policy and
//! driven exactly as the simulator drives it: that is the equality with
//! `sim --gpu`, and it would not survive the device being a boxed tier of a
//! `TieredCache` (another index, another request path). Below the device,
//! the `TieredCache` decides and reports every move with its dirty flag, and
//! this module executes it:
//!
//! | move | execution |
//! |---|---|
//! | `Insert` into host | the bytes stay in host memory ([`TieredCache::insert_into`], dirty: no disk copy yet) |
//! | `Insert` into disk | the buffer is larger than host memory: its bytes are written to disk |
//! | `Demote` host -> disk, dirty | a real file write of the bytes, then host memory is released |
//! | `Demote` host -> disk, clean | the file on disk is current: host memory is only released |
//! | `Promote` disk -> host | a real file read (checked, see below), the file is kept (clean copy) |
//! | `Drop` (no disk tier) | allowed only for a buffer the trace never uses again; else an error |
//! | `Remove` (a `free`) | host bytes and file deleted |
//!
//! **Host-tier policy: LRU, whatever the run's policy.** The host tier sees
//! the device's miss and readback stream, not the trace; with one fixed
//! policy there, differences in disk traffic between runs come from the
//! device policy alone, which is what a replay compares. The run's own
//! policy would also not always work there: Belady needs next accesses that
//! the host-level stream does not have.
//!
//! **Files.** One file per buffer, `<key>.buf` (a 24-byte header: magic,
//! key, length; then the padded bytes) in a directory per run under
//! `--disk-tier DIR`, created at the first write and removed when the run
//! ends. A file is written in place without `fsync`: the directory is
//! scratch space of one run, so a crash loses nothing a replay needs, and a
//! torn or foreign file is refused by the header check. Reads go through
//! the OS page cache: they are real `read` calls, not necessarily device
//! reads.
//!
//! **Integrity.** With verification on, the host tier keeps each buffer's
//! [`Lineage`]: its origin (the seeded pattern or zeros) and the kernel
//! writes applied since, as recorded by readbacks. Bytes read from disk are
//! checked against that CPU model the way readbacks are, and device
//! readbacks of a buffer uploaded from the host tier are checked against it
//! too (not against host memory, which may have moved to disk meanwhile).

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::Instant;

use cachescope_core::policy::{Access, PolicyKind, Request};
use cachescope_core::tiered::{MoveKind, PromotionRule, TierConfig, TierId, TierMove, TieredCache, TieredConfig};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::kernels::{Mode, WriteOp};
use super::residency::record;
use super::{GpuError, GpuResult};

/// First 8 bytes of every disk-tier file.
const FILE_MAGIC: &[u8; 8] = b"cscope\x01D";
/// Bytes of a file's header: magic, key, payload length.
const HEADER_BYTES: usize = 24;
/// `last_access` of a key that has had no access yet.
const NO_ACCESS: u64 = u64::MAX;

/// Where a buffer's content started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Origin {
    /// The deterministic pattern seeded by its trace id.
    #[default]
    Pattern,
    /// Zeros (a write-only allocation or a streamed write-only access).
    Zero,
}

/// The CPU model of a buffer's bytes: its origin with `ops` applied to the
/// touched words (every kernel touches the same sampled words of a buffer,
/// so a write-only kernel makes all earlier ones irrelevant: they are
/// dropped).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lineage {
    /// Content before the first write.
    pub origin: Origin,
    /// Kernel writes since, oldest first.
    pub ops: Vec<WriteOp>,
}

impl Lineage {
    /// Appends `ops`, dropping the ones a write-only kernel overwrote.
    pub fn then(&mut self, ops: &[WriteOp]) {
        match ops.iter().rposition(|op| op.mode == Mode::Write) {
            Some(last_write) => {
                self.ops.clear();
                self.ops.extend_from_slice(&ops[last_write..]);
            }
            None => self.ops.extend_from_slice(ops),
        }
    }
}

/// Counters of the host and disk tiers of one run, in the run's JSON next
/// to the device's (`disk_writes`, `disk_read_bytes`, ...). Bytes are trace
/// sizes, as uploads and readbacks count them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostTierCounters {
    /// Capacity of the host tier (`--host-memory`), bytes.
    pub host_memory_bytes: u64,
    /// Most bytes the host tier held at once.
    pub host_peak_bytes: u64,
    /// Whether a disk tier was configured.
    pub disk_tier: bool,
    /// Uploads whose bytes were already in host memory.
    pub host_hits: u64,
    /// Uploads whose bytes were created in host memory (first use).
    pub host_births: u64,
    /// Host -> disk: file writes.
    pub disk_writes: u64,
    /// Bytes written to disk.
    pub disk_write_bytes: u64,
    /// Disk -> host: file reads.
    pub disk_reads: u64,
    /// Bytes read from disk.
    pub disk_read_bytes: u64,
    /// Demotions to disk that wrote nothing: the file was current.
    pub disk_clean_demotions: u64,
    /// Most bytes the disk tier held at once.
    pub disk_peak_bytes: u64,
    /// Buffers dropped from host memory without a disk tier (never used
    /// again by the trace).
    pub host_drops: u64,
    /// Bytes of those.
    pub host_drop_bytes: u64,
    /// Disk reads checked against the CPU model.
    pub verified_disk_reads: u64,
}

/// What [`HostTier::load`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Load {
    /// The bytes are in host memory only for this upload (the buffer is
    /// larger than the host tier and lives on disk): release them after.
    pub transient: bool,
    /// They were read from disk (the caller checks them).
    pub from_disk: bool,
}

/// One run's host tier and, optionally, its disk tier.
pub struct HostTier<'t> {
    tiers: TieredCache,
    host: TierId,
    disk: Option<DiskDir>,
    /// Per trace event, its key's next access (`u64::MAX`: none before a
    /// free or the end): decides whether a buffer may leave without a disk.
    next_access: &'t [u64],
    /// Per key, the trace index of its latest access.
    last_access: Vec<u64>,
    /// Per key, whether its file on disk holds its current bytes.
    on_disk: Vec<bool>,
    /// Per key, the CPU model of its bytes (empty when not verifying).
    lineage: Vec<Lineage>,
    moves: Vec<TierMove>,
    /// What was done.
    pub counters: HostTierCounters,
    /// Per file write (create, write), nanoseconds.
    pub disk_write_hist: Histogram<u64>,
    /// Per file read (open, read, header check), nanoseconds.
    pub disk_read_hist: Histogram<u64>,
}

impl std::fmt::Debug for HostTier<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostTier").field("tiers", &self.tiers).field("counters", &self.counters).finish()
    }
}

impl<'t> HostTier<'t> {
    /// A host tier of `capacity_bytes` for `keys` dense buffer ids, with a
    /// disk tier in `disk_dir` (created at the first write) when given.
    /// `next_access` is the trace's column; `track_lineage` keeps the CPU
    /// model for verification.
    ///
    /// # Errors
    /// [`GpuError::Config`] for a zero capacity.
    pub fn new(
        capacity_bytes: u64,
        disk_dir: Option<PathBuf>,
        keys: usize,
        next_access: &'t [u64],
        track_lineage: bool,
    ) -> GpuResult<Self> {
        let tier = |name: &str, capacity_bytes, policy| TierConfig { name: name.into(), capacity_bytes, policy };
        let mut tiers = Vec::new();
        if disk_dir.is_some() {
            // Unbounded: the disk tier never evicts, so its policy never
            // decides anything.
            tiers.push(tier("disk", u64::MAX, PolicyKind::Fifo));
        }
        tiers.push(tier("host", capacity_bytes, PolicyKind::Lru));
        let host = tiers.len() - 1;
        let tiers = TieredCache::new(TieredConfig { tiers, promotion: PromotionRule::OnAccess })
            .map_err(|e| GpuError::Config(format!("--host-memory: {e}")))?;
        let histogram = || {
            Histogram::new_with_bounds(1, 3_600_000_000_000, 3).map_err(|e| GpuError::Config(format!("histogram: {e}")))
        };
        Ok(HostTier {
            tiers,
            host,
            disk: disk_dir.map(DiskDir::new),
            next_access,
            last_access: vec![NO_ACCESS; keys],
            on_disk: vec![false; keys],
            lineage: if track_lineage { vec![Lineage::default(); keys] } else { Vec::new() },
            moves: Vec::new(),
            counters: HostTierCounters {
                host_memory_bytes: capacity_bytes,
                disk_tier: host > 0,
                ..HostTierCounters::default()
            },
            disk_write_hist: histogram()?,
            disk_read_hist: histogram()?,
        })
    }

    /// Records that trace event `index` accesses `key`.
    #[inline]
    pub fn note_access(&mut self, key: u32, index: usize) {
        if let Some(slot) = self.last_access.get_mut(key as usize) {
            *slot = index as u64;
        }
    }

    /// The CPU model of `key`'s current bytes (`None` when not verifying).
    pub fn lineage(&self, key: u32) -> Option<&Lineage> {
        self.lineage.get(key as usize)
    }

    /// Records that `key`'s new bytes are its old ones (or zeros, with
    /// `from_zero`) with `ops` applied. Call before [`store`](Self::store).
    pub fn record_writes(&mut self, key: u32, from_zero: bool, ops: &[WriteOp]) {
        if let Some(l) = self.lineage.get_mut(key as usize) {
            if from_zero {
                *l = Lineage { origin: Origin::Zero, ops: Vec::new() };
            }
            l.then(ops);
        }
    }

    /// The tier the host bytes of `key` are in (`None`: nowhere yet).
    pub fn tier_name_of(&self, key: u32) -> Option<&str> {
        self.tiers.tier_of(u64::from(key)).map(|t| self.tiers.tier_name(t))
    }

    /// Makes `host[key]` hold the current bytes of `key` for an upload:
    /// already there, created by `born` (first use), or read from disk
    /// (demoting others to make room).
    ///
    /// # Errors
    /// Host memory too small without a disk tier; disk I/O errors.
    pub fn load(
        &mut self,
        key: u32,
        trace_bytes: u64,
        host: &mut [Option<Vec<u8>>],
        born: impl FnOnce() -> Vec<u8>,
    ) -> GpuResult<Load> {
        let k = u64::from(key);
        let Some(found) = self.tiers.tier_of(k) else {
            let bytes = born();
            let tier = self.insert(key, trace_bytes, host)?;
            self.counters.host_births += 1;
            let transient = tier != self.host;
            if transient {
                self.write_file(key, &bytes)?;
            }
            set(host, key, Some(bytes));
            self.note_peaks();
            return Ok(Load { transient, from_disk: false });
        };
        self.access(key, Access::Read, host, false)?;
        let now = self.tiers.tier_of(k);
        let load = if now == Some(self.host) {
            if found == self.host {
                self.counters.host_hits += 1;
            }
            Load { transient: false, from_disk: found != self.host }
        } else {
            // Larger than host memory: read for this upload only.
            let bytes = self.read_file(key, trace_bytes)?;
            set(host, key, Some(bytes));
            Load { transient: true, from_disk: true }
        };
        self.note_peaks();
        Ok(load)
    }

    /// Keeps `bytes` as the current bytes of `key` (a readback or a
    /// streamed write brought them): in host memory, demoting others, or on
    /// disk when larger than host memory. A stale file is deleted.
    ///
    /// # Errors
    /// Host memory too small without a disk tier; disk I/O errors.
    pub fn store(&mut self, key: u32, trace_bytes: u64, bytes: Vec<u8>, host: &mut [Option<Vec<u8>>]) -> GpuResult<()> {
        let k = u64::from(key);
        let tier = match self.tiers.tier_of(k) {
            None => self.insert(key, trace_bytes, host)?,
            Some(_) => {
                self.access(key, Access::Write, host, true)?;
                self.tiers.tier_of(k).unwrap_or(self.host)
            }
        };
        if tier == self.host {
            self.delete_file(key)?;
            set(host, key, Some(bytes));
        } else {
            self.write_file(key, &bytes)?;
            set(host, key, None);
        }
        self.note_peaks();
        Ok(())
    }

    /// Forgets `key` (a `free`): host bytes, file, model.
    ///
    /// # Errors
    /// Disk I/O errors.
    pub fn free(&mut self, key: u32, host: &mut [Option<Vec<u8>>]) -> GpuResult<()> {
        let k = u64::from(key);
        if self.tiers.tier_of(k).is_some() {
            let mut moves = std::mem::take(&mut self.moves);
            moves.clear();
            let removed = self.tiers.remove(k, &mut |m| moves.push(m));
            self.moves = moves;
            removed.map_err(|e| GpuError::Integrity(format!("host tier: {e}")))?;
            self.execute(host, None)?;
        }
        set(host, key, None);
        if let Some(l) = self.lineage.get_mut(key as usize) {
            *l = Lineage::default();
        }
        Ok(())
    }

    /// Inserts a buffer new to the tiers into host memory (or disk when it
    /// is larger), executing the demotions. Returns the tier.
    fn insert(&mut self, key: u32, trace_bytes: u64, host: &mut [Option<Vec<u8>>]) -> GpuResult<TierId> {
        let mut moves = std::mem::take(&mut self.moves);
        moves.clear();
        // Dirty: no disk copy exists yet, so a demotion must write it.
        let placed = self.tiers.insert_into(self.host, u64::from(key), trace_bytes, true, &mut |m| moves.push(m));
        self.moves = moves;
        let tier = placed.map_err(|e| match e {
            cachescope_core::Error::EntryTooLarge { .. } => GpuError::Config(format!(
                "buffer {key} ({trace_bytes} bytes) is larger than host memory ({} bytes, --host-memory) and there \
                 is no disk tier to hold it: pass --disk-tier DIR or raise --host-memory",
                self.counters.host_memory_bytes
            )),
            other => GpuError::Integrity(format!("host tier: {other}")),
        })?;
        self.execute(host, Some(key))?;
        Ok(tier)
    }

    /// An access of a buffer in the tiers (promotes from disk), executing
    /// the moves; `arriving`: the caller brings new bytes, so a promotion
    /// reads nothing.
    fn access(&mut self, key: u32, access: Access, host: &mut [Option<Vec<u8>>], arriving: bool) -> GpuResult<()> {
        let mut moves = std::mem::take(&mut self.moves);
        moves.clear();
        let done = self.tiers.access(u64::from(key), access, &mut |m| moves.push(m));
        self.moves = moves;
        done.map_err(|e| GpuError::Integrity(format!("host tier: {e}")))?;
        self.execute(host, arriving.then_some(key))
    }

    /// Executes the recorded moves in order (victims first, as reported).
    /// The arrival of `arriving` is the caller's.
    fn execute(&mut self, host: &mut [Option<Vec<u8>>], arriving: Option<u32>) -> GpuResult<()> {
        let moves = std::mem::take(&mut self.moves);
        let mut result = Ok(());
        for mv in &moves {
            result = self.execute_one(mv, host, arriving);
            if result.is_err() {
                break;
            }
        }
        self.moves = moves;
        result
    }

    fn execute_one(&mut self, mv: &TierMove, host: &mut [Option<Vec<u8>>], arriving: Option<u32>) -> GpuResult<()> {
        let key = mv.key as u32;
        match mv.kind {
            MoveKind::Insert => Ok(()),
            MoveKind::Demote => {
                let bytes = take(host, key).ok_or_else(|| {
                    GpuError::Integrity(format!("buffer {key} left host memory, which has no bytes for it"))
                })?;
                if mv.dirty || !self.on_disk(key) {
                    self.write_file(key, &bytes)
                } else {
                    self.counters.disk_clean_demotions += 1;
                    Ok(())
                }
            }
            MoveKind::Drop => {
                let last = self.last_access.get(key as usize).copied().unwrap_or(NO_ACCESS);
                let used_again =
                    last == NO_ACCESS || self.next_access.get(last as usize).is_none_or(|&next| next != Request::NEVER);
                if used_again {
                    return Err(GpuError::Config(format!(
                        "host memory is full (--host-memory {} bytes): buffer {key} ({} bytes) must leave it but \
                         the trace uses it again; pass --disk-tier DIR to spill to disk, or raise --host-memory",
                        self.counters.host_memory_bytes, mv.size_bytes
                    )));
                }
                set(host, key, None);
                self.counters.host_drops += 1;
                self.counters.host_drop_bytes += mv.size_bytes;
                Ok(())
            }
            MoveKind::Promote => {
                if arriving == Some(key) {
                    return Ok(());
                }
                let bytes = self.read_file(key, mv.size_bytes)?;
                set(host, key, Some(bytes));
                Ok(())
            }
            MoveKind::Remove => {
                set(host, key, None);
                self.delete_file(key)
            }
        }
    }

    fn on_disk(&self, key: u32) -> bool {
        self.on_disk.get(key as usize).copied().unwrap_or(false)
    }

    fn disk(&mut self) -> GpuResult<&mut DiskDir> {
        self.disk.as_mut().ok_or_else(|| GpuError::Integrity("a disk-tier move without a disk tier".into()))
    }

    fn write_file(&mut self, key: u32, bytes: &[u8]) -> GpuResult<()> {
        let started = Instant::now();
        self.disk()?.write(key, bytes)?;
        record(&mut self.disk_write_hist, started.elapsed());
        if let Some(b) = self.on_disk.get_mut(key as usize) {
            *b = true;
        }
        self.counters.disk_writes += 1;
        self.counters.disk_write_bytes += self.tiers.peek(u64::from(key)).map_or(bytes.len() as u64, |(s, _)| s);
        Ok(())
    }

    fn read_file(&mut self, key: u32, trace_bytes: u64) -> GpuResult<Vec<u8>> {
        let started = Instant::now();
        let bytes = self.disk()?.read(key, trace_bytes.div_ceil(4) * 4)?;
        record(&mut self.disk_read_hist, started.elapsed());
        self.counters.disk_reads += 1;
        self.counters.disk_read_bytes += trace_bytes;
        Ok(bytes)
    }

    fn delete_file(&mut self, key: u32) -> GpuResult<()> {
        if !self.on_disk(key) {
            return Ok(());
        }
        if let Some(b) = self.on_disk.get_mut(key as usize) {
            *b = false;
        }
        self.disk()?.delete(key)
    }

    fn note_peaks(&mut self) {
        let c = &mut self.counters;
        c.host_peak_bytes = c.host_peak_bytes.max(self.tiers.resident_bytes(self.host));
        if self.host > 0 {
            c.disk_peak_bytes = c.disk_peak_bytes.max(self.tiers.resident_bytes(0));
        }
    }
}

fn set(host: &mut [Option<Vec<u8>>], key: u32, bytes: Option<Vec<u8>>) {
    if let Some(slot) = host.get_mut(key as usize) {
        *slot = bytes;
    }
}

fn take(host: &mut [Option<Vec<u8>>], key: u32) -> Option<Vec<u8>> {
    host.get_mut(key as usize).and_then(Option::take)
}

/// The files of one run's disk tier.
#[derive(Debug)]
pub struct DiskDir {
    dir: PathBuf,
    created: bool,
}

fn disk_error(action: &str, path: &Path, e: &dyn std::fmt::Display) -> GpuError {
    GpuError::DiskTier { action: action.into(), path: path.to_path_buf(), message: e.to_string() }
}

impl DiskDir {
    /// The disk tier in `dir` (created at the first write, removed on drop).
    pub fn new(dir: PathBuf) -> Self {
        DiskDir { dir, created: false }
    }

    fn path(&self, key: u32) -> PathBuf {
        self.dir.join(format!("{key}.buf"))
    }

    /// Writes `bytes` as the file of `key`, replacing any.
    ///
    /// # Errors
    /// [`GpuError::DiskTier`] naming the path.
    pub fn write(&mut self, key: u32, bytes: &[u8]) -> GpuResult<()> {
        if !self.created {
            // A directory left by a crashed run of the same process id is
            // scratch too.
            if self.dir.exists() {
                std::fs::remove_dir_all(&self.dir).map_err(|e| disk_error("clearing", &self.dir, &e))?;
            }
            std::fs::create_dir_all(&self.dir).map_err(|e| disk_error("creating directory", &self.dir, &e))?;
            self.created = true;
        }
        let path = self.path(key);
        let mut header = [0u8; HEADER_BYTES];
        header[..8].copy_from_slice(FILE_MAGIC);
        header[8..16].copy_from_slice(&u64::from(key).to_le_bytes());
        header[16..].copy_from_slice(&(bytes.len() as u64).to_le_bytes());
        let mut file = File::create(&path).map_err(|e| disk_error("creating", &path, &e))?;
        file.write_all(&header).and_then(|()| file.write_all(bytes)).map_err(|e| disk_error("writing", &path, &e))
    }

    /// Reads the file of `key`, which must hold `len` bytes.
    ///
    /// # Errors
    /// [`GpuError::DiskTier`] naming the path, for I/O errors and a file
    /// whose header or length is not the one written.
    pub fn read(&self, key: u32, len: u64) -> GpuResult<Vec<u8>> {
        let path = self.path(key);
        let mut file = File::open(&path).map_err(|e| disk_error("opening", &path, &e))?;
        let mut header = [0u8; HEADER_BYTES];
        file.read_exact(&mut header).map_err(|e| disk_error("reading the header of", &path, &e))?;
        let stored_key = u64::from_le_bytes(header[8..16].try_into().unwrap_or_default());
        let stored_len = u64::from_le_bytes(header[16..].try_into().unwrap_or_default());
        if &header[..8] != FILE_MAGIC || stored_key != u64::from(key) || stored_len != len {
            let what = format!("header says key {stored_key}, {stored_len} bytes; expected key {key}, {len} bytes");
            return Err(disk_error("checking", &path, &what));
        }
        let mut bytes = vec![0u8; len as usize];
        file.read_exact(&mut bytes).map_err(|e| disk_error("reading", &path, &e))?;
        let mut extra = [0u8; 1];
        if file.read(&mut extra).map_err(|e| disk_error("reading", &path, &e))? != 0 {
            return Err(disk_error("checking", &path, &"the file is longer than its header says"));
        }
        Ok(bytes)
    }

    /// Deletes the file of `key` (a missing file is fine).
    ///
    /// # Errors
    /// [`GpuError::DiskTier`] naming the path.
    pub fn delete(&self, key: u32) -> GpuResult<()> {
        let path = self.path(key);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(disk_error("deleting", &path, &e)),
            _ => Ok(()),
        }
    }
}

impl Drop for DiskDir {
    fn drop(&mut self) {
        if self.created {
            // Best effort: the directory is one run's scratch space.
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_round_trip_and_refuse_foreign_content() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("run");
        let mut disk = DiskDir::new(dir.clone());
        let bytes: Vec<u8> = (0..4096u32).flat_map(|w| w.wrapping_mul(2_654_435_761).to_le_bytes()).collect();
        disk.write(7, &bytes).expect("write");
        assert_eq!(disk.read(7, bytes.len() as u64).expect("read"), bytes);
        // Another key's file, a wrong length, a truncated file: refused.
        std::fs::copy(dir.join("7.buf"), dir.join("8.buf")).expect("copy");
        assert!(matches!(disk.read(8, bytes.len() as u64), Err(GpuError::DiskTier { .. })));
        assert!(disk.read(7, 4).is_err());
        let file = std::fs::OpenOptions::new().write(true).open(dir.join("7.buf")).expect("open");
        file.set_len(100).expect("truncate");
        let e = disk.read(7, bytes.len() as u64).expect_err("truncated");
        assert!(e.to_string().contains("7.buf"), "{e}");
        disk.delete(7).expect("delete");
        disk.delete(7).expect("deleting a missing file is fine");
        drop(disk);
        assert!(!dir.exists(), "the run's directory is removed");
    }

    #[test]
    fn a_directory_that_cannot_be_created_is_named() {
        let root = tempfile::tempdir().expect("tempdir");
        let file = root.path().join("not-a-dir");
        std::fs::write(&file, b"x").expect("file");
        let mut disk = DiskDir::new(file.join("run"));
        let e = disk.write(1, &[0u8; 8]).expect_err("a file is in the way");
        assert!(e.to_string().contains("not-a-dir"), "{e}");
    }

    #[test]
    fn write_only_kernels_cut_the_lineage() {
        let op = |seq, mode| WriteOp { salt: 1, seq, mode };
        let mut l = Lineage::default();
        l.then(&[op(1, Mode::ReadWrite), op(2, Mode::ReadWrite)]);
        assert_eq!(l.ops.len(), 2);
        l.then(&[op(3, Mode::ReadWrite), op(4, Mode::Write), op(5, Mode::ReadWrite)]);
        assert_eq!(l.ops, vec![op(4, Mode::Write), op(5, Mode::ReadWrite)]);
        assert_eq!(l.origin, Origin::Pattern);
    }

    /// Without a disk tier, a buffer that is used again may not leave host
    /// memory; one that is not may.
    #[test]
    fn without_a_disk_only_dead_buffers_leave() {
        // Key 0 is accessed at events 0 and 2; key 1 at 1 only; key 2 at 3.
        let next_access = [2, Request::NEVER, Request::NEVER, Request::NEVER];
        let mut host: Vec<Option<Vec<u8>>> = vec![None; 3];
        let mut t = HostTier::new(8, None, 3, &next_access, false).expect("tier");
        t.note_access(0, 0);
        t.load(0, 4, &mut host, || vec![0; 4]).expect("load 0");
        t.note_access(1, 1);
        t.load(1, 4, &mut host, || vec![1; 4]).expect("load 1");
        t.note_access(0, 2);
        t.load(0, 4, &mut host, || unreachable!()).expect("hit 0");
        // LRU victim is key 1, never used again: dropped.
        t.note_access(2, 3);
        t.load(2, 4, &mut host, || vec![2; 4]).expect("load 2 drops 1");
        assert_eq!((t.counters.host_drops, host[1].is_none()), (1, true));
        // Now key 0 is the victim, and event 2 has no next access either:
        // fine; but a fresh tier where the victim is live refuses.
        let next_access = [1, 2, Request::NEVER];
        let mut host: Vec<Option<Vec<u8>>> = vec![None; 2];
        let mut t = HostTier::new(4, None, 2, &next_access, false).expect("tier");
        t.note_access(0, 0);
        t.load(0, 4, &mut host, || vec![0; 4]).expect("load 0");
        t.note_access(1, 1);
        let e = t.load(1, 4, &mut host, || vec![1; 4]).expect_err("key 0 is used again");
        assert!(e.to_string().contains("--disk-tier"), "{e}");
    }

    /// With a disk tier: a dirty demotion writes, a clean one does not, a
    /// promotion reads the same bytes back.
    #[test]
    fn disk_moves_write_once_and_read_back() {
        let root = tempfile::tempdir().expect("tempdir");
        let next_access = [Request::NEVER; 8];
        let mut host: Vec<Option<Vec<u8>>> = vec![None; 2];
        let mut t = HostTier::new(8, Some(root.path().join("run")), 2, &next_access, false).expect("tier");
        t.load(0, 8, &mut host, || vec![7; 8]).expect("born 0");
        t.load(1, 8, &mut host, || vec![9; 8]).expect("born 1 demotes 0");
        assert_eq!((t.counters.disk_writes, host[0].is_none()), (1, true));
        let l = t.load(0, 8, &mut host, || unreachable!()).expect("0 back from disk");
        assert!(l.from_disk && !l.transient);
        assert_eq!(host[0].as_deref(), Some(&[7u8; 8][..]));
        assert_eq!(t.counters.disk_writes, 2, "1 was dirty: written");
        // 0 is clean now (its file is current): demoting it writes nothing.
        t.load(1, 8, &mut host, || unreachable!()).expect("1 back");
        assert_eq!((t.counters.disk_writes, t.counters.disk_clean_demotions), (2, 1));
        // New bytes for 0 while on disk: no read, the stale file goes.
        t.store(0, 8, vec![5; 8], &mut host).expect("store 0");
        assert_eq!(t.counters.disk_reads, 2);
        t.load(1, 8, &mut host, || unreachable!()).expect("1 again");
        let l = t.load(0, 8, &mut host, || unreachable!()).expect("0 again");
        assert!(l.from_disk);
        assert_eq!(host[0].as_deref(), Some(&[5u8; 8][..]));
        // Larger than host memory: lives on disk, loaded transiently.
        let mut host2: Vec<Option<Vec<u8>>> = vec![None; 3];
        let mut t2 = HostTier::new(8, Some(root.path().join("run2")), 3, &next_access, false).expect("tier");
        let l = t2.load(2, 16, &mut host2, || vec![3; 16]).expect("large");
        assert!(l.transient && !l.from_disk);
        assert_eq!(t2.tier_name_of(2), Some("disk"));
        let l = t2.load(2, 16, &mut host2, || unreachable!()).expect("large again");
        assert!(l.transient && l.from_disk);
        assert_eq!(host2[2].as_deref(), Some(&[3u8; 16][..]));
    }
}
