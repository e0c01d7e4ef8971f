//! `sshfleet diff OLD NEW`: what changed between two reports, one row per changed device
//! (gone ones included), in CSV, JSON Lines or JSON, with counts for the summary.

use std::borrow::Cow;
use std::io::{self, BufWriter, Write};

use serde::Serialize;

use super::csv_writer::neutralise;
use super::drift::{is_new_exposure, Baseline, ChangeCounts, Seen};
use super::read::Observation;
use super::record::Change;
use super::Format;
use sshfleet_core::time::format_rfc3339_millis;

/// The columns of a diff row, in order.
pub(crate) const DIFF_COLUMNS: [&str; 15] = [
    "change",
    "address",
    "address_before",
    "serial",
    "name",
    "site",
    "status_before",
    "status",
    "ssh_enabled_before",
    "ssh_enabled",
    "compliant_before",
    "compliant",
    "checked_at_before",
    "checked_at",
    "waived",
];

/// One changed device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DiffRow {
    pub change: Change,
    pub address: String,
    /// Where the device was before, when it moved.
    pub address_before: Option<String>,
    pub serial: Option<String>,
    pub name: String,
    pub site: String,
    pub status_before: Option<&'static str>,
    pub status: Option<&'static str>,
    pub ssh_enabled_before: Option<bool>,
    pub ssh_enabled: Option<bool>,
    pub compliant_before: Option<bool>,
    pub compliant: Option<bool>,
    pub checked_at_before: Option<String>,
    pub checked_at: Option<String>,
    /// A waiver in force allows the device's state in the new report: not new exposure.
    pub waived: bool,
}

impl DiffRow {
    /// Exposure the old report did not have, as the scan that wrote the new one counted it:
    /// a waived device is not new exposure.
    pub fn is_new_exposure(&self) -> bool {
        !self.waived && is_new_exposure(self.change, self.compliant, self.ssh_enabled)
    }
}

/// The changes from `old` to `new`, in the order of `new` and then the gone devices in the
/// order of `old`; and a count of every change (`unchanged` included).
pub fn diff(old: Vec<Observation>, new: &[Observation]) -> (Vec<DiffRow>, ChangeCounts) {
    let mut baseline = Baseline::new(old);
    let mut rows = Vec::new();
    let mut counts = ChangeCounts::default();
    for now in new {
        let seen = Seen {
            status: now.status,
            ssh_enabled: now.ssh_enabled,
            compliant: now.compliant,
        };
        let checked_at = stamp(now.checked_at);
        let (drift, before) = baseline.compare(
            &now.address,
            now.serial.as_deref(),
            seen,
            checked_at.as_deref().unwrap_or_default(),
        );
        counts.add(drift.change);
        if drift.change == Change::Unchanged {
            continue;
        }
        rows.push(DiffRow {
            change: drift.change,
            address: now.address.clone(),
            address_before: before
                .filter(|b| b.address != now.address)
                .map(|b| b.address.clone()),
            serial: now.serial.clone(),
            name: now.name.clone(),
            site: now.site.clone(),
            status_before: before.map(|b| b.status.as_str()),
            status: Some(now.status.as_str()),
            ssh_enabled_before: before.and_then(|b| b.ssh_enabled),
            ssh_enabled: now.ssh_enabled,
            compliant_before: before.and_then(|b| b.compliant),
            compliant: now.compliant,
            checked_at_before: before.and_then(|b| stamp(b.checked_at)),
            checked_at,
            waived: now.waived,
        });
    }
    for gone in baseline.gone() {
        counts.add(Change::Gone);
        rows.push(DiffRow::gone(gone));
    }
    (rows, counts)
}

impl DiffRow {
    /// A device of the old report that the new one does not have.
    fn gone(gone: &Observation) -> DiffRow {
        DiffRow {
            change: Change::Gone,
            address: gone.address.clone(),
            address_before: None,
            serial: gone.serial.clone(),
            name: gone.name.clone(),
            site: gone.site.clone(),
            status_before: Some(gone.status.as_str()),
            status: None,
            ssh_enabled_before: gone.ssh_enabled,
            ssh_enabled: None,
            compliant_before: gone.compliant,
            compliant: None,
            checked_at_before: stamp(gone.checked_at),
            checked_at: None,
            waived: false,
        }
    }
}

/// An observation's time as the report gave it.
fn stamp(unix_ms: Option<i64>) -> Option<String> {
    unix_ms.map(format_rfc3339_millis)
}

/// Writes the rows in `format`: CSV (device text neutralised against formulas), JSON Lines,
/// or one JSON array.
pub fn write_rows(format: Format, rows: &[DiffRow], out: Box<dyn Write + Send>) -> io::Result<()> {
    let mut out = BufWriter::new(out);
    match format {
        Format::Csv => write_csv(rows, &mut out)?,
        Format::Jsonl => {
            for row in rows {
                serde_json::to_writer(&mut out, row).map_err(io::Error::from)?;
                out.write_all(b"\n")?;
            }
        }
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, rows).map_err(io::Error::from)?;
            out.write_all(b"\n")?;
        }
        Format::Junit | Format::Ocsf => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "JUnit and OCSF output are for device reports, not for changes",
            ))
        }
    }
    out.flush()
}

fn write_csv(rows: &[DiffRow], out: &mut impl Write) -> io::Result<()> {
    let mut csv = csv::Writer::from_writer(out);
    let csv_err = |e: csv::Error| match e.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => io::Error::other(format!("{other:?}")),
    };
    csv.write_record(DIFF_COLUMNS).map_err(csv_err)?;
    let text = |s: &str| neutralise(Cow::Borrowed(s)).into_owned();
    let opt_text = |s: &Option<String>| s.as_deref().map(text).unwrap_or_default();
    let word = |w: Option<&str>| w.unwrap_or_default().to_owned();
    let boolean = |b: Option<bool>| b.map(|b| b.to_string()).unwrap_or_default();
    for row in rows {
        let cells = [
            row.change.as_str().to_owned(),
            text(&row.address),
            opt_text(&row.address_before),
            opt_text(&row.serial),
            text(&row.name),
            text(&row.site),
            word(row.status_before),
            word(row.status),
            boolean(row.ssh_enabled_before),
            boolean(row.ssh_enabled),
            boolean(row.compliant_before),
            boolean(row.compliant),
            opt_text(&row.checked_at_before),
            opt_text(&row.checked_at),
            boolean(Some(row.waived)),
        ];
        csv.write_record(&cells).map_err(csv_err)?;
    }
    csv.flush()
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::super::test_support::{observation, SharedBuf};
    use super::*;

    fn obs(address: &str, serial: Option<&str>, ssh: Option<bool>) -> Observation {
        Observation {
            name: format!("=name-{address}"),
            site: "hq".into(),
            checked_at: Some(1_764_000_000_000),
            ..observation(address, serial, ssh)
        }
    }

    #[test]
    fn only_changes_are_written_and_gone_devices_come_last() {
        let old = vec![
            obs("a", Some("AAAAAAAAAAAA"), Some(false)),
            obs("b", None, Some(false)),
            obs("c", None, Some(true)),
            obs("d", None, Some(false)),
        ];
        let new = vec![
            obs("a2", Some("AAAAAAAAAAAA"), Some(false)),
            obs("b", None, Some(true)),
            obs("c", None, Some(true)),
            obs("e", None, None),
        ];
        let (rows, counts) = diff(old, &new);
        let changes: Vec<_> = rows
            .iter()
            .map(|r| (r.change, r.address.as_str()))
            .collect();
        assert_eq!(
            changes,
            [
                (Change::Moved, "a2"),
                (Change::Regressed, "b"),
                (Change::New, "e"),
                (Change::Gone, "d")
            ]
        );
        assert_eq!(rows[0].address_before.as_deref(), Some("a"));
        assert_eq!(counts.get(Change::Unchanged), 1);
        assert_eq!(counts.get(Change::Gone), 1);

        let buf = SharedBuf::default();
        write_rows(Format::Csv, &rows, Box::new(buf.clone())).unwrap();
        let text = buf.text();
        assert!(
            text.starts_with("change,address,address_before,serial,"),
            "{text}"
        );
        assert!(
            text.contains("'=name-b"),
            "device text is neutralised: {text}"
        );
        let buf = SharedBuf::default();
        write_rows(Format::Jsonl, &rows, Box::new(buf.clone())).unwrap();
        let first: serde_json::Value =
            serde_json::from_str(buf.text().lines().next().unwrap()).unwrap();
        assert_eq!(first["change"], "moved");
        assert_eq!(first["name"], "=name-a2", "JSON keeps text verbatim");
    }
}
