//! Diagnostics on stderr: they can never stop a run or cost its report, and they stay short.

use std::process::{Output, Stdio};
use std::time::Duration;

use sshfleet_sim::{FaultProfile, SimConfig};

use crate::support::{code, read_jsonl, stderr, Sshfleet, TestFleet, PASSWORD};

/// Runs the binary with stderr on `/dev/full`, where every write fails with ENOSPC.
async fn run_with_full_stderr(list: &[String]) -> Output {
    let full = std::fs::File::create("/dev/full").expect("/dev/full");
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_sshfleet"));
    cmd.args(list)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SSHFLEET_PASSWORD", PASSWORD)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(full))
        .kill_on_drop(true);
    // Not `output()`: tokio's would pipe stderr again.
    let child = cmd.spawn().expect("spawn");
    tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("finished in time")
        .expect("ran")
}

/// A fleet of 4 clean cameras whose inventory also holds a duplicate row (one warning).
async fn fleet_with_a_duplicate_row() -> TestFleet {
    let fleet = TestFleet::start(SimConfig {
        devices: 4,
        faults: FaultProfile::None,
        ..SimConfig::default()
    })
    .await;
    let mut text = std::fs::read_to_string(&fleet.inventory).expect("inventory");
    text.push_str(&format!("{},again,,disabled\n", fleet.fleet.address(0)));
    std::fs::write(&fleet.inventory, text).expect("write inventory");
    fleet
}

fn scan_args(fleet: &TestFleet, out: &str, extra: &[&str]) -> Sshfleet {
    Sshfleet::scan(&fleet.inventory)
        .out(&fleet.path(out))
        .args(&["--timeout", "5s"])
        .args(extra)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_stderr_neither_stops_the_scan_nor_costs_its_report() {
    let fleet = fleet_with_a_duplicate_row().await;
    let normal = scan_args(&fleet, "normal.jsonl", &[]).run().await;
    assert!(stderr(&normal).contains("duplicate"), "{}", stderr(&normal));
    let output = run_with_full_stderr(scan_args(&fleet, "full.jsonl", &[]).argv()).await;
    assert_eq!(code(&output), code(&normal), "the normal exit code");
    assert_eq!(
        read_jsonl(&fleet.path("full.jsonl")).len(),
        4,
        "every device"
    );
    fleet.fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_stderr_under_verbose_tracing_does_not_panic() {
    let fleet = TestFleet::start(SimConfig {
        devices: 4,
        faults: FaultProfile::None,
        ..SimConfig::default()
    })
    .await;
    let output = run_with_full_stderr(scan_args(&fleet, "v.jsonl", &["-vv"]).argv()).await;
    assert!(matches!(code(&output), 0 | 1), "exit {}", code(&output));
    assert_eq!(read_jsonl(&fleet.path("v.jsonl")).len(), 4);
    fleet.fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_duplicate_rows_give_ten_warnings_and_one_count() {
    let fleet = TestFleet::start(SimConfig {
        devices: 1,
        faults: FaultProfile::None,
        ..SimConfig::default()
    })
    .await;
    let mut text = std::fs::read_to_string(&fleet.inventory).expect("inventory");
    for _ in 0..5000 {
        text.push_str(&format!("{},dup,,disabled\n", fleet.fleet.address(0)));
    }
    std::fs::write(&fleet.inventory, text).expect("write inventory");
    let output = scan_args(&fleet, "dups.jsonl", &[]).run().await;
    let err = stderr(&output);
    assert_eq!(code(&output), 0, "{err}");
    let warnings: Vec<&str> = err.lines().filter(|l| l.starts_with("warning:")).collect();
    assert_eq!(warnings.len(), 11, "{warnings:#?}");
    assert_eq!(
        warnings
            .iter()
            .filter(|w| w.contains("duplicate of line 2"))
            .count(),
        10
    );
    assert!(
        warnings[10].contains("4990 more duplicate rows"),
        "{}",
        warnings[10]
    );
    assert_eq!(read_jsonl(&fleet.path("dups.jsonl")).len(), 1);
    fleet.fleet.shutdown().await;
}
