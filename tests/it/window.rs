//! `--window`: writes start only inside the change window; outside it every device that
//! needs a write is `deferred` (exit 3) and nothing is written.

use sshfleet_sim::{FaultProfile, SimConfig};

use crate::remediate::{all_writes, remediate};
use crate::support::{code, stderr, TestFleet};

/// `HH:MM` UTC, `hours` from now (wrapping around the day).
fn utc_in(hours: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let minutes = (now / 60 + hours * 60).rem_euclid(24 * 60);
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_wait_for_the_change_window() {
    let fleet = TestFleet::start(SimConfig {
        devices: 10,
        seed: 71,
        faults: FaultProfile::None,
        ..SimConfig::default()
    })
    .await;
    for i in 0..fleet.fleet.len() {
        fleet.fleet.set_ssh_enabled(i, i % 2 == 0);
    }
    let journal = fleet.path("w.journal.jsonl").display().to_string();
    let in_window = |out: &'static str, window: String| {
        let fleet = &fleet;
        let journal = &journal;
        async move {
            let apply = ["--apply", "--yes", "--rate", "100/s", "--journal", journal];
            remediate(fleet, out, &[&apply[..], &["--window", &window]].concat()).await
        }
    };
    let closed = format!("{}-{},UTC", utc_in(2), utc_in(3));
    let (output, records) = in_window("closed.jsonl", closed).await;
    let err = stderr(&output);
    assert_eq!(code(&output), 3, "{err}");
    assert!(err.contains("outside the change window"), "{err}");
    assert_eq!(
        records.iter().filter(|r| r["action"] == "deferred").count(),
        5
    );
    assert!(
        all_writes(&fleet).iter().all(Vec::is_empty),
        "nothing written outside the window"
    );

    // The next run inside a window (here: one open now) continues from the journal.
    let open = format!("{}-{},+00:00", utc_in(-1), utc_in(1));
    let (output, records) = in_window("open.jsonl", open).await;
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(records.iter().filter(|r| r["verified"] == true).count(), 5);
    for (i, w) in all_writes(&fleet).iter().enumerate() {
        assert_eq!(w.len(), usize::from(i % 2 == 0), "camera {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_in_a_named_zone_opens_on_that_zones_clock() {
    let fleet = TestFleet::start(SimConfig {
        devices: 4,
        seed: 72,
        faults: FaultProfile::None,
        ..SimConfig::default()
    })
    .await;
    for i in 0..fleet.fleet.len() {
        fleet.fleet.set_ssh_enabled(i, true);
    }
    // Open now in Kolkata (UTC+05:30 all year): the hour either side of its local time.
    // Read as UTC, the same window would be closed, five and a half hours away.
    let kolkata = |hours: i64| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let minutes = (now / 60 + 330 + hours * 60).rem_euclid(24 * 60);
        format!("{:02}:{:02}", minutes / 60, minutes % 60)
    };
    let open = format!("{}-{},Asia/Kolkata", kolkata(-1), kolkata(1));
    let (output, records) = remediate(
        &fleet,
        "named.jsonl",
        &["--apply", "--yes", "--rate", "100/s", "--window", &open],
    )
    .await;
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(records.iter().filter(|r| r["verified"] == true).count(), 4);

    let (output, _) = remediate(
        &fleet,
        "nowhere.jsonl",
        &[
            "--apply",
            "--yes",
            "--window",
            "09:00-17:00,Mars/Olympus_Mons",
        ],
    )
    .await;
    let err = stderr(&output);
    assert_eq!(code(&output), 2, "{err}");
    assert!(err.contains("known IANA zone"), "{err}");
}
