//! `--device-info`: model, firmware and serial from `basicdeviceinfo.cgi`, right for every
//! camera of a faulty fleet, at exactly one more request per camera, and none without it.

use serde_json::Value;
use sshfleet_sim::{FaultProfile, SimConfig};

use crate::support::{by_address, code, stderr, Sshfleet, TestFleet};

fn requests(fleet: &TestFleet) -> u64 {
    fleet.fleet.snapshot().iter().map(|d| d.requests).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_camera_reports_its_model_and_firmware_as_the_truth_says() {
    let fleet = TestFleet::start(SimConfig {
        devices: 200,
        seed: 41,
        faults: FaultProfile::Realistic,
        ..SimConfig::default()
    })
    .await;
    let (output, records) = fleet.scan("info.jsonl", &["--device-info"]).await;
    assert!(matches!(code(&output), 0 | 1), "{}", stderr(&output));
    let by_address = by_address(&records);
    let truth = fleet.truth();
    assert_eq!(by_address.len(), truth.len());
    let mut with_facts = 0;
    let mut wrong = Vec::new();
    for (address, t) in &truth {
        let rec = &by_address[address];
        for column in ["model", "firmware"] {
            if rec[column] != t[column] {
                wrong.push(format!(
                    "{address} {column}: got {} want {} ({})",
                    rec[column], t[column], t["fault"]
                ));
            }
        }
        if !t["model"].is_null() {
            with_facts += 1;
            let serial = rec["serial"].as_str().unwrap_or_default();
            assert_eq!(serial.len(), 12, "the device names its serial: {rec}");
            if let Some(realm_serial) = t["serial"].as_str() {
                assert_eq!(serial, realm_serial, "{rec}");
            }
        }
        // The SSH result is the one a scan without device info gives.
        assert_eq!(rec["status"], t["expect_status"], "{rec}");
    }
    assert!(
        wrong.is_empty(),
        "{} wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    assert!(with_facts > 150, "most cameras have facts: {with_facts}");
    // Old firmware without an SSH API is found by its version all the same.
    assert!(records
        .iter()
        .any(|r| r["status"] == "unsupported" && r["firmware"].is_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_info_costs_one_request_per_camera_and_counts_ssh_by_firmware() {
    let fleet = TestFleet::start(SimConfig {
        devices: 30,
        seed: 42,
        faults: FaultProfile::None,
        ..SimConfig::default()
    })
    .await;
    for i in 0..fleet.fleet.len() {
        fleet.fleet.set_ssh_enabled(i, i % 3 == 0);
    }
    let before = requests(&fleet);
    let (plain, records) = fleet.scan("plain.jsonl", &[]).await;
    assert_eq!(code(&plain), 1, "{}", stderr(&plain));
    let after_plain = requests(&fleet);
    assert_eq!(
        after_plain - before,
        3 * 30,
        "three requests a camera without --device-info"
    );
    assert!(records
        .iter()
        .all(|r| r["model"].is_null() && r["firmware"].is_null()));

    let out = fleet.scan("info.jsonl", &["--device-info"]).await.0;
    assert_eq!(code(&out), 1);
    assert_eq!(requests(&fleet) - after_plain, 4 * 30, "four with it");
    // The summary counts SSH-enabled cameras by firmware (run without --quiet to see it).
    let again = fleet.path("again.jsonl");
    let output = Sshfleet::scan(&fleet.inventory)
        .out(&again)
        .arg("--device-info")
        .run()
        .await;
    let err = stderr(&output);
    let records = crate::support::read_jsonl(&again);
    let mut expected: Vec<(String, usize)> = Vec::new();
    for r in records
        .iter()
        .filter(|r| r["ssh_enabled"] == Value::Bool(true))
    {
        let fw = r["firmware"].as_str().unwrap().to_owned();
        match expected.iter_mut().find(|(f, _)| *f == fw) {
            Some((_, n)) => *n += 1,
            None => expected.push((fw, 1)),
        }
    }
    let line = err
        .lines()
        .find(|l| l.starts_with("SSH enabled by firmware: "))
        .unwrap_or_else(|| panic!("no firmware line:\n{err}"));
    for (fw, n) in &expected {
        assert!(line.contains(&format!("{fw} {n}")), "{line} lacks {fw} {n}");
    }
}
