//! The mock's data: seeded SSH users with devices and pod statuses, the virtual devices they
//! can be attached to, and the changes the API makes to them.

use std::collections::HashMap;

/// Pods the generated users live in (keys are opaque strings in the real API).
const PODS: [&str; 6] = [
    "sv5.pod1", "da1.pod1", "sy5.pod2", "sy4.pod1", "am1.pod2", "SV",
];

/// One SSH user as the mock keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MockUser {
    pub uuid: String,
    pub username: String,
    pub devices: Vec<String>,
    /// (pod, status) pairs; status is ACTIVE, PENDING or FAILED.
    pub metros: Vec<(String, String)>,
}

/// Why a change was refused: an HTTP status and the API's error code.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Refusal {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    pub property: Option<&'static str>,
}

fn refuse(status: u16, code: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        code,
        message: message.into(),
        property: None,
    }
}

pub(super) struct Store {
    users: Vec<MockUser>,
    /// Device uuid → whether it is in a state that accepts SSH users.
    devices: HashMap<String, bool>,
    device_order: Vec<String>,
    rng: fastrand::Rng,
    /// Users made by drift, for their names.
    drift_serial: u64,
}

impl Store {
    pub(super) fn generate(users: usize, seed: u64) -> Store {
        let mut rng = fastrand::Rng::with_seed(seed ^ 0x45_51_55_49_4E_49_58);
        let device_count = (users / 3).max(20);
        let device_order: Vec<String> = (0..device_count).map(|_| uuid(&mut rng)).collect();
        // Every 20th device is not provisioned: it accepts no new SSH user.
        let devices = device_order
            .iter()
            .enumerate()
            .map(|(i, d)| (d.clone(), i % 20 != 19))
            .collect();
        let mut store = Store {
            users: Vec::with_capacity(users),
            devices,
            device_order,
            rng,
            drift_serial: 0,
        };
        for i in 0..users {
            let user = store.random_user(format!("user{:05}", i + 1));
            store.users.push(user);
        }
        store
    }

    /// A user with 0–3 devices (4 % have none) in 1–2 pods (5 % pending, 3 % failed).
    fn random_user(&mut self, username: String) -> MockUser {
        let rng = &mut self.rng;
        let device_count = if rng.u8(..100) < 4 {
            0
        } else {
            rng.usize(1..=3)
        };
        let mut devices: Vec<String> = (0..device_count)
            .map(|_| self.device_order[rng.usize(..self.device_order.len())].clone())
            .collect();
        // A user is on a device once (the draws may repeat one, not only back to back).
        let mut seen = std::collections::HashSet::new();
        devices.retain(|d| seen.insert(d.clone()));
        let mut metros: Vec<(String, String)> = Vec::new();
        for _ in 0..rng.usize(1..=2) {
            let pod = PODS[rng.usize(..PODS.len())].to_owned();
            let status = match rng.u8(..100) {
                0..=4 => "PENDING",
                5..=7 => "FAILED",
                _ => "ACTIVE",
            };
            if !metros.iter().any(|(p, _)| *p == pod) {
                metros.push((pod, status.to_owned()));
            }
        }
        MockUser {
            uuid: uuid(rng),
            username,
            devices,
            metros,
        }
    }

    pub(super) fn users(&self) -> &[MockUser] {
        &self.users
    }

    pub(super) fn find(&self, uuid: &str) -> Option<&MockUser> {
        self.users.iter().find(|u| u.uuid == uuid)
    }

    pub(super) fn username_taken(&self, username: &str) -> bool {
        self.users
            .iter()
            .any(|u| u.username.eq_ignore_ascii_case(username))
    }

    /// An active device and one that refuses SSH users.
    pub(super) fn sample_devices(&self) -> (String, String) {
        let pick = |active: bool| {
            self.device_order
                .iter()
                .find(|d| self.devices.get(*d) == Some(&active))
                .cloned()
                .unwrap_or_default()
        };
        (pick(true), pick(false))
    }

    pub(super) fn active_devices(&self) -> Vec<String> {
        let active = |d: &&String| self.devices.get(*d) == Some(&true);
        self.device_order.iter().filter(active).cloned().collect()
    }

    /// Adds (positive) or removes (negative) users at the front of the list.
    pub(super) fn drift(&mut self, by: i64) {
        if by < 0 {
            let n = (by.unsigned_abs() as usize).min(self.users.len());
            self.users.drain(..n);
            return;
        }
        for _ in 0..by {
            self.drift_serial += 1;
            let user = self.random_user(format!("drift{:05}", self.drift_serial));
            self.users.insert(0, user);
        }
    }

    pub(super) fn create(
        &mut self,
        username: &str,
        password: &str,
        device: &str,
    ) -> Result<String, Refusal> {
        check_username(username)?;
        check_password(password)?;
        if self.username_taken(username) {
            return Err(Refusal {
                property: Some("username"),
                ..refuse(
                    400,
                    "SSH_USER_ALREADY_EXISTS",
                    "The SSH user already exists",
                )
            });
        }
        self.check_device(device)?;
        let user = MockUser {
            uuid: uuid(&mut self.rng),
            username: username.to_owned(),
            devices: vec![device.to_owned()],
            metros: vec![(PODS[0].to_owned(), "ACTIVE".to_owned())],
        };
        let id = user.uuid.clone();
        self.users.push(user);
        Ok(id)
    }

    pub(super) fn set_password(&mut self, uuid: &str, password: &str) -> Result<(), Refusal> {
        if self.find(uuid).is_none() {
            return Err(not_found("SSH user", uuid));
        }
        check_password(password)
    }

    pub(super) fn attach(&mut self, user: &str, device: &str) -> Result<(), Refusal> {
        if !self.devices.contains_key(device) {
            return Err(not_found("virtual device", device));
        }
        let index = self.index(user)?;
        if self.users[index].devices.iter().any(|d| d == device) {
            return Err(refuse(
                400,
                "SSH_APPEND_DEVICE_ASSOCIATION_FAILED",
                "The SSH user is already associated with this device",
            ));
        }
        self.check_device(device)?;
        self.users[index].devices.push(device.to_owned());
        Ok(())
    }

    /// The user exists and is on the device.
    pub(super) fn is_attached(&self, user: &str, device: &str) -> bool {
        self.find(user)
            .is_some_and(|u| u.devices.iter().any(|d| d == device))
    }

    /// `(user deleted, association deleted)`.
    pub(super) fn detach(&mut self, user: &str, device: &str) -> Result<(bool, bool), Refusal> {
        let index = self.index(user)?;
        let devices = &mut self.users[index].devices;
        let Some(at) = devices.iter().position(|d| d == device) else {
            return Err(refuse(
                400,
                "SSH_DELETE_USER_FAILED",
                "The SSH user is not associated with this device",
            ));
        };
        devices.remove(at);
        let last = devices.is_empty();
        if last {
            self.users.remove(index);
        }
        Ok((last, true))
    }

    fn index(&self, uuid: &str) -> Result<usize, Refusal> {
        self.users
            .iter()
            .position(|u| u.uuid == uuid)
            .ok_or_else(|| not_found("SSH user", uuid))
    }

    fn check_device(&self, device: &str) -> Result<(), Refusal> {
        match self.devices.get(device) {
            Some(true) => Ok(()),
            Some(false) => Err(refuse(
                400,
                "SSH_USER_DEVICE_STATE_NOT_VALID",
                "The device is not in a state that accepts SSH users",
            )),
            None => Err(Refusal {
                property: Some("deviceUuid"),
                ..refuse(400, "VIRTUAL_DEVICE_NOT_FOUND", "No such virtual device")
            }),
        }
    }
}

fn not_found(what: &str, id: &str) -> Refusal {
    refuse(404, "RESOURCE_NOT_FOUND", format!("No {what} {id}"))
}

/// 3–32 characters: letters, digits, `-` and `_` (the schema's rule).
pub(super) fn check_username(username: &str) -> Result<(), Refusal> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    if (3..=32).contains(&username.chars().count()) && username.chars().all(allowed) {
        return Ok(());
    }
    Err(Refusal {
        property: Some("username"),
        ..refuse(
            400,
            "INVALID_REQUEST_FORMAT",
            "At least 3 and up to 32 alphanumeric characters; - and _ allowed",
        )
    })
}

/// 6–12 characters: letters, digits, `-`, `_`, `$`, `@` (the schema's rule).
fn check_password(password: &str) -> Result<(), Refusal> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-_$@".contains(c);
    if (6..=12).contains(&password.chars().count()) && password.chars().all(allowed) {
        return Ok(());
    }
    Err(Refusal {
        property: Some("password"),
        ..refuse(
            400,
            "INVALID_REQUEST_FORMAT",
            "At least 6 and up to 12 alphanumeric characters; - _ $ @ allowed",
        )
    })
}

/// A random version-4 UUID in its usual text form.
fn uuid(rng: &mut fastrand::Rng) -> String {
    let mut b = [0u8; 16];
    rng.fill(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex = crate::digest::hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_seeded_and_varied() {
        let a = Store::generate(500, 7);
        let b = Store::generate(500, 7);
        assert_eq!(a.users(), b.users());
        let orphans = a.users().iter().filter(|u| u.devices.is_empty()).count();
        assert!((5..50).contains(&orphans), "{orphans}");
        let failed = a
            .users()
            .iter()
            .filter(|u| u.metros.iter().any(|(_, s)| s == "FAILED"))
            .count();
        assert!(failed > 0);
        let mut uuids: Vec<_> = a.users().iter().map(|u| &u.uuid).collect();
        uuids.sort();
        uuids.dedup();
        assert_eq!(uuids.len(), 500);
    }

    #[test]
    fn the_last_detach_deletes_the_user() {
        let mut store = Store::generate(0, 1);
        let (active, inactive) = store.sample_devices();
        let id = store.create("alice", "pass12", &active);
        let Ok(id) = id else { panic!("{id:?}") };
        assert_eq!(
            store.create("ALICE", "pass12", &active).map_err(|r| r.code),
            Err("SSH_USER_ALREADY_EXISTS")
        );
        assert_eq!(
            store.create("bob", "pass12", &inactive).map_err(|r| r.code),
            Err("SSH_USER_DEVICE_STATE_NOT_VALID")
        );
        assert_eq!(store.detach(&id, &active), Ok((true, true)));
        assert!(store.find(&id).is_none());
    }
}
