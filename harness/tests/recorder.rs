//! Traces written by `workloads/recorder/record_torch.py` (on an H100 and on
//! CPU tensors) are valid dispatch traces: they load in the GPU view and
//! simulate. The recorder itself needs PyTorch, which CI machines lack; these
//! files are what it wrote.

use std::path::Path;

use cachescope_harness::trace::{DecodedTrace, LoadOptions};

#[test]
fn recorder_output_loads_and_simulates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../results/2026-11-22-h100-replay/recorder");
    for name in ["resnet18-h100-1step.jsonl.gz", "mlp-cpu-2steps.jsonl.gz"] {
        let t = DecodedTrace::load(&dir.join(name), None, LoadOptions { gpu: true, ..LoadOptions::default() })
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(t.identity.requests() > 10, "{name}: {} requests", t.identity.requests());
        assert!(t.peak_live_bytes.unwrap_or(0) > 0, "{name}: no allocations seen");
    }
}
