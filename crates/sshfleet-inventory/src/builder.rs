//! Building an inventory from raw records: rows parsed and indexed, duplicates dropped,
//! and the warnings worth telling (duplicates, values in unnamed columns, no rows at all).

use std::collections::HashMap;

use super::parse::RowParser;
use super::reader::RawRow;
use super::rows::{Entry, Rows};
use super::{Device, Inventory};

/// Turns raw records into rows, drops duplicates and collects warnings.
pub(super) struct Builder {
    parser: RowParser,
    entries: Vec<Entry>,
    warnings: Vec<String>,
    /// Device key -> line of its first row.
    seen: HashMap<String, u64>,
    /// First line where a column without a header name had a value.
    unnamed_value_line: Option<u64>,
    /// Duplicate rows beyond the first [`DUPLICATE_WARNINGS`], told as one count.
    unwarned_duplicates: UnwarnedDuplicates,
    /// A valid row gave an `expect`.
    any_expect: bool,
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
    pub(crate) fn new(parser: RowParser, rows_hint: usize) -> Builder {
        Builder {
            parser,
            entries: Vec::with_capacity(rows_hint),
            warnings: Vec::new(),
            seen: HashMap::with_capacity(rows_hint),
            unnamed_value_line: None,
            unwarned_duplicates: UnwarnedDuplicates::default(),
            any_expect: false,
        }
    }

    pub(crate) fn push(&mut self, raw: &RawRow) {
        self.note_unnamed_values(raw);
        match self.parser.device(raw) {
            Ok(device) => match self.check_duplicate(&device) {
                Some(warning) => {
                    let admitted = self.unwarned_duplicates.admit(raw.line, warning);
                    self.warnings.extend(admitted);
                }
                None => {
                    self.any_expect |= device.expect.is_some();
                    self.entries.push(Entry::Device {
                        line: raw.line,
                        start: raw.start,
                    });
                }
            },
            Err(reason) => {
                let row = self.parser.invalid(raw, reason);
                self.entries.push(Entry::Invalid(Box::new(row)));
            }
        }
    }

    /// The inventory of `bytes`, whose data (from `start`) the pushed rows came from.
    pub(crate) fn finish(mut self, bytes: Vec<u8>, start: usize) -> Inventory {
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
            rows: Rows::new(bytes, start, self.parser, self.entries),
            warnings: self.warnings,
            any_expect: self.any_expect,
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

#[cfg(test)]
mod tests {
    use super::super::test_support::{devices, inventory, urls};

    #[test]
    fn header_without_rows_is_an_empty_inventory_with_a_warning() {
        let inv = inventory("address,name\n\n");
        assert!(inv.rows.is_empty());
        assert_eq!(inv.warnings, ["the inventory has a header but no rows"]);
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
}
