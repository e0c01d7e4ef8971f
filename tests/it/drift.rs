//! Compliance over time from report files: two scans of one fleet, with changes made between
//! them by another client, report exactly those changes; `diff` says the same.

use std::collections::HashMap;

use serde_json::Value;
use sshfleet_sim::{FaultProfile, SimConfig};

use crate::support::{
    args, by_address, code, read_jsonl, run, stderr, Sshfleet, TestFleet, PASSWORD,
};

/// Rewrites a JSON Lines report, record by record.
fn rewrite(path: &std::path::Path, mut edit: impl FnMut(&mut Value)) {
    let mut records = read_jsonl(path);
    for rec in &mut records {
        edit(rec);
    }
    let text: String = records.iter().map(|r| format!("{r}\n")).collect();
    std::fs::write(path, text).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_scan_reports_exactly_what_changed_since_the_first() {
    let fleet = TestFleet::start(SimConfig {
        devices: 40,
        seed: 11,
        faults: FaultProfile::None,
        ..SimConfig::default()
    })
    .await;
    for i in 0..fleet.fleet.len() {
        fleet.fleet.set_ssh_enabled(i, false);
    }
    fleet.fleet.set_ssh_enabled(5, true);
    let (output, first) = fleet.scan("first.jsonl", &["--expect", "disabled"]).await;
    assert_eq!(code(&output), 1, "{}", stderr(&output));
    assert!(
        first.iter().all(|r| r["change"].is_null()),
        "no baseline, no drift"
    );
    let serial_of: HashMap<String, String> = first
        .iter()
        .map(|r| {
            (
                r["address"].as_str().unwrap().to_owned(),
                r["serial"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();

    // Between the runs: another client turns SSH on for 2 and 3 and off for 5; camera 7
    // is the one that used to answer at another address (the baseline says so); cameras 8
    // and 9 swapped addresses; the row of camera 12 leaves the inventory.
    let address = |i: usize| fleet.fleet.address(i).to_owned();
    fleet.fleet.set_ssh_enabled(2, true);
    fleet.fleet.set_ssh_enabled(3, true);
    fleet.fleet.set_ssh_enabled(5, false);
    fleet.fleet.set_ssh_enabled(9, true);
    let baseline = fleet.path("first.jsonl");
    let (a8, a9) = (address(8), address(9));
    rewrite(&baseline, |rec| {
        let at = rec["address"].as_str().unwrap().to_owned();
        if at == address(7) {
            rec["address"] = "127.0.0.1:9".into();
        } else if at == a8 {
            rec["address"] = a9.clone().into();
        } else if at == a9 {
            rec["address"] = a8.clone().into();
        }
    });
    let inventory = std::fs::read_to_string(&fleet.inventory).unwrap();
    let removed = address(12);
    let kept: String = inventory
        .lines()
        .filter(|l| !l.starts_with(&format!("{removed},")))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&fleet.inventory, kept).unwrap();

    let baseline_arg = baseline.display().to_string();
    let second_arg = fleet.path("second.jsonl").display().to_string();
    // Not quiet: the summary on stderr is part of what is checked.
    let output = run(
        &args(&[
            "scan",
            "--inventory",
            &fleet.inventory.display().to_string(),
            "-o",
            &second_arg,
            "--timeout",
            "5s",
            "--expect",
            "disabled",
            "--baseline",
            &baseline_arg,
            "--fail-on",
            "regressions",
        ]),
        &[("SSHFLEET_PASSWORD", PASSWORD)],
    )
    .await;
    let second = read_jsonl(&fleet.path("second.jsonl"));
    assert_eq!(
        code(&output),
        1,
        "new exposure fails the run: {}",
        stderr(&output)
    );
    let report = by_address(&second);
    assert_eq!(second.len(), 39);
    let change = |i: usize| {
        report[&address(i)]["change"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    };
    assert_eq!(change(2), "regressed");
    assert_eq!(change(3), "regressed");
    assert_eq!(change(5), "fixed");
    assert_eq!(change(7), "moved");
    // 9 turned SSH on and swapped places with 8: matched by serial, so it is 9's own
    // change (regressed), and 8 just moved.
    assert_eq!(change(8), "moved");
    assert_eq!(change(9), "regressed");
    let others: Vec<_> = (0..40)
        .filter(|i| ![2, 3, 5, 7, 8, 9, 12].contains(i))
        .filter(|&i| change(i) != "unchanged")
        .collect();
    assert!(
        others.is_empty(),
        "only the changed cameras changed: {others:?}"
    );
    for rec in &second {
        assert_eq!(
            rec["serial"],
            serial_of[rec["address"].as_str().unwrap()].as_str()
        );
        assert!(
            rec["first_seen"].as_str().is_some_and(|t| !t.is_empty()),
            "{rec}"
        );
    }
    // A regression starts a new state period; an unchanged camera keeps the first's.
    let first_by = by_address(&first);
    assert_eq!(
        report[&address(0)]["state_since"],
        first_by[&address(0)]["checked_at"]
    );
    assert_ne!(
        report[&address(2)]["state_since"],
        first_by[&address(2)]["checked_at"]
    );
    let err = stderr(&output);
    assert!(
        err.contains("regressed 3") && err.contains("gone 1"),
        "{err}"
    );
    assert!(err.contains(&removed), "the gone device is named: {err}");

    // Nothing new since the second run: --fail-on regressions passes, although SSH is still
    // on where it should not be (findings remain, and the default would fail).
    let (output, third) = fleet
        .scan(
            "third.jsonl",
            &[
                "--expect",
                "disabled",
                "--baseline",
                &second_arg,
                "--fail-on",
                "regressions",
            ],
        )
        .await;
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert!(
        third.iter().all(|r| r["change"] == "unchanged"),
        "{third:?}"
    );
    let (output, _) = fleet
        .scan(
            "fourth.jsonl",
            &["--expect", "disabled", "--baseline", &second_arg],
        )
        .await;
    assert_eq!(code(&output), 1, "findings still fail by default");

    // diff of the first and second reports says the same, in CSV.
    let out = fleet.path("changes.csv");
    let output = run(
        &args(&[
            "diff",
            &baseline_arg,
            &second_arg,
            "-o",
            &out.display().to_string(),
        ]),
        &[],
    )
    .await;
    assert_eq!(code(&output), 1, "{}", stderr(&output));
    let text = std::fs::read_to_string(&out).unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let mut changes: Vec<(String, String)> = reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            (r[0].to_owned(), r[1].to_owned())
        })
        .collect();
    changes.sort();
    let mut want = vec![
        ("regressed".to_owned(), address(2)),
        ("regressed".to_owned(), address(3)),
        ("fixed".to_owned(), address(5)),
        ("moved".to_owned(), address(7)),
        ("moved".to_owned(), address(8)),
        ("regressed".to_owned(), address(9)),
        ("gone".to_owned(), removed.clone()),
    ];
    want.sort();
    assert_eq!(changes, want);
    let summary = stderr(&output);
    assert!(summary.contains("40 devices before, 39 after"), "{summary}");
}

#[tokio::test]
async fn a_bad_baseline_or_regressions_without_one_changes_nothing_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let inventory = dir.path().join("inventory.csv");
    std::fs::write(&inventory, "address\n127.0.0.1:9\n").unwrap();
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"address\":\"a\",\"status\":\"ok\"}\nnot json\n").unwrap();
    let out = dir.path().join("out.jsonl");
    let inv = inventory.display().to_string();
    let out_arg = out.display().to_string();
    let cases: [(&[&str], &str); 3] = [
        (&["--baseline", &bad.display().to_string()], "line 2"),
        (
            &["--baseline", "/nonexistent/prev.jsonl"],
            "cannot read the report",
        ),
        (&["--fail-on", "regressions"], "needs a previous run"),
    ];
    for (extra, want) in cases {
        let mut argv = vec!["scan", "--inventory", &inv, "-o", &out_arg];
        argv.extend_from_slice(extra);
        let output = run(&args(&argv), &[("SSHFLEET_PASSWORD", PASSWORD)]).await;
        assert_eq!(code(&output), 2, "{extra:?}: {}", stderr(&output));
        assert!(
            stderr(&output).contains(want),
            "{extra:?}: {}",
            stderr(&output)
        );
        assert!(!out.exists(), "{extra:?}: no report is started");
    }
}

/// A waiver file: `(id, name glob, expires)` each allowing SSH on.
fn waiver_file(dir: &std::path::Path, waivers: &[(&str, &str, &str)]) -> String {
    let mut text = String::from("# reviewed in git\n");
    for (id, name, expires) in waivers {
        text.push_str(&format!(
            "[[waiver]]\nid = \"{id}\"\nmatch = {{ name = \"{name}\" }}\nssh = \"enabled\"\n\
             reason = \"vendor access\"\nowner = \"secops@example.com\"\nexpires = \"{expires}\"\n\n"
        ));
    }
    let path = dir.join("waivers.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waivers_hide_findings_until_they_expire_and_remediation_never_writes_them() {
    let fleet = TestFleet::start(SimConfig {
        devices: 6,
        faults: FaultProfile::None,
        ..SimConfig::default()
    })
    .await;
    for i in 0..6 {
        fleet.fleet.set_ssh_enabled(i, i == 2 || i == 4);
    }
    let waivers = waiver_file(
        fleet.dir.path(),
        &[
            ("W-1", "cam-0003", "2999-12-31"),
            ("W-2", "cam-0005", "2020-01-01"),
            ("W-unused", "nobody-*", "2999-12-31"),
        ],
    );
    let scan = |out: &str| {
        Sshfleet::scan(&fleet.inventory)
            .out(&fleet.path(out))
            .args(&["--timeout", "5s"])
            .args(&["--waivers", &waivers])
    };
    let output = scan("waived.jsonl").run().await;
    let err = stderr(&output);
    // cam-0003 (index 2) is waived; cam-0005 (index 4) had a waiver that expired.
    assert_eq!(code(&output), 1, "{err}");
    let records = by_address(&read_jsonl(&fleet.path("waived.jsonl")));
    let waived = &records[fleet.fleet.address(2)];
    assert_eq!(
        waived["compliant"], false,
        "still non-compliant, on the record"
    );
    assert!(
        waived["waiver"]
            .as_str()
            .is_some_and(|w| w.starts_with("W-1 owner=secops@example.com expires=2999-12-31")),
        "{waived}"
    );
    assert_eq!(records[fleet.fleet.address(4)]["waiver"], Value::Null);
    assert!(err.contains("1 findings"), "{err}");
    assert!(err.contains("1 waived"), "{err}");
    assert!(err.contains("EXPIRED waiver W-2"), "{err}");
    assert!(
        err.contains("waivers matching no device: W-unused"),
        "{err}"
    );

    // With cam-0005 compliant again, the waived device alone leaves the run clean.
    fleet.fleet.set_ssh_enabled(4, false);
    let output = scan("clean.jsonl").run().await;
    assert_eq!(code(&output), 0, "{}", stderr(&output));

    // Remediation plans the waived device as `waived` and never writes it.
    let out = fleet.path("fix.jsonl");
    let journal = fleet.path("fix.journal.jsonl");
    let argv = args(&[
        "remediate",
        "--inventory",
        &fleet.inventory.display().to_string(),
        "--ssh",
        "disabled",
        "--apply",
        "--yes",
        "--waivers",
        &waivers,
        "-o",
        &out.display().to_string(),
        "--journal",
        &journal.display().to_string(),
        "--timeout",
        "5s",
        "--rate",
        "100/s",
    ]);
    let output = run(&argv, &[("SSHFLEET_PASSWORD", PASSWORD)]).await;
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let records = by_address(&read_jsonl(&out));
    assert_eq!(records[fleet.fleet.address(2)]["action"], "waived");
    assert!(fleet.fleet.snapshot()[2].writes.is_empty(), "never written");
    assert!(fleet.fleet.snapshot()[2].ssh_enabled, "still as waived");
}

#[tokio::test]
async fn a_waiver_without_an_owner_refuses_the_run_naming_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let inventory = dir.path().join("inventory.csv");
    std::fs::write(&inventory, "address\n127.0.0.1:9\n").unwrap();
    let waivers = dir.path().join("waivers.toml");
    std::fs::write(
        &waivers,
        "[[waiver]]\nid = \"W-1\"\nmatch = { site = \"hq\" }\nssh = \"enabled\"\nreason = \"r\"\nexpires = \"2027-01-01\"\n",
    )
    .unwrap();
    let out = dir.path().join("out.jsonl");
    let output = Sshfleet::scan(&inventory)
        .file("--waivers", &waivers)
        .out(&out)
        .run()
        .await;
    let err = stderr(&output);
    assert_eq!(code(&output), 2, "{err}");
    assert!(
        err.contains("waivers.toml, line 1: waiver W-1: `owner` is missing"),
        "{err}"
    );
    assert!(!out.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_shows_the_drift_of_its_second_scan_in_its_files_and_its_page() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    let output = run(
        &args(&[
            "demo",
            "--devices",
            "60",
            "--dir",
            &out.display().to_string(),
            "-q",
        ]),
        &[],
    )
    .await;
    let err = stderr(&output);
    assert_eq!(code(&output), 0, "{err}");
    let rescan = read_jsonl(&out.join("rescan.jsonl"));
    assert_eq!(rescan.len(), 60);
    let count = |change: &str| rescan.iter().filter(|r| r["change"] == change).count();
    assert_eq!((count("regressed"), count("fixed")), (3, 2), "{err}");
    assert!(err.contains("regressed 3, fixed 2"), "{err}");

    // The saved plan, applied after those changes: the two turned off since are stale, the
    // three turned on were never in it, and every planned camera but those was verified.
    let plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("remediation-plan.json")).unwrap())
            .unwrap();
    let planned: Vec<&str> = plan["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["address"].as_str().unwrap())
        .collect();
    let applied = read_jsonl(&out.join("remediation.jsonl"));
    let action_of = |address: &str| {
        applied
            .iter()
            .find(|r| r["address"] == address)
            .map(|r| r["action"].as_str().unwrap_or_default().to_owned())
    };
    let by = |change: &str| -> Vec<&str> {
        rescan
            .iter()
            .filter(|r| r["change"] == change)
            .map(|r| r["address"].as_str().unwrap())
            .collect()
    };
    for address in by("fixed") {
        assert!(planned.contains(&address), "{address} was planned");
        assert_eq!(action_of(address).as_deref(), Some("stale"), "{address}");
    }
    for address in by("regressed") {
        assert!(!planned.contains(&address), "{address} was not planned");
        assert_ne!(action_of(address).as_deref(), Some("set"), "{address}");
    }
    let verified = applied.iter().filter(|r| r["verified"] == true).count();
    assert_eq!(verified, planned.len() - 2, "{err}");
    let journal = std::fs::read_to_string(out.join("remediation.journal.jsonl")).unwrap();
    assert_eq!(journal.matches("\"type\":\"wave\"").count(), 3, "{journal}");
    // The same run's HTML page (one demo run for both: it is the slowest set-up here).
    crate::html_report::assert_the_demo_page(&out, &err).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_file_records_runs_and_gives_the_next_run_its_drift() {
    let fleet = TestFleet::start(SimConfig {
        devices: 12,
        faults: FaultProfile::None,
        ..SimConfig::default()
    })
    .await;
    for i in 0..12 {
        fleet.fleet.set_ssh_enabled(i, false);
    }
    let history = fleet.path("history.sqlite").display().to_string();
    let scan = |out: &str, extra: &[&str]| {
        Sshfleet::scan(&fleet.inventory)
            .out(&fleet.path(out))
            .args(&["--timeout", "5s", "--expect", "disabled"])
            .args(&["--history", &history])
            .args(extra)
    };
    let output = scan("one.jsonl", &["--fail-on", "regressions"]).run().await;
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert!(
        stderr(&output).contains("recorded as run 1"),
        "{}",
        stderr(&output)
    );
    let first = read_jsonl(&fleet.path("one.jsonl"));
    assert!(
        first.iter().all(|r| r["change"] == "new"),
        "the first run sees every device new"
    );

    fleet.fleet.set_ssh_enabled(4, true);
    let output = scan("two.jsonl", &["--fail-on", "regressions"]).run().await;
    assert_eq!(code(&output), 1, "new exposure: {}", stderr(&output));
    let second = by_address(&read_jsonl(&fleet.path("two.jsonl")));
    let address = fleet.fleet.address(4).to_owned();
    assert_eq!(second[&address]["change"], "regressed");
    assert_eq!(second[fleet.fleet.address(0)]["change"], "unchanged");
    assert_eq!(
        second[fleet.fleet.address(0)]["first_seen"],
        by_address(&first)[fleet.fleet.address(0)]["checked_at"]
    );

    let output = scan("three.jsonl", &["--fail-on", "regressions"])
        .run()
        .await;
    assert_eq!(
        code(&output),
        0,
        "nothing new since run 2: {}",
        stderr(&output)
    );

    let runs = run(&args(&["history", &history, "runs", "--json"]), &[]).await;
    assert_eq!(code(&runs), 0, "{}", stderr(&runs));
    let runs: Value = serde_json::from_slice(&runs.stdout).unwrap();
    let ids: Vec<i64> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [3, 2, 1]);
    assert_eq!(runs[1]["regressed"], 1);
    let timeline = run(
        &args(&["history", &history, "device", &address, "--json"]),
        &[],
    )
    .await;
    let periods: Value = serde_json::from_slice(&timeline.stdout).unwrap();
    let periods = periods.as_array().unwrap();
    assert_eq!(periods.len(), 2, "{periods:?}");
    assert_eq!(
        (
            periods[1]["run_first"].as_i64(),
            periods[1]["run_last"].as_i64()
        ),
        (Some(2), Some(3))
    );
    assert_eq!(periods[1]["ssh_enabled"], true);

    // Another sshfleet holding the history: refused at once, nothing scanned or written.
    let lock = rusqlite::Connection::open(fleet.path("history.sqlite")).unwrap();
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    let before = fleet
        .fleet
        .snapshot()
        .iter()
        .map(|d| d.requests)
        .sum::<u64>();
    let output = scan("locked.jsonl", &[]).run().await;
    assert_eq!(code(&output), 2, "{}", stderr(&output));
    assert!(
        stderr(&output).contains("is locked by another sshfleet run"),
        "{}",
        stderr(&output)
    );
    assert!(!fleet.path("locked.jsonl").exists());
    assert_eq!(
        fleet
            .fleet
            .snapshot()
            .iter()
            .map(|d| d.requests)
            .sum::<u64>(),
        before
    );
    lock.execute_batch("ROLLBACK").unwrap();

    let pruned = run(
        &args(&["history", &history, "prune", "--keep-runs", "1"]),
        &[],
    )
    .await;
    assert_eq!(code(&pruned), 0, "{}", stderr(&pruned));
    assert!(String::from_utf8_lossy(&pruned.stdout).contains("pruned 2 run(s)"));
}

#[tokio::test]
async fn a_history_that_is_not_ours_or_from_a_newer_sshfleet_is_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let inventory = dir.path().join("inventory.csv");
    std::fs::write(&inventory, "address\n127.0.0.1:9\n").unwrap();
    let garbage = dir.path().join("garbage.sqlite");
    let text = "this is not a database, it is a shopping list: eggs, milk, bread, tea";
    std::fs::write(&garbage, text).unwrap();
    let newer = dir.path().join("newer.sqlite");
    {
        let conn = rusqlite::Connection::open(&newer).unwrap();
        conn.execute_batch("CREATE TABLE meta (key, value); PRAGMA user_version = 42;")
            .unwrap();
    }
    let out = dir.path().join("out.jsonl");
    for (file, want) in [
        (&garbage, "not an sshfleet history"),
        (&newer, "written by a newer sshfleet"),
    ] {
        let output = Sshfleet::scan(&inventory)
            .file("--history", file)
            .out(&out)
            .run()
            .await;
        assert_eq!(code(&output), 2, "{}", stderr(&output));
        assert!(stderr(&output).contains(want), "{}", stderr(&output));
        assert!(!out.exists());
    }
    assert_eq!(std::fs::read_to_string(&garbage).unwrap(), text);
}
