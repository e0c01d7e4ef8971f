//! `remediate --revert JOURNAL`: exactly the devices that run changed and verified are put
//! back, each once, and a device changed again since is left alone and reported.

use sshfleet_sim::{FaultProfile, SimConfig};

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

/// The site column of each camera of the test fleet's inventory.
fn sites(fleet: &TestFleet) -> Vec<String> {
    let inventory = std::fs::read_to_string(&fleet.inventory).unwrap_or_default();
    (0..fleet.fleet.len())
        .map(|i| {
            inventory
                .lines()
                .find(|l| l.starts_with(&format!("{},", fleet.fleet.address(i))))
                .and_then(|l| l.split(',').nth(2))
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

/// `--revert JOURNAL` needs nothing but the journal (it records the inventory, the state
/// and the shard), and `--limit site=NAME` puts back one site only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revert_needs_only_its_journal_and_a_limit_narrows_it_to_one_site() {
    let fleet = TestFleet::start(SimConfig {
        devices: 9,
        seed: 62,
        faults: FaultProfile::None,
        ..SimConfig::default()
    })
    .await;
    for i in 0..fleet.fleet.len() {
        fleet.fleet.set_ssh_enabled(i, true);
    }
    let journal = fleet.path("fix.journal.jsonl").display().to_string();
    let (output, _) = remediate(
        &fleet,
        "fix.jsonl",
        &["--apply", "--yes", "--rate", "100/s", "--journal", &journal],
    )
    .await;
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let sites = sites(&fleet);
    let site = sites[0].clone();
    assert!(sites.iter().any(|s| *s != site), "the fleet spans sites");
    let env = [("SSHFLEET_PASSWORD", PASSWORD)];
    let revert = |extra: &[&str]| {
        let mut list = args(&["remediate", "--revert", &journal, "--apply", "--yes"]);
        list.extend(args(&["--rate", "100/s", "--quiet"]));
        list.extend(args(extra));
        list
    };
    let out = fleet.path("undo.jsonl").display().to_string();
    let refused = run(&revert(&["--ssh", "disabled", "-o", &out]), &env).await;
    assert_eq!(code(&refused), 2, "{}", stderr(&refused));
    let limit = format!("site={site}");
    let output = run(&revert(&["--limit", &limit, "-o", &out]), &env).await;
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let records = read_jsonl(&fleet.path("undo.jsonl"));
    let in_site = sites.iter().filter(|s| **s == site).count();
    assert_eq!(records.len(), in_site, "only the site is reported");
    for (i, device) in fleet.fleet.snapshot().iter().enumerate() {
        let reverted = sites[i] == site;
        assert_eq!(device.ssh_enabled, reverted, "camera {i}");
        assert_eq!(device.writes.len(), 1 + usize::from(reverted), "camera {i}");
    }
}

/// `scan --limit` reads only the devices named, out of the same inventory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_limited_to_two_addresses_reads_only_them() {
    let fleet = TestFleet::start(SimConfig {
        devices: 5,
        faults: FaultProfile::None,
        ..SimConfig::default()
    })
    .await;
    let limit = format!("{},{}", fleet.fleet.address(1), fleet.fleet.address(3));
    let (output, records) = fleet.scan("limited.jsonl", &["--limit", &limit]).await;
    assert!(matches!(code(&output), 0 | 1), "{}", stderr(&output));
    let mut seen: Vec<&str> = records
        .iter()
        .filter_map(|r| r["address"].as_str())
        .collect();
    seen.sort_unstable();
    let mut wanted = vec![fleet.fleet.address(1), fleet.fleet.address(3)];
    wanted.sort_unstable();
    assert_eq!(seen, wanted);
    let requests: Vec<u64> = fleet.fleet.snapshot().iter().map(|d| d.requests).collect();
    for i in [0, 2, 4] {
        assert_eq!(requests[i], 0, "camera {i} not contacted");
    }
}
