//! Integration tests of the workgroup-size tuner: candidates within limits,
//! the persisted store, reuse without measuring, the noise-aware sweep, and
//! the hysteresis resize rule.

use std::path::Path;

use cachescope_core::Error;
use cachescope_core::tuner::*;
use proptest::prelude::*;

fn key(name: &str) -> ProgramKey {
    ProgramKey::new(name.as_bytes(), &[1 << 20, 4])
}

fn decision(x: u32, confident: bool) -> Decision {
    Decision { workgroup: [x, 1, 1], min_ns: 8_000, median_ns: 8_400, samples: 27, confident }
}

/// Counts every measurement it forwards.
struct CountingTimer<T> {
    inner: T,
    calls: u64,
}

impl<T: BackendTimer> BackendTimer for CountingTimer<T> {
    fn time_ns(&mut self, key: &ProgramKey, workgroup: [u32; 3]) -> cachescope_core::Result<u64> {
        self.calls += 1;
        self.inner.time_ns(key, workgroup)
    }
}

/// A U-shaped cost with its minimum at `best`: each factor of two away
/// costs 10% more.
fn u_shaped(best: u32) -> impl FnMut([u32; 3]) -> u64 + Send + 'static {
    u_shaped_gap(best, 1_000)
}

/// A U-shaped cost of 10 µs at `best`, `gap_ns` more per factor of two away.
fn u_shaped_gap(best: u32, gap_ns: u64) -> impl FnMut([u32; 3]) -> u64 + Send + 'static {
    move |wg| {
        let steps = (i64::from(wg[0].ilog2()) - i64::from(best.ilog2())).unsigned_abs();
        10_000 + gap_ns * steps
    }
}

fn limits() -> impl Strategy<Value = AdapterLimits> {
    (1u32..=2048, 1u32..=2048, 1u32..=2048, 1u32..=128, prop::option::of(1u32..=128)).prop_map(|(inv, x, y, z, sg)| {
        AdapterLimits {
            max_invocations_per_workgroup: inv,
            max_size_x: x,
            max_size_y: y,
            max_size_z: z,
            subgroup_size: sg,
        }
    })
}

proptest! {
    #[test]
    fn candidates_never_exceed_limits(l in limits(), min_invocations in 0u32..600, include_2d: bool) {
        let c = candidates(&l, &CandidateOptions { min_invocations, include_2d }).unwrap();
        prop_assert!(!c.is_empty());
        for wg in &c {
            prop_assert!(l.allows(*wg), "{wg:?} exceeds {l:?}");
        }
        let mut sorted = c.clone();
        sorted.dedup();
        prop_assert_eq!(sorted.len(), c.len(), "no duplicates");
        let one_d = c.iter().filter(|wg| wg[1] == 1).count();
        prop_assert!(one_d >= 1, "always at least one 1D size");
    }

    #[test]
    fn resize_stays_in_bounds_and_moves_at_most_every_streak(
        streak in 1u32..5,
        windows in prop::collection::vec((0u64..300_000, 0.0f64..3.0), 0..200),
    ) {
        let policy = ResizePolicy { streak, ..ResizePolicy::default() };
        let mut r = Resizer::new(policy, 256).unwrap();
        let mut since_move = 0u32;
        for (idle_us, throughput_per_us) in windows {
            since_move += 1;
            let before = r.current_x();
            let fb = ResizeFeedback { workgroup_size_x: before, idle_us, throughput_per_us };
            if let Some(x) = r.observe(&fb) {
                prop_assert!(since_move >= streak);
                prop_assert!(x == before * 2 || x == before / 2, "{before} -> {x}");
                since_move = 0;
            }
            prop_assert!((32..=1024).contains(&r.current_x()));
        }
    }
}

#[test]
fn zero_limits_are_an_error() {
    let l = AdapterLimits { max_size_z: 0, ..AdapterLimits::WEBGPU_DEFAULT };
    assert!(matches!(candidates(&l, &CandidateOptions::default()), Err(Error::InvalidConfig { .. })));
}

#[test]
fn store_roundtrips_and_is_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dir/decisions.toml");
    let mut store = TunerStore::open(&path).unwrap();
    assert!(store.is_empty());
    store.insert("NVIDIA H100 80GB HBM3 / Vulkan 550.54.15", key("matmul"), decision(256, true));
    store.insert("NVIDIA H100 80GB HBM3 / Vulkan 550.54.15", key("reduce"), decision(1024, false));
    store.insert("llvmpipe \"LLVM 17\" / Mesa 24.0 ✓", key("matmul"), decision(64, true));
    store.save().unwrap();
    assert!(!store.is_dirty());
    let first = std::fs::read(&path).unwrap();

    let mut again = TunerStore::open(&path).unwrap();
    assert_eq!(again.len(), 3);
    let mut a: Vec<_> = store.iter().map(|(ad, k, d)| (ad.to_owned(), *k, *d)).collect();
    let b: Vec<_> = again.iter().map(|(ad, k, d)| (ad.to_owned(), *k, *d)).collect();
    a.sort_by(|x, y| (&x.0, x.1).cmp(&(&y.0, y.1)));
    assert_eq!(a, b);
    assert_eq!(again.get("llvmpipe \"LLVM 17\" / Mesa 24.0 ✓", &key("matmul")), Some(&decision(64, true)));
    assert_eq!(again.get("other adapter", &key("matmul")), None, "decisions are per adapter");

    again.save().unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), first, "same decisions, same bytes");
    let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != "decisions.toml")
        .collect();
    assert!(leftovers.is_empty(), "temporary files left behind: {leftovers:?}");
}

fn parse_error(path: &Path, text: &[u8]) -> (usize, String, String) {
    std::fs::write(path, text).unwrap();
    match TunerStore::open(path) {
        Err(err @ Error::Parse { .. }) => {
            let shown = err.to_string();
            let Error::Parse { path: p, line, message } = err else { unreachable!() };
            assert_eq!(p, path);
            (line, message, shown)
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
}

#[test]
fn invalid_files_name_path_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("decisions.toml");
    let mut store = TunerStore::open(&path).unwrap();
    store.insert("gpu", key("a"), decision(128, true));
    store.save().unwrap();
    let good = std::fs::read_to_string(&path).unwrap();
    let line_with = |needle: &str| good.lines().position(|l| l.contains(needle)).unwrap() + 1;

    let (line, message, shown) = parse_error(&path, good.replace("min_ns = 8000", "min_ns = \"fast\"").as_bytes());
    assert_eq!(line, line_with("min_ns"));
    assert!(message.contains("min_ns"), "{message}");
    assert!(shown.contains("decisions.toml") && shown.contains(&format!("line {line}")), "{shown}");

    let (line, message, _) = parse_error(&path, good.replace("samples", "samplez").as_bytes());
    assert_eq!(line, line_with("samples"));
    assert!(message.contains("unknown field `samplez`"), "{message}");

    let (line, message, _) = parse_error(&path, good.replace("[128, 1, 1]", "[128, 0, 1]").as_bytes());
    assert_eq!(line, line_with("workgroup"));
    assert!(message.contains("zero dimension"), "{message}");

    let (line, message, _) = parse_error(&path, good.replace("schema = 1", "schema = 9").as_bytes());
    assert_eq!(line, line_with("schema"));
    assert!(message.contains("schema 9"), "{message}");

    let (line, message, _) = parse_error(&path, good.replace(&key("a").to_string(), "not-a-key").as_bytes());
    assert_eq!(line, line_with("[adapters"));
    assert!(message.contains("64 hex digits"), "{message}");

    let (line, _, _) = parse_error(&path, b"schema = 1\n\n[adapters\n");
    assert_eq!(line, 3);

    let (line, message, _) = parse_error(&path, b"schema = 1\n# \xff\xfe\n");
    assert_eq!((line, message.as_str()), (2, "not valid UTF-8"));
}

#[test]
fn second_run_reuses_the_decision_without_measuring() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("decisions.toml");
    let adapter = "NVIDIA H200 / Vulkan 570.1";
    let cands = candidates(
        &AdapterLimits { max_invocations_per_workgroup: 1024, max_size_x: 1024, ..AdapterLimits::WEBGPU_DEFAULT },
        &CandidateOptions::default(),
    )
    .unwrap();
    let tuner = Tuner::default();

    let mut store = TunerStore::open(&path).unwrap();
    let mut timer = CountingTimer { inner: SyntheticTimer::new(1, 0.1, u_shaped(256)), calls: 0 };
    let first = tuner.tune_cached(&mut store, adapter, &key("k"), &cands, &mut timer).unwrap();
    assert!(!first.reused() && timer.calls > 0);
    assert_eq!(first.decision.workgroup, [256, 1, 1]);
    store.save().unwrap();

    let mut store = TunerStore::open(&path).unwrap();
    let mut timer = CountingTimer { inner: SyntheticTimer::new(2, 0.1, u_shaped(256)), calls: 0 };
    let second = tuner.tune_cached(&mut store, adapter, &key("k"), &cands, &mut timer).unwrap();
    assert!(second.reused());
    assert_eq!(timer.calls, 0, "a stored decision needs no measurement");
    assert_eq!(second.decision, first.decision);
    assert!(!store.is_dirty());

    // Another adapter, or limits that no longer allow the stored size, tune afresh.
    let third = tuner.tune_cached(&mut store, "lavapipe", &key("k"), &cands, &mut timer).unwrap();
    assert!(!third.reused() && timer.calls > 0);
    let calls = timer.calls;
    let small = [[32, 1, 1], [64, 1, 1], [128, 1, 1]];
    let fourth = tuner.tune_cached(&mut store, adapter, &key("k"), &small, &mut timer).unwrap();
    assert!(!fourth.reused() && timer.calls > calls);
    assert_eq!(fourth.decision.workgroup, [128, 1, 1]);
}

#[test]
fn sweep_picks_the_true_best_under_noise() {
    let cands: Vec<[u32; 3]> = (5..=10).map(|p| [1u32 << p, 1, 1]).collect();
    let tuner = Tuner::default();
    let mut confident = 0;
    for seed in 0..200 {
        let best = cands[seed as usize % cands.len()][0];
        // Up to +20% noise per sample; neighbours differ by 10%.
        let mut timer = SyntheticTimer::new(seed, 0.2, u_shaped(best));
        let out = tuner.tune(&key("noisy"), &cands, &mut timer).unwrap();
        assert_eq!(out.best, [best, 1, 1], "seed {seed}: {out:#?}");
        assert_eq!(out.measurements, timer.measurements());
        assert!(out.measurements <= u64::from(tuner.config().max_rounds) * cands.len() as u64);
        let report = out.best_report().unwrap();
        assert!(report.min_ns <= report.median_ns && report.median_ns <= report.max_ns);
        assert_eq!(report.dropped_after_round, None);
        confident += u32::from(out.confident);
    }
    assert!(confident >= 190, "only {confident}/200 sweeps were confident");
}

#[test]
fn heavy_noise_is_flagged_never_confidently_wrong() {
    let cands: Vec<[u32; 3]> = (5..=10).map(|p| [1u32 << p, 1, 1]).collect();
    let (mut wrong, mut confident) = (0, 0);
    for seed in 0..200 {
        let best = cands[seed as usize % cands.len()][0];
        // Noise up to +50%, ten times the 5% gap between neighbours.
        let mut timer = SyntheticTimer::new(seed, 0.5, u_shaped_gap(best, 500));
        let out = Tuner::default().tune(&key("heavy"), &cands, &mut timer).unwrap();
        if out.confident {
            confident += 1;
            assert_eq!(out.best, [best, 1, 1], "seed {seed}: confident and wrong: {out:#?}");
        } else if out.best != [best, 1, 1] {
            wrong += 1;
            assert!(out.best[0] == best * 2 || out.best[0] == best / 2, "seed {seed}: a near miss at worst");
        }
    }
    // Wrong picks happen at this noise level, but only unflagged-as-confident
    // ones, and only between neighbours whose true costs differ by 5%.
    assert!(wrong > 0 && wrong < 40, "{wrong} wrong picks");
    assert!(confident > 0, "some sweeps still separate the candidates");
}

#[test]
fn clear_winners_stop_early() {
    let cands: Vec<[u32; 3]> = (5..=10).map(|p| [1u32 << p, 1, 1]).collect();
    // 2% noise, 10% gaps: every loser is beaten cleanly after min_rounds.
    let mut timer = SyntheticTimer::new(9, 0.02, u_shaped(128));
    let tuner = Tuner::default();
    let out = tuner.tune(&key("clear"), &cands, &mut timer).unwrap();
    assert!(out.confident);
    let min_rounds = tuner.config().min_rounds;
    assert_eq!((out.rounds, out.measurements), (min_rounds, u64::from(min_rounds) * cands.len() as u64));
}

fn window(x: u32, idle_us: u64, throughput_per_us: f64) -> ResizeFeedback {
    ResizeFeedback { workgroup_size_x: x, idle_us, throughput_per_us }
}

#[test]
fn resize_ignores_alternating_noise() {
    let policy = ResizePolicy::default();
    let mut r = Resizer::new(policy, 256).unwrap();
    // Each window alone is a clear vote (idle far above, or throughput far
    // below, the thresholds), but the votes alternate.
    for i in 0..1_000 {
        let fb = if i % 2 == 0 { window(256, 500_000, 5.0) } else { window(256, 0, 0.1) };
        assert_eq!(r.observe(&fb), None, "window {i}");
    }
    // Noise that stays inside the dead band never votes at all.
    let mut rng = 0x1234_5678u64;
    for i in 0..1_000 {
        rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let u = (rng >> 11) as f64 / (1u64 << 53) as f64;
        let fb = window(256, 100_000 + (u * 9_999.0) as u64, 0.91 + u * 0.18);
        assert_eq!(r.observe(&fb), None, "window {i}");
    }
    assert_eq!(r.current_x(), 256);
}

#[test]
fn resize_follows_a_sustained_change() {
    let mut r = Resizer::new(ResizePolicy::default(), 256).unwrap();
    let mut moves = Vec::new();
    for i in 0..12 {
        let x = r.current_x();
        if let Some(new) = r.observe(&window(x, 0, 0.2)) {
            moves.push((i, new));
        }
    }
    assert_eq!(moves, [(2, 512), (5, 1024)], "every third window until the adapter limit");
    // A window still measured on an old size is ignored, not counted.
    assert_eq!(r.observe(&window(512, 900_000, 5.0)), None);
    let shrink: Vec<_> = (0..3).map(|_| r.observe(&window(1024, 900_000, 5.0))).collect();
    assert_eq!(shrink, [None, None, Some(512)]);
}
