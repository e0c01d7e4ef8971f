//! `--probe-ssh`: the SSH port of every simulated camera reported as the truth says, its
//! faults bounded by the probe deadline, hostile banners inert, and no connection at all
//! without the flag.

use serde_json::Value;
use sshfleet_sim::{DeviceSpec, Fault, FaultProfile, SimConfig, SshFault};

use crate::support::{by_address, code, read_jsonl, stderr, Sshfleet, TestFleet};

fn camera(ssh: SshFault, ssh_enabled: bool) -> DeviceSpec {
    DeviceSpec {
        ssh,
        ..DeviceSpec::clean(ssh_enabled)
    }
}

/// Every camera of the report against the truth: status, SSH state, port and exposure.
fn mismatches(fleet: &TestFleet, records: &[Value]) -> Vec<String> {
    let truth = fleet.truth();
    let report = by_address(records);
    assert_eq!(report.len(), truth.len(), "one record per device");
    let keys = [
        ("status", "expect_status"),
        ("ssh_enabled", "ssh_enabled"),
        ("ssh_port", "ssh_port"),
        ("exposure", "exposure"),
    ];
    let mut wrong = Vec::new();
    for (address, want) in &truth {
        let got = &report[address];
        for (report_key, truth_key) in keys {
            if got[report_key] != want[truth_key] {
                wrong.push(format!(
                    "{address} ({}): {report_key} {} want {} ({})",
                    want["fault"], got[report_key], want[truth_key], got["error"]
                ));
            }
        }
    }
    wrong
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_ssh_port_fault_and_state_is_reported_as_the_truth_says() {
    let mut specs = Vec::new();
    for ssh in [
        SshFault::None,
        SshFault::Firewalled,
        SshFault::StrayListener,
        SshFault::Trickle,
        SshFault::EndlessLine,
        SshFault::HostileBanner,
    ] {
        specs.extend([camera(ssh, true), camera(ssh, false)]);
    }
    // Unreadable configurations: the port is still probed, its exposure unknown.
    specs.push(DeviceSpec {
        fault: Fault::Closed,
        ..camera(SshFault::None, true)
    });
    specs.push(DeviceSpec {
        fault: Fault::WrongPassword,
        ..camera(SshFault::StrayListener, false)
    });
    let fleet = TestFleet::of(specs).await;
    let (output, records) = fleet
        .scan("probe.jsonl", &["--probe-ssh", "--timeout", "2s"])
        .await;
    assert_eq!(code(&output), 1, "findings expected: {}", stderr(&output));
    let wrong = mismatches(&fleet, &records);
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    let truth = fleet.truth();
    let of = |kind: &str| truth.values().filter(|t| t["exposure"] == kind).count();
    // The truth itself covers every finding, so matching it means something.
    assert!(of("consistent") > 0 && of("config_only") > 0 && of("port_only") > 0);
    let banners: Vec<&str> = records
        .iter()
        .filter_map(|r| r["ssh_banner"].as_str())
        .collect();
    assert!(banners.contains(&"SSH-2.0-OpenSSH_8.9"), "{banners:?}");
    fleet.fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_realistic_fleet_probed_matches_the_truth_for_every_camera() {
    let fleet = TestFleet::start(SimConfig {
        devices: 400,
        seed: 13,
        faults: FaultProfile::Realistic,
        ..SimConfig::default()
    })
    .await;
    let faulty = (0..fleet.fleet.len())
        .filter(|&i| fleet.fleet.spec(i).ssh != SshFault::None)
        .count();
    assert_eq!(faulty, 16, "4 % of the cameras have an SSH port fault");
    let (output, records) = fleet
        .scan("probe.jsonl", &["--probe-ssh", "--retries", "0"])
        .await;
    assert_eq!(code(&output), 1, "findings expected: {}", stderr(&output));
    let wrong = mismatches(&fleet, &records);
    assert!(
        wrong.is_empty(),
        "{} mismatches:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    fleet.fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickled_endless_and_silent_ports_cost_at_most_the_probe_deadline() {
    let fleet = TestFleet::start(SimConfig {
        specs: Some(vec![
            camera(SshFault::Trickle, true),
            camera(SshFault::EndlessLine, true),
            camera(SshFault::Firewalled, true),
        ]),
        ..SimConfig::default()
    })
    .await;
    // The probe deadline is the 2 s timeout; the trickle alone would take 10.5 s, and the
    // device deadline (12 s) would let it.
    let (output, records) = fleet
        .scan("slow.jsonl", &["--probe-ssh", "--timeout", "2s"])
        .await;
    assert_eq!(code(&output), 1, "{}", stderr(&output));
    assert_eq!(records.len(), 3);
    for rec in &records {
        let elapsed = rec["elapsed_ms"].as_u64().unwrap();
        assert!(elapsed <= 2000 + 1500, "past the probe deadline: {rec}");
        assert_eq!(rec["status"], "ok", "{rec}");
        assert_eq!(rec["ssh_banner"], Value::Null, "no complete line: {rec}");
    }
    // Records arrive in completion order, and all three end near the same deadline.
    let by_address = by_address(&records);
    let ports: Vec<&Value> = (0..3)
        .map(|i| &by_address[fleet.fleet.address(i)]["ssh_port"])
        .collect();
    assert_eq!(ports, ["open", "open", "filtered"]);
    fleet.fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_probe_ssh_no_connection_reaches_any_ssh_port() {
    let fleet = TestFleet::start(SimConfig {
        specs: Some(
            [
                SshFault::None,
                SshFault::Firewalled,
                SshFault::StrayListener,
            ]
            .into_iter()
            .flat_map(|ssh| [camera(ssh, true), camera(ssh, false)])
            .collect(),
        ),
        ..SimConfig::default()
    })
    .await;
    let (output, records) = fleet.scan("plain.jsonl", &[]).await;
    assert!(matches!(code(&output), 0 | 1), "{}", stderr(&output));
    let connections: Vec<u64> = fleet
        .fleet
        .snapshot()
        .iter()
        .map(|d| d.ssh_connections)
        .collect();
    assert_eq!(connections, [0; 6], "no probe, no connection");
    for rec in &records {
        for column in ["ssh_port", "ssh_banner", "exposure"] {
            assert_eq!(rec[column], Value::Null, "{column} without a probe: {rec}");
        }
    }
    // With the flag: exactly one connection to every port that listens.
    let (output, _) = fleet.scan("probed.jsonl", &["--probe-ssh"]).await;
    assert!(matches!(code(&output), 0 | 1), "{}", stderr(&output));
    let connections: Vec<u64> = fleet
        .fleet
        .snapshot()
        .iter()
        .map(|d| d.ssh_connections)
        .collect();
    assert_eq!(connections, [1, 0, 1, 1, 1, 1]);
    fleet.fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_banners_are_inert_in_csv_and_kept_sanitised_in_json() {
    let fleet = TestFleet::of(vec![camera(SshFault::HostileBanner, true)]).await;
    let (output, _) = fleet.scan("hostile.csv", &["--probe-ssh"]).await;
    assert!(matches!(code(&output), 0 | 1), "{}", stderr(&output));
    let text = std::fs::read_to_string(fleet.path("hostile.csv")).unwrap();
    assert!(
        text.bytes()
            .all(|b| b == b'\n' || (b' '..=b'~').contains(&b)),
        "only printable ASCII and line ends: {text:?}"
    );
    assert_eq!(text.lines().count(), 2, "one header, one row: {text}");
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header = reader.headers().unwrap().clone();
    let column = header.iter().position(|h| h == "ssh_banner").unwrap();
    let row = reader.records().next().unwrap().unwrap();
    let sanitised = "SSH-2.0-=cmd|' /C calc'!A0 ?[2J?<script>alert(1)</script>??";
    assert_eq!(&row[column], sanitised);
    for cell in row.iter() {
        assert!(
            !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
            "formula cell: {cell:?}"
        );
    }
    let (_, records) = fleet.scan("hostile.jsonl", &["--probe-ssh"]).await;
    assert_eq!(records[0]["ssh_banner"], sanitised);
    fleet.fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ssh_server_on_a_camera_configured_off_is_a_finding_in_scan_and_remediate() {
    let fleet = TestFleet::start(SimConfig {
        specs: Some(vec![
            camera(SshFault::StrayListener, false),
            camera(SshFault::None, false),
        ]),
        ..SimConfig::default()
    })
    .await;
    let out = fleet.path("scan.jsonl");
    let output = Sshfleet::scan(&fleet.inventory)
        .out(&out)
        .arg("--probe-ssh")
        .run()
        .await;
    assert_eq!(
        code(&output),
        1,
        "port_only is a finding: {}",
        stderr(&output)
    );
    let summary = stderr(&output);
    assert!(
        summary.contains("PORT_ONLY: 1 device(s) answer SSH although configured disabled"),
        "{summary}"
    );
    assert!(
        summary.contains("exposure: 1 port_only, 0 config_only, 1 consistent"),
        "{summary}"
    );
    let records = read_jsonl(&out);
    let stray = &by_address(&records)[fleet.fleet.address(0)];
    assert_eq!(
        (
            &stray["exposure"],
            &stray["compliant"],
            &stray["ssh_enabled"]
        ),
        (
            &Value::from("port_only"),
            &Value::from(false),
            &Value::from(false)
        )
    );

    let plan = fleet.path("plan.jsonl");
    let output = Sshfleet::remediate(&fleet.inventory)
        .args(&["--ssh", "disabled"])
        .out(&plan)
        .args(&["--probe-ssh", "--quiet"])
        .run()
        .await;
    assert_eq!(code(&output), 1, "{}", stderr(&output));
    let records = read_jsonl(&plan);
    let stray = &by_address(&records)[fleet.fleet.address(0)];
    // Nothing to write (configured off already), and still a finding.
    assert_eq!(stray["action"], "none", "{stray}");
    assert_eq!(stray["exposure"], "port_only", "{stray}");
    assert_eq!(stray["compliant"], false, "{stray}");
    fleet.fleet.shutdown().await;
}

/// `--probe-ssh` reads each camera's SSH evidence: its host key, crypto grade and Terrapin
/// exposure equal the simulator's truth, over exactly one connection per answering port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_evidence_matches_the_truth_in_one_connection_per_camera() {
    let fleet = TestFleet::start(SimConfig {
        devices: 120,
        seed: 27,
        faults: FaultProfile::Realistic,
        ..SimConfig::default()
    })
    .await;
    let (output, records) = fleet
        .scan("evidence.jsonl", &["--probe-ssh", "--retries", "0"])
        .await;
    assert!(code(&output) <= 1, "{}", stderr(&output));
    let truth = fleet.truth();
    let report = by_address(&records);
    let mut wrong = Vec::new();
    for (address, want) in &truth {
        let got = &report[address];
        for key in ["ssh_host_key", "ssh_crypto", "ssh_terrapin"] {
            if got[key] != want[key] {
                wrong.push(format!("{address}: {key} {} want {}", got[key], want[key]));
            }
        }
        if !want["ssh_host_key"].is_null() {
            let kex = &got["ssh_kexinit"]["kex"];
            assert!(kex.as_array().is_some_and(|k| !k.is_empty()), "{got}");
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    let with_key = truth.values().filter(|t| !t["ssh_host_key"].is_null());
    let graded: std::collections::HashSet<_> = with_key
        .clone()
        .filter_map(|t| t["ssh_crypto"].as_str())
        .collect();
    assert!(
        with_key.count() > 10,
        "the truth holds host keys to compare"
    );
    assert!(
        graded.len() > 1,
        "more than one grade in the truth: {graded:?}"
    );
    for device in fleet.fleet.snapshot() {
        let open = truth[&device.address]["ssh_port"] == "open";
        let want = u64::from(open);
        assert!(
            device.ssh_connections == want || (!open && device.ssh_connections <= 1),
            "{}: {} SSH connections (port {})",
            device.address,
            device.ssh_connections,
            truth[&device.address]["ssh_port"]
        );
    }
    fleet.fleet.shutdown().await;
}

/// The CSV report keeps today's columns in their order, the evidence columns right after
/// `firmware`, and never the algorithm lists (an object).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_evidence_columns_follow_firmware_without_the_kexinit() {
    let fleet = TestFleet::of(vec![camera(SshFault::None, true)]).await;
    let (output, _) = fleet.scan("evidence.csv", &["--probe-ssh"]).await;
    assert!(code(&output) <= 1, "{}", stderr(&output));
    let text = std::fs::read_to_string(fleet.path("evidence.csv")).unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    let at = header.iter().position(|c| c == "firmware").unwrap();
    assert_eq!(
        header[at - 4..at + 7],
        [
            "ssh_port",
            "ssh_banner",
            "exposure",
            "model",
            "firmware",
            "ssh_host_key",
            "ssh_host_key_type",
            "ssh_crypto",
            "ssh_terrapin",
            "ssh_key_shared",
            "ssh_host_key_change"
        ]
    );
    assert!(
        !text.contains("kexinit") && !text.contains("curve25519"),
        "{text}"
    );
    let row = reader.records().next().unwrap().unwrap();
    let truth = fleet.truth();
    let want = truth.values().next().unwrap();
    assert_eq!(Some(&row[at + 1]), want["ssh_host_key"].as_str());
    assert!(
        row[at + 2].starts_with("ssh-") || row[at + 2].starts_with("ecdsa-"),
        "{row:?}"
    );
    assert_eq!(Some(&row[at + 3]), want["ssh_crypto"].as_str());
    fleet.fleet.shutdown().await;
}

/// `--ssh-policy` replaces the baseline: a strict policy that allows nothing fails every
/// server whose algorithms were read, and a policy file with an unknown key refuses the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_policy_replaces_the_baseline_and_a_bad_one_refuses_the_run() {
    let fleet = TestFleet::start(SimConfig {
        specs: Some(vec![
            camera(SshFault::None, true),
            camera(SshFault::None, true),
        ]),
        ..SimConfig::default()
    })
    .await;
    let strict = fleet.path("strict.toml");
    std::fs::write(&strict, "matching = \"strict\"\n").unwrap();
    let strict = strict.display().to_string();
    let (output, records) = fleet
        .scan("strict.jsonl", &["--probe-ssh", "--ssh-policy", &strict])
        .await;
    assert!(code(&output) <= 1, "{}", stderr(&output));
    assert_eq!(records.len(), 2);
    for rec in &records {
        assert_eq!(rec["ssh_crypto"], "fail", "{rec}");
    }
    let bad = fleet.path("bad.toml");
    std::fs::write(&bad, "fial = {}\n").unwrap();
    let bad = bad.display().to_string();
    let (output, _) = fleet
        .scan("bad.csv", &["--probe-ssh", "--ssh-policy", &bad])
        .await;
    assert_eq!(code(&output), 2, "{}", stderr(&output));
    assert!(
        stderr(&output).contains("--ssh-policy"),
        "{}",
        stderr(&output)
    );
    fleet.fleet.shutdown().await;
}

/// A hostile SSH server (an identification line, then its KEXINIT packet a byte every 400 ms,
/// never finished) ends as a record within the probe's deadline: open, its banner kept, no
/// host key and no grade, the camera's own state read as usual. (A packet claiming 4 GiB is
/// the probe's own test in the axis crate.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_ssh_server_ends_as_a_record_within_the_deadline() {
    use tokio::io::AsyncWriteExt as _;
    let fleet = TestFleet::of(vec![camera(SshFault::None, true)]).await;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .unwrap();
    let hostile_port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let Ok((mut s, _)) = listener.accept().await else {
            return;
        };
        let _ = s.write_all(b"SSH-2.0-hostile\r\n").await;
        for &byte in b"\x00\x00\x01\x00\x04\x14".iter().cycle().take(100) {
            tokio::time::sleep(std::time::Duration::from_millis(400)).await;
            if s.write_all(&[byte]).await.is_err() {
                return;
            }
        }
    });
    // The simulator's inventory, its camera's SSH port (the last column) the hostile one.
    let text = std::fs::read_to_string(&fleet.inventory).unwrap();
    let mut lines = text.lines();
    let mut rewritten = format!("{}\n", lines.next().unwrap());
    for line in lines {
        let (row, _) = line.rsplit_once(',').unwrap();
        rewritten.push_str(&format!("{row},{hostile_port}\n"));
    }
    let inventory = fleet.path("hostile-ssh.csv");
    std::fs::write(&inventory, rewritten).unwrap();
    let out = fleet.path("hostile-ssh.jsonl");
    let started = std::time::Instant::now();
    let output = Sshfleet::scan(&inventory)
        .out(&out)
        .args(&["--quiet", "--probe-ssh", "--timeout", "2s"])
        .run()
        .await;
    let took = started.elapsed();
    assert!(code(&output) <= 1, "{}", stderr(&output));
    assert!(took < std::time::Duration::from_secs(10), "{took:?}");
    let records = read_jsonl(&out);
    assert_eq!(records.len(), 1);
    let rec = &records[0];
    assert_eq!(rec["status"], "ok", "{rec}");
    assert_eq!(rec["ssh_port"], "open", "{rec}");
    assert_eq!(rec["ssh_banner"], "SSH-2.0-hostile", "{rec}");
    assert_eq!(rec["ssh_host_key"], Value::Null, "{rec}");
    assert_eq!(rec["ssh_crypto"], Value::Null, "{rec}");
    fleet.fleet.shutdown().await;
}
