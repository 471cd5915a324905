//! The crate's one error type. Every variant says what and where (address,
//! file, run name) so a caller can act on it without a backtrace.

use std::path::PathBuf;

/// Everything that can go wrong in the dashboard.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server could not bind or configure its listening socket.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The server's runtime or thread could not start, or it stopped badly.
    #[error("dashboard server: {0}")]
    Server(String),
    /// Reading or writing a file failed.
    #[error("`{path}`: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A results file is not the JSON the dashboard understands.
    #[error("results `{path}`: {message}")]
    Results {
        /// The file (or `<memory>` for a value passed in).
        path: PathBuf,
        /// What is wrong with it, with line and column where known.
        message: String,
    },
    /// A run name that is not a safe relative name inside the results
    /// directory (`..`, absolute, odd characters, a link leading outside).
    #[error("run name `{name}` is not allowed: {reason}")]
    BadRunName {
        /// The name as received (truncated to 200 characters).
        name: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// No such run in the results directory.
    #[error("no run named `{0}`")]
    UnknownRun(String),
    /// No results directory was configured for the server.
    #[error("this server has no results directory")]
    NoResultsDir,
    /// A plot kind that does not exist or has no data in this input.
    #[error("plot `{kind}`: {message}")]
    Plot {
        /// The plot kind.
        kind: String,
        /// Why it cannot be drawn.
        message: String,
    },
    /// The metrics exposition could not be encoded.
    #[error("encoding metrics: {0}")]
    Encode(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }

    pub(crate) fn bad_name(name: &str, reason: &'static str) -> Self {
        Error::BadRunName { name: name.chars().take(200).collect(), reason }
    }

    pub(crate) fn plot(kind: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Plot { kind: kind.into(), message: message.into() }
    }
}
