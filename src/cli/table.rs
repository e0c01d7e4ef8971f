//! The report a person reads at a terminal: `scan` without `-o`, its stdout a terminal and no
//! `--format`, prints its findings as an aligned table as they come, instead of JSON lines
//! meant for programs (a pipe still gets JSON Lines).

use std::io::{self, IsTerminal as _, Write};
use std::path::Path;
use std::sync::Arc;

use super::args::OutputArgs;
use super::progress::Progress;
use sshfleet_report::{DeviceRecord, RecordOutput, RecordWriter, Status};

/// Column widths, in characters; the last column takes the rest of the line.
const WIDTHS: [usize; 5] = [22, 14, 12, 15, 9];
const HEADINGS: [&str; 6] = ["ADDRESS", "NAME", "SITE", "STATUS", "SSH", "DETAIL"];
/// The detail column is cut here: the report file has the whole message.
const DETAIL_CHARS: usize = 80;

/// The table, when this run's report goes to a terminal a person reads.
pub(super) fn on_terminal(output: &OutputArgs, progress: Arc<Progress>) -> Option<RecordOutput> {
    let wanted =
        output.output == Path::new("-") && output.format.is_none() && io::stdout().is_terminal();
    wanted.then(|| -> RecordOutput { Box::new(FindingsTable::new(progress)) })
}

/// Findings (devices not checked, non-compliant devices not waived) as table rows, written in
/// batches with the progress bar hidden so the two never garble each other.
struct FindingsTable {
    progress: Arc<Progress>,
    pending: Vec<String>,
    rows: u64,
    devices: u64,
}

impl FindingsTable {
    fn new(progress: Arc<Progress>) -> FindingsTable {
        FindingsTable {
            progress,
            pending: Vec::new(),
            rows: 0,
            devices: 0,
        }
    }

    fn emit(&mut self, closing: Option<String>) -> io::Result<()> {
        if self.pending.is_empty() && closing.is_none() {
            return Ok(());
        }
        let lines = std::mem::take(&mut self.pending);
        self.progress.suspend(|| {
            let mut out = io::stdout().lock();
            for line in lines.iter().chain(&closing) {
                writeln!(out, "{line}")?;
            }
            out.flush()
        })
    }
}

impl RecordWriter for FindingsTable {
    fn write(&mut self, rec: &DeviceRecord) -> io::Result<()> {
        self.devices = self.devices.saturating_add(1);
        if !rec.is_finding() {
            return Ok(());
        }
        if self.rows == 0 {
            self.pending.push(line(HEADINGS.map(str::to_owned)));
        }
        self.rows = self.rows.saturating_add(1);
        self.pending.push(row(rec));
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.emit(None)
    }

    fn finish(&mut self) -> io::Result<()> {
        let closing = match self.rows {
            0 => format!("no findings among {} devices", self.devices),
            n => format!(
                "{n} findings among {} devices; every device's record: add -o report.csv (or --format jsonl)",
                self.devices
            ),
        };
        self.emit(Some(closing))
    }

    fn label(&self) -> Option<&str> {
        Some("stdout")
    }
}

/// A finding's cells: where, what, and why.
fn row(rec: &DeviceRecord) -> String {
    let ssh = match rec.ssh_enabled {
        Some(true) => "enabled",
        Some(false) => "disabled",
        None => "-",
    };
    let detail = match (&rec.error, rec.status, rec.expect) {
        (Some(error), _, _) => error.clone(),
        (None, Status::Ok, Some(expect)) => format!("SSH {ssh}, expected {}", expect.as_str()),
        (None, status, _) => status.to_string(),
    };
    line([
        rec.address.clone(),
        rec.name.clone(),
        rec.site.clone(),
        rec.status.to_string(),
        ssh.to_owned(),
        detail,
    ])
}

/// Cells padded to their widths, each cut to fit and cleaned of control characters (device
/// and inventory text must not drive the terminal).
fn line(cells: [String; 6]) -> String {
    let mut out = String::new();
    for (i, cell) in cells.iter().enumerate() {
        let width = WIDTHS.get(i).copied();
        let fitted = fit(cell, width.map_or(DETAIL_CHARS, |w| w - 1));
        // `{:<w$}` pads by characters, not bytes.
        out.push_str(&format!("{fitted:<0$}", width.unwrap_or(0)));
    }
    out.trim_end().to_owned()
}

/// At most `max` characters, control characters shown as `?`, a cut marked with `…`.
fn fit(cell: &str, max: usize) -> String {
    let clean = cell.chars().map(|c| if c.is_control() { '?' } else { c });
    let mut out: String = clean.clone().take(max).collect();
    if clean.count() > max {
        out.pop();
        out.push('…');
    }
    out
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;
    use sshfleet_report::SshState;

    #[test]
    fn a_finding_is_one_aligned_line_of_clean_cells() {
        let mut rec = DeviceRecord::new(
            "10.0.0.1".into(),
            "cam\u{1b}[31m-1".into(),
            "a-very-long-site-name".into(),
            Status::Ok,
        );
        rec.ssh_enabled = Some(true);
        rec.expect = Some(SshState::Disabled);
        let line = row(&rec);
        assert_eq!(
            line,
            "10.0.0.1              cam?[31m-1    a-very-lon… ok             enabled  SSH enabled, expected disabled"
        );
        let heading = super::line(HEADINGS.map(str::to_owned));
        let column = |text: &str, cell: &str| text[..text.find(cell).unwrap()].chars().count();
        assert_eq!(column(&heading, "STATUS"), column(&line, "ok"));
        assert_eq!(column(&heading, "DETAIL"), column(&line, "SSH enabled,"));
    }
}
