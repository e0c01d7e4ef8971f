//! The fleet view: three site scanners (three inventories with their own `site`, each a scope)
//! write one history; `report html --history` shows the latest complete run of each site,
//! its numbers the sum of the sites' own summaries, and names every expected site with no
//! complete run within the period — stale, interrupted or never run — on every output and
//! in the exit code.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use serde_json::Value;
use sshfleet_sim::{DeviceSpec, Fault};

use crate::html_report::{assert_inert, browser_available, open_in_browser};
use crate::support::{args, code, eventually, read_jsonl, run, stderr, Sshfleet, TestFleet};

const SITES: [(&str, Range<usize>); 3] = [("north", 0..6), ("south", 6..14), ("east", 14..20)];

/// North: two with SSH on. South: four clean, two that never answer, two with SSH on (the
/// hanging pair lets a run be interrupted midway). East: two with SSH on.
fn specs() -> Vec<DeviceSpec> {
    let on = || DeviceSpec::clean(true);
    let off = || DeviceSpec::clean(false);
    let hang = || DeviceSpec {
        fault: Fault::Hang,
        ..DeviceSpec::clean(false)
    };
    vec![
        off(),
        on(),
        off(),
        off(),
        on(),
        off(),
        off(),
        off(),
        off(),
        off(),
        hang(),
        hang(),
        on(),
        on(),
        off(),
        on(),
        on(),
        off(),
        off(),
        off(),
    ]
}

/// The sites' inventories (rows of the fleet's, their `site` set) and one of all of them.
struct Sites {
    fleet: TestFleet,
    history: PathBuf,
    inventories: HashMap<&'static str, PathBuf>,
    all: PathBuf,
}

impl Sites {
    async fn start() -> Sites {
        let fleet = TestFleet::of(specs()).await;
        let text = std::fs::read_to_string(&fleet.inventory).unwrap();
        let mut lines = text.lines();
        let header = lines.next().unwrap().to_owned();
        assert_eq!(header.split(',').nth(2), Some("site"), "{header}");
        let rows: Vec<&str> = lines.collect();
        let mut inventories = HashMap::new();
        let mut all = vec![header.clone()];
        for (site, range) in SITES {
            let mut file = vec![header.clone()];
            for row in &rows[range] {
                let mut fields: Vec<&str> = row.split(',').collect();
                fields[2] = site;
                file.push(fields.join(","));
            }
            all.extend(file[1..].iter().cloned());
            let path = fleet.path(&format!("{site}.csv"));
            std::fs::write(&path, file.join("\n") + "\n").unwrap();
            inventories.insert(site, path);
        }
        let all_path = fleet.path("all-sites.csv");
        std::fs::write(&all_path, all.join("\n") + "\n").unwrap();
        let history = fleet.path("central.db");
        Sites {
            fleet,
            history,
            inventories,
            all: all_path,
        }
    }

    /// One complete scan of `site` into the history; its own `--summary-out`.
    async fn scan(&self, site: &str) -> Value {
        let summary = self.fleet.path(&format!("{site}-summary.json"));
        let output = Sshfleet::scan(&self.inventories[site])
            .out(&self.fleet.path(&format!("{site}.jsonl")))
            .file("--history", &self.history)
            .file("--summary-out", &summary)
            .args(&["--quiet", "--fail-on", "never", "--timeout", "2s"])
            .args(&["--retries", "0"])
            .run()
            .await;
        assert_eq!(code(&output), 0, "{site}: {}", stderr(&output));
        serde_json::from_str(&std::fs::read_to_string(summary).unwrap()).unwrap()
    }

    /// A scan of `site` interrupted once its first four devices are reported (the two
    /// hanging cameras keep it from finishing).
    async fn scan_interrupted(&self, site: &str) {
        let out = self.fleet.path(&format!("{site}-interrupted.jsonl"));
        let child = Sshfleet::scan(&self.inventories[site])
            .out(&out)
            .file("--history", &self.history)
            .args(&["--concurrency", "2", "--timeout", "60s", "--retries", "0"])
            .command()
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        let streamed = eventually(|| read_jsonl(&out).len() >= 4, Duration::from_secs(20)).await;
        assert!(streamed, "the clean cameras are reported first");
        let output = crate::support::interrupt_and_wait(child).await;
        assert_eq!(code(&output), 130, "{}", stderr(&output));
    }

    /// Moves run `id` back by `days`, as if it had run then.
    fn age_run(&self, id: i64, days: i64) {
        let conn = rusqlite::Connection::open(&self.history).unwrap();
        let at = sshfleet_core::time::format_rfc3339_millis(
            sshfleet_core::time::now_unix_ms() - days * 86_400_000,
        );
        let n = conn
            .execute(
                "UPDATE runs SET started_at = ?1, finished_at = ?1 WHERE id = ?2",
                rusqlite::params![at, id],
            )
            .unwrap();
        assert_eq!(n, 1);
    }

    /// `report html --history` with `extra`; the page, summary and metrics beside it.
    async fn report(&self, name: &str, extra: &[&str]) -> (Output, PathBuf, Value, String) {
        let html = self.fleet.path(&format!("{name}.html"));
        let json = self.fleet.path(&format!("{name}.json"));
        let prom = self.fleet.path(&format!("{name}.prom"));
        let paths = [&self.history, &html, &json, &prom].map(|p| p.display().to_string());
        let mut argv = vec!["report", "html", "--history", &paths[0], "-o", &paths[1]];
        argv.extend(["--summary-out", &paths[2], "--metrics-out", &paths[3]]);
        argv.extend(extra);
        let output = run(&args(&argv), &[]).await;
        let summary = std::fs::read_to_string(&json)
            .map(|t| serde_json::from_str(&t).unwrap())
            .unwrap_or(Value::Null);
        let metrics = std::fs::read_to_string(&prom).unwrap_or_default();
        (output, html, summary, metrics)
    }
}

fn promtool_accepts(path: &Path) {
    let out = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(path).unwrap())
        .output()
        .expect("promtool runs (install it with `sudo .ci/install-deps`)");
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The value of the sample `series` (`name{labels}`) in an exposition.
fn sample(text: &str, series: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ').map(str::to_owned))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_site_scanners_make_one_fleet_view_whose_numbers_are_the_sites_own() {
    let sites = Sites::start().await;
    sites.scan("north").await;
    let mut own = HashMap::new();
    for site in ["north", "south", "east"] {
        own.insert(site, sites.scan(site).await);
    }
    let all = sites.all.display().to_string();
    let (output, html, fleet, metrics) =
        sites.report("fleet", &["--expect-sites-from", &all]).await;
    let err = stderr(&output);
    assert_eq!(code(&output), 0, "{err}");
    assert!(
        err.contains("fleet: 3 sites from the latest complete runs of 3 scopes"),
        "{err}"
    );
    assert!(
        err.contains("site coverage: 3 of 3 expected sites"),
        "{err}"
    );
    for key in [
        "total",
        "compliant",
        "non_compliant",
        "findings",
        "ssh_enabled",
    ] {
        let sum: u64 = own.values().map(|s| s[key].as_u64().unwrap()).sum();
        assert_eq!(fleet[key], sum, "{key}: {fleet:#}");
    }
    for key in ["compliant", "of"] {
        let sum: u64 = own
            .values()
            .map(|s| s["compliance"][key].as_u64().unwrap())
            .sum();
        assert_eq!(fleet["compliance"][key], sum, "compliance.{key}");
    }
    assert_eq!(fleet["total"], 20);
    let listed = fleet["fleet"]["sites"].as_array().unwrap();
    let names: Vec<&str> = listed.iter().map(|s| s["site"].as_str().unwrap()).collect();
    assert_eq!(names, ["east", "north", "south"]);
    for s in listed {
        let mine = &own[s["site"].as_str().unwrap()];
        assert_eq!(s["devices"], mine["total"]);
        assert_eq!(s["findings"], mine["findings"]);
        assert_eq!(s["compliance"], mine["compliance"], "{s:#}");
    }
    // North's latest run is its second (run 2), compared with its first.
    let north = listed.iter().find(|s| s["site"] == "north").unwrap();
    assert_eq!(north["runs"][0]["id"], 2);
    assert_eq!(north["drift"]["unchanged"], 6, "{north:#}");
    assert_eq!(north["trend"].as_array().unwrap().len(), 2);
    assert_eq!(fleet["fleet"]["coverage"]["missing"], serde_json::json!([]));

    let prom = html.with_extension("prom");
    promtool_accepts(&prom);
    assert_eq!(
        sample(&metrics, "sshfleet_fleet_sites").as_deref(),
        Some("3")
    );
    assert_eq!(
        sample(&metrics, "sshfleet_sites_missing").as_deref(),
        Some("0")
    );
    assert_eq!(sample(&metrics, "sshfleet_devices").as_deref(), Some("20"));

    if !browser_available() {
        return;
    }
    let seen = open_in_browser(&html, &[]).await;
    assert_inert(&seen);
    assert_eq!(seen["headline"]["devices"], "20");
    let rows = seen["fleet_sites"].as_array().unwrap();
    let shown: Vec<&str> = rows.iter().map(|r| r["site"].as_str().unwrap()).collect();
    assert_eq!(shown, ["east", "north", "south"], "{rows:?}");
    for row in rows {
        let text = row["text"].as_str().unwrap();
        let site = row["site"].as_str().unwrap();
        let summary = listed.iter().find(|s| s["site"] == site).unwrap();
        let run = format!("run {} of", summary["runs"][0]["id"]);
        assert!(text.starts_with(site) && text.contains(&run), "{text}");
    }
    assert_eq!(seen["missing_sites"], serde_json::json!([]));
    assert_eq!(
        seen["row_count"], 20,
        "the device table holds every site's devices"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_that_stopped_reporting_or_was_interrupted_is_named_missing() {
    let sites = Sites::start().await;
    for site in ["north", "south", "east"] {
        sites.scan(site).await;
    }
    // East last reported ten days ago; south's last complete run too, and its run since
    // was interrupted; west is in the inventory but never ran.
    sites.age_run(2, 10);
    sites.age_run(3, 10);
    sites.scan_interrupted("south").await;
    let mut all = std::fs::read_to_string(&sites.all).unwrap();
    all.push_str("127.0.0.1:9,cam-west,west,disabled,\n");
    std::fs::write(&sites.all, all).unwrap();
    let inventory = sites.all.display().to_string();
    let (output, html, summary, metrics) = sites
        .report(
            "gaps",
            &["--expect-sites-from", &inventory, "--reported-within", "7d"],
        )
        .await;
    let err = stderr(&output);
    assert_eq!(code(&output), 1, "a missing site exits 1: {err}");
    assert!(
        err.contains("SITE MISSING east: no complete run since"),
        "{err}"
    );
    assert!(
        err.contains("SITE MISSING south: incomplete: run 4 of"),
        "{err}"
    );
    assert!(
        err.contains("SITE MISSING west: no run recorded at all"),
        "{err}"
    );
    assert!(
        err.contains("site coverage: 1 of 4 expected sites"),
        "{err}"
    );
    assert_eq!(
        gaps(&summary["fleet"]["coverage"]["missing"]),
        [
            ("east", "stale"),
            ("south", "incomplete"),
            ("west", "no_run")
        ]
    );
    // The fleet still shows every site's latest complete run, aged or not.
    assert_eq!(summary["fleet"]["sites"].as_array().unwrap().len(), 3);
    promtool_accepts(&html.with_extension("prom"));
    assert_eq!(
        sample(&metrics, "sshfleet_sites_missing").as_deref(),
        Some("3")
    );
    assert_eq!(
        sample(
            &metrics,
            "sshfleet_site_missing{site=\"south\",reason=\"incomplete\"}"
        )
        .as_deref(),
        Some("1")
    );

    assert_missing_sites_notified(&sites, &inventory).await;

    // Sites seen within 30 days: the three that ever ran, not west.
    let (seen_output, _, seen_summary, _) = sites
        .report(
            "seen",
            &["--sites-seen-within", "30d", "--reported-within", "7d"],
        )
        .await;
    assert_eq!(code(&seen_output), 1, "{}", stderr(&seen_output));
    assert_eq!(seen_summary["fleet"]["coverage"]["expected"], 3);
    assert_eq!(
        seen_summary["fleet"]["coverage"]["missing"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // Without expected sites there is nothing to miss: the fleet view alone exits 0.
    let (plain, _, _, _) = sites.report("plain", &[]).await;
    assert_eq!(code(&plain), 0, "{}", stderr(&plain));

    if !browser_available() {
        return;
    }
    let seen = open_in_browser(&html, &[]).await;
    assert_inert(&seen);
    let missing: Vec<(&str, bool)> = seen["missing_sites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let text = r["text"].as_str().unwrap();
            (r["site"].as_str().unwrap(), text.contains("incomplete"))
        })
        .collect();
    assert_eq!(missing, [("east", false), ("south", true), ("west", false)]);
}

/// `(site, gap)` of a JSON list of missing sites.
fn gaps(missing: &Value) -> Vec<(&str, &str)> {
    missing
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["site"].as_str().unwrap(), m["gap"].as_str().unwrap()))
        .collect()
}

/// `--notify`: the receiver gets the missing sites with their gaps, nothing else; the same
/// situation checked again carries the same Idempotency-Key; the URL's secrets are never
/// printed; without expected sites `--notify` is refused.
async fn assert_missing_sites_notified(sites: &Sites, inventory: &str) {
    use crate::notify::{Answer, Receiver};
    let receiver = Receiver::start(Answer::Statuses(&[])).await;
    let coverage = ["--expect-sites-from", inventory, "--reported-within", "7d"];
    let with_notify = |name: &'static str| {
        let mut extra = coverage.to_vec();
        extra.extend(["--notify", receiver.url.as_str()]);
        async move { sites.report(name, &extra).await }
    };
    let (first, ..) = with_notify("notify-1").await;
    let err = stderr(&first);
    assert_eq!(code(&first), 1, "{err}");
    assert!(err.contains("notified http://127.0.0.1:"), "{err}");
    assert!(!err.contains("SECRET"), "{err}");
    let (second, ..) = with_notify("notify-2").await;
    assert_eq!(code(&second), 1, "{}", stderr(&second));
    let got = receiver.received();
    assert_eq!(got.len(), 2, "one POST per check");
    let body = &got[0].body;
    assert_eq!(
        gaps(&body["missing_sites"]),
        [
            ("east", "stale"),
            ("south", "incomplete"),
            ("west", "no_run")
        ],
        "{body}"
    );
    assert_eq!(body["expected_sites"], 4, "{body}");
    assert!(body["missing_sites"][2]["description"]
        .as_str()
        .unwrap()
        .contains("no run recorded at all"));
    let key = got[0].header("idempotency-key").unwrap();
    assert_eq!(
        got[1].header("idempotency-key"),
        Some(key),
        "the same situation"
    );

    // It tells missing sites: without expected sites there is nothing to tell.
    let (refused, ..) = sites
        .report("notify-plain", &["--notify", receiver.url.as_str()])
        .await;
    assert_eq!(code(&refused), 2, "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("--expect-sites-from"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(receiver.received().len(), 2);
}
