//! `sshfleet equinix ssh-users remediate --policy`: the real binary against the mock API,
//! judged from the mock's own state and request log — exactly the unapproved associations
//! detached, once each, under the rate limit; saved plans sealed; waves stopped by the
//! failure budget; read-backs that catch detaches that did not stick; orphans reported.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde_json::Value;
use sshfleet_rollout::waves::Waves;
use sshfleet_sim::{EquinixFaults, Fleet, MockUser};

use crate::equinix_support::{api, mock};
use crate::support::{code, eventually, read_jsonl, run, stderr};

pub(crate) const CREDENTIALS: [(&str, &str); 2] = [
    ("EQUINIX_API_CLIENTID", "sim-client"),
    ("EQUINIX_API_CLIENTSECRET", "sim-secret"),
];

/// Users `user00001`–`user00009` anywhere; `user0001x` only if in pod `sv5.pod1`.
pub(crate) const POLICY: &str = r#"# who may keep SSH access
[[allow]]
id = "first-nine"
users = ["user0000?"]
devices = ["*"]

[[allow]]
id = "sv5"
users = ["user0001*"]
metros = ["sv5.pod1"]
"#;

/// The test's own reading of [`POLICY`], independent of the crate's matcher.
pub(crate) fn allowed(user: &MockUser) -> bool {
    let name = &user.username;
    let first_nine = name.len() == 9 && name.starts_with("user0000");
    let sv5 = name.starts_with("user0001") && user.metros.iter().any(|(m, _)| m == "sv5.pod1");
    first_nine || sv5
}

/// `user_uuid/device_uuid` of every association the policy does not allow.
pub(crate) fn unapproved(users: &[MockUser]) -> HashSet<String> {
    users
        .iter()
        .filter(|u| !allowed(u))
        .flat_map(|u| u.devices.iter().map(move |d| format!("{}/{d}", u.uuid)))
        .collect()
}

pub(crate) async fn remediate(fleet: &Fleet, extra: &[&str]) -> std::process::Output {
    let mut argv: Vec<String> = ["equinix", "ssh-users", "remediate", "--endpoint"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    argv.push(fleet.equinix_url().expect("url"));
    argv.extend(extra.iter().map(|s| s.to_string()));
    run(&argv, &CREDENTIALS).await
}

/// A mock of `users` users with `faults`, the associations [`POLICY`] does not allow, and
/// a directory holding the policy (and its path).
pub(crate) async fn case(
    users: usize,
    faults: EquinixFaults,
) -> (Fleet, HashSet<String>, tempfile::TempDir, String) {
    let fleet = mock(users, faults).await;
    let expected = unapproved(&api(&fleet).users());
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("policy.toml");
    std::fs::write(&path, POLICY).expect("policy");
    let policy = path.display().to_string();
    (fleet, expected, dir, policy)
}

/// Detach requests per `user/device`, and the arrival time of each, from the mock's log.
pub(crate) fn detaches(fleet: &Fleet) -> (HashMap<String, usize>, Vec<tokio::time::Instant>) {
    let mut counts = HashMap::new();
    let mut times = Vec::new();
    for request in api(fleet).requests() {
        let path = request.target.strip_prefix("/ne/v1/sshUsers/");
        let Some((user, device)) = path.and_then(|p| p.split_once("/devices/")) else {
            continue;
        };
        if request.method == "DELETE" {
            *counts.entry(format!("{user}/{device}")).or_insert(0) += 1;
            times.push(request.at);
        }
    }
    (counts, times)
}

pub(crate) fn key(row: &Value) -> String {
    format!(
        "{}/{}",
        row["user_uuid"].as_str().expect("user"),
        row["device_uuid"].as_str().expect("device")
    )
}

pub(crate) fn with_status<'a>(rows: &'a [Value], status: &str) -> Vec<&'a Value> {
    rows.iter().filter(|r| r["status"] == status).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_policy_run_detaches_exactly_the_unapproved_associations_once_each_under_the_limit() {
    let (fleet, expected, dir, policy) = case(60, EquinixFaults::default()).await;
    let before = api(&fleet).users();
    assert!(expected.len() >= 20, "a fleet with work to do");
    let out = dir.path().join("run.jsonl");
    let journal = dir.path().join("run.journal.jsonl");
    let argv = [
        "--policy",
        &policy,
        "--apply",
        "--yes",
        "--allow-user-deletion",
        "--rate",
        "40/s",
        "-o",
        &out.display().to_string(),
        "--journal",
        &journal.display().to_string(),
    ];
    let output = remediate(&fleet, &argv).await;
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let (counts, times) = detaches(&fleet);
    let sent: HashSet<String> = counts.keys().cloned().collect();
    assert_eq!(sent, expected, "exactly the unapproved associations");
    assert!(counts.values().all(|&n| n == 1), "once each: {counts:?}");
    let rows = read_jsonl(&out);
    assert_eq!(rows.len(), expected.len());
    assert!(rows.iter().all(|r| r["status"] == "detached"), "{rows:?}");
    // Every allowed association is still there; no unapproved one is.
    for user in &before {
        let now = api(&fleet)
            .users()
            .into_iter()
            .find(|u| u.uuid == user.uuid);
        match (allowed(user), now) {
            (true, Some(now)) => assert_eq!(now.devices, user.devices),
            (true, None) => panic!("allowed user {} is gone", user.username),
            (false, Some(now)) => assert!(now.devices.is_empty(), "{now:?}"),
            (false, None) => {}
        }
    }
    // 40/s with a burst of 1: one detach every 25 ms at the most.
    let span = times.last().expect("last").duration_since(times[0]);
    let least = Duration::from_millis(25 * (times.len() as u64 - 1) * 9 / 10);
    assert!(span >= least, "{} detaches in {span:?}", times.len());
}

/// `<--plan|--policy> <file> --apply --yes --allow-user-deletion --rate 100/s --journal
/// <journal>`.
fn applying<'a>(source: &'a str, file: &'a str, journal: &'a str) -> [&'a str; 9] {
    [
        source,
        file,
        "--apply",
        "--yes",
        "--allow-user-deletion",
        "--rate",
        "100/s",
        "--journal",
        journal,
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_plan_applies_once_and_a_rerun_with_its_finished_journal_reads_again_and_detaches_nothing_more(
) {
    let (fleet, expected, dir, policy) = case(50, EquinixFaults::default()).await;
    let plan = dir.path().join("plan.json").display().to_string();
    let journal = dir.path().join("j.jsonl").display().to_string();
    let planned = remediate(&fleet, &["--policy", &policy, "--plan-out", &plan, "-q"]).await;
    assert_eq!(code(&planned), 1, "detaches planned: {}", stderr(&planned));
    assert!(detaches(&fleet).0.is_empty(), "a dry run sends no detach");
    let apply = applying("--plan", &plan, &journal);
    let first = remediate(&fleet, &[&apply[..], &["-o", "/dev/null"]].concat()).await;
    assert_eq!(code(&first), 0, "{}", stderr(&first));
    let after_first = detaches(&fleet).0;
    assert_eq!(
        after_first.keys().cloned().collect::<HashSet<_>>(),
        expected
    );
    let out = dir.path().join("again.jsonl");
    let out_arg = out.display().to_string();
    let users_after_first = api(&fleet).users();
    let requests_before = api(&fleet).requests().len();
    let again = remediate(&fleet, &[&apply[..], &["-o", &out_arg]].concat()).await;
    assert_eq!(code(&again), 0, "{}", stderr(&again));
    // Nothing more was detached: the API holds what the first run left, and every detach
    // the rerun sent to check an association the API no longer has was answered 404.
    assert_eq!(
        api(&fleet).users(),
        users_after_first,
        "the rerun changed nothing"
    );
    let resent: Vec<_> = api(&fleet).requests()[requests_before..]
        .iter()
        .filter(|r| r.method == "DELETE")
        .map(|r| r.status)
        .collect();
    assert!(resent.iter().all(|&status| status == 404), "{resent:?}");
    // The first run finished, so its journal starts a new run: every association is read
    // again and reported as it is now (gone: stale), never as detached from the journal.
    let rows = read_jsonl(&out);
    assert_eq!(rows.len(), expected.len());
    assert!(rows.iter().all(|r| r["status"] == "stale"), "{rows:?}");
    let journal_text = std::fs::read_to_string(&journal).unwrap_or_default();
    assert_eq!(
        journal_text.matches("\"type\":\"finished\"").count(),
        2,
        "{journal_text}"
    );
    // The same plan without its journal finds every association gone: stale, not sent.
    let fresh = dir.path().join("fresh.jsonl").display().to_string();
    let out = dir.path().join("stale.jsonl");
    let out_arg = out.display().to_string();
    let stale = [&applying("--plan", &plan, &fresh)[..], &["-o", &out_arg]].concat();
    let users_before = api(&fleet).users();
    let requests_before = api(&fleet).requests().len();
    assert_eq!(code(&remediate(&fleet, &stale).await), 0);
    assert_eq!(
        with_status(&read_jsonl(&out), "stale").len(),
        expected.len()
    );
    // A 404 read alone is no evidence: the detach of a user that is gone is sent, and the
    // API's 404 to it too makes it stale. Nothing changed.
    assert_eq!(api(&fleet).users(), users_before);
    let resent: Vec<_> = api(&fleet).requests()[requests_before..]
        .iter()
        .filter(|r| r.method == "DELETE")
        .map(|r| r.status)
        .collect();
    assert!(resent.iter().all(|&status| status == 404), "{resent:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_with_an_edited_byte_or_another_policy_is_refused() {
    let (fleet, _, dir, policy) = case(40, EquinixFaults::default()).await;
    let plan_path = dir.path().join("plan.json");
    let plan = plan_path.display().to_string();
    let planned = remediate(&fleet, &["--policy", &policy, "--plan-out", &plan, "-q"]).await;
    assert_eq!(code(&planned), 1, "{}", stderr(&planned));
    let text = std::fs::read_to_string(&plan_path).expect("plan");
    let saved: Value = serde_json::from_str(&text).expect("json");
    let uuid = saved["detaches"][0]["device_uuid"].as_str().expect("uuid");
    let flipped = uuid.replacen(&uuid[..1], if uuid.starts_with('a') { "b" } else { "a" }, 1);
    std::fs::write(&plan_path, text.replacen(uuid, &flipped, 1)).expect("edit");
    let edited = remediate(&fleet, &["--plan", &plan, "--apply", "--yes"]).await;
    assert_eq!(code(&edited), 2);
    assert!(
        stderr(&edited).contains("changed after it was written"),
        "{}",
        stderr(&edited)
    );
    // Sealed again but with another policy named: refused too.
    std::fs::write(&plan_path, &text).expect("restore");
    let other = dir.path().join("other.toml");
    std::fs::write(&other, POLICY.replace("sv5.pod1", "da1.pod1")).expect("policy");
    let other = other.display().to_string();
    let mismatch = remediate(
        &fleet,
        &["--plan", &plan, "--policy", &other, "--apply", "--yes"],
    )
    .await;
    assert_eq!(code(&mismatch), 2);
    assert!(
        stderr(&mismatch).contains("not the one the plan"),
        "{}",
        stderr(&mismatch)
    );
    assert!(detaches(&fleet).0.is_empty(), "nothing sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waves_stop_after_the_wave_where_the_failure_budget_is_exceeded() {
    let faults = EquinixFaults {
        detach_refused_every: Some(2),
        ..EquinixFaults::default()
    };
    let (fleet, expected, dir, policy) = case(60, faults).await;
    let sizes = "1,10%,100%"
        .parse::<Waves>()
        .expect("waves")
        .sizes(expected.len());
    assert!(
        sizes[1] >= 3,
        "wave 2 holds at least two failures: {sizes:?}"
    );
    let out = dir.path().join("waves.jsonl");
    let journal = dir.path().join("waves.journal.jsonl").display().to_string();
    let waves = ["--waves", "1,10%,100%", "--max-failures", "1"];
    let out_arg = out.display().to_string();
    let policy_run = applying("--policy", &policy, &journal);
    let argv = [&policy_run[..], &waves, &["-o", &out_arg]].concat();
    let output = remediate(&fleet, &argv).await;
    assert_eq!(code(&output), 3, "{}", stderr(&output));
    assert!(stderr(&output).contains("exceeded --max-failures (1) after wave 2"));
    let rows = read_jsonl(&out);
    let (counts, _) = detaches(&fleet);
    let written: usize = counts.values().sum();
    assert_eq!(written, sizes[0] + sizes[1], "waves 1 and 2 only");
    for row in &rows {
        let wave = row["wave"].as_u64().expect("wave");
        let sent = counts.get(&key(row)).copied().unwrap_or(0);
        match row["status"].as_str() {
            Some("detached" | "failed") => assert!(wave <= 2 && sent == 1, "{row}"),
            Some("deferred") => assert!(wave == 3 && sent == 0, "{row}"),
            other => panic!("unexpected status {other:?}"),
        }
    }
    assert_eq!(with_status(&rows, "deferred").len(), sizes[2]);
    assert!(with_status(&rows, "failed").len() >= 2);
    // The journal remembers the stop: a rerun goes on only when told.
    let again = remediate(&fleet, &argv).await;
    assert_eq!(code(&again), 2);
    assert!(
        stderr(&again).contains("--continue-after-failures"),
        "{}",
        stderr(&again)
    );
    assert_eq!(detaches(&fleet).0, counts);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_detach_that_does_not_stick_is_failed_by_its_read_back() {
    let faults = EquinixFaults {
        detach_unstuck_every: Some(1),
        ..EquinixFaults::default()
    };
    let (fleet, expected, dir, policy) = case(20, faults).await;
    let out = dir.path().join("unstuck.jsonl");
    let journal = dir
        .path()
        .join("unstuck.journal.jsonl")
        .display()
        .to_string();
    let argv = applying("--policy", &policy, &journal);
    let output = remediate(
        &fleet,
        &[&argv[..], &["-o", &out.display().to_string()]].concat(),
    )
    .await;
    assert_eq!(code(&output), 1, "{}", stderr(&output));
    let rows = read_jsonl(&out);
    assert_eq!(rows.len(), expected.len());
    for row in &rows {
        assert_eq!(row["status"], "failed", "{row}");
        let detail = row["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains("read-back still shows the device"),
            "{detail}"
        );
    }
    assert_eq!(
        unapproved(&api(&fleet).users()),
        expected,
        "nothing was detached"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_policy_exits_2_naming_the_file_the_line_and_the_field() {
    let fleet = mock(10, EquinixFaults::default()).await;
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[[allow]]\nusers = [\"ops\"]\nhosts = [\"*\"]\n").expect("policy");
    let output = remediate(&fleet, &["--policy", &path.display().to_string()]).await;
    assert_eq!(code(&output), 2);
    let err = stderr(&output);
    assert!(
        err.contains(&format!("{}, line 3", path.display())),
        "{err}"
    );
    assert!(err.contains("hosts"), "{err}");
    std::fs::write(
        &path,
        "[[allow]]\nusers = [\"ops\"]\ndevices = [\"dev[0-9]\"]\n",
    )
    .expect("p");
    let output = remediate(&fleet, &["--policy", &path.display().to_string()]).await;
    assert_eq!(code(&output), 2);
    let err = stderr(&output);
    assert!(
        err.contains("line 3: allow rule #1: `devices` glob"),
        "{err}"
    );
    assert_eq!(
        api(&fleet).stats().api_requests,
        0,
        "refused before any request"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphans_lists_exactly_the_users_on_no_device_and_changes_nothing() {
    let fleet = mock(400, EquinixFaults::default()).await;
    let orphans: HashSet<String> = api(&fleet)
        .users()
        .into_iter()
        .filter(|u| u.devices.is_empty())
        .map(|u| u.uuid)
        .collect();
    assert!(!orphans.is_empty(), "the mock has orphans");
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("all.toml");
    std::fs::write(&path, "[[allow]]\nusers = [\"*\"]\ndevices = [\"*\"]\n").expect("policy");
    let policy = path.display().to_string();
    // Everyone allowed: nothing to do, exit 0.
    let clean = remediate(&fleet, &["--policy", &policy, "-o", "/dev/null"]).await;
    assert_eq!(code(&clean), 0, "{}", stderr(&clean));
    let out = dir.path().join("orphans.csv");
    let argv = [
        "--policy",
        &policy,
        "--orphans",
        "--apply",
        "--yes",
        "--allow-user-deletion",
        "-o",
        &out.display().to_string(),
    ];
    let output = remediate(&fleet, &argv).await;
    assert_eq!(
        code(&output),
        1,
        "orphans are findings: {}",
        stderr(&output)
    );
    let mut reader = csv::Reader::from_path(&out).expect("csv");
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("row")).collect();
    assert!(
        rows.iter().all(|r| &r[0] == "orphan" && r[3].is_empty()),
        "{rows:?}"
    );
    let listed: HashSet<String> = rows.iter().map(|r| r[1].to_owned()).collect();
    assert_eq!(listed, orphans);
    assert_eq!(rows.len(), orphans.len());
    assert!(detaches(&fleet).0.is_empty(), "orphans are never written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_mid_wave_resumes_from_its_journal_detaching_each_association_once() {
    let (fleet, expected, dir, policy) = case(50, EquinixFaults::default()).await;
    let plan = dir.path().join("plan.json").display().to_string();
    let planned = remediate(&fleet, &["--policy", &policy, "--plan-out", &plan, "-q"]).await;
    assert_eq!(code(&planned), 1, "{}", stderr(&planned));
    let journal = dir
        .path()
        .join("killed.journal.jsonl")
        .display()
        .to_string();
    let endpoint = fleet.equinix_url().expect("url");
    let apply = |rate: &str| -> Vec<String> {
        [
            "equinix",
            "ssh-users",
            "remediate",
            "--endpoint",
            &endpoint,
            "--plan",
            &plan,
            "--apply",
            "--yes",
            "--allow-user-deletion",
            "--rate",
            rate,
            "--journal",
            &journal,
            "-o",
            "/dev/null",
            "-q",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_sshfleet"))
        .args(apply("20/s"))
        .envs(CREDENTIALS)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn");
    let reached = eventually(|| detaches(&fleet).1.len() >= 5, Duration::from_secs(10)).await;
    assert!(reached, "the run got going");
    child.start_kill().expect("SIGKILL");
    let _ = child.wait().await;
    let before_rerun = detaches(&fleet).1.len();
    assert!(before_rerun < expected.len(), "killed before the end");
    let output = run(&apply("100/s"), &CREDENTIALS).await;
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let (counts, _) = detaches(&fleet);
    assert_eq!(counts.keys().cloned().collect::<HashSet<_>>(), expected);
    assert!(counts.values().all(|&n| n == 1), "once each: {counts:?}");
    assert!(unapproved(&api(&fleet).users()).is_empty());
}
