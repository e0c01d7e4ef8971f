//! The domain vocabulary every layer shares: device statuses, SSH states, APIs, actions,
//! drift changes, probed port states and exposures, with their report spellings. It
//! depends on nothing else in the crate, so that `inventory`, `vapix`, `probe` and `sim`
//! need not reach up into `report`.

use std::fmt;

/// What happened to one device. `Ok` is the only status with `ssh_enabled` set.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
    /// Left for a later run: the change window closed, a wave was not confirmed, or the
    /// failure budget was spent before its wave.
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

/// By its report spelling (`new`, `regressed`…), in diff reports and in held plans alike.
impl serde::Serialize for Change {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Change {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Change, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Change::parse(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown change {text:?}")))
    }
}

/// What the SSH port probe (`--probe-ssh`) saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
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

/// How the configured SSH state (VAPIX) and the probed port agree.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
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

/// Waivers expiring within this many days are listed as expiring soon.
pub const EXPIRING_WITHIN_DAYS: i64 = 14;

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
}
