//! `--metrics-out`: the file is what the real `promtool` accepts and what the real
//! node_exporter textfile collector serves, with hostile site names still one label value,
//! and a failed run keeps the time of the last success for the staleness alert.

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use sshfleet_sim::{FaultProfile, SimConfig};

use crate::support::{code, eventually, stderr, TestFleet};

/// A site name that would break a naive exposition: quote, backslash, newline, braces.
const HOSTILE_SITE: &str = "evil\"} 1\nsshfleet_devices 99\\";

/// A real Debian/upstream binary the test needs; CI installs them (`.ci/install-deps`).
fn tool(names: &[&str]) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for name in names {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "{} not found in PATH: install it with `sudo .ci/install-deps` (Debian packages prometheus and prometheus-node-exporter)",
        names.join(" or ")
    );
}

/// Puts the hostile site on the inventory's first row.
fn make_first_site_hostile(inventory: &Path) {
    let text = std::fs::read_to_string(inventory).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let mut fields: Vec<String> = lines[1].split(',').map(str::to_owned).collect();
    fields[2] = format!("\"{}\"", HOSTILE_SITE.replace('"', "\"\""));
    lines[1] = fields.join(",");
    std::fs::write(inventory, lines.join("\n") + "\n").unwrap();
}

/// `name{labels} value` lines of an exposition, keyed by everything before the value.
fn samples(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.to_owned()))
        })
        .collect()
}

fn promtool_accepts(path: &Path) {
    let file = std::fs::File::open(path).unwrap();
    let out = Command::new(tool(&["promtool"]))
        .args(["check", "metrics"])
        .stdin(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed ({:?}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A free loopback port (bound, then released for the exporter to take).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET /metrics` over plain HTTP/1.0; `None` until the exporter listens.
fn scrape(port: u16) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).ok()?;
    let (_, body) = body.split_once("\r\n\r\n")?;
    Some(body.to_owned())
}

/// The real node_exporter, textfile collector only, killed when dropped.
struct Exporter(std::process::Child);

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn serve_textfiles(dir: &Path) -> (Exporter, String) {
    let port = free_port();
    let child = Command::new(tool(&["prometheus-node-exporter", "node_exporter"]))
        .args([
            "--collector.disable-defaults".to_owned(),
            "--collector.textfile".to_owned(),
            format!("--collector.textfile.directory={}", dir.display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let exporter = Exporter(child);
    let mut body = None;
    let served = || {
        body = scrape(port).filter(|b| b.contains("node_textfile_scrape_error"));
        body.is_some()
    };
    let served = eventually(served, Duration::from_secs(20)).await;
    assert!(served, "node_exporter did not serve /metrics within 20 s");
    (exporter, body.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_exporter_serves_the_metrics_of_a_scan_and_promtool_accepts_them() {
    let fleet = TestFleet::start(SimConfig {
        devices: 30,
        seed: 5,
        faults: FaultProfile::None,
        ..SimConfig::default()
    })
    .await;
    for i in 0..fleet.fleet.len() {
        fleet.fleet.set_ssh_enabled(i, i % 4 == 0);
    }
    make_first_site_hostile(&fleet.inventory);
    let textfiles = fleet.path("textfile");
    std::fs::create_dir(&textfiles).unwrap();
    let prom = textfiles.join("sshfleet.prom");
    let prom_arg = prom.display().to_string();
    let (output, records) = fleet
        .scan(
            "scan.jsonl",
            &["--expect", "disabled", "--metrics-out", &prom_arg],
        )
        .await;
    assert_eq!(code(&output), 1, "{}", stderr(&output));
    promtool_accepts(&prom);

    let text = std::fs::read_to_string(&prom).unwrap();
    let got = samples(&text);
    let enabled = records
        .iter()
        .filter(|r| r["ssh_enabled"] == Value::Bool(true))
        .count();
    assert!(enabled > 0);
    assert_eq!(got["sshfleet_devices"], "30", "{text}");
    assert_eq!(got["sshfleet_devices_ssh_enabled"], enabled.to_string());
    assert_eq!(got["sshfleet_devices_non_compliant"], enabled.to_string());
    assert_eq!(got["sshfleet_findings"], enabled.to_string());
    assert_eq!(got["sshfleet_run_success"], "1");
    let expected_ratio = (30 - enabled) as f64 / 30.0;
    let ratio: f64 = got["sshfleet_compliance_ratio"].parse().unwrap();
    assert!((ratio - expected_ratio).abs() < 1e-9, "{ratio}");
    // Per site: the counts of the report, one series per site.
    let mut by_site: HashMap<String, usize> = HashMap::new();
    for rec in &records {
        *by_site
            .entry(rec["site"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert!(by_site.contains_key(HOSTILE_SITE));
    let site_series: Vec<_> = got
        .keys()
        .filter(|k| k.starts_with("sshfleet_site_devices{"))
        .collect();
    assert_eq!(site_series.len(), by_site.len(), "{site_series:?}");
    let hostile = r#"sshfleet_site_devices{site="evil\"} 1\nsshfleet_devices 99\\",status="ok"}"#;
    assert_eq!(got[hostile], "1", "{text}");

    // The real exporter reads the file without error and serves every sample of it.
    let (_exporter, body) = serve_textfiles(&textfiles).await;
    assert!(
        body.lines().any(|l| l == "node_textfile_scrape_error 0"),
        "node_exporter could not read the file:\n{body}"
    );
    let served = samples(&body);
    assert_eq!(served["sshfleet_devices"], "30");
    assert_eq!(served[hostile], "1");
    assert_eq!(served["sshfleet_devices_ssh_enabled"], enabled.to_string());
    let finished: f64 = served["sshfleet_last_success_timestamp_seconds"]
        .parse()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        (now - finished).abs() < 300.0,
        "last success {finished}, now {now}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_report_fails_keeps_the_last_success_and_says_it_failed() {
    let fleet = TestFleet::start(SimConfig {
        devices: 8,
        seed: 6,
        faults: FaultProfile::None,
        ..SimConfig::default()
    })
    .await;
    for i in 0..fleet.fleet.len() {
        fleet.fleet.set_ssh_enabled(i, false);
    }
    let prom = fleet.path("sshfleet.prom");
    let prom_arg = prom.display().to_string();
    let (first, _) = fleet
        .scan("first.jsonl", &["--metrics-out", &prom_arg])
        .await;
    assert_eq!(code(&first), 0, "{}", stderr(&first));
    let before = samples(&std::fs::read_to_string(&prom).unwrap());
    let last_success = before["sshfleet_last_success_timestamp_seconds"].clone();

    // The report cannot be written: exit 4, and the metrics say the run failed.
    let (failed, _) = fleet.scan("/dev/full", &["--metrics-out", &prom_arg]).await;
    assert_eq!(code(&failed), 4, "{}", stderr(&failed));
    // The failed output is named by its path, with the system's reason.
    assert!(
        stderr(&failed).contains("cannot write the report to /dev/full: No space left on device"),
        "{}",
        stderr(&failed)
    );
    promtool_accepts(&prom);
    let after = samples(&std::fs::read_to_string(&prom).unwrap());
    assert_eq!(after["sshfleet_run_success"], "0");
    assert_eq!(
        after["sshfleet_last_success_timestamp_seconds"],
        last_success
    );
    assert_ne!(
        after["sshfleet_run_timestamp_seconds"],
        before["sshfleet_run_timestamp_seconds"]
    );

    // A destination in a directory that does not exist refuses the run before any work.
    let nowhere = fleet.path("no/such/dir/sshfleet.prom");
    let (refused, _) = fleet
        .scan(
            "refused.jsonl",
            &["--metrics-out", &nowhere.display().to_string()],
        )
        .await;
    assert_eq!(code(&refused), 2, "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("does not exist"),
        "{}",
        stderr(&refused)
    );
    assert!(!fleet.path("refused.jsonl").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sites_that_differ_only_in_control_characters_stay_distinct_series() {
    let fleet = TestFleet::start(SimConfig {
        devices: 4,
        seed: 7,
        faults: FaultProfile::None,
        ..SimConfig::default()
    })
    .await;
    // A tab, a space, an escape sequence and a carriage return: four sites, four series.
    let sites = ["hq\tnorth", "hq north", "hq\u{1b}[31mnorth", "hq\rnorth"];
    let text = std::fs::read_to_string(&fleet.inventory).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    for (line, site) in lines[1..].iter_mut().zip(sites) {
        let mut fields: Vec<String> = line.split(',').map(str::to_owned).collect();
        fields[2] = format!("\"{site}\"");
        *line = fields.join(",");
    }
    std::fs::write(&fleet.inventory, lines.join("\n") + "\n").unwrap();
    let textfiles = fleet.path("textfile");
    std::fs::create_dir(&textfiles).unwrap();
    let prom = textfiles.join("sshfleet.prom");
    let (output, _) = fleet
        .scan(
            "scan.jsonl",
            &["--metrics-out", &prom.display().to_string()],
        )
        .await;
    assert!(matches!(code(&output), 0 | 1), "{}", stderr(&output));
    promtool_accepts(&prom);
    let (_exporter, body) = serve_textfiles(&textfiles).await;
    assert!(
        body.lines().any(|l| l == "node_textfile_scrape_error 0"),
        "node_exporter could not read the file:\n{body}"
    );
    let series: Vec<&str> = body
        .lines()
        .filter(|l| l.starts_with("sshfleet_site_ssh_enabled{"))
        .collect();
    assert_eq!(series.len(), 4, "one series per site: {series:?}");
    for site in sites {
        let served = format!("sshfleet_site_ssh_enabled{{site=\"{site}\"}}");
        assert!(
            series.iter().any(|s| s.starts_with(&served)),
            "{site:?} served as itself: {series:?}"
        );
    }
}
