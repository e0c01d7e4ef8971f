//! `history push SPOOL --to URL`: the runs a scanner kept in its local spool (an SQLite
//! history, written while the central store could not be reached) uploaded to the central
//! PostgreSQL history, oldest first, each in its own transaction, each at most once, and
//! each removed from the spool once the central store has committed it.
//!
//! A spooled run is known in the central store by a uid made from what identifies it (its
//! scope, command, inventory fingerprint and start; see `spool::run_uid`), the uid a run
//! begun centrally has too, so a push repeated, or interrupted between the central commit
//! and the spool's removal and started again, records nothing twice. Each run's devices are
//! replayed against the central store's previous run of the scope, so its periods and drift
//! join the central history as if the run had been recorded there.

use std::path::Path;

use rusqlite::params;
use sshfleet_report::{Baseline, DeviceRecord, Summary};

use crate::pg::Pg;
use crate::pg_record::{Begun, Origin};
use crate::spool::run_uid;
use crate::{Ending, HistoryError, Period, RunInfo, Sqlite};

/// What a push did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pushed {
    /// Runs recorded in the central store now.
    pub recorded: u64,
    /// Runs it held already (an earlier push, or a commit whose answer was lost).
    pub already: u64,
    /// Runs of the spool that never finished (their process died), left in it.
    pub unfinished: u64,
    /// Runs the spool holds afterwards (the unfinished ones).
    pub left: u64,
}

/// What became of one spooled run in the central store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sent {
    /// Recorded now.
    Recorded,
    /// A run of its uid was there already; nothing was recorded.
    AlreadyThere,
}

/// One spooled run pushed, and then removed from the spool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushedRun {
    /// Its id in the spool.
    pub spool_run: i64,
    /// Its id in the central store.
    pub central_run: i64,
    pub scope: String,
    pub started_at: String,
    pub uid: String,
    pub sent: Sent,
}

/// A push that stopped: why, and how many finished runs it left in the spool (unknown when
/// the spool itself could not be read).
#[derive(Debug, thiserror::Error)]
#[error("{error}{}", left.map(|n| format!("; {n} run(s) were not pushed and are left in the spool")).unwrap_or_default())]
pub struct PushFailed {
    pub error: HistoryError,
    pub left: Option<u64>,
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
        run_uid(
            &self.command,
            &self.scope,
            &self.fingerprint,
            self.shard.as_deref(),
            self.target.as_deref(),
            &self.started_at,
        )
    }

    /// The uid an earlier sshfleet (before uids were made at a run's start) gave it.
    fn former_uid(&self) -> String {
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

/// Uploads the runs of the spool at `spool` to the PostgreSQL history at `to`, oldest
/// first, removing each from the spool once the central store has it; `each` is told of
/// every run as it is done. A failure stops the push there: the runs not pushed stay.
pub fn push(
    spool: &Path,
    to: &Path,
    each: &mut dyn FnMut(&PushedRun),
) -> Result<Pushed, PushFailed> {
    let unknown = |error| PushFailed { error, left: None };
    let Some(url) = to.to_str().filter(|u| crate::pg::is_url(u)) else {
        return Err(unknown(HistoryError::Postgres {
            store: to.display().to_string(),
            reason: "push goes to a postgresql:// URL".into(),
        }));
    };
    let source = Sqlite::open(spool).map_err(unknown)?;
    let runs = spooled(&source).map_err(|e| unknown(source.err(e)))?;
    let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    let finished = count(runs.iter().filter(|r| r.finished_at.is_some()).count());
    let mut pushed = Pushed {
        unfinished: count(runs.len()).saturating_sub(finished),
        ..Pushed::default()
    };
    pushed.left = pushed.unfinished;
    for run in runs.iter().filter(|r| r.finished_at.is_some()) {
        let done = push_run(&source, run, url).and_then(|done| {
            forget(&source, run.id).map_err(|e| source.err(e))?;
            Ok(done)
        });
        let done = done.map_err(|error| PushFailed {
            error,
            left: Some(
                finished
                    .saturating_sub(pushed.recorded)
                    .saturating_sub(pushed.already),
            ),
        })?;
        match done.sent {
            Sent::Recorded => pushed.recorded += 1,
            Sent::AlreadyThere => pushed.already += 1,
        }
        each(&done);
    }
    Ok(pushed)
}

/// Removes run `run` from the spool, with the periods no run left spans and the devices
/// left without any: one transaction. A period kept for an older run (an unfinished one)
/// ends at the last run left that spans it, so that no later run, which may get a removed
/// run's id again, is taken for one that saw it.
fn forget(source: &Sqlite, run: i64) -> Result<(), rusqlite::Error> {
    let conn = &source.conn;
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let done = conn
        .execute("DELETE FROM runs WHERE id = ?1", [run])
        .and_then(|_| {
            conn.execute_batch(
                "DELETE FROM intervals WHERE NOT EXISTS (
                     SELECT 1 FROM runs r
                     WHERE r.id BETWEEN intervals.run_first AND intervals.run_last);
                 UPDATE intervals SET run_last = (
                     SELECT max(r.id) FROM runs r
                     WHERE r.id BETWEEN intervals.run_first AND intervals.run_last)
                 WHERE run_last NOT IN (SELECT id FROM runs);
                 DELETE FROM tracks WHERE id NOT IN (SELECT DISTINCT track FROM intervals);
                 COMMIT;",
            )
        });
    if done.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    done
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

/// Records one spooled run centrally, in one transaction, unless it is there already.
fn push_run(source: &Sqlite, run: &Spooled, url: &str) -> Result<PushedRun, HistoryError> {
    let info = RunInfo {
        command: "scan",
        scope: run.scope.clone(),
        inventory_fingerprint: run.fingerprint.clone(),
        shard: run.shard.clone(),
        target: run.target.clone(),
    };
    let origin = Origin {
        command: Some(run.command.clone()),
        uid: run.uid(),
        former_uid: Some(run.former_uid()),
        started_at: run.started_at.clone(),
        finished_at: run.finished_at.clone(),
    };
    let mut pushed = PushedRun {
        spool_run: run.id,
        central_run: 0,
        scope: run.scope.clone(),
        started_at: run.started_at.clone(),
        uid: origin.uid.clone(),
        sent: Sent::AlreadyThere,
    };
    let (mut recorder, previous) = match Pg::open(url)?.begin(&info, origin)? {
        Begun::Recording(recorder, previous) => (recorder, previous),
        Begun::There(central) => {
            pushed.central_run = central;
            return Ok(pushed);
        }
    };
    let mut baseline = Baseline::new(previous);
    let mut summary = Summary::default();
    for period in source.run_periods(&run.scope, run.id)? {
        let mut rec = device_of(period, run);
        let before = baseline.annotate(&mut rec).cloned();
        recorder.record(&rec, before.as_ref());
        summary.add(&rec);
    }
    let ending = if run.interrupted {
        Ending::Interrupted
    } else {
        Ending::Finished
    };
    pushed.central_run = recorder.finish(&summary, ending)?;
    pushed.sent = Sent::Recorded;
    Ok(pushed)
}

/// The device as `run` saw it in `period`: the period's state, its host key (the spool's
/// run read it, or an earlier run of the period did), and the time the run checked it.
fn device_of(period: Period, run: &Spooled) -> DeviceRecord {
    let checked_at = if period.run_last == run.id {
        period.last_seen.clone()
    } else if period.run_first == run.id {
        period.first_seen.clone()
    } else {
        run.started_at.clone()
    };
    let host_key = period.ssh_host_key.clone();
    let mut rec = period.into_record();
    rec.checked_at = checked_at;
    rec.ssh.host_key = host_key;
    rec
}
