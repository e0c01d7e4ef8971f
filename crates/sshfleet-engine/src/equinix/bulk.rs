//! The bulk detach of one username from every device: list the entries whose username
//! matches exactly, pair each with its devices, and detach the pairs one at a time (paced by
//! the client's write limiter), handing back a typed outcome per pair. Never prints.

use std::sync::Arc;

use tokio::sync::mpsc;

use sshfleet_core::shutdown::Shutdown;
use sshfleet_equinix::{
    Dissociation, EquinixClient, EquinixError, ListFilter, PageFetcher, SshUser,
};

/// Users in flight between the fetcher and the gathering of matches.
const CHANNEL_CAPACITY: usize = 1024;
/// Page size and pages at once of the listing.
const PAGE_SIZE: u64 = 100;
const PAGE_CONCURRENCY: usize = 4;

/// One detach to make: a user entry and one of its devices (as a saved plan lists it).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Target {
    pub user_uuid: String,
    pub username: String,
    pub device_uuid: String,
    /// This detach removes the user's last device: the API deletes the user with it.
    /// Left out of plan files when false, so plans written before it still verify.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deletes_user: bool,
}

/// Whether a bulk detach sends its detaches or only lists them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `--apply`: each target is detached.
    Apply,
    /// Nothing is sent; each target is `Planned`.
    DryRun,
}

/// What became of one target.
#[derive(Debug)]
pub enum Outcome {
    /// A dry run: nothing was sent.
    Planned,
    Detached(Dissociation),
    Failed(EquinixError),
}

/// How a run of the targets ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finished {
    /// Every target was gone through; `failed` of them failed.
    Done { failed: usize },
    /// The stop signal came first; the targets after it were left alone.
    Interrupted,
}

/// The plan of a bulk detach: how many entries carry the name, and their (user, device)
/// pairs in listing order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BulkDetach {
    pub entries: usize,
    pub targets: Vec<Target>,
}

impl BulkDetach {
    /// Lists the entries named `username` and plans their detaches. A listing that fails
    /// part way is an error: a partial list must not pass for every device.
    pub async fn plan(
        client: Arc<EquinixClient>,
        username: &str,
    ) -> Result<BulkDetach, EquinixError> {
        let users = users_named(client, username).await?;
        Ok(BulkDetach::from_users(&users))
    }

    pub fn from_users(users: &[SshUser]) -> BulkDetach {
        BulkDetach {
            entries: users.len(),
            targets: targets(users),
        }
    }

    /// Goes through the targets in order, detaching each in [`Mode::Apply`] (else each is
    /// `Planned`), and hands every outcome to `each` as it comes: an error from `each` ends
    /// the run at once. `stop` is checked before each target.
    pub async fn run<E>(
        &self,
        client: &EquinixClient,
        mode: Mode,
        stop: &Shutdown,
        mut each: impl FnMut(&Target, Outcome) -> Result<(), E>,
    ) -> Result<Finished, E> {
        let mut failed = 0_usize;
        for target in &self.targets {
            if stop.is_triggered() {
                return Ok(Finished::Interrupted);
            }
            let outcome = match mode {
                Mode::Apply => detach(client, target).await,
                Mode::DryRun => Outcome::Planned,
            };
            if matches!(outcome, Outcome::Failed(_)) {
                failed = failed.saturating_add(1);
            }
            each(target, outcome)?;
        }
        Ok(Finished::Done { failed })
    }
}

/// Detaches one target.
pub async fn detach(client: &EquinixClient, target: &Target) -> Outcome {
    match client.detach(&target.user_uuid, &target.device_uuid).await {
        Ok(done) => Outcome::Detached(done),
        Err(e) => Outcome::Failed(e),
    }
}

/// Every (user, device) pair of `users`, in listing order; the last pair of each user
/// deletes it (every one of its devices is detached).
pub fn targets(users: &[SshUser]) -> Vec<Target> {
    users
        .iter()
        .flat_map(|u| {
            let devices = u.device_uuids.as_deref().unwrap_or_default();
            devices.iter().enumerate().map(move |(i, d)| Target {
                user_uuid: u.uuid.clone(),
                username: u.username.clone(),
                device_uuid: d.clone(),
                deletes_user: i + 1 == devices.len(),
            })
        })
        .collect()
}

/// The users named `username` exactly, with their devices.
pub(crate) async fn users_named(
    client: Arc<EquinixClient>,
    username: &str,
) -> Result<Vec<SshUser>, EquinixError> {
    let filter = ListFilter {
        username: Some(username.to_owned()),
        verbose: true,
        ..ListFilter::default()
    };
    let (tx, mut rx) = mpsc::channel(CHANNEL_CAPACITY);
    // Fetched and gathered in this task: a fetcher that panics takes the caller with it
    // rather than leaving a partial list that looks complete.
    let fetch =
        PageFetcher::new(client, filter, PAGE_SIZE, PAGE_CONCURRENCY).run(tx, Shutdown::never());
    let gather = async {
        let mut found = Vec::new();
        while let Some(user) = rx.recv().await {
            // The filter's matching rules are the API's; only an exact match is acted on.
            if user.username == username {
                found.push(user);
            }
        }
        found
    };
    let (stats, found) = tokio::join!(fetch, gather);
    match stats.error {
        Some(e) => Err(e),
        None => Ok(found),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(uuid: &str, devices: Option<&[&str]>) -> SshUser {
        SshUser {
            uuid: uuid.to_owned(),
            username: "ops".to_owned(),
            device_uuids: devices.map(|d| d.iter().map(|s| (*s).to_owned()).collect()),
            metros: Vec::new(),
        }
    }

    fn pair(user: &str, device: &str) -> Target {
        Target {
            user_uuid: user.to_owned(),
            username: "ops".to_owned(),
            device_uuid: device.to_owned(),
            deletes_user: false,
        }
    }

    #[test]
    fn bulk_targets_pair_each_entry_with_its_devices_in_order() {
        let users = [
            user("u1", Some(&["d1", "d2"])),
            user("u2", Some(&[])),
            user("u3", None),
            user("u4", Some(&["d1"])),
        ];
        let plan = BulkDetach::from_users(&users);
        assert_eq!(plan.entries, 4);
        assert_eq!(
            plan.targets,
            [
                pair("u1", "d1"),
                Target {
                    deletes_user: true,
                    ..pair("u1", "d2")
                },
                Target {
                    deletes_user: true,
                    ..pair("u4", "d1")
                },
            ]
        );
        assert_eq!(BulkDetach::from_users(&[]).targets, []);
    }
}
