//! Compliance over time at fleet scale, 100,000 devices: recording an unchanged run into the
//! history (and how much the database grows), `sshfleet diff` of two reports, and `sshfleet
//! report merge` of 16 shard reports with its coverage proof. The last two run the real
//! binary, so they include starting it, reading the inventory and writing the output.
//!
//! `cargo bench --bench compliance`

#![expect(
    clippy::expect_used,
    reason = "a bench that cannot set up has nothing to measure"
)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use sshfleet_history::{Ending, History, RunInfo};
use sshfleet_report as report;
use sshfleet_report::{DeviceRecord, Format, Schema, SshState, Status, Summary};

const DEVICES: usize = 100_000;
const SHARDS: usize = 16;

fn address(i: usize) -> String {
    format!("10.{}.{}.{}", i / 65_536, (i / 256) % 256, i % 256)
}

/// A fleet as a scan reports it: 100 sites, one camera in nine with SSH on.
fn records() -> Vec<DeviceRecord> {
    (0..DEVICES)
        .map(|i| {
            let mut rec = DeviceRecord::new(
                address(i),
                format!("cam-{i:06}"),
                format!("site-{:02}", i % 100),
                Status::Ok,
            );
            let on = i % 9 == 0;
            rec.ssh_enabled = Some(on);
            rec.expect = Some(SshState::Disabled);
            rec.compliant = Some(!on);
            rec.serial = Some(format!("ACCC8E{i:06X}"));
            rec.elapsed_ms = 40;
            rec.attempts = 1;
            rec.checked_at = "2026-12-03T02:00:00.000Z".into();
            rec
        })
        .collect()
}

fn write_report(path: &Path, records: &[DeviceRecord]) {
    let file = std::fs::File::create(path).expect("create report");
    let mut w = report::writer(Format::Jsonl, &Schema::default(), Box::new(file));
    for rec in records {
        w.write(rec).expect("write record");
    }
    w.finish().expect("finish report");
}

fn size_of(path: &Path) -> u64 {
    let mut total = 0;
    for suffix in ["", "-wal"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        total += std::fs::metadata(&name).map_or(0, |m| m.len());
    }
    total
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

/// One run recorded as the writer thread records it: each record with what the previous
/// run saw of the same device.
fn record_run(path: &Path, records: &[DeviceRecord], summary: &Summary) {
    let (mut recorder, previous) = History::open(path)
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
        .finish(summary, Ending::Finished)
        .expect("commit run");
}

fn history(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("fleet.sqlite");
    let records = records();
    let mut summary = Summary::default();
    for rec in &records {
        summary.add(rec);
    }
    record_run(&path, &records, &summary);
    let first = size_of(&path);
    record_run(&path, &records, &summary);
    let second = size_of(&path);
    record_run(&path, &records, &summary);
    let third = size_of(&path);
    // The first unchanged run is a one-off: run ids 1 and 2 differ in stored width (SQLite
    // keeps 0 and 1 in no bytes), so periods packed tight by the first run split pages once.
    eprintln!(
        "history: first 100,000-device run {:.1} MiB; the first unchanged run adds {:.1} KiB, \
         each later one {:.1} KiB",
        first as f64 / 1_048_576.0,
        second.saturating_sub(first) as f64 / 1024.0,
        third.saturating_sub(second) as f64 / 1024.0
    );
    let mut group = c.benchmark_group("history");
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(DEVICES as u64));
    group.bench_function("record_unchanged_run_100k", |b| {
        b.iter(|| record_run(&path, &records, &summary));
    });
    group.finish();
}

fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sshfleet"))
}

fn run_ok(args: &[&str]) {
    let out = Command::new(binary())
        .args(args)
        .output()
        .expect("run sshfleet");
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "sshfleet {args:?}: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn diff_and_merge(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut records = records();
    let old = dir.path().join("old.jsonl");
    write_report(&old, &records);
    // The next run: 1% of the cameras changed.
    for rec in records.iter_mut().step_by(100) {
        let on = rec.ssh_enabled != Some(true);
        rec.ssh_enabled = Some(on);
        rec.compliant = Some(!on);
    }
    let new = dir.path().join("new.jsonl");
    write_report(&new, &records);

    let inventory = dir.path().join("inventory.csv");
    let mut text = String::from("address,name,site,expect\n");
    for rec in &records {
        text.push_str(&format!(
            "{},{},{},disabled\n",
            rec.address, rec.name, rec.site
        ));
    }
    std::fs::write(&inventory, text).expect("write inventory");
    let mut shards = Vec::new();
    for k in 0..SHARDS {
        let shard: Vec<DeviceRecord> = records.iter().skip(k).step_by(SHARDS).cloned().collect();
        let path = dir.path().join(format!("shard-{k:02}.jsonl"));
        write_report(&path, &shard);
        shards.push(path.display().to_string());
    }
    let out = dir.path().join("out.jsonl").display().to_string();
    let (old, new) = (old.display().to_string(), new.display().to_string());
    let inventory = inventory.display().to_string();

    let mut group = c.benchmark_group("compliance");
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.measurement_time(Duration::from_secs(15));
    group.throughput(Throughput::Elements(DEVICES as u64));
    group.bench_function("diff_100k", |b| {
        b.iter(|| run_ok(&["diff", &old, &new, "-o", &out, "--quiet"]));
    });
    let mut merge: Vec<&str> = vec![
        "report",
        "merge",
        "--inventory",
        &inventory,
        "-o",
        &out,
        "--quiet",
    ];
    merge.extend(shards.iter().map(String::as_str));
    group.bench_function("merge_16_shards_100k", |b| {
        b.iter(|| run_ok(&merge));
    });
    group.finish();
}

criterion_group!(benches, history, diff_and_merge);
criterion_main!(benches);
