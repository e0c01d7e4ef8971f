//! What one virtual camera is: its fault, firmware and authentication profile, the labels the
//! truth file uses for them, and the status a correct scan must report for such a device.

use std::fmt;

use sshfleet_core::model::{PortState, Status};

/// The full description of one simulated camera.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceSpec {
    /// SSH state at start.
    pub ssh_enabled: bool,
    pub fault: Fault,
    pub firmware: Firmware,
    pub auth: DeviceAuth,
    /// How its SSH port behaves.
    pub ssh: SshFault,
}

impl DeviceSpec {
    /// A healthy modern camera following the fleet's authentication policy.
    pub fn clean(ssh_enabled: bool) -> DeviceSpec {
        DeviceSpec {
            ssh_enabled,
            fault: Fault::None,
            firmware: Firmware::Modern,
            auth: DeviceAuth::Policy,
            ssh: SshFault::None,
        }
    }

    /// The truth-file label: the non-default parts joined by `+`, or `none` for a clean device.
    pub fn label(&self) -> String {
        let mut parts = Vec::new();
        if self.fault != Fault::None {
            parts.push(self.fault.as_str());
        }
        if self.firmware != Firmware::Modern {
            parts.push(self.firmware.as_str());
        }
        if self.auth != DeviceAuth::Policy {
            parts.push(self.auth.as_str());
        }
        if self.ssh != SshFault::None {
            parts.push(self.ssh.as_str());
        }
        if parts.is_empty() {
            "none".to_owned()
        } else {
            parts.join("+")
        }
    }

    /// The status a correct scan reports (with `--timeout 5s` and correct trust options).
    ///
    /// `authenticates` says whether the device asks for credentials at all: without
    /// authentication a wrong password cannot be noticed.
    pub fn expect_status(&self, authenticates: bool) -> Status {
        let firmware = self.firmware.expect_status();
        let has_ssh_cgi = self.firmware.has_ssh_cgi();
        match self.fault {
            Fault::None | Fault::Slow | Fault::IgnoresWrites => firmware,
            Fault::Hang => Status::Timeout,
            Fault::Closed => Status::Unreachable,
            Fault::Throttled | Fault::ThrottledLong => Status::Forbidden,
            // Ancient firmware lists no SSH parameter to contradict.
            Fault::ForeignAnswers if self.firmware != Firmware::Ancient => Status::ProtocolError,
            Fault::ForeignAnswers => firmware,
            Fault::WrongPassword if authenticates => Status::AuthFailed,
            Fault::WrongPassword => firmware,
            // Every firmware answers some CGI request with a 200 that carries the fault.
            Fault::Reset | Fault::Oversized => Status::ProtocolError,
            Fault::MalformedJson if has_ssh_cgi => Status::ProtocolError,
            Fault::NoAdmin if has_ssh_cgi => Status::NotAuthorized,
            // A V2-only device is rejected at getSupportedVersions, before getSshInfo.
            Fault::InternalError if self.firmware == Firmware::Modern => Status::ApiError,
            Fault::MalformedJson | Fault::NoAdmin | Fault::InternalError => firmware,
        }
    }
}

/// A misbehaviour of one camera. Each one maps to one scan status (see [`DeviceSpec::expect_status`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fault {
    None,
    /// Every response is delayed by 0.5–2 s (fixed per device).
    Slow,
    /// Accepts and reads requests, never answers.
    Hang,
    /// The port is held by a socket that never listens: connections are refused.
    Closed,
    /// Status line, headers and half the body of every CGI 200, then a TCP reset.
    Reset,
    /// JSON CGI answers are cut off mid-document (with a matching Content-Length).
    MalformedJson,
    /// CGI 200 answers are 4 MiB of valid-looking JSON.
    Oversized,
    /// The device's password is not the fleet password.
    WrongPassword,
    /// HTTP 403 to everything, as if brute-force protection had blocked the scanner.
    Throttled,
    /// `getSshInfo` fails with HTTP 500 and error 1000.
    InternalError,
    /// Every ssh.cgi method fails with error 4002 (the account lacks admin rights).
    NoAdmin,
    /// Acknowledges every SSH write and keeps its state (a setting a policy enforces). Not
    /// part of the realistic mix: it exists so tests can see a write fail verification.
    IgnoresWrites,
    /// HTTP 429 with `Retry-After: 999999` to everything (a device asking to be left alone
    /// for eleven days). Not part of the realistic mix.
    ThrottledLong,
    /// Answers as if to another client's request: ssh.cgi echoes another `context`, and
    /// param.cgi lists `Network.SSH.Enabled` twice with different values. Not part of the
    /// realistic mix.
    ForeignAnswers,
}

impl Fault {
    pub fn as_str(self) -> &'static str {
        match self {
            Fault::None => "none",
            Fault::Slow => "slow",
            Fault::Hang => "hang",
            Fault::Closed => "closed",
            Fault::Reset => "reset",
            Fault::MalformedJson => "malformed_json",
            Fault::Oversized => "oversized",
            Fault::WrongPassword => "wrong_password",
            Fault::Throttled => "throttled",
            Fault::InternalError => "internal_error",
            Fault::NoAdmin => "no_admin",
            Fault::IgnoresWrites => "ignores_writes",
            Fault::ThrottledLong => "throttled_long",
            Fault::ForeignAnswers => "foreign_answers",
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a camera's SSH port behaves. Without a fault it follows the SSH state: listening
/// with an OpenSSH identification line when enabled, refusing connections when disabled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SshFault {
    None,
    /// A firewall in the path: connections are accepted and held, never a byte is sent,
    /// whatever the SSH state (the probe sees `filtered`).
    Firewalled,
    /// An SSH server answers whatever the configuration says (another daemon, or a device
    /// that misreports): `port_only` when configured disabled.
    StrayListener,
    /// When enabled, the identification line comes one byte every 500 ms (10.5 s in all).
    Trickle,
    /// When enabled, `SSH-2.0-` and then bytes without a line end, for as long as the
    /// client reads.
    EndlessLine,
    /// When enabled, a formula line first, then an identification line full of control
    /// characters, a spreadsheet formula and HTML. Not part of the realistic mix.
    HostileBanner,
}

impl SshFault {
    pub fn as_str(self) -> &'static str {
        match self {
            SshFault::None => "ssh_normal",
            SshFault::Firewalled => "ssh_firewalled",
            SshFault::StrayListener => "ssh_stray_listener",
            SshFault::Trickle => "ssh_trickle",
            SshFault::EndlessLine => "ssh_endless_line",
            SshFault::HostileBanner => "ssh_hostile_banner",
        }
    }

    /// Whether the port accepts connections when the SSH state is `ssh_enabled`.
    pub fn listens(self, ssh_enabled: bool) -> bool {
        match self {
            SshFault::Firewalled | SshFault::StrayListener => true,
            _ => ssh_enabled,
        }
    }

    /// What `--probe-ssh` sees on the port when the SSH state is `ssh_enabled`. Every
    /// listening port but the firewalled one sends its first byte at once, so this holds
    /// for any probe deadline.
    pub(crate) fn expect_port(self, ssh_enabled: bool) -> PortState {
        match self {
            SshFault::Firewalled => PortState::Filtered,
            _ if self.listens(ssh_enabled) => PortState::Open,
            _ => PortState::Closed,
        }
    }
}

impl fmt::Display for SshFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which SSH interfaces the camera's firmware offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Firmware {
    /// ssh.cgi with API versions 1.0 and 1.1, API discovery, and the `Network.SSH` parameter.
    Modern,
    /// No ssh.cgi or API discovery (404); `Network.SSH.Enabled` through param.cgi.
    ParamOnly,
    /// Neither: 404 on ssh.cgi, `# Error:` for the `Network.SSH` group on param.cgi.
    Ancient,
    /// ssh.cgi listing only API versions 2.0 and 2.1; no SSH parameter.
    V2Only,
}

impl Firmware {
    pub fn as_str(self) -> &'static str {
        match self {
            Firmware::Modern => "modern",
            Firmware::ParamOnly => "param_only",
            Firmware::Ancient => "ancient",
            Firmware::V2Only => "v2_only",
        }
    }

    pub(crate) fn has_ssh_cgi(self) -> bool {
        matches!(self, Firmware::Modern | Firmware::V2Only)
    }

    pub(crate) fn has_ssh_param(self) -> bool {
        matches!(self, Firmware::Modern | Firmware::ParamOnly)
    }

    /// The ssh.cgi API versions, in the order `getSupportedVersions` lists them.
    pub fn api_versions(self) -> &'static [&'static str] {
        match self {
            Firmware::Modern => &["1.0", "1.1"],
            Firmware::V2Only => &["2.0", "2.1"],
            Firmware::ParamOnly | Firmware::Ancient => &[],
        }
    }

    fn expect_status(self) -> Status {
        match self {
            Firmware::Modern | Firmware::ParamOnly => Status::Ok,
            Firmware::Ancient | Firmware::V2Only => Status::Unsupported,
        }
    }
}

impl fmt::Display for Firmware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How one camera authenticates, overriding the fleet policy unless `Policy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeviceAuth {
    /// Follow the fleet's [`AuthPolicy`](super::AuthPolicy).
    Policy,
    /// Digest, `algorithm=MD5`, `qop="auth"` (AXIS OS default on HTTP).
    DigestMd5,
    /// Digest, `algorithm=MD5-sess`, `qop="auth"`.
    DigestMd5Sess,
    /// Digest in RFC 2069 style: MD5, no qop, nc or cnonce.
    DigestNoQop,
    /// Digest, `algorithm=SHA-256`, `qop="auth"` (RFC 7616).
    DigestSha256,
    Basic,
    /// No authentication at all.
    None,
}

impl DeviceAuth {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceAuth::Policy => "policy",
            DeviceAuth::DigestMd5 => "digest_md5",
            DeviceAuth::DigestMd5Sess => "digest_md5_sess",
            DeviceAuth::DigestNoQop => "digest_no_qop",
            DeviceAuth::DigestSha256 => "digest_sha256",
            DeviceAuth::Basic => "basic",
            DeviceAuth::None => "no_auth",
        }
    }
}

impl fmt::Display for DeviceAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(fault: Fault, firmware: Firmware) -> DeviceSpec {
        DeviceSpec {
            fault,
            firmware,
            ..DeviceSpec::clean(false)
        }
    }

    #[test]
    fn labels_join_the_non_default_parts() {
        assert_eq!(DeviceSpec::clean(true).label(), "none");
        let mut s = spec(Fault::Slow, Firmware::ParamOnly);
        s.auth = DeviceAuth::DigestSha256;
        assert_eq!(s.label(), "slow+param_only+digest_sha256");
    }

    #[test]
    fn ssh_faults_decide_what_the_probe_sees() {
        use PortState::{Closed, Filtered, Open};
        let cases = [
            (SshFault::None, [Closed, Open]),
            (SshFault::Firewalled, [Filtered, Filtered]),
            (SshFault::StrayListener, [Open, Open]),
            (SshFault::Trickle, [Closed, Open]),
            (SshFault::EndlessLine, [Closed, Open]),
            (SshFault::HostileBanner, [Closed, Open]),
        ];
        for (fault, [off, on]) in cases {
            assert_eq!(fault.expect_port(false), off, "{fault}");
            assert_eq!(fault.expect_port(true), on, "{fault}");
        }
        let mut s = DeviceSpec::clean(false);
        s.ssh = SshFault::Trickle;
        assert_eq!(s.label(), "ssh_trickle");
    }

    #[test]
    fn each_fault_maps_to_its_status_on_modern_firmware() {
        let cases = [
            (Fault::None, Status::Ok),
            (Fault::Slow, Status::Ok),
            (Fault::Hang, Status::Timeout),
            (Fault::Closed, Status::Unreachable),
            (Fault::Reset, Status::ProtocolError),
            (Fault::MalformedJson, Status::ProtocolError),
            (Fault::Oversized, Status::ProtocolError),
            (Fault::WrongPassword, Status::AuthFailed),
            (Fault::Throttled, Status::Forbidden),
            (Fault::InternalError, Status::ApiError),
            (Fault::NoAdmin, Status::NotAuthorized),
            (Fault::IgnoresWrites, Status::Ok),
            (Fault::ThrottledLong, Status::Forbidden),
            (Fault::ForeignAnswers, Status::ProtocolError),
        ];
        for (fault, status) in cases {
            assert_eq!(spec(fault, Firmware::Modern).expect_status(true), status);
        }
    }

    #[test]
    fn firmware_decides_when_the_fault_does_not_apply() {
        assert_eq!(
            spec(Fault::None, Firmware::ParamOnly).expect_status(true),
            Status::Ok
        );
        assert_eq!(
            spec(Fault::None, Firmware::Ancient).expect_status(true),
            Status::Unsupported
        );
        assert_eq!(
            spec(Fault::InternalError, Firmware::V2Only).expect_status(true),
            Status::Unsupported
        );
        assert_eq!(
            spec(Fault::WrongPassword, Firmware::Modern).expect_status(false),
            Status::Ok
        );
    }
}

/// How one camera spells the parameter: with or without `root.`, and its on/off words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ParamStyle {
    pub(super) root_prefix: bool,
    pub(super) words: [&'static str; 2],
}

impl Default for ParamStyle {
    fn default() -> ParamStyle {
        ParamStyle {
            root_prefix: true,
            words: ["yes", "no"],
        }
    }
}

const WORDS: [[&str; 2]; 9] = [
    ["yes", "no"],
    ["Yes", "No"],
    ["YES", "NO"],
    ["true", "false"],
    ["True", "False"],
    ["TRUE", "FALSE"],
    ["on", "off"],
    ["On", "Off"],
    ["ON", "OFF"],
];

impl ParamStyle {
    /// Mostly the common `root.` + yes/no; every other spelling occurs too.
    pub(crate) fn pick(rng: &mut fastrand::Rng) -> ParamStyle {
        let words = if rng.bool() {
            WORDS[0]
        } else {
            WORDS[rng.usize(..WORDS.len())]
        };
        ParamStyle {
            root_prefix: rng.u8(..4) != 0,
            words,
        }
    }

    pub(super) fn line(&self, enabled: bool) -> String {
        let prefix = if self.root_prefix { "root." } else { "" };
        let word = self.words[usize::from(!enabled)];
        format!("{prefix}Network.SSH.Enabled={word}\r\n")
    }
}
