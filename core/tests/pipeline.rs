//! Integration tests of the compiled-pipeline caches: the seed test cases
//! (LRU order, budgets, eviction reports, poisoning, key identity), a model
//! check of the memory store, and the disk store's crash and corruption
//! behaviour. Deterministic: fixed seeds, no sleeps. Module names contain
//! `pipeline` so that `cargo test pipeline` selects every test here.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use cachescope_core::Error;
use cachescope_core::pipeline::{
    BudgetLimit, DiskPipelineStore, DiskStoreConfig, MemoryPipelineStore, MemoryStoreConfig, PipelineCacheKey,
    PipelineCacheStore, PipelineEviction, PipelineFeatureFlags, PutOutcome, RejectReason,
};
use cachescope_core::stats::EvictionReason;
use proptest::prelude::*;

// ---------------------------------------------------------------- helpers

fn key_with(n: u32, flags: PipelineFeatureFlags) -> PipelineCacheKey {
    let mut shader = [0u8; 32];
    shader[..4].copy_from_slice(&n.to_le_bytes());
    PipelineCacheKey::new(shader, [7; 32], 16, [64, 1, 1], flags, "vulkan")
}

fn key(n: u32) -> PipelineCacheKey {
    key_with(n, PipelineFeatureFlags::empty())
}

fn blob(fill: u8, len: usize) -> Arc<[u8]> {
    vec![fill; len].into()
}

fn memory(shards: usize, entries: u64, bytes: u64) -> MemoryPipelineStore {
    MemoryPipelineStore::new(MemoryStoreConfig { shards, max_entries_per_shard: entries, max_bytes_per_shard: bytes })
        .expect("valid config")
}

fn got(store: &dyn PipelineCacheStore, k: &PipelineCacheKey) -> Option<Vec<u8>> {
    store.get(k).expect("store failure").map(|b| b.to_vec())
}

/// The first `n` keys with `flags` that land in `shard` of `store`.
fn keys_in_shard_with(
    store: &MemoryPipelineStore,
    shard: usize,
    n: usize,
    flags: PipelineFeatureFlags,
) -> Vec<PipelineCacheKey> {
    (0u32..).map(|i| key_with(i, flags)).filter(|k| store.shard_of(k) == shard).take(n).collect()
}

fn keys_in_shard(store: &MemoryPipelineStore, shard: usize, n: usize) -> Vec<PipelineCacheKey> {
    keys_in_shard_with(store, shard, n, PipelineFeatureFlags::empty())
}

fn disk(dir: &Path) -> DiskPipelineStore {
    DiskPipelineStore::open(dir, DiskStoreConfig::default()).expect("open disk store")
}

fn blob_files(root: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    for shard in fs::read_dir(root).unwrap() {
        let shard = shard.unwrap().path();
        if shard.is_dir() {
            for f in fs::read_dir(&shard).unwrap() {
                out.insert(f.unwrap().path());
            }
        }
    }
    out
}

/// Key identity.
mod pipeline_key {
    use super::*;

    #[test]
    fn every_key_field_changes_the_digest() {
        let base = PipelineCacheKey::new([1; 32], [2; 32], 16, [64, 1, 1], PipelineFeatureFlags::F16, "vulkan");
        type Mutation = (&'static str, fn(&mut PipelineCacheKey));
        let mutations: [Mutation; 10] = [
            ("version", |k| k.version += 1),
            ("shader_hash", |k| k.shader_hash[31] ^= 1),
            ("bind_group_layout_hash", |k| k.bind_group_layout_hash[0] ^= 1),
            ("push_constant_size", |k| k.push_constant_size = 32),
            ("workgroup_size.x", |k| k.workgroup_size[0] = 128),
            ("workgroup_size.y", |k| k.workgroup_size[1] = 2),
            ("workgroup_size.z", |k| k.workgroup_size[2] = 2),
            ("feature_flags", |k| k.feature_flags |= PipelineFeatureFlags::SUBGROUP_OPS),
            ("reserved feature bit", |k| k.feature_flags |= PipelineFeatureFlags::from_bits(1 << 31)),
            ("backend_id", |k| k.backend_id = "metal".into()),
        ];
        let mut seen = BTreeSet::from([base.digest()]);
        for (field, mutate) in mutations {
            let mut k = base.clone();
            mutate(&mut k);
            assert!(seen.insert(k.digest()), "changing {field} did not change the digest");
        }
        // Fields that swap values between each other must not collide either.
        let mut swapped = base.clone();
        (swapped.shader_hash, swapped.bind_group_layout_hash) = (base.bind_group_layout_hash, base.shader_hash);
        assert_ne!(swapped.digest(), base.digest());
        let mut wg = base.clone();
        wg.workgroup_size = [1, 64, 1];
        assert_ne!(wg.digest(), base.digest());
    }

    #[test]
    fn new_stamps_the_current_version() {
        assert_eq!(key(0).version, PipelineCacheKey::CURRENT_VERSION);
    }
}

/// The sharded in-memory store.
mod pipeline_memory {
    use super::*;

    #[test]
    fn memory_roundtrip_shares_the_blob() {
        let s = memory(4, 8, 1 << 10);
        assert_eq!(got(&s, &key(1)), None);
        let b = blob(9, 12);
        assert_eq!(s.put(&key(1), Arc::clone(&b)).unwrap(), PutOutcome::Stored { evicted: None });
        let hit = s.get(&key(1)).unwrap().unwrap();
        assert!(Arc::ptr_eq(&hit, &b), "a hit hands out the stored Arc, no copy");
        assert_eq!((s.len(), s.resident_bytes()), (1, 12));
    }

    #[test]
    fn memory_evicts_the_least_recently_used() {
        let s = memory(1, 2, 1 << 10);
        let (a, b, c) = (key(1), key(2), key(3));
        s.put(&a, blob(1, 1)).unwrap();
        s.put(&b, blob(2, 1)).unwrap();
        assert!(got(&s, &a).is_some(), "touch a: b is now least recent");
        let out = s.put(&c, blob(3, 1)).unwrap();
        let ev = out.eviction().expect("an eviction");
        assert_eq!(
            (ev.reason, ev.limit, ev.entries, ev.bytes),
            (EvictionReason::Capacity, Some(BudgetLimit::Entries), 1, 1)
        );
        assert_eq!(got(&s, &a), Some(vec![1]));
        assert_eq!(got(&s, &b), None);
        assert_eq!(got(&s, &c), Some(vec![3]));
        assert_eq!(s.lru_order(0).unwrap(), vec![c.digest(), a.digest()]);
        s.check_invariants().unwrap();
    }

    #[test]
    fn memory_enforces_the_byte_budget() {
        let s = memory(1, 8, 10);
        s.put(&key(1), blob(1, 6)).unwrap();
        let out = s.put(&key(2), blob(2, 6)).unwrap();
        let ev = out.eviction().unwrap();
        assert_eq!((ev.limit, ev.entries, ev.bytes), (Some(BudgetLimit::Bytes), 1, 6));
        assert_eq!(got(&s, &key(1)), None);
        assert_eq!(got(&s, &key(2)), Some(vec![2; 6]));
        assert_eq!(s.resident_bytes(), 6);

        // One big put can evict several small entries: one report for all.
        s.put(&key(3), blob(3, 2)).unwrap();
        s.put(&key(4), blob(4, 2)).unwrap();
        let out = s.put(&key(5), blob(5, 9)).unwrap();
        let ev = out.eviction().unwrap();
        assert_eq!((ev.entries, ev.bytes), (3, 10));
        assert_eq!((s.len(), s.resident_bytes()), (1, 9));
        s.check_invariants().unwrap();
    }

    #[test]
    fn memory_caps_every_shard() {
        // The seed's test: far more keys than the store holds.
        let s = memory(8, 16, 1 << 20);
        for i in 0..1000 {
            s.put(&key(i), blob(1, 1)).unwrap();
        }
        assert_eq!(s.len(), 8 * 16, "every shard full, none over");
        assert_eq!(s.stats().capacity_evictions(), 1000 - 8 * 16);
        s.check_invariants().unwrap();
    }

    #[test]
    fn memory_reports_both_budgets_when_both_are_exceeded() {
        let s = memory(1, 1, 4);
        s.put(&key(1), blob(1, 3)).unwrap();
        let ev = s.put(&key(2), blob(2, 3)).unwrap().eviction().unwrap();
        assert_eq!(ev.limit, Some(BudgetLimit::EntriesAndBytes));
    }

    #[test]
    fn memory_oversize_put_is_rejected_and_reported() {
        let s = memory(1, 8, 10);
        s.put(&key(2), blob(2, 6)).unwrap();
        let out = s.put(&key(3), blob(3, 11)).unwrap();
        assert_eq!(
            out,
            PutOutcome::Rejected { reason: RejectReason::TooLarge { size_bytes: 11, limit_bytes: 10 }, removed: None }
        );
        assert_eq!(got(&s, &key(3)), None);
        assert_eq!(got(&s, &key(2)), Some(vec![2; 6]), "a rejected put evicts nothing else");
        assert_eq!(s.stats().rejected_puts, 1);
        assert_eq!(s.resident_bytes(), 6);
    }

    #[test]
    fn memory_zero_budget_disables_the_store() {
        for (entries, bytes) in [(0, 1 << 20), (64, 0), (0, 0)] {
            let s = memory(4, entries, bytes);
            for i in 0..10 {
                let out = s.put(&key(i), blob(1, 1)).unwrap();
                assert_eq!(out.rejection(), Some(RejectReason::Disabled), "({entries}, {bytes})");
                assert_eq!(got(&s, &key(i)), None);
            }
            let st = s.stats();
            assert_eq!((st.lookups, st.misses, st.puts, st.rejected_puts), (10, 10, 0, 10));
            assert_eq!((st.resident_entries, st.resident_bytes), (Some(0), Some(0)));
            assert!(s.is_empty());
        }
    }

    #[test]
    fn memory_stats_track_hits_misses_and_evictions() {
        // The seed's metrics test, with its figures.
        let s = memory(1, 1, 8);
        assert_eq!(got(&s, &key(1)), None);
        s.put(&key(1), blob(1, 4)).unwrap();
        assert!(got(&s, &key(1)).is_some());
        s.put(&key(2), blob(2, 4)).unwrap();
        let st = s.stats();
        assert_eq!((st.lookups, st.hits, st.misses, st.puts), (2, 1, 1, 2));
        assert_eq!((st.evictions, st.evicted_bytes, st.capacity_evictions()), (1, 4, 1));
        assert_eq!((st.resident_entries, st.resident_bytes), (Some(1), Some(4)));
        assert_eq!(st.hit_ratio(), 0.5);
        let cs = st.as_cache_stats();
        assert_eq!((cs.requests, cs.hits, cs.insertions, cs.evictions, cs.resident_bytes), (2, 1, 2, 1, 4));
        let json = serde_json::to_string(&st).unwrap();
        assert_eq!(serde_json::from_str::<cachescope_core::pipeline::PipelineCacheStats>(&json).unwrap(), st);
    }

    #[test]
    fn memory_eviction_age_is_time_since_insertion() {
        let reports = Arc::new(Mutex::new(Vec::<PipelineEviction>::new()));
        let sink = Arc::clone(&reports);
        let s = memory(1, 1, 8).with_listener(move |ev| sink.lock().unwrap().push(*ev));
        let before = Instant::now();
        s.put(&key(1), blob(1, 4)).unwrap();
        let ev = s.put(&key(2), blob(2, 4)).unwrap().eviction().unwrap();
        assert!(ev.age <= before.elapsed(), "age {:?} longer than the test", ev.age);
        assert_eq!(*reports.lock().unwrap(), vec![ev], "listener saw the same report");
    }

    #[test]
    fn memory_poisoned_shard_fails_closed_and_others_keep_working() {
        let s = memory(4, 8, 1 << 10);
        let in0 = keys_in_shard(&s, 0, 2);
        let in1 = keys_in_shard(&s, 1, 1);
        s.put(&in0[0], blob(1, 4)).unwrap();
        s.put(&in1[0], blob(2, 4)).unwrap();

        s.poison_shard_for_tests(0);

        assert!(matches!(s.get(&in0[0]), Err(Error::PoisonedShard { shard: 0 })), "never served");
        assert!(matches!(s.put(&in0[1], blob(3, 1)), Err(Error::PoisonedShard { shard: 0 })));
        assert!(matches!(s.remove(&in0[0]), Err(Error::PoisonedShard { shard: 0 })));
        assert!(matches!(s.contains(&in0[0]), Err(Error::PoisonedShard { shard: 0 })));
        assert!(matches!(s.lru_order(0), Err(Error::PoisonedShard { shard: 0 })));
        let msg = s.get(&in0[0]).unwrap_err().to_string();
        assert!(msg.contains("shard 0") && msg.contains("poisoned"), "{msg}");

        assert_eq!(got(&s, &in1[0]), Some(vec![2; 4]), "shard 1 unaffected");
        s.put(&in1[0], blob(5, 2)).unwrap();
        // Invalidation does the healthy shards, then reports the poisoned one.
        let flagged = keys_in_shard_with(&s, 2, 1, PipelineFeatureFlags::F16).remove(0);
        s.put(&flagged, blob(6, 1)).unwrap();
        let res = s.invalidate(PipelineFeatureFlags::F16);
        assert!(matches!(res, Err(Error::PoisonedShard { shard: 0 })));
        assert_eq!(got(&s, &flagged), None, "healthy shards were invalidated");
        assert_eq!(s.stats().invalidations, 1);
        s.check_invariants().unwrap();
    }

    #[test]
    fn memory_shard_choice_is_stable_and_spread() {
        let s = memory(8, 8, 1 << 10);
        let mut counts = [0u32; 8];
        for i in 0..800 {
            let k = key(i);
            assert_eq!(s.shard_of(&k), s.shard_of(&k.clone()));
            counts[s.shard_of(&k)] += 1;
        }
        assert!(counts.iter().all(|&c| c > 50), "uneven spread {counts:?}");
    }

    #[test]
    fn memory_invalidate_by_mask() {
        let s = memory(4, 16, 1 << 10);
        let f16 = key_with(1, PipelineFeatureFlags::F16);
        let sub = key_with(2, PipelineFeatureFlags::SUBGROUP_OPS);
        let both = key_with(3, PipelineFeatureFlags::F16 | PipelineFeatureFlags::TENSOR_CORES);
        let none = key_with(4, PipelineFeatureFlags::empty());
        for (i, k) in [&f16, &sub, &both, &none].into_iter().enumerate() {
            s.put(k, blob(i as u8, 10)).unwrap();
        }
        assert_eq!(s.invalidate(PipelineFeatureFlags::empty()).unwrap().entries, 0);
        let ev = s.invalidate(PipelineFeatureFlags::F16 | PipelineFeatureFlags::BF16).unwrap();
        assert_eq!((ev.reason, ev.entries, ev.bytes), (EvictionReason::Invalidated, 2, 20));
        assert_eq!((got(&s, &f16), got(&s, &both)), (None, None));
        assert!(got(&s, &sub).is_some() && got(&s, &none).is_some());
        assert_eq!(s.invalidate(PipelineFeatureFlags::ALL).unwrap().entries, 1, "flagless keys never match");
        assert_eq!(s.stats().invalidations, 3);
        s.check_invariants().unwrap();
    }

    #[test]
    fn memory_concurrent_use_keeps_invariants() {
        let s = memory(4, 16, 256);
        std::thread::scope(|scope| {
            for t in 0..4u32 {
                let s = &s;
                scope.spawn(move || {
                    for i in 0..500u32 {
                        let k = key((i * 7 + t) % 97);
                        if i % 3 == 0 {
                            s.put(&k, blob((k.shader_hash[0]) ^ 0x5a, (i % 40) as usize)).unwrap();
                        } else if let Some(b) = s.get(&k).unwrap() {
                            assert!(b.iter().all(|&x| x == k.shader_hash[0] ^ 0x5a), "a key served another key's blob");
                        }
                    }
                });
            }
        });
        s.check_invariants().unwrap();
        let st = s.stats();
        assert_eq!(st.lookups, st.hits + st.misses);
        assert_eq!(st.puts + st.rejected_puts, 4 * 167);
    }
}

/// The memory store against a Vec-based LRU model.
mod pipeline_memory_model {
    use super::*;

    /// The reference: a Vec-based LRU with the same budgets and rules, front =
    /// most recent. Obviously right, O(n), single shard.
    #[derive(Default)]
    struct ModelLru {
        entries: Vec<(u32, Vec<u8>)>,
        max_entries: usize,
        max_bytes: usize,
    }

    impl ModelLru {
        fn bytes(&self) -> usize {
            self.entries.iter().map(|(_, v)| v.len()).sum()
        }

        fn get(&mut self, k: u32) -> Option<Vec<u8>> {
            let i = self.entries.iter().position(|(key, _)| *key == k)?;
            let e = self.entries.remove(i);
            self.entries.insert(0, e.clone());
            Some(e.1)
        }

        /// Returns (stored, evicted count, evicted bytes).
        fn put(&mut self, k: u32, v: Vec<u8>) -> (bool, usize, usize) {
            self.entries.retain(|(key, _)| *key != k);
            if self.max_entries == 0 || self.max_bytes == 0 || v.len() > self.max_bytes {
                return (false, 0, 0);
            }
            let (mut n, mut b) = (0, 0);
            while self.entries.len() + 1 > self.max_entries || self.bytes() + v.len() > self.max_bytes {
                let (_, old) = self.entries.pop().expect("room can always be made");
                n += 1;
                b += old.len();
            }
            self.entries.insert(0, (k, v));
            (true, n, b)
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Get(u32),
        Put(u32, u8, usize),
        Remove(u32),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u32..10).prop_map(Op::Get),
            4 => (0u32..10, any::<u8>(), 0usize..40).prop_map(|(k, f, n)| Op::Put(k, f, n)),
            1 => (0u32..10).prop_map(Op::Remove),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 300,
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x919e),
            ..ProptestConfig::default()
        })]

        #[test]
        fn memory_store_matches_a_vec_lru(
            max_entries in 0u64..6,
            max_bytes in 0u64..80,
            ops in proptest::collection::vec(op(), 1..200),
        ) {
            let s = memory(1, max_entries, max_bytes);
            let mut m = ModelLru { max_entries: max_entries as usize, max_bytes: max_bytes as usize, ..ModelLru::default() };
            let (mut evictions, mut evicted_bytes) = (0u64, 0u64);
            for op in ops {
                match op {
                    Op::Get(k) => prop_assert_eq!(got(&s, &key(k)), m.get(k), "get {}", k),
                    Op::Put(k, fill, n) => {
                        let v = vec![fill; n];
                        let out = s.put(&key(k), v.clone().into()).unwrap();
                        let (stored, n_ev, b_ev) = m.put(k, v);
                        prop_assert_eq!(out.is_stored(), stored);
                        if stored {
                            let ev = out.eviction();
                            prop_assert_eq!(ev.map_or(0, |e| e.entries), n_ev as u64);
                            prop_assert_eq!(ev.map_or(0, |e| e.bytes), b_ev as u64);
                            evictions += n_ev as u64;
                            evicted_bytes += b_ev as u64;
                        } else if let Some(ev) = out.eviction() {
                            evictions += ev.entries;
                            evicted_bytes += ev.bytes;
                        }
                    }
                    Op::Remove(k) => {
                        let had = m.entries.iter().position(|(key, _)| *key == k).map(|i| m.entries.remove(i));
                        let ev = s.remove(&key(k)).unwrap();
                        prop_assert_eq!(ev.map(|e| e.bytes), had.as_ref().map(|(_, v)| v.len() as u64));
                        if let Some(e) = ev {
                            evictions += 1;
                            evicted_bytes += e.bytes;
                        }
                    }
                }
                let order: Vec<_> = m.entries.iter().map(|(k, _)| key(*k).digest()).collect();
                prop_assert_eq!(s.lru_order(0).unwrap(), order);
                prop_assert_eq!(s.resident_bytes(), m.bytes() as u64);
                s.check_invariants().map_err(TestCaseError::fail)?;
            }
            let st = s.stats();
            prop_assert_eq!((st.evictions, st.evicted_bytes), (evictions, evicted_bytes));
            prop_assert_eq!(st.lookups, st.hits + st.misses);
        }
    }
}

/// The persistent disk store.
mod pipeline_disk {
    use super::*;

    #[test]
    fn disk_roundtrip_and_layout() {
        let dir = tempfile::tempdir().unwrap();
        let s = disk(dir.path());
        assert_eq!(got(&s, &key(1)), None);
        assert!(s.put(&key(1), blob(7, 100)).unwrap().is_stored());
        assert_eq!(got(&s, &key(1)), Some(vec![7; 100]));
        let hex = key(1).digest().to_hex();
        let path = s.path_for(&key(1));
        assert_eq!(path, dir.path().join(&hex[..2]).join(format!("{hex}.bin")));
        assert!(path.is_file());
        assert_eq!((s.entries().unwrap(), s.total_bytes().unwrap()), (1, 100 + 88));
        // An empty blob is a valid blob.
        assert!(s.put(&key(2), blob(0, 0)).unwrap().is_stored());
        assert_eq!(got(&s, &key(2)), Some(vec![]));
        let st = s.stats();
        assert_eq!((st.lookups, st.hits, st.misses, st.puts), (3, 2, 1, 2));
        assert_eq!(st.resident_entries, None, "disk residency needs a scan");
    }

    #[test]
    fn disk_open_creates_a_missing_nested_root() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a").join("b").join("pipelines");
        let s = disk(&nested);
        s.put(&key(1), blob(1, 3)).unwrap();
        assert_eq!(got(&s, &key(1)), Some(vec![1; 3]));
        assert_eq!(s.root(), nested);
    }

    #[test]
    fn disk_reopen_persists() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = disk(dir.path());
            s.put(&key(1), Arc::from(&b"driver-pipeline-blob"[..])).unwrap();
            s.flush().unwrap();
        }
        let reopened = disk(dir.path());
        assert_eq!(got(&reopened, &key(1)), Some(b"driver-pipeline-blob".to_vec()));
        assert_eq!(reopened.entries().unwrap(), 1);
    }

    #[test]
    fn disk_overwrite_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let s = disk(dir.path());
        s.put(&key(1), Arc::from(&b"first"[..])).unwrap();
        s.put(&key(1), Arc::from(&b"second"[..])).unwrap();
        assert_eq!(got(&s, &key(1)), Some(b"second".to_vec()));
        assert_eq!(s.entries().unwrap(), 1);
    }

    #[test]
    fn disk_flipped_byte_anywhere_is_a_miss_and_the_file_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let corrupt_seen = Arc::new(Mutex::new(0u64));
        let sink = Arc::clone(&corrupt_seen);
        let s = disk(dir.path()).with_listener(move |ev| {
            if ev.reason == EvictionReason::Corrupt {
                *sink.lock().unwrap() += ev.entries;
            }
        });
        let len = 88 + 64;
        // Magic, version, flags, digest, length, checksum, first and last payload byte.
        let offsets = [0, 9, 13, 20, 50, 60, 88, len - 1];
        for (i, &at) in offsets.iter().enumerate() {
            s.put(&key(1), blob(3, 64)).unwrap();
            let path = s.path_for(&key(1));
            let mut bytes = fs::read(&path).unwrap();
            assert_eq!(bytes.len(), len);
            bytes[at] ^= 0x01;
            fs::write(&path, &bytes).unwrap();
            assert_eq!(got(&s, &key(1)), None, "flip at {at} was served");
            assert!(!path.exists(), "corrupt file at {at} not removed");
            assert_eq!(s.stats().corrupt, i as u64 + 1);
        }
        assert_eq!(*corrupt_seen.lock().unwrap(), offsets.len() as u64);
        s.put(&key(1), blob(3, 64)).unwrap();
        assert_eq!(got(&s, &key(1)), Some(vec![3; 64]), "a fresh put heals the entry");
    }

    #[test]
    fn disk_truncated_or_torn_file_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let s = disk(dir.path());
        for cut in [0, 1, 40, 87, 88, 88 + 31] {
            s.put(&key(1), blob(5, 32)).unwrap();
            let path = s.path_for(&key(1));
            let f = OpenOptions::new().write(true).open(&path).unwrap();
            f.set_len(cut).unwrap();
            drop(f);
            assert_eq!(got(&s, &key(1)), None, "truncated to {cut}");
            assert!(!path.exists());
        }
        // Trailing garbage (a torn overwrite by a non-atomic writer) is caught too.
        s.put(&key(1), blob(5, 32)).unwrap();
        let path = s.path_for(&key(1));
        OpenOptions::new().append(true).open(&path).unwrap().write_all(b"junk").unwrap();
        assert_eq!(got(&s, &key(1)), None);
        assert_eq!(s.stats().corrupt, 7);
    }

    #[test]
    fn disk_file_of_another_key_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let s = disk(dir.path());
        s.put(&key(1), blob(1, 10)).unwrap();
        let (a, b) = (s.path_for(&key(1)), s.path_for(&key(2)));
        fs::create_dir_all(b.parent().unwrap()).unwrap();
        fs::copy(&a, &b).unwrap();
        assert_eq!(got(&s, &key(2)), None, "a valid blob under the wrong name is not served");
        assert!(!b.exists());
        assert_eq!(got(&s, &key(1)), Some(vec![1; 10]), "the original is untouched");
        assert_eq!(s.stats().corrupt, 1);
    }

    #[test]
    fn disk_stale_temp_files_are_removed_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let s = disk(dir.path());
        s.put(&key(1), blob(1, 10)).unwrap();
        let shard_dir = s.path_for(&key(1)).parent().unwrap().to_path_buf();
        drop(s);
        let stale = shard_dir.join(format!(".{}.4242.0.tmp", key(1).digest().to_hex()));
        let fresh = shard_dir.join(format!(".{}.4243.0.tmp", key(1).digest().to_hex()));
        fs::write(&stale, b"half a blob").unwrap();
        fs::write(&fresh, b"being written").unwrap();
        let day_ago = SystemTime::now() - Duration::from_secs(86_400);
        File::options().write(true).open(&stale).unwrap().set_modified(day_ago).unwrap();

        let s = disk(dir.path());
        assert!(!stale.exists(), "crashed writer's temp file removed");
        assert!(fresh.exists(), "a young temp file may be a live writer's: kept");
        assert_eq!(s.stale_temps_removed(), 1);
        assert_eq!(got(&s, &key(1)), Some(vec![1; 10]), "blobs are untouched");
        assert_eq!(s.entries().unwrap(), 1, "temp files are not entries");

        let c = DiskStoreConfig { stale_temp_secs: 0, ..DiskStoreConfig::default() };
        let s = DiskPipelineStore::open(dir.path(), c).unwrap();
        assert!(!fresh.exists());
        assert_eq!(s.stale_temps_removed(), 1);
    }

    #[test]
    fn disk_oversized_file_is_refused_without_reading_it() {
        let dir = tempfile::tempdir().unwrap();
        let c = DiskStoreConfig { max_blob_bytes: 1024, ..DiskStoreConfig::default() };
        let s = DiskPipelineStore::open(dir.path(), c).unwrap();
        let path = s.path_for(&key(1));
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        // 64 GiB, sparse: reading or allocating it would fail the test loudly.
        let f = File::create(&path).unwrap();
        f.set_len(64 << 30).unwrap();
        drop(f);
        assert_eq!(got(&s, &key(1)), None);
        assert!(path.exists(), "left in place: a store with a larger limit may own it");
        assert_eq!(s.stats().oversized_reads, 1);

        // A header whose length field lies (says 1 TiB) in a small file is just
        // a corrupt file: the length never sizes an allocation.
        s.put(&key(2), blob(2, 16)).unwrap();
        let p2 = s.path_for(&key(2));
        let mut f = OpenOptions::new().write(true).open(&p2).unwrap();
        f.seek(SeekFrom::Start(48)).unwrap();
        f.write_all(&(1u64 << 40).to_le_bytes()).unwrap();
        drop(f);
        assert_eq!(got(&s, &key(2)), None);
        assert_eq!(s.stats().corrupt, 1);

        // Puts over the limit are rejected and drop the older blob.
        s.put(&key(3), blob(3, 1024)).unwrap();
        let out = s.put(&key(3), blob(3, 1025)).unwrap();
        assert_eq!(out.rejection(), Some(RejectReason::TooLarge { size_bytes: 1025, limit_bytes: 1024 }));
        assert_eq!(out.eviction().map(|e| e.reason), Some(EvictionReason::Removed));
        assert_eq!(got(&s, &key(3)), None);
    }

    #[test]
    fn disk_invalidate_by_mask() {
        let dir = tempfile::tempdir().unwrap();
        let s = disk(dir.path());
        let f16 = key_with(1, PipelineFeatureFlags::F16);
        let sub = key_with(2, PipelineFeatureFlags::SUBGROUP_OPS);
        let both = key_with(3, PipelineFeatureFlags::F16 | PipelineFeatureFlags::TENSOR_CORES);
        let reserved = key_with(4, PipelineFeatureFlags::from_bits(1 << 20));
        let none = key_with(5, PipelineFeatureFlags::empty());
        for k in [&f16, &sub, &both, &reserved, &none] {
            s.put(k, blob(1, 10)).unwrap();
        }
        assert_eq!(s.invalidate(PipelineFeatureFlags::empty()).unwrap().entries, 0);
        let ev = s.invalidate(PipelineFeatureFlags::F16).unwrap();
        assert_eq!((ev.reason, ev.entries, ev.bytes), (EvictionReason::Invalidated, 2, 2 * 98));
        assert_eq!((got(&s, &f16), got(&s, &both)), (None, None));
        assert!(got(&s, &sub).is_some());
        let ev = s.invalidate(PipelineFeatureFlags::from_bits(1 << 20)).unwrap();
        assert_eq!(ev.entries, 1, "reserved bits are impact bits too");
        assert_eq!(s.entries().unwrap(), 2);
        // Invalidation persists across a reopen, and removals reach flush.
        s.flush().unwrap();
        let s = disk(dir.path());
        assert_eq!(got(&s, &f16), None);
        assert_eq!(s.invalidate(PipelineFeatureFlags::ALL).unwrap().entries, 1);
        assert!(got(&s, &none).is_some(), "a key with no flags matches no mask");
    }

    #[test]
    fn disk_invalidate_removes_unreadable_headers_as_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let s = disk(dir.path());
        s.put(&key_with(1, PipelineFeatureFlags::F16), blob(1, 10)).unwrap();
        let path = s.path_for(&key_with(1, PipelineFeatureFlags::F16));
        fs::write(&path, b"short").unwrap();
        let ev = s.invalidate(PipelineFeatureFlags::SUBGROUP_OPS).unwrap();
        assert_eq!(ev.entries, 0);
        assert!(!path.exists());
        assert_eq!(s.stats().corrupt, 1);
    }

    #[test]
    fn disk_concurrent_writers_never_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let s = disk(dir.path());
        // Each payload says which key it belongs to and is internally uniform, so
        // any mix-up or torn read is visible.
        let payload = |k: u32, writer: u32, round: u32| -> Vec<u8> {
            let fill = (k as u8).wrapping_mul(31) ^ (writer as u8) ^ (round as u8).wrapping_mul(7);
            let mut v = k.to_le_bytes().to_vec();
            v.extend(std::iter::repeat_n(fill, 200 + (round as usize % 5) * 300));
            v
        };
        std::thread::scope(|scope| {
            for w in 0..4u32 {
                let s = &s;
                scope.spawn(move || {
                    for round in 0..40u32 {
                        let k = (round * 3 + w) % 6;
                        assert!(s.put(&key(k), payload(k, w, round).into()).unwrap().is_stored());
                        for probe in 0..6u32 {
                            if let Some(b) = s.get(&key(probe)).unwrap() {
                                assert_eq!(b[..4], probe.to_le_bytes(), "key {probe} served another key's blob");
                                assert!(b[4..].iter().all(|&x| x == b[4]), "torn blob for key {probe}");
                            }
                        }
                    }
                });
            }
        });
        s.flush().unwrap();
        assert_eq!(s.stats().corrupt, 0);
        assert_eq!(s.entries().unwrap(), 6);
        let leftovers: Vec<_> =
            blob_files(dir.path()).into_iter().filter(|p| p.extension().is_none_or(|e| e != "bin")).collect();
        assert!(leftovers.is_empty(), "temp files left behind: {leftovers:?}");
        // Two stores (as two processes would) on one root agree.
        let other = disk(dir.path());
        for k in 0..6 {
            assert_eq!(got(&other, &key(k)), got(&s, &key(k)));
        }
    }

    #[test]
    fn disk_errors_name_the_operation_and_path() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        fs::write(&file, b"x").unwrap();
        let err = DiskPipelineStore::open(file.join("pipelines"), DiskStoreConfig::default()).unwrap_err();
        match &err {
            Error::Io { op, path, .. } => {
                assert_eq!(*op, "create directory");
                assert!(path.starts_with(&file));
            }
            other => panic!("expected Io, got {other:?}"),
        }
        assert!(err.to_string().contains("not-a-dir"), "{err}");
    }

    #[test]
    fn disk_remove_reports_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let s = disk(dir.path());
        s.put(&key(1), blob(1, 12)).unwrap();
        let ev = s.remove(&key(1)).unwrap().unwrap();
        assert_eq!((ev.reason, ev.entries, ev.bytes), (EvictionReason::Removed, 1, 100));
        assert_eq!(s.remove(&key(1)).unwrap(), None);
        assert_eq!(got(&s, &key(1)), None);
        assert_eq!(s.stats().removals, 1);
    }
}

/// Both stores through the trait.
mod pipeline_store_contract {
    use super::*;

    /// The trait contract, checked on both stores through `dyn`.
    #[test]
    fn both_stores_honour_the_trait_contract() {
        let dir = tempfile::tempdir().unwrap();
        let stores: Vec<Box<dyn PipelineCacheStore>> =
            vec![Box::new(memory(2, 8, 1 << 10)), Box::new(disk(dir.path()))];
        for s in &stores {
            let k = key_with(1, PipelineFeatureFlags::BF16);
            assert_eq!(got(s.as_ref(), &k), None);
            assert!(s.put(&k, blob(1, 8)).unwrap().is_stored());
            assert_eq!(got(s.as_ref(), &k), Some(vec![1; 8]));
            let mut other_backend = k.clone();
            other_backend.backend_id = "metal".into();
            assert_eq!(got(s.as_ref(), &other_backend), None, "backend is identity");
            assert_eq!(s.remove(&k).unwrap().map(|e| e.entries), Some(1));
            assert_eq!(got(s.as_ref(), &k), None);
            s.put(&k, blob(2, 8)).unwrap();
            assert_eq!(s.invalidate(PipelineFeatureFlags::BF16).unwrap().entries, 1);
            assert_eq!(got(s.as_ref(), &k), None);
            s.flush().unwrap();
            let st = s.stats();
            assert_eq!((st.lookups, st.hits, st.puts, st.removals, st.invalidations), (5, 1, 2, 1, 1));
            assert_eq!(st.evictions, 2);
        }
    }
}
