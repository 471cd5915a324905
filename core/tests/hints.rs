//! Integration tests of the hot-path hints table: a model check of the LRU
//! bound and the exact running figures, and concurrent recording.

use std::collections::VecDeque;
use std::sync::Arc;

use cachescope_core::hints::{HotPathHints, HotThreshold, RegionRecord};
use proptest::prelude::*;

/// The obvious implementation: a recency queue scanned on every record.
#[derive(Default)]
struct Model {
    capacity: usize,
    /// Front = most recently recorded.
    regions: VecDeque<(String, RegionRecord)>,
    tick: u64,
}

impl Model {
    fn record(&mut self, region: &str, kernel_ns: u64, bytes: u64) {
        if self.capacity == 0 {
            return;
        }
        let mut r = match self.regions.iter().position(|(n, _)| n == region) {
            Some(i) => self.regions.remove(i).unwrap().1,
            None => RegionRecord::default(),
        };
        r.dispatch_count += 1;
        r.kernel_ns_total += kernel_ns;
        r.kernel_ns_max = r.kernel_ns_max.max(kernel_ns);
        r.bytes_total += bytes;
        r.last_seen = self.tick;
        self.tick += 1;
        self.regions.push_front((region.to_owned(), r));
        self.regions.truncate(self.capacity);
    }
}

proptest! {
    #[test]
    fn table_matches_a_scanning_model(
        capacity in 0usize..6,
        ops in prop::collection::vec((0u8..10, 0u64..1_000_000, 0u64..4096), 0..300),
    ) {
        let hints = HotPathHints::with_capacity(capacity);
        let mut model = Model { capacity, ..Model::default() };
        for (region, kernel_ns, bytes) in ops {
            let name = format!("region-{region}");
            hints.record(&name, kernel_ns, bytes);
            model.record(&name, kernel_ns, bytes);
            prop_assert!(hints.len() <= capacity);
            prop_assert_eq!(hints.len(), model.regions.len());
        }
        for region in 0..10 {
            let name = format!("region-{region}");
            let expected = model.regions.iter().find(|(n, _)| *n == name).map(|(_, r)| *r);
            let got = hints.get(&name);
            prop_assert_eq!(got, expected);
            if let Some(r) = got {
                prop_assert_eq!(r.mean_kernel_ns(), r.kernel_ns_total / r.dispatch_count);
            }
        }
        let stats = hints.stats();
        prop_assert_eq!(stats.resident_entries as usize, model.regions.len());
        prop_assert_eq!(stats.insertions - stats.evictions, model.regions.len() as u64);
    }
}

#[test]
fn concurrent_records_are_all_counted() {
    let hints = Arc::new(
        HotPathHints::with_capacity(16).with_threshold(HotThreshold { min_dispatches: 100, min_mean_kernel_ns: 500 }),
    );
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let hints = Arc::clone(&hints);
            std::thread::spawn(move || {
                for i in 0..2_000u64 {
                    hints.record(&format!("k{}", i % 8), t * 1_000 + i % 7, 64);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let total: u64 = (0..8).map(|k| hints.get(&format!("k{k}")).unwrap().dispatch_count).sum();
    assert_eq!(total, 8_000);
    let k0 = hints.get("k0").unwrap();
    assert_eq!(k0.bytes_total, 1_000 * 64);
    assert_eq!(k0.kernel_ns_max, 3_000 + 6, "max over every thread's samples");
    assert!(hints.is_hot("k0"), "mean is about 1500 ns over 1000 dispatches");
    assert_eq!(hints.hottest(3).len(), 3);
    let s = hints.stats();
    assert_eq!((s.requests, s.insertions, s.evictions, s.rejections), (8_000, 8, 0, 0));
}

#[test]
fn a_large_table_evicts_in_recency_order() {
    let hints = HotPathHints::with_capacity(1_000);
    for i in 0..5_000 {
        hints.record(&format!("r{i}"), i, 0);
        if i % 10 == 0 {
            // Keep r0 recent: it must survive every eviction.
            hints.record("r0", 1, 0);
        }
    }
    assert_eq!(hints.len(), 1_000);
    assert!(hints.get("r0").is_some());
    assert!(hints.get("r4000").is_none(), "among the oldest of the rest");
    assert!(hints.get("r4999").is_some());
    assert_eq!(hints.stats().evictions, 4_000);
}
