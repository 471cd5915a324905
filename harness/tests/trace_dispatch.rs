//! Dispatch traces: the two recorded traces load with their documented
//! counts, flattening keeps the listed order, the GPU view keeps frees, and
//! every inconsistency is an error naming the line and field.

use std::path::{Path, PathBuf};

use cachescope_core::policy::Access;
use cachescope_harness::trace::{
    DecodedTrace, DispatchEvent, DispatchReader, Flatten, FreeRecord, LoadOptions, NativeReader, RequestRecord,
    TraceEvent, TraceFormat, TraceReader, convert, convert_with,
};

fn recorded(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../workloads/traces").join(name)
}

const HEADER: &str = r#"{"format": "gpu-dispatch-trace", "version": 1, "model": "toy"}"#;

fn write_trace(dir: &Path, name: &str, events: &[&str]) -> PathBuf {
    let mut text = String::from(HEADER);
    text.push('\n');
    for e in events {
        text.push_str(e);
        text.push('\n');
    }
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

struct Expected {
    file: &'static str,
    dispatches: u64,
    buffers: u64,
    pipelines: u64,
    peak_gb: f64,
}

#[test]
fn recorded_traces_have_the_documented_counts() {
    for x in [
        Expected { file: "resnet50-train.jsonl.gz", dispatches: 822, buffers: 1595, pipelines: 120, peak_gb: 3.63 },
        Expected { file: "gpt2-decode.jsonl.gz", dispatches: 15405, buffers: 18739, pipelines: 234, peak_gb: 1.08 },
    ] {
        let path = recorded(x.file);
        let mut reader = DispatchReader::open(&path).unwrap();
        let mut bindings = 0u64;
        for e in reader.by_ref() {
            if let DispatchEvent::Dispatch { bindings: b, .. } = e.unwrap() {
                bindings += b.len() as u64;
            }
        }
        let stats = reader.stats();
        assert_eq!(
            (stats.dispatches, stats.buffers, stats.pipelines),
            (x.dispatches, x.buffers, x.pipelines),
            "{}",
            x.file
        );
        assert_eq!(stats.bindings, bindings);
        let peak_gb = stats.peak_live_bytes as f64 / 1e9;
        assert!(
            (peak_gb - x.peak_gb).abs() < 0.01,
            "{}: peak {peak_gb} GB, FORMAT.md says about {}",
            x.file,
            x.peak_gb
        );
        assert!(reader.header().model.is_some());

        let buffers = DecodedTrace::load(&path, None, LoadOptions::default()).unwrap();
        assert_eq!(buffers.identity.format, TraceFormat::Dispatch);
        assert_eq!(buffers.identity.records, bindings, "one request per binding");
        assert_eq!(buffers.unique_keys, x.buffers, "every buffer is bound at least once");
        assert_eq!(buffers.peak_live_bytes, Some(stats.peak_live_bytes));
        let pipelines = DecodedTrace::load(&path, None, LoadOptions { pipelines: true, ..Default::default() }).unwrap();
        assert_eq!(pipelines.identity.records, x.dispatches);
        assert_eq!(pipelines.unique_keys, x.pipelines);
        assert_eq!(pipelines.unique_bytes, x.pipelines, "pipeline requests have size 1");
        let gpu = DecodedTrace::load(&path, None, LoadOptions { gpu: true, ..Default::default() }).unwrap();
        assert_eq!(gpu.identity.requests(), bindings);
        assert!(gpu.identity.frees > 0 && gpu.identity.frees <= stats.frees);
        let is_free = gpu.is_free.as_ref().unwrap();
        assert_eq!(is_free.iter().filter(|&&f| f).count() as u64, gpu.identity.frees);
    }
}

#[test]
fn flattening_keeps_the_listed_order() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_trace(
        dir.path(),
        "toy.jsonl",
        &[
            r#"{"ev": "alloc", "buf": 5, "bytes": 100}"#,
            r#"{"ev": "alloc", "buf": 2, "bytes": 40}"#,
            r#"{"ev": "dispatch", "seq": 0, "op": "a", "pipeline": "00000000000000aa", "bindings": [[5, 100, "r"], [2, 40, "w"]]}"#,
            r#"{"ev": "alloc", "buf": 9, "bytes": 0}"#,
            r#"{"ev": "alloc", "buf": 7, "bytes": 8, "note": "unknown fields are ignored"}"#,
            r#"{"ev": "free", "buf": 7}"#,
            r#"{"ev": "dispatch", "seq": 3, "op": "b", "pipeline": "ff", "bindings": [[2, 40, "rw"], [9, 0, "r"], [5, 100, "r"]]}"#,
            r#"{"ev": "free", "buf": 2}"#,
            r#"{"ev": "dispatch", "seq": 4, "op": "a", "pipeline": "00000000000000aa", "bindings": []}"#,
        ],
    );
    let req = |time, key, size, access| TraceEvent::Request(RequestRecord { time, key, size, access });
    let read = |flatten, gpu| -> Vec<TraceEvent> {
        TraceReader::open(&p, None, flatten, gpu).unwrap().collect::<Result<_, _>>().unwrap()
    };
    let buffers = vec![
        req(0, 5, 100, Access::Read),
        req(0, 2, 40, Access::Write),
        req(3, 2, 40, Access::ReadWrite),
        req(3, 5, 100, Access::Read),
    ];
    assert_eq!(read(Flatten::Buffers, false), buffers);
    // GPU view: the free of buffer 2 (requested) stays, that of 7 (never bound) does not.
    let mut gpu = buffers.clone();
    gpu.push(TraceEvent::Free(FreeRecord { time: 3, key: 2, size: 40 }));
    assert_eq!(read(Flatten::Buffers, true), gpu);
    assert_eq!(
        read(Flatten::Pipelines, true),
        vec![req(0, 0xaa, 1, Access::Read), req(3, 0xff, 1, Access::Read), req(4, 0xaa, 1, Access::Read)]
    );
    let d = DecodedTrace::load(&p, None, LoadOptions { gpu: true, ..Default::default() }).unwrap();
    assert_eq!(d.identity.skipped_zero_size, 1, "the 0-byte binding");
    assert_eq!(d.is_free, Some(vec![false, false, false, false, true]));
    assert_eq!(d.next_access, vec![3, 2, u64::MAX, u64::MAX, u64::MAX]);
    assert_eq!(d.unique_bytes, 140);
    assert_eq!(d.peak_live_bytes, Some(148));
    let objects =
        DecodedTrace::load(&p, None, LoadOptions { objects: true, limit: Some(3), ..Default::default() }).unwrap();
    assert_eq!(objects.sizes, vec![1, 1, 1]);
    assert_eq!(objects.unique_bytes, 2);
}

#[test]
fn dispatch_to_native_keeps_frees_peak_and_pipeline_names() {
    let dir = tempfile::tempdir().unwrap();
    let src = recorded("resnet50-train.jsonl.gz");
    let out = dir.path().join("resnet.cst");
    let s = convert(&src, None, &out).unwrap();
    assert!(
        s.output_bytes < std::fs::metadata(&src).unwrap().len(),
        "native ({} bytes) is smaller than gzip JSON",
        s.output_bytes
    );
    let h = NativeReader::open(&out).unwrap().header().clone();
    assert_eq!(h.dictionary.len(), 120);
    assert!(h.dictionary.iter().any(|(_, name)| name == "convolution.default"));
    let gpu = LoadOptions { gpu: true, ..Default::default() };
    let a = DecodedTrace::load(&src, None, gpu).unwrap();
    let b = DecodedTrace::load(&out, None, gpu).unwrap();
    assert_eq!((&a.keys, &a.sizes, &a.access, &a.is_free), (&b.keys, &b.sizes, &b.access, &b.is_free));
    assert_eq!(a.next_access, b.next_access);
    assert_eq!(a.peak_live_bytes, b.peak_live_bytes);
    // Without the GPU view the frees of the native file are dropped.
    let plain = DecodedTrace::load(&out, None, LoadOptions::default()).unwrap();
    assert_eq!(plain.identity.records, a.identity.requests());
    // Pipelines: convert with pipelines, then `pipelines` on the native file is allowed.
    let pout = dir.path().join("resnet-pipelines.cst");
    convert_with(&src, None, &pout, TraceFormat::Native, LoadOptions { pipelines: true, ..Default::default() })
        .unwrap();
    let p = DecodedTrace::load(&pout, None, LoadOptions { pipelines: true, ..Default::default() }).unwrap();
    assert_eq!(p.unique_keys, 120);
    let e = DecodedTrace::load(&out, None, LoadOptions { pipelines: true, ..Default::default() }).unwrap_err();
    assert!(e.to_string().contains("no pipelines"), "{e}");
}

#[test]
fn bad_dispatch_traces_name_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let alloc = r#"{"ev": "alloc", "buf": 1, "bytes": 64}"#;
    let cases: &[(&[&str], &str)] = &[
        (
            &[r#"{"ev": "dispatch", "seq": 0, "op": "x", "pipeline": "1", "bindings": [[1, 64, "r"]]}"#],
            "line 2: field `bindings[0]`: buffer 1 was never allocated",
        ),
        (
            &[
                alloc,
                r#"{"ev": "free", "buf": 1}"#,
                r#"{"ev": "dispatch", "seq": 0, "op": "x", "pipeline": "1", "bindings": [[1, 64, "r"]]}"#,
            ],
            "line 4: field `bindings[0]`: buffer 1 was freed at line 3",
        ),
        (
            &[alloc, r#"{"ev": "dispatch", "seq": 0, "op": "x", "pipeline": "1", "bindings": [[1, 64, "rx"]]}"#],
            "line 3: field `bindings[0].access`: `\"rx\"` is not one of r, w, rw",
        ),
        (
            &[alloc, r#"{"ev": "dispatch", "seq": 0, "op": "x", "pipeline": "1", "bindings": [[1, 65, "r"]]}"#],
            "line 3: field `bindings[0]`: buffer 1 is bound with 65 bytes but was allocated with 64 (line 2)",
        ),
        (
            &[
                alloc,
                r#"{"ev": "dispatch", "seq": 0, "op": "x", "pipeline": "1", "bindings": [[1, 64, "r"], [1, 64, "w"]]}"#,
            ],
            "line 3: field `bindings[1]`: buffer 1 is bound twice in one dispatch",
        ),
        (
            &[
                r#"{"ev": "dispatch", "seq": 5, "op": "x", "pipeline": "1", "bindings": []}"#,
                r#"{"ev": "dispatch", "seq": 5, "op": "x", "pipeline": "1", "bindings": []}"#,
            ],
            "line 3: field `seq`: 5 does not increase (the dispatch on line 2 has seq 5)",
        ),
        (&[r#"{"ev": "dispatch", "op": "x", "pipeline": "1", "bindings": []}"#], "line 2: field `seq`: missing"),
        (&[r#"{"ev": "alloc", "buf": -1, "bytes": 8}"#], "line 2: field `buf`: `-1` is not an unsigned 64-bit integer"),
        (
            &[r#"{"ev": "alloc", "buf": 1, "bytes": "8"}"#],
            "line 2: field `bytes`: `\"8\"` is not an unsigned 64-bit integer",
        ),
        (
            &[r#"{"ev": "dispatch", "seq": 0, "op": "x", "pipeline": "xyz", "bindings": []}"#],
            "line 2: field `pipeline`: `xyz` is not 1 to 16 hex digits",
        ),
        (&[r#"{"ev": "launch"}"#], "line 2: field `ev`: `launch` is not one of alloc, free, dispatch"),
        (&[alloc, alloc], "line 3: field `buf`: buffer 1 is already allocated (line 2)"),
        (&[r#"{"ev": "free", "buf": 3}"#], "line 2: field `buf`: buffer 3 was never allocated"),
        (&[r#"{"ev": "alloc", "buf": 1, "bytes": 8"#], "line 2: not valid JSON"),
        (&[r#"[1, 2]"#], "line 2: an event must be a JSON object"),
    ];
    for (i, (events, want)) in cases.iter().enumerate() {
        let p = write_trace(dir.path(), &format!("bad{i}.jsonl"), events);
        let e = DecodedTrace::load(&p, None, LoadOptions::default()).unwrap_err().to_string();
        assert!(e.starts_with(&format!("trace `{}` ", p.display())), "{e}");
        assert!(e.contains(want), "case {i}: {e}\nwanted: {want}");
    }
    let headers: &[(&str, &str)] = &[
        (r#"{"format": "gpu-dispatch-trace", "version": 2}"#, "line 1: field `version`: version 2 is not supported"),
        (r#"{"format": "other", "version": 1}"#, "line 1: field `format`: `\"other\"` is not \"gpu-dispatch-trace\""),
        (r#"{"format": "gpu-dispatch-trace"}"#, "line 1: field `version`: missing"),
    ];
    for (i, (header, want)) in headers.iter().enumerate() {
        let p = dir.path().join(format!("header{i}.jsonl"));
        std::fs::write(&p, format!("{header}\n")).unwrap();
        let e = DecodedTrace::load(&p, Some(TraceFormat::Dispatch), LoadOptions::default()).unwrap_err().to_string();
        assert!(e.contains(want), "{e}\nwanted: {want}");
    }
    // A gzip stream cut short: the error names the line where it broke.
    let data = std::fs::read(recorded("resnet50-train.jsonl.gz")).unwrap();
    let cut = dir.path().join("cut.jsonl.gz");
    std::fs::write(&cut, &data[..data.len() / 2]).unwrap();
    let e = DecodedTrace::load(&cut, None, LoadOptions::default()).unwrap_err().to_string();
    assert!(e.contains("cut.jsonl.gz` line "), "{e}");
}
