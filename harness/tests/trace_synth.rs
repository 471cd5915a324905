//! Synthetic workloads: the shipped specs parse, generation is seeded and
//! deterministic, each component behaves as documented, written traces read
//! back equal, and spec errors name the line and field.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use cachescope_harness::trace::synth::{ComponentKind, SizeDist, WorkloadSpec};
use cachescope_harness::trace::{
    DecodedTrace, Flatten, LoadOptions, RequestRecord, TraceFormat, TraceReader, gen_trace,
};

fn workloads() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../workloads")
}

fn spec(text: &str) -> WorkloadSpec {
    WorkloadSpec::parse(text, Path::new("test.toml")).unwrap()
}

fn spec_err(text: &str) -> String {
    WorkloadSpec::parse(text, Path::new("test.toml")).unwrap_err().to_string()
}

#[test]
fn shipped_specs_parse_and_generate() {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(workloads()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let s = WorkloadSpec::load(&path).unwrap_or_else(|e| panic!("{e}"));
            assert!(s.description.is_some(), "{} has a description", path.display());
            let first: Vec<RequestRecord> = s.generate().take(20_000).collect();
            assert!(first.iter().all(|r| r.size >= 1));
            names.push(path.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    names.sort();
    assert_eq!(names, ["default.toml", "mixture.toml", "phase-change.toml", "scan-loop.toml", "zipf-1m.toml"]);
    let default = WorkloadSpec::load(&workloads().join("default.toml")).unwrap();
    assert_eq!(default.requests, 1_000_000);
}

#[test]
fn generation_is_deterministic_for_a_seed() {
    let text = std::fs::read_to_string(workloads().join("mixture.toml")).unwrap();
    let a: Vec<_> = spec(&text).generate().take(50_000).collect();
    let b: Vec<_> = spec(&text).generate().take(50_000).collect();
    assert_eq!(a, b);
    let c: Vec<_> = spec(&text.replace("seed = 3", "seed = 4")).generate().take(50_000).collect();
    assert_ne!(a, c);
    assert!(a.iter().enumerate().all(|(i, r)| r.time == i as u64));
}

#[test]
fn zipf_is_skewed_and_sizes_are_stable_per_key() {
    let s = spec(
        "seed = 9\nrequests = 100000\n[[component]]\nkind = \"zipf\"\nkeys = 1000\nalpha = 1.0\n\
         size = { dist = \"lognormal\", median = 1000, sigma = 2.0, min = 10, max = 100000 }\n",
    );
    let reqs: Vec<_> = s.generate().collect();
    let mut counts: HashMap<u64, u64> = HashMap::new();
    let mut sizes: HashMap<u64, u64> = HashMap::new();
    for r in &reqs {
        *counts.entry(r.key).or_default() += 1;
        assert_eq!(*sizes.entry(r.key).or_insert(r.size), r.size, "a key's size never changes");
        assert!((10..=100_000).contains(&r.size));
    }
    let mut c: Vec<u64> = counts.values().copied().collect();
    c.sort_unstable_by(|a, b| b.cmp(a));
    // Rank 1 of Zipf(1.0) over 1000 keys has probability 1/H(1000) ~ 13.4%,
    // rank 2 half of that.
    assert!((12_500..14_300).contains(&c[0]), "top key drawn {} times", c[0]);
    assert!((6_000..7_400).contains(&c[1]), "second key drawn {} times", c[1]);
    assert!(counts.len() > 900);
    // Sizes do vary across keys.
    assert!(sizes.values().collect::<HashSet<_>>().len() > 500);
}

#[test]
fn scan_loop_and_runs() {
    let s = spec(
        "seed = 1\nrequests = 10000\n[size]\ndist = \"fixed\"\nbytes = 8\n\
         [[component]]\nkind = \"loop\"\nkeys = 7\nweight = 0.5\nrun = 70\n\
         [[component]]\nkind = \"scan\"\nweight = 0.5\nrun = 10\n",
    );
    let reqs: Vec<_> = s.generate().collect();
    let mut counts: HashMap<u64, u64> = HashMap::new();
    for r in &reqs {
        *counts.entry(r.key).or_default() += 1;
    }
    let loop_keys: Vec<_> = counts.iter().filter(|&(_, c)| *c > 1).map(|(k, _)| *k).collect();
    assert_eq!(loop_keys.len(), 7, "only the 7 loop keys repeat: scan keys are fresh");
    let loop_requests: u64 = loop_keys.iter().map(|k| counts[k]).sum();
    let share = loop_requests as f64 / reqs.len() as f64;
    assert!((0.4..0.6).contains(&share), "weight is the share of requests: {share}");
    // Runs: the loop emits 70 consecutive requests, cycling its 7 keys in order.
    let first_loop = reqs.iter().position(|r| loop_keys.contains(&r.key)).unwrap();
    let run: Vec<u64> = reqs[first_loop..first_loop + 14].iter().map(|r| r.key).collect();
    assert_eq!(run[..7], run[7..]);
    assert_eq!(run[..7].iter().collect::<HashSet<_>>().len(), 7);
}

#[test]
fn phases_switch_the_hot_set() {
    let s = WorkloadSpec::load(&workloads().join("phase-change.toml")).unwrap();
    assert_eq!(s.phases.len(), 3);
    assert_eq!(s.phases[0].end, 500_000);
    assert!(matches!(s.phases[2].components[0].kind, ComponentKind::Zipf { rotate: 25_000, .. }));
    assert_eq!(s.phases[0].components[0].keyspace, s.phases[2].components[0].keyspace);
    assert!(matches!(s.phases[0].components[0].size.dist, SizeDist::Uniform { min: 1024, max: 16_384 }));
    let reqs: Vec<_> = s.generate().collect();
    let keys = |r: std::ops::Range<usize>| reqs[r].iter().map(|r| r.key).collect::<HashSet<_>>();
    let (a, b) = (keys(0..500_000), keys(500_000..1_000_000));
    assert!(a.is_disjoint(&b), "phase 2 uses a new key space");
    let top = |r: std::ops::Range<usize>| {
        let mut c: HashMap<u64, u64> = HashMap::new();
        for q in &reqs[r] {
            *c.entry(q.key).or_default() += 1;
        }
        c.into_iter().max_by_key(|&(k, n)| (n, k)).unwrap().0
    };
    let (hot1, hot3) = (top(0..500_000), top(1_000_000..1_500_000));
    assert_ne!(hot1, hot3, "rotation makes another key the hottest");
    assert!(a.contains(&hot3), "phase 3 reuses phase 1's keys");
}

#[test]
fn written_traces_read_back_equal() {
    let dir = tempfile::tempdir().unwrap();
    let s = spec(
        "seed = 5\nrequests = 5000\n[[component]]\nkind = \"zipf\"\nkeys = 300\nalpha = 0.7\n\
         size = { dist = \"uniform\", min = 1, max = 5000 }\n",
    );
    let want: Vec<_> = s.generate().collect();
    for (name, format) in [
        ("g.csv", TraceFormat::Csv),
        ("g.cst", TraceFormat::Native),
        ("g.oracle", TraceFormat::Oracle),
        ("g.oracle.zst", TraceFormat::OracleZstd),
    ] {
        let p = dir.path().join(name);
        assert_eq!(gen_trace(&s, &p, format).unwrap(), 5000);
        let got: Vec<_> =
            TraceReader::open(&p, None, Flatten::Buffers, false).unwrap().requests().collect::<Result<_, _>>().unwrap();
        assert_eq!(got, want, "{name}");
    }
    assert!(gen_trace(&s, &dir.path().join("x"), TraceFormat::Dispatch).is_err());
    // A spec file is a trace too: decoded on the fly.
    let spec_path = dir.path().join("w.toml");
    std::fs::write(&spec_path, "seed = 5\nrequests = 100\n[[component]]\nkind = \"uniform\"\nkeys = 10\nsize = { dist = \"fixed\", bytes = 3 }\n").unwrap();
    let d = DecodedTrace::load(&spec_path, None, LoadOptions::default()).unwrap();
    assert_eq!((d.identity.format, d.identity.records, d.unique_bytes), (TraceFormat::Spec, 100, 3 * d.unique_keys));
}

#[test]
fn spec_errors_name_line_and_field() {
    let base = "seed = 1\nrequests = 10\n[[component]]\nkind = \"zipf\"\nkeys = 10\nalpha = 1.0\nsize = { dist = \"fixed\", bytes = 4 }\n";
    let cases: Vec<(String, &str)> = vec![
        (base.replace("alpha = 1.0", "alpah = 1.0"), "line 6: field `alpah`: unknown field `alpah`"),
        (base.replace("alpha = 1.0", "alpha = -1.0"), "line 6: field `alpha`: -1 must be a finite number in 0..=100"),
        (base.replace("alpha = 1.0", "alpha = \"big\""), "line 6: field `alpha`: invalid type"),
        (base.replace("keys = 10", "keys = 0"), "line 5: field `keys`: 0 is not in 1..=2^40"),
        (base.replace("kind = \"zipf\"", "kind = \"lru\""), "line 4: field `kind`: `lru` is not one of zipf, uniform, loop, scan"),
        (base.replace("requests = 10", "requests = 0"), "line 2: field `requests`: 0 is not in 1..=2^40"),
        (base.replace("seed = 1\n", ""), "missing field `seed`"),
        (base.replace("size = { dist = \"fixed\", bytes = 4 }\n", ""), "line 3: field `size`: missing: give the component a size"),
        (base.replace("bytes = 4", "bytes = 0"), "line 7: field `bytes`: sizes must be at least 1 byte"),
        (base.replace("bytes = 4", "min = 4"), "line 7: field `min`: does not apply to dist = \"fixed\""),
        (base.replace("\"fixed\", bytes = 4", "\"uniform\", min = 9, max = 4"), "line 7: field `max`: 4 is smaller than min 9"),
        (base.replace("alpha = 1.0", "alpha = 1.0\nweight = -2"), "line 7: field `weight`: -2 must be a finite number >= 0"),
        (
            "seed = 1\nrequests = 10\n[size]\ndist = \"fixed\"\nbytes = 1\n[[phase]]\nuntil = 0.5\n[[phase.component]]\nkind = \"scan\"\n\
             [[phase]]\nuntil = 0.4\n[[phase.component]]\nkind = \"scan\"\n"
                .into(),
            "line 11: field `until`: 0.4 must be greater than the previous phase's (0.5)",
        ),
        (
            "seed = 1\nrequests = 10\n[size]\ndist = \"fixed\"\nbytes = 1\n[[phase]]\n[[phase.component]]\nkind = \"scan\"\n[[phase]]\n[[phase.component]]\nkind = \"scan\"\n".into(),
            "field `until`: missing (every phase but the last needs it)",
        ),
        (format!("{base}[[phase]]\n[[phase.component]]\nkind = \"scan\"\n"), "field `phase`: give either"),
        ("seed = 1\nrequests = 10\n".into(), "field `component`: missing"),
        (base.replace("kind = \"zipf\"\n", "kind = \"scan\"\n"), "line 6: field `alpha`: does not apply to kind = \"scan\""),
        ("seed = 1\nrequests = [10\n".into(), "line 2"),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        let e = spec_err(text);
        assert!(e.starts_with("workload spec `test.toml` line "), "case {i}: {e}");
        assert!(e.contains(want), "case {i}: {e}\nwanted: {want}");
    }
}
