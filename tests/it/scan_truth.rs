//! A realistic fleet scanned by the real binary matches the simulator's truth, device by device.

use sshfleet_sim::{FaultProfile, SimConfig};

use crate::support::{by_address, code, stderr, TestFleet};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn realistic_fleet_report_matches_truth_for_every_device() {
    let fleet = TestFleet::start(SimConfig {
        devices: 600,
        seed: 7,
        faults: FaultProfile::Realistic,
        ..SimConfig::default()
    })
    .await;
    let (output, records) = fleet.scan("scan.jsonl", &["--retries", "0"]).await;
    assert_eq!(code(&output), 1, "findings expected: {}", stderr(&output));
    let truth = fleet.truth();
    let report = by_address(&records);
    assert_eq!(records.len(), truth.len(), "one record per device");
    let mut mismatches = Vec::new();
    for (address, want) in &truth {
        let got = &report[address];
        if got["status"] != want["expect_status"]
            || got["ssh_enabled"] != want["ssh_enabled"]
            || got["serial"] != want["serial"]
        {
            mismatches.push(format!(
                "{address} ({}): got {}/{}/{} want {}/{}/{} ({})",
                want["fault"],
                got["status"],
                got["ssh_enabled"],
                got["serial"],
                want["expect_status"],
                want["ssh_enabled"],
                want["serial"],
                got["error"]
            ));
        }
    }
    // Serials are unique, and a few cameras name none.
    let serials: Vec<&str> = records
        .iter()
        .filter_map(|r| r["serial"].as_str())
        .collect();
    let distinct: std::collections::HashSet<&&str> = serials.iter().collect();
    assert_eq!(distinct.len(), serials.len(), "serials are unique");
    assert!(
        serials.len() > 400 && serials.len() < records.len(),
        "{}",
        serials.len()
    );
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    fleet.fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_fleet_costs_three_requests_per_device() {
    let fleet = TestFleet::start(SimConfig {
        devices: 200,
        faults: FaultProfile::None,
        ..SimConfig::default()
    })
    .await;
    let (output, records) = fleet.scan("scan.jsonl", &[]).await;
    assert!(matches!(code(&output), 0 | 1), "{}", stderr(&output));
    assert!(records.iter().all(|r| r["status"] == "ok"));
    let requests: u64 = fleet.fleet.snapshot().iter().map(|d| d.requests).sum();
    // getSupportedVersions (challenged + authenticated) then getSshInfo pre-authenticated.
    assert_eq!(requests, 3 * 200);
    fleet.fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_code_is_zero_only_when_every_device_is_ok_and_compliant() {
    let fleet = TestFleet::start(SimConfig {
        devices: 20,
        faults: FaultProfile::None,
        ..SimConfig::default()
    })
    .await;
    for i in 0..fleet.fleet.len() {
        fleet.fleet.set_ssh_enabled(i, false);
    }
    let (output, records) = fleet.scan("clean.jsonl", &["--expect", "disabled"]).await;
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert!(records.iter().all(|r| r["compliant"] == true));

    fleet.fleet.set_ssh_enabled(3, true);
    let (output, records) = fleet
        .scan("one-open.jsonl", &["--expect", "disabled"])
        .await;
    assert_eq!(code(&output), 1);
    let open: Vec<_> = records.iter().filter(|r| r["compliant"] == false).collect();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0]["address"], fleet.fleet.address(3));
    assert_eq!(open[0]["ssh_enabled"], true);
    fleet.fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_partition_the_fleet() {
    let fleet = TestFleet::start(SimConfig {
        devices: 60,
        faults: FaultProfile::None,
        ..SimConfig::default()
    })
    .await;
    let mut seen = Vec::new();
    for k in 0..3 {
        let shard = format!("{k}/3");
        let (output, records) = fleet
            .scan(&format!("shard{k}.jsonl"), &["--shard", &shard])
            .await;
        assert!(matches!(code(&output), 0 | 1), "{}", stderr(&output));
        seen.extend(
            records
                .iter()
                .map(|r| r["address"].as_str().unwrap_or_default().to_string()),
        );
    }
    seen.sort();
    let mut all: Vec<String> = (0..fleet.fleet.len())
        .map(|i| fleet.fleet.address(i).to_string())
        .collect();
    all.sort();
    assert_eq!(seen, all, "every device in exactly one shard");
    fleet.fleet.shutdown().await;
}
