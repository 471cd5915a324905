//! `cachescope compare` and `cachescope bench` as CI uses them: exit codes,
//! what the messages name, and the shape of the markdown and BMF outputs.
//!
//! One real bench file (a tiny suite) is made once per test process; the
//! other cases are edits of it. Timing cases with synthetic samples draw
//! them from a seeded generator; the one real slowdown is made with the
//! test-only knob. Nothing sleeps.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

const WORKLOADS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../workloads");

fn cachescope(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cachescope"));
    cmd.args(args).env_remove("CACHESCOPE_TEST_SLOWDOWN");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run cachescope")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// A tiny suite: two traces (a synthetic spec and a recorded GPU trace), two
/// policies, one size each.
fn write_suite(dir: &Path, repeats: u32) -> PathBuf {
    let suite = dir.join(format!("tiny-{repeats}.toml"));
    std::fs::write(
        &suite,
        format!(
            "description = \"test\"\nrepeats = {repeats}\n\n\
             [[trace]]\nname = \"default\"\npath = \"{WORKLOADS}/default.toml\"\nlimit = 100_000\n\
             policies = [\"lru\", \"s3fifo\"]\nsizes = [\"1%\"]\n\n\
             [[trace]]\nname = \"gpt2\"\npath = \"{WORKLOADS}/traces/gpt2-decode.jsonl.gz\"\ngpu = true\n\
             policies = [\"lru\", \"sieve\"]\nsizes = [\"10%peak\"]\n"
        ),
    )
    .unwrap();
    suite
}

struct Fixture {
    dir: tempfile::TempDir,
    bench: PathBuf,
}

/// The real bench file every edit starts from (made once).
fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let suite = write_suite(dir.path(), 5);
        let bench = dir.path().join("bench.json");
        let out = cachescope(&["bench", suite.to_str().unwrap(), "--out", bench.to_str().unwrap(), "--quiet"], &[]);
        assert!(out.status.success(), "{}", text(&out));
        Fixture { dir, bench }
    })
}

fn base_json() -> Value {
    serde_json::from_str(&std::fs::read_to_string(&fixture().bench).unwrap()).unwrap()
}

fn write(name: &str, v: &Value) -> PathBuf {
    let path = fixture().dir.path().join(name);
    std::fs::write(&path, serde_json::to_string_pretty(v).unwrap()).unwrap();
    path
}

fn compare(baseline: &Path, current: &Path, extra: &[&str]) -> Output {
    let args = [&["compare", baseline.to_str().unwrap(), current.to_str().unwrap()][..], extra].concat();
    cachescope(&args, &[])
}

/// Replaces every run's timing samples (wall and on-CPU) with `n` draws of
/// `median * factor * (1 + N(0, sd))`, seeded.
fn with_samples(mut v: Value, seed: u64, factor: f64, sd: f64, n: usize) -> Value {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let runs = v["runs"].as_array().unwrap().len();
    let mut cpu = Vec::new();
    for i in 0..runs {
        let draw = |rng: &mut ChaCha8Rng| -> Vec<f64> {
            (0..n)
                .map(|_| {
                    // Sum of 12 uniforms: close enough to a normal draw.
                    let z: f64 = (0..12).map(|_| rng.random::<f64>()).sum::<f64>() - 6.0;
                    0.010 * (1.0 + i as f64 / 10.0) * factor * (1.0 + sd * z)
                })
                .collect()
        };
        let wall = draw(&mut rng);
        v["runs"][i]["seconds_samples"] = wall.into();
        cpu.push(Value::from(draw(&mut rng)));
    }
    v["extra"]["cpu_seconds_samples"] = cpu.into();
    v["extra"].as_object_mut().unwrap().remove("reference_seconds_samples");
    v
}

#[test]
fn an_identical_pair_compares_clean() {
    let f = &fixture().bench;
    let out = compare(f, f, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("ok: 4 runs, no change in behaviour"), "{t}");
}

#[test]
fn a_one_miss_difference_fails_and_names_the_run() {
    let mut v = base_json();
    let run = &mut v["runs"][1];
    run["misses"] = (run["misses"].as_u64().unwrap() + 1).into();
    run["hits"] = (run["hits"].as_u64().unwrap() - 1).into();
    let (policy, size) = (run["policy"].as_str().unwrap().to_owned(), run["size"].as_str().unwrap().to_owned());
    let cur = write("one-miss.json", &v);
    let out = compare(&fixture().bench, &cur, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains(&format!("trace default policy {policy} size {size}")), "{t}");
    assert!(t.contains("misses") && t.contains("+1 ("), "{t}");
    assert!(t.contains("1 of 4 runs changed behaviour"), "{t}");
}

#[test]
fn fewer_misses_pass_only_when_improvements_are_allowed() {
    let mut v = base_json();
    let run = &mut v["runs"][0];
    run["misses"] = (run["misses"].as_u64().unwrap() - 1).into();
    run["hits"] = (run["hits"].as_u64().unwrap() + 1).into();
    let cur = write("one-fewer-miss.json", &v);
    assert_eq!(compare(&fixture().bench, &cur, &[]).status.code(), Some(1));
    let out = compare(&fixture().bench, &cur, &["--allow-improvements"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("improved (allowed)"), "{}", text(&out));
    // More misses are never an improvement.
    let mut v = base_json();
    v["runs"][0]["misses"] = (v["runs"][0]["misses"].as_u64().unwrap() + 1).into();
    let cur = write("one-more-miss.json", &v);
    assert_eq!(compare(&fixture().bench, &cur, &["--allow-improvements"]).status.code(), Some(1));
}

#[test]
fn a_timing_difference_inside_the_noise_is_not_flagged() {
    // 3% noise per sample, 2% apart: inside the noise and under the 5% threshold.
    let base = write("noise-base.json", &with_samples(base_json(), 1, 1.0, 0.03, 10));
    let cur = write("noise-cur.json", &with_samples(base_json(), 2, 1.02, 0.03, 10));
    let out = compare(&base, &cur, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!text(&out).contains("SLOWER"), "{}", text(&out));
    // The same difference with 10% noise per sample: still nothing.
    let base = write("noise10-base.json", &with_samples(base_json(), 3, 1.0, 0.10, 10));
    let cur = write("noise10-cur.json", &with_samples(base_json(), 4, 1.05, 0.10, 10));
    assert_eq!(compare(&base, &cur, &[]).status.code(), Some(0));
}

#[test]
fn a_synthetic_slowdown_beyond_the_noise_is_flagged_with_its_interval() {
    let base = write("slow-base.json", &with_samples(base_json(), 5, 1.0, 0.03, 10));
    let cur = write("slow-cur.json", &with_samples(base_json(), 6, 1.3, 0.03, 10));
    let out = compare(&base, &cur, &["--format", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["basis"], "cpu");
    for run in report["runs"].as_array().unwrap() {
        let t = &run["timing"];
        assert_eq!(t["verdict"], "slower", "{run}");
        let (lo, ratio, hi) =
            (t["lower"].as_f64().unwrap(), t["ratio"].as_f64().unwrap(), t["upper"].as_f64().unwrap());
        assert!(lo > 1.05 && lo <= ratio && ratio <= hi, "{lo} {ratio} {hi}");
    }
    // Report-only timings: shown, exit 0.
    let out = compare(&base, &cur, &["--timings", "report"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("SLOWER"), "{}", text(&out));
}

#[test]
fn a_real_30_percent_slowdown_from_the_test_knob_is_flagged() {
    // Real times on a shared machine (other tests run beside this one): a
    // pair made while a neighbour's burst hit only the baseline can hide the
    // slowdown, so a pair is tried up to three times; a 30% slowdown missed
    // three times in a row is a real failure.
    let dir = tempfile::tempdir().unwrap();
    let suite = write_suite(dir.path(), 15);
    let s = suite.to_str().unwrap();
    let mut reports = Vec::new();
    for attempt in 0..3 {
        let (base, slow) =
            (dir.path().join(format!("base{attempt}.json")), dir.path().join(format!("slow{attempt}.json")));
        let out = cachescope(&["bench", s, "--out", base.to_str().unwrap(), "--quiet"], &[]);
        assert!(out.status.success(), "{}", text(&out));
        let out = cachescope(
            &["bench", s, "--out", slow.to_str().unwrap(), "--quiet"],
            &[("CACHESCOPE_TEST_SLOWDOWN", "0.3")],
        );
        assert!(out.status.success(), "{}", text(&out));
        assert!(text(&out).contains("test-only"), "the knob must announce itself: {}", text(&out));
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&slow).unwrap()).unwrap();
        assert_eq!(v["extra"]["test_slowdown"], 0.3);
        let out = compare(&base, &slow, &["--format", "json"]);
        assert!(matches!(out.status.code(), Some(0 | 1)), "{}", text(&out));
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(report["notes"].to_string().contains("CACHESCOPE_TEST_SLOWDOWN"), "{report}");
        // The knob changes times only: behaviour is the same.
        assert!(report["runs"].as_array().unwrap().iter().all(|r| r["behaviour"] == "unchanged"), "{report}");
        if out.status.code() == Some(1) {
            return;
        }
        reports.push(report["suite_timing"].clone());
    }
    panic!("a 30% slowdown was not flagged in three tries; suite timings: {reports:?}");
}

#[test]
fn mismatched_inputs_exit_2_and_say_why() {
    let base = &fixture().bench;
    let expect_2 = |cur: &Path, needles: &[&str]| {
        let out = compare(base, cur, &[]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        for n in needles {
            assert!(err.contains(n), "`{n}` not in: {err}");
        }
        assert!(!err.contains("panicked"), "{err}");
    };
    // A different trace.
    let mut v = base_json();
    v["trace"][0]["identity"]["blake3"] = "00".repeat(32).into();
    v["trace"][0]["identity"]["path"] = "elsewhere.toml".into();
    expect_2(&write("other-trace.json", &v), &["different traces for `default`", "elsewhere.toml", "0000000000000000"]);
    // The same file read differently.
    let mut v = base_json();
    v["trace"][0]["identity"]["options"]["limit"] = 5.into();
    expect_2(&write("other-limit.json", &v), &["read differently", "`options`"]);
    // Another schema version.
    let mut v = base_json();
    v["schema_version"] = 2.into();
    expect_2(&write("schema2.json", &v), &["schema versions differ", "version 1", "2"]);
    // A missing field.
    let mut v = base_json();
    v["runs"][0].as_object_mut().unwrap().remove("misses");
    expect_2(&write("no-misses.json", &v), &["not a results file", "missing field `misses`"]);
    // A figure on one side only.
    let mut v = base_json();
    v["runs"][0]["compiles"] = 3.into();
    expect_2(&write("extra-figure.json", &v), &["field `compiles`", "current run", "trace `default`"]);
    // Garbage, and no file at all.
    let garbage = fixture().dir.path().join("garbage.json");
    std::fs::write(&garbage, b"\x00\x01 not json").unwrap();
    expect_2(&garbage, &["garbage.json", "is not JSON"]);
    expect_2(&fixture().dir.path().join("absent.json"), &["cannot read", "absent.json"]);
    // A sim file against a bench file.
    let mut v = base_json();
    v["kind"] = "sim".into();
    expect_2(&write("kind-sim.json", &v), &["`bench` file", "`sim` file"]);
}

#[test]
fn markdown_is_a_pull_request_comment() {
    let mut v = base_json();
    v["runs"][0]["misses"] = (v["runs"][0]["misses"].as_u64().unwrap() + 7).into();
    let cur = write("md-cur.json", &v);
    let out = compare(&fixture().bench, &cur, &["--format", "markdown"]);
    assert_eq!(out.status.code(), Some(1));
    let md = String::from_utf8_lossy(&out.stdout);
    let first = md.lines().next().unwrap();
    assert!(first.starts_with("### ❌ cachescope compare: REGRESSION"), "{md}");
    assert!(md.contains("| trace | policy | size | figure | baseline | current | change |"), "{md}");
    assert!(md.contains("| default | lru | 1% | misses |") && md.contains("| +7 ("), "{md}");
    assert!(md.contains("<details><summary>All 4 runs</summary>") && md.trim_end().ends_with("</details>"), "{md}");
    let clean = compare(&fixture().bench, &fixture().bench, &["--format", "markdown"]);
    assert!(String::from_utf8_lossy(&clean.stdout).starts_with("### ✅ cachescope compare: ok"));
}

#[test]
fn bmf_export_has_the_bencher_shape() {
    let f = &fixture().bench;
    let bmf = fixture().dir.path().join("bmf.json");
    let out = compare(f, f, &["--bmf", bmf.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&bmf).unwrap()).unwrap();
    let benches = v.as_object().unwrap();
    assert_eq!(benches.len(), 4);
    let b = &v["gpt2/sieve/10%peak"];
    assert!(b["miss_ratio"]["value"].as_f64().unwrap() > 0.0, "{v}");
    assert!(b["byte_miss_ratio"]["value"].is_number(), "{v}");
    for m in ["latency", "throughput"] {
        let (lo, val, hi) = (
            b[m]["lower_value"].as_f64().unwrap(),
            b[m]["value"].as_f64().unwrap(),
            b[m]["upper_value"].as_f64().unwrap(),
        );
        assert!(lo <= val && val <= hi, "{m}: {lo} {val} {hi}");
    }
}

#[test]
fn bench_files_carry_samples_and_provenance() {
    let v = base_json();
    assert_eq!(v["kind"], "bench");
    assert_eq!(v["schema_version"], 1);
    assert!(v["tool"]["command"].as_array().unwrap().iter().any(|a| a == "bench"));
    assert!(v["tool"]["git_rev"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(v["tool"]["machine"]["cpus"].as_u64().unwrap() >= 1);
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 4);
    assert_eq!(v["extra"]["run_traces"], serde_json::json!(["default", "default", "gpt2", "gpt2"]));
    for r in runs {
        assert_eq!(r["seconds_samples"].as_array().unwrap().len(), 5, "{r}");
    }
    assert_eq!(v["trace"][1]["identity"]["format"], "dispatch");
    assert!(v["runs"][2]["uploads"].is_u64(), "the GPU model's figures are in GPU runs");
    // The same suite again: the same deterministic figures.
    let again = fixture().dir.path().join("again.json");
    let suite = write_suite(fixture().dir.path(), 2);
    let out = cachescope(&["bench", suite.to_str().unwrap(), "--out", again.to_str().unwrap(), "--quiet"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let out = compare(&fixture().bench, &again, &["--timings", "report"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("not judged"), "two samples are too few to judge: {}", text(&out));
}

#[test]
fn suite_errors_name_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let suite = dir.path().join("bad.toml");
    std::fs::write(
        &suite,
        format!("[[trace]]\nname = \"d\"\npath = \"{WORKLOADS}/default.toml\"\npolicies = [\"lru\"]\nsizes = [\"1%\"]\nrepeat = 3\n"),
    )
    .unwrap();
    let out =
        cachescope(&["bench", suite.to_str().unwrap(), "--out", dir.path().join("x.json").to_str().unwrap()], &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml") && err.contains("line 6") && err.contains("repeat"), "{err}");
    let good = write_suite(dir.path(), 1);
    let out = cachescope(
        &["bench", good.to_str().unwrap(), "--out", dir.path().join("y.json").to_str().unwrap()],
        &[("CACHESCOPE_TEST_SLOWDOWN", "lots")],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("CACHESCOPE_TEST_SLOWDOWN=`lots`"), "{}", text(&out));
}

/// An A/B session (`bench --ab-baseline`) of this binary against itself
/// (two worker processes): two files of one session, judged paired round by
/// round; the same build on both sides compares clean. With the test knob on the driver, only the
/// current side is slowed (the knob stands for a change in the current
/// build), and a 30% slowdown is flagged.
#[test]
fn an_ab_session_is_judged_paired() {
    let dir = tempfile::tempdir().unwrap();
    let suite = write_suite(dir.path(), 1);
    let me = env!("CARGO_BIN_EXE_cachescope");
    let run_session = |tag: &str, env: &[(&str, &str)]| -> (PathBuf, PathBuf) {
        let (base, cur) = (dir.path().join(format!("{tag}-base.json")), dir.path().join(format!("{tag}-cur.json")));
        let out = cachescope(
            &[
                "bench",
                suite.to_str().unwrap(),
                "--out",
                cur.to_str().unwrap(),
                "--ab-baseline",
                me,
                "--ab-out",
                base.to_str().unwrap(),
                "--rounds",
                "6",
                "--quiet",
            ],
            env,
        );
        assert!(out.status.success(), "{}", text(&out));
        (base, cur)
    };

    let (base, cur) = run_session("same", &[]);
    let (b, c): (Value, Value) = (
        serde_json::from_str(&std::fs::read_to_string(&base).unwrap()).unwrap(),
        serde_json::from_str(&std::fs::read_to_string(&cur).unwrap()).unwrap(),
    );
    assert_eq!(b["extra"]["ab"]["session"], c["extra"]["ab"]["session"]);
    assert_eq!(
        (b["extra"]["ab"]["role"].as_str(), c["extra"]["ab"]["role"].as_str()),
        (Some("baseline"), Some("current"))
    );
    for run in b["runs"].as_array().unwrap().iter().chain(c["runs"].as_array().unwrap()) {
        assert_eq!(run["seconds_samples"].as_array().unwrap().len(), 6, "one sample per round: {run}");
    }
    // Report-only timings: the same build on a shared machine must not
    // fail here on a run's chance interval; what is checked is the pairing.
    let out = compare(&base, &cur, &["--format", "json", "--timings", "report"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["paired"]["rounds"], 6, "{report}");
    assert_eq!(report["paired"]["repeats_per_round"], 1, "{report}");
    let text_out = text(&compare(&base, &cur, &[]));
    assert!(text_out.contains("paired A/B session, 6 rounds"), "{text_out}");

    // Real times on a shared machine: up to three sessions for one flag.
    let mut seen = Vec::new();
    for attempt in 0..3 {
        let (base, slow) = run_session(&format!("slow{attempt}"), &[("CACHESCOPE_TEST_SLOWDOWN", "0.3")]);
        let b: Value = serde_json::from_str(&std::fs::read_to_string(&base).unwrap()).unwrap();
        assert!(b["extra"].get("test_slowdown").is_none(), "the knob reached the baseline side");
        let s: Value = serde_json::from_str(&std::fs::read_to_string(&slow).unwrap()).unwrap();
        assert_eq!(s["extra"]["test_slowdown"], 0.3);
        let out = compare(&base, &slow, &["--format", "json"]);
        if out.status.code() == Some(1) {
            return;
        }
        seen.push(text(&out));
    }
    panic!("a 30% slowdown in an A/B session was not flagged in three tries: {seen:?}");
}

/// Files of two different A/B sessions are compared unpaired, with a note.
#[test]
fn files_of_different_ab_sessions_are_not_paired() {
    let mut a = base_json();
    a["extra"]["ab"] = serde_json::json!({"session": "s1", "role": "baseline", "rounds": 4, "repeats_per_round": 1});
    let mut b = base_json();
    b["extra"]["ab"] = serde_json::json!({"session": "s2", "role": "current", "rounds": 4, "repeats_per_round": 1});
    let (pa, pb) = (write("ab-s1.json", &a), write("ab-s2.json", &b));
    let out = compare(&pa, &pb, &["--format", "json"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report.get("paired").is_none(), "{report}");
    assert!(report["notes"].to_string().contains("different A/B sessions"), "{report}");
}
