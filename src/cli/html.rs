//! `--html-out FILE` on `scan`, `remediate` and `report merge`, and `sshfleet report html`: gather rows as
//! records stream, then write the page once the summary (and the history) is final.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};

use super::args::ReportHtmlArgs;
use super::html_source as source;
use super::Exit;
use crate::history::History;
use crate::report::html::{ExpiringWaiver, HtmlReport, HtmlRows, HtmlSink, TrendPoint};
use crate::report::{RecordWriter, Summary};
use crate::waivers::Waivers;

/// An HTML page to write when the run is over.
pub(super) struct HtmlOut {
    path: PathBuf,
    rows: HtmlRows,
}

impl HtmlOut {
    /// The page at `path` (if asked for) and the output that gathers its rows.
    pub(super) fn open(path: Option<&Path>) -> Option<(HtmlOut, Box<dyn RecordWriter>)> {
        let path = path?;
        let (sink, rows) = HtmlSink::new(path);
        let out = HtmlOut {
            path: path.to_owned(),
            rows,
        };
        Some((out, Box::new(sink)))
    }

    /// Writes the page; a failure is said on stderr (even with `--quiet`) and is an output
    /// failure of its own (`Some(exit)`). With a history, the trend is its runs of this
    /// scope up to `run`.
    pub(super) fn write(
        self,
        context: String,
        summary: &Summary,
        history: Option<(&Path, i64)>,
        waivers: Option<&Waivers>,
        applied: Option<bool>,
    ) -> Option<Exit> {
        let trend = match history.map(|(path, run)| history_trend(path, run)) {
            Some(Ok(trend)) => trend,
            Some(Err(e)) => {
                diagln!("warning: the HTML report has no trend: {e:#}");
                Vec::new()
            }
            None => Vec::new(),
        };
        let rows = self.rows.take();
        let report = HtmlReport {
            context,
            generated_at: crate::time::now_rfc3339(),
            summary,
            rows: &rows,
            trend,
            expiring: waivers.map(expiring).unwrap_or_default(),
            applied,
            today: crate::time::today(),
        };
        match report.write_to(&self.path) {
            Ok(()) => None,
            Err(e) => {
                diagln!(
                    "error: cannot write the HTML report {}: {e}",
                    self.path.display()
                );
                Some(Exit::OutputFailed)
            }
        }
    }
}

fn history_trend(path: &Path, run: i64) -> anyhow::Result<Vec<TrendPoint>> {
    let history = History::open(path)?;
    let Some(row) = history.run(Some(run))? else {
        return Ok(Vec::new());
    };
    Ok(source::trend_of(&history, &row)?)
}

/// The trend up to the latest finished run of the history at `path`.
pub(super) fn latest_trend(path: &Path) -> anyhow::Result<Vec<TrendPoint>> {
    let history = History::open(path)?;
    let Some(row) = history.run(None)? else {
        bail!("no finished run in {}", path.display());
    };
    Ok(source::trend_of(&history, &row)?)
}

fn expiring(waivers: &Waivers) -> Vec<ExpiringWaiver> {
    waivers
        .report()
        .expiring
        .into_iter()
        .map(|(id, owner, expires)| ExpiringWaiver { id, owner, expires })
        .collect()
}

/// `sshfleet report html`: the page of a report file, or of a history run.
pub(super) fn render(args: ReportHtmlArgs) -> anyhow::Result<Exit> {
    crate::files::RunFiles::default()
        .kept("REPORT", args.report.as_deref())
        .kept("--history", args.history.as_deref())
        .written("-o", Some(&args.output))
        .check()?;
    let (loaded, context) = match (&args.report, &args.history) {
        (Some(report), None) => {
            let loaded = source::from_report(report)?;
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
        generated_at: crate::time::now_rfc3339(),
        summary: &loaded.summary,
        rows: &loaded.rows,
        trend: loaded.trend.clone(),
        expiring: Vec::new(),
        applied: loaded.applied,
        today: crate::time::today(),
    };
    if let Err(e) = report
        .write_to(&args.output)
        .with_context(|| format!("cannot write the HTML report {}", args.output.display()))
    {
        diagln!("error: {}", crate::inert::message(&format!("{e:#}")));
        return Ok(Exit::OutputFailed);
    }
    if !args.quiet {
        diagln!(
            "{} devices; HTML report written to {}",
            loaded.summary.total,
            args.output.display()
        );
    }
    Ok(Exit::Clean)
}
