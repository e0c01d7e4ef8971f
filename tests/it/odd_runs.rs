//! Odd runs say so, and every output states compliance the same way: a scan stopped by
//! Ctrl-C, a remediation stopped by its failure budget, a run without any desired state and
//! a first recorded run — read from the page, the terminal, `--summary-out`, the metrics and
//! JUnit that the real binary wrote against the simulator.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use sshfleet_sim::{DeviceAuth, DeviceSpec, Fault, Firmware, SimConfig, SshFault};

use crate::support::{
    args, code, eventually, read_jsonl, run, stderr, Sshfleet, TestFleet, PASSWORD,
};

fn camera(ssh_enabled: bool, fault: Fault) -> DeviceSpec {
    DeviceSpec {
        ssh_enabled,
        fault,
        firmware: Firmware::Modern,
        auth: DeviceAuth::Policy,
        ssh: SshFault::None,
    }
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}: {text}", path.display()))
}

/// The value of the sample `series` (name and labels as written) in a metrics file.
fn metric(path: &Path, series: &str) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ').map(str::to_owned))
        .unwrap_or_else(|| panic!("no {series} in {text}"))
}

/// The element with `data-testid="{id}"` in a page: its opening tag and what follows, up
/// to the next card.
fn element<'a>(page: &'a str, id: &str) -> &'a str {
    let at = page
        .find(&format!("data-testid=\"{id}\""))
        .unwrap_or_else(|| panic!("no {id} on the page"));
    let start = page[..at].rfind('<').unwrap();
    let rest = &page[start..];
    let end = rest[1..]
        .find("<div class=\"card")
        .map_or(rest.len(), |e| e + 1);
    &rest[..end]
}

/// The shown value (`div class="v"`) of a headline card.
fn shown(page: &str, id: &str) -> String {
    let card = element(page, id);
    let v = card.find("class=\"v").unwrap_or_else(|| panic!("{card}"));
    let from = v + card[v..].find('>').unwrap() + 1;
    card[from..from + card[from..].find('<').unwrap()].to_string()
}

fn attribute(tag: &str, name: &str) -> String {
    let key = format!("{name}=\"");
    let at = tag
        .find(&key)
        .unwrap_or_else(|| panic!("no {name} in {tag}"))
        + key.len();
    tag[at..at + tag[at..].find('"').unwrap()].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_stopped_by_ctrl_c_is_marked_incomplete_everywhere() {
    // Five quick cameras, two that hang, twenty more: with two at a time, Ctrl-C after the
    // first five leaves most of the fleet unreached.
    let mut specs = vec![camera(false, Fault::None); 5];
    specs.extend(vec![camera(false, Fault::Hang); 2]);
    specs.extend(vec![camera(false, Fault::None); 20]);
    let in_scope = specs.len() as u64;
    let fleet = TestFleet::of(specs).await;
    let [junit, summary, metrics, html] =
        ["partial.xml", "summary.json", "run.prom", "partial.html"].map(|n| fleet.path(n));
    let child = Sshfleet::scan(&fleet.inventory)
        .out(&junit)
        .file("--summary-out", &summary)
        .file("--metrics-out", &metrics)
        .file("--html-out", &html)
        .args(&["--concurrency", "2", "--timeout", "3s", "--retries", "0"])
        .command()
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let cases = || {
        std::fs::read_to_string(&junit)
            .map(|t| t.matches("<testcase ").count() - t.matches("name=\"run coverage\"").count())
            .unwrap_or(0)
    };
    let streamed = eventually(|| cases() >= 5, Duration::from_secs(10)).await;
    assert!(streamed, "the first devices reach the report");
    let output = crate::support::interrupt_and_wait(child).await;
    let err = stderr(&output);
    assert_eq!(code(&output), 130, "{err}");
    let reported = cases() as u64;
    let not_reached = in_scope - reported;
    assert!(not_reached >= 10, "{reported} reported");

    // The terminal: the summary starts by saying so, and the interruption is a sentence.
    let headline = format!(
        "INCOMPLETE (interrupted): {not_reached} of {in_scope} devices in scope not reached"
    );
    assert!(err.contains(&headline), "{err}");
    let stop = err
        .lines()
        .rfind(|l| l.starts_with("interrupted: "))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(
        stop.ends_with("the report holds every device checked before the stop."),
        "{stop}"
    );
    // --summary-out.
    let json = read_json(&summary);
    assert_eq!(json["run"]["complete"], false, "{json}");
    assert_eq!(json["run"]["stopped"], "interrupted");
    assert_eq!(json["run"]["in_scope"], in_scope);
    assert_eq!(json["run"]["not_reached"], not_reached);
    assert_eq!(json["total"], reported);
    // The devices not reached count against compliance.
    assert_eq!(json["compliance"]["of"], in_scope, "{json}");
    // Metrics.
    assert_eq!(metric(&metrics, "sshfleet_run_complete"), "0");
    assert_eq!(metric(&metrics, "sshfleet_run_success"), "0");
    assert_eq!(
        metric(&metrics, "sshfleet_devices_in_scope"),
        in_scope.to_string()
    );
    assert_eq!(
        metric(&metrics, "sshfleet_devices_not_reached"),
        not_reached.to_string()
    );
    // JUnit: a failed case of its own, and the counts.
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains(&format!(
            "<error type=\"incomplete\" message=\"incomplete run: {not_reached} of {in_scope} devices in scope not reached"
        )),
        "{xml}"
    );
    assert!(xml.contains("<property name=\"complete\" value=\"false\"/>"));
    // The page: a banner before the figures, and the devices card says it.
    let page = std::fs::read_to_string(&html).unwrap();
    let banner = element(&page, "incomplete");
    assert_eq!(attribute(banner, "data-in-scope"), in_scope.to_string());
    assert_eq!(
        attribute(banner, "data-not-reached"),
        not_reached.to_string()
    );
    assert!(banner.contains("Incomplete run"), "{banner}");
    let devices = element(&page, "headline-devices");
    assert!(devices.contains(&format!("{not_reached} of {in_scope} in scope not reached")));
    assert!(devices.starts_with("<div class=\"card bad\""), "{devices}");
    fleet.fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remediation_stopped_by_its_failure_budget_is_marked_incomplete() {
    // Cameras that acknowledge writes and keep SSH on: the budget of 1 is spent early.
    let specs = (0..20)
        .map(|i| match i % 4 {
            0 => camera(true, Fault::IgnoresWrites),
            _ => camera(true, Fault::None),
        })
        .collect();
    let fleet = TestFleet::of(specs).await;
    let summary = fleet.path("budget-summary.json");
    let html = fleet.path("budget.html");
    let journal = fleet.path("budget.journal.jsonl");
    let (output, records) = crate::remediate::remediate(
        &fleet,
        "budget.jsonl",
        &[
            "--apply",
            "--yes",
            "--rate",
            "100/s",
            "--waves",
            "2,4,100%",
            "--max-failures",
            "1",
            "--journal",
            &journal.display().to_string(),
            "--summary-out",
            &summary.display().to_string(),
            "--html-out",
            &html.display().to_string(),
        ],
    )
    .await;
    assert_eq!(code(&output), 3, "{}", stderr(&output));
    let deferred = records.iter().filter(|r| r["action"] == "deferred").count() as u64;
    assert!(deferred > 0, "{records:?}");
    let json = read_json(&summary);
    assert_eq!(json["run"]["complete"], false, "{json}");
    assert_eq!(json["run"]["stopped"], "failure_budget");
    assert_eq!(json["run"]["in_scope"], 20);
    assert_eq!(json["run"]["not_reached"], deferred);
    let page = std::fs::read_to_string(&html).unwrap();
    let banner = element(&page, "incomplete");
    assert_eq!(attribute(banner, "data-not-reached"), deferred.to_string());
    assert!(banner.contains("failure budget"), "{banner}");
    fleet.fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_any_desired_state_there_is_no_compliance_figure_but_a_warning() {
    let specs = vec![camera(true, Fault::None), camera(false, Fault::None)];
    let fleet = TestFleet::of(specs).await;
    // The inventory without its `expect` column.
    let inventory = fleet.path("no-expect.csv");
    let rows: Vec<String> = std::fs::read_to_string(&fleet.inventory)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let cells: Vec<&str> = l.split(',').collect();
            format!("{},{},{}", cells[0], cells[1], cells[2])
        })
        .collect();
    std::fs::write(
        &inventory,
        format!("address,name,site\n{}\n", rows.join("\n")),
    )
    .unwrap();
    let [out, summary, metrics, html] =
        ["none.jsonl", "none.json", "none.prom", "none.html"].map(|n| fleet.path(n));
    let output = Sshfleet::scan(&inventory)
        .out(&out)
        .file("--summary-out", &summary)
        .file("--metrics-out", &metrics)
        .file("--html-out", &html)
        .args(&["--timeout", "5s"])
        .run()
        .await;
    let err = stderr(&output);
    assert_eq!(code(&output), 0, "{err}");
    let records = read_jsonl(&out);
    assert!(records.iter().all(|r| r["expect"].is_null()), "{records:?}");
    assert!(
        err.contains("compliance: — (no device has a desired state"),
        "{err}"
    );
    assert_eq!(read_json(&summary)["compliance"]["ratio"], Value::Null);
    assert_eq!(metric(&metrics, "sshfleet_compliance_ratio"), "NaN");
    let page = std::fs::read_to_string(&html).unwrap();
    assert_eq!(shown(&page, "headline-compliant"), "—");
    let card = element(&page, "headline-compliant");
    assert!(card.starts_with("<div class=\"card warn\""), "{card}");
    assert!(
        !page.contains(">0.0%<"),
        "a 0 % figure on the page: {}",
        &page[page.find("0.0%").map_or(0, |i| i.saturating_sub(300))..][..400.min(page.len())]
    );
    assert!(element(&page, "no-desired-state").contains("No desired state"));
    fleet.fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_recorded_run_has_no_regressions_figure_and_the_second_has_one() {
    let specs = vec![
        camera(true, Fault::None),
        camera(false, Fault::None),
        camera(false, Fault::None),
    ];
    let fleet = TestFleet::of(specs).await;
    let history = fleet.path("h.db").display().to_string();
    let html = fleet.path("first.html");
    let summary = fleet.path("first.json");
    let scan = |name: &'static str| {
        let (html, summary, history) = (
            html.display().to_string(),
            summary.display().to_string(),
            history.clone(),
        );
        let fleet = &fleet;
        async move {
            let extra = [
                "--history",
                &history,
                "--html-out",
                &html,
                "--summary-out",
                &summary,
                "--fail-on",
                "never",
            ];
            let mut argv = args(&[
                "scan",
                "--inventory",
                &fleet.inventory.display().to_string(),
                "-o",
                &fleet.path(name).display().to_string(),
                "--timeout",
                "5s",
            ]);
            argv.extend(extra.iter().map(|s| s.to_string()));
            run(&argv, &[("SSHFLEET_PASSWORD", PASSWORD)]).await
        }
    };
    let first = scan("first.jsonl").await;
    let err = stderr(&first);
    assert_eq!(code(&first), 0, "{err}");
    assert!(err.contains("nothing to compare with"), "{err}");
    let page = std::fs::read_to_string(&html).unwrap();
    assert_eq!(shown(&page, "headline-regressions"), "—");
    assert_eq!(
        attribute(element(&page, "headline-regressions"), "data-value"),
        ""
    );
    assert!(page.contains("first recorded run: nothing to compare with"));
    assert_eq!(read_json(&summary)["regressions"], Value::Null);

    let second = scan("second.jsonl").await;
    assert_eq!(code(&second), 0, "{}", stderr(&second));
    let page = std::fs::read_to_string(&html).unwrap();
    assert_eq!(shown(&page, "headline-regressions"), "0");
    assert_eq!(read_json(&summary)["regressions"], 0);
    fleet.fleet.shutdown().await;
}

/// What the definition gives for these records, computed here from the report alone:
/// devices in their desired state or waived, over every device but those read without a
/// desired state (devices not checked count against).
fn compliance_of(records: &[Value]) -> (u64, u64) {
    let with = records
        .iter()
        .filter(|r| r["status"] != "ok" || !r["compliant"].is_null())
        .count() as u64;
    let good = records
        .iter()
        .filter(|r| r["compliant"] == true || r["waiver"].as_str().is_some_and(|w| !w.is_empty()))
        .count() as u64;
    (good, with)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_the_terminal_the_summary_and_the_metrics_state_one_compliance() {
    // The default fleet has every kind of camera, many of them not checkable.
    let fleet = TestFleet::start(SimConfig {
        devices: 40,
        ..SimConfig::default()
    })
    .await;
    let [summary, metrics, html] = ["c.json", "c.prom", "c.html"].map(|n| fleet.path(n));
    let (output, records) = fleet
        .scan_with_env(
            "c.jsonl",
            &[
                "--summary-out",
                &summary.display().to_string(),
                "--metrics-out",
                &metrics.display().to_string(),
                "--html-out",
                &html.display().to_string(),
                "--timeout",
                "2s",
                "--retries",
                "0",
            ],
            &[],
        )
        .await;
    assert!(code(&output) <= 1, "{}", stderr(&output));
    let (good, of) = compliance_of(&records);
    assert!(good > 0 && good < of, "{good} of {of}");
    assert!(
        records.iter().any(|r| r["status"] != "ok"),
        "devices not checked count against"
    );
    let ratio = good as f64 / of as f64;
    let percent = format!("{:.1}%", ratio * 100.0);
    let json = read_json(&summary);
    assert_eq!(json["compliance"]["compliant"], good, "{json}");
    assert_eq!(json["compliance"]["of"], of);
    assert!((json["compliance"]["ratio"].as_f64().unwrap() - ratio).abs() < 1e-12);
    assert_eq!(json["run"]["complete"], true);
    let value: f64 = metric(&metrics, "sshfleet_compliance_ratio")
        .parse()
        .unwrap();
    assert!((value - ratio).abs() < 1e-12, "{value} vs {ratio}");
    let page = std::fs::read_to_string(&html).unwrap();
    assert_eq!(shown(&page, "headline-compliant"), percent);
    assert!(element(&page, "headline-compliant").contains(&format!(
        "{good} of {of} in scope; not checked count against"
    )));

    // The terminal says the same (a run without --quiet).
    let again = run(
        &args(&[
            "scan",
            "--inventory",
            &fleet.inventory.display().to_string(),
            "-o",
            &fleet.path("again.jsonl").display().to_string(),
            "--timeout",
            "2s",
            "--retries",
            "0",
        ]),
        &[("SSHFLEET_PASSWORD", PASSWORD)],
    )
    .await;
    let (good, of) = compliance_of(&read_jsonl(&fleet.path("again.jsonl")));
    let line = format!(
        "compliance: {:.1}% ({good} of {of} devices in scope are in their desired state or waived)",
        good as f64 * 100.0 / of as f64
    );
    assert!(stderr(&again).contains(&line), "{}", stderr(&again));
    fleet.fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summary_out_on_remediate_and_on_a_merge_of_shards() {
    let fleet = TestFleet::start(SimConfig {
        devices: 12,
        faults: sshfleet_sim::FaultProfile::None,
        ..SimConfig::default()
    })
    .await;
    let summary = fleet.path("plan.json");
    let (output, records) = crate::remediate::remediate(
        &fleet,
        "plan.jsonl",
        &["--summary-out", &summary.display().to_string()],
    )
    .await;
    assert!(code(&output) <= 1, "{}", stderr(&output));
    let json = read_json(&summary);
    assert_eq!(json["total"], 12);
    assert_eq!(
        json["remediation"]["set"],
        records.iter().filter(|r| r["action"] == "set").count()
    );
    let (good, of) = compliance_of(&records);
    assert_eq!(json["compliance"]["compliant"], good);
    assert_eq!(json["compliance"]["of"], of);

    let shards = fleet.scan_shards(2).await;
    let merged = fleet.path("merged.json");
    let shards: Vec<&str> = shards.iter().map(String::as_str).collect();
    let output = Sshfleet::merge(&fleet.inventory)
        .out(&fleet.path("fleet.jsonl"))
        .file("--summary-out", &merged)
        .arg("--quiet")
        .args(&shards)
        .run()
        .await;
    assert!(code(&output) <= 1, "{}", stderr(&output));
    let json = read_json(&merged);
    assert_eq!(json["total"], 12);
    assert_eq!(json["run"]["complete"], true);
    let (good, of) = compliance_of(&read_jsonl(&fleet.path("fleet.jsonl")));
    assert_eq!(json["compliance"]["compliant"], good);
    assert_eq!(json["compliance"]["of"], of);
    fleet.fleet.shutdown().await;
}
