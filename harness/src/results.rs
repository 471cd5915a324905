//! The results file: versioned JSON that `sim` (and later `replay` and
//! `bench`) write, the dashboard serves and `compare` judges.
//!
//! Written atomically (temp file in the same directory, fsync, rename) and
//! rewritten after every finished run, so an interrupted sweep leaves a
//! valid file holding every run that finished.

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::sim::RunResult;

/// Bumped when a field changes meaning or disappears (adding one does not).
pub const SCHEMA_VERSION: u32 = 1;

/// What produced a results file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolInfo {
    /// Always `cachescope`.
    pub name: String,
    /// Crate version.
    pub version: String,
    /// Git revision the binary was built from (`-dirty` when it had changes).
    pub git_rev: String,
    /// The exact command line.
    pub command: Vec<String>,
    /// Host name, CPU count and OS, to tell machines apart.
    pub machine: MachineInfo,
}

/// The machine a result was measured on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachineInfo {
    /// Host name.
    pub hostname: String,
    /// Logical CPUs available to the process.
    pub cpus: usize,
    /// `linux-x86_64` etc.
    pub os: String,
}

impl ToolInfo {
    /// This process.
    pub fn current() -> Self {
        ToolInfo {
            name: "cachescope".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            git_rev: env!("CACHESCOPE_GIT_REV").into(),
            command: std::env::args().collect(),
            machine: MachineInfo {
                hostname: std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .map(|s| s.trim().to_string())
                    .unwrap_or_else(|_| "unknown".into()),
                cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
                os: format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH),
            },
        }
    }
}

/// A whole results file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResultsFile {
    /// [`SCHEMA_VERSION`] of the writer.
    pub schema_version: u32,
    /// `sim`, `replay`, `bench`.
    pub kind: String,
    /// What produced it.
    pub tool: ToolInfo,
    /// The trace's identity (path, format, checksum, counts).
    pub trace: serde_json::Value,
    /// The configuration of the job.
    pub config: serde_json::Value,
    /// One entry per (policy, capacity).
    pub runs: Vec<RunResult>,
    /// Extra sections (miss-ratio curves, adapter info), by name.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// Writes `value` as pretty JSON to `path` atomically: readers see the old
/// file or the new one, never a torn one.
///
/// # Errors
/// I/O errors, naming the path.
pub fn write_json_atomic(path: &Path, value: &impl Serialize) -> anyhow::Result<()> {
    use anyhow::Context;
    // Held for the whole write, so a signal that stops the process (see
    // [`exit_cleanly_on_signals`]) waits for it: no half-written temp file,
    // and the file on disk holds everything saved so far.
    let _writing = WRITE_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().with_context(|| format!("`{}` is not a file path", path.display()))?;
    let tmp = dir.join(format!(".{}.tmp.{}", name.to_string_lossy(), std::process::id()));
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let mut f = std::fs::File::create(&tmp)?;
        serde_json::to_writer_pretty(&mut f, value)?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write()
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
        .with_context(|| format!("writing results to `{}`", path.display()))
}

/// Serialises [`write_json_atomic`] calls with the signal thread of
/// [`exit_cleanly_on_signals`].
static WRITE_LOCK: Mutex<()> = Mutex::new(());

/// Makes Ctrl-C (SIGINT) and SIGTERM stop the process cleanly: a thread
/// waits for either, then for any results write in progress to finish
/// (`write_json_atomic` holds a lock the thread takes), and exits with
/// 128 + the signal number (130, 143) without starting another write. A
/// results file written after every finished run (`sim --out`) therefore
/// holds every run that was saved, as a complete JSON document, and no temp
/// file is left behind. Call once, early in `main`.
///
/// # Errors
/// The handlers cannot be installed.
#[cfg(unix)]
pub fn exit_cleanly_on_signals() -> anyhow::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new().name("cachescope-signals".into()).spawn(move || {
        if let Some(signal) = signals.forever().next() {
            let _no_more_writes = WRITE_LOCK.lock().unwrap_or_else(|p| p.into_inner());
            let name = if signal == SIGINT { "interrupted (SIGINT)" } else { "terminated (SIGTERM)" };
            eprintln!("\ncachescope: {name}; results already written are complete");
            std::process::exit(128 + signal);
        }
    })?;
    Ok(())
}

/// Elsewhere the default handling stays (writes are still atomic).
///
/// # Errors
/// Never.
#[cfg(not(unix))]
pub fn exit_cleanly_on_signals() -> anyhow::Result<()> {
    Ok(())
}
