//! `--history FILE` naming another program's SQLite file: refused, its bytes unchanged —
//! not switched to WAL, no table created in it — whatever its user_version says.

use std::path::Path;
use std::process::Command;

use sshfleet_sim::{FaultProfile, SimConfig};

use crate::support::{code, stderr, TestFleet};

/// An SQLite file made by the real `sqlite3` shell from `sql`.
fn sqlite_file(path: &Path, sql: &str) -> Vec<u8> {
    let made = Command::new("sqlite3")
        .arg(path)
        .arg(sql)
        .output()
        .unwrap_or_else(|e| panic!("sqlite3 runs (Debian package sqlite3): {e}"));
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    std::fs::read(path).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_programs_sqlite_file_is_refused_and_left_byte_for_byte() {
    let fleet = TestFleet::start(SimConfig {
        devices: 2,
        seed: 71,
        faults: FaultProfile::None,
        ..SimConfig::default()
    })
    .await;
    let foreign = [
        // Tables and a schema version of its own: was switched to WAL, then refused.
        (
            "app.db",
            "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT); \
             INSERT INTO notes (body) VALUES ('keep me'); PRAGMA user_version = 1;",
        ),
        // No table yet, but another program's application_id: had sshfleet's tables made in it.
        ("empty-app.db", "PRAGMA application_id = 1234; VACUUM;"),
        // A version beyond sshfleet's, without its marker: not "a newer sshfleet".
        ("v7.db", "CREATE TABLE t (x); PRAGMA user_version = 7;"),
    ];
    for (name, sql) in foreign {
        let path = fleet.path(name);
        let before = sqlite_file(&path, sql);
        let history = path.display().to_string();
        let out = format!("{name}.jsonl");
        let (output, _) = fleet.scan(&out, &["--history", &history]).await;
        let err = stderr(&output);
        assert_eq!(code(&output), 2, "{name}: {err}");
        let after = std::fs::read(&path).unwrap();
        assert!(after == before, "{name}: its bytes changed\n{err}");
        assert!(
            err.contains("is not an sshfleet history") && err.contains("left untouched"),
            "{name}: {err}"
        );
        for suffix in ["-wal", "-shm", "-journal"] {
            let beside = fleet.path(&format!("{name}{suffix}"));
            assert!(!beside.exists(), "{name}: {} made", beside.display());
        }
    }

    // sshfleet's own history is still made, and used again.
    let own = fleet.path("fleet.sqlite").display().to_string();
    for run in ["a.jsonl", "b.jsonl"] {
        let (output, records) = fleet.scan(run, &["--history", &own]).await;
        assert!(matches!(code(&output), 0 | 1), "{}", stderr(&output));
        assert_eq!(records.len(), 2);
    }
}
