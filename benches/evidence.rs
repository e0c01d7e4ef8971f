//! What `--probe-ssh` costs: the library scanner against the in-process simulator on
//! loopback, the same clean fleet scanned three ways, run after run in turn so that the
//! machine's load falls on all three alike:
//!
//! - `plain`: the VAPIX reads only (no SSH connection);
//! - `banner`: the probe reading the identification line only, sending nothing (the
//!   library's identification-only mode; the CLI's `--probe-ssh` always reads the evidence);
//! - `evidence`: what `--probe-ssh` does: identification, KEXINIT, one curve25519 exchange,
//!   the host key and its signature checked, DISCONNECT.
//!
//! Two fleets: the simulator's clean mix (SSH on for about 30 % of the cameras, so most
//! probes meet a closed port) and the same number of cameras all with SSH on (every probe a
//! full key exchange, the worst case). Each over HTTP by default, or over HTTPS with `-https`
//! (`clean-https`, `ssh-on-https`): AXIS OS serves HTTPS by default, so a plain scan of real
//! cameras pays a TLS handshake per camera, which the HTTP fleets leave out. For each, every run prints its wall time and the
//! scanner's CPU time per camera (the process's CPU less the simulator's threads, so the
//! simulator's own key exchanges and signatures do not count against the client), and the
//! summary the medians as ratios to `plain`. Every evidence record is checked against the
//! simulator's truth (host key, grade, Terrapin).
//!
//! `cargo bench --bench evidence` (a few minutes on two cores). The environment sets:
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `SSHFLEET_BENCH_DEVICES` | 3000 | cameras in each fleet |
//! | `SSHFLEET_BENCH_CONCURRENCY` | 256 | the scan's concurrency |
//! | `SSHFLEET_BENCH_RUNS` | 5 | runs of each mode per fleet (interleaved) |
//! | `SSHFLEET_BENCH_FLEETS` | `clean,ssh-on,clean-https` | which fleets |
//! | `SSHFLEET_BENCH_MODES` | `plain,banner,evidence` | which modes (ratios need `plain`) |
//!
//! Wall times on a shared machine are noisy; the scanner's CPU time is steadier, and
//! `benches/compare/evidence-callgrind.sh` counts the client's instructions alone under
//! callgrind (the simulator in its own process), which does not depend on the load at all.

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
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;

use sshfleet_axis::probe::{ProbeSettings, SshPolicy};
use sshfleet_core::shutdown::Shutdown;
use sshfleet_inventory as inventory;
use sshfleet_inventory::InventoryOptions;
use sshfleet_report as report;
use sshfleet_report::pipeline::OnOutputFailure;
use sshfleet_report::{DeviceRecord, Format, NoProgress, RecordSinks, RecordWriter, Schema};
use sshfleet_sim::{DeviceSpec, FaultProfile, Fleet, SimConfig};
use support::{cpu_time, env_or};

const SIM_THREAD: &str = "evidence-sim";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Plain,
    Banner,
    Evidence,
}

const MODES: [Mode; 3] = [Mode::Plain, Mode::Banner, Mode::Evidence];

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Plain => "plain",
            Mode::Banner => "banner",
            Mode::Evidence => "evidence",
        }
    }

    fn probe(self) -> Option<ProbeSettings> {
        let probe = ProbeSettings::for_timeout(Duration::from_secs(5));
        match self {
            Mode::Plain => None,
            Mode::Banner => Some(probe),
            Mode::Evidence => Some(probe.with_evidence(Arc::new(SshPolicy::baseline()))),
        }
    }
}

struct Settings {
    devices: usize,
    concurrency: usize,
    runs: usize,
    fleets: Vec<String>,
    modes: Vec<Mode>,
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: only build-check then.
    if !std::env::args().any(|a| a == "--bench") {
        println!("evidence: run with `cargo bench --bench evidence`");
        return;
    }
    let settings = Settings {
        devices: env_or("SSHFLEET_BENCH_DEVICES", 3_000),
        concurrency: env_or("SSHFLEET_BENCH_CONCURRENCY", 256),
        runs: env_or("SSHFLEET_BENCH_RUNS", 5).max(1),
        fleets: std::env::var("SSHFLEET_BENCH_FLEETS")
            .unwrap_or_else(|_| "clean,ssh-on,clean-https".into())
            .split(',')
            .map(|s| s.trim().to_owned())
            .collect(),
        modes: std::env::var("SSHFLEET_BENCH_MODES")
            .unwrap_or_else(|_| "plain,banner,evidence".into())
            .split(',')
            .map(|s| {
                MODES
                    .into_iter()
                    .find(|m| m.name() == s.trim())
                    .unwrap_or_else(|| panic!("unknown mode {s:?} (plain, banner, evidence)"))
            })
            .collect(),
    };
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let sim = tokio::runtime::Builder::new_multi_thread()
        .thread_name(SIM_THREAD)
        .enable_all()
        .build()
        .expect("simulator runtime");
    let scan = tokio::runtime::Builder::new_multi_thread()
        .thread_name("evidence-scan")
        .enable_all()
        .build()
        .expect("scanner runtime");
    for fleet in &settings.fleets {
        let (mix, https) = match fleet.strip_suffix("-https") {
            Some(mix) => (mix, true),
            None => (fleet.as_str(), false),
        };
        let specs = match mix {
            "clean" => None,
            "ssh-on" => Some(vec![DeviceSpec::clean(true); settings.devices]),
            other => panic!("unknown fleet {other:?} (clean, ssh-on, clean-https, ssh-on-https)"),
        };
        compare(&sim, &scan, &settings, fleet, FleetKind { specs, https });
    }
}

/// One measured scan.
struct Run {
    wall: Duration,
    /// The scanner's CPU time (the process less the simulator's threads), when readable.
    cpu: Option<Duration>,
}

/// Which cameras: their SSH states (`None`: the simulator's mix) and whether they speak
/// HTTPS (as AXIS OS does by default, with its own certificate).
struct FleetKind {
    specs: Option<Vec<DeviceSpec>>,
    https: bool,
}

/// One fleet scanned `runs` times in each mode, the modes in turn.
fn compare(sim: &Runtime, scan: &Runtime, s: &Settings, name: &str, kind: FleetKind) {
    let fleet = sim
        .block_on(Fleet::start(SimConfig {
            devices: s.devices,
            faults: FaultProfile::None,
            specs: kind.specs,
            https: kind.https,
            ..SimConfig::default()
        }))
        .expect("simulator starts (is the open-file limit high enough?)");
    // The scanner verifies the cameras' certificates against the simulator's CA.
    let ca = fleet.ca_pem().map(|pem| {
        let mut file = tempfile::NamedTempFile::new().expect("a temporary CA file");
        io::Write::write_all(&mut file, pem.as_bytes()).expect("CA written");
        file
    });
    let ca_file = ca.as_ref().map(tempfile::NamedTempFile::path);
    let on = (0..fleet.len())
        .filter(|&i| fleet.truth(i).ssh_evidence.is_some())
        .count();
    println!(
        "fleet {name}: {} clean cameras over {}, {on} with an SSH server, concurrency {}",
        fleet.len(),
        if kind.https { "HTTPS" } else { "HTTP" },
        s.concurrency
    );
    let mut runs: HashMap<&str, Vec<Run>> = HashMap::new();
    for run in 1..=s.runs {
        for &mode in &s.modes {
            let measured = measure(scan, &fleet, (s.concurrency, ca_file), mode);
            let n = fleet.len() as f64;
            let mut line = format!(
                "  run {run} {:<8}: {:.3} s, {:.0} devices/s",
                mode.name(),
                measured.wall.as_secs_f64(),
                n / measured.wall.as_secs_f64()
            );
            if let Some(cpu) = measured.cpu {
                line += &format!(", scanner CPU {:.1} µs/device", cpu.as_secs_f64() * 1e6 / n);
            }
            println!("{line}");
            runs.entry(mode.name()).or_default().push(measured);
        }
    }
    summarise(&runs, fleet.len());
    sim.block_on(fleet.shutdown());
}

/// `client`: the scan's concurrency and the CA file its HTTP client trusts.
fn measure(scan: &Runtime, fleet: &Fleet, client: (usize, Option<&Path>), mode: Mode) -> Run {
    let before = cpu_time(SIM_THREAD);
    let started = Instant::now();
    let checked = scan.block_on(scan_fleet(fleet, client, mode));
    let wall = started.elapsed();
    let cpu = cpu_time(SIM_THREAD)
        .zip(before)
        .map(|(after, before)| after.since(before).scanner);
    assert_eq!(checked.records, fleet.len(), "one record per camera");
    assert_eq!(
        checked.mismatches,
        0,
        "{}: the scan disagrees with the simulator's truth",
        mode.name()
    );
    Run { wall, cpu }
}

fn median(mut values: Vec<Duration>) -> Option<Duration> {
    values.sort();
    values.get(values.len() / 2).copied()
}

/// The medians of each mode, and their ratio to `plain`.
fn summarise(runs: &HashMap<&str, Vec<Run>>, devices: usize) {
    let wall = |mode: Mode| median(runs.get(mode.name())?.iter().map(|r| r.wall).collect());
    let cpu = |mode: Mode| {
        let all: Option<Vec<Duration>> = runs.get(mode.name())?.iter().map(|r| r.cpu).collect();
        median(all?)
    };
    let (Some(plain_wall), plain_cpu) = (wall(Mode::Plain), cpu(Mode::Plain)) else {
        return;
    };
    for mode in [Mode::Banner, Mode::Evidence] {
        let Some(w) = wall(mode) else { continue };
        let mut line = format!(
            "  median {:<8}: wall {:.3} s against {:.3} s ({:.2}x)",
            mode.name(),
            w.as_secs_f64(),
            plain_wall.as_secs_f64(),
            w.as_secs_f64() / plain_wall.as_secs_f64()
        );
        if let (Some(c), Some(p)) = (cpu(mode), plain_cpu) {
            let per = |d: Duration| d.as_secs_f64() * 1e6 / devices as f64;
            line += &format!(
                "; scanner CPU {:.1} against {:.1} µs/device ({:.2}x)",
                per(c),
                per(p),
                c.as_secs_f64() / p.as_secs_f64().max(1e-9)
            );
        }
        println!("{line}");
    }
}

#[derive(Default)]
struct Checked {
    records: usize,
    mismatches: usize,
}

/// What each camera's record must say.
#[derive(Clone)]
struct Want {
    ssh_enabled: Option<bool>,
    /// The host key, grade and Terrapin; checked in the evidence mode only.
    evidence: Option<(String, &'static str, Option<&'static str>)>,
}

/// A scan as `sshfleet scan` runs it: inventory CSV in, one JSONL writer thread out.
async fn scan_fleet(fleet: &Fleet, client: (usize, Option<&Path>), mode: Mode) -> Checked {
    let (concurrency, ca_file) = client;
    let mut csv = Vec::new();
    fleet.write_inventory(&mut csv).expect("inventory");
    let inventory =
        inventory::parse(csv.as_slice(), &InventoryOptions::default()).expect("inventory parses");
    let truth: HashMap<String, Want> = (0..fleet.len())
        .map(|i| {
            let t = fleet.truth(i);
            let evidence = t
                .ssh_evidence
                .filter(|_| mode == Mode::Evidence)
                .map(|e| (e.host_key, e.crypto, e.terrapin));
            let want = Want {
                ssh_enabled: t.ssh_enabled,
                evidence,
            };
            (t.address, want)
        })
        .collect();
    let check = Arc::new(Mutex::new(Checked::default()));
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
    support::sim_scanner(concurrency, None, mode.probe(), ca_file)
        .run(inventory.rows, pipe.sender(), Shutdown::never())
        .await;
    report::finish(pipe).await.expect("report written");
    let mut check = check.lock().unwrap_or_else(PoisonError::into_inner);
    std::mem::take(&mut *check)
}

/// A report output that compares every record with the simulator's truth.
struct TruthCheck {
    truth: HashMap<String, Want>,
    check: Arc<Mutex<Checked>>,
}

impl TruthCheck {
    fn agrees(&self, rec: &DeviceRecord) -> bool {
        let Some(want) = self.truth.get(&rec.address) else {
            return false;
        };
        if want.ssh_enabled.is_none() || rec.ssh_enabled != want.ssh_enabled {
            return false;
        }
        match &want.evidence {
            None => true,
            Some((key, crypto, terrapin)) => {
                rec.ssh.host_key.as_deref() == Some(key.as_str())
                    && rec.ssh.crypto.map(|c| c.as_str()) == Some(*crypto)
                    && rec.ssh.terrapin.map(|t| t.as_str()) == *terrapin
            }
        }
    }
}

impl RecordWriter for TruthCheck {
    fn write(&mut self, rec: &DeviceRecord) -> io::Result<()> {
        let agrees = self.agrees(rec);
        let mut check = self.check.lock().unwrap_or_else(PoisonError::into_inner);
        check.records += 1;
        if !agrees {
            if check.mismatches < 5 {
                eprintln!(
                    "mismatch: {} {} ssh_enabled={:?} host key {:?} ({:?})",
                    rec.address, rec.status, rec.ssh_enabled, rec.ssh.host_key, rec.error
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
