// Residual connection: y[i] = y[i] + x[i] for i < LEN (y is read and
// written). Grid-stride loop: any LEN fits in the 1-D dispatch limit.
override LEN: u32 = 1u;

@group(0) @binding(0) var<storage, read_write> y: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let stride = groups.x * 256u;
    for (var i = gid.x; i < LEN; i = i + stride) {
        y[i] = y[i] + x[i];
    }
}
