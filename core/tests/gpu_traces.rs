//! Bytes moved between host and device on recorded GPU dispatch traces
//! (`workloads/traces/*.jsonl.gz`, format in `FORMAT.md` there), for
//! every policy, with device memory at 10% to 50% of the trace's peak
//! live bytes.
//!
//! A stand-in for the simulator that comes later: each binding of each
//! dispatch is one request (key = buffer, size = its bytes, access = r / w /
//! rw), and
//! * a miss that is not write-only uploads the buffer (a `w` binding is
//!   overwritten on the device, so nothing needs to go up);
//! * an evicted dirty buffer is read back;
//! * a written buffer the policy refuses to store is read back at once;
//! * a `free` event drops the buffer with no readback (its data is dead).
//!
//! `bytes_moved_table` replays every policy and prints the table (run with
//! `--nocapture`); it checks the container's invariants and the accounting.
//! `gpu_cost_moves_fewest_bytes` is the goal for `gpu_cost` (fewer bytes
//! than every online standard policy, within 20% of the best clairvoyant
//! reference). It is met on all 12 cases; a case that stops meeting it on
//! purpose goes in `KNOWN_UNMET` with a regression bound, and the test
//! prints it. The traces are decompressed with `gzip -dc` (no decompression
//! crate in core); a missing trace fails the test.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use cachescope_core::cache::{Cache, Outcome};
use cachescope_core::policy::{Access, PolicyKind, Request};

const TRACES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../workloads/traces");

enum Event {
    Access(Request),
    Free(u64),
}

struct Trace {
    events: Vec<Event>,
    peak_live_bytes: u64,
}

fn load(name: &str) -> Trace {
    let path = Path::new(TRACES).join(format!("{name}.jsonl.gz"));
    assert!(path.exists(), "{} is missing (it ships with the repository)", path.display());
    let out = Command::new("gzip").arg("-dc").arg(&path).output().expect("gzip must be on PATH");
    assert!(out.status.success(), "gzip -dc {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).expect("trace is UTF-8");
    let mut events = Vec::new();
    let (mut live, mut peak) = (0u64, 0u64);
    let mut alive: HashMap<u64, u64> = HashMap::new();
    for (n, line) in text.lines().enumerate().skip(1) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{name} line {}: {e}", n + 1));
        match v["ev"].as_str() {
            Some("alloc") => {
                let bytes = v["bytes"].as_u64().unwrap();
                alive.insert(v["buf"].as_u64().unwrap(), bytes);
                live += bytes;
                peak = peak.max(live);
            }
            Some("free") => {
                let buf = v["buf"].as_u64().unwrap();
                live -= alive.remove(&buf).unwrap_or(0);
                events.push(Event::Free(buf));
            }
            Some("dispatch") => {
                for b in v["bindings"].as_array().unwrap() {
                    let access = match b[2].as_str().unwrap() {
                        "r" => Access::Read,
                        "w" => Access::Write,
                        _ => Access::ReadWrite,
                    };
                    let req = Request { access, ..Request::new(b[0].as_u64().unwrap(), b[1].as_u64().unwrap()) };
                    events.push(Event::Access(req));
                }
            }
            other => panic!("{name} line {}: unknown event {other:?}", n + 1),
        }
    }
    // Next access per request (request indices), by a reverse pass.
    let mut next: HashMap<u64, u64> = HashMap::new();
    let n_requests = events.iter().filter(|e| matches!(e, Event::Access(_))).count() as u64;
    let mut i = n_requests;
    for e in events.iter_mut().rev() {
        if let Event::Access(r) = e {
            i -= 1;
            r.next_access = next.insert(r.key, i).unwrap_or(Request::NEVER);
        }
    }
    Trace { events, peak_live_bytes: peak }
}

#[derive(Debug, Clone, Copy, Default)]
struct Moved {
    upload_bytes: u64,
    readback_bytes: u64,
}

impl Moved {
    fn total(self) -> u64 {
        self.upload_bytes + self.readback_bytes
    }
}

fn replay(kind: PolicyKind, capacity: u64, trace: &Trace) -> Moved {
    let mut cache = Cache::new(capacity, kind.build()).unwrap();
    let mut m = Moved::default();
    let mut readback = 0u64;
    for e in &trace.events {
        match e {
            Event::Free(buf) => {
                cache.remove(*buf);
            }
            Event::Access(req) => {
                let outcome = cache.access_with(req, |ev| {
                    if ev.dirty {
                        readback += ev.size;
                    }
                });
                if outcome != Outcome::Hit && req.access != Access::Write {
                    m.upload_bytes += req.size;
                }
                if outcome == Outcome::Rejected && req.access.writes() {
                    readback += req.size;
                }
            }
        }
    }
    cache.check_invariants().unwrap();
    m.readback_bytes = readback;
    m
}

/// Online standard policies (Belady and the cost-aware reference are clairvoyant).
fn standard() -> impl Iterator<Item = PolicyKind> {
    PolicyKind::ALL
        .iter()
        .copied()
        .filter(|k| !matches!(k, PolicyKind::GpuCost | PolicyKind::BeladyCost | PolicyKind::Belady))
}

/// One unmet part of the gpu_cost goal.
struct Failure {
    trace: &'static str,
    pct: u64,
    /// gpu_cost / best standard policy (> 1 when a standard policy wins).
    vs_standard: f64,
    /// gpu_cost / best clairvoyant reference.
    vs_clairvoyant: f64,
    message: String,
}

/// Goal cases gpu_cost does not meet yet, with the ratio to the best
/// standard policy it must at least keep (a regression bound, not the goal).
/// None since the hot rule's 3-access case and its aging (2026-12-06); the
/// thinnest margins are ResNet-50 at 20% (0.3% under FIFO) and GPT-2 at
/// 50% (1.18x the clairvoyant reference).
const KNOWN_UNMET: &[(&str, u64, f64)] = &[];

/// Device memory sizes, in percent of the peak live bytes.
const SIZES_PCT: [u64; 6] = [10, 20, 25, 30, 40, 50];

/// Replays every policy at [`SIZES_PCT`] of peak live bytes; returns
/// failures of the gpu_cost goal and prints the table.
fn table() -> Vec<Failure> {
    let mut failures = Vec::new();
    for name in ["resnet50-train", "gpt2-decode"] {
        let trace = load(name);
        for pct in SIZES_PCT {
            let capacity = trace.peak_live_bytes * pct / 100;
            println!("\n{name} at {pct}% of peak live bytes ({:.1} MB):", capacity as f64 / 1e6);
            println!("  {:<12} {:>10} {:>10} {:>10}", "policy", "upload MB", "readbk MB", "total MB");
            let mut moved = Vec::new();
            for &k in PolicyKind::ALL {
                let m = replay(k, capacity, &trace);
                println!(
                    "  {:<12} {:>10.1} {:>10.1} {:>10.1}",
                    k.name(),
                    m.upload_bytes as f64 / 1e6,
                    m.readback_bytes as f64 / 1e6,
                    m.total() as f64 / 1e6
                );
                moved.push((k, m));
            }
            let get = |kind: PolicyKind| moved.iter().find(|(k, _)| *k == kind).map(|(_, m)| m.total()).unwrap_or(0);
            let ours = get(PolicyKind::GpuCost);
            let (best_k, best) = standard().map(|k| (k, get(k))).min_by_key(|&(_, b)| b).unwrap();
            let vs_standard = ours as f64 / best.max(1) as f64;
            // The better of the two clairvoyant references.
            let reference = get(PolicyKind::Belady).min(get(PolicyKind::BeladyCost)).max(1);
            let ratio = ours as f64 / reference as f64;
            println!("  gpu_cost / best clairvoyant = {ratio:.3}");
            println!(
                "summary {name:<15} {pct:>2}%  gpu_cost {:>6.2} GB  best standard {:>6.2} GB ({:<8}) {vs_standard:.3}x  \
                 clairvoyant {:>6.2} GB {ratio:.3}x",
                ours as f64 / 1e9,
                best as f64 / 1e9,
                best_k.name(),
                reference as f64 / 1e9,
            );
            let mut problems = Vec::new();
            if best <= ours {
                problems.push(format!("{} moves {best} <= gpu_cost {ours}", best_k.name()));
            }
            if ratio > 1.2 {
                problems.push(format!("gpu_cost is {ratio:.3} x the best clairvoyant reference"));
            }
            if !problems.is_empty() {
                failures.push(Failure {
                    trace: name,
                    pct,
                    vs_standard,
                    vs_clairvoyant: ratio,
                    message: format!("{name} {pct}%: {}", problems.join("; ")),
                });
            }
        }
    }
    failures
}

#[test]
fn bytes_moved_table() {
    let failures = table();
    if !failures.is_empty() {
        let lines: Vec<&str> = failures.iter().map(|f| f.message.as_str()).collect();
        println!("\ngpu_cost goal not met ({} cases):\n{}", failures.len(), lines.join("\n"));
    }
}

/// The goal, on every case except those in [`KNOWN_UNMET`]: fewer bytes
/// than every standard policy and within 20% of the best clairvoyant
/// reference. A known-unmet case must still be within 20% of clairvoyant
/// and keep its regression bound against the best standard policy; if it
/// is met, the test says so (remove it from the list).
#[test]
fn gpu_cost_moves_fewest_bytes() {
    let failures = table();
    let mut unexpected = Vec::new();
    for f in &failures {
        match KNOWN_UNMET.iter().find(|(t, p, _)| *t == f.trace && *p == f.pct) {
            Some(&(_, _, bound)) if f.vs_standard <= bound && f.vs_clairvoyant <= 1.2 => {
                println!("known unmet (bound {bound}x vs best standard): {}", f.message);
            }
            _ => unexpected.push(f.message.as_str()),
        }
    }
    for &(trace, pct, _) in KNOWN_UNMET {
        if !failures.iter().any(|f| f.trace == trace && f.pct == pct) {
            println!("{trace} {pct}% now meets the goal: remove it from KNOWN_UNMET");
        }
    }
    assert!(unexpected.is_empty(), "{}", unexpected.join("\n"));
}

/// gpu_cost is deterministic: two replays move exactly the same bytes.
#[test]
fn gpu_cost_is_deterministic() {
    for name in ["resnet50-train", "gpt2-decode"] {
        let trace = load(name);
        for pct in [10u64, 25, 50] {
            let capacity = trace.peak_live_bytes * pct / 100;
            let a = replay(PolicyKind::GpuCost, capacity, &trace);
            let b = replay(PolicyKind::GpuCost, capacity, &trace);
            assert_eq!((a.upload_bytes, a.readback_bytes), (b.upload_bytes, b.readback_bytes), "{name} {pct}%");
        }
    }
}
