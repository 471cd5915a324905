//! The `cachescope` command. Parses arguments, runs the job, and prints
//! errors with their causes; the work lives in the library.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result, bail};
use cachescope_core::policy::PolicyKind;
use cachescope_harness::results::{ResultsFile, SCHEMA_VERSION, ToolInfo, write_json_atomic};
use cachescope_harness::selfcheck::{self, SelfcheckConfig};
use cachescope_harness::sim::{self, RunResult, SimConfig, SizeSpec, Warmup};
use cachescope_harness::trace::{DecodedTrace, LoadOptions, TraceFormat, WorkloadSpec, convert_with, gen_trace};
use clap::{Args, Parser, Subcommand};

/// The built-in default workload (1M requests, Zipf + scans, log-normal
/// sizes), found in the checkout the binary was built from.
const DEFAULT_WORKLOAD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../workloads/default.toml");

/// Benchmark and observability harness for GPU cache policies.
#[derive(Debug, Parser)]
#[command(name = "cachescope", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Drive every cache of the core on a small seeded workload, check its
    /// invariants and print its counters.
    Selfcheck(SelfcheckArgs),
    /// Replay a trace through policies x capacities on the CPU, exactly
    /// (the default job, on the built-in workload).
    Sim(SimArgs),
    /// List the eviction policies, a line each.
    Policies,
    /// Convert a trace to another format (native by default).
    Convert(ConvertArgs),
    /// Write the requests of a workload spec (.toml) to a trace file.
    Gen(GenArgs),
    /// Serve past runs (a directory of results files): web page, JSON API,
    /// plots and /metrics. Runs until stopped (Ctrl-C).
    Serve(ServeArgs),
    /// Write the plots of a results file (SVG and PNG) to a directory.
    Plot(PlotArgs),
    /// Replay a dispatch trace on a real Vulkan device (wgpu): real uploads,
    /// readbacks, compiles and kernels per policy, measured in time.
    Replay(cachescope_harness::gpu::cli::ReplayArgs),
    /// Tune the workgroup size of each kernel on a real Vulkan device:
    /// candidates within the adapter's limits, timestamp queries until the
    /// choice is clear, decisions kept per adapter in a TOML store and
    /// reused with zero measurements; `--exhaustive` compares with a full
    /// sweep.
    Tune(cachescope_harness::gpu::tune::TuneArgs),
    /// Run a built-in GPU workload (mlp, pyramid, spmv, all) on a real
    /// Vulkan device, check it against the CPU, and write its dispatch trace.
    Record(cachescope_harness::record::cli::RecordArgs),
    /// Compare a results file with a baseline: deterministic figures
    /// exactly, timings with a bootstrap interval. Exit 0: no regression;
    /// 1: a regression; 2: the files cannot be compared.
    Compare(CompareArgs),
    /// Run a benchmark suite (workloads/bench/*.toml) with repetitions and
    /// write one results file.
    Bench(BenchArgs),
}

#[derive(Debug, Args)]
struct CompareArgs {
    /// The baseline results file (e.g. results/baselines/ci.json).
    baseline: PathBuf,
    /// The results file to judge.
    current: PathBuf,
    /// Smallest slowdown of the whole suite (geometric mean) reported: `5%`
    /// or `0.05`.
    #[arg(long, default_value = "5%")]
    threshold: String,
    /// Smallest slowdown of a single run reported (default: twice
    /// --threshold).
    #[arg(long)]
    run_threshold: Option<String>,
    /// Confidence of the bootstrap interval of each time ratio.
    #[arg(long, default_value_t = 0.99)]
    confidence: f64,
    /// Bootstrap resamples (seeded).
    #[arg(long, default_value_t = cachescope_harness::compare::DEFAULT_RESAMPLES)]
    resamples: usize,
    /// Output: text, markdown (a pull-request comment) or json.
    #[arg(long, default_value = "text")]
    format: String,
    /// Also write the current file in Bencher Metric Format here.
    #[arg(long, value_name = "OUT.json")]
    bmf: Option<PathBuf>,
    /// Runs whose costs (misses, missed bytes, uploads, readbacks) only went
    /// down pass instead of failing.
    #[arg(long)]
    allow_improvements: bool,
    /// `fail`: a confident slowdown fails (exit 1); `report`: shown only
    /// (CI, where the machine is not the baseline's).
    #[arg(long, default_value = "fail", value_parser = ["fail", "report"])]
    timings: String,
    /// Time judged: `normalized` (on-CPU time / a fixed reference kernel
    /// timed next to it), `cpu`, `wall`, or `auto`: the first both files allow.
    #[arg(long, default_value = "auto", value_parser = ["auto", "normalized", "cpu", "wall"])]
    time: String,
}

#[derive(Debug, Args)]
struct BenchArgs {
    /// The suite (TOML), e.g. workloads/bench/ci.toml.
    suite: PathBuf,
    /// Results file to write.
    #[arg(long)]
    out: PathBuf,
    /// Repetitions of every run (default: the suite's `repeats`).
    #[arg(long)]
    repeats: Option<usize>,
    /// No table, no progress.
    #[arg(long)]
    quiet: bool,
    /// A/B session: also benchmark this baseline build's `cachescope`
    /// binary; both builds time every run back to back, alternating which
    /// goes first, and `compare` judges the two files paired, round by round.
    #[arg(long, value_name = "BINARY", requires = "ab_out", conflicts_with = "repeats")]
    ab_baseline: Option<PathBuf>,
    /// Where the A/B session writes the baseline build's results.
    #[arg(long, value_name = "BASE.json", requires = "ab_baseline")]
    ab_out: Option<PathBuf>,
    /// Rounds of the A/B session: paired repetitions of every run. 20 by
    /// default: on a shared 2-core VM, 10 rounds caught a 10% slowdown 9
    /// times in 10 and 20 rounds 10 in 10, with no false alarm either way
    /// (`results/2026-12-06-dev-2core/ab-sessions-20-rounds/`).
    #[arg(long, default_value_t = 20, requires = "ab_baseline")]
    rounds: usize,
    /// Internal: serve as one side of an A/B session (requests on stdin).
    #[arg(long, hide = true, conflicts_with = "ab_baseline")]
    ab_worker: bool,
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Directory of results files.
    #[arg(long)]
    results: PathBuf,
    /// Address to listen on (loopback unless told otherwise).
    #[arg(long, default_value = cachescope_dashboard::DEFAULT_LISTEN)]
    listen: std::net::SocketAddr,
}

#[derive(Debug, Args)]
struct PlotArgs {
    /// Results file (JSON) written by `sim`.
    results: PathBuf,
    /// Directory for the plots.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Debug, Args)]
struct ConvertArgs {
    /// Input trace.
    #[arg(long)]
    trace: PathBuf,
    /// Input format (detected when absent).
    #[arg(long)]
    format: Option<String>,
    /// Output file.
    #[arg(long)]
    out: PathBuf,
    /// Output format: native, csv, oracle, oracle-zstd.
    #[arg(long, default_value = "native")]
    to: String,
    /// Dispatch traces: one request per dispatch (key = pipeline).
    #[arg(long)]
    pipelines: bool,
    /// Object sizes become 1.
    #[arg(long)]
    objects: bool,
}

#[derive(Debug, Args)]
struct GenArgs {
    /// Workload spec (TOML; see workloads/*.toml).
    spec: PathBuf,
    /// Output file.
    #[arg(long)]
    out: PathBuf,
    /// Output format: native, csv, oracle, oracle-zstd.
    #[arg(long, default_value = "native")]
    to: String,
}

#[derive(Debug, Args)]
struct SelfcheckArgs {
    /// Seed of the synthetic workload.
    #[arg(long, default_value_t = SelfcheckConfig::default().seed)]
    seed: u64,
    /// Requests to replay.
    #[arg(long, default_value_t = SelfcheckConfig::default().requests)]
    requests: usize,
    /// Distinct keys.
    #[arg(long, default_value_t = SelfcheckConfig::default().keys)]
    keys: usize,
    /// Zipf skew of key popularity.
    #[arg(long, default_value_t = SelfcheckConfig::default().alpha)]
    alpha: f64,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct SimArgs {
    /// Trace file (CSV, oracleGeneral, dispatch JSONL.gz, native) or a
    /// workload spec (.toml). Default: the built-in default workload.
    #[arg(long, default_value = DEFAULT_WORKLOAD)]
    trace: PathBuf,
    /// Trace format (detected from the file when absent).
    #[arg(long)]
    format: Option<String>,
    /// Policies, comma-separated, or `all` (`cachescope policies` lists them).
    #[arg(long, default_value = "all")]
    policy: String,
    /// Capacities, comma-separated: `1%` of unique bytes (keys with
    /// --objects), `10%peak` of a dispatch trace's peak live bytes, or
    /// absolute (`4096`, `64MiB`).
    #[arg(long, default_value = "0.1%,1%,10%")]
    size: String,
    /// Object cache: every object has size 1.
    #[arg(long)]
    objects: bool,
    /// Dispatch traces: one request per dispatch (key = pipeline).
    #[arg(long)]
    pipelines: bool,
    /// The GPU model: frees, uploads on miss (not for write-only), readbacks
    /// of dirty evictions.
    #[arg(long)]
    gpu: bool,
    /// Leave the first N requests (or P%) out of the counts.
    #[arg(long)]
    warmup: Option<String>,
    /// Stop after this many requests.
    #[arg(long)]
    limit: Option<u64>,
    /// Worker threads (default: all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Also compute the exact LRU miss-ratio curve in one pass (stack
    /// distances); with a rate in (0, 1), SHARDS-sampled.
    #[arg(long, value_name = "RATE", num_args = 0..=1, default_missing_value = "1")]
    mrc: Option<f64>,
    /// Write results (JSON) here; rewritten after every finished run.
    #[arg(long)]
    out: Option<PathBuf>,
    /// No table, no progress.
    #[arg(long)]
    quiet: bool,
    /// Serve the run in progress (web page, /metrics, JSON API) on this
    /// address, and keep serving after it ends until stopped (Ctrl-C).
    #[arg(long, value_name = "ADDR")]
    serve: Option<std::net::SocketAddr>,
}

/// `bench --ab-baseline`: both builds in alternating rounds, two merged files.
fn run_ab_session(a: &BenchArgs, baseline_binary: &Path, ab_out: &Path) -> Result<()> {
    use cachescope_harness::ab::{self, AbOptions};
    let current_binary = std::env::current_exe().context("locating this binary")?;
    let work_dir = a.out.with_extension("rounds");
    let options = AbOptions {
        suite: a.suite.clone(),
        baseline_binary: baseline_binary.to_path_buf(),
        current_binary,
        rounds: a.rounds,
        work_dir: work_dir.clone(),
    };
    let show = !a.quiet;
    let outcome = ab::run(&options, &mut |line| {
        if show {
            eprintln!("{line}");
        }
    })
    .with_context(|| format!("A/B session on `{}` (per-round files in `{}`)", a.suite.display(), work_dir.display()))?;
    write_json_atomic(ab_out, &outcome.baseline)?;
    write_json_atomic(&a.out, &outcome.current)?;
    if show {
        println!("baseline: {}\ncurrent:  {}", ab_out.display(), a.out.display());
        println!("judge with: cachescope compare {} {}", ab_out.display(), a.out.display());
    }
    Ok(())
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    // No subcommand: the main job, every policy on the default workload.
    let command = match cli.command {
        Some(c) => c,
        None => Cli::parse_from(["cachescope", "sim"]).command.context("the default job")?,
    };
    match command {
        Command::Replay(a) => cachescope_harness::gpu::cli::run_replay(a)?,
        Command::Tune(a) => cachescope_harness::gpu::tune::run_tune(a)?,
        Command::Record(a) => {
            cachescope_harness::record::cli::run_record(a)?;
        }
        Command::Compare(a) => {
            use cachescope_harness::compare::{self, CompareOptions, CompareRequest, TimingMode};
            let parsed = compare::parse_threshold(&a.threshold).and_then(|t| {
                let run = a.run_threshold.as_deref().map_or(Ok(2.0 * t), compare::parse_threshold)?;
                Ok((t, run, a.format.parse::<compare::Format>()?))
            });
            let (threshold, run_threshold, format) = parsed.unwrap_or_else(|e| {
                eprintln!("error: {e}");
                std::process::exit(2);
            });
            let timings = if a.timings == "report" { TimingMode::Report } else { TimingMode::Fail };
            let options = CompareOptions {
                threshold,
                run_threshold,
                confidence: a.confidence,
                resamples: a.resamples,
                allow_improvements: a.allow_improvements,
                timings,
                basis: a.time.parse().map_err(anyhow::Error::msg)?,
            };
            let request = CompareRequest { baseline: a.baseline, current: a.current, options, format, bmf: a.bmf };
            std::process::exit(compare::run_cli(&request));
        }
        Command::Bench(a) => {
            use cachescope_harness::bench::{self, BenchOptions, Suite};
            let suite = Suite::load(&a.suite)?;
            if let (Some(baseline_binary), Some(ab_out)) = (&a.ab_baseline, &a.ab_out) {
                run_ab_session(&a, baseline_binary, ab_out)?;
                return Ok(());
            }
            if a.ab_worker {
                let options = BenchOptions { repeats: None, test_slowdown: bench::test_slowdown_from_env()? };
                let session = bench::Session::prepare(&suite, &options)?;
                let stdin = std::io::stdin().lock();
                cachescope_harness::ab::serve_worker(session, &a.out, stdin, std::io::stdout().lock())?;
                return Ok(());
            }
            let test_slowdown = bench::test_slowdown_from_env()?;
            if let Some(x) = test_slowdown {
                eprintln!("warning: {}={x}: timings include injected busy work (test-only)", bench::TEST_SLOWDOWN_ENV);
            }
            let show = !a.quiet;
            let results = bench::run(&suite, &BenchOptions { repeats: a.repeats, test_slowdown }, &mut |line| {
                if show {
                    eprintln!("{line}");
                }
            })
            .with_context(|| format!("bench suite `{}`", a.suite.display()))?;
            write_json_atomic(&a.out, &results)?;
            if show {
                print!("{}", bench::render(&results));
                println!("results: {}", a.out.display());
            }
        }
        Command::Selfcheck(a) => {
            let config = SelfcheckConfig { seed: a.seed, requests: a.requests, keys: a.keys, alpha: a.alpha };
            let report = selfcheck::run(config)?;
            print!("{}", selfcheck::render(&report));
            if let Some(path) = a.json {
                write_json_atomic(&path, &report)?;
            }
        }
        Command::Sim(a) => run_sim(a)?,
        Command::Convert(a) => {
            let to: TraceFormat = a.to.parse()?;
            let format = a.format.as_deref().map(str::parse::<TraceFormat>).transpose()?;
            // Native keeps the GPU view (frees, access kinds) of a dispatch trace.
            let gpu = to == TraceFormat::Native && !a.pipelines;
            let options = LoadOptions { objects: a.objects, pipelines: a.pipelines, gpu, limit: None };
            let summary = convert_with(&a.trace, format, &a.out, to, options)
                .with_context(|| format!("converting `{}`", a.trace.display()))?;
            println!(
                "{} ({}, {} records) -> {} ({}, {} bytes)",
                a.trace.display(),
                summary.input.format.name(),
                summary.records,
                summary.output.display(),
                summary.output_format.name(),
                summary.output_bytes
            );
        }
        Command::Serve(a) => {
            let config = cachescope_dashboard::ServeConfig {
                results_dir: Some(a.results.clone()),
                ..cachescope_dashboard::ServeConfig::default()
            };
            let server = cachescope_dashboard::serve(a.listen, config)
                .with_context(|| format!("serving `{}` on {}", a.results.display(), a.listen))?;
            eprintln!("serving {} at {} (Ctrl-C to stop)", a.results.display(), server.url());
            server.wait()?;
        }
        Command::Plot(a) => {
            let results = cachescope_dashboard::ResultsFile::read(&a.results, 256 << 20)?;
            for path in cachescope_dashboard::write_plots(&results, &a.out)? {
                println!("{}", path.display());
            }
        }
        Command::Gen(a) => {
            let to: TraceFormat = a.to.parse()?;
            let spec = WorkloadSpec::load(&a.spec)?;
            let records = gen_trace(&spec, &a.out, to)?;
            println!("{} -> {} ({}, {records} requests)", a.spec.display(), a.out.display(), to.name());
        }
        Command::Policies => {
            for &p in PolicyKind::ALL {
                let exact = if p.matches_libcachesim_exactly() { "exact" } else { "     " };
                println!("{:<12} {exact}  {}", p.name(), p.description());
            }
            println!("\n`exact`: hits, misses and missed bytes equal libCacheSim 0.3.5's (tested).");
        }
    }
    Ok(())
}

fn parse_policies(s: &str) -> Result<Vec<PolicyKind>> {
    if s.trim() == "all" {
        return Ok(PolicyKind::ALL.to_vec());
    }
    s.split(',').map(|p| p.trim().parse::<PolicyKind>().map_err(anyhow::Error::from)).collect()
}

fn run_sim(a: SimArgs) -> Result<()> {
    // Ctrl-C / SIGTERM: exit once the results write in progress is done.
    cachescope_harness::results::exit_cleanly_on_signals()?;
    let policies = parse_policies(&a.policy).context("--policy")?;
    let sizes: Vec<SizeSpec> =
        a.size.split(',').map(|s| s.parse()).collect::<Result<_, String>>().map_err(anyhow::Error::msg)?;
    let warmup: Warmup = match &a.warmup {
        Some(w) => w.parse().map_err(anyhow::Error::msg)?,
        None => Warmup::None,
    };
    let format = a.format.as_deref().map(str::parse::<TraceFormat>).transpose()?;
    if let Some(rate) = a.mrc
        && !(rate > 0.0 && rate <= 1.0)
    {
        bail!("--mrc: the sampling rate must be in (0, 1], got {rate}");
    }
    let options = LoadOptions { objects: a.objects, pipelines: a.pipelines, gpu: a.gpu, limit: a.limit };
    let config = SimConfig { policies, sizes, objects: a.objects, gpu: a.gpu, warmup, threads: a.threads };
    let loaded = std::time::Instant::now();
    // One run with a capacity in units streams the file into the cache (no
    // decoded copy; the decode time is then part of the run's seconds).
    let (trace, streamed) = if a.mrc.is_none() && a.serve.is_none() && sim::can_stream(&config) {
        let (summary, run) = sim::simulate_streamed(&a.trace, format, options, &config, &|_| {})
            .with_context(|| format!("simulating trace `{}`", a.trace.display()))?;
        (summary, Some(run))
    } else {
        let trace = DecodedTrace::load_columns(&a.trace, format, options, sim::columns_for(&config))
            .with_context(|| format!("loading trace `{}`", a.trace.display()))?;
        (trace, None)
    };
    let load_seconds = if streamed.is_some() { 0.0 } else { loaded.elapsed().as_secs_f64() };
    let total_runs = config.policies.len() * config.sizes.len();
    let show_progress = !a.quiet && std::io::stderr().is_terminal();

    let mut results = ResultsFile {
        schema_version: SCHEMA_VERSION,
        kind: "sim".into(),
        tool: ToolInfo::current(),
        trace: serde_json::to_value(&trace.identity)?,
        config: serde_json::to_value(&config)?,
        runs: Vec::new(),
        extra: serde_json::Map::new(),
    };
    results.extra.insert("load_seconds".into(), load_seconds.into());
    results.extra.insert("streamed".into(), streamed.is_some().into());
    if let Some(p) = trace.peak_live_bytes {
        results.extra.insert("peak_live_bytes".into(), p.into());
    }
    results.extra.insert("unique_bytes".into(), trace.unique_bytes.into());
    results.extra.insert("unique_keys".into(), trace.unique_keys.into());

    // The live view: a server over a LiveMetrics the runs publish into.
    let workload = a.trace.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let live = match a.serve {
        Some(addr) => {
            let metrics = cachescope_dashboard::LiveMetrics::new();
            let results_dir = a.out.as_ref().and_then(|o| o.parent()).filter(|p| !p.as_os_str().is_empty());
            let config = cachescope_dashboard::ServeConfig {
                live: Some(metrics.clone()),
                results_dir: results_dir.map(Into::into),
                ..cachescope_dashboard::ServeConfig::default()
            };
            let server = cachescope_dashboard::serve(addr, config).with_context(|| format!("--serve {addr}"))?;
            eprintln!("live view at {} (metrics at {}/metrics)", server.url(), server.url());
            Some((LivePublisher::new(metrics, workload, trace.len() as u64 * total_runs as u64), server))
        }
        None => None,
    };

    // Every finished run is saved at once: an interrupted sweep keeps them.
    let shared = Mutex::new((results, None::<anyhow::Error>));
    let on_done = |run: &RunResult| {
        if let Some((publisher, _)) = &live {
            publisher.finished(run);
        }
        let mut guard = shared.lock().unwrap_or_else(|e| e.into_inner());
        let (file, err) = &mut *guard;
        file.runs.push(run.clone());
        if let Some(out) = &a.out
            && err.is_none()
            && let Err(e) = write_json_atomic(out, file)
        {
            *err = Some(e);
        }
        if show_progress {
            eprint!("\r{} of {total_runs} runs done ({} {})   ", file.runs.len(), run.policy, run.size);
        }
    };
    let runs = match streamed {
        Some(run) => {
            on_done(&run);
            vec![run]
        }
        None => {
            let observer = live.as_ref().map(|(p, _)| p as &dyn sim::SimObserver);
            sim::simulate_observed(&trace, &config, &on_done, observer).map_err(anyhow::Error::msg)?
        }
    };
    if show_progress {
        eprintln!();
    }
    let (mut results, write_error) = shared.into_inner().unwrap_or_else(|e| e.into_inner());
    if let Some(e) = write_error {
        return Err(e);
    }
    results.runs = runs;
    if let Some(rate) = a.mrc {
        results.extra.insert("lru_mrc".into(), lru_curve(&trace, &config, rate));
    }
    if let Some(out) = &a.out {
        write_json_atomic(out, &results)?;
    }
    if !a.quiet {
        print!("{}", render_table(&trace, &results.runs, config.gpu));
        if let Some(out) = &a.out {
            println!("results: {}", out.display());
        }
    }
    if let Some((_, server)) = live {
        eprintln!("run finished; still serving at {} (Ctrl-C to stop)", server.url());
        server.wait()?;
    }
    Ok(())
}

/// Publishes a sweep's progress into the live metrics: every
/// `sim::OBSERVE_EVERY` requests of each run, and each run's final counters.
struct LivePublisher {
    metrics: cachescope_dashboard::LiveMetrics,
    workload: String,
    total_requests: u64,
    /// Position reached by each run, to sum the sweep's progress.
    positions: Mutex<std::collections::HashMap<String, u64>>,
}

impl LivePublisher {
    fn new(metrics: cachescope_dashboard::LiveMetrics, workload: String, total_requests: u64) -> Self {
        LivePublisher { metrics, workload, total_requests, positions: Mutex::new(Default::default()) }
    }

    fn labels(&self, policy: &str, size: &str) -> cachescope_dashboard::Labels {
        cachescope_dashboard::Labels::new("sim", policy).with_workload(self.workload.clone()).with_run(size)
    }

    fn publish(
        &self,
        labels: &cachescope_dashboard::Labels,
        position: u64,
        stats: &cachescope_core::stats::CacheStats,
        gpu: Option<sim::GpuTotals>,
    ) {
        self.metrics.publish_cache_at(labels, position, stats);
        let reason = cachescope_core::stats::EvictionReason::Capacity;
        self.metrics.publish_evictions(labels, reason, stats.evictions, stats.evicted_bytes);
        if let Some(g) = gpu {
            let transfers = cachescope_dashboard::GpuTransfers {
                uploads: g.uploads,
                upload_bytes: g.upload_bytes,
                readbacks: g.readbacks,
                readback_bytes: g.readback_bytes,
                ..Default::default()
            };
            self.metrics.publish_gpu(labels, &transfers);
        }
        let done = {
            let mut positions = self.positions.lock().unwrap_or_else(|e| e.into_inner());
            positions.insert(format!("{}/{}", labels.policy, labels.run), position);
            positions.values().sum()
        };
        self.metrics.progress(done, self.total_requests);
    }

    fn finished(&self, run: &RunResult) {
        let stats = cachescope_core::stats::CacheStats {
            requests: run.requests,
            hits: run.hits,
            misses: run.misses,
            requested_bytes: run.requested_bytes,
            missed_bytes: run.missed_bytes,
            evictions: run.evictions,
            evicted_bytes: run.evicted_bytes,
            ..Default::default()
        };
        let gpu = run.upload_bytes.map(|_| sim::GpuTotals {
            uploads: run.uploads.unwrap_or(0),
            upload_bytes: run.upload_bytes.unwrap_or(0),
            readbacks: run.readbacks.unwrap_or(0),
            readback_bytes: run.readback_bytes.unwrap_or(0),
        });
        self.publish(&self.labels(&run.policy, &run.size), run.requests, &stats, gpu);
    }
}

impl sim::SimObserver for LivePublisher {
    fn progress(
        &self,
        run: &sim::RunLabel,
        position: u64,
        _total: u64,
        stats: &cachescope_core::stats::CacheStats,
        gpu: Option<sim::GpuTotals>,
    ) {
        self.publish(&self.labels(run.policy, &run.size), position, stats, gpu);
    }
}

/// The LRU miss-ratio curve at the configured sizes and at 32 log-spaced
/// capacities, with whether each point is exact.
fn lru_curve(trace: &DecodedTrace, config: &SimConfig, rate: f64) -> serde_json::Value {
    let reqs = trace.dense_ids.iter().zip(&trace.sizes).map(|(&k, &s)| (u64::from(k), s));
    let curve = if rate >= 1.0 { sim::mrc::LruCurve::exact(reqs) } else { sim::mrc::LruCurve::sampled(reqs, rate) };
    let base = if config.objects { trace.unique_keys } else { trace.unique_bytes }.max(1);
    let mut caps: Vec<u64> =
        config.sizes.iter().filter_map(|&s| sim::resolve_capacity(s, trace, config.objects).ok()).collect();
    caps.extend((0..32).map(|i| ((base as f64) * 10f64.powf(-4.0 + 4.0 * f64::from(i) / 31.0)).max(1.0) as u64));
    caps.sort_unstable();
    caps.dedup();
    let points: Vec<serde_json::Value> = caps
        .iter()
        .map(|&c| {
            let p = curve.at(c);
            serde_json::json!({"capacity": c, "hits": p.hits, "miss_ratio": p.miss_ratio,
                "byte_miss_ratio": p.byte_miss_ratio, "exact": curve.exact_for(c)})
        })
        .collect();
    serde_json::json!({"sample_rate": curve.sample_rate, "sampled_objects": curve.objects,
        "sampled_requests": curve.requests, "points": points})
}

fn render_table(trace: &DecodedTrace, runs: &[RunResult], gpu: bool) -> String {
    use std::fmt::Write;
    let id = &trace.identity;
    let mut out = format!(
        "trace {} ({}, {} requests, {} keys, {} unique bytes)\n\n",
        id.path.display(),
        id.format.name(),
        id.requests(),
        trace.unique_keys,
        trace.unique_bytes
    );
    let _ = write!(out, "{:<12} {:>10} {:>14} {:>10} {:>10}", "policy", "size", "capacity", "miss_ratio", "byte_miss");
    if gpu {
        let _ = write!(out, " {:>12} {:>12} {:>12}", "upload_GB", "readback_GB", "moved_GB");
    }
    let _ = writeln!(out, " {:>9} {:>9}", "seconds", "Mreq/s");
    for r in runs {
        let _ = write!(
            out,
            "{:<12} {:>10} {:>14} {:>10.4} {:>10.4}",
            r.policy, r.size, r.capacity, r.miss_ratio, r.byte_miss_ratio
        );
        if gpu {
            let gb = |b: Option<u64>| b.unwrap_or(0) as f64 / 1e9;
            let _ = write!(
                out,
                " {:>12.3} {:>12.3} {:>12.3}",
                gb(r.upload_bytes),
                gb(r.readback_bytes),
                r.moved_bytes() as f64 / 1e9
            );
        }
        let mreq = if r.seconds > 0.0 { r.requests as f64 / r.seconds / 1e6 } else { 0.0 };
        let _ = writeln!(out, " {:>9.3} {:>9.1}", r.seconds, mreq);
    }
    out
}
