//! `cachescope tune` on a real Vulkan device (lavapipe in CI: the test setup
//! installs `mesa-vulkan-drivers libvulkan1`). A machine without an adapter
//! FAILS these tests, naming the packages; they never skip.
//!
//! Everything runs at `--scale 1` (4096-word buffers, 16 x 16 matrices) so
//! that a debug build on two cores stays fast. lavapipe's timings are noise
//! on shared cores, so no test asserts which candidate wins: only what holds
//! whatever the timings (counts, membership, regret >= 1, the store's reuse).

#[path = "support/adapter.rs"]
mod adapter;

use std::path::Path;
use std::process::{Command, Output};

use adapter::require_adapter;
use cachescope_core::tuner::{BackendTimer, TunerStore};
use cachescope_harness::gpu::tune::{KernelTimer, Shape, TuneKernel, adapter_key, kernel_candidates};
use cachescope_harness::gpu::{GpuDevice, GpuError};
use serde_json::Value;

fn open_device() -> GpuDevice {
    require_adapter();
    GpuDevice::open(None).unwrap_or_else(|e| panic!("opening the Vulkan device: {e}"))
}

/// Runs the `cachescope` binary in `dir`.
fn cachescope(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cachescope"))
        .args(args)
        .current_dir(dir)
        // Mesa warns without it; harmless, but it clutters failure output.
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .output()
        .expect("running cachescope")
}

fn run_ok(dir: &Path, args: &[&str]) -> String {
    let out = cachescope(dir, args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "cachescope {args:?} failed\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("results file")).expect("results JSON")
}

fn workgroup(v: &Value) -> [u32; 3] {
    serde_json::from_value(v.clone()).expect("a workgroup [x, y, z]")
}

fn candidates_of(kernel: &Value) -> Vec<[u32; 3]> {
    kernel["candidates"].as_array().expect("candidates").iter().map(workgroup).collect()
}

#[test]
fn every_candidate_of_every_kernel_matches_the_cpu() {
    let gpu = open_device();
    for kernel in TuneKernel::ALL {
        let shape = Shape::of(kernel, 1).unwrap();
        let cands = kernel_candidates(&gpu, kernel).unwrap();
        let mut timer = KernelTimer::new(&gpu, kernel, shape, 1).unwrap();
        let key = timer.key();
        for &wg in &cands {
            timer.prepare(wg).unwrap_or_else(|e| panic!("{} with {wg:?}: {e}", kernel.name()));
            // A sample after the check: the kernel keeps running on the
            // buffers it was checked on.
            let ns = timer.time_ns(&key, wg).unwrap_or_else(|e| panic!("{} with {wg:?}: {e}", kernel.name()));
            assert!(ns > 0);
        }
        assert_eq!(timer.checked(), cands.as_slice(), "{}: each candidate checked once", kernel.name());
        assert_eq!(timer.compiles(), cands.len(), "{}: one compile per candidate", kernel.name());
        assert_eq!(timer.measurements(), cands.len() as u64);
    }
}

/// A stream kernel that assumes 64 invocations per workgroup: at 32 it
/// skips half the words (and would be fastest), at 128 it updates some
/// twice. The check must stop it instead of letting it win.
#[test]
fn a_kernel_that_ignores_the_workgroup_size_fails_its_check() {
    let gpu = open_device();
    let wrong = TuneKernel::Stream.source().replace("* (WG_X * WG_Y) + lid", "* 64u + lid");
    assert_ne!(wrong, TuneKernel::Stream.source(), "the substitution must hit");
    let shape = Shape::of(TuneKernel::Stream, 1).unwrap();
    let mut timer = KernelTimer::with_source(&gpu, TuneKernel::Stream, shape, 1, &wrong).unwrap();
    timer.prepare([64, 1, 1]).expect("at 64 the assumption holds");
    for wg in [[32, 1, 1], [128, 1, 1]] {
        let err = timer.time_ns(&timer.key(), wg).expect_err("a wrong result must not be timed");
        assert!(err.to_string().contains("data integrity"), "{err}");
        match timer.take_failure() {
            Some(GpuError::Integrity(message)) => assert!(message.contains(&format!("{wg:?}")), "{message}"),
            other => panic!("expected an integrity error for {wg:?}, got {other:?}"),
        }
    }
    assert_eq!(timer.measurements(), 0);
    assert_eq!(timer.checked(), [[64, 1, 1]]);
}

#[test]
fn candidates_respect_the_adapters_limits() {
    let gpu = open_device();
    let l = &gpu.limits;
    for kernel in TuneKernel::ALL {
        let cands = kernel_candidates(&gpu, kernel).unwrap();
        assert!(!cands.is_empty());
        for &[x, y, z] in &cands {
            assert!(x >= 1 && y >= 1 && z == 1, "{} {:?}", kernel.name(), [x, y, z]);
            assert!(x <= l.max_compute_workgroup_size_x && y <= l.max_compute_workgroup_size_y);
            assert!(x * y * z <= l.max_compute_invocations_per_workgroup, "{} {:?}", kernel.name(), [x, y, z]);
        }
        let two_d = cands.iter().any(|wg| wg[1] > 1);
        assert_eq!(two_d, kernel == TuneKernel::Matmul, "{}: 2D shapes only for the matrix product", kernel.name());
    }
    // A size beyond the adapter is refused as a configuration error, before
    // any compile.
    let shape = Shape::of(TuneKernel::Stream, 1).unwrap();
    let mut timer = KernelTimer::new(&gpu, TuneKernel::Stream, shape, 1).unwrap();
    let too_big = [l.max_compute_invocations_per_workgroup.saturating_mul(2), 1, 1];
    assert!(timer.time_ns(&timer.key(), too_big).is_err());
    assert!(matches!(timer.take_failure(), Some(GpuError::Config(_))));
    assert_eq!(timer.compiles(), 0);
}

#[test]
fn tune_persists_decisions_and_reuses_them_with_zero_measurements() {
    require_adapter();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("decisions").join("tuner.toml");
    let store_arg = store.to_str().unwrap();
    let args = ["tune", "--scale", "1", "--max-rounds", "8", "--store", store_arg, "--quiet"];

    let first_out = run_ok(dir.path(), &[&args[..], &["--out", "first.json"]].concat());
    let first = read_json(&dir.path().join("first.json"));
    let kernels = first["kernels"].as_array().unwrap();
    assert_eq!(kernels.len(), 4, "{first_out}");
    let adapter = first["adapter_key"].as_str().unwrap().to_owned();
    let limits = &first["adapter_limits"];
    let saved = TunerStore::open(&store).unwrap();
    assert_eq!(saved.len(), 4);
    for k in kernels {
        let name = k["kernel"].as_str().unwrap();
        assert_eq!(k["from_store"], false, "{name}");
        assert!(k["measurements"].as_u64().unwrap() > 0, "{name}");
        let choice = workgroup(&k["choice"]);
        let cands = candidates_of(k);
        assert!(cands.contains(&choice), "{name}: {choice:?} not among {cands:?}");
        for [x, y, z] in cands {
            assert!(u64::from(x * y * z) <= limits["max_invocations_per_workgroup"].as_u64().unwrap());
        }
        let key = k["program_key"].as_str().unwrap().parse().unwrap();
        assert_eq!(saved.get(&adapter, &key).map(|d| d.workgroup), Some(choice), "{name}: stored decision");
        assert_eq!(k["measurements"], k["sweep"]["measurements"], "{name}: the timer saw what the tuner counted");
    }
    let bytes_after_first = std::fs::read(&store).unwrap();

    let second_out = run_ok(dir.path(), &[&args[..], &["--out", "second.json"]].concat());
    let second = read_json(&dir.path().join("second.json"));
    assert_eq!(second["adapter_key"].as_str(), Some(adapter.as_str()));
    for (a, b) in kernels.iter().zip(second["kernels"].as_array().unwrap()) {
        let name = b["kernel"].as_str().unwrap();
        assert_eq!(b["from_store"], true, "{name}");
        assert_eq!(b["measurements"], 0, "{name}");
        assert!(b["sweep"].is_null(), "{name}");
        assert_eq!(a["choice"], b["choice"], "{name}: the same size as the first run");
        assert_eq!(b["checked_candidates"], 1, "{name}: the decision in force is still checked");
    }
    assert_eq!(second_out.matches("from_store: true, measurements: 0").count(), 4, "{second_out}");
    assert_eq!(std::fs::read(&store).unwrap(), bytes_after_first, "nothing new to save");
    assert_eq!(adapter_key(&open_device().report), adapter, "the store is keyed by this adapter");
}

#[test]
fn exhaustive_sweep_reports_regret_against_the_best() {
    require_adapter();
    let dir = tempfile::tempdir().unwrap();
    let rounds = 10u64;
    // max_rounds 8 < 10 exhaustive rounds: the tuner cannot take more
    // samples than the sweep, whatever the timings.
    let stdout = run_ok(
        dir.path(),
        &[
            "tune",
            "--scale",
            "1",
            "--max-rounds",
            "8",
            "--exhaustive",
            "--exhaustive-rounds",
            &rounds.to_string(),
            "--store",
            "t.toml",
            "--out",
            "x.json",
        ],
    );
    assert!(stdout.contains("regret") && stdout.contains("exh_best"), "{stdout}");
    let results = read_json(&dir.path().join("x.json"));
    assert_eq!(results["kind"], "tune");
    assert_eq!(results["timing"], "timestamp_query", "lavapipe has timestamp queries");
    for k in results["kernels"].as_array().unwrap() {
        let name = k["kernel"].as_str().unwrap();
        let cands = candidates_of(k);
        let choice = workgroup(&k["choice"]);
        let x = &k["exhaustive"];
        assert!(cands.contains(&choice), "{name}");
        assert!(cands.contains(&workgroup(&x["best"])), "{name}");
        let regret = x["regret"].as_f64().unwrap();
        assert!(regret.is_finite() && regret >= 1.0, "{name}: regret {regret}");
        assert_eq!(x["measurements"].as_u64(), Some(rounds * cands.len() as u64), "{name}");
        assert!(k["measurements"].as_u64().unwrap() < x["measurements"].as_u64().unwrap(), "{name}");
        let per: Vec<&Value> = x["candidates"].as_array().unwrap().iter().collect();
        assert_eq!(per.iter().map(|c| workgroup(&c["workgroup"])).collect::<Vec<_>>(), cands, "{name}");
        assert!(per.iter().all(|c| c["samples"].as_u64() == Some(rounds) && c["median_ns"].as_u64() > Some(0)));
        let lowest = per.iter().map(|c| c["median_ns"].as_u64().unwrap()).min();
        assert_eq!(x["best_median_ns"].as_u64(), lowest, "{name}: best is the lowest median");
        let choice_median = per.iter().find(|c| workgroup(&c["workgroup"]) == choice).unwrap()["median_ns"].as_u64();
        assert_eq!(x["choice_median_ns"].as_u64(), choice_median, "{name}");
    }
}

#[test]
fn a_corrupt_store_is_an_error_naming_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.toml"), "# decisions\nschema = 1\nthis is = = not toml\n").unwrap();
    let out = cachescope(dir.path(), &["tune", "--scale", "1", "--store", "bad.toml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("bad.toml") && stderr.contains("line 3"), "{stderr}");
    assert!(std::fs::read_to_string(dir.path().join("bad.toml")).unwrap().contains("not toml"), "left untouched");
}

#[test]
fn unknown_kernels_and_zero_scale_are_refused_before_any_device_work() {
    let dir = tempfile::tempdir().unwrap();
    let out = cachescope(dir.path(), &["tune", "--kernels", "stream,fft"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("unknown kernel `fft`"), "{stderr}");
    let out = cachescope(dir.path(), &["tune", "--scale", "0"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("--scale"), "{stderr}");
    assert!(!dir.path().join("tuner.toml").exists());
}
