//! Reading a report sshfleet wrote back into whole records, one at a time: the one parser of
//! the report formats. Shard reports are merged into one report written exactly as a scan
//! writes it; [`super::read`] keeps of each record only what drift needs.
//!
//! JSON Lines and CSV are read a line at a time; a JSON array is read element by element,
//! never as a whole document.

use std::collections::HashMap;
use std::fmt;
use std::io::{BufRead, Read};
use std::path::Path;

use serde::de::{DeserializeSeed, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::record::{
    Action, Change, DeviceRecord, Drift, Exposure, KeyChange, Method, PortState, Remediation,
    SshFields, SshState, Status, WaiverTag,
};
use super::source::{
    csv_report, for_each_line, malformed, open_report, truncate, unneutralise, ReadError,
};
use sshfleet_axis::advisories::Advisories;
use sshfleet_core::time::parse_rfc3339_ms;
use sshfleet_ssh::grade::{Crypto, Terrapin};
use sshfleet_ssh::Algorithms;

/// What a report file holds besides its records: whether it is a remediation report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Shape {
    pub remediation: bool,
}

/// Calls `each` with every record of the report at `path`, in file order. `extra_keys` are
/// the passthrough columns to carry (as the report names them; see `Schema::columns`).
/// Stops at the first malformed record, naming it, or at the first error `each` returns.
/// Returns how many records were read. Which advisory ids need SSH is looked up in the
/// built-in advisories ([`replay_with`] names the set).
pub fn replay(
    path: &Path,
    extra_keys: &[String],
    each: impl FnMut(DeviceRecord, Shape) -> Result<(), ReadError>,
) -> Result<u64, ReadError> {
    replay_with(path, extra_keys, crate::advisory::builtin(), each)
}

/// [`replay`], with `advisories` the set that tells which advisory ids of the records need
/// SSH (the built-in set with the user's file, as the scan had them). An id it does not know
/// is counted as needing SSH and marked unknown (see [`crate::advisory`]).
pub fn replay_with(
    path: &Path,
    extra_keys: &[String],
    advisories: &Advisories,
    mut each: impl FnMut(DeviceRecord, Shape) -> Result<(), ReadError>,
) -> Result<u64, ReadError> {
    let (reader, first) = open_report(path)?;
    let with = Reading {
        extra_keys,
        advisories,
    };
    match first {
        None => Ok(0),
        Some(b'[') => replay_json_array(path, reader, with, &mut each),
        Some(b'{') => replay_jsonl(path, reader, with, &mut each),
        Some(_) => replay_csv(path, reader, with, &mut each),
    }
}

/// What a record is read with besides its cells.
#[derive(Clone, Copy)]
struct Reading<'a> {
    /// The passthrough columns to carry.
    extra_keys: &'a [String],
    /// The advisories in use.
    advisories: &'a Advisories,
}

/// The shape of the report at `path`, told by its first record (`None` when it has none).
pub fn first_shape(path: &Path) -> Result<Option<Shape>, ReadError> {
    let mut shape = None;
    let read = replay(path, &[], |_, s| {
        shape = Some(s);
        // Stops the read: one record tells.
        Err(malformed(path, String::new(), "first record read"))
    });
    match (read, shape) {
        (_, Some(shape)) => Ok(Some(shape)),
        (Ok(_), None) => Ok(None),
        (Err(e), None) => Err(e),
    }
}

/// One record's cells by column name, as text (a JSON value is turned into the text the CSV
/// writer gives it: `true`, `42`, a list joined by `;`; `null` is absent).
trait Cells {
    fn text(&self, key: &str) -> Option<String>;
    fn has(&self, key: &str) -> bool;

    /// The server's algorithm lists (`ssh_kexinit`): an object, so only JSON reports hold it.
    fn kexinit(&self) -> Result<Option<Algorithms>, String> {
        Ok(None)
    }

    /// The cell's text, absent when empty.
    fn filled(&self, key: &str) -> Option<String> {
        self.text(key).filter(|t| !t.is_empty())
    }

    /// The cell read by `parse`; `Err` names the key and the value it did not know.
    fn word<T>(&self, key: &str, parse: fn(&str) -> Option<T>) -> Result<Option<T>, String> {
        match self.filled(key) {
            None => Ok(None),
            Some(text) => parse(&text)
                .map(Some)
                .ok_or_else(|| format!("unknown {key} {:?}", truncate(&text))),
        }
    }

    /// The cell's text, which must be an RFC 3339 time when present (drift compares them).
    fn instant(&self, key: &str) -> Result<Option<String>, String> {
        match self.filled(key) {
            Some(text) if parse_rfc3339_ms(&text).is_none() => Err(format!(
                "{key} {:?} is not an RFC 3339 time",
                truncate(&text)
            )),
            text => Ok(text),
        }
    }

    fn number<T: std::str::FromStr>(&self, key: &str) -> Result<Option<T>, String> {
        self.word(key, |t| t.parse().ok())
    }

    fn boolean(&self, key: &str) -> Result<Option<bool>, String> {
        match self.filled(key).as_deref() {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(other) => Err(format!("not a boolean: {key} {:?}", truncate(other))),
        }
    }
}

impl Cells for Map<String, Value> {
    fn text(&self, key: &str) -> Option<String> {
        match self.get(key)? {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Number(n) => Some(n.to_string()),
            Value::Array(items) => Some(
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(";"),
            ),
            Value::Object(_) => Some(String::from("{…}")),
        }
    }

    fn has(&self, key: &str) -> bool {
        self.contains_key(key)
    }

    fn kexinit(&self) -> Result<Option<Algorithms>, String> {
        match self.get("ssh_kexinit") {
            None | Some(Value::Null) => Ok(None),
            Some(value) => serde_json::from_value(value.clone())
                .map(Some)
                .map_err(|e| format!("ssh_kexinit is not a list of algorithms: {e}")),
        }
    }
}

struct CsvRow<'a> {
    columns: &'a HashMap<String, usize>,
    row: &'a csv::StringRecord,
}

impl Cells for CsvRow<'_> {
    fn text(&self, key: &str) -> Option<String> {
        let cell = self.row.get(*self.columns.get(key)?)?;
        (!cell.is_empty()).then(|| unneutralise(cell).to_owned())
    }

    fn has(&self, key: &str) -> bool {
        self.columns.contains_key(key)
    }
}

fn crypto_of(word: &str) -> Option<Crypto> {
    [Crypto::Ok, Crypto::Weak, Crypto::Fail]
        .into_iter()
        .find(|c| c.as_str() == word)
}

fn terrapin_of(word: &str) -> Option<Terrapin> {
    [Terrapin::Vulnerable, Terrapin::Mitigated]
        .into_iter()
        .find(|t| t.as_str() == word)
}

/// The record in `cells`; `Err` says which field is wrong (the first, in column order).
fn record_from(cells: &impl Cells, with: Reading<'_>) -> Result<(DeviceRecord, Shape), String> {
    let address = cells
        .text("address")
        .ok_or_else(|| String::from("no address"))?;
    let status = cells
        .word("status", Status::parse)?
        .ok_or_else(|| String::from("no status"))?;
    let mut rec = DeviceRecord::new(
        address,
        cells.filled("name").unwrap_or_default(),
        cells.filled("site").unwrap_or_default(),
        status,
    );
    read_check(cells, &mut rec)?;
    let remediation = cells.has("action");
    rec.remediation = remediation_from(cells)?;
    rec.serial = cells.filled("serial");
    rec.drift = drift_from(cells)?;
    rec.waiver = cells.filled("waiver").map(WaiverTag::from);
    rec.ssh_port = cells.word("ssh_port", PortState::parse)?;
    rec.ssh_banner = cells.filled("ssh_banner");
    rec.exposure = cells.word("exposure", Exposure::parse)?;
    rec.model = cells.filled("model");
    rec.firmware = cells.filled("firmware");
    rec.ssh = SshFields {
        host_key: cells.filled("ssh_host_key"),
        host_key_type: cells.filled("ssh_host_key_type"),
        kexinit: cells.kexinit()?,
        crypto: cells.word("ssh_crypto", crypto_of)?,
        terrapin: cells.word("ssh_terrapin", terrapin_of)?,
        key_shared: cells.number("ssh_key_shared")?,
        host_key_change: cells.word("ssh_host_key_change", KeyChange::parse)?,
    };
    rec.advisories = crate::advisory::read_back(
        cells.text("advisories"),
        cells.has("advisories"),
        rec.firmware.as_deref(),
        with.advisories,
    );
    rec.extra = with
        .extra_keys
        .iter()
        .map(|key| cells.text(key).unwrap_or_default())
        .collect();
    Ok((rec, Shape { remediation }))
}

/// The columns of the check itself, from `ssh_enabled` to `checked_at`.
fn read_check(cells: &impl Cells, rec: &mut DeviceRecord) -> Result<(), String> {
    rec.ssh_enabled = cells.boolean("ssh_enabled")?;
    rec.expect = cells.word("expect", SshState::parse)?;
    rec.compliant = cells.boolean("compliant")?;
    rec.method = cells.word("method", Method::parse)?;
    rec.api_version = cells.filled("api_version");
    rec.supported_versions = cells
        .filled("supported_versions")
        .map(|list| {
            list.split(';')
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    rec.http_status = cells.number("http_status")?;
    rec.error_code = cells.number("error_code")?;
    rec.error = cells.filled("error");
    rec.attempts = cells.number("attempts")?.unwrap_or(0);
    rec.elapsed_ms = cells.number("elapsed_ms")?.unwrap_or(0);
    rec.tls_fingerprint = cells.filled("tls_fingerprint");
    rec.checked_at = cells.instant("checked_at")?.unwrap_or_default();
    Ok(())
}

/// The remediation columns, when the record has an action.
fn remediation_from(cells: &impl Cells) -> Result<Option<Remediation>, String> {
    let Some(action) = cells.word("action", Action::parse)? else {
        return Ok(None);
    };
    Ok(Some(Remediation {
        action,
        before: cells.boolean("before")?,
        after: cells.boolean("after")?,
        verified: cells.boolean("verified")?,
    }))
}

/// The drift columns, when the record has a change.
fn drift_from(cells: &impl Cells) -> Result<Option<Drift>, String> {
    let Some(change) = cells.word("change", Change::parse)? else {
        return Ok(None);
    };
    Ok(Some(Drift {
        change,
        first_seen: cells.instant("first_seen")?.unwrap_or_default(),
        state_since: cells.instant("state_since")?.unwrap_or_default(),
    }))
}

fn replay_jsonl(
    path: &Path,
    reader: impl BufRead,
    with: Reading<'_>,
    each: &mut impl FnMut(DeviceRecord, Shape) -> Result<(), ReadError>,
) -> Result<u64, ReadError> {
    let mut records = 0u64;
    for_each_line(path, reader, |line, where_| {
        let object: Map<String, Value> =
            serde_json::from_slice(line).map_err(|e| malformed(path, where_(), e))?;
        let (rec, shape) = record_from(&object, with).map_err(|e| malformed(path, where_(), e))?;
        records += 1;
        each(rec, shape)
    })?;
    Ok(records)
}

fn replay_csv(
    path: &Path,
    reader: impl Read,
    with: Reading<'_>,
    each: &mut impl FnMut(DeviceRecord, Shape) -> Result<(), ReadError>,
) -> Result<u64, ReadError> {
    let (mut csv, header) = csv_report(path, reader)?;
    let columns: HashMap<String, usize> = header
        .iter()
        .enumerate()
        .map(|(i, name)| (name.to_owned(), i))
        .collect();
    let mut row = csv::StringRecord::new();
    let mut records = 0u64;
    loop {
        let line = csv.position().line();
        let more = csv
            .read_record(&mut row)
            .map_err(|e| malformed(path, format!("line {line}"), e))?;
        if !more {
            return Ok(records);
        }
        let cells = CsvRow {
            columns: &columns,
            row: &row,
        };
        let (rec, shape) = record_from(&cells, with).map_err(|e| {
            malformed(
                path,
                format!("line {}", row.position().map_or(line, |p| p.line())),
                e,
            )
        })?;
        records += 1;
        each(rec, shape)?;
    }
}

/// A JSON array read one element at a time through serde's sequence access.
fn replay_json_array(
    path: &Path,
    reader: impl Read,
    with: Reading<'_>,
    each: &mut impl FnMut(DeviceRecord, Shape) -> Result<(), ReadError>,
) -> Result<u64, ReadError> {
    let mut failed = None;
    let mut de = serde_json::Deserializer::from_reader(reader);
    let seed = Elements {
        path,
        with,
        each,
        failed: &mut failed,
    };
    let read = seed.deserialize(&mut de).and_then(|n| de.end().map(|()| n));
    match (read, failed) {
        (_, Some(e)) => Err(e),
        (Ok(n), None) => Ok(n),
        (Err(e), None) => Err(malformed(
            path,
            format!("line {}", e.line()),
            format!("not a JSON array of records: {e}"),
        )),
    }
}

/// The elements of a JSON array of records, each handed to `each` as it is read; the
/// array's length is the value.
struct Elements<'a, F> {
    path: &'a Path,
    with: Reading<'a>,
    each: &'a mut F,
    /// A failure of `each` or of a record, kept whole (serde's error carries text only).
    failed: &'a mut Option<ReadError>,
}

impl<'de, F> Visitor<'de> for Elements<'_, F>
where
    F: FnMut(DeviceRecord, Shape) -> Result<(), ReadError>,
{
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON array of records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<u64, A::Error> {
        let mut n = 0u64;
        while let Some(object) = seq.next_element::<Map<String, Value>>()? {
            n = n.saturating_add(1);
            let result = record_from(&object, self.with)
                .map_err(|e| malformed(self.path, format!("record {n}"), e))
                .and_then(|(rec, shape)| (self.each)(rec, shape));
            if let Err(e) = result {
                *self.failed = Some(e);
                return Err(serde::de::Error::custom("stopped"));
            }
        }
        Ok(n)
    }
}

impl<'de, F> DeserializeSeed<'de> for Elements<'_, F>
where
    F: FnMut(DeviceRecord, Shape) -> Result<(), ReadError>,
{
    type Value = u64;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<u64, D::Error> {
        d.deserialize_seq(self)
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;
    use crate::test_support::{full_record, SharedBuf};
    use crate::{writer, Format, Schema};

    fn written(
        format: Format,
        schema: &Schema,
        records: &[DeviceRecord],
    ) -> tempfile::NamedTempFile {
        let buf = SharedBuf::default();
        let mut w = writer(format, schema, Box::new(buf.clone()));
        for rec in records {
            w.write(rec).unwrap();
        }
        w.finish().unwrap();
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), buf.text()).unwrap();
        file
    }

    fn replayed(path: &Path, extra: &[String]) -> Vec<(DeviceRecord, Shape)> {
        let mut out = Vec::new();
        replay(path, extra, |rec, shape| {
            out.push((rec, shape));
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn every_format_gives_back_the_record_it_was_written_from() {
        let schema = Schema {
            remediation: true,
            extra_columns: vec!["owner".into()],
        };
        let keys = vec!["owner".to_owned()];
        let mut hostile = full_record();
        hostile.name = "=HYPERLINK(\"x\")".into();
        hostile.error = Some("-1, \"quoted\"\nnext line".into());
        hostile.remediation = None;
        hostile.drift = None;
        let mut sparse = DeviceRecord::new(
            "10.0.0.9".into(),
            String::new(),
            String::new(),
            Status::Timeout,
        );
        sparse.checked_at = "2026-12-01T00:00:00.000Z".into();
        sparse.extra = vec![String::new()];
        let records = vec![full_record(), hostile, sparse];
        for format in [Format::Jsonl, Format::Json, Format::Csv] {
            let file = written(format, &schema, &records);
            let back = replayed(file.path(), &keys);
            let recs: Vec<DeviceRecord> = back.iter().map(|(r, _)| r.clone()).collect();
            let mut want = records.clone();
            if format == Format::Csv {
                // CSV carries no raw control characters: the line break comes back as the
                // escape the cell showed.
                want[1].error = Some("-1, \"quoted\"\\nnext line".into());
                // The algorithm lists are an object: JSON reports only.
                for rec in &mut want {
                    rec.ssh.kexinit = None;
                }
            }
            assert_eq!(recs, want, "{format}");
            assert!(back.iter().all(|(_, s)| s.remediation), "{format}");
        }
    }

    #[test]
    fn a_malformed_record_is_named_by_line_or_position() {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(
            file.path(),
            "{\"address\":\"a\",\"status\":\"ok\"}\n{\"address\":\"b\",\"status\":\"weird\"}\n",
        )
        .unwrap();
        let err = replay(file.path(), &[], |_, _| Ok(()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2") && err.contains("status"), "{err}");
        std::fs::write(
            file.path(),
            "[{\"address\":\"a\",\"status\":\"ok\"},{\"status\":\"ok\"}]",
        )
        .unwrap();
        let err = replay(file.path(), &[], |_, _| Ok(()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("record 2") && err.contains("address"), "{err}");
        std::fs::write(file.path(), "address,status\nx,ok\ny,ok,extra\n").unwrap();
        let err = replay(file.path(), &[], |_, _| Ok(()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 3"), "{err}");
        std::fs::write(file.path(), "name,site\nx,y\n").unwrap();
        let err = replay(file.path(), &[], |_, _| Ok(()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not an sshfleet report"), "{err}");
    }
}
