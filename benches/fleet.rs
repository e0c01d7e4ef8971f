//! Whole-fleet bench: the library scanner against the in-process simulator on loopback, clean
//! cameras only. Prints devices/s, HTTP requests per device and, with added latency, the wall
//! time against the ideal `ceil(fleet / concurrency) × round trips × latency`. The memory
//! scenario runs the `sshfleet` binary itself against `sshfleet sim` in their own processes
//! and compares the scanner's peak RSS on 2,000 and 20,000 cameras; the remediate-memory
//! scenario does the same for `remediate --apply` writing 70 % of each fleet (the cameras
//! with SSH off, turned on), each run on a fresh fleet.
//!
//! `cargo bench --bench fleet` runs both scenarios with the defaults below (a few minutes on
//! two cores). Sizes come from the environment:
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `SSHFLEET_BENCH_DEVICES` | 10000 | cameras in the simulated fleet |
//! | `SSHFLEET_BENCH_CONCURRENCY` | 256 | concurrency of the no-latency run |
//! | `SSHFLEET_BENCH_LATENCY_MS` | 50 | latency the simulator adds to every response |
//! | `SSHFLEET_BENCH_LATENCY_CONCURRENCY` | 1000 | concurrency of the latency run |
//! | `SSHFLEET_BENCH_RUNS` | 3 | scans per scenario (the best and the median are printed) |
//! | `SSHFLEET_BENCH_MEMORY_DEVICES` | 20000 | the larger fleet of the memory run (the smaller is a tenth) |
//! | `SSHFLEET_BENCH_SCENARIOS` | `throughput,latency,memory,remediate-memory` | which scenarios to run |
//!
//! CPU time is read from `/proc` (Linux): the scanner's share is the process's less the
//! simulator's threads, so the figure excludes the simulator serving in-process. `cores busy`
//! is the whole process's CPU time over the wall time: below the machine's core count, the run
//! spent time waiting rather than computing.
//!
//! Each scan leaves its connections in TIME-WAIT for a minute, which slows the next connects:
//! compare figures taken with few TIME-WAIT sockets (`ss -tan state time-wait | wc -l`).

#![expect(
    clippy::expect_used,
    reason = "a bench that cannot set up has nothing to measure"
)]

/// The allocator of the `sshfleet` binary, so that the bench measures what users run.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;

use sshfleet_core::shutdown::Shutdown;
use sshfleet_engine::scan::Scanner;
use sshfleet_inventory as inventory;
use sshfleet_inventory::InventoryOptions;
use sshfleet_report as report;
use sshfleet_report::pipeline::OnOutputFailure;
use sshfleet_report::{
    DeviceRecord, Format, NoProgress, RecordSinks, RecordWriter, Schema, SshState,
};
use support::{cpu_time, env_or};

use sshfleet_sim::{FaultProfile, Fleet, SimConfig};

/// getSupportedVersions (challenged, then answered) and getSshInfo with the cached challenge.
const ROUND_TRIPS_PER_DEVICE: u32 = 3;
const SIM_THREAD: &str = "fleet-sim";

struct Settings {
    devices: usize,
    concurrency: usize,
    latency: Duration,
    latency_concurrency: usize,
    runs: usize,
    memory_devices: usize,
    scenarios: Vec<String>,
}

impl Settings {
    fn from_env() -> Settings {
        let latency_ms = env_or("SSHFLEET_BENCH_LATENCY_MS", 50);
        Settings {
            devices: env_or("SSHFLEET_BENCH_DEVICES", 10_000),
            concurrency: env_or("SSHFLEET_BENCH_CONCURRENCY", 256),
            latency: Duration::from_millis(latency_ms as u64),
            latency_concurrency: env_or("SSHFLEET_BENCH_LATENCY_CONCURRENCY", 1_000),
            runs: env_or("SSHFLEET_BENCH_RUNS", 3).max(1),
            memory_devices: env_or("SSHFLEET_BENCH_MEMORY_DEVICES", 20_000).max(10),
            scenarios: std::env::var("SSHFLEET_BENCH_SCENARIOS")
                .unwrap_or_else(|_| "throughput,latency,memory,remediate-memory".into())
                .split(',')
                .map(|s| s.trim().to_owned())
                .collect(),
        }
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: only build-check then.
    if !std::env::args().any(|a| a == "--bench") {
        println!("fleet: run with `cargo bench --bench fleet`");
        return;
    }
    let settings = Settings::from_env();
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let sim = tokio::runtime::Builder::new_multi_thread()
        .thread_name(SIM_THREAD)
        .enable_all()
        .build()
        .expect("simulator runtime");
    let scan = tokio::runtime::Builder::new_multi_thread()
        .thread_name("fleet-scan")
        .enable_all()
        .build()
        .expect("scanner runtime");
    if settings.scenarios.iter().any(|s| s == "throughput") {
        let latency = Duration::ZERO;
        scenario(&sim, &scan, &settings, latency, settings.concurrency);
    }
    if settings.scenarios.iter().any(|s| s == "latency") {
        let concurrency = settings.latency_concurrency;
        scenario(&sim, &scan, &settings, settings.latency, concurrency);
    }
    if settings.scenarios.iter().any(|s| s == "memory") {
        memory(&settings);
    }
    if settings.scenarios.iter().any(|s| s == "remediate-memory") {
        remediate_memory(&settings);
    }
}

/// Peak memory of `sshfleet scan` (the binary users run, in its own process) on a small and
/// a ten times larger fleet of the same `sshfleet sim`.
fn memory(s: &Settings) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let large = dir.path().join("large.csv");
    let small = dir.path().join("small.csv");
    let sim = SimProcess::start(s.memory_devices, &large);
    let text = std::fs::read_to_string(&large).expect("inventory");
    let rows = s.memory_devices / 10;
    let head: Vec<&str> = text.lines().take(rows + 1).collect();
    std::fs::write(&small, head.join("\n") + "\n").expect("small inventory");
    println!(
        "memory: sshfleet scan, default concurrency, peak RSS of {rows} vs {} cameras",
        s.memory_devices
    );
    let mut ratios = Vec::new();
    for run in 1..=s.runs {
        let scan: Vec<std::ffi::OsString> = SCAN.iter().map(Into::into).collect();
        let small_kib = peak_kib(&small, &scan);
        let large_kib = peak_kib(&large, &scan);
        let ratio = large_kib as f64 / small_kib as f64;
        println!(
            "  run {run}: {rows} cameras {:.1} MiB, {} cameras {:.1} MiB: {ratio:.2}x",
            small_kib as f64 / 1024.0,
            s.memory_devices,
            large_kib as f64 / 1024.0
        );
        ratios.push(ratio);
    }
    print_ratios(ratios);
    drop(sim);
}

/// Peak memory of `sshfleet remediate --apply` turning SSH on wherever it is off, on a
/// small and a ten times larger fleet: a fresh `sshfleet sim` for every run, so each run
/// writes the same cameras.
fn remediate_memory(s: &Settings) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let large = s.memory_devices;
    let small = large / 10;
    println!("remediate-memory: sshfleet remediate --ssh enabled --apply, peak RSS of {small} vs {large} cameras");
    let mut ratios = Vec::new();
    for run in 1..=s.runs {
        let [small_kib, large_kib] = [small, large].map(|devices| {
            let inventory = dir.path().join(format!("{devices}.csv"));
            let sim = SimProcess::start(devices, &inventory);
            // Its own report and journal: a journal is kept beside the report.
            let report = dir.path().join(format!("run{run}-{devices}.jsonl"));
            let mut args: Vec<std::ffi::OsString> = REMEDIATE.iter().map(Into::into).collect();
            args.extend(["-o".into(), report.into_os_string()]);
            let peak = peak_kib(&inventory, &args);
            drop(sim);
            peak
        });
        let ratio = large_kib as f64 / small_kib as f64;
        println!(
            "  run {run}: {small} cameras {:.1} MiB, {large} cameras {:.1} MiB: {ratio:.2}x",
            small_kib as f64 / 1024.0,
            large_kib as f64 / 1024.0
        );
        ratios.push(ratio);
    }
    print_ratios(ratios);
}

fn print_ratios(mut ratios: Vec<f64>) {
    ratios.sort_by(f64::total_cmp);
    println!(
        "  worst {:.2}x, median {:.2}x",
        ratios[ratios.len() - 1],
        ratios[ratios.len() / 2]
    );
}

const SCAN: &[&str] = &["scan", "--quiet", "-o", "/dev/null"];

/// Writes as fast as the fleet takes them, so the run measures what it holds, not its wait.
const REMEDIATE: &[&str] = &[
    "remediate",
    "--quiet",
    "--ssh",
    "enabled",
    "--apply",
    "--yes",
    "--rate",
    "100000/s",
    "--burst",
    "1000",
    "--timeout",
    "20s",
];

/// `sshfleet sim` in its own process (it splits a large fleet across workers itself).
struct SimProcess(std::process::Child);

impl SimProcess {
    fn start(devices: usize, inventory: &std::path::Path) -> SimProcess {
        use std::io::BufRead as _;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sshfleet"))
            .args(["sim", "--faults", "none", "--seed", "5", "--devices"])
            .arg(devices.to_string())
            .arg("--inventory-out")
            .arg(inventory)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("sshfleet sim starts");
        let stdout = child.stdout.take().expect("sim stdout");
        let ready = io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .any(|line| line.starts_with("ready"));
        assert!(ready, "sshfleet sim never became ready");
        SimProcess(child)
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `sshfleet ARGS --inventory INVENTORY` and returns its peak resident set (`VmHWM`,
/// KiB), read from `/proc` until it exits.
fn peak_kib(inventory: &std::path::Path, args: &[std::ffi::OsString]) -> u64 {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sshfleet"))
        .args(args)
        .arg("--inventory")
        .arg(inventory)
        .env("SSHFLEET_PASSWORD", "pass")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("sshfleet scan starts");
    let status = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    let deadline = Instant::now() + Duration::from_secs(300);
    let exited = loop {
        if let Some(status) = child.try_wait().expect("child status") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "sshfleet {args:?} did not finish"
        );
        let hwm = std::fs::read_to_string(&status).ok().and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("VmHWM:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        });
        peak = peak.max(hwm.unwrap_or(0));
        std::thread::sleep(Duration::from_millis(2));
    };
    // A scan with findings exits 1; anything else is a run that did not do its work.
    assert!(
        matches!(exited.code(), Some(0 | 1)),
        "sshfleet {args:?} failed: {exited}"
    );
    assert!(peak > 0, "no memory reading (is /proc mounted?)");
    peak
}

/// One fleet, `runs` scans of it, and a line per scan plus a summary.
fn scenario(sim: &Runtime, scan: &Runtime, s: &Settings, latency: Duration, concurrency: usize) {
    let fleet = sim
        .block_on(Fleet::start(SimConfig {
            devices: s.devices,
            faults: FaultProfile::None,
            latency,
            // The HTTP side alone: an SSH listener per camera would halve the fleet that fits.
            ssh_ports: false,
            ..SimConfig::default()
        }))
        .expect("simulator starts (is the open-file limit high enough?)");
    println!(
        "fleet: {} clean cameras, latency {latency:?}, concurrency {concurrency}",
        fleet.len()
    );
    let ideal = ideal_wall(fleet.len(), concurrency, latency);
    let mut walls = Vec::new();
    for run in 1..=s.runs {
        let requests_before = total_requests(&fleet);
        let cpu_before = cpu_time(SIM_THREAD);
        let started = Instant::now();
        let checked = scan.block_on(scan_fleet(&fleet, concurrency));
        let wall = started.elapsed();
        let cpu = cpu_time(SIM_THREAD)
            .zip(cpu_before)
            .map(|(after, before)| after.since(before));
        let requests = total_requests(&fleet) - requests_before;
        assert_eq!(
            checked.mismatches, 0,
            "the scan disagrees with the simulator's truth"
        );
        assert_eq!(checked.records, fleet.len(), "one record per camera");
        let n = fleet.len() as f64;
        let mut line = format!(
            "  run {run}: {:.3} s, {:.0} devices/s, {:.3} requests/device",
            wall.as_secs_f64(),
            n / wall.as_secs_f64(),
            requests as f64 / n
        );
        if let Some(cpu) = cpu {
            line += &format!(
                ", scanner CPU {:.1} µs/device, {:.2} cores busy",
                cpu.scanner.as_secs_f64() * 1e6 / n,
                cpu.process.as_secs_f64() / wall.as_secs_f64()
            );
        }
        if let Some(ideal) = ideal {
            line += &format!(
                ", {:.3}x the ideal",
                wall.as_secs_f64() / ideal.as_secs_f64()
            );
        }
        println!("{line}");
        walls.push(wall);
    }
    walls.sort();
    let best = walls[0];
    let median = walls[walls.len() / 2];
    let n = fleet.len() as f64;
    let mut line = format!(
        "  best {:.0} devices/s, median {:.0} devices/s",
        n / best.as_secs_f64(),
        n / median.as_secs_f64()
    );
    if let Some(ideal) = ideal {
        line += &format!(
            "; ideal {:.3} s, median wall {:.3}x the ideal",
            ideal.as_secs_f64(),
            median.as_secs_f64() / ideal.as_secs_f64()
        );
    }
    println!("{line}");
    sim.block_on(fleet.shutdown());
}

/// `ceil(fleet / concurrency)` waves, each `round trips × latency` long.
fn ideal_wall(devices: usize, concurrency: usize, latency: Duration) -> Option<Duration> {
    if latency.is_zero() {
        return None;
    }
    let waves = devices.div_ceil(concurrency.max(1)) as u32;
    Some(latency * ROUND_TRIPS_PER_DEVICE * waves)
}

fn total_requests(fleet: &Fleet) -> u64 {
    fleet.snapshot().iter().map(|d| d.requests).sum()
}

struct Checked {
    records: usize,
    mismatches: usize,
}

/// A scan as `sshfleet scan` runs it: inventory CSV in, one JSONL writer thread out.
async fn scan_fleet(fleet: &Fleet, concurrency: usize) -> Checked {
    let mut csv = Vec::new();
    fleet.write_inventory(&mut csv).expect("inventory");
    let inventory =
        inventory::parse(csv.as_slice(), &InventoryOptions::default()).expect("inventory parses");
    let truth: HashMap<String, Option<bool>> = (0..fleet.len())
        .map(|i| {
            let t = fleet.truth(i);
            (t.address, t.ssh_enabled)
        })
        .collect();
    let check = Arc::new(Mutex::new(Checked {
        records: 0,
        mismatches: 0,
    }));
    let sinks: Vec<Box<dyn RecordWriter>> = vec![
        report::writer(Format::Jsonl, &Schema::default(), Box::new(io::sink())),
        Box::new(TruthCheck {
            truth,
            check: check.clone(),
        }),
    ];
    let total = inventory.rows.len();
    let sinks = RecordSinks::new(sinks, Arc::new(NoProgress));
    let pipe = report::record_pipeline(sinks, total, OnOutputFailure::Continue);
    scanner(concurrency)
        .run(inventory.rows, pipe.sender(), Shutdown::never())
        .await;
    report::finish(pipe).await.expect("report written");
    let mut check = check.lock().unwrap_or_else(PoisonError::into_inner);
    Checked {
        records: check.records,
        mismatches: std::mem::take(&mut check.mismatches),
    }
}

fn scanner(concurrency: usize) -> Scanner {
    support::sim_scanner(concurrency, Some(SshState::Disabled), None, None)
}

/// A report output that compares every record with the simulator's truth.
struct TruthCheck {
    truth: HashMap<String, Option<bool>>,
    check: Arc<Mutex<Checked>>,
}

impl RecordWriter for TruthCheck {
    fn write(&mut self, rec: &DeviceRecord) -> io::Result<()> {
        let mut check = self.check.lock().unwrap_or_else(PoisonError::into_inner);
        check.records += 1;
        let expected = self.truth.get(&rec.address).copied().flatten();
        if expected.is_none() || rec.ssh_enabled != expected {
            if check.mismatches < 5 {
                eprintln!(
                    "mismatch: {} {} ssh_enabled={:?} expected {expected:?} ({:?})",
                    rec.address, rec.status, rec.ssh_enabled, rec.error
                );
            }
            check.mismatches += 1;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        Ok(())
    }
}
