//! The exact text users diff and grep, pinned with insta: the terminal summary, the Prometheus
//! file, JUnit XML, the JSON summary, the CSV header and a row, `history runs` and `diff`.
//! Other tests check these outputs with real consumers (promtool, an XML parser); these pin
//! their wording and layout. One seeded fleet scanned one device at a time (so every file is
//! in inventory order), twice, with one camera changed between the runs. Times, ports,
//! temporary paths, durations and rates are masked.
//!
//! A changed output fails here with a diff; `cargo insta review` (or `INSTA_UPDATE=always`)
//! accepts a deliberate change.

use std::process::Output;
use std::time::Duration;

use sshfleet_sim::{FaultProfile, SimConfig};

use crate::support::{args, code, run, stderr, Sshfleet, TestFleet};

/// Masks what changes from run to run, as uv's test suite does.
fn settings() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.set_prepend_module_to_snapshot(false);
    for (pattern, mask) in [
        (r"(/[\w.-]+)*/\.tmp\w+", "[TEMP]"),
        (
            r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:?\d\d)?",
            "[TIME]",
        ),
        (r"127\.0\.0\.1:\d+", "127.0.0.1:[PORT]"),
        (r"\b\d+(\.\d+)?\s?(ms|µs|s|min)\b", "[DURATION]"),
        // JUnit's per-case time, Prometheus' run duration and timestamps.
        (r#"time="\d+(\.\d+)?""#, r#"time="[DURATION]""#),
        (
            r"(?m)^(sshfleet_\w*_seconds(\{[^}]*\})?) \S+$",
            "$1 [VALUE]",
        ),
    ] {
        settings.add_filter(pattern, mask);
    }
    // The package's version (in the metrics' run_info), not the XML declaration's.
    let version = env!("CARGO_PKG_VERSION").replace('.', r"\.");
    settings.add_filter(&format!(r#"version="{version}""#), r#"version="[VERSION]""#);
    settings
}

/// A scan of one device at a time, so every output is in inventory order, recorded in the
/// fleet's history.
async fn scan(fleet: &TestFleet, out: &str, extra: &[&str]) -> Output {
    let output = Sshfleet::scan(&fleet.inventory)
        .out(&fleet.path(out))
        .file("--history", &fleet.path("history.db"))
        .args(&["--concurrency", "1", "--timeout", "3s", "--retries", "0"])
        .args(extra)
        .run()
        .await;
    assert!(matches!(code(&output), 0 | 1), "{}", stderr(&output));
    output
}

fn text(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The CSV header and first row, the row's `elapsed_ms` masked.
fn csv_head(path: &std::path::Path) -> String {
    let mut reader = csv::Reader::from_path(path).expect("csv");
    let header = reader.headers().expect("header").clone();
    let row = reader.records().next().expect("a row").expect("row");
    let row: csv::StringRecord = header
        .iter()
        .zip(row.iter())
        .map(|(name, value)| {
            if name == "elapsed_ms" {
                "[ELAPSED]"
            } else {
                value
            }
        })
        .collect();
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(&header).expect("header");
    writer.write_record(&row).expect("row");
    String::from_utf8(writer.into_inner().expect("flush")).expect("UTF-8")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_long_outputs_of_two_runs_read_as_pinned() {
    let fleet = TestFleet::start(SimConfig {
        devices: 12,
        seed: 26,
        faults: FaultProfile::Realistic,
        slow_delays: Duration::from_millis(1)..=Duration::from_millis(5),
        ..SimConfig::default()
    })
    .await;
    let metrics = fleet.path("scan.prom").display().to_string();
    let summary = fleet.path("summary.json").display().to_string();
    let first = scan(
        &fleet,
        "first.csv",
        &["--metrics-out", &metrics, "--summary-out", &summary],
    )
    .await;
    let settings = settings();
    let _guard = settings.bind_to_scope();
    insta::assert_snapshot!("scan_summary_text", stderr(&first));
    insta::assert_snapshot!("metrics_prom", text(&fleet.path("scan.prom")));
    insta::assert_snapshot!("summary_json", text(&fleet.path("summary.json")));
    insta::assert_snapshot!(
        "csv_header_and_first_row",
        csv_head(&fleet.path("first.csv"))
    );

    // One camera's SSH turns on between the runs: drift in the second summary and in `diff`.
    let enabled = fleet.fleet.snapshot().iter().position(|d| !d.ssh_enabled);
    fleet
        .fleet
        .set_ssh_enabled(enabled.expect("a disabled camera"), true);
    let second = scan(&fleet, "second.xml", &["--format", "junit"]).await;
    insta::assert_snapshot!("scan_summary_text_with_drift", stderr(&second));
    insta::assert_snapshot!("junit_xml", text(&fleet.path("second.xml")));

    let history = fleet.path("history.db").display().to_string();
    let runs = run(&args(&["history", &history, "runs"]), &[]).await;
    assert_eq!(code(&runs), 0, "{}", stderr(&runs));
    insta::assert_snapshot!("history_runs", String::from_utf8_lossy(&runs.stdout));

    let again = scan(&fleet, "third.jsonl", &["--quiet"]).await;
    assert!(stderr(&again).is_empty(), "{}", stderr(&again));
    let diff = run(
        &args(&[
            "diff",
            &fleet.path("first.csv").display().to_string(),
            &fleet.path("third.jsonl").display().to_string(),
        ]),
        &[],
    )
    .await;
    insta::assert_snapshot!("diff_text", String::from_utf8_lossy(&diff.stdout));
}
