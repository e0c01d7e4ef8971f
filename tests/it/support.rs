//! Shared test plumbing: a simulated fleet with its inventory and truth files, and a way to
//! run the real binary against it with a bounded wait.

#![allow(dead_code, reason = "each test module uses a different part")]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use serde_json::Value;
use sshfleet::sim::{Fleet, SimConfig};
use tempfile::TempDir;

pub const PASSWORD: &str = "pass";

/// Upper bound on any one binary run; the binary's own timeouts end it far sooner.
const RUN_LIMIT: Duration = Duration::from_secs(120);

pub struct TestFleet {
    pub fleet: Fleet,
    pub dir: TempDir,
    pub inventory: PathBuf,
    pub truth: PathBuf,
}

impl TestFleet {
    pub async fn start(config: SimConfig) -> TestFleet {
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

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `scan --inventory <fleet> -o <out.jsonl> --timeout 5s` plus `extra`.
    pub async fn scan(&self, out: &str, extra: &[&str]) -> (Output, Vec<Value>) {
        self.scan_with_env(out, extra, &[]).await
    }

    /// Scans the fleet as `n` shards (`shard0.jsonl` …), each a complete run, and returns
    /// the shard reports' paths, as `report merge` takes them.
    pub async fn scan_shards(&self, n: usize) -> Vec<String> {
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
    pub async fn scan_with_env(
        &self,
        out: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> (Output, Vec<Value>) {
        let out_path = self.path(out);
        let mut args = vec![
            "scan".to_string(),
            "--inventory".into(),
            self.inventory.display().to_string(),
            "-o".into(),
            out_path.display().to_string(),
            "--quiet".into(),
        ];
        if !extra.contains(&"--timeout") {
            args.extend(["--timeout".to_string(), "5s".to_string()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut env = env.to_vec();
        env.push(("SSHFLEET_PASSWORD", PASSWORD));
        let output = run(&args, &env).await;
        let records = if out.ends_with(".jsonl") {
            read_jsonl(&out_path)
        } else {
            Vec::new()
        };
        (output, records)
    }

    pub fn truth(&self) -> HashMap<String, Value> {
        read_jsonl(&self.truth)
            .into_iter()
            .map(|v| (v["address"].as_str().unwrap().to_string(), v))
            .collect()
    }
}

/// Runs the real binary with only the given environment (plus PATH), killing it if it
/// outlives the run limit.
pub async fn run(args: &[String], env: &[(&str, &str)]) -> Output {
    let mut cmd = command(args, env);
    tokio::time::timeout(RUN_LIMIT, cmd.output())
        .await
        .expect("binary finished within the run limit")
        .expect("binary ran")
}

/// The real binary with `args` and only the given environment (plus PATH), no stdin,
/// killed when dropped.
pub fn command(args: &[String], env: &[(&str, &str)]) -> tokio::process::Command {
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
pub async fn eventually(mut cond: impl FnMut() -> bool, limit: Duration) -> bool {
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
pub fn skip(switch: &str, why: &str) {
    assert!(
        std::env::var_os(switch).is_none(),
        "the test cannot run ({switch} is set): {why}"
    );
    println!("SKIPPED: {why}");
}

/// Sends SIGINT (what Ctrl-C sends) to a running child.
pub fn interrupt(child: &tokio::process::Child) {
    let pid = child.id().expect("a running child").to_string();
    let sent = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill runs");
    assert!(sent.success(), "SIGINT sent to {pid}");
}

pub fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

pub fn read_jsonl(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSONL line {l:?}: {e}")))
        .collect()
}

pub fn by_address(records: &[Value]) -> HashMap<String, Value> {
    records
        .iter()
        .map(|r| (r["address"].as_str().unwrap().to_string(), r.clone()))
        .collect()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub fn code(output: &Output) -> i32 {
    output.status.code().unwrap_or(-1)
}

/// The first stdout line of a spawned `sshfleet sim`: its `ready …` announcement.
pub async fn ready_line(child: &mut tokio::process::Child) -> String {
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
pub fn url_in<'a>(ready: &'a str, key: &str) -> &'a str {
    ready
        .split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {key}= in {ready:?}"))
}

/// Scans `inventory` with the real binary (`--timeout 5s`) and checks every device of
/// `truth` against the report.
pub async fn scan_matches_truth(inventory: &Path, truth: &Path, out: &Path) {
    let output = run(
        &args(&[
            "scan",
            "--inventory",
            &inventory.display().to_string(),
            "-o",
            &out.display().to_string(),
            "--timeout",
            "5s",
            "--quiet",
        ]),
        &[("SSHFLEET_PASSWORD", PASSWORD)],
    )
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
