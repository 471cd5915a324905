// Temporal smoothing: history[i] = history[i] + ALPHA * (frame[i] - history[i])
// for i < LEN (history is read and written, across frames). Grid-stride
// loop: any LEN fits in the 1-D dispatch limit.
override LEN: u32 = 1u;
override ALPHA: f32 = 0.5;

@group(0) @binding(0) var<storage, read_write> history: array<f32>;
@group(0) @binding(1) var<storage, read> frame: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let stride = groups.x * 256u;
    for (var i = gid.x; i < LEN; i = i + stride) {
        let h = history[i];
        history[i] = h + ALPHA * (frame[i] - h);
    }
}
