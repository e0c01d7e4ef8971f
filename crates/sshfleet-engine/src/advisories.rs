//! The vendor advisories of a run (`--device-info`, `--advisories FILE`): loaded and checked
//! before anything runs, then matched against the AXIS OS version each device reports. Only
//! that version is compared, never an SSH banner.

use std::path::Path;

pub use sshfleet_axis::advisories::{Advisories, BUILTIN_ORIGIN};
use sshfleet_report::advisory::AdvisoryCheck;

/// The built-in advisories, with the user's file when one is named. A file that cannot be
/// used refuses the run (an input error: exit 2), naming the file and the line.
pub fn load(user: Option<&Path>) -> anyhow::Result<Advisories> {
    Advisories::load(user).map_err(|e| anyhow::anyhow!("--advisories: {e}"))
}

/// What the advisories say of a device that reported `firmware`: the ids whose ranges hold
/// its AXIS OS version, or `VersionUnknown` when it reported none, or a text that is not
/// one (which is not "no advisories").
pub fn check(advisories: &Advisories, firmware: Option<&str>) -> AdvisoryCheck {
    let Some(firmware) = firmware else {
        return AdvisoryCheck::VersionUnknown;
    };
    match advisories.for_firmware(firmware) {
        Ok(applying) => AdvisoryCheck::Matched {
            ids: applying.iter().map(|a| a.id.clone()).collect(),
            needs_ssh: applying
                .iter()
                .filter(|a| a.needs_ssh)
                .map(|a| a.id.clone())
                .collect(),
            unknown: Vec::new(),
        },
        Err(e) => {
            tracing::debug!(error = %e, "no advisory matched");
            AdvisoryCheck::VersionUnknown
        }
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    #[test]
    fn a_version_in_a_range_gets_its_advisories_and_an_unreadable_one_is_unknown() {
        let advisories = load(None).unwrap();
        let check_of = |fw| check(&advisories, fw);
        let affected = check_of(Some("12.5.1"));
        assert!(affected.ids().iter().any(|id| id == "CVE-2026-1185"));
        assert_eq!(affected.needing_ssh(), ["CVE-2026-1185"]);
        let fixed = check_of(Some("12.11.80"));
        assert!(fixed.ids().is_empty(), "{fixed:?}");
        assert_eq!(
            fixed,
            AdvisoryCheck::Matched {
                ids: vec![],
                needs_ssh: vec![],
                unknown: vec![]
            }
        );
        assert_eq!(check_of(Some("12.5.1-beta")), AdvisoryCheck::VersionUnknown);
        assert_eq!(check_of(None), AdvisoryCheck::VersionUnknown);
    }
}
