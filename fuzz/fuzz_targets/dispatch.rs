//! Fuzzes the dispatch-trace reader (JSON Lines, plain or gzip). The first
//! byte picks the layer: even = the rest is the file as is (plain or a
//! mutated gzip stream), odd = the rest is JSON Lines that the target
//! gzip-compresses, so the fuzzer explores the JSON behind the gzip layer.
#![no_main]

mod common;

use std::io::Write;

use cachescope_harness::trace::TraceFormat;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let bytes = if mode % 2 == 0 {
        rest.to_vec()
    } else {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(rest).expect("gzip to memory");
        gz.finish().expect("gzip to memory")
    };
    let path = common::file(&bytes, "jsonl.gz");
    common::read_all_ways(&path, Some(TraceFormat::Dispatch));
});
