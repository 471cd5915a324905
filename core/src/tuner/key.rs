//! The identity a tuning decision is stored under.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Error, Result};

/// Domain separation: a future change of what goes into the hash bumps this,
/// so old decisions miss instead of being applied to the wrong program.
const DOMAIN: &[u8] = b"cachescope-tuner-program-key-v1";

/// What a workgroup decision is keyed by: a BLAKE3 digest of the program's
/// fingerprint and its static shape dimensions (problem sizes, workgroup
/// counts, output bytes: whatever the caller knows before dispatch and
/// changes the best size). Two dispatches of one kernel on different static
/// shapes get different keys, because the best size depends on the shape.
///
/// Displays (and serializes) as 64 lower-case hex digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProgramKey([u8; 32]);

impl ProgramKey {
    /// The key of a program with `fingerprint` (any stable bytes: a shader
    /// hash, the IR's canonical encoding) dispatched on `static_dims`.
    /// Both parts are length-framed, so moving bytes from the fingerprint
    /// to the dims (or splitting dims differently) changes the key.
    pub fn new(fingerprint: &[u8], static_dims: &[u64]) -> Self {
        let mut h = blake3::Hasher::new();
        h.update(DOMAIN);
        h.update(&(fingerprint.len() as u64).to_le_bytes());
        h.update(fingerprint);
        h.update(&(static_dims.len() as u64).to_le_bytes());
        for d in static_dims {
            h.update(&d.to_le_bytes());
        }
        ProgramKey(*h.finalize().as_bytes())
    }

    /// A key from its raw digest bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        ProgramKey(bytes)
    }

    /// The raw digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for ProgramKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for ProgramKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProgramKey({self})")
    }
}

impl FromStr for ProgramKey {
    type Err = Error;

    /// Parses 64 hex digits (either case).
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::config(format!("program key `{s}` is not 64 hex digits"));
        if s.len() != 64 {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (byte, pair) in out.iter_mut().zip(s.as_bytes().chunks_exact(2)) {
            let hi = (pair[0] as char).to_digit(16).ok_or_else(bad)?;
            let lo = (pair[1] as char).to_digit(16).ok_or_else(bad)?;
            *byte = (hi * 16 + lo) as u8;
        }
        Ok(ProgramKey(out))
    }
}

impl Serialize for ProgramKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ProgramKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct Hex;
        impl serde::de::Visitor<'_> for Hex {
            type Value = ProgramKey;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a program key of 64 hex digits")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<ProgramKey, E> {
                v.parse().map_err(|_| E::invalid_value(serde::de::Unexpected::Str(v), &self))
            }
        }
        deserializer.deserialize_str(Hex)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_roundtrip_and_framing() {
        let k = ProgramKey::new(b"matmul-v3", &[1024, 1024, 64]);
        let hex = k.to_string();
        assert_eq!(hex.len(), 64);
        assert_eq!(hex.parse::<ProgramKey>().unwrap(), k);
        assert_eq!(hex.to_uppercase().parse::<ProgramKey>().unwrap(), k);
        assert_ne!(k, ProgramKey::new(b"matmul-v3", &[1024, 1024, 32]), "shape is part of the key");
        assert_ne!(ProgramKey::new(b"", &[1]), ProgramKey::new(&1u64.to_le_bytes(), &[]), "length framing");
        assert_eq!(serde_json::to_string(&k).unwrap(), format!("\"{hex}\""));
        assert_eq!(serde_json::from_str::<ProgramKey>(&format!("\"{hex}\"")).unwrap(), k);
    }

    #[test]
    fn bad_hex_is_an_error() {
        for s in ["", "zz", &"g".repeat(64), &"é".repeat(32)] {
            assert!(s.parse::<ProgramKey>().is_err(), "{s:?}");
        }
    }
}
