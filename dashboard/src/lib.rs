//! # cachescope-dashboard
//!
//! The axum server, Prometheus exposition, plots and web page of cachescope.
//! Only this crate speaks HTTP. It knows results and live metrics, not
//! traces or wgpu. The server itself arrives with the dashboard issue; today
//! this crate only fixes its place in the dependency graph
//! (`harness -> dashboard -> core`).
