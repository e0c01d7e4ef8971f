//! Equinix SSH-user reports: one row per user with its audit flags, change rows for writes,
//! availability answers — each as CSV, JSON Lines or JSON — and the listing summary.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::marker::PhantomData;

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use super::csv_writer::{into_io, neutralise};
use super::pipeline::{Collect, Output};
use super::Format;
use sshfleet_equinix::{AuditFlag, SshUser};

/// A report row: its CSV columns and cells, and its JSON form (via `Serialize`).
pub trait TableRow: Serialize {
    const COLUMNS: &'static [&'static str];
    /// The CSV cells, in [`Self::COLUMNS`] order.
    fn cells(&self) -> Vec<Cow<'_, str>>;
}

/// One SSH user. JSON keeps the structure (a list of devices, a map of pod statuses).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UserRow {
    pub uuid: String,
    pub username: String,
    /// Unknown (`null`) when the listing was not verbose.
    pub device_count: Option<usize>,
    pub devices: Option<Vec<String>>,
    #[serde(serialize_with = "pairs_as_map")]
    pub metro_statuses: Vec<(String, String)>,
    pub flags: Vec<&'static str>,
}

impl From<&SshUser> for UserRow {
    fn from(user: &SshUser) -> UserRow {
        UserRow {
            uuid: user.uuid.clone(),
            username: user.username.clone(),
            device_count: user.device_count(),
            devices: user.device_uuids.clone(),
            metro_statuses: user
                .metros
                .iter()
                .map(|(pod, status)| (pod.clone(), status.as_str().to_owned()))
                .collect(),
            flags: user.flags().into_iter().map(AuditFlag::as_str).collect(),
        }
    }
}

impl TableRow for UserRow {
    const COLUMNS: &'static [&'static str] = &[
        "uuid",
        "username",
        "device_count",
        "devices",
        "metro_statuses",
        "flags",
    ];

    fn cells(&self) -> Vec<Cow<'_, str>> {
        let metros = self
            .metro_statuses
            .iter()
            .map(|(pod, status)| format!("{pod}={status}"))
            .collect::<Vec<_>>()
            .join(";");
        vec![
            text(&self.uuid),
            text(&self.username),
            number(self.device_count),
            neutralise(Cow::Owned(self.devices.as_deref().unwrap_or(&[]).join(";"))),
            neutralise(Cow::Owned(metros)),
            Cow::Owned(self.flags.join(";")),
        ]
    }
}

/// One write (planned or applied).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ChangeRow {
    /// `create`, `set_password`, `attach` or `detach`.
    pub action: &'static str,
    /// `false` for a dry run (no `--apply`) and for a failed change.
    pub applied: bool,
    pub user_uuid: Option<String>,
    pub username: Option<String>,
    pub device_uuid: Option<String>,
    /// Detach only: the user went with its last device.
    pub user_deleted: Option<bool>,
    /// Detach only.
    pub association_deleted: Option<bool>,
    pub error: Option<String>,
}

impl TableRow for ChangeRow {
    const COLUMNS: &'static [&'static str] = &[
        "action",
        "applied",
        "user_uuid",
        "username",
        "device_uuid",
        "user_deleted",
        "association_deleted",
        "error",
    ];

    fn cells(&self) -> Vec<Cow<'_, str>> {
        vec![
            Cow::Borrowed(self.action),
            boolean(Some(self.applied)),
            opt_text(&self.user_uuid),
            opt_text(&self.username),
            opt_text(&self.device_uuid),
            boolean(self.user_deleted),
            boolean(self.association_deleted),
            opt_text(&self.error),
        ]
    }
}

/// The answer of the availability check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AvailabilityRow {
    pub username: String,
    pub available: bool,
    /// The API's codes when the name is taken or restricted.
    pub error_codes: Vec<String>,
    pub reason: Option<String>,
}

impl TableRow for AvailabilityRow {
    const COLUMNS: &'static [&'static str] = &["username", "available", "error_codes", "reason"];

    fn cells(&self) -> Vec<Cow<'_, str>> {
        vec![
            text(&self.username),
            boolean(Some(self.available)),
            neutralise(Cow::Owned(self.error_codes.join(";"))),
            opt_text(&self.reason),
        ]
    }
}

fn text(value: &str) -> Cow<'_, str> {
    neutralise(Cow::Borrowed(value))
}

fn opt_text(value: &Option<String>) -> Cow<'_, str> {
    value.as_deref().map_or(Cow::Borrowed(""), text)
}

fn number(value: Option<usize>) -> Cow<'static, str> {
    value.map_or(Cow::Borrowed(""), |n| Cow::Owned(n.to_string()))
}

fn boolean(value: Option<bool>) -> Cow<'static, str> {
    Cow::Borrowed(match value {
        Some(true) => "true",
        Some(false) => "false",
        None => "",
    })
}

fn pairs_as_map<S: Serializer>(pairs: &[(String, String)], s: S) -> Result<S::Ok, S::Error> {
    let mut map = s.serialize_map(Some(pairs.len()))?;
    for (key, value) in pairs {
        map.serialize_entry(key, value)?;
    }
    map.end()
}

/// Writes rows of one kind in one format. CSV and JSON Lines stream; JSON is an array
/// streamed element by element.
pub struct TableWriter<R> {
    format: Format,
    out: Box<dyn Write + Send>,
    csv: Option<csv::Writer<Box<dyn Write + Send>>>,
    rows: u64,
    _row: PhantomData<fn(&R)>,
}

impl<R: TableRow> TableWriter<R> {
    pub fn new(format: Format, out: Box<dyn Write + Send>) -> TableWriter<R> {
        let (out, csv): (Box<dyn Write + Send>, _) = match format {
            Format::Csv => (Box::new(io::sink()), Some(csv::Writer::from_writer(out))),
            _ => (out, None),
        };
        TableWriter {
            format,
            out,
            csv,
            rows: 0,
            _row: PhantomData,
        }
    }

    pub fn write(&mut self, row: &R) -> io::Result<()> {
        if let Some(csv) = &mut self.csv {
            if self.rows == 0 {
                csv.write_record(R::COLUMNS).map_err(into_io)?;
            }
            csv.write_record(row.cells().iter().map(|c| c.as_bytes()))
                .map_err(into_io)?;
        } else {
            if self.format == Format::Json {
                self.out
                    .write_all(if self.rows == 0 { b"[\n" } else { b",\n" })?;
            }
            serde_json::to_writer(&mut self.out, row).map_err(io::Error::from)?;
            if self.format == Format::Jsonl {
                self.out.write_all(b"\n")?;
            }
        }
        self.rows += 1;
        Ok(())
    }

    pub fn flush(&mut self) -> io::Result<()> {
        match &mut self.csv {
            Some(csv) => csv.flush(),
            None => self.out.flush(),
        }
    }

    /// Completes the file: the CSV header of an empty report, the JSON array's end.
    pub fn finish(&mut self) -> io::Result<()> {
        if let Some(csv) = &mut self.csv {
            if self.rows == 0 {
                csv.write_record(R::COLUMNS).map_err(into_io)?;
            }
        } else if self.format == Format::Json {
            self.out
                .write_all(if self.rows == 0 { b"[]\n" } else { b"\n]\n" })?;
        }
        self.flush()
    }
}

impl<R: TableRow> Output<R> for TableWriter<R> {
    fn write(&mut self, row: &R) -> io::Result<()> {
        TableWriter::write(self, row)
    }

    fn flush(&mut self) -> io::Result<()> {
        TableWriter::flush(self)
    }

    fn finish(&mut self) -> io::Result<()> {
        TableWriter::finish(self)
    }
}

/// The writer thread's work on a listing: each user becomes a row and is counted.
pub struct Users {
    summary: UserSummary,
}

impl Default for Users {
    fn default() -> Users {
        Users {
            summary: UserSummary::new(),
        }
    }
}

impl Collect for Users {
    type Item = SshUser;
    type Row = UserRow;
    type Summary = UserSummary;

    fn row(&mut self, user: SshUser) -> UserRow {
        UserRow::from(&user)
    }

    fn count(&mut self, row: &UserRow) {
        self.summary.add(row);
    }

    fn finish(self) -> UserSummary {
        self.summary
    }
}

/// What a listing found, counted row by row.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct UserSummary {
    pub users: u64,
    /// Users with at least one audit flag.
    pub flagged: u64,
    /// Users per flag, every flag present (zeros included).
    pub by_flag: BTreeMap<&'static str, u64>,
    /// Users listed without device details (not verbose): not judged on devices.
    pub without_details: u64,
    pub devices_attached: u64,
}

impl UserSummary {
    pub fn new() -> UserSummary {
        UserSummary {
            by_flag: AuditFlag::ALL.iter().map(|f| (f.as_str(), 0)).collect(),
            ..UserSummary::default()
        }
    }

    pub fn add(&mut self, row: &UserRow) {
        self.users += 1;
        self.flagged += u64::from(!row.flags.is_empty());
        for flag in &row.flags {
            *self.by_flag.entry(flag).or_default() += 1;
        }
        match row.device_count {
            Some(n) => self.devices_attached += n as u64,
            None => self.without_details += 1,
        }
    }

    /// The stderr summary.
    pub fn render_text(&self) -> String {
        let mut text = format!(
            "equinix ssh users: {} listed, {} flagged, {} device attachments\n",
            self.users, self.flagged, self.devices_attached
        );
        for (flag, count) in &self.by_flag {
            text.push_str(&format!("  {flag:<15} {count}\n"));
        }
        if self.without_details > 0 {
            text.push_str(&format!(
                "  ({} users listed without details: --verbose=false)\n",
                self.without_details
            ));
        }
        text
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use sshfleet_equinix::PodStatus;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl Write for Buf {
        fn write(&mut self, data: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(data);
            Ok(data.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn sample() -> UserRow {
        UserRow::from(&SshUser {
            uuid: "68d8".into(),
            username: "=cmd".into(),
            device_uuids: Some(vec![]),
            metros: vec![
                ("da1.pod1".into(), PodStatus::Failed),
                ("sv5.pod1".into(), PodStatus::Active),
            ],
        })
    }

    fn render(format: Format, rows: &[UserRow]) -> String {
        let buf = Buf::default();
        let mut w = TableWriter::<UserRow>::new(format, Box::new(buf.clone()));
        for row in rows {
            w.write(row).unwrap();
        }
        w.finish().unwrap();
        let bytes = buf.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn csv_rows_join_lists_and_neutralise_api_text() {
        assert_eq!(
            render(Format::Csv, &[sample()]),
            "uuid,username,device_count,devices,metro_statuses,flags\n\
             68d8,'=cmd,0,,da1.pod1=FAILED;sv5.pod1=ACTIVE,no_devices;failed\n"
        );
        assert_eq!(
            render(Format::Csv, &[]),
            "uuid,username,device_count,devices,metro_statuses,flags\n"
        );
    }

    #[test]
    fn json_keeps_the_structure() {
        let line = render(Format::Jsonl, &[sample()]);
        assert_eq!(
            line,
            "{\"uuid\":\"68d8\",\"username\":\"=cmd\",\"device_count\":0,\"devices\":[],\
             \"metro_statuses\":{\"da1.pod1\":\"FAILED\",\"sv5.pod1\":\"ACTIVE\"},\
             \"flags\":[\"no_devices\",\"failed\"]}\n"
        );
        let array = render(Format::Json, &[sample(), sample()]);
        let parsed: serde_json::Value = serde_json::from_str(&array).unwrap();
        assert_eq!(parsed.as_array().map(Vec::len), Some(2));
        assert_eq!(render(Format::Json, &[]), "[]\n");
    }

    #[test]
    fn the_summary_counts_flags() {
        let mut summary = UserSummary::new();
        summary.add(&sample());
        summary.add(&UserRow {
            flags: vec![],
            device_count: None,
            ..sample()
        });
        assert_eq!((summary.users, summary.flagged), (2, 1));
        assert_eq!(summary.by_flag["failed"], 1);
        assert_eq!(summary.by_flag["pending"], 0);
        assert_eq!(summary.without_details, 1);
    }
}
