//! `history push SPOOL --to URL`: the runs a scanner kept in its local spool (an SQLite
//! history, written while the central store could not be reached) uploaded to the central
//! PostgreSQL history, oldest first, each in its own transaction, each at most once.
//!
//! A spooled run is known in the central store by a uid made from what identifies it (its
//! scope, command, inventory fingerprint and times), so a push repeated, or interrupted
//! and started again, records nothing twice. Each run's devices are replayed against the
//! central store's previous run of the scope, so its periods and drift join the central
//! history as if the run had been recorded there.

use std::path::Path;

use rusqlite::params;
use sshfleet_report::record::WaiverTag;
use sshfleet_report::{Baseline, DeviceRecord, Status, Summary};

use crate::pg::Pg;
use crate::pg_record::Origin;
use crate::{Ending, HistoryError, Period, RunInfo, Sqlite};

/// What a push did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pushed {
    /// Runs recorded in the central store now.
    pub recorded: u64,
    /// Runs it held already (an earlier push).
    pub already: u64,
    /// Runs of the spool that never finished (their process died), left out.
    pub unfinished: u64,
}

/// A spooled run, as the spool's row has it.
struct Spooled {
    id: i64,
    command: String,
    scope: String,
    fingerprint: String,
    shard: Option<String>,
    target: Option<String>,
    started_at: String,
    finished_at: Option<String>,
    interrupted: bool,
}

impl Spooled {
    /// The uid the central store knows this run by.
    fn uid(&self) -> String {
        let identity = format!(
            "{:?} {:?} {:?} {:?} {:?} {:?} {:?}",
            self.command,
            self.scope,
            self.fingerprint,
            self.shard,
            self.target,
            self.started_at,
            self.finished_at,
        );
        format!(
            "spool:{}",
            sshfleet_core::hash::sha256_hex(identity.to_string().as_bytes())
        )
    }
}

/// Uploads the runs of the spool at `spool` to the PostgreSQL history at `to`.
pub fn push(spool: &Path, to: &Path) -> Result<Pushed, HistoryError> {
    let Some(url) = to.to_str().filter(|u| crate::pg::is_url(u)) else {
        return Err(HistoryError::Postgres {
            store: to.display().to_string(),
            reason: "push goes to a postgresql:// URL".into(),
        });
    };
    let source = Sqlite::open(spool)?;
    let runs = spooled(&source).map_err(|e| source.err(e))?;
    let mut pushed = Pushed::default();
    for run in &runs {
        if run.finished_at.is_none() {
            pushed.unfinished += 1;
            continue;
        }
        if push_run(&source, run, url)? {
            pushed.recorded += 1;
        } else {
            pushed.already += 1;
        }
    }
    Ok(pushed)
}

/// Every run of the spool, oldest first.
fn spooled(source: &Sqlite) -> Result<Vec<Spooled>, rusqlite::Error> {
    let mut stmt = source.conn.prepare(
        "SELECT id, command, scope, inventory_fingerprint, shard, target, started_at,
                finished_at, interrupted
         FROM runs ORDER BY id",
    )?;
    let rows = stmt.query_map(params![], |r| {
        Ok(Spooled {
            id: r.get(0)?,
            command: r.get(1)?,
            scope: r.get(2)?,
            fingerprint: r.get(3)?,
            shard: r.get(4)?,
            target: r.get(5)?,
            started_at: r.get(6)?,
            finished_at: r.get(7)?,
            interrupted: r.get(8)?,
        })
    })?;
    rows.collect()
}

/// Records one spooled run centrally, in one transaction; false when it was there already.
fn push_run(source: &Sqlite, run: &Spooled, url: &str) -> Result<bool, HistoryError> {
    let info = RunInfo {
        command: "scan",
        scope: run.scope.clone(),
        inventory_fingerprint: run.fingerprint.clone(),
        shard: run.shard.clone(),
        target: run.target.clone(),
    };
    let origin = Origin {
        command: Some(run.command.clone()),
        uid: Some(run.uid()),
        started_at: run.started_at.clone(),
        finished_at: run.finished_at.clone(),
    };
    let Some((mut recorder, previous)) = Pg::open(url)?.begin(&info, origin)? else {
        return Ok(false);
    };
    let mut baseline = Baseline::new(previous);
    let mut summary = Summary::default();
    for period in source.run_periods(&run.scope, run.id)? {
        let mut rec = device_of(&period, run);
        let before = baseline.annotate(&mut rec).cloned();
        recorder.record(&rec, before.as_ref());
        summary.add(&rec);
    }
    let ending = if run.interrupted {
        Ending::Interrupted
    } else {
        Ending::Finished
    };
    recorder.finish(&summary, ending)?;
    Ok(true)
}

/// The device as the spooled run saw it: the state of its period, checked at the period's
/// time for this run.
fn device_of(period: &Period, run: &Spooled) -> DeviceRecord {
    let status = Status::parse(&period.status).unwrap_or(Status::ProtocolError);
    let mut rec = DeviceRecord::new(
        period.address.clone(),
        period.name.clone(),
        period.site.clone(),
        status,
    );
    rec.serial.clone_from(&period.serial);
    rec.ssh_enabled = period.ssh_enabled;
    rec.compliant = period.compliant;
    rec.waiver = period.waiver.as_deref().map(WaiverTag::parse);
    rec.checked_at = if period.run_last == run.id {
        period.last_seen.clone()
    } else if period.run_first == run.id {
        period.first_seen.clone()
    } else {
        run.started_at.clone()
    };
    rec
}
