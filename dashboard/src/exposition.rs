//! The `/metrics` exposition: a prometheus-client [`Collector`] that encodes
//! the latest published snapshots, and the conversion of the OpenMetrics text
//! it produces into the Prometheus text format 0.0.4.
//!
//! One source of truth, two formats. prometheus-client writes OpenMetrics
//! 1.0 (what Prometheus asks for first, and the only one with exemplars);
//! older scrapers and `promtool check metrics` read the 0.0.4 format, which
//! differs in three ways for the metrics here: counters are declared under
//! their `_total` name, there is no `# UNIT` or `# EOF`, and samples carry
//! no exemplars. [`openmetrics_to_prometheus_text`] applies exactly those
//! three changes.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Unit;

use crate::live::{ExportView, Labels, Shared, TunerDecision};

/// Every metric family the exporter can emit: (name as exposed, type, help).
/// Documentation and tests read this table; the collector below emits the
/// same names.
pub const METRIC_NAMES: &[(&str, &str, &str)] = &[
    ("cachescope_requests_total", "counter", "Requests (lookups) seen"),
    ("cachescope_hits_total", "counter", "Requests that found their key resident"),
    ("cachescope_misses_total", "counter", "Requests that did not"),
    ("cachescope_requested_bytes_total", "counter", "Bytes asked for by all requests"),
    ("cachescope_missed_bytes_total", "counter", "Bytes of the requests that missed"),
    ("cachescope_insertions_total", "counter", "New entries stored"),
    ("cachescope_rejections_total", "counter", "Misses not stored (admission refused or too large)"),
    ("cachescope_evictions_total", "counter", "Entries that left the cache, by reason"),
    ("cachescope_evicted_bytes_total", "counter", "Bytes of the entries that left, by reason"),
    ("cachescope_resident_bytes", "gauge", "Bytes resident now (per tier for tiered caches)"),
    ("cachescope_resident_entries", "gauge", "Entries resident now (per tier for tiered caches)"),
    ("cachescope_gpu_uploads_total", "counter", "Host-to-device copies"),
    ("cachescope_gpu_upload_bytes_total", "counter", "Bytes copied host to device"),
    ("cachescope_gpu_upload_seconds_total", "counter", "Seconds spent copying host to device"),
    ("cachescope_gpu_readbacks_total", "counter", "Device-to-host copies"),
    ("cachescope_gpu_readback_bytes_total", "counter", "Bytes copied device to host"),
    ("cachescope_gpu_readback_seconds_total", "counter", "Seconds spent copying device to host"),
    ("cachescope_pipeline_compiles_total", "counter", "Pipelines compiled"),
    ("cachescope_pipeline_compile_seconds_total", "counter", "Seconds spent compiling pipelines"),
    ("cachescope_tuner_decisions_total", "counter", "Workgroup-size tuner decisions, by decision"),
    ("cachescope_tuner_measurements_total", "counter", "Timer calls made by the tuner"),
    ("cachescope_latency_seconds", "histogram", "Latency of GPU operations by kind, with exemplars"),
    ("cachescope_harness_processed_requests_total", "counter", "Requests replayed by the harness, all runs"),
    ("cachescope_harness_planned_requests", "gauge", "Requests the harness plans to replay, all runs"),
    ("cachescope_harness_last_publish_timestamp_seconds", "gauge", "When the harness last published"),
    ("cachescope_exporter_label_sets", "gauge", "Label sets with series of their own"),
    ("cachescope_exporter_label_set_limit", "gauge", "Limit on label sets; the rest fold into other"),
    ("cachescope_exporter_folded_label_sets_total", "counter", "Label sets folded into other"),
    ("cachescope_exporter_dropped_snapshots_total", "counter", "Snapshots dropped (folded-set memory full)"),
];

fn help(name: &str) -> &'static str {
    METRIC_NAMES.iter().find(|(n, ..)| *n == name).map_or("", |(_, _, h)| h)
}

/// Encodes the snapshots held by [`Shared`] on every scrape.
#[derive(Debug)]
pub(crate) struct SnapshotCollector {
    shared: Arc<Shared>,
}

impl SnapshotCollector {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        SnapshotCollector { shared }
    }
}

/// One metric family: `base` is the name without unit and `_total` (the
/// encoder appends both); `exposed` the full name, for the help table.
fn family<S: EncodeLabelSet, M: EncodeMetric>(
    enc: &mut DescriptorEncoder,
    base: &str,
    exposed: &str,
    unit: Option<&Unit>,
    metric_type: MetricType,
    items: &[(S, M)],
) -> Result<(), std::fmt::Error> {
    if items.is_empty() {
        return Ok(());
    }
    let mut m = enc.encode_descriptor(base, help(exposed), unit, metric_type)?;
    for (labels, metric) in items {
        metric.encode(m.encode_family(labels)?)?;
    }
    Ok(())
}

/// A metric family of one label-less sample.
fn single<M: EncodeMetric>(
    enc: &mut DescriptorEncoder,
    base: &str,
    exposed: &str,
    unit: Option<&Unit>,
    metric_type: MetricType,
    metric: M,
) -> Result<(), std::fmt::Error> {
    metric.encode(enc.encode_descriptor(base, help(exposed), unit, metric_type)?)
}

type Pairs<'a> = [(&'static str, &'a str); 5];

/// Series labels plus one extra label (`reason`, `decision`).
type PairsAnd<'a> = (Pairs<'a>, [(&'static str, &'static str); 1]);

fn pairs(l: &Labels) -> Pairs<'_> {
    l.pairs()
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let view: ExportView = self.shared.export_view();
        let bytes = Unit::Bytes;
        let seconds = Unit::Seconds;
        let s = &view.series;

        // Cache counters.
        let cache_counter = |f: fn(&cachescope_core::stats::CacheStats) -> u64| -> Vec<(Pairs<'_>, ConstCounter)> {
            s.iter().filter_map(|v| v.cache.as_ref().map(|c| (pairs(&v.labels), ConstCounter::new(f(c))))).collect()
        };
        let counter = MetricType::Counter;
        let gauge = MetricType::Gauge;
        family(
            &mut enc,
            "cachescope_requests",
            "cachescope_requests_total",
            None,
            counter,
            &cache_counter(|c| c.requests),
        )?;
        family(&mut enc, "cachescope_hits", "cachescope_hits_total", None, counter, &cache_counter(|c| c.hits))?;
        family(&mut enc, "cachescope_misses", "cachescope_misses_total", None, counter, &cache_counter(|c| c.misses))?;
        family(
            &mut enc,
            "cachescope_requested",
            "cachescope_requested_bytes_total",
            Some(&bytes),
            counter,
            &cache_counter(|c| c.requested_bytes),
        )?;
        family(
            &mut enc,
            "cachescope_missed",
            "cachescope_missed_bytes_total",
            Some(&bytes),
            counter,
            &cache_counter(|c| c.missed_bytes),
        )?;
        family(
            &mut enc,
            "cachescope_insertions",
            "cachescope_insertions_total",
            None,
            counter,
            &cache_counter(|c| c.insertions),
        )?;
        family(
            &mut enc,
            "cachescope_rejections",
            "cachescope_rejections_total",
            None,
            counter,
            &cache_counter(|c| c.rejections),
        )?;

        // Evictions by reason.
        let reasons = ExportView::reasons();
        let evictions = |bytes_not_count: bool| -> Vec<(PairsAnd<'_>, ConstCounter)> {
            let mut out = Vec::new();
            for v in s {
                for (r, e) in reasons.iter().zip(v.evictions.iter()) {
                    if let Some((count, b)) = e {
                        let value = if bytes_not_count { *b } else { *count };
                        out.push(((pairs(&v.labels), [("reason", r.as_str())]), ConstCounter::new(value)));
                    }
                }
            }
            out
        };
        family(&mut enc, "cachescope_evictions", "cachescope_evictions_total", None, counter, &evictions(false))?;
        family(
            &mut enc,
            "cachescope_evicted",
            "cachescope_evicted_bytes_total",
            Some(&bytes),
            counter,
            &evictions(true),
        )?;

        // Residency gauges.
        let cache_gauge = |f: fn(&cachescope_core::stats::CacheStats) -> u64| -> Vec<(Pairs<'_>, ConstGauge<u64>)> {
            s.iter().filter_map(|v| v.cache.as_ref().map(|c| (pairs(&v.labels), ConstGauge::new(f(c))))).collect()
        };
        family(
            &mut enc,
            "cachescope_resident",
            "cachescope_resident_bytes",
            Some(&bytes),
            gauge,
            &cache_gauge(|c| c.resident_bytes),
        )?;
        family(
            &mut enc,
            "cachescope_resident_entries",
            "cachescope_resident_entries",
            None,
            gauge,
            &cache_gauge(|c| c.resident_entries),
        )?;

        // GPU traffic.
        let gpu_u = |f: fn(&crate::live::GpuTransfers) -> u64| -> Vec<(Pairs<'_>, ConstCounter)> {
            s.iter().filter_map(|v| v.gpu.as_ref().map(|g| (pairs(&v.labels), ConstCounter::new(f(g))))).collect()
        };
        let gpu_f = |f: fn(&crate::live::GpuTransfers) -> f64| -> Vec<(Pairs<'_>, ConstCounter<f64>)> {
            s.iter().filter_map(|v| v.gpu.as_ref().map(|g| (pairs(&v.labels), ConstCounter::new(f(g))))).collect()
        };
        family(
            &mut enc,
            "cachescope_gpu_uploads",
            "cachescope_gpu_uploads_total",
            None,
            counter,
            &gpu_u(|g| g.uploads),
        )?;
        family(
            &mut enc,
            "cachescope_gpu_upload",
            "cachescope_gpu_upload_bytes_total",
            Some(&bytes),
            counter,
            &gpu_u(|g| g.upload_bytes),
        )?;
        family(
            &mut enc,
            "cachescope_gpu_upload",
            "cachescope_gpu_upload_seconds_total",
            Some(&seconds),
            counter,
            &gpu_f(|g| g.upload_seconds),
        )?;
        family(
            &mut enc,
            "cachescope_gpu_readbacks",
            "cachescope_gpu_readbacks_total",
            None,
            counter,
            &gpu_u(|g| g.readbacks),
        )?;
        family(
            &mut enc,
            "cachescope_gpu_readback",
            "cachescope_gpu_readback_bytes_total",
            Some(&bytes),
            counter,
            &gpu_u(|g| g.readback_bytes),
        )?;
        family(
            &mut enc,
            "cachescope_gpu_readback",
            "cachescope_gpu_readback_seconds_total",
            Some(&seconds),
            counter,
            &gpu_f(|g| g.readback_seconds),
        )?;

        // Pipeline compiles.
        let compiles: Vec<_> =
            s.iter().filter_map(|v| v.compiles.map(|c| (pairs(&v.labels), ConstCounter::new(c.compiles)))).collect();
        let compile_s: Vec<_> = s
            .iter()
            .filter_map(|v| v.compiles.map(|c| (pairs(&v.labels), ConstCounter::new(c.compile_seconds))))
            .collect();
        family(
            &mut enc,
            "cachescope_pipeline_compiles",
            "cachescope_pipeline_compiles_total",
            None,
            counter,
            &compiles,
        )?;
        family(
            &mut enc,
            "cachescope_pipeline_compile",
            "cachescope_pipeline_compile_seconds_total",
            Some(&seconds),
            counter,
            &compile_s,
        )?;

        // Tuner.
        let mut decisions = Vec::new();
        let mut measurements = Vec::new();
        for v in s {
            if v.tuner.iter().all(|&n| n == 0) && v.tuner_measurements == 0 {
                continue;
            }
            for d in TunerDecision::ALL {
                decisions
                    .push(((pairs(&v.labels), [("decision", d.as_str())]), ConstCounter::new(v.tuner[d as usize])));
            }
            measurements.push((pairs(&v.labels), ConstCounter::new(v.tuner_measurements)));
        }
        family(&mut enc, "cachescope_tuner_decisions", "cachescope_tuner_decisions_total", None, counter, &decisions)?;
        family(
            &mut enc,
            "cachescope_tuner_measurements",
            "cachescope_tuner_measurements_total",
            None,
            counter,
            &measurements,
        )?;

        // Harness progress and the exporter itself (always present, so a
        // scrape of an idle server is never empty).
        single(
            &mut enc,
            "cachescope_harness_processed_requests",
            "cachescope_harness_processed_requests_total",
            None,
            counter,
            ConstCounter::new(view.progress.done_requests),
        )?;
        single(
            &mut enc,
            "cachescope_harness_planned_requests",
            "cachescope_harness_planned_requests",
            None,
            gauge,
            ConstGauge::new(view.progress.total_requests),
        )?;
        single(
            &mut enc,
            "cachescope_harness_last_publish_timestamp",
            "cachescope_harness_last_publish_timestamp_seconds",
            Some(&seconds),
            gauge,
            ConstGauge::new(view.last_publish_unix_ms as f64 / 1000.0),
        )?;
        single(
            &mut enc,
            "cachescope_exporter_label_sets",
            "cachescope_exporter_label_sets",
            None,
            gauge,
            ConstGauge::new(view.label_sets as u64),
        )?;
        single(
            &mut enc,
            "cachescope_exporter_label_set_limit",
            "cachescope_exporter_label_set_limit",
            None,
            gauge,
            ConstGauge::new(view.label_set_limit as u64),
        )?;
        single(
            &mut enc,
            "cachescope_exporter_folded_label_sets",
            "cachescope_exporter_folded_label_sets_total",
            None,
            counter,
            ConstCounter::new(view.folded_label_sets),
        )?;
        single(
            &mut enc,
            "cachescope_exporter_dropped_snapshots",
            "cachescope_exporter_dropped_snapshots_total",
            None,
            counter,
            ConstCounter::new(view.dropped_snapshots),
        )?;
        Ok(())
    }
}

/// Rewrites an OpenMetrics text exposition (as prometheus-client writes it)
/// into the Prometheus text format 0.0.4: counter families are declared
/// under their `_total` sample name, `# UNIT` and `# EOF` lines go, and
/// exemplars are cut from sample lines. Everything else is already the same
/// in both formats.
pub fn openmetrics_to_prometheus_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let mut pending_help: Option<&str> = None;
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            if let Some(h) = pending_help.take() {
                out.push_str(h);
                out.push('\n');
            }
            let _ = rest;
            pending_help = Some(line);
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.splitn(2, ' ');
            let name = parts.next().unwrap_or("");
            let ty = parts.next().unwrap_or("");
            let total = ty == "counter" && !name.ends_with("_total");
            if let Some(h) = pending_help.take() {
                if total {
                    let help_rest = h.strip_prefix("# HELP ").and_then(|r| r.strip_prefix(name)).unwrap_or("");
                    out.push_str(&format!("# HELP {name}_total{help_rest}\n"));
                } else {
                    out.push_str(h);
                    out.push('\n');
                }
            }
            if total {
                out.push_str(&format!("# TYPE {name}_total counter\n"));
            } else {
                out.push_str(line);
                out.push('\n');
            }
            continue;
        }
        if let Some(h) = pending_help.take() {
            out.push_str(h);
            out.push('\n');
        }
        out.push_str(strip_exemplar(line));
        out.push('\n');
    }
    if let Some(h) = pending_help {
        out.push_str(h);
        out.push('\n');
    }
    out
}

/// Cuts ` # {...} value [timestamp]` after a sample's value, minding quoted
/// label values (which may contain `#`, `{` and escaped quotes).
fn strip_exemplar(line: &str) -> &str {
    if line.starts_with('#') {
        return line;
    }
    let bytes = line.as_bytes();
    let mut i = 0;
    // The metric name ends at `{` or a space.
    while i < bytes.len() && bytes[i] != b'{' && bytes[i] != b' ' {
        i += 1;
    }
    if i < bytes.len() && bytes[i] == b'{' {
        let mut in_quotes = false;
        let mut escaped = false;
        i += 1;
        while i < bytes.len() {
            let b = bytes[i];
            if escaped {
                escaped = false;
            } else if in_quotes && b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_quotes = !in_quotes;
            } else if !in_quotes && b == b'}' {
                i += 1;
                break;
            }
            i += 1;
        }
    }
    match line[i..].find(" # ") {
        Some(at) => &line[..i + at],
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversion_renames_counters_and_cuts_exemplars() {
        let om = "# HELP x_requests Requests.\n# TYPE x_requests counter\nx_requests_total{a=\"q # {\\\"}\"} 3\n\
                  # HELP x_lat_seconds Latency.\n# TYPE x_lat_seconds histogram\n# UNIT x_lat_seconds seconds\n\
                  x_lat_seconds_bucket{le=\"0.1\"} 2 # {run=\"r\",trace_position=\"7\"} 0.05 1700000000.0\n\
                  x_lat_seconds_count 2\n# EOF\n";
        let text = openmetrics_to_prometheus_text(om);
        assert_eq!(
            text,
            "# HELP x_requests_total Requests.\n# TYPE x_requests_total counter\nx_requests_total{a=\"q # {\\\"}\"} 3\n\
             # HELP x_lat_seconds Latency.\n# TYPE x_lat_seconds histogram\n\
             x_lat_seconds_bucket{le=\"0.1\"} 2\nx_lat_seconds_count 2\n"
        );
    }

    #[test]
    fn exposition_names_match_the_table() {
        use crate::live::*;
        use cachescope_core::stats::{CacheStats, EvictionReason};
        let live = LiveMetrics::new();
        let l = Labels::new("sim", "lru").with_run("r\"1\n");
        live.publish_cache(&l, &CacheStats { requests: 3, hits: 1, misses: 2, ..CacheStats::default() });
        live.publish_evictions(&l, EvictionReason::Capacity, 4, 400);
        live.publish_gpu(
            &l,
            &GpuTransfers { uploads: 1, upload_bytes: 10, upload_seconds: 0.5, ..GpuTransfers::default() },
        );
        live.publish_compiles(&l, &PipelineCompiles { compiles: 2, compile_seconds: 0.25 });
        live.tuner_decision(&l, TunerDecision::Measured, 12);
        live.observe_latency_seconds(&l, LatencyKind::Dispatch, 0.002, Some(5));
        live.progress(3, 10);
        let text = live.encode_prometheus_text().unwrap();
        let declared: Vec<&str> =
            text.lines().filter_map(|l| l.strip_prefix("# TYPE ")).map(|r| r.split(' ').next().unwrap_or("")).collect();
        for (name, ty, _) in METRIC_NAMES {
            assert!(declared.contains(name), "{name} ({ty}) missing from:\n{text}");
            assert!(text.contains(&format!("# TYPE {name} {ty}\n")), "{name} is not a {ty}");
        }
        assert_eq!(declared.len(), METRIC_NAMES.len(), "{declared:?}");
        assert!(text.contains(r#"run="r\"1\n""#), "label values escaped: {text}");
        assert!(text.contains("cachescope_evictions_total{cache=\"sim\",policy=\"lru\",tier=\"\",workload=\"\",run=\"r\\\"1\\n\",reason=\"capacity\"} 4"));
        let om = live.encode_openmetrics().unwrap();
        assert!(om.contains("# TYPE cachescope_requests counter"));
        assert!(om.contains("# UNIT cachescope_latency_seconds seconds"));
    }
}
