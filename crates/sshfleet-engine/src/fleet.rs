//! The fleet view of a history many scopes write to: the latest complete run of every
//! scope, its devices (with their drift against that scope's previous complete run) passed
//! through one fleet [`Summary`] and one [`Summary`] per site, and site coverage — which
//! expected sites have no complete run within the period. Reads only; the history is not
//! changed.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use sshfleet_core::time::{format_rfc3339_millis, parse_rfc3339_ms};
use sshfleet_history::{History, HistoryError, Period, RunRow, ScopeHead};
use sshfleet_report::fleet::{
    FleetSite, FleetView, Gap, MissingSite, RunCounts, RunRef, SiteCoverage,
};
use sshfleet_report::html::DeviceRows;
use sshfleet_report::{Baseline, Change, DriftSummary, Summary};

use crate::run::TREND_RUNS;

/// Which sites must have reported.
#[derive(Clone, Debug)]
pub enum ExpectedSites {
    /// These (an inventory's `site` column); `from` says where they come from.
    Listed {
        sites: BTreeSet<String>,
        from: String,
    },
    /// Every site a device was seen with within `age` (`text` as given: `30d`).
    SeenWithin { age: Duration, text: String },
}

/// Site coverage to check: the expected sites, and the period within which each must have
/// a complete run.
#[derive(Clone, Debug)]
pub struct CoverageCheck {
    pub expected: ExpectedSites,
    pub within: Duration,
    /// As given (`7d`).
    pub within_text: String,
}

/// The fleet view, with the devices and summary its page and reports are made of.
#[derive(Debug, Default)]
pub struct Fleet {
    pub summary: Summary,
    pub rows: DeviceRows,
    pub view: FleetView,
    /// The latest `checked_at` of any device.
    pub checked_at: String,
}

/// One site while the runs are read.
#[derive(Default)]
struct SiteAcc {
    summary: Summary,
    runs: Vec<RunRef>,
    /// The scope its trend is taken from, and whether that scope holds other sites.
    trend: Vec<RunCounts>,
    trend_shared_by: Option<String>,
}

/// The fleet view of `history` at `now_ms` (Unix milliseconds), with site coverage when
/// `coverage` is given.
pub fn load(
    history: &History,
    coverage: Option<&CoverageCheck>,
    now_ms: i64,
) -> Result<Fleet, HistoryError> {
    let heads = history.scope_heads()?;
    let mut fleet = Fleet {
        summary: Summary {
            drift: Some(DriftSummary::default()),
            ..Summary::default()
        },
        ..Fleet::default()
    };
    let mut sites: BTreeMap<String, SiteAcc> = BTreeMap::new();
    for head in &heads {
        if let Some(run) = &head.complete {
            add_run(history, run, &mut fleet, &mut sites)?;
            fleet.view.scopes += 1;
        }
    }
    if let Some(check) = coverage {
        fleet.view.coverage = Some(site_coverage(history, &heads, &sites, check, now_ms)?);
    }
    fleet.view.sites = sites
        .into_iter()
        .map(|(site, acc)| FleetSite {
            site,
            runs: acc.runs,
            summary: acc.summary,
            trend: acc.trend,
            trend_shared_by: acc.trend_shared_by,
        })
        .collect();
    Ok(fleet)
}

fn run_ref(run: &RunRow) -> RunRef {
    RunRef {
        id: run.id,
        scope: run.scope.clone(),
        finished_at: run.finished_at.clone().unwrap_or_default(),
    }
}

/// Adds the devices of `run` (a scope's latest complete run) to the fleet and their sites,
/// with their drift against the scope's previous complete run.
fn add_run(
    history: &History,
    run: &RunRow,
    fleet: &mut Fleet,
    sites: &mut BTreeMap<String, SiteAcc>,
) -> Result<(), HistoryError> {
    let mut baseline = previous_baseline(history, run)?;
    let mut seen: BTreeSet<String> = BTreeSet::new();
    for period in history.run_periods(&run.scope, run.id)? {
        let mut rec = period.into_record();
        if let Some(b) = &mut baseline {
            b.annotate(&mut rec);
        }
        fleet.summary.add(&rec);
        fleet.rows.push(&rec);
        if rec.checked_at > fleet.checked_at {
            fleet.checked_at.clone_from(&rec.checked_at);
        }
        site_of(sites, &rec.site).summary.add(&rec);
        if !seen.contains(&rec.site) {
            seen.insert(rec.site.clone());
        }
    }
    if let Some(b) = &baseline {
        if let Some(drift) = &mut fleet.summary.drift {
            b.finish_into(drift);
        }
        for gone in b.gone() {
            let site = site_of(sites, &gone.site);
            site.summary
                .drift
                .get_or_insert_with(DriftSummary::default)
                .by_change
                .add(Change::Gone);
        }
    }
    let trend = trend_of(history, run)?;
    let shared = (seen.len() > 1).then(|| run.scope.clone());
    for name in &seen {
        let site = site_of(sites, name);
        site.runs.push(run_ref(run));
        if site.trend.is_empty() {
            site.trend.clone_from(&trend);
            site.trend_shared_by.clone_from(&shared);
        }
    }
    Ok(())
}

/// The complete runs of `run`'s scope up to it, oldest first.
fn trend_of(history: &History, run: &RunRow) -> Result<Vec<RunCounts>, HistoryError> {
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    let mut runs = history.scope_runs(&run.scope, run.id, TREND_RUNS)?;
    runs.retain(|r| !r.interrupted);
    runs.reverse();
    Ok(runs
        .into_iter()
        .map(|r| RunCounts {
            run: r.id,
            started_at: r.started_at,
            devices: count(r.devices),
            compliant: count(r.compliant),
            ssh_enabled: count(r.ssh_enabled),
        })
        .collect())
}

/// The devices of the complete run of `run`'s scope before it, if there is one.
fn previous_baseline(history: &History, run: &RunRow) -> Result<Option<Baseline>, HistoryError> {
    let previous = history
        .scope_runs(&run.scope, run.id.saturating_sub(1), TREND_RUNS)?
        .into_iter()
        .find(|r| !r.interrupted);
    let Some(p) = previous else {
        return Ok(None);
    };
    let periods = history.run_periods(&p.scope, p.id)?;
    Ok(Some(Baseline::new(
        periods.into_iter().map(Period::into_observation).collect(),
    )))
}

fn site_of<'a>(sites: &'a mut BTreeMap<String, SiteAcc>, name: &str) -> &'a mut SiteAcc {
    sites.entry(name.to_owned()).or_default()
}

/// Which expected sites have no complete run that finished within the period, and why.
fn site_coverage(
    history: &History,
    heads: &[ScopeHead],
    sites: &BTreeMap<String, SiteAcc>,
    check: &CoverageCheck,
    now_ms: i64,
) -> Result<SiteCoverage, HistoryError> {
    let millis = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    let since_ms = now_ms.saturating_sub(millis(check.within));
    let (expected, from) = match &check.expected {
        ExpectedSites::Listed { sites, from } => (sites.clone(), from.clone()),
        ExpectedSites::SeenWithin { age, text } => {
            let after = now_ms.saturating_sub(millis(*age));
            let seen = history
                .sites_last_seen()?
                .into_iter()
                .filter(|s| !s.site.is_empty())
                .filter(|s| parse_rfc3339_ms(&s.last_seen).is_some_and(|at| at >= after))
                .map(|s| s.site)
                .collect();
            (seen, format!("sites seen within {text}"))
        }
    };
    let interrupted = interrupted_sites(history, heads)?;
    let mut missing = Vec::new();
    for site in &expected {
        // Run ids grow with every run of any scope: the latest is the one with the largest.
        let last_complete = sites
            .get(site)
            .and_then(|acc| acc.runs.iter().max_by_key(|r| r.id));
        let complete_ms = last_complete.and_then(|r| parse_rfc3339_ms(&r.finished_at));
        if complete_ms.is_some_and(|at| at >= since_ms) {
            continue;
        }
        let interrupted = interrupted
            .get(site)
            .filter(|run| last_complete.map_or(true, |c| run.id > c.id))
            .cloned();
        let last_complete = last_complete.map(|r| r.finished_at.clone());
        let gap = match (&interrupted, &last_complete) {
            (Some(_), _) => Gap::Incomplete,
            (None, Some(_)) => Gap::Stale,
            (None, None) => Gap::NoRun,
        };
        missing.push(MissingSite {
            site: site.clone(),
            gap,
            last_complete,
            interrupted,
        });
    }
    Ok(SiteCoverage {
        expected_from: from,
        within: check.within_text.clone(),
        since: format_rfc3339_millis(since_ms),
        expected: expected.len() as u64,
        missing,
    })
}

/// The sites of every scope's latest run when that run was interrupted, with that run.
fn interrupted_sites(
    history: &History,
    heads: &[ScopeHead],
) -> Result<BTreeMap<String, RunRef>, HistoryError> {
    let mut out: BTreeMap<String, RunRef> = BTreeMap::new();
    for run in heads.iter().filter_map(|h| h.interrupted.as_ref()) {
        let sites: BTreeSet<String> = history
            .run_periods(&run.scope, run.id)?
            .into_iter()
            .map(|p| p.site)
            .collect();
        for site in sites {
            let later = out.get(&site).map_or(true, |r| r.id < run.id);
            if later {
                out.insert(site, run_ref(run));
            }
        }
    }
    Ok(out)
}
