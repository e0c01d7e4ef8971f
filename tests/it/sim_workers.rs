//! `sshfleet sim` split across worker processes, forced at small scale with
//! `SSHFLEET_SIM_DEVICES_PER_PROCESS`: the same fleet as one process, scanned for real, one
//! control API over all parts, and no process left behind however it ends.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, BufReader};
use tokio::process::{Child, ChildStderr, Command};

use crate::sim_command::http_get;
use crate::support::{read_jsonl, scan_matches_truth};

const DEVICES: usize = 130;
/// 130 cameras at 50 per process: three workers of 44, 43 and 43 cameras.
const PER_PROCESS: &str = "50";
const BOUND: Duration = Duration::from_secs(30);

/// A running `sshfleet sim` with its files; killed if the test ends early.
struct Sim {
    child: Child,
    stderr: ChildStderr,
    ready: String,
    dir: TempDir,
}

impl Sim {
    /// `sim --devices 130 --seed S --inventory-out … --truth-out … --control 127.0.0.1:0`,
    /// split when `per_process` is given, once its ready line is out.
    async fn start(seed: &str, per_process: Option<&str>) -> Sim {
        let dir = tempfile::tempdir().expect("dir");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sshfleet"));
        cmd.args(["sim", "--devices", &DEVICES.to_string(), "--seed", seed])
            .args(["--control", "127.0.0.1:0"])
            .arg("--inventory-out")
            .arg(dir.path().join("inventory.csv"))
            .arg("--truth-out")
            .arg(dir.path().join("truth.jsonl"))
            .env_remove("SSHFLEET_SIM_DEVICES_PER_PROCESS")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(n) = per_process {
            cmd.env("SSHFLEET_SIM_DEVICES_PER_PROCESS", n);
        }
        let mut child = cmd.spawn().expect("spawn sim");
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(BOUND, lines.next_line())
            .await
            .expect("ready in time")
            .expect("read")
            .expect("a ready line");
        Sim {
            child,
            stderr,
            ready,
            dir,
        }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn control(&self) -> &str {
        self.ready
            .split_whitespace()
            .find_map(|w| w.strip_prefix("control="))
            .expect("control url")
    }

    fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    /// The supervisor's children, from every thread's `children` list.
    fn workers(&self) -> Vec<u32> {
        let tasks = std::fs::read_dir(format!("/proc/{}/task", self.pid())).expect("tasks");
        let mut pids: Vec<u32> = tasks
            .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("children")).ok())
            .flat_map(|list| {
                let pids: Vec<u32> = list
                    .split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect();
                pids
            })
            .collect();
        pids.sort_unstable();
        pids
    }

    /// Waits for the supervisor's exit, then for the end of its stderr: every worker holds
    /// that pipe too, so the end means every process of the fleet is gone.
    async fn wait_all(mut self) -> (ExitStatus, String) {
        let status = tokio::time::timeout(BOUND, self.child.wait())
            .await
            .expect("supervisor exits")
            .expect("wait");
        let mut text = String::new();
        tokio::time::timeout(BOUND, self.stderr.read_to_string(&mut text))
            .await
            .expect("every worker closed stderr: all exited")
            .expect("read stderr");
        (status, text)
    }
}

fn signal(pid: u32, name: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{name} {pid}");
}

/// Running or a zombie not yet reaped, as opposed to gone.
fn is_running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| Some(stat.rsplit_once(") ")?.1.starts_with(|c| c != 'Z')))
        .unwrap_or(false)
}

/// Every line of a file with its address column (the first) and, in the inventory, its
/// `ssh_port` column (the last) removed: ports differ per run.
fn without_addresses(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).expect("file");
    let lines = text
        .lines()
        .map(|line| match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(mut fields)) => {
                fields.remove("address");
                Value::Object(fields).to_string()
            }
            _ => {
                let rest = line.split_once(',').map_or(line, |(_, rest)| rest);
                rest.rsplit_once(',')
                    .map_or(rest, |(kept, _)| kept)
                    .to_owned()
            }
        });
    lines.collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_fleet_is_the_fleet_one_process_serves() {
    let one = Sim::start("11", None).await;
    let split = Sim::start("11", Some(PER_PROCESS)).await;
    assert!(one.workers().is_empty());
    assert_eq!(split.workers().len(), 3);
    assert_eq!(
        split.ready,
        one.ready.replace(one.control(), split.control())
    );
    for file in ["truth.jsonl", "inventory.csv"] {
        let (a, b) = (one.file(file), split.file(file));
        assert_eq!(without_addresses(&a), without_addresses(&b), "{file}");
    }
    assert_eq!(read_jsonl(&split.file("truth.jsonl")).len(), DEVICES);
    for sim in [one, split] {
        signal(sim.pid(), "TERM");
        let (status, _) = sim.wait_all().await;
        assert!(status.success(), "{status:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_fleet_scans_like_its_truth_and_one_control_api_covers_it() {
    let sim = Sim::start("12", Some(PER_PROCESS)).await;
    let inventory = sim.file("inventory.csv");
    scan_matches_truth(
        &inventory,
        &sim.file("truth.jsonl"),
        &sim.file("scan.jsonl"),
    )
    .await;

    let devices: Value =
        serde_json::from_str(&http_get(sim.control(), "/devices").await).expect("one JSON array");
    let devices = devices.as_array().expect("array");
    let addresses: Vec<&str> = devices
        .iter()
        .filter_map(|d| d["address"].as_str())
        .collect();
    let text = std::fs::read_to_string(&inventory).expect("inventory");
    let listed: Vec<&str> = text
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').next())
        .collect();
    assert_eq!(addresses, listed, "every camera, in inventory order");
    for part in [0..44, 44..87, 87..130] {
        let asked = devices[part.clone()]
            .iter()
            .any(|d| d["requests"].as_u64() > Some(0));
        assert!(asked, "the scan reached cameras {part:?}");
    }
    let last: Value =
        serde_json::from_str(&http_get(sim.control(), "/devices/129").await).expect("one device");
    assert_eq!(last["address"], listed[129]);
    assert_eq!(
        http_get(sim.control(), "/devices/130").await.trim(),
        "404 Not Found"
    );

    signal(sim.pid(), "TERM");
    let (status, _) = sim.wait_all().await;
    assert!(status.success(), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_supervisor_and_every_worker() {
    let sim = Sim::start("13", Some(PER_PROCESS)).await;
    let workers = sim.workers();
    assert_eq!(workers.len(), 3);
    signal(sim.pid(), "TERM");
    let (status, text) = sim.wait_all().await;
    assert!(status.success(), "{status:?}: {text}");
    assert!(text.is_empty(), "{text}");
    assert!(!workers.iter().any(|&pid| is_running(pid)), "{workers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dying_worker_fails_the_supervisor_which_stops_the_rest() {
    let sim = Sim::start("14", Some(PER_PROCESS)).await;
    let workers = sim.workers();
    signal(workers[1], "KILL");
    let (status, text) = sim.wait_all().await;
    assert!(!status.success(), "{status:?}");
    let victim = format!("pid {}", workers[1]);
    assert!(
        text.contains("exited unexpectedly") && text.contains(&victim),
        "{text}"
    );
    assert!(!workers.iter().any(|&pid| is_running(pid)), "{workers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_stop_when_their_supervisor_is_killed() {
    let sim = Sim::start("15", Some(PER_PROCESS)).await;
    let workers = sim.workers();
    signal(sim.pid(), "KILL");
    let (status, _) = sim.wait_all().await;
    assert!(!status.success());
    assert!(!workers.iter().any(|&pid| is_running(pid)), "{workers:?}");
}
