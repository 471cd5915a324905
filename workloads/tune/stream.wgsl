// Streaming read-modify-write: every word of `data` is replaced by one step
// of a 32-bit LCG. Memory-bound; one word per invocation, so the workgroup
// size decides how many warps each SM keeps in flight.
//
// `WG_X`, `WG_Y` are set per candidate (PipelineCompilationOptions::constants);
// the kernel only uses their product, so any shape is handled correctly.
// The grid may be 2-D when one dimension would exceed the adapter's limit;
// invocations past the end do nothing.

override WG_X: u32 = 64u;
override WG_Y: u32 = 1u;

@group(0) @binding(0) var<storage, read_write> data: array<u32>;

@compute @workgroup_size(WG_X, WG_Y)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wid.y * groups.x + wid.x) * (WG_X * WG_Y) + lid;
    if (i < arrayLength(&data)) {
        data[i] = data[i] * 1664525u + 1013904223u;
    }
}
