//! # cachescope-dashboard
//!
//! Live Prometheus metrics, plots, a web page and a JSON API for cachescope
//! runs. Only this crate speaks HTTP. It knows results files and live
//! metrics, not traces or wgpu, and depends on `cachescope-core` only
//! (`harness -> dashboard -> core`).
//!
//! | module | what it is |
//! |---|---|
//! | [`live`] | [`LiveMetrics`]: snapshots a running simulation publishes; bounded label sets |
//! | [`exposition`] | `/metrics`: OpenMetrics (prometheus-client) and the Prometheus text format 0.0.4 |
//! | [`results`] | the dashboard's typed view of results files; [`ResultsDir`], safe file access |
//! | [`plot`] | miss-ratio curves, evictions, latency CDFs, hit rate over time (SVG, PNG) |
//! | [`page`] | the server-rendered web page |
//! | [`server`] | [`serve`]: the axum server on its own thread |
//!
//! ## Wiring it into a run
//!
//! ```no_run
//! use cachescope_core::stats::{CacheStats, EvictionReason};
//! use cachescope_dashboard::{Labels, LiveMetrics, ServeConfig, serve};
//!
//! let live = LiveMetrics::new();
//! let server = serve(
//!     "127.0.0.1:9464".parse().unwrap(),
//!     ServeConfig { live: Some(live.clone()), ..ServeConfig::default() },
//! )?;
//! let labels = Labels::new("sim", "lru").with_workload("zipf").with_run("lru@1%");
//! let mut stats = CacheStats::default();
//! for i in 0..1_000_000u64 {
//!     stats.record_request(4096, i % 3 == 0); // the simulator's own counting
//!     if i % 65_536 == 0 {
//!         live.publish_cache(&labels, &stats);
//!         live.publish_evictions(&labels, EvictionReason::Capacity, stats.evictions, stats.evicted_bytes);
//!         live.progress(i, 1_000_000);
//!     }
//! }
//! live.publish_cache(&labels, &stats);
//! server.wait()?; // keep serving until killed
//! # Ok::<(), cachescope_dashboard::Error>(())
//! ```
//!
//! ## Design decisions
//!
//! * **Snapshots, not per-request counting.** The simulator's hot path does
//!   not change; exported counters are the latest snapshot's values, so
//!   they are exactly the numbers the results file will hold.
//! * **Bounded cardinality.** At most 1,000 label sets (configurable) get
//!   series; the rest fold into one `other` series (see [`live`]).
//! * **One exposition, two formats.** prometheus-client encodes OpenMetrics
//!   (with exemplars linking latency buckets to run and trace position); the
//!   0.0.4 text format is derived from it.
//! * **Prometheus and Grafana are the distributed part.** A fleet runs one
//!   exporter per GPU host; `grafana/` and `prometheus/` hold ready config.

// No unsafe code in this crate, and no opt-out (the workspace only denies it).
#![forbid(unsafe_code)]

pub mod error;
pub mod exposition;
pub mod live;
pub mod page;
pub mod plot;
pub mod results;
pub mod server;

pub use error::{Error, Result};
pub use live::{
    GpuTransfers, Labels, LatencyKind, LatencyRecorder, LiveConfig, LiveMetrics, LiveSnapshot, PipelineCompiles,
    TunerDecision,
};
pub use plot::{PlotKind, write_plots, write_plots_json};
pub use results::{ResultsDir, ResultsFile, RunRecord};
pub use server::{DEFAULT_LISTEN, Limits, ServeConfig, ServerHandle, serve};
