//! The web page in a real headless browser (Debian package `chromium`): it
//! loads, shows the plots, its numbers change while the run progresses
//! (server-rendered, and again through the page's own refresh script), and
//! a screenshot is kept in `target/test-artifacts/`.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use cachescope_dashboard::{LiveMetrics, ServeConfig, serve};
use common::{SyntheticRun, require};

fn chromium(binary: &Path, profile: &Path, extra: &[String]) -> Command {
    let mut c = Command::new(binary);
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(extra);
    c
}

fn dump_dom(binary: &Path, url: &str, extra: &[&str]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    args.push("--dump-dom".into());
    args.push(url.into());
    let (ok, out, err) = common::run_bounded(&mut chromium(binary, profile.path(), &args), Duration::from_secs(90));
    assert!(ok && out.contains("</html>"), "chromium --dump-dom failed: {err}");
    out
}

/// The text of the element with `id` in a dumped DOM.
fn text_of(dom: &str, id: &str) -> String {
    let at = dom.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("no #{id} in the page"));
    let start = at + dom[at..].find('>').unwrap() + 1;
    let end = start + dom[start..].find('<').unwrap();
    dom[start..end].to_string()
}

fn attr_of(dom: &str, id: &str, attr: &str) -> String {
    let at = dom.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("no #{id} in the page"));
    let tag_end = at + dom[at..].find('>').unwrap();
    let tag = &dom[at..tag_end];
    let key = format!("{attr}=\"");
    let s = tag.find(&key).map(|i| i + key.len()).unwrap_or_else(|| panic!("#{id} has no {attr}: {tag}"));
    tag[s..s + tag[s..].find('"').unwrap()].to_string()
}

#[test]
fn the_page_loads_shows_plots_and_updates_while_the_run_progresses() {
    let browser = require("chromium", "chromium");
    let results = tempfile::tempdir().unwrap();
    std::fs::write(results.path().join("zipf-sweep.json"), common::sample_results_json()).unwrap();
    let live = LiveMetrics::new();
    let server = serve(
        "127.0.0.1:0".parse().unwrap(),
        ServeConfig {
            results_dir: Some(results.path().to_path_buf()),
            live: Some(live.clone()),
            refresh_seconds: 1,
            ..ServeConfig::default()
        },
    )
    .unwrap();
    let addr: SocketAddr = server.local_addr();
    let url = format!("http://{addr}/");
    let mut run = SyntheticRun::new(live);
    for _ in 0..5 {
        run.step();
    }

    // First load: server-rendered numbers, inline live plots, past-run plots.
    let dom1 = dump_dom(&browser, &url, &[]);
    let done1 = text_of(&dom1, "progress-done");
    assert_eq!(done1, "983,040", "5 steps x 3 policies x 65,536 requests");
    assert!(dom1.contains("id=\"plot-live-hit_rate\"><svg"), "inline live hit-rate plot");
    assert!(dom1.contains("id=\"plot-live-latency\"><svg"), "inline live latency plot");
    for kind in ["miss_ratio", "byte_miss_ratio", "evictions"] {
        let src = format!("src=\"/plot/zipf-sweep/{kind}.svg\"");
        assert!(dom1.contains(&src), "past run plot {kind} in the page");
        let r = common::get(addr, &format!("/plot/zipf-sweep/{kind}.svg"));
        assert_eq!((r.status, r.header("content-type")), (200, Some("image/svg+xml")), "{kind}");
    }
    assert!(dom1.contains("s3fifo") && dom1.contains("buffers / lru / device / zipf-0.9 / lru@64MiB"));

    // The run progresses: a second load shows new numbers.
    for _ in 0..5 {
        run.step();
    }
    let dom2 = dump_dom(&browser, &url, &[]);
    let done2 = text_of(&dom2, "progress-done");
    assert_eq!(done2, "1,966,080");
    assert_ne!(dom1.find("<tbody id=\"live-rows\">"), None);
    let rows = |d: &str| {
        let s = d.find("<tbody id=\"live-rows\">").unwrap();
        d[s..s + d[s..].find("</tbody>").unwrap()].to_string()
    };
    assert_ne!(rows(&dom1), rows(&dom2), "the live table changed");

    // The page's own script refreshes it in place from /api/live.
    for _ in 0..5 {
        run.step();
    }
    let dom3 = dump_dom(&browser, &url, &["--virtual-time-budget=3000"]);
    assert_eq!(attr_of(&dom3, "live-updated", "data-source"), "script", "the refresh script ran");
    assert!(text_of(&dom3, "live-updated").starts_with("live at "));
    assert_eq!(text_of(&dom3, "progress-done"), "2,949,120");
    assert!(dom3.contains("id=\"plot-live-hit_rate\"><svg"), "the script swapped in a fresh plot");

    // A screenshot for people to look at.
    let shot = common::artifacts_dir().join("dashboard-page.png");
    let _ = std::fs::remove_file(&shot);
    let profile = tempfile::tempdir().unwrap();
    let (ok, _, err) = common::run_bounded(
        &mut chromium(
            &browser,
            profile.path(),
            &[format!("--screenshot={}", shot.display()), "--window-size=1280,900".into(), url.clone()],
        ),
        Duration::from_secs(90),
    );
    assert!(ok, "chromium --screenshot failed: {err}");
    let png = std::fs::read(&shot).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(png.len() > 20_000, "a page with plots is not a blank image: {} bytes", png.len());
    server.stop().unwrap();
}
