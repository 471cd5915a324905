// One personalised-PageRank step as a CSR sparse matrix-vector product:
//   y[i] = (1 - DAMPING) * teleport[i] + DAMPING * sum_k vals[k] * x[col_idx[k]]
// over k in row_ptr[i] .. row_ptr[i + 1], for the N rows. The matrix is the
// transposed link graph (row = destination page, vals = 1 / out-degree of
// the source), so every term is a gather from x.
override N: u32 = 1u;
override DAMPING: f32 = 0.85;

@group(0) @binding(0) var<storage, read> row_ptr: array<u32>;
@group(0) @binding(1) var<storage, read> col_idx: array<u32>;
@group(0) @binding(2) var<storage, read> vals: array<f32>;
@group(0) @binding(3) var<storage, read> x: array<f32>;
@group(0) @binding(4) var<storage, read> teleport: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= N) {
        return;
    }
    var acc = 0.0;
    for (var k = row_ptr[i]; k < row_ptr[i + 1u]; k = k + 1u) {
        acc = acc + vals[k] * x[col_idx[k]];
    }
    y[i] = (1.0 - DAMPING) * teleport[i] + DAMPING * acc;
}
