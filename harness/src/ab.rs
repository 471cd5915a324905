//! A/B bench sessions: the baseline build and the current build benchmarked
//! in alternating rounds of one session, so that `compare` can judge each
//! round's time ratio between two measurements taken minutes apart, not
//! between two sessions taken hours (or machines) apart.
//!
//! Why: on a shared machine, time drifts *between* sessions (the
//! false-alarm measurement under `results/` saw the suite's time move by
//! -6..+6% with the same binary), and no statistic computed within each
//! session can see that drift; it is shared by every run of a session. In an
//! A/B session both builds see the same drift in each round, and the paired
//! per-round ratio cancels it (Kalibera and Jones, "Rigorous benchmarking in
//! reasonable time", 2013, make the same argument for randomised, paired
//! execution).
//!
//! How: `cachescope bench SUITE --out CUR.json --ab-baseline BIN --ab-out
//! BASE.json --rounds K` runs, for each round, `BIN bench SUITE --repeats R`
//! and this binary's own `bench SUITE --repeats R` as child processes, in
//! ABBA order (round 0: baseline then current; round 1: current then
//! baseline; ...) so a linear drift within a session falls on both sides
//! equally. Each side's rounds are merged into one ordinary `bench` file
//! (samples concatenated in round order), plus `extra.ab`:
//! `{session, role, rounds, repeats_per_round}`. `compare` pairs two files of
//! one session round by round ([`crate::paired`]); either file alone is still
//! an ordinary bench file.
//!
//! Both sides run as child processes, so both pay the same process start
//! and trace decoding (neither is timed) and neither inherits the other's
//! warm caches. The test-only slowdown knob ([`TEST_SLOWDOWN_ENV`]) reaches
//! only the current side: it stands for a change in the current build.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::bench::TEST_SLOWDOWN_ENV;
use crate::error::{Error, Result};
use crate::results::ResultsFile;

/// Fewest rounds of a session: with fewer, a paired interval is too wide
/// to judge anything.
pub const MIN_ROUNDS: usize = 4;
/// Most rounds of a session.
pub const MAX_ROUNDS: usize = 100;

/// `extra.ab` of a file written by an A/B session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AbInfo {
    /// Identifies the session: the two files of one session share it.
    pub session: String,
    /// `baseline` or `current`.
    pub role: String,
    /// Rounds of the session.
    pub rounds: usize,
    /// Repetitions of every run in each round: sample `i` of a run belongs
    /// to round `i / repeats_per_round`.
    pub repeats_per_round: usize,
}

impl AbInfo {
    /// The `extra.ab` of `file`, if it has one that parses.
    pub fn of(file: &ResultsFile) -> Option<AbInfo> {
        file.extra.get("ab").and_then(|v| serde_json::from_value(v.clone()).ok())
    }
}

/// What an A/B session runs.
#[derive(Debug, Clone)]
pub struct AbOptions {
    /// The suite file.
    pub suite: PathBuf,
    /// The baseline build's `cachescope` binary.
    pub baseline_binary: PathBuf,
    /// This build's binary (normally `std::env::current_exe()`).
    pub current_binary: PathBuf,
    /// Rounds ([`MIN_ROUNDS`]..=[`MAX_ROUNDS`]).
    pub rounds: usize,
    /// Repetitions of each run per round, per side.
    pub repeats_per_round: usize,
    /// Where the children write their per-round files (kept for inspection).
    pub work_dir: PathBuf,
}

/// The two merged files of a session.
#[derive(Debug)]
pub struct AbOutcome {
    /// The baseline build's runs, all rounds.
    pub baseline: ResultsFile,
    /// The current build's runs, all rounds.
    pub current: ResultsFile,
}

/// Runs an A/B session; `progress` hears about every finished child.
///
/// # Errors
/// Bad options; a child that fails (its exit status and the end of its
/// stderr are in the message; the per-round files already written stay in
/// `work_dir`); per-round files that cannot be merged (different runs or
/// different deterministic figures across rounds).
pub fn run(options: &AbOptions, progress: &mut dyn FnMut(&str)) -> Result<AbOutcome> {
    if !(MIN_ROUNDS..=MAX_ROUNDS).contains(&options.rounds) {
        return Err(Error::config(format!("--rounds {}: must be in {MIN_ROUNDS}..={MAX_ROUNDS}", options.rounds)));
    }
    if options.repeats_per_round == 0 {
        return Err(Error::config("--repeats: an A/B round needs at least one repetition per side"));
    }
    for (which, bin) in [("--ab-baseline", &options.baseline_binary), ("this binary", &options.current_binary)] {
        if !bin.is_file() {
            return Err(Error::config(format!("{which} `{}` is not a file", bin.display())));
        }
    }
    std::fs::create_dir_all(&options.work_dir)
        .map_err(|e| Error::config(format!("creating `{}`: {e}", options.work_dir.display())))?;
    let session = session_id();
    let mut base_files = Vec::with_capacity(options.rounds);
    let mut cur_files = Vec::with_capacity(options.rounds);
    for round in 0..options.rounds {
        // ABBA: even rounds start with the baseline, odd ones with the current.
        let order = if round % 2 == 0 { [Role::Baseline, Role::Current] } else { [Role::Current, Role::Baseline] };
        for role in order {
            let out = options.work_dir.join(format!("{}-round{round:03}.json", role.name()));
            run_child(options, role, &out)?;
            let file = read_results(&out)?;
            match role {
                Role::Baseline => base_files.push(file),
                Role::Current => cur_files.push(file),
            }
            progress(&format!("round {} of {}: {} done", round + 1, options.rounds, role.name()));
        }
    }
    let info = |role: Role| AbInfo {
        session: session.clone(),
        role: role.name().to_string(),
        rounds: options.rounds,
        repeats_per_round: options.repeats_per_round,
    };
    Ok(AbOutcome {
        baseline: merge(base_files, &info(Role::Baseline))?,
        current: merge(cur_files, &info(Role::Current))?,
    })
}

#[derive(Debug, Clone, Copy)]
enum Role {
    Baseline,
    Current,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Baseline => "baseline",
            Role::Current => "current",
        }
    }
}

fn session_id() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{:x}-{:x}", nanos, std::process::id())
}

fn run_child(options: &AbOptions, role: Role, out: &Path) -> Result<()> {
    let binary = match role {
        Role::Baseline => &options.baseline_binary,
        Role::Current => &options.current_binary,
    };
    let mut command = Command::new(binary);
    command
        .arg("bench")
        .arg(&options.suite)
        .arg("--repeats")
        .arg(options.repeats_per_round.to_string())
        .arg("--out")
        .arg(out)
        .arg("--quiet");
    if matches!(role, Role::Baseline) {
        command.env_remove(TEST_SLOWDOWN_ENV);
    }
    let output = command.output().map_err(|e| Error::config(format!("starting `{}`: {e}", binary.display())))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: String =
            stderr.lines().rev().take(8).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
        return Err(Error::config(format!(
            "the {} side (`{} bench {}`) failed ({}):\n{tail}",
            role.name(),
            binary.display(),
            options.suite.display(),
            output.status
        )));
    }
    Ok(())
}

fn read_results(path: &Path) -> Result<ResultsFile> {
    let text =
        std::fs::read_to_string(path).map_err(|e| Error::config(format!("reading `{}`: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| Error::config(format!("`{}` is not a results file: {e}", path.display())))
}

/// The per-sample arrays of `extra` that grow with the rounds, one list per
/// run, in run order.
const PER_RUN_SAMPLES: [&str; 2] = ["cpu_seconds_samples", "reference_seconds_samples"];

/// One file of a side's rounds: the first round's file with every run's
/// samples (wall, on-CPU, reference) concatenated in round order.
fn merge(files: Vec<ResultsFile>, info: &AbInfo) -> Result<ResultsFile> {
    let mut files = files.into_iter();
    let mut merged = files.next().ok_or_else(|| Error::config("an A/B session with no rounds"))?;
    for (index, file) in files.enumerate() {
        let round = index + 1;
        if file.runs.len() != merged.runs.len() {
            return Err(Error::config(format!(
                "{} round {round}: {} runs, round 0 had {}",
                info.role,
                file.runs.len(),
                merged.runs.len()
            )));
        }
        for (into, run) in merged.runs.iter_mut().zip(&file.runs) {
            let blank = |r: &crate::sim::RunResult| crate::sim::RunResult {
                seconds: 0.0,
                seconds_samples: Vec::new(),
                ..r.clone()
            };
            if blank(into) != blank(run) {
                return Err(Error::config(format!(
                    "{} round {round}: run {} {} gave other figures than in round 0 (the build is nondeterministic)",
                    info.role, run.policy, run.capacity
                )));
            }
            into.seconds_samples.extend_from_slice(&run.seconds_samples);
        }
        for name in PER_RUN_SAMPLES {
            let add = file.extra.get(name).and_then(|v| serde_json::from_value::<Vec<Vec<f64>>>(v.clone()).ok());
            let have = merged.extra.get(name).and_then(|v| serde_json::from_value::<Vec<Vec<f64>>>(v.clone()).ok());
            match (have, add) {
                (Some(mut have), Some(add)) if have.len() == add.len() => {
                    for (h, a) in have.iter_mut().zip(add) {
                        h.extend(a);
                    }
                    merged.extra.insert(name.into(), serde_json::to_value(have).unwrap_or_default());
                }
                // A side that lacks a sample kind in any round lacks it in
                // the merged file: `compare` then falls back to wall time.
                _ => {
                    merged.extra.remove(name);
                }
            }
        }
    }
    for run in &mut merged.runs {
        run.seconds = crate::compare::median(&run.seconds_samples);
    }
    if let Some(config) = merged.config.as_object_mut() {
        config.insert("repeats".into(), (info.rounds * info.repeats_per_round).into());
        config.insert("rounds".into(), info.rounds.into());
    }
    merged.extra.insert("ab".into(), serde_json::to_value(info).unwrap_or_default());
    Ok(merged)
}
