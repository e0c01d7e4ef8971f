//! The page's "Vendor advisories" section: per advisory that applies to a device's AXIS OS
//! version, the devices affected and how many have SSH on or reachable; those needing SSH
//! with exposed devices first, as findings (every string escaped by maud).

use maud::{html, Markup};

use super::svg::thousands;
use crate::advisory::AdvisorySummary;

/// Nothing when no device was checked against the advisories.
pub(super) fn section(s: &AdvisorySummary) -> Markup {
    if s.is_empty() {
        return html! {};
    }
    let findings = s.ssh_findings();
    let others: Vec<_> = s
        .by_advisory
        .iter()
        .filter(|(id, _)| !findings.iter().any(|(f, _)| f == id))
        .collect();
    let unknown: Vec<&str> = s.unknown_ids().iter().map(|(id, _)| id.as_str()).collect();
    html! {
        section #advisories {
            h2 { "Vendor advisories" }
            p.lead data-testid="advisory-counts" data-checked=(s.checked) data-unknown=(s.version_unknown) {
                (thousands(s.checked)) " devices' AXIS OS versions were compared with Axis's advisories; "
                (thousands(s.version_unknown)) " had no version to compare (what applies to them is unknown, not none). "
                "Only the version a device reports is compared, never an SSH banner."
            }
            @if !findings.is_empty() {
                div.alert.bad role="alert" data-testid="advisory-findings" data-count=(s.findings) {
                    b { (thousands(s.findings)) " device(s) are findings" }
                    ": an advisory whose exploitation needs SSH applies to their AXIS OS version, and their SSH is on or reachable."
                }
            }
            @if !unknown.is_empty() {
                div.alert.bad role="alert" data-testid="advisory-unknown" data-count=(unknown.len()) {
                    b { "Not in the advisories in use: " (unknown.join(", ")) }
                    ". Whether exploiting them needs SSH is not known here, so each is counted as needing it. "
                    "Give the advisories file the scan used (--advisories FILE)."
                }
            }
            div.panel {
                table.list data-testid="advisories" {
                    thead { tr { th { "Advisory" } th { "Needs SSH" } th.n { "Devices" } th.n { "SSH on or reachable" } th { "Exposed devices" } } }
                    tbody {
                        @for (id, c) in findings.iter().copied().chain(others) {
                            tr class=(if c.needs_ssh && c.ssh_exposed > 0 { "finding" } else { "" }) data-advisory=(id) {
                                td { (id) }
                                td {
                                    @if c.unknown { b { "unknown: counted as yes" } }
                                    @else if c.needs_ssh { b { "yes" } } @else { "no" }
                                }
                                td.n { (thousands(c.devices)) }
                                td.n { (thousands(c.ssh_exposed)) }
                                td {
                                    (c.exposed_addresses.join(", "))
                                    @let more = c.ssh_exposed.saturating_sub(c.exposed_addresses.len() as u64);
                                    @if more > 0 { " and " (thousands(more)) " more" }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
