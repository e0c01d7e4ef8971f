//! Host keys across the fleet and over time, against the simulator's truth, through the real
//! binary: `ssh_key_shared` groups equal the truth's cloned images, a second run after the
//! simulator re-keyed some cameras reports exactly those as `changed` (history and
//! `--baseline`), and both findings reach the words printed, the JSON summary, the metrics,
//! the JUnit file, the page a person sees and the exit code.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Output;

use serde_json::Value;
use sshfleet_sim::{FaultProfile, SimConfig};

use crate::html_report::{browser_available, open_in_browser};
use crate::support::{args, code, read_jsonl, run, stderr, Sshfleet, TestFleet};

/// What the simulator says of each camera whose SSH server shows a key now: address →
/// (key, changed at this epoch).
fn truth_keys(fleet: &TestFleet) -> BTreeMap<String, (String, bool)> {
    (0..fleet.fleet.len())
        .filter_map(|i| {
            let t = fleet.fleet.truth(i);
            let e = t.ssh_evidence?;
            Some((t.address, (e.host_key, e.key_changed)))
        })
        .collect()
}

/// Keys shown by more than one device, each with its addresses.
fn groups<'a>(
    keys: impl Iterator<Item = (&'a str, &'a str)>,
) -> BTreeMap<String, BTreeSet<String>> {
    let mut all: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (address, key) in keys {
        all.entry(key.to_owned())
            .or_default()
            .insert(address.to_owned());
    }
    all.retain(|_, addresses| addresses.len() > 1);
    all
}

fn truth_groups(truth: &BTreeMap<String, (String, bool)>) -> BTreeMap<String, BTreeSet<String>> {
    groups(truth.iter().map(|(a, (k, _))| (a.as_str(), k.as_str())))
}

/// A scan with the evidence, the history and every output, the summary printed (no
/// `--quiet`).
async fn scan(fleet: &TestFleet, name: &str, extra: &[&str]) -> (Output, Vec<Value>, Value) {
    let path = |ext: &str| fleet.path(&format!("{name}.{ext}")).display().to_string();
    let (report, summary) = (path("jsonl"), path("summary.json"));
    let output = Sshfleet::scan(&fleet.inventory)
        .out(Path::new(&report))
        .args(&["--probe-ssh", "--timeout", "3s", "--retries", "0"])
        .args(&["--summary-out", &summary, "--metrics-out", &path("prom")])
        .args(&["--html-out", &path("html")])
        .args(extra)
        .run()
        .await;
    let summary: Value = match std::fs::read_to_string(&summary) {
        Ok(text) => serde_json::from_str(&text).unwrap(),
        Err(e) => panic!("no summary ({e}): {}", stderr(&output)),
    };
    (output, read_jsonl(Path::new(&report)), summary)
}

fn keyed(records: &[Value]) -> BTreeMap<String, &Value> {
    records
        .iter()
        .filter(|r| r["ssh_host_key"].is_string())
        .map(|r| (r["address"].as_str().unwrap().to_owned(), r))
        .collect()
}

fn metric(prom: &Path, name: &str) -> Option<u64> {
    let text = std::fs::read_to_string(prom).unwrap();
    text.lines()
        .find(|l| l.starts_with(&format!("{name} ")))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// The shared-key groups of a run equal the truth's, in the records, the words printed, the
/// summary, the metrics.
fn assert_shared_keys_as_truth(
    fleet: &TestFleet,
    name: &str,
    (output, records, summary): (&Output, &[Value], &Value),
) -> BTreeMap<String, BTreeSet<String>> {
    let truth = truth_keys(fleet);
    let want = truth_groups(&truth);
    assert!(!want.is_empty(), "the truth holds a shared key to find");
    let reported = keyed(records);
    let got = groups(
        reported
            .iter()
            .map(|(a, r)| (a.as_str(), r["ssh_host_key"].as_str().unwrap())),
    );
    assert_eq!(got, want, "shared-key groups");
    for (address, rec) in &reported {
        let key = rec["ssh_host_key"].as_str().unwrap();
        let devices = want.get(key).map_or(1, |a| a.len() as u64);
        assert_eq!(rec["ssh_key_shared"], devices, "{address}");
    }
    let unread = records.iter().filter(|r| !r["ssh_host_key"].is_string());
    assert!(unread.clone().count() > 0, "some devices show no key");
    assert!(unread.into_iter().all(|r| r["ssh_key_shared"].is_null()));
    let err = stderr(output);
    for (key, addresses) in &want {
        let line = err
            .lines()
            .find(|l| l.starts_with(&format!("SHARED HOST KEY {key} ")))
            .unwrap_or_else(|| panic!("no line for {key}: {err}"));
        assert!(
            line.contains(&format!("presented by {} devices", addresses.len())),
            "{line}"
        );
    }
    let shared = &summary["host_keys"]["shared"];
    assert_eq!(shared["count"], want.len() as u64, "{summary}");
    // The totals line names the fleet's findings, so its parts add up to the total.
    let findings = summary["host_keys"]["changed"]["count"]
        .as_u64()
        .unwrap_or(0)
        .saturating_add(want.len() as u64);
    assert!(
        err.contains(&format!(", {findings} host-key finding(s)); ")),
        "{err}"
    );
    let keys: BTreeSet<&String> = shared["keys"].as_object().unwrap().keys().collect();
    assert_eq!(keys, want.keys().collect());
    let prom = fleet.path(&format!("{name}.prom"));
    assert_eq!(
        metric(&prom, "sshfleet_shared_host_keys"),
        Some(want.len() as u64)
    );
    want
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_and_changed_host_keys_are_the_truths_in_every_output() {
    let fleet = TestFleet::start(SimConfig {
        devices: 300,
        seed: 5,
        faults: FaultProfile::None,
        ..SimConfig::default()
    })
    .await;
    let history = fleet.path("history.sqlite").display().to_string();
    let with_history = ["--history", history.as_str(), "--fail-on", "regressions"];
    let first = scan(&fleet, "first", &with_history).await;
    // Every device is new, the non-compliant ones new exposure.
    assert_eq!(code(&first.0), 1, "{}", stderr(&first.0));
    assert_shared_keys_as_truth(&fleet, "first", (&first.0, &first.1, &first.2));
    assert!(keyed(&first.1)
        .values()
        .all(|r| r["ssh_host_key_change"] == "first"));

    // The simulator re-flashes some cameras: new keys, the same serials.
    fleet.fleet.set_key_epoch(1);
    let truth = truth_keys(&fleet);
    let changed: BTreeSet<String> = truth
        .iter()
        .filter(|(_, (_, changed))| *changed)
        .map(|(a, _)| a.clone())
        .collect();
    assert!(!changed.is_empty(), "the truth holds a changed key");
    let second = scan(&fleet, "second", &with_history).await;
    assert_shared_keys_as_truth(&fleet, "second", (&second.0, &second.1, &second.2));
    assert_changes_as_truth(&second.1, &changed);
    let (output, _, summary) = &second;
    assert_eq!(summary["new_exposure"], 0, "{summary}");
    assert_eq!(
        code(output),
        1,
        "a changed key fails --fail-on regressions: {}",
        stderr(output)
    );
    assert_eq!(
        summary["host_keys"]["changed"]["count"],
        changed.len() as u64
    );
    let err = stderr(output);
    for address in &changed {
        assert!(
            err.contains(&format!("CHANGED HOST KEY {address} (serial ")),
            "{address}: {err}"
        );
    }
    assert_eq!(
        metric(&fleet.path("second.prom"), "sshfleet_changed_host_keys"),
        Some(changed.len() as u64)
    );
    assert_timelines(&history, (&first.1, &second.1), &changed).await;
    assert_junit(&fleet, &changed, &truth_groups(&truth)).await;
    assert_page(&fleet.path("second.html"), &changed, &truth_groups(&truth)).await;

    // Against a baseline report: the same devices changed since the first run.
    let first_report = fleet.path("first.jsonl").display().to_string();
    let against = scan(&fleet, "against", &["--baseline", &first_report]).await;
    assert_changes_as_truth(&against.1, &changed);

    // Nothing changed since: every key the same, no finding, exit 0.
    let third = scan(&fleet, "third", &with_history).await;
    assert_eq!(code(&third.0), 0, "{}", stderr(&third.0));
    assert!(keyed(&third.1)
        .values()
        .all(|r| r["ssh_host_key_change"] == "same"));
    assert!(third.2["host_keys"]
        .get("changed")
        .is_none_or(|c| c["count"] == 0));
    assert!(!stderr(&third.0).contains("CHANGED HOST KEY"));
    fleet.fleet.shutdown().await;
}

/// Exactly the truth's re-keyed cameras are `changed`, every other key `same`.
fn assert_changes_as_truth(records: &[Value], changed: &BTreeSet<String>) {
    let reported = keyed(records);
    let got: BTreeSet<String> = reported
        .iter()
        .filter(|(_, r)| r["ssh_host_key_change"] == "changed")
        .map(|(a, _)| a.clone())
        .collect();
    assert_eq!(&got, changed);
    for (address, rec) in &reported {
        if !changed.contains(address) {
            assert_eq!(rec["ssh_host_key_change"], "same", "{address}");
        }
    }
}

/// The JUnit file of the second run (`report merge` of its report): a failed case per
/// shared key and per changed key.
async fn assert_junit(
    fleet: &TestFleet,
    changed: &BTreeSet<String>,
    shared: &BTreeMap<String, BTreeSet<String>>,
) {
    let xml = fleet.path("second.xml");
    let output = Sshfleet::merge(&fleet.inventory)
        .out(&xml)
        .arg("--quiet")
        .arg(&fleet.path("second.jsonl").display().to_string())
        .run()
        .await;
    assert!(code(&output) <= 1, "{}", stderr(&output));
    let text = std::fs::read_to_string(&xml).unwrap();
    let cases: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("classname=\"sshfleet host keys\""))
        .collect();
    assert_eq!(cases.len(), changed.len() + shared.len(), "{text}");
    for address in changed {
        let case = format!("name=\"changed host key {address}\"");
        assert!(
            cases
                .iter()
                .any(|c| c.contains(&case) && c.contains("<failure type=\"changed_host_key\"")),
            "{case}"
        );
    }
    for key in shared.keys() {
        let case = format!("name=\"shared host key {key}\"");
        assert!(cases.iter().any(|c| c.contains(&case)), "{case}");
    }
}

/// `history device` of re-keyed cameras: a period per key, the key the first run read and
/// then the one the second read, in the words printed.
async fn assert_timelines(
    history: &str,
    (first, second): (&[Value], &[Value]),
    changed: &BTreeSet<String>,
) {
    let (first, second) = (keyed(first), keyed(second));
    for address in changed.iter().take(3) {
        let out = run(&args(&["history", history, "device", address]), &[]).await;
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let shown: Vec<&str> = text
            .lines()
            .filter_map(|l| l.split("  host key ").nth(1))
            .collect();
        let want = [&first[address], &second[address]].map(|r| r["ssh_host_key"].as_str().unwrap());
        assert_ne!(want[0], want[1]);
        assert_eq!(shown, want, "{address}: {text}");
    }
}

/// What a person sees of the host-key section in Chromium.
async fn assert_page(
    page: &Path,
    changed: &BTreeSet<String>,
    shared: &BTreeMap<String, BTreeSet<String>>,
) {
    if !browser_available() {
        return;
    }
    let seen = open_in_browser(page, &[]).await;
    let keys = &seen["host_keys"];
    assert!(keys.is_object(), "no visible host-key section: {seen}");
    let rows = |name: &str| -> Vec<Vec<String>> {
        keys[name]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                r.as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c.as_str().unwrap().to_owned())
                    .collect()
            })
            .collect()
    };
    let shown_changed: BTreeSet<String> =
        rows("changed").into_iter().map(|r| r[1].clone()).collect();
    assert_eq!(&shown_changed, changed);
    let shown_shared: BTreeMap<String, String> = rows("shared")
        .into_iter()
        .map(|r| (r[0].clone(), r[2].clone()))
        .collect();
    let want: BTreeMap<String, String> = shared
        .iter()
        .map(|(k, a)| (k.clone(), a.len().to_string()))
        .collect();
    assert_eq!(shown_shared, want);
    let text = keys["text"].as_str().unwrap();
    assert!(text.contains("shared by several devices"), "{text}");
}
