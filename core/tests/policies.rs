//! Behaviour of the container and the LRU, FIFO and CLOCK policies: the
//! seeds' cases, the exact rules of `semantics.md`, and property tests
//! against simple reference models.

use cachescope_core::Error;
use cachescope_core::cache::{Cache, CacheConfig, DenseIndex, Evicted, Outcome};
use cachescope_core::policy::{Access, Clock, EvictionPolicy, Fifo, Lru, PolicyKind, Request};
use proptest::prelude::*;

fn req(key: u64, size: u64) -> Request {
    Request::new(key, size)
}

/// Runs `keys` (unit size) and returns the keys evicted, in order.
fn evictions<P: EvictionPolicy>(cache: &mut Cache<P>, keys: &[u64]) -> Vec<u64> {
    let mut out = Vec::new();
    for &k in keys {
        cache.access_with(&req(k, 1), |e| out.push(e.key));
    }
    out
}

#[test]
fn lru_evicts_least_recently_used() {
    let mut c = Cache::new(3, Lru::default()).unwrap();
    // 1 is touched again, so 2 is the least recently used when 4 arrives.
    assert_eq!(evictions(&mut c, &[1, 2, 3, 1, 4]), vec![2]);
    let order: Vec<u64> = c.policy().order_mru_first().map(|s| c.key_of(s)).collect();
    assert_eq!(order, vec![4, 1, 3]);
}

#[test]
fn fifo_ignores_hits() {
    let mut c = Cache::new(3, Fifo::default()).unwrap();
    assert_eq!(evictions(&mut c, &[1, 2, 3, 1, 4]), vec![1]);
}

#[test]
fn clock_gives_a_second_chance() {
    let mut c = Cache::new(3, Clock::default()).unwrap();
    // 1 has its bit set: it is moved to the head, 2 goes.
    assert_eq!(evictions(&mut c, &[1, 2, 3, 1, 4]), vec![2]);
    // Now ring (new->old) is 4,1,3 with all bits clear: 3 goes next.
    assert_eq!(evictions(&mut c, &[5]), vec![3]);
}

#[test]
fn byte_capacity_evicts_until_it_fits() {
    let mut c = Cache::new(100, Lru::default()).unwrap();
    for k in 0..4 {
        c.access(&req(k, 25));
    }
    assert_eq!(c.occupied(), 100, "an exact fit is allowed");
    let mut out = Vec::new();
    assert_eq!(c.access_with(&req(9, 60), |e| out.push(e.key)), Outcome::Inserted);
    assert_eq!(out, vec![0, 1, 2], "one large miss evicts several");
    assert_eq!(c.occupied(), 85);
    c.check_invariants().unwrap();
}

#[test]
fn oversize_is_a_miss_that_evicts_nothing() {
    let mut c = Cache::new(100, Fifo::default()).unwrap();
    c.access(&req(1, 50));
    let mut out = Vec::new();
    assert_eq!(c.access_with(&req(2, 101), |e| out.push(e)), Outcome::Rejected);
    assert!(out.is_empty());
    let s = c.stats();
    assert_eq!((s.requests, s.misses, s.missed_bytes, s.rejections), (2, 2, 151, 1));
    assert_eq!(s.resident_entries, 1);
}

#[test]
fn a_hit_never_changes_the_resident_size() {
    let mut c = Cache::new(100, Lru::default()).unwrap();
    c.access(&req(1, 10));
    assert!(c.access(&req(1, 90)).is_hit());
    assert_eq!(c.occupied(), 10);
    assert_eq!(c.stats().requested_bytes, 100, "hit bytes use the request's size");
}

#[test]
fn entry_and_size_limits() {
    let cfg = CacheConfig { capacity: 1000, max_entries: 2, max_entry_size: 100 };
    let mut c = Cache::with_config(cfg, Lru::default()).unwrap();
    let mut out = Vec::new();
    for k in 0..3 {
        c.access_with(&req(k, 10), |e| out.push(e.key));
    }
    assert_eq!(out, vec![0], "entry budget evicts even with bytes to spare");
    assert_eq!(c.access(&req(7, 101)), Outcome::Rejected, "admission limit");
    assert_eq!(c.len(), 2);
}

#[test]
fn zero_limits_are_clear_errors() {
    let e = Cache::new(0, Lru::default()).unwrap_err();
    assert!(matches!(e, Error::InvalidConfig { .. }), "{e}");
    assert!(e.to_string().contains("capacity"), "{e}");
    let cfg = CacheConfig { max_entries: 0, ..CacheConfig::with_capacity(5) };
    assert!(Cache::with_config(cfg, Fifo::default()).is_err());
}

#[test]
fn dirty_bits_follow_writes_and_reach_eviction_reports() {
    let mut c = Cache::new(2, Lru::default()).unwrap();
    c.access(&Request { access: Access::Write, ..req(1, 1) });
    c.access(&req(2, 1));
    c.access(&Request { access: Access::ReadWrite, ..req(2, 1) });
    let mut out: Vec<Evicted> = Vec::new();
    c.access_with(&req(3, 1), |e| out.push(e));
    c.access_with(&req(4, 1), |e| out.push(e));
    assert_eq!(out.iter().map(|e| (e.key, e.dirty)).collect::<Vec<_>>(), vec![(1, true), (2, true)]);
    assert!(c.set_dirty(3, true) && !c.set_dirty(99, true));
    assert_eq!(c.peek(3), Some((1, true)));
}

#[test]
fn explicit_remove_and_duplicate_insert() {
    let mut c = Cache::new(10, Clock::default()).unwrap();
    c.access(&req(1, 4));
    assert!(matches!(c.insert_with(&req(1, 4), |_| {}), Err(Error::DuplicateKey { key: 1 })));
    let e = c.remove(1).unwrap();
    assert_eq!((e.key, e.size), (1, 4));
    assert!(c.remove(1).is_none());
    assert!(c.is_empty());
    assert!(c.insert_with(&req(1, 4), |_| {}).unwrap());
    c.check_invariants().unwrap();
}

#[test]
fn policy_names_parse_back() {
    for &p in PolicyKind::ALL {
        assert_eq!(p.name().parse::<PolicyKind>().unwrap(), p);
        assert_eq!(p.build().name(), p.name());
    }
    let e = "mru".parse::<PolicyKind>().unwrap_err().to_string();
    assert!(e.contains("unknown policy `mru`") && e.contains("lru"), "{e}");
}

// ---------------------------------------------------------------------------
// Reference models: the textbook definitions on a Vec, O(n) and obviously
// right. Each returns (hit, evicted keys) per request.

#[derive(Clone, Copy, Debug)]
enum Model {
    Lru,
    Fifo,
    Clock,
}

#[derive(Default)]
struct ModelCache {
    /// Newest first: (key, size, reference bit).
    items: Vec<(u64, u64, bool)>,
    used: u64,
}

impl ModelCache {
    fn access(&mut self, m: Model, cap: u64, key: u64, size: u64) -> (bool, Vec<u64>) {
        if let Some(i) = self.items.iter().position(|it| it.0 == key) {
            match m {
                Model::Lru => {
                    let it = self.items.remove(i);
                    self.items.insert(0, it);
                }
                Model::Fifo => {}
                Model::Clock => self.items[i].2 = true,
            }
            return (true, vec![]);
        }
        let mut ev = vec![];
        if size > cap {
            return (false, ev);
        }
        while self.used + size > cap {
            let mut victim = self.items.pop().unwrap();
            while matches!(m, Model::Clock) && victim.2 {
                victim.2 = false;
                self.items.insert(0, victim);
                victim = self.items.pop().unwrap();
            }
            self.used -= victim.1;
            ev.push(victim.0);
        }
        self.items.insert(0, (key, size, false));
        self.used += size;
        (false, ev)
    }
}

fn check_against_model<P: EvictionPolicy>(policy: P, m: Model, cap: u64, reqs: &[(u64, u64)]) {
    let mut c = Cache::new(cap, policy).unwrap();
    let mut model = ModelCache::default();
    let mut ever_inserted = std::collections::HashSet::new();
    let mut evicted_total = 0u64;
    for (i, &(k, s)) in reqs.iter().enumerate() {
        let mut ev = vec![];
        let outcome = c.access_with(&req(k, s), |e| ev.push(e.key));
        let (hit, model_ev) = model.access(m, cap, k, s);
        assert_eq!(outcome.is_hit(), hit, "request {i} key {k}: hit differs from the {m:?} model");
        assert_eq!(ev, model_ev, "request {i} key {k}: evictions differ from the {m:?} model");
        assert!(c.occupied() <= cap, "resident bytes exceed capacity");
        if outcome == Outcome::Inserted {
            ever_inserted.insert(k);
        }
        evicted_total += ev.len() as u64;
    }
    c.check_invariants().unwrap();
    let s = c.stats();
    // Every insertion either is still resident or was reported evicted once.
    assert_eq!(s.insertions, s.resident_entries + evicted_total);
    assert_eq!(s.evictions, evicted_total);
    assert!(c.keys().all(|k| ever_inserted.contains(&k)));
}

fn requests() -> impl Strategy<Value = (u64, Vec<(u64, u64)>)> {
    (1u64..64, prop::collection::vec((0u64..40, 1u64..24), 1..400))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, rng_seed: proptest::test_runner::RngSeed::Fixed(0x5eed), ..ProptestConfig::default() })]

    #[test]
    fn lru_matches_model((cap, reqs) in requests()) {
        check_against_model(Lru::default(), Model::Lru, cap, &reqs);
    }

    #[test]
    fn fifo_matches_model((cap, reqs) in requests()) {
        check_against_model(Fifo::default(), Model::Fifo, cap, &reqs);
    }

    #[test]
    fn clock_matches_model((cap, reqs) in requests()) {
        check_against_model(Clock::default(), Model::Clock, cap, &reqs);
    }

    #[test]
    fn boxed_policies_behave_like_concrete_ones((cap, reqs) in requests()) {
        for (kind, model) in [(PolicyKind::Lru, Model::Lru), (PolicyKind::Fifo, Model::Fifo), (PolicyKind::Clock, Model::Clock)] {
            check_against_model(kind.build(), model, cap, &reqs);
        }
    }

    #[test]
    fn dense_index_behaves_like_hash_index((cap, reqs) in requests()) {
        for &kind in PolicyKind::ALL {
            let mut hashed = Cache::new(cap, kind.build()).unwrap();
            let mut dense = Cache::with_index(CacheConfig::with_capacity(cap), kind.build(), DenseIndex::with_keys(8)).unwrap();
            for &(k, s) in &reqs {
                let (mut a, mut b) = (vec![], vec![]);
                let oa = hashed.access_with(&req(k, s), |e| a.push(e));
                let ob = dense.access_with(&req(k, s), |e| b.push(e));
                prop_assert_eq!(oa, ob);
                prop_assert_eq!(a, b);
            }
            prop_assert_eq!(hashed.stats(), dense.stats());
            dense.check_invariants().map_err(TestCaseError::fail)?;
        }
    }
}
