//! Proof that shard reports cover a fleet: every inventory row appears exactly once. Rows
//! are matched by their address as written in the inventory (what every record carries);
//! memory is one entry per inventory row, which the proof cannot do without.

use std::collections::HashMap;

/// An inventory row the merge expects, by address.
#[derive(Clone, Debug)]
struct Slot {
    /// The row's line in the inventory (the first one, for rows sharing an address).
    line: u64,
    /// How many records this address must have (rows without a usable address may share
    /// one, the empty one say).
    want: u32,
    seen: u32,
    /// The shard reports (indexes) that held a record past `want`.
    again_in: Vec<usize>,
    first_in: usize,
}

/// What a record is to the merge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    /// An inventory row not seen before: merged.
    Row,
    /// Seen already, in shard `first_in`: left out and listed.
    Duplicate { first_in: usize },
    /// Not an inventory row at all: left out and listed.
    Extra,
}

#[derive(Default, Debug)]
pub struct Coverage {
    slots: HashMap<String, Slot>,
    extra: Vec<(String, usize)>,
    extra_count: u64,
}

/// A row the shards did not cover.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Missing {
    pub line: u64,
    pub address: String,
}

/// A row that more than one record claimed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Duplicate {
    pub line: u64,
    pub address: String,
    /// The shard reports (indexes) holding it, the one merged first.
    pub shards: Vec<usize>,
}

/// The verdict: covered when all three lists are empty.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CoverageReport {
    pub expected: u64,
    pub merged: u64,
    /// In inventory order.
    pub missing: Vec<Missing>,
    /// In inventory order.
    pub duplicates: Vec<Duplicate>,
    /// Records for no inventory row: their address and shard, the first `MAX_EXTRA`.
    pub extra: Vec<(String, usize)>,
    pub extra_count: u64,
}

/// Extra records listed by address; beyond this only counted.
pub(crate) const MAX_EXTRA: usize = 1000;

impl CoverageReport {
    pub fn is_covered(&self) -> bool {
        self.missing.is_empty() && self.duplicates.is_empty() && self.extra_count == 0
    }
}

impl Coverage {
    /// The rows expected: `(address, line)` for every inventory row, in file order.
    pub fn new(rows: impl IntoIterator<Item = (String, u64)>) -> Coverage {
        let mut slots: HashMap<String, Slot> = HashMap::new();
        for (address, line) in rows {
            slots
                .entry(address)
                .and_modify(|s| s.want = s.want.saturating_add(1))
                .or_insert(Slot {
                    line,
                    want: 1,
                    seen: 0,
                    again_in: Vec::new(),
                    first_in: 0,
                });
        }
        Coverage {
            slots,
            ..Coverage::default()
        }
    }

    /// Tells the proof of a record for `address` from shard report `shard`.
    pub fn admit(&mut self, address: &str, shard: usize) -> Admit {
        let Some(slot) = self.slots.get_mut(address) else {
            self.extra_count += 1;
            if self.extra.len() < MAX_EXTRA {
                self.extra.push((address.to_owned(), shard));
            }
            return Admit::Extra;
        };
        if slot.seen >= slot.want {
            slot.again_in.push(shard);
            return Admit::Duplicate {
                first_in: slot.first_in,
            };
        }
        if slot.seen == 0 {
            slot.first_in = shard;
        }
        slot.seen += 1;
        Admit::Row
    }

    pub fn finish(self) -> CoverageReport {
        let mut report = CoverageReport {
            extra: self.extra,
            extra_count: self.extra_count,
            ..CoverageReport::default()
        };
        for (address, slot) in self.slots {
            report.expected += u64::from(slot.want);
            report.merged += u64::from(slot.seen);
            if slot.seen < slot.want {
                report.missing.push(Missing {
                    line: slot.line,
                    address: address.clone(),
                });
            }
            if !slot.again_in.is_empty() {
                let mut shards = vec![slot.first_in];
                shards.extend(slot.again_in);
                report.duplicates.push(Duplicate {
                    line: slot.line,
                    address,
                    shards,
                });
            }
        }
        report.missing.sort_by_key(|m| m.line);
        report.duplicates.sort_by_key(|d| d.line);
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(addresses: &[&str]) -> Vec<(String, u64)> {
        addresses
            .iter()
            .enumerate()
            .map(|(i, a)| ((*a).to_owned(), i as u64 + 2))
            .collect()
    }

    #[test]
    fn every_row_once_is_covered() {
        let mut c = Coverage::new(rows(&["a", "b", "c"]));
        assert_eq!(c.admit("b", 1), Admit::Row);
        assert_eq!(c.admit("a", 0), Admit::Row);
        assert_eq!(c.admit("c", 2), Admit::Row);
        let report = c.finish();
        assert!(report.is_covered(), "{report:?}");
        assert_eq!((report.expected, report.merged), (3, 3));
    }

    #[test]
    fn missing_duplicate_and_extra_rows_are_named() {
        let mut c = Coverage::new(rows(&["a", "b", "c", "d"]));
        assert_eq!(c.admit("a", 0), Admit::Row);
        assert_eq!(c.admit("c", 1), Admit::Row);
        assert_eq!(c.admit("a", 2), Admit::Duplicate { first_in: 0 });
        assert_eq!(c.admit("zz", 1), Admit::Extra);
        let report = c.finish();
        assert!(!report.is_covered());
        assert_eq!(
            report.missing,
            [
                Missing {
                    line: 3,
                    address: "b".into()
                },
                Missing {
                    line: 5,
                    address: "d".into()
                }
            ]
        );
        assert_eq!(
            report.duplicates,
            [Duplicate {
                line: 2,
                address: "a".into(),
                shards: vec![0, 2]
            }]
        );
        assert_eq!(report.extra, [("zz".to_owned(), 1)]);
        assert_eq!(report.merged, 2);
    }

    #[test]
    fn rows_sharing_an_address_each_need_a_record() {
        // Two unusable rows with an empty address cell: two invalid records.
        let mut c = Coverage::new(rows(&["", "x", ""]));
        assert_eq!(c.admit("", 0), Admit::Row);
        assert_eq!(c.admit("x", 0), Admit::Row);
        let report = c.finish();
        assert_eq!(report.missing.len(), 1);
        assert_eq!(report.missing[0].line, 2);
    }
}
