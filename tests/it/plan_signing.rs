//! Approval that means something: a plan signed by an approver with the real OpenSSH
//! `ssh-keygen -Y sign` is applied under `--plan-signers`; an unsigned plan, one edited and
//! resealed by someone else (its checksum recomputed), one signed by a key not allowed or in
//! another namespace, are refused before anything is sent. A plan from the future is refused.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use sshfleet_rollout::plan::Plan;
use sshfleet_sim::{FaultProfile, SimConfig};

use crate::remediate::{all_writes, remediate};
use crate::support::{args, code, read_jsonl, run, stderr, TestFleet, PASSWORD};

fn ssh_keygen(args: &[&str]) {
    let out = Command::new("ssh-keygen")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("ssh-keygen runs (Debian package openssh-client): {e}"));
    assert!(
        out.status.success(),
        "ssh-keygen {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A new ed25519 key pair at `path` (no passphrase); its public line.
fn key(path: &Path, comment: &str) -> String {
    let file = path.display().to_string();
    ssh_keygen(&["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", &file]);
    std::fs::read_to_string(format!("{file}.pub")).unwrap()
}

fn sign(key: &Path, namespace: &str, plan: &Path) {
    let _ = std::fs::remove_file(format!("{}.sig", plan.display()));
    let (key, plan) = (key.display().to_string(), plan.display().to_string());
    ssh_keygen(&["-Y", "sign", "-f", &key, "-n", namespace, &plan]);
}

fn requests(fleet: &TestFleet) -> u64 {
    fleet.fleet.snapshot().iter().map(|d| d.requests).sum()
}

/// Applies the plan with `extra`; must be refused (exit 2) with `words`, sending nothing.
async fn refused(fleet: &TestFleet, extra: &[&str], words: &str) {
    let before = requests(fleet);
    let (output, _) = remediate(fleet, "refused.jsonl", extra).await;
    let err = stderr(&output);
    assert_eq!(code(&output), 2, "{extra:?}: {err}");
    assert!(err.contains(words), "{extra:?}: {err}");
    assert_eq!(requests(fleet), before, "{extra:?}: nothing sent");
}

async fn planned_fleet(seed: u64) -> (TestFleet, String) {
    let fleet = TestFleet::start(SimConfig {
        devices: 4,
        seed,
        faults: FaultProfile::None,
        ..SimConfig::default()
    })
    .await;
    for i in 0..fleet.fleet.len() {
        fleet.fleet.set_ssh_enabled(i, true);
    }
    let plan = fleet.path("plan.json").display().to_string();
    let (output, _) = remediate(&fleet, "plan.jsonl", &["--plan-out", &plan]).await;
    assert_eq!(code(&output), 1, "{}", stderr(&output));
    (fleet, plan)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_plan_signed_by_an_allowed_approver_is_applied() {
    let (fleet, plan_arg) = planned_fleet(81).await;
    let plan = Path::new(&plan_arg).to_owned();
    let approver = fleet.path("approver");
    let public = key(&approver, "approver@example.com");
    let intruder = fleet.path("intruder");
    key(&intruder, "intruder@example.com");
    let signers = fleet.path("allowed_signers");
    std::fs::write(
        &signers,
        format!("approver@example.com namespaces=\"sshfleet-plan\" {public}"),
    )
    .unwrap();
    let signers_arg = signers.display().to_string();
    let apply = [
        "--plan",
        &plan_arg,
        "--apply",
        "--yes",
        "--plan-signers",
        &signers_arg,
    ];

    refused(&fleet, &apply, "no signature").await;
    sign(&intruder, "sshfleet-plan", &plan);
    refused(&fleet, &apply, "is not approved").await;
    sign(&approver, "git", &plan);
    refused(&fleet, &apply, "is not approved").await;

    // Signed, then edited by someone who reseals it (the checksum alone cannot tell).
    sign(&approver, "sshfleet-plan", &plan);
    let original = std::fs::read(&plan).unwrap();
    let mut edited = Plan::load(&plan, Duration::from_secs(3600)).unwrap();
    edited.devices.truncate(1);
    edited.write(&plan).unwrap();
    refused(&fleet, &apply, "the signature does not verify").await;
    assert!(all_writes(&fleet).iter().all(Vec::is_empty));

    // The plan as signed is applied, and who signed it is said.
    std::fs::write(&plan, original).unwrap();
    let inventory = fleet.inventory.display().to_string();
    let out = fleet.path("applied.jsonl");
    let mut list = vec!["remediate", "--inventory", &inventory, "--ssh", "disabled"];
    let out_arg = out.display().to_string();
    list.extend(["-o", &out_arg, "--timeout", "5s"]);
    list.extend(apply);
    let output = run(&args(&list), &[("SSHFLEET_PASSWORD", PASSWORD)]).await;
    let err = stderr(&output);
    assert_eq!(code(&output), 0, "{err}");
    assert!(err.contains("signed by approver@example.com"), "{err}");
    let records = read_jsonl(&out);
    assert_eq!(records.iter().filter(|r| r["action"] == "set").count(), 4);
    assert!(all_writes(&fleet).iter().all(|w| w.len() == 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_from_the_future_is_refused() {
    let (fleet, plan_arg) = planned_fleet(82).await;
    let plan = Path::new(&plan_arg);
    let mut ahead = Plan::load(plan, Duration::from_secs(3600)).unwrap();
    ahead.created_unix_ms += 400 * 24 * 3600 * 1000;
    ahead.write(plan).unwrap();
    let apply = [
        "--plan",
        &plan_arg,
        "--apply",
        "--yes",
        "--plan-max-age",
        "24h",
    ];
    refused(&fleet, &apply, "from now").await;
    assert!(all_writes(&fleet).iter().all(Vec::is_empty));
}
