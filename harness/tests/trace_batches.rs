//! The batched decoder (`DecodedTrace::load`) sees exactly the events the
//! one-at-a-time reader yields, frees included, whatever the limit: a batch
//! boundary may fall anywhere, including right before a free.

use std::path::Path;

use cachescope_harness::trace::{DecodedTrace, Flatten, LoadOptions, TraceEvent, TraceReader};

#[test]
fn batched_decoding_keeps_every_free() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../workloads/traces/gpt2-decode.jsonl.gz");
    let events: Vec<(u64, bool)> = TraceReader::open(&path, None, Flatten::Buffers, true)
        .unwrap()
        .map(|e| match e.unwrap() {
            TraceEvent::Request(r) => (r.key, false),
            TraceEvent::Free(f) => (f.key, true),
        })
        .collect();
    assert!(events.iter().any(|e| e.1), "the GPT-2 trace has frees");
    for limit in [None, Some(600), Some(601), Some(800), Some(1000), Some(2500)] {
        let options = LoadOptions { gpu: true, limit, ..LoadOptions::default() };
        let t = DecodedTrace::load(&path, None, options).unwrap();
        let is_free = t.is_free.as_ref().unwrap();
        assert_eq!(t.keys.len(), is_free.len());
        for (i, (&key, &free)) in t.keys.iter().zip(is_free).enumerate() {
            assert_eq!((key, free), events[i], "limit {limit:?}: event {i}");
        }
        let requests = t.keys.len() - is_free.iter().filter(|&&f| f).count();
        if let Some(l) = limit {
            assert_eq!(requests as u64, l, "limit counts requests, not frees");
        }
    }
}
