//! Shared by the fuzz targets: the readers open paths, so each input is
//! written to one file per process and read from there, through the
//! streaming reader (both flattenings) and through `DecodedTrace::load`
//! (what `sim` does), each bounded in events.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use cachescope_harness::trace::{DecodedTrace, Flatten, LoadOptions, TraceFormat, TraceReader};

/// Most events drained per input: inputs are small, this only stops a
/// generator (a workload spec) from running for long.
pub const MAX_EVENTS: u64 = 20_000;

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("cachescope-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("fuzz scratch directory");
        d
    })
}

/// Writes `data` to this process's scratch file `input.<ext>` and returns it.
pub fn file(data: &[u8], ext: &str) -> PathBuf {
    let path = dir().join(format!("input.{ext}"));
    std::fs::write(&path, data).expect("write fuzz input");
    path
}

/// Reads `path` every way a user can: any error is fine, a panic or an
/// unbounded allocation is not.
pub fn read_all_ways(path: &Path, format: Option<TraceFormat>) {
    for (flatten, keep_frees) in [(Flatten::Buffers, false), (Flatten::Buffers, true), (Flatten::Pipelines, false)] {
        if let Ok(reader) = TraceReader::open(path, format, flatten, keep_frees) {
            let _ = reader.len_hint();
            for event in reader.take(MAX_EVENTS as usize) {
                if event.is_err() {
                    break;
                }
            }
        }
    }
    for (pipelines, gpu) in [(false, false), (false, true), (true, false)] {
        let options = LoadOptions { objects: false, pipelines, gpu, limit: Some(MAX_EVENTS) };
        let _ = DecodedTrace::load(path, format, options);
    }
}
