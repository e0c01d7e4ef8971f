//! A run's summary in the Prometheus text exposition format, for node_exporter's textfile
//! collector (`--metrics-out FILE.prom`). The file is replaced atomically, so a scrape never
//! sees half of it, and it carries the time of the last successful run, so that a staleness
//! alert (`time() - sshfleet_last_success_timestamp_seconds > 2 * 86400`) fires when the
//! schedule stops working, whatever the reason.

use std::fmt::Write as _;
use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::record::{Change, Status};
use super::Summary;

/// The metric that survives a failed run (taken from the file the last run left).
const LAST_SUCCESS: &str = "sshfleet_last_success_timestamp_seconds";

/// Most of a previous metrics file read to find its last success (a file we wrote is far
/// smaller for any fleet with fewer than some thousands of sites).
const MAX_PREVIOUS: u64 = 64 << 20;

/// What the metrics say about the run itself, beside its summary.
#[derive(Clone, Debug)]
pub struct RunFacts {
    /// `scan`, `remediate`, `report merge`.
    pub command: &'static str,
    /// `K/N` when the run was one shard; a label on every sample, so that shard files in one
    /// textfile directory do not collide.
    pub shard: Option<String>,
    pub duration: Duration,
    /// When the run ended.
    pub finished: SystemTime,
    /// Every device reached and every output written (not interrupted, nothing failed).
    pub succeeded: bool,
}

/// The metrics text for a run. `previous_success` is the last success time of an earlier
/// run, kept when this one did not succeed.
pub fn render(summary: &Summary, facts: &RunFacts, previous_success: Option<f64>) -> String {
    let mut out = Exposition {
        text: String::with_capacity(4096 + summary.by_site.len() * 512),
        shard: facts.shard.as_deref(),
    };
    run_families(&mut out, facts, previous_success);
    device_families(&mut out, summary);
    if let Some(drift) = &summary.drift {
        let by_change: Vec<_> = Change::ALL
            .iter()
            .map(|&change| (change.as_str(), drift.by_change.get(change)))
            .collect();
        out.labelled(
            "sshfleet_drift_devices",
            "Devices by their change since the previous run of the same scope.",
            "change",
            &by_change,
        );
    }
    if summary.exposure.probed > 0 {
        exposure_families(&mut out, &summary.exposure);
    }
    if summary.exposure.probed > 0 || !summary.host_keys.is_empty() {
        host_key_families(&mut out, &summary.host_keys);
    }
    for (name, help, samples) in super::advisory::metric_families(&summary.advisories) {
        out.family(name, help);
        for (labels, n) in samples {
            out.sample(name, &labels, count(n));
        }
    }
    let rem = &summary.remediation;
    if rem.planned() > 0 {
        out.labelled(
            "sshfleet_remediation_devices",
            "Remediation outcomes: the planned action (set, none, skip, waived) and what was read back (verified, failed).",
            "outcome",
            &[
                ("set", rem.set),
                ("none", rem.none),
                ("skip", rem.skip),
                ("waived", rem.waived),
                ("stale", rem.stale),
                ("deferred", rem.deferred),
                ("verified", rem.verified),
                ("failed", rem.failed),
            ],
        );
    }
    site_families(&mut out, summary);
    out.text
}

/// The run itself: what ran, whether it succeeded, how long it took, when it ended, and
/// when a run last succeeded (this one, or `previous_success` when this one failed).
fn run_families(out: &mut Exposition<'_>, facts: &RunFacts, previous_success: Option<f64>) {
    out.family(
        "sshfleet_run_info",
        "The sshfleet run that wrote this file (always 1).",
    );
    out.sample(
        "sshfleet_run_info",
        &[
            ("command", facts.command),
            ("version", env!("CARGO_PKG_VERSION")),
        ],
        1.0,
    );
    out.gauge(
        "sshfleet_run_success",
        "1 when the run reached every device and wrote every output, else 0.",
        f64::from(u8::from(facts.succeeded)),
    );
    out.gauge(
        "sshfleet_run_duration_seconds",
        "Wall-clock duration of the run.",
        facts.duration.as_secs_f64(),
    );
    let finished = unix_seconds(facts.finished);
    out.gauge(
        "sshfleet_run_timestamp_seconds",
        "When the run ended, in seconds since the Unix epoch.",
        finished,
    );
    let last_success = if facts.succeeded {
        Some(finished)
    } else {
        previous_success
    };
    if let Some(at) = last_success {
        out.gauge(
            LAST_SUCCESS,
            "When a run last succeeded, in seconds since the Unix epoch (kept across failed runs).",
            at,
        );
    }
}

/// Fleet-wide device counts: by status, by SSH and compliance state, and the findings.
fn device_families(out: &mut Exposition<'_>, summary: &Summary) {
    out.gauge(
        "sshfleet_devices",
        "Devices in the run.",
        count(summary.total),
    );
    let by_status: Vec<(&str, u64)> = summary
        .by_status
        .iter()
        .map(|(status, n)| (status.as_str(), n))
        .collect();
    out.labelled(
        "sshfleet_devices_by_status",
        "Devices by the status of their check (ok, timeout, unauthorized, ...).",
        "status",
        &by_status,
    );
    for (name, help, value) in device_gauges(summary) {
        out.gauge(name, help, value);
    }
}

/// The fleet-wide one-sample families after the status counts, in the file's order:
/// name, help, value.
fn device_gauges(summary: &Summary) -> [(&'static str, &'static str, f64); 11] {
    let run = summary.coverage();
    [
        (
            "sshfleet_run_complete",
            "1 when the run reached every device in its scope; 0 when it was interrupted or stopped early.",
            f64::from(u8::from(run.complete)),
        ),
        (
            "sshfleet_devices_in_scope",
            "Devices in the run's scope (inventory rows of its shard), reached or not.",
            count(run.in_scope),
        ),
        (
            "sshfleet_devices_not_reached",
            "Devices in scope the run did not reach (interrupted) or left unwritten (remediation stopped).",
            count(run.not_reached),
        ),
        (
            "sshfleet_devices_ssh_enabled",
            "Devices read with SSH enabled.",
            count(summary.ssh_enabled),
        ),
        (
            "sshfleet_devices_compliant",
            "Devices read in their desired SSH state.",
            count(summary.compliant),
        ),
        (
            "sshfleet_devices_non_compliant",
            "Devices read in another SSH state than desired, waived ones included.",
            count(summary.non_compliant),
        ),
        (
            "sshfleet_devices_waived",
            "Non-compliant devices that a waiver in force allows.",
            count(summary.waived),
        ),
        (
            "sshfleet_devices_not_checked",
            "Devices whose SSH state could not be read.",
            count(summary.not_checked()),
        ),
        (
            "sshfleet_findings",
            "Findings: devices not checked, non-compliant devices not waived, and devices with SSH on or reachable that an advisory needing SSH applies to (exit code 1).",
            count(summary.findings()),
        ),
        (
            "sshfleet_compliance_ratio",
            "Devices in their desired SSH state or waived, over devices in scope with a desired state (not checked and not reached count against; NaN when none has one).",
            summary.compliance().ratio.unwrap_or(f64::NAN),
        ),
        (
            "sshfleet_new_exposure",
            "New exposure since the previous run: regressed devices and new non-compliant ones.",
            count(summary.new_exposure),
        ),
    ]
}

/// The host-key findings (`--probe-ssh`): shared keys and keys changed with the same serial.
fn host_key_families(out: &mut Exposition<'_>, keys: &super::host_keys::HostKeyFindings) {
    out.gauge(
        "sshfleet_shared_host_keys",
        "SSH host keys presented by more than one device of the run (each a finding).",
        count(keys.shared.count),
    );
    out.gauge(
        "sshfleet_devices_with_shared_host_key",
        "Devices presenting an SSH host key that another device of the run presents too.",
        count(keys.shared.devices),
    );
    out.gauge(
        "sshfleet_changed_host_keys",
        "Devices whose SSH host key changed since the previous run while their serial did not (each a finding).",
        count(keys.changed.count),
    );
}

/// What the SSH port probe saw, and how it agrees with the configuration.
fn exposure_families(out: &mut Exposition<'_>, e: &super::ExposureSummary) {
    out.labelled(
        "sshfleet_ssh_port_devices",
        "Devices by what their SSH port probe saw (open, closed, filtered).",
        "state",
        &[
            ("open", e.open),
            ("closed", e.closed),
            ("filtered", e.filtered),
        ],
    );
    out.labelled(
        "sshfleet_exposure_devices",
        "Devices by how the port probe agrees with the configuration.",
        "exposure",
        &[
            ("consistent", e.consistent),
            ("config_only", e.config_only),
            ("port_only", e.port_only),
        ],
    );
}

/// Per-site families, one sample per site (and per status of that site that occurs).
fn site_families(out: &mut Exposition<'_>, summary: &Summary) {
    out.family(
        "sshfleet_site_devices",
        "Devices per site and status of their check.",
    );
    for (site, s) in &summary.by_site {
        for (status, n) in s.by_status.iter().filter(|(_, n)| *n > 0) {
            out.sample(
                "sshfleet_site_devices",
                &[("site", site), ("status", status.as_str())],
                count(n),
            );
        }
    }
    type Field = fn(&super::SiteSummary) -> u64;
    let per_site: [(&str, &str, Field); 5] = [
        (
            "sshfleet_site_ssh_enabled",
            "Devices per site read with SSH enabled.",
            |s| s.ssh_enabled,
        ),
        (
            "sshfleet_site_compliant",
            "Devices per site read in their desired SSH state.",
            |s| s.compliant,
        ),
        (
            "sshfleet_site_non_compliant",
            "Devices per site in another SSH state than desired, waived ones included.",
            |s| s.non_compliant,
        ),
        (
            "sshfleet_site_waived",
            "Non-compliant devices per site that a waiver in force allows.",
            |s| s.waived,
        ),
        (
            "sshfleet_site_not_checked",
            "Devices per site whose SSH state could not be read.",
            |s| s.total.saturating_sub(s.by_status.get(Status::Ok)),
        ),
    ];
    for (name, help, field) in per_site {
        out.family(name, help);
        for (site, s) in &summary.by_site {
            out.sample(name, &[("site", site)], count(field(s)));
        }
    }
}

/// The last success time in a metrics file an earlier run wrote, if any (a missing or
/// unreadable file has none).
pub fn previous_success(path: &Path) -> Option<f64> {
    let mut text = String::new();
    File::open(path)
        .ok()?
        .take(MAX_PREVIOUS)
        .read_to_string(&mut text)
        .ok()?;
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(LAST_SUCCESS)?;
        // `name value` or `name{labels} value`: the value is the last field.
        let value: f64 = rest.split_whitespace().last()?.parse().ok()?;
        value.is_finite().then_some(value)
    })
}

fn unix_seconds(at: SystemTime) -> f64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Counts are far below 2^53: exact as floats.
fn count(n: u64) -> f64 {
    n as f64
}

/// The text being written, with the labels every sample carries.
pub(crate) struct Exposition<'a> {
    text: String,
    shard: Option<&'a str>,
}

impl Exposition<'_> {
    /// More families after `text` (a file [`render`] wrote), without a shard label.
    pub(crate) fn appending(text: String) -> Exposition<'static> {
        Exposition { text, shard: None }
    }

    pub(crate) fn into_text(self) -> String {
        self.text
    }

    /// A family's `# HELP` and `# TYPE` lines (every family here is a gauge).
    pub(crate) fn family(&mut self, name: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.text, "# TYPE {name} gauge");
    }

    /// A family of one sample without labels of its own.
    pub(crate) fn gauge(&mut self, name: &str, help: &str, value: f64) {
        self.family(name, help);
        self.sample(name, &[], value);
    }

    /// A family with one sample per value of a single label, in the order given.
    fn labelled(&mut self, name: &str, help: &str, label: &str, counts: &[(&str, u64)]) {
        self.family(name, help);
        for &(value, n) in counts {
            self.sample(name, &[(label, value)], count(n));
        }
    }

    pub(crate) fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        let shard = self.shard.map(|s| ("shard", s));
        let mut all = labels.iter().copied().chain(shard).peekable();
        if all.peek().is_some() {
            self.text.push('{');
            for (i, (key, value)) in all.enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                self.text.push_str(key);
                self.text.push_str("=\"");
                push_label_value(&mut self.text, value);
                self.text.push('"');
            }
            self.text.push('}');
        }
        self.text.push(' ');
        push_value(&mut self.text, value);
        self.text.push('\n');
    }
}

/// A label value as the text format wants it: `\`, `"` and line feed escaped, every other
/// character kept as it is (the format allows any UTF-8 there). Distinct values stay
/// distinct series: `hq<TAB>north` is not `hq north`, which a replacement would make it,
/// and node_exporter would drop one of the two as a duplicate.
fn push_label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// HELP text: `\` and line feed escaped.
fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

fn push_value(out: &mut String, value: f64) {
    if value.is_nan() {
        out.push_str("NaN");
    } else if value.fract() == 0.0 && value.abs() < 1e15 {
        let _ = write!(out, "{}", value as i64);
    } else {
        let _ = write!(out, "{value}");
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;
    use crate::DeviceRecord;

    fn record(address: &str, status: Status) -> DeviceRecord {
        DeviceRecord::new(address.into(), String::new(), String::new(), status)
    }

    fn facts(succeeded: bool) -> RunFacts {
        RunFacts {
            command: "scan",
            shard: None,
            duration: Duration::from_millis(1500),
            finished: UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            succeeded,
        }
    }

    fn summary_of(records: &[DeviceRecord]) -> Summary {
        let mut summary = Summary::default();
        for rec in records {
            summary.add(rec);
        }
        summary
    }

    fn value_of(text: &str, series: &str) -> Option<String> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ').map(str::to_owned))
    }

    #[test]
    fn counts_sites_and_statuses_and_keeps_the_last_success() {
        let mut on = record("10.0.0.1", Status::Ok);
        on.site = "hq".into();
        on.ssh_enabled = Some(true);
        on.compliant = Some(false);
        on.expect = Some(crate::SshState::Disabled);
        let mut off = record("10.0.0.2", Status::Ok);
        off.site = "hq".into();
        off.ssh_enabled = Some(false);
        off.compliant = Some(true);
        off.expect = Some(crate::SshState::Disabled);
        let mut down = record("10.0.0.3", Status::Timeout);
        down.site = "lab".into();
        let summary = summary_of(&[on, off, down]);
        let text = render(&summary, &facts(true), None);
        assert_eq!(value_of(&text, "sshfleet_devices").as_deref(), Some("3"));
        assert_eq!(
            value_of(&text, "sshfleet_site_devices{site=\"hq\",status=\"ok\"}").as_deref(),
            Some("2")
        );
        assert_eq!(
            value_of(
                &text,
                "sshfleet_site_devices{site=\"lab\",status=\"timeout\"}"
            )
            .as_deref(),
            Some("1")
        );
        // One compliant of three: the device not checked counts against (Summary::compliance).
        assert_eq!(
            value_of(&text, "sshfleet_compliance_ratio").as_deref(),
            Some("0.3333333333333333")
        );
        assert_eq!(
            value_of(&text, "sshfleet_run_duration_seconds").as_deref(),
            Some("1.5")
        );
        assert_eq!(value_of(&text, LAST_SUCCESS).as_deref(), Some("1800000000"));
        // A failed run says so and carries the earlier success forward.
        let failed = render(&summary, &facts(false), Some(1_700_000_000.0));
        assert_eq!(
            value_of(&failed, "sshfleet_run_success").as_deref(),
            Some("0")
        );
        assert_eq!(
            value_of(&failed, LAST_SUCCESS).as_deref(),
            Some("1700000000")
        );
        // A failure with no earlier success has none at all.
        let first = render(&summary, &facts(false), None);
        assert!(!first.contains(LAST_SUCCESS), "{first}");
    }

    #[test]
    fn hostile_site_names_are_escaped_label_values() {
        let mut rec = record("10.0.0.1", Status::Ok);
        rec.site = "a\"b\\c\nd\re} 1\n# TYPE x counter".into();
        let text = render(&summary_of(&[rec]), &facts(true), None);
        // `\`, `"` and line feed escaped; the carriage return kept (legal in the format).
        assert!(
            text.contains("site=\"a\\\"b\\\\c\\nd\re} 1\\n# TYPE x counter\""),
            "{text}"
        );
        // Nothing in a label starts a line of its own.
        assert!(text.lines().all(|l| !l.starts_with("# TYPE x")), "{text}");
    }

    #[test]
    fn shard_label_on_every_sample_and_no_family_without_data() {
        let mut f = facts(true);
        f.shard = Some("2/8".into());
        let text = render(&summary_of(&[record("10.0.0.1", Status::Ok)]), &f, None);
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(line.contains("shard=\"2/8\""), "{line}");
        }
        assert!(!text.contains("sshfleet_drift_devices"), "{text}");
        assert!(!text.contains("sshfleet_remediation_devices"), "{text}");
        assert_eq!(
            value_of(&text, "sshfleet_compliance_ratio{shard=\"2/8\"}").as_deref(),
            Some("NaN")
        );
    }

    #[test]
    fn the_previous_success_is_read_back_is_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sshfleet.prom");
        let summary = summary_of(&[record("10.0.0.1", Status::Ok)]);
        let text = render(&summary, &facts(true), None);
        sshfleet_core::files::write_atomically(&path, text.as_bytes()).unwrap();
        assert_eq!(previous_success(&path), Some(1_800_000_000.0));
        sshfleet_core::files::write_atomically(&path, b"# nothing\n").unwrap();
        assert_eq!(previous_success(&path), None);
        assert_eq!(previous_success(&dir.path().join("absent.prom")), None);
    }
}
