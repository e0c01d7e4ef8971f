//! First contact: what a new user meets on the first runs — a wrong password that must not
//! hammer the fleet, inventories exported by spreadsheets, the terminal, the demo.

use serde_json::Value;
use sshfleet_sim::{FaultProfile, SimConfig};

use crate::support::{args, code, read_jsonl, run, stderr, Sshfleet, TestFleet, PASSWORD};

/// `scan` of the fleet's inventory (or `inventory`) with `password` as the run's password.
async fn scan_with_password(
    fleet: &TestFleet,
    inventory: &std::path::Path,
    password: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> (std::process::Output, Vec<Value>) {
    let out = fleet.path("scan.jsonl");
    let mut scan = Sshfleet::scan(inventory)
        .out(&out)
        .args(&["--timeout", "5s"])
        .args(extra)
        .password(password);
    for (key, value) in env {
        scan = scan.env(key, value);
    }
    let output = scan.run().await;
    (output, read_jsonl(&out))
}

fn not_tried(record: &Value) -> bool {
    record["error"]
        .as_str()
        .is_some_and(|e| e.starts_with("not tried: "))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_stops_after_ten_rejections_instead_of_hitting_every_camera() {
    let fleet = TestFleet::start(SimConfig {
        devices: 200,
        faults: FaultProfile::None,
        ..SimConfig::default()
    })
    .await;
    let concurrency = 16;
    let (output, records) = scan_with_password(
        &fleet,
        &fleet.inventory,
        "wrong",
        &["--concurrency", "16", "--fail-on", "never"],
        &[],
    )
    .await;
    let said = stderr(&output);
    assert_eq!(
        code(&output),
        1,
        "a stopped account fails even --fail-on never: {said}"
    );
    assert_eq!(records.len(), 200, "every device has its record");
    assert!(records.iter().all(|r| r["status"] == "auth_failed"));
    // What the cameras saw: about ten failed logins, plus those already in flight.
    let cameras = fleet.fleet.snapshot();
    let failed: u64 = cameras.iter().map(|c| c.failed_logins).sum();
    assert!(
        (10..=10 + concurrency).contains(&failed),
        "{failed} failed logins"
    );
    // A record says "not tried" exactly when its camera was never contacted.
    for record in &records {
        let camera = cameras
            .iter()
            .find(|c| c.address == record["address"])
            .expect("a camera per record");
        assert_eq!(not_tried(record), camera.requests == 0, "{record}");
    }
    assert!(records.iter().filter(|r| not_tried(r)).count() >= 200 - 26);
    assert!(
        said.contains("error: the account \"root\" with the password from the environment variable SSHFLEET_PASSWORD was rejected by all"),
        "{said}"
    );
    assert!(said.contains("--no-auth-breaker"), "{said}");
    fleet.fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_breaker_every_camera_gets_its_one_failed_login() {
    let fleet = TestFleet::start(SimConfig {
        devices: 40,
        faults: FaultProfile::None,
        ..SimConfig::default()
    })
    .await;
    let extra = ["--concurrency", "4", "--no-auth-breaker", "--quiet"];
    let (output, records) =
        scan_with_password(&fleet, &fleet.inventory, "wrong", &extra, &[]).await;
    assert_eq!(code(&output), 1, "{}", stderr(&output));
    assert!(records.iter().all(|r| !not_tried(r)), "{records:?}");
    for camera in fleet.fleet.snapshot() {
        assert_eq!(camera.failed_logins, 1, "{camera:?}");
    }
    fleet.fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_breaker_stops_only_the_account_that_fails() {
    let fleet = TestFleet::start(SimConfig {
        devices: 100,
        faults: FaultProfile::None,
        ..SimConfig::default()
    })
    .await;
    // The first 40 rows take their password from OLD_PW (wrong), the rest the run's (right).
    let inventory = fleet.path("accounts.csv");
    let mut text = "address,password_env\n".to_owned();
    for i in 0..fleet.fleet.len() {
        let var = if i < 40 { "OLD_PW" } else { "" };
        text.push_str(&format!("{},{var}\n", fleet.fleet.address(i)));
    }
    std::fs::write(&inventory, text).unwrap();
    let extra = ["--concurrency", "4"];
    let env = [("OLD_PW", "old")];
    let (output, records) = scan_with_password(&fleet, &inventory, PASSWORD, &extra, &env).await;
    let said = stderr(&output);
    assert_eq!(code(&output), 1, "{said}");
    let cameras = fleet.fleet.snapshot();
    let failed: u64 = cameras[..40].iter().map(|c| c.failed_logins).sum();
    assert!((10..=14).contains(&failed), "{failed} failed logins");
    assert!(cameras[40..].iter().all(|c| c.failed_logins == 0));
    for record in &records {
        let i = (0..100)
            .find(|&i| fleet.fleet.address(i) == record["address"])
            .unwrap();
        if i < 40 {
            assert_eq!(record["status"], "auth_failed", "{record}");
        } else {
            assert_eq!(record["status"], "ok", "{record}");
        }
    }
    assert!(
        said.contains(
            "the password from the environment variable OLD_PW (the inventory's password_env)"
        ),
        "{said}"
    );
    assert!(!said.contains("SSHFLEET_PASSWORD"), "{said}");
    fleet.fleet.shutdown().await;
}

/// The fleet's cameras as a spreadsheet would export them: `sep` between cells, an `IP
/// Address` column, sites with letters beyond ASCII (Tromsø) in `encode`'s encoding.
fn spreadsheet_export(fleet: &TestFleet, sep: &str, encode: fn(&str) -> Vec<u8>) -> Vec<u8> {
    let mut text = format!("Name{sep}IP Address{sep}Site{sep}Expect\r\n");
    for i in 0..fleet.fleet.len() {
        let site = if i % 2 == 0 { "Tromsø" } else { "Oslo" };
        let address = fleet.fleet.address(i);
        text.push_str(&format!(
            "cam-{i}{sep}{address}{sep}{site}{sep}disabled\r\n"
        ));
    }
    encode(&text)
}

fn utf8(text: &str) -> Vec<u8> {
    text.as_bytes().to_vec()
}

fn latin1(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn semicolon_and_tab_exports_with_an_ip_address_column_are_scanned() {
    let fleet = TestFleet::start(SimConfig {
        devices: 6,
        faults: FaultProfile::None,
        ..SimConfig::default()
    })
    .await;
    for (sep, name) in [(";", "excel.csv"), ("\t", "export.tsv")] {
        let inventory = fleet.path(name);
        std::fs::write(&inventory, spreadsheet_export(&fleet, sep, utf8)).unwrap();
        let (output, records) = scan_with_password(&fleet, &inventory, PASSWORD, &[], &[]).await;
        let said = stderr(&output);
        assert!(matches!(code(&output), 0 | 1), "{name}: {said}");
        assert_eq!(records.len(), 6, "{name}: {said}");
        for record in &records {
            assert_eq!(record["status"], "ok", "{name}: {record}");
            assert!(
                record["site"] == "Tromsø" || record["site"] == "Oslo",
                "{record}"
            );
        }
        assert!(said.contains("Tromsø"), "{name}: the site table: {said}");
    }
    let before: u64 = fleet.fleet.snapshot().iter().map(|c| c.requests).sum();
    // Two columns that could be the address: refused, not guessed between.
    let two = fleet.path("two.csv");
    let mut text = "Hostname;IP;Site\n".to_owned();
    for i in 0..fleet.fleet.len() {
        text.push_str(&format!("cam-{i}.invalid;{};x\n", fleet.fleet.address(i)));
    }
    std::fs::write(&two, &text).unwrap();
    let (output, _) = scan_with_password(&fleet, &two, PASSWORD, &[], &[]).await;
    assert_eq!(code(&output), 2, "{}", stderr(&output));
    assert!(
        stderr(&output).contains("several address columns (\"Hostname\", \"IP\")"),
        "{}",
        stderr(&output)
    );
    assert_eq!(
        fleet
            .fleet
            .snapshot()
            .iter()
            .map(|c| c.requests)
            .sum::<u64>(),
        before,
        "nothing sent"
    );
    let (output, records) =
        scan_with_password(&fleet, &two, PASSWORD, &["--address-column", "ip"], &[]).await;
    assert!(matches!(code(&output), 0 | 1), "{}", stderr(&output));
    assert!(records.iter().all(|r| r["status"] == "ok"), "{records:?}");
    fleet.fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_latin1_inventory_is_refused_with_its_line_and_how_to_convert_it() {
    let fleet = TestFleet::start(SimConfig {
        devices: 4,
        faults: FaultProfile::None,
        ..SimConfig::default()
    })
    .await;
    let inventory = fleet.path("latin1.csv");
    std::fs::write(&inventory, spreadsheet_export(&fleet, ";", latin1)).unwrap();
    let (output, records) = scan_with_password(&fleet, &inventory, PASSWORD, &[], &[]).await;
    let said = stderr(&output);
    assert_eq!(code(&output), 2, "{said}");
    // Line 2 is the first camera's, in Tromsø.
    assert!(
        said.contains("inventory is not UTF-8: line 2 holds the byte 0xF8"),
        "{said}"
    );
    assert!(said.contains("iconv -f latin1 -t utf-8"), "{said}");
    assert!(!said.contains('\u{FFFD}'), "{said}");
    assert!(records.is_empty());
    assert!(fleet.fleet.snapshot().iter().all(|c| c.requests == 0));
    fleet.fleet.shutdown().await;
}

/// Runs `sshfleet ARGS` on a pseudo-terminal (util-linux `script`), as a person at a
/// terminal would: what the terminal showed (stdout and stderr together), and the exit code.
async fn on_a_terminal(argv: &[String], env: &[(&str, &str)]) -> (String, i32) {
    let binary = env!("CARGO_BIN_EXE_sshfleet");
    let quoted: Vec<String> = std::iter::once(binary.to_owned())
        .chain(argv.iter().cloned())
        .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
        .collect();
    let mut cmd = tokio::process::Command::new("script");
    cmd.args(["-qec", &quoted.join(" "), "/dev/null"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TERM", "dumb")
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(std::time::Duration::from_secs(120), cmd.output())
        .await
        .expect("finished in time")
        .expect("script runs");
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        code(&output),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_gets_a_table_of_findings_and_a_pipe_gets_json_lines() {
    let fleet = TestFleet::start(SimConfig {
        devices: 12,
        faults: FaultProfile::None,
        ..SimConfig::default()
    })
    .await;
    let truth = fleet.truth();
    let on: Vec<&String> = truth
        .iter()
        .filter(|(_, t)| t["ssh_enabled"] == true)
        .map(|(a, _)| a)
        .collect();
    assert!(
        !on.is_empty() && on.len() < 12,
        "a fleet with SSH on and off"
    );
    let inventory = fleet.inventory.display().to_string();
    let env = [("SSHFLEET_PASSWORD", PASSWORD)];
    let scan = args(&["scan", "--inventory", &inventory, "--timeout", "5s"]);
    let (seen, exit) = on_a_terminal(&scan, &env).await;
    assert_eq!(exit, 1, "{seen}");
    assert!(seen.contains("ADDRESS"), "{seen}");
    assert!(
        !seen.contains("{\"address\""),
        "no JSON on a terminal: {seen}"
    );
    for (address, t) in &truth {
        let row = seen.lines().find(|l| l.contains(address.as_str()));
        match t["ssh_enabled"] == true {
            true => assert!(
                row.is_some_and(|r| r.contains("SSH enabled, expected disabled")),
                "{address}: {seen}"
            ),
            false => assert!(row.is_none(), "{address} is no finding: {seen}"),
        }
    }
    assert!(
        seen.contains(&format!("{} findings among 12 devices", on.len())),
        "{seen}"
    );
    // Asked for JSON Lines, a terminal gets them.
    let mut jsonl = scan.clone();
    jsonl.extend(args(&["--format", "jsonl"]));
    let (seen, _) = on_a_terminal(&jsonl, &env).await;
    assert_eq!(seen.matches("{\"address\"").count(), 12, "{seen}");
    // A pipe gets JSON Lines, as before.
    let piped = run(&scan, &env).await;
    let lines = String::from_utf8_lossy(&piped.stdout).into_owned();
    assert_eq!(lines.lines().count(), 12, "{lines}");
    assert!(lines
        .lines()
        .all(|l| serde_json::from_str::<Value>(l).is_ok()));
    fleet.fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_desired_state_is_said_and_the_files_written_are_listed() {
    let fleet = TestFleet::start(SimConfig {
        devices: 5,
        faults: FaultProfile::None,
        ..SimConfig::default()
    })
    .await;
    let inventory = fleet.path("no-expect.csv");
    let mut text = "address,name\n".to_owned();
    for i in 0..fleet.fleet.len() {
        text.push_str(&format!("{},cam-{i}\n", fleet.fleet.address(i)));
    }
    std::fs::write(&inventory, text).unwrap();
    let (html, metrics) = (fleet.path("report.html"), fleet.path("scan.prom"));
    let extra = [
        "--html-out",
        &html.display().to_string(),
        "--metrics-out",
        &metrics.display().to_string(),
    ];
    let (output, records) = scan_with_password(&fleet, &inventory, PASSWORD, &extra, &[]).await;
    let said = stderr(&output);
    assert_eq!(code(&output), 0, "{said}");
    assert!(
        records.iter().any(|r| r["ssh_enabled"] == true),
        "{records:?}"
    );
    assert!(
        said.contains("warning: no desired SSH state was given (no --expect, no `expect` column in the inventory): cameras with SSH enabled are not findings"),
        "{said}"
    );
    let files = format!(
        "files written: {}, {}, {}",
        fleet.path("scan.jsonl").display(),
        html.display(),
        metrics.display()
    );
    assert_eq!(said.lines().last(), Some(files.as_str()), "{said}");
    assert!(html.is_file() && metrics.is_file());
    // With a desired state, no warning; SSH on is then a finding.
    let (output, _) =
        scan_with_password(&fleet, &inventory, PASSWORD, &["--expect", "disabled"], &[]).await;
    assert_eq!(code(&output), 1);
    assert!(
        !stderr(&output).contains("no desired SSH state"),
        "{}",
        stderr(&output)
    );
    fleet.fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_labels_its_stages_and_gives_up_on_dead_cameras_quickly() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    let demo = args(&[
        "demo",
        "--devices",
        "100",
        "--dir",
        &out.display().to_string(),
    ]);
    let output = run(&demo, &[]).await;
    let said = stderr(&output);
    assert_eq!(code(&output), 0, "{said}");
    let stages = [
        "[1/5] scanning 100 cameras (--timeout 2s --retries 0)…",
        "[2/5] planning the change that disables SSH",
        "[3/5] another client changes 5 cameras; second scan",
        "[4/5] applying the saved plan in waves 1,10%,100%",
        "[5/5] listing 2500 Equinix SSH users",
    ];
    let mut at = 0;
    for (i, stage) in stages.iter().enumerate() {
        let start = said[at..].find(stage).map(|p| p + at);
        let start = start.unwrap_or_else(|| panic!("{stage:?} after the last stage: {said}"));
        let done = format!("[{}/5] done in ", i + 1);
        at = said[start..].find(&done).map(|p| p + start).expect(&done);
    }
    assert!(
        said.contains("agrees with the simulator's truth for 100/100 cameras"),
        "{said}"
    );
    // A dead camera costs one short deadline, a throttled one no backoff.
    let scan = read_jsonl(&out.join("scan.jsonl"));
    let status = |s: &'static str| scan.iter().filter(move |r| r["status"] == s);
    assert!(status("timeout").count() > 0 && status("forbidden").count() > 0);
    for record in status("timeout") {
        assert_eq!(record["error"], "no response within 2s", "{record}");
    }
    for record in status("forbidden") {
        assert_eq!(record["attempts"], 1, "{record}");
    }
}
