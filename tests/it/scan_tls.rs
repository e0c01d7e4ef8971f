//! TLS is verified by default; a self-signed camera passes only with --insecure, its CA, or a pin.

use sshfleet_sim::{FaultProfile, SimConfig};

use crate::support::TestFleet;

async fn https_fleet(devices: usize) -> TestFleet {
    TestFleet::start(SimConfig {
        devices,
        faults: FaultProfile::None,
        https: true,
        ..SimConfig::default()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_signed_camera_fails_verification_by_default() {
    let fleet = https_fleet(3).await;
    let (_, records) = fleet.scan("scan.jsonl", &[]).await;
    assert_eq!(records.len(), 3);
    for record in &records {
        assert_eq!(record["status"], "tls_error", "{record}");
        assert_eq!(record["ssh_enabled"], serde_json::Value::Null);
    }
    assert!(
        fleet.fleet.snapshot().iter().all(|d| d.requests == 0),
        "no request before trust"
    );
    fleet.fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insecure_reads_and_records_the_fingerprint() {
    let fleet = https_fleet(3).await;
    let (_, records) = fleet.scan("scan.jsonl", &["--insecure"]).await;
    for record in &records {
        assert_eq!(record["status"], "ok", "{record}");
        let fp = record["tls_fingerprint"].as_str().unwrap_or_default();
        assert_eq!(fp.len(), 64, "{record}");
        assert!(fp.bytes().all(|b| b.is_ascii_hexdigit()));
    }
    fleet.fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_ca_is_trusted_with_ca_file() {
    let fleet = https_fleet(2).await;
    let ca = fleet.path("ca.pem");
    std::fs::write(&ca, fleet.fleet.ca_pem().unwrap_or_default()).expect("ca");
    let (_, records) = fleet
        .scan("scan.jsonl", &["--ca-file", &ca.display().to_string()])
        .await;
    assert!(records.iter().all(|r| r["status"] == "ok"), "{records:?}");
    fleet.fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pins_from_a_first_scan_are_trusted_and_a_wrong_pin_is_not() {
    let fleet = https_fleet(2).await;
    let (_, first) = fleet.scan("tofu.jsonl", &["--insecure"]).await;
    let pins: String = first
        .iter()
        .map(|r| {
            format!(
                "{} {}\n",
                r["address"].as_str().unwrap_or_default(),
                r["tls_fingerprint"].as_str().unwrap_or_default()
            )
        })
        .collect();
    let pin_file = fleet.path("pins.txt");
    std::fs::write(&pin_file, pins).expect("pins");
    let (_, pinned) = fleet
        .scan(
            "pinned.jsonl",
            &["--pin-file", &pin_file.display().to_string()],
        )
        .await;
    assert!(pinned.iter().all(|r| r["status"] == "ok"), "{pinned:?}");

    let wrong = fleet.path("wrong.txt");
    std::fs::write(&wrong, format!("{}\n", "ab".repeat(32))).expect("pins");
    let (_, rejected) = fleet
        .scan(
            "rejected.jsonl",
            &["--pin-file", &wrong.display().to_string()],
        )
        .await;
    for record in &rejected {
        assert_eq!(record["status"], "tls_error", "{record}");
        assert!(
            record["error"].as_str().unwrap_or_default().contains("pin"),
            "{record}"
        );
    }
    fleet.fleet.shutdown().await;
}
