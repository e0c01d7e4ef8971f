//! `remediate --revert JOURNAL`: exactly the devices that run changed and verified are put
//! back, each once, and a device changed again since is left alone and reported.

use sshfleet::sim::{FaultProfile, SimConfig};

use crate::remediate::{all_writes, remediate};
use crate::support::{args, code, read_jsonl, run, stderr, TestFleet, PASSWORD};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revert_puts_back_exactly_what_the_journal_changed() {
    let fleet = TestFleet::start(SimConfig {
        devices: 12,
        seed: 61,
        faults: FaultProfile::None,
        ..SimConfig::default()
    })
    .await;
    for i in 0..fleet.fleet.len() {
        fleet.fleet.set_ssh_enabled(i, i < 6);
    }
    let first = fleet.path("fix.journal.jsonl").display().to_string();
    let (output, _) = remediate(
        &fleet,
        "fix.jsonl",
        &["--apply", "--yes", "--rate", "100/s", "--journal", &first],
    )
    .await;
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    // Someone turns camera 3 back on by hand after the fix.
    fleet.fleet.set_ssh_enabled(3, true);

    let revert = |out: &str, own_journal: &str, apply: bool| {
        let mut list = args(&[
            "remediate",
            "--inventory",
            &fleet.inventory.display().to_string(),
            "--ssh",
            "enabled",
            "--revert",
            &first,
            "--rate",
            "100/s",
            "--timeout",
            "5s",
            "--quiet",
            "--journal",
            own_journal,
            "-o",
            &fleet.path(out).display().to_string(),
        ]);
        if apply {
            list.extend(args(&["--apply", "--yes"]));
        }
        list
    };
    // Its own journal is required: the reverted one is refused.
    let refused = run(
        &revert("refused.jsonl", &first, true),
        &[("SSHFLEET_PASSWORD", PASSWORD)],
    )
    .await;
    assert_eq!(code(&refused), 2, "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("a journal of its own"),
        "{}",
        stderr(&refused)
    );

    let own = fleet.path("undo.journal.jsonl").display().to_string();
    let output = run(
        &revert("undo.jsonl", &own, true),
        &[("SSHFLEET_PASSWORD", PASSWORD)],
    )
    .await;
    assert!(matches!(code(&output), 0 | 1), "{}", stderr(&output));
    let records = read_jsonl(&fleet.path("undo.jsonl"));
    let action = |i: usize| {
        records
            .iter()
            .find(|r| r["address"] == fleet.fleet.address(i))
            .map(|r| r["action"].as_str().unwrap().to_owned())
            .unwrap()
    };
    for i in [0, 1, 2, 4, 5] {
        assert_eq!(action(i), "set", "camera {i}");
    }
    assert_eq!(action(3), "stale", "changed again since the fix");
    for i in 6..12 {
        assert_eq!(action(i), "skip", "camera {i} was never changed by the fix");
    }
    let writes = all_writes(&fleet);
    for (i, w) in writes.iter().enumerate() {
        let expected = match i {
            0..=2 | 4 | 5 => 2,
            3 => 1,
            _ => 0,
        };
        assert_eq!(w.len(), expected, "camera {i}: {w:?}");
    }
    let snapshot = fleet.fleet.snapshot();
    for (i, d) in snapshot.iter().enumerate() {
        assert_eq!(d.ssh_enabled, i < 6, "camera {i} back as before the fix");
    }
    // A second run of the revert with its journal writes nothing more.
    let again = run(
        &revert("again.jsonl", &own, true),
        &[("SSHFLEET_PASSWORD", PASSWORD)],
    )
    .await;
    assert!(matches!(code(&again), 0 | 1), "{}", stderr(&again));
    assert_eq!(all_writes(&fleet), writes, "exactly once per journal");
}
