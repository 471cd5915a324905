//! The two tiers and the real copies between them.
//!
//! * **Device tier**: real wgpu buffers. A resident trace buffer is one or
//!   more device buffers ("chunks", each at most the storage-binding limit)
//!   with a bind group each. Which buffers are resident is decided by the
//!   caller's core `Cache` (the replay loop); this module only executes.
//! * **Host tier**: the bytes of every buffer, in host memory. A buffer's
//!   host bytes start as a deterministic pattern seeded by its trace id
//!   (never materialised: uploads read windows of one shared pattern) and
//!   become a `Vec<u8>` the first time a readback brings back written bytes.
//!   With `--host-memory` the host tier is bounded instead, with a disk
//!   tier below it ([`HostTier`], `host_tier.rs`): bytes are materialised
//!   when they enter host memory, and an upload may first read them from
//!   disk.
//!
//! Kernels are recorded into a pending batch and issued in one compute pass
//! per submission (parameters in a uniform ring with dynamic offsets). A
//! batch is flushed when full, and before any readback (the readback's
//! copies follow the kernels in the same command buffer, so they see their
//! writes). Uploads use `queue.write_buffer` on freshly created buffers,
//! which the queue orders before the next submission.
//!
//! **Integrity.** Every buffer that is resident keeps the list of kernel
//! writes applied since it was uploaded. A readback is checked (when
//! `verify` is on) against the CPU model: the bytes it was uploaded with
//! (or zeros for a write-only allocation) with those writes applied by
//! [`kernels::apply`](super::kernels::apply); a mismatch is an error naming
//! the buffer and word. So a buffer demoted and later re-uploaded must come
//! back with exactly the bytes it had. With a bounded host tier the model's
//! starting bytes are the buffer's [`Lineage`](super::host_tier::Lineage)
//! (pattern or zeros plus every write read back so far) rather than host
//! memory, which may have moved to disk; bytes read from disk are checked
//! against the same model.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rustc_hash::FxHashMap;

use super::host_tier::{HostTier, Origin};
use super::kernels::{KernelSet, Mode, PARAMS_BYTES, Params, WriteOp, apply, fmix, sample};
use super::{GpuDevice, GpuError, GpuResult};

/// Bytes of the shared host pattern (a power of two, multiple of 4).
const PATTERN_BYTES: usize = 1 << 22;
/// Staging memory used by one round of readbacks (at least one chunk).
const STAGING_ROUND_BYTES: u64 = 256 << 20;
/// Staging buffers kept for reuse, in bytes.
const STAGING_POOL_BYTES: u64 = 512 << 20;
/// Compute passes whose timestamps are collected before they are read.
const TIMESTAMP_PASSES: u32 = 256;

/// How the engine works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineConfig {
    /// Largest chunk in bytes (multiple of 4; at most the storage-binding
    /// and buffer-size limits).
    pub max_chunk: u64,
    /// Words touched per chunk per kernel (0: every word).
    pub touch_cap: u32,
    /// Kernels per submission.
    pub batch: usize,
    /// Check every readback against the CPU model.
    pub verify: bool,
}

/// Counters of the real work done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineCounters {
    /// Uploads (misses that were not write-only, including streamed ones).
    pub uploads: u64,
    /// Bytes uploaded (trace sizes, as the simulator counts them).
    pub upload_bytes: u64,
    /// Readbacks (dirty evictions and streamed writes).
    pub readbacks: u64,
    /// Bytes read back (trace sizes).
    pub readback_bytes: u64,
    /// Accesses streamed because the cache would not hold the buffer.
    pub streamed: u64,
    /// Compute dispatches issued (one per chunk per binding).
    pub kernels: u64,
    /// Queue submissions.
    pub submits: u64,
    /// Readbacks checked against the CPU model.
    pub verified: u64,
    /// Bytes checked.
    pub verified_bytes: u64,
    /// GPU time of the compute passes, in nanoseconds (timestamp queries).
    pub gpu_ns: u64,
}

/// Latency histograms, in nanoseconds.
#[derive(Debug, Clone)]
pub struct Histograms {
    /// Per trace dispatch: residency work, kernel recording, and any waits.
    pub dispatch: Histogram<u64>,
    /// Per upload: the `write_buffer` calls (host copy into staging).
    pub upload: Histogram<u64>,
    /// Per readback: copy, submit, map and wait, copy into host memory.
    pub readback: Histogram<u64>,
    /// Per compile: `create_compute_pipeline`.
    pub compile: Histogram<u64>,
}

impl Histograms {
    fn new() -> GpuResult<Histograms> {
        // 1 ns to 1 hour at 3 significant digits; longer samples saturate.
        let h = || {
            Histogram::new_with_bounds(1, 3_600_000_000_000, 3).map_err(|e| GpuError::Config(format!("histogram: {e}")))
        };
        Ok(Histograms { dispatch: h()?, upload: h()?, readback: h()?, compile: h()? })
    }
}

/// Records a duration (saturating; a histogram refuses nothing we give it).
pub fn record(h: &mut Histogram<u64>, d: Duration) {
    h.saturating_record(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1));
}

struct Chunk {
    buffer: wgpu::Buffer,
    bind_group: wgpu::BindGroup,
    /// Byte offset in the whole (padded) buffer.
    offset: u64,
    bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Base {
    /// Uploaded from the host bytes.
    Host,
    /// Allocated without upload (zero-initialised).
    Zero,
}

/// What the CPU model starts from before applying writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    /// The buffer's current host bytes (no bounded host tier).
    HostBytes,
    /// The shared pattern at the buffer's seed.
    Pattern,
    /// Zeros.
    Zero,
}

struct DevBuf {
    chunks: Vec<Chunk>,
    base: Base,
    ops: Vec<WriteOp>,
}

struct PendingKernel {
    pipeline: wgpu::ComputePipeline,
    bind_group: wgpu::BindGroup,
    groups: (u32, u32),
}

struct Timestamps {
    set: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    staging: wgpu::Buffer,
    used: u32,
    period_ns: f64,
}

/// A readback to perform: which buffer, its trace size, its device state.
struct Pending {
    key: u32,
    trace_bytes: u64,
    buf: DevBuf,
    /// Whether this counts as a readback (false for end-of-run checks).
    counted: bool,
}

/// Executes residency decisions with real device work.
pub struct Engine<'a> {
    gpu: &'a GpuDevice,
    kernels: &'a KernelSet,
    cfg: EngineConfig,
    align: u64,
    params_buf: wgpu::Buffer,
    params: Vec<u8>,
    sink: wgpu::Buffer,
    pending: Vec<PendingKernel>,
    timestamps: Option<Timestamps>,
    resident: Vec<Option<DevBuf>>,
    host: Vec<Option<Vec<u8>>>,
    seeds: Vec<u64>,
    pattern: Vec<u8>,
    zeros: Vec<u8>,
    scratch: Option<Chunk>,
    staging: FxHashMap<u64, Vec<wgpu::Buffer>>,
    staging_pooled: u64,
    /// The bounded host tier and its disk tier (`None`: host memory holds
    /// every buffer, as before `--host-memory`).
    host_tier: Option<HostTier<'a>>,
    /// Work done.
    pub counters: EngineCounters,
    /// Latencies.
    pub hist: Histograms,
}

fn padded(bytes: u64) -> u64 {
    bytes.div_ceil(4) * 4
}

/// `len` bytes of the shared `pattern` (doubled, see [`Engine::new`])
/// starting at `start`, wrapping: a buffer's initial bytes, materialised.
fn pattern_bytes(pattern: &[u8], start: usize, len: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len as usize);
    let mut done = 0usize;
    while (done as u64) < len {
        let at = (start + done % PATTERN_BYTES) % PATTERN_BYTES;
        let n = (len as usize - done).min(PATTERN_BYTES);
        out.extend_from_slice(&pattern[at..at + n]);
        done += n;
    }
    out
}

impl<'a> Engine<'a> {
    /// An engine for a trace whose dense buffer ids `0..seeds.len()` have
    /// the trace ids `seeds` (which seed their host bytes).
    ///
    /// # Errors
    /// [`GpuError::Config`] for an unusable configuration.
    pub fn new(gpu: &'a GpuDevice, kernels: &'a KernelSet, cfg: EngineConfig, seeds: Vec<u64>) -> GpuResult<Self> {
        if cfg.max_chunk < 4 || !cfg.max_chunk.is_multiple_of(4) {
            return Err(GpuError::Config(format!("chunk size {} must be a positive multiple of 4", cfg.max_chunk)));
        }
        if cfg.batch == 0 {
            return Err(GpuError::Config("the batch must hold at least one kernel".into()));
        }
        let align = u64::from(gpu.limits.min_uniform_buffer_offset_alignment).max(PARAMS_BYTES);
        let params_buf = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("cachescope params ring"),
            size: align * cfg.batch as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let sink = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("cachescope sink"),
            size: 256,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
        let timestamps = gpu.features.contains(wgpu::Features::TIMESTAMP_QUERY).then(|| {
            let count = 2 * TIMESTAMP_PASSES;
            Timestamps {
                set: gpu.device.create_query_set(&wgpu::QuerySetDescriptor {
                    label: Some("cachescope pass timestamps"),
                    ty: wgpu::QueryType::Timestamp,
                    count,
                }),
                resolve: gpu.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("cachescope timestamp resolve"),
                    size: u64::from(count) * 8,
                    usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                    mapped_at_creation: false,
                }),
                staging: gpu.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("cachescope timestamp staging"),
                    size: u64::from(count) * 8,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                }),
                used: 0,
                period_ns: f64::from(gpu.queue.get_timestamp_period()),
            }
        });
        let mut pattern = Vec::with_capacity(2 * PATTERN_BYTES);
        let mut x = 0x243f_6a88u32;
        for w in 0..(PATTERN_BYTES / 4) as u32 {
            x = fmix(x ^ w);
            pattern.extend_from_slice(&x.to_le_bytes());
        }
        pattern.extend_from_within(..PATTERN_BYTES);
        let n = seeds.len();
        Ok(Engine {
            gpu,
            kernels,
            cfg,
            align,
            params_buf,
            params: vec![0u8; (align * cfg.batch as u64) as usize],
            sink,
            pending: Vec::with_capacity(cfg.batch),
            timestamps,
            resident: (0..n).map(|_| None).collect(),
            host: (0..n).map(|_| None).collect(),
            seeds,
            pattern,
            zeros: vec![0u8; 1 << 20],
            scratch: None,
            staging: FxHashMap::default(),
            staging_pooled: 0,
            host_tier: None,
            counters: EngineCounters::default(),
            hist: Histograms::new()?,
        })
    }

    fn check(&self, during: impl FnOnce() -> String) -> GpuResult<()> {
        self.gpu.errors.check(during)
    }

    /// Bounds host memory: from now on the bytes of buffers live in `tier`.
    /// Call before the first access.
    pub fn set_host_tier(&mut self, tier: HostTier<'a>) {
        self.host_tier = Some(tier);
    }

    /// The bounded host tier, if any.
    pub fn host_tier(&self) -> Option<&HostTier<'a>> {
        self.host_tier.as_ref()
    }

    /// Records that trace event `index` accesses `key` (the host tier asks
    /// whether a buffer is used again before it lets it go without a disk).
    #[inline]
    pub fn note_access(&mut self, key: u32, index: usize) {
        if let Some(t) = self.host_tier.as_mut() {
            t.note_access(key, index);
        }
    }

    /// With a bounded host tier, makes the host bytes of `key` present for
    /// an upload (reading them from disk if they are there, and checking
    /// them). Returns whether they are there for this upload only.
    fn load_host(&mut self, key: u32, trace_bytes: u64) -> GpuResult<bool> {
        let Some(mut tier) = self.host_tier.take() else { return Ok(false) };
        let start = self.pattern_start(key);
        let pattern = &self.pattern;
        let loaded = tier.load(key, trace_bytes, &mut self.host, || pattern_bytes(pattern, start, padded(trace_bytes)));
        self.host_tier = Some(tier);
        let loaded = loaded?;
        if loaded.from_disk && self.cfg.verify && self.lineage_of(key).is_some() {
            self.verify_from_disk(key, trace_bytes)?;
        }
        Ok(loaded.transient)
    }

    /// Checks the bytes of `key` just read from disk against its lineage.
    fn verify_from_disk(&mut self, key: u32, trace_bytes: u64) -> GpuResult<()> {
        let Some(Some(bytes)) = self.host.get(key as usize) else {
            return Err(GpuError::Integrity(format!("buffer {key} was read from disk but host memory lacks it")));
        };
        let (start, earlier) = self.model(key, Base::Host);
        for (off, n) in self.layout(trace_bytes) {
            let d = bytes.get(off as usize..(off + n) as usize).ok_or_else(|| {
                GpuError::Integrity(format!("buffer {key}: {} bytes read from disk, expected {}", bytes.len(), off + n))
            })?;
            self.verify_chunk(key, start, earlier, &[], off, d).map_err(|e| match e {
                GpuError::Integrity(m) => GpuError::Integrity(format!("{m} (bytes read from the disk tier)")),
                other => other,
            })?;
        }
        if let Some(t) = self.host_tier.as_mut() {
            t.counters.verified_disk_reads += 1;
        }
        Ok(())
    }

    /// Keeps `bytes`, just read back for `key`, as its host bytes: in the
    /// bounded host tier (recording the writes in its lineage) or, without
    /// one, in host memory as before. End-of-run checks (`counted` false)
    /// do not enter the bounded tier: the run is over.
    fn keep_bytes(
        &mut self,
        key: u32,
        trace_bytes: u64,
        bytes: Vec<u8>,
        counted: bool,
        from_zero: bool,
        ops: &[WriteOp],
    ) -> GpuResult<()> {
        let Some(mut tier) = self.host_tier.take() else {
            if let Some(slot) = self.host.get_mut(key as usize) {
                *slot = Some(bytes);
            }
            return Ok(());
        };
        let kept = if counted {
            tier.record_writes(key, from_zero, ops);
            tier.store(key, trace_bytes, bytes, &mut self.host)
        } else {
            Ok(())
        };
        self.host_tier = Some(tier);
        kept
    }

    fn lineage_of(&self, key: u32) -> Option<&super::host_tier::Lineage> {
        self.host_tier.as_ref().and_then(|t| t.lineage(key))
    }

    /// Where the model of a device buffer with `base` starts, and the writes
    /// already in it: the lineage with a bounded host tier (host memory may
    /// no longer hold what was uploaded), the host bytes without.
    fn model(&self, key: u32, base: Base) -> (Start, &[WriteOp]) {
        match (base, self.lineage_of(key)) {
            (Base::Zero, _) => (Start::Zero, &[]),
            (Base::Host, None) => (Start::HostBytes, &[]),
            (Base::Host, Some(l)) => {
                let start = match l.origin {
                    Origin::Pattern => Start::Pattern,
                    Origin::Zero => Start::Zero,
                };
                (start, &l.ops)
            }
        }
    }

    fn pattern_start(&self, key: u32) -> usize {
        let seed = self.seeds.get(key as usize).copied().unwrap_or(u64::from(key));
        let h = fmix((seed as u32) ^ fmix((seed >> 32) as u32 ^ 0x5bd1_e995));
        (h as usize % (PATTERN_BYTES / 4)) * 4
    }

    /// Calls `f` with consecutive pieces of the host bytes of `key` in
    /// `[offset, offset + len)` (padded buffer coordinates).
    fn host_pieces(&self, key: u32, offset: u64, len: u64, mut f: impl FnMut(u64, &[u8]) -> bool) -> bool {
        if let Some(Some(v)) = self.host.get(key as usize) {
            let (a, b) = (offset as usize, (offset + len) as usize);
            return match v.get(a..b) {
                Some(s) => f(offset, s),
                None => false,
            };
        }
        self.pattern_pieces(key, offset, len, f)
    }

    /// As [`host_pieces`](Self::host_pieces), from the seeded pattern only.
    fn pattern_pieces(&self, key: u32, offset: u64, len: u64, mut f: impl FnMut(u64, &[u8]) -> bool) -> bool {
        let start = self.pattern_start(key);
        let mut done = 0u64;
        while done < len {
            let at = (start + ((offset + done) as usize % PATTERN_BYTES)) % PATTERN_BYTES;
            let n = (len - done).min((PATTERN_BYTES) as u64) as usize;
            if !f(offset + done, &self.pattern[at..at + n]) {
                return false;
            }
            done += n as u64;
        }
        true
    }

    fn start_word(&self, key: u32, start: Start, offset: u64) -> u32 {
        let mut w = 0u32;
        let read = |_: u64, s: &[u8]| {
            w = u32::from_le_bytes([s[0], s[1], s[2], s[3]]);
            true
        };
        match start {
            Start::HostBytes => self.host_pieces(key, offset, 4, read),
            Start::Pattern => self.pattern_pieces(key, offset, 4, read),
            Start::Zero => true,
        };
        w
    }

    fn new_chunk(&self, offset: u64, bytes: u64, label: &str) -> Chunk {
        let buffer = self.gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let bind_group = self.gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(label),
            layout: &self.kernels.bind_group_layout,
            entries: &[
                wgpu::BindGroupEntry { binding: 0, resource: buffer.as_entire_binding() },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer: &self.params_buf,
                        offset: 0,
                        size: wgpu::BufferSize::new(PARAMS_BYTES),
                    }),
                },
                wgpu::BindGroupEntry { binding: 2, resource: self.sink.as_entire_binding() },
            ],
        });
        Chunk { buffer, bind_group, offset, bytes }
    }

    /// Chunk layout of a buffer of `trace_bytes`: (offset, bytes) pairs.
    fn layout(&self, trace_bytes: u64) -> Vec<(u64, u64)> {
        let total = padded(trace_bytes);
        let mut out = Vec::with_capacity(total.div_ceil(self.cfg.max_chunk) as usize);
        let mut off = 0;
        while off < total {
            let n = (total - off).min(self.cfg.max_chunk);
            out.push((off, n));
            off += n;
        }
        out
    }

    /// Whether `key` is resident on the device.
    pub fn is_resident(&self, key: u32) -> bool {
        matches!(self.resident.get(key as usize), Some(Some(_)))
    }

    /// Makes `key` resident: allocates its chunks and, unless `upload` is
    /// false (a write-only miss), uploads its host bytes.
    ///
    /// # Errors
    /// [`GpuError::Integrity`] when it is already resident; device errors.
    pub fn make_resident(&mut self, key: u32, trace_bytes: u64, upload: bool) -> GpuResult<()> {
        if self.is_resident(key) {
            return Err(GpuError::Integrity(format!("buffer {key} is allocated twice on the device")));
        }
        let chunks: Vec<Chunk> =
            self.layout(trace_bytes).into_iter().map(|(off, n)| self.new_chunk(off, n, "cachescope buffer")).collect();
        if upload {
            // Disk reads are timed as such, not as part of the upload.
            let transient = self.load_host(key, trace_bytes)?;
            let started = Instant::now();
            for c in &chunks {
                self.write_host(key, c, &c.buffer);
            }
            record(&mut self.hist.upload, started.elapsed());
            if transient && let Some(slot) = self.host.get_mut(key as usize) {
                *slot = None;
            }
            self.counters.uploads += 1;
            self.counters.upload_bytes += trace_bytes;
        }
        let base = if upload { Base::Host } else { Base::Zero };
        if let Some(slot) = self.resident.get_mut(key as usize) {
            *slot = Some(DevBuf { chunks, base, ops: Vec::new() });
        }
        self.check(|| format!("allocating {trace_bytes} bytes for buffer {key}"))
    }

    fn write_host(&self, key: u32, chunk: &Chunk, dst: &wgpu::Buffer) {
        let queue = &self.gpu.queue;
        self.host_pieces(key, chunk.offset, chunk.bytes, |at, piece| {
            queue.write_buffer(dst, at - chunk.offset, piece);
            true
        });
    }

    fn push_kernel(&mut self, pipeline: &wgpu::ComputePipeline, chunk: &Chunk, seq: u32, mode: Mode) -> GpuResult<()> {
        if self.pending.len() == self.cfg.batch {
            self.flush(&[], |_| {})?;
        }
        let (count, stride) = sample(chunk.bytes / 4, self.cfg.touch_cap);
        let wg = self.kernels.workgroup_size.max(1);
        let groups = count.div_ceil(wg).max(1);
        let max = self.gpu.limits.max_compute_workgroups_per_dimension.max(1);
        let gx = groups.min(max);
        let gy = groups.div_ceil(gx);
        let p = Params { seq, mode, count, stride, word_offset: (chunk.offset / 4) as u32, groups_x: gx };
        let at = (self.pending.len() as u64 * self.align) as usize;
        self.params[at..at + PARAMS_BYTES as usize].copy_from_slice(&p.encode());
        self.pending.push(PendingKernel {
            pipeline: pipeline.clone(),
            bind_group: chunk.bind_group.clone(),
            groups: (gx, gy),
        });
        self.counters.kernels += 1;
        Ok(())
    }

    /// Records the kernel of one binding on resident buffer `key`.
    ///
    /// # Errors
    /// [`GpuError::Integrity`] when `key` is not resident; device errors.
    pub fn kernel(
        &mut self,
        key: u32,
        pipeline: &wgpu::ComputePipeline,
        salt: u32,
        seq: u32,
        mode: Mode,
    ) -> GpuResult<()> {
        let Some(Some(buf)) = self.resident.get_mut(key as usize) else {
            return Err(GpuError::Integrity(format!("dispatch seq {seq} binds buffer {key}, which is not resident")));
        };
        if mode != Mode::Read {
            buf.ops.push(WriteOp { salt, seq, mode });
        }
        // Move the chunks out while recording (push_kernel borrows self).
        let chunks = std::mem::take(&mut buf.chunks);
        let mut result = Ok(());
        for c in &chunks {
            result = self.push_kernel(pipeline, c, seq, mode);
            if result.is_err() {
                break;
            }
        }
        if let Some(Some(buf)) = self.resident.get_mut(key as usize) {
            buf.chunks = chunks;
        }
        result
    }

    /// Submits the pending kernels in one compute pass, after `clears`
    /// (buffer, bytes) and followed by whatever `post` records.
    fn flush(
        &mut self,
        clears: &[(&wgpu::Buffer, u64)],
        post: impl FnOnce(&mut wgpu::CommandEncoder),
    ) -> GpuResult<()> {
        let n = self.pending.len();
        if n > 0 {
            self.gpu.queue.write_buffer(&self.params_buf, 0, &self.params[..(n as u64 * self.align) as usize]);
        }
        let mut encoder =
            self.gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("cachescope batch") });
        for (b, bytes) in clears {
            encoder.clear_buffer(b, 0, Some(*bytes));
        }
        let mut harvest = false;
        if n > 0 {
            let writes = self.timestamps.as_mut().map(|t| {
                let slot = t.used;
                t.used += 1;
                harvest = t.used == TIMESTAMP_PASSES;
                wgpu::ComputePassTimestampWrites {
                    query_set: &t.set,
                    beginning_of_pass_write_index: Some(2 * slot),
                    end_of_pass_write_index: Some(2 * slot + 1),
                }
            });
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("cachescope kernels"),
                timestamp_writes: writes,
            });
            let mut last: Option<&wgpu::ComputePipeline> = None;
            for (k, pk) in self.pending.iter().enumerate() {
                if last != Some(&pk.pipeline) {
                    pass.set_pipeline(&pk.pipeline);
                    last = Some(&pk.pipeline);
                }
                pass.set_bind_group(0, &pk.bind_group, &[(k as u64 * self.align) as u32]);
                pass.dispatch_workgroups(pk.groups.0, pk.groups.1, 1);
            }
        }
        post(&mut encoder);
        self.gpu.queue.submit([encoder.finish()]);
        self.counters.submits += 1;
        self.pending.clear();
        if harvest {
            self.harvest_timestamps()?;
        }
        self.check(|| "submitting a batch of kernels".into())
    }

    /// Reads the collected pass timestamps into `gpu_ns` (waits).
    fn harvest_timestamps(&mut self) -> GpuResult<()> {
        let Some(t) = self.timestamps.as_mut() else { return Ok(()) };
        if t.used == 0 {
            return Ok(());
        }
        let used = t.used;
        let bytes = u64::from(used) * 16;
        let mut encoder =
            self.gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("timestamps") });
        encoder.resolve_query_set(&t.set, 0..2 * used, &t.resolve, 0);
        encoder.copy_buffer_to_buffer(&t.resolve, 0, &t.staging, 0, bytes);
        self.gpu.queue.submit([encoder.finish()]);
        let (tx, rx) = mpsc::channel();
        t.staging.slice(..bytes).map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.gpu.wait("reading timestamps")?;
        rx.recv()
            .map_err(|e| GpuError::Runtime { during: "mapping timestamps".into(), message: e.to_string() })?
            .map_err(|e| GpuError::Runtime { during: "mapping timestamps".into(), message: e.to_string() })?;
        {
            let view = t
                .staging
                .slice(..bytes)
                .get_mapped_range()
                .map_err(|e| GpuError::Runtime { during: "reading timestamps".into(), message: e.to_string() })?;
            for pair in view.chunks_exact(16) {
                let a = u64::from_le_bytes(pair[0..8].try_into().unwrap_or([0; 8]));
                let b = u64::from_le_bytes(pair[8..16].try_into().unwrap_or([0; 8]));
                self.counters.gpu_ns += (b.saturating_sub(a) as f64 * t.period_ns) as u64;
            }
        }
        t.staging.unmap();
        t.used = 0;
        Ok(())
    }

    /// Drops the device copy of `key` and forgets its host bytes (a `free`:
    /// the buffer is dead), and its disk file with a disk tier.
    ///
    /// # Errors
    /// A disk-tier file that cannot be deleted.
    pub fn free(&mut self, key: u32) -> GpuResult<()> {
        if let Some(slot) = self.resident.get_mut(key as usize) {
            *slot = None;
        }
        if let Some(slot) = self.host.get_mut(key as usize) {
            *slot = None;
        }
        match self.host_tier.as_mut() {
            Some(t) => t.free(key, &mut self.host),
            None => Ok(()),
        }
    }

    /// Executes evictions: dirty ones are read back (batched), clean ones
    /// dropped.
    ///
    /// # Errors
    /// [`GpuError::Integrity`] when an evicted buffer is not resident, a
    /// clean one carries writes, or a readback fails its check; device
    /// errors.
    pub fn evict(&mut self, evicted: &[cachescope_core::cache::Evicted]) -> GpuResult<()> {
        let mut reads = Vec::new();
        for e in evicted {
            let key = e.key as u32;
            let Some(buf) = self.resident.get_mut(key as usize).and_then(Option::take) else {
                return Err(GpuError::Integrity(format!("the cache evicted buffer {key}, which is not on the device")));
            };
            if e.dirty {
                reads.push(Pending { key, trace_bytes: e.size, buf, counted: true });
            } else if !buf.ops.is_empty() {
                return Err(GpuError::Integrity(format!(
                    "buffer {key} was evicted clean but {} kernels wrote it",
                    buf.ops.len()
                )));
            }
        }
        if reads.is_empty() { Ok(()) } else { self.read_back(reads) }
    }

    fn take_staging(&mut self, bytes: u64) -> wgpu::Buffer {
        let class = bytes.next_power_of_two().max(4096);
        if let Some(b) = self.staging.get_mut(&class).and_then(Vec::pop) {
            self.staging_pooled -= class;
            return b;
        }
        self.gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("cachescope staging"),
            size: class,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    fn give_staging(&mut self, b: wgpu::Buffer) {
        let class = b.size();
        if self.staging_pooled + class <= STAGING_POOL_BYTES {
            self.staging_pooled += class;
            self.staging.entry(class).or_default().push(b);
        }
    }

    /// Reads back `reads` in rounds of bounded staging memory, checks them,
    /// and stores the bytes as the buffers' host copies.
    fn read_back(&mut self, reads: Vec<Pending>) -> GpuResult<()> {
        // (read index, chunk index) of every chunk, in order.
        let jobs: Vec<(usize, usize)> =
            reads.iter().enumerate().flat_map(|(r, p)| (0..p.buf.chunks.len()).map(move |c| (r, c))).collect();
        let mut data: Vec<Vec<u8>> = reads.iter().map(|p| vec![0u8; padded(p.trace_bytes) as usize]).collect();
        let mut time = vec![Duration::ZERO; reads.len()];
        let mut next = 0;
        while next < jobs.len() {
            let started = Instant::now();
            let round_start = next;
            let mut round = Vec::new();
            let mut bytes = 0u64;
            while next < jobs.len()
                && (round.is_empty()
                    || bytes + reads[jobs[next].0].buf.chunks[jobs[next].1].bytes <= STAGING_ROUND_BYTES)
            {
                let (r, c) = jobs[next];
                let chunk_bytes = reads[r].buf.chunks[c].bytes;
                round.push((r, c, self.take_staging(chunk_bytes)));
                bytes += chunk_bytes;
                next += 1;
            }
            let copies_owned: Vec<(wgpu::Buffer, wgpu::Buffer, u64)> = round
                .iter()
                .map(|(r, c, s)| (reads[*r].buf.chunks[*c].buffer.clone(), s.clone(), reads[*r].buf.chunks[*c].bytes))
                .collect();
            self.flush(&[], move |enc| {
                for (src, dst, n) in &copies_owned {
                    enc.copy_buffer_to_buffer(src, 0, dst, 0, *n);
                }
            })?;
            let (tx, rx) = mpsc::channel();
            for (k, (r, c, s)) in round.iter().enumerate() {
                let tx = tx.clone();
                let n = reads[*r].buf.chunks[*c].bytes;
                s.slice(..n).map_async(wgpu::MapMode::Read, move |res| {
                    let _ = tx.send((k, res));
                });
            }
            drop(tx);
            self.gpu.wait("reading back evicted buffers")?;
            for (_, res) in rx.iter() {
                res.map_err(|e| GpuError::Runtime { during: "mapping a readback".into(), message: e.to_string() })?;
            }
            for (r, c, s) in round {
                let chunk = &reads[r].buf.chunks[c];
                {
                    let view = s.slice(..chunk.bytes).get_mapped_range().map_err(|e| GpuError::Runtime {
                        during: format!("reading back buffer {}", reads[r].key),
                        message: e.to_string(),
                    })?;
                    let at = chunk.offset as usize;
                    data[r][at..at + chunk.bytes as usize].copy_from_slice(&view);
                }
                s.unmap();
                self.give_staging(s);
            }
            // Share the round's time among its buffers by bytes.
            let took = started.elapsed();
            let mut per: FxHashMap<usize, u64> = FxHashMap::default();
            for &(r, c) in &jobs[round_start..next] {
                *per.entry(r).or_default() += reads[r].buf.chunks[c].bytes;
            }
            for (r, b) in per {
                time[r] += took.mul_f64(b as f64 / bytes.max(1) as f64);
            }
        }
        for (r, p) in reads.into_iter().enumerate() {
            let bytes = std::mem::take(&mut data[r]);
            if self.cfg.verify {
                self.verify(p.key, &p.buf, &bytes)?;
                if p.counted {
                    self.counters.verified += 1;
                    self.counters.verified_bytes += bytes.len() as u64;
                }
            }
            if p.counted {
                self.counters.readbacks += 1;
                self.counters.readback_bytes += p.trace_bytes;
                record(&mut self.hist.readback, time[r]);
            }
            self.keep_bytes(p.key, p.trace_bytes, bytes, p.counted, p.buf.base == Base::Zero, &p.buf.ops)?;
        }
        Ok(())
    }

    /// Checks the bytes read back for `key` against the CPU model: its base
    /// (host bytes or zeros) with `buf.ops` applied to the touched words.
    fn verify(&self, key: u32, buf: &DevBuf, data: &[u8]) -> GpuResult<()> {
        let (start, earlier) = self.model(key, buf.base);
        for c in &buf.chunks {
            let d = &data[c.offset as usize..(c.offset + c.bytes) as usize];
            self.verify_chunk(key, start, earlier, &buf.ops, c.offset, d)?;
        }
        Ok(())
    }

    /// Checks chunk bytes `d` at `offset` of `key`: `start` with `earlier`
    /// then `ops` applied to the touched words, untouched words as `start`.
    fn verify_chunk(
        &self,
        key: u32,
        start: Start,
        earlier: &[WriteOp],
        ops: &[WriteOp],
        offset: u64,
        d: &[u8],
    ) -> GpuResult<()> {
        let words = d.len() as u64 / 4;
        let (count, stride) = sample(words, self.cfg.touch_cap);
        let word_offset = (offset / 4) as u32;
        let same = |from: u64, to: u64| -> bool {
            if to <= from {
                return true;
            }
            let matches = |at: u64, piece: &[u8]| {
                let a = (at - offset) as usize;
                &d[a..a + piece.len()] == piece
            };
            match start {
                Start::Zero => {
                    d[from as usize..to as usize].chunks(self.zeros.len()).all(|s| s == &self.zeros[..s.len()])
                }
                Start::HostBytes => self.host_pieces(key, offset + from, to - from, matches),
                Start::Pattern => self.pattern_pieces(key, offset + from, to - from, matches),
            }
        };
        let mut prev = 0u64;
        for j in 0..u64::from(count) {
            let w = j * u64::from(stride);
            let b = w * 4;
            if !same(prev, b) {
                return Err(GpuError::Integrity(format!(
                    "buffer {key}: bytes {}..{} of the chunk at {offset} changed although no kernel touched them",
                    prev, b
                )));
            }
            let mut v = self.start_word(key, start, offset + b);
            let g = word_offset.wrapping_add(w as u32);
            for op in earlier.iter().chain(ops) {
                v = apply(op, g, v);
            }
            let got = u32::from_le_bytes([d[b as usize], d[b as usize + 1], d[b as usize + 2], d[b as usize + 3]]);
            if got != v {
                let before = if earlier.is_empty() { String::new() } else { format!(", {} before", earlier.len()) };
                return Err(GpuError::Integrity(format!(
                    "buffer {key}: word {g} read back as {got:#010x}, the model expects {v:#010x} ({} writes since \
                     upload{before})",
                    ops.len()
                )));
            }
            prev = b + 4;
        }
        if !same(prev, d.len() as u64) {
            return Err(GpuError::Integrity(format!("buffer {key}: untouched tail of the chunk at {offset} changed")));
        }
        Ok(())
    }

    /// Streams an access the cache would not hold through one scratch chunk:
    /// upload (unless write-only), kernel, readback (if it writes).
    ///
    /// # Errors
    /// Device errors; a failed integrity check.
    pub fn stream(
        &mut self,
        key: u32,
        trace_bytes: u64,
        pipeline: &wgpu::ComputePipeline,
        salt: u32,
        seq: u32,
        mode: Mode,
    ) -> GpuResult<()> {
        self.counters.streamed += 1;
        let layout = self.layout(trace_bytes);
        let total = padded(trace_bytes);
        let mut out = if mode != Mode::Read { vec![0u8; total as usize] } else { Vec::new() };
        let transient = if mode == Mode::Write { false } else { self.load_host(key, trace_bytes)? };
        let scratch_bytes = self.cfg.max_chunk.min(total.max(4));
        if self.scratch.as_ref().is_none_or(|s| s.bytes < scratch_bytes) {
            self.scratch = Some(self.new_chunk(0, scratch_bytes, "cachescope stream scratch"));
        }
        let (mut up, mut down) = (Duration::ZERO, Duration::ZERO);
        for (off, n) in layout {
            // Pending kernels may use the scratch: submit them first.
            self.flush(&[], |_| {})?;
            let Some(scratch) = self.scratch.take() else { continue };
            let view =
                Chunk { buffer: scratch.buffer.clone(), bind_group: scratch.bind_group.clone(), offset: off, bytes: n };
            let started = Instant::now();
            let clears: Vec<(&wgpu::Buffer, u64)> = if mode == Mode::Write {
                vec![(&scratch.buffer, n)]
            } else {
                self.write_host(key, &view, &scratch.buffer);
                Vec::new()
            };
            up += started.elapsed();
            let clear_owned: Vec<(wgpu::Buffer, u64)> = clears.iter().map(|(b, n)| ((*b).clone(), *n)).collect();
            self.push_kernel(pipeline, &view, seq, mode)?;
            let clear_refs: Vec<(&wgpu::Buffer, u64)> = clear_owned.iter().map(|(b, n)| (b, *n)).collect();
            if mode == Mode::Read {
                self.flush(&clear_refs, |_| {})?;
            } else {
                let started = Instant::now();
                let staging = self.take_staging(n);
                let (src, dst) = (scratch.buffer.clone(), staging.clone());
                self.flush(&clear_refs, move |enc| enc.copy_buffer_to_buffer(&src, 0, &dst, 0, n))?;
                let (tx, rx) = mpsc::channel();
                staging.slice(..n).map_async(wgpu::MapMode::Read, move |r| {
                    let _ = tx.send(r);
                });
                self.gpu.wait("streaming a buffer")?;
                rx.recv()
                    .map_err(|e| GpuError::Runtime { during: "mapping a stream chunk".into(), message: e.to_string() })?
                    .map_err(|e| GpuError::Runtime {
                        during: "mapping a stream chunk".into(),
                        message: e.to_string(),
                    })?;
                {
                    let v = staging.slice(..n).get_mapped_range().map_err(|e| GpuError::Runtime {
                        during: format!("streaming buffer {key}"),
                        message: e.to_string(),
                    })?;
                    out[off as usize..(off + n) as usize].copy_from_slice(&v);
                }
                staging.unmap();
                self.give_staging(staging);
                down += started.elapsed();
            }
            self.scratch = Some(scratch);
        }
        if mode != Mode::Write {
            self.counters.uploads += 1;
            self.counters.upload_bytes += trace_bytes;
            record(&mut self.hist.upload, up);
        }
        if transient && let Some(slot) = self.host.get_mut(key as usize) {
            *slot = None;
        }
        if mode != Mode::Read {
            let base = if mode == Mode::Write { Base::Zero } else { Base::Host };
            let ops = [WriteOp { salt, seq, mode }];
            if self.cfg.verify {
                let (start, earlier) = self.model(key, base);
                for (off, n) in self.layout(trace_bytes) {
                    self.verify_chunk(key, start, earlier, &ops, off, &out[off as usize..(off + n) as usize])?;
                }
                self.counters.verified += 1;
                self.counters.verified_bytes += total;
            }
            self.counters.readbacks += 1;
            self.counters.readback_bytes += trace_bytes;
            record(&mut self.hist.readback, down);
            self.keep_bytes(key, trace_bytes, out, true, base == Base::Zero, &ops)?;
        }
        self.check(|| format!("streaming buffer {key} ({trace_bytes} bytes)"))
    }

    /// Submits pending kernels and waits for the device; collects GPU time.
    ///
    /// # Errors
    /// Device errors.
    pub fn finish(&mut self) -> GpuResult<()> {
        if !self.pending.is_empty() {
            self.flush(&[], |_| {})?;
        }
        self.gpu.wait("finishing the replay")?;
        self.harvest_timestamps()
    }

    /// Reads back every resident buffer (not counted as readbacks) and
    /// checks it against the model; returns how many were checked.
    ///
    /// # Errors
    /// A failed check; device errors.
    pub fn verify_resident(&mut self, sizes: &[u64]) -> GpuResult<u64> {
        let mut reads = Vec::new();
        for key in 0..self.resident.len() {
            if let Some(buf) = self.resident[key].take() {
                let trace_bytes = sizes.get(key).copied().unwrap_or(0);
                reads.push(Pending { key: key as u32, trace_bytes, buf, counted: false });
            }
        }
        let n = reads.len() as u64;
        if n > 0 {
            let verify = self.cfg.verify;
            self.cfg.verify = true;
            let r = self.read_back(reads);
            self.cfg.verify = verify;
            r?;
        }
        Ok(n)
    }

    /// Bytes the device currently holds for resident buffers (padded).
    pub fn resident_bytes(&self) -> u64 {
        self.resident.iter().flatten().flat_map(|b| b.chunks.iter().map(|c| c.bytes)).sum()
    }

    /// Issues the dispatch sequence `work` (pipeline, resident key, seq,
    /// mode) as a minimal loop would: for the overhead benchmark.
    ///
    /// # Errors
    /// Device errors; a key that is not resident.
    pub fn raw_kernels(&mut self, work: &[(wgpu::ComputePipeline, u32, u32, Mode)]) -> GpuResult<()> {
        for (pipeline, key, seq, mode) in work {
            let Some(Some(buf)) = self.resident.get(*key as usize) else {
                return Err(GpuError::Integrity(format!("buffer {key} is not resident")));
            };
            let chunks: Vec<(wgpu::BindGroup, u64, u64)> =
                buf.chunks.iter().map(|c| (c.bind_group.clone(), c.offset, c.bytes)).collect();
            for (bg, offset, bytes) in chunks {
                if self.pending.len() == self.cfg.batch {
                    self.flush(&[], |_| {})?;
                }
                let (count, stride) = sample(bytes / 4, self.cfg.touch_cap);
                let groups = count.div_ceil(self.kernels.workgroup_size.max(1)).max(1);
                let gx = groups.min(self.gpu.limits.max_compute_workgroups_per_dimension.max(1));
                let p =
                    Params { seq: *seq, mode: *mode, count, stride, word_offset: (offset / 4) as u32, groups_x: gx };
                let at = (self.pending.len() as u64 * self.align) as usize;
                self.params[at..at + PARAMS_BYTES as usize].copy_from_slice(&p.encode());
                self.pending.push(PendingKernel {
                    pipeline: pipeline.clone(),
                    bind_group: bg,
                    groups: (gx, groups.div_ceil(gx)),
                });
            }
        }
        Ok(())
    }
}
