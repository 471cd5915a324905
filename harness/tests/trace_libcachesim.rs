//! The oracleGeneral writer produces byte for byte what libCacheSim 0.3.5's
//! own converter (`lcs.Util.convert_to_oracleGeneral`) writes for the same
//! CSV, next-access vtimes included, so libCacheSim's Belady can read our
//! files. Like the core's differential test, a missing libcachesim fails
//! with the command that installs it (`scripts/test.sh` does).

use std::io::Write;
use std::process::Command;

use cachescope_harness::trace::{LoadOptions, TraceFormat, convert_with};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const CONVERT: &str = r#"
import sys
import libcachesim as lcs
params = lcs.ReaderInitParam(has_header=True, has_header_set=True, delimiter=",")
params.time_field, params.obj_id_field, params.obj_size_field = 1, 2, 3
reader = lcs.TraceReader(sys.argv[1], lcs.TraceType.CSV_TRACE, params)
lcs.Util.convert_to_oracleGeneral(reader._reader, sys.argv[2])
"#;

#[test]
fn oracle_writer_matches_libcachesim_converter() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("t.csv");
    let mut rng = ChaCha8Rng::seed_from_u64(17);
    let mut f = std::io::BufWriter::new(std::fs::File::create(&csv).unwrap());
    writeln!(f, "time,key,size").unwrap();
    for t in 0..3000u64 {
        let rank: u64 = rng.random_range(0..400);
        let key = if rank.is_multiple_of(5) { (1 << 63) + rank } else { rank * 2_654_435_761 };
        let size = if rank.is_multiple_of(13) { 0 } else { 1 + rank * 7 };
        writeln!(f, "{},{key},{size}", t + 1).unwrap();
    }
    drop(f);
    let theirs = dir.path().join("theirs.oracle");
    let out = Command::new("python3").arg("-c").arg(CONVERT).arg(&csv).arg(&theirs).output().expect("python3 on PATH");
    assert!(
        out.status.success(),
        "libCacheSim's converter failed (install it with `python3 -m pip install libcachesim==0.3.5`):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ours = dir.path().join("ours.oracle");
    convert_with(&csv, None, &ours, TraceFormat::Oracle, LoadOptions::default()).unwrap();
    let (a, b) = (std::fs::read(&ours).unwrap(), std::fs::read(&theirs).unwrap());
    assert_eq!(a.len(), b.len());
    let first_diff = a.chunks(24).zip(b.chunks(24)).position(|(x, y)| x != y);
    assert_eq!(first_diff, None, "records differ");
}
