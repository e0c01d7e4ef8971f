//! The run history: an SQLite file (`--history FILE`) or a PostgreSQL database
//! (`--history postgresql://…`, see `pg`) that records every run and, per device,
//! its state periods — a row per change with the runs and times it spans, not a copy per
//! run, so an unchanged run of 100,000 devices adds one run row and updates in place.
//!
//! Devices are tracked per *scope* (the inventory file and shard), so that the previous run
//! of the same scope is the baseline for drift. A run holds the write lock from start to
//! finish and commits once: a second sshfleet on the same file is refused at once with a
//! clear message, and a run that dies records nothing (its report is still complete).

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension};

mod pg;
mod pg_read;
mod pg_record;
mod push;
mod spool;
mod store;

pub use push::{push, PushFailed, Pushed, PushedRun, Sent};
pub use store::{display, is_database, History, Recorder};
mod fleet;
pub use fleet::{ScopeHead, SiteSeen};

use sshfleet_report::read::{Observation, Stored};
use sshfleet_report::record::WaiverTag;
use sshfleet_report::{Change, DeviceRecord, Status, Summary};

/// The schema this build writes; each migration step takes a file one version up.
pub(crate) const SCHEMA_VERSION: i64 = 2;

/// How long to wait for another process's lock before saying the file is locked.
const BUSY_TIMEOUT: Duration = Duration::from_secs(2);

const MIGRATIONS: [&str; 2] = [
    r"
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO meta (key, value) VALUES ('application', 'sshfleet');
CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    command TEXT NOT NULL,
    scope TEXT NOT NULL,
    inventory_fingerprint TEXT NOT NULL,
    shard TEXT,
    target TEXT,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    interrupted INTEGER NOT NULL DEFAULT 0,
    devices INTEGER NOT NULL DEFAULT 0,
    findings INTEGER NOT NULL DEFAULT 0,
    compliant INTEGER NOT NULL DEFAULT 0,
    non_compliant INTEGER NOT NULL DEFAULT 0,
    not_checked INTEGER NOT NULL DEFAULT 0,
    ssh_enabled INTEGER NOT NULL DEFAULT 0,
    waived INTEGER NOT NULL DEFAULT 0,
    regressed INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX runs_scope ON runs (scope, id);
CREATE TABLE tracks (
    id INTEGER PRIMARY KEY,
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    first_seen TEXT NOT NULL,
    UNIQUE (scope, key)
);
CREATE TABLE intervals (
    id INTEGER PRIMARY KEY,
    track INTEGER NOT NULL REFERENCES tracks (id) ON DELETE CASCADE,
    run_first INTEGER NOT NULL,
    run_last INTEGER NOT NULL,
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    address TEXT NOT NULL,
    serial TEXT,
    name TEXT NOT NULL,
    site TEXT NOT NULL,
    status TEXT NOT NULL,
    ssh_enabled INTEGER,
    compliant INTEGER,
    waiver TEXT
);
CREATE INDEX intervals_track ON intervals (track, run_last);
CREATE INDEX intervals_run_last ON intervals (run_last);
",
    // 2: the SSH host key each period presented (`ssh_host_key_change` against the last run).
    r"
ALTER TABLE intervals ADD COLUMN ssh_host_key TEXT;
",
];

/// `PRAGMA application_id` of the files this build creates ("sshf"); files made before it
/// carry 0 and are known by their `meta` marker.
const APPLICATION_ID: i64 = 0x7373_6866;

/// A history file that cannot be used; the run does not start (exit 2), nothing is lost.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("the history {} is locked by another sshfleet run (or another program); nothing was recorded or run — try again when it is done", path.display())]
    Locked { path: PathBuf },
    #[error("the history {} cannot be written ({reason}); nothing was run", path.display())]
    ReadOnly { path: PathBuf, reason: String },
    #[error("{} is not an sshfleet history, or it is corrupt ({reason}); it was left untouched", path.display())]
    NotHistory { path: PathBuf, reason: String },
    #[error("the history {} was written by a newer sshfleet (schema {found}, this one knows {known}); it was left untouched", path.display())]
    Newer {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("the history {store} cannot be reached ({reason}); nothing was recorded")]
    Unreachable { store: String, reason: String },
    #[error("the history {store}: {reason}")]
    Postgres { store: String, reason: String },
    #[error("the history {}: {source}", path.display())]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
}

/// An open history file (the SQLite back end of [`History`]).
pub(crate) struct Sqlite {
    conn: Connection,
    path: PathBuf,
}

/// What a run is, for its row and its scope.
#[derive(Clone, Debug)]
pub struct RunInfo {
    pub command: &'static str,
    /// Devices are compared with the previous run of the same scope.
    pub scope: String,
    pub inventory_fingerprint: String,
    pub shard: Option<String>,
    pub target: Option<String>,
}

/// One run as listed by `sshfleet history runs`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RunRow {
    pub id: i64,
    pub command: String,
    pub scope: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub interrupted: bool,
    pub devices: i64,
    pub findings: i64,
    pub compliant: i64,
    pub non_compliant: i64,
    pub not_checked: i64,
    pub ssh_enabled: i64,
    pub waived: i64,
    pub regressed: i64,
    /// What names the run wherever it is recorded: the same in a spool and, once pushed, in
    /// the central history (made from its scope, command, fingerprint, shard, target and
    /// start; a run an earlier sshfleet recorded centrally keeps the uid it got then).
    pub uid: String,
}

/// One state period of a device, for `sshfleet history device`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Period {
    pub scope: String,
    pub run_first: i64,
    pub run_last: i64,
    pub first_seen: String,
    pub last_seen: String,
    pub address: String,
    pub serial: Option<String>,
    pub name: String,
    pub site: String,
    pub status: String,
    pub ssh_enabled: Option<bool>,
    pub compliant: Option<bool>,
    pub waiver: Option<String>,
    /// The SSH host key (`SHA256:…`) last read in the period; a run that read none keeps it.
    pub ssh_host_key: Option<String>,
}

impl Period {
    /// A row of [`History::periods`]' query.
    fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Period> {
        Ok(Period {
            scope: r.get(0)?,
            run_first: r.get(1)?,
            run_last: r.get(2)?,
            first_seen: r.get(3)?,
            last_seen: r.get(4)?,
            address: r.get(5)?,
            serial: r.get(6)?,
            name: r.get(7)?,
            site: r.get(8)?,
            status: r.get(9)?,
            ssh_enabled: r.get(10)?,
            compliant: r.get(11)?,
            waiver: r.get(12)?,
            ssh_host_key: r.get(13)?,
        })
    }

    /// The period as a drift baseline entry: what the device was then (the history keeps
    /// states, not error messages).
    pub fn into_observation(self) -> Observation {
        Observation {
            status: Status::parse(&self.status).unwrap_or(Status::ProtocolError),
            address: self.address,
            serial: self.serial,
            name: self.name,
            site: self.site,
            ssh_enabled: self.ssh_enabled,
            compliant: self.compliant,
            checked_at: sshfleet_core::time::parse_rfc3339_ms(&self.last_seen),
            first_seen: None,
            state_since: sshfleet_core::time::parse_rfc3339_ms(&self.first_seen),
            change: None,
            waived: self.waiver.is_some(),
            stored: None,
            ssh_host_key: self.ssh_host_key,
        }
    }

    /// The period as a device record of the run that saw it last.
    pub fn into_record(self) -> DeviceRecord {
        let status = Status::parse(&self.status).unwrap_or(Status::ProtocolError);
        let mut rec = DeviceRecord::new(self.address, self.name, self.site, status);
        rec.serial = self.serial;
        rec.ssh_enabled = self.ssh_enabled;
        rec.compliant = self.compliant;
        rec.waiver = self.waiver.map(WaiverTag::from);
        rec.checked_at = self.last_seen;
        // Not the period's host key: that is the key last read in the period, perhaps by an
        // earlier run, and a record says what its own run read.
        rec
    }
}

/// The run row's counts, in the order of both back ends' `UPDATE`: devices, findings, compliant,
/// non-compliant, not checked, SSH enabled, waived, regressed.
pub(crate) fn run_counts(summary: &Summary) -> [i64; 8] {
    let regressed = summary
        .drift
        .as_ref()
        .map_or(0, |d| d.by_change.get(Change::Regressed));
    let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    [
        count(summary.total),
        count(summary.findings()),
        count(summary.compliant),
        count(summary.non_compliant),
        count(summary.not_checked()),
        count(summary.ssh_enabled),
        count(summary.waived),
        count(regressed),
    ]
}

/// What `prune` removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    pub runs: u64,
    /// Whole partitions of periods dropped (PostgreSQL).
    pub partitions: u64,
    pub periods: u64,
    pub devices: u64,
}

fn classify_error(path: &Path, e: rusqlite::Error) -> HistoryError {
    let path = path.to_owned();
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => HistoryError::Locked { path },
        Some(ErrorCode::ReadOnly | ErrorCode::CannotOpen | ErrorCode::PermissionDenied) => {
            HistoryError::ReadOnly {
                path,
                reason: e.to_string(),
            }
        }
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => HistoryError::NotHistory {
            path,
            reason: e.to_string(),
        },
        _ => HistoryError::Sqlite { path, source: e },
    }
}

/// Refuses an existing file that is not an sshfleet history (another program's database,
/// a history of a newer sshfleet, not SQLite at all) before anything could write to it: it
/// is read through a read-only connection, which never changes the file (no journal mode,
/// no checkpoint, no table). A file that is absent or empty becomes a new history.
fn identify(path: &Path) -> Result<(), HistoryError> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.len() > 0 => {}
        _ => return Ok(()),
    }
    let err = |e| classify_error(path, e);
    let not_history = |reason: String| HistoryError::NotHistory {
        path: path.to_owned(),
        reason,
    };
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(err)?;
    let pragma = |name: &str| -> Result<i64, HistoryError> {
        conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
            .map_err(err)
    };
    let application = pragma("application_id")?;
    if application != 0 && application != APPLICATION_ID {
        return Err(not_history(format!(
            "application_id {application:#x}: another program's database"
        )));
    }
    let version = pragma("user_version")?;
    let tables: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
        .map_err(err)?;
    if tables == 0 && version == 0 {
        return Ok(());
    }
    // A newer sshfleet keeps its `meta` table (and says so in it, as far as this build
    // knows); the schema check after opening names it.
    let marker = if version > SCHEMA_VERSION {
        "SELECT 'sshfleet' FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
    } else {
        "SELECT value FROM meta WHERE key = 'application'"
    };
    let marked: Option<String> = conn
        .query_row(marker, [], |r| r.get(0))
        .optional()
        .unwrap_or(None);
    if marked.as_deref() != Some("sshfleet") {
        return Err(not_history(if version == 0 {
            "an SQLite file with other tables".into()
        } else {
            format!("an SQLite file of schema {version} without the sshfleet marker")
        }));
    }
    Ok(())
}

impl Sqlite {
    /// Opens (or creates) the history at `path`, bringing its schema up to date.
    pub(crate) fn open(path: &Path) -> Result<Sqlite, HistoryError> {
        let err = |e| classify_error(path, e);
        identify(path)?;
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(err)?;
        let history = Sqlite {
            conn,
            path: path.to_owned(),
        };
        history.prepare_schema()?;
        Ok(history)
    }

    fn err(&self, e: rusqlite::Error) -> HistoryError {
        classify_error(&self.path, e)
    }

    fn prepare_schema(&self) -> Result<(), HistoryError> {
        let version = self.schema_version()?;
        let mode: String = self
            .conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(mode, "history: the file system does not allow WAL");
        }
        self.conn
            .execute_batch("PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;")
            .map_err(|e| self.err(e))?;
        self.migrate_from(version)?;
        let app: Option<String> = self
            .conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'application'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        if app.as_deref() != Some("sshfleet") {
            return Err(HistoryError::NotHistory {
                path: self.path.clone(),
                reason: "no sshfleet marker".into(),
            });
        }
        Ok(())
    }

    /// The file's schema version, refused when a newer sshfleet wrote it, or when it is an
    /// SQLite file of something else (version 0 with tables).
    fn schema_version(&self) -> Result<i64, HistoryError> {
        let version: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        if version > SCHEMA_VERSION {
            return Err(HistoryError::Newer {
                path: self.path.clone(),
                found: version,
                known: SCHEMA_VERSION,
            });
        }
        if version == 0 {
            // A fresh file has no tables; anything else with version 0 is not ours.
            let tables: i64 = self
                .conn
                .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
                .map_err(|e| self.err(e))?;
            if tables > 0 {
                return Err(HistoryError::NotHistory {
                    path: self.path.clone(),
                    reason: "an SQLite file with other tables".into(),
                });
            }
        }
        Ok(version)
    }

    /// Runs every migration after `version`, each in its own transaction with the version
    /// it brings the file to.
    fn migrate_from(&self, version: i64) -> Result<(), HistoryError> {
        for (step, sql) in MIGRATIONS.iter().enumerate() {
            let to = i64::try_from(step).unwrap_or(i64::MAX).saturating_add(1);
            if version >= to {
                continue;
            }
            let script = format!(
                "BEGIN IMMEDIATE; {sql} PRAGMA user_version = {to}; PRAGMA application_id = {APPLICATION_ID}; COMMIT;"
            );
            if let Err(e) = self.conn.execute_batch(&script) {
                let _ = self.conn.execute_batch("ROLLBACK");
                return Err(self.err(e));
            }
        }
        Ok(())
    }

    /// Starts recording a run: takes the write lock for the whole run, and returns what the
    /// previous completed run of the same scope saw (the drift baseline), with its rows.
    pub(crate) fn begin_run(
        self,
        info: &RunInfo,
    ) -> Result<(SqliteRecorder, Vec<Observation>), HistoryError> {
        self.begin_at(info, sshfleet_core::time::now_rfc3339())
    }

    /// [`Sqlite::begin_run`] for a run that started at `started` (RFC 3339): one kept in
    /// the spool after its central store was lost.
    pub(crate) fn begin_at(
        self,
        info: &RunInfo,
        started: String,
    ) -> Result<(SqliteRecorder, Vec<Observation>), HistoryError> {
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| self.err(e))?;
        let baseline = match self.baseline(&info.scope) {
            Ok(b) => b,
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                return Err(self.err(e));
            }
        };
        let inserted = self.conn.execute(
            "INSERT INTO runs (command, scope, inventory_fingerprint, shard, target, started_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                info.command,
                info.scope,
                info.inventory_fingerprint,
                info.shard,
                info.target,
                started
            ],
        );
        if let Err(e) = inserted {
            let _ = self.conn.execute_batch("ROLLBACK");
            return Err(self.err(e));
        }
        let run = self.conn.last_insert_rowid();
        let recorder = SqliteRecorder {
            history: self,
            run,
            scope: info.scope.clone(),
            error: None,
            finished: false,
        };
        Ok((recorder, baseline))
    }

    /// The latest period of every device the scope's previous completed run saw: of every
    /// track, the periods its latest run touched (two, when two devices claimed one serial:
    /// each keeps its own, so that the next run tells them apart by address).
    fn baseline(&self, scope: &str) -> Result<Vec<Observation>, rusqlite::Error> {
        let previous: Option<i64> = self
            .conn
            .query_row(
                "SELECT max(id) FROM runs WHERE scope = ?1 AND finished_at IS NOT NULL
                 AND interrupted = 0",
                [scope],
                |r| r.get(0),
            )
            .optional()?
            .flatten();
        let Some(previous) = previous else {
            return Ok(Vec::new());
        };
        // Sized once: the baseline is held for the whole run, and a vector grown by doubling
        // would peak at twice what it keeps.
        let devices: i64 =
            self.conn
                .query_row("SELECT devices FROM runs WHERE id = ?1", [previous], |r| {
                    r.get(0)
                })?;
        let mut stmt = self.conn.prepare(
            "SELECT i.id, t.id, t.first_seen, i.first_seen, i.last_seen, i.address, i.serial,
                    i.name, i.site, i.status, i.ssh_enabled, i.compliant, i.waiver IS NOT NULL,
                    i.ssh_host_key
             FROM intervals i JOIN tracks t ON t.id = i.track
             WHERE t.scope = ?1 AND i.run_last >= ?2
               AND i.run_last = (SELECT max(run_last) FROM intervals WHERE track = t.id)",
        )?;
        let rows = stmt.query_map(params![scope, previous], |r| {
            let status: String = r.get(9)?;
            Ok(Observation {
                stored: Some(Stored {
                    interval: r.get(0)?,
                    track: r.get(1)?,
                }),
                first_seen: instant(r, 2)?,
                state_since: instant(r, 3)?,
                checked_at: instant(r, 4)?,
                address: r.get(5)?,
                serial: r.get(6)?,
                name: r.get(7)?,
                site: r.get(8)?,
                status: Status::parse(&status).unwrap_or(Status::ProtocolError),
                ssh_enabled: r.get(10)?,
                compliant: r.get(11)?,
                change: None,
                waived: r.get(12)?,
                ssh_host_key: r.get(13)?,
            })
        })?;
        let mut out = Vec::with_capacity(usize::try_from(devices).unwrap_or(0).min(10_000_000));
        for row in rows {
            out.push(row?);
        }
        Ok(out)
    }

    /// The latest runs, newest first.
    pub(crate) fn runs(&self, limit: usize) -> Result<Vec<RunRow>, HistoryError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {RUN_COLUMNS} FROM runs ORDER BY id DESC LIMIT ?1"
            ))
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map([limit], run_row).map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// One run by id, or without an id the latest finished one.
    pub(crate) fn run(&self, id: Option<i64>) -> Result<Option<RunRow>, HistoryError> {
        let found = match id {
            Some(id) => self.conn.query_row(
                &format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"),
                [id],
                run_row,
            ),
            None => self.conn.query_row(
                &format!(
                    "SELECT {RUN_COLUMNS} FROM runs WHERE finished_at IS NOT NULL
                     ORDER BY id DESC LIMIT 1"
                ),
                [],
                run_row,
            ),
        };
        found.optional().map_err(|e| self.err(e))
    }

    /// The finished runs of `scope` up to run `up_to`, newest first, at most `limit`.
    pub(crate) fn scope_runs(
        &self,
        scope: &str,
        up_to: i64,
        limit: usize,
    ) -> Result<Vec<RunRow>, HistoryError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs
             WHERE scope = ?1 AND id <= ?2 AND finished_at IS NOT NULL
             ORDER BY id DESC LIMIT ?3"
        );
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![scope, up_to, limit], run_row)
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// The state period of every device of `scope` that run `run` saw, in device order.
    pub(crate) fn run_periods(&self, scope: &str, run: i64) -> Result<Vec<Period>, HistoryError> {
        self.periods(
            "WHERE t.scope = ?1 AND i.run_first <= ?2 AND i.run_last >= ?2
             ORDER BY t.id",
            params![scope, run],
        )
    }

    /// Every state period of the device with this serial or address, oldest first.
    pub(crate) fn timeline(&self, device: &str) -> Result<Vec<Period>, HistoryError> {
        self.periods(
            "WHERE i.track IN (SELECT track FROM intervals WHERE address = ?1 OR serial = ?2)
             ORDER BY i.track, i.id",
            params![device, device.to_ascii_uppercase()],
        )
    }

    /// The periods that `filter` (a `WHERE` and `ORDER BY` over intervals `i` and tracks
    /// `t`) selects.
    fn periods(
        &self,
        filter: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<Period>, HistoryError> {
        let sql = format!(
            "SELECT t.scope, i.run_first, i.run_last, i.first_seen, i.last_seen, i.address,
                    i.serial, i.name, i.site, i.status, i.ssh_enabled, i.compliant, i.waiver,
                    i.ssh_host_key
             FROM intervals i JOIN tracks t ON t.id = i.track
             {filter}"
        );
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params, Period::from_row)
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Removes runs beyond the newest `keep_runs` and runs started before `older_than`
    /// (RFC 3339), with the state periods that ended before the oldest run kept, and the
    /// devices left without any.
    pub(crate) fn prune(
        &self,
        keep_runs: Option<u64>,
        older_than: Option<&str>,
    ) -> Result<Pruned, HistoryError> {
        let run = || -> Result<Pruned, rusqlite::Error> {
            self.conn.execute_batch("BEGIN IMMEDIATE")?;
            let mut pruned = Pruned::default();
            if let Some(keep) = keep_runs {
                let keep = i64::try_from(keep).unwrap_or(i64::MAX);
                let n = self.conn.execute(
                    "DELETE FROM runs WHERE id NOT IN (SELECT id FROM runs ORDER BY id DESC LIMIT ?1)",
                    [keep],
                )?;
                pruned.runs += n as u64;
            }
            if let Some(before) = older_than {
                let n = self
                    .conn
                    .execute("DELETE FROM runs WHERE started_at < ?1", [before])?;
                pruned.runs += n as u64;
            }
            let oldest: Option<i64> = self
                .conn
                .query_row("SELECT min(id) FROM runs", [], |r| r.get(0))?;
            let n = match oldest {
                Some(oldest) => self
                    .conn
                    .execute("DELETE FROM intervals WHERE run_last < ?1", [oldest])?,
                None => self.conn.execute("DELETE FROM intervals", [])?,
            };
            pruned.periods = n as u64;
            let n = self.conn.execute(
                "DELETE FROM tracks WHERE id NOT IN (SELECT DISTINCT track FROM intervals)",
                [],
            )?;
            pruned.devices = n as u64;
            self.conn.execute_batch("COMMIT")?;
            Ok(pruned)
        };
        run().map_err(|e| {
            let _ = self.conn.execute_batch("ROLLBACK");
            self.err(e)
        })
    }
}

/// The columns of a [`RunRow`], in [`run_row`]'s order.
const RUN_COLUMNS: &str = "id, command, scope, started_at, finished_at, interrupted, devices,
    findings, compliant, non_compliant, not_checked, ssh_enabled, waived, regressed,
    inventory_fingerprint, shard, target";

fn run_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRow> {
    let (command, scope, started_at): (String, String, String) = (r.get(1)?, r.get(2)?, r.get(3)?);
    let (fingerprint, shard, target): (String, Option<String>, Option<String>) =
        (r.get(14)?, r.get(15)?, r.get(16)?);
    let uid = spool::run_uid(
        &command,
        &scope,
        &fingerprint,
        shard.as_deref(),
        target.as_deref(),
        &started_at,
    );
    Ok(RunRow {
        id: r.get(0)?,
        command,
        scope,
        started_at,
        finished_at: r.get(4)?,
        interrupted: r.get(5)?,
        devices: r.get(6)?,
        findings: r.get(7)?,
        compliant: r.get(8)?,
        non_compliant: r.get(9)?,
        not_checked: r.get(10)?,
        ssh_enabled: r.get(11)?,
        waived: r.get(12)?,
        regressed: r.get(13)?,
        uid,
    })
}

/// How a recorded run ended: an interrupted run is kept but is never a baseline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// It went through every device it was given.
    Finished,
    /// Ctrl-C or a signal stopped it.
    Interrupted,
}

/// Records one run; every write goes into the run's one transaction.
pub(crate) struct SqliteRecorder {
    history: Sqlite,
    run: i64,
    scope: String,
    /// The first failure; recording stops there (the report goes on).
    error: Option<HistoryError>,
    finished: bool,
}

/// A stored time (RFC 3339 text) as Unix milliseconds; text that is not one is an error of
/// the row, not a time made up.
fn instant(r: &rusqlite::Row<'_>, column: usize) -> rusqlite::Result<Option<i64>> {
    let text: Option<String> = r.get(column)?;
    let Some(text) = text else {
        return Ok(None);
    };
    match sshfleet_core::time::parse_rfc3339_ms(&text) {
        Some(ms) => Ok(Some(ms)),
        None => Err(rusqlite::Error::FromSqlConversionFailure(
            column,
            rusqlite::types::Type::Text,
            format!("{text:?} is not an RFC 3339 time").into(),
        )),
    }
}

fn same_state(before: &Observation, rec: &DeviceRecord) -> bool {
    before.status == rec.status
        && before.ssh_enabled == rec.ssh_enabled
        && before.compliant == rec.compliant
        && before.address == rec.address
        && before.serial == rec.serial
        && same_host_key(before, rec)
}

/// A run that read no host key (no `--probe-ssh`, or the device did not answer) keeps the
/// period's key: the next change is told against the last key read.
fn same_host_key(before: &Observation, rec: &DeviceRecord) -> bool {
    rec.ssh.host_key.is_none() || before.ssh_host_key == rec.ssh.host_key
}

impl SqliteRecorder {
    pub(crate) fn run_id(&self) -> i64 {
        self.run
    }

    /// Stores `rec`: extends the device's present period when its state is the one `before`
    /// (the previous run's) had, else opens a new period.
    pub(crate) fn record(&mut self, rec: &DeviceRecord, before: Option<&Observation>) {
        if self.error.is_some() {
            return;
        }
        if let Err(e) = self.store(rec, before) {
            let e = self.history.err(e);
            tracing::warn!(error = %e, "history: recording stopped");
            self.error = Some(e);
        }
    }

    fn store(
        &mut self,
        rec: &DeviceRecord,
        before: Option<&Observation>,
    ) -> Result<(), rusqlite::Error> {
        let conn = &self.history.conn;
        if let Some((before, stored)) = before.and_then(|b| b.stored.map(|s| (b, s))) {
            if same_state(before, rec) {
                let mut stmt = conn.prepare_cached(
                    "UPDATE intervals SET run_last = ?1, last_seen = ?2, name = ?3, site = ?4,
                            waiver = ?5
                     WHERE id = ?6",
                )?;
                stmt.execute(params![
                    self.run,
                    rec.checked_at,
                    rec.name,
                    rec.site,
                    rec.waiver.as_ref().map(WaiverTag::as_str),
                    stored.interval
                ])?;
                return Ok(());
            }
            return self.insert_interval(stored.track, rec);
        }
        let key = match &rec.serial {
            Some(serial) => format!("serial:{serial}"),
            None => format!("address:{}", rec.address),
        };
        let track: i64 = {
            let mut stmt = conn.prepare_cached(
                "INSERT INTO tracks (scope, key, first_seen) VALUES (?1, ?2, ?3)
                 ON CONFLICT (scope, key) DO UPDATE SET key = excluded.key
                 RETURNING id",
            )?;
            stmt.query_row(params![self.scope, key, rec.checked_at], |r| r.get(0))?
        };
        self.insert_interval(track, rec)
    }

    fn insert_interval(&self, track: i64, rec: &DeviceRecord) -> Result<(), rusqlite::Error> {
        let mut stmt = self.history.conn.prepare_cached(
            "INSERT INTO intervals (track, run_first, run_last, first_seen, last_seen, address,
                                    serial, name, site, status, ssh_enabled, compliant, waiver,
                                    ssh_host_key)
             VALUES (?1, ?2, ?2, ?3, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )?;
        stmt.execute(params![
            track,
            self.run,
            rec.checked_at,
            rec.address,
            rec.serial,
            rec.name,
            rec.site,
            rec.status.as_str(),
            rec.ssh_enabled,
            rec.compliant,
            rec.waiver.as_ref().map(WaiverTag::as_str),
            rec.ssh.host_key
        ])?;
        Ok(())
    }

    /// Closes the run with its counts and commits everything. An interrupted run is kept
    /// (its devices' periods are true) but is never the baseline of the next run.
    pub(crate) fn finish(
        &mut self,
        summary: &Summary,
        ending: Ending,
    ) -> Result<i64, HistoryError> {
        if self.finished {
            return Ok(self.run);
        }
        self.finished = true;
        if let Some(e) = self.error.take() {
            let _ = self.history.conn.execute_batch("ROLLBACK");
            return Err(e);
        }
        let [devices, findings, compliant, non_compliant, not_checked, ssh_enabled, waived, regressed] =
            run_counts(summary);
        let done = self
            .history
            .conn
            .execute(
                "UPDATE runs SET finished_at = ?1, interrupted = ?2, devices = ?3, findings = ?4,
                        compliant = ?5, non_compliant = ?6, not_checked = ?7, ssh_enabled = ?8,
                        waived = ?9, regressed = ?10
                 WHERE id = ?11",
                params![
                    sshfleet_core::time::now_rfc3339(),
                    ending == Ending::Interrupted,
                    devices,
                    findings,
                    compliant,
                    non_compliant,
                    not_checked,
                    ssh_enabled,
                    waived,
                    regressed,
                    self.run
                ],
            )
            .and_then(|_| self.history.conn.execute_batch("COMMIT"));
        if let Err(e) = done {
            let _ = self.history.conn.execute_batch("ROLLBACK");
            return Err(self.history.err(e));
        }
        Ok(self.run)
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;
    use sshfleet_report::{Baseline, KeyChange, SshState};

    fn info() -> RunInfo {
        RunInfo {
            command: "scan",
            scope: "inv.csv".into(),
            inventory_fingerprint: "f".into(),
            shard: None,
            target: None,
        }
    }

    fn rec(address: &str, serial: Option<&str>, ssh: bool) -> DeviceRecord {
        let mut r = DeviceRecord::new(address.into(), "n".into(), "s".into(), Status::Ok);
        r.serial = serial.map(str::to_owned);
        r.ssh_enabled = Some(ssh);
        r.expect = Some(SshState::Disabled);
        r.judge();
        r
    }

    /// One run over `records` through the history, as the writer does it.
    fn run(path: &Path, records: Vec<DeviceRecord>) -> Vec<DeviceRecord> {
        let (mut recorder, previous) = History::open(path).unwrap().begin_run(&info()).unwrap();
        let mut baseline = Baseline::new(previous);
        let mut summary = Summary::default();
        let mut out = Vec::new();
        for mut r in records {
            let before = baseline.annotate(&mut r).cloned();
            recorder.record(&r, before.as_ref());
            summary.add(&r);
            out.push(r);
        }
        recorder.finish(&summary, Ending::Finished).unwrap();
        out
    }

    fn count(path: &Path, table: &str) -> i64 {
        let conn = Connection::open(path).unwrap();
        conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn unchanged_runs_add_no_periods_and_changes_add_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.sqlite");
        let fleet = |third_on: bool| {
            vec![
                rec("a", Some("AAAAAAAAAAAA"), false),
                rec("b", None, false),
                rec("c", None, third_on),
            ]
        };
        let first = run(&path, fleet(false));
        assert!(first
            .iter()
            .all(|r| r.drift.as_ref().unwrap().change == Change::New));
        for _ in 0..3 {
            let again = run(&path, fleet(false));
            assert!(again
                .iter()
                .all(|r| r.drift.as_ref().unwrap().change == Change::Unchanged));
        }
        assert_eq!(
            count(&path, "intervals"),
            3,
            "unchanged runs extend periods"
        );
        assert_eq!(count(&path, "runs"), 4);
        let changed = run(&path, fleet(true));
        assert_eq!(changed[2].drift.as_ref().unwrap().change, Change::Regressed);
        assert_eq!(count(&path, "intervals"), 4);
        let history = History::open(&path).unwrap();
        let timeline = history.timeline("c").unwrap();
        assert_eq!(timeline.len(), 2);
        assert_eq!((timeline[0].run_first, timeline[0].run_last), (1, 4));
        assert_eq!(timeline[1].ssh_enabled, Some(true));
        // A camera that moved keeps its track.
        let moved = run(
            &path,
            vec![
                rec("a2", Some("AAAAAAAAAAAA"), false),
                rec("b", None, false),
                rec("c", None, true),
            ],
        );
        assert_eq!(moved[0].drift.as_ref().unwrap().change, Change::Moved);
        assert_eq!(history.timeline("AAAAAAAAAAAA").unwrap().len(), 2);
        let runs = history.runs(10).unwrap();
        assert_eq!(runs[0].id, 6);
        assert_eq!(runs[1].regressed, 1);
    }

    /// A run over `keys` (one device, serial `S1`, with the host key given): each record's
    /// host-key change against the history's previous run.
    fn key_run(path: &Path, key: Option<&str>) -> Option<KeyChange> {
        let (mut recorder, previous) = History::open(path).unwrap().begin_run(&info()).unwrap();
        let mut baseline = Baseline::new(previous);
        let mut r = rec("a", Some("S1"), false);
        r.ssh.host_key = key.map(str::to_owned);
        let before = baseline.annotate(&mut r).cloned();
        let change = key.map(|k| sshfleet_report::host_keys::key_change(before.as_ref(), k));
        recorder.record(&r, before.as_ref());
        let mut summary = Summary::default();
        summary.add(&r);
        recorder.finish(&summary, Ending::Finished).unwrap();
        change
    }

    #[test]
    fn a_version_1_file_is_migrated_and_then_keeps_each_periods_host_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.sqlite");
        {
            // A file as version 1 wrote it, with one finished run of one device.
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(&format!(
                "{} PRAGMA user_version = 1; PRAGMA application_id = {APPLICATION_ID};
                 INSERT INTO runs (command, scope, inventory_fingerprint, started_at, finished_at, devices)
                 VALUES ('scan', 'inv.csv', 'f', '2026-12-01T00:00:00.000Z', '2026-12-01T00:01:00.000Z', 1);
                 INSERT INTO tracks (scope, key, first_seen) VALUES ('inv.csv', 'serial:S1', '2026-12-01T00:00:00.000Z');
                 INSERT INTO intervals (track, run_first, run_last, first_seen, last_seen, address, serial,
                                        name, site, status, ssh_enabled, compliant)
                 VALUES (1, 1, 1, '2026-12-01T00:00:00.000Z', '2026-12-01T00:00:00.000Z', 'a', 'S1',
                         'n', 's', 'ok', 0, 1);",
                MIGRATIONS[0]
            ))
            .unwrap();
        }
        assert_eq!(key_run(&path, Some("SHA256:k1")), Some(KeyChange::First));
        let version: i64 = Connection::open(&path)
            .unwrap()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, 2);
        assert_eq!(key_run(&path, Some("SHA256:k1")), Some(KeyChange::Same));
        assert_eq!(key_run(&path, Some("SHA256:k2")), Some(KeyChange::Changed));
        // A run that read no key keeps the last one read.
        assert_eq!(key_run(&path, None), None);
        assert_eq!(key_run(&path, Some("SHA256:k2")), Some(KeyChange::Same));
        // The v1 period, the first key's, the second key's.
        assert_eq!(count(&path, "intervals"), 3);
    }

    #[test]
    fn a_second_writer_is_refused_as_locked_and_a_foreign_file_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.sqlite");
        let (recorder, _) = History::open(&path).unwrap().begin_run(&info()).unwrap();
        let second = History::open(&path).and_then(|h| h.begin_run(&info()).map(|_| ()));
        assert!(
            matches!(second, Err(HistoryError::Locked { .. })),
            "{second:?}"
        );
        drop(recorder);

        let other = dir.path().join("other.sqlite");
        Connection::open(&other)
            .unwrap()
            .execute_batch("CREATE TABLE t (x)")
            .unwrap();
        assert!(matches!(
            History::open(&other),
            Err(HistoryError::NotHistory { .. })
        ));
        let text = dir.path().join("notes.txt");
        std::fs::write(
            &text,
            "just some notes, long enough to not be an empty database file..",
        )
        .unwrap();
        assert!(matches!(
            History::open(&text),
            Err(HistoryError::NotHistory { .. })
        ));
        assert_eq!(
            std::fs::read_to_string(&text).unwrap(),
            "just some notes, long enough to not be an empty database file.."
        );
        let newer = dir.path().join("newer.sqlite");
        History::open(&newer).unwrap();
        Connection::open(&newer)
            .unwrap()
            .execute_batch("PRAGMA user_version = 99")
            .unwrap();
        let err = History::open(&newer).err().unwrap();
        assert!(
            matches!(err, HistoryError::Newer { found: 99, .. }),
            "{err}"
        );
    }

    #[test]
    fn prune_keeps_the_newest_runs_and_their_periods() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.sqlite");
        run(&path, vec![rec("a", None, false), rec("gone", None, false)]);
        run(&path, vec![rec("a", None, true)]);
        run(&path, vec![rec("a", None, false)]);
        let history = History::open(&path).unwrap();
        let pruned = history.prune(Some(1), None).unwrap();
        assert_eq!(pruned.runs, 2);
        assert_eq!(history.runs(10).unwrap().len(), 1);
        // "a"'s present period (from run 3) stays; the older ones and "gone" go.
        assert_eq!(history.timeline("a").unwrap().len(), 1);
        assert!(history.timeline("gone").unwrap().is_empty());
        assert_eq!(pruned.devices, 1);
    }
}
