//! Reading CSV records from the raw inventory bytes: the separator found from the header
//! line, blank and comment lines skipped, exact line numbers, and recovery from an
//! unterminated quote.

use std::io::{Read, Seek};

use csv::ByteRecord;

use super::error::InventoryError;

/// One CSV record with the line it starts on.
pub(super) struct RawRow {
    pub line: u64,
    /// Where the record starts in the data.
    pub start: usize,
    pub record: ByteRecord,
    /// The record's line opens a quote that is never closed; `record` holds that line only.
    pub unterminated: bool,
}

/// Yields non-blank, non-comment records with exact line numbers. The csv crate reports the
/// position after the previous record, before the blank and comment lines it skips, so the
/// start of each record is recomputed from the bytes.
pub(super) struct RowReader<'a> {
    data: &'a [u8],
    delimiter: u8,
    csv: csv::Reader<&'a [u8]>,
    /// Where `csv` started reading in `data`: it restarts after an unterminated quote.
    base: usize,
    lines: LineCounter,
}

impl<'a> RowReader<'a> {
    pub(crate) fn new(data: &'a [u8], delimiter: u8) -> RowReader<'a> {
        RowReader {
            data,
            delimiter,
            csv: csv_reader(data, delimiter),
            base: 0,
            lines: LineCounter::default(),
        }
    }

    pub(crate) fn next_row(&mut self) -> Result<Option<RawRow>, InventoryError> {
        loop {
            let Some((start, mut record)) = self.next_record()? else {
                return Ok(None);
            };
            let end = (self.base + offset(self.csv.position().byte())).min(self.data.len());
            let raw = self.data.get(start..end);
            let unterminated = ends_inside_quotes(raw.unwrap_or_default(), self.delimiter);
            if unterminated {
                record = self.resume_after_line(start);
            }
            if is_blank_or_comment(&record) {
                continue;
            }
            return Ok(Some(RawRow {
                line: self.lines.line_at(self.data, start),
                start,
                record,
                unterminated,
            }));
        }
    }

    /// The next record and the byte where it really starts.
    fn next_record(&mut self) -> Result<Option<(usize, ByteRecord)>, InventoryError> {
        let mut record = ByteRecord::new();
        let found = self
            .csv
            .read_byte_record(&mut record)
            .map_err(InventoryError::Csv)?;
        if !found {
            return Ok(None);
        }
        let after = self.base + offset(record.position().map_or(0, |p| p.byte()));
        Ok(Some((record_start(self.data, after), record)))
    }

    /// An unterminated quote would swallow the rest of the file into one cell. Only its own
    /// line is taken as the bad row and parsing starts afresh on the next line, so a stray
    /// quote costs one row, not the rest of the inventory.
    fn resume_after_line(&mut self, start: usize) -> ByteRecord {
        let rest = self.data.get(start..).unwrap_or_default();
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(self.data.len(), |i| start + i + 1);
        self.base = end;
        self.csv = csv_reader(self.data.get(end..).unwrap_or_default(), self.delimiter);
        let line = self.data.get(start..end).unwrap_or_default();
        csv_reader(line, self.delimiter)
            .byte_records()
            .next()
            .and_then(Result::ok)
            .unwrap_or_default()
    }
}

/// Reads records again from where [`RowReader`] found them, with one CSV parser for many
/// rows (building a parser costs more than reading a row).
pub(super) struct Rereader<R> {
    csv: csv::Reader<R>,
}

impl<R: Read + Seek> Rereader<R> {
    pub(crate) fn new(data: R, delimiter: u8) -> Rereader<R> {
        Rereader {
            csv: csv_builder(delimiter).from_reader(data),
        }
    }

    /// The record starting at `start`, a [`RawRow::start`] of the same data.
    pub(crate) fn record_at(&mut self, start: usize) -> Option<ByteRecord> {
        let mut position = csv::Position::new();
        position.set_byte(start as u64);
        self.csv.seek(position).ok()?;
        let mut record = ByteRecord::new();
        match self.csv.read_byte_record(&mut record) {
            Ok(true) => Some(record),
            _ => None,
        }
    }
}

fn csv_reader(data: &[u8], delimiter: u8) -> csv::Reader<&[u8]> {
    csv_builder(delimiter).from_reader(data)
}

fn csv_builder(delimiter: u8) -> csv::ReaderBuilder {
    let mut builder = csv::ReaderBuilder::new();
    builder
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .comment(Some(b'#'));
    builder
}

fn offset(byte: u64) -> usize {
    usize::try_from(byte).unwrap_or(usize::MAX)
}

/// Counts newlines incrementally; positions only move forward.
#[derive(Default)]
struct LineCounter {
    offset: usize,
    newlines: u64,
}

impl LineCounter {
    fn line_at(&mut self, data: &[u8], pos: usize) -> u64 {
        let pos = pos.min(data.len()).max(self.offset);
        let seen = data[self.offset..pos]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        self.newlines += seen as u64;
        self.offset = pos;
        self.newlines + 1
    }
}

/// Skips what csv-core skips before a record: line terminators and `#` comment lines.
fn record_start(data: &[u8], mut pos: usize) -> usize {
    while let Some(&byte) = data.get(pos) {
        match byte {
            b'\r' | b'\n' => pos += 1,
            b'#' => {
                pos = data[pos..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(data.len(), |i| pos + i + 1)
            }
            _ => break,
        }
    }
    pos
}

/// The separators spreadsheets export: `,`; `;` where the decimal mark is a comma (Excel in
/// much of Europe); tab.
const DELIMITERS: [u8; 3] = [b',', b';', b'\t'];

/// The separator of the header line (the first that is not blank or a comment): the one of
/// [`DELIMITERS`] it holds most often outside quotes, `,` when it holds none.
pub(super) fn sniff_delimiter(data: &[u8]) -> u8 {
    let header = data
        .split(|&b| b == b'\n')
        .map(<[u8]>::trim_ascii)
        .find(|line| !line.is_empty() && !line.starts_with(b"#"))
        .unwrap_or_default();
    let mut counts = [0usize; DELIMITERS.len()];
    let mut quoted = false;
    for &b in header {
        if b == b'"' {
            quoted = !quoted;
        } else if let (false, Some(i)) = (quoted, DELIMITERS.iter().position(|&d| d == b)) {
            counts[i] += 1;
        }
    }
    // The first of the most frequent: `,` wins a tie.
    let best = (0..DELIMITERS.len())
        .rev()
        .max_by_key(|&i| counts[i])
        .unwrap_or(0);
    match counts[best] {
        0 => b',',
        _ => DELIMITERS[best],
    }
}

/// Replays CSV quoting over a record's raw bytes: true when input ends inside quotes.
fn ends_inside_quotes(raw: &[u8], delimiter: u8) -> bool {
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        FieldStart,
        Unquoted,
        Quoted,
        QuoteInQuoted,
    }
    let end = raw
        .iter()
        .fold(State::FieldStart, |state, &b| match (state, b) {
            (State::Quoted, b'"') => State::QuoteInQuoted,
            (State::Quoted, _) => State::Quoted,
            (State::FieldStart, b'"') | (State::QuoteInQuoted, b'"') => State::Quoted,
            (_, b'\r' | b'\n') => State::FieldStart,
            (_, b) if b == delimiter => State::FieldStart,
            _ => State::Unquoted,
        });
    end == State::Quoted
}

/// Blank lines (also `,,,` and whitespace-only ones, as spreadsheets export them) and rows
/// whose first cell starts with `#`.
fn is_blank_or_comment(record: &ByteRecord) -> bool {
    let first = record.get(0).map(|cell| cell.trim_ascii_start());
    first.is_some_and(|cell| cell.starts_with(b"#"))
        || record.iter().all(|cell| cell.trim_ascii().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_state_follows_csv_rules() {
        assert!(!ends_inside_quotes(b"a,\"b\"\"c\",d\n", b','));
        assert!(!ends_inside_quotes(b"a,b\"c,d\n", b','));
        assert!(ends_inside_quotes(b"a,\"b\nc,d\n", b','));
        assert!(ends_inside_quotes(b"\"a\"\"\n", b','));
        assert!(!ends_inside_quotes(b"a;\"b\";c\n", b';'));
        assert!(ends_inside_quotes(b"a;\"b,c\n", b';'));
        assert!(!ends_inside_quotes(b"a,\"b,c\n", b';'));
    }

    #[test]
    fn the_separator_is_the_header_line_s_most_frequent() {
        assert_eq!(sniff_delimiter(b"address,name,site\n1;2\n"), b',');
        assert_eq!(
            sniff_delimiter(b"# a, comment\n\naddress;name;site\n"),
            b';'
        );
        assert_eq!(sniff_delimiter(b"address\tname\n"), b'\t');
        assert_eq!(sniff_delimiter(b"\"a;b\",name\n"), b',');
        assert_eq!(sniff_delimiter(b"address;name,site\n"), b',');
        assert_eq!(sniff_delimiter(b"address\n10.0.0.1;x\n"), b',');
        assert_eq!(sniff_delimiter(b""), b',');
    }

    #[test]
    fn record_start_skips_what_csv_skips() {
        let data = b"\r\n\n# note, \"quoted\n\nx,y\n";
        assert_eq!(record_start(data, 0), data.len() - 4);
        assert_eq!(record_start(b"x\n", 0), 0);
    }
}
