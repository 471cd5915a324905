//! # cachescope-harness
//!
//! Drives the caches of `cachescope-core` on workloads and owns the
//! `cachescope` command. Today: seeded synthetic workloads and the
//! `selfcheck` job; the trace readers, the simulator, the GPU replayer and
//! `compare` join here as their issues land (see ARCHITECTURE.md).

pub mod ab;
pub mod bench;
pub mod compare;
pub mod error;
pub mod gpu;
pub mod paired;
pub mod record;
pub mod results;
pub mod selfcheck;
pub mod sim;
pub mod trace;
pub mod workload;
