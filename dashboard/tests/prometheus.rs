//! A real Prometheus (Debian package `prometheus`) scrapes a live run through
//! the shipped scrape config, and every PromQL expression of the shipped
//! Grafana dashboard returns data through Prometheus's HTTP API.
//! `promtool check metrics` finds nothing wrong with the exposition, and
//! the latency exemplars reach Prometheus's exemplar storage.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::Duration;

use cachescope_dashboard::{LiveMetrics, ServeConfig, serve};
use common::{ChildGuard, poll, require};

fn manifest(rel: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Every `expr` of every panel target (rows' nested panels included).
fn dashboard_exprs(dashboard: &serde_json::Value) -> Vec<String> {
    fn walk(panels: &serde_json::Value, out: &mut Vec<String>) {
        for p in panels.as_array().into_iter().flatten() {
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(e) = t["expr"].as_str() {
                    out.push(e.to_string());
                }
            }
            walk(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

/// Replaces Grafana's variables: built-in intervals with fixed windows,
/// template variables with "match anything".
fn substitute(expr: &str) -> String {
    let mut s = expr
        .replace("$__rate_interval", "10s")
        .replace("${__rate_interval}", "10s")
        .replace("$__interval", "2s")
        .replace("$__range", "1m");
    // Any other `$name` / `${name}` is a template variable.
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'{') {
            for c in chars.by_ref() {
                if c == '}' {
                    break;
                }
            }
        } else {
            while chars.peek().is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_') {
                chars.next();
            }
        }
        out.push_str(".*");
    }
    s = out;
    s
}

fn prom_get(prom: SocketAddr, path_and_query: &str) -> Option<serde_json::Value> {
    let r = common::get(prom, path_and_query);
    if r.status != 200 {
        return None;
    }
    serde_json::from_slice(&r.body).ok()
}

#[test]
fn prometheus_scrapes_a_live_run_and_every_dashboard_query_has_data() {
    let prometheus = require("prometheus", "prometheus");
    let promtool = require("promtool", "prometheus");

    // The exporter, fed by a synthetic run.
    let live = LiveMetrics::new();
    let server =
        serve("127.0.0.1:0".parse().unwrap(), ServeConfig { live: Some(live.clone()), ..ServeConfig::default() })
            .unwrap();
    let target = server.local_addr();
    let (stop, feeder) = common::feed_in_background(live.clone(), Duration::from_millis(100));

    // The shipped scrape config, adapted: 1 s interval, the test's target.
    let shipped = std::fs::read_to_string(manifest("prometheus/prometheus.yml")).unwrap();
    assert!(shipped.contains("'127.0.0.1:9464'"), "the shipped config scrapes 127.0.0.1:9464");
    assert!(shipped.contains("scrape_interval: 5s"));
    let config = shipped
        .replace("'127.0.0.1:9464'", &format!("'{target}'"))
        .replace("scrape_interval: 5s", "scrape_interval: 1s")
        .replace("scrape_timeout: 4s", "scrape_timeout: 900ms")
        .replace("evaluation_interval: 5s", "evaluation_interval: 1s");
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("prometheus.yml");
    std::fs::write(&config_path, &config).unwrap();
    let (ok, out, err) = common::run_bounded(
        Command::new(&promtool).arg("check").arg("config").arg(&config_path),
        Duration::from_secs(30),
    );
    assert!(ok, "promtool check config: {out}{err}");

    let port = common::free_port();
    let prom_addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
    let _prom = ChildGuard(
        Command::new(&prometheus)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address={prom_addr}"))
            .arg("--enable-feature=exemplar-storage")
            .arg("--log.level=warn")
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus"),
    );
    let prom_log = || std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default();

    poll("Prometheus to be ready", Duration::from_secs(30), Duration::from_millis(100), |last| {
        let r = common::get(prom_addr, "/-/ready");
        *last = format!("status {}; log: {}", r.status, prom_log());
        (r.status == 200).then_some(())
    });
    poll("the target to be up", Duration::from_secs(30), Duration::from_millis(200), |last| {
        let v = prom_get(prom_addr, "/api/v1/targets")?;
        let t = &v["data"]["activeTargets"][0];
        *last = format!("{t}");
        (t["health"] == "up").then_some(())
    });

    // Every expression of the shipped Grafana dashboard returns data.
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(manifest("grafana/dashboards/cachescope.json")).unwrap())
            .unwrap();
    let exprs = dashboard_exprs(&dashboard);
    assert!(exprs.len() >= 15, "the dashboard has its panels: {}", exprs.len());
    for expr in &exprs {
        let q = substitute(expr);
        assert!(!q.contains('$'), "unsubstituted variable in {q}");
        let path = format!("/api/v1/query?query={}", common::url_encode(&q));
        poll(&format!("data for `{q}`"), Duration::from_secs(60), Duration::from_millis(250), |last| {
            let v = prom_get(prom_addr, &path);
            *last = format!("{v:?}");
            let v = v?;
            assert_ne!(v["status"], "error", "Prometheus rejects `{q}`: {v}");
            let n = v["data"]["result"].as_array().map_or(0, Vec::len);
            (n > 0).then_some(())
        });
    }

    // Hit ratios come out as what the synthetic run produces (50..90%).
    let q = common::url_encode(&substitute(&exprs[0]));
    let v = prom_get(prom_addr, &format!("/api/v1/query?query={q}")).unwrap();
    for r in v["data"]["result"].as_array().unwrap() {
        let ratio: f64 = r["value"][1].as_str().unwrap().parse().unwrap();
        assert!((0.45..=0.95).contains(&ratio), "hit ratio {ratio} for {}", r["metric"]);
    }

    // Exemplars (OpenMetrics) arrive in Prometheus's exemplar storage.
    let eq = common::url_encode("cachescope_latency_seconds_bucket");
    poll("exemplars", Duration::from_secs(30), Duration::from_millis(250), |last| {
        let v = prom_get(prom_addr, &format!("/api/v1/query_exemplars?query={eq}&start=0&end=99999999999"))?;
        *last = format!("{v}");
        let s = v["data"].as_array()?.first()?["exemplars"].as_array()?.first()?.clone();
        (s["labels"]["trace_position"].is_string() && s["labels"]["run"].is_string()).then_some(())
    });

    // promtool lints the 0.0.4 exposition clean.
    let exposition = common::get(target, "/metrics").text();
    let mut child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(exposition.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && report.trim().is_empty(), "promtool check metrics: {report}");

    stop.store(true, Ordering::Relaxed);
    assert!(feeder.join().unwrap() > 0);
    assert!(prom_log().lines().all(|l| !l.contains("level=error")), "{}", prom_log());
    server.stop().unwrap();
}
