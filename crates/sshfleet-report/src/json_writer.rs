//! The JSON reports: JSON Lines (one object per record) and a JSON array streamed record by
//! record. Keys follow the column order; values are typed.

use std::io::{self, BufWriter, Write};

use serde::ser::{Serialize, SerializeMap, Serializer};

use super::columns::Layout;
use super::{DeviceRecord, RecordWriter};

/// One record as a JSON object, serialised straight from the record (no intermediate map).
struct JsonRecord<'a> {
    layout: &'a Layout,
    rec: &'a DeviceRecord,
}

impl Serialize for JsonRecord<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        self.layout
            .for_each_cell(self.rec, |key, cell| map.serialize_entry(key, &cell))?;
        map.end()
    }
}

/// Writes one record as compact JSON. serde_json hands I/O errors back unchanged, so a
/// broken pipe stays recognisable.
fn write_object(out: &mut impl Write, layout: &Layout, rec: &DeviceRecord) -> io::Result<()> {
    serde_json::to_writer(out, &JsonRecord { layout, rec }).map_err(io::Error::from)
}

pub(crate) struct JsonlWriter {
    out: BufWriter<Box<dyn Write + Send>>,
    layout: Layout,
}

impl JsonlWriter {
    pub(crate) fn new(layout: Layout, out: Box<dyn Write + Send>) -> JsonlWriter {
        JsonlWriter {
            out: BufWriter::new(out),
            layout,
        }
    }
}

impl RecordWriter for JsonlWriter {
    fn write(&mut self, rec: &DeviceRecord) -> io::Result<()> {
        write_object(&mut self.out, &self.layout, rec)?;
        self.out.write_all(b"\n")
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    fn finish(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// `[` + records joined by `,\n` + `]`, one record in memory at a time. The array is valid
/// JSON only after `finish`; a run cut short by a crash leaves it unterminated, which is why
/// JSON Lines is the default.
pub(crate) struct JsonArrayWriter {
    out: BufWriter<Box<dyn Write + Send>>,
    layout: Layout,
    written: u64,
    finished: bool,
}

impl JsonArrayWriter {
    pub(crate) fn new(layout: Layout, out: Box<dyn Write + Send>) -> JsonArrayWriter {
        JsonArrayWriter {
            out: BufWriter::new(out),
            layout,
            written: 0,
            finished: false,
        }
    }
}

impl RecordWriter for JsonArrayWriter {
    fn write(&mut self, rec: &DeviceRecord) -> io::Result<()> {
        if self.finished {
            return Err(io::Error::other(
                "JSON report written after it was finished",
            ));
        }
        let separator: &[u8] = if self.written == 0 { b"[\n" } else { b",\n" };
        self.out.write_all(separator)?;
        write_object(&mut self.out, &self.layout, rec)?;
        self.written += 1;
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    fn finish(&mut self) -> io::Result<()> {
        if !self.finished {
            self.finished = true;
            let end: &[u8] = if self.written == 0 { b"[]\n" } else { b"\n]\n" };
            self.out.write_all(end)?;
        }
        self.out.flush()
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::super::test_support::{full_record, BrokenPipe, SharedBuf};
    use super::super::{writer, Format, Schema, Status};
    use super::*;

    fn output(format: Format, schema: &Schema, records: &[DeviceRecord]) -> String {
        let buf = SharedBuf::default();
        let mut w = writer(format, schema, Box::new(buf.clone()));
        for rec in records {
            w.write(rec).unwrap();
        }
        w.finish().unwrap();
        buf.text()
    }

    #[test]
    fn golden_line_of_a_full_record() {
        let schema = Schema {
            remediation: true,
            extra_columns: vec!["owner".into(), "error".into()],
        };
        assert_eq!(
            output(Format::Jsonl, &schema, &[full_record()]),
            concat!(
                r#"{"address":"https://10.0.0.7:8443","name":"Lobby, north","site":"hq","status":"ok","#,
                r#""ssh_enabled":true,"expect":"disabled","compliant":false,"method":"ssh.cgi","#,
                r#""api_version":"1.1","supported_versions":["1.0","1.1"],"http_status":200,"#,
                r#""error_code":null,"error":null,"attempts":2,"elapsed_ms":153,"#,
                r#""tls_fingerprint":"ab12","checked_at":"2026-11-23T12:00:00.123Z","#,
                r#""action":"set","before":true,"after":false,"verified":true,"#,
                r#""serial":"ACCC8E012345","change":"regressed","#,
                r#""first_seen":"2026-11-01T08:00:00.000Z","state_since":"2026-11-23T12:00:00.123Z","#,
                r#""waiver":null,"#,
                r#""ssh_port":"open","ssh_banner":"SSH-2.0-OpenSSH_8.9","exposure":"consistent","#,
                r#""model":"P3265-LVE","firmware":"10.12.114","#,
                r#""ssh_host_key":"SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s","#,
                r#""ssh_host_key_type":"ssh-ed25519","ssh_kexinit":{"kex":["curve25519-sha256"],"#,
                r#""host_key":["ssh-ed25519"],"ciphers":["chacha20-poly1305@openssh.com"],"#,
                r#""macs":["hmac-sha2-256-etm@openssh.com"],"compression":["none"]},"#,
                r#""ssh_crypto":"ok","ssh_terrapin":"vulnerable","#,
                r#""ssh_key_shared":2,"ssh_host_key_change":"changed","#,
                r#""advisories":["CVE-2025-9524","CVE-2025-0325"],"#,
                r#""owner":"alice","inventory_error":""}"#,
                "\n"
            )
        );
    }

    #[test]
    fn scan_lines_have_no_remediation_keys_and_keep_text_verbatim() {
        let mut rec = DeviceRecord::new("=cmd".into(), "n".into(), "s".into(), Status::Timeout);
        rec.error = Some("deadline of 15s passed".into());
        let line = output(Format::Jsonl, &Schema::default(), &[rec]);
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        let object = value.as_object().unwrap();
        assert!(!object.contains_key("action"));
        assert_eq!(object["address"], "=cmd");
        assert_eq!(object["ssh_enabled"], serde_json::Value::Null);
        assert_eq!(object["supported_versions"], serde_json::json!([]));
        assert_eq!(object["attempts"], 0);
        assert_eq!(object["change"], serde_json::Value::Null);
        assert_eq!(object["ssh_port"], serde_json::Value::Null);
        assert_eq!(object["exposure"], serde_json::Value::Null);
        use super::super::record::{
            ADDED_COLUMNS, ADVISORY_COLUMNS, COLUMNS, EVIDENCE_COLUMNS, LATER_COLUMNS,
        };
        assert_eq!(object["ssh_kexinit"], serde_json::Value::Null);
        assert_eq!(object["advisories"], serde_json::Value::Null);
        assert_eq!(
            object.len(),
            COLUMNS.len()
                + ADDED_COLUMNS.len()
                + LATER_COLUMNS.len()
                + EVIDENCE_COLUMNS.len()
                + ADVISORY_COLUMNS.len()
        );
    }

    #[test]
    fn json_array_is_valid_with_zero_one_and_many_records() {
        for n in [0, 1, 3] {
            let records = vec![full_record(); n];
            let text = output(Format::Json, &Schema::default(), &records);
            let value: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(value.as_array().unwrap().len(), n, "{text}");
            assert!(text.ends_with("]\n"));
        }
    }

    #[test]
    fn json_array_finish_is_idempotent() {
        let buf = SharedBuf::default();
        let mut w = writer(Format::Json, &Schema::default(), Box::new(buf.clone()));
        w.write(&full_record()).unwrap();
        w.finish().unwrap();
        let once = buf.text();
        w.finish().unwrap();
        assert!(w.write(&full_record()).is_err());
        assert_eq!(buf.text(), once);
    }

    #[test]
    fn broken_pipe_keeps_its_kind() {
        let mut w = writer(Format::Jsonl, &Schema::default(), Box::new(BrokenPipe));
        let err = w
            .write(&full_record())
            .and_then(|()| w.flush())
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    }
}
