//! Recording a 100,000-device run into the PostgreSQL history (a throwaway cluster on a Unix
//! socket, as the tests start it): the first run (every device new: a track and a period
//! each), an unchanged run (every period extended) and a run where one device in ten
//! changed. Each is timed from `begin_run` to the commit of `finish`, three times, in a new
//! database for the first run.
//!
//! `cargo bench -p sshfleet-history --bench record_postgresql`

#![expect(
    clippy::expect_used,
    clippy::print_stdout,
    reason = "a bench that cannot set up has nothing to measure; it prints its figures"
)]

#[path = "../tests/support/cluster.rs"]
mod cluster;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use sshfleet_history::{Ending, History, RunInfo};
use sshfleet_report::{DeviceRecord, SshState, Status, Summary};

const DEVICES: usize = 100_000;

/// A fleet as a scan reports it: 100 sites, one camera in nine with SSH on (and, in a
/// changed run, one in ten of the others too).
fn records(changed: bool) -> Vec<DeviceRecord> {
    (0..DEVICES)
        .map(|i| {
            let mut rec = DeviceRecord::new(
                format!("10.{}.{}.{}", i / 65_536, (i / 256) % 256, i % 256),
                format!("cam-{i:06}"),
                format!("site-{:02}", i % 100),
                Status::Ok,
            );
            let on = i % 9 == 0 || (changed && i % 10 == 1);
            rec.ssh_enabled = Some(on);
            rec.expect = Some(SshState::Disabled);
            rec.compliant = Some(!on);
            rec.serial = Some(format!("ACCC8E{i:06X}"));
            rec.checked_at = sshfleet_core::time::now_rfc3339();
            rec
        })
        .collect()
}

fn info() -> RunInfo {
    RunInfo {
        command: "scan",
        scope: "/bench/inventory.csv".into(),
        inventory_fingerprint: "bench".into(),
        shard: None,
        target: None,
    }
}

/// One run recorded as the engine's writer records it; its time, begin to commit.
fn record_run(location: &Path, records: &[DeviceRecord]) -> Duration {
    let mut summary = Summary::default();
    for rec in records {
        summary.add(rec);
    }
    let started = Instant::now();
    let (mut recorder, previous) = History::open(location)
        .expect("open history")
        .begin_run(&info())
        .expect("begin run");
    let before: HashMap<&str, usize> = previous
        .iter()
        .enumerate()
        .map(|(i, o)| (o.address.as_str(), i))
        .collect();
    for rec in records {
        let seen = before.get(rec.address.as_str()).map(|&i| &previous[i]);
        recorder.record(rec, seen);
    }
    recorder
        .finish(&summary, Ending::Finished)
        .expect("commit run");
    started.elapsed()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let Some(cluster) = cluster::Cluster::start() else {
        println!("record_postgresql: skipped, no PostgreSQL");
        return;
    };
    let (same, changed) = (records(false), records(true));
    let mut figures: [Vec<Duration>; 3] = Default::default();
    for _ in 0..3 {
        let url = cluster.database();
        let location = Path::new(&url);
        figures[0].push(record_run(location, &same));
        figures[1].push(record_run(location, &same));
        figures[2].push(record_run(location, &changed));
    }
    for (name, mut times) in ["first run", "unchanged run", "1 in 10 changed"]
        .into_iter()
        .zip(figures)
    {
        times.sort();
        println!(
            "record_postgresql: {DEVICES} devices, {name}: median {:.2} s (min {:.2} s, max {:.2} s)",
            times[1].as_secs_f64(),
            times[0].as_secs_f64(),
            times[2].as_secs_f64()
        );
    }
}
