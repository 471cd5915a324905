//! The server under load and attack, over real loopback sockets:
//!
//! * `wrk` (Debian package `wrk`) against `/metrics` and `/` of a live run
//!   for a bounded time: requests/s and p99, zero errors, zero non-2xx;
//! * label-cardinality explosion end to end: a run that publishes a million
//!   distinct pipeline names makes at most `max_label_sets + 1` series per
//!   metric in `/metrics`, and the scrape stays small and fast;
//! * many slow clients at once (slowloris) cannot lock out a good one;
//! * seeded garbage requests leave the server healthy.
//!
//! (`http.rs` covers single slow clients, oversized request lines and
//! headers, bodies, methods, and path traversal.)
//!
//! Loopback only; every loop is bounded in count and time.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use cachescope_dashboard::{Labels, LatencyKind, Limits, LiveMetrics, ServeConfig, serve};
use common::{get, raw};

/// Seconds each wrk run lasts (WRK_SECONDS overrides, for the numbers in
/// results/…/dashboard-load/).
fn wrk_seconds() -> u64 {
    std::env::var("WRK_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(3)
}

#[derive(Debug)]
struct WrkReport {
    requests_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    requests: u64,
    errors: String,
}

fn ms(s: &str) -> f64 {
    let s = s.trim();
    if let Some(v) = s.strip_suffix("us") {
        v.parse::<f64>().unwrap() / 1000.0
    } else if let Some(v) = s.strip_suffix("ms") {
        v.parse().unwrap()
    } else if let Some(v) = s.strip_suffix('s') {
        v.parse::<f64>().unwrap() * 1000.0
    } else {
        panic!("latency `{s}`")
    }
}

fn wrk(url: &str, connections: u32) -> WrkReport {
    let bin = common::require("wrk", "wrk");
    let secs = wrk_seconds();
    let (ok, out, err) = common::run_bounded(
        Command::new(bin).args([
            "-t2",
            &format!("-c{connections}"),
            &format!("-d{secs}s"),
            "--latency",
            "--timeout",
            "5s",
            url,
        ]),
        Duration::from_secs(secs + 30),
    );
    assert!(ok, "wrk failed:\n{out}\n{err}");
    let line = |prefix: &str| out.lines().map(str::trim).find(|l| l.starts_with(prefix)).map(str::to_owned);
    let rps = line("Requests/sec:").unwrap_or_else(|| panic!("no Requests/sec:\n{out}"));
    let requests = out
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no request count:\n{out}"));
    let pct = |p: &str| ms(line(p).unwrap_or_else(|| panic!("no {p}:\n{out}")).split_whitespace().nth(1).unwrap());
    let errors = [line("Socket errors:"), line("Non-2xx or 3xx responses:")]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join("; ");
    WrkReport {
        requests_per_sec: rps.split_whitespace().nth(1).unwrap().parse().unwrap(),
        p50_ms: pct("50%"),
        p99_ms: pct("99%"),
        requests,
        errors,
    }
}

#[test]
fn wrk_load_on_metrics_and_index_has_no_errors() {
    let live = LiveMetrics::new();
    let server =
        serve("127.0.0.1:0".parse().unwrap(), ServeConfig { live: Some(live.clone()), ..ServeConfig::default() })
            .unwrap();
    let addr = server.local_addr();
    assert!(addr.ip().is_loopback());
    // A live run publishing throughout (every 10 ms).
    let (stop, feeder) = common::feed_in_background(live, Duration::from_millis(10));
    common::poll("the first snapshot", Duration::from_secs(10), Duration::from_millis(10), |_| {
        get(addr, "/metrics").text().contains("cachescope_requests_total{").then_some(())
    });
    let mut lines = Vec::new();
    for (path, connections) in [("/metrics", 16), ("/", 16)] {
        let r = wrk(&format!("http://{addr}{path}"), connections);
        let line = format!(
            "{path}: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, {} requests over {} s with {connections} connections, errors: {}",
            r.requests_per_sec,
            r.p50_ms,
            r.p99_ms,
            r.requests,
            wrk_seconds(),
            if r.errors.is_empty() { "none" } else { &r.errors }
        );
        eprintln!("wrk {line}");
        assert!(r.errors.is_empty(), "{path}: {}", r.errors);
        assert!(r.requests > 100, "{path}: only {} requests", r.requests);
        lines.push(line);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(feeder.join().unwrap() > 0);
    std::fs::write(common::artifacts_dir().join("dashboard-load.txt"), lines.join("\n") + "\n").unwrap();
    assert_eq!(get(addr, "/api/live").status, 200, "healthy after the load");
}

/// Label sets of `metric` in a Prometheus text exposition.
fn label_sets(text: &str, metric: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix(metric)?.strip_prefix('{'))
        .map(|l| l.split('}').next().unwrap_or("").to_owned())
        .collect()
}

#[test]
fn a_million_pipeline_names_make_bounded_series_in_metrics() {
    let live = LiveMetrics::new();
    let limit = live.config().max_label_sets;
    let server =
        serve("127.0.0.1:0".parse().unwrap(), ServeConfig { live: Some(live.clone()), ..ServeConfig::default() })
            .unwrap();
    let addr = server.local_addr();
    // A pipeline trace with a million distinct pipelines, each published as
    // its own label set (the worst a publisher can do), with latencies.
    let started = Instant::now();
    let mut stats = cachescope_core::stats::CacheStats::default();
    for i in 0..1_000_000u64 {
        stats.record_request(1, i.is_multiple_of(3));
        let labels = Labels::new("pipelines", "lru").with_workload("million").with_run(format!("pipeline-{i:07}"));
        live.publish_cache(&labels, &stats);
        if i.is_multiple_of(100) {
            live.observe_latency_seconds(&labels, LatencyKind::Compile, 1e-3, Some(i));
        }
    }
    let publish = started.elapsed();
    let scrape_started = Instant::now();
    let r = get(addr, "/metrics");
    let scrape = scrape_started.elapsed();
    assert_eq!(r.status, 200);
    let text = r.text();
    let requests = label_sets(&text, "cachescope_requests_total");
    assert_eq!(requests.len(), limit + 1, "{limit} own label sets + `other`");
    assert!(requests.iter().any(|l| l.contains("policy=\"other\"")), "the rest fold into other");
    let latency = label_sets(&text, "cachescope_latency_seconds_count");
    assert!(latency.len() <= limit + 1, "{} latency series", latency.len());
    let series = text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()).count();
    assert!(text.contains("cachescope_exporter_folded_label_sets_total"), "folding is counted");
    assert!(text.len() < 8 << 20, "a {} byte scrape", text.len());
    let om = common::get_with(addr, "/metrics", &["Accept: application/openmetrics-text;version=1.0.0"]);
    assert_eq!(om.status, 200);
    assert!(label_sets(&om.text(), "cachescope_requests").len() <= limit + 1);
    eprintln!(
        "cardinality: 1,000,000 pipeline names -> {} label sets of cachescope_requests_total, {} latency series, \
         {series} samples, {} KiB scrape in {scrape:?} (publishing took {publish:.1?})",
        requests.len(),
        latency.len(),
        text.len() / 1024
    );
}

#[test]
fn many_slow_clients_cannot_lock_out_a_good_one() {
    let limits = Limits { header_read_timeout: Duration::from_millis(500), max_connections: 16, ..Limits::default() };
    let server = serve("127.0.0.1:0".parse().unwrap(), ServeConfig { limits, ..ServeConfig::default() }).unwrap();
    let addr = server.local_addr();
    // Twice as many slowloris connections as the server serves at once,
    // each sending a head that never ends.
    let slow: Vec<TcpStream> = (0..32)
        .filter_map(|_| {
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
            let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ");
            Some(s)
        })
        .collect();
    assert!(slow.len() >= 16);
    let started = Instant::now();
    common::poll("a good client to be served", Duration::from_secs(15), Duration::from_millis(50), |last| {
        let r = get(addr, "/api/live");
        *last = format!("status {}", r.status);
        (r.status == 200).then_some(())
    });
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(10), "a good client waited {waited:?}");
    // Every slow connection was cut off (read returns 0 or an error, or a 408).
    for mut s in slow {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        assert!(buf.is_empty() || buf.starts_with(b"HTTP/1.1 408"), "{}", String::from_utf8_lossy(&buf));
    }
    eprintln!("slowloris: 32 slow connections, a good client served after {waited:?}");
}

#[test]
fn seeded_garbage_requests_leave_the_server_healthy() {
    let server = serve("127.0.0.1:0".parse().unwrap(), ServeConfig::default()).unwrap();
    let addr: SocketAddr = server.local_addr();
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let prefixes: [&[u8]; 5] = [b"", b"GET ", b"GET /metrics HTTP/1.1\r\n", b"GET /api/runs/", b"\x16\x03\x01"];
    let mut statuses = std::collections::BTreeMap::new();
    for i in 0..300 {
        let mut req = prefixes[i % prefixes.len()].to_vec();
        let len = (next() % 600) as usize;
        req.extend((0..len).map(|_| next() as u8));
        if i.is_multiple_of(2) {
            req.extend_from_slice(b"\r\n\r\n");
        }
        // Half the requests end their head; the rest are cut by the
        // header timeout (10 s), so do not wait for those: write and close.
        if i.is_multiple_of(2) {
            let r = raw(addr, &req);
            assert!(r.status == 0 || (200..500).contains(&r.status), "garbage {i} got {}", r.status);
            *statuses.entry(r.status).or_insert(0u32) += 1;
        } else if let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            let _ = s.write_all(&req);
        }
    }
    assert_eq!(get(addr, "/api/live").status, 200, "healthy after 300 garbage requests");
    assert_eq!(get(addr, "/metrics").status, 200);
    eprintln!("garbage: statuses {statuses:?} (0 = closed without an answer)");
}
