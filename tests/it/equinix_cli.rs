//! `sshfleet equinix ssh-users …` through the real binary against the mock: reports,
//! exit codes, dry runs, passwords kept out of every output, the bulk detach, and the
//! mock announced by `sshfleet sim`.

use std::collections::HashSet;

use sshfleet_sim::{EquinixFaults, Fleet};

use crate::equinix_support::{api, mock};
use crate::support::{args, code, command, read_jsonl, run, stderr};

const CREDENTIALS: [(&str, &str); 2] = [
    ("EQUINIX_API_CLIENTID", "sim-client"),
    ("EQUINIX_API_CLIENTSECRET", "sim-secret"),
];

async fn ssh_users(fleet: &Fleet, op: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let url = fleet.equinix_url().expect("url");
    let mut argv: Vec<String> = ["equinix", "ssh-users"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    argv.extend(op.iter().map(|s| s.to_string()));
    argv.extend(["--endpoint".to_string(), url]);
    run(&argv, env).await
}

fn csv_rows(path: &std::path::Path) -> Vec<csv::StringRecord> {
    let mut reader = csv::Reader::from_path(path).expect("csv");
    let header = reader.headers().expect("header").clone();
    assert_eq!(
        header.iter().collect::<Vec<_>>(),
        [
            "uuid",
            "username",
            "device_count",
            "devices",
            "metro_statuses",
            "flags"
        ]
    );
    reader.records().map(|r| r.expect("row")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_writes_every_user_once_with_flags_and_exits_1_on_findings() {
    let fleet = mock(640, EquinixFaults::default()).await;
    let dir = tempfile::tempdir().expect("dir");
    let out = dir.path().join("users.csv");
    let output = ssh_users(
        &fleet,
        &["list", "-o", &out.display().to_string()],
        &CREDENTIALS,
    )
    .await;
    assert_eq!(code(&output), 1, "{}", stderr(&output));
    assert!(
        stderr(&output).contains("640 listed"),
        "{}",
        stderr(&output)
    );
    let rows = csv_rows(&out);
    assert_eq!(rows.len(), 640);
    let uuids: HashSet<&str> = rows.iter().map(|r| &r[0]).collect();
    assert_eq!(uuids.len(), 640);
    for (row, user) in rows.iter().zip(api(&fleet).users()) {
        assert_eq!(
            (&row[0], &row[1]),
            (user.uuid.as_str(), user.username.as_str())
        );
        assert_eq!(row[2].parse::<usize>().ok(), Some(user.devices.len()));
        assert_eq!(&row[3], user.devices.join(";"));
        let flags: Vec<&str> = row[5].split(';').filter(|f| !f.is_empty()).collect();
        assert_eq!(
            flags.contains(&"no_devices"),
            user.devices.is_empty(),
            "{row:?}"
        );
        let failed = user.metros.iter().any(|(_, s)| s == "FAILED");
        assert_eq!(flags.contains(&"failed"), failed, "{row:?}");
    }
}

#[tokio::test]
async fn json_output_keeps_devices_and_statuses_structured() {
    let fleet = mock(30, EquinixFaults::default()).await;
    let output = ssh_users(&fleet, &["list", "--format", "json", "-q"], &CREDENTIALS).await;
    assert_eq!(code(&output), 1, "{}", stderr(&output));
    assert!(output.stderr.is_empty(), "quiet: {}", stderr(&output));
    let users: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let users = users.as_array().expect("array");
    assert_eq!(users.len(), 30);
    for user in users {
        assert!(
            user["devices"].is_array() && user["metro_statuses"].is_object(),
            "{user}"
        );
        assert_eq!(
            user["device_count"],
            user["devices"].as_array().map(Vec::len).unwrap_or(9)
        );
    }
}

#[tokio::test]
async fn a_brief_listing_is_not_judged_on_devices() {
    let fleet = mock(30, EquinixFaults::default()).await;
    let output = ssh_users(&fleet, &["list", "--verbose=false"], &CREDENTIALS).await;
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSONL"))
        .collect();
    assert_eq!(lines.len(), 30);
    assert!(lines
        .iter()
        .all(|u| u["devices"].is_null() && u["flags"] == serde_json::json!([])));
}

#[tokio::test]
async fn missing_credentials_and_bad_usage_exit_2() {
    let fleet = mock(1, EquinixFaults::default()).await;
    let output = ssh_users(&fleet, &["list"], &[("EQUINIX_API_CLIENTID", "x")]).await;
    assert_eq!(code(&output), 2);
    assert!(
        stderr(&output).contains("EQUINIX_API_CLIENTSECRET"),
        "{}",
        stderr(&output)
    );
    for bad in [
        &["detach"][..],
        &["detach", "user-only"],
        &["detach", "--all-devices"],
        &["list", "--page-concurrency", "0"],
        &["create", "--username", "x"],
        &["get", "a/b"],
    ] {
        let output = ssh_users(&fleet, bad, &CREDENTIALS).await;
        assert_eq!(code(&output), 2, "{bad:?}: {}", stderr(&output));
        assert!(output.stdout.is_empty(), "{bad:?}");
    }
    assert_eq!(api(&fleet).stats().api_requests, 0);
}

#[tokio::test]
async fn writes_without_apply_are_reported_but_not_made() {
    let fleet = mock(5, EquinixFaults::default()).await;
    let (device, _) = api(&fleet).devices();
    let user = api(&fleet).users()[0].uuid.clone();
    let ops: [&[&str]; 4] = [
        &["create", "--username", "dryrun", "--device", &device],
        &["set-password", &user],
        &["attach", &user, &device],
        &["detach", &user, &device],
    ];
    for op in ops {
        let output = ssh_users(&fleet, op, &CREDENTIALS).await;
        assert_eq!(code(&output), 0, "{op:?}: {}", stderr(&output));
        let row: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON row");
        assert_eq!(row["applied"], false, "{row}");
        assert!(stderr(&output).contains("--apply"));
    }
    assert_eq!(api(&fleet).stats().api_requests, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_is_created_found_and_detached_and_its_password_appears_nowhere() {
    const PASSWORD: &str = "Zq9_pw$X";
    let fleet = mock(5, EquinixFaults::default()).await;
    let (device, _) = api(&fleet).devices();
    let mut env = CREDENTIALS.to_vec();
    env.extend([("NEW_SSH_PASSWORD", PASSWORD), ("RUST_LOG", "trace")]);
    let mut everything = String::new();
    let mut step = |output: std::process::Output, want: i32| {
        everything.push_str(&String::from_utf8_lossy(&output.stdout));
        everything.push_str(&stderr(&output));
        assert_eq!(code(&output), want, "{}", stderr(&output));
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let args = ["available", "opsuser", "-vv"];
    step(ssh_users(&fleet, &args, &env).await, 0);
    let create = [
        "create",
        "--username",
        "opsuser",
        "--device",
        &device,
        "--password-env",
        "NEW_SSH_PASSWORD",
        "--apply",
        "-vv",
    ];
    let created = step(ssh_users(&fleet, &create, &env).await, 0);
    let row: serde_json::Value = serde_json::from_str(&created).expect("row");
    assert_eq!(row["applied"], true);
    let uuid = row["user_uuid"].as_str().expect("uuid").to_owned();
    step(ssh_users(&fleet, &["available", "opsuser"], &env).await, 1);
    let got = step(
        ssh_users(&fleet, &["get", &uuid, "--format", "csv"], &env).await,
        0,
    );
    assert!(got.contains("opsuser"), "{got}");
    let set = [
        "set-password",
        &uuid,
        "--password-env",
        "NEW_SSH_PASSWORD",
        "--apply",
        "-vv",
    ];
    step(ssh_users(&fleet, &set, &env).await, 0);
    // Its only device: the API would delete the user with it, so not without being told.
    let refused = ssh_users(&fleet, &["detach", &uuid, &device, "--apply"], &env).await;
    assert!(
        stderr(&refused).contains("last device of user"),
        "{}",
        stderr(&refused)
    );
    step(refused, 2);
    assert!(
        api(&fleet).users().iter().any(|u| u.uuid == uuid),
        "still there"
    );
    let detach = ["detach", &uuid, &device, "--apply", "--allow-user-deletion"];
    let detached = step(ssh_users(&fleet, &detach, &env).await, 0);
    let row: serde_json::Value = serde_json::from_str(&detached).expect("row");
    assert_eq!(
        (
            row["user_deleted"].as_bool(),
            row["association_deleted"].as_bool()
        ),
        (Some(true), Some(true))
    );
    step(ssh_users(&fleet, &["get", &uuid], &env).await, 2);
    assert!(!everything.contains(PASSWORD), "the password leaked");
    assert!(
        !everything.contains("sim-secret"),
        "the client secret leaked"
    );
}

#[tokio::test]
async fn a_password_comes_from_an_environment_variable_or_a_terminal_only() {
    let fleet = mock(5, EquinixFaults::default()).await;
    let (device, _) = api(&fleet).devices();
    let create = [
        "create",
        "--username",
        "nopass",
        "--device",
        &device,
        "--apply",
    ];
    let output = ssh_users(&fleet, &create, &CREDENTIALS).await;
    assert_eq!(code(&output), 2);
    assert!(
        stderr(&output).contains("--password-env"),
        "{}",
        stderr(&output)
    );
    let unset = [&create[..], &["--password-env", "UNSET_VAR"]].concat();
    let output = ssh_users(&fleet, &unset, &CREDENTIALS).await;
    assert_eq!(code(&output), 2);
    assert!(stderr(&output).contains("UNSET_VAR"), "{}", stderr(&output));
    assert_eq!(api(&fleet).stats().api_requests, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bulk_detach_removes_one_user_from_every_device() {
    let fleet = mock(300, EquinixFaults::default()).await;
    let target = api(&fleet)
        .users()
        .into_iter()
        .find(|u| u.devices.len() >= 2)
        .expect("a user on several devices");
    let dir = tempfile::tempdir().expect("dir");
    let out = dir.path().join("detach.jsonl");
    let out_arg = out.display().to_string();
    let argv = [
        "detach",
        "--username",
        &target.username,
        "--all-devices",
        "--apply",
        "--rate",
        "50/s",
        "-o",
        &out_arg,
    ];
    // Every device of the user: the API deletes the account with its last one, so the run
    // says so and sends nothing without --allow-user-deletion.
    let refused = ssh_users(&fleet, &argv, &CREDENTIALS).await;
    assert_eq!(code(&refused), 2, "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("deletes 1 account(s)"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(api(&fleet).users().len(), 300, "nothing detached");
    let allowed = [&argv[..], &["--allow-user-deletion"]].concat();
    let output = ssh_users(&fleet, &allowed, &CREDENTIALS).await;
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let rows = read_jsonl(&out);
    assert_eq!(rows.len(), target.devices.len());
    for (row, device) in rows.iter().zip(&target.devices) {
        assert_eq!(row["device_uuid"], device.as_str());
        assert_eq!(row["applied"], true);
    }
    assert_eq!(
        rows.last().map(|r| r["user_deleted"].clone()),
        Some(true.into())
    );
    assert!(api(&fleet).users().iter().all(|u| u.uuid != target.uuid));
    let others = api(&fleet).users().len();
    assert_eq!(others, 299);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_announces_the_mock_api_in_its_ready_line() {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_sshfleet"))
        .args([
            "sim",
            "--devices",
            "3",
            "--equinix-users",
            "120",
            "--latency",
            "5ms",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn sim");
    let ready = crate::support::ready_line(&mut child).await;
    assert!(
        ready.starts_with("ready devices=3 equinix=http://127.0.0.1:"),
        "{ready}"
    );
    let url = crate::support::url_in(&ready, "equinix");
    let argv: Vec<String> = [
        "equinix",
        "ssh-users",
        "list",
        "--endpoint",
        url,
        "--format",
        "csv",
        "--page-size",
        "25",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let output = run(&argv, &CREDENTIALS).await;
    assert_eq!(code(&output), 1, "{}", stderr(&output));
    assert_eq!(String::from_utf8_lossy(&output.stdout).lines().count(), 121);
    child.start_kill().expect("kill");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_during_the_first_page_exits_130_at_once_with_the_report_closed() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
    let dir = tempfile::tempdir().expect("dir");
    let out = dir.path().join("users.json");
    let out_arg = out.display().to_string();
    let list = [
        "equinix",
        "ssh-users",
        "list",
        "--endpoint",
        &endpoint,
        "-o",
        &out_arg,
    ];
    let child = command(&args(&list), &CREDENTIALS)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    // The token request of the first page arrives and is never answered (the default
    // timeout and retries would keep the listing waiting for about 19 s).
    let (mut api, _) = tokio::time::timeout(std::time::Duration::from_secs(30), listener.accept())
        .await
        .expect("the listing connects")
        .expect("accept");
    let mut buf = [0u8; 4096];
    let _ = api.read(&mut buf).await.expect("request");
    // Within the grace period, far below the ~19 s the request deadline would take.
    let output = crate::support::interrupt_and_wait(child).await;
    let err = stderr(&output);
    assert_eq!(code(&output), 130, "{err}");
    assert!(err.contains("stopping the listing"), "{err}");
    assert!(err.contains("pages in flight are abandoned"), "{err}");
    assert!(err.contains("the users written so far"), "{err}");
    assert!(!err.contains("devices in flight"), "{err}");
    // The report is closed properly: an empty JSON array, not a truncated file.
    let report = std::fs::read_to_string(&out).expect("report");
    let parsed: serde_json::Value = serde_json::from_str(&report).expect("valid JSON");
    assert_eq!(parsed, serde_json::json!([]));
    let _ = api.shutdown().await;
}

#[tokio::test]
async fn a_listing_the_api_does_not_advance_exits_1_and_says_it_is_incomplete() {
    let faults = EquinixFaults {
        ignore_offset: true,
        ..EquinixFaults::default()
    };
    let fleet = mock(1_000, faults).await;
    // Brief users carry no audit flags: only the incomplete listing can make the exit 1.
    // Even with -q, the incomplete listing is said on stderr.
    let output = ssh_users(&fleet, &["list", "--verbose=false", "-q"], &CREDENTIALS).await;
    let err = stderr(&output);
    assert_eq!(code(&output), 1, "{err}");
    assert!(err.contains("warning: the page at offset 100"), "{err}");
    assert!(err.contains("ignore `offset`"), "{err}");
    assert!(err.contains("100 of a total of 1000"), "{err}");
    assert!(err.contains("the listing is incomplete"), "{err}");
    let first_page: Vec<String> = api(&fleet).users()[..100]
        .iter()
        .map(|u| u.uuid.clone())
        .collect();
    assert_eq!(stdout_uuids(&output), first_page, "each user once");
    assert!(api(&fleet).stats().list_requests <= 2 + 8);
}

/// The `uuid` of every JSON Lines row on stdout, in order.
fn stdout_uuids(output: &std::process::Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| {
            let row: serde_json::Value = serde_json::from_str(line).expect("a JSON row");
            row["uuid"].as_str().expect("uuid").to_owned()
        })
        .collect()
}

#[tokio::test]
async fn a_listing_short_of_the_apis_total_exits_1_with_a_warning() {
    let faults = EquinixFaults {
        total_overstated_by: 900,
        ..EquinixFaults::default()
    };
    let fleet = mock(100, faults).await;
    let output = ssh_users(&fleet, &["list", "--verbose=false", "-q"], &CREDENTIALS).await;
    let err = stderr(&output);
    assert_eq!(code(&output), 1, "{err}");
    assert!(
        err.contains("warning: the page at offset 100 is empty or short"),
        "{err}"
    );
    assert!(err.contains("total is 1000"), "{err}");
    assert!(err.contains("the report holds the 100 users"), "{err}");
    let expected: Vec<String> = api(&fleet).users().into_iter().map(|u| u.uuid).collect();
    assert_eq!(stdout_uuids(&output), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_ends_a_wait_for_the_token_endpoint_and_exits_130() {
    use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _};
    let faults = EquinixFaults {
        // Within the longest wait: the client sleeps 50 s before asking again.
        token_throttle: Some("50".into()),
        ..EquinixFaults::default()
    };
    let fleet = mock(5, faults).await;
    let url = fleet.equinix_url().expect("url");
    let detach = [
        "equinix",
        "ssh-users",
        "detach",
        "--all-devices",
        "--username",
        "someone",
        "--endpoint",
        &url,
        "-vv",
    ];
    // Debug logging (-vv) says when the client starts its wait: the signal is sent only then.
    let mut child = command(&args(&detach), &CREDENTIALS)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut lines = tokio::io::BufReader::new(child.stderr.take().expect("piped")).lines();
    let mut err = String::new();
    let waiting = async {
        while let Some(line) = lines.next_line().await.expect("stderr") {
            err.push_str(&line);
            err.push('\n');
            if line.contains("token request retried") {
                return true;
            }
        }
        false
    };
    let waiting = tokio::time::timeout(std::time::Duration::from_secs(20), waiting).await;
    assert_eq!(waiting, Ok(true), "the client announces its wait: {err}");
    assert_eq!(api(&fleet).stats().token_requests, 1);
    // Within the grace period, far below the client's 50 s wait.
    let output = crate::support::interrupt_and_wait(child).await;
    let _ = lines.into_inner().read_to_string(&mut err).await;
    assert_eq!(code(&output), 130, "{err}");
    assert!(err.contains("interrupted"), "{err}");
    assert_eq!(
        api(&fleet).stats().token_requests,
        1,
        "no second token request"
    );
}
