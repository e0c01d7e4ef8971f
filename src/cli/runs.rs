//! What every device run does around the engine: the previous run it compares with (a
//! baseline or the history), its waivers, metrics and exit code, and streaming its records
//! through the report pipeline. Shared by `scan`, `remediate`, `report merge` and the demo.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::bail;

use super::args::OutputArgs;
use super::html::HtmlOut;
use super::Exit;
use crate::breaker::StoppedAccount;
use crate::files::RunFiles;
use crate::history::{History, Recorder, RunInfo};
use crate::inventory::{Limit, Rows, Shard};
use crate::report::pipeline::OnOutputFailure;
use crate::report::{self, RecordSinks, Summary};
use crate::scan::RunStats;
use crate::settings::{ComplianceSettings, FailOn, PreparedScan};
use crate::shutdown::Shutdown;
use crate::waivers::Waivers;

/// The files a device run needs (`--inventory`, `--waivers`, `--history`, `--password-file`)
/// and those it writes (`-o`, `--html-out`, `--metrics-out`), for the check that no output
/// destroys another file of the run.
pub(super) fn run_files<'a>(
    inventory: &'a Path,
    password_file: Option<&'a Path>,
    compliance: &'a ComplianceSettings,
    output: &'a Path,
) -> RunFiles<'a> {
    let mut files = RunFiles::default();
    files
        .kept("--inventory", Some(inventory))
        .kept("--password-file", password_file)
        .kept("--waivers", compliance.waivers.as_deref())
        .kept("--history", compliance.history.as_deref())
        .written("-o", Some(output))
        .written("--html-out", compliance.html_out.as_deref())
        .written("--metrics-out", compliance.metrics_out.as_deref())
        .written("--summary-out", compliance.summary_out.as_deref());
    files
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
        args: &ComplianceSettings,
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
        match crate::files::write_atomically(&self.path, text.as_bytes()) {
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
            .map(report::ReportError::summary);
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
    /// `--limit`: a limited run is a scope of its own (its devices are not the others').
    pub limit: Option<&'a Limit>,
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
        args: &ComplianceSettings,
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
            limit: prepared.limit.as_ref(),
        };
        Comparison::for_scope(args, baseline, scope, command, target)
    }

    /// As [`Comparison::open`], for the devices of `scope` (a merge has no scanner).
    pub(super) fn for_scope(
        args: &ComplianceSettings,
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
        let (inventory, limit) = (scope.inventory, scope.limit);
        let fingerprint = crate::remediate::inventory_fingerprint(scope.devices.devices());
        let canonical = std::fs::canonicalize(inventory).unwrap_or_else(|_| inventory.to_owned());
        let shard = scope.shard.map(|s| s.to_string());
        let mut scope = match &shard {
            Some(shard) => format!("{}#shard={shard}", canonical.display()),
            None => canonical.display().to_string(),
        };
        if let Some(limit) = limit {
            scope.push_str(&format!("#limit={limit}"));
        }
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
pub(super) fn load_waivers(args: &ComplianceSettings) -> anyhow::Result<Option<Arc<Waivers>>> {
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
    let shown = |s: &str| crate::inert::line(s).into_owned();
    for (id, owner, expires, n) in &report.used {
        let (id, owner, expires) = (shown(id), shown(owner), shown(expires));
        diagln!("waiver {id} ({owner}, until {expires}) allows {n} device(s)");
    }
    for (id, owner, expires, n) in &report.resurfaced {
        let (id, owner, expires) = (shown(id), shown(owner), shown(expires));
        diagln!("EXPIRED waiver {id} ({owner}, expired after {expires}): {n} device(s) are findings again");
    }
    for (id, owner, expires) in &report.expiring {
        let (id, owner, expires) = (shown(id), shown(owner), shown(expires));
        diagln!(
            "waiver {id} ({owner}) expires {expires}, within {} days",
            crate::waivers::EXPIRING_WITHIN_DAYS
        );
    }
    if !report.unmatched.is_empty() {
        diagln!(
            "waivers matching no device: {}",
            shown(&report.unmatched.join(", "))
        );
    }
}

/// Reads `--baseline` before anything else happens; a bad one is an input error (exit 2).
/// (Whether it goes with `--history` and `--fail-on` was settled by `resolve::compliance`.)
pub(super) fn load_baseline(
    args: &ComplianceSettings,
    quiet: bool,
) -> anyhow::Result<Option<report::Baseline>> {
    let Some(path) = &args.baseline else {
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

/// `--summary-out FILE.json`: the JSON summary, replaced atomically; `Some(exit)` when it
/// could not be written (an output failure, said even with `--quiet`).
pub(super) fn write_summary(path: Option<&Path>, summary: &Summary, quiet: bool) -> Option<Exit> {
    let path = path?;
    let mut text = summary.to_json();
    text.push('\n');
    match crate::files::write_atomically(path, text.as_bytes()) {
        Ok(()) => {
            if !quiet {
                diagln!("summary written to {}", path.display());
            }
            None
        }
        Err(e) => {
            diagln!(
                "error: cannot write the summary to {}: {e}; the report is complete",
                path.display()
            );
            Some(Exit::OutputFailed)
        }
    }
}

/// Marks the summary of a run stopped by Ctrl-C: every output then says it is incomplete.
pub(super) fn mark_interrupted(summary: &mut Summary, stats: &RunStats) {
    if stats.interrupted {
        summary.stopped = Some(report::Stop::Interrupted);
    }
}

/// Devices an interrupted run did not reach are not gone: only a whole run says so.
pub(super) fn forget_gone_if_interrupted(summary: &mut Summary, stats: &RunStats) {
    if let (true, Some(drift)) = (stats.interrupted, summary.drift.as_mut()) {
        drift.forget_gone();
    }
}

/// Streams the invalid rows, then every device, through one writer thread.
pub(super) async fn execute(
    prepared: PreparedScan,
    sinks: RecordSinks,
    on_failure: OnOutputFailure,
    shutdown: Shutdown,
) -> anyhow::Result<(Summary, RunStats)> {
    let total = prepared.devices.len() + prepared.invalid.len();
    let pipe = report::record_pipeline(sinks, total, on_failure);
    pipe.send_all(prepared.invalid).await;
    let stats = prepared
        .scanner
        .run(prepared.devices, pipe.sender(), shutdown)
        .await;
    let summary = report::finish(pipe).await?;
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
            "interrupted: {} device(s) not checked; the report holds every device checked before the stop.",
            stats.not_checked
        );
    }
}

/// Each account the credential breaker stopped using: which, where its password comes
/// from, how many devices were not tried. An error, said even with `--quiet`.
pub(super) fn report_stopped_accounts(stopped: &[StoppedAccount]) {
    for stopped in stopped {
        diagln!(
            "error: the account {} was rejected by all {} devices that answered and accepted by none; {} more devices using it were not tried (status auth_failed, error \"not tried: …\"). Check the user name and that password, then run again (--no-auth-breaker tries every device).",
            stopped.account, stopped.rejected, stopped.not_tried
        );
    }
}

/// A run whose credential breaker stopped an account fails whatever `--fail-on` says: the
/// devices it left were not checked because of a wrong account, not judged.
pub(super) fn fail_if_accounts_stopped(exit: Exit, stopped: &[StoppedAccount]) -> Exit {
    match exit {
        Exit::Clean if !stopped.is_empty() => Exit::Findings,
        exit => exit,
    }
}

/// The warnings of preparing a run (inventory, concurrency), unless quiet.
pub(super) fn say_warnings(prepared: &PreparedScan, quiet: bool) {
    if !quiet {
        for warning in &prepared.warnings {
            diagln!("warning: {warning}");
        }
    }
}

/// What a run writes besides its report once it is over: its run in the history, its
/// metrics and its HTML page.
pub(super) struct Ending<'a> {
    pub comparison: &'a Comparison,
    pub metrics: Option<&'a MetricsOut>,
    pub waivers: Option<&'a Waivers>,
    /// `--summary-out`.
    pub summary_out: Option<&'a Path>,
    pub quiet: bool,
}

impl Ending<'_> {
    /// Records the run; `succeeded` is the run's own verdict (the metrics also count a
    /// history that failed). The first write that failed gives the exit (an output failure).
    pub(super) fn record(
        &self,
        summary: &Summary,
        stats: &RunStats,
        succeeded: bool,
        html: Option<(HtmlOut, String)>,
        applied: Option<bool>,
    ) -> Option<Exit> {
        let history_failed = self.comparison.finish(summary, stats, self.quiet);
        let succeeded = succeeded && history_failed.is_none();
        let metrics_failed = self
            .metrics
            .and_then(|m| m.write(summary, succeeded, self.quiet));
        let html_failed = html.and_then(|(html, context)| {
            let run = self.comparison.run();
            html.write(context, summary, run, self.waivers, applied)
        });
        let summary_failed = write_summary(self.summary_out, summary, self.quiet);
        history_failed
            .or(metrics_failed)
            .or(html_failed)
            .or(summary_failed)
    }
}

/// The report and, with `--html-out`, the page's rows as a second output.
pub(super) fn outputs(
    output: &OutputArgs,
    schema: &report::Schema,
    compliance: &ComplianceSettings,
) -> anyhow::Result<(Vec<report::RecordOutput>, Option<HtmlOut>)> {
    let format = super::resolve_format(&output.output, output.format);
    let report = super::report_output(format, schema, &output.output)?;
    Ok(outputs_with(report, compliance))
}

/// `report` and, with `--html-out`, the page's rows as a second output.
pub(super) fn outputs_with(
    report: report::RecordOutput,
    compliance: &ComplianceSettings,
) -> (Vec<report::RecordOutput>, Option<HtmlOut>) {
    let mut sinks = vec![report];
    let html = HtmlOut::open(compliance.html_out.as_deref()).map(|(html, sink)| {
        sinks.push(sink);
        html
    });
    (sinks, html)
}

/// The files a finished run wrote, said last so a person knows where to look.
pub(super) fn say_files_written(output: &Path, compliance: &ComplianceSettings) {
    let report = Some(output).filter(|path| path.as_os_str() != "-");
    let extra = [
        compliance.html_out.as_deref(),
        compliance.metrics_out.as_deref(),
        compliance.summary_out.as_deref(),
        compliance.history.as_deref(),
    ];
    let written: Vec<String> = report
        .into_iter()
        .chain(extra.into_iter().flatten())
        .map(|path| path.display().to_string())
        .collect();
    if !written.is_empty() {
        diagln!("files written: {}", written.join(", "));
    }
}

/// A scan with no desired state anywhere judges no device: say so, or "0 non-compliant"
/// reads as good news.
pub(super) fn warn_without_desired_state(desired_state_given: bool, quiet: bool) {
    if !quiet && !desired_state_given {
        diagln!(
            "warning: no desired SSH state was given (no --expect, no `expect` column in the inventory): cameras with SSH enabled are not findings; add --expect disabled"
        );
    }
}
