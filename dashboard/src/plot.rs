//! Plots of results files and of the live run, drawn with plotters.
//!
//! SVG for the web page and for files, PNG files where a raster is needed
//! (reports, chat). The text is laid out (and, in PNGs, rasterized) with
//! DejaVu Sans compiled into the binary (`assets/fonts`, Bitstream Vera
//! licence), so plotting needs no system fonts. SVG text names the family
//! `DejaVu Sans, sans-serif`: the web page serves the same font file, other
//! viewers fall back to their sans-serif.
//!
//! | kind | from | x | y |
//! |---|---|---|---|
//! | `miss_ratio` | results | capacity (log) | miss ratio, one line per policy |
//! | `byte_miss_ratio` | results | capacity (log) | byte miss ratio |
//! | `evictions` | results | capacity (log) | evictions, one line per policy |
//! | `latency` | results, live | latency (log) | fraction of operations at or below it (CDF) |
//! | `hit_rate` | live | trace position | hit rate between snapshots, one line per series |

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::coord::ranged1d::{AsRangedCoord, Ranged, ValueFormatter};
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::live::{LatencyKind, LiveSnapshot};
use crate::results::ResultsFile;
use crate::{Error, Result};

/// DejaVu Sans (Bitstream Vera licence, see `assets/fonts`).
pub const FONT_TTF: &[u8] = include_bytes!("../assets/fonts/DejaVuSans.ttf");

/// The family name SVG text asks for.
pub const SVG_FONT_FAMILY: &str = "DejaVu Sans, sans-serif";

const WIDTH: u32 = 800;
const HEIGHT: u32 = 480;
/// Most lines in one plot (the rest are left out, and the caption says so).
const MAX_LINES: usize = 12;

const COLORS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// What to plot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PlotKind {
    /// Miss ratio vs capacity, per policy.
    MissRatio,
    /// Byte miss ratio vs capacity, per policy.
    ByteMissRatio,
    /// Evictions vs capacity, per policy.
    Evictions,
    /// Latency distributions (CDF).
    Latency,
    /// Hit rate over the trace (live runs).
    HitRate,
}

impl PlotKind {
    /// Kinds drawn from a results file.
    pub const RESULTS: [PlotKind; 4] =
        [PlotKind::MissRatio, PlotKind::ByteMissRatio, PlotKind::Evictions, PlotKind::Latency];
    /// Kinds drawn from the live run.
    pub const LIVE: [PlotKind; 2] = [PlotKind::HitRate, PlotKind::Latency];

    /// The file and URL name (`miss_ratio`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            PlotKind::MissRatio => "miss_ratio",
            PlotKind::ByteMissRatio => "byte_miss_ratio",
            PlotKind::Evictions => "evictions",
            PlotKind::Latency => "latency",
            PlotKind::HitRate => "hit_rate",
        }
    }

    /// Parses [`as_str`](Self::as_str) names.
    pub fn parse(name: &str) -> Option<Self> {
        [PlotKind::MissRatio, PlotKind::ByteMissRatio, PlotKind::Evictions, PlotKind::Latency, PlotKind::HitRate]
            .into_iter()
            .find(|k| k.as_str() == name)
    }
}

/// A line chart before drawing: what every plot here is.
#[derive(Debug, Clone)]
struct Chart {
    kind: PlotKind,
    title: String,
    x_label: &'static str,
    y_label: &'static str,
    x_log: bool,
    x_bytes: bool,
    y_unit_interval: bool,
    lines: Vec<Line>,
    note: Option<String>,
}

#[derive(Debug, Clone)]
struct Line {
    name: String,
    points: Vec<(f64, f64)>,
    dashed: bool,
}

impl Chart {
    fn has_data(&self) -> bool {
        self.lines.iter().any(|l| !l.points.is_empty())
    }
}

fn ensure_font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok =
        *REGISTERED.get_or_init(|| plotters::style::register_font("sans-serif", FontStyle::Normal, FONT_TTF).is_ok());
    if ok { Ok(()) } else { Err(Error::plot("font", "the embedded font could not be loaded")) }
}

fn limit_lines(lines: &mut Vec<Line>) -> Option<String> {
    if lines.len() > MAX_LINES {
        let dropped = lines.len() - MAX_LINES;
        lines.truncate(MAX_LINES);
        Some(format!("{dropped} more not shown"))
    } else {
        None
    }
}

fn results_chart(kind: PlotKind, results: &ResultsFile) -> Chart {
    let objects = results.runs.iter().all(|r| r.objects) && !results.runs.is_empty();
    let trace = results.trace_name();
    let suffix = if trace.is_empty() { String::new() } else { format!(" — {trace}") };
    let mut lines: Vec<Line> = Vec::new();
    let (title, y_label, y_unit) = match kind {
        PlotKind::MissRatio => ("Miss ratio", "miss ratio", true),
        PlotKind::ByteMissRatio => ("Byte miss ratio", "byte miss ratio", true),
        PlotKind::Evictions => ("Evictions", "evictions", false),
        PlotKind::Latency => return latency_chart_results(results, &suffix),
        PlotKind::HitRate => ("Hit rate over the trace", "hit rate", true),
    };
    if kind != PlotKind::HitRate {
        for policy in results.policies() {
            let mut pts: Vec<(f64, f64)> = results
                .runs
                .iter()
                .filter(|r| r.policy == policy && r.capacity > 0)
                .map(|r| {
                    let y = match kind {
                        PlotKind::MissRatio => r.miss_ratio(),
                        PlotKind::ByteMissRatio => r.byte_miss_ratio(),
                        _ => r.evictions as f64,
                    };
                    (r.capacity as f64, y)
                })
                .collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            lines.push(Line { name: policy, points: pts, dashed: false });
        }
        if kind != PlotKind::Evictions {
            for (name, pts) in results.extra_curves() {
                let mut pts: Vec<(f64, f64)> = pts
                    .iter()
                    .map(|p| {
                        let y = if kind == PlotKind::MissRatio { p.miss_ratio } else { p.byte_miss_ratio };
                        (p.capacity as f64, y)
                    })
                    .collect();
                pts.sort_by(|a, b| a.0.total_cmp(&b.0));
                lines.push(Line { name, points: pts, dashed: true });
            }
        }
    }
    let note = limit_lines(&mut lines);
    Chart {
        kind,
        title: format!("{title}{suffix}"),
        x_label: if objects { "capacity (objects)" } else { "capacity (bytes)" },
        y_label,
        x_log: true,
        x_bytes: !objects,
        y_unit_interval: y_unit,
        lines,
        note,
    }
}

/// CDF points from cumulative buckets `(le, cumulative)`.
fn cdf(buckets: &[(f64, u64)], count: u64) -> Vec<(f64, f64)> {
    if count == 0 {
        return Vec::new();
    }
    buckets
        .iter()
        .filter(|(le, _)| le.is_finite() && *le > 0.0)
        .map(|(le, c)| (*le, *c as f64 / count as f64))
        .collect()
}

fn latency_chart_results(results: &ResultsFile, suffix: &str) -> Chart {
    let mut lines = Vec::new();
    for r in &results.runs {
        for (kind, h) in &r.latency {
            let pts = cdf(&h.buckets, h.count);
            if !pts.is_empty() {
                lines.push(Line { name: format!("{} {kind}", r.name()), points: pts, dashed: false });
            }
        }
    }
    let note = limit_lines(&mut lines);
    latency_chart(format!("Latency{suffix}"), lines, note)
}

fn latency_chart(title: String, lines: Vec<Line>, note: Option<String>) -> Chart {
    Chart {
        kind: PlotKind::Latency,
        title,
        x_label: "latency (seconds)",
        y_label: "fraction at or below",
        x_log: true,
        x_bytes: false,
        y_unit_interval: true,
        lines,
        note,
    }
}

fn live_chart(kind: PlotKind, live: &LiveSnapshot) -> Result<Chart> {
    match kind {
        PlotKind::HitRate => {
            let mut lines: Vec<Line> = live
                .series
                .iter()
                .filter(|s| s.history.len() >= 2)
                .map(|s| {
                    let pts = s
                        .history
                        .windows(2)
                        .filter(|w| w[1].requests > w[0].requests)
                        .map(|w| {
                            let dh = w[1].hits.saturating_sub(w[0].hits) as f64;
                            let dr = (w[1].requests - w[0].requests) as f64;
                            (w[1].position as f64, dh / dr)
                        })
                        .collect();
                    Line { name: s.labels.display_name(), points: pts, dashed: false }
                })
                .collect();
            let note = limit_lines(&mut lines);
            Ok(Chart {
                kind,
                title: "Hit rate over the trace (live)".into(),
                x_label: "trace position (requests)",
                y_label: "hit rate since previous snapshot",
                x_log: false,
                x_bytes: false,
                y_unit_interval: true,
                lines,
                note,
            })
        }
        PlotKind::Latency => {
            let mut lines = Vec::new();
            for s in &live.series {
                for l in &s.latency {
                    let buckets: Vec<(f64, u64)> =
                        l.buckets.iter().map(|b| (b.le_seconds, b.cumulative_count)).collect();
                    let pts = cdf(&buckets, l.count);
                    if !pts.is_empty() {
                        lines.push(Line {
                            name: format!("{} {}", s.labels.display_name(), l.kind.as_str()),
                            points: pts,
                            dashed: l.kind != LatencyKind::Dispatch,
                        });
                    }
                }
            }
            let note = limit_lines(&mut lines);
            Ok(latency_chart("Latency (live)".into(), lines, note))
        }
        other => Err(Error::plot(other.as_str(), "not drawn for the live run (try hit_rate or latency)")),
    }
}

fn human_bytes(v: f64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut x = v;
    let mut u = 0;
    while x >= 1024.0 && u < UNITS.len() - 1 {
        x /= 1024.0;
        u += 1;
    }
    if x >= 100.0 || (x - x.round()).abs() < 1e-9 {
        format!("{x:.0}{}", UNITS[u])
    } else {
        format!("{x:.1}{}", UNITS[u])
    }
}

fn human_number(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if a >= 1e9 {
        format!("{:.1}G", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 1.0 {
        format!("{v:.0}")
    } else if a >= 1e-3 {
        format!("{v:.3}")
    } else {
        format!("{v:.0e}")
    }
}

fn axis_label(chart: &Chart, v: f64) -> String {
    if chart.x_bytes {
        human_bytes(v)
    } else if chart.kind == PlotKind::Latency {
        if v >= 1.0 {
            format!("{v}s")
        } else if v >= 1e-3 {
            format!("{}ms", (v * 1e3 * 100.0).round() / 100.0)
        } else {
            format!("{}us", (v * 1e6 * 100.0).round() / 100.0)
        }
    } else {
        human_number(v)
    }
}

fn bounds(chart: &Chart) -> ((f64, f64), (f64, f64)) {
    let pts = chart.lines.iter().flat_map(|l| l.points.iter()).filter(|p| p.0.is_finite() && p.1.is_finite());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
    for &(x, y) in pts {
        if chart.x_log && x <= 0.0 {
            continue;
        }
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if !x0.is_finite() {
        (x0, x1) = if chart.x_log { (1.0, 10.0) } else { (0.0, 1.0) };
    }
    if x1 <= x0 {
        (x0, x1) = if chart.x_log { (x0 / 2.0, x1 * 2.0) } else { (x0 - 1.0, x1 + 1.0) };
    }
    if chart.y_unit_interval {
        (y0, y1) = (0.0, 1.0);
    } else {
        if !y0.is_finite() {
            (y0, y1) = (0.0, 1.0);
        }
        y0 = y0.min(0.0);
        if y1 <= y0 {
            y1 = y0 + 1.0;
        }
        y1 *= 1.05;
    }
    ((x0, x1), (y0, y1))
}

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, chart: &Chart) -> Result<()> {
    let err = |e: &dyn std::fmt::Display| Error::plot(chart.kind.as_str(), e.to_string());
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let ((x0, x1), (y0, y1)) = bounds(chart);
    if chart.x_log {
        draw_with(root, chart, (x0..x1).log_scale().base(if chart.x_bytes { 2.0 } else { 10.0 }), y0..y1)
    } else {
        draw_with(root, chart, x0..x1, y0..y1)
    }
}

fn draw_with<DB, X>(root: &DrawingArea<DB, Shift>, chart: &Chart, x: X, y: std::ops::Range<f64>) -> Result<()>
where
    DB: DrawingBackend,
    X: AsRangedCoord<Value = f64>,
    X::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let err = |e: &dyn std::fmt::Display| Error::plot(chart.kind.as_str(), e.to_string());
    let mut cc = ChartBuilder::on(root)
        .caption(&chart.title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(x, y)
        .map_err(|e| err(&e))?;
    let fmt_x = |v: &f64| axis_label(chart, *v);
    let fmt_y = |v: &f64| if chart.y_unit_interval { format!("{v:.2}") } else { human_number(*v) };
    cc.configure_mesh()
        .x_desc(chart.x_label)
        .y_desc(chart.y_label)
        .x_labels(10)
        .max_light_lines(4)
        .x_label_formatter(&fmt_x)
        .y_label_formatter(&fmt_y)
        .label_style(("sans-serif", 13))
        .axis_desc_style(("sans-serif", 14))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(|e| err(&e))?;
    for (i, line) in chart.lines.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let pts: Vec<(f64, f64)> = line
            .points
            .iter()
            .copied()
            .filter(|p| p.0.is_finite() && p.1.is_finite() && (!chart.x_log || p.0 > 0.0))
            .collect();
        let style = color.stroke_width(2);
        let series = if line.dashed {
            cc.draw_series(DashedLineSeries::new(pts.clone(), 6, 4, style)).map_err(|e| err(&e))?
        } else {
            cc.draw_series(LineSeries::new(pts.clone(), style)).map_err(|e| err(&e))?
        };
        series
            .label(line.name.clone())
            .legend(move |(lx, ly)| PathElement::new(vec![(lx, ly), (lx + 18, ly)], color.stroke_width(2)));
        if pts.len() <= 40 {
            cc.draw_series(pts.iter().map(|p| Circle::new(*p, 3, color.filled()))).map_err(|e| err(&e))?;
        }
    }
    if chart.has_data() {
        cc.configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(200, 200, 200))
            .label_font(("sans-serif", 13))
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(|e| err(&e))?;
    } else {
        root.draw(&Text::new("no data yet", (WIDTH as i32 / 2 - 40, HEIGHT as i32 / 2), ("sans-serif", 16)))
            .map_err(|e| err(&e))?;
    }
    if let Some(note) = &chart.note {
        root.draw(&Text::new(note.clone(), (80, HEIGHT as i32 - 16), ("sans-serif", 12))).map_err(|e| err(&e))?;
    }
    Ok(())
}

fn to_svg(chart: &Chart) -> Result<String> {
    ensure_font()?;
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (WIDTH, HEIGHT)).into_drawing_area();
        draw(&root, chart)?;
        root.present().map_err(|e| Error::plot(chart.kind.as_str(), e.to_string()))?;
    }
    Ok(out.replace("font-family=\"sans-serif\"", &format!("font-family=\"{SVG_FONT_FAMILY}\"")))
}

fn to_png(chart: &Chart, path: &Path) -> Result<()> {
    ensure_font()?;
    let root = BitMapBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    draw(&root, chart)?;
    root.present().map_err(|e| Error::plot(chart.kind.as_str(), format!("`{}`: {e}", path.display())))
}

/// The kinds [`results_svg`] can draw for these results (cheap: nothing is
/// drawn).
pub fn results_kinds(results: &ResultsFile) -> Vec<PlotKind> {
    PlotKind::RESULTS.into_iter().filter(|k| results_chart(*k, results).has_data()).collect()
}

/// One plot of a results file as SVG text.
///
/// # Errors
/// [`Error::Plot`] when the file has no data for `kind` (for example no
/// latency histograms) or drawing fails.
pub fn results_svg(kind: PlotKind, results: &ResultsFile) -> Result<String> {
    let chart = results_chart(kind, results);
    if !chart.has_data() {
        return Err(Error::plot(kind.as_str(), "these results have no data for it"));
    }
    to_svg(&chart)
}

/// One plot of the live run as SVG text (`hit_rate` or `latency`); before
/// any data arrives it is an empty chart that says so. The snapshot must be
/// taken with history for `hit_rate`.
///
/// # Errors
/// [`Error::Plot`] for kinds not drawn live, or when drawing fails.
pub fn live_svg(kind: PlotKind, live: &LiveSnapshot) -> Result<String> {
    to_svg(&live_chart(kind, live)?)
}

/// Writes every plot that has data, as `<kind>.svg` and `<kind>.png`, into
/// `out_dir` (created if missing); returns the files written.
///
/// # Errors
/// [`Error::Io`] when the directory cannot be created or a file written;
/// [`Error::Plot`] when drawing fails or nothing at all can be drawn.
pub fn write_plots(results: &ResultsFile, out_dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
    let mut written = Vec::new();
    for kind in PlotKind::RESULTS {
        let chart = results_chart(kind, results);
        if !chart.has_data() {
            continue;
        }
        let svg_path = out_dir.join(format!("{}.svg", kind.as_str()));
        std::fs::write(&svg_path, to_svg(&chart)?).map_err(|e| Error::io(&svg_path, e))?;
        written.push(svg_path);
        let png_path = out_dir.join(format!("{}.png", kind.as_str()));
        to_png(&chart, &png_path)?;
        written.push(png_path);
    }
    if written.is_empty() {
        return Err(Error::plot("all", "the results have no runs to plot"));
    }
    Ok(written)
}

/// As [`write_plots`], from a results file as parsed JSON.
///
/// # Errors
/// [`Error::Results`] when the value is not a results file, else as
/// [`write_plots`].
pub fn write_plots_json(results: &serde_json::Value, out_dir: &Path) -> Result<Vec<PathBuf>> {
    write_plots(&ResultsFile::from_value(results)?, out_dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{LatencyRecord, RunRecord};

    fn sample() -> ResultsFile {
        let mut runs = Vec::new();
        for (pi, policy) in ["lru", "s3fifo"].into_iter().enumerate() {
            for (i, cap) in [1u64 << 20, 4 << 20, 16 << 20].into_iter().enumerate() {
                let misses = 1000 - 200 * i as u64 - 50 * pi as u64;
                let mut latency = std::collections::BTreeMap::new();
                latency.insert(
                    "dispatch".to_string(),
                    LatencyRecord { count: 10, sum_seconds: 0.01, buckets: vec![(1e-4, 2), (1e-3, 8), (1e-2, 10)] },
                );
                runs.push(RunRecord {
                    policy: policy.into(),
                    capacity: cap,
                    size: format!("{}MiB", cap >> 20),
                    requests: 2000,
                    hits: 2000 - misses,
                    misses,
                    requested_bytes: 2000 * 4096,
                    missed_bytes: misses * 4096,
                    evictions: misses / 2,
                    latency,
                    ..RunRecord::default()
                });
            }
        }
        ResultsFile { runs, trace: serde_json::json!({"name": "zipf-1.0"}), ..ResultsFile::default() }
    }

    #[test]
    fn svgs_have_lines_and_text() {
        let r = sample();
        for kind in PlotKind::RESULTS {
            let svg = results_svg(kind, &r).unwrap();
            assert!(svg.starts_with("<svg"), "{kind:?}");
            assert!(svg.contains("<text") && svg.contains("s3fifo") && svg.contains("zipf-1.0"), "{kind:?}");
            assert!(svg.contains("<polyline") || svg.contains("<path"), "{kind:?} draws lines");
            assert!(svg.contains(SVG_FONT_FAMILY));
        }
        assert!(results_svg(PlotKind::MissRatio, &r).unwrap().contains("MiB"), "byte axis labels");
        assert_eq!(results_kinds(&r), PlotKind::RESULTS);
        assert!(results_kinds(&ResultsFile::default()).is_empty());
    }

    #[test]
    fn files_are_written_and_empty_results_are_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let files = write_plots(&sample(), dir.path()).unwrap();
        assert_eq!(files.len(), 8);
        for f in &files {
            let bytes = std::fs::read(f).unwrap();
            assert!(bytes.len() > 1000, "{}", f.display());
            if f.extension().is_some_and(|e| e == "png") {
                assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
            }
        }
        let err = write_plots(&ResultsFile::default(), dir.path()).unwrap_err();
        assert!(err.to_string().contains("no runs"), "{err}");
        assert!(results_svg(PlotKind::Latency, &ResultsFile::default()).is_err());
    }

    #[test]
    fn live_plots_render_before_and_after_data() {
        use crate::live::{Labels, LiveMetrics};
        use cachescope_core::stats::CacheStats;
        let live = LiveMetrics::new();
        let empty = live_svg(PlotKind::HitRate, &live.snapshot(true)).unwrap();
        assert!(empty.contains("no data yet"));
        let l = Labels::new("sim", "lru").with_run("lru@1%");
        let mut s = CacheStats::default();
        for i in 0..10u64 {
            for j in 0..100u64 {
                s.record_request(1, (i * j) % 3 == 0);
            }
            live.publish_cache(&l, &s);
        }
        live.observe_latency_seconds(&l, LatencyKind::Dispatch, 0.001, Some(3));
        let svg = live_svg(PlotKind::HitRate, &live.snapshot(true)).unwrap();
        assert!(svg.contains("lru@1%") && !svg.contains("no data yet"));
        assert!(live_svg(PlotKind::Latency, &live.snapshot(false)).unwrap().contains("dispatch"));
        assert!(live_svg(PlotKind::MissRatio, &live.snapshot(false)).is_err());
    }
}
