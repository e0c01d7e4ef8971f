//! The device record: one line of every report, its status vocabulary and field order.

use std::fmt;

/// What happened to one device. `Ok` is the only status with `ssh_enabled` set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    Ok,
    Invalid,
    Unreachable,
    Timeout,
    TlsError,
    AuthFailed,
    Forbidden,
    NotAuthorized,
    Unsupported,
    ApiError,
    ProtocolError,
}

impl Status {
    pub const ALL: [Status; 11] = [
        Status::Ok,
        Status::Invalid,
        Status::Unreachable,
        Status::Timeout,
        Status::TlsError,
        Status::AuthFailed,
        Status::Forbidden,
        Status::NotAuthorized,
        Status::Unsupported,
        Status::ApiError,
        Status::ProtocolError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Invalid => "invalid",
            Status::Unreachable => "unreachable",
            Status::Timeout => "timeout",
            Status::TlsError => "tls_error",
            Status::AuthFailed => "auth_failed",
            Status::Forbidden => "forbidden",
            Status::NotAuthorized => "not_authorized",
            Status::Unsupported => "unsupported",
            Status::ApiError => "api_error",
            Status::ProtocolError => "protocol_error",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Position in [`Status::ALL`], for per-status counters.
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The desired or observed SSH state of a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SshState {
    Enabled,
    Disabled,
}

impl SshState {
    pub fn from_enabled(enabled: bool) -> SshState {
        if enabled {
            SshState::Enabled
        } else {
            SshState::Disabled
        }
    }

    pub fn is_enabled(self) -> bool {
        self == SshState::Enabled
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SshState::Enabled => "enabled",
            SshState::Disabled => "disabled",
        }
    }

    /// Accepts the spellings people put in inventories: enabled/disabled, on/off, yes/no, true/false.
    pub fn parse(s: &str) -> Option<SshState> {
        match s.trim().to_ascii_lowercase().as_str() {
            "enabled" | "enable" | "on" | "yes" | "true" => Some(SshState::Enabled),
            "disabled" | "disable" | "off" | "no" | "false" => Some(SshState::Disabled),
            _ => None,
        }
    }
}

impl fmt::Display for SshState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which device API gave the answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    SshCgi,
    ParamCgi,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::SshCgi => "ssh.cgi",
            Method::ParamCgi => "param.cgi",
        }
    }

    pub fn parse(s: &str) -> Option<Method> {
        [Method::SshCgi, Method::ParamCgi]
            .into_iter()
            .find(|m| m.as_str() == s)
    }
}

/// What remediation planned or did for a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// The state differs and will be (or was) written.
    Set,
    /// Already in the desired state.
    None,
    /// Could not be read, so nothing is planned.
    Skip,
    /// In another state than the target, but a waiver in force allows it: never written.
    Waived,
    /// A saved plan's device that is no longer as the plan saw it (another state, another
    /// serial at its address, another API): never written.
    Stale,
    /// Left for a later run: the failure budget was exceeded before its wave.
    Deferred,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Set => "set",
            Action::None => "none",
            Action::Skip => "skip",
            Action::Waived => "waived",
            Action::Stale => "stale",
            Action::Deferred => "deferred",
        }
    }

    pub const ALL: [Action; 6] = [
        Action::Set,
        Action::None,
        Action::Skip,
        Action::Waived,
        Action::Stale,
        Action::Deferred,
    ];

    pub fn parse(s: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// How a device compares with the previous run (or `--baseline`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Change {
    /// Not in the previous run.
    New,
    Unchanged,
    /// SSH turned on, or compliant turned non-compliant: new exposure.
    Regressed,
    /// SSH turned off, or non-compliant turned compliant.
    Fixed,
    /// Was read last time, cannot be read now.
    Lost,
    /// Could not be read last time, is read now.
    Recovered,
    /// The same device (by serial) at another address, in the same state.
    Moved,
    /// In the previous run, not in this one (drift output only, never a scan record).
    Gone,
}

impl Change {
    pub const ALL: [Change; 8] = [
        Change::New,
        Change::Unchanged,
        Change::Regressed,
        Change::Fixed,
        Change::Lost,
        Change::Recovered,
        Change::Moved,
        Change::Gone,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Change::New => "new",
            Change::Unchanged => "unchanged",
            Change::Regressed => "regressed",
            Change::Fixed => "fixed",
            Change::Lost => "lost",
            Change::Recovered => "recovered",
            Change::Moved => "moved",
            Change::Gone => "gone",
        }
    }

    pub fn parse(s: &str) -> Option<Change> {
        Change::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Position in [`Change::ALL`], for counters.
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the SSH port probe (`--probe-ssh`) saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PortState {
    /// The connection was accepted and the server sent something: an identification line
    /// (`ssh_banner`), or bytes that are not one (`ssh_banner` empty).
    Open,
    /// The connection was refused.
    Closed,
    /// Nothing answered within the probe deadline: the connect timed out or the host was
    /// unreachable, or a connection was accepted but not one byte came.
    Filtered,
}

impl PortState {
    pub const ALL: [PortState; 3] = [PortState::Open, PortState::Closed, PortState::Filtered];

    pub fn as_str(self) -> &'static str {
        match self {
            PortState::Open => "open",
            PortState::Closed => "closed",
            PortState::Filtered => "filtered",
        }
    }

    pub fn parse(s: &str) -> Option<PortState> {
        PortState::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

impl fmt::Display for PortState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A record's place in the device's history: the change, when the device was first seen and
/// since when it has been in its present state (RFC 3339 UTC).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Drift {
    pub change: Change,
    pub first_seen: String,
    pub state_since: String,
}

/// How the configured SSH state (VAPIX) and the probed port agree.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Exposure {
    /// Enabled and the port is open, or disabled and it is not.
    Consistent,
    /// Enabled, but the port does not answer from here (firewalled, or the service is down).
    ConfigOnly,
    /// Disabled, yet the port answers: something else listens, or the device misreports.
    PortOnly,
}

impl Exposure {
    pub const ALL: [Exposure; 3] = [
        Exposure::Consistent,
        Exposure::ConfigOnly,
        Exposure::PortOnly,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Exposure::Consistent => "consistent",
            Exposure::ConfigOnly => "config_only",
            Exposure::PortOnly => "port_only",
        }
    }

    pub fn parse(s: &str) -> Option<Exposure> {
        Exposure::ALL.into_iter().find(|e| e.as_str() == s)
    }

    /// The exposure of a device whose configuration says `ssh_enabled` and whose port was
    /// seen `port`; unknown unless both are known.
    pub fn of(ssh_enabled: Option<bool>, port: Option<PortState>) -> Option<Exposure> {
        let open = port? == PortState::Open;
        Some(match (ssh_enabled?, open) {
            (true, true) | (false, false) => Exposure::Consistent,
            (true, false) => Exposure::ConfigOnly,
            (false, true) => Exposure::PortOnly,
        })
    }
}

impl fmt::Display for Exposure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Remediation columns, present only in remediation reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Remediation {
    pub action: Action,
    pub before: Option<bool>,
    pub after: Option<bool>,
    pub verified: Option<bool>,
}

/// One device's result. Field order here is the report's column order (DESIGN.md).
#[derive(Clone, Debug, PartialEq)]
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
    pub waiver: Option<String>,
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
    /// Passthrough inventory columns, in the order of `Inventory::extra_columns`.
    pub extra: Vec<String>,
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

/// Columns appended in remediation reports.
pub const REMEDIATION_COLUMNS: [&str; 4] = ["action", "before", "after", "verified"];

/// Columns added since the first report, in every report after the remediation columns
/// (empty where not asked or unknown).
pub const ADDED_COLUMNS: [&str; 5] = ["serial", "change", "first_seen", "state_since", "waiver"];
/// Columns added since the first release: in every report, after the remediation columns,
/// empty where not asked for (DESIGN.md).
pub const LATER_COLUMNS: [&str; 5] = ["ssh_port", "ssh_banner", "exposure", "model", "firmware"];

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
            checked_at: crate::time::now_rfc3339(),
            remediation: None,
            serial: None,
            drift: None,
            waiver: None,
            ssh_port: None,
            ssh_banner: None,
            exposure: None,
            model: None,
            firmware: None,
            extra: Vec::new(),
        }
    }

    /// The record of an inventory row that cannot be scanned; `error` says why, with its line.
    pub fn invalid(address: String, name: String, site: String, error: String) -> DeviceRecord {
        let mut rec = DeviceRecord::new(address, name, site, Status::Invalid);
        rec.error = Some(error);
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

    /// A finding is anything a compliance run must flag: unchecked, or non-compliant
    /// without a waiver in force.
    pub fn is_finding(&self) -> bool {
        self.status != Status::Ok || (self.compliant == Some(false) && self.waiver.is_none())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_index_is_position_in_all() {
        for (i, status) in Status::ALL.into_iter().enumerate() {
            assert_eq!(status.index(), i);
            assert_eq!(Status::parse(status.as_str()), Some(status));
        }
    }

    #[test]
    fn exposure_compares_configuration_and_port() {
        use PortState::{Closed, Filtered, Open};
        let cases = [
            (Some(true), Some(Open), Some(Exposure::Consistent)),
            (Some(true), Some(Closed), Some(Exposure::ConfigOnly)),
            (Some(true), Some(Filtered), Some(Exposure::ConfigOnly)),
            (Some(false), Some(Open), Some(Exposure::PortOnly)),
            (Some(false), Some(Closed), Some(Exposure::Consistent)),
            (Some(false), Some(Filtered), Some(Exposure::Consistent)),
            (None, Some(Open), None),
            (Some(true), None, None),
        ];
        for (enabled, port, want) in cases {
            assert_eq!(Exposure::of(enabled, port), want, "{enabled:?} {port:?}");
        }
        for e in Exposure::ALL {
            assert_eq!(Exposure::parse(e.as_str()), Some(e));
        }
        for p in PortState::ALL {
            assert_eq!(PortState::parse(p.as_str()), Some(p));
        }
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
        let rec = DeviceRecord::invalid("x".into(), "n".into(), "s".into(), "line 2: bad".into());
        assert_eq!(rec.status, Status::Invalid);
        assert_eq!(rec.error.as_deref(), Some("line 2: bad"));
        assert!(rec.is_finding());
    }
}
