//! The JUnit XML report (`--format junit`): one test case per device, so that a CI pipeline
//! shows non-compliant cameras as failed tests and unreadable ones as errors, the way CI
//! systems (GitLab, Jenkins, GitHub test reporters) already display test results.
//!
//! Streamed like the other formats: the suite's counts are not in its opening tag (they
//! are not known until the end, and the readers above count the cases themselves); the
//! totals are in a `<properties>` block at the end of the suite instead.

use std::io::{self, BufWriter, Write};

use super::host_keys::HostKeyFindings;
use super::record::{DeviceRecord, Status};
use super::RecordWriter;

pub(crate) struct JunitWriter {
    out: BufWriter<Box<dyn Write + Send>>,
    started: bool,
    tests: u64,
    failures: u64,
    errors: u64,
    skipped: u64,
    /// Devices in the run's scope, when told ([`RecordWriter::scope`]).
    in_scope: Option<u64>,
    /// Devices a stopped remediation left unwritten.
    deferred: u64,
    /// Shared and changed host keys: a failed test case each, at the end.
    host_keys: HostKeyFindings,
}

impl JunitWriter {
    pub(crate) fn new(out: Box<dyn Write + Send>) -> JunitWriter {
        JunitWriter {
            out: BufWriter::new(out),
            started: false,
            tests: 0,
            failures: 0,
            errors: 0,
            skipped: 0,
            in_scope: None,
            deferred: 0,
            host_keys: HostKeyFindings::default(),
        }
    }

    fn start(&mut self) -> io::Result<()> {
        if !self.started {
            self.started = true;
            self.out.write_all(
                b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"sshfleet\">\n<testsuite name=\"sshfleet SSH compliance\">\n",
            )?;
        }
        Ok(())
    }
}

/// What a device's test case says.
enum Verdict {
    Passed,
    /// Read, and not in its desired state.
    Failure {
        kind: &'static str,
        message: String,
    },
    /// Could not be read: the check itself failed.
    Error {
        kind: &'static str,
        message: String,
    },
    /// Allowed by a waiver in force.
    Skipped {
        message: String,
    },
}

fn verdict(rec: &DeviceRecord) -> Verdict {
    if rec.status != Status::Ok {
        let message = match &rec.error {
            Some(error) => format!("{}: {error}", rec.status),
            None => rec.status.to_string(),
        };
        return Verdict::Error {
            kind: rec.status.as_str(),
            message,
        };
    }
    let unwaived = rec.compliant == Some(false) && rec.waiver.is_none();
    if let (false, Some(message)) = (unwaived, super::advisory::junit_message(rec)) {
        return Verdict::Failure {
            kind: "ssh_advisory",
            message,
        };
    }
    if rec.compliant != Some(false) {
        return Verdict::Passed;
    }
    if let Some(waiver) = &rec.waiver {
        return Verdict::Skipped {
            message: format!("waived: {waiver}"),
        };
    }
    let state = |on: bool| if on { "enabled" } else { "disabled" };
    let message = match (rec.ssh_enabled, rec.expect, rec.exposure) {
        (Some(false), _, Some(super::Exposure::PortOnly)) => {
            String::from("SSH disabled in the configuration, yet an SSH server answers on its port")
        }
        (Some(on), Some(want), _) => format!("SSH {}, expected {want}", state(on)),
        _ => String::from("not in its desired SSH state"),
    };
    let message = match super::advisory::junit_message(rec) {
        Some(advisory) => format!("{message}; {advisory}"),
        None => message,
    };
    Verdict::Failure {
        kind: "non_compliant",
        message,
    }
}

impl RecordWriter for JunitWriter {
    fn write(&mut self, rec: &DeviceRecord) -> io::Result<()> {
        self.start()?;
        self.tests += 1;
        self.host_keys.add(rec);
        self.deferred += u64::from(
            rec.remediation
                .as_ref()
                .is_some_and(|r| r.action == super::Action::Deferred),
        );
        let out = &mut self.out;
        out.write_all(b"<testcase classname=\"")?;
        let site = if rec.site.is_empty() {
            "(no site)"
        } else {
            &rec.site
        };
        write_escaped(out, site)?;
        out.write_all(b"\" name=\"")?;
        if rec.name.is_empty() {
            write_escaped(out, &rec.address)?;
        } else {
            write_escaped(out, &rec.name)?;
            out.write_all(b" (")?;
            write_escaped(out, &rec.address)?;
            out.write_all(b")")?;
        }
        let millis = rec.elapsed_ms;
        write!(out, "\" time=\"{}.{:03}\">", millis / 1000, millis % 1000)?;
        match verdict(rec) {
            Verdict::Passed => {}
            Verdict::Failure { kind, message } => {
                self.failures += 1;
                element(out, "failure", kind, &message, rec)?;
            }
            Verdict::Error { kind, message } => {
                self.errors += 1;
                element(out, "error", kind, &message, rec)?;
            }
            Verdict::Skipped { message } => {
                self.skipped += 1;
                out.write_all(b"<skipped message=\"")?;
                write_escaped(out, &message)?;
                out.write_all(b"\"/>")?;
            }
        }
        out.write_all(b"<system-out>")?;
        details(out, rec)?;
        out.write_all(b"</system-out></testcase>\n")
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    fn finish(&mut self) -> io::Result<()> {
        self.start()?;
        let devices = self.tests;
        self.write_host_keys()?;
        let in_scope = self.in_scope.unwrap_or(devices).max(devices);
        let not_reached = (in_scope - devices).saturating_add(self.deferred);
        if not_reached > 0 {
            // An incomplete run is a failed check of its own, so that CI shows it.
            self.tests += 1;
            self.errors += 1;
            writeln!(
                self.out,
                "<testcase classname=\"sshfleet\" name=\"run coverage\" time=\"0.000\"><error type=\"incomplete\" message=\"incomplete run: {not_reached} of {in_scope} devices in scope not reached (not checked, or left unwritten)\"/></testcase>"
            )?;
        }
        write!(
            self.out,
            "<properties><property name=\"tests\" value=\"{}\"/><property name=\"failures\" value=\"{}\"/><property name=\"errors\" value=\"{}\"/><property name=\"skipped\" value=\"{}\"/><property name=\"in_scope\" value=\"{in_scope}\"/><property name=\"not_reached\" value=\"{not_reached}\"/><property name=\"complete\" value=\"{}\"/></properties>\n</testsuite>\n</testsuites>\n",
            self.tests, self.failures, self.errors, self.skipped, not_reached == 0
        )?;
        self.out.flush()
    }

    fn scope(&mut self, devices: u64) {
        self.in_scope = Some(devices);
    }
}

impl JunitWriter {
    /// One failed test case per shared host key and per changed one (`host_keys`).
    fn write_host_keys(&mut self) -> io::Result<()> {
        let keys = std::mem::take(&mut self.host_keys);
        for (key, group) in &keys.shared.keys {
            let message = format!(
                "SSH host key {key} presented by {} devices: a cloned image, or a proxy in the path",
                group.devices
            );
            let details = format!("devices: {}", group.addresses.join(", "));
            self.fleet_case(
                &format!("shared host key {key}"),
                "shared_host_key",
                &message,
                &details,
            )?;
        }
        for c in &keys.changed.listed {
            let message = format!(
                "SSH host key of {} changed since the previous run while its serial did not: replaced firmware, or someone in the middle",
                c.address
            );
            let details = format!(
                "address: {}\nserial: {}\nssh_host_key: {}",
                c.address,
                c.serial.as_deref().unwrap_or(""),
                c.host_key
            );
            self.fleet_case(
                &format!("changed host key {}", c.address),
                "changed_host_key",
                &message,
                &details,
            )?;
        }
        Ok(())
    }

    /// A failed test case of the fleet (class `sshfleet host keys`).
    fn fleet_case(
        &mut self,
        name: &str,
        kind: &str,
        message: &str,
        details: &str,
    ) -> io::Result<()> {
        self.tests += 1;
        self.failures += 1;
        let out = &mut self.out;
        out.write_all(b"<testcase classname=\"sshfleet host keys\" name=\"")?;
        write_escaped(out, name)?;
        write!(out, "\" time=\"0.000\"><failure type=\"{kind}\" message=\"")?;
        write_escaped(out, message)?;
        out.write_all(b"\">")?;
        write_escaped(out, details)?;
        out.write_all(b"</failure></testcase>\n")
    }
}

/// `<failure type=… message=…>details</failure>`.
fn element(
    out: &mut impl Write,
    tag: &str,
    kind: &str,
    message: &str,
    rec: &DeviceRecord,
) -> io::Result<()> {
    write!(out, "<{tag} type=\"{kind}\" message=\"")?;
    write_escaped(out, message)?;
    out.write_all(b"\">")?;
    details(out, rec)?;
    write!(out, "</{tag}>")
}

/// What a reader needs to act on the device, one `key: value` per line.
fn details(out: &mut impl Write, rec: &DeviceRecord) -> io::Result<()> {
    let mut line = |key: &str, value: &str| -> io::Result<()> {
        write!(out, "{key}: ")?;
        write_escaped(out, value)?;
        out.write_all(b"\n")
    };
    line("address", &rec.address)?;
    if let Some(serial) = &rec.serial {
        line("serial", serial)?;
    }
    line("status", rec.status.as_str())?;
    if let Some(on) = rec.ssh_enabled {
        line("ssh_enabled", if on { "true" } else { "false" })?;
    }
    if let Some(want) = rec.expect {
        line("expect", want.as_str())?;
    }
    if let Some(code) = rec.http_status {
        line("http_status", &code.to_string())?;
    }
    if let Some(error) = &rec.error {
        line("error", error)?;
    }
    if let Some(port) = rec.ssh_port {
        line("ssh_port", port.as_str())?;
    }
    if let Some(exposure) = rec.exposure {
        line("exposure", exposure.as_str())?;
    }
    if let Some(drift) = &rec.drift {
        line("change", drift.change.as_str())?;
    }
    if let Some(waiver) = &rec.waiver {
        line("waiver", waiver.as_str())?;
    }
    if let Some(rem) = &rec.remediation {
        line("action", rem.action.as_str())?;
        if let Some(verified) = rem.verified {
            line("verified", if verified { "true" } else { "false" })?;
        }
    }
    line("checked_at", &rec.checked_at)
}

/// Text as XML 1.0 character data or an attribute value: the five markup characters as
/// entities, line breaks and tabs as character references (kept inside attributes), and
/// characters XML 1.0 cannot carry at all (other control characters, U+FFFE/U+FFFF) as
/// U+FFFD, so that a device's text never ends an element or makes the file unreadable.
fn write_escaped(out: &mut impl Write, text: &str) -> io::Result<()> {
    let mut rest = text;
    while let Some(at) = rest.find(needs_escape) {
        out.write_all(&rest.as_bytes()[..at])?;
        let mut chars = rest[at..].chars();
        let c = chars.next().unwrap_or('\u{FFFD}');
        let replacement: &str = match c {
            '&' => "&amp;",
            '<' => "&lt;",
            '>' => "&gt;",
            '"' => "&quot;",
            '\'' => "&apos;",
            '\n' => "&#10;",
            '\r' => "&#13;",
            '\t' => "&#9;",
            _ => "\u{FFFD}",
        };
        out.write_all(replacement.as_bytes())?;
        rest = chars.as_str();
    }
    out.write_all(rest.as_bytes())
}

fn needs_escape(c: char) -> bool {
    matches!(c, '&' | '<' | '>' | '"' | '\'' | '\u{FFFE}' | '\u{FFFF}') || c.is_control()
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;
    use crate::test_support::SharedBuf;
    use crate::{Exposure, SshState};

    fn render(records: &[DeviceRecord]) -> String {
        let buf = SharedBuf::default();
        let mut w = JunitWriter::new(Box::new(buf.clone()));
        for rec in records {
            w.write(rec).unwrap();
        }
        w.finish().unwrap();
        buf.text()
    }

    fn device(name: &str, status: Status) -> DeviceRecord {
        let mut rec = DeviceRecord::new("10.0.0.1".into(), name.into(), "hq".into(), status);
        rec.elapsed_ms = 1234;
        rec
    }

    #[test]
    fn one_case_per_device_with_failures_errors_and_skips() {
        let mut ok = device("a", Status::Ok);
        (ok.ssh_enabled, ok.expect, ok.compliant) =
            (Some(false), Some(SshState::Disabled), Some(true));
        let mut on = device("b", Status::Ok);
        (on.ssh_enabled, on.expect, on.compliant) =
            (Some(true), Some(SshState::Disabled), Some(false));
        let mut waived = on.clone();
        waived.waiver = Some("W-1 owner=x expires=2027-01-01".into());
        let mut down = device("c", Status::Timeout);
        down.error = Some("no answer within 5s".into());
        let mut port_only = device("d", Status::Ok);
        (port_only.ssh_enabled, port_only.expect, port_only.compliant) =
            (Some(false), Some(SshState::Disabled), Some(false));
        port_only.exposure = Some(Exposure::PortOnly);
        let text = render(&[ok, on, waived, down, port_only]);
        assert_eq!(text.matches("<testcase ").count(), 5, "{text}");
        assert!(text.contains("time=\"1.234\""), "{text}");
        assert!(
            text.contains(
                "<failure type=\"non_compliant\" message=\"SSH enabled, expected disabled\">"
            ),
            "{text}"
        );
        assert!(
            text.contains("<error type=\"timeout\" message=\"timeout: no answer within 5s\">"),
            "{text}"
        );
        assert!(
            text.contains("<skipped message=\"waived: W-1 owner=x"),
            "{text}"
        );
        assert!(text.contains("yet an SSH server answers"), "{text}");
        assert!(
            text.contains("<property name=\"failures\" value=\"2\"/>"),
            "{text}"
        );
        assert!(
            text.contains("<property name=\"errors\" value=\"1\"/>"),
            "{text}"
        );
        assert!(text.ends_with("</testsuite>\n</testsuites>\n"), "{text}");
    }

    #[test]
    fn hostile_device_text_stays_inside_its_attribute_and_element() {
        let mut rec = device("\"/><script>x</script>&\u{1}\u{FFFF}", Status::Unreachable);
        rec.error = Some("]]></error><oops attr='1'>\r\n\t".into());
        let text = render(&[rec]);
        assert!(!text.contains("<script>"), "{text}");
        assert!(!text.contains("<oops"), "{text}");
        assert!(
            text.contains("name=\"&quot;/&gt;&lt;script&gt;x&lt;/script&gt;&amp;\u{FFFD}\u{FFFD} (10.0.0.1)\""),
            "{text}"
        );
        assert!(text.contains("&apos;1&apos;&gt;&#13;&#10;&#9;"), "{text}");
    }

    #[test]
    fn devices_in_scope_not_reached_are_an_error_of_their_own() {
        let buf = SharedBuf::default();
        let mut w = JunitWriter::new(Box::new(buf.clone()));
        w.scope(5);
        w.write(&device("a", Status::Ok)).unwrap();
        w.write(&device("b", Status::Ok)).unwrap();
        w.finish().unwrap();
        let text = buf.text();
        assert!(
            text.contains("<error type=\"incomplete\" message=\"incomplete run: 3 of 5 devices in scope not reached"),
            "{text}"
        );
        assert!(
            text.contains("<property name=\"not_reached\" value=\"3\"/>"),
            "{text}"
        );
        assert!(
            text.contains("<property name=\"complete\" value=\"false\"/>"),
            "{text}"
        );
        // Every device reached: no such case.
        let whole = render(&[device("a", Status::Ok)]);
        assert!(!whole.contains("incomplete"), "{whole}");
        assert!(
            whole.contains("<property name=\"complete\" value=\"true\"/>"),
            "{whole}"
        );
    }

    #[test]
    fn an_empty_run_is_a_well_formed_empty_suite() {
        let text = render(&[]);
        assert!(text.starts_with("<?xml version=\"1.0\""), "{text}");
        assert!(
            text.contains("<property name=\"tests\" value=\"0\"/>"),
            "{text}"
        );
    }
}
