//! Request-trace formats: roundtrips, detection, and every bad input
//! giving an error that names the file, the line or record, and the field.

use std::io::Write;
use std::path::{Path, PathBuf};

use cachescope_core::policy::Access;
use cachescope_harness::trace::native::{self, NativeLayout, NativeMeta, NativeWriter};
use cachescope_harness::trace::oracle::{OracleReader, OracleRecord};
use cachescope_harness::trace::{
    DecodedTrace, Flatten, LoadOptions, NativeReader, RequestRecord, TraceEvent, TraceFormat, TraceReader, convert,
    convert_with,
};

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// A CSV with keys at and above 2^63, size-0 lines, an access column,
/// blank lines and CRLF endings.
fn sample_csv(dir: &Path) -> PathBuf {
    let text = "time,key,size,access\r\n\
                1,10,100,r\r\n\
                2,18446744073709551615,7,w\n\
                3,10,100,rw\n\
                4,30,0,r\n\
                \n\
                5,9223372036854775808,9,r\n\
                6,18446744073709551615,7,r\n\
                7,40,0,w\n\
                8,10,100,r\n";
    write(dir, "sample.csv", text.as_bytes())
}

fn requests(path: &Path) -> Vec<RequestRecord> {
    TraceReader::open(path, None, Flatten::Buffers, false).unwrap().requests().collect::<Result<_, _>>().unwrap()
}

fn err_text<T: std::fmt::Debug>(r: Result<T, cachescope_harness::error::Error>) -> String {
    r.expect_err("expected an error").to_string()
}

#[test]
fn csv_reads_keys_sizes_access_and_counts_size_zero() {
    let dir = tempfile::tempdir().unwrap();
    let csv = sample_csv(dir.path());
    let mut reader = TraceReader::open(&csv, None, Flatten::Buffers, false).unwrap();
    assert_eq!(reader.format(), TraceFormat::Csv);
    let got: Vec<_> = reader.by_ref().collect::<Result<_, _>>().unwrap();
    assert_eq!(got.len(), 6);
    assert_eq!(reader.skipped_zero_size(), 2);
    assert_eq!(got[1], TraceEvent::Request(RequestRecord { time: 2, key: u64::MAX, size: 7, access: Access::Write }));
    assert_eq!(got[3].key(), 1 << 63);
    let d = DecodedTrace::load(&csv, None, LoadOptions::default()).unwrap();
    assert_eq!(d.identity.records, 6);
    assert_eq!(d.identity.skipped_zero_size, 2);
    assert_eq!(d.unique_keys, 3);
    assert_eq!(d.unique_bytes, 100 + 7 + 9);
    assert_eq!(d.dense_ids, vec![0, 1, 0, 2, 1, 0]);
    assert_eq!(d.next_access, vec![2, 4, 5, u64::MAX, u64::MAX, u64::MAX]);
    assert_eq!(d.access[2], Access::ReadWrite);
    assert_eq!(d.identity.blake3, blake3::hash(&std::fs::read(&csv).unwrap()).to_hex().to_string());
    assert_eq!(d.identity.bytes, std::fs::metadata(&csv).unwrap().len());
    assert!(d.is_free.is_none() && d.peak_live_bytes.is_none());
}

#[test]
fn csv_to_native_to_csv_roundtrip() {
    let dir = tempfile::tempdir().unwrap();
    let csv = sample_csv(dir.path());
    let nat = dir.path().join("t.cst");
    let summary = convert(&csv, None, &nat).unwrap();
    assert_eq!(summary.records, 6);
    assert_eq!(TraceFormat::detect(&nat).unwrap(), TraceFormat::Native);
    // Times, keys, sizes and access kinds survive; next access is stored.
    let reader = NativeReader::open(&nat).unwrap();
    assert_eq!(reader.header().skipped_zero_size, 2);
    assert!(reader.header().has_next_access());
    let recs: Vec<_> = reader.collect::<Result<_, _>>().unwrap();
    let events: Vec<_> = recs.iter().map(|r| r.event).collect();
    let original: Vec<_> = requests(&csv).into_iter().map(TraceEvent::Request).collect();
    assert_eq!(events, original);
    assert_eq!(recs[0].next_access, Some(2));
    assert_eq!(recs[5].next_access, Some(native::NEVER));
    // The decoded copies agree, skipped count included.
    let a = DecodedTrace::load(&csv, None, LoadOptions::default()).unwrap();
    let b = DecodedTrace::load(&nat, None, LoadOptions::default()).unwrap();
    assert_eq!((a.keys, a.sizes, a.access, a.next_access), (b.keys, b.sizes, b.access, b.next_access));
    assert_eq!(b.identity.skipped_zero_size, 2);
    // And back to CSV: the same lines, minus the size-0 ones.
    let back = dir.path().join("back.csv");
    convert_with(&nat, None, &back, TraceFormat::Csv, LoadOptions::default()).unwrap();
    assert_eq!(requests(&back), requests(&csv));
    let text = std::fs::read_to_string(&back).unwrap();
    assert!(text.starts_with("time,key,size,access\n2,") || text.starts_with("time,key,size,access\n1,10,100,r\n"));
}

#[test]
fn oracle_roundtrip_plain_and_zstd_with_libcachesim_next_access() {
    let dir = tempfile::tempdir().unwrap();
    let csv = sample_csv(dir.path());
    for (name, format) in [("t.oracle", TraceFormat::Oracle), ("t.oracle.zst", TraceFormat::OracleZstd)] {
        let out = dir.path().join(name);
        let s = convert_with(&csv, None, &out, format, LoadOptions::default()).unwrap();
        assert_eq!(s.records, 6);
        assert_eq!(TraceFormat::detect(&out).unwrap(), format);
        // `oracle` named by the user reads a zstd file too.
        let named = DecodedTrace::load(&out, Some(TraceFormat::Oracle), LoadOptions::default()).unwrap();
        assert_eq!(named.identity.format, format);
        let mut raw = OracleReader::open(&out, format == TraceFormat::OracleZstd).unwrap();
        let recs: Vec<OracleRecord> = std::iter::from_fn(|| raw.next_record()).collect::<Result<_, _>>().unwrap();
        let vt: Vec<i64> = recs.iter().map(|r| r.next_access_vtime).collect();
        assert_eq!(vt, vec![3, 5, 6, -1, -1, -1], "1-based vtime of the next request, -1 for never");
        let got: Vec<_> = requests(&out).into_iter().map(|r| (r.time, r.key, r.size)).collect();
        let want: Vec<_> = requests(&csv).into_iter().map(|r| (r.time, r.key, r.size)).collect();
        assert_eq!(got, want);
    }
}

#[test]
fn detection_and_format_names() {
    let dir = tempfile::tempdir().unwrap();
    let csv = sample_csv(dir.path());
    assert_eq!(TraceFormat::detect(&csv).unwrap(), TraceFormat::Csv);
    let traces = Path::new(env!("CARGO_MANIFEST_DIR")).join("../workloads/traces");
    assert_eq!(TraceFormat::detect(&traces.join("resnet50-train.jsonl.gz")).unwrap(), TraceFormat::Dispatch);
    let plain = write(dir.path(), "d.jsonl", b"{\"format\": \"gpu-dispatch-trace\", \"version\": 1}\n");
    assert_eq!(TraceFormat::detect(&plain).unwrap(), TraceFormat::Dispatch);
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("../workloads/default.toml");
    assert_eq!(TraceFormat::detect(&spec).unwrap(), TraceFormat::Spec);
    // Native and oracle (plain and zstd) are covered by the roundtrips; an
    // unknown binary file is an error naming the file.
    let junk = write(dir.path(), "junk.bin", &[7u8; 25]);
    let e = err_text(TraceFormat::detect(&junk));
    assert!(e.contains("junk.bin") && e.contains("cannot tell the format"), "{e}");
    let empty = write(dir.path(), "empty.csv", b"");
    assert!(err_text(TraceFormat::detect(&empty)).contains("empty"));
    let gz_csv = dir.path().join("x.csv.gz");
    let mut enc = flate2::write::GzEncoder::new(std::fs::File::create(&gz_csv).unwrap(), flate2::Compression::fast());
    enc.write_all(b"time,key,size\n1,2,3\n").unwrap();
    enc.finish().unwrap();
    assert!(err_text(TraceFormat::detect(&gz_csv)).contains("gpu-dispatch-trace"));
    for name in ["csv", "oracle", "oracle-zstd", "dispatch", "native", "spec", "CSV"] {
        let f: TraceFormat = name.parse().unwrap();
        assert!(f.name().eq_ignore_ascii_case(name));
    }
    assert!(err_text("parquet".parse::<TraceFormat>()).contains("known: csv, oracle"));
}

#[test]
fn csv_errors_name_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, &str)] = &[
        ("time,key,size\n1,2,3\n4,5,-3\n", "line 3: field `size`: `-3` is not an unsigned integer"),
        ("time,key,size\n1,2\n", "line 2: field `size`: missing"),
        ("time,key,size\n1,2,3,4\n", "line 2: 4 fields, the header names 3"),
        ("time,key,size\n1,18446744073709551616,3\n", "line 2: field `key`: `18446744073709551616` does not fit"),
        ("time,key,size\n1,,3\n", "line 2: field `key`: `` is empty"),
        ("time,key,size,access\n1,2,3,x\n", "line 2: field `access`: `x` is not one of r, w, rw"),
        ("key,time,size\n1,2,3\n", "line 1: expected the header `time,key,size`"),
        ("1,2,3\n", "line 1: expected the header"),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        let p = write(dir.path(), &format!("bad{i}.csv"), text.as_bytes());
        let e = err_text(DecodedTrace::load(&p, Some(TraceFormat::Csv), LoadOptions::default()));
        assert!(e.starts_with(&format!("trace `{}` ", p.display())), "{e}");
        assert!(e.contains(want), "case {i}: {e}\nwanted: {want}");
    }
    // A file with no newline cannot make the reader hold it all.
    let mut long = b"time,key,size\n".to_vec();
    long.extend(std::iter::repeat_n(b'1', 100_000));
    let p = write(dir.path(), "long.csv", &long);
    assert!(err_text(DecodedTrace::load(&p, None, LoadOptions::default())).contains("line 2: line longer than"));
    // Options that do not apply are refused.
    let e = err_text(DecodedTrace::load(
        &sample_csv(dir.path()),
        None,
        LoadOptions { pipelines: true, ..Default::default() },
    ));
    assert!(e.contains("no pipelines"), "{e}");
}

#[test]
fn oracle_truncated_record_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = Vec::new();
    for i in 0..3u64 {
        bytes.extend_from_slice(&(i as u32).to_le_bytes());
        bytes.extend_from_slice(&(i + 100).to_le_bytes());
        bytes.extend_from_slice(&(if i == 1 { 0u32 } else { 8u32 }).to_le_bytes());
        bytes.extend_from_slice(&(-1i64).to_le_bytes());
    }
    bytes.extend_from_slice(&[1, 2, 3, 4, 5]);
    let p = write(dir.path(), "t.oracle", &bytes);
    let mut reader = TraceReader::open(&p, Some(TraceFormat::Oracle), Flatten::Buffers, false).unwrap();
    assert!(reader.next().unwrap().is_ok());
    assert!(reader.next().unwrap().is_ok(), "record 1 has size 0 and is skipped");
    let e = reader.next().unwrap().unwrap_err().to_string();
    assert!(e.contains("t.oracle` record 3: truncated: the input ends 5 bytes into this 24-byte record"), "{e}");
    assert_eq!(reader.skipped_zero_size(), 1);
    assert!(reader.next().is_none(), "a reader stops after an error");
    // The same through zstd.
    let z = write(dir.path(), "t.oracle.zst", &zstd::encode_all(&bytes[..], 3).unwrap());
    let e = err_text(DecodedTrace::load(&z, None, LoadOptions::default()));
    assert!(e.contains("record 3: truncated"), "{e}");
}

fn native_file(dir: &Path, records: u64) -> PathBuf {
    let p = dir.join("n.cst");
    let layout = NativeLayout { time_bytes: 4, size_bytes: 4, op: true, next_access: false };
    let mut w =
        NativeWriter::create(&p, layout, NativeMeta { dictionary: vec![(7, "addmm".into())], ..Default::default() })
            .unwrap();
    for i in 0..records {
        let access = if i % 2 == 0 { Access::Read } else { Access::ReadWrite };
        w.write(&TraceEvent::Request(RequestRecord { time: i, key: i % 5, size: 1 + i, access }), native::NEVER)
            .unwrap();
    }
    let h = w.finish().unwrap();
    assert_eq!(h.record_count, records);
    p
}

#[test]
fn native_writer_reader_roundtrip_and_layout() {
    let dir = tempfile::tempdir().unwrap();
    let p = native_file(dir.path(), 1000);
    let r = NativeReader::open(&p).unwrap();
    assert_eq!(r.header().fields, vec![(1, 4), (2, 8), (3, 4), (4, 1)]);
    assert_eq!(r.header().record_bytes(), 17);
    assert_eq!(r.header().dictionary, vec![(7, "addmm".to_owned())]);
    let recs: Vec<_> = r.collect::<Result<_, _>>().unwrap();
    assert_eq!(recs.len(), 1000);
    assert_eq!(
        recs[999].event,
        TraceEvent::Request(RequestRecord { time: 999, key: 4, size: 1000, access: Access::ReadWrite })
    );
    assert_eq!(recs[0].next_access, None);
    // A value that does not fit a 4-byte field is refused, not truncated.
    let layout = NativeLayout { time_bytes: 4, size_bytes: 4, op: false, next_access: false };
    let mut w = NativeWriter::create(&dir.path().join("x.cst"), layout, NativeMeta::default()).unwrap();
    let big = RequestRecord { time: 0, key: 1, size: 1 << 32, access: Access::Read };
    assert!(w.write(&TraceEvent::Request(big), 0).unwrap_err().to_string().contains("size 4294967296 does not fit"));
}

/// Rewrites bytes of a native file's header.
fn patch(path: &Path, offset: usize, bytes: &[u8]) -> PathBuf {
    let mut data = std::fs::read(path).unwrap();
    data[offset..offset + bytes.len()].copy_from_slice(bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let out = path.with_file_name(format!("patched-{offset}-{hex}.cst"));
    std::fs::write(&out, data).unwrap();
    out
}

#[test]
fn hostile_native_headers_are_refused_without_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let good = native_file(dir.path(), 100);
    let cases: Vec<(PathBuf, &str)> = vec![
        (patch(&good, 16, &u64::MAX.to_le_bytes()), "header: field `record_count`: 18446744073709551615 records"),
        (patch(&good, 16, &(1u64 << 40).to_le_bytes()), "field `record_count`"),
        (patch(&good, 12, &u32::MAX.to_le_bytes()), "field `header_bytes`"),
        (patch(&good, 0, b"XSCOPE"), "field `magic`: not a cachescope native trace"),
        (patch(&good, 8, &9u16.to_le_bytes()), "field `version`: version 9 is not supported"),
        (patch(&good, 10, &0x100u16.to_le_bytes()), "field `flags`: unknown flag bits 0x100"),
        (patch(&good, 40, &[0]), "field `field_count`: 0 is not in 1..=32"),
        (patch(&good, 44, &[2, 3]), "field `fields[0]`: field id 2 cannot have width 3"),
        // dictionary count (after 4 fields) claims 2^32-1 entries
        (patch(&good, 52, &u32::MAX.to_le_bytes()), "field `dictionary`: 4294967295 entries cannot fit"),
        // the dictionary name length claims more than the header holds
        (patch(&good, 64, &4000u16.to_le_bytes()), "field `dictionary[0]`: does not fit"),
    ];
    for (p, want) in cases {
        let e = err_text(NativeReader::open(&p));
        assert!(e.contains(&format!("{}` header", p.file_name().unwrap().to_string_lossy())), "{e}");
        assert!(e.contains(want), "{e}\nwanted: {want}");
    }
    // A plausible count larger than the body: the error names the record.
    let short = patch(&good, 16, &150u64.to_le_bytes());
    let e = err_text(DecodedTrace::load(&short, None, LoadOptions::default()));
    assert!(e.contains("record 100: truncated: the body ends here, the header announces 150 records"), "{e}");
    let long = patch(&good, 16, &60u64.to_le_bytes());
    let e = err_text(DecodedTrace::load(&long, None, LoadOptions::default()));
    assert!(e.contains("record 60: the body holds more than the 60 records"), "{e}");
    // A truncated file: the header is fine, the zstd body stops.
    let data = std::fs::read(&good).unwrap();
    let cut = write(dir.path(), "cut.cst", &data[..data.len() - 40]);
    let e = err_text(DecodedTrace::load(&cut, None, LoadOptions::default()));
    assert!(e.contains("cut.cst` record"), "{e}");
    let tiny = write(dir.path(), "tiny.cst", &native::MAGIC);
    assert!(err_text(NativeReader::open(&tiny)).contains("header: truncated: 8 bytes"));
}
