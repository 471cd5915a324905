// 3x3 binomial blur ([1 2 1] x [1 2 1] / 16) of a W x H single-channel
// image, edges clamped: dst = blur(src).
override W: u32 = 1u;
override H: u32 = 1u;

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;

fn at(x: i32, y: i32) -> f32 {
    let cx = u32(clamp(x, 0, i32(W) - 1));
    let cy = u32(clamp(y, 0, i32(H) - 1));
    return src[cy * W + cx];
}

@compute @workgroup_size(16, 16)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x >= W || gid.y >= H) {
        return;
    }
    let x = i32(gid.x);
    let y = i32(gid.y);
    // Rows first, in a fixed order the CPU mirror repeats exactly.
    let top = at(x - 1, y - 1) + 2.0 * at(x, y - 1) + at(x + 1, y - 1);
    let mid = at(x - 1, y) + 2.0 * at(x, y) + at(x + 1, y);
    let bot = at(x - 1, y + 1) + 2.0 * at(x, y + 1) + at(x + 1, y + 1);
    dst[gid.y * W + gid.x] = (top + 2.0 * mid + bot) * 0.0625;
}
