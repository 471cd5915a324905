// Reduction: each workgroup sums `ITEMS * WG_X * WG_Y` consecutive words of
// `input` (wrapping u32 addition) into `partials[group]`. Each invocation
// first adds ITEMS words spaced one workgroup apart (coalesced), then the
// workgroup combines its invocations' sums by a tree in workgroup-shared
// memory. The tree runs over the next power of two at or above the
// workgroup size, so sizes that are not powers of two (subgroup multiples
// such as 48 or 96) are summed correctly too.

override WG_X: u32 = 64u;
override WG_Y: u32 = 1u;

// Words each invocation adds before the tree (set by the harness with the
// workgroup size: it decides the grid and the CPU check).
override ITEMS: u32 = 8u;

@group(0) @binding(0) var<storage, read> input: array<u32>;
@group(0) @binding(1) var<storage, read_write> partials: array<u32>;

var<workgroup> scratch: array<u32, WG_X * WG_Y>;

@compute @workgroup_size(WG_X, WG_Y)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let wg = WG_X * WG_Y;
    let group = wid.y * groups.x + wid.x;
    let n = arrayLength(&input);
    let base = group * wg * ITEMS;
    var acc = 0u;
    for (var k = 0u; k < ITEMS; k++) {
        let i = base + k * wg + lid;
        if (i < n) {
            acc += input[i];
        }
    }
    scratch[lid] = acc;
    workgroupBarrier();
    var half = 1u;
    while (half < wg) {
        half = half << 1u;
    }
    half = half >> 1u;
    // `half` depends only on override constants: the barrier is in uniform
    // control flow.
    for (var s = half; s > 0u; s = s >> 1u) {
        if (lid < s && lid + s < wg) {
            scratch[lid] += scratch[lid + s];
        }
        workgroupBarrier();
    }
    if (lid == 0u && group < arrayLength(&partials)) {
        partials[group] = scratch[0];
    }
}
