//! The one error type of cachescope-harness.
//!
//! Every variant names what and where: the file, the line (text formats) or
//! record (binary formats), and the field. Nothing in the harness library
//! panics on bad input; it returns one of these, and `main.rs` adds the
//! command-level context with `anyhow`.

use std::fmt;
use std::path::PathBuf;

/// Result alias used throughout cachescope-harness.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where in a trace file a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// The file as a whole (its size, its first bytes).
    File,
    /// The header of a binary format.
    Header,
    /// A 1-based line of a text format (a JSON Lines trace counts its header
    /// as line 1).
    Line(u64),
    /// A 0-based record index of a binary format.
    Record(u64),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::File => f.write_str("file"),
            Location::Header => f.write_str("header"),
            Location::Line(n) => write!(f, "line {n}"),
            Location::Record(n) => write!(f, "record {n}"),
        }
    }
}

/// Everything that can go wrong in cachescope-harness.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A trace file is malformed or inconsistent at a known place, for
    /// example ``trace `x.csv` line 812: field `size`: `-3` is not an unsigned integer``.
    #[error("trace `{}` {at}: {}{message}", path.display(), field_prefix(field.as_deref()))]
    Trace {
        /// The trace file.
        path: PathBuf,
        /// Line or record of the problem.
        at: Location,
        /// The field that is wrong, when one is.
        field: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// A workload spec (TOML) is malformed or asks for something impossible.
    #[error("workload spec `{}` line {line}: {}{message}", path.display(), field_prefix(field.as_deref()))]
    Spec {
        /// The spec file.
        path: PathBuf,
        /// 1-based line of the problem (0 when unknown).
        line: usize,
        /// The field that is wrong, when known.
        field: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// An I/O operation on a file failed outside of decoding (open, create,
    /// rename, write).
    #[error("{op} `{}`: {source}", path.display())]
    Io {
        /// What was being done ("open", "create", "write", ...).
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A request cannot be honoured as asked (a format name that does not
    /// exist, `--pipelines` on a CSV trace, a value a target format cannot
    /// hold).
    #[error("invalid configuration: {what}")]
    InvalidConfig {
        /// What is wrong, in words.
        what: String,
    },
    /// A benchmark suite (TOML, `cachescope bench`) is malformed or asks for
    /// something impossible.
    #[error("bench suite `{}` line {line}: {}{message}", path.display(), field_prefix(field.as_deref()))]
    Suite {
        /// The suite file.
        path: PathBuf,
        /// 1-based line of the problem (0 when unknown).
        line: usize,
        /// The field that is wrong, when known.
        field: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// Two results files cannot be compared (`cachescope compare` exits 2):
    /// different traces or schema versions, a missing field, a file that is
    /// not a results file.
    #[error("cannot compare `{}` with `{}`: {why}", baseline.display(), current.display())]
    Incomparable {
        /// The baseline file.
        baseline: PathBuf,
        /// The current file.
        current: PathBuf,
        /// Why, in words, naming the field, run or trace.
        why: String,
    },
    /// An error from cachescope-core.
    #[error(transparent)]
    Core(#[from] cachescope_core::Error),
}

fn field_prefix(field: Option<&str>) -> String {
    field.map(|f| format!("field `{f}`: ")).unwrap_or_default()
}

impl Error {
    /// Shorthand for [`Error::Trace`].
    pub fn trace(path: impl Into<PathBuf>, at: Location, field: Option<&str>, message: impl Into<String>) -> Self {
        Error::Trace { path: path.into(), at, field: field.map(str::to_owned), message: message.into() }
    }

    /// Shorthand for [`Error::Io`].
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { op, path: path.into(), source }
    }

    /// Shorthand for [`Error::InvalidConfig`].
    pub fn config(what: impl Into<String>) -> Self {
        Error::InvalidConfig { what: what.into() }
    }

    /// Shorthand for [`Error::Spec`].
    pub fn spec(path: impl Into<PathBuf>, line: usize, field: Option<&str>, message: impl Into<String>) -> Self {
        Error::Spec { path: path.into(), line, field: field.map(str::to_owned), message: message.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_error_reads_like_the_style_guide() {
        let e = Error::trace("x.csv", Location::Line(812), Some("size"), "`-3` is not an unsigned integer");
        assert_eq!(e.to_string(), "trace `x.csv` line 812: field `size`: `-3` is not an unsigned integer");
        let e = Error::trace("t.oracle", Location::Record(3), None, "truncated");
        assert_eq!(e.to_string(), "trace `t.oracle` record 3: truncated");
    }
}
