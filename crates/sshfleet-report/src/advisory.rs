//! Vendor advisories on the records (`--device-info`, `--advisories`): which advisories apply
//! to the AXIS OS version a device reported, and the finding they make — an advisory whose
//! exploitation needs SSH, on a device whose SSH is on (VAPIX) or reachable (the port probe
//! saw it open). Counted per advisory for the summary, the HTML page and the metrics. Only
//! the AXIS OS version a device reports is ever compared, never an SSH banner.
//!
//! A report holds the ids only. Read back, whether each needs SSH is looked up in the
//! advisories in use (the built-in set, with the file `--advisories` names); an id they do not
//! know is never taken as harmless: it is counted as needing SSH and marked `unknown`, so that
//! the summary, the page and the warning of the command say so.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::OnceLock;

use sshfleet_axis::advisories::{Advisories, AxisOsVersion};

use super::record::{DeviceRecord, PortState};

/// Addresses kept per advisory for the summary and the page (every device is counted).
const ADDRESSES_LISTED: usize = 10;

/// What the advisories said of one device whose facts were asked (`--device-info`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum AdvisoryCheck {
    /// Its AXIS OS version was compared: the ids of the advisories whose ranges hold it (none
    /// is a result: no advisory applies), in the advisories' order, and which of them need
    /// SSH to be exploited. `unknown` (read back only) are the ids the advisories in use did
    /// not know: they are in `needs_ssh` too, counted as needing SSH since nothing says not.
    Matched {
        ids: Vec<String>,
        needs_ssh: Vec<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        unknown: Vec<String>,
    },
    /// No AXIS OS version to compare: none was read, or the text read is not one. Not "no
    /// advisories": the `advisories` field stays empty and the summary counts the device.
    VersionUnknown,
}

impl AdvisoryCheck {
    /// The ids of the advisories that apply; empty when the version is unknown.
    pub fn ids(&self) -> &[String] {
        match self {
            AdvisoryCheck::Matched { ids, .. } => ids,
            AdvisoryCheck::VersionUnknown => &[],
        }
    }

    /// The ids of the applying advisories whose exploitation needs SSH (with those the
    /// advisories in use did not know, counted as needing it).
    pub fn needing_ssh(&self) -> &[String] {
        match self {
            AdvisoryCheck::Matched { needs_ssh, .. } => needs_ssh,
            AdvisoryCheck::VersionUnknown => &[],
        }
    }

    /// The ids read back that the advisories in use did not know.
    pub fn unknown(&self) -> &[String] {
        match self {
            AdvisoryCheck::Matched { unknown, .. } => unknown,
            AdvisoryCheck::VersionUnknown => &[],
        }
    }
}

/// The built-in advisories, parsed once. Should they not parse (a test keeps them valid),
/// none is known, and every id read back counts as needing SSH.
pub fn builtin() -> &'static Advisories {
    static BUILTIN: OnceLock<Advisories> = OnceLock::new();
    BUILTIN.get_or_init(|| {
        Advisories::builtin().unwrap_or_else(|e| {
            tracing::error!("the built-in advisories do not parse: {e}");
            Advisories::empty()
        })
    })
}

/// The `advisories` field of a report read back (`field`: its text, ids `;`-joined; `None`
/// when empty in CSV or `null` in JSON), for a device that reported `firmware`. Which ids
/// need SSH is looked up in `advisories`, the set in use (a report holds ids only); an id it
/// does not know counts as needing SSH and is listed in `unknown`. An empty field is "none
/// applies" when the firmware is an AXIS OS version and "unknown" when it is not; without a
/// firmware (or without the column: an older report) nothing is known.
pub(crate) fn read_back(
    field: Option<String>,
    has_column: bool,
    firmware: Option<&str>,
    advisories: &Advisories,
) -> Option<AdvisoryCheck> {
    let list = match (field, firmware) {
        (Some(list), _) => list,
        (None, Some(firmware)) if has_column => {
            return Some(match firmware.parse::<AxisOsVersion>() {
                Ok(_) => AdvisoryCheck::Matched {
                    ids: Vec::new(),
                    needs_ssh: Vec::new(),
                    unknown: Vec::new(),
                },
                Err(_) => AdvisoryCheck::VersionUnknown,
            });
        }
        (None, _) => return None,
    };
    let ids: Vec<String> = list
        .split(';')
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .collect();
    let (mut needs_ssh, mut unknown) = (Vec::new(), Vec::new());
    for id in &ids {
        match advisories.get(id) {
            Some(advisory) if !advisory.needs_ssh => {}
            Some(_) => needs_ssh.push(id.clone()),
            None => {
                needs_ssh.push(id.clone());
                unknown.push(id.clone());
            }
        }
    }
    Some(AdvisoryCheck::Matched {
        ids,
        needs_ssh,
        unknown,
    })
}

/// SSH is on (as VAPIX reads it) or reachable (the port probe saw it open).
pub fn ssh_exposed(rec: &DeviceRecord) -> bool {
    rec.ssh_enabled == Some(true) || rec.ssh_port == Some(PortState::Open)
}

/// The advisories needing SSH that make `rec` a finding: those that apply to its AXIS OS
/// version, when its SSH is on or reachable. Empty when it is no such finding.
pub fn ssh_advisory_finding(rec: &DeviceRecord) -> &[String] {
    match &rec.advisories {
        Some(check) if ssh_exposed(rec) => check.needing_ssh(),
        _ => &[],
    }
}

/// The JUnit message of a device an advisory needing SSH makes a finding: `AXIS OS 12.2.62
/// is affected by CVE-2026-1185, which needs SSH, and SSH is on`.
pub(crate) fn junit_message(rec: &DeviceRecord) -> Option<String> {
    let ids = ssh_advisory_finding(rec);
    if ids.is_empty() {
        return None;
    }
    let how = match rec.ssh_enabled {
        Some(true) => "SSH is on",
        _ => "its SSH port answers",
    };
    let version = rec.firmware.as_deref().unwrap_or("?");
    let needs = match rec
        .advisories
        .as_ref()
        .map_or(&[][..], AdvisoryCheck::unknown)
    {
        [] => "which needs SSH".to_owned(),
        unknown => format!(
            "which needs SSH ({} not in the advisories in use: counted as needing it)",
            unknown.join(", ")
        ),
    };
    Some(format!(
        "AXIS OS {version} is affected by {}, {needs}, and {how}",
        ids.join(", ")
    ))
}

/// One advisory's line of the summary.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct AdvisoryCount {
    /// Exploitation needs SSH: its SSH-exposed devices are findings.
    pub needs_ssh: bool,
    /// Read back, the advisories in use did not know it: counted as needing SSH
    /// (`needs_ssh` is true) since nothing says it does not.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub unknown: bool,
    /// Devices whose AXIS OS version it affects.
    pub devices: u64,
    /// Of those, devices whose SSH is on or reachable.
    pub ssh_exposed: u64,
    /// The first SSH-exposed devices' addresses, sorted (at most ten).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exposed_addresses: Vec<String>,
}

/// The advisories of a run, counted device by device.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct AdvisorySummary {
    /// Devices whose AXIS OS version was compared with the advisories.
    pub checked: u64,
    /// Devices with no AXIS OS version to compare (none read, or not a version): what
    /// applies to them is not known.
    pub version_unknown: u64,
    /// Of those, devices that reported a firmware text that is not an AXIS OS version.
    pub version_unparseable: u64,
    /// Devices with SSH on or reachable that an advisory needing SSH applies to: findings.
    pub findings: u64,
    /// Of those, devices that are no finding otherwise (read, and compliant or waived).
    pub findings_only_advisory: u64,
    /// Per advisory id (those that apply to at least one device).
    pub by_advisory: BTreeMap<String, AdvisoryCount>,
}

impl AdvisorySummary {
    /// Nothing was asked: no device went through the advisories.
    pub fn is_empty(&self) -> bool {
        self.checked == 0 && self.version_unknown == 0
    }

    /// Counts one record (one whose `advisories` is `None` was not asked).
    pub fn add(&mut self, rec: &DeviceRecord) {
        let Some(check) = &rec.advisories else { return };
        let ids = match check {
            AdvisoryCheck::VersionUnknown => {
                self.version_unknown = self.version_unknown.saturating_add(1);
                let unparseable = rec
                    .firmware
                    .as_deref()
                    .is_some_and(|f| !f.trim().is_empty());
                self.version_unparseable = self
                    .version_unparseable
                    .saturating_add(u64::from(unparseable));
                return;
            }
            AdvisoryCheck::Matched { ids, .. } => ids,
        };
        self.checked = self.checked.saturating_add(1);
        let exposed = ssh_exposed(rec);
        if !ssh_advisory_finding(rec).is_empty() {
            self.findings = self.findings.saturating_add(1);
            let otherwise = rec.status != super::record::Status::Ok
                || (rec.compliant == Some(false) && rec.waiver.is_none());
            self.findings_only_advisory = self
                .findings_only_advisory
                .saturating_add(u64::from(!otherwise));
        }
        for id in ids {
            let count = match self.by_advisory.get_mut(id) {
                Some(count) => count,
                None => self.by_advisory.entry(id.clone()).or_default(),
            };
            count.needs_ssh = check.needing_ssh().contains(id);
            count.unknown = check.unknown().contains(id);
            count.devices = count.devices.saturating_add(1);
            if exposed {
                count.ssh_exposed = count.ssh_exposed.saturating_add(1);
                keep_address(&mut count.exposed_addresses, &rec.address);
            }
        }
    }

    /// The advisories needing SSH with at least one SSH-exposed device: the findings, most
    /// devices first.
    pub fn ssh_findings(&self) -> Vec<(&String, &AdvisoryCount)> {
        let mut found: Vec<_> = self
            .by_advisory
            .iter()
            .filter(|(_, c)| c.needs_ssh && c.ssh_exposed > 0)
            .collect();
        found.sort_by(|a, b| b.1.ssh_exposed.cmp(&a.1.ssh_exposed).then(a.0.cmp(b.0)));
        found
    }

    /// The ids read back that the advisories in use did not know (each counted as needing
    /// SSH), in id order.
    pub fn unknown_ids(&self) -> Vec<(&String, &AdvisoryCount)> {
        self.by_advisory.iter().filter(|(_, c)| c.unknown).collect()
    }
}

/// Keeps the smallest [`ADDRESSES_LISTED`] addresses, sorted: the same list whatever order
/// the devices finished in.
fn keep_address(kept: &mut Vec<String>, address: &str) {
    let at = kept.partition_point(|a| a.as_str() < address);
    if at >= ADDRESSES_LISTED || kept.get(at).is_some_and(|a| a == address) {
        return;
    }
    kept.insert(at, address.to_owned());
    kept.truncate(ADDRESSES_LISTED);
}

/// One metric family: name, help, and its samples (labels and value).
pub(crate) type MetricFamily<'a> = (
    &'static str,
    &'static str,
    Vec<(Vec<(&'static str, &'a str)>, u64)>,
);

/// The advisories' metric families (`--metrics-out`), none when no device was checked
/// against them: the gauges, then the per-advisory families labelled `advisory`, `needs_ssh`.
pub(crate) fn metric_families(s: &AdvisorySummary) -> Vec<MetricFamily<'_>> {
    if s.is_empty() {
        return Vec::new();
    }
    let gauge = |name, help, n| (name, help, vec![(Vec::new(), n)]);
    let mut families = vec![
        gauge(
            "sshfleet_advisory_checked_devices",
            "Devices whose AXIS OS version was compared with the vendor advisories (--device-info).",
            s.checked,
        ),
        gauge(
            "sshfleet_advisory_version_unknown_devices",
            "Devices with no AXIS OS version to compare (none read, or not a version): which advisories apply is unknown.",
            s.version_unknown,
        ),
        gauge(
            "sshfleet_advisory_findings",
            "Devices with SSH on or reachable that an advisory needing SSH applies to (each a finding).",
            s.findings,
        ),
    ];
    type Field = fn(&AdvisoryCount) -> u64;
    let per_advisory: [(&str, &str, Field); 2] = [
        (
            "sshfleet_advisory_devices",
            "Devices whose AXIS OS version an advisory affects, per advisory.",
            |c| c.devices,
        ),
        (
            "sshfleet_advisory_ssh_exposed_devices",
            "Devices an advisory affects whose SSH is on or reachable, per advisory (findings where needs_ssh is true, or unknown: an advisory read back that the advisories in use do not know, counted as needing SSH).",
            |c| c.ssh_exposed,
        ),
    ];
    for (name, help, field) in per_advisory {
        let samples = s
            .by_advisory
            .iter()
            .map(|(id, c)| {
                let needs_ssh = match (c.unknown, c.needs_ssh) {
                    (true, _) => "unknown",
                    (false, true) => "true",
                    (false, false) => "false",
                };
                (
                    vec![("advisory", id.as_str()), ("needs_ssh", needs_ssh)],
                    field(c),
                )
            })
            .collect();
        families.push((name, help, samples));
    }
    families
}

/// The summary's advisory lines: one `SSH ADVISORY` line per advisory needing SSH with
/// exposed devices, then the counts of every advisory that applied.
pub(crate) fn write_text(s: &AdvisorySummary, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    if s.is_empty() {
        return Ok(());
    }
    for (id, c) in s.ssh_findings() {
        let listed = c.exposed_addresses.join(", ");
        let more = c
            .ssh_exposed
            .saturating_sub(c.exposed_addresses.len() as u64);
        let more = match more {
            0 => String::new(),
            n => format!(" and {n} more"),
        };
        let why = match c.unknown {
            false => "exploiting it needs SSH",
            true => "the advisories in use do not know it, so it is counted as needing SSH",
        };
        writeln!(
            f,
            "SSH ADVISORY {}: {} device(s) with SSH on or reachable run an affected AXIS OS version, and {why} ({}{more})",
            sshfleet_core::inert::line(id),
            c.ssh_exposed,
            sshfleet_core::inert::escape(&listed),
        )?;
    }
    let counts: Vec<String> = s
        .by_advisory
        .iter()
        .map(|(id, c)| {
            let ssh = match (c.unknown, c.needs_ssh) {
                (true, _) => ", not in the advisories in use: counted as needing SSH",
                (false, true) => ", needs SSH",
                (false, false) => "",
            };
            format!(
                "{} {} ({} SSH-exposed{ssh})",
                sshfleet_core::inert::line(id),
                c.devices,
                c.ssh_exposed
            )
        })
        .collect();
    let applied = match counts.is_empty() {
        true => "none applies".to_owned(),
        false => counts.join(", "),
    };
    writeln!(
        f,
        "advisories: {} devices checked, {} version unknown ({} not an AXIS OS version); {applied}",
        s.checked, s.version_unknown, s.version_unparseable
    )
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;
    use crate::record::{SshState, Status};

    fn rec(address: &str, on: bool, port: Option<PortState>, check: AdvisoryCheck) -> DeviceRecord {
        let mut rec = DeviceRecord::new(address.into(), String::new(), String::new(), Status::Ok);
        rec.ssh_enabled = Some(on);
        rec.expect = Some(SshState::Enabled);
        rec.ssh_port = port;
        rec.advisories = Some(check);
        rec.assess_exposure();
        rec.judge();
        rec
    }

    fn matched(ids: &[&str], ssh: &[&str]) -> AdvisoryCheck {
        AdvisoryCheck::Matched {
            ids: ids.iter().map(|s| (*s).to_owned()).collect(),
            needs_ssh: ssh.iter().map(|s| (*s).to_owned()).collect(),
            unknown: Vec::new(),
        }
    }

    #[test]
    fn an_ssh_advisory_is_a_finding_only_where_ssh_is_on_or_reachable() {
        let both = matched(&["CVE-2026-1185", "CVE-2026-9063"], &["CVE-2026-1185"]);
        let on = rec("10.0.0.1", true, None, both.clone());
        assert_eq!(ssh_advisory_finding(&on), ["CVE-2026-1185"]);
        assert!(on.is_finding(), "compliant (expect enabled), yet a finding");
        let off = rec("10.0.0.2", false, Some(PortState::Closed), both.clone());
        assert!(ssh_advisory_finding(&off).is_empty());
        let reachable = rec("10.0.0.3", false, Some(PortState::Open), both);
        assert_eq!(ssh_advisory_finding(&reachable), ["CVE-2026-1185"]);
        let other = rec("10.0.0.4", true, None, matched(&["CVE-2026-9063"], &[]));
        assert!(ssh_advisory_finding(&other).is_empty());
        assert!(!other.is_finding());
        let unknown = rec("10.0.0.5", true, None, AdvisoryCheck::VersionUnknown);
        assert!(ssh_advisory_finding(&unknown).is_empty());

        let mut s = AdvisorySummary::default();
        for r in [&on, &off, &reachable, &other, &unknown] {
            s.add(r);
        }
        assert_eq!((s.checked, s.version_unknown, s.findings), (4, 1, 2));
        let c = &s.by_advisory["CVE-2026-1185"];
        assert_eq!((c.needs_ssh, c.devices, c.ssh_exposed), (true, 3, 2));
        assert_eq!(c.exposed_addresses, ["10.0.0.1", "10.0.0.3"]);
        let c = &s.by_advisory["CVE-2026-9063"];
        assert_eq!((c.needs_ssh, c.devices, c.ssh_exposed), (false, 4, 3));
        // reachable is non-compliant already (port_only); `on` is a finding by the advisory only.
        assert_eq!(s.findings_only_advisory, 1);
    }

    #[test]
    fn a_field_read_back_keeps_none_apart_from_unknown_and_knows_the_ssh_advisory() {
        let some = |s: &str| Some(s.to_owned());
        assert_eq!(
            read_back(
                some("CVE-2026-1185;CVE-2026-9063"),
                true,
                Some("12.2.62"),
                builtin()
            ),
            Some(matched(
                &["CVE-2026-1185", "CVE-2026-9063"],
                &["CVE-2026-1185"]
            ))
        );
        assert_eq!(
            read_back(some(""), true, Some("12.11.80"), builtin()),
            Some(matched(&[], &[]))
        );
        assert_eq!(
            read_back(None, true, Some("12.11.80"), builtin()),
            Some(matched(&[], &[]))
        );
        assert_eq!(
            read_back(None, true, Some("12.5.1-beta"), builtin()),
            Some(AdvisoryCheck::VersionUnknown)
        );
        assert_eq!(read_back(None, false, Some("12.11.80"), builtin()), None);
        assert_eq!(read_back(None, true, None, builtin()), None);
        // An id the advisories in use do not know is never harmless: counted as needing SSH.
        let back = read_back(
            some("CVE-2099-0001;CVE-2026-9063"),
            true,
            Some("10.12.114"),
            builtin(),
        )
        .unwrap();
        assert_eq!(back.needing_ssh(), ["CVE-2099-0001"]);
        assert_eq!(back.unknown(), ["CVE-2099-0001"]);
        let mut on = rec("10.0.0.1", true, None, back);
        on.firmware = Some("10.12.114".into());
        assert_eq!(ssh_advisory_finding(&on), ["CVE-2099-0001"]);
        assert_eq!(
            junit_message(&on).unwrap(),
            "AXIS OS 10.12.114 is affected by CVE-2099-0001, which needs SSH (CVE-2099-0001 not in the advisories in use: counted as needing it), and SSH is on"
        );
        let mut s = AdvisorySummary::default();
        s.add(&on);
        let c = &s.by_advisory["CVE-2099-0001"];
        assert!(c.unknown && c.needs_ssh, "{c:?}");
        assert_eq!(s.unknown_ids().len(), 1);
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["by_advisory"]["CVE-2099-0001"]["unknown"], true);
        assert!(json["by_advisory"]["CVE-2026-9063"]
            .get("unknown")
            .is_none());
        // Empty: nothing is known, so every id counts.
        let none = read_back(
            some("CVE-2026-9063"),
            true,
            Some("12.2.62"),
            &Advisories::empty(),
        );
        assert_eq!(none.unwrap().unknown(), ["CVE-2026-9063"]);
    }

    #[test]
    fn the_listed_addresses_are_the_first_ten_in_order_whatever_the_order_of_arrival() {
        let mut kept = Vec::new();
        for n in (0..30).rev() {
            keep_address(&mut kept, &format!("10.0.0.{n:02}"));
        }
        keep_address(&mut kept, "10.0.0.03");
        let want: Vec<String> = (0..10).map(|n| format!("10.0.0.{n:02}")).collect();
        assert_eq!(kept, want);
        assert!(serde_json::to_string(&AdvisorySummary::default()).is_ok());
    }
}
