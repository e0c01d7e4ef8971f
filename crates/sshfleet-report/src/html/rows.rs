//! The device table's data: one compact row per device (strings that repeat — sites,
//! errors, waivers — kept once in a dictionary), gathered as records stream past.

use std::collections::HashMap;

use crate::record::{Action, Change, DeviceRecord, Exposure, Status, WaiverTag};

/// Where a device stands for compliance: the categories of the per-site bars and of the
/// table's compliance filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    Compliant,
    /// Non-compliant without a waiver in force: a finding.
    NonCompliant,
    /// Non-compliant, allowed by a waiver: not a finding.
    Waived,
    /// Could not be read (any status but `ok`): a finding.
    NotChecked,
    /// Read, but no desired state was given: neither compliant nor a finding.
    NoDesiredState,
}

impl Standing {
    pub const ALL: [Standing; 5] = [
        Standing::Compliant,
        Standing::NonCompliant,
        Standing::Waived,
        Standing::NotChecked,
        Standing::NoDesiredState,
    ];

    pub fn of(rec: &DeviceRecord) -> Standing {
        if rec.status != Status::Ok {
            Standing::NotChecked
        } else if rec.waiver.is_some() {
            Standing::Waived
        } else {
            match rec.compliant {
                Some(true) => Standing::Compliant,
                Some(false) => Standing::NonCompliant,
                None => Standing::NoDesiredState,
            }
        }
    }

    /// The name used in the embedded data and in CSS classes.
    pub fn as_str(self) -> &'static str {
        match self {
            Standing::Compliant => "compliant",
            Standing::NonCompliant => "non_compliant",
            Standing::Waived => "waived",
            Standing::NotChecked => "not_checked",
            Standing::NoDesiredState => "no_desired_state",
        }
    }

    /// The name shown to people.
    pub fn label(self) -> &'static str {
        match self {
            Standing::Compliant => "Compliant",
            Standing::NonCompliant => "Non-compliant",
            Standing::Waived => "Waived",
            Standing::NotChecked => "Not checked",
            Standing::NoDesiredState => "No desired state",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// Strings kept once; rows hold their index.
#[derive(Debug, Default)]
pub struct Dictionary {
    values: Vec<String>,
    index: HashMap<String, u32>,
}

impl Dictionary {
    /// The index of `value`, adding it when new (looked up before allocating its key).
    pub(crate) fn intern(&mut self, value: &str) -> u32 {
        if let Some(&i) = self.index.get(value) {
            return i;
        }
        let i = u32::try_from(self.values.len()).unwrap_or(u32::MAX);
        self.values.push(value.to_owned());
        self.index.insert(value.to_owned(), i);
        i
    }

    pub fn values(&self) -> &[String] {
        &self.values
    }

    pub fn get(&self, i: u32) -> &str {
        self.values.get(i as usize).map_or("", String::as_str)
    }
}

/// One site's devices per [`Standing`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SiteCounts<'a> {
    /// The site's index in [`DeviceRows::sites`].
    pub index: u32,
    pub name: &'a str,
    pub counts: [u64; Standing::ALL.len()],
}

/// "No value" in the small-integer columns.
pub(super) const NONE: u8 = u8::MAX;
/// "No value" in the dictionary columns.
pub(super) const NO_ENTRY: u32 = u32::MAX;

/// Every device of a report, column by column (about 60 bytes a device plus its
/// address, name and serial).
#[derive(Debug, Default)]
pub struct DeviceRows {
    pub serial: Vec<String>,
    pub address: Vec<String>,
    pub name: Vec<String>,
    pub site: Vec<u32>,
    pub status: Vec<u8>,
    /// 1 enabled, 0 disabled, `u8::MAX` unknown.
    pub ssh: Vec<u8>,
    pub standing: Vec<u8>,
    pub change: Vec<u8>,
    pub waiver: Vec<u32>,
    pub error: Vec<u32>,
    pub exposure: Vec<u8>,
    pub action: Vec<u8>,
    pub sites: Dictionary,
    pub waivers: Dictionary,
    /// The waivers of `waivers`, in their parts, by the same index.
    pub waiver_tags: Vec<WaiverTag>,
    pub errors: Dictionary,
}

impl DeviceRows {
    pub fn len(&self) -> usize {
        self.address.len()
    }

    pub fn is_empty(&self) -> bool {
        self.address.is_empty()
    }

    pub fn push(&mut self, rec: &DeviceRecord) {
        self.serial.push(rec.serial.clone().unwrap_or_default());
        self.address.push(rec.address.clone());
        self.name.push(rec.name.clone());
        self.site.push(self.sites.intern(&rec.site));
        self.status.push(rec.status.index() as u8);
        self.ssh.push(rec.ssh_enabled.map_or(NONE, u8::from));
        self.standing.push(Standing::of(rec).index() as u8);
        self.change
            .push(rec.drift.as_ref().map_or(NONE, |d| d.change.index() as u8));
        let waiver = match &rec.waiver {
            Some(w) => self.intern_waiver(w),
            None => NO_ENTRY,
        };
        self.waiver.push(waiver);
        self.error.push(match &rec.error {
            Some(e) => self.errors.intern(e),
            None => NO_ENTRY,
        });
        self.exposure
            .push(rec.exposure.map_or(NONE, exposure_index));
        self.action.push(
            rec.remediation
                .as_ref()
                .map_or(NONE, |r| action_index(r.action)),
        );
    }

    pub(crate) fn change_of(&self, i: usize) -> Option<Change> {
        Change::ALL.get(*self.change.get(i)? as usize).copied()
    }

    pub fn status_of(&self, i: usize) -> Status {
        self.status
            .get(i)
            .and_then(|&s| Status::ALL.get(s as usize))
            .copied()
            .unwrap_or(Status::ProtocolError)
    }

    pub(crate) fn standing_of(&self, i: usize) -> Standing {
        self.standing
            .get(i)
            .and_then(|&s| Standing::ALL.get(s as usize))
            .copied()
            .unwrap_or(Standing::NotChecked)
    }

    /// Any row with a remediation action (a remediation report).
    pub(crate) fn has_actions(&self) -> bool {
        self.action.iter().any(|&a| a != NONE)
    }

    /// Any row probed for its SSH port.
    pub(crate) fn has_exposure(&self) -> bool {
        self.exposure.iter().any(|&e| e != NONE)
    }

    /// Device counts per standing for each site (with its dictionary index), in site-name
    /// order.
    pub fn by_site(&self) -> Vec<SiteCounts<'_>> {
        let mut counts = vec![[0u64; Standing::ALL.len()]; self.sites.values().len()];
        for (&site, &standing) in self.site.iter().zip(&self.standing) {
            if let Some(slot) = counts.get_mut(site as usize) {
                slot[usize::from(standing).min(Standing::ALL.len() - 1)] += 1;
            }
        }
        let mut sites: Vec<SiteCounts<'_>> = self
            .sites
            .values()
            .iter()
            .zip(counts)
            .enumerate()
            .map(|(index, (name, counts))| SiteCounts {
                index: index as u32,
                name,
                counts,
            })
            .collect();
        sites.sort_by(|a, b| a.name.cmp(b.name));
        sites
    }

    fn intern_waiver(&mut self, tag: &WaiverTag) -> u32 {
        let i = self.waivers.intern(tag.as_str());
        if i as usize == self.waiver_tags.len() {
            self.waiver_tags.push(tag.clone());
        }
        i
    }

    /// How many devices each waiver allows.
    pub(crate) fn waiver_counts(&self) -> Vec<(&WaiverTag, u64)> {
        let mut counts = vec![0u64; self.waivers.values().len()];
        for &w in &self.waiver {
            if let Some(n) = counts.get_mut(w as usize) {
                *n += 1;
            }
        }
        self.waiver_tags.iter().zip(counts).collect()
    }
}

pub(super) const EXPOSURES: &[Exposure] = Exposure::ALL;
pub(super) const ACTIONS: &[Action] = Action::ALL;

fn exposure_index(e: Exposure) -> u8 {
    EXPOSURES.iter().position(|x| *x == e).unwrap_or(0) as u8
}

fn action_index(a: Action) -> u8 {
    ACTIONS.iter().position(|x| *x == a).unwrap_or(0) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(site: &str, status: Status, compliant: Option<bool>, waiver: bool) -> DeviceRecord {
        let mut rec = DeviceRecord::new("10.0.0.1".into(), "cam".into(), site.into(), status);
        rec.compliant = compliant;
        rec.waiver = waiver.then(|| "W1 owner=ops expires=2099-01-01".into());
        rec
    }

    #[test]
    fn standing_puts_unreadable_first_then_waivers_then_compliance() {
        assert_eq!(
            Standing::of(&record("a", Status::Timeout, None, false)),
            Standing::NotChecked
        );
        assert_eq!(
            Standing::of(&record("a", Status::Ok, Some(false), true)),
            Standing::Waived
        );
        assert_eq!(
            Standing::of(&record("a", Status::Ok, Some(false), false)),
            Standing::NonCompliant
        );
        assert_eq!(
            Standing::of(&record("a", Status::Ok, Some(true), false)),
            Standing::Compliant
        );
        assert_eq!(
            Standing::of(&record("a", Status::Ok, None, false)),
            Standing::NoDesiredState
        );
    }

    #[test]
    fn repeated_strings_are_kept_once_and_counted_per_site() {
        let mut rows = DeviceRows::default();
        for site in ["b", "a", "b", "b"] {
            rows.push(&record(site, Status::Ok, Some(true), false));
        }
        rows.push(&record("a", Status::Ok, Some(false), true));
        rows.push(&record("a", Status::Ok, Some(false), true));
        assert_eq!(rows.len(), 6);
        assert_eq!(rows.sites.values(), ["b", "a"]);
        let by_site = rows.by_site();
        assert_eq!((by_site[0].name, by_site[0].index), ("a", 1));
        assert_eq!(by_site[0].counts[Standing::Compliant.index()], 1);
        assert_eq!(by_site[0].counts[Standing::Waived.index()], 2);
        assert_eq!(by_site[1].counts[Standing::Compliant.index()], 3);
        assert_eq!(
            rows.waiver_counts(),
            [(&WaiverTag::parse("W1 owner=ops expires=2099-01-01"), 2)]
        );
    }
}
