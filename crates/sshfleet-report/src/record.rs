//! The device record: one line of every report, and its field order. Its vocabulary (status,
//! SSH state, port state…) lives in `sshfleet_core::model` and is re-exported here.

pub use crate::advisory::AdvisoryCheck;
pub use sshfleet_core::model::{Action, Change, Exposure, Method, PortState, SshState, Status};
use sshfleet_inventory::{Device, InvalidRow};
use sshfleet_ssh::grade::{Crypto, Terrapin};
use sshfleet_ssh::Algorithms;

/// A record's place in the device's history: the change, when the device was first seen and
/// since when it has been in its present state (RFC 3339 UTC).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Drift {
    pub change: Change,
    pub first_seen: String,
    pub state_since: String,
}

/// The waiver that allows a device's state, as the waivers file gave it, and the `waiver`
/// column it is written as: `ID owner=OWNER expires=DATE[ ticket=T]`. Kept in its parts so
/// that a page shows them as they were, whatever text an owner holds.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(into = "String", from = "String")]
pub struct WaiverTag {
    pub id: String,
    pub owner: String,
    /// `YYYY-MM-DD`.
    pub expires: String,
    pub ticket: Option<String>,
    /// The column's text.
    label: String,
}

impl WaiverTag {
    pub fn new(id: String, owner: String, expires: String, ticket: Option<String>) -> WaiverTag {
        let mut label = format!("{id} owner={owner} expires={expires}");
        if let Some(ticket) = &ticket {
            label.push_str(" ticket=");
            label.push_str(ticket);
        }
        WaiverTag {
            id,
            owner,
            expires,
            ticket,
            label,
        }
    }

    /// A `waiver` column read back from a report, its text kept as it was. The parts are the
    /// best reading of it: text cannot tell an owner holding ` expires=` from the field.
    pub fn parse(label: &str) -> WaiverTag {
        let (head, ticket) = match label.rfind(" ticket=") {
            Some(at) => (&label[..at], label.get(at + 8..)),
            None => (label, None),
        };
        let (head, expires) = match head.rfind(" expires=") {
            Some(at) => (&head[..at], head.get(at + 9..).unwrap_or_default()),
            None => (head, ""),
        };
        let (id, owner) = match head.find(" owner=") {
            Some(at) => (&head[..at], head.get(at + 7..).unwrap_or_default()),
            None => (head, ""),
        };
        WaiverTag {
            id: id.to_owned(),
            owner: owner.to_owned(),
            expires: expires.to_owned(),
            ticket: ticket.map(str::to_owned),
            label: label.to_owned(),
        }
    }

    /// The `waiver` column.
    pub fn as_str(&self) -> &str {
        &self.label
    }
}

/// A waiver tag in all its parts, for a form that must give back exactly the tag it was
/// made from (a held record in a temporary file): the tag's own serde form is its label,
/// whose parts are re-read from the text.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct WaiverParts {
    id: String,
    owner: String,
    expires: String,
    ticket: Option<String>,
    label: String,
}

impl From<&WaiverTag> for WaiverParts {
    fn from(tag: &WaiverTag) -> WaiverParts {
        WaiverParts {
            id: tag.id.clone(),
            owner: tag.owner.clone(),
            expires: tag.expires.clone(),
            ticket: tag.ticket.clone(),
            label: tag.label.clone(),
        }
    }
}

impl From<WaiverParts> for WaiverTag {
    fn from(parts: WaiverParts) -> WaiverTag {
        WaiverTag {
            id: parts.id,
            owner: parts.owner,
            expires: parts.expires,
            ticket: parts.ticket,
            label: parts.label,
        }
    }
}

impl std::fmt::Display for WaiverTag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.label)
    }
}

impl From<String> for WaiverTag {
    fn from(label: String) -> WaiverTag {
        WaiverTag::parse(&label)
    }
}

impl From<&str> for WaiverTag {
    fn from(label: &str) -> WaiverTag {
        WaiverTag::parse(label)
    }
}

impl From<WaiverTag> for String {
    fn from(tag: WaiverTag) -> String {
        tag.label
    }
}

/// Remediation columns, present only in remediation reports.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Remediation {
    pub action: Action,
    pub before: Option<bool>,
    pub after: Option<bool>,
    pub verified: Option<bool>,
}

/// One device's result. Field order here is the report's column order (`docs/design.md`).
/// Reports are written by the report writers in the contract's columns; the derived serde
/// form is only how remediation holds a planned write outside memory (`remediate::held`).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DeviceRecord {
    /// The address exactly as written in the inventory.
    pub address: String,
    pub name: String,
    pub site: String,
    pub status: Status,
    pub ssh_enabled: Option<bool>,
    pub expect: Option<SshState>,
    pub compliant: Option<bool>,
    pub method: Option<Method>,
    pub api_version: Option<String>,
    pub supported_versions: Vec<String>,
    pub http_status: Option<u16>,
    pub error_code: Option<i64>,
    pub error: Option<String>,
    pub attempts: u32,
    pub elapsed_ms: u64,
    /// SHA-256 of the device's TLS certificate (lowercase hex), when TLS was used.
    pub tls_fingerprint: Option<String>,
    /// RFC 3339 UTC.
    pub checked_at: String,
    pub remediation: Option<Remediation>,
    /// The device serial from its authentication realm (`AXIS_ACCC8E012345`), when it said.
    pub serial: Option<String>,
    /// Against the previous run, when there is one to compare with.
    pub drift: Option<Drift>,
    /// The waiver that allows this device's state (`ID owner=… expires=…`): then the
    /// device is not a finding.
    pub waiver: Option<WaiverTag>,
    /// What the SSH port probe saw; `None` when not probed.
    pub ssh_port: Option<PortState>,
    /// The server's identification line, sanitised (printable ASCII, at most 253
    /// characters); `None` when none was read.
    pub ssh_banner: Option<String>,
    /// Configuration against port; `None` when not probed or the SSH state is unknown.
    pub exposure: Option<Exposure>,
    /// The product number from `basicdeviceinfo.cgi` (`--device-info`), e.g. `P3265-LVE`.
    pub model: Option<String>,
    /// The firmware (AXIS OS) version from `basicdeviceinfo.cgi` (`--device-info`).
    pub firmware: Option<String>,
    /// The SSH evidence `--probe-ssh` read; every field empty when not asked.
    #[serde(default)]
    pub ssh: SshFields,
    /// The advisories that apply to the AXIS OS version the device reported
    /// (`--device-info`); `None` when not asked.
    #[serde(default)]
    pub advisories: Option<AdvisoryCheck>,
    /// Passthrough inventory columns, in the order of `Inventory::extra_columns`.
    pub extra: Vec<String>,
}

/// What one SSH conversation showed (`docs/guide/scanning.md`).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct SshFields {
    /// `SHA256:` and unpadded base64, as `ssh-keygen -lf` prints it; only a key the server
    /// proved it holds.
    pub host_key: Option<String>,
    /// `ssh-ed25519`, `ssh-rsa`, `ecdsa-sha2-nistp256`…
    pub host_key_type: Option<String>,
    /// The server's algorithm lists: JSON reports only, never a CSV column.
    pub kexinit: Option<Algorithms>,
    pub crypto: Option<Crypto>,
    pub terrapin: Option<Terrapin>,
    /// Devices of the run that presented the same host key (1: unique); empty when no key
    /// was read (`host_keys`).
    pub key_shared: Option<u64>,
    /// The host key against the previous run's for the same device; empty when no key was
    /// read.
    pub host_key_change: Option<KeyChange>,
}

/// A device's host key against the previous run's for the same device (`host_keys`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyChange {
    /// No key was read for this device in the previous run (or it was not in it).
    First,
    Same,
    Changed,
}

impl KeyChange {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyChange::First => "first",
            KeyChange::Same => "same",
            KeyChange::Changed => "changed",
        }
    }

    pub fn parse(word: &str) -> Option<KeyChange> {
        [KeyChange::First, KeyChange::Same, KeyChange::Changed]
            .into_iter()
            .find(|c| c.as_str() == word)
    }
}

impl std::fmt::Display for KeyChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The fixed report columns, in order.
pub const COLUMNS: [&str; 17] = [
    "address",
    "name",
    "site",
    "status",
    "ssh_enabled",
    "expect",
    "compliant",
    "method",
    "api_version",
    "supported_versions",
    "http_status",
    "error_code",
    "error",
    "attempts",
    "elapsed_ms",
    "tls_fingerprint",
    "checked_at",
];

/// The advisories column, after the SSH evidence columns: the ids that apply to the device's
/// AXIS OS version (`;`-separated in CSV, an array in JSON).
pub(crate) const ADVISORY_COLUMNS: [&str; 1] = ["advisories"];

/// Columns appended in remediation reports.
pub(crate) const REMEDIATION_COLUMNS: [&str; 4] = ["action", "before", "after", "verified"];

/// Columns added since the first report, in every report after the remediation columns
/// (empty where not asked or unknown).
pub(crate) const ADDED_COLUMNS: [&str; 5] =
    ["serial", "change", "first_seen", "state_since", "waiver"];
/// Columns added since the first release: in every report, after the remediation columns,
/// empty where not asked for (`docs/design.md`).
pub(crate) const LATER_COLUMNS: [&str; 5] =
    ["ssh_port", "ssh_banner", "exposure", "model", "firmware"];
/// The SSH evidence columns, after [`LATER_COLUMNS`]. `ssh_kexinit` is an object: JSON only.
pub(crate) const EVIDENCE_COLUMNS: [&str; 7] = [
    "ssh_host_key",
    "ssh_host_key_type",
    "ssh_kexinit",
    "ssh_crypto",
    "ssh_terrapin",
    "ssh_key_shared",
    "ssh_host_key_change",
];

impl DeviceRecord {
    /// A record with every result field empty; callers fill in what they learned.
    pub fn new(address: String, name: String, site: String, status: Status) -> DeviceRecord {
        DeviceRecord {
            address,
            name,
            site,
            status,
            ssh_enabled: None,
            expect: None,
            compliant: None,
            method: None,
            api_version: None,
            supported_versions: Vec::new(),
            http_status: None,
            error_code: None,
            error: None,
            attempts: 0,
            elapsed_ms: 0,
            tls_fingerprint: None,
            checked_at: sshfleet_core::time::now_rfc3339(),
            remediation: None,
            serial: None,
            drift: None,
            waiver: None,
            ssh_port: None,
            ssh_banner: None,
            exposure: None,
            model: None,
            firmware: None,
            ssh: SshFields::default(),
            advisories: None,
            extra: Vec::new(),
        }
    }

    /// A record for `device` carrying its inventory fields (address, name, site, expect,
    /// passthrough values); the scan fills in the rest.
    pub fn for_device(device: &Device, status: Status) -> DeviceRecord {
        let mut rec = DeviceRecord::new(
            device.address.clone(),
            device.name.clone(),
            device.site.clone(),
            status,
        );
        rec.expect = device.expect;
        rec.extra = device.extra.clone();
        rec
    }

    /// The `invalid` record of an inventory row that cannot be scanned; `error` says why,
    /// with its line (`line 7: address contains whitespace`).
    pub fn from_invalid(row: &InvalidRow) -> DeviceRecord {
        let mut rec = DeviceRecord::new(
            row.address.clone(),
            row.name.clone(),
            row.site.clone(),
            Status::Invalid,
        );
        rec.error = Some(row.to_string());
        rec.expect = row.expect;
        rec.extra = row.extra.clone();
        rec
    }

    /// Sets `exposure` from `ssh_enabled` and `ssh_port`, as they are now.
    pub fn assess_exposure(&mut self) {
        self.exposure = Exposure::of(self.ssh_enabled, self.ssh_port);
    }

    /// Sets `compliant` from `ssh_enabled` and `expect`; unknown when either is unknown.
    /// An SSH server answering on a device configured off (`port_only`) is never compliant:
    /// with `expect disabled` it is the exposure the audit looks for, and with `expect
    /// enabled` the configuration is wrong anyway.
    pub fn judge(&mut self) {
        let answers_while_off = self.exposure == Some(Exposure::PortOnly);
        self.compliant = match (self.status, self.ssh_enabled, self.expect) {
            (Status::Ok, Some(on), Some(want)) => {
                Some(on == want.is_enabled() && !answers_while_off)
            }
            _ => None,
        };
    }

    /// The configured SSH state a waiver may allow for this device: the state read, when the
    /// device is non-compliant because of that state alone. A waiver allows a *configuration*;
    /// an SSH server answering on a device configured off (`port_only`) is not one, so such a
    /// device is never waivable, whatever the waiver allows. `None` also when the state could
    /// not be read or the device is compliant.
    pub fn waivable_state(&self) -> Option<SshState> {
        let non_compliant = self.status == Status::Ok && self.compliant == Some(false);
        let answers_while_off = self.exposure == Some(Exposure::PortOnly);
        match (non_compliant && !answers_while_off, self.ssh_enabled) {
            (true, Some(on)) => Some(SshState::from_enabled(on)),
            _ => None,
        }
    }

    /// A finding is anything a compliance run must flag: unchecked, non-compliant without
    /// a waiver in force, or running an AXIS OS version an advisory needing SSH applies to
    /// with SSH on or reachable (a waiver allows a state, not a vulnerable firmware).
    pub fn is_finding(&self) -> bool {
        self.status != Status::Ok
            || (self.compliant == Some(false) && self.waiver.is_none())
            || !crate::advisory::ssh_advisory_finding(self).is_empty()
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;
    use sshfleet_inventory as inventory;
    use sshfleet_inventory::{InventoryOptions, RowError};

    #[test]
    fn a_waiver_label_reads_back_into_its_parts_and_its_text_is_kept() {
        let tag = WaiverTag::new(
            "W-7".into(),
            "Jane Doe".into(),
            "2026-12-10".into(),
            Some("OPS-1".into()),
        );
        assert_eq!(
            tag.as_str(),
            "W-7 owner=Jane Doe expires=2026-12-10 ticket=OPS-1"
        );
        assert_eq!(WaiverTag::parse(tag.as_str()), tag);
        let short = WaiverTag::parse("W-8 owner=ops expires=2027-01-01");
        assert_eq!(
            (
                short.id.as_str(),
                short.owner.as_str(),
                short.expires.as_str()
            ),
            ("W-8", "ops", "2027-01-01")
        );
        assert_eq!(short.ticket, None);
        let odd = WaiverTag::parse("just text");
        assert_eq!((odd.id.as_str(), odd.as_str()), ("just text", "just text"));
    }
    #[test]
    fn an_ssh_server_on_a_device_configured_off_is_not_compliant() {
        let mut rec = DeviceRecord::new("x".into(), "n".into(), "s".into(), Status::Ok);
        rec.ssh_enabled = Some(false);
        rec.expect = Some(SshState::Disabled);
        rec.judge();
        assert_eq!(rec.compliant, Some(true));
        rec.ssh_port = Some(PortState::Open);
        rec.assess_exposure();
        rec.judge();
        assert_eq!(rec.exposure, Some(Exposure::PortOnly));
        assert_eq!(rec.compliant, Some(false));
        assert!(rec.is_finding());
        // A device configured on whose port does not answer is compliant with `enabled`.
        rec.ssh_enabled = Some(true);
        rec.ssh_port = Some(PortState::Filtered);
        rec.expect = Some(SshState::Enabled);
        rec.assess_exposure();
        rec.judge();
        assert_eq!(rec.exposure, Some(Exposure::ConfigOnly));
        assert_eq!(rec.compliant, Some(true));
    }

    #[test]
    fn invalid_record_is_a_finding_with_its_reason() {
        let inv = inventory::parse(
            &b"address,name,site,owner\n10.0.0.1:0,n,s,alice\n"[..],
            &InventoryOptions::default(),
        )
        .unwrap();
        let mut rows = inv.rows;
        let row = rows.take_invalid().remove(0);
        let rec = DeviceRecord::from_invalid(&row);
        assert_eq!(rec.status, Status::Invalid);
        assert_eq!(rec.error.as_deref(), Some("line 2: invalid port \"0\""));
        assert_eq!(
            (rec.address.as_str(), rec.name.as_str()),
            ("10.0.0.1:0", "n")
        );
        assert_eq!(
            (rec.site.as_str(), rec.extra.as_slice()),
            ("s", &["alice".to_owned()][..])
        );
        assert_eq!(rec.expect, None);
        assert!(rec.is_finding());
    }

    #[test]
    fn device_record_carries_the_inventory_fields() {
        let inv = inventory::parse(
            &b"address,name,site,expect,owner\n10.0.0.1,cam,hq,on,alice\n"[..],
            &InventoryOptions::default(),
        )
        .unwrap();
        let device = inv.rows.devices().next().unwrap();
        let rec = DeviceRecord::for_device(&device, Status::Ok);
        assert_eq!(rec.address, "10.0.0.1");
        assert_eq!((rec.name.as_str(), rec.site.as_str()), ("cam", "hq"));
        assert_eq!(rec.expect, Some(SshState::Enabled));
        assert_eq!(rec.extra, ["alice"]);
        assert_eq!((rec.status, rec.error.as_deref()), (Status::Ok, None));
    }

    #[test]
    fn a_rejected_device_keeps_its_inventory_fields() {
        let inv = inventory::parse(
            &b"address,name,site,expect\n10.0.0.1,cam,hq,off\n"[..],
            &InventoryOptions::default(),
        )
        .unwrap();
        let device = inv.rows.devices().next().unwrap();
        let reason = RowError::PasswordEnvUnset {
            var: "CAM_PW".into(),
        };
        let rec = DeviceRecord::from_invalid(&InvalidRow::of_device(&device, reason));
        let mut want = DeviceRecord::for_device(&device, Status::Invalid);
        want.error = Some("line 2: password_env CAM_PW is not set in the environment".into());
        want.checked_at.clone_from(&rec.checked_at);
        assert_eq!(rec, want);
    }
}
