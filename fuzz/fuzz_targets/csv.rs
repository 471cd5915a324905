//! Fuzzes the csv trace reader (format given explicitly).
#![no_main]

mod common;

use cachescope_harness::trace::TraceFormat;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = common::file(data, "csv");
    common::read_all_ways(&path, Some(TraceFormat::Csv));
});
