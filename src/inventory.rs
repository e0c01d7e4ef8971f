//! The CSV inventory: header mapping, row validation with line numbers, duplicate removal and
//! sharding. A bad row becomes an `invalid` record; only a file that is not a usable CSV
//! inventory at all is an error.

mod address;
mod header;
mod reader;
mod shard;

use std::collections::HashMap;
use std::io::{Cursor, Read, Seek};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use csv::ByteRecord;

use crate::report::{DeviceRecord, SshState, Status};

use address::{parse_address, parse_port, redact_credentials, Address};
pub use address::{Host, Scheme, Target};
use header::{Header, Known};
use reader::{RawRow, Rereader, RowReader};
pub use shard::{shard_hash, Shard};

/// Cells longer than this make the row invalid. Real cells are short; a huge one is a broken
/// export or hostile input, and would otherwise be copied into every report.
pub const MAX_CELL_BYTES: usize = address::MAX_ADDRESS_BYTES;

/// How much of a cell an invalid record keeps, in characters.
const MAX_ECHO_CHARS: usize = 256;

/// How much of a value an error message quotes, in characters.
const MAX_QUOTE_CHARS: usize = 64;

/// One valid inventory row.
#[derive(Clone, Debug, PartialEq, Eq)]
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

impl Device {
    /// A record for this device carrying its inventory fields (address, name, site, expect,
    /// passthrough values); the scan fills in the rest.
    pub fn record(&self, status: Status) -> DeviceRecord {
        let mut rec = DeviceRecord::new(
            self.address.clone(),
            self.name.clone(),
            self.site.clone(),
            status,
        );
        rec.expect = self.expect;
        rec.extra = self.extra.clone();
        rec
    }
}

/// An inventory row: a device to scan, or a row that is already a finished `invalid` record.
#[derive(Clone, Debug, PartialEq)]
#[expect(
    clippy::large_enum_variant,
    reason = "rows live one at a time, between the inventory and a worker; boxing either side costs an allocation per row"
)]
pub enum Row {
    Device(Device),
    Invalid(DeviceRecord),
}

impl Row {
    /// What sharding hashes: the device identity, or the (cleaned) address cell of a bad row.
    pub fn shard_key(&self) -> String {
        match self {
            Row::Device(device) => device.target.key(),
            Row::Invalid(rec) => rec.address.clone(),
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
}

impl Inventory {
    /// Keeps only the rows of this shard. Duplicates were removed before, by device identity,
    /// so a device can never be scanned by two shards.
    pub fn retain_shard(&mut self, shard: Shard) {
        self.rows.retain(|row| shard.contains(&row.shard_key()));
    }

    pub fn device_count(&self) -> usize {
        self.rows.device_count()
    }

    pub fn invalid_count(&self) -> usize {
        self.rows.len() - self.device_count()
    }
}

/// The rows of an inventory. A valid row is kept as where it lies in the file and parsed
/// again each time it is read, so devices waiting to be scanned cost about 80 bytes each
/// (their bytes in the file and this index) rather than the ~300 of a parsed [`Device`]:
/// a scan's memory is set by its concurrency, not by the size of the fleet.
#[derive(Clone, Debug)]
pub struct Rows {
    source: Arc<Source>,
    entries: Vec<Entry>,
}

#[derive(Clone, Debug)]
enum Entry {
    /// A row that parsed into a device: its first line and where it starts in the data.
    Device {
        line: u64,
        start: usize,
    },
    Invalid(Box<DeviceRecord>),
}

/// The inventory file and the parser its rows were read with.
struct Source {
    bytes: Vec<u8>,
    /// Where the data starts in `bytes` (after a byte-order mark).
    start: usize,
    parser: RowParser,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Source({} bytes)", self.bytes.len())
    }
}

impl Source {
    fn data(&self) -> &[u8] {
        self.bytes.get(self.start..).unwrap_or_default()
    }

    fn reader(&self) -> Rereader<Cursor<&[u8]>> {
        Rereader::new(Cursor::new(self.data()))
    }

    fn row(&self, reader: &mut Rereader<impl Read + Seek>, entry: &Entry) -> Row {
        match entry {
            Entry::Device { line, start } => self.device_row(reader, *line, *start),
            Entry::Invalid(rec) => Row::Invalid(DeviceRecord::clone(rec)),
        }
    }

    fn take_row(&self, reader: &mut Rereader<impl Read + Seek>, entry: Entry) -> Row {
        match entry {
            Entry::Device { line, start } => self.device_row(reader, line, start),
            Entry::Invalid(rec) => Row::Invalid(*rec),
        }
    }

    /// Parses a row again. It parsed when the inventory was loaded and its bytes have not
    /// changed since, so this cannot fail; if it ever did, the row becomes an `invalid`
    /// record rather than vanishing from the report.
    fn device_row(&self, reader: &mut Rereader<impl Read + Seek>, line: u64, start: usize) -> Row {
        let raw = RawRow {
            line,
            start,
            record: reader.record_at(start).unwrap_or_default(),
            unterminated: false,
        };
        match self.parser.device(&raw) {
            Ok(device) => Row::Device(device),
            Err(reason) => {
                let reason = format!("the row could not be read a second time: {reason}");
                Row::Invalid(self.parser.invalid(&raw, &reason))
            }
        }
    }
}

impl Rows {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn device_count(&self) -> usize {
        let is_device = |e: &&Entry| matches!(e, Entry::Device { .. });
        self.entries.iter().filter(is_device).count()
    }

    /// Every row, parsed afresh.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Row> + '_ {
        let mut reader = self.source.reader();
        let source = &self.source;
        self.entries
            .iter()
            .map(move |entry| source.row(&mut reader, entry))
    }

    /// The devices, parsed afresh.
    pub fn devices(&self) -> impl Iterator<Item = Device> + '_ {
        self.iter().filter_map(Row::into_device)
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&Row) -> bool) {
        let source = &self.source;
        let mut reader = source.reader();
        self.entries
            .retain(|entry| keep(&source.row(&mut reader, entry)));
    }

    /// Turns the devices for which `reject` gives a record into that `invalid` record.
    pub fn reject(&mut self, mut reject: impl FnMut(&Device) -> Option<DeviceRecord>) {
        let mut reader = self.source.reader();
        for entry in &mut self.entries {
            if let Row::Device(device) = self.source.row(&mut reader, entry) {
                if let Some(rec) = reject(&device) {
                    *entry = Entry::Invalid(Box::new(rec));
                }
            }
        }
    }

    /// Removes the invalid rows and returns their records, in file order.
    pub fn take_invalid(&mut self) -> Vec<DeviceRecord> {
        let mut invalid = Vec::new();
        let entries = std::mem::take(&mut self.entries);
        self.entries.reserve_exact(entries.len());
        for entry in entries {
            match entry {
                Entry::Invalid(rec) => invalid.push(*rec),
                device => self.entries.push(device),
            }
        }
        invalid
    }
}

impl IntoIterator for Rows {
    type Item = Row;
    type IntoIter = IntoRows;

    fn into_iter(self) -> IntoRows {
        IntoRows {
            reader: Rereader::new(Cursor::new(SharedData(self.source.clone()))),
            source: self.source,
            entries: self.entries.into_iter(),
        }
    }
}

/// The rows of an inventory, each parsed as it is taken.
pub struct IntoRows {
    source: Arc<Source>,
    reader: Rereader<Cursor<SharedData>>,
    entries: std::vec::IntoIter<Entry>,
}

/// The inventory's data, owned by an iterator's reader.
struct SharedData(Arc<Source>);

impl AsRef<[u8]> for SharedData {
    fn as_ref(&self) -> &[u8] {
        self.0.data()
    }
}

impl Iterator for IntoRows {
    type Item = Row;

    fn next(&mut self) -> Option<Row> {
        let entry = self.entries.next()?;
        Some(self.source.take_row(&mut self.reader, entry))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.entries.size_hint()
    }
}

impl ExactSizeIterator for IntoRows {}

/// Settings for reading an inventory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InventoryOptions {
    /// The scheme of rows whose address and `scheme` column give none.
    pub default_scheme: Scheme,
}

/// A file that cannot be used as an inventory at all. Row problems are never errors: they
/// become `invalid` records.
#[derive(thiserror::Error, Debug)]
pub enum InventoryError {
    #[error("cannot read inventory {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read inventory")]
    Io(#[source] std::io::Error),
    #[error("inventory is empty")]
    Empty,
    #[error("inventory has no header row (only blank lines and comments)")]
    NoHeader,
    #[error("inventory header has no `address` column (found: {found}); the first row must name the columns")]
    NoAddressColumn { found: String },
    #[error("inventory header names column {name:?} twice (columns {first} and {second})")]
    DuplicateColumn {
        name: String,
        first: usize,
        second: usize,
    },
    #[error("inventory header (line {line}) has an unterminated quoted field")]
    UnterminatedHeader { line: u64 },
    #[error("inventory is not a UTF-8 CSV file: {reason}")]
    NotText { reason: &'static str },
    #[error("inventory cannot be parsed as CSV")]
    Csv(#[source] csv::Error),
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
    let mut reader = RowReader::new(data);
    let header = reader.next_row()?.ok_or(InventoryError::NoHeader)?;
    if header.unterminated {
        return Err(InventoryError::UnterminatedHeader { line: header.line });
    }
    // Sized up front: growing by doubling would, for a moment, hold up to three times the
    // index of a large inventory.
    let lines = data.iter().filter(|&&b| b == b'\n').count() + 1;
    let parser = RowParser {
        header: Header::parse(&header.record)?,
        opts: *opts,
    };
    let mut builder = Builder::new(parser, lines);
    while let Some(raw) = reader.next_row()? {
        builder.push(&raw);
    }
    Ok(builder.finish(bytes, start))
}

/// Strips a UTF-8 BOM and refuses what is clearly not UTF-8 text, so that a spreadsheet
/// saved in the wrong format gets a useful message instead of "no address column".
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
    Ok(bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes))
}

/// Turns raw records into rows, drops duplicates and collects warnings.
struct Builder {
    parser: RowParser,
    entries: Vec<Entry>,
    warnings: Vec<String>,
    /// Device key -> line of its first row.
    seen: HashMap<String, u64>,
    /// First line where a column without a header name had a value.
    unnamed_value_line: Option<u64>,
    /// Duplicate rows beyond the first [`DUPLICATE_WARNINGS`], told as one count.
    unwarned_duplicates: UnwarnedDuplicates,
}

/// Duplicate rows warned about one by one; the rest are counted, so that a file of
/// duplicates cannot bury the terminal (or the memory) in warnings.
const DUPLICATE_WARNINGS: usize = 10;

#[derive(Default)]
struct UnwarnedDuplicates {
    warned: usize,
    count: u64,
    first_line: u64,
    last_line: u64,
}

impl UnwarnedDuplicates {
    /// Takes the warning for the duplicate at `line`, or counts it.
    fn admit(&mut self, line: u64, warning: String) -> Option<String> {
        if self.warned < DUPLICATE_WARNINGS {
            self.warned += 1;
            return Some(warning);
        }
        if self.count == 0 {
            self.first_line = line;
        }
        self.count = self.count.saturating_add(1);
        self.last_line = line;
        None
    }

    fn summary(&self) -> Option<String> {
        (self.count > 0).then(|| {
            format!(
                "{} more duplicate rows skipped (lines {} to {})",
                self.count, self.first_line, self.last_line
            )
        })
    }
}

impl Builder {
    fn new(parser: RowParser, rows_hint: usize) -> Builder {
        Builder {
            parser,
            entries: Vec::with_capacity(rows_hint),
            warnings: Vec::new(),
            seen: HashMap::with_capacity(rows_hint),
            unnamed_value_line: None,
            unwarned_duplicates: UnwarnedDuplicates::default(),
        }
    }

    fn push(&mut self, raw: &RawRow) {
        self.note_unnamed_values(raw);
        match self.parser.device(raw) {
            Ok(device) => match self.check_duplicate(&device) {
                Some(warning) => {
                    let admitted = self.unwarned_duplicates.admit(raw.line, warning);
                    self.warnings.extend(admitted);
                }
                None => self.entries.push(Entry::Device {
                    line: raw.line,
                    start: raw.start,
                }),
            },
            Err(reason) => {
                let rec = self.parser.invalid(raw, &reason);
                self.entries.push(Entry::Invalid(Box::new(rec)));
            }
        }
    }

    /// The inventory of `bytes`, whose data (from `start`) the pushed rows came from.
    fn finish(mut self, bytes: Vec<u8>, start: usize) -> Inventory {
        if self.entries.is_empty() && self.warnings.is_empty() {
            self.warnings
                .push("the inventory has a header but no rows".to_owned());
        }
        self.warnings.extend(self.unwarned_duplicates.summary());
        let header = &self.parser.header;
        if let Some(line) = self.unnamed_value_line {
            let columns: Vec<String> = header.unnamed.iter().map(|i| (i + 1).to_string()).collect();
            self.warnings.push(format!(
                "line {line}: values in columns without a header name (column {}) are ignored",
                columns.join(", ")
            ));
        }
        let extra_columns = header.extra.iter().map(|(_, name)| name.clone()).collect();
        self.entries.shrink_to_fit();
        Inventory {
            extra_columns,
            rows: Rows {
                source: Arc::new(Source {
                    bytes,
                    start,
                    parser: self.parser,
                }),
                entries: self.entries,
            },
            warnings: self.warnings,
        }
    }

    fn note_unnamed_values(&mut self, raw: &RawRow) {
        let has_value = |&i: &usize| {
            raw.record
                .get(i)
                .is_some_and(|c| !c.trim_ascii().is_empty())
        };
        if self.unnamed_value_line.is_none() && self.parser.header.unnamed.iter().any(has_value) {
            self.unnamed_value_line = Some(raw.line);
        }
    }

    /// Duplicates are the same device (scheme, host, port), however the address was spelled.
    fn check_duplicate(&mut self, device: &Device) -> Option<String> {
        let key = device.target.key();
        match self.seen.get(&key) {
            Some(first) => Some(format!(
                "line {}: duplicate of line {first} ({key}); skipped",
                device.line
            )),
            None => {
                self.seen.insert(key, device.line);
                None
            }
        }
    }
}

/// Parses the records of one inventory, given its header.
struct RowParser {
    header: Header,
    opts: InventoryOptions,
}

impl RowParser {
    fn device(&self, raw: &RawRow) -> Result<Device, String> {
        if raw.unterminated {
            return Err("unterminated quoted field (a stray '\"'?)".to_owned());
        }
        let cells = Cells::new(&self.header, &raw.record)?;
        let parsed = parse_address(cells.get(Some(self.header.address)))?;
        let target = resolve_target(parsed, &cells, self.opts)?;
        Ok(Device {
            line: raw.line,
            address: cells.get(Some(self.header.address)).to_owned(),
            target,
            name: cells.known(Known::Name).to_owned(),
            site: cells.known(Known::Site).to_owned(),
            username: parse_username(cells.known(Known::Username))?,
            password_env: parse_password_env(cells.known(Known::PasswordEnv))?,
            expect: parse_expect(cells.known(Known::Expect))?,
            tags: cells.known(Known::Tags).to_owned(),
            ssh_port: parse_ssh_port(cells.known(Known::SshPort))?,
            extra: cells.extra(),
        })
    }

    /// An `invalid` record that still lets people find the row: address (credentials
    /// redacted), name, site and passthrough values, cleaned and truncated.
    fn invalid(&self, raw: &RawRow, reason: &str) -> DeviceRecord {
        let echo = |index: Option<usize>| echo_cell(index.and_then(|i| raw.record.get(i)));
        let address = redact_credentials(&echo(Some(self.header.address)));
        let name = echo(self.header.index(Known::Name));
        let site = echo(self.header.index(Known::Site));
        let mut rec =
            DeviceRecord::invalid(address, name, site, format!("line {}: {reason}", raw.line));
        rec.extra = self
            .header
            .extra
            .iter()
            .map(|(i, _)| echo(Some(*i)))
            .collect();
        rec
    }
}

/// The trimmed UTF-8 cells of one record, checked for shape and size.
struct Cells<'a> {
    header: &'a Header,
    cells: Vec<&'a str>,
}

impl<'a> Cells<'a> {
    fn new(header: &'a Header, record: &'a ByteRecord) -> Result<Cells<'a>, String> {
        let surplus = record.iter().skip(header.width());
        // Trailing empty cells (`a,b,,`) are harmless export noise; values are not.
        if surplus.clone().any(|cell| !cell.trim_ascii().is_empty()) {
            return Err(format!(
                "{} fields, but the header has {}",
                record.len(),
                header.width()
            ));
        }
        let cells = (0..header.width())
            .map(|i| decode_cell(header, i, record.get(i).unwrap_or_default()))
            .collect::<Result<_, _>>()?;
        Ok(Cells { header, cells })
    }

    fn get(&self, index: Option<usize>) -> &'a str {
        index
            .and_then(|i| self.cells.get(i).copied())
            .unwrap_or_default()
    }

    fn known(&self, column: Known) -> &'a str {
        self.get(self.header.index(column))
    }

    fn extra(&self) -> Vec<String> {
        self.header
            .extra
            .iter()
            .map(|(i, _)| self.get(Some(*i)).to_owned())
            .collect()
    }
}

fn decode_cell<'a>(header: &Header, index: usize, cell: &'a [u8]) -> Result<&'a str, String> {
    let text = std::str::from_utf8(cell)
        .map_err(|_| format!("{} is not valid UTF-8", header.name(index)))?
        .trim();
    if text.len() > MAX_CELL_BYTES {
        return Err(format!(
            "{} is longer than {MAX_CELL_BYTES} bytes",
            header.name(index)
        ));
    }
    Ok(text)
}

/// Combines what the address says with the `scheme` and `port` columns; they may fill in
/// what the address leaves out, never contradict it.
fn resolve_target(
    parsed: Address,
    cells: &Cells<'_>,
    opts: InventoryOptions,
) -> Result<Target, String> {
    let column_scheme = parse_scheme_column(cells.known(Known::Scheme))?;
    let column_port = match cells.known(Known::Port) {
        "" => None,
        port => Some(parse_port(port)?),
    };
    if let (Some(url), Some(column)) = (parsed.scheme, column_scheme) {
        if url != column {
            return Err(format!(
                "scheme column says {column} but the address is an {url} URL"
            ));
        }
    }
    if let (Some(address), Some(column)) = (parsed.port, column_port) {
        if address != column {
            return Err(format!(
                "port column says {column} but the address has port {address}"
            ));
        }
    }
    let scheme = parsed
        .scheme
        .or(column_scheme)
        .unwrap_or(opts.default_scheme);
    let port = parsed.port.or(column_port).unwrap_or(scheme.default_port());
    Ok(Target {
        scheme,
        host: parsed.host,
        port,
    })
}

fn parse_scheme_column(cell: &str) -> Result<Option<Scheme>, String> {
    match cell {
        "" => Ok(None),
        _ => cell.parse::<Scheme>().map(Some),
    }
}

/// Usernames go into `Authorization` headers: no control characters, and no `:` (Basic
/// auth cannot carry one).
fn parse_username(cell: &str) -> Result<Option<String>, String> {
    if cell.is_empty() {
        return Ok(None);
    }
    if cell.chars().any(char::is_control) {
        return Err("username contains a control character".to_owned());
    }
    if cell.contains(':') {
        return Err("username must not contain ':'".to_owned());
    }
    Ok(Some(cell.to_owned()))
}

/// The value is never echoed: people do paste passwords into this column.
fn parse_password_env(cell: &str) -> Result<Option<String>, String> {
    if cell.is_empty() {
        return Ok(None);
    }
    let mut bytes = cell.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
    if !first_ok || !bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err("password_env must be the name of an environment variable (letters, digits and _, not starting with a digit); the value is not shown".to_owned());
    }
    Ok(Some(cell.to_owned()))
}

fn parse_ssh_port(cell: &str) -> Result<Option<u16>, String> {
    match cell {
        "" => Ok(None),
        _ => parse_port(cell).map(Some).map_err(|_| {
            format!(
                "invalid ssh_port {} (expected a port number, 1-65535)",
                quoted(cell)
            )
        }),
    }
}

fn parse_expect(cell: &str) -> Result<Option<SshState>, String> {
    match cell {
        "" => Ok(None),
        _ => SshState::parse(cell).map(Some).ok_or_else(|| {
            format!(
                "invalid expect {} (expected enabled or disabled)",
                quoted(cell)
            )
        }),
    }
}

/// A cell of a bad row, made safe to copy into a report: lossy UTF-8, trimmed, control
/// characters replaced, at most [`MAX_ECHO_CHARS`] characters.
fn echo_cell(cell: Option<&[u8]>) -> String {
    let text = String::from_utf8_lossy(cell.unwrap_or_default());
    let clean = text
        .trim()
        .chars()
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c });
    truncate_chars(clean, MAX_ECHO_CHARS)
}

/// A value for an error message: quoted, escaped, at most [`MAX_QUOTE_CHARS`] characters.
pub(crate) fn quoted(value: &str) -> String {
    let escaped = truncate_chars(value.chars(), MAX_QUOTE_CHARS);
    format!("\"{}\"", escaped.escape_debug())
}

/// Keeps at most `max` characters; a cut is marked with `…` (counted in `max`).
fn truncate_chars(chars: impl Iterator<Item = char>, max: usize) -> String {
    let mut chars = chars.peekable();
    let mut out = String::new();
    let mut kept = 0;
    while let Some(c) = chars.next() {
        kept += 1;
        if kept == max && chars.peek().is_some() {
            out.push('…');
            break;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    fn inventory(text: impl AsRef<[u8]>) -> Inventory {
        parse(text.as_ref(), &InventoryOptions::default()).unwrap()
    }

    fn devices(inv: &Inventory) -> Vec<Device> {
        inv.rows.devices().collect()
    }

    fn invalid(inv: &Inventory) -> Vec<DeviceRecord> {
        inv.rows
            .iter()
            .filter_map(|row| match row {
                Row::Invalid(rec) => Some(rec),
                Row::Device(_) => None,
            })
            .collect()
    }

    fn urls(inv: &Inventory) -> Vec<String> {
        devices(inv).iter().map(|d| d.target.base_url()).collect()
    }

    fn errors(inv: &Inventory) -> Vec<String> {
        invalid(inv)
            .iter()
            .map(|r| r.error.clone().unwrap())
            .collect()
    }

    fn file_error(text: impl AsRef<[u8]>) -> InventoryError {
        parse(text.as_ref(), &InventoryOptions::default()).unwrap_err()
    }

    #[test]
    fn every_address_form_becomes_a_target() {
        let inv = inventory(
            "address\n10.1.2.3\n10.1.2.4:8080\nfe80::1\n[::1]:8443\n[2001:db8::1]\nCam-1.Example\n\
             cam-2.example:81\nhttps://10.0.0.9\nhttp://[::2]:8080/\nhttps://cam-3.example/\n",
        );
        assert_eq!(
            urls(&inv),
            [
                "http://10.1.2.3:80",
                "http://10.1.2.4:8080",
                "http://[fe80::1]:80",
                "http://[::1]:8443",
                "http://[2001:db8::1]:80",
                "http://cam-1.example:80",
                "http://cam-2.example:81",
                "https://10.0.0.9:443",
                "http://[::2]:8080",
                "https://cam-3.example:443",
            ]
        );
        let first = devices(&inv).remove(5);
        assert_eq!(first.address, "Cam-1.Example");
        assert_eq!(first.line, 7);
        assert!(inv.warnings.is_empty());
    }

    #[test]
    fn scheme_and_port_columns_fill_in_what_the_address_lacks() {
        let inv = inventory(
            "address,scheme,port\n10.0.0.1,https,\n10.0.0.2,,8080\n10.0.0.3,HTTPS,8443\n\
             https://10.0.0.4,https,443\n10.0.0.5:81,,81\n",
        );
        assert_eq!(
            urls(&inv),
            [
                "https://10.0.0.1:443",
                "http://10.0.0.2:8080",
                "https://10.0.0.3:8443",
                "https://10.0.0.4:443",
                "http://10.0.0.5:81",
            ]
        );
    }

    #[test]
    fn default_scheme_comes_from_options() {
        let opts = InventoryOptions {
            default_scheme: Scheme::Https,
        };
        let inv = parse(&b"address\n10.0.0.1\nhttp://10.0.0.2\n"[..], &opts).unwrap();
        assert_eq!(urls(&inv), ["https://10.0.0.1:443", "http://10.0.0.2:80"]);
    }

    #[test]
    fn conflicting_scheme_or_port_makes_the_row_invalid() {
        let inv = inventory(
            "address,scheme,port\nhttps://10.0.0.1,http,\n10.0.0.2:8443,,443\n\
             https://10.0.0.3:8443,,443\n10.0.0.4,ftp,\n10.0.0.5,,99999\n",
        );
        assert_eq!(
            errors(&inv),
            [
                "line 2: scheme column says http but the address is an https URL",
                "line 3: port column says 443 but the address has port 8443",
                "line 4: port column says 443 but the address has port 8443",
                "line 5: invalid scheme \"ftp\" (expected http or https)",
                "line 6: invalid port \"99999\"",
            ]
        );
    }

    #[test]
    fn bad_address_is_an_invalid_record_with_its_line() {
        let inv = inventory("address,name,site\n10.0.0.1,a,s\n10.0.0.1:99999,b,hq\n10.0.0.3,c,s\n");
        assert_eq!(devices(&inv).len(), 2);
        let rec = invalid(&inv).remove(0);
        assert_eq!(rec.status, Status::Invalid);
        assert_eq!(rec.address, "10.0.0.1:99999");
        assert_eq!((rec.name.as_str(), rec.site.as_str()), ("b", "hq"));
        assert_eq!(rec.error.as_deref(), Some("line 3: invalid port \"99999\""));
        // File order is kept: the invalid row sits between the two devices.
        assert!(matches!(inv.rows.iter().nth(1), Some(Row::Invalid(_))));
    }

    #[test]
    fn header_is_case_insensitive_and_keeps_passthrough_spelling_and_carries_tags() {
        let inv = inventory(
            " Address ,NAME,Site, Owner ,Password Env,EXPECT,Tags,Rack\n\
             10.0.0.1,cam,hq,alice,CAM_PW,off,a;b,R1\n",
        );
        assert_eq!(inv.extra_columns, ["Owner", "tags", "Rack"]);
        let device = devices(&inv).remove(0);
        assert_eq!(device.name, "cam");
        assert_eq!(device.site, "hq");
        assert_eq!(device.password_env.as_deref(), Some("CAM_PW"));
        assert_eq!(device.expect, Some(SshState::Disabled));
        assert_eq!(device.tags, "a;b");
        assert_eq!(device.extra, ["alice", "a;b", "R1"]);
    }

    #[test]
    fn all_known_columns_are_read() {
        let inv = inventory(
            "address,name,site,scheme,port,username,password_env,expect,tags\n\
             10.0.0.1, cam , hq ,https,8443,admin,PW_HQ,enabled,outdoor\n",
        );
        let device = devices(&inv).remove(0);
        assert_eq!(device.target.base_url(), "https://10.0.0.1:8443");
        assert_eq!(device.name, "cam");
        assert_eq!(device.username.as_deref(), Some("admin"));
        assert_eq!(device.expect, Some(SshState::Enabled));
        assert_eq!(device.tags, "outdoor");
        let rec = device.record(Status::Ok);
        assert_eq!(
            (rec.address.as_str(), rec.expect),
            ("10.0.0.1", Some(SshState::Enabled))
        );
    }

    #[test]
    fn file_level_problems_are_errors() {
        assert!(matches!(file_error(""), InventoryError::Empty));
        assert!(matches!(file_error("\n \r\n"), InventoryError::Empty));
        assert!(matches!(
            file_error("# only a comment\n\n"),
            InventoryError::NoHeader
        ));
        assert!(matches!(
            file_error("ip,name\n10.0.0.1,a\n"),
            InventoryError::NoAddressColumn { ref found } if found == "\"ip\", \"name\""
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
            InventoryError::NotText { .. }
        ));
        assert!(matches!(
            file_error("# c\naddress,\"name\n10.0.0.1,a\n"),
            InventoryError::UnterminatedHeader { line: 2 }
        ));
    }

    #[test]
    fn header_without_rows_is_an_empty_inventory_with_a_warning() {
        let inv = inventory("address,name\n\n");
        assert!(inv.rows.is_empty());
        assert_eq!(inv.warnings, ["the inventory has a header but no rows"]);
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
    fn short_rows_are_padded_and_long_rows_are_invalid() {
        let inv = inventory("address,name,site\n10.0.0.1\n10.0.0.2,b,s,extra\n10.0.0.3,c,s,,\n");
        assert_eq!(urls(&inv), ["http://10.0.0.1:80", "http://10.0.0.3:80"]);
        assert_eq!(errors(&inv), ["line 3: 4 fields, but the header has 3"]);
    }

    #[test]
    fn hostile_cells_stay_in_their_row() {
        let huge = "9".repeat(3000);
        let text = format!(
            "address,name\n10.0.0.1,=HYPERLINK(\"http://evil\")\n10.0.0.2\0,nul\n{huge},big\n10.0.0.4,{}\n",
            "n".repeat(3000)
        );
        let inv = inventory(text);
        assert_eq!(devices(&inv)[0].name, "=HYPERLINK(\"http://evil\")");
        let bad = invalid(&inv);
        assert_eq!(
            bad[0].error.as_deref(),
            Some("line 3: address contains a control character")
        );
        assert_eq!(bad[0].address, "10.0.0.2\u{FFFD}");
        assert_eq!(
            bad[1].error.as_deref(),
            Some("line 4: column \"address\" is longer than 2048 bytes")
        );
        assert_eq!(bad[1].address.chars().count(), 256);
        assert!(bad[1].address.ends_with('…'));
        assert_eq!(
            bad[2].error.as_deref(),
            Some("line 5: column \"name\" is longer than 2048 bytes")
        );
    }

    #[test]
    fn invalid_utf8_spoils_only_its_row() {
        let inv = inventory(b"address,name\n10.0.0.1,caf\xE9\n10.0.0.2,ok\n");
        assert_eq!(urls(&inv), ["http://10.0.0.2:80"]);
        let rec = invalid(&inv).remove(0);
        assert_eq!(
            rec.error.as_deref(),
            Some("line 2: column \"name\" is not valid UTF-8")
        );
        assert_eq!(rec.name, "caf\u{FFFD}");
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
        let rec = invalid(&inv).remove(0);
        assert_eq!(
            rec.error.as_deref(),
            Some("line 3: unterminated quoted field (a stray '\"'?)")
        );
        assert_eq!(rec.address, "10.0.0.2,b");
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
    fn unterminated_quote_on_the_last_line() {
        let inv = inventory("address,name\n10.0.0.1,a\n10.0.0.2,\"b");
        assert_eq!(urls(&inv), ["http://10.0.0.1:80"]);
        assert_eq!(
            errors(&inv),
            ["line 3: unterminated quoted field (a stray '\"'?)"]
        );
    }

    #[test]
    fn credentials_in_the_address_are_never_echoed() {
        let inv = inventory("address\nhttps://root:hunter2@10.0.0.1\n");
        let rec = invalid(&inv).remove(0);
        assert_eq!(rec.address, "https://(redacted)@10.0.0.1");
        assert!(!rec.error.as_deref().unwrap().contains("hunter2"));
    }

    #[test]
    fn password_env_must_be_a_variable_name() {
        let inv =
            inventory("address,password_env\n10.0.0.1,CAM_PW\n10.0.0.2,hunter2!\n10.0.0.3,2PW\n");
        assert_eq!(devices(&inv).len(), 1);
        for error in errors(&inv) {
            assert!(error.contains("name of an environment variable"), "{error}");
            assert!(!error.contains("hunter2"), "{error}");
        }
    }

    #[test]
    fn expect_and_username_are_validated() {
        let inv = inventory(
            "address,expect,username\n10.0.0.1,maybe,\n10.0.0.2,,ro:ot\n10.0.0.3,OFF,root\n",
        );
        assert_eq!(
            errors(&inv),
            [
                "line 2: invalid expect \"maybe\" (expected enabled or disabled)",
                "line 3: username must not contain ':'",
            ]
        );
        assert_eq!(devices(&inv)[0].expect, Some(SshState::Disabled));
    }

    #[test]
    fn ssh_port_is_a_port_number_or_the_row_is_invalid() {
        let inv = inventory(
            "address,SSH Port\n10.0.0.1,2222\n10.0.0.2,\n10.0.0.3,0\n10.0.0.4,65536\n10.0.0.5,22x\n10.0.0.6, 65535 \n",
        );
        let ports: Vec<Option<u16>> = devices(&inv).iter().map(|d| d.ssh_port).collect();
        assert_eq!(ports, [Some(2222), None, Some(65535)]);
        assert!(
            inv.extra_columns.is_empty(),
            "ssh_port is not passed through"
        );
        assert_eq!(
            errors(&inv),
            [
                "line 4: invalid ssh_port \"0\" (expected a port number, 1-65535)",
                "line 5: invalid ssh_port \"65536\" (expected a port number, 1-65535)",
                "line 6: invalid ssh_port \"22x\" (expected a port number, 1-65535)",
            ]
        );
    }

    #[test]
    fn invalid_rows_keep_passthrough_values() {
        let inv = inventory("address,owner,name\nnot a host,alice,cam\n");
        let rec = invalid(&inv).remove(0);
        assert_eq!(rec.extra, ["alice"]);
        assert_eq!(rec.name, "cam");
        assert_eq!(
            rec.error.as_deref(),
            Some("line 2: address contains whitespace")
        );
    }

    #[test]
    fn duplicates_are_dropped_with_one_warning_each() {
        let inv = inventory(
            "address\n10.0.0.1\nhttp://10.0.0.1:80\nCAM.example\n10.0.0.1:8080\ncam.example:80\n[::1]\n[0:0::1]:80\n",
        );
        assert_eq!(
            urls(&inv),
            [
                "http://10.0.0.1:80",
                "http://cam.example:80",
                "http://10.0.0.1:8080",
                "http://[::1]:80"
            ]
        );
        assert_eq!(
            inv.warnings,
            [
                "line 3: duplicate of line 2 (http://10.0.0.1:80); skipped",
                "line 6: duplicate of line 4 (http://cam.example:80); skipped",
                "line 8: duplicate of line 7 (http://[::1]:80); skipped",
            ]
        );
    }

    #[test]
    fn duplicates_beyond_ten_are_counted_in_one_warning() {
        let mut text = "address\n10.0.0.1\n".to_owned();
        for _ in 0..25 {
            text.push_str("10.0.0.1\n");
        }
        let inv = inventory(&text);
        assert_eq!(inv.device_count(), 1);
        assert_eq!(inv.warnings.len(), 11, "{:?}", inv.warnings);
        assert_eq!(
            inv.warnings[9],
            "line 12: duplicate of line 2 (http://10.0.0.1:80); skipped"
        );
        assert_eq!(
            inv.warnings[10],
            "15 more duplicate rows skipped (lines 13 to 27)"
        );
    }

    #[test]
    fn unnamed_columns_with_values_are_ignored_with_a_warning() {
        let inv = inventory("address,,name,\n10.0.0.1,,a,\n10.0.0.2,x,b,\n");
        assert_eq!(devices(&inv).len(), 2);
        assert!(inv.extra_columns.is_empty());
        assert_eq!(
            inv.warnings,
            ["line 3: values in columns without a header name (column 2, 4) are ignored"]
        );
    }

    #[test]
    fn shards_partition_the_rows() {
        let mut text = String::from("address\n");
        for n in 0..300 {
            text.push_str(&format!("10.0.{}.{}\n", n / 200, n % 200));
        }
        text.push_str("bad host\n10.0.0.1:0\n");
        let whole = inventory(&text);
        for count in 1..=5 {
            let mut seen = Vec::new();
            for index in 0..count {
                let mut part = whole.clone();
                part.retain_shard(Shard { index, count });
                seen.extend(part.rows.iter().map(|row| row.shard_key()));
            }
            seen.sort();
            let mut all: Vec<String> = whole.rows.iter().map(|row| row.shard_key()).collect();
            all.sort();
            assert_eq!(seen, all, "{count} shards");
        }
        assert_eq!(whole.device_count(), 300);
        assert_eq!(whole.invalid_count(), 2);
    }

    #[test]
    fn quoted_values_are_short_and_escaped() {
        assert_eq!(quoted("a\"b\n"), "\"a\\\"b\\n\"");
        assert_eq!(quoted(&"x".repeat(100)).chars().count(), 64 + 2);
        assert_eq!(truncate_chars("abc".chars(), 3), "abc");
        assert_eq!(truncate_chars("abcd".chars(), 3), "ab…");
    }

    #[test]
    fn rows_are_read_again_in_file_order_and_taken_one_by_one() {
        let text = "# fleet\naddress,name,site\n10.0.0.1,a,x\n\n\"10.0.0.2\",\"b\nc\",y\nnot an address!,d,z\n# end\n10.0.0.3,e,x\n";
        let mut inv = inventory(text);
        assert_eq!(inv.rows.len(), 4);
        let names: Vec<String> = inv.rows.devices().map(|d| d.name).collect();
        assert_eq!(names, ["a", "b\nc", "e"]);
        // Reading again gives the same devices every time.
        assert_eq!(devices(&inv), devices(&inv));
        let invalid = inv.rows.take_invalid();
        assert_eq!(invalid.len(), 1);
        assert!(invalid[0].error.as_deref().unwrap().starts_with("line 7:"));
        let mut rows = inv.rows.into_iter();
        assert_eq!(rows.len(), 3);
        let first = rows.next().and_then(Row::into_device).unwrap();
        assert_eq!((first.line, first.address.as_str()), (3, "10.0.0.1"));
        assert_eq!(rows.len(), 2);
        let lines: Vec<u64> = rows.filter_map(Row::into_device).map(|d| d.line).collect();
        assert_eq!(lines, [5, 9]);
    }

    #[test]
    fn rejected_devices_become_invalid_records() {
        let mut inv = inventory("address,name\n10.0.0.1,keep\n10.0.0.2,drop\n");
        inv.rows
            .reject(|d| (d.name == "drop").then(|| d.record(Status::Invalid)));
        assert_eq!(inv.device_count(), 1);
        assert_eq!(inv.invalid_count(), 1);
        assert_eq!(invalid(&inv)[0].name, "drop");
    }

    #[test]
    fn a_waiting_device_costs_an_index_entry_not_a_parsed_row() {
        // The scan's memory must not grow with the fleet: what the inventory keeps per
        // device (besides its bytes in the file) stays this small.
        assert!(std::mem::size_of::<Entry>() <= 24);
        assert!(std::mem::size_of::<Device>() > 4 * std::mem::size_of::<Entry>());
    }
}
