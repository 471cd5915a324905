//! The identity of a compiled pipeline: [`PipelineCacheKey`], its feature
//! flags, and the stable 32-byte [`PipelineKeyDigest`] that names it in
//! memory and on disk.
//!
//! A key holds every fact that makes two compiled pipelines
//! interchangeable. Hashing only the shader source (what the seeds did before
//! their 0.6 key) let a pipeline built for one bind-group layout, push
//! constant range or workgroup size be served for another: a silent
//! correctness bug, not a slow path. So every field goes into the digest, and
//! a test changes each one in turn.
//!
//! The digest is blake3 over a fixed little-endian encoding that starts with a
//! domain tag and [`KEY_ENCODING_VERSION`]. It must not depend on the Rust
//! layout, on serde, or on the platform: it names files that outlive the
//! process and are shared between machines of different endianness.

use std::fmt;
use std::ops::{BitAnd, BitAndAssign, BitOr, BitOrAssign};

use serde::{Deserialize, Serialize};

/// Version of the byte encoding hashed by [`PipelineCacheKey::digest`].
/// Bumping it renames every cache entry (old files then simply miss).
pub const KEY_ENCODING_VERSION: u32 = 1;

/// Domain tag hashed first, so a key digest can never equal the blake3 of
/// some other cachescope structure that happens to share the same bytes.
const DIGEST_DOMAIN: &[u8] = b"cachescope.pipeline-cache-key\0";

/// Capability bits a compiled pipeline assumes at dispatch time.
///
/// A bitflags-style newtype over `u32` (no `bitflags` dependency). The named
/// bits match the seed `vyre-driver` allocation, so keys built by either
/// side agree; bits above [`PipelineFeatureFlags::KNOWN`] are reserved for
/// backend-specific capabilities and are kept, hashed and persisted as they
/// are, never dropped.
///
/// The flags double as the *impact bits* for invalidation: when an adapter
/// loses a capability (a driver update disables subgroup ops),
/// `invalidate(SUBGROUP_OPS)` on a store drops every pipeline that assumed it.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PipelineFeatureFlags(u32);

impl PipelineFeatureFlags {
    /// Compiled against a lowering that emits subgroup / wave intrinsics.
    pub const SUBGROUP_OPS: Self = Self(1 << 0);
    /// Compiled with native `f16`.
    pub const F16: Self = Self(1 << 1);
    /// Compiled with native `bf16`.
    pub const BF16: Self = Self(1 << 2);
    /// Compiled with tensor-core / matrix-engine intrinsics.
    pub const TENSOR_CORES: Self = Self(1 << 3);
    /// Expects an async-compute queue.
    pub const ASYNC_COMPUTE: Self = Self(1 << 4);
    /// Expects push-constant support.
    pub const PUSH_CONSTANTS: Self = Self(1 << 5);
    /// Emits indirect-dispatch commands.
    pub const INDIRECT_DISPATCH: Self = Self(1 << 6);
    /// Compiled for speculative (fused prefilter + confirmer) dispatch.
    pub const SPECULATIVE: Self = Self(1 << 7);
    /// Compiled for persistent-thread (device-side work queue) dispatch.
    pub const PERSISTENT_THREAD: Self = Self(1 << 8);

    /// Every named bit.
    pub const KNOWN: Self = Self((1 << 9) - 1);

    /// Every bit, named or reserved: the mask that invalidates every entry
    /// that has at least one flag.
    pub const ALL: Self = Self(u32::MAX);

    const NAMES: [(&'static str, Self); 9] = [
        ("SUBGROUP_OPS", Self::SUBGROUP_OPS),
        ("F16", Self::F16),
        ("BF16", Self::BF16),
        ("TENSOR_CORES", Self::TENSOR_CORES),
        ("ASYNC_COMPUTE", Self::ASYNC_COMPUTE),
        ("PUSH_CONSTANTS", Self::PUSH_CONSTANTS),
        ("INDIRECT_DISPATCH", Self::INDIRECT_DISPATCH),
        ("SPECULATIVE", Self::SPECULATIVE),
        ("PERSISTENT_THREAD", Self::PERSISTENT_THREAD),
    ];

    /// No flags.
    #[must_use]
    pub const fn empty() -> Self {
        Self(0)
    }

    /// Flags from raw bits; reserved (unnamed) bits are kept.
    #[must_use]
    pub const fn from_bits(bits: u32) -> Self {
        Self(bits)
    }

    /// The raw bits.
    #[must_use]
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// Whether no bit is set.
    #[must_use]
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether every bit of `other` is set in `self`.
    #[must_use]
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether `self` and `other` share at least one bit (the invalidation
    /// test: an empty mask intersects nothing).
    #[must_use]
    pub const fn intersects(self, other: Self) -> bool {
        self.0 & other.0 != 0
    }

    /// Bits set in either.
    #[must_use]
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// Bits set in both.
    #[must_use]
    pub const fn intersection(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }

    /// Bits of `self` not in `other`.
    #[must_use]
    pub const fn difference(self, other: Self) -> Self {
        Self(self.0 & !other.0)
    }
}

impl BitOr for PipelineFeatureFlags {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        self.union(rhs)
    }
}

impl BitOrAssign for PipelineFeatureFlags {
    fn bitor_assign(&mut self, rhs: Self) {
        *self = self.union(rhs);
    }
}

impl BitAnd for PipelineFeatureFlags {
    type Output = Self;
    fn bitand(self, rhs: Self) -> Self {
        self.intersection(rhs)
    }
}

impl BitAndAssign for PipelineFeatureFlags {
    fn bitand_assign(&mut self, rhs: Self) {
        *self = self.intersection(rhs);
    }
}

/// Names the set bits (`SUBGROUP_OPS | F16 | 0x400`), because a raw number in
/// a log line says nothing about which capability a pipeline assumed.
impl fmt::Debug for PipelineFeatureFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PipelineFeatureFlags(")?;
        if self.is_empty() {
            f.write_str("empty")?;
        }
        let mut first = true;
        let mut sep = |f: &mut fmt::Formatter<'_>| {
            let s = if first { "" } else { " | " };
            first = false;
            f.write_str(s)
        };
        for (name, flag) in Self::NAMES {
            if self.contains(flag) {
                sep(f)?;
                f.write_str(name)?;
            }
        }
        let reserved = self.difference(Self::KNOWN);
        if !reserved.is_empty() {
            sep(f)?;
            write!(f, "{:#x}", reserved.0)?;
        }
        f.write_str(")")
    }
}

/// Everything that makes two compiled pipelines interchangeable.
///
/// Build one with [`PipelineCacheKey::new`] (current [`version`](Self::version)),
/// then adjust fields as needed; the struct is `#[non_exhaustive]` so adding
/// a field later is not a breaking change for users who construct keys.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PipelineCacheKey {
    /// Key schema version, chosen by the user of the cache. Bump it to make
    /// every existing entry miss without touching the encoding (for example
    /// after a compiler change that keeps shader bytes but changes output).
    pub version: u32,
    /// blake3 of the canonical pipeline source (WGSL, SPIR-V, ...).
    pub shader_hash: [u8; 32],
    /// Structural hash of the bind-group layout descriptors (slot count,
    /// types, visibility, access), not of a backend handle.
    pub bind_group_layout_hash: [u8; 32],
    /// Push-constant range in bytes: a pipeline built for 16 bytes must not
    /// be reused against a layout that expects 32.
    pub push_constant_size: u32,
    /// Workgroup size `[x, y, z]` the pipeline was specialised for.
    pub workgroup_size: [u32; 3],
    /// Capabilities the pipeline assumes; also its invalidation impact bits.
    pub feature_flags: PipelineFeatureFlags,
    /// Which backend compiled it (`"vulkan"`, `"metal"`, `"wgpu-vulkan"`...),
    /// so identical shader hashes on different backends never collide.
    pub backend_id: String,
}

impl PipelineCacheKey {
    /// The [`version`](Self::version) that [`new`](Self::new) stamps.
    pub const CURRENT_VERSION: u32 = 1;

    /// A key at [`CURRENT_VERSION`](Self::CURRENT_VERSION).
    #[must_use]
    pub fn new(
        shader_hash: [u8; 32],
        bind_group_layout_hash: [u8; 32],
        push_constant_size: u32,
        workgroup_size: [u32; 3],
        feature_flags: PipelineFeatureFlags,
        backend_id: impl Into<String>,
    ) -> Self {
        PipelineCacheKey {
            version: Self::CURRENT_VERSION,
            shader_hash,
            bind_group_layout_hash,
            push_constant_size,
            workgroup_size,
            feature_flags,
            backend_id: backend_id.into(),
        }
    }

    /// The stable 32-byte digest of this key.
    ///
    /// Encoding (all integers little-endian): domain tag, then
    /// [`KEY_ENCODING_VERSION`] (u32), `version` (u32), `shader_hash` (32),
    /// `bind_group_layout_hash` (32), `push_constant_size` (u32),
    /// `workgroup_size` (3 x u32), `feature_flags` (u32), then the length of
    /// `backend_id` in bytes (u64) followed by its UTF-8 bytes. Every field
    /// but the last has a fixed width and the last is length-prefixed, so no
    /// two different keys encode to the same bytes.
    #[must_use]
    pub fn digest(&self) -> PipelineKeyDigest {
        let mut h = blake3::Hasher::new();
        h.update(DIGEST_DOMAIN);
        h.update(&KEY_ENCODING_VERSION.to_le_bytes());
        h.update(&self.version.to_le_bytes());
        h.update(&self.shader_hash);
        h.update(&self.bind_group_layout_hash);
        h.update(&self.push_constant_size.to_le_bytes());
        for dim in self.workgroup_size {
            h.update(&dim.to_le_bytes());
        }
        h.update(&self.feature_flags.bits().to_le_bytes());
        h.update(&(self.backend_id.len() as u64).to_le_bytes());
        h.update(self.backend_id.as_bytes());
        PipelineKeyDigest(*h.finalize().as_bytes())
    }
}

/// The 32-byte digest of a [`PipelineCacheKey`]: the in-memory map key and,
/// in lower-case hex, the disk file name.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PipelineKeyDigest(pub [u8; 32]);

impl PipelineKeyDigest {
    /// The raw bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lower-case hex, 64 characters, no separators (path-safe).
    #[must_use]
    pub fn to_hex(&self) -> String {
        let mut out = String::with_capacity(64);
        for &b in &self.0 {
            out.push(hex_digit(b >> 4));
            out.push(hex_digit(b & 0x0f));
        }
        out
    }

    /// Parses 64 hex digits (either case); `None` for anything else.
    #[must_use]
    pub fn from_hex(s: &str) -> Option<Self> {
        let bytes = s.as_bytes();
        if bytes.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            out[i] = (hex_value(pair[0])? << 4) | hex_value(pair[1])?;
        }
        Some(PipelineKeyDigest(out))
    }

    /// A well-mixed 64-bit value drawn from the digest, for shard selection.
    /// The digest is a cryptographic hash, so any 8 bytes are uniform.
    #[inline]
    pub(crate) fn shard_bits(&self) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[24..32]);
        u64::from_le_bytes(b)
    }
}

fn hex_digit(nibble: u8) -> char {
    char::from(b"0123456789abcdef"[usize::from(nibble & 0x0f)])
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl fmt::Display for PipelineKeyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for PipelineKeyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PipelineKeyDigest({})", self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> PipelineCacheKey {
        PipelineCacheKey::new([1; 32], [2; 32], 16, [64, 1, 1], PipelineFeatureFlags::F16, "vulkan")
    }

    #[test]
    fn digest_follows_the_documented_encoding() {
        // Built by hand from the layout in `digest`'s doc, so the doc and
        // the code cannot drift apart.
        let mut bytes = b"cachescope.pipeline-cache-key\0".to_vec();
        bytes.extend_from_slice(&1u32.to_le_bytes()); // encoding version
        bytes.extend_from_slice(&1u32.to_le_bytes()); // key version
        bytes.extend_from_slice(&[1; 32]);
        bytes.extend_from_slice(&[2; 32]);
        bytes.extend_from_slice(&16u32.to_le_bytes());
        for d in [64u32, 1, 1] {
            bytes.extend_from_slice(&d.to_le_bytes());
        }
        bytes.extend_from_slice(&2u32.to_le_bytes()); // F16
        bytes.extend_from_slice(&6u64.to_le_bytes());
        bytes.extend_from_slice(b"vulkan");
        assert_eq!(base().digest().as_bytes(), blake3::hash(&bytes).as_bytes());
        assert_eq!(base().digest(), base().digest());
        // Pinned: a change here renames every file on every user's disk, so
        // it must be deliberate (bump KEY_ENCODING_VERSION and update this).
        assert_eq!(base().digest().to_hex(), "a4948244c25756d7c8da26d968a7a02cdddfdfe658185844f3257665b82f9da3");
    }

    #[test]
    fn backend_id_is_length_prefixed() {
        // A naive concatenation would let ("ab" + flags) collide with a
        // longer id; the length prefix separates them.
        let mut a = base();
        let mut b = base();
        a.backend_id = "ab".into();
        b.backend_id = "ab\0".into();
        assert_ne!(a.digest(), b.digest());
    }

    #[test]
    fn hex_roundtrip() {
        let d = base().digest();
        let hex = d.to_hex();
        assert_eq!(hex.len(), 64);
        assert!(hex.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)));
        assert_eq!(PipelineKeyDigest::from_hex(&hex), Some(d));
        assert_eq!(PipelineKeyDigest::from_hex(&hex.to_uppercase()), Some(d));
        assert_eq!(PipelineKeyDigest::from_hex(&hex[1..]), None);
        assert_eq!(PipelineKeyDigest::from_hex(&format!("g{}", &hex[1..])), None);
    }

    #[test]
    fn flags_algebra_and_debug() {
        let f = PipelineFeatureFlags::SUBGROUP_OPS | PipelineFeatureFlags::F16;
        assert!(f.contains(PipelineFeatureFlags::F16));
        assert!(!f.contains(PipelineFeatureFlags::TENSOR_CORES));
        assert!(f.intersects(PipelineFeatureFlags::F16 | PipelineFeatureFlags::BF16));
        assert!(!f.intersects(PipelineFeatureFlags::empty()), "an empty mask intersects nothing");
        assert_eq!(f & PipelineFeatureFlags::F16, PipelineFeatureFlags::F16);
        assert_eq!(f.difference(PipelineFeatureFlags::F16), PipelineFeatureFlags::SUBGROUP_OPS);
        let reserved = PipelineFeatureFlags::from_bits(0x400) | PipelineFeatureFlags::F16;
        assert_eq!(reserved.bits(), 0x402, "reserved bits are kept");
        assert_eq!(format!("{reserved:?}"), "PipelineFeatureFlags(F16 | 0x400)");
        assert_eq!(format!("{:?}", PipelineFeatureFlags::empty()), "PipelineFeatureFlags(empty)");
        assert_eq!(serde_json::to_string(&f).unwrap(), "3");
    }
}
