//! Compiled pipelines behind core's stores.
//!
//! A trace pipeline id seen for the first time is a real compile
//! ([`KernelSet::compile`]). Core's [`MemoryPipelineStore`] decides what
//! stays compiled: the wgpu `ComputePipeline` objects live in a map keyed by
//! the key's digest, and when the store's eviction listener reports that
//! entries left, the map drops the pipelines the store no longer holds. A
//! later dispatch of an evicted pipeline compiles it again (counted).
//!
//! With a disk store (`--pipeline-cache DIR`), a compile first looks the key
//! up in core's [`DiskPipelineStore`] and counts a hit as served from disk.
//!
//! **What the disk store holds, honestly.** wgpu 30's only way to seed a
//! driver pipeline cache from saved bytes, `Device::create_pipeline_cache`,
//! is an `unsafe fn`, and this workspace forbids `unsafe`. So the blob the
//! disk store keeps is the pipeline's specialisation record (trace id, salt,
//! workgroup size, adapter, compile time), not driver binaries: a warm run
//! counts its disk hits, but the compile still runs, and any speed-up comes
//! from the driver's own shader cache (on NVIDIA, unless
//! `__GL_SHADER_DISK_CACHE=0`). On lavapipe the wgpu blob would be a 96-byte
//! header and change nothing anyway (`shared/gpu.md`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cachescope_core::pipeline::{
    DiskPipelineStore, DiskStoreConfig, MemoryPipelineStore, MemoryStoreConfig, PipelineCacheKey, PipelineCacheStore,
    PipelineKeyDigest,
};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use super::kernels::{KernelSet, salt_of};
use super::{GpuError, GpuResult};

/// Counters of the pipeline layer for one run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineCounters {
    /// Pipeline lookups (one per dispatch).
    pub lookups: u64,
    /// Lookups served by a compiled pipeline in memory.
    pub memory_hits: u64,
    /// Real compiles (`create_compute_pipeline`).
    pub compiles: u64,
    /// Of the compiles: keys the disk store already held.
    pub disk_hits: u64,
    /// Records written to the disk store.
    pub disk_puts: u64,
    /// Compiled pipelines the memory store evicted.
    pub evictions: u64,
}

struct Known {
    key: PipelineCacheKey,
    digest: PipelineKeyDigest,
    salt: u32,
    trace_id: u64,
}

/// The pipelines of one run.
pub struct Pipelines {
    known: Vec<Known>,
    compiled: FxHashMap<PipelineKeyDigest, wgpu::ComputePipeline>,
    memory: MemoryPipelineStore,
    disk: Option<DiskPipelineStore>,
    evicted: Arc<AtomicU64>,
    backend_id: String,
    /// This run's counters.
    pub counters: PipelineCounters,
}

impl std::fmt::Debug for Pipelines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipelines").field("known", &self.known.len()).field("counters", &self.counters).finish()
    }
}

impl Pipelines {
    /// Pipelines for the trace pipeline ids `trace_ids` (dense order); at
    /// most `memory_entries` stay compiled (0: no limit); `disk_dir` enables
    /// the disk store.
    ///
    /// # Errors
    /// [`GpuError::Store`] when a store cannot be created or opened.
    pub fn new(
        kernels: &KernelSet,
        trace_ids: &[u64],
        backend_id: &str,
        memory_entries: u64,
        disk_dir: Option<&std::path::Path>,
    ) -> GpuResult<Pipelines> {
        let entries = if memory_entries == 0 { 1 << 20 } else { memory_entries };
        let config = MemoryStoreConfig { shards: 1, max_entries_per_shard: entries, max_bytes_per_shard: 1 << 40 };
        let evicted = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&evicted);
        let memory = MemoryPipelineStore::new(config)
            .map_err(|e| GpuError::Store(format!("memory store: {e}")))?
            .with_listener(move |ev| {
                counter.fetch_add(ev.entries, Ordering::Relaxed);
            });
        let disk = match disk_dir {
            Some(dir) => Some(
                DiskPipelineStore::open(dir, DiskStoreConfig::default())
                    .map_err(|e| GpuError::Store(format!("disk store `{}`: {e}", dir.display())))?,
            ),
            None => None,
        };
        let known = trace_ids
            .iter()
            .map(|&id| {
                let salt = salt_of(id);
                let key = kernels.key(salt, backend_id);
                Known { digest: key.digest(), key, salt, trace_id: id }
            })
            .collect();
        Ok(Pipelines {
            known,
            compiled: FxHashMap::default(),
            memory,
            disk,
            evicted,
            backend_id: backend_id.to_string(),
            counters: PipelineCounters::default(),
        })
    }

    /// The `SALT` of dense pipeline `p`.
    pub fn salt(&self, p: u32) -> u32 {
        self.known.get(p as usize).map_or(0, |k| k.salt)
    }

    /// The compiled pipeline for dense pipeline `p`, compiling it when the
    /// memory store does not hold it; also the compile time when it compiled.
    ///
    /// # Errors
    /// [`GpuError::Store`] on a store failure; [`GpuError::Runtime`] when
    /// the compile reports an error.
    pub fn get(
        &mut self,
        kernels: &KernelSet,
        device: &super::GpuDevice,
        p: u32,
    ) -> GpuResult<(wgpu::ComputePipeline, Option<Duration>)> {
        let known = self.known.get(p as usize).ok_or_else(|| GpuError::Trace(format!("no pipeline {p}")))?;
        self.counters.lookups += 1;
        let in_store = self.memory.get_digest(&known.digest).map_err(|e| GpuError::Store(e.to_string()))?.is_some();
        if in_store && let Some(pipeline) = self.compiled.get(&known.digest) {
            self.counters.memory_hits += 1;
            return Ok((pipeline.clone(), None));
        }
        let disk_hit = match &self.disk {
            Some(d) => d.get(&known.key).map_err(|e| GpuError::Store(e.to_string()))?.is_some(),
            None => false,
        };
        let started = Instant::now();
        let pipeline = kernels.compile(&device.device, known.salt);
        let took = started.elapsed();
        device.errors.check(|| format!("compiling pipeline {:016x} (salt {:#x})", known.trace_id, known.salt))?;
        self.counters.compiles += 1;
        if disk_hit {
            self.counters.disk_hits += 1;
        } else if let Some(d) = &self.disk {
            let record = serde_json::json!({
                "trace_pipeline": format!("{:016x}", known.trace_id),
                "salt": known.salt,
                "workgroup_size": kernels.workgroup_size,
                "backend": self.backend_id,
                "compile_seconds": took.as_secs_f64(),
                "note": "specialisation record; wgpu 30 PipelineCache seeding needs unsafe, forbidden here",
            });
            let bytes: Arc<[u8]> = serde_json::to_vec(&record).unwrap_or_default().into();
            if d.put(&known.key, bytes).map_err(|e| GpuError::Store(e.to_string()))?.is_stored() {
                self.counters.disk_puts += 1;
            }
        }
        // The memory store decides what stays compiled; its blob is the
        // digest (the pipeline object itself lives in `compiled`).
        let before = self.evicted.load(Ordering::Relaxed);
        let blob: Arc<[u8]> = Arc::from(&known.digest.0[..]);
        let digest = known.digest;
        self.memory.put_digest(digest, known.key.feature_flags, blob).map_err(|e| GpuError::Store(e.to_string()))?;
        self.compiled.insert(digest, pipeline.clone());
        let gone = self.evicted.load(Ordering::Relaxed) - before;
        if gone > 0 {
            self.counters.evictions += gone;
            // The listener reports how many left, not which: keep what the
            // store still holds (at most one entry per known pipeline).
            let memory = &self.memory;
            let known = &self.known;
            self.compiled.retain(|d, _| {
                known.iter().find(|k| &k.digest == d).is_some_and(|k| memory.contains(&k.key).unwrap_or(false))
            });
        }
        Ok((pipeline, Some(took)))
    }

    /// Makes the disk store's writes durable.
    ///
    /// # Errors
    /// [`GpuError::Store`] on an I/O failure.
    pub fn flush(&self) -> GpuResult<()> {
        match &self.disk {
            Some(d) => d.flush().map_err(|e| GpuError::Store(e.to_string())),
            None => Ok(()),
        }
    }
}
