//! Fuzzes the TOML workload-spec parser, and the generator on what parses
//! (a bounded number of requests).
#![no_main]

mod common;

use std::path::Path;

use cachescope_harness::trace::{TraceFormat, WorkloadSpec};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(spec) = WorkloadSpec::parse(text, Path::new("fuzz.toml")) {
        let _ = spec.max_size();
        for r in spec.generate().take(common::MAX_EVENTS as usize) {
            assert!(r.size > 0, "a generated request of size 0");
        }
    }
    // Through the file path too (size limit, detection by extension).
    let path = common::file(data, "toml");
    let _ = WorkloadSpec::load(&path);
    common::read_all_ways(&path, Some(TraceFormat::Spec));
});
