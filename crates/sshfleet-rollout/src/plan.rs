//! Saved plans (`remediate --plan-out`, then `--plan --apply`): the writes a reviewer
//! approved, applied exactly. A plan names each device to change by its identity (serial
//! when known, and address), the state observed and when, and how it was read; it carries
//! the inventory's fingerprint, the target, the waivers that held devices back and a
//! checksum of all of it, so an edited or stale plan is refused rather than half-applied.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use sshfleet_core::files::CappedError;

/// What the file says it is.
const FORMAT: &str = "sshfleet-plan";
const VERSION: u32 = 1;
/// How far ahead of this clock a plan's creation time may be (clocks of two machines
/// differ a little); further is a clock that was, or is, wrong.
const MAX_CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);
/// A plan file is small (some hundred bytes a device); more than this is not one of ours.
const MAX_PLAN_BYTES: u64 = 256 << 20;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub format: String,
    pub version: u32,
    /// RFC 3339 UTC, and the same instant in milliseconds (what the age check uses).
    pub created_at: String,
    pub created_unix_ms: i64,
    /// The inventory as given when planning; credentials are read from it again.
    pub inventory: String,
    pub inventory_fingerprint: String,
    /// `enabled` or `disabled`.
    pub target: String,
    pub shard: Option<String>,
    /// The `--limit` the plan was made with (none: the whole inventory and shard); a run
    /// applying it covers no more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
    /// Waivers that held devices back when planning (`ID` each).
    pub waivers: Vec<String>,
    pub devices: Vec<PlannedDevice>,
    /// SHA-256 (hex) of the plan with this field empty.
    #[serde(default)]
    pub checksum: String,
}

/// One device the plan changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedDevice {
    /// The device key (scheme, host, port), as the journal keys it.
    pub key: String,
    pub address: String,
    pub serial: Option<String>,
    /// The SSH state read when planning.
    pub observed_enabled: bool,
    /// `ssh.cgi` or `param.cgi`, and the ssh.cgi version used.
    pub method: String,
    pub api_version: Option<String>,
    pub observed_at: String,
}

/// A plan that cannot be applied; each refuses the run (exit 2) before anything is sent.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("cannot read the plan {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{} is {size} bytes, more than the 256 MiB a plan may hold: not an sshfleet plan, and not read", path.display())]
    TooBig { path: PathBuf, size: u64 },
    #[error("{} is not an sshfleet plan: {reason}", path.display())]
    NotAPlan { path: PathBuf, reason: String },
    #[error("the plan {} was changed after it was written (checksum mismatch); plan again", path.display())]
    Edited { path: PathBuf },
    #[error("the plan {} is {age} old, more than --plan-max-age {max}; plan again", path.display())]
    TooOld {
        path: PathBuf,
        age: String,
        max: String,
    },
    #[error("the plan {} says it was made {ahead} from now: a clock was wrong when it was made, or is now; plan again on a machine with the right time", path.display())]
    FromTheFuture { path: PathBuf, ahead: String },
    #[error("the plan {} is not approved: {reason}; nothing was sent", path.display())]
    NotApproved { path: PathBuf, reason: String },
    #[error("cannot write the plan {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl Plan {
    pub fn new(
        inventory: &Path,
        inventory_fingerprint: String,
        target: &str,
        shard: Option<String>,
    ) -> Plan {
        let now_ms = sshfleet_core::time::now_unix_ms();
        Plan {
            format: FORMAT.to_owned(),
            version: VERSION,
            created_at: sshfleet_core::time::format_rfc3339_millis(now_ms),
            created_unix_ms: now_ms,
            inventory: inventory.display().to_string(),
            inventory_fingerprint,
            target: target.to_owned(),
            shard,
            limit: None,
            waivers: Vec::new(),
            devices: Vec::new(),
            checksum: String::new(),
        }
    }

    /// Seals the plan and writes it (a temporary file, then a rename: never half a plan).
    pub fn write(&mut self, path: &Path) -> Result<(), PlanError> {
        self.devices.sort_by(|a, b| a.key.cmp(&b.key));
        self.waivers.sort();
        self.waivers.dedup();
        write_sealed(self, path)
    }

    /// Reads and checks a plan: ours, unedited, and not older than `max_age`.
    pub fn load(path: &Path, max_age: Duration) -> Result<Plan, PlanError> {
        load_sealed(path, max_age)
    }
}

/// A plan file of one kind: what it says it is, when it was made, and the checksum that
/// seals it. The camera plan and the Equinix detach plan share the sealing, the size cap,
/// the checksum and the age check through this.
pub trait SealedPlan: Serialize + serde::de::DeserializeOwned + Clone {
    /// The `format` and `version` this build writes.
    const FORMAT: (&'static str, u32);
    /// The `format` and `version` the file says.
    fn format(&self) -> (&str, u32);
    fn created_unix_ms(&self) -> i64;
    fn checksum(&self) -> &str;
    fn checksum_mut(&mut self) -> &mut String;
}

/// Implements [`SealedPlan`] for a plan struct with `format`, `version`,
/// `created_unix_ms` and `checksum` fields, writing `$format` version `$version`.
#[macro_export]
#[doc(hidden)]
macro_rules! sealed_plan {
    ($plan:ty, $format:expr, $version:expr) => {
        impl $crate::plan::SealedPlan for $plan {
            const FORMAT: (&'static str, u32) = ($format, $version);

            fn format(&self) -> (&str, u32) {
                (&self.format, self.version)
            }

            fn created_unix_ms(&self) -> i64 {
                self.created_unix_ms
            }

            fn checksum(&self) -> &str {
                &self.checksum
            }

            fn checksum_mut(&mut self) -> &mut String {
                &mut self.checksum
            }
        }
    };
}

sealed_plan!(Plan, FORMAT, VERSION);

/// The checksum of everything but the checksum: SHA-256 (hex) of the JSON with it empty.
fn digest<P: SealedPlan>(plan: &P) -> String {
    let mut unsealed = plan.clone();
    unsealed.checksum_mut().clear();
    // Serialising owned strings, numbers and vectors cannot fail.
    let bytes = serde_json::to_vec(&unsealed).unwrap_or_default();
    sshfleet_core::hash::sha256_hex(&bytes)
}

/// Seals `plan` with its checksum and writes it (a temporary file, then a rename).
pub fn write_sealed<P: SealedPlan>(plan: &mut P, path: &Path) -> Result<(), PlanError> {
    *plan.checksum_mut() = digest(plan);
    let err = |source| PlanError::Write {
        path: path.to_owned(),
        source,
    };
    let text = serde_json::to_string_pretty(plan).map_err(|e| err(io::Error::other(e)))?;
    sshfleet_core::files::write_atomically(path, (text + "\n").as_bytes()).map_err(err)
}

/// Reads and checks a plan file: of kind `P`, unedited, made neither in the future nor
/// longer than `max_age` ago.
pub fn load_sealed<P: SealedPlan>(path: &Path, max_age: Duration) -> Result<P, PlanError> {
    load_approved(path, max_age, None).map(|(plan, _)| plan)
}

/// [`load_sealed`], and with `signers` (an OpenSSH `allowed_signers` file) signed by one of
/// them (`PATH.sig`, see [`signature`](crate::signature)): the plan and the principal who
/// signed it. The signature is checked over the very bytes that are then parsed.
pub fn load_approved<P: SealedPlan>(
    path: &Path,
    max_age: Duration,
    signers: Option<&Path>,
) -> Result<(P, Option<String>), PlanError> {
    let text = read_plan(path)?;
    let signer = match signers {
        Some(signers) => {
            let signature = crate::signature::signature_of(path);
            let principal = crate::signature::verify(text.as_bytes(), &signature, signers)
                .map_err(|reason| PlanError::NotApproved {
                    path: path.to_owned(),
                    reason,
                })?;
            Some(principal)
        }
        None => None,
    };
    Ok((check_sealed(path, &text, max_age)?, signer))
}

/// The plan in `text`: of kind `P`, unedited, not from the future, not older than
/// `max_age`.
fn check_sealed<P: SealedPlan>(path: &Path, text: &str, max_age: Duration) -> Result<P, PlanError> {
    let not_a_plan = |reason: String| PlanError::NotAPlan {
        path: path.to_owned(),
        reason,
    };
    let plan: P = serde_json::from_str(text).map_err(|e| not_a_plan(e.to_string()))?;
    let (format, version) = P::FORMAT;
    if plan.format() != P::FORMAT {
        let (found, found_version) = plan.format();
        return Err(not_a_plan(format!(
            "format {found:?} version {found_version} (this sshfleet writes {format:?} version {version})"
        )));
    }
    if plan.checksum() != digest(&plan) {
        return Err(PlanError::Edited {
            path: path.to_owned(),
        });
    }
    let now_ms = sshfleet_core::time::now_unix_ms();
    let ahead_ms = plan.created_unix_ms().saturating_sub(now_ms);
    let ahead = Duration::from_millis(u64::try_from(ahead_ms).unwrap_or(0));
    if ahead > MAX_CLOCK_SKEW {
        return Err(PlanError::FromTheFuture {
            path: path.to_owned(),
            ahead: sshfleet_core::time::human_age(ahead),
        });
    }
    let age_ms = now_ms.saturating_sub(plan.created_unix_ms());
    let age = Duration::from_millis(u64::try_from(age_ms).unwrap_or(0));
    if age > max_age {
        return Err(PlanError::TooOld {
            path: path.to_owned(),
            age: sshfleet_core::time::human_age(age),
            max: sshfleet_core::time::human_age(max_age),
        });
    }
    Ok(plan)
}

/// The plan's text: its size checked before anything is read, and never read past the cap.
fn read_plan(path: &Path) -> Result<String, PlanError> {
    sshfleet_core::files::read_capped(path, MAX_PLAN_BYTES).map_err(|e| match e {
        CappedError::Io(source) => PlanError::Read {
            path: path.to_owned(),
            source,
        },
        CappedError::TooBig(size) => PlanError::TooBig {
            path: path.to_owned(),
            size,
        },
    })
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    fn plan() -> Plan {
        let mut plan = Plan::new(Path::new("cams.csv"), "f00d".into(), "disabled", None);
        plan.devices.push(PlannedDevice {
            key: "http://10.0.0.1:80".into(),
            address: "10.0.0.1".into(),
            serial: Some("ACCC8E012345".into()),
            observed_enabled: true,
            method: "ssh.cgi".into(),
            api_version: Some("1.1".into()),
            observed_at: "2026-12-03T10:00:00.000Z".into(),
        });
        plan
    }

    #[test]
    fn a_written_plan_loads_and_an_edited_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        let mut written = plan();
        written.write(&path).unwrap();
        let loaded = Plan::load(&path, Duration::from_secs(3600)).unwrap();
        assert_eq!(loaded, written);
        // Whitespace is not content; a changed value is.
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace("\n", "\n  ")).unwrap();
        assert!(Plan::load(&path, Duration::from_secs(3600)).is_ok());
        std::fs::write(&path, text.replace("10.0.0.1\"", "10.0.0.2\"")).unwrap();
        assert!(matches!(
            Plan::load(&path, Duration::from_secs(3600)),
            Err(PlanError::Edited { .. })
        ));
        std::fs::write(&path, "{\"format\":\"other\"}").unwrap();
        assert!(matches!(
            Plan::load(&path, Duration::from_secs(3600)),
            Err(PlanError::NotAPlan { .. })
        ));
    }

    #[test]
    fn an_old_plan_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        let mut old = plan();
        old.created_unix_ms -= 25 * 3600 * 1000;
        old.write(&path).unwrap();
        let err = Plan::load(&path, Duration::from_secs(24 * 3600)).unwrap_err();
        assert!(err.to_string().contains("25h old"), "{err}");
    }
}
