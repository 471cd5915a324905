//! The one error type of cachescope-core.
//!
//! Every variant carries enough context to act on: which key, which file,
//! which line. Nothing in core panics on bad input; it returns one of these.

use std::path::PathBuf;

/// Result alias used throughout cachescope-core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in cachescope-core.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is unusable (for example a zero capacity where
    /// one is required, or tiers not ordered slow to fast).
    #[error("invalid configuration: {what}")]
    InvalidConfig {
        /// What is wrong, in words.
        what: String,
    },
    /// An operation named a key that the cache does not hold.
    #[error("unknown key {key:#x}")]
    UnknownKey {
        /// The key that was asked for.
        key: u64,
    },
    /// An insert named a key that is already present.
    #[error("key {key:#x} is already present")]
    DuplicateKey {
        /// The key.
        key: u64,
    },
    /// An entry is larger than every tier (or the only cache) could ever hold.
    #[error("entry {key:#x} of {size_bytes} bytes is larger than the largest tier ({largest_tier_bytes} bytes)")]
    EntryTooLarge {
        /// The key of the entry.
        key: u64,
        /// Its size in bytes.
        size_bytes: u64,
        /// The capacity of the largest tier, in bytes.
        largest_tier_bytes: u64,
    },
    /// A shard's lock was poisoned by a panicking thread; the shard fails
    /// closed (reads and writes are refused) rather than serve state that a
    /// panic may have left half-updated.
    #[error("pipeline cache shard {shard} is poisoned (a thread panicked while holding it); failing closed")]
    PoisonedShard {
        /// Index of the poisoned shard.
        shard: usize,
    },
    /// An I/O operation on a file or directory failed.
    #[error("{op} `{}`: {source}", path.display())]
    Io {
        /// What was being done ("read", "rename", "fsync", ...).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A file on disk is not what it should be (bad magic, bad checksum,
    /// truncated). For the disk pipeline cache this is reported and the file
    /// is treated as a miss; it is never returned as data.
    #[error("corrupt file `{}`: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A text file (tuner decisions, workload spec) could not be parsed.
    #[error("`{}` line {line}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line of the problem (0 when unknown).
        line: usize,
        /// What is wrong, naming the field.
        message: String,
    },
}

impl Error {
    /// Shorthand for [`Error::InvalidConfig`].
    pub fn config(what: impl Into<String>) -> Self {
        Error::InvalidConfig { what: what.into() }
    }

    /// Shorthand for [`Error::Io`].
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { op, path: path.into(), source }
    }
}
