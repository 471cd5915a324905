//! The decoded copy: next accesses from the reverse pass equal a
//! brute-force model, whatever the format; dense ids, unique bytes, limits.

use std::io::Write;

use cachescope_core::policy::Request;
use cachescope_harness::trace::decoded::next_accesses;
use cachescope_harness::trace::{DecodedTrace, LoadOptions, TraceFormat, convert, convert_with};
use proptest::prelude::*;

/// For each event, the first later request (not free) of the same key,
/// unless a free of that key comes first.
fn brute_force(ids: &[u32], free: &[bool]) -> Vec<u64> {
    (0..ids.len())
        .map(|i| {
            if free[i] {
                return Request::NEVER;
            }
            for j in i + 1..ids.len() {
                if ids[j] == ids[i] {
                    return if free[j] { Request::NEVER } else { j as u64 };
                }
            }
            Request::NEVER
        })
        .collect()
}

proptest! {
    #[test]
    fn reverse_pass_equals_brute_force(events in prop::collection::vec((0u32..12, prop::bool::weighted(0.1)), 0..300)) {
        let ids: Vec<u32> = events.iter().map(|e| e.0).collect();
        let free: Vec<bool> = events.iter().map(|e| e.1).collect();
        prop_assert_eq!(next_accesses(&ids, Some(&free), 12), brute_force(&ids, &free));
        prop_assert_eq!(next_accesses(&ids, None, 12), brute_force(&ids, &vec![false; ids.len()]));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Through real files: CSV, and the native and oracle files converted
    /// from it, all decode to the same columns, and next accesses match the
    /// model on keys (not dense ids).
    #[test]
    fn every_format_decodes_the_same(reqs in prop::collection::vec((0u64..20, 0u64..50), 1..200)) {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("t.csv");
        let mut f = std::io::BufWriter::new(std::fs::File::create(&csv).unwrap());
        writeln!(f, "time,key,size").unwrap();
        for (t, (k, s)) in reqs.iter().enumerate() {
            // Keys above 2^63 too.
            writeln!(f, "{t},{},{s}", k.wrapping_mul(0x9E37_79B9_7F4A_7C15)).unwrap();
        }
        drop(f);
        let kept: Vec<(u64, u64)> = reqs.iter().filter(|r| r.1 != 0).map(|&(k, s)| (k.wrapping_mul(0x9E37_79B9_7F4A_7C15), s)).collect();
        let d = DecodedTrace::load(&csv, None, LoadOptions::default()).unwrap();
        prop_assert_eq!(d.identity.skipped_zero_size, (reqs.len() - kept.len()) as u64);
        prop_assert_eq!(&d.keys, &kept.iter().map(|r| r.0).collect::<Vec<_>>());
        let want: Vec<u64> = (0..kept.len())
            .map(|i| (i + 1..kept.len()).find(|&j| kept[j].0 == kept[i].0).map_or(Request::NEVER, |j| j as u64))
            .collect();
        prop_assert_eq!(&d.next_access, &want);
        // unique_bytes: the size of each key's first request.
        let mut seen = std::collections::HashSet::new();
        let first: u64 = kept.iter().filter(|r| seen.insert(r.0)).map(|r| r.1).sum();
        prop_assert_eq!(d.unique_bytes, first);
        prop_assert_eq!(d.unique_keys, seen.len() as u64);
        prop_assert!(d.dense_ids.iter().all(|&i| u64::from(i) < d.unique_keys));
        let native = dir.path().join("t.cst");
        convert(&csv, None, &native).unwrap();
        let oracle = dir.path().join("t.oracle");
        convert_with(&csv, None, &oracle, TraceFormat::Oracle, LoadOptions::default()).unwrap();
        for other in [&native, &oracle] {
            let o = DecodedTrace::load(other, None, LoadOptions::default()).unwrap();
            prop_assert_eq!(&o.keys, &d.keys);
            prop_assert_eq!(&o.sizes, &d.sizes);
            prop_assert_eq!(&o.next_access, &d.next_access);
            prop_assert_eq!(&o.dense_ids, &d.dense_ids);
        }
    }
}

#[test]
fn limit_and_objects() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("t.csv");
    std::fs::write(&csv, "time,key,size\n0,1,10\n1,2,0\n2,2,20\n3,1,30\n4,3,40\n").unwrap();
    let d = DecodedTrace::load(&csv, None, LoadOptions { limit: Some(3), ..Default::default() }).unwrap();
    assert_eq!(d.keys, vec![1, 2, 1]);
    assert_eq!(d.next_access, vec![2, Request::NEVER, Request::NEVER]);
    assert_eq!(d.unique_bytes, 30, "first sizes: key 1 -> 10, key 2 -> 20");
    assert_eq!(d.identity.options.limit, Some(3));
    let o = DecodedTrace::load(&csv, None, LoadOptions { objects: true, ..Default::default() }).unwrap();
    assert_eq!(o.sizes, vec![1; 4]);
    assert_eq!((o.unique_keys, o.unique_bytes), (3, 3));
    let r = o.request(0);
    assert_eq!((r.key, r.size, r.next_access), (1, 1, 2));
    // The identity serialises for results.
    let json = serde_json::to_value(&o.identity).unwrap();
    assert_eq!(json["format"], "csv");
    assert_eq!(json["records"], 4);
    assert_eq!(json["skipped_zero_size"], 1);
    assert_eq!(json["blake3"].as_str().unwrap().len(), 64);
}
