//! The central history on PostgreSQL (`--history postgresql://…`): the same runs, devices
//! (tracks) and state periods (intervals) as the SQLite file, written by many scanners at
//! once.
//!
//! - The schema is created and migrated by sshfleet (`sshfleet_schema` holds the versions
//!   applied; a database of a newer sshfleet is refused, untouched).
//! - A run is one transaction, from `begin_run` to `finish`; a run that dies records nothing.
//!   Runs of one scope are serialised by a transaction-level advisory lock on the scope (a
//!   second run of the same scope waits a bounded time, then is refused as locked, as the
//!   SQLite file does); runs of different scopes (sites, shards) share no row, so under READ
//!   COMMITTED none waits for another and no update is lost.
//! - Every run has a unique `uid`, so a run pushed twice is recorded once.
//! - State periods are range-partitioned by month of `last_at` (when the period was last
//!   seen), partitions created on demand before a run's transaction touches the table; so
//!   `prune --older-than` drops whole partitions of periods that ended before the cut.
//!
//! The client is async (tokio-postgres, no TLS back end: a Unix socket or a cluster-internal
//! address); each call runs on this history's own current-thread runtime, on a scoped thread
//! when the caller is itself inside a runtime, so the sync `History` API stays as it was.

use std::future::Future;
use std::path::PathBuf;
use std::str::FromStr as _;
use std::time::Duration;

use tokio_postgres::{Client, Config, NoTls, Row};

use crate::{HistoryError, Period, Pruned, RunRow};

/// The schema this build writes on PostgreSQL.
pub(crate) const PG_SCHEMA_VERSION: i64 = 1;

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one call (a query, a batch of a run, a commit) may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// Advisory lock keys (the first of the two `int4` keys) that serialise schema changes.
const SCHEMA_LOCK: i32 = 0x7373_6866;
/// The second key space: runs of one scope (`hashtext(scope)`).
pub(crate) const SCOPE_LOCK: i32 = 0x7373_6867;

const MIGRATIONS: [&str; 1] = [r"
CREATE TABLE sshfleet_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO sshfleet_meta (key, value) VALUES ('application', 'sshfleet');
CREATE TABLE runs (
    id BIGSERIAL PRIMARY KEY,
    uid TEXT NOT NULL UNIQUE,
    command TEXT NOT NULL,
    scope TEXT NOT NULL,
    inventory_fingerprint TEXT NOT NULL,
    shard TEXT,
    target TEXT,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    interrupted BOOLEAN NOT NULL DEFAULT false,
    devices BIGINT NOT NULL DEFAULT 0,
    findings BIGINT NOT NULL DEFAULT 0,
    compliant BIGINT NOT NULL DEFAULT 0,
    non_compliant BIGINT NOT NULL DEFAULT 0,
    not_checked BIGINT NOT NULL DEFAULT 0,
    ssh_enabled BIGINT NOT NULL DEFAULT 0,
    waived BIGINT NOT NULL DEFAULT 0,
    regressed BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX runs_scope ON runs (scope, id);
CREATE TABLE tracks (
    id BIGSERIAL PRIMARY KEY,
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    first_seen TEXT NOT NULL,
    UNIQUE (scope, key)
);
CREATE SEQUENCE intervals_id_seq AS BIGINT;
CREATE TABLE intervals (
    id BIGINT NOT NULL DEFAULT nextval('intervals_id_seq'),
    track BIGINT NOT NULL REFERENCES tracks (id) ON DELETE CASCADE,
    run_first BIGINT NOT NULL,
    run_last BIGINT NOT NULL,
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    last_at TIMESTAMPTZ NOT NULL,
    address TEXT NOT NULL,
    serial TEXT,
    name TEXT NOT NULL,
    site TEXT NOT NULL,
    status TEXT NOT NULL,
    ssh_enabled BOOLEAN,
    compliant BOOLEAN,
    waiver TEXT,
    ssh_host_key TEXT,
    PRIMARY KEY (id, last_at)
) PARTITION BY RANGE (last_at);
CREATE TABLE intervals_default PARTITION OF intervals DEFAULT;
CREATE INDEX intervals_track ON intervals (track);
CREATE INDEX intervals_address ON intervals (address);
CREATE INDEX intervals_serial ON intervals (serial);
"];

/// Whether `location` (a `--history` value) names a PostgreSQL database.
pub(crate) fn is_url(location: &str) -> bool {
    location.starts_with("postgresql://") || location.starts_with("postgres://")
}

/// `location` as it may be printed: a URL without its password (in the user part or as a
/// `password=` parameter).
pub(crate) fn redacted(location: &str) -> String {
    if !is_url(location) {
        return location.to_owned();
    }
    let (scheme, rest) = location
        .split_once("://")
        .unwrap_or(("postgresql", location));
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    let authority = match authority.rsplit_once('@') {
        Some((user, host)) => match user.split_once(':') {
            Some((name, _password)) => format!("{name}:***@{host}"),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _)) if key.eq_ignore_ascii_case("password") => {
                        format!("{key}=***")
                    }
                    _ => pair.to_owned(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// A failed call: the server's (or the connection's) error, or no answer in time.
pub(crate) enum Fail {
    Db(tokio_postgres::Error),
    Timeout,
}

impl From<tokio_postgres::Error> for Fail {
    fn from(e: tokio_postgres::Error) -> Fail {
        Fail::Db(e)
    }
}

/// The error's words: the server's message and SQLSTATE, or the client's with its cause.
fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} ({})", db.message(), db.code().code());
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Whether `e` is the connection's end rather than the server's refusal of a statement:
/// the connection closed, its socket failed, or the server said it is going away (class 08,
/// connection exception; 57P01-57P03, shut down, crashed, starting up).
fn is_connection_lost(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        return code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03");
    }
    std::error::Error::source(e).is_some_and(|cause| cause.is::<std::io::Error>())
}

/// An open PostgreSQL history: a client on its own runtime.
pub(crate) struct Pg {
    runtime: Option<tokio::runtime::Runtime>,
    pub(crate) client: Client,
    /// The URL without its password, for messages.
    pub(crate) location: String,
}

impl Drop for Pg {
    fn drop(&mut self) {
        // Dropping a runtime may block, which a caller inside another runtime must not.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Pg {
    /// Connects to `url` and brings its schema up to date.
    pub(crate) fn open(url: &str) -> Result<Pg, HistoryError> {
        let location = redacted(url);
        let unreachable = |reason: String| HistoryError::Unreachable {
            store: location.clone(),
            reason,
        };
        let mut config = Config::from_str(url).map_err(|e| HistoryError::Postgres {
            store: location.clone(),
            reason: format!("not a PostgreSQL URL: {}", describe(&e)),
        })?;
        // As libpq does: a URL without a password takes PGPASSWORD (a Kubernetes Secret, say),
        // which then is in no command line.
        if config.get_password().is_none() {
            if let Some(password) = std::env::var_os("PGPASSWORD") {
                config.password(password.as_encoded_bytes());
            }
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        config.application_name("sshfleet");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| unreachable(e.to_string()))?;
        let connect = async {
            let (client, connection) = config.connect(NoTls).await?;
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::warn!(error = %e, "history: the PostgreSQL connection ended");
                }
            });
            Ok::<_, tokio_postgres::Error>(client)
        };
        let client = match on(&runtime, connect) {
            Ok(client) => client,
            Err(e) => {
                // Dropping a runtime may block, which a caller inside a runtime must not.
                runtime.shutdown_background();
                return Err(unreachable(match e {
                    Fail::Db(e) => describe(&e),
                    Fail::Timeout => "no answer".into(),
                }));
            }
        };
        let pg = Pg {
            runtime: Some(runtime),
            client,
            location,
        };
        pg.prepare_schema()?;
        Ok(pg)
    }

    /// Runs `f` to its end (bounded by [`CALL_TIMEOUT`]).
    pub(crate) fn block<T: Send>(
        &self,
        f: impl Future<Output = Result<T, tokio_postgres::Error>> + Send,
    ) -> Result<T, HistoryError> {
        let Some(runtime) = &self.runtime else {
            return Err(self.fail(Fail::Timeout));
        };
        on(runtime, f).map_err(|e| self.fail(e))
    }

    /// The history error of a failed call: a lock not granted in time is [`HistoryError::Locked`];
    /// a connection lost, or no answer in time, is [`HistoryError::Unreachable`].
    pub(crate) fn fail(&self, e: Fail) -> HistoryError {
        let unreachable = |reason| HistoryError::Unreachable {
            store: self.location.clone(),
            reason,
        };
        let e = match e {
            Fail::Timeout => {
                return unreachable(format!("no answer within {} s", CALL_TIMEOUT.as_secs()))
            }
            Fail::Db(e) => e,
        };
        if e.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE) {
            return HistoryError::Locked {
                path: PathBuf::from(&self.location),
            };
        }
        if is_connection_lost(&e) {
            return unreachable(describe(&e));
        }
        HistoryError::Postgres {
            store: self.location.clone(),
            reason: describe(&e),
        }
    }

    /// Creates or migrates the schema, serialised between concurrent first openers; refuses
    /// a database of a newer sshfleet or one that holds other tables of the same names.
    fn prepare_schema(&self) -> Result<(), HistoryError> {
        let version = self.block(schema_version(&self.client))?;
        match version {
            Some(found) if found > PG_SCHEMA_VERSION => {
                return Err(HistoryError::Newer {
                    path: PathBuf::from(&self.location),
                    found,
                    known: PG_SCHEMA_VERSION,
                })
            }
            Some(found) if found == PG_SCHEMA_VERSION => return Ok(()),
            _ => {}
        }
        let foreign = self.block(async {
            let row = self
                .client
                .query_one(
                    "SELECT to_regclass('sshfleet_schema') IS NULL
                        AND to_regclass('runs') IS NOT NULL",
                    &[],
                )
                .await?;
            row.try_get::<_, bool>(0)
        })?;
        if foreign {
            return Err(HistoryError::NotHistory {
                path: PathBuf::from(&self.location),
                reason: "a database with a `runs` table that sshfleet did not make".into(),
            });
        }
        self.block(migrate(&self.client))
    }

    /// The latest runs, newest first.
    pub(crate) fn runs(&self, limit: usize) -> Result<Vec<RunRow>, HistoryError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let sql = format!("SELECT {RUN_COLUMNS} FROM runs ORDER BY id DESC LIMIT $1");
        let rows = self.block(self.client.query(&sql, &[&limit]))?;
        self.rows(&rows, run_row)
    }

    /// One run by id, or without an id the latest finished one.
    pub(crate) fn run(&self, id: Option<i64>) -> Result<Option<RunRow>, HistoryError> {
        let rows = match id {
            Some(id) => {
                let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1");
                self.block(self.client.query(&sql, &[&id]))?
            }
            None => {
                let sql = format!(
                    "SELECT {RUN_COLUMNS} FROM runs WHERE finished_at IS NOT NULL
                     ORDER BY id DESC LIMIT 1"
                );
                self.block(self.client.query(&sql, &[]))?
            }
        };
        Ok(self.rows(&rows, run_row)?.into_iter().next())
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
             WHERE scope = $1 AND id <= $2 AND finished_at IS NOT NULL
             ORDER BY id DESC LIMIT $3"
        );
        let rows = self.block(self.client.query(&sql, &[&scope, &up_to, &limit]))?;
        self.rows(&rows, run_row)
    }

    /// The state period of every device of `scope` that run `run` saw, in device order.
    pub(crate) fn run_periods(&self, scope: &str, run: i64) -> Result<Vec<Period>, HistoryError> {
        let sql = format!(
            "{PERIODS} WHERE t.scope = $1 AND i.run_first <= $2 AND i.run_last >= $2
             ORDER BY t.id, i.id"
        );
        let rows = self.block(self.client.query(&sql, &[&scope, &run]))?;
        self.rows(&rows, period_row)
    }

    /// Every state period of the device with this serial or address, oldest first.
    pub(crate) fn timeline(&self, device: &str) -> Result<Vec<Period>, HistoryError> {
        let sql = format!(
            "{PERIODS} WHERE i.track IN (SELECT track FROM intervals WHERE address = $1 OR serial = $2)
             ORDER BY i.track, i.id"
        );
        let serial = device.to_ascii_uppercase();
        let rows = self.block(self.client.query(&sql, &[&device, &serial]))?;
        self.rows(&rows, period_row)
    }

    pub(crate) fn rows<T>(
        &self,
        rows: &[Row],
        each: fn(&Row) -> Result<T, tokio_postgres::Error>,
    ) -> Result<Vec<T>, HistoryError> {
        rows.iter()
            .map(each)
            .collect::<Result<_, _>>()
            .map_err(|e| self.fail(Fail::Db(e)))
    }

    /// Removes runs beyond the newest `keep_runs` and runs started before `older_than`; the
    /// monthly partitions of periods last seen before `older_than` are dropped whole, then
    /// the periods that ended before the oldest run kept and the devices left without any
    /// go, as in the SQLite file. One transaction; waits for running scans a bounded time.
    pub(crate) fn prune(
        &self,
        keep_runs: Option<u64>,
        older_than: Option<&str>,
    ) -> Result<Pruned, HistoryError> {
        let keep = keep_runs.map(|k| i64::try_from(k).unwrap_or(i64::MAX));
        let client = &self.client;
        let done = self.block(async {
            client
                .batch_execute("BEGIN; SET LOCAL lock_timeout = '10s'")
                .await?;
            let pruned = prune_in(client, keep, older_than).await;
            match pruned {
                Ok(p) => {
                    client.batch_execute("COMMIT").await?;
                    Ok(p)
                }
                Err(e) => {
                    let _ = client.batch_execute("ROLLBACK").await;
                    Err(e)
                }
            }
        })?;
        Ok(done)
    }

    /// Makes sure the monthly partitions from `from` to `to` (RFC 3339) exist, each made in
    /// a short transaction of its own before a run's transaction touches the periods, so
    /// that no run holds the table while another waits to add a partition.
    pub(crate) fn ensure_partitions(&self, from: &str, to: &str) -> Result<(), HistoryError> {
        let client = &self.client;
        let missing: Vec<Row> = self.block(client.query(
            "SELECT to_char(m, '\"intervals_p\"YYYY_MM'), to_char(m, 'YYYY-MM-DD'),
                    to_char(m + interval '1 month', 'YYYY-MM-DD')
             FROM generate_series(date_trunc('month', $1::text::timestamptz AT TIME ZONE 'UTC'),
                                  date_trunc('month', $2::text::timestamptz AT TIME ZONE 'UTC'),
                                  interval '1 month') AS m
             WHERE to_regclass(to_char(m, '\"intervals_p\"YYYY_MM')) IS NULL",
            &[&from, &to],
        ))?;
        for row in &missing {
            let part = |i| {
                row.try_get::<_, String>(i)
                    .map_err(|e| self.fail(Fail::Db(e)))
            };
            let (name, lower, upper) = (part(0)?, part(1)?, part(2)?);
            // Checked again under the lock: another scanner may have made it meanwhile, and
            // then this one must not wait for the table at all.
            let sql = format!(
                "BEGIN; SET LOCAL lock_timeout = '5s';
                 SELECT pg_advisory_xact_lock({SCHEMA_LOCK}, 1);
                 DO $$ BEGIN
                     IF to_regclass('{name}') IS NULL THEN
                         CREATE TABLE {name} PARTITION OF intervals
                             FOR VALUES FROM ('{lower} 00:00:00+00') TO ('{upper} 00:00:00+00');
                     END IF;
                 END $$;
                 COMMIT;"
            );
            let made = self.block(async {
                let made = client.batch_execute(&sql).await;
                if made.is_err() {
                    let _ = client.batch_execute("ROLLBACK").await;
                }
                made
            });
            made?;
        }
        Ok(())
    }
}

/// Runs `f` on `runtime`: on a scoped thread of its own when the caller is inside a runtime
/// (which must not block on another), else on the caller's thread.
fn on<T: Send>(
    runtime: &tokio::runtime::Runtime,
    f: impl Future<Output = Result<T, tokio_postgres::Error>> + Send,
) -> Result<T, Fail> {
    let bounded = async {
        match tokio::time::timeout(CALL_TIMEOUT, f).await {
            Ok(done) => done.map_err(Fail::Db),
            Err(_) => Err(Fail::Timeout),
        }
    };
    if tokio::runtime::Handle::try_current().is_err() {
        return runtime.block_on(bounded);
    }
    std::thread::scope(|s| match s.spawn(|| runtime.block_on(bounded)).join() {
        Ok(done) => done,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

/// The newest schema version applied, `None` for a database sshfleet never used.
async fn schema_version(client: &Client) -> Result<Option<i64>, tokio_postgres::Error> {
    let exists: bool = client
        .query_one("SELECT to_regclass('sshfleet_schema') IS NOT NULL", &[])
        .await?
        .try_get(0)?;
    if !exists {
        return Ok(None);
    }
    let row = client
        .query_one("SELECT max(version)::bigint FROM sshfleet_schema", &[])
        .await?;
    row.try_get(0)
}

/// Applies the migrations not yet applied, under the schema lock, in one transaction.
async fn migrate(client: &Client) -> Result<(), tokio_postgres::Error> {
    client
        .batch_execute(&format!(
            "BEGIN; SELECT pg_advisory_xact_lock({SCHEMA_LOCK}, 0);
             CREATE TABLE IF NOT EXISTS sshfleet_schema (
                 version INTEGER PRIMARY KEY,
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
             );"
        ))
        .await?;
    let applied = async {
        let row = client
            .query_one(
                "SELECT coalesce(max(version), 0)::bigint FROM sshfleet_schema",
                &[],
            )
            .await?;
        let version: i64 = row.try_get(0)?;
        for (step, sql) in MIGRATIONS.iter().enumerate() {
            let to = i64::try_from(step).unwrap_or(i64::MAX).saturating_add(1);
            if version >= to {
                continue;
            }
            client.batch_execute(sql).await?;
            let to = i32::try_from(to).unwrap_or(i32::MAX);
            client
                .execute("INSERT INTO sshfleet_schema (version) VALUES ($1)", &[&to])
                .await?;
        }
        client.batch_execute("COMMIT").await
    };
    if let Err(e) = applied.await {
        let _ = client.batch_execute("ROLLBACK").await;
        return Err(e);
    }
    Ok(())
}

/// [`Pg::prune`]'s work inside its transaction.
async fn prune_in(
    client: &Client,
    keep: Option<i64>,
    older_than: Option<&str>,
) -> Result<Pruned, tokio_postgres::Error> {
    let mut pruned = Pruned::default();
    if let Some(keep) = keep {
        let n = client
            .execute(
                "DELETE FROM runs WHERE id NOT IN (SELECT id FROM runs ORDER BY id DESC LIMIT $1)",
                &[&keep],
            )
            .await?;
        pruned.runs += n;
    }
    if let Some(before) = older_than {
        let n = client
            .execute(
                "DELETE FROM runs WHERE started_at::timestamptz < $1::text::timestamptz",
                &[&before],
            )
            .await?;
        pruned.runs += n;
        let (partitions, periods) = drop_partitions(client, before).await?;
        pruned.partitions = partitions;
        pruned.periods += periods;
    }
    let oldest: Option<i64> = client
        .query_one("SELECT min(id) FROM runs", &[])
        .await?
        .try_get(0)?;
    let n = match oldest {
        Some(oldest) => {
            client
                .execute("DELETE FROM intervals WHERE run_last < $1", &[&oldest])
                .await?
        }
        None => client.execute("DELETE FROM intervals", &[]).await?,
    };
    pruned.periods += n;
    pruned.devices = client
        .execute(
            "DELETE FROM tracks t WHERE NOT EXISTS (SELECT 1 FROM intervals i WHERE i.track = t.id)",
            &[],
        )
        .await?;
    Ok(pruned)
}

/// Drops the monthly partitions that end at or before `before`: (partitions, their periods).
async fn drop_partitions(
    client: &Client,
    before: &str,
) -> Result<(u64, u64), tokio_postgres::Error> {
    let old = client
        .query(
            "SELECT c.relname::text FROM pg_inherits h JOIN pg_class c ON c.oid = h.inhrelid
             WHERE h.inhparent = 'intervals'::regclass
               AND c.relname ~ '^intervals_p[0-9]{4}_[0-9]{2}$'
               AND (to_date(substr(c.relname, 12), 'YYYY_MM')::timestamp AT TIME ZONE 'UTC')
                   + interval '1 month' <= $1::text::timestamptz
             ORDER BY 1",
            &[&before],
        )
        .await?;
    let (mut partitions, mut periods) = (0, 0);
    for row in &old {
        let name: String = row.try_get(0)?;
        // The name matched `intervals_pYYYY_MM`: nothing in it needs quoting.
        let count: i64 = client
            .query_one(&format!("SELECT count(*) FROM {name}"), &[])
            .await?
            .try_get(0)?;
        client.batch_execute(&format!("DROP TABLE {name}")).await?;
        partitions += 1;
        periods += u64::try_from(count).unwrap_or(0);
    }
    Ok((partitions, periods))
}

/// The columns of a [`RunRow`], in [`run_row`]'s order.
pub(crate) const RUN_COLUMNS: &str =
    "id, command, scope, started_at, finished_at, interrupted, devices,
    findings, compliant, non_compliant, not_checked, ssh_enabled, waived, regressed, uid";

pub(crate) fn run_row(r: &Row) -> Result<RunRow, tokio_postgres::Error> {
    Ok(RunRow {
        id: r.try_get(0)?,
        command: r.try_get(1)?,
        scope: r.try_get(2)?,
        started_at: r.try_get(3)?,
        finished_at: r.try_get(4)?,
        interrupted: r.try_get(5)?,
        devices: r.try_get(6)?,
        findings: r.try_get(7)?,
        compliant: r.try_get(8)?,
        non_compliant: r.try_get(9)?,
        not_checked: r.try_get(10)?,
        ssh_enabled: r.try_get(11)?,
        waived: r.try_get(12)?,
        regressed: r.try_get(13)?,
        uid: r.try_get(14)?,
    })
}

/// The periods' query over intervals `i` and tracks `t`, before its `WHERE`.
const PERIODS: &str = "SELECT t.scope, i.run_first, i.run_last, i.first_seen, i.last_seen,
        i.address, i.serial, i.name, i.site, i.status, i.ssh_enabled, i.compliant, i.waiver,
        i.ssh_host_key
    FROM intervals i JOIN tracks t ON t.id = i.track";

fn period_row(r: &Row) -> Result<Period, tokio_postgres::Error> {
    Ok(Period {
        scope: r.try_get(0)?,
        run_first: r.try_get(1)?,
        run_last: r.try_get(2)?,
        first_seen: r.try_get(3)?,
        last_seen: r.try_get(4)?,
        address: r.try_get(5)?,
        serial: r.try_get(6)?,
        name: r.try_get(7)?,
        site: r.try_get(8)?,
        status: r.try_get(9)?,
        ssh_enabled: r.try_get(10)?,
        compliant: r.try_get(11)?,
        waiver: r.try_get(12)?,
        ssh_host_key: r.try_get(13)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printed_urls_carry_no_password() {
        assert_eq!(
            redacted("postgresql://scan:s3cret@db.example:5432/fleet?sslmode=disable"),
            "postgresql://scan:***@db.example:5432/fleet?sslmode=disable"
        );
        assert_eq!(
            redacted("postgresql:///fleet?host=/run/pg&password=s3cret&user=scan"),
            "postgresql:///fleet?host=/run/pg&password=***&user=scan"
        );
        assert_eq!(redacted("h.sqlite"), "h.sqlite");
        assert!(is_url("postgres://x/y") && !is_url("postgresql.sqlite"));
    }
}
