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
//! **Two things live in the disk store.** Per pipeline key, a small
//! specialisation record (trace id, salt, workgroup size, adapter, compile
//! time): a warm run counts its disk hits. And, where the adapter has
//! `Features::PIPELINE_CACHE`, one driver blob per adapter and driver: the
//! bytes of `wgpu::PipelineCache::get_data` saved at the end of a run, which
//! seed the next run's `PipelineCache` so its compiles hit the driver's
//! cache (on NVIDIA 6-10 ms cold becomes 0.07-0.26 ms, `shared/gpu.md`; on
//! lavapipe the blob is a 96-byte header and changes nothing).
//!
//! Seeding needs wgpu's `unsafe fn Device::create_pipeline_cache`: this is
//! the workspace's one audited `unsafe` (see `DriverCache::open` for the
//! argument, and `harness/tests/unsafe_audit.rs`, which fails on any other).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cachescope_core::pipeline::{
    DiskPipelineStore, DiskStoreConfig, MemoryPipelineStore, MemoryStoreConfig, PipelineCacheKey, PipelineCacheStore,
    PipelineFeatureFlags, PipelineKeyDigest,
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
    /// Bytes of the driver pipeline-cache blob this run was seeded with
    /// (0: cold, no blob, or the adapter has no `PIPELINE_CACHE`).
    #[serde(default)]
    pub driver_cache_seed_bytes: u64,
    /// Bytes of the driver pipeline-cache blob saved at the end of the run.
    #[serde(default)]
    pub driver_cache_saved_bytes: u64,
}

/// The driver's pipeline cache (`wgpu::PipelineCache`) of one run, seeded
/// from and saved to the disk store under one key per adapter and driver.
struct DriverCache {
    cache: wgpu::PipelineCache,
    /// Where the blob lives in the disk store.
    key: PipelineCacheKey,
}

impl DriverCache {
    /// The disk-store key of the driver blob for `info`: wgpu's own cache
    /// key (vendor and device; `None` off Vulkan) plus the driver version,
    /// so a driver update starts cold instead of offering a stale blob.
    fn key_for(info: &wgpu::AdapterInfo) -> Option<PipelineCacheKey> {
        let adapter_key = wgpu::util::pipeline_cache_key(info)?;
        let backend_id = format!("{adapter_key}:{}:{}", info.driver, info.driver_info);
        let shader_hash = *blake3::hash(b"cachescope: wgpu PipelineCache::get_data blob").as_bytes();
        Some(PipelineCacheKey::new(shader_hash, [0; 32], 0, [0; 3], PipelineFeatureFlags::empty(), &backend_id))
    }

    /// The driver cache for `device`, seeded with the blob `disk` holds for
    /// this adapter and driver, if any. `None` when the adapter has no
    /// `PIPELINE_CACHE` (compiles then go uncached, as before).
    fn open(device: &super::GpuDevice, disk: &DiskPipelineStore) -> GpuResult<Option<(DriverCache, u64)>> {
        if !device.features.contains(wgpu::Features::PIPELINE_CACHE) {
            return Ok(None);
        }
        let Some(key) = Self::key_for(&device.adapter_info) else { return Ok(None) };
        let seed = disk.get(&key).map_err(|e| GpuError::Store(e.to_string()))?;
        let seed_bytes = seed.as_ref().map_or(0, |b| b.len() as u64);
        let desc = wgpu::PipelineCacheDescriptor {
            label: Some("cachescope replay driver cache"),
            data: seed.as_deref(),
            // A blob the driver rejects (another driver build, a wgpu
            // format change) gives an empty cache instead of an error.
            fallback: true,
        };
        // SAFETY: wgpu requires `data` to be bytes a previous
        // `PipelineCache::get_data` returned, for an adapter with the same
        // `util::pipeline_cache_key`. The only writer of this key is
        // `Pipelines::flush` below, which stores exactly `get_data`'s bytes;
        // the key embeds `pipeline_cache_key` and the driver version, so a
        // blob only ever comes back to the adapter and driver that made it;
        // and the disk store returns a blob only when its checksum matches
        // (torn or altered files read as absent, core/src/pipeline/disk.rs).
        // Beyond that, wgpu-core checks its own header (magic, version,
        // adapter, driver, length, hash space) and the Vulkan driver checks
        // its header (vendor, device, pipeline-cache UUID) before use.
        #[expect(unsafe_code, reason = "the one audited unsafe of the workspace; argument above")]
        let cache = unsafe { device.device.create_pipeline_cache(&desc) };
        device.errors.check(|| "creating the driver pipeline cache".to_string())?;
        Ok(Some((DriverCache { cache, key }, seed_bytes)))
    }
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
    driver_cache: Option<DriverCache>,
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
    /// the disk store, and with it the driver pipeline cache of `device`.
    ///
    /// # Errors
    /// [`GpuError::Store`] when a store cannot be created or opened.
    pub fn new(
        device: &super::GpuDevice,
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
        let mut counters = PipelineCounters::default();
        let driver_cache = match &disk {
            Some(d) => DriverCache::open(device, d)?.map(|(cache, seed_bytes)| {
                counters.driver_cache_seed_bytes = seed_bytes;
                cache
            }),
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
            driver_cache,
            evicted,
            backend_id: backend_id.to_string(),
            counters,
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
        let pipeline = kernels.compile(&device.device, known.salt, self.driver_cache.as_ref().map(|c| &c.cache));
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
                "note": "specialisation record; the driver's compiled code is the separate per-adapter PipelineCache blob",
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

    /// Saves the driver pipeline cache's blob (when there is one) and makes
    /// the disk store's writes durable.
    ///
    /// # Errors
    /// [`GpuError::Store`] on an I/O failure.
    pub fn flush(&mut self) -> GpuResult<()> {
        let Some(disk) = &self.disk else { return Ok(()) };
        if let Some(driver) = &self.driver_cache
            && let Some(blob) = driver.cache.get_data()
        {
            let bytes = blob.len() as u64;
            if disk.put(&driver.key, Arc::from(blob)).map_err(|e| GpuError::Store(e.to_string()))?.is_stored() {
                self.counters.driver_cache_saved_bytes = bytes;
            }
        }
        disk.flush().map_err(|e| GpuError::Store(e.to_string()))
    }
}
