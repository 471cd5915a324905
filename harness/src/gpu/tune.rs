//! `cachescope tune`: core's workgroup-size autotuner
//! ([`cachescope_core::tuner`]) on a real device.
//!
//! Four WGSL kernels (`workloads/tune/*.wgsl`) declare their workgroup size
//! as `override` constants (`@workgroup_size(WG_X, WG_Y)`); each candidate
//! size is one specialised pipeline ([`wgpu::PipelineCompilationOptions`]
//! `constants`), compiled once. [`KernelTimer`] is core's
//! [`BackendTimer`] on wgpu; [`tune_kernel`] asks
//! [`Tuner::tune_cached`] with the adapter's [`TunerStore`], so only the
//! first run on an adapter measures, and with `--exhaustive` also measures
//! every candidate a fixed number of times to report how far the tuner's
//! choice is from the true best (the regret).
//!
//! | kernel | what it does | candidates |
//! |---|---|---|
//! | `stream` | read-modify-write of every word of one buffer | 1D |
//! | `reduce` | per-workgroup sums through a shared-memory tree | 1D |
//! | `matmul` | naive f32 matrix product, one output per invocation | 1D and 2D |
//! | `gather` | `dst[scatter[i]] = src[gather[i]] ^ i` through index buffers | 1D |
//!
//! **How a sample is taken.** One submission holds two compute passes of
//! the candidate's pipeline: an untimed warm-up dispatch, then a pass of
//! `dispatches_per_sample` dispatches between timestamp queries (Vulkan
//! writes both at the bottom of the pipe, so the warm-up is finished when
//! the first is written). The sample is the pass time divided by the
//! dispatch count. Because the warm-up runs the same candidate on the same
//! buffers, whatever the previous candidate left in caches or clocks is
//! gone before the timed pass: no state favours the previous candidate, as
//! [`BackendTimer`] asks. An adapter without timestamp queries gets wall
//! time around submit + wait instead, and the output says so.
//!
//! **Integrity.** The first time a candidate is used, its pipeline is
//! compiled (not timed) and one dispatch is checked word for word against a
//! CPU computation; a candidate whose indexing is wrong fails the run with
//! [`GpuError::Integrity`] instead of winning by skipping work. The decision
//! in force is checked the same way on every run, also when it came from
//! the store (a compile and one dispatch, not a measurement).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::mpsc;
use std::time::Instant;

use anyhow::Context as _;
use cachescope_core::tuner::{
    AdapterLimits, BackendTimer, CandidateOptions, Decision, ProgramKey, TuneOutcome, Tuner, TunerConfig, TunerStore,
    candidates,
};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::device::AdapterReport;
use super::{GpuDevice, GpuError, GpuResult};
use crate::results::{SCHEMA_VERSION, ToolInfo, write_json_atomic};

/// Words per buffer at `--scale 1` (stream, reduce, gather).
pub const BASE_WORDS: u64 = 4096;
/// Side of the square matrices at `--scale 1` (grows with the square root
/// of the scale, so the work grows faster than the buffers).
pub const BASE_MATMUL_SIDE: u64 = 16;
/// Words each `reduce` invocation adds before the tree (the `ITEMS`
/// override).
pub const REDUCE_ITEMS_PER_INVOCATION: u32 = 8;
/// Default `--scale`: buffers of 256 KiB and 64 x 64 matrices, a few
/// seconds on lavapipe. `--scale 4096` gives 64 MiB buffers and 1024 x 1024
/// matrices (an H100-sized stream).
pub const DEFAULT_SCALE: u32 = 16;

/// One of the tunable kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TuneKernel {
    /// Streaming read-modify-write over one large buffer.
    Stream,
    /// Reduction through a workgroup-shared-memory tree.
    Reduce,
    /// Naive matrix product with 2D workgroups.
    Matmul,
    /// Gather/scatter through index buffers.
    Gather,
}

impl TuneKernel {
    /// Every kernel, in output order.
    pub const ALL: [TuneKernel; 4] = [TuneKernel::Stream, TuneKernel::Reduce, TuneKernel::Matmul, TuneKernel::Gather];

    /// The name used on the command line and in results.
    pub fn name(self) -> &'static str {
        match self {
            TuneKernel::Stream => "stream",
            TuneKernel::Reduce => "reduce",
            TuneKernel::Matmul => "matmul",
            TuneKernel::Gather => "gather",
        }
    }

    /// The WGSL source (`workloads/tune/<name>.wgsl`).
    pub fn source(self) -> &'static str {
        match self {
            TuneKernel::Stream => include_str!("../../../workloads/tune/stream.wgsl"),
            TuneKernel::Reduce => include_str!("../../../workloads/tune/reduce.wgsl"),
            TuneKernel::Matmul => include_str!("../../../workloads/tune/matmul.wgsl"),
            TuneKernel::Gather => include_str!("../../../workloads/tune/gather.wgsl"),
        }
    }

    /// Which candidate shapes make sense: 2D shapes only for the matrix
    /// product (the others index linearly, where a 2D shape is the same
    /// work as its 1D product).
    pub fn candidate_options(self) -> CandidateOptions {
        CandidateOptions { include_2d: self == TuneKernel::Matmul, ..CandidateOptions::default() }
    }

    /// A comma-separated list of names, or `all`.
    ///
    /// # Errors
    /// An unknown name or an empty list, naming the valid ones.
    pub fn parse_list(s: &str) -> Result<Vec<TuneKernel>, String> {
        if s.trim() == "all" {
            return Ok(TuneKernel::ALL.to_vec());
        }
        let mut out = Vec::new();
        for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let k: TuneKernel = name.parse()?;
            if !out.contains(&k) {
                out.push(k);
            }
        }
        if out.is_empty() {
            return Err("no kernel named (stream, reduce, matmul, gather or all)".into());
        }
        Ok(out)
    }
}

impl FromStr for TuneKernel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        TuneKernel::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| format!("unknown kernel `{s}` (stream, reduce, matmul, gather or all)"))
    }
}

/// The static shape of one kernel's problem: part of its [`ProgramKey`],
/// because the best workgroup size depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kernel", rename_all = "lowercase")]
pub enum Shape {
    /// `words` u32 words, read and written.
    Stream {
        /// Words in the buffer.
        words: u32,
    },
    /// `words` u32 words summed into one partial sum per workgroup.
    Reduce {
        /// Words in the input.
        words: u32,
        /// Words each invocation adds before the tree.
        items_per_invocation: u32,
    },
    /// `(m x k) * (k x n)` in f32.
    Matmul {
        /// Rows of A and C.
        m: u32,
        /// Columns of B and C.
        n: u32,
        /// Columns of A, rows of B.
        k: u32,
    },
    /// `elements` gathers from and scatters into buffers of that many words.
    Gather {
        /// Index-buffer entries (and words of `src` and `dst`).
        elements: u32,
    },
}

impl Shape {
    /// The shape of `kernel` at `scale` (see [`BASE_WORDS`]).
    ///
    /// # Errors
    /// [`GpuError::Config`] for scale 0 or one whose sizes overflow 32-bit
    /// indices.
    pub fn of(kernel: TuneKernel, scale: u32) -> GpuResult<Shape> {
        if scale == 0 {
            return Err(GpuError::Config("--scale must be at least 1".into()));
        }
        let too_big = || GpuError::Config(format!("--scale {scale}: `{}` would exceed 2^30 words", kernel.name()));
        let words = BASE_WORDS * u64::from(scale);
        let words32 = u32::try_from(words).ok().filter(|&w| w <= 1 << 30).ok_or_else(too_big)?;
        Ok(match kernel {
            TuneKernel::Stream => Shape::Stream { words: words32 },
            TuneKernel::Reduce => Shape::Reduce { words: words32, items_per_invocation: REDUCE_ITEMS_PER_INVOCATION },
            TuneKernel::Gather => Shape::Gather { elements: words32 },
            TuneKernel::Matmul => {
                let side = BASE_MATMUL_SIDE * u64::from(scale).isqrt();
                let side = u32::try_from(side).ok().filter(|&s| u64::from(s) * u64::from(s) <= 1 << 30);
                let side = side.ok_or_else(too_big)?;
                Shape::Matmul { m: side, n: side, k: side }
            }
        })
    }

    /// The dimensions that go into the [`ProgramKey`].
    pub fn dims(&self) -> Vec<u64> {
        match *self {
            Shape::Stream { words } => vec![u64::from(words)],
            Shape::Reduce { words, items_per_invocation } => vec![u64::from(words), u64::from(items_per_invocation)],
            Shape::Matmul { m, n, k } => vec![u64::from(m), u64::from(n), u64::from(k)],
            Shape::Gather { elements } => vec![u64::from(elements)],
        }
    }

    /// A few words for tables: `65536 words`, `64x64x64`.
    pub fn describe(&self) -> String {
        match *self {
            Shape::Stream { words } | Shape::Reduce { words, .. } => format!("{words} words"),
            Shape::Matmul { m, n, k } => format!("{m}x{k}x{n}"),
            Shape::Gather { elements } => format!("{elements} elements"),
        }
    }
}

/// The key a kernel's decision is stored under: its WGSL source's BLAKE3
/// digest and its shape.
pub fn program_key(kernel: TuneKernel, shape: &Shape) -> ProgramKey {
    ProgramKey::new(blake3::hash(kernel.source().as_bytes()).as_bytes(), &shape.dims())
}

/// The workgroup limits of an open device, in core's terms. The subgroup
/// hint is the adapter's largest subgroup size (a multiple of it is a whole
/// number of subgroups for every size the driver may pick).
pub fn adapter_limits(gpu: &GpuDevice) -> AdapterLimits {
    let info = gpu.device.adapter_info();
    AdapterLimits {
        max_invocations_per_workgroup: gpu.limits.max_compute_invocations_per_workgroup,
        max_size_x: gpu.limits.max_compute_workgroup_size_x,
        max_size_y: gpu.limits.max_compute_workgroup_size_y,
        max_size_z: gpu.limits.max_compute_workgroup_size_z,
        subgroup_size: (info.subgroup_max_size > 0).then_some(info.subgroup_max_size),
    }
}

/// The adapter's identity in the store: name, backend and driver (a driver
/// update can change the best size, so it is a different adapter).
pub fn adapter_key(report: &AdapterReport) -> String {
    format!("{} / {} / {} {}", report.name, report.backend, report.driver, report.driver_info).trim().to_owned()
}

/// The candidates of `kernel` on `gpu`: core's [`candidates`] from the
/// adapter's limits, less the sizes whose shared memory (reduce: 4 bytes
/// per invocation) the adapter cannot give.
///
/// # Errors
/// [`GpuError::Config`] when the limits are unusable or nothing is left.
pub fn kernel_candidates(gpu: &GpuDevice, kernel: TuneKernel) -> GpuResult<Vec<[u32; 3]>> {
    let mut out = candidates(&adapter_limits(gpu), &kernel.candidate_options())
        .map_err(|e| GpuError::Config(format!("candidates for `{}`: {e}", kernel.name())))?;
    out.retain(|&wg| shared_bytes(kernel, wg) <= u64::from(gpu.limits.max_compute_workgroup_storage_size));
    if out.is_empty() {
        return Err(GpuError::Config(format!("no workgroup size of `{}` fits `{}`", kernel.name(), gpu.report.name)));
    }
    Ok(out)
}

fn invocations(wg: [u32; 3]) -> u64 {
    wg.iter().map(|&d| u64::from(d)).product()
}

fn shared_bytes(kernel: TuneKernel, wg: [u32; 3]) -> u64 {
    if kernel == TuneKernel::Reduce { 4 * invocations(wg) } else { 0 }
}

/// How samples are timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TimingMethod {
    /// GPU timestamps around the timed pass.
    TimestampQuery,
    /// Host wall time around submit + wait (the adapter has no timestamp
    /// queries); includes submission overhead.
    WallClock,
}

impl TimingMethod {
    /// For the table.
    pub fn describe(self) -> &'static str {
        match self {
            TimingMethod::TimestampQuery => "timestamp queries",
            TimingMethod::WallClock => "WALL CLOCK around submit+wait (the adapter has no TIMESTAMP_QUERY)",
        }
    }
}

/// How a binding is declared in the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BindingKind {
    StorageRead,
    StorageReadWrite,
    Uniform,
}

impl BindingKind {
    fn usage(self) -> wgpu::BufferUsages {
        match self {
            BindingKind::Uniform => wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            _ => wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC,
        }
    }

    fn binding_type(self) -> wgpu::BindingType {
        let ty = match self {
            BindingKind::StorageRead => wgpu::BufferBindingType::Storage { read_only: true },
            BindingKind::StorageReadWrite => wgpu::BufferBindingType::Storage { read_only: false },
            BindingKind::Uniform => wgpu::BufferBindingType::Uniform,
        };
        wgpu::BindingType::Buffer { ty, has_dynamic_offset: false, min_binding_size: None }
    }
}

/// The host side of a kernel's problem: its inputs, in binding order, and
/// what the checked output must hold.
struct HostData {
    /// Kind and initial bytes of each binding.
    bindings: Vec<(BindingKind, Vec<u8>)>,
    /// Binding that holds the result.
    output: usize,
    /// Expected output words, when they do not depend on the workgroup
    /// size (all but reduce).
    expected: Option<Vec<u32>>,
    /// Stream only: the input is rewritten before a check (the kernel
    /// updates it in place).
    reset_before_check: bool,
}

fn words_to_bytes(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// The stream kernel's update of one word.
pub fn stream_step(x: u32) -> u32 {
    x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223)
}

/// The reduce kernel's expected partial sums for `workgroup`, followed by
/// zeros up to `partials_len` words (the cleared rest of the buffer).
pub fn reduce_expected(input: &[u32], items_per_invocation: u32, workgroup: [u32; 3], partials_len: usize) -> Vec<u32> {
    let block = (invocations(workgroup) * u64::from(items_per_invocation)) as usize;
    let mut out: Vec<u32> =
        input.chunks(block.max(1)).map(|c| c.iter().fold(0u32, |a, &x| a.wrapping_add(x))).collect();
    out.resize(partials_len.max(out.len()), 0);
    out
}

impl HostData {
    fn new(shape: &Shape) -> HostData {
        // Fixed seeds: the same problem every run, so stored decisions and
        // results stay comparable. Values are never all zero.
        let mut rng = ChaCha8Rng::seed_from_u64(0x7475_6e65);
        let random_words =
            |rng: &mut ChaCha8Rng, n: u32| -> Vec<u32> { (0..n).map(|_| rng.random::<u32>() | 1).collect() };
        match *shape {
            Shape::Stream { words } => {
                let initial = random_words(&mut rng, words);
                let expected = initial.iter().map(|&x| stream_step(x)).collect();
                HostData {
                    bindings: vec![(BindingKind::StorageReadWrite, words_to_bytes(&initial))],
                    output: 0,
                    expected: Some(expected),
                    reset_before_check: true,
                }
            }
            Shape::Reduce { words, items_per_invocation } => {
                let input = random_words(&mut rng, words);
                // Most partials: every workgroup of one invocation.
                let partials = words.div_ceil(items_per_invocation) as usize;
                HostData {
                    bindings: vec![
                        (BindingKind::StorageRead, words_to_bytes(&input)),
                        (BindingKind::StorageReadWrite, vec![0u8; 4 * partials]),
                    ],
                    output: 1,
                    expected: None,
                    reset_before_check: false,
                }
            }
            Shape::Matmul { m, n, k } => {
                // Integers in 0..16: every partial sum is below 2^24 for
                // k <= 65536, so f32 sums are exact in any order.
                let mut rng = ChaCha8Rng::seed_from_u64(0x6d61_746d);
                let a: Vec<f32> = (0..m * k).map(|_| rng.random_range(0..16u8) as f32).collect();
                let b: Vec<f32> = (0..k * n).map(|_| rng.random_range(0..16u8) as f32).collect();
                let (m, n, k) = (m as usize, n as usize, k as usize);
                let mut c = vec![0f32; m * n];
                for row in 0..m {
                    let out = &mut c[row * n..(row + 1) * n];
                    for i in 0..k {
                        let x = a[row * k + i];
                        for (o, &y) in out.iter_mut().zip(&b[i * n..(i + 1) * n]) {
                            *o += x * y;
                        }
                    }
                }
                let f32_bytes = |v: &[f32]| -> Vec<u8> { v.iter().flat_map(|x| x.to_le_bytes()).collect() };
                let shape_words = [m as u32, n as u32, k as u32, 0];
                HostData {
                    bindings: vec![
                        (BindingKind::StorageRead, f32_bytes(&a)),
                        (BindingKind::StorageRead, f32_bytes(&b)),
                        (BindingKind::StorageReadWrite, vec![0u8; 4 * m * n]),
                        (BindingKind::Uniform, words_to_bytes(&shape_words)),
                    ],
                    output: 2,
                    expected: Some(c.iter().map(|x| x.to_bits()).collect()),
                    reset_before_check: false,
                }
            }
            Shape::Gather { elements } => {
                let src = random_words(&mut rng, elements);
                let gather: Vec<u32> = (0..elements).map(|_| rng.random_range(0..elements)).collect();
                let mut scatter: Vec<u32> = (0..elements).collect();
                scatter.shuffle(&mut rng);
                let mut dst = vec![0u32; elements as usize];
                for i in 0..elements as usize {
                    dst[scatter[i] as usize] = src[gather[i] as usize] ^ i as u32;
                }
                HostData {
                    bindings: vec![
                        (BindingKind::StorageRead, words_to_bytes(&src)),
                        (BindingKind::StorageRead, words_to_bytes(&gather)),
                        (BindingKind::StorageRead, words_to_bytes(&scatter)),
                        (BindingKind::StorageReadWrite, vec![0u8; 4 * elements as usize]),
                    ],
                    output: 3,
                    expected: Some(dst),
                    reset_before_check: false,
                }
            }
        }
    }
}

/// Timestamp query set and the buffers its two values travel through.
#[derive(Debug)]
struct Timestamps {
    set: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    staging: wgpu::Buffer,
    period_ns: f64,
}

/// A compiled, checked candidate.
#[derive(Debug)]
struct Prepared {
    pipeline: wgpu::ComputePipeline,
    grid: (u32, u32),
}

/// Core's [`BackendTimer`] for one kernel on one device: buffers created
/// and filled once, one pipeline per candidate compiled and checked on
/// first use, timestamp queries around each sample (see the module docs).
pub struct KernelTimer<'g> {
    gpu: &'g GpuDevice,
    kernel: TuneKernel,
    shape: Shape,
    key: ProgramKey,
    limits: AdapterLimits,
    host: HostData,
    buffers: Vec<wgpu::Buffer>,
    module: wgpu::ShaderModule,
    pipeline_layout: wgpu::PipelineLayout,
    bind_group: wgpu::BindGroup,
    prepared: HashMap<[u32; 3], Prepared>,
    timestamps: Option<Timestamps>,
    dispatches_per_sample: u32,
    measurements: u64,
    checked: Vec<[u32; 3]>,
    failure: Option<GpuError>,
}

impl std::fmt::Debug for KernelTimer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KernelTimer")
            .field("kernel", &self.kernel)
            .field("shape", &self.shape)
            .field("measurements", &self.measurements)
            .field("checked", &self.checked)
            .finish_non_exhaustive()
    }
}

impl<'g> KernelTimer<'g> {
    /// Builds `kernel`'s problem at `shape` on `gpu` (buffers filled, shader
    /// module validated); compiles nothing yet.
    ///
    /// # Errors
    /// [`GpuError::Config`] when a buffer exceeds the adapter's limits or
    /// `dispatches_per_sample` is 0; [`GpuError::Runtime`] when the shader
    /// does not validate.
    pub fn new(gpu: &'g GpuDevice, kernel: TuneKernel, shape: Shape, dispatches_per_sample: u32) -> GpuResult<Self> {
        Self::with_source(gpu, kernel, shape, dispatches_per_sample, kernel.source())
    }

    /// As [`new`](Self::new), with another WGSL source of the same
    /// interface (bindings, entry point `main`, overrides `WG_X`, `WG_Y`).
    /// For tests: a deliberately wrong variant must fail its check, never
    /// win. The [`ProgramKey`] stays the real kernel's.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn with_source(
        gpu: &'g GpuDevice,
        kernel: TuneKernel,
        shape: Shape,
        dispatches_per_sample: u32,
        source: &str,
    ) -> GpuResult<Self> {
        if dispatches_per_sample == 0 {
            return Err(GpuError::Config("dispatches per sample must be at least 1".into()));
        }
        let host = HostData::new(&shape);
        let binding_limit = gpu.limits.max_storage_buffer_binding_size.min(gpu.limits.max_buffer_size);
        for (kind, bytes) in &host.bindings {
            if *kind != BindingKind::Uniform && bytes.len() as u64 > binding_limit {
                return Err(GpuError::Config(format!(
                    "`{}` at {} needs a {}-byte buffer; `{}` binds at most {binding_limit} bytes (use a smaller --scale)",
                    kernel.name(),
                    shape.describe(),
                    bytes.len(),
                    gpu.report.name
                )));
            }
        }
        let device = &gpu.device;
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(kernel.name()),
            source: wgpu::ShaderSource::Wgsl(source.into()),
        });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(GpuError::Runtime {
                during: format!("building the `{}` shader", kernel.name()),
                message: e.to_string(),
            });
        }
        let entries: Vec<wgpu::BindGroupLayoutEntry> = host
            .bindings
            .iter()
            .enumerate()
            .map(|(i, (kind, _))| wgpu::BindGroupLayoutEntry {
                binding: i as u32,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: kind.binding_type(),
                count: None,
            })
            .collect();
        let bind_group_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some(kernel.name()),
            entries: &entries,
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(kernel.name()),
            bind_group_layouts: &[Some(&bind_group_layout)],
            immediate_size: 0,
        });
        let buffers: Vec<wgpu::Buffer> = host
            .bindings
            .iter()
            .map(|(kind, bytes)| {
                let buffer = device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(kernel.name()),
                    size: bytes.len() as u64,
                    usage: kind.usage(),
                    mapped_at_creation: false,
                });
                gpu.queue.write_buffer(&buffer, 0, bytes);
                buffer
            })
            .collect();
        let bind_entries: Vec<wgpu::BindGroupEntry> = buffers
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry { binding: i as u32, resource: b.as_entire_binding() })
            .collect();
        let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(kernel.name()),
            layout: &bind_group_layout,
            entries: &bind_entries,
        });
        let timestamps = gpu.features.contains(wgpu::Features::TIMESTAMP_QUERY).then(|| Timestamps {
            set: device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("tune timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count: 2,
            }),
            resolve: device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("tune timestamp resolve"),
                size: 16,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            }),
            staging: device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("tune timestamp staging"),
                size: 16,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }),
            period_ns: f64::from(gpu.queue.get_timestamp_period()),
        });
        gpu.errors.check(|| format!("setting up `{}`", kernel.name()))?;
        Ok(KernelTimer {
            gpu,
            kernel,
            shape,
            key: program_key(kernel, &shape),
            limits: adapter_limits(gpu),
            host,
            buffers,
            module,
            pipeline_layout,
            bind_group,
            prepared: HashMap::new(),
            timestamps,
            dispatches_per_sample,
            measurements: 0,
            checked: Vec::new(),
            failure: None,
        })
    }

    /// The program key samples are taken for.
    pub fn key(&self) -> ProgramKey {
        self.key
    }

    /// The kernel's shape.
    pub fn shape(&self) -> Shape {
        self.shape
    }

    /// How samples are timed on this device.
    pub fn timing(&self) -> TimingMethod {
        if self.timestamps.is_some() { TimingMethod::TimestampQuery } else { TimingMethod::WallClock }
    }

    /// Samples taken so far ([`BackendTimer::time_ns`] calls that succeeded).
    pub fn measurements(&self) -> u64 {
        self.measurements
    }

    /// Pipelines compiled so far (one per candidate used).
    pub fn compiles(&self) -> usize {
        self.prepared.len()
    }

    /// Candidates whose output was checked against the CPU, in order.
    pub fn checked(&self) -> &[[u32; 3]] {
        &self.checked
    }

    /// The GPU error behind the last failed [`BackendTimer::time_ns`]
    /// (core's error type cannot carry it), taken.
    pub fn take_failure(&mut self) -> Option<GpuError> {
        self.failure.take()
    }

    /// Compiles `workgroup`'s pipeline and checks one dispatch against the
    /// CPU, once; later calls do nothing.
    ///
    /// # Errors
    /// [`GpuError::Config`] for a size outside the adapter's limits (or a
    /// `z` other than 1: the kernels are 2D); [`GpuError::Runtime`] for a
    /// compile or device error; [`GpuError::Integrity`] for a wrong output.
    pub fn prepare(&mut self, workgroup: [u32; 3]) -> GpuResult<()> {
        if self.prepared.contains_key(&workgroup) {
            return Ok(());
        }
        let name = self.kernel.name();
        if !self.limits.allows(workgroup) || workgroup[2] != 1 {
            return Err(GpuError::Config(format!(
                "workgroup {workgroup:?} is not allowed for `{name}` on `{}` (limits {:?}; z must be 1)",
                self.gpu.report.name, self.limits
            )));
        }
        let shared = shared_bytes(self.kernel, workgroup);
        if shared > u64::from(self.gpu.limits.max_compute_workgroup_storage_size) {
            return Err(GpuError::Config(format!(
                "workgroup {workgroup:?} of `{name}` needs {shared} bytes of workgroup memory; `{}` has {}",
                self.gpu.report.name, self.gpu.limits.max_compute_workgroup_storage_size
            )));
        }
        let grid = self.grid(workgroup)?;
        let mut constants = vec![("WG_X", f64::from(workgroup[0])), ("WG_Y", f64::from(workgroup[1]))];
        if let Shape::Reduce { items_per_invocation, .. } = self.shape {
            constants.push(("ITEMS", f64::from(items_per_invocation)));
        }
        let device = &self.gpu.device;
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(name),
            layout: Some(&self.pipeline_layout),
            module: &self.module,
            entry_point: Some("main"),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants: &constants,
                zero_initialize_workgroup_memory: false,
            },
            cache: None,
        });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(GpuError::Runtime {
                during: format!("compiling `{name}` with workgroup {workgroup:?}"),
                message: e.to_string(),
            });
        }
        self.gpu.errors.check(|| format!("compiling `{name}` with workgroup {workgroup:?}"))?;
        let prepared = Prepared { pipeline, grid };
        self.check(workgroup, &prepared)?;
        self.prepared.insert(workgroup, prepared);
        Ok(())
    }

    /// Workgroups to dispatch: `(x, y)`, 2D when one dimension would pass
    /// the adapter's limit (the kernels skip invocations past the end).
    fn grid(&self, workgroup: [u32; 3]) -> GpuResult<(u32, u32)> {
        let max = u64::from(self.gpu.limits.max_compute_workgroups_per_dimension);
        let too_many = |x: u64, y: u64| {
            GpuError::Config(format!(
                "`{}` at {} with workgroup {workgroup:?} needs {x} x {y} workgroups; `{}` allows {max} per dimension",
                self.kernel.name(),
                self.shape.describe(),
                self.gpu.report.name
            ))
        };
        let linear = |groups: u64| -> GpuResult<(u32, u32)> {
            let (x, y) = if groups <= max { (groups, 1) } else { (max, groups.div_ceil(max)) };
            if y > max {
                return Err(too_many(x, y));
            }
            Ok((x as u32, y as u32))
        };
        let inv = invocations(workgroup);
        match self.shape {
            Shape::Stream { words } => linear(u64::from(words).div_ceil(inv)),
            Shape::Gather { elements } => linear(u64::from(elements).div_ceil(inv)),
            Shape::Reduce { words, items_per_invocation } => {
                linear(u64::from(words).div_ceil(inv * u64::from(items_per_invocation)))
            }
            Shape::Matmul { m, n, .. } => {
                let x = u64::from(n).div_ceil(u64::from(workgroup[0]));
                let y = u64::from(m).div_ceil(u64::from(workgroup[1]));
                if x > max || y > max {
                    return Err(too_many(x, y));
                }
                Ok((x as u32, y as u32))
            }
        }
    }

    fn dispatch(&self, pass: &mut wgpu::ComputePass<'_>, prepared: &Prepared, times: u32) {
        pass.set_pipeline(&prepared.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        for _ in 0..times {
            pass.dispatch_workgroups(prepared.grid.0, prepared.grid.1, 1);
        }
    }

    /// One dispatch from known inputs, read back and compared word for word.
    fn check(&mut self, workgroup: [u32; 3], prepared: &Prepared) -> GpuResult<()> {
        let name = self.kernel.name();
        let output = &self.buffers[self.host.output];
        let bytes = output.size();
        if self.host.reset_before_check {
            self.gpu.queue.write_buffer(output, 0, &self.host.bindings[self.host.output].1);
        }
        let device = &self.gpu.device;
        let staging = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("tune check staging"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("tune check") });
        if !self.host.reset_before_check {
            // A stale result of another candidate must not pass for this one.
            encoder.clear_buffer(output, 0, None);
        }
        {
            let mut pass = encoder
                .begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("tune check"), timestamp_writes: None });
            self.dispatch(&mut pass, prepared, 1);
        }
        encoder.copy_buffer_to_buffer(output, 0, &staging, 0, bytes);
        self.gpu.queue.submit([encoder.finish()]);
        let during = format!("checking `{name}` with workgroup {workgroup:?}");
        let got = map_read(self.gpu, &staging, bytes, &during)?;
        let got: Vec<u32> = got.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        let computed;
        let expected: &[u32] = match (&self.host.expected, self.shape) {
            (Some(e), _) => e,
            (None, Shape::Reduce { items_per_invocation, .. }) => {
                let input: Vec<u32> = self.host.bindings[0]
                    .1
                    .chunks_exact(4)
                    .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                computed = reduce_expected(&input, items_per_invocation, workgroup, got.len());
                &computed
            }
            (None, _) => return Err(GpuError::Config(format!("`{name}` has no CPU reference"))),
        };
        compare_words(name, workgroup, &got, expected)?;
        self.checked.push(workgroup);
        Ok(())
    }

    /// One sample of `workgroup` (prepared): nanoseconds per dispatch.
    fn sample(&mut self, workgroup: [u32; 3]) -> GpuResult<u64> {
        self.prepare(workgroup)?;
        let prepared = &self.prepared[&workgroup];
        let name = self.kernel.name();
        let k = self.dispatches_per_sample;
        let device = &self.gpu.device;
        let during = || format!("timing `{name}` with workgroup {workgroup:?}");
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("tune sample") });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("tune warm-up"),
                timestamp_writes: None,
            });
            self.dispatch(&mut pass, prepared, 1);
        }
        let Some(ts) = &self.timestamps else {
            // No timestamps: wall time around the timed submission alone.
            self.gpu.queue.submit([encoder.finish()]);
            self.gpu.wait(&during())?;
            let mut encoder =
                device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("tune sample") });
            {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("tune timed"),
                    timestamp_writes: None,
                });
                self.dispatch(&mut pass, prepared, k);
            }
            let started = Instant::now();
            self.gpu.queue.submit([encoder.finish()]);
            self.gpu.wait(&during())?;
            let ns = started.elapsed().as_nanos() / u128::from(k);
            return Ok(u64::try_from(ns).unwrap_or(u64::MAX).max(1));
        };
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("tune timed"),
                timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                    query_set: &ts.set,
                    beginning_of_pass_write_index: Some(0),
                    end_of_pass_write_index: Some(1),
                }),
            });
            self.dispatch(&mut pass, prepared, k);
        }
        encoder.resolve_query_set(&ts.set, 0..2, &ts.resolve, 0);
        encoder.copy_buffer_to_buffer(&ts.resolve, 0, &ts.staging, 0, 16);
        self.gpu.queue.submit([encoder.finish()]);
        let raw = map_read(self.gpu, &ts.staging, 16, &during())?;
        let begin = u64::from_le_bytes(raw[0..8].try_into().unwrap_or([0; 8]));
        let end = u64::from_le_bytes(raw[8..16].try_into().unwrap_or([0; 8]));
        // A zero or backwards interval is a broken clock, not a fast
        // kernel: it must not win.
        let ticks = end.checked_sub(begin).filter(|&t| t > 0).ok_or_else(|| GpuError::Runtime {
            during: during(),
            message: format!(
                "timestamps did not advance (begin {begin}, end {end}); a larger --dispatches-per-sample or --scale \
                 makes a sample longer than the clock's resolution"
            ),
        })?;
        let ns = (ticks as f64 * ts.period_ns / f64::from(k)).round();
        Ok((ns as u64).max(1))
    }
}

impl BackendTimer for KernelTimer<'_> {
    fn time_ns(&mut self, key: &ProgramKey, workgroup: [u32; 3]) -> cachescope_core::Result<u64> {
        if *key != self.key {
            return Err(cachescope_core::Error::config(format!(
                "timer of `{}` ({}) asked to time program {key}",
                self.kernel.name(),
                self.key
            )));
        }
        match self.sample(workgroup) {
            Ok(ns) => {
                self.measurements += 1;
                Ok(ns)
            }
            Err(e) => {
                let message = e.to_string();
                self.failure = Some(e);
                Err(cachescope_core::Error::config(format!("GPU timer: {message}")))
            }
        }
    }
}

/// Maps `staging` (the target of a copy already submitted), waits, and
/// returns its first `bytes` bytes.
fn map_read(gpu: &GpuDevice, staging: &wgpu::Buffer, bytes: u64, during: &str) -> GpuResult<Vec<u8>> {
    let failed = |message: String| GpuError::Runtime { during: during.to_owned(), message };
    let (tx, rx) = mpsc::channel();
    staging.slice(..bytes).map_async(wgpu::MapMode::Read, move |r| {
        let _ = tx.send(r);
    });
    gpu.wait(during)?;
    rx.recv().map_err(|e| failed(e.to_string()))?.map_err(|e| failed(e.to_string()))?;
    let out = staging.slice(..bytes).get_mapped_range().map_err(|e| failed(e.to_string()))?.to_vec();
    staging.unmap();
    Ok(out)
}

fn compare_words(name: &str, workgroup: [u32; 3], got: &[u32], expected: &[u32]) -> GpuResult<()> {
    if got.len() != expected.len() {
        return Err(GpuError::Integrity(format!(
            "`{name}` with workgroup {workgroup:?}: read back {} words, expected {}",
            got.len(),
            expected.len()
        )));
    }
    let mut bad = got.iter().zip(expected).enumerate().filter(|(_, (g, e))| g != e);
    if let Some((i, (g, e))) = bad.next() {
        let differing = 1 + bad.count();
        return Err(GpuError::Integrity(format!(
            "`{name}` with workgroup {workgroup:?}: word {i} is {g:#010x}, expected {e:#010x} \
             ({differing} of {} words differ)",
            got.len()
        )));
    }
    Ok(())
}

/// One candidate in the exhaustive sweep.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CandidateTimes {
    /// The workgroup size.
    pub workgroup: [u32; 3],
    /// Samples taken.
    pub samples: u32,
    /// Fastest sample, ns per dispatch.
    pub min_ns: u64,
    /// Median sample, ns per dispatch.
    pub median_ns: u64,
    /// Slowest sample, ns per dispatch.
    pub max_ns: u64,
}

/// Every candidate measured the same number of times: the reference the
/// tuner's choice is judged against.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExhaustiveReport {
    /// Interleaved rounds (each measures every candidate once).
    pub rounds: u32,
    /// Samples taken, all candidates together.
    pub measurements: u64,
    /// The candidate with the lowest median (ties: lower minimum, then
    /// earlier).
    pub best: [u32; 3],
    /// Its median, ns per dispatch.
    pub best_median_ns: u64,
    /// The tuner's choice's median in this sweep, ns per dispatch.
    pub choice_median_ns: u64,
    /// `choice_median_ns / best_median_ns`: 1.0 when the tuner found the
    /// best, never below 1.0.
    pub regret: f64,
    /// Per candidate, in candidate order.
    pub candidates: Vec<CandidateTimes>,
}

fn median(samples: &[u64]) -> u64 {
    let mut s = samples.to_vec();
    s.sort_unstable();
    match s.len() {
        0 => 0,
        n if n % 2 == 1 => s[n / 2],
        n => ((u128::from(s[n / 2 - 1]) + u128::from(s[n / 2])) / 2) as u64,
    }
}

/// Measures every candidate `rounds` times, interleaved (each round starts
/// one candidate later, so no candidate always follows the same one), and
/// judges `choice` against the best.
///
/// # Errors
/// [`GpuError::Config`] for zero rounds or a `choice` outside
/// `candidates`; the timer's error.
pub fn exhaustive(
    timer: &mut KernelTimer<'_>,
    candidates: &[[u32; 3]],
    choice: [u32; 3],
    rounds: u32,
) -> GpuResult<ExhaustiveReport> {
    if rounds == 0 || candidates.is_empty() {
        return Err(GpuError::Config("the exhaustive sweep needs at least one round and one candidate".into()));
    }
    let choice_index = candidates
        .iter()
        .position(|&c| c == choice)
        .ok_or_else(|| GpuError::Config(format!("choice {choice:?} is not among the candidates")))?;
    let key = timer.key();
    let n = candidates.len();
    let mut samples: Vec<Vec<u64>> = vec![Vec::with_capacity(rounds as usize); n];
    for round in 0..rounds as usize {
        for j in 0..n {
            let i = (round + j) % n;
            let ns = timer
                .time_ns(&key, candidates[i])
                .map_err(|e| timer.take_failure().unwrap_or_else(|| GpuError::Config(e.to_string())))?;
            samples[i].push(ns);
        }
    }
    let times: Vec<CandidateTimes> = candidates
        .iter()
        .zip(&samples)
        .map(|(&workgroup, s)| CandidateTimes {
            workgroup,
            samples: s.len() as u32,
            min_ns: s.iter().copied().min().unwrap_or(0),
            median_ns: median(s),
            max_ns: s.iter().copied().max().unwrap_or(0),
        })
        .collect();
    let best_index = (0..n).min_by_key(|&i| (times[i].median_ns, times[i].min_ns, i)).unwrap_or(0);
    let best = &times[best_index];
    let choice_median_ns = times[choice_index].median_ns;
    Ok(ExhaustiveReport {
        rounds,
        measurements: rounds as u64 * n as u64,
        best: best.workgroup,
        best_median_ns: best.median_ns,
        choice_median_ns,
        regret: choice_median_ns as f64 / best.median_ns.max(1) as f64,
        candidates: times,
    })
}

/// What to do per kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TuneOptions {
    /// Problem size (see [`BASE_WORDS`]).
    pub scale: u32,
    /// The tuner's rounds.
    pub tuner: TunerConfig,
    /// Dispatches per timed pass (the sample is their mean).
    pub dispatches_per_sample: u32,
    /// Rounds of the exhaustive sweep; `None`: no sweep.
    pub exhaustive_rounds: Option<u32>,
}

impl Default for TuneOptions {
    fn default() -> Self {
        TuneOptions {
            scale: DEFAULT_SCALE,
            tuner: TunerConfig::default(),
            dispatches_per_sample: 4,
            exhaustive_rounds: None,
        }
    }
}

/// One kernel's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KernelReport {
    /// Kernel name.
    pub kernel: TuneKernel,
    /// Its problem.
    pub shape: Shape,
    /// The key its decision is stored under.
    pub program_key: ProgramKey,
    /// Candidates, from the adapter's limits.
    pub candidates: Vec<[u32; 3]>,
    /// The workgroup size in force.
    pub choice: [u32; 3],
    /// Whether the sweep that made the decision showed every other
    /// candidate clearly slower.
    pub confident: bool,
    /// Whether the decision was reused from the store (nothing measured).
    pub from_store: bool,
    /// Samples the tuner took (0 when from the store).
    pub measurements: u64,
    /// The decision as stored.
    pub decision: Decision,
    /// The tuner's sweep; `None` when from the store.
    pub sweep: Option<TuneOutcome>,
    /// Wall time of the decision (sweep or store lookup), compiles included.
    pub tune_seconds: f64,
    /// Candidates whose output was checked against the CPU (the choice is
    /// always among them).
    pub checked_candidates: usize,
    /// The exhaustive sweep, with `--exhaustive`.
    pub exhaustive: Option<ExhaustiveReport>,
}

/// Decides `kernel`'s workgroup size on `gpu`: from `store` when it holds a
/// decision for this adapter and program (zero measurements), otherwise by
/// a tuner sweep whose decision is put in `store` (saving is the caller's
/// call). The choice is then checked against the CPU, and with
/// `options.exhaustive_rounds` every candidate is measured too.
///
/// # Errors
/// Unusable options, limits or sizes; device errors; a failed check.
pub fn tune_kernel(
    gpu: &GpuDevice,
    store: &mut TunerStore,
    kernel: TuneKernel,
    options: &TuneOptions,
) -> GpuResult<KernelReport> {
    let shape = Shape::of(kernel, options.scale)?;
    let cands = kernel_candidates(gpu, kernel)?;
    let tuner = Tuner::new(options.tuner).map_err(|e| GpuError::Config(e.to_string()))?;
    let mut timer = KernelTimer::new(gpu, kernel, shape, options.dispatches_per_sample)?;
    let key = timer.key();
    let started = Instant::now();
    let tuned = tuner
        .tune_cached(store, &adapter_key(&gpu.report), &key, &cands, &mut timer)
        .map_err(|e| timer.take_failure().unwrap_or_else(|| GpuError::Config(e.to_string())))?;
    let tune_seconds = started.elapsed().as_secs_f64();
    // Counted by the timer, not taken from the tuner's report: "zero
    // measurements" is what the device saw.
    let measurements = timer.measurements();
    let choice = tuned.decision.workgroup;
    timer.prepare(choice)?;
    let exhaustive = match options.exhaustive_rounds {
        Some(rounds) => Some(exhaustive(&mut timer, &cands, choice, rounds)?),
        None => None,
    };
    Ok(KernelReport {
        kernel,
        shape,
        program_key: key,
        candidates: cands,
        choice,
        confident: tuned.decision.confident,
        from_store: tuned.reused(),
        measurements,
        decision: tuned.decision,
        sweep: tuned.sweep,
        tune_seconds,
        checked_candidates: timer.checked().len(),
        exhaustive,
    })
}

/// The `tune` results file.
#[derive(Debug, Clone, Serialize)]
pub struct TuneResultsFile {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Always `tune`.
    pub kind: String,
    /// What produced it.
    pub tool: ToolInfo,
    /// The device.
    pub adapter: AdapterReport,
    /// The adapter's identity in the store.
    pub adapter_key: String,
    /// The workgroup limits candidates came from.
    pub adapter_limits: AdapterLimits,
    /// How samples were timed.
    pub timing: TimingMethod,
    /// The store file.
    pub store: PathBuf,
    /// The options.
    pub config: TuneOptions,
    /// One per kernel, in the order asked; rewritten after each.
    pub kernels: Vec<KernelReport>,
}

/// Arguments of `cachescope tune`.
#[derive(Debug, clap::Args)]
pub struct TuneArgs {
    /// Kernels, comma-separated (stream, reduce, matmul, gather), or `all`.
    #[arg(long, default_value = "all")]
    pub kernels: String,
    /// Problem size: buffers of 4096 x N words, matrices of side
    /// 16 x floor(sqrt(N)). The default is quick on lavapipe; 4096 gives
    /// 64 MiB buffers and 1024 x 1024 matrices (for a real GPU).
    #[arg(long, default_value_t = DEFAULT_SCALE)]
    pub scale: u32,
    /// Use the first Vulkan adapter whose name contains this (case-insensitive).
    #[arg(long)]
    pub adapter: Option<String>,
    /// The decisions file (TOML, one table per adapter); read, and written
    /// when a kernel was tuned.
    #[arg(long, default_value = "tuner.toml")]
    pub store: PathBuf,
    /// Also measure every candidate `--exhaustive-rounds` times and report
    /// the tuned choice against the best (the regret).
    #[arg(long)]
    pub exhaustive: bool,
    /// Interleaved rounds of the exhaustive sweep.
    #[arg(long, default_value_t = 30)]
    pub exhaustive_rounds: u32,
    /// Dispatches per timed pass (a sample is their mean).
    #[arg(long, default_value_t = TuneOptions::default().dispatches_per_sample)]
    pub dispatches_per_sample: u32,
    /// Rounds before the tuner may drop a candidate.
    #[arg(long, default_value_t = TunerConfig::default().min_rounds)]
    pub min_rounds: u32,
    /// Rounds after which the tuner stops, not confident.
    #[arg(long, default_value_t = TunerConfig::default().max_rounds)]
    pub max_rounds: u32,
    /// Write results (JSON) here; rewritten after every kernel.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// No table (the per-kernel lines still print).
    #[arg(long)]
    pub quiet: bool,
}

/// Runs `cachescope tune`.
///
/// # Errors
/// Bad arguments, an unreadable or corrupt store (with its line), no
/// adapter (naming what to install), device errors, a failed check; the
/// store keeps every decision made before the failure.
pub fn run_tune(a: TuneArgs) -> anyhow::Result<()> {
    let kernels = TuneKernel::parse_list(&a.kernels).map_err(anyhow::Error::msg).context("--kernels")?;
    if a.exhaustive && a.exhaustive_rounds == 0 {
        anyhow::bail!("--exhaustive-rounds must be at least 1");
    }
    let options = TuneOptions {
        scale: a.scale,
        tuner: TunerConfig { min_rounds: a.min_rounds, max_rounds: a.max_rounds },
        dispatches_per_sample: a.dispatches_per_sample,
        exhaustive_rounds: a.exhaustive.then_some(a.exhaustive_rounds),
    };
    Tuner::new(options.tuner).context("--min-rounds / --max-rounds")?;
    for &k in &kernels {
        Shape::of(k, a.scale)?;
    }
    // The store first: a corrupt file fails before any device work.
    let mut store =
        TunerStore::open(&a.store).with_context(|| format!("opening the tuner store `{}`", a.store.display()))?;
    let gpu = GpuDevice::open(a.adapter.as_deref())?;
    let timing = if gpu.features.contains(wgpu::Features::TIMESTAMP_QUERY) {
        TimingMethod::TimestampQuery
    } else {
        TimingMethod::WallClock
    };
    let mut file = TuneResultsFile {
        schema_version: SCHEMA_VERSION,
        kind: "tune".into(),
        tool: ToolInfo::current(),
        adapter: gpu.report.clone(),
        adapter_key: adapter_key(&gpu.report),
        adapter_limits: adapter_limits(&gpu),
        timing,
        store: a.store.clone(),
        config: options,
        kernels: Vec::new(),
    };
    println!("adapter: {} ({})", file.adapter_key, gpu.report.device_type);
    println!("timing: {}, {} dispatches per sample", timing.describe(), options.dispatches_per_sample);
    for kernel in kernels {
        let report = tune_kernel(&gpu, &mut store, kernel, &options)
            .with_context(|| format!("tuning `{}` on `{}`", kernel.name(), gpu.report.name))?;
        if store.is_dirty() {
            store.save().with_context(|| format!("saving the tuner store `{}`", a.store.display()))?;
        }
        println!("{}", kernel_line(&report));
        file.kernels.push(report);
        if let Some(out) = &a.out {
            write_json_atomic(out, &file)?;
        }
    }
    if !a.quiet {
        print!("{}", render_table(&file));
        if let Some(out) = &a.out {
            println!("results: {}", out.display());
        }
    }
    Ok(())
}

fn wg_text(wg: [u32; 3]) -> String {
    if wg[2] == 1 { format!("{}x{}", wg[0], wg[1]) } else { format!("{}x{}x{}", wg[0], wg[1], wg[2]) }
}

/// The line printed as each kernel finishes.
pub fn kernel_line(r: &KernelReport) -> String {
    let mut line = format!(
        "{}: choice {}, confident: {}, from_store: {}, measurements: {}",
        r.kernel.name(),
        wg_text(r.choice),
        r.confident,
        r.from_store,
        r.measurements
    );
    if let Some(x) = &r.exhaustive {
        let _ = write!(
            line,
            ", exhaustive best {} ({} measurements), regret {:.3}",
            wg_text(x.best),
            x.measurements,
            x.regret
        );
    }
    line
}

/// The summary table: tuner choices against the exhaustive best.
pub fn render_table(file: &TuneResultsFile) -> String {
    let mut out = format!("\nstore: {}\n", file.store.display());
    let _ = writeln!(
        out,
        "{:<7} {:>16} {:>5} {:>9} {:>5} {:>6} {:>6} {:>12} | {:>9} {:>12} {:>12} {:>7} {:>6}",
        "kernel",
        "shape",
        "cands",
        "choice",
        "conf",
        "stored",
        "meas",
        "tuner_med_us",
        "exh_best",
        "best_med_us",
        "choice_med_us",
        "regret",
        "meas"
    );
    let us = |ns: u64| ns as f64 / 1e3;
    for r in &file.kernels {
        let yes_no = |b: bool| if b { "yes" } else { "no" };
        let tuner_median = r.sweep.as_ref().and_then(|s| s.best_report()).map_or(r.decision.median_ns, |c| c.median_ns);
        let _ = write!(
            out,
            "{:<7} {:>16} {:>5} {:>9} {:>5} {:>6} {:>6} {:>12.2} |",
            r.kernel.name(),
            r.shape.describe(),
            r.candidates.len(),
            wg_text(r.choice),
            yes_no(r.confident),
            yes_no(r.from_store),
            r.measurements,
            us(tuner_median)
        );
        match &r.exhaustive {
            Some(x) => {
                let _ = writeln!(
                    out,
                    " {:>9} {:>12.2} {:>12.2} {:>7.3} {:>6}",
                    wg_text(x.best),
                    us(x.best_median_ns),
                    us(x.choice_median_ns),
                    x.regret,
                    x.measurements
                );
            }
            None => {
                let _ = writeln!(out, " {:>9} {:>12} {:>12} {:>7} {:>6}", "-", "-", "-", "-", "-");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_lists() {
        assert_eq!(TuneKernel::parse_list("all").unwrap(), TuneKernel::ALL);
        assert_eq!(TuneKernel::parse_list(" matmul, stream,matmul").unwrap(), [TuneKernel::Matmul, TuneKernel::Stream]);
        assert!(TuneKernel::parse_list("stream,fft").unwrap_err().contains("`fft`"));
        assert!(TuneKernel::parse_list(",").is_err());
    }

    #[test]
    fn shapes_scale_and_key_on_shape() {
        assert_eq!(Shape::of(TuneKernel::Stream, 1).unwrap(), Shape::Stream { words: 4096 });
        assert_eq!(Shape::of(TuneKernel::Matmul, 4096).unwrap(), Shape::Matmul { m: 1024, n: 1024, k: 1024 });
        assert_eq!(Shape::of(TuneKernel::Stream, 4096).unwrap(), Shape::Stream { words: 16 << 20 });
        assert!(Shape::of(TuneKernel::Stream, 0).is_err());
        assert!(Shape::of(TuneKernel::Gather, u32::MAX).is_err());
        let key = |k, s| program_key(k, &Shape::of(k, s).unwrap());
        assert_ne!(key(TuneKernel::Stream, 1), key(TuneKernel::Stream, 2), "shape is part of the key");
        assert_ne!(key(TuneKernel::Stream, 1), key(TuneKernel::Gather, 1), "source is part of the key");
        assert_eq!(key(TuneKernel::Reduce, 3), key(TuneKernel::Reduce, 3));
    }

    #[test]
    fn reduce_reference_handles_partial_blocks() {
        let input: Vec<u32> = (1..=10).collect();
        assert_eq!(reduce_expected(&input, 2, [2, 1, 1], 4), [10, 26, 19, 0]);
        assert_eq!(reduce_expected(&[u32::MAX, 2], 8, [64, 1, 1], 1), [1], "wrapping sum");
    }

    #[test]
    fn the_wgsl_declares_what_the_harness_sets() {
        for k in TuneKernel::ALL {
            let src = k.source();
            assert!(src.contains("@workgroup_size(WG_X, WG_Y)"), "{}", k.name());
            assert!(src.contains("override WG_X") && src.contains("override WG_Y"), "{}", k.name());
        }
        assert!(TuneKernel::Reduce.source().contains("override ITEMS"));
    }

    #[test]
    fn mismatches_name_the_first_word() {
        let err = compare_words("stream", [64, 1, 1], &[1, 2, 9, 9], &[1, 2, 3, 4]).unwrap_err().to_string();
        assert!(err.contains("word 2 is 0x00000009, expected 0x00000003 (2 of 4 words differ)"), "{err}");
        assert!(compare_words("stream", [64, 1, 1], &[1], &[1, 2]).is_err());
    }

    #[test]
    fn median_of_even_and_odd() {
        assert_eq!(median(&[3, 1, 2]), 2);
        assert_eq!(median(&[4, 1, 2, 3]), 2);
        assert_eq!(median(&[]), 0);
    }
}
