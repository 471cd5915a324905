//! Empty: the benchmark lives in `benches/tiered.rs`.
