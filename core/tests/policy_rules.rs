//! The particular rules of each policy beyond LRU/FIFO/CLOCK (ghost hits,
//! ARC's `p`, S3-FIFO's move to main, SIEVE's hand, ...), and a property
//! test that every built-in policy keeps the container's invariants.

use std::collections::HashMap;

use cachescope_core::cache::{Cache, Outcome};
use cachescope_core::policy::{
    Access, Arc, Belady, EvictionPolicy, Gdsf, GpuCost, Lfu, Lirs, PolicyKind, Request, S3Fifo, Sieve, TwoQ, WTinyLfu,
};
use proptest::prelude::*;

fn req(key: u64, size: u64) -> Request {
    Request::new(key, size)
}

/// Runs unit-size `keys` and returns the keys evicted, in order.
fn evictions<P: EvictionPolicy>(cache: &mut Cache<P>, keys: &[u64]) -> Vec<u64> {
    let mut out = Vec::new();
    for &k in keys {
        cache.access_with(&req(k, 1), |e| out.push(e.key));
    }
    out
}

fn slot_of<P: EvictionPolicy>(cache: &Cache<P>, key: u64) -> u32 {
    // Unit-size tests: never more slots than the capacity.
    let slots = cache.config().capacity.min(100_000) as u32;
    (0..slots).find(|&s| cache.contains(key) && cache.key_of(s) == key).expect("resident")
}

#[test]
fn sieve_hand_skips_visited_and_stays_in_place() {
    let mut c = Cache::new(3, Sieve::default()).unwrap();
    // 1 is visited: the hand clears it and evicts 2; the hand then points at
    // 3 (the next newer), and 1 was not moved.
    assert_eq!(evictions(&mut c, &[1, 2, 3, 1, 4]), vec![2]);
    assert_eq!(c.policy().hand().map(|s| c.key_of(s)), Some(3));
    // 3 is unvisited: evicted next, though 1 is older.
    assert_eq!(evictions(&mut c, &[5]), vec![3]);
    // The victim 3's newer neighbour is 4: the hand moves there.
    assert_eq!(c.policy().hand().map(|s| c.key_of(s)), Some(4));
    // Evicting the head (newest) restarts the hand at the tail.
    let mut c = Cache::new(2, Sieve::default()).unwrap();
    assert_eq!(evictions(&mut c, &[1, 2, 1, 3]), vec![2]);
    assert_eq!(c.policy().hand(), None);
}

#[test]
fn lfu_evicts_lowest_frequency_oldest_entry_first() {
    let mut c = Cache::new(3, Lfu::default()).unwrap();
    // 1: freq 3, 2: freq 2 (entered freq 2 before 3 did), 3: freq 2.
    assert_eq!(evictions(&mut c, &[1, 2, 3, 1, 2, 3, 1]), Vec::<u64>::new());
    assert_eq!(evictions(&mut c, &[4]), vec![2]);
    // 4 has freq 1: it goes before 3.
    assert_eq!(evictions(&mut c, &[5]), vec![4]);
    assert_eq!(c.policy().freq(slot_of(&c, 1)), Some(3));
}

/// ARC keeps its ghosts in the container: a ghost is not resident, is
/// forgotten when its key is stored without a request or refused on its
/// next request, and never leaks a slot.
#[test]
fn arc_ghosts_are_not_resident_and_never_leak() {
    let mut c = Cache::new(4, Arc::default()).unwrap();
    // As below: T2 = {1}, T1 = {3, 4, 5}, B1 = {2}.
    assert_eq!(evictions(&mut c, &[1, 2, 1, 3, 4, 5]), vec![2]);
    assert_eq!(c.policy().list_bytes(), (3, 1, 1, 0), "2 is a ghost in B1");
    assert!(!c.contains(2) && c.peek(2).is_none() && c.remove(2).is_none());
    assert_eq!(c.keys().count(), 4);
    c.check_invariants().unwrap();
    // Stored without a request: the ghost is dropped, not hit (p stays 0).
    // Making room sends T1's LRU (3) to B1 in its place.
    let mut evicted = Vec::new();
    assert!(c.insert_with(&req(2, 1), |e| evicted.push(e.key)).unwrap());
    assert_eq!(evicted, vec![3]);
    assert_eq!(c.policy().p(), 0.0);
    assert_eq!(c.policy().list_bytes(), (3, 1, 1, 0), "3 is B1's only ghost");
    assert!(c.contains(2) && !c.contains(3));
    c.check_invariants().unwrap();
    // A ghost hit whose object is then refused (now larger than the
    // cache): the ghost is gone and its slot freed.
    assert_eq!(c.access(&req(3, 5)), Outcome::Rejected);
    assert_eq!(c.policy().list_bytes(), (3, 1, 0, 0), "the ghost left B1");
    assert!(!c.contains(3));
    c.check_invariants().unwrap();
}

#[test]
fn arc_ghost_hits_move_p_and_promote_to_t2() {
    let mut c = Cache::new(4, Arc::default()).unwrap();
    // 1 is hit: T2 = {1}, T1 = {2, 3, 4}.
    evictions(&mut c, &[1, 2, 1, 3, 4]);
    assert_eq!(c.policy().list_bytes(), (3, 1, 0, 0));
    // A miss with T1 > p = 0: T1's LRU (2) goes to the ghost list B1.
    assert_eq!(evictions(&mut c, &[5]), vec![2]);
    assert_eq!(c.policy().list_bytes(), (3, 1, 1, 0));
    // A ghost hit in B1 grows p by max(|B2|/|B1|, 1) = 1 and enters T2.
    assert_eq!(evictions(&mut c, &[2]), vec![3]);
    assert_eq!(c.policy().p(), 1.0);
    assert!(c.policy().in_t2(slot_of(&c, 2)));
    // A hit in T1 moves to T2; now T1 = p = 1, so REPLACE takes T2's LRU (1).
    evictions(&mut c, &[5]);
    assert_eq!(c.policy().list_bytes(), (1, 3, 1, 0));
    assert_eq!(evictions(&mut c, &[6]), vec![1]);
    assert_eq!(c.policy().list_bytes().3, 1, "1 is a ghost in B2");
    // A ghost hit in B2 shrinks p by max(|B1|/|B2|, 1) = 1.
    evictions(&mut c, &[1]);
    assert_eq!(c.policy().p(), 0.0);
    assert!(c.policy().in_t2(slot_of(&c, 1)));
    c.check_invariants().unwrap();
}

#[test]
fn twoq_promotes_only_through_its_ghost() {
    let mut c = Cache::new(8, TwoQ::default()).unwrap();
    // Ain quota trunc(0.25 x 8) = 2; hits in Ain change nothing.
    evictions(&mut c, &[1, 2, 1, 1]);
    assert!(!c.policy().in_am(slot_of(&c, 1)));
    // Ain over quota: its oldest (1) leaves a ghost in Aout.
    let ev = evictions(&mut c, &[3, 4, 5, 6, 7, 8, 9]);
    assert_eq!(ev, vec![1]);
    assert_eq!(aout_keys(&c), vec![1]);
    assert!(!c.contains(1), "a ghost is not resident");
    // The ghost hit goes to Am; making room sends Ain's oldest (2) to Aout.
    assert_eq!(evictions(&mut c, &[1]), vec![2]);
    assert!(c.policy().in_am(slot_of(&c, 1)));
    assert_eq!(aout_keys(&c), vec![2], "1's ghost is gone");
    // Objects above Ain's quota are never cached.
    assert_eq!(c.access(&req(100, 3)), Outcome::Rejected);
    c.check_invariants().unwrap();
}

/// Aout's keys, newest first.
fn aout_keys(c: &Cache<TwoQ>) -> Vec<u64> {
    c.policy().aout_newest_first().map(|s| c.key_of(s)).collect()
}

/// 2Q keeps Aout in the container: trimmed oldest first to trunc(0.5 C)
/// bytes, forgotten when its key is stored without a request or refused on
/// its next request, and never a leaked slot.
#[test]
fn twoq_aout_is_a_byte_fifo_of_container_ghosts() {
    // Ain quota 10, Aout 20 bytes, Am 30.
    let mut c = Cache::new(40, TwoQ::default()).unwrap();
    let mut out = vec![];
    for (k, size) in [(1, 10), (2, 10), (3, 10), (4, 10), (5, 8), (6, 8), (7, 9), (8, 5), (9, 4)] {
        c.access_with(&req(k, size), |e| out.push(e.key));
    }
    // Ain's victims enter Aout; 3 and 4 each drop Aout's oldest to fit.
    assert_eq!(out, vec![1, 2, 3, 4]);
    assert_eq!(aout_keys(&c), vec![4, 3]);
    assert_eq!((c.policy().aout_len(), c.policy().aout_bytes()), (2, 20));
    let ghost = c.policy().aout_newest_first().next().unwrap();
    assert!(c.policy().in_aout(ghost) && !c.contains(4));
    c.check_invariants().unwrap();
    // 5 (8 bytes) drops 3 only: 10 + 8 fits in 20.
    out.clear();
    c.access_with(&req(10, 10), |e| out.push(e.key));
    assert_eq!(out, vec![5]);
    assert_eq!(aout_keys(&c), vec![5, 4]);
    assert_eq!(c.policy().aout_bytes(), 18);
    // A ghost hit on 4 leaves Aout and goes to Am; making room sends Ain's
    // oldest (6) to Aout, where it fits without a drop (8 + 8 <= 20).
    out.clear();
    c.access_with(&req(4, 10), |e| out.push(e.key));
    assert_eq!(out, vec![6]);
    assert!(c.policy().in_am(slot_of(&c, 4)));
    assert_eq!(aout_keys(&c), vec![6, 5]);
    assert_eq!(c.policy().aout_bytes(), 16);
    c.check_invariants().unwrap();
    // Stored without a request: the ghost is dropped, not hit (Ain, not Am).
    // Ain is over its quota, so its oldest (7) makes room.
    out.clear();
    assert!(c.insert_with(&req(6, 8), |e| out.push(e.key)).unwrap());
    assert_eq!(out, vec![7]);
    assert!(!c.policy().in_am(slot_of(&c, 6)));
    assert_eq!(aout_keys(&c), vec![7, 5]);
    c.check_invariants().unwrap();
    // A ghost hit refused (above Ain's quota): the ghost is gone, its slot
    // freed; the key's next request is a plain miss into Ain.
    let before = c.policy().aout_bytes();
    assert_eq!(c.access(&req(7, 11)), Outcome::Rejected);
    assert_eq!(c.policy().aout_bytes(), before - 9);
    assert!(!c.contains(7) && !aout_keys(&c).contains(&7));
    c.check_invariants().unwrap();
    c.access(&req(7, 1));
    assert!(c.contains(7) && !c.policy().in_am(slot_of(&c, 7)));
    c.check_invariants().unwrap();
}

#[test]
fn s3fifo_moves_twice_hit_objects_to_main_and_ghosts_the_rest() {
    let mut c = Cache::new(20, S3Fifo::default()).unwrap();
    // S = 2, M = 18. Fill small (2) and, before the first eviction, main.
    for k in 0..20 {
        c.access(&req(k, 1));
    }
    // 20 evicts: main (18 > M? no), small is not empty: evict-small.
    // Small holds 0 and 1 (the rest went to main once small was full).
    c.access(&req(0, 1));
    c.access(&req(0, 1)); // freq 2: moves to main on its eviction
    let mut out = vec![];
    c.access_with(&req(20, 1), |e| out.push(e.key));
    assert!(c.policy().in_main(slot_of(&c, 0)), "freq >= 2 moved to main");
    assert_eq!(out, vec![1], "freq < 2 evicted");
    assert_eq!(s3_ghost_keys(&c), vec![1]);
    assert!(!c.contains(1), "a ghost is not resident");
    // Its return finds the ghost and goes straight to main; main is over M
    // (19 > 18), so its oldest (2, freq 0) goes, and leaves no ghost.
    let mut out2 = vec![];
    c.access_with(&req(1, 1), |e| out2.push(e.key));
    assert_eq!(out2, vec![2]);
    assert!(c.policy().in_main(slot_of(&c, 1)));
    assert_eq!((c.policy().ghost_len(), c.policy().ghost_bytes()), (0, 0));
    c.check_invariants().unwrap();
}

/// The ghost queue's keys, newest first.
fn s3_ghost_keys(c: &Cache<S3Fifo>) -> Vec<u64> {
    c.policy().ghosts_newest_first().map(|s| c.key_of(s)).collect()
}

/// S3-FIFO keeps its ghost queue in the container: trimmed oldest first to
/// trunc(0.9 C) bytes, forgotten when its key is stored without a request
/// or refused on its next request, and never a leaked slot.
#[test]
fn s3fifo_ghosts_are_a_byte_fifo_of_container_ghosts() {
    // S = 10, M = 90, G = 90 bytes.
    let mut c = Cache::new(100, S3Fifo::default()).unwrap();
    let mut out = vec![];
    for k in 0..=21 {
        c.access_with(&req(k, 9), |e| out.push(e.key));
    }
    // 0 and 1 filled small, 2..=10 main; from 11 on each newcomer evicts
    // small's oldest into the ghost queue, which holds ten 9-byte ghosts:
    // the eleventh (19) drops the oldest (0).
    assert_eq!(out, [0, 1].into_iter().chain(11..=19).collect::<Vec<_>>());
    assert_eq!(s3_ghost_keys(&c), vec![19, 18, 17, 16, 15, 14, 13, 12, 11, 1]);
    assert_eq!((c.policy().ghost_len(), c.policy().ghost_bytes()), (10, 90));
    let ghost = c.policy().ghosts_newest_first().next().unwrap();
    assert!(c.policy().in_ghost(ghost) && !c.contains(19));
    c.check_invariants().unwrap();
    // A ghost hit goes to main; small's oldest (20) takes the freed room.
    out.clear();
    c.access_with(&req(1, 9), |e| out.push(e.key));
    assert_eq!(out, vec![20]);
    assert!(c.policy().in_main(slot_of(&c, 1)));
    assert_eq!(s3_ghost_keys(&c), vec![20, 19, 18, 17, 16, 15, 14, 13, 12, 11]);
    // Stored without a request: the ghost is dropped, not hit (small).
    out.clear();
    assert!(c.insert_with(&req(15, 9), |e| out.push(e.key)).unwrap());
    assert_eq!(out, vec![21]);
    assert!(!c.policy().in_main(slot_of(&c, 15)));
    assert_eq!(s3_ghost_keys(&c), vec![21, 20, 19, 18, 17, 16, 14, 13, 12, 11]);
    assert_eq!(c.policy().ghost_bytes(), 90);
    c.check_invariants().unwrap();
    // A ghost hit refused (above S): the ghost is gone, its slot freed.
    assert_eq!(c.access(&req(12, 11)), Outcome::Rejected);
    assert_eq!((c.policy().ghost_len(), c.policy().ghost_bytes()), (9, 81));
    assert!(!c.contains(12));
    c.check_invariants().unwrap();
}

#[test]
fn s3fifo_object_the_size_of_small_evicts_but_is_not_stored() {
    let mut c = Cache::new(100, S3Fifo::default()).unwrap();
    for k in 0..20 {
        c.access(&req(k, 5));
    }
    assert_eq!(c.occupied(), 100);
    let mut out = vec![];
    assert_eq!(c.access_with(&req(99, 10), |e| out.push(e.key)), Outcome::Rejected);
    assert_eq!(out.len(), 2, "size == S: evicts until it would fit, then is dropped");
    assert_eq!(c.occupied(), 90);
    assert_eq!(c.access(&req(98, 11)), Outcome::Rejected, "size > S: dropped without evicting");
}

#[test]
fn belady_evicts_the_farthest_next_use() {
    let mut c = Cache::new(2, Belady::default()).unwrap();
    let at = |key, next| Request { next_access: next, ..req(key, 1) };
    c.access(&at(1, 10));
    c.access(&at(2, 5));
    let mut out = vec![];
    c.access_with(&at(3, 7), |e| out.push(e.key));
    assert_eq!(out, vec![1]);
    c.access_with(&at(4, Request::NEVER), |e| out.push(e.key));
    assert_eq!(out, vec![1, 3]);
}

#[test]
fn gdsf_prefers_to_keep_small_and_frequent_objects() {
    let mut c = Cache::new(100, Gdsf::default()).unwrap();
    c.access(&req(1, 50));
    c.access(&req(2, 10));
    c.access(&req(3, 40));
    let mut out = vec![];
    c.access_with(&req(4, 10), |e| out.push(e.key));
    assert_eq!(out, vec![1], "largest object has the lowest freq/size");
    // Frequency counts: 3 hit twice outranks the new small 5.
    c.access(&req(3, 40));
    c.access(&req(3, 40));
    c.access_with(&req(5, 40), |e| out.push(e.key));
    assert!(c.contains(3));
    assert!(c.policy().inflation() > 0.0);
}

#[test]
fn wtinylfu_admits_window_victims_by_frequency() {
    let mut c = Cache::new(200, WTinyLfu::default()).unwrap();
    // Window is trunc(0.01 x 200) = 2: larger objects are never cached.
    assert_eq!(c.access(&req(1, 3)), Outcome::Rejected);
    // Make 0..100 popular, then scan 1000.. once: the scan cannot push the
    // popular keys out of main (their estimate is higher).
    for _ in 0..5 {
        for k in 0..100 {
            c.access(&req(k, 1));
        }
    }
    for k in 1000..1400 {
        c.access(&req(k, 1));
    }
    let kept = (0..100).filter(|&k| c.contains(k)).count();
    assert!(kept >= 85, "scan flushed popular keys: {kept} kept");
    c.check_invariants().unwrap();
}

#[test]
fn lirs_keeps_a_loop_slightly_larger_than_the_cache() {
    let mut lirs = Cache::new(100, Lirs::default()).unwrap();
    let mut lru = Cache::new(100, PolicyKind::Lru.build()).unwrap();
    for _ in 0..20 {
        for k in 0..110 {
            lirs.access(&req(k, 1));
            lru.access(&req(k, 1));
        }
    }
    assert_eq!(lru.stats().hits, 0, "LRU misses every request of a loop larger than the cache");
    assert!(lirs.stats().hits > 1500, "LIRS keeps most of the loop: {} hits", lirs.stats().hits);
    let lir = (0..110).filter(|&k| lirs.contains(k)).filter(|&k| lirs.policy().is_lir(slot_of(&lirs, k))).count();
    assert!(lir >= 90);
}

#[test]
fn gpu_cost_prefers_evicting_clean_buffers() {
    let mut c = Cache::new(3, GpuCost::default()).unwrap();
    c.access(&Request { access: Access::Write, ..req(1, 1) });
    c.access(&req(2, 1));
    c.access(&req(3, 1));
    let mut out = vec![];
    c.access_with(&req(4, 1), |e| out.push((e.key, e.dirty)));
    assert_eq!(out.len(), 1);
    assert!(!out[0].1, "a dirty buffer was evicted while clean ones were resident");
}

#[test]
fn policy_menu_is_complete() {
    let names: Vec<_> = PolicyKind::ALL.iter().map(|k| k.name()).collect();
    assert_eq!(
        names,
        [
            "lru",
            "fifo",
            "clock",
            "sieve",
            "lfu",
            "arc",
            "twoq",
            "s3fifo",
            "belady",
            "wtinylfu",
            "lirs",
            "gdsf",
            "gpu_cost",
            "belady_cost"
        ]
    );
    for &k in PolicyKind::ALL {
        assert_eq!(k.build().name(), k.name());
        assert!(!k.description().is_empty());
    }
    let exact: Vec<_> = PolicyKind::ALL.iter().filter(|k| k.matches_libcachesim_exactly()).map(|k| k.name()).collect();
    assert_eq!(exact, ["lru", "fifo", "clock", "sieve", "lfu", "arc", "twoq", "s3fifo", "belady"]);
}

// ---------------------------------------------------------------------------
// Container invariants under every policy.

#[derive(Debug, Clone)]
enum Op {
    Access {
        key: u64,
        size: u64,
        access: u8,
    },
    Remove {
        key: u64,
    },
    /// Stored without a request (a demotion or prefetch).
    Insert {
        key: u64,
    },
}

fn ops() -> impl Strategy<Value = (u64, Vec<Op>)> {
    let op = prop_oneof![
        8 => (0u64..40, 1u64..24, 0u8..3).prop_map(|(key, size, access)| Op::Access { key, size, access }),
        1 => (0u64..40).prop_map(|key| Op::Remove { key }),
        1 => (0u64..40).prop_map(|key| Op::Insert { key }),
    ];
    (1u64..80, prop::collection::vec(op, 1..300))
}

fn check_invariants(kind: PolicyKind, cap: u64, ops: &[Op]) {
    // Next access per request, by a reverse pass (removals are not requests).
    let mut next_of = vec![Request::NEVER; ops.len()];
    let mut seen: HashMap<u64, u64> = HashMap::new();
    let mut idx = ops.iter().filter(|o| matches!(o, Op::Access { .. })).count() as u64;
    for (i, op) in ops.iter().enumerate().rev() {
        if let Op::Access { key, .. } = op {
            idx -= 1;
            next_of[i] = seen.insert(*key, idx).unwrap_or(Request::NEVER);
        }
    }
    let mut c = Cache::new(cap, kind.build()).unwrap();
    let mut sizes: HashMap<u64, u64> = HashMap::new();
    let mut evicted = 0u64;
    let mut removed = 0u64;
    for (i, op) in ops.iter().enumerate() {
        match *op {
            Op::Access { key, size, access } => {
                // A key keeps one size, as in a real trace.
                let size = *sizes.entry(key).or_insert(size);
                let access = [Access::Read, Access::Write, Access::ReadWrite][access as usize];
                let r = Request { next_access: next_of[i], access, ..req(key, size) };
                let was_resident = c.contains(key);
                let outcome = c.access_with(&r, |_| evicted += 1);
                assert_eq!(outcome.is_hit(), was_resident, "{kind}: hit iff resident");
            }
            Op::Remove { key } => {
                if c.remove(key).is_some() {
                    removed += 1;
                }
            }
            Op::Insert { key } => {
                let size = *sizes.entry(key).or_insert(1);
                let was_resident = c.contains(key);
                let stored = c.insert_with(&req(key, size), |_| evicted += 1);
                assert_eq!(stored.is_err(), was_resident, "{kind}: a resident key is refused, any other taken");
            }
        }
        assert!(c.occupied() <= cap, "{kind}: occupied {} > capacity {cap}", c.occupied());
        if let Err(e) = c.check_invariants() {
            panic!("{kind} after op {i}: {e}");
        }
    }
    let s = c.stats();
    assert_eq!(
        s.insertions,
        s.resident_entries + evicted + removed,
        "{kind}: insertions = resident + evicted + removed"
    );
    // Every resident key can still be evicted: fill with fresh keys.
    let before = c.len();
    let mut flushed = 0u64;
    for k in 1000..1000 + 4 * cap {
        c.access_with(&req(k, 1), |_| flushed += 1);
    }
    assert!(flushed > 0 || before == 0 || c.len() >= before, "{kind}: nothing evicted");
    c.check_invariants().unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, rng_seed: proptest::test_runner::RngSeed::Fixed(0xc0ffee), ..ProptestConfig::default() })]

    #[test]
    fn every_policy_keeps_the_container_invariants((cap, ops) in ops()) {
        for &kind in PolicyKind::ALL {
            check_invariants(kind, cap, &ops);
        }
    }
}
