//! Shared test plumbing: a simulated fleet with its inventory and truth files, and a way to
//! run the real binary against it with a bounded wait.

#![allow(dead_code, reason = "each test module uses a different part")]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use serde_json::Value;
use sshfleet_sim::{DeviceSpec, Fleet, SimConfig};
use tempfile::TempDir;

pub(crate) const PASSWORD: &str = "pass";

/// Upper bound on any one binary run; the binary's own timeouts end it far sooner.
const RUN_LIMIT: Duration = Duration::from_secs(120);

pub(crate) struct TestFleet {
    pub fleet: Fleet,
    pub dir: TempDir,
    pub inventory: PathBuf,
    pub truth: PathBuf,
}

impl TestFleet {
    pub(crate) async fn start(config: SimConfig) -> TestFleet {
        let fleet = Fleet::start(config).await.expect("simulator starts");
        let dir = tempfile::tempdir().expect("temp dir");
        let inventory = dir.path().join("inventory.csv");
        let truth = dir.path().join("truth.jsonl");
        let mut inv = std::fs::File::create(&inventory).unwrap();
        fleet.write_inventory(&mut inv).unwrap();
        let mut tr = std::fs::File::create(&truth).unwrap();
        fleet.write_truth(&mut tr).unwrap();
        TestFleet {
            fleet,
            dir,
            inventory,
            truth,
        }
    }

    /// A fleet of exactly these cameras, everything else the simulator's default.
    pub(crate) async fn of(specs: Vec<DeviceSpec>) -> TestFleet {
        TestFleet::start(SimConfig {
            specs: Some(specs),
            ..SimConfig::default()
        })
        .await
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `scan --inventory <fleet> -o <out.jsonl> --timeout 5s` plus `extra`.
    pub(crate) async fn scan(&self, out: &str, extra: &[&str]) -> (Output, Vec<Value>) {
        self.scan_with_env(out, extra, &[]).await
    }

    /// Scans the fleet as `n` shards (`shard0.jsonl` …), each a complete run, and returns
    /// the shard reports' paths, as `report merge` takes them.
    pub(crate) async fn scan_shards(&self, n: usize) -> Vec<String> {
        let mut shards = Vec::with_capacity(n);
        for k in 0..n {
            let name = format!("shard{k}.jsonl");
            let (output, _) = self.scan(&name, &["--shard", &format!("{k}/{n}")]).await;
            assert!(code(&output) <= 1, "{}", stderr(&output));
            shards.push(self.path(&name).display().to_string());
        }
        shards
    }

    /// [`TestFleet::scan`] with more environment variables than the password.
    pub(crate) async fn scan_with_env(
        &self,
        out: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> (Output, Vec<Value>) {
        let out_path = self.path(out);
        let mut scan = Sshfleet::scan(&self.inventory)
            .out(&out_path)
            .arg("--quiet");
        if !extra.contains(&"--timeout") {
            scan = scan.args(&["--timeout", "5s"]);
        }
        for (key, value) in env {
            scan = scan.env(key, value);
        }
        let output = scan.args(extra).run().await;
        let records = if out.ends_with(".jsonl") {
            read_jsonl(&out_path)
        } else {
            Vec::new()
        };
        (output, records)
    }

    pub(crate) fn truth(&self) -> HashMap<String, Value> {
        read_jsonl(&self.truth)
            .into_iter()
            .map(|v| (v["address"].as_str().unwrap().to_string(), v))
            .collect()
    }
}

/// One `scan` or `remediate` run of the real binary, built flag by flag:
/// `Sshfleet::scan(&inventory).out(&report).arg("--quiet").run().await`. The password is
/// [`PASSWORD`] unless [`Sshfleet::password`] says otherwise.
pub(crate) struct Sshfleet {
    argv: Vec<String>,
    env: Vec<(String, String)>,
}

impl Sshfleet {
    /// `scan --inventory <inventory>`.
    pub(crate) fn scan(inventory: &Path) -> Sshfleet {
        Sshfleet::command_on("scan", inventory)
    }

    /// `remediate --inventory <inventory>`.
    pub(crate) fn remediate(inventory: &Path) -> Sshfleet {
        Sshfleet::command_on("remediate", inventory)
    }

    /// `report merge --inventory <inventory>`; the shard reports follow as arguments.
    pub(crate) fn merge(inventory: &Path) -> Sshfleet {
        Sshfleet::command_on("report merge", inventory)
    }

    fn command_on(command: &str, inventory: &Path) -> Sshfleet {
        let mut argv: Vec<String> = command.split(' ').map(str::to_owned).collect();
        argv.extend(args(&["--inventory", &inventory.display().to_string()]));
        Sshfleet {
            argv,
            env: vec![("SSHFLEET_PASSWORD".to_owned(), PASSWORD.to_owned())],
        }
    }

    /// `-o <path>`.
    pub(crate) fn out(self, path: &Path) -> Sshfleet {
        self.args(&["-o", &path.display().to_string()])
    }

    /// `<flag> <path>`, for the other files a run writes or reads (`--html-out`, `--journal`).
    pub(crate) fn file(self, flag: &str, path: &Path) -> Sshfleet {
        self.args(&[flag, &path.display().to_string()])
    }

    pub(crate) fn arg(mut self, arg: &str) -> Sshfleet {
        self.argv.push(arg.to_owned());
        self
    }

    pub(crate) fn args(mut self, list: &[&str]) -> Sshfleet {
        self.argv.extend(list.iter().map(|a| a.to_string()));
        self
    }

    /// `SSHFLEET_PASSWORD` other than [`PASSWORD`].
    pub(crate) fn password(self, password: &str) -> Sshfleet {
        self.env("SSHFLEET_PASSWORD", password)
    }

    pub(crate) fn env(mut self, key: &str, value: &str) -> Sshfleet {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// The binary's arguments, for a run repeated with other flags.
    pub(crate) fn argv(&self) -> &[String] {
        &self.argv
    }

    /// The run, not yet started ([`command`]).
    pub(crate) fn command(&self) -> tokio::process::Command {
        let env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (&**k, &**v)).collect();
        command(&self.argv, &env)
    }

    /// Runs it to the end ([`run`]).
    pub(crate) async fn run(&self) -> Output {
        let env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (&**k, &**v)).collect();
        run(&self.argv, &env).await
    }
}

/// Runs the real binary with only the given environment (plus PATH), killing it if it
/// outlives the run limit.
pub(crate) async fn run(args: &[String], env: &[(&str, &str)]) -> Output {
    let mut cmd = command(args, env);
    tokio::time::timeout(RUN_LIMIT, cmd.output())
        .await
        .expect("binary finished within the run limit")
        .expect("binary ran")
}

/// The real binary with `args` and only the given environment (plus PATH), no stdin,
/// killed when dropped.
pub(crate) fn command(args: &[String], env: &[(&str, &str)]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_sshfleet"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    cmd
}

/// How often [`eventually`] looks again.
const POLL: Duration = Duration::from_millis(10);

/// Polls `cond` until it holds or `limit` has passed; whether it came to hold. For the state
/// of another process or task (a file growing, a mock's request count), which no event
/// announces.
pub(crate) async fn eventually(mut cond: impl FnMut() -> bool, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Says why a test cannot run here (`SKIPPED: <why>`) so that it may return as passed; with
/// the environment variable `switch` set (CI, which has what the test needs: root, openssl)
/// the test fails instead, so that a lost requirement cannot hide as a pass.
pub(crate) fn skip(switch: &str, why: &str) {
    assert!(
        std::env::var_os(switch).is_none(),
        "the test cannot run ({switch} is set): {why}"
    );
    println!("SKIPPED: {why}");
}

/// Sends SIGINT to a running child and waits for it to end, within the 30 s grace any
/// interrupted run gets; what it printed on the pipes it still holds.
pub(crate) async fn interrupt_and_wait(child: tokio::process::Child) -> Output {
    interrupt(&child);
    tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("exits within the grace period")
        .expect("wait")
}

/// Sends SIGINT (what Ctrl-C sends) to a running child.
pub(crate) fn interrupt(child: &tokio::process::Child) {
    let pid = child.id().expect("a running child").to_string();
    let sent = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill runs");
    assert!(sent.success(), "SIGINT sent to {pid}");
}

pub(crate) fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

pub(crate) fn read_jsonl(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSONL line {l:?}: {e}")))
        .collect()
}

pub(crate) fn by_address(records: &[Value]) -> HashMap<String, Value> {
    records
        .iter()
        .map(|r| (r["address"].as_str().unwrap().to_string(), r.clone()))
        .collect()
}

pub(crate) fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub(crate) fn code(output: &Output) -> i32 {
    output.status.code().unwrap_or(-1)
}

/// The first stdout line of a spawned `sshfleet sim`: its `ready …` announcement.
pub(crate) async fn ready_line(child: &mut tokio::process::Child) -> String {
    use tokio::io::AsyncBufReadExt as _;
    let stdout = child.stdout.take().expect("sim stdout is piped");
    let line = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::io::BufReader::new(stdout).lines().next_line(),
    )
    .await
    .expect("ready in time")
    .expect("read");
    line.expect("a ready line")
}

/// The value of `key=` in a ready line (`control`, `equinix`).
pub(crate) fn url_in<'a>(ready: &'a str, key: &str) -> &'a str {
    ready
        .split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {key}= in {ready:?}"))
}

/// Scans `inventory` with the real binary (`--timeout 5s`) and checks every device of
/// `truth` against the report.
pub(crate) async fn scan_matches_truth(inventory: &Path, truth: &Path, out: &Path) {
    let output = Sshfleet::scan(inventory)
        .out(out)
        .args(&["--timeout", "5s", "--quiet"])
        .run()
        .await;
    assert!(matches!(code(&output), 0 | 1), "{}", stderr(&output));
    let report = by_address(&read_jsonl(out));
    let truth = read_jsonl(truth);
    assert_eq!(report.len(), truth.len(), "one record per device");
    for want in truth {
        let got = &report[want["address"].as_str().expect("address")];
        assert_eq!(got["status"], want["expect_status"], "{got} vs {want}");
        assert_eq!(got["ssh_enabled"], want["ssh_enabled"], "{got} vs {want}");
        assert_eq!(got["serial"], want["serial"], "{got} vs {want}");
    }
}
