//! `sshfleet report html`: the page of a report file or of a history run. (`--html-out` on
//! `scan`, `remediate` and `report merge` is written by [`sshfleet_engine::run::Run`].)

use std::path::Path;

use anyhow::{bail, Context as _};

use super::args::ReportHtmlArgs;
use super::html_source as source;
use super::Exit;
use sshfleet_history::History;
use sshfleet_report::html::{HtmlReport, TrendPoint};

/// The trend up to the latest finished run of the history at `path`.
pub(super) fn latest_trend(path: &Path) -> anyhow::Result<Vec<TrendPoint>> {
    let history = History::open(path)?;
    let Some(row) = history.run(None)? else {
        bail!("no finished run in {}", path.display());
    };
    Ok(sshfleet_engine::run::trend_of(&history, &row)?)
}

/// `sshfleet report html`: the page of a report file, or of a history run.
pub(super) async fn render(args: ReportHtmlArgs) -> anyhow::Result<Exit> {
    sshfleet_core::files::RunFiles::default()
        .kept("REPORT", args.report.as_deref())
        .kept("--history", args.history.as_deref())
        .kept("--advisories", args.advisories.as_deref())
        .kept(
            "--expect-sites-from",
            args.fleet.expect_sites_from.as_deref(),
        )
        .written("-o", Some(&args.output))
        .written("--summary-out", args.fleet.summary_out.as_deref())
        .written("--metrics-out", args.fleet.metrics_out.as_deref())
        .check()?;
    if let Some(history) = args.history.as_deref() {
        if super::fleet::wanted(&args, history)? {
            return super::fleet::render(&args, history).await;
        }
    }
    let (loaded, context) = match (&args.report, &args.history) {
        (Some(report), None) => {
            let advisories = super::readback::advisories(args.advisories.as_deref())?;
            let loaded = source::from_report(report, &advisories)?;
            super::readback::say_unknown_advisories(
                &loaded.summary.advisories,
                args.advisories.as_deref(),
            );
            let context = format!("report {}", report.display());
            (loaded, context)
        }
        (None, Some(history)) => {
            let (loaded, run) = source::from_history(history, args.run)?;
            let context = format!("run {} ({}) of {}", run.id, run.command, run.scope);
            (loaded, context)
        }
        (Some(_), Some(_)) => bail!("give a REPORT or --history FILE, not both"),
        (None, None) => bail!("give a REPORT file or --history FILE"),
    };
    let context = if loaded.checked_at.is_empty() {
        context
    } else {
        format!("{context}, checked {}", loaded.checked_at)
    };
    let report = HtmlReport {
        context,
        generated_at: sshfleet_core::time::now_rfc3339(),
        summary: &loaded.summary,
        rows: &loaded.rows,
        trend: loaded.trend.clone(),
        expiring: Vec::new(),
        applied: loaded.applied,
        today: sshfleet_core::time::today(),
    };
    let written = report
        .write_to(&args.output)
        .with_context(|| format!("cannot write the HTML report {}", args.output.display()))
        .and_then(|()| super::fleet::write_reports(&args.fleet, &loaded.summary));
    if let Err(e) = written {
        diagln!(
            "error: {}",
            sshfleet_core::inert::message(&format!("{e:#}"))
        );
        return Ok(Exit::OutputFailed);
    }
    if !args.verbosity().is_quiet() {
        diagln!(
            "{} devices; HTML report written to {}",
            loaded.summary.total,
            args.output.display()
        );
    }
    Ok(Exit::Clean)
}
