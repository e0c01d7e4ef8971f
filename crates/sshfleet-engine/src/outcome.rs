//! The one place a record gets its status and SSH state from what happened to the device:
//! `ok` always with `ssh_enabled`, every other status without it, then exposure and
//! compliance judged. Scans, remediation and the journal's earlier outcomes all go through
//! `Conclude::conclude`. It lives with the engine, not the report, because it reads the
//! protocol's outcome (`vapix`, `probe`); the record itself knows nothing of either.

use sshfleet_axis::probe::{sanitise, SshProbe};
use sshfleet_axis::vapix::deviceinfo::DeviceFacts;
use sshfleet_axis::vapix::{CallError, Failure, SshReading};
use sshfleet_core::model::PortState;
use sshfleet_net::HttpError;
use sshfleet_report::{DeviceRecord, SshFields, Status};

/// What became of a device's SSH state in this run.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Finding<'a> {
    /// Read through the API now.
    Read(&'a SshReading),
    /// Known without a new reading: read back after a write, or read before a write that
    /// was then not made.
    State(bool),
    /// The device did not answer with a state.
    Failed(&'a Failure),
    /// Not known, for a reason that is not a device failure of this run (an earlier run's
    /// write that the journal says was not verified). `status` is never `ok`.
    Unknown { status: Status, error: &'a str },
}

/// What happened to a device, poured into its record.
pub(crate) trait Conclude {
    /// Sets status, `ssh_enabled`, the reading's API details and the error from `finding`,
    /// then judges exposure and compliance.
    fn conclude(&mut self, finding: Finding<'_>);

    /// Puts what `basicdeviceinfo.cgi` said into the record. The serial it names is the
    /// device's own word and wins over the realm's; a failure leaves the SSH result as it
    /// is and says why in `error` when there is no other error to say.
    fn add_facts(&mut self, facts: Result<DeviceFacts, Failure>);

    /// Fills in the probe columns (the exposure is judged later, with the SSH state).
    fn apply_probe(&mut self, probe: SshProbe);
}

impl Conclude for DeviceRecord {
    fn conclude(&mut self, finding: Finding<'_>) {
        match finding {
            Finding::Read(reading) => {
                set_state(self, reading.enabled);
                self.method = Some(reading.method);
                self.api_version = reading.api_version.map(|v| v.to_string());
                self.supported_versions = reading.supported_versions.clone();
                // The port was probed beside this very read: their agreement is judged.
                self.assess_exposure();
            }
            // A state learned after the port was probed (a read-back): the port's agreement
            // with it is not judged anew.
            Finding::State(enabled) => set_state(self, enabled),
            Finding::Failed(failure) => set_failure(self, failure),
            Finding::Unknown { status, error } => {
                self.status = if status == Status::Ok {
                    Status::ProtocolError
                } else {
                    status
                };
                self.ssh_enabled = None;
                self.exposure = None;
                self.error = Some(error.to_owned());
            }
        }
        self.judge();
    }

    fn add_facts(&mut self, facts: Result<DeviceFacts, Failure>) {
        match facts {
            Ok(facts) => {
                if let (Some(realm), Some(own)) = (&self.serial, &facts.serial) {
                    if realm != own {
                        tracing::warn!(realm = %realm, device = %own, "the realm names another serial than the device");
                    }
                }
                self.serial = facts.serial.or(self.serial.take());
                self.model = facts.model;
                self.firmware = facts.firmware;
            }
            Err(failure) => {
                tracing::debug!(error = %failure, "no device facts");
                if self.error.is_none() {
                    self.error = Some(format!("device info: {failure}"));
                }
            }
        }
    }

    fn apply_probe(&mut self, probe: SshProbe) {
        self.ssh_port = Some(probe.port);
        self.ssh_banner = probe.banner;
        if let Some(evidence) = probe.evidence {
            self.ssh = SshFields {
                host_key: evidence
                    .host_key
                    .as_ref()
                    .map(|k| sanitise(k.fingerprint.as_bytes())),
                host_key_type: evidence
                    .host_key
                    .as_ref()
                    .map(|k| sanitise(k.key_type.as_bytes())),
                kexinit: evidence.algorithms,
                crypto: evidence.crypto,
                terrapin: evidence.terrapin,
                // Told by the report: against the whole run and the previous one.
                ..SshFields::default()
            };
        }
    }
}

fn set_state(rec: &mut DeviceRecord, enabled: bool) {
    rec.status = Status::Ok;
    rec.ssh_enabled = Some(enabled);
}

/// The failure's one status; the message goes to `error`, the device's own code and
/// HTTP status where it gave them.
fn set_failure(rec: &mut DeviceRecord, failure: &Failure) {
    rec.status = status_of(failure);
    rec.ssh_enabled = None;
    rec.exposure = None;
    rec.error = Some(failure.to_string());
    match failure {
        Failure::Device { error, http_status } => {
            rec.error_code = error.code;
            rec.http_status = Some(*http_status);
        }
        Failure::Malformed { http_status, .. } => rec.http_status = Some(*http_status),
        Failure::Call(CallError::Throttled { status, .. }) => rec.http_status = Some(*status),
        Failure::Call(CallError::AuthFailed { .. }) => rec.http_status = Some(401),
        _ => {}
    }
}

/// Why `probe` read no proven host key from a port that answered, as a note for `error`
/// (`SSH evidence: the server closed the connection during the server's KEXINIT`); `None`
/// when the conversation completed, or nothing answered (the port state says that).
pub(crate) fn evidence_note(probe: &SshProbe) -> Option<String> {
    let failure = probe.evidence.as_ref()?.failure.as_ref()?;
    (probe.port == PortState::Open).then(|| format!("SSH evidence: {failure}"))
}

/// Adds `note` to the record's `error`, after any error it already has.
pub(crate) fn add_note(error: &mut Option<String>, note: String) {
    *error = Some(match error.take() {
        Some(earlier) => format!("{earlier}; {note}"),
        None => note,
    });
}

/// The status a failure is reported as (the status table of `docs/design.md`).
pub fn status_of(failure: &Failure) -> Status {
    match failure {
        Failure::Call(CallError::Http(e)) => match e {
            HttpError::Refused | HttpError::Dns(_) | HttpError::Unreachable(_) => {
                Status::Unreachable
            }
            HttpError::Timeout(_) => Status::Timeout,
            HttpError::Tls(_) => Status::TlsError,
            HttpError::Reset(_) | HttpError::Oversized(_) | HttpError::Protocol(_) => {
                Status::ProtocolError
            }
        },
        Failure::Call(CallError::AuthFailed { privilege: true }) => Status::NotAuthorized,
        Failure::Call(CallError::AuthFailed { privilege: false }) => Status::AuthFailed,
        Failure::Call(CallError::AuthRefused(_)) => Status::AuthFailed,
        Failure::Call(CallError::Throttled {
            status: 403 | 429, ..
        }) => Status::Forbidden,
        Failure::Call(CallError::Throttled { .. }) => Status::ApiError,
        Failure::Device { error, .. } if error.is_not_authorized() => Status::NotAuthorized,
        Failure::Device { .. } => Status::ApiError,
        Failure::Unsupported(_) => Status::Unsupported,
        Failure::Malformed { .. } => Status::ProtocolError,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sshfleet_core::model::{Method, SshState};

    fn record() -> DeviceRecord {
        let mut rec = DeviceRecord::new("cam".into(), String::new(), "hq".into(), Status::Ok);
        rec.expect = Some(SshState::Disabled);
        rec
    }

    #[test]
    fn ok_comes_with_the_state_and_every_failure_without_it() {
        let reading = SshReading {
            enabled: true,
            method: Method::SshCgi,
            api_version: None,
            supported_versions: vec!["1.0".into()],
        };
        let mut read = record();
        read.conclude(Finding::Read(&reading));
        assert_eq!(
            (read.status, read.ssh_enabled, read.compliant),
            (Status::Ok, Some(true), Some(false))
        );
        assert_eq!(read.supported_versions, vec!["1.0".to_owned()]);

        let failures = [
            (
                Failure::Call(CallError::Http(HttpError::Refused)),
                Status::Unreachable,
            ),
            (
                Failure::Call(CallError::AuthFailed { privilege: false }),
                Status::AuthFailed,
            ),
            (
                Failure::Call(CallError::Throttled {
                    status: 429,
                    asked_secs: None,
                }),
                Status::Forbidden,
            ),
            (Failure::Unsupported("no 1.x".into()), Status::Unsupported),
        ];
        for (failure, status) in failures {
            // A record that had a state (the plan's) loses it with the failure.
            let mut failed = read.clone();
            failed.conclude(Finding::Failed(&failure));
            assert_eq!(failed.status, status, "{failure}");
            assert_eq!(failed.ssh_enabled, None, "{failure}");
            assert_eq!(failed.compliant, None, "{failure}");
            assert_eq!(failed.error.as_deref(), Some(failure.to_string().as_str()));
        }
    }

    #[test]
    fn an_unknown_state_is_never_ok() {
        let mut rec = record();
        rec.conclude(Finding::Unknown {
            status: Status::Ok,
            error: "earlier run (journal): written but not verified",
        });
        assert_eq!(rec.status, Status::ProtocolError);
        assert_eq!(rec.ssh_enabled, None);
        let mut known = record();
        known.conclude(Finding::State(false));
        assert_eq!(
            (known.status, known.ssh_enabled, known.compliant),
            (Status::Ok, Some(false), Some(true))
        );
    }
}
