//! Bytes moved between host and device on recorded GPU dispatch traces
//! (`/work/shared/traces/*.jsonl.gz`, format in `FORMAT.md` there), for
//! every policy, with device memory at 10%, 25% and 50% of the trace's peak
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
//! reference); it is not met yet, so it is `#[ignore]`d: run it with
//! `--ignored`. The traces are decompressed with `gzip -dc`
//! (no decompression crate in the workspace); if the shared traces are not
//! on this machine the test says so and passes.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use cachescope_core::cache::{Cache, Outcome};
use cachescope_core::policy::{Access, PolicyKind, Request};

const TRACES: &str = "/work/shared/traces";

enum Event {
    Access(Request),
    Free(u64),
}

struct Trace {
    events: Vec<Event>,
    peak_live_bytes: u64,
}

fn load(name: &str) -> Option<Trace> {
    let path = Path::new(TRACES).join(format!("{name}.jsonl.gz"));
    if !path.exists() {
        return None;
    }
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
    Some(Trace { events, peak_live_bytes: peak })
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

/// Replays every policy at 10/25/50% of peak live bytes; returns failures of
/// the gpu_cost goal and prints the table.
fn table() -> Vec<String> {
    let mut failures = Vec::new();
    for name in ["resnet50-train", "gpt2-decode"] {
        let Some(trace) = load(name) else {
            eprintln!("{TRACES}/{name}.jsonl.gz not found: skipping");
            continue;
        };
        for pct in [10u64, 25, 50] {
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
            for k in standard() {
                if get(k) < ours {
                    failures.push(format!("{name} {pct}%: {} moves {} < gpu_cost {ours}", k.name(), get(k)));
                }
            }
            // The better of the two clairvoyant references.
            let reference = get(PolicyKind::Belady).min(get(PolicyKind::BeladyCost)).max(1);
            let ratio = ours as f64 / reference as f64;
            println!("  gpu_cost / best clairvoyant = {ratio:.3}");
            if ratio > 1.2 {
                failures.push(format!("{name} {pct}%: gpu_cost is {ratio:.3} x the best clairvoyant reference"));
            }
        }
    }
    failures
}

#[test]
fn bytes_moved_table() {
    let failures = table();
    if !failures.is_empty() {
        println!("\ngpu_cost goal not met ({} cases):\n{}", failures.len(), failures.join("\n"));
    }
}

#[test]
#[ignore = "goal not met yet: gpu_cost does not beat every standard policy (see bytes_moved_table)"]
fn gpu_cost_moves_fewest_bytes() {
    let failures = table();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
