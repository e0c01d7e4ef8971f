//! `--format ocsf`: the findings validate against OCSF's own schema (a real validator from
//! PyPI, `.ci/install-deps`), one per device and control, under uids that stay the same from
//! run to run, with the activity the drift says after another client changed the fleet.

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value;
use sshfleet_sim::{FaultProfile, SimConfig};

use crate::support::{code, read_jsonl, skip, stderr, Sshfleet, TestFleet};

/// The OCSF version the findings claim (`metadata.version`).
const OCSF_VERSION: &str = "1.5.0";

/// Runs the validator over `path`: `false` when it is not installed (the test was skipped).
fn validates(path: &Path) -> bool {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/ocsf/validate.py");
    let output = std::process::Command::new("python3")
        .arg(&script)
        .arg(OCSF_VERSION)
        .arg(path)
        .output();
    let output = match output {
        Ok(output) => output,
        Err(e) => {
            skip("SSHFLEET_REQUIRE_OCSF", &format!("python3 cannot run: {e}"));
            return false;
        }
    };
    let said = String::from_utf8_lossy(&output.stderr);
    if output.status.code() == Some(3) {
        skip(
            "SSHFLEET_REQUIRE_OCSF",
            &format!("the OCSF validator is not installed (.ci/install-deps): {said}"),
        );
        return false;
    }
    assert!(
        output.status.success(),
        "the findings do not validate against OCSF {OCSF_VERSION}:\n{said}"
    );
    true
}

/// One `scan --format ocsf` into the run history; the findings written.
async fn scan(fleet: &TestFleet, out: &str) -> Vec<Value> {
    let path = fleet.path(out);
    let output = Sshfleet::scan(&fleet.inventory)
        .out(&path)
        .file("--history", &fleet.path("history.db"))
        .args(&["--format", "ocsf", "--expect", "disabled", "--probe-ssh"])
        .args(&["--timeout", "5s", "--quiet"])
        .run()
        .await;
    assert!(code(&output) <= 1, "{}", stderr(&output));
    validates(&path);
    read_jsonl(&path)
}

/// Devices × controls, from a plain JSON Lines scan of the same fleet: the SSH state of each
/// camera, and its crypto grade and Terrapin verdict where the evidence holds them.
async fn expected_findings(fleet: &TestFleet) -> usize {
    let (output, records) = fleet
        .scan("plain.jsonl", &["--expect", "disabled", "--probe-ssh"])
        .await;
    assert!(code(&output) <= 1, "{}", stderr(&output));
    records
        .iter()
        .map(|r| {
            1 + usize::from(!r["ssh_crypto"].is_null()) + usize::from(!r["ssh_terrapin"].is_null())
        })
        .sum()
}

fn uid(finding: &Value) -> String {
    finding["finding_info"]["uid"].as_str().unwrap().to_owned()
}

/// The activity of each finding, by uid.
fn activities(findings: &[Value]) -> HashMap<String, String> {
    findings
        .iter()
        .map(|f| (uid(f), f["activity_name"].as_str().unwrap().to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn findings_validate_keep_their_uids_and_follow_the_drift() {
    let fleet = TestFleet::start(SimConfig {
        devices: 8,
        seed: 5,
        faults: FaultProfile::None,
        ..SimConfig::default()
    })
    .await;
    for i in 0..fleet.fleet.len() {
        fleet.fleet.set_ssh_enabled(i, i == 1 || i == 3);
    }
    let first = scan(&fleet, "first.jsonl").await;
    // SSH in desired state for every camera; crypto grade and Terrapin only where SSH is on
    // and the evidence holds them (cameras 1 and 3).
    assert_eq!(first.len(), expected_findings(&fleet).await, "{first:#?}");
    let per_control = |findings: &[Value], control: &str| {
        findings
            .iter()
            .filter(|f| f["compliance"]["control"] == control)
            .count()
    };
    assert_eq!(per_control(&first, "ssh_state"), 8);
    // Evidence only where SSH is on.
    assert!(per_control(&first, "ssh_crypto") + per_control(&first, "ssh_terrapin") <= 4);
    assert!(first.iter().all(|f| f["class_uid"] == 2003
        && f["category_uid"] == 2
        && f["device"]["type_id"] == 7
        && f["activity_name"] == "Create"));
    let failing: Vec<&Value> = first
        .iter()
        .filter(|f| {
            f["compliance"]["control"] == "ssh_state" && f["compliance"]["status"] == "Fail"
        })
        .collect();
    let address = |i: usize| fleet.fleet.address(i).to_owned();
    let failing_at: Vec<&str> = failing
        .iter()
        .map(|f| f["unmapped"]["address"].as_str().unwrap())
        .collect();
    assert_eq!(failing_at.len(), 2);
    assert!(failing_at.contains(&address(1).as_str()) && failing_at.contains(&address(3).as_str()));

    // Nothing changed: the same findings under the same uids, each updated.
    let second = scan(&fleet, "second.jsonl").await;
    let (one, two) = (activities(&first), activities(&second));
    let mut uids: Vec<&String> = one.keys().collect();
    let mut again: Vec<&String> = two.keys().collect();
    uids.sort();
    again.sort();
    assert_eq!(uids, again, "the uids are stable across runs");
    assert!(two.values().all(|a| a == "Update"), "{two:?}");

    // Another client turns SSH on for 5 (regressed) and off for 1 (fixed); camera 6 leaves
    // the inventory (gone).
    fleet.fleet.set_ssh_enabled(5, true);
    fleet.fleet.set_ssh_enabled(1, false);
    let inventory = std::fs::read_to_string(&fleet.inventory).unwrap();
    let removed = address(6);
    let kept: String = inventory
        .lines()
        .filter(|l| !l.starts_with(&format!("{removed},")))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&fleet.inventory, kept).unwrap();
    let third = scan(&fleet, "third.jsonl").await;
    let state_of = |i: usize| {
        third
            .iter()
            .find(|f| {
                f["compliance"]["control"] == "ssh_state" && f["unmapped"]["address"] == address(i)
            })
            .unwrap_or_else(|| panic!("no finding for camera {i}: {third:#?}"))
    };
    assert_eq!(state_of(5)["activity_name"], "Create");
    assert_eq!(state_of(5)["compliance"]["status"], "Fail");
    assert_eq!(state_of(1)["activity_name"], "Close");
    assert_eq!(state_of(1)["compliance"]["status"], "Pass");
    assert_eq!(state_of(6)["activity_name"], "Close", "the gone camera");
    assert_eq!(state_of(6)["unmapped"]["change"], "gone");
    for i in [0, 2, 3, 4, 7] {
        assert_eq!(state_of(i)["activity_name"], "Update", "camera {i}");
    }
    // The closed findings are the same findings the first run opened.
    for i in [1, 6] {
        let uid = uid(state_of(i));
        assert!(one.contains_key(&uid), "{uid} was opened before");
    }
    // The 7 cameras seen, with their evidence, and the one gone.
    assert_eq!(
        third.len(),
        expected_findings(&fleet).await + 1,
        "{third:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_previous_run_every_finding_is_created() {
    let fleet = TestFleet::start(SimConfig {
        devices: 2,
        faults: FaultProfile::None,
        ..SimConfig::default()
    })
    .await;
    let (output, _) = fleet
        .scan("r.jsonl", &["--format", "ocsf", "--expect", "disabled"])
        .await;
    assert!(code(&output) <= 1, "{}", stderr(&output));
    let findings = read_jsonl(&fleet.path("r.jsonl"));
    assert_eq!(findings.len(), 2);
    // Without a previous run every finding is opened.
    assert!(findings.iter().all(|f| f["activity_name"] == "Create"));
    validates(&fleet.path("r.jsonl"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_refuses_ocsf_it_is_for_device_reports() {
    let fleet = TestFleet::start(SimConfig {
        devices: 2,
        faults: FaultProfile::None,
        ..SimConfig::default()
    })
    .await;
    let (output, _) = fleet.scan("r.jsonl", &[]).await;
    assert!(code(&output) <= 1, "{}", stderr(&output));
    let report = fleet.path("r.jsonl").display().to_string();
    let output = crate::support::run(
        &crate::support::args(&["diff", &report, &report, "--format", "ocsf"]),
        &[],
    )
    .await;
    assert_eq!(code(&output), 2, "{}", stderr(&output));
    assert!(
        stderr(&output).contains("OCSF output is for device reports (scan, remediate)"),
        "{}",
        stderr(&output)
    );
}
