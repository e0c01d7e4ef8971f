//! `--format junit`: one test case per device, non-compliant devices as failures and
//! unreadable ones as errors, well-formed for a real XML parser even with hostile names.

use std::process::Command;

use serde_json::Value;
use sshfleet_sim::{FaultProfile, SimConfig};

use crate::support::{code, read_jsonl, stderr, TestFleet};

/// Counts what Python's own XML parser (a strict XML 1.0 reader) finds in the file.
fn parse_with_python(path: &std::path::Path) -> Value {
    let script = r#"
import json, sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
cases = root.findall("./testsuite/testcase")
print(json.dumps({
    "root": root.tag,
    "cases": len(cases),
    "failures": sum(1 for c in cases if c.find("failure") is not None),
    "errors": sum(1 for c in cases if c.find("error") is not None),
    "names": [c.get("name") for c in cases],
    "classnames": sorted({c.get("classname") for c in cases}),
}))
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(path)
        .output()
        .expect("python3 runs (it is on every machine this project supports)");
    assert!(
        out.status.success(),
        "the JUnit file is not well-formed XML: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_device_is_a_test_case_and_findings_fail() {
    let fleet = TestFleet::start(SimConfig {
        devices: 24,
        seed: 21,
        faults: FaultProfile::None,
        ..SimConfig::default()
    })
    .await;
    for i in 0..fleet.fleet.len() {
        fleet.fleet.set_ssh_enabled(i, i % 3 == 0);
    }
    // One row whose name is markup, one that cannot be reached.
    let text = std::fs::read_to_string(&fleet.inventory).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let hostile = "</testcase><script>alert(1)</script>&amp;\"'";
    let mut fields: Vec<String> = lines[1].split(',').map(str::to_owned).collect();
    fields[1] = format!("\"{}\"", hostile.replace('"', "\"\""));
    lines[1] = fields.join(",");
    lines.push("http://127.0.0.1:1,gone-cam,lab,disabled,".to_owned());
    std::fs::write(&fleet.inventory, lines.join("\n") + "\n").unwrap();

    let xml = fleet.path("report.xml");
    let (output, _) = fleet
        .scan("report.xml", &["--timeout", "2s", "--retries", "0"])
        .await;
    assert_eq!(code(&output), 1, "{}", stderr(&output));
    // The same run as JSON Lines, to compare with.
    let (again, _) = fleet
        .scan("report.jsonl", &["--timeout", "2s", "--retries", "0"])
        .await;
    assert_eq!(code(&again), 1, "{}", stderr(&again));
    let records = read_jsonl(&fleet.path("report.jsonl"));
    let non_compliant = records
        .iter()
        .filter(|r| r["compliant"] == Value::Bool(false))
        .count();
    let unreadable = records.iter().filter(|r| r["status"] != "ok").count();
    assert!(non_compliant > 0 && unreadable == 1);

    let parsed = parse_with_python(&xml);
    assert_eq!(parsed["root"], "testsuites");
    assert_eq!(parsed["cases"], 25);
    assert_eq!(parsed["failures"], non_compliant);
    assert_eq!(parsed["errors"], 1);
    let names: Vec<&str> = parsed["names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert!(
        names.iter().any(|n| n.starts_with(hostile)),
        "the hostile name is one attribute value, as written: {names:?}"
    );
    let text = std::fs::read_to_string(&xml).unwrap();
    assert!(!text.contains("<script>"), "{text}");
}
