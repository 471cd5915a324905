//! The WGSL kernels of the built-in workloads (`workloads/gpu/*.wgsl`), the
//! access each binding really has, and how a kernel plus its override
//! constants becomes a pipeline id.
//!
//! A binding declared `var<storage, read>` is `r`; one declared
//! `read_write` is `w` when the kernel overwrites every element it owns
//! without reading it, `rw` when it reads it first. The unit test below
//! checks the declarations against this table, so the trace cannot claim
//! less than the kernel does.

use cachescope_core::policy::Access;

use Access::{Read as R, ReadWrite as RW, Write as W};

/// One WGSL kernel (entry point `main`).
#[derive(Debug, PartialEq, Eq)]
pub struct Kernel {
    /// The file under `workloads/gpu/`.
    pub file: &'static str,
    /// Its source.
    pub wgsl: &'static str,
    /// Access of binding `i` of group 0, in binding order.
    pub access: &'static [Access],
    /// `@workgroup_size` of `main`.
    pub workgroup: [u32; 3],
}

/// Dense layer with bias and optional ReLU: x, w, bias -> out.
pub const MATMUL_BIAS_ACT: Kernel = Kernel {
    file: "matmul_bias_act.wgsl",
    wgsl: include_str!("../../../workloads/gpu/matmul_bias_act.wgsl"),
    access: &[R, R, R, W],
    workgroup: [16, 16, 1],
};

/// Residual add in place: y += x.
pub const ADD_INPLACE: Kernel = Kernel {
    file: "add_inplace.wgsl",
    wgsl: include_str!("../../../workloads/gpu/add_inplace.wgsl"),
    access: &[RW, R],
    workgroup: [256, 1, 1],
};

/// Row-wise softmax in place.
pub const SOFTMAX_ROWS: Kernel = Kernel {
    file: "softmax_rows.wgsl",
    wgsl: include_str!("../../../workloads/gpu/softmax_rows.wgsl"),
    access: &[RW],
    workgroup: [64, 1, 1],
};

/// 3x3 binomial blur: src -> dst.
pub const BLUR: Kernel = Kernel {
    file: "blur.wgsl",
    wgsl: include_str!("../../../workloads/gpu/blur.wgsl"),
    access: &[R, W],
    workgroup: [16, 16, 1],
};

/// 2x2 box downsample: src -> dst.
pub const DOWNSAMPLE: Kernel = Kernel {
    file: "downsample.wgsl",
    wgsl: include_str!("../../../workloads/gpu/downsample.wgsl"),
    access: &[R, W],
    workgroup: [16, 16, 1],
};

/// Laplacian reconstruction step: coarse result, coarse and fine Gaussian -> out.
pub const UPSAMPLE_COMBINE: Kernel = Kernel {
    file: "upsample_combine.wgsl",
    wgsl: include_str!("../../../workloads/gpu/upsample_combine.wgsl"),
    access: &[R, R, R, W],
    workgroup: [16, 16, 1],
};

/// Temporal blend: history (read and written) towards frame.
pub const BLEND: Kernel = Kernel {
    file: "blend.wgsl",
    wgsl: include_str!("../../../workloads/gpu/blend.wgsl"),
    access: &[RW, R],
    workgroup: [256, 1, 1],
};

/// PageRank step as CSR SpMV: row_ptr, col_idx, vals, x, teleport -> y.
pub const SPMV_PAGERANK: Kernel = Kernel {
    file: "spmv_pagerank.wgsl",
    wgsl: include_str!("../../../workloads/gpu/spmv_pagerank.wgsl"),
    access: &[R, R, R, R, R, W],
    workgroup: [256, 1, 1],
};

/// Per-workgroup L1 distance: a, b -> partial.
pub const L1_PARTIAL: Kernel = Kernel {
    file: "l1_partial.wgsl",
    wgsl: include_str!("../../../workloads/gpu/l1_partial.wgsl"),
    access: &[R, R, W],
    workgroup: [256, 1, 1],
};

/// Every kernel.
pub const ALL: &[&Kernel] = &[
    &MATMUL_BIAS_ACT,
    &ADD_INPLACE,
    &SOFTMAX_ROWS,
    &BLUR,
    &DOWNSAMPLE,
    &UPSAMPLE_COMBINE,
    &BLEND,
    &SPMV_PAGERANK,
    &L1_PARTIAL,
];

/// Workgroups of a grid-stride dispatch: WebGPU's guaranteed per-dimension
/// minimum, so it fits every adapter.
pub const MAX_STRIDED_GROUPS: u32 = 65_535;

/// A kernel specialised by override constants: one pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Specialised {
    /// The kernel.
    pub kernel: &'static Kernel,
    /// The trace's `op` (e.g. `matmul_bias_relu`).
    pub op: &'static str,
    /// Override constants, in the order given (part of the pipeline id).
    pub constants: Vec<(&'static str, f64)>,
}

impl Specialised {
    /// `kernel` as `op` with `constants`.
    pub fn new(kernel: &'static Kernel, op: &'static str, constants: &[(&'static str, f64)]) -> Specialised {
        Specialised { kernel, op, constants: constants.to_vec() }
    }

    /// The trace's pipeline id: the first 8 bytes of blake3 over the WGSL
    /// source, the entry point and the constants, the way a runtime keys a
    /// specialised pipeline. Stable across runs and machines; it changes
    /// when the kernel's source does, as a pipeline-cache key must.
    pub fn pipeline_id(&self) -> u64 {
        let mut h = blake3::Hasher::new();
        h.update(b"cachescope-record-pipeline\0");
        h.update(self.kernel.wgsl.as_bytes());
        h.update(b"\0main\0");
        for (name, value) in &self.constants {
            h.update(name.as_bytes());
            h.update(b"=");
            h.update(&value.to_bits().to_le_bytes());
            h.update(b";");
        }
        let bytes = h.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&bytes.as_bytes()[..8]);
        u64::from_le_bytes(first)
    }

    /// Workgroups covering `threads` invocations along each dimension.
    pub fn groups_for(&self, threads: [u32; 3]) -> [u32; 3] {
        let wg = self.kernel.workgroup;
        [threads[0].div_ceil(wg[0]), threads[1].div_ceil(wg[1]), threads[2].div_ceil(wg[2])]
    }

    /// Workgroups for a grid-stride kernel over `len` elements: one per
    /// `workgroup` elements, at most [`MAX_STRIDED_GROUPS`] (the kernel
    /// loops over the rest).
    pub fn strided_groups(&self, len: u64) -> [u32; 3] {
        let groups = len.div_ceil(u64::from(self.kernel.workgroup[0])).clamp(1, u64::from(MAX_STRIDED_GROUPS));
        [groups as u32, 1, 1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(binding, read_only)` of every storage binding declared in `wgsl`.
    fn declared(wgsl: &str) -> Vec<(usize, bool)> {
        wgsl.lines()
            .filter_map(|line| {
                let line = line.trim();
                let rest = line.strip_prefix("@group(0) @binding(")?;
                let (index, rest) = rest.split_once(')')?;
                let index: usize = index.parse().ok()?;
                if rest.contains("var<storage, read>") {
                    Some((index, true))
                } else if rest.contains("var<storage, read_write>") {
                    Some((index, false))
                } else {
                    None
                }
            })
            .collect()
    }

    #[test]
    fn access_table_matches_the_wgsl_declarations() {
        for k in ALL {
            let decl = declared(k.wgsl);
            assert_eq!(decl.len(), k.access.len(), "{}: bindings", k.file);
            for (i, (index, read_only)) in decl.into_iter().enumerate() {
                assert_eq!(index, i, "{}: bindings are numbered 0..", k.file);
                assert_eq!(read_only, k.access[i] == Access::Read, "{} binding {i}", k.file);
            }
            let size = format!("@workgroup_size({}", k.workgroup[0]);
            assert!(k.wgsl.contains(&size), "{}: workgroup size", k.file);
        }
    }

    #[test]
    fn pipeline_ids_depend_on_kernel_and_constants() {
        let a = Specialised::new(&BLUR, "blur", &[("W", 64.0), ("H", 64.0)]);
        let b = Specialised::new(&BLUR, "blur", &[("W", 32.0), ("H", 64.0)]);
        let c = Specialised::new(&DOWNSAMPLE, "blur", &[("W", 64.0), ("H", 64.0)]);
        assert_eq!(a.pipeline_id(), a.clone().pipeline_id());
        assert_ne!(a.pipeline_id(), b.pipeline_id());
        assert_ne!(a.pipeline_id(), c.pipeline_id());
    }
}
