//! The Equinix Network Edge client for SSH users: a shared token source, every `sshUsers`
//! operation with retries and backoff, and a concurrent page fetcher. Never prints.

pub mod client;
pub mod errors;
pub mod paging;
mod redact;
pub mod token;
#[doc(hidden)] // public for the benches only: the wire shapes are not an API
pub mod wire;

use std::fmt;

pub use client::{ClientPolicy, EquinixClient, NewUser};
pub use errors::{ApiProblem, EquinixError, RefusedToken, TokenError};
pub use paging::{ListingStats, PageFetcher};
pub use token::{Credentials, TokenSource};

/// The public API base when neither `--endpoint` nor `EQUINIX_API_ENDPOINT` says otherwise.
pub const DEFAULT_ENDPOINT: &str = "https://api.equinix.com";

/// One SSH user as the API describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SshUser {
    pub uuid: String,
    pub username: String,
    /// The devices the user may log onto; `None` when the API did not say (not verbose).
    pub device_uuids: Option<Vec<String>>,
    /// The user's status per metro/pod, sorted by pod name; empty when not given.
    pub metros: Vec<(String, PodStatus)>,
}

/// The state of an SSH user in one pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PodStatus {
    Active,
    Pending,
    Failed,
    /// A status the API documents no meaning for; kept verbatim.
    Other(String),
}

impl PodStatus {
    /// Case-insensitive: the API writes `ACTIVE`, examples elsewhere `Active`.
    pub fn parse(text: &str) -> PodStatus {
        match text.trim().to_ascii_uppercase().as_str() {
            "ACTIVE" => PodStatus::Active,
            "PENDING" => PodStatus::Pending,
            "FAILED" => PodStatus::Failed,
            _ => PodStatus::Other(text.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            PodStatus::Active => "ACTIVE",
            PodStatus::Pending => "PENDING",
            PodStatus::Failed => "FAILED",
            PodStatus::Other(text) => text,
        }
    }
}

impl fmt::Display for PodStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something about an SSH user that an auditor should look at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AuditFlag {
    /// Attached to no device: an orphan account.
    NoDevices,
    /// Failed in at least one pod.
    Failed,
    /// Still pending in at least one pod.
    Pending,
    /// A pod status the API does not document.
    UnknownStatus,
}

impl AuditFlag {
    pub const ALL: [AuditFlag; 4] = [
        AuditFlag::NoDevices,
        AuditFlag::Failed,
        AuditFlag::Pending,
        AuditFlag::UnknownStatus,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuditFlag::NoDevices => "no_devices",
            AuditFlag::Failed => "failed",
            AuditFlag::Pending => "pending",
            AuditFlag::UnknownStatus => "unknown_status",
        }
    }
}

impl fmt::Display for AuditFlag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl SshUser {
    /// The audit flags, in [`AuditFlag::ALL`] order. Without details (not verbose) only what
    /// is known is judged: a user is never called device-less because the API was not asked.
    pub fn flags(&self) -> Vec<AuditFlag> {
        let has = |wanted: fn(&PodStatus) -> bool| self.metros.iter().any(|(_, s)| wanted(s));
        let mut flags = Vec::new();
        if self.device_uuids.as_ref().is_some_and(Vec::is_empty) {
            flags.push(AuditFlag::NoDevices);
        }
        if has(|s| *s == PodStatus::Failed) {
            flags.push(AuditFlag::Failed);
        }
        if has(|s| *s == PodStatus::Pending) {
            flags.push(AuditFlag::Pending);
        }
        if has(|s| matches!(s, PodStatus::Other(_))) {
            flags.push(AuditFlag::UnknownStatus);
        }
        flags
    }

    pub fn device_count(&self) -> Option<usize> {
        self.device_uuids.as_ref().map(Vec::len)
    }
}

/// The filters of `GET /ne/v1/sshUsers`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListFilter {
    pub username: Option<String>,
    pub device_uuid: Option<String>,
    /// Ask for device ids and metro statuses (the API's `verbose`).
    pub verbose: bool,
    pub account_ucm_id: Option<String>,
}

/// One page of the listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page {
    pub offset: u64,
    /// The page size the API says it used, when it says.
    pub limit: Option<u64>,
    /// The API's total at the time of this page, when it says.
    pub total: Option<u64>,
    pub users: Vec<SshUser>,
    /// The size of the response body this page was parsed from.
    pub body_bytes: usize,
}

/// What `DELETE …/devices/{deviceUuid}` reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dissociation {
    /// The user had no other device and is gone.
    pub user_deleted: bool,
    /// The user can no longer log onto the device.
    pub association_deleted: bool,
}

/// The answer of the username availability check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Availability {
    Available,
    /// Taken or restricted; the API's reasons.
    Unavailable(Vec<ApiProblem>),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(devices: Option<Vec<&str>>, metros: &[(&str, &str)]) -> SshUser {
        SshUser {
            uuid: "u".into(),
            username: "n".into(),
            device_uuids: devices.map(|d| d.into_iter().map(String::from).collect()),
            metros: metros
                .iter()
                .map(|(k, v)| ((*k).to_owned(), PodStatus::parse(v)))
                .collect(),
        }
    }

    #[test]
    fn flags_follow_devices_and_pod_statuses() {
        assert_eq!(
            user(Some(vec![]), &[("da1.pod1", "FAILED")]).flags(),
            [AuditFlag::NoDevices, AuditFlag::Failed]
        );
        assert_eq!(
            user(Some(vec!["d"]), &[("sv", "Active"), ("sy", "PENDING")]).flags(),
            [AuditFlag::Pending]
        );
        assert_eq!(
            user(Some(vec!["d"]), &[("sv", "DELETING")]).flags(),
            [AuditFlag::UnknownStatus]
        );
        assert!(user(None, &[]).flags().is_empty());
    }
}
