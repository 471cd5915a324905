//! Differential test: LRU, FIFO and CLOCK give exactly libCacheSim 0.3.5's
//! hit and miss counts and missed bytes, on byte and object caches.
//!
//! The oracle is libCacheSim itself, through its Python package
//! (`workloads/oracle/libcachesim_oracle.py`); `scripts/test.sh` installs
//! it. A missing oracle fails the test with the command that installs it:
//! a skipped differential test would hide exactly what it exists to catch.

use std::io::Write;
use std::path::Path;
use std::process::Command;

use cachescope_core::cache::Cache;
use cachescope_core::policy::{PolicyKind, Request};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A seeded trace with skewed popularity, varied sizes, size-0 lines (which
/// must be skipped), keys at and above 2^63, and objects larger than some
/// of the caches.
fn write_trace(path: &Path, seed: u64, requests: usize, keys: u64) -> Vec<(u64, u64)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(f, "time,key,size").unwrap();
    let mut out = Vec::new();
    for t in 0..requests {
        // Skew: square a uniform draw, so low ranks are far more frequent.
        let u: f64 = rng.random();
        let rank = ((u * u) * keys as f64) as u64;
        let key = if rank.is_multiple_of(7) { (1u64 << 63) + rank } else { rank.wrapping_mul(2654435761) };
        let size = match rank % 11 {
            0 => 0,                    // skipped by every simulator
            1 => 5_000 + rank % 3_000, // larger than the small caches
            _ => 1 + (rank * 37) % 700,
        };
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
    String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn check(seed: u64, requests: usize, keys: u64, sizes: &[u64], objects: bool) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trace.csv");
    let trace = write_trace(&path, seed, requests, keys);
    let rows = oracle(&path, "lru,fifo,clock", sizes, objects);
    assert_eq!(rows.len(), 3 * sizes.len());
    for row in rows {
        let kind: PolicyKind = row.policy.parse().unwrap();
        let mut cache = Cache::new(row.capacity, kind.build()).unwrap();
        for &(key, size) in &trace {
            if size == 0 {
                continue;
            }
            cache.access(&Request::new(key, if objects { 1 } else { size }));
        }
        let s = cache.stats();
        let what = format!("{} capacity {} seed {seed} objects={objects}", row.policy, row.capacity);
        assert_eq!(s.requests, row.requests, "{what}: requests");
        assert_eq!(s.misses, row.misses, "{what}: misses (hits {} vs {})", s.hits, row.requests - row.misses);
        assert_eq!(s.missed_bytes, row.missed_bytes, "{what}: missed bytes");
    }
}

#[test]
fn byte_caches_agree_with_libcachesim() {
    check(1, 20_000, 3_000, &[1_000, 20_000, 200_000, 2_000_000], false);
    check(2, 20_000, 500, &[700, 5_000, 50_000], false);
}

#[test]
fn object_caches_agree_with_libcachesim() {
    check(3, 20_000, 3_000, &[1, 10, 100, 1_000], true);
}
