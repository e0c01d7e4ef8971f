//! The domain vocabulary every layer shares: device statuses, SSH states, APIs, actions,
//! drift changes, probed port states and exposures, with their report spellings. It
//! depends on nothing else in the crate, so that `inventory`, `vapix`, `probe` and `sim`
//! need not reach up into `report`.
//!
//! Each word has one spelling (`tls_error`, `config_only`, `ssh.cgi`), derived once for
//! reports (`as_str`, `Display`), parsing (`parse`, `FromStr`), listing (`ALL`) and serde
//! alike: strum's `serialize_all` and serde's `rename_all` are both `snake_case`, and a test
//! holds them equal.

use strum::VariantArray;

/// `ALL` and `as_str` for vocabulary enums that derive their spelling: strum's `Display`,
/// `IntoStaticStr`, `EnumString` and `VariantArray` with `serialize_all = "snake_case"`, and
/// serde with `rename_all = "snake_case"` (a variant spelled otherwise renames in both).
/// One vocabulary enum: its derives and its one spelling (snake_case, for reports, parsing
/// and serde alike), with `ALL` in declaration order and `as_str`.
macro_rules! vocabulary {
    ($(#[$meta:meta])* pub enum $name:ident $body:tt) => {
        $(#[$meta])*
        #[derive(
            Clone,
            Copy,
            Debug,
            PartialEq,
            Eq,
            Hash,
            strum::Display,
            strum::IntoStaticStr,
            strum::EnumString,
            strum::VariantArray,
            serde::Serialize,
            serde::Deserialize,
        )]
        #[strum(serialize_all = "snake_case")]
        #[serde(rename_all = "snake_case")]
        pub enum $name $body

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = <$name as VariantArray>::VARIANTS;

            /// The report spelling.
            pub fn as_str(self) -> &'static str {
                self.into()
            }
        }
    };
}

vocabulary! {
    /// What happened to one device. `Ok` is the only status with `ssh_enabled` set.
    #[derive(PartialOrd, Ord)]
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
}

impl Status {
    pub fn parse(s: &str) -> Option<Status> {
        s.parse().ok()
    }

    /// Position in [`Status::ALL`], for per-status counters.
    pub fn index(self) -> usize {
        self as usize
    }
}

vocabulary! {
    /// The desired or observed SSH state of a device.
    pub enum SshState {
        Enabled,
        Disabled,
    }
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

    /// Accepts the spellings people put in inventories: enabled/disabled, on/off, yes/no, true/false.
    pub fn parse(s: &str) -> Option<SshState> {
        match s.trim().to_ascii_lowercase().as_str() {
            "enabled" | "enable" | "on" | "yes" | "true" => Some(SshState::Enabled),
            "disabled" | "disable" | "off" | "no" | "false" => Some(SshState::Disabled),
            _ => None,
        }
    }
}

vocabulary! {
    /// Which device API gave the answer: spelled as its CGI.
    pub enum Method {
        #[strum(serialize = "ssh.cgi")]
        #[serde(rename = "ssh.cgi")]
        SshCgi,
        #[strum(serialize = "param.cgi")]
        #[serde(rename = "param.cgi")]
        ParamCgi,
    }
}

impl Method {
    pub fn parse(s: &str) -> Option<Method> {
        s.parse().ok()
    }
}

vocabulary! {
    /// What remediation planned or did for a device.
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
}

impl Action {
    pub fn parse(s: &str) -> Option<Action> {
        s.parse().ok()
    }
}

vocabulary! {
    /// How a device compares with the previous run (or `--baseline`); by its report spelling
    /// (`new`, `regressed`…) in diff reports and in held plans alike.
    #[derive(PartialOrd, Ord)]
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
}

impl Change {
    pub fn parse(s: &str) -> Option<Change> {
        s.parse().ok()
    }

    /// Position in [`Change::ALL`], for counters.
    pub fn index(self) -> usize {
        self as usize
    }
}

vocabulary! {
    /// What the SSH port probe (`--probe-ssh`) saw.
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
}

impl PortState {
    pub fn parse(s: &str) -> Option<PortState> {
        s.parse().ok()
    }
}

vocabulary! {
    /// How the configured SSH state (VAPIX) and the probed port agree.
    pub enum Exposure {
        /// Enabled and the port is open, or disabled and it is not.
        Consistent,
        /// Enabled, but the port does not answer from here (firewalled, or the service is down).
        ConfigOnly,
        /// Disabled, yet the port answers: something else listens, or the device misreports.
        PortOnly,
    }
}

impl Exposure {
    pub fn parse(s: &str) -> Option<Exposure> {
        s.parse().ok()
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

/// Waivers expiring within this many days are listed as expiring soon.
pub const EXPIRING_WITHIN_DAYS: i64 = 14;

#[cfg(test)]
mod tests {
    use std::fmt;

    use super::*;

    #[test]
    fn status_index_is_position_in_all() {
        for (i, &status) in Status::ALL.iter().enumerate() {
            assert_eq!(status.index(), i);
            assert_eq!(Status::parse(status.as_str()), Some(status));
        }
    }

    /// Every variant's spelling, the same for reports, `Display`, parsing and serde: the
    /// words reports, the JSON summary, the history database and metrics labels hold.
    fn spelled<T>(all: &[T], words: &[&str])
    where
        T: Copy + PartialEq + fmt::Debug + fmt::Display + serde::Serialize,
        T: serde::de::DeserializeOwned + std::str::FromStr + Into<&'static str>,
    {
        let said: Vec<&str> = all.iter().map(|&v| v.into()).collect();
        assert_eq!(said, words);
        for (&v, word) in all.iter().zip(words) {
            assert_eq!(v.to_string(), *word);
            assert_eq!(word.parse::<T>().ok(), Some(v), "{word}");
            let json = format!("\"{word}\"");
            assert_eq!(serde_json::to_string(&v).ok().as_ref(), Some(&json));
            assert_eq!(serde_json::from_str::<T>(&json).ok(), Some(v));
        }
    }

    #[test]
    fn one_spelling_for_reports_parsing_and_serde() {
        #[rustfmt::skip]
        spelled(Status::ALL, &[
            "ok", "invalid", "unreachable", "timeout", "tls_error", "auth_failed", "forbidden",
            "not_authorized", "unsupported", "api_error", "protocol_error",
        ]);
        spelled(SshState::ALL, &["enabled", "disabled"]);
        spelled(Method::ALL, &["ssh.cgi", "param.cgi"]);
        #[rustfmt::skip]
        spelled(Action::ALL, &["set", "none", "skip", "waived", "stale", "deferred"]);
        #[rustfmt::skip]
        spelled(Change::ALL, &[
            "new", "unchanged", "regressed", "fixed", "lost", "recovered", "moved", "gone",
        ]);
        spelled(PortState::ALL, &["open", "closed", "filtered"]);
        spelled(Exposure::ALL, &["consistent", "config_only", "port_only"]);
        for refused in ["TlsError", "tls-error", "Ok", " ok", "ssh_cgi", ""] {
            assert_eq!(Status::parse(refused), None, "{refused}");
            assert_eq!(Method::parse(refused), None, "{refused}");
            assert!(serde_json::from_str::<Status>(&format!("\"{refused}\"")).is_err());
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
        for &e in Exposure::ALL {
            assert_eq!(Exposure::parse(e.as_str()), Some(e));
        }
        for &p in PortState::ALL {
            assert_eq!(PortState::parse(p.as_str()), Some(p));
        }
    }
}
