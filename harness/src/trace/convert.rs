//! Conversion between trace formats (`cachescope convert`), and the
//! writers it uses.
//!
//! Converting reads the input twice, streaming both times: once into a
//! [`DecodedTrace`] (which computes every request's next access with a
//! reverse pass), once more to write each event with its next access. So
//! time stamps and access kinds survive, and memory holds the decoded
//! columns, never the text.

use std::path::{Path, PathBuf};

use cachescope_core::policy::Request;
use rustc_hash::FxHashMap;
use serde::Serialize;

use super::csv::CsvWriter;
use super::native::{self, NativeLayout, NativeMeta, NativeWriter};
use super::oracle::{OracleRecord, OracleWriter};
use super::{
    DecodedTrace, DispatchEvent, DispatchReader, LoadOptions, RequestRecord, TraceEvent, TraceFormat, TraceIdentity,
    TraceReader,
};
use crate::error::{Error, Result};

/// What a conversion did.
#[derive(Debug, Clone, Serialize)]
pub struct ConvertSummary {
    /// The input, as decoded.
    pub input: TraceIdentity,
    /// The file written.
    pub output: PathBuf,
    /// Its format.
    pub output_format: TraceFormat,
    /// Records written (requests, plus frees in a native file).
    pub records: u64,
    /// Size of the file written.
    pub output_bytes: u64,
}

/// Converts any trace to the native format, keeping access kinds and, for a
/// dispatch trace, frees (flag FREES), peak live bytes and the pipeline ->
/// operator dictionary. Buffers flattening; see [`convert_with`] for more.
///
/// # Errors
/// The input is unreadable or malformed, or the output cannot be written.
pub fn convert(input: &Path, input_format: Option<TraceFormat>, output: &Path) -> Result<ConvertSummary> {
    convert_with(input, input_format, output, TraceFormat::Native, LoadOptions { gpu: true, ..LoadOptions::default() })
}

/// Converts `input` to `output_format` (native, csv, oracle or
/// oracle-zstd) with the given flattening, object view and limit. Frees
/// are kept only in native output and only with `options.gpu`. CSV output
/// gets an `access` column when any request writes. oracleGeneral output
/// gets next-access vtimes as libCacheSim writes them.
///
/// # Errors
/// The input is unreadable or malformed; the output format cannot hold
/// the trace (a dispatch output, a time or size over u32 in oracleGeneral);
/// the output cannot be written.
pub fn convert_with(
    input: &Path,
    input_format: Option<TraceFormat>,
    output: &Path,
    output_format: TraceFormat,
    mut options: LoadOptions,
) -> Result<ConvertSummary> {
    if !matches!(output_format, TraceFormat::Native | TraceFormat::Csv | TraceFormat::Oracle | TraceFormat::OracleZstd)
    {
        return Err(Error::config(format!(
            "cannot write {output_format} traces (write native, csv, oracle or oracle-zstd)"
        )));
    }
    if output_format != TraceFormat::Native {
        options.gpu = false;
    }
    let decoded = DecodedTrace::load(input, input_format, options)?;
    let format = decoded.identity.format;
    let events = TraceReader::open(input, Some(format), options.flatten(), options.gpu)?;
    let events = events.take(decoded.len()).map(|e| {
        e.map(|e| match e {
            TraceEvent::Request(mut r) if options.objects => {
                r.size = 1;
                TraceEvent::Request(r)
            }
            TraceEvent::Free(mut f) if options.objects => {
                f.size = 1;
                TraceEvent::Free(f)
            }
            other => other,
        })
    });
    let with_next = events.zip(decoded.next_access.iter().copied()).map(|(e, n)| e.map(|e| (e, n)));
    let records = match output_format {
        TraceFormat::Native => {
            let mut flags = 0;
            let mut dictionary = Vec::new();
            if format == TraceFormat::Dispatch {
                flags |= native::FLAG_DISPATCH;
                dictionary = pipeline_names(input)?;
            }
            if options.pipelines {
                flags |= native::FLAG_PIPELINE_KEYS;
            }
            if options.objects {
                flags |= native::FLAG_OBJECTS;
            }
            if decoded.identity.frees > 0 {
                flags |= native::FLAG_FREES;
            }
            let max_size = decoded.sizes.iter().copied().max().unwrap_or(0);
            let layout = NativeLayout {
                time_bytes: 8,
                size_bytes: if max_size <= u64::from(u32::MAX) { 4 } else { 8 },
                op: decoded.identity.frees > 0
                    || decoded.access.iter().any(|a| *a != cachescope_core::policy::Access::Read),
                next_access: true,
            };
            let meta = NativeMeta {
                flags,
                peak_live_bytes: decoded.peak_live_bytes,
                skipped_zero_size: decoded.identity.skipped_zero_size,
                dictionary,
            };
            let mut writer = NativeWriter::create(output, layout, meta)?;
            for item in with_next {
                let (event, next) = item?;
                writer.write(&event, next)?;
            }
            writer.finish()?.record_count
        }
        TraceFormat::Csv => {
            let with_access = decoded.access.iter().any(|a| *a != cachescope_core::policy::Access::Read);
            write_csv(output, with_next.filter_map(request_only).map(|r| r.map(|(r, _)| r)), with_access)?
        }
        _ => write_oracle(output, with_next.filter_map(request_only), output_format == TraceFormat::OracleZstd)?,
    };
    let output_bytes = std::fs::metadata(output).map_err(|e| Error::io("stat", output, e))?.len();
    Ok(ConvertSummary { input: decoded.identity, output: output.to_owned(), output_format, records, output_bytes })
}

fn request_only(item: Result<(TraceEvent, u64)>) -> Option<Result<(RequestRecord, u64)>> {
    match item {
        Ok((TraceEvent::Request(r), n)) => Some(Ok((r, n))),
        Ok((TraceEvent::Free(_), _)) => None,
        Err(e) => Some(Err(e)),
    }
}

/// The operator name of every pipeline of a dispatch trace (the first name
/// seen for each), sorted by pipeline id.
fn pipeline_names(path: &Path) -> Result<Vec<(u64, String)>> {
    let mut names: FxHashMap<u64, String> = FxHashMap::default();
    for event in DispatchReader::open(path)? {
        if let DispatchEvent::Dispatch { pipeline, op, .. } = event? {
            names.entry(pipeline).or_insert(op);
        }
    }
    let mut names: Vec<_> = names.into_iter().collect();
    names.sort_unstable();
    Ok(names)
}

/// Writes requests as CSV (`time,key,size`, plus `access` when asked);
/// the file appears only when complete. Returns the records written.
///
/// # Errors
/// The first error of `requests`, or a write fails.
pub fn write_csv(
    path: &Path,
    requests: impl IntoIterator<Item = Result<RequestRecord>>,
    with_access: bool,
) -> Result<u64> {
    let mut writer = CsvWriter::create(path, with_access)?;
    for r in requests {
        writer.write(&r?)?;
    }
    writer.finish()
}

/// Writes requests with their next access (request index,
/// [`Request::NEVER`] for none) as libCacheSim oracleGeneral, plain or zstd:
/// next-access vtime = index + 1, or -1. The file appears only when
/// complete. Returns the records written.
///
/// # Errors
/// The first error of `requests`; a time or size that does not fit
/// oracleGeneral's u32 fields (the error names the record); a write fails.
pub fn write_oracle(
    path: &Path,
    requests: impl IntoIterator<Item = Result<(RequestRecord, u64)>>,
    zstd: bool,
) -> Result<u64> {
    let mut writer = OracleWriter::create(path, zstd)?;
    for (i, item) in requests.into_iter().enumerate() {
        let (r, next) = item?;
        let too_big = |field: &str, v: u64| {
            Error::config(format!(
                "record {i} of `{}`: {field} {v} does not fit oracleGeneral's 32-bit field",
                path.display()
            ))
        };
        let record = OracleRecord {
            time: u32::try_from(r.time).map_err(|_| too_big("time", r.time))?,
            id: r.key,
            size: u32::try_from(r.size).map_err(|_| too_big("size", r.size))?,
            next_access_vtime: if next == Request::NEVER { -1 } else { i64::try_from(next + 1).unwrap_or(i64::MAX) },
        };
        writer.write(&record)?;
    }
    writer.finish()
}
