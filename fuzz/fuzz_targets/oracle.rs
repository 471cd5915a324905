//! Fuzzes the oracle trace reader (format given explicitly).
#![no_main]

mod common;

use cachescope_harness::trace::TraceFormat;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = common::file(data, "bin");
    common::read_all_ways(&path, Some(TraceFormat::Oracle));
});
