//! Where `sshfleet report html` takes its devices from: a report file sshfleet wrote
//! (JSON Lines, JSON or CSV), or one run of a `--history` database. Either way every
//! device passes through [`Summary::add`], so the page's numbers are the summary's.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use serde::Deserialize;

use super::{DeviceRows, TrendPoint};
use crate::history::{History, HistoryError, Period, RunRow};
use crate::report::read::{Observation, ReadError};
use crate::report::record::{
    Action, Change, DeviceRecord, Drift, Exposure, PortState, Remediation, SshState, Status,
};
use crate::report::{Baseline, DriftSummary, Summary};

/// Runs drawn in the trend.
pub const TREND_RUNS: usize = 30;

/// Longest line accepted from a JSON Lines report.
const MAX_LINE: u64 = 1 << 20;

/// What a page is made of, read back.
#[derive(Debug, Default)]
pub struct Loaded {
    pub rows: DeviceRows,
    pub summary: Summary,
    /// Oldest first.
    pub trend: Vec<TrendPoint>,
    /// Remediation: whether it wrote.
    pub applied: Option<bool>,
    /// When the devices were checked (the latest `checked_at`).
    pub checked_at: String,
}

impl Loaded {
    fn add(&mut self, rec: &DeviceRecord) {
        self.summary.add(rec);
        self.rows.push(rec);
        if let Some(rem) = &rec.remediation {
            let wrote = rem.verified.is_some();
            self.applied = Some(self.applied.unwrap_or(false) || wrote);
        }
        if rec.checked_at > self.checked_at {
            self.checked_at.clone_from(&rec.checked_at);
        }
    }
}

/// `report html` could not read its input.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    Report(#[from] ReadError),
    #[error(transparent)]
    History(#[from] HistoryError),
    #[error("the history {} does not exist", .0.display())]
    NoHistory(std::path::PathBuf),
    #[error("the history {path} has no run {which}")]
    NoRun { path: String, which: String },
}

/// The fields of a JSON record the page shows; everything else is ignored.
#[derive(Deserialize, Default)]
struct WireRecord {
    address: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    site: Option<String>,
    status: String,
    #[serde(default)]
    ssh_enabled: Option<bool>,
    #[serde(default)]
    expect: Option<String>,
    #[serde(default)]
    compliant: Option<bool>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    checked_at: Option<String>,
    #[serde(default)]
    serial: Option<String>,
    #[serde(default)]
    change: Option<String>,
    #[serde(default)]
    first_seen: Option<String>,
    #[serde(default)]
    state_since: Option<String>,
    #[serde(default)]
    waiver: Option<String>,
    #[serde(default)]
    ssh_port: Option<String>,
    #[serde(default)]
    exposure: Option<String>,
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    before: Option<bool>,
    #[serde(default)]
    after: Option<bool>,
    #[serde(default)]
    verified: Option<bool>,
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.is_empty())
}

fn parse_action(s: &str) -> Option<Action> {
    Action::ALL.into_iter().find(|a| a.as_str() == s)
}

impl WireRecord {
    fn into_record(self) -> Result<DeviceRecord, String> {
        let status = Status::parse(&self.status)
            .ok_or_else(|| format!("unknown status {:?}", cut(&self.status)))?;
        let mut rec = DeviceRecord::new(
            self.address,
            self.name.unwrap_or_default(),
            self.site.unwrap_or_default(),
            status,
        );
        rec.ssh_enabled = self.ssh_enabled;
        rec.expect = self.expect.as_deref().and_then(SshState::parse);
        rec.compliant = self.compliant;
        rec.error = non_empty(self.error);
        rec.checked_at = self.checked_at.unwrap_or_default();
        rec.serial = non_empty(self.serial);
        rec.waiver = non_empty(self.waiver);
        rec.ssh_port = self.ssh_port.as_deref().and_then(PortState::parse);
        rec.exposure = self.exposure.as_deref().and_then(Exposure::parse);
        if let Some(c) = non_empty(self.change) {
            let change =
                Change::parse(&c).ok_or_else(|| format!("unknown change {:?}", cut(&c)))?;
            rec.drift = Some(Drift {
                change,
                first_seen: self.first_seen.unwrap_or_default(),
                state_since: self.state_since.unwrap_or_default(),
            });
        }
        if let Some(action) = self.action.as_deref().and_then(parse_action) {
            rec.remediation = Some(Remediation {
                action,
                before: self.before,
                after: self.after,
                verified: self.verified,
            });
        }
        Ok(rec)
    }
}

fn cut(s: &str) -> String {
    s.chars().take(40).collect()
}

fn malformed(path: &Path, where_: String, reason: impl ToString) -> ReadError {
    ReadError::Malformed {
        path: path.to_owned(),
        where_,
        reason: reason.to_string(),
    }
}

/// Every device of the report at `path`, whichever format it is in (told by its first
/// byte, as [`crate::report::read::read_report`] does).
pub fn from_report(path: &Path) -> Result<Loaded, SourceError> {
    let io_err = |source| ReadError::Io {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(io_err)?;
    let mut reader = BufReader::with_capacity(256 * 1024, file);
    let first = loop {
        let buf = reader.fill_buf().map_err(io_err)?;
        match buf.iter().position(|b| !b.is_ascii_whitespace()) {
            Some(i) => {
                let byte = buf[i];
                reader.consume(i);
                break Some(byte);
            }
            None if buf.is_empty() => break None,
            None => {
                let n = buf.len();
                reader.consume(n);
            }
        }
    };
    let mut loaded = Loaded::default();
    match first {
        None => {}
        Some(b'[') => read_json_array(path, reader, &mut loaded)?,
        Some(b'{') => read_jsonl(path, reader, &mut loaded)?,
        Some(_) => read_csv(path, reader, &mut loaded)?,
    }
    Ok(loaded)
}

fn read_jsonl(path: &Path, reader: impl BufRead, loaded: &mut Loaded) -> Result<(), ReadError> {
    let mut reader = reader.take(0);
    let mut line = Vec::new();
    let mut number = 0u64;
    loop {
        line.clear();
        reader.set_limit(MAX_LINE);
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|source| ReadError::Io {
                path: path.to_owned(),
                source,
            })?;
        if n == 0 {
            return Ok(());
        }
        number += 1;
        let where_ = || format!("line {number}");
        if !line.ends_with(b"\n") && n as u64 >= MAX_LINE {
            return Err(malformed(path, where_(), "line longer than 1 MiB"));
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let wire: WireRecord =
            serde_json::from_slice(&line).map_err(|e| malformed(path, where_(), e))?;
        let rec = wire
            .into_record()
            .map_err(|e| malformed(path, where_(), e))?;
        loaded.add(&rec);
    }
}

fn read_json_array(path: &Path, reader: impl Read, loaded: &mut Loaded) -> Result<(), ReadError> {
    let records: Vec<WireRecord> = serde_json::from_reader(reader).map_err(|e| {
        malformed(
            path,
            format!("line {}", e.line()),
            format!("not a JSON array of records: {e}"),
        )
    })?;
    for (i, wire) in records.into_iter().enumerate() {
        let rec = wire
            .into_record()
            .map_err(|e| malformed(path, format!("record {}", i + 1), e))?;
        loaded.add(&rec);
    }
    Ok(())
}

/// The CSV writer prefixes cells that would start a spreadsheet formula with `'`; undo it.
fn unneutralise(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if rest.starts_with(crate::report::csv_writer::FORMULA_TRIGGERS) => rest,
        _ => cell,
    }
}

fn read_csv(path: &Path, reader: impl Read, loaded: &mut Loaded) -> Result<(), ReadError> {
    let mut csv = csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(reader);
    let header = csv
        .headers()
        .map_err(|e| malformed(path, "line 1".into(), e))?
        .clone();
    let column = |name: &str| header.iter().position(|h| h == name);
    if column("address").is_none() || column("status").is_none() {
        return Err(malformed(
            path,
            "line 1".into(),
            "not an sshfleet report: no address and status columns",
        ));
    }
    for (i, row) in csv.records().enumerate() {
        let where_ = || format!("line {}", i + 2);
        let row = row.map_err(|e| malformed(path, where_(), e))?;
        let cell = |name: &str| -> Option<String> {
            let text = unneutralise(row.get(column(name)?)?);
            (!text.is_empty()).then(|| text.to_owned())
        };
        let boolean = |name: &str| -> Result<Option<bool>, ReadError> {
            match cell(name).as_deref() {
                None => Ok(None),
                Some("true") => Ok(Some(true)),
                Some("false") => Ok(Some(false)),
                Some(other) => Err(malformed(
                    path,
                    where_(),
                    format!("{name} is not a boolean: {:?}", cut(other)),
                )),
            }
        };
        let wire = WireRecord {
            address: cell("address").unwrap_or_default(),
            name: cell("name"),
            site: cell("site"),
            status: cell("status").unwrap_or_default(),
            ssh_enabled: boolean("ssh_enabled")?,
            expect: cell("expect"),
            compliant: boolean("compliant")?,
            error: cell("error"),
            checked_at: cell("checked_at"),
            serial: cell("serial"),
            change: cell("change"),
            first_seen: cell("first_seen"),
            state_since: cell("state_since"),
            waiver: cell("waiver"),
            ssh_port: cell("ssh_port"),
            exposure: cell("exposure"),
            action: cell("action"),
            before: boolean("before")?,
            after: boolean("after")?,
            verified: boolean("verified")?,
        };
        let rec = wire
            .into_record()
            .map_err(|e| malformed(path, where_(), e))?;
        loaded.add(&rec);
    }
    Ok(())
}

/// The trend of `run`'s scope up to and including it, oldest first.
pub fn trend_of(history: &History, run: &RunRow) -> Result<Vec<TrendPoint>, HistoryError> {
    let mut runs = history.scope_runs(&run.scope, run.id, TREND_RUNS)?;
    runs.retain(|r| !r.interrupted || r.id == run.id);
    runs.reverse();
    Ok(runs.iter().map(TrendPoint::from_run).collect())
}

/// Run `run` (default: the latest finished) of the history at `path`: its devices as the
/// history kept them (no error messages: the history keeps states, not errors), their
/// drift against the scope's previous finished run, and the scope's trend.
pub fn from_history(path: &Path, run: Option<i64>) -> Result<(Loaded, RunRow), SourceError> {
    if !path.exists() {
        return Err(SourceError::NoHistory(path.to_owned()));
    }
    let history = History::open(path)?;
    let Some(row) = history.run(run)? else {
        return Err(SourceError::NoRun {
            path: path.display().to_string(),
            which: run.map_or_else(|| "finished yet".to_owned(), |id| id.to_string()),
        });
    };
    let previous = history
        .scope_runs(&row.scope, row.id - 1, TREND_RUNS)?
        .into_iter()
        .find(|r| !r.interrupted);
    let mut baseline = match &previous {
        Some(p) => Some(Baseline::new(
            history
                .run_periods(&p.scope, p.id)?
                .into_iter()
                .map(observation)
                .collect(),
        )),
        None => None,
    };
    let mut loaded = Loaded {
        summary: Summary {
            drift: baseline.as_ref().map(|_| DriftSummary::default()),
            ..Summary::default()
        },
        ..Loaded::default()
    };
    for period in history.run_periods(&row.scope, row.id)? {
        let mut rec = record(period);
        if let Some(b) = &mut baseline {
            b.annotate(&mut rec);
        }
        loaded.add(&rec);
    }
    if let (Some(b), Some(drift)) = (&baseline, &mut loaded.summary.drift) {
        b.finish_into(drift);
    }
    loaded.trend = trend_of(&history, &row)?;
    Ok((loaded, row))
}

fn observation(p: Period) -> Observation {
    Observation {
        status: Status::parse(&p.status).unwrap_or(Status::ProtocolError),
        address: p.address,
        serial: p.serial,
        name: p.name,
        site: p.site,
        ssh_enabled: p.ssh_enabled,
        compliant: p.compliant,
        checked_at: p.last_seen,
        first_seen: None,
        state_since: Some(p.first_seen),
        change: None,
        stored: None,
    }
}

fn record(p: Period) -> DeviceRecord {
    let status = Status::parse(&p.status).unwrap_or(Status::ProtocolError);
    let mut rec = DeviceRecord::new(p.address, p.name, p.site, status);
    rec.serial = p.serial;
    rec.ssh_enabled = p.ssh_enabled;
    rec.compliant = p.compliant;
    rec.waiver = p.waiver;
    rec.checked_at = p.last_seen;
    rec
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    #[test]
    fn every_format_reads_back_into_the_same_summary() {
        let dir = tempfile::tempdir().unwrap();
        let jsonl = dir.path().join("r.jsonl");
        std::fs::write(
            &jsonl,
            concat!(
                r#"{"address":"a","name":"n","site":"s","status":"ok","ssh_enabled":true,"compliant":false,"serial":"S1","change":"regressed"}"#,
                "\n",
                r#"{"address":"b","site":"s","status":"timeout","error":"no answer"}"#,
                "\n"
            ),
        )
        .unwrap();
        let csv = dir.path().join("r.csv");
        std::fs::write(
            &csv,
            "address,name,site,status,ssh_enabled,compliant,error,serial,change\n\
             a,n,s,ok,true,false,,S1,regressed\n\
             b,,s,timeout,,,no answer,,\n",
        )
        .unwrap();
        for path in [&jsonl, &csv] {
            let loaded = from_report(path).unwrap();
            assert_eq!(loaded.summary.total, 2);
            assert_eq!(loaded.summary.ssh_enabled, 1);
            assert_eq!(loaded.summary.not_checked(), 1);
            let drift = loaded.summary.drift.as_ref().unwrap();
            assert_eq!(drift.by_change.get(Change::Regressed), 1);
            assert_eq!(loaded.rows.len(), 2);
            assert_eq!(loaded.rows.errors.values(), ["no answer"]);
        }
    }

    #[test]
    fn an_unknown_status_names_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.jsonl");
        std::fs::write(&path, "{\"address\":\"a\",\"status\":\"maybe\"}\n").unwrap();
        let err = from_report(&path).unwrap_err().to_string();
        assert!(err.contains("line 1") && err.contains("maybe"), "{err}");
    }
}
