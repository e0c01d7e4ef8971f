//! A throwaway PostgreSQL cluster for tests: Debian's `initdb` + `pg_ctl` on a Unix socket
//! in a temporary directory (no TCP), one per test process, a database per test, stopped
//! when the guard drops (even on a panic) and, should the process be killed, by a watchdog
//! that outlives it by at most a second. As root (CI), the server runs as `nobody`, since
//! PostgreSQL refuses to run as root.
//!
//! Without PostgreSQL's binaries the tests that need it are skipped with a message, unless
//! `SSHFLEET_REQUIRE_POSTGRES=1` (CI), which makes that a failure.

#![allow(dead_code, reason = "each test binary uses part of it")]
#![allow(
    clippy::expect_used,
    reason = "a test set-up that fails is a failed test"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// The server's superuser, whoever runs it.
const SUPERUSER: &str = "sshfleet";

pub(crate) struct Cluster {
    bin: PathBuf,
    data: PathBuf,
    socket: PathBuf,
    /// The unprivileged user the server runs as when the tests run as root.
    run_as: Option<&'static str>,
    databases: AtomicU32,
    /// Removed last (after the server stopped).
    _dir: tempfile::TempDir,
}

/// The directory of `initdb`, `pg_ctl` and `psql`: `SSHFLEET_PG_BIN`, else the newest
/// `/usr/lib/postgresql/N/bin`, else `pg_config --bindir`.
fn binaries() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("SSHFLEET_PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            Some((version, e.path().join("bin")))
        })
        .filter(|(_, bin)| bin.join("initdb").exists())
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    let out = Command::new("pg_config").arg("--bindir").output().ok()?;
    let bin = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    bin.join("initdb").exists().then_some(bin)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

impl Cluster {
    /// Starts a cluster, or `None` (after saying why) when PostgreSQL is not installed and
    /// not required.
    pub(crate) fn start() -> Option<Cluster> {
        let Some(bin) = binaries() else {
            assert!(
                std::env::var("SSHFLEET_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "SSHFLEET_REQUIRE_POSTGRES=1 but no PostgreSQL binaries (initdb, pg_ctl): \
                 install Debian's postgresql (.ci/install-deps)"
            );
            eprintln!(
                "SKIPPED: the PostgreSQL half of this test: no initdb/pg_ctl \
                 (install Debian's postgresql, or set SSHFLEET_PG_BIN)"
            );
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("pg")
            .tempdir()
            .expect("a temporary directory");
        let run_as = is_root().then_some("nobody");
        if let Some(user) = run_as {
            chown(dir.path(), user);
        }
        let cluster = Cluster {
            data: dir.path().join("data"),
            socket: dir.path().to_owned(),
            bin,
            run_as,
            databases: AtomicU32::new(0),
            _dir: dir,
        };
        cluster.init();
        Some(cluster)
    }

    /// A command of the cluster's binaries, as the server's user.
    fn server_command(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        let mut command = match self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(program);
                c
            }
            None => Command::new(program),
        };
        command.stdin(Stdio::null());
        command
    }

    fn run(&self, mut command: Command, what: &str) {
        let out = command.output().expect(what);
        assert!(
            out.status.success(),
            "{what} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `initdb`, then `pg_ctl start` (it waits, bounded, until the server takes
    /// connections) on the Unix socket only, and the watchdog.
    fn init(&self) {
        let mut initdb = self.server_command("initdb");
        initdb
            .arg("-D")
            .arg(&self.data)
            .args(["-U", SUPERUSER, "--auth=trust", "--no-sync", "-E", "UTF8"])
            .args(["--locale=C"]);
        self.run(initdb, "initdb");
        self.start_server();
        self.watchdog();
    }

    /// `pg_ctl start` on the cluster's data and socket, waiting (bounded) until the server
    /// takes connections.
    fn start_server(&self) {
        let options = format!(
            "-c listen_addresses='' -k {} -c fsync=off -c full_page_writes=off \
             -c synchronous_commit=off -c max_connections=40",
            self.socket.display()
        );
        let mut start = self.server_command("pg_ctl");
        start
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(self.socket.join("log"))
            .args(["-w", "-t", "60", "-o", &options, "start"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        self.run(start, "pg_ctl start");
    }

    /// Stops the server as `pg_ctl stop -m MODE` does (`fast`: each session is told and
    /// closed; `immediate`: killed), waiting (bounded) until it is down: the central store
    /// going away under a client.
    pub(crate) fn stop(&self, mode: &str) {
        let mut stop = self.server_command("pg_ctl");
        stop.arg("-D")
            .arg(&self.data)
            .args(["-m", mode, "-w", "-t", "30", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        self.run(stop, "pg_ctl stop");
    }

    /// Starts the stopped server again, with its data, on the same socket.
    pub(crate) fn restart(&self) {
        self.start_server();
    }

    /// A shell that stops the server once this process is gone (killed, say), polling once
    /// a second: cleanup only, never synchronisation.
    fn watchdog(&self) {
        let stop = format!(
            "{} {} -D {} stop -m immediate",
            self.run_as
                .map_or(String::new(), |u| format!("runuser -u {u} --")),
            self.bin.join("pg_ctl").display(),
            self.data.display()
        );
        let script = format!(
            "while kill -0 {} 2>/dev/null; do sleep 1; done; [ -d {} ] && {stop}",
            std::process::id(),
            self.data.display()
        );
        let _ = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
    }

    /// A new empty database; its URL (Unix socket).
    pub(crate) fn database(&self) -> String {
        let n = self.databases.fetch_add(1, Ordering::Relaxed);
        let name = format!("t{n}");
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        self.url(&name)
    }

    /// The URL of database `name`.
    pub(crate) fn url(&self, name: &str) -> String {
        format!(
            "postgresql://{SUPERUSER}@/{name}?host={}",
            self.socket.display()
        )
    }

    /// The output of `sql` run by `psql` in database `name` (unaligned, no headers).
    pub(crate) fn psql(&self, name: &str, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .arg("-h")
            .arg(&self.socket)
            .args(["-U", SUPERUSER, "-d", name, "-c", sql])
            .stdin(Stdio::null())
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "psql {sql:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// The database name of a URL this cluster gave.
    pub(crate) fn name_of(url: &str) -> &str {
        let tail = url.split_once("@/").map_or(url, |(_, t)| t);
        tail.split_once('?').map_or(tail, |(name, _)| name)
    }

    pub(crate) fn socket(&self) -> &Path {
        &self.socket
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let mut stop = self.server_command("pg_ctl");
        stop.arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "-t", "30", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let _ = stop.status();
    }
}

/// Gives `path` to `user` (the server's data and socket live there).
fn chown(path: &Path, user: &str) {
    let status = Command::new("chown")
        .arg(user)
        .arg(path)
        .status()
        .expect("chown");
    assert!(status.success(), "chown {user} {}", path.display());
}
