//! Shared by the GPU test files (`#[path = "support/sim_gpu.rs"] mod sim_gpu;`):
//! the simulator's GPU model, the reference every replay is checked against.

use cachescope_core::policy::PolicyKind;
use cachescope_harness::sim::{self, RunResult, SimConfig, SizeSpec, Warmup};
use cachescope_harness::trace::DecodedTrace;

/// `sim --gpu` of `trace` for every policy x size, one thread, no warm-up.
pub fn sim_gpu(trace: &DecodedTrace, policies: &[PolicyKind], sizes: &[SizeSpec]) -> Vec<RunResult> {
    let config = SimConfig {
        policies: policies.to_vec(),
        sizes: sizes.to_vec(),
        objects: false,
        gpu: true,
        warmup: Warmup::None,
        threads: 1,
    };
    sim::simulate(trace, &config, &|_| {}).expect("sim --gpu")
}
