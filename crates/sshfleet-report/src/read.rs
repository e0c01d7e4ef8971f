//! Reading back a report sshfleet wrote (JSON Lines, a JSON array or CSV), for drift against
//! a previous run and for `sshfleet diff`: [`super::replay`] parses it record by record, and
//! only the fields that say what a device was are kept, so a 100,000-device report costs a
//! few tens of MiB, not a parsed document.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use super::record::{Change, DeviceRecord, Status};
use super::replay::replay;
pub use super::source::ReadError;
use sshfleet_core::time::parse_rfc3339_ms;

/// What a previous report said about one device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    pub address: String,
    pub serial: Option<String>,
    pub name: String,
    pub site: String,
    pub status: Status,
    pub ssh_enabled: Option<bool>,
    pub compliant: Option<bool>,
    /// When the device was checked, and its `first_seen` and `state_since`, as Unix
    /// milliseconds: integers rather than text, since a baseline is held whole for a run.
    pub checked_at: Option<i64>,
    pub first_seen: Option<i64>,
    pub state_since: Option<i64>,
    /// The change that report recorded (a `diff` of two drift reports keeps it).
    pub change: Option<Change>,
    /// A waiver in force allowed the device's state in that report (its `waiver` column):
    /// then it was not a finding, nor new exposure.
    pub waived: bool,
    /// Where a history keeps this device's states (`--history`), when it came from one.
    pub stored: Option<Stored>,
    /// The SSH host key read then (`ssh_host_key`), when one was.
    pub ssh_host_key: Option<String>,
}

/// The history rows an observation was read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stored {
    /// The device in its scope.
    pub track: i64,
    /// Its latest state period.
    pub interval: i64,
}

impl From<DeviceRecord> for Observation {
    /// What drift keeps of a record read back. Its times were checked when it was read
    /// ([`super::replay`] refuses one that is not RFC 3339).
    fn from(rec: DeviceRecord) -> Observation {
        let instant = |text: &str| parse_rfc3339_ms(text);
        let drift = rec.drift.as_ref();
        Observation {
            checked_at: instant(&rec.checked_at),
            first_seen: drift.and_then(|d| instant(&d.first_seen)),
            state_since: drift.and_then(|d| instant(&d.state_since)),
            change: drift.map(|d| d.change),
            waived: rec.waiver.is_some(),
            ssh_host_key: rec.ssh.host_key,
            address: rec.address,
            serial: rec.serial,
            name: rec.name,
            site: rec.site,
            status: rec.status,
            ssh_enabled: rec.ssh_enabled,
            compliant: rec.compliant,
            stored: None,
        }
    }
}

impl Observation {
    /// Whether the device was read (its SSH state known).
    pub fn readable(&self) -> bool {
        self.status == Status::Ok
    }
}

/// Reads every record of the report at `path`, whichever format it is in (told by its first
/// byte: `[` a JSON array, `{` JSON Lines, anything else CSV with a header), one record at a
/// time, each kept as the [`Observation`] it makes.
pub fn read_report(path: &Path) -> Result<Vec<Observation>, ReadError> {
    let lines = count_lines(path).map_err(|source| ReadError::Io {
        path: path.to_owned(),
        source,
    })?;
    let mut out = Vec::with_capacity(lines);
    replay(path, &[], |rec, _| {
        out.push(Observation::from(rec));
        Ok(())
    })?;
    out.shrink_to_fit();
    Ok(out)
}

/// Line breaks in the file: an upper bound on its records, so that the vector holding them
/// is allocated once (a baseline is held for a whole run; growth by doubling would peak at
/// twice what it keeps).
fn count_lines(path: &Path) -> io::Result<usize> {
    let mut file = File::open(path)?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut lines = 0usize;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(lines.saturating_add(1));
        }
        lines = lines.saturating_add(buf[..n].iter().filter(|&&b| b == b'\n').count());
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::super::test_support::{full_record, SharedBuf};
    use super::super::{writer, Format, Schema};
    use super::*;

    #[test]
    fn a_time_that_is_not_one_is_refused_with_its_line() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        io::Write::write_all(
            &mut file,
            b"{\"address\":\"a\",\"status\":\"ok\",\"checked_at\":\"2026-12-03T17:55:17.763Z\"}\n\
              {\"address\":\"b\",\"status\":\"ok\",\"checked_at\":\"yesterday\"}\n",
        )
        .unwrap();
        let err = read_report(file.path()).unwrap_err().to_string();
        assert!(
            err.contains("line 2") && err.contains("checked_at \"yesterday\""),
            "{err}"
        );
    }

    fn written(format: Format) -> tempfile::NamedTempFile {
        let buf = SharedBuf::default();
        let schema = Schema {
            remediation: true,
            extra_columns: vec!["owner".into()],
        };
        let mut w = writer(format, &schema, Box::new(buf.clone()));
        let mut hostile = full_record();
        hostile.address = "=cmd|'/C calc'!A0".into();
        hostile.name = "-lobby".into();
        hostile.serial = None;
        hostile.drift = None;
        hostile.status = Status::Timeout;
        hostile.ssh_enabled = None;
        hostile.compliant = None;
        let mut waived = full_record();
        waived.waiver = Some("W-1 owner=secops expires=2999-12-31".into());
        for rec in [waived, hostile] {
            w.write(&rec).unwrap();
        }
        w.finish().unwrap();
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), buf.text()).unwrap();
        file
    }

    #[test]
    fn every_format_sshfleet_writes_reads_back_the_same() {
        let mut seen = Vec::new();
        for format in [Format::Jsonl, Format::Json, Format::Csv] {
            let file = written(format);
            let rows = read_report(file.path()).unwrap();
            assert_eq!(rows.len(), 2, "{format:?}");
            assert_eq!(rows[0].address, "https://10.0.0.7:8443");
            assert_eq!(rows[0].serial.as_deref(), Some("ACCC8E012345"));
            assert_eq!(rows[0].ssh_enabled, Some(true));
            assert_eq!(rows[0].compliant, Some(false));
            assert_eq!(rows[0].change, Some(Change::Regressed));
            assert!(rows[0].waived, "{format:?}");
            assert!(!rows[1].waived, "{format:?}");
            assert_eq!(
                rows[0]
                    .first_seen
                    .map(sshfleet_core::time::format_rfc3339_millis),
                Some("2026-11-01T08:00:00.000Z".to_owned())
            );
            assert_eq!(rows[1].address, "=cmd|'/C calc'!A0", "{format:?}");
            assert_eq!(rows[1].name, "-lobby");
            assert_eq!(rows[1].status, Status::Timeout);
            assert_eq!(rows[1].ssh_enabled, None);
            seen.push(rows);
        }
        assert!(seen.windows(2).all(|w| w[0] == w[1]));
    }

    #[test]
    fn bad_files_say_where() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let cases: [(&str, &str); 6] = [
            (
                "{\"address\":\"a\",\"status\":\"ok\"}\n{\"address\":",
                "line 2",
            ),
            (
                "{\"address\":\"a\",\"status\":\"fine\"}\n",
                "unknown status",
            ),
            (
                "[{\"address\":\"a\",\"status\":\"ok\"},{\"status\":\"ok\"}]",
                "record 2: no address",
            ),
            ("[{\"address\":\"a\",\"status\":\"ok\"},", "line 1"),
            ("address,name\nx,y\n", "no address and status"),
            (
                "address,status,ssh_enabled\nx,ok,maybe\n",
                "line 2: not a boolean",
            ),
        ];
        for (text, want) in cases {
            std::fs::write(file.path(), text).unwrap();
            let err = read_report(file.path()).unwrap_err().to_string();
            assert!(err.contains(want), "{text:?}: {err}");
        }
        std::fs::write(file.path(), "  \n").unwrap();
        assert!(read_report(file.path()).unwrap().is_empty());
        let missing = read_report(Path::new("/nonexistent/report.jsonl")).unwrap_err();
        assert!(missing.to_string().contains("cannot read the report"));
    }
}
