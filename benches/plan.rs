//! Saved plans at fleet scale: a plan of 100,000 devices to change, sealed and written
//! (`remediate --plan-out`), then read back and checked (`--plan … --apply`: format,
//! checksum, age). The target is under 2 s for the two together.
//!
//! `cargo bench --bench plan`

#![expect(
    clippy::expect_used,
    reason = "a bench that cannot set up has nothing to measure"
)]

use std::path::Path;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use sshfleet_rollout::plan::{Plan, PlannedDevice};

const DEVICES: usize = 100_000;

fn plan() -> Plan {
    let mut plan = Plan::new(
        Path::new("fleet.csv"),
        "sha256:0123456789abcdef".into(),
        "disabled",
        None,
    );
    plan.devices = (0..DEVICES)
        .map(|i| {
            let address = format!("10.{}.{}.{}", i / 65_536, (i / 256) % 256, i % 256);
            PlannedDevice {
                key: format!("https://{address}:443"),
                address,
                serial: Some(format!("ACCC8E{i:06X}")),
                observed_enabled: true,
                method: "ssh.cgi".into(),
                api_version: Some("1.1".into()),
                observed_at: "2026-12-03T02:00:00.000Z".into(),
            }
        })
        .collect();
    plan
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("plan.json");
    let fresh = plan();
    let mut group = c.benchmark_group("plan");
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.throughput(Throughput::Elements(DEVICES as u64));
    group.bench_function("write_100000", |b| {
        b.iter(|| fresh.clone().write(&path).expect("the plan is written"))
    });
    fresh.clone().write(&path).expect("the plan is written");
    let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    println!("plan of {DEVICES} devices: {:.1} MB", bytes as f64 / 1e6);
    group.bench_function("read_and_check_100000", |b| {
        b.iter(|| {
            let plan = Plan::load(&path, Duration::from_secs(3600)).expect("the plan loads");
            assert_eq!(plan.devices.len(), DEVICES);
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
