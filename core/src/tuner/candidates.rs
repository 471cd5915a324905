//! Candidate workgroup sizes, derived from what the adapter allows.
//!
//! The seed probed a fixed list (32..1024); on an adapter whose limit is 256
//! (many mobile and software devices, lavapipe among them) half of those
//! would fail to compile. Here every candidate respects every limit by
//! construction, and the list is never empty for valid limits.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The adapter limits that bound a workgroup (WebGPU / Vulkan names), plus
/// the subgroup (warp, wave) size when the adapter reports one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AdapterLimits {
    /// Most invocations in one workgroup (`x * y * z`).
    pub max_invocations_per_workgroup: u32,
    /// Largest `x` dimension.
    pub max_size_x: u32,
    /// Largest `y` dimension.
    pub max_size_y: u32,
    /// Largest `z` dimension.
    pub max_size_z: u32,
    /// Subgroup size hint (32 on NVIDIA, 32 or 64 on AMD, 8 to 32 on Intel);
    /// `None` when unknown.
    pub subgroup_size: Option<u32>,
}

impl AdapterLimits {
    /// The WebGPU default limits (256 invocations, 256 x 256 x 64), which
    /// every conforming adapter supports; no subgroup hint.
    pub const WEBGPU_DEFAULT: AdapterLimits = AdapterLimits {
        max_invocations_per_workgroup: 256,
        max_size_x: 256,
        max_size_y: 256,
        max_size_z: 64,
        subgroup_size: None,
    };

    /// Checks every limit is at least 1.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the first zero limit.
    pub fn validate(&self) -> Result<()> {
        let fields = [
            ("max_invocations_per_workgroup", self.max_invocations_per_workgroup),
            ("max_size_x", self.max_size_x),
            ("max_size_y", self.max_size_y),
            ("max_size_z", self.max_size_z),
            ("subgroup_size", self.subgroup_size.unwrap_or(1)),
        ];
        match fields.iter().find(|(_, v)| *v == 0) {
            Some((name, _)) => Err(Error::config(format!("adapter limits: {name} must be at least 1"))),
            None => Ok(()),
        }
    }

    /// Whether `workgroup` fits every limit (and has no zero dimension).
    pub fn allows(&self, workgroup: [u32; 3]) -> bool {
        let [x, y, z] = workgroup;
        let invocations = u64::from(x) * u64::from(y) * u64::from(z);
        x >= 1
            && y >= 1
            && z >= 1
            && x <= self.max_size_x
            && y <= self.max_size_y
            && z <= self.max_size_z
            && invocations <= u64::from(self.max_invocations_per_workgroup)
    }
}

/// What to generate besides the 1D sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CandidateOptions {
    /// Smallest total invocations worth probing. Below a subgroup, lanes sit
    /// idle, so the default is 32 (the seed's smallest probe); when the
    /// adapter allows less than this, the largest size it allows is still
    /// offered.
    pub min_invocations: u32,
    /// Also offer 2D shapes `[x, y, 1]` (x and y powers of two, y >= 2), for
    /// kernels over images and matrices.
    pub include_2d: bool,
}

impl Default for CandidateOptions {
    fn default() -> Self {
        CandidateOptions { min_invocations: 32, include_2d: false }
    }
}

/// Candidate workgroup sizes for `limits`, sorted and free of duplicates:
///
/// * 1D `[x, 1, 1]`: every power of two, and every subgroup size times a
///   power of two (that covers subgroup sizes that are not powers of two),
///   from `min_invocations` up to `min(max_size_x, max_invocations)`. If no
///   such size exists (a tiny adapter), the largest allowed power of two.
/// * 2D `[x, y, 1]` when asked: powers of two with `y >= 2`, at least
///   `min_invocations` in total, within every limit, and (with a subgroup
///   hint) a whole number of subgroups.
///
/// Every candidate satisfies [`AdapterLimits::allows`].
///
/// # Errors
/// [`Error::InvalidConfig`] when a limit is zero.
pub fn candidates(limits: &AdapterLimits, options: &CandidateOptions) -> Result<Vec<[u32; 3]>> {
    limits.validate()?;
    let cap_x = limits.max_size_x.min(limits.max_invocations_per_workgroup);
    let floor = options.min_invocations.max(1);
    let mut out: Vec<[u32; 3]> = Vec::new();

    let mut bases = vec![1u32];
    if let Some(sg) = limits.subgroup_size {
        bases.push(sg);
    }
    for base in bases {
        out.extend(doublings(base, cap_x).filter(|&x| x >= floor).map(|x| [x, 1, 1]));
    }
    if out.is_empty() {
        // cap_x >= 1 after validation, so this power of two exists.
        let largest = doublings(1, cap_x).last().unwrap_or(1);
        out.push([largest, 1, 1]);
    }

    if options.include_2d {
        let whole_subgroups = |n: u32| limits.subgroup_size.is_none_or(|sg| n.is_multiple_of(sg));
        for x in doublings(1, limits.max_size_x) {
            for y in doublings(2, limits.max_size_y) {
                let n = u64::from(x) * u64::from(y);
                if n > u64::from(limits.max_invocations_per_workgroup) {
                    break;
                }
                let n = n as u32;
                if n >= floor && whole_subgroups(n) {
                    out.push([x, y, 1]);
                }
            }
        }
    }

    out.sort_unstable_by_key(|&[x, y, z]| (u64::from(x) * u64::from(y) * u64::from(z), y, x));
    out.dedup();
    crate::strict_assert!(out.iter().all(|&wg| limits.allows(wg)), "candidate exceeds adapter limits");
    Ok(out)
}

/// `base, 2*base, 4*base, ...` while `<= max` (empty when `base > max`).
fn doublings(base: u32, max: u32) -> impl Iterator<Item = u32> {
    std::iter::successors((base >= 1 && base <= max).then_some(base), move |&v| v.checked_mul(2).filter(|&n| n <= max))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(inv: u32, x: u32, y: u32, sg: Option<u32>) -> AdapterLimits {
        AdapterLimits {
            max_invocations_per_workgroup: inv,
            max_size_x: x,
            max_size_y: y,
            max_size_z: 64,
            subgroup_size: sg,
        }
    }

    #[test]
    fn one_d_powers_of_two_within_limits() {
        let c = candidates(&limits(1024, 1024, 1024, None), &CandidateOptions::default()).unwrap();
        assert_eq!(c, [[32, 1, 1], [64, 1, 1], [128, 1, 1], [256, 1, 1], [512, 1, 1], [1024, 1, 1]]);
        let c = candidates(&AdapterLimits::WEBGPU_DEFAULT, &CandidateOptions::default()).unwrap();
        assert_eq!(c.last(), Some(&[256, 1, 1]), "the seed's 512 and 1024 would exceed this adapter");
    }

    #[test]
    fn subgroup_multiples_that_are_not_powers_of_two() {
        let c = candidates(&limits(256, 256, 256, Some(48)), &CandidateOptions::default()).unwrap();
        assert_eq!(c, [[32, 1, 1], [48, 1, 1], [64, 1, 1], [96, 1, 1], [128, 1, 1], [192, 1, 1], [256, 1, 1]]);
    }

    #[test]
    fn tiny_adapter_still_gets_a_candidate() {
        let c = candidates(&limits(24, 24, 1, None), &CandidateOptions::default()).unwrap();
        assert_eq!(c, [[16, 1, 1]]);
        let c = candidates(&limits(1, 1, 1, None), &CandidateOptions::default()).unwrap();
        assert_eq!(c, [[1, 1, 1]]);
    }

    #[test]
    fn two_d_shapes_respect_every_limit() {
        let l = limits(256, 256, 8, Some(32));
        let c = candidates(&l, &CandidateOptions { min_invocations: 64, include_2d: true }).unwrap();
        assert!(c.contains(&[8, 8, 1]) && c.contains(&[32, 8, 1]) && c.contains(&[128, 2, 1]));
        assert!(!c.iter().any(|&[_, y, _]| y > 8), "y limit");
        assert!(c.iter().all(|&wg| l.allows(wg) && wg[0] * wg[1] >= 64 && (wg[0] * wg[1]).is_multiple_of(32)));
    }

    #[test]
    fn zero_limits_are_errors() {
        let err = candidates(&limits(0, 64, 64, None), &CandidateOptions::default()).unwrap_err();
        assert!(err.to_string().contains("max_invocations_per_workgroup"), "{err}");
        let err = candidates(&limits(64, 64, 64, Some(0)), &CandidateOptions::default()).unwrap_err();
        assert!(err.to_string().contains("subgroup_size"), "{err}");
    }
}
