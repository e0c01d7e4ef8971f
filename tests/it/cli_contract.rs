//! The command-line contract: exit codes, secrets never shown, Ctrl-C flushes, broken pipes.

use std::time::Duration;

use sshfleet_sim::{DeviceAuth, DeviceSpec, Fault, FaultProfile, Firmware, SimConfig, SshFault};

use crate::support::{args, code, eventually, read_jsonl, run, stderr, Sshfleet, TestFleet};

#[tokio::test]
async fn usage_errors_exit_2_and_do_nothing() {
    let cases: [&[&str]; 5] = [
        &["scan"],
        &["scan", "--inventory", "x.csv", "--bogus"],
        &["scan", "--inventory", "x.csv", "--format", "xml"],
        &["scan", "--inventory", "x.csv", "--shard", "3/3"],
        &["frobnicate"],
    ];
    for case in cases {
        let output = run(&args(case), &[("SSHFLEET_PASSWORD", "pass")]).await;
        assert_eq!(code(&output), 2, "{case:?}: {}", stderr(&output));
        assert!(output.stdout.is_empty(), "{case:?}");
    }
}

#[tokio::test]
async fn missing_password_is_a_usage_error_naming_the_variable() {
    let dir = tempfile::tempdir().expect("dir");
    let inventory = dir.path().join("inv.csv");
    std::fs::write(&inventory, "address\n127.0.0.1:9\n").expect("write");
    let output = run(
        &args(&["scan", "--inventory", &inventory.display().to_string()]),
        &[],
    )
    .await;
    assert_eq!(code(&output), 2);
    assert!(
        stderr(&output).contains("SSHFLEET_PASSWORD"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_password_appears_in_no_output_or_log() {
    const SECRET: &str = "S3cr3t-Pa55w0rd!";
    let spec = |fault, auth| DeviceSpec {
        ssh_enabled: true,
        fault,
        firmware: Firmware::Modern,
        auth,
        ssh: SshFault::None,
    };
    let fleet = TestFleet::start(SimConfig {
        password: SECRET.into(),
        specs: Some(vec![
            spec(Fault::None, DeviceAuth::DigestMd5),
            spec(Fault::WrongPassword, DeviceAuth::DigestMd5),
            spec(Fault::None, DeviceAuth::Basic),
        ]),
        ..SimConfig::default()
    })
    .await;
    let mut everything = String::new();
    // RUST_LOG overrides -v, so -vv runs once without it too; remediate adds the writes.
    let runs = [
        ("scan", "a.jsonl", "-vv", Some("trace")),
        ("scan", "b.csv", "-v", Some("trace")),
        ("scan", "c.json", "-q", Some("trace")),
        ("scan", "d.jsonl", "-vv", None),
        ("remediate", "e.jsonl", "-vv", None),
        ("remediate", "f.jsonl", "-vv", Some("trace")),
    ];
    let mut debug = String::new();
    for (command, out, verbosity, rust_log) in runs {
        let out_path = fleet.path(out);
        let mut argv = args(&[
            command,
            "--inventory",
            &fleet.inventory.display().to_string(),
            "-o",
            &out_path.display().to_string(),
            verbosity,
            "--allow-basic-http",
        ]);
        if command == "remediate" {
            argv.extend(args(&["--ssh", "disabled", "--apply", "--yes"]));
        }
        let mut env = vec![("SSHFLEET_PASSWORD", SECRET)];
        env.extend(rust_log.map(|level| ("RUST_LOG", level)));
        let output = run(&argv, &env).await;
        assert_ne!(code(&output), 0, "{}", stderr(&output));
        everything.push_str(&String::from_utf8_lossy(&output.stdout));
        everything.push_str(&stderr(&output));
        everything.push_str(&std::fs::read_to_string(&out_path).unwrap_or_default());
        if rust_log.is_none() {
            debug.push_str(&stderr(&output));
        }
    }
    // -vv shows each request, challenge, write and read-back: the check above sees them.
    for event in [
        "request answered",
        "challenge adopted",
        "scheme=\"Digest MD5\"",
        "scheme=\"Basic\"",
        "SSH state written",
        "read back",
    ] {
        assert!(debug.contains(event), "no {event:?} at -vv:\n{debug}");
    }
    assert!(
        everything.contains("auth_failed"),
        "the runs did produce reports"
    );
    assert!(!everything.contains(SECRET), "password leaked");
    // Basic credentials travel base64-encoded: that form must not leak either.
    let basic = "cm9vdDpTM2NyM3QtUGE1NXcwcmQh"; // base64("root:S3cr3t-Pa55w0rd!")
    assert!(!everything.contains(basic), "Basic credentials leaked");
    fleet.fleet.shutdown().await;
}

/// A modern camera with SSH off that answers at once.
fn clean_camera() -> DeviceSpec {
    DeviceSpec {
        ssh_enabled: false,
        fault: Fault::None,
        firmware: Firmware::Modern,
        auth: DeviceAuth::Policy,
        ssh: SshFault::None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_dispatch_flushes_the_report_and_exits_130() {
    let clean = clean_camera();
    let hang = DeviceSpec {
        fault: Fault::Hang,
        ..clean.clone()
    };
    let mut specs = vec![clean.clone(); 5];
    specs.extend([hang.clone(), hang]);
    specs.extend(vec![clean; 20]);
    let fleet = TestFleet::of(specs).await;
    let out = fleet.path("partial.jsonl");
    let child = Sshfleet::scan(&fleet.inventory)
        .out(&out)
        .args(&["--concurrency", "2", "--timeout", "3s", "--retries", "0"])
        .command()
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    // Wait (bounded) until the five fast devices are on disk: the report streams.
    let streamed = eventually(|| read_jsonl(&out).len() >= 5, Duration::from_secs(10)).await;
    assert!(streamed, "records stream to the file as devices finish");
    let output = crate::support::interrupt_and_wait(child).await;
    let err = stderr(&output);
    assert_eq!(code(&output), 130, "{err}");
    assert!(err.contains("not checked"), "{err}");
    let records = read_jsonl(&out);
    assert!(
        records.len() >= 5 && records.len() < 27,
        "partial but valid: {}",
        records.len()
    );
    fleet.fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_stdout_ends_the_run_quietly_and_early() {
    // One quick camera, then slow ones: without an early stop this run would take minutes.
    let clean = clean_camera();
    let mut specs = vec![clean.clone()];
    specs.extend(vec![
        DeviceSpec {
            fault: Fault::Hang,
            ..clean
        };
        12
    ]);
    let fleet = TestFleet::of(specs).await;
    let mut child = Sshfleet::scan(&fleet.inventory)
        .args(&[
            "-q",
            "--concurrency",
            "1",
            "--timeout",
            "2s",
            "--retries",
            "0",
        ])
        .command()
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    drop(child.stdout.take());
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("exits")
        .expect("wait");
    let err = stderr(&output);
    assert!(!err.contains("panicked") && !err.contains("error"), "{err}");
    assert_eq!(output.status.code(), Some(0), "{err}");
    let contacted = fleet
        .fleet
        .snapshot()
        .iter()
        .skip(1)
        .filter(|d| d.requests > 0)
        .count();
    assert!(
        contacted <= 2,
        "the run stopped dispatching once stdout was gone ({contacted} contacted)"
    );
    fleet.fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_and_csv_formats_follow_the_extension() {
    let fleet = TestFleet::start(SimConfig {
        devices: 4,
        faults: FaultProfile::None,
        ..SimConfig::default()
    })
    .await;
    fleet.scan("r.json", &[]).await;
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fleet.path("r.json")).unwrap_or_default())
            .expect("valid JSON");
    assert_eq!(json.as_array().map(Vec::len), Some(4));
    fleet.scan("r.csv", &[]).await;
    let csv = std::fs::read_to_string(fleet.path("r.csv")).unwrap_or_default();
    assert_eq!(csv.lines().count(), 5, "header + 4 rows");
    fleet.fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tags_column_is_carried_into_csv_and_json_reports() {
    let fleet = TestFleet::start(SimConfig {
        devices: 2,
        faults: FaultProfile::None,
        ..SimConfig::default()
    })
    .await;
    let inventory = format!(
        "address,Owner,Tags,expect\n{},alice,outdoor;poe,disabled\n{},bob,,disabled\n",
        fleet.fleet.address(0),
        fleet.fleet.address(1)
    );
    std::fs::write(&fleet.inventory, inventory).unwrap();
    let (_, records) = fleet.scan("tags.jsonl", &[]).await;
    let first = records
        .iter()
        .find(|r| r["address"] == fleet.fleet.address(0))
        .expect("record");
    assert_eq!(first["tags"], "outdoor;poe", "{first}");
    // serde_json's map sorts keys, so the order is read from the text.
    let text = std::fs::read_to_string(fleet.path("tags.jsonl")).unwrap();
    let line = text.lines().next().unwrap();
    let at = |key: &str| {
        line.find(&format!("\"{key}\":"))
            .unwrap_or_else(|| panic!("{key}"))
    };
    assert!(
        at("checked_at") < at("Owner") && at("Owner") < at("tags"),
        "passthrough columns last, in inventory order: {line}"
    );
    fleet.scan("tags.json", &[]).await;
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fleet.path("tags.json")).unwrap()).unwrap();
    assert!(json
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["tags"] == "outdoor;poe"));
    fleet.scan("tags.csv", &[]).await;
    let csv = std::fs::read_to_string(fleet.path("tags.csv")).unwrap();
    let mut lines = csv.lines();
    assert!(lines.next().unwrap().ends_with(",Owner,tags"), "{csv}");
    assert!(csv.contains(",alice,outdoor;poe\n"), "{csv}");
    fleet.fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_os_error_is_reported_once_in_a_message() {
    let fleet = TestFleet::start(SimConfig {
        devices: 1,
        faults: FaultProfile::None,
        ..SimConfig::default()
    })
    .await;
    let missing = fleet.path("no-such-dir");
    let ca = missing.join("ca.pem");
    let (output, _) = fleet
        .scan("ca.jsonl", &["--ca-file", ca.to_str().unwrap()])
        .await;
    let err = stderr(&output);
    assert_eq!(code(&output), 2, "{err}");
    assert!(err.contains(ca.to_str().unwrap()), "{err}");
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
    let journal = missing.join("j.jsonl");
    let output = run(
        &args(&[
            "remediate",
            "--inventory",
            fleet.inventory.to_str().unwrap(),
            "--ssh",
            "disabled",
            "--apply",
            "--yes",
            "--journal",
            journal.to_str().unwrap(),
            "-o",
            fleet.path("r.jsonl").to_str().unwrap(),
        ]),
        &[("SSHFLEET_PASSWORD", crate::support::PASSWORD)],
    )
    .await;
    let err = stderr(&output);
    assert_eq!(code(&output), 2, "{err}");
    assert!(err.contains(journal.to_str().unwrap()), "{err}");
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
    fleet.fleet.shutdown().await;
}
