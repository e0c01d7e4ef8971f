//! `sshfleet scan`: resolve flags into settings, stream records to the report, summarise.

use std::sync::Arc;

use super::args::ScanArgs;
use super::progress::Progress;
use super::runs::{
    execute, exit_for, forget_gone_if_interrupted, load_baseline, load_waivers, outputs,
    report_interruption, report_waivers, run_files, say_warnings, Comparison, Ending, MetricsOut,
};
use super::{install_signal_handlers, report_failed, resolve, Exit, Stopping};
use crate::report::pipeline::OnOutputFailure;
use crate::report::{RecordSinks, Reporter};
use crate::settings::ProcessEnv;

pub(super) async fn run(args: ScanArgs) -> anyhow::Result<Exit> {
    let quiet = args.output.quiet;
    let device = resolve::device(&args.device, &ProcessEnv)?;
    let compliance = resolve::compliance(&args.compliance)?;
    run_files(
        &args.device.inventory,
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
    let (sinks, html) = outputs(&args.output, &prepared.schema(), &compliance)?;
    let (trigger, shutdown) = install_signal_handlers(quiet, Stopping::Devices);
    let progress: Arc<dyn Reporter> = Arc::new(Progress::new(quiet));
    let (baseline, store) = comparison.parts();
    let sinks = RecordSinks {
        outputs: sinks,
        reporter: progress,
        baseline,
        store,
    };
    let run = execute(prepared, sinks, OnOutputFailure::Stop(trigger), shutdown).await;
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
    let ending = Ending {
        comparison: &comparison,
        metrics: metrics.as_ref(),
        waivers: waivers.as_deref(),
        quiet,
    };
    let html = html.map(|html| (html, format!("scan of {}", args.device.inventory.display())));
    let failed = ending.record(&summary, &stats, !stats.interrupted, html, None);
    Ok(failed.unwrap_or_else(|| exit_for(&summary, &stats, compliance.fail_on)))
}
