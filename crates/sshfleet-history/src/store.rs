//! The history a run uses, whichever back end holds it: an SQLite file (the default) or a
//! PostgreSQL database (`postgresql://…`), behind one API for the engine and the CLI.

use std::path::Path;

use sshfleet_report::read::Observation;
use sshfleet_report::{DeviceRecord, Summary};

use crate::pg::Pg;
use crate::pg_record::PgRecorder;
use crate::{Ending, HistoryError, Period, Pruned, RunInfo, RunRow, Sqlite, SqliteRecorder};

/// An open history: an SQLite file or a PostgreSQL database.
pub struct History(Store);

enum Store {
    Sqlite(Sqlite),
    Postgres(Pg),
}

/// Records one run; every write goes into the run's one transaction.
pub struct Recorder(Writing);

enum Writing {
    Sqlite(SqliteRecorder),
    Postgres(PgRecorder),
}

/// Whether a `--history` location names a PostgreSQL database (`postgresql://…`) rather
/// than a file.
pub fn is_database(location: &Path) -> bool {
    location.to_str().is_some_and(crate::pg::is_url)
}

/// A `--history` location as it may be printed: a file's path, or a URL without password.
pub fn display(location: &Path) -> String {
    match location.to_str() {
        Some(text) if crate::pg::is_url(text) => crate::pg::redacted(text),
        _ => location.display().to_string(),
    }
}

impl History {
    /// Opens (or creates) the history at `location`, a file path or a `postgresql://` URL,
    /// bringing its schema up to date.
    pub fn open(location: &Path) -> Result<History, HistoryError> {
        match location.to_str() {
            Some(url) if crate::pg::is_url(url) => Ok(History(Store::Postgres(Pg::open(url)?))),
            _ => Ok(History(Store::Sqlite(Sqlite::open(location)?))),
        }
    }

    /// Starts recording a run: takes the scope's write lock for the whole run, and returns
    /// what the previous completed run of the same scope saw (the drift baseline).
    pub fn begin_run(self, info: &RunInfo) -> Result<(Recorder, Vec<Observation>), HistoryError> {
        match self.0 {
            Store::Sqlite(h) => {
                let (r, baseline) = h.begin_run(info)?;
                Ok((Recorder(Writing::Sqlite(r)), baseline))
            }
            Store::Postgres(h) => {
                let (r, baseline) = h.begin_run(info)?;
                Ok((Recorder(Writing::Postgres(r)), baseline))
            }
        }
    }

    /// The latest runs, newest first.
    pub fn runs(&self, limit: usize) -> Result<Vec<RunRow>, HistoryError> {
        match &self.0 {
            Store::Sqlite(h) => h.runs(limit),
            Store::Postgres(h) => h.runs(limit),
        }
    }

    /// One run by id, or without an id the latest finished one.
    pub fn run(&self, id: Option<i64>) -> Result<Option<RunRow>, HistoryError> {
        match &self.0 {
            Store::Sqlite(h) => h.run(id),
            Store::Postgres(h) => h.run(id),
        }
    }

    /// The finished runs of `scope` up to run `up_to`, newest first, at most `limit`.
    pub fn scope_runs(
        &self,
        scope: &str,
        up_to: i64,
        limit: usize,
    ) -> Result<Vec<RunRow>, HistoryError> {
        match &self.0 {
            Store::Sqlite(h) => h.scope_runs(scope, up_to, limit),
            Store::Postgres(h) => h.scope_runs(scope, up_to, limit),
        }
    }

    /// The state period of every device of `scope` that run `run` saw, in device order.
    pub fn run_periods(&self, scope: &str, run: i64) -> Result<Vec<Period>, HistoryError> {
        match &self.0 {
            Store::Sqlite(h) => h.run_periods(scope, run),
            Store::Postgres(h) => h.run_periods(scope, run),
        }
    }

    /// Every state period of the device with this serial or address, oldest first.
    pub fn timeline(&self, device: &str) -> Result<Vec<Period>, HistoryError> {
        match &self.0 {
            Store::Sqlite(h) => h.timeline(device),
            Store::Postgres(h) => h.timeline(device),
        }
    }

    /// The latest run of every scope (complete ones, or any finished one), by id.
    pub(crate) fn latest_runs(
        &self,
        which: crate::fleet::Latest,
    ) -> Result<Vec<RunRow>, HistoryError> {
        match &self.0 {
            Store::Sqlite(h) => h.latest_runs(which),
            Store::Postgres(h) => h.latest_runs(which),
        }
    }

    /// Every site a device was recorded with, and when one was last seen, by site name.
    pub fn sites_last_seen(&self) -> Result<Vec<crate::SiteSeen>, HistoryError> {
        match &self.0 {
            Store::Sqlite(h) => h.sites_last_seen(),
            Store::Postgres(h) => h.sites_last_seen(),
        }
    }

    /// Removes runs beyond the newest `keep_runs` and runs started before `older_than`
    /// (RFC 3339), with the state periods that ended before the oldest run kept (on
    /// PostgreSQL, whole monthly partitions of them), and the devices left without any.
    pub fn prune(
        &self,
        keep_runs: Option<u64>,
        older_than: Option<&str>,
    ) -> Result<Pruned, HistoryError> {
        match &self.0 {
            Store::Sqlite(h) => h.prune(keep_runs, older_than),
            Store::Postgres(h) => h.prune(keep_runs, older_than),
        }
    }
}

impl sshfleet_report::RunStore for Recorder {
    fn record(&mut self, rec: &DeviceRecord, before: Option<&Observation>) {
        Recorder::record(self, rec, before);
    }
}

impl Recorder {
    pub fn run_id(&self) -> i64 {
        match &self.0 {
            Writing::Sqlite(r) => r.run_id(),
            Writing::Postgres(r) => r.run_id(),
        }
    }

    /// Stores `rec`: extends the device's present period when its state is the one `before`
    /// (the previous run's) had, else opens a new period.
    pub fn record(&mut self, rec: &DeviceRecord, before: Option<&Observation>) {
        match &mut self.0 {
            Writing::Sqlite(r) => r.record(rec, before),
            Writing::Postgres(r) => r.record(rec, before),
        }
    }

    /// Closes the run with its counts and commits everything. An interrupted run is kept
    /// (its devices' periods are true) but is never the baseline of the next run.
    pub fn finish(&mut self, summary: &Summary, ending: Ending) -> Result<i64, HistoryError> {
        match &mut self.0 {
            Writing::Sqlite(r) => r.finish(summary, ending),
            Writing::Postgres(r) => r.finish(summary, ending),
        }
    }

    /// After [`Recorder::finish`] failed with [`HistoryError::Unreachable`] (the central
    /// store lost during the run, its transaction gone): records the run into the SQLite
    /// history at `spool` instead, every device as it was seen, with the run's start and
    /// so its uid (`history push` then records it once, even had the commit reached the
    /// server after all). The run's id in the spool; `None` when this recorder holds no run
    /// for a spool (an SQLite history, or a run committed or spooled already).
    pub fn spool(
        &mut self,
        spool: &Path,
        summary: &Summary,
        ending: Ending,
    ) -> Option<Result<i64, HistoryError>> {
        match &mut self.0 {
            Writing::Sqlite(_) => None,
            Writing::Postgres(r) => Some(r.take_lost()?.record_into(spool, summary, ending)),
        }
    }
}
