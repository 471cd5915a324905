//! An interrupted `cachescope sim` (SIGTERM, Ctrl-C = SIGINT) leaves a
//! valid results file holding complete runs: the test starts a long sweep,
//! polls until the file holds at least one run, sends the signal, and checks
//! the exit status, the file (parses, every run complete, no temp file left)
//! and one run against a fresh single run of the same policy and size.
//!
//! Bounded: every wait has a deadline and the child is killed on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cachescope_harness::results::ResultsFile;
use cachescope_harness::sim::RunResult;

const SPEC: &str = r#"
description = "interrupt test: zipf 0.9 over 20k keys"
seed = 7
requests = 200_000

[size]
dist = "lognormal"
median = 4096
sigma = 1.0
min = 64
max = 262_144

[[component]]
kind = "zipf"
keys = 20_000
alpha = 0.9
weight = 1.0
"#;

struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn read_results(path: &Path) -> Option<ResultsFile> {
    let text = std::fs::read_to_string(path).ok()?;
    // Atomic writes: whenever the file exists it must parse.
    Some(serde_json::from_str(&text).unwrap_or_else(|e| panic!("torn results file ({e}):\n{text}")))
}

fn sim(spec: &Path, out: &Path, policy: &str, sizes: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cachescope"));
    cmd.args(["sim", "--trace"]).arg(spec);
    cmd.args(["--policy", policy, "--size", sizes, "--threads", "1", "--quiet", "--out"]).arg(out);
    cmd
}

/// The counters of a run (its wall time left out).
fn counters(r: &RunResult) -> serde_json::Value {
    let mut v = serde_json::to_value(r).unwrap();
    v.as_object_mut().unwrap().remove("seconds");
    v
}

fn interrupted_sweep_keeps_finished_runs(signal: &str, expected_code: i32) {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("zipf.toml");
    std::fs::write(&spec, SPEC).unwrap();
    let out = dir.path().join("results").join("sweep.json");
    // 16 policies x 24 sizes, one thread: minutes of work, stopped after
    // the first runs.
    let sizes: Vec<String> = (1..=24).map(|i| format!("{}%", i * 4)).collect();
    let sizes = sizes.join(",");
    let mut child =
        Guard(sim(&spec, &out, "all", &sizes).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("spawn"));

    let deadline = Instant::now() + Duration::from_secs(120);
    let before = loop {
        if let Some(f) = read_results(&out)
            && !f.runs.is_empty()
        {
            break f;
        }
        assert!(child.0.try_wait().unwrap().is_none(), "the sweep ended before it could be interrupted");
        assert!(Instant::now() < deadline, "no run finished within 120 s");
        std::thread::sleep(Duration::from_millis(10));
    };
    let status = Command::new("kill").args([signal, &child.0.id().to_string()]).status().expect("kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the sweep did not stop within 30 s of {signal}");
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.0.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(expected_code), "exit status after {signal}; stderr: {stderr}");
    assert!(stderr.contains("results already written are complete"), "{stderr}");

    let file = read_results(&out).expect("the results file survives");
    let total = 16 * 24;
    assert!(file.runs.len() >= before.runs.len() && file.runs.len() < total, "{} runs", file.runs.len());
    assert_eq!(file.kind, "sim");
    for r in &file.runs {
        assert_eq!(r.hits + r.misses, r.requests, "{} {}: complete counters", r.policy, r.size);
        assert_eq!(r.requests, 200_000, "{} {}: a whole run", r.policy, r.size);
        assert!(r.missed_bytes <= r.requested_bytes && r.seconds > 0.0);
    }
    let leftovers: Vec<PathBuf> =
        std::fs::read_dir(out.parent().unwrap()).unwrap().map(|e| e.unwrap().path()).filter(|p| p != &out).collect();
    assert!(leftovers.is_empty(), "temp files left behind: {leftovers:?}");

    // The last saved run equals a fresh single run of its policy and size.
    let last = file.runs.last().unwrap();
    let single = dir.path().join("single.json");
    let mut cmd = sim(&spec, &single, &last.policy, &last.size);
    let ok = cmd.stdout(Stdio::null()).status().expect("single run");
    assert!(ok.success());
    let fresh = read_results(&single).unwrap();
    assert_eq!(fresh.runs.len(), 1);
    assert_eq!(
        counters(&fresh.runs[0]),
        counters(last),
        "interrupted sweep vs fresh run of {} {}",
        last.policy,
        last.size
    );
    eprintln!("{signal}: exit {expected_code}, {} of {total} runs saved and complete", file.runs.len());
}

#[test]
fn sigterm_leaves_a_valid_results_file() {
    interrupted_sweep_keeps_finished_runs("-TERM", 143);
}

#[test]
fn ctrl_c_leaves_a_valid_results_file() {
    interrupted_sweep_keeps_finished_runs("-INT", 130);
}
