//! One test suite for both back ends of the history: every case below runs, unchanged,
//! against an SQLite file and against a PostgreSQL database (a throwaway cluster started by
//! this binary, a database per case). Where the back ends differ by design (SQLite refuses a
//! second writer; PostgreSQL takes many at once and drops partitions) the case says so.

#![expect(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

#[path = "support/cluster.rs"]
mod cluster;

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};

use cluster::Cluster;
use sshfleet_history::{Ending, History, HistoryError, RunInfo};
use sshfleet_report::{Baseline, Change, DeviceRecord, SshState, Status, Summary};

/// Where one case keeps its history.
struct Store<'a> {
    location: PathBuf,
    cluster: Option<&'a Cluster>,
    _dir: tempfile::TempDir,
}

impl Store<'_> {
    fn open(&self) -> History {
        History::open(&self.location).unwrap()
    }

    /// Runs `sql` on the store outside sshfleet (the test's own view of the rows).
    fn sql(&self, sql: &str) -> String {
        match self.cluster {
            Some(c) => c.psql(Cluster::name_of(self.location.to_str().unwrap()), sql),
            None => {
                let conn = rusqlite::Connection::open(&self.location).unwrap();
                let mut stmt = conn.prepare(sql).unwrap();
                let mut rows = stmt.query([]).unwrap();
                let mut out = Vec::new();
                while let Some(row) = rows.next().unwrap() {
                    let v: rusqlite::types::Value = row.get(0).unwrap();
                    out.push(match v {
                        rusqlite::types::Value::Integer(i) => i.to_string(),
                        rusqlite::types::Value::Text(t) => t,
                        other => format!("{other:?}"),
                    });
                }
                out.join("\n")
            }
        }
    }

    fn count(&self, table: &str) -> i64 {
        self.sql(&format!("SELECT count(*) FROM {table}"))
            .parse()
            .unwrap()
    }

    fn is_postgres(&self) -> bool {
        self.cluster.is_some()
    }
}

fn info(scope: &str) -> RunInfo {
    RunInfo {
        command: "scan",
        scope: scope.into(),
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

/// One run of `scope` over `records` through the history, as the engine does it.
fn run_ending(
    store: &Store<'_>,
    scope: &str,
    records: Vec<DeviceRecord>,
    ending: Ending,
) -> Vec<DeviceRecord> {
    let (mut recorder, previous) = store.open().begin_run(&info(scope)).unwrap();
    let mut baseline = Baseline::new(previous);
    let mut summary = Summary::default();
    let mut out = Vec::new();
    for mut r in records {
        let before = baseline.annotate(&mut r).cloned();
        recorder.record(&r, before.as_ref());
        summary.add(&r);
        out.push(r);
    }
    recorder.finish(&summary, ending).unwrap();
    out
}

fn run(store: &Store<'_>, records: Vec<DeviceRecord>) -> Vec<DeviceRecord> {
    run_ending(store, "inv.csv", records, Ending::Finished)
}

fn changes(records: &[DeviceRecord]) -> Vec<Change> {
    records
        .iter()
        .map(|r| r.drift.as_ref().unwrap().change)
        .collect()
}

fn drift_between_runs(store: &Store<'_>) {
    let fleet = |third_on: bool| {
        vec![
            rec("a", Some("AAAAAAAAAAAA"), false),
            rec("b", None, false),
            rec("c", None, third_on),
        ]
    };
    assert_eq!(changes(&run(store, fleet(false))), [Change::New; 3]);
    for _ in 0..3 {
        assert_eq!(changes(&run(store, fleet(false))), [Change::Unchanged; 3]);
    }
    assert_eq!(store.count("intervals"), 3, "unchanged runs extend periods");
    assert_eq!(store.count("runs"), 4);
    let changed = run(store, fleet(true));
    assert_eq!(changed[2].drift.as_ref().unwrap().change, Change::Regressed);
    assert_eq!(store.count("intervals"), 4);
    let history = store.open();
    let timeline = history.timeline("c").unwrap();
    assert_eq!(timeline.len(), 2);
    assert_eq!((timeline[0].run_first, timeline[0].run_last), (1, 4));
    assert_eq!(timeline[1].ssh_enabled, Some(true));
    // A camera that moved keeps its track; a fixed one is fixed.
    let moved = run(
        store,
        vec![
            rec("a2", Some("AAAAAAAAAAAA"), false),
            rec("b", None, false),
            rec("c", None, false),
        ],
    );
    assert_eq!(
        changes(&moved),
        [Change::Moved, Change::Unchanged, Change::Fixed]
    );
    assert_eq!(history.timeline("aaaaaaaaaaaa").unwrap().len(), 2);
}

/// The baseline is the latest state of every device the scope's previous *completed* run
/// saw (an interrupted run's periods are true, so they count; its device list does not);
/// another scope's runs are not compared with.
fn baseline_is_the_last_completed_run_of_the_scope(store: &Store<'_>) {
    run(store, vec![rec("a", None, false), rec("b", None, false)]);
    run_ending(
        store,
        "inv.csv",
        vec![rec("a", None, true)],
        Ending::Interrupted,
    );
    run_ending(
        store,
        "other.csv",
        vec![rec("c", None, true)],
        Ending::Finished,
    );
    let baseline = |store: &Store<'_>| {
        let (recorder, previous) = store.open().begin_run(&info("inv.csv")).unwrap();
        drop(recorder);
        let mut seen: Vec<(String, Option<bool>)> = previous
            .into_iter()
            .map(|o| (o.address, o.ssh_enabled))
            .collect();
        seen.sort();
        seen
    };
    assert_eq!(
        baseline(store),
        [("a".into(), Some(true)), ("b".into(), Some(false))]
    );
    assert_eq!(store.count("runs"), 3, "a dropped recorder records nothing");
    let again = run(store, vec![rec("a", None, true)]);
    assert_eq!(changes(&again), [Change::Unchanged]);
    assert_eq!(baseline(store), [("a".into(), Some(true))]);
}

fn runs_list(store: &Store<'_>) {
    run(store, vec![rec("a", None, false), rec("b", None, true)]);
    run_ending(
        store,
        "west.csv",
        vec![rec("w", None, false)],
        Ending::Finished,
    );
    run(store, vec![rec("a", None, true), rec("b", None, true)]);
    let history = store.open();
    let runs = history.runs(10).unwrap();
    let ids: Vec<i64> = runs.iter().map(|r| r.id).collect();
    assert_eq!(ids, [3, 2, 1], "newest first");
    assert_eq!(runs[0].scope, "inv.csv");
    assert_eq!((runs[0].devices, runs[0].ssh_enabled), (2, 2));
    assert_eq!(runs[0].regressed, 1);
    assert_eq!(runs[0].command, "scan");
    assert!(runs[0].finished_at.is_some() && !runs[0].interrupted);
    let uids: std::collections::HashSet<&str> = runs.iter().map(|r| r.uid.as_str()).collect();
    assert_eq!(uids.len(), 3, "a uid each");
    assert!(uids.iter().all(|u| u.starts_with("run:")), "{uids:?}");
    assert_eq!(history.runs(1).unwrap().len(), 1);
    assert_eq!(history.run(None).unwrap().unwrap().id, 3);
    assert_eq!(history.run(Some(2)).unwrap().unwrap().scope, "west.csv");
    assert_eq!(history.run(Some(99)).unwrap(), None);
    let scope: Vec<i64> = history
        .scope_runs("inv.csv", 3, 10)
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(scope, [3, 1]);
    let periods = history.run_periods("inv.csv", 1).unwrap();
    let seen: Vec<(&str, Option<bool>)> = periods
        .iter()
        .map(|p| (p.address.as_str(), p.ssh_enabled))
        .collect();
    assert_eq!(seen, [("a", Some(false)), ("b", Some(true))]);
}

fn timeline(store: &Store<'_>) {
    run(store, vec![rec("10.0.0.1", Some("ACCC8E000001"), false)]);
    run(store, vec![rec("10.0.0.1", Some("ACCC8E000001"), true)]);
    run(store, vec![rec("10.0.0.9", Some("ACCC8E000001"), true)]);
    let history = store.open();
    let by_serial = history.timeline("accc8e000001").unwrap();
    let states: Vec<(i64, i64, &str, Option<bool>)> = by_serial
        .iter()
        .map(|p| (p.run_first, p.run_last, p.address.as_str(), p.ssh_enabled))
        .collect();
    assert_eq!(
        states,
        [
            (1, 1, "10.0.0.1", Some(false)),
            (2, 2, "10.0.0.1", Some(true)),
            (3, 3, "10.0.0.9", Some(true)),
        ]
    );
    assert_eq!(history.timeline("10.0.0.9").unwrap(), by_serial);
    assert!(history.timeline("nobody").unwrap().is_empty());
}

fn prune_keeps_the_newest_runs(store: &Store<'_>) {
    run(store, vec![rec("a", None, false), rec("gone", None, false)]);
    run(store, vec![rec("a", None, true)]);
    run(store, vec![rec("a", None, false)]);
    let history = store.open();
    let pruned = history.prune(Some(1), None).unwrap();
    assert_eq!(pruned.runs, 2);
    assert_eq!(history.runs(10).unwrap().len(), 1);
    assert_eq!(history.timeline("a").unwrap().len(), 1);
    assert!(history.timeline("gone").unwrap().is_empty());
    assert_eq!(pruned.devices, 1);
}

/// `--older-than`: a run of January 2025 and its periods go, today's stay; on PostgreSQL
/// the month's partition is dropped whole.
fn prune_older_than(store: &Store<'_>) {
    let old = |address: &str| {
        let mut r = rec(address, None, false);
        r.checked_at = "2025-01-15T10:00:00.000Z".into();
        r
    };
    store.open();
    if store.is_postgres() {
        store.sql(
            "CREATE TABLE intervals_p2025_01 PARTITION OF intervals
             FOR VALUES FROM ('2025-01-01 00:00:00+00') TO ('2025-02-01 00:00:00+00')",
        );
    }
    run(store, vec![old("a"), old("gone")]);
    store.sql("UPDATE runs SET started_at = '2025-01-15T09:59:00.000Z' WHERE id = 1");
    run(store, vec![rec("a", None, false)]);
    let history = store.open();
    let nothing = history.prune(None, Some("2024-06-01T00:00:00Z")).unwrap();
    assert_eq!(
        (nothing.runs, nothing.periods, nothing.partitions),
        (0, 0, 0)
    );
    let pruned = history.prune(None, Some("2026-01-01T00:00:00Z")).unwrap();
    assert_eq!(pruned.runs, 1);
    assert_eq!(pruned.periods, 1, "the period of the device not seen since");
    assert_eq!(pruned.devices, 1);
    assert!(history.timeline("gone").unwrap().is_empty());
    assert_eq!(history.timeline("a").unwrap().len(), 1);
    assert_eq!(history.runs(10).unwrap().len(), 1);
    if store.is_postgres() {
        assert_eq!(pruned.partitions, 1);
        assert_eq!(
            store.sql("SELECT to_regclass('intervals_p2025_01') IS NULL"),
            "t",
            "the month's partition is dropped"
        );
    }
    // The next run still compares with the one kept.
    assert_eq!(
        changes(&run(store, vec![rec("a", None, false)])),
        [Change::Unchanged]
    );
}

fn newer_schema_is_refused(store: &Store<'_>) {
    run(store, vec![rec("a", None, false)]);
    if store.is_postgres() {
        store.sql("INSERT INTO sshfleet_schema (version) VALUES (99)");
    } else {
        store.sql("PRAGMA user_version = 99");
    }
    let err = History::open(&store.location).err().unwrap();
    assert!(
        matches!(err, HistoryError::Newer { found: 99, .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("written by a newer sshfleet"),
        "{err}"
    );
    assert_eq!(store.count("runs"), 1, "left untouched");
}

/// A second run of the same scope while one is recording is refused as locked, with
/// nothing recorded; a store that cannot be reached or written says so, without secrets.
fn locked_or_unreachable_is_said(store: &Store<'_>) {
    let (first, _) = store.open().begin_run(&info("inv.csv")).unwrap();
    let second = History::open(&store.location).and_then(|h| h.begin_run(&info("inv.csv")));
    let err = second.err().unwrap();
    assert!(matches!(err, HistoryError::Locked { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("is locked by another sshfleet run"),
        "{err}"
    );
    drop(first);
    assert_eq!(store.count("runs"), 0, "neither run recorded anything");

    let missing = store._dir.path().join("no such directory");
    let location = if store.is_postgres() {
        format!(
            "postgresql://scan:s3cret@/fleet?host={}&connect_timeout=5",
            missing.display()
        )
    } else {
        missing.join("h.sqlite").display().to_string()
    };
    let err = History::open(Path::new(&location)).err().unwrap();
    let text = err.to_string();
    assert!(!text.contains("s3cret"), "{text}");
    if store.is_postgres() {
        assert!(matches!(err, HistoryError::Unreachable { .. }), "{err}");
        assert!(
            text.starts_with("the history postgresql://scan:***@/fleet?host=")
                && text.contains("cannot be reached"),
            "{text}"
        );
    } else {
        assert!(matches!(err, HistoryError::ReadOnly { .. }), "{err}");
    }
}

/// Devices of one site: `on` says which have SSH on.
fn site_fleet(site: usize, devices: usize, on: impl Fn(usize) -> bool) -> Vec<DeviceRecord> {
    (0..devices)
        .map(|d| {
            let serial = format!("ACCC8E{site:02}{d:04}");
            rec(
                &format!("10.{site}.{}.{}", d / 250, d % 250),
                Some(&serial),
                on(d),
            )
        })
        .collect()
}

/// Every thread's run is open at once, or the test fails (bounded): proof that writers of
/// different scopes do not wait for one another.
struct AllOpen {
    open: std::sync::Mutex<usize>,
    changed: std::sync::Condvar,
    writers: usize,
}

impl AllOpen {
    fn arrive(&self) {
        let mut open = self.open.lock().unwrap();
        *open += 1;
        self.changed.notify_all();
        let (open, timeout) = self
            .changed
            .wait_timeout_while(open, std::time::Duration::from_secs(60), |n| {
                *n < self.writers
            })
            .unwrap();
        assert!(
            !timeout.timed_out(),
            "only {} of the runs were open at once",
            *open
        );
    }
}

/// One round: each site's scanner runs at the same time as the others; its drift.
fn concurrent_round(store: &Store<'_>, fleets: Vec<Vec<DeviceRecord>>) -> Vec<Vec<Change>> {
    let all = AllOpen {
        open: std::sync::Mutex::new(0),
        changed: std::sync::Condvar::new(),
        writers: fleets.len(),
    };
    std::thread::scope(|s| {
        let threads: Vec<_> = fleets
            .into_iter()
            .enumerate()
            .map(|(site, fleet)| {
                let all = &all;
                s.spawn(move || {
                    let scope = format!("site-{site}.csv");
                    let (mut recorder, previous) = store.open().begin_run(&info(&scope)).unwrap();
                    all.arrive();
                    let mut baseline = Baseline::new(previous);
                    let mut summary = Summary::default();
                    let mut changes = Vec::new();
                    for mut r in fleet {
                        let before = baseline.annotate(&mut r).cloned();
                        recorder.record(&r, before.as_ref());
                        summary.add(&r);
                        changes.push(r.drift.as_ref().unwrap().change);
                    }
                    recorder.finish(&summary, Ending::Finished).unwrap();
                    changes
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    })
}

/// Three site scanners write to one PostgreSQL at once, twice; between the rounds the truth
/// changes (some cameras turned SSH on, some off). Every run is kept, no period is lost, and
/// each site's second drift is exactly the truth's change, read back from the store.
/// (SQLite takes one writer at a time by design: `locked_or_unreachable_is_said`.)
fn three_concurrent_scanners(store: &Store<'_>) {
    const DEVICES: usize = 600;
    let first = concurrent_round(
        store,
        (0..3).map(|s| site_fleet(s, DEVICES, |_| false)).collect(),
    );
    assert!(first.iter().flatten().all(|c| *c == Change::New));
    // Site n: every (7 + n)th camera turned SSH on, so the truth differs per site.
    let truth = |site: usize, d: usize| d % (7 + site) == 0;
    let second = concurrent_round(
        store,
        (0..3)
            .map(|s| site_fleet(s, DEVICES, |d| truth(s, d)))
            .collect(),
    );
    for (site, changes) in second.iter().enumerate() {
        for (d, change) in changes.iter().enumerate() {
            let want = if truth(site, d) {
                Change::Regressed
            } else {
                Change::Unchanged
            };
            assert_eq!(*change, want, "site {site} device {d}");
        }
    }
    assert_eq!(store.count("runs"), 6);
    let regressed: usize = (0..3)
        .map(|s| (0..DEVICES).filter(|d| truth(s, *d)).count())
        .sum();
    assert_eq!(store.count("intervals"), (3 * DEVICES + regressed) as i64);
    let history = store.open();
    for run in history.runs(10).unwrap() {
        assert_eq!(run.devices, DEVICES as i64, "{run:?}");
        assert!(run.finished_at.is_some());
    }
    for site in 0..3 {
        let scope = format!("site-{site}.csv");
        let latest = history.scope_runs(&scope, i64::MAX, 1).unwrap();
        let periods = history.run_periods(&scope, latest[0].id).unwrap();
        let on = periods
            .iter()
            .filter(|p| p.ssh_enabled == Some(true))
            .count();
        assert_eq!(on, (0..DEVICES).filter(|d| truth(site, *d)).count());
        assert_eq!(latest[0].regressed, on as i64);
    }
}

type Case = fn(&Store<'_>);

/// The host key a run read is what the next run of the scope compares with; a run that read
/// none keeps the last one read.
fn host_key_is_the_next_runs_baseline(store: &Store<'_>) {
    let keyed = |key: Option<&str>| {
        let mut r = rec("10.0.0.1", Some("ACCC8E000001"), false);
        r.ssh.host_key = key.map(str::to_owned);
        vec![r]
    };
    run(store, keyed(Some("SHA256:first")));
    let previous = |store: &Store<'_>| {
        let (recorder, baseline) = store.open().begin_run(&info("inv.csv")).unwrap();
        drop(recorder);
        baseline
            .into_iter()
            .map(|o| o.ssh_host_key)
            .collect::<Vec<_>>()
    };
    assert_eq!(previous(store), [Some("SHA256:first".to_owned())]);
    run(store, keyed(None));
    assert_eq!(previous(store), [Some("SHA256:first".to_owned())]);
    run(store, keyed(Some("SHA256:second")));
    assert_eq!(previous(store), [Some("SHA256:second".to_owned())]);
}

/// The fleet view's reads: the latest complete run of every scope with a later interrupted
/// one, and when each site was last seen.
fn fleet_heads_and_sites(store: &Store<'_>) {
    let at = |site: &str| {
        let mut r = rec(&format!("10.0.0.{}", site.len()), None, false);
        r.site = site.into();
        r.checked_at = sshfleet_core::time::now_rfc3339();
        vec![r]
    };
    run_ending(store, "north.csv", at("north"), Ending::Finished);
    run_ending(store, "south.csv", at("south"), Ending::Finished);
    run_ending(store, "south.csv", at("south"), Ending::Interrupted);
    run_ending(store, "east.csv", at("east"), Ending::Interrupted);
    let heads: Vec<_> = store
        .open()
        .scope_heads()
        .unwrap()
        .into_iter()
        .map(|h| {
            (
                h.scope,
                h.complete.map(|r| r.id),
                h.interrupted.map(|r| r.id),
            )
        })
        .collect();
    assert_eq!(
        heads,
        [
            ("east.csv".to_owned(), None, Some(4)),
            ("north.csv".to_owned(), Some(1), None),
            ("south.csv".to_owned(), Some(2), Some(3)),
        ]
    );
    let sites: Vec<_> = store
        .open()
        .sites_last_seen()
        .unwrap()
        .into_iter()
        .map(|s| s.site)
        .collect();
    assert_eq!(sites, ["east", "north", "south"]);
}

const CASES: &[(&str, Case)] = &[
    ("drift_between_runs", drift_between_runs),
    (
        "baseline_is_the_last_completed_run_of_the_scope",
        baseline_is_the_last_completed_run_of_the_scope,
    ),
    ("runs_list", runs_list),
    ("timeline", timeline),
    ("prune_keeps_the_newest_runs", prune_keeps_the_newest_runs),
    ("prune_older_than", prune_older_than),
    ("newer_schema_is_refused", newer_schema_is_refused),
    (
        "locked_or_unreachable_is_said",
        locked_or_unreachable_is_said,
    ),
    (
        "host_key_is_the_next_runs_baseline",
        host_key_is_the_next_runs_baseline,
    ),
    ("fleet_heads_and_sites", fleet_heads_and_sites),
];

/// Runs `cases` on a fresh store of the back end each; names the cases that failed.
fn run_cases(cluster: Option<&Cluster>, cases: &[(&str, Case)]) {
    let mut failed = Vec::new();
    for (name, case) in cases {
        let dir = tempfile::tempdir().unwrap();
        let location = match cluster {
            Some(c) => PathBuf::from(c.database()),
            None => dir.path().join("h.sqlite"),
        };
        let store = Store {
            location,
            cluster,
            _dir: dir,
        };
        if std::panic::catch_unwind(AssertUnwindSafe(|| case(&store))).is_err() {
            failed.push(*name);
        }
    }
    assert!(failed.is_empty(), "failed cases: {failed:?}");
}

#[test]
fn sqlite_history() {
    run_cases(None, CASES);
}

#[test]
fn postgresql_history() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    run_cases(Some(&cluster), CASES);
    run_cases(
        Some(&cluster),
        &[("three_concurrent_scanners", three_concurrent_scanners)],
    );
}
