// Convergence test of an iteration: partial[g] = sum of |a[i] - b[i]| over
// the 256 elements of workgroup g (a tree reduction in workgroup memory);
// the host adds the ceil(N / 256) partial sums.
override N: u32 = 1u;

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> partial: array<f32>;

var<workgroup> sums: array<f32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(local_invocation_index) lid: u32,
        @builtin(workgroup_id) wid: vec3<u32>) {
    var d = 0.0;
    if (gid.x < N) {
        d = abs(a[gid.x] - b[gid.x]);
    }
    sums[lid] = d;
    workgroupBarrier();
    for (var lanes = 128u; lanes > 0u; lanes = lanes / 2u) {
        if (lid < lanes) {
            sums[lid] = sums[lid] + sums[lid + lanes];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        partial[wid.x] = sums[0];
    }
}
