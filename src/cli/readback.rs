//! Reports read back (`report merge`, `report html REPORT`): the advisories their records are
//! read against, and what is said of the advisory ids those do not know.

use std::path::Path;

use sshfleet_core::inert;
use sshfleet_engine::advisories::{Advisories, BUILTIN_ORIGIN};
use sshfleet_report::advisory::AdvisorySummary;

/// The advisories a report is read back against: the built-in set, with the file
/// `--advisories` names (an unusable file refuses the command, naming it).
pub(super) fn advisories(file: Option<&Path>) -> anyhow::Result<Advisories> {
    sshfleet_engine::advisories::load(file)
}

/// Warns of every advisory id the records named that `file` (with the built-in set) does not
/// know: each was counted as needing SSH, a finding where SSH is on or reachable. Said even
/// with `--quiet`: it may be why the command found something.
pub(super) fn say_unknown_advisories(summary: &AdvisorySummary, file: Option<&Path>) {
    let unknown = summary.unknown_ids();
    if unknown.is_empty() {
        return;
    }
    let list: Vec<String> = unknown
        .iter()
        .map(|(id, c)| format!("{} ({} device(s))", inert::line(id), c.devices))
        .collect();
    let in_use = match file {
        Some(path) => format!("--advisories {}", inert::line(&path.display().to_string())),
        None => BUILTIN_ORIGIN.to_owned(),
    };
    diagln!(
        "warning: advisory {} not in the advisories in use ({in_use}): whether exploiting it needs SSH is unknown, so it is counted as needing SSH (a finding where SSH is on or reachable); give the advisories file the scan used with --advisories FILE",
        list.join(", ")
    );
}
