//! The remediation core against in-process simulated cameras on loopback, in paused time:
//! a plan reads every device and holds only the writes, and the apply writes them in their
//! waves and reads each back; what the cameras hold afterwards is asked of the simulator.

use std::time::Duration;

use tokio::sync::mpsc;

use crate::device::ScanSettings;
use crate::remediate::*;
use crate::test_support::{self, TestResult};
use sshfleet_inventory::Rows;
use sshfleet_sim::{DeviceSpec, Fleet};

async fn fleet(enabled: &[bool]) -> Result<(Fleet, Rows), Box<dyn std::error::Error>> {
    test_support::fleet(enabled.iter().map(|&on| DeviceSpec::clean(on)).collect()).await
}

fn remediator() -> Result<Arc<Remediator>, Box<dyn std::error::Error>> {
    let settings = ScanSettings {
        concurrency: 4,
        ..test_support::scan_settings()
    };
    let limits = WriteLimits {
        rate: "100/s".parse()?,
        burst: NonZeroU32::MIN,
        site_rate: None,
        jitter: Duration::ZERO,
    };
    let scanner = Scanner::new(Arc::new(test_support::client()?), settings);
    let remediator = Remediator::new(scanner, SshState::Disabled, &limits, [], None);
    Ok(Arc::new(remediator))
}

/// Every record sent to the returned sender, once it is dropped.
fn collect() -> (
    mpsc::Sender<DeviceRecord>,
    tokio::task::JoinHandle<Vec<DeviceRecord>>,
) {
    let (tx, mut rx) = mpsc::channel(16);
    let all = tokio::spawn(async move {
        let mut all = Vec::new();
        while let Some(record) = rx.recv().await {
            all.push(record);
        }
        all
    });
    (tx, all)
}

fn action(record: &DeviceRecord) -> Option<Action> {
    record.remediation.as_ref().map(|r| r.action)
}

#[tokio::test(start_paused = true)]
async fn a_plan_reads_every_device_and_holds_only_the_writes() -> TestResult {
    let (fleet, rows) = fleet(&[true, false, true]).await?;
    let remediator = remediator()?;
    let (tx, all) = collect();
    let never = Shutdown::never();
    let (planned, stats) = (remediator)
        .plan(rows, Recovered::default(), Planning::HoldWrites, tx, never)
        .await;
    let reported = all.await?;
    assert_eq!((planned.len(), stats.dispatched), (2, 3));
    // Only the camera already disabled is reported by the plan: nothing to do.
    assert_eq!(reported.len(), 1);
    assert_eq!(action(&reported[0]), Some(Action::None));
    assert_eq!(reported[0].address, fleet.address(1));
    // Planning wrote nothing.
    let snapshot = fleet.snapshot();
    assert!(snapshot.iter().all(|c| c.writes.is_empty()));
    assert_eq!(
        snapshot.iter().map(|c| c.ssh_enabled).collect::<Vec<_>>(),
        [true, false, true]
    );
    fleet.shutdown().await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn reported_writes_are_planned_not_held() -> TestResult {
    let (fleet, rows) = fleet(&[true, false]).await?;
    let (tx, all) = collect();
    let (planned, _) = remediator()?
        .plan(
            rows,
            Recovered::default(),
            Planning::ReportWrites,
            tx,
            Shutdown::never(),
        )
        .await;
    let reported = all.await?;
    assert!(planned.is_empty());
    let mut actions: Vec<Option<Action>> = reported.iter().map(action).collect();
    actions.sort_by_key(|a| format!("{a:?}"));
    assert_eq!(actions, [Some(Action::None), Some(Action::Set)]);
    fleet.shutdown().await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn the_apply_writes_each_planned_camera_once_and_reads_it_back() -> TestResult {
    let (fleet, rows) = fleet(&[true, true, false, true]).await?;
    let remediator = remediator()?;
    let (tx, all) = collect();
    let (planned, _) = (remediator)
        .plan(
            rows,
            Recovered::default(),
            Planning::HoldWrites,
            tx,
            Shutdown::never(),
        )
        .await;
    drop(all.await?);
    let staging = Staging {
        waves: "1,100%".parse()?,
        ..Staging::default()
    };
    let (tx, all) = collect();
    let applied = (remediator)
        .apply_waves(planned, &staging, tx, Shutdown::never())
        .await;
    let written = all.await?;
    assert_eq!((applied.waves_done, applied.failures), (2, 0));
    assert_eq!(written.len(), 3);
    for record in &written {
        let rem = record.remediation.as_ref().ok_or("no remediation")?;
        assert_eq!(
            (rem.action, rem.before, rem.after, rem.verified),
            (Action::Set, Some(true), Some(false), Some(true)),
            "{record:?}"
        );
    }
    // What the cameras hold: SSH off everywhere, one write each to those that had it on.
    let snapshot = fleet.snapshot();
    assert!(snapshot.iter().all(|c| !c.ssh_enabled));
    let writes: Vec<usize> = snapshot.iter().map(|c| c.writes.len()).collect();
    assert_eq!(writes, [1, 1, 0, 1]);
    fleet.shutdown().await;
    Ok(())
}
