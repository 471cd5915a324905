// Naive matrix product C = A x B in f32 (A is m x k, B is k x n, all
// row-major): one output element per invocation, x along columns and y
// along rows. The 2-D workgroup shape decides which rows of A and columns
// of B neighbouring invocations share, so it changes the cache traffic a
// lot. The inputs hold small integers, so every sum is exact in f32 in any
// order (with or without FMA) and the CPU check can compare bits.

override WG_X: u32 = 8u;
override WG_Y: u32 = 8u;

struct Shape {
    m: u32,
    n: u32,
    k: u32,
    pad: u32,
}

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
@group(0) @binding(3) var<uniform> shape: Shape;

@compute @workgroup_size(WG_X, WG_Y)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let col = gid.x;
    let row = gid.y;
    if (row >= shape.m || col >= shape.n) {
        return;
    }
    var acc = 0.0;
    for (var i = 0u; i < shape.k; i++) {
        acc += a[row * shape.k + i] * b[i * shape.n + col];
    }
    c[row * shape.n + col] = acc;
}
