//! `sshfleet scan`: resolve flags into settings, stream records to the report, summarise.

use std::sync::Arc;

use super::args::ScanArgs;
use super::html::HtmlOut;
use super::progress::Progress;
use super::runs::{
    execute, exit_for, fail_if_accounts_stopped, forget_gone_if_interrupted, load_baseline,
    load_waivers, mark_interrupted, outputs, outputs_with, report_interruption,
    report_stopped_accounts, report_waivers, run_files, say_files_written, say_warnings,
    warn_without_desired_state, Comparison, Ending, MetricsOut,
};
use super::{install_signal_handlers, report_failed, resolve, table, Exit, Stopping};
use crate::report::pipeline::OnOutputFailure;
use crate::report::{RecordSinks, Reporter, Summary};
use crate::scan::{RunStats, Scanner};
use crate::settings::{ComplianceSettings, ProcessEnv};
use crate::waivers::Waivers;

pub(super) async fn run(args: ScanArgs) -> anyhow::Result<Exit> {
    let quiet = args.output.quiet;
    let device = resolve::device(&args.device, &ProcessEnv)?;
    let compliance = resolve::compliance(&args.compliance)?;
    run_files(
        &device.inventory,
        args.device.password_file.as_deref(),
        &compliance,
        &args.output.output,
    )
    .check()?;
    let metrics = MetricsOut::check(&compliance, "scan")?;
    let baseline = load_baseline(&compliance, quiet)?;
    let waivers = load_waivers(&compliance)?;
    let mut prepared = device.build(&ProcessEnv)?;
    say_warnings(&prepared, quiet);
    let metrics = metrics.map(|m| m.shard(prepared.shard));
    let mut comparison = Comparison::open(
        &compliance,
        baseline,
        &device.inventory,
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
    let progress = Arc::new(Progress::new(quiet));
    let (sinks, html) = match table::on_terminal(&args.output, progress.clone()) {
        Some(table) => outputs_with(table, &compliance),
        None => outputs(&args.output, &prepared.schema(), &compliance)?,
    };
    let (trigger, shutdown) = install_signal_handlers(quiet, Stopping::Devices);
    let progress: Arc<dyn Reporter> = progress;
    let (baseline, store) = comparison.parts();
    let sinks = RecordSinks {
        outputs: sinks,
        reporter: progress,
        baseline,
        store,
    };
    let after = AfterScan {
        args: &args,
        compliance: &compliance,
        comparison: &comparison,
        metrics: metrics.as_ref(),
        waivers: waivers.as_deref(),
        scanner: prepared.scanner.clone(),
        desired_state_given: prepared.desired_state_given,
        inventory: &device.inventory,
    };
    let run = execute(prepared, sinks, OnOutputFailure::Stop(trigger), shutdown).await;
    match run {
        Ok((summary, stats)) => Ok(after.finish(summary, &stats, html)),
        Err(e) => {
            MetricsOut::after_report_failure(metrics.as_ref(), &e, quiet);
            Ok(report_failed(&e))
        }
    }
}

/// What a scan says and records once its report is complete.
struct AfterScan<'a> {
    args: &'a ScanArgs,
    compliance: &'a ComplianceSettings,
    comparison: &'a Comparison,
    metrics: Option<&'a MetricsOut>,
    waivers: Option<&'a Waivers>,
    scanner: Scanner,
    desired_state_given: bool,
    inventory: &'a std::path::Path,
}

impl AfterScan<'_> {
    fn finish(self, mut summary: Summary, stats: &RunStats, html: Option<HtmlOut>) -> Exit {
        let quiet = self.args.output.quiet;
        forget_gone_if_interrupted(&mut summary, stats);
        mark_interrupted(&mut summary, stats);
        if !quiet {
            diag!("{}", summary.render_text());
            report_waivers(self.waivers);
            report_interruption(stats);
        }
        warn_without_desired_state(self.desired_state_given, quiet);
        let stopped = self.scanner.stopped_accounts();
        report_stopped_accounts(&stopped);
        let ending = Ending {
            comparison: self.comparison,
            metrics: self.metrics,
            waivers: self.waivers,
            summary_out: self.compliance.summary_out.as_deref(),
            quiet,
        };
        let inventory = self.inventory.display();
        let html = html.map(|html| (html, format!("scan of {inventory}")));
        let failed = ending.record(&summary, stats, !stats.interrupted, html, None);
        if failed.is_none() && !quiet {
            say_files_written(&self.args.output.output, self.compliance);
        }
        let exit = failed.unwrap_or_else(|| exit_for(&summary, stats, self.compliance.fail_on));
        fail_if_accounts_stopped(exit, &stopped)
    }
}
