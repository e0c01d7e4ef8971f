//! `sshfleet scan`: resolve flags into settings, stream records to the report, summarise.

use std::path::Path;
use std::sync::Arc;

use super::args::{OutputArgs, ScanArgs};
use super::notify::Notifier;
use super::progress::Progress;
use super::runs::{
    exit_of, report_failed_in, report_interruption, report_output, report_stopped_accounts,
    report_waivers, run_files, say_files_written, say_notes, say_opened, say_warnings,
    warn_without_desired_state,
};
use super::{install_signal_handlers, resolve, table, Exit, Stopping};
use sshfleet_core::shutdown::Shutdown;
use sshfleet_engine::run::{Completion, Outputs, Run, RunEnd, RunSettings, Scope};
use sshfleet_engine::scan::{RunStats, Scanner};
use sshfleet_engine::settings::ProcessEnv;
use sshfleet_report::pipeline::OnOutputFailure;
use sshfleet_report::{RecordOutput, Schema, Summary};

pub(super) async fn run(args: ScanArgs) -> anyhow::Result<Exit> {
    let verbosity = args.output.verbosity();
    let device = resolve::device(&args.device, &ProcessEnv)?;
    let compliance =
        resolve::with_default_spool(resolve::compliance(&args.compliance)?, &args.output.output);
    let password_file = args.device.password_file.as_deref();
    run_files(
        &device.inventory,
        password_file,
        &compliance,
        &args.output.output,
    )
    .check()?;
    let has_previous = compliance.baseline.is_some() || compliance.history.is_some();
    let notify = Notifier::open(&args.notify, "scan", has_previous)?;
    let mut run = Run::open(RunSettings::scan(compliance, device.shard))?;
    say_opened(&run, verbosity);
    let mut prepared = device.build(&ProcessEnv)?;
    say_warnings(&prepared, verbosity);
    run.open_history(&Scope::of(&device.inventory, &prepared))?;
    prepared.scanner = run.waive(prepared.scanner);
    if let Some(rate) = args.rate {
        prepared.scanner = prepared.scanner.with_request_rate(rate);
    }
    let (notifier, collector) = notify.unzip();
    let (outputs, shutdown) = outputs(&args.output, &prepared.schema(), collector)?;
    let after = AfterScan {
        args: &args,
        scanner: prepared.scanner.clone(),
        desired_state_given: prepared.desired_state_given,
        inventory: &device.inventory,
    };
    match run.scan(prepared, outputs, shutdown).await {
        Ok((summary, stats)) => {
            let exit = after.finish(&run, summary, &stats);
            if let Some(notifier) = notifier {
                notifier.send(run.waivers(), verbosity).await;
            }
            Ok(exit)
        }
        Err(e) => Ok(report_failed_in(&run, &e, verbosity)),
    }
}

/// The report (the findings table on a terminal) with the progress display, and Ctrl-C
/// listened for: the first stops new devices, and a failed report stops the scan.
fn outputs(
    output: &OutputArgs,
    schema: &Schema,
    collector: Option<RecordOutput>,
) -> anyhow::Result<(Outputs, Shutdown)> {
    let progress = Arc::new(Progress::new(output.verbosity()));
    let report = match table::on_terminal(output, progress.clone()) {
        Some(table) => table,
        None => report_output(output, schema)?,
    };
    let (trigger, shutdown) = install_signal_handlers(output.verbosity(), Stopping::Devices);
    let outputs = Outputs {
        reports: std::iter::once(report).chain(collector).collect(),
        reporter: progress,
        on_failure: OnOutputFailure::Stop(trigger),
    };
    Ok((outputs, shutdown))
}

/// What a scan says and records once its report is complete.
struct AfterScan<'a> {
    args: &'a ScanArgs,
    scanner: Scanner,
    desired_state_given: bool,
    inventory: &'a Path,
}

impl AfterScan<'_> {
    fn finish(self, run: &Run, mut summary: Summary, stats: &RunStats) -> Exit {
        let verbosity = self.args.output.verbosity();
        run.settle(&mut summary, stats);
        if !verbosity.is_quiet() {
            diag!("{}", summary.render_text());
            report_waivers(run.waivers());
            report_interruption(stats);
        }
        if !self.desired_state_given {
            warn_without_desired_state(verbosity);
        }
        let stopped = self.scanner.stopped_accounts();
        report_stopped_accounts(&stopped);
        let outcome = run.finish(RunEnd {
            summary: &summary,
            stats,
            completion: Completion::of(stats),
            stopped_accounts: &stopped,
            page_context: format!("scan of {}", self.inventory.display()),
            applied: None,
        });
        say_notes(&outcome.notes, verbosity);
        if !outcome.output_failed() && !verbosity.is_quiet() {
            say_files_written(&self.args.output.output, run.compliance(), &outcome.notes);
        }
        exit_of(outcome.verdict())
    }
}
