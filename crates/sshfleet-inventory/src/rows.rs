//! The rows of an inventory, kept compact: a valid row is an index entry into the file's
//! bytes, parsed again each time it is read; an invalid row is kept as it is.

use std::io::{Cursor, Read, Seek};
use std::sync::Arc;

use super::error::RowError;
use super::parse::RowParser;
use super::reader::{RawRow, Rereader};
use super::{Device, InvalidRow, Row};

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
pub(super) enum Entry {
    /// A row that parsed into a device: its first line and where it starts in the data.
    Device {
        line: u64,
        start: usize,
    },
    Invalid(Box<InvalidRow>),
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
        Rereader::new(Cursor::new(self.data()), self.parser.delimiter)
    }

    fn row(&self, reader: &mut Rereader<impl Read + Seek>, entry: &Entry) -> Row {
        match entry {
            Entry::Device { line, start } => self.device_row(reader, *line, *start),
            Entry::Invalid(row) => Row::Invalid(InvalidRow::clone(row)),
        }
    }

    fn take_row(&self, reader: &mut Rereader<impl Read + Seek>, entry: Entry) -> Row {
        match entry {
            Entry::Device { line, start } => self.device_row(reader, line, start),
            Entry::Invalid(row) => Row::Invalid(*row),
        }
    }

    /// Parses a row again. It parsed when the inventory was loaded and its bytes have not
    /// changed since, so this cannot fail; if it ever did, the row becomes an invalid row
    /// rather than vanishing from the report.
    fn device_row(&self, reader: &mut Rereader<impl Read + Seek>, line: u64, start: usize) -> Row {
        let raw = RawRow {
            line,
            start,
            record: reader.record_at(start).unwrap_or_default(),
            unterminated: false,
        };
        match self.parser.device(&raw) {
            Ok(device) => Row::Device(device),
            Err(reason) => Row::Invalid(
                self.parser
                    .invalid(&raw, RowError::Reread(Box::new(reason))),
            ),
        }
    }
}

impl Rows {
    /// The rows `entries` of the inventory in `bytes`, whose data starts at `start`.
    pub(super) fn new(
        bytes: Vec<u8>,
        start: usize,
        parser: RowParser,
        entries: Vec<Entry>,
    ) -> Rows {
        Rows {
            source: Arc::new(Source {
                bytes,
                start,
                parser,
            }),
            entries,
        }
    }

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

    /// Turns the devices for which `reject` gives a reason into invalid rows.
    pub fn reject(&mut self, mut reject: impl FnMut(&Device) -> Option<RowError>) {
        let mut reader = self.source.reader();
        for entry in &mut self.entries {
            if let Row::Device(device) = self.source.row(&mut reader, entry) {
                if let Some(reason) = reject(&device) {
                    *entry = Entry::Invalid(Box::new(InvalidRow::of_device(&device, reason)));
                }
            }
        }
    }

    /// Removes the invalid rows and returns them, in file order.
    pub fn take_invalid(&mut self) -> Vec<InvalidRow> {
        let mut invalid = Vec::new();
        let entries = std::mem::take(&mut self.entries);
        self.entries.reserve_exact(entries.len());
        for entry in entries {
            match entry {
                Entry::Invalid(row) => invalid.push(*row),
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
            reader: Rereader::new(
                Cursor::new(SharedData(self.source.clone())),
                self.source.parser.delimiter,
            ),
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

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::super::address::AddressError;
    use super::super::test_support::{devices, invalid, inventory};
    use super::super::Shard;
    use super::*;

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
        assert_eq!(invalid[0].line, 7);
        assert_eq!(
            invalid[0].reason,
            RowError::Address(AddressError::Whitespace)
        );
        let mut rows = inv.rows.into_iter();
        assert_eq!(rows.len(), 3);
        let first = rows.next().and_then(Row::into_device).unwrap();
        assert_eq!((first.line, first.address.as_str()), (3, "10.0.0.1"));
        assert_eq!(rows.len(), 2);
        let lines: Vec<u64> = rows.filter_map(Row::into_device).map(|d| d.line).collect();
        assert_eq!(lines, [5, 9]);
    }

    #[test]
    fn rejected_devices_become_invalid_rows() {
        let mut inv =
            inventory("address,name,expect,owner\n10.0.0.1,keep,,a\n10.0.0.2,drop,off,b\n");
        let unset = RowError::PasswordEnvUnset {
            var: "CAM_PW".to_owned(),
        };
        inv.rows
            .reject(|d| (d.name == "drop").then(|| unset.clone()));
        assert_eq!(inv.device_count(), 1);
        assert_eq!(inv.invalid_count(), 1);
        let row = invalid(&inv).remove(0);
        assert_eq!((row.line, row.name.as_str()), (3, "drop"));
        assert_eq!(row.expect, Some(sshfleet_core::model::SshState::Disabled));
        assert_eq!(row.extra, ["b"]);
        assert_eq!(row.reason, unset);
        assert_eq!(
            row.to_string(),
            "line 3: password_env CAM_PW is not set in the environment"
        );
    }

    #[test]
    fn a_waiting_device_costs_an_index_entry_not_a_parsed_row() {
        // The scan's memory must not grow with the fleet: what the inventory keeps per
        // device (besides its bytes in the file) stays this small.
        assert!(std::mem::size_of::<Entry>() <= 24);
        assert!(std::mem::size_of::<Device>() > 4 * std::mem::size_of::<Entry>());
    }
}
