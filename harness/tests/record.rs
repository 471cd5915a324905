//! `cachescope record` on a real Vulkan device (lavapipe in CI: the test
//! setup installs `mesa-vulkan-drivers libvulkan1`). A machine without an
//! adapter FAILS these tests, naming the packages; they never skip.
//!
//! Every workload runs at scale 1 (about a second each in a debug build),
//! verifies against the CPU inside `record`, and its trace is checked three
//! ways: by an independent reading of FORMAT.md's rules here, by the
//! project's reader, and by replaying it through `sim --gpu` and the GPU
//! replayer.

#[path = "support/adapter.rs"]
mod adapter;
#[path = "support/sim_gpu.rs"]
mod sim_gpu;

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use adapter::require_adapter;
use cachescope_core::policy::PolicyKind;
use cachescope_harness::gpu::{GpuDevice, GpuError, ReplayConfig, replay};
use cachescope_harness::record::mlp::MlpParams;
use cachescope_harness::record::{RecordConfig, RecordSummary, Workload, record};
use cachescope_harness::sim::{RunResult, SizeSpec};
use cachescope_harness::trace::{DecodedTrace, DispatchReader, LoadOptions, TraceFormat};
use serde_json::Value;
use sim_gpu::sim_gpu;

/// Fails (never skips) when there is no Vulkan adapter, naming what to install.
fn device() -> GpuDevice {
    require_adapter();
    GpuDevice::open(None).unwrap_or_else(|e| panic!("opening the device: {e}"))
}

fn record_into(gpu: &GpuDevice, dir: &Path, workload: Workload, config: &RecordConfig) -> RecordSummary {
    let path = dir.join(workload.file_name());
    record(gpu, workload, config, &path).unwrap_or_else(|e| panic!("recording {}: {e}", workload.name()))
}

fn lines(path: &Path) -> Vec<String> {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut text = String::new();
    flate2::read::GzDecoder::new(file).read_to_string(&mut text).expect("gzip text");
    text.lines().map(str::to_owned).collect()
}

/// What the independent check counted.
#[derive(Debug, Default, PartialEq, Eq)]
struct Counted {
    dispatches: u64,
    allocs: u64,
    frees: u64,
    pipelines: u64,
    peak_live_bytes: u64,
    /// Buffers whose first binding reads them (a cache uploads them once).
    first_read: u64,
}

/// FORMAT.md's promises, read straight from the JSON: the header; every
/// bound buffer allocated before and not freed since, with its size; no
/// buffer twice in a dispatch; `seq` 0, 1, 2, ...; pipelines of 16 hex
/// digits; access r, w or rw.
fn check_format(path: &Path, model: &str) -> Counted {
    let lines = lines(path);
    let header: Value = serde_json::from_str(&lines[0]).expect("header JSON");
    assert_eq!(header["format"], "gpu-dispatch-trace");
    assert_eq!(header["version"], 1);
    assert_eq!(header["model"], model);
    assert!(header["device"].as_str().is_some_and(|d| !d.is_empty()), "device named");
    let mut live: HashMap<u64, u64> = HashMap::new();
    let mut freed: HashSet<u64> = HashSet::new();
    let mut bound: HashSet<u64> = HashSet::new();
    let mut pipelines = HashSet::new();
    let mut c = Counted::default();
    let mut live_bytes = 0u64;
    for (n, line) in lines.iter().enumerate().skip(1) {
        let at = format!("{} line {}", path.display(), n + 1);
        let ev: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{at}: {e}"));
        let buf = ev["buf"].as_u64();
        match ev["ev"].as_str() {
            Some("alloc") => {
                let (buf, bytes) = (buf.expect("buf"), ev["bytes"].as_u64().expect("bytes"));
                assert!(!live.contains_key(&buf) && !freed.contains(&buf), "{at}: buffer {buf} allocated again");
                assert!(bytes > 0 && bytes % 4 == 0, "{at}: {bytes} bytes");
                live.insert(buf, bytes);
                live_bytes += bytes;
                c.peak_live_bytes = c.peak_live_bytes.max(live_bytes);
                c.allocs += 1;
            }
            Some("free") => {
                let buf = buf.expect("buf");
                let bytes = live.remove(&buf).unwrap_or_else(|| panic!("{at}: free of buffer {buf}, not live"));
                live_bytes -= bytes;
                freed.insert(buf);
                c.frees += 1;
            }
            Some("dispatch") => {
                assert_eq!(ev["seq"].as_u64(), Some(c.dispatches), "{at}: seq");
                assert!(ev["op"].as_str().is_some_and(|o| !o.is_empty()), "{at}: op");
                let pipeline = ev["pipeline"].as_str().expect("pipeline");
                assert!(pipeline.len() == 16 && pipeline.bytes().all(|b| b.is_ascii_hexdigit()), "{at}: {pipeline}");
                pipelines.insert(pipeline.to_owned());
                let mut in_dispatch = HashSet::new();
                for b in ev["bindings"].as_array().expect("bindings") {
                    let (buf, bytes) = (b[0].as_u64().expect("buf"), b[1].as_u64().expect("bytes"));
                    let access = b[2].as_str().expect("access");
                    assert!(matches!(access, "r" | "w" | "rw"), "{at}: access {access}");
                    assert_eq!(live.get(&buf), Some(&bytes), "{at}: buffer {buf} bound while not live or resized");
                    assert!(in_dispatch.insert(buf), "{at}: buffer {buf} bound twice");
                    if bound.insert(buf) && access != "w" {
                        c.first_read += 1;
                    }
                }
                c.dispatches += 1;
            }
            other => panic!("{at}: event {other:?}"),
        }
    }
    c.pipelines = pipelines.len() as u64;
    c
}

fn load_gpu(path: &Path) -> DecodedTrace {
    let options = LoadOptions { objects: false, pipelines: false, gpu: true, limit: None };
    DecodedTrace::load(path, Some(TraceFormat::Dispatch), options).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Each workload records and verifies; its trace keeps FORMAT.md's rules,
/// and the project's reader counts what the recorder counted.
#[test]
fn every_workload_records_verifies_and_keeps_the_format() {
    let gpu = device();
    let dir = tempfile::tempdir().expect("tempdir");
    for &w in Workload::ALL {
        let s = record_into(&gpu, dir.path(), w, &RecordConfig::default());
        assert!(s.verified.values > 0, "{}: nothing verified", w.name());
        let counted = check_format(&s.path, w.name());
        assert_eq!(
            (counted.dispatches, counted.allocs, counted.frees, counted.pipelines, counted.peak_live_bytes),
            (s.trace.dispatches, s.trace.buffers, s.trace.frees, s.trace.pipelines, s.trace.peak_live_bytes),
            "{}: independent count vs the recorder's",
            w.name()
        );
        assert!(counted.frees > 0 && counted.pipelines > 1 && counted.first_read > 0, "{}: {counted:?}", w.name());

        let mut reader = DispatchReader::open(&s.path).unwrap_or_else(|e| panic!("{}: {e}", w.name()));
        assert_eq!(reader.header().model.as_deref(), Some(w.name()));
        assert_eq!(reader.header().device.as_deref(), Some(gpu.report.name.as_str()));
        for event in reader.by_ref() {
            event.unwrap_or_else(|e| panic!("{}: {e}", w.name()));
        }
        let stats = reader.stats();
        assert_eq!(
            (stats.dispatches, stats.buffers, stats.frees, stats.pipelines, stats.peak_live_bytes),
            (s.trace.dispatches, s.trace.buffers, s.trace.frees, s.trace.pipelines, s.trace.peak_live_bytes),
            "{}: the project's reader vs the recorder",
            w.name()
        );
        let decoded = load_gpu(&s.path);
        assert_eq!(decoded.peak_live_bytes, Some(s.trace.peak_live_bytes));
        assert_eq!(decoded.identity.frees, s.trace.frees);
    }
}

/// The same seed writes the same bytes (no timings in a trace); the seed
/// shapes the PageRank graph, so another seed writes another `spmv` trace.
#[test]
fn same_seed_writes_identical_bytes() {
    let gpu = device();
    let (a, b) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
    for &w in Workload::ALL {
        let x = record_into(&gpu, a.path(), w, &RecordConfig::default());
        let y = record_into(&gpu, b.path(), w, &RecordConfig::default());
        let read = |p: &Path| std::fs::read(p).expect("read trace");
        assert!(read(&x.path) == read(&y.path), "{}: two recordings differ", w.name());
    }
    let other = RecordConfig { seed: 7, ..RecordConfig::default() };
    let c = record_into(&gpu, b.path(), Workload::Spmv, &other);
    assert_ne!(lines(&a.path().join("spmv.jsonl.gz"))[1..], lines(&c.path)[1..], "the seed shapes the graph");
}

/// The MLP's weight set is larger than the device budget: `sim --gpu`
/// uploads weights again every pass (misses beyond the compulsory ones);
/// with room for everything, only the compulsory uploads remain.
#[test]
fn mlp_weights_above_the_budget_miss_in_sim_gpu() {
    let gpu = device();
    let dir = tempfile::tempdir().expect("tempdir");
    let s = record_into(&gpu, dir.path(), Workload::Mlp, &RecordConfig::default());
    let weight_bytes = MlpParams::at_scale(1).weight_bytes();
    assert!(weight_bytes > 1 << 20, "{weight_bytes}");
    let compulsory = check_format(&s.path, "mlp").first_read;
    let trace = load_gpu(&s.path);
    let below = SizeSpec::Absolute(weight_bytes / 2);
    let room = SizeSpec::Absolute(trace.unique_bytes);
    let runs = sim_gpu(&trace, &[PolicyKind::Lru, PolicyKind::Arc], &[below, room]);
    for r in &runs {
        let uploads = r.uploads.expect("GPU model counts uploads");
        if r.capacity < weight_bytes {
            assert!(uploads > compulsory && r.misses > compulsory, "{} {}: {uploads} uploads", r.policy, r.size);
            assert!(r.upload_bytes.unwrap_or(0) > weight_bytes, "{}: weights uploaded again", r.policy);
        } else {
            assert_eq!(uploads, compulsory, "{} {}: only compulsory uploads", r.policy, r.size);
        }
    }
}

/// The recorded traces replay on the device with the counts of `sim --gpu`
/// and every readback verified.
#[test]
fn recorded_traces_replay_like_sim_gpu() {
    let gpu = device();
    let dir = tempfile::tempdir().expect("tempdir");
    let policies = [PolicyKind::Lru, PolicyKind::S3Fifo];
    for &w in Workload::ALL {
        let s = record_into(&gpu, dir.path(), w, &RecordConfig::default());
        let trace = load_gpu(&s.path);
        let config = ReplayConfig {
            policies: policies.to_vec(),
            sizes: vec!["40%peak".parse().expect("size")],
            touch_cap: 1024,
            verify: true,
            verify_resident_at_end: true,
            ..ReplayConfig::default()
        };
        let out = replay(&trace, &config).unwrap_or_else(|e| panic!("replay {}: {e}", w.name()));
        let sims = sim_gpu(&trace, &policies, &config.sizes);
        assert_eq!(out.dispatches, s.trace.dispatches);
        assert_eq!(out.pipelines, s.trace.pipelines);
        for (run, sim) in out.runs.iter().zip(&sims) {
            let key = |r: &RunResult| (r.hits, r.misses, r.uploads, r.upload_bytes, r.readbacks, r.readback_bytes);
            assert_eq!(key(&run.sim), key(sim), "{} {}: replay vs sim --gpu", w.name(), sim.policy);
            assert_eq!(run.verified_readbacks, run.sim.readbacks.unwrap_or(0), "{}: unchecked readbacks", w.name());
        }
    }
}

/// The committed traces (workloads/traces/recorded/) are what recording
/// now writes, but for the header's device: a change to a workload must
/// re-record them (`cachescope record --workload all --out
/// workloads/traces/recorded`, on lavapipe).
#[test]
fn committed_traces_match_a_fresh_recording() {
    let gpu = device();
    let dir = tempfile::tempdir().expect("tempdir");
    let committed = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../workloads/traces/recorded");
    for &w in Workload::ALL {
        let fresh = record_into(&gpu, dir.path(), w, &RecordConfig::default());
        let (old, new) = (lines(&committed.join(w.file_name())), lines(&fresh.path));
        let without_device = |header: &str| {
            let mut v: Value = serde_json::from_str(header).expect("header");
            v.as_object_mut().expect("object").remove("device");
            v
        };
        assert_eq!(without_device(&old[0]), without_device(&new[0]), "{}: header", w.name());
        assert!(old[1..] == new[1..], "{}: events differ; re-record the committed traces", w.name());
        let size = std::fs::metadata(committed.join(w.file_name())).expect("committed trace").len();
        assert!(size < 200 << 10, "{}: {size} bytes committed", w.name());
    }
}

/// Bad requests fail with errors that say what to do; no trace is left.
#[test]
fn bad_requests_fail_clearly() {
    let gpu = device();
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("x.jsonl.gz");
    let zero = record(&gpu, Workload::Mlp, &RecordConfig { scale: 0, ..RecordConfig::default() }, &out);
    assert!(matches!(zero, Err(GpuError::Config(ref m)) if m.contains("--scale")), "{zero:?}");
    // 2 GiB weight matrices: refused before any data is generated.
    let huge = record(&gpu, Workload::Mlp, &RecordConfig { scale: 64, ..RecordConfig::default() }, &out);
    assert!(matches!(huge, Err(GpuError::Config(ref m)) if m.contains("smaller --scale")), "{huge:?}");
    assert!(!out.exists(), "no trace after a failure");
    let no_adapter = GpuDevice::open(Some("no-such-adapter-anywhere"));
    assert!(matches!(no_adapter, Err(GpuError::NoAdapter(ref m)) if m.contains("no-such-adapter-anywhere")));
    assert!("mlpx".parse::<Workload>().is_err());
    let left = std::fs::read_dir(dir.path()).expect("dir").count();
    assert_eq!(left, 0, "no trace or temporary file left after a failure");
}

/// The command line: `record --workload all` writes a trace per workload
/// and prints a line each; `sim --gpu` on the MLP trace with a budget below
/// the weights uploads weights again.
#[test]
fn cli_records_all_then_sim_gpu_reads_the_mlp_trace() {
    device();
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = env!("CARGO_BIN_EXE_cachescope");
    let out = Command::new(bin)
        .args(["record", "--workload", "all", "--out"])
        .arg(dir.path())
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .output()
        .expect("run cachescope record");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "record failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    for &w in Workload::ALL {
        assert!(dir.path().join(w.file_name()).is_file(), "{} written", w.name());
        assert!(
            stdout.lines().any(|l| l.starts_with(w.name()) && l.contains("verified OK")),
            "{}: summary line in {stdout}",
            w.name()
        );
    }
    let results = dir.path().join("sim.json");
    let budget = (MlpParams::at_scale(1).weight_bytes() / 2).to_string();
    let sim = Command::new(bin)
        .args(["sim", "--gpu", "--quiet", "--policy", "lru", "--size", &budget, "--trace"])
        .arg(dir.path().join("mlp.jsonl.gz"))
        .arg("--out")
        .arg(&results)
        .output()
        .expect("run cachescope sim");
    assert!(sim.status.success(), "sim failed: {}", String::from_utf8_lossy(&sim.stderr));
    let file: Value = serde_json::from_slice(&std::fs::read(&results).expect("results")).expect("results JSON");
    let run = &file["runs"][0];
    assert!(run["misses"].as_u64().unwrap_or(0) > 0 && run["uploads"].as_u64().unwrap_or(0) > 0, "{run}");
}
