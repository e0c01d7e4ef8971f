//! Every status of the contract is reached, each from the device behaviour that causes it.

use std::io::Write as _;
use std::time::Duration;

use sshfleet_axis::vapix::session::{TEST_THROTTLE_BACKOFF_ENV, THROTTLE_BACKOFF};
use sshfleet_sim::{DeviceAuth, DeviceSpec, Fault, Firmware, SimConfig, SshFault};

use crate::support::{code, stderr, TestFleet};

fn spec(fault: Fault, firmware: Firmware, ssh_enabled: bool) -> DeviceSpec {
    DeviceSpec {
        ssh_enabled,
        fault,
        firmware,
        auth: DeviceAuth::Policy,
        ssh: SshFault::None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_device_behaviour_maps_to_its_status() {
    let cases: Vec<(DeviceSpec, &str, Option<bool>)> = vec![
        (spec(Fault::None, Firmware::Modern, true), "ok", Some(true)),
        (
            spec(Fault::None, Firmware::Modern, false),
            "ok",
            Some(false),
        ),
        (
            spec(Fault::Slow, Firmware::Modern, false),
            "ok",
            Some(false),
        ),
        (
            spec(Fault::None, Firmware::ParamOnly, true),
            "ok",
            Some(true),
        ),
        (
            spec(Fault::None, Firmware::ParamOnly, false),
            "ok",
            Some(false),
        ),
        (
            spec(Fault::Closed, Firmware::Modern, false),
            "unreachable",
            None,
        ),
        (spec(Fault::Hang, Firmware::Modern, false), "timeout", None),
        (
            spec(Fault::WrongPassword, Firmware::Modern, false),
            "auth_failed",
            None,
        ),
        (
            spec(Fault::Throttled, Firmware::Modern, false),
            "forbidden",
            None,
        ),
        (
            spec(Fault::NoAdmin, Firmware::Modern, false),
            "not_authorized",
            None,
        ),
        (
            spec(Fault::None, Firmware::Ancient, false),
            "unsupported",
            None,
        ),
        (
            spec(Fault::None, Firmware::V2Only, true),
            "unsupported",
            None,
        ),
        (
            spec(Fault::InternalError, Firmware::Modern, false),
            "api_error",
            None,
        ),
        (
            spec(Fault::MalformedJson, Firmware::Modern, false),
            "protocol_error",
            None,
        ),
        (
            spec(Fault::Oversized, Firmware::Modern, false),
            "protocol_error",
            None,
        ),
        (
            spec(Fault::Reset, Firmware::Modern, false),
            "protocol_error",
            None,
        ),
    ];
    let fleet = TestFleet::of(cases.iter().map(|c| c.0.clone()).collect()).await;
    // One broken row makes the `invalid` status part of the same report.
    let mut inventory = std::fs::OpenOptions::new()
        .append(true)
        .open(&fleet.inventory)
        .expect("inventory");
    writeln!(inventory, "10.0.0.1:99999,broken,site-z,disabled").expect("append");
    drop(inventory);

    let (output, records) = fleet
        .scan("scan.jsonl", &["--retries", "0", "--timeout", "2s"])
        .await;
    assert_eq!(code(&output), 1, "{}", stderr(&output));
    assert_eq!(records.len(), cases.len() + 1);
    let truth = fleet.truth();
    for (i, (spec, status, enabled)) in cases.iter().enumerate() {
        let address = fleet.fleet.address(i);
        let record = records
            .iter()
            .find(|r| r["address"] == address)
            .unwrap_or_else(|| panic!("no record for {address}"));
        assert_eq!(record["status"], *status, "{spec:?}: {record}");
        assert_eq!(
            record["ssh_enabled"],
            serde_json::json!(enabled),
            "{spec:?}"
        );
        assert_eq!(
            truth[address]["expect_status"], *status,
            "truth agrees for {spec:?}"
        );
        if *status != "ok" {
            assert!(
                record["error"].as_str().is_some_and(|e| !e.is_empty()),
                "{record}"
            );
            assert_eq!(
                record["compliant"],
                serde_json::Value::Null,
                "unknown, not false"
            );
        }
    }
    let invalid = records
        .iter()
        .find(|r| r["status"] == "invalid")
        .expect("invalid row");
    assert!(
        invalid["error"]
            .as_str()
            .unwrap_or_default()
            .contains("line "),
        "{invalid}"
    );
    let methods: Vec<_> = records
        .iter()
        .filter(|r| r["method"] == "param.cgi")
        .collect();
    assert_eq!(methods.len(), 2, "param.cgi devices are marked");
    fleet.fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_device_is_retried_after_backoff_not_hammered() {
    // The real backoff is 10 s; the test-only knob shortens it so the test measures the
    // pause between the simulator's recorded arrivals instead of sleeping 10 s.
    let backoff = Duration::from_millis(300);
    let fleet = TestFleet::of(vec![spec(Fault::Throttled, Firmware::Modern, false)]).await;
    let knob = backoff.as_millis().to_string();
    let (_, records) = fleet
        .scan_with_env(
            "scan.jsonl",
            &["--retries", "1"],
            &[(TEST_THROTTLE_BACKOFF_ENV, &knob)],
        )
        .await;
    assert_eq!(records[0]["status"], "forbidden");
    assert_eq!(records[0]["attempts"], 2);
    assert_eq!(records[0]["http_status"], 403);
    // One try, one retry after the backoff (plus at most 20 % jitter): nothing more.
    assert_eq!(fleet.fleet.snapshot()[0].requests, 2);
    let arrivals = fleet.fleet.arrivals(0);
    assert_eq!(arrivals.len(), 2, "{arrivals:?}");
    let pause = arrivals[1].duration_since(arrivals[0]);
    assert!(pause >= backoff, "retried after {pause:?}");
    assert!(pause < THROTTLE_BACKOFF, "the knob was ignored: {pause:?}");
    assert!(records[0]["elapsed_ms"].as_u64().unwrap_or(0) >= 300);
    fleet.fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_report_has_contract_columns_and_neutralised_cells() {
    let fleet = TestFleet::of(vec![spec(Fault::None, Firmware::Modern, false)]).await;
    let mut inventory = std::fs::OpenOptions::new()
        .append(true)
        .open(&fleet.inventory)
        .expect("inventory");
    writeln!(inventory, "\"=cmd|' /C calc'!A0\",\"+evil\",@site,disabled").expect("append");
    drop(inventory);
    let (output, _) = fleet.scan("scan.csv", &[]).await;
    assert_eq!(code(&output), 1, "{}", stderr(&output));
    let text = std::fs::read_to_string(fleet.path("scan.csv")).expect("csv");
    let header = text.lines().next().unwrap_or_default();
    assert!(header.starts_with(
        "address,name,site,status,ssh_enabled,expect,compliant,method,api_version,\
         supported_versions,http_status,error_code,error,attempts,elapsed_ms,tls_fingerprint,checked_at"
    ), "{header}");
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    for row in reader.records() {
        let row = row.expect("csv row");
        for cell in row.iter() {
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "formula cell survived: {cell:?}"
            );
        }
    }
    fleet.fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_asking_for_an_endless_wait_is_forbidden_at_once_not_a_timeout() {
    let fleet = TestFleet::of(vec![spec(Fault::ThrottledLong, Firmware::Modern, false)]).await;
    let (output, records) = fleet
        .scan("scan.jsonl", &["--retries", "1", "--timeout", "3s"])
        .await;
    assert_eq!(code(&output), 1, "{}", stderr(&output));
    let record = &records[0];
    assert_eq!(record["status"], "forbidden", "{record}");
    assert_eq!(record["http_status"], 429, "{record}");
    let error = record["error"].as_str().unwrap_or_default();
    assert!(error.contains("999999 s"), "{record}");
    // It answered at once: no sleeping into the 3 s timeout, and no second request.
    assert!(
        record["elapsed_ms"].as_u64().unwrap_or(u64::MAX) < 3_000,
        "{record}"
    );
    assert_eq!(fleet.fleet.snapshot()[0].requests, 1);
    fleet.fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_to_another_request_are_never_read_as_a_state() {
    let fleet = TestFleet::start(SimConfig {
        specs: Some(vec![
            spec(Fault::ForeignAnswers, Firmware::Modern, false),
            spec(Fault::ForeignAnswers, Firmware::ParamOnly, false),
            spec(Fault::ForeignAnswers, Firmware::ParamOnly, true),
        ]),
        ..SimConfig::default()
    })
    .await;
    let (output, records) = fleet.scan("scan.jsonl", &["--retries", "0"]).await;
    assert_eq!(code(&output), 1, "{}", stderr(&output));
    assert_eq!(records.len(), 3);
    let truth = fleet.truth();
    for record in &records {
        assert_eq!(record["status"], "protocol_error", "{record}");
        assert_eq!(record["ssh_enabled"], serde_json::Value::Null, "{record}");
        let address = record["address"].as_str().unwrap_or_default();
        assert_eq!(truth[address]["expect_status"], "protocol_error");
    }
    let errors: Vec<&str> = records.iter().filter_map(|r| r["error"].as_str()).collect();
    assert!(errors.iter().any(|e| e.contains("context")), "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("twice")), "{errors:?}");
    fleet.fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verbose_scans_log_one_line_per_device_and_debug_shows_the_backoff() {
    let fleet = TestFleet::start(SimConfig {
        specs: Some(vec![
            spec(Fault::None, Firmware::Modern, true),
            spec(Fault::None, Firmware::ParamOnly, false),
            spec(Fault::Closed, Firmware::Modern, false),
        ]),
        ..SimConfig::default()
    })
    .await;
    let (output, records) = fleet.scan("scan.jsonl", &["-v", "--retries", "0"]).await;
    let err = stderr(&output);
    assert_eq!(records.len(), 3, "{err}");
    for record in &records {
        let address = record["address"].as_str().unwrap_or_default();
        let status = record["status"].as_str().unwrap_or_default();
        let lines: Vec<&str> = err
            .lines()
            .filter(|l| l.contains(address) && l.contains(" read "))
            .collect();
        assert_eq!(lines.len(), 1, "one line for {address}:\n{err}");
        assert!(
            lines[0].contains(&format!("status={status}")),
            "{}",
            lines[0]
        );
        assert!(!lines[0].contains('\u{1b}'), "no colour codes in a pipe");
    }
    assert!(!err.contains("DEBUG"), "-v is info, not debug:\n{err}");
    fleet.fleet.shutdown().await;

    let fleet = TestFleet::of(vec![spec(Fault::Throttled, Firmware::Modern, false)]).await;
    // The backoff itself is not under test here: the test-only knob makes it 50 ms.
    let (output, _) = fleet
        .scan_with_env(
            "scan.jsonl",
            &["-vv", "--retries", "1"],
            &[(TEST_THROTTLE_BACKOFF_ENV, "50")],
        )
        .await;
    let err = stderr(&output);
    assert!(
        err.lines().any(|l| l.contains("DEBUG")
            && l.contains("backing off")
            && l.contains(fleet.fleet.address(0))),
        "{err}"
    );
    fleet.fleet.shutdown().await;
}
