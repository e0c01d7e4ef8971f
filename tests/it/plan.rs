//! Saved plans: the plan a reviewer approved is what is applied — devices not in it are
//! never written, devices changed since are `stale`, and an edited, old or mismatched plan
//! is refused before anything is sent.

use serde_json::Value;
use sshfleet_sim::{FaultProfile, SimConfig};

use crate::remediate::{all_writes, remediate};
use crate::support::{code, stderr, TestFleet};

fn action_of<'a>(records: &'a [Value], address: &str) -> &'a Value {
    &records
        .iter()
        .find(|r| r["address"] == address)
        .unwrap_or_else(|| panic!("no record for {address}"))["action"]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_plan_is_applied_exactly() {
    let fleet = TestFleet::start(SimConfig {
        devices: 20,
        seed: 51,
        faults: FaultProfile::None,
        ..SimConfig::default()
    })
    .await;
    for i in 0..fleet.fleet.len() {
        fleet.fleet.set_ssh_enabled(i, i < 6);
    }
    let plan = fleet.path("plan.json");
    let plan_arg = plan.display().to_string();
    let (output, planned) = remediate(&fleet, "plan.jsonl", &["--plan-out", &plan_arg]).await;
    assert_eq!(code(&output), 1, "{}", stderr(&output));
    assert_eq!(planned.iter().filter(|r| r["action"] == "set").count(), 6);
    assert!(
        all_writes(&fleet).iter().all(Vec::is_empty),
        "planning writes nothing"
    );
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&plan).unwrap()).unwrap();
    assert_eq!(saved["devices"].as_array().unwrap().len(), 6);
    assert_eq!(saved["checksum"].as_str().unwrap().len(), 64);

    // After approval, another client turns SSH on for camera 10 (not in the plan) and off
    // for camera 2 (in it).
    fleet.fleet.set_ssh_enabled(10, true);
    fleet.fleet.set_ssh_enabled(2, false);
    let (output, applied) = remediate(
        &fleet,
        "applied.jsonl",
        &["--plan", &plan_arg, "--apply", "--yes"],
    )
    .await;
    let err = stderr(&output);
    assert_eq!(code(&output), 1, "camera 10 is still a finding\n{err}");
    let address = |i: usize| fleet.fleet.address(i).to_owned();
    for i in [0, 1, 3, 4, 5] {
        assert_eq!(action_of(&applied, &address(i)), "set", "camera {i}");
    }
    assert_eq!(action_of(&applied, &address(2)), "stale");
    assert_eq!(action_of(&applied, &address(10)), "skip");
    let stranger = applied
        .iter()
        .find(|r| r["address"] == address(10))
        .unwrap();
    assert!(
        stranger["error"]
            .as_str()
            .unwrap()
            .contains("not in the saved plan"),
        "{stranger}"
    );
    let writes = all_writes(&fleet);
    for (i, w) in writes.iter().enumerate() {
        let expected = usize::from(matches!(i, 0 | 1 | 3 | 4 | 5));
        assert_eq!(w.len(), expected, "camera {i}: {w:?}");
    }
    assert!(fleet.fleet.snapshot()[10].ssh_enabled, "never written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_old_or_mismatched_plan_is_refused_before_anything_is_sent() {
    let fleet = TestFleet::start(SimConfig {
        devices: 8,
        seed: 52,
        faults: FaultProfile::None,
        ..SimConfig::default()
    })
    .await;
    for i in 0..fleet.fleet.len() {
        fleet.fleet.set_ssh_enabled(i, true);
    }
    let plan = fleet.path("plan.json");
    let plan_arg = plan.display().to_string();
    let (output, _) = remediate(&fleet, "plan.jsonl", &["--plan-out", &plan_arg]).await;
    assert_eq!(code(&output), 1, "{}", stderr(&output));
    let requests =
        |fleet: &TestFleet| -> u64 { fleet.fleet.snapshot().iter().map(|d| d.requests).sum() };
    let before = requests(&fleet);
    let apply = |extra: &'static [&'static str]| {
        let mut list = vec!["--plan", plan_arg.as_str(), "--apply", "--yes"];
        list.extend_from_slice(extra);
        list
    };

    // Any age is too old for a limit of 0 h.
    let (old, _) = remediate(&fleet, "old.jsonl", &apply(&["--plan-max-age", "0h"])).await;
    assert_eq!(code(&old), 2, "{}", stderr(&old));
    assert!(
        stderr(&old).contains("more than --plan-max-age"),
        "{}",
        stderr(&old)
    );

    let text = std::fs::read_to_string(&plan).unwrap();
    std::fs::write(
        &plan,
        text.replacen(
            "\"observed_enabled\": true",
            "\"observed_enabled\": false",
            1,
        ),
    )
    .unwrap();
    let (edited, _) = remediate(&fleet, "edited.jsonl", &apply(&[])).await;
    assert_eq!(code(&edited), 2, "{}", stderr(&edited));
    assert!(
        stderr(&edited).contains("changed after it was written"),
        "{}",
        stderr(&edited)
    );
    std::fs::write(&plan, &text).unwrap();

    // Another target, and another inventory, are refused too.
    let target = crate::support::run(
        &crate::support::args(&[
            "remediate",
            "--inventory",
            &fleet.inventory.display().to_string(),
            "--ssh",
            "enabled",
            "--plan",
            &plan_arg,
            "--apply",
            "--yes",
            "-o",
            &fleet.path("target.jsonl").display().to_string(),
        ]),
        &[("SSHFLEET_PASSWORD", crate::support::PASSWORD)],
    )
    .await;
    assert_eq!(code(&target), 2, "{}", stderr(&target));
    assert!(
        stderr(&target).contains("sets SSH disabled, not enabled"),
        "{}",
        stderr(&target)
    );
    let inventory = std::fs::read_to_string(&fleet.inventory).unwrap();
    let fewer: Vec<&str> = inventory
        .lines()
        .take(inventory.lines().count() - 1)
        .collect();
    std::fs::write(&fleet.inventory, fewer.join("\n") + "\n").unwrap();
    let (changed, _) = remediate(&fleet, "changed.jsonl", &apply(&[])).await;
    assert_eq!(code(&changed), 2, "{}", stderr(&changed));
    assert!(
        stderr(&changed).contains("inventory has changed"),
        "{}",
        stderr(&changed)
    );

    assert_eq!(requests(&fleet), before, "no refused plan sent a request");
    assert!(all_writes(&fleet).iter().all(Vec::is_empty));
}

/// `--plan-out` prints the command that applies the plan, and it runs as printed: the plan
/// records the inventory and target. A `--ssh` or an inventory that disagrees is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_plan_applies_alone_as_the_hint_says_and_disagreeing_flags_are_refused() {
    use crate::support::{args, run, PASSWORD};
    let fleet = TestFleet::start(SimConfig {
        devices: 6,
        seed: 52,
        faults: FaultProfile::None,
        ..SimConfig::default()
    })
    .await;
    for i in 0..fleet.fleet.len() {
        fleet.fleet.set_ssh_enabled(i, i < 3);
    }
    let plan = fleet.path("plan.json").display().to_string();
    let env = [("SSHFLEET_PASSWORD", PASSWORD)];
    let planned = run(
        &args(&[
            "remediate",
            "--inventory",
            &fleet.inventory.display().to_string(),
            "--ssh",
            "disabled",
            "--plan-out",
            &plan,
            "-o",
            &fleet.path("planned.jsonl").display().to_string(),
        ]),
        &env,
    )
    .await;
    let err = stderr(&planned);
    let hint = err
        .lines()
        .find_map(|l| {
            l.split_once("apply it with: ")
                .map(|(_, cmd)| cmd.to_owned())
        })
        .unwrap_or_else(|| panic!("no hint in {err}"));
    assert_eq!(hint, format!("sshfleet remediate --plan {plan} --apply"));
    let hinted: Vec<&str> = hint.split_whitespace().skip(1).collect();
    let with = |extra: &[&str], out: &str| {
        let mut list = hinted.clone();
        list.extend_from_slice(extra);
        let out = fleet.path(out).display().to_string();
        let mut list = args(&list);
        list.extend(args(&["--yes", "--quiet", "-o", &out]));
        list
    };
    let refused = run(&with(&["--ssh", "enabled"], "refused.jsonl"), &env).await;
    assert_eq!(code(&refused), 2, "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("leave out --ssh"),
        "{}",
        stderr(&refused)
    );
    let other = fleet.path("other.csv");
    std::fs::write(&other, format!("address\n{}\n", fleet.fleet.address(0))).unwrap();
    let other = other.display().to_string();
    let refused = run(&with(&["--inventory", &other], "refused.jsonl"), &env).await;
    assert_eq!(code(&refused), 2, "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("inventory has changed"),
        "{}",
        stderr(&refused)
    );
    assert!(
        all_writes(&fleet).iter().all(Vec::is_empty),
        "nothing written"
    );
    let applied = run(&with(&[], "applied.jsonl"), &env).await;
    assert_eq!(code(&applied), 0, "{}", stderr(&applied));
    for (i, device) in fleet.fleet.snapshot().iter().enumerate() {
        assert!(!device.ssh_enabled, "camera {i} disabled");
        assert_eq!(device.writes.len(), usize::from(i < 3), "camera {i}");
    }
}

/// A new approved plan applied with the journal of an earlier plan's finished run is a new
/// run: the camera it lists is read and written (it used to be reported from the old journal,
/// unread). A plan applied over another plan's unfinished run is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_plan_with_an_old_journal_is_a_new_run_and_an_unfinished_one_is_refused() {
    use crate::remediate::{cut_short, row_of};
    let fleet = TestFleet::start(SimConfig {
        devices: 4,
        seed: 53,
        faults: FaultProfile::None,
        ..SimConfig::default()
    })
    .await;
    for i in 0..fleet.fleet.len() {
        fleet.fleet.set_ssh_enabled(i, true);
    }
    let journal = fleet.path("j.jsonl");
    let j = journal.display().to_string();
    let plan_and_apply = |name: &'static str| {
        let plan = fleet.path(name).display().to_string();
        let fleet = &fleet;
        let j = j.clone();
        async move {
            let (planned, _) = remediate(fleet, "planned.jsonl", &["--plan-out", &plan]).await;
            assert_eq!(code(&planned), 1, "{}", stderr(&planned));
            let apply = ["--plan", &plan, "--apply", "--yes", "--journal", &j];
            remediate(fleet, "applied.jsonl", &apply).await
        }
    };
    let (first, _) = plan_and_apply("a.json").await;
    assert_eq!(code(&first), 0, "{}", stderr(&first));
    fleet.fleet.set_ssh_enabled(1, true);
    let (second, applied) = plan_and_apply("b.json").await;
    assert_eq!(code(&second), 0, "{}", stderr(&second));
    let camera_1 = &fleet.fleet.snapshot()[1];
    assert!(!camera_1.ssh_enabled, "written by the new plan's run");
    assert_eq!(camera_1.writes.len(), 2);
    let row = row_of(&fleet, &applied, 1);
    assert_eq!(row["action"], "set", "{row}");
    assert_eq!(row["before"], true, "{row}");
    assert_eq!(row["verified"], true, "{row}");
    cut_short(&journal);
    fleet.fleet.set_ssh_enabled(2, true);
    let (third, _) = plan_and_apply("c.json").await;
    assert_eq!(code(&third), 2, "{}", stderr(&third));
    assert!(stderr(&third).contains("another run"), "{}", stderr(&third));
    assert!(fleet.fleet.snapshot()[2].ssh_enabled, "nothing written");
}
