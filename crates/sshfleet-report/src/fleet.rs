//! The fleet view: the latest complete run of every scope of a history (one scanner per site
//! or shard), grouped per site, and site coverage — the expected sites with no complete run
//! within the period. The fleet's devices pass through one [`Summary`] (so its compliance is
//! the one definition); each site has its own [`Summary`] of the same records. This module
//! holds what the outputs say of it: the text lines, the `fleet` object of the JSON summary
//! and the metrics families; the HTML sections are in `html`.

use std::fmt::{self, Write as _};

use crate::metrics::{self, Exposition, RunFacts};
use crate::{Change, Summary};

/// A run of the history, as the fleet view names it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RunRef {
    pub id: i64,
    pub scope: String,
    /// RFC 3339.
    pub finished_at: String,
}

/// A complete run of a scope, by its counts, for a site's trend.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RunCounts {
    pub run: i64,
    /// RFC 3339, when it started.
    pub started_at: String,
    pub devices: u64,
    pub compliant: u64,
    pub ssh_enabled: u64,
}

/// One site of the fleet: its devices in the latest complete runs that saw it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct FleetSite {
    pub site: String,
    /// The runs its devices come from (one, when one scanner covers the site).
    pub runs: Vec<RunRef>,
    /// Its devices only (drift against each scope's previous complete run included).
    #[serde(skip)]
    pub summary: Summary,
    /// The last complete runs of the scope holding the site, oldest first (the scope's counts:
    /// the site's own when the scope holds only this site).
    pub trend: Vec<RunCounts>,
    /// The scope the trend is of, when that scope also holds other sites.
    pub trend_shared_by: Option<String>,
}

/// Why an expected site has no complete run within the period.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Gap {
    /// The history holds no run with a device of this site.
    NoRun,
    /// Its latest complete run is older than the period.
    Stale,
    /// A later run was interrupted before it was done: not coverage.
    Incomplete,
}

impl Gap {
    pub fn as_str(self) -> &'static str {
        match self {
            Gap::NoRun => "no_run",
            Gap::Stale => "stale",
            Gap::Incomplete => "incomplete",
        }
    }
}

/// An expected site with no complete run within the period: a finding.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct MissingSite {
    pub site: String,
    pub gap: Gap,
    /// When its latest complete run finished, if it has one (RFC 3339).
    pub last_complete: Option<String>,
    /// Its latest run, when that was interrupted.
    pub interrupted: Option<RunRef>,
}

impl MissingSite {
    /// `no complete run since …; last complete run …`, for people.
    pub fn describe(&self, since: &str) -> String {
        let last = match &self.last_complete {
            Some(at) => format!("last complete run finished {at}"),
            None => "no complete run recorded".to_owned(),
        };
        match (&self.gap, &self.interrupted) {
            (Gap::NoRun, _) => "no run recorded at all".to_owned(),
            (Gap::Incomplete, Some(run)) => format!(
                "incomplete: run {} of {} was interrupted ({}); {last}",
                run.id, run.scope, run.finished_at
            ),
            _ => format!("no complete run since {since}; {last}"),
        }
    }
}

/// Which sites are expected, and which of them have no complete run within the period.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SiteCoverage {
    /// Where the expected sites come from: `inventory sites.csv`, `sites seen within 30d`.
    pub expected_from: String,
    /// The period, as given (`7d`).
    pub within: String,
    /// The period's start (RFC 3339): a complete run must have finished since.
    pub since: String,
    pub expected: u64,
    /// By site name.
    pub missing: Vec<MissingSite>,
}

/// The fleet: per site, and the coverage when expected sites were given.
#[derive(Clone, Debug, Default)]
pub struct FleetView {
    /// Scopes whose latest complete run is in the view.
    pub scopes: u64,
    /// By site name.
    pub sites: Vec<FleetSite>,
    pub coverage: Option<SiteCoverage>,
}

impl FleetView {
    /// Expected sites with no complete run within the period.
    pub fn missing(&self) -> &[MissingSite] {
        self.coverage.as_ref().map_or(&[], |c| c.missing.as_slice())
    }

    /// The text after the summary: one line per site, then each missing site.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        let _ = self.write_text(&mut out);
        out
    }

    fn write_text(&self, f: &mut String) -> fmt::Result {
        writeln!(
            f,
            "fleet: {} sites from the latest complete runs of {} scopes",
            self.sites.len(),
            self.scopes
        )?;
        let width = self
            .sites
            .iter()
            .map(|s| site_name(&s.site).chars().count())
            .max()
            .unwrap_or(0)
            .max(4);
        writeln!(
            f,
            "{:<width$}  {:>7}  {:>10}  {:>8}  {:>9}  {:>6}  run",
            "site", "devices", "compliance", "findings", "regressed", "waived"
        )?;
        for s in &self.sites {
            let regressed = s
                .summary
                .drift
                .as_ref()
                .map_or(0, |d| d.by_change.get(Change::Regressed));
            let runs: Vec<String> = s
                .runs
                .iter()
                .map(|r| format!("{} ({})", r.id, r.finished_at))
                .collect();
            writeln!(
                f,
                "{:<width$}  {:>7}  {:>10}  {:>8}  {regressed:>9}  {:>6}  {}",
                site_name(&s.site),
                s.summary.total,
                s.summary.compliance().percent(),
                s.summary.findings,
                s.summary.waived,
                runs.join(", ")
            )?;
        }
        if let Some(c) = &self.coverage {
            write_coverage(f, c)?;
        }
        Ok(())
    }

    /// The JSON summary of the fleet: `summary`'s document with a `fleet` object (scopes,
    /// sites with their own compliance, drift and runs, and the coverage).
    pub fn to_json(&self, summary: &Summary) -> String {
        let mut document: serde_json::Value =
            serde_json::from_str(&summary.to_json()).unwrap_or_default();
        let sites: Vec<serde_json::Value> = self.sites.iter().map(site_json).collect();
        let fleet = serde_json::json!({
            "scopes": self.scopes,
            "sites": sites,
            "coverage": self.coverage,
        });
        if let Some(map) = document.as_object_mut() {
            map.insert("fleet".into(), fleet);
        }
        serde_json::to_string_pretty(&document).unwrap_or_else(|_| String::from("{}"))
    }

    /// The metrics of the fleet: `summary`'s families, then per site its compliance and
    /// the end of its latest complete run, and the coverage.
    pub fn render_metrics(&self, summary: &Summary, facts: &RunFacts) -> String {
        let mut out = Exposition::appending(metrics::render(summary, facts, None));
        out.gauge(
            "sshfleet_fleet_sites",
            "Sites in the fleet view (the latest complete run of every scope).",
            self.sites.len() as f64,
        );
        out.family(
            "sshfleet_site_compliance_ratio",
            "Per site: devices in their desired SSH state or waived, over devices with a desired state (NaN when none has one).",
        );
        for s in &self.sites {
            let ratio = s.summary.compliance().ratio.unwrap_or(f64::NAN);
            out.sample(
                "sshfleet_site_compliance_ratio",
                &[("site", &s.site)],
                ratio,
            );
        }
        out.family(
            "sshfleet_site_last_complete_run_timestamp_seconds",
            "Per site: when its latest complete run finished, in seconds since the Unix epoch.",
        );
        for s in &self.sites {
            let last = s.runs.iter().map(|r| r.finished_at.as_str()).max();
            if let Some(ms) = last.and_then(sshfleet_core::time::parse_rfc3339_ms) {
                let at = ms as f64 / 1000.0;
                out.sample(
                    "sshfleet_site_last_complete_run_timestamp_seconds",
                    &[("site", &s.site)],
                    at,
                );
            }
        }
        if let Some(c) = &self.coverage {
            coverage_families(&mut out, c);
        }
        out.into_text()
    }
}

/// `SITE MISSING …` lines and the coverage line.
fn write_coverage(f: &mut String, c: &SiteCoverage) -> fmt::Result {
    for m in &c.missing {
        writeln!(
            f,
            "SITE MISSING {}: {}",
            site_name(&m.site),
            sshfleet_core::inert::line(&m.describe(&c.since))
        )?;
    }
    writeln!(
        f,
        "site coverage: {} of {} expected sites ({}) have a complete run within {}",
        c.expected.saturating_sub(c.missing.len() as u64),
        c.expected,
        sshfleet_core::inert::line(&c.expected_from),
        c.within
    )?;
    Ok(())
}

fn coverage_families(out: &mut Exposition<'_>, c: &SiteCoverage) {
    out.gauge(
        "sshfleet_sites_expected",
        "Sites expected to report (from an inventory, or seen recently).",
        c.expected as f64,
    );
    out.gauge(
        "sshfleet_sites_missing",
        "Expected sites with no complete run within the period (exit code 1).",
        c.missing.len() as f64,
    );
    out.family(
        "sshfleet_site_missing",
        "1 for each expected site with no complete run within the period, by why: no_run, stale, incomplete.",
    );
    for m in &c.missing {
        out.sample(
            "sshfleet_site_missing",
            &[("site", &m.site), ("reason", m.gap.as_str())],
            1.0,
        );
    }
}

fn site_json(s: &FleetSite) -> serde_json::Value {
    let c = s.summary.compliance();
    serde_json::json!({
        "site": s.site,
        "runs": s.runs,
        "devices": s.summary.total,
        "findings": s.summary.findings,
        "compliant": s.summary.compliant,
        "non_compliant": s.summary.non_compliant,
        "not_checked": s.summary.not_checked(),
        "ssh_enabled": s.summary.ssh_enabled,
        "waived": s.summary.waived,
        "compliance": c,
        "regressions": s.summary.regressions(),
        "drift": s.summary.drift.as_ref().map(|d| &d.by_change),
        "trend": s.trend,
        "trend_shared_by": s.trend_shared_by,
    })
}

/// A site name safe for a terminal.
fn site_name(name: &str) -> String {
    if name.is_empty() {
        return "(no site)".to_owned();
    }
    sshfleet_core::inert::shorten(name, 32).into_owned()
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;
    use crate::{DeviceRecord, SshState, Status};
    use std::time::{Duration, UNIX_EPOCH};

    fn view() -> (FleetView, Summary) {
        let mut fleet = Summary::default();
        let mut site = Summary::default();
        for on in [false, true] {
            let mut rec = DeviceRecord::new("a".into(), "n".into(), "north".into(), Status::Ok);
            rec.ssh_enabled = Some(on);
            rec.expect = Some(SshState::Disabled);
            rec.judge();
            fleet.add(&rec);
            site.add(&rec);
        }
        let run = RunRef {
            id: 7,
            scope: "north.csv".into(),
            finished_at: "2026-12-01T10:00:00.000Z".into(),
        };
        let view = FleetView {
            scopes: 1,
            sites: vec![FleetSite {
                site: "north".into(),
                runs: vec![run.clone()],
                summary: site,
                trend: Vec::new(),
                trend_shared_by: None,
            }],
            coverage: Some(SiteCoverage {
                expected_from: "inventory all.csv".into(),
                within: "7d".into(),
                since: "2026-12-02T00:00:00.000Z".into(),
                expected: 3,
                missing: vec![
                    MissingSite {
                        site: "north".into(),
                        gap: Gap::Stale,
                        last_complete: Some(run.finished_at.clone()),
                        interrupted: None,
                    },
                    MissingSite {
                        site: "we\"st\n".into(),
                        gap: Gap::NoRun,
                        last_complete: None,
                        interrupted: None,
                    },
                ],
            }),
        };
        (view, fleet)
    }

    #[test]
    fn missing_sites_are_said_in_the_text_the_json_and_the_metrics() {
        let (view, summary) = view();
        let text = view.render_text();
        assert!(text.contains("fleet: 1 sites from the latest complete runs of 1 scopes"));
        assert!(text.contains("SITE MISSING north: no complete run since 2026-12-02T00:00:00.000Z; last complete run finished 2026-12-01T10:00:00.000Z"), "{text}");
        assert!(text.contains("site coverage: 1 of 3 expected sites (inventory all.csv) have a complete run within 7d"), "{text}");
        assert!(text.contains("50.0%"), "north's own compliance: {text}");
        let json: serde_json::Value = serde_json::from_str(&view.to_json(&summary)).unwrap();
        assert_eq!(json["total"], 2);
        assert_eq!(json["fleet"]["sites"][0]["runs"][0]["id"], 7);
        assert_eq!(json["fleet"]["sites"][0]["compliance"]["compliant"], 1);
        assert_eq!(json["fleet"]["coverage"]["missing"][1]["gap"], "no_run");
        let facts = RunFacts {
            command: "report html",
            shard: None,
            duration: Duration::ZERO,
            finished: UNIX_EPOCH,
            succeeded: true,
        };
        let metrics = view.render_metrics(&summary, &facts);
        for line in [
            "sshfleet_fleet_sites 1",
            "sshfleet_sites_missing 2",
            "sshfleet_site_compliance_ratio{site=\"north\"} 0.5",
            "sshfleet_site_missing{site=\"north\",reason=\"stale\"} 1",
            "sshfleet_site_missing{site=\"we\\\"st\\n\",reason=\"no_run\"} 1",
            "sshfleet_site_last_complete_run_timestamp_seconds{site=\"north\"} 1796119200",
        ] {
            assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
        }
    }
}
