//! A recording session: the device side of a workload. It owns the real
//! wgpu buffers and pipelines of one program and writes each dispatch into
//! the trace as it is issued.
//!
//! What the trace sees follows the format's meaning of a buffer's life: a
//! buffer gets its trace id and `alloc` just before the first dispatch that
//! binds it (host uploads are not dispatches: a buffer first read after an
//! upload is exactly what a cache counts as an upload on miss), and its
//! `free` when the program releases it. Ids are dense in allocation order.
//!
//! Dispatches are encoded one compute pass each into a shared command
//! encoder and submitted in batches; a readback submits what is pending
//! first, so it sees every write issued before it. Uploads go only into
//! buffers no dispatch has bound yet, so `queue.write_buffer` (ordered
//! before the next submission) can never overtake a dispatch that was
//! encoded earlier but not yet submitted.

use std::sync::mpsc;

use cachescope_core::policy::Access;
use rustc_hash::FxHashMap;

use super::kernels::Specialised;
use super::writer::{TraceFile, TraceStats};
use crate::gpu::{GpuDevice, GpuError, GpuResult};

/// Dispatches encoded before a submission.
const DISPATCHES_PER_SUBMIT: usize = 64;

/// A buffer of the program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Buf(usize);

#[derive(Debug)]
struct Slot {
    buffer: wgpu::Buffer,
    bytes: u64,
    label: String,
    /// The trace id, once a dispatch bound it.
    trace_id: Option<u64>,
}

#[derive(Debug)]
struct Compiled {
    pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
}

/// The device-side program of one workload, recording as it goes.
#[derive(Debug)]
pub struct Session<'g> {
    gpu: &'g GpuDevice,
    trace: TraceFile,
    slots: Vec<Option<Slot>>,
    modules: FxHashMap<&'static str, wgpu::ShaderModule>,
    pipelines: FxHashMap<u64, Compiled>,
    encoder: Option<wgpu::CommandEncoder>,
    encoded: usize,
    next_trace_id: u64,
    /// Buffer bytes created (uploads included), for the summary.
    created_bytes: u64,
}

fn released(buf: Buf) -> GpuError {
    GpuError::Trace(format!("recorder: buffer #{} is used after it was released", buf.0))
}

fn runtime(during: impl Into<String>, message: impl std::fmt::Display) -> GpuError {
    GpuError::Runtime { during: during.into(), message: message.to_string() }
}

impl<'g> Session<'g> {
    /// A session on `gpu` writing `trace`.
    pub fn new(gpu: &'g GpuDevice, trace: TraceFile) -> Session<'g> {
        Session {
            gpu,
            trace,
            slots: Vec::new(),
            modules: FxHashMap::default(),
            pipelines: FxHashMap::default(),
            encoder: None,
            encoded: 0,
            next_trace_id: 0,
            created_bytes: 0,
        }
    }

    /// The device.
    pub fn gpu(&self) -> &GpuDevice {
        self.gpu
    }

    fn slot(&self, buf: Buf) -> GpuResult<&Slot> {
        self.slots.get(buf.0).and_then(Option::as_ref).ok_or_else(|| released(buf))
    }

    /// A new device buffer of `bytes` (zeroed by wgpu), not yet in the trace.
    ///
    /// # Errors
    /// [`GpuError::Config`] when the adapter cannot bind a buffer that large
    /// (a smaller `--scale` fits); [`GpuError::Runtime`] when creation fails.
    pub fn create(&mut self, label: &str, bytes: u64) -> GpuResult<Buf> {
        let limits = &self.gpu.limits;
        let cap = limits.max_storage_buffer_binding_size.min(limits.max_buffer_size);
        if bytes > cap {
            return Err(GpuError::Config(format!(
                "buffer `{label}` needs {bytes} bytes, more than adapter `{}` binds ({cap} bytes): use a smaller --scale",
                self.gpu.report.name
            )));
        }
        if bytes == 0 || !bytes.is_multiple_of(4) {
            return Err(GpuError::Config(format!("buffer `{label}`: {bytes} bytes is not a positive multiple of 4")));
        }
        let scope = self.gpu.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let buffer = self.gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(runtime(format!("creating buffer `{label}` ({bytes} bytes)"), e));
        }
        self.created_bytes += bytes;
        self.slots.push(Some(Slot { buffer, bytes, label: label.to_owned(), trace_id: None }));
        Ok(Buf(self.slots.len() - 1))
    }

    fn upload(&mut self, label: &str, bytes: Vec<u8>) -> GpuResult<Buf> {
        let buf = self.create(label, bytes.len() as u64)?;
        let slot = self.slot(buf)?;
        self.gpu.queue.write_buffer(&slot.buffer, 0, &bytes);
        Ok(buf)
    }

    /// A new buffer holding `data` (a host upload).
    ///
    /// # Errors
    /// As [`Session::create`].
    pub fn upload_f32(&mut self, label: &str, data: &[f32]) -> GpuResult<Buf> {
        self.upload(label, data.iter().flat_map(|v| v.to_le_bytes()).collect())
    }

    /// A new buffer holding `data` (a host upload).
    ///
    /// # Errors
    /// As [`Session::create`].
    pub fn upload_u32(&mut self, label: &str, data: &[u32]) -> GpuResult<Buf> {
        self.upload(label, data.iter().flat_map(|v| v.to_le_bytes()).collect())
    }

    /// A new zeroed buffer of `len` f32 values.
    ///
    /// # Errors
    /// As [`Session::create`].
    pub fn zeroed_f32(&mut self, label: &str, len: usize) -> GpuResult<Buf> {
        self.create(label, len as u64 * 4)
    }

    fn compile(&mut self, spec: &Specialised, id: u64) -> GpuResult<()> {
        if self.pipelines.contains_key(&id) {
            return Ok(());
        }
        let device = &self.gpu.device;
        let file = spec.kernel.file;
        if !self.modules.contains_key(file) {
            let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
            let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(file),
                source: wgpu::ShaderSource::Wgsl(spec.kernel.wgsl.into()),
            });
            if let Some(e) = pollster::block_on(scope.pop()) {
                return Err(runtime(format!("compiling workloads/gpu/{file}"), e));
            }
            self.modules.insert(file, module);
        }
        let module = self.modules.get(file).ok_or_else(|| runtime(format!("compiling {file}"), "module missing"))?;
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(spec.op),
            layout: None,
            module,
            entry_point: Some("main"),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants: &spec.constants,
                zero_initialize_workgroup_memory: false,
            },
            cache: None,
        });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(runtime(format!("creating the pipeline of {file} with {:?}", spec.constants), e));
        }
        let layout = pipeline.get_bind_group_layout(0);
        self.pipelines.insert(id, Compiled { pipeline, layout });
        Ok(())
    }

    /// Issues `spec` over `groups` workgroups with `bufs` bound in binding
    /// order, and records it (with the `alloc` of buffers bound for the
    /// first time).
    ///
    /// # Errors
    /// [`GpuError::Config`] for a wrong binding count or too many
    /// workgroups; [`GpuError::Trace`] for a released buffer or a trace
    /// write failure; [`GpuError::Runtime`] when compilation fails.
    pub fn dispatch(&mut self, spec: &Specialised, bufs: &[Buf], groups: [u32; 3]) -> GpuResult<()> {
        let access = spec.kernel.access;
        if bufs.len() != access.len() {
            return Err(GpuError::Config(format!(
                "{} takes {} bindings, {} given",
                spec.kernel.file,
                access.len(),
                bufs.len()
            )));
        }
        let max = self.gpu.limits.max_compute_workgroups_per_dimension;
        if groups.iter().any(|&g| g > max) {
            return Err(GpuError::Config(format!(
                "{} needs {groups:?} workgroups, more than {max} per dimension: use a smaller --scale",
                spec.op
            )));
        }
        let id = spec.pipeline_id();
        self.compile(spec, id)?;
        let mut bindings: Vec<(u64, Access)> = Vec::with_capacity(bufs.len());
        for (&buf, &a) in bufs.iter().zip(access) {
            let next = self.next_trace_id;
            let slot = self.slots.get_mut(buf.0).and_then(Option::as_mut).ok_or_else(|| released(buf))?;
            let trace_id = match slot.trace_id {
                Some(t) => t,
                None => {
                    self.trace.events().alloc(next, slot.bytes)?;
                    slot.trace_id = Some(next);
                    self.next_trace_id += 1;
                    next
                }
            };
            bindings.push((trace_id, a));
        }
        self.trace.events().dispatch(spec.op, id, &bindings)?;

        let compiled = self.pipelines.get(&id).ok_or_else(|| runtime(spec.op, "pipeline missing"))?;
        let mut entries = Vec::with_capacity(bufs.len());
        for (i, &buf) in bufs.iter().enumerate() {
            entries
                .push(wgpu::BindGroupEntry { binding: i as u32, resource: self.slot(buf)?.buffer.as_entire_binding() });
        }
        let bind_group = self.gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(spec.op),
            layout: &compiled.layout,
            entries: &entries,
        });
        let encoder = self.encoder.get_or_insert_with(|| {
            self.gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("cachescope record") })
        });
        {
            let mut pass = encoder
                .begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some(spec.op), timestamp_writes: None });
            pass.set_pipeline(&compiled.pipeline);
            pass.set_bind_group(0, &bind_group, &[]);
            pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
        }
        self.encoded += 1;
        if self.encoded >= DISPATCHES_PER_SUBMIT {
            self.submit()?;
        }
        Ok(())
    }

    fn submit(&mut self) -> GpuResult<()> {
        if let Some(encoder) = self.encoder.take() {
            self.gpu.queue.submit([encoder.finish()]);
            self.encoded = 0;
        }
        self.gpu.errors.check(|| "submitting recorded dispatches".into())
    }

    /// Releases `buf`: its `free` goes into the trace when a dispatch bound
    /// it. (wgpu keeps the memory until submitted work that uses it is done.)
    ///
    /// # Errors
    /// [`GpuError::Trace`] when `buf` was released already.
    pub fn free(&mut self, buf: Buf) -> GpuResult<()> {
        self.slot(buf)?;
        if let Some(slot) = self.slots.get_mut(buf.0).and_then(Option::take)
            && let Some(trace_id) = slot.trace_id
        {
            self.trace.events().free(trace_id)?;
        }
        Ok(())
    }

    /// Reads `buf` back to the host (submits pending work and waits).
    ///
    /// # Errors
    /// [`GpuError::Runtime`] when mapping fails or the device reported an error.
    pub fn read_f32(&mut self, buf: Buf) -> GpuResult<Vec<f32>> {
        let (bytes, label) = {
            let slot = self.slot(buf)?;
            (slot.bytes, slot.label.clone())
        };
        let during = format!("reading back `{label}`");
        let staging = self.gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("cachescope record staging"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let src = self.slot(buf)?.buffer.clone();
        let encoder = self.encoder.get_or_insert_with(|| {
            self.gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("cachescope record") })
        });
        encoder.copy_buffer_to_buffer(&src, 0, &staging, 0, bytes);
        self.submit()?;
        let (tx, rx) = mpsc::channel();
        staging.slice(..).map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.gpu.wait(&during)?;
        rx.recv().map_err(|e| runtime(during.clone(), e))?.map_err(|e| runtime(during.clone(), e))?;
        let values = {
            let view = staging.slice(..).get_mapped_range().map_err(|e| runtime(during.clone(), e))?;
            view.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
        };
        staging.unmap();
        Ok(values)
    }

    /// Waits for all work, checks for device errors and writes the trace
    /// file into place.
    ///
    /// # Errors
    /// A device error, or the trace cannot be written.
    pub fn finish(mut self) -> GpuResult<(TraceStats, SessionStats)> {
        self.submit()?;
        self.gpu.wait("finishing the workload")?;
        let stats = SessionStats { compiles: self.pipelines.len() as u64, created_bytes: self.created_bytes };
        Ok((self.trace.persist()?, stats))
    }
}

/// What a session did beyond the trace's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct SessionStats {
    /// Pipelines compiled.
    pub compiles: u64,
    /// Bytes of device buffers created.
    pub created_bytes: u64,
}
