// 2x2 box downsample: dst (W/2 x H/2) from src (W x H, both even).
override W: u32 = 2u;
override H: u32 = 2u;

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(16, 16)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let w2 = W / 2u;
    let h2 = H / 2u;
    if (gid.x >= w2 || gid.y >= h2) {
        return;
    }
    let i = (2u * gid.y) * W + 2u * gid.x;
    let s = (src[i] + src[i + 1u]) + (src[i + W] + src[i + W + 1u]);
    dst[gid.y * w2 + gid.x] = s * 0.25;
}
