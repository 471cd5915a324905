//! The one compute kernel every dispatch runs, its exact CPU mirror (for
//! data-integrity checks), and how a trace's pipeline keys become distinct
//! specialised pipelines.
//!
//! **One source, many pipelines.** [`KERNEL_WGSL`] declares two `override`
//! constants: `SALT` (derived from the trace's 64-bit pipeline id) and `WG`
//! (the workgroup size). Each distinct pipeline id of a trace is compiled as
//! its own pipeline with its own `SALT`, so a trace with 234 pipeline keys
//! costs 234 real compiles.
//!
//! **What a dispatch does.** The kernel is run once per bound buffer (per
//! chunk of it, see below) with a mode from the binding's access: `r` reads
//! every touched word (and stores to a 64-word sink under a condition that
//! is practically never true, so the reads cannot be optimised away); `w`
//! writes `h(SALT, seq, g)`; `rw` replaces `x` by `fmix(x ^ h(SALT, seq, g))`,
//! where `g` is the word's index in the whole buffer and `seq` the
//! dispatch's sequence number. Content is therefore a deterministic function
//! of the buffer's history, which [`apply`] recomputes on the CPU.
//!
//! **Bounded work.** A chunk of `n` words is touched at `count = min(n,
//! cap)` words spaced `stride = ceil(n / count)` apart ([`sample`]): work is
//! proportional to bytes up to `cap` words per chunk, then constant, so
//! lavapipe stays fast on gigabyte traces. `cap = 0` touches every word (the
//! setting for timing real devices).
//!
//! **Chunks.** A buffer larger than the adapter's storage-binding limit (128
//! MiB on lavapipe) is held as several device buffers ("chunks") of at most
//! that size; the kernel runs on each chunk with the chunk's word offset.

use cachescope_core::pipeline::{PipelineCacheKey, PipelineFeatureFlags};

/// The kernel. Bindings: 0 = the data (storage, read-write), 1 = the
/// parameters (uniform, dynamic offset), 2 = the sink (storage).
pub const KERNEL_WGSL: &str = r#"
override SALT: u32 = 0u;
override WG: u32 = 64u;

struct Params {
    seq: u32,
    mode: u32,
    count: u32,
    stride: u32,
    word_offset: u32,
    groups_x: u32,
    pad0: u32,
    pad1: u32,
}

@group(0) @binding(0) var<storage, read_write> data: array<u32>;
@group(0) @binding(1) var<uniform> params: Params;
@group(0) @binding(2) var<storage, read_write> sink: array<u32, 64>;

fn fmix(x: u32) -> u32 {
    var h = x;
    h = h ^ (h >> 16u);
    h = h * 0x85ebca6bu;
    h = h ^ (h >> 13u);
    h = h * 0xc2b2ae35u;
    h = h ^ (h >> 16u);
    return h;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let j = (wid.y * params.groups_x + wid.x) * WG + lid;
    if (j >= params.count) {
        return;
    }
    let i = j * params.stride;
    let key = fmix(SALT ^ fmix(params.seq ^ fmix(params.word_offset + i)));
    if (params.mode == 0u) {
        let v = data[i];
        if (v == (key ^ 0x9e3779b9u)) {
            sink[lid & 63u] = v;
        }
    } else if (params.mode == 1u) {
        data[i] = key;
    } else {
        data[i] = fmix(data[i] ^ key);
    }
}
"#;

/// Bytes of one [`Params`] record.
pub const PARAMS_BYTES: u64 = 32;

/// How a dispatch touches a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Reads only.
    Read = 0,
    /// Writes without reading.
    Write = 1,
    /// Reads and writes.
    ReadWrite = 2,
}

impl Mode {
    /// The mode of a trace access.
    pub fn of(access: cachescope_core::policy::Access) -> Mode {
        use cachescope_core::policy::Access;
        match access {
            Access::Read => Mode::Read,
            Access::Write => Mode::Write,
            Access::ReadWrite => Mode::ReadWrite,
        }
    }
}

/// One kernel's parameters, as the uniform block holds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    /// Dispatch sequence number (low 32 bits).
    pub seq: u32,
    /// [`Mode`].
    pub mode: Mode,
    /// Words touched.
    pub count: u32,
    /// Distance between touched words.
    pub stride: u32,
    /// Index of the chunk's first word in the whole buffer (mod 2^32).
    pub word_offset: u32,
    /// Workgroups along x (the grid is 2-D when one dimension is not enough).
    pub groups_x: u32,
}

impl Params {
    /// The 32 little-endian bytes of the uniform block.
    pub fn encode(&self) -> [u8; PARAMS_BYTES as usize] {
        let mut out = [0u8; PARAMS_BYTES as usize];
        let words = [self.seq, self.mode as u32, self.count, self.stride, self.word_offset, self.groups_x, 0, 0];
        for (k, w) in words.iter().enumerate() {
            out[k * 4..k * 4 + 4].copy_from_slice(&w.to_le_bytes());
        }
        out
    }
}

/// One write a kernel applied to a buffer (reads change nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteOp {
    /// The pipeline's `SALT`.
    pub salt: u32,
    /// The dispatch's `seq` (low 32 bits).
    pub seq: u32,
    /// [`Mode::Write`] or [`Mode::ReadWrite`].
    pub mode: Mode,
}

/// The murmur3 finaliser, as the kernel computes it.
#[inline]
pub fn fmix(x: u32) -> u32 {
    let mut h = x;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h
}

/// The new value of word `g` (index in the whole buffer) holding `old` after
/// `op`: the kernel's arithmetic on the CPU.
#[inline]
pub fn apply(op: &WriteOp, g: u32, old: u32) -> u32 {
    let key = fmix(op.salt ^ fmix(op.seq ^ fmix(g)));
    match op.mode {
        Mode::Read => old,
        Mode::Write => key,
        Mode::ReadWrite => fmix(old ^ key),
    }
}

/// `(count, stride)` of a chunk of `words` words under a touch cap of `cap`
/// words (0: no cap).
pub fn sample(words: u64, cap: u32) -> (u32, u32) {
    if cap == 0 || words <= u64::from(cap) {
        let count = u32::try_from(words).unwrap_or(u32::MAX);
        return (count, 1);
    }
    let stride = words.div_ceil(u64::from(cap));
    let count = words.div_ceil(stride);
    (u32::try_from(count).unwrap_or(u32::MAX), u32::try_from(stride).unwrap_or(u32::MAX))
}

/// The 32-bit `SALT` of a trace pipeline id.
pub fn salt_of(pipeline: u64) -> u32 {
    fmix((pipeline as u32) ^ fmix((pipeline >> 32) as u32))
}

/// The shader module, bind-group layout and pipeline layout every pipeline
/// shares.
#[derive(Debug)]
pub struct KernelSet {
    /// The compiled-from-WGSL module (validated once).
    pub module: wgpu::ShaderModule,
    /// Data, params (dynamic offset), sink.
    pub bind_group_layout: wgpu::BindGroupLayout,
    /// The one pipeline layout.
    pub layout: wgpu::PipelineLayout,
    /// Workgroup size (`WG`).
    pub workgroup_size: u32,
    /// blake3 of the WGSL source.
    pub source_hash: [u8; 32],
    /// Structural hash of the bind-group layout (for pipeline keys).
    pub layout_hash: [u8; 32],
}

impl KernelSet {
    /// Builds the module and layouts on `device`.
    pub fn new(device: &wgpu::Device, workgroup_size: u32) -> KernelSet {
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("cachescope replay kernel"),
            source: wgpu::ShaderSource::Wgsl(KERNEL_WGSL.into()),
        });
        let storage = |binding: u32| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Storage { read_only: false },
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        };
        let params = wgpu::BindGroupLayoutEntry {
            binding: 1,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Uniform,
                has_dynamic_offset: true,
                min_binding_size: wgpu::BufferSize::new(PARAMS_BYTES),
            },
            count: None,
        };
        let bind_group_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("cachescope replay bindings"),
            entries: &[storage(0), params, storage(2)],
        });
        let layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("cachescope replay layout"),
            bind_group_layouts: &[Some(&bind_group_layout)],
            immediate_size: 0,
        });
        KernelSet {
            module,
            bind_group_layout,
            layout,
            workgroup_size,
            source_hash: *blake3::hash(KERNEL_WGSL.as_bytes()).as_bytes(),
            layout_hash: *blake3::hash(b"storage-rw@0;uniform-dyn-32@1;storage-rw@2").as_bytes(),
        }
    }

    /// The core pipeline-cache key of the specialisation `salt` on
    /// `backend_id` (the shader hash covers the source and the constants).
    pub fn key(&self, salt: u32, backend_id: &str) -> PipelineCacheKey {
        let mut h = blake3::Hasher::new();
        h.update(&self.source_hash);
        h.update(b"SALT=");
        h.update(&salt.to_le_bytes());
        PipelineCacheKey::new(
            *h.finalize().as_bytes(),
            self.layout_hash,
            0,
            [self.workgroup_size, 1, 1],
            PipelineFeatureFlags::empty(),
            backend_id,
        )
    }

    /// Compiles the specialisation `salt` (a real driver compile), through
    /// the driver's pipeline cache `cache` when given (it may then be fast).
    pub fn compile(
        &self,
        device: &wgpu::Device,
        salt: u32,
        cache: Option<&wgpu::PipelineCache>,
    ) -> wgpu::ComputePipeline {
        let constants = [("SALT", f64::from(salt)), ("WG", f64::from(self.workgroup_size))];
        device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some("cachescope replay pipeline"),
            layout: Some(&self.layout),
            module: &self.module,
            entry_point: Some("main"),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants: &constants,
                zero_initialize_workgroup_memory: false,
            },
            cache,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_bounds_work() {
        assert_eq!(sample(10, 0), (10, 1));
        assert_eq!(sample(10, 16), (10, 1));
        let (count, stride) = sample(1000, 64);
        assert!(count <= 64 && u64::from(count) * u64::from(stride) >= 1000);
        assert!(u64::from(count - 1) * u64::from(stride) < 1000);
    }

    #[test]
    fn params_encode_little_endian() {
        let p = Params { seq: 1, mode: Mode::ReadWrite, count: 3, stride: 4, word_offset: 5, groups_x: 6 };
        let b = p.encode();
        assert_eq!(&b[4..8], &2u32.to_le_bytes());
        assert_eq!(&b[20..24], &6u32.to_le_bytes());
    }
}
