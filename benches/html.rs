//! The HTML report of a large fleet: gathering 100,000 records into rows, and rendering
//! the page (charts, embedded table data) from them. The bound: under 2 s and a
//! file under 20 MB for 100,000 devices; the size is printed once before measuring.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sshfleet_report::html::{DeviceRows, HtmlReport, TrendPoint};
use sshfleet_report::{Change, DeviceRecord, Drift, SshState, Status, Summary};

const STATUSES: [Status; 9] = [
    Status::Ok,
    Status::Ok,
    Status::Ok,
    Status::Ok,
    Status::Ok,
    Status::Ok,
    Status::Timeout,
    Status::AuthFailed,
    Status::Unreachable,
];

/// A fleet like the simulator's: most cameras read, a fifth of those with SSH on, 250 sites.
fn records(n: usize) -> Vec<DeviceRecord> {
    (0..n)
        .map(|i| {
            let status = STATUSES[i % STATUSES.len()];
            let mut rec = DeviceRecord::new(
                format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256),
                format!("cam-{i:06}"),
                format!("site-{:03}", i % 250),
                status,
            );
            rec.serial = Some(format!("ACCC8E{i:06X}"));
            rec.expect = Some(SshState::Disabled);
            if status == Status::Ok {
                rec.ssh_enabled = Some(i % 5 == 0);
            } else {
                rec.error = Some(format!("{status} after 15s"));
            }
            rec.judge();
            rec.drift = Some(Drift {
                change: if i % 97 == 0 {
                    Change::Regressed
                } else {
                    Change::Unchanged
                },
                first_seen: String::new(),
                state_since: String::new(),
            });
            rec
        })
        .collect()
}

fn page(rows: &DeviceRows, summary: &Summary) -> String {
    HtmlReport {
        context: "bench".into(),
        generated_at: "2026-12-03T12:00:00Z".into(),
        summary,
        rows,
        trend: (1..=30)
            .map(|i| TrendPoint::from_summary(format!("run {i}"), "2026-12-03T12:00:00Z", summary))
            .collect(),
        expiring: Vec::new(),
        applied: None,
        today: sshfleet_core::time::Date::constant(1970, 1, 1),
    }
    .render()
}

fn html_report(c: &mut Criterion) {
    let mut group = c.benchmark_group("html_report");
    group.sample_size(10);
    for n in [1_000usize, 100_000] {
        let recs = records(n);
        let mut rows = DeviceRows::default();
        let mut summary = Summary::default();
        for rec in &recs {
            rows.push(rec);
            summary.add(rec);
        }
        let size = page(&rows, &summary).len();
        println!("html_report/{n}: page of {:.2} MB", size as f64 / 1e6);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("gather", n), &recs, |b, recs| {
            b.iter(|| {
                let mut rows = DeviceRows::default();
                for rec in recs {
                    rows.push(black_box(rec));
                }
                rows
            })
        });
        group.bench_with_input(BenchmarkId::new("render", n), &rows, |b, rows| {
            b.iter(|| page(black_box(rows), &summary))
        });
    }
    group.finish();
}

criterion_group!(benches, html_report);
criterion_main!(benches);
