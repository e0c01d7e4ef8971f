//! What the reports call a finding stays true across waivers, diffs and device identity: a
//! waiver never hides an SSH server answering on a device configured off, `diff` honours the
//! waivers the scans applied, and two devices claiming one serial are a finding of their own
//! while drift stays the same across unchanged runs.

use serde_json::Value;
use sshfleet_sim::{DeviceSpec, SimConfig, SshFault};

use crate::support::{args, by_address, code, read_jsonl, run, stderr, TestFleet, PASSWORD};

/// A waiver file allowing `ssh` on every simulated camera (`cam-*`), in force for years.
fn waive_all(fleet: &TestFleet, ssh: &str) -> String {
    let path = fleet.path("waivers.toml");
    let text = format!(
        "[[waiver]]\nid = \"W-ALL\"\nmatch = {{ name = \"cam-*\" }}\nssh = \"{ssh}\"\n\
         reason = \"lab\"\nowner = \"secops@example.com\"\nexpires = \"2999-12-31\"\n"
    );
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// `scan` of the fleet into `out`, not quiet (the summary is part of what is checked).
async fn scan(fleet: &TestFleet, out: &str, extra: &[&str]) -> std::process::Output {
    let mut argv = args(&[
        "scan",
        "--inventory",
        &fleet.inventory.display().to_string(),
        "-o",
        &fleet.path(out).display().to_string(),
        "--timeout",
        "5s",
    ]);
    argv.extend(extra.iter().map(|s| s.to_string()));
    run(&argv, &[("SSHFLEET_PASSWORD", PASSWORD)]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiver_allowing_disabled_never_hides_an_ssh_server_answering_while_configured_off() {
    // Camera 0 is configured off but a stray SSH server answers on its port (`port_only`);
    // camera 1 is off and closed. Both are expected disabled, and a waiver allows `disabled`.
    let fleet = TestFleet::start(SimConfig {
        specs: Some(vec![
            DeviceSpec {
                ssh: SshFault::StrayListener,
                ..DeviceSpec::clean(false)
            },
            DeviceSpec::clean(false),
        ]),
        ..SimConfig::default()
    })
    .await;
    let waivers = waive_all(&fleet, "disabled");
    let common = ["--probe-ssh", "--waivers", &waivers];
    let output = scan(&fleet, "report.jsonl", &common).await;
    let err = stderr(&output);
    assert_eq!(code(&output), 1, "port_only is a finding: {err}");
    assert!(err.contains("1 findings"), "{err}");
    assert!(err.contains("PORT_ONLY: 1 device(s)"), "{err}");
    // Nothing waived: no waiver claims a device ("waiver W-… allows N device(s)").
    assert!(
        !err.contains("allows 1 device"),
        "nothing was waived: {err}"
    );
    let records = by_address(&read_jsonl(&fleet.path("report.jsonl")));
    let exposed = &records[fleet.fleet.address(0)];
    assert_eq!(exposed["exposure"], "port_only", "{exposed}");
    assert_eq!(exposed["compliant"], false, "{exposed}");
    assert_eq!(exposed["waiver"], Value::Null, "{exposed}");
    assert_eq!(records[fleet.fleet.address(1)]["compliant"], true);

    // JUnit: the port_only camera fails; nothing is skipped.
    let output = scan(&fleet, "report.xml", &common).await;
    assert_eq!(code(&output), 1, "{}", stderr(&output));
    let xml = std::fs::read_to_string(fleet.path("report.xml")).unwrap();
    assert!(!xml.contains("<skipped"), "{xml}");
    assert_eq!(xml.matches("<failure").count(), 1, "{xml}");
    assert!(
        xml.contains("yet an SSH server answers on its port"),
        "{xml}"
    );
    fleet.fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_counts_new_exposure_as_the_scan_did_honouring_its_waivers() {
    let fleet = TestFleet::of(vec![DeviceSpec::clean(false); 4]).await;
    let output = scan(&fleet, "first.jsonl", &[]).await;
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    // SSH turned on for three cameras; a waiver in force allows it on the first of them.
    for i in 0..3 {
        fleet.fleet.set_ssh_enabled(i, true);
    }
    let waivers = fleet.path("waivers.toml");
    std::fs::write(
        &waivers,
        "[[waiver]]\nid = \"W-1\"\nmatch = { name = \"cam-0001\" }\nssh = \"enabled\"\n\
         reason = \"vendor access\"\nowner = \"secops@example.com\"\nexpires = \"2999-12-31\"\n",
    )
    .unwrap();
    let first = fleet.path("first.jsonl").display().to_string();
    for second in ["second.csv", "second.jsonl"] {
        let waivers = waivers.display().to_string();
        let output = scan(
            &fleet,
            second,
            &["--waivers", &waivers, "--baseline", &first],
        )
        .await;
        let err = stderr(&output);
        assert!(err.contains("regressed 3"), "{err}");
        assert!(err.contains("new exposure on 2"), "the scan's count: {err}");
        let second = fleet.path(second).display().to_string();
        let output = run(&args(&["diff", &first, &second, "-o", "-"]), &[]).await;
        let err = stderr(&output);
        assert_eq!(code(&output), 1, "{err}");
        assert!(
            err.contains("regressed 3") && err.contains("new exposure on 2"),
            "diff says what the scan said: {err}"
        );
        let rows: Vec<Value> = String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let waived: Vec<&Value> = rows.iter().filter(|r| r["waived"] == true).collect();
        assert_eq!(waived.len(), 1, "{rows:?}");
        assert_eq!(waived[0]["address"], fleet.fleet.address(0));
    }
    fleet.fleet.shutdown().await;
}

/// The `change` of every record of a report, by address.
fn changes(records: &[Value]) -> Vec<(String, String)> {
    let mut changes: Vec<(String, String)> = records
        .iter()
        .map(|r| {
            let address = r["address"].as_str().unwrap().to_owned();
            (address, r["change"].as_str().unwrap_or("").to_owned())
        })
        .collect();
    changes.sort();
    changes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_devices_claiming_one_serial_are_a_finding_and_unchanged_runs_stay_unchanged() {
    // Two simulators number their cameras from 0, so their first cameras claim one serial
    // (AXIS_ACCC8E012345): one with SSH on, one with SSH off, both expected disabled.
    let fleet = TestFleet::of(vec![DeviceSpec::clean(true), DeviceSpec::clean(false)]).await;
    let twin = sshfleet_sim::Fleet::start(SimConfig {
        specs: Some(vec![DeviceSpec::clean(false)]),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let mut rows = Vec::new();
    twin.write_inventory(&mut rows).unwrap();
    let rows = String::from_utf8(rows).unwrap();
    let mut inventory = std::fs::OpenOptions::new()
        .append(true)
        .open(&fleet.inventory)
        .unwrap();
    std::io::Write::write_all(&mut inventory, rows.lines().nth(1).unwrap().as_bytes()).unwrap();
    std::io::Write::write_all(&mut inventory, b"\n").unwrap();
    let (one, two) = (
        fleet.fleet.address(0).to_owned(),
        twin.address(0).to_owned(),
    );

    let mut both = [one.clone(), two.clone()];
    both.sort();
    let duplicate = format!(
        "DUPLICATE SERIAL ACCC8E012345: claimed by 2 devices ({}, {})",
        both[0], both[1]
    );
    let history = fleet.path("history.sqlite").display().to_string();
    let mut runs = Vec::new();
    for run in 0..4 {
        let out = format!("run{run}.jsonl");
        let output = scan(&fleet, &out, &["--history", &history]).await;
        let err = stderr(&output);
        assert_eq!(code(&output), 1, "{err}");
        assert!(err.contains(&duplicate), "{err}");
        assert!(err.contains("2 findings"), "the duplicate is one: {err}");
        let records = read_jsonl(&fleet.path(&out));
        let claimed: Vec<&Value> = records
            .iter()
            .filter(|r| r["serial"] == "ACCC8E012345")
            .collect();
        assert_eq!(claimed.len(), 2);
        let noted = claimed
            .iter()
            .filter(|r| {
                r["error"]
                    .as_str()
                    .is_some_and(|e| e.starts_with("serial ACCC8E012345 is also claimed by "))
            })
            .count();
        assert_eq!(noted, 1, "the later claimant says so: {claimed:?}");
        runs.push(changes(&records));
    }
    assert!(runs[0].iter().all(|(_, c)| c == "new"), "{:?}", runs[0]);
    for later in &runs[1..] {
        assert!(
            later.iter().all(|(_, c)| c == "unchanged"),
            "unchanged runs stay unchanged: {later:?}"
        );
    }
    // The same from report files: each previous report as the baseline.
    for run in 1..3 {
        let baseline = fleet.path(&format!("run{run}.jsonl")).display().to_string();
        let out = format!("baseline{run}.jsonl");
        let output = scan(&fleet, &out, &["--baseline", &baseline]).await;
        assert_eq!(code(&output), 1, "{}", stderr(&output));
        let records = read_jsonl(&fleet.path(&out));
        let changed = changes(&records);
        assert!(changed.iter().all(|(_, c)| c == "unchanged"), "{changed:?}");
    }
    twin.shutdown().await;
    fleet.fleet.shutdown().await;
}
