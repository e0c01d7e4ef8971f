//! `sshfleet report html --history FILE` over a history many scopes write to (one scanner
//! per site or shard): the fleet view — the latest complete run of every scope, per site —
//! with site coverage, its summary on stderr, and `--summary-out` / `--metrics-out` of the
//! same view. Exits 1 when an expected site has no complete run within the period.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;

use super::args::{FleetArgs, ReportHtmlArgs};
use super::verbosity::Verbosity;
use super::Exit;
use sshfleet_engine::fleet::{CoverageCheck, ExpectedSites, Fleet};
use sshfleet_engine::notify::{build_coverage, send, NotifyTarget, RunLabel};
use sshfleet_history::History;
use sshfleet_inventory::{InventoryOptions, Row};
use sshfleet_report::fleet::SiteCoverage;
use sshfleet_report::html::HtmlReport;
use sshfleet_report::metrics::RunFacts;
use sshfleet_report::Summary;

impl FleetArgs {
    /// Whether the coverage options ask for the fleet view.
    pub(super) fn wants_coverage(&self) -> bool {
        self.expect_sites_from.is_some() || self.sites_seen_within.is_some()
    }
}

/// Whether `report html --history` renders the fleet: asked for, or the history holds
/// more than one scope and no run was named.
pub(super) fn wanted(args: &ReportHtmlArgs, history: &Path) -> anyhow::Result<bool> {
    if args.fleet.fleet || args.fleet.wants_coverage() || args.fleet.notify.is_some() {
        return Ok(true);
    }
    if args.run.is_some() || (!sshfleet_history::is_database(history) && !history.exists()) {
        return Ok(false);
    }
    Ok(History::open(history)?.scope_heads()?.len() > 1)
}

/// The expected sites the options name, if any.
fn expected(args: &FleetArgs) -> anyhow::Result<Option<CoverageCheck>> {
    let expected = if let Some(path) = &args.expect_sites_from {
        let inventory = sshfleet_inventory::load(path, &InventoryOptions::default())?;
        let sites: BTreeSet<String> = inventory
            .rows
            .iter()
            .map(|row| match row {
                Row::Device(d) => d.site,
                Row::Invalid(r) => r.site,
            })
            .filter(|site| !site.is_empty())
            .collect();
        if sites.is_empty() {
            anyhow::bail!(
                "the inventory {} names no site (its `site` column is absent or empty): no site to expect",
                path.display()
            );
        }
        ExpectedSites::Listed {
            sites,
            from: format!("inventory {}", path.display()),
        }
    } else if let Some(age) = &args.sites_seen_within {
        ExpectedSites::SeenWithin {
            age: age.duration,
            text: age.text.clone(),
        }
    } else {
        return Ok(None);
    };
    Ok(Some(CoverageCheck {
        expected,
        within: args.reported_within.duration,
        within_text: args.reported_within.text.clone(),
    }))
}

/// Renders the fleet view of `history` to `args.output`, with its summary and reports, and
/// with `--notify` sends its missing sites.
pub(super) async fn render(args: &ReportHtmlArgs, history: &Path) -> anyhow::Result<Exit> {
    let started = Instant::now();
    let check = expected(&args.fleet)?;
    let notifier = coverage_notifier(&args.fleet, check.is_some())?;
    if !sshfleet_history::is_database(history) && !history.exists() {
        anyhow::bail!("the history {} does not exist", history.display());
    }
    let opened = History::open(history)?;
    let mut fleet =
        sshfleet_engine::fleet::load(&opened, check.as_ref(), sshfleet_core::time::now_unix_ms())?;
    let missing = fleet.view.missing().len() as u64;
    // Each missing site is a finding of the fleet, as on every output.
    fleet.summary.findings = fleet.summary.findings.saturating_add(missing);
    let context = format!(
        "fleet of {}: the latest complete run of {} scopes",
        sshfleet_history::display(history),
        fleet.view.scopes
    );
    let written = write_outputs(args, &fleet, context, started);
    if !args.verbosity().is_quiet() {
        diag!("{}", fleet.summary.render_text());
        diag!("{}", fleet.view.render_text());
    }
    if let Err(e) = written {
        diagln!(
            "error: {}",
            sshfleet_core::inert::message(&format!("{e:#}"))
        );
        return Ok(Exit::OutputFailed);
    }
    if !args.verbosity().is_quiet() {
        diagln!(
            "{} devices of {} sites; HTML report written to {}",
            fleet.summary.total,
            fleet.view.sites.len(),
            args.output.display()
        );
    }
    if let (Some(target), Some(coverage)) = (notifier, &fleet.view.coverage) {
        notify_missing(&target, coverage, args.verbosity()).await;
    }
    Ok(if missing > 0 {
        Exit::Findings
    } else {
        Exit::Clean
    })
}

/// `--notify`'s target; it tells the missing sites, so it needs the expected ones.
fn coverage_notifier(
    args: &FleetArgs,
    expects_sites: bool,
) -> anyhow::Result<Option<NotifyTarget>> {
    let Some(url) = &args.notify else {
        return Ok(None);
    };
    if !expects_sites {
        anyhow::bail!(
            "--notify on report html tells the sites missing from the fleet: give --expect-sites-from INVENTORY or --sites-seen-within AGE"
        );
    }
    NotifyTarget::parse(url, args.notify_format.format())
        .map(Some)
        .map_err(anyhow::Error::msg)
}

/// Sends the missing sites, if any; says how it went. A failure never changes the exit.
async fn notify_missing(target: &NotifyTarget, coverage: &SiteCoverage, verbosity: Verbosity) {
    let label = RunLabel {
        command: "report html".to_owned(),
        started_at: sshfleet_core::time::now_rfc3339(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    let shown = target.shown().to_owned();
    let Some(note) = build_coverage(coverage, &label, target.format) else {
        if !verbosity.is_quiet() {
            diagln!("no site missing: no notification to {shown}");
        }
        return;
    };
    match send(target, &note).await {
        Ok(_) if verbosity.is_quiet() => {}
        Ok(_) => diagln!("notified {shown}: {}", note.summary),
        Err(e) => diagln!(
            "warning: the notification was not delivered: {}; the result stands",
            sshfleet_core::inert::message(&e.to_string())
        ),
    }
}

/// The page, and the JSON summary and metrics when asked for.
fn write_outputs(
    args: &ReportHtmlArgs,
    fleet: &Fleet,
    context: String,
    started: Instant,
) -> anyhow::Result<()> {
    let context = if fleet.checked_at.is_empty() {
        context
    } else {
        format!("{context}, checked up to {}", fleet.checked_at)
    };
    let report = HtmlReport {
        context,
        generated_at: sshfleet_core::time::now_rfc3339(),
        summary: &fleet.summary,
        rows: &fleet.rows,
        trend: Vec::new(),
        expiring: Vec::new(),
        applied: None,
        today: sshfleet_core::time::today(),
    };
    let page = report.render_fleet(&fleet.view);
    sshfleet_core::files::write_atomically(&args.output, page.as_bytes())
        .with_context(|| format!("cannot write the HTML report {}", args.output.display()))?;
    if let Some(path) = &args.fleet.summary_out {
        let json = fleet.view.to_json(&fleet.summary);
        sshfleet_core::files::write_atomically(path, json.as_bytes())
            .with_context(|| format!("cannot write the summary {}", path.display()))?;
    }
    if let Some(path) = &args.fleet.metrics_out {
        let text = fleet
            .view
            .render_metrics(&fleet.summary, &facts(started.elapsed()));
        sshfleet_core::files::write_atomically(path, text.as_bytes())
            .with_context(|| format!("cannot write the metrics {}", path.display()))?;
    }
    Ok(())
}

/// `--summary-out` and `--metrics-out` of a page that is not the fleet view.
pub(super) fn write_reports(args: &FleetArgs, summary: &Summary) -> anyhow::Result<()> {
    if let Some(path) = &args.summary_out {
        sshfleet_core::files::write_atomically(path, summary.to_json().as_bytes())
            .with_context(|| format!("cannot write the summary {}", path.display()))?;
    }
    if let Some(path) = &args.metrics_out {
        let text = sshfleet_report::metrics::render(summary, &facts(Duration::ZERO), None);
        sshfleet_core::files::write_atomically(path, text.as_bytes())
            .with_context(|| format!("cannot write the metrics {}", path.display()))?;
    }
    Ok(())
}

/// What the metrics say of `report html` itself.
fn facts(duration: Duration) -> RunFacts {
    RunFacts {
        command: "report html",
        shard: None,
        duration,
        finished: SystemTime::now(),
        succeeded: true,
    }
}
