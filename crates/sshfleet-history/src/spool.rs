//! The spool's side of a central history: what names a run wherever it is recorded (its
//! uid), and a run whose central store was lost while it was being recorded, kept instead
//! in the spool (an SQLite history) for `history push`.
//!
//! A run recorded into PostgreSQL is one transaction from its start to its commit, so a
//! connection lost in between (a server restarted, a network cut) loses everything sent.
//! The central recorder therefore holds what the history needs of each device (a few
//! fields, not the whole record) until the commit, and can then record the run into the
//! spool as it was seen, with its own start time. Its uid is made from what identifies the
//! run at its start, so the central store and the spool know it by the same uid: a run
//! whose commit reached the server although its answer was lost is found there when pushed,
//! and is not recorded twice.

use std::path::Path;

use sshfleet_report::record::WaiverTag;
use sshfleet_report::{Baseline, DeviceRecord, Status, Summary};

use crate::{Ending, HistoryError, RunInfo, Sqlite};

/// The uid of a run: made from its command, scope, inventory fingerprint, shard, target and
/// start time (to the millisecond), which together name one run; the central store refuses
/// a second run of the same uid.
pub(crate) fn run_uid(
    command: &str,
    scope: &str,
    fingerprint: &str,
    shard: Option<&str>,
    target: Option<&str>,
    started_at: &str,
) -> String {
    let identity =
        format!("{command:?} {scope:?} {fingerprint:?} {shard:?} {target:?} {started_at:?}");
    format!(
        "run:{}",
        sshfleet_core::hash::sha256_hex(identity.as_bytes())
    )
}

/// What the history keeps of a device of a run: its state and when it was checked.
pub(crate) struct Kept {
    address: String,
    serial: Option<String>,
    name: String,
    site: String,
    status: Status,
    ssh_enabled: Option<bool>,
    compliant: Option<bool>,
    waiver: Option<String>,
    checked_at: String,
    ssh_host_key: Option<String>,
}

impl Kept {
    pub(crate) fn of(rec: &DeviceRecord) -> Kept {
        Kept {
            address: rec.address.clone(),
            serial: rec.serial.clone(),
            name: rec.name.clone(),
            site: rec.site.clone(),
            status: rec.status,
            ssh_enabled: rec.ssh_enabled,
            compliant: rec.compliant,
            waiver: rec.waiver.as_ref().map(|w| w.as_str().to_owned()),
            checked_at: rec.checked_at.clone(),
            ssh_host_key: rec.ssh.host_key.clone(),
        }
    }

    /// The device as a record carrying what the history stores.
    fn into_record(self) -> DeviceRecord {
        let mut rec = DeviceRecord::new(self.address, self.name, self.site, self.status);
        rec.serial = self.serial;
        rec.ssh_enabled = self.ssh_enabled;
        rec.compliant = self.compliant;
        rec.waiver = self.waiver.as_deref().map(WaiverTag::parse);
        rec.checked_at = self.checked_at;
        rec.ssh.host_key = self.ssh_host_key;
        rec
    }
}

/// A run whose central store was lost before its commit, as its recorder held it.
pub(crate) struct LostRun {
    pub(crate) info: RunInfo,
    pub(crate) started_at: String,
    pub(crate) devices: Vec<Kept>,
}

impl LostRun {
    /// Records the run into the spool at `spool`, in one transaction, each device against
    /// the spool's previous run of the scope (so its periods join the spool's); the run's
    /// counts are the run's own (`summary`). The run's id in the spool.
    pub(crate) fn record_into(
        self,
        spool: &Path,
        summary: &Summary,
        ending: Ending,
    ) -> Result<i64, HistoryError> {
        let (mut recorder, previous) =
            Sqlite::open(spool)?.begin_at(&self.info, self.started_at)?;
        let mut baseline = Baseline::new(previous);
        for device in self.devices {
            let mut rec = device.into_record();
            let before = baseline.annotate(&mut rec).cloned();
            recorder.record(&rec, before.as_ref());
        }
        recorder.finish(summary, ending)
    }
}
