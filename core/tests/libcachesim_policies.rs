//! Differential test of every policy that libCacheSim 0.3.5 also has.
//!
//! SIEVE, LFU, ARC, 2Q, S3-FIFO and Belady (plus LRU, FIFO and CLOCK again,
//! on the new trace shapes) must give exactly libCacheSim's hit and miss
//! counts and missed bytes, on byte and object caches; W-TinyLFU and LIRS
//! must be within half a percentage point of its miss ratio on object
//! caches. Traces are seeded and come in several shapes (skewed popularity,
//! scan plus loop, a phase change), capacities run from tiny to larger than
//! the working set.
//!
//! The oracle is `workloads/oracle/libcachesim_oracle.py`; a missing
//! libCacheSim fails the test with the command that installs it.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::Command;

use cachescope_core::cache::Cache;
use cachescope_core::policy::{PolicyKind, Request};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const EXACT: &str = "lru,fifo,clock,sieve,lfu,arc,twoq,s3fifo,belady";
const APPROX: &str = "wtinylfu,lirs";
/// Largest miss-ratio difference allowed for the approximate policies.
const TOLERANCE_PP: f64 = 0.5;

#[derive(Clone, Copy, Debug)]
enum Shape {
    /// Squared-uniform popularity over `keys`, varied sizes, size-0 lines,
    /// keys at and above 2^63, some objects larger than the small caches.
    Skewed,
    /// A hot set, interrupted by one-pass scans and by a loop slightly
    /// larger than the mid-sized caches.
    ScanLoop,
    /// Two skewed phases over disjoint key ranges, then a mix of both.
    PhaseChange,
}

fn size_of(rank: u64) -> u64 {
    match rank % 11 {
        0 => 0,                    // skipped by every simulator
        1 => 5_000 + rank % 3_000, // larger than the small caches
        _ => 1 + (rank * 37) % 700,
    }
}

fn key_of(rank: u64) -> u64 {
    if rank.is_multiple_of(7) { (1u64 << 63) + rank } else { rank.wrapping_mul(2_654_435_761) }
}

fn skewed(rng: &mut ChaCha8Rng, keys: u64) -> u64 {
    let u: f64 = rng.random();
    ((u * u) * keys as f64) as u64
}

/// Writes the trace CSV and returns its (key, size) requests, size-0 included.
fn write_trace(path: &Path, shape: Shape, seed: u64, requests: usize, keys: u64) -> Vec<(u64, u64)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut ranks = Vec::with_capacity(requests);
    match shape {
        Shape::Skewed => ranks.extend((0..requests).map(|_| skewed(&mut rng, keys))),
        Shape::ScanLoop => {
            let mut scan_next = keys;
            while ranks.len() < requests {
                match rng.random_range(0..4) {
                    0 => {
                        // A scan of new keys, never seen again.
                        for _ in 0..rng.random_range(50..300) {
                            ranks.push(scan_next);
                            scan_next += 1;
                        }
                    }
                    1 => {
                        // A loop over a fixed range, a few times.
                        for _ in 0..3 {
                            ranks.extend(keys / 2..keys / 2 + keys / 4);
                        }
                    }
                    _ => ranks.extend((0..200).map(|_| skewed(&mut rng, keys / 4))),
                }
            }
            ranks.truncate(requests);
        }
        Shape::PhaseChange => {
            for i in 0..requests {
                let r = skewed(&mut rng, keys / 2);
                ranks.push(match 3 * i / requests {
                    0 => r,
                    1 => keys / 2 + r,
                    _ => {
                        if rng.random_bool(0.5) {
                            r
                        } else {
                            keys / 2 + r
                        }
                    }
                });
            }
        }
    }
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(f, "time,key,size").unwrap();
    let mut out = Vec::with_capacity(requests);
    for (t, &rank) in ranks.iter().enumerate() {
        let (key, size) = (key_of(rank), size_of(rank));
        writeln!(f, "{t},{key},{size}").unwrap();
        out.push((key, size));
    }
    out
}

#[derive(Debug, serde::Deserialize)]
struct OracleRow {
    policy: String,
    capacity: u64,
    requests: u64,
    misses: u64,
    missed_bytes: u64,
}

fn oracle(trace: &Path, policies: &str, sizes: &[u64], objects: bool) -> Vec<OracleRow> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../workloads/oracle/libcachesim_oracle.py");
    let sizes: Vec<String> = sizes.iter().map(u64::to_string).collect();
    let mut cmd = Command::new("python3");
    cmd.arg(&script).arg(trace).args(["--policies", policies, "--sizes", &sizes.join(",")]);
    if objects {
        cmd.arg("--objects");
    }
    let out = cmd.output().expect("python3 must be on PATH for the libCacheSim oracle");
    assert!(
        out.status.success(),
        "libCacheSim oracle failed (install it with `python3 -m pip install libcachesim==0.3.5`):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("oracle line `{l}`: {e}")))
        .collect()
}

/// The requests as cachescope replays them: size-0 lines dropped, sizes 1
/// on an object cache, next access filled in by a reverse pass.
fn requests(trace: &[(u64, u64)], objects: bool) -> Vec<Request> {
    let mut reqs: Vec<Request> = trace
        .iter()
        .filter(|&&(_, size)| size != 0)
        .map(|&(key, size)| Request::new(key, if objects { 1 } else { size }))
        .collect();
    let mut next: HashMap<u64, u64> = HashMap::new();
    for (i, r) in reqs.iter_mut().enumerate().rev() {
        r.next_access = next.insert(r.key, i as u64).unwrap_or(Request::NEVER);
    }
    reqs
}

struct Counts {
    requests: u64,
    misses: u64,
    missed_bytes: u64,
}

fn replay(kind: PolicyKind, capacity: u64, reqs: &[Request]) -> Counts {
    let mut cache = Cache::new(capacity, kind.build()).unwrap();
    for r in reqs {
        cache.access(r);
    }
    let s = cache.stats();
    Counts { requests: s.requests, misses: s.misses, missed_bytes: s.missed_bytes }
}

fn check(shape: Shape, seed: u64, n: usize, keys: u64, sizes: &[u64], objects: bool, policies: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trace.csv");
    let trace = write_trace(&path, shape, seed, n, keys);
    let reqs = requests(&trace, objects);
    let rows = oracle(&path, policies, sizes, objects);
    assert_eq!(rows.len(), policies.split(',').count() * sizes.len());
    let mut failures = Vec::new();
    for row in rows {
        let kind: PolicyKind = row.policy.parse().unwrap();
        let ours = replay(kind, row.capacity, &reqs);
        let what = format!("{} capacity {} {shape:?} seed {seed} objects={objects}", row.policy, row.capacity);
        assert_eq!(ours.requests, row.requests, "{what}: requests");
        if kind.matches_libcachesim_exactly() {
            if (ours.misses, ours.missed_bytes) != (row.misses, row.missed_bytes) {
                failures.push(format!(
                    "{what}: misses {} vs libCacheSim {}, missed bytes {} vs {}",
                    ours.misses, row.misses, ours.missed_bytes, row.missed_bytes
                ));
            }
        } else {
            let diff_pp = 100.0 * (ours.misses as f64 - row.misses as f64).abs() / row.requests as f64;
            if diff_pp > TOLERANCE_PP {
                failures.push(format!(
                    "{what}: miss ratio differs by {diff_pp:.3} pp ({} vs libCacheSim {} misses of {})",
                    ours.misses, row.misses, row.requests
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{} disagreements:\n{}", failures.len(), failures.join("\n"));
}

// S3-FIFO aborts libCacheSim's process below a capacity of 10, so the tiny
// byte capacities start at 10 (and `s3fifo_below_ten_caches_nothing` covers
// the rest).

#[test]
fn exact_policies_agree_on_byte_caches() {
    let sizes = [10, 700, 1_000, 5_000, 20_000, 200_000, 2_000_000];
    check(Shape::Skewed, 1, 20_000, 3_000, &sizes, false, EXACT);
    check(Shape::Skewed, 2, 20_000, 500, &[10, 700, 5_000, 50_000], false, EXACT);
    check(Shape::ScanLoop, 3, 20_000, 2_000, &sizes, false, EXACT);
    check(Shape::PhaseChange, 4, 20_000, 2_000, &sizes, false, EXACT);
}

#[test]
fn exact_policies_agree_on_object_caches() {
    let sizes = [10, 11, 25, 100, 400, 1_000];
    check(Shape::Skewed, 5, 20_000, 3_000, &sizes, true, EXACT);
    check(Shape::ScanLoop, 6, 20_000, 2_000, &sizes, true, EXACT);
    check(Shape::PhaseChange, 7, 20_000, 2_000, &sizes, true, EXACT);
}

#[test]
fn exact_policies_agree_on_tiny_object_caches() {
    // Capacities 1..9: every policy but S3-FIFO (which libCacheSim refuses).
    check(Shape::Skewed, 8, 5_000, 200, &[1, 2, 3, 5, 9], true, "lru,fifo,clock,sieve,lfu,arc,twoq,belady");
}

#[test]
fn approximate_policies_are_close_on_object_caches() {
    let sizes = [100, 400, 1_000];
    check(Shape::Skewed, 9, 20_000, 3_000, &sizes, true, APPROX);
    check(Shape::ScanLoop, 10, 20_000, 2_000, &sizes, true, APPROX);
    check(Shape::PhaseChange, 11, 20_000, 2_000, &sizes, true, APPROX);
}

#[test]
fn s3fifo_below_ten_caches_nothing() {
    // trunc(0.1 C) = 0 for C < 10: no object fits the small queue.
    for cap in 1..10 {
        let mut c = Cache::new(cap, PolicyKind::S3Fifo.build()).unwrap();
        for k in 0..50 {
            c.access(&Request::new(k % 5, 1));
        }
        assert_eq!(c.stats().hits, 0);
        assert!(c.is_empty());
    }
}
