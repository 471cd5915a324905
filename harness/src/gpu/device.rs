//! The device: a headless wgpu instance on Vulkan, the adapter chosen by a
//! name substring, a device with the adapter's full limits, and capture of
//! the errors wgpu reports asynchronously (validation, out of memory, device
//! lost), so that they become [`GpuError`]s instead of panics.

use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::{GpuError, GpuResult};

/// What to install when no adapter is found.
pub const INSTALL_HINT: &str = "install a Vulkan driver and loader: on Debian/Ubuntu without a GPU, \
     `apt-get install mesa-vulkan-drivers libvulkan1` (lavapipe, a CPU Vulkan driver); \
     on an NVIDIA machine, the NVIDIA driver's Vulkan ICD plus `libvulkan1`";

/// The adapter a run used: name, driver, and the limits that shape the
/// replay, as written into results files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdapterReport {
    /// Adapter name (`NVIDIA H100 80GB HBM3`, `llvmpipe (LLVM 15.0.6, 256 bits)`).
    pub name: String,
    /// Driver name.
    pub driver: String,
    /// Driver version / details.
    pub driver_info: String,
    /// `DiscreteGpu`, `Cpu`, ...
    pub device_type: String,
    /// Backend (always Vulkan here).
    pub backend: String,
    /// PCI vendor id.
    pub vendor: u32,
    /// PCI device id.
    pub device: u32,
    /// Largest buffer.
    pub max_buffer_size: u64,
    /// Largest storage binding (buffers above are split into chunks).
    pub max_storage_buffer_binding_size: u64,
    /// Uniform dynamic-offset alignment.
    pub min_uniform_buffer_offset_alignment: u32,
    /// Workgroups per dispatch dimension.
    pub max_compute_workgroups_per_dimension: u32,
    /// Invocations per workgroup.
    pub max_compute_invocations_per_workgroup: u32,
    /// Whether timestamp queries are available (GPU time).
    pub timestamp_query: bool,
    /// Whether the adapter supports wgpu pipeline caches.
    pub pipeline_cache: bool,
    /// Nanoseconds per timestamp tick.
    pub timestamp_period_ns: f32,
}

/// Errors wgpu reported through the uncaptured-error handler or the
/// device-lost callback, first one kept.
#[derive(Debug, Clone, Default)]
pub struct ErrorSink(Arc<Mutex<Option<String>>>);

impl ErrorSink {
    fn record(&self, message: String) {
        let mut slot = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            *slot = Some(message);
        }
    }

    /// The first error reported, if any (it stays reported).
    pub fn get(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// `Err` naming `during` when an error was reported.
    ///
    /// # Errors
    /// [`GpuError::Runtime`] with the first reported error.
    pub fn check(&self, during: impl FnOnce() -> String) -> GpuResult<()> {
        match self.get() {
            Some(message) => Err(GpuError::Runtime { during: during(), message }),
            None => Ok(()),
        }
    }
}

/// An open device.
#[derive(Debug)]
pub struct GpuDevice {
    /// The wgpu device.
    pub device: wgpu::Device,
    /// Its queue.
    pub queue: wgpu::Queue,
    /// What it is.
    pub report: AdapterReport,
    /// wgpu's description of the adapter (keys the driver pipeline cache).
    pub adapter_info: wgpu::AdapterInfo,
    /// The limits it was created with (the adapter's).
    pub limits: wgpu::Limits,
    /// The features it was created with.
    pub features: wgpu::Features,
    /// Asynchronously reported errors.
    pub errors: ErrorSink,
}

/// Names of the Vulkan adapters wgpu finds (for messages and `--adapter`).
pub fn list_adapters() -> Vec<String> {
    let instance = wgpu::Instance::new(instance_descriptor());
    pollster::block_on(instance.enumerate_adapters(wgpu::Backends::VULKAN)).iter().map(|a| a.get_info().name).collect()
}

fn instance_descriptor() -> wgpu::InstanceDescriptor {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    // Vulkan only: the project measures Vulkan (lavapipe and NVIDIA).
    desc.backends = wgpu::Backends::VULKAN;
    desc
}

impl GpuDevice {
    /// Opens the first Vulkan adapter whose name contains `adapter`
    /// (case-insensitive; any adapter when `None`, preferring a discrete GPU).
    ///
    /// # Errors
    /// [`GpuError::NoAdapter`] naming what to install or which adapters
    /// exist; [`GpuError::Device`] when the device cannot be created.
    pub fn open(adapter: Option<&str>) -> GpuResult<GpuDevice> {
        let instance = wgpu::Instance::new(instance_descriptor());
        let adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::VULKAN));
        if adapters.is_empty() {
            return Err(GpuError::NoAdapter(format!("no Vulkan adapter found; {INSTALL_HINT}")));
        }
        let names: Vec<String> = adapters.iter().map(|a| a.get_info().name).collect();
        let rank = |a: &wgpu::Adapter| match a.get_info().device_type {
            wgpu::DeviceType::DiscreteGpu => 0,
            wgpu::DeviceType::IntegratedGpu => 1,
            wgpu::DeviceType::VirtualGpu => 2,
            wgpu::DeviceType::Cpu => 3,
            wgpu::DeviceType::Other => 4,
        };
        let chosen = match adapter {
            Some(sub) => {
                let sub_l = sub.to_lowercase();
                adapters.into_iter().find(|a| a.get_info().name.to_lowercase().contains(&sub_l)).ok_or_else(|| {
                    GpuError::NoAdapter(format!(
                        "no Vulkan adapter name contains `{sub}` (found: {})",
                        names.join("; ")
                    ))
                })?
            }
            None => adapters
                .into_iter()
                .min_by_key(rank)
                .ok_or_else(|| GpuError::NoAdapter(format!("no Vulkan adapter found; {INSTALL_HINT}")))?,
        };
        let info = chosen.get_info();
        let limits = chosen.limits();
        let wanted = wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::PIPELINE_CACHE;
        let features = chosen.features() & wanted;
        let desc = wgpu::DeviceDescriptor {
            label: Some("cachescope replay"),
            required_features: features,
            required_limits: limits.clone(),
            ..Default::default()
        };
        let (device, queue) = pollster::block_on(chosen.request_device(&desc))
            .map_err(|e| GpuError::Device { adapter: info.name.clone(), message: e.to_string() })?;
        let errors = ErrorSink::default();
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| sink.record(e.to_string())));
        let sink = errors.clone();
        device.set_device_lost_callback(move |reason, message| {
            sink.record(format!("device lost ({reason:?}): {message}"));
        });
        let report = AdapterReport {
            name: info.name.clone(),
            driver: info.driver.clone(),
            driver_info: info.driver_info.clone(),
            device_type: format!("{:?}", info.device_type),
            backend: format!("{:?}", info.backend),
            vendor: info.vendor,
            device: info.device,
            max_buffer_size: limits.max_buffer_size,
            max_storage_buffer_binding_size: limits.max_storage_buffer_binding_size,
            min_uniform_buffer_offset_alignment: limits.min_uniform_buffer_offset_alignment,
            max_compute_workgroups_per_dimension: limits.max_compute_workgroups_per_dimension,
            max_compute_invocations_per_workgroup: limits.max_compute_invocations_per_workgroup,
            timestamp_query: features.contains(wgpu::Features::TIMESTAMP_QUERY),
            pipeline_cache: features.contains(wgpu::Features::PIPELINE_CACHE),
            timestamp_period_ns: queue.get_timestamp_period(),
        };
        Ok(GpuDevice { device, queue, report, adapter_info: info, limits, features, errors })
    }

    /// Waits for all submitted work.
    ///
    /// # Errors
    /// [`GpuError::Runtime`] when the wait fails or an error was reported.
    pub fn wait(&self, during: &str) -> GpuResult<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| GpuError::Runtime { during: during.to_string(), message: e.to_string() })?;
        self.errors.check(|| during.to_string())
    }
}
