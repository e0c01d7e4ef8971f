//! Report records and their writers (CSV, JSON Lines, JSON, and the HTML page), streamed by
//! one writer thread, and the run summary.

pub mod advisory;
pub mod claims;
mod columns;
pub mod coverage;
pub mod csv_writer;
pub mod diff;
pub mod drift;
pub mod fleet;
pub mod host_keys;
pub mod html;
mod json_writer;
mod junit_writer;
pub mod metrics;
pub mod ocsf;
pub mod pipeline;
pub mod read;
pub mod record;
mod records;
pub mod replay;
mod source;
mod spill;
pub mod ssh_users;
mod summary;
#[cfg(test)]
mod test_support;

use std::fmt;
use std::io::Write;
use std::path::Path;
use std::str::FromStr;

pub use columns::Schema;
pub use drift::{Baseline, DriftSummary};
pub use record::{
    Action, Change, DeviceRecord, Drift, Exposure, KeyChange, Method, PortState, Remediation,
    SshFields, SshState, Status,
};
pub use records::{
    finish, into_summary, moved_aside_on_failure, named, record_pipeline, staged, CutShort,
    RecordOutput, RecordPipeline, RecordSinks, Records, ReportError, RunStore, SharedStore,
};
pub use summary::{
    Compliance, ExposureSummary, RemediationSummary, RunCoverage, SiteSummary, StatusCounts, Stop,
    Summary,
};

/// A report file format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    Csv,
    /// One JSON object per line; the default, and the format whose shard outputs concatenate.
    #[default]
    Jsonl,
    /// One JSON array, streamed.
    Json,
    /// JUnit XML, one test case per device (device reports only).
    Junit,
    /// OCSF Compliance Findings as JSON Lines, one per device and control (device reports
    /// only; see [`ocsf`]).
    Ocsf,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Jsonl => "jsonl",
            Format::Json => "json",
            Format::Junit => "junit",
            Format::Ocsf => "ocsf",
        }
    }

    /// The format named by a file extension (`.csv`, `.jsonl`/`.ndjson`, `.json`, `.xml`
    /// for JUnit), any case.
    pub fn from_path(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "csv" => Some(Format::Csv),
            "jsonl" | "ndjson" => Some(Format::Jsonl),
            "json" => Some(Format::Json),
            "xml" => Some(Format::Junit),
            _ => None,
        }
    }
}

impl FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Format, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "csv" => Ok(Format::Csv),
            "jsonl" | "ndjson" => Ok(Format::Jsonl),
            "json" => Ok(Format::Json),
            "junit" => Ok(Format::Junit),
            "ocsf" => Ok(Format::Ocsf),
            _ => Err(format!(
                "unknown format {s:?} (expected csv, jsonl, json, junit or ocsf)"
            )),
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A report output. Records stream in as devices finish; `finish` completes the file (the
/// JSON array's `]`, the CSV header of an empty report) and flushes it.
pub trait RecordWriter: Send {
    fn write(&mut self, rec: &DeviceRecord) -> std::io::Result<()>;
    fn flush(&mut self) -> std::io::Result<()>;
    fn finish(&mut self) -> std::io::Result<()>;

    /// Told once, before any record: how many devices the run's scope holds, so that an
    /// output can say at its end that devices were not reached.
    fn scope(&mut self, _devices: u64) {}

    /// Told once, before any record, when the run compares with a previous one: an output
    /// that speaks of the devices gone since (OCSF's closed findings) keeps its own copy.
    fn previous(&mut self, _baseline: &Baseline) {}

    /// What to call this output in an error message (a path); see [`pipeline::Named`].
    fn label(&self) -> Option<&str> {
        None
    }
}

/// A writer for `format` over `out`. Writers buffer; the writer thread flushes them whenever
/// it has nothing else to do, so output appears as results arrive.
pub fn writer(
    format: Format,
    schema: &Schema,
    out: Box<dyn Write + Send>,
) -> Box<dyn RecordWriter> {
    let layout = schema.layout();
    match format {
        Format::Csv => Box::new(csv_writer::CsvWriter::new(layout, out)),
        Format::Jsonl => Box::new(json_writer::JsonlWriter::new(layout, out)),
        Format::Json => Box::new(json_writer::JsonArrayWriter::new(layout, out)),
        Format::Junit => Box::new(junit_writer::JunitWriter::new(out)),
        Format::Ocsf => {
            let producer = ocsf::Producer {
                version: env!("CARGO_PKG_VERSION").to_owned(),
            };
            Box::new(ocsf::OcsfWriter::new(producer, out))
        }
    }
}

/// Progress hooks. The record pipeline calls them (`started` when it opens, `record` for
/// each record written, `finished` when it closes); the CLI implements them with a progress
/// bar. An output failure is not theirs to handle: see [`pipeline::OnOutputFailure`].
pub trait Reporter: Send + Sync {
    fn started(&self, _total: u64) {}
    fn record(&self, _rec: &DeviceRecord) {}
    fn finished(&self) {}
}

/// A reporter that reports nothing (tests, `--quiet`).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProgress;

impl Reporter for NoProgress {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_from_name_and_path() {
        assert_eq!("CSV".parse::<Format>(), Ok(Format::Csv));
        assert_eq!("ndjson".parse::<Format>(), Ok(Format::Jsonl));
        assert!("xml".parse::<Format>().is_err());
        assert_eq!(
            Format::from_path(Path::new("out/r.JSONL")),
            Some(Format::Jsonl)
        );
        assert_eq!(Format::from_path(Path::new("r.json")), Some(Format::Json));
        assert_eq!(Format::from_path(Path::new("r.csv")), Some(Format::Csv));
        assert_eq!(Format::from_path(Path::new("r.XML")), Some(Format::Junit));
        assert_eq!("junit".parse::<Format>(), Ok(Format::Junit));
        assert_eq!(Format::from_path(Path::new("-")), None);
        assert_eq!(Format::from_path(Path::new("r.txt")), None);
        assert_eq!(Format::default(), Format::Jsonl);
    }
}
