//! The CSV inventory: header mapping, row validation with line numbers, duplicate removal and
//! sharding. A bad row becomes an [`InvalidRow`] saying why ([`RowError`]); only a file that
//! is not a usable CSV inventory at all is an error ([`InventoryError`]). The inventory knows
//! nothing of reports: `report` turns its rows into records.
//!
//! `reader` cuts the bytes into records with exact lines, `header` maps the columns, `parse`
//! turns a record into a device or an invalid row (`address` reads the address cell),
//! `builder` drops duplicates and collects warnings, `rows` keeps the rows compact, `shard`
//! splits them; `text` and `error` say what is wrong, safely.

mod address;
mod builder;
mod error;
mod header;
mod limit;
mod parse;
mod reader;
mod rows;
mod shard;
#[cfg(test)]
mod test_support;
mod text;

use std::fmt;
use std::io::Read;
use std::path::Path;

use sshfleet_core::model::SshState;

pub use address::{AddressError, Host, Scheme, Target};
use builder::Builder;
pub use error::{InventoryError, RowError};
use header::Header;
pub use limit::Limit;
use parse::RowParser;
use reader::RowReader;
pub use rows::{IntoRows, Rows};
pub use shard::{shard_hash, Shard};
pub use text::Quoted;

/// Cells longer than this make the row invalid. Real cells are short; a huge one is a broken
/// export or hostile input, and would otherwise be copied into every report.
pub(crate) const MAX_CELL_BYTES: usize = address::MAX_ADDRESS_BYTES;

/// One valid inventory row.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Device {
    /// 1-based line number of the row in the file.
    pub line: u64,
    /// The address cell exactly as written, trimmed.
    pub address: String,
    pub target: Target,
    pub name: String,
    pub site: String,
    pub username: Option<String>,
    /// The name of an environment variable holding the password, never a password.
    pub password_env: Option<String>,
    pub expect: Option<SshState>,
    pub tags: String,
    /// The port `--probe-ssh` connects to, when the row names one (else 22).
    pub ssh_port: Option<u16>,
    /// Passthrough values, aligned with [`Inventory::extra_columns`].
    pub extra: Vec<String>,
}

/// A row that cannot be scanned, with what lets people find it in the file. Cells are
/// echoed cleaned and cut short (control characters replaced, at most 256 characters), the
/// address with any credentials redacted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidRow {
    /// 1-based line number of the row in the file.
    pub line: u64,
    pub address: String,
    pub name: String,
    pub site: String,
    /// The row's `expect`: known only for a device rejected after it parsed.
    pub expect: Option<SshState>,
    /// Passthrough values, aligned with [`Inventory::extra_columns`].
    pub extra: Vec<String>,
    pub reason: RowError,
}

impl InvalidRow {
    /// A device that parsed but cannot be scanned after all (its password variable is
    /// unset, say): its inventory fields as they are.
    pub fn of_device(device: &Device, reason: RowError) -> InvalidRow {
        InvalidRow {
            line: device.line,
            address: device.address.clone(),
            name: device.name.clone(),
            site: device.site.clone(),
            expect: device.expect,
            extra: device.extra.clone(),
            reason,
        }
    }
}

impl fmt::Display for InvalidRow {
    /// The message reports carry: `line 7: address contains whitespace`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

/// An inventory row: a device to scan, or a row that cannot be scanned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Row {
    Device(Device),
    Invalid(InvalidRow),
}

impl Row {
    /// What sharding hashes: the device identity, or the (cleaned) address cell of a bad row.
    pub(crate) fn shard_key(&self) -> String {
        match self {
            Row::Device(device) => device.target.key(),
            Row::Invalid(row) => row.address.clone(),
        }
    }

    pub fn into_device(self) -> Option<Device> {
        match self {
            Row::Device(device) => Some(device),
            Row::Invalid(_) => None,
        }
    }
}

/// A validated inventory, in file order.
#[derive(Clone, Debug)]
pub struct Inventory {
    /// Names of the passthrough columns, spelled as in the header.
    pub extra_columns: Vec<String>,
    pub rows: Rows,
    /// Things worth telling the user that do not make a row invalid (duplicates, ignored
    /// columns), each naming its line.
    pub warnings: Vec<String>,
    /// A valid row gives a desired state (`expect`).
    pub any_expect: bool,
}

impl Inventory {
    /// Keeps only the rows of this shard. Duplicates were removed before, by device identity,
    /// so a device can never be scanned by two shards.
    pub fn retain_shard(&mut self, shard: Shard) {
        self.rows.retain(|row| shard.contains(&row.shard_key()));
    }

    /// Keeps the devices `limit` selects (and every invalid row: a bad row is always said).
    pub fn retain_limit(&mut self, limit: &Limit) {
        self.rows.retain(|row| match row {
            Row::Device(device) => limit.matches(device),
            Row::Invalid(_) => true,
        });
    }

    pub fn device_count(&self) -> usize {
        self.rows.device_count()
    }

    #[cfg(test)]
    pub(crate) fn invalid_count(&self) -> usize {
        self.rows.len() - self.device_count()
    }
}

/// Settings for reading an inventory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InventoryOptions {
    /// The scheme of rows whose address and `scheme` column give none.
    pub default_scheme: Scheme,
    /// The address column's name, when it is not `address` or a usual other name (`ip`,
    /// `ip address`, `host`, `hostname`).
    pub address_column: Option<String>,
}

/// Reads and validates the inventory at `path`.
pub fn load(path: &Path, opts: &InventoryOptions) -> Result<Inventory, InventoryError> {
    let bytes = std::fs::read(path).map_err(|source| InventoryError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_bytes(bytes, opts)
}

/// Reads and validates an inventory from any reader. The input is read whole: rows are kept
/// as their bytes for the run, and the raw bytes let line numbers and quote errors be exact.
pub fn parse(mut input: impl Read, opts: &InventoryOptions) -> Result<Inventory, InventoryError> {
    let mut bytes = Vec::new();
    input.read_to_end(&mut bytes).map_err(InventoryError::Io)?;
    bytes.shrink_to_fit();
    parse_bytes(bytes, opts)
}

fn parse_bytes(bytes: Vec<u8>, opts: &InventoryOptions) -> Result<Inventory, InventoryError> {
    let data = check_encoding(&bytes)?;
    if data.iter().all(u8::is_ascii_whitespace) {
        return Err(InventoryError::Empty);
    }
    let start = bytes.len() - data.len();
    let delimiter = reader::sniff_delimiter(data);
    let mut reader = RowReader::new(data, delimiter);
    let header = reader.next_row()?.ok_or(InventoryError::NoHeader)?;
    if header.unterminated {
        return Err(InventoryError::UnterminatedHeader { line: header.line });
    }
    // Sized up front: growing by doubling would, for a moment, hold up to three times the
    // index of a large inventory.
    let lines = data.iter().filter(|&&b| b == b'\n').count() + 1;
    let parser = RowParser {
        header: Header::parse(&header.record, opts.address_column.as_deref())?,
        default_scheme: opts.default_scheme,
        delimiter,
    };
    let mut builder = Builder::new(parser, lines);
    while let Some(raw) = reader.next_row()? {
        builder.push(&raw);
    }
    Ok(builder.finish(bytes, start))
}

/// Strips a UTF-8 BOM and refuses what is not UTF-8 text, so that a spreadsheet saved in
/// the wrong format gets a useful message (with the line to look at) instead of "no address
/// column" or rows that turn invalid.
fn check_encoding(bytes: &[u8]) -> Result<&[u8], InventoryError> {
    if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
        return Err(InventoryError::NotText {
            reason: "it is UTF-16 encoded; save it as CSV UTF-8",
        });
    }
    if bytes.starts_with(b"PK\x03\x04") {
        return Err(InventoryError::NotText {
            reason: "it is a zip archive (an .xlsx workbook?); export it as CSV UTF-8",
        });
    }
    let data = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if let Err(e) = std::str::from_utf8(data) {
        let at = e.valid_up_to();
        let before = data.get(..at).unwrap_or_default();
        let newlines = before.iter().filter(|&&b| b == b'\n').count() as u64;
        return Err(InventoryError::NotUtf8 {
            line: newlines.saturating_add(1),
            byte: data.get(at).copied().unwrap_or_default(),
        });
    }
    Ok(data)
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::test_support::{devices, errors, file_error, invalid, inventory, reasons, urls};
    use super::*;

    #[test]
    fn file_level_problems_are_errors() {
        assert!(matches!(file_error(""), InventoryError::Empty));
        assert!(matches!(file_error("\n \r\n"), InventoryError::Empty));
        assert!(matches!(
            file_error("# only a comment\n\n"),
            InventoryError::NoHeader
        ));
        assert!(matches!(
            file_error("mac,name\n10.0.0.1,a\n"),
            InventoryError::NoAddressColumn { ref found } if found == "\"mac\", \"name\""
        ));
        assert!(matches!(
            file_error("address,Name,name\n"),
            InventoryError::DuplicateColumn {
                first: 2,
                second: 3,
                ..
            }
        ));
        assert!(matches!(
            file_error(b"\xFF\xFEa\0d\0"),
            InventoryError::NotText { .. }
        ));
        assert!(matches!(
            file_error(b"PK\x03\x04\x14\0"),
            InventoryError::NotText { .. }
        ));
        assert!(matches!(
            file_error(b"addr\xFFess\n"),
            InventoryError::NotUtf8 {
                line: 1,
                byte: 0xFF
            }
        ));
        assert!(matches!(
            file_error("# c\naddress,\"name\n10.0.0.1,a\n"),
            InventoryError::UnterminatedHeader { line: 2 }
        ));
    }

    #[test]
    fn unreadable_file_error_names_the_path() {
        let path = Path::new("/nonexistent/sshfleet-inventory.csv");
        let err = load(path, &InventoryOptions::default()).unwrap_err();
        assert!(matches!(err, InventoryError::Read { .. }));
        assert!(err
            .to_string()
            .contains("/nonexistent/sshfleet-inventory.csv"));
    }

    #[test]
    fn loads_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("inv.csv");
        std::fs::write(&path, "address\n10.0.0.1\n").unwrap();
        let inv = load(&path, &InventoryOptions::default()).unwrap();
        assert_eq!(inv.device_count(), 1);
    }

    #[test]
    fn bom_and_crlf_are_accepted() {
        let inv = inventory("\u{FEFF}Address,name\r\n10.0.0.1,a\r\n\r\n10.0.0.2,b\r\n");
        let devices = devices(&inv);
        let lines: Vec<(u64, &str)> = devices.iter().map(|d| (d.line, d.name.as_str())).collect();
        assert_eq!(lines, [(2, "a"), (4, "b")]);
    }

    #[test]
    fn blank_lines_and_comments_are_skipped_with_exact_line_numbers() {
        let inv = inventory(
            "# fleet inventory, \"v2\"\naddress,name\n\n# a comment\n10.0.0.1,a\n   \n,,\n  # indented\n\
             10.0.0.2,\"two\nlines\"\n10.0.0.3,c\n",
        );
        let lines: Vec<u64> = devices(&inv).iter().map(|d| d.line).collect();
        assert_eq!(lines, [5, 9, 11]);
        assert_eq!(devices(&inv)[1].name, "two\nlines");
    }

    #[test]
    fn unterminated_quote_costs_only_its_own_line() {
        let inv = inventory("address,name\n10.0.0.1,a\n\"10.0.0.2,b\n10.0.0.3,c\n\n10.0.0.4,d\n");
        assert_eq!(
            urls(&inv),
            [
                "http://10.0.0.1:80",
                "http://10.0.0.3:80",
                "http://10.0.0.4:80"
            ]
        );
        assert_eq!(devices(&inv)[2].line, 6);
        let row = invalid(&inv).remove(0);
        assert_eq!(
            row.to_string(),
            "line 3: unterminated quoted field (a stray '\"'?)"
        );
        assert_eq!(row.address, "10.0.0.2,b");
    }

    #[test]
    fn stray_quote_closed_by_a_later_one_spoils_the_rows_between() {
        // CSV cannot tell a stray quote from a field with line breaks; the address tells.
        let inv = inventory("address,name\n\"10.0.0.2,b\n10.0.0.3,\"c\n10.0.0.4,d\n");
        assert_eq!(urls(&inv), ["http://10.0.0.4:80"]);
        assert_eq!(
            errors(&inv),
            ["line 2: address spans several lines (a stray '\"' in the row?)"]
        );
    }

    #[test]
    fn semicolon_and_tab_separated_exports_read_like_commas() {
        let comma = inventory("address,name,site\n10.0.0.1,a,x\n\"10.0.0.2\",\"b,c\",y\n");
        let semicolon =
            inventory("address;name;site\r\n10.0.0.1;a;x\r\n\"10.0.0.2\";\"b,c\";y\r\n");
        let tab = inventory("address\tname\tsite\n10.0.0.1\ta\tx\n10.0.0.2\tb,c\ty\n");
        let seen = |inv: &Inventory| -> Vec<(String, String, String)> {
            devices(inv)
                .into_iter()
                .map(|d| (d.target.base_url(), d.name, d.site))
                .collect()
        };
        assert_eq!(seen(&semicolon), seen(&comma));
        assert_eq!(seen(&tab), seen(&comma));
        assert_eq!(seen(&comma)[1].1, "b,c");
        // Rows are read again, with the same separator, when they are scanned.
        let again: Vec<String> = semicolon
            .rows
            .iter()
            .filter_map(|r| r.into_device())
            .map(|d| d.name)
            .collect();
        assert_eq!(again, ["a", "b,c"]);
    }

    #[test]
    fn latin1_is_refused_up_front_with_its_line() {
        let err = file_error(b"address,name,site\n10.0.0.1,a,Oslo\n10.0.0.2,b,Troms\xF8\n");
        assert!(
            matches!(
                err,
                InventoryError::NotUtf8 {
                    line: 3,
                    byte: 0xF8
                }
            ),
            "{err:?}"
        );
        let said = err.to_string();
        assert!(said.contains("line 3"), "{said}");
        assert!(said.contains("iconv -f latin1 -t utf-8"), "{said}");
        // A BOM does not shift the line.
        let err = file_error(b"\xEF\xBB\xBFaddress\n\xE9\n");
        assert!(
            matches!(
                err,
                InventoryError::NotUtf8 {
                    line: 2,
                    byte: 0xE9
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn unterminated_quote_on_the_last_line() {
        let inv = inventory("address,name\n10.0.0.1,a\n10.0.0.2,\"b");
        assert_eq!(urls(&inv), ["http://10.0.0.1:80"]);
        assert_eq!(reasons(&inv), [(3, RowError::UnterminatedQuote)]);
    }
}
