use std::path::Path;
use std::time::Instant;
use cachescope_harness::trace::*;
#[test]
fn perf() {
    let dir = Path::new("/tmp/perf");
    for name in ["t.oracle", "t.cst"] {
        let p = dir.join(name);
        let t = Instant::now();
        let n = TraceReader::open(&p, None, Flatten::Buffers, false).unwrap().count();
        println!("stream {name} {n}: {:?}", t.elapsed());
        let t = Instant::now();
        let r = TraceReader::open(&p, None, Flatten::Buffers, false).unwrap();
        let f = r.format();
        let d = DecodedTrace::from_events(r, f, LoadOptions::default()).unwrap();
        println!("from_events {name} {}: {:?}", d.len(), t.elapsed());
        let t = Instant::now();
        let d = DecodedTrace::load(&p, None, LoadOptions::default()).unwrap();
        println!("load {name} {}: {:?}", d.len(), t.elapsed());
    }
    let t = Instant::now();
    let h = blake3::hash(&std::fs::read(dir.join("t.oracle")).unwrap());
    println!("blake3 oracle {:?} {}", t.elapsed(), h);
}
