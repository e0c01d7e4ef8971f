//! The CSV report: a header, then one row per record, with cells from devices and inputs
//! neutralised against spreadsheet formula injection.

use std::borrow::Cow;
use std::io::{self, Write};

use super::columns::{Cell, Layout};
use super::{DeviceRecord, RecordWriter};

/// Characters that make a spreadsheet read a cell as a formula (OWASP CSV injection).
pub(crate) const FORMULA_TRIGGERS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

pub(crate) struct CsvWriter {
    out: csv::Writer<Box<dyn Write + Send>>,
    layout: Layout,
    header_written: bool,
}

impl CsvWriter {
    pub(crate) fn new(layout: Layout, out: Box<dyn Write + Send>) -> CsvWriter {
        CsvWriter {
            out: csv::WriterBuilder::new().from_writer(out),
            layout,
            header_written: false,
        }
    }

    /// The header goes out with the first record or flush, so even an empty report has it.
    fn ensure_header(&mut self) -> io::Result<()> {
        if !self.header_written {
            self.out
                .write_record(self.layout.header())
                .map_err(into_io)?;
            self.header_written = true;
        }
        Ok(())
    }
}

impl RecordWriter for CsvWriter {
    fn write(&mut self, rec: &DeviceRecord) -> io::Result<()> {
        self.ensure_header()?;
        let out = &mut self.out;
        self.layout
            .for_each_cell(rec, |_, cell| match render(cell) {
                Some(text) => out.write_field(text.as_bytes()),
                None => Ok(()),
            })
            .map_err(into_io)?;
        // An empty record ends the row that the fields above started.
        out.write_record(None::<&[u8]>).map_err(into_io)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.ensure_header()?;
        self.out.flush()
    }

    fn finish(&mut self) -> io::Result<()> {
        self.flush()
    }
}

/// The text of one cell: `true`/`false`, empty for unknown, lists joined by `;`; `None` for
/// a JSON-only cell, which has no CSV column.
fn render(cell: Cell<'_>) -> Option<Cow<'_, str>> {
    Some(match cell {
        Cell::Algorithms(_) => return None,
        Cell::Text(Some(text)) => neutralise(Cow::Borrowed(text)),
        Cell::List(items) => neutralise(Cow::Owned(items.join(";"))),
        Cell::Word(Some(word)) => Cow::Borrowed(word),
        Cell::Bool(Some(b)) => Cow::Borrowed(if b { "true" } else { "false" }),
        Cell::Unsigned(Some(n)) => Cow::Owned(n.to_string()),
        Cell::Signed(Some(n)) => Cow::Owned(n.to_string()),
        Cell::Text(None)
        | Cell::Word(None)
        | Cell::Bool(None)
        | Cell::Unsigned(None)
        | Cell::Signed(None) => Cow::Borrowed(""),
    })
}

/// A cell from a device or an input, made inert: control characters shown as escapes
/// (`\u{1b}`, `\n`: no raw escape sequence or line break reaches a spreadsheet or a
/// terminal), and a leading `'` where the text would start a formula, so that spreadsheets
/// show it instead of evaluating it.
pub fn neutralise(text: Cow<'_, str>) -> Cow<'_, str> {
    let text = match text {
        Cow::Borrowed(t) => sshfleet_core::inert::escape(t),
        Cow::Owned(t) => match sshfleet_core::inert::escape(&t) {
            Cow::Borrowed(_) => Cow::Owned(t),
            Cow::Owned(escaped) => Cow::Owned(escaped),
        },
    };
    if text.starts_with(FORMULA_TRIGGERS) {
        Cow::Owned(format!("'{text}"))
    } else {
        text
    }
}

/// Keeps the kind of I/O errors (a broken pipe must stay recognisable); the csv crate's own
/// `From` impl turns every error into `Other`.
pub(crate) fn into_io(err: csv::Error) -> io::Error {
    let message = err.to_string();
    match err.into_kind() {
        csv::ErrorKind::Io(io) => io,
        _ => io::Error::other(message),
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::super::test_support::{full_record, SharedBuf};
    use super::super::{writer, Format, Schema};
    use super::*;

    fn csv_of(schema: &Schema, records: &[DeviceRecord]) -> String {
        let buf = SharedBuf::default();
        let mut w = writer(Format::Csv, schema, Box::new(buf.clone()));
        for rec in records {
            w.write(rec).unwrap();
        }
        w.finish().unwrap();
        buf.text()
    }

    #[test]
    fn golden_row_of_a_full_record() {
        let schema = Schema {
            remediation: true,
            extra_columns: vec!["owner".into(), "status".into()],
        };
        assert_eq!(
            csv_of(&schema, &[full_record()]),
            "address,name,site,status,ssh_enabled,expect,compliant,method,api_version,\
             supported_versions,http_status,error_code,error,attempts,elapsed_ms,tls_fingerprint,\
             checked_at,action,before,after,verified,serial,change,first_seen,state_since,waiver,\
             ssh_port,ssh_banner,exposure,model,firmware,ssh_host_key,ssh_host_key_type,ssh_crypto,\
             ssh_terrapin,ssh_key_shared,ssh_host_key_change,advisories,owner,inventory_status\n\
             https://10.0.0.7:8443,\"Lobby, north\",hq,ok,true,disabled,false,ssh.cgi,1.1,1.0;1.1,\
             200,,,2,153,ab12,2026-11-23T12:00:00.123Z,set,true,false,true,ACCC8E012345,regressed,\
             2026-11-01T08:00:00.000Z,2026-11-23T12:00:00.123Z,,open,SSH-2.0-OpenSSH_8.9,consistent,\
             P3265-LVE,10.12.114,SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s,ssh-ed25519,ok,\
             vulnerable,2,changed,CVE-2025-9524;CVE-2025-0325,alice,\n"
        );
    }

    #[test]
    fn unknown_values_are_empty_and_remediation_is_absent_from_scans() {
        let rec = DeviceRecord::new(
            "cam".into(),
            String::new(),
            String::new(),
            super::super::Status::Timeout,
        );
        let rec = DeviceRecord {
            checked_at: "t".into(),
            ..rec
        };
        let out = csv_of(&Schema::default(), &[rec]);
        assert_eq!(
            out.lines().nth(1),
            Some("cam,,,timeout,,,,,,,,,,0,0,,t,,,,,,,,,,,,,,,,,")
        );
    }

    #[test]
    fn empty_report_still_has_a_header() {
        let out = csv_of(&Schema::default(), &[]);
        assert_eq!(out.lines().count(), 1);
        assert!(out.starts_with("address,name,site,status,"));
    }

    #[test]
    fn formula_cells_from_inputs_are_neutralised() {
        let mut rec = full_record();
        rec.name = "=HYPERLINK(\"http://evil\",\"x\")".into();
        rec.site = "+1".into();
        rec.error = Some("-2 bad".into());
        rec.api_version = Some("@SUM(A1)".into());
        rec.supported_versions = vec!["\tx".into()];
        rec.ssh_banner = Some("=cmd|' /C calc'!A0".into());
        rec.model = Some("@model".into());
        rec.ssh.host_key_type = Some("=ssh-evil".into());
        rec.advisories = Some(crate::advisory::AdvisoryCheck::Matched {
            ids: vec!["=evil".into(), "CVE-2026-1185".into()],
            needs_ssh: Vec::new(),
            unknown: Vec::new(),
        });
        rec.extra = vec!["\rcr".into()];
        let schema = Schema {
            remediation: false,
            extra_columns: vec!["note".into()],
        };
        let out = csv_of(&schema, &[rec]);
        let mut reader = csv::Reader::from_reader(out.as_bytes());
        let row = reader.records().next().unwrap().unwrap();
        assert_eq!(&row[1], "'=HYPERLINK(\"http://evil\",\"x\")");
        assert_eq!(&row[2], "'+1");
        assert_eq!(&row[8], "'@SUM(A1)");
        // Control characters are shown as escapes: no longer a formula's start either.
        assert_eq!(&row[9], "\\tx");
        assert_eq!(&row[12], "'-2 bad");
        assert_eq!(&row[23], "'=cmd|' /C calc'!A0");
        assert_eq!(&row[25], "'@model");
        assert_eq!(&row[28], "'=ssh-evil");
        assert_eq!(&row[33], "'=evil;CVE-2026-1185");
        assert_eq!(&row[34], "\\rcr");
        // Our own vocabulary and numbers are never touched.
        assert_eq!(&row[3], "ok");
        assert_eq!(&row[22], "open");
    }

    #[test]
    fn broken_pipe_keeps_its_kind() {
        let mut w = writer(
            Format::Csv,
            &Schema::default(),
            Box::new(super::super::test_support::BrokenPipe),
        );
        let err = w
            .write(&full_record())
            .and_then(|()| w.flush())
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    }
}
