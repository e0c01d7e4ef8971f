//! The fleet view's sections: site coverage (the expected sites with no complete run within
//! the period) first, then one row per site with its latest run, compliance, drift, waivers
//! and trend.

use maud::{html, Markup};

use super::svg::{site_label, thousands};
use crate::fleet::{FleetSite, FleetView, RunCounts, SiteCoverage};
use crate::Change;

/// Runs of a site's trend spelled out in its row, newest last.
const TREND_SHOWN: usize = 8;

/// The alert naming the missing sites, for the top of the page.
pub(super) fn alert(view: &FleetView) -> Markup {
    let missing = view.missing();
    html! {
        @if !missing.is_empty() {
            div.alert.bad role="alert" data-testid="sites-missing" data-missing=(missing.len()) {
                b { (missing.len()) " expected site(s) missing" } ": no complete run within the period — "
                @for (i, m) in missing.iter().enumerate() {
                    @if i > 0 { ", " }
                    (site_label(&m.site))
                }
                ". See " a href="#coverage" { "Site coverage" } "."
            }
        }
    }
}

/// The coverage section (when expected sites were given) and the per-site table.
pub(super) fn sections(view: &FleetView) -> Markup {
    html! {
        @if let Some(c) = &view.coverage { (coverage(c)) }
        section #fleet {
            h2 { "Fleet by site" }
            p.lead { "The latest complete run of each of the " (view.scopes) " scopes in the history, per site: its compliance (the same definition as the headline), findings, drift since that scope's previous complete run, waivers, and the trend of its last runs (compliant of devices)." }
            div.panel {
                table.list data-testid="fleet-sites" {
                    thead { tr {
                        th { "Site" } th { "Latest run" } th.n { "Devices" } th.n { "Compliance" }
                        th.n { "Findings" } th.n { "Regressed" } th.n { "Fixed" } th.n { "Waived" } th { "Trend" }
                    } }
                    tbody {
                        @for s in &view.sites { (site_row(s)) }
                    }
                }
            }
        }
    }
}

fn site_row(s: &FleetSite) -> Markup {
    let drift = |change| {
        s.summary
            .drift
            .as_ref()
            .map_or(0, |d| d.by_change.get(change))
    };
    html! {
        tr data-testid="fleet-site" data-site=(s.site) {
            td { (site_label(&s.site)) }
            td {
                @for (i, r) in s.runs.iter().enumerate() {
                    @if i > 0 { br; }
                    "run " (r.id) " of " code { (r.scope) } ", " (r.finished_at)
                }
            }
            td.n { (thousands(s.summary.total)) }
            td.n data-testid="site-compliance" { (s.summary.compliance().percent()) }
            td.n { (thousands(s.summary.findings)) }
            td.n { (thousands(drift(Change::Regressed))) }
            td.n { (thousands(drift(Change::Fixed))) }
            td.n { (thousands(s.summary.waived)) }
            td { (trend_text(&s.trend)) @if let Some(scope) = &s.trend_shared_by { " (scope " code { (scope) } ", with other sites)" } }
        }
    }
}

/// `3/5 → 5/5`: compliant of devices, over the last runs.
fn trend_text(points: &[RunCounts]) -> String {
    let from = points.len().saturating_sub(TREND_SHOWN);
    points
        .get(from..)
        .unwrap_or_default()
        .iter()
        .map(|p| format!("{}/{}", p.compliant, p.devices))
        .collect::<Vec<_>>()
        .join(" → ")
}

fn coverage(c: &SiteCoverage) -> Markup {
    let covered = c.expected.saturating_sub(c.missing.len() as u64);
    html! {
        section #coverage {
            h2 { "Site coverage" }
            p.lead data-testid="coverage-lead" {
                (thousands(covered)) " of " (thousands(c.expected)) " expected sites (" (c.expected_from)
                ") have a complete run within " (c.within) " (since " (c.since) "). An interrupted run is not coverage."
            }
            @if !c.missing.is_empty() {
                div.panel {
                    table.list data-testid="missing-sites" {
                        thead { tr { th { "Missing site" } th { "Why" } th { "Last complete run" } } }
                        tbody {
                            @for m in &c.missing {
                                tr data-testid="missing-site" data-site=(m.site) data-gap=(m.gap.as_str()) {
                                    td { (site_label(&m.site)) }
                                    td { (m.describe(&c.since)) }
                                    td { (m.last_complete.as_deref().unwrap_or("never")) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
