//! The fleet view of a central history: 40 sites × 2,500 devices (one scope per site, three
//! runs each, a few devices changing between runs), read back and rendered as
//! `report html --history FILE --expect-sites-from …` does it — the latest complete run of
//! every scope with each site's drift and trend, site coverage, the page, the JSON summary
//! and the metrics. The bound: under 3 s.
//!
//! `cargo bench --bench fleet_view`. `SSHFLEET_BENCH_SITES` and `SSHFLEET_BENCH_SITE_DEVICES`
//! change the sizes; `SSHFLEET_BENCH_HISTORY=FILE` keeps the generated history there (and
//! reuses it when it exists), for timing the binary on it.

#![expect(clippy::unwrap_used, reason = "a bench that cannot set up should stop")]

use std::collections::BTreeSet;
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use criterion::{criterion_group, criterion_main, Criterion};
use sshfleet_engine::fleet::{CoverageCheck, ExpectedSites};
use sshfleet_history::{Ending, History, RunInfo};
use sshfleet_report::html::HtmlReport;
use sshfleet_report::metrics::RunFacts;
use sshfleet_report::{Baseline, DeviceRecord, SshState, Status, Summary};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Device `i` of site `s` in run `r`: a fifth with SSH on, one in 40 not answering, and
/// one in 97 turning SSH on in the last run (a regression).
fn device(s: usize, i: usize, r: usize) -> DeviceRecord {
    let status = if i % 40 == 7 {
        Status::Timeout
    } else {
        Status::Ok
    };
    let mut rec = DeviceRecord::new(
        format!("10.{s}.{}.{}", i / 256, i % 256),
        format!("cam-{s:02}-{i:05}"),
        format!("site-{s:02}"),
        status,
    );
    rec.serial = Some(format!("ACCC8E{s:02X}{i:04X}"));
    rec.expect = Some(SshState::Disabled);
    if status == Status::Ok {
        rec.ssh_enabled = Some(i % 5 == 0 || (r == 2 && i % 97 == 1));
    }
    rec.judge();
    rec.checked_at = sshfleet_core::time::now_rfc3339();
    rec
}

fn record_run(path: &Path, s: usize, r: usize, devices: usize) {
    let info = RunInfo {
        command: "scan",
        scope: format!("/etc/sshfleet/site-{s:02}.csv"),
        inventory_fingerprint: format!("site-{s:02}"),
        shard: None,
        target: None,
    };
    let (mut recorder, previous) = History::open(path).unwrap().begin_run(&info).unwrap();
    let mut baseline = Baseline::new(previous);
    let mut summary = Summary::default();
    for i in 0..devices {
        let mut rec = device(s, i, r);
        let before = baseline.annotate(&mut rec).cloned();
        recorder.record(&rec, before.as_ref());
        summary.add(&rec);
    }
    recorder.finish(&summary, Ending::Finished).unwrap();
}

/// The history of `sites` sites × `devices`, three runs each.
fn generate(path: &Path, sites: usize, devices: usize) {
    let t = Instant::now();
    for r in 0..3 {
        for s in 0..sites {
            record_run(path, s, r, devices);
        }
    }
    println!(
        "fleet_view: generated {sites} sites × {devices} devices × 3 runs in {:.1} s",
        t.elapsed().as_secs_f64()
    );
}

/// Everything `report html --history` does for the fleet view, but the writing of files.
fn fleet_view(path: &Path, sites: usize) -> usize {
    let history = History::open(path).unwrap();
    let check = CoverageCheck {
        expected: ExpectedSites::Listed {
            sites: (0..sites)
                .map(|s| format!("site-{s:02}"))
                .collect::<BTreeSet<_>>(),
            from: "inventory bench".into(),
        },
        within: Duration::from_secs(7 * 86_400),
        within_text: "7d".into(),
    };
    let now = sshfleet_core::time::now_unix_ms();
    let fleet = sshfleet_engine::fleet::load(&history, Some(&check), now).unwrap();
    assert!(fleet.view.missing().is_empty());
    let page = HtmlReport {
        context: "fleet".into(),
        generated_at: sshfleet_core::time::now_rfc3339(),
        summary: &fleet.summary,
        rows: &fleet.rows,
        trend: Vec::new(),
        expiring: Vec::new(),
        applied: None,
        today: sshfleet_core::time::today(),
    }
    .render_fleet(&fleet.view);
    let json = fleet.view.to_json(&fleet.summary);
    let facts = RunFacts {
        command: "report html",
        shard: None,
        duration: Duration::ZERO,
        finished: SystemTime::now(),
        succeeded: true,
    };
    let metrics = fleet.view.render_metrics(&fleet.summary, &facts);
    page.len() + json.len() + metrics.len()
}

fn bench(c: &mut Criterion) {
    let sites = env_usize("SSHFLEET_BENCH_SITES", 40);
    let devices = env_usize("SSHFLEET_BENCH_SITE_DEVICES", 2_500);
    let dir = tempfile::tempdir().unwrap();
    let path = std::env::var_os("SSHFLEET_BENCH_HISTORY")
        .map_or_else(|| dir.path().join("central.db"), Into::into);
    if !path.exists() {
        generate(&path, sites, devices);
    }
    let t = Instant::now();
    let bytes = fleet_view(&path, sites);
    println!(
        "fleet_view: {sites} sites × {devices} devices: {:.2} MB of outputs, first pass {:.2} s",
        bytes as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    let mut group = c.benchmark_group("fleet_view");
    group.sample_size(10);
    group.bench_function(format!("{sites}x{devices}"), |b| {
        b.iter(|| fleet_view(black_box(&path), sites))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
