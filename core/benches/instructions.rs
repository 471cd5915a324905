//! Instruction counts of every policy's hot path, under callgrind
//! (gungraun): unlike times, they do not move when a neighbour loads a shared
//! machine, so a change of a few percent in a policy's cost shows.
//!
//! Each benchmark replays one fixed, seeded stream through a fresh object
//! cache of one policy and counts only the replay: generating the stream and
//! building the cache happen in the setup, outside the count. The stream is
//! [`STREAM_LEN`] Zipf-like requests (`workload::zipf_keys`, exponent 0.9)
//! over [`KEYS`] keys, with next accesses filled in for the clairvoyant
//! policies; the cache holds [`CAPACITY`] objects (10% of the keys), so it
//! hits and evicts.
//!
//! Run with `bash scripts/instructions.sh` (installs the matching
//! `gungraun-runner`, runs this bench and writes the table committed under
//! `results/<date>-<machine>/instructions/`). Plain `cargo test --benches`
//! only builds it and runs each replay once, natively, as a smoke test.

#![expect(missing_docs, reason = "gungraun's macros generate undocumented public items")]

use std::hint::black_box;

use cachescope_core::cache::{Cache, CacheConfig, DenseIndex};
use cachescope_core::policy::{EvictionPolicy, PolicyKind, PolicyVisitor, Request};
use gungraun::{library_benchmark, library_benchmark_group, main};

// Shared with hot_paths.rs; this bench uses only `zipf_ranks`.
#[expect(dead_code, reason = "the other stream makers serve hot_paths.rs")]
mod workload;

/// Requests per replay.
const STREAM_LEN: usize = 20_000;
/// Distinct keys.
const KEYS: usize = 5_000;
/// Objects the cache holds.
const CAPACITY: u64 = 500;

/// The stream, with dense keys `0..KEYS` (rank = key) and next accesses.
fn stream() -> Vec<Request> {
    let ranks = workload::zipf_ranks(KEYS, STREAM_LEN, 7);
    let mut next_seen = vec![Request::NEVER; KEYS];
    let mut reqs: Vec<Request> = ranks.iter().map(|&r| Request::new(r as u64, 1)).collect();
    for (i, req) in reqs.iter_mut().enumerate().rev() {
        req.next_access = next_seen[req.key as usize];
        next_seen[req.key as usize] = i as u64;
    }
    reqs
}

/// A ready cache of `P` and the stream to replay through it.
struct Replay {
    policy: PolicyKind,
    reqs: Vec<Request>,
}

/// Builds the replay for a policy named as `cachescope policies` lists it.
fn setup(name: &str) -> Replay {
    Replay { policy: name.parse().expect("a policy name"), reqs: stream() }
}

struct Run<'a>(&'a [Request]);

impl PolicyVisitor for Run<'_> {
    type Output = u64;

    fn visit<P: EvictionPolicy + 'static>(self, policy: P) -> u64 {
        let index = DenseIndex::with_keys(KEYS);
        let mut cache = Cache::with_index(CacheConfig::with_capacity(CAPACITY), policy, index).expect("capacity > 0");
        for req in self.0 {
            cache.access(req);
        }
        cache.stats().hits
    }
}

#[library_benchmark]
#[benches::policy(
    args = ["lru", "fifo", "clock", "sieve", "lfu", "arc", "twoq", "s3fifo", "belady", "wtinylfu", "lirs", "gdsf", "gpu_cost", "belady_cost"],
    setup = setup
)]
fn replay(r: Replay) -> u64 {
    black_box(r.policy.visit(Run(black_box(&r.reqs))))
}

library_benchmark_group!(name = policies; benchmarks = replay);

main!(library_benchmark_groups = policies);
