//! `equinix ssh-users remediate` against a dishonest API: a detach counts only when a read
//! shows it, no user is deleted unless asked, users listed without their devices are read
//! before they are judged, and `--apply` asks first. Judged from what the mock holds.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::Value;
use sshfleet_sim::{EquinixFaults, Fleet};

use crate::equinix_policy::{case, detaches, key, remediate, unapproved, with_status};
use crate::equinix_support::{api, mock_with_latency};
use crate::support::{code, read_jsonl, stderr};

/// `--apply --yes` at 200/s with a journal and a JSON Lines report in `dir`, plus `extra`.
async fn apply(
    fleet: &Fleet,
    dir: &tempfile::TempDir,
    policy: &str,
    extra: &[&str],
) -> (std::process::Output, Vec<Value>) {
    let name = format!("run{}", fastrand::u32(..));
    let out = dir.path().join(format!("{name}.jsonl"));
    let journal = dir.path().join(format!("{name}.journal.jsonl"));
    let (out_arg, journal_arg) = (out.display().to_string(), journal.display().to_string());
    let mut argv = vec![
        "--policy",
        policy,
        "--apply",
        "--yes",
        "-o",
        &out_arg,
        "--journal",
        &journal_arg,
    ];
    if !extra.contains(&"--rate") {
        argv.extend(["--rate", "200/s"]);
    }
    argv.extend_from_slice(extra);
    let output = remediate(fleet, &argv).await;
    let rows = if out.exists() {
        read_jsonl(&out)
    } else {
        Vec::new()
    };
    (output, rows)
}

/// The `user/device` keys of the mock's current associations.
fn associations(fleet: &Fleet) -> HashSet<String> {
    api(fleet)
        .users()
        .iter()
        .flat_map(|u| u.devices.iter().map(move |d| format!("{}/{d}", u.uuid)))
        .collect()
}

fn users(fleet: &Fleet) -> HashSet<String> {
    api(fleet).users().into_iter().map(|u| u.uuid).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_without_device_uuids_is_never_taken_for_a_detach() {
    let faults = EquinixFaults {
        read_without_devices: true,
        ..EquinixFaults::default()
    };
    let (fleet, expected, dir, policy) = case(40, faults).await;
    let before = associations(&fleet);
    // Without --allow-user-deletion nothing can be known to keep its user: all held.
    let (held, rows) = apply(&fleet, &dir, &policy, &[]).await;
    assert_eq!(code(&held), 1, "{}", stderr(&held));
    assert_eq!(rows.len(), expected.len());
    assert!(rows.iter().all(|r| r["status"] == "held"), "{rows:?}");
    assert_eq!(associations(&fleet), before, "nothing was sent");
    assert!(detaches(&fleet).0.is_empty());
    // Allowed: every detach is sent, and none can be verified by a read without devices.
    let (sent, rows) = apply(&fleet, &dir, &policy, &["--allow-user-deletion"]).await;
    assert_eq!(code(&sent), 1, "{}", stderr(&sent));
    assert_eq!(rows.len(), expected.len());
    for row in &rows {
        let detail = row["detail"].as_str().unwrap_or_default();
        match row["status"].as_str() {
            // The API said it deleted the user, and the user is gone: that is evidence.
            Some("detached") => assert!(detail.contains("deleted the user"), "{row}"),
            Some("unverified") => assert!(detail.contains("no deviceUuids"), "{row}"),
            other => panic!("{other:?}: {row}"),
        }
    }
    assert!(!with_status(&rows, "unverified").is_empty());
    assert!(stderr(&sent).contains("unverified"), "{}", stderr(&sent));
    assert!(
        unapproved(&api(&fleet).users()).is_empty(),
        "the mock did detach"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_404_read_back_counts_only_when_the_detach_said_it_deleted_the_user() {
    let faults = EquinixFaults {
        read_not_found: true,
        ..EquinixFaults::default()
    };
    let (fleet, expected, dir, policy) = case(40, faults).await;
    let (output, rows) = apply(&fleet, &dir, &policy, &["--allow-user-deletion"]).await;
    assert_eq!(code(&output), 1, "{}", stderr(&output));
    assert_eq!(rows.len(), expected.len());
    let left = users(&fleet);
    for row in &rows {
        let user = row["user_uuid"].as_str().expect("user");
        match row["status"].as_str() {
            Some("detached") => {
                assert!(!left.contains(user), "{row}");
                assert_eq!(row["deletes_user"], true, "{row}");
            }
            Some("unverified") => assert!(
                row["detail"].as_str().is_some_and(|d| d.contains("404")),
                "{row}"
            ),
            other => panic!("{other:?}: {row}"),
        }
    }
    assert!(!with_status(&rows, "unverified").is_empty());
    assert!(!with_status(&rows, "detached").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_detach_applied_but_answered_500_is_read_back_and_counted_when_gone() {
    let faults = EquinixFaults {
        detach_applied_then_500_every: Some(1),
        ..EquinixFaults::default()
    };
    let (fleet, expected, dir, policy) = case(40, faults).await;
    let (output, rows) = apply(&fleet, &dir, &policy, &["--allow-user-deletion"]).await;
    assert_eq!(rows.len(), expected.len(), "{}", stderr(&output));
    assert!(unapproved(&api(&fleet).users()).is_empty(), "all applied");
    for row in &rows {
        // A detach read back with the user still there, without the device: detached. The
        // detach that deleted its user, answered 500, cannot be told from a wrong 404.
        let status = if row["deletes_user"] == true {
            "unverified"
        } else {
            "detached"
        };
        assert_eq!(row["status"], status, "{row}");
    }
    assert!(!with_status(&rows, "detached").is_empty());
    assert_eq!(code(&output), 1, "{}", stderr(&output));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_listed_without_devices_are_read_before_they_are_judged() {
    let faults = EquinixFaults {
        listed_without_devices_every: Some(3),
        ..EquinixFaults::default()
    };
    let (fleet, expected, dir, policy) = case(60, faults).await;
    let out = dir.path().join("plan.jsonl");
    let output = remediate(
        &fleet,
        &["--policy", &policy, "-o", &out.display().to_string()],
    )
    .await;
    assert_eq!(code(&output), 1, "{}", stderr(&output));
    let planned: HashSet<String> = read_jsonl(&out).iter().map(key).collect();
    assert_eq!(
        planned, expected,
        "every unapproved association, none left out"
    );
    assert!(
        stderr(&output).contains("60 users listed"),
        "{}",
        stderr(&output)
    );

    // Devices shown nowhere: the survey is refused, nothing planned or written.
    let faults = EquinixFaults {
        listed_without_devices_every: Some(3),
        read_without_devices: true,
        ..EquinixFaults::default()
    };
    let (fleet, _, dir, policy) = case(60, faults).await;
    let out = dir.path().join("refused.jsonl");
    std::fs::write(&out, "earlier report\n").expect("earlier");
    let output = remediate(
        &fleet,
        &["--policy", &policy, "-o", &out.display().to_string()],
    )
    .await;
    assert_eq!(code(&output), 1, "{}", stderr(&output));
    let err = stderr(&output);
    assert!(
        err.contains("20 user(s) came without their devices"),
        "{err}"
    );
    assert!(err.contains("no detach was planned"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&out).expect("out"),
        "earlier report\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_detach_that_deletes_a_user_is_marked_and_held_unless_allowed() {
    let (fleet, expected, dir, policy) = case(60, EquinixFaults::default()).await;
    let doomed: HashSet<String> = api(&fleet)
        .users()
        .iter()
        .filter(|u| !crate::equinix_policy::allowed(u) && !u.devices.is_empty())
        .map(|u| u.uuid.clone())
        .collect();
    assert!(doomed.len() >= 10, "users to delete: {}", doomed.len());
    // The dry run marks one detach per deleted user, in the report, plan and summary.
    let plan = dir.path().join("plan.json");
    let out = dir.path().join("dry.jsonl");
    let argv = [
        "--policy",
        &policy,
        "--plan-out",
        &plan.display().to_string(),
        "-o",
        &out.display().to_string(),
    ];
    let dry = remediate(&fleet, &argv).await;
    assert_eq!(code(&dry), 1, "{}", stderr(&dry));
    let marked: Vec<String> = read_jsonl(&out)
        .iter()
        .filter(|r| r["deletes_user"] == true)
        .map(|r| r["user_uuid"].as_str().expect("user").to_owned())
        .collect();
    assert_eq!(marked.iter().cloned().collect::<HashSet<_>>(), doomed);
    assert_eq!(marked.len(), doomed.len(), "one per user");
    let summary = format!("will delete {} user(s)", doomed.len());
    assert!(stderr(&dry).contains(&summary), "{}", stderr(&dry));
    let saved: Value =
        serde_json::from_str(&std::fs::read_to_string(&plan).expect("plan")).expect("json");
    let in_plan = saved["detaches"]
        .as_array()
        .expect("detaches")
        .iter()
        .filter(|d| d["deletes_user"] == true)
        .count();
    assert_eq!(in_plan, doomed.len());

    // Applied without --allow-user-deletion: no user is deleted, the rest is detached.
    let (held, rows) = apply(&fleet, &dir, &policy, &[]).await;
    assert_eq!(code(&held), 1, "{}", stderr(&held));
    assert_eq!(users(&fleet).intersection(&doomed).count(), doomed.len());
    assert_eq!(with_status(&rows, "held").len(), doomed.len());
    for user in api(&fleet)
        .users()
        .iter()
        .filter(|u| doomed.contains(&u.uuid))
    {
        assert_eq!(
            user.devices.len(),
            1,
            "only the last device stays: {user:?}"
        );
    }
    let left = unapproved(&api(&fleet).users());
    assert_eq!(left.len(), doomed.len());
    assert!(left.is_subset(&expected));

    // Allowed: they go, and the run says that nothing can restore them.
    let (gone, rows) = apply(&fleet, &dir, &policy, &["--allow-user-deletion"]).await;
    assert_eq!(code(&gone), 0, "{}", stderr(&gone));
    assert_eq!(with_status(&rows, "detached").len(), doomed.len());
    assert_eq!(users(&fleet).intersection(&doomed).count(), 0);
    let err = stderr(&gone);
    assert!(
        err.contains(&format!("{} user(s) deleted", doomed.len())) && err.contains("no revert"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_off_a_terminal_needs_yes_and_sends_nothing_without_it() {
    let (fleet, _, dir, policy) = case(20, EquinixFaults::default()).await;
    let out = dir.path().join("out.jsonl");
    let argv = [
        "--policy",
        &policy,
        "--apply",
        "-o",
        &out.display().to_string(),
    ];
    let output = remediate(&fleet, &argv).await;
    assert_eq!(code(&output), 2, "{}", stderr(&output));
    assert!(
        stderr(&output).contains("--apply needs --yes"),
        "{}",
        stderr(&output)
    );
    assert_eq!(api(&fleet).stats().api_requests, 0, "nothing sent");
    assert!(!out.exists(), "no report opened");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detaches_run_concurrently_under_the_rate_with_progress_lines_off_a_terminal() {
    // Each answer takes 40 ms: one detach at a time (read, detach, read back) would make
    // about 8 a second, far below the rate.
    let faults = EquinixFaults::default();
    let fleet = mock_with_latency(120, faults, Duration::from_millis(40)).await;
    let expected = unapproved(&api(&fleet).users());
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("policy.toml");
    std::fs::write(&path, crate::equinix_policy::POLICY).expect("policy");
    let policy = path.display().to_string();
    let (output, rows) = apply(
        &fleet,
        &dir,
        &policy,
        &["--allow-user-deletion", "--rate", "100/s"],
    )
    .await;
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(rows.len(), expected.len());
    assert!(
        api(&fleet).stats().max_in_flight > 1,
        "{:?}",
        api(&fleet).stats()
    );
    let (counts, times) = detaches(&fleet);
    assert!(counts.values().all(|&n| n == 1));
    // Never faster than the rate: 100/s is one detach every 10 ms at the most.
    let span = times.last().expect("last").duration_since(times[0]);
    let least = Duration::from_millis(10 * (times.len() as u64 - 1) * 9 / 10);
    assert!(span >= least, "{} detaches in {span:?}", times.len());
    let last = format!("progress: {n}/{n} associations", n = expected.len());
    assert!(stderr(&output).contains(&last), "{}", stderr(&output));
}
