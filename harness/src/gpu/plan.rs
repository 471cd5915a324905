//! The dispatch structure of a decoded trace.
//!
//! [`DecodedTrace`] flattens a dispatch trace into one request per binding
//! (and, in the GPU view, one event per free): exactly what the simulator
//! needs, but it forgets which bindings belong to one dispatch and which
//! pipeline that dispatch used. The replayer needs both, so [`DispatchPlan`]
//! reads the trace file again and walks it in lockstep with the decoded
//! events, checking that every event matches (same buffer, same size), so
//! the replayer and the simulator provably see the same request sequence.

use std::ops::Range;

use rustc_hash::FxHashMap;

use super::{GpuError, GpuResult};
use crate::trace::{DecodedTrace, DispatchEvent, DispatchReader, TraceFormat};

/// One step of the replay, in trace order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A kernel launch: its bindings are the decoded events `events`.
    Dispatch {
        /// The trace's `seq`.
        seq: u64,
        /// Dense index into [`DispatchPlan::pipelines`].
        pipeline: u32,
        /// Decoded event indices of its (non-empty) bindings.
        events: Range<usize>,
    },
    /// Decoded event `.0` is a free.
    Free(usize),
}

/// The steps of a trace and its distinct pipelines.
#[derive(Debug, Clone)]
pub struct DispatchPlan {
    /// Steps in order; every decoded event belongs to exactly one.
    pub steps: Vec<Step>,
    /// The trace's 64-bit pipeline ids, by dense index (first appearance).
    pub pipelines: Vec<u64>,
    /// Operator name of each dense pipeline (its first dispatch's `op`).
    pub ops: Vec<String>,
    /// Number of dispatch steps.
    pub dispatches: u64,
}

impl DispatchPlan {
    /// Reads the dispatch structure of `trace` from its file.
    ///
    /// # Errors
    /// [`GpuError::Trace`] when the trace is not a dispatch trace decoded in
    /// the GPU view (buffers, bytes), or the file no longer matches the
    /// decoded events (naming the event and line of disagreement).
    pub fn build(trace: &DecodedTrace) -> GpuResult<DispatchPlan> {
        let id = &trace.identity;
        if id.format != TraceFormat::Dispatch {
            return Err(GpuError::Trace(format!(
                "`{}` is a {} trace; replay needs a dispatch trace (workloads/traces/FORMAT.md)",
                id.path.display(),
                id.format.name()
            )));
        }
        if !id.options.gpu || id.options.pipelines || id.options.objects || trace.is_free.is_none() {
            return Err(GpuError::Trace(format!(
                "`{}` must be loaded with LoadOptions {{ gpu: true, pipelines: false, objects: false }}",
                id.path.display()
            )));
        }
        let n = trace.dense_ids.len();
        let filled = [trace.keys.len(), trace.sizes.len(), trace.access.len(), trace.next_access.len()];
        if filled.iter().any(|&len| len != n) || trace.is_free.as_ref().is_some_and(|f| f.len() != n) {
            return Err(GpuError::Trace(format!(
                "`{}` was loaded without all columns (keys, sizes, access, next access): use DecodedTrace::load",
                id.path.display()
            )));
        }
        let reader = DispatchReader::open(&id.path).map_err(|e| GpuError::Trace(e.to_string()))?;
        let mut plan = DispatchPlan { steps: Vec::new(), pipelines: Vec::new(), ops: Vec::new(), dispatches: 0 };
        let mut dense: FxHashMap<u64, u32> = FxHashMap::default();
        let mut i = 0usize;
        let mismatch = |i: usize, what: String| {
            GpuError::Trace(format!(
                "`{}` does not match its decoded events at event {i}: {what} (was the file changed?)",
                id.path.display()
            ))
        };
        for event in reader {
            if i >= n {
                break;
            }
            match event.map_err(|e| GpuError::Trace(e.to_string()))? {
                DispatchEvent::Alloc { .. } => {}
                DispatchEvent::Free { buf } => {
                    // Frees of buffers never requested are not decoded.
                    if trace.free_at(i) && trace.keys[i] == buf {
                        plan.steps.push(Step::Free(i));
                        i += 1;
                    }
                }
                DispatchEvent::Dispatch { seq, op, pipeline, bindings } => {
                    let start = i;
                    for b in bindings.iter().filter(|b| b.bytes > 0) {
                        if i >= n {
                            break;
                        }
                        if trace.free_at(i) || trace.keys[i] != b.buf || trace.sizes[i] != b.bytes {
                            return Err(mismatch(
                                i,
                                format!("dispatch seq {seq} binds buffer {} ({} bytes)", b.buf, b.bytes),
                            ));
                        }
                        i += 1;
                    }
                    let next = u32::try_from(plan.pipelines.len()).unwrap_or(u32::MAX);
                    let p = *dense.entry(pipeline).or_insert_with(|| {
                        plan.pipelines.push(pipeline);
                        plan.ops.push(op);
                        next
                    });
                    plan.steps.push(Step::Dispatch { seq, pipeline: p, events: start..i });
                    plan.dispatches += 1;
                }
            }
        }
        if i != n {
            return Err(mismatch(i, format!("the file ended after {i} of {n} decoded events")));
        }
        Ok(plan)
    }
}
