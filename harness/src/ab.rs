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
//! BASE.json --rounds K` starts two long-lived workers, `BIN bench SUITE
//! --ab-worker` and this binary's own, each of which loads the suite once
//! and then times single runs on request. For each round and each run of the
//! suite, the driver asks both workers for one repetition of that run, back
//! to back, alternating which goes first (ABBA: by round and run), so the
//! two samples of a pair are milliseconds apart and see the same machine.
//! Each worker writes an ordinary `bench` file of its own build (its own
//! version, git revision and figures) when told it is done; the driver adds
//! `extra.ab`: `{session, role, rounds, repeats_per_round: 1}`. `compare`
//! pairs two files of one session ([`crate::paired`]); either file alone is
//! still an ordinary bench file.
//!
//! The worker protocol (lines on stdin and stdout): the worker says
//! `ready <runs>` once loaded; `run <i>` times one repetition of run `i` and
//! answers `ok <seconds>`; `done` writes the results file and answers
//! `wrote`; any failure answers `err <message>` and exits non-zero.
//!
//! The test-only slowdown knob ([`TEST_SLOWDOWN_ENV`]) reaches only the
//! current side's worker: it stands for a change in the current build.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

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
    /// Rounds: paired repetitions of every run ([`MIN_ROUNDS`]..=[`MAX_ROUNDS`]).
    pub rounds: usize,
    /// Where the workers write their files and their stderr (kept for
    /// inspection).
    pub work_dir: PathBuf,
}

/// The two files of a session.
#[derive(Debug)]
pub struct AbOutcome {
    /// The baseline build's runs, all rounds.
    pub baseline: ResultsFile,
    /// The current build's runs, all rounds.
    pub current: ResultsFile,
}

/// Runs an A/B session; `progress` hears about every finished round.
///
/// # Errors
/// Bad options; a worker that cannot start, fails or answers out of
/// protocol (the message has its answer and where its stderr is); the two
/// builds disagree on the number of runs in the suite.
pub fn run(options: &AbOptions, progress: &mut dyn FnMut(&str)) -> Result<AbOutcome> {
    if !(MIN_ROUNDS..=MAX_ROUNDS).contains(&options.rounds) {
        return Err(Error::config(format!("--rounds {}: must be in {MIN_ROUNDS}..={MAX_ROUNDS}", options.rounds)));
    }
    for (which, bin) in [("--ab-baseline", &options.baseline_binary), ("this binary", &options.current_binary)] {
        if !bin.is_file() {
            return Err(Error::config(format!("{which} `{}` is not a file", bin.display())));
        }
    }
    std::fs::create_dir_all(&options.work_dir)
        .map_err(|e| Error::config(format!("creating `{}`: {e}", options.work_dir.display())))?;
    let mut baseline = Worker::start(options, Role::Baseline)?;
    let mut current = Worker::start(options, Role::Current)?;
    if baseline.runs != current.runs {
        return Err(Error::config(format!(
            "the baseline build sees {} runs in `{}`, this build {}: the suite means different things to them",
            baseline.runs,
            options.suite.display(),
            current.runs
        )));
    }
    for round in 0..options.rounds {
        for run in 0..current.runs {
            // ABBA over rounds and runs: each build goes first half the time.
            if (round + run) % 2 == 0 {
                baseline.time(run)?;
                current.time(run)?;
            } else {
                current.time(run)?;
                baseline.time(run)?;
            }
        }
        progress(&format!("round {} of {} done", round + 1, options.rounds));
    }
    let session = session_id();
    let info = |role: Role| AbInfo {
        session: session.clone(),
        role: role.name().to_string(),
        rounds: options.rounds,
        repeats_per_round: 1,
    };
    let mut outcome = AbOutcome { baseline: baseline.finish()?, current: current.finish()? };
    outcome.baseline.extra.insert("ab".into(), serde_json::to_value(info(Role::Baseline)).unwrap_or_default());
    outcome.current.extra.insert("ab".into(), serde_json::to_value(info(Role::Current)).unwrap_or_default());
    Ok(outcome)
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

/// One side's worker process.
struct Worker {
    role: Role,
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    out: PathBuf,
    stderr_path: PathBuf,
    runs: usize,
}

impl Worker {
    fn start(options: &AbOptions, role: Role) -> Result<Worker> {
        let binary = match role {
            Role::Baseline => &options.baseline_binary,
            Role::Current => &options.current_binary,
        };
        let out = options.work_dir.join(format!("{}.json", role.name()));
        let stderr_path = options.work_dir.join(format!("{}.stderr", role.name()));
        let stderr = std::fs::File::create(&stderr_path)
            .map_err(|e| Error::config(format!("creating `{}`: {e}", stderr_path.display())))?;
        let mut command = Command::new(binary);
        command
            .arg("bench")
            .arg(&options.suite)
            .arg("--out")
            .arg(&out)
            .arg("--ab-worker")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr);
        if matches!(role, Role::Baseline) {
            command.env_remove(TEST_SLOWDOWN_ENV);
        }
        let mut child = command.spawn().map_err(|e| Error::config(format!("starting `{}`: {e}", binary.display())))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(Error::config("a worker without pipes"));
        };
        let mut worker = Worker { role, child, stdin, stdout: BufReader::new(stdout), out, stderr_path, runs: 0 };
        let ready = worker.answer()?;
        worker.runs = ready
            .strip_prefix("ready ")
            .and_then(|n| n.trim().parse().ok())
            .ok_or_else(|| worker.protocol_error("ready <runs>", &ready))?;
        Ok(worker)
    }

    /// The worker's next line.
    fn answer(&mut self) -> Result<String> {
        let mut line = String::new();
        let n = self.stdout.read_line(&mut line).map_err(|e| self.failure(&format!("reading its answer: {e}")))?;
        if n == 0 {
            let status = self.child.wait().map_or_else(|e| e.to_string(), |s| s.to_string());
            return Err(self.failure(&format!("it exited ({status}) without answering")));
        }
        let line = line.trim_end().to_string();
        match line.strip_prefix("err ") {
            Some(message) => Err(self.failure(message)),
            None => Ok(line),
        }
    }

    fn ask(&mut self, request: &str) -> Result<String> {
        writeln!(self.stdin, "{request}")
            .and_then(|()| self.stdin.flush())
            .map_err(|e| self.failure(&format!("sending `{request}`: {e}")))?;
        self.answer()
    }

    fn time(&mut self, run: usize) -> Result<()> {
        let answer = self.ask(&format!("run {run}"))?;
        if answer.starts_with("ok ") { Ok(()) } else { Err(self.protocol_error("ok <seconds>", &answer)) }
    }

    fn finish(mut self) -> Result<ResultsFile> {
        let answer = self.ask("done")?;
        if answer != "wrote" {
            return Err(self.protocol_error("wrote", &answer));
        }
        // The worker exits after `wrote`; its status only matters if it failed.
        let _ = self.child.wait();
        let text = std::fs::read_to_string(&self.out)
            .map_err(|e| Error::config(format!("reading `{}`: {e}", self.out.display())))?;
        serde_json::from_str(&text)
            .map_err(|e| Error::config(format!("`{}` is not a results file: {e}", self.out.display())))
    }

    fn failure(&self, what: &str) -> Error {
        Error::config(format!(
            "the {} build's worker failed: {what} (its stderr: `{}`)",
            self.role.name(),
            self.stderr_path.display()
        ))
    }

    fn protocol_error(&self, expected: &str, got: &str) -> Error {
        self.failure(&format!("expected `{expected}`, got `{got}` (is it a cachescope with `bench --ab-worker`?)"))
    }
}

/// The worker side of the protocol (`bench --ab-worker`): `session` is the
/// loaded suite, `out` where `done` writes its results file.
///
/// # Errors
/// Only I/O errors on stdin or stdout; everything else is answered as
/// `err <message>` and returned too, so the process exits non-zero.
pub fn serve_worker(
    mut session: crate::bench::Session<'_>,
    out: &Path,
    input: impl BufRead,
    mut output: impl Write,
) -> Result<()> {
    let io = |e: std::io::Error| Error::config(format!("A/B worker pipe: {e}"));
    writeln!(output, "ready {}", session.slots()).and_then(|()| output.flush()).map_err(io)?;
    let fail = |output: &mut dyn Write, e: Error| -> Result<()> {
        let message = e.to_string().replace('\n', " ");
        writeln!(output, "err {message}").and_then(|()| output.flush()).map_err(io)?;
        Err(e)
    };
    for line in input.lines() {
        let line = line.map_err(io)?;
        let request = line.trim();
        if request == "done" {
            let written = session.finish().and_then(|file| {
                crate::results::write_json_atomic(out, &file).map_err(|e| Error::config(format!("{e:#}")))
            });
            return match written {
                Ok(()) => writeln!(output, "wrote").and_then(|()| output.flush()).map_err(io),
                Err(e) => fail(&mut output, e),
            };
        }
        let reply = match request.strip_prefix("run ").and_then(|i| i.trim().parse::<usize>().ok()) {
            Some(slot) => session.run_slot(slot).map(|seconds| format!("ok {seconds}")),
            None => Err(Error::config(format!("unknown request `{request}`"))),
        };
        match reply {
            Ok(text) => writeln!(output, "{text}").and_then(|()| output.flush()).map_err(io)?,
            Err(e) => return fail(&mut output, e),
        }
    }
    Err(Error::config("A/B worker: the driver closed the pipe before `done`"))
}
