//! First contact: what a new user meets on the first runs — a wrong password that must not
//! hammer the fleet, inventories exported by spreadsheets, the terminal, the demo.

use serde_json::Value;
use sshfleet::sim::{FaultProfile, SimConfig};

use crate::support::{args, code, read_jsonl, run, stderr, TestFleet, PASSWORD};

/// `scan` of the fleet's inventory (or `inventory`) with `password` as the run's password.
async fn scan_with_password(
    fleet: &TestFleet,
    inventory: &std::path::Path,
    password: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> (std::process::Output, Vec<Value>) {
    let out = fleet.path("scan.jsonl");
    let mut argv = args(&[
        "scan",
        "--inventory",
        &inventory.display().to_string(),
        "-o",
        &out.display().to_string(),
        "--timeout",
        "5s",
    ]);
    argv.extend(args(extra));
    let mut env = env.to_vec();
    env.push(("SSHFLEET_PASSWORD", password));
    let output = run(&argv, &env).await;
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
        &["--concurrency", "16"],
        &[],
    )
    .await;
    let said = stderr(&output);
    assert_eq!(code(&output), 1, "{said}");
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
