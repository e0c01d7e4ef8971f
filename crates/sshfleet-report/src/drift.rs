//! Drift: each record compared with what the previous run saw of the same device. A device is
//! the same by serial when both runs know it (so a camera that changed address is `moved`,
//! and two that swapped addresses are not confused), else by address.

use super::read::Observation;
use super::record::{Change, DeviceRecord, Drift, Status};
use sshfleet_core::time::format_rfc3339_millis;

/// Devices named in the summary's `gone` list; the count covers them all.
const GONE_LISTED: usize = 50;

/// The previous run, indexed for matching, with the devices this run has seen so far.
#[derive(Debug)]
pub struct Baseline {
    entries: Vec<Observation>,
    /// Positions in `entries` of those with a serial, sorted by serial (4 bytes an entry
    /// rather than a map's copy of every key: a 100,000-device baseline is held whole).
    by_serial: Vec<u32>,
    /// Positions in `entries`, sorted by address.
    by_address: Vec<u32>,
    matched: Vec<bool>,
}

/// What drift found over a whole run.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct DriftSummary {
    /// A count per change, `gone` included.
    pub by_change: ChangeCounts,
    /// The first devices of the previous run that this run did not see (address, serial).
    pub gone: Vec<GoneDevice>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct GoneDevice {
    pub address: String,
    pub serial: Option<String>,
    pub name: String,
    pub site: String,
}

/// A count per change, serialised as an object in [`Change::ALL`] order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChangeCounts([u64; Change::ALL.len()]);

impl DriftSummary {
    /// Drops the `gone` devices (a run that stopped early did not look for them all).
    pub fn forget_gone(&mut self) {
        self.by_change.0[Change::Gone.index()] = 0;
        self.gone.clear();
    }
}

impl ChangeCounts {
    pub fn get(&self, change: Change) -> u64 {
        self.0[change.index()]
    }

    pub fn add(&mut self, change: Change) {
        let slot = &mut self.0[change.index()];
        *slot = slot.saturating_add(1);
    }

    pub fn iter(&self) -> impl Iterator<Item = (Change, u64)> + '_ {
        Change::ALL.iter().copied().zip(self.0.iter().copied())
    }

    /// The counts that are not zero, `regressed 3, fixed 1`, or `no devices`.
    pub fn listed(&self) -> String {
        let counts: Vec<String> = self
            .iter()
            .filter(|&(_, n)| n > 0)
            .map(|(change, n)| format!("{change} {n}"))
            .collect();
        if counts.is_empty() {
            "no devices".to_owned()
        } else {
            counts.join(", ")
        }
    }

    /// The drift sentence of the summary and of `sshfleet diff`:
    /// `regressed 3, fixed 1; new exposure on 2`.
    pub fn describe(&self, new_exposure: u64) -> String {
        format!("{}; new exposure on {new_exposure}", self.listed())
    }
}

impl serde::Serialize for ChangeCounts {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (change, count) in self.iter() {
            map.serialize_entry(change.as_str(), &count)?;
        }
        map.end()
    }
}

/// Whether a device's change is exposure the previous run did not have: `regressed`, or
/// `new` and non-compliant (without a desired state: new with SSH on). What
/// `--fail-on regressions` counts.
pub fn is_new_exposure(change: Change, compliant: Option<bool>, ssh_enabled: Option<bool>) -> bool {
    match change {
        Change::Regressed => true,
        Change::New => {
            compliant == Some(false) || (compliant.is_none() && ssh_enabled == Some(true))
        }
        _ => false,
    }
}

/// What the present run knows of a device, for [`classify`].
#[derive(Clone, Copy, Debug)]
pub struct Seen {
    pub status: Status,
    pub ssh_enabled: Option<bool>,
    pub compliant: Option<bool>,
}

impl Seen {
    pub fn of(rec: &DeviceRecord) -> Seen {
        Seen {
            status: rec.status,
            ssh_enabled: rec.ssh_enabled,
            compliant: rec.compliant,
        }
    }
}

/// How a device was matched to the previous run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Matched {
    /// At the same address.
    Here,
    /// By serial, at another address.
    Moved,
}

/// The change from `before` to `now`. New exposure wins over every other change: a camera
/// that moved *and* had SSH turned on is `regressed`, so it is never missed by an alert on
/// regressions.
pub fn classify(before: &Observation, now: Seen, matched: Matched) -> Change {
    let moved = matched == Matched::Moved;
    let was_read = before.readable();
    let is_read = now.status == Status::Ok;
    match (was_read, is_read) {
        (true, false) => return Change::Lost,
        (false, true) if now.compliant == Some(false) => return Change::Regressed,
        (false, true) => return Change::Recovered,
        (false, false) => {
            return if moved {
                Change::Moved
            } else {
                Change::Unchanged
            }
        }
        (true, true) => {}
    }
    // Judged against a desired state in both runs: compliance decides. Otherwise the SSH
    // state does: on is exposure.
    let direction = match (before.compliant, now.compliant) {
        (Some(true), Some(false)) => Some(Change::Regressed),
        (Some(false), Some(true)) => Some(Change::Fixed),
        (Some(_), Some(_)) => None,
        _ => match (before.ssh_enabled, now.ssh_enabled) {
            (Some(false), Some(true)) => Some(Change::Regressed),
            (Some(true), Some(false)) => Some(Change::Fixed),
            _ => None,
        },
    };
    match direction {
        Some(change) => change,
        None if moved => Change::Moved,
        None => Change::Unchanged,
    }
}

/// Whether the device is in another state than before: readability or SSH state.
fn state_changed(before: &Observation, now: Seen) -> bool {
    before.readable() != (now.status == Status::Ok) || before.ssh_enabled != now.ssh_enabled
}

impl Baseline {
    pub fn new(mut entries: Vec<Observation>) -> Baseline {
        entries.shrink_to_fit();
        // Past u32::MAX observations (never, in practice) the rest are not indexed: those
        // devices would read as new, not be confused with others.
        let count = u32::try_from(entries.len()).unwrap_or(u32::MAX);
        let mut by_address: Vec<u32> = (0..count).collect();
        // Stable sorts: among equal keys the first observation comes first, and is the one
        // a lookup finds.
        by_address.sort_by(|&a, &b| {
            entries[a as usize]
                .address
                .cmp(&entries[b as usize].address)
        });
        let mut by_serial: Vec<u32> = (0..count)
            .filter(|&i| entries[i as usize].serial.is_some())
            .collect();
        by_serial.sort_by(|&a, &b| entries[a as usize].serial.cmp(&entries[b as usize].serial));
        let matched = vec![false; entries.len()];
        Baseline {
            entries,
            by_serial,
            by_address,
            matched,
        }
    }

    /// The first entry (in file order) whose `key` is `wanted`, through an index sorted by it.
    fn lookup(
        &self,
        index: &[u32],
        wanted: &str,
        key: fn(&Observation) -> Option<&str>,
    ) -> Option<usize> {
        let at = index.partition_point(|&i| key(&self.entries[i as usize]) < Some(wanted));
        let &i = index.get(at)?;
        (key(&self.entries[i as usize]) == Some(wanted)).then_some(i as usize)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The same previous run with no device of this run seen yet: for an output that
    /// matches the run's devices itself (see [`crate::RecordWriter::previous`]).
    pub fn fresh_copy(&self) -> Baseline {
        Baseline::new(self.entries.clone())
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries whose serial is `serial`, in file order.
    fn claimants(&self, serial: &str) -> &[u32] {
        let key = |i: u32| self.entries[i as usize].serial.as_deref();
        let start = self.by_serial.partition_point(|&i| key(i) < Some(serial));
        let len = self.by_serial[start..].partition_point(|&i| key(i) == Some(serial));
        &self.by_serial[start..start + len]
    }

    /// The previous observation of the device: by serial when both know one, else by address
    /// unless the device at that address then had another serial. `bool`: found at another
    /// address. A serial that more than one previous device claimed identifies a device only
    /// together with its address, so that the same devices are matched the same way in
    /// every run, whatever order they finish in.
    fn find(&self, address: &str, serial: Option<&str>) -> Option<(usize, Matched)> {
        if let Some(serial) = serial {
            let claimants = self.claimants(serial);
            let here = claimants
                .iter()
                .find(|&&i| self.entries[i as usize].address == address);
            match (here, claimants) {
                (Some(&i), _) => return Some((i as usize, Matched::Here)),
                (None, &[only]) => return Some((only as usize, Matched::Moved)),
                // Claimed by several elsewhere: which of them this is, nothing tells.
                _ => {}
            }
        }
        let i = self.lookup(&self.by_address, address, |o| Some(o.address.as_str()))?;
        match (&self.entries[i].serial, serial) {
            (Some(then), Some(now)) if then != now => None,
            _ => Some((i, Matched::Here)),
        }
    }

    /// The drift of `rec` against the previous run, marking that device as seen.
    #[cfg(test)]
    pub(crate) fn drift_of(&mut self, rec: &DeviceRecord) -> Drift {
        let seen = Seen::of(rec);
        self.compare(&rec.address, rec.serial.as_deref(), seen, &rec.checked_at)
            .0
    }

    /// The drift of the device at `address` (with `serial`, when known) seen as `now` at
    /// `checked_at`, and what the previous run saw of it; marks it as seen.
    pub fn compare(
        &mut self,
        address: &str,
        serial: Option<&str>,
        now: Seen,
        checked_at: &str,
    ) -> (Drift, Option<&Observation>) {
        let Some((i, matched)) = self.find(address, serial) else {
            let drift = Drift {
                change: Change::New,
                first_seen: checked_at.to_owned(),
                state_since: checked_at.to_owned(),
            };
            return (drift, None);
        };
        if let Some(slot) = self.matched.get_mut(i) {
            *slot = true;
        }
        let before = &self.entries[i];
        // A previous report without times (hand-made, or cut down) dates from now.
        let stamp = |ms: Option<i64>| {
            ms.map(format_rfc3339_millis)
                .unwrap_or_else(|| checked_at.to_owned())
        };
        let first_seen = stamp(before.first_seen.or(before.checked_at));
        let state_since = if state_changed(before, now) {
            checked_at.to_owned()
        } else {
            stamp(before.state_since.or(before.checked_at))
        };
        let drift = Drift {
            change: classify(before, now, matched),
            first_seen,
            state_since,
        };
        (drift, Some(before))
    }

    /// Fills in `rec.drift`; returns what the previous run saw of the device, if it did.
    pub fn annotate(&mut self, rec: &mut DeviceRecord) -> Option<&Observation> {
        let seen = Seen::of(rec);
        let (drift, before) =
            self.compare(&rec.address, rec.serial.as_deref(), seen, &rec.checked_at);
        rec.drift = Some(drift);
        before
    }

    /// The devices of the previous run that this run has not seen.
    pub fn gone(&self) -> impl Iterator<Item = &Observation> {
        self.entries
            .iter()
            .zip(&self.matched)
            .filter(|(_, seen)| !**seen)
            .map(|(e, _)| e)
    }

    /// Counts `gone` into `summary` and lists the first of them.
    pub fn finish_into(&self, summary: &mut DriftSummary) {
        for e in self.gone() {
            summary.by_change.add(Change::Gone);
            if summary.gone.len() < GONE_LISTED {
                summary.gone.push(GoneDevice {
                    address: e.address.clone(),
                    serial: e.serial.clone(),
                    name: e.name.clone(),
                    site: e.site.clone(),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::observation;
    use super::*;
    use sshfleet_core::time::parse_rfc3339_ms;

    fn seen_before(address: &str, serial: Option<&str>, ssh: Option<bool>) -> Observation {
        Observation {
            checked_at: parse_rfc3339_ms("2026-12-01T00:00:00.000Z"),
            first_seen: parse_rfc3339_ms("2026-11-01T00:00:00.000Z"),
            state_since: parse_rfc3339_ms("2026-11-15T00:00:00.000Z"),
            ..observation(address, serial, ssh)
        }
    }

    fn now(ssh: Option<bool>) -> Seen {
        Seen {
            status: if ssh.is_some() {
                Status::Ok
            } else {
                Status::Unreachable
            },
            ssh_enabled: ssh,
            compliant: ssh.map(|on| !on),
        }
    }

    #[test]
    fn every_change_from_its_cause() {
        let off = seen_before("a", None, Some(false));
        let on = seen_before("a", None, Some(true));
        let dark = seen_before("a", None, None);
        let cases = [
            (&off, now(Some(false)), Matched::Here, Change::Unchanged),
            (&off, now(Some(true)), Matched::Here, Change::Regressed),
            (&on, now(Some(false)), Matched::Here, Change::Fixed),
            (&off, now(None), Matched::Here, Change::Lost),
            (&dark, now(Some(false)), Matched::Here, Change::Recovered),
            (&dark, now(Some(true)), Matched::Here, Change::Regressed),
            (&dark, now(None), Matched::Here, Change::Unchanged),
            (&off, now(Some(false)), Matched::Moved, Change::Moved),
            (&off, now(Some(true)), Matched::Moved, Change::Regressed),
            (&dark, now(None), Matched::Moved, Change::Moved),
        ];
        for (before, seen, matched, want) in cases {
            assert_eq!(
                classify(before, seen, matched),
                want,
                "{before:?} {seen:?} {matched:?}"
            );
        }
    }

    #[test]
    fn without_a_desired_state_the_ssh_state_decides() {
        let mut before = seen_before("a", None, Some(false));
        before.compliant = None;
        let seen = Seen {
            compliant: None,
            ..now(Some(true))
        };
        assert_eq!(classify(&before, seen, Matched::Here), Change::Regressed);
        // Compliance known on both sides wins: SSH on while expected on is a fix.
        before.compliant = Some(false);
        let seen = Seen {
            compliant: Some(true),
            ..now(Some(true))
        };
        assert_eq!(classify(&before, seen, Matched::Here), Change::Fixed);
    }

    fn record(address: &str, serial: Option<&str>, ssh: Option<bool>) -> DeviceRecord {
        let status = if ssh.is_some() {
            Status::Ok
        } else {
            Status::Timeout
        };
        let mut rec = DeviceRecord::new(address.into(), String::new(), String::new(), status);
        rec.serial = serial.map(str::to_owned);
        rec.ssh_enabled = ssh;
        rec.compliant = ssh.map(|on| !on);
        rec.checked_at = "2026-12-02T00:00:00.000Z".into();
        rec
    }

    #[test]
    fn devices_are_followed_by_serial_across_addresses() {
        let mut baseline = Baseline::new(vec![
            seen_before("10.0.0.1", Some("AAAAAAAAAAAA"), Some(false)),
            seen_before("10.0.0.2", Some("BBBBBBBBBBBB"), Some(true)),
            seen_before("10.0.0.3", None, Some(false)),
            seen_before("10.0.0.4", Some("DDDDDDDDDDDD"), Some(false)),
        ]);
        // 1 and 2 swapped addresses; 3 is unchanged; 4's address now holds another camera.
        let swapped_a = baseline.drift_of(&record("10.0.0.2", Some("AAAAAAAAAAAA"), Some(false)));
        let swapped_b = baseline.drift_of(&record("10.0.0.1", Some("BBBBBBBBBBBB"), Some(true)));
        let same = baseline.drift_of(&record("10.0.0.3", None, Some(false)));
        let other = baseline.drift_of(&record("10.0.0.4", Some("EEEEEEEEEEEE"), Some(false)));
        assert_eq!(swapped_a.change, Change::Moved);
        assert_eq!(swapped_b.change, Change::Moved);
        assert_eq!(same.change, Change::Unchanged);
        assert_eq!(same.first_seen, "2026-11-01T00:00:00.000Z");
        assert_eq!(same.state_since, "2026-11-15T00:00:00.000Z");
        assert_eq!(other.change, Change::New);
        assert_eq!(other.first_seen, "2026-12-02T00:00:00.000Z");
        let gone: Vec<_> = baseline.gone().map(|e| e.address.as_str()).collect();
        assert_eq!(gone, ["10.0.0.4"]);
        let mut summary = DriftSummary::default();
        baseline.finish_into(&mut summary);
        assert_eq!(summary.by_change.get(Change::Gone), 1);
        assert_eq!(summary.gone[0].serial.as_deref(), Some("DDDDDDDDDDDD"));
    }

    #[test]
    fn devices_claiming_one_serial_are_told_apart_by_address_in_any_order() {
        let previous = || {
            vec![
                seen_before("10.0.0.1", Some("AAAAAAAAAAAA"), Some(true)),
                seen_before("10.0.0.2", Some("AAAAAAAAAAAA"), Some(false)),
            ]
        };
        let twins = [
            record("10.0.0.2", Some("AAAAAAAAAAAA"), Some(false)),
            record("10.0.0.1", Some("AAAAAAAAAAAA"), Some(true)),
        ];
        for order in [[0, 1], [1, 0]] {
            let mut baseline = Baseline::new(previous());
            for i in order {
                assert_eq!(baseline.drift_of(&twins[i]).change, Change::Unchanged);
            }
            // A third claimant elsewhere cannot be told to be either of them.
            let third = record("10.0.0.3", Some("AAAAAAAAAAAA"), Some(false));
            assert_eq!(baseline.drift_of(&third).change, Change::New);
            assert_eq!(baseline.gone().count(), 0);
        }
    }

    #[test]
    fn a_state_change_restarts_state_since_and_keeps_first_seen() {
        let mut baseline = Baseline::new(vec![seen_before("a", None, Some(false))]);
        let drift = baseline.drift_of(&record("a", None, Some(true)));
        assert_eq!(drift.change, Change::Regressed);
        assert_eq!(drift.first_seen, "2026-11-01T00:00:00.000Z");
        assert_eq!(drift.state_since, "2026-12-02T00:00:00.000Z");
    }

    #[test]
    fn a_report_without_drift_columns_dates_from_its_check() {
        let mut before = seen_before("a", None, Some(false));
        before.first_seen = None;
        before.state_since = None;
        let mut baseline = Baseline::new(vec![before]);
        let drift = baseline.drift_of(&record("a", None, Some(false)));
        assert_eq!(drift.first_seen, "2026-12-01T00:00:00.000Z");
        assert_eq!(drift.state_since, "2026-12-01T00:00:00.000Z");
    }
}
