//! `sshfleet scan`: resolve flags into a scanner, stream records to the writer, summarise.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};

use super::args::{ComplianceArgs, DeviceArgs, ExpectArg, FailOn, ScanArgs, SchemeArg};
use super::html::HtmlOut;
use super::progress::Progress;
use super::{
    fit_concurrency, install_signal_handlers, open_output, report_failed, resolve_format, Exit,
    ReportPipe, Stopping,
};
use crate::history::{History, Recorder, RunInfo};
use crate::inventory::{self, InventoryOptions, RowError, Rows, Scheme, Shard};
use crate::net::auth::Credentials;
use crate::net::tls::{Pins, TrustSettings};
use crate::net::{ClientSettings, HttpClient};
use crate::probe::ProbeSettings;
use crate::report::{self, DeviceRecord, RecordWriter, Reporter, Schema, SshState, Summary};
use crate::scan::{RunStats, ScanSettings, Scanner};
use crate::secret::Secret;
use crate::shutdown::Shutdown;
use crate::vapix::SessionPolicy;
use crate::waivers::Waivers;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

pub(super) async fn run(args: ScanArgs) -> anyhow::Result<Exit> {
    let quiet = args.output.quiet;
    let metrics = MetricsOut::check(&args.compliance, "scan")?;
    let baseline = load_baseline(&args.compliance, quiet)?;
    let waivers = load_waivers(&args.compliance)?;
    let password = resolve_password(&args.device)?;
    let mut prepared = prepare(&args.device, password, quiet)?;
    let mut comparison = Comparison::open(
        &args.compliance,
        baseline,
        &args.device.inventory,
        &prepared,
        "scan",
        None,
    )?;
    if let Some(waivers) = &waivers {
        prepared.scanner = prepared.scanner.with_waivers(waivers.clone());
    }
    if let Some(rate) = args.rate {
        prepared.scanner = prepared.scanner.with_request_rate(rate);
    }
    let format = resolve_format(&args.output.output, args.output.format);
    let sink = report::writer(
        format,
        &prepared.schema(),
        open_output(&args.output.output)?,
    );
    let mut sinks = vec![sink];
    let html = HtmlOut::open(args.compliance.html_out.as_deref()).map(|(html, sink)| {
        sinks.push(sink);
        html
    });
    let (trigger, shutdown) = install_signal_handlers(quiet, Stopping::Devices);
    let progress: Arc<dyn Reporter> =
        Arc::new(Progress::new(quiet).stop_on_output_failure(trigger));
    let (baseline, store) = comparison.parts();
    let metrics = metrics.map(|m| m.shard(prepared.shard));
    let run = execute(prepared, sinks, progress, shutdown, baseline, store).await;
    let (mut summary, stats) = match run {
        Ok(done) => done,
        Err(e) => {
            MetricsOut::after_report_failure(metrics.as_ref(), &e, quiet);
            return Ok(report_failed(&e));
        }
    };
    forget_gone_if_interrupted(&mut summary, &stats);
    if !quiet {
        diag!("{}", summary.render_text());
        report_waivers(waivers.as_deref());
        report_interruption(&stats);
    }
    let recorded = comparison.finish(&summary, &stats, quiet);
    let written =
        metrics.and_then(|m| m.write(&summary, !stats.interrupted && recorded.is_none(), quiet));
    let html_failed = html.and_then(|html| {
        let context = format!("scan of {}", args.device.inventory.display());
        html.write(
            context,
            &summary,
            comparison.run(),
            waivers.as_deref(),
            None,
        )
    });
    if let Some(exit) = recorded.or(written).or(html_failed) {
        return Ok(exit);
    }
    Ok(exit_for(&summary, &stats, args.compliance.fail_on))
}

/// `--metrics-out`: where the run's metrics go, and what they say about the run itself.
pub(super) struct MetricsOut {
    path: PathBuf,
    command: &'static str,
    shard: Option<String>,
    started: std::time::Instant,
}

impl MetricsOut {
    /// Checks the destination before any work (a directory that is not there refuses the
    /// run, exit 2); the clock of the run's duration starts here.
    pub(super) fn check(
        args: &ComplianceArgs,
        command: &'static str,
    ) -> anyhow::Result<Option<MetricsOut>> {
        let Some(path) = &args.metrics_out else {
            return Ok(None);
        };
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        if !dir.is_dir() {
            bail!(
                "--metrics-out {}: the directory {} does not exist",
                path.display(),
                dir.display()
            );
        }
        if path.is_dir() {
            bail!(
                "--metrics-out {} is a directory; name a file",
                path.display()
            );
        }
        Ok(Some(MetricsOut {
            path: path.clone(),
            command,
            shard: None,
            started: std::time::Instant::now(),
        }))
    }

    /// Labels every sample with the shard this run covers.
    pub(super) fn shard(mut self, shard: Option<Shard>) -> MetricsOut {
        self.shard = shard.map(|s| s.to_string());
        self
    }

    /// Writes the metrics; `Some(exit)` when that failed (an output failure, exit 4).
    pub(super) fn write(&self, summary: &Summary, succeeded: bool, quiet: bool) -> Option<Exit> {
        let facts = report::metrics::RunFacts {
            command: self.command,
            shard: self.shard.clone(),
            duration: self.started.elapsed(),
            finished: std::time::SystemTime::now(),
            succeeded,
        };
        let previous = report::metrics::previous_success(&self.path);
        let text = report::metrics::render(summary, &facts, previous);
        match report::metrics::write_atomically(&self.path, &text) {
            Ok(()) => {
                if !quiet {
                    diagln!("metrics written to {}", self.path.display());
                }
                None
            }
            Err(e) => {
                diagln!(
                    "error: cannot write the metrics to {}: {e}; the report is complete",
                    self.path.display()
                );
                Some(Exit::OutputFailed)
            }
        }
    }

    /// A run whose report failed still tells the metrics (as a failed run), so that the
    /// alert on the last success is not the only sign.
    pub(super) fn after_report_failure(
        metrics: Option<&MetricsOut>,
        error: &anyhow::Error,
        quiet: bool,
    ) {
        let Some(metrics) = metrics else { return };
        let summary = error
            .chain()
            .find_map(|cause| cause.downcast_ref::<report::ReportError>())
            .and_then(report::ReportError::summary);
        if let Some(summary) = summary {
            let _ = metrics.write(summary, false, quiet);
        }
    }
}

/// The devices a run covers, as the history keys its runs: the inventory file, its rows
/// (fingerprinted), and the shard.
pub(super) struct Scope<'a> {
    pub inventory: &'a Path,
    pub devices: &'a Rows,
    pub shard: Option<Shard>,
}

/// What a run compares with: a `--baseline` report, or the previous run of its scope in the
/// `--history` file (which also records this run).
pub(super) struct Comparison {
    baseline: Option<report::Baseline>,
    recorder: Option<Arc<Mutex<Recorder>>>,
    path: Option<PathBuf>,
}

impl Comparison {
    /// Opens the history (taking its lock for the whole run) before anything is sent; a
    /// history that cannot be used refuses the run (exit 2).
    pub(super) fn open(
        args: &ComplianceArgs,
        baseline: Option<report::Baseline>,
        inventory: &Path,
        prepared: &PreparedScan,
        command: &'static str,
        target: Option<String>,
    ) -> anyhow::Result<Comparison> {
        let scope = Scope {
            inventory,
            devices: &prepared.devices,
            shard: prepared.shard,
        };
        Comparison::for_scope(args, baseline, scope, command, target)
    }

    /// As [`Comparison::open`], for the devices of `scope` (a merge has no scanner).
    pub(super) fn for_scope(
        args: &ComplianceArgs,
        baseline: Option<report::Baseline>,
        scope: Scope<'_>,
        command: &'static str,
        target: Option<String>,
    ) -> anyhow::Result<Comparison> {
        let Some(path) = &args.history else {
            return Ok(Comparison {
                baseline,
                recorder: None,
                path: None,
            });
        };
        let inventory = scope.inventory;
        let fingerprint = crate::remediate::inventory_fingerprint(scope.devices.devices());
        let canonical = std::fs::canonicalize(inventory).unwrap_or_else(|_| inventory.to_owned());
        let shard = scope.shard.map(|s| s.to_string());
        let scope = match &shard {
            Some(shard) => format!("{}#shard={shard}", canonical.display()),
            None => canonical.display().to_string(),
        };
        let info = RunInfo {
            command,
            scope,
            inventory_fingerprint: fingerprint,
            shard,
            target,
        };
        let (recorder, previous) = History::open(path)?.begin_run(&info)?;
        tracing::info!(
            run = recorder.run_id(),
            previous = previous.len(),
            "history opened"
        );
        Ok(Comparison {
            // The first run of a scope has nothing to compare with: every device is new.
            baseline: Some(report::Baseline::new(previous)),
            recorder: Some(Arc::new(Mutex::new(recorder))),
            path: Some(path.clone()),
        })
    }

    /// The writer's part: the baseline to annotate with, the store to record into.
    pub(super) fn parts(&mut self) -> (Option<report::Baseline>, Option<report::SharedStore>) {
        let store = self.recorder.clone().map(|r| -> report::SharedStore { r });
        (self.baseline.take(), store)
    }

    /// The history file and this run's id in it, when there is one.
    pub(super) fn run(&self) -> Option<(&Path, i64)> {
        let run = self.recorder.as_ref()?;
        let id = run.lock().unwrap_or_else(PoisonError::into_inner).run_id();
        Some((self.path.as_deref()?, id))
    }

    /// Commits the run to the history; `Some(exit)` when that failed (an output failure).
    pub(super) fn finish(&self, summary: &Summary, stats: &RunStats, quiet: bool) -> Option<Exit> {
        let recorder = self.recorder.as_ref()?;
        let mut recorder = recorder.lock().unwrap_or_else(PoisonError::into_inner);
        match recorder.finish(summary, stats.interrupted) {
            Ok(run) => {
                if !quiet {
                    let path = self.path.as_deref().unwrap_or(Path::new(""));
                    diagln!("recorded as run {run} in {}", path.display());
                }
                None
            }
            Err(e) => {
                diagln!("error: {e}; the report is complete, the history did not record this run");
                Some(Exit::OutputFailed)
            }
        }
    }
}

/// Reads `--waivers` before anything else happens; a bad file refuses the run (exit 2).
pub(super) fn load_waivers(args: &ComplianceArgs) -> anyhow::Result<Option<Arc<Waivers>>> {
    let Some(path) = &args.waivers else {
        return Ok(None);
    };
    let waivers = Waivers::load(path, crate::time::today())?;
    tracing::info!(waivers = waivers.len(), path = %path.display(), "waivers loaded");
    Ok(Some(Arc::new(waivers)))
}

/// The waivers' part of the summary: what they hid, what resurfaced, what expires soon
/// and what matched nothing.
pub(super) fn report_waivers(waivers: Option<&Waivers>) {
    let Some(waivers) = waivers else {
        return;
    };
    let report = waivers.report();
    for (id, owner, expires, n) in &report.used {
        diagln!("waiver {id} ({owner}, until {expires}) allows {n} device(s)");
    }
    for (id, owner, expires, n) in &report.resurfaced {
        diagln!("EXPIRED waiver {id} ({owner}, expired after {expires}): {n} device(s) are findings again");
    }
    for (id, owner, expires) in &report.expiring {
        diagln!(
            "waiver {id} ({owner}) expires {expires}, within {} days",
            crate::waivers::EXPIRING_WITHIN_DAYS
        );
    }
    if !report.unmatched.is_empty() {
        diagln!(
            "waivers matching no device: {}",
            report.unmatched.join(", ")
        );
    }
}

/// Reads `--baseline` before anything else happens; a bad one is an input error (exit 2).
pub(super) fn load_baseline(
    args: &ComplianceArgs,
    quiet: bool,
) -> anyhow::Result<Option<report::Baseline>> {
    if args.baseline.is_some() && args.history.is_some() {
        bail!("--baseline and --history both name the previous run: give one");
    }
    let Some(path) = &args.baseline else {
        if args.fail_on == FailOn::Regressions && args.history.is_none() {
            bail!(
                "--fail-on regressions needs a previous run to compare with: add --baseline REPORT or --history FILE"
            );
        }
        return Ok(None);
    };
    let previous = report::read::read_report(path)?;
    if previous.is_empty() && !quiet {
        diagln!(
            "warning: the baseline {} holds no devices: every device is new",
            path.display()
        );
    }
    tracing::info!(devices = previous.len(), path = %path.display(), "baseline loaded");
    Ok(Some(report::Baseline::new(previous)))
}

/// Devices an interrupted run did not reach are not gone: only a whole run says so.
pub(super) fn forget_gone_if_interrupted(summary: &mut Summary, stats: &RunStats) {
    if let (true, Some(drift)) = (stats.interrupted, summary.drift.as_mut()) {
        drift.forget_gone();
    }
}

/// A scan ready to run: the scanner, the devices of this shard and the rows already judged.
pub(super) struct PreparedScan {
    pub scanner: Scanner,
    /// The devices, parsed one at a time as they are dispatched.
    pub devices: Rows,
    pub invalid: Vec<DeviceRecord>,
    pub extra_columns: Vec<String>,
    pub shard: Option<Shard>,
}

impl PreparedScan {
    pub fn schema(&self) -> Schema {
        Schema {
            remediation: false,
            extra_columns: self.extra_columns.clone(),
        }
    }
}

/// Loads the inventory and builds the scanner; any error here is an input error (exit 2).
pub(super) fn prepare(
    args: &DeviceArgs,
    password: Secret,
    quiet: bool,
) -> anyhow::Result<PreparedScan> {
    let options = InventoryOptions {
        default_scheme: match args.scheme {
            SchemeArg::Http => Scheme::Http,
            SchemeArg::Https => Scheme::Https,
        },
    };
    if args.timeout.is_zero() {
        bail!("--timeout must be greater than zero");
    }
    let mut inventory = inventory::load(&args.inventory, &options)?;
    let shard = resolve_shard(args.shard)?;
    if let Some(shard) = shard {
        inventory.retain_shard(shard);
    }
    if !quiet {
        for warning in &inventory.warnings {
            diagln!("warning: {warning}");
        }
    }
    let row_passwords = resolve_row_passwords(&mut inventory.rows);
    let invalid: Vec<DeviceRecord> = inventory
        .rows
        .take_invalid()
        .iter()
        .map(DeviceRecord::from_invalid)
        .collect();
    let concurrency = fit_concurrency(args.concurrency, quiet);
    tracing::info!(
        devices = inventory.rows.len(),
        invalid = invalid.len(),
        concurrency,
        "inventory loaded"
    );
    let http = HttpClient::new(&client_settings(args)?)?;
    let settings = ScanSettings {
        concurrency,
        credentials: Credentials {
            username: args.username.clone(),
            password,
        },
        row_passwords,
        policy: SessionPolicy {
            retries: args.retries,
            allow_basic_http: args.allow_basic_http,
            ..SessionPolicy::default()
        },
        expect: args.expect.map(|e| match e {
            ExpectArg::Disabled => SshState::Disabled,
            ExpectArg::Enabled => SshState::Enabled,
        }),
        grace: Duration::from_secs(10).min(args.timeout + Duration::from_secs(1)),
        waivers: None,
        probe: args
            .probe_ssh
            .then(|| ProbeSettings::for_timeout(args.timeout)),
        device_info: args.device_info,
    };
    Ok(PreparedScan {
        scanner: Scanner::new(Arc::new(http), settings),
        devices: inventory.rows,
        invalid,
        extra_columns: inventory.extra_columns,
        shard,
    })
}

/// Streams the invalid rows, then every device, through one writer thread.
pub(super) async fn execute(
    prepared: PreparedScan,
    sinks: Vec<Box<dyn RecordWriter>>,
    progress: Arc<dyn Reporter>,
    shutdown: Shutdown,
    baseline: Option<report::Baseline>,
    store: Option<report::SharedStore>,
) -> anyhow::Result<(Summary, RunStats)> {
    let pipe = ReportPipe::with_baseline(
        sinks,
        progress,
        prepared.devices.len() + prepared.invalid.len(),
        baseline,
        store,
    );
    pipe.send_all(prepared.invalid).await;
    let stats = prepared
        .scanner
        .run(prepared.devices, pipe.sender(), shutdown)
        .await;
    let summary = pipe.close().await?;
    Ok((summary, stats))
}

pub(super) fn exit_for(summary: &Summary, stats: &RunStats, fail_on: FailOn) -> Exit {
    let failing = match fail_on {
        FailOn::Findings => summary.findings(),
        FailOn::Regressions => summary.new_exposure,
        FailOn::Never => 0,
    };
    if stats.interrupted {
        Exit::Interrupted
    } else if failing > 0 {
        Exit::Findings
    } else {
        Exit::Clean
    }
}

pub(super) fn report_interruption(stats: &RunStats) {
    if stats.interrupted {
        diagln!(
            "interrupted: {} device(s) not checked; the report holds every device that was",
            stats.not_checked
        );
    }
}

/// `--password-file` first line, else the `--password-env` variable. A password never comes
/// from argv (it would show in `ps` and shell history).
pub(super) fn resolve_password(args: &DeviceArgs) -> anyhow::Result<Secret> {
    if let Some(path) = &args.password_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read password file {}", path.display()))?;
        let line = text.lines().next().unwrap_or_default();
        return Ok(Secret::new(line.trim_end_matches('\r')));
    }
    match std::env::var(&args.password_env) {
        Ok(value) => Ok(Secret::new(value)),
        Err(std::env::VarError::NotPresent) => bail!(
            "no password: set the environment variable {} or pass --password-file",
            args.password_env
        ),
        Err(std::env::VarError::NotUnicode(_)) => {
            bail!(
                "the environment variable {} is not valid UTF-8",
                args.password_env
            )
        }
    }
}

fn resolve_shard(explicit: Option<Shard>) -> anyhow::Result<Option<Shard>> {
    if explicit.is_some() {
        return Ok(explicit);
    }
    match Shard::from_env() {
        Some(Ok(shard)) => Ok(Some(shard)),
        Some(Err(e)) => bail!("JOB_COMPLETION_INDEX/JOB_COMPLETIONS: {e}"),
        None => Ok(None),
    }
}

/// Reads each `password_env` variable once; rows naming an unset variable become invalid.
fn resolve_row_passwords(rows: &mut Rows) -> HashMap<String, Secret> {
    let mut passwords: HashMap<String, Option<Secret>> = HashMap::new();
    rows.reject(|device| {
        let var = device.password_env.as_ref()?;
        let found = passwords
            .entry(var.clone())
            .or_insert_with(|| std::env::var(var).ok().map(Secret::new));
        found
            .is_none()
            .then(|| RowError::PasswordEnvUnset { var: var.clone() })
    });
    passwords
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect()
}

fn client_settings(args: &DeviceArgs) -> anyhow::Result<ClientSettings> {
    let pins = match &args.pin_file {
        Some(path) => Pins::load(path)?,
        None => Pins::default(),
    };
    Ok(ClientSettings {
        timeout: args.timeout,
        trust: TrustSettings {
            ca_file: args.ca_file.clone(),
            pins,
            insecure: args.insecure,
        },
        ..ClientSettings::default()
    })
}
