//! The credential circuit breaker: an account (user name and password source) that every
//! device reached so far rejected stops being tried, so a wrong password costs a handful of
//! failed logins instead of one on every camera of the fleet (AXIS OS blocks brute force).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, PoisonError};

/// Rejections, with no acceptance, after which an account is no longer tried.
pub(crate) const DEFAULT_THRESHOLD: u32 = 10;

/// What a device made of the credentials it was sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CredentialVerdict {
    /// It answered a request that carried them.
    Accepted,
    /// It answered them with a 401 (and they had never worked on it).
    Rejected,
    /// They were never judged: no answer, no authentication, or not sent at all.
    Untested,
}

/// Where an account's password comes from: what a person must check when it is wrong.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PasswordOrigin {
    /// The run's password (`--password-env` or `--password-file`), described.
    Run(String),
    /// A row's `password_env` variable.
    RowVariable(String),
}

impl fmt::Display for PasswordOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PasswordOrigin::Run(described) => f.write_str(described),
            PasswordOrigin::RowVariable(var) => {
                write!(
                    f,
                    "the environment variable {var} (the inventory's password_env)"
                )
            }
        }
    }
}

/// One account: the user name and where its password comes from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Account {
    pub username: String,
    pub password: PasswordOrigin,
}

impl fmt::Display for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} with the password from {}",
            self.username, self.password
        )
    }
}

/// Whether the breaker watches accounts at all (`--no-auth-breaker` turns it off).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerMode {
    /// Stop an account after this many rejections and no acceptance.
    After(u32),
    /// Try every device whatever the others answered.
    Off,
}

impl Default for BreakerMode {
    fn default() -> BreakerMode {
        BreakerMode::After(DEFAULT_THRESHOLD)
    }
}

#[derive(Default)]
struct Tally {
    rejected: u32,
    accepted: bool,
    /// Devices not tried because of this account.
    not_tried: u64,
}

impl Tally {
    fn open(&self, threshold: u32) -> bool {
        self.accepted || self.rejected < threshold
    }
}

/// An account the breaker stopped using, for the end of the run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoppedAccount {
    pub account: Account,
    /// Devices that rejected it.
    pub rejected: u32,
    /// Devices not tried with it.
    pub not_tried: u64,
}

/// Counts, per account, the devices that rejected and accepted it. Only completed devices
/// count: with hundreds in flight, an account is stopped once `threshold` devices have
/// rejected it and none accepted it, and tried again as soon as one in flight accepts it.
pub struct CredentialBreaker {
    mode: BreakerMode,
    accounts: Mutex<HashMap<Account, Tally>>,
}

impl CredentialBreaker {
    pub fn new(mode: BreakerMode) -> CredentialBreaker {
        CredentialBreaker {
            mode,
            accounts: Mutex::new(HashMap::new()),
        }
    }

    /// `Err` with the reason when `account` is not to be tried (the device is then counted
    /// as not tried).
    pub fn admit(&self, account: &Account) -> Result<(), String> {
        let BreakerMode::After(threshold) = self.mode else {
            return Ok(());
        };
        let mut accounts = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(tally) = accounts.get_mut(account) else {
            return Ok(());
        };
        if tally.open(threshold) {
            return Ok(());
        }
        tally.not_tried = tally.not_tried.saturating_add(1);
        Err(format!(
            "not tried: the first {threshold} devices that answered rejected the account {account} and none accepted it (check it; --no-auth-breaker tries every device)"
        ))
    }

    /// What a device that was tried made of `account`.
    pub fn observe(&self, account: &Account, verdict: CredentialVerdict) {
        if self.mode == BreakerMode::Off || verdict == CredentialVerdict::Untested {
            return;
        }
        let mut accounts = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
        let tally = accounts.entry(account.clone()).or_default();
        match verdict {
            CredentialVerdict::Accepted => tally.accepted = true,
            CredentialVerdict::Rejected => tally.rejected = tally.rejected.saturating_add(1),
            CredentialVerdict::Untested => {}
        }
    }

    /// The accounts that kept at least one device from being tried, by user name.
    pub fn stopped(&self) -> Vec<StoppedAccount> {
        let accounts = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
        let mut stopped: Vec<StoppedAccount> = accounts
            .iter()
            .filter(|(_, tally)| tally.not_tried > 0)
            .map(|(account, tally)| StoppedAccount {
                account: account.clone(),
                rejected: tally.rejected,
                not_tried: tally.not_tried,
            })
            .collect();
        stopped.sort_by(|a, b| a.account.username.cmp(&b.account.username));
        stopped
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    fn account(user: &str) -> Account {
        Account {
            username: user.to_owned(),
            password: PasswordOrigin::Run("the environment variable SSHFLEET_PASSWORD".into()),
        }
    }

    #[test]
    fn an_account_rejected_by_the_first_ten_devices_is_not_tried_again() {
        let breaker = CredentialBreaker::new(BreakerMode::default());
        let root = account("root");
        for _ in 0..9 {
            breaker.admit(&root).unwrap();
            breaker.observe(&root, CredentialVerdict::Rejected);
        }
        // Devices that never judged the password do not count either way.
        breaker.observe(&root, CredentialVerdict::Untested);
        assert!(breaker.admit(&root).is_ok(), "nine rejections are not ten");
        breaker.observe(&root, CredentialVerdict::Rejected);
        let why = breaker.admit(&root).unwrap_err();
        assert_eq!(why, "not tried: the first 10 devices that answered rejected the account \"root\" with the password from the environment variable SSHFLEET_PASSWORD and none accepted it (check it; --no-auth-breaker tries every device)");
        assert!(breaker.admit(&account("admin")).is_ok(), "per account");
        let stopped = breaker.stopped();
        assert_eq!(stopped.len(), 1);
        assert_eq!((stopped[0].rejected, stopped[0].not_tried), (10, 1));
    }

    #[test]
    fn one_acceptance_keeps_the_account_in_use_whenever_it_comes() {
        let breaker = CredentialBreaker::new(BreakerMode::default());
        let root = account("root");
        breaker.observe(&root, CredentialVerdict::Accepted);
        for _ in 0..50 {
            breaker.observe(&root, CredentialVerdict::Rejected);
        }
        assert!(breaker.admit(&root).is_ok());
        let late = account("late");
        for _ in 0..10 {
            breaker.observe(&late, CredentialVerdict::Rejected);
        }
        assert!(breaker.admit(&late).is_err());
        // A device still in flight when the account was stopped accepted it after all.
        breaker.observe(&late, CredentialVerdict::Accepted);
        assert!(breaker.admit(&late).is_ok());
    }

    #[test]
    fn off_tries_every_device() {
        let breaker = CredentialBreaker::new(BreakerMode::Off);
        let root = account("root");
        for _ in 0..100 {
            breaker.observe(&root, CredentialVerdict::Rejected);
        }
        assert!(breaker.admit(&root).is_ok());
        assert!(breaker.stopped().is_empty());
    }
}
