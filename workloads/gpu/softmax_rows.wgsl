// Row-wise softmax in place over a ROWS x COLS row-major matrix, one
// invocation per row (COLS is small: class logits).
override ROWS: u32 = 1u;
override COLS: u32 = 1u;

@group(0) @binding(0) var<storage, read_write> logits: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let r = gid.x;
    if (r >= ROWS) {
        return;
    }
    let base = r * COLS;
    var top = logits[base];
    for (var c = 1u; c < COLS; c = c + 1u) {
        top = max(top, logits[base + c]);
    }
    var sum = 0.0;
    for (var c = 0u; c < COLS; c = c + 1u) {
        let e = exp(logits[base + c] - top);
        logits[base + c] = e;
        sum = sum + e;
    }
    for (var c = 0u; c < COLS; c = c + 1u) {
        logits[base + c] = logits[base + c] / sum;
    }
}
