//! Hostile and broken inventories: every row is accounted for, nothing crashes.

use sshfleet_sim::{FaultProfile, SimConfig};

use crate::support::{args, code, read_jsonl, run, stderr, Sshfleet, TestFleet};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hostile_row_becomes_a_record_or_a_warned_duplicate() {
    let fleet = TestFleet::start(SimConfig {
        devices: 1,
        faults: FaultProfile::None,
        ..SimConfig::default()
    })
    .await;
    let good = fleet.fleet.address(0).to_string();
    let rows = [
        format!("{good},good,site-a,disabled"),
        "\"=HYPERLINK(\"\"http://evil/\"\")\",formula,site-a,disabled".to_string(),
        "10.0.0.1:99999,bad-port,site-a,disabled".to_string(),
        "http://user:hunter2@10.0.0.2/,userinfo,site-a,disabled".to_string(),
        "https://10.0.0.3:8443/axis-cgi/,path,site-a,disabled".to_string(),
        "not a host!,spaces,site-a,disabled".to_string(),
        ",empty,site-a,disabled".to_string(),
        format!("{good},duplicate,site-a,disabled"),
        "10.0.0.4,odd-expect,site-a,sideways".to_string(),
        "\u{0}10.0.0.5,nul,site-a,disabled".to_string(),
        format!("{},huge,site-a,disabled", "a".repeat(10_000)),
        "10.0.0.6,too,many,fields,here".to_string(),
    ];
    let inventory = fleet.path("hostile.csv");
    let mut text = String::from("\u{feff}address,name,site,expect\r\n# a comment\r\n\r\n");
    for row in &rows {
        text.push_str(row);
        text.push_str("\r\n");
    }
    std::fs::write(&inventory, text).expect("inventory");
    let out = fleet.path("out.jsonl");
    let output = Sshfleet::scan(&inventory)
        .out(&out)
        .args(&["--timeout", "2s", "--retries", "0"])
        .run()
        .await;
    assert_eq!(code(&output), 1, "{}", stderr(&output));
    let records = read_jsonl(&out);
    // Every row but the duplicate is reported; the duplicate is named in a warning.
    assert_eq!(records.len(), rows.len() - 1, "{records:#?}");
    assert!(stderr(&output).contains("duplicate"), "{}", stderr(&output));
    let ok: Vec<_> = records.iter().filter(|r| r["status"] == "ok").collect();
    assert_eq!(ok.len(), 1);
    let invalid = records.iter().filter(|r| r["status"] == "invalid").count();
    assert!(invalid >= 8, "{records:#?}");
    for record in records.iter().filter(|r| r["status"] == "invalid") {
        assert!(
            record["error"]
                .as_str()
                .unwrap_or_default()
                .starts_with("line "),
            "{record}"
        );
    }
    let all = format!(
        "{}{}",
        stderr(&output),
        std::fs::read_to_string(&out).unwrap_or_default()
    );
    assert!(
        !all.contains("hunter2"),
        "a password in a URL must never be echoed"
    );
    fleet.fleet.shutdown().await;
}

#[tokio::test]
async fn unusable_inventory_files_are_usage_errors() {
    let dir = tempfile::tempdir().expect("dir");
    let cases = [
        ("missing.csv", None),
        ("empty.csv", Some("")),
        ("no-address.csv", Some("name,site\nx,y\n")),
    ];
    for (name, content) in cases {
        let path = dir.path().join(name);
        if let Some(content) = content {
            std::fs::write(&path, content).expect("write");
        }
        let output = run(
            &args(&["scan", "--inventory", &path.display().to_string()]),
            &[("SSHFLEET_PASSWORD", "pass")],
        )
        .await;
        assert_eq!(code(&output), 2, "{name}: {}", stderr(&output));
        assert!(stderr(&output).contains("error"), "{name}");
        assert!(output.stdout.is_empty(), "{name}: nothing done");
    }
}
