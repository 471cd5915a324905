//! Hot paths of cachescope-core next to the crates it is compared with.
//!
//! Every group runs at 10k and 100k entries, because the seed crates'
//! eviction paths scan and their cost grows with the entry count. Key
//! streams come from `workload/` (seeded, generated before timing) and a
//! stream's cursor survives across criterion samples, like the structure's
//! state does: each iteration is one operation on the next key, so the times
//! criterion reports are per operation.
//!
//! Groups (`<group>/<implementation>/<entries>`):
//! * `cache/hit`, `cache/miss`: one request to an object cache of `n`
//!   entries. `hit`: Zipf-like over the `n` resident keys. `miss`: a cycle of
//!   `16n` keys never resident, so (for LRU, FIFO, CLOCK) every request
//!   misses and evicts one entry. A peer's miss is `get` then `insert`.
//! * `tiered/access`: `TieredCache` with host (`n` buffers) and device (`n/10`
//!   buffers) tiers, promote on access, Zipf-like stream: hot keys hit in the
//!   device tier, the tail promotes and demotes a device victim. The seed
//!   `vyre-wgpu` `TieredCache` runs the same stream in
//!   `peers/vyre-wgpu-bench` (it cannot share this lockfile).
//! * `pipeline/hit`, `pipeline/miss`, `hints/record_present`,
//!   `hints/record_evict`: see their functions.
//!
//! Before timing, each benchmark replays a probe of its stream and prints
//! what the requests did (hit ratio, moves), so a table can say that a
//! "miss" benchmark really missed.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use cachescope_core::cache::Cache;
use cachescope_core::hints::HotPathHints;
use cachescope_core::pipeline::{MemoryPipelineStore, MemoryStoreConfig, PipelineFeatureFlags, PipelineKeyDigest};
use cachescope_core::policy::{Access, Clock, EvictionPolicy, Fifo, Lru, Request};
use cachescope_core::tiered::{MoveKind, PromotionRule, TierConfig, TieredCache, TieredConfig};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use vyre_foundation::optimizer::hot_path_hints::HotPathHints as SeedHints;
use vyre_runtime::{InMemoryPipelineCache, PipelineCacheStore as _, PipelineFingerprint};

mod workload;
use workload::{Cursor, POPULAR_STREAM_LEN, fresh_keys, key_of, resident_keys, zipf_keys, zipf_ranks};

/// Entry counts every group runs at.
const SIZES: [usize; 2] = [10_000, 100_000];

/// Requests replayed (untimed) before timing, to report what the stream does.
const PROBE_LEN: usize = 20_000;

/// Bytes of one buffer in the tiered benchmark.
const BUFFER_BYTES: u64 = 4096;

/// Length of a miss stream for `n` entries: every key comes back only after
/// `16n - 1` others, long after LRU, FIFO or CLOCK evicted it.
fn miss_stream_len(n: usize) -> usize {
    16 * n
}

/// Criterion settings sized for a shared 2-core machine.
fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500))
}

/// What a probe saw, printed once per benchmark.
fn report_probe(id: &str, what: &str) {
    eprintln!("probe {id}: {what}");
}

// ---------------------------------------------------------------------------
// cache/hit, cache/miss
// ---------------------------------------------------------------------------

/// One object cache under test: `request` is a lookup that stores the key on
/// a miss, and returns whether it hit.
trait ObjectCache {
    fn request(&mut self, key: u64) -> bool;
    /// Work a concurrent cache defers (moka); a no-op elsewhere.
    fn settle(&mut self) {}
}

impl<P: EvictionPolicy> ObjectCache for Cache<P> {
    #[inline]
    fn request(&mut self, key: u64) -> bool {
        self.access(&Request::new(key, 1)).is_hit()
    }
}

struct QuickUnsync(quick_cache::unsync::Cache<u64, u64>);
impl ObjectCache for QuickUnsync {
    #[inline]
    fn request(&mut self, key: u64) -> bool {
        if self.0.get(&key).is_some() {
            return true;
        }
        self.0.insert(key, 1);
        false
    }
}

struct QuickSync(quick_cache::sync::Cache<u64, u64>);
impl ObjectCache for QuickSync {
    #[inline]
    fn request(&mut self, key: u64) -> bool {
        if self.0.get(&key).is_some() {
            return true;
        }
        self.0.insert(key, 1);
        false
    }
}

struct Moka(moka::sync::Cache<u64, u64>);
impl ObjectCache for Moka {
    #[inline]
    fn request(&mut self, key: u64) -> bool {
        if self.0.get(&key).is_some() {
            return true;
        }
        self.0.insert(key, 1);
        false
    }
    fn settle(&mut self) {
        self.0.run_pending_tasks();
    }
}

/// Prefills `cache` with the `n` resident keys, probes `keys`, then times
/// one request per iteration. Generic, so every cache (cachescope's
/// `Cache<Lru>` included) is monomorphised as a user would build it.
fn bench_object_cache<C: ObjectCache>(
    c: &mut Criterion,
    group: &str,
    name: &str,
    n: usize,
    mut cache: C,
    keys: Vec<u64>,
) {
    for k in resident_keys(n) {
        cache.request(k);
    }
    cache.settle();
    let mut stream = Cursor::new(keys);
    let hits = (0..PROBE_LEN).filter(|_| cache.request(*stream.next_item())).count();
    cache.settle();
    let id = format!("{group}/{name}/{n}");
    report_probe(&id, &format!("hit ratio {:.4} over {PROBE_LEN} requests", hits as f64 / PROBE_LEN as f64));
    c.bench_with_input(BenchmarkId::new(format!("{group}/{name}"), n), &n, |b, _| {
        b.iter(|| black_box(cache.request(*stream.next_item())))
    });
}

fn cache_benches(c: &mut Criterion) {
    for n in SIZES {
        let hit_keys = zipf_keys(n, POPULAR_STREAM_LEN, 1);
        let miss_keys = fresh_keys(n, miss_stream_len(n));
        for (group, keys) in [("cache/hit", &hit_keys), ("cache/miss", &miss_keys)] {
            let cap = n as u64;
            macro_rules! bench {
                ($name:literal, $cache:expr) => {
                    bench_object_cache(c, group, $name, n, $cache, keys.clone())
                };
            }
            bench!("cachescope-lru", Cache::new(cap, Lru::default()).expect("capacity >= 1"));
            bench!("cachescope-fifo", Cache::new(cap, Fifo::default()).expect("capacity >= 1"));
            bench!("cachescope-clock", Cache::new(cap, Clock::default()).expect("capacity >= 1"));
            bench!("quick_cache-unsync", QuickUnsync(quick_cache::unsync::Cache::new(n)));
            bench!("quick_cache-sync", QuickSync(quick_cache::sync::Cache::new(n)));
            bench!("moka-sync", Moka(moka::sync::Cache::new(cap)));
        }
    }
}

// ---------------------------------------------------------------------------
// tiered/access
// ---------------------------------------------------------------------------

/// Host holds all `n` buffers, device a tenth: tier sizes of the seed bench.
fn tiered_config(n: usize) -> TieredConfig {
    let tier = |name: &str, buffers: usize| TierConfig {
        name: name.to_owned(),
        capacity_bytes: buffers as u64 * BUFFER_BYTES,
        policy: cachescope_core::policy::PolicyKind::Lru,
    };
    TieredConfig { tiers: vec![tier("host", n), tier("device", n / 10)], promotion: PromotionRule::OnAccess }
}

/// One access as a GPU runtime issues it: record the access (promoting), or
/// insert a buffer the cache does not know (never happens here: nothing is
/// dropped while the host tier holds every buffer).
#[inline]
fn tiered_access(cache: &mut TieredCache, key: u64, on_move: &mut impl FnMut(cachescope_core::tiered::TierMove)) {
    if cache.access(key, Access::Read, on_move).is_err() {
        cache.insert(key, BUFFER_BYTES, on_move).expect("a buffer fits the host tier");
        cache.access(key, Access::Read, on_move).expect("just inserted");
    }
}

fn tiered_benches(c: &mut Criterion) {
    for n in SIZES {
        let keys = zipf_keys(n, POPULAR_STREAM_LEN, 2);
        let mut cache = TieredCache::new(tiered_config(n)).expect("valid tiers");
        let mut ignore = |_| {};
        for k in resident_keys(n) {
            cache.insert(k, BUFFER_BYTES, &mut ignore).expect("fits");
        }
        let mut stream = Cursor::new(keys);
        // Fill the device tier, then probe what a request does in steady state.
        for _ in 0..2 * n {
            tiered_access(&mut cache, *stream.next_item(), &mut ignore);
        }
        let (mut device_hits, mut promotions, mut drops) = (0u64, 0u64, 0u64);
        for _ in 0..PROBE_LEN {
            let key = *stream.next_item();
            let before = cache.is_in_fastest(key);
            tiered_access(&mut cache, key, &mut |m| match m.kind {
                MoveKind::Promote => promotions += 1,
                MoveKind::Drop => drops += 1,
                _ => {}
            });
            device_hits += u64::from(before);
        }
        let id = format!("tiered/access/cachescope/{n}");
        report_probe(
            &id,
            &format!(
                "device-tier hits {:.4}, promotions {:.4}, drops {drops} over {PROBE_LEN} accesses (stream checksum {:#x})",
                device_hits as f64 / PROBE_LEN as f64,
                promotions as f64 / PROBE_LEN as f64,
                workload::checksum(stream.items()),
            ),
        );
        c.bench_with_input(BenchmarkId::new("tiered/access/cachescope", n), &n, |b, _| {
            b.iter(|| {
                tiered_access(&mut cache, *stream.next_item(), &mut |m| {
                    black_box(m);
                })
            })
        });
        debug_assert!(cache.check_invariants().is_ok());
    }
}

// ---------------------------------------------------------------------------
// pipeline/hit, pipeline/miss
// ---------------------------------------------------------------------------

/// Bytes of one compiled pipeline blob.
const PIPELINE_BLOB_BYTES: usize = 1024;

/// The 32-byte digest of pipeline `i` (shared by both stores: the seed keys
/// by a `PipelineFingerprint`, cachescope by a `PipelineKeyDigest`; both are
/// 32 bytes the caller already holds, so neither side hashes a key).
fn pipeline_digest(i: u64) -> [u8; 32] {
    let mut d = [0u8; 32];
    for (j, chunk) in d.chunks_exact_mut(8).enumerate() {
        chunk.copy_from_slice(&key_of(i.wrapping_mul(4).wrapping_add(j as u64)).to_le_bytes());
    }
    d
}

/// A pipeline store under test. `request` is what a runtime does: a lookup
/// that, on a miss, "compiles" (copies a template blob into a fresh
/// allocation of the type the store takes) and stores the result.
trait PipelineStore {
    fn lookup(&self, digest: &[u8; 32]) -> bool;
    fn store(&self, digest: &[u8; 32]);
    /// Returns whether it hit.
    #[inline]
    fn request(&self, digest: &[u8; 32]) -> bool {
        if self.lookup(digest) {
            return true;
        }
        self.store(digest);
        false
    }
}

struct Cachescope(MemoryPipelineStore);
impl PipelineStore for Cachescope {
    #[inline]
    fn lookup(&self, digest: &[u8; 32]) -> bool {
        black_box(self.0.get_digest(&PipelineKeyDigest(*digest)).expect("no poisoned shard")).is_some()
    }
    #[inline]
    fn store(&self, digest: &[u8; 32]) {
        let blob: Arc<[u8]> = Arc::from(&PIPELINE_BLOB[..]);
        let outcome = self.0.put_digest(PipelineKeyDigest(*digest), PipelineFeatureFlags::default(), blob);
        black_box(outcome.expect("no poisoned shard"));
    }
}

struct SeedPipeline(InMemoryPipelineCache);
impl PipelineStore for SeedPipeline {
    #[inline]
    fn lookup(&self, digest: &[u8; 32]) -> bool {
        black_box(self.0.get_arc(&PipelineFingerprint(*digest))).is_some()
    }
    #[inline]
    fn store(&self, digest: &[u8; 32]) {
        self.0.put(PipelineFingerprint(*digest), PIPELINE_BLOB.to_vec());
    }
}

static PIPELINE_BLOB: [u8; PIPELINE_BLOB_BYTES] = [0xa5; PIPELINE_BLOB_BYTES];

/// Both stores hold about `n` entries: cachescope with its default 16 shards
/// of `n/16`, the seed with its fixed 256 shards of `n/256`. Byte budgets do
/// not bind.
fn pipeline_stores(n: usize) -> (Cachescope, SeedPipeline) {
    let ours = MemoryPipelineStore::new(MemoryStoreConfig {
        shards: MemoryStoreConfig::DEFAULT_SHARDS,
        max_entries_per_shard: (n / MemoryStoreConfig::DEFAULT_SHARDS) as u64,
        max_bytes_per_shard: 1 << 30,
    })
    .expect("valid config");
    let seed = InMemoryPipelineCache::with_limits(n / 256, 1 << 30);
    (Cachescope(ours), SeedPipeline(seed))
}

fn bench_pipeline_store<S: PipelineStore>(c: &mut Criterion, name: &str, n: usize, store: S) {
    // Prefill with n pipelines. Shards fill unevenly, so a few of them were
    // already evicted: the hit stream is Zipf-like over those still resident.
    for i in 0..n as u64 {
        store.store(&pipeline_digest(i));
    }
    let resident: Vec<[u8; 32]> = (0..n as u64).map(pipeline_digest).filter(|d| store.lookup(d)).collect();
    let hit_keys: Vec<[u8; 32]> =
        zipf_ranks(resident.len(), POPULAR_STREAM_LEN / 4, 3).into_iter().map(|r| resident[r]).collect();
    let miss_keys: Vec<[u8; 32]> = (n as u64..5 * n as u64).map(pipeline_digest).collect();
    for (group, keys) in [("pipeline/hit", hit_keys), ("pipeline/miss", miss_keys)] {
        let mut stream = Cursor::new(keys);
        let hits = (0..PROBE_LEN).filter(|_| store.request(stream.next_item())).count();
        report_probe(
            &format!("{group}/{name}/{n}"),
            &format!(
                "{} of {n} prefilled resident; hit ratio {:.4} over {PROBE_LEN} requests",
                resident.len(),
                hits as f64 / PROBE_LEN as f64
            ),
        );
        c.bench_with_input(BenchmarkId::new(format!("{group}/{name}"), n), &n, |b, _| {
            b.iter(|| black_box(store.request(stream.next_item())))
        });
    }
}

fn pipeline_benches(c: &mut Criterion) {
    for n in SIZES {
        let (ours, seed) = pipeline_stores(n);
        bench_pipeline_store(c, "cachescope", n, ours);
        bench_pipeline_store(c, "vyre-runtime-0.7.2", n, seed);
    }
}

// ---------------------------------------------------------------------------
// hints/record_present, hints/record_evict
// ---------------------------------------------------------------------------

/// The name of region `i`, as a backend would label a kernel generator.
fn region_name(i: u64) -> String {
    format!("vyre::region::{:016x}", key_of(i))
}

/// A hints table under test.
trait HintsTable {
    fn record(&self, region: &str, kernel_ns: u64, bytes: u64);
}

impl HintsTable for HotPathHints {
    #[inline]
    fn record(&self, region: &str, kernel_ns: u64, bytes: u64) {
        HotPathHints::record(self, region, kernel_ns, bytes)
    }
}

impl HintsTable for SeedHints {
    #[inline]
    fn record(&self, region: &str, kernel_ns: u64, bytes: u64) {
        SeedHints::record(self, region, kernel_ns, bytes)
    }
}

/// `record_present`: Zipf-like over the `n` regions held (each record
/// accumulates into an existing region). `record_evict`: a cycle of `4n`
/// regions never held, so each record inserts one and evicts the least
/// recently recorded.
fn bench_hints<H: HintsTable>(c: &mut Criterion, name: &str, n: usize, table: H, len: impl Fn(&H) -> usize) {
    let present: Vec<String> = (0..n as u64).map(region_name).collect();
    for r in &present {
        table.record(r, 1_000, 4096);
    }
    assert_eq!(len(&table), n, "{name}: prefill must fill the table exactly");
    let present_stream: Vec<u32> = zipf_ranks(n, POPULAR_STREAM_LEN, 4).into_iter().map(|r| r as u32).collect();
    let fresh: Vec<String> = (n as u64..5 * n as u64).map(region_name).collect();
    let fresh_stream: Vec<u32> = (0..fresh.len() as u32).collect();
    for (group, names, order) in
        [("hints/record_present", &present, present_stream), ("hints/record_evict", &fresh, fresh_stream)]
    {
        let mut stream = Cursor::new(order);
        let mut ns = 0u64;
        c.bench_with_input(BenchmarkId::new(format!("{group}/{name}"), n), &n, |b, _| {
            b.iter(|| {
                ns = ns.wrapping_add(1);
                table.record(&names[*stream.next_item() as usize], 1_000 + (ns & 1023), 4096)
            })
        });
        assert_eq!(len(&table), n, "{name}: the table stays full");
    }
}

fn hints_benches(c: &mut Criterion) {
    for n in SIZES {
        bench_hints(c, "cachescope", n, HotPathHints::with_capacity(n), HotPathHints::len);
        bench_hints(c, "vyre-foundation-0.7.2", n, SeedHints::with_capacity(n), SeedHints::len);
    }
}

criterion_group! {
    name = benches;
    config = config();
    targets = cache_benches, tiered_benches, pipeline_benches, hints_benches
}
criterion_main!(benches);
