//! TieredCache: placement, promotion, the demotion cascade, move reports,
//! errors, and a property test of the cross-tier invariants against a model
//! that replays the reported moves.

use std::collections::HashMap;

use cachescope_core::Error;
use cachescope_core::policy::{Access, PolicyKind};
use cachescope_core::tiered::{MoveKind, PromotionRule, TierConfig, TierMove, TieredCache, TieredConfig};
use proptest::prelude::*;

const HOST: usize = 0;
const DEVICE: usize = 1;

fn tiers(caps: &[u64], promotion: PromotionRule) -> TieredCache {
    let names = ["disk", "host", "device"];
    let offset = names.len() - caps.len();
    TieredCache::new(TieredConfig {
        tiers: caps
            .iter()
            .enumerate()
            .map(|(i, &c)| TierConfig { name: names[offset + i].into(), capacity_bytes: c, policy: PolicyKind::Lru })
            .collect(),
        promotion,
    })
    .unwrap()
}

fn host_device(host: u64, device: u64) -> TieredCache {
    tiers(&[host, device], PromotionRule::OnAccess)
}

fn record(moves: &mut Vec<TierMove>) -> impl FnMut(TierMove) + '_ {
    |m| moves.push(m)
}

#[test]
fn inserts_go_to_the_slowest_tier_that_fits() {
    let mut c = tiers(&[50, 1000, 100], PromotionRule::OnAccess);
    let mut moves = vec![];
    assert_eq!(c.insert(1, 10, &mut record(&mut moves)).unwrap(), 0);
    assert_eq!(c.insert(2, 60, &mut record(&mut moves)).unwrap(), 1, "too big for disk: host");
    assert_eq!(
        moves[0],
        TierMove { key: 1, size_bytes: 10, from: None, to: Some(0), kind: MoveKind::Insert, dirty: false }
    );
    let e = c.insert(3, 5000, &mut record(&mut moves)).unwrap_err();
    assert!(matches!(e, Error::EntryTooLarge { key: 3, size_bytes: 5000, largest_tier_bytes: 1000 }), "{e}");
    assert!(matches!(c.insert(1, 10, &mut |_| {}), Err(Error::DuplicateKey { key: 1 })));
    assert!(matches!(c.access(9, Access::Read, &mut |_| {}), Err(Error::UnknownKey { key: 9 })));
    assert!(matches!(c.remove(9, &mut |_| {}), Err(Error::UnknownKey { key: 9 })));
}

#[test]
fn access_promotes_and_eviction_demotes_with_dirty_readback() {
    let mut c = host_device(1000, 100);
    let mut moves = vec![];
    for k in 1..=3 {
        c.insert(k, 40, &mut record(&mut moves)).unwrap();
    }
    moves.clear();
    let a = c.access(1, Access::ReadWrite, &mut record(&mut moves)).unwrap();
    assert_eq!((a.found_in, a.now_in), (HOST, DEVICE));
    c.access(2, Access::Read, &mut record(&mut moves)).unwrap();
    assert_eq!(c.peek(1), Some((40, true)), "written in device memory");
    moves.clear();
    // Device holds 80 of 100 bytes; promoting 3 demotes 1 (LRU), which is dirty.
    c.access(3, Access::Read, &mut record(&mut moves)).unwrap();
    assert_eq!(
        moves,
        vec![
            TierMove {
                key: 1,
                size_bytes: 40,
                from: Some(DEVICE),
                to: Some(HOST),
                kind: MoveKind::Demote,
                dirty: true
            },
            TierMove {
                key: 3,
                size_bytes: 40,
                from: Some(HOST),
                to: Some(DEVICE),
                kind: MoveKind::Promote,
                dirty: false
            },
        ],
        "the victim leaves before the new entry arrives"
    );
    assert_eq!(c.tier_of(1), Some(HOST));
    assert_eq!(c.peek(1), Some((40, false)), "the host copy is current after the readback");
    let s = c.stats();
    assert_eq!((s.tiers[DEVICE].dirty_evictions, s.tiers[DEVICE].dirty_evicted_bytes), (1, 40));
    assert_eq!((s.tiers[HOST].demotions_in, s.tiers[DEVICE].promotions_in), (1, 3));
    c.check_invariants().unwrap();
}

#[test]
fn the_slowest_tier_drops_and_says_so() {
    let mut c = host_device(100, 50);
    let mut moves = vec![];
    for k in 1..=3 {
        c.insert(k, 40, &mut record(&mut moves)).unwrap();
    }
    // Host (100) holds at most two of the 40-byte entries: 1 is dropped.
    assert!(moves.contains(&TierMove {
        key: 1,
        size_bytes: 40,
        from: Some(HOST),
        to: None,
        kind: MoveKind::Drop,
        dirty: false
    }));
    assert_eq!(c.tier_of(1), None);
    assert_eq!(c.stats().drops, 1);
}

#[test]
fn demotion_cascades_down_and_skips_tiers_too_small() {
    // disk 1000, host 30, device 100: a 40-byte victim of the device skips host.
    let mut c = tiers(&[1000, 30, 100], PromotionRule::OnAccess);
    let mut moves = vec![];
    for k in 1..=3 {
        c.insert(k, 40, &mut |_| {}).unwrap();
        c.access(k, Access::Read, &mut record(&mut moves)).unwrap();
    }
    assert_eq!(c.tier_of(1), Some(0), "skipped the host tier that could never hold it");
    assert_eq!(c.tier_of(3), Some(2));
    c.check_invariants().unwrap();
}

#[test]
fn promotion_rules() {
    let mut c = tiers(&[1000, 100], PromotionRule::AfterAccesses(2));
    c.insert(1, 10, &mut |_| {}).unwrap();
    assert_eq!(c.access(1, Access::Read, &mut |_| {}).unwrap().now_in, HOST);
    assert_eq!(c.access(1, Access::Read, &mut |_| {}).unwrap().now_in, DEVICE);
    let mut never = tiers(&[1000, 100], PromotionRule::Never);
    never.insert(1, 10, &mut |_| {}).unwrap();
    never.access(1, Access::Write, &mut |_| {}).unwrap();
    assert_eq!(never.tier_of(1), Some(HOST));
    assert_eq!(never.peek(1), Some((10, true)));
    // An entry too large for the device stays on the host.
    let mut big = host_device(1000, 100);
    big.insert(1, 500, &mut |_| {}).unwrap();
    assert_eq!(big.access(1, Access::Read, &mut |_| {}).unwrap().now_in, HOST);
}

#[test]
fn remove_reports_and_frees() {
    let mut c = host_device(1000, 100);
    c.insert(1, 10, &mut |_| {}).unwrap();
    c.access(1, Access::Write, &mut |_| {}).unwrap();
    let mut moves = vec![];
    assert_eq!(c.remove(1, &mut record(&mut moves)).unwrap(), DEVICE);
    assert_eq!(moves[0].kind, MoveKind::Remove);
    assert!(moves[0].dirty);
    assert!(c.is_empty() && c.resident_bytes(DEVICE) == 0);
}

#[test]
fn bad_configs_are_errors() {
    let cfg = |caps: Vec<u64>, promotion| TieredConfig {
        tiers: caps
            .into_iter()
            .map(|c| TierConfig { name: "t".into(), capacity_bytes: c, policy: PolicyKind::Fifo })
            .collect(),
        promotion,
    };
    assert!(TieredCache::new(cfg(vec![], PromotionRule::OnAccess)).is_err());
    let e = TieredCache::new(cfg(vec![10, 0], PromotionRule::OnAccess)).unwrap_err();
    assert!(e.to_string().contains("capacity_bytes"), "{e}");
    assert!(TieredCache::new(cfg(vec![10], PromotionRule::AfterAccesses(0))).is_err());
}

#[derive(Debug, Clone)]
enum Op {
    Insert(u64, u64),
    Access(u64, Access),
    Remove(u64),
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    let access = prop_oneof![Just(Access::Read), Just(Access::Write), Just(Access::ReadWrite)];
    prop::collection::vec(
        prop_oneof![
            1 => (0u64..30, 1u64..60).prop_map(|(k, s)| Op::Insert(k, s)),
            3 => (0u64..30, access).prop_map(|(k, a)| Op::Access(k, a)),
            1 => (0u64..30).prop_map(Op::Remove),
        ],
        1..300,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, rng_seed: proptest::test_runner::RngSeed::Fixed(0x71e4), ..ProptestConfig::default() })]

    /// Replaying the reported moves on a plain map reproduces where every key
    /// is; tiers never exceed capacity; every key that left was reported
    /// exactly once (as drop or removal); a demoted entry is in a slower tier.
    #[test]
    fn moves_explain_every_location(caps in prop::collection::vec(20u64..200, 1..4), promo in 0u32..3, ops in ops()) {
        let promotion = match promo { 0 => PromotionRule::OnAccess, 1 => PromotionRule::AfterAccesses(2), _ => PromotionRule::Never };
        let mut c = tiers(&caps, promotion);
        let mut model: HashMap<u64, usize> = HashMap::new();
        for op in ops {
            let mut moves = vec![];
            let r = match op {
                Op::Insert(k, s) => c.insert(k, s, &mut record(&mut moves)).map(|_| ()),
                Op::Access(k, a) => c.access(k, a, &mut record(&mut moves)).map(|_| ()),
                Op::Remove(k) => c.remove(k, &mut record(&mut moves)).map(|_| ()),
            };
            if r.is_err() {
                prop_assert!(moves.is_empty(), "a failed call moved something: {moves:?}");
            }
            for m in &moves {
                prop_assert_eq!(model.get(&m.key).copied(), m.from, "move {:?} from a tier the key was not in", m);
                match m.to {
                    Some(t) => { model.insert(m.key, t); }
                    None => { model.remove(&m.key); }
                }
                if m.kind == MoveKind::Demote {
                    prop_assert!(m.to < m.from);
                }
                if m.kind == MoveKind::Drop {
                    // Only when no slower tier could ever hold it.
                    let from = m.from.unwrap();
                    prop_assert!(caps[..from].iter().all(|&cap| cap < m.size_bytes));
                }
            }
            for (t, &cap) in caps.iter().enumerate() {
                prop_assert!(c.resident_bytes(t) <= cap);
            }
        }
        prop_assert_eq!(model.len(), c.len());
        for (&k, &t) in &model {
            prop_assert_eq!(c.tier_of(k), Some(t));
        }
        c.check_invariants().map_err(TestCaseError::fail)?;
    }
}
