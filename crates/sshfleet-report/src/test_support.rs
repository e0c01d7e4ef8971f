//! Shared fixtures for the report writers' unit tests.

use std::io::{self, Write};
use std::sync::{Arc, Mutex, PoisonError};

use super::read::Observation;
use super::record::{
    Action, Change, DeviceRecord, Drift, Exposure, Method, PortState, Remediation, SshState, Status,
};

/// A device as a previous report saw it: read (SSH on or off, compliant when off) or, without
/// `ssh`, timed out; names, dates and drift left empty for the test to fill in.
pub(crate) fn observation(address: &str, serial: Option<&str>, ssh: Option<bool>) -> Observation {
    Observation {
        address: address.into(),
        serial: serial.map(str::to_owned),
        name: String::new(),
        site: String::new(),
        status: if ssh.is_some() {
            Status::Ok
        } else {
            Status::Timeout
        },
        ssh_enabled: ssh,
        compliant: ssh.map(|on| !on),
        checked_at: None,
        first_seen: None,
        state_since: None,
        change: None,
        waived: false,
        stored: None,
        ssh_host_key: None,
    }
}

/// A record with every field set, for golden output tests.
pub(crate) fn full_record() -> DeviceRecord {
    DeviceRecord {
        address: "https://10.0.0.7:8443".into(),
        name: "Lobby, north".into(),
        site: "hq".into(),
        status: Status::Ok,
        ssh_enabled: Some(true),
        expect: Some(SshState::Disabled),
        compliant: Some(false),
        method: Some(Method::SshCgi),
        api_version: Some("1.1".into()),
        supported_versions: vec!["1.0".into(), "1.1".into()],
        http_status: Some(200),
        error_code: None,
        error: None,
        attempts: 2,
        elapsed_ms: 153,
        tls_fingerprint: Some("ab12".into()),
        checked_at: "2026-11-23T12:00:00.123Z".into(),
        remediation: Some(Remediation {
            action: Action::Set,
            before: Some(true),
            after: Some(false),
            verified: Some(true),
        }),
        serial: Some("ACCC8E012345".into()),
        drift: Some(Drift {
            change: Change::Regressed,
            first_seen: "2026-11-01T08:00:00.000Z".into(),
            state_since: "2026-11-23T12:00:00.123Z".into(),
        }),
        waiver: None,
        ssh_port: Some(PortState::Open),
        ssh_banner: Some("SSH-2.0-OpenSSH_8.9".into()),
        exposure: Some(Exposure::Consistent),
        model: Some("P3265-LVE".into()),
        firmware: Some("10.12.114".into()),
        ssh: crate::record::SshFields {
            host_key: Some("SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s".into()),
            host_key_type: Some("ssh-ed25519".into()),
            kexinit: Some(sshfleet_ssh::Algorithms {
                kex: vec!["curve25519-sha256".into()],
                host_key: vec!["ssh-ed25519".into()],
                ciphers: vec!["chacha20-poly1305@openssh.com".into()],
                macs: vec!["hmac-sha2-256-etm@openssh.com".into()],
                compression: vec!["none".into()],
            }),
            crypto: Some(sshfleet_ssh::grade::Crypto::Ok),
            terrapin: Some(sshfleet_ssh::grade::Terrapin::Vulnerable),
            key_shared: Some(2),
            host_key_change: Some(crate::record::KeyChange::Changed),
        },
        advisories: Some(crate::advisory::AdvisoryCheck::Matched {
            ids: vec!["CVE-2025-9524".into(), "CVE-2025-0325".into()],
            needs_ssh: Vec::new(),
            unknown: Vec::new(),
        }),
        extra: vec!["alice".into()],
    }
}

/// An in-memory output the test can read after the writer took ownership of a clone.
#[derive(Clone, Default)]
pub(crate) struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl SharedBuf {
    pub(crate) fn text(&self) -> String {
        let bytes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut bytes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// An output whose reader went away, like `sshfleet scan | head -1`.
pub(crate) struct BrokenPipe;

impl Write for BrokenPipe {
    fn write(&mut self, _buf: &[u8]) -> io::Result<usize> {
        Err(io::ErrorKind::BrokenPipe.into())
    }

    fn flush(&mut self) -> io::Result<()> {
        Err(io::ErrorKind::BrokenPipe.into())
    }
}
