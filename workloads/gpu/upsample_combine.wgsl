// One level of Laplacian-pyramid reconstruction with detail gain: at every
// pixel of the W x H fine level,
//   out = up(coarse_result) + GAIN * (fine_gauss - up(coarse_gauss)),
// where up() is nearest-neighbour upsampling from the (W/2 x H/2) level.
override W: u32 = 2u;
override H: u32 = 2u;
override GAIN: f32 = 1.0;

@group(0) @binding(0) var<storage, read> coarse_result: array<f32>;
@group(0) @binding(1) var<storage, read> coarse_gauss: array<f32>;
@group(0) @binding(2) var<storage, read> fine_gauss: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(16, 16)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x >= W || gid.y >= H) {
        return;
    }
    let c = (gid.y / 2u) * (W / 2u) + gid.x / 2u;
    let i = gid.y * W + gid.x;
    let detail = fine_gauss[i] - coarse_gauss[c];
    out[i] = coarse_result[c] + GAIN * detail;
}
