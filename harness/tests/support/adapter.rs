//! Shared by the GPU test files (`#[path = "support/adapter.rs"] mod adapter;`):
//! a machine without a Vulkan adapter FAILS these tests, naming the
//! packages; they never skip.

use cachescope_harness::gpu::device::list_adapters;

/// Panics, naming what to install, when wgpu finds no Vulkan adapter.
pub fn require_adapter() {
    assert!(
        !list_adapters().is_empty(),
        "no Vulkan adapter: install `mesa-vulkan-drivers libvulkan1` (apt-get install -y --no-install-recommends \
         mesa-vulkan-drivers libvulkan1) so that lavapipe is available"
    );
}
