//! The page's host-key section: keys shared by several devices, and keys that changed while
//! the serial did not (`host_keys`). Every string is escaped by maud.

use maud::{html, Markup};

use super::svg::{site_label, thousands};
use crate::host_keys::HostKeyFindings;
use crate::Summary;

/// Whether the page has the section: with `--probe-ssh`, or findings read from a report.
pub(super) fn shown(s: &Summary) -> bool {
    s.exposure.probed > 0 || !s.host_keys.is_empty()
}

/// The section (nothing when not [`shown`]).
pub(super) fn section(s: &Summary) -> Markup {
    let keys = &s.host_keys;
    html! {
        @if shown(s) {
        section.keys #host-keys data-testid="host-keys" data-findings=(keys.count()) {
            h2 { "Host keys" }
            @if keys.is_empty() {
                p.lead data-testid="host-keys-empty" {
                    "No host key is shared by several devices, and none changed while its serial did not."
                }
            } @else {
                p.lead {
                    b data-testid="shared-host-keys" { (thousands(keys.shared.count)) } " host key(s) shared by several devices (a cloned image, or a proxy in the path); "
                    b data-testid="changed-host-keys" { (thousands(keys.changed.count)) } " device(s) whose host key changed since the last run while the serial did not (replaced firmware, or someone in the middle)."
                }
                (shared(keys))
                (changed(keys))
            }
        }
        }
    }
}

fn shared(keys: &HostKeyFindings) -> Markup {
    html! {
        @if !keys.shared.keys.is_empty() {
            h3 { "Shared host keys" }
            div.panel {
                table.list data-testid="shared-host-key-list" {
                    thead { tr { th { "Host key" } th { "Type" } th { "Devices" } th { "Addresses" } } }
                    tbody {
                        @for (key, group) in &keys.shared.keys {
                            tr {
                                td { code { (key) } }
                                td { (group.key_type.as_deref().unwrap_or("")) }
                                td { (thousands(group.devices)) }
                                td {
                                    (group.addresses.join(", "))
                                    @let more = group.devices.saturating_sub(group.addresses.len() as u64);
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

fn changed(keys: &HostKeyFindings) -> Markup {
    let changed = &keys.changed;
    html! {
        @if !changed.listed.is_empty() {
            h3 { "Host keys changed while the serial did not" }
            div.panel {
                table.list data-testid="changed-host-key-list" {
                    thead { tr { th { "Serial" } th { "Address" } th { "Name" } th { "Site" } th { "Host key now" } } }
                    tbody {
                        @for c in &changed.listed {
                            tr {
                                td { (c.serial.as_deref().unwrap_or("")) }
                                td { (c.address) }
                                td { (c.name) }
                                td { (site_label(&c.site)) }
                                td { code { (c.host_key) } }
                            }
                        }
                    }
                }
                @if changed.count > changed.listed.len() as u64 {
                    p.note { "The first " (changed.listed.len()) " of " (thousands(changed.count)) " devices." }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{DeviceRecord, KeyChange, Status};

    #[test]
    fn device_text_in_the_section_is_inert() {
        let mut s = Summary::default();
        for address in ["<script>alert(1)</script>", "b"] {
            let mut rec =
                DeviceRecord::new(address.into(), "<b>n</b>".into(), String::new(), Status::Ok);
            rec.ssh.host_key = Some("SHA256:<i>k</i>".into());
            rec.ssh.key_shared = Some(2);
            rec.ssh.host_key_change = Some(KeyChange::Changed);
            rec.serial = Some("<img src=x>".into());
            s.add(&rec);
        }
        let html = section(&s).into_string();
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
        for raw in ["<script>", "<i>k", "<img", "<b>n"] {
            assert!(!html.contains(raw), "{raw} in {html}");
        }
        assert!(html.contains("data-findings=\"3\""), "{html}");
    }
}
