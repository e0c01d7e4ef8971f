//! The lifecycle of one device run around the engine, whatever command runs it (`scan`,
//! `remediate`, `report merge`, the demo): the previous run it compares with (a `--baseline`
//! report, or its scope's last run in the `--history` file, which also records it), its
//! waivers, streaming its records through the report pipeline, and what it writes once it is
//! over (the history's run, `--metrics-out`, `--html-out`, `--summary-out`) with the verdict
//! the exit code is made of.
//!
//! A run goes [`Run::open`] (nothing sent yet: every file it reads is read, every
//! destination checked), [`Run::open_history`] once its devices are known,
//! [`Run::pipeline`] or [`Run::scan`], then [`Run::settle`] and [`Run::finish`]. Nothing here
//! prints: what happened comes back as [`Note`]s for the caller to say, and the verdict as a
//! [`Verdict`] for it to map to an exit code.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Instant, SystemTime};

use anyhow::bail;

use crate::scan::{RunStats, Scanner};
use crate::settings::{ComplianceSettings, FailOn, PreparedScan};
use crate::waivers::Waivers;
use sshfleet_core::shutdown::Shutdown;
use sshfleet_history::{Ending, History, HistoryError, Recorder, RunInfo, RunRow};
use sshfleet_inventory::{Limit, Rows, Shard};
use sshfleet_net::breaker::StoppedAccount;
use sshfleet_report as report;
use sshfleet_report::html::{ExpiringWaiver, HtmlReport, HtmlRows, HtmlSink, TrendPoint};
use sshfleet_report::pipeline::OnOutputFailure;
use sshfleet_report::{
    Baseline, RecordOutput, RecordPipeline, RecordSinks, Reporter, SshState, Summary,
};

/// Which command a run is, as its metrics and its history name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunKind {
    Scan,
    /// `remediate` to `target`; `apply` when it writes.
    Remediate {
        target: SshState,
        apply: bool,
    },
    /// `report merge`: shard reports read back, no device reached.
    Merge,
}

impl RunKind {
    /// The `command` label of the metrics.
    fn metrics_command(self) -> &'static str {
        match self {
            RunKind::Scan => "scan",
            RunKind::Remediate { .. } => "remediate",
            RunKind::Merge => "report merge",
        }
    }

    /// The command the history records.
    fn history_command(self) -> &'static str {
        match self {
            RunKind::Remediate { apply: true, .. } => "remediate --apply",
            kind => kind.metrics_command(),
        }
    }

    /// The state a remediation sets, as the history records it.
    fn target(self) -> Option<String> {
        match self {
            RunKind::Remediate { target, .. } => Some(target.as_str().to_owned()),
            RunKind::Scan | RunKind::Merge => None,
        }
    }
}

/// What a run is asked to compare with and write besides its report.
#[derive(Clone, Debug)]
pub struct RunSettings {
    pub kind: RunKind,
    pub compliance: ComplianceSettings,
    /// The shard the run covers: every metrics sample is labelled with it.
    pub shard: Option<Shard>,
}

impl RunSettings {
    /// A scan of `shard` (or of the whole inventory), compared and recorded as `compliance` says.
    pub fn scan(compliance: ComplianceSettings, shard: Option<Shard>) -> RunSettings {
        RunSettings {
            kind: RunKind::Scan,
            compliance,
            shard,
        }
    }
}

/// The devices a run covers, as the history keys its runs: the inventory file, its rows
/// (fingerprinted), the shard and the limit.
pub struct Scope<'a> {
    pub inventory: &'a Path,
    pub devices: &'a Rows,
    pub shard: Option<Shard>,
    /// `--limit`: a limited run is a scope of its own (its devices are not the others').
    pub limit: Option<&'a Limit>,
}

impl Scope<'_> {
    /// The scope of a prepared device run of `inventory`.
    pub fn of<'a>(inventory: &'a Path, prepared: &'a PreparedScan) -> Scope<'a> {
        Scope {
            inventory,
            devices: &prepared.devices,
            shard: prepared.shard,
            limit: prepared.limit.as_ref(),
        }
    }

    /// The history's key of this scope: the canonical inventory path, with the shard and
    /// the limit when there are.
    fn key(&self) -> String {
        let canonical =
            std::fs::canonicalize(self.inventory).unwrap_or_else(|_| self.inventory.to_owned());
        let mut key = canonical.display().to_string();
        if let Some(shard) = self.shard {
            key.push_str(&format!("#shard={shard}"));
        }
        if let Some(limit) = self.limit {
            key.push_str(&format!("#limit={limit}"));
        }
        key
    }
}

/// Where a run's records go besides its history and its HTML page.
pub struct Outputs {
    /// The report (or the terminal's table).
    pub reports: Vec<RecordOutput>,
    pub reporter: Arc<dyn Reporter>,
    pub on_failure: OnOutputFailure,
}

/// Whether a run did all it was asked: the metrics' `succeeded`, and a run that did not is
/// not clean.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Completion {
    Complete,
    /// Interrupted, refused, short of coverage, its journal failed, or (for the metrics)
    /// its report failed or the history did not record it.
    Incomplete,
}

impl Completion {
    /// A run that went through every device unless Ctrl-C stopped it.
    pub fn of(stats: &RunStats) -> Completion {
        if stats.interrupted {
            Completion::Incomplete
        } else {
            Completion::Complete
        }
    }
}

/// What a run ends with, once its report is closed.
pub struct RunEnd<'a> {
    /// The summary as settled by [`Run::settle`] (and whatever the command adds).
    pub summary: &'a Summary,
    pub stats: &'a RunStats,
    pub completion: Completion,
    /// Accounts the credential breaker stopped: their devices were not judged, so the run
    /// is not clean whatever `--fail-on` says.
    pub stopped_accounts: &'a [StoppedAccount],
    /// The HTML page's title line (`scan of inventory.csv`).
    pub page_context: String,
    /// A remediation: whether it wrote (the page says "applied" or "dry run").
    pub applied: Option<bool>,
}

/// Something a run did or failed to do once over, for the caller to say: failures and
/// warnings always, the files written unless quiet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Note {
    Recorded {
        history: PathBuf,
        run: i64,
    },
    /// The central history could not be reached, or was lost during the run: the run is
    /// kept in the spool (said always, with how to upload it).
    Spooled {
        spool: PathBuf,
        run: i64,
        /// The central history, as it may be printed (no password).
        central: String,
        reason: String,
        when: Lost,
    },
    /// The history did not record the run.
    HistoryFailed {
        error: String,
    },
    MetricsWritten {
        path: PathBuf,
    },
    MetricsFailed {
        path: PathBuf,
        error: String,
    },
    /// The page is written without its trend (a warning).
    PageWithoutTrend {
        error: String,
    },
    PageFailed {
        path: PathBuf,
        error: String,
    },
    SummaryWritten {
        path: PathBuf,
    },
    SummaryFailed {
        path: PathBuf,
        error: String,
    },
}

impl Note {
    /// An output of the run could not be written (exit 4).
    pub(crate) fn is_failure(&self) -> bool {
        matches!(
            self,
            Note::HistoryFailed { .. }
                | Note::MetricsFailed { .. }
                | Note::PageFailed { .. }
                | Note::SummaryFailed { .. }
        )
    }
}

/// When a run lost its central history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lost {
    /// It could not be reached when the run began: the run was recorded into the spool.
    AtStart,
    /// The connection was lost during the run, before its commit: the run, held until
    /// then, was recorded into the spool at its end.
    DuringRun,
}

/// What a run's outcome makes of its exit, before what only a command knows (a refused
/// plan, a failed journal, a stop on purpose).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every device checked and none failing `--fail-on`.
    Clean,
    /// Devices failing `--fail-on`, an incomplete run, or accounts stopped.
    Findings,
    /// Stopped by Ctrl-C.
    Interrupted,
    /// An output of the run (history, metrics, page, summary) could not be written.
    OutputFailed,
}

/// What [`Run::finish`] did: its notes, in the order done, and the verdict.
#[derive(Debug)]
pub struct RunOutcome {
    pub notes: Vec<Note>,
    judged: Verdict,
}

impl RunOutcome {
    /// An output failed: that outranks what the devices say.
    pub fn output_failed(&self) -> bool {
        self.notes.iter().any(Note::is_failure)
    }

    pub fn verdict(&self) -> Verdict {
        if self.output_failed() {
            Verdict::OutputFailed
        } else {
            self.judged
        }
    }
}

/// A recording begun: its recorder, the previous run's devices, and (when the central
/// history could not be reached) its name and why.
type Begun = (
    Recorder,
    Vec<report::read::Observation>,
    Option<(String, String)>,
);

/// The central history a run lost: as it may be printed, and why.
struct LostHistory {
    central: String,
    reason: String,
}

/// A run in its history: the file and the recorder that holds its lock.
struct Recording {
    path: PathBuf,
    recorder: Arc<Mutex<Recorder>>,
    /// Kept in the spool instead of the central history: its name and why.
    spooled: Option<(String, String)>,
}

/// `--html-out`: the page's rows, gathered as records stream, written once the run is over.
struct Page {
    path: PathBuf,
    rows: HtmlRows,
}

/// One device run, from the files it reads to what it writes once over.
pub struct Run {
    kind: RunKind,
    compliance: ComplianceSettings,
    shard: Option<String>,
    /// The clock of the metrics' duration.
    started: Instant,
    baseline: Option<Baseline>,
    waivers: Option<Arc<Waivers>>,
    history: Option<Recording>,
    page: Option<Page>,
    warnings: Vec<String>,
}

impl Run {
    /// Checks the metrics' destination, reads `--baseline` and `--waivers`: the first that
    /// cannot be used refuses the run (an input error, nothing sent). The clock of the
    /// run's duration starts here.
    pub fn open(settings: RunSettings) -> anyhow::Result<Run> {
        let started = Instant::now();
        let compliance = settings.compliance;
        check_metrics_destination(compliance.metrics_out.as_deref())?;
        let (baseline, warnings) = load_baseline(compliance.baseline.as_deref())?;
        let waivers = load_waivers(compliance.waivers.as_deref())?;
        Ok(Run {
            kind: settings.kind,
            shard: settings.shard.map(|s| s.to_string()),
            compliance,
            started,
            baseline,
            waivers,
            history: None,
            page: None,
            warnings,
        })
    }

    /// What opening found worth a warning (an empty baseline).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The settings the run was opened with.
    pub fn compliance(&self) -> &ComplianceSettings {
        &self.compliance
    }

    /// The waivers (`--waivers`), when given.
    pub fn waivers(&self) -> Option<&Waivers> {
        self.waivers.as_deref()
    }

    /// `scanner`, judging with the run's waivers.
    pub fn waive(&self, scanner: Scanner) -> Scanner {
        match &self.waivers {
            Some(waivers) => scanner.with_waivers(waivers.clone()),
            None => scanner,
        }
    }

    /// With `--history`: opens it (taking its lock for the whole run) and compares with the
    /// previous run of `scope`, before anything is sent; a history that cannot be used
    /// refuses the run.
    pub fn open_history(&mut self, scope: &Scope<'_>) -> anyhow::Result<()> {
        let Some(path) = &self.compliance.history else {
            return Ok(());
        };
        let info = RunInfo {
            command: self.kind.history_command(),
            scope: scope.key(),
            inventory_fingerprint: crate::remediate::inventory_fingerprint(scope.devices.devices()),
            shard: scope.shard.map(|s| s.to_string()),
            target: self.kind.target(),
        };
        let (recorder, previous, spooled) = self.begin_recording(path, &info)?;
        tracing::info!(
            run = recorder.run_id(),
            previous = previous.len(),
            "history opened"
        );
        // The first run of a scope has nothing to compare with: every device is new.
        self.baseline = Some(Baseline::new(previous));
        let path = match (&spooled, &self.compliance.spool) {
            (Some(_), Some(spool)) => spool.clone(),
            _ => path.clone(),
        };
        self.history = Some(Recording {
            path,
            recorder: Arc::new(Mutex::new(recorder)),
            spooled,
        });
        Ok(())
    }

    /// Begins recording in the history at `path`; a central one that cannot be reached is
    /// replaced by the spool (`--spool`), so the run goes on and is kept for `history push`.
    fn begin_recording(&self, path: &Path, info: &RunInfo) -> anyhow::Result<Begun> {
        match History::open(path).and_then(|h| h.begin_run(info)) {
            Ok((recorder, previous)) => Ok((recorder, previous, None)),
            Err(HistoryError::Unreachable { store, reason }) => {
                let Some(spool) = &self.compliance.spool else {
                    return Err(HistoryError::Unreachable { store, reason }.into());
                };
                // Debug only: the run's note says it to the person, once and always.
                tracing::debug!(%store, %reason, spool = %spool.display(), "history: spooling");
                let (recorder, previous) = History::open(spool)?.begin_run(info)?;
                Ok((recorder, previous, Some((store, reason))))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The record pipeline of a report of `total` devices: `outputs`, then the HTML page's
    /// rows (`--html-out`), every record compared with the previous run and recorded in the
    /// history.
    pub fn pipeline(&mut self, outputs: Outputs, total: usize) -> RecordPipeline {
        let mut reports = outputs.reports;
        if let Some(path) = &self.compliance.html_out {
            let (sink, rows) = HtmlSink::new(path);
            reports.push(Box::new(sink));
            self.page = Some(Page {
                path: path.clone(),
                rows,
            });
        }
        let store = self
            .history
            .as_ref()
            .map(|h| -> report::SharedStore { h.recorder.clone() });
        let sinks = RecordSinks {
            outputs: reports,
            reporter: outputs.reporter,
            baseline: self.baseline.take(),
            store,
        };
        report::record_pipeline(sinks, total, outputs.on_failure)
    }

    /// Scans `prepared` into [`Run::pipeline`]: the invalid rows first, then every device.
    pub async fn scan(
        &mut self,
        prepared: PreparedScan,
        outputs: Outputs,
        shutdown: Shutdown,
    ) -> anyhow::Result<(Summary, RunStats)> {
        let total = prepared.devices.len() + prepared.invalid.len();
        let pipe = self.pipeline(outputs, total);
        pipe.send_all(prepared.invalid).await;
        let stats = prepared
            .scanner
            .run(prepared.devices, pipe.sender(), shutdown)
            .await;
        let summary = report::finish(pipe).await?;
        Ok((summary, stats))
    }

    /// The summary of a run stopped by Ctrl-C says so, and does not call the devices it
    /// did not reach gone (only a whole run can).
    pub fn settle(&self, summary: &mut Summary, stats: &RunStats) {
        if !stats.interrupted {
            return;
        }
        if let Some(drift) = summary.drift.as_mut() {
            drift.forget_gone();
        }
        summary.stopped = Some(report::Stop::Interrupted);
    }

    /// Records the run in the history, then writes the metrics, the HTML page and the JSON
    /// summary; each failure is a note of its own and all are tried. A run the history did
    /// not record is not a success in the metrics.
    pub fn finish(&self, end: RunEnd<'_>) -> RunOutcome {
        let mut notes = Vec::new();
        let recorded = self.commit(&end, &mut notes);
        // A run the history did not record is not a success in the metrics.
        let completion = if recorded {
            end.completion
        } else {
            Completion::Incomplete
        };
        self.write_metrics(end.summary, completion, &mut notes);
        self.write_page(&end, &mut notes);
        self.write_summary(end.summary, &mut notes);
        RunOutcome {
            notes,
            judged: self.judge(&end),
        }
    }

    /// A run whose report failed still tells the metrics (as a failed run), so that the
    /// alert on the last success is not the only sign.
    pub fn after_report_failure(&self, error: &anyhow::Error) -> Vec<Note> {
        let mut notes = Vec::new();
        let summary = error
            .chain()
            .find_map(|cause| cause.downcast_ref::<report::ReportError>())
            .map(report::ReportError::summary);
        if let Some(summary) = summary {
            self.write_metrics(summary, Completion::Incomplete, &mut notes);
        }
        notes
    }

    /// The devices' verdict under `--fail-on`.
    fn judge(&self, end: &RunEnd<'_>) -> Verdict {
        let failing = match self.compliance.fail_on {
            FailOn::Findings => end.summary.findings(),
            FailOn::Regressions => end.summary.new_since_previous(),
            FailOn::Never => 0,
        };
        let unclean = end.completion == Completion::Incomplete || !end.stopped_accounts.is_empty();
        if end.stats.interrupted {
            Verdict::Interrupted
        } else if failing > 0 || unclean {
            Verdict::Findings
        } else {
            Verdict::Clean
        }
    }

    /// Commits the run to the history; whether it was recorded (or there is no history).
    fn commit(&self, end: &RunEnd<'_>, notes: &mut Vec<Note>) -> bool {
        let Some(history) = &self.history else {
            return true;
        };
        let mut recorder = history
            .recorder
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let ending = if end.stats.interrupted {
            Ending::Interrupted
        } else {
            Ending::Finished
        };
        let note = match recorder.finish(end.summary, ending) {
            Ok(run) => match &history.spooled {
                Some((central, reason)) => Note::Spooled {
                    spool: history.path.clone(),
                    run,
                    central: central.clone(),
                    reason: reason.clone(),
                    when: Lost::AtStart,
                },
                None => Note::Recorded {
                    history: history.path.clone(),
                    run,
                },
            },
            Err(HistoryError::Unreachable { store, reason }) => {
                let lost = LostHistory {
                    central: store,
                    reason,
                };
                self.spool_lost(&mut recorder, lost, end.summary, ending)
            }
            Err(e) => Note::HistoryFailed {
                error: e.to_string(),
            },
        };
        let recorded = !note.is_failure();
        notes.push(note);
        recorded
    }

    /// A central history lost during the run (its transaction gone): the run, held by its
    /// recorder, is recorded into the spool instead; without a spool, or should the spool
    /// fail too, the history did not record it.
    fn spool_lost(
        &self,
        recorder: &mut Recorder,
        lost: LostHistory,
        summary: &Summary,
        ending: Ending,
    ) -> Note {
        let failed = |more: String| Note::HistoryFailed {
            error: format!(
                "{}{more}",
                HistoryError::Unreachable {
                    store: lost.central.clone(),
                    reason: lost.reason.clone(),
                }
            ),
        };
        let Some(spool) = &self.compliance.spool else {
            return failed(String::new());
        };
        // Debug only: the run's note says it to the person, once and always.
        tracing::debug!(central = %lost.central, reason = %lost.reason, spool = %spool.display(), "history: lost during the run, spooling");
        match recorder.spool(spool, summary, ending) {
            Some(Ok(run)) => Note::Spooled {
                spool: spool.clone(),
                run,
                central: lost.central,
                reason: lost.reason,
                when: Lost::DuringRun,
            },
            Some(Err(e)) => failed(format!(", and the spool failed too: {e}")),
            None => failed(String::new()),
        }
    }

    fn write_metrics(&self, summary: &Summary, completion: Completion, notes: &mut Vec<Note>) {
        let Some(path) = &self.compliance.metrics_out else {
            return;
        };
        let facts = report::metrics::RunFacts {
            command: self.kind.metrics_command(),
            shard: self.shard.clone(),
            duration: self.started.elapsed(),
            finished: SystemTime::now(),
            succeeded: completion == Completion::Complete,
        };
        let previous = report::metrics::previous_success(path);
        let text = report::metrics::render(summary, &facts, previous);
        let path = path.clone();
        notes.push(
            match sshfleet_core::files::write_atomically(&path, text.as_bytes()) {
                Ok(()) => Note::MetricsWritten { path },
                Err(e) => Note::MetricsFailed {
                    path,
                    error: e.to_string(),
                },
            },
        );
    }

    /// The page, with the trend of the run's scope up to this run when there is a history.
    fn write_page(&self, end: &RunEnd<'_>, notes: &mut Vec<Note>) {
        let Some(page) = &self.page else {
            return;
        };
        let trend = match self.history_trend() {
            Ok(trend) => trend,
            Err(e) => {
                notes.push(Note::PageWithoutTrend {
                    error: format!("{e:#}"),
                });
                Vec::new()
            }
        };
        let rows = page.rows.take();
        let report = HtmlReport {
            context: end.page_context.clone(),
            generated_at: sshfleet_core::time::now_rfc3339(),
            summary: end.summary,
            rows: &rows,
            trend,
            expiring: self.waivers().map(expiring).unwrap_or_default(),
            applied: end.applied,
            today: sshfleet_core::time::today(),
        };
        if let Err(e) = report.write_to(&page.path) {
            notes.push(Note::PageFailed {
                path: page.path.clone(),
                error: e.to_string(),
            });
        }
    }

    /// The trend of this run's scope up to this run (none without a history).
    fn history_trend(&self) -> anyhow::Result<Vec<TrendPoint>> {
        let Some(recording) = &self.history else {
            return Ok(Vec::new());
        };
        let run = recording
            .recorder
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .run_id();
        let history = History::open(&recording.path)?;
        let Some(row) = history.run(Some(run))? else {
            return Ok(Vec::new());
        };
        Ok(trend_of(&history, &row)?)
    }

    /// `--summary-out FILE.json`: the JSON summary, replaced atomically.
    fn write_summary(&self, summary: &Summary, notes: &mut Vec<Note>) {
        let Some(path) = &self.compliance.summary_out else {
            return;
        };
        let mut text = summary.to_json();
        text.push('\n');
        let path = path.clone();
        notes.push(
            match sshfleet_core::files::write_atomically(&path, text.as_bytes()) {
                Ok(()) => Note::SummaryWritten { path },
                Err(e) => Note::SummaryFailed {
                    path,
                    error: e.to_string(),
                },
            },
        );
    }
}

/// `--metrics-out`: a directory that is not there, or a directory named as the file,
/// refuses the run before any work.
fn check_metrics_destination(path: Option<&Path>) -> anyhow::Result<()> {
    let Some(path) = path else {
        return Ok(());
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
    Ok(())
}

/// Reads `--baseline`; a bad one is an input error. (Whether it goes with `--history` and
/// `--fail-on` was settled when the settings were resolved.) An empty one is a warning.
fn load_baseline(path: Option<&Path>) -> anyhow::Result<(Option<Baseline>, Vec<String>)> {
    let Some(path) = path else {
        return Ok((None, Vec::new()));
    };
    let previous = report::read::read_report(path)?;
    let mut warnings = Vec::new();
    if previous.is_empty() {
        warnings.push(format!(
            "the baseline {} holds no devices: every device is new",
            path.display()
        ));
    }
    tracing::info!(devices = previous.len(), path = %path.display(), "baseline loaded");
    Ok((Some(Baseline::new(previous)), warnings))
}

/// Reads `--waivers`; a bad file refuses the run.
fn load_waivers(path: Option<&Path>) -> anyhow::Result<Option<Arc<Waivers>>> {
    let Some(path) = path else {
        return Ok(None);
    };
    let waivers = Waivers::load(path, sshfleet_core::time::today())?;
    tracing::info!(waivers = waivers.len(), path = %path.display(), "waivers loaded");
    Ok(Some(Arc::new(waivers)))
}

fn expiring(waivers: &Waivers) -> Vec<ExpiringWaiver> {
    waivers
        .report()
        .expiring
        .into_iter()
        .map(|(id, owner, expires)| ExpiringWaiver { id, owner, expires })
        .collect()
}

/// Runs drawn in the trend.
pub const TREND_RUNS: usize = 30;

/// A recorded run as a point of the trend.
fn trend_point(run: &RunRow) -> TrendPoint {
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    TrendPoint::new(
        format!("run {}", run.id),
        &run.started_at,
        count(run.devices),
        count(run.compliant),
        count(run.ssh_enabled),
    )
}

/// The trend of `run`'s scope up to and including it, oldest first: its finished runs, and
/// `run` itself even if interrupted.
pub fn trend_of(history: &History, run: &RunRow) -> Result<Vec<TrendPoint>, HistoryError> {
    let mut runs = history.scope_runs(&run.scope, run.id, TREND_RUNS)?;
    runs.retain(|r| !r.interrupted || r.id == run.id);
    runs.reverse();
    Ok(runs.iter().map(trend_point).collect())
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;
    use crate::settings::{DeviceSettings, PasswordSource};
    use sshfleet_core::secret::Secret;
    use sshfleet_report::{Change, NoProgress, Stop};
    use sshfleet_sim::{DeviceSpec, Fleet, SimConfig};

    /// Three clean cameras: SSH off, on, off.
    async fn fleet() -> Fleet {
        let specs = vec![
            DeviceSpec::clean(false),
            DeviceSpec::clean(true),
            DeviceSpec::clean(false),
        ];
        let config = SimConfig {
            specs: Some(specs),
            ssh_ports: false,
            ..SimConfig::default()
        };
        Fleet::start(config).await.unwrap()
    }

    /// The fleet's inventory, every camera expected with SSH off.
    fn device(fleet: &Fleet, dir: &Path) -> DeviceSettings {
        let inventory = dir.join("inventory.csv");
        let file = std::fs::File::create(&inventory).unwrap();
        fleet
            .write_inventory(std::io::BufWriter::new(file))
            .unwrap();
        let password = PasswordSource::Given(Secret::new(SimConfig::default().password));
        DeviceSettings {
            expect: Some(SshState::Disabled),
            retries: 0,
            ..DeviceSettings::new(inventory, password)
        }
    }

    fn quiet_outputs() -> Outputs {
        Outputs {
            reports: Vec::new(),
            reporter: Arc::new(NoProgress),
            on_failure: OnOutputFailure::Continue,
        }
    }

    /// One scan of `device` under `compliance`, to its end: the settled summary and what
    /// the run did once over.
    async fn scan(
        device: &DeviceSettings,
        compliance: ComplianceSettings,
    ) -> (Summary, RunOutcome) {
        let settings = RunSettings {
            kind: RunKind::Scan,
            compliance,
            shard: None,
        };
        let mut run = Run::open(settings).unwrap();
        let env = crate::settings::test_env(&[]);
        let mut prepared = device.build(&env).unwrap();
        run.open_history(&Scope::of(&device.inventory, &prepared))
            .unwrap();
        prepared.scanner = run.waive(prepared.scanner);
        let (mut summary, stats) = run
            .scan(prepared, quiet_outputs(), Shutdown::never())
            .await
            .unwrap();
        run.settle(&mut summary, &stats);
        let outcome = run.finish(RunEnd {
            summary: &summary,
            stats: &stats,
            completion: Completion::of(&stats),
            stopped_accounts: &[],
            page_context: "scan of the test fleet".to_owned(),
            applied: None,
        });
        (summary, outcome)
    }

    /// The value of the gauge `name` in a metrics file.
    fn gauge(metrics: &Path, name: &str) -> String {
        let text = std::fs::read_to_string(metrics).unwrap();
        let line = text
            .lines()
            .find(|l| l.starts_with(name) && !l.starts_with('#'))
            .unwrap_or_else(|| panic!("no {name} in {text}"));
        line.rsplit(' ').next().unwrap().to_owned()
    }

    #[tokio::test]
    async fn a_run_is_recorded_waived_compared_with_the_last_and_measured() {
        let dir = tempfile::tempdir().unwrap();
        let fleet = fleet().await;
        let device = device(&fleet, dir.path());
        let waivers = dir.path().join("waivers.toml");
        let waived = fleet.address(1).to_owned();
        std::fs::write(
            &waivers,
            format!(
                "[[waiver]]\nid = \"W-1\"\nmatch = {{ address = \"{waived}\" }}\nssh = \"enabled\"\n\
                 reason = \"vendor access\"\nowner = \"secops@example.com\"\nexpires = \"2099-12-31\"\n"
            ),
        )
        .unwrap();
        let (history, metrics) = (dir.path().join("h.sqlite"), dir.path().join("m.prom"));
        let summary_out = dir.path().join("summary.json");
        let compliance = ComplianceSettings {
            history: Some(history.clone()),
            waivers: Some(waivers),
            metrics_out: Some(metrics.clone()),
            summary_out: Some(summary_out.clone()),
            ..ComplianceSettings::default()
        };

        let (first, outcome) = scan(&device, compliance.clone()).await;
        assert_eq!((first.total, first.waived, first.findings()), (3, 1, 0));
        assert_eq!(outcome.verdict(), Verdict::Clean, "{:?}", outcome.notes);
        let recorded = Note::Recorded {
            history: history.clone(),
            run: 1,
        };
        assert_eq!(
            outcome.notes,
            [
                recorded,
                Note::MetricsWritten {
                    path: metrics.clone()
                },
                Note::SummaryWritten {
                    path: summary_out.clone()
                },
            ]
        );
        assert_eq!(gauge(&metrics, "sshfleet_run_success"), "1");
        let written: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&summary_out).unwrap()).unwrap();
        assert_eq!(written["waived"], 1, "{written}");

        // Another client turns SSH on for the first camera: the next run regresses it.
        fleet.set_ssh_enabled(0, true);
        let (second, outcome) = scan(&device, compliance).await;
        let drift = second.drift.as_ref().unwrap();
        assert_eq!(drift.by_change.get(Change::Regressed), 1);
        assert_eq!((second.new_exposure, second.findings()), (1, 1));
        assert_eq!(outcome.verdict(), Verdict::Findings);
        assert!(outcome.notes.contains(&Note::Recorded {
            history: history.clone(),
            run: 2
        }));
        let runs = History::open(&history).unwrap().runs(10).unwrap();
        let kept: Vec<_> = runs.iter().map(|r| (r.id, r.waived, r.regressed)).collect();
        assert_eq!(kept, [(2, 1, 1), (1, 1, 0)]);
        fleet.shutdown().await;
    }

    /// A run of an inventory of two addresses that nothing answers, opened with a history
    /// and a page: its pipeline, nothing sent yet.
    fn unreached_run(dir: &Path, compliance: ComplianceSettings) -> (Run, RecordPipeline) {
        let inventory = dir.join("inventory.csv");
        std::fs::write(&inventory, "address\n192.0.2.1\n192.0.2.2\n").unwrap();
        let password = PasswordSource::Given(Secret::new("x"));
        let device = DeviceSettings::new(inventory, password);
        let prepared = device.build(&crate::settings::test_env(&[])).unwrap();
        let settings = RunSettings {
            kind: RunKind::Scan,
            compliance,
            shard: None,
        };
        let mut run = Run::open(settings).unwrap();
        run.open_history(&Scope::of(&device.inventory, &prepared))
            .unwrap();
        let pipe = run.pipeline(quiet_outputs(), prepared.devices.len());
        (run, pipe)
    }

    #[tokio::test]
    async fn an_interrupted_run_is_marked_everywhere_and_is_no_success() {
        let dir = tempfile::tempdir().unwrap();
        let (history, metrics) = (dir.path().join("h.sqlite"), dir.path().join("m.prom"));
        let page = dir.path().join("page.html");
        let compliance = ComplianceSettings {
            history: Some(history.clone()),
            metrics_out: Some(metrics.clone()),
            html_out: Some(page.clone()),
            ..ComplianceSettings::default()
        };
        let (run, pipe) = unreached_run(dir.path(), compliance);
        // Ctrl-C before the first device: none is reached.
        let mut summary = report::finish(pipe).await.unwrap();
        let stats = RunStats {
            not_checked: 2,
            interrupted: true,
            ..RunStats::default()
        };
        run.settle(&mut summary, &stats);
        assert_eq!(summary.stopped, Some(Stop::Interrupted));
        let outcome = run.finish(RunEnd {
            summary: &summary,
            stats: &stats,
            completion: Completion::of(&stats),
            stopped_accounts: &[],
            page_context: "interrupted scan".to_owned(),
            applied: None,
        });
        assert_eq!(
            outcome.verdict(),
            Verdict::Interrupted,
            "{:?}",
            outcome.notes
        );
        assert_eq!(gauge(&metrics, "sshfleet_run_success"), "0");
        let row = History::open(&history).unwrap().runs(1).unwrap();
        assert!(row[0].interrupted, "{row:?}");
        let html = std::fs::read_to_string(&page).unwrap();
        assert!(html.contains("interrupted scan"), "the page is written");
    }

    #[tokio::test]
    async fn every_output_is_tried_and_a_failed_one_outranks_the_findings() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = dir.path().join("m.prom");
        let compliance = ComplianceSettings {
            metrics_out: Some(metrics.clone()),
            summary_out: Some(dir.path().join("gone").join("summary.json")),
            ..ComplianceSettings::default()
        };
        let (run, pipe) = unreached_run(dir.path(), compliance);
        let summary = report::finish(pipe).await.unwrap();
        let stats = RunStats::default();
        let outcome = run.finish(RunEnd {
            summary: &summary,
            stats: &stats,
            completion: Completion::Incomplete,
            stopped_accounts: &[],
            page_context: String::new(),
            applied: None,
        });
        assert!(matches!(
            outcome.notes.as_slice(),
            [Note::MetricsWritten { .. }, Note::SummaryFailed { .. }]
        ));
        assert_eq!(outcome.verdict(), Verdict::OutputFailed);
        assert_eq!(
            gauge(&metrics, "sshfleet_run_success"),
            "0",
            "an incomplete run"
        );
    }

    #[test]
    fn a_metrics_destination_that_cannot_be_written_refuses_the_run() {
        let dir = tempfile::tempdir().unwrap();
        let open = |metrics: PathBuf| {
            let compliance = ComplianceSettings {
                metrics_out: Some(metrics),
                ..ComplianceSettings::default()
            };
            let settings = RunSettings {
                kind: RunKind::Merge,
                compliance,
                shard: None,
            };
            Run::open(settings).err().unwrap().to_string()
        };
        let missing = open(dir.path().join("nowhere").join("m.prom"));
        assert!(missing.contains("does not exist"), "{missing}");
        let directory = open(dir.path().to_owned());
        assert!(
            directory.ends_with("is a directory; name a file"),
            "{directory}"
        );
    }

    #[test]
    fn the_history_names_the_command_a_run_is() {
        let apply = RunKind::Remediate {
            target: SshState::Disabled,
            apply: true,
        };
        assert_eq!(apply.history_command(), "remediate --apply");
        assert_eq!(apply.metrics_command(), "remediate");
        assert_eq!(apply.target().as_deref(), Some("disabled"));
        assert_eq!(RunKind::Merge.history_command(), "report merge");
        assert_eq!(RunKind::Scan.target(), None);
    }
}
