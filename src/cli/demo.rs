//! `sshfleet demo`: the simulator in-process (1,000 cameras, realistic faults, and a mock
//! Equinix API of 2,500 SSH users), scanned and listed for real, reports in
//! `./sshfleet-demo/`, and the results checked against the simulator's truth.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead as _, BufReader, BufWriter};
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use super::args::DemoArgs;
use super::progress::Progress;
use super::runs::{report_interruption, say_notes, say_warnings};
use super::verbosity::Verbosity;
use super::{install_signal_handlers, open_output, report_output, Exit, Stopping};
use sshfleet_core::rate::Rate;
use sshfleet_core::secret::Secret;
use sshfleet_core::shutdown::Shutdown;
use sshfleet_engine::run::{Completion, Outputs, Run, RunEnd, RunSettings, Scope};
use sshfleet_engine::scan::RunStats;
use sshfleet_engine::settings::{
    ComplianceSettings, DeviceSettings, PasswordSource, ProcessEnv, RemediateSettings,
};
use sshfleet_equinix::{ListFilter, PageFetcher};
use sshfleet_report as report;
use sshfleet_report::html::{DeviceRows, HtmlReport, HtmlSink, TrendPoint};
use sshfleet_report::pipeline::{Named, OnOutputFailure};
use sshfleet_report::ssh_users::TableWriter;
use sshfleet_report::{Format, RecordOutput, Reporter, Schema, SshState, Summary};
use sshfleet_sim::{Fleet, SimConfig};

/// SSH users of the demo's mock Equinix API.
const EQUINIX_USERS: usize = 2_500;
/// The listing's default paging.
const PAGE_SIZE: u64 = 100;
const PAGE_CONCURRENCY: usize = 8;

pub(super) async fn run(args: DemoArgs) -> anyhow::Result<Exit> {
    let dir = &args.dir;
    let setup = Setup::start(&args).await?;
    let (_trigger, shutdown) = install_signal_handlers(args.verbosity(), Stopping::Demo);
    let mut stages = Stages::new(args.verbosity());
    let first = match setup
        .first_scan(&args, &mut stages, shutdown.clone())
        .await?
    {
        Ok(first) => first,
        Err(exit) => return Ok(exit),
    };
    let Setup {
        fleet,
        inventory,
        truth,
        history,
        ..
    } = setup;
    stages.begin("planning the change that disables SSH (remediate --plan-out, a dry run)");
    let plan = plan_remediation(&inventory, dir, args.verbosity()).await?;
    stages.begin("another client changes 5 cameras; second scan, compared with the first");
    let drift = rescan_after_changes(&fleet, &inventory, dir, &history, shutdown.clone()).await?;
    stages.begin(&format!(
        "applying the saved plan in waves {WAVES} (remediate --plan --apply)"
    ));
    let applied = apply_plan(&inventory, dir, args.verbosity()).await?;
    stages.begin(&format!(
        "listing {EQUINIX_USERS} Equinix SSH users from the mock API"
    ));
    let equinix = list_equinix(&fleet, dir, shutdown).await?;
    stages.end();
    fleet.shutdown().await;
    std::fs::write(dir.join("summary.json"), first.summary.to_json())
        .context("cannot write summary.json")?;
    let (agree, total) = compare_with_truth(&first.jsonl, &truth)?;
    let results = DemoResults {
        dir,
        history: &history,
        summary: &first.summary,
        stats: &first.stats,
        elapsed: first.elapsed,
        agree,
        total,
        plan: &plan,
        applied: &applied,
        drift: &drift,
        equinix: &equinix,
    };
    results.say();
    let html = write_html(dir, &history, &first.summary, &drift, first.scanned_at)?;
    Ok(results.verdict(&html))
}

/// The running fleet and the files the demo starts from.
struct Setup {
    fleet: Fleet,
    password: Secret,
    inventory: PathBuf,
    truth: PathBuf,
    history: PathBuf,
}

/// The first scan: what it found, and where its JSON Lines report is.
struct FirstScan {
    summary: Summary,
    stats: RunStats,
    elapsed: Duration,
    scanned_at: String,
    jsonl: PathBuf,
}

impl Setup {
    async fn start(args: &DemoArgs) -> anyhow::Result<Setup> {
        let dir = &args.dir;
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        diagln!(
            "sshfleet demo: starting {} simulated cameras and a mock Equinix API ({EQUINIX_USERS} SSH users) on loopback…",
            args.devices
        );
        let (fleet, password) = start_fleet(args).await?;
        let inventory = dir.join("inventory.csv");
        let truth = dir.join("truth.jsonl");
        write_file(&inventory, |w| fleet.write_inventory(w))?;
        write_file(&truth, |w| fleet.write_truth(w))?;
        let history = fresh_history(dir)?;
        Ok(Setup {
            fleet,
            password,
            inventory,
            truth,
            history,
        })
    }

    /// Scans the fleet into `scan.csv` and `scan.jsonl`, recorded in the history.
    async fn first_scan(
        &self,
        args: &DemoArgs,
        stages: &mut Stages,
        shutdown: Shutdown,
    ) -> anyhow::Result<Result<FirstScan, Exit>> {
        stages.begin(&format!(
            "scanning {} cameras (--timeout {}s --retries 0)",
            args.devices,
            DEMO_TIMEOUT.as_secs_f64()
        ));
        let started = Instant::now();
        let scanned_at = sshfleet_core::time::now_rfc3339();
        let device = DeviceSettings {
            password: PasswordSource::Given(self.password.clone()),
            ..demo_device(self.inventory.clone())
        };
        let (csv_path, jsonl) = (args.dir.join("scan.csv"), args.dir.join("scan.jsonl"));
        let outputs = |schema: &Schema| -> anyhow::Result<Vec<RecordOutput>> {
            Ok(vec![
                report_output(Format::Csv, schema, &csv_path)?,
                report_output(Format::Jsonl, schema, &jsonl)?,
            ])
        };
        let scanned =
            recorded_scan(device, &self.history, outputs, args.verbosity(), shutdown).await?;
        Ok(scanned.map(|(summary, stats)| FirstScan {
            summary,
            stats,
            elapsed: started.elapsed(),
            scanned_at,
            jsonl,
        }))
    }
}

/// The demo's stages, each said as it starts and timed when it ends, so a person watching
/// knows what the wait is for.
struct Stages {
    verbosity: Verbosity,
    current: Option<(String, Instant)>,
    done: usize,
}

/// How many stages [`Stages::begin`] is called for.
const STAGES: usize = 5;

impl Stages {
    fn new(verbosity: Verbosity) -> Stages {
        Stages {
            verbosity,
            current: None,
            done: 0,
        }
    }

    /// Ends the current stage, if any, and starts `label`.
    fn begin(&mut self, label: &str) {
        self.end();
        if !self.verbosity.is_quiet() {
            diagln!("[{}/{STAGES}] {label}…", self.done + 1);
        }
        self.current = Some((label.to_owned(), Instant::now()));
    }

    fn end(&mut self) {
        let Some((_, started)) = self.current.take() else {
            return;
        };
        self.done += 1;
        if !self.verbosity.is_quiet() {
            let secs = started.elapsed().as_secs_f64();
            diagln!("[{}/{STAGES}] done in {secs:.1}s", self.done);
        }
    }
}

/// The simulated fleet with its mock Equinix API, and the password its cameras take.
async fn start_fleet(args: &DemoArgs) -> anyhow::Result<(Fleet, Secret)> {
    let config = SimConfig {
        devices: args.devices,
        seed: args.seed,
        slow_delays: DEMO_SLOW_DELAYS,
        equinix_users: Some(EQUINIX_USERS),
        ..SimConfig::default()
    };
    let password = Secret::new(config.password.clone());
    let fleet = Fleet::start(config)
        .await
        .context("cannot start the simulator")?;
    Ok((fleet, password))
}

/// One demo scan recorded in the history: its summary and stats, or the exit of a history
/// that could not record it (said).
async fn recorded_scan(
    device: DeviceSettings,
    history: &Path,
    outputs: impl FnOnce(&Schema) -> anyhow::Result<Vec<RecordOutput>>,
    verbosity: Verbosity,
    shutdown: Shutdown,
) -> anyhow::Result<Result<(Summary, RunStats), Exit>> {
    let prepared = device.build(&ProcessEnv)?;
    say_warnings(&prepared, verbosity);
    let compliance = ComplianceSettings::with_history(history.to_owned());
    let mut run = Run::open(RunSettings::scan(compliance, device.shard))?;
    run.open_history(&Scope::of(&device.inventory, &prepared))?;
    let outputs = Outputs {
        reports: outputs(&prepared.schema())?,
        reporter: Arc::new(Progress::new(verbosity)),
        on_failure: OnOutputFailure::Continue,
    };
    let (summary, stats) = run.scan(prepared, outputs, shutdown).await?;
    let outcome = run.finish(RunEnd {
        summary: &summary,
        stats: &stats,
        completion: Completion::of(&stats),
        stopped_accounts: &[],
        page_context: String::new(),
        applied: None,
    });
    say_notes(&outcome.notes, Verbosity::Quiet);
    match outcome.output_failed() {
        true => Ok(Err(Exit::OutputFailed)),
        false => Ok(Ok((summary, stats))),
    }
}

/// Everything the demo found, to say and to judge.
struct DemoResults<'a> {
    dir: &'a Path,
    history: &'a Path,
    summary: &'a Summary,
    stats: &'a RunStats,
    elapsed: Duration,
    agree: usize,
    total: usize,
    plan: &'a Summary,
    applied: &'a Summary,
    drift: &'a DemoDrift,
    equinix: &'a EquinixDemo,
}

impl DemoResults<'_> {
    /// The summary of the first scan, its speed and agreement with the truth, the Equinix
    /// listing, the plan, the drift of the second scan and where the reports are.
    fn say(&self) {
        let (summary, drift, history) = (self.summary, self.drift, self.history.display());
        diag!("{}", summary.render_text());
        report_interruption(self.stats);
        let secs = self.elapsed.as_secs_f64();
        let rate = summary.total as f64 / secs.max(Duration::from_millis(1).as_secs_f64());
        diagln!(
            "\nscanned {} cameras in {secs:.1}s ({rate:.0} devices/s)",
            summary.total
        );
        diagln!(
            "agrees with the simulator's truth for {}/{} cameras",
            self.agree,
            self.total
        );
        diag!("\n{}", self.equinix.report);
        let rem = &self.plan.remediation;
        diagln!(
            "remediation plan (--ssh disabled --plan-out {PLAN}): {} to set, {} already disabled, {} unreadable; nothing written yet",
            rem.set, rem.none, rem.skip
        );
        diagln!(
            "\nsecond scan, after another client turned SSH on for {} cameras and off for {} (--history {history}):",
            drift.turned_on.len(),
            drift.turned_off.len(),
        );
        diag!("{}", drift.summary_line);
        diagln!("regressed: {}", drift.regressed.join(", "));
        diagln!("both scans are runs in {history} (sshfleet history {history} runs)");
        let done = &self.applied.remediation;
        diagln!(
            "\nthe saved plan applied (--plan {PLAN} --apply --waves {WAVES} --max-failures {MAX_FAILURES}): {} written and verified, {} stale (changed by the other client since the plan: not written), {} deferred; cameras not in the plan were not written",
            done.verified, done.stale, done.deferred
        );
        let files = [
            "scan.csv",
            "scan.jsonl",
            "summary.json",
            "rescan.jsonl",
            "remediation-plan.csv",
            PLAN,
            "remediation.jsonl",
            JOURNAL,
            "equinix-users.csv",
            "equinix-users.jsonl",
        ];
        let paths: Vec<String> = files
            .iter()
            .map(|f| self.dir.join(f).display().to_string())
            .collect();
        diagln!("reports: {}", paths.join(", "));
    }

    /// Exit 0 when the reports agree with the truth, the listing is whole and the drift is
    /// exactly the changes made; the page's path is the last line either way, for
    /// `xdg-open "$(sshfleet demo 2>&1 | tail -1)"`.
    fn verdict(&self, html: &Path) -> Exit {
        let announce = || {
            diagln!(
                "\nthe HTML report, to open in a browser:\n{}",
                html.display()
            )
        };
        if self.stats.interrupted || self.equinix.interrupted {
            announce();
            return Exit::Interrupted;
        }
        let drift = self.drift;
        let drift_right = drift.regressed_addresses == drift.turned_on
            && drift.fixed_addresses == drift.turned_off;
        if !drift_right {
            diagln!(
                "error: the second scan's drift does not match the changes made between the scans"
            );
        }
        // The other client turned off planned cameras: exactly those are stale.
        let applied_right = self.applied.remediation.stale == drift.turned_off.len() as u64
            && self.applied.remediation.verified > 0;
        if !applied_right {
            diagln!("error: the saved plan was not applied as planned");
        }
        announce();
        if self.agree == self.total && self.equinix.complete && drift_right && applied_right {
            Exit::Clean
        } else {
            Exit::Findings
        }
    }
}

/// `report.html`: the second scan, with the trend of both scans (from the history) and its
/// drift since the first.
fn write_html(
    dir: &Path,
    history: &Path,
    first: &Summary,
    drift: &DemoDrift,
    first_at: String,
) -> anyhow::Result<std::path::PathBuf> {
    let path = dir.join("report.html");
    let now = sshfleet_core::time::now_rfc3339();
    let report = HtmlReport {
        context: format!(
            "demo: second scan of {} simulated cameras, against the first",
            drift.summary.total
        ),
        generated_at: now.clone(),
        summary: &drift.summary,
        rows: &drift.rows,
        // The history holds both runs; should it have failed, the two summaries say the same.
        trend: super::html::latest_trend(history).unwrap_or_else(|_| {
            vec![
                TrendPoint::from_summary("scan 1", &first_at, first),
                TrendPoint::from_summary("scan 2", &now, &drift.summary),
            ]
        }),
        expiring: Vec::new(),
        applied: None,
        today: sshfleet_core::time::today(),
    };
    report
        .write_to(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// What the demo's second scan found against its first.
struct DemoDrift {
    /// Addresses the "other client" changed, in camera order.
    turned_on: Vec<String>,
    turned_off: Vec<String>,
    regressed_addresses: Vec<String>,
    fixed_addresses: Vec<String>,
    /// `address (name)` of each regressed camera.
    regressed: Vec<String>,
    /// The summary's drift line.
    summary_line: String,
    /// The second scan's devices and summary, for the HTML report.
    rows: DeviceRows,
    summary: Summary,
}

/// The demo's history file, emptied: the demo owns its directory, and each demo starts a
/// new simulated fleet (new ports, so new addresses) that an old history would call moved.
fn fresh_history(dir: &Path) -> anyhow::Result<PathBuf> {
    let history = dir.join("history.sqlite");
    for suffix in ["", "-wal", "-shm"] {
        let mut name = history.clone().into_os_string();
        name.push(suffix);
        remove_if_there(Path::new(&name))?;
    }
    Ok(history)
}

/// Removes a file an earlier demo left (its journal would belong to another fleet).
fn remove_if_there(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot remove {}", path.display())),
    }
}

/// Another client turns SSH on for three readable cameras and off for two; a second scan,
/// recorded in the history as the run after the first (`rescan.jsonl`), must report exactly
/// those as `regressed` and `fixed`.
async fn rescan_after_changes(
    fleet: &Fleet,
    inventory: &Path,
    dir: &Path,
    history: &Path,
    shutdown: Shutdown,
) -> anyhow::Result<DemoDrift> {
    let (turned_on, turned_off) = another_client(fleet);
    let device = DeviceSettings {
        retries: 0,
        ..demo_device(inventory.to_owned())
    };
    let rescan = dir.join("rescan.jsonl");
    let (html_sink, html_rows) = HtmlSink::new(&dir.join("report.html"));
    let outputs = |schema: &Schema| -> anyhow::Result<Vec<RecordOutput>> {
        Ok(vec![
            report_output(Format::Jsonl, schema, &rescan)?,
            Box::new(html_sink),
        ])
    };
    let Ok((summary, _)) =
        recorded_scan(device, history, outputs, Verbosity::Quiet, shutdown).await?
    else {
        anyhow::bail!(
            "the second scan could not be recorded in {}",
            history.display()
        );
    };
    let (regressed_cameras, fixed_addresses) = changes_in(&rescan, fleet)?;
    let regressed = regressed_cameras
        .iter()
        .map(|(address, name)| format!("{address} ({name})"))
        .collect();
    let regressed_addresses = regressed_cameras.into_iter().map(|(a, _)| a).collect();
    let summary_line = summary
        .render_text()
        .lines()
        .find(|l| l.starts_with("since the previous run"))
        .map(|l| format!("{l}\n"))
        .unwrap_or_default();
    Ok(DemoDrift {
        turned_on,
        turned_off,
        regressed_addresses,
        fixed_addresses,
        regressed,
        summary_line,
        rows: html_rows.take(),
        summary,
    })
}

/// Another client turns SSH on for three readable cameras and off for two: the addresses
/// turned on, and those turned off, in camera order.
fn another_client(fleet: &Fleet) -> (Vec<String>, Vec<String>) {
    let mut turned_on = Vec::new();
    let mut turned_off = Vec::new();
    for i in 0..fleet.len() {
        let truth = fleet.truth(i);
        match truth.ssh_enabled {
            Some(false) if turned_on.len() < 3 => {
                fleet.set_ssh_enabled(i, true);
                turned_on.push(truth.address);
            }
            Some(true) if turned_off.len() < 2 => {
                fleet.set_ssh_enabled(i, false);
                turned_off.push(truth.address);
            }
            _ => {}
        }
    }
    (turned_on, turned_off)
}

/// A camera's address and name.
type Camera = (String, String);

/// The regressed cameras (address, name) and the fixed addresses of a report, in camera
/// order (records arrive as devices finish).
fn changes_in(report: &Path, fleet: &Fleet) -> anyhow::Result<(Vec<Camera>, Vec<String>)> {
    let mut regressed = Vec::new();
    let mut fixed = Vec::new();
    for rec in report::read::read_report(report)? {
        match rec.change {
            Some(report::Change::Regressed) => regressed.push((rec.address, rec.name)),
            Some(report::Change::Fixed) => fixed.push(rec.address),
            _ => {}
        }
    }
    let order: HashMap<&str, usize> = (0..fleet.len()).map(|i| (fleet.address(i), i)).collect();
    let place = |address: &str| order.get(address).copied();
    regressed.sort_by_key(|(address, _)| place(address));
    fixed.sort_by_key(|a| place(a));
    Ok((regressed, fixed))
}

/// The saved plan of the demo's change, and the journal of its apply.
const PLAN: &str = "remediation-plan.json";
const JOURNAL: &str = "remediation.journal.jsonl";
/// The apply's canary waves and failure budget.
const WAVES: &str = "1,10%,100%";
const MAX_FAILURES: &str = "10%";

/// The change planned after the first scan, as a reviewer would approve it: the plan saved
/// to `remediation-plan.json` (and readable in `remediation-plan.csv`), nothing written.
async fn plan_remediation(
    inventory: &Path,
    dir: &Path,
    verbosity: Verbosity,
) -> anyhow::Result<Summary> {
    let settings = RemediateSettings {
        plan_out: Some(dir.join(PLAN)),
        ..RemediateSettings::dry_run(remediation_device(inventory), SshState::Disabled)
    };
    let progress: Arc<dyn Reporter> = Arc::new(Progress::new(verbosity));
    let output = dir.join("remediation-plan.csv");
    super::remediate::unattended(&settings, &output, Format::Csv, progress).await
}

/// That saved plan applied exactly, after the other client's changes: in canary waves with a
/// failure budget, journaled, each write verified (`remediation.jsonl`). Cameras changed
/// since the plan are `stale` and cameras not in it are not written.
async fn apply_plan(inventory: &Path, dir: &Path, verbosity: Verbosity) -> anyhow::Result<Summary> {
    let journal = dir.join(JOURNAL);
    remove_if_there(&journal)?;
    let mut settings =
        RemediateSettings::dry_run(remediation_device(inventory), SshState::Disabled);
    settings.apply = true;
    settings.assume_yes = true;
    settings.plan = Some(dir.join(PLAN));
    settings.journal = journal;
    settings.waves = WAVES.parse().map_err(anyhow::Error::msg)?;
    settings.max_failures = Some(MAX_FAILURES.parse().map_err(anyhow::Error::msg)?);
    settings.limits.rate = Rate::per_second(NonZeroU32::new(200).unwrap_or(NonZeroU32::MIN));
    let progress: Arc<dyn Reporter> = Arc::new(Progress::new(verbosity));
    let output = dir.join("remediation.jsonl");
    super::remediate::unattended(&settings, &output, Format::Jsonl, progress).await
}

/// No retries: the first scan already waited out the throttled cameras once.
fn remediation_device(inventory: &Path) -> DeviceSettings {
    DeviceSettings {
        retries: 0,
        ..demo_device(inventory.to_owned())
    }
}

/// What the Equinix part of the demo found.
struct EquinixDemo {
    report: String,
    /// Every mock user listed exactly once.
    complete: bool,
    interrupted: bool,
}

/// Lists the mock's SSH users with the default paging into `equinix-users.csv` and `.jsonl`.
async fn list_equinix(
    fleet: &Fleet,
    dir: &Path,
    shutdown: Shutdown,
) -> anyhow::Result<EquinixDemo> {
    let (Some(url), Some(mock)) = (fleet.equinix_url(), fleet.equinix()) else {
        anyhow::bail!("the simulator started without its Equinix API");
    };
    let expected = mock.users().len() as u64;
    let client = super::equinix::mock_client(url, PAGE_CONCURRENCY)?;
    let filter = ListFilter {
        verbose: true,
        ..ListFilter::default()
    };
    let fetcher = PageFetcher::new(client, filter, PAGE_SIZE, PAGE_CONCURRENCY);
    let table = |format, path: PathBuf| -> anyhow::Result<_> {
        let output = TableWriter::new(format, open_output(&path)?);
        Ok(Named::new(path.display().to_string(), output))
    };
    let sinks = vec![
        table(Format::Csv, dir.join("equinix-users.csv"))?,
        table(Format::Jsonl, dir.join("equinix-users.jsonl"))?,
    ];
    let mut listing = super::equinix::run_listing(fetcher, sinks, shutdown).await?;
    if let Some(e) = listing.output_error.take() {
        return Err(e.into());
    }
    let stats = &listing.stats;
    let complete = stats.error.is_none() && stats.users == expected && stats.duplicates == 0;
    let mut report = listing.summary.render_text();
    report.push_str(&super::equinix::describe(
        &listing,
        PAGE_SIZE,
        PAGE_CONCURRENCY,
    ));
    if let Some(e) = &stats.error {
        report.push_str(&format!("error: {e}\n"));
    }
    report.push_str(&format!(
        "equinix listing holds {}/{expected} mock users, each once\n",
        stats.users
    ));
    Ok(EquinixDemo {
        report,
        complete,
        interrupted: stats.interrupted,
    })
}

/// The demo's slow cameras answer each request in 0.2–0.6 s (`sshfleet sim`'s in 0.5–2 s):
/// slow enough to be the fleet's stragglers, not so slow that the demo's five stages, each
/// waiting for its slowest camera, keep a person waiting.
const DEMO_SLOW_DELAYS: std::ops::RangeInclusive<Duration> =
    Duration::from_millis(200)..=Duration::from_millis(600);

/// The demo's request deadline: its slowest healthy camera answers within 0.6 s, so a dead
/// one is given up on after 2 s rather than the 15 s a real network deserves.
const DEMO_TIMEOUT: Duration = Duration::from_secs(2);

/// How the demo reaches its simulator: the defaults, a short timeout, no retries (a throttled
/// camera is reported at once instead of after a backoff of 10 s and more), the
/// simulator's password, SSH expected off.
fn demo_device(inventory: PathBuf) -> DeviceSettings {
    let password = PasswordSource::Given(Secret::new(SimConfig::default().password));
    DeviceSettings {
        timeout: DEMO_TIMEOUT,
        retries: 0,
        expect: Some(SshState::Disabled),
        ..DeviceSettings::new(inventory, password)
    }
}

fn write_file(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> anyhow::Result<()> {
    let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut out = BufWriter::new(file);
    write(&mut out).with_context(|| format!("cannot write {}", path.display()))?;
    std::io::Write::flush(&mut out).with_context(|| format!("cannot write {}", path.display()))
}

/// Counts devices whose status and SSH state match the simulator's truth.
fn compare_with_truth(report: &Path, truth: &Path) -> anyhow::Result<(usize, usize)> {
    let expected = read_jsonl(truth)?
        .into_iter()
        .filter_map(|v| {
            let address = v.get("address")?.as_str()?.to_owned();
            Some((
                address,
                (
                    v.get("expect_status")?.clone(),
                    v.get("ssh_enabled")?.clone(),
                ),
            ))
        })
        .collect::<HashMap<_, _>>();
    let agree = read_jsonl(report)?
        .iter()
        .filter(|v| {
            let address = v
                .get("address")
                .and_then(|a| a.as_str())
                .unwrap_or_default();
            expected.get(address).is_some_and(|(status, enabled)| {
                v.get("status") == Some(status) && v.get("ssh_enabled") == Some(enabled)
            })
        })
        .count();
    Ok((agree, expected.len()))
}

fn read_jsonl(path: &Path) -> anyhow::Result<Vec<serde_json::Value>> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    BufReader::new(file)
        .lines()
        .map(|line| {
            let line = line?;
            serde_json::from_str(&line)
                .with_context(|| format!("bad JSON line in {}", path.display()))
        })
        .collect()
}
