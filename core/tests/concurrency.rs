//! Stress tests of the shared structures under concurrent readers and
//! writers, with invariant checks while they run and after:
//!
//! * the sharded memory pipeline store: mixed get / put / remove /
//!   invalidate on a small budget (constant eviction), a checker thread
//!   calling `check_invariants` throughout, every blob read checked against
//!   its key, the listener's reports equal to the counters;
//! * a shard poisoned in the middle of that traffic: it fails closed (an
//!   error, never data) while the other shards keep serving, and recovers
//!   cold;
//! * `HotPathHints`: concurrent records and queries, the capacity never
//!   exceeded, no lost update, counters that add up.
//!
//! Deterministic op sequences (seeded per thread); the interleaving is the
//! scheduler's, which is the point. Bounded: fixed op counts.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use cachescope_core::Error;
use cachescope_core::hints::HotPathHints;
use cachescope_core::pipeline::{
    MemoryPipelineStore, MemoryStoreConfig, PipelineCacheKey, PipelineCacheStore, PipelineFeatureFlags,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const SEED: u64 = 0xc0c0_2026;

fn key(n: u32) -> PipelineCacheKey {
    let flags = if n.is_multiple_of(3) { PipelineFeatureFlags::F16 } else { PipelineFeatureFlags::empty() };
    let mut shader = [0u8; 32];
    shader[..4].copy_from_slice(&n.to_le_bytes());
    PipelineCacheKey::new(shader, [1; 32], 0, [64, 1, 1], flags, "vulkan")
}

/// Self-describing payload: the key, then a fill derived from key and
/// writer, so a blob served for the wrong key or torn shows.
fn blob(k: u32, writer: u32, len: usize) -> Arc<[u8]> {
    let mut v = k.to_le_bytes().to_vec();
    v.extend_from_slice(&writer.to_le_bytes());
    v.resize(8 + len, (k as u8) ^ (writer as u8).wrapping_mul(13));
    v.into()
}

fn check_blob(k: u32, b: &[u8]) {
    assert!(b.len() >= 8, "key {k}: {} bytes", b.len());
    let bk = u32::from_le_bytes(b[..4].try_into().unwrap());
    let w = u32::from_le_bytes(b[4..8].try_into().unwrap());
    assert_eq!(bk, k, "key {k} served key {bk}'s blob");
    let fill = (k as u8) ^ (w as u8).wrapping_mul(13);
    assert!(b[8..].iter().all(|&x| x == fill), "key {k}: torn blob");
}

#[test]
fn memory_store_under_concurrent_readers_and_writers_keeps_invariants() {
    let reported = Arc::new(AtomicU64::new(0));
    let r2 = Arc::clone(&reported);
    let store =
        MemoryPipelineStore::new(MemoryStoreConfig { shards: 8, max_entries_per_shard: 6, max_bytes_per_shard: 4096 })
            .unwrap()
            .with_listener(move |ev| {
                r2.fetch_add(ev.entries, Ordering::Relaxed);
            });
    let done = AtomicBool::new(false);
    let checks = AtomicU64::new(0);
    let threads = 6u32;
    let ops = 20_000u32;
    std::thread::scope(|s| {
        let mut writers = Vec::new();
        for t in 0..threads {
            let store = &store;
            writers.push(s.spawn(move || {
                let mut rng = ChaCha8Rng::seed_from_u64(SEED ^ u64::from(t));
                for _ in 0..ops {
                    let k = rng.random_range(0..200u32);
                    match rng.random_range(0..100) {
                        0..=39 => {
                            let len = rng.random_range(0..700);
                            store.put(&key(k), blob(k, t, len)).unwrap();
                        }
                        40..=44 => {
                            store.remove(&key(k)).unwrap();
                        }
                        45 => {
                            store.invalidate(PipelineFeatureFlags::F16).unwrap();
                        }
                        _ => {
                            if let Some(b) = store.get(&key(k)).unwrap() {
                                check_blob(k, &b);
                            }
                        }
                    }
                }
            }));
        }
        let (store, done, checks) = (&store, &done, &checks);
        s.spawn(move || {
            // Checks while the writers run, a bounded number of times.
            for _ in 0..2_000 {
                if done.load(Ordering::Relaxed) {
                    break;
                }
                store.check_invariants().unwrap();
                let st = store.stats();
                assert!(st.resident_entries.unwrap() <= 8 * 6 && st.resident_bytes.unwrap() <= 8 * 4096);
                checks.fetch_add(1, Ordering::Relaxed);
            }
        });
        for w in writers {
            w.join().unwrap();
        }
        done.store(true, Ordering::Relaxed);
    });
    store.check_invariants().unwrap();
    let st = store.stats();
    assert_eq!(st.lookups, st.hits + st.misses);
    assert_eq!(reported.load(Ordering::Relaxed), st.evictions, "the listener saw every departure the counters count");
    assert!(st.removals + st.invalidations + st.corrupt <= st.evictions);
    let resident = (0..200).filter(|&k| store.contains(&key(k)).unwrap()).count() as u64;
    assert_eq!(st.resident_entries, Some(resident));
    assert_eq!(st.resident_entries, Some(store.len()));
    assert!(checks.load(Ordering::Relaxed) > 0);
    let capacity_evictions = st.evictions - st.removals - st.invalidations;
    assert!(capacity_evictions > 1000, "the budget forced evictions ({capacity_evictions})");
}

#[test]
fn a_shard_poisoned_under_load_fails_closed_and_recovers() {
    let store = MemoryPipelineStore::new(MemoryStoreConfig {
        shards: 4,
        max_entries_per_shard: 64,
        max_bytes_per_shard: 1 << 20,
    })
    .unwrap();
    let victim = 2usize;
    let poisoned = AtomicBool::new(false);
    let (errors, served_after) = (AtomicU64::new(0), AtomicU64::new(0));
    std::thread::scope(|s| {
        for t in 0..4u32 {
            let (store, poisoned, errors, served_after) = (&store, &poisoned, &errors, &served_after);
            s.spawn(move || {
                let mut rng = ChaCha8Rng::seed_from_u64(SEED ^ 0x9 ^ u64::from(t));
                for i in 0..20_000u32 {
                    if t == 0 && i == 5_000 {
                        store.poison_shard_for_tests(victim);
                        poisoned.store(true, Ordering::SeqCst);
                    }
                    let k = rng.random_range(0..128u32);
                    let was_poisoned = poisoned.load(Ordering::SeqCst);
                    let on_victim = store.shard_of(&key(k)) == victim;
                    let result = if i.is_multiple_of(3) {
                        store.put(&key(k), blob(k, t, 32)).map(|_| None)
                    } else {
                        store.get(&key(k))
                    };
                    match result {
                        Ok(found) => {
                            assert!(!(was_poisoned && on_victim), "a poisoned shard answered");
                            if let Some(b) = found {
                                check_blob(k, &b);
                            }
                            if was_poisoned {
                                served_after.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Err(Error::PoisonedShard { shard }) => {
                            assert_eq!(shard, victim);
                            assert!(on_victim);
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
            });
        }
    });
    assert!(errors.load(Ordering::Relaxed) > 100, "the poisoned shard was hit and failed closed");
    assert!(served_after.load(Ordering::Relaxed) > 1000, "the other shards kept serving");
    store.check_invariants().unwrap();
    assert_eq!(store.recover_poisoned_shards(), 1);
    for k in (0..128).filter(|&k| store.shard_of(&key(k)) == victim) {
        assert_eq!(store.get(&key(k)).unwrap(), None, "recovered cold");
    }
    store.put(&key(1), blob(1, 9, 10)).unwrap();
    store.check_invariants().unwrap();
}

#[test]
fn hints_under_concurrent_records_and_queries() {
    // Capacity above the region count: no eviction, so no update may be lost.
    let exact = HotPathHints::with_capacity(64);
    // Capacity below it: constant eviction, the bound must hold throughout.
    let small = HotPathHints::with_capacity(10);
    let names: Vec<String> = (0..40).map(|i| format!("region-{i}")).collect();
    let per_thread = 10_000u64;
    let threads = 4u64;
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let mut writers = Vec::new();
        for t in 0..threads {
            let (exact, small, names) = (&exact, &small, &names);
            writers.push(s.spawn(move || {
                let mut rng = ChaCha8Rng::seed_from_u64(SEED ^ 0x41 ^ t);
                let mut counts = vec![0u64; names.len()];
                for _ in 0..per_thread {
                    let r = rng.random_range(0..names.len());
                    counts[r] += 1;
                    exact.record(&names[r], 100 + r as u64, 10);
                    small.record(&names[r], 100 + r as u64, 10);
                }
                counts
            }));
        }
        let (exact, small, names, stop) = (&exact, &small, &names, &stop);
        let reader = s.spawn(move || {
            let mut rounds = 0u64;
            while !stop.load(Ordering::Relaxed) && rounds < 100_000 {
                assert!(small.len() <= 10, "the table holds more than its capacity");
                for (name, rec) in small.hottest(5) {
                    assert!(names.contains(&name));
                    assert!(rec.dispatch_count > 0 && rec.kernel_ns_max <= 140);
                }
                if let Some(r) = exact.get(&names[(rounds % 40) as usize]) {
                    assert_eq!(r.kernel_ns_total, r.dispatch_count * (100 + rounds % 40), "a torn record");
                }
                let _ = small.is_hot(&names[0]);
                rounds += 1;
            }
            rounds
        });
        let mut totals = vec![0u64; names.len()];
        for w in writers {
            for (i, c) in w.join().unwrap().into_iter().enumerate() {
                totals[i] += c;
            }
        }
        stop.store(true, Ordering::Relaxed);
        assert!(reader.join().unwrap() > 0);
        for (i, name) in names.iter().enumerate() {
            let r = exact.get(name).unwrap();
            assert_eq!(r.dispatch_count, totals[i], "{name}: lost updates");
            assert_eq!(r.kernel_ns_total, totals[i] * (100 + i as u64));
            assert_eq!(r.bytes_total, totals[i] * 10);
        }
    });
    for h in [&exact, &small] {
        let st = h.stats();
        assert_eq!(st.requests, threads * per_thread);
        assert_eq!(st.hits + st.misses, st.requests);
        assert_eq!(st.insertions - st.evictions, h.len() as u64, "resident = inserted - evicted");
        assert_eq!(st.resident_entries, h.len() as u64);
        assert_eq!(st.rejections, 0);
    }
    assert_eq!(exact.len(), 40);
    assert_eq!(small.len(), 10);
}
