//! `tiered/access` for the seed `vyre-wgpu` 0.1.0 `TieredCache`: the same
//! tiers, sizes and key stream as `tiered/access/cachescope` in
//! `core/benches/hot_paths.rs` (the stream comes from the same file, and both
//! print its checksum).
//!
//! The seed's model differs; the op is the nearest equivalent:
//! * Promotion: `LruPolicy::new(1)`, so `record_access` then `promote`
//!   moves any accessed host buffer to the device tier (cachescope's
//!   `PromotionRule::OnAccess`).
//! * Eviction from the device tier *drops* the buffer (the seed does not
//!   demote), so a later access to it must re-insert it into the host tier:
//!   the op does `get` (a tier scan), `insert` if absent, `record_access`,
//!   `promote`, which is what a runtime using the seed would do.
//! * Its recency tracker holds at most 65,536 keys; at 100k buffers the
//!   coldest tracked keys are forgotten (and then never chosen as LRU
//!   victims while others are tracked).

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use vyre_wgpu::runtime::cache::{CacheTier, LruPolicy, TieredCache};

#[allow(dead_code)]
#[path = "../../../core/benches/workload/mod.rs"]
mod workload;
use workload::{Cursor, POPULAR_STREAM_LEN, resident_keys, zipf_keys};

const SIZES: [usize; 2] = [10_000, 100_000];
const PROBE_LEN: usize = 20_000;
const BUFFER_BYTES: u64 = 4096;

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500))
}

fn seed_cache(n: usize) -> TieredCache<LruPolicy> {
    TieredCache::with_policy(
        vec![CacheTier::new("host", n as u64 * BUFFER_BYTES), CacheTier::new("device", (n / 10) as u64 * BUFFER_BYTES)],
        LruPolicy::new(1),
    )
}

/// One access; returns (was in the device tier, had to be re-inserted).
#[inline]
fn access(cache: &mut TieredCache<LruPolicy>, key: u64) -> (bool, bool) {
    let (in_device, reinsert) = match cache.get(key) {
        Some(e) => (e.tier == 1, false),
        None => (false, true),
    };
    if reinsert {
        cache.insert(key, BUFFER_BYTES).expect("a buffer fits the host tier");
    }
    cache.record_access(key);
    // KeyNotFound when the tracker forgot the key (more than 65,536 keys):
    // the buffer then stays where it is, as it would for a runtime.
    let _ = cache.promote(key);
    (in_device, reinsert)
}

fn tiered_benches(c: &mut Criterion) {
    for n in SIZES {
        let keys = zipf_keys(n, POPULAR_STREAM_LEN, 2);
        let mut cache = seed_cache(n);
        for k in resident_keys(n) {
            cache.insert(k, BUFFER_BYTES).expect("fits");
        }
        let mut stream = Cursor::new(keys);
        for _ in 0..2 * n {
            access(&mut cache, *stream.next_item());
        }
        let (mut device_hits, mut reinserts) = (0u64, 0u64);
        for _ in 0..PROBE_LEN {
            let (hit, re) = access(&mut cache, *stream.next_item());
            device_hits += u64::from(hit);
            reinserts += u64::from(re);
        }
        eprintln!(
            "probe tiered/access/vyre-wgpu-0.1.0/{n}: device-tier hits {:.4}, re-inserts (dropped earlier) {:.4} over {PROBE_LEN} accesses (stream checksum {:#x})",
            device_hits as f64 / PROBE_LEN as f64,
            reinserts as f64 / PROBE_LEN as f64,
            workload::checksum(stream.items()),
        );
        c.bench_with_input(BenchmarkId::new("tiered/access/vyre-wgpu-0.1.0", n), &n, |b, _| {
            b.iter(|| black_box(access(&mut cache, *stream.next_item())))
        });
    }
}

criterion_group! {
    name = benches;
    config = config();
    targets = tiered_benches
}
criterion_main!(benches);
