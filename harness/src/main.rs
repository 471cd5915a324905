//! The `cachescope` command. Parses arguments, runs the job, and prints
//! errors with their causes; the work lives in the library.

use std::path::PathBuf;

use anyhow::{Context, Result};
use cachescope_harness::selfcheck::{self, SelfcheckConfig};
use clap::{Parser, Subcommand};

/// Benchmark and observability harness for GPU cache policies.
#[derive(Debug, Parser)]
#[command(name = "cachescope", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Drive every cache of the core on a small seeded workload, check its
    /// invariants and print its counters (the default job).
    Selfcheck {
        /// Seed of the synthetic workload.
        #[arg(long, default_value_t = SelfcheckConfig::default().seed)]
        seed: u64,
        /// Requests to replay.
        #[arg(long, default_value_t = SelfcheckConfig::default().requests)]
        requests: usize,
        /// Distinct keys.
        #[arg(long, default_value_t = SelfcheckConfig::default().keys)]
        keys: usize,
        /// Zipf skew of key popularity.
        #[arg(long, default_value_t = SelfcheckConfig::default().alpha)]
        alpha: f64,
        /// Also write the report as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Selfcheck {
        seed: SelfcheckConfig::default().seed,
        requests: SelfcheckConfig::default().requests,
        keys: SelfcheckConfig::default().keys,
        alpha: SelfcheckConfig::default().alpha,
        json: None,
    });
    match command {
        Command::Selfcheck { seed, requests, keys, alpha, json } => {
            let report = selfcheck::run(SelfcheckConfig { seed, requests, keys, alpha })?;
            print!("{}", selfcheck::render(&report));
            if let Some(path) = json {
                let text = serde_json::to_string_pretty(&report)?;
                std::fs::write(&path, text).with_context(|| format!("writing `{}`", path.display()))?;
            }
        }
    }
    Ok(())
}
