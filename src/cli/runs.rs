//! What every device run says and checks around its [`Run`]: the files it may not overwrite,
//! its warnings, the waivers' report, what it wrote once over and its exit code. Shared by
//! `scan`, `remediate`, `report merge` and the demo.

use std::path::Path;

use super::args::OutputArgs;
use super::verbosity::Verbosity;
use super::Exit;
use sshfleet_core::files::RunFiles;
use sshfleet_engine::run::{Lost, Note, Run, Verdict};
use sshfleet_engine::scan::RunStats;
use sshfleet_engine::settings::{ComplianceSettings, PreparedScan};
use sshfleet_engine::waivers::Waivers;
use sshfleet_net::breaker::StoppedAccount;
use sshfleet_report as report;

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
        .kept("--spool", compliance.spool.as_deref())
        .written("-o", Some(output))
        .written("--html-out", compliance.html_out.as_deref())
        .written("--metrics-out", compliance.metrics_out.as_deref())
        .written("--summary-out", compliance.summary_out.as_deref());
    files
}

/// The waivers' part of the summary: what they hid, what resurfaced, what expires soon
/// and what matched nothing.
pub(super) fn report_waivers(waivers: Option<&Waivers>) {
    let Some(waivers) = waivers else {
        return;
    };
    let report = waivers.report();
    let shown = |s: &str| sshfleet_core::inert::line(s).into_owned();
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
            sshfleet_engine::waivers::EXPIRING_WITHIN_DAYS
        );
    }
    if !report.unmatched.is_empty() {
        diagln!(
            "waivers matching no device: {}",
            shown(&report.unmatched.join(", "))
        );
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

/// The warnings of preparing a run (inventory, concurrency), unless quiet.
pub(super) fn say_warnings(prepared: &PreparedScan, verbosity: Verbosity) {
    if !verbosity.is_quiet() {
        for warning in &prepared.warnings {
            diagln!("warning: {warning}");
        }
    }
}

/// What opening the run found worth a warning (an empty baseline), unless quiet.
pub(super) fn say_opened(run: &Run, verbosity: Verbosity) {
    if !verbosity.is_quiet() {
        for warning in run.warnings() {
            diagln!("warning: {warning}");
        }
    }
}

/// What the run did once over, in the order done: failures and warnings always (each is
/// why the run exits 4, or what its page lacks), the files recorded unless quiet.
pub(super) fn say_notes(notes: &[Note], verbosity: Verbosity) {
    for note in notes {
        match note {
            Note::Recorded { history, run } if !verbosity.is_quiet() => {
                diagln!(
                    "recorded as run {run} in {}",
                    sshfleet_history::display(history)
                );
            }
            Note::Spooled {
                spool,
                run,
                central,
                reason,
                when,
            } => {
                let lost = match when {
                    Lost::AtStart => "cannot be reached",
                    Lost::DuringRun => "was lost during the run and cannot be reached",
                };
                diagln!(
                    "warning: the history {central} {lost} ({reason}); this run is kept as run {run} in the spool {0}: `sshfleet history push {0} --to URL` uploads it",
                    spool.display()
                );
            }
            Note::HistoryFailed { error } => {
                diagln!(
                    "error: {error}; the report is complete, the history did not record this run"
                );
            }
            Note::MetricsWritten { path } if !verbosity.is_quiet() => {
                diagln!("metrics written to {}", path.display());
            }
            Note::MetricsFailed { path, error } => diagln!(
                "error: cannot write the metrics to {}: {error}; the report is complete",
                path.display()
            ),
            Note::PageWithoutTrend { error } => {
                diagln!("warning: the HTML report has no trend: {error}");
            }
            Note::PageFailed { path, error } => {
                diagln!(
                    "error: cannot write the HTML report {}: {error}",
                    path.display()
                );
            }
            Note::SummaryWritten { path } if !verbosity.is_quiet() => {
                diagln!("summary written to {}", path.display());
            }
            Note::SummaryFailed { path, error } => diagln!(
                "error: cannot write the summary to {}: {error}; the report is complete",
                path.display()
            ),
            Note::Recorded { .. } | Note::MetricsWritten { .. } | Note::SummaryWritten { .. } => {}
        }
    }
}

/// The exit code of a run's verdict.
pub(super) fn exit_of(verdict: Verdict) -> Exit {
    match verdict {
        Verdict::Clean => Exit::Clean,
        Verdict::Findings => Exit::Findings,
        Verdict::Interrupted => Exit::Interrupted,
        Verdict::OutputFailed => Exit::OutputFailed,
    }
}

/// A report failed after work was done: the metrics still tell of it (as a failed run),
/// then the failure is said and gives the exit.
pub(super) fn report_failed_in(run: &Run, error: &anyhow::Error, verbosity: Verbosity) -> Exit {
    say_notes(&run.after_report_failure(error), verbosity);
    super::report_failed(error)
}

/// The report output `-o`/`--format` name.
pub(super) fn report_output(
    output: &OutputArgs,
    schema: &report::Schema,
) -> anyhow::Result<report::RecordOutput> {
    let format = super::resolve_format(&output.output, output.format);
    super::report_output(format, schema, &output.output)
}

/// The files a finished run wrote, said last so a person knows where to look: the history
/// the run was recorded in (the spool, when the central history could not take it), as its
/// `notes` say.
pub(super) fn say_files_written(output: &Path, compliance: &ComplianceSettings, notes: &[Note]) {
    let report = Some(output).filter(|path| path.as_os_str() != "-");
    let history = notes.iter().find_map(|note| match note {
        Note::Recorded { history, .. } => Some(history.as_path()),
        Note::Spooled { spool, .. } => Some(spool.as_path()),
        _ => None,
    });
    let extra = [
        compliance.html_out.as_deref(),
        compliance.metrics_out.as_deref(),
        compliance.summary_out.as_deref(),
        history,
    ];
    let written: Vec<String> = report
        .into_iter()
        .chain(extra.into_iter().flatten())
        .map(sshfleet_history::display)
        .collect();
    if !written.is_empty() {
        diagln!("files written: {}", written.join(", "));
    }
}

/// A scan with no desired state anywhere judges no device: say so, or "0 non-compliant"
/// reads as good news. Called only for such a scan.
pub(super) fn warn_without_desired_state(verbosity: Verbosity) {
    if !verbosity.is_quiet() {
        diagln!(
            "warning: no desired SSH state was given (no --expect, no `expect` column in the inventory): cameras with SSH enabled are not findings; add --expect disabled"
        );
    }
}
