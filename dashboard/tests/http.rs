//! The server over real sockets: the JSON API, content negotiation, and
//! bad requests (unknown runs, path traversal, huge request lines and
//! headers, slow clients) answered with clean 4xx, never reading outside the
//! results directory.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use cachescope_dashboard::{Labels, LiveMetrics, LiveSnapshot, ServeConfig, serve};
use common::{get, get_with, raw};

const SECRET: &str = "TOP-SECRET-OUTSIDE-RESULTS";

struct Fixture {
    _outside: tempfile::TempDir,
    _results: tempfile::TempDir,
    server: cachescope_dashboard::ServerHandle,
    live: LiveMetrics,
}

fn fixture(limits: cachescope_dashboard::Limits) -> Fixture {
    let outside = tempfile::tempdir().unwrap();
    // A results-looking file outside the directory, and one at its parent.
    std::fs::write(outside.path().join("secret.json"), format!("{{\"runs\":[],\"kind\":\"{SECRET}\"}}")).unwrap();
    let results = tempfile::tempdir_in(outside.path()).unwrap();
    std::fs::create_dir_all(results.path().join("2026-05-01-h100/sweep")).unwrap();
    std::fs::write(results.path().join("zipf.json"), common::sample_results_json()).unwrap();
    std::fs::write(results.path().join("2026-05-01-h100/sweep/results.json"), common::sample_results_json()).unwrap();
    std::fs::write(results.path().join("broken.json"), "{\"runs\": [1, 2").unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret.json"), results.path().join("link.json")).unwrap();
    std::os::unix::fs::symlink(outside.path(), results.path().join("up")).unwrap();
    let live = LiveMetrics::new();
    let server = serve(
        "127.0.0.1:0".parse().unwrap(),
        ServeConfig {
            results_dir: Some(results.path().to_path_buf()),
            live: Some(live.clone()),
            limits,
            ..ServeConfig::default()
        },
    )
    .unwrap();
    Fixture { _outside: outside, _results: results, server, live }
}

#[test]
fn api_serves_runs_live_state_and_metrics() {
    let f = fixture(Default::default());
    let addr = f.server.local_addr();
    assert!(addr.ip().is_loopback());

    let runs = get(addr, "/api/runs");
    assert_eq!(runs.status, 200, "{}", runs.text());
    let names: Vec<String> = serde_json::from_slice::<Vec<serde_json::Value>>(&runs.body)
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["2026-05-01-h100/sweep/results", "broken", "zipf"], "links leading outside are not listed");

    let one = get(addr, "/api/runs/2026-05-01-h100/sweep/results");
    assert_eq!(one.status, 200);
    assert_eq!(one.text(), common::sample_results_json());
    assert!(one.header("content-type").unwrap().starts_with("application/json"));

    let broken = get(addr, "/plot/broken/miss_ratio.svg");
    assert_eq!(broken.status, 500, "a malformed file is the server's problem, named: {}", broken.text());
    assert!(broken.text().contains("broken") && !broken.text().contains("/tmp"), "no server paths: {}", broken.text());

    let svg = get(addr, "/plot/zipf/miss_ratio.svg");
    assert_eq!(svg.status, 200);
    assert_eq!(svg.header("content-type"), Some("image/svg+xml"));
    assert!(svg.text().contains("<svg") && svg.text().contains("s3fifo"));
    assert_eq!(get(addr, "/plot/zipf/latency.svg").status, 404, "no latency in these results");
    assert_eq!(get(addr, "/plot/zipf/nope.svg").status, 404);
    assert_eq!(get(addr, "/runs/zipf").status, 200);

    f.live.publish_cache(
        &Labels::new("sim", "lru"),
        &cachescope_core::stats::CacheStats { requests: 5, hits: 2, ..Default::default() },
    );
    let live: LiveSnapshot = serde_json::from_slice(&get(addr, "/api/live").body).unwrap();
    assert_eq!(live.series[0].cache.unwrap().requests, 5);
    assert_eq!(get(addr, "/live/plot/hit_rate.svg").status, 200);

    let text = get(addr, "/metrics");
    assert_eq!(text.status, 200);
    assert_eq!(text.header("content-type"), Some("text/plain; version=0.0.4; charset=utf-8"));
    assert!(text.text().contains("cachescope_requests_total{cache=\"sim\",policy=\"lru\""));
    let om = get_with(addr, "/metrics", &["Accept: application/openmetrics-text;version=1.0.0,text/plain;q=0.5"]);
    assert!(om.header("content-type").unwrap().starts_with("application/openmetrics-text"));
    assert!(om.text().ends_with("# EOF\n"));

    let font = get(addr, "/static/DejaVuSans.ttf");
    assert_eq!(font.status, 200);
    assert!(font.body.len() > 100_000);
    let head = raw(addr, format!("HEAD /api/live HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes());
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
}

#[test]
fn traversal_and_unknown_runs_get_4xx_and_never_read_outside() {
    let f = fixture(Default::default());
    let addr = f.server.local_addr();
    let attempts: &[(&str, &[u16])] = &[
        ("/api/runs/nope", &[404]),
        ("/api/runs/..%2Fsecret", &[400]),
        ("/api/runs/..%2F..%2F..%2Fetc%2Fpasswd", &[400]),
        ("/api/runs/%2e%2e%2fsecret", &[400]),
        ("/api/runs/../secret", &[400, 404]),
        ("/api/runs/%2Fetc%2Fpasswd", &[400]),
        ("/api/runs//etc/passwd", &[400]),
        ("/api/runs/link", &[400]),
        ("/api/runs/up/secret", &[400]),
        ("/api/runs/zipf%00", &[400]),
        ("/api/runs/%252e%252e%252fsecret", &[400, 404]),
        ("/api/runs/..\\secret", &[400]),
        ("/api/runs/%C0%AE%C0%AE%2Fsecret", &[400]),
        ("/plot/..%2Fsecret/miss_ratio.svg", &[400]),
        ("/plot/up/secret/miss_ratio.svg", &[400]),
        ("/plot/link/miss_ratio.svg", &[400]),
        ("/runs/..%2Fsecret", &[400]),
        ("/runs/up/secret", &[400]),
        ("/../../etc/passwd", &[400, 404]),
        ("/static/../../etc/passwd", &[400, 404]),
        ("http://127.0.0.1/api/runs/..%2Fsecret", &[400]),
        ("/live/plot/..%2F..%2Fsecret.svg", &[400, 404]),
    ];
    for (target, allowed) in attempts {
        let r = get(addr, target);
        assert!(allowed.contains(&r.status), "{target}: status {} not in {allowed:?}: {}", r.status, r.text());
        assert!(!r.text().contains(SECRET), "{target} leaked a file from outside");
        assert!(!r.text().contains("root:"), "{target} leaked /etc/passwd");
    }
}

#[test]
fn huge_request_lines_and_headers_get_4xx() {
    let f = fixture(Default::default());
    let addr = f.server.local_addr();
    let long_query = format!("/api/live?q={}", "a".repeat(100 * 1024));
    let r = get(addr, &long_query);
    assert!([400, 414, 431].contains(&r.status), "100 KB query: {}", r.status);
    let medium_query = format!("/api/live?q={}", "a".repeat(10 * 1024));
    assert_eq!(get(addr, &medium_query).status, 414, "10 KB query");
    let big_header = format!("X-Big: {}", "b".repeat(20 * 1024));
    assert_eq!(get_with(addr, "/api/live", &[&big_header]).status, 431);
    let huge_header = format!("X-Huge: {}", "b".repeat(200 * 1024));
    let r = get_with(addr, "/api/live", &[&huge_header]);
    assert!([400, 431].contains(&r.status), "200 KB header: {}", r.status);
    let many: Vec<String> = (0..200).map(|i| format!("X-H{i}: v")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let r = get_with(addr, "/api/live", &many);
    assert!([400, 431].contains(&r.status), "200 headers: {}", r.status);
    let post = raw(
        addr,
        format!("POST /api/live HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc")
            .as_bytes(),
    );
    assert_eq!(post.status, 405);
    let body = raw(
        addr,
        format!("GET /api/live HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 999999999\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    );
    assert_eq!(body.status, 413);
    assert_eq!(raw(addr, b"NOT HTTP AT ALL\r\n\r\n").status, 400);
    // Still healthy afterwards.
    assert_eq!(get(addr, "/api/live").status, 200);
}

#[test]
fn slow_clients_are_cut_off_and_stop_closes_the_port() {
    let limits = cachescope_dashboard::Limits {
        header_read_timeout: Duration::from_millis(300),
        ..cachescope_dashboard::Limits::default()
    };
    let f = fixture(limits);
    let addr = f.server.local_addr();
    let mut slow = std::net::TcpStream::connect(addr).unwrap();
    slow.write_all(b"GET /api/live HTTP/1.1\r\nHost: x\r\n").unwrap(); // never finishes its head
    slow.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let started = std::time::Instant::now();
    let mut buf = Vec::new();
    let _ = slow.read_to_end(&mut buf); // returns when the server closes
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(5), "the server kept a slow client for {waited:?}");
    let text = String::from_utf8_lossy(&buf);
    assert!(text.is_empty() || text.starts_with("HTTP/1.1 408"), "{text}");

    f.server.stop().unwrap();
    common::poll("the port to close", Duration::from_secs(5), Duration::from_millis(20), |last| {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Err(_) => Some(()),
            Ok(_) => {
                *last = "still accepting".into();
                None
            }
        }
    });
}

#[test]
fn concurrent_scrapes_of_a_live_run_all_succeed() {
    let f = fixture(Default::default());
    let addr = f.server.local_addr();
    let (stop, feeder) = common::feed_in_background(f.live.clone(), Duration::from_millis(5));
    // The run is live once its first snapshot is published; until then the
    // exposition rightly has no cache series (this wait was missing, and a
    // scrape that beat the feeder's first step failed the test on a slow CI
    // machine).
    common::poll("the first published snapshot", Duration::from_secs(10), Duration::from_millis(5), |last| {
        let r = get(addr, "/metrics");
        *last = format!("status {}", r.status);
        r.text().contains("cachescope_requests_total").then_some(())
    });
    let clients: Vec<_> = (0..16)
        .map(|_| {
            std::thread::spawn(move || {
                (0..10)
                    .map(|_| {
                        let r = get(addr, "/metrics");
                        (r.status, r.text().contains("cachescope_requests_total"))
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for c in clients {
        for (status, has) in c.join().unwrap() {
            assert_eq!((status, has), (200, true));
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(feeder.join().unwrap() > 0);
}
