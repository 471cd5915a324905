//! Load benchmark of `/metrics` against a live run (loopback only, bounded
//! in time): many concurrent scrapers, p50/p99 scrape latency, and the
//! effect of scraping on a simulator's throughput.
//!
//! The "simulator" is cachescope-core's `Cache` with LRU on a skewed
//! synthetic stream, publishing a snapshot every 64Ki requests, as the
//! harness's `sim --serve` does. Three phases of equal length, repeated and
//! interleaved: no scraping, one scrape per second (Prometheus' worst
//! realistic case), and `--scrapers` clients scraping back to back.
//!
//! ```text
//! cargo run --release -p cachescope-dashboard --example scrape_load -- [--seconds 3] [--scrapers 32] [--series 24]
//! ```

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cachescope_core::cache::Cache;
use cachescope_core::policy::{Access, PolicyKind, Request};
use cachescope_dashboard::{Labels, LatencyKind, LiveMetrics, ServeConfig, serve};

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// One scrape over a fresh connection; returns the body length.
fn scrape(addr: SocketAddr) -> std::io::Result<usize> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes())?;
    let mut buf = Vec::with_capacity(64 * 1024);
    s.read_to_end(&mut buf)?;
    if !buf.starts_with(b"HTTP/1.1 200") {
        return Err(std::io::Error::other("status is not 200"));
    }
    Ok(buf.len())
}

/// Replays a skewed stream through LRU for `seconds`, publishing every
/// 64Ki requests; returns requests per second.
fn simulate(live: &LiveMetrics, labels: &Labels, seconds: f64) -> f64 {
    let mut cache = Cache::new(64 << 20, PolicyKind::Lru.build()).expect("capacity");
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let started = Instant::now();
    let mut n: u64 = 0;
    loop {
        for _ in 0..65_536 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Skewed keys: the product of two uniforms favours small ids.
            let key = ((x >> 40) * ((x >> 16) & 0xFFFFFF)) >> 24;
            let req = Request { key, size: 4096 + (key % 8) * 1024, next_access: Request::NEVER, access: Access::Read };
            cache.access(&req);
        }
        n += 65_536;
        let stats = cache.stats();
        live.publish_cache(labels, &stats);
        live.progress(n, 0);
        if started.elapsed().as_secs_f64() >= seconds {
            break;
        }
    }
    n as f64 / started.elapsed().as_secs_f64()
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn main() {
    let seconds = arg("--seconds", 3) as f64;
    let scrapers = arg("--scrapers", 32) as usize;
    let series = arg("--series", 24) as usize;
    let live = LiveMetrics::new();
    // Background series, as a sweep of many runs would have.
    for i in 0..series {
        let l = Labels::new("sim", format!("policy{}", i % 12)).with_workload("zipf").with_run(format!("run{i}"));
        live.publish_cache(&l, &Default::default());
        let rec = live.latency_recorder(&l, LatencyKind::Dispatch);
        for j in 0..100u64 {
            rec.observe(1e-5 * (j + 1) as f64, Some(j));
        }
    }
    let server =
        serve("127.0.0.1:0".parse().unwrap(), ServeConfig { live: Some(live.clone()), ..ServeConfig::default() })
            .expect("serve");
    let addr = server.local_addr();
    let bytes = scrape(addr).expect("first scrape");
    println!("exposition: {bytes} bytes, {} series label sets + the simulator's", series);
    let labels = Labels::new("sim", "lru").with_workload("synthetic").with_run("lru@64MiB");

    let mut base = Vec::new();
    let mut one_per_s = Vec::new();
    let mut hammered = Vec::new();
    let mut latencies: Vec<f64> = Vec::new();
    let mut errors = 0u64;
    for _round in 0..3 {
        base.push(simulate(&live, &labels, seconds));

        // One scrape per second.
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let t = std::thread::spawn(move || {
            let mut lat = Vec::new();
            let mut next = Instant::now();
            while !flag.load(Ordering::Relaxed) {
                if Instant::now() >= next {
                    let s = Instant::now();
                    if scrape(addr).is_ok() {
                        lat.push(s.elapsed().as_secs_f64());
                    }
                    next += Duration::from_secs(1);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            lat
        });
        one_per_s.push(simulate(&live, &labels, seconds));
        stop.store(true, Ordering::Relaxed);
        let _ = t.join();

        // Many scrapers back to back.
        let stop = Arc::new(AtomicBool::new(false));
        let threads: Vec<_> = (0..scrapers)
            .map(|_| {
                let flag = Arc::clone(&stop);
                std::thread::spawn(move || {
                    let mut lat = Vec::new();
                    let mut err = 0u64;
                    while !flag.load(Ordering::Relaxed) {
                        let s = Instant::now();
                        match scrape(addr) {
                            Ok(_) => lat.push(s.elapsed().as_secs_f64()),
                            Err(_) => err += 1,
                        }
                    }
                    (lat, err)
                })
            })
            .collect();
        hammered.push(simulate(&live, &labels, seconds));
        stop.store(true, Ordering::Relaxed);
        for t in threads {
            if let Ok((lat, err)) = t.join() {
                latencies.extend(lat);
                errors += err;
            }
        }
    }
    latencies.sort_by(f64::total_cmp);
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (b, o, h) = (median(&mut base), median(&mut one_per_s), median(&mut hammered));
    println!("simulator throughput (median of 3 x {seconds} s phases):");
    println!("  no scraping            {:>8.2} Mreq/s", b / 1e6);
    println!("  1 scrape/s             {:>8.2} Mreq/s  ({:+.1}%)", o / 1e6, (o / b - 1.0) * 100.0);
    println!("  {scrapers:>2} scrapers nonstop    {:>8.2} Mreq/s  ({:+.1}%)", h / 1e6, (h / b - 1.0) * 100.0);
    println!(
        "scrape latency under {scrapers} concurrent scrapers: n={} p50={:.2} ms p99={:.2} ms max={:.2} ms errors={errors}",
        latencies.len(),
        percentile(&latencies, 0.5) * 1e3,
        percentile(&latencies, 0.99) * 1e3,
        latencies.last().copied().unwrap_or(f64::NAN) * 1e3,
    );
    server.stop().expect("stop");
}
