//! Fuzzes format detection and whichever reader it picks.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = common::file(data, "trace");
    common::read_all_ways(&path, None);
});
