//! The web page: server-rendered HTML, no front-end build step.
//!
//! The page is complete without JavaScript (numbers and plots are rendered
//! on the server, and a `<noscript>` meta refresh reloads it). A small
//! inline script refreshes the live section in place every few seconds from
//! `/api/live` and `/live/plot/*.svg`, so the page does not flicker. Every
//! value from a label or a file is escaped; the script only ever sets
//! `textContent`, plus the SVG the server itself produced.

use std::fmt::Write as _;

use crate::live::{LatencyKind, LiveSnapshot};
use crate::plot::PlotKind;
use crate::results::{ResultsFile, RunEntry};

/// Escapes text for HTML element content and attribute values.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// A run name as a URL path (names are already restricted to safe
/// characters; only `%` needs encoding).
pub fn url_name(name: &str) -> String {
    name.replace('%', "%25")
}

fn fmt_count(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn fmt_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut x = n as f64;
    let mut u = 0;
    while x >= 1024.0 && u < UNITS.len() - 1 {
        x /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{n} B") } else { format!("{x:.1} {}", UNITS[u]) }
}

const STYLE: &str = r#"
@font-face { font-family: "DejaVu Sans"; src: url("/static/DejaVuSans.ttf") format("truetype"); }
body { font-family: "DejaVu Sans", sans-serif; margin: 1.5rem auto; max-width: 1100px; color: #222; padding: 0 1rem; }
h1 { font-size: 1.5rem; margin-bottom: 0.2rem; } h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.85rem; margin: 0.5rem 0; }
th, td { padding: 0.2rem 0.6rem; border-bottom: 1px solid #eee; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.plots { display: flex; flex-wrap: wrap; gap: 1rem; }
.plot svg, .plot img { width: 520px; height: auto; border: 1px solid #eee; }
.muted { color: #777; font-size: 0.85rem; }
progress { width: 20rem; }
"#;

fn head(out: &mut String, title: &str, refresh_seconds: u32) {
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title>",
        escape_html(title)
    );
    if refresh_seconds > 0 {
        let _ = write!(out, "<noscript><meta http-equiv=\"refresh\" content=\"{refresh_seconds}\"></noscript>");
    }
    let _ = write!(out, "<style>{STYLE}</style></head><body>");
}

fn live_rows(out: &mut String, live: &LiveSnapshot) {
    for s in &live.series {
        let c = s.cache.unwrap_or_default();
        let evictions: u64 = s.evictions.iter().map(|e| e.count).sum();
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.4}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape_html(&s.labels.display_name()),
            fmt_count(c.requests),
            fmt_count(c.hits),
            c.hit_ratio(),
            fmt_bytes(c.missed_bytes),
            fmt_count(evictions),
            fmt_bytes(c.resident_bytes),
        );
    }
}

/// The live section's plots (inline SVG, drawn by the caller).
#[derive(Debug, Clone, Default)]
pub struct LivePlots {
    /// `(kind, svg)` in display order.
    pub svgs: Vec<(PlotKind, String)>,
}

/// What the index page shows.
#[derive(Debug, Clone)]
pub struct IndexPage<'a> {
    /// Page title.
    pub title: &'a str,
    /// Seconds between refreshes (0: none).
    pub refresh_seconds: u32,
    /// The live run, when this server has one.
    pub live: Option<(&'a LiveSnapshot, &'a LivePlots)>,
    /// Past runs, when this server has a results directory (newest first).
    pub runs: Option<&'a [RunEntry]>,
    /// The newest run, parsed, with the plot kinds it has data for.
    pub latest: Option<(&'a str, &'a ResultsFile, Vec<PlotKind>)>,
}

/// Renders the index page.
pub fn index(page: &IndexPage<'_>) -> String {
    let mut out = String::with_capacity(64 * 1024);
    head(&mut out, page.title, page.refresh_seconds);
    let _ = write!(out, "<h1>{}</h1>", escape_html(page.title));
    let _ = write!(
        out,
        "<p class=\"muted\">Metrics for Prometheus at <a href=\"/metrics\">/metrics</a>; \
         JSON at <a href=\"/api/live\">/api/live</a> and <a href=\"/api/runs\">/api/runs</a>.</p>"
    );
    if let Some((live, plots)) = page.live {
        let p = live.progress;
        let _ = write!(
            out,
            "<section id=\"live\"><h2>Run in progress</h2>\
             <p>Progress: <span id=\"progress-done\">{}</span> of <span id=\"progress-total\">{}</span> requests \
             (<span id=\"progress-pct\">{:.1}%</span>) <progress id=\"progress-bar\" max=\"1\" value=\"{:.4}\"></progress></p>\
             <p class=\"muted\">Updated <span id=\"live-updated\" data-source=\"server\" data-unix-ms=\"{}\">when the page was rendered</span>; \
             {} label sets (limit {}), {} folded into <code>other</code>.</p>\
             <table id=\"live-series\"><thead><tr><th>series</th><th>requests</th><th>hits</th><th>hit ratio</th>\
             <th>missed bytes</th><th>evictions</th><th>resident</th></tr></thead><tbody id=\"live-rows\">",
            fmt_count(p.done_requests),
            fmt_count(p.total_requests),
            p.fraction() * 100.0,
            p.fraction(),
            live.unix_ms,
            live.label_sets,
            live.label_set_limit,
            live.folded_label_sets,
        );
        live_rows(&mut out, live);
        out.push_str("</tbody></table><div class=\"plots\">");
        for (kind, svg) in &plots.svgs {
            let _ = write!(out, "<div class=\"plot\" id=\"plot-live-{}\">{svg}</div>", kind.as_str());
        }
        out.push_str("</div></section>");
        let _ = write!(out, "<script>{}</script>", live_script(page.refresh_seconds.max(1)));
    }
    if let Some(runs) = page.runs {
        out.push_str("<section id=\"past\"><h2>Past runs</h2>");
        if let Some((name, results, kinds)) = &page.latest {
            let _ = write!(out, "<h3>Newest: <a href=\"/runs/{}\">{}</a></h3>", url_name(name), escape_html(name));
            run_summary(&mut out, name, results, kinds);
        }
        if runs.is_empty() {
            out.push_str("<p class=\"muted\">No results files yet.</p>");
        } else {
            out.push_str("<table id=\"runs\"><thead><tr><th>run</th><th>size</th><th>JSON</th></tr></thead><tbody>");
            for r in runs.iter().take(500) {
                let _ = write!(
                    out,
                    "<tr><td><a href=\"/runs/{u}\">{n}</a></td><td>{}</td><td><a href=\"/api/runs/{u}\">json</a></td></tr>",
                    fmt_bytes(r.bytes),
                    u = url_name(&r.name),
                    n = escape_html(&r.name),
                );
            }
            out.push_str("</tbody></table>");
        }
        out.push_str("</section>");
    }
    out.push_str("</body></html>\n");
    out
}

fn run_summary(out: &mut String, name: &str, results: &ResultsFile, kinds: &[PlotKind]) {
    let trace = results.trace_name();
    if !trace.is_empty() {
        let _ = write!(out, "<p class=\"muted\">Trace: {}</p>", escape_html(&trace));
    }
    out.push_str(
        "<table class=\"run-table\"><thead><tr><th>policy</th><th>size</th><th>capacity</th><th>requests</th>\
         <th>miss ratio</th><th>byte miss ratio</th><th>evictions</th></tr></thead><tbody>",
    );
    for r in results.runs.iter().take(2000) {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.4}</td><td>{:.4}</td><td>{}</td></tr>",
            escape_html(&r.policy),
            escape_html(&r.size),
            fmt_count(r.capacity),
            fmt_count(r.requests),
            r.miss_ratio(),
            r.byte_miss_ratio(),
            fmt_count(r.evictions),
        );
    }
    out.push_str("</tbody></table><div class=\"plots\">");
    for k in kinds {
        let _ = write!(
            out,
            "<div class=\"plot\"><img alt=\"{k} of {n}\" src=\"/plot/{u}/{k}.svg\"></div>",
            k = k.as_str(),
            n = escape_html(name),
            u = url_name(name),
        );
    }
    out.push_str("</div>");
}

/// Renders the page of one past run.
pub fn run_page(title: &str, name: &str, results: &ResultsFile, kinds: &[PlotKind]) -> String {
    let mut out = String::with_capacity(32 * 1024);
    head(&mut out, &format!("{name} — {title}"), 0);
    let _ = write!(
        out,
        "<p><a href=\"/\">&larr; {}</a></p><h1>{}</h1><p class=\"muted\"><a href=\"/api/runs/{}\">results JSON</a></p>",
        escape_html(title),
        escape_html(name),
        url_name(name)
    );
    run_summary(&mut out, name, results, kinds);
    out.push_str("</body></html>\n");
    out
}

fn live_script(refresh_seconds: u32) -> String {
    // Kept small and dependency-free; it only sets textContent, and SVG that
    // this server drew.
    format!(
        r#"(function () {{
  var every = {ms};
  var kinds = {kinds};
  function byId(id) {{ return document.getElementById(id); }}
  function num(n) {{ return Number(n).toLocaleString("en-US"); }}
  function bytes(n) {{
    var u = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"], i = 0, x = Number(n);
    while (x >= 1024 && i < u.length - 1) {{ x /= 1024; i++; }}
    return i === 0 ? n + " B" : x.toFixed(1) + " " + u[i];
  }}
  function name(l) {{
    var parts = [l.cache, l.policy, l.tier, l.workload, l.run].filter(function (v) {{ return v; }});
    return parts.length ? parts.join(" / ") : "(no labels)";
  }}
  async function tick() {{
    var upd = byId("live-updated");
    try {{
      var r = await fetch("/api/live", {{ cache: "no-store" }});
      if (!r.ok) throw new Error("HTTP " + r.status);
      var s = await r.json();
      var p = s.progress, f = p.total_requests ? Math.min(1, p.done_requests / p.total_requests) : 0;
      byId("progress-done").textContent = num(p.done_requests);
      byId("progress-total").textContent = num(p.total_requests);
      byId("progress-pct").textContent = (f * 100).toFixed(1) + "%";
      byId("progress-bar").value = f;
      var body = byId("live-rows");
      while (body.firstChild) body.removeChild(body.firstChild);
      s.series.forEach(function (x) {{
        var c = x.cache || {{ requests: 0, hits: 0, missed_bytes: 0, resident_bytes: 0 }};
        var ev = x.evictions.reduce(function (a, e) {{ return a + e.count; }}, 0);
        var cells = [name(x.labels), num(c.requests), num(c.hits),
          (c.requests ? c.hits / c.requests : 0).toFixed(4), bytes(c.missed_bytes), num(ev), bytes(c.resident_bytes)];
        var tr = document.createElement("tr");
        cells.forEach(function (v) {{ var td = document.createElement("td"); td.textContent = v; tr.appendChild(td); }});
        body.appendChild(tr);
      }});
      for (var i = 0; i < kinds.length; i++) {{
        var box = byId("plot-live-" + kinds[i]);
        if (!box) continue;
        var pr = await fetch("/live/plot/" + kinds[i] + ".svg", {{ cache: "no-store" }});
        if (pr.ok) box.innerHTML = await pr.text();
      }}
      upd.textContent = "live at " + new Date(s.unix_ms).toISOString();
      upd.setAttribute("data-source", "script");
      upd.setAttribute("data-unix-ms", String(s.unix_ms));
      upd.removeAttribute("data-error");
    }} catch (e) {{
      upd.setAttribute("data-error", String(e));
    }}
    setTimeout(tick, every);
  }}
  tick();
}})();"#,
        ms = u64::from(refresh_seconds) * 1000,
        kinds = live_kinds_json(),
    )
}

fn live_kinds_json() -> String {
    let names: Vec<String> = PlotKind::LIVE.iter().map(|k| format!("\"{}\"", k.as_str())).collect();
    format!("[{}]", names.join(","))
}

/// Which live plots the page shows: hit rate always, latency when observed.
pub fn live_plot_kinds(live: &LiveSnapshot) -> Vec<PlotKind> {
    let mut kinds = vec![PlotKind::HitRate];
    if live.series.iter().any(|s| s.latency.iter().any(|l| l.count > 0 && LatencyKind::ALL.contains(&l.kind))) {
        kinds.push(PlotKind::Latency);
    }
    kinds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_and_numbers() {
        assert_eq!(escape_html("<a href='x'>&\"</a>"), "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;");
        assert_eq!(fmt_count(1234567), "1,234,567");
        assert_eq!(fmt_count(12), "12");
        assert_eq!(fmt_bytes(3 << 20), "3.0 MiB");
        assert_eq!(url_name("lru@1%"), "lru@1%25");
    }

    #[test]
    fn labels_cannot_inject_markup() {
        let live = crate::LiveMetrics::new();
        live.publish_cache(&crate::Labels::new("<script>alert(1)</script>", "lru"), &Default::default());
        let snap = live.snapshot(false);
        let html = index(&IndexPage {
            title: "t",
            refresh_seconds: 2,
            live: Some((&snap, &LivePlots::default())),
            runs: None,
            latest: None,
        });
        assert!(!html.contains("<script>alert"));
        assert!(html.contains("&lt;script&gt;alert(1)"));
    }
}
