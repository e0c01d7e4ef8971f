//! The device table's data as one JSON document, column by column, made safe to embed in a
//! `<script type="application/json">` element.

use serde::ser::{Serialize, SerializeSeq, Serializer};

use super::rows::{DeviceRows, Standing, ACTIONS, EXPOSURES, NONE, NO_ENTRY};
use crate::record::{Change, Status};

/// Makes serialised JSON safe inside a `<script>` element: no byte sequence of it can end
/// the element or open a comment (`</script>`, `<!--`), nor break a line in older
/// JavaScript (U+2028/U+2029). `<`, `>` and `&` become `\u003c`, `\u003e`, `\u0026`;
/// outside strings JSON never holds those bytes, so this is valid JSON of the same meaning.
pub fn script_safe(json: &[u8]) -> String {
    let mut out = String::with_capacity(json.len() + json.len() / 16);
    let mut start = 0;
    let mut i = 0;
    let text = String::from_utf8_lossy(json);
    let bytes = text.as_bytes();
    while i < bytes.len() {
        let (escaped, width): (&str, usize) = match bytes[i] {
            b'<' => ("\\u003c", 1),
            b'>' => ("\\u003e", 1),
            b'&' => ("\\u0026", 1),
            // U+2028 and U+2029 in UTF-8.
            0xE2 if bytes.get(i + 1) == Some(&0x80) && bytes.get(i + 2) == Some(&0xA8) => {
                ("\\u2028", 3)
            }
            0xE2 if bytes.get(i + 1) == Some(&0x80) && bytes.get(i + 2) == Some(&0xA9) => {
                ("\\u2029", 3)
            }
            _ => {
                i += 1;
                continue;
            }
        };
        out.push_str(&text[start..i]);
        out.push_str(escaped);
        i += width;
        start = i;
    }
    out.push_str(&text[start..]);
    out
}

/// Small codes, "none" as -1.
struct Codes<'a>(&'a [u8]);

impl Serialize for Codes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for &c in self.0 {
            seq.serialize_element(&if c == NONE { -1 } else { i16::from(c) })?;
        }
        seq.end()
    }
}

/// Dictionary indexes, "none" as -1.
struct Entries<'a>(&'a [u32]);

impl Serialize for Entries<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for &e in self.0 {
            seq.serialize_element(&if e == NO_ENTRY { -1 } else { i64::from(e) })?;
        }
        seq.end()
    }
}

#[derive(serde::Serialize)]
struct Document<'a> {
    count: usize,
    statuses: Vec<&'static str>,
    changes: Vec<&'static str>,
    standings: Vec<&'static str>,
    standing_labels: Vec<&'static str>,
    exposures: Vec<&'static str>,
    actions: Vec<&'static str>,
    sites: &'a [String],
    waivers: &'a [String],
    errors: &'a [String],
    columns: Columns<'a>,
}

#[derive(serde::Serialize)]
struct Columns<'a> {
    serial: &'a [String],
    address: &'a [String],
    name: &'a [String],
    site: Entries<'a>,
    status: Codes<'a>,
    ssh: Codes<'a>,
    standing: Codes<'a>,
    change: Codes<'a>,
    waiver: Entries<'a>,
    error: Entries<'a>,
    exposure: Codes<'a>,
    action: Codes<'a>,
}

/// The rows as script-safe JSON.
pub(super) fn device_json(rows: &DeviceRows) -> String {
    let doc = Document {
        count: rows.len(),
        statuses: Status::ALL.iter().map(|s| s.as_str()).collect(),
        changes: Change::ALL.iter().map(|c| c.as_str()).collect(),
        standings: Standing::ALL.iter().map(|s| s.as_str()).collect(),
        standing_labels: Standing::ALL.iter().map(|s| s.label()).collect(),
        exposures: EXPOSURES.iter().map(|e| e.as_str()).collect(),
        actions: ACTIONS.iter().map(|a| a.as_str()).collect(),
        sites: rows.sites.values(),
        waivers: rows.waivers.values(),
        errors: rows.errors.values(),
        columns: Columns {
            serial: &rows.serial,
            address: &rows.address,
            name: &rows.name,
            site: Entries(&rows.site),
            status: Codes(&rows.status),
            ssh: Codes(&rows.ssh),
            standing: Codes(&rows.standing),
            change: Codes(&rows.change),
            waiver: Entries(&rows.waiver),
            error: Entries(&rows.error),
            exposure: Codes(&rows.exposure),
            action: Codes(&rows.action),
        },
    };
    // Serialising strings and integers into memory cannot fail.
    let json = serde_json::to_vec(&doc).unwrap_or_else(|_| b"{}".to_vec());
    script_safe(&json)
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;
    use crate::record::DeviceRecord;

    #[test]
    fn embedded_json_cannot_close_the_script_and_keeps_its_meaning() {
        let hostile = "</script><script>alert(1)</script> <!-- & \u{2028}\u{2029} \"x\"";
        let mut rows = DeviceRows::default();
        let mut rec = DeviceRecord::new("a".into(), hostile.into(), hostile.into(), Status::Ok);
        rec.error = Some(hostile.into());
        rows.push(&rec);
        let json = device_json(&rows);
        for bad in ["<", ">", "&", "\u{2028}", "\u{2029}"] {
            assert!(!json.contains(bad), "{bad:?} in {json}");
        }
        let back: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(back["columns"]["name"][0], hostile);
        assert_eq!(back["sites"][0], hostile);
        assert_eq!(back["errors"][0], hostile);
        assert_eq!(back["columns"]["ssh"][0], -1);
        assert_eq!(back["columns"]["waiver"][0], -1);
    }
}
