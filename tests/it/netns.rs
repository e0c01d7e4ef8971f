//! A real network between scanner and cameras: the simulator in a network namespace of its
//! own, reached over a veth pair, the link shaped with `tc` (a bandwidth cap; delay, jitter
//! and loss with `netem` where the kernel has it) and taken down in the middle of a scan and
//! of a remediation run.
//!
//! Needs root and iproute2. Elsewhere each test says it is skipped, and why, on stderr; with
//! `SSHFLEET_REQUIRE_NETNS=1` (set by `.ci/run`) a skip is a failure instead.

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::support::{args, code, read_jsonl, ready_line, stderr, PASSWORD};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// `ip …`, its failure as text.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn tc(args: &[&str]) -> Result<(), String> {
    let out = Command::new("tc")
        .args(args)
        .output()
        .map_err(|e| format!("tc: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

/// A namespace for the cameras and the veth pair to it; removed when dropped.
struct Link {
    ns: String,
    host_if: String,
    ns_if: String,
    ns_ip: String,
}

impl Link {
    /// `None` (having said why) when this machine cannot make one.
    fn make() -> Option<Link> {
        let skip = |why: String| {
            if std::env::var_os("SSHFLEET_REQUIRE_NETNS").is_some() {
                panic!("network namespace test cannot run: {why}");
            }
            eprintln!("SKIPPED: network namespace test: {why}");
            None
        };
        // Root: the effective uid, from /proc.
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let root = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|l| l.split_whitespace().nth(1))
            == Some("0");
        if !root {
            return skip("needs root (network namespaces and tc)".to_owned());
        }
        let pid = std::process::id();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let tag = format!("{}{n}", pid % 100_000);
        let (a, b) = (100 + (pid / 250) % 100, (pid % 250) + 1);
        let link = Link {
            ns: format!("sshfleet-{tag}"),
            host_if: format!("sfh{tag}"),
            ns_if: format!("sfc{tag}"),
            ns_ip: format!("10.{a}.{b}.{}", 2 + 4 * n),
        };
        let host_ip = format!("10.{a}.{b}.{}/30", 1 + 4 * n);
        let ns_cidr = format!("{}/30", link.ns_ip);
        let made = ip(&["netns", "add", &link.ns])
            .and_then(|()| {
                ip(&[
                    "link",
                    "add",
                    &link.host_if,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    &link.ns_if,
                ])
            })
            .and_then(|()| ip(&["link", "set", &link.ns_if, "netns", &link.ns]))
            .and_then(|()| ip(&["addr", "add", &host_ip, "dev", &link.host_if]))
            .and_then(|()| ip(&["link", "set", &link.host_if, "up"]))
            .and_then(|()| link.in_ns(&["addr", "add", &ns_cidr, "dev", &link.ns_if]))
            .and_then(|()| link.in_ns(&["link", "set", &link.ns_if, "up"]))
            .and_then(|()| link.in_ns(&["link", "set", "lo", "up"]));
        match made {
            Ok(()) => Some(link),
            Err(e) => {
                drop(link);
                skip(format!("cannot make a namespace and veth pair: {e}"))
            }
        }
    }

    fn in_ns(&self, args: &[&str]) -> Result<(), String> {
        let mut all = vec!["netns", "exec", &self.ns, "ip"];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// Shapes both directions of the link with `qdisc` (`tc qdisc add dev … root …`).
    fn shape(&self, qdisc: &[&str]) -> Result<(), String> {
        let mut host = vec!["qdisc", "add", "dev", &self.host_if, "root"];
        host.extend_from_slice(qdisc);
        tc(&host)?;
        self.shape_ns_side(qdisc)
    }

    /// Shapes what the cameras send.
    fn shape_ns_side(&self, qdisc: &[&str]) -> Result<(), String> {
        let mut ns = vec![
            "netns",
            "exec",
            &self.ns,
            "tc",
            "qdisc",
            "add",
            "dev",
            &self.ns_if,
            "root",
        ];
        ns.extend_from_slice(qdisc);
        ip(&ns)
    }

    /// Takes the cameras' end of the link down (or up again), as a pulled cable would.
    /// Not the scanner's end: that would drop the route, and the machine's default route
    /// (here, a proxy that answers 404 to everything) would take the connections instead.
    fn set_up(&self, up: bool) {
        self.in_ns(&["link", "set", &self.ns_if, if up { "up" } else { "down" }])
            .unwrap();
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        let _ = ip(&["link", "del", &self.host_if]);
        let _ = ip(&["netns", "del", &self.ns]);
    }
}

/// `sshfleet sim` inside the namespace, its cameras on the namespace's address.
struct NsFleet {
    _child: tokio::process::Child,
    dir: tempfile::TempDir,
    control: String,
}

impl NsFleet {
    async fn start(link: &Link, devices: usize, faults: &str, extra: &[&str]) -> NsFleet {
        let dir = tempfile::tempdir().unwrap();
        let control = format!("{}:0", link.ns_ip);
        let mut cmd = tokio::process::Command::new("ip");
        cmd.args([
            "netns",
            "exec",
            &link.ns,
            env!("CARGO_BIN_EXE_sshfleet"),
            "sim",
        ])
        .args([
            "--devices",
            &devices.to_string(),
            "--faults",
            faults,
            "--seed",
            "7",
        ])
        .arg("--inventory-out")
        .arg(dir.path().join("inventory.csv"))
        .arg("--truth-out")
        .arg(dir.path().join("truth.jsonl"))
        .args(["--control", &control])
        .args(extra)
        .env("SSHFLEET_SIM_IP", &link.ns_ip)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
        let mut child = cmd.spawn().unwrap();
        let ready = ready_line(&mut child).await;
        let control = crate::support::url_in(&ready, "control").to_owned();
        NsFleet {
            _child: child,
            dir,
            control,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn truth(&self) -> HashMap<String, Value> {
        read_jsonl(&self.path("truth.jsonl"))
            .into_iter()
            .map(|v| (v["address"].as_str().unwrap().to_owned(), v))
            .collect()
    }

    /// The control API's device list (state, requests, writes).
    fn devices(&self) -> Vec<Value> {
        let authority = self.control.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(authority).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        write!(stream, "GET /devices HTTP/1.0\r\nHost: {authority}\r\n\r\n").unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        let (_, body) = text.split_once("\r\n\r\n").unwrap();
        serde_json::from_str(body).unwrap()
    }
}

async fn sshfleet(list: &[String]) -> std::process::Output {
    crate::support::run(list, &[("SSHFLEET_PASSWORD", PASSWORD)]).await
}

fn scan_args(fleet: &NsFleet, out: &Path, extra: &[&str]) -> Vec<String> {
    let mut list = args(&[
        "scan",
        "--inventory",
        &fleet.path("inventory.csv").display().to_string(),
        "-o",
        &out.display().to_string(),
        "--quiet",
    ]);
    list.extend(extra.iter().map(|s| s.to_string()));
    list
}

/// Devices whose status or SSH state is not the truth's, as text.
fn mismatches(records: &[Value], truth: &HashMap<String, Value>) -> Vec<String> {
    let mut wrong = Vec::new();
    for rec in records {
        let t = &truth[rec["address"].as_str().unwrap()];
        if rec["status"] != t["expect_status"] || rec["ssh_enabled"] != t["ssh_enabled"] {
            wrong.push(format!("{rec} / truth {t}"));
        }
    }
    wrong
}

/// Milliseconds since the epoch of an RFC 3339 UTC time as sshfleet writes it.
fn unix_ms(text: &str) -> i64 {
    let n = |range: std::ops::Range<usize>| -> i64 { text[range].parse().unwrap() };
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    let (hh, mm, ss, ms) = (n(11..13), n(14..16), n(17..19), n(20..23));
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    ((days * 24 + hh) * 60 + mm) * 60_000 + ss * 1000 + ms
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2000_camera_fleet_behind_a_shaped_link_matches_the_truth() {
    let Some(link) = Link::make() else { return };
    let fleet = NsFleet::start(&link, 2000, "realistic", &[]).await;
    // Delay, jitter and loss towards the cameras where the kernel has netem, and a bandwidth
    // cap (tbf) on every direction netem does not shape.
    let netem = tc(&[
        "qdisc",
        "add",
        "dev",
        &link.host_if,
        "root",
        "netem",
        "delay",
        "40ms",
        "10ms",
        "loss",
        "2%",
    ]);
    let cap = ["tbf", "rate", "20mbit", "burst", "64kb", "latency", "200ms"];
    match &netem {
        Ok(()) => link.shape_ns_side(&cap).unwrap(),
        Err(e) => {
            eprintln!(
                "SKIPPED PART: 40 ms delay, jitter and 2 % loss need the kernel's netem ({e}); a 20 Mbit/s cap alone shapes this run"
            );
            link.shape(&cap).unwrap();
        }
    }
    let out = fleet.path("scan.jsonl");
    let started = Instant::now();
    let output = sshfleet(&scan_args(&fleet, &out, &["--timeout", "5s"])).await;
    let wall = started.elapsed();
    assert!(matches!(code(&output), 0 | 1), "{}", stderr(&output));
    let records = read_jsonl(&out);
    let truth = fleet.truth();
    assert_eq!(records.len(), truth.len());
    let wrong = mismatches(&records, &truth);
    assert!(
        wrong.is_empty(),
        "{} wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    eprintln!(
        "2,000 cameras over a 20 Mbit/s veth link{}: {:.1} s",
        if netem.is_ok() {
            " with 40 ms ± 10 ms and 2 % loss"
        } else {
            ""
        },
        wall.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_outage_mid_scan_costs_only_the_exchanges_it_cut() {
    let Some(link) = Link::make() else { return };
    let fleet = NsFleet::start(&link, 300, "none", &["--latency", "50ms"]).await;
    let out = fleet.path("scan.jsonl");
    let list = scan_args(&fleet, &out, &["--timeout", "2s", "--concurrency", "16"]);
    let scan = tokio::spawn(async move { sshfleet(&list).await });
    tokio::time::sleep(Duration::from_millis(800)).await;
    let down_at = now_ms();
    link.set_up(false);
    tokio::time::sleep(Duration::from_secs(3)).await;
    link.set_up(true);
    let up_at = now_ms();
    let output = scan.await.unwrap();
    assert!(matches!(code(&output), 0 | 1), "{}", stderr(&output));
    let records = read_jsonl(&out);
    let truth = fleet.truth();
    assert_eq!(records.len(), 300, "every device accounted for");
    let mut cut = 0;
    for rec in &records {
        let t = &truth[rec["address"].as_str().unwrap()];
        if rec["status"] == t["expect_status"] && rec["ssh_enabled"] == t["ssh_enabled"] {
            continue;
        }
        cut += 1;
        let status = rec["status"].as_str().unwrap();
        assert!(
            matches!(status, "timeout" | "unreachable"),
            "only the link can be at fault: {rec}"
        );
        let end = unix_ms(rec["checked_at"].as_str().unwrap());
        let start = end - rec["elapsed_ms"].as_i64().unwrap();
        assert!(
            start <= up_at + 200 && end >= down_at - 200,
            "{status} outside the outage ({down_at}..{up_at}): {rec}"
        );
    }
    assert!(cut > 0, "the outage cut some exchanges");
    assert!(cut < 300, "the devices before and after it were read");
    eprintln!("link down for 3 s in a scan of 300 cameras: {cut} cut, the rest read right");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remediation_through_a_link_outage_writes_each_camera_at_most_once() {
    let Some(link) = Link::make() else { return };
    let fleet = NsFleet::start(&link, 200, "none", &["--latency", "30ms"]).await;
    let journal = fleet.path("remediate.journal.jsonl");
    let remediate = |out: &str| {
        args(&[
            "remediate",
            "--inventory",
            &fleet.path("inventory.csv").display().to_string(),
            "--ssh",
            "disabled",
            "--apply",
            "--yes",
            "--rate",
            "200/s",
            "--timeout",
            "2s",
            "--concurrency",
            "16",
            "--journal",
            &journal.display().to_string(),
            "-o",
            &fleet.path(out).display().to_string(),
            "--quiet",
        ])
    };
    let first = remediate("first.jsonl");
    let run = tokio::spawn(async move { sshfleet(&first).await });
    tokio::time::sleep(Duration::from_millis(700)).await;
    link.set_up(false);
    tokio::time::sleep(Duration::from_secs(3)).await;
    link.set_up(true);
    let output = run.await.unwrap();
    assert!(matches!(code(&output), 0 | 1), "{}", stderr(&output));
    // The rerun with the same journal finishes the job.
    let output = sshfleet(&remediate("second.jsonl")).await;
    assert!(matches!(code(&output), 0 | 1), "{}", stderr(&output));
    let devices = fleet.devices();
    assert_eq!(devices.len(), 200);
    for d in &devices {
        let writes = d["writes"].as_array().unwrap().len();
        assert!(writes <= 1, "written {writes} times: {d}");
        assert_eq!(d["ssh_enabled"], false, "left enabled: {d}");
    }
    let written = devices
        .iter()
        .filter(|d| !d["writes"].as_array().unwrap().is_empty())
        .count();
    assert!(written > 0);
    eprintln!("remediation through a 3 s outage: {written} cameras written, each once");
}
