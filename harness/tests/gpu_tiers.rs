//! The replayer's host and disk tiers (`--host-memory`, `--disk-tier`) on a
//! real Vulkan device (lavapipe in CI: the test setup installs
//! `mesa-vulkan-drivers libvulkan1`). A machine without an adapter FAILS
//! these tests, naming the packages; they never skip.
//!
//! Trace prefixes (`--limit`) keep the file at about half a minute in a
//! debug build on two cores; the GPT-2 prefix has a 154 MB buffer, larger
//! than the host tiers used here, so it lives on disk.

#[path = "support/adapter.rs"]
mod adapter;
#[path = "support/sim_gpu.rs"]
mod sim_gpu;

use std::path::{Path, PathBuf};
use std::process::Command;

use adapter::require_adapter;
use cachescope_core::cache::Evicted;
use cachescope_core::policy::{PolicyKind, Request};
use cachescope_core::stats::EvictionReason;
use cachescope_harness::gpu::cli::render_table;
use cachescope_harness::gpu::host_tier::HostTier;
use cachescope_harness::gpu::kernels::{KernelSet, Mode};
use cachescope_harness::gpu::residency::{Engine, EngineConfig};
use cachescope_harness::gpu::{GpuDevice, GpuError, ReplayConfig, ReplayRun, replay};
use cachescope_harness::sim::RunResult;
use cachescope_harness::trace::{DecodedTrace, LoadOptions, TraceFormat};
use sim_gpu::sim_gpu;

const RESNET: &str = "resnet50-train.jsonl.gz";
const GPT2: &str = "gpt2-decode.jsonl.gz";

fn trace_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../workloads/traces").join(name)
}

fn load(name: &str, limit: u64) -> DecodedTrace {
    let options = LoadOptions { objects: false, pipelines: false, gpu: true, limit: Some(limit) };
    DecodedTrace::load(&trace_path(name), Some(TraceFormat::Dispatch), options)
        .unwrap_or_else(|e| panic!("loading {name}: {e}"))
}

fn config(policies: &[PolicyKind], sizes: &[&str], host_memory: &str, disk: Option<&Path>) -> ReplayConfig {
    ReplayConfig {
        policies: policies.to_vec(),
        sizes: sizes.iter().map(|s| s.parse().expect("size")).collect(),
        touch_cap: 1024,
        verify: true,
        verify_resident_at_end: true,
        host_memory: Some(host_memory.parse().expect("host memory")),
        disk_tier: disk.map(Path::to_path_buf),
        ..ReplayConfig::default()
    }
}

/// The device-tier counters, which the host tier must not change.
fn counts(r: &RunResult) -> [(&'static str, u64); 12] {
    [
        ("capacity", r.capacity),
        ("requests", r.requests),
        ("hits", r.hits),
        ("misses", r.misses),
        ("requested_bytes", r.requested_bytes),
        ("missed_bytes", r.missed_bytes),
        ("evictions", r.evictions),
        ("evicted_bytes", r.evicted_bytes),
        ("uploads", r.uploads.unwrap_or(u64::MAX)),
        ("upload_bytes", r.upload_bytes.unwrap_or(u64::MAX)),
        ("readbacks", r.readbacks.unwrap_or(u64::MAX)),
        ("readback_bytes", r.readback_bytes.unwrap_or(u64::MAX)),
    ]
}

/// Device counts equal `sim --gpu`; every readback, disk read and resident
/// buffer was checked against the CPU model; the disk latencies count every
/// file operation.
fn assert_device_counts_and_integrity(name: &str, runs: &[ReplayRun], sims: &[RunResult]) {
    assert_eq!(runs.len(), sims.len(), "{name}: run count");
    for (run, s) in runs.iter().zip(sims) {
        let what = format!("{name} {} {}", s.policy, s.size);
        assert_eq!(counts(&run.sim), counts(s), "{what}: device counts, replay with host tier vs sim --gpu");
        let t = run.host_tier.unwrap_or_else(|| panic!("{what}: no host-tier counters"));
        assert_eq!(run.verified_readbacks, run.sim.readbacks.unwrap_or(0), "{what}: unchecked readbacks");
        assert_eq!(t.verified_disk_reads, t.disk_reads, "{what}: unchecked disk reads");
        assert!(run.verified_resident > 0, "{what}: nothing resident was checked");
        assert_eq!(run.latency["disk_write"].count, t.disk_writes, "{what}: disk write latencies");
        assert_eq!(run.latency["disk_read"].count, t.disk_reads, "{what}: disk read latencies");
        assert!(t.host_peak_bytes <= t.host_memory_bytes, "{what}: host tier over capacity");
        // Every upload's bytes came from host memory, from disk, or were
        // created at first use.
        assert!(t.host_hits + t.host_births + t.disk_reads >= run.sim.uploads.unwrap_or(0), "{what}: {t:?}");
    }
}

/// A small host tier over a disk tier: the device still counts exactly what
/// `sim --gpu` counts (the host tier only changes where a miss's bytes come
/// from), and data really goes to disk and comes back, checked.
#[test]
fn device_counts_equal_sim_gpu_with_a_small_host_tier() {
    require_adapter();
    let disk = tempfile::tempdir().expect("tempdir");
    for (name, limit, policies) in [
        (GPT2, 1500, &[PolicyKind::Lru, PolicyKind::S3Fifo, PolicyKind::Arc][..]),
        (RESNET, 120, &[PolicyKind::Lru][..]),
    ] {
        let trace = load(name, limit);
        let cfg = config(policies, &["10%peak"], "32MiB", Some(disk.path()));
        let out = replay(&trace, &cfg).unwrap_or_else(|e| panic!("replay {name}: {e}"));
        assert_device_counts_and_integrity(name, &out.runs, &sim_gpu(&trace, &cfg.policies, &cfg.sizes));
        for run in &out.runs {
            let t = run.host_tier.expect("host tier");
            assert!(t.disk_tier && t.host_memory_bytes == 32 << 20);
            assert!(t.disk_writes > 0 && t.disk_write_bytes > 0, "{name} {}: no disk write: {t:?}", run.sim.policy);
            assert!(t.disk_reads > 0 && t.disk_read_bytes > 0, "{name} {}: no disk read: {t:?}", run.sim.policy);
            assert!(t.disk_peak_bytes > 0);
        }
        // The run directories are scratch: gone after the runs.
        let left: Vec<_> = std::fs::read_dir(disk.path()).expect("read disk dir").collect();
        assert!(left.is_empty(), "{name}: disk tier left {left:?}");

        // The counters are in the run's JSON next to the device's, and in
        // the table.
        let json = serde_json::to_value(&out.runs[0]).expect("json");
        for field in ["uploads", "disk_writes", "disk_write_bytes", "disk_reads", "disk_read_bytes", "host_peak_bytes"]
        {
            assert!(json.get(field).is_some_and(serde_json::Value::is_u64), "{name}: `{field}` in {json}");
        }
        assert!(json["latency"]["disk_read"]["count"].is_u64());
        let table = render_table(&out.adapter.name, &out.runs);
        assert!(table.contains("disk_w") && table.contains("disk_r_GB"), "{table}");
    }
}

/// Without `--host-memory` nothing of the tiers appears in the JSON or the
/// table, and a results file without them still reads back.
#[test]
fn without_host_memory_the_output_is_unchanged() {
    require_adapter();
    let trace = load(GPT2, 200);
    let cfg = ReplayConfig {
        policies: vec![PolicyKind::Lru],
        sizes: vec!["10%peak".parse().expect("size")],
        touch_cap: 1024,
        ..ReplayConfig::default()
    };
    let out = replay(&trace, &cfg).expect("replay");
    let run = &out.runs[0];
    assert!(run.host_tier.is_none());
    let json = serde_json::to_value(run).expect("json");
    assert!(json.get("disk_writes").is_none() && json["latency"].get("disk_read").is_none(), "{json}");
    let back: ReplayRun = serde_json::from_value(json).expect("read back");
    assert!(back.host_tier.is_none());
    assert_eq!(counts(&back.sim), counts(&run.sim));
    assert!(!render_table(&out.adapter.name, &out.runs).contains("disk_w"));
}

/// Chunked buffers (1 MiB chunks), streamed accesses (2Q refuses large
/// buffers) and Belady, through a host tier smaller than the largest buffer
/// (which then lives on disk and is read for each upload).
#[test]
fn chunked_and_streamed_buffers_round_trip_through_disk() {
    require_adapter();
    let disk = tempfile::tempdir().expect("tempdir");
    let trace = load(GPT2, 1500);
    let mut cfg = config(&[PolicyKind::TwoQ, PolicyKind::Belady], &["10%peak"], "32MiB", Some(disk.path()));
    cfg.max_chunk = Some(1 << 20);
    let out = replay(&trace, &cfg).unwrap_or_else(|e| panic!("replay: {e}"));
    assert_device_counts_and_integrity("gpt2 chunked", &out.runs, &sim_gpu(&trace, &cfg.policies, &cfg.sizes));
    assert!(out.runs.iter().any(|r| r.streamed > 0), "some access was streamed");
    assert!(out.runs.iter().all(|r| r.host_tier.is_some_and(|t| t.disk_reads > 0)));
}

/// A buffer written on the device, read back into host memory, demoted to
/// disk and brought back holds exactly its bytes (checked against the CPU
/// model of every kernel write, on the disk read and on the next
/// readback); a byte flipped in its file is caught and named.
#[test]
fn disk_round_trip_holds_the_bytes_and_a_flipped_byte_is_caught() {
    require_adapter();
    let gpu = GpuDevice::open(None).expect("device");
    let kernels = KernelSet::new(&gpu.device, 64);
    let salt = 0x5eed;
    let pipeline = kernels.compile(&gpu.device, salt, None);
    let cfg = EngineConfig { max_chunk: 1 << 20, touch_cap: 0, batch: 16, verify: true };
    let bytes = 64 << 10;
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("run");
    let next_access = vec![Request::NEVER; 16];
    // Host memory holds one buffer: the next one pushes it to disk.
    let tier = HostTier::new(bytes, Some(dir.clone()), 2, &next_access, true).expect("host tier");
    let mut engine = Engine::new(&gpu, &kernels, cfg, vec![100, 101]).expect("engine");
    engine.set_host_tier(tier);
    let dirty = |key: u64| [Evicted { key, size: bytes, dirty: true, reason: EvictionReason::Capacity }];

    // Buffer 0: uploaded, written twice, read back into host memory.
    engine.make_resident(0, bytes, true).expect("upload 0");
    engine.kernel(0, &pipeline, salt, 1, Mode::ReadWrite).expect("kernel");
    engine.kernel(0, &pipeline, salt, 2, Mode::ReadWrite).expect("kernel");
    engine.evict(&dirty(0)).expect("readback 0");
    // Buffer 1 takes host memory: 0 goes to disk.
    engine.make_resident(1, bytes, true).expect("upload 1");
    engine.kernel(1, &pipeline, salt, 3, Mode::Write).expect("kernel");
    engine.evict(&dirty(1)).expect("readback 1");
    let t = engine.host_tier().expect("tier").counters;
    assert!(t.disk_writes >= 1 && t.disk_reads == 0, "{t:?}");
    assert_eq!(engine.host_tier().expect("tier").tier_name_of(0), Some("disk"));

    // 0 comes back from disk (1 goes down), is written again and read back:
    // both checks pass only if the disk held exactly its bytes.
    engine.make_resident(0, bytes, true).expect("upload 0 from disk");
    engine.kernel(0, &pipeline, salt, 4, Mode::ReadWrite).expect("kernel");
    engine.evict(&dirty(0)).expect("readback 0 again");
    let t = engine.host_tier().expect("tier").counters;
    assert_eq!((t.disk_reads, t.verified_disk_reads), (1, 1), "{t:?}");
    assert_eq!(engine.counters.verified, engine.counters.readbacks);
    assert_eq!(engine.host_tier().expect("tier").tier_name_of(1), Some("disk"));

    // Flip one byte of 1's file: its next upload refuses it.
    let file = std::fs::read_dir(&dir)
        .expect("disk tier directory")
        .map(|e| e.expect("entry").path())
        .find(|p| p.file_name().is_some_and(|n| n == "1.buf"))
        .expect("buffer 1's file");
    let mut data = std::fs::read(&file).expect("read file");
    let at = data.len() - 1000;
    data[at] ^= 0x40;
    std::fs::write(&file, &data).expect("write file");
    match engine.make_resident(1, bytes, true) {
        Err(GpuError::Integrity(msg)) => assert!(msg.contains("buffer 1") && msg.contains("disk tier"), "{msg}"),
        other => panic!("expected an integrity error, got {other:?}"),
    }
}

/// Without `--disk-tier`, a full host memory lets go only of buffers the
/// trace never uses again; when it would have to drop one that is used
/// again (or a buffer is larger than host memory) the run fails and says
/// that a disk tier is needed.
#[test]
fn host_memory_without_a_disk_tier_drops_only_dead_buffers() {
    require_adapter();
    let trace = load(GPT2, 650);
    let cfg = config(&[PolicyKind::Lru], &["10%peak"], "25%", None);
    let out = replay(&trace, &cfg).expect("a host tier of 25% of unique bytes suffices");
    assert_device_counts_and_integrity("gpt2 no disk", &out.runs, &sim_gpu(&trace, &cfg.policies, &cfg.sizes));
    let t = out.runs[0].host_tier.expect("host tier");
    assert!(!t.disk_tier && t.disk_writes == 0 && t.disk_reads == 0, "{t:?}");
    assert!(t.host_drops > 0, "buffers never used again left host memory: {t:?}");

    let trace = load(RESNET, 120);
    let cfg = config(&[PolicyKind::Lru], &["10%peak"], "10%", None);
    match replay(&trace, &cfg) {
        Err(GpuError::Config(msg)) => {
            assert!(
                msg.contains("uses it again") && msg.contains("--disk-tier") && msg.contains("--host-memory"),
                "{msg}"
            )
        }
        other => panic!("expected a host-memory error, got {:?}", other.map(|o| o.runs.len())),
    }
    let cfg = config(&[PolicyKind::Lru], &["10%peak"], "32MiB", None);
    match replay(&trace, &cfg) {
        Err(GpuError::Config(msg)) => assert!(msg.contains("larger than host memory") && msg.contains("--disk-tier")),
        other => panic!("expected a host-memory error, got {:?}", other.map(|o| o.runs.len())),
    }
}

fn cachescope(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cachescope"))
        .args(args)
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .output()
        .expect("run cachescope")
}

/// A disk tier that cannot be created fails the run that first needs it,
/// naming the path; the run that finished before is in `--out`.
#[test]
fn unwritable_disk_tier_names_the_path_and_keeps_finished_runs() {
    require_adapter();
    let root = tempfile::tempdir().expect("tempdir");
    let in_the_way = root.path().join("a-file");
    std::fs::write(&in_the_way, b"not a directory").expect("file");
    let disk = in_the_way.join("disk");
    let out = root.path().join("r.json");
    let trace = trace_path(RESNET);
    // At 100% of peak nothing is evicted: only first uploads enter host
    // memory, and they fit; at 10% read-back buffers need the disk.
    let output = cachescope(&[
        "replay",
        "--trace",
        trace.to_str().expect("utf-8 path"),
        "--limit",
        "120",
        "--policy",
        "lru",
        "--device-memory",
        "100%peak,10%peak",
        "--touch-cap",
        "1024",
        "--host-memory",
        "32MiB",
        "--disk-tier",
        disk.to_str().expect("utf-8 path"),
        "--out",
        out.to_str().expect("utf-8 path"),
        "--quiet",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains(&*disk.to_string_lossy()), "the error names the path: {stderr}");
    assert!(stderr.contains("1 finished runs kept"), "{stderr}");
    let file: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out).expect("results")).expect("json");
    let runs = file["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 1, "{file}");
    assert_eq!((runs[0]["size"].as_str(), runs[0]["disk_writes"].as_u64()), (Some("100%peak"), Some(0)));
}

/// `--disk-tier` needs `--host-memory` (the library says so too).
#[test]
fn a_disk_tier_needs_a_host_memory_limit() {
    let output = cachescope(&["replay", "--trace", "x.jsonl", "--disk-tier", "/tmp/x"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--host-memory"));
    let trace = load(GPT2, 10);
    let cfg = ReplayConfig { disk_tier: Some("/tmp/x".into()), ..ReplayConfig::default() };
    match replay(&trace, &cfg) {
        Err(GpuError::Config(msg)) => assert!(msg.contains("--host-memory"), "{msg}"),
        other => panic!("expected a configuration error, got {:?}", other.map(|o| o.runs.len())),
    }
}
