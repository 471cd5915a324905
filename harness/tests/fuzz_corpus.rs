//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`, seeds plus
//! every input that once crashed a reader) through the readers exactly as
//! the cargo-fuzz targets in `fuzz/fuzz_targets/` do, as an ordinary test:
//! CI checks the fixes stay fixed without libFuzzer or a nightly compiler.
//! Every input must end in records or a clean error: no panic, and bounded
//! work (each drain stops at `MAX_EVENTS`).

use std::io::Write;
use std::path::{Path, PathBuf};

use cachescope_harness::trace::{DecodedTrace, Flatten, LoadOptions, TraceFormat, TraceReader, WorkloadSpec};

const MAX_EVENTS: u64 = 20_000;

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "empty corpus {}", dir.display());
    files
}

/// As `fuzz/fuzz_targets/common.rs`: every way a user can read the file.
/// Returns whether any way read at least one event.
fn read_all_ways(path: &Path, format: Option<TraceFormat>) -> bool {
    let mut any = false;
    for (flatten, keep_frees) in [(Flatten::Buffers, false), (Flatten::Buffers, true), (Flatten::Pipelines, false)] {
        if let Ok(reader) = TraceReader::open(path, format, flatten, keep_frees) {
            for event in reader.take(MAX_EVENTS as usize) {
                if event.is_err() {
                    break;
                }
                any = true;
            }
        }
    }
    for (pipelines, gpu) in [(false, false), (false, true), (true, false)] {
        let options = LoadOptions { objects: false, pipelines, gpu, limit: Some(MAX_EVENTS) };
        let _ = DecodedTrace::load(path, format, options);
    }
    any
}

/// Replays `target`'s corpus: `prepare` turns an input into the file bytes
/// (and its extension); returns (inputs, inputs that read records).
fn replay(
    target: &str,
    format: Option<TraceFormat>,
    ext: &str,
    prepare: impl Fn(&[u8]) -> Option<Vec<u8>>,
) -> (usize, usize) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("input.{ext}"));
    let (mut n, mut good) = (0, 0);
    for input in corpus(target) {
        let Some(bytes) = prepare(&std::fs::read(&input).unwrap()) else { continue };
        std::fs::write(&path, bytes).unwrap();
        n += 1;
        good += usize::from(read_all_ways(&path, format));
    }
    (n, good)
}

#[test]
fn csv_corpus() {
    let (n, good) = replay("csv", Some(TraceFormat::Csv), "csv", |b| Some(b.to_vec()));
    assert!(good >= 1 && n >= 1, "{good} of {n}");
}

#[test]
fn oracle_corpus() {
    let (n, good) = replay("oracle", Some(TraceFormat::Oracle), "bin", |b| Some(b.to_vec()));
    assert!(good >= 1 && n >= 1, "{good} of {n}");
}

#[test]
fn oracle_zstd_corpus() {
    let (n, good) = replay("oracle_zstd", Some(TraceFormat::OracleZstd), "zst", |b| Some(b.to_vec()));
    assert!(good >= 1 && n >= 1, "{good} of {n}");
}

#[test]
fn native_corpus() {
    let (n, good) = replay("native", Some(TraceFormat::Native), "cst", |b| Some(b.to_vec()));
    assert!(good >= 1 && n >= 1, "{good} of {n}");
}

#[test]
fn detect_corpus() {
    let (n, good) = replay("detect", None, "trace", |b| Some(b.to_vec()));
    assert!(good >= 1 && n >= 1, "{good} of {n}");
}

#[test]
fn dispatch_corpus() {
    // First byte: even = file as is, odd = gzip the rest (fuzz/fuzz_targets/dispatch.rs).
    let (n, good) = replay("dispatch", Some(TraceFormat::Dispatch), "jsonl.gz", |b| {
        let (&mode, rest) = b.split_first()?;
        Some(if mode % 2 == 0 {
            rest.to_vec()
        } else {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(rest).unwrap();
            gz.finish().unwrap()
        })
    });
    assert!(good >= 1 && n >= 1, "{good} of {n}");
}

#[test]
fn spec_corpus() {
    let mut parsed = 0;
    for input in corpus("spec") {
        let bytes = std::fs::read(&input).unwrap();
        let Ok(text) = std::str::from_utf8(&bytes) else { continue };
        if let Ok(spec) = WorkloadSpec::parse(text, Path::new("fuzz.toml")) {
            parsed += 1;
            let _ = spec.max_size();
            assert!(spec.generate().take(MAX_EVENTS as usize).all(|r| r.size > 0), "{}", input.display());
        }
    }
    assert!(parsed >= 1);
    let (n, good) = replay("spec", Some(TraceFormat::Spec), "toml", |b| Some(b.to_vec()));
    assert!(good >= 1 && n >= 1, "{good} of {n}");
}
