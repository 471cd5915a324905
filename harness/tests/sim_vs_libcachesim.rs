//! End to end: `cachescope sim` agrees exactly with libCacheSim 0.3.5 for the
//! nine exact policies, on seeded traces of several shapes (Zipf, scan +
//! loop, phase change) and on the two recorded GPU traces, on byte and
//! object caches at 0.1%, 1% and 10%.
//!
//! The oracle is libCacheSim itself (`workloads/oracle/libcachesim_oracle.py`),
//! fed the CSV that `cachescope convert`/`gen` writes from the same trace.
//! A missing oracle fails the test (scripts/test.sh installs it).

use std::path::{Path, PathBuf};
use std::process::Command;

const EXACT: &str = "lru,fifo,clock,sieve,lfu,arc,twoq,s3fifo,belady";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn cachescope(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_cachescope")).args(args).output().expect("run cachescope");
    assert!(out.status.success(), "cachescope {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[derive(serde::Deserialize)]
struct Row {
    policy: String,
    capacity: u64,
    requests: u64,
    misses: u64,
    missed_bytes: u64,
}

fn oracle(csv: &Path, policies: &str, capacities: &[u64], objects: bool) -> Vec<Row> {
    let sizes: Vec<String> = capacities.iter().map(u64::to_string).collect();
    let mut cmd = Command::new("python3");
    cmd.arg(repo().join("workloads/oracle/libcachesim_oracle.py")).arg(csv).args([
        "--policies",
        policies,
        "--sizes",
        &sizes.join(","),
    ]);
    if objects {
        cmd.arg("--objects");
    }
    let out = cmd.output().expect("python3 runs the libCacheSim oracle");
    assert!(
        out.status.success(),
        "libCacheSim oracle failed (python3 -m pip install libcachesim==0.3.5):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Simulates `csv` with every exact policy and checks each run against the oracle.
fn check(name: &str, csv: &Path, dir: &Path, objects: bool) {
    let out = dir.join(format!("{name}-{objects}.json"));
    let mut args = vec!["sim", "--trace", csv.to_str().unwrap(), "--format", "csv", "--policy", EXACT];
    args.extend(["--size", "0.1%,1%,10%", "--quiet", "--out", out.to_str().unwrap()]);
    if objects {
        args.push("--objects");
    }
    cachescope(&args);
    let results: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let runs = results["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 9 * 3, "{name}: every policy x size ran");
    let mut capacities: Vec<u64> = runs.iter().map(|r| r["capacity"].as_u64().unwrap()).collect();
    capacities.sort_unstable();
    capacities.dedup();
    // libCacheSim's S3-FIFO aborts below a capacity of 10: compare it above.
    let s3_caps: Vec<u64> = capacities.iter().copied().filter(|&c| c >= 10).collect();
    let mut rows = oracle(csv, "lru,fifo,clock,sieve,lfu,arc,twoq,belady", &capacities, objects);
    if !s3_caps.is_empty() {
        rows.extend(oracle(csv, "s3fifo", &s3_caps, objects));
    }
    let mut compared = 0;
    for row in &rows {
        let run = runs
            .iter()
            .find(|r| r["policy"] == row.policy.as_str() && r["capacity"] == row.capacity)
            .unwrap_or_else(|| panic!("{name}: no run for {} at {}", row.policy, row.capacity));
        let what = format!("{name} {} capacity {} objects={objects}", row.policy, row.capacity);
        assert_eq!(run["requests"].as_u64(), Some(row.requests), "{what}: requests");
        assert_eq!(run["misses"].as_u64(), Some(row.misses), "{what}: misses");
        assert_eq!(run["missed_bytes"].as_u64(), Some(row.missed_bytes), "{what}: missed bytes");
        compared += 1;
    }
    assert!(compared >= 8 * 3, "{name}: only {compared} runs compared");
}

fn spec(dir: &Path, name: &str, body: &str) -> PathBuf {
    let spec = dir.join(format!("{name}.toml"));
    std::fs::write(&spec, body).unwrap();
    let csv = dir.join(format!("{name}.csv"));
    cachescope(&["gen", spec.to_str().unwrap(), "--to", "csv", "--out", csv.to_str().unwrap()]);
    csv
}

const SIZES: &str = "[size]\ndist = \"lognormal\"\nmedian = 4096\nsigma = 1.2\nmin = 64\nmax = 262144\n";

#[test]
fn zipf_agrees_with_libcachesim() {
    let dir = tempfile::tempdir().unwrap();
    let body = format!(
        "seed = 1\nrequests = 40000\n{SIZES}\n[[component]]\nkind = \"zipf\"\nkeys = 8000\nalpha = 0.9\nweight = 1.0\n"
    );
    let csv = spec(dir.path(), "zipf", &body);
    check("zipf", &csv, dir.path(), false);
    check("zipf", &csv, dir.path(), true);
}

#[test]
fn scan_and_loop_agree_with_libcachesim() {
    let dir = tempfile::tempdir().unwrap();
    let body = format!(
        "seed = 2\nrequests = 40000\n{SIZES}\n[[component]]\nkind = \"zipf\"\nkeys = 4000\nalpha = 1.0\nweight = 0.5\n\
         [[component]]\nkind = \"scan\"\nweight = 0.25\nrun = 300\n\
         [[component]]\nkind = \"loop\"\nkeys = 1500\nweight = 0.25\n"
    );
    let csv = spec(dir.path(), "scan-loop", &body);
    check("scan-loop", &csv, dir.path(), false);
    check("scan-loop", &csv, dir.path(), true);
}

#[test]
fn phase_change_agrees_with_libcachesim() {
    let dir = tempfile::tempdir().unwrap();
    let body = format!(
        "seed = 3\nrequests = 40000\n{SIZES}\n\
         [[phase]]\nuntil = 0.5\n[[phase.component]]\nkind = \"zipf\"\nkeys = 5000\nalpha = 1.0\nkeyspace = \"a\"\n\
         [[phase]]\n[[phase.component]]\nkind = \"zipf\"\nkeys = 5000\nalpha = 1.0\nkeyspace = \"b\"\n"
    );
    let csv = spec(dir.path(), "phase", &body);
    check("phase", &csv, dir.path(), false);
    check("phase", &csv, dir.path(), true);
}

#[test]
fn recorded_gpu_traces_agree_with_libcachesim() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["resnet50-train", "gpt2-decode"] {
        let trace = repo().join(format!("workloads/traces/{name}.jsonl.gz"));
        let csv = dir.path().join(format!("{name}.csv"));
        cachescope(&["convert", "--trace", trace.to_str().unwrap(), "--to", "csv", "--out", csv.to_str().unwrap()]);
        check(name, &csv, dir.path(), false);
        check(name, &csv, dir.path(), true);
    }
}
