//! Shared helpers of the dashboard's integration tests: a raw HTTP/1.1
//! client (so tests can send exactly the bytes they mean, traversal attempts
//! included), polling with a deadline, required external tools, and a
//! synthetic run that feeds [`LiveMetrics`].
#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cachescope_core::stats::{CacheStats, EvictionReason};
use cachescope_dashboard::{GpuTransfers, Labels, LatencyKind, LiveMetrics, PipelineCompiles, TunerDecision};

/// A parsed HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends `request` as is and reads the response until the server closes.
/// A server that closes without answering, or refuses the connection,
/// gives status 0.
pub fn raw(addr: SocketAddr, request: &[u8]) -> Response {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(5)) else {
        return Response { status: 0, headers: Vec::new(), body: b"connection refused".to_vec() };
    };
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    // The server may answer (and close) before it has read everything of
    // an oversized request; a failed write is then expected.
    let _ = s.write_all(request);
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    parse(&buf)
}

/// `GET target` with extra header lines (each `Name: value`).
pub fn get_with(addr: SocketAddr, target: &str, headers: &[&str]) -> Response {
    let mut req = format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    raw(addr, req.as_bytes())
}

pub fn get(addr: SocketAddr, target: &str) -> Response {
    get_with(addr, target, &[])
}

fn parse(buf: &[u8]) -> Response {
    let Some(split) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Response { status: 0, headers: Vec::new(), body: buf.to_vec() };
    };
    let head = String::from_utf8_lossy(&buf[..split]);
    let mut lines = head.split("\r\n");
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect();
    let mut body = buf[split + 4..].to_vec();
    let chunked =
        headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Response { status, headers, body }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let size_line = String::from_utf8_lossy(&b[..eol]);
        let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("0").trim(), 16).unwrap_or(0);
        if size == 0 || b.len() < eol + 2 + size {
            break;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[(eol + 4 + size).min(b.len())..];
    }
    out
}

/// Percent-encodes a query parameter value.
pub fn url_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Calls `f` until it returns `Some`, every `every`, failing the test with
/// `what` and the last state `f` reported once `within` has passed.
pub fn poll<T>(what: &str, within: Duration, every: Duration, mut f: impl FnMut(&mut String) -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    let mut last = String::new();
    loop {
        if let Some(v) = f(&mut last) {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {within:?} waiting for {what}; last: {last}");
        std::thread::sleep(every);
    }
}

/// The path of a required tool; a missing one fails the test naming the
/// Debian package (CI installs it; the test never skips).
pub fn require(binary: &str, package: &str) -> PathBuf {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(binary))
        .find(|p| p.is_file());
    match found {
        Some(p) => p,
        None => panic!(
            "`{binary}` is not installed: this test needs the Debian package `{package}` \
             (apt-get install -y {package}); scripts/test.sh installs it"
        ),
    }
}

/// `target/test-artifacts/`, created.
pub fn artifacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("target"));
    let dir = target.join("test-artifacts");
    std::fs::create_dir_all(&dir).expect("create target/test-artifacts");
    dir
}

/// A free loopback port (bound and released; the window for a race is the
/// time until the caller binds it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Kills and reaps a child process when dropped.
pub struct ChildGuard(pub std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs a command to completion within `within`, returning (status ok,
/// stdout, stderr).
pub fn run_bounded(cmd: &mut Command, within: Duration) -> (bool, String, String) {
    let mut child = ChildGuard(
        cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().expect("spawn"),
    );
    let mut out = child.0.stdout.take().unwrap();
    let mut err = child.0.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status =
        poll("a child process to finish", within, Duration::from_millis(20), |_| child.0.try_wait().ok().flatten());
    (status.success(), t_out.join().unwrap_or_default(), t_err.join().unwrap_or_default())
}

/// A synthetic multi-policy run: each `step` replays `per_step` more
/// requests per policy and publishes snapshots of everything the exporter
/// knows (cache counters per tier, evictions by reason, GPU traffic,
/// compiles, tuner decisions, latencies with exemplars, progress).
pub struct SyntheticRun {
    pub live: LiveMetrics,
    pub policies: Vec<&'static str>,
    pub per_step: u64,
    pub steps_planned: u64,
    step: u64,
    stats: Vec<[CacheStats; 2]>,
}

impl SyntheticRun {
    pub fn new(live: LiveMetrics) -> Self {
        let policies = vec!["lru", "s3fifo", "sieve"];
        let stats = vec![[CacheStats::default(); 2]; policies.len()];
        SyntheticRun { live, policies, per_step: 65_536, steps_planned: 1000, step: 0, stats }
    }

    pub fn labels(&self, policy: &str, tier: &str) -> Labels {
        Labels::new("buffers", policy).with_tier(tier).with_workload("zipf-0.9").with_run(format!("{policy}@64MiB"))
    }

    /// Replays one more step and publishes.
    pub fn step(&mut self) {
        self.step += 1;
        let n = self.step;
        for (pi, policy) in self.policies.clone().into_iter().enumerate() {
            // Hit ratio drifts with the step so plots and numbers move.
            let hit_permille = 500 + 100 * pi as u64 + (n * 37) % 200;
            for (ti, tier) in ["device", "host"].into_iter().enumerate() {
                let s = &mut self.stats[pi][ti];
                let hits = self.per_step * hit_permille / 1000;
                let misses = self.per_step - hits;
                s.requests += self.per_step;
                s.hits += hits;
                s.misses += misses;
                s.requested_bytes += self.per_step * 4096;
                s.missed_bytes += misses * 4096;
                s.insertions += misses;
                s.evictions += misses * 9 / 10;
                s.evicted_bytes += misses * 9 / 10 * 4096;
                s.resident_bytes = (64 << 20) >> ti;
                s.resident_entries = s.resident_bytes / 4096;
                let snapshot = *s;
                let labels = self.labels(policy, tier);
                self.live.publish_cache(&labels, &snapshot);
                self.live.publish_evictions(
                    &labels,
                    EvictionReason::Capacity,
                    snapshot.evictions,
                    snapshot.evicted_bytes,
                );
                self.live.publish_evictions(&labels, EvictionReason::Removed, n, n * 4096);
            }
            let labels = self.labels(policy, "device");
            let s = self.stats[pi][0];
            self.live.publish_gpu(
                &labels,
                &GpuTransfers {
                    uploads: s.misses,
                    upload_bytes: s.missed_bytes,
                    upload_seconds: s.missed_bytes as f64 / 20e9,
                    readbacks: s.misses / 10,
                    readback_bytes: s.missed_bytes / 10,
                    readback_seconds: s.missed_bytes as f64 / 200e9,
                },
            );
            self.live
                .publish_compiles(&labels, &PipelineCompiles { compiles: 10 + n, compile_seconds: 0.02 * n as f64 });
            let decision = if n.is_multiple_of(2) { TunerDecision::Measured } else { TunerDecision::Reused };
            self.live.tuner_decision(&labels, decision, 24);
            let rec = self.live.latency_recorder(&labels, LatencyKind::Dispatch);
            let up = self.live.latency_recorder(&labels, LatencyKind::Upload);
            for i in 0..50u64 {
                let position = (n - 1) * self.per_step + i * 1000;
                rec.observe(20e-6 * (1.0 + (i % 17) as f64) * (1.0 + pi as f64), Some(position));
                up.observe(200e-6 * (1.0 + (i % 5) as f64), Some(position));
            }
        }
        let done = n * self.per_step * self.policies.len() as u64;
        self.live.progress(done, self.steps_planned * self.per_step * self.policies.len() as u64);
    }

    pub fn steps_done(&self) -> u64 {
        self.step
    }
}

/// Runs a [`SyntheticRun`] on a thread, one step every `every`, until the
/// returned flag is set.
pub fn feed_in_background(live: LiveMetrics, every: Duration) -> (Arc<AtomicBool>, std::thread::JoinHandle<u64>) {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let handle = std::thread::spawn(move || {
        let mut run = SyntheticRun::new(live);
        while !flag.load(Ordering::Relaxed) {
            run.step();
            // Pacing of the synthetic run (a real one publishes as it goes),
            // not a wait for anything.
            std::thread::sleep(every);
        }
        run.steps_done()
    });
    (stop, handle)
}

/// A results file as the harness writes it (with fields the dashboard does
/// not know about).
pub fn sample_results_json() -> String {
    let mut runs = Vec::new();
    for (pi, policy) in ["lru", "s3fifo", "sieve"].iter().enumerate() {
        for (ci, (size, cap)) in
            [("1%", 1u64 << 20), ("5%", 5 << 20), ("10%", 10 << 20), ("25%", 25 << 20)].iter().enumerate()
        {
            let requests = 1_000_000u64;
            let misses = requests * (60 - 12 * ci as u64 - 4 * pi as u64) / 100;
            runs.push(serde_json::json!({
                "policy": policy, "capacity": cap, "size": size, "objects": false,
                "requests": requests, "hits": requests - misses, "misses": misses,
                "requested_bytes": requests * 4096, "missed_bytes": misses * 4096,
                "miss_ratio": misses as f64 / requests as f64,
                "byte_miss_ratio": misses as f64 / requests as f64,
                "evictions": misses * 9 / 10, "evicted_bytes": misses * 9 / 10 * 4096,
                "seconds": 0.25, "some_future_field": {"x": 1}
            }));
        }
    }
    serde_json::json!({
        "schema_version": 1, "kind": "sim",
        "tool": {"name": "cachescope", "version": "0.1.0", "git_rev": "abc", "command": ["cachescope", "sim"],
                 "machine": {"hostname": "h", "cpus": 2, "os": "linux-x86_64"}},
        "trace": {"path": "workloads/zipf.csv", "requests": 1000000},
        "config": {"policies": ["lru", "s3fifo", "sieve"]},
        "runs": runs
    })
    .to_string()
}
