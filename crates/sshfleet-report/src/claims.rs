//! Serials claimed by more than one device of a run: one camera listed twice under two
//! addresses, or a device misreporting its identity. Each such serial is a finding of its own
//! (the summary lists it with every address that claimed it).

use std::collections::{BTreeMap, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};

/// Serials listed in the summary; all of them are counted.
const SERIALS_LISTED: usize = 50;
/// Addresses listed per serial; all of them are counted.
const ADDRESSES_LISTED: usize = 10;

/// The serials one run's devices claimed, as they were recorded. A whole fleet passes
/// through here, so each serial costs one compact entry (its first claimant's serial and
/// address kept once in one text buffer), not two strings.
#[derive(Debug, Default)]
pub(crate) struct SerialClaims {
    /// By a 64-bit hash of the serial. Two serials with the same hash (about one chance in
    /// 10^10 at 100,000 devices) keep the first one only: a duplicate may be missed then,
    /// never made up, since the text is compared.
    first: HashMap<u64, Claim>,
    text: String,
    duplicates: DuplicateSerials,
}

#[derive(Clone, Copy, Debug)]
struct Claim {
    /// `text[start..split]` is the serial, `text[split..end]` the address.
    start: u32,
    split: u32,
    end: u32,
    duplicated: bool,
}

/// The serials claimed by more than one device.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct DuplicateSerials {
    /// Serials claimed by more than one device (each a finding).
    pub count: u64,
    /// The first of them, by serial, each with its claimants.
    pub listed: Vec<DuplicateSerial>,
    #[serde(skip)]
    by_serial: BTreeMap<String, DuplicateSerial>,
}

/// One serial and the devices that claimed it.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct DuplicateSerial {
    pub serial: String,
    /// Devices that claimed it.
    pub devices: u64,
    /// Their addresses, sorted (at most ten).
    pub addresses: Vec<String>,
}

impl SerialClaims {
    /// Notes that the device at `address` claims `serial`; the address of the device that
    /// claimed it first, when that is another device.
    pub(crate) fn claim(&mut self, serial: &str, address: &str) -> Option<String> {
        let key = hash(serial);
        let Some(claim) = self.first.get_mut(&key) else {
            self.remember(key, serial, address);
            return None;
        };
        let (start, split, end) = (
            claim.start as usize,
            claim.split as usize,
            claim.end as usize,
        );
        let (first_serial, first_address) = (&self.text[start..split], &self.text[split..end]);
        if first_serial != serial || first_address == address {
            return None;
        }
        let first_address = first_address.to_owned();
        if !std::mem::replace(&mut claim.duplicated, true) {
            self.duplicates.count = self.duplicates.count.saturating_add(1);
            self.duplicates.note(serial, &first_address);
        }
        self.duplicates.note(serial, address);
        Some(first_address)
    }

    fn remember(&mut self, key: u64, serial: &str, address: &str) {
        let offset = |len: usize| u32::try_from(len).ok();
        let start = offset(self.text.len());
        let split = offset(self.text.len() + serial.len());
        let end = offset(self.text.len() + serial.len() + address.len());
        // Past 4 GiB of serials and addresses (never, in practice) nothing more is kept.
        let (Some(start), Some(split), Some(end)) = (start, split, end) else {
            return;
        };
        self.text.push_str(serial);
        self.text.push_str(address);
        let claim = Claim {
            start,
            split,
            end,
            duplicated: false,
        };
        self.first.insert(key, claim);
    }

    /// The duplicated serials, in serial order with sorted addresses: the same whatever
    /// order the devices finished in.
    pub(crate) fn finish(self) -> DuplicateSerials {
        let mut duplicates = self.duplicates;
        duplicates.listed = std::mem::take(&mut duplicates.by_serial)
            .into_values()
            .map(|mut d| {
                d.addresses.sort();
                d.addresses.truncate(ADDRESSES_LISTED);
                d
            })
            .collect();
        duplicates
    }
}

impl DuplicateSerials {
    /// Counts a claimant of `serial` and keeps its address (a bounded number of serials,
    /// and of addresses each: the smallest ones, so the list is the same in any order).
    fn note(&mut self, serial: &str, address: &str) {
        if !self.by_serial.contains_key(serial) {
            if self.by_serial.len() >= SERIALS_LISTED {
                match self.by_serial.last_key_value() {
                    Some((last, _)) if last.as_str() > serial => {
                        self.by_serial.pop_last();
                    }
                    _ => return,
                }
            }
            let entry = DuplicateSerial {
                serial: serial.to_owned(),
                ..DuplicateSerial::default()
            };
            self.by_serial.insert(serial.to_owned(), entry);
        }
        let Some(entry) = self.by_serial.get_mut(serial) else {
            return;
        };
        entry.devices = entry.devices.saturating_add(1);
        entry.addresses.push(address.to_owned());
        if entry.addresses.len() > ADDRESSES_LISTED {
            entry.addresses.sort();
            entry.addresses.truncate(ADDRESSES_LISTED);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

fn hash(serial: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    serial.hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_serial_claimed_twice_names_the_first_claimant_and_is_listed_once() {
        let mut claims = SerialClaims::default();
        assert_eq!(claims.claim("ACCC8E000001", "10.0.0.2"), None);
        assert_eq!(claims.claim("ACCC8E000002", "10.0.0.3"), None);
        assert_eq!(
            claims.claim("ACCC8E000001", "10.0.0.1").as_deref(),
            Some("10.0.0.2")
        );
        assert_eq!(
            claims.claim("ACCC8E000001", "10.0.0.9").as_deref(),
            Some("10.0.0.2")
        );
        // The same device seen again is not a second claimant.
        assert_eq!(claims.claim("ACCC8E000002", "10.0.0.3"), None);
        let duplicates = claims.finish();
        assert_eq!(duplicates.count, 1);
        assert_eq!(duplicates.listed.len(), 1);
        let d = &duplicates.listed[0];
        assert_eq!((d.serial.as_str(), d.devices), ("ACCC8E000001", 3));
        assert_eq!(d.addresses, ["10.0.0.1", "10.0.0.2", "10.0.0.9"]);
    }

    #[test]
    fn the_list_is_the_same_in_any_order_and_bounded() {
        let claims_in = |order: &mut dyn Iterator<Item = usize>| {
            let mut claims = SerialClaims::default();
            for i in order {
                // 80 serials, each claimed by 12 devices.
                let serial = format!("S{:03}", i % 80);
                claims.claim(&serial, &format!("10.0.{}.{}", i / 80, i % 80));
            }
            claims.finish()
        };
        let forward = claims_in(&mut (0..960));
        let backward = claims_in(&mut (0..960).rev());
        assert_eq!(forward, backward);
        assert_eq!(forward.count, 80);
        assert_eq!(forward.listed.len(), SERIALS_LISTED);
        assert_eq!(forward.listed[0].serial, "S000");
        assert_eq!(forward.listed[0].devices, 12);
        assert_eq!(forward.listed[0].addresses.len(), ADDRESSES_LISTED);
    }
}
