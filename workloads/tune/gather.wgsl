// Gather/scatter through index buffers: element i reads
// `src[gather_idx[i]]` (random, so reads are scattered) and writes it,
// mixed with i, to `dst[scatter_idx[i]]` (a permutation, so every word of
// `dst` is written exactly once and no two invocations race).

override WG_X: u32 = 64u;
override WG_Y: u32 = 1u;

@group(0) @binding(0) var<storage, read> src: array<u32>;
@group(0) @binding(1) var<storage, read> gather_idx: array<u32>;
@group(0) @binding(2) var<storage, read> scatter_idx: array<u32>;
@group(0) @binding(3) var<storage, read_write> dst: array<u32>;

@compute @workgroup_size(WG_X, WG_Y)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wid.y * groups.x + wid.x) * (WG_X * WG_Y) + lid;
    if (i < arrayLength(&gather_idx)) {
        dst[scatter_idx[i]] = src[gather_idx[i]] ^ i;
    }
}
