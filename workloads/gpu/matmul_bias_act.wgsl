// Dense layer: out[m, n] = act(sum_k x[m, k] * w[k, n] + bias[n]), row-major.
// One 16x16 output tile per workgroup; the k loop runs over 16-wide tiles
// of x and w staged in workgroup memory. Shapes are override constants, so
// every layer shape is its own specialised pipeline.
override M: u32 = 1u;
override K: u32 = 1u;
override N: u32 = 1u;
// 0: identity, 1: ReLU.
override ACT: u32 = 0u;

const TILE: u32 = 16u;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

var<workgroup> x_tile: array<array<f32, 16>, 16>;
var<workgroup> w_tile: array<array<f32, 16>, 16>;

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = wid.y * TILE + lid.y;
    let col = wid.x * TILE + lid.x;
    let tiles = (K + TILE - 1u) / TILE;
    var acc = 0.0;
    for (var t = 0u; t < tiles; t = t + 1u) {
        let kx = t * TILE + lid.x;
        let ky = t * TILE + lid.y;
        var xv = 0.0;
        if (row < M && kx < K) {
            xv = x[row * K + kx];
        }
        var wv = 0.0;
        if (ky < K && col < N) {
            wv = w[ky * N + col];
        }
        x_tile[lid.y][lid.x] = xv;
        w_tile[lid.y][lid.x] = wv;
        workgroupBarrier();
        for (var i = 0u; i < TILE; i = i + 1u) {
            acc = acc + x_tile[lid.y][i] * w_tile[i][lid.x];
        }
        workgroupBarrier();
    }
    if (row < M && col < N) {
        var v = acc + bias[col];
        if (ACT == 1u) {
            v = max(v, 0.0);
        }
        out[row * N + col] = v;
    }
}
