//! The spool against a real PostgreSQL (a throwaway cluster started by this binary): a run
//! whose connection is lost before its commit is kept in the spool and pushed once; a run
//! the central store committed although its answer was lost is not recorded again; a push
//! stopped midway removes only what the central store has and says how much is left.

#![expect(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

#[path = "support/cluster.rs"]
mod cluster;

use std::path::Path;

use cluster::Cluster;
use sshfleet_history::{push, Ending, History, HistoryError, PushedRun, Recorder, RunInfo, Sent};
use sshfleet_report::{Baseline, DeviceRecord, SshState, Status, Summary};

fn info(scope: &str) -> RunInfo {
    RunInfo {
        command: "scan",
        scope: scope.into(),
        inventory_fingerprint: "f".into(),
        shard: None,
        target: None,
    }
}

/// Cameras `a`, `b`, `c` of a site, `c` with SSH as `c_on` says.
fn site(c_on: bool) -> Vec<DeviceRecord> {
    ["a", "b", "c"]
        .into_iter()
        .map(|address| {
            let mut r = DeviceRecord::new(address.into(), "n".into(), "s".into(), Status::Ok);
            r.serial = Some(format!("SERIAL{}", address.to_ascii_uppercase()));
            r.ssh_enabled = Some(address == "c" && c_on);
            r.expect = Some(SshState::Disabled);
            r.judge();
            r
        })
        .collect()
}

/// Begins a run of `scope` in the history at `location` and records `records` into it,
/// as the engine does; the recorder (still to be finished) and the run's summary.
fn recording(location: &Path, scope: &str, records: Vec<DeviceRecord>) -> (Recorder, Summary) {
    let (mut recorder, previous) = History::open(location)
        .unwrap()
        .begin_run(&info(scope))
        .unwrap();
    let mut baseline = Baseline::new(previous);
    let mut summary = Summary::default();
    for mut r in records {
        let before = baseline.annotate(&mut r).cloned();
        recorder.record(&r, before.as_ref());
        summary.add(&r);
    }
    (recorder, summary)
}

/// A whole run; its id.
fn run(location: &Path, scope: &str, records: Vec<DeviceRecord>) -> i64 {
    let (mut recorder, summary) = recording(location, scope, records);
    recorder.finish(&summary, Ending::Finished).unwrap()
}

/// Pushes `spool` to `url`: what was said of each run, and the push's result.
fn push_all(
    spool: &Path,
    url: &str,
) -> (
    Vec<PushedRun>,
    Result<sshfleet_history::Pushed, sshfleet_history::PushFailed>,
) {
    let mut said = Vec::new();
    let done = push(spool, Path::new(url), &mut |r| said.push(r.clone()));
    (said, done)
}

/// The spool's rows of `table`, counted outside sshfleet.
fn spool_count(spool: &Path, table: &str) -> i64 {
    rusqlite::Connection::open(spool)
        .unwrap()
        .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

#[test]
fn a_run_whose_connection_is_lost_before_its_commit_is_spooled_and_pushed_once() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let url = cluster.database();
    let name = Cluster::name_of(&url).to_owned();
    let rows = |table: &str| cluster.psql(&name, &format!("SELECT count(*) FROM {table}"));
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool.sqlite");
    run(Path::new(&url), "site", site(false));

    let (mut recorder, summary) = recording(Path::new(&url), "site", site(true));
    // The server ends the run's session (as a restart does) before the commit.
    let ended = cluster.psql(
        "postgres",
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
         WHERE application_name = 'sshfleet'",
    );
    assert_eq!(ended, "1");
    let err = recorder.finish(&summary, Ending::Finished).err().unwrap();
    assert!(matches!(err, HistoryError::Unreachable { .. }), "{err}");
    let spooled = recorder.spool(&spool, &summary, Ending::Finished);
    assert_eq!(spooled.unwrap().unwrap(), 1, "run 1 of the spool");
    assert!(
        recorder.spool(&spool, &summary, Ending::Finished).is_none(),
        "once"
    );
    assert_eq!(rows("runs"), "1", "nothing of it reached the central store");
    assert_eq!(
        (
            spool_count(&spool, "runs"),
            spool_count(&spool, "intervals")
        ),
        (1, 3)
    );

    let (said, done) = push_all(&spool, &url);
    let done = done.unwrap();
    assert_eq!((done.recorded, done.already, done.left), (1, 0, 0));
    assert_eq!(
        (said.len(), said[0].spool_run, said[0].sent),
        (1, 1, Sent::Recorded)
    );
    assert_eq!(
        (rows("runs"), rows("tracks"), rows("intervals")),
        ("2".into(), "3".into(), "4".into()),
        "one run more, no device twice, one period for c's change"
    );
    let regressed = cluster.psql(
        &name,
        &format!(
            "SELECT regressed FROM runs WHERE id = {}",
            said[0].central_run
        ),
    );
    assert_eq!(regressed, "1");
    assert_eq!(
        (
            spool_count(&spool, "runs"),
            spool_count(&spool, "intervals")
        ),
        (0, 0)
    );
    assert_eq!(spool_count(&spool, "tracks"), 0);
}

#[test]
fn a_run_the_central_store_committed_is_not_recorded_again_from_the_spool() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let url = cluster.database();
    let name = Cluster::name_of(&url).to_owned();
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool.sqlite");
    let central = run(Path::new(&url), "site", site(true));
    // The same run in the spool too, as when the commit reached the server but its answer
    // was lost: the same scope, command, fingerprint and start.
    run(&spool, "site", site(true));
    let started = cluster.psql(&name, "SELECT started_at FROM runs");
    rusqlite::Connection::open(&spool)
        .unwrap()
        .execute("UPDATE runs SET started_at = ?1", [&started])
        .unwrap();

    let (said, done) = push_all(&spool, &url);
    let done = done.unwrap();
    assert_eq!((done.recorded, done.already, done.left), (0, 1, 0));
    assert_eq!(
        (said[0].sent, said[0].central_run),
        (Sent::AlreadyThere, central)
    );
    assert_eq!(cluster.psql(&name, "SELECT count(*) FROM runs"), "1");
    assert_eq!(
        spool_count(&spool, "runs"),
        0,
        "the spool no longer holds it"
    );
}

#[test]
fn a_push_stopped_midway_leaves_what_was_not_pushed_and_says_how_many() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let url = cluster.database();
    let name = Cluster::name_of(&url).to_owned();
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool.sqlite");
    run(&spool, "site-x", site(false));
    run(&spool, "site-y", site(true));
    // A run whose process stopped: never finished.
    rusqlite::Connection::open(&spool)
        .unwrap()
        .execute(
            "INSERT INTO runs (command, scope, inventory_fingerprint, started_at)
             VALUES ('scan', 'site-z', 'f', '2026-12-01T00:00:00.000Z')",
            [],
        )
        .unwrap();
    // A scan of site-y is recording centrally: pushing site-y's run waits, then is refused.
    let (holder, _) = recording(Path::new(&url), "site-y", site(true));
    let (said, done) = push_all(&spool, &url);
    let failed = done.err().unwrap();
    assert!(
        matches!(failed.error, HistoryError::Locked { .. }),
        "{failed}"
    );
    assert_eq!(failed.left, Some(1));
    assert!(
        failed.to_string().contains("1 run(s) were not pushed"),
        "{failed}"
    );
    assert_eq!((said.len(), &*said[0].scope), (1, "site-x"));
    assert_eq!(
        spool_count(&spool, "runs"),
        2,
        "site-y's and the unfinished run"
    );
    drop(holder);

    let (said, done) = push_all(&spool, &url);
    let done = done.unwrap();
    assert_eq!((done.recorded, done.unfinished, done.left), (1, 1, 1));
    assert_eq!((said.len(), &*said[0].scope), (1, "site-y"));
    assert_eq!(spool_count(&spool, "runs"), 1, "the unfinished run stays");
    let scopes = cluster.psql(&name, "SELECT string_agg(scope, ',' ORDER BY id) FROM runs");
    assert_eq!(scopes, "site-x,site-y");
}

#[test]
fn a_run_left_in_the_spool_keeps_only_its_own_periods_for_the_runs_after_it() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let url = cluster.database();
    let name = Cluster::name_of(&url).to_owned();
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool.sqlite");
    run(&spool, "site", site(false));
    run(&spool, "site", site(false));
    // Run 1 stays (unfinished); run 2, which extended its periods, is pushed and removed.
    rusqlite::Connection::open(&spool)
        .unwrap()
        .execute("UPDATE runs SET finished_at = NULL WHERE id = 1", [])
        .unwrap();
    let (said, done) = push_all(&spool, &url);
    assert_eq!((done.unwrap().left, said[0].spool_run), (1, 2));
    // The next spooled run gets id 2 again: it must not take run 1's periods for its own.
    assert_eq!(run(&spool, "site", site(true)), 2);
    let (said, done) = push_all(&spool, &url);
    assert_eq!((done.unwrap().recorded, said[0].spool_run), (1, 2));
    let sql = |q: &str| cluster.psql(&name, q);
    assert_eq!(
        sql("SELECT string_agg(devices::text, ',' ORDER BY id) FROM runs"),
        "3,3"
    );
    assert_eq!(
        (
            sql("SELECT count(*) FROM tracks"),
            sql("SELECT count(*) FROM intervals")
        ),
        ("3".into(), "4".into())
    );
}

/// A spooled run's host keys reach the central store with it: the next central run compares
/// each camera's key against them (a key changed while offline is then `changed`, not a
/// silent `first`).
#[test]
fn a_pushed_run_keeps_each_devices_host_key() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let url = cluster.database();
    let name = Cluster::name_of(&url).to_owned();
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool.sqlite");
    let keyed = || {
        let mut records = site(false);
        for r in &mut records {
            r.ssh.host_key = (r.address != "c").then(|| format!("SHA256:key-{}", r.address));
        }
        records
    };
    run(&spool, "site", keyed());
    run(&spool, "site", keyed());
    let (said, done) = push_all(&spool, &url);
    done.unwrap();
    assert_eq!(said.len(), 2);
    let keys = cluster.psql(
        &name,
        "SELECT string_agg(address || '=' || coalesce(ssh_host_key, '-'), ',' ORDER BY address)
         FROM intervals",
    );
    assert_eq!(keys, "a=SHA256:key-a,b=SHA256:key-b,c=-");
}
