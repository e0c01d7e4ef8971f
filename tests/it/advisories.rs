//! Vendor advisories (`--device-info`, `--advisories FILE`): each camera's `advisories` is what
//! the simulator's own range table says of its AXIS OS version, an advisory needing SSH on a
//! camera whose SSH is on or reachable is a finding (summary, metrics, JUnit, exit code), a
//! user's file extends or replaces the built-in set, and a bad file refuses the run.

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use sshfleet_sim::{DeviceSpec, FaultProfile, SimConfig};

use crate::html_report::{browser_available, open_in_browser};
use crate::support::{by_address, code, read_jsonl, run, stderr, Sshfleet, TestFleet};

/// The simulator's cameras with today's firmware report these versions by index (`% 9`):
/// 2 and 3 are inside CVE-2026-1185 (needs SSH), 4 just fixed, 5 fixed for everything,
/// 8 a beta text that is no AXIS OS version.
const IN_SSH_RANGE: [usize; 2] = [2, 3];

fn ids(value: &Value) -> Option<Vec<String>> {
    value.as_array().map(|a| {
        a.iter()
            .map(|v| v.as_str().unwrap_or_default().to_owned())
            .collect()
    })
}

/// SSH on (as read) or reachable (the probe saw the port open), as the truth states them.
fn exposed(truth: &Value) -> bool {
    truth["ssh_enabled"] == Value::Bool(true) || truth["ssh_port"] == "open"
}

fn promtool_accepts(path: &Path) {
    let file = std::fs::File::open(path).unwrap();
    let out = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(file)
        .output()
        .expect("promtool runs (.ci/install-deps installs it)");
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn metric<'a>(text: &'a str, series: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_cameras_advisories_and_the_ssh_findings_are_what_the_truth_says() {
    let fleet = TestFleet::start(SimConfig {
        devices: 180,
        seed: 27,
        faults: FaultProfile::Realistic,
        ..SimConfig::default()
    })
    .await;
    for i in 0..fleet.fleet.len() {
        fleet.fleet.set_ssh_enabled(i, i % 4 != 1);
    }
    fleet
        .fleet
        .write_truth(std::fs::File::create(&fleet.truth).unwrap())
        .unwrap();
    let summary_path = fleet.path("summary.json");
    let summary_arg = summary_path.display().to_string();
    let (output, records) = fleet
        .scan(
            "adv.jsonl",
            &[
                "--device-info",
                "--probe-ssh",
                "--summary-out",
                &summary_arg,
                "--fail-on",
                "findings",
            ],
        )
        .await;
    assert_eq!(code(&output), 1, "{}", stderr(&output));
    let truth = fleet.truth();
    let by_address = by_address(&records);
    assert_eq!(by_address.len(), truth.len());
    let mut wrong = Vec::new();
    let (mut findings, mut in_range, mut unknown) = (0u64, 0u64, 0u64);
    for (address, t) in &truth {
        let rec = &by_address[address];
        if ids(&rec["advisories"]) != ids(&t["advisories"]) {
            wrong.push(format!(
                "{address} ({}, firmware {}): got {} want {}",
                t["fault"], t["firmware"], rec["advisories"], t["advisories"]
            ));
        }
        let needs_ssh = ids(&t["ssh_advisories"]).unwrap_or_default();
        if needs_ssh.iter().any(|id| id == "CVE-2026-1185") {
            in_range += 1;
            findings += u64::from(exposed(t));
        }
        unknown += u64::from(t["firmware"].is_string() && t["advisories"].is_null());
    }
    assert!(
        wrong.is_empty(),
        "{} wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    // The fleet is spread over the ranges: some inside, some exposed, some not, some unknown.
    assert!(
        findings > 5 && findings < in_range,
        "{findings} of {in_range}"
    );
    assert!(unknown > 5, "{unknown} beta versions");
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(&summary_path).unwrap()).unwrap();
    let adv = &summary["advisories"];
    assert_eq!(adv["findings"], findings, "{adv}");
    assert_eq!(adv["version_unparseable"], unknown, "{adv}");
    let ssh = &adv["by_advisory"]["CVE-2026-1185"];
    assert_eq!(
        (&ssh["needs_ssh"], &ssh["devices"], &ssh["ssh_exposed"]),
        (
            &Value::Bool(true),
            &Value::from(in_range),
            &Value::from(findings)
        ),
        "{adv}"
    );
    // An unparseable version is never "no advisories": it has none listed and is counted.
    for rec in records.iter().filter(|r| r["firmware"] == "12.5.1-beta") {
        assert!(rec["advisories"].is_null(), "{rec}");
    }
}

/// Nine clean cameras (one of each firmware version), SSH on, all of them expected on: the
/// only findings are the advisories'.
async fn compliant_fleet() -> TestFleet {
    let fleet = TestFleet::of(vec![DeviceSpec::clean(true); 9]).await;
    for i in 0..9 {
        fleet.fleet.set_ssh_enabled(i, true);
    }
    let inventory = std::fs::read_to_string(&fleet.inventory).unwrap();
    std::fs::write(
        &fleet.inventory,
        inventory.replace(",disabled,", ",enabled,"),
    )
    .unwrap();
    fleet
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ssh_advisory_on_a_compliant_camera_is_a_finding_in_every_output() {
    let fleet = compliant_fleet().await;
    let report = fleet.path("scan.jsonl");
    let metrics = fleet.path("scan.prom");
    let junit = fleet.path("scan.xml");
    let output = Sshfleet::scan(&fleet.inventory)
        .out(&report)
        .file("--metrics-out", &metrics)
        .args(&["--device-info", "--fail-on", "findings", "--timeout", "5s"])
        .run()
        .await;
    let err = stderr(&output);
    assert_eq!(code(&output), 1, "{err}");
    let addresses: Vec<String> = IN_SSH_RANGE
        .iter()
        .map(|&i| fleet.fleet.address(i).to_owned())
        .collect();
    assert!(
        err.contains("9 devices, 2 findings (0 non-compliant, 0 not checked, 2 exposed to an SSH advisory only); 9 compliant"),
        "{err}"
    );
    let line = err
        .lines()
        .find(|l| l.starts_with("SSH ADVISORY CVE-2026-1185: "))
        .unwrap_or_else(|| panic!("no advisory line:\n{err}"));
    assert!(
        line.contains("2 device(s) with SSH on or reachable"),
        "{line}"
    );
    for address in &addresses {
        assert!(line.contains(address.as_str()), "{line} lacks {address}");
    }
    assert!(
        err.contains(
            "advisories: 8 devices checked, 1 version unknown (1 not an AXIS OS version);"
        ),
        "{err}"
    );
    let records = by_address(&read_jsonl(&report));
    for i in 0..9 {
        let rec = &records[fleet.fleet.address(i)];
        let has = ids(&rec["advisories"])
            .unwrap_or_default()
            .contains(&"CVE-2026-1185".to_owned());
        assert_eq!(has, IN_SSH_RANGE.contains(&i), "{rec}");
    }

    promtool_accepts(&metrics);
    let prom = std::fs::read_to_string(&metrics).unwrap();
    assert_eq!(
        metric(&prom, "sshfleet_advisory_findings"),
        Some("2"),
        "{prom}"
    );
    assert_eq!(
        metric(
            &prom,
            "sshfleet_advisory_ssh_exposed_devices{advisory=\"CVE-2026-1185\",needs_ssh=\"true\"}"
        ),
        Some("2"),
        "{prom}"
    );
    assert_eq!(metric(&prom, "sshfleet_findings"), Some("2"), "{prom}");

    let output = Sshfleet::scan(&fleet.inventory)
        .out(&junit)
        .args(&[
            "--device-info",
            "--format",
            "junit",
            "--quiet",
            "--timeout",
            "5s",
        ])
        .run()
        .await;
    assert_eq!(code(&output), 1, "{}", stderr(&output));
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert_eq!(
        xml.matches("<failure type=\"ssh_advisory\"").count(),
        2,
        "{xml}"
    );
    assert!(
        xml.contains("is affected by CVE-2026-1185, which needs SSH, and SSH is on"),
        "{xml}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_file_extends_or_replaces_the_built_in_advisories() {
    let fleet = compliant_fleet().await;
    // Replace: an advisory of the user's own that needs no SSH, and nothing else.
    let replace = fleet.path("replace.toml");
    std::fs::write(
        &replace,
        r#"mode = "replace"
[[advisory]]
id = "CVE-2099-0002"
needs_ssh = false
summary = "A local test advisory."
affected = [{ from = "12.0.0", fixed = "12.10.36" }]
source = "https://example.com/CVE-2099-0002.json"
"#,
    )
    .unwrap();
    let report = fleet.path("replaced.jsonl");
    let output = Sshfleet::scan(&fleet.inventory)
        .out(&report)
        .file("--advisories", &replace)
        .args(&["--device-info", "--quiet", "--timeout", "5s"])
        .run()
        .await;
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let records = by_address(&read_jsonl(&report));
    let want = |i: usize| match i {
        2 | 3 => Some(vec!["CVE-2099-0002".to_owned()]),
        8 => None,
        _ => Some(vec![]),
    };
    for i in 0..9 {
        let rec = &records[fleet.fleet.address(i)];
        assert_eq!(ids(&rec["advisories"]), want(i), "{i}: {rec}");
    }

    // Extend: the built-in set, plus one needing SSH on the 10.12 track.
    let extend = fleet.path("extend.toml");
    std::fs::write(
        &extend,
        r#"[[advisory]]
id = "CVE-2099-0001"
needs_ssh = true
summary = "A local test advisory that needs SSH."
affected = [{ from = "10.12.0", fixed = "10.12.200" }]
source = "https://example.com/CVE-2099-0001.json"
"#,
    )
    .unwrap();
    let report = fleet.path("extended.jsonl");
    let output = Sshfleet::scan(&fleet.inventory)
        .out(&report)
        .file("--advisories", &extend)
        .args(&["--device-info", "--timeout", "5s"])
        .run()
        .await;
    let err = stderr(&output);
    assert_eq!(code(&output), 1, "{err}");
    let records = by_address(&read_jsonl(&report));
    let first = &records[fleet.fleet.address(0)];
    assert_eq!(
        ids(&first["advisories"]),
        Some(
            ["CVE-2025-9524", "CVE-2025-0325", "CVE-2099-0001"]
                .map(String::from)
                .to_vec()
        ),
        "the 10.12.114 camera: {first}"
    );
    assert!(
        err.contains("SSH ADVISORY CVE-2099-0001: 1 device(s)"),
        "{err}"
    );
    assert!(
        err.contains("SSH ADVISORY CVE-2026-1185: 2 device(s)"),
        "{err}"
    );
    assert!(err.contains("3 findings"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_advisories_file_refuses_the_run_saying_where_before_any_request() {
    let fleet = TestFleet::of(vec![DeviceSpec::clean(false); 2]).await;
    let entry = |version: &str, needs_ssh: &str| {
        format!(
            "[[advisory]]\nid = \"CVE-2099-0003\"\nneeds_ssh = {needs_ssh}\nsummary = \"x\"\n\
             affected = [{{ from = \"{version}\", fixed = \"13.0.0\" }}]\n\
             source = \"https://example.com/x\"\n"
        )
    };
    let huge = format!("# {}\n", "x".repeat(2 << 20));
    let cases: [(&str, String, &[&str]); 4] = [
        (
            "version.toml",
            format!("\n\n{}", entry("12.x", "true")),
            &[
                "line 7",
                "advisory CVE-2099-0003",
                "\"12.x\" is not an AXIS OS version",
            ],
        ),
        (
            "types.toml",
            entry("12.0.0", "\"yes\""),
            &["types.toml", "line 3", "invalid type"],
        ),
        (
            "fields.toml",
            format!("{}cvss = 9.8\n", entry("12.0.0", "true")),
            &["fields.toml", "unknown field `cvss`"],
        ),
        ("huge.toml", huge, &["huge.toml", "more than the 1 MiB"]),
    ];
    for (name, text, said) in cases {
        let path = fleet.path(name);
        std::fs::write(&path, text).unwrap();
        let report = fleet.path("never.jsonl");
        let output = Sshfleet::scan(&fleet.inventory)
            .out(&report)
            .file("--advisories", &path)
            .args(&["--device-info", "--timeout", "5s"])
            .run()
            .await;
        let err = stderr(&output);
        assert_eq!(code(&output), 2, "{name}: {err}");
        assert!(err.contains("--advisories"), "{name}: {err}");
        for words in said {
            assert!(err.contains(words), "{name} lacks {words:?}: {err}");
        }
        assert!(err.lines().count() < 20, "{name}: a short message: {err}");
        assert!(!report.exists(), "{name}: nothing written");
    }
    let requests: u64 = fleet.fleet.snapshot().iter().map(|d| d.requests).sum();
    assert_eq!(requests, 0, "no camera was asked anything");
    // Without --device-info there is no version to match: refused as a usage error.
    let output = Sshfleet::scan(&fleet.inventory)
        .file("--advisories", &fleet.path("version.toml"))
        .run()
        .await;
    assert_eq!(code(&output), 2, "{}", stderr(&output));
    assert!(
        stderr(&output).contains("--device-info"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remediation_that_turns_ssh_off_ends_the_advisory_finding_and_keeps_the_ids() {
    let fleet = compliant_fleet().await;
    let plan = fleet.path("plan.jsonl");
    let output = Sshfleet::remediate(&fleet.inventory)
        .out(&plan)
        .args(&["--ssh", "disabled", "--device-info", "--timeout", "5s"])
        .run()
        .await;
    let err = stderr(&output);
    assert!(
        err.contains("SSH ADVISORY CVE-2026-1185: 2 device(s)"),
        "{err}"
    );
    let applied = fleet.path("applied.jsonl");
    let output = Sshfleet::remediate(&fleet.inventory)
        .out(&applied)
        .file("--journal", &fleet.path("journal"))
        .args(&["--ssh", "disabled", "--apply", "--yes", "--rate", "50/s"])
        .args(&["--device-info", "--fail-on", "findings", "--timeout", "5s"])
        .run()
        .await;
    let err = stderr(&output);
    assert_eq!(code(&output), 0, "{err}");
    assert!(!err.contains("SSH ADVISORY"), "{err}");
    for cam in fleet.fleet.snapshot() {
        assert!(!cam.ssh_enabled, "{} holds SSH off", cam.address);
    }
    let records = by_address(&read_jsonl(&applied));
    for i in IN_SSH_RANGE {
        let rec = &records[fleet.fleet.address(i)];
        assert!(
            ids(&rec["advisories"])
                .unwrap_or_default()
                .contains(&"CVE-2026-1185".to_owned()),
            "{rec}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merge_of_csv_shards_counts_the_advisories_as_the_whole_run_did() {
    let fleet = compliant_fleet().await;
    let whole = fleet.path("whole.json");
    let output = Sshfleet::scan(&fleet.inventory)
        .out(&fleet.path("whole.csv"))
        .file("--summary-out", &whole)
        .args(&["--device-info", "--quiet", "--timeout", "5s"])
        .run()
        .await;
    assert_eq!(code(&output), 1, "{}", stderr(&output));
    let mut shards = Vec::new();
    for k in 0..2 {
        let shard = fleet.path(&format!("shard{k}.csv"));
        let output = Sshfleet::scan(&fleet.inventory)
            .out(&shard)
            .args(&["--device-info", "--quiet", "--timeout", "5s"])
            .args(&["--shard", &format!("{k}/2")])
            .run()
            .await;
        assert!(code(&output) <= 1, "{}", stderr(&output));
        shards.push(shard.display().to_string());
    }
    let merged = fleet.path("merged.json");
    let output = Sshfleet::merge(&fleet.inventory)
        .out(&fleet.path("merged.csv"))
        .file("--summary-out", &merged)
        .args(&["--quiet"])
        .args(&shards.iter().map(String::as_str).collect::<Vec<_>>())
        .run()
        .await;
    assert_eq!(code(&output), 1, "{}", stderr(&output));
    let read =
        |p: &Path| -> Value { serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap() };
    let (whole, merged) = (read(&whole), read(&merged));
    assert_eq!(merged["advisories"], whole["advisories"]);
    assert_eq!(merged["advisories"]["findings"], 2, "{merged}");
    assert_eq!(merged["advisories"]["version_unparseable"], 1, "{merged}");
    assert_eq!(merged["findings"], whole["findings"]);
}

/// The user's advisories the reports below were scanned with: one needing SSH on the 10.12
/// track (camera 0 runs 10.12.114), added to the built-in set.
const EXTEND_NEEDS_SSH: &str = r#"[[advisory]]
id = "CVE-2099-0001"
needs_ssh = true
summary = "A local test advisory that needs SSH."
affected = [{ from = "10.12.0", fixed = "10.12.200" }]
source = "https://example.com/CVE-2099-0001.json"
"#;

/// One needing no SSH, alone (cameras 2 and 3).
const REPLACE_NO_SSH: &str = r#"mode = "replace"
[[advisory]]
id = "CVE-2099-0002"
needs_ssh = false
summary = "A local test advisory."
affected = [{ from = "12.0.0", fixed = "12.10.36" }]
source = "https://example.com/CVE-2099-0002.json"
"#;

/// A report read back (`report merge`, `report html`) whose advisory ids came from a user's
/// file: given the file, its findings are the scan's; without it, each id the built-in set
/// does not know is counted as needing SSH, said in a warning naming it and the fix, in the
/// summary, the JSON summary and the page — never silently harmless.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_read_back_without_the_users_advisories_never_loses_their_findings() {
    let fleet = compliant_fleet().await;
    let extend = fleet.path("extend.toml");
    std::fs::write(&extend, EXTEND_NEEDS_SSH).unwrap();
    let scanned = fleet.path("scanned.json");
    let report = fleet.path("scan.jsonl");
    let output = Sshfleet::scan(&fleet.inventory)
        .out(&report)
        .file("--advisories", &extend)
        .file("--summary-out", &scanned)
        .args(&["--device-info", "--quiet", "--timeout", "5s"])
        .run()
        .await;
    assert_eq!(code(&output), 1, "{}", stderr(&output));
    let read =
        |p: &Path| -> Value { serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap() };
    let scanned = read(&scanned);
    assert_eq!(scanned["advisories"]["findings"], 3, "{scanned}");

    // Merged with the scan's file: the scan's findings, and no warning.
    let merge = |name: &str, file: Option<&Path>| {
        let mut cmd = Sshfleet::merge(&fleet.inventory)
            .out(&fleet.path(&format!("{name}.jsonl")))
            .file("--summary-out", &fleet.path(&format!("{name}.json")))
            .file("--metrics-out", &fleet.path(&format!("{name}.prom")))
            .args(&["--fail-on", "findings"]);
        if let Some(file) = file {
            cmd = cmd.file("--advisories", file);
        }
        cmd.arg(&report.display().to_string())
    };
    let output = merge("with", Some(&extend)).run().await;
    let err = stderr(&output);
    assert_eq!(code(&output), 1, "{err}");
    assert!(!err.contains("not in the advisories in use"), "{err}");
    assert!(
        err.contains("SSH ADVISORY CVE-2099-0001: 1 device(s) with SSH on or reachable run an affected AXIS OS version, and exploiting it needs SSH"),
        "{err}"
    );
    let with = read(&fleet.path("with.json"));
    assert_eq!(with["advisories"], scanned["advisories"]);

    // Merged without it: the unknown id still counts, and every output says why.
    let output = merge("without", None).run().await;
    let err = stderr(&output);
    assert_eq!(code(&output), 1, "{err}");
    let warning = err
        .lines()
        .find(|l| l.starts_with("warning: advisory "))
        .unwrap_or_else(|| panic!("no warning:\n{err}"));
    for words in [
        "CVE-2099-0001 (1 device(s))",
        "not in the advisories in use",
        "counted as needing SSH",
        "--advisories FILE",
    ] {
        assert!(warning.contains(words), "{warning} lacks {words:?}");
    }
    assert!(
        err.contains("SSH ADVISORY CVE-2099-0001: 1 device(s) with SSH on or reachable run an affected AXIS OS version, and the advisories in use do not know it, so it is counted as needing SSH"),
        "{err}"
    );
    let without = read(&fleet.path("without.json"));
    let adv = &without["advisories"];
    assert_eq!(adv["findings"], 3, "{adv}");
    let unknown = &adv["by_advisory"]["CVE-2099-0001"];
    assert_eq!(
        (
            &unknown["needs_ssh"],
            &unknown["unknown"],
            &unknown["ssh_exposed"]
        ),
        (&Value::Bool(true), &Value::Bool(true), &Value::from(1)),
        "{adv}"
    );
    assert_eq!(without["findings"], scanned["findings"]);
    let metrics = fleet.path("without.prom");
    promtool_accepts(&metrics);
    let prom = std::fs::read_to_string(&metrics).unwrap();
    assert_eq!(
        metric(
            &prom,
            "sshfleet_advisory_ssh_exposed_devices{advisory=\"CVE-2099-0001\",needs_ssh=\"unknown\"}"
        ),
        Some("1"),
        "{prom}"
    );
    assert_eq!(
        metric(&prom, "sshfleet_advisory_findings"),
        Some("3"),
        "{prom}"
    );

    // `report html` of the same report, with and without the file.
    let page = |name: &str, file: Option<&Path>| {
        let (html, summary) = (fleet.path(&format!("{name}.html")), fleet.path(name));
        let mut argv = vec![
            "report".to_owned(),
            "html".to_owned(),
            report.display().to_string(),
            "-o".to_owned(),
            html.display().to_string(),
            "--summary-out".to_owned(),
            summary.display().to_string(),
        ];
        if let Some(file) = file {
            argv.extend(["--advisories".to_owned(), file.display().to_string()]);
        }
        argv
    };
    let output = run(&page("page-with", Some(&extend)), &[]).await;
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert!(!stderr(&output).contains("warning"), "{}", stderr(&output));
    assert_eq!(
        read(&fleet.path("page-with"))["advisories"],
        scanned["advisories"]
    );
    let output = run(&page("page-without", None), &[]).await;
    let err = stderr(&output);
    assert_eq!(code(&output), 0, "{err}");
    assert!(
        err.contains("warning: advisory CVE-2099-0001 (1 device(s)) not in the advisories in use"),
        "{err}"
    );
    assert_eq!(read(&fleet.path("page-without"))["advisories"], *adv);
    if browser_available() {
        let seen = open_in_browser(&fleet.path("page-without.html"), &[]).await;
        let section = &seen["advisories"];
        assert_eq!(section["visible"], true, "{seen}");
        let text = section["text"].as_str().unwrap();
        assert!(
            text.contains("Not in the advisories in use: CVE-2099-0001"),
            "{text}"
        );
        let row = section["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r[0] == "CVE-2099-0001")
            .unwrap_or_else(|| panic!("no row: {section}"));
        assert_eq!(row[1], "unknown: counted as yes", "{row}");
    }
}

/// An advisory needing no SSH, known only from a replacing file: without the file a merge
/// counts it as a finding (and says so); with it, the merge finds nothing, as the scan did.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merge_given_the_scans_replacing_file_counts_no_finding_the_scan_did_not() {
    let fleet = compliant_fleet().await;
    let replace = fleet.path("replace.toml");
    std::fs::write(&replace, REPLACE_NO_SSH).unwrap();
    let report = fleet.path("scan.csv");
    let output = Sshfleet::scan(&fleet.inventory)
        .out(&report)
        .file("--advisories", &replace)
        .args(&["--device-info", "--quiet", "--fail-on", "findings"])
        .args(&["--timeout", "5s"])
        .run()
        .await;
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let merge = |file: Option<&Path>| {
        let mut cmd = Sshfleet::merge(&fleet.inventory)
            .out(&fleet.path("merged.csv"))
            .args(&["--fail-on", "findings"]);
        if let Some(file) = file {
            cmd = cmd.file("--advisories", file);
        }
        cmd.arg(&report.display().to_string())
    };
    let output = merge(Some(&replace)).run().await;
    let err = stderr(&output);
    assert_eq!(code(&output), 0, "{err}");
    assert!(!err.contains("SSH ADVISORY"), "{err}");
    assert!(
        err.contains("CVE-2099-0002 2 (2 SSH-exposed)"),
        "the counts line: {err}"
    );
    let output = merge(None).run().await;
    let err = stderr(&output);
    assert_eq!(code(&output), 1, "{err}");
    assert!(
        err.contains("warning: advisory CVE-2099-0002 (2 device(s)) not in the advisories in use (built-in advisories"),
        "{err}"
    );
    assert!(
        err.contains("SSH ADVISORY CVE-2099-0002: 2 device(s)"),
        "{err}"
    );
    assert!(
        err.contains(
            "CVE-2099-0002 2 (2 SSH-exposed, not in the advisories in use: counted as needing SSH)"
        ),
        "{err}"
    );
    // A file that cannot be used refuses the merge before anything is written.
    std::fs::remove_file(fleet.path("merged.csv")).unwrap();
    let output = merge(Some(&fleet.path("missing.toml"))).run().await;
    let err = stderr(&output);
    assert_eq!(code(&output), 2, "{err}");
    assert!(
        err.contains("--advisories") && err.contains("missing.toml"),
        "{err}"
    );
    assert!(!fleet.path("merged.csv").exists(), "nothing written");
}
